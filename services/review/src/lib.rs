//! Review service: the three-level workflow (village investigation, street-town review,
//! district decision), publicity and objections, four eyes, deadlines and dynamic management.
//!
//! # Layout
//! - [`workflow`]: workflows as data (stages, roles, tiers) from a TOML file.
//! - [`case`]: the case aggregate — stage machine, four eyes, publicity, deadlines (pure).
//! - [`case_opener`]: opens a review case (`CaseOpened` on `review-case-<case id>`) for each
//!   application intake routes to review or emergency assistance.
//!
//! The workflow commands and their API arrive with the review issue; until then the service
//! serves the shared runtime (health, reflection, `ServiceInfoService`) and opens cases.

pub mod case;
pub mod case_opener;
pub mod workflow;

use sunshine_eventlog::consumer::ConsumerConfig;
use sunshine_eventlog::runtime::LogRuntime;
use sunshine_platform::{Config, RunError, Shutdown};
use tokio::net::TcpListener;

/// The service's name in health checks, logs and traces.
pub const SERVICE_NAME: &str = "review";

/// Serves the service on `listener` until `shutdown` fires.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: Shutdown,
) -> Result<(), RunError> {
    let log_config = config.log.clone();
    let started = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let on_connected: sunshine_platform::OnConnected = Box::new(move |backends, shutdown| {
        let log_config = log_config.clone();
        let started = std::sync::Arc::clone(&started);
        Box::pin(async move {
            if started.load(std::sync::atomic::Ordering::SeqCst) {
                return Ok(());
            }
            let log = LogRuntime::start(&backends, &log_config, shutdown.clone()).await?;
            let opener = case_opener::CaseOpener {
                store: log.store.clone(),
            };
            log.spawn_consumer(opener, ConsumerConfig::default(), shutdown);
            started.store(true, std::sync::atomic::Ordering::SeqCst);
            Ok(())
        })
    });
    sunshine_platform::serve_with(
        SERVICE_NAME,
        config,
        listener,
        shutdown,
        |_context, _routes| {},
        Some(on_connected),
    )
    .await
}
