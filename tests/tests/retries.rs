//! Every retry gets its first answer (issue 11): for every command RPC of intake, review and
//! payment — every RPC whose request carries a `command_id`, read from the services'
//! descriptors — on PostgreSQL + NATS JetStream and on SQLite + the in-process bus:
//!
//! 1. the command is performed once (OK);
//! 2. the world moves on (another command on the same household or case, a move out of the
//!    caller's scope, a recusal, a new policy parameter in force), so the state the first
//!    answer was computed from is gone;
//! 3. a retry with the same command id and the same request answers exactly the first answer
//!    (the whole message) and writes nothing;
//! 4. the same command id with other content is `INVALID_ARGUMENT` naming `command_id`, and
//!    writes nothing.
//!
//! The table ([`ROWS`]) has one row per command RPC; `every_command_rpc_has_a_row` fails when
//! a service gains a command the table does not retry.

use std::collections::BTreeSet;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use prost::Message as _;
use sunshine_eventlog::{Actor, EventMetadata, EventStore, ExpectedVersion, NewEvent, StreamId};
use sunshine_platform::Role;
use sunshine_platform::clock::{Clock as _, ManualClock};
use sunshine_proto::events::{Event, TypedEvent};
use sunshine_proto::v1 as pb;
use sunshine_proto::v1::department_integration_service_client::DepartmentIntegrationServiceClient;
use sunshine_proto::v1::intake_service_client::IntakeServiceClient;
use sunshine_proto::v1::payment_service_client::PaymentServiceClient;
use sunshine_proto::v1::review_service_client::ReviewServiceClient;
use sunshine_tests::households::{Person, date, dibao_application, documents, family};
use sunshine_tests::{
    DISTRICT, RunningService, STREET_TOWN, ScenarioBackends, TestAuth, VILLAGE, test_config,
    violated_fields, with_token,
};
use time::macros::date;
use tonic::transport::Channel;
use tonic::{Code, Status};
use tonic_health::pb::health_check_response::ServingStatus;

const PATIENCE: Duration = Duration::from_secs(30);
/// A village of another street-town: a household moved there leaves the street reviewer's
/// scope as well as the clerk's.
const FAR_VILLAGE: &str = "990101002001";
/// The consumers that react to the log (each records every event it processed).
const CONSUMERS: [&str; 5] = [
    "intake-read-model",
    "review-case-opener",
    "payment-recovery-watch",
    "payment-entitlements",
    // department-integration's linkage watch (slice 3): review's approvals send notices
    "department-integration-linkage",
];
/// Where every row starts: Monday 2026-09-07 (publicity then runs to Sunday 09-13).
const START: time::Date = date!(2026 - 09 - 07);
/// The day the scenario's policy lowers the assist-first cap (先行救助) from 2000.00 to 1500.00
/// yuan: an answer computed from today's policy on a retry would differ from the first.
const CAP_LOWERED_ON: time::Date = date!(2026 - 09 - 10);
const FIRST_CAP_FEN: i64 = 200_000;
/// After the publicity that starts on [`START`]: decisions may be taken.
const AFTER_PUBLICITY: time::Date = date!(2026 - 09 - 15);

type RowFuture<'a> = Pin<Box<dyn Future<Output = anyhow::Result<()>> + Send + 'a>>;
/// A row's scenario, given the world and a seed that keeps its people apart from other rows'.
type Row = for<'a> fn(&'a World, u32) -> RowFuture<'a>;

macro_rules! rows {
    ($($rpc:literal => $scenario:ident,)*) => {
        /// Every command RPC (`Service/Method`) and the scenario that retries it.
        const ROWS: &[(&str, Row)] = &[
            $(($rpc, |world, seed| Box::pin($scenario(world, seed))),)*
        ];
    };
}

rows! {
    "IntakeService/RegisterHousehold" => register_household,
    "IntakeService/RecordCircumstanceChange" => record_circumstance_change,
    "IntakeService/RecordDeath" => record_death,
    "IntakeService/CorrectDeathRecord" => correct_death_record,
    "IntakeService/RecordMove" => record_move,
    "IntakeService/SubmitApplication" => submit_application,
    "IntakeService/RegisterOfficialRelative" => register_official_relative,
    // household composition
    "IntakeService/AddHouseholdMember" => add_household_member,
    "IntakeService/RemoveHouseholdMember" => remove_household_member,
    "ReviewService/AssignInvestigators" => assign_investigators,
    "ReviewService/RecordHomeVisit" => record_home_visit,
    "ReviewService/RequestVerification" => request_verification,
    "ReviewService/RecordOpinion" => record_opinion,
    "ReviewService/StartPublicity" => start_publicity,
    "ReviewService/AnswerObjection" => answer_objection,
    "ReviewService/GrantAssistFirst" => grant_assist_first,
    "ReviewService/Decide" => decide,
    "ReviewService/ReturnForMaterial" => return_for_material,
    "ReviewService/Withdraw" => withdraw,
    "ReviewService/ExtendDeadline" => extend_deadline,
    "ReviewService/NotifyRefusal" => notify_refusal,
    // the district's home-visit sample of 特困 cases (issue 20 item 11)
    "ReviewService/DrawHomeVisitSample" => draw_home_visit_sample,
    "PaymentService/CreateRun" => create_run,
    "PaymentService/ApproveRun" => approve_run,
    "PaymentService/ImportBankResult" => import_bank_result,
    "PaymentService/CreateRepayRun" => create_repay_run,
    "PaymentService/ImportBankReturns" => import_bank_returns,
    "PaymentService/CloseReconciliation" => close_reconciliation,
    "PaymentService/SubmitMedicalClaim" => submit_medical_claim,
    "PaymentService/RecordRecoveryRepayment" => record_recovery_repayment,
    "PaymentService/WriteOffRecovery" => write_off_recovery,
    // department-integration
    "DepartmentIntegrationService/PushAssistanceRecords" => push_assistance_records,
    "DepartmentIntegrationService/ImportAssistanceCsv" => import_assistance_csv,
    // department-integration: the economic-status check (issue 13, slice 2)
    "DepartmentIntegrationService/RecordConsent" => record_consent,
    "DepartmentIntegrationService/OpenCheck" => open_check,
    "DepartmentIntegrationService/AnswerCheck" => answer_check,
    "DepartmentIntegrationService/RequestRecheck" => request_recheck,
    // department-integration: the monitoring platform (issue 13)
    "DepartmentIntegrationService/ImportMonitoringWarnings" => import_monitoring_warnings,
    "DepartmentIntegrationService/CloseMonitoringWarning" => close_monitoring_warning,
    // department-integration: linkage notices (issue 13, slice 3)
    "DepartmentIntegrationService/AcknowledgeLinkageNotice" => acknowledge_linkage_notice,
    // payment: emergency cash (急难)
    "PaymentService/RecordEmergencyCashPayment" => record_emergency_cash_payment,
}

/// The command RPCs of the `sunshine.v1` services, from the encoded descriptors
/// `sunshine-proto` compiles: every method whose input message has a field `command_id`.
fn described_command_rpcs() -> anyhow::Result<BTreeSet<String>> {
    let set = prost_types::FileDescriptorSet::decode(sunshine_proto::FILE_DESCRIPTOR_SET)?;
    let mut with_command_id = BTreeSet::new();
    for file in &set.file {
        for message in &file.message_type {
            if message
                .field
                .iter()
                .any(|field| field.name() == "command_id")
            {
                with_command_id.insert(format!(".{}.{}", file.package(), message.name()));
            }
        }
    }
    let mut rpcs = BTreeSet::new();
    for file in &set.file {
        for service in &file.service {
            for method in &service.method {
                if with_command_id.contains(method.input_type()) {
                    rpcs.insert(format!("{}/{}", service.name(), method.name()));
                }
            }
        }
    }
    Ok(rpcs)
}

#[test]
fn every_command_rpc_has_a_row() -> anyhow::Result<()> {
    let described = described_command_rpcs()?;
    anyhow::ensure!(
        described.contains("IntakeService/SubmitApplication")
            && described.contains("ReviewService/Decide"),
        "the descriptors name no commands: {described:?}"
    );
    let rows: BTreeSet<String> = ROWS.iter().map(|(rpc, _)| (*rpc).to_owned()).collect();
    anyhow::ensure!(rows.len() == ROWS.len(), "a row is in the table twice");
    let missing: Vec<&String> = described.difference(&rows).collect();
    let unknown: Vec<&String> = rows.difference(&described).collect();
    anyhow::ensure!(
        missing.is_empty() && unknown.is_empty(),
        "command RPCs without a retry row: {missing:?}; rows naming no command RPC: {unknown:?}"
    );
    Ok(())
}

