//! Emergency cash (急难): an assist-first grant paid at once in cash with a recorded reason
//! (`RecordEmergencyCashPayment`), through gRPC, on PostgreSQL + NATS JetStream and on
//! SQLite + the in-process bus. Review's decisions are appended at the boundary as review
//! appends them: a dibao case approved from this month and assist-first grants.
//!
//! A grant paid in cash is posted at once (trial balance zero, the emergency fund's balance
//! less the grant) and shows in the household's payments; this month's run then has no order
//! for it (the guard table's key is the cash payment's). A retry answers the same payment; the
//! same id with other content is refused; a second cash payment of the grant, and one of a
//! grant already in the run, are `ALREADY_EXISTS` naming the holder; a monthly benefit is
//! `FAILED_PRECONDITION`; a grant over the fund's remaining budget is `FAILED_PRECONDITION`
//! naming the fund and writes nothing; bad fields are `INVALID_ARGUMENT` naming each and write
//! nothing; out of scope reads as not found; other roles are `PERMISSION_DENIED`. A rebuild
//! replays the log into the same orders and ledger lines.

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
const OTHER_DISTRICT: &str = "990102000000";

mod emergency_cash {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn on_postgres_and_nats() -> anyhow::Result<()> {
        super::emergency_cash(true).await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn on_sqlite_and_the_in_process_bus() -> anyhow::Result<()> {
        super::emergency_cash(false).await
    }
}

/// Appends `events` as review would, to a new case whose household
/// (`household-of-<case id>`) is registered with its payment account first.
async fn new_case(
    store: &EventStore,
    config: &sunshine_platform::Config,
    case_id: &str,
    program: &str,
    decision: &dyn Fn(&str) -> NewEvent,
) -> anyhow::Result<()> {
    let household = format!("household-of-{case_id}");
    sunshine_tests::accounts::register_if_new(store, config, &household).await?;
    let opened = pb::CaseOpened {
        case_id: case_id.into(),
        application_id: format!("application-of-{case_id}"),
        household_id: household,
        program_code: program.into(),
        workflow: "means_tested_review".into(),
        accepted_org_unit_code: VILLAGE.into(),
        hukou_org_unit_code: VILLAGE.into(),
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
            vec![typed(case_id, &opened), decision(case_id)],
        )
        .await?;
    Ok(())
}

fn typed(case_id: &str, event: &impl TypedEvent) -> NewEvent {
    NewEvent::typed(case_id, event)
}

fn grant(fen: i64) -> impl Fn(&str) -> NewEvent {
    move |case_id| {
        typed(
            case_id,
            &pb::AssistFirstGranted {
                case_id: case_id.into(),
                amount: Some(pb::Money { fen }),
                cap: Some(pb::Money { fen }),
                reason: "火灾".into(),
                ..Default::default()
            },
        )
    }
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

/// The grant's entitlement id (`assist-first-<event id>`), as payment's projection holds it.
async fn grant_of(store: &EventStore, case_id: &str) -> anyhow::Result<String> {
    Ok(sqlx::query_scalar(
        "SELECT entitlement_id FROM payment_entitlements WHERE case_id = $1 AND entitlement_id LIKE 'assist-first-%'",
    )
    .bind(case_id)
    .fetch_one(store.pool())
    .await?)
}

async fn log_size(store: &EventStore) -> anyhow::Result<i64> {
    Ok(sqlx::query_scalar("SELECT COUNT(*) FROM events")
        .fetch_one(store.pool())
        .await?)
}

/// What payment's tables hold of `entitlement_id`: its guard rows and its orders.
async fn rows_of(store: &EventStore, entitlement_id: &str) -> anyhow::Result<(i64, i64)> {
    let guards: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM payment_run_orders WHERE entitlement_id = $1")
            .bind(entitlement_id)
            .fetch_one(store.pool())
            .await?;
    let orders: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM payment_orders WHERE entitlement_id = $1")
            .bind(entitlement_id)
            .fetch_one(store.pool())
            .await?;
    Ok((guards, orders))
}

fn status(error: anyhow::Error) -> Status {
    Status::internal(error.to_string())
}

fn date_of(date: time::Date) -> pb::Date {
    pb::Date {
        year: date.year(),
        month: i32::from(u8::from(date.month())),
        day: i32::from(date.day()),
    }
}

fn cash_request(command_id: &str, entitlement_id: &str) -> pb::RecordEmergencyCashPaymentRequest {
    pb::RecordEmergencyCashPaymentRequest {
        command_id: command_id.into(),
        entitlement_id: entitlement_id.into(),
        reason_code: "no_bank_account_yet".into(),
        note: "在街道办当面发放".into(),
        paid_on: Some(date_of(SystemClock.today())),
        handed_over_by: "officer-street-1".into(),
        receipt_sha256: "0123456789abcdef".repeat(4),
    }
}

struct Payment {
    client: PaymentServiceClient<Channel>,
}

impl Payment {
    async fn cash(
        &self,
        token: &str,
        request: pb::RecordEmergencyCashPaymentRequest,
    ) -> Result<pb::EmergencyCashPaymentResponse, Status> {
        let request = with_token(request, token).map_err(status)?;
        self.client
            .clone()
            .record_emergency_cash_payment(request)
            .await
            .map(tonic::Response::into_inner)
    }

    async fn create(
        &self,
        token: &str,
        command_id: &str,
        period: Month,
    ) -> Result<pb::RunResponse, Status> {
        let request = with_token(
            pb::CreateRunRequest {
                command_id: command_id.into(),
                period: period.to_string(),
            },
            token,
        )
        .map_err(status)?;
        self.client
            .clone()
            .create_run(request)
            .await
            .map(tonic::Response::into_inner)
    }

    async fn run_orders(&self, token: &str, run_id: &str) -> anyhow::Result<Vec<pb::PaymentOrder>> {
        let request = with_token(
            pb::ListRunOrdersRequest {
                run_id: run_id.into(),
                ..Default::default()
            },
            token,
        )?;
        Ok(self
            .client
            .clone()
            .list_run_orders(request)
            .await?
            .into_inner()
            .orders
            .into_iter()
            .filter_map(|order| order.order)
            .collect())
    }

    /// The trial balance's (debits, credits, difference) and each fund's balance.
    async fn ledger(&self, token: &str) -> anyhow::Result<((i64, i64, i64), Vec<(String, i64)>)> {
        let fen = |money: Option<pb::Money>| money.map_or(-1, |money| money.fen);
        let balance = self
            .client
            .clone()
            .get_trial_balance(with_token(pb::GetTrialBalanceRequest {}, token)?)
            .await?
            .into_inner();
        let funds = self
            .client
            .clone()
            .get_fund_balances(with_token(pb::GetFundBalancesRequest {}, token)?)
            .await?
            .into_inner()
            .funds
            .into_iter()
            .map(|fund| (fund.fund, fund.balance.map_or(0, |money| money.fen)))
            .collect();
        Ok((
            (
                fen(balance.debits),
                fen(balance.credits),
                fen(balance.difference),
            ),
            funds,
        ))
    }

    async fn household_payments(
        &self,
        token: &str,
        household_id: &str,
    ) -> anyhow::Result<Vec<pb::HouseholdPayment>> {
        let request = with_token(
            pb::ListHouseholdPaymentsRequest {
                household_id: household_id.into(),
                page: None,
            },
            token,
        )?;
        Ok(self
            .client
            .clone()
            .list_household_payments(request)
            .await?
            .into_inner()
            .payments)
    }
}

fn refused<T: std::fmt::Debug>(result: Result<T, Status>, code: Code) -> anyhow::Result<Status> {
    match result {
        Ok(answer) => anyhow::bail!("expected {code:?}, got OK {answer:?}"),
        Err(status) => {
            anyhow::ensure!(status.code() == code, "expected {code:?}, got {status:?}");
            Ok(status)
        }
    }
}

async fn emergency_cash(cluster: bool) -> anyhow::Result<()> {
    let auth = TestAuth::new()?;
    let backends = ScenarioBackends::start(cluster).await?;
    let config = test_config(&auth, backends.database_url(), backends.bus_url());
    let service_config = backends.service_config(&config, sunshine_payment::SERVICE_NAME);
    let service = RunningService::start(
        sunshine_payment::SERVICE_NAME,
        service_config.clone(),
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
    let approver = auth.token_for("approver-1", Role::FinanceApprover, DISTRICT);
    let auditor = auth.token_for("auditor-1", Role::Auditor, DISTRICT);
    let stranger = auth.token_for("officer-far", Role::FinanceOfficer, OTHER_DISTRICT);
    let this_month = Month::of(SystemClock.today());

    // A dibao case from this month, and two assist-first grants.
    let (dibao, fire, flood) = ("case-cash-dibao", "case-cash-fire", "case-cash-flood");
    let approved = |case_id: &str| {
        typed(
            case_id,
            &pb::CaseApproved {
                case_id: case_id.into(),
                program_code: "dibao".into(),
                monthly_amount: Some(pb::Money { fen: 60_000 }),
                start_month: this_month.to_string(),
                reasons: "符合条件".into(),
                ..Default::default()
            },
        )
    };
    new_case(&store, &config, dibao, "dibao", &approved).await?;
    new_case(&store, &config, fire, "temporary", &grant(150_000)).await?;
    new_case(&store, &config, flood, "temporary", &grant(120_000)).await?;
    settle(&store).await?;
    let fire_grant = grant_of(&store, fire).await?;
    let flood_grant = grant_of(&store, flood).await?;

    // The fire grant, paid in cash: its amount is the grant's, its fund the emergency fund.
    let paid = payment
        .cash(&officer, cash_request("cash-1", &fire_grant))
        .await?;
    let event = paid.payment.clone().unwrap_or_default();
    let order = event.order.clone().unwrap_or_default();
    anyhow::ensure!(
        paid.version == 1
            && event.run_id == format!("cash-{}", event.payment_id)
            && event.period == this_month.to_string()
            && event.reason_code == "no_bank_account_yet"
            && event.recorded_by == "officer-1"
            && event.handed_over_by == "officer-street-1"
            && order.entitlement_id == fire_grant
            && order.household_id == format!("household-of-{fire}")
            && order.fund == "emergency"
            && order.amount.map(|money| money.fen) == Some(150_000),
        "{paid:?}"
    );
    // A retry answers the same payment and writes nothing; the same id with other content is
    // refused and writes nothing.
    let before = log_size(&store).await?;
    anyhow::ensure!(
        payment
            .cash(&officer, cash_request("cash-1", &fire_grant))
            .await?
            == paid
    );
    let mut changed = cash_request("cash-1", &fire_grant);
    changed.reason_code = "immediate_need".into();
    anyhow::ensure!(payment.cash(&officer, changed).await.is_err());
    anyhow::ensure!(log_size(&store).await? == before);

    // Posted at once: the trial balance is zero and the emergency fund paid the grant.
    settle(&store).await?;
    anyhow::ensure!(
        payment.ledger(&auditor).await?
            == (
                (150_000, 150_000, 0),
                vec![("emergency".to_owned(), -150_000)]
            ),
        "{:?}",
        payment.ledger(&auditor).await?
    );
    // The household's payments show it, paid, in its cash run.
    let shown = payment
        .household_payments(&auditor, &format!("household-of-{fire}"))
        .await?;
    anyhow::ensure!(
        shown.len() == 1 && shown[0].state == "paid" && shown[0].run_id == event.run_id,
        "{shown:?}"
    );

    // A second cash payment of the grant: ALREADY_EXISTS, naming the first.
    let twice = refused(
        payment
            .cash(&officer, cash_request("cash-2", &fire_grant))
            .await,
        Code::AlreadyExists,
    )?;
    anyhow::ensure!(
        twice.message().contains(&event.run_id),
        "{}",
        twice.message()
    );

    // This month's run pays the dibao and the flood grant, never the fire grant again.
    let run = payment.create(&officer, "run-cash-1", this_month).await?;
    let orders = payment.run_orders(&officer, &run.run_id).await?;
    let mut paid_entitlements: Vec<&str> = orders
        .iter()
        .map(|order| order.entitlement_id.as_str())
        .collect();
    paid_entitlements.sort_unstable();
    let mut expected = vec![dibao, flood_grant.as_str()];
    expected.sort_unstable();
    anyhow::ensure!(paid_entitlements == expected, "{paid_entitlements:?}");
    anyhow::ensure!(rows_of(&store, &fire_grant).await? == (1, 1));
    // The district's runs are the runs: a cash payment is none.
    let runs = payment
        .client
        .clone()
        .list_runs(with_token(pb::ListRunsRequest::default(), &auditor)?)
        .await?
        .into_inner()
        .runs;
    anyhow::ensure!(runs.len() == 1 && runs[0].run_id == run.run_id, "{runs:?}");

    // The flood grant is in the run: ALREADY_EXISTS, naming the run.
    let in_run = refused(
        payment
            .cash(&officer, cash_request("cash-3", &flood_grant))
            .await,
        Code::AlreadyExists,
    )?;
    anyhow::ensure!(
        in_run.message().contains(&run.run_id),
        "{}",
        in_run.message()
    );
    // A monthly benefit is never paid in cash.
    let monthly = refused(
        payment.cash(&officer, cash_request("cash-4", dibao)).await,
        Code::FailedPrecondition,
    )?;
    anyhow::ensure!(
        monthly.message().contains("emergency temporary assistance"),
        "{}",
        monthly.message()
    );

    // A grant over what is left of the emergency fund's budget (250 000.00 yuan a year in
    // the EXAMPLE funds, 1 500.00 of it paid): refused naming the fund, nothing written.
    let huge = "case-cash-huge";
    new_case(&store, &config, huge, "temporary", &grant(24_900_000)).await?;
    settle(&store).await?;
    let huge_grant = grant_of(&store, huge).await?;
    let before = log_size(&store).await?;
    let over = refused(
        payment
            .cash(&officer, cash_request("cash-5", &huge_grant))
            .await,
        Code::FailedPrecondition,
    )?;
    anyhow::ensure!(over.message().contains("emergency"), "{}", over.message());
    anyhow::ensure!(log_size(&store).await? == before);
    anyhow::ensure!(rows_of(&store, &huge_grant).await? == (0, 0));

    // Bad fields: each named, nothing written.
    let bad_requests = [
        ("reason_code", {
            let mut request = cash_request("cash-6", &huge_grant);
            request.reason_code = "because".into();
            request
        }),
        ("note", {
            let mut request = cash_request("cash-7", &huge_grant);
            request.note = "第一行\n第二行".into();
            request
        }),
        ("note", {
            let mut request = cash_request("cash-8", &huge_grant);
            request.note = "字".repeat(201);
            request
        }),
        ("receipt_sha256", {
            let mut request = cash_request("cash-9", &huge_grant);
            request.receipt_sha256 = "not a digest".into();
            request
        }),
    ];
    for (field, request) in bad_requests {
        let bad = refused(payment.cash(&officer, request).await, Code::InvalidArgument)?;
        anyhow::ensure!(violated_fields(&bad) == [field], "{bad:?}");
    }
    anyhow::ensure!(log_size(&store).await? == before);

    // Unknown and out of scope read alike; other roles are refused.
    for (token, entitlement) in [
        (&officer, "assist-first-nobody-heard"),
        (&stranger, flood_grant.as_str()),
    ] {
        refused(
            payment
                .cash(token, cash_request("cash-10", entitlement))
                .await,
            Code::NotFound,
        )?;
    }
    for token in [&approver, &auditor] {
        refused(
            payment
                .cash(token, cash_request("cash-11", &flood_grant))
                .await,
            Code::PermissionDenied,
        )?;
    }
    anyhow::ensure!(log_size(&store).await? == before);

    // `sunshine rebuild payment` (the service stopped) replays the log into the same orders
    // and the same ledger lines: the cash payment posted once.
    let before = cash_tables(&store).await?;
    anyhow::ensure!(before.1.len() == 2, "{before:?}");
    service.stop().await?;
    sunshine_payment::rebuild(&service_config).await?;
    let after = cash_tables(&store).await?;
    anyhow::ensure!(after == before, "rebuilt {after:?}, was {before:?}");
    Ok(())
}

type OrderRows = Vec<(String, String, String, i64, i64)>;
type LedgerRows = Vec<(String, i64, String, i64, i64)>;

/// Every order (id, run, state, amount, approved) and every ledger line (key, line, account,
/// debit, credit), in key order.
async fn cash_tables(store: &EventStore) -> anyhow::Result<(OrderRows, LedgerRows)> {
    let orders = sqlx::query_as(
        "SELECT order_id, run_id, state, amount_fen, approved FROM payment_orders ORDER BY order_id",
    )
    .fetch_all(store.pool())
    .await?;
    let lines = sqlx::query_as(
        "SELECT order_id, line, account, debit_fen, credit_fen FROM payment_ledger_lines ORDER BY order_id, line",
    )
    .fetch_all(store.pool())
    .await?;
    Ok((orders, lines))
}
