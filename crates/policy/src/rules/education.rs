//! 教育救助 (education assistance, seed 三(二)), per student: compulsory-education fee waivers,
//! free textbooks (all rural students; urban students of poor families), boarding living
//! allowances for poor boarders, grants for vocational years 1–2 (all students) and for poor
//! high-school students, free special education (and free education for disabled students in
//! compulsory schools), and Spring Bud aid for poor girls in compulsory education. The seed
//! gives migrant workers' children the same compulsory education, so no hukou condition.

use sunshine_domain::{Money, Sex};

use super::{Explanation, add};
use crate::catalogue::ProgramCode;
use crate::decision::{ConditionCode, Decision, ReasonValue};
use crate::error::PolicyError;
use crate::facts::{HouseholdFacts, HukouType, SchoolStage};
use crate::resolved::ResolvedPolicy;

const PROGRAM: ProgramCode = ProgramCode::EducationAid;

pub(super) fn evaluate(
    resolved: &ResolvedPolicy,
    household: &HouseholdFacts,
) -> Result<Decision, PolicyError> {
    let parameters = &resolved.education;
    let mut explanation = Explanation::with_capacity(2 + 4 * household.members.len());
    let student_count = household
        .members
        .iter()
        .filter(|member| member.school.is_some())
        .count();
    let has_students = explanation.condition(
        None,
        ConditionCode::InSchool,
        ReasonValue::Integer(i64::try_from(student_count).unwrap_or(i64::MAX)),
        ReasonValue::Integer(1),
        student_count > 0,
    );
    let poor = household.recipient_category.is_poor();
    explanation.qualifier(
        None,
        ConditionCode::FamilyEconomicHardship,
        ReasonValue::text(household.recipient_category.as_str()),
        ReasonValue::text("dibao | tekun | low_income"),
        poor,
    );

    let mut any_benefit = false;
    let mut amount = Money::ZERO;
    for (index, member) in household.members.iter().enumerate() {
        let Some(school) = member.school else {
            continue;
        };
        let who = Some(index);
        let mut grant = |explanation: &mut Explanation,
                         code: ConditionCode,
                         value: Money|
         -> Result<(), PolicyError> {
            any_benefit = true;
            explanation.calculation(
                who,
                code,
                ReasonValue::Money(value),
                ReasonValue::text(school.stage.as_str()),
            );
            amount = add(amount, value, PROGRAM)?;
            Ok(())
        };
        match school.stage {
            SchoolStage::Primary | SchoolStage::JuniorSecondary => {
                grant(
                    &mut explanation,
                    ConditionCode::CompulsoryFeeExemption,
                    Money::ZERO,
                )?;
                if member.hukou_type == HukouType::Rural || poor {
                    grant(&mut explanation, ConditionCode::FreeTextbooks, Money::ZERO)?;
                }
                if member.disability.is_some() {
                    grant(
                        &mut explanation,
                        ConditionCode::SpecialEducationFree,
                        Money::ZERO,
                    )?;
                }
                if school.boarding && poor {
                    let allowance = if school.stage == SchoolStage::Primary {
                        parameters.boarding_allowance_primary_annual
                    } else {
                        parameters.boarding_allowance_junior_annual
                    };
                    grant(
                        &mut explanation,
                        ConditionCode::BoardingLivingAllowance,
                        allowance,
                    )?;
                }
                if member.sex == Sex::Female && poor {
                    grant(
                        &mut explanation,
                        ConditionCode::SpringBudGrant,
                        parameters.spring_bud_grant_annual,
                    )?;
                }
            }
            SchoolStage::Vocational => {
                let within = explanation.qualifier(
                    who,
                    ConditionCode::VocationalGrant,
                    ReasonValue::Integer(i64::from(school.year)),
                    ReasonValue::Integer(i64::from(parameters.vocational_grant_last_year)),
                    school.year <= parameters.vocational_grant_last_year,
                );
                if within {
                    grant(
                        &mut explanation,
                        ConditionCode::VocationalGrant,
                        parameters.vocational_grant_annual,
                    )?;
                }
            }
            SchoolStage::SeniorSecondary => {
                if poor {
                    grant(
                        &mut explanation,
                        ConditionCode::HighSchoolGrant,
                        parameters.high_school_grant_annual,
                    )?;
                }
            }
            SchoolStage::SpecialEducation => {
                grant(
                    &mut explanation,
                    ConditionCode::SpecialEducationFree,
                    Money::ZERO,
                )?;
            }
            SchoolStage::Preschool | SchoolStage::Higher => {}
        }
    }
    Ok(explanation.into_decision(resolved, PROGRAM, has_students && any_benefit, amount))
}
