//! Keys by least privilege, on the cluster's real shape: every service and the log process as
//! its own `sunshine serve <name>`, each logging in as its own role and given only the log's
//! keys its role holds (`LogKeys`, `docs/security.md`), on PostgreSQL and NATS JetStream.
//!
//! - Review, disclosure, department-integration and audit start with no signing, key-encryption
//!   or blind-index key and serve: review opens the case of an application and seals a home
//!   visit's findings with the public sealing key alone (what it sealed, only the key-encryption
//!   key opens); the others answer their health check and `GetServiceInfo`. Each refuses to
//!   start when handed the key-encryption key, naming it; intake refuses the signing key and the
//!   log process the key-encryption key; department-integration (the public sealing key only)
//!   refuses intake's blind-index key too.
//! - Checkpoints are signed by the log process only: with two replicas, the one holding the
//!   lease is killed (`kill -9`); appends go on, the other takes the lease and signs checkpoints
//!   covering everything, and every checkpoint in the database verifies under the log process's
//!   key while no other process was given it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use prost::Message as _;
use sunshine_eventlog::crypto::KeyEncryptionKey;
use sunshine_eventlog::keys::{KeyStore, log_config_for};
use sunshine_eventlog::{EventStore, StreamId};
use sunshine_evidence::checkpoint::CheckpointVerifier;
use sunshine_platform::backends::Database;
use sunshine_platform::config::{DatabaseConfig, LogFormat, LogKeys};
use sunshine_platform::{Config, Role};
use sunshine_proto::events::Event as _;
use sunshine_proto::v1 as pb;
use sunshine_proto::v1::intake_service_client::IntakeServiceClient;
use sunshine_proto::v1::review_service_client::ReviewServiceClient;
use sunshine_proto::v1::service_info_service_client::ServiceInfoServiceClient;
use sunshine_tests::households::{dibao_application, family, registration};
use sunshine_tests::process::{SunshineProcess, write_config};
use sunshine_tests::{
    DISTRICT, STREET_TOWN, TestAuth, TestDatabase, VILLAGE, migrated_postgres, nats_address,
    postgres_address, service_database_url, test_config, with_token,
};

const PATIENCE: Duration = Duration::from_secs(30);
const LOG: &str = sunshine::log_process::PROCESS_NAME;
const FINDINGS: &str = "家中有卧床老人，无固定收入";

fn binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_sunshine"))
}

/// The test's configuration (every key) and a directory for the processes' files.
struct Cluster {
    auth: TestAuth,
    database: TestDatabase,
    config: Config,
    directory: PathBuf,
}

impl Cluster {
    async fn new() -> anyhow::Result<Cluster> {
        let auth = TestAuth::new()?;
        let database = migrated_postgres().await?;
        let mut config = test_config(
            &auth,
            database.owner_url(),
            format!("nats://{}", nats_address()),
        );
        config.grpc.listen_address = SocketAddr::from(([127, 0, 0, 1], 0));
        config.telemetry.log_format = LogFormat::Json;
        config.telemetry.log_filter = "info".into();
        // Checkpoints soon after entries arrive, so a test can wait for them.
        config.log.checkpoint_every = 4;
        config.log.checkpoint_interval_ms = 100;
        let directory =
            std::env::temp_dir().join(format!("sunshine-keys-{}", uuid::Uuid::now_v7()));
        std::fs::create_dir_all(&directory)?;
        Ok(Cluster {
            auth,
            database,
            config,
            directory,
        })
    }

    /// The configuration file of `name` (file name `file`), logging in as its own role and
    /// given exactly `keys`, then `extra` changes.
    fn config_file(
        &self,
        name: &str,
        file: &str,
        keys: LogKeys,
        extra: impl FnOnce(&mut Config),
    ) -> anyhow::Result<PathBuf> {
        let mut config = self.config.clone();
        config.database.url = service_database_url(&self.database, &postgres_address(), name);
        config.log = log_config_for(&self.config.log, keys)?;
        extra(&mut config);
        write_config(&self.directory, file, &config)
    }

    async fn start(&self, name: &'static str, keys: LogKeys) -> anyhow::Result<SunshineProcess> {
        self.start_as(name, name, keys).await
    }

