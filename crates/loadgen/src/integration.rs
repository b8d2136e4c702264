//! The department-integration benchmark (`make bench-integration`, issue 13): departments'
//! systems push their assistance records (`PushAssistanceRecords`) over real gRPC from this
//! process to `sunshine serve department-integration`, started from the release binary beside
//! `sunshine serve log` on a fresh PostgreSQL database and NATS JetStream, as the payment
//! benchmark starts payment (`crate::payment`). `docs/benchmarks.md` (Department integration)
//! describes the method and the JSON.
//!
//! Steps:
//!
//! 1. **Set-up, untimed**: `sunshine migrate`; the records generated (below) and encoded into
//!    their requests before anything is timed.
//! 2. **Baseline**, the services not yet started: the event log's batched append
//!    (`sunshine_eventlog::throughput`, what `make bench-eventlog` measures) on a native
//!    connection as the database's owner, to a database of its own on the same server (its
//!    events would otherwise be sequenced, relayed and projected with the run's): batches of
//!    the push's size, from as many writers as pushes in flight, for `--baseline-s`.
//! 3. **The push**: every batch in order (`--concurrency` in flight), each a
//!    `PushAssistanceRecords` of `--batch` records with a new command id under its
//!    department's token, timed from the client's side of the socket; the service's peak RSS
//!    over the push (VmHWM reset just before, and VmRSS sampled) and the CPU seconds of the
//!    service and the log process. Then what was stored (rows of `integration_records`, the
//!    batches' events and their bytes, the duplicates found), and how long after the last
//!    answer the relay had published the whole log to NATS.
//! 4. **The repeat**: the first batch again with a new command id: every record `UNCHANGED`,
//!    nothing stored.
//!
//! The records are realistic: five departments of the example registry take turns, batch by
//! batch, each with a program it runs, a kind, an amount and a period of its own; every
//! record is a distinct person with a valid resident id number (GB 11643-1999), except one in
//! a hundred of the charity federation's, which is a pupil of the education bureau's batch of
//! the same round with the same program, kind and overlapping period: a duplicate benefit the
//! service detects (and appends) during the push, as it would in a district.
//!
//! A step that fails is recorded with its error and the steps after it are skipped.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde::Serialize;
use sqlx::{Connection as _, Row as _};
use sunshine_eventlog::keys::log_config_for;
use sunshine_eventlog::throughput::{self, AppendLoad};
use sunshine_platform::config::LogKeys;
use sunshine_proto::v1 as pb;
use sunshine_proto::v1::department_integration_service_client::DepartmentIntegrationServiceClient;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::transport::{Channel, Endpoint};

use crate::load::{Percentiles, round3};
use crate::memory::{PeakRss, kb_to_mb, read_status_kb};
use crate::system::{
    ServiceProcess, admin_connection, base_config, migrate_as_owner, serving, write_config,
};
use crate::workload::{Signer, with_token};

/// The issue's size: 100,000 records in batches of 1,000.
pub const GOAL_RECORDS: usize = 100_000;
pub const GOAL_BATCH: usize = 1_000;
/// The issue's goal: the push at least half the log's batched append rate.
pub const GOAL_RATIO: f64 = 0.5;
/// The baseline's events: the size `make bench-eventlog` appends (a typical case event).
pub const BASELINE_PAYLOAD_BYTES: usize = 300;

/// The service as `sunshine serve` names it.
const SERVICE: &str = sunshine_department_integration::SERVICE_NAME;

