//! The facts about a household that the rules read.
//!
//! This module owns [`HouseholdFacts`], [`MemberFacts`] and the small enums that describe them.
//! They are this crate's own input type (a service maps its registry into it) with a stable
//! serde form, so a household can be written in a TOML or JSON file and evaluated by the
//! `sunshine-policy` command. [`HouseholdFacts::validate`] checks the facts' own consistency.

use serde::{Deserialize, Serialize};
use sunshine_domain::{Money, OrgUnitCode, Sex};
use time::Date;

use crate::dates::{iso_date, optional_iso_date};

/// 户 / 家庭 (household): the facts about one household (共同生活家庭成员) as of the evaluation
/// date. Amounts are fen; monthly income items are per month.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HouseholdFacts {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub household_id: Option<String>,
    /// 户籍所在地: the village-community (or street-town) where the household's hukou is
    /// registered. "我区常住户口" means a code under the district's division code.
    pub hukou_org_unit: OrgUnitCode,
    /// Where the household lives (居住地), when not where its hukou is registered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub residence_org_unit: Option<OrgUnitCode>,
    pub members: Vec<MemberFacts>,
    #[serde(default)]
    pub assets: AssetFacts,
    /// The assistance the household already receives, as certified (低保、特困、低收入).
    #[serde(default)]
    pub recipient_category: RecipientCategory,
    /// 城镇居民最低生活保障证: the household holds the city dibao certificate.
    #[serde(default)]
    pub holds_urban_dibao_certificate: bool,
    /// 单亲家庭: one parent lives with the minor children.
    #[serde(default)]
    pub single_parent: bool,
    /// 空巢: the elderly members live without their children.
    #[serde(default)]
    pub empty_nest: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub family_planning: Option<FamilyPlanningFacts>,
    /// A sudden event or rigid expense for which temporary assistance is sought.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub emergency: Option<EmergencyFacts>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disaster: Option<DisasterFacts>,
    /// A claim for serious-illness medical assistance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub medical_claim: Option<MedicalClaimFacts>,
    /// Out-of-pocket medical cost of all members so far this calendar year, after insurance.
    #[serde(default)]
    pub annual_medical_out_of_pocket: Money,
    /// Issue 20 item 10: necessary education spending of the last 12 months (教育刚性支出).
    #[serde(default)]
    pub annual_education_spending: Money,
    /// Issue 20 item 10: other necessary spending of the last 12 months recognised by the
    /// district (e.g. care of a severely disabled member).
    #[serde(default)]
    pub annual_other_rigid_spending: Money,
    /// Temporary assistance already paid to the household this calendar year.
    #[serde(default)]
    pub temporary_assistance_paid_this_year: Money,
    #[serde(default)]
    pub housing: HousingFacts,
}

/// 家庭成员 (member): one member of the household.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemberFacts {
    /// A label for explanations (e.g. "head", "grandmother"); never an id number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    pub relation: Relation,
    pub sex: Sex,
    #[serde(with = "iso_date")]
    pub birth_date: Date,
    pub hukou_type: HukouType,
    /// 常住户口 since: the date from which the member's permanent registered residence has been
    /// in the district; absent if the member is not a permanent resident of the district.
    #[serde(
        default,
        with = "optional_iso_date",
        skip_serializing_if = "Option::is_none"
    )]
    pub resident_since: Option<Date>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disability: Option<Disability>,
    #[serde(default)]
    pub labour_capacity: LabourCapacity,
    #[serde(default)]
    pub self_care: SelfCareAbility,
    #[serde(default)]
    pub pension: PensionStatus,
    /// 法定赡养、抚养、扶养义务人 able to support the member.
    #[serde(default)]
    pub has_able_supporter: bool,
    /// Diagnosed with a serious illness (重特大疾病) recognised by the district.
    #[serde(default)]
    pub serious_illness: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entitled_group: Option<EntitledGroup>,
    /// 入党日期: date of joining the Communist Party of China.
    #[serde(
        default,
        with = "optional_iso_date",
        skip_serializing_if = "Option::is_none"
    )]
    pub party_member_since: Option<Date>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reservoir_migrant: Option<ReservoirMigrant>,
    /// 企业军转干部: a military cadre transferred to an enterprise.
    #[serde(default)]
    pub enterprise_transferred_cadre: bool,
    /// 独生子女父母光荣证: holds the only-child parents' honour certificate.
    #[serde(default)]
    pub only_child_certificate: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub school: Option<Schooling>,
    #[serde(default)]
    pub employment: EmploymentFacts,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub monthly_income: Vec<IncomeItem>,
}

