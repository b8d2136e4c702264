//! The log inside a running service: created once the backends are connected, it migrates the
//! tables (or, where the service may not, checks that they are migrated), starts the leased
//! log worker (sequencer, checkpoints and, on NATS, the relay), and starts the service's
//! consumers on the right delivery — JetStream in the cluster, the log itself when embedded. Services use it for appending, reading, sealing personal data and
//! blind indexes.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use sunshine_evidence::checkpoint::CheckpointSigner;
use sunshine_platform::Shutdown;
use sunshine_platform::backends::{BackendError, Backends, Bus, Database};
use sunshine_platform::config::{LogConfig, LogKey, decode_key};

use crate::consumer::{Consumer, ConsumerConfig, Projection};
use crate::crypto::{BlindIndexKey, KeyEncryptionKey, SealingPublicKey};
use crate::delivery::Namespace;
use crate::error::StoreError;
use crate::keys::KeyStore;
use crate::lease::Lease;
use crate::relay::Relay;
use crate::schema::{self, Component};
use crate::sequencer::{Sequencer, SequencerConfig};
use crate::signals::LogSignals;
use crate::store::EventStore;
use crate::worker::{LOG_WORKER_LEASE, LogWorker};

/// The log, ready for a service.
#[derive(Clone)]
pub struct LogRuntime {
    pub store: EventStore,
    /// Seals and opens personal data with what this process holds: the key-encryption key
    /// (seal and open), the public sealing key (seal only), or nothing.
    pub keys: Arc<KeyStore>,
    blind_index_key: Option<Arc<BlindIndexKey>>,
    namespace: Namespace,
    bus: Bus,
    signals: LogSignals,
    ack_wait: Duration,
}

impl std::fmt::Debug for LogRuntime {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("LogRuntime")
            .field("namespace", &self.namespace)
            .finish_non_exhaustive()
    }
}

