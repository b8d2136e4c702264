//! Duplicate assistance across departments through gRPC, on PostgreSQL + NATS JetStream and on
//! SQLite + the in-process bus (issue 13). Education and the charity federation both run
//! education assistance: their living allowances (cash) to the same pupil over overlapping
//! months are one `DuplicateAssistanceDetected` — the two records, the two departments, the
//! overlap, the person by the service's person index only — listed in the district center's
//! `ListDuplicateAssistance`. Pushed again (both sides) → no second event. Non-overlapping
//! periods, or different kinds (a fee exemption beside a subsidy), → none. Hostile readers (a
//! department's token, another district's center, a page size of a million, a forged page
//! token) are refused.

use std::time::Duration;

use sunshine_eventlog::{EventStore, RecordedEvent};
use sunshine_platform::Role;
use sunshine_proto::v1 as pb;
use sunshine_proto::v1::department_integration_service_client::DepartmentIntegrationServiceClient;
use sunshine_tests::events::{decoded, is};
use sunshine_tests::households::national_id;
use sunshine_tests::{
    DISTRICT, RunningService, ScenarioBackends, TestAuth, test_config, violated_fields, with_token,
};
use tonic::Code;
use tonic::transport::Channel;
use tonic_health::pb::health_check_response::ServingStatus;

const PATIENCE: Duration = Duration::from_secs(30);
const OTHER_DISTRICT: &str = "990102000000";

