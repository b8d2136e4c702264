//! A property test of payment's settlement, pure (no I/O): random interleavings of run
//! creations, their retries (the same command id), stale creations (facts read before another
//! run's claims were written, as two racing officers read them), approvals, exports, the
//! bank's results (random paid and failed), its returns (退票), re-pay runs and the
//! reconciliation's close, driving the aggregate's decisions (`aggregate::handle`) with an
//! in-memory model of the store: the two guard tables (one order per entitlement per period;
//! one re-pay per failed or returned order), claimed whole or refused whole as the append's
//! guard does, and the ledger's postings (`ledger`).
//!
//! Whatever the interleaving: no entitlement-month is paid twice net of returns (for each
//! entitlement and period, orders paid less orders returned ≤ 1), no order is re-paid twice,
//! and the ledger's trial balance is zero with its debits exactly what the bank paid and
//! what returns reversed.

use std::collections::BTreeMap;
use std::sync::Arc;

use proptest::prelude::*;
use sunshine_domain::{Money, Month, OrgUnitCode};
use sunshine_payment::aggregate::{self, RunEvent, RunState};
use sunshine_payment::bank_files::{self, BatchLine, Format, ResultLine};
use sunshine_payment::commands::{
    ApproveRun, BatchFacts, BudgetFacts, CloseReconciliation, Command, CreateRepayRun, CreateRun,
    ExportBankFile, FailedOrder, ImportBankResult, ImportBankReturns, PeriodFacts, RepayFacts,
    repay_run_id_for, run_id_for,
};
use sunshine_payment::entitlements::{Entitlement, Kind, Payee};
use sunshine_payment::funds::Funds;
use sunshine_payment::ledger::{self, Posting, TrialBalance};
use sunshine_payment::pay_calendar::PayDate;
use sunshine_proto::v1 as pb;

const PERIODS: [&str; 2] = ["2026-10", "2026-11"];

#[derive(Debug, Clone)]
enum Op {
    /// A run of a period under one of a few command ids (so some are retries); `stale`: its
    /// facts were read before any claim was written.
    Create {
        period: usize,
        command: u8,
        stale: bool,
    },
    Repay {
        period: usize,
        command: u8,
        stale: bool,
    },
    Approve {
        run: usize,
    },
    Export {
        run: usize,
        gbk: bool,
    },
    /// The bank's result: order i paid when bit i of `paid` is set.
    Result {
        run: usize,
        paid: u32,
    },
    /// The bank returns the paid orders whose bit is set.
    Returns {
        run: usize,
        returned: u32,
    },
    Close {
        run: usize,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0..2_usize, 0..4_u8, any::<bool>()).prop_map(|(period, command, stale)| Op::Create {
            period,
            command,
            stale
        }),
        (0..2_usize, 0..4_u8, any::<bool>()).prop_map(|(period, command, stale)| Op::Repay {
            period,
            command,
            stale
        }),
        (0..16_usize).prop_map(|run| Op::Approve { run }),
        (0..16_usize, any::<bool>()).prop_map(|(run, gbk)| Op::Export { run, gbk }),
        (0..16_usize, any::<u32>()).prop_map(|(run, paid)| Op::Result { run, paid }),
        (0..16_usize, any::<u32>()).prop_map(|(run, returned)| Op::Returns { run, returned }),
        (0..16_usize).prop_map(|run| Op::Close { run }),
    ]
}

/// The store, in memory: the runs' streams, the two guard tables, and the ledger.
#[derive(Default)]
struct Model {
    entitlements: Vec<Entitlement>,
    funds: Arc<Funds>,
    /// Run id → its events, in creation order of the runs.
    runs: BTreeMap<String, Vec<RunEvent>>,
    created: Vec<String>,
    /// (entitlement id, period) → run id.
    run_orders: BTreeMap<(String, String), String>,
    /// Failed or returned order id → the re-pay run.
    repay_orders: BTreeMap<String, String>,
    postings: Vec<Posting>,
}

fn district() -> OrgUnitCode {
    OrgUnitCode::parse("990101000000").unwrap_or_else(|error| panic!("{error}"))
}

fn first_day(month: Month) -> time::Date {
    let of = time::Month::try_from(month.month()).unwrap_or_else(|error| panic!("{error}"));
    time::Date::from_calendar_date(month.year(), of, 1).unwrap_or_else(|error| panic!("{error}"))
}

fn month(text: &str) -> Month {
    Month::parse(text).unwrap_or_else(|error| panic!("{error}"))
}

