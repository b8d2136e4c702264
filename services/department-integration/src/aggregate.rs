//! The decision on a batch of a department's records, given what is stored under their ids:
//! each record stored, unchanged (stored before with the same content), refused (the same id
//! with other content) or rejected (bad fields); and the events of the batch's stream
//! `department-integration-batch-<id>` (pure: no I/O, no keys — the person index is computed
//! by the store and handed in).

use std::collections::BTreeMap;

use sha2::Digest as _;
use sunshine_domain::FieldViolation;
use sunshine_proto::v1 as pb;

use crate::records::{Checked, CheckedRecord};

sunshine_proto::stream_events! {
    /// The events of `department-integration-batch-<batch id>`.
    #[derive(Debug, Clone, PartialEq)]
    pub enum BatchEvent in "department-integration-batch" {
        Pushed(pb::AssistanceRecordsPushed),
        Refused(pb::AssistanceRecordsRefused),
    }
}

sunshine_proto::stream_events! {
    /// The events of `department-integration-access-<department>`.
    #[derive(Debug, Clone, PartialEq)]
    pub enum AccessEvent in "department-integration-access" {
        Queried(pb::DepartmentQueryRecorded),
    }
}

/// A record ready for the decision: checked, with its person index (from the store).
#[derive(Debug, Clone)]
pub struct Prepared {
    pub record: CheckedRecord,
    pub person_index: [u8; 32],
}

/// What happened to one record of the batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Stored,
    Unchanged,
    Refused,
    Rejected(Vec<FieldViolation>),
}

/// The batch's decision: an outcome per record in order, and the events to append (none
/// when nothing is new).
#[derive(Debug, Clone)]
pub struct Decision {
    pub outcomes: Vec<(String, Outcome)>,
    pub events: Vec<BatchEvent>,
    /// The records stored now, with their digests (the guard rows).
    pub stored: Vec<(Prepared, String)>,
}

/// SHA-256 (hex) of what a record says: the person by its index, never the id number.
pub fn content_digest(department: &str, prepared: &Prepared) -> String {
    let record = &prepared.record;
    let mut hasher = sha2::Sha256::new();
    hasher.update(b"sunshine/department-record/v1\n");
    for part in [
        department,
        &record.record_id,
        &hex::encode(prepared.person_index),
        &record.program_code,
        &record.kind,
        &record.amount.fen().to_string(),
        &record.period_start.to_string(),
        &record.period_end.to_string(),
    ] {
        hasher.update(part.as_bytes());
        hasher.update([0]);
    }
    hex::encode(hasher.finalize())
}

/// Decides a batch of `department` (`channel`: push or csv). `stored` holds the digest stored
/// under each record id of the batch that the department stored before.
pub fn decide(
    department: &str,
    channel: &str,
    batch: Vec<(String, Result<Prepared, Vec<FieldViolation>>)>,
    stored: &BTreeMap<String, String>,
) -> Decision {
    let mut outcomes = Vec::with_capacity(batch.len());
    let mut to_store = Vec::new();
    let mut refused = Vec::new();
    for (record_id, prepared) in batch {
        let outcome = match prepared {
            Err(violations) => Outcome::Rejected(violations),
            Ok(prepared) => {
                let digest = content_digest(department, &prepared);
                match stored.get(&record_id) {
                    Some(existing) if *existing == digest => Outcome::Unchanged,
                    Some(_) => {
                        refused.push(record_id.clone());
                        Outcome::Refused
                    }
                    None => {
                        to_store.push((prepared, digest));
                        Outcome::Stored
                    }
                }
            }
        };
        outcomes.push((record_id, outcome));
    }
    let mut events = Vec::new();
    if !to_store.is_empty() {
        events.push(BatchEvent::Pushed(pb::AssistanceRecordsPushed {
            department_code: department.to_owned(),
            channel: channel.to_owned(),
            records: to_store
                .iter()
                .map(|(prepared, digest)| pushed_record(prepared, digest))
                .collect(),
        }));
    }
    if !refused.is_empty() {
        events.push(BatchEvent::Refused(pb::AssistanceRecordsRefused {
            department_code: department.to_owned(),
            record_ids: refused,
        }));
    }
    Decision {
        outcomes,
        events,
        stored: to_store,
    }
}

/// The record as the event carries it; `sealed_national_id` is filled by the store.
fn pushed_record(prepared: &Prepared, digest: &str) -> pb::PushedRecord {
    let record = &prepared.record;
    pb::PushedRecord {
        record_id: record.record_id.clone(),
        sealed_national_id: Vec::new(),
        person_index: prepared.person_index.to_vec(),
        program_code: record.program_code.clone(),
        kind: record.kind.clone(),
        amount: Some(pb::Money {
            fen: record.amount.fen(),
        }),
        period_start: record.period_start.to_string(),
        period_end: record.period_end.to_string(),
        content_digest: digest.to_owned(),
    }
}

