//! Subscriptions (`SubscribeEvents`) through gRPC, on PostgreSQL + NATS JetStream and on
//! SQLite and the in-process bus (issue 13, slice 3). Approved dibao households with a pupil (written as
//! intake and review would) make the linkage watch send education a notice each; beside them a
//! verification request addressed to education (a kind its registry entry does not receive)
//! and one to human resources (which does). Education subscribes following the log, takes
//! four events and drops the stream; resumes after the last position it received, catches up,
//! and receives the notices of households approved while it waits (the live tail): the union
//! is exactly education's notices in the log, each once, in log order, nothing else. Human
//! resources receives its verification request and no other department's; a department that
//! receives nothing receives nothing; asking for a kind outside the registry entry, another
//! district's token and an officer's are PERMISSION_DENIED; a page size of a million and
//! control characters are refused naming the field.

use std::time::Duration;

use futures::StreamExt as _;
use sunshine_eventlog::{
    Actor, EventMetadata, EventStore, ExpectedVersion, NewEvent, RecordedEvent, StreamId,
};
use sunshine_platform::Role;
use sunshine_proto::v1 as pb;
use sunshine_proto::v1::department_integration_service_client::DepartmentIntegrationServiceClient;
use sunshine_tests::approvals::{approved_household, member};
use sunshine_tests::events::is;
use sunshine_tests::{
    DISTRICT, RunningService, ScenarioBackends, TestAuth, VILLAGE, test_config, violated_fields,
    with_token,
};
use tonic::Code;
use tonic::transport::Channel;
use tonic_health::pb::health_check_response::ServingStatus;

const PATIENCE: Duration = Duration::from_secs(30);
const OTHER_DISTRICT: &str = "990102000000";