impl Model {
    fn new(amounts: &[i64]) -> Model {
        let entitlements = amounts
            .iter()
            .enumerate()
            .map(|(index, fen)| Entitlement {
                entitlement_id: format!("case-{index}"),
                case_id: format!("case-{index}"),
                household_id: format!("household-{index}"),
                program_code: "dibao".into(),
                street_town_code: "990101001000".into(),
                kind: Kind::Monthly,
                amount: Money::from_fen(*fen),
                start_month: month(PERIODS[0]),
                suspended_from: None,
                terminated_from: None,
                adjustments: Vec::new(),
                payee: Payee::Household,
            })
            .collect();
        Model {
            entitlements,
            funds: Arc::new(Funds::example().unwrap_or_else(|error| panic!("{error}"))),
            ..Model::default()
        }
    }

    fn state(&self, run_id: &str) -> Option<RunState> {
        self.runs.get(run_id).and_then(RunState::fold)
    }

    fn budget(&self) -> BudgetFacts {
        BudgetFacts {
            funds: Arc::clone(&self.funds),
            committed: BTreeMap::new(),
        }
    }

    /// The orders of `period` failed or returned (the read model's), in order-id order.
    fn unpaid(&self, period: &str) -> Vec<FailedOrder> {
        let mut unpaid = Vec::new();
        for run_id in &self.created {
            let Some(run) = self.state(run_id) else {
                continue;
            };
            if run.period != period {
                continue;
            }
            for order in &run.orders {
                let (state, reason) = run.order_state(&order.order_id);
                if state == "failed" || state == "returned" {
                    unpaid.push(FailedOrder {
                        order: order.clone(),
                        failure_reason: reason.to_owned(),
                    });
                }
            }
        }
        unpaid.sort_by(|left, right| left.order.order_id.cmp(&right.order.order_id));
        unpaid
    }

    /// A new run's append with the guard's claims: all of them, or none and nothing written.
    fn append_new(&mut self, run_id: &str, events: Vec<RunEvent>) {
        // The run's parts, then the creation closing them (as the store appends it).
        let Some(RunEvent::Created(created)) = events.last() else {
            panic!("a new run ends with its creation: {events:?}");
        };
        let all_orders = events.iter().flat_map(|event| match event {
            RunEvent::OrdersAdded(added) => added.orders.as_slice(),
            RunEvent::Created(created) => created.orders.as_slice(),
            _ => &[],
        });
        let mut orders = Vec::new();
        let mut repays = Vec::new();
        for order in all_orders {
            if order.repays_order_id.is_empty() {
                let key = (order.entitlement_id.clone(), created.period.clone());
                if self.run_orders.contains_key(&key) {
                    return;
                }
                orders.push(key);
            } else {
                if self.repay_orders.contains_key(&order.repays_order_id) {
                    return;
                }
                repays.push(order.repays_order_id.clone());
            }
        }
        for key in orders {
            self.run_orders.insert(key, run_id.to_owned());
        }
        for failed in repays {
            self.repay_orders.insert(failed, run_id.to_owned());
        }
        self.runs.insert(run_id.to_owned(), events);
        self.created.push(run_id.to_owned());
    }

    /// An existing run's command: its events appended, and the ledger's postings of them.
    fn change(&mut self, run_id: &str, command: &Command) {
        let Some(run) = self.state(run_id) else {
            return;
        };
        let Ok(events) = aggregate::handle(Some(&run), command) else {
            return;
        };
        for event in &events {
            match event {
                RunEvent::BankResultRecorded(recorded) => self.postings.extend(
                    ledger::postings_of_result(&run.orders, recorded)
                        .unwrap_or_else(|error| panic!("{error}")),
                ),
                RunEvent::BankReturnsRecorded(recorded) => self.postings.extend(
                    ledger::postings_of_returns(&run.orders, recorded)
                        .unwrap_or_else(|error| panic!("{error}")),
                ),
                _ => {}
            }
        }
        if let Some(stream) = self.runs.get_mut(run_id) {
            stream.extend(events);
        }
    }

    fn nth_run(&self, index: usize) -> Option<String> {
        if self.created.is_empty() {
            return None;
        }
        Some(self.created[index % self.created.len()].clone())
    }

