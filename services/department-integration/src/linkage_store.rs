//! Linkage notices on the log and in `integration_linkage_notices`: the linkage watch
//! (`department-integration-linkage`, a consumer as payment's recovery watch is) hears review's
//! `CaseApproved`, reads the case's household from review's and intake's streams, evaluates the
//! rules ([`crate::linkage`], pure) and appends one `LinkageNoticeSent` per notice on its own
//! stream `department-integration-notice-<notice id>` (the id derives from the case and the
//! rule: a redelivery or a replay finds the stream there and sends none again). A department's
//! acknowledgement (`LinkageNoticeAcknowledged`) is the stream's second event. Each append
//! writes the notice's row in the same transaction, the list's read model.

use sqlx::{AnyConnection, AnyPool, Row as _};
use sunshine_eventlog::consumer::{HandlerError, HandlerFuture, Projection};
use sunshine_eventlog::{
    Actor, AppendGuard, EventMetadata, ExpectedVersion, GuardedAppend, NewEvent, RecordedEvent,
    StreamId,
};
use sunshine_platform::ApiError;
use sunshine_proto::events::{Event as _, StreamEvent as _};
use sunshine_proto::v1 as pb;

use crate::linkage::{Approval, LinkageRules, school_age_members};
use crate::store::IntegrationStore;

sunshine_proto::stream_events! {
    /// The events of `department-integration-notice-<notice id>`.
    #[derive(Debug, Clone, PartialEq)]
    pub enum NoticeEvent in "department-integration-notice" {
        Sent(pb::LinkageNoticeSent),
        Acknowledged(pb::LinkageNoticeAcknowledged),
    }
}

fn internal(error: impl std::fmt::Display) -> ApiError {
    ApiError::internal(std::io::Error::other(error.to_string()))
}

/// The notice's stream.
pub fn notice_stream(notice_id: &str) -> Result<StreamId, ApiError> {
    StreamId::new("department-integration", "notice", notice_id).map_err(internal)
}

/// A notice as its stream folds.
#[derive(Debug, Clone, PartialEq)]
pub struct NoticeState {
    pub sent: pb::LinkageNoticeSent,
    pub acknowledged: Option<pb::LinkageNoticeAcknowledged>,
    pub sent_at_us: i64,
    pub version: u64,
}

/// The notice's row, written with its event.
#[derive(Debug)]
enum NoticeRow<'a> {
    Sent(&'a pb::LinkageNoticeSent, i64),
    Acknowledged(&'a pb::LinkageNoticeAcknowledged),
}

impl AppendGuard for NoticeRow<'_> {
    type Refusal = std::convert::Infallible;

    async fn apply(
        &self,
        connection: &mut AnyConnection,
    ) -> Result<Result<(), Self::Refusal>, sqlx::Error> {
        match self {
            NoticeRow::Sent(sent, at) => {
                sqlx::query(
                    "INSERT INTO integration_linkage_notices (notice_id, department_code, rule_code, case_id, \
                     household_id, program_code, sent_at_us, outcome) VALUES ($1, $2, $3, $4, $5, $6, $7, '') \
                     ON CONFLICT DO NOTHING",
                )
                .bind(sent.notice_id.as_str())
                .bind(sent.department_code.as_str())
                .bind(sent.rule_code.as_str())
                .bind(sent.case_id.as_str())
                .bind(sent.household_id.as_str())
                .bind(sent.program_code.as_str())
                .bind(*at)
                .execute(&mut *connection)
                .await?;
            }
            NoticeRow::Acknowledged(acknowledged) => {
                sqlx::query(
                    "UPDATE integration_linkage_notices SET outcome = $1 WHERE notice_id = $2",
                )
                .bind(acknowledged.outcome.as_str())
                .bind(acknowledged.notice_id.as_str())
                .execute(&mut *connection)
                .await?;
            }
        }
        Ok(Ok(()))
    }
}

