//! Recovery claims (追缴) through gRPC, on PostgreSQL + NATS JetStream and on SQLite + the
//! in-process bus, with the clock moved through March, April and May of 2027. Review's
//! decisions are appended at the boundary as review appends them, a death's termination with
//! the effective month review's own rule gives it (`Change::effective_month`: the month after
//! the date of death).
//!
//! Issue 12: "A death recorded in March: no April order, and an already-paid April order
//! becomes a recovery claim."
//! - a member of a one-person dibao household dies in March, recorded in March: the April run
//!   has no order for that case;
//! - the April run is created, approved, exported and paid; then a death dated in March is
//!   recorded in April: a claim for the April order, for its amount; a redelivered
//!   termination opens no second one; a partial repayment (its retry answers the first, the
//!   same id with other content, more than outstanding, a stale version, the wrong role and
//!   another district are refused and write nothing), then the rest written off by another
//!   officer (the repayment's recorder is refused: four eyes), and the closed claim takes
//!   nothing more;
//! - a change of circumstances ends a benefit from May after the May run went to the bank:
//!   when the bank's result then pays May, that order becomes a claim too;
//! - the ledger's trial balance is zero and every figure exact at each step;
//! - `sunshine rebuild payment` replays the log into the same claims and ledger lines.

use std::sync::Arc;
use std::time::Duration;

use sunshine_domain::Month;
use sunshine_eventlog::{Actor, EventMetadata, EventStore, ExpectedVersion, NewEvent, StreamId};
use sunshine_platform::Role;
use sunshine_platform::clock::ManualClock;
use sunshine_proto::events::TypedEvent;
use sunshine_proto::v1 as pb;
use sunshine_proto::v1::payment_service_client::PaymentServiceClient;
use sunshine_review::case::Change;
use sunshine_tests::{
    DISTRICT, RunningService, ScenarioBackends, TestAuth, VILLAGE, test_config, violated_fields,
    with_token,
};
use time::Date;
use time::macros::date;
use tonic::transport::Channel;
use tonic::{Code, Status};
use tonic_health::pb::health_check_response::ServingStatus;

const PATIENCE: Duration = Duration::from_secs(30);
const OTHER_DISTRICT: &str = "990102000000";

