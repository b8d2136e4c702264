//! Test support shared by every crate's integration tests: real backends, isolated per test.
//!
//! # Layout
//! - [`TestDatabase`]: a fresh database on the shared PostgreSQL server, dropped at the end
//!   (owned by the superuser, or by a plain owner role with the services' login roles in
//!   place: [`TestDatabase::create_owned`]); [`TempSqlite`]: a fresh SQLite file. Both give a
//!   platform [`Database`].
//! - [`GatedProxy`]: a TCP proxy that refuses connections until opened.
//! - [`PrivateNats`], [`PrivatePostgres`]: servers of the test's own, on their own ports, that a
//!   fault test may stop, kill and restart without touching the shared ones.
//! - [`wait_until`], [`init_test_logging`].
//!
//! The shared servers are found through `SUNSHINE_TEST_POSTGRES` (default `127.0.0.1:5432`,
//! user `postgres`, trust auth) and `SUNSHINE_TEST_NATS` (default `127.0.0.1:4222`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use sqlx::Connection as _;
use sunshine_platform::backends::Database;
use sunshine_platform::config::DatabaseConfig;
use tokio::net::{TcpListener, TcpStream};

/// Address of the shared PostgreSQL server.
pub fn postgres_address() -> String {
    std::env::var("SUNSHINE_TEST_POSTGRES").unwrap_or_else(|_| "127.0.0.1:5432".into())
}

/// Address of the shared NATS server (JetStream enabled).
pub fn nats_address() -> String {
    std::env::var("SUNSHINE_TEST_NATS").unwrap_or_else(|_| "127.0.0.1:4222".into())
}

/// Sends logs to the test's captured output (shown when a test fails); `RUST_LOG` picks the
/// level, `warn` by default.
pub fn init_test_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_test_writer()
        .try_init();
}

/// A fresh database on a PostgreSQL server (the shared one unless given another address),
/// dropped when the value is dropped (so CI runs on the same machine do not pile them up).
#[derive(Debug)]
pub struct TestDatabase {
    pub name: String,
    address: String,
    dropped: bool,
}

/// The role that owns the databases of [`TestDatabase::create_owned`]: a login role without
/// SUPERUSER, CREATEROLE or CREATEDB, as a production owner is.
pub const OWNER_ROLE: &str = "sunshine_owner";

/// Serialises the server-wide role set-up of concurrent test processes (a session advisory
/// lock in the `postgres` database, which every admin connection uses).
const ROLE_SETUP_LOCK_KEY: i64 = 0x5355_4e53_524f_4c45; // "SUNSROLE"

impl TestDatabase {
    pub async fn create() -> anyhow::Result<Self> {
        Self::create_on(&postgres_address()).await
    }

    /// A fresh database owned by [`OWNER_ROLE`], on a server where the DBA's `role_sql` (the
    /// roles the services log in as; idempotent, since roles are server-wide and tests run in
    /// parallel) has been run as the superuser. Migrate it as the owner ([`Self::owner_url`]),
    /// connect services as their roles ([`Self::url_as`]).
    pub async fn create_owned(role_sql: &str) -> anyhow::Result<Self> {
        Self::create_owned_on(&postgres_address(), role_sql).await
    }

