//! The payment-run benchmark (`make bench-payment`, issue 12): one monthly run over many
//! active entitlements, from a separate process that starts `sunshine serve log` and
//! `sunshine serve payment` from the release binary on a fresh PostgreSQL database and NATS
//! JetStream, as the end-to-end benchmark starts intake and review (`crate::system`).
//! `docs/benchmarks.md` (Payment) describes the method and the JSON.
//!
//! Steps, each timed from the client's side of a real gRPC socket:
//!
//! 1. **Set-up, untimed by the run's figures**: `sunshine migrate`, then N entitlements written
//!    straight into payment's projection tables (`payment_cases`, `payment_entitlements`) as
//!    the projection writes them from review's `CaseOpened` + `CaseApproved` (entitlement id =
//!    case id, monthly, started before the period), by one `INSERT … SELECT generate_series`.
//!    Going through review's events instead would time review's projection, not the run.
//!    Each household's payment account as intake seals it: a data key of its own in
//!    `data_keys` (wrapped by the log's key-encryption key) and the encoded `PaymentAccount`
//!    sealed with it in `payment_accounts`, as payment's projection keeps it from intake's
//!    `HouseholdRegistered` — both `COPY`ed.
//! 2. **Baselines** on a native connection in the same database, the services idle: reading
//!    the N entitlement rows the run reads, `COPY`ing N guard rows and N order rows into
//!    tables shaped like `payment_run_orders` / `payment_orders` (with their keys) in one
//!    transaction, and `COPY … TO STDOUT` of N order rows (the export's read).
//! 3. **CreateRun** of this month as a finance officer; the payment process's peak RSS over
//!    the call (VmHWM, reset just before through `/proc/<pid>/clear_refs`, and VmRSS sampled),
//!    the sizes of the run's stored events, then how long until payment's own projection
//!    shows the run's orders (the event went through the relay and the bus).
//! 4. **The re-run**: CreateRun again with a new command id; the guard rows of the period
//!    before and after give the new orders (must be 0).
//! 5. **ApproveRun** as a finance approver re-keying the control figures, then
//!    **ExportBankFile** (CSV) timed to its stream's last message: the parts' count and bytes,
//!    whether their SHA-256 is the one the first message gives (and the export recorded), and
//!    the payment process's peak RSS over the export.
//!
//! A step that fails (an error status, a timeout) is recorded with its error and the steps
//! after it that need it are skipped: the JSON says where the system broke.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde::Serialize;
use sqlx::{Connection as _, Row as _};
use sunshine_eventlog::keys::log_config_for;
use sunshine_platform::Role;
use sunshine_platform::config::LogKeys;
use sunshine_proto::v1 as pb;
use sunshine_proto::v1::payment_service_client::PaymentServiceClient;
use tonic::transport::{Channel, Endpoint};

use crate::load::round3;
use crate::memory::{PeakRss, kb_to_mb, read_status_kb};
use crate::system::{
    ServiceProcess, admin_connection, base_config, migrate_as_owner, serving, write_config,
};
use crate::workload::{DISTRICT, Signer, with_token};

/// The size the issue's goals are set for.
pub const GOAL_ENTITLEMENTS: usize = 1_000_000;

/// `sunshine-payment-bench`'s options.
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "sunshine-payment-bench",
    about = "Payment-run benchmark: CreateRun over N generated entitlements, re-run, approve, export"
)]
pub struct PaymentOptions {
    /// Active entitlements generated before the run.
    #[arg(long, default_value_t = GOAL_ENTITLEMENTS)]
    pub entitlements: usize,
    /// The CI smoke run: 2,000 entitlements.
    #[arg(long)]
    pub quick: bool,
    /// The services' `grpc.request_timeout_ms` (production default 30 s); also the
    /// client's deadline per call.
    #[arg(long, default_value_t = 900.0)]
    pub request_timeout_s: f64,
    /// How long to wait for payment's projection to show the run's orders.
    #[arg(long, default_value_t = 300.0)]
    pub projection_timeout_s: f64,
    /// Interval of the VmRSS samples, milliseconds.
    #[arg(long, default_value_t = 20)]
    pub rss_sample_ms: u64,
    /// The `sunshine` binary; default `<target dir>/release/sunshine`.
    #[arg(long)]
    pub sunshine: Option<PathBuf>,
    /// Where to write the JSON; default `<target dir>/bench/payment.json`.
    #[arg(long)]
    pub output: Option<PathBuf>,
    /// PostgreSQL `host:port` (trust authentication, superuser `postgres`).
    #[arg(long, env = "SUNSHINE_TEST_POSTGRES", default_value = "127.0.0.1:5432")]
    pub postgres: String,
    /// NATS `host:port` with JetStream.
    #[arg(long, env = "SUNSHINE_TEST_NATS", default_value = "127.0.0.1:4222")]
    pub nats: String,
}

impl PaymentOptions {
    fn effective(&self) -> PaymentOptions {
        let mut options = self.clone();
        if options.quick {
            options.entitlements = 2_000;
            options.projection_timeout_s = options.projection_timeout_s.min(60.0);
        }
        options
    }
}

