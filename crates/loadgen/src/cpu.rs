//! CPU time from `/proc` (Linux): the generator's own, each service process's and the whole
//! machine's, so a report says whether the generator or the system under test used the cores.

use std::time::Instant;

use serde::Serialize;

/// Clock ticks per second of `/proc/<pid>/stat` (`USER_HZ`, 100 on every Linux we run on).
const TICKS_PER_SECOND: f64 = 100.0;

/// User + system CPU seconds of process `pid`, or `None` when it is gone.
pub fn process_cpu_seconds(pid: u32) -> Option<f64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: fields start after the last ')'.
    let after_name = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // Field 3 (state) is fields[0]; utime is field 14, stime field 15.
    let user_ticks: f64 = fields.get(11)?.parse().ok()?;
    let system_ticks: f64 = fields.get(12)?.parse().ok()?;
    Some((user_ticks + system_ticks) / TICKS_PER_SECOND)
}

/// (busy, total) ticks of every core since boot, from `/proc/stat`.
fn machine_ticks() -> Option<(u64, u64)> {
    let text = std::fs::read_to_string("/proc/stat").ok()?;
    let line = text.lines().next()?;
    let values: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|value| value.parse().ok())
        .collect();
    let total: u64 = values.iter().sum();
    // idle and iowait are the 4th and 5th values.
    let idle = values.get(3).copied().unwrap_or(0) + values.get(4).copied().unwrap_or(0);
    Some((total.saturating_sub(idle), total))
}

/// The 1, 5 and 15 minute load averages.
pub fn load_average() -> Vec<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .filter_map(|value| value.parse().ok())
        .collect()
}

/// CPU used by one process over a measurement, in cores (1.0 = one core busy all along).
#[derive(Debug, Clone, Serialize)]
pub struct ProcessCpu {
    pub process: String,
    pub cores: f64,
}

/// CPU used over a measurement.
#[derive(Debug, Clone, Serialize)]
pub struct CpuUse {
    /// The load generator itself.
    pub loadgen_cores: f64,
    /// Each process of the system under test.
    pub processes: Vec<ProcessCpu>,
    /// Every process on the machine (PostgreSQL, NATS and other users' work included), in cores.
    pub machine_busy_cores: f64,
    pub machine_cores: usize,
}

/// Started before a measurement, read after it.
#[derive(Debug)]
pub struct CpuMeter {
    started: Instant,
    loadgen: f64,
    processes: Vec<(String, u32, f64)>,
    machine: Option<(u64, u64)>,
}

impl CpuMeter {
    /// Starts measuring the generator and `processes` (name, pid).
    pub fn start(processes: &[(String, u32)]) -> CpuMeter {
        CpuMeter {
            started: Instant::now(),
            loadgen: process_cpu_seconds(std::process::id()).unwrap_or(0.0),
            processes: processes
                .iter()
                .map(|(name, pid)| (name.clone(), *pid, process_cpu_seconds(*pid).unwrap_or(0.0)))
                .collect(),
            machine: machine_ticks(),
        }
    }

    pub fn finish(&self) -> CpuUse {
        let wall = self.started.elapsed().as_secs_f64().max(1e-9);
        let cores_of = |start: f64, pid: u32| {
            process_cpu_seconds(pid).map_or(0.0, |now| (now - start).max(0.0) / wall)
        };
        let machine_cores = std::thread::available_parallelism().map_or(1, usize::from);
        let machine_busy_cores = match (self.machine, machine_ticks()) {
            (Some((busy_before, total_before)), Some((busy_after, total_after)))
                if total_after > total_before =>
            {
                (busy_after - busy_before) as f64 / (total_after - total_before) as f64
                    * machine_cores as f64
            }
            _ => 0.0,
        };
        CpuUse {
            loadgen_cores: cores_of(self.loadgen, std::process::id()),
            processes: self
                .processes
                .iter()
                .map(|(name, pid, start)| ProcessCpu {
                    process: name.clone(),
                    cores: cores_of(*start, *pid),
                })
                .collect(),
            machine_busy_cores,
            machine_cores,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_has_used_some_cpu() {
        let mut spin = 0u64;
        for value in 0..2_000_000u64 {
            spin = spin.wrapping_add(value * value);
        }
        assert!(spin > 0);
        assert!(process_cpu_seconds(std::process::id()).is_some());
        assert_eq!(load_average().len(), 3);
    }
}
