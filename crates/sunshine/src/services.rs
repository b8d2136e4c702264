//! Every service of the cluster, by name, with its `run` function and its default port offset.

use std::future::Future;
use std::pin::Pin;

use sunshine_platform::{Config, RunError, Shutdown};
use tokio::net::TcpListener;

/// A service's `run`, boxed so services can sit in one table.
pub type RunFuture = Pin<Box<dyn Future<Output = Result<(), RunError>> + Send>>;

/// One service in the table.
#[derive(Debug, Clone, Copy)]
pub struct ServiceEntry {
    pub name: &'static str,
    /// Port offset from the base port when every service runs in one process.
    pub port_offset: u16,
    pub run: fn(Config, TcpListener, Shutdown) -> RunFuture,
}

/// The cluster, in the order of the case's life.
pub const SERVICES: [ServiceEntry; 6] = [
    ServiceEntry {
        name: sunshine_intake::SERVICE_NAME,
        port_offset: 0,
        run: |config, listener, shutdown| {
            Box::pin(sunshine_intake::run(config, listener, shutdown))
        },
    },
    ServiceEntry {
        name: sunshine_review::SERVICE_NAME,
        port_offset: 1,
        run: |config, listener, shutdown| {
            Box::pin(sunshine_review::run(config, listener, shutdown))
        },
    },
    ServiceEntry {
        name: sunshine_payment::SERVICE_NAME,
        port_offset: 2,
        run: |config, listener, shutdown| {
            Box::pin(sunshine_payment::run(config, listener, shutdown))
        },
    },
    ServiceEntry {
        name: sunshine_disclosure::SERVICE_NAME,
        port_offset: 3,
        run: |config, listener, shutdown| {
            Box::pin(sunshine_disclosure::run(config, listener, shutdown))
        },
    },
    ServiceEntry {
        name: sunshine_department_integration::SERVICE_NAME,
        port_offset: 4,
        run: |config, listener, shutdown| {
            Box::pin(sunshine_department_integration::run(
                config, listener, shutdown,
            ))
        },
    },
    ServiceEntry {
        name: sunshine_audit::SERVICE_NAME,
        port_offset: 5,
        run: |config, listener, shutdown| Box::pin(sunshine_audit::run(config, listener, shutdown)),
    },
];

/// The service called `name`.
pub fn find(name: &str) -> Option<&'static ServiceEntry> {
    SERVICES.iter().find(|entry| entry.name == name)
}