/// The JSON written to `target/bench/payment.json`.
#[derive(Debug, Default, Serialize)]
pub struct PaymentReport {
    pub benchmark: &'static str,
    pub git_commit: String,
    pub git_dirty: bool,
    pub date_utc: String,
    pub quick: bool,
    pub cores: usize,
    pub kernel: String,
    pub load_average_before: Vec<f64>,
    pub load_average_after: Vec<f64>,
    pub entitlements: usize,
    /// Wall time of CreateRun; `null` when it failed.
    pub payment_run_s: Option<f64>,
    /// The same, only when the run had the goal's 1,000,000 entitlements.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payment_run_1m_s: Option<f64>,
    /// Orders the re-run with a new command id added (must be 0); `null` when not measured.
    pub payment_rerun_new_orders: Option<u64>,
    /// Peak RSS of the payment process during CreateRun (VmHWM after a reset just before).
    pub payment_run_peak_rss_mb: Option<f64>,
    /// Wall time of ExportBankFile (CSV), to the stream's last message; `null` when it failed
    /// or did not run.
    pub payment_export_s: Option<f64>,
    /// The bank file's bytes as received; `null` when the export failed or did not run.
    pub payment_export_bytes: Option<u64>,
    /// Peak RSS of the payment process during the export.
    pub payment_export_peak_rss_mb: Option<f64>,
    /// The first step that failed, and its error.
    pub failed_step: Option<String>,
    pub failure: Option<String>,
    pub setup: Setup,
    pub baseline: PaymentBaseline,
    pub create_run: Option<CreateRunFigures>,
    pub rerun: Option<RerunFigures>,
    pub approve: Option<CallFigures>,
    pub export: Option<ExportFigures>,
    pub ratios: PaymentRatios,
    pub settings: PaymentSettings,
}

impl PaymentReport {
    /// Records `step`'s failure, unless an earlier step failed first.
    fn failed(&mut self, step: &str, error: Option<String>) {
        if self.failed_step.is_none() {
            self.failed_step = Some(step.to_owned());
            self.failure = error;
        }
    }
}

#[derive(Debug, Default, Serialize)]
pub struct Setup {
    pub generate_entitlements_s: f64,
    /// Sealing and `COPY`ing the households' payment accounts and their data keys.
    pub generate_accounts_s: f64,
    /// Vacuuming the set-up's tables and the checkpoint after it, before the service starts.
    pub settle_s: f64,
    pub entitlement_table_mb: f64,
    pub payment_idle_rss_mb: f64,
    /// NATS's `max_payload` (the largest message the relay may publish).
    pub nats_max_payload_bytes: usize,
}

#[derive(Debug, Default, Serialize)]
pub struct PaymentBaseline {
    /// `SELECT` of the entitlement rows the run reads (the run's filter and order), fetched.
    pub read_entitlements_s: f64,
    /// `COPY` of N guard rows into a table shaped like `payment_run_orders`, one transaction.
    pub copy_guard_rows_s: f64,
    /// `COPY` of N order rows into a table shaped like `payment_orders`, one transaction.
    pub copy_order_rows_s: f64,
    /// The floor of a run: read the entitlements, write guard and order rows.
    pub run_floor_s: f64,
    /// `COPY (SELECT … ORDER BY order_id) TO STDOUT` of the N order rows (the export's read).
    pub copy_out_orders_s: f64,
    pub copy_out_bytes: u64,
}

#[derive(Debug, Default, Serialize)]
pub struct CallFigures {
    pub wall_s: f64,
    pub peak_rss_mb: f64,
    pub sampled_peak_rss_mb: f64,
    pub cpu_s: f64,
    pub ok: bool,
    pub error: Option<String>,
}

#[derive(Debug, Default, Serialize)]
pub struct CreateRunFigures {
    #[serde(flatten)]
    pub call: CallFigures,
    pub orders: u64,
    pub guard_rows: u64,
    /// Sizes of the run's stored events (payload bytes), in stream order (its parts, then the
    /// `PaymentRunCreated` closing them).
    pub event_payload_bytes: Vec<u64>,
    /// From the answer until payment's projection showed every order (`payment_orders`).
    pub projected_s: Option<f64>,
    pub projected_orders: u64,
    /// Whether the relay's cursor passed the whole log when the wait ended.
    pub relayed: bool,
    pub projection_note: Option<String>,
}

#[derive(Debug, Default, Serialize)]
pub struct RerunFigures {
    #[serde(flatten)]
    pub call: CallFigures,
    pub guard_rows_before: u64,
    pub guard_rows_after: u64,
    /// The gRPC code of the answer ("OK" when it made a run).
    pub code: String,
}

#[derive(Debug, Default, Serialize)]
pub struct ExportFigures {
    #[serde(flatten)]
    pub call: CallFigures,
    pub file_bytes: u64,
    pub count: u32,
    /// The stream's messages (each one part of the file).
    pub parts: u64,
    /// The largest part, bytes.
    pub largest_part_bytes: u64,
    /// Whether the parts' SHA-256 is the first message's (the digest recorded), and the
    /// length it gives.
    pub sha256_matches: bool,
    pub length_matches: bool,
}

/// What the client read of the export's stream.
#[derive(Debug, Default)]
struct ReceivedFile {
    file_bytes: u64,
    count: u32,
    parts: u64,
    largest_part_bytes: u64,
    sha256_matches: bool,
    length_matches: bool,
}

#[derive(Debug, Default, Serialize)]
pub struct PaymentRatios {
    pub run_to_floor: Option<f64>,
    pub run_to_read_entitlements: Option<f64>,
    pub run_to_copy_guard_rows: Option<f64>,
    pub export_to_copy_out: Option<f64>,
}

#[derive(Debug, Default, Serialize)]
pub struct PaymentSettings {
    pub sunshine_binary: String,
    pub request_timeout_s: f64,
    pub projection_timeout_s: f64,
    pub rss_sample_ms: u64,
    pub period: String,
}

/// Builds the runtime and runs the benchmark.
pub fn main_with(options: PaymentOptions) -> anyhow::Result<()> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run(options.effective()))
}

