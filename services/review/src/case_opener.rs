//! The review service's reactions to other services' events: it opens a case (`CaseOpened` on
//! `review-case-<case id>`) for every application intake routes to review or emergency
//! assistance, and takes departments' verification answers and the public's objections into
//! the case. Each reaction appends under a command id, so a redelivery changes nothing.

use prost::Message as _;
use sqlx::AnyConnection;
use sunshine_eventlog::consumer::{HandlerError, HandlerFuture, Projection};
use sunshine_eventlog::{Actor, EventMetadata, ExpectedVersion, NewEvent, RecordedEvent, StreamId};
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
            accepted_by: event
                .metadata()
                .map(|metadata| metadata.actor.subject)
                .unwrap_or_default(),
            accepted_on: submitted
                .accepted_on
                .or_else(|| Some(crate::case::proto_date(local_date(event.recorded_at_us)))),
            // Filled from intake's flags by the recusal fix (issue 9, item 11).
            recused_subjects: Vec::new(),
        };
        let stream = StreamId::new("review", "case", &submitted.case_id).map_err(handler_error)?;
        let metadata = EventMetadata {
            actor: system_actor(),
            command_id: Some(format!("open-case-{}", submitted.application_id)),
            causation_id: Some(event.event_id.to_string()),
            ..EventMetadata::default()
        };
        let new_event = NewEvent::new(
            submitted.case_id.clone(),
            "sunshine.v1.CaseOpened",
            1,
            opened.encode_to_vec(),
        );
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
            "sunshine.v1.VerificationAnswered" => {
                let answer = pb::VerificationAnswered::decode(event.payload.as_slice())
                    .map_err(handler_error)?;
                loaded
                    .state
                    .answer_verification(answer)
                    .map_err(handler_error)?
            }
            "sunshine.v1.ObjectionReceived" => {
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
            "sunshine.v1.CircumstanceChanged" => {
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
        let cause = if event.event_type == "sunshine.v1.MemberDied" {
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
                "sunshine.v1.ApplicationSubmitted" => self.open(event).await,
                "sunshine.v1.VerificationAnswered" | "sunshine.v1.ObjectionReceived" => {
                    self.take_in(event).await
                }
                "sunshine.v1.CircumstanceChanged" | "sunshine.v1.MemberDied" => {
                    self.reassess(event).await
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
            if event.event_type == "sunshine.v1.CaseOpened" {
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
            } else if let Some(status) = match event.event_type.as_str() {
                "sunshine.v1.CaseApproved" => Some("approved"),
                // A rejection stays on the list until the refusal is notified.
                "sunshine.v1.CaseRejected" => Some("rejected"),
                "sunshine.v1.RefusalNotified"
                | "sunshine.v1.CaseWithdrawn"
                | "sunshine.v1.BenefitTerminated" => Some("closed"),
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
