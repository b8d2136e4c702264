//! Intake against people who would help themselves (issue 9): one person in two households,
//! the dead registered again, moves to nowhere, households outside one's scope told apart
//! from households that do not exist, masked views that give the id back, reveals for no
//! reason, bulk reads, and input too large or too strange for an append-only log. Every test
//! runs on PostgreSQL + NATS JetStream and on SQLite + the in-process bus.

use std::time::Duration;

use prost::Message as _;
use sunshine_eventlog::{EventStore, StreamId};
use sunshine_platform::{Config, Role};
use sunshine_proto::v1 as pb;
use sunshine_proto::v1::intake_service_client::IntakeServiceClient;
use sunshine_tests::events::{decoded, is};
use sunshine_tests::households::{Person, date, dibao_application, family, national_id};
use sunshine_tests::{
    DISTRICT, RunningService, STREET_TOWN, ScenarioBackends, TestAuth, VILLAGE, test_config,
    violated_fields, with_token,
};
use tonic::Code;
use tonic::transport::Channel;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_types::StatusExt as _;

const PATIENCE: Duration = Duration::from_secs(30);
/// Another village of the same street-town as [`VILLAGE`].
const NEIGHBOUR_VILLAGE: &str = "990101001002";
/// A village of another street-town.
const FAR_VILLAGE: &str = "990101002001";
const FAR_STREET_TOWN: &str = "990101002000";

/// Runs a scenario on both backends, as `<name>::on_postgres_and_nats` and
/// `<name>::on_sqlite_and_the_in_process_bus`.
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn on_postgres_and_nats() -> anyhow::Result<()> {
                    super::$name(true).await
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn on_sqlite_and_the_in_process_bus() -> anyhow::Result<()> {
                    super::$name(false).await
                }
            }
        )*
    };
}

on_both_backends!(
    a_registration_retried_with_other_members_is_refused_and_claims_nobody,
    racing_registrations_of_one_person_leave_one_claim,
    every_command_refuses_its_command_id_reused_with_other_content,
    a_recorded_death_keeps_the_person_claimed_until_the_center_corrects_it,
    org_units_outside_the_district_tree_are_refused,
    after_a_move_the_old_village_loses_the_household_and_its_applications,
    out_of_scope_reads_exactly_like_not_found_and_is_recorded,
    a_member_registered_elsewhere_is_named_only_within_scope,
    a_masked_household_leaves_the_ids_unknown,
    reveal_needs_a_role_a_live_case_and_a_purpose,
    list_pages_are_capped_at_one_hundred,
    reads_beyond_the_hourly_limit_are_refused_across_replicas_and_recorded,
    concurrent_reads_of_one_household_are_each_recorded,
    oversized_and_invisible_input_is_refused_before_anything_is_written,
    wrong_roles_are_refused_and_write_nothing,
);

/// One intake service on fresh backends, a client and a direct view of the log.
struct Sandbox {
    auth: TestAuth,
    config: Config,
    intake: RunningService,
    client: IntakeServiceClient<Channel>,
    store: EventStore,
    database: sunshine_platform::backends::Database,
    _backends: ScenarioBackends,
}

impl Sandbox {
    async fn start(cluster: bool) -> anyhow::Result<Sandbox> {
        Sandbox::start_with(cluster, |_| {}).await
    }

    async fn start_with(
        cluster: bool,
        configure: impl FnOnce(&mut Config),
    ) -> anyhow::Result<Sandbox> {
        let auth = TestAuth::new()?;
        let backends = ScenarioBackends::start(cluster).await?;
        let mut config = test_config(&auth, backends.database_url(), backends.bus_url());
        configure(&mut config);
        // The service logs in as its own least-privileged role; the test reads as the owner.
        let config = backends.service_config(&config, sunshine_intake::SERVICE_NAME);
        let intake = start_intake(&config).await?;
        let client = IntakeServiceClient::new(intake.channel().await?);
        let database = sunshine_platform::backends::Database::connect(
            &sunshine_platform::config::DatabaseConfig {
                url: backends.database_url(),
                ..Default::default()
            },
        )
        .await?;
        let store = EventStore::from_database(&database);
        Ok(Sandbox {
            auth,
            config,
            intake,
            client,
            store,
            database,
            _backends: backends,
        })
    }

    fn token(&self, role: Role, org_unit: &str) -> String {
        self.auth.token(role, org_unit)
    }

    fn clerk(&self, village: &str) -> String {
        self.auth
            .token_for(&format!("clerk-{village}"), Role::VillageClerk, village)
    }

    async fn register(
        &mut self,
        command_id: &str,
        village: &str,
        people: &[Person],
    ) -> Result<pb::RegisterHouseholdResponse, tonic::Status> {
        let mut request = sunshine_tests::households::registration(command_id, people);
        request.hukou_org_unit_code = village.into();
        let token = self.clerk(village);
        let request = with_token(request, &token)
            .map_err(|error| tonic::Status::internal(error.to_string()))?;
        Ok(self.client.register_household(request).await?.into_inner())
    }

    async fn household(
        &mut self,
        household_id: &str,
        token: &str,
    ) -> Result<pb::Household, tonic::Status> {
        let request = with_token(
            pb::GetHouseholdRequest {
                household_id: household_id.into(),
                ..Default::default()
            },
            token,
        )
        .map_err(|error| tonic::Status::internal(error.to_string()))?;
        Ok(self
            .client
            .get_household(request)
            .await?
            .into_inner()
            .household
            .unwrap_or_default())
    }

    async fn count(&self, sql: &'static str) -> anyhow::Result<i64> {
        Ok(sqlx::query_scalar(sql).fetch_one(self.store.pool()).await?)
    }

    /// Events and data keys: what "nothing was written" counts.
    async fn written(&self) -> anyhow::Result<(i64, i64)> {
        Ok((
            self.count("SELECT COUNT(*) FROM events").await?,
            self.count("SELECT COUNT(*) FROM data_keys").await?,
        ))
    }

    async fn stream(
        &self,
        service_kind_id: (&str, &str, &str),
    ) -> anyhow::Result<Vec<sunshine_eventlog::RecordedEvent>> {
        let (service, kind, id) = service_kind_id;
        Ok(self
            .store
            .read_stream(&StreamId::new(service, kind, id)?, 1)
            .await?)
    }

