//! Every service of the cluster, by name, with its `run` function, its default port offset,
//! what it needs in the database and, for those with projections, its `rebuild`.

use std::future::Future;
use std::pin::Pin;

use std::sync::Arc;

use sunshine_eventlog::runtime::RebuiltProjection;

use sunshine_eventlog::LogSignals;
use sunshine_eventlog::roles::ServiceAccess;
use sunshine_eventlog::schema::Component;
use sunshine_platform::clock::SystemClock;
use sunshine_platform::config::LogKeys;
use sunshine_platform::{Config, RunError, Shutdown};
use tokio::net::TcpListener;

/// A service's `run`, boxed so services can sit in one table.
pub type RunFuture = Pin<Box<dyn Future<Output = Result<(), RunError>> + Send>>;

/// A service's `rebuild`, boxed likewise: what it did to each of its projections.
pub type RebuildFuture = Pin<Box<dyn Future<Output = anyhow::Result<Vec<Rebuilt>>> + Send>>;

/// What `sunshine rebuild` did to one projection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rebuilt {
    pub service: &'static str,
    pub projection: String,
    /// Events of the log the projection applied.
    pub applied: usize,
}

impl Rebuilt {
    fn all(service: &'static str, projections: Vec<RebuiltProjection>) -> Vec<Rebuilt> {
        projections
            .into_iter()
            .map(|projection| Rebuilt {
                service,
                projection: projection.projection,
                applied: projection.applied,
            })
            .collect()
    }
}

/// One service in the table.
#[derive(Debug, Clone, Copy)]
pub struct ServiceEntry {
    pub name: &'static str,
    /// Port offset from the base port when every service runs in one process.
    pub port_offset: u16,
    /// Runs the service; those that run the log share the process's [`LogSignals`] with the
    /// other services on the same database (`serve all`), the others ignore them.
    pub run: fn(Config, TcpListener, Shutdown, LogSignals) -> RunFuture,
    /// The service's own tables, migrated by `sunshine migrate`.
    pub read_model: Option<Component>,
    /// Whether it runs the case-event log (appends, sequences, relays, consumes): its database
    /// role then joins `sunshine_log_writer`. Those that do not yet only connect.
    pub writes_log: bool,
    /// Resets the service's projections and replays the log into them (`sunshine rebuild`),
    /// with the service stopped; `None` for a service without projections.
    pub rebuild: Option<fn(Config) -> RebuildFuture>,
    /// The log's keys it holds: `sunshine serve <name>` refuses to start with any other.
    pub keys: LogKeys,
}

impl ServiceEntry {
    /// What the service's database role needs (`sunshine migrate` grants it).
    pub fn access(&self) -> ServiceAccess {
        ServiceAccess {
            service: self.name,
            writes_log: self.writes_log,
            read_model: self.read_model.map(|component| component.name),
            holds_key_encryption: self.keys.key_encryption,
        }
    }
}

/// The cluster, in the order of the case's life, and the log process last.
pub const SERVICES: [ServiceEntry; 7] = [
    ServiceEntry {
        name: sunshine_intake::SERVICE_NAME,
        port_offset: 0,
        run: |config, listener, shutdown, log_signals| {
            Box::pin(sunshine_intake::run_sharing_log(
                config,
                listener,
                shutdown,
                Arc::new(SystemClock),
                log_signals,
            ))
        },
        read_model: Some(sunshine_intake::READ_MODEL),
        writes_log: true,
        rebuild: Some(|config| {
            Box::pin(async move {
                let rebuilt = sunshine_intake::rebuild(&config).await?;
                Ok(Rebuilt::all(sunshine_intake::SERVICE_NAME, rebuilt))
            })
        }),
        keys: sunshine_intake::KEYS,
    },
    ServiceEntry {
        name: sunshine_review::SERVICE_NAME,
        port_offset: 1,
        run: |config, listener, shutdown, log_signals| {
            Box::pin(sunshine_review::run_sharing_log(
                config,
                listener,
                shutdown,
                Arc::new(SystemClock),
                log_signals,
            ))
        },
        read_model: Some(sunshine_review::READ_MODEL),
        writes_log: true,
        rebuild: Some(|config| {
            Box::pin(async move {
                let rebuilt = sunshine_review::rebuild(&config).await?;
                Ok(Rebuilt::all(sunshine_review::SERVICE_NAME, rebuilt))
            })
        }),
        keys: sunshine_review::KEYS,
    },
    ServiceEntry {
        name: sunshine_payment::SERVICE_NAME,
        port_offset: 2,
        run: |config, listener, shutdown, log_signals| {
            Box::pin(sunshine_payment::run_sharing_log(
                config,
                listener,
                shutdown,
                Arc::new(SystemClock),
                log_signals,
            ))
        },
        read_model: Some(sunshine_payment::READ_MODEL),
        writes_log: true,
        rebuild: Some(|config| {
            Box::pin(async move {
                let rebuilt = sunshine_payment::rebuild(&config).await?;
                Ok(Rebuilt::all(sunshine_payment::SERVICE_NAME, rebuilt))
            })
        }),
        keys: sunshine_payment::KEYS,
    },
    ServiceEntry {
        name: sunshine_disclosure::SERVICE_NAME,
        port_offset: 3,
        run: |config, listener, shutdown, _log_signals| {
            Box::pin(sunshine_disclosure::run_sharing_process(
                config, listener, shutdown,
            ))
        },
        read_model: None,
        writes_log: false,
        rebuild: None,
        keys: sunshine_disclosure::KEYS,
    },
    ServiceEntry {
        name: sunshine_department_integration::SERVICE_NAME,
        port_offset: 4,
        run: |config, listener, shutdown, _log_signals| {
            Box::pin(sunshine_department_integration::run_sharing_process(
                config, listener, shutdown,
            ))
        },
        // department-integration: its records table; it appends its batches and access events.
        read_model: Some(sunshine_department_integration::READ_MODEL),
        writes_log: true,
        rebuild: None,
        keys: sunshine_department_integration::KEYS,
    },
    ServiceEntry {
        name: sunshine_audit::SERVICE_NAME,
        port_offset: 5,
        run: |config, listener, shutdown, _log_signals| {
            Box::pin(sunshine_audit::run_sharing_process(
                config, listener, shutdown,
            ))
        },
        read_model: None,
        writes_log: false,
        rebuild: None,
        keys: sunshine_audit::KEYS,
    },
    ServiceEntry {
        name: crate::log_process::PROCESS_NAME,
        port_offset: 6,
        run: |config, listener, shutdown, _log_signals| {
            Box::pin(crate::log_process::run(config, listener, shutdown))
        },
        read_model: None,
        writes_log: true,
        rebuild: None,
        keys: crate::log_process::KEYS,
    },
];

/// The service called `name`.
pub fn find(name: &str) -> Option<&'static ServiceEntry> {
    SERVICES.iter().find(|entry| entry.name == name)
}
