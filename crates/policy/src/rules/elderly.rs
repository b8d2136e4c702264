//! The elderly programs of seed 三(一)5–7: the basic old-age subsidy (养老补贴), the longevity
//! subsidy (长寿补贴) with its 90–99 and 100+ rules, and home-based elderly care (居家养老).

use sunshine_domain::Money;

use super::{Explanation, add, check_hukou_in_district, check_permanent_resident, residence_years};
use crate::catalogue::ProgramCode;
use crate::dates::age_on;
use crate::decision::{ConditionCode, Decision, ReasonValue};
use crate::error::PolicyError;
use crate::facts::{HouseholdFacts, LabourCapacity, PensionStatus};
use crate::income::counted_member_income;
use crate::resolved::{ResolvedPolicy, tier_amount};

fn check_no_retirement_pension(
    explanation: &mut Explanation,
    member_index: usize,
    pension: PensionStatus,
) -> bool {
    explanation.condition(
        Some(member_index),
        ConditionCode::NoRetirementPension,
        ReasonValue::text(pension.as_str()),
        ReasonValue::text("no retirement_pension"),
        pension != PensionStatus::RetirementPension,
    )
}

/// Seed 三(一)6: permanent resident, aged 60 or over, no retirement pension.
pub(super) fn evaluate_old_age_subsidy(
    resolved: &ResolvedPolicy,
    household: &HouseholdFacts,
) -> Result<Decision, PolicyError> {
    const PROGRAM: ProgramCode = ProgramCode::OldAgeSubsidy;
    let parameters = &resolved.old_age_subsidy;
    let mut explanation = Explanation::with_capacity(4 * household.members.len());
    let mut any_eligible = false;
    let mut amount = Money::ZERO;
    for (index, member) in household.members.iter().enumerate() {
        let age = age_on(member.birth_date, resolved.as_of);
        let resident =
            check_permanent_resident(&mut explanation, resolved, household, index, member);
        let old_enough = explanation.condition(
            Some(index),
            ConditionCode::MinimumAge,
            ReasonValue::Years(i64::from(age)),
            ReasonValue::Years(i64::from(parameters.min_age)),
            age >= parameters.min_age,
        );
        let no_pension = check_no_retirement_pension(&mut explanation, index, member.pension);
        if resident && old_enough && no_pension {
            any_eligible = true;
            let member_amount = tier_amount(&parameters.monthly_amount_by_age, i64::from(age))
                .unwrap_or(Money::ZERO);
            explanation.calculation(
                Some(index),
                ConditionCode::AmountByAgeTier,
                ReasonValue::Money(member_amount),
                ReasonValue::Years(i64::from(age)),
            );
            amount = add(amount, member_amount, PROGRAM)?;
        }
    }
    Ok(explanation.into_decision(resolved, PROGRAM, any_eligible, amount))
}

/// Seed 三(一)7: "对具有我区常住户口3年以上、年龄90至99周岁,且无离退休金的老年人发放长寿补贴。
/// 年龄在百岁以上(含百岁)的老年人,根据实际年龄按规定标准给予和增发长寿补贴。"
///
/// Permanent resident for 3+ years, aged 90–99, no retirement pension; aged 100 or over: the
/// amount by actual age, "给予和增发" on top of the 90–99 rule. Whether that rule's residence
/// and pension conditions carry over to the 100+ tier are two parameters
/// (`longevity.centenarian_residence_carries_over`, default true;
/// `longevity.centenarian_pension_carries_over`, default false).
pub(super) fn evaluate_longevity(
    resolved: &ResolvedPolicy,
    household: &HouseholdFacts,
) -> Result<Decision, PolicyError> {
    const PROGRAM: ProgramCode = ProgramCode::Longevity;
    let parameters = &resolved.longevity;
    let mut explanation = Explanation::with_capacity(5 * household.members.len());
    let mut any_eligible = false;
    let mut amount = Money::ZERO;
    for (index, member) in household.members.iter().enumerate() {
        let age = age_on(member.birth_date, resolved.as_of);
        let centenarian = age >= parameters.centenarian_age;
        let resident =
            check_permanent_resident(&mut explanation, resolved, household, index, member);
        let required_years = if centenarian && !parameters.centenarian_residence_carries_over {
            0
        } else {
            parameters.min_residence_years
        };
        let years = residence_years(resolved, member);
        let long_enough = explanation.condition(
            Some(index),
            ConditionCode::ResidenceYears,
            ReasonValue::Years(i64::from(years)),
            ReasonValue::Years(i64::from(required_years)),
            years >= required_years,
        );
        let old_enough = explanation.condition(
            Some(index),
            ConditionCode::MinimumAge,
            ReasonValue::Years(i64::from(age)),
            ReasonValue::Years(i64::from(parameters.min_age)),
            age >= parameters.min_age,
        );
        let pension_ok = if centenarian && !parameters.centenarian_pension_carries_over {
            true
        } else {
            check_no_retirement_pension(&mut explanation, index, member.pension)
        };
        if resident && long_enough && old_enough && pension_ok {
            any_eligible = true;
            let member_amount = tier_amount(&parameters.monthly_amount_by_age, i64::from(age))
                .unwrap_or(Money::ZERO);
            explanation.calculation(
                Some(index),
                ConditionCode::AmountByAgeTier,
                ReasonValue::Money(member_amount),
                ReasonValue::Years(i64::from(age)),
            );
            amount = add(amount, member_amount, PROGRAM)?;
        }
    }
    Ok(explanation.into_decision(resolved, PROGRAM, any_eligible, amount))
}