/// Why the log could not start in a service.
#[derive(Debug, thiserror::Error)]
pub enum LogStartError {
    /// A component's tables are missing, older than this release, or could not be migrated.
    #[error("{component} tables")]
    Tables {
        component: &'static str,
        #[source]
        source: crate::schema::SchemaError,
    },
    #[error("{field} {reason}")]
    Key { field: &'static str, reason: String },
    #[error("log.origin")]
    Origin(#[source] sunshine_evidence::checkpoint::CheckpointError),
    /// Could not listen for other processes' appends on the bus.
    #[error("bus: {0}")]
    Bus(String),
}

impl From<LogStartError> for sunshine_platform::StartupError {
    fn from(error: LogStartError) -> Self {
        sunshine_platform::StartupError::caused_by("the case-event log could not start", error)
    }
}

impl LogRuntime {
    /// Prepares the log's tables and starts the log worker (it runs until `shutdown`).
    pub async fn start(
        backends: &Backends,
        config: &LogConfig,
        shutdown: Shutdown,
    ) -> Result<LogRuntime, LogStartError> {
        LogRuntime::start_with(backends, config, &[], shutdown).await
    }

    /// [`LogRuntime::start`] for a service with tables of its own (`read_models`). The log's
    /// and those tables are migrated when the database allows it (SQLite, or
    /// `database.migrate_on_start`) and otherwise checked, all before anything starts: on a
    /// PostgreSQL schema older than this release the service refuses to start ("run `sunshine
    /// migrate`"; the platform retries, so it starts once the migration has run).
    pub async fn start_with(
        backends: &Backends,
        config: &LogConfig,
        read_models: &[Component],
        shutdown: Shutdown,
    ) -> Result<LogRuntime, LogStartError> {
        LogRuntime::start_with_signals(backends, config, read_models, LogSignals::new(), shutdown)
            .await
    }

    /// [`LogRuntime::start_with`], with wake-up `signals` shared with the other services of
    /// this process on the same database (see [`crate::signals`]): the store raises them, the
    /// worker and the log consumers wait for them.
    pub async fn start_with_signals(
        backends: &Backends,
        config: &LogConfig,
        read_models: &[Component],
        signals: LogSignals,
        shutdown: Shutdown,
    ) -> Result<LogRuntime, LogStartError> {
        let store = EventStore::from_database(&backends.database)
            .with_signals(signals.clone())
            .with_max_event_payload_bytes(config.max_event_payload_bytes);
        prepare_tables(backends, &store, read_models).await?;
        // Appends are announced on the bus for the log process; a process holding the signing
        // key (the embedded deployment, the test sandboxes) runs the log worker itself.
        let namespace = join_wake_ups(backends, config, &signals).await?;
        if LogKey::CheckpointSigning.given(config) {
            spawn_worker(backends, &store, config, &namespace, &signals, shutdown)?;
        }
        let keys = if LogKey::KeyEncryption.given(config) {
            let keys = KeyStore::new(
                store.clone(),
                KeyEncryptionKey::from_bytes(decode_log_key(config, LogKey::KeyEncryption)?),
            );
            if config.previous_key_encryption_key.trim().is_empty() {
                keys
            } else {
                keys.with_previous(KeyEncryptionKey::from_bytes(
                    decode_key(&config.previous_key_encryption_key).map_err(|reason| {
                        LogStartError::Key {
                            field: "log.previous_key_encryption_key",
                            reason,
                        }
                    })?,
                ))
            }
        } else if !config.sealing_public_key.trim().is_empty() {
            let public =
                SealingPublicKey::from_base64(&config.sealing_public_key).map_err(|error| {
                    LogStartError::Key {
                        field: "log.sealing_public_key",
                        reason: error.to_string(),
                    }
                })?;
            KeyStore::seal_only(store.clone(), public)
        } else {
            return Err(LogStartError::Key {
                field: "log.sealing_public_key",
                reason: "is required (or log.key_encryption_key): the services that run the \
                         log seal personal data"
                    .into(),
            });
        };
        let blind_index_key = if LogKey::BlindIndex.given(config) {
            Some(Arc::new(BlindIndexKey::from_bytes(decode_log_key(
                config,
                LogKey::BlindIndex,
            )?)))
        } else {
            None
        };
        Ok(LogRuntime {
            keys: Arc::new(keys),
            store,
            blind_index_key,
            namespace,
            bus: backends.bus.clone(),
            signals,
            ack_wait: Duration::from_millis(config.consumer_ack_wait_ms),
        })
    }

    /// The log process (`sunshine serve log`): checks the log's tables (migrating them only
    /// where the database allows it), listens for the services' appends on the bus and runs
    /// the leased log worker — sequencer, signed checkpoints, relay — until `shutdown`. It
    /// holds the checkpoint signing key and nothing else.
    pub async fn start_log_process(
        backends: &Backends,
        config: &LogConfig,
        shutdown: Shutdown,
    ) -> Result<(), LogStartError> {
        let signals = LogSignals::new();
        let store = EventStore::from_database(&backends.database)
            .with_signals(signals.clone())
            .with_max_event_payload_bytes(config.max_event_payload_bytes);
        prepare_tables(backends, &store, &[]).await?;
        let namespace = join_wake_ups(backends, config, &signals).await?;
        spawn_worker(backends, &store, config, &namespace, &signals, shutdown)
    }

    /// The blind-index key, if this process holds it (intake; lookups by id number).
    pub fn blind_index_key(&self) -> Option<Arc<BlindIndexKey>> {
        self.blind_index_key.clone()
    }

    /// The log's wake-ups (a reader that follows the log waits for `advanced`).
    pub fn signals(&self) -> &LogSignals {
        &self.signals
    }

    pub fn namespace(&self) -> &Namespace {
        &self.namespace
    }

    /// Starts `projection` on this deployment's delivery; it runs until `shutdown`.
    pub fn spawn_consumer<P: Projection>(
        &self,
        projection: P,
        config: ConsumerConfig,
        shutdown: Shutdown,
    ) -> Consumer<P> {
        let config = ConsumerConfig {
            namespace: self.namespace.clone(),
            ack_wait: self.ack_wait,
            ..config
        };
        let consumer = Consumer::new(self.store.clone(), projection, config);
        let running = consumer.clone();
        match &self.bus {
            Bus::Nats(nats) => {
                let jetstream = nats.jetstream.clone();
                tokio::spawn(async move { running.run_jetstream(jetstream, shutdown).await });
            }
            Bus::InProcess(_) => {
                let signals = self.signals.clone();
                tokio::spawn(async move { running.run_from_log(signals, shutdown).await });
            }
        }
        consumer
    }
}

/// What a rebuild did to one projection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RebuiltProjection {
    /// The projection's (and its durable consumer's) name.
    pub projection: String,
    /// Events of the log it applied.
    pub applied: usize,
}

impl RebuiltProjection {
    /// Rebuilds `consumer`'s projection ([`Consumer::rebuild`]) and says what it did.
    pub async fn of<P: Projection>(consumer: &Consumer<P>) -> Result<Self, RebuildError> {
        let projection = consumer.projection().name().to_owned();
        match consumer.rebuild().await {
            Ok(applied) => Ok(RebuiltProjection {
                projection,
                applied,
            }),
            Err(source) => Err(RebuildError::Replay { projection, source }),
        }
    }
}

/// Why a service's rebuild stopped.
#[derive(Debug, thiserror::Error)]
pub enum RebuildError {
    /// The service could not build what its projections need (policy, configuration files).
    #[error("the service's configuration")]
    Setup(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("connecting the backends")]
    Connect(#[source] BackendError),
    #[error("the case-event log could not start")]
    Log(#[source] LogStartError),
    #[error("rebuilding the projection {projection}")]
    Replay {
        projection: String,
        #[source]
        source: StoreError,
    },
}

impl LogRuntime {
    /// `sunshine rebuild <service>`: connects `config`'s backends once (not retried: an operator
    /// is waiting), starts the log with the service's `read_models`, hands it to `rebuild` (which
    /// builds each projection as the service's `run` does and rebuilds it, e.g. with
    /// [`RebuiltProjection::of`]), then stops the log worker — waiting, at most a second, until
    /// it has let go of its lease, so closing the pool cuts none of its rounds short — and
    /// closes the backends. Run it with the service stopped.
    pub async fn rebuild<F, Fut>(
        service: &'static str,
        config: &sunshine_platform::Config,
        read_models: &[Component],
        rebuild: F,
    ) -> Result<Vec<RebuiltProjection>, RebuildError>
    where
        F: FnOnce(LogRuntime) -> Fut,
        Fut: Future<Output = Result<Vec<RebuiltProjection>, RebuildError>>,
    {
        let database = Database::connect(&config.database)
            .await
            .map_err(RebuildError::Connect)?
            .for_service(service);
        let bus = match Bus::connect(service, &config.bus).await {
            Ok(bus) => bus,
            Err(error) => {
                database.close().await;
                return Err(RebuildError::Connect(error));
            }
        };
        let backends = Backends { database, bus };
        let (stop_log, log_shutdown) = Shutdown::new();
        let rebuilt =
            match LogRuntime::start_with(&backends, &config.log, read_models, log_shutdown).await {
                Ok(log) => rebuild(log).await,
                Err(error) => Err(RebuildError::Log(error)),
            };
        stop_log.trigger();
        let store = EventStore::from_database(&backends.database);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(1);
        while tokio::time::Instant::now() < deadline {
            if let Ok(Some(lease)) = Lease::try_acquire(&store, LOG_WORKER_LEASE).await {
                lease.release().await;
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        backends.close().await;
        rebuilt
    }
}

/// Migrates (where the database allows it) or checks the log's tables and `read_models`.
async fn prepare_tables(
    backends: &Backends,
    store: &EventStore,
    read_models: &[Component],
) -> Result<(), LogStartError> {
    let migrate = backends.database.migrates_on_start();
    for component in std::iter::once(&schema::EVENT_LOG).chain(read_models) {
        schema::prepare(store.pool(), store.kind(), *component, migrate)
            .await
            .map_err(|source| LogStartError::Tables {
                component: component.name,
                source,
            })?;
    }
    Ok(())
}

/// The log's delivery names; on NATS, `signals` joined to the bus's wake-ups (local appends
/// announced, other processes' heard).
async fn join_wake_ups(
    backends: &Backends,
    config: &LogConfig,
    signals: &LogSignals,
) -> Result<Namespace, LogStartError> {
    let namespace = Namespace {
        stream: config.stream_name.clone(),
        subject_prefix: config.subject_prefix.clone(),
    };
    if let Bus::Nats(nats) = &backends.bus {
        signals
            .join_bus(&nats.client, &namespace.wake_subject())
            .await
            .map_err(|error| LogStartError::Bus(error.to_string()))?;
    }
    Ok(namespace)
}

/// The leased log worker on `store`: the sequencer signing with the configured key and, on
/// NATS, the relay; it runs until `shutdown`.
fn spawn_worker(
    backends: &Backends,
    store: &EventStore,
    config: &LogConfig,
    namespace: &Namespace,
    signals: &LogSignals,
    shutdown: Shutdown,
) -> Result<(), LogStartError> {
    let seed = decode_log_key(config, LogKey::CheckpointSigning)?;
    let signer = CheckpointSigner::new(
        config.origin.clone(),
        ed25519_dalek::SigningKey::from_bytes(&seed),
    )
    .map_err(LogStartError::Origin)?;
    let sequencer = Sequencer::new(
        store.clone(),
        config.origin.clone(),
        signer,
        SequencerConfig {
            batch_size: 1_000,
            checkpoint_every: config.checkpoint_every,
            checkpoint_interval: Duration::from_millis(config.checkpoint_interval_ms),
        },
    );
    let relay = match &backends.bus {
        Bus::Nats(nats) => Some(Relay::new(
            store.clone(),
            nats.jetstream.clone(),
            namespace.clone(),
            500,
        )),
        Bus::InProcess(_) => None,
    };
    let worker = LogWorker::new(
        store.clone(),
        sequencer,
        relay,
        Duration::from_millis(config.poll_interval_ms),
        signals.clone(),
    );
    tokio::spawn(worker.run(shutdown));
    Ok(())
}

fn decode_log_key(config: &LogConfig, key: LogKey) -> Result<[u8; 32], LogStartError> {
    let text = match key {
        LogKey::CheckpointSigning => &config.checkpoint_signing_key,
        LogKey::KeyEncryption => &config.key_encryption_key,
        LogKey::BlindIndex => &config.blind_index_key,
    };
    decode_key(text).map_err(|reason| LogStartError::Key {
        field: key.field(),
        reason,
    })
}
