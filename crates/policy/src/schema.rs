//! The schema of the parameter files: which sections exist, which file holds each, and the
//! name and kind of every parameter.
//!
//! This module owns [`SECTIONS`], [`PARAMETERS`] and [`ParameterKind`]. The loader refuses any
//! key not listed here and any listed parameter that is absent, so the files and the rules can
//! never drift apart silently.

use crate::facts::IncomeKind;

/// A `[section]` of the parameter files and the file that must hold it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SectionDefinition {
    pub name: &'static str,
    pub file: &'static str,
}

/// How a parameter's `value` is written and what it may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParameterKind {
    /// Yuan as text with at most two decimals, `"980.00"`; never negative.
    Money,
    /// A whole number from 0 to `max` (ages, days, months, counts, grades).
    Count { max: i64 },
    /// A percent as text with at most two decimals, `"70%"`, `"12.5%"`; held in basis points;
    /// from 0% to `max_basis_points`.
    Percent { max_basis_points: i64 },
    /// A coefficient as text with at most two decimals, `"1.30"`; held in basis points.
    Coefficient,
    /// `true` or `false`.
    Flag,
    /// One of the listed words.
    Choice(&'static [&'static str]),
    /// A list of distinct words, each one of the listed words.
    ItemList(&'static [&'static str]),
    /// A TOML date, `1933-01-01`.
    Date,
    /// A 12-digit division code of district tier.
    DivisionCode,
    /// Free text.
    Text,
    /// `[{ at_least = 90, yuan = "100.00" }, …]`: whole-number lower bounds, strictly ascending,
    /// each with an amount.
    IntegerMoneyTiers,
    /// `[{ at_least = "0%", pay = "30%" }, …]`: percent lower bounds, strictly ascending, the
    /// first at 0%, with pay that never falls as the bound rises.
    ShareTiers,
}

impl ParameterKind {
    /// How the value is written, for error messages.
    pub fn expected(&self) -> &'static str {
        match self {
            ParameterKind::Money => "yuan as text, e.g. \"980.00\"",
            ParameterKind::Count { .. } => "a whole number",
            ParameterKind::Percent { .. } => "a percent as text, e.g. \"70%\"",
            ParameterKind::Coefficient => "a coefficient as text, e.g. \"1.30\"",
            ParameterKind::Flag => "true or false",
            ParameterKind::Choice(_) => "one of the allowed words",
            ParameterKind::ItemList(_) => "a list of allowed words",
            ParameterKind::Date => "a date, e.g. 1933-01-01",
            ParameterKind::DivisionCode => "a 12-digit district division code as text",
            ParameterKind::Text => "text",
            ParameterKind::IntegerMoneyTiers => {
                "a list of { at_least = <whole number>, yuan = \"<amount>\" }"
            }
            ParameterKind::ShareTiers => {
                "a list of { at_least = \"<percent>\", pay = \"<percent>\" }"
            }
        }
    }
}

/// One parameter: its full name `section.key` and its kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParameterDefinition {
    pub name: &'static str,
    pub kind: ParameterKind,
}

impl ParameterDefinition {
    pub fn section(&self) -> &'static str {
        match self.name.split_once('.') {
            Some((section, _key)) => section,
            None => self.name,
        }
    }

    pub fn key(&self) -> &'static str {
        match self.name.split_once('.') {
            Some((_section, key)) => key,
            None => self.name,
        }
    }
}

/// Every section, with its file. A file may hold several sections; a section lives in one file.
pub const SECTIONS: &[SectionDefinition] = &[
    SectionDefinition {
        name: "district",
        file: "district.toml",
    },
    SectionDefinition {
        name: "procedure",
        file: "procedure.toml",
    },
    // ---- department integration: duplicates and monitoring (issue 13) ----
    SectionDefinition {
        name: "integration",
        file: "integration.toml",
    },
    SectionDefinition {
        name: "income",
        file: "income.toml",
    },
    SectionDefinition {
        name: "dibao",
        file: "dibao.toml",
    },
    // Issue 20 item 10.
    SectionDefinition {
        name: "near_dibao",
        file: "low_income.toml",
    },
    SectionDefinition {
        name: "rigid_expenditure",
        file: "low_income.toml",
    },
    SectionDefinition {
        name: "tekun",
        file: "tekun.toml",
    },
    SectionDefinition {
        name: "temporary",
        file: "temporary.toml",
    },
    SectionDefinition {
        name: "hardship",
        file: "hardship.toml",
    },
    SectionDefinition {
        name: "medical_serious_illness",
        file: "medical.toml",
    },
    SectionDefinition {
        name: "medical_insurance",
        file: "medical.toml",
    },
    SectionDefinition {
        name: "old_age_subsidy",
        file: "elderly.toml",
    },
    SectionDefinition {
        name: "longevity",
        file: "elderly.toml",
    },
    SectionDefinition {
        name: "home_care",
        file: "elderly.toml",
    },
    SectionDefinition {
        name: "family_planning",
        file: "family_planning.toml",
    },
    SectionDefinition {
        name: "entitled_subsidy",
        file: "entitled.toml",
    },
    SectionDefinition {
        name: "education",
        file: "education.toml",
    },
    SectionDefinition {
        name: "employment",
        file: "employment.toml",
    },
    SectionDefinition {
        name: "housing_urban",
        file: "housing.toml",
    },
    SectionDefinition {
        name: "housing_rural",
        file: "housing.toml",
    },
    SectionDefinition {
        name: "disaster",
        file: "disaster.toml",
    },
    SectionDefinition {
        name: "party_member_aid",
        file: "other.toml",
    },
    SectionDefinition {
        name: "reservoir_migrant",
        file: "other.toml",
    },
    SectionDefinition {
        name: "transferred_cadre",
        file: "other.toml",
    },
];

