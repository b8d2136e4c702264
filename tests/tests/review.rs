//! The review workflow through gRPC, on PostgreSQL + NATS JetStream and on SQLite + the
//! in-process bus, with a hand-set clock: a dibao case walks from acceptance through
//! investigation, verification (answered as department-integration would), the street-town
//! opinion, publicity (an objection reopens it) to the district decision, with the policy
//! result attached; four eyes, early decisions and racing approvers are refused; an emergency
//! case pays at once within the cap; a deadline across the National Day holiday is breached
//! exactly when the working days run out.

use std::sync::Arc;
use std::time::Duration;

use prost::Message as _;
use sunshine_eventlog::{Actor, EventMetadata, EventStore, ExpectedVersion, NewEvent, StreamId};
use sunshine_platform::Role;
use sunshine_platform::clock::ManualClock;
use sunshine_proto::events::TypedEvent;
use sunshine_proto::v1 as pb;
use sunshine_proto::v1::intake_service_client::IntakeServiceClient;
use sunshine_proto::v1::review_service_client::ReviewServiceClient;
use sunshine_tests::events::is;
use sunshine_tests::households::{dibao_application, documents, family, registration};
use sunshine_tests::{
    RunningService, ScenarioBackends, TestAuth, VILLAGE, test_config, with_token,
};
use time::macros::date;
use tonic::Code;
use tonic::transport::Channel;
use tonic_health::pb::health_check_response::ServingStatus;

const PATIENCE: Duration = Duration::from_secs(30);
const STREET: &str = "990101001000";
const DISTRICT: &str = "990101000000";

struct Officers {
    clerk: String,
    second_clerk: String,
    street: String,
    approver: String,
    second_approver: String,
    investigator_as_approver: String,
}

fn officer(subject: &str, role: &str, org_unit: &str) -> pb::CaseOfficer {
    pb::CaseOfficer {
        subject: subject.into(),
        role: role.into(),
        org_unit_code: org_unit.into(),
    }
}

async fn case(
    review: &mut ReviewServiceClient<Channel>,
    token: &str,
    case_id: &str,
) -> anyhow::Result<pb::GetCaseResponse> {
    Ok(review
        .get_case(with_token(
            pb::GetCaseRequest {
                case_id: case_id.into(),
            },
            token,
        )?)
        .await?
        .into_inner())
}