async fn run(options: PaymentOptions) -> anyhow::Result<()> {
    let sunshine_binary = options
        .sunshine
        .clone()
        .unwrap_or_else(|| crate::target_directory().join("release").join("sunshine"));
    anyhow::ensure!(
        sunshine_binary.exists(),
        "no sunshine binary at {} (build it: cargo build --release -p sunshine, or pass --sunshine)",
        sunshine_binary.display()
    );
    let output = options
        .output
        .clone()
        .unwrap_or_else(|| crate::target_directory().join("bench").join("payment.json"));
    let repository = crate::repository_root();
    let period = this_month();
    let mut report = PaymentReport {
        benchmark: "payment",
        git_commit: crate::report::command_output("git", &["rev-parse", "HEAD"], &repository)
            .unwrap_or_default(),
        git_dirty: crate::report::command_output("git", &["status", "--porcelain"], &repository)
            .is_some_and(|status| !status.is_empty()),
        date_utc: time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default(),
        quick: options.quick,
        cores: std::thread::available_parallelism().map_or(1, usize::from),
        kernel: crate::report::command_output("uname", &["-r"], &repository).unwrap_or_default(),
        load_average_before: crate::cpu::load_average(),
        entitlements: options.entitlements,
        settings: PaymentSettings {
            sunshine_binary: sunshine_binary.display().to_string(),
            request_timeout_s: options.request_timeout_s,
            projection_timeout_s: options.projection_timeout_s,
            rss_sample_ms: options.rss_sample_ms,
            period: period.clone(),
        },
        ..PaymentReport::default()
    };
    let tag = uuid::Uuid::now_v7().simple().to_string();
    let mut bench = Bench::start(&options, &sunshine_binary, &tag).await?;
    let outcome = bench.measure(&options, &period, &mut report).await;
    let stopped = bench.stop().await;
    report.load_average_after = crate::cpu::load_average();
    if let Err(error) = &outcome {
        report.failure.get_or_insert_with(|| format!("{error:#}"));
    }
    if let Some(parent) = output.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(&output, serde_json::to_string_pretty(&report)? + "\n")?;
    eprintln!("wrote {}", output.display());
    outcome?;
    stopped?;
    if let Some(step) = &report.failed_step {
        eprintln!(
            "sunshine-payment-bench: {step} failed: {}",
            report.failure.as_deref().unwrap_or_default()
        );
    }
    anyhow::ensure!(
        report.payment_rerun_new_orders.unwrap_or(0) == 0,
        "the re-run added {} orders",
        report.payment_rerun_new_orders.unwrap_or(0)
    );
    Ok(())
}

/// This month in the district's time (UTC+8), `YYYY-MM`.
fn this_month() -> String {
    let now = time::OffsetDateTime::now_utc() + time::Duration::hours(8);
    format!("{:04}-{:02}", now.year(), u8::from(now.month()))
}

/// The system under test: a database, a stream, `serve log` and `serve payment`.
struct Bench {
    signer: Signer,
    config: sunshine_platform::Config,
    directory: PathBuf,
    database_name: String,
    postgres: String,
    nats: String,
    processes: Vec<ServiceProcess>,
    payment_address: Option<std::net::SocketAddr>,
}

