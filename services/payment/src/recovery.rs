//! Recovery claims (追缴), pure: when a paid month becomes money owed back, and what a claim
//! takes after — its events, its fold and its decisions, given facts → events, and the
//! ledger postings each event makes.
//!
//! **When**: an order the bank paid (its result says so) for a period on or after its
//! entitlement's termination's effective month — a death's being the month after the date of
//! death (review) — was paid in error. Whichever of the two is recorded first, the watch
//! (`crate::recovery_watch`) hears the second and hands the facts to [`open_claims`], which
//! opens one claim per such order on `payment-recovery-<claim id>`, its id derived from the
//! order's ([`crate::commands::recovery_claim_id_for`]): the stream is new exactly once, so a
//! replay or a second reaction opens none.
//!
//! **After**: [`handle`] a repayment (never more than is outstanding, so a receivable never
//! goes below zero) or a write-off of the rest (never by whoever recorded the last repayment:
//! four eyes). A claim repaid in full or written off takes nothing more.
//!
//! **Ledger** ([`postings_of`], with `crate::ledger`): the opening moves the order's amount
//! from its expense account to the household's receivable; a repayment from the receivable
//! to the fund; a write-off from the receivable to the program's write-off expense.

use sunshine_domain::Money;
use sunshine_proto::v1 as pb;

use crate::commands::{
    PaidAfterTermination, RecordRecoveryRepayment, RecoveryCommand, WriteOffRecovery,
    recovery_claim_id_for,
};
use crate::ledger::{Posting, PostingError};

sunshine_proto::stream_events! {
    /// The events of `payment-recovery-<claim id>`.
    #[derive(Debug, Clone, PartialEq)]
    pub enum RecoveryEvent in "payment-recovery" {
        Opened(pb::RecoveryClaimOpened),
        RepaymentRecorded(pb::RecoveryRepaymentRecorded),
        WrittenOff(pb::RecoveryWrittenOff),
        Cancelled(pb::RecoveryClaimCancelled),
    }
}

/// Where a claim stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClaimStatus {
    Open,
    /// Repaid in full.
    Repaid,
    WrittenOff,
    /// Its order was returned by the bank: nothing is owed.
    Cancelled,
}

impl ClaimStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ClaimStatus::Open => "open",
            ClaimStatus::Repaid => "repaid",
            ClaimStatus::WrittenOff => "written_off",
            ClaimStatus::Cancelled => "cancelled",
        }
    }
}

/// A claim, folded from its stream.
#[derive(Debug, Clone, PartialEq)]
pub struct ClaimState {
    pub opened: pb::RecoveryClaimOpened,
    pub amount: Money,
    pub repaid: Money,
    pub written_off: Money,
    pub repayments: Vec<pb::RecoveryRepaymentRecorded>,
    pub write_off: Option<pb::RecoveryWrittenOff>,
    /// Set when the claim's order was returned (退票) after it opened.
    pub cancellation: Option<pb::RecoveryClaimCancelled>,
    pub version: u64,
}

fn money(value: Option<&pb::Money>) -> Money {
    Money::from_fen(value.map_or(0, |money| money.fen))
}

impl ClaimState {
    /// The claim of `events` (its stream from the start); `None` without its opening.
    pub fn fold(events: &[RecoveryEvent]) -> Option<ClaimState> {
        let mut state: Option<ClaimState> = None;
        for event in events {
            state = match (state, event) {
                (None, RecoveryEvent::Opened(opened)) => Some(ClaimState {
                    amount: money(opened.amount.as_ref()),
                    opened: opened.clone(),
                    repaid: Money::ZERO,
                    written_off: Money::ZERO,
                    repayments: Vec::new(),
                    write_off: None,
                    cancellation: None,
                    version: 1,
                }),
                (None, _) => None,
                (Some(mut claim), event) => {
                    claim.version += 1;
                    match event {
                        RecoveryEvent::Opened(_) => {}
                        RecoveryEvent::RepaymentRecorded(repaid) => {
                            claim.repaid = claim
                                .repaid
                                .checked_add(money(repaid.amount.as_ref()))
                                .unwrap_or(claim.repaid);
                            claim.repayments.push(repaid.clone());
                        }
                        RecoveryEvent::WrittenOff(written_off) => {
                            claim.written_off = claim
                                .written_off
                                .checked_add(money(written_off.amount.as_ref()))
                                .unwrap_or(claim.written_off);
                            claim.write_off = Some(written_off.clone());
                        }
                        RecoveryEvent::Cancelled(cancelled) => {
                            claim.cancellation = Some(cancelled.clone());
                        }
                    }
                    Some(claim)
                }
            };
        }
        state
    }

