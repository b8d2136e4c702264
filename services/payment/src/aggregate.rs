//! The payment run aggregate (stream `payment-run-<run id>`): its events ([`RunEvent`]), its
//! fold ([`RunState::apply`], which only folds) and its decisions ([`handle`], pure: no I/O,
//! no clock). Every rule of a run is here:
//!
//! - a run of period P has one order per entitlement with a non-zero amount due in P
//!   ([`amount_due`]) that no run of P has an order of yet; when every such entitlement is in
//!   a run already, the period is [`CommandError::AlreadyInRun`], naming that run; when some are
//!   new since, the new run has only the new ones; when nothing is due at all,
//!   [`CommandError::NothingDue`];
//! - its control totals: count and sum overall, per program and per street-town;
//! - approval: the approver re-keys the control count and total and both must match
//!   ([`CommandError::ControlMismatch`], naming the fields); the officer who created the run
//!   never approves it (four eyes); a run is approved once;
//! - a re-pay run of period P has one new order per order of P the bank's result failed (or
//!   a returns file returned) that
//!   no re-pay run pays again yet, each naming it (`repays_order_id`), with the failed order's
//!   entitlement, household and amount; the failed order is never edited. When every failed
//!   order is re-paid already, [`CommandError::AlreadyRepaid`] names the run; with none,
//!   [`CommandError::NothingFailed`];
//! - each order names the fund that pays its budget program (`crate::funds`: assist-first
//!   grants are `assist_first`) on the period's first day, and a run whose total for a
//!   program would take that fund's remaining budget for the year below zero — budget less
//!   what approved runs of the year committed — is refused whole
//!   ([`CommandError::Budget`], naming the fund and the program), as is one with money no
//!   fund or budget pays;
//! - the bank file: only an approved run is exported, in order-id order, and not once the
//!   bank's result is recorded (the batch is never sent twice after it was paid); the file the
//!   export's first pass wrote from the orders' table must have the run's control count and
//!   total ([`CommandError::OrdersDisagree`]), every order's household a payment account
//!   ([`CommandError::WithoutAccount`], how many lack one), and every care institution an
//!   order pays (a centrally supported 特困 person's, `PaymentOrder.care_institution_code`)
//!   an account in force on the export's day ([`CommandError::InstitutionUnpayable`], naming
//!   the institutions — district data, not the persons);
//! - the bank's result: only of a run exported, once per run, read in the last export's
//!   format, and it must match the batch exactly — every order once, each with its payee's
//!   account (the household's opened again for the decision; the care institution's in force
//!   on the last export's day) and amount — or it is refused whole ([`CommandError::BadResultFile`], every bad line
//!   named). **An order is paid only when the bank's result says so.**
//! - returns (退票): only of a run whose result is recorded and whose reconciliation is
//!   open, read in the last export's format; each line an order of the run the result paid
//!   and no returns file returned yet, with the batch's account and amount, or the file is
//!   refused whole ([`CommandError::BadReturnsFile`]). A returned order is no longer paid: a
//!   re-pay run pays it again (its failed-or-returned orders);
//! - the reconciliation's close: after the result, once, by a finance approver who neither
//!   created the run nor recorded its result or any of its returns
//!   ([`CommandError::CloserTookPart`]), who re-keys the paid count and total and the
//!   failed-or-returned count and total ([`CommandError::ControlMismatch`], naming the
//!   fields). A closed run takes no more returns: the closed figures are what the district
//!   attests the run paid, and a return after them would change them silently.

use std::collections::BTreeMap;

use sunshine_domain::{FieldViolation, Money};
use sunshine_proto::v1 as pb;

use crate::bank_files::{self, Format};
use crate::commands::{
    ApproveRun, CloseReconciliation, Command, CreateRepayRun, CreateRun, ExportBankFile,
    FailedOrder, ImportBankResult, ImportBankReturns, PeriodFacts, RepayFacts, order_id_for,
};
use crate::entitlements::{Entitlement, amount_due};
use crate::funds::{self, BudgetRefusal};
use crate::pay_calendar::CalendarRefusal;

sunshine_proto::stream_events! {
    /// The events of `payment-run-<run id>`.
    #[derive(Debug, Clone, PartialEq)]
    pub enum RunEvent in "payment-run" {
        Created(pb::PaymentRunCreated),
        OrdersAdded(pb::PaymentRunOrdersAdded),
        Approved(pb::PaymentRunApproved),
        BankFileExported(pb::BankFileExported),
        BankResultLinesAdded(pb::BankResultLinesAdded),
        BankResultRecorded(pb::BankResultRecorded),
        // settlement
        BankReturnLinesAdded(pb::BankReturnLinesAdded),
        BankReturnsRecorded(pb::BankReturnsRecorded),
        ReconciliationClosed(pb::ReconciliationClosed),
    }
}

/// A run, folded from its stream.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RunState {
    pub run_id: String,
    pub period: String,
    pub created_by: String,
    pub district_code: String,
    pub orders: Vec<pb::PaymentOrder>,
    pub control: pb::PaymentControlTotals,
    pub approved_by: Option<String>,
    /// The last bank file exported: its format's name and SHA-256.
    pub last_export: Option<(String, String)>,
    /// The day the last export took the care institutions' accounts on (`None`: exported
    /// before institutions were paid, or not exported).
    pub last_export_payees_on: Option<time::Date>,
    /// What the bank's result said of each order (empty until it is recorded).
    pub results: BTreeMap<String, pb::PaymentOrderResult>,
    pub result_recorded: bool,
    /// Who recorded the bank's result.
    pub result_recorded_by: Option<String>,
    /// The orders the bank returned after paying them: order id → the bank's reason.
    pub returned: BTreeMap<String, String>,
    /// Who recorded each returns file.
    pub returns_recorded_by: Vec<String>,
    /// Who closed the reconciliation (`None`: open, or not ready).
    pub reconciled_by: Option<String>,
    /// The run's pay date by the payment calendar (none for a re-pay run), and whether it is
    /// provisional.
    pub pay_on: Option<pb::Date>,
    pub pay_on_provisional: bool,
    /// The stream's version: the number of events folded.
    pub version: u64,
}

impl RunState {
    /// Folds one event; decides nothing.
    pub fn apply(&mut self, event: &RunEvent) {
        match event {
            RunEvent::Created(created) => {
                self.run_id = created.run_id.clone();
                self.period = created.period.clone();
                self.created_by = created.created_by.clone();
                self.district_code = created.district_code.clone();
                // A run created before its orders were split off carries them here; a run
                // appended in chunks has them in the parts before this event.
                self.orders.extend(created.orders.iter().cloned());
                self.control = created.control.clone().unwrap_or_default();
                self.pay_on = created.pay_on;
                self.pay_on_provisional = created.pay_on_provisional;
            }
            RunEvent::OrdersAdded(added) => {
                self.orders.extend(added.orders.iter().cloned());
            }
            RunEvent::BankResultLinesAdded(lines) => {
                self.results.extend(
                    lines
                        .results
                        .iter()
                        .map(|result| (result.order_id.clone(), result.clone())),
                );
            }
            RunEvent::BankReturnLinesAdded(lines) => {
                for returned in &lines.returns {
                    self.returned
                        .insert(returned.order_id.clone(), returned.reason.clone());
                }
            }
            RunEvent::Approved(approved) => {
                self.approved_by = Some(approved.approved_by.clone());
            }
            RunEvent::BankFileExported(exported) => {
                self.last_export = Some((exported.format.clone(), exported.sha256.clone()));
                self.last_export_payees_on =
                    sunshine_proto::dates::to_date(exported.payees_on.as_ref());
            }
            RunEvent::BankReturnsRecorded(recorded) => {
                for returned in &recorded.returns {
                    self.returned
                        .insert(returned.order_id.clone(), returned.reason.clone());
                }
                self.returns_recorded_by.push(recorded.recorded_by.clone());
            }
            RunEvent::ReconciliationClosed(closed) => {
                self.reconciled_by = Some(closed.closed_by.clone());
            }
            RunEvent::BankResultRecorded(recorded) => {
                self.result_recorded = true;
                self.result_recorded_by = Some(recorded.recorded_by.clone());
                // With the lines of the BankResultLinesAdded just before it, if any.
                self.results.extend(
                    recorded
                        .results
                        .iter()
                        .map(|result| (result.order_id.clone(), result.clone())),
                );
            }
        }
        self.version += 1;
    }

    /// Folds one event it may take apart: a run's orders move into the state rather than
    /// being copied (what [`RunState::apply`] does otherwise).
    pub fn apply_owned(&mut self, event: RunEvent) {
        match event {
            RunEvent::OrdersAdded(added) => {
                self.orders.extend(added.orders);
                self.version += 1;
            }
            RunEvent::Created(mut created) => {
                let orders = std::mem::take(&mut created.orders);
                self.apply(&RunEvent::Created(created));
                self.orders.extend(orders);
            }
            other => self.apply(&other),
        }
    }

    /// The run folded from `events`, or `None` for none.
    pub fn fold<'a>(events: impl IntoIterator<Item = &'a RunEvent>) -> Option<RunState> {
        let mut state: Option<RunState> = None;
        for event in events {
            state.get_or_insert_with(RunState::default).apply(event);
        }
        state
    }

    pub fn status(&self) -> &'static str {
        if self.reconciled_by.is_some() {
            "reconciled"
        } else if self.result_recorded {
            "result_recorded"
        } else if self.last_export.is_some() {
            "exported"
        } else if self.approved_by.is_some() {
            "approved"
        } else {
            "created"
        }
    }

    /// An order's state: `pending` until the bank's result says `paid` or `failed` (with the
    /// bank's reason).
    pub fn order_state(&self, order_id: &str) -> (&'static str, &str) {
        if let Some(reason) = self.returned.get(order_id) {
            return ("returned", reason.as_str());
        }
        match self.results.get(order_id) {
            None => ("pending", ""),
            Some(result) if result.paid => ("paid", ""),
            Some(result) => ("failed", result.failure_reason.as_str()),
        }
    }

    /// Whether the bank has said nothing of any order yet (no result line, no return): every
    /// order is pending, so the control count and total are the order states, and a run folded
    /// without its orders answers as well as the whole fold.
    pub fn all_pending(&self) -> bool {
        self.results.is_empty() && self.returned.is_empty()
    }

    /// The orders' count and total by state.
    pub fn order_states(&self) -> pb::PaymentOrderStates {
        let mut states = [(0_u32, 0_i64); 4];
        for order in &self.orders {
            let slot = match self.order_state(&order.order_id).0 {
                "paid" => 1,
                "failed" => 2,
                "returned" => 3,
                _ => 0,
            };
            states[slot].0 = states[slot].0.saturating_add(1);
            states[slot].1 = states[slot]
                .1
                .saturating_add(order.amount.as_ref().map_or(0, |money| money.fen));
        }
        let fen = |fen| Some(pb::Money { fen });
        pb::PaymentOrderStates {
            pending_count: states[0].0,
            pending_total: fen(states[0].1),
            paid_count: states[1].0,
            paid_total: fen(states[1].1),
            failed_count: states[2].0,
            failed_total: fen(states[2].1),
            returned_count: states[3].0,
            returned_total: fen(states[3].1),
        }
    }

    /// The reconciliation's state: `not_ready` before the bank's result, then `open` until a
    /// second approver closes it (`closed`).
    pub fn reconciliation(&self) -> &'static str {
        if self.reconciled_by.is_some() {
            "closed"
        } else if self.result_recorded {
            "open"
        } else {
            "not_ready"
        }
    }
}

/// Most orders one `PaymentRunOrdersAdded` carries.
pub const ORDERS_PER_EVENT: usize = 2_000;
/// Most result or return lines one `BankResultLinesAdded`, `BankResultRecorded`,
/// `BankReturnLinesAdded` or `BankReturnsRecorded` carries.
pub const LINES_PER_EVENT: usize = 5_000;
/// Most encoded bytes of the repeated part of one event: under the log's default bound on an
/// event (512 KiB, `log.max_event_payload_bytes`) with room for the event's other fields.
pub const PART_BYTES: usize = 384 * 1024;

