//! The review service's reactions to other services' events: it opens a case (`CaseOpened` on
//! `review-case-<case id>`) for every application intake routes to review or emergency
//! assistance, with the officials recused from it (intake's `RelativeOfOfficialFlagged` of the
//! same case, appended with the application); records a recusal flagged later
//! (`OfficialRecused`); moves the household's cases when it moves (`CaseFollowedHousehold`);
//! and takes departments' verification answers and the public's objections into the case.
//! Each reaction appends under a command id derived from the event it reacts to, so a
//! redelivery changes nothing.

use prost::Message as _;
use sqlx::AnyConnection;
use sunshine_eventlog::consumer::{HandlerError, HandlerFuture, Projection};
use sunshine_eventlog::{Actor, EventMetadata, ExpectedVersion, NewEvent, RecordedEvent, StreamId};
use sunshine_proto::v1 as pb;
use time::Date;

use crate::api::{ReviewState, append_case_events, load_case};
use crate::case::CaseEvent;
use crate::events::{SCHEMA_VERSION, is_type};

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
        let opened = CaseEvent::Opened(opened);
        let new_event = NewEvent::new(
            submitted.case_id.clone(),
            opened.event_type(),
            SCHEMA_VERSION,
            opened.encode(),
        );
        // On the open-case list before the case exists, so the deadline watch never misses a case
        // it could see; it skips rows whose case is not (yet) in the log. The projection writes
        // the same row from the log (rebuilds).
        sqlx::query(
            "INSERT INTO review_cases (case_id, household_id, hukou_org_unit_code, status) VALUES ($1, $2, $3, 'open') \
             ON CONFLICT (case_id) DO NOTHING",
        )
        .bind(submitted.case_id.as_str())
        .bind(submitted.household_id.as_str())
        .bind(submitted.hukou_org_unit_code.as_str())
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
                || !is_type::<pb::RelativeOfOfficialFlagged>(&stored.event_type)
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
        let events: Vec<CaseEvent> = if is_type::<pb::VerificationAnswered>(&event.event_type) {
            let answer = pb::VerificationAnswered::decode(event.payload.as_slice())
                .map_err(handler_error)?;
            loaded
                .state
                .answer_verification(answer)
                .map_err(handler_error)?
        } else if is_type::<pb::ObjectionReceived>(&event.event_type) {
            let objection =
                pb::ObjectionReceived::decode(event.payload.as_slice()).map_err(handler_error)?;
            loaded
                .state
                .receive_objection(objection)
                .map_err(handler_error)?
        } else {
            return Ok(());
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
        let died = is_type::<pb::MemberDied>(&event.event_type);
        let household_id = if died {
            pb::MemberDied::decode(event.payload.as_slice())
                .map_err(handler_error)?
                .household_id
        } else {
            pb::CircumstanceChanged::decode(event.payload.as_slice())
                .map_err(handler_error)?
                .household_id
        };
        let cause = if died {
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
            let event_type = event.event_type.as_str();
            // Only intake's household streams speak for households and their relations.
            let household = event.stream_id.starts_with("intake-household-");
            if is_type::<pb::ApplicationSubmitted>(event_type) {
                self.open(event).await
            } else if is_type::<pb::VerificationAnswered>(event_type)
                || is_type::<pb::ObjectionReceived>(event_type)
            {
                self.take_in(event).await
            } else if is_type::<pb::CircumstanceChanged>(event_type)
                || is_type::<pb::MemberDied>(event_type)
            {
                self.reassess(event).await
            } else if household && is_type::<pb::RelativeOfOfficialFlagged>(event_type) {
                self.recuse(event).await
            } else if household && is_type::<pb::HouseholdMoved>(event_type) {
                self.follow(event).await
            } else {
                Ok(())
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
            if !event.stream_id.starts_with("review-case-") {
                return Ok(());
            }
            let status = match CaseEvent::decode(&event.event_type, &event.payload)
                .map_err(handler_error)?
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
