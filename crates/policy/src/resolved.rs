//! Every parameter resolved as of one date into typed structs: what the rules read.
//!
//! This module owns [`ResolvedPolicy`] and one struct per parameter section. Resolving looks up
//! each parameter once ("as of a date"); evaluation then reads plain fields, so evaluating a
//! million households against one date costs no lookups and no parsing.

use sunshine_domain::Money;
use time::Date;

use crate::error::PolicyError;
use crate::income::IncomeKindSet;
use crate::parameters::ParameterSet;
use crate::version::PolicyVersion;

/// `district`: whose residents the rules serve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DistrictParameters {
    pub division_code: String,
    pub name_zh: String,
    pub name_en: String,
}

impl DistrictParameters {
    /// Digits 1–6 of the division code.
    pub fn prefix(&self) -> &str {
        self.division_code.get(..6).unwrap_or(&self.division_code)
    }
}

/// `procedure`: statutory time limits and re-review periods (national values).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcedureParameters {
    pub publicity_days: u32,
    pub review_working_days: u32,
    pub review_extended_working_days: u32,
    pub district_decision_working_days: u32,
    pub investigation_start_working_days: u32,
    pub refusal_notice_working_days: u32,
    /// A data holder answers an economic-status check's request within this many working days
    /// of its sending (department integration's VerificationRequestSent deadline).
    pub check_response_working_days: u32,
    pub re_review_months_stable_income: u32,
    pub re_review_months_variable_income: u32,
    /// The 特困 procedure's own limits (issue 20 item 11): read through
    /// [`ProcedureParameters::for_program`], never directly by a service.
    pub tekun: TekunProcedureParameters,
}

/// `procedure.tekun_*`: the limits of 特困人员认定办法 (民发〔2021〕43号).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TekunProcedureParameters {
    /// The street-town investigates and gives its opinion within this many working days of
    /// acceptance.
    pub street_town_working_days: u32,
    /// The county decides within this many working days of receiving the opinion.
    pub county_working_days: u32,
    /// The county home-visits at least this share of the cases it receives, in basis points.
    pub county_home_visit_share_basis_points: i64,
}

/// `integration`: department integration's duplicate-assistance rules and the monitoring
/// platform's warnings (issue 13).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IntegrationParameters {
    /// The record kinds compared for duplicate assistance: two records of one person, of the
    /// same program and one of these kinds, whose periods overlap, are a duplicate.
    pub duplicate_kinds: Vec<&'static str>,
    /// The tolerance: an overlap shorter than this many months is not a duplicate (1: any
    /// overlap, partial or whole, counts).
    pub duplicate_min_overlap_months: u32,
    /// A monitoring platform's warning is to be closed within this many working days of its
    /// receipt.
    pub monitoring_warning_working_days: u32,
}

/// How the dibao amount is set (a district's choice).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DibaoAmountMethod {
    /// 补差: standard × members − counted household income.
    Difference,
    /// 分档: a per-person amount by income-gap tier × members.
    Tier,
}

/// A dibao tier: from a per-capita income gap (share of the standard), a per-person amount
/// (share of the standard). Both in basis points.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DibaoTier {
    pub gap_at_least_basis_points: i64,
    pub pay_basis_points: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DibaoParameters {
    pub urban_standard_monthly: Money,
    pub rural_standard_monthly: Money,
    pub amount_method: DibaoAmountMethod,
    pub tiers: Vec<DibaoTier>,
    pub asset_limit_months_of_standard: i64,
    pub max_non_essential_vehicles: u32,
    pub max_extra_housing_units: u32,
}

/// Issue 20 item 10: 低保边缘家庭.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NearDibaoParameters {
    /// Recognised from this date (both near-dibao and rigid-expenditure households).
    pub in_force_from: Date,
    /// The near-dibao line as a multiple of the dibao standard, in basis points.
    pub income_multiple_basis_points: i64,
    pub asset_limit_months_of_standard: i64,
    /// Disability grades 1..=N count as severe for individual enrolment (单人户施保).
    pub individual_enrolment_disability_grade_max: u8,
}

