//! Payment's own tables and the projection that keeps them:
//!
//! - `payment_cases`: review's cases as payment needs them (household, program, the hukou's
//!   street-town), from `CaseOpened` and `CaseFollowedHousehold`;
//! - `payment_entitlements` and `payment_entitlement_adjustments`: what each case entitles
//!   its household to ([`Entitlement`]), and whom it pays (the household's account, or the
//!   care institution of a centrally supported 特困 person), from review's decisions;
//! - `payment_run_orders`, the **guard table**: one row per (entitlement, period), the run
//!   that has its order. Its primary key is the rule "one order per entitlement per period":
//!   `CreateRun` writes the rows in the append's own transaction, a page at a time
//!   ([`claim_orders`]; [`OrderClaims`] is the same claim as an `AppendGuard`), so two runs
//!   of one period racing each other cannot both pay an entitlement; the projection writes
//!   the same rows from `PaymentRunOrdersAdded` (or, in a run created before the orders were
//!   split off, `PaymentRunCreated`), so a rebuild ends in the same table;
//! - `payment_orders`: every order of every run and its state at the bank (pending, paid,
//!   failed and the bank's reason, returned), from the run's orders, `BankResultRecorded`
//!   and `BankReturnsRecorded` (and their line parts before them): the failed and returned orders a re-pay run pays again;
//! - `payment_repay_orders`, the re-pay **guard table**: one row per failed order, the re-pay
//!   run that pays it again, written like `payment_run_orders` (in the append's transaction,
//!   and by the projection), so that re-paying twice adds no order;
//! - `payment_medical_claims`, the medical claims' **guard table** ([`MedicalClaimGuard`]):
//!   one row per assessed claim, (patient, year, sequence) unique, written in the claim's
//!   append and by the projection; what a patient's claims paid in a year is a sum over it.
//!   An assessed claim that pays anything is also a one-off entitlement `medical-<claim id>`
//!   in `payment_entitlements`, from `MedicalClaimAssessed`;
//! - `payment_ledger_lines`: the ledger, two lines per order the bank paid (its posting,
//!   [`crate::ledger`]), from `BankResultRecorded`, and two more per order returned (its
//!   reversal), from `BankReturnsRecorded`; the trial balance and the funds' balances
//!   are sums over it ([`trial_balance`], [`fund_balances`]).
//!
//! - `payment_recovery_claims`: each recovery claim (追缴) — its order, household, program,
//!   district, amount, what is outstanding, repaid and written off, and its status (a claim
//!   whose order was returned is `cancelled`) — from `payment-recovery-<id>`; its
//!   events' postings go to `payment_ledger_lines` beside the orders' ([`crate::recovery`]).
//!
//! - `payment_accounts`: each household's latest payment account **as intake sealed it**
//!   (ciphertext only, from intake's `HouseholdRegistered.sealed_payment_account`; see
//!   [`HeardFromIntake`]): opened only by the bank file's export, the matching of the bank's
//!   answers and the 纪委's export's account tail, never stored opened.
//!
//! The queries read these tables (a household's orders, the district's runs, the monthly
//! report's groups, a run's orders for the 纪委's export) through the functions below, never
//! the runs' creation events, so the orders' storage can change under them.
//!
//! What payment hears of review's case streams is declared once ([`HeardFromReview`]) and read
//! with `decode_known`: review's other case events are none of payment's business.

use std::collections::BTreeMap;

use sqlx::{AnyConnection, AnyPool, Row as _};
use sunshine_domain::{Money, Month, OrgUnitCode};
use sunshine_eventlog::AppendGuard;
use sunshine_eventlog::RecordedEvent;
use sunshine_eventlog::consumer::{HandlerError, HandlerFuture, Projection};
use sunshine_eventlog::schema::Migration;
use sunshine_platform::config::DatabaseKind;
use sunshine_proto::events::StreamEvent;
use sunshine_proto::v1 as pb;

use crate::aggregate::RunEvent;
use crate::cash::CashEvent;
use crate::entitlements::{Adjustment, Entitlement, Kind, Payee};
use crate::ledger::{self, Posting, TrialBalance};
use crate::medical::{self, ClaimCase, MedicalEvent};
use crate::recovery::{self, ClaimState, RecoveryEvent};

pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        description: "payment: review's cases, entitlements and their adjustments, one order per entitlement per period",
        script: |_kind: DatabaseKind| {
            "CREATE TABLE payment_cases (
            case_id TEXT PRIMARY KEY,
            household_id TEXT NOT NULL,
            program_code TEXT NOT NULL,
            street_town_code TEXT NOT NULL
        );
        CREATE TABLE payment_entitlements (
            entitlement_id TEXT PRIMARY KEY,
            case_id TEXT NOT NULL,
            household_id TEXT NOT NULL,
            program_code TEXT NOT NULL,
            street_town_code TEXT NOT NULL,
            kind TEXT NOT NULL,
            amount_fen BIGINT NOT NULL,
            start_month TEXT NOT NULL,
            suspended_from TEXT NOT NULL DEFAULT '',
            terminated_from TEXT NOT NULL DEFAULT ''
        );
        CREATE INDEX payment_entitlements_case ON payment_entitlements (case_id);
        CREATE TABLE payment_entitlement_adjustments (
            entitlement_id TEXT NOT NULL,
            case_version BIGINT NOT NULL,
            effective_month TEXT NOT NULL,
            amount_fen BIGINT NOT NULL,
            PRIMARY KEY (entitlement_id, case_version)
        );
        CREATE TABLE payment_run_orders (
            entitlement_id TEXT NOT NULL,
            period TEXT NOT NULL,
            run_id TEXT NOT NULL,
            order_id TEXT NOT NULL,
            PRIMARY KEY (entitlement_id, period)
        );
        CREATE INDEX payment_run_orders_period ON payment_run_orders (period, entitlement_id);"
                .to_owned()
        },
    },
    Migration {
        version: 2,
        description: "payment: every order and its state at the bank; one re-pay per failed order",
        script: |_kind: DatabaseKind| {
            "CREATE TABLE payment_orders (
            order_id TEXT PRIMARY KEY,
            run_id TEXT NOT NULL,
            period TEXT NOT NULL,
            entitlement_id TEXT NOT NULL,
            case_id TEXT NOT NULL,
            household_id TEXT NOT NULL,
            program_code TEXT NOT NULL,
            street_town_code TEXT NOT NULL,
            amount_fen BIGINT NOT NULL,
            repays_order_id TEXT NOT NULL DEFAULT '',
            state TEXT NOT NULL DEFAULT 'pending',
            failure_reason TEXT NOT NULL DEFAULT ''
        );
        CREATE INDEX payment_orders_period_state ON payment_orders (period, state, order_id);
        CREATE TABLE payment_repay_orders (
            failed_order_id TEXT PRIMARY KEY,
            run_id TEXT NOT NULL,
            order_id TEXT NOT NULL
        );"
            .to_owned()
        },
    },
    Migration {
        version: 3,
        description: "payment: the ledger, two lines per order the bank paid; each order's fund, and whether its run is approved",
        script: |_kind: DatabaseKind| {
            "CREATE TABLE payment_ledger_lines (
            order_id TEXT NOT NULL,
            line BIGINT NOT NULL,
            run_id TEXT NOT NULL,
            fund TEXT NOT NULL,
            account TEXT NOT NULL,
            debit_fen BIGINT NOT NULL,
            credit_fen BIGINT NOT NULL,
            PRIMARY KEY (order_id, line)
        );
        CREATE INDEX payment_ledger_lines_account ON payment_ledger_lines (account);
        ALTER TABLE payment_orders ADD COLUMN fund TEXT NOT NULL DEFAULT '';
        ALTER TABLE payment_orders ADD COLUMN approved BIGINT NOT NULL DEFAULT 0;"
                .to_owned()
        },
    },
    Migration {
        version: 4,
        description: "payment: serious-illness medical claims, one row per claim, one per (patient, year, sequence)",
        script: |_kind: DatabaseKind| {
            "CREATE TABLE payment_medical_claims (
            claim_id TEXT PRIMARY KEY,
            case_id TEXT NOT NULL,
            patient_member_id TEXT NOT NULL,
            year BIGINT NOT NULL,
            seq BIGINT NOT NULL,
            amount_fen BIGINT NOT NULL,
            UNIQUE (patient_member_id, year, seq)
        );
        CREATE INDEX payment_medical_claims_case ON payment_medical_claims (case_id, claim_id);"
                .to_owned()
        },
    },
    // ---- Recovery (追缴) ----
    // Version 8, not 4: the settlement and calendar slices written beside it add their own.
    Migration {
        version: 8,
        description: "payment: recovery claims, one per order paid after its entitlement's termination; the termination's cause",
        script: |_kind: DatabaseKind| {
            "CREATE TABLE payment_recovery_claims (
            claim_id TEXT PRIMARY KEY,
            order_id TEXT NOT NULL UNIQUE,
            household_id TEXT NOT NULL,
            program_code TEXT NOT NULL,
            district_code TEXT NOT NULL,
            amount_fen BIGINT NOT NULL,
            outstanding_fen BIGINT NOT NULL,
            status TEXT NOT NULL
        );
        CREATE INDEX payment_recovery_claims_district ON payment_recovery_claims (district_code, claim_id);
        CREATE INDEX payment_orders_entitlement ON payment_orders (entitlement_id, period);
        CREATE INDEX payment_orders_run ON payment_orders (run_id, state);
        ALTER TABLE payment_entitlements ADD COLUMN terminated_cause TEXT NOT NULL DEFAULT '';"
                .to_owned()
        },
    },
    // ---- Queries ----
    // Version 10, not 9: the benchmark's slice written beside it may take 9.
    Migration {
        version: 10,
        description: "payment: what each recovery claim had repaid and written off (the monthly report); orders by household",
        script: |_kind: DatabaseKind| {
            "ALTER TABLE payment_recovery_claims ADD COLUMN repaid_fen BIGINT NOT NULL DEFAULT 0;
        ALTER TABLE payment_recovery_claims ADD COLUMN written_off_fen BIGINT NOT NULL DEFAULT 0;
        CREATE INDEX payment_orders_household ON payment_orders (household_id, period, order_id);"
                .to_owned()
        },
    },
    // ---- Accounts: intake's sealed payment accounts; the export's pages ----
    // Version 14: far from the others, so that slices written beside this one keep theirs.
    Migration {
        version: 14,
        description: "payment: each household's payment account as intake sealed it; a run's orders in order-id order",
        script: |kind: DatabaseKind| {
            let bytes = match kind {
                DatabaseKind::Sqlite => "BLOB",
                DatabaseKind::Postgres => "BYTEA",
            };
            format!(
                "CREATE TABLE payment_accounts (
            household_id TEXT PRIMARY KEY,
            sealed_account {bytes} NOT NULL,
            log_position BIGINT NOT NULL
        );
        CREATE INDEX payment_orders_run_order ON payment_orders (run_id, order_id);"
            )
        },
    },
    // ---- The budget at approval ----
    // Version 16: apart from the slices written beside it (accounts took 14).
    Migration {
        version: 16,
        description: "payment: one lock row per fund and year, taken by each approval that commits money of that fund",
        script: |_kind: DatabaseKind| {
            "CREATE TABLE payment_budget_locks (
            fund TEXT NOT NULL,
            year BIGINT NOT NULL,
            approvals BIGINT NOT NULL DEFAULT 0,
            PRIMARY KEY (fund, year)
        );"
            .to_owned()
        },
    },
    // ---- What a run's creation writes ----
    Migration {
        version: 17,
        description: "payment: no index of payment_orders keyed at random (order id, household) but its primary key; households found through their entitlements; what each approval committed",
        script: |_kind: DatabaseKind| {
            // A run inserts its orders in entitlement-id order, and an index whose key follows
            // that order (or is one value for the whole run) takes them at its right edge; one
            // keyed by the order id (a UUID v5: random) takes each in a random leaf, and with the
            // run's 1,000,000 orders its leaves outgrow the buffer cache. Measured on the shared
            // PostgreSQL (loaded): 1,000,000 rows into the table with all six indexes 88–116 s,
            // with the first three of these changes 40–53 s; quiet, with them 22 s, and without
            // the household index too 12–14 s (the primary key alone: 7.4 s). The primary key
            // stays (orders are found by id); `(run_id, state)` serves a run's orders (the
            // export sorts them by id, once per pass); the failed and returned orders of a
            // period are few, sorted when read; a household's orders are found through its
            // entitlements (a few; their index is on the small table that changes rarely) and
            // `(entitlement_id, period)`.
            //
            // And what each approved run (or cash payment) committed of each fund, a few rows
            // per run written by the approval's guard: the approval no longer marks a million
            // order rows approved in its transaction to sum them again.
            "DROP INDEX payment_orders_run_order;
        DROP INDEX payment_orders_period_state;
        CREATE INDEX payment_orders_period_state ON payment_orders (period, state);
        DROP INDEX payment_orders_household;
        CREATE INDEX payment_entitlements_household ON payment_entitlements (household_id);
        CREATE TABLE payment_run_commitments (
            run_id TEXT NOT NULL,
            year BIGINT NOT NULL,
            fund TEXT NOT NULL,
            budget_program TEXT NOT NULL,
            amount_fen BIGINT NOT NULL,
            PRIMARY KEY (run_id, fund, budget_program)
        );
        CREATE INDEX payment_run_commitments_year ON payment_run_commitments (year, fund);"
                .to_owned()
        },
    },
    // ---- Payees: care institutions (集中供养) ----
    Migration {
        version: 18,
        description: "payment: whom each entitlement and order pays (a care institution's code; empty: the household's account)",
        script: |_kind: DatabaseKind| {
            "ALTER TABLE payment_entitlements ADD COLUMN care_institution_code TEXT NOT NULL DEFAULT '';
        ALTER TABLE payment_orders ADD COLUMN care_institution_code TEXT NOT NULL DEFAULT '';"
                .to_owned()
        },
    },
];