    pub fn claim_id(&self) -> &str {
        &self.opened.claim_id
    }

    /// What is still owed: the amount less what was repaid and written off.
    pub fn outstanding(&self) -> Money {
        if self.cancellation.is_some() {
            return Money::ZERO;
        }
        self.amount
            .checked_sub(self.repaid)
            .and_then(|left| left.checked_sub(self.written_off))
            .unwrap_or(Money::ZERO)
    }

    pub fn status(&self) -> ClaimStatus {
        if self.cancellation.is_some() {
            ClaimStatus::Cancelled
        } else if self.write_off.is_some() {
            ClaimStatus::WrittenOff
        } else if self.outstanding().is_zero() {
            ClaimStatus::Repaid
        } else {
            ClaimStatus::Open
        }
    }

    /// The order whose household and fund the claim's money moves for (its first).
    pub fn first_order(&self) -> Option<&pb::PaymentOrder> {
        self.opened.orders.first()
    }
}

/// Why a claim refuses a command.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecoveryError {
    #[error("claim {claim_id} is {status}: it takes nothing more")]
    Closed {
        claim_id: String,
        status: &'static str,
    },
    #[error("{amount} fen is more than the {outstanding} fen outstanding")]
    MoreThanOutstanding { amount: i64, outstanding: i64 },
    #[error("four eyes: the officer who recorded the claim's last repayment may not write it off")]
    RecorderWritesOff,
}

/// The claims to open for `facts`, in order-id order: one per order paid for a period on or
/// after its entitlement's termination, for its whole amount. An order paid before the
/// termination's month, or for nothing, opens none.
pub fn open_claims(
    facts: &[PaidAfterTermination],
    district_code: &str,
) -> Vec<pb::RecoveryClaimOpened> {
    let mut claims: Vec<pb::RecoveryClaimOpened> = facts
        .iter()
        .filter(|fact| fact.period >= fact.terminated_from)
        .filter(|fact| {
            fact.order
                .amount
                .as_ref()
                .is_some_and(|money| money.fen > 0)
        })
        .map(|fact| pb::RecoveryClaimOpened {
            claim_id: recovery_claim_id_for(&fact.order.order_id),
            orders: vec![fact.order.clone()],
            terminated_from: fact.terminated_from.to_string(),
            cause: fact.cause.clone(),
            amount: fact.order.amount,
            district_code: district_code.to_owned(),
        })
        .collect();
    claims.sort_by(|left, right| left.claim_id.cmp(&right.claim_id));
    claims.dedup_by(|left, right| left.claim_id == right.claim_id);
    claims
}

/// Decides `command` on `claim`: the events, or why not.
pub fn handle(
    claim: &ClaimState,
    command: &RecoveryCommand,
) -> Result<Vec<RecoveryEvent>, RecoveryError> {
    let status = claim.status();
    if status != ClaimStatus::Open {
        return Err(RecoveryError::Closed {
            claim_id: claim.claim_id().to_owned(),
            status: status.as_str(),
        });
    }
    let outstanding = claim.outstanding();
    match command {
        RecoveryCommand::RecordRepayment(RecordRecoveryRepayment {
            amount,
            bank_reference,
            recorded_by,
            ..
        }) => {
            if *amount > outstanding {
                return Err(RecoveryError::MoreThanOutstanding {
                    amount: amount.fen(),
                    outstanding: outstanding.fen(),
                });
            }
            Ok(vec![RecoveryEvent::RepaymentRecorded(
                pb::RecoveryRepaymentRecorded {
                    claim_id: claim.claim_id().to_owned(),
                    amount: Some(pb::Money { fen: amount.fen() }),
                    bank_reference: bank_reference.clone(),
                    recorded_by: recorded_by.clone(),
                },
            )])
        }
        RecoveryCommand::WriteOff(WriteOffRecovery {
            reason,
            written_off_by,
            ..
        }) => {
            if claim
                .repayments
                .last()
                .is_some_and(|last| &last.recorded_by == written_off_by)
            {
                return Err(RecoveryError::RecorderWritesOff);
            }
            Ok(vec![RecoveryEvent::WrittenOff(pb::RecoveryWrittenOff {
                claim_id: claim.claim_id().to_owned(),
                amount: Some(pb::Money {
                    fen: outstanding.fen(),
                }),
                reason: reason.to_proto().into(),
                written_off_by: written_off_by.clone(),
            })])
        }
    }
}