/// Waits until the case exists and is at `stage`.
async fn wait_for_stage(
    review: &mut ReviewServiceClient<Channel>,
    token: &str,
    case_id: &str,
    stage: &str,
) -> anyhow::Result<pb::GetCaseResponse> {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        if let Ok(found) = case(review, token, case_id).await
            && found.stage == stage
        {
            return Ok(found);
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "case {case_id} never reached {stage}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Appends an event to another service's stream, as that service would.
async fn append_as(
    store: &EventStore,
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
    store
        .append(
            &stream,
            ExpectedVersion::NoStream,
            &metadata,
            vec![NewEvent::typed(case_id, event)],
        )
        .await?;
    Ok(())
}

/// Investigation (two visits), verification (answered by the department), opinion, publicity.
async fn walk_to_decision(
    review: &mut ReviewServiceClient<Channel>,
    store: &EventStore,
    officers: &Officers,
    case_id: &str,
    round: u32,
) -> anyhow::Result<pb::CaseCommandResponse> {
    let mut version = case(review, &officers.street, case_id).await?.version;
    if round == 0 {
        version = review
            .assign_investigators(with_token(
                pb::AssignInvestigatorsRequest {
                    command_id: format!("assign-{case_id}"),
                    case_id: case_id.into(),
                    expected_version: version,
                    investigators: vec![
                        officer("clerk-1", "village_clerk", VILLAGE),
                        officer("clerk-2", "village_clerk", VILLAGE),
                    ],
                },
                &officers.street,
            )?)
            .await?
            .into_inner()
            .version;
    }
    for (token, name) in [(&officers.clerk, "1"), (&officers.second_clerk, "2")] {
        version = review
            .record_home_visit(with_token(
                pb::RecordHomeVisitRequest {
                    command_id: format!("visit-{case_id}-{round}-{name}"),
                    case_id: case_id.into(),
                    expected_version: version,
                    visited_on: Some(pb::Date {
                        year: 2026,
                        month: 9,
                        day: 21,
                    }),
                    findings: "家中有卧床老人".into(),
                },
                token,
            )?)
            .await?
            .into_inner()
            .version;
    }
    let requested = review
        .request_verification(with_token(
            pb::RequestVerificationRequest {
                command_id: format!("verify-{case_id}-{round}"),
                case_id: case_id.into(),
                expected_version: version,
                department_codes: vec!["civil_affairs".into()],
            },
            &officers.street,
        )?)
        .await?
        .into_inner();
    assert_eq!(requested.stage, "verification");
    let answer = pb::VerificationAnswered {
        case_id: case_id.into(),
        department_code: "civil_affairs".into(),
        ..Default::default()
    };
    append_as(store, "departments-verification", case_id, &answer).await?;
    let at_opinion =
        wait_for_stage(review, &officers.street, case_id, "preliminary_opinion").await?;
    let opinion = review
        .record_opinion(with_token(
            pb::RecordOpinionRequest {
                command_id: format!("opinion-{case_id}-{round}"),
                case_id: case_id.into(),
                expected_version: at_opinion.version,
                recommend_approval: true,
                proposed_amount: None,
                opinion: "符合农村低保条件".into(),
                departure_justification: String::new(),
            },
            &officers.street,
        )?)
        .await?
        .into_inner();
    let policy = opinion
        .policy
        .clone()
        .expect("the opinion carries the policy result");
    assert!(
        policy.eligible && !policy.policy_version.is_empty() && !policy.reasons.is_empty(),
        "{policy:?}"
    );
    let publicity = review
        .start_publicity(with_token(
            pb::StartPublicityRequest {
                command_id: format!("publicity-{case_id}-{round}"),
                case_id: case_id.into(),
                expected_version: opinion.version,
            },
            &officers.street,
        )?)
        .await?
        .into_inner();
    assert_eq!(publicity.stage, "decision");
    Ok(pb::CaseCommandResponse {
        policy: Some(policy),
        ..publicity
    })
}

async fn scenario(cluster: bool) -> anyhow::Result<()> {
    let auth = TestAuth::new()?;
    let keep = ScenarioBackends::start(cluster).await?;
    let (database_url, bus_url) = (keep.database_url(), keep.bus_url());
    let clock = Arc::new(ManualClock::new(date!(2026 - 9 - 21)));
    let log_signals = sunshine_eventlog::LogSignals::new();
    let config = test_config(&auth, database_url.clone(), bus_url);
    let intake_clock = Arc::clone(&clock);
    let intake_signals = log_signals.clone();
    let intake = RunningService::start(
        sunshine_intake::SERVICE_NAME,
        keep.service_config(&config, sunshine_intake::SERVICE_NAME),
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
    let review_service = RunningService::start(
        sunshine_review::SERVICE_NAME,
        keep.service_config(&config, sunshine_review::SERVICE_NAME),
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
    intake
        .wait_for_health(ServingStatus::Serving, PATIENCE)
        .await?;
    review_service
        .wait_for_health(ServingStatus::Serving, PATIENCE)
        .await?;
    let database = sunshine_platform::backends::Database::connect(
        &sunshine_platform::config::DatabaseConfig {
            url: database_url,
            ..Default::default()
        },
    )
    .await?;
    let store = EventStore::from_database(&database).with_signals(log_signals.clone());
    let mut intake_client = IntakeServiceClient::new(intake.channel().await?);
    let mut review = ReviewServiceClient::new(review_service.channel().await?);
    let officers = Officers {
        clerk: auth.token_for("clerk-1", Role::VillageClerk, VILLAGE),
        second_clerk: auth.token_for("clerk-2", Role::VillageClerk, VILLAGE),
        street: auth.token_for("street-1", Role::StreetReviewer, STREET),
        approver: auth.token_for("approver-1", Role::CenterApprover, DISTRICT),
        second_approver: auth.token_for("approver-2", Role::CenterApprover, DISTRICT),
        investigator_as_approver: auth.token_for("clerk-2", Role::CenterApprover, DISTRICT),
    };

    // Accepted at the village on Monday 2026-09-21.
    let people = family(if cluster { 21 } else { 22 });
    let household = intake_client
        .register_household(with_token(
            registration("reg-r1", &people),
            &officers.clerk,
        )?)
        .await?
        .into_inner();
    let accepted = intake_client
        .submit_application(with_token(
            dibao_application("app-r1", &household.household_id, &household.member_ids[0]),
            &officers.clerk,
        )?)
        .await?
        .into_inner();
    let case_id = accepted.case_id.clone();
    wait_for_stage(&mut review, &officers.street, &case_id, "investigation").await?;

    // Bad input is refused with the field named, and writes nothing.
    let not_a_case = review
        .get_case(with_token(
            pb::GetCaseRequest {
                case_id: "case-1".into(),
            },
            &officers.street,
        )?)
        .await
        .expect_err("not a case id");
    assert_eq!(not_a_case.code(), Code::InvalidArgument);
    assert!(
        not_a_case.message().contains("case_id"),
        "{}",
        not_a_case.message()
    );
    let opened_version = case(&mut review, &officers.street, &case_id).await?.version;
    let undated = review
        .record_home_visit(with_token(
            pb::RecordHomeVisitRequest {
                command_id: "visit-undated".into(),
                case_id: case_id.clone(),
                expected_version: opened_version,
                visited_on: None,
                findings: String::new(),
            },
            &officers.clerk,
        )?)
        .await
        .expect_err("a visit needs its date");
    assert_eq!(undated.code(), Code::InvalidArgument);
    assert!(
        undated.message().contains("visited_on"),
        "{}",
        undated.message()
    );
    let stale = review
        .assign_investigators(with_token(
            pb::AssignInvestigatorsRequest {
                command_id: "assign-stale".into(),
                case_id: case_id.clone(),
                expected_version: opened_version + 5,
                investigators: vec![],
            },
            &officers.street,
        )?)
        .await
        .expect_err("a version the officer cannot have seen");
    assert_eq!(stale.code(), Code::Aborted);
    assert_eq!(
        case(&mut review, &officers.street, &case_id).await?.version,
        opened_version
    );

    // The whole path to the decision stage; publicity runs 2026-09-21 ..= 2026-09-27.
    walk_to_decision(&mut review, &store, &officers, &case_id, 0).await?;

    // An objection during publicity reopens the case for investigation; it must be answered.
    clock.set(date!(2026 - 9 - 24));
    let objection = pb::ObjectionReceived {
        case_id: case_id.clone(),
        objection_id: "obj-1".into(),
        received_on: Some(pb::Date {
            year: 2026,
            month: 9,
            day: 24,
        }),
        sealed_content: Vec::new(),
    };
    append_as(&store, "disclosure-objection", &case_id, &objection).await?;
    let reopened = wait_for_stage(&mut review, &officers.street, &case_id, "investigation").await?;
    assert_eq!(reopened.open_objections, ["obj-1"]);
    review
        .answer_objection(with_token(
            pb::AnswerObjectionRequest {
                command_id: "answer-obj-1".into(),
                case_id: case_id.clone(),
                expected_version: reopened.version,
                objection_id: "obj-1".into(),
                upheld: false,
                answer: "复核收入属实".into(),
            },
            &officers.street,
        )?)
        .await?;
    // The second round: publicity again from 2026-09-24 ..= 2026-09-30.
    let at_decision = walk_to_decision(&mut review, &store, &officers, &case_id, 1).await?;
    let engine_amount = at_decision
        .policy
        .as_ref()
        .and_then(|policy| policy.amount.as_ref())
        .map_or(0, |money| money.fen);
    let decide = |command: &str, version: u64| pb::DecideRequest {
        command_id: command.into(),
        case_id: case_id.clone(),
        expected_version: version,
        approve: true,
        monthly_amount: Some(pb::Money { fen: engine_amount }),
        start_month: "2026-10".into(),
        reasons: vec!["符合条件".into()],
        departure_justification: String::new(),
        care_institution_code: String::new(),
    };

    // Before the notice ends: FAILED_PRECONDITION.
    clock.set(date!(2026 - 9 - 30));
    let early = review
        .decide(with_token(
            decide("decide-early", at_decision.version),
            &officers.approver,
        )?)
        .await
        .expect_err("too early");
    assert_eq!(early.code(), Code::FailedPrecondition, "{early:?}");
    // An officer who investigated cannot approve: PERMISSION_DENIED with the reason.
    clock.set(date!(2026 - 10 - 8));
    let same_officer = review
        .decide(with_token(
            decide("decide-self", at_decision.version),
            &officers.investigator_as_approver,
        )?)
        .await
        .expect_err("four eyes");
    assert_eq!(same_officer.code(), Code::PermissionDenied);
    assert!(!same_officer.message().is_empty());
    // A care institution (集中供养) on a dibao case, or malformed: refused, nothing written.
    care_institution_refused(
        &mut review,
        &officers.approver,
        decide("decide-care", at_decision.version),
    )
    .await?;
    // Two approvers race: exactly one decision.
    let mut first_client = review.clone();
    let mut second_client = review.clone();
    let first_request = with_token(decide("decide-a", at_decision.version), &officers.approver)?;
    let second_request = with_token(
        decide("decide-b", at_decision.version),
        &officers.second_approver,
    )?;
    let (first, second) = tokio::join!(
        first_client.decide(first_request),
        second_client.decide(second_request)
    );
    let outcomes = [first, second];
    let approved: Vec<&pb::CaseCommandResponse> = outcomes
        .iter()
        .filter_map(|outcome| outcome.as_ref().ok().map(tonic::Response::get_ref))
        .collect();
    assert_eq!(approved.len(), 1, "{outcomes:?}");
    let loser = outcomes
        .iter()
        .find_map(|outcome| outcome.as_ref().err())
        .expect("one refused");
    assert_eq!(loser.code(), Code::Aborted, "{loser:?}");
    assert_eq!(approved[0].status, "approved");
    let case_file = store.read_case(&case_id).await?;
    let approval = case_file
        .iter()
        .find(|stored| is::<pb::CaseApproved>(stored))
        .expect("approved");
    let approval = pb::CaseApproved::decode(approval.payload.as_slice())?;
    let attached = approval
        .policy
        .expect("the decision carries the policy result");
    assert!(attached.eligible && !attached.policy_version.is_empty());
    assert_eq!(
        approval.monthly_amount.map(|money| money.fen),
        Some(engine_amount)
    );

    // Intake records the decision on the household stream; wait for it, so the clerk's next
    // commands on this household do not race it (a race would be ABORTED, as it should be).
    let household_stream = StreamId::new("intake", "household", &household.household_id)?;
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !store
        .read_stream(&household_stream, 1)
        .await?
        .iter()
        .any(is::<pb::ApplicationClosed>)
    {
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "intake never recorded the approval"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Approved: a re-review is scheduled; a death in the household re-evaluates the benefit
    // from the month after the date of death — recorded in November, a death of 6 October
    // takes effect from November, not December.
    let approved_file = store.read_case(&case_id).await?;
    clock.set(date!(2026 - 11 - 3));
    assert!(approved_file.iter().any(is::<pb::ReReviewScheduled>));
    // Intake may still be recording the approval on the household stream: a clerk whose
    // change is ABORTED reloads and tries again.
    let mut attempts = 0;
    loop {
        let household_now = intake_client
            .get_household(with_token(
                pb::GetHouseholdRequest {
                    household_id: household.household_id.clone(),
                    ..Default::default()
                },
                &officers.clerk,
            )?)
            .await?
            .into_inner()
            .household
            .expect("household");
        let death = pb::RecordDeathRequest {
            command_id: format!("death-1-{attempts}"),
            household_id: household.household_id.clone(),
            expected_version: household_now.version,
            member_id: household.member_ids[3].clone(),
            date_of_death: Some(pb::Date {
                year: 2026,
                month: 10,
                day: 6,
            }),
            reason: "死亡证明".into(),
        };
        match intake_client
            .record_death(with_token(death, &officers.clerk)?)
            .await
        {
            Ok(_) => break,
            Err(status) if status.code() == Code::Aborted && attempts < 20 => {
                attempts += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(status) => anyhow::bail!("recording the death failed: {status:?}"),
        }
    }
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let reassessed = loop {
        let case_file = store.read_case(&case_id).await?;
        if let Some(found) = case_file
            .iter()
            .find(|stored| is::<pb::BenefitAdjusted>(stored) || is::<pb::BenefitTerminated>(stored))
        {
            break found.clone();
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "the death never reached the benefit"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    if is::<pb::BenefitAdjusted>(&reassessed) {
        let adjusted = pb::BenefitAdjusted::decode(reassessed.payload.as_slice())?;
        assert_eq!(
            adjusted.effective_month, "2026-11",
            "from the month after the date of death"
        );
        assert!(adjusted.monthly_amount.map_or(0, |money| money.fen) != engine_amount);
    } else {
        let terminated = pb::BenefitTerminated::decode(reassessed.payload.as_slice())?;
        assert_eq!(
            (
                terminated.effective_month.as_str(),
                terminated.cause.as_str()
            ),
            ("2026-11", "member died"),
            "from the month after the date of death"
        );
    }

    // An emergency case: the street-town pays at once within the cap, never above it.
    clock.set(date!(2026 - 9 - 29));
    let mut emergency_request =
        dibao_application("app-r2", &household.household_id, &household.member_ids[1]);
    emergency_request.program_code = "temporary".into();
    emergency_request.documents = documents(&[
        "application_form",
        "identity_documents",
        "hardship_evidence",
    ]);
    let emergency = intake_client
        .submit_application(with_token(emergency_request, &officers.clerk)?)
        .await?
        .into_inner();
    let cap = emergency.assist_first_cap.map_or(0, |money| money.fen);
    let at_assist = wait_for_stage(
        &mut review,
        &officers.street,
        &emergency.case_id,
        "assist_first",
    )
    .await?;
    let grant = |command: &str, fen: i64| pb::GrantAssistFirstRequest {
        command_id: command.into(),
        case_id: emergency.case_id.clone(),
        expected_version: at_assist.version,
        amount: Some(pb::Money { fen }),
        reason: "火灾".into(),
    };
    let above = review
        .grant_assist_first(with_token(
            grant("assist-above", cap + 1),
            &officers.street,
        )?)
        .await
        .expect_err("above the cap");
    assert_eq!(above.code(), Code::InvalidArgument);
    let paid = review
        .grant_assist_first(with_token(grant("assist-ok", cap), &officers.street)?)
        .await?
        .into_inner();
    assert_eq!(paid.stage, "investigation");

    // A deadline across National Day: accepted Tuesday 2026-09-29, the investigation must start
    // within 3 working days — 09-30, then (after the 10-01..07 holiday) 10-08 and 10-09.
    let late_people = family(if cluster { 31 } else { 32 });
    let late_household = intake_client
        .register_household(with_token(
            registration("reg-r3", &late_people),
            &officers.clerk,
        )?)
        .await?
        .into_inner();
    let late = intake_client
        .submit_application(with_token(
            dibao_application(
                "app-r3",
                &late_household.household_id,
                &late_household.member_ids[0],
            ),
            &officers.clerk,
        )?)
        .await?
        .into_inner();
    wait_for_stage(
        &mut review,
        &officers.street,
        &late.case_id,
        "investigation",
    )
    .await?;
    clock.set(date!(2026 - 10 - 9));
    let overdue = review
        .list_overdue_cases(with_token(
            pb::ListOverdueCasesRequest {
                org_unit_code: STREET.into(),
                page: None,
            },
            &officers.street,
        )?)
        .await?
        .into_inner();
    assert!(
        !overdue
            .cases
            .iter()
            .any(|entry| entry.case_id == late.case_id),
        "not overdue on the last working day: {overdue:?}"
    );
    clock.set(date!(2026 - 10 - 10));
    let overdue = review
        .list_overdue_cases(with_token(
            pb::ListOverdueCasesRequest {
                org_unit_code: STREET.into(),
                page: None,
            },
            &officers.street,
        )?)
        .await?
        .into_inner();
    let entry = overdue
        .cases
        .iter()
        .find(|entry| entry.case_id == late.case_id)
        .expect("overdue the day after");
    assert_eq!(entry.deadline, "investigation_start");
    assert_eq!(
        entry.due_on,
        Some(pb::Date {
            year: 2026,
            month: 10,
            day: 9
        })
    );
    let breached = case(&mut review, &officers.street, &late.case_id).await?;
    assert_eq!(breached.breached_deadlines, ["investigation_start"]);
    // Asking again records nothing new.
    review
        .list_overdue_cases(with_token(
            pb::ListOverdueCasesRequest {
                org_unit_code: STREET.into(),
                page: None,
            },
            &officers.street,
        )?)
        .await?;
    let breaches = store
        .read_case(&late.case_id)
        .await?
        .iter()
        .filter(|stored| is::<pb::DeadlineBreached>(stored))
        .count();
    assert_eq!(breaches, 1);

    // The street-town's work queue shows the late case with its overdue deadline first.
    let queue = review
        .list_work_queue(with_token(
            pb::ListWorkQueueRequest {
                org_unit_code: STREET.into(),
                page: None,
            },
            &officers.street,
        )?)
        .await?
        .into_inner();
    let item = queue
        .items
        .iter()
        .find(|item| item.case_id == late.case_id)
        .expect("the late case is queued");
    assert_eq!(
        (item.stage.as_str(), item.next_deadline.as_str()),
        ("investigation", "investigation_start")
    );
    // The whole-case limit is extended once, with a reason; then the household withdraws.
    let late_case = case(&mut review, &officers.street, &late.case_id).await?;
    let extended = review
        .extend_deadline(with_token(
            pb::ExtendDeadlineRequest {
                command_id: "extend-1".into(),
                case_id: late.case_id.clone(),
                expected_version: late_case.version,
                reason: "核对结果未返回".into(),
            },
            &officers.street,
        )?)
        .await?
        .into_inner();
    let twice = review
        .extend_deadline(with_token(
            pb::ExtendDeadlineRequest {
                command_id: "extend-2".into(),
                case_id: late.case_id.clone(),
                expected_version: extended.version,
                reason: "again".into(),
            },
            &officers.street,
        )?)
        .await
        .expect_err("once only");
    assert_eq!(twice.code(), Code::FailedPrecondition);
    let withdrawn = review
        .withdraw(with_token(
            pb::WithdrawRequest {
                command_id: "withdraw-1".into(),
                case_id: late.case_id.clone(),
                expected_version: extended.version,
                reason: "申请人撤回".into(),
            },
            &officers.clerk,
        )?)
        .await?
        .into_inner();
    assert_eq!(withdrawn.status, "withdrawn");
    // Intake hears of both: the withdrawn household may apply again; the approved one already
    // receives dibao and may not.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let again = intake_client
            .submit_application(with_token(
                dibao_application(
                    "app-r4",
                    &late_household.household_id,
                    &late_household.member_ids[0],
                ),
                &officers.clerk,
            )?)
            .await;
        match again {
            Ok(_) => break,
            Err(status)
                if matches!(status.code(), Code::AlreadyExists | Code::Aborted)
                    && tokio::time::Instant::now() < deadline =>
            {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(status) => {
                anyhow::bail!("the withdrawn application still blocks a new one: {status:?}")
            }
        }
    }
    let mut receiving = None;
    for attempt in 0..20 {
        let refused = intake_client
            .submit_application(with_token(
                dibao_application(
                    &format!("app-r5-{attempt}"),
                    &household.household_id,
                    &household.member_ids[0],
                ),
                &officers.clerk,
            )?)
            .await
            .expect_err("already receives dibao");
        // ABORTED: intake was recording something on the household at that moment.
        if refused.code() != Code::Aborted {
            receiving = Some(refused);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let receiving = receiving.expect("an answer other than ABORTED");
    assert_eq!(receiving.code(), Code::AlreadyExists);
    assert!(
        receiving.message().contains(&case_id),
        "{}",
        receiving.message()
    );

    database.close().await;
    intake.stop().await?;
    review_service.stop().await?;
    drop(keep);
    Ok(())
}

/// The approval `decision` (of a dibao case at its decision) naming a care institution —
/// which only a 特困 case supported centrally may — or a malformed one (a wrong check
/// character, control characters, a million characters): each `INVALID_ARGUMENT` naming
/// `care_institution_code` and nothing else, the case unchanged.
async fn care_institution_refused(
    review: &mut ReviewServiceClient<Channel>,
    approver: &str,
    decision: pb::DecideRequest,
) -> anyhow::Result<()> {
    let before = case(review, approver, &decision.case_id).await?;
    let care_home = sunshine_domain::CreditCode::with_check_character("12990100MB0000001")?;
    let wrong_check = format!("{}0", &care_home.as_str()[..17]);
    for code in [
        care_home.as_str().to_owned(),
        wrong_check,
        "12990100MB00\u{0}\u{1b}0001P".to_owned(),
        "1".repeat(1_000_000),
    ] {
        let refused = review
            .decide(with_token(
                pb::DecideRequest {
                    care_institution_code: code.clone(),
                    ..decision.clone()
                },
                approver,
            )?)
            .await
            .expect_err("a care institution the decision may not name");
        assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");
        assert_eq!(
            sunshine_tests::violated_fields(&refused),
            ["care_institution_code"],
            "{refused:?}"
        );
        assert!(!refused.message().contains(&code[..code.len().min(18)]));
    }
    let after = case(review, approver, &decision.case_id).await?;
    assert_eq!(after.version, before.version);
    assert_eq!(after.status, before.status);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn review_on_postgres_and_nats() -> anyhow::Result<()> {
    scenario(true).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn review_on_sqlite_and_the_in_process_bus() -> anyhow::Result<()> {
    scenario(false).await
}