/// The notices, by id, after `after`: one department's (or all), unacknowledged only or all;
/// one more than `limit` tells there is a next page.
pub async fn list_notices(
    pool: &AnyPool,
    department: Option<&str>,
    unacknowledged_only: bool,
    after: Option<&str>,
    limit: usize,
) -> Result<Vec<pb::LinkageNotice>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT notice_id, rule_code, department_code, case_id, household_id, program_code, outcome, sent_at_us \
         FROM integration_linkage_notices \
         WHERE ($1 = '' OR department_code = $1) AND ($2 = 0 OR outcome = '') AND notice_id > $3 \
         ORDER BY notice_id LIMIT $4",
    )
    .bind(department.unwrap_or(""))
    .bind(i64::from(unacknowledged_only))
    .bind(after.unwrap_or(""))
    .bind(i64::try_from(limit + 1).unwrap_or(i64::MAX))
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|row| {
            let outcome: String = row.try_get(6)?;
            Ok(pb::LinkageNotice {
                notice_id: row.try_get(0)?,
                rule_code: row.try_get(1)?,
                department_code: row.try_get(2)?,
                case_id: row.try_get(3)?,
                household_id: row.try_get(4)?,
                program_code: row.try_get(5)?,
                acknowledged: !outcome.is_empty(),
                outcome,
                sent_at_us: row.try_get(7)?,
            })
        })
        .collect()
}

impl NoticeState {
    pub fn to_pb(&self) -> pb::LinkageNotice {
        pb::LinkageNotice {
            notice_id: self.sent.notice_id.clone(),
            rule_code: self.sent.rule_code.clone(),
            department_code: self.sent.department_code.clone(),
            case_id: self.sent.case_id.clone(),
            household_id: self.sent.household_id.clone(),
            program_code: self.sent.program_code.clone(),
            acknowledged: self.acknowledged.is_some(),
            outcome: self
                .acknowledged
                .as_ref()
                .map(|acknowledged| acknowledged.outcome.clone())
                .unwrap_or_default(),
            sent_at_us: self.sent_at_us,
        }
    }
}

fn fold(recorded: &[RecordedEvent]) -> Result<Option<NoticeState>, ApiError> {
    let mut state: Option<NoticeState> = None;
    for stored in recorded {
        match NoticeEvent::decode(&stored.event_type, &stored.payload).map_err(internal)? {
            NoticeEvent::Sent(sent) => {
                state = Some(NoticeState {
                    sent,
                    acknowledged: None,
                    sent_at_us: stored.recorded_at_us,
                    version: stored.stream_version,
                });
            }
            NoticeEvent::Acknowledged(acknowledged) => {
                if let Some(state) = state.as_mut() {
                    state.acknowledged = Some(acknowledged);
                    state.version = stored.stream_version;
                }
            }
        }
    }
    Ok(state)
}

impl IntegrationStore {
    /// The notice as its stream folds; `None` when there is none.
    pub async fn load_notice(&self, notice_id: &str) -> Result<Option<NoticeState>, ApiError> {
        let stream = notice_stream(notice_id)?;
        fold(&self.log.store.read_stream(&stream, 1).await?)
    }

