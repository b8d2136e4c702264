//! What an evaluation returns: the decision, its amount and period, and the reasons, each a
//! condition or a calculation step with its value, its threshold and whether it passed.
//!
//! This module owns [`Decision`], [`Reason`], [`ReasonRole`], [`ReasonValue`],
//! [`ConditionCode`] (the stable codes with their Chinese and English texts) and
//! [`EntitledMedicalRoute`], and renders a decision as text in either [`Language`] (the
//! period an amount is expressed in, [`BenefitPeriod`], is the catalogue's). Reason texts are `'static`: building a reason never allocates for its text.

use std::borrow::Cow;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};
use sunshine_domain::Money;
use time::Date;

use crate::catalogue::{BenefitPeriod, ProgramCode};
use crate::hardship::HardshipCoefficient;
use crate::language::{Language, format_coefficient};
use crate::version::PolicyVersion;

macro_rules! condition_codes {
    ($( $variant:ident = $code:literal, $zh:literal, $en:literal; )*) => {
        /// A stable code for each condition and calculation step the rules explain. The code
        /// (its serde name) never changes meaning; the texts may be improved.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum ConditionCode {
            $(
                #[doc = $en]
                #[serde(rename = $code)]
                $variant,
            )*
        }

        impl ConditionCode {
            pub const ALL: &'static [ConditionCode] = &[$(ConditionCode::$variant,)*];

            pub fn as_str(self) -> &'static str {
                match self { $(ConditionCode::$variant => $code,)* }
            }

            /// The Chinese text.
            pub fn zh(self) -> &'static str {
                match self { $(ConditionCode::$variant => $zh,)* }
            }

            /// The English text.
            pub fn en(self) -> &'static str {
                match self { $(ConditionCode::$variant => $en,)* }
            }
        }
    };
}

