//! `sunshine`: run services, migrate the database, rebuild projections, mint development
//! tokens, print the log's verifier key, run the demo. See `sunshine --help`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use sunshine::{cluster, demo, dev_keys, log_key, migrate, rebuild, services};
use sunshine_domain::OrgUnitCode;
use sunshine_eventlog::LogSignals;
use sunshine_platform::{Config, ConfigSource, Role};

#[derive(Debug, Parser)]
#[command(
    name = "sunshine",
    version,
    about = "Sunshine Livelihood Assistance (阳光民生救助)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run one service, or `all` of them in this process (ports from grpc.listen_address up).
    Serve { service: String },
    /// Create or upgrade every component's tables and (PostgreSQL) grant the services' roles.
    /// Run it as the tables' owner, before the services start (`database.url` names the owner).
    Migrate {
        /// Print the SQL that creates the database roles (for the DBA: once per server,
        /// idempotent) instead of migrating.
        #[arg(long)]
        print_role_sql: bool,
    },
    /// With the services stopped: reset every projection of SERVICE (or of `all` services that
    /// have projections) and replay the case-event log into it; prints how many events each
    /// applied. Configuration as for `serve` (`SUNSHINE_CONFIG`, `SUNSHINE__…`).
    Rebuild { service: String },
    /// Rotate the key-encryption key: wrap every data key under `log.key_encryption_key` (the
    /// new key) that is still wrapped under `log.previous_key_encryption_key`; the log itself
    /// is not touched. Run as the tables' owner; safe to run again. `docs/operations.md` gives
    /// the whole procedure.
    RewrapDataKeys,
    /// Write the embedded configuration and a development key into DIRECTORY (for `make run`).
    DevInit {
        #[arg(default_value = ".local")]
        directory: PathBuf,
    },
    /// Print a development token signed with the key in DIRECTORY, for every service (or only
    /// those named with --audience).
    DevToken {
        #[arg(long, default_value = ".local")]
        directory: PathBuf,
        /// village_clerk, street_reviewer, center_reviewer, center_approver, finance_officer,
        /// finance_approver, auditor, department or admin.
        #[arg(long)]
        role: String,
        /// 12-digit division code of the officer's org unit, at the role's tier (a village for
        /// a village clerk, a street-town for a street reviewer, the district otherwise).
        /// Default: the example district's unit of that tier.
        #[arg(long)]
        org_unit: Option<String>,
        #[arg(long, default_value = "dev-officer")]
        subject: String,
        #[arg(long, default_value = "开发测试")]
        name: String,
        #[arg(long)]
        department_code: Option<String>,
        /// Lifetime; services refuse tokens living longer than auth.max_token_lifetime_seconds
        /// (12 hours by default).
        #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=12))]
        hours: u32,
        /// A service the token is for (repeat for several); default: every service.
        #[arg(long = "audience", value_name = "SERVICE")]
        audiences: Vec<String>,
    },
    /// Start the system in this process and walk through what it does.
    Demo,
    /// Print the key that verifies the case-event log's checkpoints (a C2SP note verifier key
    /// named after `log.origin`), from the configuration (`SUNSHINE_CONFIG`, `SUNSHINE__…`).
    LogKey {
        /// Print instead the public sealing key derived from `log.key_encryption_key`
        /// (`log.sealing_public_key` of the processes that seal without it).
        #[arg(long)]
        sealing: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve { service } if service == "all" => {
            // Each service's spans under its own service.name; the process's own as `sunshine`.
            let names: Vec<&'static str> =
                services::SERVICES.iter().map(|entry| entry.name).collect();
            sunshine_platform::main_entry_for_services(
                "sunshine",
                &names,
                |config, listener, shutdown| {
                    // `all` binds its own ports from the configured base address.
                    drop(listener);
                    cluster::serve_all(config, shutdown)
                },
            )
        }
        Command::Serve { service } => match services::find(&service) {
            Some(entry) => {
                sunshine_platform::main_entry(entry.name, |config, listener, shutdown| {
                    // Least privilege: a process given a key its role does not hold stops here.
                    let checked = entry.keys.check(entry.name, &config.log);
                    let run = (entry.run)(config, listener, shutdown, LogSignals::new());
                    async move {
                        checked?;
                        run.await
                    }
                })
            }
            None => {
                let names: Vec<&str> = services::SERVICES.iter().map(|entry| entry.name).collect();
                eprintln!(
                    "unknown service {service}; one of: all, {}",
                    names.join(", ")
                );
                ExitCode::FAILURE
            }
        },
        Command::Migrate {
            print_role_sql: true,
        } => report(migrate::role_sql().map(|sql| print!("{sql}"))),
        Command::Migrate {
            print_role_sql: false,
        } => report(run_migrate()),
        Command::Rebuild { service } => report(run_rebuild(&service)),
        Command::RewrapDataKeys => report(run_rewrap()),
        Command::DevInit { directory } => report(dev_keys::init_embedded(&directory).map(|path| {
            println!("{}", path.display());
        })),
        Command::DevToken {
            directory,
            role,
            org_unit,
            subject,
            name,
            department_code,
            hours,
            audiences,
        } => {
            let Some(role) = Role::parse(&role) else {
                eprintln!("unknown role {role}");
                return ExitCode::FAILURE;
            };
            let org_unit =
                org_unit.unwrap_or_else(|| dev_keys::example_org_unit(role.tier()).into());
            match OrgUnitCode::parse(&org_unit) {
                Ok(code) if code.tier() == role.tier() => {}
                Ok(_) => {
                    eprintln!(
                        "role {} is valid only at a {} org unit; services would refuse this token",
                        role.as_str(),
                        role.tier()
                    );
                    return ExitCode::FAILURE;
                }
                Err(error) => {
                    eprintln!("--org-unit: {error}");
                    return ExitCode::FAILURE;
                }
            }
            let auth = sunshine_platform::config::AuthConfig::default();
            let audience = if audiences.is_empty() {
                dev_keys::every_service(&auth)
            } else {
                for service in &audiences {
                    if services::find(service).is_none() {
                        let names: Vec<&str> =
                            services::SERVICES.iter().map(|entry| entry.name).collect();
                        eprintln!(
                            "--audience {service}: not a service; one of: {}",
                            names.join(", ")
                        );
                        return ExitCode::FAILURE;
                    }
                }
                let names: Vec<&str> = audiences.iter().map(String::as_str).collect();
                dev_keys::audience(&auth, &names)
            };
            report(
                dev_keys::load_or_create(&directory.join("dev-signing-key")).map(|issuer| {
                    let claims = dev_keys::claims(
                        audience,
                        &subject,
                        &name,
                        role,
                        &org_unit,
                        department_code,
                        hours,
                    );
                    println!("{}", issuer.sign(&claims));
                }),
            )
        }
        Command::LogKey { sealing } => report(
            Config::load_unvalidated(&ConfigSource::from_process())
                .map_err(anyhow::Error::from)
                .and_then(|config| {
                    if sealing {
                        log_key::sealing_public_key(&config.log)
                    } else {
                        log_key::verifier_key(&config.log)
                    }
                })
                .map(|key| println!("{key}")),
        ),
        Command::Demo => match tokio::runtime::Runtime::new() {
            Ok(runtime) => report(runtime.block_on(demo::run())),
            Err(error) => report(Err(error.into())),
        },
    }
}

