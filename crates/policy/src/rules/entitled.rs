//! 优抚对象抚恤定补 (pensions and fixed subsidies for entitled groups) and the living support of
//! enterprise military-transferred cadres (企业军转干部, seed 三(一)12).

use sunshine_domain::Money;

use super::{Explanation, add, check_hukou_in_district};
use crate::catalogue::ProgramCode;
use crate::decision::{ConditionCode, Decision, ReasonValue};
use crate::error::PolicyError;
use crate::facts::{EntitledCategory, HouseholdFacts};
use crate::resolved::{ResolvedPolicy, tier_amount};

/// Per entitled member, the monthly amount of the member's category (disabled veterans by
/// grade).
pub(super) fn evaluate_entitled_subsidy(
    resolved: &ResolvedPolicy,
    household: &HouseholdFacts,
) -> Result<Decision, PolicyError> {
    const PROGRAM: ProgramCode = ProgramCode::EntitledSubsidy;
    let parameters = &resolved.entitled_subsidy;
    let mut explanation = Explanation::with_capacity(1 + 2 * household.members.len());
    let in_district = check_hukou_in_district(&mut explanation, resolved, household);
    let mut any_eligible = false;
    let mut amount = Money::ZERO;
    for (index, member) in household.members.iter().enumerate() {
        let entitled = explanation.condition(
            Some(index),
            ConditionCode::EntitledGroupMember,
            ReasonValue::text(
                member
                    .entitled_group
                    .map_or("none", |group| group.category.as_str()),
            ),
            ReasonValue::Flag(true),
            member.entitled_group.is_some(),
        );
        let Some(group) = member.entitled_group else {
            continue;
        };
        if !(in_district && entitled) {
            continue;
        }
        let member_amount = match group.category {
            EntitledCategory::DisabledVeteran => tier_amount(
                &parameters.disabled_veteran_monthly_by_grade,
                i64::from(group.disability_grade.unwrap_or(10)),
            )
            .unwrap_or(Money::ZERO),
            EntitledCategory::MartyrFamily => parameters.martyr_family_monthly,
            EntitledCategory::SacrificedOnDutyFamily => {
                parameters.sacrificed_on_duty_family_monthly
            }
            EntitledCategory::DiedOfIllnessFamily => parameters.died_of_illness_family_monthly,
            EntitledCategory::OldDemobilised => parameters.old_demobilised_monthly,
            EntitledCategory::ReturnedWithIllness => parameters.returned_with_illness_monthly,
            EntitledCategory::WarVeteran => parameters.war_veteran_monthly,
        };
        any_eligible = true;
        explanation.calculation(
            Some(index),
            ConditionCode::EntitledSubsidyAmount,
            ReasonValue::Money(member_amount),
            group
                .disability_grade
                .map_or(ReasonValue::text(group.category.as_str()), |grade| {
                    ReasonValue::Integer(i64::from(grade))
                }),
        );
        amount = add(amount, member_amount, PROGRAM)?;
    }
    Ok(explanation.into_decision(resolved, PROGRAM, any_eligible, amount))
}

/// Seed 三(一)12: "建立完善企业军转干部财政支持机制。对其实施生活、医疗等方面的救助": each
/// transferred cadre of a district household receives the monthly living subsidy and the
/// monthly medical support (`transferred_cadre.medical_support_monthly`).
pub(super) fn evaluate_transferred_cadre(
    resolved: &ResolvedPolicy,
    household: &HouseholdFacts,
) -> Result<Decision, PolicyError> {
    const PROGRAM: ProgramCode = ProgramCode::TransferredCadreSupport;
    let subsidy = resolved.transferred_cadre.living_subsidy_monthly;
    let medical = resolved.transferred_cadre.medical_support_monthly;
    let mut explanation = Explanation::with_capacity(1 + 2 * household.members.len());
    let in_district = check_hukou_in_district(&mut explanation, resolved, household);
    let mut any_eligible = false;
    let mut amount = Money::ZERO;
    for (index, member) in household.members.iter().enumerate() {
        let cadre = explanation.condition(
            Some(index),
            ConditionCode::EnterpriseTransferredCadre,
            ReasonValue::Flag(member.enterprise_transferred_cadre),
            ReasonValue::Flag(true),
            member.enterprise_transferred_cadre,
        );
        if in_district && cadre {
            any_eligible = true;
            explanation.calculation(
                Some(index),
                ConditionCode::TransferredCadreAmount,
                ReasonValue::Money(subsidy),
                ReasonValue::None,
            );
            explanation.calculation(
                Some(index),
                ConditionCode::TransferredCadreMedicalSupport,
                ReasonValue::Money(medical),
                ReasonValue::None,
            );
            amount = add(amount, add(subsidy, medical, PROGRAM)?, PROGRAM)?;
        }
    }
    Ok(explanation.into_decision(resolved, PROGRAM, any_eligible, amount))
}
