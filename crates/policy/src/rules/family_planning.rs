//! 计划生育家庭奖励扶助 (family-planning reward and support), the five clauses of seed 三(一)8,
//! evaluated for each spouse (the head and the head's spouse; a widowed or divorced parent is
//! the head alone, `FamilyPlanningFacts::parent_marital_status`). Any clause may grant; the
//! general rewards (clauses 1, 2, 5) and the special support (clauses 3, 4) add up. Clause
//! conditions are qualifiers: a clause that does not apply does not make the household
//! ineligible when another one does.

use sunshine_domain::{Money, Sex};

use super::{Explanation, add};
use crate::catalogue::ProgramCode;
use crate::dates::age_on;
use crate::decision::{ConditionCode, Decision, ReasonValue};
use crate::error::PolicyError;
use crate::facts::{FamilyPlanningFacts, HouseholdFacts, HukouType};
use crate::resolved::ResolvedPolicy;

const PROGRAM: ProgramCode = ProgramCode::FamilyPlanning;

pub(super) fn evaluate(
    resolved: &ResolvedPolicy,
    household: &HouseholdFacts,
) -> Result<Decision, PolicyError> {
    let parameters = &resolved.family_planning;
    let as_of = resolved.as_of;
    let mut explanation = Explanation::with_capacity(48);
    let facts_given = explanation.condition(
        None,
        ConditionCode::FamilyPlanningFactsGiven,
        ReasonValue::Flag(household.family_planning.is_some()),
        ReasonValue::Flag(true),
        household.family_planning.is_some(),
    );
    let Some(facts) = household.family_planning else {
        return Ok(explanation.into_decision(resolved, PROGRAM, false, Money::ZERO));
    };
    let FamilyPlanningFacts {
        living_sons,
        living_daughters,
        deceased_children,
        latest_violating_birth_on,
        sterilised,
        only_child_died,
        only_child_disabled,
        only_child_recovered,
        birth_or_adoption_after_loss,
        parent_marital_status,
        former_wife_birth_date,
    } = facts;
    let living_children = facts.living_children();

    let couple_all_rural = household
        .couple()
        .all(|(_, member)| member.hukou_type == HukouType::Rural);
    let couple_any_urban = household
        .couple()
        .any(|(_, member)| member.hukou_type == HukouType::Urban);
    let couple_has_certificate = household
        .couple()
        .any(|(_, member)| member.only_child_certificate);
    let wife_age = match household
        .couple()
        .find(|(_, member)| member.sex == Sex::Female)
    {
        Some((_, wife)) => Some(age_on(wife.birth_date, as_of)),
        // Issue 20 item 3: a single (widowed or divorced) father, the head, no wife listed.
        None if parent_marital_status.is_single() => {
            let (basis, age) = if parameters.single_father_counts_former_wife_age {
                (
                    "former_wife_age",
                    former_wife_birth_date.map(|born| age_on(born, as_of)),
                )
            } else {
                (
                    "own_age",
                    household.head().map(|head| age_on(head.birth_date, as_of)),
                )
            };
            explanation.calculation(
                household.couple().map(|(index, _)| index).next(),
                ConditionCode::FpSingleFatherAge,
                age.map_or(ReasonValue::None, |years| {
                    ReasonValue::Years(i64::from(years))
                }),
                ReasonValue::text(basis),
            );
            age
        }
        None => None,
    };
    let no_violation =
        latest_violating_birth_on.is_none_or(|date| date < parameters.no_violation_since);
    let two_daughters = living_daughters == 2 && living_sons == 0;
    let children_condition =
        living_children == 1 || two_daughters || (living_children == 0 && deceased_children >= 1);
    let no_further_child = !birth_or_adoption_after_loss;

    let mut any_granted = false;
    let mut amount = Money::ZERO;
    let couple: Vec<usize> = household.couple().map(|(index, _)| index).collect();
    for index in couple {
        let member = &household.members[index];
        let who = Some(index);
        let age = age_on(member.birth_date, as_of);
        let age_value = ReasonValue::Years(i64::from(age));
        let reward_age = ReasonValue::Years(i64::from(parameters.reward_age));

        // Clause 1: rural couple, born on or after 1933-01-01, no violation since 1973, one child
        // or two girls or no surviving child, from 60.
        let c1_rural = explanation.qualifier(
            who,
            ConditionCode::FpRuralCouple,
            ReasonValue::Flag(couple_all_rural),
            ReasonValue::Flag(true),
            couple_all_rural,
        );
        let born_after = member.birth_date >= parameters.born_on_or_after;
        let c1_born = explanation.qualifier(
            who,
            ConditionCode::FpBornOnOrAfter,
            ReasonValue::Date(member.birth_date),
            ReasonValue::Date(parameters.born_on_or_after),
            born_after,
        );
        let c1_no_violation = explanation.qualifier(
            who,
            ConditionCode::FpNoViolationSince,
            latest_violating_birth_on.map_or(ReasonValue::None, ReasonValue::Date),
            ReasonValue::Date(parameters.no_violation_since),
            no_violation,
        );
        let c1_children = explanation.qualifier(
            who,
            ConditionCode::FpChildrenCondition,
            ReasonValue::Integer(i64::from(living_children)),
            ReasonValue::text("1 | two girls | 0 after a death"),
            children_condition,
        );
        let c1_age = explanation.qualifier(
            who,
            ConditionCode::FpRewardAge,
            age_value.clone(),
            reward_age.clone(),
            age >= parameters.reward_age,
        );
        if c1_rural && c1_born && c1_no_violation && c1_children && c1_age {
            any_granted = true;
            amount = add(amount, parameters.rural_reward_annual, PROGRAM)?;
            explanation.calculation(
                who,
                ConditionCode::FpRuralReward,
                ReasonValue::Money(parameters.rural_reward_annual),
                ReasonValue::None,
            );
        }

        // Clause 2: rural two-daughter sterilised family, from the calendar year of turning 55
        // until 60 (then clause 1).
        let c2_two_daughters = explanation.qualifier(
            who,
            ConditionCode::FpTwoDaughters,
            ReasonValue::Integer(i64::from(living_daughters)),
            ReasonValue::Integer(2),
            two_daughters,
        );
        let c2_sterilised = explanation.qualifier(
            who,
            ConditionCode::FpSterilised,
            ReasonValue::Flag(sterilised),
            ReasonValue::Flag(true),
            sterilised,
        );
        let age_reached_this_year = as_of.year() - member.birth_date.year();
        let c2_year = explanation.qualifier(
            who,
            ConditionCode::FpTwoDaughterAgeYear,
            ReasonValue::Years(i64::from(age_reached_this_year)),
            ReasonValue::Years(i64::from(parameters.two_daughter_sterilised_age)),
            age_reached_this_year >= parameters.two_daughter_sterilised_age,
        );
        let c2_below_60 = explanation.qualifier(
            who,
            ConditionCode::FpBelowRewardAge,
            age_value.clone(),
            reward_age.clone(),
            age < parameters.reward_age,
        );
        if c1_rural && c2_two_daughters && c2_sterilised && c2_year && c2_below_60 {
            any_granted = true;
            amount = add(
                amount,
                parameters.two_daughter_sterilised_reward_annual,
                PROGRAM,
            )?;
            explanation.calculation(
                who,
                ConditionCode::FpTwoDaughterReward,
                ReasonValue::Money(parameters.two_daughter_sterilised_reward_annual),
                ReasonValue::None,
            );
        }

        // Clause 3: "女方年满49周岁,独生子女死亡后未再生育或收养子女的夫妻由政府按规定标准给予扶
        // 助金,直至亡故为止": wife 49+, only child died, no further birth or adoption: until
        // death. A single mother counts her own age; a single father (丧偶、离异) his own or his
        // former wife's, as `family_planning.single_father_age_basis` says.
        let wife_age_value = wife_age.map_or(ReasonValue::None, |years| {
            ReasonValue::Years(i64::from(years))
        });
        let c3_wife = explanation.qualifier(
            who,
            ConditionCode::FpWifeAgeBereaved,
            wife_age_value.clone(),
            ReasonValue::Years(i64::from(parameters.bereaved_wife_min_age)),
            wife_age.is_some_and(|years| years >= parameters.bereaved_wife_min_age),
        );
        let c3_died = explanation.qualifier(
            who,
            ConditionCode::FpOnlyChildDied,
            ReasonValue::Flag(only_child_died),
            ReasonValue::Flag(true),
            only_child_died,
        );
        let c34_no_further = explanation.qualifier(
            who,
            ConditionCode::FpNoFurtherBirthOrAdoption,
            ReasonValue::Flag(no_further_child),
            ReasonValue::Flag(true),
            no_further_child,
        );
        if c3_wife && c3_died && c34_no_further {
            any_granted = true;
            amount = add(amount, parameters.only_child_died_support_annual, PROGRAM)?;
            explanation.calculation(
                who,
                ConditionCode::FpOnlyChildDiedSupport,
                ReasonValue::Money(parameters.only_child_died_support_annual),
                ReasonValue::None,
            );
        }

        // Clause 4: "女方年满49周岁,独生子女死亡后未再生育或收养子女的夫妻…;独生子女伤、病残后
        // 未再生育或收养子女的夫妻,由政府按规定标准给予扶助金,直至亡故或子女康复为止": the
        // age opening the sentence covers the disabled clause too (the national rule's 49,
        // `family_planning.disabled_child_wife_min_age`; 0 would mean no age condition).
        let c4_disabled = explanation.qualifier(
            who,
            ConditionCode::FpOnlyChildDisabled,
            ReasonValue::Flag(only_child_disabled),
            ReasonValue::Flag(true),
            only_child_disabled,
        );
        let c4_not_recovered = explanation.qualifier(
            who,
            ConditionCode::FpChildNotRecovered,
            ReasonValue::Flag(!only_child_recovered),
            ReasonValue::Flag(true),
            !only_child_recovered,
        );
        let c4_wife = explanation.qualifier(
            who,
            ConditionCode::FpWifeAgeDisabledChild,
            wife_age_value,
            ReasonValue::Years(i64::from(parameters.disabled_child_wife_min_age)),
            parameters.disabled_child_wife_min_age == 0
                || wife_age.is_some_and(|years| years >= parameters.disabled_child_wife_min_age),
        );
        if c4_disabled && c4_not_recovered && c34_no_further && c4_wife {
            any_granted = true;
            amount = add(
                amount,
                parameters.only_child_disabled_support_annual,
                PROGRAM,
            )?;
            explanation.calculation(
                who,
                ConditionCode::FpOnlyChildDisabledSupport,
                ReasonValue::Money(parameters.only_child_disabled_support_annual),
                ReasonValue::None,
            );
        }

        // Clause 5: one or both spouses urban, honour certificate and city dibao certificate,
        // one living child, from 60.
        let c5_urban = explanation.qualifier(
            who,
            ConditionCode::FpUrbanSpouse,
            ReasonValue::Flag(couple_any_urban),
            ReasonValue::Flag(true),
            couple_any_urban,
        );
        let c5_certificate = explanation.qualifier(
            who,
            ConditionCode::FpHonourCertificate,
            ReasonValue::Flag(couple_has_certificate),
            ReasonValue::Flag(true),
            couple_has_certificate,
        );
        let holds_dibao = household.holds_urban_dibao_certificate;
        let c5_dibao = explanation.qualifier(
            who,
            ConditionCode::FpUrbanDibaoCertificate,
            ReasonValue::Flag(holds_dibao),
            ReasonValue::Flag(true),
            holds_dibao,
        );
        let c5_one_child = explanation.qualifier(
            who,
            ConditionCode::FpOneLivingChild,
            ReasonValue::Integer(i64::from(living_children)),
            ReasonValue::Integer(1),
            living_children == 1,
        );
        let c5_age = explanation.qualifier(
            who,
            ConditionCode::FpRewardAge,
            age_value,
            reward_age,
            age >= parameters.reward_age,
        );
        if c5_urban && c5_certificate && c5_dibao && c5_one_child && c5_age {
            any_granted = true;
            amount = add(amount, parameters.urban_only_child_reward_annual, PROGRAM)?;
            explanation.calculation(
                who,
                ConditionCode::FpUrbanReward,
                ReasonValue::Money(parameters.urban_only_child_reward_annual),
                ReasonValue::None,
            );
        }
    }
    Ok(explanation.into_decision(resolved, PROGRAM, facts_given && any_granted, amount))
}
