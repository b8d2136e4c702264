//! Department-integration service: departments' systems share records, answer verifications and run their own programs through the shared platform.
//!
//! # Layout
//! So far the runtime skeleton every service shares: gRPC health (SERVING once the database
//! and the bus are connected), reflection, and `ServiceInfoService` behind bearer tokens. The
//! service's own API arrives with the department-integration issue.

use sunshine_platform::config::LogKeys;
use sunshine_platform::{Config, RunError, Shutdown};
use tokio::net::TcpListener;

/// The service's name in health checks, logs and traces.
pub const SERVICE_NAME: &str = "department-integration";

/// The case-event log's keys the service holds: none. Departments ask by resident id number,
/// and the service finds the person through intake, which holds the blind-index key;
/// `docs/security.md` has the table.
pub const KEYS: LogKeys = LogKeys::NONE;

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
    sunshine_platform::serve(
        SERVICE_NAME,
        config,
        listener,
        shutdown,
        |_context, _routes| {},
    )
    .await
}
