//! Linkage notices through gRPC, on PostgreSQL + NATS JetStream and on SQLite + the in-process
//! bus (issue 13, slice 3). Review approves a dibao household with a school-age child (written
//! to the log as intake and review would): the linkage watch sends education, health and
//! justice one notice each; a 特困 household without children reaches health and justice only.
//! Education acknowledges its notice (LinkageNoticeAcknowledged on the log, the list shows
//! it); the unacknowledged stay visible to the center. Hostile cases: another department
//! acknowledging education's notice reads like one that does not exist (NOT_FOUND); the
//! acknowledgement retried answers as first, and with other content is refused on command_id;
//! a second acknowledgement is FAILED_PRECONDITION; a page size of a million and control
//! characters are refused naming the field.

use std::time::Duration;

use sunshine_eventlog::{EventStore, RecordedEvent};
use sunshine_platform::Role;
use sunshine_proto::v1 as pb;
use sunshine_proto::v1::department_integration_service_client::DepartmentIntegrationServiceClient;
use sunshine_tests::approvals::{approved_household, member};
use sunshine_tests::events::{decoded, is};
use sunshine_tests::{
    DISTRICT, RunningService, ScenarioBackends, TestAuth, VILLAGE, test_config, violated_fields,
    with_token,
};
use tonic::Code;
use tonic::transport::Channel;
use tonic_health::pb::health_check_response::ServingStatus;

const PATIENCE: Duration = Duration::from_secs(30);