condition_codes! {
    // ---- common ----
    HukouInDistrict = "hukou_in_district", "户籍在本区", "household hukou is registered in the district";
    PermanentResident = "permanent_resident", "具有本区常住户口", "has permanent registered residence in the district";
    ResidenceYears = "residence_years", "在本区常住户口满规定年限", "years of permanent residence reach the required number";
    MinimumAge = "minimum_age", "年满规定年龄(周岁)", "age in completed years reaches the required age";
    BelowAgeLimit = "below_age_limit", "未满规定年龄(周岁)", "age in completed years is below the limit";
    NoRetirementPension = "no_retirement_pension", "无离退休金", "receives no retirement pension";
    AmountByAgeTier = "amount_by_age_tier", "按年龄档次确定金额", "amount from the age tier";
    UrbanHukou = "urban_hukou", "城镇户口", "urban hukou";
    RuralHukou = "rural_hukou", "农村户口", "rural hukou";
    AnnualCapNotReached = "annual_cap_not_reached", "本年度已支付金额未达年度上限", "amount already paid this year is below the annual cap";
    AnnualCapRemaining = "annual_cap_remaining", "不超过本年度剩余限额", "limited to what remains of the annual cap";
    // ---- dibao ----
    DibaoHukouType = "dibao_hukou_type", "户籍类型与申请的城市或农村低保一致", "household hukou type matches urban or rural dibao";
    CountedHouseholdIncome = "counted_household_income", "家庭月收入(不计入项目已扣除)与低保标准×人数", "counted household monthly income (excluded items left out) against standard × members";
    PerCapitaIncomeBelowStandard = "per_capita_income_below_standard", "家庭月人均收入低于当地低保标准", "per-capita monthly income is below the local dibao standard";
    PerCapitaFinancialAssetsWithinLimit = "per_capita_financial_assets_within_limit", "人均金融资产不超过规定限额", "per-capita financial assets are within the limit";
    NonEssentialVehiclesWithinLimit = "non_essential_vehicles_within_limit", "非生活必需机动车不超过规定数量", "non-essential motor vehicles are within the limit";
    ExtraHousingWithinLimit = "extra_housing_within_limit", "居住用房以外的住房不超过规定数量", "housing beyond the home is within the limit";
    DibaoDifferenceAmount = "dibao_difference_amount", "补差法: 低保标准×人数−家庭收入", "difference method: standard × members − household income";
    DibaoTierAmount = "dibao_tier_amount", "分档法: 按收入差距所在档次的人均金额×人数", "tier method: the tier's per-person amount × members";
    // ---- tekun ----
    TekunPersonCategory = "tekun_person_category", "属于老年人、未满规定年龄的未成年人或规定等级的残疾人", "is elderly, a minor under the age limit, or disabled at a listed grade";
    NoLabourCapacity = "no_labour_capacity", "无劳动能力", "has no labour capacity";
    NoSourceOfLiving = "no_source_of_living", "无生活来源(个人计入收入不超过限额)", "has no source of living (counted personal income within the limit)";
    NoAbleSupporter = "no_able_supporter", "无法定赡养抚养扶养义务人或其无履行义务能力", "has no legal supporter, or none able to support";
    TekunSupportAmount = "tekun_support_amount", "基本生活标准加照料护理标准", "basic living standard plus care standard";
    // ---- temporary ----
    SuddenEventReported = "sudden_event_reported", "遭遇突发事件或刚性支出", "a sudden event or rigid expense is reported";
    ListedGroupOrHardship = "listed_group_or_hardship", "属于低保、特困等困难群体, 或困难程度系数达到规定值", "belongs to a listed group, or the hardship coefficient reaches the threshold";
    TemporaryBaseTimesCoefficient = "temporary_base_times_coefficient", "基数×人数×困难程度系数", "base × members × hardship coefficient";
    CapPerEvent = "cap_per_event", "不超过每次救助上限", "limited to the cap per event";
    UncoveredExpenseLimit = "uncovered_expense_limit", "不超过未报销的实际支出", "limited to the expense left uncovered";
    AssistFirstCap = "assist_first_cap", "街镇先行救助不超过规定额度", "what the street-town may pay first, within its cap";
    // ---- medical ----
    RecipientCategoryCovered = "recipient_category_covered", "属于特困、低保或低收入救助对象", "is a tekun, dibao or low-income recipient";
    SeriousIllnessDiagnosed = "serious_illness_diagnosed", "患有规定的重特大疾病", "has a recognised serious illness";
    OutOfPocketAboveDeductible = "out_of_pocket_above_deductible", "个人自付费用超过起付线", "out-of-pocket cost exceeds the deductible";
    MedicalShareApplied = "medical_share_applied", "(自付费用−起付线)×救助比例", "(out-of-pocket cost − deductible) × assistance share";
    EntitledGroupMember = "entitled_group_member", "属于优抚对象", "belongs to an entitled group";
    VeteranGradeOneToSix = "veteran_grade_one_to_six", "残疾军人残疾等级为一至六级", "disabled veteran of grade 1 to 6";
    CategoryListedForRoute = "category_listed_for_route", "优抚类别在适用的医疗保障安排中列明", "the entitled category is listed for the applicable route";
    RouteEmployeeInsuranceWithLargeAmountRelief = "route_employee_insurance_with_large_amount_relief", "参加城镇职工基本医疗保险并同步参加大额医疗费救助", "joins urban employee medical insurance and large-amount medical relief";
    RouteUrbanEmployeeInsurance = "route_urban_employee_insurance", "参加城镇职工基本医疗保险", "joins urban employee medical insurance";
    RouteRuralCooperativePremiumPaid = "route_rural_cooperative_premium_paid", "参加新型农村合作医疗, 个人缴费由区财政解决", "joins the rural cooperative scheme; the district pays the personal premium";
    Employed = "employed", "在职职工", "is employed";
    EmployedOrRegisteredInDistrict = "employed_or_registered_in_district", "用人单位在本区或户籍在本区", "the employer is in the district, or the household is registered there";
    NotEmployed = "not_employed", "非在职职工(不在职工医保范围)", "is not employed (outside employee insurance)";
    PremiumSubsidy = "premium_subsidy", "政府参保缴费补助", "government premium subsidy";
    // ---- entitled subsidy, transferred cadres ----
    EntitledSubsidyAmount = "entitled_subsidy_amount", "按优抚类别(残疾等级)确定抚恤补助标准", "amount by entitled category (and disability grade)";
    EnterpriseTransferredCadre = "enterprise_transferred_cadre", "属于企业军转干部", "is an enterprise military-transferred cadre";
    TransferredCadreAmount = "transferred_cadre_amount", "企业军转干部生活补助标准", "living subsidy for transferred cadres";
    TransferredCadreMedicalSupport = "transferred_cadre_medical_support", "企业军转干部医疗救助标准", "medical support for transferred cadres";
    // ---- home care ----
    UrbanCommunityResidence = "urban_community_residence", "居住在城镇社区(居委会)", "lives in an urban community (residents' committee)";
    EmptyNestOrThreeNo = "empty_nest_or_three_no", "空巢老人或“三无”老人", "empty-nest or \"three-no\" elderly";
    HomeCareServiceTier = "home_care_service_tier", "服务类别: 无偿(三无)、低偿(困难空巢)或有偿", "service tier: free (three-no), low-cost (needy empty-nest) or paid";
    // ---- family planning ----
    FamilyPlanningFactsGiven = "family_planning_facts_given", "提供了计划生育情况", "family-planning facts are given";
    FpRuralCouple = "fp_rural_couple", "夫妇均为农村户口", "both spouses have rural hukou";
    FpBornOnOrAfter = "fp_born_on_or_after", "1933年1月1日以后出生", "born on or after 1933-01-01";
    FpNoViolationSince = "fp_no_violation_since", "1973年以来没有违反政策规定生育", "no birth violating family-planning rules since 1973";
    FpChildrenCondition = "fp_children_condition", "现存一个子女, 或两个女孩, 或子女死亡现无子女", "one living child, or two girls, or children died and none now";
    FpRewardAge = "fp_reward_age", "年满60周岁", "aged 60 or over";
    FpRuralReward = "fp_rural_reward", "农村部分计划生育家庭奖励扶助金", "rural family-planning reward";
    FpTwoDaughters = "fp_two_daughters", "现存两个女孩(双女家庭)", "two living daughters and no son";
    FpSterilised = "fp_sterilised", "已落实绝育措施", "sterilised";
    FpTwoDaughterAgeYear = "fp_two_daughter_age_year", "自年满55周岁的当年起", "from the calendar year of turning 55";
    FpBelowRewardAge = "fp_below_reward_age", "未满60周岁(满60周岁后纳入农村奖励扶助)", "under 60 (from 60 the general rural reward applies)";
    FpTwoDaughterReward = "fp_two_daughter_reward", "农村双女绝育家庭奖励扶助金", "reward for rural sterilised two-daughter families";
    FpWifeAgeBereaved = "fp_wife_age_bereaved", "女方年满49周岁", "the wife is aged 49 or over";
    FpOnlyChildDied = "fp_only_child_died", "独生子女死亡", "the only child died";
    FpNoFurtherBirthOrAdoption = "fp_no_further_birth_or_adoption", "未再生育或收养子女", "no further birth or adoption";
    FpOnlyChildDiedSupport = "fp_only_child_died_support", "独生子女死亡家庭扶助金(直至亡故)", "support for parents whose only child died (until death)";
    FpOnlyChildDisabled = "fp_only_child_disabled", "独生子女伤、病残", "the only child is injured or disabled";
    FpChildNotRecovered = "fp_child_not_recovered", "子女尚未康复", "the child has not recovered";
    FpWifeAgeDisabledChild = "fp_wife_age_disabled_child", "女方年满49周岁(参数为0时无年龄条件)", "the wife is aged 49 or over (no age when the parameter is 0)";
    FpSingleFatherAge = "fp_single_father_age", "单亲(丧偶或离异)父亲: 按本人或原配偶年龄计女方年龄", "single (widowed or divorced) father: the age counted for the wife's";
    FpOnlyChildDisabledSupport = "fp_only_child_disabled_support", "独生子女伤病残家庭扶助金(直至亡故或子女康复)", "support for parents of a disabled only child (until death or recovery)";
    FpUrbanSpouse = "fp_urban_spouse", "夫妻一方或双方为城镇户口", "one or both spouses have urban hukou";
    FpHonourCertificate = "fp_honour_certificate", "持有独生子女父母光荣证", "holds the only-child parents' honour certificate";
    FpUrbanDibaoCertificate = "fp_urban_dibao_certificate", "持有本市城镇居民最低生活保障证", "holds the city dibao certificate";
    FpOneLivingChild = "fp_one_living_child", "现存一个子女", "one living child";
    FpUrbanReward = "fp_urban_reward", "城镇独生子女低保家庭奖励扶助金", "reward for urban only-child dibao families";
    // ---- near-dibao and rigid-expenditure households (issue 20 item 10) ----
    RecognitionInForce = "recognition_in_force", "认定制度已施行", "the recognition rules are in force";
    IncomeAtOrAboveDibaoStandard = "income_at_or_above_dibao_standard", "家庭月人均收入不低于低保标准(低于则属低保)", "per-capita income at or above the dibao standard (below it is dibao)";
    IncomeBelowNearDibaoLine = "income_below_near_dibao_line", "家庭月人均收入低于低保标准的规定倍数", "per-capita income below the set multiple of the dibao standard";
    AssetsWithinNearDibaoLimit = "assets_within_near_dibao_limit", "家庭金融资产不超过规定限额", "financial assets within the limit";
    NearDibaoBand = "near_dibao_band", "收入档次: 低保 / 低保边缘 / 高于低保边缘(值为人均收入与低保标准之比)", "income band: dibao / near-dibao / above (value: per-capita income ÷ dibao standard)";
    IncomeWithinLowIncomeLine = "income_within_low_income_line", "家庭月人均收入不超过低收入标准", "per-capita income within the low-income line";
    RigidSpendingMonthly = "rigid_spending_monthly", "近12个月医疗、教育等刚性支出(折合每月)", "necessary medical, education and similar spending of 12 months, per month";
    IncomeAfterRigidSpendingBelowStandard = "income_after_rigid_spending_below_standard", "扣除刚性支出后家庭月人均收入低于低保标准", "per-capita income after necessary spending below the dibao standard";
    IndividualDibaoEnrolment = "individual_dibao_enrolment", "重度残疾人、重病患者单独纳入低保(单人户施保): 低保标准−本人收入", "severely disabled or seriously ill member enrolled in dibao alone: standard − own income";
    // ---- legal aid, Party members, reservoir migrants ----
    RecipientInSpecialHardship = "recipient_in_special_hardship", "城乡低保户或其他特困群众(特困、低收入, 或困难程度系数达到特别困难)", "a dibao household or other people in special hardship (tekun, low-income, or a severe hardship coefficient)";
    FreeLegalAid = "free_legal_aid", "无偿提供法律援助和司法救助", "legal aid and judicial assistance free of charge";
    PartyMember = "party_member", "中共党员", "is a member of the Communist Party of China";
    JoinedBeforeFounding = "joined_before_founding", "建国前入党(1949年10月1日以前)", "joined before the founding of the PRC (1949-10-01)";
    NeedyHousehold = "needy_household", "家庭属于低保、特困或低收入", "household is dibao, tekun or low-income";
    PartyMemberAidAmount = "party_member_aid_amount", "老党员定期补助或困难党员走访救助金", "regular subsidy for old members or visit payment for needy members";
    ReservoirMigrantInScope = "reservoir_migrant_in_scope", "属于纳入扶持范围的水库移民", "reservoir migrant registered in the support scope";
    WithinSupportPeriod = "within_support_period", "在扶持期限内", "within the support period";
    ReservoirSupportAmount = "reservoir_support_amount", "后期扶持标准", "later-stage support amount";
    // ---- education ----
    InSchool = "in_school", "在校学生", "is a student";
    FamilyEconomicHardship = "family_economic_hardship", "家庭经济困难(低保、特困或低收入)", "family in economic hardship (dibao, tekun or low-income)";
    CompulsoryFeeExemption = "compulsory_fee_exemption", "免除义务教育杂费", "compulsory-education fees waived";
    FreeTextbooks = "free_textbooks", "免费提供教科书", "free textbooks";
    BoardingLivingAllowance = "boarding_living_allowance", "家庭经济困难寄宿生生活补助", "living allowance for boarders from poor families";
    VocationalGrant = "vocational_grant", "职业学校1、2年级政府助学金", "government grant for vocational years 1 and 2";
    HighSchoolGrant = "high_school_grant", "普通高中家庭经济困难学生政府助学金", "government grant for poor high-school students";
    SpecialEducationFree = "special_education_free", "特殊教育免费", "special education free of charge";
    SpringBudGrant = "spring_bud_grant", "春蕾计划贫困女童救助", "Spring Bud aid for poor girls";
    // ---- employment ----
    TrainingTargetGroup = "training_target_group", "属于城镇登记失业人员、未就业高校毕业生或农村富余劳动力", "registered unemployed, unemployed graduate or rural surplus labour";
    WantsTraining = "wants_training", "有培训愿望", "wishes to train";
    TrainingNotYetReceived = "training_not_yet_received", "未享受过政府补贴的就业培训(每人一次)", "has not had the one subsidised training yet";
    TrainingSubsidy = "training_subsidy", "一次性职业培训补贴", "one-off training subsidy";
    EmploymentDifficulty = "employment_difficulty", "属于就业困难人员", "is a person with employment difficulty";
    InPublicWelfarePost = "in_public_welfare_post", "安排在政府投资开发的公益性岗位", "placed in a government-developed public-welfare post";
    WithinPostSubsidyPeriod = "within_post_subsidy_period", "在补贴期限内(自安排上岗起)", "within the subsidy period from the placement";
    PublicWelfarePostSocialInsuranceSubsidy = "public_welfare_post_social_insurance_subsidy", "公益性岗位社会保险补贴", "social-insurance subsidy of a public-welfare post";
    PublicWelfarePostSubsidy = "public_welfare_post_subsidy", "公益性岗位补贴", "post subsidy of a public-welfare post";
    // ---- housing ----
    IncomeWithinHousingLimit = "income_within_housing_limit", "家庭月人均收入不超过中低收入标准", "per-capita income within the low- and middle-income line";
    HousingDifficulty = "housing_difficulty", "无自有住房或人均住房面积低于标准", "no own housing, or floor area per person below the line";
    RentingOnMarket = "renting_on_market", "租房居住(租赁补贴; 否则公共租赁住房或实物配租)", "renting (rent subsidy; otherwise public rental housing or allocation in kind)";
    HousingInKind = "housing_in_kind", "住房保障方式: 实物配租(低保、特困)或公共租赁住房", "housing in kind: allocation in kind (dibao, tekun) or public rental housing";
    RentSubsidy = "rent_subsidy", "租赁补贴: 每人标准×人数×比例, 不超过实际租金", "rent subsidy: per-person amount × members × share, at most the rent";
    NoOrDangerousHouse = "no_or_dangerous_house", "无房户或危房户(C级、D级)", "no house, or a dangerous house (grade C or D)";
    DifficultHousehold = "difficult_household", "困难家庭(低保、特困、低收入, 有残疾人、优抚对象, 或住房受灾)", "household in difficulty (dibao, tekun, low-income, a disabled or entitled member, or a house hit by a disaster)";
    RuralHousingSubsidy = "rural_housing_subsidy", "新建或修缮补助", "subsidy to build or repair";
    // ---- disaster ----
    DisasterWithinClaimWindow = "disaster_within_claim_window", "灾害发生在受理期限内", "the disaster is within the application window";
    AffectedMembers = "affected_members", "有受灾人口", "members were affected";
    DisasterEmergencyLiving = "disaster_emergency_living", "应急生活救助: 每人标准×受灾人数", "emergency living assistance: per person × affected members";
    DisasterTransitionalLiving = "disaster_transitional_living", "过渡期生活救助: 每人每天标准×人数×天数", "transitional living assistance: per person per day × members × days";
    DisasterHouseSubsidy = "disaster_house_subsidy", "倒损住房恢复重建补助", "subsidy to rebuild or repair the house";
}

