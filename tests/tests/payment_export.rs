//! The bank file streamed, with the households' real payment accounts, on PostgreSQL + NATS
//! JetStream and on SQLite + the in-process bus (`docs/bank-files.md`, "The export").
//!
//! Intake registers three households, each with its payment account (intake seals it); review's
//! approvals of their dibao cases are appended at the boundary; payment's run of this month is
//! created and approved. Then, with `payment.bank_file_chunk_bytes` at 100 bytes:
//!
//! - `ExportBankFile` in both formats comes in parts of exactly 100 bytes (the last shorter),
//!   which put back together are the file whose SHA-256 the first message gives and
//!   `BankFileExported` records (with the run's count and total);
//! - each order's line carries its household's account number and holder's name as intake
//!   sealed them (and as GBK bytes in the fixed layout);
//! - the bank's result is matched against those accounts, opened again: one with an account
//!   changed is refused whole naming its line, the right one is recorded; the 纪委's export
//!   gives each account's real last 4 digits;
//! - a fourth household registered without an account: its run's export is
//!   `FAILED_PRECONDITION` saying how many orders lack one (no id, no personal data), and
//!   nothing is recorded;
//! - no account number is anywhere in clear: not in any event's payload or metadata, nor in any
//!   table of the database (PostgreSQL: every table's rows as text; SQLite: the database's
//!   files, byte for byte).

use std::time::Duration;

use sunshine_domain::Month;
use sunshine_eventlog::{Actor, EventMetadata, EventStore, ExpectedVersion, NewEvent, StreamId};
use sunshine_payment::bank_files::{Format, ResultLine, sha256_hex};
use sunshine_platform::Role;
use sunshine_platform::clock::{Clock as _, SystemClock};
use sunshine_proto::events::StreamEvent as _;
use sunshine_proto::v1 as pb;
use sunshine_proto::v1::intake_service_client::IntakeServiceClient;
use sunshine_proto::v1::payment_service_client::PaymentServiceClient;
use sunshine_tests::bank::{ExportedFile, batch_lines, collect, result_file};
use sunshine_tests::households::{family, registration};
use sunshine_tests::{
    DISTRICT, RunningService, ScenarioBackends, TestAuth, VILLAGE, test_config, violated_fields,
    with_token,
};
use tonic::transport::Channel;
use tonic::{Code, Status};
use tonic_health::pb::health_check_response::ServingStatus;

const PATIENCE: Duration = Duration::from_secs(30);
/// The parts' size in this scenario: a few lines' worth, so every file is several messages.
const PART_BYTES: usize = 100;