/// Relation to the head of household (户主).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Relation {
    Head,
    Spouse,
    Child,
    Parent,
    Grandchild,
    Grandparent,
    Sibling,
    Other,
}

/// 户籍 (城镇/农村) hukou type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HukouType {
    Urban,
    Rural,
}

impl HukouType {
    pub fn as_str(self) -> &'static str {
        match self {
            HukouType::Urban => "urban",
            HukouType::Rural => "rural",
        }
    }
}

/// 残疾类别 disability category, as on the disabled person's certificate (残疾人证).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DisabilityCategory {
    Visual,
    Hearing,
    Speech,
    Physical,
    Intellectual,
    Mental,
    Multiple,
}

/// A disability: category and grade (残疾等级 1–4, 1 the most severe).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Disability {
    pub category: DisabilityCategory,
    pub grade: u8,
}

impl Disability {
    /// Grades 1 and 2 (一、二级, 重度残疾).
    pub fn is_severe(&self) -> bool {
        self.grade <= 2
    }
}

/// 劳动能力 labour capacity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LabourCapacity {
    #[default]
    Full,
    Partial,
    None,
}

impl LabourCapacity {
    pub fn as_str(self) -> &'static str {
        match self {
            LabourCapacity::Full => "full",
            LabourCapacity::Partial => "partial",
            LabourCapacity::None => "none",
        }
    }
}

/// 生活自理能力 self-care ability.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SelfCareAbility {
    #[default]
    Able,
    PartiallyUnable,
    Unable,
}

/// Pension status: 离退休金 is a retirement pension from employment; the urban-rural residents'
/// basic pension (城乡居民养老金) is not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PensionStatus {
    #[default]
    None,
    ResidentBasicPension,
    RetirementPension,
}

impl PensionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            PensionStatus::None => "none",
            PensionStatus::ResidentBasicPension => "resident_basic_pension",
            PensionStatus::RetirementPension => "retirement_pension",
        }
    }
}

/// 优抚对象 category of an entitled person.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntitledCategory {
    /// 残疾军人 disabled veteran (with a grade 1–10).
    DisabledVeteran,
    /// 烈士遗属 family of a martyr.
    MartyrFamily,
    /// 因公牺牲军人遗属 family of a soldier who died on duty.
    SacrificedOnDutyFamily,
    /// 病故军人遗属 family of a soldier who died of illness.
    DiedOfIllnessFamily,
    /// 老复员军人 old demobilised soldier.
    OldDemobilised,
    /// 带病回乡退伍军人 veteran who returned home with an illness.
    ReturnedWithIllness,
    /// 参战退役人员 veteran of combat.
    WarVeteran,
}

impl EntitledCategory {
    pub fn as_str(self) -> &'static str {
        match self {
            EntitledCategory::DisabledVeteran => "disabled_veteran",
            EntitledCategory::MartyrFamily => "martyr_family",
            EntitledCategory::SacrificedOnDutyFamily => "sacrificed_on_duty_family",
            EntitledCategory::DiedOfIllnessFamily => "died_of_illness_family",
            EntitledCategory::OldDemobilised => "old_demobilised",
            EntitledCategory::ReturnedWithIllness => "returned_with_illness",
            EntitledCategory::WarVeteran => "war_veteran",
        }
    }
}

/// An entitled person's category and, for disabled veterans, the disability grade (1–10).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EntitledGroup {
    pub category: EntitledCategory,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disability_grade: Option<u8>,
}

/// A reservoir migrant (水库移民): when relocated, and whether registered in the support scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReservoirMigrant {
    #[serde(with = "iso_date")]
    pub relocated_on: Date,
    pub in_support_scope: bool,
}

/// 学段 school stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SchoolStage {
    Preschool,
    Primary,
    JuniorSecondary,
    /// 普通高中 ordinary senior high school.
    SeniorSecondary,
    /// 中等职业学校 secondary vocational school.
    Vocational,
    /// 特殊教育学校 special-education school.
    SpecialEducation,
    Higher,
}

