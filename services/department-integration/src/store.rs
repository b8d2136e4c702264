//! Load and append: a retried push answered from its first append, the digests stored under a
//! batch's record ids, the person index (the service's own key), the id numbers sealed with the
//! log's seal-only public key, the append with its guard rows, and the access records of
//! queries.

use std::collections::BTreeMap;
use std::sync::Arc;

use sunshine_domain::NationalId;
use sunshine_eventlog::crypto::{BlindIndexKey, blind_index};
use sunshine_eventlog::runtime::LogRuntime;
use sunshine_eventlog::{
    EventMetadata, ExpectedVersion, GuardedAppend, NewEvent, StoreError, StreamId, actor_of,
};
use sunshine_platform::{ApiError, Identity};
use sunshine_proto::events::StreamEvent as _;
use sunshine_proto::v1 as pb;

use crate::aggregate::{AccessEvent, BatchEvent, Decision};
use crate::errors::Refusal;
use crate::read_model::{self, RecordRows};

/// The person index's HMAC domain (never intake's `national_id`).
const PERSON_INDEX_DOMAIN: &str = "department-integration/person";
/// Attempts to append an access record at the end of its stream.
const RECORD_ATTEMPTS: u32 = 5;

/// The associated data a pushed record's id number is sealed under: its place, so a sealed
/// value cannot be moved to another record. Pinned by a test: never change its bytes.
pub fn national_id_associated_data(department: &str, record_id: &str) -> Vec<u8> {
    format!("department-integration/record/national_id\n{department}\n{record_id}").into_bytes()
}

/// The metadata of a push: the caller, the command id and the request's digest.
pub fn command_metadata(caller: &Identity, command_id: &str, digest: String) -> EventMetadata {
    EventMetadata {
        actor: actor_of(caller),
        command_id: Some(command_id.to_owned()),
        request_digest: Some(digest),
        traceparent: sunshine_platform::telemetry::current_traceparent(),
        ..EventMetadata::default()
    }
}

/// The batch's stream: from the department and the command id, so a retry lands on it.
pub fn batch_stream(department: &str, command_id: &str) -> Result<StreamId, ApiError> {
    let id = uuid::Uuid::new_v5(
        &uuid::Uuid::NAMESPACE_OID,
        format!("department-integration/batch\n{department}\n{command_id}").as_bytes(),
    );
    StreamId::new("department-integration", "batch", &id.simple().to_string())
        .map_err(|error| ApiError::internal(std::io::Error::other(error.to_string())))
}

/// The department's access stream (`_` of the code as `-`).
fn access_stream(department: &str) -> Result<StreamId, ApiError> {
    StreamId::new(
        "department-integration",
        "access",
        &department.replace('_', "-"),
    )
    .map_err(|error| ApiError::internal(std::io::Error::other(error.to_string())))
}

#[derive(Clone)]
pub struct IntegrationStore {
    pub log: LogRuntime,
    person_index_key: Option<Arc<BlindIndexKey>>,
}

impl std::fmt::Debug for IntegrationStore {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("IntegrationStore")
            .finish_non_exhaustive()
    }
}

impl IntegrationStore {
    pub fn new(log: LogRuntime, person_index_key: Option<Arc<BlindIndexKey>>) -> Self {
        IntegrationStore {
            log,
            person_index_key,
        }
    }

    /// The person index of `national_id`: HMAC-SHA256 under the service's own key.
    pub fn person_index(&self, national_id: &NationalId) -> Result<[u8; 32], Refusal> {
        let key = self
            .person_index_key
            .as_ref()
            .ok_or(Refusal::NoPersonIndexKey)?;
        Ok(blind_index(key, PERSON_INDEX_DOMAIN, national_id.as_str()))
    }

