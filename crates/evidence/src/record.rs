//! The record: an event as the log holds it ([`RecordedEvent`], with the [`EventMetadata`]
//! stored beside it), the exact bytes its hash covers, and the per-stream hash chain.
//!
//! ```text
//! record  = 0x01                                  format version
//!           lp(event_id)                          UUID, lowercase hyphenated text (36 bytes)
//!           lp(stream_id)                         UTF-8
//!           u64be(stream_version)
//!           lp(case_id)                           UTF-8
//!           lp(event_type)                        UTF-8
//!           u32be(schema_version)
//!           lp(payload)                           bytes as stored
//!           lp(metadata)                          UTF-8 JSON text as stored
//!           i64be(occurred_at_us)
//!           i64be(recorded_at_us)
//! lp(x)   = u32be(len(x)) || x
//! hash    = SHA-256(previous_hash || record)      previous_hash: the stream's previous event's
//!                                                 hash, or 32 zero bytes for version 1
//! leaf    = hash                                  the Merkle leaf data (see crate::merkle)
//! ```
//! `docs/audit-log-format.md` restates this for verifiers written elsewhere.

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use uuid::Uuid;

use crate::merkle::Hash;

/// Who acted. Copied from the verified token; never from a request body.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Actor {
    pub subject: String,
    pub role: String,
    pub org_unit: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub department_code: Option<String>,
}

/// Who caused an event and in answer to what. Stored as JSON text, hashed as stored.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct EventMetadata {
    pub actor: Actor,
    /// The client-chosen id of the command; retries reuse it (idempotency).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub causation_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracestate: Option<String>,
    /// The digest of the request that carried `command_id` (`sunshine_eventlog::request_digest`):
    /// a retry must repeat the request exactly, or the store refuses it (a reused command id
    /// with other content).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_digest: Option<String>,
}

/// An event as the log holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedEvent {
    /// Insertion sequence in the events table: unique and increasing per insert, but with gaps
    /// and not in commit order under concurrent writers. Use [`RecordedEvent::log_position`]
    /// for the global order.
    pub sequence: i64,
    /// Position in the global order (the Merkle leaf index, from 0), once the sequencer has
    /// integrated the event.
    pub log_position: Option<u64>,
    pub event_id: Uuid,
    pub stream_id: String,
    pub stream_version: u64,
    pub case_id: String,
    pub event_type: String,
    pub schema_version: u32,
    pub payload: Vec<u8>,
    /// The metadata exactly as stored (and hashed).
    pub metadata_json: String,
    pub occurred_at_us: i64,
    pub recorded_at_us: i64,
    pub previous_hash: Hash,
    pub hash: Hash,
}

impl RecordedEvent {
    /// The parsed metadata.
    pub fn metadata(&self) -> Result<EventMetadata, serde_json::Error> {
        serde_json::from_str(&self.metadata_json)
    }
}

/// Format byte of [`record_bytes`].
pub const RECORD_FORMAT_VERSION: u8 = 1;

/// The previous hash of a stream's first event.
pub const GENESIS_HASH: Hash = [0u8; 32];

/// The fields the hash covers, borrowed.
#[derive(Debug, Clone, Copy)]
pub struct RecordFields<'a> {
    pub event_id: &'a str,
    pub stream_id: &'a str,
    pub stream_version: u64,
    pub case_id: &'a str,
    pub event_type: &'a str,
    pub schema_version: u32,
    pub payload: &'a [u8],
    pub metadata_json: &'a str,
    pub occurred_at_us: i64,
    pub recorded_at_us: i64,
}

fn push_length_prefixed(output: &mut Vec<u8>, bytes: &[u8]) {
    // Lengths are bounded far below 4 GiB by the message size limits.
    let length = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
    output.extend_from_slice(&length.to_be_bytes());
    output.extend_from_slice(bytes);
}