sunshine_proto::stream_events! {
    /// What payment hears of intake's household streams (`intake-household-<id>`): the
    /// household's payment account, sealed (an encoded `PaymentAccount` under the household's
    /// data key, `SealedField::PaymentAccount`). Read with `decode_known`: the household's
    /// other events are none of payment's business.
    #[derive(Debug, Clone, PartialEq)]
    pub enum HeardFromIntake in "intake-household" {
        Registered(pb::HouseholdRegistered),
    }
}

sunshine_proto::stream_events! {
    /// What payment hears of review's case streams (`review-case-<id>`): the case (its
    /// household, program and hukou), and the decisions that make, change and end what it
    /// pays. Read with `decode_known`: review's other case events are passed over.
    #[derive(Debug, Clone, PartialEq)]
    pub enum HeardFromReview in "review-case" {
        Opened(pb::CaseOpened),
        FollowedHousehold(pb::CaseFollowedHousehold),
        AssistFirstGranted(pb::AssistFirstGranted),
        Approved(pb::CaseApproved),
        Adjusted(pb::BenefitAdjusted),
        Suspended(pb::BenefitSuspended),
        Terminated(pb::BenefitTerminated),
    }
}

/// The id of the one-off entitlement an assist-first grant makes.
pub fn assist_first_entitlement(event: &RecordedEvent) -> String {
    format!("assist-first-{}", event.event_id)
}

/// The street-town (12 digits) of a hukou org unit: its street-tier prefix.
pub fn street_town_of(hukou_org_unit_code: &str) -> Result<String, HandlerError> {
    let code = OrgUnitCode::parse(hukou_org_unit_code)
        .map_err(|error| HandlerError(format!("hukou org unit {hukou_org_unit_code}: {error}")))?;
    Ok(format!("{}000", code.street_town_prefix()))
}

/// The local (UTC+8) month of an instant in microseconds.
pub fn local_month(recorded_at_us: i64) -> Month {
    let instant = time::OffsetDateTime::from_unix_timestamp(recorded_at_us.div_euclid(1_000_000))
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
        + time::Duration::hours(8);
    Month::of(instant.date())
}

fn month(field: &str, text: &str) -> Result<Month, HandlerError> {
    Month::parse(text).map_err(|error| HandlerError(format!("{field} {text:?}: {error}")))
}

fn fen(money: Option<&pb::Money>) -> i64 {
    money.map_or(0, |money| money.fen)
}

/// The claims of one run on its orders' (entitlement, period) keys — or, for re-payments, on
/// the failed orders they pay again — made by the append's guard in the transaction that
/// appends the run: an order exists exactly when its claim does. The guard writes the
/// orders' rows in `payment_orders` too, in bulk ([`BULK_ROWS`] a statement).
#[derive(Debug, Clone)]
pub struct OrderClaims<'a> {
    pub run_id: String,
    pub period: String,
    /// In the run's order: entitlement-id order, failed-order-id order for re-payments.
    pub orders: Vec<&'a pb::PaymentOrder>,
}

impl<'a> OrderClaims<'a> {
    /// The claims of a new run's events: its `PaymentRunCreated` (first or last), its orders
    /// in it or in the `PaymentRunOrdersAdded` beside it. `None` when the events make no run.
    pub fn of(events: &'a [RunEvent]) -> Option<OrderClaims<'a>> {
        let created = events.iter().find_map(|event| match event {
            RunEvent::Created(created) => Some(created),
            _ => None,
        })?;
        let added = events.iter().flat_map(|event| match event {
            RunEvent::OrdersAdded(added) => added.orders.as_slice(),
            _ => &[],
        });
        Some(OrderClaims {
            run_id: created.run_id.clone(),
            period: created.period.clone(),
            orders: created.orders.iter().chain(added).collect(),
        })
    }
}

/// An approval's commitment of its run's money, made by the approval's guard in the
/// transaction that appends `PaymentRunApproved`: what the run's orders need of each fund and
/// budget program is summed from their rows in `payment_orders` (written by the creation's
/// own transaction, so there whatever the projection has reached; checked against the run's
/// control count and total, which a projection being rebuilt would not match); then, under a
/// lock per fund and year (so two approvals of one fund commit one after the other, never both
/// past the same remainder), the needs are written as the run's rows of
/// `payment_run_commitments` and what approved runs of the year committed — now with this run
/// — is checked against each fund's budget for each budget program; over budget rolls the
/// approval back. Creation checks the same against what the projection has heard, early;
/// this is the check two runs created side by side cannot both pass. The approval so never
/// holds the run's orders, in memory or in its transaction.
#[derive(Debug, Clone)]
pub struct BudgetCommitment<'a> {
    pub run_id: String,
    pub year: i32,
    /// The run's control count and total, as its creation recorded them.
    pub control_count: u32,
    pub control_total: Money,
    pub funds: &'a crate::funds::Funds,
}

/// Why an approval's guard refuses it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApprovalRefusal {
    Budget(crate::funds::BudgetRefusal),
    /// The run's rows in `payment_orders` are not its control figures.
    OrdersDisagree {
        count: u64,
        total_fen: i64,
    },
}

impl AppendGuard for BudgetCommitment<'_> {
    type Refusal = ApprovalRefusal;

    async fn apply(
        &self,
        connection: &mut AnyConnection,
    ) -> Result<Result<(), Self::Refusal>, sqlx::Error> {
        let (count, total_fen): (i64, i64) = sqlx::query_as(
            "SELECT CAST(COUNT(*) AS BIGINT), CAST(COALESCE(SUM(amount_fen), 0) AS BIGINT) \
             FROM payment_orders WHERE run_id = $1",
        )
        .bind(self.run_id.as_str())
        .fetch_one(&mut *connection)
        .await?;
        let count = u64::try_from(count).unwrap_or(0);
        if count != u64::from(self.control_count) || total_fen != self.control_total.fen() {
            return Ok(Err(ApprovalRefusal::OrdersDisagree { count, total_fen }));
        }
        let needs = run_needs(connection, &self.run_id).await?;
        let funds: std::collections::BTreeSet<&str> =
            needs.keys().map(|(fund, _)| fund.as_str()).collect();
        // In fund order, so two approvals lock their funds in one order and cannot deadlock.
        for fund in funds {
            sqlx::query(
                "INSERT INTO payment_budget_locks (fund, year, approvals) VALUES ($1, $2, 0) \
                 ON CONFLICT (fund, year) DO NOTHING",
            )
            .bind(fund)
            .bind(i64::from(self.year))
            .execute(&mut *connection)
            .await?;
            sqlx::query(
                "UPDATE payment_budget_locks SET approvals = approvals + 1 WHERE fund = $1 AND year = $2",
            )
            .bind(fund)
            .bind(i64::from(self.year))
            .execute(&mut *connection)
            .await?;
        }
        write_commitments(connection, &self.run_id, self.year, &needs).await?;
        let committed = committed(connection, self.year).await?;
        for ((fund, program), need) in &needs {
            let key = (fund.clone(), program.clone());
            let with_this_run = committed.get(&key).copied().unwrap_or_default();
            let before = with_this_run.checked_sub(*need).unwrap_or(Money::ZERO);
            if let Err(refusal) =
                crate::funds::check_budget(self.funds, fund, program, self.year, before, *need)
            {
                return Ok(Err(ApprovalRefusal::Budget(refusal)));
            }
        }
        Ok(Ok(()))
    }
}

/// An entitlement of the run has its order of the period in `run_id` already.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimedByRun {
    pub run_id: String,
}

impl AppendGuard for OrderClaims<'_> {
    type Refusal = ClaimedByRun;

    async fn apply(
        &self,
        connection: &mut AnyConnection,
    ) -> Result<Result<(), ClaimedByRun>, sqlx::Error> {
        claim_orders(connection, &self.run_id, &self.period, &self.orders).await
    }
}

/// Claims the (entitlement, period) keys of `orders` — or, for re-payments, the failed orders
/// they pay again — for run `run_id` and writes their `payment_orders` rows, on the append's
/// transaction; refused, naming a run holding one, when any key is held already.
pub async fn claim_orders(
    connection: &mut AnyConnection,
    run_id: &str,
    period: &str,
    orders: &[&pb::PaymentOrder],
) -> Result<Result<(), ClaimedByRun>, sqlx::Error> {
    // The orders come in key order (the aggregate sorts them) and each statement inserts
    // its rows in that order, so two runs claiming overlapping keys take their row locks
    // in one order and cannot deadlock. On PostgreSQL a concurrent uncommitted claim of
    // the same key makes the insert wait for that transaction; `ON CONFLICT DO NOTHING`
    // then skips the key if that claim committed.
    let claimed = write_orders(connection, run_id, period, orders).await?;
    if claimed == orders.len() as u64 {
        return Ok(Ok(()));
    }
    // Some key was held already: name a run holding one.
    let sqlite = on_sqlite(connection);
    for batch in orders.chunks(BULK_ROWS) {
        let firsts: Vec<&str> = batch
            .iter()
            .filter(|order| order.repays_order_id.is_empty())
            .map(|order| order.entitlement_id.as_str())
            .collect();
        let repays: Vec<&str> = batch
            .iter()
            .filter(|order| !order.repays_order_id.is_empty())
            .map(|order| order.repays_order_id.as_str())
            .collect();
        let holder: Option<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT run_id FROM payment_run_orders WHERE period = $2 AND run_id <> $3 \
             AND entitlement_id IN (SELECT r.value FROM ({}) AS r) \
             UNION ALL SELECT run_id FROM payment_repay_orders WHERE run_id <> $3 \
             AND failed_order_id IN (SELECT r.value FROM ({}) AS r) LIMIT 1",
            json_values(sqlite, 1),
            json_values(sqlite, 4),
        )))
        .bind(json_text(&firsts))
        .bind(period)
        .bind(run_id)
        .bind(json_text(&repays))
        .fetch_optional(&mut *connection)
        .await?;
        if let Some(run_id) = holder {
            return Ok(Err(ClaimedByRun { run_id }));
        }
    }
    // No other run holds one: a concurrent creation of this same run (a retry racing its
    // first send) committed them. The caller answers it as the retry it is.
    Ok(Err(ClaimedByRun {
        run_id: run_id.to_owned(),
    }))
}

/// The text values of the JSON array in parameter `$parameter`, as `SELECT r.value FROM …`.
fn json_values(sqlite: bool, parameter: usize) -> String {
    if sqlite {
        format!("SELECT value FROM json_each(${parameter})")
    } else {
        format!("SELECT json_array_elements_text(CAST(${parameter} AS json)) AS value")
    }
}

/// Rows per bulk statement of the guard and the projection: one JSON array parameter each.
const BULK_ROWS: usize = 10_000;

