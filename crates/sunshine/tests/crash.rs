//! Crash test: a service process killed (`kill -9`) between a JetStream delivery and its ack
//! must leave its projections exactly as a rebuild from the log makes them.
//!
//! On a PostgreSQL and a NATS of the test's own (`PrivatePostgres`, `PrivateNats`, never the
//! shared servers), each run: `sunshine migrate` as the tables' owner; `sunshine serve log`,
//! `sunshine serve intake` and `sunshine serve review` as separate processes, each logging in
//! as its own role with only the log's keys its role holds; some households registered. Then the victim is restarted with `SUNSHINE_FAULT_POINT=<point>:
//! <consumer>:<n>` (`crates/eventlog/src/faults.rs`) while applications are submitted
//! concurrently; when it prints `SUNSHINE_FAULT_POINT reached …` on standard error (it then
//! hangs with the message delivered and unacknowledged) the test SIGKILLs it, submits more,
//! restarts it without the fault point and waits until everything is quiet: the log sequenced
//! and relayed, every JetStream consumer with nothing pending or unacknowledged, every
//! application's case opened, the projection tables unchanged between two looks. It dumps every
//! projection table, stops the services, runs `sunshine rebuild all` on the same database,
//! dumps again and wants the two dumps equal, and the log to verify.
//!
//! The crashes ([`CRASHES`], one run each, in a row): intake's read model killed before it
//! applies a delivered message and after it applied one but before the ack; review's case
//! opener killed at the same two points. When the victim is intake, which takes the
//! submissions, the applications after the kill go in once it is back.
//!
//! Consumers wait `SUNSHINE__LOG__CONSUMER_ACK_WAIT_MS` = [`ACK_WAIT_MS`] for an ack, so what
//! the killed process held comes back quickly — behind what was published while it was down
//! (review's `CaseOpened` for the applications intake held): a consumer that applies in
//! delivery order rather than log order leaves those applications `submitted` for good, which
//! the rebuild, replaying the log in order, shows `under_review`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use sunshine_eventlog::EventStore;
use sunshine_eventlog::faults::{CONSUMER_BEFORE_ACK, CONSUMER_BEFORE_APPLY, FAULT_POINT_VARIABLE};
use sunshine_eventlog::keys::log_config_for;
use sunshine_evidence::checkpoint::CheckpointVerifier;
use sunshine_platform::Role;
use sunshine_platform::backends::Database;
use sunshine_platform::config::{DatabaseConfig, LogFormat};
use sunshine_proto::events::Event as _;
use sunshine_proto::v1 as pb;
use sunshine_proto::v1::intake_service_client::IntakeServiceClient;
use sunshine_tests::households::{dibao_application, family, registration};
use sunshine_tests::process::{SunshineProcess, write_config};
use sunshine_tests::{PrivateNats, PrivatePostgres, TestAuth, TestDatabase, VILLAGE, test_config};
use tonic::transport::Channel;

/// How long JetStream waits for a consumer's ack before delivering again.
const ACK_WAIT_MS: u64 = 2_000;
/// Patience for anything that should happen (a process starting, the system going quiet).
const PATIENCE: Duration = Duration::from_secs(60);
/// Households registered in every run, one application each.
const HOUSEHOLDS: usize = 16;
/// Applications submitted concurrently while the fault point is armed; the rest go in after
/// the kill, while the victim is down (or, when the victim is intake, which takes the
/// submissions, as soon as it is back).
const ARMED_APPLICATIONS: usize = 8;
/// The armed consumer stops at its n-th pass of the point after the restart.
const FAULT_AT_PASS: u32 = 3;

/// Every projection's tables: what a rebuild resets and writes again.
const PROJECTION_TABLES: [&str; 4] = [
    "intake_households",
    "intake_applications",
    "intake_official_relatives",
    "review_cases",
];
/// The durable JetStream consumers, named after their projections.
const CONSUMERS: [&str; 2] = ["intake-read-model", "review-case-opener"];

/// One crash: which process dies, and where.
#[derive(Debug, Clone, Copy)]
struct Crash {
    victim: &'static str,
    point: &'static str,
    consumer: &'static str,
}

impl Crash {
    fn label(&self) -> String {
        format!("{} killed at {}", self.consumer, self.point)
    }

    fn fault_point(&self) -> String {
        format!("{}:{}:{FAULT_AT_PASS}", self.point, self.consumer)
    }
}