mod every_retry_gets_its_first_answer {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn on_postgres_and_nats() -> anyhow::Result<()> {
        super::every_retry_gets_its_first_answer(true).await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn on_sqlite_and_the_in_process_bus() -> anyhow::Result<()> {
        super::every_retry_gets_its_first_answer(false).await
    }
}

/// Every row on one world, one after the other; every failing row is reported at once.
async fn every_retry_gets_its_first_answer(cluster: bool) -> anyhow::Result<()> {
    let world = World::start(cluster).await?;
    let mut failures = Vec::new();
    for (index, (rpc, row)) in ROWS.iter().enumerate() {
        world.clock.set(START);
        let seed = u32::try_from(index)? + 1;
        if let Err(error) = row(&world, seed).await {
            failures.push(format!("{rpc}: {error:#}"));
        }
    }
    world.stop().await?;
    anyhow::ensure!(
        failures.is_empty(),
        "{} of {} command RPCs do not answer retries with their first answer:\n{}",
        failures.len(),
        ROWS.len(),
        failures.join("\n")
    );
    Ok(())
}

/// A client call as a function of the request: `call!(client, method, token)`.
macro_rules! call {
    ($client:expr, $method:ident, $token:expr) => {{
        let client = $client.clone();
        let token: String = $token.clone();
        move |request| {
            let mut client = client.clone();
            let token = token.clone();
            async move {
                let request = with_token(request, &token)
                    .map_err(|error| Status::internal(error.to_string()))?;
                client
                    .$method(request)
                    .await
                    .map(tonic::Response::into_inner)
            }
        }
    }};
}

/// `ExportBankFile` as `token`, its stream put back together.
async fn export_file(
    client: &PaymentServiceClient<Channel>,
    token: &str,
    request: pb::ExportBankFileRequest,
) -> Result<sunshine_tests::bank::ExportedFile, Status> {
    let request =
        with_token(request, token).map_err(|error| Status::internal(error.to_string()))?;
    let stream = client.clone().export_bank_file(request).await?;
    sunshine_tests::bank::collect(stream).await
}

/// Intake and review on fresh backends with one hand-set clock, the officers of every row,
/// and a direct view of the log.
struct World {
    clock: Arc<ManualClock>,
    intake: IntakeServiceClient<Channel>,
    review: ReviewServiceClient<Channel>,
    payment: PaymentServiceClient<Channel>,
    /// department-integration, and civil affairs' system calling it.
    integration: DepartmentIntegrationServiceClient<Channel>,
    department: String,
    /// The economic-status check's data holders' systems, by department code.
    holders: std::collections::BTreeMap<String, String>,
    store: EventStore,
    database: sunshine_platform::backends::Database,
    services: Vec<RunningService>,
    /// `clerk-1`, a village clerk of [`VILLAGE`]: registers, applies, visits.
    clerk: String,
    /// `clerk-2`, the second investigator.
    second_clerk: String,
    /// A clerk of [`FAR_VILLAGE`].
    far_clerk: String,
    /// `street-1`, the street-town's reviewer.
    street: String,
    /// `center-1`, a center reviewer: corrects deaths, keeps the registry of officials'
    /// relatives.
    center: String,
    /// `approver-1`, the district's approver.
    approver: String,
    /// `finance-1`, the district's finance officer: prepares payment runs.
    finance: String,
    /// `finance-approver-1`, the district's finance approver.
    finance_approver: String,
    policy_directory: PathBuf,
    /// The services' configuration (its log keys seal the accounts of boundary households).
    config: sunshine_platform::Config,
    _backends: ScenarioBackends,
}

/// A household registered for a row.
struct Household {
    household_id: String,
    member_ids: Vec<String>,
    people: Vec<Person>,
}

/// A case opened for a row's household.
struct Case {
    household: Household,
    case_id: String,
}

impl World {
    async fn start(cluster: bool) -> anyhow::Result<World> {
        let auth = TestAuth::new()?;
        let backends = ScenarioBackends::start(cluster).await?;
        let clock = Arc::new(ManualClock::new(START));
        let log_signals = sunshine_eventlog::LogSignals::new();
        let policy_directory = policy_with_a_lower_cap_from(CAP_LOWERED_ON)?;
        let mut config = test_config(&auth, backends.database_url(), backends.bus_url());
        config.policy.directory = policy_directory.display().to_string();
        let intake_clock = Arc::clone(&clock);
        let intake_signals = log_signals.clone();
        let intake = RunningService::start(
            sunshine_intake::SERVICE_NAME,
            backends.service_config(&config, sunshine_intake::SERVICE_NAME),
            move |config, listener, shutdown| {
                sunshine_intake::run_sharing_log(
                    config,
                    listener,
                    shutdown,
                    intake_clock,
                    intake_signals,
                )
            },
        )
        .await?;
        let review_clock = Arc::clone(&clock);
        let review_signals = log_signals.clone();
        let review = RunningService::start(
            sunshine_review::SERVICE_NAME,
            backends.service_config(&config, sunshine_review::SERVICE_NAME),
            move |config, listener, shutdown| {
                sunshine_review::run_sharing_log(
                    config,
                    listener,
                    shutdown,
                    review_clock,
                    review_signals,
                )
            },
        )
        .await?;
        // Payment keeps the system clock: its runs pay this month.
        let payment_signals = log_signals.clone();
        let payment = RunningService::start(
            sunshine_payment::SERVICE_NAME,
            backends.service_config(&config, sunshine_payment::SERVICE_NAME),
            move |config, listener, shutdown| {
                sunshine_payment::run_sharing_log(
                    config,
                    listener,
                    shutdown,
                    Arc::new(sunshine_platform::clock::SystemClock),
                    payment_signals,
                )
            },
        )
        .await?;
        // department-integration, on the world's clock (the check's deadlines count from it)
        let integration_clock = Arc::clone(&clock);
        let integration = RunningService::start(
            sunshine_department_integration::SERVICE_NAME,
            backends.service_config(&config, sunshine_department_integration::SERVICE_NAME),
            move |config, listener, shutdown| {
                sunshine_department_integration::run_with_clock(
                    config,
                    listener,
                    shutdown,
                    integration_clock,
                )
            },
        )
        .await?;
        let services = vec![intake, review, payment, integration];
        for service in &services {
            service
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
        let store = EventStore::from_database(&database).with_signals(log_signals);
        Ok(World {
            clock,
            intake: IntakeServiceClient::new(services[0].channel().await?),
            review: ReviewServiceClient::new(services[1].channel().await?),
            payment: PaymentServiceClient::new(services[2].channel().await?),
            integration: DepartmentIntegrationServiceClient::new(services[3].channel().await?),
            department: auth.token_for("civil-affairs-1", Role::Department, DISTRICT),
            holders: HOLDERS
                .iter()
                // and the departments linkage notices go to (slice 3)
                .chain(NOTICE_TAKERS)
                .map(|code| {
                    let token = auth.token_with(Role::Department, DISTRICT, |claims| {
                        claims.sub = format!("system-{code}");
                        claims.department_code = Some((*code).to_owned());
                    });
                    ((*code).to_owned(), token)
                })
                .collect(),
            store,
            database,
            clerk: auth.token_for("clerk-1", Role::VillageClerk, VILLAGE),
            second_clerk: auth.token_for("clerk-2", Role::VillageClerk, VILLAGE),
            far_clerk: auth.token_for("clerk-far", Role::VillageClerk, FAR_VILLAGE),
            street: auth.token_for("street-1", Role::StreetReviewer, STREET_TOWN),
            center: auth.token_for("center-1", Role::CenterReviewer, DISTRICT),
            approver: auth.token_for("approver-1", Role::CenterApprover, DISTRICT),
            finance: auth.token_for("finance-1", Role::FinanceOfficer, DISTRICT),
            finance_approver: auth.token_for("finance-approver-1", Role::FinanceApprover, DISTRICT),
            services,
            policy_directory,
            config: config.clone(),
            _backends: backends,
        })
    }

    async fn stop(self) -> anyhow::Result<()> {
        self.database.close().await;
        for service in self.services.into_iter().rev() {
            service.stop().await?;
        }
        std::fs::remove_dir_all(&self.policy_directory)?;
        Ok(())
    }

    // ---- the rules every row checks ----

    /// Steps 3 and 4 of every row, once the first call answered `first` and the world moved
    /// on: the faithful retry answers `first` exactly and writes nothing; `other`, the same
    /// command id with other content, is refused on `command_id` and writes nothing.
    async fn retries_answer_first<Request, Response, Answer>(
        &self,
        call: impl Fn(Request) -> Answer,
        request: Request,
        first: &Response,
        other: Request,
    ) -> anyhow::Result<()>
    where
        Request: Clone,
        Response: PartialEq + std::fmt::Debug,
        Answer: Future<Output = Result<Response, Status>>,
    {
        let before = self.settled_log_size().await?;
        let again = call(request)
            .await
            .map_err(|status| anyhow::anyhow!("the faithful retry was refused: {status:?}"))?;
        anyhow::ensure!(
            again == *first,
            "the faithful retry answered {again:?}, the first call {first:?}"
        );
        let after_retry = self.settled_log_size().await?;
        anyhow::ensure!(
            after_retry == before,
            "the faithful retry wrote {} events",
            after_retry - before
        );
        match call(other).await {
            Ok(answer) => anyhow::bail!("other content under the same command id: OK {answer:?}"),
            Err(status) => {
                anyhow::ensure!(
                    status.code() == Code::InvalidArgument
                        && violated_fields(&status) == ["command_id"],
                    "other content under the same command id: {status:?}, not INVALID_ARGUMENT on command_id"
                );
            }
        }
        let after_refusal = self.settled_log_size().await?;
        anyhow::ensure!(
            after_refusal == before,
            "the refused reuse wrote {} events",
            after_refusal - before
        );
        Ok(())
    }

    /// The number of events in the log once every consumer has processed every event (so no
    /// reaction is still to come).
    async fn settled_log_size(&self) -> anyhow::Result<i64> {
        self.settle().await?;
        Ok(sqlx::query_scalar("SELECT COUNT(*) FROM events")
            .fetch_one(self.store.pool())
            .await?)
    }

    /// Waits until every consumer has processed every event of the log.
    async fn settle(&self) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let mut behind = 0_i64;
            for consumer in CONSUMERS {
                let unprocessed =
                    sunshine_tests::events_behind(self.store.pool(), consumer).await?;
                behind += unprocessed;
            }
            if behind == 0 {
                return Ok(());
            }
            anyhow::ensure!(
                tokio::time::Instant::now() < deadline,
                "the consumers are {behind} events behind"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    // ---- households ----

    /// A household of four at [`VILLAGE`], registered by `clerk-1`.
    async fn household(&self, seed: u32) -> anyhow::Result<Household> {
        let people = family(seed);
        let registered = call!(self.intake, register_household, self.clerk)(
            sunshine_tests::households::registration(&format!("reg-{seed}"), &people),
        )
        .await?;
        Ok(Household {
            household_id: registered.household_id,
            member_ids: registered.member_ids,
            people,
        })
    }

    /// The household's version, once every reaction to it has been appended.
    async fn household_version(&self, household_id: &str) -> anyhow::Result<u64> {
        self.settle().await?;
        Ok(self
            .store
            .stream_version(&StreamId::new("intake", "household", household_id)?)
            .await?)
    }

    async fn change_circumstances(
        &self,
        command_id: &str,
        household: &Household,
        token: &str,
        fen: i64,
    ) -> anyhow::Result<pb::RecordCircumstanceChangeResponse> {
        let request = change(
            command_id,
            household,
            self.household_version(&household.household_id).await?,
            fen,
        );
        Ok(call!(self.intake, record_circumstance_change, token.to_owned())(request).await?)
    }

    /// `clerk-1` moves the household to [`FAR_VILLAGE`], out of the clerk's and the street
    /// reviewer's scope; review's cases follow it.
    async fn move_away(&self, command_id: &str, household: &Household) -> anyhow::Result<()> {
        let request = relocation(
            command_id,
            household,
            self.household_version(&household.household_id).await?,
        );
        call!(self.intake, record_move, self.clerk)(request).await?;
        self.settle().await
    }

    // ---- cases ----

    /// A dibao application of a new household, and its case opened by review.
    async fn case(&self, seed: u32) -> anyhow::Result<Case> {
        let household = self.household(seed).await?;
        let accepted = call!(self.intake, submit_application, self.clerk)(dibao_application(
            &format!("app-{seed}"),
            &household.household_id,
            &household.member_ids[0],
        ))
        .await?;
        let case = Case {
            household,
            case_id: accepted.case_id,
        };
        self.wait_for_event::<pb::CaseOpened>(&case.case_id).await?;
        Ok(case)
    }

    /// The case's version, once every reaction has been appended.
    async fn case_version(&self, case_id: &str) -> anyhow::Result<u64> {
        self.settle().await?;
        Ok(self
            .store
            .stream_version(&StreamId::new("review", "case", case_id)?)
            .await?)
    }

    /// Waits until the case's file holds an event of type `E`.
    async fn wait_for_event<E: Event>(&self, case_id: &str) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let file = self.store.read_case(case_id).await?;
            if file.iter().any(|stored| stored.event_type == E::TYPE) {
                return self.settle().await;
            }
            anyhow::ensure!(
                tokio::time::Instant::now() < deadline,
                "case {case_id} never recorded {}",
                E::TYPE
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Appends an event of another service (a department, disclosure) as that service would.
    async fn append_as(
        &self,
        service_stream: &str,
        case_id: &str,
        event: &impl TypedEvent,
    ) -> anyhow::Result<()> {
        let stream = StreamId::parse(&format!("{service_stream}-{}", uuid::Uuid::now_v7()))?;
        let metadata = EventMetadata {
            actor: Actor {
                subject: "test-boundary".into(),
                role: "system".into(),
                org_unit: String::new(),
                department_code: None,
            },
            ..EventMetadata::default()
        };
        self.store
            .append(
                &stream,
                ExpectedVersion::NoStream,
                &metadata,
                vec![NewEvent::typed(case_id, event)],
            )
            .await?;
        self.settle().await
    }

    async fn assign(&self, case: &Case) -> anyhow::Result<pb::CaseCommandResponse> {
        Ok(
            call!(self.review, assign_investigators, self.street)(assignment(
                &case.case_id,
                self.case_version(&case.case_id).await?,
            ))
            .await?,
        )
    }

    async fn visit(
        &self,
        case: &Case,
        token: &str,
        command_id: &str,
    ) -> anyhow::Result<pb::CaseCommandResponse> {
        Ok(
            call!(self.review, record_home_visit, token.to_owned())(visit(
                command_id,
                &case.case_id,
                self.case_version(&case.case_id).await?,
                self.clock.today(),
            ))
            .await?,
        )
    }

    /// Assigned and visited twice: ready for verification.
    async fn investigated(&self, case: &Case) -> anyhow::Result<()> {
        self.assign(case).await?;
        self.visit(case, &self.clerk, &format!("visit-1-{}", case.case_id))
            .await?;
        self.visit(
            case,
            &self.second_clerk,
            &format!("visit-2-{}", case.case_id),
        )
        .await?;
        Ok(())
    }

    async fn request_verification(&self, case: &Case) -> anyhow::Result<pb::CaseCommandResponse> {
        Ok(
            call!(self.review, request_verification, self.street)(verification(
                &case.case_id,
                self.case_version(&case.case_id).await?,
            ))
            .await?,
        )
    }

    /// The department answers; the case moves to the preliminary opinion.
    async fn verification_answered(&self, case: &Case) -> anyhow::Result<()> {
        let answer = pb::VerificationAnswered {
            case_id: case.case_id.clone(),
            department_code: "civil_affairs".into(),
            ..Default::default()
        };
        // Settled: review's reaction to it is in the case's stream.
        self.append_as("departments-verification", &case.case_id, &answer)
            .await
    }

    async fn opinion(&self, case: &Case) -> anyhow::Result<pb::CaseCommandResponse> {
        Ok(call!(self.review, record_opinion, self.street)(opinion(
            &case.case_id,
            self.case_version(&case.case_id).await?,
        ))
        .await?)
    }

    async fn publicity(&self, case: &Case) -> anyhow::Result<pb::CaseCommandResponse> {
        Ok(call!(self.review, start_publicity, self.street)(publicity(
            &case.case_id,
            self.case_version(&case.case_id).await?,
        ))
        .await?)
    }

    /// Investigated, verified, with the street-town's opinion and its publicity started: the
    /// engine's amount.
    async fn in_publicity(&self, case: &Case) -> anyhow::Result<i64> {
        self.investigated(case).await?;
        self.request_verification(case).await?;
        self.verification_answered(case).await?;
        let opinion = self.opinion(case).await?;
        self.publicity(case).await?;
        Ok(opinion
            .policy
            .and_then(|policy| policy.amount)
            .map_or(0, |money| money.fen))
    }

    /// An objection arrives during publicity; the case is investigated again (settled: review's
    /// reaction to it is in the case's stream).
    async fn objection(&self, case: &Case, objection_id: &str) -> anyhow::Result<()> {
        let objection = pb::ObjectionReceived {
            case_id: case.case_id.clone(),
            objection_id: objection_id.into(),
            received_on: Some(sunshine_proto::dates::from_date(self.clock.today())),
            sealed_content: Vec::new(),
        };
        self.append_as("disclosure-objection", &case.case_id, &objection)
            .await
    }

    /// The decision after the publicity, by `approver-1`.
    async fn decided(
        &self,
        case: &Case,
        approve: bool,
        amount_fen: i64,
    ) -> anyhow::Result<(pb::DecideRequest, pb::CaseCommandResponse)> {
        self.clock.set(AFTER_PUBLICITY);
        let request = decision(
            &case.case_id,
            self.case_version(&case.case_id).await?,
            approve,
            amount_fen,
        );
        let answer = call!(self.review, decide, self.approver)(request.clone()).await?;
        Ok((request, answer))
    }

    /// An assist-first grant heard from review (appended at the boundary as review would, on a
    /// case of its own): a one-off entitlement due this month.
    async fn assist_first_granted(&self, fen: i64) -> anyhow::Result<()> {
        let case_id = uuid::Uuid::now_v7().to_string();
        let opened = pb::CaseOpened {
            case_id: case_id.clone(),
            application_id: format!("application-{case_id}"),
            household_id: format!("household-{case_id}"),
            program_code: "temporary".into(),
            workflow: "emergency_evaluation".into(),
            accepted_org_unit_code: VILLAGE.into(),
            hukou_org_unit_code: VILLAGE.into(),
            emergency: true,
            ..Default::default()
        };
        let granted = pb::AssistFirstGranted {
            case_id: case_id.clone(),
            amount: Some(pb::Money { fen }),
            cap: Some(pb::Money { fen: FIRST_CAP_FEN }),
            reason: "火灾".into(),
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
        // The household, registered with its payment account as intake would have.
        sunshine_tests::accounts::register_if_new(
            &self.store,
            &self.config,
            &format!("household-{case_id}"),
        )
        .await?;
        self.store
            .append(
                &StreamId::new("review", "case", &case_id)?,
                ExpectedVersion::NoStream,
                &metadata,
                vec![
                    NewEvent::typed(case_id.as_str(), &opened),
                    NewEvent::typed(case_id.as_str(), &granted),
                ],
            )
            .await?;
        self.settle().await
    }

    /// A serious-illness case approved (nothing monthly) heard from review; its id.
    async fn medical_case_approved(&self) -> anyhow::Result<String> {
        let case_id = uuid::Uuid::now_v7().to_string();
        let opened = pb::CaseOpened {
            case_id: case_id.clone(),
            application_id: format!("application-{case_id}"),
            household_id: format!("household-{case_id}"),
            program_code: "medical_serious_illness".into(),
            workflow: "center_review".into(),
            accepted_org_unit_code: VILLAGE.into(),
            hukou_org_unit_code: VILLAGE.into(),
            ..Default::default()
        };
        let approved = pb::CaseApproved {
            case_id: case_id.clone(),
            program_code: "medical_serious_illness".into(),
            monthly_amount: Some(pb::Money { fen: 0 }),
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
        // The household, registered with its payment account as intake would have.
        sunshine_tests::accounts::register_if_new(
            &self.store,
            &self.config,
            &format!("household-{case_id}"),
        )
        .await?;
        self.store
            .append(
                &StreamId::new("review", "case", &case_id)?,
                ExpectedVersion::NoStream,
                &metadata,
                vec![
                    NewEvent::typed(case_id.as_str(), &opened),
                    NewEvent::typed(case_id.as_str(), &approved),
                ],
            )
            .await?;
        self.settle().await?;
        Ok(case_id)
    }

    /// A run of this month by `finance-1`, under `command_id`.
    async fn payment_run(&self, command_id: &str) -> anyhow::Result<pb::RunResponse> {
        Ok(call!(self.payment, create_run, self.finance)(run_request(command_id)).await?)
    }

    /// Waits until intake has closed the household's application of `case`.
    async fn wait_for_closed_application(&self, case: &Case) -> anyhow::Result<()> {
        let stream = StreamId::new("intake", "household", &case.household.household_id)?;
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let closed: Vec<pb::ApplicationClosed> =
                sunshine_tests::events::decoded(&self.store.read_stream(&stream, 1).await?)?;
            if closed.iter().any(|closed| closed.case_id == case.case_id) {
                return self.settle().await;
            }
            anyhow::ensure!(
                tokio::time::Instant::now() < deadline,
                "intake never closed the application of case {}",
                case.case_id
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// The example district's policy, except that the assist-first cap is 1500.00 yuan from
/// `from` on.
fn policy_with_a_lower_cap_from(from: time::Date) -> anyhow::Result<PathBuf> {
    let source = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../policy/example-district");
    let directory = std::env::temp_dir().join(format!("sunshine-policy-{}", uuid::Uuid::now_v7()));
    std::fs::create_dir_all(&directory)?;
    for entry in std::fs::read_dir(&source)? {
        let path = entry?.path();
        let Some(name) = path.file_name() else {
            continue;
        };
        let mut text = std::fs::read_to_string(&path)?;
        if name == "temporary.toml" {
            let cap = "assist_first_cap = [\n    { from = 2024-01-01, value = \"2000.00\" },\n";
            anyhow::ensure!(
                text.contains(cap),
                "temporary.toml no longer has the cap this test lowers"
            );
            text = text.replace(
                cap,
                &format!("{cap}    {{ from = {from}, value = \"1500.00\" }},\n"),
            );
        }
        std::fs::write(directory.join(name), text)?;
    }
    Ok(directory)
}

// ---- requests ----

fn change(
    command_id: &str,
    household: &Household,
    version: u64,
    fen: i64,
) -> pb::RecordCircumstanceChangeRequest {
    pb::RecordCircumstanceChangeRequest {
        command_id: command_id.into(),
        household_id: household.household_id.clone(),
        expected_version: version,
        incomes: vec![pb::MemberIncome {
            member_id: household.member_ids[0].clone(),
            monthly_income: vec![pb::IncomeItem {
                kind: "wages".into(),
                monthly_amount: Some(pb::Money { fen }),
            }],
        }],
        assets: None,
        reason: "新工作".into(),
    }
}

fn death(command_id: &str, household: &Household, version: u64) -> pb::RecordDeathRequest {
    pb::RecordDeathRequest {
        command_id: command_id.into(),
        household_id: household.household_id.clone(),
        expected_version: version,
        member_id: household.member_ids[3].clone(),
        date_of_death: date(2026, 9, 1),
        reason: "死亡证明".into(),
    }
}

fn correction(
    command_id: &str,
    household: &Household,
    version: u64,
) -> pb::CorrectDeathRecordRequest {
    pb::CorrectDeathRecordRequest {
        command_id: command_id.into(),
        household_id: household.household_id.clone(),
        expected_version: version,
        member_id: household.member_ids[3].clone(),
        reason: "死亡证明登记错人".into(),
    }
}

fn relocation(command_id: &str, household: &Household, version: u64) -> pb::RecordMoveRequest {
    pb::RecordMoveRequest {
        command_id: command_id.into(),
        household_id: household.household_id.clone(),
        expected_version: version,
        new_hukou_org_unit_code: FAR_VILLAGE.into(),
        new_address: "示例区西城街道和平路8号".into(),
        reason: "户口迁移".into(),
    }
}

fn emergency_application(command_id: &str, household: &Household) -> pb::SubmitApplicationRequest {
    pb::SubmitApplicationRequest {
        program_code: "temporary".into(),
        documents: documents(&[
            "application_form",
            "identity_documents",
            "hardship_evidence",
        ]),
        ..dibao_application(
            command_id,
            &household.household_id,
            &household.member_ids[1],
        )
    }
}

fn investigator(subject: &str) -> pb::CaseOfficer {
    pb::CaseOfficer {
        subject: subject.into(),
        role: "village_clerk".into(),
        org_unit_code: VILLAGE.into(),
    }
}

fn assignment(case_id: &str, version: u64) -> pb::AssignInvestigatorsRequest {
    pb::AssignInvestigatorsRequest {
        command_id: format!("assign-{case_id}"),
        case_id: case_id.into(),
        expected_version: version,
        investigators: vec![investigator("clerk-1"), investigator("clerk-2")],
    }
}

fn visit(
    command_id: &str,
    case_id: &str,
    version: u64,
    on: time::Date,
) -> pb::RecordHomeVisitRequest {
    pb::RecordHomeVisitRequest {
        command_id: command_id.into(),
        case_id: case_id.into(),
        expected_version: version,
        visited_on: Some(sunshine_proto::dates::from_date(on)),
        findings: "家中有卧床老人".into(),
    }
}

fn verification(case_id: &str, version: u64) -> pb::RequestVerificationRequest {
    pb::RequestVerificationRequest {
        command_id: format!("verify-{case_id}"),
        case_id: case_id.into(),
        expected_version: version,
        department_codes: vec!["civil_affairs".into()],
    }
}

fn opinion(case_id: &str, version: u64) -> pb::RecordOpinionRequest {
    pb::RecordOpinionRequest {
        command_id: format!("opinion-{case_id}"),
        case_id: case_id.into(),
        expected_version: version,
        recommend_approval: true,
        proposed_amount: None,
        opinion: "符合农村低保条件".into(),
        departure_justification: String::new(),
    }
}

fn publicity(case_id: &str, version: u64) -> pb::StartPublicityRequest {
    pb::StartPublicityRequest {
        command_id: format!("publicity-{case_id}"),
        case_id: case_id.into(),
        expected_version: version,
    }
}

fn decision(case_id: &str, version: u64, approve: bool, amount_fen: i64) -> pb::DecideRequest {
    pb::DecideRequest {
        command_id: format!("decide-{case_id}"),
        case_id: case_id.into(),
        expected_version: version,
        approve,
        monthly_amount: Some(pb::Money {
            fen: if approve { amount_fen } else { 0 },
        }),
        start_month: if approve {
            "2026-10".into()
        } else {
            String::new()
        },
        reasons: vec![
            if approve {
                "符合条件"
            } else {
                "隐瞒收入"
            }
            .into(),
        ],
        departure_justification: if approve {
            String::new()
        } else {
            "复核发现申请人隐瞒经营收入".into()
        },
        care_institution_code: String::new(),
    }
}

/// The month payment's runs pay here: this month, by payment's (system) clock.
fn this_month() -> sunshine_domain::Month {
    sunshine_domain::Month::of(sunshine_platform::clock::SystemClock.today())
}

fn run_request(command_id: &str) -> pb::CreateRunRequest {
    pb::CreateRunRequest {
        command_id: command_id.into(),
        period: this_month().to_string(),
    }
}

fn approval(command_id: &str, run: &pb::RunResponse) -> pb::ApproveRunRequest {
    let control = run.control.clone().unwrap_or_default();
    pb::ApproveRunRequest {
        command_id: command_id.into(),
        run_id: run.run_id.clone(),
        expected_version: run.version,
        control_count: control.count,
        control_total: control.total,
    }
}

// ---- intake's rows ----

async fn register_household(world: &World, seed: u32) -> anyhow::Result<()> {
    let call = call!(world.intake, register_household, world.clerk);
    let people = family(seed);
    let request = sunshine_tests::households::registration(&format!("reg-{seed}"), &people);
    let first = call(request.clone()).await?;
    // The household lives on: a change, and an application.
    let household = Household {
        household_id: first.household_id.clone(),
        member_ids: first.member_ids.clone(),
        people,
    };
    world
        .change_circumstances(
            &format!("change-after-registration-{seed}"),
            &household,
            &world.clerk,
            40_000,
        )
        .await?;
    call!(world.intake, submit_application, world.clerk)(dibao_application(
        &format!("app-{seed}"),
        &household.household_id,
        &household.member_ids[0],
    ))
    .await?;
    let mut other = request.clone();
    other.address = "示例区东城街道幸福里5号".into();
    world
        .retries_answer_first(call, request, &first, other)
        .await
}

async fn record_circumstance_change(world: &World, seed: u32) -> anyhow::Result<()> {
    let household = world.household(seed).await?;
    let call = call!(world.intake, record_circumstance_change, world.clerk);
    let version = world.household_version(&household.household_id).await?;
    let request = change(&format!("change-1-{seed}"), &household, version, 40_000);
    let first = call(request.clone()).await?;
    // Another change after it.
    call(change(
        &format!("change-2-{seed}"),
        &household,
        first.version,
        50_000,
    ))
    .await?;
    let mut other = request.clone();
    other.reason = "另一个理由".into();
    world
        .retries_answer_first(call, request, &first, other)
        .await
}

async fn record_death(world: &World, seed: u32) -> anyhow::Result<()> {
    let household = world.household(seed).await?;
    let call = call!(world.intake, record_death, world.clerk);
    let version = world.household_version(&household.household_id).await?;
    let request = death(&format!("death-1-{seed}"), &household, version);
    let first = call(request.clone()).await?;
    // The center finds the death recorded in error: the member lives again.
    call!(world.intake, correct_death_record, world.center)(correction(
        &format!("correct-1-{seed}"),
        &household,
        first.version,
    ))
    .await?;
    let mut other = request.clone();
    other.date_of_death = date(2026, 8, 31);
    world
        .retries_answer_first(call, request, &first, other)
        .await
}

// ---- household composition ----

/// A person joining `household` by marriage: `sequence` keeps people of rows apart.
fn joining(
    command_id: &str,
    household: &Household,
    version: u64,
    sequence: u32,
) -> pb::AddHouseholdMemberRequest {
    let person = Person {
        name: "赵新娘",
        id: sunshine_tests::households::national_id("19960606", sequence % 1000),
        birth: (1996, 6, 6),
        relation: pb::Relation::Other,
    };
    pb::AddHouseholdMemberRequest {
        command_id: command_id.into(),
        household_id: household.household_id.clone(),
        expected_version: version,
        member: Some(sunshine_tests::households::member(&person, 0)),
        reason: pb::JoinReason::Marriage as i32,
        note: String::new(),
    }
}

fn leaving(
    command_id: &str,
    household: &Household,
    version: u64,
    member_id: &str,
) -> pb::RemoveHouseholdMemberRequest {
    pb::RemoveHouseholdMemberRequest {
        command_id: command_id.into(),
        household_id: household.household_id.clone(),
        expected_version: version,
        member_id: member_id.into(),
        reason: pb::LeaveReason::MovedOut as i32,
        effective_date: date(2026, 9, 1),
        note: String::new(),
    }
}

async fn add_household_member(world: &World, seed: u32) -> anyhow::Result<()> {
    let household = world.household(seed).await?;
    let call = call!(world.intake, add_household_member, world.clerk);
    let version = world.household_version(&household.household_id).await?;
    let request = joining(&format!("join-1-{seed}"), &household, version, seed * 2);
    let first = call(request.clone()).await?;
    // The world moves on: the new member leaves again.
    call!(world.intake, remove_household_member, world.clerk)(leaving(
        &format!("leave-1-{seed}"),
        &household,
        first.version,
        &first.member_id,
    ))
    .await?;
    // Another person under the same command id: refused, and nobody is claimed.
    let other = joining(&format!("join-1-{seed}"), &household, version, seed * 2 + 1);
    world
        .retries_answer_first(call, request, &first, other)
        .await
}

async fn remove_household_member(world: &World, seed: u32) -> anyhow::Result<()> {
    let household = world.household(seed).await?;
    let call = call!(world.intake, remove_household_member, world.clerk);
    let version = world.household_version(&household.household_id).await?;
    let request = leaving(
        &format!("leave-1-{seed}"),
        &household,
        version,
        &household.member_ids[2],
    );
    let first = call(request.clone()).await?;
    // The world moves on: someone joins.
    call!(world.intake, add_household_member, world.clerk)(joining(
        &format!("join-1-{seed}"),
        &household,
        first.version,
        seed * 2,
    ))
    .await?;
    let mut other = request.clone();
    other.effective_date = date(2026, 8, 31);
    world
        .retries_answer_first(call, request, &first, other)
        .await
}

// ---- end of household composition ----

async fn correct_death_record(world: &World, seed: u32) -> anyhow::Result<()> {
    let household = world.household(seed).await?;
    let died = call!(world.intake, record_death, world.clerk);
    let version = world.household_version(&household.household_id).await?;
    let recorded = died(death(&format!("death-1-{seed}"), &household, version)).await?;
    let call = call!(world.intake, correct_death_record, world.center);
    let request = correction(&format!("correct-1-{seed}"), &household, recorded.version);
    let first = call(request.clone()).await?;
    // The member then really dies.
    died(death(&format!("death-2-{seed}"), &household, first.version)).await?;
    let mut other = request.clone();
    other.reason = "另一个理由".into();
    world
        .retries_answer_first(call, request, &first, other)
        .await
}

async fn record_move(world: &World, seed: u32) -> anyhow::Result<()> {
    let household = world.household(seed).await?;
    let call = call!(world.intake, record_move, world.clerk);
    let version = world.household_version(&household.household_id).await?;
    let request = relocation(&format!("move-1-{seed}"), &household, version);
    let first = call(request.clone()).await?;
    // The household has left the clerk's village; the clerk there records a change.
    world
        .change_circumstances(
            &format!("change-there-{seed}"),
            &household,
            &world.far_clerk,
            40_000,
        )
        .await?;
    let mut other = request.clone();
    other.new_address = "示例区西城街道和平路9号".into();
    world
        .retries_answer_first(call, request, &first, other)
        .await
}

async fn submit_application(world: &World, seed: u32) -> anyhow::Result<()> {
    let household = world.household(seed).await?;
    let call = call!(world.intake, submit_application, world.clerk);
    let request = emergency_application(&format!("app-emergency-{seed}"), &household);
    let first = call(request.clone()).await?;
    anyhow::ensure!(
        first.assist_first_cap == Some(pb::Money { fen: FIRST_CAP_FEN }),
        "the cap in force when the application was accepted: {first:?}"
    );
    // Review opens the case; the policy's cap is lowered; the household applies for dibao.
    world
        .wait_for_event::<pb::CaseOpened>(&first.case_id)
        .await?;
    world.clock.set(CAP_LOWERED_ON);
    call(dibao_application(
        &format!("app-dibao-{seed}"),
        &household.household_id,
        &household.member_ids[0],
    ))
    .await?;
    let mut other = request.clone();
    other
        .declared_facts
        .insert("fire".into(), "房屋失火".into());
    world
        .retries_answer_first(call, request, &first, other)
        .await
}

async fn register_official_relative(world: &World, seed: u32) -> anyhow::Result<()> {
    let household = world.household(seed).await?;
    let call = call!(world.intake, register_official_relative, world.center);
    let request = pb::RegisterOfficialRelativeRequest {
        command_id: format!("official-{seed}"),
        official_subject: format!("cadre-{seed}"),
        official_name: "赵主任".into(),
        official_position: "村委会主任".into(),
        official_org_unit_code: VILLAGE.into(),
        relative_national_id: household.people[1].id.clone(),
        relation: "spouse".into(),
    };
    let first = call(request.clone()).await?;
    // The relative's household applies (and is flagged at the window).
    call!(world.intake, submit_application, world.clerk)(dibao_application(
        &format!("app-{seed}"),
        &household.household_id,
        &household.member_ids[0],
    ))
    .await?;
    let mut other = request.clone();
    other.official_position = "村党支部书记".into();
    world
        .retries_answer_first(call, request, &first, other)
        .await
}

// ---- review's rows ----

async fn assign_investigators(world: &World, seed: u32) -> anyhow::Result<()> {
    let case = world.case(seed).await?;
    let call = call!(world.review, assign_investigators, world.street);
    let request = assignment(&case.case_id, world.case_version(&case.case_id).await?);
    let first = call(request.clone()).await?;
    // The street reviewer turns out to be a relative's official: recused from the case.
    call!(world.intake, register_official_relative, world.center)(
        pb::RegisterOfficialRelativeRequest {
            command_id: format!("official-{seed}"),
            official_subject: "street-1".into(),
            official_name: "孙科长".into(),
            official_position: "街道办科长".into(),
            official_org_unit_code: STREET_TOWN.into(),
            relative_national_id: case.household.people[1].id.clone(),
            relation: "spouse".into(),
        },
    )
    .await?;
    world
        .wait_for_event::<pb::OfficialRecused>(&case.case_id)
        .await?;
    let mut other = request.clone();
    other.investigators[1] = investigator("clerk-3");
    world
        .retries_answer_first(call, request, &first, other)
        .await
}

async fn record_home_visit(world: &World, seed: u32) -> anyhow::Result<()> {
    let case = world.case(seed).await?;
    world.assign(&case).await?;
    let call = call!(world.review, record_home_visit, world.clerk);
    let request = visit(
        &format!("visit-1-{seed}"),
        &case.case_id,
        world.case_version(&case.case_id).await?,
        world.clock.today(),
    );
    let first = call(request.clone()).await?;
    // The second visit; then the household moves out of the clerk's scope, and the case
    // follows it.
    world
        .visit(&case, &world.second_clerk, &format!("visit-2-{seed}"))
        .await?;
    world
        .move_away(&format!("move-away-{seed}"), &case.household)
        .await?;
    world
        .wait_for_event::<pb::CaseFollowedHousehold>(&case.case_id)
        .await?;
    let mut other = request.clone();
    other.findings = "家中无人".into();
    world
        .retries_answer_first(call, request, &first, other)
        .await
}

async fn request_verification(world: &World, seed: u32) -> anyhow::Result<()> {
    let case = world.case(seed).await?;
    world.investigated(&case).await?;
    let call = call!(world.review, request_verification, world.street);
    let request = verification(&case.case_id, world.case_version(&case.case_id).await?);
    let first = call(request.clone()).await?;
    // The department answers: the case is at the preliminary opinion.
    world.verification_answered(&case).await?;
    let mut other = request.clone();
    other.department_codes.push("housing".into());
    world
        .retries_answer_first(call, request, &first, other)
        .await
}

async fn record_opinion(world: &World, seed: u32) -> anyhow::Result<()> {
    let case = world.case(seed).await?;
    world.investigated(&case).await?;
    world.request_verification(&case).await?;
    world.verification_answered(&case).await?;
    let call = call!(world.review, record_opinion, world.street);
    let request = opinion(&case.case_id, world.case_version(&case.case_id).await?);
    let first = call(request.clone()).await?;
    anyhow::ensure!(
        first.policy.is_some(),
        "the opinion carries the policy result"
    );
    // Publicity starts; the household's income changes (the engine would find otherwise now).
    world.publicity(&case).await?;
    world
        .change_circumstances(
            &format!("change-after-opinion-{seed}"),
            &case.household,
            &world.clerk,
            90_000,
        )
        .await?;
    let mut other = request.clone();
    other.opinion = "基本符合条件".into();
    world
        .retries_answer_first(call, request, &first, other)
        .await
}

async fn start_publicity(world: &World, seed: u32) -> anyhow::Result<()> {
    let case = world.case(seed).await?;
    world.investigated(&case).await?;
    world.request_verification(&case).await?;
    world.verification_answered(&case).await?;
    world.opinion(&case).await?;
    let call = call!(world.review, start_publicity, world.street);
    let request = publicity(&case.case_id, world.case_version(&case.case_id).await?);
    let first = call(request.clone()).await?;
    // An objection reopens the case for investigation.
    world.clock.set(date!(2026 - 09 - 09));
    world.objection(&case, "objection-1").await?;
    let mut other = request.clone();
    other.expected_version += 1;
    world
        .retries_answer_first(call, request, &first, other)
        .await
}

async fn answer_objection(world: &World, seed: u32) -> anyhow::Result<()> {
    let case = world.case(seed).await?;
    world.in_publicity(&case).await?;
    world.clock.set(date!(2026 - 09 - 09));
    world.objection(&case, "objection-1").await?;
    let call = call!(world.review, answer_objection, world.street);
    let request = pb::AnswerObjectionRequest {
        command_id: format!("answer-1-{seed}"),
        case_id: case.case_id.clone(),
        expected_version: world.case_version(&case.case_id).await?,
        objection_id: "objection-1".into(),
        upheld: false,
        answer: "复核收入属实".into(),
    };
    let first = call(request.clone()).await?;
    // The household moves to another street-town: the case leaves the reviewer's scope.
    world
        .move_away(&format!("move-away-{seed}"), &case.household)
        .await?;
    world
        .wait_for_event::<pb::CaseFollowedHousehold>(&case.case_id)
        .await?;
    let mut other = request.clone();
    other.upheld = true;
    world
        .retries_answer_first(call, request, &first, other)
        .await
}

async fn grant_assist_first(world: &World, seed: u32) -> anyhow::Result<()> {
    let household = world.household(seed).await?;
    let accepted = call!(world.intake, submit_application, world.clerk)(emergency_application(
        &format!("app-{seed}"),
        &household,
    ))
    .await?;
    let case = Case {
        household,
        case_id: accepted.case_id,
    };
    world
        .wait_for_event::<pb::CaseOpened>(&case.case_id)
        .await?;
    let call = call!(world.review, grant_assist_first, world.street);
    let request = pb::GrantAssistFirstRequest {
        command_id: format!("assist-1-{seed}"),
        case_id: case.case_id.clone(),
        expected_version: world.case_version(&case.case_id).await?,
        amount: Some(pb::Money { fen: FIRST_CAP_FEN }),
        reason: "火灾".into(),
    };
    let first = call(request.clone()).await?;
    // The cap is lowered below what was paid; the investigation goes on.
    world.clock.set(CAP_LOWERED_ON);
    world.assign(&case).await?;
    let mut other = request.clone();
    other.reason = "水灾".into();
    world
        .retries_answer_first(call, request, &first, other)
        .await
}

async fn decide(world: &World, seed: u32) -> anyhow::Result<()> {
    let case = world.case(seed).await?;
    let amount = world.in_publicity(&case).await?;
    let (request, first) = world.decided(&case, true, amount).await?;
    anyhow::ensure!(first.status == "approved", "{first:?}");
    // Intake closes the application; a death in the household re-evaluates the benefit.
    world.wait_for_closed_application(&case).await?;
    let version = world
        .household_version(&case.household.household_id)
        .await?;
    call!(world.intake, record_death, world.clerk)(death(
        &format!("death-1-{seed}"),
        &case.household,
        version,
    ))
    .await?;
    world.settle().await?;
    let mut other = request.clone();
    other.reasons = vec!["完全符合条件".into()];
    let call = call!(world.review, decide, world.approver);
    world
        .retries_answer_first(call, request, &first, other)
        .await
}

async fn return_for_material(world: &World, seed: u32) -> anyhow::Result<()> {
    let case = world.case(seed).await?;
    world.investigated(&case).await?;
    let call = call!(world.review, return_for_material, world.street);
    let request = pb::ReturnForMaterialRequest {
        command_id: format!("return-1-{seed}"),
        case_id: case.case_id.clone(),
        expected_version: world.case_version(&case.case_id).await?,
        missing_materials: vec!["income_statement".into()],
        reason: "收入证明缺少公章".into(),
    };
    let first = call(request.clone()).await?;
    // The investigation starts again: a visit.
    world
        .visit(&case, &world.clerk, &format!("visit-again-{seed}"))
        .await?;
    let mut other = request.clone();
    other.reason = "收入证明过期".into();
    world
        .retries_answer_first(call, request, &first, other)
        .await
}

async fn withdraw(world: &World, seed: u32) -> anyhow::Result<()> {
    let case = world.case(seed).await?;
    let call = call!(world.review, withdraw, world.clerk);
    let request = pb::WithdrawRequest {
        command_id: format!("withdraw-1-{seed}"),
        case_id: case.case_id.clone(),
        expected_version: world.case_version(&case.case_id).await?,
        reason: "申请人撤回".into(),
    };
    let first = call(request.clone()).await?;
    // Intake closes the application; the household applies again.
    world.wait_for_closed_application(&case).await?;
    call!(world.intake, submit_application, world.clerk)(dibao_application(
        &format!("app-again-{seed}"),
        &case.household.household_id,
        &case.household.member_ids[0],
    ))
    .await?;
    let mut other = request.clone();
    other.reason = "申请人外出务工".into();
    world
        .retries_answer_first(call, request, &first, other)
        .await
}

async fn extend_deadline(world: &World, seed: u32) -> anyhow::Result<()> {
    let case = world.case(seed).await?;
    let call = call!(world.review, extend_deadline, world.street);
    let request = pb::ExtendDeadlineRequest {
        command_id: format!("extend-1-{seed}"),
        case_id: case.case_id.clone(),
        expected_version: world.case_version(&case.case_id).await?,
        reason: "核对结果未返回".into(),
    };
    let first = call(request.clone()).await?;
    // The investigators are named.
    world.assign(&case).await?;
    let mut other = request.clone();
    other.reason = "入户调查未完成".into();
    world
        .retries_answer_first(call, request, &first, other)
        .await
}

async fn notify_refusal(world: &World, seed: u32) -> anyhow::Result<()> {
    let case = world.case(seed).await?;
    world.in_publicity(&case).await?;
    let (_, rejected) = world.decided(&case, false, 0).await?;
    anyhow::ensure!(rejected.status == "rejected", "{rejected:?}");
    let call = call!(world.review, notify_refusal, world.clerk);
    let request = pb::NotifyRefusalRequest {
        command_id: format!("notify-1-{seed}"),
        case_id: case.case_id.clone(),
        expected_version: world.case_version(&case.case_id).await?,
        channel: "in_writing".into(),
    };
    let first = call(request.clone()).await?;
    // Intake closes the application; the household applies again.
    world.wait_for_closed_application(&case).await?;
    call!(world.intake, submit_application, world.clerk)(dibao_application(
        &format!("app-again-{seed}"),
        &case.household.household_id,
        &case.household.member_ids[0],
    ))
    .await?;
    let mut other = request.clone();
    other.channel = "by_phone".into();
    world
        .retries_answer_first(call, request, &first, other)
        .await
}

/// The district's home-visit sample over the one 特困 case received the day after its notice:
/// a retry after the district visited the sampled case answers the same draw, writes nothing.
async fn draw_home_visit_sample(world: &World, seed: u32) -> anyhow::Result<()> {
    let household = world.household(seed).await?;
    let accepted =
        call!(world.intake, submit_application, world.clerk)(pb::SubmitApplicationRequest {
            program_code: "tekun".into(),
            documents: documents(&[
                "application_form",
                "household_register",
                "identity_documents",
                "verification_authorisation",
            ]),
            ..dibao_application(
                &format!("app-{seed}"),
                &household.household_id,
                &household.member_ids[0],
            )
        })
        .await?;
    let case = Case {
        household,
        case_id: accepted.case_id,
    };
    world
        .wait_for_event::<pb::CaseOpened>(&case.case_id)
        .await?;
    world.investigated(&case).await?;
    world.request_verification(&case).await?;
    world.verification_answered(&case).await?;
    call!(world.review, record_opinion, world.street)(pb::RecordOpinionRequest {
        departure_justification: "街道入户核实：无劳动能力、无生活来源".into(),
        ..opinion(&case.case_id, world.case_version(&case.case_id).await?)
    })
    .await?;
    world.publicity(&case).await?;
    // The notice runs START ..= START + 6; the district receives the case the day after.
    world.clock.set(AFTER_PUBLICITY);
    let call = call!(world.review, draw_home_visit_sample, world.center);
    let request = pb::DrawHomeVisitSampleRequest {
        command_id: format!("draw-1-{seed}"),
        org_unit_code: String::new(),
        received_from: date(2026, 9, 14),
        received_to: date(2026, 9, 14),
    };
    let first = call(request.clone()).await?;
    let drawn = first.sample.clone().unwrap_or_default();
    anyhow::ensure!(
        drawn.sampled_case_ids == [case.case_id.clone()],
        "{drawn:?}"
    );
    // The district visits the sampled case.
    call!(world.review, record_home_visit, world.center)(pb::RecordHomeVisitRequest {
        command_id: format!("district-visit-{seed}"),
        case_id: case.case_id.clone(),
        expected_version: world.case_version(&case.case_id).await?,
        visited_on: date(2026, 9, 15),
        findings: String::new(),
    })
    .await?;
    let mut other = request.clone();
    other.received_from = date(2026, 9, 13);
    world
        .retries_answer_first(call, request, &first, other)
        .await
}

// ---- payment's rows ----

async fn create_run(world: &World, seed: u32) -> anyhow::Result<()> {
    world
        .assist_first_granted(100_000 + i64::from(seed))
        .await?;
    let call = call!(world.payment, create_run, world.finance);
    let request = run_request(&format!("run-{seed}"));
    let first = call(request.clone()).await?;
    // The run is approved; a grant made since gets a run of its own.
    call!(world.payment, approve_run, world.finance_approver)(approval(
        &format!("approve-{seed}"),
        &first,
    ))
    .await?;
    world.assist_first_granted(90_000).await?;
    world.payment_run(&format!("run-late-{seed}")).await?;
    let mut other = request.clone();
    other.period = this_month()
        .next()
        .map(|month| month.to_string())
        .unwrap_or_default();
    world
        .retries_answer_first(call, request, &first, other)
        .await
}

async fn approve_run(world: &World, seed: u32) -> anyhow::Result<()> {
    world.assist_first_granted(80_000 + i64::from(seed)).await?;
    let run = world.payment_run(&format!("run-{seed}")).await?;
    let call = call!(world.payment, approve_run, world.finance_approver);
    let request = approval(&format!("approve-{seed}"), &run);
    let first = call(request.clone()).await?;
    anyhow::ensure!(first.status == "approved", "{first:?}");
    // Another run is created and approved after it.
    world.assist_first_granted(70_000).await?;
    let next = world.payment_run(&format!("run-next-{seed}")).await?;
    call(approval(&format!("approve-next-{seed}"), &next)).await?;
    let mut other = request.clone();
    other.control_total = Some(pb::Money {
        fen: other.control_total.map_or(0, |money| money.fen) + 1,
    });
    world
        .retries_answer_first(call, request, &first, other)
        .await
}

async fn import_bank_result(world: &World, seed: u32) -> anyhow::Result<()> {
    use sunshine_payment::bank_files::Format;
    world.assist_first_granted(60_000 + i64::from(seed)).await?;
    let run = world.payment_run(&format!("run-{seed}")).await?;
    call!(world.payment, approve_run, world.finance_approver)(approval(
        &format!("approve-{seed}"),
        &run,
    ))
    .await?;
    let export = |run_id: String| pb::ExportBankFileRequest {
        run_id,
        format: pb::BankFileFormat::CsvUtf8.into(),
    };
    let batch = export_file(&world.payment, &world.finance, export(run.run_id.clone())).await?;
    let call = call!(world.payment, import_bank_result, world.finance);
    let request = pb::ImportBankResultRequest {
        command_id: format!("result-{seed}"),
        run_id: run.run_id.clone(),
        file: sunshine_tests::bank::answer(&batch.file, Format::CsvUtf8, None)?,
    };
    let first = call(request.clone()).await?;
    anyhow::ensure!(first.status == "result_recorded", "{first:?}");
    // Another run is paid and settled after it.
    world.assist_first_granted(50_000).await?;
    let next = world.payment_run(&format!("run-next-{seed}")).await?;
    call!(world.payment, approve_run, world.finance_approver)(approval(
        &format!("approve-next-{seed}"),
        &next,
    ))
    .await?;
    let next_batch =
        export_file(&world.payment, &world.finance, export(next.run_id.clone())).await?;
    call(pb::ImportBankResultRequest {
        command_id: format!("result-next-{seed}"),
        run_id: next.run_id.clone(),
        file: sunshine_tests::bank::answer(&next_batch.file, Format::CsvUtf8, None)?,
    })
    .await?;
    // Other content: the same batch, its one order failed.
    let order_id = sunshine_tests::bank::batch_lines(&batch.file)?
        .first()
        .map(|line| line.order_id.clone())
        .unwrap_or_default();
    let mut other = request.clone();
    other.file = sunshine_tests::bank::answer(&batch.file, Format::CsvUtf8, Some(&order_id))?;
    world
        .retries_answer_first(call, request, &first, other)
        .await
}

async fn create_repay_run(world: &World, seed: u32) -> anyhow::Result<()> {
    use sunshine_payment::bank_files::Format;
    world.assist_first_granted(40_000 + i64::from(seed)).await?;
    let run = world.payment_run(&format!("run-{seed}")).await?;
    call!(world.payment, approve_run, world.finance_approver)(approval(
        &format!("approve-{seed}"),
        &run,
    ))
    .await?;
    let batch = export_file(
        &world.payment,
        &world.finance,
        pb::ExportBankFileRequest {
            run_id: run.run_id.clone(),
            format: pb::BankFileFormat::CsvUtf8.into(),
        },
    )
    .await?;
    let failed = sunshine_tests::bank::batch_lines(&batch.file)?
        .first()
        .map(|line| line.order_id.clone())
        .unwrap_or_default();
    call!(world.payment, import_bank_result, world.finance)(pb::ImportBankResultRequest {
        command_id: format!("result-{seed}"),
        run_id: run.run_id.clone(),
        file: sunshine_tests::bank::answer(&batch.file, Format::CsvUtf8, Some(&failed))?,
    })
    .await?;
    world.settle().await?;
    let call = call!(world.payment, create_repay_run, world.finance);
    let request = pb::CreateRepayRunRequest {
        command_id: format!("repay-{seed}"),
        period: this_month().to_string(),
    };
    let first = call(request.clone()).await?;
    anyhow::ensure!(
        first.control.clone().unwrap_or_default().count == 1,
        "{first:?}"
    );
    // The re-pay run is approved since.
    call!(world.payment, approve_run, world.finance_approver)(approval(
        &format!("approve-repay-{seed}"),
        &first,
    ))
    .await?;
    let mut other = request.clone();
    other.period = this_month()
        .next()
        .map(|month| month.to_string())
        .unwrap_or_default();
    world
        .retries_answer_first(call, request, &first, other)
        .await
}

// ---- payment's settlement rows: returns (退票) and the reconciliation's close ----

/// A run of this month's new grants (the one of `fen`), approved, exported in CSV and paid
/// whole by the bank: the run as its result left it, and its batch file.
async fn paid_run(
    world: &World,
    seed: u32,
    fen: i64,
) -> anyhow::Result<(pb::RunResponse, sunshine_tests::bank::ExportedFile)> {
    use sunshine_payment::bank_files::Format;
    world.assist_first_granted(fen).await?;
    let run = world.payment_run(&format!("run-{seed}")).await?;
    call!(world.payment, approve_run, world.finance_approver)(approval(
        &format!("approve-{seed}"),
        &run,
    ))
    .await?;
    let batch = export_file(
        &world.payment,
        &world.finance,
        pb::ExportBankFileRequest {
            run_id: run.run_id.clone(),
            format: pb::BankFileFormat::CsvUtf8.into(),
        },
    )
    .await?;
    let paid =
        call!(world.payment, import_bank_result, world.finance)(pb::ImportBankResultRequest {
            command_id: format!("result-{seed}"),
            run_id: run.run_id.clone(),
            file: sunshine_tests::bank::answer(&batch.file, Format::CsvUtf8, None)?,
        })
        .await?;
    Ok((paid, batch))
}

/// The returns file of every order of `batch`, with `reason`.
fn all_returned(
    batch: &sunshine_tests::bank::ExportedFile,
    reason: &str,
) -> anyhow::Result<Vec<u8>> {
    let lines: Vec<_> = sunshine_tests::bank::batch_lines(&batch.file)?
        .into_iter()
        .map(|line| sunshine_payment::bank_files::ResultLine {
            paid: false,
            reason: reason.into(),
            ..line
        })
        .collect();
    sunshine_tests::bank::returns_file(sunshine_payment::bank_files::Format::CsvUtf8, &lines)
}

/// The reconciliation's close of `run` with its true figures.
fn closing(command_id: &str, run: &pb::RunResponse) -> pb::CloseReconciliationRequest {
    let states = run.states.unwrap_or_default();
    let fen = |money: Option<pb::Money>| money.map_or(0, |money| money.fen);
    pb::CloseReconciliationRequest {
        command_id: command_id.into(),
        run_id: run.run_id.clone(),
        expected_version: run.version,
        paid_count: states.paid_count,
        paid_total: states.paid_total,
        unpaid_count: states.failed_count + states.returned_count,
        unpaid_total: Some(pb::Money {
            fen: fen(states.failed_total) + fen(states.returned_total),
        }),
    }
}

async fn import_bank_returns(world: &World, seed: u32) -> anyhow::Result<()> {
    let (run, batch) = paid_run(world, seed, 30_000 + i64::from(seed)).await?;
    let call = call!(world.payment, import_bank_returns, world.finance);
    let request = pb::ImportBankReturnsRequest {
        command_id: format!("returns-{seed}"),
        run_id: run.run_id.clone(),
        file: all_returned(&batch, "账户已销户")?,
    };
    let first = call(request.clone()).await?;
    let states = first.states.unwrap_or_default();
    anyhow::ensure!(
        states.returned_count == 1 && states.paid_count == 0,
        "{first:?}"
    );
    // The reconciliation is closed since: the run takes no more returns.
    call!(world.payment, close_reconciliation, world.finance_approver)(closing(
        &format!("close-{seed}"),
        &first,
    ))
    .await?;
    let mut other = request.clone();
    other.file = all_returned(&batch, "账户已冻结")?;
    world
        .retries_answer_first(call, request, &first, other)
        .await
}

async fn close_reconciliation(world: &World, seed: u32) -> anyhow::Result<()> {
    let (run, batch) = paid_run(world, seed, 20_000 + i64::from(seed)).await?;
    let call = call!(world.payment, close_reconciliation, world.finance_approver);
    let request = closing(&format!("close-{seed}"), &run);
    let first = call(request.clone()).await?;
    anyhow::ensure!(
        first.status == "reconciled" && first.reconciliation == "closed",
        "{first:?}"
    );
    // A return comes after the close and is refused; the run's figures are as closed.
    let late =
        call!(world.payment, import_bank_returns, world.finance)(pb::ImportBankReturnsRequest {
            command_id: format!("returns-late-{seed}"),
            run_id: run.run_id.clone(),
            file: all_returned(&batch, "账户已销户")?,
        })
        .await;
    anyhow::ensure!(
        late.as_ref().err().map(Status::code) == Some(Code::FailedPrecondition),
        "{late:?}"
    );
    let mut other = request.clone();
    other.paid_total = Some(pb::Money {
        fen: other.paid_total.map_or(0, |money| money.fen) + 1,
    });
    world
        .retries_answer_first(call, request, &first, other)
        .await
}

// ---- payment's medical claims ----

async fn submit_medical_claim(world: &World, seed: u32) -> anyhow::Result<()> {
    let case_id = world.medical_case_approved().await?;
    let call = call!(world.payment, submit_medical_claim, world.center);
    let today = sunshine_platform::clock::SystemClock.today();
    let request = pb::SubmitMedicalClaimRequest {
        command_id: format!("claim-{seed}"),
        case_id: case_id.clone(),
        patient_member_id: format!("patient-{seed}"),
        out_of_pocket: Some(pb::Money { fen: 1_000_000 }),
        settlement_date: Some(pb::Date {
            year: today.year(),
            month: i32::from(u8::from(today.month())),
            day: i32::from(today.day()),
        }),
        settlement_reference: format!("JS-{seed}"),
    };
    let first = call(request.clone()).await?;
    anyhow::ensure!(
        first
            .claim
            .as_ref()
            .is_some_and(|claim| claim.paid_earlier_this_year == Some(pb::Money { fen: 0 })),
        "{first:?}"
    );
    // Another claim of the patient's year: a new assessment would count the first's amount.
    let mut second = request.clone();
    second.command_id = format!("claim-second-{seed}");
    call(second).await?;
    let mut other = request.clone();
    other.out_of_pocket = Some(pb::Money { fen: 2_000_000 });
    world
        .retries_answer_first(call, request, &first, other)
        .await
}

// ---- payment's recovery rows ----

impl World {
    /// A monthly benefit of this month heard from review (at the boundary), paid by a run of
    /// its own, then ended from this month: the recovery claim payment opens for the month
    /// paid (50,000 fen, at version 1).
    async fn recovery_claim(&self, seed: u32) -> anyhow::Result<pb::RecoveryClaimResponse> {
        use sunshine_payment::bank_files::Format;
        let case_id = uuid::Uuid::now_v7().to_string();
        let opened = pb::CaseOpened {
            case_id: case_id.clone(),
            application_id: format!("application-{case_id}"),
            household_id: format!("household-{case_id}"),
            program_code: "dibao".into(),
            workflow: "means_tested_review".into(),
            accepted_org_unit_code: VILLAGE.into(),
            hukou_org_unit_code: VILLAGE.into(),
            ..Default::default()
        };
        let approved = pb::CaseApproved {
            case_id: case_id.clone(),
            program_code: "dibao".into(),
            monthly_amount: Some(pb::Money { fen: 50_000 }),
            start_month: this_month().to_string(),
            reasons: "符合条件".into(),
            ..Default::default()
        };
        let stream = StreamId::new("review", "case", &case_id)?;
        sunshine_tests::accounts::register_if_new(
            &self.store,
            &self.config,
            &format!("household-{case_id}"),
        )
        .await?;
        let metadata = EventMetadata {
            actor: Actor {
                subject: "test-boundary".into(),
                role: "system".into(),
                org_unit: String::new(),
                department_code: None,
            },
            ..EventMetadata::default()
        };
        self.store
            .append(
                &stream,
                ExpectedVersion::NoStream,
                &metadata,
                vec![
                    NewEvent::typed(case_id.as_str(), &opened),
                    NewEvent::typed(case_id.as_str(), &approved),
                ],
            )
            .await?;
        self.settle().await?;
        let run = self.payment_run(&format!("recovery-run-{seed}")).await?;
        call!(self.payment, approve_run, self.finance_approver)(approval(
            &format!("recovery-approve-{seed}"),
            &run,
        ))
        .await?;
        let batch = export_file(
            &self.payment,
            &self.finance,
            pb::ExportBankFileRequest {
                run_id: run.run_id.clone(),
                format: pb::BankFileFormat::CsvUtf8.into(),
            },
        )
        .await?;
        call!(self.payment, import_bank_result, self.finance)(pb::ImportBankResultRequest {
            command_id: format!("recovery-result-{seed}"),
            run_id: run.run_id.clone(),
            file: sunshine_tests::bank::answer(&batch.file, Format::CsvUtf8, None)?,
        })
        .await?;
        let terminated = pb::BenefitTerminated {
            case_id: case_id.clone(),
            effective_month: this_month().to_string(),
            cause: "member died".into(),
            policy: None,
        };
        self.store
            .append(
                &stream,
                ExpectedVersion::Exact(2),
                &metadata,
                vec![NewEvent::typed(case_id.as_str(), &terminated)],
            )
            .await?;
        self.settle().await?;
        let claims = call!(self.payment, list_recovery_claims, self.finance)(
            pb::ListRecoveryClaimsRequest { page: None },
        )
        .await?
        .claims;
        claims
            .into_iter()
            .find(|claim| {
                claim
                    .orders
                    .first()
                    .is_some_and(|order| order.entitlement_id == case_id)
            })
            .ok_or_else(|| anyhow::anyhow!("payment opened no claim for case {case_id}"))
    }
}

fn repayment(
    command_id: &str,
    claim: &pb::RecoveryClaimResponse,
    fen: i64,
) -> pb::RecordRecoveryRepaymentRequest {
    pb::RecordRecoveryRepaymentRequest {
        command_id: command_id.into(),
        claim_id: claim.claim_id.clone(),
        expected_version: claim.version,
        amount: Some(pb::Money { fen }),
        bank_reference: format!("BK-{command_id}"),
    }
}

async fn record_recovery_repayment(world: &World, seed: u32) -> anyhow::Result<()> {
    let claim = world.recovery_claim(seed).await?;
    let call = call!(world.payment, record_recovery_repayment, world.finance);
    let request = repayment(&format!("repay-{seed}"), &claim, 10_000);
    let first = call(request.clone()).await?;
    anyhow::ensure!(
        first.outstanding == Some(pb::Money { fen: 40_000 }),
        "{first:?}"
    );
    // More is repaid since: the claim is at another version, with less outstanding.
    call(repayment(&format!("repay-more-{seed}"), &first, 15_000)).await?;
    let mut other = request.clone();
    other.amount = Some(pb::Money { fen: 11_000 });
    world
        .retries_answer_first(call, request, &first, other)
        .await
}

async fn write_off_recovery(world: &World, seed: u32) -> anyhow::Result<()> {
    let claim = world.recovery_claim(seed).await?;
    let repaid = call!(world.payment, record_recovery_repayment, world.finance)(repayment(
        &format!("repay-before-write-off-{seed}"),
        &claim,
        20_000,
    ))
    .await?;
    let call = call!(world.payment, write_off_recovery, world.finance_approver);
    let request = pb::WriteOffRecoveryRequest {
        command_id: format!("write-off-{seed}"),
        claim_id: repaid.claim_id.clone(),
        expected_version: repaid.version,
        reason: pb::WriteOffReason::NoEstate.into(),
    };
    let first = call(request.clone()).await?;
    anyhow::ensure!(
        first.status == "written_off" && first.written_off == Some(pb::Money { fen: 30_000 }),
        "{first:?}"
    );
    // The claim is closed since: decided again, the write-off would be refused.
    let refused = call(pb::WriteOffRecoveryRequest {
        command_id: format!("write-off-again-{seed}"),
        expected_version: first.version,
        ..request.clone()
    })
    .await;
    anyhow::ensure!(
        refused
            .as_ref()
            .is_err_and(|status| status.code() == Code::FailedPrecondition),
        "{refused:?}"
    );
    let mut other = request.clone();
    other.reason = pb::WriteOffReason::Hardship.into();
    world
        .retries_answer_first(call, request, &first, other)
        .await
}

// ---- department-integration ----

/// Civil affairs' record `record_id` of a temporary grant to the row's person.
fn department_record(seed: u32, record_id: &str, fen: i64) -> pb::AssistanceRecord {
    pb::AssistanceRecord {
        record_id: record_id.into(),
        national_id: sunshine_tests::households::national_id("19770707", 500 + seed % 400),
        program_code: "temporary_assistance".into(),
        kind: "cash".into(),
        amount: Some(pb::Money { fen }),
        period_start: "2026-09".into(),
        period_end: "2026-09".into(),
    }
}

fn department_csv(records: &[pb::AssistanceRecord]) -> Vec<u8> {
    let mut text = String::from(
        "record_id,national_id,program_code,kind,amount_fen,period_start,period_end\n",
    );
    for record in records {
        text.push_str(&format!(
            "{},{},{},{},{},{},{}\n",
            record.record_id,
            record.national_id,
            record.program_code,
            record.kind,
            record.amount.map_or(0, |money| money.fen),
            record.period_start,
            record.period_end
        ));
    }
    text.into_bytes()
}

async fn push_assistance_records(world: &World, seed: u32) -> anyhow::Result<()> {
    let call = call!(world.integration, push_assistance_records, world.department);
    let (a, b) = (format!("push-a-{seed}"), format!("push-b-{seed}"));
    let request = pb::PushAssistanceRecordsRequest {
        command_id: format!("push-{seed}"),
        records: vec![
            department_record(seed, &a, 50_000),
            department_record(seed, &b, 60_000),
        ],
    };
    let first = call(request.clone()).await?;
    anyhow::ensure!(first.stored == 2, "{first:?}");
    // The world moves on: the same records again (unchanged), one changed (refused).
    let again = call(pb::PushAssistanceRecordsRequest {
        command_id: format!("push-again-{seed}"),
        records: vec![
            department_record(seed, &a, 50_000),
            department_record(seed, &b, 1),
        ],
    })
    .await?;
    anyhow::ensure!(again.unchanged == 1 && again.refused == 1, "{again:?}");
    let mut other = request.clone();
    other.records[0].amount = Some(pb::Money { fen: 50_001 });
    world
        .retries_answer_first(call, request, &first, other)
        .await
}

async fn import_assistance_csv(world: &World, seed: u32) -> anyhow::Result<()> {
    let call = call!(world.integration, import_assistance_csv, world.department);
    let records = vec![
        department_record(seed, &format!("csv-a-{seed}"), 40_000),
        department_record(seed, &format!("csv-b-{seed}"), 30_000),
    ];
    let request = pb::ImportAssistanceCsvRequest {
        command_id: format!("csv-{seed}"),
        file: department_csv(&records),
        good_rows_only: false,
    };
    let first = call(request.clone()).await?;
    anyhow::ensure!(first.stored == 2, "{first:?}");
    // The world moves on: the same file pushed again stores nothing.
    let again = call(pb::ImportAssistanceCsvRequest {
        command_id: format!("csv-again-{seed}"),
        ..request.clone()
    })
    .await?;
    anyhow::ensure!(again.unchanged == 2, "{again:?}");
    let mut other = request.clone();
    other.good_rows_only = true;
    world
        .retries_answer_first(call, request, &first, other)
        .await
}

// ---- department-integration: the economic-status check (issue 13, slice 2) ----

/// The example registry's data holders of the check.
const HOLDERS: &[&str] = &[
    "banks_insurers",
    "housing_provident_fund",
    "human_resources",
    "market_regulation",
    "public_security",
    "real_estate",
    "tax",
];

/// The household's consent to every item of the example registry's check.
fn consent(command_id: &str, household_id: &str) -> pb::RecordConsentRequest {
    pb::RecordConsentRequest {
        command_id: command_id.into(),
        household_id: household_id.into(),
        data_items: [
            "household_registration",
            "household_members",
            "vehicles",
            "wages",
            "pension",
            "unemployment_benefit",
            "social_insurance_contributions",
            "real_estate",
            "business_registration",
            "tax_paid",
            "business_income",
            "housing_provident_fund",
            "bank_deposits",
            "securities",
            "insurance_policies",
        ]
        .iter()
        .map(|item| (*item).to_owned())
        .collect(),
        valid_from: date(2026, 9, 1),
        valid_until: None,
        document_digest: "ab".repeat(32),
    }
}

/// A holder's answer to every item of its request, typed by the field dictionary.
fn check_answers(
    request: &pb::VerificationRequestState,
    fen: i64,
) -> anyhow::Result<Vec<pb::ItemAnswer>> {
    use sunshine_department_integration::dictionary::{FieldDictionary, ValueType};
    let dictionary = FieldDictionary::embedded()?;
    Ok(request
        .data_items
        .iter()
        .map(|item| pb::ItemAnswer {
            item: item.clone(),
            value: Some(match dictionary.item(item).map(|item| item.value_type) {
                Some(ValueType::Amount) => pb::item_answer::Value::Amount(pb::Money { fen }),
                Some(ValueType::Count) => pb::item_answer::Value::Count(1),
                Some(ValueType::Date) => pb::item_answer::Value::Date(pb::Date {
                    year: 2020,
                    month: 1,
                    day: 1,
                }),
                _ => pb::item_answer::Value::Flag(true),
            }),
        })
        .collect())
}

impl World {
    /// A case at verification with the household's consent recorded.
    async fn case_to_check(&self, seed: u32) -> anyhow::Result<Case> {
        let case = self.case(seed).await?;
        self.investigated(&case).await?;
        self.request_verification(&case).await?;
        call!(self.integration, record_consent, self.street)(consent(
            &format!("consent-{seed}"),
            &case.household.household_id,
        ))
        .await?;
        Ok(case)
    }

    async fn open_check(&self, case: &Case, command_id: &str) -> anyhow::Result<pb::CheckResponse> {
        Ok(
            call!(self.integration, open_check, self.street)(pb::OpenCheckRequest {
                command_id: command_id.into(),
                case_id: case.case_id.clone(),
            })
            .await?,
        )
    }

    /// The holders (all but `except`) answer the check; settled.
    async fn holders_answer(
        &self,
        check: &pb::CheckResponse,
        except: &[&str],
        tag: &str,
    ) -> anyhow::Result<()> {
        for request in &check.requests {
            if except.contains(&request.department_code.as_str()) {
                continue;
            }
            let token = self
                .holders
                .get(&request.department_code)
                .cloned()
                .ok_or_else(|| anyhow::anyhow!("no token for {}", request.department_code))?;
            call!(self.integration, answer_check, token)(pb::AnswerCheckRequest {
                command_id: format!("{tag}-{}-{}", check.check_id, request.department_code),
                check_id: check.check_id.clone(),
                answers: check_answers(request, 100_000)?,
            })
            .await?;
        }
        self.settle().await
    }
}

async fn record_consent(world: &World, seed: u32) -> anyhow::Result<()> {
    let case = world.case(seed).await?;
    let call = call!(world.integration, record_consent, world.street);
    let request = consent(&format!("consent-{seed}"), &case.household.household_id);
    let first = call(request.clone()).await?;
    // The world moves on: a member dies (the consent lapses) and a new consent is recorded.
    let version = world
        .household_version(&case.household.household_id)
        .await?;
    call!(world.intake, record_death, world.clerk)(death(
        &format!("death-after-consent-{seed}"),
        &case.household,
        version,
    ))
    .await?;
    call(consent(
        &format!("consent-again-{seed}"),
        &case.household.household_id,
    ))
    .await?;
    let mut other = request.clone();
    other.data_items.pop();
    world
        .retries_answer_first(call, request, &first, other)
        .await
}

async fn open_check(world: &World, seed: u32) -> anyhow::Result<()> {
    let case = world.case_to_check(seed).await?;
    let call = call!(world.integration, open_check, world.street);
    let request = pb::OpenCheckRequest {
        command_id: format!("open-check-{seed}"),
        case_id: case.case_id.clone(),
    };
    let first = call(request.clone()).await?;
    anyhow::ensure!(first.requests.len() == HOLDERS.len(), "{first:?}");
    // The world moves on: every holder answers, the report is issued, review moves the case on.
    world.holders_answer(&first, &[], "answer").await?;
    let mut other = request.clone();
    other.case_id = uuid::Uuid::new_v4().to_string();
    world
        .retries_answer_first(call, request, &first, other)
        .await
}

async fn answer_check(world: &World, seed: u32) -> anyhow::Result<()> {
    let case = world.case_to_check(seed).await?;
    let check = world.open_check(&case, &format!("open-{seed}")).await?;
    let request_state = check
        .requests
        .iter()
        .find(|request| request.department_code == "tax")
        .cloned()
        .ok_or_else(|| anyhow::anyhow!("no tax request: {check:?}"))?;
    let call = call!(world.integration, answer_check, world.holders["tax"]);
    let request = pb::AnswerCheckRequest {
        command_id: format!("answer-tax-{seed}"),
        check_id: check.check_id.clone(),
        answers: check_answers(&request_state, 250_000)?,
    };
    let first = call(request.clone()).await?;
    anyhow::ensure!(!first.report_issued, "{first:?}");
    // The world moves on: the others answer and the report is issued.
    world.holders_answer(&check, &["tax"], "others").await?;
    let mut other = request.clone();
    other.answers = check_answers(&request_state, 1)?;
    world
        .retries_answer_first(call, request, &first, other)
        .await
}

async fn request_recheck(world: &World, seed: u32) -> anyhow::Result<()> {
    let case = world.case_to_check(seed).await?;
    let check = world.open_check(&case, &format!("open-{seed}")).await?;
    world.holders_answer(&check, &[], "answer").await?;
    let version = world
        .store
        .stream_version(&StreamId::new(
            "department-integration",
            "check",
            &check.check_id,
        )?)
        .await?;
    let call = call!(world.integration, request_recheck, world.street);
    let request = pb::RequestRecheckRequest {
        command_id: format!("recheck-{seed}"),
        check_id: check.check_id.clone(),
        expected_version: version,
        reason: "household_objection".into(),
    };
    let first = call(request.clone()).await?;
    anyhow::ensure!(first.round == 2, "{first:?}");
    // The world moves on: the re-check's holders answer too.
    world.holders_answer(&first, &[], "recheck-answer").await?;
    let mut other = request.clone();
    other.reason = "new_information".into();
    world
        .retries_answer_first(call, request, &first, other)
        .await
}

// ---- department-integration: the monitoring platform (issue 13) ----

/// A monitoring platform's warning of the street-town.
fn monitoring_warning(warning_id: &str) -> pb::MonitoringWarning {
    pb::MonitoringWarning {
        warning_id: warning_id.into(),
        kind: "policy_not_delivered".into(),
        feed_person_id: "c4".repeat(32),
        program_code: "dibao".into(),
        street_town_code: STREET_TOWN.into(),
        detail: "approved but not paid".into(),
        raised_on: date(2026, 9, 1),
    }
}

async fn import_monitoring_warnings(world: &World, seed: u32) -> anyhow::Result<()> {
    let call = call!(world.integration, import_monitoring_warnings, world.center);
    let request = pb::ImportMonitoringWarningsRequest {
        command_id: format!("warnings-{seed}"),
        warnings: vec![monitoring_warning(&format!("retry-w-{seed}"))],
    };
    let first = call(request.clone()).await?;
    anyhow::ensure!(first.received == 1, "{first:?}");
    // The world moves on: the warning is closed.
    call!(world.integration, close_monitoring_warning, world.approver)(
        pb::CloseMonitoringWarningRequest {
            command_id: format!("warnings-closed-{seed}"),
            warning_id: format!("retry-w-{seed}"),
            outcome: "verified".into(),
            note: "paid in the next run".into(),
        },
    )
    .await?;
    let mut other = request.clone();
    other.warnings[0].kind = "complex_case".into();
    world
        .retries_answer_first(call, request, &first, other)
        .await
}

async fn close_monitoring_warning(world: &World, seed: u32) -> anyhow::Result<()> {
    let import = call!(world.integration, import_monitoring_warnings, world.center);
    import(pb::ImportMonitoringWarningsRequest {
        command_id: format!("close-warnings-{seed}"),
        warnings: vec![
            monitoring_warning(&format!("close-w-{seed}")),
            monitoring_warning(&format!("close-w2-{seed}")),
        ],
    })
    .await?;
    let call = call!(world.integration, close_monitoring_warning, world.approver);
    let request = pb::CloseMonitoringWarningRequest {
        command_id: format!("close-{seed}"),
        warning_id: format!("close-w-{seed}"),
        outcome: "rectified".into(),
        note: "paid from the next run".into(),
    };
    let first = call(request.clone()).await?;
    anyhow::ensure!(first.status == "closed", "{first:?}");
    // The world moves on: the other warning is closed too.
    call(pb::CloseMonitoringWarningRequest {
        command_id: format!("close-other-{seed}"),
        warning_id: format!("close-w2-{seed}"),
        outcome: "not_confirmed".into(),
        note: "the household was paid".into(),
    })
    .await?;
    let mut other = request.clone();
    other.outcome = "funds_recovered".into();
    world
        .retries_answer_first(call, request, &first, other)
        .await
}

// ---- department-integration: linkage notices (issue 13, slice 3) ----

/// Departments the example linkage rules send notices to (their systems' tokens are in
/// `holders`).
const NOTICE_TAKERS: &[&str] = &["education", "justice"];

async fn acknowledge_linkage_notice(world: &World, seed: u32) -> anyhow::Result<()> {
    // A dibao household with a pupil approved (as intake and review would write it): the
    // linkage watch notifies education, health and justice.
    let (_, case_id) = sunshine_tests::approvals::approved_household(
        &world.store,
        VILLAGE,
        "dibao",
        vec![
            sunshine_tests::approvals::member((1980, 1, 1), ""),
            sunshine_tests::approvals::member((2016, 1, 1 + i32::try_from(seed % 20)?), "primary"),
        ],
    )
    .await?;
    world.settle().await?;
    let notice =
        |rule: &str| sunshine_department_integration::linkage::notice_id_for(&case_id, rule);
    let call = call!(
        world.integration,
        acknowledge_linkage_notice,
        world.holders["education"]
    );
    let request = pb::AcknowledgeLinkageNoticeRequest {
        command_id: format!("ack-{seed}"),
        notice_id: notice("dibao_school_age_education"),
        outcome: "granted".into(),
    };
    let first = call(request.clone()).await?;
    anyhow::ensure!(
        first
            .notice
            .as_ref()
            .is_some_and(|notice| notice.acknowledged),
        "{first:?}"
    );
    // The world moves on: justice acknowledges its own notice of the case.
    call!(
        world.integration,
        acknowledge_linkage_notice,
        world.holders["justice"]
    )(pb::AcknowledgeLinkageNoticeRequest {
        command_id: format!("ack-justice-{seed}"),
        notice_id: notice("dibao_tekun_justice"),
        outcome: "already_receiving".into(),
    })
    .await?;
    let mut other = request.clone();
    other.outcome = "not_eligible".into();
    world
        .retries_answer_first(call, request, &first, other)
        .await
}

// ---- payment: emergency cash (急难) ----

/// An assist-first grant heard from review, paid in cash; its retry answers the same payment,
/// and the same id with another reason is refused on `command_id`.
async fn record_emergency_cash_payment(world: &World, seed: u32) -> anyhow::Result<()> {
    let case_id = uuid::Uuid::now_v7().to_string();
    let opened = pb::CaseOpened {
        case_id: case_id.clone(),
        application_id: format!("application-{case_id}"),
        household_id: format!("household-{case_id}"),
        program_code: "temporary".into(),
        workflow: "emergency_evaluation".into(),
        accepted_org_unit_code: VILLAGE.into(),
        hukou_org_unit_code: VILLAGE.into(),
        emergency: true,
        ..Default::default()
    };
    let granted = pb::AssistFirstGranted {
        case_id: case_id.clone(),
        amount: Some(pb::Money { fen: 10_000 }),
        cap: Some(pb::Money { fen: FIRST_CAP_FEN }),
        reason: "火灾".into(),
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
    world
        .store
        .append(
            &StreamId::new("review", "case", &case_id)?,
            ExpectedVersion::NoStream,
            &metadata,
            vec![
                NewEvent::typed(case_id.as_str(), &opened),
                NewEvent::typed(case_id.as_str(), &granted),
            ],
        )
        .await?;
    world.settle().await?;
    let entitlement_id: String = sqlx::query_scalar(
        "SELECT entitlement_id FROM payment_entitlements WHERE case_id = $1 \
         AND entitlement_id LIKE 'assist-first-%'",
    )
    .bind(case_id.as_str())
    .fetch_one(world.store.pool())
    .await?;
    let today = sunshine_platform::clock::SystemClock.today();
    let request = pb::RecordEmergencyCashPaymentRequest {
        command_id: format!("cash-{seed}"),
        entitlement_id,
        reason_code: "bank_unreachable".into(),
        note: "retried".into(),
        paid_on: Some(pb::Date {
            year: today.year(),
            month: i32::from(u8::from(today.month())),
            day: i32::from(today.day()),
        }),
        handed_over_by: "officer-street-1".into(),
        receipt_sha256: "ab".repeat(32),
    };
    let call = call!(world.payment, record_emergency_cash_payment, world.finance);
    let first = call(request.clone()).await?;
    let mut other = request.clone();
    other.reason_code = "immediate_need".into();
    world
        .retries_answer_first(call, request, &first, other)
        .await
}