/// The program catalogue's file; it has its own format (see [`crate::catalogue`]).
pub const CATALOGUE_FILE: &str = "catalogue.toml";

const AGE: ParameterKind = ParameterKind::Count { max: 150 };
const DAYS: ParameterKind = ParameterKind::Count { max: 3660 };
const MONTHS: ParameterKind = ParameterKind::Count { max: 120 };
const YEARS: ParameterKind = ParameterKind::Count { max: 100 };
const COUNT: ParameterKind = ParameterKind::Count { max: 1000 };
const GRADE: ParameterKind = ParameterKind::Count { max: 10 };
const SHARE: ParameterKind = ParameterKind::Percent {
    max_basis_points: 10_000,
};
const WEIGHT: ParameterKind = ParameterKind::Percent {
    max_basis_points: 100_000,
};
const MONEY: ParameterKind = ParameterKind::Money;

const fn parameter(name: &'static str, kind: ParameterKind) -> ParameterDefinition {
    ParameterDefinition { name, kind }
}

/// The dibao amount methods a district can choose.
pub const DIBAO_AMOUNT_METHODS: &[&str] = &["difference", "tier"];

/// Whose age a single father's family-planning support counts (issue 20 item 3).
pub const SINGLE_FATHER_AGE_BASES: &[&str] = &["own_age", "former_wife_age"];

/// The kinds of a department's assistance record (department integration's `records::KINDS`).
pub const RECORD_KINDS: &[&str] = &["cash", "in_kind", "service", "fee_exemption", "subsidy"];

