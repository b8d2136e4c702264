//! Consumers: projections and process managers that react to events, in log order, each
//! effect exactly once however often and in whatever order an event is delivered.
//!
//! A consumer has a cursor in `log_cursors` (`consumer:<name>`): the log position it applies
//! next. [`Consumer::advance`] is the whole contract: given delivered events, it applies every
//! event from the cursor up to the last of them, strictly in log position — the delivered ones
//! where they are contiguous, the log itself for a gap (a message JetStream redelivers late,
//! behind newer ones, after a process died holding it; or positions outside the consumer's
//! subjects). Events behind the cursor are done and ignored. So a projection is always a prefix
//! of the log applied in order: exactly what [`Consumer::rebuild`] builds from position 0.
//!
//! A batch is one transaction: the cursor moves by compare-and-set first (a second delivery,
//! or a replica of the service, waits for it and then finds the cursor moved, so nothing is
//! applied twice), then the projection applies each event. Reactions
//! ([`Projection::react`], for process managers that append to the log) run before, outside
//! the transaction (SQLite has one writer), and may run again after a crash: they use command
//! ids. A failure is counted in `consumer_failures` and the event is tried again after
//! `retry_delay`, holding the consumer at it (order is the point); after `max_attempts` it is
//! parked in `dead_letters` (visible, replayable with [`Consumer::replay_dead_letter`], the one
//! out-of-order application) and the cursor moves past it.
//!
//! Delivery is either JetStream ([`Consumer::run_jetstream`], a durable pull consumer: each
//! wake takes every message already delivered, up to `batch_size`, as one batch, acknowledged
//! after its commit) or, embedded, the log itself ([`Consumer::run_from_log`], woken by the
//! log worker): the same `advance` either way.
//!
//! Handling an event has a span (`eventlog.consume`) whose parent is the trace context stored
//! with the event — the span of the append that wrote it — so a reaction's own appends continue
//! the writer's trace; a batch's transaction has one too (`eventlog.consumer.transaction`, a
//! child of its first event's). A rebuild replays without spans: it is not the events' story.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream;
use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, pull};
use futures::{FutureExt as _, StreamExt as _};
use sqlx::{AnyConnection, Row as _};
use sunshine_platform::{Shutdown, telemetry};
use tracing::Instrument as _;

use crate::delivery::{self, Namespace};
use crate::error::{StoreError, to_i64, to_u64};
use crate::event::{RecordedEvent, now_micros};
use crate::signals::LogSignals;
use crate::store::EventStore;

/// Why a projection could not apply an event.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct HandlerError(pub String);

impl From<sqlx::Error> for HandlerError {
    fn from(error: sqlx::Error) -> Self {
        HandlerError(error.to_string())
    }
}

pub type HandlerFuture<'a> = Pin<Box<dyn Future<Output = Result<(), HandlerError>> + Send + 'a>>;

/// A read model or process manager fed by the log.
pub trait Projection: Send + Sync + 'static {
    /// The durable consumer's name: unique per projection, stable across releases.
    fn name(&self) -> &str;
    /// Which subjects it wants, below the namespace's prefix, with NATS wildcards: `>` for
    /// everything, `intake.>` for one service's events, `*.<case>` for one case.
    fn subject_filter(&self) -> &str {
        ">"
    }
    /// Reacts to one event outside any transaction, before it is recorded as processed: for
    /// process managers that append to the log (which must not happen inside the consumer's
    /// transaction: SQLite has one writer). It may run more than once for one event, so what
    /// it does must be idempotent (a command id on every append).
    fn react<'a>(&'a self, _event: &'a RecordedEvent) -> HandlerFuture<'a> {
        Box::pin(async { Ok(()) })
    }
    /// Applies one event, inside the transaction that records it as processed.
    fn apply<'a>(
        &'a self,
        connection: &'a mut AnyConnection,
        event: &'a RecordedEvent,
    ) -> HandlerFuture<'a>;
    /// Removes everything the projection built, before a rebuild.
    fn reset<'a>(&'a self, connection: &'a mut AnyConnection) -> HandlerFuture<'a>;
}

