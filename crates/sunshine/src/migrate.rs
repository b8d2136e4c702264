//! `sunshine migrate`: the schema step, run as the tables' owner before the services start (a
//! Kubernetes Job in the cluster, a step of `make run-cluster` locally). It applies every
//! component's migrations — the case-event log's, then each service's read model — and, on
//! PostgreSQL, grants each service's login role exactly what it needs
//! ([`sunshine_eventlog::roles`]): the services themselves may then read and append, and never
//! change the schema. Idempotent: run it on every release.
//!
//! On SQLite the services migrate the file themselves when they start; `sunshine migrate`
//! works there too (there are no roles to grant).

use anyhow::Context as _;
use sunshine_eventlog::roles::{self, AccessReport, ServiceAccess};
use sunshine_eventlog::schema::{self, Component};
use sunshine_platform::backends::Database;
use sunshine_platform::config::{DatabaseConfig, DatabaseKind};

use crate::services::SERVICES;

/// What a run did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationReport {
    /// Every component migrated, in order, with its migration versions.
    pub components: Vec<(&'static str, Vec<i64>)>,
    /// PostgreSQL only: roles created and privileges granted.
    pub access: Option<AccessReport>,
}

/// Every component with tables, in the order they are migrated: the log first.
pub fn components() -> Vec<Component> {
    std::iter::once(schema::EVENT_LOG)
        .chain(SERVICES.iter().filter_map(|entry| entry.read_model))
        .collect()
}

/// What every service's database role needs.
pub fn service_access() -> Vec<ServiceAccess> {
    SERVICES.iter().map(|entry| entry.access()).collect()
}

/// The SQL a DBA runs once per PostgreSQL server to create the roles (idempotent).
pub fn role_sql() -> anyhow::Result<String> {
    Ok(roles::role_script(&service_access())?)
}

/// Migrates `database` (connected as the tables' owner) and, on PostgreSQL, grants the
/// services' roles.
pub async fn migrate(database: &Database) -> anyhow::Result<MigrationReport> {
    let mut report = MigrationReport {
        components: Vec::new(),
        access: None,
    };
    for component in components() {
        schema::run_migrations(
            database.pool(),
            database.kind(),
            component.name,
            component.migrations,
        )
        .await
        .with_context(|| format!("migrating the {} tables", component.name))?;
        report.components.push((
            component.name,
            component
                .migrations
                .iter()
                .map(|migration| migration.version)
                .collect(),
        ));
    }
    if database.kind() == DatabaseKind::Postgres {
        report.access = Some(
            roles::grant_access(database.pool(), &service_access())
                .await
                .context("granting the services' roles")?,
        );
    }
    Ok(report)
}

/// `sunshine migrate`: connects with `config` (the owner's URL), migrates, closes.
pub async fn run(config: &DatabaseConfig) -> anyhow::Result<MigrationReport> {
    anyhow::ensure!(
        config.kind().is_some(),
        "database.url must start with postgres:// or sqlite:"
    );
    let database = Database::connect(config)
        .await
        .context("connecting to the database")?;
    let report = migrate(&database).await;
    database.close().await;
    report
}
