//! The review service's reactions to other services' events: it opens a case (`CaseOpened` on
//! `review-case-<case id>`) for every application intake routes to review or emergency
//! assistance, with the officials recused from it (intake's `RelativeOfOfficialFlagged` of the
//! same case, appended with the application); records a recusal flagged later
//! (`OfficialRecused`); moves the household's cases when it moves (`CaseFollowedHousehold`);
//! and takes departments' verification answers, department integration's check reports
//! (`CheckReportAttached`) and the public's objections into the case.
//! Each reaction appends under a command id derived from the event it reacts to, so a
//! redelivery changes nothing.

use sqlx::AnyConnection;
use sunshine_eventlog::consumer::{HandlerError, HandlerFuture, Projection};
use sunshine_eventlog::{EventMetadata, RecordedEvent, StoreError};
use sunshine_platform::ApiError;
use sunshine_proto::v1 as pb;
use time::Date;

use crate::case::{
    AnswerVerification, AttachCheckReport, CaseCommand, CaseError, CaseEvent, Change,
    FollowHousehold, Reassess, ReceiveObjection, Recuse,
};
use crate::events::{CaseEventError, decode_as, is_type};
use crate::state::ReviewState;
use crate::store::{self, LoadedCase};

/// The local (UTC+8) date of an instant in microseconds.
fn local_date(recorded_at_us: i64) -> Date {
    let instant = time::OffsetDateTime::from_unix_timestamp(recorded_at_us.div_euclid(1_000_000))
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
        + time::Duration::hours(8);
    instant.date()
}

/// Who the reactions' appends are by.
const REACTOR: &str = "review-service";