/// `sunshine-integration-bench`'s options.
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "sunshine-integration-bench",
    about = "Department-integration benchmark: PushAssistanceRecords of N records in batches, beside the log's batched append"
)]
pub struct IntegrationOptions {
    /// Records pushed.
    #[arg(long, default_value_t = GOAL_RECORDS)]
    pub records: usize,
    /// Records per PushAssistanceRecords (1 ..= 1,000).
    #[arg(long, default_value_t = GOAL_BATCH)]
    pub batch: usize,
    /// The CI smoke run: 2,000 records in batches of 200, a 0.5 s baseline.
    #[arg(long)]
    pub quick: bool,
    /// Pushes in flight at once (and the baseline's writers).
    #[arg(long, default_value_t = 1)]
    pub concurrency: usize,
    /// How long the baseline appends, seconds.
    #[arg(long, default_value_t = 4.0)]
    pub baseline_s: f64,
    /// The services' `grpc.request_timeout_ms` (production default 30 s); also the
    /// client's deadline per call.
    #[arg(long, default_value_t = 60.0)]
    pub request_timeout_s: f64,
    /// How long to wait after the push for the relay to publish the whole log.
    #[arg(long, default_value_t = 60.0)]
    pub relay_timeout_s: f64,
    /// Interval of the VmRSS samples, milliseconds.
    #[arg(long, default_value_t = 20)]
    pub rss_sample_ms: u64,
    /// The `sunshine` binary; default `<target dir>/release/sunshine`.
    #[arg(long)]
    pub sunshine: Option<PathBuf>,
    /// Where to write the JSON; default `<target dir>/bench/integration.json`.
    #[arg(long)]
    pub output: Option<PathBuf>,
    /// PostgreSQL `host:port` (trust authentication, superuser `postgres`).
    #[arg(long, env = "SUNSHINE_TEST_POSTGRES", default_value = "127.0.0.1:5432")]
    pub postgres: String,
    /// NATS `host:port` with JetStream.
    #[arg(long, env = "SUNSHINE_TEST_NATS", default_value = "127.0.0.1:4222")]
    pub nats: String,
}

impl IntegrationOptions {
    fn effective(&self) -> IntegrationOptions {
        let mut options = self.clone();
        if options.quick {
            options.records = 2_000;
            options.batch = 200;
            options.baseline_s = 0.5;
            options.relay_timeout_s = options.relay_timeout_s.min(30.0);
        }
        options.concurrency = options.concurrency.max(1);
        options
    }
}

/// The JSON written to `target/bench/integration.json`.
#[derive(Debug, Default, Serialize)]
pub struct IntegrationReport {
    pub benchmark: &'static str,
    pub git_commit: String,
    pub git_dirty: bool,
    pub date_utc: String,
    pub quick: bool,
    pub cores: usize,
    pub kernel: String,
    pub load_average_before: Vec<f64>,
    pub load_average_after: Vec<f64>,
    pub records: usize,
    pub batch: usize,
    pub batches: usize,
    pub concurrency: usize,
    /// Records stored per second over the whole push; `null` when it failed.
    pub push_records_per_s: Option<f64>,
    /// The log's batched append in the same run, events per second (the baseline).
    pub baseline_append_events_per_s: f64,
    /// `push_records_per_s / baseline_append_events_per_s`.
    pub ratio: Option<f64>,
    pub goal_ratio: f64,
    pub meets_goal: Option<bool>,
    /// The department-integration process's peak RSS during the push.
    pub service_peak_rss_mb: Option<f64>,
    /// The first step that failed, and its error.
    pub failed_step: Option<String>,
    pub failure: Option<String>,
    pub setup: Setup,
    pub baseline: Baseline,
    pub push: Option<PushFigures>,
    pub repeat: Option<RepeatFigures>,
    pub settings: Settings,
}

impl IntegrationReport {
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
    /// Generating and encoding every batch's request.
    pub generate_s: f64,
    /// Mean encoded size of one request, bytes.
    pub request_bytes_mean: u64,
    pub departments: Vec<String>,
    pub service_idle_rss_mb: f64,
}

#[derive(Debug, Default, Serialize)]
pub struct Baseline {
    pub what: String,
    pub writers: usize,
    pub events_per_append: usize,
    pub payload_bytes: usize,
    pub seconds: f64,
    pub events: u64,
    pub appends_per_s: f64,
    pub events_per_s: f64,
}

#[derive(Debug, Default, Serialize)]
pub struct PushFigures {
    /// From the first request sent to the last answer.
    pub wall_s: f64,
    pub records_per_s: f64,
    pub batches_ok: usize,
    /// Each PushAssistanceRecords, from the client's side.
    pub batch_latency: Percentiles,
    /// The answers' counts.
    pub stored: u64,
    pub unchanged: u64,
    pub refused: u64,
    pub rejected: u64,
    /// Rows of `integration_records` afterwards.
    pub stored_rows: u64,
    /// The batches' events (`AssistanceRecordsPushed`) and their payloads.
    pub batch_events: u64,
    pub batch_event_payload_bytes: u64,
    /// Duplicate benefits the service found during the push (`integration_duplicates`), and
    /// how many the workload holds.
    pub duplicates_found: u64,
    pub duplicates_expected: u64,
    pub service_cpu_s: f64,
    pub log_process_cpu_s: f64,
    pub service_peak_rss_mb: f64,
    pub service_sampled_peak_rss_mb: f64,
    /// From the last answer until the relay had published the whole log to NATS; `null` when
    /// it had not within `--relay-timeout-s`.
    pub relayed_after_s: Option<f64>,
    pub log_size: u64,
}