/// Whether a reason decides eligibility, qualifies part of the benefit, or explains the amount.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReasonRole {
    /// Required: eligibility (of the member, when `member` is set) needs it to pass.
    Condition,
    /// Decides only whether one part of the benefit is given.
    Qualifier,
    /// A step of the amount: `value` is the result of the step, `threshold` the bound or rate used.
    Calculation,
}

/// A value or threshold in a reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "value", rename_all = "snake_case")]
pub enum ReasonValue {
    None,
    Money(Money),
    Integer(i64),
    Years(i64),
    Days(i64),
    /// Basis points shown as a percent (7 000 = 70%).
    Percent(i64),
    /// Basis points shown as a coefficient (13 000 = 1.30).
    Coefficient(i64),
    Date(#[serde(with = "crate::dates::iso_date")] Date),
    Flag(bool),
    Text(Cow<'static, str>),
}

impl ReasonValue {
    pub fn text(text: &'static str) -> ReasonValue {
        ReasonValue::Text(Cow::Borrowed(text))
    }

    fn render(&self, language: Language) -> String {
        match (self, language) {
            (ReasonValue::None, _) => "—".to_owned(),
            (ReasonValue::Money(amount), Language::Zh) => format!("{amount}元"),
            (ReasonValue::Money(amount), Language::En) => format!("{amount} yuan"),
            (ReasonValue::Integer(number), _) => number.to_string(),
            (ReasonValue::Years(years), Language::Zh) => format!("{years}年"),
            (ReasonValue::Years(years), Language::En) => format!("{years} years"),
            (ReasonValue::Days(days), Language::Zh) => format!("{days}天"),
            (ReasonValue::Days(days), Language::En) => format!("{days} days"),
            (ReasonValue::Percent(basis_points), _) => format_hundredths(*basis_points, "%"),
            (ReasonValue::Coefficient(basis_points), _) => format_coefficient(*basis_points),
            (ReasonValue::Date(date), _) => crate::dates::format_iso_date(*date),
            (ReasonValue::Flag(true), Language::Zh) => "是".to_owned(),
            (ReasonValue::Flag(false), Language::Zh) => "否".to_owned(),
            (ReasonValue::Flag(true), Language::En) => "yes".to_owned(),
            (ReasonValue::Flag(false), Language::En) => "no".to_owned(),
            (ReasonValue::Text(text), _) => text.to_string(),
        }
    }
}

fn format_hundredths(basis_points: i64, suffix: &str) -> String {
    let whole = basis_points / 100;
    let fraction = basis_points % 100;
    if fraction == 0 {
        format!("{whole}{suffix}")
    } else {
        format!("{whole}.{fraction:02}{suffix}")
    }
}

/// One step of the explanation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reason {
    /// The member (index in the household's `members`) the reason is about; `None` for the
    /// household as a whole.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub member: Option<u16>,
    pub role: ReasonRole,
    pub condition: ConditionCode,
    pub zh: Cow<'static, str>,
    pub en: Cow<'static, str>,
    pub value: ReasonValue,
    pub threshold: ReasonValue,
    pub passed: bool,
}

impl Reason {
    pub fn new(
        member: Option<usize>,
        role: ReasonRole,
        condition: ConditionCode,
        value: ReasonValue,
        threshold: ReasonValue,
        passed: bool,
    ) -> Reason {
        Reason {
            member: member.and_then(|index| u16::try_from(index).ok()),
            role,
            condition,
            zh: Cow::Borrowed(condition.zh()),
            en: Cow::Borrowed(condition.en()),
            value,
            threshold,
            passed,
        }
    }
}

/// 优抚对象医疗保障安排 (entitled-group medical routing, seed 三(四)4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntitledMedicalRoute {
    /// Disabled veterans of grade 1–6, urban or rural.
    EmployeeInsuranceWithLargeAmountRelief,
    /// Urban grade 7–10 veterans and the other urban entitled groups listed.
    UrbanEmployeeInsurance,
    /// Rural grade 7–10 veterans and the other rural entitled groups listed; the district pays
    /// the personal premium.
    RuralCooperativePremiumPaid,
}

