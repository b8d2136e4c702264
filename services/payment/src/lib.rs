//! Payment service: entitlements, payment runs in fen, fund sources and reconciliation.
//!
//! # Layout
//! - [`validation`]: request checks and limits (`docs/limits.md`, Payment), every bad field
//!   named at once.
//! - [`entitlements`]: what review's decisions entitle a household to, and the amount due in a
//!   month (pure).
//! - [`pay_calendar`]: the payment calendar (dated cadence, due day, non-working-day rule,
//!   from the funds file's `[[calendar]]`) and a period's pay date on the domain's
//!   working-day calendar (pure).
//! - [`care_institutions`]: the care institutions that support 特困 persons centrally
//!   (集中供养) and their bank accounts, dated, from the funds file's `[[institution]]`; the
//!   account in force on a day, or why none is (pure).
//! - [`funds`]: which fund pays which program (dated) and each fund's budget per year and
//!   program, from the funds file; the budget arithmetic (pure).
//! - [`medical`]: serious-illness medical assistance claims — the arithmetic from the
//!   policy's parameters (share by category, deductible, annual cap less earlier claims), and
//!   the claim's stream `payment-medical-<id>`: its event, fold and decision (pure).
//! - [`bank_files`]: the bank's batch, result and returns (退票) files, byte by byte
//!   (`docs/bank-files.md`): written and read (pure), every bad line of a result or returns
//!   file named at once.
//! - [`inspection`]: the discipline-inspection commission's (纪委) export of a run, pure: the
//!   household as HMAC-SHA256 under the export key, the account's last 4 digits from the bank
//!   file's own account function, the file's layout (`docs/inspection-export.md`).
//! - [`commands`]: requests parsed into commands (named fields, typed values); the run's id
//!   from the command id; the facts a creation decides on.
//! - [`aggregate`]: the payment run — its events, fold and decisions, `handle(run, command)`
//!   → events (pure): orders, control totals, four eyes, re-keyed figures; the bank's result
//!   and returns matched against the run; the reconciliation closed by a second approver.
//! - [`ledger`]: double-entry postings in fen from payment's own events (pure): an order the
//!   bank paid debits its expense account and credits its fund, and a return reverses it;
//!   balanced by construction.
//! - [`recovery`]: recovery claims (追缴), pure — when a paid month is owed back (an order the
//!   bank paid for a period on or after its entitlement's termination), the claim's events,
//!   fold and decisions (repayments up to what is outstanding, a write-off by another
//!   officer), and each event's postings.
//! - [`cash`]: emergency cash (急难), pure — an assist-first grant paid at once in cash with a
//!   recorded reason (`payment-cash-<payment id>`, `EmergencyCashPaid`): the request's
//!   checks, the decision (only assist-first grants, the grant's amount, the assist-first
//!   fund), its order under the run id `cash-<payment id>`.
//! - [`errors`]: refusals as `ApiError`s, in one place.
//! - [`read_model`]: payment's tables — intake's sealed payment accounts, review's cases, entitlements, the guard tables of one
//!   order per entitlement per period and one re-pay per failed or returned order, the orders'
//!   states, the ledger's lines, the medical claims' (patient, year, sequence), the recovery
//!   claims — and the projection over intake's household streams, review's case streams and
//!   payment's own; the queries'
//!   reads (a household's orders, the runs, the monthly report's groups and their lines).
//! - [`store`]: load (retries, scope, versions), the period's facts, and appends (the guard's
//!   claims in the append's transaction); the recovery claims' streams; the 纪委's exports
//!   recorded on `payment-inspection-<run id>`.
//! - [`recovery_watch`]: the reaction that opens recovery claims when the bank's result or
//!   review's termination makes a paid month owed back, once per order.
//! - [`bank_export`]: `ExportBankFile` streamed: the run's orders read from their table a
//!   page at a time, each household's account opened for the file, a first pass that digests
//!   the file before the export is recorded and a second that sends it in parts, each checked
//!   against the first.
//! - [`api`]: the gRPC service: every RPC identity → parse → load → decide → append → answer.
//!
//! Runs are created and approved (slice 1), exported to the bank and settled by the bank's
//! result file, and re-pay runs pay the failed orders again (slice 2: an order is paid only
//! when the bank's result says so); fund sources and the ledger (slice 3); returns (退票)
//! reverse a paid order and are re-paid, and a second approver closes the run's
//! reconciliation (settlement, with a property test over an in-memory model of the guards in
//! `tests/settlement_model.rs`); the payment calendar (each run records its pay date);
//! serious-illness medical claims (assessed at once, paid as a one-off entitlement by the next
//! month's run); recovery claims (`payment-recovery-<claim id>`).
//! A run names households by id; the bank file carries each household's payment account as
//! intake sealed it (its projection keeps the sealed bytes, `payment_accounts`), opened only
//! for the file, the matching of the bank's answers and the 纪委's account tail — never stored,
//! logged or put in an event opened (`docs/bank-files.md`) — or, for an order of a 特困 person
//! supported centrally, the care institution's account from the funds file.
//!
//! [`run`] serves; [`rebuild`] (`sunshine rebuild payment`, with the service stopped) resets
//! the service's projection and replays the log into it, built the same way. The recovery
//! watch is a reaction, not a projection: what it decided is on the log already, and a
//! rebuild does not run it.
//!
//! # Module dependencies
//! Imports point one way; a module uses only the modules after its arrow, all listed above it
//! (checked by `tests/tests/module_order.rs` in the workspace):
//!
//! ```text
//! validation, entitlements, pay_calendar, bank_files
//! inspection   → bank_files
//! care_institutions → bank_files
//! funds        → care_institutions, pay_calendar
//! medical      → entitlements
//! commands     → bank_files, entitlements, funds, medical, pay_calendar, validation
//! aggregate    → bank_files, commands, entitlements, funds, pay_calendar
//! ledger       → funds
//! recovery     → commands, ledger
//! cash         → commands, entitlements, funds, validation
//! errors       → aggregate, cash, medical, recovery
//! read_model   → aggregate, cash, commands, entitlements, funds, inspection, ledger, medical, recovery
//! store        → aggregate, bank_files, care_institutions, cash, commands, entitlements, errors, funds, medical, read_model, recovery
//! recovery_watch → aggregate, commands, read_model, recovery, store
//! bank_export  → aggregate, bank_files, care_institutions, commands, entitlements, funds, read_model, store
//! api          → aggregate, bank_export, bank_files, care_institutions, cash, commands, errors, funds, inspection, medical, read_model, recovery, store, validation
//! ```