const CRASHES: [Crash; 4] = [
    Crash {
        victim: sunshine_intake::SERVICE_NAME,
        point: CONSUMER_BEFORE_APPLY,
        consumer: "intake-read-model",
    },
    Crash {
        victim: sunshine_intake::SERVICE_NAME,
        point: CONSUMER_BEFORE_ACK,
        consumer: "intake-read-model",
    },
    Crash {
        victim: sunshine_review::SERVICE_NAME,
        point: CONSUMER_BEFORE_APPLY,
        consumer: "review-case-opener",
    },
    Crash {
        victim: sunshine_review::SERVICE_NAME,
        point: CONSUMER_BEFORE_ACK,
        consumer: "review-case-opener",
    },
];

/// How many times every crash of [`CRASHES`] runs: once in CI (about 9 s a run), more with
/// `SUNSHINE_CRASH_ROUNDS=<n>` when hunting a rare ordering.
fn rounds() -> usize {
    std::env::var("SUNSHINE_CRASH_ROUNDS")
        .ok()
        .and_then(|rounds| rounds.parse().ok())
        .unwrap_or(1)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn projections_after_a_kill_between_delivery_and_ack_equal_a_rebuild_from_the_log()
-> anyhow::Result<()> {
    let started = Instant::now();
    let postgres = PrivatePostgres::start().await?;
    let nats = PrivateNats::start().await?;
    let auth = TestAuth::new()?;
    let mut failures = Vec::new();
    let runs: Vec<Crash> = (0..rounds()).flat_map(|_| CRASHES).collect();
    for (index, crash) in runs.iter().enumerate() {
        let run_started = Instant::now();
        let outcome = run_once(&postgres, &nats, &auth, index, *crash).await;
        let elapsed = run_started.elapsed();
        match outcome {
            Ok(summary) => eprintln!(
                "crash run {index} ({}): passed in {elapsed:.1?}; {summary}",
                crash.label()
            ),
            Err(error) => {
                eprintln!(
                    "crash run {index} ({}): FAILED in {elapsed:.1?}: {error:#}",
                    crash.label()
                );
                failures.push(format!("run {index} ({}): {error:#}", crash.label()));
            }
        }
    }
    eprintln!("crash runs took {:.1?} in all", started.elapsed());
    assert!(
        failures.is_empty(),
        "{} of {} crash runs failed:\n{}",
        failures.len(),
        runs.len(),
        failures.join("\n\n")
    );
    Ok(())
}

/// One crash, start to end, on a fresh database and JetStream stream; a one-line summary when
/// the projections equal their rebuild.
async fn run_once(
    postgres: &PrivatePostgres,
    nats: &PrivateNats,
    auth: &TestAuth,
    index: usize,
    crash: Crash,
) -> anyhow::Result<String> {
    let database =
        TestDatabase::create_owned_on(&postgres.address(), &sunshine::migrate::role_sql()?).await?;
    let directory = std::env::temp_dir().join(format!("sunshine-crash-{}", uuid::Uuid::now_v7()));
    std::fs::create_dir_all(&directory)?;
    let outcome = crash_and_compare(&database, nats, auth, index, crash, &directory).await;
    let _ = std::fs::remove_dir_all(&directory);
    database.drop_database().await?;
    outcome
}

async fn crash_and_compare(
    database: &TestDatabase,
    nats: &PrivateNats,
    auth: &TestAuth,
    index: usize,
    crash: Crash,
    directory: &Path,
) -> anyhow::Result<String> {
    let owner_url = database.owner_url();
    run_sunshine(
        &["migrate"],
        &[("SUNSHINE__DATABASE__URL", owner_url.as_str())],
    )
    .await?;

    let mut config = test_config(auth, owner_url.clone(), nats.url());
    config.grpc.listen_address = SocketAddr::from(([127, 0, 0, 1], 0));
    config.telemetry.log_format = LogFormat::Json;
    config.telemetry.log_filter = "info".into();
    // The owner's configuration, for the rebuild (every service's tables) and the test's reads.
    let owner_config_file = write_config(directory, "owner", &config)?;
    // Each process is given only the log's keys its role holds; the log process sequences.
    let mut config_files = BTreeMap::new();
    for (service, keys) in [
        (
            sunshine::log_process::PROCESS_NAME,
            sunshine::log_process::KEYS,
        ),
        (sunshine_intake::SERVICE_NAME, sunshine_intake::KEYS),
        (sunshine_review::SERVICE_NAME, sunshine_review::KEYS),
    ] {
        let mut service_config = config.clone();
        service_config.database.url =
            database.url_as(&sunshine_eventlog::roles::service_role(service));
        service_config.log = log_config_for(&config.log, keys)?;
        config_files.insert(service, write_config(directory, service, &service_config)?);
    }
    let owner = Database::connect(&DatabaseConfig {
        url: owner_url.clone(),
        max_connections: 3,
        ..DatabaseConfig::default()
    })
    .await?;
    let jetstream = JetStreamProbe {
        client: async_nats::connect(nats.url()).await?,
        stream: config.log.stream_name.clone(),
    };

    let mut log_process = spawn_service(
        sunshine::log_process::PROCESS_NAME,
        &config_files[sunshine::log_process::PROCESS_NAME],
        None,
    )
    .await?;
    let mut intake = spawn_service(
        sunshine_intake::SERVICE_NAME,
        &config_files[sunshine_intake::SERVICE_NAME],
        None,
    )
    .await?;
    let mut review = spawn_service(
        sunshine_review::SERVICE_NAME,
        &config_files[sunshine_review::SERVICE_NAME],
        None,
    )
    .await?;
    log_process.wait_until_serving().await?;
    intake.wait_until_serving().await?;
    review.wait_until_serving().await?;

    let clerk = auth.token_for_services(
        &[sunshine_intake::SERVICE_NAME],
        Role::VillageClerk,
        VILLAGE,
    );
    let households = register_households(&intake, &clerk, index).await?;
    wait_until_quiet(&owner, &jetstream).await?;

    // Arm the fault point in the victim: restarted, it counts passes from zero, so the n-th is
    // among the applications submitted next.
    let fault_point = crash.fault_point();
    let victim_config = config_files[crash.victim].clone();
    let armed = if crash.victim == sunshine_intake::SERVICE_NAME {
        intake.stop().await?;
        intake = spawn_service(crash.victim, &victim_config, Some(fault_point.as_str())).await?;
        &intake
    } else {
        review.stop().await?;
        review = spawn_service(crash.victim, &victim_config, Some(fault_point.as_str())).await?;
        &review
    };
    armed.wait_until_serving().await?;

    // Submit concurrently; SIGKILL the victim the moment it reports the point reached.
    let intake_channel = intake.channel().await?;
    let mut submissions = tokio::task::JoinSet::new();
    for (position, household) in households.iter().take(ARMED_APPLICATIONS).enumerate() {
        let client = IntakeServiceClient::new(intake_channel.clone());
        let request = application(index, position, household);
        let clerk = clerk.clone();
        submissions.spawn(async move { (position, submit(client, request, &clerk).await) });
    }
    armed.wait_for_stderr(FAULT_POINT_VARIABLE).await?;
    let victim_killed_at = Instant::now();
    if crash.victim == sunshine_intake::SERVICE_NAME {
        intake.kill().await?;
    } else {
        review.kill().await?;
    }
    let mut to_submit = Vec::new();
    while let Some(joined) = submissions.join_next().await {
        let (position, submitted) = joined?;
        // A call in flight to a killed intake is sent again (same command id) once it is back.
        if submitted.is_err() {
            to_submit.push(position);
        }
    }
    let lost_calls = to_submit.len();
    to_submit.extend(ARMED_APPLICATIONS..HOUSEHOLDS);

    if crash.victim == sunshine_review::SERVICE_NAME {
        // Intake takes submissions while review is down.
        submit_all(&intake, &clerk, index, &households, &to_submit).await?;
        review = spawn_service(crash.victim, &victim_config, None).await?;
        review.wait_until_serving().await?;
    } else {
        intake = spawn_service(crash.victim, &victim_config, None).await?;
        intake.wait_until_serving().await?;
        submit_all(&intake, &clerk, index, &households, &to_submit).await?;
    }
    let restarted_after = victim_killed_at.elapsed();

    let quiet_after = Instant::now();
    wait_until_quiet(&owner, &jetstream).await?;
    let quiet_after = quiet_after.elapsed();
    let live = dump(&owner).await?;
    let stuck = applications_behind_their_case(&owner).await?;
    let events_before_rebuild = count(&owner, "SELECT count(*) FROM events").await?;

    review.stop().await?;
    intake.stop().await?;
    log_process.stop().await?;
    let rebuild_output = run_sunshine(
        &["rebuild", "all"],
        &[("SUNSHINE_CONFIG", path_text(&owner_config_file)?)],
    )
    .await?;
    let rebuilt_lines: Vec<&str> = rebuild_output
        .lines()
        .filter(|line| line.starts_with("rebuilt "))
        .collect();
    for consumer in CONSUMERS {
        anyhow::ensure!(
            rebuilt_lines
                .iter()
                .any(|line| line.contains(&format!(" {consumer}: "))),
            "`sunshine rebuild all` did not report {consumer}: {rebuilt_lines:?}"
        );
    }
    let rebuilt = dump(&owner).await?;
    let events_after_rebuild = count(&owner, "SELECT count(*) FROM events").await?;

    // The log verifies, and the rebuild appended nothing to it.
    let verifier = CheckpointVerifier::from_verifier_key(
        &config
            .log
            .checkpoint_verifier_key()
            .map_err(anyhow::Error::msg)?,
    )?;
    let report =
        sunshine_eventlog::verify::verify_log(&EventStore::from_database(&owner), &verifier)
            .await?;
    owner.close().await;
    anyhow::ensure!(
        report.problem.is_none(),
        "the log does not verify: {:?}",
        report.problem
    );
    anyhow::ensure!(
        report.entries == events_before_rebuild,
        "the log has {} entries for {events_before_rebuild} events",
        report.entries
    );
    anyhow::ensure!(
        events_after_rebuild == events_before_rebuild,
        "the rebuild appended {} events",
        events_after_rebuild.saturating_sub(events_before_rebuild)
    );

    let differences = differences(&live, &rebuilt);
    anyhow::ensure!(
        differences.is_empty() && stuck.is_empty(),
        "the projections differ from their rebuild (calls lost in the kill: {lost_calls}; \
         victim back and submissions done {restarted_after:.1?} after the kill):\n{}\n\
         applications whose case is open in review but which intake still shows otherwise: {}\n{}",
        differences.join("\n"),
        stuck.len(),
        stuck.join("\n")
    );
    Ok(format!(
        "{} events, {} rows in the projections, calls lost in the kill: {lost_calls}, quiet \
         {quiet_after:.1?} after the restart; {}",
        report.entries,
        live.values().map(Vec::len).sum::<usize>(),
        rebuilt_lines.join("; ")
    ))
}

/// A registered household: its id and the applicant.
#[derive(Debug, Clone)]
struct Household {
    household_id: String,
    applicant: String,
}

async fn register_households(
    intake: &SunshineProcess,
    clerk: &str,
    run: usize,
) -> anyhow::Result<Vec<Household>> {
    let channel = intake.channel().await?;
    let mut registrations = tokio::task::JoinSet::new();
    for position in 0..HOUSEHOLDS {
        let mut client = IntakeServiceClient::new(channel.clone());
        let seed = u32::try_from(position + 1)?;
        let request = sunshine_tests::with_token(
            registration(
                &format!("crash-{run}-registration-{position}"),
                &family(seed),
            ),
            clerk,
        )?;
        registrations.spawn(async move {
            let registered = client.register_household(request).await;
            (position, registered)
        });
    }
    let mut households = BTreeMap::new();
    while let Some(joined) = registrations.join_next().await {
        let (position, registered) = joined?;
        let registered = registered?.into_inner();
        let applicant = registered
            .member_ids
            .first()
            .cloned()
            .ok_or_else(|| anyhow::anyhow!("a household without members"))?;
        households.insert(
            position,
            Household {
                household_id: registered.household_id,
                applicant,
            },
        );
    }
    Ok(households.into_values().collect())
}

fn application(run: usize, position: usize, household: &Household) -> pb::SubmitApplicationRequest {
    dibao_application(
        &format!("crash-{run}-application-{position}"),
        &household.household_id,
        &household.applicant,
    )
}

async fn submit(
    mut client: IntakeServiceClient<Channel>,
    request: pb::SubmitApplicationRequest,
    token: &str,
) -> anyhow::Result<()> {
    client
        .submit_application(sunshine_tests::with_token(request, token)?)
        .await?;
    Ok(())
}

/// Submits the applications of `positions` concurrently; every one must be accepted.
async fn submit_all(
    intake: &SunshineProcess,
    clerk: &str,
    run: usize,
    households: &[Household],
    positions: &[usize],
) -> anyhow::Result<()> {
    let channel = intake.channel().await?;
    let mut submissions = tokio::task::JoinSet::new();
    for &position in positions {
        let client = IntakeServiceClient::new(channel.clone());
        let request = application(run, position, &households[position]);
        let clerk = clerk.to_owned();
        submissions.spawn(async move { submit(client, request, &clerk).await });
    }
    while let Some(joined) = submissions.join_next().await {
        joined??;
    }
    Ok(())
}

/// The stream and its consumers as the JetStream API reports them (raw JSON: the typed client
/// does not parse every answer of nats-server 2.9, see docs/architecture.md).
struct JetStreamProbe {
    client: async_nats::Client,
    stream: String,
}

impl JetStreamProbe {
    async fn ask(&self, subject: String) -> anyhow::Result<serde_json::Value> {
        let reply = self.client.request(subject, "".into()).await?;
        let answer: serde_json::Value = serde_json::from_slice(&reply.payload)?;
        if let Some(error) = answer.get("error") {
            anyhow::bail!("jetstream: {error}");
        }
        Ok(answer)
    }

    /// The stream's last sequence (messages are the log's entries, one each).
    async fn last_sequence(&self) -> anyhow::Result<u64> {
        let info = self
            .ask(format!("$JS.API.STREAM.INFO.{}", self.stream))
            .await?;
        Ok(info["state"]["last_seq"].as_u64().unwrap_or_default())
    }

    /// Whether `consumer` has been delivered everything up to `last_sequence` and acknowledged
    /// it all; `None` if the consumer does not exist yet.
    async fn caught_up(&self, consumer: &str, last_sequence: u64) -> anyhow::Result<bool> {
        let info = self
            .ask(format!("$JS.API.CONSUMER.INFO.{}.{consumer}", self.stream))
            .await?;
        Ok(info["num_pending"].as_u64() == Some(0)
            && info["num_ack_pending"].as_u64() == Some(0)
            && info["delivered"]["stream_seq"].as_u64() == Some(last_sequence))
    }
}

/// Waits until nothing moves: every event sequenced and relayed, every consumer delivered and
/// acknowledged to the end of the stream, a case opened for every application, and the
/// projection tables the same at two looks in a row. Whether they agree is not waited for:
/// that is what the test checks.
async fn wait_until_quiet(owner: &Database, jetstream: &JetStreamProbe) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let mut previous: Option<BTreeMap<String, Vec<String>>> = None;
    loop {
        let events = count(owner, "SELECT count(*) FROM events").await?;
        let entries = count(owner, "SELECT count(*) FROM log_entries").await?;
        let submitted = count_of_type(owner, pb::ApplicationSubmitted::TYPE).await?;
        let opened = count_of_type(owner, pb::CaseOpened::TYPE).await?;
        let last_sequence = jetstream.last_sequence().await?;
        let mut caught_up = true;
        for consumer in CONSUMERS {
            caught_up &= jetstream
                .caught_up(consumer, last_sequence)
                .await
                .unwrap_or(false);
        }
        let tables = dump(owner).await?;
        let rows = |table: &str| {
            tables
                .get(table)
                .map_or(0, |rows| u64::try_from(rows.len()).unwrap_or(u64::MAX))
        };
        let applications = rows("intake_applications");
        let cases = rows("review_cases");
        let settled = events == entries
            && last_sequence == entries
            && caught_up
            && opened == submitted
            && applications == submitted
            && cases == opened;
        if settled && previous.as_ref() == Some(&tables) {
            return Ok(());
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "not quiet after {PATIENCE:?}: events {events}, sequenced {entries}, relayed \
             {last_sequence}, consumers caught up: {caught_up}, applications {submitted} (rows \
             {applications}), cases opened {opened} (rows {cases})"
        );
        previous = settled.then_some(tables);
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn count(owner: &Database, sql: &'static str) -> anyhow::Result<u64> {
    let counted: i64 = sqlx::query_scalar(sql).fetch_one(owner.pool()).await?;
    Ok(u64::try_from(counted)?)
}

async fn count_of_type(owner: &Database, event_type: &str) -> anyhow::Result<u64> {
    let counted: i64 = sqlx::query_scalar("SELECT count(*) FROM events WHERE event_type = $1")
        .bind(event_type)
        .fetch_one(owner.pool())
        .await?;
    Ok(u64::try_from(counted)?)
}

/// Every projection table, row by row as text (`SELECT t::text … ORDER BY` its primary key).
async fn dump(owner: &Database) -> anyhow::Result<BTreeMap<String, Vec<String>>> {
    let mut tables = BTreeMap::new();
    for table in PROJECTION_TABLES {
        let key_columns: Vec<String> = sqlx::query_scalar(
            "SELECT a.attname::text FROM pg_index i \
             JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) \
             WHERE i.indrelid = $1::regclass AND i.indisprimary \
             ORDER BY array_position(i.indkey::int2[], a.attnum)",
        )
        .bind(table)
        .fetch_all(owner.pool())
        .await?;
        anyhow::ensure!(!key_columns.is_empty(), "{table} has no primary key");
        // Table and column names are ours, from the list above and the catalogue.
        let rows: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT t::text FROM {table} t ORDER BY {}",
            key_columns.join(", ")
        )))
        .fetch_all(owner.pool())
        .await?;
        tables.insert(table.to_owned(), rows);
    }
    Ok(tables)
}