#[derive(Debug, Default, Serialize)]
pub struct RepeatFigures {
    pub wall_s: f64,
    pub ok: bool,
    pub error: Option<String>,
    pub stored: u32,
    pub unchanged: u32,
    pub stored_rows_after: u64,
}

#[derive(Debug, Default, Serialize)]
pub struct Settings {
    pub sunshine_binary: String,
    pub request_timeout_s: f64,
    pub relay_timeout_s: f64,
    pub rss_sample_ms: u64,
}

/// A department's records in the workload: one of its programs, a kind, an amount, a period.
#[derive(Debug, Clone, Copy)]
pub struct Template {
    pub department: &'static str,
    pub record_prefix: &'static str,
    pub program: &'static str,
    pub kind: &'static str,
    pub amount_fen: i64,
    pub period_start: &'static str,
    pub period_end: &'static str,
}

/// The departments taking turns (the example registry's), the education bureau first.
pub const TEMPLATES: &[Template] = &[
    Template {
        department: "education",
        record_prefix: "edu",
        program: "education_assistance",
        kind: "fee_exemption",
        amount_fen: 60_000,
        period_start: "2026-09",
        period_end: "2027-06",
    },
    Template {
        department: "human_resources",
        record_prefix: "hrss",
        program: "employment_assistance",
        kind: "subsidy",
        amount_fen: 150_000,
        period_start: "2026-01",
        period_end: "2026-12",
    },
    Template {
        department: "health",
        record_prefix: "health",
        program: "rural_cooperative_medical",
        kind: "subsidy",
        amount_fen: 38_000,
        period_start: "2026-01",
        period_end: "2026-12",
    },
    Template {
        department: "civil_affairs",
        record_prefix: "ca",
        program: "temporary_assistance",
        kind: "cash",
        amount_fen: 200_000,
        period_start: "2026-05",
        period_end: "2026-05",
    },
    Template {
        department: "charity_federation",
        record_prefix: "charity",
        program: "serious_illness_medical",
        kind: "cash",
        amount_fen: 500_000,
        period_start: "2026-03",
        period_end: "2026-03",
    },
];

/// The charity federation's bursary of an education pupil: a duplicate benefit.
const CHARITY_BURSARY: Template = Template {
    department: "charity_federation",
    record_prefix: "charity",
    program: "education_assistance",
    kind: "fee_exemption",
    amount_fen: 50_000,
    period_start: "2026-09",
    period_end: "2027-06",
};

/// One in this many of the charity federation's records is a duplicate.
const DUPLICATE_EVERY: usize = 100;

/// Person `person`'s resident id number: the example district's address code, a birth date
/// from 1950 on and a sequence number, with its check character.
pub fn national_id(person: usize) -> String {
    let day = i64::try_from(person % 20_000).unwrap_or(0);
    let sequence = (person / 20_000) % 1_000;
    let birth = time::Date::from_calendar_date(1950, time::Month::January, 1)
        .unwrap_or(time::Date::MIN)
        + time::Duration::days(day);
    let body = format!(
        "990101{:04}{:02}{:02}{sequence:03}",
        birth.year(),
        u8::from(birth.month()),
        birth.day()
    );
    sunshine_domain::NationalId::with_check_character(&body).unwrap_or_default()
}

/// One push of the workload: its department (an index of [`TEMPLATES`]) and its request.
#[derive(Debug, Clone)]
pub struct Push {
    pub department: usize,
    pub request: pb::PushAssistanceRecordsRequest,
}

