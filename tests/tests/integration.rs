//! Department integration through gRPC, on PostgreSQL + NATS JetStream and on SQLite + the
//! in-process bus (issue 13, slice 1). Education pushes 1,000 records, then the same 1,000
//! again: stored once, counted in the read model and in the log, and no id number in any
//! event's bytes; the first push retried answers as first; a record changed under its id is
//! refused alone. A CSV with bad rows is refused whole naming each bad row and stores
//! nothing; with `good_rows_only` it stores the good ones. Education reads its own record of a
//! person, and not justice's; asking about justice's program is PERMISSION_DENIED and an
//! access event, as every query is; civil affairs, which reads every department's records,
//! sees both, also page by page; a person only another department knows reads like a person
//! nobody knows. Hostile input (an oversized batch or file, control characters, a page size of
//! a million, no purpose, an officer's token) is refused naming the field. A token naming a
//! department the registry does not list is refused.

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
use tonic::transport::Channel;
use tonic::{Code, Status};
use tonic_health::pb::health_check_response::ServingStatus;

const PATIENCE: Duration = Duration::from_secs(30);
const HEADER: &str = "record_id,national_id,program_code,kind,amount_fen,period_start,period_end";

mod department_records {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn on_postgres_and_nats() -> anyhow::Result<()> {
        super::department_records(true).await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn on_sqlite_and_the_in_process_bus() -> anyhow::Result<()> {
        super::department_records(false).await
    }
}

/// Justice's record of free legal aid to the first pupil.
fn legal_aid_record() -> pb::AssistanceRecord {
    pb::AssistanceRecord {
        record_id: "legal-1".into(),
        national_id: pupil(0),
        program_code: "legal_aid".into(),
        kind: "service".into(),
        amount: Some(pb::Money { fen: 0 }),
        period_start: "2026-10".into(),
        period_end: "2026-10".into(),
    }
}

fn department_token(auth: &TestAuth, department: &str) -> String {
    auth.token_with(Role::Department, DISTRICT, |claims| {
        claims.sub = format!("system-{department}");
        claims.department_code = Some(department.into());
    })
}

/// The `i`th pupil's id number (1,000 distinct ones).
fn pupil(i: u32) -> String {
    national_id(&format!("201001{:02}", 1 + i / 100), i % 100 + 100)
}

fn record(i: u32) -> pb::AssistanceRecord {
    pb::AssistanceRecord {
        record_id: format!("edu-2026-{i:04}"),
        national_id: pupil(i),
        program_code: "education_assistance".into(),
        kind: "fee_exemption".into(),
        amount: Some(pb::Money { fen: 60_000 }),
        period_start: "2026-09".into(),
        period_end: "2027-06".into(),
    }
}

struct Integration {
    client: DepartmentIntegrationServiceClient<Channel>,
}

impl Integration {
    async fn push(
        &self,
        token: &str,
        command_id: &str,
        records: Vec<pb::AssistanceRecord>,
    ) -> Result<pb::PushAssistanceRecordsResponse, Status> {
        let request = pb::PushAssistanceRecordsRequest {
            command_id: command_id.into(),
            records,
        };
        let request =
            with_token(request, token).map_err(|error| Status::internal(error.to_string()))?;
        self.client
            .clone()
            .push_assistance_records(request)
            .await
            .map(tonic::Response::into_inner)
    }

    async fn import(
        &self,
        token: &str,
        command_id: &str,
        file: String,
        good_rows_only: bool,
    ) -> Result<pb::PushAssistanceRecordsResponse, Status> {
        let request = pb::ImportAssistanceCsvRequest {
            command_id: command_id.into(),
            file: file.into_bytes(),
            good_rows_only,
        };
        let request =
            with_token(request, token).map_err(|error| Status::internal(error.to_string()))?;
        self.client
            .clone()
            .import_assistance_csv(request)
            .await
            .map(tonic::Response::into_inner)
    }

    async fn query(
        &self,
        token: &str,
        national_id: &str,
        programs: &[&str],
    ) -> Result<pb::QueryHouseholdAssistanceResponse, Status> {
        self.query_page(token, national_id, programs, None).await
    }

