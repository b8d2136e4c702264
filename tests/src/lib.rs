//! The sandbox for end-to-end scenarios: real PostgreSQL and NATS JetStream, real gRPC over
//! sockets, every service started in-process on port 0.
//!
//! # Layout
//! - [`TestAuth`]: a fresh signing key per test and tokens for any role, meant for every service.
//! - [`RunningService`]: a service running on `127.0.0.1:0`, with health and shutdown helpers.
//! - [`ScenarioBackends`], [`migrated_postgres`]: the backends of a scenario; on PostgreSQL
//!   migrated by the tables' owner (`sunshine migrate`), each service logging in as its own
//!   least-privileged role ([`ScenarioBackends::service_config`], [`service_database_url`]).
//! - [`bank`]: the bank's side of payment's files: result files answering a batch; a streamed
//!   bank file put back together.
//! - [`accounts`]: payment accounts sealed as intake seals them, for households of scenarios
//!   that append review's decisions at the boundary.
//! - [`events`]: finding events by their registered type.
//! - [`process`]: `sunshine serve <name>` as a process of its own, for tests of the cluster's
//!   real shape and of kills.
//! - Re-exported from `sunshine-testkit`: fresh databases, gated proxies, private servers.

pub mod accounts;
pub mod approvals;
pub mod bank;
pub mod events;
pub mod households;
pub mod process;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use sunshine_platform::auth::{Audience, Claims, TokenIssuer};
use sunshine_platform::config::VerifyingKeyConfig;
use sunshine_platform::{Config, Role, RunError, Shutdown, ShutdownTrigger};
use time::OffsetDateTime;
use tokio::net::TcpListener;
use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

pub use sunshine_testkit::{
    GatedProxy, PrivateNats, PrivatePostgres, TempSqlite, TestDatabase, init_test_logging,
    nats_address, postgres_address, wait_until,
};

/// The example district's code (see `crates/domain/data/example-district.toml`).
pub const DISTRICT: &str = "990101000000";
pub const STREET_TOWN: &str = "990101001000";
pub const VILLAGE: &str = "990101001001";

/// The name of every service of the cluster, as each verifies its tokens' audience.
pub const SERVICE_NAMES: [&str; 6] = [
    sunshine_intake::SERVICE_NAME,
    sunshine_review::SERVICE_NAME,
    sunshine_payment::SERVICE_NAME,
    sunshine_disclosure::SERVICE_NAME,
    sunshine_department_integration::SERVICE_NAME,
    sunshine_audit::SERVICE_NAME,
];

/// Issuer and base audience of the tests' tokens.
const TEST_ISSUER: &str = "sunshine-test";
const TEST_AUDIENCE: &str = "sunshine";

/// A signing key for one test, and the matching `auth` configuration.
#[derive(Debug)]
pub struct TestAuth {
    issuer: TokenIssuer,
}

impl TestAuth {
    pub fn new() -> anyhow::Result<Self> {
        init_test_logging();
        Ok(TestAuth {
            issuer: TokenIssuer::generate("test-key")?,
        })
    }

    pub fn configure(&self, config: &mut Config) {
        config.auth.issuer = TEST_ISSUER.into();
        config.auth.audience = TEST_AUDIENCE.into();
        config.auth.keys = vec![VerifyingKeyConfig {
            kid: self.issuer.key_id().into(),
            public_key: self.issuer.public_key_base64(),
        }];
    }

    /// The audience of `service_name` (e.g. `sunshine/intake`).
    pub fn audience_of(service_name: &str) -> String {
        Audience::of_service(TEST_AUDIENCE, service_name)
    }