pub mod aggregate;
pub mod api;
pub mod bank_export;
pub mod bank_files;
pub mod care_institutions;
pub mod cash;
pub mod commands;
pub mod entitlements;
pub mod errors;
pub mod funds;
pub mod inspection;
pub mod ledger;
pub mod medical;
pub mod pay_calendar;
pub mod read_model;
pub mod recovery;
pub mod recovery_watch;
pub mod store;
pub mod validation;

use std::sync::{Arc, OnceLock};

use sunshine_eventlog::LogSignals;
use sunshine_eventlog::consumer::{Consumer, ConsumerConfig};
use sunshine_eventlog::runtime::{LogRuntime, RebuildError, RebuiltProjection};
use sunshine_eventlog::schema::Component;
use sunshine_platform::config::LogKeys;
use sunshine_platform::{Config, RunError, Shutdown};
use sunshine_proto::v1::payment_service_server::PaymentServiceServer;
use tokio::net::TcpListener;

use crate::api::{PaymentApi, PaymentState};

/// The service's name in health checks, logs and traces.
pub const SERVICE_NAME: &str = "payment";

/// The service's own tables (`payment_…`), migrated by `sunshine migrate` (or on start, SQLite).
pub const READ_MODEL: Component = Component {
    name: "payment",
    migrations: read_model::MIGRATIONS,
};

/// The case-event log's keys the service holds (payment accounts and the bank file are personal
/// data it seals and opens); `docs/security.md` has the table.
pub const KEYS: LogKeys = LogKeys {
    key_encryption: true,
    sealing: true,
    ..LogKeys::NONE
};

/// Serves the service on its own on `listener` until `shutdown` fires; refuses to start when
/// the configuration gives it a key its role does not hold, or lacks one it needs.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: Shutdown,
) -> Result<(), RunError> {
    KEYS.check(SERVICE_NAME, &config.log)?;
    run_sharing_process(config, listener, shutdown).await
}

/// [`run`] in a process that runs other services too and has checked its keys for all of
/// them (`serve all`, `sunshine serve <name>`).
pub async fn run_sharing_process(
    config: Config,
    listener: TcpListener,
    shutdown: Shutdown,
) -> Result<(), RunError> {
    run_with_clock(
        config,
        listener,
        shutdown,
        Arc::new(sunshine_platform::clock::SystemClock),
    )
    .await
}

/// [`run`] with a clock of the caller's (tests move the month), in a process that has checked
/// its keys.
pub async fn run_with_clock(
    config: Config,
    listener: TcpListener,
    shutdown: Shutdown,
    clock: Arc<dyn sunshine_platform::clock::Clock>,
) -> Result<(), RunError> {
    run_sharing_log(config, listener, shutdown, clock, LogSignals::new()).await
}

