//! Department-integration service: departments' systems share their assistance records and ask
//! what assistance a person receives, within their scope, through the shared platform.
//!
//! # Layout
//! - [`dictionary`]: the field dictionary — data items in classes with a sensitivity flag
//!   (after MZ/T 073-2024), project data in `data/field-dictionary.toml` (pure).
//! - [`registry`]: the department registry from `integration.departments_file` — codes, names,
//!   programs, the data items each reads and answers, the events each receives; a
//!   department's reading scope (pure).
//! - [`records`]: a department's assistance record checked field by field, every bad field
//!   named under its place; the batch's bounds (pure).
//! - [`csv`]: the CSV file of records (`docs/department-files.md`), row by row (pure).
//! - [`aggregate`]: a batch's decision — stored, unchanged, refused, rejected — and the
//!   events of `department-integration-batch-<id>` and `department-integration-access-<dept>`
//!   (pure).
//! - [`errors`]: refusals as `ApiError`s, in one place.
//! - [`read_model`]: `integration_records`, the guard of one record per (department, record
//!   id), written in the push's append transaction, and the queries' read.
//! - [`store`]: retries, the person index (the service's own key), sealing, the append with
//!   its guard, access records.
//! - [`check`]: the economic-status check (核对) — consent, the case review waits on, one
//!   request per data holder with its deadline, typed answers, overdue requests, the report,
//!   the re-check — and the events of `department-integration-check-<id>` and
//!   `department-integration-consent-<household>` (pure).
//! - [`check_store`]: the check's loads (review's case, intake's household, the consent, the
//!   check) and appends, the answers sealed, the work queue's rows in the append.
//! - [`api`]: the gRPC service: every RPC identity → parse → load → decide → append → answer.
//! - [`check_api`]: the check's RPCs, the same shape.
//! - [`duplicates`]: duplicate assistance across departments — same person, program and
//!   compared kind, overlapping periods, under the policy's `integration.duplicate_*` — and the
//!   events of `department-integration-duplicate-<id>` (pure).
//! - [`duplicates_store`]: the persons' stored records, the pairs found before, each pair's
//!   append with its `integration_duplicates` row, the work queue's page.
//! - [`duplicates_api`]: `ListDuplicateAssistance` (detection runs in the push: the store's
//!   `detect_duplicates`).
//! - [`monitoring`]: the monitoring platform's warnings checked, received, closed with an
//!   outcome; their status as of a day; the feed's file and hashed ids; the events (pure).
//! - [`monitoring_store`]: the warnings' rows and appends (`integration_warnings`).
//! - [`monitoring_api`]: `ImportMonitoringWarnings`, `CloseMonitoringWarning`,
//!   `ListMonitoringWarnings`, `ExportMonitoringFeed` (`docs/monitoring-feed.md`).
//! - [`subscriptions`]: `SubscribeEvents` — a department's scope of the log, projected, read
//!   by position and fed through a bounded channel (pure projection; the reading task).
//! - [`linkage`]: linkage rules as data (`integration.linkage_file`) and their evaluation on
//!   an approval (pure).
//! - [`linkage_store`]: the linkage watch (the consumer that sends notices on review's
//!   approvals), the notices' streams and `integration_linkage_notices`.
//! - [`linkage_api`]: slice 3's RPCs — subscribe, acknowledge a notice, list notices.
//!
//! Slice 1 of issue 13: the registry, push, CSV import and query; slice 2: the
//! economic-status check (`docs/economic-status-check.md`). Subscriptions, linkage,
//! duplicates and monitoring build on them.
//!
//! # Module dependencies
//! Imports point one way; a module uses only the modules after its arrow, all listed above it
//! (checked by `tests/tests/module_order.rs` in the workspace):
//!
//! ```text
//! dictionary
//! registry     → dictionary
//! records      → dictionary, registry
//! csv          → records, registry
//! aggregate    → records
//! check        → dictionary, registry
//! errors       → check
//! read_model   → aggregate
//! store        → aggregate, errors, read_model
//! check_store  → check, read_model, store
//! subscriptions → dictionary, registry
//! linkage      → dictionary, registry
//! api          → aggregate, csv, dictionary, errors, linkage, read_model, records, registry, store, subscriptions
//! check_api    → api, check, check_store, dictionary, errors, read_model, registry, store
//! duplicates
//! duplicates_store → duplicates, store
//! duplicates_api → api, duplicates_store
//! monitoring
//! monitoring_store → monitoring, store
//! monitoring_api → api, dictionary, errors, monitoring, monitoring_store, store
//! linkage_store → linkage, store
//! linkage_api  → api, dictionary, errors, linkage, linkage_store, store, subscriptions
//! ```

pub mod aggregate;
pub mod api;
pub mod check;
pub mod check_api;
pub mod check_store;
pub mod csv;
pub mod dictionary;
pub mod duplicates;
pub mod duplicates_api;
pub mod duplicates_store;
pub mod errors;
pub mod monitoring;
pub mod monitoring_api;
pub mod monitoring_store;
pub mod read_model;
pub mod records;
pub mod registry;
pub mod store;
// ---- subscriptions and linkage (slice 3) ----
pub mod linkage;
pub mod linkage_api;
pub mod linkage_store;
pub mod subscriptions;

use std::sync::{Arc, OnceLock};

use sunshine_eventlog::crypto::BlindIndexKey;
use sunshine_eventlog::runtime::LogRuntime;
use sunshine_eventlog::schema::Component;
use sunshine_platform::config::LogKeys;
use sunshine_platform::{Config, RunError, Shutdown};
use sunshine_proto::v1::department_integration_service_server::DepartmentIntegrationServiceServer;
use tokio::net::TcpListener;