/// What happened to one delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Processed {
    Applied,
    /// Processed before: nothing done.
    AlreadyProcessed,
    /// Not for this consumer's subjects.
    Skipped,
    /// Failed; will be tried again.
    Failed {
        attempts: u32,
        error: String,
    },
    /// Failed `max_attempts` times: parked in `dead_letters`.
    Parked {
        attempts: u32,
        error: String,
    },
}

impl Processed {
    /// One word for spans and logs.
    pub fn label(&self) -> &'static str {
        match self {
            Processed::Applied => "applied",
            Processed::AlreadyProcessed => "already_processed",
            Processed::Skipped => "skipped",
            Processed::Failed { .. } => "failed",
            Processed::Parked { .. } => "parked",
        }
    }
}

#[derive(Debug, Clone)]
pub struct ConsumerConfig {
    pub namespace: Namespace,
    pub max_attempts: u32,
    /// Wait before JetStream redelivers a failed event / before the log consumer retries it.
    pub retry_delay: Duration,
    /// Events per read when consuming from the log.
    pub batch_size: u32,
    /// How often the log consumer looks for new entries when not woken.
    pub poll_interval: Duration,
    /// How long JetStream waits for an ack before delivering a message again.
    pub ack_wait: Duration,
}

impl Default for ConsumerConfig {
    fn default() -> Self {
        ConsumerConfig {
            namespace: Namespace::default(),
            max_attempts: 5,
            retry_delay: Duration::from_secs(1),
            batch_size: 500,
            poll_interval: Duration::from_millis(200),
            ack_wait: Duration::from_secs(30),
        }
    }
}

/// A parked event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    pub event_id: String,
    pub log_position: u64,
    pub attempts: u32,
    pub last_error: String,
    pub parked_at_us: i64,
    pub replayed_at_us: Option<i64>,
}

/// Runs one projection.
pub struct Consumer<P: Projection> {
    store: EventStore,
    projection: Arc<P>,
    config: ConsumerConfig,
    progress: Arc<Progress>,
}

/// What a consumer remembers between passes (shared by its clones); the database has the truth.
#[derive(Debug, Default)]
struct Progress {
    /// The cursor row exists.
    cursor_ready: AtomicBool,
    /// The position this process last committed as next, if any: saves reading the cursor
    /// before each batch. A stale value costs one retry (the cursor moves by compare-and-set).
    known_next: Mutex<Option<u64>>,
    /// The event that failed last, whose failure row goes when it is finally applied.
    failing: Mutex<Option<String>>,
}

impl<P: Projection> std::fmt::Debug for Consumer<P> {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Consumer")
            .field("name", &self.projection.name())
            .field("config", &self.config)
            .finish()
    }
}

impl<P: Projection> Clone for Consumer<P> {
    fn clone(&self) -> Self {
        Consumer {
            store: self.store.clone(),
            projection: Arc::clone(&self.projection),
            config: self.config.clone(),
            progress: Arc::clone(&self.progress),
        }
    }
}

/// What one pass of [`Consumer::advance`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Advanced {
    /// Where the pass started: everything before was done already.
    pub from_position: u64,
    /// Where the consumer stands now: everything before is done.
    pub next_position: u64,
    /// Events of this consumer's subjects applied in this pass.
    pub applied: usize,
    /// Events parked in this pass (their positions), after their last attempt.
    pub parked: Vec<(u64, Processed)>,
    /// The event at `next_position` failed and waits for another attempt.
    pub failed: Option<Processed>,
}

/// How a pass treats reactions and failures.
#[derive(Debug, Clone, Copy)]
struct Pass {
    /// Run [`Projection::react`] (never in a rebuild: the log already holds what reactions
    /// appended).
    react: bool,
    /// Park a failing event at its first failure (a rebuild does not wait for a fix).
    park_at_once: bool,
}

const LIVE: Pass = Pass {
    react: true,
    park_at_once: false,
};
const REBUILD: Pass = Pass {
    react: false,
    park_at_once: true,
};