impl SchoolStage {
    pub fn as_str(self) -> &'static str {
        match self {
            SchoolStage::Preschool => "preschool",
            SchoolStage::Primary => "primary",
            SchoolStage::JuniorSecondary => "junior_secondary",
            SchoolStage::SeniorSecondary => "senior_secondary",
            SchoolStage::Vocational => "vocational",
            SchoolStage::SpecialEducation => "special_education",
            SchoolStage::Higher => "higher",
        }
    }

    /// 义务教育: primary and junior secondary.
    pub fn is_compulsory(self) -> bool {
        matches!(self, SchoolStage::Primary | SchoolStage::JuniorSecondary)
    }
}

/// A member in school: stage, year within the stage (1-based) and boarding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Schooling {
    pub stage: SchoolStage,
    #[serde(default = "first_year")]
    pub year: u8,
    #[serde(default)]
    pub boarding: bool,
}

fn first_year() -> u8 {
    1
}

/// Employment situation, for employment assistance and medical insurance routing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EmploymentStatus {
    Employed,
    /// 城镇登记失业人员.
    RegisteredUnemployedUrban,
    /// 未就业高校毕业生.
    UnemployedGraduate,
    /// 农村富余劳动力.
    RuralSurplusLabour,
    #[default]
    NotInLabourForce,
}

impl EmploymentStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            EmploymentStatus::Employed => "employed",
            EmploymentStatus::RegisteredUnemployedUrban => "registered_unemployed_urban",
            EmploymentStatus::UnemployedGraduate => "unemployed_graduate",
            EmploymentStatus::RuralSurplusLabour => "rural_surplus_labour",
            EmploymentStatus::NotInLabourForce => "not_in_labour_force",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmploymentFacts {
    #[serde(default)]
    pub status: EmploymentStatus,
    #[serde(default)]
    pub wants_training: bool,
    /// Has already had the one government-subsidised training.
    #[serde(default)]
    pub subsidised_training_received: bool,
    /// The employer (用人单位) is in the district, whatever the member's hukou.
    #[serde(default)]
    pub employer_in_district: bool,
    /// 就业困难人员: recognised as a person with employment difficulty.
    #[serde(default)]
    pub employment_difficulty: bool,
    /// Placed in a government-developed public-welfare post (政府投资开发的公益性岗位) since.
    #[serde(
        default,
        with = "optional_iso_date",
        skip_serializing_if = "Option::is_none"
    )]
    pub public_welfare_post_since: Option<Date>,
}

/// Kinds of income item. Which kinds are counted is a parameter (`income.excluded_item_kinds`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IncomeKind {
    /// 工资性收入 wages.
    Wages,
    /// 家庭经营净收入 net business income.
    Business,
    /// 财产净收入 rent, interest, dividends.
    Property,
    /// 离退休金 and other pensions from employment.
    Pension,
    /// 赡养费、抚养费、扶养费 support paid by relatives.
    SupportFromRelatives,
    /// 优待抚恤金 preferential-treatment and pension payments to entitled groups.
    EntitledCarePayment,
    /// 计划生育奖励与扶助金.
    FamilyPlanningReward,
    /// 奖学金、见义勇为等奖励性补助.
    ScholarshipOrAward,
    /// 社会救助款物 assistance payments.
    AssistancePayment,
    /// 城乡居民基本养老保险基础养老金.
    ResidentBasicPension,
    /// 困难残疾人生活补贴和重度残疾人护理补贴.
    DisabilityAllowance,
    /// 养老补贴、长寿补贴.
    ElderlySubsidy,
    Other,
}

impl IncomeKind {
    pub const ALL: [IncomeKind; 13] = [
        IncomeKind::Wages,
        IncomeKind::Business,
        IncomeKind::Property,
        IncomeKind::Pension,
        IncomeKind::SupportFromRelatives,
        IncomeKind::EntitledCarePayment,
        IncomeKind::FamilyPlanningReward,
        IncomeKind::ScholarshipOrAward,
        IncomeKind::AssistancePayment,
        IncomeKind::ResidentBasicPension,
        IncomeKind::DisabilityAllowance,
        IncomeKind::ElderlySubsidy,
        IncomeKind::Other,
    ];