/// [`run_with_clock`] in a process that runs other services on the same database (`serve
/// all`, the test sandbox): each is given the same `log_signals`, so an append by any of them
/// wakes whichever log worker holds the lease.
pub async fn run_sharing_log(
    config: Config,
    listener: TcpListener,
    shutdown: Shutdown,
    clock: Arc<dyn sunshine_platform::clock::Clock>,
    log_signals: LogSignals,
) -> Result<(), RunError> {
    let state: Arc<OnceLock<PaymentState>> = Arc::new(OnceLock::new());
    let api = PaymentApi {
        state: Arc::clone(&state),
    };
    let started_config = config.clone();
    let on_connected: sunshine_platform::OnConnected = Box::new(move |backends, shutdown| {
        let state = Arc::clone(&state);
        let config = started_config.clone();
        let clock = Arc::clone(&clock);
        let log_signals = log_signals.clone();
        Box::pin(async move {
            if state.get().is_some() {
                return Ok(());
            }
            let org_tree = config
                .district
                .load_org_tree()
                .map_err(|error| format!("district.org_tree_file: {error}"))?;
            let funds = load_funds(&config.payment.funds_file)?;
            let inspection_key = load_inspection_key(&config.payment.inspection_key_file)?;
            let working_days = sunshine_domain::WorkingDayCalendar::embedded()
                .map_err(|error| format!("working-day calendar: {error}"))?;
            let policy = sunshine_policy::Policy::load_configured(&config.policy.directory)
                .map_err(|error| format!("policy: {error}"))?;
            let log = LogRuntime::start_with_signals(
                &backends,
                &config.log,
                &[READ_MODEL],
                log_signals,
                shutdown.clone(),
            )
            .await?;
            log.spawn_consumer(
                entitlements_projection(),
                entitlements_consumer_config(),
                shutdown.clone(),
            );
            let store = store::PaymentStore::new(log.clone());
            log.spawn_consumer(
                recovery_watch::RecoveryWatch {
                    store: store.clone(),
                    district_code: org_tree.district().code().as_str().to_owned(),
                },
                recovery_watch_config(),
                shutdown,
            );
            let _ = state.set(PaymentState {
                store,
                clock,
                district: org_tree.district().code().clone(),
                funds: Arc::new(funds),
                working_days: Arc::new(working_days),
                policy: Arc::new(policy),
                inspection_key,
                bank_file_part_bytes: bank_export::part_bytes(config.payment.bank_file_chunk_bytes),
            });
            Ok(())
        })
    });
    sunshine_platform::serve_with(
        SERVICE_NAME,
        config,
        listener,
        shutdown,
        |context, routes| {
            let server = PaymentServiceServer::new(api)
                .max_decoding_message_size(context.max_message_bytes())
                .max_encoding_message_size(context.max_message_bytes());
            routes.add_service(context.protect(server));
        },
        Some(on_connected),
    )
    .await
}

/// The configured funds file, or the EXAMPLE district's (with a warning) when none is.
fn load_funds(path: &str) -> Result<funds::Funds, String> {
    if path.is_empty() {
        tracing::warn!("no payment.funds_file configured: using the EXAMPLE district's funds");
        return funds::Funds::example().map_err(|error| error.to_string());
    }
    let text = std::fs::read_to_string(path)
        .map_err(|error| format!("payment.funds_file {path}: {error}"))?;
    funds::Funds::from_toml_str(&text)
        .map_err(|error| format!("payment.funds_file {path}: {error}"))
}

/// The configured 纪委 export key, or none (the export is then refused) when none is.
fn load_inspection_key(path: &str) -> Result<Option<Arc<inspection::InspectionKey>>, String> {
    if path.is_empty() {
        tracing::warn!("no payment.inspection_key_file configured: the 纪委 export is refused");
        return Ok(None);
    }
    let content = std::fs::read(path)
        .map_err(|error| format!("payment.inspection_key_file {path}: {error}"))?;
    inspection::InspectionKey::from_file_content(&content)
        .map(|key| Some(Arc::new(key)))
        .map_err(|error| format!("payment.inspection_key_file {path}: {error}"))
}

/// The entitlements projection (review's cases and decisions, and the runs' guard rows).
fn entitlements_projection() -> read_model::PaymentEntitlements {
    read_model::PaymentEntitlements
}

/// A decision heard before its case's opening (never, in log order) is tried again soon.
fn entitlements_consumer_config() -> ConsumerConfig {
    ConsumerConfig {
        retry_delay: std::time::Duration::from_millis(300),
        max_attempts: 20,
        ..ConsumerConfig::default()
    }
}

/// The recovery watch waits for the entitlements projection in each reaction; an event it
/// could not take yet is tried again, long enough for a projection busy with a large run.
fn recovery_watch_config() -> ConsumerConfig {
    ConsumerConfig {
        retry_delay: std::time::Duration::from_millis(500),
        max_attempts: 120,
        ..ConsumerConfig::default()
    }
}

/// `sunshine rebuild payment`: resets the service's projection and replays the whole log into
/// it, built exactly as [`run`] builds it, on the configured backends. Run it with the service
/// stopped.
pub async fn rebuild(config: &Config) -> Result<Vec<RebuiltProjection>, RebuildError> {
    LogRuntime::rebuild(SERVICE_NAME, config, &[READ_MODEL], |log| async move {
        let consumer = Consumer::new(
            log.store.clone(),
            entitlements_projection(),
            entitlements_consumer_config(),
        );
        Ok(vec![RebuiltProjection::of(&consumer).await?])
    })
    .await
}
