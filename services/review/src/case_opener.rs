//! Opens a review case for every application routed to the district center or to emergency
//! assistance: reacts to intake's `ApplicationSubmitted` and appends `CaseOpened` to its own
//! stream `review-case-<case id>`. The command id makes redelivery harmless.

use prost::Message as _;
use sqlx::AnyConnection;
use sunshine_eventlog::consumer::{HandlerError, HandlerFuture, Projection};
use sunshine_eventlog::{
    Actor, EventMetadata, EventStore, ExpectedVersion, NewEvent, RecordedEvent, StreamId,
};
use sunshine_proto::v1 as pb;

/// The local (UTC+8) date of an instant in microseconds.
fn accepted_on(recorded_at_us: i64) -> pb::Date {
    let instant = time::OffsetDateTime::from_unix_timestamp(recorded_at_us.div_euclid(1_000_000))
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
        + time::Duration::hours(8);
    crate::case::proto_date(instant.date())
}

/// The consumer that opens cases.
#[derive(Debug, Clone)]
pub struct CaseOpener {
    pub store: EventStore,
}

impl CaseOpener {
    async fn open(&self, event: &RecordedEvent) -> Result<(), HandlerError> {
        if event.event_type != "sunshine.v1.ApplicationSubmitted" {
            return Ok(());
        }
        let submitted = pb::ApplicationSubmitted::decode(event.payload.as_slice())
            .map_err(|error| HandlerError(error.to_string()))?;
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
            accepted_on: Some(accepted_on(event.recorded_at_us)),
        };
        let stream = StreamId::new("review", "case", &submitted.case_id)
            .map_err(|error| HandlerError(error.to_string()))?;
        let metadata = EventMetadata {
            actor: Actor {
                subject: "review-case-opener".into(),
                role: "system".into(),
                org_unit: String::new(),
                department_code: None,
            },
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
        self.store
            .append(
                &stream,
                ExpectedVersion::NoStream,
                &metadata,
                vec![new_event],
            )
            .await
            .map_err(|error| HandlerError(error.to_string()))?;
        Ok(())
    }
}

impl Projection for CaseOpener {
    fn name(&self) -> &str {
        "review-case-opener"
    }

    fn subject_filter(&self) -> &str {
        "intake.>"
    }

    fn react<'a>(&'a self, event: &'a RecordedEvent) -> HandlerFuture<'a> {
        Box::pin(self.open(event))
    }

    fn apply<'a>(
        &'a self,
        _connection: &'a mut AnyConnection,
        _event: &'a RecordedEvent,
    ) -> HandlerFuture<'a> {
        Box::pin(async { Ok(()) })
    }

    fn reset<'a>(&'a self, _connection: &'a mut AnyConnection) -> HandlerFuture<'a> {
        // Cases are events, not a table: nothing to reset; replays are answered as retries.
        Box::pin(async { Ok(()) })
    }
}
