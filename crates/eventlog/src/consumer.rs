//! Consumers: projections and process managers that react to events, each effect exactly
//! once however often an event is delivered.
//!
//! [`Consumer::process`] is the whole contract. In one database transaction it records
//! "(consumer, event id) processed" and runs the projection; if the mark was already there, it
//! does nothing. A failure rolls the transaction back and counts an attempt; after
//! `max_attempts` the event is parked in `dead_letters` (visible, replayable with
//! [`Consumer::replay_dead_letter`]) and the consumer moves on, so one bad event never blocks
//! the rest. Delivery is either JetStream ([`Consumer::run_jetstream`], a durable pull
//! consumer) or, embedded, the log itself ([`Consumer::run_from_log`], with its cursor in
//! `log_cursors`): the same `process` either way. [`Consumer::rebuild`] resets a projection
//! and replays the log from position 0.
//!
//! Handling an event has a span (`eventlog.consume`) whose parent is the trace context stored
//! with the event — the span of the append that wrote it — so a reaction's own appends continue
//! the writer's trace; the transaction that applies the event has one too
//! (`eventlog.consumer.transaction`). A rebuild replays without spans: it is not the events'
//! story.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream;
use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, pull};
use futures::StreamExt as _;
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
        }
    }
}

impl<P: Projection> Consumer<P> {
    pub fn new(store: EventStore, projection: P, config: ConsumerConfig) -> Self {
        Consumer {
            store,
            projection: Arc::new(projection),
            config,
        }
    }

    pub fn projection(&self) -> &P {
        &self.projection
    }

    fn cursor_name(&self) -> String {
        format!("consumer:{}", self.projection.name())
    }

