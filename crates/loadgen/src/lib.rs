//! The end-to-end benchmark: a load generator in its own process that starts the system under
//! test from the `sunshine` binary, offers applications at a fixed rate and times each from
//! `SubmitApplication` until review's `GetCase` shows the case, then searches for the highest
//! rate that keeps p99 under a limit; every figure beside a baseline measured in the same run.
//! `docs/benchmarks.md` describes the method and the JSON.
//!
//! # Layout
//! - [`system`]: the system under test as child processes (cluster: a fresh PostgreSQL
//!   database, `sunshine migrate`, `serve intake` + `serve review`; embedded: `serve all` on a
//!   fresh SQLite file), and its removal.
//! - [`workload`]: tokens, households (registered untimed), applications, gRPC clients.
//! - [`load`]: one open-loop step at a fixed rate and its statistics.
//! - [`baseline`]: PostgreSQL, NATS and SQLite on native connections.
//! - [`bustrace`]: (cluster) when each case's event reached the bus.
//! - [`cpu`]: CPU use of the generator, the services and the machine.
//! - [`dbstats`]: (cluster) what PostgreSQL did per application.
//! - [`report`]: the JSON written to `target/bench/e2e.json`.
//! - [`payment`]: the payment-run benchmark (`sunshine-payment-bench`, `make bench-payment`):
//!   CreateRun over generated entitlements, the re-run, approval and the bank file export.
//! - [`integration`]: the department-integration benchmark (`sunshine-integration-bench`,
//!   `make bench-integration`): PushAssistanceRecords of many records in batches, beside the
//!   event log's batched append.
//! - [`memory`]: a service process's resident memory and its peak over a phase.

pub mod baseline;
pub mod bustrace;
pub mod cpu;
pub mod dbstats;
pub mod integration;
pub mod load;
pub mod memory;
pub mod payment;
pub mod report;
pub mod system;
pub mod workload;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context as _;

use crate::load::{StepPlan, StepReport, round3};
use crate::report::{ModeReport, Report, SearchReport, SearchStep};
use crate::system::{Environment, Mode, SystemUnderTest};
use crate::workload::{Clients, HouseholdNumbers, Signer};

