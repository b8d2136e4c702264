//! Payees: a 特困 person supported centrally (集中供养) is paid to the care institution that
//! supports them, not to the household — on PostgreSQL + NATS JetStream and on SQLite + the
//! in-process bus (`docs/bank-files.md`, "The accounts").
//!
//! Review's approvals are appended at the boundary as review appends them, each household
//! registered with its own payment account (sealed as intake seals it); the institutions are
//! the EXAMPLE funds file's (`services/payment/funds/example-district.toml`): the district's
//! central care home, open, and a nursing home closed since 2026-01-01.
//!
//! - A 特困 case approved naming the central care home and a dispersed 特困 case (no
//!   institution) go into this month's run; its bank file (CSV and GBK) pays the care home's
//!   account in the care home's name on the first order's line — the household's own account
//!   appears nowhere in it — and the household's own account on the second's;
//!   `BankFileExported` records the day the institutions' accounts were taken on.
//! - The bank's result is matched against those payees: the household's account on the care
//!   home's line is refused whole naming the line; the right file pays both. The 纪委's export
//!   gives each order the tail of the account it paid. A later return (退票) of the care
//!   home's payment is matched the same way, and the re-pay run pays the care home again.
//! - A run paying an institution the file does not name and one that is closed: the export is
//!   `FAILED_PRECONDITION` naming both institutions and why — neither person, household nor
//!   case — and nothing is recorded.

use std::time::Duration;

use sunshine_domain::Month;
use sunshine_eventlog::{Actor, EventMetadata, EventStore, ExpectedVersion, NewEvent, StreamId};
use sunshine_payment::bank_files::{Format, ResultLine};
use sunshine_platform::Role;
use sunshine_platform::clock::{Clock as _, SystemClock};
use sunshine_proto::events::StreamEvent as _;
use sunshine_proto::v1 as pb;
use sunshine_proto::v1::payment_service_client::PaymentServiceClient;
use sunshine_tests::accounts::{account_of, register_account};
use sunshine_tests::bank::{ExportedFile, batch_lines, collect, result_file, returns_file};
use sunshine_tests::{
    DISTRICT, RunningService, ScenarioBackends, TestAuth, VILLAGE, test_config, violated_fields,
    with_token,
};
use tonic::transport::Channel;
use tonic::{Code, Status};
use tonic_health::pb::health_check_response::ServingStatus;

const PATIENCE: Duration = Duration::from_secs(30);

/// The EXAMPLE district's central care home (示例区中心敬老院), its account from 2025.
const CARE_HOME: &str = "12990100MB0000001P";
const CARE_HOME_NAME: &str = "示例区中心敬老院";
const CARE_HOME_ACCOUNT: &str = "6228480099001234567";
/// The EXAMPLE district's nursing home, closed since 2026-01-01.
const CLOSED_HOME: &str = "52990100MJ00000038";

