//! Schema evolution without rewriting history: upcasters turn an old event's payload into the
//! next schema version when it is read. Stored events (and so their hashes) never change; the
//! upcast form exists only in memory.

use std::collections::HashMap;

use crate::event::RecordedEvent;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot upcast {event_type} from schema version {from_version}: {reason}")]
pub struct UpcastError {
    pub event_type: String,
    pub from_version: u32,
    pub reason: String,
}

type UpcastFunction = Box<dyn Fn(&[u8]) -> Result<Vec<u8>, String> + Send + Sync>;

/// An event's payload at the newest schema version the registry knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upcasted {
    pub event_type: String,
    pub schema_version: u32,
    pub payload: Vec<u8>,
}

/// Upcasters keyed by (event type, the schema version they read).
#[derive(Default)]
pub struct Upcasters {
    steps: HashMap<(String, u32), UpcastFunction>,
}

impl std::fmt::Debug for Upcasters {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut keys: Vec<&(String, u32)> = self.steps.keys().collect();
        keys.sort();
        formatter
            .debug_struct("Upcasters")
            .field("steps", &keys)
            .finish()
    }
}

impl Upcasters {
    pub fn new() -> Self {
        Upcasters::default()
    }

    /// Registers the step from `from_version` to `from_version + 1` of `event_type`.
    pub fn register(
        &mut self,
        event_type: &str,
        from_version: u32,
        step: impl Fn(&[u8]) -> Result<Vec<u8>, String> + Send + Sync + 'static,
    ) -> &mut Self {
        self.steps
            .insert((event_type.to_owned(), from_version), Box::new(step));
        self
    }

    /// Applies every registered step in turn, from the event's stored version up.
    pub fn upcast(&self, event: &RecordedEvent) -> Result<Upcasted, UpcastError> {
        let mut schema_version = event.schema_version;
        let mut payload = event.payload.clone();
        while let Some(step) = self.steps.get(&(event.event_type.clone(), schema_version)) {
            payload = step(&payload).map_err(|reason| UpcastError {
                event_type: event.event_type.clone(),
                from_version: schema_version,
                reason,
            })?;
            schema_version += 1;
        }
        Ok(Upcasted {
            event_type: event.event_type.clone(),
            schema_version,
            payload,
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use sunshine_evidence::record::GENESIS_HASH;

    fn stored(event_type: &str, schema_version: u32, payload: &[u8]) -> RecordedEvent {
        RecordedEvent {
            sequence: 1,
            log_position: Some(0),
            event_id: uuid::Uuid::now_v7(),
            stream_id: "intake-household-1".into(),
            stream_version: 1,
            case_id: "case-1".into(),
            event_type: event_type.into(),
            schema_version,
            payload: payload.to_vec(),
            metadata_json: "{}".into(),
            occurred_at_us: 1,
            recorded_at_us: 2,
            previous_hash: GENESIS_HASH,
            hash: GENESIS_HASH,
        }
    }

    fn registry() -> Upcasters {
        let mut upcasters = Upcasters::new();
        // v1 held a yuan amount as text; v2 holds fen; v3 adds a currency marker.
        upcasters.register("example.v1.Paid", 1, |payload| {
            let yuan: i64 = std::str::from_utf8(payload)
                .map_err(|e| e.to_string())?
                .parse()
                .map_err(|_| "not a number".to_owned())?;
            Ok((yuan * 100).to_string().into_bytes())
        });
        upcasters.register("example.v1.Paid", 2, |payload| {
            let mut upgraded = payload.to_vec();
            upgraded.extend_from_slice(b" fen");
            Ok(upgraded)
        });
        upcasters
    }

    #[test]
    fn old_events_are_upcast_step_by_step_and_the_stored_event_is_untouched() {
        let upcasters = registry();
        let old = stored("example.v1.Paid", 1, b"12");
        let upcast = upcasters.upcast(&old).unwrap();
        assert_eq!(
            (upcast.schema_version, upcast.payload.as_slice()),
            (3, b"1200 fen".as_slice())
        );
        assert_eq!(old.payload, b"12");
        let middle = upcasters
            .upcast(&stored("example.v1.Paid", 2, b"500"))
            .unwrap();
        assert_eq!(middle.payload, b"500 fen");
        let current = upcasters
            .upcast(&stored("example.v1.Paid", 3, b"7 fen"))
            .unwrap();
        assert_eq!(current.payload, b"7 fen");
        let other = upcasters
            .upcast(&stored("example.v1.Other", 1, b"x"))
            .unwrap();
        assert_eq!(
            (other.schema_version, other.payload.as_slice()),
            (1, b"x".as_slice())
        );
    }

    #[test]
    fn a_failing_step_names_the_event_and_version() {
        let error = registry()
            .upcast(&stored("example.v1.Paid", 1, b"twelve"))
            .unwrap_err();
        assert_eq!(
            (error.event_type.as_str(), error.from_version),
            ("example.v1.Paid", 1)
        );
    }
}