/// The workload: `records` in batches of `batch` (module docs), and the duplicates it holds.
pub fn workload(records: usize, batch: usize) -> (Vec<Push>, u64) {
    let batch = batch.max(1);
    let mut pushes = Vec::with_capacity(records.div_ceil(batch));
    let mut duplicates = 0;
    for (number, start) in (0..records).step_by(batch).enumerate() {
        let department = number % TEMPLATES.len();
        // This round's education batch (the first of the round).
        let education_start = (number - department) * batch;
        let records = (start..(start + batch).min(records))
            .map(|index| {
                let mut template = TEMPLATES[department];
                let mut person = index;
                if template.department == CHARITY_BURSARY.department && index % DUPLICATE_EVERY == 0
                {
                    template = CHARITY_BURSARY;
                    person = education_start + (index - start);
                    duplicates += 1;
                }
                pb::AssistanceRecord {
                    record_id: format!("{}-2026-{index:07}", template.record_prefix),
                    national_id: national_id(person),
                    program_code: template.program.into(),
                    kind: template.kind.into(),
                    amount: Some(pb::Money {
                        fen: template.amount_fen + i64::try_from(index % 50).unwrap_or(0) * 100,
                    }),
                    period_start: template.period_start.into(),
                    period_end: template.period_end.into(),
                }
            })
            .collect();
        pushes.push(Push {
            department,
            request: pb::PushAssistanceRecordsRequest {
                command_id: uuid::Uuid::now_v7().to_string(),
                records,
            },
        });
    }
    (pushes, duplicates)
}

/// Builds the runtime and runs the benchmark.
pub fn main_with(options: IntegrationOptions) -> anyhow::Result<()> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run(options.effective()))
}

async fn run(options: IntegrationOptions) -> anyhow::Result<()> {
    anyhow::ensure!(
        (1..=sunshine_department_integration::records::MAX_BATCH).contains(&options.batch),
        "--batch must be 1 to {}",
        sunshine_department_integration::records::MAX_BATCH
    );
    anyhow::ensure!(options.records > 0, "--records must be at least 1");
    let sunshine_binary = options
        .sunshine
        .clone()
        .unwrap_or_else(|| crate::target_directory().join("release").join("sunshine"));
    anyhow::ensure!(
        sunshine_binary.exists(),
        "no sunshine binary at {} (build it: cargo build --release -p sunshine, or pass --sunshine)",
        sunshine_binary.display()
    );
    let output = options.output.clone().unwrap_or_else(|| {
        crate::target_directory()
            .join("bench")
            .join("integration.json")
    });
    let repository = crate::repository_root();
    let mut report = IntegrationReport {
        benchmark: "integration",
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
        records: options.records,
        batch: options.batch,
        batches: options.records.div_ceil(options.batch),
        concurrency: options.concurrency,
        goal_ratio: GOAL_RATIO,
        settings: Settings {
            sunshine_binary: sunshine_binary.display().to_string(),
            request_timeout_s: options.request_timeout_s,
            relay_timeout_s: options.relay_timeout_s,
            rss_sample_ms: options.rss_sample_ms,
        },
        ..IntegrationReport::default()
    };
    let tag = uuid::Uuid::now_v7().simple().to_string();
    let mut bench = Bench::start(&options, &sunshine_binary, &tag).await?;
    let outcome = bench.measure(&options, &mut report).await;
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
        anyhow::bail!(
            "{step} failed: {}",
            report.failure.as_deref().unwrap_or_default()
        );
    }
    Ok(())
}

/// The system under test: a database, a stream, `serve log` and `serve department-integration`.
struct Bench {
    signer: Signer,
    config: sunshine_platform::Config,
    directory: PathBuf,
    database_name: String,
    postgres: String,
    nats: String,
    processes: Vec<ServiceProcess>,
    address: Option<std::net::SocketAddr>,
}

