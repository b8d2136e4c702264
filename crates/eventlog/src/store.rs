//! The event store: atomic appends with optimistic concurrency and idempotent retries, and
//! every way of reading the log back. One implementation for PostgreSQL and SQLite, through
//! `sqlx::AnyPool` and SQL both accept; the few backend differences are marked where they are.
//!
//! # Gap-free order
//! Concurrent PostgreSQL writers take insertion sequence numbers in one order and commit in
//! another, so "everything after sequence N" can miss an event that commits late. Each row
//! therefore records its writer's transaction id (`pg_current_xact_id()`, taken in the statement
//! that reads the stream head, so after that statement's snapshot). [`EventStore::read_committed_after`] returns only rows whose
//! transaction id is below the oldest transaction still running
//! (`pg_snapshot_xmin(pg_current_snapshot())`): no row can ever appear below that horizon
//! again, so reading in `(tx_id, sequence)` order from a cursor never skips anything. The
//! sequencer ([`crate::sequencer`]) reads that way and gives each event its dense
//! `log_position`; everything downstream reads the log by position. SQLite has one writer at a
//! time, so there the transaction id is simply one more than the last, and the horizon is open.

use std::sync::Arc;
use std::time::Duration;

use sqlx::any::AnyRow;
use sqlx::{AnyPool, Row as _};
use sunshine_evidence::merkle::Hash;
use sunshine_evidence::record::{GENESIS_HASH, RecordFields, chain_hash};
use sunshine_platform::config::DatabaseKind;
use sunshine_platform::telemetry;
use tracing::Instrument as _;
use uuid::Uuid;

use crate::error::{StoreError, to_hash, to_i64, to_u64};
use crate::event::{EventMetadata, ExpectedVersion, NewEvent, RecordedEvent, StreamId, now_micros};
use crate::schema;
use crate::signals::LogSignals;

/// Most events one append may carry.
pub const MAX_EVENTS_PER_APPEND: usize = 1_000;
/// Most events one streamed append ([`EventStore::append_streamed`]) may carry in all.
pub const MAX_EVENTS_PER_STREAMED_APPEND: usize = 20_000;
/// Streams whose head an [`EventStore`] remembers before it starts over.
const HEAD_CACHE_CAPACITY: usize = 100_000;
/// Events per multi-row INSERT statement.
const INSERT_CHUNK: usize = 20;

/// The result of an append.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppendOutcome {
    pub stream_id: String,
    pub first_version: u64,
    /// The stream's version after the append: pass it as `ExpectedVersion::Exact` next time.
    pub last_version: u64,
    pub events: Vec<RecordedEvent>,
    /// True when the command id had been appended before: nothing new was written and these are
    /// the events of the first append.
    pub deduplicated: bool,
}

/// Where a catch-up reader of committed events stands: the last `(tx_id, sequence)` it saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct CommitCursor {
    pub tx_id: i64,
    pub sequence: i64,
}

/// A committed event with its place in commit order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommittedEvent {
    pub cursor: CommitCursor,
    pub event: RecordedEvent,
}

/// What one sequencing read found: [`EventStore::read_ready_after`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ReadyEvents {
    /// Committed events every older transaction has finished before: safe to sequence now.
    pub ready: Vec<CommittedEvent>,
    /// Committed events follow that may not be handed out yet, because an older transaction is
    /// still open (never on SQLite).
    pub held_back: bool,
}

/// Writes that must commit or roll back together with an append (e.g. a service's uniqueness
/// guard rows: a person claimed by a household only together with the event that registers
/// them). [`EventStore::append_guarded`] runs [`AppendGuard::apply`] inside the append's own
/// transaction, after the events are inserted and before the commit.
pub trait AppendGuard: Sync {
    /// Why the guard refuses the append (a domain error of the service).
    type Refusal: Send;

    /// Checks and writes on the append's transaction. `Ok(Err(refusal))` rolls the whole append
    /// back and hands the refusal to the caller; `Err` is a database fault.
    fn apply(
        &self,
        connection: &mut sqlx::AnyConnection,
    ) -> impl std::future::Future<Output = Result<Result<(), Self::Refusal>, sqlx::Error>> + Send;
}

/// The guard of a plain append: writes nothing.
struct NoGuard;

impl AppendGuard for NoGuard {
    type Refusal = std::convert::Infallible;

    async fn apply(
        &self,
        _connection: &mut sqlx::AnyConnection,
    ) -> Result<Result<(), Self::Refusal>, sqlx::Error> {
        Ok(Ok(()))
    }
}

/// The events of an append made as it goes ([`EventStore::append_streamed`]): each call writes
/// what its next events guard on the append's transaction and answers them, `None` when there
/// are no more, or a refusal that rolls the whole append back.
pub trait EventSource: Send {
    /// Why the source refuses the append (a domain error of the service).
    type Refusal: Send;

    fn next_events(
        &mut self,
        connection: &mut sqlx::AnyConnection,
    ) -> impl std::future::Future<
        Output = Result<Result<Option<Vec<NewEvent>>, Self::Refusal>, sqlx::Error>,
    > + Send;
}

/// A plain or guarded append as a source: its events, then its guard's writes.
struct GuardedEvents<'a, G> {
    events: Option<Vec<NewEvent>>,
    guard: &'a G,
}