impl EntitledMedicalRoute {
    /// The calculation code that records this route, whose texts describe it.
    pub fn condition_code(self) -> ConditionCode {
        match self {
            EntitledMedicalRoute::EmployeeInsuranceWithLargeAmountRelief => {
                ConditionCode::RouteEmployeeInsuranceWithLargeAmountRelief
            }
            EntitledMedicalRoute::UrbanEmployeeInsurance => {
                ConditionCode::RouteUrbanEmployeeInsurance
            }
            EntitledMedicalRoute::RuralCooperativePremiumPaid => {
                ConditionCode::RouteRuralCooperativePremiumPaid
            }
        }
    }
}

/// The route decided for one member.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct MemberMedicalRoute {
    pub member: u16,
    pub route: EntitledMedicalRoute,
}

/// 审核确认 result of the rules (not yet an officer's decision): eligibility, amount and period,
/// and the reasons, with the policy version that produced it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    pub program: ProgramCode,
    #[serde(with = "crate::dates::iso_date")]
    pub as_of: Date,
    pub eligible: bool,
    /// Whole fen; zero when not eligible or when the benefit is a service or an exemption.
    pub amount: Money,
    pub period: BenefitPeriod,
    pub reasons: Vec<Reason>,
    /// The hardship coefficient, when the rule used it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hardship: Option<HardshipCoefficient>,
    /// Temporary assistance: what the street-town may pay at once (先行救助), within its cap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assist_first_amount: Option<Money>,
    /// Entitled-group medical assistance: the route of each entitled member.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub medical_routes: Vec<MemberMedicalRoute>,
    pub policy_version: PolicyVersion,
}