    /// The serde names, in the order of [`IncomeKind::ALL`].
    pub const CODES: &'static [&'static str] = &[
        "wages",
        "business",
        "property",
        "pension",
        "support_from_relatives",
        "entitled_care_payment",
        "family_planning_reward",
        "scholarship_or_award",
        "assistance_payment",
        "resident_basic_pension",
        "disability_allowance",
        "elderly_subsidy",
        "other",
    ];

    pub fn as_str(self) -> &'static str {
        Self::CODES[self.index()]
    }

    /// Position in [`IncomeKind::ALL`]; also the bit in an income-kind set.
    pub fn index(self) -> usize {
        self as usize
    }

    pub fn from_code(code: &str) -> Option<IncomeKind> {
        let index = Self::CODES.iter().position(|known| *known == code)?;
        Self::ALL.get(index).copied()
    }
}

/// One monthly income item of a member.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IncomeItem {
    pub kind: IncomeKind,
    pub amount: Money,
}

/// Household assets for the dibao asset tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AssetFacts {
    /// Deposits, securities, cash value of commercial insurance (金融资产), whole household.
    #[serde(default)]
    pub financial_assets: Money,
    /// Motor vehicles not needed for a disability or a living.
    #[serde(default)]
    pub non_essential_vehicles: u32,
    /// Housing units owned beyond the one the household lives in.
    #[serde(default)]
    pub extra_housing_units: u32,
}

/// The assistance status the household holds now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecipientCategory {
    #[default]
    None,
    /// 低收入家庭 / 低保边缘家庭.
    LowIncome,
    /// 低保家庭.
    Dibao,
    /// 特困供养人员.
    Tekun,
}

impl RecipientCategory {
    pub fn as_str(self) -> &'static str {
        match self {
            RecipientCategory::None => "none",
            RecipientCategory::LowIncome => "low_income",
            RecipientCategory::Dibao => "dibao",
            RecipientCategory::Tekun => "tekun",
        }
    }

    /// 家庭经济困难: dibao, tekun or low-income.
    pub fn is_poor(self) -> bool {
        !matches!(self, RecipientCategory::None)
    }
}

/// Family-planning facts of the couple (the head and the spouse) for the reward and support
/// program. Children are counted whether or not they live in the household.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FamilyPlanningFacts {
    #[serde(default)]
    pub living_sons: u8,
    #[serde(default)]
    pub living_daughters: u8,
    #[serde(default)]
    pub deceased_children: u8,
    /// The most recent birth that violated family-planning rules, if any.
    #[serde(
        default,
        with = "optional_iso_date",
        skip_serializing_if = "Option::is_none"
    )]
    pub latest_violating_birth_on: Option<Date>,
    /// 绝育: one of the couple has been sterilised.
    #[serde(default)]
    pub sterilised: bool,
    /// 独生子女死亡.
    #[serde(default)]
    pub only_child_died: bool,
    /// 独生子女伤、病残.
    #[serde(default)]
    pub only_child_disabled: bool,
    /// The disabled only child has recovered (康复).
    #[serde(default)]
    pub only_child_recovered: bool,
    /// 再生育或收养: a birth or adoption after the only child's death or disability.
    #[serde(default)]
    pub birth_or_adoption_after_loss: bool,
    /// The parents' marital status: a widowed or divorced parent (单亲) is the head, with no
    /// spouse listed.
    #[serde(default)]
    pub parent_marital_status: ParentMaritalStatus,
    /// A single father's former (or late) wife's birth date, when the district counts her age
    /// (`family_planning.single_father_age_basis = "former_wife_age"`).
    #[serde(
        default,
        with = "optional_iso_date",
        skip_serializing_if = "Option::is_none"
    )]
    pub former_wife_birth_date: Option<Date>,
}

/// Whether the only child's parents are a couple or one parent alone (丧偶, 离异).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ParentMaritalStatus {
    #[default]
    Married,
    Widowed,
    Divorced,
}

impl ParentMaritalStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ParentMaritalStatus::Married => "married",
            ParentMaritalStatus::Widowed => "widowed",
            ParentMaritalStatus::Divorced => "divorced",
        }
    }

    /// 单亲: widowed or divorced.
    pub fn is_single(self) -> bool {
        !matches!(self, ParentMaritalStatus::Married)
    }
}

impl FamilyPlanningFacts {
    pub fn living_children(&self) -> u32 {
        u32::from(self.living_sons) + u32::from(self.living_daughters)
    }
}

/// The kind of sudden event or rigid expense behind a temporary-assistance request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EmergencyKind {
    Accident,
    Fire,
    NaturalDisaster,
    SeriousIllness,
    OtherSudden,
    /// 支出型: medical expense beyond the household's means.
    MedicalExpense,
    /// 支出型: education expense beyond the household's means.
    EducationExpense,
}

