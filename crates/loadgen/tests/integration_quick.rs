//! The department-integration benchmark must not rot: `sunshine-integration-bench --quick`
//! (2,000 records in batches of 200) runs against the debug `sunshine` binary on PostgreSQL
//! and NATS, and its JSON shows every record stored once, the duplicates the workload holds
//! found, the log relayed, a repeated batch storing nothing, and a baseline beside the push.
//! Nothing here is timed: no threshold on any figure.

use std::process::Command;

mod common;

use common::{number, sunshine_binary};

#[test]
fn a_quick_push_stores_every_record_once_beside_the_logs_batched_append() -> anyhow::Result<()> {
    let sunshine = sunshine_binary()?;
    let output = std::env::temp_dir().join(format!(
        "sunshine-integration-bench-quick-{}.json",
        std::process::id()
    ));
    let status = Command::new(env!("CARGO_BIN_EXE_sunshine-integration-bench"))
        .arg("--quick")
        .arg("--sunshine")
        .arg(&sunshine)
        .arg("--output")
        .arg(&output)
        .status()?;
    anyhow::ensure!(
        status.success(),
        "sunshine-integration-bench --quick failed: {status}"
    );
    let report: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&output)?)?;
    std::fs::remove_file(&output)?;

    assert_eq!(report["benchmark"], "integration");
    assert_eq!(report["quick"], true);
    assert!(report["failed_step"].is_null(), "{}", report["failure"]);
    assert_eq!(number(&report, "records")?, 2000.0);
    assert_eq!(number(&report, "batch")?, 200.0);
    assert_eq!(number(&report, "batches")?, 10.0);
    assert_eq!(number(&report, "push.batches_ok")?, 10.0);
    assert_eq!(number(&report, "push.stored")?, 2000.0);
    assert_eq!(number(&report, "push.stored_rows")?, 2000.0);
    assert_eq!(number(&report, "push.rejected")?, 0.0);
    assert_eq!(number(&report, "push.refused")?, 0.0);
    assert_eq!(number(&report, "push.batch_events")?, 10.0);
    assert!(number(&report, "push.batch_event_payload_bytes")? > 2000.0 * 100.0);
    assert_eq!(number(&report, "push.duplicates_expected")?, 4.0);
    assert_eq!(number(&report, "push.duplicates_found")?, 4.0);
    assert!(number(&report, "push.relayed_after_s")? >= 0.0);
    assert!(number(&report, "push.log_size")? >= 14.0);
    assert_eq!(number(&report, "push.batch_latency.count")?, 10.0);
    assert_eq!(report["repeat"]["ok"], true);
    assert_eq!(number(&report, "repeat.stored")?, 0.0);
    assert_eq!(number(&report, "repeat.unchanged")?, 200.0);
    assert_eq!(number(&report, "repeat.stored_rows_after")?, 2000.0);
    assert!(number(&report, "push_records_per_s")? > 0.0);
    assert!(number(&report, "service_peak_rss_mb")? > 0.0);
    assert!(number(&report, "baseline.events")? >= 200.0);
    assert_eq!(number(&report, "baseline.events_per_append")?, 200.0);
    assert!(number(&report, "baseline_append_events_per_s")? > 0.0);
    assert!(number(&report, "ratio")? > 0.0);
    assert!(report["meets_goal"].is_boolean());
    Ok(())
}
