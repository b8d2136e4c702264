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

/// Appends one event through `store` and waits until the worker has sequenced past `size`:
/// one append is enough, even one that commits while the worker is busy (no lost wake-ups).
async fn append_until_sequenced(store: &EventStore, size: u64) -> anyhow::Result<()> {
    store
        .append(
            &stream("household", "wake"),
            ExpectedVersion::Any,
            &metadata(None),
            vec![event("case-wake", &format!("event after {size}"))],
        )
        .await?;
    eventually(
        "the worker to sequence the one append",
        Duration::from_secs(10),
        || async { Ok(store.log_size().await? > size) },
    )
    .await
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

/// In the cluster the worker holding the lease runs in another process: an append here is
/// announced on core NATS and wakes the signals of every process that joined the subject —
/// and only local appends are announced, so two processes do not echo each other for ever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_append_in_one_process_wakes_the_workers_of_the_others() -> anyhow::Result<()> {
    let url = format!("nats://{}", sunshine_testkit::nats_address());
    let subject =
        sunshine_eventlog::delivery::Namespace::isolated(&uuid::Uuid::new_v4().to_string())
            .wake_subject();
    let (here, there) = (LogSignals::new(), LogSignals::new());
    let (client_here, client_there) = (
        async_nats::connect(&url).await?,
        async_nats::connect(&url).await?,
    );
    here.join_bus(&client_here, &subject).await?;
    there.join_bus(&client_there, &subject).await?;

    let mut woken_there = there.appended_waiter();
    here.notify_appended();
    tokio::time::timeout(Duration::from_secs(10), woken_there.wait())
        .await
        .map_err(|_| anyhow::anyhow!("the other process was not woken"))?;

    // Quiet afterwards: an announcement heard is not announced again.
    let mut later = there.appended_waiter();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut counted = 0;
    while tokio::time::timeout(Duration::from_millis(100), later.wait())
        .await
        .is_ok()
    {
        counted += 1;
        anyhow::ensure!(counted < 3, "the two processes echo each other");
    }
    Ok(())
}