fn run_migrate() -> anyhow::Result<()> {
    // Only the database section matters here (the Job has no log keys, the placeholder auth key
    // may still be in place): the rest is not validated.
    let config = Config::load_unvalidated(&ConfigSource::from_process())?;
    let runtime = tokio::runtime::Runtime::new()?;
    let outcome = runtime.block_on(async {
        let _telemetry = sunshine_platform::telemetry::init("migrate", &config.telemetry)?;
        migrate::run(&config.database).await
    })?;
    for (component, versions) in &outcome.components {
        println!("migrated {component}: versions {versions:?} applied");
    }
    if let Some(access) = &outcome.access {
        for created in &access.created {
            println!("created {created}");
        }
        println!(
            "granted {} table privileges to the services' roles",
            access.granted.len()
        );
    }
    Ok(())
}

fn run_rewrap() -> anyhow::Result<()> {
    use anyhow::Context as _;
    use sunshine_eventlog::crypto::KeyEncryptionKey;
    let config = Config::load_unvalidated(&ConfigSource::from_process())?;
    let current = KeyEncryptionKey::from_base64(&config.log.key_encryption_key)
        .context("log.key_encryption_key (the new key)")?;
    let previous = KeyEncryptionKey::from_base64(&config.log.previous_key_encryption_key)
        .context("log.previous_key_encryption_key (the key being replaced)")?;
    let runtime = tokio::runtime::Runtime::new()?;
    let done = runtime.block_on(async {
        let database = sunshine_platform::backends::Database::connect(&config.database).await?;
        let store = sunshine_eventlog::EventStore::from_database(&database);
        let done = sunshine_eventlog::keys::rewrap_data_keys(&store, &previous, &current).await;
        database.close().await;
        anyhow::Ok(done?)
    })?;
    println!(
        "rewrapped {} data keys under the new key-encryption key; {} were under it already",
        done.rewrapped, done.already_current
    );
    Ok(())
}

fn run_rebuild(target: &str) -> anyhow::Result<()> {
    // Refuse an unknown name before reading any configuration.
    rebuild::targets(target)?;
    let config = Config::load(&ConfigSource::from_process())?;
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let _telemetry = sunshine_platform::telemetry::init("rebuild", &config.telemetry)?;
        rebuild::run(&config, target, |rebuilt| {
            println!(
                "rebuilt {} {}: {} events applied",
                rebuilt.service, rebuilt.projection, rebuilt.applied
            );
        })
        .await
    })?;
    Ok(())
}

fn report(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("sunshine: {error:#}");
            ExitCode::FAILURE
        }
    }
}
