//! The JSON the benchmark writes (`target/bench/e2e.json`): per mode the headline figures at
//! the top (`e2e_p50_ms` … `e2e_max_rate_per_s`), then the fixed-rate step in full, the
//! search's steps, the baselines and every headline figure as a ratio to them; and for the
//! run, the machine, its load, the commit and the date. `docs/benchmarks.md` explains each.

use std::path::Path;

use serde::Serialize;

use crate::Options;
use crate::baseline::Baseline;
use crate::load::{StepReport, round3};
use crate::system::{Mode, SystemUnderTest};

#[derive(Debug, Serialize)]
pub struct Report {
    pub benchmark: &'static str,
    pub git_commit: String,
    /// Whether the working tree had uncommitted changes.
    pub git_dirty: bool,
    pub date_utc: String,
    pub machine: Machine,
    pub quick: bool,
    pub settings: Settings,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster: Option<ModeReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub embedded: Option<ModeReport>,
}

#[derive(Debug, Serialize)]
pub struct Machine {
    pub cores: usize,
    pub load_average_before: Vec<f64>,
    pub load_average_after: Vec<f64>,
    pub kernel: String,
}

/// What the run was asked to do.
#[derive(Debug, Serialize)]
pub struct Settings {
    pub sunshine_binary: String,
    pub poll_interval_ms: f64,
    pub poll_backoff: f64,
    pub poll_max_interval_ms: f64,
    pub max_concurrent_polls: usize,
    pub max_in_flight: usize,
    pub connections_per_service: usize,
    pub case_timeout_s: f64,
    pub warmup_submissions: usize,
    pub baseline_s: f64,
    pub generator_threads: usize,
}

/// One deployment's figures.
#[derive(Debug, Serialize)]
pub struct ModeReport {
    pub e2e_p50_ms: f64,
    pub e2e_p90_ms: f64,
    pub e2e_p99_ms: f64,
    pub e2e_max_ms: f64,
    pub offered_rate_per_s: f64,
    pub achieved_rate_per_s: f64,
    pub duration_s: f64,
    /// The highest offered rate whose p99 stayed under the limit with the rate achieved;
    /// `null` when no search ran, 0 when even the lowest rate failed.
    pub e2e_max_rate_per_s: Option<f64>,
    pub fixed_rate: StepReport,
    pub max_rate_search: Option<SearchReport>,
    pub baseline: Baselines,
    pub ratios: Ratios,
    pub system: SystemSummary,
    /// Cluster, full runs: PostgreSQL's counters over the fixed-rate step, per application.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_work: Option<crate::dbstats::DatabaseWork>,
}

#[derive(Debug, Serialize)]
pub struct SearchReport {
    pub p99_limit_ms: f64,
    pub min_achieved_fraction: f64,
    pub step_duration_s: f64,
    pub max_rate_per_s: f64,
    pub first_failing_rate_per_s: Option<f64>,
    pub steps: Vec<SearchStep>,
}

#[derive(Debug, Serialize)]
pub struct SearchStep {
    pub passed: bool,
    #[serde(flatten)]
    pub step: StepReport,
}

/// The baselines, and the floor the path cannot beat built from them.
#[derive(Debug, Serialize)]
pub struct Baselines {
    /// The one commit on a native connection (PostgreSQL or SQLite).
    pub commit: Baseline,
    /// Cluster only: the bus's round trip.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bus_round_trip: Option<Baseline>,
    /// The fewest round trips a submission needs before review can show its case: intake's
    /// commit, (cluster) one bus hop, review's commit.
    pub path_floor: PathFloor,
}

