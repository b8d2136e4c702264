//! Household composition through gRPC, on PostgreSQL + NATS JetStream and on SQLite + the
//! in-process bus: a person joins a household (AddHouseholdMember) and GetHousehold shows them;
//! the same person cannot join a second household (a person belongs to one), until they leave
//! the first (RemoveHouseholdMember), and then they can. Hostile callers and input are refused
//! without writing anything: a role that never registers households, a clerk of another street
//! (to whom the household does not exist), control characters and oversized names, a resident
//! id with a wrong check character (the field named), the head joining or leaving, and a command
//! id reused with other content. No joining person's name or id number is stored in plain text.

use std::time::Duration;

use sunshine_eventlog::EventStore;
use sunshine_platform::Role;
use sunshine_proto::v1 as pb;
use sunshine_proto::v1::intake_service_client::IntakeServiceClient;
use sunshine_tests::households::{Person, date, family, member, national_id, registration};
use sunshine_tests::{
    RunningService, ScenarioBackends, TestAuth, VILLAGE, test_config, violated_fields, with_token,
};
use tonic::Code;
use tonic::transport::Channel;
use tonic_health::pb::health_check_response::ServingStatus;

const PATIENCE: Duration = Duration::from_secs(30);
/// A village of another street-town.
const FAR_VILLAGE: &str = "990101002001";
const DISTRICT: &str = "990101000000";
/// A household id nobody registered.
const UNKNOWN_HOUSEHOLD: &str = "0190f3c4-0000-7000-8000-0000000000ff";

async fn event_count(store: &EventStore) -> anyhow::Result<i64> {
    Ok(sqlx::query_scalar("SELECT COUNT(*) FROM events")
        .fetch_one(store.pool())
        .await?)
}

fn joining(
    command_id: &str,
    household_id: &str,
    version: u64,
    person: &Person,
) -> pb::AddHouseholdMemberRequest {
    pb::AddHouseholdMemberRequest {
        command_id: command_id.into(),
        household_id: household_id.into(),
        expected_version: version,
        member: Some(member(person, 0)),
        reason: pb::JoinReason::Marriage as i32,
        note: String::new(),
    }
}

fn leaving(
    command_id: &str,
    household_id: &str,
    version: u64,
    member_id: &str,
) -> pb::RemoveHouseholdMemberRequest {
    pb::RemoveHouseholdMemberRequest {
        command_id: command_id.into(),
        household_id: household_id.into(),
        expected_version: version,
        member_id: member_id.into(),
        reason: pb::LeaveReason::MarriedOut as i32,
        effective_date: date(2026, 1, 5),
        note: String::new(),
    }
}

async fn members_of(
    client: &mut IntakeServiceClient<Channel>,
    token: &str,
    household_id: &str,
) -> anyhow::Result<(u64, Vec<String>)> {
    let household = client
        .get_household(with_token(
            pb::GetHouseholdRequest {
                household_id: household_id.into(),
                ..Default::default()
            },
            token,
        )?)
        .await?
        .into_inner()
        .household
        .ok_or_else(|| anyhow::anyhow!("no household in the answer"))?;
    Ok((
        household.version,
        household
            .members
            .into_iter()
            .map(|member| member.member_id)
            .collect(),
    ))
}

