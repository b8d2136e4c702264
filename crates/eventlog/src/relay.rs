//! The relay: publishes the log, in position order, to the JetStream stream, and only after
//! JetStream has acknowledged every message of a batch advances its cursor in the database.
//!
//! A crash between publishing and advancing re-publishes that batch: `Nats-Msg-Id` (the event
//! id) lets JetStream drop the copies within its duplicate window, and consumers' processed
//! marks make any copy that gets through harmless. JetStream is delivery, never the only copy:
//! if the stream is lost, resetting the cursor re-publishes from the log.
//!
//! Each publish has a span (`eventlog.publish`, until JetStream's ack) whose parent is the trace
//! context stored with the event: the span of the append that wrote it, in whichever service.

use std::future::IntoFuture as _;
use std::time::Duration;

use async_nats::jetstream;
use async_nats::jetstream::stream::{Config as StreamConfig, StorageType};
use sunshine_platform::telemetry;
use tracing::Instrument as _;

use crate::delivery::{self, HEADER_EVENT_TYPE, HEADER_LOG_POSITION, Namespace};
use crate::error::StoreError;
use crate::event::RecordedEvent;
use crate::store::EventStore;

/// Name of the relay's cursor.
pub const RELAY_CURSOR: &str = "relay:jetstream";

#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("jetstream: {0}")]
    JetStream(String),
}

/// Publishes the log to JetStream.
#[derive(Debug)]
pub struct Relay {
    store: EventStore,
    jetstream: jetstream::Context,
    namespace: Namespace,
    batch_size: u32,
    stream_ready: bool,
    fail_after_publish: bool,
    /// The cursor as this relay last read or wrote it; `None` until read, and again after a
    /// failure or when the lease changes hands ([`Relay::forget_cursor`]).
    next: Option<u64>,
}

impl Relay {
    pub fn new(
        store: EventStore,
        jetstream: jetstream::Context,
        namespace: Namespace,
        batch_size: u32,
    ) -> Self {
        Relay {
            store,
            jetstream,
            namespace,
            batch_size: batch_size.max(1),
            stream_ready: false,
            fail_after_publish: false,
            next: None,
        }
    }

    /// For the fault tests: publish the next batch, then fail before advancing the cursor, as a
    /// relay killed at that moment would.
    #[doc(hidden)]
    pub fn fail_once_after_publish(&mut self) {
        self.fail_after_publish = true;
    }

    /// Creates the stream if it does not exist: file storage, every event subject, a duplicate
    /// window for re-publishes.
    pub async fn ensure_stream(
        jetstream: &jetstream::Context,
        namespace: &Namespace,
    ) -> Result<(), RelayError> {
        let config = StreamConfig {
            name: namespace.stream.clone(),
            subjects: vec![namespace.filter(">")],
            storage: StorageType::File,
            duplicate_window: Duration::from_secs(120),
            ..StreamConfig::default()
        };
        jetstream
            .get_or_create_stream(config)
            .await
            .map_err(|error| RelayError::JetStream(error.to_string()))?;
        Ok(())
    }

    /// Reads the cursor from the database again at the next round: another holder of the lease
    /// may have moved it.
    pub fn forget_cursor(&mut self) {
        self.next = None;
    }

    /// Whether events before `log_size` (the sequenced log's size) are still to be relayed, as
    /// far as this relay knows (true while it has not read its cursor).
    pub fn behind(&self, log_size: u64) -> bool {
        self.next.is_none_or(|next| next < log_size)
    }

    /// Publishes up to one batch read from the log; returns how many events went out.
    pub async fn run_once(&mut self) -> Result<usize, RelayError> {
        self.run_after(Vec::new(), None).await
    }

    /// Publishes up to one batch: `sequenced` (what the sequencer just gave positions, in order)
    /// when it starts exactly at the cursor, without reading it back; otherwise what the log
    /// holds from the cursor on. With `log_size` known, a relay already there reads nothing.
    pub async fn run_after(
        &mut self,
        sequenced: Vec<RecordedEvent>,
        log_size: Option<u64>,
    ) -> Result<usize, RelayError> {
        let result = self.publish_batch(sequenced, log_size).await;
        if result.is_err() {
            self.next = None;
        }
        result
    }

    async fn publish_batch(
        &mut self,
        mut sequenced: Vec<RecordedEvent>,
        log_size: Option<u64>,
    ) -> Result<usize, RelayError> {
        if !self.stream_ready {
            Relay::ensure_stream(&self.jetstream, &self.namespace).await?;
            self.stream_ready = true;
        }
        let next = match self.next {
            Some(next) => next,
            None => {
                let next = self.store.cursor(RELAY_CURSOR).await?;
                self.next = Some(next);
                next
            }
        };
        let events = if sequenced.first().and_then(|event| event.log_position) == Some(next) {
            sequenced.truncate(self.batch_size as usize);
            sequenced
        } else if log_size.is_some_and(|size| next >= size) {
            return Ok(0);
        } else {
            self.store.read_log(next, self.batch_size).await?
        };
        if events.is_empty() {
            return Ok(0);
        }
        let mut acknowledgements = Vec::with_capacity(events.len());
        for event in &events {
            let mut headers = async_nats::HeaderMap::new();
            headers.insert(
                "Nats-Msg-Id",
                event.event_id.hyphenated().to_string().as_str(),
            );
            headers.insert(HEADER_EVENT_TYPE, event.event_type.as_str());
            headers.insert(
                HEADER_LOG_POSITION,
                event.log_position.unwrap_or_default().to_string().as_str(),
            );
            let subject = self.namespace.subject_for(event);
            let span = tracing::info_span!(
                "eventlog.publish",
                otel.kind = "producer",
                messaging.system = "nats",
                messaging.operation.type = "send",
                messaging.destination.name = %subject,
                messaging.message.id = %event.event_id,
                sunshine.event_type = %event.event_type,
            );
            let metadata = event.metadata().unwrap_or_default();
            if let Some(traceparent) = &metadata.traceparent {
                headers.insert("traceparent", traceparent.as_str());
            }
            if let Some(tracestate) = &metadata.tracestate {
                headers.insert("tracestate", tracestate.as_str());
            }
            telemetry::set_remote_parent(
                &span,
                metadata.traceparent.as_deref(),
                metadata.tracestate.as_deref(),
                self.store.service(),
            );
            let acknowledgement = self
                .jetstream
                .publish_with_headers(subject, headers, delivery::encode(event).into())
                .instrument(span.clone())
                .await
                .map_err(|error| RelayError::JetStream(error.to_string()))?;
            acknowledgements.push((acknowledgement, span));
        }
        for (acknowledgement, span) in acknowledgements {
            acknowledgement
                .into_future()
                .instrument(span)
                .await
                .map_err(|error| RelayError::JetStream(error.to_string()))?;
        }
        if self.fail_after_publish {
            self.fail_after_publish = false;
            return Err(RelayError::JetStream(
                "stopped after publishing, before the cursor (test)".into(),
            ));
        }
        let last = events
            .last()
            .and_then(|event| event.log_position)
            .unwrap_or(next);
        self.store.set_cursor(RELAY_CURSOR, last + 1).await?;
        self.next = Some(last + 1);
        Ok(events.len())
    }
}