    /// Waits until intake's read model has applied every event in the log.
    async fn wait_projected(&self) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let behind =
                sunshine_tests::events_behind(self.store.pool(), "intake-read-model").await?;
            if behind == 0 {
                return Ok(());
            }
            anyhow::ensure!(
                tokio::time::Instant::now() < deadline,
                "the read model is {behind} events behind"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn stop(self) -> anyhow::Result<()> {
        self.database.close().await;
        self.intake.stop().await
    }
}

async fn start_intake(config: &Config) -> anyhow::Result<RunningService> {
    let intake = RunningService::start(
        sunshine_intake::SERVICE_NAME,
        config.clone(),
        sunshine_intake::run_sharing_process,
    )
    .await?;
    intake
        .wait_for_health(ServingStatus::Serving, PATIENCE)
        .await?;
    Ok(intake)
}

fn assert_invalid(result: Result<impl std::fmt::Debug, tonic::Status>, field: &str) {
    let status = result.expect_err(field);
    assert_eq!(status.code(), Code::InvalidArgument, "{field}: {status:?}");
    let fields = violated_fields(&status);
    assert!(
        fields.iter().any(|violated| violated == field),
        "{field} not in {fields:?}"
    );
}

fn person(name: &'static str, birth: (i32, i32, i32), sequence: u32) -> Person {
    Person {
        name,
        id: national_id(
            &format!("{:04}{:02}{:02}", birth.0, birth.1, birth.2),
            sequence,
        ),
        birth,
        relation: pb::Relation::Head,
    }
}

fn as_head(mut people: Vec<Person>) -> Vec<Person> {
    for (index, someone) in people.iter_mut().enumerate() {
        someone.relation = if index == 0 {
            pb::Relation::Head
        } else {
            pb::Relation::Child
        };
    }
    people
}

fn change(
    command_id: &str,
    household: &pb::Household,
    fen: i64,
) -> pb::RecordCircumstanceChangeRequest {
    pb::RecordCircumstanceChangeRequest {
        command_id: command_id.into(),
        household_id: household.household_id.clone(),
        expected_version: household.version,
        incomes: vec![pb::MemberIncome {
            member_id: household.members[0].member_id.clone(),
            monthly_income: vec![pb::IncomeItem {
                kind: "wages".into(),
                monthly_amount: Some(pb::Money { fen }),
            }],
        }],
        assets: None,
        reason: "新工作".into(),
    }
}

fn death(command_id: &str, household: &pb::Household, member: usize) -> pb::RecordDeathRequest {
    pb::RecordDeathRequest {
        command_id: command_id.into(),
        household_id: household.household_id.clone(),
        expected_version: household.version,
        member_id: household.members[member].member_id.clone(),
        date_of_death: date(2026, 10, 1),
        reason: "死亡证明".into(),
    }
}

fn relocation(command_id: &str, household: &pb::Household, to: &str) -> pb::RecordMoveRequest {
    pb::RecordMoveRequest {
        command_id: command_id.into(),
        household_id: household.household_id.clone(),
        expected_version: household.version,
        new_hukou_org_unit_code: to.into(),
        new_address: "示例区西城街道和平路8号".into(),
        reason: "户口迁移".into(),
    }
}

// ---- 1. One person in two households ----

async fn a_registration_retried_with_other_members_is_refused_and_claims_nobody(
    cluster: bool,
) -> anyhow::Result<()> {
    let mut sandbox = Sandbox::start(cluster).await?;
    let people = family(1);
    let clerk = sandbox.clerk(VILLAGE);
    let first = sandbox.register("reg-1", VILLAGE, &people[..2]).await?;

    // The same command id with one member more: refused, naming the command id.
    let with_extra = sunshine_tests::households::registration("reg-1", &people[..3]);
    let before = sandbox.written().await?;
    let refused = sandbox
        .client
        .register_household(with_token(with_extra, &clerk)?)
        .await
        .expect_err("other content under the same command id");
    assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");
    assert_eq!(violated_fields(&refused), ["command_id"]);
    assert!(refused.message().contains("reg-1"), "{}", refused.message());
    // With one member fewer: refused too, and the original members stay claimed.
    let with_fewer = sunshine_tests::households::registration("reg-1", &people[..1]);
    let refused = sandbox
        .client
        .register_household(with_token(with_fewer, &clerk)?)
        .await
        .expect_err("other content under the same command id");
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert_eq!(
        sandbox.written().await?,
        before,
        "refused retries wrote nothing"
    );

    // The faithful retry is answered as the first.
    let retried = sandbox.register("reg-1", VILLAGE, &people[..2]).await?;
    assert_eq!(
        (retried.household_id.as_str(), &retried.member_ids),
        (first.household_id.as_str(), &first.member_ids)
    );

    // The extra member was never claimed: another village registers them.
    let elsewhere = sandbox
        .register(
            "reg-2",
            NEIGHBOUR_VILLAGE,
            &as_head(vec![people[2].clone()]),
        )
        .await?;
    assert_eq!(elsewhere.member_ids.len(), 1);
    // …and the original members still belong to the first household.
    let status = sandbox
        .register(
            "reg-3",
            NEIGHBOUR_VILLAGE,
            &as_head(vec![people[1].clone()]),
        )
        .await
        .expect_err("still claimed");
    assert_eq!(status.code(), Code::AlreadyExists);

    // The person index holds exactly the three registered members.
    sandbox.wait_projected().await?;
    assert_eq!(
        sandbox
            .count("SELECT COUNT(*) FROM intake_person_index")
            .await?,
        3
    );
    sandbox.stop().await
}

async fn racing_registrations_of_one_person_leave_one_claim(cluster: bool) -> anyhow::Result<()> {
    let sandbox = Sandbox::start(cluster).await?;
    let shared = person("赵一", (1970, 5, 5), 101);
    let mut requests = Vec::new();
    for (index, village) in [VILLAGE, NEIGHBOUR_VILLAGE, FAR_VILLAGE, "990101002002"]
        .into_iter()
        .enumerate()
    {
        let own = person("孙二", (1980, 1, 1), 110 + index as u32 * 2);
        let mut people = vec![own, shared.clone()];
        people[1].relation = pb::Relation::Spouse;
        let mut request =
            sunshine_tests::households::registration(&format!("race-{index}"), &people);
        request.hukou_org_unit_code = village.into();
        requests.push((request, sandbox.clerk(village)));
    }
    let mut calls = Vec::new();
    for (request, token) in requests {
        let mut client = sandbox.client.clone();
        calls.push(tokio::spawn(async move {
            client
                .register_household(with_token(request, &token).expect("token"))
                .await
        }));
    }
    let mut won = 0;
    for call in calls {
        match call.await? {
            Ok(_) => won += 1,
            Err(status) => assert_eq!(status.code(), Code::AlreadyExists, "{status:?}"),
        }
    }
    assert_eq!(won, 1, "exactly one household has the shared person");
    sandbox.wait_projected().await?;
    // Two claims: the winner's two members; the losers' own members were never claimed.
    assert_eq!(
        sandbox
            .count("SELECT COUNT(*) FROM intake_person_index")
            .await?,
        2
    );
    assert_eq!(
        sandbox
            .count(
                "SELECT COUNT(*) FROM events WHERE event_type = 'sunshine.v1.HouseholdRegistered'"
            )
            .await?,
        1
    );
    sandbox.stop().await
}

async fn every_command_refuses_its_command_id_reused_with_other_content(
    cluster: bool,
) -> anyhow::Result<()> {
    let mut sandbox = Sandbox::start(cluster).await?;
    let clerk = sandbox.clerk(VILLAGE);
    let center = sandbox.token(Role::CenterReviewer, DISTRICT);
    let registered = sandbox.register("reg", VILLAGE, &family(2)).await?;
    let household_id = registered.household_id.clone();

    // Circumstance change.
    let household = sandbox.household(&household_id, &clerk).await?;
    let first = change("chg", &household, 100_000);
    let version = sandbox
        .client
        .record_circumstance_change(with_token(first.clone(), &clerk)?)
        .await?
        .into_inner()
        .version;
    let again = sandbox
        .client
        .record_circumstance_change(with_token(first, &clerk)?)
        .await?
        .into_inner()
        .version;
    assert_eq!(again, version, "a faithful retry answers the same");
    assert_invalid(
        sandbox
            .client
            .record_circumstance_change(with_token(change("chg", &household, 999_999), &clerk)?)
            .await,
        "command_id",
    );

    // Death.
    let household = sandbox.household(&household_id, &clerk).await?;
    let died = death("death", &household, 3);
    sandbox
        .client
        .record_death(with_token(died.clone(), &clerk)?)
        .await?;
    sandbox
        .client
        .record_death(with_token(died.clone(), &clerk)?)
        .await?;
    let mut other_member = died.clone();
    other_member.member_id = household.members[2].member_id.clone();
    assert_invalid(
        sandbox
            .client
            .record_death(with_token(other_member, &clerk)?)
            .await,
        "command_id",
    );

    // Correction of a death.
    let household = sandbox.household(&household_id, &clerk).await?;
    let correction = pb::CorrectDeathRecordRequest {
        command_id: "correct".into(),
        household_id: household_id.clone(),
        expected_version: household.version,
        member_id: household.members[3].member_id.clone(),
        reason: "死亡证明登记错人".into(),
    };
    sandbox
        .client
        .correct_death_record(with_token(correction.clone(), &center)?)
        .await?;
    sandbox
        .client
        .correct_death_record(with_token(correction.clone(), &center)?)
        .await?;
    let mut reworded = correction;
    reworded.reason = "另一个理由".into();
    assert_invalid(
        sandbox
            .client
            .correct_death_record(with_token(reworded, &center)?)
            .await,
        "command_id",
    );

    // Submission.
    let application = dibao_application("app", &household_id, &registered.member_ids[0]);
    let accepted = sandbox
        .client
        .submit_application(with_token(application.clone(), &clerk)?)
        .await?
        .into_inner();
    let retried = sandbox
        .client
        .submit_application(with_token(application.clone(), &clerk)?)
        .await?
        .into_inner();
    assert_eq!(retried.case_id, accepted.case_id);
    let mut other_program = application;
    other_program
        .declared_facts
        .insert("illness".into(), "另一种说法".into());
    assert_invalid(
        sandbox
            .client
            .submit_application(with_token(other_program, &clerk)?)
            .await,
        "command_id",
    );

    // Move.
    let household = sandbox.household(&household_id, &clerk).await?;
    let moved = relocation("move", &household, NEIGHBOUR_VILLAGE);
    let mut elsewhere = moved.clone();
    elsewhere.new_hukou_org_unit_code = FAR_VILLAGE.into();
    sandbox
        .client
        .record_move(with_token(moved.clone(), &clerk)?)
        .await?;
    // A retry still gets its answer, though the household has left the clerk's village.
    sandbox
        .client
        .record_move(with_token(moved, &clerk)?)
        .await?;
    assert_invalid(
        sandbox
            .client
            .record_move(with_token(elsewhere, &clerk)?)
            .await,
        "command_id",
    );

    // The registry of officials' relatives.
    let relative = pb::RegisterOfficialRelativeRequest {
        command_id: "official".into(),
        official_subject: "cadre-1".into(),
        official_name: "赵主任".into(),
        official_position: "村委会主任".into(),
        official_org_unit_code: VILLAGE.into(),
        relative_national_id: family(3)[0].id.clone(),
        relation: "sibling".into(),
    };
    let registration_id = sandbox
        .client
        .register_official_relative(with_token(relative.clone(), &center)?)
        .await?
        .into_inner()
        .registration_id;
    let again = sandbox
        .client
        .register_official_relative(with_token(relative.clone(), &center)?)
        .await?
        .into_inner()
        .registration_id;
    assert_eq!(again, registration_id);
    let mut other_relative = relative;
    other_relative.relative_national_id = family(4)[0].id.clone();
    assert_invalid(
        sandbox
            .client
            .register_official_relative(with_token(other_relative, &center)?)
            .await,
        "command_id",
    );
    sandbox.wait_projected().await?;
    assert_eq!(
        sandbox
            .count("SELECT COUNT(*) FROM intake_official_relatives")
            .await?,
        1
    );
    sandbox.stop().await
}

// ---- 2. The dead come back ----

async fn a_recorded_death_keeps_the_person_claimed_until_the_center_corrects_it(
    cluster: bool,
) -> anyhow::Result<()> {
    let mut sandbox = Sandbox::start(cluster).await?;
    let clerk = sandbox.clerk(VILLAGE);
    let people = family(5);
    let registered = sandbox.register("reg", VILLAGE, &people).await?;
    let household = sandbox.household(&registered.household_id, &clerk).await?;
    sandbox
        .client
        .record_death(with_token(death("death", &household, 3), &clerk)?)
        .await?;
    // The read model has seen the death (it once freed the id here).
    sandbox.wait_projected().await?;

    // Another street's village registers her as a living head: refused, no household named.
    let grandmother = as_head(vec![people[3].clone()]);
    let mut again = sunshine_tests::households::registration("again", &grandmother);
    again.hukou_org_unit_code = FAR_VILLAGE.into();
    let refused = sandbox
        .client
        .register_household(with_token(again, &sandbox.clerk(FAR_VILLAGE))?)
        .await
        .expect_err("recorded as deceased");
    assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");
    assert!(
        refused.message().contains("recorded as deceased"),
        "{}",
        refused.message()
    );
    assert!(!refused.message().contains(&registered.household_id));
    assert!(!refused.message().contains(&people[3].id));
    // Within scope the household is named, so the clerk can go and correct it.
    let refused_here = sandbox
        .register("again-here", VILLAGE, &grandmother)
        .await
        .expect_err("recorded as deceased");
    assert_eq!(refused_here.code(), Code::FailedPrecondition);
    assert!(refused_here.message().contains(&registered.household_id));

    // Correcting the record is the district center's, with a reason, as its own event.
    let household = sandbox.household(&registered.household_id, &clerk).await?;
    let correction = pb::CorrectDeathRecordRequest {
        command_id: "correct".into(),
        household_id: registered.household_id.clone(),
        expected_version: household.version,
        member_id: registered.member_ids[3].clone(),
        reason: "死亡证明登记错人".into(),
    };
    let denied = sandbox
        .client
        .correct_death_record(with_token(correction.clone(), &clerk)?)
        .await
        .expect_err("a clerk may not");
    assert_eq!(denied.code(), Code::PermissionDenied);
    let street = sandbox.token(Role::StreetReviewer, STREET_TOWN);
    let denied = sandbox
        .client
        .correct_death_record(with_token(correction.clone(), &street)?)
        .await
        .expect_err("a street reviewer may not");
    assert_eq!(denied.code(), Code::PermissionDenied);
    let mut no_reason = correction.clone();
    no_reason.reason = " ".into();
    let center = sandbox.token(Role::CenterReviewer, DISTRICT);
    assert_invalid(
        sandbox
            .client
            .correct_death_record(with_token(no_reason, &center)?)
            .await,
        "reason",
    );
    sandbox
        .client
        .correct_death_record(with_token(correction, &center)?)
        .await?;
    let corrected = sandbox.household(&registered.household_id, &clerk).await?;
    assert!(corrected.members[3].alive);
    assert_eq!(corrected.members[3].date_of_death, None);
    // A living member's death cannot be "corrected".
    let living = pb::CorrectDeathRecordRequest {
        command_id: "correct-living".into(),
        household_id: registered.household_id.clone(),
        expected_version: corrected.version,
        member_id: registered.member_ids[0].clone(),
        reason: "误操作".into(),
    };
    let refused = sandbox
        .client
        .correct_death_record(with_token(living, &center)?)
        .await
        .expect_err("not deceased");
    assert_eq!(refused.code(), Code::FailedPrecondition);
    let events = sandbox
        .stream(("intake", "household", &registered.household_id))
        .await?;
    let recorded = events
        .iter()
        .find(|stored| is::<pb::DeathRecordCorrected>(stored))
        .expect("the correction is in the log");
    assert_eq!(recorded.metadata()?.actor.role, "center_reviewer");
    let payload = pb::DeathRecordCorrected::decode(recorded.payload.as_slice())?;
    assert_eq!(payload.recorded_date_of_death, date(2026, 10, 1));
    assert!(!payload.sealed_reason.is_empty());
    // She is alive and still this household's: registering her elsewhere is still refused.
    let mut elsewhere = sunshine_tests::households::registration("again-2", &grandmother);
    elsewhere.hukou_org_unit_code = FAR_VILLAGE.into();
    let refused = sandbox
        .client
        .register_household(with_token(elsewhere, &sandbox.clerk(FAR_VILLAGE))?)
        .await
        .expect_err("still a member");
    assert_eq!(refused.code(), Code::AlreadyExists);
    sandbox.stop().await
}

// ---- 3. Moves to nowhere ----

async fn org_units_outside_the_district_tree_are_refused(cluster: bool) -> anyhow::Result<()> {
    let mut sandbox = Sandbox::start(cluster).await?;
    let clerk = sandbox.clerk(VILLAGE);
    let center = sandbox.token(Role::CenterReviewer, DISTRICT);
    let registered = sandbox.register("reg", VILLAGE, &family(6)).await?;
    let household = sandbox.household(&registered.household_id, &clerk).await?;
    let before = sandbox.written().await?;
    for (target, why) in [
        ("990102001001", "another-district"),
        ("990101001099", "no-such-village"),
        ("990101009001", "no-such-street-town"),
    ] {
        let status = sandbox
            .client
            .record_move(with_token(relocation(why, &household, target), &clerk)?)
            .await
            .expect_err(why);
        assert_eq!(status.code(), Code::InvalidArgument, "{why}");
        assert!(
            status
                .message()
                .contains("not an org unit of this district"),
            "{why}: {}",
            status.message()
        );
        assert_eq!(violated_fields(&status), ["new_hukou_org_unit_code"]);
    }
    assert_invalid(
        sandbox
            .client
            .record_move(with_token(
                relocation("street", &household, STREET_TOWN),
                &clerk,
            )?)
            .await,
        "new_hukou_org_unit_code",
    );
    let mut nowhere = sunshine_tests::households::registration("nowhere", &family(7));
    nowhere.hukou_org_unit_code = "990101001099".into();
    assert_invalid(
        sandbox
            .client
            .register_household(with_token(nowhere, &center)?)
            .await,
        "hukou_org_unit_code",
    );
    assert_invalid(
        sandbox
            .client
            .list_applications(with_token(
                pb::ListApplicationsRequest {
                    org_unit_code: "990102000000".into(),
                    ..Default::default()
                },
                &center,
            )?)
            .await,
        "org_unit_code",
    );
    assert_invalid(
        sandbox
            .client
            .register_official_relative(with_token(
                pb::RegisterOfficialRelativeRequest {
                    command_id: "official".into(),
                    official_subject: "cadre-1".into(),
                    official_name: "赵主任".into(),
                    official_position: "村委会主任".into(),
                    official_org_unit_code: "990101001099".into(),
                    relative_national_id: family(8)[0].id.clone(),
                    relation: "sibling".into(),
                },
                &center,
            )?)
            .await,
        "official_org_unit_code",
    );
    assert_eq!(sandbox.written().await?, before, "nothing written");
    sandbox.stop().await
}

async fn after_a_move_the_old_village_loses_the_household_and_its_applications(
    cluster: bool,
) -> anyhow::Result<()> {
    let mut sandbox = Sandbox::start(cluster).await?;
    let clerk = sandbox.clerk(VILLAGE);
    let far_clerk = sandbox.clerk(FAR_VILLAGE);
    let registered = sandbox.register("reg", VILLAGE, &family(9)).await?;
    let accepted = sandbox
        .client
        .submit_application(with_token(
            dibao_application("app", &registered.household_id, &registered.member_ids[0]),
            &clerk,
        )?)
        .await?
        .into_inner();
    let household = sandbox.household(&registered.household_id, &clerk).await?;
    // The far village cannot move a household it does not have.
    let status = sandbox
        .client
        .record_move(with_token(
            relocation("steal", &household, FAR_VILLAGE),
            &far_clerk,
        )?)
        .await
        .expect_err("not theirs");
    assert_eq!(status.code(), Code::NotFound);
    sandbox
        .client
        .record_move(with_token(
            relocation("move", &household, FAR_VILLAGE),
            &clerk,
        )?)
        .await?;

    // HouseholdMoved carries what review needs to move the cases.
    let events = sandbox
        .stream(("intake", "household", &registered.household_id))
        .await?;
    let moved = events
        .iter()
        .find(|stored| is::<pb::HouseholdMoved>(stored))
        .expect("moved");
    let moved = pb::HouseholdMoved::decode(moved.payload.as_slice())?;
    assert_eq!(
        (
            moved.household_id.as_str(),
            moved.from_org_unit_code.as_str(),
            moved.to_org_unit_code.as_str()
        ),
        (registered.household_id.as_str(), VILLAGE, FAR_VILLAGE)
    );
    assert!(moved.reason.is_empty() && !moved.sealed_reason.is_empty());

    // The old village: no household, no application, no second move.
    let status = sandbox
        .household(&registered.household_id, &clerk)
        .await
        .expect_err("moved away");
    assert_eq!(status.code(), Code::NotFound);
    let household = sandbox
        .household(&registered.household_id, &far_clerk)
        .await?;
    let status = sandbox
        .client
        .record_move(with_token(relocation("back", &household, VILLAGE), &clerk)?)
        .await
        .expect_err("moved away");
    assert_eq!(status.code(), Code::NotFound);
    sandbox.wait_projected().await?;
    let list = |token: String, org_unit: &'static str| {
        let mut client = sandbox.client.clone();
        async move {
            client
                .list_applications(with_token(
                    pb::ListApplicationsRequest {
                        org_unit_code: org_unit.into(),
                        ..Default::default()
                    },
                    &token,
                )?)
                .await
                .map(|response| response.into_inner().applications)
                .map_err(anyhow::Error::from)
        }
    };
    let old = list(clerk.clone(), VILLAGE).await?;
    assert!(
        old.iter()
            .all(|summary| summary.case_id != accepted.case_id),
        "the old village no longer lists the application"
    );
    let old_street = list(
        sandbox.token(Role::StreetReviewer, STREET_TOWN),
        STREET_TOWN,
    )
    .await?;
    assert!(
        old_street
            .iter()
            .all(|summary| summary.case_id != accepted.case_id)
    );
    let new = list(far_clerk.clone(), FAR_VILLAGE).await?;
    assert!(
        new.iter()
            .any(|summary| summary.case_id == accepted.case_id)
    );
    let new_street = list(
        sandbox.token(Role::StreetReviewer, FAR_STREET_TOWN),
        FAR_STREET_TOWN,
    )
    .await?;
    assert!(
        new_street
            .iter()
            .any(|summary| summary.case_id == accepted.case_id)
    );
    sandbox.stop().await
}