    /// Claims accepted by every service ([`SERVICE_NAMES`]).
    pub fn claims(&self, role: Role, org_unit: &str) -> Claims {
        let now = OffsetDateTime::now_utc().unix_timestamp();
        Claims {
            iss: TEST_ISSUER.into(),
            aud: Audience::many(SERVICE_NAMES.map(TestAuth::audience_of)),
            sub: format!("{}-officer", role.as_str()),
            exp: now + 600,
            nbf: None,
            iat: now,
            name: "测试 officer".into(),
            role,
            org_unit: org_unit.into(),
            department_code: (role == Role::Department).then(|| "civil_affairs".into()),
            scopes: Vec::new(),
        }
    }

    /// A token for every service.
    pub fn token(&self, role: Role, org_unit: &str) -> String {
        self.issuer.sign(&self.claims(role, org_unit))
    }

    /// A token for the named services only.
    pub fn token_for_services(&self, services: &[&str], role: Role, org_unit: &str) -> String {
        let mut claims = self.claims(role, org_unit);
        claims.aud = Audience::many(services.iter().map(|name| TestAuth::audience_of(name)));
        self.issuer.sign(&claims)
    }

    /// A token for a named officer (four-eyes rules tell officers apart by subject).
    pub fn token_for(&self, subject: &str, role: Role, org_unit: &str) -> String {
        let mut claims = self.claims(role, org_unit);
        claims.sub = subject.into();
        self.issuer.sign(&claims)
    }

    /// A correctly signed token that expired an hour ago.
    pub fn expired_token(&self, role: Role, org_unit: &str) -> String {
        let mut claims = self.claims(role, org_unit);
        claims.iat -= 7200;
        claims.exp = claims.iat + 3600;
        self.issuer.sign(&claims)
    }

    /// A correctly signed token whose claims `change` alters after they are filled in.
    pub fn token_with(
        &self,
        role: Role,
        org_unit: &str,
        change: impl FnOnce(&mut Claims),
    ) -> String {
        let mut claims = self.claims(role, org_unit);
        change(&mut claims);
        self.issuer.sign(&claims)
    }
}

/// The fields a refusal names in its `google.rpc.BadRequest` (empty if it names none).
pub fn violated_fields(status: &tonic::Status) -> Vec<String> {
    use tonic_types::StatusExt as _;
    status
        .get_error_details()
        .bad_request()
        .map(|bad_request| {
            bad_request
                .field_violations
                .iter()
                .map(|violation| violation.field.clone())
                .collect()
        })
        .unwrap_or_default()
}

/// `request` with `authorization: Bearer <token>`.
pub fn with_token<T>(message: T, token: &str) -> anyhow::Result<tonic::Request<T>> {
    let mut request = tonic::Request::new(message);
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse()?);
    Ok(request)
}

/// Configuration for a test service: fast readiness checks, no drain delay, the test's key.
pub fn test_config(auth: &TestAuth, database_url: String, bus_url: String) -> Config {
    let mut config = Config::default();
    auth.configure(&mut config);
    config.database.url = database_url;
    config.database.max_connections = 5;
    config.bus.url = bus_url;
    config.grpc.drain_delay_ms = 0;
    config.readiness.check_interval_ms = 100;
    config.readiness.max_retry_delay_ms = 100;
    // Each test has its own keys and its own JetStream stream and subjects on the shared NATS.
    config
        .log
        .generate_keys()
        .expect("randomness for test keys");
    let tag = uuid::Uuid::now_v7().simple().to_string();
    config.log.stream_name = format!("sunshine-events-{tag}");
    config.log.subject_prefix = format!("t{tag}.events");
    config.log.poll_interval_ms = 20;
    // The 纪委 export's key: random, a file of the test's own.
    let key_file = std::env::temp_dir().join(format!("sunshine-inspection-{tag}.key"));
    std::fs::write(
        &key_file,
        uuid::Uuid::new_v4().simple().to_string().repeat(2),
    )
    .expect("a temporary inspection key file");
    config.payment.inspection_key_file = key_file.display().to_string();
    // department-integration's own person-index key (docs/security.md).
    config
        .integration
        .generate_person_index_key()
        .expect("randomness for test keys");
    config
}

