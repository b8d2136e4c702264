//! The ledger (总账), pure: double-entry postings in integer fen, derived from payment's own
//! events. Money moves only when the bank confirms it: when the bank's result records an order
//! **paid**, one [`Posting`] debits the expense account
//! `benefits:<program>:<street-town>:<household>` and credits the fund's bank account
//! `fund:<fund>`, by the order's amount. Nothing is posted when a run is created, approved or
//! exported, nor for an order the bank failed (its re-payment is posted when the bank pays
//! it).
//!
//! A posting is **balanced by construction**: it holds one positive amount and two accounts,
//! and its [`lines`](Posting::lines) are that amount as a debit and as a credit. An unbalanced
//! posting cannot be written down, so the [`TrialBalance`] of any set of postings is zero.
//!
//! Which fund pays an order ([`fund_of`]): the fund the run named on it at its creation, from
//! the funds file (`crate::funds`); an order of a run created before funds were known is
//! posted to the emergency fund for an assist-first grant (先行救助) and else to the fund named
//! by its program's code.
//!
//! A **return** (退票) of a paid order reverses its posting ([`Posting::returned_order`]): the
//! fund's account debited and the expense account credited by the same amount, as the
//! ledger's lines 2 and 3 of the order; the re-payment of a returned order is its own order,
//! posted when the bank pays it.

use std::collections::BTreeMap;

use sunshine_domain::Money;
use sunshine_proto::v1 as pb;

use crate::funds;

/// The fund assist-first grants draw on.
pub const EMERGENCY_FUND: &str = "emergency";

/// The fund that pays `order`.
pub fn fund_of(order: &pb::PaymentOrder) -> String {
    if !order.fund.is_empty() {
        order.fund.clone()
    } else if funds::budget_program(&order.entitlement_id, &order.program_code)
        == funds::ASSIST_FIRST
    {
        EMERGENCY_FUND.to_owned()
    } else {
        order.program_code.clone()
    }
}

/// The expense account of `order`: `benefits:<program>:<street-town>:<household>`.
pub fn expense_account(order: &pb::PaymentOrder) -> String {
    format!(
        "benefits:{}:{}:{}",
        order.program_code, order.street_town_code, order.household_id
    )
}

/// The bank account of `fund`: `fund:<fund>`.
pub fn fund_account(fund: &str) -> String {
    format!("fund:{fund}")
}

/// Why an order cannot be posted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PostingError {
    #[error("order {order_id} has no positive amount to post")]
    NotPositive { order_id: String },
}

/// One balanced posting: `amount` debited to one account and credited to another. The fields
/// are private: the only way to make one is [`Posting::paid_order`], and the only way to read
/// its money is as its two equal and opposite [`Line`]s.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Posting {
    order_id: String,
    fund: String,
    debit_account: String,
    credit_account: String,
    amount: Money,
    /// A return's reversal of the order's paid posting (its lines are numbered 2 and 3).
    reversal: bool,
}

/// Debit or credit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Side {
    Debit,
    Credit,
}

impl Side {
    /// The line's number within its posting (the ledger table's key).
    pub fn number(self) -> i64 {
        match self {
            Side::Debit => 0,
            Side::Credit => 1,
        }
    }
}

/// One line of a posting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub order_id: String,
    pub fund: String,
    pub account: String,
    pub side: Side,
    /// Positive.
    pub amount: Money,
}

impl Line {
    /// The line's debit and credit columns in fen (one of them zero).
    pub fn debit_credit_fen(&self) -> (i64, i64) {
        match self.side {
            Side::Debit => (self.amount.fen(), 0),
            Side::Credit => (0, self.amount.fen()),
        }
    }
}

impl Posting {
    /// The posting of `order`, which the bank's result says was paid: its expense account
    /// debited, its fund's bank account credited.
    pub fn paid_order(order: &pb::PaymentOrder) -> Result<Posting, PostingError> {
        let amount = Money::from_fen(order.amount.as_ref().map_or(0, |money| money.fen));
        if amount.is_zero() || amount.is_negative() {
            return Err(PostingError::NotPositive {
                order_id: order.order_id.clone(),
            });
        }
        let fund = fund_of(order);
        Ok(Posting {
            order_id: order.order_id.clone(),
            debit_account: expense_account(order),
            credit_account: fund_account(&fund),
            fund,
            amount,
            reversal: false,
        })
    }