/// `sunshine-loadgen`'s options.
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "sunshine-loadgen",
    about = "End-to-end benchmark: SubmitApplication (intake) until GetCase (review) shows the case"
)]
pub struct Options {
    /// Which deployments to measure (repeat for several); default both.
    #[arg(long = "mode", value_enum)]
    pub modes: Vec<Mode>,
    /// The CI smoke run: 3 s at 50/s, no max-rate search, short baselines, 5 s case timeout.
    #[arg(long)]
    pub quick: bool,
    /// Offered rate of the fixed-rate run, applications per second.
    #[arg(long, default_value_t = 200.0)]
    pub rate: f64,
    /// Length of the fixed-rate run, seconds.
    #[arg(long, default_value_t = 30.0)]
    pub duration_s: f64,
    /// Offered rates of the max-rate search, tried in order until one fails.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "25,50,100,200,400,800,1200,1600,2000,2500,3000"
    )]
    pub search_rates: Vec<f64>,
    /// Length of each search step, seconds.
    #[arg(long, default_value_t = 10.0)]
    pub step_duration_s: f64,
    /// Skip the max-rate search.
    #[arg(long)]
    pub no_search: bool,
    /// A search step passes with p99 under this...
    #[arg(long, default_value_t = 50.0)]
    pub p99_limit_ms: f64,
    /// ...and at least this fraction of the offered rate achieved.
    #[arg(long, default_value_t = 0.95)]
    pub min_achieved_fraction: f64,
    /// Bisections between the last passing and the first failing search rate.
    #[arg(long, default_value_t = 2)]
    pub refine_steps: u32,
    /// First pause between GetCase polls of one case, milliseconds.
    #[arg(long, default_value_t = 1.0)]
    pub poll_interval_ms: f64,
    /// The pause grows to this fraction of the time waited (0: a fixed interval)...
    #[arg(long, default_value_t = 0.1)]
    pub poll_backoff: f64,
    /// ...up to this many milliseconds.
    #[arg(long, default_value_t = 20.0)]
    pub poll_max_interval_ms: f64,
    /// GetCase calls in flight at once over every case (below review's pool of 10 connections,
    /// which its consumer needs too).
    #[arg(long, default_value_t = 4)]
    pub max_concurrent_polls: usize,
    /// Most submissions not yet seen at once; beyond, the generator falls behind.
    #[arg(long, default_value_t = 2000)]
    pub max_in_flight: usize,
    /// A submission whose case is not seen within this many seconds fails.
    #[arg(long, default_value_t = 10.0)]
    pub case_timeout_s: f64,
    /// HTTP/2 connections to each of intake and review.
    #[arg(long, default_value_t = 8)]
    pub connections: usize,
    /// Registrations in flight during the (untimed) set-up.
    #[arg(long, default_value_t = 32)]
    pub register_concurrency: usize,
    /// Applications sent and seen before measuring (untimed).
    #[arg(long, default_value_t = 50)]
    pub warmup: usize,
    /// Length of each baseline measurement, seconds.
    #[arg(long, default_value_t = 3.0)]
    pub baseline_s: f64,
    /// Connections (PostgreSQL) or requests in flight (NATS) for the baselines' rates.
    #[arg(long, default_value_t = 16)]
    pub baseline_concurrency: usize,
    /// The `sunshine` binary; default `<target dir>/release/sunshine`.
    #[arg(long)]
    pub sunshine: Option<PathBuf>,
    /// Where to write the JSON; default `<target dir>/bench/e2e.json`.
    #[arg(long)]
    pub output: Option<PathBuf>,
    /// PostgreSQL `host:port` (trust authentication, superuser `postgres`).
    #[arg(long, env = "SUNSHINE_TEST_POSTGRES", default_value = "127.0.0.1:5432")]
    pub postgres: String,
    /// NATS `host:port` with JetStream.
    #[arg(long, env = "SUNSHINE_TEST_NATS", default_value = "127.0.0.1:4222")]
    pub nats: String,
    /// Worker threads of the generator's runtime (default: one per core).
    #[arg(long)]
    pub threads: Option<usize>,
}

impl Options {
    /// The options with `--quick` applied.
    fn effective(&self) -> Options {
        let mut options = self.clone();
        if options.modes.is_empty() {
            options.modes = vec![Mode::Cluster, Mode::Embedded];
        }
        if options.quick {
            options.rate = 50.0;
            options.duration_s = 3.0;
            options.no_search = true;
            options.baseline_s = 0.5;
            options.baseline_concurrency = 4;
            options.warmup = 5;
            options.connections = 2;
            options.case_timeout_s = 5.0;
        }
        options
    }
}

/// The repository this binary was built from (its `Cargo.toml` workspace).
fn repository_root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest
        .parent()
        .and_then(std::path::Path::parent)
        .map(std::path::Path::to_path_buf)
        .unwrap_or(manifest)
}

/// `$CARGO_TARGET_DIR`, or the repository's `target/`.
fn target_directory() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repository_root().join("target"))
}

/// Builds the runtime and runs the benchmark.
pub fn main_with(options: Options) -> anyhow::Result<()> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.enable_all();
    if let Some(threads) = options.threads {
        builder.worker_threads(threads.max(1));
    }
    builder.build()?.block_on(run(options.effective()))
}