mod duplicate_assistance {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn on_postgres_and_nats() -> anyhow::Result<()> {
        super::duplicate_assistance(true).await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn on_sqlite_and_the_in_process_bus() -> anyhow::Result<()> {
        super::duplicate_assistance(false).await
    }
}

fn department_token(auth: &TestAuth, department: &str) -> String {
    auth.token_with(Role::Department, DISTRICT, |claims| {
        claims.sub = format!("system-{department}");
        claims.department_code = Some(department.into());
    })
}

fn pupil(i: u32) -> String {
    national_id("20100301", 200 + i)
}

fn allowance(
    record_id: &str,
    pupil_no: u32,
    kind: &str,
    start: &str,
    end: &str,
) -> pb::AssistanceRecord {
    pb::AssistanceRecord {
        record_id: record_id.into(),
        national_id: pupil(pupil_no),
        program_code: "education_assistance".into(),
        kind: kind.into(),
        amount: Some(pb::Money { fen: 50_000 }),
        period_start: start.into(),
        period_end: end.into(),
    }
}

async fn push(
    client: &DepartmentIntegrationServiceClient<Channel>,
    token: &str,
    command_id: &str,
    records: Vec<pb::AssistanceRecord>,
) -> anyhow::Result<pb::PushAssistanceRecordsResponse> {
    let request = pb::PushAssistanceRecordsRequest {
        command_id: command_id.into(),
        records,
    };
    Ok(client
        .clone()
        .push_assistance_records(with_token(request, token)?)
        .await?
        .into_inner())
}

async fn list(
    client: &DepartmentIntegrationServiceClient<Channel>,
    token: &str,
    page: Option<pb::PageRequest>,
) -> Result<pb::ListDuplicateAssistanceResponse, tonic::Status> {
    let request = with_token(pb::ListDuplicateAssistanceRequest { page }, token)
        .map_err(|error| tonic::Status::internal(error.to_string()))?;
    client
        .clone()
        .list_duplicate_assistance(request)
        .await
        .map(tonic::Response::into_inner)
}

/// The log once `ready` holds of it.
async fn log_when(
    store: &EventStore,
    ready: impl Fn(&[RecordedEvent]) -> bool,
) -> anyhow::Result<Vec<RecordedEvent>> {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let log = store.read_log(0, 100_000).await?;
        if ready(&log) {
            return Ok(log);
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "the log never got there"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn detections(log: &[RecordedEvent]) -> usize {
    log.iter()
        .filter(|event| is::<pb::DuplicateAssistanceDetected>(event))
        .count()
}

async fn duplicate_assistance(cluster: bool) -> anyhow::Result<()> {
    let auth = TestAuth::new()?;
    let backends = ScenarioBackends::start(cluster).await?;
    let config = test_config(&auth, backends.database_url(), backends.bus_url());
    let service = RunningService::start(
        sunshine_department_integration::SERVICE_NAME,
        backends.service_config(&config, sunshine_department_integration::SERVICE_NAME),
        sunshine_department_integration::run_sharing_process,
    )
    .await?;
    service
        .wait_for_health(ServingStatus::Serving, PATIENCE)
        .await?;
    let database = sunshine_platform::backends::Database::connect(
        &sunshine_platform::config::DatabaseConfig {
            url: backends.database_url(),
            ..Default::default()
        },
    )
    .await?;
    let store = EventStore::from_database(&database);
    let client = DepartmentIntegrationServiceClient::new(service.channel().await?);
    let education = department_token(&auth, "education");
    let charity = department_token(&auth, "charity_federation");
    let center = auth.token(Role::CenterReviewer, DISTRICT);

    // Education: living allowances to pupils 0 and 1, a fee exemption to pupil 2.
    let education_records = vec![
        allowance("edu-la-0", 0, "cash", "2026-09", "2027-06"),
        allowance("edu-la-1", 1, "cash", "2026-09", "2027-06"),
        allowance("edu-fee-2", 2, "fee_exemption", "2026-09", "2027-06"),
    ];
    let first = push(&client, &education, "edu-1", education_records.clone()).await?;
    assert_eq!(first.stored, 3);
    assert!(list(&client, &center, None).await?.items.is_empty());

    // The charity federation: pupil 0's allowance overlaps Jan–Jun 2027; pupil 1's starts
    // after education's ends; pupil 2 gets a subsidy, another kind.
    let charity_records = vec![
        allowance("cf-la-0", 0, "cash", "2027-01", "2027-12"),
        allowance("cf-la-1", 1, "cash", "2027-07", "2027-12"),
        allowance("cf-sub-2", 2, "subsidy", "2026-09", "2027-06"),
    ];
    let second = push(&client, &charity, "cf-1", charity_records.clone()).await?;
    assert_eq!(second.stored, 3);

    let listed = list(&client, &center, None).await?;
    assert_eq!(listed.items.len(), 1, "{listed:?}");
    let item = &listed.items[0];
    let first_side = item.first.clone().unwrap_or_default();
    let second_side = item.second.clone().unwrap_or_default();
    assert_eq!(
        (
            first_side.department_code.as_str(),
            first_side.record_id.as_str()
        ),
        ("charity_federation", "cf-la-0")
    );
    assert_eq!(
        (
            second_side.department_code.as_str(),
            second_side.record_id.as_str()
        ),
        ("education", "edu-la-0")
    );
    assert_eq!(
        (
            item.overlap_start.as_str(),
            item.overlap_end.as_str(),
            item.overlap_months
        ),
        ("2027-01", "2027-06", 6)
    );
    assert_eq!(item.kind, "cash");
    assert_eq!(item.person_index.len(), 64);

    let log = log_when(&store, |log| detections(log) == 1).await?;
    let detected: Vec<pb::DuplicateAssistanceDetected> = decoded(&log)?;
    assert_eq!(detected[0].duplicate_id, item.duplicate_id);
    assert_eq!(detected[0].detected_on_push_of, "charity_federation");
    for event in &log {
        for i in 0..3 {
            let id = pupil(i);
            assert!(
                !event.payload.windows(id.len()).any(|w| w == id.as_bytes()),
                "an id number in plain in {}",
                event.event_type
            );
        }
    }

    // Pushed again, by both (new command ids): unchanged, and no second detection.
    let again = push(&client, &charity, "cf-2", charity_records).await?;
    assert_eq!(again.unchanged, 3);
    let again = push(&client, &education, "edu-2", education_records).await?;
    assert_eq!(again.unchanged, 3);
    // A marker push after the repeats: once it is on the log, so is anything they appended.
    push(
        &client,
        &education,
        "edu-3",
        vec![allowance("edu-la-9", 9, "cash", "2026-09", "2026-12")],
    )
    .await?;
    let log = log_when(&store, |log| {
        decoded::<pb::AssistanceRecordsPushed>(log).is_ok_and(|pushed| pushed.len() == 3)
    })
    .await?;
    assert_eq!(detections(&log), 1, "a repeat found the pair again");
    assert_eq!(list(&client, &center, None).await?.items.len(), 1);

    // Readers: the center's approvers and auditors read it; a department, another district's
    // center, a page size of a million and a forged token are refused.
    for role in [Role::CenterApprover, Role::Auditor] {
        assert_eq!(
            list(&client, &auth.token(role, DISTRICT), None)
                .await?
                .items
                .len(),
            1
        );
    }
    let refused = list(&client, &education, None)
        .await
        .expect_err("a department");
    assert_eq!(refused.code(), Code::PermissionDenied);
    let elsewhere = auth.token(Role::CenterReviewer, OTHER_DISTRICT);
    let refused = list(&client, &elsewhere, None)
        .await
        .expect_err("another district");
    assert_eq!(refused.code(), Code::PermissionDenied);
    let huge = list(
        &client,
        &center,
        Some(pb::PageRequest {
            page_size: 1_000_000,
            page_token: String::new(),
        }),
    )
    .await
    .expect_err("a page of a million");
    assert_eq!(huge.code(), Code::InvalidArgument);
    assert_eq!(violated_fields(&huge), ["page.page_size"]);
    let forged = list(
        &client,
        &center,
        Some(pb::PageRequest {
            page_size: 1,
            page_token: "x' OR 1=1 --\u{7}".into(),
        }),
    )
    .await
    .expect_err("a forged token");
    assert_eq!(violated_fields(&forged), ["page.page_token"]);
    Ok(())
}
