//! Shared by the event log's integration tests: a fresh store on either backend.

#![allow(dead_code)]

use std::time::Duration;

use sunshine_eventlog::store::{CommitCursor, CommittedEvent};
use sunshine_eventlog::{Actor, EventMetadata, EventStore, NewEvent, StreamId};
use sunshine_testkit::{TempSqlite, TestDatabase};

/// Which backend a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Postgres,
    Sqlite,
}

/// Keeps the database alive for the test.
#[derive(Debug)]
pub enum Keep {
    Postgres(TestDatabase),
    Sqlite(TempSqlite),
}

/// A migrated store on a fresh database of `backend`.
pub async fn fresh_store(
    backend: Backend,
    max_connections: u32,
) -> anyhow::Result<(EventStore, Keep)> {
    let (database, keep) = match backend {
        Backend::Postgres => {
            let test_database = TestDatabase::create().await?;
            let database = test_database.connect(max_connections).await?;
            (database, Keep::Postgres(test_database))
        }
        Backend::Sqlite => {
            let sqlite = TempSqlite::create()?;
            let database = sqlite.connect(max_connections).await?;
            (database, Keep::Sqlite(sqlite))
        }
    };
    let store = EventStore::from_database(&database);
    store.migrate().await?;
    Ok((store, keep))
}

pub fn stream(kind: &str, id: impl std::fmt::Display) -> StreamId {
    StreamId::new("intake", kind, &id.to_string()).expect("valid stream id")
}

pub fn metadata(command_id: Option<&str>) -> EventMetadata {
    EventMetadata {
        actor: Actor {
            subject: "clerk-1".into(),
            role: "village_clerk".into(),
            org_unit: "990101001001".into(),
            department_code: None,
        },
        command_id: command_id.map(str::to_owned),
        correlation_id: Some("flow-1".into()),
        ..EventMetadata::default()
    }
}

pub fn event(case_id: &str, text: &str) -> NewEvent {
    NewEvent::new(case_id, "example.v1.TestEvent", 1, text.as_bytes().to_vec())
}

/// Runs a scenario on both backends as two tests.
#[macro_export]
macro_rules! on_both_backends {
    ($($scenario:ident),* $(,)?) => {
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() -> anyhow::Result<()> {
                    super::$scenario(super::common::Backend::Postgres).await
                }
            )*
        }
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() -> anyhow::Result<()> {
                    super::$scenario(super::common::Backend::Sqlite).await
                }
            )*
        }
    };
}

/// Reads committed events after `cursor` until at least `expected` are there (the horizon may
/// lag behind commits while other transactions run on the server), or fails after 20 s.
pub async fn read_committed_until(
    store: &EventStore,
    cursor: CommitCursor,
    expected: usize,
) -> anyhow::Result<Vec<CommittedEvent>> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let committed = store.read_committed_after(cursor, 10_000).await?;
        if committed.len() >= expected {
            return Ok(committed);
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "only {} of {expected} events became readable",
            committed.len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A sequencer with a fresh signing key, checkpointing every `checkpoint_every` entries.
pub fn sequencer(
    store: &EventStore,
    checkpoint_every: u64,
) -> (
    sunshine_eventlog::sequencer::Sequencer,
    sunshine_eventlog::checkpoint::CheckpointVerifier,
) {
    let mut seed = [0u8; 32];
    getrandom_fill(&mut seed);
    let signing_key = ed25519_dalek::SigningKey::from_bytes(&seed);
    let signer = sunshine_eventlog::checkpoint::CheckpointSigner::new(ORIGIN, signing_key)
        .expect("valid key name");
    let verifier = signer.verifier();
    let config = sunshine_eventlog::sequencer::SequencerConfig {
        batch_size: 50,
        checkpoint_every,
        checkpoint_interval: Duration::from_secs(3600),
    };
    (
        sunshine_eventlog::sequencer::Sequencer::new(store.clone(), ORIGIN, signer, config),
        verifier,
    )
}

pub const ORIGIN: &str = "sunshine.example/district-990101/case-events";

fn getrandom_fill(bytes: &mut [u8]) {
    for (index, byte) in bytes.iter_mut().enumerate() {
        *byte = (uuid::Uuid::new_v4().as_bytes()[index % 16]) ^ (index as u8);
    }
}

/// Lets a superuser (the tests) change the log behind the guards' back, as a tamperer would.
pub async fn disable_guards(store: &EventStore, backend: Backend) -> anyhow::Result<()> {
    match backend {
        Backend::Postgres => {
            for table in ["events", "log_entries", "log_checkpoints", "event_commands"] {
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "ALTER TABLE {table} DISABLE TRIGGER USER"
                )))
                .execute(store.pool())
                .await?;
            }
        }
        Backend::Sqlite => {
            for table in ["events", "log_entries", "log_checkpoints", "event_commands"] {
                for operation in ["update", "delete"] {
                    sqlx::query(sqlx::AssertSqlSafe(format!(
                        "DROP TRIGGER {table}_no_{operation}"
                    )))
                    .execute(store.pool())
                    .await?;
                }
            }
        }
    }
    Ok(())
}