/// The cancellation of `claim` because the bank returned its order `order_id` (recorded by
/// run `run_id`'s returns): the money came back through the return, so nothing is owed. What
/// was outstanding is cancelled, what was written off reversed, and what the household had
/// repaid is owed back to it (`refund_due`). `None` when the order is not the claim's, or the
/// claim is cancelled already (a redelivered return).
pub fn cancel_for_return(
    claim: &ClaimState,
    order_id: &str,
    run_id: &str,
) -> Option<RecoveryEvent> {
    if claim.cancellation.is_some()
        || !claim
            .opened
            .orders
            .iter()
            .any(|order| order.order_id == order_id)
    {
        return None;
    }
    let fen = |amount: Money| Some(pb::Money { fen: amount.fen() });
    Some(RecoveryEvent::Cancelled(pb::RecoveryClaimCancelled {
        claim_id: claim.claim_id().to_owned(),
        order_id: order_id.to_owned(),
        cancelled: fen(claim.outstanding()),
        refund_due: fen(claim.repaid),
        write_off_reversed: fen(claim.written_off),
        run_id: run_id.to_owned(),
    }))
}

/// The key of the posting the claim's event at `version` makes.
pub fn posting_key(claim_id: &str, version: u64) -> String {
    format!("recovery-{claim_id}-{version}")
}

/// The postings `event` (at `version` of the claim's stream) makes; `claim` is the claim
/// before it (`None` for the opening).
pub fn postings_of(
    claim: Option<&ClaimState>,
    event: &RecoveryEvent,
    version: u64,
) -> Result<Vec<Posting>, PostingError> {
    match (event, claim.and_then(ClaimState::first_order)) {
        (RecoveryEvent::Opened(opened), _) => opened
            .orders
            .iter()
            .enumerate()
            .map(|(index, order)| {
                // One posting per order; the first keeps the plain key.
                let key = if index == 0 {
                    posting_key(&opened.claim_id, version)
                } else {
                    format!("{}-{index}", posting_key(&opened.claim_id, version))
                };
                Posting::recovery_opened(&key, order, money(order.amount.as_ref()))
            })
            .collect(),
        (RecoveryEvent::RepaymentRecorded(repaid), Some(order)) => {
            Ok(vec![Posting::recovery_repaid(
                &posting_key(&repaid.claim_id, version),
                &order.household_id,
                &crate::ledger::fund_of(order),
                money(repaid.amount.as_ref()),
            )?])
        }
        (RecoveryEvent::WrittenOff(written_off), Some(order)) => {
            let amount = money(written_off.amount.as_ref());
            if amount.is_zero() {
                return Ok(Vec::new());
            }
            Ok(vec![Posting::recovery_written_off(
                &posting_key(&written_off.claim_id, version),
                &order.household_id,
                &order.program_code,
                &crate::ledger::fund_of(order),
                amount,
            )?])
        }
        (RecoveryEvent::Cancelled(cancelled), Some(order)) => {
            let key = posting_key(&cancelled.claim_id, version);
            let parts = [
                (
                    key.clone(),
                    crate::ledger::recovery_account(&order.household_id),
                    money(cancelled.cancelled.as_ref()),
                ),
                (
                    format!("{key}-write-off"),
                    crate::ledger::writeoff_account(&order.program_code),
                    money(cancelled.write_off_reversed.as_ref()),
                ),
                (
                    format!("{key}-refund"),
                    crate::ledger::refund_account(&order.household_id),
                    money(cancelled.refund_due.as_ref()),
                ),
            ];
            parts
                .into_iter()
                .filter(|(_, _, amount)| !amount.is_zero())
                .map(|(key, account, amount)| {
                    Posting::recovery_cancelled(&key, order, account, amount)
                })
                .collect()
        }
        (_, None) => Ok(Vec::new()),
    }
}

