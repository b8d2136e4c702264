//! Intake service: the household registry and one-window acceptance (受理) of applications at
//! every village-community and street-town service point, routing each to review, a
//! department, or emergency assistance.
//!
//! # Layout
//! - [`validation`]: request checks and limits, every bad field named at once.
//! - [`commands`]: requests parsed into commands (named fields, typed values) and the
//!   personal data each carries.
//! - [`aggregate`]: the household aggregate's decisions, `handle(household, command)` → events
//!   (pure); the household itself — events, fold, checks, sealed-field paths — is the shared
//!   `sunshine-household` crate's.
//! - [`access`]: who may see which personal data in full, for which purpose (pure).
//! - [`masking`]: masked forms of personal data and the member as a caller sees it.
//! - [`read_model`]: intake's tables (queries, person index, officials' relatives registry,
//!   reads per officer), the append guards that write guard rows with their events, and the
//!   projection that keeps the tables.
//! - [`streams`]: intake's streams other than the household's (the registry of officials'
//!   relatives, the records of reads and of attempts outside the scope, the quota's
//!   refusals): their events and stream names.
//! - [`store`]: load (retries, scope, versions) and append (sealing, digests, guards), and
//!   the records of calls.
//! - [`errors`]: refusals as `ApiError`s, in one place.
//! - [`api`]: the gRPC service: every RPC identity → parse → load → decide → append → answer.
//!
//! Personal data (names, id numbers, phones, addresses, accounts, declared facts, reasons) is
//! sealed with the household's data key before it enters an event; lookups by id number use a
//! keyed blind index. Every read of a household is itself an event, and so is every attempt
//! on a household outside the caller's scope, which reads exactly like one that does not exist.
//!
//! [`run`] serves; [`rebuild`] (`sunshine rebuild intake`, with the service stopped) resets the
//! service's projections and replays the log into them, built the same way.
//!
//! # Module dependencies
//! Imports point one way; a module uses only the modules after its arrow, all listed above it
//! (checked by `tests/tests/module_order.rs` in the workspace):
//!
//! ```text
//! validation, access, streams
//! masking      → access
//! read_model   → streams
//! commands     → read_model, validation
//! aggregate    → commands, read_model
//! errors       → aggregate
//! store        → commands, errors, read_model, streams
//! api          → everything above
//! ```

pub mod access;
pub mod aggregate;
pub mod api;
pub mod commands;
pub mod errors;
pub mod masking;
pub mod read_model;
pub mod store;
pub mod streams;
pub mod validation;

use std::sync::{Arc, OnceLock};

use sunshine_eventlog::LogSignals;
use sunshine_eventlog::consumer::{Consumer, ConsumerConfig};
use sunshine_eventlog::runtime::{LogRuntime, RebuildError, RebuiltProjection};
use sunshine_eventlog::schema::Component;
use sunshine_platform::config::LogKeys;
use sunshine_platform::{Config, RunError, Shutdown};
use sunshine_proto::v1::intake_service_server::IntakeServiceServer;
use tokio::net::TcpListener;

use crate::api::{IntakeApi, IntakeState};

/// The service's name in health checks, logs and traces.
pub const SERVICE_NAME: &str = "intake";

/// The service's own tables (`intake_…`), migrated by `sunshine migrate` (or on start, SQLite).
pub const READ_MODEL: Component = Component {
    name: "intake",
    migrations: read_model::MIGRATIONS,
};