/// A projection that writes one row per applied event (no key: a duplicate effect would show
/// as a second row) and fails on payload `poison` while `poisoned` is set.
#[derive(Debug, Clone)]
pub struct RecordingProjection {
    pub name: String,
    pub poisoned: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl RecordingProjection {
    pub async fn create_table(store: &EventStore) -> anyhow::Result<()> {
        sqlx::query("CREATE TABLE IF NOT EXISTS test_applied (consumer TEXT NOT NULL, event_id TEXT NOT NULL, stream_id TEXT NOT NULL, stream_version BIGINT NOT NULL)")
            .execute(store.pool())
            .await?;
        Ok(())
    }

    pub fn new(name: &str) -> Self {
        RecordingProjection {
            name: name.into(),
            poisoned: std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true)),
        }
    }

    /// (rows, distinct event ids) applied by this projection.
    pub async fn counts(&self, store: &EventStore) -> anyhow::Result<(i64, i64)> {
        let rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM test_applied WHERE consumer = $1")
            .bind(self.name.as_str())
            .fetch_one(store.pool())
            .await?;
        let distinct: i64 = sqlx::query_scalar(
            "SELECT COUNT(DISTINCT event_id) FROM test_applied WHERE consumer = $1",
        )
        .bind(self.name.as_str())
        .fetch_one(store.pool())
        .await?;
        Ok((rows, distinct))
    }
}

impl sunshine_eventlog::consumer::Projection for RecordingProjection {
    fn name(&self) -> &str {
        &self.name
    }

    fn apply<'a>(
        &'a self,
        connection: &'a mut sqlx::AnyConnection,
        event: &'a sunshine_eventlog::RecordedEvent,
    ) -> sunshine_eventlog::consumer::HandlerFuture<'a> {
        Box::pin(async move {
            if event.payload == b"poison" && self.poisoned.load(std::sync::atomic::Ordering::SeqCst)
            {
                return Err(sunshine_eventlog::consumer::HandlerError(
                    "cannot apply poison".into(),
                ));
            }
            sqlx::query("INSERT INTO test_applied (consumer, event_id, stream_id, stream_version) VALUES ($1, $2, $3, $4)")
                .bind(self.name.as_str())
                .bind(event.event_id.to_string())
                .bind(event.stream_id.as_str())
                .bind(event.stream_version as i64)
                .execute(&mut *connection)
                .await?;
            Ok(())
        })
    }

    fn reset<'a>(
        &'a self,
        connection: &'a mut sqlx::AnyConnection,
    ) -> sunshine_eventlog::consumer::HandlerFuture<'a> {
        Box::pin(async move {
            sqlx::query("DELETE FROM test_applied WHERE consumer = $1")
                .bind(self.name.as_str())
                .execute(&mut *connection)
                .await?;
            Ok(())
        })
    }
}

/// Polls `probe` until it returns true, or fails after `within`.
pub async fn eventually<F, Fut>(what: &str, within: Duration, mut probe: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<bool>>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if probe().await? {
            return Ok(());
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "timed out after {within:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Sequences until every appended event has a log position (the horizon may lag while other
/// transactions run on the server).
pub async fn sequence_all(
    sequencer: &mut sunshine_eventlog::sequencer::Sequencer,
    store: &EventStore,
) -> anyhow::Result<u64> {
    let expected: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM events")
        .fetch_one(store.pool())
        .await?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        sequencer.run_until_idle().await?;
        let size = store.log_size().await?;
        if size as i64 == expected {
            return Ok(size);
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "only {size} of {expected} events sequenced"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
