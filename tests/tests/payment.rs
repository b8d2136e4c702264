//! Payment runs through gRPC, on PostgreSQL + NATS JetStream and on SQLite + the in-process
//! bus. Review's decisions are appended to the log at the boundary, exactly as review appends
//! them (two approved dibao cases, in two street-towns, and one assist-first grant); payment's
//! projection hears them; then a finance officer creates this month's run and its control
//! totals are checked, the creator's approval is refused (four eyes), a wrong re-keyed total
//! is refused and writes nothing, a second officer approves, and the run reads approved. The
//! same period created again adds no order; a retry answers the same run; an entitlement new
//! since gets a run of its own, and two creations racing for it make one run; next month's run
//! has the monthly benefits and not the grant. Then the bank: the approved run is exported in both
//! formats (the unapproved one is refused), every kind of malformed result file is refused whole
//! and writes nothing, and a result with one failure pays and fails the orders as it says; its
//! retry answers the first result, a second result and a later export are refused. The failed
//! order is paid again by a re-pay run naming it; re-paying twice adds no order.
//!
//! The settlement scenario (`payment_settlement`, the acceptance, on both backends):
//! two dibao cases approved from next month and an assist-first grant paid at once → the run
//! for next month → its approval by a second officer (the creator: `PERMISSION_DENIED`; a
//! wrong re-keyed total: refused) → the bank file → a result with one failure → the re-pay run
//! (approved, exported, paid) → one later return (every malformed returns file refused whole)
//! → the reconciliation closed by a second approver; the ledger checked at each step in fen.

use std::time::Duration;

use sunshine_domain::Month;
use sunshine_eventlog::{Actor, EventMetadata, EventStore, ExpectedVersion, NewEvent, StreamId};
use sunshine_platform::Role;
use sunshine_platform::clock::{Clock as _, SystemClock};
use sunshine_proto::events::TypedEvent;
use sunshine_proto::v1 as pb;
use sunshine_proto::v1::payment_service_client::PaymentServiceClient;
use sunshine_tests::{
    DISTRICT, RunningService, ScenarioBackends, TestAuth, VILLAGE, test_config, violated_fields,
    with_token,
};
use tonic::transport::Channel;
use tonic::{Code, Status};
use tonic_health::pb::health_check_response::ServingStatus;

const PATIENCE: Duration = Duration::from_secs(30);
/// A village of another street-town of the district.
const OTHER_STREET_VILLAGE: &str = "990101002001";
const OTHER_DISTRICT: &str = "990102000000";

