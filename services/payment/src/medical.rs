//! Serious-illness medical assistance claims (大病医疗救助), the arithmetic (pure): a claim's
//! out-of-pocket cost after insurance, less the deductible of the recipient's category, times
//! that category's share, capped by the annual limit per person less what payment's own
//! assessed claims already paid the patient in the settlement's calendar year.
//!
//! Every figure comes from the policy's effective-dated parameters as of the settlement date
//! (`[medical_serious_illness]` of the policy directory, `sunshine_policy`'s
//! [`SeriousIllnessParameters`], the ones the engine's rule M5 evaluates with); this module
//! holds none of its own. The share is applied as the engine applies it (basis points, half
//! away from zero).
//!
//! The recipient's **category** is not the claimant's to say: it is the household's, from the
//! entitlements payment holds in the month of the assessment — a tekun entitlement paying that
//! month makes it tekun, else a dibao one dibao, else (an approved serious-illness case and
//! neither) low income, the one covered category payment cannot see.
//!
//! The claim (stream `payment-medical-<claim id>`, [`MedicalEvent`]) is one event,
//! `MedicalClaimAssessed`, decided by [`handle`]: the case must be a serious-illness case
//! payment heard approved (and not terminated before the settlement's month; a settlement
//! before the approval is what the case was opened for); the amount is paid
//! once, as a one-off entitlement ([`claim_entitlement`]) in the month after the assessment, by
//! that month's run. Earlier payments are payment's own assessed claims of the patient in the
//! settlement's calendar year, in log order (a new year starts at zero); two claims of one
//! patient's year racing each other cannot both count the same earlier claims (the guard
//! table, `crate::read_model::MedicalClaimGuard`).

use std::str::FromStr as _;

use sunshine_domain::{Money, Month};
use sunshine_policy::ProgramCode;
use sunshine_policy::resolved::SeriousIllnessParameters;
use sunshine_proto::v1 as pb;
use time::Date;

use crate::entitlements::{Entitlement, Kind, Payee, amount_due};

/// The program of the cases a claim may name.
pub const PROGRAM: ProgramCode = ProgramCode::MedicalSeriousIllness;

/// The recipient categories the rule covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Category {
    Tekun,
    Dibao,
    LowIncome,
}

impl Category {
    /// The policy's spelling (`sunshine_policy::RecipientCategory`).
    pub fn as_str(self) -> &'static str {
        match self {
            Category::Tekun => "tekun",
            Category::Dibao => "dibao",
            Category::LowIncome => "low_income",
        }
    }
}

/// The household's category in `month`, from its entitlements (see the module's docs).
pub fn category_of(household: &[Entitlement], month: Month) -> Category {
    let paying = |program: &dyn Fn(&str) -> bool| {
        household.iter().any(|entitlement| {
            program(&entitlement.program_code) && amount_due(entitlement, month).fen() > 0
        })
    };
    let tekun = |code: &str| ProgramCode::from_str(code) == Ok(ProgramCode::Tekun);
    let dibao = |code: &str| {
        code == "dibao"
            || matches!(
                ProgramCode::from_str(code),
                Ok(ProgramCode::DibaoUrban | ProgramCode::DibaoRural)
            )
    };
    if paying(&tekun) {
        Category::Tekun
    } else if paying(&dibao) {
        Category::Dibao
    } else {
        Category::LowIncome
    }
}

/// A claim assessed: every figure the amount came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Assessment {
    pub category: Category,
    /// The category's share, in basis points (7000 = 70 %).
    pub share_basis_points: i64,
    pub deductible: Money,
    pub annual_cap: Money,
    pub paid_earlier_this_year: Money,
    /// What the cap leaves this year: cap − earlier, never below zero.
    pub cap_remaining: Money,
    /// share × (cost − deductible), before the cap.
    pub share_amount: Money,
    /// What the claim pays: the share amount within the cap's remainder (zero at or under
    /// the deductible, or with the cap reached).
    pub amount: Money,
}

/// Why a claim cannot be assessed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AssessRefusal {
    #[error("the out-of-pocket cost must be more than zero fen")]
    NotPositive,
    #[error("the assessment is out of range")]
    OutOfRange,
}

