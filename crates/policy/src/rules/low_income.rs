//! Issue 20 item 10: near-dibao households (低保边缘家庭) and rigid-expenditure hardship
//! households (刚性支出困难家庭), recognised from `near_dibao.in_force_from` (nationally
//! 2025-01-01). Not in the 2023 seed; the recognition rules follow the national ones as the
//! example district reads them (`policy/example-district/low_income.toml`):
//!
//! - near-dibao: per-capita counted income at or above the dibao standard and below
//!   `near_dibao.income_multiple` times it, financial assets within the limit; the decision
//!   names the band the household falls in (dibao / near-dibao / above);
//! - rigid-expenditure: per-capita counted income within `rigid_expenditure.income_limit…`, and
//!   after the necessary medical, education and other spending of the last 12 months (per month)
//!   below the dibao standard.
//!
//! Both are recognitions (the special assistance they open is decided by each program); the
//! amount is the individual dibao of members enrolled alone (单人户施保): severely disabled
//! (grade ≤ `near_dibao.individual_enrolment_disability_grade_max`) or seriously ill members,
//! each the dibao standard less the member's own counted income. Comparisons are exact.

use sunshine_domain::Money;

use super::{Explanation, add, check_hukou_in_district, member_count, times};
use crate::catalogue::ProgramCode;
use crate::decision::{ConditionCode, Decision, ReasonValue};
use crate::error::PolicyError;
use crate::facts::{HouseholdFacts, HukouType};
use crate::income::{counted_household_income, counted_member_income, per_capita};
use crate::resolved::ResolvedPolicy;

fn overflow(program: ProgramCode) -> PolicyError {
    PolicyError::AmountOverflow {
        program: program.as_str(),
    }
}

fn check_in_force(explanation: &mut Explanation, resolved: &ResolvedPolicy) -> bool {
    let from = resolved.near_dibao.in_force_from;
    explanation.condition(
        None,
        ConditionCode::RecognitionInForce,
        ReasonValue::Date(resolved.as_of),
        ReasonValue::Date(from),
        resolved.as_of >= from,
    )
}

fn household_standard(resolved: &ResolvedPolicy, household: &HouseholdFacts) -> Money {
    let hukou_type = household
        .head()
        .map_or(HukouType::Urban, |head| head.hukou_type);
    resolved.dibao_standard(hukou_type)
}

/// Severely disabled or seriously ill members enrolled in dibao alone; returns their total.
fn individual_enrolment(
    explanation: &mut Explanation,
    resolved: &ResolvedPolicy,
    household: &HouseholdFacts,
    standard: Money,
    program: ProgramCode,
) -> Result<Money, PolicyError> {
    let grade_max = resolved
        .near_dibao
        .individual_enrolment_disability_grade_max;
    let mut total = Money::ZERO;
    for (index, member) in household.members.iter().enumerate() {
        let severe = member
            .disability
            .is_some_and(|disability| disability.grade <= grade_max);
        if !(severe || member.serious_illness) {
            continue;
        }
        let own = counted_member_income(member, resolved.excluded_income)?;
        let amount = standard
            .checked_sub(own)
            .ok_or_else(|| overflow(program))?
            .max(Money::ZERO);
        explanation.calculation(
            Some(index),
            ConditionCode::IndividualDibaoEnrolment,
            ReasonValue::Money(amount),
            ReasonValue::text(if severe {
                "severely disabled"
            } else {
                "seriously ill"
            }),
        );
        total = add(total, amount, program)?;
    }
    Ok(total)
}

