//! A service process's resident memory, read from `/proc/<pid>/status`: its RSS (`VmRSS`),
//! its peak (`VmHWM`) and the reset of that peak (`/proc/<pid>/clear_refs`), and a sampler
//! that keeps the highest RSS seen over a phase (the peak, where the reset is not allowed).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use crate::load::round3;

/// A line of `/proc/<pid>/status` (`VmRSS:`, `VmHWM:`), in kB.
pub(crate) fn read_status_kb(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix(field))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
}

pub(crate) fn kb_to_mb(kb: u64) -> f64 {
    round3(kb as f64 / 1024.0)
}

/// Resets the process's peak RSS (VmHWM) to its current RSS (`clear_refs` 5).
pub(crate) fn reset_peak_rss(pid: u32) -> bool {
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").is_ok()
}

/// The peak RSS of a process over a phase: VmHWM reset at the start, and VmRSS sampled.
#[derive(Debug)]
pub(crate) struct PeakRss {
    pid: u32,
    reset: bool,
    done: Arc<AtomicBool>,
    peak_kb: Arc<AtomicU64>,
    sampler: tokio::task::JoinHandle<()>,
}

/// What [`PeakRss::finish`] read.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct PeakFigures {
    /// The larger of VmHWM (since the reset, or since the start when it was refused) and
    /// the highest sample.
    pub peak_mb: f64,
    pub sampled_peak_mb: f64,
}

impl PeakRss {
    /// Resets the peak and starts sampling every `sampling`.
    pub(crate) fn start(pid: u32, sampling: Duration) -> PeakRss {
        let reset = reset_peak_rss(pid);
        let done = Arc::new(AtomicBool::new(false));
        let peak_kb = Arc::new(AtomicU64::new(read_status_kb(pid, "VmRSS:").unwrap_or(0)));
        let sampler = tokio::spawn({
            let done = Arc::clone(&done);
            let peak_kb = Arc::clone(&peak_kb);
            async move {
                while !done.load(Ordering::Relaxed) {
                    if let Some(kb) = read_status_kb(pid, "VmRSS:") {
                        peak_kb.fetch_max(kb, Ordering::Relaxed);
                    }
                    tokio::time::sleep(sampling).await;
                }
            }
        });
        PeakRss {
            pid,
            reset,
            done,
            peak_kb,
            sampler,
        }
    }

    pub(crate) async fn finish(self) -> PeakFigures {
        self.done.store(true, Ordering::Relaxed);
        let _ = self.sampler.await;
        let sampled = self.peak_kb.load(Ordering::Relaxed);
        // Without the reset VmHWM is the peak since the start, still an upper bound.
        let high_water = read_status_kb(self.pid, "VmHWM:").unwrap_or(0);
        let peak = if self.reset {
            high_water
        } else {
            high_water.max(sampled)
        };
        PeakFigures {
            peak_mb: kb_to_mb(peak.max(sampled)),
            sampled_peak_mb: kb_to_mb(sampled),
        }
    }
}