    fn step(&mut self, op: &Op) {
        match *op {
            Op::Create {
                period,
                command,
                stale,
            } => {
                let run_id = run_id_for(&format!("create-{period}-{command}"));
                if self.runs.contains_key(&run_id) {
                    return; // a retry: answered from the first append, nothing decided
                }
                let period = PERIODS[period];
                let in_runs = if stale {
                    BTreeMap::new()
                } else {
                    self.run_orders
                        .iter()
                        .filter(|((_, of), _)| of == period)
                        .map(|((entitlement, _), run)| (entitlement.clone(), run.clone()))
                        .collect()
                };
                let command = Command::CreateRun(
                    CreateRun {
                        run_id: run_id.clone(),
                        period: month(period),
                        created_by: "officer-1".into(),
                        district: district(),
                    },
                    PeriodFacts {
                        entitlements: self.entitlements.clone(),
                        in_runs,
                        budget: self.budget(),
                        // The model pays no mind to the calendar: every period pays on its 1st.
                        pay_on: Ok(PayDate {
                            date: first_day(month(period)),
                            provisional: false,
                        }),
                    },
                );
                if let Ok(events) = aggregate::handle(None, &command) {
                    self.append_new(&run_id, events);
                }
            }
            Op::Repay {
                period,
                command,
                stale,
            } => {
                let run_id = repay_run_id_for(&format!("repay-{period}-{command}"));
                if self.runs.contains_key(&run_id) {
                    return;
                }
                let period = PERIODS[period];
                let failed = self.unpaid(period);
                let repaid = if stale {
                    BTreeMap::new()
                } else {
                    failed
                        .iter()
                        .filter_map(|failed| {
                            let id = &failed.order.order_id;
                            self.repay_orders
                                .get(id)
                                .map(|run| (id.clone(), run.clone()))
                        })
                        .collect()
                };
                let command = Command::CreateRepayRun(
                    CreateRepayRun {
                        run_id: run_id.clone(),
                        period: month(period),
                        created_by: "officer-1".into(),
                        district: district(),
                    },
                    RepayFacts {
                        failed,
                        repaid,
                        budget: self.budget(),
                    },
                );
                if let Ok(events) = aggregate::handle(None, &command) {
                    self.append_new(&run_id, events);
                }
            }
            Op::Approve { run } => {
                let Some(run_id) = self.nth_run(run) else {
                    return;
                };
                let Some(state) = self.state(&run_id) else {
                    return;
                };
                let command = Command::ApproveRun(ApproveRun {
                    run_id: run_id.clone(),
                    expected_version: state.version,
                    control_count: state.control.count,
                    control_total: Money::from_fen(state.control.total.map_or(0, |m| m.fen)),
                    approved_by: "approver-1".into(),
                });
                self.change(&run_id, &command);
            }
            Op::Export { run, gbk } => {
                let Some(run_id) = self.nth_run(run) else {
                    return;
                };
                let format = if gbk {
                    Format::FixedGbk
                } else {
                    Format::CsvUtf8
                };
                let Some(state) = self.state(&run_id) else {
                    return;
                };
                let command = Command::ExportBankFile(ExportBankFile {
                    run_id: run_id.clone(),
                    format,
                    exported_by: "officer-1".into(),
                    batch: batch_of(&state, format),
                });
                self.change(&run_id, &command);
            }
            Op::Result { run, paid } => {
                let Some(run_id) = self.nth_run(run) else {
                    return;
                };
                let Some(state) = self.state(&run_id) else {
                    return;
                };
                let Some(format) = exported_format(&state) else {
                    return;
                };
                let lines: Vec<ResultLine> = state
                    .orders
                    .iter()
                    .enumerate()
                    .map(|(index, order)| {
                        let paid = (paid & (1 << (index % 32))) != 0;
                        line_of(order, paid, if paid { "" } else { "账户已冻结" })
                    })
                    .collect();
                let total = lines.iter().map(|line| line.amount_fen).sum();
                let file = bank_files::write_result(format, &lines, lines.len() as u64, total)
                    .unwrap_or_else(|| panic!("unwritable"));
                let command = Command::ImportBankResult(ImportBankResult {
                    run_id: run_id.clone(),
                    file,
                    recorded_by: "officer-2".into(),
                    accounts: accounts_of(&state),
                });
                self.change(&run_id, &command);
            }
            Op::Returns { run, returned } => {
                let Some(run_id) = self.nth_run(run) else {
                    return;
                };
                let Some(state) = self.state(&run_id) else {
                    return;
                };
                let Some(format) = exported_format(&state) else {
                    return;
                };
                // Some orders of the run, paid or not: a return of one not paid is refused
                // whole, as is one returned already.
                let lines: Vec<ResultLine> = state
                    .orders
                    .iter()
                    .enumerate()
                    .filter(|(index, _)| (returned & (1 << (index % 32))) != 0)
                    .map(|(_, order)| line_of(order, false, "账户已销户"))
                    .collect();
                let total = lines.iter().map(|line| line.amount_fen).sum();
                let file = bank_files::write_returns(format, &lines, lines.len() as u64, total)
                    .unwrap_or_else(|| panic!("unwritable"));
                let command = Command::ImportBankReturns(ImportBankReturns {
                    run_id: run_id.clone(),
                    file,
                    recorded_by: "officer-3".into(),
                    accounts: accounts_of(&state),
                });
                self.change(&run_id, &command);
            }
            Op::Close { run } => {
                let Some(run_id) = self.nth_run(run) else {
                    return;
                };
                let Some(state) = self.state(&run_id) else {
                    return;
                };
                let states = state.order_states();
                let fen = |money: Option<pb::Money>| Money::from_fen(money.map_or(0, |m| m.fen));
                let unpaid_total = fen(states.failed_total)
                    .checked_add(fen(states.returned_total))
                    .unwrap_or_else(|| panic!("overflow"));
                let command = Command::CloseReconciliation(CloseReconciliation {
                    run_id: run_id.clone(),
                    expected_version: state.version,
                    paid_count: states.paid_count,
                    paid_total: fen(states.paid_total),
                    unpaid_count: states.failed_count + states.returned_count,
                    unpaid_total,
                    closed_by: "approver-2".into(),
                });
                self.change(&run_id, &command);
            }
        }
    }

