//! `sunshine serve <name>` as a process of its own, for tests that need the cluster's real
//! shape (one process per service and the log process, each with its own login and keys) or
//! kill a process: its JSON log lines and standard error kept line by line, the port it bound
//! read from its "grpc server listening" line, health waited for, SIGKILL and SIGTERM.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sunshine_platform::Config;
use tokio::io::AsyncBufReadExt as _;
use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

/// How long a process gets to start, answer or stop.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// Writes `config` where `sunshine` reads it (`SUNSHINE_CONFIG`): `<directory>/<name>.toml`.
pub fn write_config(directory: &Path, name: &str, config: &Config) -> anyhow::Result<PathBuf> {
    let path = directory.join(format!("{name}.toml"));
    std::fs::write(&path, toml::to_string(config)?)?;
    Ok(path)
}

/// A running `sunshine serve <name>`.
#[derive(Debug)]
pub struct SunshineProcess {
    pub name: &'static str,
    child: tokio::process::Child,
    stdout: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<Vec<String>>>,
    /// The tasks reading its output: done once it has closed both (it exited).
    readers: Vec<tokio::task::JoinHandle<()>>,
    pub address: SocketAddr,
}

impl SunshineProcess {
    /// Starts `binary serve <name>` with `SUNSHINE_CONFIG=<config_file>`, the given
    /// `environment` and nothing of the test's own, and waits until it says where it listens
    /// (configure `grpc.listen_address` with port 0).
    pub async fn spawn(
        binary: &Path,
        name: &'static str,
        config_file: &Path,
        environment: &[(&str, &str)],
    ) -> anyhow::Result<SunshineProcess> {
        let mut process = SunshineProcess::start(binary, name, config_file, environment)?;
        process.address = process.listening_address().await?;
        Ok(process)
    }

    /// Starts it without waiting for anything: for a process expected to refuse to start.
    pub fn start(
        binary: &Path,
        name: &'static str,
        config_file: &Path,
        environment: &[(&str, &str)],
    ) -> anyhow::Result<SunshineProcess> {
        let mut command = tokio::process::Command::new(binary);
        command
            .args(["serve", name])
            .env_clear()
            .env("SUNSHINE_CONFIG", config_file)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        for (variable, value) in environment {
            command.env(variable, value);
        }
        let mut child = command.spawn()?;
        let (stdout, stdout_reader) = keep_lines(
            child
                .stdout
                .take()
                .ok_or_else(|| anyhow::anyhow!("no stdout"))?,
        );
        let (stderr, stderr_reader) = keep_lines(
            child
                .stderr
                .take()
                .ok_or_else(|| anyhow::anyhow!("no stderr"))?,
        );
        Ok(SunshineProcess {
            name,
            child,
            stdout,
            stderr,
            readers: vec![stdout_reader, stderr_reader],
            address: SocketAddr::from(([127, 0, 0, 1], 0)),
        })
    }

    /// Its standard output so far, one line each (JSON log lines).
    pub fn stdout_lines(&self) -> Vec<String> {
        lines_of(&self.stdout)
    }

    /// Its standard error so far.
    pub fn stderr_lines(&self) -> Vec<String> {
        lines_of(&self.stderr)
    }

    /// The port it bound, from its "grpc server listening" log line.
    async fn listening_address(&mut self) -> anyhow::Result<SocketAddr> {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            for line in self.stdout_lines() {
                let Ok(line) = serde_json::from_str::<serde_json::Value>(&line) else {
                    continue;
                };
                if line["message"] == "grpc server listening"
                    && let Some(address) = line["address"].as_str()
                {
                    let address = address.trim_start_matches("Some(").trim_end_matches(')');
                    return Ok(address.parse()?);
                }
            }
            if let Some(status) = self.child.try_wait()? {
                anyhow::bail!(
                    "sunshine serve {} exited: {status}\n{}",
                    self.name,
                    self.stderr_lines().join("\n")
                );
            }
            anyhow::ensure!(
                tokio::time::Instant::now() < deadline,
                "sunshine serve {} never said where it listens",
                self.name
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub async fn channel(&self) -> anyhow::Result<Channel> {
        Ok(Channel::from_shared(format!("http://{}", self.address))?
            .connect()
            .await?)
    }

    /// Waits until its health check says SERVING (the backends connected, its start-up done).
    pub async fn wait_until_serving(&self) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        let mut client = HealthClient::new(self.channel().await?);
        loop {
            let status = client
                .check(HealthCheckRequest {
                    service: self.name.into(),
                })
                .await?
                .into_inner()
                .status();
            if status == ServingStatus::Serving {
                return Ok(());
            }
            anyhow::ensure!(
                tokio::time::Instant::now() < deadline,
                "{} is still {status:?}",
                self.name
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits for a line on standard error holding `fragment`.
    pub async fn wait_for_stderr(&self, fragment: &str) -> anyhow::Result<()> {
        wait_for_line(&self.stderr, fragment, self.name, "standard error").await
    }

    /// Waits for a log line (standard output) holding `fragment`.
    pub async fn wait_for_log(&self, fragment: &str) -> anyhow::Result<()> {
        wait_for_line(&self.stdout, fragment, self.name, "its log").await
    }

    /// Whether a log line so far holds `fragment`.
    pub fn logged(&self, fragment: &str) -> bool {
        self.stdout_lines()
            .iter()
            .any(|line| line.contains(fragment))
    }

    /// Waits for it to exit by itself; its status.
    /// Its exit, once everything it wrote before exiting has been read (so that
    /// [`SunshineProcess::stderr_lines`] then holds its last words).
    pub async fn exit_status(&mut self) -> anyhow::Result<ExitStatus> {
        let status = tokio::time::timeout(PATIENCE, self.child.wait()).await??;
        for reader in self.readers.drain(..) {
            tokio::time::timeout(PATIENCE, reader).await??;
        }
        Ok(status)
    }

    /// SIGKILL, and the exit.
    pub async fn kill(&mut self) -> anyhow::Result<()> {
        self.child.kill().await?;
        Ok(())
    }

    /// SIGTERM, as Kubernetes stops a pod, and a clean exit.
    pub async fn stop(&mut self) -> anyhow::Result<()> {
        if let Some(pid) = self.child.id() {
            tokio::process::Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status()
                .await?;
        }
        let status = self.exit_status().await?;
        anyhow::ensure!(
            status.success(),
            "sunshine serve {} exited with {status}",
            self.name
        );
        Ok(())
    }
}

async fn wait_for_line(
    lines: &Mutex<Vec<String>>,
    fragment: &str,
    name: &str,
    place: &str,
) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !lines_of(lines).iter().any(|line| line.contains(fragment)) {
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "{name} never wrote {fragment:?} on {place}"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    Ok(())
}

fn keep_lines(
    reader: impl tokio::io::AsyncRead + Unpin + Send + 'static,
) -> (Arc<Mutex<Vec<String>>>, tokio::task::JoinHandle<()>) {
    let kept = Arc::new(Mutex::new(Vec::new()));
    let writer = Arc::clone(&kept);
    let task = tokio::spawn(async move {
        let mut lines = tokio::io::BufReader::new(reader).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            writer
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push(line);
        }
    });
    (kept, task)
}

fn lines_of(kept: &Mutex<Vec<String>>) -> Vec<String> {
    kept.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone()
}
