//! The medical programs of seed 三(四): rural cooperative medical scheme (M1), urban employee
//! (M2) and urban resident (M3) insurance, entitled-group medical routing (M4) and
//! serious-illness medical assistance (M5).

use sunshine_domain::Money;

use super::{Explanation, add, check_hukou_in_district, hukou_in_district, share_of};
use crate::catalogue::ProgramCode;
use crate::decision::{
    ConditionCode, Decision, EntitledMedicalRoute, MemberMedicalRoute, ReasonValue,
};
use crate::error::PolicyError;
use crate::facts::{
    EmploymentStatus, EntitledCategory, HouseholdFacts, HukouType, RecipientCategory,
};
use crate::resolved::ResolvedPolicy;

/// M1: every rural-hukou member may join; the government subsidises each participant's premium.
pub(super) fn evaluate_rural_cooperative(
    resolved: &ResolvedPolicy,
    household: &HouseholdFacts,
) -> Result<Decision, PolicyError> {
    const PROGRAM: ProgramCode = ProgramCode::MedicalRuralCooperative;
    let subsidy = resolved
        .medical_insurance
        .rural_cooperative_premium_subsidy_annual;
    let mut explanation = Explanation::with_capacity(1 + 2 * household.members.len());
    let in_district = check_hukou_in_district(&mut explanation, resolved, household);
    let mut any_eligible = false;
    let mut amount = Money::ZERO;
    for (index, member) in household.members.iter().enumerate() {
        let rural = explanation.condition(
            Some(index),
            ConditionCode::RuralHukou,
            ReasonValue::text(member.hukou_type.as_str()),
            ReasonValue::text(HukouType::Rural.as_str()),
            member.hukou_type == HukouType::Rural,
        );
        if in_district && rural {
            any_eligible = true;
            explanation.calculation(
                Some(index),
                ConditionCode::PremiumSubsidy,
                ReasonValue::Money(subsidy),
                ReasonValue::None,
            );
            amount = add(amount, subsidy, PROGRAM)?;
        }
    }
    Ok(explanation.into_decision(resolved, PROGRAM, any_eligible, amount))
}

/// M2, seed 三(四)2: "城镇职工和用人单位都要按照规定向市医疗保险经办机构缴纳城镇职工基本医疗保险费,
/// 使城镇职工享受基本医疗保险待遇". Employees are enrolled by their employers; the program pays
/// nothing itself. The scheme follows employment, not hukou: any employed member qualifies, in
/// this district when the employer is in it (`employment.employer_in_district`) or the
/// household is registered in it (the city scheme's office for the district's residents).
pub(super) fn evaluate_urban_employee(
    resolved: &ResolvedPolicy,
    household: &HouseholdFacts,
) -> Result<Decision, PolicyError> {
    const PROGRAM: ProgramCode = ProgramCode::MedicalUrbanEmployee;
    let mut explanation = Explanation::with_capacity(2 * household.members.len());
    let registered_here = hukou_in_district(resolved, household);
    let mut any_eligible = false;
    for (index, member) in household.members.iter().enumerate() {
        let in_district = registered_here || member.employment.employer_in_district;
        let district = explanation.condition(
            Some(index),
            ConditionCode::EmployedOrRegisteredInDistrict,
            ReasonValue::text(if member.employment.employer_in_district {
                "employer in district"
            } else if registered_here {
                "registered in district"
            } else {
                "neither"
            }),
            ReasonValue::Flag(true),
            in_district,
        );
        let employed = explanation.condition(
            Some(index),
            ConditionCode::Employed,
            ReasonValue::text(member.employment.status.as_str()),
            ReasonValue::text(EmploymentStatus::Employed.as_str()),
            member.employment.status == EmploymentStatus::Employed,
        );
        any_eligible |= district && employed;
    }
    Ok(explanation.into_decision(resolved, PROGRAM, any_eligible, Money::ZERO))
}

