//! The national low-income population monitoring platform's warnings as the district center's
//! work, through gRPC, on PostgreSQL + NATS JetStream and on SQLite + the in-process bus, with
//! a hand-set clock (issue 13). A warning imported is listed open with its deadline (10
//! working days, policy integration.monitoring_warning_working_days), overdue once the day
//! passes it, closed with an outcome and a note by a center officer, then listed closed with
//! the outcome, and the closing is on the log. Re-importing the same warning id adds nothing;
//! the import retried answers as first, the same command id with other content is refused; a
//! bad batch names warnings[i] and imports none. Hostile callers: a street-town reviewer or a
//! department, another district's center, a page size of a million, control characters, an
//! oversized note, closing twice, a warning that does not exist. The feed: civil affairs' dibao
//! records in force in a month exported page by page with hashed person ids and no id number,
//! every page a `MonitoringFeedExported` event.

use std::sync::Arc;
use std::time::Duration;

use sunshine_eventlog::{EventStore, RecordedEvent};
use sunshine_platform::Role;
use sunshine_platform::clock::ManualClock;
use sunshine_proto::v1 as pb;
use sunshine_proto::v1::department_integration_service_client::DepartmentIntegrationServiceClient;
use sunshine_tests::events::{decoded, is};
use sunshine_tests::households::national_id;
use sunshine_tests::{
    DISTRICT, RunningService, STREET_TOWN, ScenarioBackends, TestAuth, test_config,
    violated_fields, with_token,
};
use time::macros::date;
use tonic::Code;
use tonic::transport::Channel;
use tonic_health::pb::health_check_response::ServingStatus;

const PATIENCE: Duration = Duration::from_secs(30);
const OTHER_DISTRICT: &str = "990102000000";

mod monitoring_warnings {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn on_postgres_and_nats() -> anyhow::Result<()> {
        super::monitoring_warnings(true).await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn on_sqlite_and_the_in_process_bus() -> anyhow::Result<()> {
        super::monitoring_warnings(false).await
    }
}

fn warning(id: &str, kind: &str) -> pb::MonitoringWarning {
    pb::MonitoringWarning {
        warning_id: id.into(),
        kind: kind.into(),
        feed_person_id: "3f".repeat(32),
        program_code: "dibao".into(),
        street_town_code: STREET_TOWN.into(),
        detail: "household income below the standard for three months".into(),
        raised_on: Some(sunshine_proto::dates::from_date(date!(2026 - 9 - 18))),
    }
}

struct Client {
    client: DepartmentIntegrationServiceClient<Channel>,
}

type Answer<T> = Result<T, tonic::Status>;

fn status_of(error: anyhow::Error) -> tonic::Status {
    tonic::Status::internal(error.to_string())
}

impl Client {
    async fn import(
        &self,
        token: &str,
        command_id: &str,
        warnings: Vec<pb::MonitoringWarning>,
    ) -> Answer<pb::ImportMonitoringWarningsResponse> {
        let request = pb::ImportMonitoringWarningsRequest {
            command_id: command_id.into(),
            warnings,
        };
        self.client
            .clone()
            .import_monitoring_warnings(with_token(request, token).map_err(status_of)?)
            .await
            .map(tonic::Response::into_inner)
    }

    async fn close(
        &self,
        token: &str,
        command_id: &str,
        warning_id: &str,
        outcome: &str,
        note: &str,
    ) -> Answer<pb::MonitoringWarningItem> {
        let request = pb::CloseMonitoringWarningRequest {
            command_id: command_id.into(),
            warning_id: warning_id.into(),
            outcome: outcome.into(),
            note: note.into(),
        };
        self.client
            .clone()
            .close_monitoring_warning(with_token(request, token).map_err(status_of)?)
            .await
            .map(tonic::Response::into_inner)
    }

