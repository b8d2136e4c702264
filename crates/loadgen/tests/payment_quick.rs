//! The payment benchmark must not rot: `sunshine-payment-bench --quick` (2,000 entitlements)
//! runs against the debug `sunshine` binary on PostgreSQL and NATS, and its JSON shows a run
//! that paid every entitlement once, a re-run that added no order, an approval and a bank
//! file of every order. Nothing here is timed: no threshold on any figure.

use std::process::Command;

mod common;

use common::{number, sunshine_binary};

#[test]
fn a_quick_payment_run_pays_each_entitlement_once_and_exports_them() -> anyhow::Result<()> {
    let sunshine = sunshine_binary()?;
    let output = std::env::temp_dir().join(format!(
        "sunshine-payment-bench-quick-{}.json",
        std::process::id()
    ));
    let status = Command::new(env!("CARGO_BIN_EXE_sunshine-payment-bench"))
        .arg("--quick")
        .arg("--sunshine")
        .arg(&sunshine)
        .arg("--output")
        .arg(&output)
        .status()?;
    anyhow::ensure!(
        status.success(),
        "sunshine-payment-bench --quick failed: {status}"
    );
    let report: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&output)?)?;
    std::fs::remove_file(&output)?;

    assert_eq!(report["benchmark"], "payment");
    assert_eq!(report["quick"], true);
    assert!(report["failed_step"].is_null(), "{}", report["failure"]);
    assert_eq!(number(&report, "entitlements")?, 2000.0);
    assert_eq!(number(&report, "create_run.orders")?, 2000.0);
    assert_eq!(number(&report, "create_run.guard_rows")?, 2000.0);
    assert_eq!(number(&report, "create_run.projected_orders")?, 2000.0);
    assert_eq!(report["create_run"]["relayed"], true);
    assert_eq!(number(&report, "payment_rerun_new_orders")?, 0.0);
    assert_eq!(number(&report, "rerun.guard_rows_after")?, 2000.0);
    assert_ne!(report["rerun"]["code"], "OK", "the re-run made a run");
    assert_eq!(report["approve"]["ok"], true);
    assert_eq!(number(&report, "export.count")?, 2000.0);
    assert!(number(&report, "export.file_bytes")? > 2000.0);
    // Streamed: the parts put back together are the file whose digest the export recorded.
    assert_eq!(report["export"]["sha256_matches"], true);
    assert_eq!(report["export"]["length_matches"], true);
    assert!(number(&report, "export.parts")? >= 1.0);
    assert_eq!(
        number(&report, "payment_export_bytes")?,
        number(&report, "export.file_bytes")?
    );
    assert!(number(&report, "payment_run_s")? > 0.0);
    assert!(number(&report, "payment_export_s")? > 0.0);
    assert!(number(&report, "payment_run_peak_rss_mb")? > 0.0);
    assert!(
        report["payment_run_1m_s"].is_null(),
        "only a run of 1,000,000"
    );
    assert!(number(&report, "baseline.read_entitlements_s")? > 0.0);
    assert!(number(&report, "baseline.copy_guard_rows_s")? > 0.0);
    assert!(number(&report, "baseline.copy_out_bytes")? > 0.0);
    assert!(number(&report, "ratios.run_to_floor")? > 0.0);
    assert!(number(&report, "ratios.export_to_copy_out")? > 0.0);
    assert!(number(&report, "setup.nats_max_payload_bytes")? > 0.0);
    let sizes = report["create_run"]["event_payload_bytes"]
        .as_array()
        .map_or(0, Vec::len);
    assert!(sizes >= 1, "no stored PaymentRunCreated");
    Ok(())
}