fn on_sqlite(connection: &AnyConnection) -> bool {
    connection.backend_name().eq_ignore_ascii_case("sqlite")
}

/// `rows` (each a JSON array of text) as the rows of a `SELECT` over one JSON parameter, `$1`:
/// `json_array_elements` on PostgreSQL, `json_each` on SQLite. Column `i` is the row's `i`th
/// element as text, `c{i}`.
fn json_rows(sqlite: bool, columns: usize) -> String {
    let select: Vec<String> = (0..columns)
        .map(|column| {
            if sqlite {
                format!("json_extract(r.value, '$[{column}]') AS c{column}")
            } else {
                format!("r.value->>{column} AS c{column}")
            }
        })
        .collect();
    let from = if sqlite {
        "json_each($1) AS r"
    } else {
        "json_array_elements(CAST($1 AS json)) AS r(value)"
    };
    format!("SELECT {} FROM {from}", select.join(", "))
}

/// The guard rows of `orders` (first payments: `payment_run_orders`; re-payments:
/// `payment_repay_orders`) and their `payment_orders` rows, in bulk, each written once: a row
/// another run holds already is left as it is. Answers how many guard rows this wrote.
async fn write_orders(
    connection: &mut AnyConnection,
    run_id: &str,
    period: &str,
    orders: &[&pb::PaymentOrder],
) -> Result<u64, sqlx::Error> {
    let sqlite = on_sqlite(connection);
    let mut claimed = 0;
    for batch in orders.chunks(BULK_ROWS) {
        let (repays, firsts): (Vec<&pb::PaymentOrder>, Vec<&pb::PaymentOrder>) = batch
            .iter()
            .partition(|order| !order.repays_order_id.is_empty());
        if !firsts.is_empty() {
            let rows: Vec<[&str; 2]> = firsts
                .iter()
                .map(|order| [order.entitlement_id.as_str(), order.order_id.as_str()])
                .collect();
            claimed += sqlx::query(sqlx::AssertSqlSafe(format!(
                "INSERT INTO payment_run_orders (entitlement_id, period, run_id, order_id) \
                 SELECT j.c0, $2, $3, j.c1 FROM ({}) AS j WHERE 1 = 1 ON CONFLICT (entitlement_id, period) DO NOTHING",
                json_rows(sqlite, 2)
            )))
            .bind(json_text(&rows))
            .bind(period)
            .bind(run_id)
            .execute(&mut *connection)
            .await?
            .rows_affected();
        }
        if !repays.is_empty() {
            let rows: Vec<[&str; 2]> = repays
                .iter()
                .map(|order| [order.repays_order_id.as_str(), order.order_id.as_str()])
                .collect();
            claimed += sqlx::query(sqlx::AssertSqlSafe(format!(
                "INSERT INTO payment_repay_orders (failed_order_id, run_id, order_id) \
                 SELECT j.c0, $2, j.c1 FROM ({}) AS j WHERE 1 = 1 ON CONFLICT (failed_order_id) DO NOTHING",
                json_rows(sqlite, 2)
            )))
            .bind(json_text(&rows))
            .bind(run_id)
            .execute(&mut *connection)
            .await?
            .rows_affected();
        }
        let amounts: Vec<String> = batch
            .iter()
            .map(|order| fen(order.amount.as_ref()).to_string())
            .collect();
        let rows: Vec<[&str; 10]> = batch
            .iter()
            .zip(&amounts)
            .map(|(order, amount)| {
                [
                    order.order_id.as_str(),
                    order.entitlement_id.as_str(),
                    order.case_id.as_str(),
                    order.household_id.as_str(),
                    order.program_code.as_str(),
                    order.street_town_code.as_str(),
                    amount.as_str(),
                    order.repays_order_id.as_str(),
                    order.fund.as_str(),
                    order.care_institution_code.as_str(),
                ]
            })
            .collect();
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO payment_orders (order_id, run_id, period, entitlement_id, case_id, household_id, \
             program_code, street_town_code, amount_fen, repays_order_id, fund, care_institution_code) \
             SELECT j.c0, $2, $3, j.c1, j.c2, j.c3, j.c4, j.c5, CAST(j.c6 AS BIGINT), j.c7, j.c8, j.c9 FROM ({}) AS j \
             WHERE 1 = 1 ON CONFLICT (order_id) DO NOTHING",
            json_rows(sqlite, 10)
        )))
        .bind(json_text(&rows))
        .bind(run_id)
        .bind(period)
        .execute(&mut *connection)
        .await?;
    }
    Ok(claimed)
}

fn json_text<T: serde::Serialize>(rows: &T) -> String {
    serde_json::to_string(rows).unwrap_or_default()
}

/// The orders of `period` the bank's result failed or a returns file returned (paid, then
/// returned: 退票), in order-id order: what a re-pay run pays again (to the same payee).
pub async fn failed_orders(
    pool: &AnyPool,
    period: Month,
) -> Result<Vec<(pb::PaymentOrder, String)>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT order_id, entitlement_id, case_id, household_id, program_code, street_town_code, amount_fen, \
         repays_order_id, failure_reason, fund, care_institution_code FROM payment_orders \
         WHERE period = $1 AND state IN ('failed', 'returned') ORDER BY order_id",
    )
    .bind(period.to_string())
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|row| {
            Ok((
                pb::PaymentOrder {
                    order_id: row.try_get(0)?,
                    entitlement_id: row.try_get(1)?,
                    case_id: row.try_get(2)?,
                    household_id: row.try_get(3)?,
                    program_code: row.try_get(4)?,
                    street_town_code: row.try_get(5)?,
                    amount: Some(pb::Money {
                        fen: row.try_get(6)?,
                    }),
                    repays_order_id: row.try_get(7)?,
                    fund: row.try_get(9)?,
                    care_institution_code: row.try_get(10)?,
                },
                row.try_get(8)?,
            ))
        })
        .collect()
}

/// Failed order id → the re-pay run that pays it again, for the failed orders of `period`.
pub async fn repaid(
    pool: &AnyPool,
    period: Month,
) -> Result<BTreeMap<String, String>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT r.failed_order_id, r.run_id FROM payment_repay_orders r \
         JOIN payment_orders o ON o.order_id = r.failed_order_id WHERE o.period = $1",
    )
    .bind(period.to_string())
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
        .collect()
}

/// Entitlement id → the run that has its order of `period`, for the entitlements after
/// `after` up to `last` (in the database's order of ids, as [`entitlements_page`] pages).
pub async fn in_runs_between(
    connection: &mut AnyConnection,
    period: Month,
    after: &str,
    last: &str,
) -> Result<BTreeMap<String, String>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT entitlement_id, run_id FROM payment_run_orders \
         WHERE period = $1 AND entitlement_id > $2 AND entitlement_id <= $3",
    )
    .bind(period.to_string())
    .bind(after)
    .bind(last)
    .fetch_all(&mut *connection)
    .await?;
    rows.iter()
        .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
        .collect()
}

/// At most `limit` entitlements that start in or before `period`, the next after entitlement
/// `after` in id order ("" for the first page), each with its adjustments in the order review
/// decided them: a run reads its entitlements a page at a time, on its append's transaction.
pub async fn entitlements_page(
    connection: &mut AnyConnection,
    period: Month,
    after: &str,
    limit: u32,
) -> Result<Vec<Entitlement>, sqlx::Error> {
    let period = period.to_string();
    let rows = sqlx::query(
        "SELECT entitlement_id, case_id, household_id, program_code, street_town_code, kind, amount_fen, start_month, \
         suspended_from, terminated_from, care_institution_code FROM payment_entitlements \
         WHERE start_month <= $1 AND entitlement_id > $2 ORDER BY entitlement_id LIMIT $3",
    )
    .bind(period.as_str())
    .bind(after)
    .bind(i64::from(limit))
    .fetch_all(&mut *connection)
    .await?;
    let Some(last) = rows.last() else {
        return Ok(Vec::new());
    };
    let last: String = last.try_get(0)?;
    let adjustment_rows = sqlx::query(
        "SELECT a.entitlement_id, a.effective_month, a.amount_fen FROM payment_entitlement_adjustments a \
         WHERE a.entitlement_id > $1 AND a.entitlement_id <= $2 ORDER BY a.entitlement_id, a.case_version",
    )
    .bind(after)
    .bind(last.as_str())
    .fetch_all(&mut *connection)
    .await?;
    let mut adjustments: BTreeMap<String, Vec<Adjustment>> = BTreeMap::new();
    for row in &adjustment_rows {
        let effective: String = row.try_get(1)?;
        let Ok(effective_month) = Month::parse(&effective) else {
            continue;
        };
        adjustments
            .entry(row.try_get(0)?)
            .or_default()
            .push(Adjustment {
                effective_month,
                amount: Money::from_fen(row.try_get(2)?),
            });
    }
    let optional_month = |text: String| Month::parse(&text).ok();
    let mut entitlements = Vec::with_capacity(rows.len());
    for row in &rows {
        let entitlement_id: String = row.try_get(0)?;
        let kind: String = row.try_get(5)?;
        let start: String = row.try_get(7)?;
        let (Some(kind), Ok(start_month)) = (Kind::parse(&kind), Month::parse(&start)) else {
            // The projection writes only what it checked; a row it did not is no entitlement.
            continue;
        };
        entitlements.push(Entitlement {
            adjustments: adjustments.remove(&entitlement_id).unwrap_or_default(),
            entitlement_id,
            case_id: row.try_get(1)?,
            household_id: row.try_get(2)?,
            program_code: row.try_get(3)?,
            street_town_code: row.try_get(4)?,
            kind,
            amount: Money::from_fen(row.try_get(6)?),
            start_month,
            suspended_from: optional_month(row.try_get(8)?),
            terminated_from: optional_month(row.try_get(9)?),
            payee: Payee::of_code(&row.try_get::<String, _>(10)?),
        });
    }
    Ok(entitlements)
}

/// The events of the log this projection follows; a kind it does not follow is `None`.
enum Followed {
    Review(HeardFromReview),
    Intake(HeardFromIntake),
    Run(RunEvent),
    Medical(MedicalEvent),
    Recovery(RecoveryEvent),
    Cash(CashEvent),
}

fn followed(event: &RecordedEvent) -> Result<Option<Followed>, HandlerError> {
    let decoded = if HeardFromReview::is_stream(&event.stream_id) {
        HeardFromReview::decode_known(&event.event_type, &event.payload)
            .map(|heard| heard.map(Followed::Review))
    } else if HeardFromIntake::is_stream(&event.stream_id) {
        HeardFromIntake::decode_known(&event.event_type, &event.payload)
            .map(|heard| heard.map(Followed::Intake))
    } else if RunEvent::is_stream(&event.stream_id) {
        RunEvent::decode(&event.event_type, &event.payload).map(|run| Some(Followed::Run(run)))
    } else if MedicalEvent::is_stream(&event.stream_id) {
        MedicalEvent::decode(&event.event_type, &event.payload)
            .map(|medical| Some(Followed::Medical(medical)))
    } else if RecoveryEvent::is_stream(&event.stream_id) {
        RecoveryEvent::decode(&event.event_type, &event.payload)
            .map(|recovery| Some(Followed::Recovery(recovery)))
    } else if CashEvent::is_stream(&event.stream_id) {
        CashEvent::decode(&event.event_type, &event.payload).map(|cash| Some(Followed::Cash(cash)))
    } else {
        Ok(None)
    };
    decoded.map_err(|error| HandlerError(error.to_string()))
}

/// The case's household, program and street-town, as `CaseOpened` gave them.
async fn case_row(
    connection: &mut AnyConnection,
    case_id: &str,
) -> Result<(String, String, String), HandlerError> {
    let row = sqlx::query(
        "SELECT household_id, program_code, street_town_code FROM payment_cases WHERE case_id = $1",
    )
    .bind(case_id)
    .fetch_optional(&mut *connection)
    .await?;
    let Some(row) = row else {
        return Err(HandlerError(format!(
            "a decision on case {case_id}, which payment never heard open"
        )));
    };
    Ok((row.try_get(0)?, row.try_get(1)?, row.try_get(2)?))
}