    /// The first append's events when `metadata`'s command was appended before (a retry).
    pub async fn previous(
        &self,
        stream: &StreamId,
        metadata: &EventMetadata,
    ) -> Result<Option<Vec<BatchEvent>>, ApiError> {
        let Some(outcome) = self.log.store.previous_outcome(stream, metadata).await? else {
            return Ok(None);
        };
        outcome
            .events
            .iter()
            .map(|event| {
                BatchEvent::decode(&event.event_type, &event.payload)
                    .map_err(|error| ApiError::internal(std::io::Error::other(error.to_string())))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    }

    pub async fn stored_digests(
        &self,
        department: &str,
        record_ids: &[&str],
    ) -> Result<BTreeMap<String, String>, ApiError> {
        read_model::stored_digests(self.log.store.pool(), department, record_ids)
            .await
            .map_err(ApiError::internal)
    }

    /// Seals each stored record's id number (one data key for the batch, wrapped to the
    /// sealing public key) into its slot, and appends the decision's events with the guard
    /// rows. Nothing is written when the decision has no events.
    pub async fn append_batch(
        &self,
        metadata: &EventMetadata,
        stream: &StreamId,
        department: &str,
        decision: &Decision,
    ) -> Result<(), ApiError> {
        if decision.events.is_empty() {
            return Ok(());
        }
        let associated: Vec<Vec<u8>> = decision
            .stored
            .iter()
            .map(|(prepared, _)| {
                national_id_associated_data(department, &prepared.record.record_id)
            })
            .collect();
        let values: Vec<(&[u8], &[u8])> = decision
            .stored
            .iter()
            .zip(&associated)
            .map(|((prepared, _), associated)| {
                (
                    prepared.record.national_id.as_str().as_bytes(),
                    associated.as_slice(),
                )
            })
            .collect();
        let sealed = self
            .log
            .keys
            .seal_all(stream.as_str(), &values)
            .await
            .map_err(ApiError::internal)?;
        let mut events = decision.events.clone();
        for event in &mut events {
            if let BatchEvent::Pushed(pushed) = event {
                for (record, sealed) in pushed.records.iter_mut().zip(&sealed) {
                    record.sealed_national_id = sealed.clone();
                }
            }
        }
        let new_events = events
            .iter()
            .map(|event| NewEvent::typed(stream.as_str(), event))
            .collect();
        let guard = RecordRows {
            department,
            batch_stream: stream.as_str(),
            rows: &decision.stored,
        };
        match self
            .log
            .store
            .append_guarded(
                stream,
                ExpectedVersion::NoStream,
                metadata,
                new_events,
                &guard,
            )
            .await?
        {
            GuardedAppend::Appended(_) => Ok(()),
            GuardedAppend::Refused(_) => Err(Refusal::StoredMeanwhile.into()),
        }
    }

    /// Records a department's query (answered or refused) at the end of its access stream.
    pub async fn record_query(
        &self,
        caller: &Identity,
        department: &str,
        event: pb::DepartmentQueryRecorded,
    ) -> Result<(), ApiError> {
        let stream = access_stream(department)?;
        let metadata = EventMetadata {
            actor: actor_of(caller),
            traceparent: sunshine_platform::telemetry::current_traceparent(),
            ..EventMetadata::default()
        };
        let new_event = NewEvent::typed(stream.as_str(), &AccessEvent::Queried(event));
        let mut attempt = 1;
        loop {
            match self
                .log
                .store
                .append(
                    &stream,
                    ExpectedVersion::Any,
                    &metadata,
                    vec![new_event.clone()],
                )
                .await
            {
                Ok(_) => return Ok(()),
                Err(StoreError::Conflict { .. }) if attempt < RECORD_ATTEMPTS => attempt += 1,
                Err(error) => return Err(error.into()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sealed_id_numbers_place_never_changes() {
        assert_eq!(
            national_id_associated_data("education", "r-1"),
            b"department-integration/record/national_id\neducation\nr-1"
        );
    }

    #[test]
    fn a_batch_stream_is_the_departments_own_and_a_retry_lands_on_it() {
        let stream = batch_stream("education", "c-1").expect("a stream");
        assert!(stream.as_str().starts_with("department-integration-batch-"));
        assert_eq!(stream, batch_stream("education", "c-1").expect("a stream"));
        assert_ne!(stream, batch_stream("health", "c-1").expect("a stream"));
        assert!(BatchEvent::is_stream(stream.as_str()));
    }
}