// ---- 7. Out of scope reads exactly like not found ----

/// The status for the household with id `real`, rewritten as if the request had named
/// `absent`: what an identical "does not exist" would look like.
fn same_as_absent(out_of_scope: &tonic::Status, absent: &tonic::Status, real: &str, fake: &str) {
    assert_eq!(out_of_scope.code(), Code::NotFound, "{out_of_scope:?}");
    assert_eq!(absent.code(), Code::NotFound, "{absent:?}");
    assert_eq!(out_of_scope.message().replace(real, fake), absent.message());
    assert_eq!(
        format!("{:?}", out_of_scope.get_error_details()),
        format!("{:?}", absent.get_error_details()),
        "same details"
    );
    assert!(out_of_scope.get_error_details().resource_info().is_none());
    assert!(
        !out_of_scope.message().contains("990101"),
        "no org unit named"
    );
}

async fn out_of_scope_reads_exactly_like_not_found_and_is_recorded(
    cluster: bool,
) -> anyhow::Result<()> {
    let mut sandbox = Sandbox::start(cluster).await?;
    let clerk = sandbox.clerk(VILLAGE);
    let people = family(10);
    let registered = sandbox.register("reg", VILLAGE, &people).await?;
    let real = registered.household_id.clone();
    let fake = uuid::Uuid::new_v4().to_string();
    let household = sandbox.household(&real, &clerk).await?;
    let mut absent_household = household.clone();
    absent_household.household_id = fake.clone();
    let outsider = sandbox
        .auth
        .token_for("outsider-1", Role::StreetReviewer, FAR_STREET_TOWN);
    let neighbour = sandbox
        .auth
        .token_for("neighbour-1", Role::VillageClerk, NEIGHBOUR_VILLAGE);
    let before = sandbox.count("SELECT COUNT(*) FROM events").await?;

    let mut attempts = 0;
    for token in [&outsider, &neighbour] {
        let mut client = sandbox.client.clone();
        let get = |id: &str| pb::GetHouseholdRequest {
            household_id: id.into(),
            ..Default::default()
        };
        let (out, absent) = (
            client
                .get_household(with_token(get(&real), token)?)
                .await
                .expect_err("get"),
            client
                .get_household(with_token(get(&fake), token)?)
                .await
                .expect_err("get"),
        );
        same_as_absent(&out, &absent, &real, &fake);
        let (out, absent) = (
            client
                .record_circumstance_change(with_token(change("c-out", &household, 1), token)?)
                .await
                .expect_err("change"),
            client
                .record_circumstance_change(with_token(
                    change("c-abs", &absent_household, 1),
                    token,
                )?)
                .await
                .expect_err("change"),
        );
        same_as_absent(&out, &absent, &real, &fake);
        let (out, absent) = (
            client
                .record_death(with_token(death("d-out", &household, 0), token)?)
                .await
                .expect_err("death"),
            client
                .record_death(with_token(death("d-abs", &absent_household, 0), token)?)
                .await
                .expect_err("death"),
        );
        same_as_absent(&out, &absent, &real, &fake);
        let (out, absent) = (
            client
                .record_move(with_token(
                    relocation("m-out", &household, FAR_VILLAGE),
                    token,
                )?)
                .await
                .expect_err("move"),
            client
                .record_move(with_token(
                    relocation("m-abs", &absent_household, FAR_VILLAGE),
                    token,
                )?)
                .await
                .expect_err("move"),
        );
        same_as_absent(&out, &absent, &real, &fake);
        let (out, absent) = (
            client
                .submit_application(with_token(
                    dibao_application("a-out", &real, &registered.member_ids[0]),
                    token,
                )?)
                .await
                .expect_err("submit"),
            client
                .submit_application(with_token(
                    dibao_application("a-abs", &fake, &registered.member_ids[0]),
                    token,
                )?)
                .await
                .expect_err("submit"),
        );
        same_as_absent(&out, &absent, &real, &fake);
        let nobody = national_id("19990101", 999);
        let (out, absent) = (
            client
                .find_household(with_token(
                    pb::FindHouseholdRequest {
                        national_id: people[1].id.clone(),
                    },
                    token,
                )?)
                .await
                .expect_err("find"),
            client
                .find_household(with_token(
                    pb::FindHouseholdRequest {
                        national_id: nobody,
                    },
                    token,
                )?)
                .await
                .expect_err("find"),
        );
        same_as_absent(&out, &absent, &real, &fake);
        attempts += 6;
    }

    // Nothing was written but the record of each attempt, on the household's access stream.
    let accesses = sandbox.stream(("intake", "access", &real)).await?;
    let attempted: Vec<(String, String)> = accesses
        .iter()
        .filter(|stored| is::<pb::OutOfScopeAccessAttempted>(stored))
        .map(|stored| {
            let payload =
                pb::OutOfScopeAccessAttempted::decode(stored.payload.as_slice()).expect("payload");
            let metadata = stored.metadata().expect("metadata");
            (metadata.actor.subject, payload.rpc)
        })
        .collect();
    assert_eq!(attempted.len(), attempts, "{attempted:?}");
    for rpc in [
        "GetHousehold",
        "RecordCircumstanceChange",
        "RecordDeath",
        "RecordMove",
        "SubmitApplication",
        "FindHousehold",
    ] {
        for subject in ["outsider-1", "neighbour-1"] {
            assert!(
                attempted.contains(&(subject.to_owned(), rpc.to_owned())),
                "{subject} {rpc} in {attempted:?}"
            );
        }
    }
    assert_eq!(
        sandbox.count("SELECT COUNT(*) FROM events").await?,
        before + attempts as i64,
        "only the attempts were written"
    );

    // A command id of this household's reused by the outsider names no stream.
    let reused = sandbox
        .client
        .record_circumstance_change(with_token(change("c-in", &household, 5), &clerk)?)
        .await?;
    drop(reused);
    let mut stolen = change("c-in", &household, 6);
    stolen.reason = "别的".into();
    let status = sandbox
        .client
        .record_circumstance_change(with_token(stolen, &outsider)?)
        .await
        .expect_err("reused");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(!status.message().contains(&real), "{}", status.message());
    sandbox.stop().await
}