/// How one batch's transaction ended.
enum Committed {
    /// Applied; the cursor is past the batch.
    Done { applied: usize },
    /// Another delivery (a replica, a redelivery racing) moved the cursor first.
    Moved { next: u64 },
    /// The projection failed on the batch's `index`-th event; nothing was kept.
    Failed { index: usize, error: String },
}

impl<P: Projection> Consumer<P> {
    pub fn new(store: EventStore, projection: P, config: ConsumerConfig) -> Self {
        Consumer {
            store,
            projection: Arc::new(projection),
            config,
            progress: Arc::new(Progress::default()),
        }
    }

    pub fn projection(&self) -> &P {
        &self.projection
    }

    fn cursor_name(&self) -> String {
        format!("consumer:{}", self.projection.name())
    }

    fn wants(&self, event: &RecordedEvent) -> bool {
        delivery::subject_matches(
            self.projection.subject_filter(),
            &delivery::relative_subject(event),
        )
    }

    /// The log position this consumer applies next: every event before it is done.
    pub async fn position(&self) -> Result<u64, StoreError> {
        let next = self.store.cursor(&self.cursor_name()).await?;
        self.remember(next);
        Ok(next)
    }

    fn remember(&self, next: u64) {
        if let Ok(mut known) = self.progress.known_next.lock() {
            *known = Some(next);
        }
    }

    async fn next_position(&self) -> Result<u64, StoreError> {
        let known = self
            .progress
            .known_next
            .lock()
            .ok()
            .and_then(|known| *known);
        match known {
            Some(next) => Ok(next),
            None => self.position().await,
        }
    }

    async fn ensure_cursor(&self) -> Result<(), StoreError> {
        if self.progress.cursor_ready.load(Ordering::Acquire) {
            return Ok(());
        }
        sqlx::query(
            "INSERT INTO log_cursors (name, next_position, updated_at_us) VALUES ($1, 0, $2) \
             ON CONFLICT (name) DO NOTHING",
        )
        .bind(self.cursor_name())
        .bind(now_micros())
        .execute(self.store.pool())
        .await?;
        self.progress.cursor_ready.store(true, Ordering::Release);
        Ok(())
    }

    /// Delivers one event (see [`Consumer::advance`]) and says what became of it.
    pub async fn process(&self, event: &RecordedEvent) -> Result<Processed, StoreError> {
        let position = event.log_position.ok_or_else(|| {
            StoreError::Invalid(format!("event {} has no log position yet", event.event_id))
        })?;
        let advanced = self.advance(std::slice::from_ref(event)).await?;
        if position < advanced.from_position {
            return Ok(Processed::AlreadyProcessed);
        }
        if let Some((_, parked)) = advanced.parked.iter().find(|(at, _)| *at == position) {
            return Ok(parked.clone());
        }
        if let Some(failed) = advanced
            .failed
            .filter(|_| advanced.next_position == position)
        {
            return Ok(failed);
        }
        if !self.wants(event) {
            return Ok(Processed::Skipped);
        }
        Ok(Processed::Applied)
    }

    /// Applies, in log position order, every event from the consumer's position up to and
    /// including the last of `delivered`: the delivered events where they are contiguous, the
    /// log itself for any gap (a message redelivered late, lost, or filtered out). Events
    /// before the position are done already and ignored. Stops early at an event that failed
    /// and will be tried again ([`Advanced::failed`]).
    pub async fn advance(&self, delivered: &[RecordedEvent]) -> Result<Advanced, StoreError> {
        self.advance_with(delivered, LIVE).await
    }

