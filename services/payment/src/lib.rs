//! Payment service: entitlements, payment runs in fen, fund sources and reconciliation.
//!
//! # Layout
//! So far the runtime skeleton every service shares: gRPC health (SERVING once the database
//! and the bus are connected), reflection, and `ServiceInfoService` behind bearer tokens. The
//! service's own API arrives with the payment issue.

use sunshine_platform::config::LogKeys;
use sunshine_platform::{Config, RunError, Shutdown};
use tokio::net::TcpListener;

/// The service's name in health checks, logs and traces.
pub const SERVICE_NAME: &str = "payment";

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
    sunshine_platform::serve(
        SERVICE_NAME,
        config,
        listener,
        shutdown,
        |_context, _routes| {},
    )
    .await
}