async fn a_member_registered_elsewhere_is_named_only_within_scope(
    cluster: bool,
) -> anyhow::Result<()> {
    let mut sandbox = Sandbox::start(cluster).await?;
    let people = family(11);
    let registered = sandbox.register("reg", VILLAGE, &people).await?;
    let head = as_head(vec![people[2].clone()]);

    // From another village: ALREADY_EXISTS, nothing about the other household.
    let mut request = sunshine_tests::households::registration("elsewhere", &head);
    request.hukou_org_unit_code = NEIGHBOUR_VILLAGE.into();
    let status = sandbox
        .client
        .register_household(with_token(request, &sandbox.clerk(NEIGHBOUR_VILLAGE))?)
        .await
        .expect_err("a member of another household");
    assert_eq!(status.code(), Code::AlreadyExists);
    assert!(
        !status.message().contains(&registered.household_id),
        "{}",
        status.message()
    );
    assert!(status.get_error_details().resource_info().is_none());
    assert!(!status.message().contains(&people[2].id));
    let accesses = sandbox
        .stream(("intake", "access", &registered.household_id))
        .await?;
    assert!(
        accesses.iter().any(is::<pb::OutOfScopeAccessAttempted>),
        "the probe is on the household's record"
    );

    // From the street-town over both villages: named.
    let mut request = sunshine_tests::households::registration("street", &head);
    request.hukou_org_unit_code = NEIGHBOUR_VILLAGE.into();
    let status = sandbox
        .client
        .register_household(with_token(
            request,
            &sandbox.token(Role::StreetReviewer, STREET_TOWN),
        )?)
        .await
        .expect_err("a member of another household");
    assert_eq!(status.code(), Code::AlreadyExists);
    assert!(status.message().contains(&registered.household_id));
    sandbox.stop().await
}

// ---- 12. A masked read must not rebuild the id ----

