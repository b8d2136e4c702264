//! The review service's reactions to other services' events: it opens a case (`CaseOpened` on
//! `review-case-<case id>`) for every application intake routes to review or emergency
//! assistance, with the officials recused from it (intake's `RelativeOfOfficialFlagged` of the
//! same case, appended with the application); records a recusal flagged later
//! (`OfficialRecused`); moves the household's cases when it moves (`CaseFollowedHousehold`);
//! and takes departments' verification answers and the public's objections into the case.
//! Each reaction appends under a command id derived from the event it reacts to, so a
//! redelivery changes nothing. Reactions run inside the consumer's span, a child of the trace
//! context stored with the event; the store writes its append span's context into what it
//! appends, so `CaseOpened` and the rest continue the trace of the call that caused them.

use prost::Message as _;
use sqlx::AnyConnection;
use sunshine_eventlog::consumer::{HandlerError, HandlerFuture, Projection};
use sunshine_eventlog::{ExpectedVersion, NewEvent, StreamId};
use sunshine_evidence::record::{Actor, EventMetadata, RecordedEvent};
use sunshine_proto::events::Event as _;
use sunshine_proto::v1 as pb;
use time::Date;

use crate::api::{ReviewState, append_case_events, load_case};
use crate::case::CaseEvent;

/// The local (UTC+8) date of an instant in microseconds.
fn local_date(recorded_at_us: i64) -> Date {
    let instant = time::OffsetDateTime::from_unix_timestamp(recorded_at_us.div_euclid(1_000_000))
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
        + time::Duration::hours(8);
    instant.date()
}

fn system_actor() -> Actor {
    Actor {
        subject: "review-service".into(),
        role: "system".into(),
        org_unit: String::new(),
        department_code: None,
    }
}

fn handler_error(error: impl std::fmt::Display) -> HandlerError {
    HandlerError(error.to_string())
}

/// The consumer that opens cases and takes answers and objections in.
#[derive(Debug, Clone)]
pub struct CaseOpener {
    pub state: ReviewState,
}

impl CaseOpener {
    async fn open(&self, event: &RecordedEvent) -> Result<(), HandlerError> {
        let submitted =
            pb::ApplicationSubmitted::decode(event.payload.as_slice()).map_err(handler_error)?;
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
        let stream = StreamId::new("review", "case", &submitted.case_id).map_err(handler_error)?;
        let metadata = EventMetadata {
            actor: system_actor(),
            command_id: Some(format!("open-case-{}", submitted.application_id)),
            causation_id: Some(event.event_id.to_string()),
            ..EventMetadata::default()
        };
        let new_event = NewEvent::typed(submitted.case_id.clone(), &opened);
        // On the open-case list before the case exists, so the deadline watch never misses a case
        // it could see; it skips rows whose case is not (yet) in the log. The projection writes
        // the same row from the log (rebuilds).
        sqlx::query(
            "INSERT INTO review_cases (case_id, household_id, hukou_org_unit_code, status) VALUES ($1, $2, $3, 'open') \
             ON CONFLICT (case_id) DO NOTHING",
        )
        .bind(opened.case_id.as_str())
        .bind(opened.household_id.as_str())
        .bind(opened.hukou_org_unit_code.as_str())
        .execute(self.state.log.store.pool())
        .await?;
        self.state
            .log
            .store
            .append(
                &stream,
                ExpectedVersion::NoStream,
                &metadata,
                vec![new_event],
            )
            .await
            .map_err(handler_error)?;
        Ok(())
    }

    /// The officials intake flagged for this case: its `RelativeOfOfficialFlagged` events,
    /// appended to the household's stream in the same append as the application.
    async fn flagged_officials(
        &self,
        event: &RecordedEvent,
        submitted: &pb::ApplicationSubmitted,
    ) -> Result<Vec<String>, HandlerError> {
        let mut officials = std::collections::BTreeSet::new();
        for stored in self
            .state
            .log
            .store
            .read_case(&submitted.case_id)
            .await
            .map_err(handler_error)?
        {
            if stored.stream_id != event.stream_id
                || stored.event_type != pb::RelativeOfOfficialFlagged::TYPE
            {
                continue;
            }
            let flagged = pb::RelativeOfOfficialFlagged::decode(stored.payload.as_slice())
                .map_err(handler_error)?;
            if flagged.case_id == submitted.case_id && !flagged.official_subject.is_empty() {
                officials.insert(flagged.official_subject);
            }
        }
        Ok(officials.into_iter().collect())
    }