use crate::api::{IntegrationApi, IntegrationState};

/// The service's name in health checks, logs and traces.
pub const SERVICE_NAME: &str = "department-integration";

/// The service's own tables (`integration_…`), migrated by `sunshine migrate` (or on start,
/// SQLite).
pub const READ_MODEL: Component = Component {
    name: "integration",
    migrations: read_model::MIGRATIONS,
};

/// The case-event log's keys the service holds: `sealing` only (the seal-only public key), to
/// seal the id numbers of departments' records without being able to open them. It holds
/// neither the key-encryption key nor intake's blind-index key; a query finds a department's
/// records by the service's own person index (`integration.person_index_key`), which tests id
/// numbers against departments' records only, never against intake's register.
/// `docs/security.md` has the table.
pub const KEYS: LogKeys = LogKeys {
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

/// [`run_sharing_process`] with a clock of the caller's (tests move the day past a check's
/// deadlines).
pub async fn run_with_clock(
    config: Config,
    listener: TcpListener,
    shutdown: Shutdown,
    clock: Arc<dyn sunshine_platform::clock::Clock>,
) -> Result<(), RunError> {
    let state: Arc<OnceLock<IntegrationState>> = Arc::new(OnceLock::new());
    let api = IntegrationApi {
        state: Arc::clone(&state),
    };
    let started_config = config.clone();
    let on_connected: sunshine_platform::OnConnected = Box::new(move |backends, shutdown| {
        let state = Arc::clone(&state);
        let config = started_config.clone();
        let clock = Arc::clone(&clock);
        Box::pin(async move {
            if state.get().is_some() {
                return Ok(());
            }
            let org_tree = config
                .district
                .load_org_tree()
                .map_err(|error| format!("district.org_tree_file: {error}"))?;
            let registry = load_registry(&config.integration.departments_file)?;
            let dictionary =
                dictionary::FieldDictionary::embedded().map_err(|error| error.to_string())?;
            let working_days = sunshine_domain::WorkingDayCalendar::embedded()
                .map_err(|error| format!("working-day calendar: {error}"))?;
            let policy = sunshine_policy::Policy::load_configured(&config.policy.directory)
                .map_err(|error| format!("policy: {error}"))?;
            let person_index_key = match config.integration.person_index_key()? {
                Some(text) => Some(Arc::new(
                    BlindIndexKey::from_base64(&text)
                        .map_err(|error| format!("integration.person_index_key: {error}"))?,
                )),
                None => {
                    tracing::warn!(
                        "no integration.person_index_key: pushes and queries answer FAILED_PRECONDITION"
                    );
                    None
                }
            };
            let linkage = Arc::new(load_linkage(&config.integration.linkage_file, &registry)?);
            let log =
                LogRuntime::start_with(&backends, &config.log, &[READ_MODEL], shutdown.clone())
                    .await?;
            let store = store::IntegrationStore::new(log.clone(), person_index_key);
            log.spawn_consumer(
                linkage_store::LinkageWatch {
                    store: store.clone(),
                    rules: Arc::clone(&linkage),
                },
                sunshine_eventlog::consumer::ConsumerConfig {
                    retry_delay: std::time::Duration::from_millis(500),
                    max_attempts: 120,
                    ..sunshine_eventlog::consumer::ConsumerConfig::default()
                },
                shutdown,
            );
            let _ = state.set(IntegrationState {
                poll_interval: std::time::Duration::from_millis(config.log.poll_interval_ms),
                linkage,
                store,
                registry: Arc::new(registry),
                district: org_tree.district().code().clone(),
                dictionary: Arc::new(dictionary),
                policy: Arc::new(policy),
                working_days: Arc::new(working_days),
                clock,
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
            let server = DepartmentIntegrationServiceServer::new(api)
                .max_decoding_message_size(context.max_message_bytes())
                .max_encoding_message_size(context.max_message_bytes());
            routes.add_service(context.protect(server));
        },
        Some(on_connected),
    )
    .await
}

/// The configured registry, or the EXAMPLE district's (with a warning) when none is.
fn load_registry(path: &str) -> Result<registry::Registry, String> {
    let dictionary = dictionary::FieldDictionary::embedded().map_err(|error| error.to_string())?;
    if path.is_empty() {
        tracing::warn!(
            "no integration.departments_file configured: using the EXAMPLE district's departments"
        );
        return registry::Registry::example(&dictionary).map_err(|error| error.to_string());
    }
    let text = std::fs::read_to_string(path)
        .map_err(|error| format!("integration.departments_file {path}: {error}"))?;
    registry::Registry::from_toml_str(&text, &dictionary)
        .map_err(|error| format!("integration.departments_file {path}: {error}"))
}

/// The configured linkage rules, or the EXAMPLE district's (with a warning) when none are.
fn load_linkage(
    path: &str,
    registry: &registry::Registry,
) -> Result<linkage::LinkageRules, String> {
    if path.is_empty() {
        tracing::warn!(
            "no integration.linkage_file configured: using the EXAMPLE district's linkage rules"
        );
        return linkage::LinkageRules::example(registry).map_err(|error| error.to_string());
    }
    let text = std::fs::read_to_string(path)
        .map_err(|error| format!("integration.linkage_file {path}: {error}"))?;
    linkage::LinkageRules::from_toml_str(&text, registry)
        .map_err(|error| format!("integration.linkage_file {path}: {error}"))
}