impl Bench {
    async fn start(options: &PaymentOptions, binary: &Path, tag: &str) -> anyhow::Result<Bench> {
        let directory = std::env::temp_dir().join(format!("sunshine-payment-bench-{tag}"));
        std::fs::create_dir_all(&directory)?;
        let signer = Signer::generate()?;
        let mut config = base_config(&signer)?;
        config.bus.url = format!("nats://{}", options.nats);
        config.log.stream_name = format!("sunshine-paybench-{tag}");
        config.log.subject_prefix = format!("paybench{tag}.events");
        config.grpc.request_timeout_ms = seconds_to_ms(options.request_timeout_s);
        let funds_file = directory.join("funds.toml");
        std::fs::write(&funds_file, funds_file_text())?;
        config.payment.funds_file = funds_file.display().to_string();
        let database_name = format!("sunshine_paybench_{tag}");
        let mut admin = admin_connection(&options.postgres).await?;
        // The name is ours (a tag of hex digits), never user input.
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "CREATE DATABASE {database_name}"
        )))
        .execute(&mut admin)
        .await?;
        admin.close().await?;
        let bench = Bench {
            signer,
            config,
            directory,
            database_name,
            postgres: options.postgres.clone(),
            nats: options.nats.clone(),
            processes: Vec::new(),
            payment_address: None,
        };
        match migrate_as_owner(
            binary,
            &bench.directory,
            &bench.config,
            &bench.postgres,
            &bench.database_name,
        )
        .await
        {
            Ok(()) => Ok(bench),
            Err(error) => {
                let _ = bench.stop().await;
                Err(error)
            }
        }
    }

    fn superuser_url(&self) -> String {
        format!(
            "postgres://postgres@{}/{}",
            self.postgres, self.database_name
        )
    }

    /// `serve log` (it takes the lease: sequences, signs, relays), then `serve payment`, each
    /// as its own role with only the log's keys its role holds.
    async fn start_processes(&mut self, binary: &Path) -> anyhow::Result<()> {
        for (service, keys) in [
            ("log", LogKeys::LOG_PROCESS),
            ("payment", sunshine_payment::KEYS),
        ] {
            let mut config = self.config.clone();
            config.database.url = format!(
                "postgres://sunshine_{service}@{}/{}",
                self.postgres, self.database_name
            );
            config.log = log_config_for(&self.config.log, keys).context("the log's keys")?;
            let file = write_config(&self.directory, service, &config)?;
            let mut process =
                ServiceProcess::spawn(binary, service, &["serve", service], &file, &self.directory)
                    .await?;
            let address = process.listening_address(service).await?;
            let ready = serving(address, service).await;
            if service == "log" && ready.is_ok() {
                process.wait_for_lease().await?;
            }
            self.processes.push(process);
            ready?;
            if service == "payment" {
                self.payment_address = Some(address);
            }
        }
        Ok(())
    }

    fn payment_pid(&self) -> anyhow::Result<u32> {
        self.processes
            .iter()
            .find(|process| process.name == "payment")
            .and_then(ServiceProcess::pid)
            .context("no payment process")
    }

    async fn measure(
        &mut self,
        options: &PaymentOptions,
        period: &str,
        report: &mut PaymentReport,
    ) -> anyhow::Result<()> {
        let binary = PathBuf::from(&report.settings.sunshine_binary);
        let count = options.entitlements;
        let mut database = sqlx::PgConnection::connect(&self.superuser_url()).await?;

        eprintln!("generating {count} entitlements");
        let started = Instant::now();
        generate_entitlements(&mut database, count).await?;
        report.setup.generate_entitlements_s = round3(started.elapsed().as_secs_f64());
        eprintln!("sealing {count} payment accounts");
        let started = Instant::now();
        generate_accounts(&mut database, &self.config).await?;
        report.setup.generate_accounts_s = round3(started.elapsed().as_secs_f64());
        let table_bytes: i64 =
            sqlx::query_scalar("SELECT pg_total_relation_size('payment_entitlements')")
                .fetch_one(&mut database)
                .await?;
        report.setup.entitlement_table_mb = megabytes(u64::try_from(table_bytes).unwrap_or(0));
        report.setup.nats_max_payload_bytes = nats_max_payload(&self.nats).await?;

        eprintln!("baselines");
        report.baseline = baselines(&mut database, count, period).await?;
        // What the set-up wrote is not the run's to clean: its tables vacuumed (autovacuum
        // would, in time; it may be off) and its dirty pages flushed, so that the run's
        // figures hold no checkpoint of the set-up's gigabyte of WAL.
        let started = Instant::now();
        // One statement each: VACUUM cannot run in the implicit transaction of several. The
        // quick run (in `make test`, beside other tests' writes) skips the checkpoint: it has
        // little of its own to flush and could wait long for theirs.
        let checkpoint = if options.quick { "" } else { "CHECKPOINT" };
        for statement in [
            "VACUUM (ANALYZE) payment_cases, payment_entitlements, payment_accounts, data_keys",
            checkpoint,
        ] {
            if !statement.is_empty() {
                sqlx::raw_sql(sqlx::AssertSqlSafe(statement))
                    .execute(&mut database)
                    .await?;
            }
        }
        report.setup.settle_s = round3(started.elapsed().as_secs_f64());

        self.start_processes(&binary).await?;
        let pid = self.payment_pid()?;
        report.setup.payment_idle_rss_mb = read_status_kb(pid, "VmRSS:").map_or(0.0, kb_to_mb);
        let timeout = Duration::from_secs_f64(options.request_timeout_s);
        let lifetime = timeout * 4 + Duration::from_secs(3600);
        let services = ["payment"];
        let officer = self.signer.token(
            &self.config,
            &services,
            Role::FinanceOfficer,
            DISTRICT,
            "paybench-officer",
            lifetime,
        )?;
        let approver = self.signer.token(
            &self.config,
            &services,
            Role::FinanceApprover,
            DISTRICT,
            "paybench-approver",
            lifetime,
        )?;
        let address = self.payment_address.context("payment's address")?;
        let mut client = payment_client(address, timeout).await?;
        let sampling = Duration::from_millis(options.rss_sample_ms.max(1));

        eprintln!("CreateRun over {count} entitlements");
        let request = pb::CreateRunRequest {
            command_id: uuid::Uuid::now_v7().to_string(),
            period: period.to_owned(),
        };
        let (answer, call) = measured(pid, sampling, {
            let mut client = client.clone();
            let request = with_token(request, &officer);
            async move { client.create_run(request).await }
        })
        .await;
        let run = answer.ok();
        let mut created = CreateRunFigures {
            call,
            ..CreateRunFigures::default()
        };
        created.guard_rows = guard_rows(&mut database, period).await?;
        if let Some(run) = &run {
            created.orders = u64::from(run.control.as_ref().map_or(0, |control| control.count));
            created.event_payload_bytes = event_sizes(&mut database, &run.run_id).await?;
            eprintln!("waiting for payment's projection");
            let projection = Duration::from_secs_f64(options.projection_timeout_s);
            wait_for_projection(
                &mut database,
                &run.run_id,
                created.orders,
                projection,
                &mut created,
            )
            .await?;
        }
        report.payment_run_s = created.call.ok.then_some(created.call.wall_s);
        report.payment_run_peak_rss_mb = Some(created.call.peak_rss_mb);
        if count == GOAL_ENTITLEMENTS {
            report.payment_run_1m_s = report.payment_run_s;
        }
        if !created.call.ok {
            report.failed("create_run", created.call.error.clone());
        } else if created.projected_s.is_none() {
            // The run was made, but the log could not carry it to payment's own projection
            // (or to anyone): the steps after still run, on the run's stream.
            report.failed("projection", created.projection_note.clone());
        }
        report.create_run = Some(created);
        report.ratios.run_to_floor = ratio(report.payment_run_s, report.baseline.run_floor_s);
        report.ratios.run_to_read_entitlements =
            ratio(report.payment_run_s, report.baseline.read_entitlements_s);
        report.ratios.run_to_copy_guard_rows =
            ratio(report.payment_run_s, report.baseline.copy_guard_rows_s);
        let Some(run) = run else {
            return Ok(());
        };

        eprintln!("the re-run");
        let before = guard_rows(&mut database, period).await?;
        let request = pb::CreateRunRequest {
            command_id: uuid::Uuid::now_v7().to_string(),
            period: period.to_owned(),
        };
        let (answer, call) = measured(pid, sampling, {
            let mut client = client.clone();
            let request = with_token(request, &officer);
            async move { client.create_run(request).await }
        })
        .await;
        let after = guard_rows(&mut database, period).await?;
        let code = match &answer {
            Ok(_) => "OK".to_owned(),
            Err(status) => format!("{:?}", status.code()),
        };
        // A refusal is the re-run's right answer; only a failure to answer at all is not.
        let answered = answer.is_ok()
            || matches!(
                code.as_str(),
                "AlreadyExists" | "FailedPrecondition" | "Aborted"
            );
        report.payment_rerun_new_orders = Some(after.saturating_sub(before));
        report.rerun = Some(RerunFigures {
            call: CallFigures {
                ok: answered,
                ..call
            },
            guard_rows_before: before,
            guard_rows_after: after,
            code,
        });
        if !answered {
            let error = report
                .rerun
                .as_ref()
                .and_then(|rerun| rerun.call.error.clone());
            report.failed("rerun", error);
            return Ok(());
        }

        eprintln!("ApproveRun");
        let control = run.control.clone().unwrap_or_default();
        let request = pb::ApproveRunRequest {
            command_id: uuid::Uuid::now_v7().to_string(),
            run_id: run.run_id.clone(),
            expected_version: run.version,
            control_count: control.count,
            control_total: control.total,
        };
        let (answer, call) = measured(pid, sampling, {
            let mut client = client.clone();
            let request = with_token(request, &approver);
            async move { client.approve_run(request).await }
        })
        .await;
        let error = call.error.clone();
        report.approve = Some(call);
        if answer.is_err() {
            report.failed("approve", error);
            return Ok(());
        }

        eprintln!("ExportBankFile");
        let request = pb::ExportBankFileRequest {
            run_id: run.run_id.clone(),
            format: pb::BankFileFormat::CsvUtf8 as i32,
        };
        let (answer, call) = measured(pid, sampling, {
            let request = with_token(request, &approver);
            async move {
                let stream = client.export_bank_file(request).await?;
                receive_file(stream).await.map(tonic::Response::new)
            }
        })
        .await;
        let received = answer.unwrap_or_default();
        report.payment_export_s = call.ok.then_some(call.wall_s);
        report.payment_export_bytes = call.ok.then_some(received.file_bytes);
        report.payment_export_peak_rss_mb = call.ok.then_some(call.peak_rss_mb);
        if !call.ok {
            report.failed("export", call.error.clone());
        } else if !(received.sha256_matches && received.length_matches) {
            report.failed(
                "export",
                Some("the file received is not the one whose digest the export recorded".into()),
            );
        }
        report.export = Some(ExportFigures {
            call,
            file_bytes: received.file_bytes,
            count: received.count,
            parts: received.parts,
            largest_part_bytes: received.largest_part_bytes,
            sha256_matches: received.sha256_matches,
            length_matches: received.length_matches,
        });
        report.ratios.export_to_copy_out =
            ratio(report.payment_export_s, report.baseline.copy_out_orders_s);
        Ok(())
    }

    /// Stops the processes, drops the database and the stream, removes the files (kept when
    /// something went wrong).
    async fn stop(self) -> anyhow::Result<()> {
        let mut problems = Vec::new();
        for process in self.processes.into_iter().rev() {
            if let Err(error) = process.stop().await {
                problems.push(format!("{error:#}"));
            }
        }
        let dropped = async {
            let mut admin = admin_connection(&self.postgres).await?;
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.database_name
            )))
            .execute(&mut admin)
            .await?;
            admin.close().await?;
            anyhow::Ok(())
        }
        .await;
        if let Err(error) = dropped {
            problems.push(format!("dropping database: {error:#}"));
        }
        let deleted = async {
            let client = async_nats::connect(format!("nats://{}", self.nats)).await?;
            let jetstream = async_nats::jetstream::new(client);
            // Absent when nothing was ever relayed.
            let _ = jetstream.delete_stream(&self.config.log.stream_name).await;
            anyhow::Ok(())
        }
        .await;
        if let Err(error) = deleted {
            problems.push(format!("deleting the stream: {error:#}"));
        }
        if problems.is_empty() {
            let _ = std::fs::remove_dir_all(&self.directory);
            Ok(())
        } else {
            anyhow::bail!(
                "stopping the payment benchmark: {} (logs kept in {})",
                problems.join("; "),
                self.directory.display()
            )
        }
    }
}