#[derive(Debug, Serialize)]
pub struct PathFloor {
    pub what: String,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

/// Every headline figure over its baseline (latency: how many times slower than the floor;
/// rate: what fraction of the native commit rate).
#[derive(Debug, Serialize)]
pub struct Ratios {
    pub e2e_p50_to_commit_p50: f64,
    pub e2e_p99_to_commit_p99: f64,
    pub e2e_p50_to_path_floor_p50: f64,
    pub e2e_p99_to_path_floor_p99: f64,
    /// `null` without a search.
    pub e2e_max_rate_to_commit_rate: Option<f64>,
    pub achieved_rate_to_commit_rate: f64,
}

#[derive(Debug, Serialize)]
pub struct SystemSummary {
    pub processes: Vec<String>,
    /// Whose log worker sequenced and relayed.
    pub lease_holder: String,
    pub database: &'static str,
    pub bus: &'static str,
    pub registration: RegistrationSummary,
}

#[derive(Debug, Serialize)]
pub struct RegistrationSummary {
    pub households: usize,
    /// RegisterHousehold calls per second during the untimed set-up.
    pub rate_per_s: f64,
    /// Seconds after the registrations until a probe application's case showed (review
    /// consuming the registrations' events, which it hears too).
    pub backlog_drain_s: f64,
    /// Households registered and consumed by review, per second of set-up.
    pub registered_and_digested_per_s: f64,
}

fn ratio(numerator: f64, denominator: f64) -> f64 {
    if denominator > 0.0 {
        round3(numerator / denominator)
    } else {
        0.0
    }
}

impl ModeReport {
    pub fn new(
        system: &SystemUnderTest,
        fixed: StepReport,
        search: Option<SearchReport>,
        mut baselines: Vec<Baseline>,
        registration: RegistrationSummary,
        database_work: Option<crate::dbstats::DatabaseWork>,
    ) -> ModeReport {
        let commit = baselines.remove(0);
        let bus_round_trip = baselines.pop();
        let (floor_what, p50, p99) = match &bus_round_trip {
            Some(bus) => (
                "2 × PostgreSQL commit + 1 × NATS round trip",
                2.0 * commit.latency.p50_ms + bus.latency.p50_ms,
                2.0 * commit.latency.p99_ms + bus.latency.p99_ms,
            ),
            None => (
                "2 × SQLite commit",
                2.0 * commit.latency.p50_ms,
                2.0 * commit.latency.p99_ms,
            ),
        };
        let path_floor = PathFloor {
            what: floor_what.into(),
            p50_ms: round3(p50),
            p99_ms: round3(p99),
        };
        let max_rate = search.as_ref().map(|search| search.max_rate_per_s);
        let ratios = Ratios {
            e2e_p50_to_commit_p50: ratio(fixed.e2e.p50_ms, commit.latency.p50_ms),
            e2e_p99_to_commit_p99: ratio(fixed.e2e.p99_ms, commit.latency.p99_ms),
            e2e_p50_to_path_floor_p50: ratio(fixed.e2e.p50_ms, path_floor.p50_ms),
            e2e_p99_to_path_floor_p99: ratio(fixed.e2e.p99_ms, path_floor.p99_ms),
            e2e_max_rate_to_commit_rate: max_rate.map(|rate| ratio(rate, commit.max_rate_per_s)),
            achieved_rate_to_commit_rate: ratio(fixed.achieved_rate_per_s, commit.max_rate_per_s),
        };
        let (database, bus) = match system.mode {
            Mode::Cluster => ("postgresql", "nats-jetstream"),
            Mode::Embedded => ("sqlite", "in-process"),
        };
        ModeReport {
            e2e_p50_ms: fixed.e2e.p50_ms,
            e2e_p90_ms: fixed.e2e.p90_ms,
            e2e_p99_ms: fixed.e2e.p99_ms,
            e2e_max_ms: fixed.e2e.max_ms,
            offered_rate_per_s: fixed.offered_rate_per_s,
            achieved_rate_per_s: fixed.achieved_rate_per_s,
            duration_s: fixed.duration_s,
            e2e_max_rate_per_s: max_rate,
            fixed_rate: fixed,
            max_rate_search: search,
            baseline: Baselines {
                commit,
                bus_round_trip,
                path_floor,
            },
            ratios,
            system: SystemSummary {
                processes: system.pids().into_iter().map(|(name, _)| name).collect(),
                lease_holder: system.lease_holder.clone(),
                database,
                bus,
                registration,
            },
            database_work,
        }
    }
}

pub(crate) fn command_output(
    program: &str,
    arguments: &[&str],
    directory: &Path,
) -> Option<String> {
    let output = std::process::Command::new(program)
        .args(arguments)
        .current_dir(directory)
        .output()
        .ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

impl Report {
    pub fn begin(repository: &Path, options: &Options, sunshine_binary: &Path) -> Report {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        Report {
            benchmark: "e2e",
            git_commit: command_output("git", &["rev-parse", "HEAD"], repository)
                .unwrap_or_default(),
            git_dirty: command_output("git", &["status", "--porcelain"], repository)
                .is_some_and(|status| !status.is_empty()),
            date_utc: time::OffsetDateTime::now_utc()
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default(),
            machine: Machine {
                cores,
                load_average_before: crate::cpu::load_average(),
                load_average_after: Vec::new(),
                kernel: command_output("uname", &["-r"], repository).unwrap_or_default(),
            },
            quick: options.quick,
            settings: Settings {
                sunshine_binary: sunshine_binary.display().to_string(),
                poll_interval_ms: options.poll_interval_ms,
                poll_backoff: options.poll_backoff,
                poll_max_interval_ms: options.poll_max_interval_ms,
                max_concurrent_polls: options.max_concurrent_polls,
                max_in_flight: options.max_in_flight,
                connections_per_service: options.connections,
                case_timeout_s: options.case_timeout_s,
                warmup_submissions: options.warmup,
                baseline_s: options.baseline_s,
                generator_threads: options.threads.unwrap_or(cores),
            },
            cluster: None,
            embedded: None,
        }
    }

    pub fn add(&mut self, mode: Mode, report: ModeReport) {
        match mode {
            Mode::Cluster => self.cluster = Some(report),
            Mode::Embedded => self.embedded = Some(report),
        }
    }

    pub fn finish(&mut self) {
        self.machine.load_average_after = crate::cpu::load_average();
    }
}