/// The case-event log's keys the service holds (it seals and opens households' personal data and
/// finds people by id number); `docs/security.md` has the table.
pub const KEYS: LogKeys = LogKeys {
    key_encryption: true,
    blind_index: true,
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
/// them (`serve all`, the test sandboxes).
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

/// [`run`] with a clock of the caller's (tests move the date of acceptance), in a process that
/// has checked its keys.
pub async fn run_with_clock(
    config: Config,
    listener: TcpListener,
    shutdown: Shutdown,
    clock: Arc<dyn sunshine_platform::clock::Clock>,
) -> Result<(), RunError> {
    run_sharing_log(config, listener, shutdown, clock, LogSignals::new()).await
}

/// [`run_with_clock`] in a process that runs other services on the same database (`serve
/// all`, the demo, the test sandbox): each is given the same `log_signals`, so an append by
/// any of them wakes whichever log worker holds the lease.
pub async fn run_sharing_log(
    config: Config,
    listener: TcpListener,
    shutdown: Shutdown,
    clock: Arc<dyn sunshine_platform::clock::Clock>,
    log_signals: LogSignals,
) -> Result<(), RunError> {
    let state: Arc<OnceLock<IntakeState>> = Arc::new(OnceLock::new());
    let api = IntakeApi {
        state: Arc::clone(&state),
    };
    let log_config = config.log.clone();
    let started_config = config.clone();
    let on_connected: sunshine_platform::OnConnected = Box::new(move |backends, shutdown| {
        let state = Arc::clone(&state);
        let log_config = log_config.clone();
        let config = started_config.clone();
        let clock = Arc::clone(&clock);
        let log_signals = log_signals.clone();
        Box::pin(async move {
            if state.get().is_some() {
                return Ok(());
            }
            let policy = sunshine_policy::Policy::load_configured(&config.policy.directory)
                .map_err(|error| sunshine_platform::StartupError::caused_by("policy", error))?;
            let org_tree = config
                .district
                .load_org_tree()
                .map_err(|error| format!("district.org_tree_file: {error}"))?;
            let log = LogRuntime::start_with_signals(
                &backends,
                &log_config,
                &[READ_MODEL],
                log_signals,
                shutdown.clone(),
            )
            .await?;
            let blind_index_key = log.blind_index_key().ok_or_else(|| {
                sunshine_platform::StartupError::caused_by(
                    "intake's keys",
                    std::io::Error::other("log.blind_index_key is required by intake"),
                )
            })?;
            log.spawn_consumer(
                read_model_projection(&log),
                read_model_consumer_config(),
                shutdown,
            );
            let _ = state.set(IntakeState {
                store: store::IntakeStore::new(
                    log,
                    blind_index_key,
                    Arc::new(config.policy.official_relative_relations.clone()),
                    config.privacy.personal_data_reads_per_officer_per_hour,
                ),
                policy: Arc::new(policy),
                clock,
                org_tree: Arc::new(org_tree),
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
            let server = IntakeServiceServer::new(api)
                .max_decoding_message_size(context.max_message_bytes())
                .max_encoding_message_size(context.max_message_bytes());
            routes.add_service(context.protect(server));
        },
        Some(on_connected),
    )
    .await
}

/// The read model's projection, on the service's log.
fn read_model_projection(log: &LogRuntime) -> read_model::IntakeReadModel {
    read_model::IntakeReadModel {
        store: log.store.clone(),
    }
}

/// The read model's consumer: a closing heard before its application is tried again soon and
/// often.
fn read_model_consumer_config() -> ConsumerConfig {
    ConsumerConfig {
        retry_delay: std::time::Duration::from_millis(300),
        max_attempts: 20,
        ..ConsumerConfig::default()
    }
}

/// `sunshine rebuild intake`: resets every projection of the service and replays the whole log
/// into each, built exactly as [`run`] builds them, on the configured backends. Run it with the
/// service stopped.
pub async fn rebuild(config: &Config) -> Result<Vec<RebuiltProjection>, RebuildError> {
    LogRuntime::rebuild(SERVICE_NAME, config, &[READ_MODEL], |log| async move {
        let consumer = Consumer::new(
            log.store.clone(),
            read_model_projection(&log),
            read_model_consumer_config(),
        );
        Ok(vec![RebuiltProjection::of(&consumer).await?])
    })
    .await
}
