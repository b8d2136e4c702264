//! How events travel on the bus: the JetStream stream and its subjects, the message headers,
//! and the envelope (`sunshine.v1.EventEnvelope`) that carries a recorded event byte for byte,
//! so a consumer can recompute its hash.
//!
//! Subjects are `sunshine.events.<service>.<case>`: consumers filter by service
//! (`sunshine.events.review.>`) or by case (`sunshine.events.*.<case>`). The stream name and
//! subject prefix form a [`Namespace`], so tests (and a second district on one NATS) stay apart. The event type, log
//! position and trace context travel in headers; `Nats-Msg-Id` is the event id, so JetStream
//! drops a re-publish within its duplicate window.

use prost::Message as _;
use sunshine_proto::v1::{Actor as ProtoActor, EventEnvelope, EventMetadata as ProtoMetadata};
use uuid::Uuid;

use crate::error::{StoreError, to_hash};
use crate::event::{EventMetadata, RecordedEvent};

/// Where events travel: the JetStream stream and the subject prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Namespace {
    pub stream: String,
    pub subject_prefix: String,
}

impl Default for Namespace {
    fn default() -> Self {
        Namespace {
            stream: "sunshine-events".into(),
            subject_prefix: "sunshine.events".into(),
        }
    }
}

impl Namespace {
    /// A namespace of its own (tests): stream `sunshine-events-<tag>`, subjects `<tag>.events.…`.
    pub fn isolated(tag: &str) -> Self {
        let token = subject_token(tag);
        Namespace {
            stream: format!("sunshine-events-{token}"),
            subject_prefix: format!("t{token}.events"),
        }
    }

    /// `<prefix>.<service>.<case>` for an event.
    pub fn subject_for(&self, event: &RecordedEvent) -> String {
        format!("{}.{}", self.subject_prefix, relative_subject(event))
    }

    /// The core NATS subject on which processes announce appends to each other
    /// ([`crate::signals::LogSignals::join_bus`]): beside the stream's subjects, never in them.
    pub fn wake_subject(&self) -> String {
        format!("{}-wake.appended", self.subject_prefix)
    }

    /// A filter relative to the prefix (`review.>`, `*.<case>`, `>`) made absolute.
    pub fn filter(&self, relative_filter: &str) -> String {
        format!("{}.{relative_filter}", self.subject_prefix)
    }
}
pub const HEADER_EVENT_TYPE: &str = "Sunshine-Event-Type";
pub const HEADER_LOG_POSITION: &str = "Sunshine-Log-Position";

/// A subject token from free text: anything but letters, digits, `-` and `_` becomes `_`.
fn subject_token(text: &str) -> String {
    let token: String = text
        .chars()
        .map(|character| {
            if character.is_ascii_alphanumeric() || character == '-' || character == '_' {
                character
            } else {
                '_'
            }
        })
        .collect();
    if token.is_empty() { "_".into() } else { token }
}

/// `<service>.<case>`: an event's subject below the namespace's prefix.
pub fn relative_subject(event: &RecordedEvent) -> String {
    let service = event.stream_id.split('-').next().unwrap_or_default();
    format!(
        "{}.{}",
        subject_token(service),
        subject_token(&event.case_id)
    )
}

