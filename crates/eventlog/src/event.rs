//! What a writer hands to the log: the new event, the stream it belongs to, the version the
//! writer expects that stream to be at, and the digest that tells a retry from a reused
//! command id. The event as recorded and its metadata (who, why, in answer to what) are the
//! evidence's ([`sunshine_evidence::record`]), re-exported here.

use sunshine_platform::Identity;
use sunshine_proto::events::TypedEvent;
use uuid::Uuid;

pub use sunshine_evidence::record::{Actor, EventMetadata, RecordedEvent};

/// The stream (aggregate) an event belongs to: `<service>-<kind>-<id>`, lowercase ASCII letters,
/// digits and hyphens, e.g. `intake-household-0190f3c4-…`. The first segment names the owning
/// service; only that service appends to it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StreamId(String);

/// Why a stream id was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid stream id: {0}")]
pub struct StreamIdError(&'static str);

impl StreamId {
    pub const MAX_LENGTH: usize = 200;

    pub fn parse(text: &str) -> Result<StreamId, StreamIdError> {
        if text.is_empty() || text.len() > Self::MAX_LENGTH {
            return Err(StreamIdError("must be 1 to 200 characters"));
        }
        if !text
            .bytes()
            .all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit() || byte == b'-')
        {
            return Err(StreamIdError(
                "only lowercase ASCII letters, digits and hyphens",
            ));
        }
        let mut segments = text.split('-');
        let service = segments.next().unwrap_or_default();
        let kind = segments.next().unwrap_or_default();
        if service.is_empty() || kind.is_empty() || segments.next().is_none() {
            return Err(StreamIdError("must be <service>-<kind>-<id>"));
        }
        Ok(StreamId(text.to_owned()))
    }

    /// `<service>-<kind>-<id>` from its parts; `id` is typically a UUID.
    pub fn new(service: &str, kind: &str, id: &str) -> Result<StreamId, StreamIdError> {
        StreamId::parse(&format!("{service}-{kind}-{id}"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The owning service: the first segment.
    pub fn service(&self) -> &str {
        self.0.split('-').next().unwrap_or_default()
    }
}

impl std::fmt::Display for StreamId {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(&self.0)
    }
}

/// What the writer believes the stream's version is; a mismatch is a conflict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpectedVersion {
    /// The stream must not exist yet.
    NoStream,
    /// The stream must be at exactly this version (its last event's version; streams start at 1).
    Exact(u64),
    /// No check: for streams with a single writer by construction.
    Any,
}

/// The actor of an event a caller's command causes: copied from the verified token, the one way
/// a service builds it. (A free function rather than `From`: the actor is the evidence's type,
/// the identity the platform's.)
pub fn actor_of(identity: &Identity) -> Actor {
    Actor {
        subject: identity.subject.clone(),
        role: identity.role.as_str().to_owned(),
        org_unit: identity.org_unit.as_str().to_owned(),
        department_code: identity.department_code.clone(),
    }
}

/// The digest that tells a faithful retry from a command id reused for another request:
/// lowercase hex of SHA-256 over a domain tag and the request's protobuf encoding (maps are
/// ordered, so equal requests encode to equal bytes).
pub fn request_digest(request: &impl prost::Message) -> String {
    use sha2::Digest as _;
    let mut hasher = sha2::Sha256::new();
    hasher.update(b"sunshine/request/v1\n");
    hasher.update(request.encode_to_vec());
    hex::encode(hasher.finalize())
}

/// An event a service asks the log to append.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEvent {
    /// UUIDv7, chosen by the writer so a retry carries the same id.
    pub event_id: Uuid,
    pub case_id: String,
    /// Fully qualified protobuf message name of the payload, e.g. `sunshine.v1.ApplicationSubmitted`
    /// (a registered event's `TYPE`: see [`NewEvent::typed`]).
    pub event_type: String,
    pub schema_version: u32,
    /// The encoded payload, exactly as it will be stored and hashed. Personal data inside it is
    /// already sealed (see [`crate::crypto`]).
    pub payload: Vec<u8>,
    /// When it happened, microseconds since the Unix epoch (UTC).
    pub occurred_at_us: i64,
}

impl NewEvent {
    /// A new event with a fresh UUIDv7, occurring now.
    pub fn new(
        case_id: impl Into<String>,
        event_type: impl Into<String>,
        schema_version: u32,
        payload: Vec<u8>,
    ) -> Self {
        NewEvent {
            event_id: Uuid::now_v7(),
            case_id: case_id.into(),
            event_type: event_type.into(),
            schema_version,
            payload,
            occurred_at_us: now_micros(),
        }
    }

    /// A new event of a registered type (a message of `sunshine_proto::events`' registry, or a
    /// stream kind's enum): its stored type, schema version and bytes come from the type.
    pub fn typed(case_id: impl Into<String>, event: &impl TypedEvent) -> Self {
        NewEvent::new(
            case_id,
            event.event_type(),
            event.schema_version(),
            event.encode_payload(),
        )
    }
}

/// Microseconds since the Unix epoch, now.
pub fn now_micros() -> i64 {
    let now = time::OffsetDateTime::now_utc();
    i64::try_from(now.unix_timestamp_nanos() / 1_000).unwrap_or(i64::MAX)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn stream_ids_name_their_service() {
        let stream = StreamId::new("intake", "household", "0190f3c4-aaaa").unwrap();
        assert_eq!(stream.service(), "intake");
        assert!(StreamId::parse("Intake-household-1").is_err());
        assert!(StreamId::parse("intake-household").is_err());
        assert!(StreamId::parse("intake--1").is_err());
        assert!(StreamId::parse("intake.household.1").is_err());
        assert!(StreamId::parse(&"a-b-".repeat(60)).is_err());
    }

    #[test]
    fn a_typed_event_carries_its_registered_type_and_version() {
        use prost::Message as _;
        use sunshine_proto::events::Event as _;
        use sunshine_proto::v1 as pb;
        let opened = pb::CaseOpened {
            case_id: "c1".into(),
            ..Default::default()
        };
        let event = NewEvent::typed("c1", &opened);
        assert_eq!(event.event_type, pb::CaseOpened::TYPE);
        assert_eq!(event.schema_version, pb::CaseOpened::SCHEMA_VERSION);
        assert_eq!(event.payload, opened.encode_to_vec());
    }
}