/// M3: urban residents outside employee insurance; the government subsidises the premium.
pub(super) fn evaluate_urban_resident(
    resolved: &ResolvedPolicy,
    household: &HouseholdFacts,
) -> Result<Decision, PolicyError> {
    const PROGRAM: ProgramCode = ProgramCode::MedicalUrbanResident;
    let subsidy = resolved
        .medical_insurance
        .urban_resident_premium_subsidy_annual;
    let mut explanation = Explanation::with_capacity(1 + 3 * household.members.len());
    let in_district = check_hukou_in_district(&mut explanation, resolved, household);
    let mut any_eligible = false;
    let mut amount = Money::ZERO;
    for (index, member) in household.members.iter().enumerate() {
        let urban = explanation.condition(
            Some(index),
            ConditionCode::UrbanHukou,
            ReasonValue::text(member.hukou_type.as_str()),
            ReasonValue::text(HukouType::Urban.as_str()),
            member.hukou_type == HukouType::Urban,
        );
        let not_employed = explanation.condition(
            Some(index),
            ConditionCode::NotEmployed,
            ReasonValue::text(member.employment.status.as_str()),
            ReasonValue::text("not employed"),
            member.employment.status != EmploymentStatus::Employed,
        );
        if in_district && urban && not_employed {
            any_eligible = true;
            explanation.calculation(
                Some(index),
                ConditionCode::PremiumSubsidy,
                ReasonValue::Money(subsidy),
                ReasonValue::None,
            );
            amount = add(amount, subsidy, PROGRAM)?;
        }
    }
    Ok(explanation.into_decision(resolved, PROGRAM, any_eligible, amount))
}

/// The entitled categories the seed lists for the urban route (grade 7–10 veterans and others).
fn listed_for_urban_route(category: EntitledCategory) -> bool {
    matches!(
        category,
        EntitledCategory::DisabledVeteran
            | EntitledCategory::MartyrFamily
            | EntitledCategory::SacrificedOnDutyFamily
            | EntitledCategory::DiedOfIllnessFamily
            | EntitledCategory::OldDemobilised
            | EntitledCategory::WarVeteran
    )
}

/// The rural list adds 带病回乡退伍军人 (veterans who returned home with an illness).
fn listed_for_rural_route(category: EntitledCategory) -> bool {
    listed_for_urban_route(category) || category == EntitledCategory::ReturnedWithIllness
}