    async fn list(
        &self,
        token: &str,
        status: &str,
        page_size: i32,
    ) -> Answer<pb::ListMonitoringWarningsResponse> {
        let request = pb::ListMonitoringWarningsRequest {
            status: status.into(),
            page: Some(pb::PageRequest {
                page_size,
                page_token: String::new(),
            }),
        };
        self.client
            .clone()
            .list_monitoring_warnings(with_token(request, token).map_err(status_of)?)
            .await
            .map(tonic::Response::into_inner)
    }
}

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

fn ids(listed: &pb::ListMonitoringWarningsResponse) -> Vec<&str> {
    listed
        .items
        .iter()
        .map(|item| item.warning_id.as_str())
        .collect()
}

async fn monitoring_warnings(cluster: bool) -> anyhow::Result<()> {
    let auth = TestAuth::new()?;
    let backends = ScenarioBackends::start(cluster).await?;
    let config = test_config(&auth, backends.database_url(), backends.bus_url());
    // Monday 2026-09-21.
    let clock = Arc::new(ManualClock::new(date!(2026 - 9 - 21)));
    let service_clock = Arc::clone(&clock);
    let service = RunningService::start(
        sunshine_department_integration::SERVICE_NAME,
        backends.service_config(&config, sunshine_department_integration::SERVICE_NAME),
        move |config, listener, shutdown| {
            sunshine_department_integration::run_with_clock(
                config,
                listener,
                shutdown,
                service_clock,
            )
        },
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
    let client = Client {
        client: DepartmentIntegrationServiceClient::new(service.channel().await?),
    };
    let center = auth.token(Role::CenterReviewer, DISTRICT);
    let approver = auth.token(Role::CenterApprover, DISTRICT);

    // A bad batch: each bad warning named, none imported.
    let mut bad = warning("w-bad", "rumour");
    bad.detail = "bell\u{7}".into();
    let mut outside = warning("w-out", "complex_case");
    outside.street_town_code = "990102001000".into();
    let refused = client
        .import(
            &center,
            "imp-0",
            vec![warning("w-1", "possibly_eligible"), bad, outside],
        )
        .await
        .expect_err("a bad batch");
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert_eq!(
        violated_fields(&refused),
        [
            "warnings[1].kind",
            "warnings[1].detail",
            "warnings[2].street_town_code"
        ]
    );
    assert!(client.list(&center, "", 0).await?.items.is_empty());

    // Imported: two work items of the district center, open, due in 10 working days
    // (Monday 2026-09-21 + 10 working days, across the National Day holiday).
    let batch = vec![
        warning("w-1", "possibly_eligible"),
        warning("w-2", "policy_not_delivered"),
    ];
    let imported = client.import(&center, "imp-1", batch.clone()).await?;
    assert_eq!((imported.received, imported.unchanged), (2, 0));
    assert_eq!(
        client.import(&center, "imp-1", batch.clone()).await?,
        imported
    );
    let reused = client
        .import(&center, "imp-1", vec![warning("w-3", "complex_case")])
        .await
        .expect_err("a command id reused");
    assert_eq!(violated_fields(&reused), ["command_id"]);
    // The same warning ids again under a new command: nothing new.
    let again = client.import(&center, "imp-2", batch.clone()).await?;
    assert_eq!((again.received, again.unchanged), (0, 2));
    // A known warning id with other content is refused (the first stands) beside a new one;
    // retried, the same answer.
    let mut changed = warning("w-1", "complex_case");
    changed.detail = "other words".into();
    let mixed_batch = vec![changed, warning("w-0", "complex_case")];
    let mixed = client.import(&center, "imp-4", mixed_batch.clone()).await?;
    assert_eq!((mixed.received, mixed.unchanged, mixed.refused), (1, 0, 1));
    assert_eq!(client.import(&center, "imp-4", mixed_batch).await?, mixed);

    let open = client.list(&center, "open", 0).await?;
    assert_eq!(ids(&open), ["w-0", "w-1", "w-2"]);
    let item = &open.items[1];
    assert_eq!(item.status, "open");
    assert_eq!(item.org_unit_code, DISTRICT);
    let deadline = sunshine_proto::dates::to_date(item.deadline.as_ref()).expect("a deadline");
    assert!(deadline > date!(2026 - 10 - 2), "{deadline}");
    let log = log_when(&store, |log| {
        log.iter()
            .filter(|event| is::<pb::MonitoringWarningReceived>(event))
            .count()
            == 3
    })
    .await?;
    assert_eq!(decoded::<pb::MonitoringWarningReceived>(&log)?.len(), 3);

    // Closed with an outcome by an approver; retried, the same answer; closed again, refused.
    let closed = client
        .close(
            &approver,
            "close-1",
            "w-1",
            "rectified",
            "dibao granted from October",
        )
        .await?;
    assert_eq!(
        (closed.status.as_str(), closed.outcome.as_str()),
        ("closed", "rectified")
    );
    assert_eq!(
        client
            .close(
                &approver,
                "close-1",
                "w-1",
                "rectified",
                "dibao granted from October"
            )
            .await?,
        closed
    );
    let reused = client
        .close(&approver, "close-1", "w-1", "verified", "another note")
        .await
        .expect_err("a command id reused");
    assert_eq!(violated_fields(&reused), ["command_id"]);
    let twice = client
        .close(&center, "close-2", "w-1", "verified", "again")
        .await
        .expect_err("closed before");
    assert_eq!(twice.code(), Code::FailedPrecondition);
    let missing = client
        .close(&center, "close-3", "w-none", "verified", "no such warning")
        .await
        .expect_err("no such warning");
    assert_eq!(missing.code(), Code::NotFound);

    let closed_list = client.list(&center, "closed", 0).await?;
    assert_eq!(ids(&closed_list), ["w-1"]);
    assert_eq!(closed_list.items[0].outcome, "rectified");
    let log = log_when(&store, |log| {
        log.iter().any(is::<pb::MonitoringWarningClosed>)
    })
    .await?;
    let closings: Vec<pb::MonitoringWarningClosed> = decoded(&log)?;
    assert_eq!(closings.len(), 1);
    assert_eq!(
        (
            closings[0].warning_id.as_str(),
            closings[0].outcome.as_str()
        ),
        ("w-1", "rectified")
    );

    // Past its deadline the other is overdue.
    clock.set(deadline.next_day().expect("a day"));
    assert!(client.list(&center, "open", 0).await?.items.is_empty());
    let overdue = client.list(&center, "overdue", 0).await?;
    assert_eq!(ids(&overdue), ["w-0", "w-2"]);
    assert_eq!(overdue.items[1].status, "overdue");
    assert_eq!(ids(&client.list(&center, "", 0).await?), ["w-0", "w-2"]);

    // Hostile callers and input.
    for (token, what) in [
        (
            auth.token(Role::StreetReviewer, STREET_TOWN),
            "a street-town reviewer",
        ),
        (
            auth.token(Role::CenterReviewer, OTHER_DISTRICT),
            "another district",
        ),
    ] {
        let refused = client.list(&token, "", 0).await.expect_err(what);
        assert_eq!(refused.code(), Code::PermissionDenied, "{what}");
        let refused = client
            .import(&token, "imp-hostile", vec![warning("w-9", "complex_case")])
            .await
            .expect_err(what);
        assert_eq!(refused.code(), Code::PermissionDenied, "{what}");
        let refused = client
            .close(&token, "close-hostile", "w-2", "verified", "x")
            .await
            .expect_err(what);
        assert_eq!(refused.code(), Code::PermissionDenied, "{what}");
    }
    let auditor = auth.token(Role::Auditor, DISTRICT);
    let refused = client
        .close(&auditor, "close-4", "w-2", "verified", "x")
        .await
        .expect_err("an auditor reads only");
    assert_eq!(refused.code(), Code::PermissionDenied);
    let huge = client
        .list(&center, "", 1_000_000)
        .await
        .expect_err("a page of a million");
    assert_eq!(violated_fields(&huge), ["page.page_size"]);
    let bad_status = client
        .list(&center, "open\u{0}", 0)
        .await
        .expect_err("a status");
    assert_eq!(violated_fields(&bad_status), ["status"]);
    let bad = client
        .close(&center, "close-5", "w-2\u{7}", "lost", &"n".repeat(1_001))
        .await
        .expect_err("bad fields");
    assert_eq!(bad.code(), Code::InvalidArgument);
    assert_eq!(violated_fields(&bad), ["warning_id", "outcome", "note"]);
    let bell = client
        .close(&center, "close-6", "w-2", "verified", "ring\u{7}")
        .await
        .expect_err("a control character");
    assert_eq!(violated_fields(&bell), ["note"]);
    let many = client
        .import(&center, "imp-3", vec![warning("w", "complex_case"); 501])
        .await
        .expect_err("too many");
    assert_eq!(violated_fields(&many), ["warnings"]);
    // Nothing of the refused calls was written: w-2 still open (overdue), one closing.
    assert_eq!(ids(&client.list(&center, "", 0).await?), ["w-0", "w-2"]);

    // The feed: civil affairs' dibao records in force in September, page by page, persons
    // as the feed's hashed ids, every page an event.
    let civil_affairs = auth.token_with(Role::Department, DISTRICT, |claims| {
        claims.sub = "system-civil-affairs".into();
        claims.department_code = Some("civil_affairs".into());
    });
    let people: Vec<String> = (0..3).map(|i| national_id("19600101", 300 + i)).collect();
    let records = people
        .iter()
        .enumerate()
        .map(|(i, id)| pb::AssistanceRecord {
            record_id: format!("dibao-{i}"),
            national_id: id.clone(),
            program_code: "dibao".into(),
            kind: "cash".into(),
            amount: Some(pb::Money { fen: 98_000 }),
            period_start: if i == 2 {
                "2026-10".into()
            } else {
                "2026-01".into()
            },
            period_end: "2026-12".into(),
        })
        .collect();
    client
        .client
        .clone()
        .push_assistance_records(with_token(
            pb::PushAssistanceRecordsRequest {
                command_id: "dibao-push".into(),
                records,
            },
            &civil_affairs,
        )?)
        .await?;
    let export = |token: String, month: &str, page_size: i32, page_token: String| {
        let mut client = client.client.clone();
        let request = pb::ExportMonitoringFeedRequest {
            month: month.into(),
            page: Some(pb::PageRequest {
                page_size,
                page_token,
            }),
        };
        async move {
            client
                .export_monitoring_feed(with_token(request, &token).map_err(status_of)?)
                .await
                .map(tonic::Response::into_inner)
        }
    };
    let first = export(center.clone(), "2026-09", 1, String::new()).await?;
    assert_eq!(first.rows, 1);
    let next = first.page.clone().unwrap_or_default().next_page_token;
    assert!(!next.is_empty());
    let second = export(approver.clone(), "2026-09", 1, next).await?;
    assert_eq!(second.rows, 1);
    assert!(
        second
            .page
            .clone()
            .unwrap_or_default()
            .next_page_token
            .is_empty()
    );
    let whole = export(center.clone(), "2026-09", 0, String::new()).await?;
    let text = String::from_utf8(whole.file.clone())?;
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines.len(),
        3,
        "a header and the two records in force: {text}"
    );
    assert!(lines[0].starts_with("format,month,feed_person_id"));
    assert!(lines[1].starts_with("sunshine-monitoring-feed/1,2026-09,"));
    for id in &people {
        assert!(!text.contains(id.as_str()), "an id number in the feed");
    }
    let log = log_when(&store, |log| {
        log.iter()
            .filter(|event| is::<pb::MonitoringFeedExported>(event))
            .count()
            == 3
    })
    .await?;
    let exports: Vec<pb::MonitoringFeedExported> = decoded(&log)?;
    assert_eq!(exports[2].file_sha256, whole.file_sha256);
    assert_eq!(exports[2].rows, 2);
    let refused = export(civil_affairs.clone(), "2026-09", 0, String::new())
        .await
        .expect_err("a department");
    assert_eq!(refused.code(), Code::PermissionDenied);
    let refused = export(
        auth.token(Role::CenterReviewer, OTHER_DISTRICT),
        "2026-09",
        0,
        String::new(),
    )
    .await
    .expect_err("another district");
    assert_eq!(refused.code(), Code::PermissionDenied);
    let bad = export(center.clone(), "2026-9\u{7}", 1_000_000, "forged".into())
        .await
        .expect_err("bad fields");
    assert_eq!(
        violated_fields(&bad),
        ["month", "page.page_size", "page.page_token"]
    );
    Ok(())
}