    /// A relation flagged for a case that is already open (a flag appended with the application
    /// was taken in when the case opened, and changes nothing here).
    async fn recuse(&self, event: &RecordedEvent) -> Result<(), HandlerError> {
        let flagged = pb::RelativeOfOfficialFlagged::decode(event.payload.as_slice())
            .map_err(handler_error)?;
        if flagged.official_subject.is_empty() {
            tracing::warn!(
                case_id = %flagged.case_id,
                registration_id = %flagged.registration_id,
                "a relative-of-official flag without the official's subject: nobody can be recused"
            );
            return Ok(());
        }
        let loaded = match load_case(&self.state, &flagged.case_id).await {
            Ok(loaded) => loaded,
            // Not a review case (routed to a department), or not opened: nothing to recuse.
            Err(sunshine_platform::ApiError::NotFound { .. }) => return Ok(()),
            Err(error) => return Err(handler_error(error)),
        };
        let events = loaded
            .state
            .recuse(&flagged.official_subject, &flagged.registration_id);
        if events.is_empty() {
            return Ok(());
        }
        append_case_events(
            &self.state,
            &flagged.case_id,
            loaded.version,
            system_actor(),
            &format!("recuse-{}", event.event_id),
            &events,
        )
        .await
        .map_err(handler_error)?;
        Ok(())
    }

    /// The household moved: each of its cases that is not closed follows it to the new org
    /// unit. The work list is updated at once, so the new village sees the case and the old
    /// one does not (the projection writes the same from the log).
    async fn follow(&self, event: &RecordedEvent) -> Result<(), HandlerError> {
        let moved = pb::HouseholdMoved::decode(event.payload.as_slice()).map_err(handler_error)?;
        let to =
            sunshine_domain::OrgUnitCode::parse(&moved.to_org_unit_code).map_err(handler_error)?;
        let case_ids: Vec<String> = sqlx::query_scalar(
            "SELECT case_id FROM review_cases WHERE household_id = $1 AND status IN ('open', 'approved', 'rejected') ORDER BY case_id",
        )
        .bind(moved.household_id.as_str())
        .fetch_all(self.state.log.store.pool())
        .await?;
        for case_id in case_ids {
            let loaded = match load_case(&self.state, &case_id).await {
                Ok(loaded) => loaded,
                Err(sunshine_platform::ApiError::NotFound { .. }) => continue,
                Err(error) => return Err(handler_error(error)),
            };
            let events = loaded.state.follow_household(&moved.household_id, &to);
            if !events.is_empty() {
                append_case_events(
                    &self.state,
                    &case_id,
                    loaded.version,
                    system_actor(),
                    &format!("follow-{}-{case_id}", event.event_id),
                    &events,
                )
                .await
                .map_err(handler_error)?;
            }
            sqlx::query("UPDATE review_cases SET hukou_org_unit_code = $1 WHERE case_id = $2")
                .bind(to.as_str())
                .bind(case_id.as_str())
                .execute(self.state.log.store.pool())
                .await?;
        }
        Ok(())
    }

    /// A department's answer or a public objection, from that service's own stream.
    async fn take_in(&self, event: &RecordedEvent) -> Result<(), HandlerError> {
        let command_id = format!("take-in-{}", event.event_id);
        if self
            .state
            .log
            .store
            .command_seen(&command_id)
            .await
            .map_err(handler_error)?
        {
            return Ok(());
        }
        let loaded = load_case(&self.state, &event.case_id)
            .await
            .map_err(handler_error)?;
        let events: Vec<CaseEvent> = match event.event_type.as_str() {
            pb::VerificationAnswered::TYPE => {
                let answer = pb::VerificationAnswered::decode(event.payload.as_slice())
                    .map_err(handler_error)?;
                loaded
                    .state
                    .answer_verification(answer)
                    .map_err(handler_error)?
            }
            pb::ObjectionReceived::TYPE => {
                let objection = pb::ObjectionReceived::decode(event.payload.as_slice())
                    .map_err(handler_error)?;
                loaded
                    .state
                    .receive_objection(objection)
                    .map_err(handler_error)?
            }
            _ => return Ok(()),
        };
        append_case_events(
            &self.state,
            &event.case_id,
            loaded.version,
            system_actor(),
            &command_id,
            &events,
        )
        .await
        .map_err(handler_error)?;
        Ok(())
    }
}

