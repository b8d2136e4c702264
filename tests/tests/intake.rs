//! Intake scenarios through gRPC, on PostgreSQL + NATS JetStream and on SQLite + the
//! in-process bus: a household of four applies for dibao at its village and the review service
//! opens the case from the bus; duplicates, bad input and concurrent clerks are refused
//! without writing anything, strangers are told the household does not exist (and the attempt
//! is recorded); relatives of officials are flagged into the case; no
//! personal data is stored in plain text.

use std::time::Duration;

use prost::Message as _;
use sunshine_eventlog::EventStore;
use sunshine_platform::Role;
use sunshine_proto::v1 as pb;
use sunshine_proto::v1::intake_service_client::IntakeServiceClient;
use sunshine_tests::events::{decoded, is};
use sunshine_tests::households::{date, dibao_application, documents, family, registration};
use sunshine_tests::{
    RunningService, STREET_TOWN, ScenarioBackends, TestAuth, VILLAGE, test_config, violated_fields,
    with_token,
};
use tonic::Code;
use tonic::transport::Channel;
use tonic_health::pb::health_check_response::ServingStatus;

const PATIENCE: Duration = Duration::from_secs(30);
const OTHER_VILLAGE: &str = "990101001002";
const DISTRICT: &str = "990101000000";

async fn event_count(store: &EventStore) -> anyhow::Result<i64> {
    Ok(sqlx::query_scalar("SELECT COUNT(*) FROM events")
        .fetch_one(store.pool())
        .await?)
}

