//! Seed 三(一)9–11: legal aid and judicial assistance (free for dibao and tekun households), aid
//! for old and needy Party members, and later-stage support for reservoir migrants.

use sunshine_domain::Money;

use super::{Explanation, add, check_hukou_in_district};
use crate::catalogue::ProgramCode;
use crate::dates::anniversary;
use crate::decision::{ConditionCode, Decision, ReasonValue};
use crate::error::PolicyError;
use crate::facts::HouseholdFacts;
use crate::hardship::{HardshipCoefficient, HardshipLevel};
use crate::resolved::ResolvedPolicy;

/// Seed 三(一)9: "为城乡低保户和其他特困群众无偿提供法律援助和司法救助": a fee exemption, no cash.
/// "其他特困群众" is read as tekun and low-income households and any household whose hardship
/// coefficient reaches 特别困难 (`hardship.level_severe_from`).
pub(super) fn evaluate_legal_aid(
    resolved: &ResolvedPolicy,
    household: &HouseholdFacts,
) -> Result<Decision, PolicyError> {
    const PROGRAM: ProgramCode = ProgramCode::LegalAid;
    let mut explanation = Explanation::with_capacity(3);
    let in_district = check_hukou_in_district(&mut explanation, resolved, household);
    let category = household.recipient_category;
    // "其他特困群众": low-income households, and any household whose hardship coefficient
    // reaches 特别困难 (the coefficient is computed only when the category does not decide).
    let covered = if category.is_poor() {
        explanation.condition(
            None,
            ConditionCode::RecipientInSpecialHardship,
            ReasonValue::text(category.as_str()),
            ReasonValue::text("dibao | tekun | low_income | hardship 特别困难"),
            true,
        )
    } else {
        let hardship = HardshipCoefficient::compute(resolved, household)?;
        explanation.condition(
            None,
            ConditionCode::RecipientInSpecialHardship,
            ReasonValue::Coefficient(hardship.basis_points),
            ReasonValue::Coefficient(resolved.hardship.level_severe_from),
            hardship.level == HardshipLevel::Severe,
        )
    };
    let eligible = in_district && covered;
    if eligible {
        explanation.calculation(
            None,
            ConditionCode::FreeLegalAid,
            ReasonValue::Money(Money::ZERO),
            ReasonValue::None,
        );
    }
    Ok(explanation.into_decision(resolved, PROGRAM, eligible, Money::ZERO))
}

/// Pre-founding Party members (joined before 1949-10-01) receive the regular yearly subsidy;
/// other Party members of dibao, tekun or low-income households a yearly visit payment.
pub(super) fn evaluate_party_member_aid(
    resolved: &ResolvedPolicy,
    household: &HouseholdFacts,
) -> Result<Decision, PolicyError> {
    const PROGRAM: ProgramCode = ProgramCode::PartyMemberAid;
    let parameters = &resolved.party_member_aid;
    let mut explanation = Explanation::with_capacity(1 + 3 * household.members.len());
    let in_district = check_hukou_in_district(&mut explanation, resolved, household);
    let needy = household.recipient_category.is_poor();
    let mut any_eligible = false;
    let mut amount = Money::ZERO;
    for (index, member) in household.members.iter().enumerate() {
        let who = Some(index);
        let member_since = member
            .party_member_since
            .filter(|since| *since <= resolved.as_of);
        let is_member = explanation.condition(
            who,
            ConditionCode::PartyMember,
            member_since.map_or(ReasonValue::None, ReasonValue::Date),
            ReasonValue::Flag(true),
            member_since.is_some(),
        );
        let Some(since) = member_since else {
            continue;
        };
        let pre_founding = explanation.qualifier(
            who,
            ConditionCode::JoinedBeforeFounding,
            ReasonValue::Date(since),
            ReasonValue::Date(parameters.founding_date),
            since < parameters.founding_date,
        );
        let needy_member = !pre_founding
            && explanation.qualifier(
                who,
                ConditionCode::NeedyHousehold,
                ReasonValue::text(household.recipient_category.as_str()),
                ReasonValue::text("dibao | tekun | low_income"),
                needy,
            );
        if in_district && is_member && (pre_founding || needy_member) {
            any_eligible = true;
            let member_amount = if pre_founding {
                parameters.pre_founding_member_annual
            } else {
                parameters.needy_member_visit_annual
            };
            explanation.calculation(
                who,
                ConditionCode::PartyMemberAidAmount,
                ReasonValue::Money(member_amount),
                ReasonValue::None,
            );
            amount = add(amount, member_amount, PROGRAM)?;
        }
    }
    Ok(explanation.into_decision(resolved, PROGRAM, any_eligible, amount))
}

/// Migrants in the support scope receive the yearly amount for `support_years` years from the
/// later of the policy start and their relocation.
pub(super) fn evaluate_reservoir_migrant_support(
    resolved: &ResolvedPolicy,
    household: &HouseholdFacts,
) -> Result<Decision, PolicyError> {
    const PROGRAM: ProgramCode = ProgramCode::ReservoirMigrantSupport;
    let parameters = &resolved.reservoir_migrant;
    let mut explanation = Explanation::with_capacity(1 + 3 * household.members.len());
    let in_district = check_hukou_in_district(&mut explanation, resolved, household);
    let mut any_eligible = false;
    let mut amount = Money::ZERO;
    for (index, member) in household.members.iter().enumerate() {
        let who = Some(index);
        let in_scope = explanation.condition(
            who,
            ConditionCode::ReservoirMigrantInScope,
            ReasonValue::Flag(
                member
                    .reservoir_migrant
                    .is_some_and(|migrant| migrant.in_support_scope),
            ),
            ReasonValue::Flag(true),
            member
                .reservoir_migrant
                .is_some_and(|migrant| migrant.in_support_scope),
        );
        let Some(migrant) = member.reservoir_migrant else {
            continue;
        };
        let start = migrant.relocated_on.max(parameters.policy_start);
        let end =
            anniversary(start, parameters.support_years).ok_or(PolicyError::DateOutOfRange)?;
        let within = explanation.condition(
            who,
            ConditionCode::WithinSupportPeriod,
            ReasonValue::Date(resolved.as_of),
            ReasonValue::Date(end),
            resolved.as_of >= start && resolved.as_of < end,
        );
        if in_district && in_scope && within {
            any_eligible = true;
            explanation.calculation(
                who,
                ConditionCode::ReservoirSupportAmount,
                ReasonValue::Money(parameters.annual_per_person),
                ReasonValue::None,
            );
            amount = add(amount, parameters.annual_per_person, PROGRAM)?;
        }
    }
    Ok(explanation.into_decision(resolved, PROGRAM, any_eligible, amount))
}
