//! The schema step on PostgreSQL: `sunshine migrate`, run as the tables' owner, is the only
//! thing that changes the schema. A service logs in as its own role and, finding the schema
//! missing or older than it needs, refuses to start ("run `sunshine migrate`") instead of
//! migrating; once the migration has run it starts by itself.

use std::time::Duration;

use sunshine_eventlog::schema::{self, SchemaError};
use sunshine_platform::backends::Database;
use sunshine_platform::config::DatabaseConfig;
use sunshine_tests::{
    RunningService, TestAuth, TestDatabase, migrate, nats_address, postgres_address,
    service_database_url, test_config,
};
use tonic_health::pb::health_check_response::ServingStatus;

const PATIENCE: Duration = Duration::from_secs(20);

async fn connect(url: String) -> anyhow::Result<Database> {
    Ok(Database::connect(&DatabaseConfig {
        url,
        max_connections: 2,
        ..Default::default()
    })
    .await?)
}

async fn table_exists(database: &Database, table: &str) -> anyhow::Result<bool> {
    Ok(sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
        .bind(table)
        .fetch_one(database.pool())
        .await?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_waits_for_sunshine_migrate_and_never_migrates_itself() -> anyhow::Result<()> {
    let auth = TestAuth::new()?;
    let database = TestDatabase::create_owned(&sunshine::migrate::role_sql()?).await?;
    let owner = connect(database.owner_url()).await?;
    let config = test_config(
        &auth,
        service_database_url(
            &database,
            &postgres_address(),
            sunshine_intake::SERVICE_NAME,
        ),
        format!("nats://{}", nats_address()),
    );
    assert!(
        !config.database.migrates_on_start(),
        "the default on PostgreSQL"
    );
    let intake = RunningService::start(
        sunshine_intake::SERVICE_NAME,
        config,
        sunshine_intake::run_sharing_process,
    )
    .await?;

    // It connects, finds no schema, and waits, retrying every 100 ms: for a good many tries.
    let connected = async {
        loop {
            let sessions: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = current_database() AND usename = 'sunshine_intake'",
            )
            .fetch_one(owner.pool())
            .await?;
            if sessions > 0 {
                return anyhow::Ok(());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(PATIENCE, connected).await??;
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(intake.health().await?, ServingStatus::NotServing);
    assert!(!table_exists(&owner, "eventlog_migrations").await?);
    assert!(!table_exists(&owner, "events").await?);

    // The owner migrates: the service starts on its own.
    migrate(&database.owner_url()).await?;
    intake
        .wait_for_health(ServingStatus::Serving, PATIENCE)
        .await?;
    intake.stop().await?;
    owner.close().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unmigrated_or_older_schema_is_refused_with_run_sunshine_migrate() -> anyhow::Result<()>
{
    let database = TestDatabase::create_owned(&sunshine::migrate::role_sql()?).await?;
    let service = connect(service_database_url(
        &database,
        &postgres_address(),
        sunshine_intake::SERVICE_NAME,
    ))
    .await?;
    let unmigrated = schema::require_migrated(service.pool(), schema::EVENT_LOG)
        .await
        .expect_err("nothing is migrated");
    assert!(matches!(unmigrated, SchemaError::Unreadable { .. }));
    assert!(
        unmigrated.to_string().contains("run `sunshine migrate`"),
        "{unmigrated}"
    );

    migrate(&database.owner_url()).await?;
    schema::require_migrated(service.pool(), schema::EVENT_LOG).await?;
    schema::require_migrated(service.pool(), sunshine_intake::READ_MODEL).await?;
    // Another service's tables are not intake's to read.
    assert!(matches!(
        schema::require_migrated(service.pool(), sunshine_review::READ_MODEL).await,
        Err(SchemaError::Unreadable { .. })
    ));

    // A database migrated by an older release: the newest log migration is not applied.
    let owner = connect(database.owner_url()).await?;
    let newest = schema::EVENT_LOG
        .migrations
        .iter()
        .map(|migration| migration.version)
        .max()
        .unwrap_or_default();
    sqlx::query("DELETE FROM eventlog_migrations WHERE version = $1")
        .bind(newest)
        .execute(owner.pool())
        .await?;
    let older = schema::require_migrated(service.pool(), schema::EVENT_LOG)
        .await
        .expect_err("a migration is missing");
    match &older {
        SchemaError::NotMigrated { component, missing } => {
            assert_eq!(
                (component.as_str(), missing.as_slice()),
                ("eventlog", &[newest][..])
            );
        }
        other => panic!("{other}"),
    }
    assert!(
        older.to_string().contains("run `sunshine migrate`"),
        "{older}"
    );
    // Running it again is harmless and brings the database up to date.
    migrate(&database.owner_url()).await?;
    migrate(&database.owner_url()).await?;
    schema::require_migrated(service.pool(), schema::EVENT_LOG).await?;
    owner.close().await;
    service.close().await;
    Ok(())
}