impl<G: AppendGuard> EventSource for GuardedEvents<'_, G> {
    type Refusal = G::Refusal;

    async fn next_events(
        &mut self,
        connection: &mut sqlx::AnyConnection,
    ) -> Result<Result<Option<Vec<NewEvent>>, G::Refusal>, sqlx::Error> {
        if let Some(events) = self.events.take() {
            return Ok(Ok(Some(events)));
        }
        Ok(self.guard.apply(connection).await?.map(|()| None))
    }
}

/// Where an append's hash chain stands between its batches.
struct Chain<'a> {
    stream: &'a StreamId,
    metadata_json: &'a str,
    recorded_at_us: i64,
    next_version: u64,
    previous_hash: Hash,
}

/// What [`EventStore::append_guarded`] answers: appended (or answered as a retry), or refused by
/// the guard with nothing written.
#[derive(Debug)]
pub enum GuardedAppend<R> {
    Appended(AppendOutcome),
    Refused(R),
}

type CommitDelay = Arc<dyn Fn() -> Duration + Send + Sync>;

/// The case-event log's store.
#[derive(Clone)]
pub struct EventStore {
    pool: AnyPool,
    kind: DatabaseKind,
    identity: Arc<str>,
    /// Raised after each append: wakes the log worker handed the same signals.
    signals: LogSignals,
    /// Last known head (version, hash) per stream, shared by clones.
    heads: Arc<std::sync::Mutex<std::collections::HashMap<String, (u64, Hash)>>>,
    commit_delay: Option<CommitDelay>,
    /// The service writing through this store: names the service of the log's spans.
    service: Option<&'static str>,
    /// The largest encoded payload an event may have (`log.max_event_payload_bytes`).
    max_event_payload_bytes: usize,
}

impl std::fmt::Debug for EventStore {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("EventStore")
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

/// [`EVENT_COLUMNS`] for reads driven by `events` (a stream, a case, one event): the position
/// looked up row by row in `log_entries`' unique index. A `LEFT JOIN` instead let the planner
/// hash all of `log_entries` for every read of one household's stream.
const STREAM_EVENT_COLUMNS: &str = "e.sequence, (SELECT l.log_position FROM log_entries l WHERE l.event_sequence = e.sequence), \
     e.event_id, e.stream_id, e.stream_version, e.case_id, \
     e.event_type, e.schema_version, e.payload, e.metadata, e.occurred_at_us, e.recorded_at_us, \
     e.previous_hash, e.hash, e.tx_id";
const EVENT_COLUMNS: &str = "e.sequence, l.log_position, e.event_id, e.stream_id, e.stream_version, e.case_id, \
     e.event_type, e.schema_version, e.payload, e.metadata, e.occurred_at_us, e.recorded_at_us, \
     e.previous_hash, e.hash, e.tx_id";

impl EventStore {
    /// A store on `pool`; call [`EventStore::migrate`] once before use. It raises signals of
    /// its own ([`EventStore::signals`]), for a worker built beside it;
    /// [`EventStore::with_signals`] shares others.
    pub fn new(pool: AnyPool, kind: DatabaseKind, identity: &str) -> Self {
        EventStore {
            pool,
            kind,
            identity: Arc::from(identity),
            signals: LogSignals::new(),
            heads: Arc::default(),
            commit_delay: None,
            service: None,
            max_event_payload_bytes: sunshine_platform::config::DEFAULT_MAX_EVENT_PAYLOAD_BYTES,
        }
    }

    /// The store refusing at append any event whose encoded payload is larger than `bytes`
    /// ([`StoreError::EventTooLarge`]; `log.max_event_payload_bytes`, 512 KiB by default).
    /// The bound keeps every event publishable: the relay publishes in log order, and one
    /// event over the bus's message limit would hold back every later event.
    pub fn with_max_event_payload_bytes(mut self, bytes: usize) -> Self {
        self.max_event_payload_bytes = bytes;
        self
    }

    /// The largest encoded payload an append takes.
    pub fn max_event_payload_bytes(&self) -> usize {
        self.max_event_payload_bytes
    }

    /// From the platform's connected database (and the service it was connected for).
    pub fn from_database(database: &sunshine_platform::backends::Database) -> Self {
        EventStore {
            service: database.service_name(),
            ..EventStore::new(
                database.pool().clone(),
                database.kind(),
                database.identity(),
            )
        }
    }

    /// The service writing through this store, if known: the log's spans say it.
    pub fn service(&self) -> Option<&'static str> {
        self.service
    }