async fn run(options: Options) -> anyhow::Result<()> {
    let sunshine_binary = options
        .sunshine
        .clone()
        .unwrap_or_else(|| target_directory().join("release").join("sunshine"));
    anyhow::ensure!(
        sunshine_binary.exists(),
        "no sunshine binary at {} (build it: cargo build --release -p sunshine, or pass --sunshine)",
        sunshine_binary.display()
    );
    let output = options
        .output
        .clone()
        .unwrap_or_else(|| target_directory().join("bench").join("e2e.json"));
    let mut report = Report::begin(&repository_root(), &options, &sunshine_binary);
    for mode in options.modes.clone() {
        let environment = Environment {
            sunshine_binary: sunshine_binary.clone(),
            postgres_address: options.postgres.clone(),
            nats_address: options.nats.clone(),
            run_tag: uuid::Uuid::now_v7().simple().to_string(),
        };
        eprintln!("== {} ==", mode.name());
        let signer = Signer::generate()?;
        let system = SystemUnderTest::start(mode, &environment, &signer)
            .await
            .with_context(|| format!("starting the {} system", mode.name()))?;
        let measured = measure(&options, &environment, &signer, &system).await;
        let stopped = system.stop().await;
        let mode_report = measured.with_context(|| format!("measuring {}", mode.name()))?;
        stopped?;
        report.add(mode, mode_report);
    }
    report.finish();
    let json = serde_json::to_string_pretty(&report)?;
    if let Some(parent) = output.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(&output, format!("{json}\n"))?;
    println!("{json}");
    eprintln!("wrote {}", output.display());
    Ok(())
}

/// Everything measured on one running system.
async fn measure(
    options: &Options,
    environment: &Environment,
    signer: &Signer,
    system: &SystemUnderTest,
) -> anyhow::Result<ModeReport> {
    let baseline_duration = Duration::from_secs_f64(options.baseline_s);
    let baselines = match system.mode {
        Mode::Cluster => {
            let url = system
                .superuser_database_url()
                .context("a cluster without a database")?;
            let postgres =
                baseline::postgres(&url, baseline_duration, options.baseline_concurrency).await?;
            let subject = format!("loadgen{}.baseline.echo", environment.run_tag);
            let nats = baseline::nats(
                &environment.nats_address,
                &subject,
                baseline_duration,
                options.baseline_concurrency * 4,
            )
            .await?;
            vec![postgres, nats]
        }
        Mode::Embedded => {
            vec![baseline::sqlite(&system.directory.join("baseline.db"), baseline_duration).await?]
        }
    };
    eprintln!("baselines: {}", serde_json::to_string(&baselines)?);

    let tokens = signer.tokens(&system.config, Duration::from_secs(6 * 3600))?;
    let clients = Clients::connect(
        system.intake_address,
        system.review_address,
        options.connections,
    )
    .await?;
    let publish_times = match system.mode {
        Mode::Cluster => Some(
            bustrace::PublishTimes::watch(
                &environment.nats_address,
                &system.config.log.subject_prefix,
            )
            .await?,
        ),
        Mode::Embedded => None,
    };
    let mut runner = Runner {
        publish_times,
        options,
        clients,
        tokens,
        numbers: HouseholdNumbers::default(),
        processes: system.pids(),
        tag: environment.run_tag.clone(),
        registration: Registration::default(),
        steps_run: 0,
    };
    if options.warmup > 0 {
        let warmup_rate = (options.warmup as f64).min(options.rate);
        runner
            .step(warmup_rate, options.warmup as f64 / warmup_rate)
            .await?;
    }
    // The search first: a failed step leaves a backlog the next step must wait out (review
    // handles events in log order), and the search's steps are short; the fixed-rate step
    // comes last, so its backlog delays nothing.
    let search = if options.no_search {
        None
    } else {
        Some(runner.search().await?)
    };
    let counters_url = match (system.mode, options.quick) {
        (Mode::Cluster, false) => system.superuser_database_url(),
        _ => None,
    };
    let (fixed, database_work) = match (&counters_url, &system.database_name) {
        (Some(url), Some(name)) => {
            let households = runner
                .register_for(options.rate, options.duration_s)
                .await?;
            tokio::time::sleep(dbstats::SETTLE).await;
            let before = dbstats::read(url, name).await?;
            let fixed = runner
                .run_registered(options.rate, options.duration_s, &households)
                .await?;
            tokio::time::sleep(dbstats::SETTLE).await;
            let after = dbstats::read(url, name).await?;
            let work = dbstats::per_application(before, after, fixed.sent);
            (fixed, Some(work))
        }
        _ => (runner.step(options.rate, options.duration_s).await?, None),
    };
    Ok(ModeReport::new(
        system,
        fixed,
        search,
        baselines,
        runner.registration.summary(),
        database_work,
    ))
}