impl Decision {
    /// The condition codes of the [`ReasonRole::Condition`] reasons that failed, in order,
    /// without repeats.
    pub fn failed_conditions(&self) -> Vec<ConditionCode> {
        let mut failed = Vec::new();
        for reason in &self.reasons {
            if reason.role == ReasonRole::Condition
                && !reason.passed
                && !failed.contains(&reason.condition)
            {
                failed.push(reason.condition);
            }
        }
        failed
    }

    /// The explanation as text, one reason per line.
    pub fn explain(&self, language: Language, program_name: &str) -> String {
        let mut text = String::new();
        let amount = match language {
            Language::Zh => format!("{}元 ({})", self.amount, self.period.zh()),
            Language::En => format!("{} yuan ({})", self.amount, self.period.as_str()),
        };
        // Writing to a String cannot fail.
        let _ = match language {
            Language::Zh => writeln!(
                text,
                "{program_name} — {} — 金额 {amount} — 截至 {} — 政策版本 {}",
                if self.eligible {
                    "符合条件"
                } else {
                    "不符合条件"
                },
                crate::dates::format_iso_date(self.as_of),
                self.policy_version.short()
            ),
            Language::En => writeln!(
                text,
                "{program_name} — {} — amount {amount} — as of {} — policy version {}",
                if self.eligible {
                    "eligible"
                } else {
                    "not eligible"
                },
                crate::dates::format_iso_date(self.as_of),
                self.policy_version.short()
            ),
        };
        for reason in &self.reasons {
            let mark = match (reason.role, reason.passed) {
                (ReasonRole::Calculation, _) => "=",
                (_, true) => "✓",
                (_, false) => "✗",
            };
            let member = match (reason.member, language) {
                (Some(index), Language::Zh) => format!("[成员{index}] "),
                (Some(index), Language::En) => format!("[member {index}] "),
                (None, _) => String::new(),
            };
            let (statement, value_label, threshold_label) = match language {
                Language::Zh => (reason.zh.as_ref(), "值", "标准"),
                Language::En => (reason.en.as_ref(), "value", "threshold"),
            };
            let _ = writeln!(
                text,
                "  {mark} {member}{statement} ({}): {value_label} {}; {threshold_label} {}",
                reason.condition.as_str(),
                reason.value.render(language),
                reason.threshold.render(language)
            );
        }
        if let Some(hardship) = &self.hardship {
            text.push_str(&hardship.explain(language));
        }
        if let Some(assist_first) = self.assist_first_amount {
            let _ = match language {
                Language::Zh => writeln!(text, "  先行救助可付: {assist_first}元"),
                Language::En => writeln!(
                    text,
                    "  may be paid first (assist first): {assist_first} yuan"
                ),
            };
        }
        for route in &self.medical_routes {
            let code = route.route.condition_code();
            let _ = match language {
                Language::Zh => writeln!(text, "  → 成员{}: {}", route.member, code.zh()),
                Language::En => writeln!(text, "  → member {}: {}", route.member, code.en()),
            };
        }
        text
    }