async fn scenario(cluster: bool) -> anyhow::Result<()> {
    let auth = TestAuth::new()?;
    let keep = ScenarioBackends::start(cluster).await?;
    let (database_url, bus_url) = (keep.database_url(), keep.bus_url());
    let config = test_config(&auth, database_url.clone(), bus_url);
    let intake = RunningService::start(
        sunshine_intake::SERVICE_NAME,
        keep.service_config(&config, sunshine_intake::SERVICE_NAME),
        sunshine_intake::run_sharing_process,
    )
    .await?;
    let review = RunningService::start(
        sunshine_review::SERVICE_NAME,
        keep.service_config(&config, sunshine_review::SERVICE_NAME),
        sunshine_review::run_sharing_process,
    )
    .await?;
    intake
        .wait_for_health(ServingStatus::Serving, PATIENCE)
        .await?;
    review
        .wait_for_health(ServingStatus::Serving, PATIENCE)
        .await?;
    let database = sunshine_platform::backends::Database::connect(
        &sunshine_platform::config::DatabaseConfig {
            url: database_url,
            ..Default::default()
        },
    )
    .await?;
    let store = EventStore::from_database(&database);

    let channel: Channel = intake.channel().await?;
    let mut client = IntakeServiceClient::new(channel);
    let clerk = auth.token(Role::VillageClerk, VILLAGE);
    let stranger = auth.token(Role::VillageClerk, OTHER_VILLAGE);
    let center = auth.token(Role::CenterReviewer, DISTRICT);

    // A household of four registers at its village.
    let people = family(if cluster { 1 } else { 2 });
    let registered = client
        .register_household(with_token(registration("reg-1", &people), &clerk)?)
        .await?
        .into_inner();
    assert_eq!((registered.version, registered.member_ids.len()), (1, 4));
    let household_id = registered.household_id.clone();
    // A retry of the same command answers the same.
    let retried = client
        .register_household(with_token(registration("reg-1", &people), &clerk)?)
        .await?
        .into_inner();
    assert_eq!(retried.household_id, household_id);
    // A person belongs to one household at a time.
    let again = client
        .register_household(with_token(registration("reg-2", &people[..1]), &clerk)?)
        .await
        .expect_err("a member of another household");
    assert_eq!(again.code(), Code::AlreadyExists);
    assert!(
        again.message().contains(&household_id),
        "{}",
        again.message()
    );

    // Bad input: each named, nothing written.
    let before = event_count(&store).await?;
    let mut bad_checksum = registration("bad-1", &family(7));
    let wrong = bad_checksum.members[0].national_id.clone();
    let flipped = if wrong.ends_with('1') { "2" } else { "1" };
    bad_checksum.members[0].national_id = format!("{}{flipped}", &wrong[..17]);
    let mut bad_birth = registration("bad-2", &family(7));
    bad_birth.members[1].birth_date = date(1967, 7, 9);
    let mut negative = registration("bad-3", &family(7));
    negative.members[2].monthly_income[0].monthly_amount = Some(pb::Money { fen: -100 });
    let mut empty_name = registration("bad-4", &family(7));
    empty_name.members[3].name = "  ".into();
    let mut huge = registration("bad-5", &family(7));
    huge.members[0].name = "王".repeat(3_500_000);
    for (request, field) in [
        (bad_checksum, "members[0].national_id"),
        (bad_birth, "members[1].birth_date"),
        (negative, "members[2].monthly_income[0].monthly_amount"),
        (empty_name, "members[3].name"),
        (huge, "members[0].name"),
    ] {
        let status = client
            .register_household(with_token(request, &clerk)?)
            .await
            .expect_err("invalid");
        assert_eq!(status.code(), Code::InvalidArgument, "{field}: {status:?}");
        assert!(
            violated_fields(&status)
                .iter()
                .any(|violated| violated == field),
            "{field} in {:?}",
            violated_fields(&status)
        );
    }
    assert_eq!(
        event_count(&store).await?,
        before,
        "invalid requests wrote nothing"
    );

    // A clerk of another village may not act for this household: to them it does not exist.
    let head = registered.member_ids[0].clone();
    let refused = client
        .submit_application(with_token(
            dibao_application("app-x", &household_id, &head),
            &stranger,
        )?)
        .await
        .expect_err("wrong village");
    assert_eq!(refused.code(), Code::NotFound);
    assert_eq!(
        event_count(&store).await?,
        before + 1,
        "only the attempt is recorded (on the household's access stream)"
    );
    let before = before + 1;

    // Missing materials: all listed in one answer.
    let mut incomplete = dibao_application("app-0", &household_id, &head);
    incomplete.documents = documents(&["application_form"]);
    let missing = client
        .submit_application(with_token(incomplete, &clerk)?)
        .await
        .expect_err("materials missing");
    assert_eq!(missing.code(), Code::InvalidArgument);
    let fields = violated_fields(&missing);
    for kind in [
        "household_register",
        "identity_documents",
        "income_statement",
        "verification_authorisation",
    ] {
        assert!(
            fields.contains(&format!("documents.{kind}")),
            "{kind} missing from {fields:?}"
        );
    }
    assert_eq!(event_count(&store).await?, before);

    // The application is accepted at the village and routed to review.
    let accepted = client
        .submit_application(with_token(
            dibao_application("app-1", &household_id, &head),
            &clerk,
        )?)
        .await?
        .into_inner();
    assert_eq!(accepted.route, pb::Route::Review as i32);
    assert!(!accepted.relative_of_official);
    // A second open application for the same program names the open case.
    let duplicate = client
        .submit_application(with_token(
            dibao_application("app-2", &household_id, &head),
            &clerk,
        )?)
        .await
        .expect_err("duplicate");
    assert_eq!(duplicate.code(), Code::AlreadyExists);
    assert!(
        duplicate.message().contains(&accepted.case_id),
        "{}",
        duplicate.message()
    );

    // Emergencies may be assisted at once within the cap; department programs go to the department.
    let mut emergency = dibao_application("app-e", &household_id, &head);
    emergency.program_code = "temporary".into();
    emergency.consent_to_verification = false;
    emergency.documents = documents(&[
        "application_form",
        "identity_documents",
        "hardship_evidence",
    ]);
    let emergency = client
        .submit_application(with_token(emergency, &clerk)?)
        .await?
        .into_inner();
    assert_eq!(emergency.route, pb::Route::Emergency as i32);
    assert!(
        emergency.assist_first_cap.is_some_and(|cap| cap.fen > 0),
        "{emergency:?}"
    );
    let mut schooling = dibao_application("app-d", &household_id, &registered.member_ids[2]);
    schooling.program_code = "education_aid".into();
    schooling.documents = Vec::new();
    let schooling = client
        .submit_application(with_token(schooling, &clerk)?)
        .await?
        .into_inner();
    assert_eq!(schooling.route, pb::Route::Department as i32);
    assert_eq!(schooling.department_code, "education");

    // The review service consumed the application from the bus and opened the case.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let opened = loop {
        let case_file = store.read_case(&accepted.case_id).await?;
        if let Some(found) = case_file.iter().find(|stored| is::<pb::CaseOpened>(stored)) {
            break pb::CaseOpened::decode(found.payload.as_slice())?;
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "no CaseOpened for {}",
            accepted.case_id
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(
        (opened.program_code.as_str(), opened.workflow.as_str()),
        ("dibao_rural", "means_tested_review")
    );
    assert!(!opened.relative_of_official);
    // …and intake's read model saw it too.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let listed = client
            .list_applications(with_token(
                pb::ListApplicationsRequest {
                    org_unit_code: VILLAGE.into(),
                    ..Default::default()
                },
                &clerk,
            )?)
            .await?
            .into_inner();
        if listed.applications.iter().any(|application| {
            application.case_id == accepted.case_id && application.status == "under_review"
        }) {
            break;
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "the application never showed as under review"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // A relative of an official: registered by the center, flagged at intake, in the case's events.
    let relative_family = family(if cluster { 11 } else { 12 });
    client
        .register_official_relative(with_token(
            pb::RegisterOfficialRelativeRequest {
                command_id: "official-1".into(),
                official_subject: "cadre-7".into(),
                official_name: "赵主任".into(),
                official_position: "村委会主任".into(),
                official_org_unit_code: VILLAGE.into(),
                relative_national_id: relative_family[1].id.clone(),
                relation: "sibling".into(),
            },
            &center,
        )?)
        .await?;
    let related = client
        .register_household(with_token(registration("reg-3", &relative_family), &clerk)?)
        .await?
        .into_inner();
    // The cadre cannot accept the relative's application at the window.
    let cadre_clerk = auth.token_for("cadre-7", Role::VillageClerk, VILLAGE);
    let recused = client
        .submit_application(with_token(
            dibao_application("app-3-cadre", &related.household_id, &related.member_ids[0]),
            &cadre_clerk,
        )?)
        .await
        .expect_err("the official accepting the relative's application");
    assert_eq!(recused.code(), tonic::Code::PermissionDenied);
    assert!(
        recused.message().contains("recusal"),
        "{}",
        recused.message()
    );
    let flagged = client
        .submit_application(with_token(
            dibao_application("app-3", &related.household_id, &related.member_ids[0]),
            &clerk,
        )?)
        .await?
        .into_inner();
    assert!(flagged.relative_of_official);
    let case_file = store.read_case(&flagged.case_id).await?;
    let flag = case_file
        .iter()
        .find(|stored| is::<pb::RelativeOfOfficialFlagged>(stored))
        .expect("the flag is in the case");
    // The flag names the official, so review recuses them from every stage.
    assert_eq!(
        pb::RelativeOfOfficialFlagged::decode(flag.payload.as_slice())?.official_subject,
        "cadre-7"
    );
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let case_file = store.read_case(&flagged.case_id).await?;
        if let Some(found) = case_file.iter().find(|stored| is::<pb::CaseOpened>(stored)) {
            let opened = pb::CaseOpened::decode(found.payload.as_slice())?;
            assert!(opened.relative_of_official, "review sees the flag");
            assert_eq!(opened.recused_subjects, vec!["cadre-7".to_owned()]);
            break;
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "flagged case never opened"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // A relation registered after the relative applied flags the open application too, and
    // review recuses that official as well.
    let late = pb::RegisterOfficialRelativeRequest {
        command_id: "official-2".into(),
        official_subject: "cadre-8".into(),
        official_name: "钱科长".into(),
        official_position: "街道办科长".into(),
        official_org_unit_code: STREET_TOWN.into(),
        relative_national_id: relative_family[1].id.clone(),
        relation: "parent".into(),
    };
    for _faithful_retry in 0..2 {
        client
            .register_official_relative(with_token(late.clone(), &center)?)
            .await?;
    }
    let late_flags: Vec<pb::RelativeOfOfficialFlagged> =
        decoded(&store.read_case(&flagged.case_id).await?)?;
    let subjects: Vec<&str> = late_flags
        .iter()
        .map(|flag| flag.official_subject.as_str())
        .collect();
    assert_eq!(subjects, ["cadre-7", "cadre-8"], "flagged once each");
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !store
        .read_case(&flagged.case_id)
        .await?
        .iter()
        .any(is::<pb::OfficialRecused>)
    {
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "review never recused the official registered late"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Two clerks change the same household at once: one wins, the other is ABORTED.
    let household = client
        .get_household(with_token(
            pb::GetHouseholdRequest {
                household_id: household_id.clone(),
                ..Default::default()
            },
            &clerk,
        )?)
        .await?
        .into_inner()
        .household
        .expect("household");
    let change = |command: &str, fen: i64| pb::RecordCircumstanceChangeRequest {
        command_id: command.into(),
        household_id: household_id.clone(),
        expected_version: household.version,
        incomes: vec![pb::MemberIncome {
            member_id: head.clone(),
            monthly_income: vec![pb::IncomeItem {
                kind: "wages".into(),
                monthly_amount: Some(pb::Money { fen }),
            }],
        }],
        assets: None,
        reason: "new job".into(),
    };
    let mut first_client = client.clone();
    let mut second_client = client.clone();
    let first_request = with_token(change("chg-1", 111_100), &clerk)?;
    let second_request = with_token(change("chg-2", 222_200), &clerk)?;
    let (first, second) = tokio::join!(
        first_client.record_circumstance_change(first_request),
        second_client.record_circumstance_change(second_request),
    );
    let outcomes = [
        first.map(|response| response.into_inner().version),
        second.map(|response| response.into_inner().version),
    ];
    let winners: Vec<u64> = outcomes
        .iter()
        .filter_map(|outcome| outcome.as_ref().ok().copied())
        .collect();
    let losers: Vec<&tonic::Status> = outcomes
        .iter()
        .filter_map(|outcome| outcome.as_ref().err())
        .collect();
    assert_eq!((winners.len(), losers.len()), (1, 1), "{outcomes:?}");
    assert_eq!(losers[0].code(), Code::Aborted);
    assert_eq!(winners[0], household.version + 1);
    let after = client
        .get_household(with_token(
            pb::GetHouseholdRequest {
                household_id: household_id.clone(),
                ..Default::default()
            },
            &clerk,
        )?)
        .await?
        .into_inner()
        .household
        .expect("household");
    let wages = after.members[0].monthly_income[0]
        .monthly_amount
        .as_ref()
        .map(|money| money.fen);
    assert!(
        wages == Some(111_100) || wages == Some(222_200),
        "the winner's change is kept: {wages:?}"
    );
    assert_eq!(after.version, household.version + 1);

    // Masked by default; revealed for a stated purpose; every read is an access event.
    assert_eq!(after.members[0].name, "王**");
    assert!(after.members[0].national_id.contains("****"));
    let revealed = client
        .get_household(with_token(
            pb::GetHouseholdRequest {
                household_id: household_id.clone(),
                reveal_personal_data: true,
                purpose: "checking the head's identity card".into(),
                case_id: accepted.case_id.clone(),
                reveal_purpose: pb::RevealPurpose::VerifyIdentity as i32,
            },
            &clerk,
        )?)
        .await?
        .into_inner()
        .household
        .expect("household");
    assert_eq!(revealed.members[0].name, "王建国");
    assert_eq!(revealed.members[0].national_id, people[0].id);
    let accesses = store
        .read_stream(
            &sunshine_eventlog::StreamId::new("intake", "access", &household_id)?,
            1,
        )
        .await?;
    assert!(
        accesses.len() >= 3,
        "every read recorded: {}",
        accesses.len()
    );
    let found = client
        .find_household(with_token(
            pb::FindHouseholdRequest {
                national_id: people[2].id.clone(),
            },
            &clerk,
        )?)
        .await?
        .into_inner();
    assert_eq!(found.household_id, household_id);
    let accesses_after_lookup = store
        .read_stream(
            &sunshine_eventlog::StreamId::new("intake", "access", &household_id)?,
            1,
        )
        .await?;
    assert_eq!(
        accesses_after_lookup.len(),
        accesses.len() + 1,
        "the lookup is recorded too"
    );

    // No personal data in plain text anywhere in the log.
    let rows = sqlx::query("SELECT payload, metadata FROM events")
        .fetch_all(store.pool())
        .await?;
    let secrets: Vec<Vec<u8>> = people
        .iter()
        .flat_map(|person| {
            [
                person.name.as_bytes().to_vec(),
                person.id.as_bytes().to_vec(),
            ]
        })
        .chain([
            "幸福里".as_bytes().to_vec(),
            b"13812345678".to_vec(),
            b"6222020200112233".to_vec(),
            "长期卧床".as_bytes().to_vec(),
            "赵主任".as_bytes().to_vec(),
            relative_family[1].id.as_bytes().to_vec(),
        ])
        .collect();
    for row in &rows {
        use sqlx::Row as _;
        let payload: Vec<u8> = row.try_get(0)?;
        let metadata: String = row.try_get(1)?;
        for secret in &secrets {
            assert!(
                !payload
                    .windows(secret.len())
                    .any(|window| window == secret.as_slice()),
                "plain personal data in a payload"
            );
            assert!(
                !metadata
                    .as_bytes()
                    .windows(secret.len())
                    .any(|window| window == secret.as_slice())
            );
        }
    }

    database.close().await;
    intake.stop().await?;
    review.stop().await?;
    drop(keep);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn intake_on_postgres_and_nats() -> anyhow::Result<()> {
    scenario(true).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn intake_on_sqlite_and_the_in_process_bus() -> anyhow::Result<()> {
    scenario(false).await
}