/// The outcomes of a retried batch, from the events its first append wrote: the records in
/// them stored or refused, the other good ones unchanged, the bad ones rejected as before.
pub fn outcomes_of_retry(checked: Vec<Checked>, first: &[BatchEvent]) -> Vec<(String, Outcome)> {
    let mut stored = std::collections::BTreeSet::new();
    let mut refused = std::collections::BTreeSet::new();
    for event in first {
        match event {
            BatchEvent::Pushed(pushed) => {
                stored.extend(pushed.records.iter().map(|record| record.record_id.clone()));
            }
            BatchEvent::Refused(event) => refused.extend(event.record_ids.iter().cloned()),
        }
    }
    checked
        .into_iter()
        .map(|checked| match checked {
            Err(violations) => (String::new(), Outcome::Rejected(violations)),
            Ok(record) if stored.contains(&record.record_id) => (record.record_id, Outcome::Stored),
            Ok(record) if refused.contains(&record.record_id) => {
                (record.record_id, Outcome::Refused)
            }
            Ok(record) => (record.record_id, Outcome::Unchanged),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::tests::{education, good};
    use crate::records::{RecordFields, check_record};

    fn prepared(fields: &RecordFields) -> (String, Result<Prepared, Vec<FieldViolation>>) {
        let record = check_record("records[0]", fields, &education()).expect("good");
        (
            fields.record_id.clone(),
            Ok(Prepared {
                record,
                person_index: [7; 32],
            }),
        )
    }

    fn outcomes(decision: &Decision) -> Vec<Outcome> {
        decision
            .outcomes
            .iter()
            .map(|(_, outcome)| outcome.clone())
            .collect()
    }

    #[test]
    fn new_records_are_stored_in_one_event_without_the_id_number() {
        let decision = decide(
            "education",
            "push",
            vec![prepared(&good("a")), prepared(&good("b"))],
            &BTreeMap::new(),
        );
        assert_eq!(outcomes(&decision), [Outcome::Stored, Outcome::Stored]);
        let [BatchEvent::Pushed(pushed)] = decision.events.as_slice() else {
            panic!("one Pushed event: {:?}", decision.events)
        };
        assert_eq!(pushed.records.len(), 2);
        let encoded = prost::Message::encode_to_vec(pushed);
        let id = good("a").national_id;
        assert!(
            !encoded
                .windows(id.len())
                .any(|window| window == id.as_bytes())
        );
    }

    #[test]
    fn a_repeat_stores_nothing_and_a_changed_record_is_refused() {
        let first = decide(
            "education",
            "push",
            vec![prepared(&good("a")), prepared(&good("b"))],
            &BTreeMap::new(),
        );
        let stored: BTreeMap<String, String> = first
            .stored
            .iter()
            .map(|(prepared, digest)| (prepared.record.record_id.clone(), digest.clone()))
            .collect();
        let mut changed = good("b");
        changed.amount_fen = Some(1);
        let again = decide(
            "education",
            "push",
            vec![
                prepared(&good("a")),
                prepared(&changed),
                prepared(&good("c")),
            ],
            &stored,
        );
        assert_eq!(
            outcomes(&again),
            [Outcome::Unchanged, Outcome::Refused, Outcome::Stored]
        );
        assert_eq!(again.events.len(), 2);
        assert!(
            matches!(&again.events[1], BatchEvent::Refused(refused) if refused.record_ids == ["b"])
        );
        let repeat = decide("education", "push", vec![prepared(&good("a"))], &stored);
        assert!(repeat.events.is_empty());
    }

    #[test]
    fn a_rejected_record_is_reported_and_writes_nothing() {
        let violation = FieldViolation {
            field: "records[0].kind".into(),
            description: "bad".into(),
        };
        let decision = decide(
            "education",
            "push",
            vec![("a".into(), Err(vec![violation.clone()]))],
            &BTreeMap::new(),
        );
        assert_eq!(outcomes(&decision), [Outcome::Rejected(vec![violation])]);
        assert!(decision.events.is_empty());
    }

    #[test]
    fn the_digest_is_of_the_department_and_every_field() {
        let (_, Ok(a)) = prepared(&good("a")) else {
            panic!()
        };
        let mut other = a.clone();
        other.person_index = [8; 32];
        assert_ne!(
            content_digest("education", &a),
            content_digest("education", &other)
        );
        assert_ne!(
            content_digest("education", &a),
            content_digest("health", &a)
        );
    }
}