#[allow(clippy::too_many_arguments)]
async fn upsert_entitlement(
    connection: &mut AnyConnection,
    entitlement_id: &str,
    case_id: &str,
    program_code: &str,
    kind: Kind,
    amount_fen: i64,
    start_month: Month,
    payee: &Payee,
) -> Result<(), HandlerError> {
    let (household_id, opened_program, street_town_code) = case_row(connection, case_id).await?;
    let program_code = if program_code.is_empty() {
        opened_program
    } else {
        program_code.to_owned()
    };
    sqlx::query(
        "INSERT INTO payment_entitlements (entitlement_id, case_id, household_id, program_code, street_town_code, kind, \
         amount_fen, start_month, care_institution_code) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
         ON CONFLICT (entitlement_id) DO UPDATE SET program_code = excluded.program_code, kind = excluded.kind, \
         amount_fen = excluded.amount_fen, start_month = excluded.start_month, suspended_from = '', terminated_from = '', \
         care_institution_code = excluded.care_institution_code",
    )
    .bind(entitlement_id)
    .bind(case_id)
    .bind(household_id.as_str())
    .bind(program_code.as_str())
    .bind(street_town_code.as_str())
    .bind(kind.as_str())
    .bind(amount_fen)
    .bind(start_month.to_string())
    .bind(payee.institution_code())
    .execute(&mut *connection)
    .await?;
    Ok(())
}

async fn apply_heard(
    connection: &mut AnyConnection,
    event: &RecordedEvent,
    heard: HeardFromReview,
) -> Result<(), HandlerError> {
    match heard {
        HeardFromReview::Opened(opened) => {
            sqlx::query(
                "INSERT INTO payment_cases (case_id, household_id, program_code, street_town_code) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (case_id) DO NOTHING",
            )
            .bind(opened.case_id.as_str())
            .bind(opened.household_id.as_str())
            .bind(opened.program_code.as_str())
            .bind(street_town_of(&opened.hukou_org_unit_code)?)
            .execute(&mut *connection)
            .await?;
        }
        HeardFromReview::FollowedHousehold(followed) => {
            let street_town = street_town_of(&followed.to_org_unit_code)?;
            for table in ["payment_cases", "payment_entitlements"] {
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "UPDATE {table} SET street_town_code = $1 WHERE case_id = $2"
                )))
                .bind(street_town.as_str())
                .bind(event.case_id.as_str())
                .execute(&mut *connection)
                .await?;
            }
        }
        HeardFromReview::AssistFirstGranted(granted) => {
            upsert_entitlement(
                connection,
                &assist_first_entitlement(event),
                &granted.case_id,
                "",
                Kind::OneOff,
                fen(granted.amount.as_ref()),
                local_month(event.recorded_at_us),
                &Payee::Household,
            )
            .await?;
        }
        HeardFromReview::Approved(approved) => {
            upsert_entitlement(
                connection,
                &approved.case_id,
                &approved.case_id,
                &approved.program_code,
                Kind::Monthly,
                fen(approved.monthly_amount.as_ref()),
                month("start_month", &approved.start_month)?,
                // A centrally supported 特困 person's benefit pays their care institution.
                &Payee::of_code(&approved.care_institution_code),
            )
            .await?;
        }
        HeardFromReview::Adjusted(adjusted) => {
            let effective = month("effective_month", &adjusted.effective_month)?;
            sqlx::query(
                "INSERT INTO payment_entitlement_adjustments (entitlement_id, case_version, effective_month, amount_fen) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT (entitlement_id, case_version) DO NOTHING",
            )
            .bind(adjusted.case_id.as_str())
            .bind(i64::try_from(event.stream_version).unwrap_or(i64::MAX))
            .bind(effective.to_string())
            .bind(fen(adjusted.monthly_amount.as_ref()))
            .execute(&mut *connection)
            .await?;
        }
        HeardFromReview::Suspended(suspended) => {
            let effective = month("effective_month", &suspended.effective_month)?;
            stop_from(connection, "suspended_from", &suspended.case_id, effective).await?;
        }
        HeardFromReview::Terminated(terminated) => {
            let effective = month("effective_month", &terminated.effective_month)?;
            stop_from(
                connection,
                "terminated_from",
                &terminated.case_id,
                effective,
            )
            .await?;
            // Recovery: the claims' cause.
            sqlx::query(
                "UPDATE payment_entitlements SET terminated_cause = $1 WHERE entitlement_id = $2 AND kind = 'monthly'",
            )
            .bind(terminated.cause.as_str())
            .bind(terminated.case_id.as_str())
            .execute(&mut *connection)
            .await?;
        }
    }
    Ok(())
}

/// Sets a monthly entitlement's suspension or termination month.
async fn stop_from(
    connection: &mut AnyConnection,
    column: &'static str,
    case_id: &str,
    effective: Month,
) -> Result<(), HandlerError> {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE payment_entitlements SET {column} = $1 WHERE entitlement_id = $2 AND kind = 'monthly'"
    )))
    .bind(effective.to_string())
    .bind(case_id)
    .execute(&mut *connection)
    .await?;
    Ok(())
}

async fn apply_event(
    connection: &mut AnyConnection,
    event: &RecordedEvent,
) -> Result<(), HandlerError> {
    match followed(event)? {
        None => Ok(()),
        Some(Followed::Review(heard)) => apply_heard(connection, event, heard).await,
        Some(Followed::Intake(HeardFromIntake::Registered(registered))) => {
            keep_account(
                connection,
                event,
                &registered.household_id,
                &registered.sealed_payment_account,
            )
            .await
        }
        Some(Followed::Run(RunEvent::Created(created))) => {
            // A run created before its orders were split off has them here.
            project_orders(
                connection,
                &created.run_id,
                &created.period,
                &created.orders,
            )
            .await
        }
        Some(Followed::Run(RunEvent::OrdersAdded(added))) => {
            project_orders(connection, &added.run_id, &added.period, &added.orders).await
        }
        Some(Followed::Run(RunEvent::BankResultLinesAdded(lines))) => {
            let part = pb::BankResultRecorded {
                run_id: lines.run_id.clone(),
                results: lines.results.clone(),
                ..Default::default()
            };
            project_result(connection, &part).await
        }
        Some(Followed::Run(RunEvent::BankResultRecorded(recorded))) => {
            project_result(connection, &recorded).await
        }
        Some(Followed::Run(RunEvent::Approved(approved))) => {
            // The guard wrote them in the approval's transaction; a replay into an empty
            // database (or one restored without them) writes the same rows again, summed from
            // the run's orders as the approval summed them.
            let period = month(
                "period",
                &approved_period(connection, &approved.run_id).await?,
            )?;
            let needs = run_needs(connection, &approved.run_id).await?;
            write_commitments(connection, &approved.run_id, period.year(), &needs).await?;
            Ok(())
        }
        Some(Followed::Run(RunEvent::BankFileExported(_))) => Ok(()),
        // settlement
        Some(Followed::Run(RunEvent::BankReturnLinesAdded(lines))) => {
            let part = pb::BankReturnsRecorded {
                run_id: lines.run_id.clone(),
                returns: lines.returns.clone(),
                ..Default::default()
            };
            project_returns(connection, &part).await
        }
        Some(Followed::Run(RunEvent::BankReturnsRecorded(recorded))) => {
            project_returns(connection, &recorded).await
        }
        Some(Followed::Run(RunEvent::ReconciliationClosed(_))) => Ok(()),
        Some(Followed::Medical(MedicalEvent::Assessed(assessed))) => {
            apply_claim(connection, &assessed).await
        }
        Some(Followed::Recovery(recovery)) => apply_recovery(connection, event, recovery).await,
        Some(Followed::Cash(CashEvent::Paid(paid))) => apply_cash(connection, &paid).await,
    }
}

/// A run's orders (of its `PaymentRunCreated`, or one `PaymentRunOrdersAdded`): their guard
/// rows and their rows in `payment_orders`, each written once.
async fn project_orders(
    connection: &mut AnyConnection,
    run_id: &str,
    period: &str,
    orders: &[pb::PaymentOrder],
) -> Result<(), HandlerError> {
    let orders: Vec<&pb::PaymentOrder> = orders.iter().collect();
    write_orders(connection, run_id, period, &orders).await?;
    Ok(())
}

/// The bank's result (a `BankResultRecorded`, or the lines of one `BankResultLinesAdded`):
/// each order's state, and the postings of the orders it paid.
async fn project_result(
    connection: &mut AnyConnection,
    recorded: &pb::BankResultRecorded,
) -> Result<(), HandlerError> {
    for result in &recorded.results {
        sqlx::query(
            "UPDATE payment_orders SET state = $1, failure_reason = $2 WHERE order_id = $3",
        )
        .bind(if result.paid { "paid" } else { "failed" })
        .bind(result.failure_reason.as_str())
        .bind(result.order_id.as_str())
        .execute(&mut *connection)
        .await?;
    }
    post_result(connection, recorded).await
}

/// A returns file (a `BankReturnsRecorded`, or the lines of one `BankReturnLinesAdded`):
/// each order returned, and its posting reversed.
async fn project_returns(
    connection: &mut AnyConnection,
    recorded: &pb::BankReturnsRecorded,
) -> Result<(), HandlerError> {
    for returned in &recorded.returns {
        sqlx::query(
            "UPDATE payment_orders SET state = 'returned', failure_reason = $1 WHERE order_id = $2",
        )
        .bind(returned.reason.as_str())
        .bind(returned.order_id.as_str())
        .execute(&mut *connection)
        .await?;
    }
    post_returns(connection, recorded).await
}

/// Writes `postings` as lines of the ledger, each under its order (or claim event) key and line
/// number (0 and 1; a return's reversal 2 and 3), filed under `stream`: once, whatever replays.
async fn write_postings(
    connection: &mut AnyConnection,
    stream: &str,
    postings: &[Posting],
) -> Result<(), sqlx::Error> {
    for posting in postings {
        for (line, number) in posting.lines().iter().zip(posting.line_numbers()) {
            let (debit_fen, credit_fen) = line.debit_credit_fen();
            sqlx::query(
                "INSERT INTO payment_ledger_lines (order_id, line, run_id, fund, account, debit_fen, credit_fen) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (order_id, line) DO NOTHING",
            )
            .bind(line.order_id.as_str())
            .bind(number)
            .bind(stream)
            .bind(line.fund.as_str())
            .bind(line.account.as_str())
            .bind(debit_fen)
            .bind(credit_fen)
            .execute(&mut *connection)
            .await?;
        }
    }
    Ok(())
}

/// Reverses the paid postings of the orders a returns file returned: two more ledger lines
/// each (the order's lines 2 and 3).
async fn post_returns(
    connection: &mut AnyConnection,
    recorded: &pb::BankReturnsRecorded,
) -> Result<(), HandlerError> {
    let ids = recorded.returns.iter().map(|line| line.order_id.as_str());
    let orders = run_orders(connection, &recorded.run_id, ids).await?;
    let postings = ledger::postings_of_returns(&orders, recorded)
        .map_err(|error| HandlerError(error.to_string()))?;
    write_postings(connection, &recorded.run_id, &postings).await?;
    Ok(())
}

/// The run's orders, as its creation gave them, with ids from the least to the greatest of
/// `order_ids` (the lines of one result or returns event: a part of the run, not all of it).
async fn run_orders<'a>(
    connection: &mut AnyConnection,
    run_id: &str,
    order_ids: impl Iterator<Item = &'a str>,
) -> Result<Vec<pb::PaymentOrder>, sqlx::Error> {
    let (mut least, mut greatest): (Option<&str>, Option<&str>) = (None, None);
    for id in order_ids {
        least = Some(least.map_or(id, |least| least.min(id)));
        greatest = Some(greatest.map_or(id, |greatest| greatest.max(id)));
    }
    let (Some(least), Some(greatest)) = (least, greatest) else {
        return Ok(Vec::new());
    };
    let rows = sqlx::query(
        "SELECT order_id, entitlement_id, case_id, household_id, program_code, street_town_code, amount_fen, \
         repays_order_id, fund, care_institution_code FROM payment_orders \
         WHERE run_id = $1 AND order_id >= $2 AND order_id <= $3 ORDER BY order_id",
    )
    .bind(run_id)
    .bind(least)
    .bind(greatest)
    .fetch_all(&mut *connection)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(pb::PaymentOrder {
                order_id: row.try_get(0)?,
                entitlement_id: row.try_get(1)?,
                case_id: row.try_get(2)?,
                household_id: row.try_get(3)?,
                program_code: row.try_get(4)?,
                street_town_code: row.try_get(5)?,
                amount: Some(pb::Money {
                    fen: row.try_get(6)?,
                }),
                repays_order_id: row.try_get(7)?,
                fund: row.try_get(8)?,
                care_institution_code: row.try_get(9)?,
            })
        })
        .collect()
}