/// Applications whose case review opened (`review_cases`) but which intake shows as anything
/// but under review: the symptom of `CaseOpened` applied before `ApplicationSubmitted`.
async fn applications_behind_their_case(owner: &Database) -> anyhow::Result<Vec<String>> {
    let rows: Vec<String> = sqlx::query_scalar(
        "SELECT a.application_id || ' (case ' || a.case_id || '): ' || a.status \
         FROM intake_applications a JOIN review_cases c ON c.case_id = a.case_id \
         WHERE c.status = 'open' AND a.status <> 'under_review' ORDER BY a.application_id",
    )
    .fetch_all(owner.pool())
    .await?;
    Ok(rows)
}

/// Rows only in the live tables and rows only in the rebuilt ones, table by table.
fn differences(
    live: &BTreeMap<String, Vec<String>>,
    rebuilt: &BTreeMap<String, Vec<String>>,
) -> Vec<String> {
    let mut differences = Vec::new();
    for table in PROJECTION_TABLES {
        let live_rows = live.get(table).cloned().unwrap_or_default();
        let rebuilt_rows = rebuilt.get(table).cloned().unwrap_or_default();
        if live_rows == rebuilt_rows {
            continue;
        }
        let only_live: Vec<&String> = live_rows
            .iter()
            .filter(|row| !rebuilt_rows.contains(row))
            .collect();
        let only_rebuilt: Vec<&String> = rebuilt_rows
            .iter()
            .filter(|row| !live_rows.contains(row))
            .collect();
        differences.push(format!(
            "{table}: {} rows live, {} rebuilt; {} only live, {} only rebuilt",
            live_rows.len(),
            rebuilt_rows.len(),
            only_live.len(),
            only_rebuilt.len()
        ));
        for row in only_live {
            differences.push(format!("  - live    {row}"));
        }
        for row in only_rebuilt {
            differences.push(format!("  + rebuilt {row}"));
        }
    }
    differences
}

