//! 自然灾害生活救助 (natural-disaster relief): within the application window after a disaster,
//! emergency living assistance per affected member, transitional living assistance per member
//! per uninhabitable day (up to a maximum), and a subsidy to rebuild or repair the house.

use sunshine_domain::Money;

use super::{Explanation, add, check_hukou_in_district, times};
use crate::catalogue::ProgramCode;
use crate::decision::{ConditionCode, Decision, ReasonValue};
use crate::error::PolicyError;
use crate::facts::{HouseDamage, HouseholdFacts};
use crate::resolved::ResolvedPolicy;

const PROGRAM: ProgramCode = ProgramCode::Disaster;

pub(super) fn evaluate(
    resolved: &ResolvedPolicy,
    household: &HouseholdFacts,
) -> Result<Decision, PolicyError> {
    let parameters = &resolved.disaster;
    let mut explanation = Explanation::with_capacity(6);
    let in_district = check_hukou_in_district(&mut explanation, resolved, household);
    let days_since = household
        .disaster
        .map(|disaster| (resolved.as_of - disaster.occurred_on).whole_days());
    let within_window = explanation.condition(
        None,
        ConditionCode::DisasterWithinClaimWindow,
        days_since.map_or(ReasonValue::None, ReasonValue::Days),
        ReasonValue::Days(parameters.claim_window_days),
        days_since.is_some_and(|days| days <= parameters.claim_window_days),
    );
    let affected = household
        .disaster
        .map_or(0, |disaster| disaster.affected_members);
    let has_affected = explanation.condition(
        None,
        ConditionCode::AffectedMembers,
        ReasonValue::Integer(i64::from(affected)),
        ReasonValue::Integer(1),
        affected >= 1,
    );
    let eligible = in_district && within_window && has_affected;
    let mut amount = Money::ZERO;
    if let (true, Some(disaster)) = (eligible, household.disaster) {
        let affected = i64::from(disaster.affected_members);
        let emergency_living = times(parameters.emergency_living_per_person, affected, PROGRAM)?;
        explanation.calculation(
            None,
            ConditionCode::DisasterEmergencyLiving,
            ReasonValue::Money(emergency_living),
            ReasonValue::Money(parameters.emergency_living_per_person),
        );
        let days = disaster
            .days_uninhabitable
            .min(parameters.transitional_max_days);
        let transitional = times(
            times(
                parameters.transitional_living_per_person_per_day,
                affected,
                PROGRAM,
            )?,
            i64::from(days),
            PROGRAM,
        )?;
        explanation.calculation(
            None,
            ConditionCode::DisasterTransitionalLiving,
            ReasonValue::Money(transitional),
            ReasonValue::Days(i64::from(days)),
        );
        let house = match disaster.house_damage {
            HouseDamage::None => Money::ZERO,
            HouseDamage::Damaged => parameters.repair_subsidy_per_household,
            HouseDamage::Destroyed => parameters.rebuild_subsidy_per_household,
        };
        explanation.calculation(
            None,
            ConditionCode::DisasterHouseSubsidy,
            ReasonValue::Money(house),
            ReasonValue::text(match disaster.house_damage {
                HouseDamage::None => "none",
                HouseDamage::Damaged => "damaged",
                HouseDamage::Destroyed => "destroyed",
            }),
        );
        amount = add(
            add(emergency_living, transitional, PROGRAM)?,
            house,
            PROGRAM,
        )?;
    }
    Ok(explanation.into_decision(resolved, PROGRAM, eligible, amount))
}
