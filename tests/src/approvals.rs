//! A household registered and its case approved, written to the log as intake and review
//! would write them (their own walks are their own tests): what department integration's
//! linkage watch hears. The members carry no personal data (sealed fields empty); only the
//! plain facts a linkage rule reads (birth date, school stage).

use sunshine_eventlog::{Actor, EventMetadata, EventStore, ExpectedVersion, NewEvent, StreamId};
use sunshine_proto::events::TypedEvent;
use sunshine_proto::v1 as pb;

fn metadata() -> EventMetadata {
    EventMetadata {
        actor: Actor {
            subject: "scenario-boundary".into(),
            role: "system".into(),
            org_unit: String::new(),
            department_code: None,
        },
        ..EventMetadata::default()
    }
}

async fn append(store: &EventStore, stream: &str, events: Vec<NewEvent>) -> anyhow::Result<()> {
    let stream = StreamId::parse(stream)?;
    store
        .append(&stream, ExpectedVersion::NoStream, &metadata(), events)
        .await?;
    Ok(())
}

fn new_event(case_id: &str, event: &impl TypedEvent) -> NewEvent {
    NewEvent::typed(case_id, event)
}

/// A member born on `birth` (year, month, day), in school (`school_stage`) or not.
pub fn member(birth: (i32, i32, i32), school_stage: &str) -> pb::SealedMember {
    pb::SealedMember {
        member_id: uuid::Uuid::now_v7().to_string(),
        birth_date: Some(pb::Date {
            year: birth.0,
            month: birth.1,
            day: birth.2,
        }),
        school_stage: school_stage.into(),
        ..pb::SealedMember::default()
    }
}

/// Registers a household of `members` in `village` and approves its case of `program`: the
/// household and case ids.
pub async fn approved_household(
    store: &EventStore,
    village: &str,
    program: &str,
    members: Vec<pb::SealedMember>,
) -> anyhow::Result<(String, String)> {
    let household_id = uuid::Uuid::now_v7().to_string();
    let case_id = uuid::Uuid::now_v7().to_string();
    let registered = pb::HouseholdRegistered {
        household_id: household_id.clone(),
        hukou_org_unit_code: village.into(),
        members,
        ..pb::HouseholdRegistered::default()
    };
    append(
        store,
        &format!("intake-household-{household_id}"),
        vec![new_event(&household_id, &registered)],
    )
    .await?;
    let opened = pb::CaseOpened {
        case_id: case_id.clone(),
        application_id: uuid::Uuid::now_v7().to_string(),
        household_id: household_id.clone(),
        program_code: program.into(),
        workflow: "means_tested_review".into(),
        accepted_org_unit_code: village.into(),
        hukou_org_unit_code: village.into(),
        ..pb::CaseOpened::default()
    };
    let approved = pb::CaseApproved {
        case_id: case_id.clone(),
        program_code: program.into(),
        monthly_amount: Some(pb::Money { fen: 80_000 }),
        start_month: "2026-10".into(),
        ..pb::CaseApproved::default()
    };
    append(
        store,
        &format!("review-case-{case_id}"),
        vec![new_event(&case_id, &opened), new_event(&case_id, &approved)],
    )
    .await?;
    Ok((household_id, case_id))
}