    /// Why a refusal refused, most telling first (issue 20 item 13): the failed conditions;
    /// when none failed (a program of clauses, e.g. family planning), the failed qualifiers of
    /// the clause each member came closest to (fewest failures); else every failed qualifier.
    /// Empty for an eligible decision.
    pub fn refusal_reasons(&self) -> Vec<&Reason> {
        if self.eligible {
            return Vec::new();
        }
        let conditions: Vec<&Reason> = self
            .reasons
            .iter()
            .filter(|reason| reason.role == ReasonRole::Condition && !reason.passed)
            .collect();
        if !conditions.is_empty() {
            return conditions;
        }
        let failed_qualifiers: Vec<&Reason> = self
            .reasons
            .iter()
            .filter(|reason| reason.role == ReasonRole::Qualifier && !reason.passed)
            .collect();
        if failed_qualifiers
            .iter()
            .all(|reason| reason.condition.clauses().is_empty())
        {
            return failed_qualifiers;
        }
        let mut members: Vec<Option<u16>> = Vec::new();
        for reason in &self.reasons {
            if reason.role == ReasonRole::Qualifier && !members.contains(&reason.member) {
                members.push(reason.member);
            }
        }
        let mut chosen: Vec<&Reason> = Vec::new();
        for member in members {
            let failed_in = |clause: u8| {
                failed_qualifiers
                    .iter()
                    .filter(|reason| {
                        reason.member == member && reason.condition.clauses().contains(&clause)
                    })
                    .count()
            };
            let clauses: Vec<u8> = failed_qualifiers
                .iter()
                .filter(|reason| reason.member == member)
                .flat_map(|reason| reason.condition.clauses().iter().copied())
                .collect();
            let Some(fewest) = clauses.iter().map(|clause| failed_in(*clause)).min() else {
                continue;
            };
            for reason in &failed_qualifiers {
                let nearest = reason.member == member
                    && reason
                        .condition
                        .clauses()
                        .iter()
                        .any(|clause| failed_in(*clause) == fewest);
                if nearest && !chosen.iter().any(|seen| std::ptr::eq(*seen, *reason)) {
                    chosen.push(reason);
                }
            }
        }
        chosen
    }