/// What approved runs (and cash payments) of `year` committed of each fund, per budget
/// program ([`crate::funds::budget_program`]): what their approvals committed
/// (`payment_run_commitments`), less their orders the bank failed or returned (that money
/// never left, or came back; the re-pay order's run commits it again).
pub async fn committed(
    connection: &mut AnyConnection,
    year: i32,
) -> Result<BTreeMap<(String, String), Money>, sqlx::Error> {
    let out_of_range = || sqlx::Error::Protocol("a committed total out of range".into());
    let mut committed: BTreeMap<(String, String), Money> = BTreeMap::new();
    let rows = sqlx::query(
        "SELECT fund, budget_program, CAST(SUM(amount_fen) AS BIGINT) FROM payment_run_commitments \
         WHERE year = $1 GROUP BY fund, budget_program",
    )
    .bind(i64::from(year))
    .fetch_all(&mut *connection)
    .await?;
    for row in &rows {
        let total = committed
            .entry((row.try_get(0)?, row.try_get(1)?))
            .or_default();
        *total = total
            .checked_add(Money::from_fen(row.try_get(2)?))
            .ok_or_else(out_of_range)?;
    }
    // The failed and returned orders of the year's committed runs: few, found by state.
    let undone = order_sums(
        connection,
        "period LIKE $1 AND state IN ('failed', 'returned') \
         AND run_id IN (SELECT c.run_id FROM payment_run_commitments c WHERE c.year = $2)",
        &format!("{year:04}-%"),
        Some(i64::from(year)),
    )
    .await?;
    for (key, amount) in undone {
        let total = committed.entry(key).or_default();
        *total = total.checked_sub(amount).ok_or_else(out_of_range)?;
    }
    Ok(committed)
}

/// What run `run_id`'s orders need of each (fund, budget program), summed by the database
/// (a run is up to millions of rows, never held for its approval);
/// orders without a fund (runs created before funds were known) need nothing.
async fn run_needs(
    connection: &mut AnyConnection,
    run_id: &str,
) -> Result<BTreeMap<(String, String), Money>, sqlx::Error> {
    order_sums(connection, "run_id = $1 AND fund <> ''", run_id, None).await
}

/// The orders matching `filter` (over `$1` = `first`, and `$2` = `second` when given), summed
/// per fund and budget program: summed in the database per fund, program and whether the order
/// is an assist-first grant's, then named here by the one function that names the program.
async fn order_sums(
    connection: &mut AnyConnection,
    filter: &'static str,
    first: &str,
    second: Option<i64>,
) -> Result<BTreeMap<(String, String), Money>, sqlx::Error> {
    let prefix = crate::funds::ASSIST_FIRST_PREFIX;
    let grant_parameter = if second.is_some() { 3 } else { 2 };
    let mut query = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT fund, program_code, CAST(CASE WHEN entitlement_id LIKE ${grant_parameter} THEN 1 ELSE 0 END AS BIGINT) \
         AS assist_grant, CAST(SUM(amount_fen) AS BIGINT) FROM payment_orders WHERE {filter} \
         GROUP BY fund, program_code, assist_grant"
    )))
    .bind(first);
    if let Some(second) = second {
        query = query.bind(second);
    }
    let rows = query
        .bind(format!("{prefix}%"))
        .fetch_all(&mut *connection)
        .await?;
    let mut sums: BTreeMap<(String, String), Money> = BTreeMap::new();
    for row in &rows {
        let fund: String = row.try_get(0)?;
        let program_code: String = row.try_get(1)?;
        let grant: i64 = row.try_get(2)?;
        let an_entitlement = if grant == 1 { prefix } else { "" };
        let program = crate::funds::budget_program(an_entitlement, &program_code).to_owned();
        let total = sums.entry((fund, program)).or_default();
        *total = total
            .checked_add(Money::from_fen(row.try_get(3)?))
            .ok_or_else(|| sqlx::Error::Protocol("a committed total out of range".into()))?;
    }
    Ok(sums)
}

/// Run `run_id`'s commitments of `year`, one row per (fund, budget program), each written once
/// (a replay writes the same rows).
async fn write_commitments(
    connection: &mut AnyConnection,
    run_id: &str,
    year: i32,
    needs: &BTreeMap<(String, String), Money>,
) -> Result<(), sqlx::Error> {
    for ((fund, program), amount) in needs {
        sqlx::query(
            "INSERT INTO payment_run_commitments (run_id, year, fund, budget_program, amount_fen) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (run_id, fund, budget_program) DO NOTHING",
        )
        .bind(run_id)
        .bind(i64::from(year))
        .bind(fund.as_str())
        .bind(program.as_str())
        .bind(amount.fen())
        .execute(&mut *connection)
        .await?;
    }
    Ok(())
}

/// The period of run `run_id`, from its orders (every run has one).
async fn approved_period(
    connection: &mut AnyConnection,
    run_id: &str,
) -> Result<String, HandlerError> {
    let period: Option<String> =
        sqlx::query_scalar("SELECT MIN(period) FROM payment_orders WHERE run_id = $1")
            .bind(run_id)
            .fetch_one(&mut *connection)
            .await?;
    period.ok_or_else(|| HandlerError(format!("run {run_id} approved without an order")))
}

/// Posts the orders the bank's result paid: two ledger lines each.
async fn post_result(
    connection: &mut AnyConnection,
    recorded: &pb::BankResultRecorded,
) -> Result<(), HandlerError> {
    let ids = recorded.results.iter().map(|line| line.order_id.as_str());
    let orders = run_orders(connection, &recorded.run_id, ids).await?;
    let postings = ledger::postings_of_result(&orders, recorded)
        .map_err(|error| HandlerError(error.to_string()))?;
    write_postings(connection, &recorded.run_id, &postings).await?;
    Ok(())
}

/// The ledger's sums of debits and of credits, and its number of lines.
pub async fn trial_balance(pool: &AnyPool) -> Result<(TrialBalance, i64), sqlx::Error> {
    let row = sqlx::query(
        "SELECT CAST(COALESCE(SUM(debit_fen), 0) AS BIGINT), CAST(COALESCE(SUM(credit_fen), 0) AS BIGINT), \
         CAST(COUNT(*) AS BIGINT) FROM payment_ledger_lines",
    )
    .fetch_one(pool)
    .await?;
    Ok((
        TrialBalance {
            debits: Money::from_fen(row.try_get(0)?),
            credits: Money::from_fen(row.try_get(1)?),
        },
        row.try_get(2)?,
    ))
}

/// Each fund's bank account and its balance (debits less credits), in fund order.
pub async fn fund_balances(pool: &AnyPool) -> Result<Vec<(String, String, Money)>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT fund, account, CAST(COALESCE(SUM(debit_fen), 0) - COALESCE(SUM(credit_fen), 0) AS BIGINT) \
         FROM payment_ledger_lines WHERE account LIKE 'fund:%' GROUP BY fund, account ORDER BY fund, account",
    )
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|row| {
            Ok((
                row.try_get(0)?,
                row.try_get(1)?,
                Money::from_fen(row.try_get(2)?),
            ))
        })
        .collect()
}

// ---- Medical assistance claims ----

/// A claim's row in `payment_medical_claims`, the claims' **guard table**: its primary key is
/// the claim, and (patient, year, sequence) is unique, so two claims of one patient's year
/// decided on the same earlier claims cannot both be appended (the later is `ABORTED` and
/// decides again on the first). Written in the append's transaction ([`MedicalClaimGuard`])
/// and by the projection from `MedicalClaimAssessed`, so a rebuild ends in the same table.
#[derive(Debug, Clone)]
pub struct MedicalClaimGuard {
    pub claim_id: String,
    pub case_id: String,
    pub patient_member_id: String,
    pub year: i64,
    pub seq: i64,
    pub amount_fen: i64,
}

impl MedicalClaimGuard {
    pub fn of(assessed: &pb::MedicalClaimAssessed) -> MedicalClaimGuard {
        MedicalClaimGuard {
            claim_id: assessed.claim_id.clone(),
            case_id: assessed.case_id.clone(),
            patient_member_id: assessed.patient_member_id.clone(),
            year: i64::from(assessed.settlement_date.map_or(0, |date| date.year)),
            seq: i64::from(assessed.earlier_claims),
            amount_fen: fen(assessed.amount.as_ref()),
        }
    }

    async fn write(&self, connection: &mut AnyConnection) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO payment_medical_claims (claim_id, case_id, patient_member_id, year, seq, amount_fen) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
        )
        .bind(self.claim_id.as_str())
        .bind(self.case_id.as_str())
        .bind(self.patient_member_id.as_str())
        .bind(self.year)
        .bind(self.seq)
        .bind(self.amount_fen)
        .execute(&mut *connection)
        .await?;
        Ok(())
    }
}

/// Another claim of the patient's year was appended on the same earlier claims.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimRaced;

impl AppendGuard for MedicalClaimGuard {
    type Refusal = ClaimRaced;

    async fn apply(
        &self,
        connection: &mut AnyConnection,
    ) -> Result<Result<(), ClaimRaced>, sqlx::Error> {
        self.write(connection).await?;
        let holder: Option<String> = sqlx::query_scalar(
            "SELECT claim_id FROM payment_medical_claims WHERE patient_member_id = $1 AND year = $2 AND seq = $3",
        )
        .bind(self.patient_member_id.as_str())
        .bind(self.year)
        .bind(self.seq)
        .fetch_optional(&mut *connection)
        .await?;
        if holder.as_deref() == Some(self.claim_id.as_str()) {
            Ok(Ok(()))
        } else {
            Ok(Err(ClaimRaced))
        }
    }
}

/// An assessed claim: its guard row, and its one-off entitlement (when it pays anything).
async fn apply_claim(
    connection: &mut AnyConnection,
    assessed: &pb::MedicalClaimAssessed,
) -> Result<(), HandlerError> {
    MedicalClaimGuard::of(assessed).write(connection).await?;
    let Some(entitlement) = medical::claim_entitlement(assessed) else {
        return Ok(());
    };
    sqlx::query(
        "INSERT INTO payment_entitlements (entitlement_id, case_id, household_id, program_code, street_town_code, kind, \
         amount_fen, start_month) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (entitlement_id) DO NOTHING",
    )
    .bind(entitlement.entitlement_id.as_str())
    .bind(entitlement.case_id.as_str())
    .bind(entitlement.household_id.as_str())
    .bind(entitlement.program_code.as_str())
    .bind(entitlement.street_town_code.as_str())
    .bind(entitlement.kind.as_str())
    .bind(entitlement.amount.fen())
    .bind(entitlement.start_month.to_string())
    .execute(&mut *connection)
    .await?;
    Ok(())
}

/// What payment's claims of `year` paid the patient, and how many there are.
pub async fn patient_year(
    pool: &AnyPool,
    patient_member_id: &str,
    year: i32,
) -> Result<(Money, u32), sqlx::Error> {
    let row = sqlx::query(
        "SELECT CAST(COALESCE(SUM(amount_fen), 0) AS BIGINT), CAST(COUNT(*) AS BIGINT) \
         FROM payment_medical_claims WHERE patient_member_id = $1 AND year = $2",
    )
    .bind(patient_member_id)
    .bind(i64::from(year))
    .fetch_one(pool)
    .await?;
    let count: i64 = row.try_get(1)?;
    Ok((
        Money::from_fen(row.try_get(0)?),
        u32::try_from(count).unwrap_or(u32::MAX),
    ))
}

/// The case `case_id` as a claim needs it, with its approval; `None` if payment never heard
/// it open.
pub async fn claim_case(pool: &AnyPool, case_id: &str) -> Result<Option<ClaimCase>, sqlx::Error> {
    let Some(row) = sqlx::query(
        "SELECT household_id, program_code, street_town_code FROM payment_cases WHERE case_id = $1",
    )
    .bind(case_id)
    .fetch_optional(pool)
    .await?
    else {
        return Ok(None);
    };
    let household_id: String = row.try_get(0)?;
    let approval = household_entitlements(pool, &household_id)
        .await?
        .into_iter()
        .find(|entitlement| entitlement.entitlement_id == case_id);
    Ok(Some(ClaimCase {
        case_id: case_id.to_owned(),
        household_id,
        program_code: row.try_get(1)?,
        street_town_code: row.try_get(2)?,
        approval,
    }))
}

