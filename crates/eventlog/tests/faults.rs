//! Faults lose nothing: NATS going away while appends continue, and PostgreSQL dying in the
//! middle of an append. Each test runs servers of its own (never the shared ones) that it may
//! kill and restart.

mod common;

use std::time::Duration;

use common::{RecordingProjection, event, eventually, metadata, sequencer, stream};
use sunshine_eventlog::consumer::{Consumer, ConsumerConfig};
use sunshine_eventlog::delivery::Namespace;
use sunshine_eventlog::relay::Relay;
use sunshine_eventlog::worker::LogWorker;
use sunshine_eventlog::{EventStore, ExpectedVersion, StoreError};
use sunshine_platform::{ApiError, Shutdown};
use sunshine_testkit::{PrivateNats, PrivatePostgres, TestDatabase};

const PATIENCE: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appends_go_on_while_nats_is_down_and_every_event_arrives_once_after() -> anyhow::Result<()>
{
    let mut nats = PrivateNats::start().await?;
    let database = TestDatabase::create().await?;
    let store = EventStore::from_database(&database.connect(8).await?);
    store.migrate().await?;
    RecordingProjection::create_table(&store).await?;

    let client = async_nats::ConnectOptions::new()
        .retry_on_initial_connect()
        .connect(nats.url())
        .await?;
    let jetstream = async_nats::jetstream::new(client);
    let namespace = Namespace::isolated("faults");
    let (sequencer, _) = sequencer(&store, 10);
    let relay = Relay::new(store.clone(), jetstream.clone(), namespace.clone(), 16);
    let worker = LogWorker::new(
        store.clone(),
        sequencer,
        Some(relay),
        Duration::from_millis(25),
        store.signals().clone(),
    );
    let projection = RecordingProjection::new("nats-outage");
    let config = ConsumerConfig {
        namespace,
        retry_delay: Duration::from_millis(50),
        ..ConsumerConfig::default()
    };
    let consumer = Consumer::new(store.clone(), projection.clone(), config);
    let (trigger, shutdown) = Shutdown::new();
    let worker_task = tokio::spawn(worker.run(shutdown.clone()));
    let consumer_task = {
        let consumer = consumer.clone();
        let jetstream = jetstream.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move { consumer.run_jetstream(jetstream, shutdown).await })
    };

    let append = |index: usize| {
        let store = store.clone();
        async move {
            store
                .append(
                    &stream("household", index % 4),
                    ExpectedVersion::Any,
                    &metadata(None),
                    vec![event("case-outage", &format!("event {index}"))],
                )
                .await
        }
    };
    for index in 0..20 {
        append(index).await?;
    }
    eventually("the first 20 events applied", PATIENCE, || async {
        Ok(projection.counts(&store).await? == (20, 20))
    })
    .await?;

    nats.kill().await?;
    // The log is the record: appends do not need the bus.
    for index in 20..50 {
        append(index).await.map_err(|error| {
            anyhow::anyhow!("append {index} failed while NATS was down: {error}")
        })?;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    nats.restart().await?;

    eventually(
        "all 50 events applied after NATS returned",
        PATIENCE,
        || async { Ok(projection.counts(&store).await? == (50, 50)) },
    )
    .await?;
    trigger.trigger();
    worker_task.await?;
    consumer_task.await?;
    assert_eq!(
        projection.counts(&store).await?,
        (50, 50),
        "each event exactly once"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_dying_mid_append_leaves_no_half_written_event() -> anyhow::Result<()> {
    let server = PrivatePostgres::start().await?;
    let database = TestDatabase::create_on(&server.address()).await?;
    let connected = database.connect(4).await?;
    let plain_store = EventStore::from_database(&connected);
    plain_store.migrate().await?;
    plain_store
        .append(
            &stream("household", "h1"),
            ExpectedVersion::NoStream,
            &metadata(None),
            vec![event("case-1", "before")],
        )
        .await?;

    // The next append holds its transaction open for a while before committing; the server
    // dies in that window.
    let slow_store = plain_store
        .clone()
        .with_commit_delay(|| Duration::from_millis(800));
    let events: Vec<_> = (0..50)
        .map(|index| event("case-1", &format!("batch {index}")))
        .collect();
    let in_flight = tokio::spawn(async move {
        slow_store
            .append(
                &stream("household", "h1"),
                ExpectedVersion::Exact(1),
                &metadata(Some("cmd-batch")),
                events,
            )
            .await
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    server.stop_immediately()?;
    let outcome = tokio::time::timeout(Duration::from_secs(30), in_flight).await??;
    let error = outcome.expect_err("an append whose server died cannot succeed");
    assert!(matches!(error, StoreError::Database(_)), "{error:?}");
    let status = tonic::Status::from(ApiError::from(error));
    assert!(
        matches!(
            status.code(),
            tonic::Code::Unavailable | tonic::Code::Internal
        ),
        "{status:?}"
    );

    server.start_again().await?;
    // The pool reconnects; the half-done append left nothing behind.
    let mut recovered = false;
    for _ in 0..50 {
        if connected.ping().await {
            recovered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(recovered, "the pool reconnects after the restart");
    let events = plain_store
        .read_stream(&stream("household", "h1"), 1)
        .await?;
    assert_eq!(
        events.len(),
        1,
        "all or nothing: none of the 50 events was written"
    );
    let commands: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM event_commands")
        .fetch_one(plain_store.pool())
        .await?;
    assert_eq!(commands, 0);

    // The client retries the same command: it is written once, whole.
    let retry: Vec<_> = (0..50)
        .map(|index| event("case-1", &format!("batch {index}")))
        .collect();
    let outcome = plain_store
        .append(
            &stream("household", "h1"),
            ExpectedVersion::Exact(1),
            &metadata(Some("cmd-batch")),
            retry,
        )
        .await?;
    assert_eq!(
        (
            outcome.first_version,
            outcome.last_version,
            outcome.deduplicated
        ),
        (2, 51, false)
    );
    let (mut sequencer, verifier) = sequencer(&plain_store, 100);
    common::sequence_all(&mut sequencer, &plain_store).await?;
    sequencer.checkpoint_now().await?;
    let report = sunshine_eventlog::verify::verify_log(&plain_store, &verifier).await?;
    assert_eq!((report.problem, report.entries), (None, 51));
    connected.close().await;
    drop(database);
    Ok(())
}
