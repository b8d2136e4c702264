//! The benchmark tool must not rot: `sunshine-loadgen --quick` (3 s at 50/s, no max-rate
//! search) runs both modes against the debug `sunshine` binary and writes well-formed JSON with
//! sane values. Nothing here is timed: no threshold on any figure.

use std::process::Command;

mod common;

use common::{number, sunshine_binary};

#[test]
fn a_quick_run_of_both_modes_writes_sane_json() -> anyhow::Result<()> {
    let sunshine = sunshine_binary()?;
    let output = std::env::temp_dir().join(format!(
        "sunshine-loadgen-quick-{}.json",
        std::process::id()
    ));
    let status = Command::new(env!("CARGO_BIN_EXE_sunshine-loadgen"))
        .arg("--quick")
        .arg("--sunshine")
        .arg(&sunshine)
        .arg("--output")
        .arg(&output)
        .status()?;
    anyhow::ensure!(
        status.success(),
        "sunshine-loadgen --quick failed: {status}"
    );
    let report: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&output)?)?;
    std::fs::remove_file(&output)?;

    assert_eq!(report["benchmark"], "e2e");
    assert_eq!(report["quick"], true);
    let commit = report["git_commit"].as_str().unwrap_or_default();
    assert!(
        commit.len() == 40 && commit.chars().all(|c| c.is_ascii_hexdigit()),
        "{commit:?}"
    );
    assert!(number(&report, "machine.cores")? >= 1.0);
    for mode in ["cluster", "embedded"] {
        let figures = &report[mode];
        assert!(figures.is_object(), "no {mode} figures");
        let p50 = number(figures, "e2e_p50_ms")?;
        let p90 = number(figures, "e2e_p90_ms")?;
        let p99 = number(figures, "e2e_p99_ms")?;
        let max = number(figures, "e2e_max_ms")?;
        assert!(
            0.0 < p50 && p50 <= p90 && p90 <= p99 && p99 <= max,
            "{mode}: {p50} {p90} {p99} {max}"
        );
        assert_eq!(number(figures, "offered_rate_per_s")?, 50.0);
        assert_eq!(number(figures, "duration_s")?, 3.0);
        assert!(number(figures, "achieved_rate_per_s")? > 0.0, "{mode}");
        assert!(
            figures["e2e_max_rate_per_s"].is_null(),
            "{mode}: no search in --quick"
        );
        let fixed = &figures["fixed_rate"];
        // A slow system may leave cases unseen within the timeout (a speed, not a failure of
        // the tool); any other error is one.
        assert!(
            number(fixed, "completed")? >= 1.0,
            "{mode}: {}",
            fixed["error_samples"]
        );
        assert_eq!(
            number(fixed, "completed")? + number(fixed, "errors")?,
            number(fixed, "scheduled")?
        );
        for error in fixed["error_samples"].as_array().into_iter().flatten() {
            let text = error.as_str().unwrap_or_default();
            assert!(text.contains("not seen within"), "{mode}: {text}");
        }
        assert!(number(fixed, "polls_per_submission_mean")? >= 1.0);
        assert!(number(figures, "baseline.commit.latency.p50_ms")? > 0.0);
        assert!(number(figures, "baseline.commit.max_rate_per_s")? > 0.0);
        assert!(number(figures, "baseline.path_floor.p50_ms")? > 0.0);
        assert!(number(figures, "ratios.e2e_p50_to_commit_p50")? > 0.0);
        assert!(number(figures, "ratios.e2e_p99_to_path_floor_p99")? > 0.0);
        assert!(number(figures, "system.registration.households")? >= 150.0);
    }
    assert!(number(&report, "cluster.baseline.bus_round_trip.latency.p50_ms")? > 0.0);
    assert_eq!(report["cluster"]["system"]["lease_holder"], "log");
    Ok(())
}