/// Every parameter the rules read.
pub const PARAMETERS: &[ParameterDefinition] = &[
    parameter("district.division_code", ParameterKind::DivisionCode),
    parameter("district.name_zh", ParameterKind::Text),
    parameter("district.name_en", ParameterKind::Text),
    parameter("procedure.publicity_days", DAYS),
    parameter("procedure.review_working_days", DAYS),
    parameter("procedure.review_extended_working_days", DAYS),
    parameter("procedure.district_decision_working_days", DAYS),
    parameter("procedure.investigation_start_working_days", DAYS),
    parameter("procedure.refusal_notice_working_days", DAYS),
    parameter("procedure.check_response_working_days", DAYS),
    // ---- the 特困 procedure (issue 20 item 11) ----
    parameter("procedure.tekun_street_town_working_days", DAYS),
    parameter("procedure.tekun_county_working_days", DAYS),
    parameter("procedure.tekun_county_home_visit_share", SHARE),
    // ---- department integration: duplicates and monitoring (issue 13) ----
    parameter(
        "integration.duplicate_kinds",
        ParameterKind::ItemList(RECORD_KINDS),
    ),
    parameter("integration.duplicate_min_overlap_months", MONTHS),
    parameter("integration.monitoring_warning_working_days", DAYS),
    parameter("procedure.re_review_months_stable_income", MONTHS),
    parameter("procedure.re_review_months_variable_income", MONTHS),
    parameter(
        "income.excluded_item_kinds",
        ParameterKind::ItemList(IncomeKind::CODES),
    ),
    parameter("dibao.urban_standard_monthly", MONEY),
    parameter("dibao.rural_standard_monthly", MONEY),
    parameter(
        "dibao.amount_method",
        ParameterKind::Choice(DIBAO_AMOUNT_METHODS),
    ),
    parameter("dibao.tiers", ParameterKind::ShareTiers),
    parameter("dibao.asset_limit_months_of_standard", MONTHS),
    parameter("dibao.max_non_essential_vehicles", COUNT),
    parameter("dibao.max_extra_housing_units", COUNT),
    // Issue 20 item 4: urban and rural 特困, or the seed's rural 五保 only.
    parameter("tekun.urban_residents_covered", ParameterKind::Flag),
    parameter("tekun.elderly_min_age", AGE),
    parameter("tekun.minor_age_limit", AGE),
    parameter("tekun.qualifying_grade_intellectual_or_mental", GRADE),
    parameter("tekun.qualifying_grade_physical", GRADE),
    parameter("tekun.qualifying_grade_visual", GRADE),
    parameter("tekun.qualifying_grade_hearing_or_speech", GRADE),
    parameter("tekun.qualifying_grade_multiple", GRADE),
    parameter("tekun.max_counted_income_monthly", MONEY),
    parameter("tekun.basic_living_standard_monthly", MONEY),
    parameter("tekun.care_standard_partially_unable_monthly", MONEY),
    parameter("tekun.care_standard_unable_monthly", MONEY),
    parameter("temporary.emergency_base_per_person", MONEY),
    parameter("temporary.expense_base_per_person", MONEY),
    parameter(
        "temporary.min_coefficient_unlisted",
        ParameterKind::Coefficient,
    ),
    parameter("temporary.cap_per_event_emergency", MONEY),
    parameter("temporary.cap_per_event_expense", MONEY),
    parameter("temporary.annual_cap_per_household", MONEY),
    parameter("temporary.assist_first_cap", MONEY),
    parameter("hardship.weight_income_gap", WEIGHT),
    parameter("hardship.weight_disabled_members", WEIGHT),
    parameter("hardship.weight_serious_illness", WEIGHT),
    parameter("hardship.weight_members_aged_80_plus", WEIGHT),
    parameter("hardship.weight_minors_in_school", WEIGHT),
    parameter("hardship.weight_single_parent", WEIGHT),
    parameter("hardship.weight_disaster_loss", WEIGHT),
    parameter("hardship.weight_medical_burden", WEIGHT),
    parameter("hardship.full_at_members", ParameterKind::Count { max: 20 }),
    parameter("hardship.disaster_loss_full_at", MONEY),
    parameter("hardship.medical_burden_full_at", MONEY),
    parameter(
        "hardship.level_relatively_severe_from",
        ParameterKind::Coefficient,
    ),
    parameter("hardship.level_severe_from", ParameterKind::Coefficient),
    parameter("medical_serious_illness.share_tekun", SHARE),
    parameter("medical_serious_illness.share_dibao", SHARE),
    parameter("medical_serious_illness.share_low_income", SHARE),
    parameter("medical_serious_illness.deductible_tekun", MONEY),
    parameter("medical_serious_illness.deductible_dibao", MONEY),
    parameter("medical_serious_illness.deductible_low_income", MONEY),
    parameter("medical_serious_illness.annual_cap_per_person", MONEY),
    parameter(
        "medical_insurance.rural_cooperative_premium_subsidy_annual",
        MONEY,
    ),
    parameter(
        "medical_insurance.urban_resident_premium_subsidy_annual",
        MONEY,
    ),
    parameter(
        "medical_insurance.rural_cooperative_personal_premium_annual",
        MONEY,
    ),
    parameter("medical_insurance.severe_veteran_grade_max", GRADE),
    parameter("old_age_subsidy.min_age", AGE),
    parameter(
        "old_age_subsidy.monthly_amount_by_age",
        ParameterKind::IntegerMoneyTiers,
    ),
    parameter("longevity.min_age", AGE),
    parameter("longevity.centenarian_age", AGE),
    parameter("longevity.min_residence_years", YEARS),
    // Issue 20 item 1: which conditions of the 90–99 rule carry over to the 100+ tier.
    parameter(
        "longevity.centenarian_residence_carries_over",
        ParameterKind::Flag,
    ),
    parameter(
        "longevity.centenarian_pension_carries_over",
        ParameterKind::Flag,
    ),
    parameter(
        "longevity.monthly_amount_by_age",
        ParameterKind::IntegerMoneyTiers,
    ),
    parameter("home_care.min_age", AGE),
    parameter("home_care.free_service_value_monthly", MONEY),
    parameter("home_care.low_cost_subsidy_monthly", MONEY),
    parameter("family_planning.born_on_or_after", ParameterKind::Date),
    parameter("family_planning.no_violation_since", ParameterKind::Date),
    parameter("family_planning.reward_age", AGE),
    parameter("family_planning.two_daughter_sterilised_age", AGE),
    parameter("family_planning.bereaved_wife_min_age", AGE),
    parameter("family_planning.disabled_child_wife_min_age", AGE),
    parameter("family_planning.rural_reward_annual", MONEY),
    parameter(
        "family_planning.two_daughter_sterilised_reward_annual",
        MONEY,
    ),
    parameter("family_planning.only_child_died_support_annual", MONEY),
    parameter("family_planning.only_child_disabled_support_annual", MONEY),
    parameter("family_planning.urban_only_child_reward_annual", MONEY),
    // Issue 20 item 3: whose age a single father's clause 3/4 counts.
    parameter(
        "family_planning.single_father_age_basis",
        ParameterKind::Choice(SINGLE_FATHER_AGE_BASES),
    ),
    parameter(
        "entitled_subsidy.disabled_veteran_monthly_by_grade",
        ParameterKind::IntegerMoneyTiers,
    ),
    parameter("entitled_subsidy.martyr_family_monthly", MONEY),
    parameter("entitled_subsidy.sacrificed_on_duty_family_monthly", MONEY),
    parameter("entitled_subsidy.died_of_illness_family_monthly", MONEY),
    parameter("entitled_subsidy.old_demobilised_monthly", MONEY),
    parameter("entitled_subsidy.returned_with_illness_monthly", MONEY),
    parameter("entitled_subsidy.war_veteran_monthly", MONEY),
    parameter("education.boarding_allowance_primary_annual", MONEY),
    parameter("education.boarding_allowance_junior_annual", MONEY),
    parameter(
        "education.vocational_grant_last_year",
        ParameterKind::Count { max: 6 },
    ),
    parameter("education.vocational_grant_annual", MONEY),
    parameter("education.high_school_grant_annual", MONEY),
    parameter("education.spring_bud_grant_annual", MONEY),
    parameter("employment.min_age", AGE),
    parameter("employment.age_limit", AGE),
    parameter("employment.training_subsidy_one_off", MONEY),
    // Issue 20 item 7: public-welfare posts.
    parameter("employment.public_welfare_post_subsidy_years", YEARS),
    parameter(
        "employment.public_welfare_post_social_insurance_subsidy_monthly",
        MONEY,
    ),
    parameter("employment.public_welfare_post_subsidy_monthly", MONEY),
    parameter("housing_urban.income_limit_per_capita_monthly", MONEY),
    parameter(
        "housing_urban.max_floor_area_per_capita",
        ParameterKind::Count { max: 1000 },
    ),
    parameter("housing_urban.rent_subsidy_per_person_monthly", MONEY),
    parameter("housing_urban.rent_subsidy_share_dibao_or_tekun", SHARE),
    parameter("housing_urban.rent_subsidy_share_other", SHARE),
    parameter("housing_rural.rebuild_subsidy", MONEY),
    parameter("housing_rural.repair_subsidy", MONEY),
    parameter("disaster.claim_window_days", DAYS),
    parameter("disaster.emergency_living_per_person", MONEY),
    parameter("disaster.transitional_living_per_person_per_day", MONEY),
    parameter("disaster.transitional_max_days", DAYS),
    parameter("disaster.rebuild_subsidy_per_household", MONEY),
    parameter("disaster.repair_subsidy_per_household", MONEY),
    parameter("party_member_aid.founding_date", ParameterKind::Date),
    parameter("party_member_aid.pre_founding_member_annual", MONEY),
    parameter("party_member_aid.needy_member_visit_annual", MONEY),
    parameter("reservoir_migrant.policy_start", ParameterKind::Date),
    parameter("reservoir_migrant.support_years", YEARS),
    parameter("reservoir_migrant.annual_per_person", MONEY),
    parameter("transferred_cadre.living_subsidy_monthly", MONEY),
    // Issue 20 item 8.
    parameter("transferred_cadre.medical_support_monthly", MONEY),
    // Issue 20 item 10: near-dibao and rigid-expenditure hardship households.
    parameter("near_dibao.in_force_from", ParameterKind::Date),
    parameter("near_dibao.income_multiple", ParameterKind::Coefficient),
    parameter("near_dibao.asset_limit_months_of_standard", MONTHS),
    parameter(
        "near_dibao.individual_enrolment_disability_grade_max",
        GRADE,
    ),
    parameter("rigid_expenditure.income_limit_per_capita_monthly", MONEY),
];

/// The definition of a parameter by full name.
pub fn parameter_definition(name: &str) -> Option<&'static ParameterDefinition> {
    PARAMETERS.iter().find(|definition| definition.name == name)
}

/// The definition of a section by name.
pub fn section_definition(name: &str) -> Option<&'static SectionDefinition> {
    SECTIONS.iter().find(|section| section.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_parameter_belongs_to_a_known_section_and_names_are_unique() {
        for (index, definition) in PARAMETERS.iter().enumerate() {
            assert!(
                section_definition(definition.section()).is_some(),
                "{} has no section",
                definition.name
            );
            assert!(definition.name.contains('.'), "{}", definition.name);
            for other in &PARAMETERS[index + 1..] {
                assert_ne!(definition.name, other.name);
            }
        }
        for section in SECTIONS {
            assert!(
                PARAMETERS
                    .iter()
                    .any(|definition| definition.section() == section.name),
                "section {} has no parameters",
                section.name
            );
        }
    }
}