async fn a_masked_household_leaves_the_ids_unknown(cluster: bool) -> anyhow::Result<()> {
    let mut sandbox = Sandbox::start(cluster).await?;
    let clerk = sandbox.clerk(VILLAGE);
    let people = family(12);
    let registered = sandbox.register("reg", VILLAGE, &people).await?;
    let household = sandbox.household(&registered.household_id, &clerk).await?;
    assert!(!household.revealed && household.revealed_fields.is_empty());
    for (member, someone) in household.members.iter().zip(&people) {
        assert_eq!(member.birth_date, None, "no birth date in a masked view");
        assert_eq!(member.birth_year, someone.birth.0);
        assert_eq!(
            member.national_id,
            format!("{}**********{}", &someone.id[..6], &someone.id[16..])
        );
        assert_eq!(member.phone, "138******78");
    }
    assert_eq!(household.address, "示例区东******");
    let account = household.payment_account.clone().unwrap_or_default();
    assert_eq!(account.account_number, "************2233");
    assert_eq!(account.holder_name, "王**");

    // Everything the masked head shows, and every valid id that fits it.
    let head = &household.members[0];
    let (region, year) = (&head.national_id[..6], head.birth_year);
    let male = head.sex == pb::Sex::Male as i32;
    let mut candidates = 0;
    let mut day = time::Date::from_calendar_date(year, time::Month::January, 1)?;
    while day.year() == year {
        for sequence in 0..1000 {
            let body = format!(
                "{region}{year:04}{:02}{:02}{sequence:03}",
                u8::from(day.month()),
                day.day()
            );
            let full = sunshine_domain::NationalId::with_check_character(&body).expect("17 digits");
            let parsed = sunshine_domain::NationalId::parse(&full)?;
            if (parsed.sex() == sunshine_domain::Sex::Male) == male
                && parsed.masked() == head.national_id
            {
                candidates += 1;
            }
        }
        day = day.next_day().expect("a next day");
    }
    assert!(
        candidates >= 1_000,
        "only {candidates} ids fit the masked view"
    );

    // Error messages carry neither the id nor the birth date.
    let mut wrong_birth = sunshine_tests::households::registration("wrong", &family(13));
    wrong_birth.members[0].birth_date = date(1965, 3, 13);
    let status = sandbox
        .client
        .register_household(with_token(wrong_birth, &clerk)?)
        .await
        .expect_err("birth date mismatch");
    assert!(!status.message().contains("1965"), "{}", status.message());
    assert!(!status.message().contains(&family(13)[0].id[..14]));
    sandbox.stop().await
}

// ---- 13. Reveal is too broad ----

async fn reveal_needs_a_role_a_live_case_and_a_purpose(cluster: bool) -> anyhow::Result<()> {
    let mut sandbox = Sandbox::start(cluster).await?;
    let clerk = sandbox.clerk(VILLAGE);
    let people = family(14);
    let registered = sandbox.register("reg", VILLAGE, &people).await?;
    let other = sandbox.register("other", VILLAGE, &family(15)).await?;
    let accepted = sandbox
        .client
        .submit_application(with_token(
            dibao_application("app", &registered.household_id, &registered.member_ids[0]),
            &clerk,
        )?)
        .await?
        .into_inner();
    let other_case = sandbox
        .client
        .submit_application(with_token(
            dibao_application("other-app", &other.household_id, &other.member_ids[0]),
            &clerk,
        )?)
        .await?
        .into_inner()
        .case_id;
    let reveal = |purpose: pb::RevealPurpose, case_id: &str| pb::GetHouseholdRequest {
        household_id: registered.household_id.clone(),
        reveal_personal_data: true,
        purpose: "核对银行账户 for 王建国".into(),
        case_id: case_id.into(),
        reveal_purpose: purpose as i32,
    };

    // A finance officer sees the account, and nothing else.
    let finance = sandbox
        .auth
        .token_for("finance-1", Role::FinanceOfficer, DISTRICT);
    let shown = sandbox
        .client
        .get_household(with_token(
            reveal(pb::RevealPurpose::PaymentAccountCheck, &accepted.case_id),
            &finance,
        )?)
        .await?
        .into_inner()
        .household
        .unwrap_or_default();
    assert_eq!(shown.revealed_fields, ["payment_account"]);
    let account = shown.payment_account.clone().unwrap_or_default();
    assert_eq!(
        (
            account.account_number.as_str(),
            account.holder_name.as_str()
        ),
        ("6222020200112233", "王建国")
    );
    assert_eq!(shown.members[0].name, "王**");
    assert!(shown.members[0].national_id.contains('*'));
    assert!(shown.address.contains('*'));
    for purpose in [
        pb::RevealPurpose::HomeVisit,
        pb::RevealPurpose::VerifyIdentity,
        pb::RevealPurpose::Correction,
        pb::RevealPurpose::ApplicantRequest,
    ] {
        let status = sandbox
            .client
            .get_household(with_token(reveal(purpose, &accepted.case_id), &finance)?)
            .await
            .expect_err("finance reveals the account only");
        assert_eq!(status.code(), Code::PermissionDenied, "{purpose:?}");
    }
    // Overseers never reveal.
    for role in [Role::Auditor, Role::FinanceApprover, Role::CenterApprover] {
        let status = sandbox
            .client
            .get_household(with_token(
                reveal(pb::RevealPurpose::VerifyIdentity, &accepted.case_id),
                &sandbox.token(role, DISTRICT),
            )?)
            .await
            .expect_err("never");
        assert_eq!(status.code(), Code::PermissionDenied, "{role:?}");
    }
    // A caseworker needs a purpose, a free-text note and a live case of this household.
    let mut no_case = reveal(pb::RevealPurpose::HomeVisit, "");
    assert_invalid(
        sandbox
            .client
            .get_household(with_token(no_case.clone(), &clerk)?)
            .await,
        "case_id",
    );
    no_case.case_id = other_case;
    assert_invalid(
        sandbox
            .client
            .get_household(with_token(no_case, &clerk)?)
            .await,
        "case_id",
    );
    assert_invalid(
        sandbox
            .client
            .get_household(with_token(
                reveal(pb::RevealPurpose::Unspecified, &accepted.case_id),
                &clerk,
            )?)
            .await,
        "reveal_purpose",
    );
    let mut no_note = reveal(pb::RevealPurpose::HomeVisit, &accepted.case_id);
    no_note.purpose = String::new();
    assert_invalid(
        sandbox
            .client
            .get_household(with_token(no_note, &clerk)?)
            .await,
        "purpose",
    );
    let visit = sandbox
        .client
        .get_household(with_token(
            reveal(pb::RevealPurpose::HomeVisit, &accepted.case_id),
            &clerk,
        )?)
        .await?
        .into_inner()
        .household
        .unwrap_or_default();
    assert_eq!(visit.revealed_fields, ["names", "phones", "address"]);
    assert_eq!(visit.members[0].name, "王建国");
    assert_eq!(visit.members[0].phone, "13812345678");
    assert_eq!(visit.address, "示例区东城街道幸福里3号");
    assert!(
        visit.members[0].national_id.contains('*'),
        "ids stay masked on a visit"
    );
    assert_eq!(visit.members[0].birth_date, None);

    // Each reveal is an access event naming the case and the purpose, in the case's file; the
    // officer's note is sealed.
    let case_file = sandbox.store.read_case(&accepted.case_id).await?;
    let reveals: Vec<pb::PersonalDataAccessed> = decoded(&case_file)?;
    assert_eq!(reveals.len(), 2, "the two reveals that were allowed");
    assert_eq!(
        reveals[0].reveal_purpose,
        pb::RevealPurpose::PaymentAccountCheck as i32
    );
    assert_eq!(
        reveals[1].reveal_purpose,
        pb::RevealPurpose::HomeVisit as i32
    );
    for accessed in &reveals {
        assert_eq!(accessed.case_id, accepted.case_id);
        assert!(accessed.revealed && !accessed.sealed_note.is_empty());
    }
    let rows = sqlx::query_scalar::<_, Vec<u8>>("SELECT payload FROM events")
        .fetch_all(sandbox.store.pool())
        .await?;
    for payload in rows {
        assert!(
            !payload
                .windows("核对银行账户".len())
                .any(|window| window == "核对银行账户".as_bytes()),
            "the note is not in plain text"
        );
    }
    sandbox.stop().await
}

// ---- 14. Bulk reading ----

async fn list_pages_are_capped_at_one_hundred(cluster: bool) -> anyhow::Result<()> {
    let mut sandbox = Sandbox::start(cluster).await?;
    let center = sandbox.token(Role::CenterReviewer, DISTRICT);
    let page = |size: i32| pb::ListApplicationsRequest {
        page: Some(pb::PageRequest {
            page_size: size,
            page_token: String::new(),
        }),
        ..Default::default()
    };
    for size in [1_000_000, 101, -1, i32::MAX] {
        assert_invalid(
            sandbox
                .client
                .list_applications(with_token(page(size), &center)?)
                .await,
            "page.page_size",
        );
    }
    sandbox
        .client
        .list_applications(with_token(page(100), &center)?)
        .await?;
    let mut bad_token = page(10);
    bad_token.page = Some(pb::PageRequest {
        page_size: 10,
        page_token: "x".repeat(1_000_000),
    });
    assert_invalid(
        sandbox
            .client
            .list_applications(with_token(bad_token, &center)?)
            .await,
        "page.page_token",
    );
    let mut bad_status = page(10);
    bad_status.status = "\u{202E}submitted".into();
    assert_invalid(
        sandbox
            .client
            .list_applications(with_token(bad_status, &center)?)
            .await,
        "status",
    );
    sandbox.stop().await
}