/// The events a decision appends, each small enough for the log and the bus: a run's orders
/// move out of `PaymentRunCreated` (which keeps the header, the control totals, the order
/// count and the orders' digest) into `PaymentRunOrdersAdded` events after it, and a large
/// bank result or returns file is recorded as line events followed by the
/// `BankResultRecorded`/`BankReturnsRecorded` carrying the last part. Pure; folding the
/// result is folding the input ([`RunState::fold`]).
pub fn bounded(events: Vec<RunEvent>) -> Vec<RunEvent> {
    let mut out = Vec::with_capacity(events.len());
    for event in events {
        match event {
            RunEvent::Created(mut created) if !created.orders.is_empty() => {
                let orders = std::mem::take(&mut created.orders);
                created.order_count = u32::try_from(orders.len()).unwrap_or(u32::MAX);
                created.orders_sha256 = orders_sha256(&orders);
                let run_id = created.run_id.clone();
                let period = created.period.clone();
                out.push(RunEvent::Created(created));
                for part in parts(orders, ORDERS_PER_EVENT) {
                    out.push(RunEvent::OrdersAdded(pb::PaymentRunOrdersAdded {
                        run_id: run_id.clone(),
                        period: period.clone(),
                        orders: part,
                    }));
                }
            }
            RunEvent::BankResultRecorded(mut recorded) => {
                let mut lines = parts(std::mem::take(&mut recorded.results), LINES_PER_EVENT);
                recorded.results = lines.pop().unwrap_or_default();
                for part in lines {
                    out.push(RunEvent::BankResultLinesAdded(pb::BankResultLinesAdded {
                        run_id: recorded.run_id.clone(),
                        results: part,
                    }));
                }
                out.push(RunEvent::BankResultRecorded(recorded));
            }
            RunEvent::BankReturnsRecorded(mut recorded) => {
                let mut lines = parts(std::mem::take(&mut recorded.returns), LINES_PER_EVENT);
                recorded.returns = lines.pop().unwrap_or_default();
                for part in lines {
                    out.push(RunEvent::BankReturnLinesAdded(pb::BankReturnLinesAdded {
                        run_id: recorded.run_id.clone(),
                        returns: part,
                    }));
                }
                out.push(RunEvent::BankReturnsRecorded(recorded));
            }
            other => out.push(other),
        }
    }
    out
}

/// `items` in consecutive parts of at most `most` items and [`PART_BYTES`] encoded bytes
/// (at least one item each).
fn parts<T: prost::Message>(items: Vec<T>, most: usize) -> Vec<Vec<T>> {
    let mut parts = Vec::new();
    let mut part = Vec::new();
    let mut bytes = 0_usize;
    for item in items {
        let size = item.encoded_len() + 8;
        if !part.is_empty() && (part.len() >= most || bytes + size > PART_BYTES) {
            parts.push(std::mem::take(&mut part));
            bytes = 0;
        }
        bytes += size;
        part.push(item);
    }
    if !part.is_empty() {
        parts.push(part);
    }
    parts
}

/// The lowercase hex SHA-256 over `orders`, each order's length-delimited encoding in turn:
/// `PaymentRunCreated.orders_sha256`.
pub fn orders_sha256(orders: &[pb::PaymentOrder]) -> String {
    use prost::Message as _;
    use sha2::Digest as _;
    let mut hasher = sha2::Sha256::new();
    let mut buffer = Vec::new();
    for order in orders {
        buffer.clear();
        order
            .encode_length_delimited(&mut buffer)
            .unwrap_or_default();
        hasher.update(&buffer);
    }
    hex::encode(hasher.finalize())
}

/// Why a command on a run is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    #[error("every entitlement due in {period} has its order in run {run_id} already")]
    AlreadyInRun { period: String, run_id: String },
    #[error("nothing is due in {period}: no entitlement pays that month")]
    NothingDue { period: String },
    #[error("every failed order of {period} is re-paid in run {run_id} already")]
    AlreadyRepaid { period: String, run_id: String },
    #[error("no order of {period} failed at the bank: there is nothing to pay again")]
    NothingFailed { period: String },
    #[error("run {run_id} exists already")]
    RunExists { run_id: String },
    #[error("no run {run_id}")]
    NoRun { run_id: String },
    #[error("run {run_id} was approved already")]
    AlreadyApproved { run_id: String },
    #[error("the officer who created the run may not approve it (four eyes)")]
    CreatorApproves,
    /// The re-keyed figures that differ from the run's (the run's are not repeated: the
    /// approver keys them from the paper, not from the error).
    #[error("the re-keyed control figures do not match the run's: {}", fields.join(", "))]
    ControlMismatch { fields: Vec<&'static str> },
    #[error("the run's total is out of range")]
    Overflow,
    /// A fund would go below zero of its year's budget for a program, or no fund or budget
    /// pays the run's money: the whole run is refused.
    #[error("{0}")]
    Budget(BudgetRefusal),
    #[error("run {run_id} is not approved: only an approved run goes to the bank")]
    NotApproved { run_id: String },
    #[error("run {run_id} has no bank file exported: there is no batch for a result to answer")]
    NotExported { run_id: String },
    #[error("run {run_id} has its bank result recorded already")]
    ResultRecorded { run_id: String },
    /// The result file does not match the batch: every bad line (`lines[i]`).
    #[error("the bank's result file does not match the batch")]
    BadResultFile { violations: Vec<FieldViolation> },
    #[error("{0}")]
    Unwritable(String),
    /// The export's first pass over the orders' table did not find the run's control count and
    /// total (the figures are the run's own, no personal data).
    #[error(
        "the orders' table holds {count} orders of run {run_id} totalling {total_fen} fen; the run's control figures are {control_count} and {control_total_fen} fen"
    )]
    OrdersDisagree {
        run_id: String,
        count: u64,
        total_fen: i64,
        control_count: u32,
        control_total_fen: i64,
    },
    /// Orders whose household has no payment account: how many, never which.
    #[error(
        "{count} of the run's orders have a household with no payment account (intake's registration gives it): the bank file cannot pay them"
    )]
    WithoutAccount { count: u64 },
    /// Orders paying care institutions that have no account in force on the export's day:
    /// the institutions (their codes and why; an organisation's, not personal data), at most
    /// [`NAMED_INSTITUTIONS`] of them named.
    #[error(
        "the run pays care institutions with no account on {on} in the institutions file (payment.funds_file [[institution]]): {}",
        named_institutions(institutions)
    )]
    InstitutionUnpayable {
        on: time::Date,
        institutions: BTreeMap<String, String>,
    },
    // settlement
    #[error("run {run_id} has no bank result recorded yet")]
    NoResult { run_id: String },
    #[error(
        "run {run_id} has its reconciliation closed: it takes no more returns, nor another close"
    )]
    ReconciliationClosed { run_id: String },
    /// The returns file does not match the run's paid orders: every bad line (`lines[i]`).
    #[error("the bank's returns file does not match the run's paid orders")]
    BadReturnsFile { violations: Vec<FieldViolation> },
    /// Four eyes on the reconciliation: who created the run, or recorded its result or
    /// returns, does not close it.
    #[error("the officer who {did} may not close its reconciliation (four eyes)")]
    CloserTookPart { did: &'static str },
    /// The period has no pay date: no calendar entry is in force (payment calendar).
    #[error("{0}")]
    Calendar(CalendarRefusal),
}

/// Decides `command` on the run `state` (`None`: no such stream yet): the events to append, or
/// why not.
pub fn handle(state: Option<&RunState>, command: &Command) -> Result<Vec<RunEvent>, CommandError> {
    match command {
        Command::CreateRun(create, facts) => {
            if let Some(existing) = state {
                return Err(CommandError::RunExists {
                    run_id: existing.run_id.clone(),
                });
            }
            create_run(create, facts)
        }
        Command::CreateRepayRun(create, facts) => {
            if let Some(existing) = state {
                return Err(CommandError::RunExists {
                    run_id: existing.run_id.clone(),
                });
            }
            create_repay_run(create, facts)
        }
        Command::ApproveRun(approve) => {
            let Some(run) = state else {
                return Err(CommandError::NoRun {
                    run_id: approve.run_id.clone(),
                });
            };
            approve_run(run, approve).map(|approved| vec![RunEvent::Approved(approved)])
        }
        Command::ExportBankFile(export) => {
            let Some(run) = state else {
                return Err(CommandError::NoRun {
                    run_id: export.run_id.clone(),
                });
            };
            export_bank_file(run, export).map(|exported| vec![exported])
        }
        Command::ImportBankResult(import) => {
            let Some(run) = state else {
                return Err(CommandError::NoRun {
                    run_id: import.run_id.clone(),
                });
            };
            import_bank_result(run, import).map(|recorded| vec![recorded])
        }
        Command::ImportBankReturns(import) => {
            let Some(run) = state else {
                return Err(CommandError::NoRun {
                    run_id: import.run_id.clone(),
                });
            };
            import_bank_returns(run, import).map(|recorded| vec![recorded])
        }
        Command::CloseReconciliation(close) => {
            let Some(run) = state else {
                return Err(CommandError::NoRun {
                    run_id: close.run_id.clone(),
                });
            };
            close_reconciliation(run, close).map(|closed| vec![closed])
        }
    }
}

// ---- settlement: returns (退票) and the reconciliation's close ----

fn import_bank_returns(
    run: &RunState,
    import: &ImportBankReturns,
) -> Result<RunEvent, CommandError> {
    if !run.result_recorded {
        return Err(CommandError::NoResult {
            run_id: run.run_id.clone(),
        });
    }
    if run.reconciled_by.is_some() {
        return Err(CommandError::ReconciliationClosed {
            run_id: run.run_id.clone(),
        });
    }
    let format_name = run.last_export.as_ref().map_or("", |(format, _)| format);
    let format = Format::parse(format_name).ok_or_else(|| {
        CommandError::Unwritable(format!(
            "the run's export has no known format {format_name:?}"
        ))
    })?;
    let file = bank_files::parse_returns(format, &import.file)
        .map_err(|violations| CommandError::BadReturnsFile { violations })?;
    let batch = batch_of(run, &import.accounts);
    let mut violations = Vec::new();
    let mut returns = Vec::with_capacity(file.lines.len());
    for (index, line) in &file.lines {
        let Some(ordered) = batch.get(line.order_id.as_str()) else {
            violations.push(bank_files::line_violation(
                *index,
                "no order of this run has this order id",
            ));
            continue;
        };
        let mut why = Vec::new();
        match run.order_state(&line.order_id).0 {
            "paid" => {}
            "returned" => why.push("the order was returned already".to_owned()),
            state => why.push(format!("the order was not paid (it is {state})")),
        }
        let differs = differences(line, ordered);
        if !differs.is_empty() {
            why.push(format!(
                "{} differs from the batch's",
                differs.join(" and ")
            ));
        }
        if !why.is_empty() {
            violations.push(bank_files::line_violation(*index, why.join("; ")));
            continue;
        }
        returns.push(pb::PaymentOrderReturn {
            order_id: line.order_id.clone(),
            reason: line.reason.clone(),
        });
    }
    if file.lines.is_empty() {
        violations.push(FieldViolation {
            field: "lines".into(),
            description: "a returns file names at least one returned order".into(),
        });
    }
    if !violations.is_empty() {
        return Err(CommandError::BadReturnsFile { violations });
    }
    returns.sort_by(|left, right| left.order_id.cmp(&right.order_id));
    Ok(RunEvent::BankReturnsRecorded(pb::BankReturnsRecorded {
        run_id: run.run_id.clone(),
        format: format.as_str().to_owned(),
        sha256: bank_files::sha256_hex(&import.file),
        returns,
        recorded_by: import.recorded_by.clone(),
    }))
}

