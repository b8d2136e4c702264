//! Serious-illness medical assistance claims and the payment calendar, through gRPC, on
//! PostgreSQL + NATS JetStream and on SQLite + the in-process bus. Review's decisions are
//! appended at the boundary as review appends them: a dibao household with an approved
//! serious-illness case (its approval pays nothing monthly). A center reviewer submits a claim
//! after the hospital's settlement: it is assessed with the policy's figures (the dibao share;
//! the annual cap), a retry answers the same claim and the same id with other content is
//! refused; a second claim of the same patient and year is capped by what the first paid; a
//! claim settled last year counts nothing of this year's; an unknown case, one outside the
//! caller's scope, and another program's case are refused, as are bad fields and the wrong
//! roles. Next month's run carries the claims as one-off orders of the medical fund with the
//! household's dibao, on the pay date the calendar gives (a working day, moved back from the
//! due day); a second officer approves it, the bank pays it, and the medical fund's balance is
//! minus what the claims paid. Claims of one patient racing each other never pay more than the
//! cap together.

use std::time::Duration;

use sunshine_domain::{Month, WorkingDayCalendar};
use sunshine_eventlog::{Actor, EventMetadata, EventStore, ExpectedVersion, NewEvent, StreamId};
use sunshine_payment::bank_files::Format;
use sunshine_platform::Role;
use sunshine_platform::clock::{Clock as _, SystemClock};
use sunshine_proto::events::TypedEvent;
use sunshine_proto::v1 as pb;
use sunshine_proto::v1::payment_service_client::PaymentServiceClient;
use sunshine_tests::bank::{batch_lines, result_file};
use sunshine_tests::{
    DISTRICT, RunningService, ScenarioBackends, TestAuth, VILLAGE, test_config, violated_fields,
    with_token,
};
use tonic::transport::Channel;
use tonic::{Code, Status};
use tonic_health::pb::health_check_response::ServingStatus;

const PATIENCE: Duration = Duration::from_secs(30);
const OTHER_DISTRICT: &str = "990102000000";
const HOUSEHOLD: &str = "household-med-1";

