//! The two backends every service needs, in either deployment: the database (PostgreSQL in the
//! cluster, SQLite embedded) and the bus (NATS JetStream in the cluster, in-process embedded).
//!
//! Connecting retries with backoff until it succeeds or the service shuts down, so a service can
//! start before its database and report NOT_SERVING meanwhile.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use sqlx::AnyPool;
use sqlx::any::AnyPoolOptions;
use tokio::sync::broadcast;

use crate::config::{
    BusConfig, BusKind, Config, DatabaseConfig, DatabaseKind, redact_url_password,
};
use crate::shutdown::Shutdown;

/// A connected database: PostgreSQL or SQLite behind one `sqlx::AnyPool`, so stores and
/// projections write SQL once, in the dialect both accept (`$1` placeholders, BIGINT, TEXT, BLOB
/// as BYTEA). What differs (DDL, locks, the transaction horizon) branches on [`Database::kind`].
#[derive(Debug, Clone)]
pub struct Database {
    pool: AnyPool,
    kind: DatabaseKind,
    identity: String,
    migrates_on_start: bool,
    service_name: Option<&'static str>,
}

#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("nats connect: {0}")]
    NatsConnect(#[from] async_nats::ConnectError),
    #[error("jetstream is not available on this NATS server: {0}")]
    JetStream(String),
    #[error("unsupported url: {0}")]
    UnsupportedUrl(String),
}

impl Database {
    pub async fn connect(config: &DatabaseConfig) -> Result<Database, BackendError> {
        sqlx::any::install_default_drivers();
        let kind = config
            .kind()
            .ok_or_else(|| BackendError::UnsupportedUrl(redact_url_password(&config.url)))?;
        let options = AnyPoolOptions::new()
            .max_connections(config.max_connections)
            .acquire_timeout(config.connect_timeout());
        let pool = match kind {
            DatabaseKind::Postgres => options.connect(&config.url).await?,
            DatabaseKind::Sqlite => {
                let url = sqlite_url_creating_file(&config.url);
                options
                    .after_connect(|connection, _metadata| {
                        Box::pin(async move {
                            // WAL lets readers run beside the one writer; the busy timeout makes
                            // a second writer wait instead of failing at once.
                            sqlx::raw_sql(sqlx::AssertSqlSafe(
                                "PRAGMA journal_mode = WAL; PRAGMA busy_timeout = 10000; \
                                 PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL;",
                            ))
                            .execute(connection)
                            .await?;
                            Ok(())
                        })
                    })
                    .connect(&url)
                    .await?
            }
        };
        Ok(Database {
            pool,
            kind,
            identity: redact_url_password(&config.url),
            migrates_on_start: config.migrates_on_start(),
            service_name: None,
        })
    }

    /// This connection, as the one `service_name` works through: the log's spans on it (appends,
    /// reads, the relay's publishes, consumers' handling) then say which service they belong to.
    pub fn for_service(mut self, service_name: &'static str) -> Database {
        self.service_name = Some(service_name);
        self
    }

