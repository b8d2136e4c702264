//! The operations subcommands, run as the binary: `sunshine migrate` (here on SQLite; the
//! PostgreSQL side is in tests/tests/migrate.rs), `sunshine migrate --print-role-sql`,
//! `sunshine log-key` and `sunshine rebuild` (here on an empty SQLite log; after crashes, on
//! PostgreSQL and NATS, in crash.rs).

use std::process::Command;

/// The binary with only the given configuration variables (none of the caller's).
fn sunshine(variables: &[(&str, &str)], arguments: &[&str]) -> anyhow::Result<String> {
    let mut command = Command::new(env!("CARGO_BIN_EXE_sunshine"));
    command.env_clear().args(arguments);
    for (name, value) in variables {
        command.env(name, value);
    }
    let output = command.output()?;
    anyhow::ensure!(
        output.status.success(),
        "sunshine {arguments:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(String::from_utf8(output.stdout)?)
}

#[test]
fn migrate_creates_every_components_tables_and_can_run_again() -> anyhow::Result<()> {
    let directory = std::env::temp_dir().join(format!("sunshine-cli-{}", uuid_like()));
    std::fs::create_dir_all(&directory)?;
    let url = format!("sqlite://{}", directory.join("sunshine.db").display());
    let variables = [("SUNSHINE__DATABASE__URL", url.as_str())];
    let first = sunshine(&variables, &["migrate"])?;
    for component in ["eventlog", "intake", "review", "payment", "integration"] {
        assert!(first.contains(&format!("migrated {component}")), "{first}");
    }
    // No roles on SQLite, and a second run applies nothing new (and logs no migration).
    assert!(!first.contains("granted"), "{first}");
    let second = sunshine(&variables, &["migrate"])?;
    let summary = |output: &str| -> Vec<String> {
        output
            .lines()
            .filter(|line| line.starts_with("migrated "))
            .map(str::to_owned)
            .collect()
    };
    assert_eq!(summary(&first), summary(&second));
    assert_eq!(second.lines().count(), 5, "{second}");
    std::fs::remove_dir_all(directory)?;
    Ok(())
}

#[test]
fn the_role_sql_names_every_services_role() -> anyhow::Result<()> {
    let sql = sunshine(&[], &["migrate", "--print-role-sql"])?;
    for role in [
        "sunshine_log_writer",
        "sunshine_intake",
        "sunshine_review",
        "sunshine_payment",
        "sunshine_disclosure",
        "sunshine_department_integration",
        "sunshine_audit",
    ] {
        assert!(
            sql.contains(&format!("CREATE ROLE {role} ")),
            "{role}: {sql}"
        );
    }
    assert!(sql.contains("GRANT sunshine_log_writer TO sunshine_intake;"));
    Ok(())
}

#[test]
fn log_key_prints_the_checkpoint_verifier_key_named_after_the_origin() -> anyhow::Result<()> {
    let mut log = sunshine_platform::config::LogConfig {
        origin: "sunshine.example/district-990101/case-events".into(),
        ..Default::default()
    };
    log.generate_keys()?;
    let printed = sunshine(
        &[
            (
                "SUNSHINE__LOG__CHECKPOINT_SIGNING_KEY",
                log.checkpoint_signing_key.as_str(),
            ),
            ("SUNSHINE__LOG__ORIGIN", log.origin.as_str()),
        ],
        &["log-key"],
    )?;
    assert_eq!(
        printed.trim_end(),
        log.checkpoint_verifier_key().map_err(anyhow::Error::msg)?
    );
    sunshine_evidence::checkpoint::CheckpointVerifier::from_verifier_key(printed.trim_end())?;
    assert!(printed.starts_with("sunshine.example/district-990101/case-events+"));
    Ok(())
}

#[test]
fn rebuild_reports_every_projection_of_the_services_it_names() -> anyhow::Result<()> {
    let directory = std::env::temp_dir().join(format!("sunshine-cli-{}", uuid_like()));
    std::fs::create_dir_all(&directory)?;
    let local = directory.join("local");
    let local = local.to_str().ok_or_else(|| anyhow::anyhow!("not UTF-8"))?;
    let config_file = sunshine(&[], &["dev-init", local])?;
    let url = format!("sqlite://{}", directory.join("sunshine.db").display());
    let workspace = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
    let policy = format!("{workspace}/policy/example-district");
    let workflows = format!("{workspace}/services/review/workflows/example-district.toml");
    let variables = [
        ("SUNSHINE_CONFIG", config_file.trim_end()),
        ("SUNSHINE__DATABASE__URL", url.as_str()),
        ("SUNSHINE__POLICY__DIRECTORY", policy.as_str()),
        ("SUNSHINE__POLICY__WORKFLOWS_FILE", workflows.as_str()),
    ];
    let rebuilt = |arguments: &[&str]| -> anyhow::Result<Vec<String>> {
        Ok(sunshine(&variables, arguments)?
            .lines()
            .filter(|line| line.starts_with("rebuilt "))
            .map(str::to_owned)
            .collect())
    };
    assert_eq!(
        rebuilt(&["rebuild", "all"])?,
        [
            "rebuilt intake intake-read-model: 0 events applied",
            "rebuilt review review-case-opener: 0 events applied",
            "rebuilt payment payment-entitlements: 0 events applied",
        ]
    );
    assert_eq!(
        rebuilt(&["rebuild", "review"])?,
        ["rebuilt review review-case-opener: 0 events applied"]
    );
    for (service, refusal) in [
        ("disclosure", "disclosure has no projections to rebuild"),
        ("nope", "unknown service nope"),
    ] {
        let failed = sunshine(&variables, &["rebuild", service]).expect_err(service);
        assert!(failed.to_string().contains(refusal), "{failed}");
    }
    std::fs::remove_dir_all(directory)?;
    Ok(())
}

fn uuid_like() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_nanos())
        .unwrap_or_default();
    format!("{}-{nanos}", std::process::id())
}