mod medical_claims {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn on_postgres_and_nats() -> anyhow::Result<()> {
        super::medical_claims(true).await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn on_sqlite_and_the_in_process_bus() -> anyhow::Result<()> {
        super::medical_claims(false).await
    }
}

async fn append_as_review(
    store: &EventStore,
    case_id: &str,
    events: Vec<NewEvent>,
) -> anyhow::Result<()> {
    let stream = StreamId::new("review", "case", case_id)?;
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
        .append(&stream, ExpectedVersion::NoStream, &metadata, events)
        .await?;
    Ok(())
}

fn typed(case_id: &str, event: &impl TypedEvent) -> NewEvent {
    NewEvent::typed(case_id, event)
}

/// A case of `HOUSEHOLD` opened and approved: `fen` a month from `start`.
async fn approved_case(
    store: &EventStore,
    case_id: &str,
    program: &str,
    fen: i64,
    start: Month,
) -> anyhow::Result<()> {
    let opened = pb::CaseOpened {
        case_id: case_id.into(),
        application_id: format!("application-of-{case_id}"),
        household_id: HOUSEHOLD.into(),
        program_code: program.into(),
        workflow: "center_review".into(),
        accepted_org_unit_code: VILLAGE.into(),
        hukou_org_unit_code: VILLAGE.into(),
        ..Default::default()
    };
    let approved = pb::CaseApproved {
        case_id: case_id.into(),
        program_code: program.into(),
        monthly_amount: Some(pb::Money { fen }),
        start_month: start.to_string(),
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

fn status(error: anyhow::Error) -> Status {
    Status::internal(error.to_string())
}

struct Payment {
    client: PaymentServiceClient<Channel>,
}

fn date_of(date: time::Date) -> pb::Date {
    pb::Date {
        year: date.year(),
        month: i32::from(u8::from(date.month())),
        day: i32::from(date.day()),
    }
}

impl Payment {
    async fn submit(
        &self,
        token: &str,
        command_id: &str,
        case_id: &str,
        fen: i64,
        settled: time::Date,
    ) -> Result<pb::MedicalClaimResponse, Status> {
        let request = pb::SubmitMedicalClaimRequest {
            command_id: command_id.into(),
            case_id: case_id.into(),
            patient_member_id: "member-2".into(),
            out_of_pocket: Some(pb::Money { fen }),
            settlement_date: Some(date_of(settled)),
            settlement_reference: format!("JS-{command_id}"),
        };
        self.submit_request(token, request).await
    }

    async fn submit_request(
        &self,
        token: &str,
        request: pb::SubmitMedicalClaimRequest,
    ) -> Result<pb::MedicalClaimResponse, Status> {
        let request = with_token(request, token).map_err(status)?;
        self.client
            .clone()
            .submit_medical_claim(request)
            .await
            .map(tonic::Response::into_inner)
    }

    async fn get(&self, token: &str, claim_id: &str) -> Result<pb::MedicalClaimResponse, Status> {
        let request = pb::GetMedicalClaimRequest {
            claim_id: claim_id.into(),
        };
        let request = with_token(request, token).map_err(status)?;
        self.client
            .clone()
            .get_medical_claim(request)
            .await
            .map(tonic::Response::into_inner)
    }

    async fn list(
        &self,
        token: &str,
        case_id: &str,
        page_size: i32,
        page_token: &str,
    ) -> Result<pb::ListMedicalClaimsResponse, Status> {
        let request = pb::ListMedicalClaimsRequest {
            case_id: case_id.into(),
            page: Some(pb::PageRequest {
                page_size,
                page_token: page_token.into(),
            }),
        };
        let request = with_token(request, token).map_err(status)?;
        self.client
            .clone()
            .list_medical_claims(request)
            .await
            .map(tonic::Response::into_inner)
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

fn fen(money: Option<&pb::Money>) -> i64 {
    money.map_or(-1, |money| money.fen)
}

async fn log_size(store: &EventStore) -> anyhow::Result<i64> {
    Ok(sqlx::query_scalar("SELECT COUNT(*) FROM events")
        .fetch_one(store.pool())
        .await?)
}

async fn medical_claims(cluster: bool) -> anyhow::Result<()> {
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
    let center = auth.token_for("center-1", Role::CenterReviewer, DISTRICT);
    let stranger = auth.token_for("center-far", Role::CenterReviewer, OTHER_DISTRICT);
    let officer = auth.token_for("officer-1", Role::FinanceOfficer, DISTRICT);
    let approver = auth.token_for("approver-1", Role::FinanceApprover, DISTRICT);
    let auditor = auth.token_for("auditor-1", Role::Auditor, DISTRICT);

    let today = SystemClock.today();
    let this_month = Month::of(today);
    let next_month = this_month.next().expect("a month after this one");
    let last_year_end =
        time::Date::from_calendar_date(today.year() - 1, time::Month::December, 31)?;

    // The household receives dibao; its serious-illness case is approved (nothing monthly).
    let (dibao, medical) = ("case-med-dibao", "case-med-1");
    // The household, registered with its payment account as intake would have.
    sunshine_tests::accounts::register_if_new(&store, &config, HOUSEHOLD).await?;
    approved_case(&store, dibao, "dibao", 60_000, this_month).await?;
    approved_case(&store, medical, "medical_serious_illness", 0, this_month).await?;
    settle(&store).await?;
    let parameters = sunshine_policy::Policy::example_district()?
        .resolve(today)?
        .medical_serious_illness;
    let share = |cost: i64| -> anyhow::Result<i64> {
        let above = sunshine_domain::Money::from_fen(cost)
            .checked_sub(parameters.deductible_dibao)
            .ok_or_else(|| anyhow::anyhow!("out of range"))?;
        Ok(above
            .checked_mul_ratio(parameters.share_dibao, 10_000)?
            .fen())
    };
    let cap = parameters.annual_cap_per_person.fen();

    // A first claim: the dibao share of the cost, within the cap.
    let first_cost = cap; // its share is below the cap (the share is under 100 %)
    let first = payment
        .submit(&center, "claim-1", medical, first_cost, today)
        .await?;
    let claim = first.claim.clone().unwrap_or_default();
    let first_amount = share(first_cost)?.min(cap);
    anyhow::ensure!(
        first.version == 1
            && claim.case_id == medical
            && claim.household_id == HOUSEHOLD
            && claim.category == "dibao"
            && claim.share_basis_points == parameters.share_dibao
            && fen(claim.annual_cap.as_ref()) == cap
            && fen(claim.paid_earlier_this_year.as_ref()) == 0
            && fen(claim.amount.as_ref()) == first_amount
            && first_amount > 0
            && claim.payable_month == next_month.to_string()
            && !claim.policy_version.is_empty()
            && claim.submitted_by == "center-1",
        "{claim:?}"
    );
    // A retry answers the same claim and writes nothing; the same id with other content is
    // refused and writes nothing.
    let before = log_size(&store).await?;
    let retried = payment
        .submit(&center, "claim-1", medical, first_cost, today)
        .await?;
    anyhow::ensure!(retried == first, "{retried:?}");
    let changed = payment
        .submit(&center, "claim-1", medical, first_cost + 1, today)
        .await;
    anyhow::ensure!(changed.is_err(), "{changed:?}");
    anyhow::ensure!(log_size(&store).await? == before);

    // A second claim of the same patient and year is capped by what the first paid.
    let second = payment
        .submit(&center, "claim-2", medical, cap, today)
        .await?
        .claim
        .unwrap_or_default();
    let second_amount = share(cap)?.min(cap - first_amount);
    anyhow::ensure!(
        fen(second.paid_earlier_this_year.as_ref()) == first_amount
            && fen(second.amount.as_ref()) == second_amount
            && second_amount < share(cap)?
            && second.earlier_claims == 1,
        "{second:?}"
    );
    // Settled last year: this year's claims count nothing of it.
    let last_year = payment
        .submit(&center, "claim-last-year", medical, 100_000, last_year_end)
        .await?
        .claim
        .unwrap_or_default();
    anyhow::ensure!(
        fen(last_year.paid_earlier_this_year.as_ref()) == 0 && fen(last_year.amount.as_ref()) > 0,
        "{last_year:?}"
    );

    // Unknown, out of scope (another district's center reviewer: a center reviewer's org unit
    // is a district), and another program's case; the wrong role; bad fields. None writes anything.
    let before = log_size(&store).await?;
    for (token, case_id) in [(&center, "case-nobody-heard"), (&stranger, medical)] {
        refused(
            payment
                .submit(token, "claim-x", case_id, 100_000, today)
                .await,
            Code::NotFound,
        )?;
    }
    refused(
        payment
            .submit(&center, "claim-dibao", dibao, 100_000, today)
            .await,
        Code::FailedPrecondition,
    )?;
    let street = auth.token_for(
        "street-1",
        Role::StreetReviewer,
        sunshine_tests::STREET_TOWN,
    );
    for token in [&officer, &street, &auditor] {
        refused(
            payment
                .submit(token, "claim-role", medical, 100_000, today)
                .await,
            Code::PermissionDenied,
        )?;
    }
    let bad = refused(
        payment
            .submit_request(
                &center,
                pb::SubmitMedicalClaimRequest {
                    command_id: "claim-bad".into(),
                    case_id: medical.into(),
                    patient_member_id: "张三".into(),
                    out_of_pocket: Some(pb::Money { fen: 0 }),
                    settlement_date: Some(date_of(today.next_day().unwrap_or(today))),
                    settlement_reference: "a\u{7}b".into(),
                },
            )
            .await,
        Code::InvalidArgument,
    )?;
    let mut fields = violated_fields(&bad);
    fields.sort();
    anyhow::ensure!(
        fields
            == [
                "out_of_pocket",
                "patient_member_id",
                "settlement_date",
                "settlement_reference"
            ],
        "{fields:?}"
    );
    let oversized = refused(
        payment
            .submit_request(
                &center,
                pb::SubmitMedicalClaimRequest {
                    command_id: "c".repeat(101),
                    case_id: "x".repeat(65),
                    patient_member_id: "m".repeat(65),
                    out_of_pocket: Some(pb::Money {
                        fen: sunshine_payment::validation::MAX_OUT_OF_POCKET_FEN + 1,
                    }),
                    settlement_date: None,
                    settlement_reference: "r".repeat(65),
                },
            )
            .await,
        Code::InvalidArgument,
    )?;
    let mut fields = violated_fields(&oversized);
    fields.sort();
    anyhow::ensure!(
        fields
            == [
                "case_id",
                "command_id",
                "out_of_pocket",
                "patient_member_id",
                "settlement_date",
                "settlement_reference"
            ],
        "{fields:?}"
    );
    anyhow::ensure!(log_size(&store).await? == before);

    // Reads: in scope, and outside it exactly like a claim that does not exist.
    let got = payment.get(&auditor, &claim.claim_id).await?;
    anyhow::ensure!(got == first, "{got:?}");
    refused(
        payment.get(&stranger, &claim.claim_id).await,
        Code::NotFound,
    )?;
    refused(
        payment
            .get(&center, &uuid::Uuid::now_v7().to_string())
            .await,
        Code::NotFound,
    )?;
    let page = payment.list(&officer, medical, 2, "").await?;
    let token = page.page.clone().unwrap_or_default().next_page_token;
    let rest = payment.list(&officer, medical, 2, &token).await?;
    anyhow::ensure!(
        page.claims.len() == 2 && rest.claims.len() == 1 && !token.is_empty(),
        "{page:?} {rest:?}"
    );
    refused(
        payment.list(&stranger, medical, 0, "").await,
        Code::NotFound,
    )?;
    refused(
        payment.list(&center, medical, 1_000_000, "").await,
        Code::InvalidArgument,
    )?;

    // Next month's run carries the claims, once each, from the medical fund, with the
    // household's dibao; on the calendar's pay date.
    settle(&store).await?;
    let request = pb::CreateRunRequest {
        command_id: "run-next".into(),
        period: next_month.to_string(),
    };
    let run = payment
        .client
        .clone()
        .create_run(with_token(request, &officer)?)
        .await?
        .into_inner();
    let claims_total = first_amount + second_amount + fen(last_year.amount.as_ref());
    let control = run.control.clone().unwrap_or_default();
    anyhow::ensure!(
        control.count == 4 && fen(control.total.as_ref()) == 60_000 + claims_total,
        "{run:?}"
    );
    let orders = payment
        .client
        .clone()
        .list_run_orders(with_token(
            pb::ListRunOrdersRequest {
                run_id: run.run_id.clone(),
                page: None,
            },
            &auditor,
        )?)
        .await?
        .into_inner();
    let medical_orders: Vec<&pb::PaymentOrder> = orders
        .orders
        .iter()
        .filter_map(|listed| listed.order.as_ref())
        .filter(|order| order.program_code == "medical_serious_illness")
        .collect();
    anyhow::ensure!(
        medical_orders.len() == 3
            && medical_orders.iter().all(
                |order| order.fund == "medical" && order.entitlement_id.starts_with("medical-")
            ),
        "{orders:?}"
    );

    // The pay date: a working day of next month, on or before the EXAMPLE's due day (the 10th,
    // moved back over non-working days), and every day after it to the 10th is no working day.
    let pay_on = run.pay_on.unwrap_or_default();
    let pay_on = time::Date::from_calendar_date(
        pay_on.year,
        time::Month::try_from(u8::try_from(pay_on.month)?)?,
        u8::try_from(pay_on.day)?,
    )?;
    let working_days = WorkingDayCalendar::embedded()?;
    let tenth = time::Date::from_calendar_date(
        next_month.year(),
        time::Month::try_from(next_month.month())?,
        10,
    )?;
    anyhow::ensure!(pay_on <= tenth, "{pay_on}");
    if run.pay_on_provisional {
        // A year without its holiday notice yet: weekends only.
        anyhow::ensure!(
            !matches!(
                pay_on.weekday(),
                time::Weekday::Saturday | time::Weekday::Sunday
            ),
            "{pay_on}"
        );
    } else {
        anyhow::ensure!(working_days.is_working_day(pay_on)?, "{pay_on}");
        let mut day = pay_on;
        while let Some(next) = day.next_day().filter(|next| *next <= tenth) {
            anyhow::ensure!(
                !working_days.is_working_day(next)?,
                "{next} is a working day"
            );
            day = next;
        }
    }
    let read = payment
        .client
        .clone()
        .get_run(with_token(
            pb::GetRunRequest {
                run_id: run.run_id.clone(),
            },
            &auditor,
        )?)
        .await?
        .into_inner();
    anyhow::ensure!(read.pay_on == run.pay_on, "{read:?}");

    // Approved by a second officer, paid by the bank: the medical fund paid the claims.
    let approved = payment
        .client
        .clone()
        .approve_run(with_token(
            pb::ApproveRunRequest {
                command_id: "approve-next".into(),
                run_id: run.run_id.clone(),
                expected_version: run.version,
                control_count: control.count,
                control_total: control.total,
            },
            &approver,
        )?)
        .await?
        .into_inner();
    let exported = sunshine_tests::bank::collect(
        payment
            .client
            .clone()
            .export_bank_file(with_token(
                pb::ExportBankFileRequest {
                    run_id: approved.run_id.clone(),
                    format: pb::BankFileFormat::CsvUtf8.into(),
                },
                &officer,
            )?)
            .await?,
    )
    .await?;
    let answer = result_file(Format::CsvUtf8, &batch_lines(&exported.file)?)?;
    let settled = payment
        .client
        .clone()
        .import_bank_result(with_token(
            pb::ImportBankResultRequest {
                command_id: "result-next".into(),
                run_id: approved.run_id.clone(),
                file: answer,
            },
            &officer,
        )?)
        .await?
        .into_inner();
    anyhow::ensure!(
        settled.states.unwrap_or_default().paid_count == 4,
        "{settled:?}"
    );
    settle(&store).await?;
    let balances = payment
        .client
        .clone()
        .get_fund_balances(with_token(pb::GetFundBalancesRequest {}, &auditor)?)
        .await?
        .into_inner();
    let medical_fund = balances
        .funds
        .iter()
        .find(|fund| fund.fund == "medical")
        .map(|fund| fen(fund.balance.as_ref()));
    anyhow::ensure!(medical_fund == Some(-claims_total), "{balances:?}");

    // The same period again adds no order: each claim is paid once.
    let again = payment
        .client
        .clone()
        .create_run(with_token(
            pb::CreateRunRequest {
                command_id: "run-next-again".into(),
                period: next_month.to_string(),
            },
            &officer,
        )?)
        .await;
    refused(again, Code::AlreadyExists)?;

    // Claims of one patient's year racing each other never pay more than the cap together:
    // each is assessed, or ABORTED when another counted the same earlier claims first.
    let racers = (0..6).map(|index| {
        payment.submit_request(
            &center,
            pb::SubmitMedicalClaimRequest {
                command_id: format!("claim-race-{index}"),
                case_id: medical.into(),
                patient_member_id: "member-3".into(),
                out_of_pocket: Some(pb::Money { fen: cap }),
                settlement_date: Some(date_of(today)),
                settlement_reference: format!("JS-race-{index}"),
            },
        )
    });
    let mut raced = 0_i64;
    let mut assessed = 0;
    for answer in futures::future::join_all(racers).await {
        match answer {
            Ok(claim) => {
                assessed += 1;
                raced += fen(claim.claim.unwrap_or_default().amount.as_ref());
            }
            Err(status) => anyhow::ensure!(status.code() == Code::Aborted, "{status:?}"),
        }
    }
    anyhow::ensure!(
        assessed >= 1 && raced <= cap,
        "{assessed} claims paid {raced} fen"
    );

    service.stop().await?;
    Ok(())
}