impl Bench {
    async fn start(
        options: &IntegrationOptions,
        binary: &Path,
        tag: &str,
    ) -> anyhow::Result<Bench> {
        let directory = std::env::temp_dir().join(format!("sunshine-integration-bench-{tag}"));
        std::fs::create_dir_all(&directory)?;
        let signer = Signer::generate()?;
        let mut config = base_config(&signer)?;
        config.bus.url = format!("nats://{}", options.nats);
        config.log.stream_name = format!("sunshine-intbench-{tag}");
        config.log.subject_prefix = format!("intbench{tag}.events");
        config.grpc.request_timeout_ms = seconds_to_ms(options.request_timeout_s);
        config.integration.generate_person_index_key()?;
        let database_name = format!("sunshine_intbench_{tag}");
        let mut admin = admin_connection(&options.postgres).await?;
        // The names are ours (a tag of hex digits), never user input.
        for name in [database_name.clone(), format!("{database_name}_baseline")] {
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                .execute(&mut admin)
                .await?;
        }
        admin.close().await?;
        let bench = Bench {
            signer,
            config,
            directory,
            database_name,
            postgres: options.postgres.clone(),
            nats: options.nats.clone(),
            processes: Vec::new(),
            address: None,
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

    fn superuser_url(&self, database: &str) -> String {
        format!("postgres://postgres@{}/{database}", self.postgres)
    }

    /// `serve log` (it takes the lease: sequences, signs, relays), then `serve
    /// department-integration`, each as its own role with only the log's keys its role holds.
    async fn start_processes(&mut self, binary: &Path) -> anyhow::Result<()> {
        for (service, keys) in [
            ("log", LogKeys::LOG_PROCESS),
            (SERVICE, sunshine_department_integration::KEYS),
        ] {
            let mut config = self.config.clone();
            config.database.url = format!(
                "postgres://{}@{}/{}",
                sunshine_eventlog::roles::service_role(service),
                self.postgres,
                self.database_name
            );
            config.log = log_config_for(&self.config.log, keys).context("the log's keys")?;
            if service != SERVICE {
                config.integration = sunshine_platform::config::IntegrationConfig::default();
            }
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
            if service == SERVICE {
                self.address = Some(address);
            }
        }
        Ok(())
    }

    fn pid_of(&self, name: &str) -> anyhow::Result<u32> {
        self.processes
            .iter()
            .find(|process| process.name == name)
            .and_then(ServiceProcess::pid)
            .with_context(|| format!("no {name} process"))
    }

    async fn measure(
        &mut self,
        options: &IntegrationOptions,
        report: &mut IntegrationReport,
    ) -> anyhow::Result<()> {
        let binary = PathBuf::from(&report.settings.sunshine_binary);
        eprintln!(
            "generating {} records in batches of {}",
            options.records, options.batch
        );
        let started = Instant::now();
        let (pushes, duplicates_expected) = workload(options.records, options.batch);
        let request_bytes: usize = pushes
            .iter()
            .map(|push| prost::Message::encoded_len(&push.request))
            .sum();
        report.setup.generate_s = round3(started.elapsed().as_secs_f64());
        report.setup.request_bytes_mean = (request_bytes / pushes.len().max(1)) as u64;
        report.setup.departments = TEMPLATES
            .iter()
            .map(|template| template.department.to_owned())
            .collect();

        eprintln!("baseline: the log's batched append");
        report.baseline = self.baseline(options).await?;
        report.baseline_append_events_per_s = report.baseline.events_per_s;

        self.start_processes(&binary).await?;
        let pid = self.pid_of(SERVICE)?;
        let log_pid = self.pid_of("log")?;
        report.setup.service_idle_rss_mb = read_status_kb(pid, "VmRSS:").map_or(0.0, kb_to_mb);
        let timeout = Duration::from_secs_f64(options.request_timeout_s);
        let lifetime = timeout * 4 + Duration::from_secs(3600);
        let tokens = TEMPLATES
            .iter()
            .map(|template| {
                self.signer.department_token(
                    &self.config,
                    &[SERVICE],
                    template.department,
                    lifetime,
                )
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let address = self.address.context("department-integration's address")?;
        let client = integration_client(address, timeout).await?;
        let first = pushes.first().cloned();

        eprintln!(
            "pushing {} records in {} batches",
            options.records,
            pushes.len()
        );
        let rss = PeakRss::start(pid, Duration::from_millis(options.rss_sample_ms.max(1)));
        let cpu_before = crate::cpu::process_cpu_seconds(pid).unwrap_or(0.0);
        let log_cpu_before = crate::cpu::process_cpu_seconds(log_pid).unwrap_or(0.0);
        let started = Instant::now();
        let pushed = push_all(&client, &tokens, pushes, options.concurrency).await;
        let wall_s = started.elapsed().as_secs_f64();
        let peak = rss.finish().await;
        let mut push = PushFigures {
            wall_s: round3(wall_s),
            batches_ok: pushed.latencies_ms.len(),
            stored: pushed.stored,
            unchanged: pushed.unchanged,
            refused: pushed.refused,
            rejected: pushed.rejected,
            duplicates_expected,
            service_cpu_s: round3(crate::cpu::process_cpu_seconds(pid).unwrap_or(0.0) - cpu_before),
            log_process_cpu_s: round3(
                crate::cpu::process_cpu_seconds(log_pid).unwrap_or(0.0) - log_cpu_before,
            ),
            service_peak_rss_mb: peak.peak_mb,
            service_sampled_peak_rss_mb: peak.sampled_peak_mb,
            ..PushFigures::default()
        };
        let mut latencies = pushed.latencies_ms;
        push.batch_latency = Percentiles::of(&mut latencies);
        let mut database =
            sqlx::PgConnection::connect(&self.superuser_url(&self.database_name)).await?;
        if pushed.error.is_none() {
            push.records_per_s = round3(push.stored as f64 / wall_s);
            report.push_records_per_s = Some(push.records_per_s);
            report.service_peak_rss_mb = Some(push.service_peak_rss_mb);
            let ratio = ratio(push.records_per_s, report.baseline.events_per_s);
            report.ratio = ratio;
            report.meets_goal = ratio.map(|ratio| ratio >= GOAL_RATIO);
        } else {
            report.failed("push", pushed.error.clone());
        }
        stored_figures(&mut database, &mut push).await?;
        let relay_timeout = Duration::from_secs_f64(options.relay_timeout_s);
        let (relayed, log_size) = wait_for_relay(&mut database, relay_timeout).await?;
        push.relayed_after_s = relayed.map(|elapsed| round3(elapsed.as_secs_f64()));
        push.log_size = log_size;
        let all_stored = push.stored == options.records as u64
            && push.stored_rows == push.stored
            && push.rejected == 0
            && push.refused == 0;
        let duplicates_right = push.duplicates_found == push.duplicates_expected;
        let relayed = push.relayed_after_s.is_some();
        report.push = Some(push);
        if !all_stored {
            report.failed(
                "push",
                Some("not every record was stored once (see push's counts)".into()),
            );
        } else if !duplicates_right {
            report.failed(
                "duplicates",
                Some("the duplicates found are not the workload's".into()),
            );
        } else if !relayed {
            report.failed(
                "relay",
                Some(format!(
                    "the relay had not published the log {:.0} s after the push",
                    relay_timeout.as_secs_f64()
                )),
            );
        }
        if report.failed_step.is_some() {
            return Ok(());
        }

        eprintln!("the repeat");
        let Some(mut first) = first else {
            return Ok(());
        };
        first.request.command_id = uuid::Uuid::now_v7().to_string();
        let request = with_token(first.request, &tokens[first.department]);
        let started = Instant::now();
        let answer = client
            .clone()
            .push_assistance_records(request)
            .await
            .map(tonic::Response::into_inner);
        let mut repeat = RepeatFigures {
            wall_s: round3(started.elapsed().as_secs_f64()),
            ok: answer.is_ok(),
            error: answer.as_ref().err().map(status_text),
            ..RepeatFigures::default()
        };
        if let Ok(answer) = &answer {
            repeat.stored = answer.stored;
            repeat.unchanged = answer.unchanged;
        }
        repeat.stored_rows_after =
            count(&mut database, "SELECT count(*) FROM integration_records").await?;
        let right =
            repeat.ok && repeat.stored == 0 && repeat.stored_rows_after == options.records as u64;
        let error = repeat.error.clone();
        report.repeat = Some(repeat);
        if !right {
            report.failed(
                "repeat",
                error.or_else(|| Some("the repeated batch stored records again".into())),
            );
        }
        Ok(())
    }

    /// The log's batched append on a native connection to the baseline's own database.
    async fn baseline(&self, options: &IntegrationOptions) -> anyhow::Result<Baseline> {
        let url = self.superuser_url(&format!("{}_baseline", self.database_name));
        let database = sunshine_platform::backends::Database::connect(
            &sunshine_platform::config::DatabaseConfig {
                url,
                max_connections: u32::try_from(options.concurrency + 1).unwrap_or(u32::MAX),
                ..sunshine_platform::config::DatabaseConfig::default()
            },
        )
        .await?;
        let store = sunshine_eventlog::EventStore::from_database(&database);
        store.migrate().await?;
        let load = AppendLoad {
            writers: options.concurrency,
            events_per_append: options.batch,
            payload_bytes: BASELINE_PAYLOAD_BYTES,
            duration: Duration::from_secs_f64(options.baseline_s),
        };
        let rate = throughput::append_rate(&store, load, "integration").await?;
        store.pool().close().await;
        Ok(Baseline {
            what: "sunshine_eventlog::throughput::append_rate: EventStore::append of batches of the push's size, \
                   on a native PostgreSQL connection, in a database of its own on the same server"
                .into(),
            writers: load.writers,
            events_per_append: load.events_per_append,
            payload_bytes: load.payload_bytes,
            seconds: round3(rate.elapsed.as_secs_f64()),
            events: rate.events,
            appends_per_s: round3(rate.appends_per_s),
            events_per_s: round3(rate.events_per_s),
        })
    }

    /// Stops the processes, drops the databases and the stream, removes the files (kept when
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
            for name in [
                self.database_name.clone(),
                format!("{}_baseline", self.database_name),
            ] {
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                )))
                .execute(&mut admin)
                .await?;
            }
            admin.close().await?;
            anyhow::Ok(())
        }
        .await;
        if let Err(error) = dropped {
            problems.push(format!("dropping the databases: {error:#}"));
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
                "stopping the integration benchmark: {} (logs kept in {})",
                problems.join("; "),
                self.directory.display()
            )
        }
    }
}

