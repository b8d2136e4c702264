//! The event log's throughput on PostgreSQL, each figure beside a baseline measured in the same
//! run: single-event appends against plain single-row INSERT + COMMIT into a table of the same
//! shape (1 and 8 concurrent writers), batched appends, verification (hash chain + Merkle
//! recomputation, one core, in memory) and replay (reading the log back in global order).
//!
//! Writes `target/bench/eventlog.json`. Run with `make bench-eventlog` (release build, needs the
//! shared PostgreSQL that `deploy/local/ensure-backends.sh` provides).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use sunshine_eventlog::EventStore;
use sunshine_eventlog::checkpoint::CheckpointSigner;
use sunshine_eventlog::sequencer::{Sequencer, SequencerConfig};
use sunshine_eventlog::throughput::{self, AppendLoad};
use sunshine_eventlog::verify::Verification;
use sunshine_testkit::TestDatabase;

const MEASURE_FOR: Duration = Duration::from_secs(4);

/// About the size of a typical case event.
const PAYLOAD_BYTES: usize = 300;

fn payload() -> Vec<u8> {
    vec![0x5a; PAYLOAD_BYTES]
}

/// Runs `writers` tasks calling `operation` until the time is up; operations per second.
async fn measure_concurrent<F, Fut>(writers: usize, operation: F) -> anyhow::Result<f64>
where
    F: Fn(usize, u64) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send,
{
    let operation = Arc::new(operation);
    let done = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for writer in 0..writers {
        let operation = Arc::clone(&operation);
        let done = Arc::clone(&done);
        tasks.push(tokio::spawn(async move {
            let mut iteration = 0u64;
            while started.elapsed() < MEASURE_FOR {
                operation(writer, iteration).await?;
                iteration += 1;
                done.fetch_add(1, Ordering::Relaxed);
            }
            Ok::<_, anyhow::Error>(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    Ok(done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64())
}

async fn raw_insert_rate(store: &EventStore, writers: usize, round: usize) -> anyhow::Result<f64> {
    let pool = store.pool().clone();
    let tag = format!("{writers}r{round}");
    measure_concurrent(writers, move |writer, iteration| {
        let pool = pool.clone();
        let stream_id = format!("bench-raw-c{tag}-{writer}");
        async move {
            let mut transaction = pool.begin().await?;
            sqlx::query(
                "INSERT INTO bench_raw_events (tx_id, event_id, stream_id, stream_version, case_id, event_type, schema_version, \
                 payload, metadata, occurred_at_us, recorded_at_us, previous_hash, hash) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
            )
            .bind(1i64)
            .bind(uuid::Uuid::now_v7().to_string())
            .bind(stream_id)
            .bind(iteration as i64 + 1)
            .bind("case-bench")
            .bind("example.v1.BenchEvent")
            .bind(1i64)
            .bind(payload())
            .bind("{}")
            .bind(1i64)
            .bind(2i64)
            .bind(vec![0u8; 32])
            .bind(vec![1u8; 32])
            .execute(&mut *transaction)
            .await?;
            transaction.commit().await?;
            Ok(())
        }
    })
    .await
}

/// The log's append rate (`sunshine_eventlog::throughput`, shared with the benchmarks that
/// compare a service with it): appends per second.
async fn append_rate(
    store: &EventStore,
    writers: usize,
    events_per_append: usize,
    tag: &str,
) -> anyhow::Result<f64> {
    let load = AppendLoad {
        writers,
        events_per_append,
        payload_bytes: PAYLOAD_BYTES,
        duration: MEASURE_FOR,
    };
    Ok(throughput::append_rate(store, load, tag)
        .await?
        .appends_per_s)
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> anyhow::Result<()> {
    let database = TestDatabase::create().await?;
    let store = EventStore::from_database(&database.connect(16).await?);
    store.migrate().await?;
    sqlx::query("CREATE TABLE bench_raw_events (LIKE events INCLUDING DEFAULTS INCLUDING IDENTITY INCLUDING CONSTRAINTS INCLUDING INDEXES)")
        .execute(store.pool())
        .await?;

    let raw_insert_tps_c1 = raw_insert_rate(&store, 1, 0).await?;
    let append_tps_c1 = append_rate(&store, 1, 1, "c1").await?;
    // At 8 writers the two cores are shared by the server and the writers and the figures
    // drift; alternate the two and average each, so drift hits both alike.
    let mut raw_c8_runs = Vec::new();
    let mut append_c8_runs = Vec::new();
    for round in 0..2 {
        raw_c8_runs.push(raw_insert_rate(&store, 8, round).await?);
        append_c8_runs.push(append_rate(&store, 8, 1, &format!("c8r{round}")).await?);
    }
    let raw_insert_tps_c8 = raw_c8_runs.iter().sum::<f64>() / raw_c8_runs.len() as f64;
    let append_tps_c8 = append_c8_runs.iter().sum::<f64>() / append_c8_runs.len() as f64;
    let append_batched_events_per_s = append_rate(&store, 1, 100, "batched").await? * 100.0;

    // Sequence everything, then time verification (in memory, one core) and replay (from PostgreSQL).
    let signer = CheckpointSigner::new(
        "bench.example/log",
        ed25519_dalek::SigningKey::from_bytes(&[9u8; 32]),
    )?;
    let config = SequencerConfig {
        batch_size: 5_000,
        checkpoint_every: 1_000_000,
        ..SequencerConfig::default()
    };
    let mut sequencer = Sequencer::new(store.clone(), "bench.example/log", signer, config);
    sequencer.run_until_idle().await?;
    let log_size = store.log_size().await?;

    let replay_started = Instant::now();
    let mut events = Vec::with_capacity(log_size as usize);
    store
        .replay_log(0, 2_000, |batch| {
            events.extend(batch);
            Ok(())
        })
        .await?;
    let replay_events_per_s = events.len() as f64 / replay_started.elapsed().as_secs_f64();

    let leaf_hashes: Vec<_> = events
        .iter()
        .map(|event| sunshine_eventlog::merkle::leaf_hash(&event.hash))
        .collect();
    let verify_started = Instant::now();
    let mut verification = Verification::new([]);
    for (event, leaf) in events.iter().zip(&leaf_hashes) {
        verification.push(event.log_position.unwrap_or_default(), leaf, Some(event));
    }
    let report = verification.finish(&[]);
    let verify_events_per_s = events.len() as f64 / verify_started.elapsed().as_secs_f64();
    anyhow::ensure!(
        report.problem.is_none(),
        "the benchmark's own log does not verify: {:?}",
        report.problem
    );

    let c1_ratio = append_tps_c1 / raw_insert_tps_c1;
    let c8_ratio = append_tps_c8 / raw_insert_tps_c8;
    let json = format!(
        "{{\n  \"raw_insert_tps_c1\": {raw_insert_tps_c1:.1},\n  \"append_tps_c1\": {append_tps_c1:.1},\n  \"append_to_raw_ratio_c1\": {c1_ratio:.3},\n  \
         \"raw_insert_tps_c8\": {raw_insert_tps_c8:.1},\n  \"append_tps_c8\": {append_tps_c8:.1},\n  \"append_to_raw_ratio_c8\": {c8_ratio:.3},\n  \
         \"append_batched_events_per_s\": {append_batched_events_per_s:.1},\n  \"verify_events_per_s\": {verify_events_per_s:.1},\n  \
         \"replay_events_per_s\": {replay_events_per_s:.1},\n  \"events_in_log\": {log_size},\n  \"payload_bytes\": {PAYLOAD_BYTES},\n  \
         \"seconds_per_measurement\": {}\n}}\n",
        MEASURE_FOR.as_secs()
    );
    let target_directory = std::env::var("CARGO_TARGET_DIR")
        .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/../../target").to_owned());
    let bench_directory = std::path::Path::new(&target_directory).join("bench");
    std::fs::create_dir_all(&bench_directory)?;
    let output = bench_directory.join("eventlog.json");
    std::fs::write(&output, &json)?;
    print!("{json}");
    println!("wrote {}", output.display());
    database.drop_database().await?;
    Ok(())
}
