//! Payment service: entitlements, payment runs in fen, fund sources and reconciliation.
//!
//! # Layout
//! So far the runtime skeleton every service shares: gRPC health (SERVING once the database
//! and the bus are connected), reflection, and `ServiceInfoService` behind bearer tokens. The
//! service's own API arrives with the payment issue.

use sunshine_platform::{Config, RunError, Shutdown};
use tokio::net::TcpListener;

/// The service's name in health checks, logs and traces.
pub const SERVICE_NAME: &str = "payment";

/// Serves the service on `listener` until `shutdown` fires.
pub async fn run(
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
