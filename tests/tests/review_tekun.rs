//! The 特困 procedure through gRPC (issue 20 item 11), on PostgreSQL + NATS JetStream and on
//! SQLite + the in-process bus, with a hand-set clock: three 特困 applications open cases of
//! the `extreme_poverty_review` workflow with the street-town's own deadline; once publicised
//! and received by the district, none is decided before the district's home-visit sample is
//! drawn; the draw (hostile requests refused first, nothing written) takes ⌈30% × 3⌉ = 1 case,
//! an auditor recomputes it from the log, a retry answers the same and another draw finds
//! nothing left; the sampled case is decided only after the district's visit, and not by its
//! visitor; an unsampled one without a visit; the district's 15 working days are breached by
//! the case left undecided, under the 特困 deadline names only.

use std::sync::Arc;
use std::time::Duration;

use prost::Message as _;
use sha2::{Digest, Sha256};
use sunshine_eventlog::{Actor, EventMetadata, EventStore, ExpectedVersion, NewEvent, StreamId};
use sunshine_platform::Role;
use sunshine_platform::clock::ManualClock;
use sunshine_proto::events::TypedEvent;
use sunshine_proto::v1 as pb;
use sunshine_proto::v1::intake_service_client::IntakeServiceClient;
use sunshine_proto::v1::review_service_client::ReviewServiceClient;
use sunshine_tests::events::is;
use sunshine_tests::households::{date, documents, family, registration};
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

fn officer(subject: &str, role: &str, org_unit: &str) -> pb::CaseOfficer {
    pb::CaseOfficer {
        subject: subject.into(),
        role: role.into(),
        org_unit_code: org_unit.into(),
    }
}

fn tekun_application(
    command_id: &str,
    household_id: &str,
    applicant: &str,
) -> pb::SubmitApplicationRequest {
    pb::SubmitApplicationRequest {
        command_id: command_id.into(),
        household_id: household_id.into(),
        applicant_member_id: applicant.into(),
        program_code: "tekun".into(),
        channel: pb::ApplicationChannel::InPerson as i32,
        declared_facts: [("illness".to_owned(), "长期卧床".to_owned())].into(),
        consent_to_verification: true,
        notify_and_pledge_accepted: true,
        documents: documents(&[
            "application_form",
            "household_register",
            "identity_documents",
            "verification_authorisation",
        ]),
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

struct Tokens {
    clerk: String,
    second_clerk: String,
    street: String,
    center: String,
    street_center: String,
    approver: String,
    center_as_approver: String,
}

/// The street-town's part: investigation (two visits), verification (answered as
/// department-integration would), the opinion (with a justification, whatever the engine
/// finds of the test household) and the 7-day notice from today.
async fn walk_to_decision(
    review: &mut ReviewServiceClient<Channel>,
    store: &EventStore,
    tokens: &Tokens,
    case_id: &str,
) -> anyhow::Result<u64> {
    let mut version = case(review, &tokens.street, case_id).await?.version;
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
            &tokens.street,
        )?)
        .await?
        .into_inner()
        .version;
    for (token, name) in [(&tokens.clerk, "1"), (&tokens.second_clerk, "2")] {
        version = review
            .record_home_visit(with_token(
                pb::RecordHomeVisitRequest {
                    command_id: format!("visit-{case_id}-{name}"),
                    case_id: case_id.into(),
                    expected_version: version,
                    visited_on: date(2026, 9, 21),
                    findings: String::new(),
                },
                token,
            )?)
            .await?
            .into_inner()
            .version;
    }
    review
        .request_verification(with_token(
            pb::RequestVerificationRequest {
                command_id: format!("verify-{case_id}"),
                case_id: case_id.into(),
                expected_version: version,
                department_codes: vec!["civil_affairs".into()],
            },
            &tokens.street,
        )?)
        .await?;
    let answer = pb::VerificationAnswered {
        case_id: case_id.into(),
        department_code: "civil_affairs".into(),
        ..Default::default()
    };
    append_as(store, "departments-verification", case_id, &answer).await?;
    let at_opinion = wait_for_stage(review, &tokens.street, case_id, "preliminary_opinion").await?;
    let opinion = review
        .record_opinion(with_token(
            pb::RecordOpinionRequest {
                command_id: format!("opinion-{case_id}"),
                case_id: case_id.into(),
                expected_version: at_opinion.version,
                recommend_approval: true,
                proposed_amount: None,
                opinion: "符合特困人员认定条件".into(),
                departure_justification: "街道入户核实：无劳动能力、无生活来源".into(),
            },
            &tokens.street,
        )?)
        .await?
        .into_inner();
    let publicity = review
        .start_publicity(with_token(
            pb::StartPublicityRequest {
                command_id: format!("publicity-{case_id}"),
                case_id: case_id.into(),
                expected_version: opinion.version,
            },
            &tokens.street,
        )?)
        .await?
        .into_inner();
    assert_eq!(publicity.stage, "decision");
    Ok(publicity.version)
}