impl EmergencyKind {
    /// 急难型 (emergency) or 支出型 (expense-driven).
    pub fn is_expense_driven(self) -> bool {
        matches!(
            self,
            EmergencyKind::MedicalExpense | EmergencyKind::EducationExpense
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            EmergencyKind::Accident => "accident",
            EmergencyKind::Fire => "fire",
            EmergencyKind::NaturalDisaster => "natural_disaster",
            EmergencyKind::SeriousIllness => "serious_illness",
            EmergencyKind::OtherSudden => "other_sudden",
            EmergencyKind::MedicalExpense => "medical_expense",
            EmergencyKind::EducationExpense => "education_expense",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmergencyFacts {
    pub kind: EmergencyKind,
    #[serde(with = "iso_date")]
    pub occurred_on: Date,
    /// For expense-driven requests: the expense not covered by insurance or other aid.
    #[serde(default)]
    pub uncovered_expense: Money,
}

/// Damage to the household's house in a disaster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HouseDamage {
    #[default]
    None,
    Damaged,
    Destroyed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DisasterFacts {
    #[serde(with = "iso_date")]
    pub occurred_on: Date,
    /// Members whose basic living was affected (受灾人口).
    pub affected_members: u32,
    #[serde(default)]
    pub house_damage: HouseDamage,
    /// Days the house is or will be uninhabitable.
    #[serde(default)]
    pub days_uninhabitable: u32,
    /// Direct economic loss.
    #[serde(default)]
    pub loss: Money,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MedicalClaimFacts {
    /// Index of the patient in `members` (0-based).
    pub patient: usize,
    /// Out-of-pocket cost of this claim left after basic medical insurance and critical-illness
    /// insurance (政策范围内个人自付).
    pub out_of_pocket_after_insurance: Money,
    /// Serious-illness medical assistance already paid to this patient this calendar year.
    #[serde(default)]
    pub paid_this_year: Money,
}

/// Rural house safety rating (农村危房鉴定): C is partly dangerous, D wholly dangerous.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RuralHouseCondition {
    #[default]
    Safe,
    NoHouse,
    DangerousC,
    DangerousD,
}

impl RuralHouseCondition {
    pub fn as_str(self) -> &'static str {
        match self {
            RuralHouseCondition::Safe => "safe",
            RuralHouseCondition::NoHouse => "no_house",
            RuralHouseCondition::DangerousC => "dangerous_c",
            RuralHouseCondition::DangerousD => "dangerous_d",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HousingFacts {
    #[serde(default)]
    pub owns_housing: bool,
    /// Floor area of owned housing per member, whole square metres.
    #[serde(default)]
    pub floor_area_per_capita: u32,
    /// Renting on the market.
    #[serde(default)]
    pub renting: bool,
    #[serde(default)]
    pub monthly_rent: Money,
    #[serde(default)]
    pub rural_house_condition: RuralHouseCondition,
}

impl HouseholdFacts {
    /// The village-community where the household lives: its residence, or else its hukou's.
    pub fn lives_in(&self) -> &OrgUnitCode {
        self.residence_org_unit
            .as_ref()
            .unwrap_or(&self.hukou_org_unit)
    }

    /// Whether the household lives in an urban community (城镇社区, 居委会): by the national
    /// statistical division codes, a 村居 code of 001–199 is a residents' committee and 200–399
    /// a villagers' committee. A street-town code (村居 000) is not a community.
    pub fn lives_in_urban_community(&self) -> bool {
        let code = self.lives_in().as_str();
        code.get(code.len().saturating_sub(3)..)
            .and_then(|committee| committee.parse::<u16>().ok())
            .is_some_and(|committee| (1..=199).contains(&committee))
    }

    /// The head of household (the validated facts have exactly one).
    pub fn head(&self) -> Option<&MemberFacts> {
        self.members
            .iter()
            .find(|member| member.relation == Relation::Head)
    }

    /// The couple for family-planning purposes: the head and the head's spouse, with their
    /// indexes in `members`.
    pub fn couple(&self) -> impl Iterator<Item = (usize, &MemberFacts)> {
        self.members
            .iter()
            .enumerate()
            .filter(|(_, member)| matches!(member.relation, Relation::Head | Relation::Spouse))
    }

    /// Every rule violated by the facts themselves, as of `as_of`. Empty when they are usable.
    pub fn violations(&self, as_of: Date) -> Vec<String> {
        let mut violations = Vec::new();
        if self.members.is_empty() {
            violations.push("members: a household has at least one member".to_owned());
        }
        if let Some(facts) = &self.family_planning
            && facts.parent_marital_status.is_single()
            && self
                .members
                .iter()
                .any(|member| member.relation == Relation::Spouse)
        {
            violations.push(
                "family_planning.parent_marital_status: a widowed or divorced parent has no spouse listed"
                    .to_owned(),
            );
        }
        let head_count = self
            .members
            .iter()
            .filter(|member| member.relation == Relation::Head)
            .count();
        if head_count != 1 && !self.members.is_empty() {
            violations.push(format!(
                "members: exactly one member must be the head, found {head_count}"
            ));
        }
        for (index, member) in self.members.iter().enumerate() {
            if member.birth_date > as_of {
                violations.push(format!(
                    "members[{index}].birth_date: after the evaluation date"
                ));
            }
            if let Some(since) = member.resident_since
                && since < member.birth_date
            {
                violations.push(format!("members[{index}].resident_since: before birth"));
            }
            if let Some(disability) = member.disability
                && !(1..=4).contains(&disability.grade)
            {
                violations.push(format!("members[{index}].disability.grade: must be 1 to 4"));
            }
            if let Some(entitled) = member.entitled_group {
                match (entitled.category, entitled.disability_grade) {
                    (EntitledCategory::DisabledVeteran, Some(grade)) if (1..=10).contains(&grade) => {}
                    (EntitledCategory::DisabledVeteran, _) => violations.push(format!(
                        "members[{index}].entitled_group.disability_grade: a disabled veteran needs a grade from 1 to 10"
                    )),
                    (_, None) => {}
                    (_, Some(_)) => violations.push(format!(
                        "members[{index}].entitled_group.disability_grade: only disabled veterans have a grade"
                    )),
                }
            }
            if let Some(school) = member.school
                && school.year == 0
            {
                violations.push(format!("members[{index}].school.year: years start at 1"));
            }
            for (item_index, item) in member.monthly_income.iter().enumerate() {
                if item.amount.is_negative() {
                    violations.push(format!(
                        "members[{index}].monthly_income[{item_index}].amount: must not be negative"
                    ));
                }
            }
        }
        let amounts = [
            ("assets.financial_assets", self.assets.financial_assets),
            (
                "annual_medical_out_of_pocket",
                self.annual_medical_out_of_pocket,
            ),
            (
                "temporary_assistance_paid_this_year",
                self.temporary_assistance_paid_this_year,
            ),
            ("housing.monthly_rent", self.housing.monthly_rent),
            ("annual_education_spending", self.annual_education_spending),
            (
                "annual_other_rigid_spending",
                self.annual_other_rigid_spending,
            ),
        ];
        for (field, amount) in amounts {
            if amount.is_negative() {
                violations.push(format!("{field}: must not be negative"));
            }
        }
        if let Some(claim) = &self.medical_claim {
            if claim.patient >= self.members.len() {
                violations.push("medical_claim.patient: no member with that index".to_owned());
            }
            if claim.out_of_pocket_after_insurance.is_negative()
                || claim.paid_this_year.is_negative()
            {
                violations.push("medical_claim: amounts must not be negative".to_owned());
            }
        }
        if let Some(emergency) = &self.emergency {
            if emergency.uncovered_expense.is_negative() {
                violations.push("emergency.uncovered_expense: must not be negative".to_owned());
            }
            if emergency.occurred_on > as_of {
                violations.push("emergency.occurred_on: after the evaluation date".to_owned());
            }
        }
        if let Some(disaster) = &self.disaster {
            if disaster.loss.is_negative() {
                violations.push("disaster.loss: must not be negative".to_owned());
            }
            if disaster.occurred_on > as_of {
                violations.push("disaster.occurred_on: after the evaluation date".to_owned());
            }
            if disaster.affected_members as usize > self.members.len() {
                violations.push(
                    "disaster.affected_members: more than the household's members".to_owned(),
                );
            }
        }
        violations
    }

    /// [`HouseholdFacts::violations`] as a result.
    pub fn validate(&self, as_of: Date) -> Result<(), crate::PolicyError> {
        let violations = self.violations(as_of);
        if violations.is_empty() {
            Ok(())
        } else {
            Err(crate::PolicyError::InvalidFacts { violations })
        }
    }
}