/// Assesses an out-of-pocket cost of `out_of_pocket` for a patient of `category`, of whom
/// payment's claims paid `paid_earlier_this_year` in the settlement's year.
pub fn assess(
    parameters: &SeriousIllnessParameters,
    category: Category,
    out_of_pocket: Money,
    paid_earlier_this_year: Money,
) -> Result<Assessment, AssessRefusal> {
    if out_of_pocket.fen() <= 0 {
        return Err(AssessRefusal::NotPositive);
    }
    let (share_basis_points, deductible) = match category {
        Category::Tekun => (parameters.share_tekun, parameters.deductible_tekun),
        Category::Dibao => (parameters.share_dibao, parameters.deductible_dibao),
        Category::LowIncome => (
            parameters.share_low_income,
            parameters.deductible_low_income,
        ),
    };
    let above = out_of_pocket
        .checked_sub(deductible)
        .ok_or(AssessRefusal::OutOfRange)?
        .max(Money::ZERO);
    let share_amount = above
        .checked_mul_ratio(share_basis_points, 10_000)
        .map_err(|_| AssessRefusal::OutOfRange)?;
    let annual_cap = parameters.annual_cap_per_person;
    let cap_remaining = annual_cap
        .checked_sub(paid_earlier_this_year)
        .ok_or(AssessRefusal::OutOfRange)?
        .max(Money::ZERO);
    Ok(Assessment {
        category,
        share_basis_points,
        deductible,
        annual_cap,
        paid_earlier_this_year,
        cap_remaining,
        share_amount,
        amount: share_amount.min(cap_remaining),
    })
}

// ---- The claim: its stream, command, facts and decision ----

sunshine_proto::stream_events! {
    /// The events of `payment-medical-<claim id>`.
    #[derive(Debug, Clone, PartialEq)]
    pub enum MedicalEvent in "payment-medical" {
        Assessed(pb::MedicalClaimAssessed),
    }
}

/// A claim, folded from its stream.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ClaimState {
    pub claim: pb::MedicalClaimAssessed,
    pub version: u64,
}

impl ClaimState {
    /// The claim folded from `events`, or `None` for none.
    pub fn fold<'a>(events: impl IntoIterator<Item = &'a MedicalEvent>) -> Option<ClaimState> {
        let mut state: Option<ClaimState> = None;
        for event in events {
            let folded = state.get_or_insert_with(ClaimState::default);
            match event {
                MedicalEvent::Assessed(assessed) => folded.claim = assessed.clone(),
            }
            folded.version += 1;
        }
        state
    }
}

/// `SubmitMedicalClaim`, parsed (`crate::commands::parse_medical_claim`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubmitMedicalClaim {
    pub claim_id: String,
    pub case_id: String,
    pub patient_member_id: String,
    pub out_of_pocket: Money,
    pub settlement_date: Date,
    pub settlement_reference: String,
    pub submitted_by: String,
}

/// The case a claim names, as payment holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimCase {
    pub case_id: String,
    pub household_id: String,
    pub program_code: String,
    pub street_town_code: String,
    /// The case's approval as an entitlement (none: never approved).
    pub approval: Option<Entitlement>,
}

/// What the store knows when a claim is decided: facts not on the claim's stream.
#[derive(Debug, Clone, PartialEq)]
pub struct ClaimFacts {
    pub case: ClaimCase,
    /// The household's entitlements (its category).
    pub household: Vec<Entitlement>,
    /// The policy's serious-illness parameters as of the settlement date, and their version.
    pub parameters: SeriousIllnessParameters,
    pub policy_version: String,
    /// What payment's earlier claims of the settlement year paid the patient, and how many.
    pub paid_earlier_this_year: Money,
    pub earlier_claims: u32,
    /// The month of the assessment's (local) day: the household's category is its in it.
    pub assessed_in: Month,
    /// The month after it: its run pays the claim.
    pub payable_month: Month,
}

/// Why a claim is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClaimError {
    #[error("claim {claim_id} exists already")]
    ClaimExists { claim_id: String },
    #[error("case {case_id} is not a serious-illness medical assistance case")]
    WrongProgram { case_id: String },
    #[error("case {case_id} is not approved, or its approval ended before the settlement's month")]
    NotApproved { case_id: String },
    #[error("{0}")]
    Assess(AssessRefusal),
}

fn money(amount: Money) -> Option<pb::Money> {
    Some(pb::Money { fen: amount.fen() })
}

