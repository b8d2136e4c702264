//! Rules as code: one evaluation function per program, each pure (no I/O, no clock), reading
//! only the household facts and the parameters resolved as of the evaluation date.
//!
//! This module owns the dispatch from [`ProgramCode`] to its rule, and [`Explanation`], the
//! builder every rule uses to record its conditions and calculation steps. Submodules hold the
//! rules, grouped as the seed groups the programs.
//!
//! Rounding rule (the only one): amounts are whole fen; a product by a share or a coefficient
//! and any division round to the nearest fen, ties half away from zero
//! ([`sunshine_domain::Money::checked_mul_ratio`]). Eligibility comparisons are exact (e.g.
//! dibao compares household income with standard × members, never a rounded per-capita figure).

mod dibao;
mod disaster;
mod education;
mod elderly;
mod employment;
mod entitled;
mod family_planning;
mod housing;
mod low_income;
mod medical;
mod other;
mod tekun;
mod temporary;

use sunshine_domain::Money;

use crate::catalogue::ProgramCode;
use crate::dates::completed_years;
use crate::decision::{ConditionCode, Decision, Reason, ReasonRole, ReasonValue};
use crate::error::PolicyError;
use crate::facts::{HouseholdFacts, MemberFacts};
use crate::hardship::HardshipCoefficient;
use crate::resolved::ResolvedPolicy;

/// Evaluates `program` for `household` with the parameters of `resolved` (as of its date).
pub(crate) fn evaluate(
    resolved: &ResolvedPolicy,
    program: ProgramCode,
    household: &HouseholdFacts,
) -> Result<Decision, PolicyError> {
    household.validate(resolved.as_of)?;
    match program {
        ProgramCode::DibaoUrban | ProgramCode::DibaoRural => {
            dibao::evaluate(resolved, program, household)
        }
        ProgramCode::Tekun => tekun::evaluate(resolved, household),
        ProgramCode::Temporary => temporary::evaluate(resolved, household),
        ProgramCode::Disaster => disaster::evaluate(resolved, household),
        ProgramCode::HomeElderlyCare => elderly::evaluate_home_care(resolved, household),
        ProgramCode::OldAgeSubsidy => elderly::evaluate_old_age_subsidy(resolved, household),
        ProgramCode::Longevity => elderly::evaluate_longevity(resolved, household),
        ProgramCode::FamilyPlanning => family_planning::evaluate(resolved, household),
        ProgramCode::LegalAid => other::evaluate_legal_aid(resolved, household),
        ProgramCode::PartyMemberAid => other::evaluate_party_member_aid(resolved, household),
        ProgramCode::ReservoirMigrantSupport => {
            other::evaluate_reservoir_migrant_support(resolved, household)
        }
        ProgramCode::TransferredCadreSupport => {
            entitled::evaluate_transferred_cadre(resolved, household)
        }
        ProgramCode::EntitledSubsidy => entitled::evaluate_entitled_subsidy(resolved, household),
        ProgramCode::EducationAid => education::evaluate(resolved, household),
        ProgramCode::EmploymentTraining => employment::evaluate(resolved, household),
        ProgramCode::NearDibao => low_income::evaluate_near_dibao(resolved, household),
        ProgramCode::RigidExpenditureHardship => {
            low_income::evaluate_rigid_expenditure(resolved, household)
        }
        ProgramCode::EmploymentPublicWelfarePost => {
            employment::evaluate_public_welfare_post(resolved, household)
        }
        ProgramCode::MedicalRuralCooperative => {
            medical::evaluate_rural_cooperative(resolved, household)
        }
        ProgramCode::MedicalUrbanEmployee => medical::evaluate_urban_employee(resolved, household),
        ProgramCode::MedicalUrbanResident => medical::evaluate_urban_resident(resolved, household),
        ProgramCode::MedicalEntitledGroups => {
            medical::evaluate_entitled_groups(resolved, household)
        }
        ProgramCode::MedicalSeriousIllness => {
            medical::evaluate_serious_illness(resolved, household)
        }
        ProgramCode::HousingUrbanSupport => housing::evaluate_urban(resolved, household),
        ProgramCode::HousingRuralSafe => housing::evaluate_rural(resolved, household),
    }
}

/// The reasons of one evaluation, in the order the rule checked them.
#[derive(Debug)]
pub(crate) struct Explanation {
    reasons: Vec<Reason>,
}

impl Explanation {
    pub(crate) fn with_capacity(capacity: usize) -> Explanation {
        Explanation {
            reasons: Vec::with_capacity(capacity),
        }
    }

