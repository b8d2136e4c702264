//! Property tests over generated households: more income never raises dibao (both amount
//! methods); no amount exceeds its cap; the same inputs and policy version always give the same
//! decision; amounts follow the one rounding rule (nearest fen, half away from zero); and no
//! program fails or panics on valid facts.

#![allow(clippy::unwrap_used)]

use std::sync::OnceLock;

use proptest::prelude::*;
use sunshine_domain::{Money, OrgUnitCode, Sex};
use sunshine_policy::facts::{
    AssetFacts, EmergencyFacts, EmergencyKind, HukouType, IncomeItem, IncomeKind, LabourCapacity,
    MedicalClaimFacts, MemberFacts, RecipientCategory, Relation,
};
use sunshine_policy::{
    HouseholdFacts, Policy, ProgramCode, ResolvedPolicy, example_district_sources,
};
use time::Date;
use time::macros::date;

const AS_OF: Date = date!(2026 - 11 - 28);

fn difference_policy() -> &'static ResolvedPolicy {
    static RESOLVED: OnceLock<ResolvedPolicy> = OnceLock::new();
    RESOLVED.get_or_init(|| Policy::example_district().unwrap().resolve(AS_OF).unwrap())
}

fn tier_policy() -> &'static ResolvedPolicy {
    static RESOLVED: OnceLock<ResolvedPolicy> = OnceLock::new();
    RESOLVED.get_or_init(|| {
        let mut sources = example_district_sources();
        for source in &mut sources {
            if source.file_name == "dibao.toml" {
                source.text = source
                    .text
                    .replace("value = \"difference\"", "value = \"tier\"");
            }
        }
        Policy::from_sources(sources)
            .unwrap()
            .resolve(AS_OF)
            .unwrap()
    })
}

fn income_kind() -> impl Strategy<Value = IncomeKind> {
    proptest::sample::select(IncomeKind::ALL.to_vec())
}