/// Decides a claim on `state` (`None`: a new claim): the assessment, or why not.
pub fn handle(
    state: Option<&ClaimState>,
    submit: &SubmitMedicalClaim,
    facts: &ClaimFacts,
) -> Result<Vec<MedicalEvent>, ClaimError> {
    if state.is_some() {
        return Err(ClaimError::ClaimExists {
            claim_id: submit.claim_id.clone(),
        });
    }
    let case = &facts.case;
    if case.program_code != PROGRAM.as_str() {
        return Err(ClaimError::WrongProgram {
            case_id: case.case_id.clone(),
        });
    }
    let settled_in = Month::of(submit.settlement_date);
    let approved = case.approval.as_ref().is_some_and(|approval| {
        approval
            .terminated_from
            .is_none_or(|terminated| settled_in < terminated)
    });
    if !approved {
        return Err(ClaimError::NotApproved {
            case_id: case.case_id.clone(),
        });
    }
    let category = category_of(&facts.household, facts.assessed_in);
    let assessment = assess(
        &facts.parameters,
        category,
        submit.out_of_pocket,
        facts.paid_earlier_this_year,
    )
    .map_err(ClaimError::Assess)?;
    let date = submit.settlement_date;
    Ok(vec![MedicalEvent::Assessed(pb::MedicalClaimAssessed {
        claim_id: submit.claim_id.clone(),
        case_id: case.case_id.clone(),
        household_id: case.household_id.clone(),
        program_code: case.program_code.clone(),
        street_town_code: case.street_town_code.clone(),
        patient_member_id: submit.patient_member_id.clone(),
        settlement_date: Some(pb::Date {
            year: date.year(),
            month: i32::from(u8::from(date.month())),
            day: i32::from(date.day()),
        }),
        settlement_reference: submit.settlement_reference.clone(),
        out_of_pocket: money(submit.out_of_pocket),
        category: assessment.category.as_str().to_owned(),
        share_basis_points: assessment.share_basis_points,
        deductible: money(assessment.deductible),
        annual_cap: money(assessment.annual_cap),
        paid_earlier_this_year: money(assessment.paid_earlier_this_year),
        share_amount: money(assessment.share_amount),
        amount: money(assessment.amount),
        policy_version: facts.policy_version.clone(),
        payable_month: facts.payable_month.to_string(),
        submitted_by: submit.submitted_by.clone(),
        earlier_claims: facts.earlier_claims,
    })])
}

/// The one-off entitlement an assessed claim makes (none for a claim that pays nothing): its
/// amount once, in the payable month, budgeted under the case's program.
pub fn claim_entitlement(assessed: &pb::MedicalClaimAssessed) -> Option<Entitlement> {
    let amount = Money::from_fen(assessed.amount.as_ref().map_or(0, |money| money.fen));
    if amount.fen() <= 0 {
        return None;
    }
    Some(Entitlement {
        entitlement_id: format!("{CLAIM_ENTITLEMENT_PREFIX}{}", assessed.claim_id),
        case_id: assessed.case_id.clone(),
        household_id: assessed.household_id.clone(),
        program_code: assessed.program_code.clone(),
        street_town_code: assessed.street_town_code.clone(),
        kind: Kind::OneOff,
        amount,
        start_month: Month::parse(&assessed.payable_month).ok()?,
        suspended_from: None,
        terminated_from: None,
        adjustments: Vec::new(),
        payee: Payee::Household,
    })
}