fn seconds_to_ms(seconds: f64) -> u64 {
    Duration::from_secs_f64(seconds.max(0.001))
        .as_millis()
        .try_into()
        .unwrap_or(u64::MAX)
}

/// The generated programs' funds with budgets no benchmark run exhausts (the example
/// district's payers, budgets of 10¹¹ yuan).
fn funds_file_text() -> String {
    let mut text = String::from(
        "# sunshine-payment-bench: budgets no run exhausts.\n[payers]\n\
         dibao_urban = [{ from = 2025-01-01, fund = \"dibao\" }]\n\
         dibao_rural = [{ from = 2025-01-01, fund = \"dibao\" }]\n\
         tekun = [{ from = 2025-01-01, fund = \"tekun\" }]\n",
    );
    for (fund, program) in [
        ("dibao", "dibao_urban"),
        ("dibao", "dibao_rural"),
        ("tekun", "tekun"),
    ] {
        text.push_str(&format!(
            "\n[[budget]]\nfund = \"{fund}\"\nprogram = \"{program}\"\n\
             yearly = [{{ from = 2025-01-01, yuan = \"100000000000.00\" }}]\n"
        ));
    }
    // The example district's calendar: a run needs a pay date in force.
    text.push_str(
        "\n[[calendar]]\nfrom = 2025-01-01\ncadence = \"monthly\"\ndue_day = 10\n\
         non_working_day = \"previous\"\n",
    );
    text
}