    /// The invariants, after every step.
    fn check(&self) -> Result<(), TestCaseError> {
        // Paid less returned, per entitlement and period; and what the ledger should hold.
        let mut net: BTreeMap<(String, String), i64> = BTreeMap::new();
        let mut repays: BTreeMap<String, u32> = BTreeMap::new();
        let mut moved_fen = 0_i64;
        for run_id in &self.created {
            let Some(run) = self.state(run_id) else {
                continue;
            };
            for order in &run.orders {
                let fen = order.amount.map_or(0, |m| m.fen);
                let key = (order.entitlement_id.clone(), run.period.clone());
                let paid = run.results.get(&order.order_id).is_some_and(|r| r.paid);
                let returned = run.returned.contains_key(&order.order_id);
                prop_assert!(paid || !returned, "an order returned that was never paid");
                let entry = net.entry(key).or_default();
                if paid {
                    *entry += 1;
                    moved_fen += fen;
                }
                if returned {
                    *entry -= 1;
                    moved_fen += fen;
                }
                if !order.repays_order_id.is_empty() {
                    *repays.entry(order.repays_order_id.clone()).or_default() += 1;
                }
            }
        }
        for (key, paid) in &net {
            prop_assert!(*paid <= 1, "{key:?} paid {paid} times net of returns");
            prop_assert!(*paid >= 0, "{key:?} returned more than paid");
        }
        for (order_id, times) in &repays {
            prop_assert!(*times <= 1, "order {order_id} re-paid {times} times");
        }
        let balance = TrialBalance::of(&self.postings)
            .ok_or_else(|| TestCaseError::fail("the trial balance overflowed"))?;
        prop_assert_eq!(balance.difference(), Some(Money::ZERO));
        prop_assert_eq!(balance.debits, Money::from_fen(moved_fen));
        let funds: i64 = ledger::account_balances(&self.postings)
            .ok_or_else(|| TestCaseError::fail("a balance overflowed"))?
            .iter()
            .filter(|(account, _)| account.starts_with("fund:"))
            .map(|(_, money)| money.fen())
            .sum();
        let paid_net: i64 = self
            .created
            .iter()
            .filter_map(|run_id| self.state(run_id))
            .flat_map(|run| {
                run.orders
                    .iter()
                    .filter(|order| run.order_state(&order.order_id).0 == "paid")
                    .map(|order| order.amount.map_or(0, |m| m.fen))
                    .collect::<Vec<_>>()
            })
            .sum();
        prop_assert_eq!(
            funds,
            -paid_net,
            "the funds paid out what is paid and not returned"
        );
        Ok(())
    }
}

/// The format of the run's last export, if any.
fn exported_format(run: &RunState) -> Option<Format> {
    run.last_export
        .as_ref()
        .and_then(|(format, _)| Format::parse(format))
}

