//! 临时救助 (temporary assistance): households hit by a sudden event or a rigid expense. The
//! amount is a base per member times the hardship coefficient, capped per event, by the
//! uncovered expense (expense-driven type) and by what remains of the household's annual cap;
//! the decision also says how much a street-town may pay at once (先行救助).

use sunshine_domain::Money;

use super::{Explanation, check_hukou_in_district, member_count, share_of, times};
use crate::catalogue::ProgramCode;
use crate::decision::{ConditionCode, Decision, ReasonValue};
use crate::error::PolicyError;
use crate::facts::{HouseholdFacts, RecipientCategory};
use crate::hardship::HardshipCoefficient;
use crate::resolved::ResolvedPolicy;

const PROGRAM: ProgramCode = ProgramCode::Temporary;

/// The seed's listed groups: dibao and five-guarantee (tekun) recipients, and poor households
/// with a disabled member or an entitled member (残疾人困难家庭、优抚对象困难家庭).
fn in_listed_group(household: &HouseholdFacts) -> bool {
    match household.recipient_category {
        RecipientCategory::Dibao | RecipientCategory::Tekun => true,
        RecipientCategory::LowIncome => household
            .members
            .iter()
            .any(|member| member.disability.is_some() || member.entitled_group.is_some()),
        RecipientCategory::None => false,
    }
}

pub(super) fn evaluate(
    resolved: &ResolvedPolicy,
    household: &HouseholdFacts,
) -> Result<Decision, PolicyError> {
    let parameters = &resolved.temporary;
    let mut explanation = Explanation::with_capacity(10);
    let hardship = HardshipCoefficient::compute(resolved, household)?;

    let in_district = check_hukou_in_district(&mut explanation, resolved, household);
    let event_reported = explanation.condition(
        None,
        ConditionCode::SuddenEventReported,
        ReasonValue::text(
            household
                .emergency
                .map_or("none", |event| event.kind.as_str()),
        ),
        ReasonValue::Flag(true),
        household.emergency.is_some(),
    );
    let listed = in_listed_group(household);
    let hardship_reached =
        hardship.basis_points >= parameters.min_coefficient_unlisted_basis_points;
    let qualifies = explanation.condition(
        None,
        ConditionCode::ListedGroupOrHardship,
        if listed {
            ReasonValue::text(household.recipient_category.as_str())
        } else {
            ReasonValue::Coefficient(hardship.basis_points)
        },
        ReasonValue::Coefficient(parameters.min_coefficient_unlisted_basis_points),
        listed || hardship_reached,
    );
    let paid_this_year = household.temporary_assistance_paid_this_year;
    let below_annual_cap = explanation.condition(
        None,
        ConditionCode::AnnualCapNotReached,
        ReasonValue::Money(paid_this_year),
        ReasonValue::Money(parameters.annual_cap_per_household),
        paid_this_year < parameters.annual_cap_per_household,
    );
    let eligible = in_district && event_reported && qualifies && below_annual_cap;

    let mut amount = Money::ZERO;
    let mut assist_first_amount = None;
    if let (true, Some(event)) = (eligible, household.emergency) {
        let expense_driven = event.kind.is_expense_driven();
        let base_per_person = if expense_driven {
            parameters.expense_base_per_person
        } else {
            parameters.emergency_base_per_person
        };
        let base = times(base_per_person, member_count(household), PROGRAM)?;
        amount = share_of(base, hardship.basis_points, PROGRAM)?;
        explanation.calculation(
            None,
            ConditionCode::TemporaryBaseTimesCoefficient,
            ReasonValue::Money(amount),
            ReasonValue::Coefficient(hardship.basis_points),
        );
        let cap_per_event = if expense_driven {
            parameters.cap_per_event_expense
        } else {
            parameters.cap_per_event_emergency
        };
        amount = amount.min(cap_per_event);
        explanation.calculation(
            None,
            ConditionCode::CapPerEvent,
            ReasonValue::Money(amount),
            ReasonValue::Money(cap_per_event),
        );
        if expense_driven {
            amount = amount.min(event.uncovered_expense);
            explanation.calculation(
                None,
                ConditionCode::UncoveredExpenseLimit,
                ReasonValue::Money(amount),
                ReasonValue::Money(event.uncovered_expense),
            );
        }
        let remaining = parameters
            .annual_cap_per_household
            .checked_sub(paid_this_year)
            .unwrap_or(Money::ZERO)
            .max(Money::ZERO);
        amount = amount.min(remaining);
        explanation.calculation(
            None,
            ConditionCode::AnnualCapRemaining,
            ReasonValue::Money(amount),
            ReasonValue::Money(remaining),
        );
        let assist_first = amount.min(parameters.assist_first_cap);
        explanation.calculation(
            None,
            ConditionCode::AssistFirstCap,
            ReasonValue::Money(assist_first),
            ReasonValue::Money(parameters.assist_first_cap),
        );
        assist_first_amount = Some(assist_first);
    }
    let mut decision = explanation.into_decision(resolved, PROGRAM, eligible, amount);
    decision.hardship = Some(hardship);
    decision.assist_first_amount = assist_first_amount;
    Ok(decision)
}
