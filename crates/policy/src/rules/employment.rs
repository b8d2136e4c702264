//! 就业援助 (employment assistance, seed 三(三)): one government-subsidised training per person
//! for registered unemployed urban residents with district hukou, unemployed graduates and rural
//! surplus labour who wish to train, with a one-off subsidy. "At most once per person": a member
//! who has had the subsidised training is refused.
//!
//! And (issue 20 item 7) the same item's public-welfare posts: "政府投资开发的公益性岗位要优先安排
//! 就业困难人员,在相应期限内给予社会保险补贴和岗位补贴" — a person with employment difficulty placed
//! in such a post receives both subsidies monthly for `employment.public_welfare_post_subsidy_years`
//! from the placement.

use sunshine_domain::Money;

use super::{Explanation, add, check_hukou_in_district};
use crate::catalogue::ProgramCode;
use crate::dates::age_on;
use crate::dates::completed_years;
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

/// Seed 三(三): "政府投资开发的公益性岗位要优先安排就业困难人员,在相应期限内给予社会保险补贴和岗位补贴".
/// Per member: district hukou, a person with employment difficulty, placed in a
/// public-welfare post, fewer than `public_welfare_post_subsidy_years` completed years since the
/// placement; the social-insurance and the post subsidy a month each.
pub(super) fn evaluate_public_welfare_post(
    resolved: &ResolvedPolicy,
    household: &HouseholdFacts,
) -> Result<Decision, PolicyError> {
    const PROGRAM: ProgramCode = ProgramCode::EmploymentPublicWelfarePost;
    let parameters = &resolved.employment;
    let mut explanation = Explanation::with_capacity(1 + 5 * household.members.len());
    let in_district = check_hukou_in_district(&mut explanation, resolved, household);
    let mut any_eligible = false;
    let mut amount = Money::ZERO;
    for (index, member) in household.members.iter().enumerate() {
        let who = Some(index);
        let employment = &member.employment;
        let difficulty = explanation.condition(
            who,
            ConditionCode::EmploymentDifficulty,
            ReasonValue::Flag(employment.employment_difficulty),
            ReasonValue::Flag(true),
            employment.employment_difficulty,
        );
        let placed_since = employment
            .public_welfare_post_since
            .filter(|since| *since <= resolved.as_of);
        let placed = explanation.condition(
            who,
            ConditionCode::InPublicWelfarePost,
            placed_since.map_or(ReasonValue::None, ReasonValue::Date),
            ReasonValue::Flag(true),
            placed_since.is_some(),
        );
        let Some(since) = placed_since else {
            continue;
        };
        let years = completed_years(since, resolved.as_of);
        let within = explanation.condition(
            who,
            ConditionCode::WithinPostSubsidyPeriod,
            ReasonValue::Years(i64::from(years)),
            ReasonValue::Years(i64::from(parameters.public_welfare_post_subsidy_years)),
            years < parameters.public_welfare_post_subsidy_years,
        );
        if in_district && difficulty && placed && within {
            any_eligible = true;
            let social_insurance = parameters.public_welfare_post_social_insurance_subsidy_monthly;
            let post = parameters.public_welfare_post_subsidy_monthly;
            explanation.calculation(
                who,
                ConditionCode::PublicWelfarePostSocialInsuranceSubsidy,
                ReasonValue::Money(social_insurance),
                ReasonValue::None,
            );
            explanation.calculation(
                who,
                ConditionCode::PublicWelfarePostSubsidy,
                ReasonValue::Money(post),
                ReasonValue::None,
            );
            amount = add(amount, add(social_insurance, post, PROGRAM)?, PROGRAM)?;
        }
    }
    Ok(explanation.into_decision(resolved, PROGRAM, any_eligible, amount))
}
