//! Review service: the three-level workflow (village investigation, street-town review,
//! district decision), publicity and objections, four eyes, deadlines.
//!
//! # Layout
//! - [`workflow`]: workflows as data (stages, roles, tiers) from a TOML file.
//! - [`case`]: the case aggregate — stage machine, four eyes, publicity, deadlines (pure).
//! - [`facts`]: intake's household → the policy engine's facts; its decision → `PolicyResult`.
//! - [`case_opener`]: reactions to other services' events (open cases, answers, objections).
//! - [`deadlines`]: the deadline watch and the open-case list.
//! - [`limits`]: the input limits of every request (`docs/limits.md`).
//! - [`api`]: the gRPC service and the injectable clock.

pub mod api;
pub mod case;
pub mod case_opener;
pub mod deadlines;
pub mod events;
pub mod facts;
pub mod limits;
pub mod policy_result;
pub mod workflow;

use std::sync::{Arc, OnceLock};

use sunshine_eventlog::consumer::ConsumerConfig;
use sunshine_eventlog::runtime::LogRuntime;
use sunshine_eventlog::schema::Component;
use sunshine_platform::{Config, RunError, Shutdown};
use sunshine_proto::v1::review_service_server::ReviewServiceServer;
use tokio::net::TcpListener;

use crate::api::{Clock, ReviewApi, ReviewState, SystemClock};

/// The service's name in health checks, logs and traces.
pub const SERVICE_NAME: &str = "review";

/// The service's own tables (`review_…`), migrated by `sunshine migrate` (or on start, SQLite).
pub const READ_MODEL: Component = Component {
    name: "review",
    migrations: deadlines::MIGRATIONS,
};

/// Serves the service on `listener` until `shutdown` fires.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: Shutdown,
) -> Result<(), RunError> {
    run_with_clock(config, listener, shutdown, Arc::new(SystemClock)).await
}

/// [`run`] with a clock of the caller's (tests move time with `api::ManualClock`).
pub async fn run_with_clock(
    config: Config,
    listener: TcpListener,
    shutdown: Shutdown,
    clock: Arc<dyn Clock>,
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
        Box::pin(async move {
            if state.get().is_some() {
                return Ok(());
            }
            let policy = sunshine_intake::load_policy(&config)?;
            let workflows = if config.policy.workflows_file.is_empty() {
                tracing::warn!(
                    "no policy.workflows_file configured: using the EXAMPLE district's workflows"
                );
                workflow::Workflows::example()
            } else {
                let text =
                    std::fs::read_to_string(&config.policy.workflows_file).map_err(|error| {
                        format!(
                            "policy.workflows_file {}: {error}",
                            config.policy.workflows_file
                        )
                    })?;
                workflow::Workflows::from_toml_str(&text)
            }
            .map_err(|error| error.to_string())?;
            let calendar = sunshine_domain::WorkingDayCalendar::embedded()
                .map_err(|error| error.to_string())?;
            let org_tree = config.district.load_org_tree()?;
            let log =
                LogRuntime::start_with(&backends, &config.log, &[READ_MODEL], shutdown.clone())
                    .await?;
            let review_state = ReviewState {
                log: log.clone(),
                policy: Arc::new(policy),
                workflows: Arc::new(workflows),
                calendar: Arc::new(calendar),
                org_tree: Arc::new(org_tree),
                clock,
            };
            log.spawn_consumer(
                case_opener::CaseOpener {
                    state: review_state.clone(),
                },
                ConsumerConfig::default(),
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