    /// Records a required condition and returns whether it passed.
    pub(crate) fn condition(
        &mut self,
        member: Option<usize>,
        condition: ConditionCode,
        value: ReasonValue,
        threshold: ReasonValue,
        passed: bool,
    ) -> bool {
        self.reasons.push(Reason::new(
            member,
            ReasonRole::Condition,
            condition,
            value,
            threshold,
            passed,
        ));
        passed
    }

    /// Records a condition that decides only part of the benefit.
    pub(crate) fn qualifier(
        &mut self,
        member: Option<usize>,
        condition: ConditionCode,
        value: ReasonValue,
        threshold: ReasonValue,
        passed: bool,
    ) -> bool {
        self.reasons.push(Reason::new(
            member,
            ReasonRole::Qualifier,
            condition,
            value,
            threshold,
            passed,
        ));
        passed
    }

    /// Records a calculation step: `value` is its result, `threshold` the rate or bound used.
    pub(crate) fn calculation(
        &mut self,
        member: Option<usize>,
        condition: ConditionCode,
        value: ReasonValue,
        threshold: ReasonValue,
    ) {
        self.reasons.push(Reason::new(
            member,
            ReasonRole::Calculation,
            condition,
            value,
            threshold,
            true,
        ));
    }

    pub(crate) fn into_decision(
        self,
        resolved: &ResolvedPolicy,
        program: ProgramCode,
        eligible: bool,
        amount: Money,
    ) -> Decision {
        Decision {
            program,
            as_of: resolved.as_of,
            eligible,
            amount: if eligible { amount } else { Money::ZERO },
            period: program.period(),
            reasons: self.reasons,
            hardship: None::<HardshipCoefficient>,
            assist_first_amount: None,
            medical_routes: Vec::new(),
            policy_version: resolved.version,
        }
    }
}

/// Whether the household's hukou is registered under the district's division code.
pub(crate) fn hukou_in_district(resolved: &ResolvedPolicy, household: &HouseholdFacts) -> bool {
    household.hukou_org_unit.district_prefix() == resolved.district.prefix()
}

/// Records the district-hukou condition.
pub(crate) fn check_hukou_in_district(
    explanation: &mut Explanation,
    resolved: &ResolvedPolicy,
    household: &HouseholdFacts,
) -> bool {
    let passed = hukou_in_district(resolved, household);
    explanation.condition(
        None,
        ConditionCode::HukouInDistrict,
        ReasonValue::Flag(passed),
        ReasonValue::Flag(true),
        passed,
    )
}

/// A permanent resident of the district on `resolved.as_of`: the household's hukou is in the
/// district and the member's residence began on or before the date.
pub(crate) fn is_permanent_resident(
    resolved: &ResolvedPolicy,
    household: &HouseholdFacts,
    member: &MemberFacts,
) -> bool {
    hukou_in_district(resolved, household)
        && member
            .resident_since
            .is_some_and(|since| since <= resolved.as_of)
}

/// Records the permanent-residence condition for a member.
pub(crate) fn check_permanent_resident(
    explanation: &mut Explanation,
    resolved: &ResolvedPolicy,
    household: &HouseholdFacts,
    member_index: usize,
    member: &MemberFacts,
) -> bool {
    let passed = is_permanent_resident(resolved, household, member);
    explanation.condition(
        Some(member_index),
        ConditionCode::PermanentResident,
        ReasonValue::Flag(passed),
        ReasonValue::Flag(true),
        passed,
    )
}

/// Completed years of permanent residence on `resolved.as_of` (0 when not resident).
pub(crate) fn residence_years(resolved: &ResolvedPolicy, member: &MemberFacts) -> i32 {
    member
        .resident_since
        .map_or(0, |since| completed_years(since, resolved.as_of).max(0))
}

pub(crate) fn add(left: Money, right: Money, program: ProgramCode) -> Result<Money, PolicyError> {
    left.checked_add(right).ok_or(PolicyError::AmountOverflow {
        program: program.as_str(),
    })
}

pub(crate) fn times(
    amount: Money,
    factor: i64,
    program: ProgramCode,
) -> Result<Money, PolicyError> {
    amount
        .checked_mul(factor)
        .ok_or(PolicyError::AmountOverflow {
            program: program.as_str(),
        })
}

/// `amount × basis_points / 10 000`, rounded half away from zero.
pub(crate) fn share_of(
    amount: Money,
    basis_points: i64,
    program: ProgramCode,
) -> Result<Money, PolicyError> {
    amount
        .checked_mul_ratio(basis_points, 10_000)
        .map_err(|_| PolicyError::AmountOverflow {
            program: program.as_str(),
        })
}

pub(crate) fn member_count(household: &HouseholdFacts) -> i64 {
    i64::try_from(household.members.len()).unwrap_or(i64::MAX)
}
