//! Review service: the three-level workflow (village investigation, street-town review,
//! district decision), publicity and objections, four eyes, deadlines.
//!
//! # Layout
//! - [`workflow`]: workflows as data (stages, roles, tiers) from a TOML file.
//! - [`policy_result`]: the policy engine's result on the wire, and old results read forward.
//! - [`events`]: [`events::CaseEvent`], the case stream's events, and their one codec.
//! - [`case`]: the case aggregate — commands, `handle` (decides), `apply` (folds); stage
//!   machine, four eyes, publicity, deadlines (pure).
//! - [`facts`]: intake's household → the policy engine's facts.
//! - [`limits`]: the input limits of every request (`docs/limits.md`).
//! - [`sample`]: the district's home-visit sample of 特困 cases, drawn reproducibly (pure).
//! - [`requests`]: each request parsed into its command, every violation at once.
//! - [`state`]: what handlers and reactions share, and the configuration it is read from.
//! - [`store`]: loads and appends of case streams, the household's evaluation, the case list.
//! - [`deadlines`]: the deadline watch and the open-case list.
//! - [`case_opener`]: reactions to other services' events (open cases, answers, objections).
//! - [`api`]: the gRPC service, every RPC in one shape.
//!
//! [`run`] serves; [`rebuild`] (`sunshine rebuild review`, with the service stopped) resets the
//! service's projections and replays the log into them, built the same way.
//!
//! # Module dependencies
//! Imports point one way; a module uses only the modules after its arrow, all listed above it
//! (checked by `tests/tests/module_order.rs` in the workspace):
//!
//! ```text
//! workflow, policy_result, facts, limits, sample
//! events       → policy_result
//! case         → events, workflow
//! requests     → case, limits
//! state        → workflow
//! store        → case, events, facts, policy_result, state
//! deadlines    → case, state, store, workflow
//! case_opener  → case, events, state, store
//! api          → case, deadlines, limits, requests, sample, state, store, workflow
//! ```

pub mod api;
pub mod case;
pub mod case_opener;
pub mod deadlines;
pub mod events;
pub mod facts;
pub mod limits;
pub mod policy_result;
pub mod requests;
pub mod sample;
pub mod state;
pub mod store;
pub mod workflow;

use std::sync::{Arc, OnceLock};

use sunshine_eventlog::LogSignals;
use sunshine_eventlog::consumer::{Consumer, ConsumerConfig};
use sunshine_eventlog::runtime::{LogRuntime, RebuildError, RebuiltProjection};
use sunshine_eventlog::schema::Component;
use sunshine_platform::config::LogKeys;
use sunshine_platform::{Config, RunError, Shutdown};
use sunshine_proto::v1::review_service_server::ReviewServiceServer;
use tokio::net::TcpListener;

use crate::api::ReviewApi;
use crate::state::{Clock, ReviewState, Setup, SystemClock};

/// The service's name in health checks, logs and traces.
pub const SERVICE_NAME: &str = "review";

/// The service's own tables (`review_…`), migrated by `sunshine migrate` (or on start, SQLite).
pub const READ_MODEL: Component = Component {
    name: "review",
    migrations: deadlines::MIGRATIONS,
};

/// The case-event log's keys the service holds (it seals home-visit findings with the public
/// sealing key and opens nothing); `docs/security.md` has the table.
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
/// them (`serve all`, the test sandboxes).
pub async fn run_sharing_process(
    config: Config,
    listener: TcpListener,
    shutdown: Shutdown,
) -> Result<(), RunError> {
    run_with_clock(config, listener, shutdown, Arc::new(SystemClock)).await
}

/// [`run`] with a clock of the caller's (tests move time with `api::ManualClock`), in a
/// process that has checked its keys.
pub async fn run_with_clock(
    config: Config,
    listener: TcpListener,
    shutdown: Shutdown,
    clock: Arc<dyn Clock>,
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
    clock: Arc<dyn Clock>,
    log_signals: LogSignals,
) -> Result<(), RunError> {
    let state: Arc<OnceLock<ReviewState>> = Arc::new(OnceLock::new());
    let api = ReviewApi {
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
            let setup = Setup::load(&config).map_err(|error| {
                sunshine_platform::StartupError::caused_by("review's configuration", error)
            })?;
            let log = LogRuntime::start_with_signals(
                &backends,
                &config.log,
                &[READ_MODEL],
                log_signals,
                shutdown.clone(),
            )
            .await?;
            let review_state = setup.with_log(log.clone(), clock);
            log.spawn_consumer(
                case_opener_projection(&review_state),
                case_opener_consumer_config(),
                shutdown,
            );
            let _ = state.set(review_state);
            Ok(())
        })
    });
    sunshine_platform::serve_with(
        SERVICE_NAME,
        config,
        listener,
        shutdown,
        |context, routes| {
            let server = ReviewServiceServer::new(api)
                .max_decoding_message_size(context.max_message_bytes())
                .max_encoding_message_size(context.max_message_bytes());
            routes.add_service(context.protect(server));
        },
        Some(on_connected),
    )
    .await
}

/// The case opener, on the service's state (its log, policy and workflows).
fn case_opener_projection(state: &ReviewState) -> case_opener::CaseOpener {
    case_opener::CaseOpener {
        state: state.clone(),
    }
}

fn case_opener_consumer_config() -> ConsumerConfig {
    ConsumerConfig::default()
}

/// `sunshine rebuild review`: resets every projection of the service and replays the whole log
/// into each, built exactly as [`run`] builds them, on the configured backends. Run it with the
/// service stopped.
pub async fn rebuild(config: &Config) -> Result<Vec<RebuiltProjection>, RebuildError> {
    let setup = Setup::load(config).map_err(|error| RebuildError::Setup(Box::new(error)))?;
    LogRuntime::rebuild(SERVICE_NAME, config, &[READ_MODEL], |log| async move {
        let review_state = setup.with_log(log.clone(), Arc::new(SystemClock));
        let consumer = Consumer::new(
            log.store.clone(),
            case_opener_projection(&review_state),
            case_opener_consumer_config(),
        );
        Ok(vec![RebuiltProjection::of(&consumer).await?])
    })
    .await
}