/// What the pushes answered.
#[derive(Debug, Default)]
struct Pushed {
    latencies_ms: Vec<f64>,
    stored: u64,
    unchanged: u64,
    refused: u64,
    rejected: u64,
    /// The first failed call.
    error: Option<String>,
}

/// Sends every push, `concurrency` at once (push `i` on lane `i % concurrency`, each lane in
/// order); a lane stops at its first failed call.
async fn push_all(
    client: &DepartmentIntegrationServiceClient<Channel>,
    tokens: &[MetadataValue<Ascii>],
    pushes: Vec<Push>,
    concurrency: usize,
) -> Pushed {
    let mut lanes: Vec<Vec<tonic::Request<pb::PushAssistanceRecordsRequest>>> =
        (0..concurrency).map(|_| Vec::new()).collect();
    for (number, push) in pushes.into_iter().enumerate() {
        lanes[number % concurrency].push(with_token(push.request, &tokens[push.department]));
    }
    let mut tasks = tokio::task::JoinSet::new();
    for lane in lanes {
        let mut client = client.clone();
        tasks.spawn(async move {
            let mut pushed = Pushed::default();
            for request in lane {
                let started = Instant::now();
                match client.push_assistance_records(request).await {
                    Ok(answer) => {
                        pushed
                            .latencies_ms
                            .push(started.elapsed().as_secs_f64() * 1000.0);
                        let answer = answer.into_inner();
                        pushed.stored += u64::from(answer.stored);
                        pushed.unchanged += u64::from(answer.unchanged);
                        pushed.refused += u64::from(answer.refused);
                        pushed.rejected += u64::from(answer.rejected);
                    }
                    Err(status) => {
                        pushed.error = Some(status_text(&status));
                        break;
                    }
                }
            }
            pushed
        });
    }
    let mut all = Pushed::default();
    while let Some(joined) = tasks.join_next().await {
        let lane = joined.unwrap_or_else(|error| Pushed {
            error: Some(format!("a push task failed: {error}")),
            ..Pushed::default()
        });
        all.latencies_ms.extend(lane.latencies_ms);
        all.stored += lane.stored;
        all.unchanged += lane.unchanged;
        all.refused += lane.refused;
        all.rejected += lane.rejected;
        if all.error.is_none() {
            all.error = lane.error;
        }
    }
    all
}