fn refused<T: std::fmt::Debug>(result: Result<tonic::Response<T>, tonic::Status>) -> tonic::Status {
    match result {
        Ok(answer) => panic!("expected a refusal, got {answer:?}"),
        Err(status) => status,
    }
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
    intake
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
    let mut client = IntakeServiceClient::new(intake.channel().await?);
    let clerk = auth.token(Role::VillageClerk, VILLAGE);
    let far_clerk = auth.token(Role::VillageClerk, FAR_VILLAGE);
    let finance = auth.token(Role::FinanceOfficer, DISTRICT);

    let seed = if cluster { 21 } else { 22 };
    let a = client
        .register_household(with_token(registration("reg-a", &family(seed)), &clerk)?)
        .await?
        .into_inner();
    let b = client
        .register_household(with_token(
            registration("reg-b", &family(seed + 2)),
            &clerk,
        )?)
        .await?
        .into_inner();
    let bride = Person {
        name: "赵新娘",
        id: national_id("19960606", seed),
        birth: (1996, 6, 6),
        relation: pb::Relation::Other,
    };

    // ---- The person joins A: GetHousehold shows them ----
    let joined = client
        .add_household_member(with_token(
            joining("join-a", &a.household_id, a.version, &bride),
            &clerk,
        )?)
        .await?
        .into_inner();
    assert_eq!(joined.version, a.version + 1);
    let (version_a, members_a) = members_of(&mut client, &clerk, &a.household_id).await?;
    assert_eq!(version_a, joined.version);
    assert_eq!(members_a.len(), 5);
    assert!(members_a.contains(&joined.member_id));
    // A faithful retry answers the same; other content under the same id is refused on it.
    let retried = client
        .add_household_member(with_token(
            joining("join-a", &a.household_id, a.version, &bride),
            &clerk,
        )?)
        .await?
        .into_inner();
    assert_eq!(retried, joined);
    let before = event_count(&store).await?;
    let someone_else = Person {
        id: national_id("19960606", seed + 500),
        ..bride.clone()
    };
    let reused = refused(
        client
            .add_household_member(with_token(
                joining("join-a", &a.household_id, a.version, &someone_else),
                &clerk,
            )?)
            .await,
    );
    assert_eq!(reused.code(), Code::InvalidArgument, "{reused:?}");
    assert_eq!(violated_fields(&reused), ["command_id"]);

    // ---- The same person cannot join B: they are A's ----
    let second = refused(
        client
            .add_household_member(with_token(
                joining("join-b", &b.household_id, b.version, &bride),
                &clerk,
            )?)
            .await,
    );
    assert_eq!(second.code(), Code::AlreadyExists, "{second:?}");
    assert!(
        second.message().contains(&a.household_id),
        "{}",
        second.message()
    );
    // Nor join A twice under another command id.
    let twice = refused(
        client
            .add_household_member(with_token(
                joining("join-a-2", &a.household_id, joined.version, &bride),
                &clerk,
            )?)
            .await,
    );
    assert_eq!(twice.code(), Code::AlreadyExists, "{twice:?}");

    // ---- Hostile callers and input: refused, nothing written ----
    let wrong_role = refused(
        client
            .add_household_member(with_token(
                joining("join-x-1", &b.household_id, b.version, &someone_else),
                &finance,
            )?)
            .await,
    );
    assert_eq!(wrong_role.code(), Code::PermissionDenied, "{wrong_role:?}");
    let mut bad_name = joining("join-x-2", &b.household_id, b.version, &someone_else);
    if let Some(member) = bad_name.member.as_mut() {
        member.name = "赵\u{7}新娘".into();
    }
    let mut huge_name = joining("join-x-3", &b.household_id, b.version, &someone_else);
    if let Some(member) = huge_name.member.as_mut() {
        member.name = "赵".repeat(51);
    }
    let mut bad_checksum = joining("join-x-4", &b.household_id, b.version, &someone_else);
    if let Some(member) = bad_checksum.member.as_mut() {
        let flipped = if member.national_id.ends_with('1') {
            "2"
        } else {
            "1"
        };
        member.national_id = format!("{}{flipped}", &member.national_id[..17]);
    }
    let mut head = joining("join-x-5", &b.household_id, b.version, &someone_else);
    if let Some(member) = head.member.as_mut() {
        member.relation = pb::Relation::Head as i32;
    }
    let mut no_note = joining("join-x-6", &b.household_id, b.version, &someone_else);
    no_note.reason = pb::JoinReason::Other as i32;
    for (request, field) in [
        (bad_name, "member.name"),
        (huge_name, "member.name"),
        (bad_checksum, "member.national_id"),
        (head, "member.relation"),
        (no_note, "note"),
    ] {
        let status = refused(
            client
                .add_household_member(with_token(request, &clerk)?)
                .await,
        );
        assert_eq!(status.code(), Code::InvalidArgument, "{field}: {status:?}");
        assert!(
            violated_fields(&status).iter().any(|named| named == field),
            "{field} in {:?}",
            violated_fields(&status)
        );
        assert!(
            !status.message().contains(&someone_else.id[..14]),
            "the id number in a refusal"
        );
    }
    let mut bad_leave = leaving("leave-x-1", &a.household_id, joined.version, "not-a-uuid");
    bad_leave.effective_date = date(2999, 1, 1);
    let status = refused(
        client
            .remove_household_member(with_token(bad_leave, &clerk)?)
            .await,
    );
    assert_eq!(status.code(), Code::InvalidArgument);
    let named = violated_fields(&status);
    assert!(
        named.contains(&"member_id".to_owned()) && named.contains(&"effective_date".to_owned()),
        "{named:?}"
    );
    assert_eq!(
        event_count(&store).await?,
        before,
        "refused requests wrote nothing"
    );
    // A clerk of another street: the household does not exist (the attempt is recorded).
    let far = refused(
        client
            .add_household_member(with_token(
                joining("join-x-7", &b.household_id, b.version, &someone_else),
                &far_clerk,
            )?)
            .await,
    );
    assert_eq!(far.code(), Code::NotFound, "{far:?}");
    let far_leave = refused(
        client
            .remove_household_member(with_token(
                leaving(
                    "leave-x-2",
                    &a.household_id,
                    joined.version,
                    &joined.member_id,
                ),
                &far_clerk,
            )?)
            .await,
    );
    assert_eq!(far_leave.code(), Code::NotFound, "{far_leave:?}");
    let unknown = refused(
        client
            .remove_household_member(with_token(
                leaving("leave-x-3", UNKNOWN_HOUSEHOLD, 1, &joined.member_id),
                &clerk,
            )?)
            .await,
    );
    assert_eq!(unknown.code(), Code::NotFound);
    assert_eq!(
        far_leave.message(),
        unknown
            .message()
            .replace(UNKNOWN_HOUSEHOLD, &a.household_id),
        "out of scope reads exactly like not found"
    );
    // The head does not leave.
    let head_leaves = refused(
        client
            .remove_household_member(with_token(
                leaving(
                    "leave-x-4",
                    &a.household_id,
                    joined.version,
                    &a.member_ids[0],
                ),
                &clerk,
            )?)
            .await,
    );
    assert_eq!(
        head_leaves.code(),
        Code::FailedPrecondition,
        "{head_leaves:?}"
    );

    // ---- The person leaves A, and can join B ----
    let left = client
        .remove_household_member(with_token(
            leaving(
                "leave-a",
                &a.household_id,
                joined.version,
                &joined.member_id,
            ),
            &clerk,
        )?)
        .await?
        .into_inner();
    assert_eq!(left.version, joined.version + 1);
    let retried_leave = client
        .remove_household_member(with_token(
            leaving(
                "leave-a",
                &a.household_id,
                joined.version,
                &joined.member_id,
            ),
            &clerk,
        )?)
        .await?
        .into_inner();
    assert_eq!(retried_leave, left);
    let mut other_leave = leaving(
        "leave-a",
        &a.household_id,
        joined.version,
        &joined.member_id,
    );
    other_leave.reason = pb::LeaveReason::MovedOut as i32;
    let reused_leave = refused(
        client
            .remove_household_member(with_token(other_leave, &clerk)?)
            .await,
    );
    assert_eq!(violated_fields(&reused_leave), ["command_id"]);
    let (_, members_a) = members_of(&mut client, &clerk, &a.household_id).await?;
    assert_eq!(members_a.len(), 4);
    assert!(!members_a.contains(&joined.member_id));
    let in_b = client
        .add_household_member(with_token(
            joining("join-b-2", &b.household_id, b.version, &bride),
            &clerk,
        )?)
        .await?
        .into_inner();
    let (_, members_b) = members_of(&mut client, &clerk, &b.household_id).await?;
    assert!(members_b.contains(&in_b.member_id));
    let found = client
        .find_household(with_token(
            pb::FindHouseholdRequest {
                national_id: bride.id.clone(),
            },
            &clerk,
        )?)
        .await?
        .into_inner();
    assert_eq!(
        (found.household_id, found.member_id),
        (b.household_id.clone(), in_b.member_id.clone())
    );

    // ---- No joining person's name or id number in plain text anywhere in the log ----
    let rows: Vec<(Vec<u8>, String)> = sqlx::query_as("SELECT payload, metadata FROM events")
        .fetch_all(store.pool())
        .await?;
    for secret in [bride.id.as_bytes(), bride.name.as_bytes()] {
        for (payload, metadata) in &rows {
            assert!(
                !payload.windows(secret.len()).any(|window| window == secret),
                "plain personal data in a payload"
            );
            assert!(
                !metadata
                    .as_bytes()
                    .windows(secret.len())
                    .any(|window| window == secret)
            );
        }
    }

    database.close().await;
    intake.stop().await?;
    drop(keep);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn household_members_on_postgres_and_nats() -> anyhow::Result<()> {
    scenario(true).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn household_members_on_sqlite_and_the_in_process_bus() -> anyhow::Result<()> {
    scenario(false).await
}