/// Every entitlement of `household_id`, with its adjustments.
pub async fn household_entitlements(
    pool: &AnyPool,
    household_id: &str,
) -> Result<Vec<Entitlement>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT entitlement_id, case_id, program_code, street_town_code, kind, amount_fen, start_month, \
         suspended_from, terminated_from, care_institution_code FROM payment_entitlements \
         WHERE household_id = $1 ORDER BY entitlement_id",
    )
    .bind(household_id)
    .fetch_all(pool)
    .await?;
    let optional_month = |text: String| Month::parse(&text).ok();
    let mut entitlements = Vec::with_capacity(rows.len());
    for row in &rows {
        let entitlement_id: String = row.try_get(0)?;
        let kind: String = row.try_get(4)?;
        let start: String = row.try_get(6)?;
        let (Some(kind), Ok(start_month)) = (Kind::parse(&kind), Month::parse(&start)) else {
            continue;
        };
        let adjustment_rows = sqlx::query(
            "SELECT effective_month, amount_fen FROM payment_entitlement_adjustments \
             WHERE entitlement_id = $1 ORDER BY case_version",
        )
        .bind(entitlement_id.as_str())
        .fetch_all(pool)
        .await?;
        let mut adjustments = Vec::with_capacity(adjustment_rows.len());
        for adjustment in &adjustment_rows {
            let effective: String = adjustment.try_get(0)?;
            if let Ok(effective_month) = Month::parse(&effective) {
                adjustments.push(Adjustment {
                    effective_month,
                    amount: Money::from_fen(adjustment.try_get(1)?),
                });
            }
        }
        entitlements.push(Entitlement {
            entitlement_id,
            case_id: row.try_get(1)?,
            household_id: household_id.to_owned(),
            program_code: row.try_get(2)?,
            street_town_code: row.try_get(3)?,
            kind,
            amount: Money::from_fen(row.try_get(5)?),
            start_month,
            suspended_from: optional_month(row.try_get(7)?),
            terminated_from: optional_month(row.try_get(8)?),
            adjustments,
            payee: Payee::of_code(&row.try_get::<String, _>(9)?),
        });
    }
    Ok(entitlements)
}

/// The ids of `case_id`'s claims after `after`, in claim-id order, at most `limit`.
pub async fn case_claims(
    pool: &AnyPool,
    case_id: &str,
    after: &str,
    limit: usize,
) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT claim_id FROM payment_medical_claims WHERE case_id = $1 AND claim_id > $2 \
         ORDER BY claim_id LIMIT $3",
    )
    .bind(case_id)
    .bind(after)
    .bind(i64::try_from(limit).unwrap_or(i64::MAX))
    .fetch_all(pool)
    .await
}

// ---- Recovery (追缴) ----

/// A claim's event: its row in `payment_recovery_claims` (what is outstanding, its status)
/// and its postings in the ledger. The claim before the event is folded from its stream up
/// to the event (the log is the record; the row only serves lists).
async fn apply_recovery(
    connection: &mut AnyConnection,
    event: &RecordedEvent,
    recovery_event: RecoveryEvent,
) -> Result<(), HandlerError> {
    let earlier = sqlx::query(
        "SELECT event_type, payload FROM events WHERE stream_id = $1 AND stream_version < $2 ORDER BY stream_version",
    )
    .bind(event.stream_id.as_str())
    .bind(i64::try_from(event.stream_version).unwrap_or(i64::MAX))
    .fetch_all(&mut *connection)
    .await?;
    let mut history = Vec::with_capacity(earlier.len() + 1);
    for row in &earlier {
        let event_type: String = row.try_get(0)?;
        let payload: Vec<u8> = row.try_get(1)?;
        history.push(
            RecoveryEvent::decode(&event_type, &payload)
                .map_err(|error| HandlerError(error.to_string()))?,
        );
    }
    let before = ClaimState::fold(&history);
    let postings = recovery::postings_of(before.as_ref(), &recovery_event, event.stream_version)
        .map_err(|error| HandlerError(error.to_string()))?;
    history.push(recovery_event);
    let Some(claim) = ClaimState::fold(&history) else {
        return Err(HandlerError(format!(
            "{} does not start with its opening",
            event.stream_id
        )));
    };
    write_postings(connection, event.stream_id.as_str(), &postings).await?;
    let order = claim.first_order().cloned().unwrap_or_default();
    sqlx::query(
        "INSERT INTO payment_recovery_claims (claim_id, order_id, household_id, program_code, district_code, amount_fen, \
         outstanding_fen, status, repaid_fen, written_off_fen) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
         ON CONFLICT (claim_id) DO UPDATE SET outstanding_fen = excluded.outstanding_fen, status = excluded.status, \
         repaid_fen = excluded.repaid_fen, written_off_fen = excluded.written_off_fen",
    )
    .bind(claim.claim_id())
    .bind(order.order_id.as_str())
    .bind(order.household_id.as_str())
    .bind(order.program_code.as_str())
    .bind(claim.opened.district_code.as_str())
    .bind(claim.amount.fen())
    .bind(claim.outstanding().fen())
    .bind(claim.status().as_str())
    .bind(claim.repaid.fen())
    .bind(claim.written_off.fen())
    .execute(&mut *connection)
    .await?;
    Ok(())
}

/// Which paid orders a recovery check looks at: one entitlement's (its termination was
/// heard), or one run's (its bank result was heard).
#[derive(Debug, Clone, Copy)]
pub enum PaidOrdersOf<'a> {
    Entitlement(&'a str),
    Run(&'a str),
}

/// The orders the bank paid for a period on or after their monthly entitlement's
/// termination that have no claim yet, in order-id order, with the termination's month and
/// cause (the rule is applied again, purely, by `recovery::open_claims`).
pub async fn paid_after_termination(
    pool: &AnyPool,
    of: PaidOrdersOf<'_>,
) -> Result<Vec<crate::commands::PaidAfterTermination>, sqlx::Error> {
    let (column, key) = match of {
        PaidOrdersOf::Entitlement(entitlement_id) => ("o.entitlement_id", entitlement_id),
        PaidOrdersOf::Run(run_id) => ("o.run_id", run_id),
    };
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT o.order_id, o.entitlement_id, o.case_id, o.household_id, o.program_code, o.street_town_code, \
         o.amount_fen, o.repays_order_id, o.fund, o.period, e.terminated_from, e.terminated_cause, \
         o.care_institution_code \
         FROM payment_orders o JOIN payment_entitlements e ON e.entitlement_id = o.entitlement_id \
         WHERE {column} = $1 AND o.state = 'paid' AND e.kind = 'monthly' AND e.terminated_from <> '' \
         AND o.period >= e.terminated_from \
         AND NOT EXISTS (SELECT 1 FROM payment_recovery_claims c WHERE c.order_id = o.order_id) \
         ORDER BY o.order_id"
    )))
    .bind(key)
    .fetch_all(pool)
    .await?;
    let mut facts = Vec::with_capacity(rows.len());
    for row in &rows {
        let period: String = row.try_get(9)?;
        let terminated: String = row.try_get(10)?;
        let (Ok(period), Ok(terminated_from)) = (Month::parse(&period), Month::parse(&terminated))
        else {
            // The projection writes only months it checked.
            continue;
        };
        facts.push(crate::commands::PaidAfterTermination {
            order: pb::PaymentOrder {
                order_id: row.try_get(0)?,
                entitlement_id: row.try_get(1)?,
                case_id: row.try_get(2)?,
                household_id: row.try_get(3)?,
                program_code: row.try_get(4)?,
                street_town_code: row.try_get(5)?,
                amount: Some(pb::Money {
                    fen: row.try_get(6)?,
                }),
                repays_order_id: row.try_get(7)?,
                fund: row.try_get(8)?,
                care_institution_code: row.try_get(12)?,
            },
            period,
            terminated_from,
            cause: row.try_get(11)?,
        });
    }
    Ok(facts)
}

/// The district's claim ids after `after` (a page token, or ""), in claim-id order, at most
/// `limit`.
pub async fn recovery_claim_ids(
    pool: &AnyPool,
    district_code: &str,
    after: &str,
    limit: usize,
) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT claim_id FROM payment_recovery_claims WHERE district_code = $1 AND claim_id > $2 \
         ORDER BY claim_id LIMIT $3",
    )
    .bind(district_code)
    .bind(after)
    .bind(i64::try_from(limit).unwrap_or(i64::MAX))
    .fetch_all(pool)
    .await
}

// ---- Queries (`ListHouseholdPayments`, `ListRuns`, `GetMonthlyReport`, the 纪委's export) ----

/// The order of a row that starts with the order's nine columns (order id, entitlement,
/// case, household, program, street-town, amount, re-paid order, fund), and has its care
/// institution in column `payee_column`.
fn order_of(row: &sqlx::any::AnyRow, payee_column: usize) -> Result<pb::PaymentOrder, sqlx::Error> {
    Ok(pb::PaymentOrder {
        order_id: row.try_get(0)?,
        entitlement_id: row.try_get(1)?,
        case_id: row.try_get(2)?,
        household_id: row.try_get(3)?,
        program_code: row.try_get(4)?,
        street_town_code: row.try_get(5)?,
        amount: Some(pb::Money {
            fen: row.try_get(6)?,
        }),
        repays_order_id: row.try_get(7)?,
        fund: row.try_get(8)?,
        care_institution_code: row.try_get(payee_column)?,
    })
}

/// Where a household's page starts: after the order `after` (a page token; "" for the first
/// page). `None`: the token is no order of the household's.
pub async fn household_cursor(
    pool: &AnyPool,
    household_id: &str,
    after: &str,
) -> Result<Option<(String, String)>, sqlx::Error> {
    if after.is_empty() {
        return Ok(Some((String::new(), String::new())));
    }
    let period: Option<String> = sqlx::query_scalar(
        "SELECT period FROM payment_orders WHERE order_id = $1 AND household_id = $2",
    )
    .bind(after)
    .bind(household_id)
    .fetch_optional(pool)
    .await?;
    Ok(period.map(|period| (period, after.to_owned())))
}

/// A household's orders after `cursor` (period, order id), in (period, order id) order, at
/// most `limit`: each with its state at the bank, the re-pay order that pays it again, and its
/// recovery claim (a claim is filed under its first order).
pub async fn household_payments(
    pool: &AnyPool,
    household_id: &str,
    cursor: &(String, String),
    limit: usize,
) -> Result<Vec<pb::HouseholdPayment>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT o.order_id, o.entitlement_id, o.case_id, o.household_id, o.program_code, o.street_town_code, \
         o.amount_fen, o.repays_order_id, o.fund, o.period, o.run_id, o.state, o.failure_reason, \
         COALESCE(r.order_id, ''), COALESCE(c.claim_id, ''), COALESCE(c.status, ''), \
         CAST(COALESCE(c.outstanding_fen, 0) AS BIGINT), o.care_institution_code \
         FROM payment_orders o \
         LEFT JOIN payment_repay_orders r ON r.failed_order_id = o.order_id \
         LEFT JOIN payment_recovery_claims c ON c.order_id = o.order_id \
         WHERE o.entitlement_id IN (SELECT e.entitlement_id FROM payment_entitlements e WHERE e.household_id = $1) \
         AND o.household_id = $1 AND (o.period > $2 OR (o.period = $2 AND o.order_id > $3)) \
         ORDER BY o.period, o.order_id LIMIT $4",
    )
    .bind(household_id)
    .bind(cursor.0.as_str())
    .bind(cursor.1.as_str())
    .bind(i64::try_from(limit).unwrap_or(i64::MAX))
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|row| {
            let claim_id: String = row.try_get(14)?;
            Ok(pb::HouseholdPayment {
                order: Some(order_of(row, 17)?),
                period: row.try_get(9)?,
                run_id: row.try_get(10)?,
                state: row.try_get(11)?,
                failure_reason: row.try_get(12)?,
                repaid_by_order_id: row.try_get(13)?,
                recovery_outstanding: if claim_id.is_empty() {
                    None
                } else {
                    Some(pb::Money {
                        fen: row.try_get(16)?,
                    })
                },
                recovery_status: row.try_get(15)?,
                recovery_claim_id: claim_id,
            })
        })
        .collect()
}