    /// The service this connection works for, if it was connected for one.
    pub fn service_name(&self) -> Option<&'static str> {
        self.service_name
    }

    /// The pool, for stores and projections.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// A round trip to the database.
    pub async fn ping(&self) -> bool {
        sqlx::query("SELECT 1").execute(&self.pool).await.is_ok()
    }

    pub fn kind(&self) -> DatabaseKind {
        self.kind
    }

    /// Whether services create and upgrade their tables on start
    /// ([`DatabaseConfig::migrates_on_start`]); otherwise they only check them.
    pub fn migrates_on_start(&self) -> bool {
        self.migrates_on_start
    }

    /// The database's URL without its password: tells two databases apart.
    pub fn identity(&self) -> &str {
        &self.identity
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// `sqlite://path` → `sqlite://path?mode=rwc`, so the file is created on first start.
fn sqlite_url_creating_file(url: &str) -> String {
    if url.contains("mode=") || url.contains(":memory:") {
        url.to_owned()
    } else if url.contains('?') {
        format!("{url}&mode=rwc")
    } else {
        format!("{url}?mode=rwc")
    }
}

/// A connected bus.
#[derive(Debug, Clone)]
pub enum Bus {
    Nats(Box<NatsBus>),
    InProcess(InProcessBus),
}

/// NATS with JetStream confirmed available.
#[derive(Debug, Clone)]
pub struct NatsBus {
    pub client: async_nats::Client,
    pub jetstream: async_nats::jetstream::Context,
}

/// One message on the in-process bus.
#[derive(Debug, Clone)]
pub struct BusMessage {
    pub subject: String,
    pub payload: Arc<[u8]>,
}

/// The embedded stand-in for NATS: one broadcast channel per process, so every service started
/// in the process shares it.
#[derive(Debug, Clone)]
pub struct InProcessBus {
    sender: broadcast::Sender<BusMessage>,
}

impl InProcessBus {
    /// The process-wide bus.
    pub fn shared() -> InProcessBus {
        static SHARED: OnceLock<InProcessBus> = OnceLock::new();
        SHARED
            .get_or_init(|| {
                let (sender, _) = broadcast::channel(4096);
                InProcessBus { sender }
            })
            .clone()
    }

    pub fn publish(&self, subject: impl Into<String>, payload: impl Into<Arc<[u8]>>) {
        // No subscriber yet is not an error: the log, not the bus, keeps the record.
        let _ = self.sender.send(BusMessage {
            subject: subject.into(),
            payload: payload.into(),
        });
    }

    pub fn subscribe(&self) -> broadcast::Receiver<BusMessage> {
        self.sender.subscribe()
    }
}

impl Bus {
    pub async fn connect(service_name: &str, config: &BusConfig) -> Result<Bus, BackendError> {
        match config.kind() {
            Some(BusKind::Nats) => {
                let client = async_nats::ConnectOptions::new()
                    .name(format!("sunshine-{service_name}"))
                    .connection_timeout(Duration::from_secs(5))
                    .connect(config.url.as_str())
                    .await?;
                probe_jetstream(&client).await?;
                let jetstream = async_nats::jetstream::new(client.clone());
                Ok(Bus::Nats(Box::new(NatsBus { client, jetstream })))
            }
            Some(BusKind::InProcess) => Ok(Bus::InProcess(InProcessBus::shared())),
            None => Err(BackendError::UnsupportedUrl(config.url.clone())),
        }
    }

    /// Whether the bus is connected now.
    pub fn is_connected(&self) -> bool {
        match self {
            Bus::Nats(nats) => {
                nats.client.connection_state() == async_nats::connection::State::Connected
            }
            Bus::InProcess(_) => true,
        }
    }

    pub fn kind(&self) -> BusKind {
        match self {
            Bus::Nats(_) => BusKind::Nats,
            Bus::InProcess(_) => BusKind::InProcess,
        }
    }

    pub async fn close(&self) {
        if let Bus::Nats(nats) = self
            && let Err(error) = nats.client.drain().await
        {
            tracing::warn!(%error, "nats drain failed");
        }
    }
}

/// Asks the server for its JetStream account information. Done with a raw request rather than
/// `Context::query_account`, whose typed response does not parse the answer of nats-server 2.9
/// (the version Debian 12 ships).
async fn probe_jetstream(client: &async_nats::Client) -> Result<(), BackendError> {
    let reply = client
        .request("$JS.API.INFO", Vec::new().into())
        .await
        .map_err(|error| BackendError::JetStream(error.to_string()))?;
    let answer: serde_json::Value = serde_json::from_slice(&reply.payload)
        .map_err(|error| BackendError::JetStream(error.to_string()))?;
    if let Some(error) = answer.get("error") {
        return Err(BackendError::JetStream(error.to_string()));
    }
    Ok(())
}

/// Both backends, once connected.
#[derive(Debug, Clone)]
pub struct Backends {
    pub database: Database,
    pub bus: Bus,
}

impl Backends {
    /// Connects both, retrying each with backoff; `None` if shutdown came first.
    pub async fn connect_with_retry(
        service_name: &'static str,
        config: &Config,
        shutdown: &Shutdown,
    ) -> Option<Backends> {
        let max_delay = config.readiness.max_retry_delay();
        let database = retry("database", max_delay, shutdown, || {
            Database::connect(&config.database)
        })
        .await?
        .for_service(service_name);
        let bus = retry("bus", max_delay, shutdown, || {
            Bus::connect(service_name, &config.bus)
        })
        .await?;
        Some(Backends { database, bus })
    }

    pub async fn close(&self) {
        self.bus.close().await;
        self.database.close().await;
    }
}

async fn retry<T, F, Fut>(
    what: &'static str,
    max_delay: Duration,
    shutdown: &Shutdown,
    mut attempt: F,
) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, BackendError>>,
{
    let mut delay = Duration::from_millis(50).min(max_delay);
    loop {
        tokio::select! {
            result = attempt() => match result {
                Ok(value) => {
                    tracing::info!(backend = what, "connected");
                    return Some(value);
                }
                Err(error) => tracing::warn!(backend = what, %error, retry_in_ms = delay.as_millis() as u64, "not connected yet"),
            },
            () = shutdown.wait() => return None,
        }
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = shutdown.wait() => return None,
        }
        delay = (delay * 2).min(max_delay);
    }
}
