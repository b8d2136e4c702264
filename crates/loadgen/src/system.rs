//! The system under test, started from the `sunshine` binary as child processes of the
//! generator, and removed again afterwards.
//!
//! - **Cluster**: a fresh database on the shared PostgreSQL (created and dropped here),
//!   `sunshine migrate` as its owner, then `sunshine serve intake` and `sunshine serve review`
//!   as two processes, each logging in as its own role, on ports the kernel picks, with a
//!   JetStream stream and subject prefix of this run only (deleted afterwards). Intake starts
//!   first and holds the log's lease, so intake's process sequences and relays.
//! - **Embedded**: `sunshine serve all` on a fresh SQLite file in a temporary directory with the
//!   in-process bus.
//!
//! Each process writes JSON log lines; the generator keeps them in `<directory>/<name>.log`
//! and reads where it listens ("grpc server listening") and who holds the lease from them.

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use sqlx::Connection as _;
use sunshine_eventlog::keys::log_config_for;
use sunshine_platform::Config;
use sunshine_platform::config::{LogFormat, LogKeys};
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use crate::workload::Signer;

/// How long a process may take to listen, become SERVING or stop.
const PATIENCE: Duration = Duration::from_secs(60);

/// Which deployment is measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Intake and review as separate processes on PostgreSQL and NATS JetStream.
    Cluster,
    /// Every service in one process (`serve all`) on SQLite and the in-process bus.
    Embedded,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::Cluster => "cluster",
            Mode::Embedded => "embedded",
        }
    }
}

/// Where the backends and the binary are.
#[derive(Debug, Clone)]
pub struct Environment {
    pub sunshine_binary: PathBuf,
    /// `host:port` of PostgreSQL (trust authentication, superuser `postgres`).
    pub postgres_address: String,
    /// `host:port` of NATS with JetStream.
    pub nats_address: String,
    /// A tag naming this run's database, stream and files.
    pub run_tag: String,
}

/// What was learnt from a process's log lines.
#[derive(Debug, Default)]
struct ProcessLog {
    /// service name → the address it listens on.
    listening: BTreeMap<String, SocketAddr>,
    holds_lease: bool,
    /// The last lines, for error messages.
    tail: VecDeque<String>,
}

/// One `sunshine` child process.
#[derive(Debug)]
pub struct ServiceProcess {
    pub name: String,
    child: tokio::process::Child,
    log: Arc<Mutex<ProcessLog>>,
    log_file: PathBuf,
}

impl ServiceProcess {
    pub(crate) async fn spawn(
        binary: &Path,
        name: &str,
        arguments: &[&str],
        config_file: &Path,
        directory: &Path,
    ) -> anyhow::Result<ServiceProcess> {
        let log_file = directory.join(format!("{name}.log"));
        let stderr = std::fs::File::create(directory.join(format!("{name}.stderr")))?;
        let mut child = tokio::process::Command::new(binary)
            .args(arguments)
            .env_clear()
            .env("SUNSHINE_CONFIG", config_file)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(stderr))
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let stdout = child.stdout.take().context("no stdout")?;
        let log = Arc::new(Mutex::new(ProcessLog::default()));
        let kept = Arc::clone(&log);
        let mut file = tokio::io::BufWriter::new(tokio::fs::File::create(&log_file).await?);
        tokio::spawn(async move {
            let mut lines = tokio::io::BufReader::new(stdout).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let _ = file.write_all(line.as_bytes()).await;
                let _ = file.write_all(b"\n").await;
                let mut log = kept
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                if line.contains("grpc server listening") || line.contains("holds the lease") {
                    read_line(&mut log, &line);
                }
                log.tail.push_back(line);
                if log.tail.len() > 20 {
                    log.tail.pop_front();
                }
            }
            let _ = file.flush().await;
        });
        Ok(ServiceProcess {
            name: name.into(),
            child,
            log,
            log_file,
        })
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    fn tail(&self) -> String {
        let log = self
            .log
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        log.tail.iter().cloned().collect::<Vec<_>>().join("\n")
    }

    /// Waits until something `found` reads from the log lines, failing if the process exits.
    async fn wait_for<T>(
        &mut self,
        what: &str,
        found: impl Fn(&ProcessLog) -> Option<T>,
    ) -> anyhow::Result<T> {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            {
                let log = self
                    .log
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                if let Some(value) = found(&log) {
                    return Ok(value);
                }
            }
            if let Some(status) = self.child.try_wait()? {
                anyhow::bail!(
                    "{} exited ({status}) before {what}; its last lines ({}):\n{}",
                    self.name,
                    self.log_file.display(),
                    self.tail()
                );
            }
            anyhow::ensure!(
                tokio::time::Instant::now() < deadline,
                "{} never logged {what}; its last lines:\n{}",
                self.name,
                self.tail()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub(crate) async fn listening_address(&mut self, service: &str) -> anyhow::Result<SocketAddr> {
        self.wait_for(&format!("where {service} listens"), |log| {
            log.listening.get(service).copied()
        })
        .await
    }

    pub(crate) async fn wait_for_lease(&mut self) -> anyhow::Result<()> {
        self.wait_for("that its log worker holds the lease", |log| {
            log.holds_lease.then_some(())
        })
        .await
    }

    /// SIGTERM, as Kubernetes stops a pod, then the exit (killed if it takes too long).
    pub(crate) async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(pid) = self.child.id() {
            tokio::process::Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status()
                .await?;
        }
        match tokio::time::timeout(PATIENCE, self.child.wait()).await {
            Ok(status) => {
                let status = status?;
                anyhow::ensure!(status.success(), "{} exited with {status}", self.name);
            }
            Err(_) => {
                self.child.kill().await?;
                anyhow::bail!("{} did not stop within {PATIENCE:?}; killed", self.name);
            }
        }
        Ok(())
    }
}