    /// [`Self::create_owned`] on the server at `address` (e.g. a [`PrivatePostgres`]).
    pub async fn create_owned_on(address: &str, role_sql: &str) -> anyhow::Result<Self> {
        init_test_logging();
        let address = address.to_owned();
        let name = format!("sunshine_test_{}", uuid::Uuid::now_v7().simple());
        let mut admin = admin_connection(&address).await?;
        sqlx::query("SELECT pg_advisory_lock($1)")
            .bind(ROLE_SETUP_LOCK_KEY)
            .execute(&mut admin)
            .await?;
        let owner_sql = format!(
            "DO $owner$ BEGIN                IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{OWNER_ROLE}') THEN                  CREATE ROLE {OWNER_ROLE} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE;                END IF;              EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;              END $owner$;"
        );
        let set_up = async {
            sqlx::raw_sql(sqlx::AssertSqlSafe(owner_sql))
                .execute(&mut admin)
                .await?;
            sqlx::raw_sql(sqlx::AssertSqlSafe(role_sql.to_owned()))
                .execute(&mut admin)
                .await?;
            anyhow::Ok(())
        }
        .await;
        sqlx::query("SELECT pg_advisory_unlock($1)")
            .bind(ROLE_SETUP_LOCK_KEY)
            .execute(&mut admin)
            .await?;
        set_up.context("creating the database roles")?;
        // The name is ours (a UUID), never user input.
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "CREATE DATABASE {name} OWNER {OWNER_ROLE}"
        )))
        .execute(&mut admin)
        .await?;
        admin.close().await?;
        Ok(TestDatabase {
            name,
            address,
            dropped: false,
        })
    }

    /// The database's URL for the owner of [`Self::create_owned`]'s databases.
    pub fn owner_url(&self) -> String {
        self.url_as(OWNER_ROLE)
    }

    /// The database's URL for the login role `role` (trust authentication: no password).
    pub fn url_as(&self, role: &str) -> String {
        self.url_via_as(&self.address, role)
    }

    /// The database's URL for `role`, reached through `address` (the server, or a proxy).
    pub fn url_via_as(&self, address: &str, role: &str) -> String {
        format!("postgres://{role}@{address}/{}", self.name)
    }

    pub async fn create_on(address: &str) -> anyhow::Result<Self> {
        init_test_logging();
        let name = format!("sunshine_test_{}", uuid::Uuid::now_v7().simple());
        let mut admin = admin_connection(address).await?;
        // The name is ours (a UUID), never user input.
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut admin)
            .await?;
        admin.close().await?;
        Ok(TestDatabase {
            name,
            address: address.to_owned(),
            dropped: false,
        })
    }

    /// The database's URL on its server.
    pub fn url(&self) -> String {
        self.url_via(&self.address)
    }

    /// The database's URL, reached through `address` (the server itself, or a proxy).
    pub fn url_via(&self, address: &str) -> String {
        self.url_via_as(address, "postgres")
    }

    /// A connected platform database.
    pub async fn connect(&self, max_connections: u32) -> anyhow::Result<Database> {
        let config = DatabaseConfig {
            url: self.url(),
            max_connections,
            ..DatabaseConfig::default()
        };
        Ok(Database::connect(&config).await?)
    }

    pub async fn drop_database(mut self) -> anyhow::Result<()> {
        self.dropped = true;
        drop_database(&self.address, &self.name).await
    }
}

async fn drop_database(address: &str, name: &str) -> anyhow::Result<()> {
    let mut admin = admin_connection(address).await?;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
    )))
    .execute(&mut admin)
    .await?;
    admin.close().await?;
    Ok(())
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if self.dropped {
            return;
        }
        let address = self.address.clone();
        let name = self.name.clone();
        // Drop runs inside the test's runtime, which cannot block on a future: use a thread
        // with a runtime of its own.
        let dropper = std::thread::spawn(move || {
            if let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                let _ = runtime.block_on(drop_database(&address, &name));
            }
        });
        let _ = dropper.join();
    }
}

async fn admin_connection(address: &str) -> anyhow::Result<sqlx::PgConnection> {
    let url = format!("postgres://postgres@{address}/postgres");
    sqlx::PgConnection::connect(&url)
        .await
        .with_context(|| format!("connecting to {url}"))
}

/// A fresh SQLite file in a temporary folder, removed on drop.
#[derive(Debug)]
pub struct TempSqlite {
    directory: PathBuf,
}

impl TempSqlite {
    pub fn create() -> anyhow::Result<Self> {
        init_test_logging();
        let directory =
            std::env::temp_dir().join(format!("sunshine-sqlite-{}", uuid::Uuid::now_v7()));
        std::fs::create_dir_all(&directory)?;
        Ok(TempSqlite { directory })
    }

    pub fn url(&self) -> String {
        format!("sqlite://{}", self.directory.join("sunshine.db").display())
    }

    pub async fn connect(&self, max_connections: u32) -> anyhow::Result<Database> {
        let config = DatabaseConfig {
            url: self.url(),
            max_connections,
            ..DatabaseConfig::default()
        };
        Ok(Database::connect(&config).await?)
    }
}

impl Drop for TempSqlite {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.directory);
    }
}