fn member(relation: Relation) -> impl Strategy<Value = MemberFacts> {
    (
        (0_i32..40_000).prop_map(|days| Date::from_julian_day(2_422_000 + days).unwrap()),
        any::<bool>(),
        any::<bool>(),
        proptest::collection::vec((income_kind(), 0_i64..400_000), 0..4),
        proptest::sample::select(vec![
            LabourCapacity::Full,
            LabourCapacity::Partial,
            LabourCapacity::None,
        ]),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(
            move |(
                birth_date,
                urban,
                female,
                incomes,
                labour_capacity,
                resident,
                seriously_ill,
            )| {
                let birth_date = birth_date.min(AS_OF);
                MemberFacts {
                    label: None,
                    relation,
                    sex: if female { Sex::Female } else { Sex::Male },
                    birth_date,
                    hukou_type: if urban {
                        HukouType::Urban
                    } else {
                        HukouType::Rural
                    },
                    resident_since: resident.then_some(birth_date),
                    disability: None,
                    labour_capacity,
                    self_care: Default::default(),
                    pension: Default::default(),
                    has_able_supporter: false,
                    serious_illness: seriously_ill,
                    entitled_group: None,
                    party_member_since: None,
                    reservoir_migrant: None,
                    enterprise_transferred_cadre: false,
                    only_child_certificate: false,
                    school: None,
                    employment: Default::default(),
                    monthly_income: incomes
                        .into_iter()
                        .map(|(kind, fen)| IncomeItem {
                            kind,
                            amount: Money::from_fen(fen),
                        })
                        .collect(),
                }
            },
        )
}

fn household() -> impl Strategy<Value = HouseholdFacts> {
    (
        member(Relation::Head),
        proptest::collection::vec(member(Relation::Child), 0..5),
        any::<bool>(),
        0_i64..6_000_000,
        0_u32..2,
        proptest::sample::select(vec![
            RecipientCategory::None,
            RecipientCategory::LowIncome,
            RecipientCategory::Dibao,
            RecipientCategory::Tekun,
        ]),
        proptest::option::of((
            proptest::sample::select(vec![
                EmergencyKind::Fire,
                EmergencyKind::Accident,
                EmergencyKind::SeriousIllness,
                EmergencyKind::MedicalExpense,
                EmergencyKind::EducationExpense,
            ]),
            0_i64..3_000_000,
        )),
        proptest::option::of((0_i64..20_000_000, 0_i64..8_000_000)),
        (0_i64..2_000_000, 0_i64..6_000_000, any::<bool>()),
    )
        .prop_map(
            |(
                head,
                others,
                in_district,
                financial_assets,
                vehicles,
                recipient_category,
                emergency,
                claim,
                (paid_temporary, medical_out_of_pocket, single_parent),
            )| {
                let mut members = vec![head];
                members.extend(others);
                HouseholdFacts {
                    household_id: None,
                    annual_education_spending: Money::ZERO,
                    annual_other_rigid_spending: Money::ZERO,
                    residence_org_unit: None,
                    hukou_org_unit: OrgUnitCode::parse(if in_district {
                        "990101101201"
                    } else {
                        "990102001001"
                    })
                    .unwrap(),
                    members,
                    assets: AssetFacts {
                        financial_assets: Money::from_fen(financial_assets),
                        non_essential_vehicles: vehicles,
                        extra_housing_units: 0,
                    },
                    recipient_category,
                    holds_urban_dibao_certificate: false,
                    single_parent,
                    empty_nest: false,
                    family_planning: None,
                    emergency: emergency.map(|(kind, expense)| EmergencyFacts {
                        kind,
                        occurred_on: date!(2026 - 11 - 01),
                        uncovered_expense: Money::from_fen(expense),
                    }),
                    disaster: None,
                    medical_claim: claim.map(|(out_of_pocket, paid)| MedicalClaimFacts {
                        patient: 0,
                        out_of_pocket_after_insurance: Money::from_fen(out_of_pocket),
                        paid_this_year: Money::from_fen(paid),
                    }),
                    annual_medical_out_of_pocket: Money::from_fen(medical_out_of_pocket),
                    temporary_assistance_paid_this_year: Money::from_fen(paid_temporary),
                    housing: Default::default(),
                }
            },
        )
}

/// `value × basis_points / 10 000` rounded half away from zero, computed independently.
fn reference_share(value: i64, basis_points: i64) -> i64 {
    let product = i128::from(value) * i128::from(basis_points);
    let rounded = (2 * product + 10_000) / 20_000;
    i64::try_from(rounded).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn more_income_never_raises_dibao(
        household in household(),
        member_choice in any::<prop::sample::Index>(),
        extra in 1_i64..500_000,
        kind in income_kind(),
    ) {
        let mut richer = household.clone();
        let index = member_choice.index(richer.members.len());
        richer.members[index].monthly_income.push(IncomeItem { kind, amount: Money::from_fen(extra) });
        for resolved in [difference_policy(), tier_policy()] {
            for program in [ProgramCode::DibaoRural, ProgramCode::DibaoUrban] {
                let before = resolved.evaluate(program, &household).unwrap();
                let after = resolved.evaluate(program, &richer).unwrap();
                prop_assert!(after.amount <= before.amount, "{program}: {} > {}", after.amount, before.amount);
                prop_assert!(!after.eligible || before.eligible);
            }
        }
    }

    #[test]
    fn dibao_difference_amount_is_exact(household in household()) {
        let resolved = difference_policy();
        for program in [ProgramCode::DibaoRural, ProgramCode::DibaoUrban] {
            let decision = resolved.evaluate(program, &household).unwrap();
            if decision.eligible {
                let hukou = if program == ProgramCode::DibaoRural { HukouType::Rural } else { HukouType::Urban };
                let standard_total = resolved.dibao_standard(hukou).fen() * household.members.len() as i64;
                let counted: i64 = household.members.iter()
                    .flat_map(|member| member.monthly_income.iter())
                    .filter(|item| !resolved.excluded_income.contains(item.kind))
                    .map(|item| item.amount.fen())
                    .sum();
                prop_assert_eq!(decision.amount.fen(), standard_total - counted);
                prop_assert!(decision.amount.fen() > 0);
            }
        }
    }

    #[test]
    fn no_amount_exceeds_its_cap(household in household()) {
        let resolved = difference_policy();
        let temporary = resolved.evaluate(ProgramCode::Temporary, &household).unwrap();
        let caps = &resolved.temporary;
        if let Some(event) = household.emergency {
            let cap = if event.kind.is_expense_driven() { caps.cap_per_event_expense } else { caps.cap_per_event_emergency };
            prop_assert!(temporary.amount <= cap);
            if event.kind.is_expense_driven() {
                prop_assert!(temporary.amount <= event.uncovered_expense);
            }
        }
        let paid = household.temporary_assistance_paid_this_year;
        prop_assert!(temporary.amount.checked_add(paid).unwrap() <= caps.annual_cap_per_household.max(paid));
        if let Some(assist_first) = temporary.assist_first_amount {
            prop_assert!(assist_first <= caps.assist_first_cap);
            prop_assert!(assist_first <= temporary.amount);
        }

        let medical = resolved.evaluate(ProgramCode::MedicalSeriousIllness, &household).unwrap();
        let cap = resolved.medical_serious_illness.annual_cap_per_person;
        let paid = household.medical_claim.map_or(Money::ZERO, |claim| claim.paid_this_year);
        prop_assert!(medical.amount.checked_add(paid).unwrap() <= cap.max(paid));
        if let Some(claim) = household.medical_claim {
            prop_assert!(medical.amount <= claim.out_of_pocket_after_insurance);
        }
    }

    #[test]
    fn medical_share_rounds_half_away_from_zero(household in household()) {
        let resolved = difference_policy();
        let decision = resolved.evaluate(ProgramCode::MedicalSeriousIllness, &household).unwrap();
        if decision.eligible {
            let parameters = &resolved.medical_serious_illness;
            let (share, deductible) = match household.recipient_category {
                RecipientCategory::Tekun => (parameters.share_tekun, parameters.deductible_tekun),
                RecipientCategory::Dibao => (parameters.share_dibao, parameters.deductible_dibao),
                RecipientCategory::LowIncome => (parameters.share_low_income, parameters.deductible_low_income),
                RecipientCategory::None => unreachable!(),
            };
            let claim = household.medical_claim.unwrap();
            let above = claim.out_of_pocket_after_insurance.fen() - deductible.fen();
            let remaining = parameters.annual_cap_per_person.fen() - claim.paid_this_year.fen();
            prop_assert_eq!(decision.amount.fen(), reference_share(above, share).min(remaining));
        }
    }

    #[test]
    fn temporary_amount_rounds_half_away_from_zero(household in household()) {
        let resolved = difference_policy();
        let decision = resolved.evaluate(ProgramCode::Temporary, &household).unwrap();
        if let (true, Some(event), Some(hardship)) = (decision.eligible, household.emergency, decision.hardship) {
            let caps = &resolved.temporary;
            let base = if event.kind.is_expense_driven() { caps.expense_base_per_person } else { caps.emergency_base_per_person };
            let raw = reference_share(base.fen() * household.members.len() as i64, hardship.basis_points);
            let mut expected = raw.min(if event.kind.is_expense_driven() { caps.cap_per_event_expense.fen() } else { caps.cap_per_event_emergency.fen() });
            if event.kind.is_expense_driven() {
                expected = expected.min(event.uncovered_expense.fen());
            }
            expected = expected.min(caps.annual_cap_per_household.fen() - household.temporary_assistance_paid_this_year.fen());
            prop_assert_eq!(decision.amount.fen(), expected);
            let contributions: i64 = hardship.contributions.iter().map(|factor| factor.contribution_basis_points).sum();
            prop_assert_eq!(hardship.basis_points, 10_000 + contributions);
        }
    }

    #[test]
    fn same_inputs_and_version_give_the_same_decision(household in household()) {
        let fresh = Policy::example_district().unwrap();
        for program in ProgramCode::ALL {
            let first = difference_policy().evaluate(program, &household).unwrap();
            let second = difference_policy().evaluate(program, &household).unwrap();
            let third = fresh.evaluate(program, &household, AS_OF).unwrap();
            prop_assert_eq!(&first, &second);
            prop_assert_eq!(&first, &third);
            prop_assert!(!first.amount.is_negative());
            prop_assert!(first.eligible || first.amount.is_zero());
            // The serialised decision reads back identically, amounts as integer fen.
            let json = serde_json::to_string(&first).unwrap();
            let read_back: sunshine_policy::Decision = serde_json::from_str(&json).unwrap();
            prop_assert_eq!(&read_back, &first);
        }
    }
}
