//! Housing (seed 三(五)): H1 urban housing support — for low- and middle-income urban
//! households with housing difficulty, a rent subsidy for those who rent and public rental
//! housing or allocation in kind for those who do not; H2 rural safe housing — a subsidy to
//! build or repair for rural households in difficulty with no house or a dangerous one.

use sunshine_domain::Money;

use super::{Explanation, check_hukou_in_district, member_count, share_of, times};
use crate::catalogue::ProgramCode;
use crate::decision::{ConditionCode, Decision, ReasonValue};
use crate::error::PolicyError;
use crate::facts::{
    HouseDamage, HouseholdFacts, HukouType, RecipientCategory, RuralHouseCondition,
};
use crate::income::{counted_household_income, per_capita};
use crate::resolved::ResolvedPolicy;

fn check_head_hukou(
    explanation: &mut Explanation,
    household: &HouseholdFacts,
    wanted: HukouType,
) -> bool {
    let actual = household.head().map_or(wanted, |head| head.hukou_type);
    let code = match wanted {
        HukouType::Urban => ConditionCode::UrbanHukou,
        HukouType::Rural => ConditionCode::RuralHukou,
    };
    explanation.condition(
        None,
        code,
        ReasonValue::text(actual.as_str()),
        ReasonValue::text(wanted.as_str()),
        actual == wanted,
    )
}

/// H1, seed 三(五)1: "城镇居民不同层次中低收入家庭的住房困难户,实现公共租赁住房、实物配租、廉租住房
/// 补贴等住房保障方式". A household within the income line and with a housing difficulty is
/// eligible; renting decides only the form: a renter gets the rent subsidy (廉租住房补贴), a
/// household that does not rent gets housing in kind — allocation in kind (实物配租) for dibao
/// and tekun households, public rental housing (公共租赁住房) for others — paying nothing in cash.
pub(super) fn evaluate_urban(
    resolved: &ResolvedPolicy,
    household: &HouseholdFacts,
) -> Result<Decision, PolicyError> {
    const PROGRAM: ProgramCode = ProgramCode::HousingUrbanSupport;
    let parameters = &resolved.housing_urban;
    let mut explanation = Explanation::with_capacity(7);
    let in_district = check_hukou_in_district(&mut explanation, resolved, household);
    let urban = check_head_hukou(&mut explanation, household, HukouType::Urban);
    let members = member_count(household);
    let counted_income = counted_household_income(household, resolved.excluded_income)?;
    let income_line_total = times(parameters.income_limit_per_capita_monthly, members, PROGRAM)?;
    let income_ok = explanation.condition(
        None,
        ConditionCode::IncomeWithinHousingLimit,
        ReasonValue::Money(per_capita(counted_income, household.members.len())?),
        ReasonValue::Money(parameters.income_limit_per_capita_monthly),
        counted_income <= income_line_total,
    );
    let housing = household.housing;
    let difficulty = !housing.owns_housing
        || housing.floor_area_per_capita < parameters.max_floor_area_per_capita;
    let has_difficulty = explanation.condition(
        None,
        ConditionCode::HousingDifficulty,
        if housing.owns_housing {
            ReasonValue::Integer(i64::from(housing.floor_area_per_capita))
        } else {
            ReasonValue::text("no own housing")
        },
        ReasonValue::Integer(i64::from(parameters.max_floor_area_per_capita)),
        difficulty,
    );
    let renting = explanation.qualifier(
        None,
        ConditionCode::RentingOnMarket,
        ReasonValue::Money(housing.monthly_rent),
        ReasonValue::Flag(true),
        housing.renting,
    );
    let eligible = in_district && urban && income_ok && has_difficulty;
    let mut amount = Money::ZERO;
    if eligible && !renting {
        let form = match household.recipient_category {
            RecipientCategory::Dibao | RecipientCategory::Tekun => "allocation_in_kind",
            RecipientCategory::LowIncome | RecipientCategory::None => "public_rental_housing",
        };
        explanation.calculation(
            None,
            ConditionCode::HousingInKind,
            ReasonValue::text(form),
            ReasonValue::text("allocation_in_kind (dibao, tekun) | public_rental_housing"),
        );
    }
    if eligible && renting {
        let share = match household.recipient_category {
            RecipientCategory::Dibao | RecipientCategory::Tekun => {
                parameters.rent_subsidy_share_dibao_or_tekun
            }
            RecipientCategory::LowIncome | RecipientCategory::None => {
                parameters.rent_subsidy_share_other
            }
        };
        let full = times(parameters.rent_subsidy_per_person_monthly, members, PROGRAM)?;
        amount = share_of(full, share, PROGRAM)?.min(housing.monthly_rent);
        explanation.calculation(
            None,
            ConditionCode::RentSubsidy,
            ReasonValue::Money(amount),
            ReasonValue::Percent(share),
        );
    }
    Ok(explanation.into_decision(resolved, PROGRAM, eligible, amount))
}

/// H2, seed 三(五)2: "实施'减灾安居工程'、'功臣安居工程'、'我的兄弟姐妹安居工程',为农村各类困难家庭
/// 建设安居住房…根本消除农村困难群众无房户、危房户": rural households with no house or a dangerous
/// one that are poor, have a disabled (我的兄弟姐妹) or entitled (功臣) member, or whose house a
/// disaster damaged or destroyed (减灾).
pub(super) fn evaluate_rural(
    resolved: &ResolvedPolicy,
    household: &HouseholdFacts,
) -> Result<Decision, PolicyError> {
    const PROGRAM: ProgramCode = ProgramCode::HousingRuralSafe;
    let parameters = &resolved.housing_rural;
    let mut explanation = Explanation::with_capacity(5);
    let in_district = check_hukou_in_district(&mut explanation, resolved, household);
    let rural = check_head_hukou(&mut explanation, household, HukouType::Rural);
    let condition = household.housing.rural_house_condition;
    let unsafe_house = explanation.condition(
        None,
        ConditionCode::NoOrDangerousHouse,
        ReasonValue::text(condition.as_str()),
        ReasonValue::text("no_house | dangerous_c | dangerous_d"),
        condition != RuralHouseCondition::Safe,
    );
    // 减灾安居工程: a house damaged or destroyed by a disaster makes the household one of the
    // "农村各类困难家庭" whether or not it is poor.
    let disaster_hit = household
        .disaster
        .is_some_and(|disaster| disaster.house_damage != HouseDamage::None);
    let difficult = household.recipient_category.is_poor()
        || disaster_hit
        || household
            .members
            .iter()
            .any(|member| member.disability.is_some() || member.entitled_group.is_some());
    let in_difficulty = explanation.condition(
        None,
        ConditionCode::DifficultHousehold,
        ReasonValue::text(if disaster_hit {
            "disaster_hit"
        } else {
            household.recipient_category.as_str()
        }),
        ReasonValue::Flag(true),
        difficult,
    );
    let eligible = in_district && rural && unsafe_house && in_difficulty;
    let mut amount = Money::ZERO;
    if eligible {
        amount = match condition {
            RuralHouseCondition::NoHouse | RuralHouseCondition::DangerousD => {
                parameters.rebuild_subsidy
            }
            RuralHouseCondition::DangerousC => parameters.repair_subsidy,
            RuralHouseCondition::Safe => Money::ZERO,
        };
        explanation.calculation(
            None,
            ConditionCode::RuralHousingSubsidy,
            ReasonValue::Money(amount),
            ReasonValue::text(condition.as_str()),
        );
    }
    Ok(explanation.into_decision(resolved, PROGRAM, eligible, amount))
}