fn status_text(status: &tonic::Status) -> String {
    let message: String = status.message().chars().take(500).collect();
    format!("{:?}: {message}", status.code())
}

async fn count(database: &mut sqlx::PgConnection, sql: &'static str) -> anyhow::Result<u64> {
    let count: i64 = sqlx::query_scalar(sql).fetch_one(&mut *database).await?;
    Ok(u64::try_from(count).unwrap_or(0))
}

/// The rows, the batches' events and the duplicates stored.
async fn stored_figures(
    database: &mut sqlx::PgConnection,
    push: &mut PushFigures,
) -> anyhow::Result<()> {
    push.stored_rows = count(database, "SELECT count(*) FROM integration_records").await?;
    push.duplicates_found = count(database, "SELECT count(*) FROM integration_duplicates").await?;
    let row = sqlx::query(
        "SELECT count(*), COALESCE(sum(octet_length(payload)), 0)::bigint FROM events \
         WHERE stream_id LIKE 'department-integration-batch-%'",
    )
    .fetch_one(&mut *database)
    .await?;
    push.batch_events = u64::try_from(row.try_get::<i64, _>(0)?).unwrap_or(0);
    push.batch_event_payload_bytes = u64::try_from(row.try_get::<i64, _>(1)?).unwrap_or(0);
    Ok(())
}