/// Reads what matters from one JSON log line.
fn read_line(log: &mut ProcessLog, line: &str) {
    let Ok(value) = serde_json::from_str::<serde_json::Value>(line) else {
        return;
    };
    let message = value["message"]
        .as_str()
        .or_else(|| value["fields"]["message"].as_str())
        .unwrap_or_default();
    if message == "grpc server listening" {
        let service = value["service"]
            .as_str()
            .or_else(|| value["fields"]["service"].as_str())
            .unwrap_or_default();
        let address = value["address"]
            .as_str()
            .or_else(|| value["fields"]["address"].as_str())
            .unwrap_or_default()
            .trim_start_matches("Some(")
            .trim_end_matches(')');
        if let Ok(address) = address.parse() {
            log.listening.insert(service.to_owned(), address);
        }
    } else if message == "log worker holds the lease" {
        log.holds_lease = true;
    }
}

/// The running system: its processes and what must be removed afterwards.
#[derive(Debug)]
pub struct SystemUnderTest {
    pub mode: Mode,
    pub intake_address: SocketAddr,
    pub review_address: SocketAddr,
    /// The configuration the services run with (auth and the log's names).
    pub config: Config,
    /// Which process's log worker holds the lease (sequences and relays).
    pub lease_holder: String,
    processes: Vec<ServiceProcess>,
    pub directory: PathBuf,
    /// Cluster: the database's name, dropped by [`SystemUnderTest::stop`].
    pub database_name: Option<String>,
    environment: Environment,
}

/// The configuration every process starts from: this run's key, JSON logs on port 0, no drain
/// delay, the production defaults otherwise (pools, poll intervals, request timeouts).
pub(crate) fn base_config(signer: &Signer) -> anyhow::Result<Config> {
    let mut config = Config::default();
    signer.configure(&mut config);
    config.grpc.listen_address = SocketAddr::from(([127, 0, 0, 1], 0));
    config.grpc.drain_delay_ms = 0;
    config.telemetry.log_format = LogFormat::Json;
    config.log.generate_keys()?;
    Ok(config)
}

pub(crate) fn write_config(
    directory: &Path,
    name: &str,
    config: &Config,
) -> anyhow::Result<PathBuf> {
    let path = directory.join(format!("{name}.toml"));
    std::fs::write(&path, toml::to_string(config)?)?;
    Ok(path)
}

/// The schema step, as the tables' owner (here the superuser, who may create the roles):
/// `sunshine migrate` on `database_name` with `config`'s other settings.
pub(crate) async fn migrate_as_owner(
    binary: &Path,
    directory: &Path,
    config: &Config,
    postgres: &str,
    database_name: &str,
) -> anyhow::Result<()> {
    let mut owner = config.clone();
    owner.database.url = format!("postgres://postgres@{postgres}/{database_name}");
    let owner_file = write_config(directory, "migrate", &owner)?;
    let migrated = tokio::process::Command::new(binary)
        .arg("migrate")
        .env_clear()
        .env("SUNSHINE_CONFIG", &owner_file)
        .stdin(Stdio::null())
        .output()
        .await
        .context("running sunshine migrate")?;
    anyhow::ensure!(
        migrated.status.success(),
        "sunshine migrate failed: {}{}",
        String::from_utf8_lossy(&migrated.stdout),
        String::from_utf8_lossy(&migrated.stderr)
    );
    Ok(())
}