async fn reads_beyond_the_hourly_limit_are_refused_across_replicas_and_recorded(
    cluster: bool,
) -> anyhow::Result<()> {
    let mut sandbox = Sandbox::start_with(cluster, |config| {
        config.privacy.personal_data_reads_per_officer_per_hour = 3;
    })
    .await?;
    let people = family(16);
    let registered = sandbox.register("reg", VILLAGE, &people).await?;
    let replica = start_intake(&sandbox.config).await?;
    let mut second = IntakeServiceClient::new(replica.channel().await?);
    let reader = sandbox
        .auth
        .token_for("reader-1", Role::VillageClerk, VILLAGE);
    let get = || pb::GetHouseholdRequest {
        household_id: registered.household_id.clone(),
        ..Default::default()
    };
    sandbox
        .client
        .get_household(with_token(get(), &reader)?)
        .await?;
    second.get_household(with_token(get(), &reader)?).await?;
    second
        .find_household(with_token(
            pb::FindHouseholdRequest {
                national_id: people[0].id.clone(),
            },
            &reader,
        )?)
        .await?;
    // The fourth read, on either replica, is refused.
    for client in [&mut sandbox.client, &mut second] {
        let status = client
            .get_household(with_token(get(), &reader)?)
            .await
            .expect_err("over the limit");
        assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    }
    let status = second
        .find_household(with_token(
            pb::FindHouseholdRequest {
                national_id: people[1].id.clone(),
            },
            &reader,
        )?)
        .await
        .expect_err("over the limit");
    assert_eq!(status.code(), Code::ResourceExhausted);
    // Another officer has their own hour.
    let colleague = sandbox
        .auth
        .token_for("reader-2", Role::VillageClerk, VILLAGE);
    sandbox
        .client
        .get_household(with_token(get(), &colleague)?)
        .await?;

    // Each refusal is an event naming the officer.
    let refusals = sqlx::query_scalar::<_, String>(
        "SELECT metadata FROM events WHERE event_type = 'sunshine.v1.PersonalDataReadRefused' ORDER BY sequence",
    )
    .fetch_all(sandbox.store.pool())
    .await?;
    assert_eq!(refusals.len(), 3);
    for metadata in &refusals {
        assert!(metadata.contains("reader-1"), "{metadata}");
    }
    let accesses = sandbox
        .stream(("intake", "access", &registered.household_id))
        .await?;
    assert_eq!(
        accesses.len(),
        4,
        "three reads of reader-1 and one of reader-2"
    );
    replica.stop().await?;
    sandbox.stop().await
}

async fn concurrent_reads_of_one_household_are_each_recorded(cluster: bool) -> anyhow::Result<()> {
    let mut sandbox = Sandbox::start(cluster).await?;
    let registered = sandbox.register("reg", VILLAGE, &family(23)).await?;
    let outsider = sandbox.clerk(FAR_VILLAGE);
    let mut calls = Vec::new();
    for reader in 0..12 {
        let mut client = sandbox.client.clone();
        let token = if reader % 3 == 0 {
            outsider.clone()
        } else {
            sandbox
                .auth
                .token_for(&format!("reader-{reader}"), Role::VillageClerk, VILLAGE)
        };
        let household_id = registered.household_id.clone();
        calls.push(tokio::spawn(async move {
            let request = pb::GetHouseholdRequest {
                household_id,
                ..Default::default()
            };
            client
                .get_household(with_token(request, &token).expect("token"))
                .await
                .map(drop)
        }));
    }
    for (reader, call) in calls.into_iter().enumerate() {
        match call.await? {
            Ok(()) => assert!(reader % 3 != 0, "the outsider read it"),
            Err(status) => {
                assert_eq!(
                    (reader % 3, status.code()),
                    (0, Code::NotFound),
                    "{status:?}"
                )
            }
        }
    }
    let accesses = sandbox
        .stream(("intake", "access", &registered.household_id))
        .await?;
    assert_eq!(
        accesses.len(),
        12,
        "every read and every attempt is on the record"
    );
    sandbox.stop().await
}

// ---- 15. Input limits ----

async fn oversized_and_invisible_input_is_refused_before_anything_is_written(
    cluster: bool,
) -> anyhow::Result<()> {
    let mut sandbox = Sandbox::start(cluster).await?;
    let clerk = sandbox.clerk(VILLAGE);
    let center = sandbox.token(Role::CenterReviewer, DISTRICT);
    let registered = sandbox.register("reg", VILLAGE, &family(17)).await?;
    let accepted = sandbox
        .client
        .submit_application(with_token(
            dibao_application("app", &registered.household_id, &registered.member_ids[0]),
            &clerk,
        )?)
        .await?
        .into_inner();
    let household = sandbox.household(&registered.household_id, &clerk).await?;
    let before = sandbox.written().await?;

    // Registration.
    for (bad, field) in [
        ("王\u{202E}国", "members[0].name"),
        ("王\u{200B}国", "members[0].name"),
        ("\u{FEFF}王国", "members[0].name"),
        ("王\u{2066}国", "members[0].name"),
        ("王\u{0007}国", "members[0].name"),
    ] {
        let mut request = sunshine_tests::households::registration("bad-name", &family(18));
        request.members[0].name = bad.into();
        assert_invalid(
            sandbox
                .client
                .register_household(with_token(request, &clerk)?)
                .await,
            field,
        );
    }
    let mut request = sunshine_tests::households::registration("bad-address", &family(18));
    request.address = "地".repeat(1024 * 1024);
    request.payment_account = Some(pb::PaymentAccount {
        bank: "银".repeat(61),
        account_number: "1".repeat(35),
        holder_name: "王\u{200D}建国".into(),
    });
    request.members[1].monthly_income = vec![
        pb::IncomeItem {
            kind: "wages".into(),
            monthly_amount: Some(pb::Money { fen: 1 }),
        };
        31
    ];
    request.members[2].school_stage = "x".repeat(41);
    let status = sandbox
        .client
        .register_household(with_token(request, &clerk)?)
        .await
        .expect_err("invalid");
    let fields = violated_fields(&status);
    for field in [
        "address",
        "payment_account.bank",
        "payment_account.account_number",
        "payment_account.holder_name",
        "members[1].monthly_income",
        "members[2].school_stage",
    ] {
        assert!(fields.contains(&field.to_owned()), "{field} in {fields:?}");
    }

    // Circumstance change: 20,000 income entries; an entry twice.
    let mut flood = change("flood", &household, 1);
    flood.incomes = vec![flood.incomes[0].clone(); 20_000];
    assert_invalid(
        sandbox
            .client
            .record_circumstance_change(with_token(flood, &clerk)?)
            .await,
        "incomes",
    );
    let mut twice = change("twice", &household, 1);
    twice.incomes.push(twice.incomes[0].clone());
    assert_invalid(
        sandbox
            .client
            .record_circumstance_change(with_token(twice, &clerk)?)
            .await,
        "incomes[1].member_id",
    );
    let mut long_reason = change("long", &household, 1);
    long_reason.reason = "因".repeat(1_001);
    assert_invalid(
        sandbox
            .client
            .record_circumstance_change(with_token(long_reason, &clerk)?)
            .await,
        "reason",
    );

    // Submission: a 2 MiB key, a key that is not an identifier, too many facts, a long value.
    let application =
        || dibao_application("facts", &registered.household_id, &registered.member_ids[0]);
    for (facts, field) in [
        (
            [("k".repeat(2 * 1024 * 1024), "x".to_owned())].into(),
            "declared_facts",
        ),
        (
            [("ill\u{202E}ness".to_owned(), "x".to_owned())].into(),
            "declared_facts",
        ),
        (
            (0..31)
                .map(|index| (format!("fact_{index}"), "x".to_owned()))
                .collect(),
            "declared_facts",
        ),
        (
            [("illness".to_owned(), "病".repeat(1_001))].into(),
            "declared_facts.illness",
        ),
    ] {
        let mut request = application();
        request.declared_facts = facts;
        let status = sandbox
            .client
            .submit_application(with_token(request, &clerk)?)
            .await
            .expect_err(field);
        assert_eq!(status.code(), Code::InvalidArgument);
        assert_eq!(violated_fields(&status), [field]);
        assert!(status.message().len() < 2_000, "the key is not echoed");
    }
    let mut request = application();
    request.documents = sunshine_tests::households::documents(&["application_form"; 51]);
    assert_invalid(
        sandbox
            .client
            .submit_application(with_token(request, &clerk)?)
            .await,
        "documents",
    );

    // Death, correction, move, registry, reveal.
    let mut bell = death("bell", &household, 1);
    bell.reason = "死亡\u{0007}".into();
    assert_invalid(
        sandbox.client.record_death(with_token(bell, &clerk)?).await,
        "reason",
    );
    assert_invalid(
        sandbox
            .client
            .correct_death_record(with_token(
                pb::CorrectDeathRecordRequest {
                    command_id: "correct".into(),
                    household_id: registered.household_id.clone(),
                    expected_version: household.version,
                    member_id: registered.member_ids[1].clone(),
                    reason: "误".repeat(1_001),
                },
                &center,
            )?)
            .await,
        "reason",
    );
    let mut move_request = relocation("bom", &household, NEIGHBOUR_VILLAGE);
    move_request.new_address = "\u{FEFF}和平路".into();
    assert_invalid(
        sandbox
            .client
            .record_move(with_token(move_request, &clerk)?)
            .await,
        "new_address",
    );
    assert_invalid(
        sandbox
            .client
            .register_official_relative(with_token(
                pb::RegisterOfficialRelativeRequest {
                    command_id: "official".into(),
                    official_subject: "cadre-1".into(),
                    official_name: "赵\u{2066}主任".into(),
                    official_position: "主".repeat(101),
                    official_org_unit_code: VILLAGE.into(),
                    relative_national_id: family(19)[0].id.clone(),
                    relation: "sibling".into(),
                },
                &center,
            )?)
            .await,
        "official_name",
    );
    assert_invalid(
        sandbox
            .client
            .get_household(with_token(
                pb::GetHouseholdRequest {
                    household_id: registered.household_id.clone(),
                    reveal_personal_data: true,
                    purpose: "入户\u{202E}".into(),
                    case_id: accepted.case_id.clone(),
                    reveal_purpose: pb::RevealPurpose::HomeVisit as i32,
                },
                &clerk,
            )?)
            .await,
        "purpose",
    );
    for bad in [
        "1".repeat(3 * 1024 * 1024),
        format!("{}\u{200B}", &family(17)[0].id[..17]),
        format!(" {}", family(17)[0].id),
    ] {
        assert_invalid(
            sandbox
                .client
                .find_household(with_token(
                    pb::FindHouseholdRequest { national_id: bad },
                    &clerk,
                )?)
                .await,
            "national_id",
        );
    }
    assert_eq!(sandbox.written().await?, before, "no event and no data key");

    // A valid move of a household that does not exist, or is not the caller's, writes nothing
    // either: not even a data key to seal the new address with.
    let mut absent = household.clone();
    absent.household_id = uuid::Uuid::new_v4().to_string();
    let status = sandbox
        .client
        .record_move(with_token(
            relocation("ghost", &absent, NEIGHBOUR_VILLAGE),
            &clerk,
        )?)
        .await
        .expect_err("no such household");
    assert_eq!(status.code(), Code::NotFound);
    assert_eq!(sandbox.written().await?, before);
    let stale = relocation(
        "stale",
        &pb::Household {
            version: 1,
            ..household.clone()
        },
        NEIGHBOUR_VILLAGE,
    );
    let status = sandbox
        .client
        .record_move(with_token(stale, &clerk)?)
        .await
        .expect_err("stale version");
    assert_eq!(status.code(), Code::Aborted);
    assert_eq!(sandbox.written().await?, before);
    sandbox.stop().await
}