/// The canonical record bytes.
pub fn record_bytes(fields: &RecordFields<'_>) -> Vec<u8> {
    let mut output = Vec::with_capacity(
        1 + 4 * 6
            + 8 * 3
            + 4
            + fields.event_id.len()
            + fields.stream_id.len()
            + fields.case_id.len()
            + fields.event_type.len()
            + fields.payload.len()
            + fields.metadata_json.len(),
    );
    output.push(RECORD_FORMAT_VERSION);
    push_length_prefixed(&mut output, fields.event_id.as_bytes());
    push_length_prefixed(&mut output, fields.stream_id.as_bytes());
    output.extend_from_slice(&fields.stream_version.to_be_bytes());
    push_length_prefixed(&mut output, fields.case_id.as_bytes());
    push_length_prefixed(&mut output, fields.event_type.as_bytes());
    output.extend_from_slice(&fields.schema_version.to_be_bytes());
    push_length_prefixed(&mut output, fields.payload);
    push_length_prefixed(&mut output, fields.metadata_json.as_bytes());
    output.extend_from_slice(&fields.occurred_at_us.to_be_bytes());
    output.extend_from_slice(&fields.recorded_at_us.to_be_bytes());
    output
}

/// `SHA-256(previous_hash || record)`.
pub fn chain_hash(previous_hash: &Hash, fields: &RecordFields<'_>) -> Hash {
    let mut hasher = Sha256::new();
    hasher.update(previous_hash);
    hasher.update(record_bytes(fields));
    hasher.finalize().into()
}

impl RecordedEvent {
    /// The fields as stored, for recomputing the hash.
    pub fn record_fields<'a>(&'a self, event_id_text: &'a str) -> RecordFields<'a> {
        RecordFields {
            event_id: event_id_text,
            stream_id: &self.stream_id,
            stream_version: self.stream_version,
            case_id: &self.case_id,
            event_type: &self.event_type,
            schema_version: self.schema_version,
            payload: &self.payload,
            metadata_json: &self.metadata_json,
            occurred_at_us: self.occurred_at_us,
            recorded_at_us: self.recorded_at_us,
        }
    }

    /// Recomputes the hash from the stored fields and the stored previous hash.
    pub fn recompute_hash(&self) -> Hash {
        let event_id_text = self.event_id.hyphenated().to_string();
        chain_hash(&self.previous_hash, &self.record_fields(&event_id_text))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields<'a>(payload: &'a [u8]) -> RecordFields<'a> {
        RecordFields {
            event_id: "0190f3c4-0000-7000-8000-000000000001",
            stream_id: "intake-household-1",
            stream_version: 1,
            case_id: "case-1",
            event_type: "example.v1.Registered",
            schema_version: 1,
            payload,
            metadata_json: "{}",
            occurred_at_us: 1,
            recorded_at_us: 2,
        }
    }

    #[test]
    fn the_layout_is_length_prefixed_and_big_endian() {
        let bytes = record_bytes(&fields(b"ab"));
        assert_eq!(bytes[0], 1);
        assert_eq!(&bytes[1..5], &36u32.to_be_bytes());
        let tail = &bytes[bytes.len() - 16..];
        assert_eq!(&tail[..8], &1i64.to_be_bytes());
        assert_eq!(&tail[8..], &2i64.to_be_bytes());
    }

    #[test]
    fn any_change_changes_the_hash() {
        let base = chain_hash(&GENESIS_HASH, &fields(b"ab"));
        assert_ne!(base, chain_hash(&GENESIS_HASH, &fields(b"ac")));
        assert_ne!(base, chain_hash(&[1u8; 32], &fields(b"ab")));
        // Moving a byte across a field boundary changes the hash too (length prefixes).
        let mut shifted = fields(b"ab");
        shifted.case_id = "case-1e";
        shifted.event_type = "xample.v1.Registered";
        assert_ne!(base, chain_hash(&GENESIS_HASH, &shifted));
    }
}
