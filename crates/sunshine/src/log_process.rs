//! The log process (`sunshine serve log`): the only process of the cluster that holds the
//! checkpoint signing key. It sequences the case-event log, builds the Merkle tree, signs
//! checkpoints and relays to JetStream under the log's lease (run two: one works, the other
//! takes over when the first's database session ends). It serves gRPC health and
//! `ServiceInfo` like every service, and nothing else. The services only append and consume;
//! they announce their appends on the bus, which wakes it.

use sunshine_eventlog::runtime::LogRuntime;
use sunshine_platform::config::LogKeys;
use sunshine_platform::{Config, RunError, Shutdown};
use tokio::net::TcpListener;

/// The process's name in health checks, logs, traces and its database role (`sunshine_log`).
pub const PROCESS_NAME: &str = "log";

/// What the log process holds: the checkpoint signing key, no other.
pub const KEYS: LogKeys = LogKeys::LOG_PROCESS;

/// Runs the log process on `listener` until `shutdown`, with the keys already checked.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: Shutdown,
) -> Result<(), RunError> {
    let log_config = config.log.clone();
    let started: std::sync::Arc<std::sync::atomic::AtomicBool> = std::sync::Arc::default();
    let on_connected: sunshine_platform::OnConnected = Box::new(move |backends, shutdown| {
        let log_config = log_config.clone();
        let started = std::sync::Arc::clone(&started);
        Box::pin(async move {
            if started.load(std::sync::atomic::Ordering::Acquire) {
                return Ok(());
            }
            LogRuntime::start_log_process(&backends, &log_config, shutdown).await?;
            started.store(true, std::sync::atomic::Ordering::Release);
            Ok(())
        })
    });
    sunshine_platform::serve_with(
        PROCESS_NAME,
        config,
        listener,
        shutdown,
        |_context, _routes| {},
        Some(on_connected),
    )
    .await
}