fn close_reconciliation(
    run: &RunState,
    close: &CloseReconciliation,
) -> Result<RunEvent, CommandError> {
    if run.reconciled_by.is_some() {
        return Err(CommandError::ReconciliationClosed {
            run_id: run.run_id.clone(),
        });
    }
    if !run.result_recorded {
        return Err(CommandError::NoResult {
            run_id: run.run_id.clone(),
        });
    }
    let closer = close.closed_by.as_str();
    if run.created_by == closer {
        return Err(CommandError::CloserTookPart {
            did: "created the run",
        });
    }
    if run.result_recorded_by.as_deref() == Some(closer) {
        return Err(CommandError::CloserTookPart {
            did: "recorded the run's bank result",
        });
    }
    if run.returns_recorded_by.iter().any(|by| by == closer) {
        return Err(CommandError::CloserTookPart {
            did: "recorded the run's returns",
        });
    }
    let states = run.order_states();
    let fen = |money: Option<pb::Money>| money.map_or(0, |money| money.fen);
    let paid_total = fen(states.paid_total);
    let unpaid_count = states.failed_count.saturating_add(states.returned_count);
    let unpaid_total = fen(states.failed_total).saturating_add(fen(states.returned_total));
    let mut fields = Vec::new();
    if close.paid_count != states.paid_count {
        fields.push("paid_count");
    }
    if close.paid_total.fen() != paid_total {
        fields.push("paid_total");
    }
    if close.unpaid_count != unpaid_count {
        fields.push("unpaid_count");
    }
    if close.unpaid_total.fen() != unpaid_total {
        fields.push("unpaid_total");
    }
    if !fields.is_empty() {
        return Err(CommandError::ControlMismatch { fields });
    }
    Ok(RunEvent::ReconciliationClosed(pb::ReconciliationClosed {
        run_id: run.run_id.clone(),
        closed_by: close.closed_by.clone(),
        paid_count: close.paid_count,
        paid_total: money(close.paid_total),
        unpaid_count: close.unpaid_count,
        unpaid_total: money(close.unpaid_total),
    }))
}

/// The most institutions an [`CommandError::InstitutionUnpayable`] names.
pub const NAMED_INSTITUTIONS: usize = 10;

fn named_institutions(institutions: &BTreeMap<String, String>) -> String {
    let mut named: Vec<String> = institutions
        .iter()
        .take(NAMED_INSTITUTIONS)
        .map(|(code, why)| format!("{code} ({why})"))
        .collect();
    if institutions.len() > NAMED_INSTITUTIONS {
        named.push(format!(
            "and {} more",
            institutions.len() - NAMED_INSTITUTIONS
        ));
    }
    named.join(", ")
}

/// Whether the run may be exported at all (approved, its bank result not recorded): checked
/// before the export reads the run's orders, and again in [`export_bank_file`].
pub fn exportable(run: &RunState) -> Result<(), CommandError> {
    if run.approved_by.is_none() {
        return Err(CommandError::NotApproved {
            run_id: run.run_id.clone(),
        });
    }
    if run.result_recorded {
        return Err(CommandError::ResultRecorded {
            run_id: run.run_id.clone(),
        });
    }
    Ok(())
}

/// The event that records the export of the batch file the export's first pass wrote
/// (`export.batch`): a run that may be exported, whose orders are its control figures, whose
/// every care institution paid has an account on the pass's day and every household paid an
/// account.
pub fn export_bank_file(run: &RunState, export: &ExportBankFile) -> Result<RunEvent, CommandError> {
    exportable(run)?;
    let batch = &export.batch;
    let control_total_fen = run.control.total.as_ref().map_or(0, |money| money.fen);
    if batch.count != u64::from(run.control.count) || batch.total_fen != control_total_fen {
        return Err(CommandError::OrdersDisagree {
            run_id: run.run_id.clone(),
            count: batch.count,
            total_fen: batch.total_fen,
            control_count: run.control.count,
            control_total_fen,
        });
    }
    if !batch.unpayable_institutions.is_empty() {
        return Err(CommandError::InstitutionUnpayable {
            on: batch.payees_on,
            institutions: batch.unpayable_institutions.clone(),
        });
    }
    if batch.without_account > 0 {
        return Err(CommandError::WithoutAccount {
            count: batch.without_account,
        });
    }
    Ok(RunEvent::BankFileExported(pb::BankFileExported {
        run_id: run.run_id.clone(),
        format: export.format.as_str().to_owned(),
        sha256: batch.sha256.clone(),
        count: run.control.count,
        total: run.control.total,
        exported_by: export.exported_by.clone(),
        payees_on: Some(date_of(batch.payees_on)),
    }))
}

/// What the batch file carried for an order: its payee's account number (`None`: the
/// payee has none now), whether that payee is a care institution, and its amount.
struct Ordered<'a> {
    account: Option<&'a str>,
    institution: bool,
    amount_fen: i64,
}

/// Each order of the run by id, with what the batch file carried for it.
fn batch_of<'a>(
    run: &'a RunState,
    accounts: &'a bank_files::AccountNumbers,
) -> BTreeMap<&'a str, Ordered<'a>> {
    run.orders
        .iter()
        .map(|order| {
            (
                order.order_id.as_str(),
                Ordered {
                    account: accounts.of_order(order),
                    institution: !order.care_institution_code.is_empty(),
                    amount_fen: order.amount.as_ref().map_or(0, |money| money.fen),
                },
            )
        })
        .collect()
}

/// What differs between a line of the bank's answer and the batch's order: the account, the
/// amount.
fn differences(line: &bank_files::ResultLine, ordered: &Ordered<'_>) -> Vec<&'static str> {
    let mut differs = Vec::new();
    match ordered.account {
        Some(account) if account == line.account => {}
        Some(_) => differs.push("the account"),
        None if ordered.institution => differs.push(
            "the account (the care institution has no account in the institutions file on the export's day)",
        ),
        None => differs.push("the account (the household has no payment account now)"),
    }
    if line.amount_fen != ordered.amount_fen {
        differs.push("the amount");
    }
    differs
}

fn import_bank_result(run: &RunState, import: &ImportBankResult) -> Result<RunEvent, CommandError> {
    if run.approved_by.is_none() {
        return Err(CommandError::NotApproved {
            run_id: run.run_id.clone(),
        });
    }
    let Some((format_name, _)) = &run.last_export else {
        return Err(CommandError::NotExported {
            run_id: run.run_id.clone(),
        });
    };
    if run.result_recorded {
        return Err(CommandError::ResultRecorded {
            run_id: run.run_id.clone(),
        });
    }
    let format = Format::parse(format_name).ok_or_else(|| {
        CommandError::Unwritable(format!(
            "the run's export has no known format {format_name:?}"
        ))
    })?;
    let file = bank_files::parse_result(format, &import.file)
        .map_err(|violations| CommandError::BadResultFile { violations })?;
    let batch = batch_of(run, &import.accounts);
    let mut violations = Vec::new();
    let mut results = Vec::with_capacity(file.lines.len());
    for (index, line) in &file.lines {
        let Some(ordered) = batch.get(line.order_id.as_str()) else {
            violations.push(bank_files::line_violation(
                *index,
                "no order of this run has this order id",
            ));
            continue;
        };
        let differs = differences(line, ordered);
        if !differs.is_empty() {
            violations.push(bank_files::line_violation(
                *index,
                format!("{} differs from the batch's", differs.join(" and ")),
            ));
            continue;
        }
        results.push(pb::PaymentOrderResult {
            order_id: line.order_id.clone(),
            paid: line.paid,
            failure_reason: if line.paid {
                String::new()
            } else {
                line.reason.clone()
            },
        });
    }
    let answered: std::collections::BTreeSet<&str> = file
        .lines
        .iter()
        .map(|(_, line)| line.order_id.as_str())
        .collect();
    for order_id in batch.keys().filter(|id| !answered.contains(*id)) {
        violations.push(FieldViolation {
            field: "lines".into(),
            description: format!("no line for order {order_id} of the batch"),
        });
    }
    if !violations.is_empty() {
        return Err(CommandError::BadResultFile { violations });
    }
    results.sort_by(|left, right| left.order_id.cmp(&right.order_id));
    Ok(RunEvent::BankResultRecorded(pb::BankResultRecorded {
        run_id: run.run_id.clone(),
        format: format.as_str().to_owned(),
        sha256: bank_files::sha256_hex(&import.file),
        results,
        recorded_by: import.recorded_by.clone(),
    }))
}

fn money(amount: Money) -> Option<pb::Money> {
    Some(pb::Money { fen: amount.fen() })
}

/// A date on the wire.
pub fn date_of(date: time::Date) -> pb::Date {
    pb::Date {
        year: date.year(),
        month: i32::from(u8::from(date.month())),
        day: i32::from(date.day()),
    }
}

// ---- a new run, assembled a chunk at a time ----

/// Which orders a new run takes: the entitlements due in its period (a run), or the period's
/// failed and returned orders (a re-pay run).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RunKind {
    First,
    Repay,
}

/// Counts and sums of a run's orders as they are taken.
#[derive(Debug, Clone, Default)]
struct Totals {
    overall: (u32, Money),
    by_program: BTreeMap<String, (u32, Money)>,
    by_street_town: BTreeMap<String, (u32, Money)>,
}

impl Totals {
    fn add(&mut self, order: &pb::PaymentOrder) -> Result<(), CommandError> {
        fn add(total: &mut (u32, Money), amount: Money) -> Result<(), CommandError> {
            total.0 = total.0.checked_add(1).ok_or(CommandError::Overflow)?;
            total.1 = total.1.checked_add(amount).ok_or(CommandError::Overflow)?;
            Ok(())
        }
        let amount = Money::from_fen(order.amount.as_ref().map_or(0, |money| money.fen));
        add(&mut self.overall, amount)?;
        if let Some(total) = self.by_program.get_mut(&order.program_code) {
            add(total, amount)?;
        } else {
            self.by_program
                .insert(order.program_code.clone(), (1, amount));
        }
        if let Some(total) = self.by_street_town.get_mut(&order.street_town_code) {
            add(total, amount)?;
        } else {
            self.by_street_town
                .insert(order.street_town_code.clone(), (1, amount));
        }
        Ok(())
    }

    fn control(self) -> pb::PaymentControlTotals {
        let listed = |totals: BTreeMap<String, (u32, Money)>| {
            totals
                .into_iter()
                .map(|(key, (count, total))| pb::PaymentControlTotal {
                    key,
                    count,
                    total: money(total),
                })
                .collect()
        };
        pb::PaymentControlTotals {
            count: self.overall.0,
            total: money(self.overall.1),
            by_program: listed(self.by_program),
            by_street_town: listed(self.by_street_town),
        }
    }
}

/// A new run decided a chunk at a time, so that a run of a million entitlements is never held
/// at once: each chunk of entitlements (or failed orders) in turn becomes its orders (each
/// named its fund, counted into the control totals, its need on its fund's budget added up,
/// hashed into the run's digest) and the `PaymentRunOrdersAdded` parts that carry them; then
/// [`RunAssembly::finish`] decides the run as a whole — nothing due, already paid, over budget,
/// no pay date — and writes the `PaymentRunCreated` that closes the append with the totals
/// over every part before it. Pure: the store hands it each chunk with the guard's knowledge
/// of that chunk, and [`handle`] runs it over one chunk.
#[derive(Debug)]
pub struct RunAssembly {
    kind: RunKind,
    header: pb::PaymentRunCreated,
    period: sunshine_domain::Month,
    first_day: time::Date,
    budget: crate::commands::BudgetFacts,
    pay_on: Option<Result<crate::pay_calendar::PayDate, CalendarRefusal>>,
    totals: Totals,
    /// (fund, budget program) → what the run's orders need of it.
    needed: BTreeMap<(String, String), Money>,
    hasher: sha2::Sha256,
    /// The first run found holding a key this run skipped.
    already_in: Option<String>,
}

impl RunAssembly {
    fn new(
        kind: RunKind,
        header: pb::PaymentRunCreated,
        period: sunshine_domain::Month,
        budget: crate::commands::BudgetFacts,
        pay_on: Option<Result<crate::pay_calendar::PayDate, CalendarRefusal>>,
    ) -> Result<RunAssembly, CommandError> {
        use sha2::Digest as _;
        let first_day = time::Month::try_from(period.month())
            .ok()
            .and_then(|month| time::Date::from_calendar_date(period.year(), month, 1).ok())
            .ok_or_else(|| CommandError::Unwritable(format!("period {period} has no first day")))?;
        Ok(RunAssembly {
            kind,
            header,
            period,
            first_day,
            budget,
            pay_on,
            totals: Totals::default(),
            needed: BTreeMap::new(),
            hasher: sha2::Sha256::new(),
            already_in: None,
        })
    }