/// The example district's street-towns (`crates/domain/data/example-district.toml`).
const STREET_TOWNS: &str = "'{990101001000,990101002000,990101003000,990101004000,990101005000,\
990101006000,990101101000,990101102000,990101103000,990101104000}'";

/// `count` cases and their monthly entitlements as payment's projection writes them from
/// review's `CaseOpened` and `CaseApproved`: ids shaped like review's (UUIDs), three programs,
/// the district's street-towns, 300 to 799 yuan a month, started in January 2025.
async fn generate_entitlements(
    database: &mut sqlx::PgConnection,
    count: usize,
) -> anyhow::Result<()> {
    let count = i64::try_from(count)?;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO payment_cases (case_id, household_id, program_code, street_town_code) \
         SELECT md5('case-' || i)::uuid::text, md5('household-' || i)::uuid::text, \
         (ARRAY['dibao_rural', 'dibao_urban', 'tekun'])[1 + i % 3], \
         ({STREET_TOWNS}::text[])[1 + i % 10] FROM generate_series(1, $1) AS i"
    )))
    .bind(count)
    .execute(&mut *database)
    .await?;
    sqlx::query(
        "INSERT INTO payment_entitlements (entitlement_id, case_id, household_id, program_code, \
         street_town_code, kind, amount_fen, start_month) \
         SELECT case_id, case_id, household_id, program_code, street_town_code, 'monthly', \
         30000 + (abs(hashtext(case_id)) % 500) * 100, '2025-01' FROM payment_cases",
    )
    .execute(&mut *database)
    .await?;
    sqlx::query("ANALYZE payment_cases, payment_entitlements")
        .execute(&mut *database)
        .await?;
    Ok(())
}

/// Each generated household's payment account as intake seals it (the module docs): a data
/// key per household (`data_keys`, wrapped by the log's key-encryption key as payment's key
/// store unwraps it) and the encoded `PaymentAccount` sealed with it under the household's
/// associated data, kept in `payment_accounts` as payment's projection keeps intake's
/// `HouseholdRegistered`; both `COPY`ed in one transaction each.
async fn generate_accounts(
    database: &mut sqlx::PgConnection,
    config: &sunshine_platform::Config,
) -> anyhow::Result<()> {
    use prost::Message as _;
    use sunshine_eventlog::crypto::{self, DataKey, KeyEncryptionKey};
    use sunshine_household::SealedField;
    let key_encryption_key = KeyEncryptionKey::from_base64(&config.log.key_encryption_key)?;
    let households: Vec<String> =
        sqlx::query_scalar("SELECT household_id FROM payment_cases ORDER BY household_id")
            .fetch_all(&mut *database)
            .await?;
    let now_us = time::OffsetDateTime::now_utc().unix_timestamp() * 1_000_000;
    let mut keys = Vec::with_capacity(households.len() * 200);
    let mut accounts = Vec::with_capacity(households.len() * 300);
    for (number, household_id) in households.iter().enumerate() {
        let key_id = format!("dk-{}", uuid::Uuid::now_v7());
        let key = DataKey::generate()?;
        let wrapped = key_encryption_key.wrap(&key, &key_id)?;
        let account = sunshine_proto::v1::PaymentAccount {
            bank: "示例农商银行".into(),
            account_number: format!("6222{number:015}"),
            holder_name: "王建国".into(),
        };
        let sealed = crypto::seal(
            &key,
            &key_id,
            &account.encode_to_vec(),
            &SealedField::PaymentAccount.associated_data(household_id),
        )?;
        keys.extend_from_slice(
            format!(
                "{key_id}\t{household_id}\t\\\\x{}\t{now_us}\n",
                hex::encode(&wrapped)
            )
            .as_bytes(),
        );
        accounts.extend_from_slice(
            format!("{household_id}\t\\\\x{}\t{number}\n", hex::encode(&sealed)).as_bytes(),
        );
    }
    drop(households);
    copy_in(
        database,
        "COPY data_keys (key_id, subject, wrapped_key, created_at_us) FROM STDIN",
        keys,
    )
    .await?;
    copy_in(
        database,
        "COPY payment_accounts (household_id, sealed_account, log_position) FROM STDIN",
        accounts,
    )
    .await?;
    sqlx::query("ANALYZE data_keys, payment_accounts")
        .execute(&mut *database)
        .await?;
    Ok(())
}

/// Reads the export's stream to its end, digesting the parts as they come (none is kept).
async fn receive_file(
    stream: tonic::Response<tonic::Streaming<pb::ExportBankFileResponse>>,
) -> Result<ReceivedFile, tonic::Status> {
    use sha2::Digest as _;
    let mut stream = stream.into_inner();
    let mut hasher = sha2::Sha256::new();
    let mut received = ReceivedFile::default();
    let mut expected = (String::new(), 0_u64);
    while let Some(message) = stream.message().await? {
        if received.parts == 0 {
            received.count = message.count;
            expected = (message.sha256.clone(), message.file_bytes);
        }
        received.parts += 1;
        received.file_bytes += message.file.len() as u64;
        received.largest_part_bytes = received.largest_part_bytes.max(message.file.len() as u64);
        hasher.update(&message.file);
    }
    received.sha256_matches = hex::encode(hasher.finalize()) == expected.0;
    received.length_matches = received.file_bytes == expected.1;
    Ok(received)
}