/// A service running in this process.
#[derive(Debug)]
pub struct RunningService {
    pub name: &'static str,
    pub address: SocketAddr,
    trigger: ShutdownTrigger,
    task: tokio::task::JoinHandle<Result<(), RunError>>,
}

impl RunningService {
    /// Binds `127.0.0.1:0` and runs `run` on it.
    pub async fn start<F, Fut>(name: &'static str, config: Config, run: F) -> anyhow::Result<Self>
    where
        F: FnOnce(Config, TcpListener, Shutdown) -> Fut,
        Fut: Future<Output = Result<(), RunError>> + Send + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?;
        let (trigger, shutdown) = Shutdown::new();
        let task = tokio::spawn(run(config, listener, shutdown));
        Ok(RunningService {
            name,
            address,
            trigger,
            task,
        })
    }

    pub async fn channel(&self) -> anyhow::Result<Channel> {
        let endpoint = format!("http://{}", self.address);
        Ok(Channel::from_shared(endpoint)?.connect().await?)
    }

    /// The health status of the whole server (`""`) and of the named service. The two are set
    /// one after the other, so while readiness changes they may briefly differ: `Unknown` then.
    pub async fn health(&self) -> anyhow::Result<ServingStatus> {
        let mut client = HealthClient::new(self.channel().await?);
        let overall = client
            .check(HealthCheckRequest {
                service: String::new(),
            })
            .await?
            .into_inner()
            .status();
        let named = client
            .check(HealthCheckRequest {
                service: self.name.into(),
            })
            .await?
            .into_inner()
            .status();
        Ok(if overall == named {
            overall
        } else {
            ServingStatus::Unknown
        })
    }

    /// Polls health until it is `expected`, or fails after `within`.
    pub async fn wait_for_health(
        &self,
        expected: ServingStatus,
        within: Duration,
    ) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let status = self.health().await?;
            if status == expected {
                return Ok(());
            }
            anyhow::ensure!(
                tokio::time::Instant::now() < deadline,
                "{} still {status:?} after {within:?}, expected {expected:?}",
                self.name
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn trigger_shutdown(&self) {
        self.trigger.trigger();
    }

    /// Triggers shutdown and waits for `run` to return.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.trigger.trigger();
        self.task.await??;
        Ok(())
    }
}