/// 低保边缘家庭: "家庭人均收入高于当地最低生活保障标准,但低于当地最低生活保障标准的1.5倍" (the
/// multiple a parameter), financial assets within the limit.
pub(super) fn evaluate_near_dibao(
    resolved: &ResolvedPolicy,
    household: &HouseholdFacts,
) -> Result<Decision, PolicyError> {
    const PROGRAM: ProgramCode = ProgramCode::NearDibao;
    let parameters = &resolved.near_dibao;
    let mut explanation = Explanation::with_capacity(8 + household.members.len());
    let in_force = check_in_force(&mut explanation, resolved);
    let in_district = check_hukou_in_district(&mut explanation, resolved, household);
    let members = member_count(household);
    let standard = household_standard(resolved, household);
    let standard_total = times(standard, members, PROGRAM)?;
    let counted = counted_household_income(household, resolved.excluded_income)?;
    let per_capita_income = per_capita(counted, household.members.len())?;
    let multiple = parameters.income_multiple_basis_points;
    // Exact: counted < standard_total × multiple / 10 000.
    let below_line = i128::from(counted.fen()) * 10_000
        < i128::from(standard_total.fen()) * i128::from(multiple);
    let not_dibao = counted >= standard_total;
    let band = if !not_dibao {
        "dibao (below the dibao standard)"
    } else if below_line {
        "near_dibao (from the standard to below its multiple)"
    } else {
        "above the near-dibao line"
    };
    let ratio = if standard_total.is_zero() {
        0
    } else {
        counted
            .checked_mul_ratio(10_000, standard_total.fen())
            .map_err(|_| overflow(PROGRAM))?
            .fen()
    };
    explanation.calculation(
        None,
        ConditionCode::NearDibaoBand,
        ReasonValue::Coefficient(ratio),
        ReasonValue::text(band),
    );
    let at_or_above = explanation.condition(
        None,
        ConditionCode::IncomeAtOrAboveDibaoStandard,
        ReasonValue::Money(per_capita_income),
        ReasonValue::Money(standard),
        not_dibao,
    );
    let below = explanation.condition(
        None,
        ConditionCode::IncomeBelowNearDibaoLine,
        ReasonValue::Money(per_capita_income),
        ReasonValue::Coefficient(multiple),
        below_line,
    );
    let asset_limit = times(
        standard_total,
        parameters.asset_limit_months_of_standard,
        PROGRAM,
    )?;
    let assets_ok = explanation.condition(
        None,
        ConditionCode::AssetsWithinNearDibaoLimit,
        ReasonValue::Money(household.assets.financial_assets),
        ReasonValue::Money(asset_limit),
        household.assets.financial_assets <= asset_limit,
    );
    let eligible = in_force && in_district && at_or_above && below && assets_ok;
    let amount = if eligible {
        individual_enrolment(&mut explanation, resolved, household, standard, PROGRAM)?
    } else {
        Money::ZERO
    };
    Ok(explanation.into_decision(resolved, PROGRAM, eligible, amount))
}

/// 刚性支出困难家庭: per-capita income within the low-income line, and after the necessary
/// medical, education and similar spending of the last 12 months below the dibao standard.
pub(super) fn evaluate_rigid_expenditure(
    resolved: &ResolvedPolicy,
    household: &HouseholdFacts,
) -> Result<Decision, PolicyError> {
    const PROGRAM: ProgramCode = ProgramCode::RigidExpenditureHardship;
    let parameters = &resolved.rigid_expenditure;
    let mut explanation = Explanation::with_capacity(8 + household.members.len());
    let in_force = check_in_force(&mut explanation, resolved);
    let in_district = check_hukou_in_district(&mut explanation, resolved, household);
    let members = member_count(household);
    let standard = household_standard(resolved, household);
    let standard_total = times(standard, members, PROGRAM)?;
    let counted = counted_household_income(household, resolved.excluded_income)?;
    let per_capita_income = per_capita(counted, household.members.len())?;
    let limit_total = times(parameters.income_limit_per_capita_monthly, members, PROGRAM)?;
    let within_line = explanation.condition(
        None,
        ConditionCode::IncomeWithinLowIncomeLine,
        ReasonValue::Money(per_capita_income),
        ReasonValue::Money(parameters.income_limit_per_capita_monthly),
        counted <= limit_total,
    );
    let annual_rigid = add(
        add(
            household.annual_medical_out_of_pocket,
            household.annual_education_spending,
            PROGRAM,
        )?,
        household.annual_other_rigid_spending,
        PROGRAM,
    )?;
    let monthly_rigid = annual_rigid
        .checked_mul_ratio(1, 12)
        .map_err(|_| overflow(PROGRAM))?;
    explanation.calculation(
        None,
        ConditionCode::RigidSpendingMonthly,
        ReasonValue::Money(monthly_rigid),
        ReasonValue::Money(annual_rigid),
    );
    // Exact: counted − annual_rigid / 12 < standard_total ⇔ 12 × counted − annual < 12 × total.
    let after = i128::from(counted.fen()) * 12 - i128::from(annual_rigid.fen());
    let after_below = after < i128::from(standard_total.fen()) * 12;
    let after_per_capita = per_capita(
        counted
            .checked_sub(monthly_rigid)
            .ok_or_else(|| overflow(PROGRAM))?,
        household.members.len(),
    )?;
    let below = explanation.condition(
        None,
        ConditionCode::IncomeAfterRigidSpendingBelowStandard,
        ReasonValue::Money(after_per_capita),
        ReasonValue::Money(standard),
        after_below,
    );
    let eligible = in_force && in_district && within_line && below;
    let amount = if eligible {
        individual_enrolment(&mut explanation, resolved, household, standard, PROGRAM)?
    } else {
        Money::ZERO
    };
    Ok(explanation.into_decision(resolved, PROGRAM, eligible, amount))
}