mod streamed_export {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn on_postgres_and_nats() -> anyhow::Result<()> {
        super::streamed_export(true).await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn on_sqlite_and_the_in_process_bus() -> anyhow::Result<()> {
        super::streamed_export(false).await
    }
}

/// The accounts the three households register with (fictitious).
const ACCOUNTS: [(&str, &str, i64); 3] = [
    ("6222020200112233", "王建国", 80_000),
    ("6222020200445566", "李秀英", 65_000),
    ("6217000011112222", "张伟", 50_000),
];

fn status(error: anyhow::Error) -> Status {
    Status::internal(error.to_string())
}

/// Review's opening and approval of a dibao case of `household_id` paying `fen` from this
/// month, appended at the boundary as review appends them.
async fn approved_case(
    store: &EventStore,
    case_id: &str,
    household_id: &str,
    fen: i64,
) -> anyhow::Result<()> {
    let opened = pb::CaseOpened {
        case_id: case_id.into(),
        application_id: format!("application-of-{case_id}"),
        household_id: household_id.into(),
        program_code: "dibao".into(),
        workflow: "means_tested_review".into(),
        accepted_org_unit_code: VILLAGE.into(),
        hukou_org_unit_code: VILLAGE.into(),
        ..Default::default()
    };
    let approved = pb::CaseApproved {
        case_id: case_id.into(),
        program_code: "dibao".into(),
        monthly_amount: Some(pb::Money { fen }),
        start_month: this_month().to_string(),
        reasons: "符合条件".into(),
        ..Default::default()
    };
    let metadata = EventMetadata {
        actor: Actor {
            subject: "test-boundary".into(),
            role: "system".into(),
            org_unit: String::new(),
            department_code: None,
        },
        ..EventMetadata::default()
    };
    store
        .append(
            &StreamId::new("review", "case", case_id)?,
            ExpectedVersion::NoStream,
            &metadata,
            vec![
                NewEvent::typed(case_id, &opened),
                NewEvent::typed(case_id, &approved),
            ],
        )
        .await?;
    Ok(())
}

fn this_month() -> Month {
    Month::of(SystemClock.today())
}

/// Waits until payment's projection has passed every event of the log.
async fn settle(store: &EventStore) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while sunshine_tests::events_behind(store.pool(), "payment-entitlements").await? != 0 {
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "payment's projection never caught up"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

struct Payment {
    client: PaymentServiceClient<Channel>,
}

impl Payment {
    /// This month's run of what is due and in no run yet, approved by a second officer.
    async fn approved_run(
        &self,
        officer: &str,
        approver: &str,
        command_id: &str,
    ) -> anyhow::Result<pb::RunResponse> {
        let run = self
            .client
            .clone()
            .create_run(with_token(
                pb::CreateRunRequest {
                    command_id: command_id.into(),
                    period: this_month().to_string(),
                },
                officer,
            )?)
            .await?
            .into_inner();
        let control = run.control.clone().unwrap_or_default();
        Ok(self
            .client
            .clone()
            .approve_run(with_token(
                pb::ApproveRunRequest {
                    command_id: format!("approve-{command_id}"),
                    run_id: run.run_id.clone(),
                    expected_version: run.version,
                    control_count: control.count,
                    control_total: control.total,
                },
                approver,
            )?)
            .await?
            .into_inner())
    }

    async fn export(
        &self,
        token: &str,
        run_id: &str,
        format: pb::BankFileFormat,
    ) -> Result<ExportedFile, Status> {
        let request = with_token(
            pb::ExportBankFileRequest {
                run_id: run_id.into(),
                format: format.into(),
            },
            token,
        )
        .map_err(status)?;
        let stream = self.client.clone().export_bank_file(request).await?;
        collect(stream).await
    }

    async fn import(
        &self,
        token: &str,
        command_id: &str,
        run_id: &str,
        file: Vec<u8>,
    ) -> Result<pb::RunResponse, Status> {
        let request = with_token(
            pb::ImportBankResultRequest {
                command_id: command_id.into(),
                run_id: run_id.into(),
                file,
            },
            token,
        )
        .map_err(status)?;
        self.client
            .clone()
            .import_bank_result(request)
            .await
            .map(tonic::Response::into_inner)
    }

    async fn version(&self, token: &str, run_id: &str) -> anyhow::Result<u64> {
        let request = with_token(
            pb::GetRunRequest {
                run_id: run_id.into(),
            },
            token,
        )?;
        Ok(self
            .client
            .clone()
            .get_run(request)
            .await?
            .into_inner()
            .version)
    }
}

/// The `BankFileExported` events of run `run_id`, in order.
async fn recorded_exports(
    store: &EventStore,
    run_id: &str,
) -> anyhow::Result<Vec<pb::BankFileExported>> {
    let events = store
        .read_stream(&StreamId::new("payment", "run", run_id)?, 1)
        .await?;
    let mut exports = Vec::new();
    for event in events {
        if let sunshine_payment::aggregate::RunEvent::BankFileExported(exported) =
            sunshine_payment::aggregate::RunEvent::decode(&event.event_type, &event.payload)?
        {
            exports.push(exported);
        }
    }
    Ok(exports)
}

/// The exported file is in parts of exactly [`PART_BYTES`] (the last one shorter), more than
/// one, and is the file the first message and the recorded export describe.
fn ensure_streamed(
    exported: &ExportedFile,
    recorded: &pb::BankFileExported,
    count: u32,
    total_fen: i64,
) -> anyhow::Result<()> {
    let (last, whole) = exported
        .parts
        .split_last()
        .ok_or_else(|| anyhow::anyhow!("no message"))?;
    anyhow::ensure!(
        exported.parts.len() > 1
            && whole.iter().all(|part| *part == PART_BYTES)
            && (1..=PART_BYTES).contains(last),
        "parts {:?}",
        exported.parts
    );
    anyhow::ensure!(
        exported.file_bytes == exported.file.len() as u64
            && exported.sha256 == sha256_hex(&exported.file)
            && recorded.sha256 == exported.sha256,
        "the parts are not the file recorded: {exported:?} {recorded:?}"
    );
    anyhow::ensure!(
        exported.count == count
            && recorded.count == count
            && exported.total.map(|money| money.fen) == Some(total_fen)
            && recorded.total.map(|money| money.fen) == Some(total_fen),
        "{exported:?} {recorded:?}"
    );
    Ok(())
}

/// Lowercase hex of `text`'s bytes (how a dump shows bytes in a `BYTEA` column).
fn hex_of(text: &str) -> String {
    text.bytes().map(|byte| format!("{byte:02x}")).collect()
}

/// Whether `needle` occurs in `haystack`.
fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle)
}