/// Seed 三(一)5: "通过社区服务载体,对城镇社区空巢老年人、'三无'老人,提供无偿、低偿、有偿的居家养老
/// 服务": elderly living in an urban community (by residence, not hukou type:
/// [`HouseholdFacts::lives_in_urban_community`]) who are empty-nest or "three-no" (no labour
/// capacity, no income, no able supporter). Three-no: free services; needy empty-nest:
/// low-cost services with a subsidy; other empty-nest: paid services, no subsidy.
pub(super) fn evaluate_home_care(
    resolved: &ResolvedPolicy,
    household: &HouseholdFacts,
) -> Result<Decision, PolicyError> {
    const PROGRAM: ProgramCode = ProgramCode::HomeElderlyCare;
    let parameters = &resolved.home_care;
    let mut explanation = Explanation::with_capacity(1 + 4 * household.members.len());
    let in_district = check_hukou_in_district(&mut explanation, resolved, household);
    let community = household.lives_in_urban_community();
    let urban = explanation.condition(
        None,
        ConditionCode::UrbanCommunityResidence,
        ReasonValue::Flag(community),
        ReasonValue::Flag(true),
        community,
    );
    let mut any_eligible = false;
    let mut amount = Money::ZERO;
    for (index, member) in household.members.iter().enumerate() {
        let age = age_on(member.birth_date, resolved.as_of);
        let old_enough = explanation.condition(
            Some(index),
            ConditionCode::MinimumAge,
            ReasonValue::Years(i64::from(age)),
            ReasonValue::Years(i64::from(parameters.min_age)),
            age >= parameters.min_age,
        );
        let income = counted_member_income(member, resolved.excluded_income)?;
        let three_no = member.labour_capacity == LabourCapacity::None
            && income.is_zero()
            && !member.has_able_supporter;
        let status = if three_no {
            "three_no"
        } else if household.empty_nest {
            "empty_nest"
        } else {
            "neither"
        };
        let in_target_group = explanation.condition(
            Some(index),
            ConditionCode::EmptyNestOrThreeNo,
            ReasonValue::text(status),
            ReasonValue::text("three_no | empty_nest"),
            three_no || household.empty_nest,
        );
        if in_district && old_enough && urban && in_target_group {
            any_eligible = true;
            let (tier, member_amount) = if three_no {
                ("free", parameters.free_service_value_monthly)
            } else if household.recipient_category.is_poor() {
                ("low_cost", parameters.low_cost_subsidy_monthly)
            } else {
                ("paid", Money::ZERO)
            };
            explanation.calculation(
                Some(index),
                ConditionCode::HomeCareServiceTier,
                ReasonValue::Money(member_amount),
                ReasonValue::text(tier),
            );
            amount = add(amount, member_amount, PROGRAM)?;
        }
    }
    Ok(explanation.into_decision(resolved, PROGRAM, any_eligible, amount))
}