mod recovery_claims {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn on_postgres_and_nats() -> anyhow::Result<()> {
        super::recovery_claims(true).await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn on_sqlite_and_the_in_process_bus() -> anyhow::Result<()> {
        super::recovery_claims(false).await
    }
}

/// Appends `events` to review's case stream of `case_id`, as review would.
async fn append_as_review(
    store: &EventStore,
    case_id: &str,
    events: &[&dyn TypedEventRef],
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

trait TypedEventRef {
    fn new_event(&self, case_id: &str) -> NewEvent;
}

impl<E: TypedEvent> TypedEventRef for E {
    fn new_event(&self, case_id: &str) -> NewEvent {
        NewEvent::typed(case_id, self)
    }
}

fn month(text: &str) -> Month {
    Month::parse(text).expect("a month")
}

/// An approved dibao case of a household of its own (registered with its payment account,
/// as intake would have), paid from January 2027.
async fn approved_dibao(
    store: &EventStore,
    config: &sunshine_platform::Config,
    case_id: &str,
    fen: i64,
) -> anyhow::Result<()> {
    sunshine_tests::accounts::register_if_new(store, config, &format!("household-of-{case_id}"))
        .await?;
    let opened = pb::CaseOpened {
        case_id: case_id.into(),
        application_id: format!("application-of-{case_id}"),
        household_id: format!("household-of-{case_id}"),
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
    append_as_review(store, case_id, &[&opened, &approved]).await
}

/// Review's termination of `case_id` for `change` heard on `on`, from the month review's rule
/// gives it.
async fn terminated(
    store: &EventStore,
    case_id: &str,
    change: Change,
    on: Date,
) -> anyhow::Result<Month> {
    let effective = change
        .effective_month(on)
        .ok_or_else(|| anyhow::anyhow!("no month follows"))?;
    let event = pb::BenefitTerminated {
        case_id: case_id.into(),
        effective_month: effective.to_string(),
        cause: change.cause().into(),
        policy: None,
    };
    append_as_review(store, case_id, &[&event]).await?;
    Ok(effective)
}

/// Waits until the recovery watch, then payment's projection, have passed every event of the
/// log (in that order: the watch's appends are in the log before its cursor moves).
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

async fn log_size(store: &EventStore) -> anyhow::Result<i64> {
    Ok(sqlx::query_scalar("SELECT COUNT(*) FROM events")
        .fetch_one(store.pool())
        .await?)
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

fn fen(money: Option<pb::Money>) -> i64 {
    money.map_or(-1, |money| money.fen)
}

struct Payment {
    client: PaymentServiceClient<Channel>,
}

fn request<T>(message: T, token: &str) -> Result<tonic::Request<T>, Status> {
    with_token(message, token).map_err(|error| Status::internal(error.to_string()))
}

impl Payment {
    /// Creates, approves and exports the run of `period`; answers it and its CSV batch.
    async fn run_to_the_bank(
        &self,
        officer: &str,
        approver: &str,
        period: &str,
        count: u32,
        total: i64,
    ) -> anyhow::Result<(pb::RunResponse, Vec<u8>)> {
        let mut client = self.client.clone();
        let run = client
            .create_run(request(
                pb::CreateRunRequest {
                    command_id: format!("run-{period}"),
                    period: period.into(),
                },
                officer,
            )?)
            .await?
            .into_inner();
        let control = run.control.clone().unwrap_or_default();
        anyhow::ensure!(
            control.count == count && fen(control.total) == total,
            "{control:?}"
        );
        let approved = client
            .approve_run(request(
                pb::ApproveRunRequest {
                    command_id: format!("approve-{period}"),
                    run_id: run.run_id.clone(),
                    expected_version: run.version,
                    control_count: count,
                    control_total: Some(pb::Money { fen: total }),
                },
                approver,
            )?)
            .await?
            .into_inner();
        let stream = client
            .export_bank_file(request(
                pb::ExportBankFileRequest {
                    run_id: run.run_id.clone(),
                    format: pb::BankFileFormat::CsvUtf8.into(),
                },
                officer,
            )?)
            .await?;
        let file = sunshine_tests::bank::collect(stream).await?;
        Ok((approved, file.file))
    }

    /// The bank's result: every order of the batch paid.
    async fn all_paid(&self, officer: &str, run_id: &str, batch: &[u8]) -> anyhow::Result<()> {
        use sunshine_payment::bank_files::Format;
        use sunshine_tests::bank::{batch_lines, result_file};
        let answer = result_file(Format::CsvUtf8, &batch_lines(batch)?)?;
        self.client
            .clone()
            .import_bank_result(request(
                pb::ImportBankResultRequest {
                    command_id: format!("result-{run_id}"),
                    run_id: run_id.into(),
                    file: answer,
                },
                officer,
            )?)
            .await?;
        Ok(())
    }

    async fn orders(&self, token: &str, run_id: &str) -> anyhow::Result<Vec<pb::PaymentOrder>> {
        let answer = self
            .client
            .clone()
            .list_run_orders(request(
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
        Ok(answer
            .orders
            .into_iter()
            .filter_map(|order| order.order)
            .collect())
    }

    async fn claims(
        &self,
        token: &str,
        page_size: i32,
        page_token: &str,
    ) -> Result<pb::ListRecoveryClaimsResponse, Status> {
        self.client
            .clone()
            .list_recovery_claims(request(
                pb::ListRecoveryClaimsRequest {
                    page: Some(pb::PageRequest {
                        page_size,
                        page_token: page_token.into(),
                    }),
                },
                token,
            )?)
            .await
            .map(tonic::Response::into_inner)
    }

    async fn all_claims(&self, token: &str) -> anyhow::Result<Vec<pb::RecoveryClaimResponse>> {
        Ok(self.claims(token, 100, "").await?.claims)
    }

    async fn claim(
        &self,
        token: &str,
        claim_id: &str,
    ) -> Result<pb::RecoveryClaimResponse, Status> {
        self.client
            .clone()
            .get_recovery_claim(request(
                pb::GetRecoveryClaimRequest {
                    claim_id: claim_id.into(),
                },
                token,
            )?)
            .await
            .map(tonic::Response::into_inner)
    }

    async fn repay(
        &self,
        token: &str,
        command_id: &str,
        claim: &pb::RecoveryClaimResponse,
        amount: i64,
    ) -> Result<pb::RecoveryClaimResponse, Status> {
        self.client
            .clone()
            .record_recovery_repayment(request(
                pb::RecordRecoveryRepaymentRequest {
                    command_id: command_id.into(),
                    claim_id: claim.claim_id.clone(),
                    expected_version: claim.version,
                    amount: Some(pb::Money { fen: amount }),
                    bank_reference: format!("BK-{command_id}"),
                },
                token,
            )?)
            .await
            .map(tonic::Response::into_inner)
    }

    async fn write_off(
        &self,
        token: &str,
        command_id: &str,
        claim: &pb::RecoveryClaimResponse,
    ) -> Result<pb::RecoveryClaimResponse, Status> {
        self.client
            .clone()
            .write_off_recovery(request(
                pb::WriteOffRecoveryRequest {
                    command_id: command_id.into(),
                    claim_id: claim.claim_id.clone(),
                    expected_version: claim.version,
                    reason: pb::WriteOffReason::NoEstate.into(),
                },
                token,
            )?)
            .await
            .map(tonic::Response::into_inner)
    }

    /// The ledger: every posting's amount summed is `posted` on each side, the difference 0;
    /// the dibao fund's balance is `dibao_fund`.
    async fn ensure_ledger(&self, token: &str, posted: i64, dibao_fund: i64) -> anyhow::Result<()> {
        let mut client = self.client.clone();
        let balance = client
            .get_trial_balance(request(pb::GetTrialBalanceRequest {}, token)?)
            .await?
            .into_inner();
        anyhow::ensure!(
            fen(balance.debits) == posted
                && fen(balance.credits) == posted
                && fen(balance.difference) == 0,
            "expected {posted} on each side: {balance:?}"
        );
        let funds = client
            .get_fund_balances(request(pb::GetFundBalancesRequest {}, token)?)
            .await?
            .into_inner()
            .funds;
        let dibao: Vec<i64> = funds
            .iter()
            .filter(|fund| fund.fund == "dibao")
            .map(|fund| fen(fund.balance))
            .collect();
        anyhow::ensure!(dibao == [dibao_fund], "expected {dibao_fund}: {funds:?}");
        Ok(())
    }
}

/// The figures of a claim: (status, amount, repaid, written off, outstanding).
fn figures(claim: &pb::RecoveryClaimResponse) -> (&str, i64, i64, i64, i64) {
    (
        claim.status.as_str(),
        fen(claim.amount),
        fen(claim.repaid),
        fen(claim.written_off),
        fen(claim.outstanding),
    )
}

async fn recovery_claims(cluster: bool) -> anyhow::Result<()> {
    let auth = TestAuth::new()?;
    let backends = ScenarioBackends::start(cluster).await?;
    let config = test_config(&auth, backends.database_url(), backends.bus_url());
    let clock = Arc::new(ManualClock::new(date!(2027 - 3 - 20)));
    let service_clock = Arc::clone(&clock);
    let service_config = backends.service_config(&config, sunshine_payment::SERVICE_NAME);
    let service = RunningService::start(
        sunshine_payment::SERVICE_NAME,
        service_config.clone(),
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
    let officer_as_approver = auth.token_for("officer-1", Role::FinanceApprover, DISTRICT);
    let approver = auth.token_for("approver-1", Role::FinanceApprover, DISTRICT);
    let auditor = auth.token_for("auditor-1", Role::Auditor, DISTRICT);
    let stranger = auth.token_for("officer-far", Role::FinanceOfficer, OTHER_DISTRICT);

    // Four one-person dibao households, paid from January.
    let (alive, died_march, died_late, income) = (
        "case-rec-alive",
        "case-rec-died-march",
        "case-rec-died-late",
        "case-rec-income",
    );
    approved_dibao(&store, &config, alive, 70_000).await?;
    approved_dibao(&store, &config, died_march, 60_000).await?;
    approved_dibao(&store, &config, died_late, 55_000).await?;
    approved_dibao(&store, &config, income, 40_000).await?;

    // (a) Died on 10 March, recorded on 20 March: ended from April, so no April order.
    let effective = terminated(
        &store,
        died_march,
        Change::Death {
            date_of_death: date!(2027 - 3 - 10),
        },
        clock.today_date(),
    )
    .await?;
    anyhow::ensure!(effective == month("2027-04"), "{effective}");
    settle(&store).await?;
    let (april, april_batch) = payment
        .run_to_the_bank(&officer, &approver, "2027-04", 3, 165_000)
        .await?;
    let april_orders = payment.orders(&auditor, &april.run_id).await?;
    let mut paid_cases: Vec<&str> = april_orders
        .iter()
        .map(|order| order.entitlement_id.as_str())
        .collect();
    paid_cases.sort_unstable();
    anyhow::ensure!(
        paid_cases == [alive, died_late, income],
        "the April run pays the dead: {paid_cases:?}"
    );
    payment
        .all_paid(&officer, &april.run_id, &april_batch)
        .await?;
    settle(&store).await?;
    payment.ensure_ledger(&auditor, 165_000, -165_000).await?;
    anyhow::ensure!(payment.all_claims(&auditor).await?.is_empty());

    // (b) On 5 April, a death dated 28 March is recorded: April, paid, is owed back.
    clock.set(date!(2027 - 4 - 5));
    let effective = terminated(
        &store,
        died_late,
        Change::Death {
            date_of_death: date!(2027 - 3 - 28),
        },
        clock.today_date(),
    )
    .await?;
    anyhow::ensure!(effective == month("2027-04"), "{effective}");
    settle(&store).await?;
    let claims = payment.all_claims(&auditor).await?;
    anyhow::ensure!(claims.len() == 1, "{claims:?}");
    let claim = claims[0].clone();
    let april_order = april_orders
        .iter()
        .find(|order| order.entitlement_id == died_late)
        .cloned()
        .ok_or_else(|| anyhow::anyhow!("no April order of {died_late}"))?;
    anyhow::ensure!(
        claim.orders == [april_order.clone()]
            && claim.terminated_from == "2027-04"
            && claim.cause == "member died"
            && claim.district_code == DISTRICT
            && claim.version == 1
            && figures(&claim) == ("open", 55_000, 0, 0, 55_000),
        "{claim:?}"
    );
    anyhow::ensure!(payment.claim(&officer, &claim.claim_id).await? == claim);
    // Opening it moved April's 55,000 fen from the expense to the household's receivable.
    payment.ensure_ledger(&auditor, 220_000, -165_000).await?;

    // A termination heard again (a redelivery, a replay) opens no second claim.
    terminated(
        &store,
        died_late,
        Change::Death {
            date_of_death: date!(2027 - 3 - 28),
        },
        clock.today_date(),
    )
    .await?;
    settle(&store).await?;
    anyhow::ensure!(payment.all_claims(&auditor).await?.len() == 1);
    payment.ensure_ledger(&auditor, 220_000, -165_000).await?;

    // Out of scope reads exactly like not found; another district may not list the claims.
    let missing = status_of(
        payment.claim(&stranger, &claim.claim_id).await,
        Code::NotFound,
    )?;
    let unknown = status_of(
        payment
            .claim(&officer, "00000000-0000-4000-8000-000000000000")
            .await,
        Code::NotFound,
    )?;
    anyhow::ensure!(
        missing.message().replace(&claim.claim_id, "?")
            == unknown
                .message()
                .replace("00000000-0000-4000-8000-000000000000", "?"),
        "{missing:?} / {unknown:?}"
    );
    status_of(
        payment.claims(&stranger, 100, "").await,
        Code::PermissionDenied,
    )?;
    status_of(
        payment.claim(&officer, "not-a-uuid").await,
        Code::InvalidArgument,
    )?;
    let huge = status_of(
        payment.claims(&auditor, 1_000_000, "").await,
        Code::InvalidArgument,
    )?;
    anyhow::ensure!(violated_fields(&huge) == ["page.page_size"], "{huge:?}");

    // A partial repayment by a finance officer; its retry answers the first.
    let written = log_size(&store).await?;
    status_of(
        payment.repay(&stranger, "repay-1", &claim, 20_000).await,
        Code::NotFound,
    )?;
    status_of(
        payment.repay(&auditor, "repay-1", &claim, 20_000).await,
        Code::PermissionDenied,
    )?;
    status_of(
        payment.repay(&approver, "repay-1", &claim, 20_000).await,
        Code::PermissionDenied,
    )?;
    let too_much = status_of(
        payment.repay(&officer, "repay-1", &claim, 55_001).await,
        Code::InvalidArgument,
    )?;
    anyhow::ensure!(violated_fields(&too_much) == ["amount"], "{too_much:?}");
    let nothing = status_of(
        payment.repay(&officer, "repay-1", &claim, 0).await,
        Code::InvalidArgument,
    )?;
    anyhow::ensure!(violated_fields(&nothing) == ["amount"], "{nothing:?}");
    // Every bad field named at once: a claim id that is none, no amount, a bank reference
    // with a control character, another too long, a command id too long.
    let mut bad = pb::RecordRecoveryRepaymentRequest {
        command_id: "c".repeat(101),
        claim_id: "not-a-claim".into(),
        expected_version: claim.version,
        amount: None,
        bank_reference: "BK\u{7}1".into(),
    };
    let all_bad = status_of(
        payment
            .client
            .clone()
            .record_recovery_repayment(request(bad.clone(), &officer)?)
            .await,
        Code::InvalidArgument,
    )?;
    anyhow::ensure!(
        violated_fields(&all_bad) == ["command_id", "claim_id", "amount", "bank_reference"],
        "{all_bad:?}"
    );
    bad.command_id = "repay-long-reference".into();
    bad.claim_id = claim.claim_id.clone();
    bad.amount = Some(pb::Money { fen: 1 });
    bad.bank_reference = "R".repeat(65);
    let long = status_of(
        payment
            .client
            .clone()
            .record_recovery_repayment(request(bad, &officer)?)
            .await,
        Code::InvalidArgument,
    )?;
    anyhow::ensure!(violated_fields(&long) == ["bank_reference"], "{long:?}");
    let no_reason = status_of(
        payment
            .client
            .clone()
            .write_off_recovery(request(
                pb::WriteOffRecoveryRequest {
                    command_id: "write-off-no-reason".into(),
                    claim_id: claim.claim_id.clone(),
                    expected_version: claim.version,
                    reason: pb::WriteOffReason::Unspecified.into(),
                },
                &approver,
            )?)
            .await,
        Code::InvalidArgument,
    )?;
    anyhow::ensure!(violated_fields(&no_reason) == ["reason"], "{no_reason:?}");
    anyhow::ensure!(
        log_size(&store).await? == written,
        "a refused repayment wrote"
    );
    let repaid = payment.repay(&officer, "repay-1", &claim, 20_000).await?;
    anyhow::ensure!(
        figures(&repaid) == ("open", 55_000, 20_000, 0, 35_000)
            && repaid.version == 2
            && repaid.repayments
                == [pb::RecoveryRepayment {
                    amount: Some(pb::Money { fen: 20_000 }),
                    bank_reference: "BK-repay-1".into(),
                    recorded_by: "officer-1".into(),
                }],
        "{repaid:?}"
    );
    anyhow::ensure!(payment.repay(&officer, "repay-1", &claim, 20_000).await? == repaid);
    let reused = status_of(
        payment.repay(&officer, "repay-1", &claim, 10_000).await,
        Code::InvalidArgument,
    )?;
    anyhow::ensure!(violated_fields(&reused) == ["command_id"], "{reused:?}");
    status_of(
        payment.repay(&officer, "repay-stale", &claim, 1_000).await,
        Code::Aborted,
    )?;
    let over = status_of(
        payment.repay(&officer, "repay-2", &repaid, 35_001).await,
        Code::InvalidArgument,
    )?;
    anyhow::ensure!(violated_fields(&over) == ["amount"], "{over:?}");
    settle(&store).await?;
    anyhow::ensure!(payment.claim(&auditor, &claim.claim_id).await? == repaid);
    // The 20,000 fen came back to the fund.
    payment.ensure_ledger(&auditor, 240_000, -145_000).await?;

    // The rest written off by another officer: the repayment's recorder may not.
    let written = log_size(&store).await?;
    status_of(
        payment
            .write_off(&officer_as_approver, "write-off-1", &repaid)
            .await,
        Code::PermissionDenied,
    )?;
    status_of(
        payment.write_off(&officer, "write-off-1", &repaid).await,
        Code::PermissionDenied,
    )?;
    anyhow::ensure!(
        log_size(&store).await? == written,
        "a refused write-off wrote"
    );
    let closed = payment.write_off(&approver, "write-off-1", &repaid).await?;
    anyhow::ensure!(
        figures(&closed) == ("written_off", 55_000, 20_000, 35_000, 0)
            && closed.written_off_by == "approver-1"
            && closed.write_off_reason == pb::WriteOffReason::NoEstate as i32,
        "{closed:?}"
    );
    anyhow::ensure!(payment.write_off(&approver, "write-off-1", &repaid).await? == closed);
    status_of(
        payment.repay(&officer, "repay-after", &closed, 1).await,
        Code::FailedPrecondition,
    )?;
    status_of(
        payment
            .write_off(&approver, "write-off-again", &closed)
            .await,
        Code::FailedPrecondition,
    )?;
    settle(&store).await?;
    payment.ensure_ledger(&auditor, 275_000, -145_000).await?;

    // A change of circumstances heard on 25 April ends a benefit from May, after the May run
    // went to the bank: the bank's result then pays May, and that order becomes a claim.
    clock.set(date!(2027 - 4 - 20));
    let (may, may_batch) = payment
        .run_to_the_bank(&officer, &approver, "2027-05", 2, 110_000)
        .await?;
    clock.set(date!(2027 - 4 - 25));
    let effective = terminated(&store, income, Change::Circumstances, clock.today_date()).await?;
    anyhow::ensure!(effective == month("2027-05"), "{effective}");
    settle(&store).await?;
    anyhow::ensure!(
        payment.all_claims(&auditor).await?.len() == 1,
        "a claim before the bank paid"
    );
    payment.all_paid(&officer, &may.run_id, &may_batch).await?;
    settle(&store).await?;
    let claims = payment.all_claims(&auditor).await?;
    anyhow::ensure!(claims.len() == 2, "{claims:?}");
    let may_claim = claims
        .iter()
        .find(|other| other.claim_id != claim.claim_id)
        .cloned()
        .ok_or_else(|| anyhow::anyhow!("no claim of May"))?;
    anyhow::ensure!(
        may_claim.orders.len() == 1
            && may_claim.orders[0].entitlement_id == income
            && may_claim.terminated_from == "2027-05"
            && may_claim.cause == "change of circumstances"
            && figures(&may_claim) == ("open", 40_000, 0, 0, 40_000),
        "{may_claim:?}"
    );
    // Paid 110,000 more, then 40,000 of it claimed.
    payment.ensure_ledger(&auditor, 425_000, -255_000).await?;

    // Pages of one, in claim-id order.
    let first = payment.claims(&auditor, 1, "").await?;
    let token = first.page.clone().unwrap_or_default().next_page_token;
    anyhow::ensure!(first.claims.len() == 1 && !token.is_empty(), "{first:?}");
    let second = payment.claims(&auditor, 1, &token).await?;
    anyhow::ensure!(
        second.claims.len() == 1
            && second
                .page
                .clone()
                .unwrap_or_default()
                .next_page_token
                .is_empty()
            && first.claims[0].claim_id < second.claims[0].claim_id,
        "{second:?}"
    );

    // `sunshine rebuild payment` (the service stopped) replays the log into the same claims
    // and the same ledger lines.
    let before = recovery_tables(&store).await?;
    anyhow::ensure!(before.0.len() == 2 && before.1.len() == 2 * 9, "{before:?}");
    service.stop().await?;
    sunshine_payment::rebuild(&service_config).await?;
    let after = recovery_tables(&store).await?;
    anyhow::ensure!(after == before, "rebuilt {after:?}, was {before:?}");
    Ok(())
}

/// The claims' rows (id, outstanding, status) and every ledger line (key, line, account,
/// debit, credit), in key order.
type ClaimRows = Vec<(String, i64, String)>;
type LedgerRows = Vec<(String, i64, String, i64, i64)>;

async fn recovery_tables(store: &EventStore) -> anyhow::Result<(ClaimRows, LedgerRows)> {
    let claims = sqlx::query_as(
        "SELECT claim_id, outstanding_fen, status FROM payment_recovery_claims ORDER BY claim_id",
    )
    .fetch_all(store.pool())
    .await?;
    let lines = sqlx::query_as(
        "SELECT order_id, line, account, debit_fen, credit_fen FROM payment_ledger_lines ORDER BY order_id, line",
    )
    .fetch_all(store.pool())
    .await?;
    Ok((claims, lines))
}

/// The manual clock's date, as the service reads it.
trait Today {
    fn today_date(&self) -> Date;
}

impl Today for ManualClock {
    fn today_date(&self) -> Date {
        sunshine_platform::clock::Clock::today(self)
    }
}
