//! The economic-status check (核对) through gRPC, on PostgreSQL + NATS JetStream and on SQLite +
//! the in-process bus, with intake, review and department integration sharing a hand-set clock
//! (issue 13, slice 2). A dibao case walks to verification; the household's consent is
//! recorded; the check sends one request per data holder of the registry with a deadline five
//! working days on; every holder answers (typed, sealed, no id number in any event's bytes); the
//! report is issued and review moves the case to the preliminary opinion with the report on
//! it; a re-check opens a second round referencing the first. A second household's consent
//! lapses when a member dies (FAILED_PRECONDITION until a new authorisation is recorded); one
//! of its holders does not answer, and past the deadline the overdue is recorded once, the
//! report names it, and the work queue shows it. An answer with an item outside the holder's
//! request is INVALID_ARGUMENT naming it and writes nothing; another department's or
//! another district's answer reads like a check that does not exist; oversized and
//! control-character input and a page size of a million are refused naming the field. And the
//! acceptance line on its own: a district whose check asks three holders (vehicles, real
//! estate, bank deposits) completes the review stage with their three answers.

use std::sync::Arc;
use std::time::Duration;

use sunshine_department_integration::dictionary::{FieldDictionary, ValueType};
use sunshine_domain::WorkingDayCalendar;
use sunshine_eventlog::{EventStore, RecordedEvent, StreamId};
use sunshine_platform::Role;
use sunshine_platform::clock::ManualClock;
use sunshine_proto::v1 as pb;
use sunshine_proto::v1::department_integration_service_client::DepartmentIntegrationServiceClient;
use sunshine_proto::v1::intake_service_client::IntakeServiceClient;
use sunshine_proto::v1::review_service_client::ReviewServiceClient;
use sunshine_tests::events::{decoded, is};
use sunshine_tests::households::{dibao_application, family, registration};
use sunshine_tests::{
    DISTRICT, RunningService, ScenarioBackends, TestAuth, VILLAGE, test_config, violated_fields,
    with_token,
};
use time::macros::date;
use tonic::transport::Channel;
use tonic::{Code, Status};
use tonic_health::pb::health_check_response::ServingStatus;

const PATIENCE: Duration = Duration::from_secs(30);
const STREET: &str = "990101001000";
const OTHER_DISTRICT: &str = "990102000000";

mod economic_status_check {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn on_postgres_and_nats() -> anyhow::Result<()> {
        super::economic_status_check(true).await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn on_sqlite_and_the_in_process_bus() -> anyhow::Result<()> {
        super::economic_status_check(false).await
    }
}

fn officer(subject: &str, role: &str, org_unit: &str) -> pb::CaseOfficer {
    pb::CaseOfficer {
        subject: subject.into(),
        role: role.into(),
        org_unit_code: org_unit.into(),
    }
}

fn department_token(auth: &TestAuth, department: &str, district: &str) -> String {
    auth.token_with(Role::Department, district, |claims| {
        claims.sub = format!("system-{department}");
        claims.department_code = Some(department.into());
    })
}

fn status(result: Result<impl std::fmt::Debug, Status>) -> Status {
    match result {
        Ok(answer) => panic!("expected a refusal, got {answer:?}"),
        Err(status) => status,
    }
}

/// The items the example registry's check acquires (what a consent covers).
const CHECK_ITEMS: &[&str] = &[
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
];

struct World {
    intake: IntakeServiceClient<Channel>,
    review: ReviewServiceClient<Channel>,
    integration: DepartmentIntegrationServiceClient<Channel>,
    store: EventStore,
    auth: TestAuth,
    clerk: String,
    second_clerk: String,
    street: String,
    center: String,
    dictionary: FieldDictionary,
}

impl World {
    async fn case(&mut self, case_id: &str) -> anyhow::Result<pb::GetCaseResponse> {
        Ok(self
            .review
            .get_case(with_token(
                pb::GetCaseRequest {
                    case_id: case_id.into(),
                },
                &self.street,
            )?)
            .await?
            .into_inner())
    }