    pub fn order_id(&self) -> &str {
        &self.order_id
    }

    /// Its two lines: the debit, then the credit, of one amount.
    pub fn lines(&self) -> [Line; 2] {
        let line = |account: &str, side| Line {
            order_id: self.order_id.clone(),
            fund: self.fund.clone(),
            account: account.to_owned(),
            side,
            amount: self.amount,
        };
        [
            line(&self.debit_account, Side::Debit),
            line(&self.credit_account, Side::Credit),
        ]
    }
}

/// The postings of a bank result: one per order it records paid, in order-id order. An order
/// the result names that `orders` does not have is passed over (the aggregate refuses such a
/// result before it is recorded).
pub fn postings_of_result(
    orders: &[pb::PaymentOrder],
    recorded: &pb::BankResultRecorded,
) -> Result<Vec<Posting>, PostingError> {
    let by_id: BTreeMap<&str, &pb::PaymentOrder> = orders
        .iter()
        .map(|order| (order.order_id.as_str(), order))
        .collect();
    let mut postings = Vec::new();
    let mut paid: Vec<&pb::PaymentOrderResult> = recorded
        .results
        .iter()
        .filter(|result| result.paid)
        .collect();
    paid.sort_by(|left, right| left.order_id.cmp(&right.order_id));
    for result in paid {
        if let Some(order) = by_id.get(result.order_id.as_str()) {
            postings.push(Posting::paid_order(order)?);
        }
    }
    Ok(postings)
}

// ---- settlement: returns (退票) reverse the paid posting ----

impl Posting {
    /// The reversal of `order`'s paid posting, which the bank returned: its fund's bank account
    /// debited, its expense account credited, by the same amount (so both accounts are back
    /// where they were before the bank paid it).
    pub fn returned_order(order: &pb::PaymentOrder) -> Result<Posting, PostingError> {
        let paid = Posting::paid_order(order)?;
        Ok(Posting {
            debit_account: paid.credit_account,
            credit_account: paid.debit_account,
            reversal: true,
            ..paid
        })
    }

    /// The ledger's numbers of its two lines (debit, credit) within its order: 0 and 1 for the
    /// paid posting, 2 and 3 for a return's reversal.
    pub fn line_numbers(&self) -> [i64; 2] {
        if self.reversal { [2, 3] } else { [0, 1] }
    }
}

/// The reversals of a returns file: one per order it returns, in order-id order. An order it
/// names that `orders` does not have is passed over (the aggregate refuses such a file).
pub fn postings_of_returns(
    orders: &[pb::PaymentOrder],
    recorded: &pb::BankReturnsRecorded,
) -> Result<Vec<Posting>, PostingError> {
    let by_id: BTreeMap<&str, &pb::PaymentOrder> = orders
        .iter()
        .map(|order| (order.order_id.as_str(), order))
        .collect();
    let mut returned: Vec<&str> = recorded
        .returns
        .iter()
        .map(|returned| returned.order_id.as_str())
        .collect();
    returned.sort_unstable();
    returned
        .into_iter()
        .filter_map(|order_id| by_id.get(order_id))
        .map(|order| Posting::returned_order(order))
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod returns_tests {
    use super::*;

    #[test]
    fn a_return_reverses_the_paid_posting_and_the_trial_balance_stays_zero() {
        let order = pb::PaymentOrder {
            order_id: "o1".into(),
            entitlement_id: "case-1".into(),
            household_id: "household-1".into(),
            program_code: "dibao".into(),
            street_town_code: "990101001000".into(),
            amount: Some(pb::Money { fen: 80_000 }),
            fund: "dibao".into(),
            ..Default::default()
        };
        let paid = Posting::paid_order(&order).unwrap();
        let recorded = pb::BankReturnsRecorded {
            returns: vec![pb::PaymentOrderReturn {
                order_id: "o1".into(),
                reason: "账户已销户".into(),
            }],
            ..Default::default()
        };
        let reversals = postings_of_returns(std::slice::from_ref(&order), &recorded).unwrap();
        let [reversal] = &reversals[..] else {
            panic!("{reversals:?}");
        };
        let [debit, credit] = reversal.lines();
        assert_eq!(debit.account, "fund:dibao");
        assert_eq!(credit.account, "benefits:dibao:990101001000:household-1");
        assert_eq!(reversal.line_numbers(), [2, 3]);
        assert_eq!(paid.line_numbers(), [0, 1]);
        let both = [paid, reversal.clone()];
        let balance = TrialBalance::of(&both).unwrap();
        assert_eq!(balance.debits, Money::from_fen(160_000));
        assert_eq!(balance.difference(), Some(Money::ZERO));
        let balances = account_balances(&both).unwrap();
        assert!(
            balances.values().all(|money| money.is_zero()),
            "{balances:?}"
        );
    }
}

/// The sum of debits and of credits over a set of lines.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TrialBalance {
    pub debits: Money,
    pub credits: Money,
}