    /// Applies `event` exactly once (see the module docs), in a span continuing the trace
    /// stored with the event.
    pub async fn process(&self, event: &RecordedEvent) -> Result<Processed, StoreError> {
        if !self.wants(event) {
            return Ok(Processed::Skipped);
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
        let processed = self.process_once(event).instrument(span.clone()).await;
        if let Ok(outcome) = &processed {
            span.record("sunshine.outcome", outcome.label());
        }
        processed
    }

    fn wants(&self, event: &RecordedEvent) -> bool {
        delivery::subject_matches(
            self.projection.subject_filter(),
            &delivery::relative_subject(event),
        )
    }

    /// [`Consumer::process`] without its span.
    async fn process_once(&self, event: &RecordedEvent) -> Result<Processed, StoreError> {
        if !self.wants(event) {
            return Ok(Processed::Skipped);
        }
        let name = self.projection.name();
        let event_id = event.event_id.hyphenated().to_string();
        let seen: Option<String> = sqlx::query_scalar(
            "SELECT event_id FROM consumer_processed WHERE consumer = $1 AND event_id = $2",
        )
        .bind(name)
        .bind(event_id.as_str())
        .fetch_optional(self.store.pool())
        .await?;
        if seen.is_some() {
            return Ok(Processed::AlreadyProcessed);
        }
        if let Err(error) = self.projection.react(event).await {
            return self.record_failure(event, &event_id, &error.0).await;
        }
        let transaction_span = tracing::info_span!(
            "eventlog.consumer.transaction",
            otel.kind = "client",
            db.system.name = self.store.db_system(),
            db.operation.name = "apply",
            messaging.consumer.group.name = name,
        );
        match self
            .apply_in_transaction(event, &event_id)
            .instrument(transaction_span)
            .await?
        {
            None => Ok(Processed::AlreadyProcessed),
            Some(Ok(())) => {
                sqlx::query("DELETE FROM consumer_failures WHERE consumer = $1 AND event_id = $2")
                    .bind(name)
                    .bind(event_id.as_str())
                    .execute(self.store.pool())
                    .await?;
                Ok(Processed::Applied)
            }
            Some(Err(error)) => self.record_failure(event, &event_id, &error.0).await,
        }
    }

    /// Marks `event` processed and applies it, in one transaction: `None` if another delivery
    /// marked it first, `Some(Err)` when the projection failed (and the transaction rolled back).
    async fn apply_in_transaction(
        &self,
        event: &RecordedEvent,
        event_id: &str,
    ) -> Result<Option<Result<(), HandlerError>>, StoreError> {
        let name = self.projection.name();
        let mut transaction = self.store.pool().begin().await?;
        let marked = sqlx::query(
            "INSERT INTO consumer_processed (consumer, event_id, log_position, processed_at_us) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (consumer, event_id) DO NOTHING",
        )
        .bind(name)
        .bind(event_id)
        .bind(to_i64(event.log_position.unwrap_or_default())?)
        .bind(now_micros())
        .execute(&mut *transaction)
        .await?;
        if marked.rows_affected() == 0 {
            transaction.rollback().await?;
            return Ok(None);
        }
        let applied = self.projection.apply(&mut transaction, event).await;
        if applied.is_ok() {
            transaction.commit().await?;
        } else {
            transaction.rollback().await?;
        }
        Ok(Some(applied))
    }

    async fn record_failure(
        &self,
        event: &RecordedEvent,
        event_id: &str,
        error: &str,
    ) -> Result<Processed, StoreError> {
        let name = self.projection.name();
        let now = now_micros();
        let mut transaction = self.store.pool().begin().await?;
        sqlx::query(
            "INSERT INTO consumer_failures (consumer, event_id, attempts, last_error, updated_at_us) VALUES ($1, $2, 1, $3, $4) \
             ON CONFLICT (consumer, event_id) DO UPDATE SET attempts = consumer_failures.attempts + 1, \
             last_error = excluded.last_error, updated_at_us = excluded.updated_at_us",
        )
        .bind(name)
        .bind(event_id)
        .bind(error)
        .bind(now)
        .execute(&mut *transaction)
        .await?;
        let attempts: i64 = sqlx::query_scalar(
            "SELECT attempts FROM consumer_failures WHERE consumer = $1 AND event_id = $2",
        )
        .bind(name)
        .bind(event_id)
        .fetch_one(&mut *transaction)
        .await?;
        let attempts = u32::try_from(attempts).unwrap_or(u32::MAX);
        if attempts < self.config.max_attempts {
            transaction.commit().await?;
            tracing::warn!(
                consumer = name,
                event_id,
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
        .bind(event_id)
        .bind(to_i64(event.log_position.unwrap_or_default())?)
        .bind(i64::from(attempts))
        .bind(error)
        .bind(now)
        .execute(&mut *transaction)
        .await?;
        sqlx::query("DELETE FROM consumer_failures WHERE consumer = $1 AND event_id = $2")
            .bind(name)
            .bind(event_id)
            .execute(&mut *transaction)
            .await?;
        transaction.commit().await?;
        tracing::error!(
            consumer = name,
            event_id,
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

    /// Tries a parked event again (after the cause is fixed); on success it is marked replayed.
    pub async fn replay_dead_letter(&self, event_id: uuid::Uuid) -> Result<Processed, StoreError> {
        let event = self
            .store
            .read_event(event_id)
            .await?
            .ok_or_else(|| StoreError::Invalid(format!("no event {event_id} in the log")))?;
        let outcome = self.process(&event).await?;
        if outcome == Processed::Applied || outcome == Processed::AlreadyProcessed {
            sqlx::query(
                "UPDATE dead_letters SET replayed_at_us = $1 WHERE consumer = $2 AND event_id = $3",
            )
            .bind(now_micros())
            .bind(self.projection.name())
            .bind(event_id.hyphenated().to_string())
            .execute(self.store.pool())
            .await?;
        }
        Ok(outcome)
    }

    /// Failed events waiting for another attempt (log delivery retries them itself).
    async fn pending_retries(&self) -> Result<Vec<uuid::Uuid>, StoreError> {
        let ids: Vec<String> = sqlx::query_scalar(
            "SELECT event_id FROM consumer_failures WHERE consumer = $1 AND updated_at_us <= $2 ORDER BY updated_at_us",
        )
        .bind(self.projection.name())
        .bind(now_micros() - i64::try_from(self.config.retry_delay.as_micros()).unwrap_or(i64::MAX))
        .fetch_all(self.store.pool())
        .await?;
        Ok(ids
            .iter()
            .filter_map(|id| uuid::Uuid::parse_str(id).ok())
            .collect())
    }

    /// One pass of log delivery: retries that are due, then the next batch; returns how many
    /// events it handled.
    pub async fn consume_log_once(&self) -> Result<usize, StoreError> {
        let mut handled = 0;
        for event_id in self.pending_retries().await? {
            if let Some(event) = self.store.read_event(event_id).await? {
                self.process(&event).await?;
                handled += 1;
            }
        }
        let cursor_name = self.cursor_name();
        let next = self.store.cursor(&cursor_name).await?;
        let events = self.store.read_log(next, self.config.batch_size).await?;
        for event in &events {
            self.process(event).await?;
            handled += 1;
        }
        if let Some(last) = events.last().and_then(|event| event.log_position) {
            self.store.set_cursor(&cursor_name, last + 1).await?;
        }
        Ok(handled)
    }

    /// Embedded delivery: follows the log until `shutdown`, woken when the log worker moves the
    /// log, or by the poll interval.
    pub async fn run_from_log(&self, signals: LogSignals, shutdown: Shutdown) {
        while !shutdown.is_triggered() {
            let handled = match self.consume_log_once().await {
                Ok(handled) => handled,
                Err(error) => {
                    tracing::warn!(consumer = self.projection.name(), %error, "log consumer pass failed");
                    0
                }
            };
            if handled == 0 {
                tokio::select! {
                    () = signals.advanced() => {}
                    () = tokio::time::sleep(self.config.poll_interval) => {}
                    () = shutdown.wait() => return,
                }
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
        loop {
            let next = tokio::select! {
                next = messages.next() => next,
                () = shutdown.wait() => return Ok(()),
            };
            let Some(message) = next else {
                return Err("message stream ended".into());
            };
            let message = message.map_err(|error| error.to_string())?;
            let event = match delivery::decode(&message.payload) {
                Ok(event) => event,
                Err(error) => {
                    // Not an envelope: nothing can ever apply it. Acknowledge and say so loudly.
                    tracing::error!(consumer = name, %error, "undecodable message acknowledged and dropped");
                    message.ack().await.map_err(|error| error.to_string())?;
                    continue;
                }
            };
            crate::faults::reached(crate::faults::CONSUMER_BEFORE_APPLY, &name).await;
            let processed = self.process(&event).await;
            if processed.is_ok() {
                crate::faults::reached(crate::faults::CONSUMER_BEFORE_ACK, &name).await;
            }
            match processed {
                Ok(Processed::Failed { .. }) => {
                    message
                        .ack_with(jetstream::AckKind::Nak(Some(self.config.retry_delay)))
                        .await
                        .map_err(|error| error.to_string())?;
                }
                Ok(_) => message.ack().await.map_err(|error| error.to_string())?,
                Err(error) => {
                    // The database is unreachable: leave the message unacknowledged for redelivery.
                    return Err(error.to_string());
                }
            }
        }
    }

    /// Resets the projection and replays the whole log into it; returns how many events were
    /// applied. Run it with the consumer stopped.
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
        let mut applied = 0;
        let mut next = 0;
        loop {
            let events = self.store.read_log(next, self.config.batch_size).await?;
            let Some(last) = events.last().and_then(|event| event.log_position) else {
                break;
            };
            for event in &events {
                if self.process_once(event).await? == Processed::Applied {
                    applied += 1;
                }
            }
            next = last + 1;
        }
        self.store.set_cursor(&self.cursor_name(), next).await?;
        Ok(applied)
    }
}