    /// The notice after `metadata`'s command when it was appended before (a retry).
    pub async fn retried_notice(
        &self,
        notice_id: &str,
        metadata: &EventMetadata,
    ) -> Result<Option<NoticeState>, ApiError> {
        let stream = notice_stream(notice_id)?;
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

    /// Sends a notice: its stream's first event (none when it is there already).
    async fn send_notice(
        &self,
        metadata: &EventMetadata,
        sent: pb::LinkageNoticeSent,
        at_us: i64,
    ) -> Result<(), ApiError> {
        let stream = notice_stream(&sent.notice_id)?;
        if self.load_notice(&sent.notice_id).await?.is_some() {
            return Ok(());
        }
        let event = NewEvent::typed(sent.case_id.as_str(), &NoticeEvent::Sent(sent.clone()));
        match self
            .log
            .store
            .append_guarded(
                &stream,
                ExpectedVersion::NoStream,
                metadata,
                vec![event],
                &NoticeRow::Sent(&sent, at_us),
            )
            .await
        {
            Ok(GuardedAppend::Appended(_)) => Ok(()),
            Ok(GuardedAppend::Refused(never)) => match never {},
            // Another reaction sent it meanwhile.
            Err(sunshine_eventlog::StoreError::Conflict { .. }) => Ok(()),
            Err(error) => Err(error.into()),
        }
    }

    /// Appends the department's acknowledgement after the notice's `version`.
    pub async fn acknowledge_notice(
        &self,
        metadata: &EventMetadata,
        notice: &NoticeState,
        acknowledged: pb::LinkageNoticeAcknowledged,
    ) -> Result<NoticeState, ApiError> {
        let stream = notice_stream(&notice.sent.notice_id)?;
        let event = NewEvent::typed(
            notice.sent.case_id.as_str(),
            &NoticeEvent::Acknowledged(acknowledged.clone()),
        );
        match self
            .log
            .store
            .append_guarded(
                &stream,
                ExpectedVersion::Exact(notice.version),
                metadata,
                vec![event],
                &NoticeRow::Acknowledged(&acknowledged),
            )
            .await?
        {
            GuardedAppend::Appended(outcome) => Ok(NoticeState {
                acknowledged: Some(acknowledged),
                version: outcome.last_version,
                ..notice.clone()
            }),
            GuardedAppend::Refused(never) => match never {},
        }
    }
}

/// Who the watch's appends are by.
fn watch_actor() -> Actor {
    Actor {
        subject: "department-integration-service".into(),
        role: "system".into(),
        org_unit: String::new(),
        department_code: None,
    }
}

/// The consumer that sends linkage notices.
#[derive(Debug, Clone)]
pub struct LinkageWatch {
    pub store: IntegrationStore,
    pub rules: std::sync::Arc<LinkageRules>,
}

impl LinkageWatch {
    async fn watch(&self, event: &RecordedEvent) -> Result<(), HandlerError> {
        if event.event_type != pb::CaseApproved::TYPE {
            return Ok(());
        }
        let approved: pb::CaseApproved = sunshine_proto::events::decode_message(&event.payload)
            .map_err(|error| HandlerError(error.to_string()))?;
        let failed = |error: ApiError| HandlerError(error.to_string());
        let Some(case) = self
            .store
            .case_facts(&approved.case_id)
            .await
            .map_err(failed)?
        else {
            return Ok(());
        };
        let on = time::OffsetDateTime::from_unix_timestamp_nanos(
            i128::from(event.recorded_at_us) * 1_000,
        )
        .map_err(|error| HandlerError(error.to_string()))?
        .to_offset(time::macros::offset!(+8))
        .date();
        let household = sunshine_household::load(&self.store.log.store, &case.household_id)
            .await
            .map_err(|error| HandlerError(ApiError::from(error).to_string()))?;
        let school_age = household.as_ref().map_or(0, |household| {
            let members: Vec<(bool, &pb::SealedMember)> = household
                .members
                .iter()
                .map(|member| (member.alive, &member.sealed))
                .collect();
            school_age_members(&members, on)
        });
        let approval = Approval {
            case_id: approved.case_id.clone(),
            household_id: case.household_id.clone(),
            program_code: approved.program_code.clone(),
            school_age_members: school_age,
        };
        for notice in self.rules.notices_for(&approval) {
            let metadata = EventMetadata {
                actor: watch_actor(),
                command_id: Some(format!("linkage-{}", notice.notice_id)),
                causation_id: Some(event.event_id.to_string()),
                ..EventMetadata::default()
            };
            self.store
                .send_notice(&metadata, notice.event, event.recorded_at_us)
                .await
                .map_err(failed)?;
        }
        Ok(())
    }
}

impl Projection for LinkageWatch {
    fn name(&self) -> &str {
        "department-integration-linkage"
    }

    fn react<'a>(&'a self, event: &'a RecordedEvent) -> HandlerFuture<'a> {
        Box::pin(self.watch(event))
    }

    fn apply<'a>(
        &'a self,
        _connection: &'a mut AnyConnection,
        _event: &'a RecordedEvent,
    ) -> HandlerFuture<'a> {
        // A process manager: its rows are written with its appends.
        Box::pin(async { Ok(()) })
    }

    fn reset<'a>(&'a self, _connection: &'a mut AnyConnection) -> HandlerFuture<'a> {
        Box::pin(async { Ok(()) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_notice_stream_is_of_its_kind() {
        let stream = notice_stream(&crate::linkage::notice_id_for("c", "r")).expect("a stream");
        assert!(NoticeEvent::is_stream(stream.as_str()));
    }
}