/// The entitlement ids of medical claims start so.
pub const CLAIM_ENTITLEMENT_PREFIX: &str = "medical-";

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use time::macros::date;

    use super::*;

    /// The EXAMPLE district's parameters as of `on`, from the policy files themselves.
    fn parameters(on: time::Date) -> SeriousIllnessParameters {
        sunshine_policy::Policy::example_district()
            .unwrap()
            .resolve(on)
            .unwrap()
            .medical_serious_illness
    }

    fn yuan(text: &str) -> Money {
        Money::parse_yuan(text).unwrap()
    }

    fn assessed(category: Category, cost: &str, earlier: &str) -> Assessment {
        assess(
            &parameters(date!(2026 - 11 - 20)),
            category,
            yuan(cost),
            yuan(earlier),
        )
        .unwrap()
    }

    #[test]
    fn the_share_depends_on_the_category() {
        let parameters = parameters(date!(2026 - 11 - 20));
        let tekun = assessed(Category::Tekun, "10000.00", "0.00");
        let dibao = assessed(Category::Dibao, "10000.00", "0.00");
        let low = assessed(Category::LowIncome, "10000.00", "0.00");
        let expected = |share: i64, deductible: Money| {
            yuan("10000.00")
                .checked_sub(deductible)
                .unwrap()
                .checked_mul_ratio(share, 10_000)
                .unwrap()
        };
        assert_eq!(
            tekun.amount,
            expected(parameters.share_tekun, parameters.deductible_tekun)
        );
        assert_eq!(
            dibao.amount,
            expected(parameters.share_dibao, parameters.deductible_dibao)
        );
        assert_eq!(
            low.amount,
            expected(
                parameters.share_low_income,
                parameters.deductible_low_income
            )
        );
        // The EXAMPLE's figures: 100 %, 70 %, and 60 % above a 1000-yuan deductible.
        assert_eq!(
            (tekun.amount, dibao.amount, low.amount),
            (yuan("10000.00"), yuan("7000.00"), yuan("5400.00"))
        );
        assert_eq!(dibao.share_basis_points, 7000);
    }

    #[test]
    fn the_cap_less_earlier_payments_bounds_the_amount() {
        let cap = parameters(date!(2026 - 11 - 20)).annual_cap_per_person;
        assert_eq!(cap, yuan("60000.00"));
        let first = assessed(Category::Dibao, "80000.00", "0.00");
        assert_eq!(first.share_amount, yuan("56000.00"));
        assert_eq!(first.amount, yuan("56000.00"));
        let second = assessed(Category::Dibao, "80000.00", "56000.00");
        assert_eq!(second.cap_remaining, yuan("4000.00"));
        assert_eq!(second.amount, yuan("4000.00"));
        let third = assessed(Category::Dibao, "100.00", "60000.00");
        assert_eq!(third.amount, Money::ZERO);
        let over = assessed(Category::Dibao, "100.00", "70000.00");
        assert_eq!(
            (over.cap_remaining, over.amount),
            (Money::ZERO, Money::ZERO)
        );
    }

    #[test]
    fn the_cap_in_force_is_the_settlements_years() {
        // The EXAMPLE's cap rose from 50 000 to 60 000 yuan on 2026-01-01.
        assert_eq!(
            parameters(date!(2025 - 12 - 31)).annual_cap_per_person,
            yuan("50000.00")
        );
        let old = assess(
            &parameters(date!(2025 - 12 - 31)),
            Category::Tekun,
            yuan("70000.00"),
            Money::ZERO,
        )
        .unwrap();
        assert_eq!(old.amount, yuan("50000.00"));
    }

    #[test]
    fn at_or_under_the_deductible_nothing_is_paid() {
        assert_eq!(
            assessed(Category::LowIncome, "1000.00", "0.00").amount,
            Money::ZERO
        );
        assert_eq!(
            assessed(Category::LowIncome, "1000.01", "0.00").amount,
            Money::from_fen(1)
        );
    }

    #[test]
    fn zero_and_negative_costs_are_refused() {
        let parameters = parameters(date!(2026 - 11 - 20));
        for fen in [0, -1, -100_000] {
            assert_eq!(
                assess(
                    &parameters,
                    Category::Dibao,
                    Money::from_fen(fen),
                    Money::ZERO
                ),
                Err(AssessRefusal::NotPositive)
            );
        }
    }

    fn entitlement(program: &str, start: &str) -> Entitlement {
        Entitlement {
            entitlement_id: format!("case-{program}"),
            case_id: format!("case-{program}"),
            household_id: "h1".into(),
            program_code: program.into(),
            street_town_code: "990101001000".into(),
            kind: Kind::Monthly,
            amount: Money::from_fen(50_000),
            start_month: Month::parse(start).unwrap(),
            suspended_from: None,
            terminated_from: None,
            adjustments: Vec::new(),
            payee: Payee::Household,
        }
    }

    #[test]
    fn the_category_is_the_households_paying_entitlement() {
        let month = Month::parse("2026-11").unwrap();
        assert_eq!(category_of(&[], month), Category::LowIncome);
        let dibao = entitlement("dibao_rural", "2026-01");
        let tekun = entitlement("tekun", "2026-01");
        assert_eq!(
            category_of(std::slice::from_ref(&dibao), month),
            Category::Dibao
        );
        assert_eq!(category_of(&[dibao.clone(), tekun], month), Category::Tekun);
        // Not yet paying, or terminated: not the category.
        let later = entitlement("tekun", "2027-01");
        assert_eq!(
            category_of(std::slice::from_ref(&later), month),
            Category::LowIncome
        );
        let mut ended = dibao;
        ended.terminated_from = Some(Month::parse("2026-06").unwrap());
        assert_eq!(category_of(&[ended], month), Category::LowIncome);
    }

    // ---- Given / When / Then: the claim ----

    fn case(program: &str, approval: Option<Entitlement>) -> ClaimCase {
        ClaimCase {
            case_id: "case-m".into(),
            household_id: "h1".into(),
            program_code: program.into(),
            street_town_code: "990101001000".into(),
            approval,
        }
    }

    fn claim_facts(case: ClaimCase, household: Vec<Entitlement>, earlier: &str) -> ClaimFacts {
        ClaimFacts {
            case,
            household,
            parameters: parameters(date!(2026 - 11 - 20)),
            policy_version: "v1".into(),
            paid_earlier_this_year: yuan(earlier),
            earlier_claims: 1,
            assessed_in: Month::parse("2026-11").unwrap(),
            payable_month: Month::parse("2026-12").unwrap(),
        }
    }

    fn submit(cost: &str) -> SubmitMedicalClaim {
        SubmitMedicalClaim {
            claim_id: "claim-1".into(),
            case_id: "case-m".into(),
            patient_member_id: "m2".into(),
            out_of_pocket: yuan(cost),
            settlement_date: date!(2026 - 11 - 20),
            settlement_reference: "JS-1".into(),
            submitted_by: "center-1".into(),
        }
    }

    fn approved_case() -> ClaimCase {
        let mut approval = entitlement("medical_serious_illness", "2026-10");
        approval.entitlement_id = "case-m".into();
        case("medical_serious_illness", Some(approval))
    }

    #[test]
    fn a_claim_is_assessed_with_every_figure_and_the_policy_version() {
        let facts = claim_facts(
            approved_case(),
            vec![entitlement("dibao", "2026-01")],
            "50000.00",
        );
        let events = handle(None, &submit("20000.00"), &facts).unwrap();
        let [MedicalEvent::Assessed(assessed)] = events.as_slice() else {
            panic!("{events:?}");
        };
        assert_eq!(assessed.category, "dibao");
        assert_eq!(assessed.share_basis_points, 7000);
        let fen = |money: &Option<pb::Money>| money.as_ref().unwrap().fen;
        assert_eq!(fen(&assessed.share_amount), yuan("14000.00").fen());
        assert_eq!(fen(&assessed.annual_cap), yuan("60000.00").fen());
        assert_eq!(
            fen(&assessed.paid_earlier_this_year),
            yuan("50000.00").fen()
        );
        // Capped: 60 000 − 50 000.
        assert_eq!(fen(&assessed.amount), yuan("10000.00").fen());
        assert_eq!(assessed.policy_version, "v1");
        assert_eq!(assessed.payable_month, "2026-12");
        assert_eq!(assessed.earlier_claims, 1);
        let entitlement = claim_entitlement(assessed).unwrap();
        assert_eq!(entitlement.entitlement_id, "medical-claim-1");
        assert_eq!(
            amount_due(&entitlement, Month::parse("2026-12").unwrap()),
            yuan("10000.00")
        );
        assert_eq!(
            amount_due(&entitlement, Month::parse("2027-01").unwrap()),
            Money::ZERO
        );
    }

    #[test]
    fn a_claim_paying_nothing_makes_no_entitlement() {
        let facts = claim_facts(approved_case(), Vec::new(), "60000.00");
        let events = handle(None, &submit("20000.00"), &facts).unwrap();
        let [MedicalEvent::Assessed(assessed)] = events.as_slice() else {
            panic!("{events:?}");
        };
        assert_eq!(assessed.amount.as_ref().unwrap().fen, 0);
        assert_eq!(claim_entitlement(assessed), None);
    }

    #[test]
    fn a_claim_needs_an_approved_serious_illness_case_and_is_made_once() {
        let wrong = claim_facts(case("dibao", approved_case().approval), Vec::new(), "0.00");
        assert_eq!(
            handle(None, &submit("100.00"), &wrong),
            Err(ClaimError::WrongProgram {
                case_id: "case-m".into()
            })
        );
        let unapproved = claim_facts(case("medical_serious_illness", None), Vec::new(), "0.00");
        assert_eq!(
            handle(None, &submit("100.00"), &unapproved),
            Err(ClaimError::NotApproved {
                case_id: "case-m".into()
            })
        );
        let mut ended = approved_case();
        if let Some(approval) = ended.approval.as_mut() {
            approval.terminated_from = Some(Month::parse("2026-11").unwrap());
        }
        assert_eq!(
            handle(
                None,
                &submit("100.00"),
                &claim_facts(ended, Vec::new(), "0.00")
            ),
            Err(ClaimError::NotApproved {
                case_id: "case-m".into()
            })
        );
        let facts = claim_facts(approved_case(), Vec::new(), "0.00");
        let events = handle(None, &submit("100.00"), &facts).unwrap();
        let state = ClaimState::fold(&events).unwrap();
        assert_eq!(state.version, 1);
        assert_eq!(
            handle(Some(&state), &submit("100.00"), &facts),
            Err(ClaimError::ClaimExists {
                claim_id: "claim-1".into()
            })
        );
        assert_eq!(
            handle(None, &submit("0.00"), &facts),
            Err(ClaimError::Assess(AssessRefusal::NotPositive))
        );
    }
}