impl TrialBalance {
    /// Adds `line`; `None` when a sum leaves the range of `Money`.
    pub fn with_line(self, line: &Line) -> Option<TrialBalance> {
        let (debit, credit) = line.debit_credit_fen();
        Some(TrialBalance {
            debits: self.debits.checked_add(Money::from_fen(debit))?,
            credits: self.credits.checked_add(Money::from_fen(credit))?,
        })
    }

    /// The trial balance of `postings`.
    pub fn of<'a>(postings: impl IntoIterator<Item = &'a Posting>) -> Option<TrialBalance> {
        postings
            .into_iter()
            .flat_map(Posting::lines)
            .try_fold(TrialBalance::default(), |balance, line| {
                balance.with_line(&line)
            })
    }

    /// Debits less credits: zero for any set of whole postings.
    pub fn difference(&self) -> Option<Money> {
        self.debits.checked_sub(self.credits)
    }
}

/// Each account's balance (debits less credits) over `postings`, in account order.
pub fn account_balances<'a>(
    postings: impl IntoIterator<Item = &'a Posting>,
) -> Option<BTreeMap<String, Money>> {
    let mut balances: BTreeMap<String, Money> = BTreeMap::new();
    for line in postings.into_iter().flat_map(Posting::lines) {
        let balance = balances.entry(line.account.clone()).or_default();
        *balance = match line.side {
            Side::Debit => balance.checked_add(line.amount)?,
            Side::Credit => balance.checked_sub(line.amount)?,
        };
    }
    Some(balances)
}

// ---- Recovery (追缴) ----
//
// A recovery claim's postings (`crate::recovery` says when). Each is keyed by its entry
// (`recovery-<claim id>-<stream version>`) where an order's posting is keyed by its order id:
// the ledger table's key is (key, line) either way.
//
// - opening a claim: the household's receivable `recovery:<household>` debited, the order's
//   expense account credited — the month paid in error is no expense but money owed back;
// - a repayment: the fund's bank account debited (the money is back), the receivable credited;
// - a write-off: the program's write-off expense `writeoff:<program>` debited, the receivable
//   credited;
// - a cancellation (the order returned by the bank after the claim opened): the expense
//   debited, and credited: the receivable by what was outstanding, the write-off by what was
//   written off, `refunds:<household>` by what the household had repaid (owed back to it).
//
// So the receivable's balance is what is outstanding, and the trial balance stays zero.

/// The receivable of a household that owes payments back: `recovery:<household>`.
pub fn recovery_account(household_id: &str) -> String {
    format!("recovery:{household_id}")
}

/// What payment owes a household back (a repayment of a claim its order's return cancelled):
/// `refunds:<household>`.
pub fn refund_account(household_id: &str) -> String {
    format!("refunds:{household_id}")
}

/// The expense of what a program could not recover: `writeoff:<program>`.
pub fn writeoff_account(program_code: &str) -> String {
    format!("writeoff:{program_code}")
}