/// Waits until every event is sequenced and the relay's cursor has passed the whole log, or
/// `timeout`: how long it took (`None`: not within it), and the log's size.
async fn wait_for_relay(
    database: &mut sqlx::PgConnection,
    timeout: Duration,
) -> anyhow::Result<(Option<Duration>, u64)> {
    let started = Instant::now();
    loop {
        let row = sqlx::query(
            "SELECT (SELECT count(*) FROM events), (SELECT count(*) FROM log_entries), \
             COALESCE((SELECT next_position FROM log_cursors WHERE name = $1), -1)",
        )
        .bind(sunshine_eventlog::relay::RELAY_CURSOR)
        .fetch_one(&mut *database)
        .await?;
        let events: i64 = row.try_get(0)?;
        let log_size: i64 = row.try_get(1)?;
        let relay_next: i64 = row.try_get(2)?;
        let size = u64::try_from(log_size).unwrap_or(0);
        if log_size >= events && relay_next >= log_size {
            return Ok((Some(started.elapsed()), size));
        }
        if started.elapsed() > timeout {
            return Ok((None, size));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn integration_client(
    address: std::net::SocketAddr,
    timeout: Duration,
) -> anyhow::Result<DepartmentIntegrationServiceClient<Channel>> {
    let channel = Endpoint::from_shared(format!("http://{address}"))?
        .tcp_nodelay(true)
        .timeout(timeout)
        .connect_timeout(Duration::from_secs(5))
        .connect()
        .await
        .with_context(|| format!("connecting to {address}"))?;
    Ok(DepartmentIntegrationServiceClient::new(channel))
}

fn seconds_to_ms(seconds: f64) -> u64 {
    Duration::from_secs_f64(seconds.max(0.001))
        .as_millis()
        .try_into()
        .unwrap_or(u64::MAX)
}

fn ratio(figure: f64, baseline: f64) -> Option<f64> {
    (baseline > 0.0).then(|| round3(figure / baseline))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_id_number_is_valid_and_every_person_distinct() {
        let mut seen = std::collections::BTreeSet::new();
        for person in (0..200_000).step_by(7) {
            let id = national_id(person);
            assert!(
                sunshine_domain::NationalId::parse(&id).is_ok(),
                "{person}: {id}"
            );
            assert!(seen.insert(id), "{person} repeats an id number");
        }
    }

    #[test]
    fn the_workload_takes_turns_and_holds_its_duplicates() {
        let (pushes, duplicates) = workload(2_000, 200);
        assert_eq!(pushes.len(), 10);
        let departments: Vec<usize> = pushes.iter().map(|push| push.department).collect();
        assert_eq!(departments, [0, 1, 2, 3, 4, 0, 1, 2, 3, 4]);
        assert_eq!(duplicates, 4);
        let charity = &pushes[4].request.records;
        let education = &pushes[0].request.records;
        assert_eq!(charity[0].national_id, education[0].national_id);
        assert_eq!(charity[0].program_code, education[0].program_code);
        assert_ne!(charity[1].national_id, education[1].national_id);
        let ids: std::collections::BTreeSet<&str> = pushes
            .iter()
            .flat_map(|push| push.request.records.iter())
            .map(|record| record.record_id.as_str())
            .collect();
        assert_eq!(ids.len(), 2_000);
        let (pushes, _) = workload(1_050, 1_000);
        assert_eq!(pushes[1].request.records.len(), 50);
    }
}