mod payment_settlement {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn on_postgres_and_nats() -> anyhow::Result<()> {
        super::payment_settlement(true).await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn on_sqlite_and_the_in_process_bus() -> anyhow::Result<()> {
        super::payment_settlement(false).await
    }
}

mod payment_runs {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn on_postgres_and_nats() -> anyhow::Result<()> {
        super::payment_runs(true).await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn on_sqlite_and_the_in_process_bus() -> anyhow::Result<()> {
        super::payment_runs(false).await
    }
}

/// Appends `events` to review's case stream of `case_id`, as review would; a new case's
/// household (`household-of-<case id>`, as [`opened`] names it) is registered with its
/// payment account first, as intake would have registered it.
async fn append_as_review(
    store: &EventStore,
    config: &sunshine_platform::Config,
    case_id: &str,
    events: &[&dyn TypedEventRef],
) -> anyhow::Result<()> {
    let stream = StreamId::new("review", "case", case_id)?;
    let version = store.stream_version(&stream).await?;
    if version == 0 {
        sunshine_tests::accounts::register_if_new(
            store,
            config,
            &format!("household-of-{case_id}"),
        )
        .await?;
    }
    let metadata = EventMetadata {
        actor: Actor {
            subject: "test-boundary".into(),
            role: "system".into(),
            org_unit: String::new(),
            department_code: None,
        },
        ..EventMetadata::default()
    };
    let expected = if version == 0 {
        ExpectedVersion::NoStream
    } else {
        ExpectedVersion::Exact(version)
    };
    store
        .append(
            &stream,
            expected,
            &metadata,
            events
                .iter()
                .map(|event| event.new_event(case_id))
                .collect(),
        )
        .await?;
    Ok(())
}

/// An event of any registered type, as a `NewEvent` of a case.
trait TypedEventRef {
    fn new_event(&self, case_id: &str) -> NewEvent;
}

impl<E: TypedEvent> TypedEventRef for E {
    fn new_event(&self, case_id: &str) -> NewEvent {
        NewEvent::typed(case_id, self)
    }
}

fn opened(case_id: &str, program: &str, hukou: &str) -> pb::CaseOpened {
    pb::CaseOpened {
        case_id: case_id.into(),
        application_id: format!("application-of-{case_id}"),
        household_id: format!("household-of-{case_id}"),
        program_code: program.into(),
        workflow: "means_tested_review".into(),
        accepted_org_unit_code: hukou.into(),
        hukou_org_unit_code: hukou.into(),
        ..Default::default()
    }
}

fn approved(case_id: &str, fen: i64, start_month: Month) -> pb::CaseApproved {
    pb::CaseApproved {
        case_id: case_id.into(),
        program_code: "dibao".into(),
        monthly_amount: Some(pb::Money { fen }),
        start_month: start_month.to_string(),
        reasons: "符合条件".into(),
        ..Default::default()
    }
}

/// Waits until payment's projection has passed every event of the log.
async fn settle(store: &EventStore) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        if sunshine_tests::events_behind(store.pool(), "payment-entitlements").await? == 0 {
            return Ok(());
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "payment's projection never caught up"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

struct Payment {
    client: PaymentServiceClient<Channel>,
}

impl Payment {
    async fn create(
        &self,
        token: &str,
        command_id: &str,
        period: Month,
    ) -> Result<pb::RunResponse, Status> {
        self.create_text(token, command_id, &period.to_string())
            .await
    }

    async fn create_text(
        &self,
        token: &str,
        command_id: &str,
        period: &str,
    ) -> Result<pb::RunResponse, Status> {
        let request = pb::CreateRunRequest {
            command_id: command_id.into(),
            period: period.into(),
        };
        let request =
            with_token(request, token).map_err(|error| Status::internal(error.to_string()))?;
        self.client
            .clone()
            .create_run(request)
            .await
            .map(tonic::Response::into_inner)
    }

    async fn approve(
        &self,
        token: &str,
        command_id: &str,
        run: &pb::RunResponse,
        count: u32,
        fen: i64,
    ) -> Result<pb::RunResponse, Status> {
        let request = pb::ApproveRunRequest {
            command_id: command_id.into(),
            run_id: run.run_id.clone(),
            expected_version: run.version,
            control_count: count,
            control_total: Some(pb::Money { fen }),
        };
        let request =
            with_token(request, token).map_err(|error| Status::internal(error.to_string()))?;
        self.client
            .clone()
            .approve_run(request)
            .await
            .map(tonic::Response::into_inner)
    }

    async fn export(
        &self,
        token: &str,
        run_id: &str,
        format: pb::BankFileFormat,
    ) -> Result<sunshine_tests::bank::ExportedFile, Status> {
        let request = pb::ExportBankFileRequest {
            run_id: run_id.into(),
            format: format.into(),
        };
        let request =
            with_token(request, token).map_err(|error| Status::internal(error.to_string()))?;
        let stream = self.client.clone().export_bank_file(request).await?;
        sunshine_tests::bank::collect(stream).await
    }

    async fn import(
        &self,
        token: &str,
        command_id: &str,
        run_id: &str,
        file: Vec<u8>,
    ) -> Result<pb::RunResponse, Status> {
        let request = pb::ImportBankResultRequest {
            command_id: command_id.into(),
            run_id: run_id.into(),
            file,
        };
        let request =
            with_token(request, token).map_err(|error| Status::internal(error.to_string()))?;
        self.client
            .clone()
            .import_bank_result(request)
            .await
            .map(tonic::Response::into_inner)
    }

    async fn get(&self, token: &str, run_id: &str) -> Result<pb::RunResponse, Status> {
        let request = pb::GetRunRequest {
            run_id: run_id.into(),
        };
        let request =
            with_token(request, token).map_err(|error| Status::internal(error.to_string()))?;
        self.client
            .clone()
            .get_run(request)
            .await
            .map(tonic::Response::into_inner)
    }

    async fn orders(
        &self,
        token: &str,
        run_id: &str,
        page_size: i32,
        page_token: &str,
    ) -> Result<pb::ListRunOrdersResponse, Status> {
        let request = pb::ListRunOrdersRequest {
            run_id: run_id.into(),
            page: Some(pb::PageRequest {
                page_size,
                page_token: page_token.into(),
            }),
        };
        let request =
            with_token(request, token).map_err(|error| Status::internal(error.to_string()))?;
        self.client
            .clone()
            .list_run_orders(request)
            .await
            .map(tonic::Response::into_inner)
    }
}

impl Payment {
    async fn trial_balance(&self, token: &str) -> Result<pb::TrialBalanceResponse, Status> {
        let request = with_token(pb::GetTrialBalanceRequest {}, token)
            .map_err(|error| Status::internal(error.to_string()))?;
        self.client
            .clone()
            .get_trial_balance(request)
            .await
            .map(tonic::Response::into_inner)
    }

    /// Fund → balance in fen.
    async fn fund_balances(&self, token: &str) -> Result<Vec<(String, i64)>, Status> {
        let request = with_token(pb::GetFundBalancesRequest {}, token)
            .map_err(|error| Status::internal(error.to_string()))?;
        let answer = self
            .client
            .clone()
            .get_fund_balances(request)
            .await
            .map(tonic::Response::into_inner)?;
        Ok(answer
            .funds
            .into_iter()
            .map(|fund| {
                assert_eq!(fund.account, format!("fund:{}", fund.fund));
                (fund.fund, fund.balance.map_or(0, |money| money.fen))
            })
            .collect())
    }

    /// The ledger after the bank paid `paid` fen: the trial balance is zero, and the funds'
    /// balances are `funds` (minus what each paid).
    async fn ensure_ledger(
        &self,
        token: &str,
        paid: i64,
        funds: &[(&str, i64)],
    ) -> anyhow::Result<()> {
        let balance = self.trial_balance(token).await?;
        let fen = |money: Option<pb::Money>| money.map_or(-1, |money| money.fen);
        anyhow::ensure!(
            fen(balance.debits) == paid
                && fen(balance.credits) == paid
                && fen(balance.difference) == 0,
            "{balance:?}"
        );
        let balances = self.fund_balances(token).await?;
        let expected: Vec<(String, i64)> = funds
            .iter()
            .map(|(fund, fen)| ((*fund).to_owned(), *fen))
            .collect();
        anyhow::ensure!(balances == expected, "{balances:?}");
        Ok(())
    }
}

// ---- settlement: returns (退票) and the reconciliation's close ----

impl Payment {
    async fn repay(
        &self,
        token: &str,
        command_id: &str,
        period: Month,
    ) -> Result<pb::RunResponse, Status> {
        let request = pb::CreateRepayRunRequest {
            command_id: command_id.into(),
            period: period.to_string(),
        };
        let request =
            with_token(request, token).map_err(|error| Status::internal(error.to_string()))?;
        self.client
            .clone()
            .create_repay_run(request)
            .await
            .map(tonic::Response::into_inner)
    }

    async fn returns(
        &self,
        token: &str,
        command_id: &str,
        run_id: &str,
        file: Vec<u8>,
    ) -> Result<pb::RunResponse, Status> {
        let request = pb::ImportBankReturnsRequest {
            command_id: command_id.into(),
            run_id: run_id.into(),
            file,
        };
        let request =
            with_token(request, token).map_err(|error| Status::internal(error.to_string()))?;
        self.client
            .clone()
            .import_bank_returns(request)
            .await
            .map(tonic::Response::into_inner)
    }

    /// Closes `run`'s reconciliation, re-keying (paid count, total) and (failed or returned
    /// count, total).
    async fn close(
        &self,
        token: &str,
        command_id: &str,
        run: &pb::RunResponse,
        paid: (u32, i64),
        unpaid: (u32, i64),
    ) -> Result<pb::RunResponse, Status> {
        let request = pb::CloseReconciliationRequest {
            command_id: command_id.into(),
            run_id: run.run_id.clone(),
            expected_version: run.version,
            paid_count: paid.0,
            paid_total: Some(pb::Money { fen: paid.1 }),
            unpaid_count: unpaid.0,
            unpaid_total: Some(pb::Money { fen: unpaid.1 }),
        };
        let request =
            with_token(request, token).map_err(|error| Status::internal(error.to_string()))?;
        self.client
            .clone()
            .close_reconciliation(request)
            .await
            .map(tonic::Response::into_inner)
    }

    /// The order id of `case_id`'s order in `run_id`.
    async fn order_of(&self, token: &str, run_id: &str, case_id: &str) -> anyhow::Result<String> {
        self.orders(token, run_id, 0, "")
            .await?
            .orders
            .iter()
            .filter_map(|listed| listed.order.as_ref())
            .find(|order| order.case_id == case_id)
            .map(|order| order.order_id.clone())
            .ok_or_else(|| anyhow::anyhow!("no order of {case_id} in run {run_id}"))
    }
}

/// Counts and totals by state: (paid), (failed), (returned), pending none.
fn ensure_states(
    run: &pb::RunResponse,
    paid: (u32, i64),
    failed: (u32, i64),
    returned: (u32, i64),
) -> anyhow::Result<()> {
    let states = run.states.unwrap_or_default();
    let fen = |money: Option<pb::Money>| money.map_or(-1, |money| money.fen);
    anyhow::ensure!(
        (states.paid_count, fen(states.paid_total)) == paid
            && (states.failed_count, fen(states.failed_total)) == failed
            && (states.returned_count, fen(states.returned_total)) == returned
            && states.pending_count == 0,
        "{run:?}"
    );
    Ok(())
}

/// The acceptance scenario, with the exact fen figures of the ledger at each step.
async fn payment_settlement(cluster: bool) -> anyhow::Result<()> {
    use pb::BankFileFormat::{CsvUtf8, FixedGbk};
    use sunshine_payment::bank_files::{Format, write_returns};
    use sunshine_tests::bank::{answer, batch_lines, result_file, returns_file};

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
    let creator_as_approver = auth.token_for("officer-1", Role::FinanceApprover, DISTRICT);
    let importer_as_approver = auth.token_for("officer-2", Role::FinanceApprover, DISTRICT);
    let approver = auth.token_for("approver-1", Role::FinanceApprover, DISTRICT);
    let closer = auth.token_for("approver-2", Role::FinanceApprover, DISTRICT);
    let auditor = auth.token_for("auditor-1", Role::Auditor, DISTRICT);
    let stranger = auth.token_for("officer-far", Role::FinanceOfficer, OTHER_DISTRICT);

    let this_month = Month::of(SystemClock.today());
    let next_month = this_month.next().expect("a month after this one");

    // Review: two dibao cases approved, paid from next month; an assist-first grant, at once.
    let (c1, c2, c3) = ("case-settle-1", "case-settle-2", "case-settle-3");
    append_as_review(
        &store,
        &config,
        c1,
        &[
            &opened(c1, "dibao", VILLAGE),
            &approved(c1, 80_000, next_month),
        ],
    )
    .await?;
    append_as_review(
        &store,
        &config,
        c2,
        &[
            &opened(c2, "dibao", OTHER_STREET_VILLAGE),
            &approved(c2, 65_000, next_month),
        ],
    )
    .await?;
    let granted = pb::AssistFirstGranted {
        case_id: c3.into(),
        amount: Some(pb::Money { fen: 150_000 }),
        cap: Some(pb::Money { fen: 200_000 }),
        reason: "火灾".into(),
        ..Default::default()
    };
    append_as_review(
        &store,
        &config,
        c3,
        &[&opened(c3, "temporary", VILLAGE), &granted],
    )
    .await?;
    settle(&store).await?;
    payment.ensure_ledger(&auditor, 0, &[]).await?;

    // The grant is paid at once: this month's run, from the emergency fund.
    let grant_run = payment
        .create(&officer, "settle-grant-run", this_month)
        .await?;
    let grant_control = grant_run.control.clone().unwrap_or_default();
    anyhow::ensure!(
        grant_control.count == 1 && grant_control.total == Some(pb::Money { fen: 150_000 }),
        "{grant_run:?}"
    );
    payment
        .approve(&approver, "settle-grant-approve", &grant_run, 1, 150_000)
        .await?;
    let grant_file = payment.export(&officer, &grant_run.run_id, CsvUtf8).await?;
    payment
        .import(
            &importer,
            "settle-grant-result",
            &grant_run.run_id,
            answer(&grant_file.file, Format::CsvUtf8, None)?,
        )
        .await?;
    settle(&store).await?;
    payment
        .ensure_ledger(&auditor, 150_000, &[("emergency", -150_000)])
        .await?;

    // The run for next month: the two dibao cases.
    let run = payment
        .create(&officer, "settle-next-run", next_month)
        .await?;
    let control = run.control.clone().unwrap_or_default();
    anyhow::ensure!(
        control.count == 2
            && control.total == Some(pb::Money { fen: 145_000 })
            && control.by_program == vec![total("dibao", 2, 145_000)]
            && control.by_street_town
                == vec![
                    total("990101001000", 1, 80_000),
                    total("990101002000", 1, 65_000)
                ]
            && run.reconciliation == "not_ready",
        "{run:?}"
    );
    // The same run again, and a retry, add no order.
    let before = log_size(&store).await?;
    anyhow::ensure!(
        payment
            .create(&officer, "settle-next-run", next_month)
            .await?
            == run
    );
    refused(
        payment
            .create(&officer, "settle-next-run-again", next_month)
            .await,
        Code::AlreadyExists,
    )?;
    anyhow::ensure!(log_size(&store).await? == before, "a repeated run wrote");

    // Four eyes, and the re-keyed figures; nothing is written by a refusal.
    refused(
        payment
            .approve(&creator_as_approver, "settle-by-creator", &run, 2, 145_000)
            .await,
        Code::PermissionDenied,
    )?;
    let wrong = refused(
        payment
            .approve(&approver, "settle-wrong-total", &run, 2, 145_100)
            .await,
        Code::InvalidArgument,
    )?;
    anyhow::ensure!(violated_fields(&wrong) == ["control_total"], "{wrong:?}");
    anyhow::ensure!(run_version(&store, &run.run_id).await? == 2);
    payment
        .approve(&approver, "settle-next-approve", &run, 2, 145_000)
        .await?;
    payment
        .ensure_ledger(&auditor, 150_000, &[("emergency", -150_000)])
        .await?;

    // The bank file, and its result with one failure (c2's).
    let batch = payment.export(&officer, &run.run_id, CsvUtf8).await?;
    let failed_order = payment.order_of(&auditor, &run.run_id, c2).await?;
    let settled = payment
        .import(
            &importer,
            "settle-next-result",
            &run.run_id,
            answer(&batch.file, Format::CsvUtf8, Some(&failed_order))?,
        )
        .await?;
    ensure_states(&settled, (1, 80_000), (1, 65_000), (0, 0))?;
    anyhow::ensure!(settled.reconciliation == "open", "{settled:?}");
    settle(&store).await?;
    payment
        .ensure_ledger(
            &auditor,
            230_000,
            &[("dibao", -80_000), ("emergency", -150_000)],
        )
        .await?;

    // The re-pay run of the failure: approved, exported, paid. Twice adds no order.
    let repay = payment.repay(&officer, "settle-repay", next_month).await?;
    let repay_control = repay.control.clone().unwrap_or_default();
    anyhow::ensure!(
        repay_control.count == 1 && repay_control.total == Some(pb::Money { fen: 65_000 }),
        "{repay:?}"
    );
    let before = log_size(&store).await?;
    anyhow::ensure!(payment.repay(&officer, "settle-repay", next_month).await? == repay);
    refused(
        payment
            .repay(&officer, "settle-repay-again", next_month)
            .await,
        Code::AlreadyExists,
    )?;
    anyhow::ensure!(
        log_size(&store).await? == before,
        "a repeated re-pay run wrote"
    );
    payment
        .approve(&approver, "settle-repay-approve", &repay, 1, 65_000)
        .await?;
    let repay_csv = payment.export(&officer, &repay.run_id, CsvUtf8).await?;
    payment.export(&officer, &repay.run_id, FixedGbk).await?;
    let repaid = payment
        .import(
            &importer,
            "settle-repay-result",
            &repay.run_id,
            result_file(Format::FixedGbk, &batch_lines(&repay_csv.file)?)?,
        )
        .await?;
    ensure_states(&repaid, (1, 65_000), (0, 0), (0, 0))?;
    settle(&store).await?;
    payment
        .ensure_ledger(
            &auditor,
            295_000,
            &[("dibao", -145_000), ("emergency", -150_000)],
        )
        .await?;

    // One later return: c1's order of next month's run, in the run's export format (CSV).
    let returned_order = payment.order_of(&auditor, &run.run_id, c1).await?;
    let all_lines = batch_lines(&batch.file)?;
    let as_returned = |order_id: &str| {
        all_lines
            .iter()
            .find(|line| line.order_id == order_id)
            .map(|line| sunshine_payment::bank_files::ResultLine {
                paid: false,
                reason: "账户已冻结".into(),
                ..line.clone()
            })
            .ok_or_else(|| anyhow::anyhow!("no batch line of {order_id}"))
    };
    let line = as_returned(&returned_order)?;
    let good = returns_file(Format::CsvUtf8, std::slice::from_ref(&line))?;
    let mut malformed: Vec<(&str, Vec<u8>, Vec<&str>)> = Vec::new();
    let mut unknown = line.clone();
    unknown.order_id = uuid::Uuid::now_v7().to_string();
    malformed.push((
        "unknown order",
        returns_file(Format::CsvUtf8, &[unknown])?,
        vec!["lines[0]"],
    ));
    malformed.push((
        "an order not paid",
        returns_file(Format::CsvUtf8, &[as_returned(&failed_order)?])?,
        vec!["lines[0]"],
    ));
    let mut amount = line.clone();
    amount.amount_fen += 1;
    malformed.push((
        "changed amount",
        returns_file(Format::CsvUtf8, &[amount])?,
        vec!["lines[0]"],
    ));
    let mut account = line.clone();
    account.account = "6222020200001234567".into();
    malformed.push((
        "changed account",
        returns_file(Format::CsvUtf8, &[account])?,
        vec!["lines[0]"],
    ));
    malformed.push((
        "duplicate line",
        returns_file(Format::CsvUtf8, &[line.clone(), line.clone()])?,
        vec!["lines[1]"],
    ));
    let wrong_total = write_returns(Format::CsvUtf8, std::slice::from_ref(&line), 1, 80_001)
        .ok_or_else(|| anyhow::anyhow!("unwritable"))?;
    malformed.push(("wrong control total", wrong_total, vec!["lines[1]"]));
    let mut not_utf8 = good.clone();
    not_utf8[2] = 0xFF;
    malformed.push(("not UTF-8", not_utf8, vec!["lines[0]"]));
    let first_line = good
        .windows(2)
        .position(|pair| pair == b"\r\n")
        .unwrap_or_default()
        + 2;
    malformed.push(("truncated", good[..first_line].to_vec(), vec!["lines[1]"]));
    malformed.push((
        "the other format",
        returns_file(Format::FixedGbk, std::slice::from_ref(&line))?,
        vec!["lines[0]", "lines[1]", "lines[2]"],
    ));
    malformed.push(("oversized", vec![b' '; 8 * 1024 * 1024 + 1], vec!["file"]));
    malformed.push((
        "a result file",
        result_file(Format::CsvUtf8, &all_lines)?,
        vec!["lines[0]", "lines[1]"],
    ));
    let before = log_size(&store).await?;
    let version = run_version(&store, &run.run_id).await?;
    for (kind, file, expected) in malformed {
        let status = refused(
            payment
                .returns(
                    &importer,
                    &format!("settle-returns-{}", kind.replace(' ', "-")),
                    &run.run_id,
                    file,
                )
                .await,
            Code::InvalidArgument,
        )?;
        anyhow::ensure!(violated_fields(&status) == expected, "{kind}: {status:?}");
    }
    for (token, code) in [
        (&auditor, Code::PermissionDenied),
        (&approver, Code::PermissionDenied),
        (&stranger, Code::NotFound),
    ] {
        refused(
            payment
                .returns(token, "settle-returns-refused", &run.run_id, good.clone())
                .await,
            code,
        )?;
    }
    anyhow::ensure!(
        log_size(&store).await? == before && run_version(&store, &run.run_id).await? == version,
        "a refused returns file wrote"
    );
    let returned = payment
        .returns(&importer, "settle-returns-1", &run.run_id, good.clone())
        .await?;
    ensure_states(&returned, (0, 0), (1, 65_000), (1, 80_000))?;
    anyhow::ensure!(
        returned.status == "result_recorded" && returned.reconciliation == "open",
        "{returned:?}"
    );
    // Its retry answers the first; the same id with another file is refused on command_id;
    // the same file again under a new id names the order returned already.
    anyhow::ensure!(
        payment
            .returns(&importer, "settle-returns-1", &run.run_id, good.clone())
            .await?
            == returned
    );
    let reused = refused(
        payment
            .returns(&importer, "settle-returns-1", &run.run_id, Vec::new())
            .await,
        Code::InvalidArgument,
    )?;
    anyhow::ensure!(violated_fields(&reused) == ["command_id"], "{reused:?}");
    let again = refused(
        payment
            .returns(&importer, "settle-returns-2", &run.run_id, good.clone())
            .await,
        Code::InvalidArgument,
    )?;
    anyhow::ensure!(violated_fields(&again) == ["lines[0]"], "{again:?}");
    let listed = payment.orders(&auditor, &run.run_id, 0, "").await?;
    anyhow::ensure!(
        listed.orders.iter().any(|listed| {
            listed.order.as_ref().map(|order| order.order_id.as_str()) == Some(&returned_order)
                && listed.state == "returned"
                && listed.failure_reason == "账户已冻结"
        }),
        "{listed:?}"
    );
    settle(&store).await?;
    // The return reverses c1's posting: 80 000 more on each side, the dibao fund credited back.
    payment
        .ensure_ledger(
            &auditor,
            375_000,
            &[("dibao", -65_000), ("emergency", -150_000)],
        )
        .await?;

    // The reconciliation, closed by a second approver who took no part.
    let current = payment.get(&auditor, &run.run_id).await?;
    for (token, command_id) in [
        (&creator_as_approver, "settle-close-by-creator"),
        (&importer_as_approver, "settle-close-by-importer"),
    ] {
        let status = refused(
            payment
                .close(token, command_id, &current, (0, 0), (2, 145_000))
                .await,
            Code::PermissionDenied,
        )?;
        anyhow::ensure!(status.message().contains("four eyes"), "{status:?}");
    }
    refused(
        payment
            .close(
                &officer,
                "settle-close-by-officer",
                &current,
                (0, 0),
                (2, 145_000),
            )
            .await,
        Code::PermissionDenied,
    )?;
    // The figures before the return are wrong now.
    let wrong = refused(
        payment
            .close(
                &closer,
                "settle-close-wrong",
                &current,
                (1, 80_000),
                (1, 65_000),
            )
            .await,
        Code::InvalidArgument,
    )?;
    anyhow::ensure!(
        violated_fields(&wrong) == ["paid_count", "paid_total", "unpaid_count", "unpaid_total"],
        "{wrong:?}"
    );
    let stale = pb::RunResponse {
        version: current.version - 1,
        ..current.clone()
    };
    refused(
        payment
            .close(&closer, "settle-close-stale", &stale, (0, 0), (2, 145_000))
            .await,
        Code::Aborted,
    )?;
    anyhow::ensure!(run_version(&store, &run.run_id).await? == current.version);
    let closed = payment
        .close(&closer, "settle-close", &current, (0, 0), (2, 145_000))
        .await?;
    anyhow::ensure!(
        closed.status == "reconciled"
            && closed.reconciliation == "closed"
            && closed.reconciled_by == "approver-2"
            && closed.version == current.version + 1,
        "{closed:?}"
    );
    anyhow::ensure!(
        payment
            .close(&closer, "settle-close", &current, (0, 0), (2, 145_000))
            .await?
            == closed
    );
    anyhow::ensure!(payment.get(&auditor, &run.run_id).await? == closed);
    refused(
        payment
            .close(
                &approver,
                "settle-close-again",
                &closed,
                (0, 0),
                (2, 145_000),
            )
            .await,
        Code::FailedPrecondition,
    )?;
    let status = refused(
        payment
            .returns(&importer, "settle-returns-after-close", &run.run_id, good)
            .await,
        Code::FailedPrecondition,
    )?;
    anyhow::ensure!(status.message().contains("closed"), "{status:?}");

    // The returned order is re-paid once, as a new order naming it; the ledger waits for the bank.
    let repay_returned = payment
        .repay(&officer, "settle-repay-returned", next_month)
        .await?;
    let orders = payment
        .orders(&auditor, &repay_returned.run_id, 0, "")
        .await?;
    let [listed] = &orders.orders[..] else {
        anyhow::bail!("{orders:?}");
    };
    let order = listed.order.clone().unwrap_or_default();
    anyhow::ensure!(
        order.repays_order_id == returned_order
            && order.case_id == c1
            && order.amount == Some(pb::Money { fen: 80_000 }),
        "{order:?}"
    );
    let twice = refused(
        payment
            .repay(&officer, "settle-repay-returned-again", next_month)
            .await,
        Code::AlreadyExists,
    )?;
    anyhow::ensure!(
        twice.message().contains(&repay_returned.run_id),
        "{twice:?}"
    );
    settle(&store).await?;
    payment
        .ensure_ledger(
            &auditor,
            375_000,
            &[("dibao", -65_000), ("emergency", -150_000)],
        )
        .await?;

    database.close().await;
    service.stop().await?;
    drop(backends);
    Ok(())
}

fn total(key: &str, count: u32, fen: i64) -> pb::PaymentControlTotal {
    pb::PaymentControlTotal {
        key: key.into(),
        count,
        total: Some(pb::Money { fen }),
    }
}

fn refused(result: Result<pb::RunResponse, Status>, code: Code) -> anyhow::Result<Status> {
    match result {
        Ok(answer) => anyhow::bail!("expected {code:?}, got OK {answer:?}"),
        Err(status) => {
            anyhow::ensure!(status.code() == code, "expected {code:?}, got {status:?}");
            Ok(status)
        }
    }
}

async fn log_size(store: &EventStore) -> anyhow::Result<i64> {
    Ok(sqlx::query_scalar("SELECT COUNT(*) FROM events")
        .fetch_one(store.pool())
        .await?)
}

/// The append's guard itself, past the aggregate (which would refuse first): a run claiming
/// an entitlement another run holds for the period is refused whole, naming that run — its
/// other claims, its orders' rows and its events are not written.
async fn guard_refuses_a_claimed_key_naming_its_run(
    store: &EventStore,
    holder: &str,
    held_entitlement: &str,
    period: Month,
) -> anyhow::Result<()> {
    use sunshine_payment::aggregate::{self, RunEvent};
    use sunshine_payment::read_model::{ClaimedByRun, OrderClaims};
    let run_id = sunshine_payment::commands::run_id_for("run-past-the-aggregate");
    let order = |entitlement: &str| pb::PaymentOrder {
        order_id: sunshine_payment::commands::order_id_for(&run_id, entitlement),
        entitlement_id: entitlement.into(),
        case_id: entitlement.into(),
        household_id: "household-past-the-aggregate".into(),
        program_code: "dibao".into(),
        street_town_code: "990101001000".into(),
        amount: Some(pb::Money { fen: 100 }),
        ..Default::default()
    };
    let events = aggregate::bounded(vec![RunEvent::Created(pb::PaymentRunCreated {
        run_id: run_id.clone(),
        period: period.to_string(),
        created_by: "officer-1".into(),
        district_code: DISTRICT.into(),
        // A free key first, then the held one: the first is claimed before the refusal.
        orders: vec![order("case-never-paid"), order(held_entitlement)],
        ..Default::default()
    })]);
    let claims = OrderClaims::of(&events).ok_or_else(|| anyhow::anyhow!("no claims"))?;
    let before = sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM payment_orders")
        .fetch_one(store.pool())
        .await?;
    let outcome = store
        .append_guarded(
            &StreamId::new("payment", "run", &run_id)?,
            ExpectedVersion::NoStream,
            &EventMetadata::default(),
            events
                .iter()
                .map(|event| NewEvent::typed(format!("payment-run-{run_id}"), event))
                .collect(),
            &claims,
        )
        .await?;
    anyhow::ensure!(
        matches!(&outcome, sunshine_eventlog::GuardedAppend::Refused(ClaimedByRun { run_id }) if run_id == holder),
        "{outcome:?}"
    );
    let free_claimed = sqlx::query_scalar::<_, i64>(
        "SELECT COUNT(*) FROM payment_run_orders WHERE entitlement_id = 'case-never-paid'",
    )
    .fetch_one(store.pool())
    .await?;
    let after = sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM payment_orders")
        .fetch_one(store.pool())
        .await?;
    anyhow::ensure!(
        free_claimed == 0 && after == before && run_version(store, &run_id).await? == 0,
        "a refused append wrote: {free_claimed} claims, {before} → {after} orders"
    );
    Ok(())
}

async fn run_version(store: &EventStore, run_id: &str) -> anyhow::Result<u64> {
    Ok(store
        .stream_version(&StreamId::new("payment", "run", run_id)?)
        .await?)
}

async fn payment_runs(cluster: bool) -> anyhow::Result<()> {
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
    let creator_as_approver = auth.token_for("officer-1", Role::FinanceApprover, DISTRICT);
    let approver = auth.token_for("approver-1", Role::FinanceApprover, DISTRICT);
    let second_approver = auth.token_for("approver-2", Role::FinanceApprover, DISTRICT);
    let auditor = auth.token_for("auditor-1", Role::Auditor, DISTRICT);
    let stranger = auth.token_for("officer-far", Role::FinanceOfficer, OTHER_DISTRICT);

    let this_month = Month::of(SystemClock.today());
    let next_month = this_month.next().expect("a month after this one");

    // Review's decisions: two dibao cases (two street-towns) and an assist-first grant.
    let (c1, c2, c3) = ("case-pay-1", "case-pay-2", "case-pay-3");
    append_as_review(
        &store,
        &config,
        c1,
        &[
            &opened(c1, "dibao", VILLAGE),
            &approved(c1, 80_000, this_month),
        ],
    )
    .await?;
    append_as_review(
        &store,
        &config,
        c2,
        &[
            &opened(c2, "dibao", OTHER_STREET_VILLAGE),
            &approved(c2, 65_000, this_month),
        ],
    )
    .await?;
    let granted = pb::AssistFirstGranted {
        case_id: c3.into(),
        amount: Some(pb::Money { fen: 150_000 }),
        cap: Some(pb::Money { fen: 200_000 }),
        reason: "火灾".into(),
        ..Default::default()
    };
    append_as_review(
        &store,
        &config,
        c3,
        &[&opened(c3, "temporary", VILLAGE), &granted],
    )
    .await?;
    settle(&store).await?;

    // This month's run: every entitlement, with its control totals. Sent twice at once with
    // one command id (a retry racing its first send): one run, the same answer to both.
    let (run, raced) = tokio::join!(
        payment.create(&officer, "run-this-month", this_month),
        payment.create(&officer, "run-this-month", this_month),
    );
    let run = run?;
    anyhow::ensure!(raced? == run, "a racing retry answered differently");
    anyhow::ensure!(run.status == "created" && run.version == 2, "{run:?}");
    anyhow::ensure!(
        run.created_by == "officer-1" && run.district_code == DISTRICT,
        "{run:?}"
    );
    let control = run.control.clone().unwrap_or_default();
    anyhow::ensure!(
        control
            == pb::PaymentControlTotals {
                count: 3,
                total: Some(pb::Money { fen: 295_000 }),
                by_program: vec![total("dibao", 2, 145_000), total("temporary", 1, 150_000)],
                by_street_town: vec![
                    total("990101001000", 2, 230_000),
                    total("990101002000", 1, 65_000)
                ],
            },
        "control totals: {control:?}"
    );

    // A retry answers the same run; the same id with other content is refused on command_id.
    let again = payment
        .create(&officer, "run-this-month", this_month)
        .await?;
    anyhow::ensure!(
        again == run,
        "the retry answered {again:?}, the first {run:?}"
    );
    let reused = refused(
        payment.create(&officer, "run-this-month", next_month).await,
        Code::InvalidArgument,
    )?;
    anyhow::ensure!(violated_fields(&reused) == ["command_id"], "{reused:?}");
    // The same period under another command id adds no order.
    let twice = refused(
        payment
            .create(&officer, "run-this-month-again", this_month)
            .await,
        Code::AlreadyExists,
    )?;
    anyhow::ensure!(twice.message().contains(&run.run_id), "{twice:?}");
    anyhow::ensure!(
        run_version(
            &store,
            &sunshine_payment::commands::run_id_for("run-this-month-again")
        )
        .await?
            == 0,
        "the refused run was written"
    );
    // Periods: the month after next is refused, and so is nonsense.
    let month_after_next = next_month.next().expect("a month after next");
    for (period, command_id) in [
        (month_after_next.to_string(), "run-too-early"),
        ("2026-13".to_owned(), "run-no-month"),
        (format!("{this_month}\u{0}"), "run-control"),
    ] {
        let status = refused(
            payment.create_text(&officer, command_id, &period).await,
            Code::InvalidArgument,
        )?;
        anyhow::ensure!(
            violated_fields(&status) == ["period"],
            "{period:?}: {status:?}"
        );
    }
    let long_id = "x".repeat(101);
    for command_id in [long_id.as_str(), "run\u{7}bell", ""] {
        let status = refused(
            payment.create(&officer, command_id, this_month).await,
            Code::InvalidArgument,
        )?;
        anyhow::ensure!(violated_fields(&status) == ["command_id"], "{status:?}");
    }
    // Another district's officer may not make this district's run.
    refused(
        payment.create(&stranger, "run-stranger", this_month).await,
        Code::PermissionDenied,
    )?;

    // Four eyes: the creator, even as an approver, may not approve.
    let four_eyes = refused(
        payment
            .approve(&creator_as_approver, "approve-by-creator", &run, 3, 295_000)
            .await,
        Code::PermissionDenied,
    )?;
    anyhow::ensure!(four_eyes.message().contains("four eyes"), "{four_eyes:?}");
    // A wrong re-keyed total is refused on the field, and nothing is written.
    let mismatch = refused(
        payment
            .approve(&approver, "approve-wrong-total", &run, 3, 295_001)
            .await,
        Code::InvalidArgument,
    )?;
    anyhow::ensure!(
        violated_fields(&mismatch) == ["control_total"],
        "{mismatch:?}"
    );
    let mismatch = refused(
        payment
            .approve(&approver, "approve-wrong-both", &run, 2, 1)
            .await,
        Code::InvalidArgument,
    )?;
    anyhow::ensure!(
        violated_fields(&mismatch) == ["control_count", "control_total"],
        "{mismatch:?}"
    );
    anyhow::ensure!(
        run_version(&store, &run.run_id).await? == 2,
        "a refused approval wrote"
    );
    // A stale version is ABORTED.
    let stale = pb::RunResponse {
        version: 0,
        ..run.clone()
    };
    refused(
        payment
            .approve(&approver, "approve-stale", &stale, 3, 295_000)
            .await,
        Code::Aborted,
    )?;

    // A second officer approves.
    let approval = payment
        .approve(&approver, "approve-1", &run, 3, 295_000)
        .await?;
    anyhow::ensure!(
        approval.status == "approved"
            && approval.version == 3
            && approval.approved_by == "approver-1",
        "{approval:?}"
    );
    let retried = payment
        .approve(&approver, "approve-1", &run, 3, 295_000)
        .await?;
    anyhow::ensure!(retried == approval, "{retried:?}");
    let twice = refused(
        payment
            .approve(&second_approver, "approve-2", &approval, 3, 295_000)
            .await,
        Code::FailedPrecondition,
    )?;
    anyhow::ensure!(twice.message().contains("approved already"), "{twice:?}");
    let read = payment.get(&auditor, &run.run_id).await?;
    anyhow::ensure!(read == approval, "GetRun: {read:?}");

    // The orders, a page at a time; a page of a million is refused on the field.
    let first_page = payment.orders(&auditor, &run.run_id, 2, "").await?;
    let token = first_page.page.clone().unwrap_or_default().next_page_token;
    anyhow::ensure!(
        first_page.orders.len() == 2 && !token.is_empty(),
        "{first_page:?}"
    );
    let second_page = payment.orders(&approver, &run.run_id, 2, &token).await?;
    anyhow::ensure!(
        second_page.orders.len() == 1
            && second_page
                .page
                .clone()
                .unwrap_or_default()
                .next_page_token
                .is_empty(),
        "{second_page:?}"
    );
    let mut paid: Vec<(String, i64)> = first_page
        .orders
        .iter()
        .chain(&second_page.orders)
        .filter_map(|listed| listed.order.as_ref())
        .map(|order| (order.case_id.clone(), order.amount.unwrap_or_default().fen))
        .collect();
    paid.sort();
    anyhow::ensure!(
        paid == [
            (c1.to_owned(), 80_000),
            (c2.to_owned(), 65_000),
            (c3.to_owned(), 150_000)
        ],
        "{paid:?}"
    );
    match payment.orders(&officer, &run.run_id, 1_000_000, "").await {
        Err(status) if status.code() == Code::InvalidArgument => {
            anyhow::ensure!(violated_fields(&status) == ["page.page_size"], "{status:?}");
        }
        other => anyhow::bail!("a page of a million: {other:?}"),
    }

    // Unknown runs and another district's officers: NOT_FOUND alike.
    let unknown = uuid::Uuid::now_v7().to_string();
    let missing = refused(payment.get(&officer, &unknown).await, Code::NotFound)?;
    let far = refused(payment.get(&stranger, &run.run_id).await, Code::NotFound)?;
    anyhow::ensure!(
        missing.message().replace(&unknown, "") == far.message().replace(&run.run_id, ""),
        "{missing:?} / {far:?}"
    );

    // An entitlement new since this month's run gets a run of only itself.
    let c4 = "case-pay-4";
    append_as_review(
        &store,
        &config,
        c4,
        &[
            &opened(c4, "dibao", VILLAGE),
            &approved(c4, 70_000, this_month),
        ],
    )
    .await?;
    settle(&store).await?;
    let late = payment
        .create(&officer, "run-this-month-late", this_month)
        .await?;
    let late_control = late.control.clone().unwrap_or_default();
    anyhow::ensure!(
        late_control.count == 1 && late_control.total == Some(pb::Money { fen: 70_000 }),
        "{late:?}"
    );

    // Two officers' creations at once: one run pays the new entitlement and the other is
    // refused, writing nothing (by the aggregate if it read the winner's claim, by the append's
    // guard if both read before either wrote).
    let c5 = "case-pay-5";
    append_as_review(
        &store,
        &config,
        c5,
        &[
            &opened(c5, "dibao", VILLAGE),
            &approved(c5, 50_000, this_month),
        ],
    )
    .await?;
    settle(&store).await?;
    let second_officer = auth.token_for("officer-2", Role::FinanceOfficer, DISTRICT);
    let (left, right) = tokio::join!(
        payment.create(&officer, "run-race-left", this_month),
        payment.create(&second_officer, "run-race-right", this_month),
    );
    let (won, lost) = match (left, right) {
        (Ok(won), Err(lost)) | (Err(lost), Ok(won)) => (won, lost),
        other => anyhow::bail!("racing creations: {other:?}"),
    };
    anyhow::ensure!(lost.code() == Code::AlreadyExists, "{lost:?}");
    anyhow::ensure!(
        won.control.clone().unwrap_or_default().count == 1,
        "{won:?}"
    );
    let losing_run = if won.created_by == "officer-1" {
        "run-race-right"
    } else {
        "run-race-left"
    };
    anyhow::ensure!(
        run_version(&store, &sunshine_payment::commands::run_id_for(losing_run)).await? == 0,
        "the losing run was written"
    );
    guard_refuses_a_claimed_key_naming_its_run(&store, &won.run_id, c5, this_month).await?;

    // Next month: the monthly benefits, not the one-off grant.
    let next = payment
        .create(&officer, "run-next-month", next_month)
        .await?;
    let next_control = next.control.clone().unwrap_or_default();
    anyhow::ensure!(
        next_control.count == 4
            && next_control.total == Some(pb::Money { fen: 265_000 })
            && next_control.by_program == vec![total("dibao", 4, 265_000)],
        "{next:?}"
    );

    // Before the bank's result the ledger is empty: money moves only when the bank confirms.
    payment.ensure_ledger(&auditor, 0, &[]).await?;
    let failed_order = bank_files(&payment, &store, &auth, &approval, &late, c2).await?;
    settle(&store).await?;
    // c1's dibao and c3's assist-first grant were paid, c2 failed: only the paid are posted.
    payment
        .ensure_ledger(
            &auditor,
            230_000,
            &[("dibao", -80_000), ("emergency", -150_000)],
        )
        .await?;
    payment
        .ensure_ledger(
            &officer,
            230_000,
            &[("dibao", -80_000), ("emergency", -150_000)],
        )
        .await?;
    for refused_reader in [
        payment.trial_balance(&stranger).await.err(),
        payment.fund_balances(&stranger).await.err(),
    ] {
        anyhow::ensure!(
            refused_reader.map(|status| status.code()) == Some(Code::PermissionDenied),
            "another district read the ledger"
        );
    }
    repay_runs(
        &payment,
        &store,
        &auth,
        &officer,
        this_month,
        next_month,
        &failed_order,
    )
    .await?;

    approvals_commit_the_budget_one_after_the_other(
        &payment,
        &store,
        &config,
        &officer,
        [&approver, &second_approver],
        this_month,
    )
    .await?;

    // An assist-first grant larger than the emergency fund's whole yearly budget (250 000.00
    // yuan in the EXAMPLE funds) is refused, naming the fund and the program, and writes nothing.
    let c4 = "case-pay-4";
    let huge = pb::AssistFirstGranted {
        case_id: c4.into(),
        amount: Some(pb::Money { fen: 25_000_001 }),
        cap: Some(pb::Money { fen: 25_000_001 }),
        reason: "火灾".into(),
        ..Default::default()
    };
    append_as_review(
        &store,
        &config,
        c4,
        &[&opened(c4, "temporary", VILLAGE), &huge],
    )
    .await?;
    settle(&store).await?;
    let before = log_size(&store).await?;
    let over = refused(
        payment
            .create(&officer, "run-over-budget", this_month)
            .await,
        Code::FailedPrecondition,
    )?;
    anyhow::ensure!(
        over.message().contains("emergency") && over.message().contains("assist_first"),
        "{over:?}"
    );
    anyhow::ensure!(
        log_size(&store).await? == before
            && run_version(
                &store,
                &sunshine_payment::commands::run_id_for("run-over-budget")
            )
            .await?
                == 0,
        "the refused run was written"
    );

    database.close().await;
    service.stop().await?;
    drop(backends);
    Ok(())
}

/// Two runs created side by side, each within what the emergency fund has left and together
/// over it: creation checks each against what approved runs committed, so both are created;
/// the approval commits the money under the fund's lock, so the first approval passes and the
/// second is `FAILED_PRECONDITION` naming the fund, with nothing written — also when the two
/// approvals race (both sent at once: exactly one passes).
async fn approvals_commit_the_budget_one_after_the_other(
    payment: &Payment,
    store: &EventStore,
    config: &sunshine_platform::Config,
    officer: &str,
    approvers: [&str; 2],
    this_month: Month,
) -> anyhow::Result<()> {
    // The EXAMPLE emergency fund has 250 000.00 yuan a year; 1 500.00 are committed already.
    let mut runs = Vec::new();
    // The first pair: 130 000.00 each; the second, racing: 59 500.00 each.
    let pairs = [
        (["case-budget-1", "case-budget-2"], 13_000_000),
        (["case-budget-3", "case-budget-4"], 5_950_000),
    ];
    for (round, (pair, fen)) in pairs.into_iter().enumerate() {
        let mut created = Vec::new();
        for case in pair {
            let grant = pb::AssistFirstGranted {
                case_id: case.into(),
                amount: Some(pb::Money { fen }),
                cap: Some(pb::Money { fen }),
                reason: "火灾".into(),
                ..Default::default()
            };
            append_as_review(
                store,
                config,
                case,
                &[&opened(case, "temporary", VILLAGE), &grant],
            )
            .await?;
            settle(store).await?;
            // A run of only this grant: the others of the month are in runs already.
            let run = payment
                .create(officer, &format!("run-budget-{round}-{case}"), this_month)
                .await?;
            anyhow::ensure!(run.control.as_ref().map(|c| c.count) == Some(1), "{run:?}");
            created.push(run);
        }
        runs.push(created);
    }
    // One after the other: the first approval commits, the second is refused.
    let [first, second] = &runs[0][..] else {
        anyhow::bail!("two runs")
    };
    payment
        .approve(approvers[0], "approve-budget-first", first, 1, 13_000_000)
        .await?;
    let before = log_size(store).await?;
    let over = refused(
        payment
            .approve(approvers[0], "approve-budget-second", second, 1, 13_000_000)
            .await,
        Code::FailedPrecondition,
    )?;
    anyhow::ensure!(
        over.message().contains("emergency") && over.message().contains("assist_first"),
        "{over:?}"
    );
    let committed = commitment_rows(store, &second.run_id).await?;
    anyhow::ensure!(
        log_size(store).await? == before
            && run_version(store, &second.run_id).await? == second.version
            && committed == 0,
        "the refused approval wrote: {committed} commitments"
    );
    // Racing: the fund now has 130 000.00 and a little committed, so at most 118 500.00 left:
    // each of these two fits alone, not both. Sent at once, exactly one approval passes.
    let [third, fourth] = &runs[1][..] else {
        anyhow::bail!("two runs")
    };
    let (left, right) = tokio::join!(
        payment.approve(approvers[0], "approve-budget-race-1", third, 1, 5_950_000),
        payment.approve(approvers[1], "approve-budget-race-2", fourth, 1, 5_950_000),
    );
    let passed = [&left, &right]
        .iter()
        .filter(|result| result.is_ok())
        .count();
    anyhow::ensure!(
        passed == 1,
        "{passed} racing approvals passed: {left:?} {right:?}"
    );
    for result in [&left, &right] {
        if let Err(status) = result {
            anyhow::ensure!(status.code() == Code::FailedPrecondition, "{status:?}");
        }
    }
    // The approval sums what the run needs from its rows in `payment_orders`, which the
    // creation's own transaction wrote: rows missing (a projection being rebuilt has not
    // written them back yet) are not the run's control figures, and the approval is refused
    // rather than committing less than the run pays; nothing is written.
    let refused_racer = if left.is_ok() { fourth } else { third };
    // Once the projection has written its copies of them too (it would write them back).
    settle(store).await?;
    sqlx::query("DELETE FROM payment_orders WHERE run_id = $1")
        .bind(refused_racer.run_id.as_str())
        .execute(store.pool())
        .await?;
    let before = log_size(store).await?;
    let status = refused(
        payment
            .approve(
                approvers[1],
                "approve-budget-rows-missing",
                refused_racer,
                1,
                5_950_000,
            )
            .await,
        Code::FailedPrecondition,
    )?;
    anyhow::ensure!(status.message().contains("holds 0 orders"), "{status:?}");
    anyhow::ensure!(
        log_size(store).await? == before
            && commitment_rows(store, &refused_racer.run_id).await? == 0,
        "the approval of a run without its rows wrote"
    );
    Ok(())
}

/// How many rows of what it committed run `run_id`'s approval wrote.
async fn commitment_rows(store: &EventStore, run_id: &str) -> anyhow::Result<i64> {
    Ok(
        sqlx::query_scalar("SELECT COUNT(*) FROM payment_run_commitments WHERE run_id = $1")
            .bind(run_id)
            .fetch_one(store.pool())
            .await?,
    )
}

/// The bank files of the approved run `approved` (c1, c2, c3; `failing` is c2's case), and the
/// refusal of the unapproved `unapproved`.
async fn bank_files(
    payment: &Payment,
    store: &EventStore,
    auth: &TestAuth,
    approved: &pb::RunResponse,
    unapproved: &pb::RunResponse,
    failing: &str,
) -> anyhow::Result<String> {
    use pb::BankFileFormat::{CsvUtf8, FixedGbk};
    use sunshine_payment::bank_files::{Format, sha256_hex};
    use sunshine_tests::bank::{batch_lines, result_file};

    let officer = auth.token_for("officer-1", Role::FinanceOfficer, DISTRICT);
    let approver = auth.token_for("approver-1", Role::FinanceApprover, DISTRICT);
    let auditor = auth.token_for("auditor-1", Role::Auditor, DISTRICT);
    let stranger = auth.token_for("officer-far", Role::FinanceOfficer, OTHER_DISTRICT);
    let run_id = approved.run_id.as_str();

    // Only an approved run goes to the bank; nor to the auditors, nor another district.
    let status = payment
        .export(&officer, &unapproved.run_id, CsvUtf8)
        .await
        .err()
        .map(|status| status.code());
    anyhow::ensure!(status == Some(Code::FailedPrecondition), "{status:?}");
    anyhow::ensure!(
        run_version(store, &unapproved.run_id).await? == 2,
        "a refused export wrote"
    );
    let status = payment.export(&auditor, run_id, CsvUtf8).await.err();
    anyhow::ensure!(status.map(|s| s.code()) == Some(Code::PermissionDenied));
    let status = payment.export(&stranger, run_id, CsvUtf8).await.err();
    anyhow::ensure!(status.map(|s| s.code()) == Some(Code::NotFound));
    let status = payment
        .export(&officer, run_id, pb::BankFileFormat::Unspecified)
        .await
        .err()
        .ok_or_else(|| anyhow::anyhow!("an unspecified format was exported"))?;
    anyhow::ensure!(violated_fields(&status) == ["format"], "{status:?}");

    // Both formats: the file, its digest and its figures; the export is recorded.
    let csv = payment.export(&officer, run_id, CsvUtf8).await?;
    anyhow::ensure!(
        csv.sha256 == sha256_hex(&csv.file)
            && csv.count == 3
            && csv.total == Some(pb::Money { fen: 295_000 }),
        "{csv:?}"
    );
    let text = std::str::from_utf8(&csv.file)?;
    anyhow::ensure!(text.ends_with("T,3,295000\r\n"), "{text}");
    // The household's account as intake sealed it, opened for the file.
    let account = sunshine_tests::accounts::account_of("household-of-case-pay-1");
    let name = account.holder_name.clone();
    anyhow::ensure!(
        text.contains(&format!(",{},{name},80000,", account.account_number))
            && !text.contains("household-of"),
        "{text}"
    );
    let gbk = payment.export(&approver, run_id, FixedGbk).await?;
    anyhow::ensure!(gbk.sha256 == sha256_hex(&gbk.file) && gbk.file.len() == 4 * 146);
    let (name_in_gbk, _, _) = encoding_rs::GBK.encode(&name);
    anyhow::ensure!(
        gbk.file
            .windows(name_in_gbk.len())
            .any(|window| window == &name_in_gbk[..]),
        "the GBK file has not the name's GBK bytes"
    );
    let exported = payment.get(&auditor, run_id).await?;
    anyhow::ensure!(
        exported.status == "exported"
            && exported.version == 5
            && exported.last_export_format == "BANK_FILE_FORMAT_FIXED_GBK"
            && exported.last_export_sha256 == gbk.sha256,
        "{exported:?}"
    );

    // The bank's result, in the last export's format (GBK): every malformed kind is refused
    // whole, naming its lines, and writes nothing.
    let lines = batch_lines(&csv.file)?;
    let listed = payment.orders(&auditor, run_id, 0, "").await?;
    let failed_order = listed
        .orders
        .iter()
        .filter_map(|listed| listed.order.as_ref())
        .find(|order| order.case_id == failing)
        .map(|order| order.order_id.clone())
        .ok_or_else(|| anyhow::anyhow!("no order of {failing}"))?;
    let mut answer = lines.clone();
    for line in &mut answer {
        if line.order_id == failed_order {
            line.paid = false;
            line.reason = "账户已销户".into();
        }
    }
    let good = result_file(Format::FixedGbk, &answer)?;
    let mut malformed: Vec<(&str, Vec<u8>, Vec<&str>)> = Vec::new();
    let mut unknown = answer.clone();
    unknown[0].order_id = uuid::Uuid::now_v7().to_string();
    malformed.push((
        "unknown order",
        result_file(Format::FixedGbk, &unknown)?,
        vec!["lines[0]", "lines"],
    ));
    let mut amount = answer.clone();
    amount[1].amount_fen += 1;
    malformed.push((
        "changed amount",
        result_file(Format::FixedGbk, &amount)?,
        vec!["lines[1]"],
    ));
    let mut account_changed = answer.clone();
    account_changed[2].account = "6222020200001234567".into();
    malformed.push((
        "changed account",
        result_file(Format::FixedGbk, &account_changed)?,
        vec!["lines[2]"],
    ));
    let mut duplicate = answer.clone();
    duplicate.push(answer[0].clone());
    malformed.push((
        "duplicate line",
        result_file(Format::FixedGbk, &duplicate)?,
        vec!["lines[3]"],
    ));
    malformed.push((
        "missing order",
        result_file(Format::FixedGbk, &answer[..2])?,
        vec!["lines"],
    ));
    let wrong_total =
        sunshine_payment::bank_files::write_result(Format::FixedGbk, &answer, 3, 295_001)
            .ok_or_else(|| anyhow::anyhow!("unwritable"))?;
    malformed.push(("wrong control total", wrong_total, vec!["lines[3]"]));
    let mut bad_gbk = good.clone();
    bad_gbk[147 + 100] = 0x81;
    bad_gbk[147 + 101] = b' ';
    malformed.push(("invalid GBK", bad_gbk, vec!["lines[1]"]));
    malformed.push(("truncated", good[..3 * 147].to_vec(), vec!["lines[3]"]));
    malformed.push((
        "cut mid-line",
        good[..3 * 147 + 20].to_vec(),
        vec!["lines[3]", "lines[4]"],
    ));
    let utf8 = result_file(Format::CsvUtf8, &answer)?;
    malformed.push((
        "the other format",
        utf8,
        vec!["lines[0]", "lines[1]", "lines[2]", "lines[3]", "lines[4]"],
    ));
    malformed.push(("oversized", vec![b' '; 8 * 1024 * 1024 + 1], vec!["file"]));
    let before = log_size(store).await?;
    for (kind, file, expected) in malformed {
        let status = match payment
            .import(
                &officer,
                &format!("result-{}", kind.replace(" ", "-")),
                run_id,
                file,
            )
            .await
        {
            Ok(answer) => anyhow::bail!("{kind}: recorded {answer:?}"),
            Err(status) => status,
        };
        anyhow::ensure!(
            status.code() == Code::InvalidArgument && violated_fields(&status) == expected,
            "{kind}: {status:?}"
        );
    }
    anyhow::ensure!(
        log_size(store).await? == before,
        "a refused result file wrote"
    );
    anyhow::ensure!(run_version(store, run_id).await? == 5);
    let status = payment
        .import(&approver, "result-by-approver", run_id, good.clone())
        .await
        .err();
    anyhow::ensure!(status.map(|s| s.code()) == Some(Code::PermissionDenied));
    let status = payment
        .import(&stranger, "result-far", run_id, good.clone())
        .await
        .err();
    anyhow::ensure!(status.map(|s| s.code()) == Some(Code::NotFound));

    // A good result: paid and failed as it says.
    let settled = payment
        .import(&officer, "result-1", run_id, good.clone())
        .await?;
    let states = settled.states.unwrap_or_default();
    anyhow::ensure!(
        settled.status == "result_recorded"
            && settled.version == 6
            && states.paid_count == 2
            && states.paid_total == Some(pb::Money { fen: 230_000 })
            && states.failed_count == 1
            && states.failed_total == Some(pb::Money { fen: 65_000 })
            && states.pending_count == 0,
        "{settled:?}"
    );
    let listed = payment.orders(&auditor, run_id, 0, "").await?;
    for listed in &listed.orders {
        let order = listed.order.clone().unwrap_or_default();
        let expected = if order.order_id == failed_order {
            ("failed", "账户已销户")
        } else {
            ("paid", "")
        };
        anyhow::ensure!(
            (listed.state.as_str(), listed.failure_reason.as_str()) == expected,
            "{listed:?}"
        );
    }
    // The retry answers the first result; another result, or another export, is refused.
    let retried = payment
        .import(&officer, "result-1", run_id, good.clone())
        .await?;
    anyhow::ensure!(retried == settled, "{retried:?}");
    let status = payment
        .import(&officer, "result-2", run_id, good)
        .await
        .err();
    anyhow::ensure!(status.map(|s| s.code()) == Some(Code::FailedPrecondition));
    let status = payment.export(&officer, run_id, CsvUtf8).await.err();
    anyhow::ensure!(status.map(|s| s.code()) == Some(Code::FailedPrecondition));
    anyhow::ensure!(run_version(store, run_id).await? == 6, "a refusal wrote");
    Ok(failed_order)
}

/// The re-pay run of the month's one failed order: a new order naming it; twice adds none.
async fn repay_runs(
    payment: &Payment,
    store: &EventStore,
    auth: &TestAuth,
    officer: &str,
    this_month: Month,
    next_month: Month,
    failed_order: &str,
) -> anyhow::Result<()> {
    let repay = |command_id: &'static str, period: Month| {
        let request = pb::CreateRepayRunRequest {
            command_id: command_id.into(),
            period: period.to_string(),
        };
        let mut client = payment.client.clone();
        let officer = officer.to_owned();
        async move {
            let request = with_token(request, &officer)
                .map_err(|error| Status::internal(error.to_string()))?;
            client
                .create_repay_run(request)
                .await
                .map(tonic::Response::into_inner)
        }
    };
    let run = repay("repay-this-month", this_month).await?;
    let control = run.control.clone().unwrap_or_default();
    anyhow::ensure!(
        run.status == "created"
            && control.count == 1
            && control.total == Some(pb::Money { fen: 65_000 }),
        "{run:?}"
    );
    let orders = payment.orders(officer, &run.run_id, 0, "").await?;
    let order = orders
        .orders
        .first()
        .and_then(|listed| listed.order.clone())
        .unwrap_or_default();
    anyhow::ensure!(
        order.repays_order_id == failed_order
            && order.order_id != failed_order
            && order.case_id == "case-pay-2",
        "{order:?}"
    );
    // A retry answers the same run; another command re-pays nothing twice.
    let again = repay("repay-this-month", this_month).await?;
    anyhow::ensure!(again == run, "{again:?}");
    let twice = refused(
        repay("repay-this-month-again", this_month).await,
        Code::AlreadyExists,
    )?;
    anyhow::ensure!(twice.message().contains(&run.run_id), "{twice:?}");
    anyhow::ensure!(
        run_version(
            store,
            &sunshine_payment::commands::repay_run_id_for("repay-this-month-again")
        )
        .await?
            == 0,
        "the refused re-pay run was written"
    );
    refused(
        repay("repay-next-month", next_month).await,
        Code::FailedPrecondition,
    )?;

    // The re-pay run settled: the failed order's money is posted once, when the bank pays it.
    use sunshine_payment::bank_files::Format;
    use sunshine_tests::bank::{batch_lines, result_file};
    let approver = auth.token_for("approver-1", Role::FinanceApprover, DISTRICT);
    let approved = payment
        .approve(&approver, "approve-repay", &run, 1, 65_000)
        .await?;
    let file = payment
        .export(officer, &approved.run_id, pb::BankFileFormat::CsvUtf8)
        .await?;
    let answer = result_file(Format::CsvUtf8, &batch_lines(&file.file)?)?;
    payment
        .import(officer, "repay-result", &approved.run_id, answer)
        .await?;
    settle(store).await?;
    payment
        .ensure_ledger(
            officer,
            295_000,
            &[("dibao", -145_000), ("emergency", -150_000)],
        )
        .await?;
    Ok(())
}
