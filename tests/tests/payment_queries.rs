//! Payment's queries (issue 12, item 9) through gRPC, on PostgreSQL + NATS JetStream and on
//! SQLite + the in-process bus, over an April 2027 that has every kind of order:
//!
//! - three one-person dibao households paid from January; the April run, one order failed by
//!   the bank, the re-pay run paying it again, one order returned (退票), one paid order owed
//!   back after a death (追缴), partly repaid and the rest written off;
//! - `ListHouseholdPayments`: each household's orders across runs with their states, the
//!   re-pay links both ways and the recovery claim; pages; out of scope reads as not found;
//! - `ListRuns`: the runs with status, period, pay date, control totals, reconciliation;
//!   filtered by period and by status; pages;
//! - `GetMonthlyReport`: the period's figures per program and street-town, which add up to the
//!   ledger (the trial balance's sides and the fund's balance);
//! - `ExportRunForInspection`: one line per order, the household a keyed hash (HMAC-SHA256 under
//!   the configured key, recomputed here from the key file), the account's tail as in the bank
//!   file, no clear id; each export recorded on `payment-inspection-<run id>`;
//! - a fourth household's April order owed back after a death, partly repaid, then returned by
//!   the bank (退票): its claim is cancelled (nothing owed; the repayment owed back to the
//!   household), the ledger still balanced;
//! - every query refuses a page of a million on the field, and the wrong roles.

use std::sync::Arc;
use std::time::Duration;

use sunshine_eventlog::{Actor, EventMetadata, EventStore, ExpectedVersion, NewEvent, StreamId};
use sunshine_payment::bank_files::{Format, ResultLine};
use sunshine_payment::inspection::InspectionKey;
use sunshine_platform::Role;
use sunshine_platform::clock::ManualClock;
use sunshine_proto::events::TypedEvent;
use sunshine_proto::v1 as pb;
use sunshine_proto::v1::payment_service_client::PaymentServiceClient;
use sunshine_tests::bank::{answer, batch_lines, result_file, returns_file};
use sunshine_tests::{
    DISTRICT, RunningService, ScenarioBackends, TestAuth, VILLAGE, test_config, violated_fields,
    with_token,
};
use time::macros::date;
use tonic::transport::Channel;
use tonic::{Code, Status};
use tonic_health::pb::health_check_response::ServingStatus;

const PATIENCE: Duration = Duration::from_secs(30);
const OTHER_DISTRICT: &str = "990102000000";
/// The street-town of [`VILLAGE`].
const STREET_TOWN: &str = "990101001000";