    async fn advance_with(
        &self,
        delivered: &[RecordedEvent],
        pass: Pass,
    ) -> Result<Advanced, StoreError> {
        self.ensure_cursor().await?;
        let mut next = self.next_position().await?;
        let mut advanced = Advanced {
            from_position: next,
            next_position: next,
            ..Advanced::default()
        };
        let Some(through) = delivered
            .iter()
            .filter_map(|event| event.log_position)
            .max()
        else {
            return Ok(advanced);
        };
        let batch_size = u64::from(self.config.batch_size.max(1));
        while next <= through {
            let last = through.min(next + batch_size - 1);
            let batch = self.events_between(delivered, next, last).await?;
            if batch.first().and_then(|event| event.log_position) != Some(next) {
                return Err(StoreError::Invalid(format!(
                    "the log has no event at position {next} for consumer {}",
                    self.projection.name()
                )));
            }
            match self.apply_batch(next, &batch, pass, &mut advanced).await? {
                Some(moved_to) => next = moved_to,
                None => {
                    advanced.next_position = next;
                    return Ok(advanced);
                }
            }
            if advanced.from_position > next {
                advanced.from_position = next;
            }
        }
        advanced.next_position = next;
        Ok(advanced)
    }

    /// The events at positions `first..=last`: those delivered if they are all there, else read
    /// from the log (which has every position the bus carries).
    async fn events_between(
        &self,
        delivered: &[RecordedEvent],
        first: u64,
        last: u64,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let mut at_hand: Vec<&RecordedEvent> = delivered
            .iter()
            .filter(|event| {
                event
                    .log_position
                    .is_some_and(|position| (first..=last).contains(&position))
            })
            .collect();
        at_hand.sort_by_key(|event| event.log_position);
        at_hand.dedup_by_key(|event| event.log_position);
        if at_hand.len() as u64 == last - first + 1 {
            return Ok(at_hand.into_iter().cloned().collect());
        }
        self.store.read_log_range(first, last + 1).await
    }

    /// Reacts to and applies one contiguous batch starting at `next`; returns the position after
    /// it, or `None` when an event failed and waits (recorded in `advanced`).
    async fn apply_batch(
        &self,
        next: u64,
        batch: &[RecordedEvent],
        pass: Pass,
        advanced: &mut Advanced,
    ) -> Result<Option<u64>, StoreError> {
        let mut spans = Vec::with_capacity(batch.len());
        let mut ready = batch.len();
        let mut failure: Option<String> = None;
        for (index, event) in batch.iter().enumerate() {
            let span = self.consume_span(event, pass);
            if pass.react
                && self.wants(event)
                && let Err(error) = self.projection.react(event).instrument(span.clone()).await
            {
                ready = index;
                failure = Some(error.0);
                spans.push(span);
                break;
            }
            spans.push(span);
        }
        let mut position = next;
        if ready > 0 {
            match self.commit_batch(next, &batch[..ready], &spans).await? {
                Committed::Done { applied } => {
                    advanced.applied += applied;
                    position = next + ready as u64;
                }
                Committed::Moved { next: moved } => {
                    self.remember(moved);
                    return Ok(Some(moved));
                }
                Committed::Failed { index, error } => {
                    // Keep what applied before the failing event, then count the failure.
                    if index > 0 {
                        match self.commit_batch(next, &batch[..index], &spans).await? {
                            Committed::Done { applied } => advanced.applied += applied,
                            Committed::Moved { next: moved } => {
                                self.remember(moved);
                                return Ok(Some(moved));
                            }
                            Committed::Failed { .. } => return Ok(None),
                        }
                    }
                    ready = index;
                    position = next + index as u64;
                    failure = Some(error);
                }
            }
        }
        self.remember(position);
        for span in &spans[..ready] {
            if span.is_disabled() {
                continue;
            }
            span.record("sunshine.outcome", "applied");
        }
        let Some(error) = failure else {
            return Ok(Some(position));
        };
        let event = &batch[ready];
        let outcome = self
            .record_failure(event, position, &error, pass.park_at_once)
            .await?;
        if let Some(span) = spans.get(ready) {
            span.record("sunshine.outcome", outcome.label());
        }
        match outcome {
            Processed::AlreadyProcessed => Ok(Some(self.next_position().await?)),
            Processed::Parked { .. } => {
                advanced.parked.push((position, outcome));
                self.remember(position + 1);
                Ok(Some(position + 1))
            }
            failed => {
                advanced.failed = Some(failed);
                Ok(None)
            }
        }
    }