/// M4: grade 1–6 disabled veterans (urban or rural) → employee insurance plus large-amount
/// relief; urban grade 7–10 and the other listed urban groups → employee insurance; rural grade
/// 7–10 and the other listed rural groups → rural cooperative scheme with the personal premium
/// paid by the district (the only cash amount, per person per year).
pub(super) fn evaluate_entitled_groups(
    resolved: &ResolvedPolicy,
    household: &HouseholdFacts,
) -> Result<Decision, PolicyError> {
    const PROGRAM: ProgramCode = ProgramCode::MedicalEntitledGroups;
    let parameters = &resolved.medical_insurance;
    let mut explanation = Explanation::with_capacity(1 + 4 * household.members.len());
    let in_district = check_hukou_in_district(&mut explanation, resolved, household);
    let mut routes = Vec::new();
    let mut amount = Money::ZERO;
    for (index, member) in household.members.iter().enumerate() {
        let who = Some(index);
        let entitled = explanation.condition(
            who,
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
        let severe_veteran = match (group.category, group.disability_grade) {
            (EntitledCategory::DisabledVeteran, Some(grade)) => explanation.qualifier(
                who,
                ConditionCode::VeteranGradeOneToSix,
                ReasonValue::Integer(i64::from(grade)),
                ReasonValue::Integer(i64::from(parameters.severe_veteran_grade_max)),
                grade <= parameters.severe_veteran_grade_max,
            ),
            _ => false,
        };
        let route = if severe_veteran {
            Some(EntitledMedicalRoute::EmployeeInsuranceWithLargeAmountRelief)
        } else {
            let (listed, route) = match member.hukou_type {
                HukouType::Urban => (
                    listed_for_urban_route(group.category),
                    EntitledMedicalRoute::UrbanEmployeeInsurance,
                ),
                HukouType::Rural => (
                    listed_for_rural_route(group.category),
                    EntitledMedicalRoute::RuralCooperativePremiumPaid,
                ),
            };
            let listed = explanation.condition(
                who,
                ConditionCode::CategoryListedForRoute,
                ReasonValue::text(group.category.as_str()),
                ReasonValue::text(member.hukou_type.as_str()),
                listed,
            );
            listed.then_some(route)
        };
        if let (true, true, Some(route)) = (in_district, entitled, route) {
            let (code, member_amount) = match route {
                EntitledMedicalRoute::EmployeeInsuranceWithLargeAmountRelief => (
                    ConditionCode::RouteEmployeeInsuranceWithLargeAmountRelief,
                    Money::ZERO,
                ),
                EntitledMedicalRoute::UrbanEmployeeInsurance => {
                    (ConditionCode::RouteUrbanEmployeeInsurance, Money::ZERO)
                }
                EntitledMedicalRoute::RuralCooperativePremiumPaid => (
                    ConditionCode::RouteRuralCooperativePremiumPaid,
                    parameters.rural_cooperative_personal_premium_annual,
                ),
            };
            explanation.calculation(
                who,
                code,
                ReasonValue::Money(member_amount),
                ReasonValue::text(member.hukou_type.as_str()),
            );
            amount = add(amount, member_amount, PROGRAM)?;
            routes.push(MemberMedicalRoute {
                member: u16::try_from(index).unwrap_or(u16::MAX),
                route,
            });
        }
    }
    let eligible = !routes.is_empty();
    let mut decision = explanation.into_decision(resolved, PROGRAM, eligible, amount);
    decision.medical_routes = routes;
    Ok(decision)
}

/// M5: a share of the out-of-pocket cost above the deductible, by recipient category, up to an
/// annual cap per person that counts what was already paid this year.
pub(super) fn evaluate_serious_illness(
    resolved: &ResolvedPolicy,
    household: &HouseholdFacts,
) -> Result<Decision, PolicyError> {
    const PROGRAM: ProgramCode = ProgramCode::MedicalSeriousIllness;
    let parameters = &resolved.medical_serious_illness;
    let mut explanation = Explanation::with_capacity(8);
    let in_district = check_hukou_in_district(&mut explanation, resolved, household);
    let category = household.recipient_category;
    let share_and_deductible = match category {
        RecipientCategory::Tekun => Some((parameters.share_tekun, parameters.deductible_tekun)),
        RecipientCategory::Dibao => Some((parameters.share_dibao, parameters.deductible_dibao)),
        RecipientCategory::LowIncome => Some((
            parameters.share_low_income,
            parameters.deductible_low_income,
        )),
        RecipientCategory::None => None,
    };
    let covered = explanation.condition(
        None,
        ConditionCode::RecipientCategoryCovered,
        ReasonValue::text(category.as_str()),
        ReasonValue::text("tekun | dibao | low_income"),
        share_and_deductible.is_some(),
    );
    let claim = household.medical_claim;
    let patient = claim.map(|claim| claim.patient);
    let diagnosed = explanation.condition(
        patient,
        ConditionCode::SeriousIllnessDiagnosed,
        ReasonValue::Flag(
            claim.is_some_and(|claim| household.members[claim.patient].serious_illness),
        ),
        ReasonValue::Flag(true),
        claim.is_some_and(|claim| household.members[claim.patient].serious_illness),
    );
    let (share, deductible) = share_and_deductible.unwrap_or((0, Money::ZERO));
    let out_of_pocket = claim.map_or(Money::ZERO, |claim| claim.out_of_pocket_after_insurance);
    let above_deductible = explanation.condition(
        patient,
        ConditionCode::OutOfPocketAboveDeductible,
        ReasonValue::Money(out_of_pocket),
        ReasonValue::Money(deductible),
        out_of_pocket > deductible,
    );
    let paid_this_year = claim.map_or(Money::ZERO, |claim| claim.paid_this_year);
    let below_cap = explanation.condition(
        patient,
        ConditionCode::AnnualCapNotReached,
        ReasonValue::Money(paid_this_year),
        ReasonValue::Money(parameters.annual_cap_per_person),
        paid_this_year < parameters.annual_cap_per_person,
    );
    let eligible = in_district && covered && diagnosed && above_deductible && below_cap;
    let mut amount = Money::ZERO;
    if eligible {
        let above = out_of_pocket
            .checked_sub(deductible)
            .ok_or(PolicyError::AmountOverflow {
                program: PROGRAM.as_str(),
            })?;
        amount = share_of(above, share, PROGRAM)?;
        explanation.calculation(
            patient,
            ConditionCode::MedicalShareApplied,
            ReasonValue::Money(amount),
            ReasonValue::Percent(share),
        );
        let remaining = parameters
            .annual_cap_per_person
            .checked_sub(paid_this_year)
            .unwrap_or(Money::ZERO)
            .max(Money::ZERO);
        amount = amount.min(remaining);
        explanation.calculation(
            patient,
            ConditionCode::AnnualCapRemaining,
            ReasonValue::Money(amount),
            ReasonValue::Money(remaining),
        );
    }
    Ok(explanation.into_decision(resolved, PROGRAM, eligible, amount))
}