/// The claim as a caller sees it.
pub fn claim_response(claim: &ClaimState) -> pb::RecoveryClaimResponse {
    let fen = |amount: Money| Some(pb::Money { fen: amount.fen() });
    pb::RecoveryClaimResponse {
        claim_id: claim.claim_id().to_owned(),
        status: claim.status().as_str().to_owned(),
        version: claim.version,
        orders: claim.opened.orders.clone(),
        terminated_from: claim.opened.terminated_from.clone(),
        cause: claim.opened.cause.clone(),
        amount: fen(claim.amount),
        repaid: fen(claim.repaid),
        written_off: fen(claim.written_off),
        outstanding: fen(claim.outstanding()),
        repayments: claim
            .repayments
            .iter()
            .map(|repaid| pb::RecoveryRepayment {
                amount: repaid.amount,
                bank_reference: repaid.bank_reference.clone(),
                recorded_by: repaid.recorded_by.clone(),
            })
            .collect(),
        refund_due: claim
            .cancellation
            .as_ref()
            .and_then(|cancelled| cancelled.refund_due),
        written_off_by: claim
            .write_off
            .as_ref()
            .map(|written_off| written_off.written_off_by.clone())
            .unwrap_or_default(),
        write_off_reason: claim
            .write_off
            .as_ref()
            .map_or(0, |written_off| written_off.reason),
        district_code: claim.opened.district_code.clone(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    //! Given facts or a claim's events → a command → the events it emits (or its refusal).

    use super::*;
    use crate::commands::WriteOffReason;
    use crate::ledger::{TrialBalance, account_balances};
    use sunshine_domain::Month;

    fn month(text: &str) -> Month {
        Month::parse(text).unwrap()
    }

    fn order(order_id: &str, fen: i64) -> pb::PaymentOrder {
        pb::PaymentOrder {
            order_id: order_id.into(),
            entitlement_id: "case-1".into(),
            case_id: "case-1".into(),
            household_id: "household-1".into(),
            program_code: "dibao".into(),
            street_town_code: "990101001000".into(),
            amount: Some(pb::Money { fen }),
            repays_order_id: String::new(),
            fund: "dibao".into(),
            care_institution_code: String::new(),
        }
    }

    fn paid(order_id: &str, period: &str, terminated_from: &str) -> PaidAfterTermination {
        PaidAfterTermination {
            order: order(order_id, 80_000),
            period: month(period),
            terminated_from: month(terminated_from),
            cause: "member died".into(),
        }
    }

    fn opened_claim() -> Vec<RecoveryEvent> {
        open_claims(&[paid("o-april", "2027-04", "2027-04")], "990101000000")
            .into_iter()
            .map(RecoveryEvent::Opened)
            .collect()
    }

    fn repayment(fen: i64, by: &str) -> RecoveryCommand {
        RecoveryCommand::RecordRepayment(RecordRecoveryRepayment {
            claim_id: String::new(),
            expected_version: 0,
            amount: Money::from_fen(fen),
            bank_reference: "TX-1".into(),
            recorded_by: by.into(),
        })
    }

    fn write_off(by: &str) -> RecoveryCommand {
        RecoveryCommand::WriteOff(WriteOffRecovery {
            claim_id: String::new(),
            expected_version: 0,
            reason: WriteOffReason::NoEstate,
            written_off_by: by.into(),
        })
    }

    /// The claim after `history` and then `command`'s events.
    fn then(history: &mut Vec<RecoveryEvent>, command: &RecoveryCommand) -> ClaimState {
        let claim = ClaimState::fold(history).unwrap();
        let events = handle(&claim, command).unwrap();
        history.extend(events);
        ClaimState::fold(history).unwrap()
    }

    #[test]
    fn a_month_paid_on_or_after_the_termination_opens_one_claim_for_its_amount() {
        let claims = open_claims(
            &[
                paid("o-march", "2027-03", "2027-04"),
                paid("o-april", "2027-04", "2027-04"),
                paid("o-may", "2027-05", "2027-04"),
                paid("o-may", "2027-05", "2027-04"),
            ],
            "990101000000",
        );
        let mut expected: Vec<String> = ["o-april", "o-may"]
            .iter()
            .map(|order| recovery_claim_id_for(order))
            .collect();
        expected.sort();
        let ids: Vec<String> = claims.iter().map(|claim| claim.claim_id.clone()).collect();
        assert_eq!(ids, expected, "one claim per order, none for March");
        let april = claims
            .iter()
            .find(|claim| claim.orders[0].order_id == "o-april")
            .unwrap();
        assert_eq!(april.amount, Some(pb::Money { fen: 80_000 }));
        assert_eq!(april.terminated_from, "2027-04");
        assert_eq!(april.cause, "member died");
        assert_eq!(april.district_code, "990101000000");
        assert_eq!(
            recovery_claim_id_for("o-april"),
            recovery_claim_id_for("o-april")
        );
    }

    #[test]
    fn repayments_up_to_what_is_outstanding_then_nothing_more() {
        let mut history = opened_claim();
        let claim = ClaimState::fold(&history).unwrap();
        assert_eq!(claim.status(), ClaimStatus::Open);
        assert_eq!(
            handle(&claim, &repayment(80_001, "officer-1")),
            Err(RecoveryError::MoreThanOutstanding {
                amount: 80_001,
                outstanding: 80_000
            })
        );
        let claim = then(&mut history, &repayment(30_000, "officer-1"));
        assert_eq!(claim.outstanding(), Money::from_fen(50_000));
        assert_eq!(claim.version, 2);
        let claim = then(&mut history, &repayment(50_000, "officer-2"));
        assert_eq!(claim.status(), ClaimStatus::Repaid);
        assert!(matches!(
            handle(&claim, &repayment(1, "officer-1")),
            Err(RecoveryError::Closed { .. })
        ));
        assert!(matches!(
            handle(&claim, &write_off("approver-1")),
            Err(RecoveryError::Closed { .. })
        ));
    }

    #[test]
    fn a_write_off_takes_the_rest_never_by_the_last_repayments_recorder() {
        let mut history = opened_claim();
        let claim = then(&mut history, &repayment(30_000, "fin-1"));
        assert_eq!(
            handle(&claim, &write_off("fin-1")),
            Err(RecoveryError::RecorderWritesOff)
        );
        let events = handle(&claim, &write_off("approver-2")).unwrap();
        assert_eq!(
            events,
            vec![RecoveryEvent::WrittenOff(pb::RecoveryWrittenOff {
                claim_id: claim.claim_id().to_owned(),
                amount: Some(pb::Money { fen: 50_000 }),
                reason: pb::WriteOffReason::NoEstate.into(),
                written_off_by: "approver-2".into(),
            })]
        );
        let claim = then(&mut history, &write_off("approver-2"));
        assert_eq!(claim.status(), ClaimStatus::WrittenOff);
        assert_eq!(claim.outstanding(), Money::ZERO);
        assert!(matches!(
            handle(&claim, &repayment(1, "fin-1")),
            Err(RecoveryError::Closed { .. })
        ));
        // With no repayment, any approver writes the whole claim off.
        let claim = ClaimState::fold(&opened_claim()).unwrap();
        assert!(handle(&claim, &write_off("fin-1")).is_ok());
    }

    #[test]
    fn the_claims_postings_balance_and_the_receivable_is_what_is_outstanding() {
        let mut history = opened_claim();
        then(&mut history, &repayment(30_000, "fin-1"));
        then(&mut history, &write_off("approver-2"));
        let mut postings = vec![Posting::paid_order(&order("o-april", 80_000)).unwrap()];
        for (index, event) in history.iter().enumerate() {
            let before = ClaimState::fold(&history[..index]);
            postings.extend(postings_of(before.as_ref(), event, index as u64 + 1).unwrap());
        }
        assert_eq!(postings.len(), 4);
        assert_eq!(
            TrialBalance::of(&postings).unwrap().difference(),
            Some(Money::ZERO)
        );
        let balances = account_balances(&postings).unwrap();
        assert_eq!(balances["recovery:household-1"], Money::ZERO);
        assert_eq!(balances["fund:dibao"], Money::from_fen(-50_000));
        assert_eq!(balances["writeoff:dibao"], Money::from_fen(50_000));
        assert_eq!(
            balances["benefits:dibao:990101001000:household-1"],
            Money::ZERO
        );
    }

    /// Every posting of `history` after the order's paid posting, and the return's reversal
    /// when `returned`.
    fn ledger_of(history: &[RecoveryEvent], returned: bool) -> Vec<Posting> {
        let mut postings = vec![Posting::paid_order(&order("o-april", 80_000)).unwrap()];
        if returned {
            postings.push(Posting::returned_order(&order("o-april", 80_000)).unwrap());
        }
        for (index, event) in history.iter().enumerate() {
            let before = ClaimState::fold(&history[..index]);
            postings.extend(postings_of(before.as_ref(), event, index as u64 + 1).unwrap());
        }
        postings
    }

    #[test]
    fn a_return_cancels_what_is_outstanding_and_reverses_the_opening() {
        let mut history = opened_claim();
        let claim = ClaimState::fold(&history).unwrap();
        assert_eq!(cancel_for_return(&claim, "o-other", "run-1"), None);
        let cancelled = cancel_for_return(&claim, "o-april", "run-1").unwrap();
        assert_eq!(
            cancelled,
            RecoveryEvent::Cancelled(pb::RecoveryClaimCancelled {
                claim_id: claim.claim_id().to_owned(),
                order_id: "o-april".into(),
                cancelled: Some(pb::Money { fen: 80_000 }),
                refund_due: Some(pb::Money { fen: 0 }),
                write_off_reversed: Some(pb::Money { fen: 0 }),
                run_id: "run-1".into(),
            })
        );
        history.push(cancelled);
        let claim = ClaimState::fold(&history).unwrap();
        assert_eq!(claim.status(), ClaimStatus::Cancelled);
        assert_eq!(claim.outstanding(), Money::ZERO);
        // A redelivered return cancels nothing more; the claim takes nothing more.
        assert_eq!(cancel_for_return(&claim, "o-april", "run-1"), None);
        assert!(matches!(
            handle(&claim, &repayment(1, "fin-1")),
            Err(RecoveryError::Closed { .. })
        ));
        assert!(matches!(
            handle(&claim, &write_off("approver-2")),
            Err(RecoveryError::Closed { .. })
        ));
        let postings = ledger_of(&history, true);
        assert_eq!(
            TrialBalance::of(&postings).unwrap().difference(),
            Some(Money::ZERO)
        );
        let balances = account_balances(&postings).unwrap();
        // Everything is back where it was before the payment.
        assert_eq!(balances["recovery:household-1"], Money::ZERO);
        assert_eq!(balances["fund:dibao"], Money::ZERO);
        assert_eq!(
            balances["benefits:dibao:990101001000:household-1"],
            Money::ZERO
        );
    }

    #[test]
    fn a_return_after_a_repayment_owes_the_repayment_back_and_reverses_a_write_off() {
        let mut history = opened_claim();
        then(&mut history, &repayment(30_000, "fin-1"));
        then(&mut history, &write_off("approver-2"));
        let claim = ClaimState::fold(&history).unwrap();
        let cancelled = cancel_for_return(&claim, "o-april", "run-1").unwrap();
        let RecoveryEvent::Cancelled(figures) = &cancelled else {
            panic!("{cancelled:?}");
        };
        assert_eq!(figures.cancelled, Some(pb::Money { fen: 0 }));
        assert_eq!(figures.refund_due, Some(pb::Money { fen: 30_000 }));
        assert_eq!(figures.write_off_reversed, Some(pb::Money { fen: 50_000 }));
        history.push(cancelled);
        let claim = ClaimState::fold(&history).unwrap();
        assert_eq!(claim.status(), ClaimStatus::Cancelled);
        assert_eq!(
            claim_response(&claim).refund_due,
            Some(pb::Money { fen: 30_000 })
        );
        let postings = ledger_of(&history, true);
        assert_eq!(
            TrialBalance::of(&postings).unwrap().difference(),
            Some(Money::ZERO)
        );
        let balances = account_balances(&postings).unwrap();
        assert_eq!(balances["recovery:household-1"], Money::ZERO);
        assert_eq!(balances["writeoff:dibao"], Money::ZERO);
        assert_eq!(
            balances["benefits:dibao:990101001000:household-1"],
            Money::ZERO
        );
        // The fund holds the repayment, which is owed back to the household.
        assert_eq!(balances["fund:dibao"], Money::from_fen(30_000));
        assert_eq!(balances["refunds:household-1"], Money::from_fen(-30_000));
    }
}