mod payment_queries {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn on_postgres_and_nats() -> anyhow::Result<()> {
        super::payment_queries(true).await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn on_sqlite_and_the_in_process_bus() -> anyhow::Result<()> {
        super::payment_queries(false).await
    }
}

/// Appends `events` to review's case stream of `case_id`, as review would.
async fn append_as_review(
    store: &EventStore,
    case_id: &str,
    events: Vec<NewEvent>,
) -> anyhow::Result<()> {
    let stream = StreamId::new("review", "case", case_id)?;
    let version = store.stream_version(&stream).await?;
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
    store.append(&stream, expected, &metadata, events).await?;
    Ok(())
}

fn typed(case_id: &str, event: &impl TypedEvent) -> NewEvent {
    NewEvent::typed(case_id, event)
}

fn household_of(case_id: &str) -> String {
    format!("household-of-{case_id}")
}

/// An approved dibao case of a household of its own (registered with its payment account,
/// as intake would have), paid from January 2027.
async fn approved_dibao(
    store: &EventStore,
    config: &sunshine_platform::Config,
    case_id: &str,
    fen: i64,
) -> anyhow::Result<()> {
    sunshine_tests::accounts::register_if_new(store, config, &household_of(case_id)).await?;
    let opened = pb::CaseOpened {
        case_id: case_id.into(),
        application_id: format!("application-of-{case_id}"),
        household_id: household_of(case_id),
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
        start_month: "2027-01".into(),
        reasons: "符合条件".into(),
        ..Default::default()
    };
    append_as_review(
        store,
        case_id,
        vec![typed(case_id, &opened), typed(case_id, &approved)],
    )
    .await
}

/// Review's termination of `case_id` from `effective_month` (a death).
async fn terminated(
    store: &EventStore,
    case_id: &str,
    effective_month: &str,
) -> anyhow::Result<()> {
    let event = pb::BenefitTerminated {
        case_id: case_id.into(),
        effective_month: effective_month.into(),
        cause: "member died".into(),
        policy: None,
    };
    append_as_review(store, case_id, vec![typed(case_id, &event)]).await
}

/// Waits until payment's consumers have passed every event of the log.
async fn settle(store: &EventStore) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let watch = sunshine_tests::events_behind(store.pool(), "payment-recovery-watch").await?;
        let projection =
            sunshine_tests::events_behind(store.pool(), "payment-entitlements").await?;
        if watch == 0 && projection == 0 {
            return Ok(());
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "payment's consumers never caught up ({watch}, {projection} behind)"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn status_of<T: std::fmt::Debug>(result: Result<T, Status>, code: Code) -> anyhow::Result<Status> {
    match result {
        Ok(answer) => anyhow::bail!("expected {code:?}, got OK {answer:?}"),
        Err(status) => {
            anyhow::ensure!(status.code() == code, "expected {code:?}, got {status:?}");
            Ok(status)
        }
    }
}

fn fen(money: Option<&pb::Money>) -> i64 {
    money.map_or(-1, |money| money.fen)
}

fn request<T>(message: T, token: &str) -> Result<tonic::Request<T>, Status> {
    with_token(message, token).map_err(|error| Status::internal(error.to_string()))
}

fn page(page_size: i32, page_token: &str) -> Option<pb::PageRequest> {
    Some(pb::PageRequest {
        page_size,
        page_token: page_token.into(),
    })
}

struct Payment {
    client: PaymentServiceClient<Channel>,
}

impl Payment {
    async fn household(
        &self,
        token: &str,
        household_id: &str,
        page_size: i32,
        page_token: &str,
    ) -> Result<pb::ListHouseholdPaymentsResponse, Status> {
        self.client
            .clone()
            .list_household_payments(request(
                pb::ListHouseholdPaymentsRequest {
                    household_id: household_id.into(),
                    page: page(page_size, page_token),
                },
                token,
            )?)
            .await
            .map(tonic::Response::into_inner)
    }

    async fn runs(
        &self,
        token: &str,
        period: &str,
        status: &str,
        page_size: i32,
        page_token: &str,
    ) -> Result<pb::ListRunsResponse, Status> {
        self.client
            .clone()
            .list_runs(request(
                pb::ListRunsRequest {
                    period: period.into(),
                    status: status.into(),
                    page: page(page_size, page_token),
                },
                token,
            )?)
            .await
            .map(tonic::Response::into_inner)
    }

    async fn report(&self, token: &str, period: &str) -> Result<pb::MonthlyReportResponse, Status> {
        self.client
            .clone()
            .get_monthly_report(request(
                pb::GetMonthlyReportRequest {
                    period: period.into(),
                },
                token,
            )?)
            .await
            .map(tonic::Response::into_inner)
    }

    async fn inspection(
        &self,
        token: &str,
        run_id: &str,
    ) -> Result<pb::ExportRunForInspectionResponse, Status> {
        self.client
            .clone()
            .export_run_for_inspection(request(
                pb::ExportRunForInspectionRequest {
                    run_id: run_id.into(),
                },
                token,
            )?)
            .await
            .map(tonic::Response::into_inner)
    }

    /// Approves and exports `run` (its control figures re-keyed as they are); the CSV batch.
    async fn approve_and_export(
        &self,
        officer: &str,
        approver: &str,
        run: &pb::RunResponse,
    ) -> anyhow::Result<Vec<u8>> {
        let mut client = self.client.clone();
        let control = run.control.clone().unwrap_or_default();
        client
            .approve_run(request(
                pb::ApproveRunRequest {
                    command_id: format!("approve-{}", run.run_id),
                    run_id: run.run_id.clone(),
                    expected_version: run.version,
                    control_count: control.count,
                    control_total: control.total,
                },
                approver,
            )?)
            .await?;
        let stream = client
            .export_bank_file(request(
                pb::ExportBankFileRequest {
                    run_id: run.run_id.clone(),
                    format: pb::BankFileFormat::CsvUtf8.into(),
                },
                officer,
            )?)
            .await?;
        Ok(sunshine_tests::bank::collect(stream).await?.file)
    }

    async fn result(&self, officer: &str, run_id: &str, file: Vec<u8>) -> anyhow::Result<()> {
        self.client
            .clone()
            .import_bank_result(request(
                pb::ImportBankResultRequest {
                    command_id: format!("result-{run_id}"),
                    run_id: run_id.into(),
                    file,
                },
                officer,
            )?)
            .await?;
        Ok(())
    }

    async fn balances(&self, token: &str) -> anyhow::Result<(i64, i64, i64)> {
        let mut client = self.client.clone();
        let balance = client
            .get_trial_balance(request(pb::GetTrialBalanceRequest {}, token)?)
            .await?
            .into_inner();
        let funds = client
            .get_fund_balances(request(pb::GetFundBalancesRequest {}, token)?)
            .await?
            .into_inner()
            .funds;
        let dibao = funds
            .iter()
            .filter(|fund| fund.fund == "dibao")
            .map(|fund| fen(fund.balance.as_ref()))
            .sum();
        Ok((
            fen(balance.debits.as_ref()),
            fen(balance.credits.as_ref()),
            dibao,
        ))
    }
}

#[allow(clippy::too_many_lines)]
async fn payment_queries(cluster: bool) -> anyhow::Result<()> {
    let auth = TestAuth::new()?;
    let backends = ScenarioBackends::start(cluster).await?;
    let config = test_config(&auth, backends.database_url(), backends.bus_url());
    let key =
        InspectionKey::from_file_content(&std::fs::read(&config.payment.inspection_key_file)?)?;
    let clock = Arc::new(ManualClock::new(date!(2027 - 3 - 20)));
    let service_clock = Arc::clone(&clock);
    let service = RunningService::start(
        sunshine_payment::SERVICE_NAME,
        backends.service_config(&config, sunshine_payment::SERVICE_NAME),
        move |config, listener, shutdown| {
            sunshine_payment::run_with_clock(config, listener, shutdown, service_clock)
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
    let payment = Payment {
        client: PaymentServiceClient::new(service.channel().await?),
    };
    let officer = auth.token_for("officer-1", Role::FinanceOfficer, DISTRICT);
    let approver = auth.token_for("approver-1", Role::FinanceApprover, DISTRICT);
    let auditor = auth.token_for("auditor-1", Role::Auditor, DISTRICT);
    let stranger = auth.token_for("auditor-far", Role::Auditor, OTHER_DISTRICT);
    let far_approver = auth.token_for("approver-far", Role::FinanceApprover, OTHER_DISTRICT);
    let reviewer = auth.token_for("reviewer-1", Role::CenterReviewer, DISTRICT);

    let (paid, failed, returned) = ("case-q-paid", "case-q-failed", "case-q-returned");
    let refunded = "case-q-refunded";
    approved_dibao(&store, &config, paid, 70_000).await?;
    approved_dibao(&store, &config, refunded, 40_000).await?;
    approved_dibao(&store, &config, failed, 60_000).await?;
    approved_dibao(&store, &config, returned, 55_000).await?;
    settle(&store).await?;

    // April: created, approved, exported; the bank fails one order.
    let april = payment
        .client
        .clone()
        .create_run(request(
            pb::CreateRunRequest {
                command_id: "run-2027-04".into(),
                period: "2027-04".into(),
            },
            &officer,
        )?)
        .await?
        .into_inner();
    let april_batch = payment
        .approve_and_export(&officer, &approver, &april)
        .await?;
    let order_of = |case_id: &str| -> anyhow::Result<ResultLine> {
        let lines = batch_lines(&april_batch)?;
        let orders = april.control.as_ref().map_or(0, |control| control.count);
        anyhow::ensure!(orders == 4, "{april:?}");
        // The batch's accounts are each household's, as intake sealed it (docs/bank-files.md).
        let account = sunshine_tests::accounts::account_of(&household_of(case_id)).account_number;
        lines
            .into_iter()
            .find(|line| line.account == account)
            .ok_or_else(|| anyhow::anyhow!("no April line of {case_id}"))
    };
    let failed_line = order_of(failed)?;
    payment
        .result(
            &officer,
            &april.run_id,
            answer(&april_batch, Format::CsvUtf8, Some(&failed_line.order_id))?,
        )
        .await?;
    settle(&store).await?;

    // The re-pay run pays the failed order again.
    let repay = payment
        .client
        .clone()
        .create_repay_run(request(
            pb::CreateRepayRunRequest {
                command_id: "repay-2027-04".into(),
                period: "2027-04".into(),
            },
            &officer,
        )?)
        .await?
        .into_inner();
    let repay_batch = payment
        .approve_and_export(&officer, &approver, &repay)
        .await?;
    payment
        .result(
            &officer,
            &repay.run_id,
            result_file(Format::CsvUtf8, &batch_lines(&repay_batch)?)?,
        )
        .await?;
    let repay_order = batch_lines(&repay_batch)?
        .pop()
        .ok_or_else(|| anyhow::anyhow!("an empty re-pay batch"))?;

    // One April order returned (退票).
    let mut returned_line = order_of(returned)?;
    returned_line.paid = false;
    returned_line.reason = "账户已冻结".into();
    payment
        .client
        .clone()
        .import_bank_returns(request(
            pb::ImportBankReturnsRequest {
                command_id: "returns-2027-04".into(),
                run_id: april.run_id.clone(),
                file: returns_file(Format::CsvUtf8, std::slice::from_ref(&returned_line))?,
            },
            &officer,
        )?)
        .await?;

    // A death: the paid April order is owed back; 20,000 repaid, the rest written off.
    clock.set(date!(2027 - 4 - 5));
    terminated(&store, paid, "2027-04").await?;
    terminated(&store, refunded, "2027-04").await?;
    settle(&store).await?;
    let claims = payment
        .client
        .clone()
        .list_recovery_claims(request(
            pb::ListRecoveryClaimsRequest { page: None },
            &auditor,
        )?)
        .await?
        .into_inner()
        .claims;
    let claim_of = |case_id: &str| {
        claims
            .iter()
            .find(|claim| {
                claim
                    .orders
                    .first()
                    .is_some_and(|order| order.entitlement_id == case_id)
            })
            .cloned()
            .ok_or_else(|| anyhow::anyhow!("no claim of {case_id}: {claims:?}"))
    };
    let claim = claim_of(paid)?;
    let refund_claim = claim_of(refunded)?;
    let claim = payment
        .client
        .clone()
        .record_recovery_repayment(request(
            pb::RecordRecoveryRepaymentRequest {
                command_id: "repay-claim".into(),
                claim_id: claim.claim_id.clone(),
                expected_version: claim.version,
                amount: Some(pb::Money { fen: 20_000 }),
                bank_reference: "BK-1".into(),
            },
            &officer,
        )?)
        .await?
        .into_inner();
    payment
        .client
        .clone()
        .write_off_recovery(request(
            pb::WriteOffRecoveryRequest {
                command_id: "write-off-claim".into(),
                claim_id: claim.claim_id.clone(),
                expected_version: claim.version,
                reason: pb::WriteOffReason::NoEstate.into(),
            },
            &approver,
        )?)
        .await?;
    settle(&store).await?;

    // The fourth household repays 10,000 of its 40,000; then the bank returns its April order.
    let refund_claim = payment
        .client
        .clone()
        .record_recovery_repayment(request(
            pb::RecordRecoveryRepaymentRequest {
                command_id: "repay-refund-claim".into(),
                claim_id: refund_claim.claim_id.clone(),
                expected_version: refund_claim.version,
                amount: Some(pb::Money { fen: 10_000 }),
                bank_reference: "BK-2".into(),
            },
            &officer,
        )?)
        .await?
        .into_inner();
    settle(&store).await?;
    let (debits_before, _, fund_before) = payment.balances(&auditor).await?;
    let mut refunded_line = order_of(refunded)?;
    refunded_line.paid = false;
    refunded_line.reason = "账户已销户".into();
    let returns = returns_file(Format::CsvUtf8, std::slice::from_ref(&refunded_line))?;
    payment
        .client
        .clone()
        .import_bank_returns(request(
            pb::ImportBankReturnsRequest {
                command_id: "returns-2027-04-b".into(),
                run_id: april.run_id.clone(),
                file: returns,
            },
            &officer,
        )?)
        .await?;
    settle(&store).await?;
    let cancelled = payment
        .client
        .clone()
        .get_recovery_claim(request(
            pb::GetRecoveryClaimRequest {
                claim_id: refund_claim.claim_id.clone(),
            },
            &auditor,
        )?)
        .await?
        .into_inner();
    anyhow::ensure!(
        cancelled.status == "cancelled"
            && cancelled.version == refund_claim.version + 1
            && fen(cancelled.outstanding.as_ref()) == 0
            && fen(cancelled.repaid.as_ref()) == 10_000
            && fen(cancelled.refund_due.as_ref()) == 10_000,
        "{cancelled:?}"
    );
    // The return's reversal (40,000 each side), and the cancellation: 30,000 outstanding and
    // the 10,000 repaid (owed back), each debited to the expense; the fund has the 40,000 back.
    let (debits_after, credits_after, fund_after) = payment.balances(&auditor).await?;
    anyhow::ensure!(
        debits_after == debits_before + 80_000
            && credits_after == debits_after
            && fund_after == fund_before + 40_000,
        "{debits_before} → {debits_after}/{credits_after}, fund {fund_before} → {fund_after}"
    );
    // The claim takes nothing more.
    status_of(
        payment
            .client
            .clone()
            .record_recovery_repayment(request(
                pb::RecordRecoveryRepaymentRequest {
                    command_id: "repay-cancelled".into(),
                    claim_id: cancelled.claim_id.clone(),
                    expected_version: cancelled.version,
                    amount: Some(pb::Money { fen: 1 }),
                    bank_reference: "BK-3".into(),
                },
                &officer,
            )?)
            .await,
        Code::FailedPrecondition,
    )?;

    // ---- ListHouseholdPayments ----
    let failed_household = household_of(failed);
    let first = payment
        .household(&auditor, &failed_household, 1, "")
        .await?;
    anyhow::ensure!(
        first.payments.len() == 1
            && first
                .page
                .as_ref()
                .is_some_and(|page| !page.next_page_token.is_empty()),
        "{first:?}"
    );
    let token = first.page.clone().unwrap_or_default().next_page_token;
    let second = payment
        .household(&auditor, &failed_household, 1, &token)
        .await?;
    anyhow::ensure!(
        second.payments.len() == 1
            && second
                .page
                .as_ref()
                .is_some_and(|page| page.next_page_token.is_empty()),
        "{second:?}"
    );
    let all = payment
        .household(&officer, &failed_household, 100, "")
        .await?;
    anyhow::ensure!(
        all.payments == [first.payments.clone(), second.payments.clone()].concat(),
        "{all:?}"
    );
    let by_order = |order_id: &str| {
        all.payments
            .iter()
            .find(|payment| {
                payment
                    .order
                    .as_ref()
                    .is_some_and(|order| order.order_id == order_id)
            })
            .cloned()
    };
    let failed_payment =
        by_order(&failed_line.order_id).ok_or_else(|| anyhow::anyhow!("{all:?}"))?;
    let repay_payment =
        by_order(&repay_order.order_id).ok_or_else(|| anyhow::anyhow!("{all:?}"))?;
    anyhow::ensure!(
        failed_payment.state == "failed"
            && failed_payment.period == "2027-04"
            && failed_payment.run_id == april.run_id
            && failed_payment.failure_reason == "账户已销户"
            && failed_payment.repaid_by_order_id == repay_order.order_id
            && failed_payment.recovery_claim_id.is_empty(),
        "{failed_payment:?}"
    );
    anyhow::ensure!(
        repay_payment.state == "paid"
            && repay_payment.run_id == repay.run_id
            && repay_payment
                .order
                .as_ref()
                .is_some_and(|order| order.repays_order_id == failed_line.order_id
                    && order.program_code == "dibao"
                    && fen(order.amount.as_ref()) == 60_000),
        "{repay_payment:?}"
    );
    let paid_payments = payment
        .household(&auditor, &household_of(paid), 100, "")
        .await?;
    anyhow::ensure!(
        paid_payments.payments.len() == 1
            && paid_payments.payments[0].state == "paid"
            && paid_payments.payments[0].recovery_claim_id == claim.claim_id
            && paid_payments.payments[0].recovery_status == "written_off"
            && fen(paid_payments.payments[0].recovery_outstanding.as_ref()) == 0,
        "{paid_payments:?}"
    );
    let returned_payments = payment
        .household(&auditor, &household_of(returned), 100, "")
        .await?;
    anyhow::ensure!(
        returned_payments.payments.len() == 1
            && returned_payments.payments[0].state == "returned"
            && returned_payments.payments[0].failure_reason == "账户已冻结",
        "{returned_payments:?}"
    );
    // Out of scope reads exactly like a household with no payments.
    let far = status_of(
        payment
            .household(&stranger, &failed_household, 10, "")
            .await,
        Code::NotFound,
    )?;
    let unknown = status_of(
        payment
            .household(&auditor, "household-nobody", 10, "")
            .await,
        Code::NotFound,
    )?;
    anyhow::ensure!(far.message() == unknown.message(), "{far:?} / {unknown:?}");
    let huge = status_of(
        payment
            .household(&auditor, &failed_household, 1_000_000, "")
            .await,
        Code::InvalidArgument,
    )?;
    anyhow::ensure!(violated_fields(&huge) == ["page.page_size"], "{huge:?}");
    let bad = status_of(
        payment
            .household(&auditor, "a name, 张三", 10, "not-a-token")
            .await,
        Code::InvalidArgument,
    )?;
    anyhow::ensure!(
        violated_fields(&bad) == ["household_id", "page.page_token"],
        "{bad:?}"
    );
    status_of(
        payment
            .household(&reviewer, &failed_household, 10, "")
            .await,
        Code::PermissionDenied,
    )?;

    // ---- ListRuns ----
    let runs = payment.runs(&auditor, "", "", 100, "").await?;
    let ids: Vec<&str> = runs.runs.iter().map(|run| run.run_id.as_str()).collect();
    let mut expected = vec![april.run_id.as_str(), repay.run_id.as_str()];
    expected.sort_unstable();
    anyhow::ensure!(ids == expected, "{runs:?}");
    let april_listed = runs
        .runs
        .iter()
        .find(|run| run.run_id == april.run_id)
        .ok_or_else(|| anyhow::anyhow!("{runs:?}"))?;
    anyhow::ensure!(
        april_listed.status == "result_recorded"
            && april_listed.period == "2027-04"
            && april_listed.reconciliation == "open"
            && april_listed.pay_on.is_some()
            && april_listed
                .control
                .as_ref()
                .is_some_and(|control| control.count == 4 && fen(control.total.as_ref()) == 225_000)
            && april_listed
                .states
                .as_ref()
                .is_some_and(|states| states.paid_count == 1
                    && states.failed_count == 1
                    && states.returned_count == 2),
        "{april_listed:?}"
    );
    let first = payment.runs(&officer, "2027-04", "", 1, "").await?;
    let token = first.page.clone().unwrap_or_default().next_page_token;
    let second = payment.runs(&officer, "2027-04", "", 1, &token).await?;
    anyhow::ensure!(
        first.runs.len() == 1
            && second.runs.len() == 1
            && second
                .page
                .as_ref()
                .is_some_and(|page| page.next_page_token.is_empty())
            && [
                first.runs[0].run_id.as_str(),
                second.runs[0].run_id.as_str()
            ] == expected[..],
        "{first:?} {second:?}"
    );
    anyhow::ensure!(
        payment
            .runs(&auditor, "2027-05", "", 100, "")
            .await?
            .runs
            .is_empty(),
        "May has no run"
    );
    let recorded = payment
        .runs(&auditor, "2027-04", "result_recorded", 100, "")
        .await?;
    anyhow::ensure!(recorded.runs.len() == 2, "{recorded:?}");
    anyhow::ensure!(
        payment
            .runs(&auditor, "", "reconciled", 100, "")
            .await?
            .runs
            .is_empty()
    );
    let bad = status_of(
        payment.runs(&auditor, "April", "paid", 1_000_000, "").await,
        Code::InvalidArgument,
    )?;
    anyhow::ensure!(
        violated_fields(&bad) == ["period", "status", "page.page_size"],
        "{bad:?}"
    );
    status_of(
        payment.runs(&stranger, "", "", 10, "").await,
        Code::PermissionDenied,
    )?;
    status_of(
        payment.runs(&reviewer, "", "", 10, "").await,
        Code::PermissionDenied,
    )?;

    // ---- GetMonthlyReport: the figures add up to the ledger ----
    let report = payment.report(&auditor, "2027-04").await?;
    anyhow::ensure!(report.lines.len() == 1, "{report:?}");
    let line = &report.lines[0];
    anyhow::ensure!(
        line.program_code == "dibao" && line.street_town_code == STREET_TOWN,
        "{line:?}"
    );
    let figures = |line: &pb::MonthlyReportLine| {
        [
            (line.order_count, fen(line.order_total.as_ref())),
            (line.paid_count, fen(line.paid_total.as_ref())),
            (line.failed_count, fen(line.failed_total.as_ref())),
            (line.returned_count, fen(line.returned_total.as_ref())),
            (line.pending_count, fen(line.pending_total.as_ref())),
            (line.repay_count, fen(line.repay_total.as_ref())),
            (line.recovery_count, fen(line.recovery_claimed.as_ref())),
            (0, fen(line.recovery_repaid.as_ref())),
            (0, fen(line.recovery_written_off.as_ref())),
            (0, fen(line.recovery_cancelled.as_ref())),
        ]
    };
    anyhow::ensure!(
        figures(line)
            == [
                (5, 285_000),
                (2, 130_000),
                (1, 60_000),
                (2, 95_000),
                (0, 0),
                (1, 60_000),
                (2, 110_000),
                (0, 30_000),
                (0, 50_000),
                (0, 40_000),
            ],
        "{line:?}"
    );
    let total = report.total.clone().unwrap_or_default();
    anyhow::ensure!(figures(&total) == figures(line), "{total:?}");
    // Every posting of the month: each order the bank paid (paid now, or paid then returned),
    // each return's reversal, the claims' openings, repayments, write-offs and cancellations
    // (a cancellation posts the claim's whole amount: outstanding, written off, repaid).
    let (debits, credits, dibao_fund) = payment.balances(&auditor).await?;
    let paid_total = fen(total.paid_total.as_ref());
    let returned_total = fen(total.returned_total.as_ref());
    let posted = paid_total
        + 2 * returned_total
        + fen(total.recovery_claimed.as_ref())
        + fen(total.recovery_repaid.as_ref())
        + fen(total.recovery_written_off.as_ref())
        + fen(total.recovery_cancelled.as_ref());
    anyhow::ensure!(
        debits == posted && credits == posted,
        "the report says {posted}, the ledger {debits}/{credits}"
    );
    // The fund paid what the bank paid and kept, and got back what was repaid.
    anyhow::ensure!(
        dibao_fund == -paid_total + fen(total.recovery_repaid.as_ref()),
        "the fund's balance {dibao_fund} against the report's {total:?}"
    );
    let empty = payment.report(&officer, "2027-05").await?;
    anyhow::ensure!(
        empty.lines.is_empty()
            && empty
                .total
                .as_ref()
                .is_some_and(|total| total.order_count == 0),
        "{empty:?}"
    );
    let bad = status_of(payment.report(&auditor, "").await, Code::InvalidArgument)?;
    anyhow::ensure!(violated_fields(&bad) == ["period"], "{bad:?}");
    status_of(
        payment.report(&stranger, "2027-04").await,
        Code::PermissionDenied,
    )?;
    status_of(
        payment.report(&reviewer, "2027-04").await,
        Code::PermissionDenied,
    )?;

    // ---- ExportRunForInspection ----
    let export = payment.inspection(&auditor, &april.run_id).await?;
    let text = String::from_utf8(export.file.clone())?;
    let lines: Vec<&str> = text.split_terminator("\r\n").collect();
    anyhow::ensure!(
        export.count == 4
            && lines.len() == 6
            && lines[0] == sunshine_payment::inspection::HEADER
            && lines[5] == "T,4,225000"
            && export.sha256 == sunshine_payment::bank_files::sha256_hex(&export.file)
            && export.key_id == key.key_id(),
        "{text}"
    );
    for (case_id, state, fen) in [
        (paid, "paid", 70_000),
        (failed, "failed", 60_000),
        (returned, "returned", 55_000),
        (refunded, "returned", 40_000),
    ] {
        let household = household_of(case_id);
        let bank_line = order_of(case_id)?;
        let expected = format!(
            "{},dibao,2027-04,{fen},{},{state}",
            key.household_hash(&household),
            &bank_line.account[bank_line.account.len() - 4..]
        );
        anyhow::ensure!(
            lines.contains(&expected.as_str()),
            "{expected} not in {text}"
        );
        anyhow::ensure!(!text.contains(&household) && !text.contains(&bank_line.account));
    }
    // Each export is recorded: who, which run, the digest.
    let again = payment.inspection(&approver, &april.run_id).await?;
    anyhow::ensure!(again.sha256 == export.sha256);
    let recorded = store
        .read_stream(&StreamId::new("payment", "inspection", &april.run_id)?, 1)
        .await?;
    let exports: Vec<pb::InspectionExported> = recorded
        .iter()
        .map(|event| prost::Message::decode(event.payload.as_slice()))
        .collect::<Result<_, _>>()?;
    anyhow::ensure!(
        exports.len() == 2
            && exports
                .iter()
                .all(|exported| exported.run_id == april.run_id
                    && exported.sha256 == export.sha256
                    && exported.count == 4)
            && exports[0].exported_by == "auditor-1"
            && exports[1].exported_by == "approver-1",
        "{exports:?}"
    );
    status_of(
        payment.inspection(&far_approver, &april.run_id).await,
        Code::NotFound,
    )?;
    status_of(
        payment.inspection(&officer, &april.run_id).await,
        Code::PermissionDenied,
    )?;
    let bad = status_of(
        payment.inspection(&auditor, "not-a-run").await,
        Code::InvalidArgument,
    )?;
    anyhow::ensure!(violated_fields(&bad) == ["run_id"], "{bad:?}");

    database.close().await;
    service.stop().await?;
    drop(backends);
    Ok(())
}