    async fn wait_for_stage(&mut self, case_id: &str, stage: &str) -> anyhow::Result<u64> {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            if let Ok(found) = self.case(case_id).await
                && found.stage == stage
            {
                return Ok(found.version);
            }
            anyhow::ensure!(
                tokio::time::Instant::now() < deadline,
                "case {case_id} never reached {stage}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// A household with a dibao case waiting for verification: (household, members, case).
    async fn case_at_verification(
        &mut self,
        seed: u32,
    ) -> anyhow::Result<(String, Vec<String>, String)> {
        let people = family(seed);
        let household = self
            .intake
            .register_household(with_token(
                registration(&format!("reg-{seed}"), &people),
                &self.clerk,
            )?)
            .await?
            .into_inner();
        let accepted = self
            .intake
            .submit_application(with_token(
                dibao_application(
                    &format!("app-{seed}"),
                    &household.household_id,
                    &household.member_ids[0],
                ),
                &self.clerk,
            )?)
            .await?
            .into_inner();
        let case_id = accepted.case_id;
        let mut version = self.wait_for_stage(&case_id, "investigation").await?;
        version = self
            .review
            .assign_investigators(with_token(
                pb::AssignInvestigatorsRequest {
                    command_id: format!("assign-{seed}"),
                    case_id: case_id.clone(),
                    expected_version: version,
                    investigators: vec![
                        officer("clerk-1", "village_clerk", VILLAGE),
                        officer("clerk-2", "village_clerk", VILLAGE),
                    ],
                },
                &self.street,
            )?)
            .await?
            .into_inner()
            .version;
        for (token, name) in [(self.clerk.clone(), "1"), (self.second_clerk.clone(), "2")] {
            version = self
                .review
                .record_home_visit(with_token(
                    pb::RecordHomeVisitRequest {
                        command_id: format!("visit-{seed}-{name}"),
                        case_id: case_id.clone(),
                        expected_version: version,
                        visited_on: Some(pb::Date {
                            year: 2026,
                            month: 9,
                            day: 21,
                        }),
                        findings: "家中有卧床老人".into(),
                    },
                    &token,
                )?)
                .await?
                .into_inner()
                .version;
        }
        let requested = self
            .review
            .request_verification(with_token(
                pb::RequestVerificationRequest {
                    command_id: format!("verify-{seed}"),
                    case_id: case_id.clone(),
                    expected_version: version,
                    department_codes: vec!["public_security".into()],
                },
                &self.street,
            )?)
            .await?
            .into_inner();
        assert_eq!(requested.stage, "verification");
        Ok((household.household_id, household.member_ids, case_id))
    }

    async fn record_consent(
        &mut self,
        command_id: &str,
        household_id: &str,
    ) -> Result<pb::RecordConsentResponse, Status> {
        let request = consent_request(command_id, household_id);
        self.integration
            .record_consent(
                with_token(request, &self.street).map_err(|e| Status::internal(e.to_string()))?,
            )
            .await
            .map(tonic::Response::into_inner)
    }

    async fn open_check(
        &mut self,
        command_id: &str,
        case_id: &str,
    ) -> Result<pb::CheckResponse, Status> {
        let request = pb::OpenCheckRequest {
            command_id: command_id.into(),
            case_id: case_id.into(),
        };
        self.integration
            .open_check(
                with_token(request, &self.street).map_err(|e| Status::internal(e.to_string()))?,
            )
            .await
            .map(tonic::Response::into_inner)
    }

    async fn answer(
        &mut self,
        token: &str,
        command_id: &str,
        check_id: &str,
        answers: Vec<pb::ItemAnswer>,
    ) -> Result<pb::CheckResponse, Status> {
        let request = pb::AnswerCheckRequest {
            command_id: command_id.into(),
            check_id: check_id.into(),
            answers,
        };
        self.integration
            .answer_check(with_token(request, token).map_err(|e| Status::internal(e.to_string()))?)
            .await
            .map(tonic::Response::into_inner)
    }

    /// A holder's answer to every item of its request, typed by the dictionary: 1,000 yuan per
    /// amount, one per count, yes per flag, a date per date.
    fn answers_for(&self, request: &pb::VerificationRequestState) -> Vec<pb::ItemAnswer> {
        request
            .data_items
            .iter()
            .map(|item| {
                let value = match self.dictionary.item(item).map(|item| item.value_type) {
                    Some(ValueType::Amount) => {
                        pb::item_answer::Value::Amount(pb::Money { fen: 100_000 })
                    }
                    Some(ValueType::Count) => pb::item_answer::Value::Count(1),
                    Some(ValueType::Date) => pb::item_answer::Value::Date(pb::Date {
                        year: 2020,
                        month: 1,
                        day: 1,
                    }),
                    _ => pb::item_answer::Value::Flag(true),
                };
                pb::ItemAnswer {
                    item: item.clone(),
                    value: Some(value),
                }
            })
            .collect()
    }

    async fn queue(
        &mut self,
        token: &str,
        status: &str,
        page_size: i32,
    ) -> Result<pb::ListCheckWorkQueueResponse, Status> {
        let request = pb::ListCheckWorkQueueRequest {
            status: status.into(),
            page: Some(pb::PageRequest {
                page_size,
                page_token: String::new(),
            }),
        };
        self.integration
            .list_check_work_queue(
                with_token(request, token).map_err(|e| Status::internal(e.to_string()))?,
            )
            .await
            .map(tonic::Response::into_inner)
    }

    async fn check_events(&self, check_id: &str) -> anyhow::Result<Vec<RecordedEvent>> {
        let stream = StreamId::new("department-integration", "check", check_id)?;
        Ok(self.store.read_stream(&stream, 1).await?)
    }
}

fn consent_request(command_id: &str, household_id: &str) -> pb::RecordConsentRequest {
    pb::RecordConsentRequest {
        command_id: command_id.into(),
        household_id: household_id.into(),
        data_items: CHECK_ITEMS.iter().map(|item| (*item).to_owned()).collect(),
        valid_from: Some(pb::Date {
            year: 2026,
            month: 9,
            day: 1,
        }),
        valid_until: None,
        document_digest: "ab".repeat(32),
    }
}

/// Intake, review and department integration (with `departments_file`, or the example
/// registry) on fresh backends sharing a hand-set clock at Monday 2026-09-21.
struct Running {
    world: World,
    clock: Arc<ManualClock>,
    services: Vec<RunningService>,
    _backends: ScenarioBackends,
}

impl Running {
    async fn stop(self) -> anyhow::Result<()> {
        for service in self.services.into_iter().rev() {
            service.stop().await?;
        }
        Ok(())
    }
}

async fn start(cluster: bool, departments_file: Option<String>) -> anyhow::Result<Running> {
    let auth = TestAuth::new()?;
    let keep = ScenarioBackends::start(cluster).await?;
    let (database_url, bus_url) = (keep.database_url(), keep.bus_url());
    let clock = Arc::new(ManualClock::new(date!(2026 - 9 - 21)));
    let log_signals = sunshine_eventlog::LogSignals::new();
    let mut config = test_config(&auth, database_url.clone(), bus_url);
    if let Some(file) = departments_file {
        config.integration.departments_file = file;
    }
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
    let review = RunningService::start(
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
    let integration_clock = Arc::clone(&clock);
    let integration = RunningService::start(
        sunshine_department_integration::SERVICE_NAME,
        keep.service_config(&config, sunshine_department_integration::SERVICE_NAME),
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
    for service in [&intake, &review, &integration] {
        service
            .wait_for_health(ServingStatus::Serving, PATIENCE)
            .await?;
    }
    let database = sunshine_platform::backends::Database::connect(
        &sunshine_platform::config::DatabaseConfig {
            url: database_url,
            ..Default::default()
        },
    )
    .await?;
    let world = World {
        intake: IntakeServiceClient::new(intake.channel().await?),
        review: ReviewServiceClient::new(review.channel().await?),
        integration: DepartmentIntegrationServiceClient::new(integration.channel().await?),
        store: EventStore::from_database(&database).with_signals(log_signals.clone()),
        clerk: auth.token_for("clerk-1", Role::VillageClerk, VILLAGE),
        second_clerk: auth.token_for("clerk-2", Role::VillageClerk, VILLAGE),
        street: auth.token_for("street-1", Role::StreetReviewer, STREET),
        center: auth.token_for("center-1", Role::CenterReviewer, DISTRICT),
        dictionary: FieldDictionary::embedded()?,
        auth,
    };
    Ok(Running {
        world,
        clock,
        services: vec![intake, review, integration],
        _backends: keep,
    })
}

async fn economic_status_check(cluster: bool) -> anyhow::Result<()> {
    let Running {
        mut world,
        clock,
        services,
        _backends,
    } = start(cluster, None).await?;
    let seed = if cluster { 41 } else { 42 };

    // ---- Household A: the happy path ----
    let (household_a, _, case_a) = world.case_at_verification(seed).await?;
    // No consent yet: the check cannot be opened.
    let no_consent = status(world.open_check("open-a-0", &case_a).await);
    assert_eq!(
        no_consent.code(),
        Code::FailedPrecondition,
        "{no_consent:?}"
    );
    world.record_consent("consent-a", &household_a).await?;
    let opened = world.open_check("open-a", &case_a).await?;
    assert_eq!(opened.round, 1);
    let holders: Vec<&str> = opened
        .requests
        .iter()
        .map(|request| request.department_code.as_str())
        .collect();
    assert_eq!(
        holders,
        [
            "banks_insurers",
            "housing_provident_fund",
            "human_resources",
            "market_regulation",
            "public_security",
            "real_estate",
            "tax"
        ]
    );
    // Five working days after Monday 2026-09-21 (the Mid-Autumn Festival, Friday 2026-09-25,
    // does not count): Tuesday 2026-09-29.
    let due = WorkingDayCalendar::embedded()?.due_after(date!(2026 - 9 - 21), 5)?;
    assert_eq!(due.date, date!(2026 - 9 - 29));
    assert!(opened.requests.iter().all(|request| request.deadline
        == Some(sunshine_proto::dates::from_date(due.date))
        && request.status == "open"));
    // Opened again (another command id): the check of that request exists.
    let twice = status(world.open_check("open-a-again", &case_a).await);
    assert_eq!(twice.code(), Code::AlreadyExists, "{twice:?}");
    // Retried: the first answer.
    assert_eq!(world.open_check("open-a", &case_a).await?, opened);
    let check_a = opened.check_id.clone();

    // Bad answers write nothing.
    let before = world.check_events(&check_a).await?.len();
    let public_security = department_token(&world.auth, "public_security", DISTRICT);
    let outside = status(
        world
            .answer(
                &public_security,
                "ps-bad",
                &check_a,
                vec![pb::ItemAnswer {
                    item: "bank_deposits".into(),
                    value: Some(pb::item_answer::Value::Amount(pb::Money { fen: 1 })),
                }],
            )
            .await,
    );
    assert_eq!(outside.code(), Code::InvalidArgument);
    assert_eq!(violated_fields(&outside), ["answers[0].item"]);
    let request_of = |code: &str| {
        opened
            .requests
            .iter()
            .find(|request| request.department_code == code)
            .cloned()
            .expect("a request")
    };
    let mut mistyped = world.answers_for(&request_of("public_security"));
    mistyped[0].value = Some(pb::item_answer::Value::Amount(pb::Money { fen: 1 }));
    let mistyped = status(
        world
            .answer(&public_security, "ps-typed", &check_a, mistyped)
            .await,
    );
    assert_eq!(mistyped.code(), Code::InvalidArgument);
    assert_eq!(violated_fields(&mistyped), ["answers[0].value"]);
    let oversized: Vec<pb::ItemAnswer> = (0..51)
        .map(|_| pb::ItemAnswer {
            item: "vehicles".into(),
            value: Some(pb::item_answer::Value::Count(1)),
        })
        .collect();
    let oversized = status(
        world
            .answer(&public_security, "ps-big", &check_a, oversized)
            .await,
    );
    assert_eq!(oversized.code(), Code::InvalidArgument);
    assert!(violated_fields(&oversized).contains(&"answers".to_owned()));
    let control = status(
        world
            .answer(
                &public_security,
                "ps-\u{7}",
                "check\u{0}",
                vec![pb::ItemAnswer {
                    item: "vehicles\n".into(),
                    value: Some(pb::item_answer::Value::Count(1)),
                }],
            )
            .await,
    );
    assert_eq!(control.code(), Code::InvalidArgument);
    assert_eq!(
        violated_fields(&control),
        ["command_id", "check_id", "answers[0].item"]
    );
    // Another department's request, another district's holder: like no check at all.
    let education = department_token(&world.auth, "education", DISTRICT);
    let not_its = status(
        world
            .answer(
                &education,
                "edu-answer",
                &check_a,
                vec![pb::ItemAnswer {
                    item: "education_expenses".into(),
                    value: Some(pb::item_answer::Value::Amount(pb::Money { fen: 1 })),
                }],
            )
            .await,
    );
    let elsewhere = department_token(&world.auth, "public_security", OTHER_DISTRICT);
    let other_district = status(
        world
            .answer(
                &elsewhere,
                "ps-elsewhere",
                &check_a,
                world.answers_for(&request_of("public_security")),
            )
            .await,
    );
    let nowhere = status(
        world
            .answer(
                &public_security,
                "ps-nowhere",
                &uuid::Uuid::new_v4().to_string(),
                world.answers_for(&request_of("public_security")),
            )
            .await,
    );
    for refused in [&not_its, &other_district, &nowhere] {
        assert_eq!(refused.code(), Code::NotFound, "{refused:?}");
        assert_eq!(refused.message(), nowhere.message());
    }
    assert_eq!(world.check_events(&check_a).await?.len(), before);

    // Every holder answers; the last answer issues the report.
    let mut last = None;
    for request in &opened.requests {
        let token = department_token(&world.auth, &request.department_code, DISTRICT);
        let answers = world.answers_for(request);
        let command_id = format!("answer-a-{}", request.department_code);
        let answered = world
            .answer(&token, &command_id, &check_a, answers.clone())
            .await?;
        // Retried: the first answer.
        assert_eq!(
            world.answer(&token, &command_id, &check_a, answers).await?,
            answered
        );
        last = Some(answered);
    }
    let last = last.expect("answers");
    assert!(last.report_issued);
    // A holder is told of its own request only, not which other departments the check asks.
    assert_eq!(last.requests.len(), 1);
    assert_eq!(last.requests[0].status, "answered");
    let log = world.check_events(&check_a).await?;
    let reports: Vec<pb::CheckReportIssued> = decoded(&log)?;
    assert_eq!(reports.len(), 1);
    let report = &reports[0];
    assert_eq!(report.case_id, case_a);
    assert_eq!(report.departments.len(), 7);
    assert!(report.overdue_departments.is_empty());
    let property = report
        .totals
        .iter()
        .find(|total| total.class_code == "property")
        .expect("a property total");
    // bank deposits, securities, insurance, provident fund: 4 × ¥1,000; vehicles, real estate,
    // business registrations: 3 counts.
    assert_eq!(
        (
            property.amount.as_ref().map(|money| money.fen),
            property.count
        ),
        (Some(400_000), 3)
    );
    let answered: Vec<pb::VerificationAnswerRecorded> = decoded(&log)?;
    assert_eq!(answered.len(), 7);
    assert!(
        answered
            .iter()
            .all(|answer| !answer.sealed_answers.is_empty())
    );
    // No id number of the household's members in any of the check's or consent's bytes.
    let consent_stream = StreamId::new("department-integration", "consent", &household_a)?;
    let consent_log = world.store.read_stream(&consent_stream, 1).await?;
    for person in family(seed) {
        for event in log.iter().chain(&consent_log) {
            assert!(
                !event
                    .payload
                    .windows(person.id.len())
                    .any(|window| window == person.id.as_bytes()),
                "an id number in {}",
                event.event_type
            );
        }
    }
    // Review hears the report: the case moves on with the report attached.
    world.wait_for_stage(&case_a, "preliminary_opinion").await?;
    let case_stream = StreamId::new("review", "case", &case_a)?;
    let case_log = world.store.read_stream(&case_stream, 1).await?;
    let attached: Vec<pb::CheckReportAttached> = decoded(&case_log)?;
    assert_eq!(attached.len(), 1);
    assert_eq!(attached[0].check_id, check_a);

    // 复核: a re-check of the report, a new round referencing the first.
    let version = log.last().map_or(0, |event| event.stream_version);
    let recheck_request = pb::RequestRecheckRequest {
        command_id: "recheck-a".into(),
        check_id: check_a.clone(),
        expected_version: version,
        reason: "household_objection".into(),
    };
    let recheck = world
        .integration
        .request_recheck(with_token(recheck_request.clone(), &world.street)?)
        .await?
        .into_inner();
    assert_eq!(recheck.round, 2);
    assert_eq!(recheck.requests.len(), 7);
    assert_ne!(recheck.check_id, check_a);
    let retried = world
        .integration
        .request_recheck(with_token(recheck_request.clone(), &world.street)?)
        .await?
        .into_inner();
    assert_eq!(retried, recheck);
    let again = world
        .integration
        .request_recheck(with_token(
            pb::RequestRecheckRequest {
                command_id: "recheck-a-2".into(),
                expected_version: version + 1,
                ..recheck_request
            },
            &world.street,
        )?)
        .await
        .expect_err("one re-check per report");
    assert_eq!(again.code(), Code::FailedPrecondition, "{again:?}");
    let second_log = world.check_events(&recheck.check_id).await?;
    let second: Vec<pb::CheckOpened> = decoded(&second_log)?;
    assert_eq!(second[0].previous_check_id, check_a);
    assert_eq!(second[0].recheck_reason, "household_objection");
    let asked: Vec<pb::RecheckRequested> = decoded(&world.check_events(&check_a).await?)?;
    assert_eq!(asked.len(), 1);

    // ---- Household B: consent lapsed by a death; one holder overdue ----
    let (household_b, members_b, case_b) = world.case_at_verification(seed + 10).await?;
    world.record_consent("consent-b", &household_b).await?;
    let household_stream = StreamId::new("intake", "household", &household_b)?;
    let household_version = world
        .store
        .read_stream(&household_stream, 1)
        .await?
        .last()
        .map_or(0, |event| event.stream_version);
    world
        .intake
        .record_death(with_token(
            pb::RecordDeathRequest {
                command_id: "death-b".into(),
                household_id: household_b.clone(),
                expected_version: household_version,
                member_id: members_b[3].clone(),
                date_of_death: Some(pb::Date {
                    year: 2026,
                    month: 9,
                    day: 20,
                }),
                reason: "病故".into(),
            },
            &world.clerk,
        )?)
        .await?;
    let lapsed = status(world.open_check("open-b", &case_b).await);
    assert_eq!(lapsed.code(), Code::FailedPrecondition);
    assert!(lapsed.message().contains("lapsed"), "{}", lapsed.message());
    // A new authorisation, signed after the change: the check opens.
    world.record_consent("consent-b-2", &household_b).await?;
    let opened_b = world.open_check("open-b", &case_b).await?;
    let check_b = opened_b.check_id.clone();
    for request in opened_b
        .requests
        .iter()
        .filter(|request| request.department_code != "real_estate")
    {
        let token = department_token(&world.auth, &request.department_code, DISTRICT);
        let answers = world.answers_for(request);
        let answered = world
            .answer(
                &token,
                &format!("answer-b-{}", request.department_code),
                &check_b,
                answers,
            )
            .await?;
        assert!(!answered.report_issued);
    }
    // The district center's queue: real estate's request is open; real estate sees its own.
    let center = world.center.clone();
    let queue = world.queue(&center, "", 100).await?;
    let open_b: Vec<&pb::CheckWorkItem> = queue
        .items
        .iter()
        .filter(|item| item.check_id == check_b)
        .collect();
    assert_eq!(open_b.len(), 1);
    assert_eq!(
        (
            open_b[0].department_code.as_str(),
            open_b[0].status.as_str()
        ),
        ("real_estate", "open")
    );
    let real_estate = department_token(&world.auth, "real_estate", DISTRICT);
    let own = world.queue(&real_estate, "open", 0).await?;
    assert!(
        own.items
            .iter()
            .all(|item| item.department_code == "real_estate")
    );
    assert!(own.items.iter().any(|item| item.check_id == check_b));
    let huge = status(world.queue(&center, "", 1_000_000).await);
    assert_eq!(huge.code(), Code::InvalidArgument);
    assert_eq!(violated_fields(&huge), ["page.page_size"]);
    let bad_status = status(world.queue(&center, "late\u{7}", 10).await);
    assert_eq!(violated_fields(&bad_status), ["status"]);
    // Paged one at a time: every entry once, in order.
    let mut token = String::new();
    let mut paged = Vec::new();
    loop {
        let page = world
            .integration
            .list_check_work_queue(with_token(
                pb::ListCheckWorkQueueRequest {
                    status: String::new(),
                    page: Some(pb::PageRequest {
                        page_size: 1,
                        page_token: token.clone(),
                    }),
                },
                &center,
            )?)
            .await?
            .into_inner();
        paged.extend(page.items);
        token = page
            .page
            .map(|page| page.next_page_token)
            .unwrap_or_default();
        if token.is_empty() {
            break;
        }
    }
    assert_eq!(paged, queue.items);

    // On the deadline nothing is overdue; the next working day real estate's request is.
    let record_overdue = |world: &mut World| {
        let request = with_token(pb::RecordOverdueVerificationsRequest {}, &world.center);
        let mut client = world.integration.clone();
        async move {
            anyhow::Ok(
                client
                    .record_overdue_verifications(request?)
                    .await?
                    .into_inner(),
            )
        }
    };
    clock.set(due.date);
    let on_time = record_overdue(&mut world).await?;
    assert_eq!((on_time.recorded, on_time.reports_issued), (0, 0));
    clock.set(date!(2026 - 9 - 30));
    let late = record_overdue(&mut world).await?;
    // Household A's re-check round is late too (seven requests, none answered).
    assert_eq!((late.recorded, late.reports_issued), (8, 2));
    let again = record_overdue(&mut world).await?;
    assert_eq!((again.recorded, again.reports_issued), (0, 0));
    let log_b = world.check_events(&check_b).await?;
    let overdue: Vec<pb::VerificationOverdue> = decoded(&log_b)?;
    assert_eq!(overdue.len(), 1);
    assert_eq!(overdue[0].department_code, "real_estate");
    let report_b: Vec<pb::CheckReportIssued> = decoded(&log_b)?;
    assert_eq!(report_b.len(), 1);
    assert_eq!(report_b[0].overdue_departments, ["real_estate"]);
    assert_eq!(report_b[0].departments.len(), 6);
    assert!(log_b.iter().any(is::<pb::CheckReportIssued>));
    let overdue_queue = world.queue(&center, "overdue", 100).await?;
    assert!(
        overdue_queue
            .items
            .iter()
            .any(|item| item.check_id == check_b && item.department_code == "real_estate")
    );
    // Too late to answer: the report was issued.
    let too_late = status(
        world
            .answer(
                &real_estate,
                "answer-b-real-estate",
                &check_b,
                world.answers_for(
                    &opened_b
                        .requests
                        .iter()
                        .find(|r| r.department_code == "real_estate")
                        .cloned()
                        .expect("its request"),
                ),
            )
            .await,
    );
    assert_eq!(too_late.code(), Code::FailedPrecondition);
    world.wait_for_stage(&case_b, "preliminary_opinion").await?;

    Running {
        world,
        clock,
        services,
        _backends,
    }
    .stop()
    .await
}

mod three_holders_complete_the_verification_stage {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn on_postgres_and_nats() -> anyhow::Result<()> {
        super::three_holders_complete_the_verification_stage(true).await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn on_sqlite_and_the_in_process_bus() -> anyhow::Result<()> {
        super::three_holders_complete_the_verification_stage(false).await
    }
}

/// The acceptance line: a district whose check acquires vehicles, real estate and bank
/// deposits asks three holders; their three answers complete the review stage with the report
/// on the case.
async fn three_holders_complete_the_verification_stage(cluster: bool) -> anyhow::Result<()> {
    let example =
        include_str!("../../services/department-integration/departments/example-district.toml");
    let cut = example
        .find("[check]")
        .ok_or_else(|| anyhow::anyhow!("the example registry has a [check] section"))?;
    let registry = format!(
        "{}[check]\nitems = [\"vehicles\", \"real_estate\", \"bank_deposits\"]\n",
        &example[..cut]
    );
    let file = std::env::temp_dir().join(format!(
        "sunshine-three-holders-{}.toml",
        uuid::Uuid::now_v7().simple()
    ));
    std::fs::write(&file, registry)?;
    let running = start(cluster, Some(file.display().to_string())).await?;
    let mut world = running.world;
    let seed = if cluster { 61 } else { 62 };
    let (household, _, case_id) = world.case_at_verification(seed).await?;
    world.record_consent("consent-3", &household).await?;
    let opened = world.open_check("open-3", &case_id).await?;
    let holders: Vec<&str> = opened
        .requests
        .iter()
        .map(|request| request.department_code.as_str())
        .collect();
    assert_eq!(
        holders,
        ["banks_insurers", "public_security", "real_estate"]
    );
    for request in &opened.requests {
        let token = department_token(&world.auth, &request.department_code, DISTRICT);
        let answers = world.answers_for(request);
        world
            .answer(
                &token,
                &format!("answer-3-{}", request.department_code),
                &opened.check_id,
                answers,
            )
            .await?;
    }
    world
        .wait_for_stage(&case_id, "preliminary_opinion")
        .await?;
    let case_log = world
        .store
        .read_stream(&StreamId::new("review", "case", &case_id)?, 1)
        .await?;
    let attached: Vec<pb::CheckReportAttached> = decoded(&case_log)?;
    assert_eq!(attached.len(), 1);
    assert_eq!(
        attached[0].departments,
        ["banks_insurers", "public_security", "real_estate"]
    );
    assert!(attached[0].overdue_departments.is_empty());
    std::fs::remove_file(&file)?;
    Running { world, ..running }.stop().await
}

// ---- household composition: a member joining lapses the consent (issue 13) ----

mod consent_lapsed_by_a_new_member {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn on_postgres_and_nats() -> anyhow::Result<()> {
        super::consent_lapsed_by_a_new_member(true).await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn on_sqlite_and_the_in_process_bus() -> anyhow::Result<()> {
        super::consent_lapsed_by_a_new_member(false).await
    }
}

/// Issue 13's acceptance: "consent lapsed by a new member → the request is refused until a new
/// authorisation is recorded". The consent is recorded; a person joins the household
/// (`MemberJoined`); the check is FAILED_PRECONDITION; a new consent lets it open.
async fn consent_lapsed_by_a_new_member(cluster: bool) -> anyhow::Result<()> {
    let running = start(cluster, None).await?;
    let mut world = running.world;
    let seed = if cluster { 71 } else { 72 };
    let (household, _, case_id) = world.case_at_verification(seed).await?;
    world.record_consent("consent-join", &household).await?;
    let household_stream = StreamId::new("intake", "household", &household)?;
    let household_version = world
        .store
        .read_stream(&household_stream, 1)
        .await?
        .last()
        .map_or(0, |event| event.stream_version);
    let bride = sunshine_tests::households::Person {
        name: "赵新娘",
        id: sunshine_tests::households::national_id("19960606", seed),
        birth: (1996, 6, 6),
        relation: pb::Relation::Other,
    };
    let joined = world
        .intake
        .add_household_member(with_token(
            pb::AddHouseholdMemberRequest {
                command_id: "join-consent".into(),
                household_id: household.clone(),
                expected_version: household_version,
                member: Some(sunshine_tests::households::member(&bride, 0)),
                reason: pb::JoinReason::Marriage as i32,
                note: String::new(),
            },
            &world.clerk,
        )?)
        .await?
        .into_inner();
    assert_eq!(joined.version, household_version + 1);
    let lapsed = status(world.open_check("open-join", &case_id).await);
    assert_eq!(lapsed.code(), Code::FailedPrecondition);
    assert!(lapsed.message().contains("lapsed"), "{}", lapsed.message());
    // A new authorisation, signed after the join: the check opens.
    world.record_consent("consent-join-2", &household).await?;
    let opened = world.open_check("open-join", &case_id).await?;
    assert!(!opened.requests.is_empty());
    Running { world, ..running }.stop().await
}

// ---- end of household composition ----