fn path_text(path: &Path) -> anyhow::Result<&str> {
    path.to_str()
        .ok_or_else(|| anyhow::anyhow!("{} is not UTF-8", path.display()))
}

/// The environment of every `sunshine` the test starts (and nothing of the test's own).
fn sunshine_command(arguments: &[&str], environment: &[(&str, &str)]) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_sunshine"));
    command
        .args(arguments)
        .env_clear()
        .env(
            "SUNSHINE__LOG__CONSUMER_ACK_WAIT_MS",
            ACK_WAIT_MS.to_string(),
        )
        .stdin(Stdio::null())
        .kill_on_drop(true);
    for (name, value) in environment {
        command.env(name, value);
    }
    command
}

/// Runs `sunshine <arguments>` to its end; its standard output, if it succeeded.
async fn run_sunshine(arguments: &[&str], environment: &[(&str, &str)]) -> anyhow::Result<String> {
    let output =
        tokio::time::timeout(PATIENCE, sunshine_command(arguments, environment).output()).await??;
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    anyhow::ensure!(
        output.status.success(),
        "sunshine {} exited with {}:\n{stdout}\n{}",
        arguments.join(" "),
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(stdout)
}

/// `sunshine serve <name>` as its own process, with the test's ack wait and, armed, a fault
/// point.
async fn spawn_service(
    name: &'static str,
    config_file: &Path,
    fault_point: Option<&str>,
) -> anyhow::Result<SunshineProcess> {
    let ack_wait = ACK_WAIT_MS.to_string();
    let mut environment = vec![("SUNSHINE__LOG__CONSUMER_ACK_WAIT_MS", ack_wait.as_str())];
    if let Some(fault_point) = fault_point {
        environment.push((FAULT_POINT_VARIABLE, fault_point));
    }
    SunshineProcess::spawn(
        Path::new(env!("CARGO_BIN_EXE_sunshine")),
        name,
        config_file,
        &environment,
    )
    .await
}