/// Every table's rows as text (PostgreSQL), or the database's files (SQLite): what a dump of
/// the database holds.
async fn database_bytes(pool: &sqlx::AnyPool, database_url: &str) -> anyhow::Result<Vec<u8>> {
    if let Some(path) = database_url.strip_prefix("sqlite://") {
        let path = path.split('?').next().unwrap_or(path);
        let mut bytes = Vec::new();
        for suffix in ["", "-wal", "-shm", "-journal"] {
            if let Ok(file) = std::fs::read(format!("{path}{suffix}")) {
                bytes.extend(file);
            }
        }
        anyhow::ensure!(!bytes.is_empty(), "no database file at {path}");
        return Ok(bytes);
    }
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT CAST(table_name AS TEXT) FROM information_schema.tables \
         WHERE table_schema = 'public' AND table_type = 'BASE TABLE'",
    )
    .fetch_all(pool)
    .await?;
    anyhow::ensure!(tables.iter().any(|table| table == "payment_accounts"));
    let mut bytes = Vec::new();
    for table in tables {
        // The names are the database's own tables', never input.
        let rows: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT CAST(t AS TEXT) FROM \"{table}\" t"
        )))
        .fetch_all(pool)
        .await?;
        for row in rows {
            bytes.extend(row.into_bytes());
        }
    }
    Ok(bytes)
}

