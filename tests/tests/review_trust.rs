//! The review service against hostile and careless callers, on PostgreSQL + NATS JetStream and
//! on SQLite + the in-process bus, with the clock at 2026-12-01 (deadlines run into 2027,
//! whose holiday notice is not published):
//!
//! - every RPC refuses the wrong roles, and answers a case outside the caller's scope exactly as
//!   it answers a case that does not exist;
//! - an officer cannot act in two seats of one case; a recused official reaches nothing;
//! - oversized and control-character input, a reused command id and a page size of a million
//!   are refused naming the field, and nothing — not even a data key — is written;
//! - deadlines in 2027 are provisional, never an outage;
//! - a case follows its household to another village.

use std::sync::Arc;
use std::time::Duration;

use prost::Message as _;
use sunshine_eventlog::{Actor, EventMetadata, EventStore, ExpectedVersion, NewEvent, StreamId};
use sunshine_platform::Role;
use sunshine_platform::clock::ManualClock;
use sunshine_proto::events::Event;
use sunshine_proto::v1 as pb;
use sunshine_proto::v1::intake_service_client::IntakeServiceClient;
use sunshine_proto::v1::review_service_client::ReviewServiceClient;
use sunshine_tests::events::is;
use sunshine_tests::households::{dibao_application, family, registration};
use sunshine_tests::{
    DISTRICT, RunningService, STREET_TOWN, ScenarioBackends, TestAuth, VILLAGE, test_config,
    violated_fields, with_token,
};
use time::macros::date;
use tonic::transport::Channel;
use tonic::{Code, Status};
use tonic_health::pb::health_check_response::ServingStatus;

const PATIENCE: Duration = Duration::from_secs(30);
/// Another village, in another street-town, of the example district.
const OTHER_STREET: &str = "990101002000";
const OTHER_VILLAGE: &str = "990101002001";
/// A village of the same street-town.
const NEIGHBOUR_VILLAGE: &str = "990101001002";
/// Another district.
const OTHER_DISTRICT: &str = "990102000000";

/// The services of one scenario and what it needs to look behind them.
struct Sandbox {
    auth: TestAuth,
    clock: Arc<ManualClock>,
    review: ReviewServiceClient<Channel>,
    intake: Option<IntakeServiceClient<Channel>>,
    store: EventStore,
    database: sunshine_platform::backends::Database,
    services: Vec<RunningService>,
    _backends: ScenarioBackends,
}