/// Why a reaction failed: the consumer tries the event again, and parks it after its attempts.
#[derive(Debug, thiserror::Error)]
pub enum ReactionError {
    /// The event heard, or a case event, could not be read.
    #[error(transparent)]
    Event(#[from] CaseEventError),
    /// The case refuses what the event asks (an answer nobody asked for, an objection outside
    /// publicity, a household the policy cannot evaluate).
    #[error("the case refuses it: {0}")]
    Case(#[from] CaseError),
    #[error("the household moved to an org unit that is not one: {0}")]
    OrgUnit(#[from] sunshine_domain::OrgUnitCodeError),
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

impl From<ReactionError> for HandlerError {
    /// The consumer records the error as text: the whole chain of causes.
    fn from(error: ReactionError) -> HandlerError {
        let mut text = error.to_string();
        let mut source = std::error::Error::source(&error);
        while let Some(cause) = source {
            text.push_str(": ");
            text.push_str(&cause.to_string());
            source = cause.source();
        }
        HandlerError(text)
    }
}

/// The message an event heard from another service carries.
fn heard<M: prost::Message + Default>(event: &RecordedEvent) -> Result<M, ReactionError> {
    Ok(decode_as::<M>(&event.event_type, &event.payload)?)
}

/// The consumer that opens cases and takes answers and objections in.
#[derive(Debug, Clone)]
pub struct CaseOpener {
    pub state: ReviewState,
}

impl CaseOpener {
    async fn open(&self, event: &RecordedEvent) -> Result<(), ReactionError> {
        let submitted: pb::ApplicationSubmitted = heard(event)?;
        let emergency = submitted.route == pb::Route::Emergency as i32;
        if submitted.route != pb::Route::Review as i32 && !emergency {
            return Ok(());
        }
        let accepted_by = event.metadata().map(|metadata| metadata.actor).ok();
        let recused_subjects = self.flagged_officials(event, &submitted).await?;
        let opened = pb::CaseOpened {
            case_id: submitted.case_id.clone(),
            application_id: submitted.application_id.clone(),
            household_id: submitted.household_id.clone(),
            program_code: submitted.program_code.clone(),
            workflow: submitted.review_workflow.clone(),
            accepted_org_unit_code: submitted.accepted_org_unit_code.clone(),
            hukou_org_unit_code: submitted.hukou_org_unit_code.clone(),
            relative_of_official: submitted.relative_of_official,
            emergency,
            accepted_by: accepted_by
                .as_ref()
                .map(|actor| actor.subject.clone())
                .unwrap_or_default(),
            accepted_by_role: accepted_by.map(|actor| actor.role).unwrap_or_default(),
            accepted_on: submitted
                .accepted_on
                .or_else(|| Some(crate::case::proto_date(local_date(event.recorded_at_us)))),
            recused_subjects,
        };
        let metadata = EventMetadata {
            actor: store::system_actor(REACTOR),
            command_id: Some(format!("open-case-{}", submitted.application_id)),
            causation_id: Some(event.event_id.to_string()),
            ..EventMetadata::default()
        };
        store::open(&self.state, opened, &metadata).await?;
        Ok(())
    }

    /// The officials intake flagged for this case: its `RelativeOfOfficialFlagged` events,
    /// appended to the household's stream in the same append as the application.
    async fn flagged_officials(
        &self,
        event: &RecordedEvent,
        submitted: &pb::ApplicationSubmitted,
    ) -> Result<Vec<String>, ReactionError> {
        let mut officials = std::collections::BTreeSet::new();
        for stored in self.state.log.store.read_case(&submitted.case_id).await? {
            if stored.stream_id != event.stream_id
                || !is_type::<pb::RelativeOfOfficialFlagged>(&stored.event_type)
            {
                continue;
            }
            let flagged: pb::RelativeOfOfficialFlagged = heard(&stored)?;
            if flagged.case_id == submitted.case_id && !flagged.official_subject.is_empty() {
                officials.insert(flagged.official_subject);
            }
        }
        Ok(officials.into_iter().collect())
    }

    /// A relation flagged for a case that is already open (a flag appended with the application
    /// was taken in when the case opened, and changes nothing here).
    async fn recuse(&self, event: &RecordedEvent) -> Result<(), ReactionError> {
        let flagged: pb::RelativeOfOfficialFlagged = heard(event)?;
        if flagged.official_subject.is_empty() {
            tracing::warn!(
                case_id = %flagged.case_id,
                registration_id = %flagged.registration_id,
                "a relative-of-official flag without the official's subject: nobody can be recused"
            );
            return Ok(());
        }
        let loaded = match store::load(&self.state, &flagged.case_id).await {
            Ok(loaded) => loaded,
            // Not a review case (routed to a department), or not opened: nothing to recuse.
            Err(ApiError::NotFound { .. }) => return Ok(()),
            Err(error) => return Err(error.into()),
        };
        let command = Recuse {
            official_subject: flagged.official_subject,
            registration_id: flagged.registration_id,
        };
        self.decide_and_append(
            &loaded,
            command.into(),
            &format!("recuse-{}", event.event_id),
        )
        .await
    }

    /// The household moved: each of its cases that is not closed follows it to the new org
    /// unit. The work list is updated at once, so the new village sees the case and the old
    /// one does not (the projection writes the same from the log).
    async fn follow(&self, event: &RecordedEvent) -> Result<(), ReactionError> {
        let moved: pb::HouseholdMoved = heard(event)?;
        let to = sunshine_domain::OrgUnitCode::parse(&moved.to_org_unit_code)?;
        let case_ids: Vec<String> = sqlx::query_scalar(
            "SELECT case_id FROM review_cases WHERE household_id = $1 AND status IN ('open', 'approved', 'rejected') ORDER BY case_id",
        )
        .bind(moved.household_id.as_str())
        .fetch_all(self.state.log.store.pool())
        .await?;
        for case_id in case_ids {
            let loaded = match store::load(&self.state, &case_id).await {
                Ok(loaded) => loaded,
                Err(ApiError::NotFound { .. }) => continue,
                Err(error) => return Err(error.into()),
            };
            let command = FollowHousehold {
                household_id: moved.household_id.clone(),
                to: to.clone(),
            };
            self.decide_and_append(
                &loaded,
                command.into(),
                &format!("follow-{}-{case_id}", event.event_id),
            )
            .await?;
            sqlx::query("UPDATE review_cases SET hukou_org_unit_code = $1 WHERE case_id = $2")
                .bind(to.as_str())
                .bind(case_id.as_str())
                .execute(self.state.log.store.pool())
                .await?;
        }
        Ok(())
    }

    /// A department's answer or a public objection, from that service's own stream.
    async fn take_in(&self, event: &RecordedEvent) -> Result<(), ReactionError> {
        let command_id = format!("take-in-{}", event.event_id);
        if self.state.log.store.command_seen(&command_id).await? {
            return Ok(());
        }
        let loaded = store::load(&self.state, &event.case_id).await?;
        let command: CaseCommand = if is_type::<pb::VerificationAnswered>(&event.event_type) {
            AnswerVerification {
                answer: heard(event)?,
            }
            .into()
        } else if is_type::<pb::CheckReportIssued>(&event.event_type)
            && event.stream_id.starts_with("department-integration-check-")
        {
            AttachCheckReport {
                report: heard(event)?,
            }
            .into()
        } else if is_type::<pb::ObjectionReceived>(&event.event_type) {
            ReceiveObjection {
                objection: heard(event)?,
            }
            .into()
        } else {
            return Ok(());
        };
        self.decide_and_append(&loaded, command, &command_id).await
    }

    /// Decides `command` on the case and appends what it emits (nothing when it emits
    /// nothing), under `command_id`.
    async fn decide_and_append(
        &self,
        loaded: &LoadedCase,
        command: CaseCommand,
        command_id: &str,
    ) -> Result<(), ReactionError> {
        let events: Vec<CaseEvent> = loaded.state.handle(command)?;
        if events.is_empty() {
            return Ok(());
        }
        let metadata = store::system_metadata(store::system_actor(REACTOR), command_id);
        store::append(
            &self.state,
            &loaded.state.case_id,
            loaded.version,
            &metadata,
            &events,
        )
        .await?;
        Ok(())
    }
}

impl CaseOpener {
    /// Dynamic management: a household's change or a death re-evaluates its running benefits:
    /// from the month after the day it is heard, or after the date of death.
    async fn reassess(&self, event: &RecordedEvent) -> Result<(), ReactionError> {
        let today = self.state.clock.today();
        let (household_id, change) = if is_type::<pb::MemberDied>(&event.event_type) {
            let died: pb::MemberDied = heard(event)?;
            // Intake requires the date; a death stored without one takes effect as heard.
            let date_of_death =
                sunshine_proto::dates::to_date(died.date_of_death.as_ref()).unwrap_or(today);
            (died.household_id, Change::Death { date_of_death })
        } else if is_type::<pb::MemberJoined>(&event.event_type) {
            // household composition: the household's size (and who earns) changed.
            let joined: pb::MemberJoined = heard(event)?;
            (joined.household_id, Change::Circumstances)
        } else if is_type::<pb::MemberLeft>(&event.event_type) {
            let left: pb::MemberLeft = heard(event)?;
            (left.household_id, Change::Circumstances)
        } else {
            let changed: pb::CircumstanceChanged = heard(event)?;
            (changed.household_id, Change::Circumstances)
        };
        let case_ids: Vec<String> =
            sqlx::query_scalar("SELECT case_id FROM review_cases WHERE household_id = $1 AND status = 'approved' ORDER BY case_id")
                .bind(household_id.as_str())
                .fetch_all(self.state.log.store.pool())
                .await?;
        for case_id in case_ids {
            let command_id = format!("reassess-{}-{case_id}", event.event_id);
            if self.state.log.store.command_seen(&command_id).await? {
                continue;
            }
            let loaded = store::load(&self.state, &case_id).await?;
            let policy = store::evaluate(&self.state, &loaded.state).await?;
            let command = Reassess { on: today, change };
            self.decide_and_append(&loaded, CaseCommand::Reassess(command, policy), &command_id)
                .await?;
        }
        Ok(())
    }
}

impl Projection for CaseOpener {
    fn name(&self) -> &str {
        "review-case-opener"
    }

    fn react<'a>(&'a self, event: &'a RecordedEvent) -> HandlerFuture<'a> {
        Box::pin(async move {
            if event.stream_id.starts_with("review-") {
                return Ok(());
            }
            let event_type = event.event_type.as_str();
            // Only intake's household streams speak for households and their relations.
            let household = event.stream_id.starts_with("intake-household-");
            let reacted = if is_type::<pb::ApplicationSubmitted>(event_type) {
                self.open(event).await
            } else if is_type::<pb::VerificationAnswered>(event_type)
                || is_type::<pb::ObjectionReceived>(event_type)
                || (is_type::<pb::CheckReportIssued>(event_type)
                    && event.stream_id.starts_with("department-integration-check-"))
            {
                self.take_in(event).await
            } else if is_type::<pb::CircumstanceChanged>(event_type)
                || is_type::<pb::MemberDied>(event_type)
                || (household
                    && (is_type::<pb::MemberJoined>(event_type)
                        || is_type::<pb::MemberLeft>(event_type)))
            {
                self.reassess(event).await
            } else if household && is_type::<pb::RelativeOfOfficialFlagged>(event_type) {
                self.recuse(event).await
            } else if household && is_type::<pb::HouseholdMoved>(event_type) {
                self.follow(event).await
            } else {
                Ok(())
            };
            Ok(reacted?)
        })
    }

    fn apply<'a>(
        &'a self,
        connection: &'a mut AnyConnection,
        event: &'a RecordedEvent,
    ) -> HandlerFuture<'a> {
        Box::pin(async move {
            // The work list of open cases by org unit (advisory: commands always load the case).
            if !event.stream_id.starts_with("review-case-") {
                return Ok(());
            }
            let status = match CaseEvent::decode(&event.event_type, &event.payload)
                .map_err(ReactionError::from)?
            {
                CaseEvent::Opened(opened) => {
                    sqlx::query(
                        "INSERT INTO review_cases (case_id, household_id, hukou_org_unit_code, status) VALUES ($1, $2, $3, 'open') \
                         ON CONFLICT (case_id) DO NOTHING",
                    )
                    .bind(opened.case_id.as_str())
                    .bind(opened.household_id.as_str())
                    .bind(opened.hukou_org_unit_code.as_str())
                    .execute(&mut *connection)
                    .await?;
                    return Ok(());
                }
                CaseEvent::FollowedHousehold(followed) => {
                    sqlx::query(
                        "UPDATE review_cases SET hukou_org_unit_code = $1 WHERE case_id = $2",
                    )
                    .bind(followed.to_org_unit_code.as_str())
                    .bind(event.case_id.as_str())
                    .execute(&mut *connection)
                    .await?;
                    return Ok(());
                }
                CaseEvent::Approved(_) => "approved",
                // A rejection stays on the list until the refusal is notified.
                CaseEvent::Rejected(_) => "rejected",
                CaseEvent::RefusalNotified(_)
                | CaseEvent::Withdrawn(_)
                | CaseEvent::BenefitTerminated(_) => "closed",
                _ => return Ok(()),
            };
            sqlx::query("UPDATE review_cases SET status = $1 WHERE case_id = $2")
                .bind(status)
                .bind(event.case_id.as_str())
                .execute(&mut *connection)
                .await?;
            Ok(())
        })
    }

    fn reset<'a>(&'a self, connection: &'a mut AnyConnection) -> HandlerFuture<'a> {
        Box::pin(async move {
            sqlx::query("DELETE FROM review_cases")
                .execute(&mut *connection)
                .await?;
            Ok(())
        })
    }
}