impl Posting {
    fn recovery(
        key: &str,
        fund: &str,
        debit_account: String,
        credit_account: String,
        amount: Money,
    ) -> Result<Posting, PostingError> {
        if amount.is_zero() || amount.is_negative() {
            return Err(PostingError::NotPositive {
                order_id: key.to_owned(),
            });
        }
        Ok(Posting {
            order_id: key.to_owned(),
            fund: fund.to_owned(),
            debit_account,
            credit_account,
            amount,
            // Keyed by the claim's event, so lines 0 and 1 are its own.
            reversal: false,
        })
    }

    /// A claim opened for `amount` of `order`: the household's receivable debited, the
    /// order's expense account credited (the order's fund).
    pub fn recovery_opened(
        key: &str,
        order: &pb::PaymentOrder,
        amount: Money,
    ) -> Result<Posting, PostingError> {
        Posting::recovery(
            key,
            &fund_of(order),
            recovery_account(&order.household_id),
            expense_account(order),
            amount,
        )
    }

    /// A claim cancelled because its order was returned (退票): the order's expense account
    /// debited by `amount` (the return credited it again, so the claim's opening is undone),
    /// and `credit_account` credited — the receivable (for what was outstanding), the
    /// write-off (for what was written off) or the household's refund (for what it repaid).
    pub fn recovery_cancelled(
        key: &str,
        order: &pb::PaymentOrder,
        credit_account: String,
        amount: Money,
    ) -> Result<Posting, PostingError> {
        Posting::recovery(
            key,
            &fund_of(order),
            expense_account(order),
            credit_account,
            amount,
        )
    }

    /// A repayment of `amount` into `fund` by `household_id`: the fund debited, the
    /// receivable credited.
    pub fn recovery_repaid(
        key: &str,
        household_id: &str,
        fund: &str,
        amount: Money,
    ) -> Result<Posting, PostingError> {
        Posting::recovery(
            key,
            fund,
            fund_account(fund),
            recovery_account(household_id),
            amount,
        )
    }

