//! The economic-status check's loads and appends: the review case it checks (review's stream,
//! read as department integration hears it), the household's consent and composition changes
//! (intake's household stream), the check's own stream with retries answered from their first
//! append, the answers sealed with the log's seal-only public key under the household's subject,
//! and the work queue's rows written in the append's transaction.

use prost::Message as _;
use sunshine_eventlog::{EventMetadata, ExpectedVersion, GuardedAppend, NewEvent, StreamId};
use sunshine_platform::ApiError;
use sunshine_proto::events::StreamEvent as _;
use sunshine_proto::v1 as pb;

use crate::check::{
    CaseFacts, CheckEvent, CheckState, ConsentEvent, ConsentFacts, HeardFromReview, case_facts,
    is_composition_change,
};
use crate::read_model::{CheckRows, RequestRow};
use crate::store::IntegrationStore;

fn internal(error: impl std::fmt::Display) -> ApiError {
    ApiError::internal(std::io::Error::other(error.to_string()))
}

/// The associated data a holder's answers are sealed under: their place. Pinned by a test:
/// never change its bytes.
pub fn answers_associated_data(check_id: &str, department: &str) -> Vec<u8> {
    format!("department-integration/check/answers\n{check_id}\n{department}").into_bytes()
}

/// The check stream of `check_id`.
pub fn check_stream(check_id: &str) -> Result<StreamId, ApiError> {
    StreamId::new("department-integration", "check", check_id).map_err(internal)
}

/// The consent stream of a household.
pub fn consent_stream(household_id: &str) -> Result<StreamId, ApiError> {
    StreamId::new("department-integration", "consent", household_id).map_err(internal)
}

/// A check's id from what it checks: the case and the version of the VerificationRequested it
/// answers (one check per request, whoever opens it); a re-check's from the check it re-checks.
pub fn check_id_for(case_id: &str, requested_at: u64) -> String {
    uuid::Uuid::new_v5(
        &uuid::Uuid::NAMESPACE_OID,
        format!("department-integration/check\n{case_id}\n{requested_at}").as_bytes(),
    )
    .to_string()
}

pub fn recheck_id_for(check_id: &str) -> String {
    uuid::Uuid::new_v5(
        &uuid::Uuid::NAMESPACE_OID,
        format!("department-integration/recheck\n{check_id}").as_bytes(),
    )
    .to_string()
}

/// A consent's id from the household and the command id (a retry lands on it).
pub fn consent_id_for(household_id: &str, command_id: &str) -> String {
    uuid::Uuid::new_v5(
        &uuid::Uuid::NAMESPACE_OID,
        format!("department-integration/consent\n{household_id}\n{command_id}").as_bytes(),
    )
    .to_string()
}

/// The work-queue rows of `events`.
pub fn rows_of(state: Option<&CheckState>, events: &[CheckEvent]) -> Vec<RequestRow> {
    let mut opened = state.map(|state| state.opened.clone());
    let mut rows = Vec::new();
    for event in events {
        match event {
            CheckEvent::Opened(event) => opened = Some(event.clone()),
            CheckEvent::RequestSent(sent) => {
                let (org_unit_code, round) = opened
                    .as_ref()
                    .map(|opened| (opened.org_unit_code.clone(), opened.round))
                    .unwrap_or_default();
                rows.push(RequestRow::Sent {
                    check_id: sent.check_id.clone(),
                    department_code: sent.department_code.clone(),
                    case_id: sent.case_id.clone(),
                    org_unit_code,
                    round,
                    deadline: sunshine_proto::dates::to_date(sent.deadline.as_ref())
                        .map(|date| date.to_string())
                        .unwrap_or_default(),
                });
            }
            CheckEvent::Answered(answered) => rows.push(RequestRow::Status {
                check_id: answered.check_id.clone(),
                department_code: answered.department_code.clone(),
                status: "answered",
            }),
            CheckEvent::Overdue(overdue) => rows.push(RequestRow::Status {
                check_id: overdue.check_id.clone(),
                department_code: overdue.department_code.clone(),
                status: "overdue",
            }),
            CheckEvent::ReportIssued(_) | CheckEvent::RecheckRequested(_) => {}
        }
    }
    rows
}

fn fold(recorded: &[sunshine_eventlog::RecordedEvent]) -> Result<Option<CheckState>, ApiError> {
    let mut events = Vec::with_capacity(recorded.len());
    for stored in recorded {
        let event = CheckEvent::decode(&stored.event_type, &stored.payload).map_err(internal)?;
        events.push((event, stored.stream_version));
    }
    Ok(CheckState::fold(events))
}

impl IntegrationStore {
    /// The review case, as the check hears it; `None` when there is none.
    pub async fn case_facts(&self, case_id: &str) -> Result<Option<CaseFacts>, ApiError> {
        let stream = StreamId::new("review", "case", case_id).map_err(internal)?;
        let recorded = self.log.store.read_stream(&stream, 1).await?;
        let mut heard = Vec::new();
        for stored in &recorded {
            if let Some(event) = HeardFromReview::decode_known(&stored.event_type, &stored.payload)
                .map_err(internal)?
            {
                heard.push((event, stored.stream_version));
            }
        }
        Ok(case_facts(&heard))
    }

    /// The household's hukou org unit and stream version now; `None` when it is not registered.
    pub async fn household_now(
        &self,
        household_id: &str,
    ) -> Result<Option<(String, u64)>, ApiError> {
        Ok(sunshine_household::load(&self.log.store, household_id)
            .await?
            .map(|household| (household.hukou_org_unit_code, household.version)))
    }