/// Runs the steps of one mode on one running system.
#[derive(Debug)]
struct Runner<'a> {
    publish_times: Option<bustrace::PublishTimes>,
    options: &'a Options,
    clients: Clients,
    tokens: workload::Tokens,
    numbers: HouseholdNumbers,
    processes: Vec<(String, u32)>,
    tag: String,
    registration: Registration,
    steps_run: usize,
}

impl Runner<'_> {
    fn plan(&self, rate_per_s: f64, duration_s: f64) -> StepPlan {
        let options = self.options;
        StepPlan {
            rate_per_s,
            duration: Duration::from_secs_f64(duration_s),
            poll_interval: Duration::from_secs_f64(options.poll_interval_ms / 1000.0),
            poll_backoff: options.poll_backoff,
            poll_max_interval: Duration::from_secs_f64(options.poll_max_interval_ms / 1000.0),
            max_concurrent_polls: options.max_concurrent_polls,
            max_in_flight: options.max_in_flight,
            case_timeout: Duration::from_secs_f64(options.case_timeout_s),
        }
    }

    /// Registers the households a step at `rate_per_s` for `duration_s` needs (untimed).
    async fn register_for(
        &mut self,
        rate_per_s: f64,
        duration_s: f64,
    ) -> anyhow::Result<Vec<workload::Household>> {
        let plan = self.plan(rate_per_s, duration_s);
        let needed = load::scheduled_count(plan.rate_per_s, plan.duration);
        // One more household: its application is the probe that waits out the backlog.
        let mut households = self
            .registration
            .register(
                &self.clients,
                &self.tokens,
                &self.numbers,
                &self.tag,
                needed + 1,
                self.options.register_concurrency,
            )
            .await?;
        let probe = households.pop().context("no household registered")?;
        // Review hears every household event (registrations included) and handles them in log
        // order: until the probe's case shows, the registrations are still being consumed, and
        // a step started now would time that backlog instead of the applications.
        let drain = StepPlan {
            case_timeout: Duration::from_secs(900),
            ..plan
        };
        self.steps_run += 1;
        let started = Instant::now();
        load::wait_for_one(
            &self.clients,
            &self.tokens,
            &probe,
            &format!("loadgen-{}-probe{}", self.tag, self.steps_run),
            drain,
        )
        .await
        .context("waiting for the system to digest the registrations")?;
        self.registration.drain_seconds += started.elapsed().as_secs_f64();
        Ok(households)
    }

    /// Registers the households a step needs (untimed), then runs it.
    async fn step(&mut self, rate_per_s: f64, duration_s: f64) -> anyhow::Result<StepReport> {
        let households = self.register_for(rate_per_s, duration_s).await?;
        self.run_registered(rate_per_s, duration_s, &households)
            .await
    }

    /// Runs a step on households registered for it.
    async fn run_registered(
        &mut self,
        rate_per_s: f64,
        duration_s: f64,
        households: &[workload::Household],
    ) -> anyhow::Result<StepReport> {
        let plan = self.plan(rate_per_s, duration_s);
        self.steps_run += 1;
        let step = load::run_step(
            &self.clients,
            &self.tokens,
            households,
            &format!("loadgen-{}-step{}", self.tag, self.steps_run),
            plan,
            &self.processes,
            self.publish_times.as_ref(),
        )
        .await?;
        eprintln!(
            "{rate_per_s}/s for {duration_s} s: p50 {} ms, p99 {} ms, max {} ms, achieved {}/s, \
             errors {}, polls/submission {}, GetCase {}/s, loadgen {:.2} cores, machine {:.2} cores",
            step.e2e.p50_ms,
            step.e2e.p99_ms,
            step.e2e.max_ms,
            step.achieved_rate_per_s,
            step.errors,
            step.polls_per_submission_mean,
            step.get_case_calls_per_s,
            step.cpu.loadgen_cores,
            step.cpu.machine_busy_cores,
        );
        if let Some(error) = step.error_samples.first() {
            eprintln!("  first error: {error}");
        }
        Ok(step)
    }

    /// One search step after a pause (so the last step's work is done); whether it passed.
    async fn try_rate(&mut self, rate: f64, steps: &mut Vec<SearchStep>) -> anyhow::Result<bool> {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let step = self.step(rate, self.options.step_duration_s).await?;
        let passed = step.passes(
            self.options.p99_limit_ms,
            self.options.min_achieved_fraction,
        );
        steps.push(SearchStep { passed, step });
        Ok(passed)
    }

    /// Rates in the given order until one fails (halving below the first if it fails), then
    /// bisection between the last pass and the first failure.
    async fn search(&mut self) -> anyhow::Result<SearchReport> {
        let options = self.options;
        let mut steps = Vec::new();
        let mut best: Option<f64> = None;
        let mut first_failure: Option<f64> = None;
        for &rate in &options.search_rates {
            if self.try_rate(rate, &mut steps).await? {
                best = Some(rate);
            } else {
                first_failure = Some(rate);
                break;
            }
        }
        if best.is_none() {
            let mut rate = options.search_rates.first().copied().unwrap_or(200.0) / 2.0;
            while rate >= 5.0 {
                if self.try_rate(rate, &mut steps).await? {
                    best = Some(rate);
                    break;
                }
                first_failure = Some(rate);
                rate /= 2.0;
            }
        }
        for _ in 0..options.refine_steps {
            let (Some(low), Some(high)) = (best, first_failure) else {
                break;
            };
            let middle = ((low + high) / 2.0 / 25.0).round() * 25.0;
            if middle <= low || middle >= high || high - low < (0.1 * low).max(25.0) {
                break;
            }
            if self.try_rate(middle, &mut steps).await? {
                best = Some(middle);
            } else {
                first_failure = Some(middle);
            }
        }
        Ok(SearchReport {
            p99_limit_ms: options.p99_limit_ms,
            min_achieved_fraction: options.min_achieved_fraction,
            step_duration_s: options.step_duration_s,
            max_rate_per_s: best.unwrap_or(0.0),
            first_failing_rate_per_s: first_failure,
            steps,
        })
    }
}