    /// The span of handling one event: a child of the append that wrote it. None in a rebuild.
    fn consume_span(&self, event: &RecordedEvent, pass: Pass) -> tracing::Span {
        if !pass.react {
            return tracing::Span::none();
        }
        let span = tracing::info_span!(
            "eventlog.consume",
            otel.kind = "consumer",
            messaging.operation.type = "process",
            messaging.consumer.group.name = self.projection.name(),
            messaging.message.id = %event.event_id,
            sunshine.event_type = %event.event_type,
            sunshine.outcome = tracing::field::Empty,
        );
        let metadata = event.metadata().unwrap_or_default();
        telemetry::set_remote_parent(
            &span,
            metadata.traceparent.as_deref(),
            metadata.tracestate.as_deref(),
            self.store.service(),
        );
        span
    }

    /// One transaction: moves the cursor from `next` past `events` (compare-and-set, first, so
    /// a second delivery waits for this one and then finds the cursor moved) and applies each
    /// of the consumer's events. The transaction's span is a child of the first event's.
    async fn commit_batch(
        &self,
        next: u64,
        events: &[RecordedEvent],
        spans: &[tracing::Span],
    ) -> Result<Committed, StoreError> {
        let name = self.projection.name();
        let parent = spans.first().cloned().unwrap_or_else(tracing::Span::none);
        let transaction_span = if parent.is_none() {
            tracing::Span::none()
        } else {
            tracing::info_span!(
                parent: &parent,
                "eventlog.consumer.transaction",
                otel.kind = "client",
                db.system.name = self.store.db_system(),
                db.operation.name = "apply",
                messaging.consumer.group.name = name,
                messaging.batch.message_count = events.len(),
            )
        };
        async {
            let after = next + events.len() as u64;
            let mut transaction = self.store.pool().begin().await?;
            let moved = sqlx::query(
                "UPDATE log_cursors SET next_position = $1, updated_at_us = $2 \
                 WHERE name = $3 AND next_position = $4",
            )
            .bind(to_i64(after)?)
            .bind(now_micros())
            .bind(self.cursor_name())
            .bind(to_i64(next)?)
            .execute(&mut *transaction)
            .await?;
            if moved.rows_affected() == 0 {
                transaction.rollback().await?;
                let actual = self.store.cursor(&self.cursor_name()).await?;
                return Ok(Committed::Moved { next: actual });
            }
            let failing = self.progress.failing.lock().ok().and_then(|id| id.clone());
            let mut applied = 0;
            for (index, event) in events.iter().enumerate() {
                if !self.wants(event) {
                    continue;
                }
                if let Err(error) = self.projection.apply(&mut transaction, event).await {
                    transaction.rollback().await?;
                    return Ok(Committed::Failed {
                        index,
                        error: error.0,
                    });
                }
                applied += 1;
                let event_id = event.event_id.hyphenated().to_string();
                if failing.as_deref() == Some(event_id.as_str()) {
                    sqlx::query(
                        "DELETE FROM consumer_failures WHERE consumer = $1 AND event_id = $2",
                    )
                    .bind(name)
                    .bind(event_id.as_str())
                    .execute(&mut *transaction)
                    .await?;
                }
            }
            transaction.commit().await?;
            if failing.is_some()
                && let Ok(mut failing) = self.progress.failing.lock()
            {
                *failing = None;
            }
            Ok(Committed::Done { applied })
        }
        .instrument(transaction_span)
        .await
    }