/// Every run with an order (every run has one; a cash payment's `cash-<id>` is no run), of
/// `period` when it is not empty, as
/// (period, run id) in that order.
pub async fn run_ids(pool: &AnyPool, period: &str) -> Result<Vec<(String, String)>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT MIN(period), run_id FROM payment_orders WHERE ($1 = '' OR period = $1) \
         AND run_id NOT LIKE 'cash-%' GROUP BY run_id ORDER BY MIN(period), run_id",
    )
    .bind(period)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
        .collect()
}

/// A run's orders as the 纪委's export takes them, in order-id order, with their states.
pub async fn inspected_orders(
    pool: &AnyPool,
    run_id: &str,
) -> Result<Vec<crate::inspection::InspectedOrder>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT household_id, program_code, period, amount_fen, state, care_institution_code FROM payment_orders \
         WHERE run_id = $1 ORDER BY order_id",
    )
    .bind(run_id)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(crate::inspection::InspectedOrder {
                household_id: row.try_get(0)?,
                program_code: row.try_get(1)?,
                period: row.try_get(2)?,
                amount_fen: row.try_get(3)?,
                state: row.try_get(4)?,
                care_institution_code: row.try_get(5)?,
                account_tail: String::new(),
            })
        })
        .collect()
}

/// One group of a period's orders (program, street-town, state, whether they re-pay):
/// how many and their sum.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderGroup {
    pub program_code: String,
    pub street_town_code: String,
    pub state: String,
    pub repay: bool,
    pub count: i64,
    pub fen: i64,
}

/// One group of the recovery claims of a period's orders (program, street-town): how many,
/// and their amounts claimed, repaid and written off.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecoveryGroup {
    pub program_code: String,
    pub street_town_code: String,
    pub count: i64,
    pub claimed_fen: i64,
    pub repaid_fen: i64,
    pub written_off_fen: i64,
    /// The amounts of the claims cancelled (their order returned).
    pub cancelled_fen: i64,
}

/// The period's orders and recovery claims, grouped for the monthly report.
pub async fn monthly_groups(
    pool: &AnyPool,
    period: &str,
) -> Result<(Vec<OrderGroup>, Vec<RecoveryGroup>), sqlx::Error> {
    let rows = sqlx::query(
        "SELECT program_code, street_town_code, state, CAST(CASE WHEN repays_order_id = '' THEN 0 ELSE 1 END AS BIGINT), \
         CAST(COUNT(*) AS BIGINT), CAST(COALESCE(SUM(amount_fen), 0) AS BIGINT) FROM payment_orders \
         WHERE period = $1 \
         GROUP BY program_code, street_town_code, state, CASE WHEN repays_order_id = '' THEN 0 ELSE 1 END",
    )
    .bind(period)
    .fetch_all(pool)
    .await?;
    let orders = rows
        .iter()
        .map(|row| {
            let repay: i64 = row.try_get(3)?;
            Ok(OrderGroup {
                program_code: row.try_get(0)?,
                street_town_code: row.try_get(1)?,
                state: row.try_get(2)?,
                repay: repay != 0,
                count: row.try_get(4)?,
                fen: row.try_get(5)?,
            })
        })
        .collect::<Result<Vec<_>, sqlx::Error>>()?;
    let rows = sqlx::query(
        "SELECT o.program_code, o.street_town_code, CAST(COUNT(*) AS BIGINT), \
         CAST(COALESCE(SUM(c.amount_fen), 0) AS BIGINT), CAST(COALESCE(SUM(c.repaid_fen), 0) AS BIGINT), \
         CAST(COALESCE(SUM(c.written_off_fen), 0) AS BIGINT), \
         CAST(COALESCE(SUM(CASE WHEN c.status = 'cancelled' THEN c.amount_fen ELSE 0 END), 0) AS BIGINT) \
         FROM payment_recovery_claims c JOIN payment_orders o ON o.order_id = c.order_id \
         WHERE o.period = $1 GROUP BY o.program_code, o.street_town_code",
    )
    .bind(period)
    .fetch_all(pool)
    .await?;
    let recoveries = rows
        .iter()
        .map(|row| {
            Ok(RecoveryGroup {
                program_code: row.try_get(0)?,
                street_town_code: row.try_get(1)?,
                count: row.try_get(2)?,
                claimed_fen: row.try_get(3)?,
                repaid_fen: row.try_get(4)?,
                written_off_fen: row.try_get(5)?,
                cancelled_fen: row.try_get(6)?,
            })
        })
        .collect::<Result<Vec<_>, sqlx::Error>>()?;
    Ok((orders, recoveries))
}

/// The monthly report's lines from the period's groups (pure): one per (program,
/// street-town) in that order, and their sums. Counts and sums saturate (a period holds far
/// fewer than 2^32 orders, and its fen fit an i64).
pub fn report_lines(
    orders: &[OrderGroup],
    recoveries: &[RecoveryGroup],
) -> (Vec<pb::MonthlyReportLine>, pb::MonthlyReportLine) {
    fn add(slot: &mut u32, money: &mut Option<pb::Money>, count: i64, fen: i64) {
        *slot = slot.saturating_add(u32::try_from(count).unwrap_or(u32::MAX));
        let sum = money.get_or_insert_with(pb::Money::default);
        sum.fen = sum.fen.saturating_add(fen);
    }
    fn add_fen(money: &mut Option<pb::Money>, fen: i64) {
        let sum = money.get_or_insert_with(pb::Money::default);
        sum.fen = sum.fen.saturating_add(fen);
    }
    fn zero(program_code: &str, street_town_code: &str) -> pb::MonthlyReportLine {
        let money = || Some(pb::Money::default());
        pb::MonthlyReportLine {
            program_code: program_code.to_owned(),
            street_town_code: street_town_code.to_owned(),
            order_total: money(),
            paid_total: money(),
            failed_total: money(),
            returned_total: money(),
            pending_total: money(),
            repay_total: money(),
            recovery_claimed: money(),
            recovery_repaid: money(),
            recovery_written_off: money(),
            recovery_cancelled: money(),
            ..Default::default()
        }
    }
    fn add_orders(line: &mut pb::MonthlyReportLine, group: &OrderGroup) {
        add(
            &mut line.order_count,
            &mut line.order_total,
            group.count,
            group.fen,
        );
        let (count, total) = match group.state.as_str() {
            "paid" => (&mut line.paid_count, &mut line.paid_total),
            "failed" => (&mut line.failed_count, &mut line.failed_total),
            "returned" => (&mut line.returned_count, &mut line.returned_total),
            _ => (&mut line.pending_count, &mut line.pending_total),
        };
        add(count, total, group.count, group.fen);
        if group.repay {
            add(
                &mut line.repay_count,
                &mut line.repay_total,
                group.count,
                group.fen,
            );
        }
    }
    fn add_recovery(line: &mut pb::MonthlyReportLine, group: &RecoveryGroup) {
        add(
            &mut line.recovery_count,
            &mut line.recovery_claimed,
            group.count,
            group.claimed_fen,
        );
        add_fen(&mut line.recovery_repaid, group.repaid_fen);
        add_fen(&mut line.recovery_written_off, group.written_off_fen);
        add_fen(&mut line.recovery_cancelled, group.cancelled_fen);
    }
    let mut lines: BTreeMap<(String, String), pb::MonthlyReportLine> = BTreeMap::new();
    let mut total = zero("", "");
    for group in orders {
        let key = (group.program_code.clone(), group.street_town_code.clone());
        let line = lines
            .entry(key)
            .or_insert_with(|| zero(&group.program_code, &group.street_town_code));
        add_orders(line, group);
        add_orders(&mut total, group);
    }
    for group in recoveries {
        let key = (group.program_code.clone(), group.street_town_code.clone());
        let line = lines
            .entry(key)
            .or_insert_with(|| zero(&group.program_code, &group.street_town_code));
        add_recovery(line, group);
        add_recovery(&mut total, group);
    }
    (lines.into_values().collect(), total)
}

// ---- Accounts: intake's sealed payment accounts; the export's pages ----

/// Keeps the household's sealed account (the one of the latest event in log order that gives
/// one); an event that gives none leaves what is kept.
async fn keep_account(
    connection: &mut AnyConnection,
    event: &RecordedEvent,
    household_id: &str,
    sealed_account: &[u8],
) -> Result<(), HandlerError> {
    if sealed_account.is_empty() {
        return Ok(());
    }
    let position = event
        .log_position
        .and_then(|position| i64::try_from(position).ok())
        .unwrap_or(i64::MAX);
    sqlx::query(
        "INSERT INTO payment_accounts (household_id, sealed_account, log_position) VALUES ($1, $2, $3) \
         ON CONFLICT (household_id) DO UPDATE SET sealed_account = excluded.sealed_account, \
         log_position = excluded.log_position WHERE payment_accounts.log_position <= excluded.log_position",
    )
    .bind(household_id)
    .bind(sealed_account.to_vec())
    .bind(position)
    .execute(&mut *connection)
    .await?;
    Ok(())
}

/// One order of a run as the bank file takes it, with its household's sealed account
/// (`None`: the household has none) and whom it pays.
#[derive(Clone, PartialEq, Eq)]
pub struct BatchOrder {
    pub order_id: String,
    pub household_id: String,
    pub amount_fen: i64,
    pub sealed_account: Option<Vec<u8>>,
    /// The care institution it pays ("": the household's account).
    pub care_institution_code: String,
}

impl std::fmt::Debug for BatchOrder {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("BatchOrder")
            .field("order_id", &self.order_id)
            .field("amount_fen", &self.amount_fen)
            .field("care_institution_code", &self.care_institution_code)
            .finish_non_exhaustive()
    }
}

/// The run's orders in order-id order, each with its household's sealed account, in pages of
/// `page_rows` sent as they are read: **one statement** read incrementally on a connection of
/// its own (a task that ends when the receiver is dropped), at most two pages ahead of the
/// reader. Not keyset pages of `LIMIT` queries: each of those is planned again, and right
/// after a run's creation, before the table's statistics know the run, PostgreSQL plans each
/// page as a scan and sort of the rest of the run (measured: 150 ms a page at 100,000 orders,
/// growing with the run — quadratic in all); one ordered statement costs one scan (and at most
/// one sort) whatever the plan.
pub fn batch_orders(
    pool: AnyPool,
    run_id: String,
    page_rows: usize,
) -> tokio::sync::mpsc::Receiver<Result<Vec<BatchOrder>, sqlx::Error>> {
    let (sender, receiver) = tokio::sync::mpsc::channel(1);
    tokio::spawn(async move {
        use futures::TryStreamExt as _;
        let read = async {
            let mut connection = pool.acquire().await?;
            let mut rows = sqlx::query(
                "SELECT o.order_id, o.household_id, o.amount_fen, a.sealed_account, o.care_institution_code FROM payment_orders o \
                 LEFT JOIN payment_accounts a ON a.household_id = o.household_id \
                 WHERE o.run_id = $1 ORDER BY o.order_id",
            )
            .bind(run_id.as_str())
            .fetch(&mut *connection);
            let mut page = Vec::with_capacity(page_rows);
            while let Some(row) = rows.try_next().await? {
                page.push(BatchOrder {
                    order_id: row.try_get(0)?,
                    household_id: row.try_get(1)?,
                    amount_fen: row.try_get(2)?,
                    sealed_account: row.try_get(3)?,
                    care_institution_code: row.try_get(4)?,
                });
                if page.len() >= page_rows {
                    let full = std::mem::replace(&mut page, Vec::with_capacity(page_rows));
                    if sender.send(Ok(full)).await.is_err() {
                        return Ok(());
                    }
                }
            }
            if !page.is_empty() {
                let _ = sender.send(Ok(page)).await;
            }
            Ok::<(), sqlx::Error>(())
        };
        if let Err(error) = read.await {
            let _ = sender.send(Err(error)).await;
        }
    });
    receiver
}

/// The sealed accounts of the run's households, by household id (a household without one is
/// absent).
pub async fn run_sealed_accounts(
    pool: &AnyPool,
    run_id: &str,
) -> Result<BTreeMap<String, Vec<u8>>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT a.household_id, a.sealed_account FROM payment_accounts a \
         WHERE a.household_id IN (SELECT o.household_id FROM payment_orders o WHERE o.run_id = $1)",
    )
    .bind(run_id)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
        .collect()
}