/// The untimed registrations of a mode, and how fast they went.
#[derive(Debug, Default)]
struct Registration {
    households: usize,
    seconds: f64,
    /// Time from the last registration of a step until a probe application's case showed.
    drain_seconds: f64,
}

impl Registration {
    async fn register(
        &mut self,
        clients: &Clients,
        tokens: &workload::Tokens,
        numbers: &HouseholdNumbers,
        tag: &str,
        count: usize,
        concurrency: usize,
    ) -> anyhow::Result<Vec<workload::Household>> {
        let started = Instant::now();
        let households =
            workload::register_households(clients, tokens, numbers, tag, count, concurrency)
                .await?;
        self.households += households.len();
        self.seconds += started.elapsed().as_secs_f64();
        Ok(households)
    }

    fn summary(&self) -> report::RegistrationSummary {
        report::RegistrationSummary {
            households: self.households,
            rate_per_s: if self.seconds > 0.0 {
                round3(self.households as f64 / self.seconds)
            } else {
                0.0
            },
            backlog_drain_s: round3(self.drain_seconds),
            registered_and_digested_per_s: if self.seconds + self.drain_seconds > 0.0 {
                round3(self.households as f64 / (self.seconds + self.drain_seconds))
            } else {
                0.0
            },
        }
    }
}