/// The physical floor on a native connection (module docs), in tables of its own, dropped
/// afterwards.
async fn baselines(
    database: &mut sqlx::PgConnection,
    count: usize,
    period: &str,
) -> anyhow::Result<PaymentBaseline> {
    use futures::TryStreamExt as _;
    let started = Instant::now();
    let mut rows = sqlx::query(
        "SELECT entitlement_id, case_id, household_id, program_code, street_town_code, kind, amount_fen, \
         start_month, suspended_from, terminated_from FROM payment_entitlements \
         WHERE start_month <= $1 ORDER BY entitlement_id",
    )
    .bind(period)
    .fetch(&mut *database);
    let mut read = 0_usize;
    while let Some(row) = rows.try_next().await? {
        let _: &str = row.try_get(0)?;
        read += 1;
    }
    drop(rows);
    let read_entitlements_s = started.elapsed().as_secs_f64();
    anyhow::ensure!(read == count, "read {read} entitlements of {count}");

    sqlx::raw_sql(
        "CREATE TABLE bench_guard (entitlement_id TEXT NOT NULL, period TEXT NOT NULL, \
         run_id TEXT NOT NULL, order_id TEXT NOT NULL, PRIMARY KEY (entitlement_id, period)); \
         CREATE INDEX bench_guard_period ON bench_guard (period, entitlement_id); \
         CREATE TABLE bench_orders (order_id TEXT PRIMARY KEY, run_id TEXT NOT NULL, \
         period TEXT NOT NULL, entitlement_id TEXT NOT NULL, case_id TEXT NOT NULL, \
         household_id TEXT NOT NULL, program_code TEXT NOT NULL, street_town_code TEXT NOT NULL, \
         amount_fen BIGINT NOT NULL, repays_order_id TEXT NOT NULL DEFAULT '', \
         state TEXT NOT NULL DEFAULT 'pending', failure_reason TEXT NOT NULL DEFAULT '', \
         fund TEXT NOT NULL DEFAULT '', approved BIGINT NOT NULL DEFAULT 0); \
         CREATE INDEX bench_orders_period_state ON bench_orders (period, state, order_id);",
    )
    .execute(&mut *database)
    .await?;
    let rows: Vec<(String, String, String, String, String, i64)> = sqlx::query_as(
        "SELECT entitlement_id, case_id, household_id, program_code, street_town_code, amount_fen \
         FROM payment_entitlements ORDER BY entitlement_id",
    )
    .fetch_all(&mut *database)
    .await?;
    let run_id = uuid::Uuid::now_v7().to_string();
    let mut guard = Vec::with_capacity(rows.len() * 120);
    let mut orders = Vec::with_capacity(rows.len() * 250);
    for (number, (entitlement, case, household, program, street, amount)) in rows.iter().enumerate()
    {
        let order_id = format!("{run_id}-{number:07}");
        guard.extend_from_slice(
            format!("{entitlement}\t{period}\t{run_id}\t{order_id}\n").as_bytes(),
        );
        orders.extend_from_slice(
            format!(
                "{order_id}\t{run_id}\t{period}\t{entitlement}\t{case}\t{household}\t{program}\t{street}\t{amount}\tdibao\n"
            )
            .as_bytes(),
        );
    }
    drop(rows);
    let copy_guard_rows_s = copy_in(
        database,
        "COPY bench_guard (entitlement_id, period, run_id, order_id) FROM STDIN",
        guard,
    )
    .await?;
    let copy_order_rows_s = copy_in(
        database,
        "COPY bench_orders (order_id, run_id, period, entitlement_id, case_id, household_id, \
         program_code, street_town_code, amount_fen, fund) FROM STDIN",
        orders,
    )
    .await?;
    let started = Instant::now();
    let mut out = database
        .copy_out_raw(
            "COPY (SELECT order_id, entitlement_id, household_id, amount_fen FROM bench_orders \
             ORDER BY order_id) TO STDOUT",
        )
        .await?;
    let mut copy_out_bytes = 0_u64;
    while let Some(chunk) = out.try_next().await? {
        copy_out_bytes += chunk.len() as u64;
    }
    drop(out);
    let copy_out_orders_s = started.elapsed().as_secs_f64();
    sqlx::raw_sql("DROP TABLE bench_guard; DROP TABLE bench_orders; CHECKPOINT;")
        .execute(&mut *database)
        .await?;
    Ok(PaymentBaseline {
        read_entitlements_s: round3(read_entitlements_s),
        copy_guard_rows_s: round3(copy_guard_rows_s),
        copy_order_rows_s: round3(copy_order_rows_s),
        run_floor_s: round3(read_entitlements_s + copy_guard_rows_s + copy_order_rows_s),
        copy_out_orders_s: round3(copy_out_orders_s),
        copy_out_bytes,
    })
}

/// `statement` (a `COPY … FROM STDIN`) with `data`, in one transaction; its seconds.
async fn copy_in(
    database: &mut sqlx::PgConnection,
    statement: &'static str,
    data: Vec<u8>,
) -> anyhow::Result<f64> {
    let started = Instant::now();
    let mut transaction = database.begin().await?;
    let mut copy = transaction.copy_in_raw(statement).await?;
    for chunk in data.chunks(1 << 20) {
        copy.send(chunk).await?;
    }
    copy.finish().await?;
    transaction.commit().await?;
    Ok(started.elapsed().as_secs_f64())
}

async fn nats_max_payload(nats: &str) -> anyhow::Result<usize> {
    let client = async_nats::connect(format!("nats://{nats}")).await?;
    Ok(client.server_info().max_payload)
}