mod linkage_notices {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn on_postgres_and_nats() -> anyhow::Result<()> {
        super::linkage_notices(true).await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn on_sqlite_and_the_in_process_bus() -> anyhow::Result<()> {
        super::linkage_notices(false).await
    }
}

fn department_token(auth: &TestAuth, department: &str) -> String {
    auth.token_with(Role::Department, DISTRICT, |claims| {
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

struct Client(DepartmentIntegrationServiceClient<Channel>);

impl Client {
    async fn list(
        &self,
        token: &str,
        request: pb::ListLinkageNoticesRequest,
    ) -> Result<pb::ListLinkageNoticesResponse, tonic::Status> {
        let request =
            with_token(request, token).map_err(|e| tonic::Status::internal(e.to_string()))?;
        self.0
            .clone()
            .list_linkage_notices(request)
            .await
            .map(tonic::Response::into_inner)
    }

    async fn acknowledge(
        &self,
        token: &str,
        command_id: &str,
        notice_id: &str,
        outcome: &str,
    ) -> Result<pb::AcknowledgeLinkageNoticeResponse, tonic::Status> {
        let request = pb::AcknowledgeLinkageNoticeRequest {
            command_id: command_id.into(),
            notice_id: notice_id.into(),
            outcome: outcome.into(),
        };
        let request =
            with_token(request, token).map_err(|e| tonic::Status::internal(e.to_string()))?;
        self.0
            .clone()
            .acknowledge_linkage_notice(request)
            .await
            .map(tonic::Response::into_inner)
    }
}

fn departments(notices: &[pb::LinkageNotice]) -> Vec<&str> {
    let mut codes: Vec<&str> = notices.iter().map(|n| n.department_code.as_str()).collect();
    codes.sort_unstable();
    codes
}

async fn linkage_notices(cluster: bool) -> anyhow::Result<()> {
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
    let client = Client(DepartmentIntegrationServiceClient::new(
        service.channel().await?,
    ));
    let education = department_token(&auth, "education");
    let health = department_token(&auth, "health");
    let justice = department_token(&auth, "justice");
    let center = auth.token(Role::CenterReviewer, DISTRICT);

    // A dibao household with a pupil, and a 特困 household of one adult.
    let (_, dibao_case) = approved_household(
        &store,
        VILLAGE,
        "dibao",
        vec![member((1985, 3, 1), ""), member((2015, 5, 20), "primary")],
    )
    .await?;
    let (_, tekun_case) =
        approved_household(&store, VILLAGE, "tekun", vec![member((1950, 1, 1), "")]).await?;
    let log = log_when(&store, |log| {
        log.iter()
            .filter(|event| is::<pb::LinkageNoticeSent>(event))
            .count()
            >= 5
    })
    .await?;
    let sent: Vec<pb::LinkageNoticeSent> = decoded(&log)?;
    assert_eq!(sent.len(), 5, "one notice per case and rule, no more");
    let of = |case: &str| {
        let mut codes: Vec<&str> = sent
            .iter()
            .filter(|notice| notice.case_id == case)
            .map(|notice| notice.department_code.as_str())
            .collect();
        codes.sort_unstable();
        codes
    };
    assert_eq!(of(&dibao_case), ["education", "health", "justice"]);
    assert_eq!(of(&tekun_case), ["health", "justice"]);

    // Each department lists its own; the center all of them.
    let own = client
        .list(&education, pb::ListLinkageNoticesRequest::default())
        .await?;
    assert_eq!(departments(&own.notices), ["education"]);
    let notice = own.notices[0].clone();
    assert_eq!(notice.program_code, "education_assistance");
    assert_eq!(notice.case_id, dibao_case);
    assert!(!notice.acknowledged);
    assert_eq!(
        departments(
            &client
                .list(&health, pb::ListLinkageNoticesRequest::default())
                .await?
                .notices
        ),
        ["health", "health"]
    );
    assert_eq!(
        client
            .list(&justice, pb::ListLinkageNoticesRequest::default())
            .await?
            .notices
            .len(),
        2
    );
    let all = client
        .list(&center, pb::ListLinkageNoticesRequest::default())
        .await?;
    assert_eq!(all.notices.len(), 5);

    // Another department acknowledging education's notice: as if there were none.
    let foreign = client
        .acknowledge(&health, "health-ack-1", &notice.notice_id, "granted")
        .await
        .expect_err("not health's notice");
    assert_eq!(foreign.code(), Code::NotFound);
    let unknown = client
        .acknowledge(
            &education,
            "edu-ack-0",
            &uuid::Uuid::now_v7().to_string(),
            "granted",
        )
        .await
        .expect_err("no such notice");
    assert_eq!(unknown.code(), Code::NotFound);
    assert_eq!(unknown.message(), foreign.message());

    // Education acknowledges: recorded on the log and in the list.
    let acknowledged = client
        .acknowledge(&education, "edu-ack-1", &notice.notice_id, "granted")
        .await?;
    let shown = acknowledged.notice.clone().expect("the notice");
    assert!(shown.acknowledged);
    assert_eq!(shown.outcome, "granted");
    let log = log_when(&store, |log| {
        log.iter().any(is::<pb::LinkageNoticeAcknowledged>)
    })
    .await?;
    let recorded: Vec<pb::LinkageNoticeAcknowledged> = decoded(&log)?;
    assert_eq!(recorded.len(), 1);
    assert_eq!(recorded[0].department_code, "education");
    assert_eq!(recorded[0].notice_id, notice.notice_id);
    // Retried: the first answer; the same id with other content: refused on command_id.
    let retried = client
        .acknowledge(&education, "edu-ack-1", &notice.notice_id, "granted")
        .await?;
    assert_eq!(retried, acknowledged);
    let reused = client
        .acknowledge(&education, "edu-ack-1", &notice.notice_id, "not_eligible")
        .await
        .expect_err("a command id reused for other content");
    assert_eq!(reused.code(), Code::InvalidArgument);
    assert_eq!(violated_fields(&reused), ["command_id"]);
    let again = client
        .acknowledge(&education, "edu-ack-2", &notice.notice_id, "not_eligible")
        .await
        .expect_err("acknowledged already");
    assert_eq!(again.code(), Code::FailedPrecondition);

    // The unacknowledged: the four others, visible to the center.
    let open = client
        .list(
            &center,
            pb::ListLinkageNoticesRequest {
                unacknowledged_only: true,
                ..Default::default()
            },
        )
        .await?;
    assert_eq!(
        departments(&open.notices),
        ["health", "health", "justice", "justice"]
    );
    let education_open = client
        .list(
            &education,
            pb::ListLinkageNoticesRequest {
                unacknowledged_only: true,
                ..Default::default()
            },
        )
        .await?;
    assert!(education_open.notices.is_empty());
    // Page by page.
    let first = client
        .list(
            &center,
            pb::ListLinkageNoticesRequest {
                page: Some(pb::PageRequest {
                    page_size: 3,
                    page_token: String::new(),
                }),
                ..Default::default()
            },
        )
        .await?;
    let token = first.page.clone().unwrap_or_default().next_page_token;
    assert_eq!(first.notices.len(), 3);
    let second = client
        .list(
            &center,
            pb::ListLinkageNoticesRequest {
                page: Some(pb::PageRequest {
                    page_size: 3,
                    page_token: token,
                }),
                ..Default::default()
            },
        )
        .await?;
    assert_eq!(second.notices.len(), 2);

    // Hostile input: named, nothing written.
    let huge = client
        .list(
            &center,
            pb::ListLinkageNoticesRequest {
                page: Some(pb::PageRequest {
                    page_size: 1_000_000,
                    page_token: String::new(),
                }),
                ..Default::default()
            },
        )
        .await
        .expect_err("a page of a million");
    assert_eq!(violated_fields(&huge), ["page.page_size"]);
    let control = client
        .acknowledge(&health, "ack\u{7}", "not-an-id\n", "granted\u{0}")
        .await
        .expect_err("control characters");
    assert_eq!(
        violated_fields(&control),
        ["command_id", "notice_id", "outcome"]
    );
    let other_department = client
        .list(
            &education,
            pb::ListLinkageNoticesRequest {
                department_code: "health".into(),
                ..Default::default()
            },
        )
        .await
        .expect_err("another department's list");
    assert_eq!(violated_fields(&other_department), ["department_code"]);
    let officer = client
        .acknowledge(&center, "center-ack", &notice.notice_id, "granted")
        .await
        .expect_err("an officer does not acknowledge");
    assert_eq!(officer.code(), Code::PermissionDenied);
    let log = store.read_log(0, 100_000).await?;
    assert_eq!(
        log.iter()
            .filter(|event| is::<pb::LinkageNoticeAcknowledged>(event))
            .count(),
        1
    );
    service.stop().await?;
    Ok(())
}