// ---- Roles ----

async fn wrong_roles_are_refused_and_write_nothing(cluster: bool) -> anyhow::Result<()> {
    let mut sandbox = Sandbox::start(cluster).await?;
    let clerk = sandbox.clerk(VILLAGE);
    let registered = sandbox.register("reg", VILLAGE, &family(20)).await?;
    let household = sandbox.household(&registered.household_id, &clerk).await?;
    let before = sandbox.written().await?;
    let auditor = sandbox.token(Role::Auditor, DISTRICT);
    let finance = sandbox.token(Role::FinanceOfficer, DISTRICT);
    let department = sandbox.token(Role::Department, DISTRICT);
    let admin = sandbox.token(Role::Admin, DISTRICT);
    let mut client = sandbox.client.clone();
    let mut denied = Vec::new();
    denied.push(
        client
            .register_household(with_token(
                sunshine_tests::households::registration("x", &family(21)),
                &auditor,
            )?)
            .await
            .map(drop),
    );
    denied.push(
        client
            .record_circumstance_change(with_token(change("x", &household, 1), &finance)?)
            .await
            .map(drop),
    );
    denied.push(
        client
            .record_death(with_token(death("x", &household, 1), &auditor)?)
            .await
            .map(drop),
    );
    denied.push(
        client
            .record_move(with_token(
                relocation("x", &household, FAR_VILLAGE),
                &finance,
            )?)
            .await
            .map(drop),
    );
    denied.push(
        client
            .submit_application(with_token(
                dibao_application("x", &registered.household_id, &registered.member_ids[0]),
                &department,
            )?)
            .await
            .map(drop),
    );
    denied.push(
        client
            .correct_death_record(with_token(
                pb::CorrectDeathRecordRequest {
                    command_id: "x".into(),
                    household_id: registered.household_id.clone(),
                    expected_version: household.version,
                    member_id: registered.member_ids[1].clone(),
                    reason: "误".into(),
                },
                &admin,
            )?)
            .await
            .map(drop),
    );
    denied.push(
        client
            .register_official_relative(with_token(
                pb::RegisterOfficialRelativeRequest {
                    command_id: "x".into(),
                    official_subject: "cadre-1".into(),
                    official_name: "赵主任".into(),
                    official_position: "村委会主任".into(),
                    official_org_unit_code: VILLAGE.into(),
                    relative_national_id: family(22)[0].id.clone(),
                    relation: "sibling".into(),
                },
                &clerk,
            )?)
            .await
            .map(drop),
    );
    denied.push(
        client
            .get_household(with_token(
                pb::GetHouseholdRequest {
                    household_id: registered.household_id.clone(),
                    ..Default::default()
                },
                &department,
            )?)
            .await
            .map(drop),
    );
    denied.push(
        client
            .find_household(with_token(
                pb::FindHouseholdRequest {
                    national_id: family(20)[0].id.clone(),
                },
                &admin,
            )?)
            .await
            .map(drop),
    );
    denied.push(
        client
            .list_applications(with_token(
                pb::ListApplicationsRequest::default(),
                &department,
            )?)
            .await
            .map(drop),
    );
    for (index, outcome) in denied.into_iter().enumerate() {
        let status = outcome.expect_err("denied");
        assert_eq!(
            status.code(),
            Code::PermissionDenied,
            "call {index}: {status:?}"
        );
    }
    // Outside one's scope: registering in another village, listing another street-town.
    let mut elsewhere = sunshine_tests::households::registration("x", &family(21));
    elsewhere.hukou_org_unit_code = NEIGHBOUR_VILLAGE.into();
    let status = client
        .register_household(with_token(elsewhere, &clerk)?)
        .await
        .expect_err("not the clerk's village");
    assert_eq!(status.code(), Code::PermissionDenied);
    let status = client
        .list_applications(with_token(
            pb::ListApplicationsRequest {
                org_unit_code: FAR_STREET_TOWN.into(),
                ..Default::default()
            },
            &sandbox.token(Role::StreetReviewer, STREET_TOWN),
        )?)
        .await
        .expect_err("not the reviewer's street-town");
    assert_eq!(status.code(), Code::PermissionDenied);
    // A clerk's token that claims the district's code is not a token at all (platform auth).
    let clerk_as_district = sandbox.token(Role::VillageClerk, DISTRICT);
    let status = client
        .get_household(with_token(
            pb::GetHouseholdRequest {
                household_id: registered.household_id.clone(),
                ..Default::default()
            },
            &clerk_as_district,
        )?)
        .await
        .expect_err("above its tier");
    assert_eq!(status.code(), Code::Unauthenticated);
    let status = client
        .register_household(with_token(
            sunshine_tests::households::registration("x", &family(21)),
            &clerk_as_district,
        )?)
        .await
        .expect_err("above its tier");
    assert_eq!(status.code(), Code::Unauthenticated);
    assert_eq!(sandbox.written().await?, before);
    sandbox.stop().await
}

// ---- 1c. The person index over random command sequences ----

mod person_index_over_random_commands {
    #[test]
    fn on_postgres_and_nats() -> anyhow::Result<()> {
        super::person_index_over_random_commands(true)
    }

    #[test]
    fn on_sqlite_and_the_in_process_bus() -> anyhow::Result<()> {
        super::person_index_over_random_commands(false)
    }
}

/// People each case chooses from (fresh ids per case).
const POOL: usize = 6;
const VILLAGES: [&str; 3] = [VILLAGE, NEIGHBOUR_VILLAGE, FAR_VILLAGE];

/// One command of a random sequence; `pick` chooses among earlier registrations or
/// households, `by` the village whose clerk sends it (often not the household's).
#[derive(Debug, Clone)]
enum Step {
    Register {
        village: usize,
        people: Vec<usize>,
        invalid: bool,
    },
    RetrySame {
        pick: usize,
    },
    RetryWithAnotherMember {
        pick: usize,
        extra: usize,
    },
    Move {
        pick: usize,
        to: usize,
        by: usize,
    },
    Death {
        pick: usize,
        member: usize,
        by: usize,
    },
    Change {
        pick: usize,
        by: usize,
    },
}

fn step() -> impl proptest::strategy::Strategy<Value = Step> {
    use proptest::prelude::*;
    prop_oneof![
        4 => (0..VILLAGES.len(), proptest::collection::vec(0..POOL, 1..=3), proptest::bool::weighted(0.15))
            .prop_map(|(village, people, invalid)| Step::Register { village, people, invalid }),
        1 => any::<usize>().prop_map(|pick| Step::RetrySame { pick }),
        2 => (any::<usize>(), 0..POOL).prop_map(|(pick, extra)| Step::RetryWithAnotherMember { pick, extra }),
        1 => (any::<usize>(), 0..VILLAGES.len(), 0..VILLAGES.len()).prop_map(|(pick, to, by)| Step::Move { pick, to, by }),
        2 => (any::<usize>(), any::<usize>(), 0..VILLAGES.len()).prop_map(|(pick, member, by)| Step::Death { pick, member, by }),
        1 => (any::<usize>(), 0..VILLAGES.len()).prop_map(|(pick, by)| Step::Change { pick, by }),
    ]
}