/// A TCP proxy to `target` that resets every connection until [`GatedProxy::open`] is called.
#[derive(Debug)]
pub struct GatedProxy {
    address: SocketAddr,
    open: Arc<AtomicBool>,
    forwarded: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl GatedProxy {
    pub async fn start(target: String) -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?;
        let open = Arc::new(AtomicBool::new(false));
        let forwarded = Arc::new(AtomicUsize::new(0));
        let task_open = Arc::clone(&open);
        let task_forwarded = Arc::clone(&forwarded);
        let task = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if !task_open.load(Ordering::SeqCst) {
                    drop(inbound);
                    continue;
                }
                task_forwarded.fetch_add(1, Ordering::SeqCst);
                let target = target.clone();
                tokio::spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(&target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        });
        Ok(GatedProxy {
            address,
            open,
            forwarded,
            task,
        })
    }

    pub fn address(&self) -> String {
        self.address.to_string()
    }

    pub fn open(&self) {
        self.open.store(true, Ordering::SeqCst);
    }

    /// How many connections have been let through.
    pub fn forwarded_connections(&self) -> usize {
        self.forwarded.load(Ordering::SeqCst)
    }
}

impl Drop for GatedProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Waits until `condition` holds, or fails after `within`.
pub async fn wait_until(
    what: &str,
    within: Duration,
    mut condition: impl FnMut() -> bool,
) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + within;
    while !condition() {
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "timed out after {within:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

/// A port nobody listens on right now, for a server process that must be restarted on the same
/// port. Binding it ourselves and handing it over is not possible for another process; the
/// window between closing it here and the server binding it is tiny.
fn unused_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

fn binary(name: &str, fallbacks: &[&str]) -> PathBuf {
    if let Ok(path_variable) = std::env::var("PATH") {
        for directory in std::env::split_paths(&path_variable) {
            let candidate = directory.join(name);
            if candidate.is_file() {
                return candidate;
            }
        }
    }
    for fallback in fallbacks {
        let candidate = PathBuf::from(fallback);
        if candidate.is_file() {
            return candidate;
        }
    }
    PathBuf::from(name)
}

async fn wait_for_port(port: u16, within: Duration) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
            return Ok(());
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "nothing listening on port {port} after {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// A `nats-server` with JetStream of the test's own, which it may stop, kill and restart; its
/// store survives restarts.
#[derive(Debug)]
pub struct PrivateNats {
    port: u16,
    directory: PathBuf,
    child: Option<tokio::process::Child>,
}

impl PrivateNats {
    pub async fn start() -> anyhow::Result<Self> {
        init_test_logging();
        let directory =
            std::env::temp_dir().join(format!("sunshine-nats-{}", uuid::Uuid::now_v7()));
        std::fs::create_dir_all(&directory)?;
        let mut server = PrivateNats {
            port: unused_port()?,
            directory,
            child: None,
        };
        server.restart().await?;
        Ok(server)
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Starts the server (again) on its port with its store.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        anyhow::ensure!(self.child.is_none(), "nats-server is already running");
        let child = tokio::process::Command::new(binary(
            "nats-server",
            &["/usr/sbin/nats-server", "/usr/bin/nats-server"],
        ))
        .args([
            "-a",
            "127.0.0.1",
            "-p",
            &self.port.to_string(),
            "-js",
            "-sd",
        ])
        .arg(self.directory.join("store"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .context("starting nats-server (is it installed? see deploy/local/ensure-backends.sh)")?;
        self.child = Some(child);
        wait_for_port(self.port, Duration::from_secs(10)).await
    }

    /// Kills the server (SIGKILL) and waits for it to exit.
    pub async fn kill(&mut self) -> anyhow::Result<()> {
        if let Some(mut child) = self.child.take() {
            child.kill().await?;
        }
        Ok(())
    }
}

impl Drop for PrivateNats {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.start_kill();
        }
        let _ = std::fs::remove_dir_all(&self.directory);
    }
}

/// A PostgreSQL server of the test's own (`initdb` + `pg_ctl`), trust auth on 127.0.0.1, which
/// the test may stop or kill. Needs the server binaries (`deploy/local/ensure-backends.sh`).
#[derive(Debug)]
pub struct PrivatePostgres {
    port: u16,
    directory: PathBuf,
    pg_ctl: PathBuf,
}

impl PrivatePostgres {
    pub async fn start() -> anyhow::Result<Self> {
        init_test_logging();
        let directory = std::env::temp_dir().join(format!("sunshine-pg-{}", uuid::Uuid::now_v7()));
        std::fs::create_dir_all(&directory)?;
        let fallback_dirs = postgres_bin_dirs();
        let initdb_fallbacks: Vec<String> = fallback_dirs
            .iter()
            .map(|dir| format!("{dir}/initdb"))
            .collect();
        let pg_ctl_fallbacks: Vec<String> = fallback_dirs
            .iter()
            .map(|dir| format!("{dir}/pg_ctl"))
            .collect();
        let initdb = binary(
            "initdb",
            &initdb_fallbacks
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>(),
        );
        let pg_ctl = binary(
            "pg_ctl",
            &pg_ctl_fallbacks
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>(),
        );
        let data = directory.join("data");
        let mut command = std::process::Command::new(&initdb);
        command
            .args(["-U", "postgres", "-A", "trust", "--no-sync", "-D"])
            .arg(&data);
        run_as_postgres_capable(&mut command, &directory)?;
        let status = command
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .context("running initdb")?;
        anyhow::ensure!(status.success(), "initdb failed ({status})");
        let server = PrivatePostgres {
            port: unused_port()?,
            directory,
            pg_ctl,
        };
        server.start_again().await?;
        Ok(server)
    }

    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Starts the server (again) on its port.
    pub async fn start_again(&self) -> anyhow::Result<()> {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=50",
            self.port,
            self.directory.display()
        );
        let mut command = std::process::Command::new(&self.pg_ctl);
        command
            .args(["-w", "-l"])
            .arg(self.directory.join("log"))
            .arg("-D")
            .arg(self.directory.join("data"))
            .args(["-o", &options, "start"]);
        run_as_postgres_capable(&mut command, &self.directory)?;
        let status = command
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .context("running pg_ctl start")?;
        anyhow::ensure!(
            status.success(),
            "pg_ctl start failed ({status}); see {}",
            self.directory.join("log").display()
        );
        wait_for_port(self.port, Duration::from_secs(20)).await
    }

    /// `pg_ctl stop -m immediate`: like a crash, every connection cut at once.
    pub fn stop_immediately(&self) -> anyhow::Result<()> {
        let mut command = std::process::Command::new(&self.pg_ctl);
        command
            .args(["-w", "-m", "immediate", "-D"])
            .arg(self.directory.join("data"))
            .arg("stop");
        run_as_postgres_capable(&mut command, &self.directory)?;
        let status = command
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()?;
        anyhow::ensure!(status.success(), "pg_ctl stop failed ({status})");
        Ok(())
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let _ = self.stop_immediately();
        let _ = std::fs::remove_dir_all(&self.directory);
    }
}