    /// The refusal's reasons as lines (Chinese statement, then English), headed by a line
    /// saying the household is not eligible; empty for an eligible decision.
    pub fn refusal_summary(&self) -> String {
        let reasons = self.refusal_reasons();
        if self.eligible {
            return String::new();
        }
        let mut text = String::from("不符合条件 / not eligible — 未满足 / failed:\n");
        for reason in reasons {
            let member = reason.member.map_or(String::new(), |index| {
                format!("[成员{index} / member {index}] ")
            });
            let _ = writeln!(
                text,
                "  ✗ {member}{} / {} ({}): 值 / value {}; 标准 / threshold {}",
                reason.zh,
                reason.en,
                reason.condition.as_str(),
                reason.value.render(Language::En),
                reason.threshold.render(Language::En)
            );
        }
        text
    }
}

impl ConditionCode {
    /// The family-planning clauses (1–5 of seed 三(一)8) a qualifier belongs to; empty for
    /// every other code. Used to show a refusal's nearest clause first.
    pub fn clauses(self) -> &'static [u8] {
        match self {
            ConditionCode::FpRuralCouple => &[1, 2],
            ConditionCode::FpBornOnOrAfter
            | ConditionCode::FpNoViolationSince
            | ConditionCode::FpChildrenCondition => &[1],
            ConditionCode::FpRewardAge => &[1, 5],
            ConditionCode::FpTwoDaughters
            | ConditionCode::FpSterilised
            | ConditionCode::FpTwoDaughterAgeYear
            | ConditionCode::FpBelowRewardAge => &[2],
            ConditionCode::FpWifeAgeBereaved | ConditionCode::FpOnlyChildDied => &[3],
            ConditionCode::FpNoFurtherBirthOrAdoption => &[3, 4],
            ConditionCode::FpOnlyChildDisabled
            | ConditionCode::FpChildNotRecovered
            | ConditionCode::FpWifeAgeDisabledChild => &[4],
            ConditionCode::FpUrbanSpouse
            | ConditionCode::FpHonourCertificate
            | ConditionCode::FpUrbanDibaoCertificate
            | ConditionCode::FpOneLivingChild => &[5],
            _ => &[],
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn condition_codes_are_unique_snake_case_and_match_serde() {
        for (index, code) in ConditionCode::ALL.iter().enumerate() {
            let text = code.as_str();
            assert!(
                text.bytes()
                    .all(|byte| byte.is_ascii_lowercase() || byte == b'_')
            );
            assert_eq!(serde_json::to_string(code).unwrap(), format!("\"{text}\""));
            assert!(!code.zh().is_empty() && !code.en().is_empty());
            for other in &ConditionCode::ALL[index + 1..] {
                assert_ne!(text, other.as_str());
            }
        }
    }

    #[test]
    fn reason_values_render() {
        assert_eq!(ReasonValue::Percent(7_000).render(Language::En), "70%");
        assert_eq!(ReasonValue::Percent(1_250).render(Language::En), "12.50%");
        assert_eq!(
            ReasonValue::Coefficient(13_500).render(Language::En),
            "1.35"
        );
        assert_eq!(
            ReasonValue::Money(Money::from_fen(98_000)).render(Language::Zh),
            "980.00元"
        );
    }
}