/// Every service of the cluster, each with the configuration `config_for(its name)`, sharing
/// the log's wake-up signals as they do in one process (`serve all`).
pub async fn start_every_service(
    config_for: impl Fn(&'static str) -> Config,
) -> anyhow::Result<Vec<RunningService>> {
    let log_signals = sunshine_eventlog::LogSignals::new();
    let intake_signals = log_signals.clone();
    Ok(vec![
        RunningService::start(
            sunshine_intake::SERVICE_NAME,
            config_for(sunshine_intake::SERVICE_NAME),
            |config, listener, shutdown| {
                sunshine_intake::run_sharing_log(
                    config,
                    listener,
                    shutdown,
                    Arc::new(sunshine_platform::clock::SystemClock),
                    intake_signals,
                )
            },
        )
        .await?,
        RunningService::start(
            sunshine_review::SERVICE_NAME,
            config_for(sunshine_review::SERVICE_NAME),
            |config, listener, shutdown| {
                sunshine_review::run_sharing_log(
                    config,
                    listener,
                    shutdown,
                    Arc::new(sunshine_platform::clock::SystemClock),
                    log_signals,
                )
            },
        )
        .await?,
        RunningService::start(
            sunshine_payment::SERVICE_NAME,
            config_for(sunshine_payment::SERVICE_NAME),
            sunshine_payment::run_sharing_process,
        )
        .await?,
        RunningService::start(
            sunshine_disclosure::SERVICE_NAME,
            config_for(sunshine_disclosure::SERVICE_NAME),
            sunshine_disclosure::run_sharing_process,
        )
        .await?,
        RunningService::start(
            sunshine_department_integration::SERVICE_NAME,
            config_for(sunshine_department_integration::SERVICE_NAME),
            sunshine_department_integration::run_sharing_process,
        )
        .await?,
        RunningService::start(
            sunshine_audit::SERVICE_NAME,
            config_for(sunshine_audit::SERVICE_NAME),
            sunshine_audit::run_sharing_process,
        )
        .await?,
    ])
}

/// A fresh PostgreSQL database set up as production is: owned by a role without CREATEROLE,
/// the services' login roles in place (the DBA's part, `sunshine migrate --print-role-sql`),
/// and migrated by `sunshine migrate` as the owner. Services then log in as their own roles
/// ([`service_database_url`]).
pub async fn migrated_postgres() -> anyhow::Result<TestDatabase> {
    let database = TestDatabase::create_owned(&sunshine::migrate::role_sql()?).await?;
    migrate(&database.owner_url()).await?;
    Ok(database)
}

/// `sunshine migrate` on `database_url`.
pub async fn migrate(database_url: &str) -> anyhow::Result<()> {
    sunshine::migrate::run(&sunshine_platform::config::DatabaseConfig {
        url: database_url.to_owned(),
        max_connections: 2,
        ..Default::default()
    })
    .await?;
    Ok(())
}

/// The URL service `service` logs in with: its own least-privileged role, through `address`
/// (the server, or a proxy in front of it).
pub fn service_database_url(database: &TestDatabase, address: &str, service: &str) -> String {
    database.url_via_as(address, &sunshine_eventlog::roles::service_role(service))
}

/// The backends a scenario runs on, kept alive for the test.
#[derive(Debug)]
pub enum ScenarioBackends {
    /// PostgreSQL (a fresh database, migrated by its owner: [`migrated_postgres`]) and the
    /// shared NATS JetStream. Services log in as their own roles ([`Self::service_config`]).
    Cluster(TestDatabase),
    /// A fresh SQLite file and the in-process bus; the services migrate it themselves.
    Embedded(TempSqlite),
}

impl ScenarioBackends {
    pub async fn start(cluster: bool) -> anyhow::Result<Self> {
        Ok(if cluster {
            ScenarioBackends::Cluster(migrated_postgres().await?)
        } else {
            ScenarioBackends::Embedded(TempSqlite::create()?)
        })
    }

    /// The database as its owner sees it: for the test's own reads (and the base of every
    /// service's configuration, see [`Self::service_config`]).
    pub fn database_url(&self) -> String {
        match self {
            ScenarioBackends::Cluster(database) => database.owner_url(),
            ScenarioBackends::Embedded(sqlite) => sqlite.url(),
        }
    }

    /// `config` for service `service`: on PostgreSQL it logs in as its own role, which may
    /// read and append to the log and keep its read model, and nothing else; so every cluster
    /// scenario shows the services work under least privilege.
    pub fn service_config(&self, config: &Config, service: &str) -> Config {
        let mut config = config.clone();
        if let ScenarioBackends::Cluster(database) = self {
            config.database.url = service_database_url(database, &postgres_address(), service);
        }
        config
    }

    pub fn bus_url(&self) -> String {
        match self {
            ScenarioBackends::Cluster(_) => format!("nats://{}", nats_address()),
            ScenarioBackends::Embedded(_) => "memory://".into(),
        }
    }
}

/// How many events of the log `consumer` (a projection's name) has yet to pass: the events
/// written minus its cursor (consumers apply in log position, so the cursor says it all).
pub async fn events_behind(pool: &sqlx::AnyPool, consumer: &str) -> anyhow::Result<i64> {
    Ok(sqlx::query_scalar(
        "SELECT (SELECT COUNT(*) FROM events) - COALESCE((SELECT next_position FROM log_cursors \
         WHERE name = 'consumer:' || $1), 0)",
    )
    .bind(consumer)
    .fetch_one(pool)
    .await?)
}