fn postgres_bin_dirs() -> Vec<String> {
    let mut directories: Vec<String> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|entries| {
            entries
                .flatten()
                .map(|entry| format!("{}/bin", entry.path().display()))
                .collect()
        })
        .unwrap_or_default();
    directories.sort();
    directories.reverse();
    directories
}

/// PostgreSQL refuses to run as root: when the tests run as root, run its tools as the
/// `postgres` user (which must own the directory).
fn run_as_postgres_capable(
    command: &mut std::process::Command,
    directory: &Path,
) -> anyhow::Result<()> {
    if current_uid_is_root() {
        let postgres = user_ids("postgres")
            .context("running as root, and there is no postgres user to run PostgreSQL as")?;
        let status = std::process::Command::new("chown")
            .arg("-R")
            .arg(format!("{}:{}", postgres.0, postgres.1))
            .arg(directory)
            .status()?;
        anyhow::ensure!(status.success(), "chown of {} failed", directory.display());
        use std::os::unix::process::CommandExt as _;
        command.uid(postgres.0).gid(postgres.1);
    }
    Ok(())
}

fn current_uid_is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|line| line.starts_with("Uid:"))
                .map(|line| line.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

fn user_ids(name: &str) -> Option<(u32, u32)> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    for line in passwd.lines() {
        let fields: Vec<&str> = line.split(':').collect();
        if fields.first() == Some(&name) && fields.len() > 3 {
            return Some((fields[2].parse().ok()?, fields[3].parse().ok()?));
        }
    }
    None
}