pub(crate) async fn admin_connection(postgres_address: &str) -> anyhow::Result<sqlx::PgConnection> {
    let url = format!("postgres://postgres@{postgres_address}/postgres");
    sqlx::PgConnection::connect(&url)
        .await
        .with_context(|| format!("connecting to {url}"))
}

pub(crate) async fn serving(address: SocketAddr, service: &str) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let status = async {
            let channel = tonic::transport::Channel::from_shared(format!("http://{address}"))?
                .connect()
                .await?;
            let answer = HealthClient::new(channel)
                .check(HealthCheckRequest {
                    service: service.into(),
                })
                .await?;
            anyhow::Ok(answer.into_inner().status())
        }
        .await;
        if let Ok(ServingStatus::Serving) = status {
            return Ok(());
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "{service} at {address} is not SERVING after {PATIENCE:?}: {status:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

impl SystemUnderTest {
    pub async fn start(
        mode: Mode,
        environment: &Environment,
        signer: &Signer,
    ) -> anyhow::Result<SystemUnderTest> {
        let directory = std::env::temp_dir().join(format!(
            "sunshine-loadgen-{}-{}",
            environment.run_tag,
            mode.name()
        ));
        std::fs::create_dir_all(&directory)?;
        match mode {
            Mode::Cluster => Self::start_cluster(environment, signer, directory).await,
            Mode::Embedded => Self::start_embedded(environment, signer, directory).await,
        }
    }

    async fn start_cluster(
        environment: &Environment,
        signer: &Signer,
        directory: PathBuf,
    ) -> anyhow::Result<SystemUnderTest> {
        let tag = &environment.run_tag;
        let database_name = format!("sunshine_loadgen_{tag}");
        let mut admin = admin_connection(&environment.postgres_address).await?;
        // The name is ours (a tag of hex digits), never user input.
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "CREATE DATABASE {database_name}"
        )))
        .execute(&mut admin)
        .await?;
        admin.close().await?;
        let mut system = SystemUnderTest {
            mode: Mode::Cluster,
            intake_address: SocketAddr::from(([127, 0, 0, 1], 0)),
            review_address: SocketAddr::from(([127, 0, 0, 1], 0)),
            config: base_config(signer)?,
            lease_holder: String::new(),
            processes: Vec::new(),
            directory,
            database_name: Some(database_name.clone()),
            environment: environment.clone(),
        };
        // From here on a failure still removes the database (stop).
        match system.start_cluster_processes(&database_name).await {
            Ok(()) => Ok(system),
            Err(error) => {
                if let Err(cleanup) = system.stop().await {
                    eprintln!("sunshine-loadgen: cleaning up after a failed start: {cleanup:#}");
                }
                Err(error)
            }
        }
    }

    async fn start_cluster_processes(&mut self, database_name: &str) -> anyhow::Result<()> {
        let environment = &self.environment;
        let tag = &environment.run_tag;
        let config = &mut self.config;
        config.bus.url = format!("nats://{}", environment.nats_address);
        config.log.stream_name = format!("sunshine-loadgen-{tag}");
        config.log.subject_prefix = format!("loadgen{tag}.events");
        let postgres = &environment.postgres_address;

        migrate_as_owner(
            &environment.sunshine_binary,
            &self.directory,
            config,
            postgres,
            database_name,
        )
        .await?;

        let mut addresses = BTreeMap::new();
        // The log process first (it sequences, signs and relays), then the services, each
        // given only the log's keys its role holds.
        for (service, keys) in [
            ("log", LogKeys::LOG_PROCESS),
            ("intake", sunshine_intake::KEYS),
            ("review", sunshine_review::KEYS),
        ] {
            let mut service_config = config.clone();
            service_config.database.url =
                format!("postgres://sunshine_{service}@{postgres}/{database_name}");
            service_config.log =
                log_config_for(&config.log, keys).context("the log's keys for each process")?;
            let file = write_config(&self.directory, service, &service_config)?;
            let mut process = ServiceProcess::spawn(
                &environment.sunshine_binary,
                service,
                &["serve", service],
                &file,
                &self.directory,
            )
            .await?;
            let address = process.listening_address(service).await?;
            serving(address, service).await?;
            if service == "log" {
                process.wait_for_lease().await?;
                self.lease_holder = "log".into();
            }
            addresses.insert(service, address);
            self.processes.push(process);
        }
        self.intake_address = addresses["intake"];
        self.review_address = addresses["review"];
        Ok(())
    }

    async fn start_embedded(
        environment: &Environment,
        signer: &Signer,
        directory: PathBuf,
    ) -> anyhow::Result<SystemUnderTest> {
        let mut config = base_config(signer)?;
        config.database.url = format!("sqlite://{}", directory.join("sunshine.db").display());
        config.bus.url = "memory://".into();
        // `serve all` binds base port + offset per service: find six free ones in a row, and
        // try again elsewhere if another process takes one first.
        let mut last_error = None;
        for _ in 0..5 {
            let base = free_port_range(6)?;
            config.grpc.listen_address = SocketAddr::from(([127, 0, 0, 1], base));
            let file = write_config(&directory, "all", &config)?;
            let mut process = ServiceProcess::spawn(
                &environment.sunshine_binary,
                "all",
                &["serve", "all"],
                &file,
                &directory,
            )
            .await?;
            let started = async {
                let intake = process.listening_address("intake").await?;
                let review = process.listening_address("review").await?;
                serving(intake, "intake").await?;
                serving(review, "review").await?;
                process.wait_for_lease().await?;
                anyhow::Ok((intake, review))
            }
            .await;
            match started {
                Ok((intake_address, review_address)) => {
                    return Ok(SystemUnderTest {
                        mode: Mode::Embedded,
                        intake_address,
                        review_address,
                        config,
                        lease_holder: "all".into(),
                        processes: vec![process],
                        directory,
                        database_name: None,
                        environment: environment.clone(),
                    });
                }
                Err(error) => {
                    let _ = process.stop().await;
                    last_error = Some(error);
                }
            }
        }
        Err(last_error.unwrap_or_else(|| anyhow::anyhow!("serve all did not start")))
    }

    /// (name, pid) of every process of the system.
    pub fn pids(&self) -> Vec<(String, u32)> {
        self.processes
            .iter()
            .filter_map(|process| process.pid().map(|pid| (process.name.clone(), pid)))
            .collect()
    }

    /// The database URL for the superuser (cluster), for baselines in the same database.
    pub fn superuser_database_url(&self) -> Option<String> {
        self.database_name.as_ref().map(|name| {
            format!(
                "postgres://postgres@{}/{name}",
                self.environment.postgres_address
            )
        })
    }

    /// Stops every process, then drops the database, the JetStream stream and the files.
    pub async fn stop(self) -> anyhow::Result<()> {
        let mut problems = Vec::new();
        for process in self.processes.into_iter().rev() {
            if let Err(error) = process.stop().await {
                problems.push(format!("{error:#}"));
            }
        }
        if let Some(name) = &self.database_name {
            let dropped = async {
                let mut admin = admin_connection(&self.environment.postgres_address).await?;
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                )))
                .execute(&mut admin)
                .await?;
                admin.close().await?;
                anyhow::Ok(())
            }
            .await;
            if let Err(error) = dropped {
                problems.push(format!("dropping database {name}: {error:#}"));
            }
            let deleted = async {
                let client =
                    async_nats::connect(format!("nats://{}", self.environment.nats_address))
                        .await?;
                let jetstream = async_nats::jetstream::new(client);
                jetstream
                    .delete_stream(&self.config.log.stream_name)
                    .await?;
                anyhow::Ok(())
            }
            .await;
            if let Err(error) = deleted {
                problems.push(format!(
                    "deleting stream {}: {error:#}",
                    self.config.log.stream_name
                ));
            }
        }
        if problems.is_empty() {
            // Logs are kept only when something went wrong.
            let _ = std::fs::remove_dir_all(&self.directory);
            Ok(())
        } else {
            anyhow::bail!(
                "stopping the {} system: {} (logs kept in {})",
                self.mode.name(),
                problems.join("; "),
                self.directory.display()
            )
        }
    }
}

/// The first of `count` consecutive loopback ports that are free now.
fn free_port_range(count: u16) -> anyhow::Result<u16> {
    for _ in 0..50 {
        let probe = std::net::TcpListener::bind("127.0.0.1:0")?;
        let base = probe.local_addr()?.port();
        drop(probe);
        if base.checked_add(count).is_none() {
            continue;
        }
        let all_free = (base..base + count)
            .all(|port| std::net::TcpListener::bind(("127.0.0.1", port)).is_ok());
        if all_free {
            return Ok(base);
        }
    }
    anyhow::bail!("no {count} consecutive free ports on 127.0.0.1")
}
