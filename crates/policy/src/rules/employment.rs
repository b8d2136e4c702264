//! 就业援助 (employment assistance, seed 三(三)): one government-subsidised training per person
//! for registered unemployed urban residents with district hukou, unemployed graduates and rural
//! surplus labour who wish to train, with a one-off subsidy. "At most once per person": a member
//! who has had the subsidised training is refused.

use sunshine_domain::Money;

use super::{Explanation, add, check_hukou_in_district};
use crate::catalogue::ProgramCode;
use crate::dates::age_on;
use crate::decision::{ConditionCode, Decision, ReasonValue};
use crate::error::PolicyError;
use crate::facts::{EmploymentStatus, HouseholdFacts};
use crate::resolved::ResolvedPolicy;

const PROGRAM: ProgramCode = ProgramCode::EmploymentTraining;

pub(super) fn evaluate(
    resolved: &ResolvedPolicy,
    household: &HouseholdFacts,
) -> Result<Decision, PolicyError> {
    let parameters = &resolved.employment;
    let mut explanation = Explanation::with_capacity(1 + 5 * household.members.len());
    let in_district = check_hukou_in_district(&mut explanation, resolved, household);
    let mut any_eligible = false;
    let mut amount = Money::ZERO;
    for (index, member) in household.members.iter().enumerate() {
        let who = Some(index);
        let status = member.employment.status;
        let target = explanation.condition(
            who,
            ConditionCode::TrainingTargetGroup,
            ReasonValue::text(status.as_str()),
            ReasonValue::text(
                "registered_unemployed_urban | unemployed_graduate | rural_surplus_labour",
            ),
            matches!(
                status,
                EmploymentStatus::RegisteredUnemployedUrban
                    | EmploymentStatus::UnemployedGraduate
                    | EmploymentStatus::RuralSurplusLabour
            ),
        );
        if !target {
            continue;
        }
        let wants = explanation.condition(
            who,
            ConditionCode::WantsTraining,
            ReasonValue::Flag(member.employment.wants_training),
            ReasonValue::Flag(true),
            member.employment.wants_training,
        );
        let first_time = explanation.condition(
            who,
            ConditionCode::TrainingNotYetReceived,
            ReasonValue::Flag(!member.employment.subsidised_training_received),
            ReasonValue::Flag(true),
            !member.employment.subsidised_training_received,
        );
        let age = age_on(member.birth_date, resolved.as_of);
        let old_enough = explanation.condition(
            who,
            ConditionCode::MinimumAge,
            ReasonValue::Years(i64::from(age)),
            ReasonValue::Years(i64::from(parameters.min_age)),
            age >= parameters.min_age,
        );
        let young_enough = explanation.condition(
            who,
            ConditionCode::BelowAgeLimit,
            ReasonValue::Years(i64::from(age)),
            ReasonValue::Years(i64::from(parameters.age_limit)),
            age < parameters.age_limit,
        );
        if in_district && wants && first_time && old_enough && young_enough {
            any_eligible = true;
            explanation.calculation(
                who,
                ConditionCode::TrainingSubsidy,
                ReasonValue::Money(parameters.training_subsidy_one_off),
                ReasonValue::None,
            );
            amount = add(amount, parameters.training_subsidy_one_off, PROGRAM)?;
        }
    }
    Ok(explanation.into_decision(resolved, PROGRAM, any_eligible, amount))
}