    /// Counts a failed attempt at the event at `position` (the consumer's position); after
    /// `max_attempts` (or at once, `park_at_once`) parks it in `dead_letters` and moves the
    /// cursor past it, in one transaction.
    async fn record_failure(
        &self,
        event: &RecordedEvent,
        position: u64,
        error: &str,
        park_at_once: bool,
    ) -> Result<Processed, StoreError> {
        let name = self.projection.name();
        let event_id = event.event_id.hyphenated().to_string();
        let now = now_micros();
        let mut transaction = self.store.pool().begin().await?;
        sqlx::query(
            "INSERT INTO consumer_failures (consumer, event_id, attempts, last_error, updated_at_us) VALUES ($1, $2, 1, $3, $4) \
             ON CONFLICT (consumer, event_id) DO UPDATE SET attempts = consumer_failures.attempts + 1, \
             last_error = excluded.last_error, updated_at_us = excluded.updated_at_us",
        )
        .bind(name)
        .bind(event_id.as_str())
        .bind(error)
        .bind(now)
        .execute(&mut *transaction)
        .await?;
        let attempts: i64 = sqlx::query_scalar(
            "SELECT attempts FROM consumer_failures WHERE consumer = $1 AND event_id = $2",
        )
        .bind(name)
        .bind(event_id.as_str())
        .fetch_one(&mut *transaction)
        .await?;
        let attempts = u32::try_from(attempts).unwrap_or(u32::MAX);
        if attempts < self.config.max_attempts && !park_at_once {
            transaction.commit().await?;
            if let Ok(mut failing) = self.progress.failing.lock() {
                *failing = Some(event_id.clone());
            }
            tracing::warn!(
                consumer = name,
                event_id,
                position,
                attempts,
                error,
                "event failed; will retry"
            );
            return Ok(Processed::Failed {
                attempts,
                error: error.to_owned(),
            });
        }
        sqlx::query(
            "INSERT INTO dead_letters (consumer, event_id, log_position, attempts, last_error, parked_at_us) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (consumer, event_id) DO UPDATE SET \
             attempts = excluded.attempts, last_error = excluded.last_error, parked_at_us = excluded.parked_at_us, \
             replayed_at_us = NULL",
        )
        .bind(name)
        .bind(event_id.as_str())
        .bind(to_i64(position)?)
        .bind(i64::from(attempts))
        .bind(error)
        .bind(now)
        .execute(&mut *transaction)
        .await?;
        sqlx::query("DELETE FROM consumer_failures WHERE consumer = $1 AND event_id = $2")
            .bind(name)
            .bind(event_id.as_str())
            .execute(&mut *transaction)
            .await?;
        let moved = sqlx::query(
            "UPDATE log_cursors SET next_position = $1, updated_at_us = $2 WHERE name = $3 AND next_position = $4",
        )
        .bind(to_i64(position + 1)?)
        .bind(now)
        .bind(self.cursor_name())
        .bind(to_i64(position)?)
        .execute(&mut *transaction)
        .await?;
        if moved.rows_affected() == 0 {
            // Someone else moved past it meanwhile: their outcome stands.
            transaction.rollback().await?;
            self.position().await?;
            return Ok(Processed::AlreadyProcessed);
        }
        transaction.commit().await?;
        tracing::error!(
            consumer = name,
            event_id,
            position,
            attempts,
            error,
            "event parked in dead_letters"
        );
        Ok(Processed::Parked {
            attempts,
            error: error.to_owned(),
        })
    }

    /// The consumer's parked events, oldest first.
    pub async fn dead_letters(&self) -> Result<Vec<DeadLetter>, StoreError> {
        let rows = sqlx::query(
            "SELECT event_id, log_position, attempts, last_error, parked_at_us, replayed_at_us FROM dead_letters \
             WHERE consumer = $1 ORDER BY log_position",
        )
        .bind(self.projection.name())
        .fetch_all(self.store.pool())
        .await?;
        let mut letters = Vec::with_capacity(rows.len());
        for row in rows {
            letters.push(DeadLetter {
                event_id: row.try_get(0)?,
                log_position: to_u64(row.try_get::<i64, _>(1)?)?,
                attempts: u32::try_from(row.try_get::<i64, _>(2)?).unwrap_or(u32::MAX),
                last_error: row.try_get(3)?,
                parked_at_us: row.try_get(4)?,
                replayed_at_us: row.try_get(5)?,
            });
        }
        Ok(letters)
    }

