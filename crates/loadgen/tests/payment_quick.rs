//! The payment benchmark must not rot: `sunshine-payment-bench --quick` (2,000 entitlements)
//! runs against the debug `sunshine` binary on PostgreSQL and NATS, and its JSON shows a run
//! that paid every entitlement once, a re-run that added no order, an approval and a bank
//! file of every order. Nothing here is timed: no threshold on any figure.

use std::path::PathBuf;
use std::process::Command;

/// The debug `sunshine` binary beside this test's own (as `quick.rs` finds it).
fn sunshine_binary() -> anyhow::Result<PathBuf> {
    let test_executable = std::env::current_exe()?;
    let profile_directory = test_executable
        .parent()
        .and_then(std::path::Path::parent)
        .ok_or_else(|| anyhow::anyhow!("no target directory above {test_executable:?}"))?;
    let binary = profile_directory.join("sunshine");
    let target_directory = profile_directory
        .parent()
        .ok_or_else(|| anyhow::anyhow!("no target directory above {profile_directory:?}"))?;
    if binary.exists() {
        return Ok(binary);
    }
    let built = Command::new(env!("CARGO"))
        .args(["build", "--quiet", "-p", "sunshine", "--bin", "sunshine"])
        .env("CARGO_TARGET_DIR", target_directory)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()?;
    anyhow::ensure!(built.success(), "cargo build -p sunshine failed");
    anyhow::ensure!(binary.exists(), "no sunshine binary at {binary:?}");
    Ok(binary)
}

fn number(value: &serde_json::Value, path: &str) -> anyhow::Result<f64> {
    let mut current = value;
    for key in path.split('.') {
        current = &current[key];
    }
    current
        .as_f64()
        .ok_or_else(|| anyhow::anyhow!("{path} is not a number: {current}"))
}

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