    /// A run of `create.period`, checked against `budget` and paid on `pay_on`.
    pub fn first_run(
        create: &CreateRun,
        budget: crate::commands::BudgetFacts,
        pay_on: Result<crate::pay_calendar::PayDate, CalendarRefusal>,
    ) -> Result<RunAssembly, CommandError> {
        let header = pb::PaymentRunCreated {
            run_id: create.run_id.clone(),
            period: create.period.to_string(),
            created_by: create.created_by.clone(),
            district_code: create.district.as_str().to_owned(),
            ..Default::default()
        };
        RunAssembly::new(RunKind::First, header, create.period, budget, Some(pay_on))
    }

    /// A re-pay run of `create.period`, checked against `budget`; it has no calendar date (it
    /// pays once approved).
    pub fn repay_run(
        create: &CreateRepayRun,
        budget: crate::commands::BudgetFacts,
    ) -> Result<RunAssembly, CommandError> {
        let header = pb::PaymentRunCreated {
            run_id: create.run_id.clone(),
            period: create.period.to_string(),
            created_by: create.created_by.clone(),
            district_code: create.district.as_str().to_owned(),
            ..Default::default()
        };
        RunAssembly::new(RunKind::Repay, header, create.period, budget, None)
    }

    pub fn run_id(&self) -> &str {
        &self.header.run_id
    }

    pub fn period(&self) -> &str {
        &self.header.period
    }

    /// The orders of one chunk of entitlements, in entitlement-id order: each one due in the
    /// period and not paid by a run of the period already (`in_runs`: entitlement id → that
    /// run, for this chunk's entitlements at least).
    pub fn orders_due(
        &mut self,
        entitlements: &[Entitlement],
        in_runs: &BTreeMap<String, String>,
    ) -> Result<Vec<pb::PaymentOrder>, CommandError> {
        let mut sorted: Vec<&Entitlement> = entitlements.iter().collect();
        sorted.sort_by(|left, right| left.entitlement_id.cmp(&right.entitlement_id));
        let mut orders = Vec::with_capacity(sorted.len());
        for entitlement in sorted {
            let amount = amount_due(entitlement, self.period);
            if amount.is_zero() || amount.is_negative() {
                continue;
            }
            if let Some(run_id) = in_runs.get(&entitlement.entitlement_id) {
                self.already_in.get_or_insert_with(|| run_id.clone());
                continue;
            }
            orders.push(pb::PaymentOrder {
                order_id: order_id_for(&self.header.run_id, &entitlement.entitlement_id),
                entitlement_id: entitlement.entitlement_id.clone(),
                case_id: entitlement.case_id.clone(),
                household_id: entitlement.household_id.clone(),
                program_code: entitlement.program_code.clone(),
                street_town_code: entitlement.street_town_code.clone(),
                amount: money(amount),
                repays_order_id: String::new(),
                fund: String::new(),
                care_institution_code: entitlement.payee.institution_code().to_owned(),
            });
        }
        self.take(orders)
    }

    /// The re-payments of one chunk of failed orders, in failed-order-id order: each one not
    /// paid again by a re-pay run already (`repaid`: failed order id → that run).
    pub fn orders_repaid(
        &mut self,
        failed: &[FailedOrder],
        repaid: &BTreeMap<String, String>,
    ) -> Result<Vec<pb::PaymentOrder>, CommandError> {
        let mut sorted: Vec<&FailedOrder> = failed.iter().collect();
        sorted.sort_by(|left, right| left.order.order_id.cmp(&right.order.order_id));
        let mut orders = Vec::with_capacity(sorted.len());
        for failed in sorted {
            let failed_id = &failed.order.order_id;
            if let Some(run_id) = repaid.get(failed_id) {
                self.already_in.get_or_insert_with(|| run_id.clone());
                continue;
            }
            orders.push(pb::PaymentOrder {
                order_id: order_id_for(&self.header.run_id, &format!("repay-{failed_id}")),
                repays_order_id: failed_id.clone(),
                ..failed.order.clone()
            });
        }
        self.take(orders)
    }

    /// Names each order's fund (the one paying its budget program on the period's first day),
    /// and counts, adds up and hashes it.
    fn take(
        &mut self,
        mut orders: Vec<pb::PaymentOrder>,
    ) -> Result<Vec<pb::PaymentOrder>, CommandError> {
        use prost::Message as _;
        use sha2::Digest as _;
        let mut buffer = Vec::new();
        for order in &mut orders {
            let program = funds::budget_program(&order.entitlement_id, &order.program_code);
            let fund = self
                .budget
                .funds
                .fund_paying(program, self.first_day)
                .ok_or_else(|| {
                    CommandError::Budget(BudgetRefusal::NoFund {
                        program: program.to_owned(),
                        on: self.first_day,
                    })
                })?
                .to_owned();
            let amount = Money::from_fen(order.amount.as_ref().map_or(0, |money| money.fen));
            let key = (fund.clone(), program.to_owned());
            let total = self.needed.entry(key).or_default();
            *total = total.checked_add(amount).ok_or(CommandError::Overflow)?;
            order.fund = fund;
            self.totals.add(order)?;
            buffer.clear();
            order
                .encode_length_delimited(&mut buffer)
                .unwrap_or_default();
            self.hasher.update(&buffer);
        }
        Ok(orders)
    }

    /// `orders` (of one chunk) as the run's `PaymentRunOrdersAdded` parts, each under the
    /// log's bound.
    pub fn parts(&self, orders: Vec<pb::PaymentOrder>) -> Vec<RunEvent> {
        parts(orders, ORDERS_PER_EVENT)
            .into_iter()
            .map(|part| {
                RunEvent::OrdersAdded(pb::PaymentRunOrdersAdded {
                    run_id: self.header.run_id.clone(),
                    period: self.header.period.clone(),
                    orders: part,
                })
            })
            .collect()
    }

    /// The run as a whole, after its last chunk: refused when it has no order (naming a run
    /// that has them, if any does), when its total for a budget program would take that
    /// fund's remaining budget for the year below zero (remaining = budget − what approved
    /// runs of the year committed), or when the calendar has no pay date; otherwise the
    /// `PaymentRunCreated` closing the append, with the control totals, the order count and
    /// the orders' digest.
    pub fn finish(self) -> Result<pb::PaymentRunCreated, CommandError> {
        use sha2::Digest as _;
        let period = self.header.period.clone();
        if self.totals.overall.0 == 0 {
            return Err(match (self.kind, self.already_in) {
                (RunKind::First, Some(run_id)) => CommandError::AlreadyInRun { period, run_id },
                (RunKind::First, None) => CommandError::NothingDue { period },
                (RunKind::Repay, Some(run_id)) => CommandError::AlreadyRepaid { period, run_id },
                (RunKind::Repay, None) => CommandError::NothingFailed { period },
            });
        }
        let year = self.period.year();
        for ((fund, program), amount) in &self.needed {
            let committed = self
                .budget
                .committed
                .get(&(fund.clone(), program.clone()))
                .copied()
                .unwrap_or_default();
            funds::check_budget(&self.budget.funds, fund, program, year, committed, *amount)
                .map_err(CommandError::Budget)?;
        }
        let pay_on = self
            .pay_on
            .map(|pay_on| pay_on.map_err(CommandError::Calendar))
            .transpose()?;
        let order_count = self.totals.overall.0;
        Ok(pb::PaymentRunCreated {
            control: Some(self.totals.control()),
            pay_on: pay_on.as_ref().map(|pay_on| date_of(pay_on.date)),
            pay_on_provisional: pay_on.is_some_and(|pay_on| pay_on.provisional),
            order_count,
            orders_sha256: hex::encode(self.hasher.finalize()),
            ..self.header
        })
    }
}

/// A run of the period over all its facts at once, as one chunk: its parts, then the
/// `PaymentRunCreated` closing them (the shape the store appends chunk by chunk).
fn create_run(create: &CreateRun, facts: &PeriodFacts) -> Result<Vec<RunEvent>, CommandError> {
    let mut assembly = RunAssembly::first_run(create, facts.budget.clone(), facts.pay_on.clone())?;
    let orders = assembly.orders_due(&facts.entitlements, &facts.in_runs)?;
    let mut events = assembly.parts(orders);
    events.push(RunEvent::Created(assembly.finish()?));
    Ok(events)
}

fn create_repay_run(
    create: &CreateRepayRun,
    facts: &RepayFacts,
) -> Result<Vec<RunEvent>, CommandError> {
    let mut assembly = RunAssembly::repay_run(create, facts.budget.clone())?;
    let orders = assembly.orders_repaid(&facts.failed, &facts.repaid)?;
    let mut events = assembly.parts(orders);
    events.push(RunEvent::Created(assembly.finish()?));
    Ok(events)
}

/// Count and sum of `orders`, overall and per program and street-town (in key order).
pub fn control_totals(
    orders: &[pb::PaymentOrder],
) -> Result<pb::PaymentControlTotals, CommandError> {
    let mut totals = Totals::default();
    for order in orders {
        totals.add(order)?;
    }
    Ok(totals.control())
}

