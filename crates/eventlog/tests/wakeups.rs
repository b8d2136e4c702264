//! Wake-ups are a value handed to each part of the log: an append through a store wakes the
//! worker given the same signals at once, although the worker would otherwise look only once
//! an hour — and so does an append through another store of the database that was handed those
//! signals, as two services of one process are.

mod common;

use std::time::Duration;

use common::{Backend, event, eventually, fresh_store, metadata, sequencer, stream};
use sunshine_eventlog::worker::LogWorker;
use sunshine_eventlog::{EventStore, ExpectedVersion, LogSignals};
use sunshine_platform::Shutdown;

on_both_backends!(an_append_wakes_the_worker_that_shares_its_signals);

/// Appends through `store` until the worker has sequenced past `size` (an append that commits
/// while the worker is busy, not yet waiting, wakes nobody; the next one does).
async fn append_until_sequenced(store: &EventStore, size: u64) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let mut index = 0;
    loop {
        store
            .append(
                &stream("household", "wake"),
                ExpectedVersion::Any,
                &metadata(None),
                vec![event("case-wake", &format!("event {index}"))],
            )
            .await?;
        index += 1;
        let sequenced = eventually(
            "the worker to sequence",
            Duration::from_millis(500),
            || async { Ok(store.log_size().await? > size) },
        )
        .await;
        if sequenced.is_ok() {
            return Ok(());
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "appends did not wake the worker"
        );
    }
}

async fn an_append_wakes_the_worker_that_shares_its_signals(
    backend: Backend,
) -> anyhow::Result<()> {
    let (store, _keep) = fresh_store(backend, 6).await?;
    let signals = LogSignals::new();
    let service_store = store.clone().with_signals(signals.clone());
    let other_service_store = EventStore::new(store.pool().clone(), store.kind(), "other service")
        .with_signals(signals.clone());
    let (sequencer, _verifier) = sequencer(&store, 1_000);
    let worker = LogWorker::new(
        service_store.clone(),
        sequencer,
        None,
        Duration::from_secs(3_600),
        signals,
    );
    let (trigger, shutdown) = Shutdown::new();
    let worker_task = tokio::spawn(worker.run(shutdown));

    append_until_sequenced(&service_store, 0).await?;
    let size = store.log_size().await?;
    append_until_sequenced(&other_service_store, size).await?;

    trigger.trigger();
    worker_task.await?;
    Ok(())
}