    /// `amount` of `household_id`'s claim written off to `program_code`'s write-off expense.
    pub fn recovery_written_off(
        key: &str,
        household_id: &str,
        program_code: &str,
        fund: &str,
        amount: Money,
    ) -> Result<Posting, PostingError> {
        Posting::recovery(
            key,
            fund,
            writeoff_account(program_code),
            recovery_account(household_id),
            amount,
        )
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn order(order_id: &str, entitlement_id: &str, program: &str, fen: i64) -> pb::PaymentOrder {
        pb::PaymentOrder {
            order_id: order_id.into(),
            entitlement_id: entitlement_id.into(),
            case_id: "case-1".into(),
            household_id: format!("household-{order_id}"),
            program_code: program.into(),
            street_town_code: "990101001000".into(),
            amount: Some(pb::Money { fen }),
            repays_order_id: String::new(),
            fund: String::new(),
            care_institution_code: String::new(),
        }
    }

    fn result(order_id: &str, paid: bool) -> pb::PaymentOrderResult {
        pb::PaymentOrderResult {
            order_id: order_id.into(),
            paid,
            failure_reason: if paid { String::new() } else { "closed".into() },
        }
    }

    #[test]
    fn a_paid_order_debits_its_expense_account_and_credits_its_fund() {
        let posting = Posting::paid_order(&order("o1", "case-1", "dibao_urban", 98_000)).unwrap();
        let [debit, credit] = posting.lines();
        assert_eq!(
            debit.account,
            "benefits:dibao_urban:990101001000:household-o1"
        );
        assert_eq!(debit.debit_credit_fen(), (98_000, 0));
        assert_eq!(credit.account, "fund:dibao_urban");
        assert_eq!(credit.debit_credit_fen(), (0, 98_000));
    }

    #[test]
    fn an_assist_first_grant_draws_on_the_emergency_fund() {
        let grant = order("o1", "assist-first-e1", "temporary_assistance", 50_000);
        assert_eq!(fund_of(&grant), EMERGENCY_FUND);
        let [_, credit] = Posting::paid_order(&grant).unwrap().lines();
        assert_eq!(credit.account, "fund:emergency");
        let named = pb::PaymentOrder {
            fund: "relief".into(),
            ..grant
        };
        assert_eq!(fund_of(&named), "relief");
    }

    #[test]
    fn nothing_not_positive_is_posted() {
        for fen in [0, -1] {
            assert_eq!(
                Posting::paid_order(&order("o1", "case-1", "dibao_urban", fen)),
                Err(PostingError::NotPositive {
                    order_id: "o1".into()
                })
            );
        }
    }

    #[test]
    fn only_the_orders_the_bank_paid_are_posted_and_the_trial_balance_is_zero() {
        let orders = [
            order("o1", "case-1", "dibao_urban", 98_000),
            order("o2", "case-2", "dibao_urban", 45_000),
            order("o3", "assist-first-e1", "temporary_assistance", 50_000),
        ];
        let recorded = pb::BankResultRecorded {
            results: vec![result("o3", true), result("o1", true), result("o2", false)],
            ..Default::default()
        };
        let postings = postings_of_result(&orders, &recorded).unwrap();
        let posted: Vec<&str> = postings.iter().map(Posting::order_id).collect();
        assert_eq!(posted, ["o1", "o3"]);
        let balance = TrialBalance::of(&postings).unwrap();
        assert_eq!(balance.debits, Money::from_fen(148_000));
        assert_eq!(balance.credits, Money::from_fen(148_000));
        assert_eq!(balance.difference(), Some(Money::ZERO));
        let balances = account_balances(&postings).unwrap();
        assert_eq!(balances["fund:dibao_urban"], Money::from_fen(-98_000));
        assert_eq!(balances["fund:emergency"], Money::from_fen(-50_000));
        assert!(
            !balances
                .keys()
                .any(|account| account.contains("household-o2"))
        );
    }

    proptest! {
        /// Over any orders and any results, every posting's lines cancel out and so does the
        /// trial balance; the funds' balances are minus what was paid.
        #[test]
        fn any_sequence_of_postings_balances(
            orders in proptest::collection::vec((1_i64..10_000_000, any::<bool>(), any::<bool>()), 0..40)
        ) {
            let orders: Vec<(pb::PaymentOrder, bool)> = orders
                .into_iter()
                .enumerate()
                .map(|(index, (fen, assist_first, paid))| {
                    let entitlement = if assist_first { format!("assist-first-{index}") } else { format!("case-{index}") };
                    (order(&format!("o{index:03}"), &entitlement, "dibao_rural", fen), paid)
                })
                .collect();
            let recorded = pb::BankResultRecorded {
                results: orders.iter().map(|(order, paid)| result(&order.order_id, *paid)).collect(),
                ..Default::default()
            };
            let plain: Vec<pb::PaymentOrder> = orders.iter().map(|(order, _)| order.clone()).collect();
            let postings = postings_of_result(&plain, &recorded).unwrap();
            for posting in &postings {
                let [debit, credit] = posting.lines();
                prop_assert_eq!(debit.amount, credit.amount);
                prop_assert_eq!(debit.side, Side::Debit);
                prop_assert_eq!(credit.side, Side::Credit);
            }
            let balance = TrialBalance::of(&postings).unwrap();
            prop_assert_eq!(balance.difference(), Some(Money::ZERO));
            let paid: i64 = orders.iter().filter(|(_, paid)| *paid).map(|(order, _)| order.amount.as_ref().map_or(0, |m| m.fen)).sum();
            prop_assert_eq!(balance.debits, Money::from_fen(paid));
            let balances = account_balances(&postings).unwrap();
            let funds: i64 = balances.iter().filter(|(account, _)| account.starts_with("fund:")).map(|(_, money)| money.fen()).sum();
            prop_assert_eq!(funds, -paid);
        }

        /// Recovery: any paid orders, some of them claimed, each claim repaid in any number of
        /// parts and written off or not — the trial balance stays zero, each receivable is what
        /// is still outstanding, the funds are minus what was paid plus what came back, and the
        /// expense accounts hold what was paid less what was claimed.
        #[test]
        fn recovery_postings_balance(
            claims in proptest::collection::vec(
                (1_i64..10_000_000, any::<bool>(), proptest::collection::vec(1_i64..100, 0..5), any::<bool>()),
                0..30,
            )
        ) {
            let mut postings = Vec::new();
            let (mut paid, mut claimed, mut repaid, mut outstanding) = (0_i64, 0_i64, 0_i64, 0_i64);
            for (index, (fen, is_claimed, parts, write_off)) in claims.iter().enumerate() {
                let order = order(&format!("o{index:03}"), &format!("case-{index}"), "dibao", *fen);
                postings.push(Posting::paid_order(&order).unwrap());
                paid += fen;
                if !is_claimed {
                    continue;
                }
                let key = |version: usize| format!("recovery-c{index}-{version}");
                postings.push(Posting::recovery_opened(&key(1), &order, Money::from_fen(*fen)).unwrap());
                claimed += fen;
                // Each part a percentage of what is left, never more than it.
                let mut left = *fen;
                for (version, percent) in parts.iter().enumerate() {
                    let part = left * percent / 100;
                    if part == 0 {
                        continue;
                    }
                    postings.push(Posting::recovery_repaid(&key(version + 2), &order.household_id, "dibao", Money::from_fen(part)).unwrap());
                    left -= part;
                    repaid += part;
                }
                if *write_off && left > 0 {
                    postings.push(Posting::recovery_written_off(&key(9), &order.household_id, "dibao", "dibao", Money::from_fen(left)).unwrap());
                    left = 0;
                }
                outstanding += left;
            }
            let balance = TrialBalance::of(&postings).unwrap();
            prop_assert_eq!(balance.difference(), Some(Money::ZERO));
            let balances = account_balances(&postings).unwrap();
            let sum = |prefix: &str| -> i64 {
                balances.iter().filter(|(account, _)| account.starts_with(prefix)).map(|(_, money)| money.fen()).sum()
            };
            prop_assert_eq!(sum("recovery:"), outstanding);
            prop_assert!(balances.iter().filter(|(account, _)| account.starts_with("recovery:")).all(|(_, money)| !money.is_negative()));
            prop_assert_eq!(sum("fund:"), repaid - paid);
            prop_assert_eq!(sum("benefits:"), paid - claimed);
            prop_assert_eq!(sum("writeoff:"), claimed - repaid - outstanding);
        }
    }

    #[test]
    fn a_claim_moves_the_month_from_expense_to_receivable_and_out_by_repayment_or_write_off() {
        let paid = order("o1", "case-1", "dibao", 80_000);
        let postings = [
            Posting::paid_order(&paid).unwrap(),
            Posting::recovery_opened("recovery-c1-1", &paid, Money::from_fen(80_000)).unwrap(),
            Posting::recovery_repaid(
                "recovery-c1-2",
                &paid.household_id,
                "dibao",
                Money::from_fen(30_000),
            )
            .unwrap(),
            Posting::recovery_written_off(
                "recovery-c1-3",
                &paid.household_id,
                "dibao",
                "dibao",
                Money::from_fen(50_000),
            )
            .unwrap(),
        ];
        let [debit, credit] = postings[1].lines();
        assert_eq!(
            (debit.account.as_str(), debit.debit_credit_fen()),
            ("recovery:household-o1", (80_000, 0))
        );
        assert_eq!(
            (credit.account.as_str(), credit.debit_credit_fen()),
            ("benefits:dibao:990101001000:household-o1", (0, 80_000))
        );
        let balances = account_balances(&postings).unwrap();
        assert_eq!(balances["recovery:household-o1"], Money::ZERO);
        assert_eq!(
            balances["benefits:dibao:990101001000:household-o1"],
            Money::ZERO
        );
        assert_eq!(balances["fund:dibao"], Money::from_fen(-50_000));
        assert_eq!(balances["writeoff:dibao"], Money::from_fen(50_000));
        assert_eq!(
            TrialBalance::of(&postings).unwrap().difference(),
            Some(Money::ZERO)
        );
        assert!(Posting::recovery_repaid("k", "h", "dibao", Money::ZERO).is_err());
    }
}