fn approve_run(
    run: &RunState,
    approve: &ApproveRun,
) -> Result<pb::PaymentRunApproved, CommandError> {
    if run.approved_by.is_some() {
        return Err(CommandError::AlreadyApproved {
            run_id: run.run_id.clone(),
        });
    }
    if run.created_by == approve.approved_by {
        return Err(CommandError::CreatorApproves);
    }
    let mut fields = Vec::new();
    if approve.control_count != run.control.count {
        fields.push("control_count");
    }
    let total = run.control.total.as_ref().map_or(0, |money| money.fen);
    if approve.control_total.fen() != total {
        fields.push("control_total");
    }
    if !fields.is_empty() {
        return Err(CommandError::ControlMismatch { fields });
    }
    Ok(pb::PaymentRunApproved {
        run_id: run.run_id.clone(),
        approved_by: approve.approved_by.clone(),
        control_count: approve.control_count,
        control_total: money(approve.control_total),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use sunshine_domain::{Month, OrgUnitCode};

    use super::*;
    use crate::entitlements::{Entitlement, Kind, Payee};

    // ---- Given / When / Then ----

    struct Given(Vec<RunEvent>);

    fn given(events: Vec<RunEvent>) -> Given {
        Given(events)
    }

    fn nothing() -> Given {
        Given(Vec::new())
    }

    struct When(Result<Vec<RunEvent>, CommandError>);

    impl Given {
        fn when(self, command: Command) -> When {
            let state = RunState::fold(&self.0);
            When(handle(state.as_ref(), &command))
        }
    }

    impl When {
        fn then_expect_events(self, expected: Vec<RunEvent>) {
            assert_eq!(self.0, Ok(expected));
        }

        fn then_expect_error(self, expected: CommandError) {
            assert_eq!(self.0, Err(expected));
        }

        fn events(self) -> Vec<RunEvent> {
            self.0.unwrap()
        }

        /// A creation's events as one `PaymentRunCreated` ([`inline`]).
        fn creation(self) -> RunEvent {
            inline(self.events())
        }
    }

    // ---- fixtures ----

    const RUN: &str = "0190f3c4-0000-5000-8000-000000000001";
    /// The day the test run's bank file is exported.
    const EXPORTED_ON: time::Date = time::macros::date!(2026 - 12 - 08);

    fn month(text: &str) -> Month {
        Month::parse(text).unwrap()
    }

    fn entitlement(id: &str, program: &str, street: &str, fen: i64) -> Entitlement {
        Entitlement {
            entitlement_id: id.into(),
            case_id: id.into(),
            household_id: format!("household-of-{id}"),
            program_code: program.into(),
            street_town_code: street.into(),
            kind: Kind::Monthly,
            amount: Money::from_fen(fen),
            start_month: month("2026-10"),
            suspended_from: None,
            terminated_from: None,
            adjustments: Vec::new(),
            payee: Payee::Household,
        }
    }

    fn facts(entitlements: Vec<Entitlement>) -> PeriodFacts {
        PeriodFacts {
            entitlements,
            in_runs: BTreeMap::new(),
            budget: budget(),
            pay_on: Ok(crate::pay_calendar::PayDate {
                date: time::macros::date!(2026 - 12 - 10),
                provisional: false,
            }),
        }
    }

    /// The EXAMPLE district's funds, nothing committed yet.
    fn budget() -> crate::commands::BudgetFacts {
        crate::commands::BudgetFacts {
            funds: std::sync::Arc::new(crate::funds::Funds::example().unwrap()),
            committed: BTreeMap::new(),
        }
    }

    fn create(period: &str, facts: PeriodFacts) -> Command {
        Command::CreateRun(
            CreateRun {
                run_id: RUN.into(),
                period: month(period),
                created_by: "officer-1".into(),
                district: OrgUnitCode::parse("990101000000").unwrap(),
            },
            facts,
        )
    }

    fn approve(by: &str, count: u32, fen: i64) -> Command {
        Command::ApproveRun(ApproveRun {
            run_id: RUN.into(),
            expected_version: 1,
            control_count: count,
            control_total: Money::from_fen(fen),
            approved_by: by.into(),
        })
    }

    fn three() -> Vec<Entitlement> {
        vec![
            entitlement("case-b", "dibao", "990101001000", 80_000),
            entitlement("case-a", "dibao", "990101002000", 60_000),
            entitlement("case-c", "tekun", "990101001000", 120_000),
        ]
    }

    fn created_run() -> RunEvent {
        inline(nothing().when(create("2026-10", facts(three()))).events())
    }

    /// A decided creation — its `PaymentRunOrdersAdded` parts, then the `PaymentRunCreated`
    /// closing them — as one `PaymentRunCreated` with the orders inline, the shape the fold
    /// also takes; checks the closing event's count and digest on the way.
    fn inline(events: Vec<RunEvent>) -> RunEvent {
        let mut orders = Vec::new();
        let mut closing = None;
        for event in events {
            match event {
                RunEvent::OrdersAdded(added) => {
                    assert!(closing.is_none(), "a part after the creation");
                    orders.extend(added.orders);
                }
                RunEvent::Created(created) => closing = Some(created),
                other => panic!("not a creation's event: {other:?}"),
            }
        }
        let mut created = closing.expect("no PaymentRunCreated");
        assert_eq!(created.order_count as usize, orders.len());
        assert_eq!(created.orders_sha256, orders_sha256(&orders));
        created.orders = orders;
        created.order_count = 0;
        created.orders_sha256 = String::new();
        RunEvent::Created(created)
    }

    fn created(event: &RunEvent) -> &pb::PaymentRunCreated {
        match event {
            RunEvent::Created(created) => created,
            _ => panic!("not a creation"),
        }
    }

    fn total(key: &str, count: u32, fen: i64) -> pb::PaymentControlTotal {
        pb::PaymentControlTotal {
            key: key.into(),
            count,
            total: Some(pb::Money { fen }),
        }
    }

    // ---- CreateRun: the pay date ----

    #[test]
    fn a_run_records_the_pay_date_of_its_period_and_a_period_without_one_is_refused() {
        let event = created_run();
        let run = created(&event);
        assert_eq!(
            run.pay_on,
            Some(pb::Date {
                year: 2026,
                month: 12,
                day: 10
            })
        );
        assert!(!run.pay_on_provisional);
        let state = RunState::fold([&event]).unwrap();
        assert_eq!(state.pay_on, run.pay_on);
        let mut none = facts(three());
        none.pay_on = Err(crate::pay_calendar::CalendarRefusal::NoEntry {
            period: "2026-10".into(),
        });
        nothing()
            .when(create("2026-10", none))
            .then_expect_error(CommandError::Calendar(
                crate::pay_calendar::CalendarRefusal::NoEntry {
                    period: "2026-10".into(),
                },
            ));
    }

    #[test]
    fn a_run_is_all_pending_until_the_bank_says_anything_of_an_order() {
        let event = created_run();
        let mut state = RunState::fold([&event]).unwrap();
        assert!(state.all_pending());
        let order_id = state.orders[0].order_id.clone();
        state.apply(&RunEvent::BankReturnLinesAdded(pb::BankReturnLinesAdded {
            run_id: state.run_id.clone(),
            returns: vec![pb::PaymentOrderReturn {
                order_id: order_id.clone(),
                reason: "账户已销户".into(),
            }],
        }));
        assert!(!state.all_pending());
        let mut state = RunState::fold([&event]).unwrap();
        state.apply(&RunEvent::BankResultLinesAdded(pb::BankResultLinesAdded {
            run_id: state.run_id.clone(),
            results: vec![pb::PaymentOrderResult {
                order_id,
                paid: true,
                failure_reason: String::new(),
            }],
        }));
        assert!(!state.all_pending());
    }

    // ---- CreateRun ----

    #[test]
    fn a_run_has_one_order_per_entitlement_due_and_its_control_totals() {
        let event = created_run();
        let run = created(&event);
        assert_eq!(run.run_id, RUN);
        assert_eq!(run.period, "2026-10");
        assert_eq!(run.created_by, "officer-1");
        assert_eq!(run.district_code, "990101000000");
        let entitlements: Vec<&str> = run
            .orders
            .iter()
            .map(|order| order.entitlement_id.as_str())
            .collect();
        assert_eq!(entitlements, ["case-a", "case-b", "case-c"]);
        assert_eq!(run.orders[1].order_id, order_id_for(RUN, "case-b"));
        assert_eq!(run.orders[1].household_id, "household-of-case-b");
        assert_eq!(run.orders[1].amount, Some(pb::Money { fen: 80_000 }));
        assert_eq!(
            run.control,
            Some(pb::PaymentControlTotals {
                count: 3,
                total: Some(pb::Money { fen: 260_000 }),
                by_program: vec![total("dibao", 2, 140_000), total("tekun", 1, 120_000)],
                by_street_town: vec![
                    total("990101001000", 2, 200_000),
                    total("990101002000", 1, 60_000)
                ],
            })
        );
    }

    #[test]
    fn entitlements_that_pay_nothing_in_the_period_have_no_order() {
        let mut entitlements = three();
        entitlements[0].terminated_from = Some(month("2026-10"));
        entitlements[1].start_month = month("2026-11");
        let event = nothing()
            .when(create("2026-10", facts(entitlements)))
            .creation();
        let run = created(&event);
        assert_eq!(run.orders.len(), 1);
        assert_eq!(run.orders[0].entitlement_id, "case-c");
        assert_eq!(run.control.as_ref().unwrap().count, 1);
    }

    #[test]
    fn a_period_already_paid_is_refused_naming_the_run() {
        let mut facts = facts(three());
        for entitlement in &facts.entitlements {
            facts
                .in_runs
                .insert(entitlement.entitlement_id.clone(), "run-earlier".into());
        }
        nothing()
            .when(create("2026-10", facts))
            .then_expect_error(CommandError::AlreadyInRun {
                period: "2026-10".into(),
                run_id: "run-earlier".into(),
            });
    }

    #[test]
    fn entitlements_new_since_the_last_run_get_a_run_of_their_own() {
        let mut facts = facts(three());
        facts.in_runs.insert("case-a".into(), "run-earlier".into());
        facts.in_runs.insert("case-b".into(), "run-earlier".into());
        let event = nothing().when(create("2026-10", facts)).creation();
        let run = created(&event);
        let entitlements: Vec<&str> = run
            .orders
            .iter()
            .map(|order| order.entitlement_id.as_str())
            .collect();
        assert_eq!(entitlements, ["case-c"]);
        assert_eq!(
            run.control.as_ref().unwrap().total,
            Some(pb::Money { fen: 120_000 })
        );
    }

    #[test]
    fn a_month_nothing_pays_in_is_refused() {
        nothing()
            .when(create("2026-09", facts(three())))
            .then_expect_error(CommandError::NothingDue {
                period: "2026-09".into(),
            });
    }

    #[test]
    fn a_run_is_created_once() {
        given(vec![created_run()])
            .when(create("2026-10", facts(three())))
            .then_expect_error(CommandError::RunExists { run_id: RUN.into() });
    }

    // ---- ApproveRun ----

    #[test]
    fn a_second_officer_who_re_keys_the_figures_approves() {
        given(vec![created_run()])
            .when(approve("approver-1", 3, 260_000))
            .then_expect_events(vec![RunEvent::Approved(pb::PaymentRunApproved {
                run_id: RUN.into(),
                approved_by: "approver-1".into(),
                control_count: 3,
                control_total: Some(pb::Money { fen: 260_000 }),
            })]);
    }

    #[test]
    fn the_creator_may_not_approve() {
        given(vec![created_run()])
            .when(approve("officer-1", 3, 260_000))
            .then_expect_error(CommandError::CreatorApproves);
    }

    #[test]
    fn figures_that_do_not_match_are_refused_naming_each() {
        given(vec![created_run()])
            .when(approve("approver-1", 3, 260_001))
            .then_expect_error(CommandError::ControlMismatch {
                fields: vec!["control_total"],
            });
        given(vec![created_run()])
            .when(approve("approver-1", 2, 0))
            .then_expect_error(CommandError::ControlMismatch {
                fields: vec!["control_count", "control_total"],
            });
    }

    #[test]
    fn a_run_is_approved_once() {
        let approved = given(vec![created_run()])
            .when(approve("approver-1", 3, 260_000))
            .events()
            .remove(0);
        given(vec![created_run(), approved])
            .when(approve("approver-2", 3, 260_000))
            .then_expect_error(CommandError::AlreadyApproved { run_id: RUN.into() });
    }

    #[test]
    fn no_run_no_approval() {
        nothing()
            .when(approve("approver-1", 3, 260_000))
            .then_expect_error(CommandError::NoRun { run_id: RUN.into() });
    }

    #[test]
    fn the_fold_counts_versions_and_the_status() {
        let approved = given(vec![created_run()])
            .when(approve("approver-1", 3, 260_000))
            .events()
            .remove(0);
        let events = vec![created_run(), approved];
        let run = RunState::fold(&events).unwrap();
        assert_eq!(run.version, 2);
        assert_eq!(run.status(), "approved");
        assert_eq!(run.approved_by.as_deref(), Some("approver-1"));
        assert_eq!(RunState::fold(&events[..1]).unwrap().status(), "created");
    }

    // ---- ExportBankFile / ImportBankResult ----

    fn approved_run() -> Vec<RunEvent> {
        let approved = given(vec![created_run()])
            .when(approve("approver-1", 3, 260_000))
            .events()
            .remove(0);
        vec![created_run(), approved]
    }

    /// The account intake sealed for `household_id`, in these tests: 6222 and 15 digits of
    /// SHA-256 of the id, and a name.
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

    /// The accounts of the test run's households (every run here has `created_run`'s orders).
    fn accounts() -> bank_files::AccountNumbers {
        let run = RunState::fold(&[created_run()]).unwrap();
        bank_files::AccountNumbers {
            households: run
                .orders
                .iter()
                .map(|order| {
                    let household = order.household_id.clone();
                    let number = account_of(&household).number;
                    (household, number)
                })
                .collect(),
            institutions: BTreeMap::new(),
        }
    }

    /// The test run's batch file in `format` (its orders in order-id order) and what the
    /// export's first pass finds of it.
    fn batch(format: Format) -> (Vec<u8>, crate::commands::BatchFacts) {
        let run = RunState::fold(&[created_run()]).unwrap();
        let mut orders: Vec<&pb::PaymentOrder> = run.orders.iter().collect();
        orders.sort_by(|left, right| left.order_id.cmp(&right.order_id));
        let lines: Vec<bank_files::BatchLine> = orders
            .iter()
            .map(|order| bank_files::BatchLine::of(order, &account_of(&order.household_id)))
            .collect();
        let file = bank_files::write_batch(format, &lines).unwrap();
        let facts = crate::commands::BatchFacts {
            sha256: bank_files::sha256_hex(&file),
            count: lines.len() as u64,
            total_fen: lines.iter().map(|line| line.amount_fen).sum(),
            without_account: 0,
            payees_on: EXPORTED_ON,
            unpayable_institutions: BTreeMap::new(),
        };
        (file, facts)
    }

    fn export(format: Format) -> Command {
        Command::ExportBankFile(ExportBankFile {
            run_id: RUN.into(),
            format,
            exported_by: "officer-1".into(),
            batch: batch(format).1,
        })
    }

    fn exported_run(format: Format) -> Vec<RunEvent> {
        let mut events = approved_run();
        let exported = given(events.clone()).when(export(format)).events();
        events.extend(exported);
        events
    }

    fn import(file: Vec<u8>) -> Command {
        Command::ImportBankResult(ImportBankResult {
            run_id: RUN.into(),
            file,
            recorded_by: "officer-1".into(),
            accounts: accounts(),
        })
    }

    /// The bank's result of the run's batch: every order paid but `failed`.
    fn result_lines(events: &[RunEvent], failed: &str) -> Vec<bank_files::ResultLine> {
        let run = RunState::fold(events).unwrap();
        run.orders
            .iter()
            .map(|order| {
                let line = bank_files::BatchLine::of(order, &account_of(&order.household_id));
                let paid = order.entitlement_id != failed;
                bank_files::ResultLine {
                    order_id: line.order_id,
                    account: line.account,
                    amount_fen: line.amount_fen,
                    paid,
                    reason: if paid {
                        String::new()
                    } else {
                        "账户已冻结".into()
                    },
                }
            })
            .collect()
    }

    fn result_file(format: Format, lines: &[bank_files::ResultLine]) -> Vec<u8> {
        let total = lines.iter().map(|line| line.amount_fen).sum();
        bank_files::write_result(format, lines, lines.len() as u64, total).unwrap()
    }

    // ---- events the log takes: bounded parts ----

    fn big_run(count: usize) -> Vec<RunEvent> {
        let entitlements = (0..count)
            .map(|index| entitlement(&format!("case-{index:07}"), "dibao", "990101001000", 50_000))
            .collect();
        vec![inline(
            given(Vec::new())
                .when(create("2026-12", facts(entitlements)))
                .events(),
        )]
    }

    fn encoded_len(event: &RunEvent) -> usize {
        use sunshine_proto::events::TypedEvent as _;
        event.encode_payload().len()
    }

    #[test]
    fn a_run_decided_a_chunk_at_a_time_is_the_run_decided_at_once() {
        let entitlements: Vec<Entitlement> = (0..4_500)
            .map(|index| {
                let program = if index % 3 == 0 { "tekun" } else { "dibao" };
                let street = if index % 2 == 0 {
                    "990101001000"
                } else {
                    "990101002000"
                };
                entitlement(&format!("case-{index:07}"), program, street, 40_000 + index)
            })
            .collect();
        // Some entitlements are paid by an earlier run of the period already.
        let mut facts = facts(entitlements.clone());
        for paid in entitlements.iter().step_by(7) {
            facts
                .in_runs
                .insert(paid.entitlement_id.clone(), "run-earlier".into());
        }
        let Command::CreateRun(create, facts) = create("2026-12", facts) else {
            unreachable!()
        };
        let at_once = handle(None, &Command::CreateRun(create.clone(), facts.clone())).unwrap();
        let mut assembly =
            RunAssembly::first_run(&create, facts.budget.clone(), facts.pay_on.clone()).unwrap();
        let mut chunked = Vec::new();
        for chunk in entitlements.chunks(1_234) {
            let orders = assembly.orders_due(chunk, &facts.in_runs).unwrap();
            chunked.extend(assembly.parts(orders));
        }
        chunked.push(RunEvent::Created(assembly.finish().unwrap()));
        // Parts first, each under the bound; the creation closes them with the totals.
        assert!(matches!(chunked.last(), Some(RunEvent::Created(_))));
        assert!(
            chunked
                .iter()
                .all(|event| encoded_len(event) <= PART_BYTES + 1_024)
        );
        assert_eq!(inline(chunked.clone()), inline(at_once.clone()));
        assert_eq!(
            RunState::fold(&chunked).unwrap().orders,
            RunState::fold(&at_once).unwrap().orders
        );
        let RunEvent::Created(closing) = chunked.last().unwrap() else {
            unreachable!()
        };
        let expected = 4_500 - entitlements.iter().step_by(7).count();
        assert_eq!(closing.order_count as usize, expected);
        assert!(closing.orders.is_empty());
    }

    #[test]
    fn a_run_whose_every_chunk_is_paid_already_is_refused_naming_the_run() {
        let entitlements = three();
        let in_runs: BTreeMap<String, String> = entitlements
            .iter()
            .map(|paid| (paid.entitlement_id.clone(), "run-earlier".to_owned()))
            .collect();
        let Command::CreateRun(create, facts) = create("2026-10", facts(entitlements.clone()))
        else {
            unreachable!()
        };
        let mut assembly =
            RunAssembly::first_run(&create, facts.budget.clone(), facts.pay_on.clone()).unwrap();
        for chunk in entitlements.chunks(2) {
            assert!(assembly.orders_due(chunk, &in_runs).unwrap().is_empty());
        }
        assert_eq!(
            assembly.finish(),
            Err(CommandError::AlreadyInRun {
                period: "2026-10".into(),
                run_id: "run-earlier".into()
            })
        );
    }

    #[test]
    fn a_run_is_appended_as_its_header_then_its_orders_in_bounded_parts_and_folds_the_same() {
        let decided = big_run(4_500);
        let RunEvent::Created(inline) = &decided[0] else {
            panic!("{decided:?}");
        };
        let appended = bounded(decided.clone());
        let [RunEvent::Created(header), parts @ ..] = &appended[..] else {
            panic!("{appended:?}");
        };
        assert!(header.orders.is_empty());
        assert_eq!(header.order_count, 4_500);
        assert_eq!(header.orders_sha256, orders_sha256(&inline.orders));
        assert_eq!(header.control, inline.control);
        let sizes: Vec<usize> = parts
            .iter()
            .map(|part| match part {
                RunEvent::OrdersAdded(added) => {
                    assert_eq!(
                        (added.run_id.as_str(), added.period.as_str()),
                        (RUN, "2026-12")
                    );
                    added.orders.len()
                }
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(sizes, [2_000, 2_000, 500]);
        for event in &appended {
            assert!(encoded_len(event) <= 512 * 1024, "{}", encoded_len(event));
        }
        // The stream folds to the same run as the one event with every order (the shape of
        // runs created before the split, which still fold).
        let mut folded = RunState::fold(&appended).unwrap();
        let whole = RunState::fold(&decided).unwrap();
        assert_eq!(folded.orders, whole.orders);
        assert_eq!(folded.version, 4);
        folded.version = whole.version;
        assert_eq!(folded, whole);
        // Folding by value (the store's load) is the same fold.
        let mut owned = RunState::default();
        for event in appended.clone() {
            owned.apply_owned(event);
        }
        assert_eq!(Some(owned), RunState::fold(&appended));
        // Bounded again, nothing changes.
        assert_eq!(bounded(appended.clone()), appended);
    }

    #[test]
    fn parts_are_bounded_by_bytes_as_well_as_by_count() {
        let orders: Vec<pb::PaymentOrder> = (0..100)
            .map(|index| pb::PaymentOrder {
                order_id: format!("order-{index}"),
                household_id: "h".repeat(10_000),
                ..Default::default()
            })
            .collect();
        let parts = parts(orders, ORDERS_PER_EVENT);
        assert!(parts.len() > 1, "{}", parts.len());
        assert_eq!(parts.iter().map(Vec::len).sum::<usize>(), 100);
        for part in &parts {
            let bytes: usize = part
                .iter()
                .map(|order| prost::Message::encoded_len(order) + 8)
                .sum();
            assert!(bytes <= PART_BYTES, "{bytes}");
        }
    }

    #[test]
    fn a_large_bank_result_and_returns_file_are_recorded_in_line_parts_before_their_event() {
        let results: Vec<pb::PaymentOrderResult> = (0..12_000)
            .map(|index| pb::PaymentOrderResult {
                order_id: format!("order-{index:05}"),
                paid: index % 7 != 0,
                failure_reason: if index % 7 == 0 {
                    "账户已冻结".into()
                } else {
                    String::new()
                },
            })
            .collect();
        let recorded = RunEvent::BankResultRecorded(pb::BankResultRecorded {
            run_id: RUN.into(),
            format: "BANK_FILE_FORMAT_CSV_UTF8".into(),
            sha256: "ab".repeat(32),
            results,
            recorded_by: "officer-1".into(),
        });
        let returned = RunEvent::BankReturnsRecorded(pb::BankReturnsRecorded {
            run_id: RUN.into(),
            returns: (0..6_000)
                .map(|index| pb::PaymentOrderReturn {
                    order_id: format!("order-{index:05}"),
                    reason: "账户已销户".into(),
                })
                .collect(),
            recorded_by: "officer-2".into(),
            ..Default::default()
        });
        let mut run = big_run(3);
        run.push(recorded.clone());
        run.push(returned.clone());
        let appended = bounded(run.clone());
        let kinds: Vec<&str> = appended
            .iter()
            .map(|event| match event {
                RunEvent::Created(_) => "created",
                RunEvent::OrdersAdded(_) => "orders",
                RunEvent::BankResultLinesAdded(lines) => {
                    assert_eq!(lines.results.len(), LINES_PER_EVENT);
                    "result lines"
                }
                RunEvent::BankResultRecorded(last) => {
                    assert_eq!(last.results.len(), 2_000);
                    "result"
                }
                RunEvent::BankReturnLinesAdded(_) => "return lines",
                RunEvent::BankReturnsRecorded(last) => {
                    assert_eq!(last.returns.len(), 1_000);
                    "returns"
                }
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(
            kinds,
            [
                "created",
                "orders",
                "result lines",
                "result lines",
                "result",
                "return lines",
                "returns"
            ]
        );
        let mut folded = RunState::fold(&appended).unwrap();
        let whole = RunState::fold(&run).unwrap();
        assert!(folded.result_recorded);
        assert_eq!(folded.results.len(), 12_000);
        assert_eq!(folded.returned.len(), 6_000);
        assert_eq!(folded.returns_recorded_by, ["officer-2"]);
        folded.version = whole.version;
        assert_eq!(folded, whole);
    }

    #[test]
    fn only_an_approved_run_is_exported() {
        given(vec![created_run()])
            .when(export(Format::CsvUtf8))
            .then_expect_error(CommandError::NotApproved { run_id: RUN.into() });
        let events = given(approved_run())
            .when(export(Format::FixedGbk))
            .events();
        let [RunEvent::BankFileExported(exported)] = &events[..] else {
            panic!("{events:?}");
        };
        assert_eq!(exported.format, "BANK_FILE_FORMAT_FIXED_GBK");
        assert_eq!(
            (exported.count, exported.total),
            (3, Some(pb::Money { fen: 260_000 }))
        );
        let (file, _) = batch(Format::FixedGbk);
        assert_eq!(exported.sha256, bank_files::sha256_hex(&file));
    }

    #[test]
    fn an_export_whose_orders_disagree_or_lack_an_account_is_refused() {
        let (_, facts) = batch(Format::CsvUtf8);
        let with = |batch: crate::commands::BatchFacts| {
            Command::ExportBankFile(ExportBankFile {
                run_id: RUN.into(),
                format: Format::CsvUtf8,
                exported_by: "officer-1".into(),
                batch,
            })
        };
        let short = crate::commands::BatchFacts {
            count: facts.count - 1,
            ..facts.clone()
        };
        given(approved_run())
            .when(with(short))
            .then_expect_error(CommandError::OrdersDisagree {
                run_id: RUN.into(),
                count: 2,
                total_fen: 260_000,
                control_count: 3,
                control_total_fen: 260_000,
            });
        let other_total = crate::commands::BatchFacts {
            total_fen: facts.total_fen + 1,
            ..facts.clone()
        };
        assert!(matches!(
            handle(RunState::fold(&approved_run()).as_ref(), &with(other_total)),
            Err(CommandError::OrdersDisagree { .. })
        ));
        let without = crate::commands::BatchFacts {
            without_account: 2,
            ..facts
        };
        given(approved_run())
            .when(with(without))
            .then_expect_error(CommandError::WithoutAccount { count: 2 });
    }

    #[test]
    fn a_result_whose_household_has_no_account_now_is_refused_on_its_line() {
        let format = Format::CsvUtf8;
        let events = exported_run(format);
        let lines = result_lines(&events, "");
        let run = RunState::fold(&events).unwrap();
        let mut numbers = accounts();
        let dropped = run.orders[0].household_id.clone();
        numbers.households.remove(&dropped);
        let command = Command::ImportBankResult(ImportBankResult {
            run_id: RUN.into(),
            file: result_file(format, &lines),
            recorded_by: "officer-1".into(),
            accounts: numbers,
        });
        let fields = violated(given(events).when(command));
        assert_eq!(fields.len(), 1, "{fields:?}");
    }

    #[test]
    fn the_result_pays_and_fails_orders_as_it_says() {
        for format in [Format::CsvUtf8, Format::FixedGbk] {
            let events = exported_run(format);
            let lines = result_lines(&events, "case-b");
            let recorded = given(events.clone())
                .when(import(result_file(format, &lines)))
                .events();
            let mut all = events.clone();
            all.extend(recorded);
            let run = RunState::fold(&all).unwrap();
            assert_eq!(run.status(), "result_recorded");
            let failed = order_id_for(RUN, "case-b");
            assert_eq!(run.order_state(&failed), ("failed", "账户已冻结"));
            assert_eq!(run.order_state(&order_id_for(RUN, "case-a")).0, "paid");
            let states = run.order_states();
            assert_eq!(
                (states.paid_count, states.failed_count, states.pending_count),
                (2, 1, 0)
            );
            assert_eq!(states.failed_total, Some(pb::Money { fen: 80_000 }));
            // One result per run; and no export after it.
            given(all.clone())
                .when(import(result_file(format, &lines)))
                .then_expect_error(CommandError::ResultRecorded { run_id: RUN.into() });
            given(all)
                .when(export(format))
                .then_expect_error(CommandError::ResultRecorded { run_id: RUN.into() });
        }
    }

    #[test]
    fn a_result_needs_an_export() {
        given(approved_run())
            .when(import(Vec::new()))
            .then_expect_error(CommandError::NotExported { run_id: RUN.into() });
    }

    fn violated(when: When) -> Vec<String> {
        match when.0 {
            Err(CommandError::BadResultFile { violations }) => violations
                .into_iter()
                .map(|violation| violation.field)
                .collect(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_result_that_is_not_the_batch_is_refused_naming_every_line() {
        let format = Format::CsvUtf8;
        let events = exported_run(format);
        let good = result_lines(&events, "case-b");
        // A changed amount, a changed account, an unknown order: each its line.
        let mut bad = good.clone();
        bad[0].amount_fen += 1;
        bad[1].account = "6222000000000000000".into();
        bad[2].order_id = order_id_for(RUN, "case-z");
        let fields = violated(given(events.clone()).when(import(result_file(format, &bad))));
        assert_eq!(fields, ["lines[0]", "lines[1]", "lines[2]", "lines"]);
        // A missing order.
        let fields = violated(given(events.clone()).when(import(result_file(format, &good[..2]))));
        assert_eq!(fields, ["lines"]);
        // A file of the other format is not this one.
        let fields = violated(given(events).when(import(result_file(Format::FixedGbk, &good))));
        assert_eq!(
            fields,
            ["lines[0]", "lines[1]", "lines[2]", "lines[3]", "lines[4]"]
        );
    }

    // ---- CreateRepayRun ----

    const REPAY: &str = "0190f3c4-0000-5000-8000-000000000002";

    fn repay(facts: RepayFacts) -> Command {
        Command::CreateRepayRun(
            CreateRepayRun {
                run_id: REPAY.into(),
                period: month("2026-10"),
                created_by: "officer-1".into(),
                district: OrgUnitCode::parse("990101000000").unwrap(),
            },
            facts,
        )
    }

    fn failed_orders() -> Vec<crate::commands::FailedOrder> {
        let run = RunState::fold(&[created_run()]).unwrap();
        run.orders
            .iter()
            .filter(|order| order.entitlement_id != "case-a")
            .map(|order| crate::commands::FailedOrder {
                order: order.clone(),
                failure_reason: "账户已销户".into(),
            })
            .collect()
    }

    #[test]
    fn a_repay_run_pays_each_failed_order_again_naming_it() {
        let facts = RepayFacts {
            failed: failed_orders(),
            repaid: BTreeMap::new(),
            budget: budget(),
        };
        let event = nothing().when(repay(facts)).creation();
        let run = created(&event);
        let repaid: Vec<(&str, &str, i64)> = run
            .orders
            .iter()
            .map(|order| {
                (
                    order.repays_order_id.as_str(),
                    order.entitlement_id.as_str(),
                    order.amount.unwrap_or_default().fen,
                )
            })
            .collect();
        let mut expected = [
            (order_id_for(RUN, "case-b"), "case-b", 80_000),
            (order_id_for(RUN, "case-c"), "case-c", 120_000),
        ];
        expected.sort();
        let expected: Vec<(&str, &str, i64)> = expected
            .iter()
            .map(|(id, entitlement, fen)| (id.as_str(), *entitlement, *fen))
            .collect();
        assert_eq!(repaid, expected);
        assert!(
            run.orders
                .iter()
                .all(|order| order.order_id != order.repays_order_id)
        );
        assert_eq!(run.control.as_ref().unwrap().count, 2);
    }

    #[test]
    fn each_order_names_its_fund_and_the_budget_is_not_overdrawn() {
        let mut grant = entitlement("assist-first-e1", "temporary", "990101001000", 5_000_000);
        grant.kind = Kind::OneOff;
        let event = nothing()
            .when(create(
                "2026-10",
                facts(vec![
                    entitlement("case-a", "dibao", "990101002000", 60_000),
                    grant.clone(),
                ]),
            ))
            .creation();
        let funds: Vec<(&str, &str)> = created(&event)
            .orders
            .iter()
            .map(|order| (order.entitlement_id.as_str(), order.fund.as_str()))
            .collect();
        assert_eq!(
            funds,
            [("assist-first-e1", "emergency"), ("case-a", "dibao")]
        );
        // The emergency fund's 2026 budget is 250 000.00 yuan; 200 000.00 are committed, and
        // the grant of 50 000.00 fits exactly, one fen more does not.
        let mut committed = facts(vec![grant.clone()]);
        committed.budget.committed.insert(
            ("emergency".into(), crate::funds::ASSIST_FIRST.into()),
            Money::from_fen(20_000_000),
        );
        nothing()
            .when(create("2026-10", committed.clone()))
            .events();
        grant.amount = Money::from_fen(5_000_001);
        committed.entitlements = vec![grant];
        nothing()
            .when(create("2026-10", committed))
            .then_expect_error(CommandError::Budget(BudgetRefusal::OverBudget {
                fund: "emergency".into(),
                program: crate::funds::ASSIST_FIRST.into(),
                year: 2026,
                remaining: Money::from_fen(5_000_000),
                needed: Money::from_fen(5_000_001),
            }));
        // A program no fund pays is refused, naming it.
        let unpaid = nothing()
            .when(create(
                "2026-10",
                facts(vec![entitlement(
                    "case-x",
                    "longevity",
                    "990101002000",
                    100,
                )]),
            ))
            .0
            .unwrap_err();
        assert!(unpaid.to_string().contains("longevity"), "{unpaid}");
    }

    #[test]
    fn a_failed_order_is_re_paid_once() {
        let mut facts = RepayFacts {
            failed: failed_orders(),
            repaid: BTreeMap::new(),
            budget: budget(),
        };
        for failed in &facts.failed {
            facts
                .repaid
                .insert(failed.order.order_id.clone(), "run-repay-earlier".into());
        }
        nothing()
            .when(repay(facts))
            .then_expect_error(CommandError::AlreadyRepaid {
                period: "2026-10".into(),
                run_id: "run-repay-earlier".into(),
            });
        nothing()
            .when(repay(RepayFacts::default()))
            .then_expect_error(CommandError::NothingFailed {
                period: "2026-10".into(),
            });
    }

    // ---- settlement: returns (退票) and the reconciliation's close ----

    /// A run exported in `format` whose result paid case-a and case-c and failed case-b.
    fn settled_run(format: Format) -> Vec<RunEvent> {
        let mut events = exported_run(format);
        let lines = result_lines(&events, "case-b");
        let recorded = given(events.clone())
            .when(import(result_file(format, &lines)))
            .events();
        events.extend(recorded);
        events
    }

    fn returns_command(file: Vec<u8>, by: &str) -> Command {
        Command::ImportBankReturns(ImportBankReturns {
            run_id: RUN.into(),
            file,
            recorded_by: by.into(),
            accounts: accounts(),
        })
    }

    /// The returns lines of `cases`' orders, as the batch carried them.
    fn returned_lines(events: &[RunEvent], cases: &[&str]) -> Vec<bank_files::ResultLine> {
        let run = RunState::fold(events).unwrap();
        cases
            .iter()
            .map(|case| {
                let order = run
                    .orders
                    .iter()
                    .find(|order| order.entitlement_id == *case)
                    .unwrap();
                let line = bank_files::BatchLine::of(order, &account_of(&order.household_id));
                bank_files::ResultLine {
                    order_id: line.order_id,
                    account: line.account,
                    amount_fen: line.amount_fen,
                    paid: false,
                    reason: "账户已销户".into(),
                }
            })
            .collect()
    }

    fn returns_file(format: Format, lines: &[bank_files::ResultLine]) -> Vec<u8> {
        let total = lines.iter().map(|line| line.amount_fen).sum();
        bank_files::write_returns(format, lines, lines.len() as u64, total).unwrap()
    }

    fn returns_violations(when: When) -> Vec<String> {
        match when.0 {
            Err(CommandError::BadReturnsFile { violations }) => violations
                .into_iter()
                .map(|violation| violation.field)
                .collect(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_return_makes_a_paid_order_returned_in_either_format() {
        for format in [Format::CsvUtf8, Format::FixedGbk] {
            let mut events = settled_run(format);
            let file = returns_file(format, &returned_lines(&events, &["case-a"]));
            let recorded = given(events.clone())
                .when(returns_command(file, "officer-2"))
                .events();
            let [RunEvent::BankReturnsRecorded(returns)] = &recorded[..] else {
                panic!("{recorded:?}");
            };
            assert_eq!(returns.format, format.as_str());
            assert_eq!(returns.returns.len(), 1);
            events.extend(recorded);
            let run = RunState::fold(&events).unwrap();
            let returned = order_id_for(RUN, "case-a");
            assert_eq!(run.order_state(&returned), ("returned", "账户已销户"));
            let states = run.order_states();
            assert_eq!(
                (
                    states.paid_count,
                    states.failed_count,
                    states.returned_count
                ),
                (1, 1, 1)
            );
            assert_eq!(states.paid_total, Some(pb::Money { fen: 120_000 }));
            assert_eq!(states.returned_total, Some(pb::Money { fen: 60_000 }));
            assert_eq!(run.reconciliation(), "open");
        }
    }

    #[test]
    fn a_returns_file_that_does_not_match_is_refused_naming_every_line() {
        let format = Format::CsvUtf8;
        let mut events = settled_run(format);
        // case-b failed: not paid; an unknown order; a changed amount and a changed account.
        let mut lines = returned_lines(&events, &["case-b", "case-a", "case-c"]);
        lines.push(bank_files::ResultLine {
            order_id: order_id_for(RUN, "case-z"),
            ..lines[0].clone()
        });
        lines[1].amount_fen += 1;
        lines[2].account = "6222000000000000000".into();
        let fields = returns_violations(
            given(events.clone()).when(returns_command(returns_file(format, &lines), "officer-1")),
        );
        assert_eq!(fields, ["lines[0]", "lines[1]", "lines[2]", "lines[3]"]);
        // A result file is no returns file; the other format neither; nor an empty one.
        let result = result_file(format, &result_lines(&events, "case-b"));
        let fields = returns_violations(given(events.clone()).when(returns_command(result, "o")));
        assert_eq!(fields, ["lines[0]", "lines[1]", "lines[2]"]);
        let other = returns_file(Format::FixedGbk, &returned_lines(&events, &["case-a"]));
        let fields = returns_violations(given(events.clone()).when(returns_command(other, "o")));
        assert_eq!(fields, ["lines[0]", "lines[1]", "lines[2]"]);
        let empty = returns_file(format, &[]);
        let fields = returns_violations(given(events.clone()).when(returns_command(empty, "o")));
        assert_eq!(fields, ["lines"]);
        // An order returned already.
        let once = returns_file(format, &returned_lines(&events, &["case-a"]));
        events.extend(
            given(events.clone())
                .when(returns_command(once.clone(), "officer-1"))
                .events(),
        );
        let fields = returns_violations(given(events).when(returns_command(once, "officer-1")));
        assert_eq!(fields, ["lines[0]"]);
    }

    #[test]
    fn returns_need_the_result() {
        let events = exported_run(Format::CsvUtf8);
        let file = returns_file(Format::CsvUtf8, &returned_lines(&events, &["case-a"]));
        given(events)
            .when(returns_command(file, "officer-1"))
            .then_expect_error(CommandError::NoResult { run_id: RUN.into() });
    }

    fn close(by: &str, paid: (u32, i64), unpaid: (u32, i64)) -> Command {
        Command::CloseReconciliation(CloseReconciliation {
            run_id: RUN.into(),
            expected_version: 0,
            paid_count: paid.0,
            paid_total: Money::from_fen(paid.1),
            unpaid_count: unpaid.0,
            unpaid_total: Money::from_fen(unpaid.1),
            closed_by: by.into(),
        })
    }

    #[test]
    fn a_second_approver_closes_the_reconciliation_once_after_which_no_return_is_taken() {
        let mut events = settled_run(Format::CsvUtf8);
        let file = returns_file(Format::CsvUtf8, &returned_lines(&events, &["case-a"]));
        events.extend(
            given(events.clone())
                .when(returns_command(file, "officer-2"))
                .events(),
        );
        // Paid: case-c 120 000; failed or returned: case-b 80 000 and case-a 60 000.
        let closed = given(events.clone())
            .when(close("approver-2", (1, 120_000), (2, 140_000)))
            .events();
        assert_eq!(
            closed,
            [RunEvent::ReconciliationClosed(pb::ReconciliationClosed {
                run_id: RUN.into(),
                closed_by: "approver-2".into(),
                paid_count: 1,
                paid_total: Some(pb::Money { fen: 120_000 }),
                unpaid_count: 2,
                unpaid_total: Some(pb::Money { fen: 140_000 }),
            })]
        );
        let mut all = events.clone();
        all.extend(closed);
        let run = RunState::fold(&all).unwrap();
        assert_eq!(
            (run.status(), run.reconciliation()),
            ("reconciled", "closed")
        );
        given(all.clone())
            .when(close("approver-3", (1, 120_000), (2, 140_000)))
            .then_expect_error(CommandError::ReconciliationClosed { run_id: RUN.into() });
        let more = returns_file(Format::CsvUtf8, &returned_lines(&all, &["case-c"]));
        given(all)
            .when(returns_command(more, "officer-2"))
            .then_expect_error(CommandError::ReconciliationClosed { run_id: RUN.into() });
    }

    #[test]
    fn whoever_took_part_does_not_close_and_wrong_figures_are_named() {
        let mut events = settled_run(Format::CsvUtf8);
        let file = returns_file(Format::CsvUtf8, &returned_lines(&events, &["case-a"]));
        events.extend(
            given(events.clone())
                .when(returns_command(file, "officer-2"))
                .events(),
        );
        for (who, did) in [
            ("officer-1", "created the run"),
            ("officer-2", "recorded the run's returns"),
        ] {
            given(events.clone())
                .when(close(who, (1, 120_000), (2, 140_000)))
                .then_expect_error(CommandError::CloserTookPart { did });
        }
        // The result's recorder (officer-1 also created it: a run of another creator).
        let mut other_creator = events.clone();
        if let RunEvent::Created(created) = &mut other_creator[0] {
            created.created_by = "officer-0".into();
        }
        given(other_creator)
            .when(close("officer-1", (1, 120_000), (2, 140_000)))
            .then_expect_error(CommandError::CloserTookPart {
                did: "recorded the run's bank result",
            });
        given(events.clone())
            .when(close("approver-2", (2, 120_000), (2, 140_001)))
            .then_expect_error(CommandError::ControlMismatch {
                fields: vec!["paid_count", "unpaid_total"],
            });
        given(exported_run(Format::CsvUtf8))
            .when(close("approver-2", (0, 0), (0, 0)))
            .then_expect_error(CommandError::NoResult { run_id: RUN.into() });
    }

    // ---- Payees: care institutions (集中供养) ----

    /// The EXAMPLE district's care home (`funds/example-district.toml`) and its account.
    const CARE_HOME: &str = "12990100MB0000001P";
    const CARE_HOME_ACCOUNT: &str = "6228480099001234567";

    /// The test run, approved, with case-c (tekun) supported centrally by [`CARE_HOME`].
    fn institution_run() -> Vec<RunEvent> {
        let mut entitlements = three();
        entitlements[2].payee = Payee::CareInstitution(CARE_HOME.into());
        let created = inline(
            nothing()
                .when(create("2026-10", facts(entitlements)))
                .events(),
        );
        let approved = given(vec![created.clone()])
            .when(approve("approver-1", 3, 260_000))
            .events()
            .remove(0);
        vec![created, approved]
    }

    #[test]
    fn an_order_carries_its_entitlement_s_payee_and_a_repay_keeps_it() {
        let run = RunState::fold(&institution_run()).unwrap();
        let payees: BTreeMap<&str, &str> = run
            .orders
            .iter()
            .map(|order| {
                (
                    order.entitlement_id.as_str(),
                    order.care_institution_code.as_str(),
                )
            })
            .collect();
        assert_eq!(
            payees,
            BTreeMap::from([("case-a", ""), ("case-b", ""), ("case-c", CARE_HOME)])
        );
        let failed = run
            .orders
            .iter()
            .filter(|order| order.entitlement_id == "case-c")
            .map(|order| FailedOrder {
                order: order.clone(),
                failure_reason: "账户已冻结".into(),
            })
            .collect();
        let event = nothing()
            .when(repay(RepayFacts {
                failed,
                repaid: BTreeMap::new(),
                budget: budget(),
            }))
            .creation();
        let repaid = &created(&event).orders;
        assert_eq!(repaid.len(), 1);
        assert_eq!(repaid[0].care_institution_code, CARE_HOME);
    }

    fn export_with(batch: crate::commands::BatchFacts) -> Command {
        Command::ExportBankFile(ExportBankFile {
            run_id: RUN.into(),
            format: Format::CsvUtf8,
            exported_by: "officer-1".into(),
            batch,
        })
    }

    #[test]
    fn an_export_paying_an_institution_without_an_account_names_the_institution() {
        let unpayable = crate::commands::BatchFacts {
            unpayable_institutions: BTreeMap::from([(
                CARE_HOME.to_owned(),
                "closed since 2026-01-01".to_owned(),
            )]),
            ..batch(Format::CsvUtf8).1
        };
        let run = RunState::fold(&institution_run()).unwrap();
        let refused = handle(Some(&run), &export_with(unpayable)).unwrap_err();
        assert!(
            matches!(refused, CommandError::InstitutionUnpayable { on, .. } if on == EXPORTED_ON),
            "{refused:?}"
        );
        let message = refused.to_string();
        assert!(
            message.contains(CARE_HOME)
                && message.contains("closed since 2026-01-01")
                && message.contains("2026-12-08"),
            "{message}"
        );
        // No household, no person: only the institution.
        for order in &run.orders {
            assert!(!message.contains(order.household_id.as_str()), "{message}");
        }
        // Many unknown codes: ten named, the rest counted.
        let many = crate::commands::BatchFacts {
            unpayable_institutions: (0..25)
                .map(|at| {
                    (
                        format!("code-{at:02}"),
                        "not in the institutions file".into(),
                    )
                })
                .collect(),
            ..batch(Format::CsvUtf8).1
        };
        let message = handle(Some(&run), &export_with(many))
            .unwrap_err()
            .to_string();
        assert!(
            message.contains("code-09")
                && !message.contains("code-10")
                && message.contains("and 15 more"),
            "{message}"
        );
    }

    #[test]
    fn the_export_records_the_day_it_took_the_institutions_accounts_on() {
        let events = given(institution_run())
            .when(export(Format::CsvUtf8))
            .events();
        let RunEvent::BankFileExported(exported) = &events[0] else {
            panic!("not an export: {events:?}");
        };
        assert_eq!(exported.payees_on, Some(date_of(EXPORTED_ON)));
        let mut run = RunState::fold(&institution_run()).unwrap();
        assert_eq!(run.last_export_payees_on, None);
        run.apply(&events[0]);
        assert_eq!(run.last_export_payees_on, Some(EXPORTED_ON));
    }

    #[test]
    fn an_institution_s_order_is_matched_against_the_institution_s_account() {
        let mut events = institution_run();
        events.extend(given(events.clone()).when(export(Format::CsvUtf8)).events());
        let run = RunState::fold(&events).unwrap();
        let mut payees = accounts();
        payees
            .institutions
            .insert(CARE_HOME.into(), CARE_HOME_ACCOUNT.into());
        let lines: Vec<bank_files::ResultLine> = run
            .orders
            .iter()
            .map(|order| bank_files::ResultLine {
                order_id: order.order_id.clone(),
                account: if order.care_institution_code.is_empty() {
                    account_of(&order.household_id).number
                } else {
                    CARE_HOME_ACCOUNT.into()
                },
                amount_fen: order.amount.unwrap_or_default().fen,
                paid: true,
                reason: String::new(),
            })
            .collect();
        let with = |accounts: bank_files::AccountNumbers, lines: &[bank_files::ResultLine]| {
            Command::ImportBankResult(ImportBankResult {
                run_id: RUN.into(),
                file: result_file(Format::CsvUtf8, lines),
                recorded_by: "officer-1".into(),
                accounts,
            })
        };
        let at = run
            .orders
            .iter()
            .position(|order| !order.care_institution_code.is_empty())
            .unwrap();
        let bad_lines = |refused: Result<Vec<RunEvent>, CommandError>| match refused {
            Err(CommandError::BadResultFile { violations }) => violations,
            other => panic!("not refused on its lines: {other:?}"),
        };
        // The household's own account on the institution's order's line is not what was paid.
        let mut households = lines.clone();
        households[at].account = account_of(&run.orders[at].household_id).number;
        let violations = bad_lines(handle(Some(&run), &with(payees.clone(), &households)));
        assert_eq!(
            violations
                .iter()
                .map(|violation| violation.field.clone())
                .collect::<Vec<_>>(),
            [format!("lines[{at}]")]
        );
        // An institution with no account on the export's day never matches, and says so.
        let mut without = payees.clone();
        without.institutions.clear();
        let violations = bad_lines(handle(Some(&run), &with(without, &lines)));
        assert_eq!(violations.len(), 1, "{violations:?}");
        assert!(
            violations[0].description.contains("care institution"),
            "{violations:?}"
        );
        // The bank paid the institution: recorded.
        let recorded = handle(Some(&run), &with(payees, &lines)).unwrap();
        assert!(
            recorded
                .iter()
                .any(|event| matches!(event, RunEvent::BankResultRecorded(_))),
            "{recorded:?}"
        );
    }
}