/// The entitlements projection, fed by the log (both delivery modes, through
/// `LogRuntime::spawn_consumer`).
#[derive(Debug, Clone)]
pub struct PaymentEntitlements;

impl Projection for PaymentEntitlements {
    fn name(&self) -> &str {
        "payment-entitlements"
    }

    fn react<'a>(&'a self, _event: &'a RecordedEvent) -> HandlerFuture<'a> {
        Box::pin(async move { Ok(()) })
    }

    fn apply<'a>(
        &'a self,
        connection: &'a mut AnyConnection,
        event: &'a RecordedEvent,
    ) -> HandlerFuture<'a> {
        Box::pin(apply_event(connection, event))
    }

    fn reset<'a>(&'a self, connection: &'a mut AnyConnection) -> HandlerFuture<'a> {
        Box::pin(async move {
            // The guard tables stay (`payment_run_orders`, `payment_repay_orders`,
            // `payment_medical_claims`, `payment_run_commitments`): their rows are exactly the
            // committed runs' orders, claims and commitments, and the replay writes the same
            // rows again.
            for table in [
                "payment_accounts",
                "payment_recovery_claims",
                "payment_ledger_lines",
                "payment_orders",
                "payment_cases",
                "payment_entitlements",
                "payment_entitlement_adjustments",
            ] {
                sqlx::query(sqlx::AssertSqlSafe(format!("DELETE FROM {table}")))
                    .execute(&mut *connection)
                    .await?;
            }
            Ok(())
        })
    }
}

// ---- Emergency cash (急难): payment-cash-<payment id> ----

/// The grant's order of a cash payment: its guard row on (entitlement, period) under the run
/// id `cash-<payment id>`, its row in `payment_orders` paid, and its commitment of the fund
/// (so `committed` counts it), written once.
async fn write_cash_order(
    connection: &mut AnyConnection,
    paid: &pb::EmergencyCashPaid,
    order: &pb::PaymentOrder,
) -> Result<Result<(), ClaimedByRun>, sqlx::Error> {
    let claimed = claim_orders(connection, &paid.run_id, &paid.period, &[order]).await?;
    if matches!(&claimed, Err(held) if held.run_id != paid.run_id) {
        return Ok(claimed);
    }
    sqlx::query("UPDATE payment_orders SET state = 'paid' WHERE order_id = $1 AND run_id = $2")
        .bind(order.order_id.as_str())
        .bind(paid.run_id.as_str())
        .execute(&mut *connection)
        .await?;
    let year = Month::parse(&paid.period)
        .map_err(|error| sqlx::Error::Protocol(error.to_string()))?
        .year();
    let program = crate::funds::budget_program(&order.entitlement_id, &order.program_code);
    let need = BTreeMap::from([(
        (order.fund.clone(), program.to_owned()),
        Money::from_fen(fen(order.amount.as_ref())),
    )]);
    write_commitments(connection, &paid.run_id, year, &need).await?;
    Ok(claimed)
}

/// `EmergencyCashPaid`: the order's rows (as the guard wrote them) and its posting, as a paid
/// order's (expense debited, fund credited): once, whatever replays.
async fn apply_cash(
    connection: &mut AnyConnection,
    paid: &pb::EmergencyCashPaid,
) -> Result<(), HandlerError> {
    let Some(order) = paid.order.as_ref() else {
        return Err(HandlerError(format!(
            "cash payment {} without its order",
            paid.payment_id
        )));
    };
    // A replay finds its own claim held (by this same run id): nothing else can hold it, the
    // append's guard having claimed it first.
    let _ = write_cash_order(connection, paid, order).await?;
    let posting = Posting::paid_order(order).map_err(|error| HandlerError(error.to_string()))?;
    write_postings(connection, &paid.run_id, &[posting]).await?;
    Ok(())
}

/// Why a cash payment's guard refuses it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CashRefusal {
    /// The grant's key is held by that run (a monthly run, or another cash payment).
    Claimed(ClaimedByRun),
    Budget(crate::funds::BudgetRefusal),
}

/// A cash payment's guard, in the transaction that appends `EmergencyCashPaid`: under the
/// fund's lock for the year (the same as an approval's, [`BudgetCommitment`]), the grant's
/// (entitlement, period) key claimed and its order written paid and approved, then what the
/// fund committed of the year — this payment included — checked against its budget.
#[derive(Debug, Clone)]
pub struct CashPaymentGuard<'a> {
    pub paid: &'a pb::EmergencyCashPaid,
    pub funds: &'a crate::funds::Funds,
}

impl AppendGuard for CashPaymentGuard<'_> {
    type Refusal = CashRefusal;

    async fn apply(
        &self,
        connection: &mut AnyConnection,
    ) -> Result<Result<(), CashRefusal>, sqlx::Error> {
        let Some(order) = self.paid.order.as_ref() else {
            return Err(sqlx::Error::Protocol(
                "a cash payment without its order".into(),
            ));
        };
        let year = Month::parse(&self.paid.period)
            .map_err(|error| sqlx::Error::Protocol(error.to_string()))?
            .year();
        sqlx::query(
            "INSERT INTO payment_budget_locks (fund, year, approvals) VALUES ($1, $2, 0) \
             ON CONFLICT (fund, year) DO NOTHING",
        )
        .bind(order.fund.as_str())
        .bind(i64::from(year))
        .execute(&mut *connection)
        .await?;
        sqlx::query(
            "UPDATE payment_budget_locks SET approvals = approvals + 1 WHERE fund = $1 AND year = $2",
        )
        .bind(order.fund.as_str())
        .bind(i64::from(year))
        .execute(&mut *connection)
        .await?;
        if let Err(claimed) = write_cash_order(connection, self.paid, order).await? {
            return Ok(Err(CashRefusal::Claimed(claimed)));
        }
        let program = crate::funds::budget_program(&order.entitlement_id, &order.program_code);
        let need = Money::from_fen(fen(order.amount.as_ref()));
        let with_this = committed(connection, year)
            .await?
            .get(&(order.fund.clone(), program.to_owned()))
            .copied()
            .unwrap_or_default();
        let before = with_this.checked_sub(need).unwrap_or(Money::ZERO);
        if let Err(refusal) =
            crate::funds::check_budget(self.funds, &order.fund, program, year, before, need)
        {
            return Ok(Err(CashRefusal::Budget(refusal)));
        }
        Ok(Ok(()))
    }
}

/// One entitlement as the projection holds it (with no adjustments: a grant has none), or
/// `None`.
pub async fn entitlement(
    pool: &AnyPool,
    entitlement_id: &str,
) -> Result<Option<Entitlement>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT case_id, household_id, program_code, street_town_code, kind, amount_fen, start_month, \
         care_institution_code FROM payment_entitlements WHERE entitlement_id = $1",
    )
    .bind(entitlement_id)
    .fetch_optional(pool)
    .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let kind: String = row.try_get(4)?;
    let start: String = row.try_get(6)?;
    let (Some(kind), Ok(start_month)) = (Kind::parse(&kind), Month::parse(&start)) else {
        return Ok(None);
    };
    Ok(Some(Entitlement {
        entitlement_id: entitlement_id.to_owned(),
        case_id: row.try_get(0)?,
        household_id: row.try_get(1)?,
        program_code: row.try_get(2)?,
        street_town_code: row.try_get(3)?,
        kind,
        amount: Money::from_fen(row.try_get(5)?),
        start_month,
        suspended_from: None,
        terminated_from: None,
        adjustments: Vec::new(),
        payee: Payee::of_code(&row.try_get::<String, _>(7)?),
    }))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn group(
        program: &str,
        town: &str,
        state: &str,
        repay: bool,
        count: i64,
        fen: i64,
    ) -> OrderGroup {
        OrderGroup {
            program_code: program.into(),
            street_town_code: town.into(),
            state: state.into(),
            repay,
            count,
            fen,
        }
    }

    #[test]
    fn the_monthly_report_adds_each_group_to_its_line_and_the_total() {
        let orders = [
            group("dibao", "990101001000", "paid", false, 2, 140_000),
            group("dibao", "990101001000", "failed", false, 1, 60_000),
            group("dibao", "990101001000", "paid", true, 1, 60_000),
            group("dibao", "990101002000", "returned", false, 1, 50_000),
            group("tekun", "990101001000", "pending", false, 1, 30_000),
        ];
        let recoveries = [RecoveryGroup {
            program_code: "dibao".into(),
            street_town_code: "990101002000".into(),
            count: 1,
            claimed_fen: 50_000,
            repaid_fen: 20_000,
            written_off_fen: 30_000,
            cancelled_fen: 0,
        }];
        let (lines, total) = report_lines(&orders, &recoveries);
        let keys: Vec<(&str, &str)> = lines
            .iter()
            .map(|line| (line.program_code.as_str(), line.street_town_code.as_str()))
            .collect();
        assert_eq!(
            keys,
            [
                ("dibao", "990101001000"),
                ("dibao", "990101002000"),
                ("tekun", "990101001000")
            ]
        );
        let first = &lines[0];
        assert_eq!(
            (first.order_count, first.order_total.unwrap().fen),
            (4, 260_000)
        );
        assert_eq!(
            (first.paid_count, first.paid_total.unwrap().fen),
            (3, 200_000)
        );
        assert_eq!(
            (first.failed_count, first.failed_total.unwrap().fen),
            (1, 60_000)
        );
        assert_eq!(
            (first.repay_count, first.repay_total.unwrap().fen),
            (1, 60_000)
        );
        assert_eq!(first.recovery_count, 0);
        let second = &lines[1];
        assert_eq!((second.returned_count, second.recovery_count), (1, 1));
        assert_eq!(second.recovery_repaid.unwrap().fen, 20_000);
        assert_eq!(second.recovery_written_off.unwrap().fen, 30_000);
        assert_eq!(
            (total.order_count, total.order_total.unwrap().fen),
            (6, 340_000)
        );
        assert_eq!(total.pending_total.unwrap().fen, 30_000);
        // Every order is in exactly one state.
        for line in lines.iter().chain([&total]) {
            assert_eq!(
                line.order_count,
                line.paid_count + line.failed_count + line.returned_count + line.pending_count
            );
        }
    }

    #[test]
    fn the_street_town_is_the_street_tier_prefix_of_the_hukou() {
        assert_eq!(street_town_of("990101001001").unwrap(), "990101001000");
        assert_eq!(street_town_of("990101002000").unwrap(), "990101002000");
        assert!(street_town_of("nope").is_err());
    }

    #[test]
    fn the_local_month_is_beijing_time() {
        // 2026-09-30 16:00 UTC is 2026-10-01 00:00 in Beijing.
        let at = time::macros::datetime!(2026-09-30 16:00 UTC).unix_timestamp() * 1_000_000;
        assert_eq!(local_month(at), Month::parse("2026-10").unwrap());
        assert_eq!(local_month(at - 1), Month::parse("2026-09").unwrap());
    }

    #[test]
    fn payment_hears_only_the_registration_of_intake_s_households() {
        assert!(HeardFromIntake::is_stream("intake-household-1"));
        assert!(!HeardFromIntake::is_stream("intake-official-1"));
        assert!(!HeardFromIntake::is_stream("intake-access-1"));
        assert_eq!(
            HeardFromIntake::decode_known(
                <pb::MemberDied as sunshine_proto::events::Event>::TYPE,
                b""
            ),
            Ok(None)
        );
        let registered = pb::HouseholdRegistered {
            household_id: "h1".into(),
            sealed_payment_account: vec![1, 2, 3],
            ..Default::default()
        };
        let bytes = prost::Message::encode_to_vec(&registered);
        assert_eq!(
            HeardFromIntake::decode_known(
                <pb::HouseholdRegistered as sunshine_proto::events::Event>::TYPE,
                &bytes
            ),
            Ok(Some(HeardFromIntake::Registered(registered)))
        );
    }

    #[test]
    fn payment_hears_only_what_it_declares_of_review() {
        assert!(HeardFromReview::is_stream("review-case-1"));
        assert_eq!(
            HeardFromReview::decode_known(
                <pb::StageEntered as sunshine_proto::events::Event>::TYPE,
                b""
            ),
            Ok(None)
        );
    }
}
