//! What the benchmarks' quick tests share: the debug `sunshine` binary they run against, and a
//! number read from a report's JSON by its dotted path.

use std::path::PathBuf;
use std::process::Command;

/// The debug `sunshine` binary beside the test's own (`<target>/debug/`; `CARGO_BIN_EXE_*`
/// names only this package's binaries). A workspace test run (`make test`) builds it with the
/// same features as everything else; built here only when missing, since `cargo build -p
/// sunshine` alone may unify features differently and rebuild half the tree.
pub fn sunshine_binary() -> anyhow::Result<PathBuf> {
    let test_executable = std::env::current_exe()?;
    // <target>/debug/deps/<test>-<hash>
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

/// The number at `path` (keys joined by `.`) of a report.
pub fn number(value: &serde_json::Value, path: &str) -> anyhow::Result<f64> {
    let mut current = value;
    for key in path.split('.') {
        current = &current[key];
    }
    current
        .as_f64()
        .ok_or_else(|| anyhow::anyhow!("{path} is not a number: {current}"))
}