    /// The database's `db.system.name`, for spans.
    pub fn db_system(&self) -> &'static str {
        match self.kind {
            DatabaseKind::Postgres => "postgresql",
            DatabaseKind::Sqlite => "sqlite",
        }
    }

    /// The span of one read, only inside a trace: the worker's and consumers' polling reads
    /// start none.
    fn read_span(&self, operation: &'static str) -> tracing::Span {
        if tracing::Span::current().is_none() {
            return tracing::Span::none();
        }
        tracing::info_span!(
            "eventlog.read",
            otel.name = operation,
            otel.kind = "client",
            db.system.name = self.db_system(),
            db.operation.name = operation,
            db.collection.name = "events",
        )
    }

    /// The store raising `signals` after each append (clones of this store included): the ones
    /// the log worker of this database waits for.
    pub fn with_signals(mut self, signals: LogSignals) -> Self {
        self.signals = signals;
        self
    }

    /// The signals this store raises after each append.
    pub fn signals(&self) -> &LogSignals {
        &self.signals
    }

    /// Creates or upgrades the log's tables.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        schema::migrate(&self.pool, self.kind).await
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    pub fn kind(&self) -> DatabaseKind {
        self.kind
    }

    /// Names the database this store writes to, for process-local leases (SQLite): the pool's
    /// connect options are not comparable, so the caller's URL is kept.
    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// For the concurrency tests: sleep this long (a fresh value per append) inside each append
    /// transaction, just before it commits.
    #[doc(hidden)]
    pub fn with_commit_delay(
        mut self,
        delay: impl Fn() -> Duration + Send + Sync + 'static,
    ) -> Self {
        self.commit_delay = Some(Arc::new(delay));
        self
    }

    /// Appends `events` to `stream` atomically, if the stream is at `expected`. With a
    /// `metadata.command_id` seen before, returns the first append's result and writes nothing.
    /// A command id reused for a different request (another stream, or a different
    /// `metadata.request_digest`) is [`StoreError::CommandReused`].
    pub async fn append(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        metadata: &EventMetadata,
        events: Vec<NewEvent>,
    ) -> Result<AppendOutcome, StoreError> {
        match self
            .append_guarded(stream, expected, metadata, events, &NoGuard)
            .await?
        {
            GuardedAppend::Appended(outcome) => Ok(outcome),
            GuardedAppend::Refused(never) => match never {},
        }
    }

    /// The first answer to `metadata.command_id`, if that command was appended before: what a
    /// retry must get back, checked before the caller does anything with side effects. A
    /// command id used for another stream or another request is [`StoreError::CommandReused`].
    pub async fn previous_outcome(
        &self,
        stream: &StreamId,
        metadata: &EventMetadata,
    ) -> Result<Option<AppendOutcome>, StoreError> {
        match &metadata.command_id {
            Some(command_id) => {
                self.find_command(command_id, stream, command_digest(metadata).as_deref())
                    .await
            }
            None => Ok(None),
        }
    }

    /// [`EventStore::append`], with `guard`'s writes in the same transaction: both commit or
    /// neither does. A retried command (same id and digest) is answered from the first append
    /// without running the guard.
    ///
    /// The append has a span (`eventlog.append`, a child of the caller's, or the root of a trace
    /// of the store's service), and the events' stored metadata carries that span's trace
    /// context: the relay's publish and every consumer's handling of them continue the trace.
    pub async fn append_guarded<G: AppendGuard>(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        metadata: &EventMetadata,
        events: Vec<NewEvent>,
        guard: &G,
    ) -> Result<GuardedAppend<G::Refusal>, StoreError> {
        let span = tracing::info_span!(
            "eventlog.append",
            otel.kind = "client",
            db.system.name = self.db_system(),
            db.operation.name = "append",
            db.collection.name = "events",
            sunshine.stream_id = %stream,
            sunshine.event_count = events.len(),
            sunshine.event_type = events.first().map_or("", |event| event.event_type.as_str()),
        );
        let traced_metadata = self.traced(&span, metadata);
        self.append_in_span(
            stream,
            expected,
            traced_metadata.as_ref().unwrap_or(metadata),
            events,
            guard,
        )
        .instrument(span)
        .await
    }

    /// An append's span made the root of a trace of the store's service when the caller has
    /// none, and `metadata` carrying that span's trace context (`None`: no context to carry).
    fn traced(&self, span: &tracing::Span, metadata: &EventMetadata) -> Option<EventMetadata> {
        if tracing::Span::current().is_none() {
            telemetry::begin_trace_in(span, self.service);
        }
        telemetry::trace_context(span).map(|context| EventMetadata {
            traceparent: Some(context.traceparent),
            tracestate: context.tracestate,
            ..metadata.clone()
        })
    }

    async fn append_in_span<G: AppendGuard>(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        metadata: &EventMetadata,
        events: Vec<NewEvent>,
        guard: &G,
    ) -> Result<GuardedAppend<G::Refusal>, StoreError> {
        validate_new_events(&events, self.max_event_payload_bytes)?;
        let mut source = GuardedEvents {
            events: Some(events),
            guard,
        };
        self.append_from(stream, expected, metadata, &mut source, true)
            .await
    }

    /// Appends what `source` produces, batch by batch, to `stream` atomically, if the stream is
    /// at `expected`: for appends too large to hold at once (a payment run's orders). The
    /// source writes what its events guard on the append's own transaction as it goes, and may
    /// refuse at any point, which rolls everything back. A retry (same command id and digest)
    /// is answered from the first append without asking the source for anything.
    ///
    /// Each batch is checked as [`EventStore::append`] checks its events, the append as a whole
    /// against [`MAX_EVENTS_PER_STREAMED_APPEND`]. The outcome carries no events (the point is
    /// not to hold them): read them back with [`EventStore::read_stream`] if needed.
    pub async fn append_streamed<S: EventSource>(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        metadata: &EventMetadata,
        source: &mut S,
    ) -> Result<GuardedAppend<S::Refusal>, StoreError> {
        let span = tracing::info_span!(
            "eventlog.append",
            otel.kind = "client",
            db.system.name = self.db_system(),
            db.operation.name = "append",
            db.collection.name = "events",
            sunshine.stream_id = %stream,
            sunshine.streamed = true,
        );
        let traced_metadata = self.traced(&span, metadata);
        // The source writes before the first event is inserted, so a retry is looked for
        // first, whatever the expected version (a plain append finds it on the events' keys).
        if let Some(previous) = self.previous_outcome(stream, metadata).await? {
            return Ok(GuardedAppend::Appended(previous));
        }
        self.append_from(
            stream,
            expected,
            traced_metadata.as_ref().unwrap_or(metadata),
            source,
            false,
        )
        .instrument(span)
        .await
    }

    /// One append from `source`, a unique-key failure turned into what it means: a concurrent
    /// retry's answer, a version conflict, or a duplicate event id. `keep_events`: whether the
    /// outcome carries the appended events.
    async fn append_from<S: EventSource>(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        metadata: &EventMetadata,
        source: &mut S,
        keep_events: bool,
    ) -> Result<GuardedAppend<S::Refusal>, StoreError> {
        let metadata_json = serde_json::to_string(metadata)
            .map_err(|error| StoreError::Invalid(format!("metadata: {error}")))?;
        let mut appended_ids = Vec::new();
        match self
            .try_append(
                stream,
                expected,
                metadata,
                &metadata_json,
                source,
                keep_events,
                &mut appended_ids,
            )
            .await
        {
            Err(StoreError::Database(sqlx::Error::Database(database_error)))
                if schema::is_duplicate_key(database_error.as_ref()) =>
            {
                let message = database_error.message().to_owned();
                let constraint = database_error.constraint().unwrap_or_default().to_owned();
                // A concurrent retry of the same command won the race: answer as a retry.
                if let Some(command_id) = &metadata.command_id
                    && let Some(outcome) = self
                        .find_command(command_id, stream, command_digest(metadata).as_deref())
                        .await?
                {
                    return Ok(GuardedAppend::Appended(outcome));
                }
                if constraint == "events_stream_version_unique"
                    || message.contains("events.stream_version")
                {
                    let actual = self.stream_version(stream).await?;
                    return Err(StoreError::Conflict {
                        stream_id: stream.to_string(),
                        expected: describe_expected(expected),
                        actual,
                    });
                }
                if constraint == "events_event_id_key" || message.contains("events.event_id") {
                    let duplicate = self.first_existing_event_id(&appended_ids).await?;
                    return Err(StoreError::DuplicateEventId(duplicate.unwrap_or_default()));
                }
                Err(StoreError::Invalid(format!(
                    "unique constraint {constraint}: {message}"
                )))
            }
            other => other,
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn try_append<S: EventSource>(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        metadata: &EventMetadata,
        metadata_json: &str,
        source: &mut S,
        keep_events: bool,
        appended_ids: &mut Vec<Uuid>,
    ) -> Result<GuardedAppend<S::Refusal>, StoreError> {
        // When the writer's expected head is known (a new stream, or the head this process last
        // wrote or read), the append needs no read at all: a stored (stream, version) never
        // changes its hash, and if the stream moved on meanwhile the unique key on
        // (stream_id, stream_version) refuses the insert. Otherwise one query reads the head
        // and whether the command was seen.
        let known_head = match expected {
            ExpectedVersion::NoStream => Some((0, GENESIS_HASH)),
            ExpectedVersion::Exact(version) => self
                .cached_head(stream)
                .filter(|(cached, _)| *cached == version),
            ExpectedVersion::Any => None,
        };
        // SQLite: take the write lock at BEGIN, so reading the head and inserting are one
        // serialised step (a deferred transaction could fail to upgrade under contention).
        let mut transaction = match self.kind {
            DatabaseKind::Postgres => self.pool.begin().await?,
            DatabaseKind::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
        };
        let (head_version, head_hash) = match known_head {
            Some(head) => head,
            None => {
                let decision = sqlx::query(
                    "SELECT (SELECT stream_id FROM event_commands WHERE command_id = $1), head.stream_version, head.hash \
                     FROM (SELECT 1 AS one) AS anchor LEFT JOIN \
                     (SELECT stream_version, hash FROM events WHERE stream_id = $2 ORDER BY stream_version DESC LIMIT 1) AS head \
                     ON 1 = 1",
                )
                .bind(metadata.command_id.as_deref().unwrap_or(""))
                .bind(stream.as_str())
                .fetch_one(&mut *transaction)
                .await?;
                let seen_command: Option<String> = decision.try_get(0)?;
                if let (Some(_), Some(command_id)) = (seen_command, &metadata.command_id) {
                    transaction.rollback().await?;
                    return self
                        .find_command(command_id, stream, command_digest(metadata).as_deref())
                        .await?
                        .map(GuardedAppend::Appended)
                        .ok_or_else(|| {
                            StoreError::Corrupt(format!("command {command_id} vanished"))
                        });
                }
                let version = to_u64(decision.try_get::<Option<i64>, _>(1)?.unwrap_or(0))?;
                let hash = match decision.try_get::<Option<Vec<u8>>, _>(2)? {
                    Some(bytes) => to_hash(&bytes)?,
                    None => GENESIS_HASH,
                };
                (version, hash)
            }
        };
        let version_matches = match expected {
            ExpectedVersion::NoStream => head_version == 0,
            ExpectedVersion::Exact(version) => head_version == version,
            ExpectedVersion::Any => true,
        };
        if !version_matches {
            transaction.rollback().await?;
            return Err(StoreError::Conflict {
                stream_id: stream.to_string(),
                expected: describe_expected(expected),
                actual: head_version,
            });
        }

        let first_version = head_version + 1;
        let mut chain = Chain {
            stream,
            metadata_json,
            recorded_at_us: now_micros(),
            next_version: first_version,
            previous_hash: head_hash,
        };
        let mut kept = Vec::new();
        let mut count = 0usize;
        loop {
            let batch = match source.next_events(&mut transaction).await? {
                Ok(Some(batch)) => batch,
                Ok(None) => break,
                Err(refusal) => {
                    transaction.rollback().await?;
                    return Ok(GuardedAppend::Refused(refusal));
                }
            };
            if batch.is_empty() {
                continue;
            }
            count += batch.len();
            if count > MAX_EVENTS_PER_STREAMED_APPEND {
                return Err(StoreError::Invalid(format!(
                    "at most {MAX_EVENTS_PER_STREAMED_APPEND} events per streamed append"
                )));
            }
            validate_events(&batch, count - batch.len(), self.max_event_payload_bytes)?;
            appended_ids.extend(batch.iter().map(|event| event.event_id));
            let recorded = self
                .insert_events(&mut transaction, &mut chain, batch)
                .await?;
            if keep_events {
                kept.extend(recorded);
            }
        }
        if count == 0 {
            return Err(StoreError::Invalid(
                "an append needs at least one event".into(),
            ));
        }
        let last_version = chain.next_version - 1;
        if let Some(command_id) = &metadata.command_id {
            // A retry that raced this one fails here or on the events' keys, and is answered
            // as a retry (see `append`).
            sqlx::query(
                "INSERT INTO event_commands (command_id, stream_id, first_version, last_version, recorded_at_us, request_digest) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(command_id.as_str())
            .bind(stream.as_str())
            .bind(to_i64(first_version)?)
            .bind(to_i64(last_version)?)
            .bind(chain.recorded_at_us)
            .bind(command_digest(metadata))
            .execute(&mut *transaction)
            .await?;
        }

        if let Some(delay) = &self.commit_delay {
            tokio::time::sleep(delay()).await;
        }
        transaction.commit().await?;
        self.remember_head(stream, last_version, chain.previous_hash);
        self.signals.notify_appended();
        Ok(GuardedAppend::Appended(AppendOutcome {
            stream_id: stream.to_string(),
            first_version,
            last_version,
            events: kept,
            deduplicated: false,
        }))
    }

    /// Chains and inserts one batch of an append's events; answers them as recorded.
    async fn insert_events(
        &self,
        transaction: &mut sqlx::Transaction<'static, sqlx::Any>,
        chain: &mut Chain<'_>,
        events: Vec<NewEvent>,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let mut recorded = Vec::with_capacity(events.len());
        for event in events {
            let stream_version = chain.next_version;
            let event_id_text = event.event_id.hyphenated().to_string();
            let fields = RecordFields {
                event_id: &event_id_text,
                stream_id: chain.stream.as_str(),
                stream_version,
                case_id: &event.case_id,
                event_type: &event.event_type,
                schema_version: event.schema_version,
                payload: &event.payload,
                metadata_json: chain.metadata_json,
                occurred_at_us: event.occurred_at_us,
                recorded_at_us: chain.recorded_at_us,
            };
            let hash = chain_hash(&chain.previous_hash, &fields);
            recorded.push(RecordedEvent {
                sequence: 0,
                log_position: None,
                event_id: event.event_id,
                stream_id: chain.stream.to_string(),
                stream_version,
                case_id: event.case_id,
                event_type: event.event_type,
                schema_version: event.schema_version,
                payload: event.payload,
                metadata_json: chain.metadata_json.to_owned(),
                occurred_at_us: event.occurred_at_us,
                recorded_at_us: chain.recorded_at_us,
                previous_hash: chain.previous_hash,
                hash,
            });
            chain.previous_hash = hash;
            chain.next_version += 1;
        }

        // Backend difference: the writer's place in commit order, taken by the INSERT itself
        // (after the head was read or known; see the module docs).
        let tx_id_expression = match self.kind {
            DatabaseKind::Postgres => "pg_current_xact_id()::text::bigint",
            DatabaseKind::Sqlite => "(SELECT COALESCE(MAX(tx_id), 0) + 1 FROM events)",
        };
        for chunk in recorded.chunks_mut(INSERT_CHUNK) {
            let mut query = sqlx::query(sqlx::AssertSqlSafe(insert_sql(
                chunk.len(),
                tx_id_expression,
            )));
            for event in chunk.iter() {
                query = query
                    .bind(event.event_id.hyphenated().to_string())
                    .bind(event.stream_id.clone())
                    .bind(to_i64(event.stream_version)?)
                    .bind(event.case_id.clone())
                    .bind(event.event_type.clone())
                    .bind(i64::from(event.schema_version))
                    .bind(event.payload.clone())
                    .bind(event.metadata_json.clone())
                    .bind(event.occurred_at_us)
                    .bind(event.recorded_at_us)
                    .bind(event.previous_hash.to_vec())
                    .bind(event.hash.to_vec());
            }
            let sequences = query.fetch_all(&mut **transaction).await?;
            if sequences.len() != chunk.len() {
                return Err(StoreError::Corrupt(
                    "insert returned the wrong number of rows".into(),
                ));
            }
            // RETURNING gives rows in VALUES order on both backends.
            for (event, row) in chunk.iter_mut().zip(sequences) {
                event.sequence = row.try_get::<i64, _>(0)?;
            }
        }
        Ok(recorded)
    }

    fn cached_head(&self, stream: &StreamId) -> Option<(u64, Hash)> {
        let heads = self
            .heads
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        heads.get(stream.as_str()).copied()
    }

    /// Remembers a stream's head (a version and its hash, which never change once stored).
    fn remember_head(&self, stream: &StreamId, version: u64, hash: Hash) {
        let mut heads = self
            .heads
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if heads.len() >= HEAD_CACHE_CAPACITY && !heads.contains_key(stream.as_str()) {
            heads.clear();
        }
        let entry = heads
            .entry(stream.as_str().to_owned())
            .or_insert((version, hash));
        if version >= entry.0 {
            *entry = (version, hash);
        }
    }

    /// The outcome of an earlier append of `command_id`, if there was one.
    /// A command recorded without a digest (before migration 2, or by a writer that sets none)
    /// is compared by stream only; one recorded with a digest must be retried with that digest.
    async fn find_command(
        &self,
        command_id: &str,
        stream: &StreamId,
        request_digest: Option<&str>,
    ) -> Result<Option<AppendOutcome>, StoreError> {
        let row = sqlx::query("SELECT stream_id, first_version, last_version, request_digest FROM event_commands WHERE command_id = $1")
            .bind(command_id)
            .fetch_optional(&self.pool)
            .await?;
        let Some(row) = row else { return Ok(None) };
        let used_for: String = row.try_get(0)?;
        let recorded_digest: Option<String> = row.try_get(3)?;
        let same_request = match (recorded_digest.as_deref(), request_digest) {
            (Some(recorded), Some(retried)) => recorded == retried,
            (Some(_), None) => false,
            (None, _) => true,
        };
        if used_for != stream.as_str() || !same_request {
            return Err(StoreError::CommandReused {
                command_id: command_id.to_owned(),
            });
        }
        let first_version = to_u64(row.try_get::<i64, _>(1)?)?;
        let last_version = to_u64(row.try_get::<i64, _>(2)?)?;
        let mut events = self.read_stream(stream, first_version).await?;
        events.retain(|event| event.stream_version <= last_version);
        Ok(Some(AppendOutcome {
            stream_id: stream.to_string(),
            first_version,
            last_version,
            events,
            deduplicated: true,
        }))
    }

    async fn first_existing_event_id(&self, ids: &[Uuid]) -> Result<Option<Uuid>, StoreError> {
        for id in ids {
            let found: Option<i64> =
                sqlx::query_scalar("SELECT sequence FROM events WHERE event_id = $1")
                    .bind(id.hyphenated().to_string())
                    .fetch_optional(&self.pool)
                    .await?;
            if found.is_some() {
                return Ok(Some(*id));
            }
        }
        Ok(None)
    }

    /// The stream's current version (0 if it has no events).
    pub async fn stream_version(&self, stream: &StreamId) -> Result<u64, StoreError> {
        let version: Option<i64> =
            sqlx::query_scalar("SELECT MAX(stream_version) FROM events WHERE stream_id = $1")
                .bind(stream.as_str())
                .fetch_one(&self.pool)
                .await?;
        to_u64(version.unwrap_or(0))
    }

    /// The stream's events from `from_version` on, in version order.
    pub async fn read_stream(
        &self,
        stream: &StreamId,
        from_version: u64,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let sql = format!(
            "SELECT {STREAM_EVENT_COLUMNS} FROM events e \
             WHERE e.stream_id = $1 AND e.stream_version >= $2 ORDER BY e.stream_version"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(stream.as_str())
            .bind(to_i64(from_version)?)
            .fetch_all(&self.pool)
            .instrument(self.read_span("read_stream"))
            .await?;
        let events: Vec<RecordedEvent> = rows.iter().map(decode_event).collect::<Result<_, _>>()?;
        if let Some(last) = events.last() {
            self.remember_head(stream, last.stream_version, last.hash);
        }
        Ok(events)
    }

    /// At most `limit` of the stream's events from `from_version` on, in version order: a
    /// long stream read a page at a time, so that a reader holds one page, not the stream.
    pub async fn read_stream_page(
        &self,
        stream: &StreamId,
        from_version: u64,
        limit: u32,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let sql = format!(
            "SELECT {STREAM_EVENT_COLUMNS} FROM events e \
             WHERE e.stream_id = $1 AND e.stream_version >= $2 ORDER BY e.stream_version LIMIT $3"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(stream.as_str())
            .bind(to_i64(from_version)?)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .instrument(self.read_span("read_stream"))
            .await?;
        rows.iter().map(decode_event).collect()
    }

    /// Every committed event of a case (the case file), in commit order.
    pub async fn read_case(&self, case_id: &str) -> Result<Vec<RecordedEvent>, StoreError> {
        let sql = format!(
            "SELECT {STREAM_EVENT_COLUMNS} FROM events e \
             WHERE e.case_id = $1 ORDER BY e.tx_id, e.sequence"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(case_id)
            .fetch_all(&self.pool)
            .instrument(self.read_span("read_case"))
            .await?;
        rows.iter().map(decode_event).collect()
    }

    /// Up to `limit` events of the global order from `from_position` on (sequenced events only:
    /// dense positions, never a gap).
    pub async fn read_log(
        &self,
        from_position: u64,
        limit: u32,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let sql = format!(
            "SELECT {EVENT_COLUMNS} FROM log_entries l JOIN events e ON e.sequence = l.event_sequence \
             WHERE l.log_position >= $1 ORDER BY l.log_position LIMIT $2"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(to_i64(from_position)?)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .instrument(self.read_span("read_log"))
            .await?;
        rows.iter().map(decode_event).collect()
    }

    /// The events at positions `from_position..to_position` of the global order.
    pub async fn read_log_range(
        &self,
        from_position: u64,
        to_position: u64,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let sql = format!(
            "SELECT {EVENT_COLUMNS} FROM log_entries l JOIN events e ON e.sequence = l.event_sequence \
             WHERE l.log_position >= $1 AND l.log_position < $2 ORDER BY l.log_position"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(to_i64(from_position)?)
            .bind(to_i64(to_position)?)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(decode_event).collect()
    }

    /// Replays the global order from `from_position` to the current end, handing batches of
    /// `batch_size` events to `on_batch` in order. Positions are dense, so the next ranges are
    /// read while the current one is handled (two queries in flight).
    pub async fn replay_log<F>(
        &self,
        from_position: u64,
        batch_size: u32,
        mut on_batch: F,
    ) -> Result<u64, StoreError>
    where
        F: FnMut(Vec<RecordedEvent>) -> Result<(), StoreError>,
    {
        use futures::StreamExt as _;
        let end = self.log_size().await?;
        let batch = u64::from(batch_size.max(1));
        let ranges: Vec<(u64, u64)> = (from_position..end)
            .step_by(batch as usize)
            .map(|start| (start, (start + batch).min(end)))
            .collect();
        let mut batches = futures::stream::iter(ranges)
            .map(|(start, stop)| async move {
                self.read_log_range(start, stop)
                    .await
                    .map(|events| (start, stop, events))
            })
            .buffered(2);
        let mut replayed = 0;
        while let Some(result) = batches.next().await {
            let (start, stop, events) = result?;
            if events.len() as u64 != stop - start {
                return Err(StoreError::Corrupt(format!(
                    "log positions {start}..{stop} are not all present"
                )));
            }
            replayed += events.len() as u64;
            on_batch(events)?;
        }
        Ok(replayed)
    }

    /// How many events the global order holds (the Merkle tree size).
    pub async fn log_size(&self) -> Result<u64, StoreError> {
        let size: Option<i64> = sqlx::query_scalar("SELECT MAX(log_position) + 1 FROM log_entries")
            .fetch_one(&self.pool)
            .await?;
        to_u64(size.unwrap_or(0))
    }

    /// Up to `limit` committed events after `cursor`, in commit order, never skipping one that
    /// commits later (see the module docs).
    pub async fn read_committed_after(
        &self,
        cursor: CommitCursor,
        limit: u32,
    ) -> Result<Vec<CommittedEvent>, StoreError> {
        Ok(self.read_ready_after(cursor, limit).await?.ready)
    }

    /// The sequencer's one read per round: up to `limit` events after `cursor` in commit order,
    /// split at the transaction horizon taken in the same statement (the same snapshot), so
    /// one round trip both hands out what is ready and tells whether committed events wait
    /// behind a transaction still open.
    ///
    /// Rows are ordered by `(tx_id, sequence)` and every `tx_id` below the horizon is final, so
    /// the ready events are a prefix of the rows read: the first row at or above the horizon
    /// ends it, and that row (committed, visible, but possibly preceded by an older transaction
    /// that has not committed yet) is what "held back" means.
    pub async fn read_ready_after(
        &self,
        cursor: CommitCursor,
        limit: u32,
    ) -> Result<ReadyEvents, StoreError> {
        // No join with log_entries: nothing after the cursor is sequenced yet, and the join made
        // the planner hash the whole of log_entries on every round. The horizon is a scalar
        // subquery, evaluated once per statement; SQLite has one writer and no horizon.
        let columns = EVENT_COLUMNS.replacen("l.log_position", "CAST(NULL AS BIGINT)", 1);
        let horizon = match self.kind {
            DatabaseKind::Postgres => {
                "(SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint)"
            }
            DatabaseKind::Sqlite => "9223372036854775807",
        };
        let sql = format!(
            "SELECT {columns}, {horizon} FROM events e \
             WHERE (e.tx_id, e.sequence) > ($1, $2) \
             ORDER BY e.tx_id, e.sequence LIMIT $3"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(cursor.tx_id)
            .bind(cursor.sequence)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        let mut ready = Vec::with_capacity(rows.len());
        let mut held_back = false;
        for row in &rows {
            let tx_id: i64 = row.try_get(14)?;
            let horizon: i64 = row.try_get(15)?;
            if tx_id >= horizon {
                held_back = true;
                break;
            }
            let event = decode_event(row)?;
            ready.push(CommittedEvent {
                cursor: CommitCursor {
                    tx_id,
                    sequence: event.sequence,
                },
                event,
            });
        }
        Ok(ReadyEvents { ready, held_back })
    }
}

fn insert_sql(rows: usize, tx_id_expression: &str) -> String {
    const PARAMETERS_PER_ROW: usize = 12;
    let mut sql = String::from(
        "INSERT INTO events (tx_id, event_id, stream_id, stream_version, case_id, event_type, schema_version, \
         payload, metadata, occurred_at_us, recorded_at_us, previous_hash, hash) VALUES ",
    );
    for row in 0..rows {
        if row > 0 {
            sql.push_str(", ");
        }
        sql.push('(');
        sql.push_str(tx_id_expression);
        for column in 0..PARAMETERS_PER_ROW {
            sql.push_str(", $");
            sql.push_str(&(row * PARAMETERS_PER_ROW + column + 1).to_string());
        }
        sql.push(')');
    }
    sql.push_str(" RETURNING sequence");
    sql
}

fn validate_new_events(events: &[NewEvent], max_payload_bytes: usize) -> Result<(), StoreError> {
    if events.is_empty() {
        return Err(StoreError::Invalid(
            "an append needs at least one event".into(),
        ));
    }
    if events.len() > MAX_EVENTS_PER_APPEND {
        return Err(StoreError::Invalid(format!(
            "at most {MAX_EVENTS_PER_APPEND} events per append"
        )));
    }
    validate_events(events, 0, max_payload_bytes)
}

/// Each event of a batch whose first is the append's event number `first_index`: its fields,
/// its payload's size, and no event id twice in the batch.
fn validate_events(
    events: &[NewEvent],
    first_index: usize,
    max_payload_bytes: usize,
) -> Result<(), StoreError> {
    for (offset, event) in events.iter().enumerate() {
        let index = first_index + offset;
        if event.case_id.trim().is_empty() {
            return Err(StoreError::Invalid(format!(
                "events[{index}].case_id must not be empty"
            )));
        }
        if event.event_type.trim().is_empty() {
            return Err(StoreError::Invalid(format!(
                "events[{index}].event_type must not be empty"
            )));
        }
        if event.schema_version == 0 {
            return Err(StoreError::Invalid(format!(
                "events[{index}].schema_version starts at 1"
            )));
        }
        if event.payload.len() > max_payload_bytes {
            return Err(StoreError::EventTooLarge {
                index,
                event_type: event.event_type.clone(),
                bytes: event.payload.len(),
                limit: max_payload_bytes,
            });
        }
    }
    let mut seen = std::collections::HashSet::new();
    for event in events {
        if !seen.insert(event.event_id) {
            return Err(StoreError::DuplicateEventId(event.event_id));
        }
    }
    Ok(())
}

/// What `event_commands` keeps of a command: the request's digest bound to who sent it, so a
/// command id is answered as a retry only for the same officer (role, org unit) sending the
/// same request — another caller replaying a request they got hold of learns nothing, not even
/// the stream's version.
fn command_digest(metadata: &EventMetadata) -> Option<String> {
    use sha2::Digest as _;
    let request_digest = metadata.request_digest.as_deref()?;
    let mut hasher = sha2::Sha256::new();
    for part in [
        "sunshine/command/v1",
        request_digest,
        metadata.actor.subject.as_str(),
        metadata.actor.role.as_str(),
        metadata.actor.org_unit.as_str(),
        metadata.actor.department_code.as_deref().unwrap_or(""),
    ] {
        // Length-prefixed, so no two different tuples hash alike.
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part.as_bytes());
    }
    Some(hex::encode(hasher.finalize()))
}

fn describe_expected(expected: ExpectedVersion) -> String {
    match expected {
        ExpectedVersion::NoStream => "no stream".into(),
        ExpectedVersion::Exact(version) => version.to_string(),
        ExpectedVersion::Any => "any".into(),
    }
}

pub(crate) fn decode_event(row: &AnyRow) -> Result<RecordedEvent, StoreError> {
    let event_id_text: String = row.try_get(2)?;
    let log_position: Option<i64> = row.try_get(1)?;
    Ok(RecordedEvent {
        sequence: row.try_get(0)?,
        log_position: log_position.map(to_u64).transpose()?,
        event_id: Uuid::parse_str(&event_id_text)
            .map_err(|_| StoreError::Corrupt(format!("event id {event_id_text} is not a UUID")))?,
        stream_id: row.try_get(3)?,
        stream_version: to_u64(row.try_get::<i64, _>(4)?)?,
        case_id: row.try_get(5)?,
        event_type: row.try_get(6)?,
        schema_version: u32::try_from(row.try_get::<i64, _>(7)?)
            .map_err(|_| StoreError::Corrupt("schema version out of range".into()))?,
        payload: row.try_get(8)?,
        metadata_json: row.try_get(9)?,
        occurred_at_us: row.try_get(10)?,
        recorded_at_us: row.try_get(11)?,
        previous_hash: to_hash(&row.try_get::<Vec<u8>, _>(12)?)?,
        hash: to_hash(&row.try_get::<Vec<u8>, _>(13)?)?,
    })
}

impl EventStore {
    /// The next log position the reader `name` (a relay, a consumer) will take.
    pub async fn cursor(&self, name: &str) -> Result<u64, StoreError> {
        let next: Option<i64> =
            sqlx::query_scalar("SELECT next_position FROM log_cursors WHERE name = $1")
                .bind(name)
                .fetch_optional(&self.pool)
                .await?;
        to_u64(next.unwrap_or(0))
    }

    /// Records that `name` has taken everything before `next_position`.
    pub async fn set_cursor(&self, name: &str, next_position: u64) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO log_cursors (name, next_position, updated_at_us) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO UPDATE SET next_position = excluded.next_position, updated_at_us = excluded.updated_at_us",
        )
        .bind(name)
        .bind(to_i64(next_position)?)
        .bind(now_micros())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// One event by id, with its log position if sequenced.
    pub async fn read_event(&self, event_id: Uuid) -> Result<Option<RecordedEvent>, StoreError> {
        let sql = format!(
            "SELECT {STREAM_EVENT_COLUMNS} FROM events e \
             WHERE e.event_id = $1"
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(event_id.hyphenated().to_string())
            .fetch_optional(&self.pool)
            .instrument(self.read_span("read_event"))
            .await?;
        row.as_ref().map(decode_event).transpose()
    }
}

impl EventStore {
    /// Whether a command id has been appended before (for reactors that must not decide twice).
    pub async fn command_seen(&self, command_id: &str) -> Result<bool, StoreError> {
        let found: Option<String> =
            sqlx::query_scalar("SELECT command_id FROM event_commands WHERE command_id = $1")
                .bind(command_id)
                .fetch_optional(&self.pool)
                .await?;
        Ok(found.is_some())
    }
}