/// NATS subject matching: `*` matches one token, a final `>` one or more.
pub fn subject_matches(filter: &str, subject: &str) -> bool {
    let mut filter_tokens = filter.split('.');
    let mut subject_tokens = subject.split('.');
    loop {
        match (filter_tokens.next(), subject_tokens.next()) {
            (Some(">"), Some(_)) => return filter_tokens.next().is_none(),
            (Some("*"), Some(_)) => {}
            (Some(expected), Some(actual)) if expected == actual => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

fn timestamp_from_micros(micros: i64) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: micros.div_euclid(1_000_000),
        nanos: (micros.rem_euclid(1_000_000) * 1_000) as i32,
    }
}

fn micros_from_timestamp(timestamp: Option<&prost_types::Timestamp>) -> i64 {
    timestamp.map_or(0, |value| {
        value.seconds * 1_000_000 + i64::from(value.nanos) / 1_000
    })
}

/// The envelope of a recorded event, which must be sequenced: `global_position` is its log
/// position (from 0, the Merkle leaf index), and protobuf cannot tell "unset" from 0.
pub fn to_envelope(event: &RecordedEvent) -> EventEnvelope {
    debug_assert!(
        event.log_position.is_some(),
        "only sequenced events travel in envelopes"
    );
    let metadata = event.metadata().unwrap_or_default();
    EventEnvelope {
        event_id: event.event_id.hyphenated().to_string(),
        global_position: event.log_position.unwrap_or_default(),
        stream_id: event.stream_id.clone(),
        stream_version: event.stream_version,
        case_id: event.case_id.clone(),
        event_type: event.event_type.clone(),
        schema_version: event.schema_version,
        payload: event.payload.clone(),
        metadata: Some(metadata_to_proto(&metadata)),
        occurred_at: Some(timestamp_from_micros(event.occurred_at_us)),
        recorded_at: Some(timestamp_from_micros(event.recorded_at_us)),
        previous_hash: event.previous_hash.to_vec(),
        hash: event.hash.to_vec(),
        metadata_json: event.metadata_json.clone(),
    }
}

fn metadata_to_proto(metadata: &EventMetadata) -> ProtoMetadata {
    ProtoMetadata {
        actor: Some(ProtoActor {
            subject: metadata.actor.subject.clone(),
            display_name: String::new(),
            role: sunshine_platform::Role::parse(&metadata.actor.role)
                .map_or(0, |role| role.to_proto() as i32),
            org_unit_code: metadata.actor.org_unit.clone(),
            department_code: metadata.actor.department_code.clone().unwrap_or_default(),
            scopes: Vec::new(),
        }),
        command_id: metadata.command_id.clone().unwrap_or_default(),
        causation_id: metadata.causation_id.clone().unwrap_or_default(),
        correlation_id: metadata.correlation_id.clone().unwrap_or_default(),
        traceparent: metadata.traceparent.clone().unwrap_or_default(),
        tracestate: metadata.tracestate.clone().unwrap_or_default(),
    }
}

/// The encoded envelope.
pub fn encode(event: &RecordedEvent) -> Vec<u8> {
    to_envelope(event).encode_to_vec()
}

/// A recorded event back from its encoded envelope, exactly as stored.
pub fn decode(bytes: &[u8]) -> Result<RecordedEvent, StoreError> {
    let envelope = EventEnvelope::decode(bytes)
        .map_err(|error| StoreError::Corrupt(format!("not an event envelope: {error}")))?;
    let event_id = Uuid::parse_str(&envelope.event_id).map_err(|_| {
        StoreError::Corrupt(format!(
            "envelope event id {} is not a UUID",
            envelope.event_id
        ))
    })?;
    Ok(RecordedEvent {
        sequence: 0,
        log_position: Some(envelope.global_position),
        event_id,
        stream_id: envelope.stream_id,
        stream_version: envelope.stream_version,
        case_id: envelope.case_id,
        event_type: envelope.event_type,
        schema_version: envelope.schema_version,
        payload: envelope.payload,
        metadata_json: envelope.metadata_json,
        occurred_at_us: micros_from_timestamp(envelope.occurred_at.as_ref()),
        recorded_at_us: micros_from_timestamp(envelope.recorded_at.as_ref()),
        previous_hash: to_hash(&envelope.previous_hash)?,
        hash: to_hash(&envelope.hash)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_filter_like_nats() {
        assert!(subject_matches(
            "sunshine.events.>",
            "sunshine.events.intake.case-1"
        ));
        assert!(subject_matches(">", "intake.case-1"));
        assert!(subject_matches("intake.>", "intake.case-1"));
        assert!(subject_matches(
            "sunshine.events.intake.>",
            "sunshine.events.intake.case-1"
        ));
        assert!(!subject_matches(
            "sunshine.events.review.>",
            "sunshine.events.intake.case-1"
        ));
        assert!(subject_matches(
            "sunshine.events.*.case-1",
            "sunshine.events.review.case-1"
        ));
        assert!(!subject_matches(
            "sunshine.events.*.case-1",
            "sunshine.events.review.case-2"
        ));
        assert!(!subject_matches("sunshine.events.>", "sunshine.events"));
        assert_eq!(subject_token("a.b c*>"), "a_b_c__");
    }

    #[test]
    fn timestamps_round_trip_to_the_microsecond() {
        for micros in [0i64, 1, 999_999, 1_764_000_000_123_456, -1, -1_500_000] {
            assert_eq!(
                micros_from_timestamp(Some(&timestamp_from_micros(micros))),
                micros
            );
        }
    }
}
