//! 最低生活保障 (dibao), urban and rural: the income test against the local standard, the asset
//! tests, and the amount by the difference method or the tier method.
//!
//! This is the hot path of the benchmark: it reads resolved fields only and allocates once
//! (the reasons vector).

use sunshine_domain::Money;

use super::{Explanation, check_hukou_in_district, member_count, share_of, times};
use crate::catalogue::ProgramCode;
use crate::decision::{ConditionCode, Decision, ReasonValue};
use crate::error::PolicyError;
use crate::facts::{HouseholdFacts, HukouType};
use crate::income::{counted_household_income, per_capita};
use crate::resolved::{DibaoAmountMethod, ResolvedPolicy};

pub(super) fn evaluate(
    resolved: &ResolvedPolicy,
    program: ProgramCode,
    household: &HouseholdFacts,
) -> Result<Decision, PolicyError> {
    let parameters = &resolved.dibao;
    let mut explanation = Explanation::with_capacity(9);

    let in_district = check_hukou_in_district(&mut explanation, resolved, household);

    let program_hukou_type = if program == ProgramCode::DibaoUrban {
        HukouType::Urban
    } else {
        HukouType::Rural
    };
    let household_hukou_type = household
        .head()
        .map_or(program_hukou_type, |head| head.hukou_type);
    let hukou_type_matches = explanation.condition(
        None,
        ConditionCode::DibaoHukouType,
        ReasonValue::text(household_hukou_type.as_str()),
        ReasonValue::text(program_hukou_type.as_str()),
        household_hukou_type == program_hukou_type,
    );

    let members = member_count(household);
    let standard = resolved.dibao_standard(program_hukou_type);
    let standard_total = times(standard, members, program)?;
    let counted_income = counted_household_income(household, resolved.excluded_income)?;
    explanation.calculation(
        None,
        ConditionCode::CountedHouseholdIncome,
        ReasonValue::Money(counted_income),
        ReasonValue::Money(standard_total),
    );
    // Exact comparison: income < standard × members ⇔ per-capita income < standard.
    let per_capita_income = per_capita(counted_income, household.members.len())?;
    let income_below_standard = explanation.condition(
        None,
        ConditionCode::PerCapitaIncomeBelowStandard,
        ReasonValue::Money(per_capita_income),
        ReasonValue::Money(standard),
        counted_income < standard_total,
    );

    let per_capita_asset_limit =
        times(standard, parameters.asset_limit_months_of_standard, program)?;
    let household_asset_limit = times(per_capita_asset_limit, members, program)?;
    let financial_assets = household.assets.financial_assets;
    let assets_within_limit = explanation.condition(
        None,
        ConditionCode::PerCapitaFinancialAssetsWithinLimit,
        ReasonValue::Money(per_capita(financial_assets, household.members.len())?),
        ReasonValue::Money(per_capita_asset_limit),
        financial_assets <= household_asset_limit,
    );
    let vehicles = household.assets.non_essential_vehicles;
    let vehicles_within_limit = explanation.condition(
        None,
        ConditionCode::NonEssentialVehiclesWithinLimit,
        ReasonValue::Integer(i64::from(vehicles)),
        ReasonValue::Integer(i64::from(parameters.max_non_essential_vehicles)),
        vehicles <= parameters.max_non_essential_vehicles,
    );
    let extra_housing = household.assets.extra_housing_units;
    let housing_within_limit = explanation.condition(
        None,
        ConditionCode::ExtraHousingWithinLimit,
        ReasonValue::Integer(i64::from(extra_housing)),
        ReasonValue::Integer(i64::from(parameters.max_extra_housing_units)),
        extra_housing <= parameters.max_extra_housing_units,
    );

    let eligible = in_district
        && hukou_type_matches
        && income_below_standard
        && assets_within_limit
        && vehicles_within_limit
        && housing_within_limit;

    let mut amount = Money::ZERO;
    if eligible {
        let income_gap =
            standard_total
                .checked_sub(counted_income)
                .ok_or(PolicyError::AmountOverflow {
                    program: program.as_str(),
                })?;
        match parameters.amount_method {
            DibaoAmountMethod::Difference => {
                amount = income_gap;
                explanation.calculation(
                    None,
                    ConditionCode::DibaoDifferenceAmount,
                    ReasonValue::Money(amount),
                    ReasonValue::Money(standard_total),
                );
            }
            DibaoAmountMethod::Tier => {
                // The highest tier whose bound the gap reaches, compared exactly:
                // gap / standard_total ≥ bound / 10 000.
                let gap_scaled = i128::from(income_gap.fen()) * 10_000;
                let mut pay_basis_points = 0_i64;
                for tier in &parameters.tiers {
                    if gap_scaled
                        >= i128::from(tier.gap_at_least_basis_points)
                            * i128::from(standard_total.fen())
                    {
                        pay_basis_points = tier.pay_basis_points;
                    }
                }
                let per_person = share_of(standard, pay_basis_points, program)?;
                amount = times(per_person, members, program)?;
                explanation.calculation(
                    None,
                    ConditionCode::DibaoTierAmount,
                    ReasonValue::Money(amount),
                    ReasonValue::Percent(pay_basis_points),
                );
            }
        }
    }
    Ok(explanation.into_decision(resolved, program, eligible, amount))
}
