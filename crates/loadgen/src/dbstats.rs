//! What the cluster's database did per application: PostgreSQL's own counters for the run's
//! database (`pg_stat_database`), read before and after the fixed-rate step. Backends publish
//! their counters at most once a second and, once idle, within ten seconds, so each read
//! waits for the system to have been idle that long.

use std::time::Duration;

use serde::Serialize;
use sqlx::Connection as _;

use crate::load::round3;

/// How long PostgreSQL may take to publish an idle backend's counters (PGSTAT_IDLE_INTERVAL).
pub const SETTLE: Duration = Duration::from_millis(11_500);

#[derive(Debug, Clone, Copy, Default)]
pub struct Counters {
    commits: i64,
    rollbacks: i64,
    rows_inserted: i64,
    rows_updated: i64,
    rows_fetched: i64,
    rows_returned: i64,
}

/// The database's work per application sent over a step (everything on the database:
/// both services' requests, their log workers, consumers and readiness checks, the polls).
#[derive(Debug, Clone, Serialize)]
pub struct DatabaseWork {
    pub applications: usize,
    pub commits_per_application: f64,
    pub rollbacks_per_application: f64,
    pub rows_inserted_per_application: f64,
    pub rows_updated_per_application: f64,
    pub rows_fetched_per_application: f64,
    pub rows_returned_per_application: f64,
}

/// The counters of database `name`, read on `url` (any database of the server).
pub async fn read(url: &str, name: &str) -> anyhow::Result<Counters> {
    let mut connection = sqlx::PgConnection::connect(url).await?;
    let row: (i64, i64, i64, i64, i64, i64) = sqlx::query_as(
        "SELECT xact_commit, xact_rollback, tup_inserted, tup_updated, tup_fetched, tup_returned \
         FROM pg_stat_database WHERE datname = $1",
    )
    .bind(name)
    .fetch_one(&mut connection)
    .await?;
    connection.close().await?;
    Ok(Counters {
        commits: row.0,
        rollbacks: row.1,
        rows_inserted: row.2,
        rows_updated: row.3,
        rows_fetched: row.4,
        rows_returned: row.5,
    })
}

/// `after - before`, per application.
pub fn per_application(before: Counters, after: Counters, applications: usize) -> DatabaseWork {
    let per = |delta: i64| {
        if applications == 0 {
            0.0
        } else {
            round3(delta as f64 / applications as f64)
        }
    };
    DatabaseWork {
        applications,
        commits_per_application: per(after.commits - before.commits),
        rollbacks_per_application: per(after.rollbacks - before.rollbacks),
        rows_inserted_per_application: per(after.rows_inserted - before.rows_inserted),
        rows_updated_per_application: per(after.rows_updated - before.rows_updated),
        rows_fetched_per_application: per(after.rows_fetched - before.rows_fetched),
        rows_returned_per_application: per(after.rows_returned - before.rows_returned),
    }
}