impl CaseOpener {
    /// Dynamic management: a household's change or a death re-evaluates its running benefits.
    async fn reassess(&self, event: &RecordedEvent) -> Result<(), HandlerError> {
        let household_id = match event.event_type.as_str() {
            pb::CircumstanceChanged::TYPE => {
                pb::CircumstanceChanged::decode(event.payload.as_slice())
                    .map_err(handler_error)?
                    .household_id
            }
            _ => {
                pb::MemberDied::decode(event.payload.as_slice())
                    .map_err(handler_error)?
                    .household_id
            }
        };
        let cause = if event.event_type == pb::MemberDied::TYPE {
            "member died"
        } else {
            "change of circumstances"
        };
        let case_ids: Vec<String> =
            sqlx::query_scalar("SELECT case_id FROM review_cases WHERE household_id = $1 AND status = 'approved' ORDER BY case_id")
                .bind(household_id.as_str())
                .fetch_all(self.state.log.store.pool())
                .await?;
        for case_id in case_ids {
            let command_id = format!("reassess-{}-{case_id}", event.event_id);
            if self
                .state
                .log
                .store
                .command_seen(&command_id)
                .await
                .map_err(handler_error)?
            {
                continue;
            }
            let loaded = load_case(&self.state, &case_id)
                .await
                .map_err(handler_error)?;
            let policy = crate::api::evaluate_case(&self.state, &loaded)
                .await
                .map_err(handler_error)?;
            let events = loaded
                .state
                .reassess(self.state.clock.today(), policy, cause);
            if !events.is_empty() {
                append_case_events(
                    &self.state,
                    &case_id,
                    loaded.version,
                    system_actor(),
                    &command_id,
                    &events,
                )
                .await
                .map_err(handler_error)?;
            }
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
            match event.event_type.as_str() {
                pb::ApplicationSubmitted::TYPE => self.open(event).await,
                pb::VerificationAnswered::TYPE | pb::ObjectionReceived::TYPE => {
                    self.take_in(event).await
                }
                pb::CircumstanceChanged::TYPE | pb::MemberDied::TYPE => self.reassess(event).await,
                // Only intake's household streams speak for households and their relations.
                pb::RelativeOfOfficialFlagged::TYPE
                    if event.stream_id.starts_with("intake-household-") =>
                {
                    self.recuse(event).await
                }
                pb::HouseholdMoved::TYPE if event.stream_id.starts_with("intake-household-") => {
                    self.follow(event).await
                }
                _ => Ok(()),
            }
        })
    }

    fn apply<'a>(
        &'a self,
        connection: &'a mut AnyConnection,
        event: &'a RecordedEvent,
    ) -> HandlerFuture<'a> {
        Box::pin(async move {
            // The work list of open cases by org unit (advisory: commands always load the case).
            if event.event_type == pb::CaseOpened::TYPE {
                let opened =
                    pb::CaseOpened::decode(event.payload.as_slice()).map_err(handler_error)?;
                sqlx::query(
                    "INSERT INTO review_cases (case_id, household_id, hukou_org_unit_code, status) VALUES ($1, $2, $3, 'open') \
                     ON CONFLICT (case_id) DO NOTHING",
                )
                .bind(opened.case_id.as_str())
                .bind(opened.household_id.as_str())
                .bind(opened.hukou_org_unit_code.as_str())
                .execute(&mut *connection)
                .await?;
            } else if event.event_type == pb::CaseFollowedHousehold::TYPE {
                let followed = pb::CaseFollowedHousehold::decode(event.payload.as_slice())
                    .map_err(handler_error)?;
                sqlx::query("UPDATE review_cases SET hukou_org_unit_code = $1 WHERE case_id = $2")
                    .bind(followed.to_org_unit_code.as_str())
                    .bind(event.case_id.as_str())
                    .execute(&mut *connection)
                    .await?;
            } else if let Some(status) = match event.event_type.as_str() {
                pb::CaseApproved::TYPE => Some("approved"),
                // A rejection stays on the list until the refusal is notified.
                pb::CaseRejected::TYPE => Some("rejected"),
                pb::RefusalNotified::TYPE
                | pb::CaseWithdrawn::TYPE
                | pb::BenefitTerminated::TYPE => Some("closed"),
                _ => None,
            } {
                sqlx::query("UPDATE review_cases SET status = $1 WHERE case_id = $2")
                    .bind(status)
                    .bind(event.case_id.as_str())
                    .execute(&mut *connection)
                    .await?;
            }
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