    async fn start_as(
        &self,
        name: &'static str,
        file: &str,
        keys: LogKeys,
    ) -> anyhow::Result<SunshineProcess> {
        let config_file = self.config_file(name, file, keys, |_| {})?;
        let process = SunshineProcess::spawn(binary(), name, &config_file, &[]).await?;
        process.wait_until_serving().await?;
        Ok(process)
    }

    /// `name` started with `keys` and then `extra` given: it must exit at once with an error
    /// naming `field`.
    async fn refused(
        &self,
        name: &'static str,
        keys: LogKeys,
        extra: impl FnOnce(&mut Config),
        field: &str,
    ) -> anyhow::Result<()> {
        let config_file = self.config_file(name, &format!("{name}-refused"), keys, extra)?;
        let mut process = SunshineProcess::start(binary(), name, &config_file, &[])?;
        let status = process.exit_status().await?;
        let stderr = process.stderr_lines().join("\n");
        anyhow::ensure!(
            !status.success(),
            "{name} started with a key it must not hold"
        );
        anyhow::ensure!(
            stderr.contains(field),
            "{name}'s refusal does not name {field}: {stderr}"
        );
        anyhow::ensure!(
            !process.logged("grpc server listening"),
            "{name} listened before refusing"
        );
        Ok(())
    }

