//! The log's append rate as the benchmarks measure it, in one place so that every benchmark
//! that compares a service with "the log's batched append" measures the same thing
//! (`benches/eventlog.rs`, and `sunshine-loadgen`'s department-integration benchmark as its
//! baseline): `writers` tasks, each appending batches of `events_per_append` events of
//! `payload_bytes` to a stream of its own (the expected version known, so no read before an
//! insert), one append after the other, until `duration` has passed. Nothing else runs in the
//! appends: no guard rows, no sealing, no gRPC.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::error::StoreError;
use crate::event::{Actor, EventMetadata, ExpectedVersion, NewEvent, StreamId};
use crate::store::EventStore;

/// What is appended, by how many writers, for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendLoad {
    /// Tasks appending at once, each to a stream of its own.
    pub writers: usize,
    /// Events in one append (one transaction).
    pub events_per_append: usize,
    /// Each event's payload (the same filler bytes in every event).
    pub payload_bytes: usize,
    /// How long the writers keep appending (each finishes the append it is in).
    pub duration: Duration,
}

/// What an [`append_rate`] measured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AppendRate {
    /// Appends (transactions) per second, over every writer.
    pub appends_per_s: f64,
    /// Events per second: appends per second times the events of one.
    pub events_per_s: f64,
    /// Events appended.
    pub events: u64,
    /// The wall time from the first append to the last writer's end.
    pub elapsed: Duration,
}

/// The benchmarks' actor: a village clerk of the example district.
fn bench_metadata() -> EventMetadata {
    EventMetadata {
        actor: Actor {
            subject: "bench".into(),
            role: "village_clerk".into(),
            org_unit: "990101001001".into(),
            department_code: None,
        },
        ..EventMetadata::default()
    }
}

/// Appends `load` on `store` to streams `bench-<tag>-<writer>` (new ones: `tag` must be
/// unique in the store), and answers the rate.
pub async fn append_rate(
    store: &EventStore,
    load: AppendLoad,
    tag: &str,
) -> Result<AppendRate, StoreError> {
    let appends = Arc::new(AtomicU64::new(0));
    let metadata = bench_metadata();
    let started = Instant::now();
    let mut writers = tokio::task::JoinSet::new();
    for writer in 0..load.writers.max(1) {
        let store = store.clone();
        let metadata = metadata.clone();
        let appends = Arc::clone(&appends);
        let stream = StreamId::new("bench", tag, &writer.to_string())
            .map_err(|error| StoreError::Invalid(error.to_string()))?;
        writers.spawn(async move {
            let mut version = 0_u64;
            while started.elapsed() < load.duration {
                let events = (0..load.events_per_append)
                    .map(|_| {
                        NewEvent::new(
                            "case-bench",
                            "example.v1.BenchEvent",
                            1,
                            vec![0x5a; load.payload_bytes],
                        )
                    })
                    .collect();
                store
                    .append(&stream, ExpectedVersion::Exact(version), &metadata, events)
                    .await?;
                version += load.events_per_append as u64;
                appends.fetch_add(1, Ordering::Relaxed);
            }
            Ok::<_, StoreError>(())
        });
    }
    while let Some(joined) = writers.join_next().await {
        joined.map_err(|error| StoreError::Invalid(format!("a writer failed: {error}")))??;
    }
    let elapsed = started.elapsed();
    let appends = appends.load(Ordering::Relaxed);
    let appends_per_s = appends as f64 / elapsed.as_secs_f64();
    Ok(AppendRate {
        appends_per_s,
        events_per_s: appends_per_s * load.events_per_append as f64,
        events: appends * load.events_per_append as u64,
        elapsed,
    })
}