    /// The household's last consent and its composition changes.
    pub async fn consent_facts(&self, household_id: &str) -> Result<ConsentFacts, ApiError> {
        let stream = consent_stream(household_id)?;
        let mut last = None;
        for stored in self.log.store.read_stream(&stream, 1).await? {
            let ConsentEvent::Recorded(recorded) =
                ConsentEvent::decode(&stored.event_type, &stored.payload).map_err(internal)?;
            last = Some(recorded);
        }
        let household = sunshine_household::stream_id(household_id).map_err(internal)?;
        let mut composition_changes = Vec::new();
        for stored in self.log.store.read_stream(&household, 1).await? {
            let event =
                sunshine_household::HouseholdEvent::decode(&stored.event_type, &stored.payload)
                    .map_err(internal)?;
            if is_composition_change(&event) {
                composition_changes.push(stored.stream_version);
            }
        }
        Ok(ConsentFacts {
            last,
            composition_changes,
        })
    }

    /// Records a consent on the household's consent stream; a retry answers its first append.
    pub async fn record_consent(
        &self,
        metadata: &EventMetadata,
        consent: pb::ConsentRecorded,
    ) -> Result<(String, u64), ApiError> {
        let stream = consent_stream(&consent.household_id)?;
        if let Some(previous) = self.log.store.previous_outcome(&stream, metadata).await? {
            let consent_id = previous
                .events
                .first()
                .map(|event| ConsentEvent::decode(&event.event_type, &event.payload))
                .transpose()
                .map_err(internal)?
                .map(|ConsentEvent::Recorded(recorded)| recorded.consent_id)
                .unwrap_or_default();
            return Ok((consent_id, previous.last_version));
        }
        let consent_id = consent.consent_id.clone();
        let event = NewEvent::typed(stream.as_str(), &ConsentEvent::Recorded(consent));
        let outcome = self
            .log
            .store
            .append(&stream, ExpectedVersion::Any, metadata, vec![event])
            .await?;
        Ok((consent_id, outcome.last_version))
    }

    /// The check as its stream folds, `None` when there is none.
    pub async fn load_check(&self, check_id: &str) -> Result<Option<CheckState>, ApiError> {
        let stream = check_stream(check_id)?;
        fold(&self.log.store.read_stream(&stream, 1).await?)
    }

    /// The check after `metadata`'s command when it was appended before (a retry): the stream
    /// up to that append's last version.
    pub async fn retried_check(
        &self,
        check_id: &str,
        metadata: &EventMetadata,
    ) -> Result<Option<CheckState>, ApiError> {
        let stream = check_stream(check_id)?;
        let Some(previous) = self.log.store.previous_outcome(&stream, metadata).await? else {
            return Ok(None);
        };
        let recorded: Vec<_> = self
            .log
            .store
            .read_stream(&stream, 1)
            .await?
            .into_iter()
            .filter(|event| event.stream_version <= previous.last_version)
            .collect();
        fold(&recorded)
    }

    /// Appends a check's events at `expected` with their work-queue rows, sealing an answer's
    /// values (`answers`, the holder's ItemAnswer list) under the household's subject first.
    /// The review case is each event's case id, so review finds the report by it.
    pub async fn append_check(
        &self,
        metadata: &EventMetadata,
        state: Option<&CheckState>,
        expected: ExpectedVersion,
        mut events: Vec<CheckEvent>,
        answers: Option<(&str, Vec<pb::ItemAnswer>)>,
    ) -> Result<u64, ApiError> {
        let Some(check_id) =
            state
                .map(|state| state.check_id().to_owned())
                .or_else(|| match events.first() {
                    Some(CheckEvent::Opened(opened)) => Some(opened.check_id.clone()),
                    _ => None,
                })
        else {
            return Err(internal("a check's events without its check"));
        };
        let (case_id, household_id) = match (state, events.first()) {
            (Some(state), _) => (
                state.opened.case_id.clone(),
                state.opened.household_id.clone(),
            ),
            (None, Some(CheckEvent::Opened(opened))) => {
                (opened.case_id.clone(), opened.household_id.clone())
            }
            _ => return Err(internal("a check's events without its check")),
        };
        if let Some((department, answers)) = answers {
            let plaintext = pb::AnswerCheckRequest {
                answers,
                ..pb::AnswerCheckRequest::default()
            }
            .encode_to_vec();
            let associated = answers_associated_data(&check_id, department);
            let sealed = self
                .log
                .keys
                .seal(&household_id, &plaintext, &associated)
                .await
                .map_err(ApiError::internal)?;
            for event in &mut events {
                if let CheckEvent::Answered(answered) = event {
                    answered.sealed_answers = sealed.clone();
                }
            }
        }
        let stream = check_stream(&check_id)?;
        let rows = rows_of(state, &events);
        let new_events = events
            .iter()
            .map(|event| NewEvent::typed(&case_id, event))
            .collect();
        match self
            .log
            .store
            .append_guarded(
                &stream,
                expected,
                metadata,
                new_events,
                &CheckRows { rows: &rows },
            )
            .await?
        {
            GuardedAppend::Appended(outcome) => Ok(outcome.last_version),
            GuardedAppend::Refused(never) => match never {},
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sealed_answers_place_never_changes() {
        assert_eq!(
            answers_associated_data("c-1", "tax"),
            b"department-integration/check/answers\nc-1\ntax"
        );
    }

    #[test]
    fn a_check_id_is_its_verification_requests_and_a_re_check_its_checks() {
        assert_eq!(check_id_for("case-1", 6), check_id_for("case-1", 6));
        assert_ne!(check_id_for("case-1", 6), check_id_for("case-1", 9));
        assert_ne!(recheck_id_for("a"), recheck_id_for("b"));
        let stream = check_stream(&check_id_for("case-1", 6)).expect("a stream");
        assert!(CheckEvent::is_stream(stream.as_str()));
    }
}
