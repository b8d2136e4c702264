//! 特困人员救助供养 (extreme-poverty support, the rural five guarantees): per member, elderly or
//! under the minor age limit or disabled at a listed grade, and no labour capacity, no source
//! of living, no able supporter. Amount: basic living standard plus the care standard for the
//! member's self-care ability, per qualifying member per month.
//!
//! Seed 三(一)2: "建立完善新型农村五保供养制度。对农村五保供养对象实行'保吃、保穿、保住、保医、
//! 保葬(孤儿保教)'的五保供养政策". The national rules (特困人员认定办法, 民发〔2021〕43号, 第七条)
//! count as without labour capacity "(一)60周岁以上的老年人;(二)未满16周岁的未成年人;(三)残疾等级
//! 为一、二、三级的智力、精神残疾人,残疾等级为一、二级的肢体残疾人,残疾等级为一级的视力残疾人":
//! a member in one of the three categories is *deemed* without labour capacity whatever the
//! `labour_capacity` fact says; only a member outside them is asked for it. Urban residents are
//! covered unless `tekun.urban_residents_covered` is false (the seed's item reads "农村").

use sunshine_domain::Money;

use super::{Explanation, add, check_permanent_resident};
use crate::catalogue::ProgramCode;
use crate::dates::age_on;
use crate::decision::{ConditionCode, Decision, ReasonValue};
use crate::error::PolicyError;
use crate::facts::{
    DisabilityCategory, HouseholdFacts, HukouType, LabourCapacity, MemberFacts, SelfCareAbility,
};
use crate::income::counted_member_income;
use crate::resolved::{ResolvedPolicy, TekunParameters};

const PROGRAM: ProgramCode = ProgramCode::Tekun;

/// Which of the three person categories a member falls in, if any.
fn person_category(
    parameters: &TekunParameters,
    member: &MemberFacts,
    age: i32,
) -> Option<&'static str> {
    if age >= parameters.elderly_min_age {
        return Some("elderly");
    }
    if age < parameters.minor_age_limit {
        return Some("minor");
    }
    let disability = member.disability?;
    let qualifying_grade = match disability.category {
        DisabilityCategory::Intellectual | DisabilityCategory::Mental => {
            parameters.qualifying_grade_intellectual_or_mental
        }
        DisabilityCategory::Physical => parameters.qualifying_grade_physical,
        DisabilityCategory::Visual => parameters.qualifying_grade_visual,
        DisabilityCategory::Hearing | DisabilityCategory::Speech => {
            parameters.qualifying_grade_hearing_or_speech
        }
        DisabilityCategory::Multiple => parameters.qualifying_grade_multiple,
    };
    (disability.grade <= qualifying_grade).then_some("disabled_at_listed_grade")
}

pub(super) fn evaluate(
    resolved: &ResolvedPolicy,
    household: &HouseholdFacts,
) -> Result<Decision, PolicyError> {
    let parameters = &resolved.tekun;
    let mut explanation = Explanation::with_capacity(6 * household.members.len());
    let mut any_eligible = false;
    let mut amount = Money::ZERO;
    for (index, member) in household.members.iter().enumerate() {
        let member_index = Some(index);
        let age = age_on(member.birth_date, resolved.as_of);
        let resident =
            check_permanent_resident(&mut explanation, resolved, household, index, member);
        let category = person_category(parameters, member, age);
        let in_category = explanation.condition(
            member_index,
            ConditionCode::TekunPersonCategory,
            ReasonValue::text(category.unwrap_or("none")),
            ReasonValue::text("elderly | minor | disabled_at_listed_grade"),
            category.is_some(),
        );
        let no_labour = match category {
            // 认定办法第七条: the categories themselves are "without labour capacity".
            Some(category) => explanation.condition(
                member_index,
                ConditionCode::NoLabourCapacity,
                ReasonValue::text(match category {
                    "elderly" => "deemed none: aged 60+",
                    "minor" => "deemed none: under 16",
                    _ => "deemed none: listed disability",
                }),
                ReasonValue::text(LabourCapacity::None.as_str()),
                true,
            ),
            None => explanation.condition(
                member_index,
                ConditionCode::NoLabourCapacity,
                ReasonValue::text(member.labour_capacity.as_str()),
                ReasonValue::text(LabourCapacity::None.as_str()),
                member.labour_capacity == LabourCapacity::None,
            ),
        };
        let hukou_covered = parameters.urban_residents_covered
            || explanation.condition(
                member_index,
                ConditionCode::RuralHukou,
                ReasonValue::text(member.hukou_type.as_str()),
                ReasonValue::text(HukouType::Rural.as_str()),
                member.hukou_type == HukouType::Rural,
            );
        let income = counted_member_income(member, resolved.excluded_income)?;
        let no_source_of_living = explanation.condition(
            member_index,
            ConditionCode::NoSourceOfLiving,
            ReasonValue::Money(income),
            ReasonValue::Money(parameters.max_counted_income_monthly),
            income <= parameters.max_counted_income_monthly,
        );
        let no_supporter = explanation.condition(
            member_index,
            ConditionCode::NoAbleSupporter,
            ReasonValue::Flag(!member.has_able_supporter),
            ReasonValue::Flag(true),
            !member.has_able_supporter,
        );
        if resident
            && hukou_covered
            && in_category
            && no_labour
            && no_source_of_living
            && no_supporter
        {
            any_eligible = true;
            let care = match member.self_care {
                SelfCareAbility::Able => Money::ZERO,
                SelfCareAbility::PartiallyUnable => {
                    parameters.care_standard_partially_unable_monthly
                }
                SelfCareAbility::Unable => parameters.care_standard_unable_monthly,
            };
            let member_amount = add(parameters.basic_living_standard_monthly, care, PROGRAM)?;
            explanation.calculation(
                member_index,
                ConditionCode::TekunSupportAmount,
                ReasonValue::Money(member_amount),
                ReasonValue::Money(parameters.basic_living_standard_monthly),
            );
            amount = add(amount, member_amount, PROGRAM)?;
        }
    }
    Ok(explanation.into_decision(resolved, PROGRAM, any_eligible, amount))
}