/// Issue 20 item 10: 刚性支出困难家庭.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RigidExpenditureParameters {
    pub income_limit_per_capita_monthly: Money,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TekunParameters {
    pub elderly_min_age: i32,
    pub minor_age_limit: i32,
    pub qualifying_grade_intellectual_or_mental: u8,
    pub qualifying_grade_physical: u8,
    pub qualifying_grade_visual: u8,
    pub qualifying_grade_hearing_or_speech: u8,
    pub qualifying_grade_multiple: u8,
    pub max_counted_income_monthly: Money,
    pub basic_living_standard_monthly: Money,
    pub care_standard_partially_unable_monthly: Money,
    pub care_standard_unable_monthly: Money,
    /// Issue 20 item 4: urban residents are covered, not only rural hukou (the seed's 五保).
    pub urban_residents_covered: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TemporaryParameters {
    pub emergency_base_per_person: Money,
    pub expense_base_per_person: Money,
    pub min_coefficient_unlisted_basis_points: i64,
    pub cap_per_event_emergency: Money,
    pub cap_per_event_expense: Money,
    pub annual_cap_per_household: Money,
    pub assist_first_cap: Money,
}

/// Weights are basis points of coefficient per full intensity (30% = 3 000 = +0.30).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HardshipParameters {
    pub weight_income_gap: i64,
    pub weight_disabled_members: i64,
    pub weight_serious_illness: i64,
    pub weight_members_aged_80_plus: i64,
    pub weight_minors_in_school: i64,
    pub weight_single_parent: i64,
    pub weight_disaster_loss: i64,
    pub weight_medical_burden: i64,
    pub full_at_members: i64,
    pub disaster_loss_full_at: Money,
    pub medical_burden_full_at: Money,
    pub level_relatively_severe_from: i64,
    pub level_severe_from: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeriousIllnessParameters {
    pub share_tekun: i64,
    pub share_dibao: i64,
    pub share_low_income: i64,
    pub deductible_tekun: Money,
    pub deductible_dibao: Money,
    pub deductible_low_income: Money,
    pub annual_cap_per_person: Money,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MedicalInsuranceParameters {
    pub rural_cooperative_premium_subsidy_annual: Money,
    pub urban_resident_premium_subsidy_annual: Money,
    pub rural_cooperative_personal_premium_annual: Money,
    pub severe_veteran_grade_max: u8,
}

/// `(at_least, amount)` tiers, ascending.
pub type MoneyTiers = Vec<(i64, Money)>;

/// The amount of the highest tier whose `at_least` `value` reaches.
pub fn tier_amount(tiers: &[(i64, Money)], value: i64) -> Option<Money> {
    let reached = tiers.partition_point(|(at_least, _)| *at_least <= value);
    reached
        .checked_sub(1)
        .and_then(|index| tiers.get(index))
        .map(|(_, amount)| *amount)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OldAgeSubsidyParameters {
    pub min_age: i32,
    pub monthly_amount_by_age: MoneyTiers,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LongevityParameters {
    pub min_age: i32,
    pub centenarian_age: i32,
    pub min_residence_years: i32,
    /// The 90–99 rule's 3-year residence applies at 100+ too.
    pub centenarian_residence_carries_over: bool,
    /// The 90–99 rule's "no retirement pension" applies at 100+ too.
    pub centenarian_pension_carries_over: bool,
    pub monthly_amount_by_age: MoneyTiers,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HomeCareParameters {
    pub min_age: i32,
    pub free_service_value_monthly: Money,
    pub low_cost_subsidy_monthly: Money,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FamilyPlanningParameters {
    pub born_on_or_after: Date,
    pub no_violation_since: Date,
    pub reward_age: i32,
    pub two_daughter_sterilised_age: i32,
    pub bereaved_wife_min_age: i32,
    pub disabled_child_wife_min_age: i32,
    pub rural_reward_annual: Money,
    pub two_daughter_sterilised_reward_annual: Money,
    pub only_child_died_support_annual: Money,
    pub only_child_disabled_support_annual: Money,
    pub urban_only_child_reward_annual: Money,
    /// Issue 20 item 3: a single father's clause 3/4 age is his own, or his former wife's.
    pub single_father_counts_former_wife_age: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntitledSubsidyParameters {
    pub disabled_veteran_monthly_by_grade: MoneyTiers,
    pub martyr_family_monthly: Money,
    pub sacrificed_on_duty_family_monthly: Money,
    pub died_of_illness_family_monthly: Money,
    pub old_demobilised_monthly: Money,
    pub returned_with_illness_monthly: Money,
    pub war_veteran_monthly: Money,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EducationParameters {
    pub boarding_allowance_primary_annual: Money,
    pub boarding_allowance_junior_annual: Money,
    pub vocational_grant_last_year: u8,
    pub vocational_grant_annual: Money,
    pub high_school_grant_annual: Money,
    pub spring_bud_grant_annual: Money,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EmploymentParameters {
    pub min_age: i32,
    pub age_limit: i32,
    pub training_subsidy_one_off: Money,
    /// Issue 20 item 7: years from the placement in a public-welfare post the subsidies last.
    pub public_welfare_post_subsidy_years: i32,
    pub public_welfare_post_social_insurance_subsidy_monthly: Money,
    pub public_welfare_post_subsidy_monthly: Money,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HousingUrbanParameters {
    pub income_limit_per_capita_monthly: Money,
    pub max_floor_area_per_capita: u32,
    pub rent_subsidy_per_person_monthly: Money,
    pub rent_subsidy_share_dibao_or_tekun: i64,
    pub rent_subsidy_share_other: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HousingRuralParameters {
    pub rebuild_subsidy: Money,
    pub repair_subsidy: Money,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DisasterParameters {
    pub claim_window_days: i64,
    pub emergency_living_per_person: Money,
    pub transitional_living_per_person_per_day: Money,
    pub transitional_max_days: u32,
    pub rebuild_subsidy_per_household: Money,
    pub repair_subsidy_per_household: Money,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartyMemberAidParameters {
    pub founding_date: Date,
    pub pre_founding_member_annual: Money,
    pub needy_member_visit_annual: Money,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReservoirMigrantParameters {
    pub policy_start: Date,
    pub support_years: i32,
    pub annual_per_person: Money,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TransferredCadreParameters {
    pub living_subsidy_monthly: Money,
    /// Issue 20 item 8: the medical part of "生活、医疗等方面的救助".
    pub medical_support_monthly: Money,
}

/// Every parameter as of [`ResolvedPolicy::as_of`], with the version of the files it came from.
/// Build it with [`crate::Policy::resolve`]; evaluate with [`ResolvedPolicy::evaluate`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedPolicy {
    pub as_of: Date,
    pub version: PolicyVersion,
    pub district: DistrictParameters,
    pub procedure: ProcedureParameters,
    pub integration: IntegrationParameters,
    pub excluded_income: IncomeKindSet,
    pub dibao: DibaoParameters,
    pub tekun: TekunParameters,
    pub temporary: TemporaryParameters,
    pub hardship: HardshipParameters,
    pub medical_serious_illness: SeriousIllnessParameters,
    pub medical_insurance: MedicalInsuranceParameters,
    pub old_age_subsidy: OldAgeSubsidyParameters,
    pub longevity: LongevityParameters,
    pub home_care: HomeCareParameters,
    pub family_planning: FamilyPlanningParameters,
    pub entitled_subsidy: EntitledSubsidyParameters,
    pub education: EducationParameters,
    pub employment: EmploymentParameters,
    pub housing_urban: HousingUrbanParameters,
    pub housing_rural: HousingRuralParameters,
    pub disaster: DisasterParameters,
    pub party_member_aid: PartyMemberAidParameters,
    pub reservoir_migrant: ReservoirMigrantParameters,
    pub transferred_cadre: TransferredCadreParameters,
    pub near_dibao: NearDibaoParameters,
    pub rigid_expenditure: RigidExpenditureParameters,
}

struct Reader<'a> {
    set: &'a ParameterSet,
    as_of: Date,
    /// The sections that must have values; `None`: every section. A parameter of another
    /// section without a value on the date reads as a neutral placeholder no rule will see.
    needed: Option<&'a [&'a str]>,
}

impl Reader<'_> {
    fn scoped<T>(
        &self,
        name: &'static str,
        result: Result<T, PolicyError>,
        neutral: T,
    ) -> Result<T, PolicyError> {
        match result {
            Err(PolicyError::NoValueAsOf { .. }) if !self.needs(name) => Ok(neutral),
            other => other,
        }
    }
    fn needs(&self, name: &str) -> bool {
        let section = name.split_once('.').map_or(name, |(section, _)| section);
        self.needed.is_none_or(|sections| {
            matches!(section, "district" | "income") || sections.contains(&section)
        })
    }
    fn money(&self, name: &'static str) -> Result<Money, PolicyError> {
        self.scoped(name, self.set.money(name, self.as_of), Money::ZERO)
    }
    fn integer(&self, name: &'static str) -> Result<i64, PolicyError> {
        self.scoped(name, self.set.integer(name, self.as_of), 0)
    }
    fn age(&self, name: &'static str) -> Result<i32, PolicyError> {
        i32::try_from(self.integer(name)?)
            .map_err(|_| PolicyError::ParameterKindMismatch { parameter: name })
    }
    fn small(&self, name: &'static str) -> Result<u32, PolicyError> {
        u32::try_from(self.integer(name)?)
            .map_err(|_| PolicyError::ParameterKindMismatch { parameter: name })
    }
    fn grade(&self, name: &'static str) -> Result<u8, PolicyError> {
        u8::try_from(self.integer(name)?)
            .map_err(|_| PolicyError::ParameterKindMismatch { parameter: name })
    }
    fn basis_points(&self, name: &'static str) -> Result<i64, PolicyError> {
        self.scoped(name, self.set.basis_points(name, self.as_of), 0)
    }
    fn flag(&self, name: &'static str) -> Result<bool, PolicyError> {
        self.scoped(name, self.set.flag(name, self.as_of), false)
    }
    fn date(&self, name: &'static str) -> Result<Date, PolicyError> {
        self.scoped(name, self.set.date(name, self.as_of), self.as_of)
    }
    fn text(&self, name: &'static str) -> Result<String, PolicyError> {
        self.scoped(
            name,
            self.set.text(name, self.as_of).map(str::to_owned),
            String::new(),
        )
    }
    fn choice(&self, name: &'static str) -> Result<&'static str, PolicyError> {
        self.scoped(name, self.set.choice(name, self.as_of), "")
    }
    fn tiers(&self, name: &'static str) -> Result<MoneyTiers, PolicyError> {
        self.scoped(
            name,
            self.set
                .integer_money_tiers(name, self.as_of)
                .map(<[(i64, Money)]>::to_vec),
            Vec::new(),
        )
    }
    fn share_tiers(&self, name: &'static str) -> Result<Vec<(i64, i64)>, PolicyError> {
        self.scoped(
            name,
            self.set
                .share_tiers(name, self.as_of)
                .map(<[(i64, i64)]>::to_vec),
            Vec::new(),
        )
    }
    fn item_list(&self, name: &'static str) -> Result<Vec<&'static str>, PolicyError> {
        self.scoped(
            name,
            self.set
                .item_list(name, self.as_of)
                .map(<[&'static str]>::to_vec),
            Vec::new(),
        )
    }
}

impl ResolvedPolicy {
    /// Looks up every parameter as of `as_of`.
    pub(crate) fn from_parameters(
        set: &ParameterSet,
        version: PolicyVersion,
        as_of: Date,
    ) -> Result<ResolvedPolicy, PolicyError> {
        ResolvedPolicy::from_parameters_for(set, version, as_of, None)
    }

    /// As [`ResolvedPolicy::from_parameters`], but only the `needed` sections (with `district`
    /// and `income`) must have values on the date; `None` asks every section. The others hold
    /// placeholders: use the result only for a program whose sections are `needed`.
    pub(crate) fn from_parameters_for(
        set: &ParameterSet,
        version: PolicyVersion,
        as_of: Date,
        needed: Option<&[&str]>,
    ) -> Result<ResolvedPolicy, PolicyError> {
        let read = Reader { set, as_of, needed };
        let amount_method = match read.choice("dibao.amount_method")? {
            "tier" => DibaoAmountMethod::Tier,
            _ => DibaoAmountMethod::Difference,
        };
        let tiers = read
            .share_tiers("dibao.tiers")?
            .iter()
            .map(|(gap, pay)| DibaoTier {
                gap_at_least_basis_points: *gap,
                pay_basis_points: *pay,
            })
            .collect();
        Ok(ResolvedPolicy {
            as_of,
            version,
            district: DistrictParameters {
                division_code: read.text("district.division_code")?,
                name_zh: read.text("district.name_zh")?,
                name_en: read.text("district.name_en")?,
            },
            procedure: ProcedureParameters {
                publicity_days: read.small("procedure.publicity_days")?,
                review_working_days: read.small("procedure.review_working_days")?,
                review_extended_working_days: read
                    .small("procedure.review_extended_working_days")?,
                district_decision_working_days: read
                    .small("procedure.district_decision_working_days")?,
                investigation_start_working_days: read
                    .small("procedure.investigation_start_working_days")?,
                refusal_notice_working_days: read.small("procedure.refusal_notice_working_days")?,
                check_response_working_days: read.small("procedure.check_response_working_days")?,
                re_review_months_stable_income: read
                    .small("procedure.re_review_months_stable_income")?,
                re_review_months_variable_income: read
                    .small("procedure.re_review_months_variable_income")?,
                tekun: TekunProcedureParameters {
                    street_town_working_days: read
                        .small("procedure.tekun_street_town_working_days")?,
                    county_working_days: read.small("procedure.tekun_county_working_days")?,
                    county_home_visit_share_basis_points: read
                        .basis_points("procedure.tekun_county_home_visit_share")?,
                },
            },
            integration: IntegrationParameters {
                duplicate_kinds: set
                    .item_list("integration.duplicate_kinds", as_of)?
                    .to_vec(),
                duplicate_min_overlap_months: read
                    .small("integration.duplicate_min_overlap_months")?,
                monitoring_warning_working_days: read
                    .small("integration.monitoring_warning_working_days")?,
            },
            excluded_income: IncomeKindSet::from_codes(
                &read.item_list("income.excluded_item_kinds")?,
            ),
            dibao: DibaoParameters {
                urban_standard_monthly: read.money("dibao.urban_standard_monthly")?,
                rural_standard_monthly: read.money("dibao.rural_standard_monthly")?,
                amount_method,
                tiers,
                asset_limit_months_of_standard: read
                    .integer("dibao.asset_limit_months_of_standard")?,
                max_non_essential_vehicles: read.small("dibao.max_non_essential_vehicles")?,
                max_extra_housing_units: read.small("dibao.max_extra_housing_units")?,
            },
            tekun: TekunParameters {
                elderly_min_age: read.age("tekun.elderly_min_age")?,
                minor_age_limit: read.age("tekun.minor_age_limit")?,
                qualifying_grade_intellectual_or_mental: read
                    .grade("tekun.qualifying_grade_intellectual_or_mental")?,
                qualifying_grade_physical: read.grade("tekun.qualifying_grade_physical")?,
                qualifying_grade_visual: read.grade("tekun.qualifying_grade_visual")?,
                qualifying_grade_hearing_or_speech: read
                    .grade("tekun.qualifying_grade_hearing_or_speech")?,
                qualifying_grade_multiple: read.grade("tekun.qualifying_grade_multiple")?,
                max_counted_income_monthly: read.money("tekun.max_counted_income_monthly")?,
                basic_living_standard_monthly: read.money("tekun.basic_living_standard_monthly")?,
                care_standard_partially_unable_monthly: read
                    .money("tekun.care_standard_partially_unable_monthly")?,
                care_standard_unable_monthly: read.money("tekun.care_standard_unable_monthly")?,
                urban_residents_covered: read.flag("tekun.urban_residents_covered")?,
            },
            temporary: TemporaryParameters {
                emergency_base_per_person: read.money("temporary.emergency_base_per_person")?,
                expense_base_per_person: read.money("temporary.expense_base_per_person")?,
                min_coefficient_unlisted_basis_points: read
                    .basis_points("temporary.min_coefficient_unlisted")?,
                cap_per_event_emergency: read.money("temporary.cap_per_event_emergency")?,
                cap_per_event_expense: read.money("temporary.cap_per_event_expense")?,
                annual_cap_per_household: read.money("temporary.annual_cap_per_household")?,
                assist_first_cap: read.money("temporary.assist_first_cap")?,
            },
            hardship: HardshipParameters {
                weight_income_gap: read.basis_points("hardship.weight_income_gap")?,
                weight_disabled_members: read.basis_points("hardship.weight_disabled_members")?,
                weight_serious_illness: read.basis_points("hardship.weight_serious_illness")?,
                weight_members_aged_80_plus: read
                    .basis_points("hardship.weight_members_aged_80_plus")?,
                weight_minors_in_school: read.basis_points("hardship.weight_minors_in_school")?,
                weight_single_parent: read.basis_points("hardship.weight_single_parent")?,
                weight_disaster_loss: read.basis_points("hardship.weight_disaster_loss")?,
                weight_medical_burden: read.basis_points("hardship.weight_medical_burden")?,
                full_at_members: read.integer("hardship.full_at_members")?.max(1),
                disaster_loss_full_at: read.money("hardship.disaster_loss_full_at")?,
                medical_burden_full_at: read.money("hardship.medical_burden_full_at")?,
                level_relatively_severe_from: read
                    .basis_points("hardship.level_relatively_severe_from")?,
                level_severe_from: read.basis_points("hardship.level_severe_from")?,
            },
            medical_serious_illness: SeriousIllnessParameters {
                share_tekun: read.basis_points("medical_serious_illness.share_tekun")?,
                share_dibao: read.basis_points("medical_serious_illness.share_dibao")?,
                share_low_income: read.basis_points("medical_serious_illness.share_low_income")?,
                deductible_tekun: read.money("medical_serious_illness.deductible_tekun")?,
                deductible_dibao: read.money("medical_serious_illness.deductible_dibao")?,
                deductible_low_income: read
                    .money("medical_serious_illness.deductible_low_income")?,
                annual_cap_per_person: read
                    .money("medical_serious_illness.annual_cap_per_person")?,
            },
            medical_insurance: MedicalInsuranceParameters {
                rural_cooperative_premium_subsidy_annual: read
                    .money("medical_insurance.rural_cooperative_premium_subsidy_annual")?,
                urban_resident_premium_subsidy_annual: read
                    .money("medical_insurance.urban_resident_premium_subsidy_annual")?,
                rural_cooperative_personal_premium_annual: read
                    .money("medical_insurance.rural_cooperative_personal_premium_annual")?,
                severe_veteran_grade_max: read
                    .grade("medical_insurance.severe_veteran_grade_max")?,
            },
            old_age_subsidy: OldAgeSubsidyParameters {
                min_age: read.age("old_age_subsidy.min_age")?,
                monthly_amount_by_age: read.tiers("old_age_subsidy.monthly_amount_by_age")?,
            },
            longevity: LongevityParameters {
                min_age: read.age("longevity.min_age")?,
                centenarian_age: read.age("longevity.centenarian_age")?,
                min_residence_years: read.age("longevity.min_residence_years")?,
                centenarian_residence_carries_over: read
                    .flag("longevity.centenarian_residence_carries_over")?,
                centenarian_pension_carries_over: read
                    .flag("longevity.centenarian_pension_carries_over")?,
                monthly_amount_by_age: read.tiers("longevity.monthly_amount_by_age")?,
            },
            home_care: HomeCareParameters {
                min_age: read.age("home_care.min_age")?,
                free_service_value_monthly: read.money("home_care.free_service_value_monthly")?,
                low_cost_subsidy_monthly: read.money("home_care.low_cost_subsidy_monthly")?,
            },
            family_planning: FamilyPlanningParameters {
                born_on_or_after: read.date("family_planning.born_on_or_after")?,
                no_violation_since: read.date("family_planning.no_violation_since")?,
                reward_age: read.age("family_planning.reward_age")?,
                two_daughter_sterilised_age: read
                    .age("family_planning.two_daughter_sterilised_age")?,
                bereaved_wife_min_age: read.age("family_planning.bereaved_wife_min_age")?,
                disabled_child_wife_min_age: read
                    .age("family_planning.disabled_child_wife_min_age")?,
                rural_reward_annual: read.money("family_planning.rural_reward_annual")?,
                two_daughter_sterilised_reward_annual: read
                    .money("family_planning.two_daughter_sterilised_reward_annual")?,
                only_child_died_support_annual: read
                    .money("family_planning.only_child_died_support_annual")?,
                only_child_disabled_support_annual: read
                    .money("family_planning.only_child_disabled_support_annual")?,
                urban_only_child_reward_annual: read
                    .money("family_planning.urban_only_child_reward_annual")?,
                single_father_counts_former_wife_age: read
                    .choice("family_planning.single_father_age_basis")?
                    == "former_wife_age",
            },
            entitled_subsidy: EntitledSubsidyParameters {
                disabled_veteran_monthly_by_grade: read
                    .tiers("entitled_subsidy.disabled_veteran_monthly_by_grade")?,
                martyr_family_monthly: read.money("entitled_subsidy.martyr_family_monthly")?,
                sacrificed_on_duty_family_monthly: read
                    .money("entitled_subsidy.sacrificed_on_duty_family_monthly")?,
                died_of_illness_family_monthly: read
                    .money("entitled_subsidy.died_of_illness_family_monthly")?,
                old_demobilised_monthly: read.money("entitled_subsidy.old_demobilised_monthly")?,
                returned_with_illness_monthly: read
                    .money("entitled_subsidy.returned_with_illness_monthly")?,
                war_veteran_monthly: read.money("entitled_subsidy.war_veteran_monthly")?,
            },
            education: EducationParameters {
                boarding_allowance_primary_annual: read
                    .money("education.boarding_allowance_primary_annual")?,
                boarding_allowance_junior_annual: read
                    .money("education.boarding_allowance_junior_annual")?,
                vocational_grant_last_year: read.grade("education.vocational_grant_last_year")?,
                vocational_grant_annual: read.money("education.vocational_grant_annual")?,
                high_school_grant_annual: read.money("education.high_school_grant_annual")?,
                spring_bud_grant_annual: read.money("education.spring_bud_grant_annual")?,
            },
            employment: EmploymentParameters {
                min_age: read.age("employment.min_age")?,
                age_limit: read.age("employment.age_limit")?,
                training_subsidy_one_off: read.money("employment.training_subsidy_one_off")?,
                public_welfare_post_subsidy_years: read
                    .age("employment.public_welfare_post_subsidy_years")?,
                public_welfare_post_social_insurance_subsidy_monthly: read
                    .money("employment.public_welfare_post_social_insurance_subsidy_monthly")?,
                public_welfare_post_subsidy_monthly: read
                    .money("employment.public_welfare_post_subsidy_monthly")?,
            },
            housing_urban: HousingUrbanParameters {
                income_limit_per_capita_monthly: read
                    .money("housing_urban.income_limit_per_capita_monthly")?,
                max_floor_area_per_capita: read.small("housing_urban.max_floor_area_per_capita")?,
                rent_subsidy_per_person_monthly: read
                    .money("housing_urban.rent_subsidy_per_person_monthly")?,
                rent_subsidy_share_dibao_or_tekun: read
                    .basis_points("housing_urban.rent_subsidy_share_dibao_or_tekun")?,
                rent_subsidy_share_other: read
                    .basis_points("housing_urban.rent_subsidy_share_other")?,
            },
            housing_rural: HousingRuralParameters {
                rebuild_subsidy: read.money("housing_rural.rebuild_subsidy")?,
                repair_subsidy: read.money("housing_rural.repair_subsidy")?,
            },
            disaster: DisasterParameters {
                claim_window_days: read.integer("disaster.claim_window_days")?,
                emergency_living_per_person: read.money("disaster.emergency_living_per_person")?,
                transitional_living_per_person_per_day: read
                    .money("disaster.transitional_living_per_person_per_day")?,
                transitional_max_days: read.small("disaster.transitional_max_days")?,
                rebuild_subsidy_per_household: read
                    .money("disaster.rebuild_subsidy_per_household")?,
                repair_subsidy_per_household: read
                    .money("disaster.repair_subsidy_per_household")?,
            },
            party_member_aid: PartyMemberAidParameters {
                founding_date: read.date("party_member_aid.founding_date")?,
                pre_founding_member_annual: read
                    .money("party_member_aid.pre_founding_member_annual")?,
                needy_member_visit_annual: read
                    .money("party_member_aid.needy_member_visit_annual")?,
            },
            reservoir_migrant: ReservoirMigrantParameters {
                policy_start: read.date("reservoir_migrant.policy_start")?,
                support_years: read.age("reservoir_migrant.support_years")?,
                annual_per_person: read.money("reservoir_migrant.annual_per_person")?,
            },
            transferred_cadre: TransferredCadreParameters {
                living_subsidy_monthly: read.money("transferred_cadre.living_subsidy_monthly")?,
                medical_support_monthly: read.money("transferred_cadre.medical_support_monthly")?,
            },
            near_dibao: NearDibaoParameters {
                in_force_from: read.date("near_dibao.in_force_from")?,
                income_multiple_basis_points: read.basis_points("near_dibao.income_multiple")?,
                asset_limit_months_of_standard: read
                    .integer("near_dibao.asset_limit_months_of_standard")?,
                individual_enrolment_disability_grade_max: read
                    .grade("near_dibao.individual_enrolment_disability_grade_max")?,
            },
            rigid_expenditure: RigidExpenditureParameters {
                income_limit_per_capita_monthly: read
                    .money("rigid_expenditure.income_limit_per_capita_monthly")?,
            },
        })
    }

    /// The dibao standard (per person per month) for a hukou type.
    pub fn dibao_standard(&self, hukou_type: crate::facts::HukouType) -> Money {
        match hukou_type {
            crate::facts::HukouType::Urban => self.dibao.urban_standard_monthly,
            crate::facts::HukouType::Rural => self.dibao.rural_standard_monthly,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tier_amount_takes_the_highest_tier_reached() {
        let tiers = vec![
            (90, Money::from_fen(10_000)),
            (100, Money::from_fen(50_000)),
        ];
        assert_eq!(tier_amount(&tiers, 89), None);
        assert_eq!(tier_amount(&tiers, 90), Some(Money::from_fen(10_000)));
        assert_eq!(tier_amount(&tiers, 99), Some(Money::from_fen(10_000)));
        assert_eq!(tier_amount(&tiers, 100), Some(Money::from_fen(50_000)));
        assert_eq!(tier_amount(&tiers, 130), Some(Money::from_fen(50_000)));
    }
}