fn decide(case_id: &str, command_id: &str, version: u64) -> pb::DecideRequest {
    pb::DecideRequest {
        command_id: command_id.into(),
        case_id: case_id.into(),
        expected_version: version,
        approve: true,
        monthly_amount: Some(pb::Money { fen: 137_000 }),
        start_month: "2026-11".into(),
        reasons: vec!["符合条件".into()],
        departure_justification: "区入户核实属实".into(),
        // Dispersed support (分散供养): paid to the household.
        care_institution_code: String::new(),
    }
}

fn draw(
    command_id: &str,
    from: (i32, i32, i32),
    to: (i32, i32, i32),
) -> pb::DrawHomeVisitSampleRequest {
    pb::DrawHomeVisitSampleRequest {
        command_id: command_id.into(),
        org_unit_code: String::new(),
        received_from: date(from.0, from.1, from.2),
        received_to: date(to.0, to.1, to.2),
    }
}

/// The auditor's recomputation, from the recorded inputs only (docs/review-procedure.md).
fn recompute(record: &pb::HomeVisitSampleDrawn) -> (String, Vec<String>) {
    let seed = Sha256::digest(record.received_case_ids.join("\n").as_bytes());
    let seed_hex: String = seed.iter().map(|byte| format!("{byte:02x}")).collect();
    let mut ranked: Vec<(Vec<u8>, String)> = record
        .received_case_ids
        .iter()
        .map(|id| {
            let mut hasher = Sha256::new();
            hasher.update(seed);
            hasher.update(id.as_bytes());
            (hasher.finalize().to_vec(), id.clone())
        })
        .collect();
    ranked.sort();
    // ⌈share × received⌉, in whole numbers.
    let received = i64::try_from(record.received_case_ids.len()).unwrap_or(0);
    let size =
        usize::try_from((received * record.share_basis_points + 9_999) / 10_000).unwrap_or(0);
    let mut sampled: Vec<String> = ranked.into_iter().take(size).map(|(_, id)| id).collect();
    sampled.sort();
    (seed_hex, sampled)
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
    let tokens = Tokens {
        clerk: auth.token_for("clerk-1", Role::VillageClerk, VILLAGE),
        second_clerk: auth.token_for("clerk-2", Role::VillageClerk, VILLAGE),
        street: auth.token_for("street-1", Role::StreetReviewer, STREET),
        center: auth.token_for("county-reviewer", Role::CenterReviewer, DISTRICT),
        street_center: auth.token_for("street-center", Role::CenterReviewer, STREET),
        approver: auth.token_for("approver-1", Role::CenterApprover, DISTRICT),
        center_as_approver: auth.token_for("county-reviewer", Role::CenterApprover, DISTRICT),
    };

    // Three 特困 applications accepted on Monday 2026-09-21.
    let mut case_ids = Vec::new();
    for index in 0..3u32 {
        let people = family(if cluster { 40 + index } else { 50 + index });
        let household = intake_client
            .register_household(with_token(
                registration(&format!("reg-t{index}"), &people),
                &tokens.clerk,
            )?)
            .await?
            .into_inner();
        let accepted = intake_client
            .submit_application(with_token(
                tekun_application(
                    &format!("app-t{index}"),
                    &household.household_id,
                    &household.member_ids[0],
                ),
                &tokens.clerk,
            )?)
            .await?
            .into_inner();
        let opened = wait_for_stage(
            &mut review,
            &tokens.street,
            &accepted.case_id,
            "investigation",
        )
        .await?;
        // Chosen by the program: the 特困 workflow, not the dibao review.
        assert_eq!(opened.workflow, "extreme_poverty_review");
        case_ids.push(accepted.case_id);
    }
    // The street-town's own deadline; none of the dibao review's.
    let queue = review
        .list_work_queue(with_token(
            pb::ListWorkQueueRequest {
                org_unit_code: VILLAGE.into(),
                page: None,
            },
            &tokens.street,
        )?)
        .await?
        .into_inner();
    assert_eq!(queue.items.len(), 3);
    assert!(
        queue
            .items
            .iter()
            .all(|item| item.next_deadline == "street_town_review"),
        "{:?}",
        queue.items
    );

    // The street-town's part; the notices run 2026-09-21 ..= 2026-09-27, so the district
    // receives the cases on 2026-09-28.
    let mut versions = Vec::new();
    for case_id in &case_ids {
        versions.push(walk_to_decision(&mut review, &store, &tokens, case_id).await?);
    }
    clock.set(date!(2026 - 9 - 28));

    // No decision before the district's sample is drawn.
    let undrawn = review
        .decide(with_token(
            decide(&case_ids[0], "decide-undrawn", versions[0]),
            &tokens.approver,
        )?)
        .await
        .expect_err("no sample drawn");
    assert_eq!(undrawn.code(), Code::FailedPrecondition);
    assert!(
        undrawn.message().contains("DrawHomeVisitSample"),
        "{}",
        undrawn.message()
    );

    // Hostile draws: refused, nothing written.
    let period = ((2026, 9, 28), (2026, 9, 28));
    // A role the sample's rule does not name; a role away from its tier (the token is refused).
    for (token, what, code) in [
        (&tokens.street, "a street reviewer", Code::PermissionDenied),
        (&tokens.approver, "the approver", Code::PermissionDenied),
        (
            &tokens.street_center,
            "a center reviewer sitting at a street",
            Code::Unauthenticated,
        ),
    ] {
        let refused = review
            .draw_home_visit_sample(with_token(draw("draw-hostile", period.0, period.1), token)?)
            .await
            .expect_err(what);
        assert_eq!(refused.code(), code, "{what}: {refused:?}");
    }
    let other_district = review
        .draw_home_visit_sample(with_token(
            pb::DrawHomeVisitSampleRequest {
                org_unit_code: "990102000000".into(),
                ..draw("draw-elsewhere", period.0, period.1)
            },
            &tokens.center,
        )?)
        .await
        .expect_err("another district");
    assert_eq!(other_district.code(), Code::NotFound);
    for (request, field) in [
        (draw(&"x".repeat(101), period.0, period.1), "command_id"),
        (draw("draw\u{7}bell", period.0, period.1), "command_id"),
        (
            pb::DrawHomeVisitSampleRequest {
                org_unit_code: "99010100000\u{0}".into(),
                ..draw("draw-nul", period.0, period.1)
            },
            "org_unit_code",
        ),
        (
            draw("draw-backwards", (2026, 9, 28), (2026, 9, 1)),
            "received_to",
        ),
        // A million days is no period.
        (
            draw("draw-million", (2026, 9, 28), (4764, 8, 28)),
            "received_to",
        ),
        (
            pb::DrawHomeVisitSampleRequest {
                received_from: None,
                ..draw("draw-undated", period.0, period.1)
            },
            "received_from",
        ),
    ] {
        let refused = review
            .draw_home_visit_sample(with_token(request, &tokens.center)?)
            .await
            .expect_err(field);
        assert_eq!(
            refused.code(),
            Code::InvalidArgument,
            "{field}: {refused:?}"
        );
        assert!(refused.message().contains(field), "{}", refused.message());
    }
    let nothing = review
        .draw_home_visit_sample(with_token(
            draw("draw-empty", (2026, 9, 1), (2026, 9, 27)),
            &tokens.center,
        )?)
        .await
        .expect_err("nothing received in the period");
    assert_eq!(nothing.code(), Code::FailedPrecondition);
    for case_id in &case_ids {
        assert_eq!(
            case(&mut review, &tokens.center, case_id).await?.version,
            versions[case_ids.iter().position(|id| id == case_id).unwrap_or(0)]
        );
    }

    // The draw: ⌈30% × 3⌉ = 1 case, recomputed by the auditor from the record.
    let drawn = review
        .draw_home_visit_sample(with_token(
            draw("draw-2026-09-28", period.0, period.1),
            &tokens.center,
        )?)
        .await?
        .into_inner()
        .sample
        .expect("the draw");
    let mut sorted = case_ids.clone();
    sorted.sort();
    assert_eq!(drawn.received_case_ids, sorted);
    assert_eq!(
        (
            drawn.share_basis_points,
            drawn.sample_size,
            drawn.sampled_case_ids.len()
        ),
        (3_000, 1, 1)
    );
    assert_eq!(drawn.algorithm, "sha256-rank-v1");
    assert_eq!(
        recompute(&drawn),
        (drawn.seed_sha256.clone(), drawn.sampled_case_ids.clone())
    );
    // A retry answers the same; the same id with other content is refused; a second draw over
    // the period finds nothing left.
    let retried = review
        .draw_home_visit_sample(with_token(
            draw("draw-2026-09-28", period.0, period.1),
            &tokens.center,
        )?)
        .await?
        .into_inner()
        .sample;
    assert_eq!(retried.as_ref(), Some(&drawn));
    let reused = review
        .draw_home_visit_sample(with_token(
            draw("draw-2026-09-28", (2026, 9, 27), period.1),
            &tokens.center,
        )?)
        .await
        .expect_err("the same id, other content");
    assert_eq!(reused.code(), Code::InvalidArgument);
    assert!(
        reused.message().contains("command_id"),
        "{}",
        reused.message()
    );
    let again = review
        .draw_home_visit_sample(with_token(
            draw("draw-again", period.0, period.1),
            &tokens.center,
        )?)
        .await
        .expect_err("every case received is in a sample");
    assert_eq!(again.code(), Code::FailedPrecondition);

    // Every case's log holds the same record (but its case id).
    for case_id in &case_ids {
        let stream = StreamId::new("review", "case", case_id)?;
        let recorded = store.read_stream(&stream, 1).await?;
        let copies: Vec<pb::HomeVisitSampleDrawn> = recorded
            .iter()
            .filter(|stored| is::<pb::HomeVisitSampleDrawn>(stored))
            .map(|stored| pb::HomeVisitSampleDrawn::decode(stored.payload.as_slice()))
            .collect::<Result<_, _>>()?;
        assert_eq!(copies.len(), 1, "{case_id}");
        assert_eq!(
            pb::HomeVisitSampleDrawn {
                case_id: String::new(),
                ..copies[0].clone()
            },
            drawn
        );
        assert_eq!(&copies[0].case_id, case_id);
    }

    // The sampled case is on the district reviewer's work queue as a visit to make.
    let sampled = drawn.sampled_case_ids[0].clone();
    let queue = review
        .list_work_queue(with_token(
            pb::ListWorkQueueRequest {
                org_unit_code: VILLAGE.into(),
                page: None,
            },
            &tokens.center,
        )?)
        .await?
        .into_inner();
    let pending: Vec<&str> = queue
        .items
        .iter()
        .filter(|item| item.assigned_to_caller)
        .map(|item| item.case_id.as_str())
        .collect();
    assert_eq!(pending, [sampled.as_str()]);
    // The sampled case: decided only after the district's visit, and not by its visitor.
    let unsampled: Vec<String> = case_ids
        .iter()
        .filter(|id| **id != sampled)
        .cloned()
        .collect();
    let at = case(&mut review, &tokens.center, &sampled).await?.version;
    let unvisited = review
        .decide(with_token(
            decide(&sampled, "decide-unvisited", at),
            &tokens.approver,
        )?)
        .await
        .expect_err("the sample's visit first");
    assert_eq!(unvisited.code(), Code::FailedPrecondition);
    assert!(
        unvisited.message().contains("draw-2026-09-28")
            && unvisited.message().contains("home visit"),
        "{}",
        unvisited.message()
    );
    let visited = review
        .record_home_visit(with_token(
            pb::RecordHomeVisitRequest {
                command_id: "district-visit".into(),
                case_id: sampled.clone(),
                expected_version: at,
                visited_on: date(2026, 9, 28),
                findings: "区民政局入户抽查：情况属实".into(),
            },
            &tokens.center,
        )?)
        .await?
        .into_inner();
    assert_eq!(visited.stage, "decision");
    let by_visitor = review
        .decide(with_token(
            decide(&sampled, "decide-by-visitor", visited.version),
            &tokens.center_as_approver,
        )?)
        .await
        .expect_err("the visitor took part");
    assert_eq!(by_visitor.code(), Code::PermissionDenied);
    let approved = review
        .decide(with_token(
            decide(&sampled, "decide-sampled", visited.version),
            &tokens.approver,
        )?)
        .await?
        .into_inner();
    assert_eq!(approved.status, "approved");
    // An unsampled case: no visit (refused), decided without one.
    let at = case(&mut review, &tokens.center, &unsampled[0])
        .await?
        .version;
    let not_sampled = review
        .record_home_visit(with_token(
            pb::RecordHomeVisitRequest {
                command_id: "district-visit-unsampled".into(),
                case_id: unsampled[0].clone(),
                expected_version: at,
                visited_on: date(2026, 9, 28),
                findings: String::new(),
            },
            &tokens.center,
        )?)
        .await
        .expect_err("not in the sample");
    assert_eq!(not_sampled.code(), Code::FailedPrecondition);
    let approved = review
        .decide(with_token(
            decide(&unsampled[0], "decide-unsampled", at),
            &tokens.approver,
        )?)
        .await?
        .into_inner();
    assert_eq!(approved.status, "approved");

    // The case left undecided breaches the district's 15 working days (from 2026-09-28,
    // across National Day), under the 特困 names only.
    clock.set(date!(2026 - 12 - 1));
    let overdue = review
        .list_overdue_cases(with_token(
            pb::ListOverdueCasesRequest {
                org_unit_code: VILLAGE.into(),
                page: None,
            },
            &tokens.center,
        )?)
        .await?
        .into_inner()
        .cases;
    let names: Vec<(&str, &str)> = overdue
        .iter()
        .map(|entry| (entry.case_id.as_str(), entry.deadline.as_str()))
        .collect();
    assert_eq!(
        names,
        [(unsampled[1].as_str(), "district_decision")],
        "{overdue:?}"
    );

    database.close().await;
    intake.stop().await?;
    review_service.stop().await?;
    drop(keep);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tekun_review_on_postgres_and_nats() -> anyhow::Result<()> {
    scenario(true).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tekun_review_on_sqlite_and_the_in_process_bus() -> anyhow::Result<()> {
    scenario(false).await
}