async fn streamed_export(cluster: bool) -> anyhow::Result<()> {
    let auth = TestAuth::new()?;
    let backends = ScenarioBackends::start(cluster).await?;
    let mut config = test_config(&auth, backends.database_url(), backends.bus_url());
    config.payment.bank_file_chunk_bytes = PART_BYTES;
    let intake = RunningService::start(
        sunshine_intake::SERVICE_NAME,
        backends.service_config(&config, sunshine_intake::SERVICE_NAME),
        sunshine_intake::run_sharing_process,
    )
    .await?;
    let service = RunningService::start(
        sunshine_payment::SERVICE_NAME,
        backends.service_config(&config, sunshine_payment::SERVICE_NAME),
        sunshine_payment::run_sharing_process,
    )
    .await?;
    for running in [&intake, &service] {
        running
            .wait_for_health(ServingStatus::Serving, PATIENCE)
            .await?;
    }
    let database = sunshine_platform::backends::Database::connect(
        &sunshine_platform::config::DatabaseConfig {
            url: backends.database_url(),
            ..Default::default()
        },
    )
    .await?;
    let store = EventStore::from_database(&database);
    let intake_client = IntakeServiceClient::new(intake.channel().await?);
    let payment = Payment {
        client: PaymentServiceClient::new(service.channel().await?),
    };
    let clerk = auth.token_for("clerk-1", Role::VillageClerk, VILLAGE);
    let officer = auth.token_for("officer-1", Role::FinanceOfficer, DISTRICT);
    let importer = auth.token_for("officer-2", Role::FinanceOfficer, DISTRICT);
    let approver = auth.token_for("approver-1", Role::FinanceApprover, DISTRICT);
    let auditor = auth.token_for("auditor-1", Role::Auditor, DISTRICT);

    // Three households registered at intake, each with its account; their cases approved.
    let mut households = Vec::new();
    for (seed, (number, holder, fen)) in ACCOUNTS.iter().enumerate() {
        let mut request = registration(&format!("register-{seed}"), &family(40 + seed as u32));
        request.payment_account = Some(pb::PaymentAccount {
            bank: "示例农商银行".into(),
            account_number: (*number).into(),
            holder_name: (*holder).into(),
        });
        let registered = intake_client
            .clone()
            .register_household(with_token(request, &clerk)?)
            .await?
            .into_inner();
        approved_case(
            &store,
            &format!("case-export-{seed}"),
            &registered.household_id,
            *fen,
        )
        .await?;
        households.push(registered.household_id);
    }
    settle(&store).await?;
    let run = payment
        .approved_run(&officer, &approver, "run-export-1")
        .await?;
    let total_fen: i64 = ACCOUNTS.iter().map(|(_, _, fen)| fen).sum();
    anyhow::ensure!(
        run.control.as_ref().map(|control| control.count) == Some(3),
        "{run:?}"
    );

    // CSV: several messages, the file recorded; each line the household's real account.
    let csv = payment
        .export(&officer, &run.run_id, pb::BankFileFormat::CsvUtf8)
        .await?;
    let recorded = recorded_exports(&store, &run.run_id).await?;
    anyhow::ensure!(recorded.len() == 1, "{recorded:?}");
    ensure_streamed(&csv, &recorded[0], 3, total_fen)?;
    anyhow::ensure!(recorded[0].format == "BANK_FILE_FORMAT_CSV_UTF8");
    let text = std::str::from_utf8(&csv.file)?;
    for (number, holder, fen) in ACCOUNTS {
        anyhow::ensure!(
            text.contains(&format!("D,{number},{holder},{fen},")),
            "no line of {holder}'s account in {text}"
        );
    }
    anyhow::ensure!(text.ends_with(&format!("T,3,{total_fen}\r\n")), "{text}");
    for household_id in &households {
        anyhow::ensure!(!text.contains(household_id.as_str()));
    }

    // GBK: the same, the names in GBK bytes; the second export is recorded too.
    let gbk = payment
        .export(&approver, &run.run_id, pb::BankFileFormat::FixedGbk)
        .await?;
    let recorded = recorded_exports(&store, &run.run_id).await?;
    anyhow::ensure!(recorded.len() == 2, "{recorded:?}");
    ensure_streamed(&gbk, &recorded[1], 3, total_fen)?;
    anyhow::ensure!(gbk.file.len() == 4 * 146, "{}", gbk.file.len());
    for (number, holder, _) in ACCOUNTS {
        let (name, _, unmappable) = encoding_rs::GBK.encode(holder);
        anyhow::ensure!(!unmappable);
        anyhow::ensure!(contains(&gbk.file, number.as_bytes()) && contains(&gbk.file, &name));
    }
    // Every export of the same run in the same format is the same bytes.
    let again = payment
        .export(&officer, &run.run_id, pb::BankFileFormat::FixedGbk)
        .await?;
    anyhow::ensure!(again.file == gbk.file && again.sha256 == gbk.sha256);

    // The bank's result, in the last export's layout, matched against the accounts opened
    // again: an account changed is refused whole on its line; the right one is recorded.
    let lines: Vec<ResultLine> = batch_lines(&csv.file)?;
    let mut changed = lines.clone();
    changed[1].account = "6222999999999999".into();
    let version = payment.version(&auditor, &run.run_id).await?;
    let refused = payment
        .import(
            &importer,
            "result-changed",
            &run.run_id,
            result_file(Format::FixedGbk, &changed)?,
        )
        .await
        .err()
        .ok_or_else(|| anyhow::anyhow!("a result with a changed account was recorded"))?;
    anyhow::ensure!(
        refused.code() == Code::InvalidArgument && violated_fields(&refused) == ["lines[1]"],
        "{refused:?}"
    );
    anyhow::ensure!(
        !refused.message().contains("6222999999999999")
            && !format!("{:?}", refused.details()).contains("6222999999999999"),
        "the refusal repeats the account"
    );
    anyhow::ensure!(payment.version(&auditor, &run.run_id).await? == version);
    let recorded_result = payment
        .import(
            &importer,
            "result-right",
            &run.run_id,
            result_file(Format::FixedGbk, &lines)?,
        )
        .await?;
    anyhow::ensure!(
        recorded_result.status == "result_recorded"
            && recorded_result
                .states
                .as_ref()
                .map(|states| states.paid_count)
                == Some(3),
        "{recorded_result:?}"
    );
    settle(&store).await?;

    // The 纪委's export: each account's real last 4 digits.
    let inspection = payment
        .client
        .clone()
        .export_run_for_inspection(with_token(
            pb::ExportRunForInspectionRequest {
                run_id: run.run_id.clone(),
            },
            &auditor,
        )?)
        .await?
        .into_inner();
    let inspection_text = String::from_utf8(inspection.file)?;
    for (number, _, fen) in ACCOUNTS {
        let tail = &number[number.len() - 4..];
        anyhow::ensure!(
            inspection_text.contains(&format!(",{fen},{tail},paid\r\n")),
            "no tail {tail} in {inspection_text}"
        );
        anyhow::ensure!(!inspection_text.contains(number));
    }

    // A household registered without an account: its run's export is refused, saying how
    // many orders lack one, and nothing is recorded.
    let mut request = registration("register-none", &family(45));
    request.payment_account = None;
    let unpaid = intake_client
        .clone()
        .register_household(with_token(request, &clerk)?)
        .await?
        .into_inner();
    approved_case(&store, "case-export-none", &unpaid.household_id, 45_000).await?;
    settle(&store).await?;
    let lacking = payment
        .approved_run(&officer, &approver, "run-export-2")
        .await?;
    anyhow::ensure!(lacking.control.as_ref().map(|control| control.count) == Some(1));
    let refused = payment
        .export(&officer, &lacking.run_id, pb::BankFileFormat::CsvUtf8)
        .await
        .err()
        .ok_or_else(|| anyhow::anyhow!("a run with an order lacking an account was exported"))?;
    anyhow::ensure!(
        refused.code() == Code::FailedPrecondition
            && refused.message().contains("1 of the run's orders")
            && !refused.message().contains(unpaid.household_id.as_str()),
        "{refused:?}"
    );
    anyhow::ensure!(recorded_exports(&store, &lacking.run_id).await?.is_empty());
    anyhow::ensure!(payment.version(&auditor, &lacking.run_id).await? == lacking.version);

    // No account number in clear: not in the log (payloads, metadata), nor in any table.
    let events = store.read_log(0, u32::MAX).await?;
    anyhow::ensure!(events.len() > 10, "{} events", events.len());
    let dump = database_bytes(store.pool(), &backends.database_url()).await?;
    // The dump does hold the tables' rows: a household id, in payment's orders and elsewhere.
    anyhow::ensure!(contains(&dump, households[0].as_bytes()), "an empty dump");
    for (number, _, _) in ACCOUNTS {
        for event in &events {
            anyhow::ensure!(
                !contains(&event.payload, number.as_bytes())
                    && !event.metadata_json.contains(number),
                "{}'s account in clear in {}",
                event.stream_id,
                event.event_type
            );
        }
        anyhow::ensure!(
            !contains(&dump, number.as_bytes()) && !contains(&dump, hex_of(number).as_bytes()),
            "an account number in clear in the database"
        );
    }
    database.close().await;
    service.stop().await?;
    intake.stop().await?;
    Ok(())
}