    /// Tries a parked event again (after the cause is fixed), out of log order — the one
    /// exception, chosen by an operator: reaction, then application and the replay mark in one
    /// transaction, so a second replay finds it done (`AlreadyProcessed`).
    pub async fn replay_dead_letter(&self, event_id: uuid::Uuid) -> Result<Processed, StoreError> {
        let event = self
            .store
            .read_event(event_id)
            .await?
            .ok_or_else(|| StoreError::Invalid(format!("no event {event_id} in the log")))?;
        let id = event_id.hyphenated().to_string();
        let pending: Option<i64> = sqlx::query_scalar(
            "SELECT attempts FROM dead_letters WHERE consumer = $1 AND event_id = $2 AND replayed_at_us IS NULL",
        )
        .bind(self.projection.name())
        .bind(id.as_str())
        .fetch_optional(self.store.pool())
        .await?;
        if pending.is_none() {
            return Ok(Processed::AlreadyProcessed);
        }
        if let Err(error) = self.projection.react(&event).await {
            return Ok(Processed::Failed {
                attempts: 0,
                error: error.0,
            });
        }
        let mut transaction = self.store.pool().begin().await?;
        let marked = sqlx::query(
            "UPDATE dead_letters SET replayed_at_us = $1 WHERE consumer = $2 AND event_id = $3 AND replayed_at_us IS NULL",
        )
        .bind(now_micros())
        .bind(self.projection.name())
        .bind(id.as_str())
        .execute(&mut *transaction)
        .await?;
        if marked.rows_affected() == 0 {
            transaction.rollback().await?;
            return Ok(Processed::AlreadyProcessed);
        }
        if let Err(error) = self.projection.apply(&mut transaction, &event).await {
            transaction.rollback().await?;
            return Ok(Processed::Failed {
                attempts: 0,
                error: error.0,
            });
        }
        transaction.commit().await?;
        Ok(Processed::Applied)
    }

    /// One pass of log delivery: the next batch from the consumer's position; returns how
    /// many events it passed (0: the log has nothing new, or the head event failed and waits).
    pub async fn consume_log_once(&self) -> Result<usize, StoreError> {
        let next = self.next_position().await?;
        let events = self.store.read_log(next, self.config.batch_size).await?;
        if events.is_empty() {
            return Ok(0);
        }
        let advanced = self.advance(&events).await?;
        Ok(usize::try_from(
            advanced
                .next_position
                .saturating_sub(advanced.from_position),
        )
        .unwrap_or(usize::MAX))
    }

    /// Embedded delivery: follows the log until `shutdown`, woken when the log worker moves the
    /// log (a wake-up raised while it was busy is not lost), or by the poll interval as a
    /// safety net; a failed event is tried again after `retry_delay`.
    pub async fn run_from_log(&self, signals: LogSignals, shutdown: Shutdown) {
        let mut advanced = signals.advanced_waiter();
        while !shutdown.is_triggered() {
            let handled = match self.consume_log_once().await {
                Ok(handled) => handled,
                Err(error) => {
                    tracing::warn!(consumer = self.projection.name(), %error, "log consumer pass failed");
                    0
                }
            };
            if handled > 0 {
                continue;
            }
            let waiting_on_failure = self
                .progress
                .failing
                .lock()
                .map(|failing| failing.is_some())
                .unwrap_or(false);
            let pause = if waiting_on_failure {
                self.config.retry_delay
            } else {
                self.config.poll_interval
            };
            tokio::select! {
                () = advanced.wait(), if !waiting_on_failure => {}
                () = tokio::time::sleep(pause) => {}
                () = shutdown.wait() => return,
            }
        }
    }