    async fn query_page(
        &self,
        token: &str,
        national_id: &str,
        programs: &[&str],
        page: Option<pb::PageRequest>,
    ) -> Result<pb::QueryHouseholdAssistanceResponse, Status> {
        let request = pb::QueryHouseholdAssistanceRequest {
            national_id: national_id.into(),
            purpose: pb::QueryPurpose::Eligibility.into(),
            program_codes: programs
                .iter()
                .map(|program| (*program).to_owned())
                .collect(),
            page,
        };
        let request =
            with_token(request, token).map_err(|error| Status::internal(error.to_string()))?;
        self.client
            .clone()
            .query_household_assistance(request)
            .await
            .map(tonic::Response::into_inner)
    }
}

/// The whole log once `ready` holds of it (the sequencer integrates appends soon after).
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

/// How many events of type `E` the log holds.
fn count<E: sunshine_proto::events::Event>(log: &[RecordedEvent]) -> usize {
    log.iter().filter(|event| is::<E>(event)).count()
}

async fn records_in_read_model(pool: &sqlx::AnyPool, department: &str) -> anyhow::Result<i64> {
    Ok(sunshine_department_integration::read_model::record_count(pool, department).await?)
}

async fn department_records(cluster: bool) -> anyhow::Result<()> {
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
    let integration = Integration {
        client: DepartmentIntegrationServiceClient::new(service.channel().await?),
    };
    let education = department_token(&auth, "education");
    let justice = department_token(&auth, "justice");
    let civil_affairs = department_token(&auth, "civil_affairs");

    // Education pushes 1,000 records, then the same 1,000 again under a new command id.
    let batch: Vec<pb::AssistanceRecord> = (0..1000).map(record).collect();
    let first = integration
        .push(&education, "edu-push-1", batch.clone())
        .await?;
    assert_eq!(
        (first.stored, first.unchanged, first.refused, first.rejected),
        (1000, 0, 0, 0)
    );
    let again = integration
        .push(&education, "edu-push-2", batch.clone())
        .await?;
    assert_eq!(
        (again.stored, again.unchanged, again.refused, again.rejected),
        (0, 1000, 0, 0)
    );
    assert!(
        again
            .results
            .iter()
            .all(|result| result.outcome == i32::from(pb::RecordOutcome::Unchanged))
    );
    // The first push retried: its first answer.
    let retried = integration
        .push(&education, "edu-push-1", batch.clone())
        .await?;
    assert_eq!(retried, first);
    // The same command id with other content: refused, nothing written.
    let reused = integration
        .push(&education, "edu-push-1", vec![record(1000)])
        .await
        .expect_err("a command id reused for other records");
    assert_eq!(reused.code(), Code::InvalidArgument);
    assert_eq!(violated_fields(&reused), ["command_id"]);
    assert_eq!(
        records_in_read_model(store.pool(), "education").await?,
        1000
    );
    let log = log_when(&store, |log| !log.is_empty()).await?;
    let pushed: Vec<pb::AssistanceRecordsPushed> = decoded(&log)?;
    assert_eq!(
        pushed.len(),
        1,
        "one batch event: the repeat appended nothing"
    );
    assert_eq!(
        pushed
            .iter()
            .map(|event| event.records.len())
            .sum::<usize>(),
        1000
    );
    for event in &log {
        for i in [0, 499, 999] {
            let id = pupil(i);
            assert!(
                !event
                    .payload
                    .windows(id.len())
                    .any(|window| window == id.as_bytes()),
                "an id number in plain in {}",
                event.event_type
            );
        }
    }

    // A record changed under its id is refused alone; a new one beside it is stored.
    let mut changed = record(7);
    changed.amount = Some(pb::Money { fen: 1 });
    let mixed = integration
        .push(&education, "edu-push-3", vec![changed, record(1000)])
        .await?;
    assert_eq!((mixed.stored, mixed.refused), (1, 1));
    assert_eq!(
        mixed.results[0].outcome,
        i32::from(pb::RecordOutcome::Refused)
    );
    assert_eq!(mixed.results[0].violations[0].field, "records[0].record_id");
    assert_eq!(
        records_in_read_model(store.pool(), "education").await?,
        1001
    );

    // A bad CSV: every bad row named, nothing stored; by option the good rows only.
    let row = |i: u32, id: &str, amount: &str| {
        format!("edu-csv-{i},{id},education_assistance,subsidy,{amount},2026-09,2026-12")
    };
    let file = [
        HEADER.to_owned(),
        row(0, &pupil(0), "30000"),
        row(1, "9901012010010100", "30000"),
        row(2, &pupil(2), "30000"),
        "edu-csv-3,half,a,row".to_owned(),
        row(4, &pupil(4), "300.00"),
        row(5, &pupil(5), "30000"),
    ]
    .join("\n");
    let refused = integration
        .import(&education, "edu-csv-1", file.clone(), false)
        .await
        .expect_err("bad rows");
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert_eq!(
        violated_fields(&refused),
        ["rows[1].national_id", "rows[3]", "rows[4].amount"]
    );
    assert!(
        !refused.message().contains("99010120100101"),
        "{}",
        refused.message()
    );
    assert_eq!(
        records_in_read_model(store.pool(), "education").await?,
        1001
    );
    let good_only = integration
        .import(&education, "edu-csv-2", file, true)
        .await?;
    assert_eq!((good_only.stored, good_only.rejected), (3, 3));
    assert_eq!(
        records_in_read_model(store.pool(), "education").await?,
        1004
    );

    // Justice's own record of the same pupil.
    let legal_aid = legal_aid_record();
    let pushed = integration
        .push(&justice, "justice-push-1", vec![legal_aid.clone()])
        .await?;
    assert_eq!(pushed.stored, 1);
    // Education may not push justice's program.
    let not_its_program = integration
        .push(&education, "edu-push-4", vec![legal_aid])
        .await?;
    assert_eq!(not_its_program.rejected, 1);
    assert_eq!(
        not_its_program.results[0].violations[0].field,
        "records[0].program_code"
    );

    // Queries: education sees its own records of the pupil, not justice's.
    let seen = integration.query(&education, &pupil(0), &[]).await?;
    let mut ids: Vec<&str> = seen
        .entries
        .iter()
        .map(|entry| entry.record_id.as_str())
        .collect();
    ids.sort_unstable();
    assert_eq!(ids, ["edu-2026-0000", "edu-csv-0"]);
    assert!(
        seen.entries
            .iter()
            .all(|entry| entry.department_code == "education")
    );
    // Asking about justice's program: PERMISSION_DENIED, and an access event.
    let outside = integration
        .query(&education, &pupil(0), &["legal_aid"])
        .await
        .expect_err("outside education's scope");
    assert_eq!(outside.code(), Code::PermissionDenied);
    // Civil affairs reads every department's records.
    let all = integration.query(&civil_affairs, &pupil(0), &[]).await?;
    assert_eq!(all.entries.len(), 3);
    assert!(
        all.entries
            .iter()
            .any(|entry| entry.department_code == "justice")
    );
    // The same three in pages of two, in order, each once.
    let page = |token: &str| {
        Some(pb::PageRequest {
            page_size: 2,
            page_token: token.into(),
        })
    };
    let first_page = integration
        .query_page(&civil_affairs, &pupil(0), &[], page(""))
        .await?;
    let next = first_page.page.clone().unwrap_or_default().next_page_token;
    assert_eq!(first_page.entries.len(), 2);
    assert!(!next.is_empty());
    let second_page = integration
        .query_page(&civil_affairs, &pupil(0), &[], page(&next))
        .await?;
    assert_eq!(second_page.entries.len(), 1);
    assert!(
        second_page
            .page
            .unwrap_or_default()
            .next_page_token
            .is_empty()
    );
    let paged: Vec<pb::AssistanceEntry> = first_page
        .entries
        .into_iter()
        .chain(second_page.entries)
        .collect();
    assert_eq!(paged, all.entries);

    let log = log_when(&store, |log| {
        count::<pb::DepartmentQueryRecorded>(log) == 5
            && count::<pb::AssistanceRecordsPushed>(log) == 4
    })
    .await?;
    for event in &log {
        for i in [0, 2, 499, 999] {
            let id = pupil(i);
            assert!(
                !event
                    .payload
                    .windows(id.len())
                    .any(|window| window == id.as_bytes()),
                "an id number in plain in {}",
                event.event_type
            );
        }
    }
    let queries: Vec<pb::DepartmentQueryRecorded> = decoded(&log)?;
    assert_eq!(
        queries
            .iter()
            .map(|query| (
                query.department_code.as_str(),
                query.answered,
                query.entries
            ))
            .collect::<Vec<_>>(),
        [
            ("education", true, 2),
            ("education", false, 0),
            ("civil_affairs", true, 3),
            ("civil_affairs", true, 2),
            ("civil_affairs", true, 1)
        ]
    );
    assert_eq!(queries[1].refused_program_codes, ["legal_aid"]);
    let access: Vec<&RecordedEvent> = log
        .iter()
        .filter(|event| is::<pb::DepartmentQueryRecorded>(event))
        .collect();
    assert!(
        access[1]
            .stream_id
            .starts_with("department-integration-access-education")
    );
    assert!(
        access[1]
            .metadata_json
            .contains("\"department_code\":\"education\""),
        "{}",
        access[1].metadata_json
    );

    // Another department's records read like none: education asking about a person only
    // justice knows gets what it gets for a person nobody knows.
    let only_justice = pb::AssistanceRecord {
        record_id: "legal-2".into(),
        national_id: pupil(1001),
        ..legal_aid_record()
    };
    integration
        .push(&justice, "justice-push-2", vec![only_justice])
        .await?;
    let unknown_to_education = integration.query(&education, &pupil(1001), &[]).await?;
    let nobody = integration.query(&education, &pupil(1002), &[]).await?;
    assert!(unknown_to_education.entries.is_empty());
    assert_eq!(unknown_to_education, nobody);

    hostile_input(&integration, &education, &auth).await?;

    // A department the registry does not list; a department's token with no code is refused
    // when it is issued (the platform's check).
    let stranger = department_token(&auth, "lottery_office");
    let unknown = integration
        .push(&stranger, "stranger-1", vec![record(1)])
        .await
        .expect_err("an unlisted department");
    assert_eq!(unknown.code(), Code::PermissionDenied);

    service.stop().await?;
    Ok(())
}

/// Oversized and control-character input, a page size of a million, a purpose left out, the
/// wrong role: each refused, naming the field, before anything is written.
async fn hostile_input(
    integration: &Integration,
    education: &str,
    auth: &TestAuth,
) -> anyhow::Result<()> {
    let refused_on = |result: Result<_, Status>, field: &str| -> anyhow::Result<()> {
        match result {
            Ok(answer) => anyhow::bail!("{field}: answered {answer:?}"),
            Err(status) => {
                anyhow::ensure!(
                    status.code() == Code::InvalidArgument,
                    "{field}: {status:?}"
                );
                anyhow::ensure!(violated_fields(&status) == [field], "{field}: {status:?}");
                Ok(())
            }
        }
    };
    // 1,001 records in one batch.
    let too_many: Vec<pb::AssistanceRecord> = (2000..3001).map(record).collect();
    refused_on(
        integration
            .push(education, "hostile-1", too_many)
            .await
            .map(|_| ()),
        "records",
    )?;
    // A command id with a control character.
    refused_on(
        integration
            .push(education, "hostile\u{0}2", vec![record(2000)])
            .await
            .map(|_| ()),
        "command_id",
    )?;
    // Control characters and a 10,000-character id in records: rejected, named, not stored.
    let mut escape = record(2001);
    escape.record_id = "edu-\u{1b}[2J".into();
    let mut long = record(2002);
    long.record_id = "x".repeat(10_000);
    let mut invisible = record(2003);
    invisible.kind = "cash\u{200b}".into();
    let answer = integration
        .push(education, "hostile-3", vec![escape, long, invisible])
        .await?;
    assert_eq!((answer.stored, answer.rejected), (0, 3));
    let fields: Vec<&str> = answer
        .results
        .iter()
        .flat_map(|result| result.violations.iter().map(|v| v.field.as_str()))
        .collect();
    assert_eq!(
        fields,
        [
            "records[0].record_id",
            "records[1].record_id",
            "records[2].kind"
        ]
    );
    // A CSV over 4 MiB.
    let mut big = HEADER.to_owned();
    big.push('\n');
    big.push_str(&"x".repeat(4 * 1024 * 1024));
    refused_on(
        integration
            .import(education, "hostile-4", big, false)
            .await
            .map(|_| ()),
        "file",
    )?;
    // A page size of a million; a purpose left out; a program nobody runs.
    let query = |page_size: i32, purpose: pb::QueryPurpose, programs: Vec<String>| {
        let request = pb::QueryHouseholdAssistanceRequest {
            national_id: pupil(0),
            purpose: purpose.into(),
            program_codes: programs,
            page: Some(pb::PageRequest {
                page_size,
                page_token: String::new(),
            }),
        };
        let mut client = integration.client.clone();
        let request = with_token(request, education);
        async move {
            let request = request.map_err(|error| Status::internal(error.to_string()))?;
            client.query_household_assistance(request).await.map(|_| ())
        }
    };
    refused_on(
        query(1_000_000, pb::QueryPurpose::Eligibility, Vec::new()).await,
        "page.page_size",
    )?;
    refused_on(
        query(10, pb::QueryPurpose::Unspecified, Vec::new()).await,
        "purpose",
    )?;
    refused_on(
        query(10, pb::QueryPurpose::Review, vec!["lottery".into()]).await,
        "program_codes[0]",
    )?;
    // An officer's token, even the district center's: not a department.
    let officer = auth.token(Role::CenterApprover, DISTRICT);
    let wrong_role = integration
        .push(&officer, "hostile-5", vec![record(2004)])
        .await
        .expect_err("an officer");
    assert_eq!(wrong_role.code(), Code::PermissionDenied);
    Ok(())
}