impl Sandbox {
    async fn start(cluster: bool, with_intake: bool) -> anyhow::Result<Sandbox> {
        let auth = TestAuth::new()?;
        let backends = ScenarioBackends::start(cluster).await?;
        let clock = Arc::new(ManualClock::new(date!(2026 - 12 - 01)));
        let log_signals = sunshine_eventlog::LogSignals::new();
        let config = test_config(&auth, backends.database_url(), backends.bus_url());
        let mut services = Vec::new();
        if with_intake {
            let intake_clock = Arc::clone(&clock);
            let intake_signals = log_signals.clone();
            services.push(
                RunningService::start(
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
                .await?,
            );
        }
        let review_clock = Arc::clone(&clock);
        let review_signals = log_signals.clone();
        services.push(
            RunningService::start(
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
            .await?,
        );
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
        let store = EventStore::from_database(&database).with_signals(log_signals.clone());
        let review_service = services.last().expect("review runs");
        let review = ReviewServiceClient::new(review_service.channel().await?);
        let intake = match with_intake {
            true => Some(IntakeServiceClient::new(services[0].channel().await?)),
            false => None,
        };
        Ok(Sandbox {
            auth,
            clock,
            review,
            intake,
            store,
            database,
            services,
            _backends: backends,
        })
    }

    fn token(&self, subject: &str, role: Role, org_unit: &str) -> String {
        self.auth.token_for(subject, role, org_unit)
    }

    async fn stop(self) -> anyhow::Result<()> {
        self.database.close().await;
        for service in self.services.into_iter().rev() {
            service.stop().await?;
        }
        Ok(())
    }

    async fn get_case(&self, token: &str, case_id: &str) -> Result<pb::GetCaseResponse, Status> {
        let request = with_token(
            pb::GetCaseRequest {
                case_id: case_id.into(),
            },
            token,
        )
        .map_err(|error| Status::internal(error.to_string()))?;
        Ok(self.review.clone().get_case(request).await?.into_inner())
    }

    async fn wait_for_case(
        &self,
        token: &str,
        case_id: &str,
    ) -> anyhow::Result<pb::GetCaseResponse> {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            if let Ok(found) = self.get_case(token, case_id).await {
                return Ok(found);
            }
            anyhow::ensure!(
                tokio::time::Instant::now() < deadline,
                "case {case_id} never opened"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until the case's stream holds an event of type `E`; returns how many.
    async fn wait_for_event<E: Event>(&self, case_id: &str) -> anyhow::Result<usize> {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let count = self.case_events::<E>(case_id).await?;
            if count > 0 {
                return Ok(count);
            }
            anyhow::ensure!(
                tokio::time::Instant::now() < deadline,
                "case {case_id} never recorded {}",
                E::TYPE
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn case_events<E: Event>(&self, case_id: &str) -> anyhow::Result<usize> {
        let stream = StreamId::new("review", "case", case_id)?;
        Ok(self
            .store
            .read_stream(&stream, 1)
            .await?
            .iter()
            .filter(|stored| is::<E>(stored))
            .count())
    }

    async fn case_version(&self, case_id: &str) -> anyhow::Result<u64> {
        Ok(self
            .store
            .stream_version(&StreamId::new("review", "case", case_id)?)
            .await?)
    }

    async fn data_keys(&self) -> anyhow::Result<i64> {
        Ok(
            sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM data_keys")
                .fetch_one(self.store.pool())
                .await?,
        )
    }

    /// Registers a household in `village` and submits a dibao application; the case id.
    async fn accepted_case(&self, seed: u32, village: &str) -> anyhow::Result<(String, String)> {
        let mut intake = self.intake.clone().expect("intake runs");
        let clerk = self.token(&format!("clerk-{village}"), Role::VillageClerk, village);
        let people = family(seed);
        let mut request = registration(&format!("reg-{seed}"), &people);
        request.hukou_org_unit_code = village.into();
        let household = intake
            .register_household(with_token(request, &clerk)?)
            .await?
            .into_inner();
        let accepted = intake
            .submit_application(with_token(
                dibao_application(
                    &format!("app-{seed}"),
                    &household.household_id,
                    &household.member_ids[0],
                ),
                &clerk,
            )?)
            .await?
            .into_inner();
        Ok((household.household_id, accepted.case_id))
    }
}

fn officer(subject: &str, role: &str, org_unit: &str) -> pb::CaseOfficer {
    pb::CaseOfficer {
        subject: subject.into(),
        role: role.into(),
        org_unit_code: org_unit.into(),
    }
}

fn today() -> Option<pb::Date> {
    Some(pb::Date {
        year: 2026,
        month: 12,
        day: 1,
    })
}

/// Calls every RPC of the review service on `case_id` (lists: on `org_unit`) with well-formed
/// requests, and returns each outcome by RPC name.
async fn every_rpc(
    review: &ReviewServiceClient<Channel>,
    token: &str,
    case_id: &str,
    version: u64,
    org_unit: &str,
) -> anyhow::Result<Vec<(&'static str, Result<(), Status>)>> {
    every_rpc_with(review, token, case_id, version, org_unit, None).await
}

/// [`every_rpc`], every command under `command_id` when given.
async fn every_rpc_with(
    review: &ReviewServiceClient<Channel>,
    token: &str,
    case_id: &str,
    version: u64,
    org_unit: &str,
    command_id: Option<&str>,
) -> anyhow::Result<Vec<(&'static str, Result<(), Status>)>> {
    let mut review = review.clone();
    let command =
        |name: &str| command_id.map_or_else(|| format!("hostile-{name}-{case_id}"), str::to_owned);
    let mut outcomes = Vec::new();
    macro_rules! call {
        ($name:literal, $method:ident, $request:expr) => {
            outcomes.push((
                $name,
                review
                    .$method(with_token($request, token)?)
                    .await
                    .map(|_| ()),
            ));
        };
    }
    call!(
        "GetCase",
        get_case,
        pb::GetCaseRequest {
            case_id: case_id.into(),
        }
    );
    call!(
        "AssignInvestigators",
        assign_investigators,
        pb::AssignInvestigatorsRequest {
            command_id: command("assign"),
            case_id: case_id.into(),
            expected_version: version,
            investigators: vec![
                officer("inv-a", "village_clerk", VILLAGE),
                officer("inv-b", "village_clerk", VILLAGE),
            ],
        }
    );
    call!(
        "RecordHomeVisit",
        record_home_visit,
        pb::RecordHomeVisitRequest {
            command_id: command("visit"),
            case_id: case_id.into(),
            expected_version: version,
            visited_on: today(),
            findings: "家中有卧床老人".into(),
        }
    );
    call!(
        "RequestVerification",
        request_verification,
        pb::RequestVerificationRequest {
            command_id: command("verify"),
            case_id: case_id.into(),
            expected_version: version,
            department_codes: vec!["civil_affairs".into()],
        }
    );
    call!(
        "RecordOpinion",
        record_opinion,
        pb::RecordOpinionRequest {
            command_id: command("opinion"),
            case_id: case_id.into(),
            expected_version: version,
            recommend_approval: true,
            opinion: "符合条件".into(),
            ..Default::default()
        }
    );
    call!(
        "StartPublicity",
        start_publicity,
        pb::StartPublicityRequest {
            command_id: command("publicity"),
            case_id: case_id.into(),
            expected_version: version,
        }
    );
    call!(
        "AnswerObjection",
        answer_objection,
        pb::AnswerObjectionRequest {
            command_id: command("answer"),
            case_id: case_id.into(),
            expected_version: version,
            objection_id: "obj-1".into(),
            upheld: false,
            answer: "复核属实".into(),
        }
    );
    call!(
        "GrantAssistFirst",
        grant_assist_first,
        pb::GrantAssistFirstRequest {
            command_id: command("assist"),
            case_id: case_id.into(),
            expected_version: version,
            amount: Some(pb::Money { fen: 100 }),
            reason: "火灾".into(),
        }
    );
    call!(
        "Decide",
        decide,
        pb::DecideRequest {
            command_id: command("decide"),
            case_id: case_id.into(),
            expected_version: version,
            approve: true,
            monthly_amount: Some(pb::Money { fen: 100 }),
            start_month: "2027-01".into(),
            reasons: vec!["符合条件".into()],
            departure_justification: String::new(),
            care_institution_code: String::new(),
        }
    );
    call!(
        "ReturnForMaterial",
        return_for_material,
        pb::ReturnForMaterialRequest {
            command_id: command("return"),
            case_id: case_id.into(),
            expected_version: version,
            missing_materials: vec!["income_statement".into()],
            reason: "收入证明不清".into(),
        }
    );
    call!(
        "Withdraw",
        withdraw,
        pb::WithdrawRequest {
            command_id: command("withdraw"),
            case_id: case_id.into(),
            expected_version: version,
            reason: "申请人撤回".into(),
        }
    );
    call!(
        "ExtendDeadline",
        extend_deadline,
        pb::ExtendDeadlineRequest {
            command_id: command("extend"),
            case_id: case_id.into(),
            expected_version: version,
            reason: "核对未返回".into(),
        }
    );
    call!(
        "NotifyRefusal",
        notify_refusal,
        pb::NotifyRefusalRequest {
            command_id: command("notify"),
            case_id: case_id.into(),
            expected_version: version,
            channel: "in_person".into(),
        }
    );
    call!(
        "ListWorkQueue",
        list_work_queue,
        pb::ListWorkQueueRequest {
            org_unit_code: org_unit.into(),
            page: None,
        }
    );
    call!(
        "ListOverdueCases",
        list_overdue_cases,
        pb::ListOverdueCasesRequest {
            org_unit_code: org_unit.into(),
            page: None,
        }
    );
    Ok(outcomes)
}

/// `status` with `id` replaced, for comparing answers about different ids: code, message and
/// every detail.
/// Whether `role` may ever call the review command `rpc`: the roles some example workflow names
/// for its act's stage kind, or its fixed list. Any other role is refused for the role before
/// any case is looked at.
fn may_call(role: Role, rpc: &str) -> bool {
    use Role::{CenterApprover, CenterReviewer, StreetReviewer, VillageClerk};
    let roles: &[Role] = match rpc {
        "AssignInvestigators" | "RecordHomeVisit" | "Withdraw" | "NotifyRefusal" => {
            &[VillageClerk, StreetReviewer, CenterReviewer]
        }
        "RequestVerification"
        | "RecordOpinion"
        | "StartPublicity"
        | "AnswerObjection"
        | "GrantAssistFirst" => &[StreetReviewer],
        "Decide" => &[CenterApprover],
        "ReturnForMaterial" => &[StreetReviewer, CenterReviewer],
        "ExtendDeadline" => &[StreetReviewer, CenterReviewer, CenterApprover],
        _ => &[],
    };
    roles.contains(&role)
}

fn refused_for_the_role(status: &Status) -> bool {
    status.code() == Code::PermissionDenied && status.message().contains("role")
}

fn shape(status: &Status, id: &str) -> (Code, String, String) {
    use tonic_types::StatusExt as _;
    (
        status.code(),
        status.message().replace(id, "<id>"),
        format!("{:?}", status.get_error_details()).replace(id, "<id>"),
    )
}

/// Every RPC refuses the wrong roles; a case or org unit outside the caller's scope reads
/// exactly like one that does not exist; nothing is written by any of it.
async fn scope_and_roles(cluster: bool) -> anyhow::Result<()> {
    let sandbox = Sandbox::start(cluster, true).await?;
    let (_, case_id) = sandbox.accepted_case(51, VILLAGE).await?;
    let street = sandbox.token("street-1", Role::StreetReviewer, STREET_TOWN);
    let opened = sandbox.wait_for_case(&street, &case_id).await?;
    let keys_before = sandbox.data_keys().await?;
    let unknown = uuid::Uuid::now_v7().to_string();

    // Out of scope: another street's reviewer, a neighbouring village's clerk, an auditor and
    // an approver of another district. Each answer equals the answer for an unknown case.
    for (who, role, token, list_scope) in [
        (
            "other street",
            Role::StreetReviewer,
            sandbox.token("street-9", Role::StreetReviewer, OTHER_STREET),
            STREET_TOWN,
        ),
        (
            "neighbour village",
            Role::VillageClerk,
            sandbox.token("clerk-9", Role::VillageClerk, NEIGHBOUR_VILLAGE),
            VILLAGE,
        ),
        (
            "auditor elsewhere",
            Role::Auditor,
            sandbox.token("auditor-9", Role::Auditor, OTHER_DISTRICT),
            DISTRICT,
        ),
        (
            "approver elsewhere",
            Role::CenterApprover,
            sandbox.token("approver-9", Role::CenterApprover, OTHER_DISTRICT),
            DISTRICT,
        ),
    ] {
        let real = every_rpc(
            &sandbox.review,
            &token,
            &case_id,
            opened.version,
            list_scope,
        )
        .await?;
        let fake = every_rpc(
            &sandbox.review,
            &token,
            &unknown,
            opened.version,
            "990101009000",
        )
        .await?;
        for ((rpc, real), (_, fake)) in real.iter().zip(&fake) {
            let (Err(real), Err(fake)) = (real, fake) else {
                anyhow::bail!("{who}: {rpc} answered {real:?} / {fake:?}");
            };
            if rpc.starts_with("List") {
                // An org unit outside the scope reads like one that is not in the district
                // (or, for a role without the list, is refused the same way).
                assert_eq!(
                    shape(real, list_scope),
                    shape(fake, "990101009000"),
                    "{who}: {rpc}"
                );
                assert!(
                    matches!(real.code(), Code::NotFound | Code::PermissionDenied),
                    "{who}: {rpc}: {real:?}"
                );
            } else {
                // A command the role may never call (an auditor's, an approver's opinion) is
                // refused for the role before any case is looked at; the others read the case
                // as not found.
                if may_call(role, rpc) || *rpc == "GetCase" {
                    assert_eq!(real.code(), Code::NotFound, "{who}: {rpc}: {real:?}");
                } else {
                    assert!(refused_for_the_role(real), "{who}: {rpc}: {real:?}");
                }
                assert_eq!(shape(real, &case_id), shape(fake, &unknown), "{who}: {rpc}");
            }
        }
    }

    // Wrong roles: departments, finance and administrators have no review RPC at all; an
    // auditor reads but never acts.
    for (role, org_unit) in [
        (Role::Department, DISTRICT),
        (Role::FinanceOfficer, DISTRICT),
        (Role::FinanceApprover, DISTRICT),
        (Role::Admin, DISTRICT),
        (Role::Auditor, DISTRICT),
    ] {
        let token = sandbox.token("intruder", role, org_unit);
        for (rpc, outcome) in
            every_rpc(&sandbox.review, &token, &case_id, opened.version, DISTRICT).await?
        {
            let reads = matches!(rpc, "GetCase" | "ListWorkQueue" | "ListOverdueCases");
            if role == Role::Auditor && reads {
                assert!(outcome.is_ok(), "auditor {rpc}: {outcome:?}");
                continue;
            }
            let refused = outcome.expect_err(rpc);
            assert_eq!(refused.code(), Code::PermissionDenied, "{role:?} {rpc}");
            assert!(refused.message().contains("role"), "{}", refused.message());
        }
    }

    assert_eq!(sandbox.case_version(&case_id).await?, opened.version);
    assert_eq!(
        sandbox.data_keys().await?,
        keys_before,
        "no data key was made"
    );
    sandbox.stop().await
}

/// The one four-eyes rule through gRPC: the same subject cannot act in two seats of a case,
/// whichever command it tries; a retried command id with other content is refused; bad input
/// writes nothing, not even the case's data key.
async fn four_eyes_retries_and_limits(cluster: bool) -> anyhow::Result<()> {
    let sandbox = Sandbox::start(cluster, true).await?;
    let (_, case_id) = sandbox.accepted_case(53, VILLAGE).await?;
    let street = sandbox.token("street-1", Role::StreetReviewer, STREET_TOWN);
    let mut review = sandbox.review.clone();
    let opened = sandbox.wait_for_case(&street, &case_id).await?;

    let assign = pb::AssignInvestigatorsRequest {
        command_id: "assign-1".into(),
        case_id: case_id.clone(),
        expected_version: opened.version,
        investigators: vec![
            officer("inv-1", "village_clerk", VILLAGE),
            officer("inv-2", "village_clerk", VILLAGE),
        ],
    };
    let assigned = review
        .assign_investigators(with_token(assign.clone(), &street)?)
        .await?
        .into_inner();
    // A faithful retry gets the first answer and writes nothing.
    let again = review
        .assign_investigators(with_token(assign.clone(), &street)?)
        .await?
        .into_inner();
    assert_eq!(again, assigned);
    // The same command id with other content: INVALID_ARGUMENT on command_id, nothing written.
    let mut other = assign.clone();
    other.expected_version = assigned.version;
    other.investigators[1] = officer("inv-3", "village_clerk", VILLAGE);
    let reused = review
        .assign_investigators(with_token(other, &street)?)
        .await
        .expect_err("a reused command id");
    assert_eq!(reused.code(), Code::InvalidArgument, "{reused:?}");
    assert_eq!(violated_fields(&reused), ["command_id"]);
    // So is every other command the street reviewer may call under that id, before any rule of
    // the case is looked at (the others are refused for the role first).
    for (rpc, outcome) in every_rpc_with(
        &sandbox.review,
        &street,
        &case_id,
        assigned.version,
        STREET_TOWN,
        Some("assign-1"),
    )
    .await?
    {
        if matches!(rpc, "GetCase" | "ListWorkQueue" | "ListOverdueCases") {
            assert!(outcome.is_ok(), "{rpc}: {outcome:?}");
            continue;
        }
        let refused = outcome.expect_err(rpc);
        if !may_call(Role::StreetReviewer, rpc) {
            assert!(refused_for_the_role(&refused), "{rpc}: {refused:?}");
            continue;
        }
        assert_eq!(refused.code(), Code::InvalidArgument, "{rpc}: {refused:?}");
        assert_eq!(violated_fields(&refused), ["command_id"], "{rpc}");
    }
    assert_eq!(sandbox.case_version(&case_id).await?, assigned.version);

    // The subject who assigned at the street-town comes back in other seats: refused.
    for (role, org_unit) in [
        (Role::CenterReviewer, DISTRICT),
        (Role::CenterApprover, DISTRICT),
    ] {
        let same_subject = sandbox.token("street-1", role, org_unit);
        for (rpc, outcome) in every_rpc(
            &sandbox.review,
            &same_subject,
            &case_id,
            assigned.version,
            DISTRICT,
        )
        .await?
        {
            if matches!(rpc, "GetCase" | "ListWorkQueue" | "ListOverdueCases") {
                continue;
            }
            let refused = outcome.expect_err(rpc);
            // Commands of another stage say so first; every other one names the rule.
            if refused.code() == Code::PermissionDenied {
                assert!(
                    refused.message().contains("four eyes")
                        || refused.message().contains("may not"),
                    "{rpc}: {}",
                    refused.message()
                );
            } else {
                assert_eq!(
                    refused.code(),
                    Code::FailedPrecondition,
                    "{rpc}: {refused:?}"
                );
            }
        }
        let extend = review
            .extend_deadline(with_token(
                pb::ExtendDeadlineRequest {
                    command_id: format!("extend-{role:?}"),
                    case_id: case_id.clone(),
                    expected_version: assigned.version,
                    reason: "核对未返回".into(),
                },
                &same_subject,
            )?)
            .await
            .expect_err("one seat per officer");
        assert_eq!(extend.code(), Code::PermissionDenied);
        assert!(
            extend.message().contains("four eyes"),
            "{}",
            extend.message()
        );
    }
    // The clerk who accepted the application cannot come back as a street reviewer.
    let acceptor = sandbox.token(
        &format!("clerk-{VILLAGE}"),
        Role::StreetReviewer,
        STREET_TOWN,
    );
    let withdraw = review
        .withdraw(with_token(
            pb::WithdrawRequest {
                command_id: "withdraw-acceptor".into(),
                case_id: case_id.clone(),
                expected_version: assigned.version,
                reason: "申请人撤回".into(),
            },
            &acceptor,
        )?)
        .await
        .expect_err("one seat per officer");
    assert!(
        withdraw.message().contains("four eyes"),
        "{}",
        withdraw.message()
    );

    // Bad input names the field and writes nothing — not even a data key for the findings.
    let keys_before = sandbox.data_keys().await?;
    let investigator = sandbox.token("inv-1", Role::VillageClerk, VILLAGE);
    let visit = |command: &str, findings: String| pb::RecordHomeVisitRequest {
        command_id: command.into(),
        case_id: case_id.clone(),
        expected_version: assigned.version,
        visited_on: today(),
        findings,
    };
    let huge = review
        .record_home_visit(with_token(
            visit("visit-huge", "家".repeat(1024 * 1024)),
            &investigator,
        )?)
        .await
        .expect_err("3 MiB of findings");
    assert_eq!(huge.code(), Code::InvalidArgument);
    assert_eq!(violated_fields(&huge), ["findings"]);
    let bell = review
        .record_home_visit(with_token(
            visit("visit-bell", "a\u{0007}b".into()),
            &investigator,
        )?)
        .await
        .expect_err("a control character");
    assert_eq!(violated_fields(&bell), ["findings"]);
    // Refused for who is visiting: the data key is not made either (it was made first before).
    for (attempt, (who, token)) in [
        (
            "an unassigned clerk",
            sandbox.token("clerk-x", Role::VillageClerk, VILLAGE),
        ),
        (
            "a clerk of another village",
            sandbox.token("clerk-y", Role::VillageClerk, NEIGHBOUR_VILLAGE),
        ),
        (
            "an auditor",
            sandbox.token("auditor-1", Role::Auditor, DISTRICT),
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let refused = review
            .record_home_visit(with_token(
                visit(&format!("visit-refused-{attempt}"), "家中有卧床老人".into()),
                &token,
            )?)
            .await
            .expect_err(who);
        assert!(
            matches!(refused.code(), Code::PermissionDenied | Code::NotFound),
            "{who}: {refused:?}"
        );
    }
    let spoofed = review
        .assign_investigators(with_token(
            pb::AssignInvestigatorsRequest {
                command_id: "assign-spoofed".into(),
                case_id: case_id.clone(),
                expected_version: assigned.version,
                investigators: vec![
                    officer("inv-1\u{202E}", "village_clerk", VILLAGE),
                    officer("inv-\u{200B}2", "village_clerk", VILLAGE),
                ],
            },
            &street,
        )?)
        .await
        .expect_err("invisible characters in a name");
    assert_eq!(
        violated_fields(&spoofed),
        ["investigators[0].subject", "investigators[1].subject"]
    );
    let long_reason = review
        .extend_deadline(with_token(
            pb::ExtendDeadlineRequest {
                command_id: "extend-long".into(),
                case_id: case_id.clone(),
                expected_version: assigned.version,
                reason: "长".repeat(10_000),
            },
            &street,
        )?)
        .await
        .expect_err("an oversized reason");
    assert_eq!(violated_fields(&long_reason), ["reason"]);
    assert_eq!(sandbox.data_keys().await?, keys_before);
    assert_eq!(sandbox.case_version(&case_id).await?, assigned.version);

    // The investigator's own visit seals the findings: now, and only now, the key exists.
    review
        .record_home_visit(with_token(
            visit("visit-1", "家中有卧床老人".into()),
            &investigator,
        )?)
        .await?;
    assert_eq!(sandbox.data_keys().await?, keys_before + 1);
    sandbox.stop().await
}

/// Deadlines that run into 2027 (no published holiday notice) are provisional, in the answers
/// and in the recorded breach; no request fails for them. Lists are paginated.
async fn provisional_deadlines_and_pages(cluster: bool) -> anyhow::Result<()> {
    let sandbox = Sandbox::start(cluster, true).await?;
    let (_, first) = sandbox.accepted_case(55, VILLAGE).await?;
    let (_, second) = sandbox.accepted_case(56, VILLAGE).await?;
    let street = sandbox.token("street-1", Role::StreetReviewer, STREET_TOWN);
    let mut review = sandbox.review.clone();
    let opened = sandbox.wait_for_case(&street, &first).await?;
    sandbox.wait_for_case(&street, &second).await?;

    // Accepted today, 2026-12-01: the queue answers (it was INTERNAL "does not cover 2027").
    let queue = |page_size: i32, page_token: String| pb::ListWorkQueueRequest {
        org_unit_code: STREET_TOWN.into(),
        page: Some(pb::PageRequest {
            page_size,
            page_token,
        }),
    };
    let listed = review
        .list_work_queue(with_token(queue(0, String::new()), &street)?)
        .await?
        .into_inner();
    assert_eq!(listed.items.len(), 2, "{listed:?}");
    // The investigation must start by 2026-12-04: exact.
    let item = listed
        .items
        .iter()
        .find(|item| item.case_id == first)
        .expect("queued");
    assert_eq!(item.next_deadline, "investigation_start");
    assert!(!item.provisional);
    // Once investigators are named, the nearest deadline is the review's, in 2027.
    review
        .assign_investigators(with_token(
            pb::AssignInvestigatorsRequest {
                command_id: "assign-first".into(),
                case_id: first.clone(),
                expected_version: opened.version,
                investigators: vec![
                    officer("inv-1", "village_clerk", VILLAGE),
                    officer("inv-2", "village_clerk", VILLAGE),
                ],
            },
            &street,
        )?)
        .await?;
    let listed = review
        .list_work_queue(with_token(queue(0, String::new()), &street)?)
        .await?
        .into_inner();
    let item = listed
        .items
        .iter()
        .find(|item| item.case_id == first)
        .expect("queued");
    assert_eq!(item.next_deadline, "review");
    assert_eq!(
        item.due_on,
        Some(pb::Date {
            year: 2027,
            month: 1,
            day: 12
        })
    );
    assert!(item.provisional, "2027 has no published holiday notice");

    // One page at a time, each case once.
    let page_one = review
        .list_work_queue(with_token(queue(1, String::new()), &street)?)
        .await?
        .into_inner();
    let token = page_one.page.clone().unwrap_or_default().next_page_token;
    assert!(!token.is_empty());
    let page_two = review
        .list_work_queue(with_token(queue(1, token), &street)?)
        .await?
        .into_inner();
    assert_eq!(
        page_two.page.unwrap_or_default().next_page_token,
        "",
        "two cases, two pages"
    );
    let mut seen: Vec<String> = page_one
        .items
        .iter()
        .chain(&page_two.items)
        .map(|item| item.case_id.clone())
        .collect();
    seen.sort();
    let mut expected = vec![first.clone(), second.clone()];
    expected.sort();
    assert_eq!(seen, expected);
    // A page size of a million and a forged token are refused, naming the field.
    let million = review
        .list_work_queue(with_token(queue(1_000_000, String::new()), &street)?)
        .await
        .expect_err("page size of a million");
    assert_eq!(million.code(), Code::InvalidArgument);
    assert_eq!(violated_fields(&million), ["page.page_size"]);
    let forged = review
        .list_work_queue(with_token(queue(10, "' OR 1=1 --".into()), &street)?)
        .await
        .expect_err("a forged token");
    assert_eq!(violated_fields(&forged), ["page.page_token"]);
    let overdue_million = review
        .list_overdue_cases(with_token(
            pb::ListOverdueCasesRequest {
                org_unit_code: STREET_TOWN.into(),
                page: Some(pb::PageRequest {
                    page_size: 1_000_000,
                    page_token: String::new(),
                }),
            },
            &street,
        )?)
        .await
        .expect_err("page size of a million");
    assert_eq!(violated_fields(&overdue_million), ["page.page_size"]);

    // 2027-01-13: the provisional review deadline has passed; the breach says it was
    // provisional, and so does the answer.
    sandbox.clock.set(date!(2027 - 01 - 13));
    let overdue = review
        .list_overdue_cases(with_token(
            pb::ListOverdueCasesRequest {
                org_unit_code: STREET_TOWN.into(),
                page: None,
            },
            &street,
        )?)
        .await?
        .into_inner();
    let entry = overdue
        .cases
        .iter()
        .find(|entry| entry.case_id == first && entry.deadline == "review")
        .expect("the review deadline passed");
    assert!(entry.provisional);
    let stream = StreamId::new("review", "case", &first)?;
    let breach = sandbox
        .store
        .read_stream(&stream, 1)
        .await?
        .into_iter()
        .find(is::<pb::DeadlineBreached>)
        .expect("recorded");
    let breach = pb::DeadlineBreached::decode(breach.payload.as_slice())?;
    assert!(
        breach.provisional && breach.deadline == "review",
        "{breach:?}"
    );
    let found = sandbox.get_case(&street, &first).await?;
    assert_eq!(found.breached_deadlines, ["review"]);
    sandbox.stop().await
}

/// Appends events to a stream of another service in one append, as that service would.
async fn append_as(
    store: &EventStore,
    stream: &StreamId,
    events: Vec<NewEvent>,
) -> anyhow::Result<()> {
    let metadata = EventMetadata {
        actor: Actor {
            subject: "clerk-1".into(),
            role: "village_clerk".into(),
            org_unit: VILLAGE.into(),
            department_code: None,
        },
        ..EventMetadata::default()
    };
    store
        .append(stream, ExpectedVersion::Any, &metadata, events)
        .await?;
    Ok(())
}

/// Intake flags a cadre's relative: the cadre is recused from the case — reading included —
/// from the moment it opens, and an official flagged later is recused by an event. The
/// relative's home visit is made only by the workflow's district role.
async fn recusal(cluster: bool) -> anyhow::Result<()> {
    let sandbox = Sandbox::start(cluster, false).await?;
    let case_id = uuid::Uuid::now_v7().to_string();
    let household_id = uuid::Uuid::now_v7().to_string();
    let household = StreamId::new("intake", "household", &household_id)?;
    let submitted = pb::ApplicationSubmitted {
        application_id: uuid::Uuid::now_v7().to_string(),
        case_id: case_id.clone(),
        household_id: household_id.clone(),
        program_code: "dibao_rural".into(),
        accepted_org_unit_code: VILLAGE.into(),
        route: pb::Route::Review as i32,
        hukou_org_unit_code: VILLAGE.into(),
        relative_of_official: true,
        review_workflow: "means_tested_review".into(),
        accepted_on: today(),
        ..Default::default()
    };
    let flag = |subject: &str| pb::RelativeOfOfficialFlagged {
        application_id: submitted.application_id.clone(),
        case_id: case_id.clone(),
        household_id: household_id.clone(),
        relation: "spouse".into(),
        registration_id: format!("reg-{subject}"),
        official_subject: subject.into(),
        ..Default::default()
    };
    // As intake appends them: the application and its flags in one append.
    append_as(
        &sandbox.store,
        &household,
        vec![
            NewEvent::typed(&case_id, &submitted),
            NewEvent::typed(&case_id, &flag("cadre-1")),
        ],
    )
    .await?;
    let street = sandbox.token("street-1", Role::StreetReviewer, STREET_TOWN);
    let opened = sandbox.wait_for_case(&street, &case_id).await?;
    assert!(opened.relative_of_official);

    // The cadre, in any seat, reaches nothing of the case: every command and the read.
    for (role, org_unit) in [
        (Role::StreetReviewer, STREET_TOWN),
        (Role::CenterReviewer, DISTRICT),
        (Role::CenterApprover, DISTRICT),
    ] {
        let cadre = sandbox.token("cadre-1", role, org_unit);
        for (rpc, outcome) in
            every_rpc(&sandbox.review, &cadre, &case_id, opened.version, org_unit).await?
        {
            if rpc.starts_with("List") {
                let listed = outcome.is_ok();
                assert!(listed, "{rpc}: {outcome:?}");
                continue;
            }
            let refused = outcome.expect_err(rpc);
            assert_eq!(refused.code(), Code::PermissionDenied, "{rpc}: {refused:?}");
            // A command of another role's is refused for the role first; every other one
            // names the recusal.
            if rpc != "GetCase" && !may_call(role, rpc) {
                assert!(refused_for_the_role(&refused), "{rpc}: {refused:?}");
                continue;
            }
            assert!(
                refused.message().contains("recusal"),
                "{}",
                refused.message()
            );
        }
        let queue = sandbox
            .review
            .clone()
            .list_work_queue(with_token(
                pb::ListWorkQueueRequest {
                    org_unit_code: String::new(),
                    page: None,
                },
                &cadre,
            )?)
            .await?
            .into_inner();
        assert!(
            !queue.items.iter().any(|item| item.case_id == case_id),
            "not on the cadre's queue"
        );
    }
    // Nobody may name the cadre as an investigator either.
    let mut review = sandbox.review.clone();
    let named = review
        .assign_investigators(with_token(
            pb::AssignInvestigatorsRequest {
                command_id: "assign-cadre".into(),
                case_id: case_id.clone(),
                expected_version: opened.version,
                investigators: vec![
                    officer("inv-1", "village_clerk", VILLAGE),
                    officer("cadre-1", "village_clerk", VILLAGE),
                ],
            },
            &street,
        )?)
        .await
        .expect_err("a recused investigator");
    assert!(named.message().contains("recusal"), "{}", named.message());

    // A relation flagged after the case opened recuses that official too.
    append_as(
        &sandbox.store,
        &household,
        vec![NewEvent::typed(&case_id, &flag("cadre-2"))],
    )
    .await?;
    sandbox
        .wait_for_event::<pb::OfficialRecused>(&case_id)
        .await?;
    let cadre_2 = sandbox.token("cadre-2", Role::StreetReviewer, STREET_TOWN);
    let refused = sandbox
        .get_case(&cadre_2, &case_id)
        .await
        .expect_err("recused later");
    assert_eq!(refused.code(), Code::PermissionDenied);

    // The relative's extra visit: not any district token, only the workflow's role.
    let version = sandbox.get_case(&street, &case_id).await?.version;
    let assigned = review
        .assign_investigators(with_token(
            pb::AssignInvestigatorsRequest {
                command_id: "assign-1".into(),
                case_id: case_id.clone(),
                expected_version: version,
                investigators: vec![
                    officer("inv-1", "village_clerk", VILLAGE),
                    officer("inv-2", "village_clerk", VILLAGE),
                ],
            },
            &street,
        )?)
        .await?
        .into_inner();
    let district_visit = |command: &str| pb::RecordHomeVisitRequest {
        command_id: command.into(),
        case_id: case_id.clone(),
        expected_version: assigned.version,
        visited_on: today(),
        findings: String::new(),
    };
    let approver = sandbox.token("district-9", Role::CenterApprover, DISTRICT);
    let refused = review
        .record_home_visit(with_token(
            district_visit("district-visit-approver"),
            &approver,
        )?)
        .await
        .expect_err("not the workflow's role");
    assert_eq!(refused.code(), Code::PermissionDenied);
    assert!(
        refused.message().contains("may not"),
        "{}",
        refused.message()
    );
    let reviewer = sandbox.token("center-reviewer-1", Role::CenterReviewer, DISTRICT);
    review
        .record_home_visit(with_token(district_visit("district-visit"), &reviewer)?)
        .await?;
    sandbox.stop().await
}

/// The household moves to a village of another street-town: its open case follows it, once;
/// the old village and street-town no longer see it (as if it did not exist), the new ones do.
async fn household_moves(cluster: bool) -> anyhow::Result<()> {
    let sandbox = Sandbox::start(cluster, true).await?;
    let (household_id, case_id) = sandbox.accepted_case(57, VILLAGE).await?;
    let old_street = sandbox.token("street-1", Role::StreetReviewer, STREET_TOWN);
    let old_clerk = sandbox.token(&format!("clerk-{VILLAGE}"), Role::VillageClerk, VILLAGE);
    let new_street = sandbox.token("street-2", Role::StreetReviewer, OTHER_STREET);
    sandbox.wait_for_case(&old_street, &case_id).await?;
    let mut intake = sandbox.intake.clone().expect("intake runs");
    let mut attempts = 0;
    loop {
        let household = intake
            .get_household(with_token(
                pb::GetHouseholdRequest {
                    household_id: household_id.clone(),
                    ..Default::default()
                },
                &old_clerk,
            )?)
            .await?
            .into_inner()
            .household
            .expect("household");
        let moved = intake
            .record_move(with_token(
                pb::RecordMoveRequest {
                    command_id: format!("move-{attempts}"),
                    household_id: household_id.clone(),
                    expected_version: household.version,
                    new_hukou_org_unit_code: OTHER_VILLAGE.into(),
                    new_address: "新村1号".into(),
                    reason: "户口迁移".into(),
                },
                &old_clerk,
            )?)
            .await;
        match moved {
            Ok(_) => break,
            Err(status) if status.code() == Code::Aborted && attempts < 20 => {
                attempts += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(status) => anyhow::bail!("the move failed: {status:?}"),
        }
    }
    sandbox
        .wait_for_event::<pb::CaseFollowedHousehold>(&case_id)
        .await?;
    let unknown = uuid::Uuid::now_v7().to_string();
    for token in [&old_street, &old_clerk] {
        let gone = sandbox
            .get_case(token, &case_id)
            .await
            .expect_err("out of the old scope");
        let never = sandbox
            .get_case(token, &unknown)
            .await
            .expect_err("unknown");
        assert_eq!(shape(&gone, &case_id), shape(&never, &unknown));
    }
    assert!(sandbox.get_case(&new_street, &case_id).await.is_ok());
    let queue_of = |token: String| {
        let mut review = sandbox.review.clone();
        async move {
            anyhow::Ok(
                review
                    .list_work_queue(with_token(
                        pb::ListWorkQueueRequest {
                            org_unit_code: String::new(),
                            page: None,
                        },
                        &token,
                    )?)
                    .await?
                    .into_inner()
                    .items
                    .into_iter()
                    .map(|item| item.case_id)
                    .collect::<Vec<_>>(),
            )
        }
    };
    assert!(!queue_of(old_street.clone()).await?.contains(&case_id));
    assert!(queue_of(new_street.clone()).await?.contains(&case_id));
    assert_eq!(
        sandbox
            .case_events::<pb::CaseFollowedHousehold>(&case_id)
            .await?,
        1
    );
    sandbox.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_scope_reads_as_not_found_and_wrong_roles_are_refused_on_postgres_and_nats()
-> anyhow::Result<()> {
    scope_and_roles(true).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_scope_reads_as_not_found_and_wrong_roles_are_refused_on_sqlite()
-> anyhow::Result<()> {
    scope_and_roles(false).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_eyes_retries_and_input_limits_on_postgres_and_nats() -> anyhow::Result<()> {
    four_eyes_retries_and_limits(true).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_eyes_retries_and_input_limits_on_sqlite() -> anyhow::Result<()> {
    four_eyes_retries_and_limits(false).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deadlines_into_2027_are_provisional_and_lists_paginate_on_postgres_and_nats()
-> anyhow::Result<()> {
    provisional_deadlines_and_pages(true).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deadlines_into_2027_are_provisional_and_lists_paginate_on_sqlite() -> anyhow::Result<()> {
    provisional_deadlines_and_pages(false).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recused_official_reaches_nothing_of_the_case_on_postgres_and_nats() -> anyhow::Result<()>
{
    recusal(true).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recused_official_reaches_nothing_of_the_case_on_sqlite() -> anyhow::Result<()> {
    recusal(false).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_case_follows_its_household_to_another_village_on_postgres_and_nats() -> anyhow::Result<()>
{
    household_moves(true).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_case_follows_its_household_to_another_village_on_sqlite() -> anyhow::Result<()> {
    household_moves(false).await
}