mod subscriptions {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn on_postgres_and_nats() -> anyhow::Result<()> {
        super::subscriptions(true).await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn on_sqlite_and_the_in_process_bus() -> anyhow::Result<()> {
        super::subscriptions(false).await
    }
}

fn department_token(auth: &TestAuth, department: &str, district: &str) -> String {
    auth.token_with(Role::Department, district, |claims| {
        claims.sub = format!("system-{department}");
        claims.department_code = Some(department.into());
    })
}

async fn log_when(
    store: &EventStore,
    done: impl Fn(&[RecordedEvent]) -> bool,
) -> anyhow::Result<Vec<RecordedEvent>> {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let log = store.read_log(0, 100_000).await?;
        if done(&log) {
            return Ok(log);
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "the log did not get there"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The log positions of the notices sent to `department`.
fn notices_of(log: &[RecordedEvent], department: &str) -> anyhow::Result<Vec<u64>> {
    let mut positions = Vec::new();
    for event in log
        .iter()
        .filter(|event| is::<pb::LinkageNoticeSent>(event))
    {
        let sent: pb::LinkageNoticeSent = prost::Message::decode(event.payload.as_slice())?;
        if sent.department_code == department {
            positions.push(event.log_position.unwrap_or_default());
        }
    }
    Ok(positions)
}

type Events = tonic::Streaming<pb::DepartmentEvent>;

async fn subscribe(
    client: &DepartmentIntegrationServiceClient<Channel>,
    token: &str,
    request: pb::SubscribeEventsRequest,
) -> Result<Events, tonic::Status> {
    let request =
        with_token(request, token).map_err(|error| tonic::Status::internal(error.to_string()))?;
    client
        .clone()
        .subscribe_events(request)
        .await
        .map(tonic::Response::into_inner)
}

async fn take(stream: &mut Events, count: usize) -> anyhow::Result<Vec<pb::DepartmentEvent>> {
    let mut taken = Vec::new();
    while taken.len() < count {
        let next = tokio::time::timeout(PATIENCE, stream.next()).await?;
        let Some(event) = next else {
            anyhow::bail!("the stream ended after {}", taken.len());
        };
        taken.push(event?);
    }
    Ok(taken)
}

async fn all(mut stream: Events) -> anyhow::Result<Vec<pb::DepartmentEvent>> {
    let mut taken = Vec::new();
    while let Some(event) = tokio::time::timeout(PATIENCE, stream.next()).await? {
        taken.push(event?);
    }
    Ok(taken)
}

/// A verification request to `department`, appended as the check would.
async fn verification_request(store: &EventStore, department: &str) -> anyhow::Result<()> {
    let check_id = uuid::Uuid::now_v7().to_string();
    let case_id = uuid::Uuid::now_v7().to_string();
    let sent = pb::VerificationRequestSent {
        check_id: check_id.clone(),
        case_id: case_id.clone(),
        department_code: department.into(),
        data_items: vec!["wages".into()],
        ..Default::default()
    };
    let metadata = EventMetadata {
        actor: Actor {
            subject: "scenario-boundary".into(),
            role: "system".into(),
            org_unit: String::new(),
            department_code: None,
        },
        ..EventMetadata::default()
    };
    store
        .append(
            &StreamId::new("department-integration", "check", &check_id)?,
            ExpectedVersion::NoStream,
            &metadata,
            vec![NewEvent::typed(case_id, &sent)],
        )
        .await?;
    Ok(())
}

async fn approve_with_pupil(store: &EventStore, count: usize) -> anyhow::Result<()> {
    for _ in 0..count {
        approved_household(
            store,
            VILLAGE,
            "dibao",
            vec![member((1985, 3, 1), ""), member((2016, 2, 2), "primary")],
        )
        .await?;
    }
    Ok(())
}

async fn subscriptions(cluster: bool) -> anyhow::Result<()> {
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
    let education = department_token(&auth, "education", DISTRICT);

    verification_request(&store, "education").await?;
    verification_request(&store, "human_resources").await?;
    approve_with_pupil(&store, 6).await?;
    let log = log_when(&store, |log| {
        notices_of(log, "education").is_ok_and(|notices| notices.len() == 6)
    })
    .await?;
    let first_six = notices_of(&log, "education")?;

    // Four, then the stream dropped.
    let following = pb::SubscribeEventsRequest {
        follow: true,
        page_size: 2,
        ..Default::default()
    };
    let mut stream = subscribe(&client, &education, following.clone()).await?;
    let mut received = take(&mut stream, 4).await?;
    drop(stream);
    let last = received.last().map(|event| event.log_position);
    // Resumed after the last position received: the two left, then the live tail.
    let mut resumed = subscribe(
        &client,
        &education,
        pb::SubscribeEventsRequest {
            after_position: last,
            ..following.clone()
        },
    )
    .await?;
    received.extend(take(&mut resumed, 2).await?);
    approve_with_pupil(&store, 4).await?;
    received.extend(take(&mut resumed, 4).await?);
    drop(resumed);
    let log = log_when(&store, |log| {
        notices_of(log, "education").is_ok_and(|notices| notices.len() == 10)
    })
    .await?;
    let expected = notices_of(&log, "education")?;
    assert_eq!(expected[..6], first_six[..]);
    let positions: Vec<u64> = received.iter().map(|event| event.log_position).collect();
    assert_eq!(
        positions, expected,
        "every event exactly once, in log order"
    );
    for event in &received {
        assert_eq!(event.kind, "linkage_notice");
        assert_eq!(event.program_code, "education_assistance");
        assert!(!event.reference.is_empty() && !event.case_id.is_empty());
    }
    // Without follow: the whole scope up to the end, then the stream ends.
    let everything =
        all(subscribe(&client, &education, pb::SubscribeEventsRequest::default()).await?).await?;
    assert_eq!(
        everything
            .iter()
            .map(|event| event.log_position)
            .collect::<Vec<_>>(),
        expected
    );
    // A limit per request.
    let limited = all(subscribe(
        &client,
        &education,
        pb::SubscribeEventsRequest {
            max_events: 3,
            follow: true,
            ..Default::default()
        },
    )
    .await?)
    .await?;
    assert_eq!(limited.len(), 3);

    // Human resources: its verification request only, not education's.
    let human_resources = department_token(&auth, "human_resources", DISTRICT);
    let requests = all(subscribe(
        &client,
        &human_resources,
        pb::SubscribeEventsRequest {
            kinds: vec!["verification_requested".into()],
            ..Default::default()
        },
    )
    .await?)
    .await?;
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].kind, "verification_requested");
    assert_eq!(requests[0].data_items, ["wages"]);
    // A department receiving no kind receives nothing.
    let water = department_token(&auth, "water_affairs", DISTRICT);
    assert!(
        all(subscribe(&client, &water, pb::SubscribeEventsRequest::default()).await?)
            .await?
            .is_empty()
    );

    // Refused: a kind outside the registry entry, another district, an officer.
    let outside = subscribe(
        &client,
        &education,
        pb::SubscribeEventsRequest {
            kinds: vec!["verification_requested".into()],
            ..Default::default()
        },
    )
    .await
    .expect_err("not education's kind");
    assert_eq!(outside.code(), Code::PermissionDenied);
    let elsewhere = department_token(&auth, "education", OTHER_DISTRICT);
    let other_district = subscribe(&client, &elsewhere, pb::SubscribeEventsRequest::default())
        .await
        .expect_err("another district");
    assert_eq!(other_district.code(), Code::PermissionDenied);
    let officer = subscribe(
        &client,
        &auth.token(Role::CenterReviewer, DISTRICT),
        pb::SubscribeEventsRequest::default(),
    )
    .await
    .expect_err("an officer");
    assert_eq!(officer.code(), Code::PermissionDenied);
    let hostile = subscribe(
        &client,
        &education,
        pb::SubscribeEventsRequest {
            kinds: vec!["linkage_notice\u{7}".into()],
            page_size: 1_000_000,
            ..Default::default()
        },
    )
    .await
    .expect_err("hostile");
    assert_eq!(hostile.code(), Code::InvalidArgument);
    assert_eq!(violated_fields(&hostile), ["kinds[0]", "page_size"]);
    service.stop().await?;
    Ok(())
}