/// The account intake sealed for `household_id`, in the model: 6222 and 15 digits of its
/// SHA-256.
fn account_of(household_id: &str) -> bank_files::Account {
    use sha2::Digest as _;
    let digest = sha2::Sha256::digest(household_id.as_bytes());
    let mut number = [0_u8; 8];
    number.copy_from_slice(&digest[..8]);
    bank_files::Account {
        number: format!(
            "6222{:015}",
            u64::from_be_bytes(number) % 1_000_000_000_000_000
        ),
        holder_name: "张三".into(),
    }
}

/// The run's households' accounts, as the import opens them.
fn accounts_of(run: &RunState) -> bank_files::AccountNumbers {
    bank_files::AccountNumbers {
        households: run
            .orders
            .iter()
            .map(|order| {
                let number = account_of(&order.household_id).number;
                (order.household_id.clone(), number)
            })
            .collect(),
        institutions: std::collections::BTreeMap::new(),
    }
}

/// What the export's first pass finds of the run's batch in `format`.
fn batch_of(run: &RunState, format: Format) -> BatchFacts {
    let mut orders: Vec<&pb::PaymentOrder> = run.orders.iter().collect();
    orders.sort_by(|left, right| left.order_id.cmp(&right.order_id));
    let lines: Vec<BatchLine> = orders
        .iter()
        .map(|order| BatchLine::of(order, &account_of(&order.household_id)))
        .collect();
    let file = bank_files::write_batch(format, &lines).unwrap_or_default();
    BatchFacts {
        sha256: bank_files::sha256_hex(&file),
        count: lines.len() as u64,
        total_fen: lines.iter().map(|line| line.amount_fen).sum(),
        without_account: 0,
        ..BatchFacts::default()
    }
}

/// `order`'s line as the bank answers it, with the batch's account and amount.
fn line_of(order: &pb::PaymentOrder, paid: bool, reason: &str) -> ResultLine {
    let batch = BatchLine::of(order, &account_of(&order.household_id));
    ResultLine {
        order_id: batch.order_id,
        account: batch.account,
        amount_fen: batch.amount_fen,
        paid,
        reason: reason.to_owned(),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn no_interleaving_pays_an_entitlement_month_twice_and_the_ledger_balances(
        amounts in proptest::collection::vec(1_i64..500_000, 1..5),
        ops in proptest::collection::vec(op(), 1..60),
    ) {
        let mut model = Model::new(&amounts);
        for op in &ops {
            model.step(op);
            model.check()?;
        }
    }
}

/// The model is not vacuous: one fixed interleaving pays, fails, re-pays, returns and re-pays
/// again, and a stale creation and a stale re-pay are refused by the guards.
#[test]
fn the_model_pays_fails_returns_and_re_pays() {
    let mut model = Model::new(&[80_000, 65_000]);
    let ops = [
        Op::Create {
            period: 0,
            command: 0,
            stale: false,
        },
        Op::Create {
            period: 0,
            command: 1,
            stale: true,
        },
        Op::Approve { run: 0 },
        Op::Export { run: 0, gbk: true },
        Op::Result { run: 0, paid: 0b01 },
        Op::Repay {
            period: 0,
            command: 0,
            stale: false,
        },
        Op::Repay {
            period: 0,
            command: 1,
            stale: true,
        },
        Op::Approve { run: 1 },
        Op::Export { run: 1, gbk: false },
        Op::Result { run: 1, paid: 0b1 },
        Op::Returns {
            run: 0,
            returned: 0b01,
        },
        Op::Repay {
            period: 0,
            command: 2,
            stale: false,
        },
        Op::Close { run: 0 },
    ];
    for op in &ops {
        model.step(op);
        model
            .check()
            .unwrap_or_else(|error| panic!("{op:?}: {error}"));
    }
    assert_eq!(
        model.created.len(),
        3,
        "the stale creation and re-pay were refused"
    );
    assert_eq!(model.repay_orders.len(), 2);
    // Paid 80 000 + 65 000 (re-paid), returned 80 000: 225 000 moved, 65 000 out of the fund.
    let balance = TrialBalance::of(&model.postings).unwrap_or_else(|| panic!("overflow"));
    assert_eq!(balance.debits, Money::from_fen(225_000));
    let run = model
        .state(&model.created[0])
        .unwrap_or_else(|| panic!("no run"));
    assert_eq!(
        (run.status(), run.reconciliation()),
        ("reconciled", "closed")
    );
}