    /// JetStream delivery through a durable pull consumer named after the projection, until
    /// `shutdown`. Reconnects after errors.
    pub async fn run_jetstream(&self, jetstream: jetstream::Context, shutdown: Shutdown) {
        while !shutdown.is_triggered() {
            if let Err(error) = self.consume_jetstream(&jetstream, &shutdown).await {
                tracing::warn!(consumer = self.projection.name(), %error, "jetstream consumer failed; retrying");
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_millis(500)) => {}
                    () = shutdown.wait() => return,
                }
            }
        }
    }

    /// Takes whatever JetStream has delivered (waiting only for the first message), applies it
    /// in log order with [`Consumer::advance`] — a failed head event is tried again after
    /// `retry_delay` until it applies or is parked — and acknowledges it all.
    async fn consume_jetstream(
        &self,
        jetstream: &jetstream::Context,
        shutdown: &Shutdown,
    ) -> Result<(), String> {
        let namespace = &self.config.namespace;
        crate::relay::Relay::ensure_stream(jetstream, namespace)
            .await
            .map_err(|error| error.to_string())?;
        let stream = jetstream
            .get_stream(&namespace.stream)
            .await
            .map_err(|error| error.to_string())?;
        let name = self.projection.name().to_owned();
        let consumer: jetstream::consumer::PullConsumer = stream
            .get_or_create_consumer(
                &name,
                pull::Config {
                    durable_name: Some(name.clone()),
                    filter_subject: namespace.filter(self.projection.subject_filter()),
                    ack_policy: AckPolicy::Explicit,
                    deliver_policy: DeliverPolicy::All,
                    ack_wait: self.config.ack_wait,
                    ..pull::Config::default()
                },
            )
            .await
            .map_err(|error| error.to_string())?;
        let mut messages = consumer
            .messages()
            .await
            .map_err(|error| error.to_string())?;
        let limit = usize::try_from(self.config.batch_size.max(1)).unwrap_or(usize::MAX);
        loop {
            let next = tokio::select! {
                next = messages.next() => next,
                () = shutdown.wait() => return Ok(()),
            };
            let mut batch = vec![next.ok_or("message stream ended")?];
            while batch.len() < limit {
                match messages.next().now_or_never() {
                    Some(Some(message)) => batch.push(message),
                    Some(None) | None => break,
                }
            }
            let mut delivered = Vec::with_capacity(batch.len());
            let mut events = Vec::with_capacity(batch.len());
            for message in batch {
                let message = message.map_err(|error| error.to_string())?;
                match delivery::decode(&message.payload) {
                    Ok(event) => {
                        crate::faults::reached(crate::faults::CONSUMER_BEFORE_APPLY, &name).await;
                        events.push(event);
                        delivered.push(message);
                    }
                    Err(error) => {
                        // Not an envelope: nothing can ever apply it. Acknowledge and say so loudly.
                        tracing::error!(consumer = name, %error, "undecodable message acknowledged and dropped");
                        message.ack().await.map_err(|error| error.to_string())?;
                    }
                }
            }
            loop {
                // A database error leaves the messages unacknowledged, for redelivery.
                let advanced = self
                    .advance(&events)
                    .await
                    .map_err(|error| error.to_string())?;
                if advanced.failed.is_none() {
                    break;
                }
                tokio::select! {
                    () = tokio::time::sleep(self.config.retry_delay) => {}
                    () = shutdown.wait() => return Ok(()),
                }
            }
            for message in delivered {
                crate::faults::reached(crate::faults::CONSUMER_BEFORE_ACK, &name).await;
                message.ack().await.map_err(|error| error.to_string())?;
            }
        }
    }

    /// Resets the projection and replays the whole log into it, applying only (no reactions:
    /// what they appended is in the log); an event the projection cannot apply is parked at
    /// once. Returns how many events were applied. Run it with the consumer stopped.
    pub async fn rebuild(&self) -> Result<usize, StoreError> {
        let mut transaction = self.store.pool().begin().await?;
        self.projection
            .reset(&mut transaction)
            .await
            .map_err(|error| StoreError::Invalid(error.0))?;
        for table in ["consumer_processed", "consumer_failures"] {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "DELETE FROM {table} WHERE consumer = $1"
            )))
            .bind(self.projection.name())
            .execute(&mut *transaction)
            .await?;
        }
        transaction.commit().await?;
        self.store.set_cursor(&self.cursor_name(), 0).await?;
        self.progress.cursor_ready.store(true, Ordering::Release);
        self.remember(0);
        if let Ok(mut failing) = self.progress.failing.lock() {
            *failing = None;
        }
        let mut applied = 0;
        loop {
            let next = self.next_position().await?;
            let events = self.store.read_log(next, self.config.batch_size).await?;
            if events.is_empty() {
                return Ok(applied);
            }
            applied += self.advance_with(&events, REBUILD).await?.applied;
        }
    }
}
