//! The physical floor each mode is compared with, measured in the same run on native
//! connections from the generator (never through the project's own code):
//!
//! - PostgreSQL: a one-row `BEGIN; INSERT; COMMIT` on a plain `sqlx::PgConnection` to the
//!   run's own database (the statements an append with a known head sends), one at a time for
//!   latency, and from `concurrency` connections for the rate.
//! - NATS: a core request/reply round trip on loopback to a responder on another connection,
//!   one at a time for latency, `concurrency` at once for the rate.
//! - SQLite: a one-row insert transaction in a file beside the embedded database (same disk,
//!   the pragmas the services set), one writer (SQLite has one).

use std::time::{Duration, Instant};

use futures::StreamExt as _;
use serde::Serialize;
use sqlx::Connection as _;

use crate::load::{Percentiles, round3};

/// A baseline operation: latency one at a time and the rate of many at once.
#[derive(Debug, Clone, Serialize)]
pub struct Baseline {
    pub what: String,
    /// One operation at a time.
    pub latency: Percentiles,
    /// Operations per second with `concurrency` at once.
    pub max_rate_per_s: f64,
    pub concurrency: usize,
}

/// Runs `operation` one at a time for `duration`; the latencies in ms.
async fn sequential<F, Fut>(duration: Duration, mut operation: F) -> anyhow::Result<Vec<f64>>
where
    F: FnMut(u64) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    let mut latencies = Vec::new();
    let started = Instant::now();
    let mut iteration = 0;
    while started.elapsed() < duration {
        let before = Instant::now();
        operation(iteration).await?;
        latencies.push(before.elapsed().as_secs_f64() * 1000.0);
        iteration += 1;
    }
    Ok(latencies)
}

const PG_TABLE: &str = "CREATE TABLE IF NOT EXISTS loadgen_baseline (id bigint PRIMARY KEY, stream_id text NOT NULL, payload bytea NOT NULL)";
const PG_INSERT: &str = "INSERT INTO loadgen_baseline (id, stream_id, payload) VALUES ($1, $2, $3)";

async fn pg_insert(connection: &mut sqlx::PgConnection, id: i64) -> anyhow::Result<()> {
    let mut transaction = connection.begin().await?;
    sqlx::query(PG_INSERT)
        .bind(id)
        .bind(format!("baseline-{id}"))
        .bind(vec![0x5au8; 300])
        .execute(&mut *transaction)
        .await?;
    transaction.commit().await?;
    Ok(())
}

/// One-row insert transactions on PostgreSQL at `url`.
pub async fn postgres(
    url: &str,
    duration: Duration,
    concurrency: usize,
) -> anyhow::Result<Baseline> {
    let mut connection = sqlx::PgConnection::connect(url).await?;
    sqlx::query(PG_TABLE).execute(&mut connection).await?;
    let mut latencies = Vec::new();
    let started = Instant::now();
    let mut id = 0;
    while started.elapsed() < duration {
        let before = Instant::now();
        pg_insert(&mut connection, id).await?;
        latencies.push(before.elapsed().as_secs_f64() * 1000.0);
        id += 1;
    }
    connection.close().await?;

    let started = Instant::now();
    let mut writers = tokio::task::JoinSet::new();
    for writer in 0..concurrency {
        let url = url.to_owned();
        writers.spawn(async move {
            let mut connection = sqlx::PgConnection::connect(&url).await?;
            let mut done = 0u64;
            // Ids apart from the sequential phase's and from each other writer's.
            let base = (writer as i64 + 1) << 40;
            while started.elapsed() < duration {
                pg_insert(&mut connection, base + done as i64).await?;
                done += 1;
            }
            connection.close().await?;
            anyhow::Ok(done)
        });
    }
    let mut done = 0;
    while let Some(joined) = writers.join_next().await {
        done += joined??;
    }
    Ok(Baseline {
        what: "PostgreSQL one-row BEGIN; INSERT; COMMIT on a native connection".into(),
        latency: Percentiles::of(&mut latencies),
        max_rate_per_s: round3(done as f64 / started.elapsed().as_secs_f64()),
        concurrency,
    })
}

/// Core NATS request/reply round trips on loopback.
pub async fn nats(
    address: &str,
    subject: &str,
    duration: Duration,
    concurrency: usize,
) -> anyhow::Result<Baseline> {
    let responder = async_nats::connect(format!("nats://{address}")).await?;
    let mut requests = responder.subscribe(subject.to_owned()).await?;
    let replier = responder.clone();
    let answering = tokio::spawn(async move {
        while let Some(message) = requests.next().await {
            if let Some(reply) = message.reply {
                let _ = replier.publish(reply, message.payload).await;
            }
        }
    });
    responder.flush().await?;
    let requester = async_nats::connect(format!("nats://{address}")).await?;
    let payload = bytes::Bytes::from(vec![0x5au8; 300]);
    let mut latencies = sequential(duration, |_| {
        let requester = requester.clone();
        let payload = payload.clone();
        let subject = subject.to_owned();
        async move {
            requester.request(subject, payload).await?;
            Ok(())
        }
    })
    .await?;

    let started = Instant::now();
    let mut callers = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        let requester = requester.clone();
        let payload = payload.clone();
        let subject = subject.to_owned();
        callers.spawn(async move {
            let mut done = 0u64;
            while started.elapsed() < duration {
                requester.request(subject.clone(), payload.clone()).await?;
                done += 1;
            }
            anyhow::Ok(done)
        });
    }
    let mut done = 0;
    while let Some(joined) = callers.join_next().await {
        done += joined??;
    }
    answering.abort();
    Ok(Baseline {
        what: "NATS core request/reply round trip on loopback".into(),
        latency: Percentiles::of(&mut latencies),
        max_rate_per_s: round3(done as f64 / started.elapsed().as_secs_f64()),
        concurrency,
    })
}

/// One-row insert transactions in a SQLite file at `path` (WAL, synchronous = NORMAL, as the
/// services open theirs).
pub async fn sqlite(path: &std::path::Path, duration: Duration) -> anyhow::Result<Baseline> {
    let url = format!("sqlite://{}?mode=rwc", path.display());
    let mut connection = sqlx::SqliteConnection::connect(&url).await?;
    sqlx::raw_sql(
        "PRAGMA journal_mode = WAL; PRAGMA busy_timeout = 10000; PRAGMA synchronous = NORMAL; \
         CREATE TABLE IF NOT EXISTS loadgen_baseline (id INTEGER PRIMARY KEY, stream_id TEXT NOT NULL, payload BLOB NOT NULL);",
    )
    .execute(&mut connection)
    .await?;
    let started = Instant::now();
    let mut latencies = Vec::new();
    let mut id = 0i64;
    while started.elapsed() < duration {
        let before = Instant::now();
        let mut transaction = connection.begin().await?;
        sqlx::query("INSERT INTO loadgen_baseline (id, stream_id, payload) VALUES ($1, $2, $3)")
            .bind(id)
            .bind(format!("baseline-{id}"))
            .bind(vec![0x5au8; 300])
            .execute(&mut *transaction)
            .await?;
        transaction.commit().await?;
        latencies.push(before.elapsed().as_secs_f64() * 1000.0);
        id += 1;
    }
    let elapsed = started.elapsed().as_secs_f64();
    connection.close().await?;
    let count = latencies.len();
    Ok(Baseline {
        what: "SQLite one-row insert transaction (WAL, synchronous=NORMAL), same disk".into(),
        latency: Percentiles::of(&mut latencies),
        max_rate_per_s: round3(count as f64 / elapsed),
        concurrency: 1,
    })
}