/// Registers, retries (faithfully and not), moves, deaths, changes and failed calls in random
/// order, then checks that the person index is exactly the members of the registered
/// households: nobody in two households, no claim without a member, no member unclaimed.
fn person_index_over_random_commands(cluster: bool) -> anyhow::Result<()> {
    use proptest::test_runner::{Config, TestCaseError, TestRunner};
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let sandbox = runtime.block_on(Sandbox::start_with(cluster, |config| {
        config.privacy.personal_data_reads_per_officer_per_hour = 1_000_000;
    }))?;
    let cases = std::sync::atomic::AtomicU32::new(0);
    let mut runner = TestRunner::new(Config {
        cases: 12,
        max_shrink_iters: 32,
        failure_persistence: None,
        ..Config::default()
    });
    let outcome = runner.run(&proptest::collection::vec(step(), 1..24), |steps| {
        let case = cases.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        runtime
            .block_on(async {
                run_steps(&sandbox, case, &steps).await?;
                check_person_index(&sandbox.store).await
            })
            .map_err(|error| TestCaseError::fail(format!("{error:#}")))
    });
    runtime.block_on(sandbox.stop())?;
    outcome.map_err(|error| anyhow::anyhow!("{error}"))
}

/// The codes a refused command may answer with; anything else is a fault.
const REFUSALS: [Code; 5] = [
    Code::InvalidArgument,
    Code::AlreadyExists,
    Code::FailedPrecondition,
    Code::NotFound,
    Code::Aborted,
];

async fn run_steps(sandbox: &Sandbox, case: u32, steps: &[Step]) -> anyhow::Result<()> {
    const NAMES: [&str; POOL] = ["甲一", "乙二", "丙三", "丁四", "戊五", "己六"];
    let mut client = sandbox.client.clone();
    let clerks: Vec<String> = VILLAGES
        .iter()
        .map(|village| sandbox.clerk(village))
        .collect();
    let reader = sandbox
        .auth
        .token_for("property-reader", Role::CenterReviewer, DISTRICT);
    let birth = time::Date::from_calendar_date(1950, time::Month::January, 1)?
        + time::Duration::days(i64::from(case));
    let birth_text = format!(
        "{:04}{:02}{:02}",
        birth.year(),
        u8::from(birth.month()),
        birth.day()
    );
    let pool: Vec<Person> = (0..POOL)
        .map(|index| Person {
            name: NAMES[index],
            id: national_id(&birth_text, 101 + index as u32),
            birth: (
                birth.year(),
                i32::from(u8::from(birth.month())),
                i32::from(birth.day()),
            ),
            relation: pb::Relation::Head,
        })
        .collect();
    let mut attempts: Vec<(pb::RegisterHouseholdRequest, usize)> = Vec::new();
    let mut registered: std::collections::HashMap<String, String> = Default::default();
    let mut households: Vec<String> = Vec::new();

    for (index, step) in steps.iter().enumerate() {
        let command_id = format!("p{case}-{index}");
        let (request, village, original) = match step {
            Step::Register {
                village,
                people,
                invalid,
            } => {
                let mut members = Vec::new();
                for (position, chosen) in people.iter().enumerate() {
                    let mut member = sunshine_tests::households::member(&pool[*chosen], 0);
                    member.relation = if position == 0 {
                        pb::Relation::Head as i32
                    } else {
                        pb::Relation::Child as i32
                    };
                    members.push(member);
                }
                if *invalid && let Some(last) = members.last_mut() {
                    let flipped = if last.national_id.ends_with('1') {
                        '2'
                    } else {
                        '1'
                    };
                    last.national_id = format!("{}{flipped}", &last.national_id[..17]);
                }
                let request = pb::RegisterHouseholdRequest {
                    command_id,
                    hukou_org_unit_code: VILLAGES[*village].into(),
                    address: "示例区某地1号".into(),
                    members,
                    assets: None,
                    payment_account: None,
                };
                attempts.push((request.clone(), *village));
                (request, *village, None)
            }
            Step::RetrySame { pick } => {
                let Some((request, village)) = pick_from(&attempts, *pick) else {
                    continue;
                };
                (request.clone(), *village, Some(true))
            }
            Step::RetryWithAnotherMember { pick, extra } => {
                let Some((request, village)) = pick_from(&attempts, *pick) else {
                    continue;
                };
                let mut request = request.clone();
                let mut member = sunshine_tests::households::member(&pool[*extra], 0);
                member.relation = pb::Relation::Child as i32;
                request.members.push(member);
                (request, *village, Some(false))
            }
            Step::Move { pick, to, by } => {
                let Some(household) = current(&mut client, &households, *pick, &reader).await?
                else {
                    continue;
                };
                let outcome = client
                    .record_move(with_token(
                        relocation(&command_id, &household, VILLAGES[*to]),
                        &clerks[*by],
                    )?)
                    .await;
                expect_refusal_or_success(outcome.map(drop), step)?;
                continue;
            }
            Step::Death { pick, member, by } => {
                let Some(household) = current(&mut client, &households, *pick, &reader).await?
                else {
                    continue;
                };
                let member = member % household.members.len();
                let outcome = client
                    .record_death(with_token(
                        death(&command_id, &household, member),
                        &clerks[*by],
                    )?)
                    .await;
                expect_refusal_or_success(outcome.map(drop), step)?;
                continue;
            }
            Step::Change { pick, by } => {
                let Some(household) = current(&mut client, &households, *pick, &reader).await?
                else {
                    continue;
                };
                let outcome = client
                    .record_circumstance_change(with_token(
                        change(&command_id, &household, 100),
                        &clerks[*by],
                    )?)
                    .await;
                expect_refusal_or_success(outcome.map(drop), step)?;
                continue;
            }
        };
        let member_count = request.members.len();
        let sent_command = request.command_id.clone();
        let outcome = client
            .register_household(with_token(request, &clerks[village])?)
            .await
            .map(tonic::Response::into_inner);
        let first_answer = registered.get(&sent_command).cloned();
        match (&outcome, original, first_answer) {
            (Ok(answer), Some(true), Some(household_id)) => {
                anyhow::ensure!(
                    answer.household_id == household_id,
                    "a retry answers the first household"
                );
            }
            (Err(status), Some(true), Some(_)) => {
                anyhow::bail!("a faithful retry of a registration was refused: {status:?}")
            }
            (Ok(_), Some(false), Some(_)) => {
                anyhow::bail!("a retry with another member answered OK: {step:?}")
            }
            (Err(status), Some(false), Some(_)) => {
                anyhow::ensure!(status.code() == Code::InvalidArgument, "{status:?}");
            }
            _ => {}
        }
        match outcome {
            Ok(answer) => {
                anyhow::ensure!(
                    answer.member_ids.len() == member_count,
                    "answered OK with {} of {member_count} members: {step:?}",
                    answer.member_ids.len()
                );
                if registered
                    .insert(sent_command, answer.household_id.clone())
                    .is_none()
                {
                    households.push(answer.household_id);
                }
            }
            Err(status) => {
                anyhow::ensure!(REFUSALS.contains(&status.code()), "{step:?}: {status:?}");
            }
        }
    }
    Ok(())
}

fn pick_from<T>(items: &[T], pick: usize) -> Option<&T> {
    if items.is_empty() {
        None
    } else {
        items.get(pick % items.len())
    }
}

/// The household as it is now (read by a district officer, who sees every household).
async fn current(
    client: &mut IntakeServiceClient<Channel>,
    households: &[String],
    pick: usize,
    reader: &str,
) -> anyhow::Result<Option<pb::Household>> {
    let Some(household_id) = pick_from(households, pick) else {
        return Ok(None);
    };
    let household = client
        .get_household(with_token(
            pb::GetHouseholdRequest {
                household_id: household_id.clone(),
                ..Default::default()
            },
            reader,
        )?)
        .await?
        .into_inner()
        .household;
    Ok(household)
}

fn expect_refusal_or_success(
    outcome: Result<(), tonic::Status>,
    step: &Step,
) -> anyhow::Result<()> {
    match outcome {
        Ok(()) => Ok(()),
        Err(status) if REFUSALS.contains(&status.code()) => Ok(()),
        Err(status) => anyhow::bail!("{step:?}: {status:?}"),
    }
}

/// The person index is exactly the members of the registered households, and nobody is a
/// member of two.
async fn check_person_index(store: &EventStore) -> anyhow::Result<()> {
    use sqlx::Row as _;
    let mut members = std::collections::BTreeMap::new();
    let payloads = sqlx::query_scalar::<_, Vec<u8>>(
        "SELECT payload FROM events WHERE event_type = 'sunshine.v1.HouseholdRegistered'",
    )
    .fetch_all(store.pool())
    .await?;
    for payload in payloads {
        let registered = pb::HouseholdRegistered::decode(payload.as_slice())?;
        for member in registered.members {
            let index = hex_of(&member.national_id_index);
            let holder = (registered.household_id.clone(), member.member_id.clone());
            if let Some(earlier) = members.insert(index, holder.clone()) {
                anyhow::bail!("one person in two households: {earlier:?} and {holder:?}");
            }
        }
    }
    let mut claims = std::collections::BTreeMap::new();
    for row in
        sqlx::query("SELECT national_id_index, household_id, member_id FROM intake_person_index")
            .fetch_all(store.pool())
            .await?
    {
        claims.insert(
            row.try_get::<String, _>(0)?,
            (row.try_get::<String, _>(1)?, row.try_get::<String, _>(2)?),
        );
    }
    if claims != members {
        let unregistered: Vec<_> = claims
            .iter()
            .filter(|(index, _)| !members.contains_key(*index))
            .collect();
        let unclaimed: Vec<_> = members
            .iter()
            .filter(|(index, _)| !claims.contains_key(*index))
            .collect();
        anyhow::bail!(
            "claims without a member: {unregistered:?}; members without a claim: {unclaimed:?}"
        );
    }
    Ok(())
}

fn hex_of(bytes: &[u8]) -> String {
    let mut text = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        text.push_str(&format!("{byte:02x}"));
    }
    text
}