async fn payment_client(
    address: std::net::SocketAddr,
    timeout: Duration,
) -> anyhow::Result<PaymentServiceClient<Channel>> {
    let channel = Endpoint::from_shared(format!("http://{address}"))?
        .tcp_nodelay(true)
        .timeout(timeout)
        .connect_timeout(Duration::from_secs(5))
        .connect()
        .await
        .with_context(|| format!("connecting to {address}"))?;
    Ok(PaymentServiceClient::new(channel)
        .max_decoding_message_size(usize::MAX)
        .max_encoding_message_size(usize::MAX))
}

fn megabytes(bytes: u64) -> f64 {
    round3(bytes as f64 / (1024.0 * 1024.0))
}

/// Runs `call`, timing it and sampling the process's RSS meanwhile.
async fn measured<T, F>(
    pid: u32,
    sampling: Duration,
    call: F,
) -> (Result<T, tonic::Status>, CallFigures)
where
    F: std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
{
    let rss = PeakRss::start(pid, sampling);
    let cpu_before = crate::cpu::process_cpu_seconds(pid).unwrap_or(0.0);
    let started = Instant::now();
    let answer = call.await.map(tonic::Response::into_inner);
    let wall_s = round3(started.elapsed().as_secs_f64());
    let peak = rss.finish().await;
    let cpu_s = round3(crate::cpu::process_cpu_seconds(pid).unwrap_or(0.0) - cpu_before);
    let figures = CallFigures {
        wall_s,
        peak_rss_mb: peak.peak_mb,
        sampled_peak_rss_mb: peak.sampled_peak_mb,
        cpu_s,
        ok: answer.is_ok(),
        error: answer.as_ref().err().map(|status| {
            let message: String = status.message().chars().take(500).collect();
            format!("{:?}: {message}", status.code())
        }),
    };
    (answer, figures)
}

async fn guard_rows(database: &mut sqlx::PgConnection, period: &str) -> anyhow::Result<u64> {
    let count: i64 =
        sqlx::query_scalar("SELECT count(*) FROM payment_run_orders WHERE period = $1")
            .bind(period)
            .fetch_one(&mut *database)
            .await?;
    Ok(u64::try_from(count).unwrap_or(0))
}

async fn event_sizes(database: &mut sqlx::PgConnection, run_id: &str) -> anyhow::Result<Vec<u64>> {
    let sizes: Vec<i32> = sqlx::query_scalar(
        "SELECT octet_length(payload) FROM events WHERE stream_id = $1 ORDER BY stream_version",
    )
    .bind(format!("payment-run-{run_id}"))
    .fetch_all(&mut *database)
    .await?;
    Ok(sizes
        .into_iter()
        .map(|size| u64::try_from(size).unwrap_or(0))
        .collect())
}

/// The cursor of payment's projection of its own runs (and review's cases).
const PROJECTION_CURSOR: &str = "consumer:payment-entitlements";

/// Waits until payment's projection has applied every event of the run (and `payment_orders`
/// has its `orders`), or `timeout`; records how long and whether the relay had published the
/// whole log.
async fn wait_for_projection(
    database: &mut sqlx::PgConnection,
    run_id: &str,
    orders: u64,
    timeout: Duration,
    figures: &mut CreateRunFigures,
) -> anyhow::Result<()> {
    let started = Instant::now();
    loop {
        // The append writes the orders' rows itself (its guard), so the table alone says
        // nothing of the projection: it is done when its cursor passed every event of the run.
        let row = sqlx::query(
            "SELECT (SELECT count(*) FROM payment_orders WHERE run_id = $1), \
             (SELECT count(*) FROM events WHERE stream_id = $2), \
             (SELECT count(*) FROM events e JOIN log_entries l ON l.event_sequence = e.sequence \
              WHERE e.stream_id = $2 AND l.log_position < \
              COALESCE((SELECT next_position FROM log_cursors WHERE name = $3), 0))",
        )
        .bind(run_id)
        .bind(format!("payment-run-{run_id}"))
        .bind(PROJECTION_CURSOR)
        .fetch_one(&mut *database)
        .await?;
        let projected: i64 = row.try_get(0)?;
        let events: i64 = row.try_get(1)?;
        let applied: i64 = row.try_get(2)?;
        figures.projected_orders = u64::try_from(projected).unwrap_or(0);
        if figures.projected_orders >= orders && applied >= events {
            figures.projected_s = Some(round3(started.elapsed().as_secs_f64()));
            break;
        }
        if started.elapsed() > timeout {
            figures.projection_note = Some(format!(
                "payment's projection showed {} of {orders} orders after {:.0} s",
                figures.projected_orders,
                timeout.as_secs_f64()
            ));
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let row = sqlx::query(
        "SELECT (SELECT count(*) FROM log_entries), \
         COALESCE((SELECT next_position FROM log_cursors WHERE name = $1), -1)",
    )
    .bind(sunshine_eventlog::relay::RELAY_CURSOR)
    .fetch_one(&mut *database)
    .await?;
    let log_size: i64 = row.try_get(0)?;
    let relay_next: i64 = row.try_get(1)?;
    figures.relayed = relay_next >= log_size;
    if !figures.relayed {
        let note = format!("the relay is at {relay_next} of a log of {log_size}");
        figures.projection_note = Some(match figures.projection_note.take() {
            Some(earlier) => format!("{earlier}; {note}"),
            None => note,
        });
    }
    Ok(())
}

fn ratio(figure: Option<f64>, baseline: f64) -> Option<f64> {
    figure
        .filter(|_| baseline > 0.0)
        .map(|figure| round3(figure / baseline))
}