    async fn owner(&self) -> anyhow::Result<Database> {
        Ok(Database::connect(&DatabaseConfig {
            url: self.database.owner_url(),
            max_connections: 2,
            ..DatabaseConfig::default()
        })
        .await?)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.directory);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_without_keys_serve_and_refuse_the_keys_their_roles_do_not_hold()
-> anyhow::Result<()> {
    let cluster = Cluster::new().await?;
    let key_encryption_key = cluster.config.log.key_encryption_key.clone();
    let signing_key = cluster.config.log.checkpoint_signing_key.clone();

    // Handed the key-encryption key, each service that must not hold it stops before
    // listening, naming the key.
    for (name, keys) in [
        (sunshine_review::SERVICE_NAME, sunshine_review::KEYS),
        (sunshine_disclosure::SERVICE_NAME, sunshine_disclosure::KEYS),
        (
            sunshine_department_integration::SERVICE_NAME,
            sunshine_department_integration::KEYS,
        ),
        (sunshine_audit::SERVICE_NAME, sunshine_audit::KEYS),
        (LOG, sunshine::log_process::KEYS),
    ] {
        let given = key_encryption_key.clone();
        cluster
            .refused(
                name,
                keys,
                move |config| config.log.key_encryption_key = given,
                "log.key_encryption_key",
            )
            .await?;
    }
    // Intake may open personal data but must not sign checkpoints, and needs its blind index.
    cluster
        .refused(
            sunshine_intake::SERVICE_NAME,
            sunshine_intake::KEYS,
            move |config| config.log.checkpoint_signing_key = signing_key,
            "log.checkpoint_signing_key",
        )
        .await?;
    cluster
        .refused(
            sunshine_intake::SERVICE_NAME,
            sunshine_intake::KEYS,
            |config| config.log.blind_index_key.clear(),
            "log.blind_index_key",
        )
        .await?;

    // Each with its own keys only.
    let mut log_process = cluster.start(LOG, sunshine::log_process::KEYS).await?;
    let mut intake = cluster
        .start(sunshine_intake::SERVICE_NAME, sunshine_intake::KEYS)
        .await?;
    let mut review = cluster
        .start(sunshine_review::SERVICE_NAME, sunshine_review::KEYS)
        .await?;
    // department-integration: the public sealing key only (it seals departments' id numbers),
    // never intake's blind-index key (docs/security.md, "Department integration's person
    // index").
    assert_eq!(
        sunshine_department_integration::KEYS,
        LogKeys {
            sealing: true,
            ..LogKeys::NONE
        }
    );
    let blind_index_key = cluster.config.log.blind_index_key.clone();
    cluster
        .refused(
            sunshine_department_integration::SERVICE_NAME,
            sunshine_department_integration::KEYS,
            move |config| config.log.blind_index_key = blind_index_key,
            "log.blind_index_key",
        )
        .await?;
    let mut integration = cluster
        .start(
            sunshine_department_integration::SERVICE_NAME,
            sunshine_department_integration::KEYS,
        )
        .await?;
    let mut keyless = Vec::new();
    for (name, keys) in [
        (sunshine_disclosure::SERVICE_NAME, sunshine_disclosure::KEYS),
        (sunshine_audit::SERVICE_NAME, sunshine_audit::KEYS),
    ] {
        assert_eq!(keys, LogKeys::NONE, "{name} holds a key");
        let process = cluster.start(name, keys).await?;
        let auditor = cluster
            .auth
            .token_for_services(&[name], Role::Auditor, DISTRICT);
        let info = ServiceInfoServiceClient::new(process.channel().await?)
            .get_service_info(with_token(pb::GetServiceInfoRequest::default(), &auditor)?)
            .await?
            .into_inner();
        assert_eq!(info.service_name, name);
        keyless.push(process);
    }

    // Review's scenario with the public sealing key alone: the case opens, a home visit's
    // findings are sealed, and only the key-encryption key opens them.
    let clerk = cluster
        .auth
        .token_for("clerk-1", Role::VillageClerk, VILLAGE);
    let street = cluster
        .auth
        .token_for("street-1", Role::StreetReviewer, STREET_TOWN);
    let mut intake_client = IntakeServiceClient::new(intake.channel().await?);
    let household = intake_client
        .register_household(with_token(registration("reg-keys", &family(71)), &clerk)?)
        .await?
        .into_inner();
    let accepted = intake_client
        .submit_application(with_token(
            dibao_application(
                "app-keys",
                &household.household_id,
                &household.member_ids[0],
            ),
            &clerk,
        )?)
        .await?
        .into_inner();
    let case_id = accepted.case_id;
    let owner = cluster.owner().await?;
    let store = EventStore::from_database(&owner);
    let opened = wait_for_case_version(&store, &case_id, 1).await?;
    let mut review_client = ReviewServiceClient::new(review.channel().await?);
    let assigned = review_client
        .assign_investigators(with_token(
            pb::AssignInvestigatorsRequest {
                command_id: "assign-keys".into(),
                case_id: case_id.clone(),
                expected_version: opened,
                investigators: vec![investigator("clerk-1"), investigator("clerk-2")],
            },
            &street,
        )?)
        .await?
        .into_inner();
    review_client
        .record_home_visit(with_token(
            pb::RecordHomeVisitRequest {
                command_id: "visit-keys".into(),
                case_id: case_id.clone(),
                expected_version: assigned.version,
                visited_on: Some(sunshine_proto::dates::from_date(
                    time::OffsetDateTime::now_utc().date(),
                )),
                findings: FINDINGS.into(),
            },
            &clerk,
        )?)
        .await?;
    let sealed = store
        .read_case(&case_id)
        .await?
        .into_iter()
        .find(|event| event.event_type == pb::HomeVisitRecorded::TYPE)
        .map(|event| pb::HomeVisitRecorded::decode(event.payload.as_slice()))
        .transpose()?
        .ok_or_else(|| anyhow::anyhow!("no HomeVisitRecorded in the case"))?
        .sealed_findings;
    assert!(!sealed.is_empty(), "the findings were not sealed");
    assert!(
        !String::from_utf8_lossy(&sealed).contains(FINDINGS),
        "the findings are in the payload in plain text"
    );
    let opener = KeyStore::new(
        store.clone(),
        KeyEncryptionKey::from_base64(&key_encryption_key)?,
    );
    assert_eq!(
        opener.open(&sealed, case_id.as_bytes()).await?,
        FINDINGS.as_bytes()
    );

    for process in &mut keyless {
        process.stop().await?;
    }
    review.stop().await?;
    integration.stop().await?;
    intake.stop().await?;
    log_process.stop().await?;
    owner.close().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkpoints_are_signed_by_the_log_process_alone_and_resume_on_its_replica()
-> anyhow::Result<()> {
    let cluster = Cluster::new().await?;
    let mut replicas = vec![
        cluster
            .start_as(LOG, "log-a", sunshine::log_process::KEYS)
            .await?,
        cluster
            .start_as(LOG, "log-b", sunshine::log_process::KEYS)
            .await?,
    ];
    let mut intake = cluster
        .start(sunshine_intake::SERVICE_NAME, sunshine_intake::KEYS)
        .await?;
    let clerk = cluster
        .auth
        .token_for("clerk-1", Role::VillageClerk, VILLAGE);
    let mut intake_client = IntakeServiceClient::new(intake.channel().await?);
    let owner = cluster.owner().await?;

    register(&mut intake_client, &clerk, 0..5).await?;
    wait_until_checkpointed(&owner).await?;
    let holder = wait_for_holder(&replicas).await?;
    replicas[holder].kill().await?;
    let survivor = 1 - holder;

    // The log process is down: appends go on.
    register(&mut intake_client, &clerk, 5..10).await?;
    wait_until_checkpointed(&owner).await?;
    assert!(
        replicas[survivor].logged("log worker holds the lease"),
        "the replica never took the lease"
    );

    // Every checkpoint verifies under the log process's key; no one else was given it.
    let verifier = CheckpointVerifier::from_verifier_key(
        &cluster
            .config
            .log
            .checkpoint_verifier_key()
            .map_err(anyhow::Error::msg)?,
    )?;
    let report =
        sunshine_eventlog::verify::verify_log(&EventStore::from_database(&owner), &verifier)
            .await?;
    assert_eq!(report.problem, None);
    let stored: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM log_checkpoints")
        .fetch_one(owner.pool())
        .await?;
    let notes: Vec<String> = sqlx::query_scalar("SELECT note FROM log_checkpoints")
        .fetch_all(owner.pool())
        .await?;
    assert_eq!(notes.len() as i64, stored);
    assert!(stored >= 2, "checkpoints before and after the kill");
    for note in &notes {
        verifier.verify(note)?;
    }
    for service in [
        sunshine_intake::KEYS,
        sunshine_review::KEYS,
        sunshine_disclosure::KEYS,
        sunshine_department_integration::KEYS,
        sunshine_audit::KEYS,
        sunshine_payment::KEYS,
    ] {
        assert!(
            !service.checkpoint_signing,
            "a service holds the signing key"
        );
    }

    intake.stop().await?;
    replicas[survivor].stop().await?;
    owner.close().await;
    Ok(())
}

fn investigator(subject: &str) -> pb::CaseOfficer {
    pb::CaseOfficer {
        subject: subject.into(),
        role: "village_clerk".into(),
        org_unit_code: VILLAGE.into(),
    }
}

async fn register(
    intake: &mut IntakeServiceClient<tonic::transport::Channel>,
    clerk: &str,
    seeds: std::ops::Range<u32>,
) -> anyhow::Result<()> {
    for seed in seeds {
        intake
            .register_household(with_token(
                registration(&format!("reg-replica-{seed}"), &family(80 + seed)),
                clerk,
            )?)
            .await?;
    }
    Ok(())
}

/// Waits until a signed checkpoint covers every event appended so far.
async fn wait_until_checkpointed(owner: &Database) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let events: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM events")
            .fetch_one(owner.pool())
            .await?;
        let signed: Option<i64> = sqlx::query_scalar("SELECT MAX(tree_size) FROM log_checkpoints")
            .fetch_one(owner.pool())
            .await?;
        if signed == Some(events) {
            return Ok(());
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "{events} events, the last checkpoint signed {signed:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The replica whose log worker holds the lease.
async fn wait_for_holder(replicas: &[SunshineProcess]) -> anyhow::Result<usize> {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let holders: Vec<usize> = (0..replicas.len())
            .filter(|index| replicas[*index].logged("log worker holds the lease"))
            .collect();
        match holders.as_slice() {
            [one] => return Ok(*one),
            [] => {}
            several => anyhow::bail!("replicas {several:?} all hold the lease"),
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "no replica took the lease"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until the case's stream reaches `version` (review opened it); its version.
async fn wait_for_case_version(
    store: &EventStore,
    case_id: &str,
    version: u64,
) -> anyhow::Result<u64> {
    let stream = StreamId::new("review", "case", case_id)?;
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let current = store.stream_version(&stream).await?;
        if current >= version {
            return Ok(current);
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "review never opened the case"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
