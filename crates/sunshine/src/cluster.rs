//! Runs every service in one process, each on its own port (base port + offset), sharing one
//! configuration, one shutdown and one set of the log's wake-up signals (an append by any
//! service wakes whichever log worker holds the lease). This is the embedded deployment; in the cluster each service
//! runs as its own process (`sunshine serve <name>` or the service's own binary).

use std::net::SocketAddr;

use sunshine_eventlog::LogSignals;
use sunshine_platform::config::LogKeys;
use sunshine_platform::{Config, RunError, Shutdown};
use tokio::net::TcpListener;

use crate::services::{SERVICES, ServiceEntry};

/// Binds every service's port, then serves all until `shutdown`; the first error stops all.
pub async fn serve_all(config: Config, shutdown: Shutdown) -> Result<(), RunError> {
    // One process for everything holds what each of them holds.
    SERVICES
        .iter()
        .fold(LogKeys::NONE, |keys, entry| keys.union(entry.keys))
        .check("serve all", &config.log)?;
    let base = config.grpc.listen_address;
    let mut listeners = Vec::new();
    for entry in &SERVICES {
        let address = SocketAddr::new(base.ip(), base.port() + entry.port_offset);
        let listener = TcpListener::bind(address)
            .await
            .map_err(|source| RunError::Bind { address, source })?;
        tracing::info!(service = entry.name, %address, "bound");
        listeners.push((entry, listener));
    }
    let log_signals = LogSignals::new();
    let mut tasks = tokio::task::JoinSet::new();
    for (entry, listener) in listeners {
        let service_config = config.clone();
        let service_shutdown = shutdown.clone();
        let ServiceEntry { run, .. } = *entry;
        tasks.spawn(run(
            service_config,
            listener,
            service_shutdown,
            log_signals.clone(),
        ));
    }
    let mut first_error = None;
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(Ok(())) => {}
            Ok(Err(error)) => {
                tracing::error!(%error, "a service stopped with an error; stopping the others");
                tasks.abort_all();
                first_error.get_or_insert(error);
            }
            Err(join_error) if join_error.is_cancelled() => {}
            Err(join_error) => {
                tracing::error!(%join_error, "a service task panicked; stopping the others");
                tasks.abort_all();
            }
        }
    }
    match first_error {
        Some(error) => Err(error),
        None => Ok(()),
    }
}