mod care_institutions {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn on_postgres_and_nats() -> anyhow::Result<()> {
        super::care_institutions(true).await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn on_sqlite_and_the_in_process_bus() -> anyhow::Result<()> {
        super::care_institutions(false).await
    }
}

fn this_month() -> Month {
    Month::of(SystemClock.today())
}

fn status(error: anyhow::Error) -> Status {
    Status::internal(error.to_string())
}

/// A code the institutions file does not name (a valid unified social credit code).
fn unknown_home() -> String {
    sunshine_domain::CreditCode::with_check_character("12990100MB0000009")
        .map(|code| code.as_str().to_owned())
        .unwrap_or_default()
}

/// Review's opening and approval of a 特困 case of `household_id` paying `fen` from this
/// month, to `care_institution` ("" for dispersed support), appended at the boundary as review
/// appends them; the household registered first with its own account.
async fn approved_tekun(
    store: &EventStore,
    config: &sunshine_platform::Config,
    case_id: &str,
    household_id: &str,
    fen: i64,
    care_institution: &str,
) -> anyhow::Result<()> {
    register_account(store, config, household_id, &account_of(household_id)).await?;
    let opened = pb::CaseOpened {
        case_id: case_id.into(),
        application_id: format!("application-of-{case_id}"),
        household_id: household_id.into(),
        program_code: "tekun".into(),
        workflow: "means_tested_review".into(),
        accepted_org_unit_code: VILLAGE.into(),
        hukou_org_unit_code: VILLAGE.into(),
        ..Default::default()
    };
    let approved = pb::CaseApproved {
        case_id: case_id.into(),
        program_code: "tekun".into(),
        monthly_amount: Some(pb::Money { fen }),
        start_month: this_month().to_string(),
        reasons: "符合特困人员认定条件".into(),
        care_institution_code: care_institution.into(),
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
        self.approve(approver, &run).await
    }

    /// `run` approved by `approver`, re-keying its control figures.
    async fn approve(
        &self,
        approver: &str,
        run: &pb::RunResponse,
    ) -> anyhow::Result<pb::RunResponse> {
        let control = run.control.clone().unwrap_or_default();
        Ok(self
            .client
            .clone()
            .approve_run(with_token(
                pb::ApproveRunRequest {
                    command_id: format!("approve-{}", run.run_id),
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

    /// This month's re-pay run of the failed and returned orders.
    async fn repay(&self, officer: &str, command_id: &str) -> anyhow::Result<pb::RunResponse> {
        Ok(self
            .client
            .clone()
            .create_repay_run(with_token(
                pb::CreateRepayRunRequest {
                    command_id: command_id.into(),
                    period: this_month().to_string(),
                },
                officer,
            )?)
            .await?
            .into_inner())
    }

    async fn returns(
        &self,
        token: &str,
        command_id: &str,
        run_id: &str,
        file: Vec<u8>,
    ) -> Result<pb::RunResponse, Status> {
        let request = with_token(
            pb::ImportBankReturnsRequest {
                command_id: command_id.into(),
                run_id: run_id.into(),
                file,
            },
            token,
        )
        .map_err(status)?;
        self.client
            .clone()
            .import_bank_returns(request)
            .await
            .map(tonic::Response::into_inner)
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

    /// The run's orders, by case id.
    async fn orders(
        &self,
        token: &str,
        run_id: &str,
    ) -> anyhow::Result<std::collections::BTreeMap<String, pb::PaymentOrder>> {
        let listed = self
            .client
            .clone()
            .list_run_orders(with_token(
                pb::ListRunOrdersRequest {
                    run_id: run_id.into(),
                    page: Some(pb::PageRequest {
                        page_size: 100,
                        page_token: String::new(),
                    }),
                },
                token,
            )?)
            .await?
            .into_inner();
        Ok(listed
            .orders
            .into_iter()
            .filter_map(|listed| listed.order)
            .map(|order| (order.case_id.clone(), order))
            .collect())
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

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle)
}

async fn care_institutions(cluster: bool) -> anyhow::Result<()> {
    let auth = TestAuth::new()?;
    let backends = ScenarioBackends::start(cluster).await?;
    let config = test_config(&auth, backends.database_url(), backends.bus_url());
    let service = RunningService::start(
        sunshine_payment::SERVICE_NAME,
        backends.service_config(&config, sunshine_payment::SERVICE_NAME),
        sunshine_payment::run_sharing_process,
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
    let payment = Payment {
        client: PaymentServiceClient::new(service.channel().await?),
    };
    let officer = auth.token_for("officer-1", Role::FinanceOfficer, DISTRICT);
    let importer = auth.token_for("officer-2", Role::FinanceOfficer, DISTRICT);
    let approver = auth.token_for("approver-1", Role::FinanceApprover, DISTRICT);
    let auditor = auth.token_for("auditor-1", Role::Auditor, DISTRICT);

    // A 特困 person supported centrally by the care home, one supported at home.
    let (central, central_household) = ("case-care-central", "household-care-central");
    let (dispersed, dispersed_household) = ("case-care-dispersed", "household-care-dispersed");
    approved_tekun(
        &store,
        &config,
        central,
        central_household,
        110_000,
        CARE_HOME,
    )
    .await?;
    approved_tekun(&store, &config, dispersed, dispersed_household, 90_000, "").await?;
    settle(&store).await?;
    let run = payment
        .approved_run(&officer, &approver, "run-care-1")
        .await?;
    anyhow::ensure!(
        run.control.as_ref().map(|control| control.count) == Some(2),
        "{run:?}"
    );
    let orders = payment.orders(&auditor, &run.run_id).await?;
    let central_order = orders
        .get(central)
        .ok_or_else(|| anyhow::anyhow!("no order of the centrally supported case: {orders:?}"))?;
    let dispersed_order = orders
        .get(dispersed)
        .ok_or_else(|| anyhow::anyhow!("no order of the dispersed case: {orders:?}"))?;
    // Each order carries its payee.
    anyhow::ensure!(
        central_order.care_institution_code == CARE_HOME
            && dispersed_order.care_institution_code.is_empty(),
        "{orders:?}"
    );

    // The bank file pays the care home's account in its name, not the household's.
    let csv = payment
        .export(&officer, &run.run_id, pb::BankFileFormat::CsvUtf8)
        .await?;
    let text = std::str::from_utf8(&csv.file)?;
    let central_account = account_of(central_household);
    let dispersed_account = account_of(dispersed_household);
    anyhow::ensure!(
        text.contains(&format!(
            "D,{CARE_HOME_ACCOUNT},{CARE_HOME_NAME},110000,{}\r\n",
            central_order.order_id
        )),
        "no line paying the care home in {text}"
    );
    anyhow::ensure!(
        !text.contains(central_account.account_number.as_str()),
        "the centrally supported person's household account is in the file"
    );
    anyhow::ensure!(
        text.contains(&format!(
            "D,{},{},90000,{}\r\n",
            dispersed_account.account_number,
            dispersed_account.holder_name,
            dispersed_order.order_id
        )),
        "no line paying the dispersed household in {text}"
    );
    anyhow::ensure!(text.ends_with("T,2,200000\r\n"), "{text}");
    let recorded = recorded_exports(&store, &run.run_id).await?;
    let today = SystemClock.today();
    anyhow::ensure!(
        recorded.len() == 1
            && sunshine_proto::dates::to_date(recorded[0].payees_on.as_ref()) == Some(today),
        "{recorded:?}"
    );
    // The GBK layout: the care home's name in GBK bytes, its account, not the household's.
    let gbk = payment
        .export(&approver, &run.run_id, pb::BankFileFormat::FixedGbk)
        .await?;
    let (name, _, unmappable) = encoding_rs::GBK.encode(CARE_HOME_NAME);
    anyhow::ensure!(!unmappable);
    anyhow::ensure!(
        contains(&gbk.file, CARE_HOME_ACCOUNT.as_bytes())
            && contains(&gbk.file, &name)
            && !contains(&gbk.file, central_account.account_number.as_bytes())
            && gbk.file.len() == 3 * 146,
        "{} bytes",
        gbk.file.len()
    );

    // The bank's result is matched against the payees, in the last export's layout: the
    // household's own account on the care home's line is refused whole, naming the line.
    let lines = batch_lines(&csv.file)?;
    let at = lines
        .iter()
        .position(|line| line.order_id == central_order.order_id)
        .ok_or_else(|| anyhow::anyhow!("no line of the care home's order"))?;
    let mut to_household = lines.clone();
    to_household[at].account = central_account.account_number.clone();
    let version = payment.version(&auditor, &run.run_id).await?;
    let refused = payment
        .import(
            &importer,
            "result-care-wrong",
            &run.run_id,
            result_file(Format::FixedGbk, &to_household)?,
        )
        .await
        .err()
        .ok_or_else(|| anyhow::anyhow!("the household's account was taken for the care home's"))?;
    anyhow::ensure!(
        refused.code() == Code::InvalidArgument
            && violated_fields(&refused) == [format!("lines[{at}]")],
        "{refused:?}"
    );
    anyhow::ensure!(payment.version(&auditor, &run.run_id).await? == version);
    let paid = payment
        .import(
            &importer,
            "result-care-right",
            &run.run_id,
            result_file(Format::FixedGbk, &lines)?,
        )
        .await?;
    anyhow::ensure!(
        paid.states.as_ref().map(|states| states.paid_count) == Some(2),
        "{paid:?}"
    );
    settle(&store).await?;

    // The 纪委's export: each order with the tail of the account it paid.
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
    let care_tail = &CARE_HOME_ACCOUNT[CARE_HOME_ACCOUNT.len() - 4..];
    let number = &dispersed_account.account_number;
    let household_tail = &number[number.len() - 4..];
    anyhow::ensure!(
        inspection_text.contains(&format!(",110000,{care_tail},paid\r\n"))
            && inspection_text.contains(&format!(",90000,{household_tail},paid\r\n")),
        "{inspection_text}"
    );

    // The bank returns the care home's payment later (退票), in the last export's layout: the
    // household's account on the line is refused; the care home's is recorded, and the re-pay
    // run pays the care home again.
    let returned = ResultLine {
        paid: false,
        reason: "账户已冻结".into(),
        ..lines[at].clone()
    };
    let to_household = ResultLine {
        account: central_account.account_number.clone(),
        ..returned.clone()
    };
    let refused = payment
        .returns(
            &importer,
            "returns-care-wrong",
            &run.run_id,
            returns_file(Format::FixedGbk, &[to_household])?,
        )
        .await
        .err()
        .ok_or_else(|| anyhow::anyhow!("a return to the household's account was recorded"))?;
    anyhow::ensure!(
        refused.code() == Code::InvalidArgument && violated_fields(&refused) == ["lines[0]"],
        "{refused:?}"
    );
    let after = payment
        .returns(
            &importer,
            "returns-care",
            &run.run_id,
            returns_file(Format::FixedGbk, &[returned])?,
        )
        .await?;
    anyhow::ensure!(
        after.states.as_ref().map(|states| states.returned_count) == Some(1),
        "{after:?}"
    );
    settle(&store).await?;
    let repay = payment.repay(&officer, "repay-care").await?;
    let repay = payment.approve(&approver, &repay).await?;
    let repaid = payment.orders(&auditor, &repay.run_id).await?;
    let again = repaid
        .get(central)
        .ok_or_else(|| anyhow::anyhow!("no re-payment of the care home's order: {repaid:?}"))?;
    anyhow::ensure!(
        repaid.len() == 1
            && again.care_institution_code == CARE_HOME
            && again.repays_order_id == central_order.order_id,
        "{repaid:?}"
    );
    let repay_file = payment
        .export(&officer, &repay.run_id, pb::BankFileFormat::CsvUtf8)
        .await?;
    let repay_text = std::str::from_utf8(&repay_file.file)?;
    anyhow::ensure!(
        repay_text.contains(&format!(
            "D,{CARE_HOME_ACCOUNT},{CARE_HOME_NAME},110000,{}\r\n",
            again.order_id
        )),
        "{repay_text}"
    );

    // A run paying an institution the file does not name and one closed: refused, naming the
    // institutions and nobody else; nothing recorded.
    let unknown = unknown_home();
    let cases = [
        (
            "case-care-unknown",
            "household-care-unknown",
            unknown.as_str(),
        ),
        ("case-care-closed", "household-care-closed", CLOSED_HOME),
    ];
    for (case_id, household_id, institution) in cases {
        approved_tekun(&store, &config, case_id, household_id, 70_000, institution).await?;
    }
    settle(&store).await?;
    let unpayable = payment
        .approved_run(&officer, &approver, "run-care-2")
        .await?;
    anyhow::ensure!(unpayable.control.as_ref().map(|control| control.count) == Some(2));
    for format in [pb::BankFileFormat::CsvUtf8, pb::BankFileFormat::FixedGbk] {
        let refused = payment
            .export(&officer, &unpayable.run_id, format)
            .await
            .err()
            .ok_or_else(|| anyhow::anyhow!("a run paying unpayable institutions was exported"))?;
        let message = refused.message();
        anyhow::ensure!(
            refused.code() == Code::FailedPrecondition
                && message.contains(&format!("{unknown} (not in the institutions file)"))
                && message.contains(&format!("{CLOSED_HOME} (closed since 2026-01-01)")),
            "{refused:?}"
        );
        for (case_id, household_id, _) in cases {
            let account = account_of(household_id);
            anyhow::ensure!(
                !message.contains(case_id)
                    && !message.contains(household_id)
                    && !message.contains(account.account_number.as_str())
                    && !message.contains(account.holder_name.as_str()),
                "the refusal names a person: {message}"
            );
        }
    }
    anyhow::ensure!(
        recorded_exports(&store, &unpayable.run_id)
            .await?
            .is_empty()
    );
    anyhow::ensure!(payment.version(&auditor, &unpayable.run_id).await? == unpayable.version);

    database.close().await;
    service.stop().await?;
    Ok(())
}
