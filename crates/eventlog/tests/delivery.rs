//! Delivery: every event reaches every consumer's projection exactly once, through JetStream
//! (cluster) or the log itself (embedded), however often it is delivered; poison is parked
//! and replayable without blocking the rest; a projection can be rebuilt from position 0.

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::{
    Backend, RecordingProjection, event, eventually, fresh_store, metadata, sequencer, stream,
};
use sunshine_eventlog::consumer::{Consumer, ConsumerConfig, Processed};
use sunshine_eventlog::delivery::Namespace;
use sunshine_eventlog::relay::Relay;
use sunshine_eventlog::worker::LogWorker;
use sunshine_eventlog::{EventStore, ExpectedVersion};
use sunshine_platform::Shutdown;

const PATIENCE: Duration = Duration::from_secs(30);

on_both_backends!(
    log_delivery_applies_each_event_once_parks_poison_and_rebuilds,
    events_delivered_out_of_order_are_applied_in_log_order,
    a_second_delivery_racing_the_first_applies_nothing_twice,
);

async fn append_events(
    store: &EventStore,
    count: usize,
    poison_at: Option<usize>,
) -> anyhow::Result<()> {
    for index in 0..count {
        let text = if Some(index) == poison_at {
            "poison".to_owned()
        } else {
            format!("event {index}")
        };
        store
            .append(
                &stream("household", index % 3),
                ExpectedVersion::Any,
                &metadata(None),
                vec![event(&format!("case-{}", index % 3), &text)],
            )
            .await?;
    }
    Ok(())
}

fn fast_consumer_config(namespace: Namespace) -> ConsumerConfig {
    ConsumerConfig {
        namespace,
        max_attempts: 3,
        retry_delay: Duration::from_millis(50),
        batch_size: 7,
        poll_interval: Duration::from_millis(20),
        ack_wait: Duration::from_secs(2),
    }
}

async fn log_delivery_applies_each_event_once_parks_poison_and_rebuilds(
    backend: Backend,
) -> anyhow::Result<()> {
    let (store, _keep) = fresh_store(backend, 6).await?;
    RecordingProjection::create_table(&store).await?;
    let projection = RecordingProjection::new("household-list");
    let consumer = Consumer::new(
        store.clone(),
        projection.clone(),
        fast_consumer_config(Namespace::default()),
    );
    let (sequencer, _verifier) = sequencer(&store, 10);
    let worker = LogWorker::new(
        store.clone(),
        sequencer,
        None,
        Duration::from_millis(20),
        store.signals().clone(),
    );
    let wake = worker.signals();
    let (trigger, shutdown) = Shutdown::new();
    let worker_task = tokio::spawn(worker.run(shutdown.clone()));
    let consumer_task = {
        let consumer = consumer.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move { consumer.run_from_log(wake, shutdown).await })
    };

    append_events(&store, 30, Some(11)).await?;
    eventually("29 applied and the poison parked", PATIENCE, || async {
        Ok(projection.counts(&store).await? == (29, 29)
            && consumer.dead_letters().await?.len() == 1)
    })
    .await?;
    let parked = consumer.dead_letters().await?.remove(0);
    assert_eq!((parked.log_position, parked.attempts), (11, 3));
    assert!(parked.last_error.contains("poison"));

    // The cause is fixed; the parked event is replayed.
    projection.poisoned.store(false, Ordering::SeqCst);
    let poison_id = uuid::Uuid::parse_str(&parked.event_id)?;
    assert_eq!(
        consumer.replay_dead_letter(poison_id).await?,
        Processed::Applied
    );
    assert_eq!(
        consumer.replay_dead_letter(poison_id).await?,
        Processed::AlreadyProcessed
    );
    assert!(consumer.dead_letters().await?[0].replayed_at_us.is_some());
    assert_eq!(projection.counts(&store).await?, (30, 30));

    // Delivering everything again changes nothing.
    for recorded in store.read_log(0, 100).await? {
        assert_eq!(
            consumer.process(&recorded).await?,
            Processed::AlreadyProcessed
        );
    }
    trigger.trigger();
    worker_task.await?;
    consumer_task.await?;

    // A rebuild from position 0 gives the same projection.
    assert_eq!(consumer.rebuild().await?, 30);
    assert_eq!(projection.counts(&store).await?, (30, 30));
    Ok(())
}

/// The JetStream stream of a test's own namespace, deleted at the end.
async fn jetstream_namespace(
    url: &str,
) -> anyhow::Result<(async_nats::jetstream::Context, Namespace)> {
    let client = async_nats::connect(url).await?;
    let jetstream = async_nats::jetstream::new(client);
    let namespace = Namespace::isolated(&uuid::Uuid::now_v7().simple().to_string());
    Ok((jetstream, namespace))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_stopped_between_publish_and_cursor_causes_no_duplicate_effect()
-> anyhow::Result<()> {
    let (store, _keep) = fresh_store(Backend::Postgres, 6).await?;
    RecordingProjection::create_table(&store).await?;
    let (jetstream, namespace) =
        jetstream_namespace(&format!("nats://{}", sunshine_testkit::nats_address())).await?;
    let (mut sequencer, _) = sequencer(&store, 10);
    let mut relay = Relay::new(store.clone(), jetstream.clone(), namespace.clone(), 8);

    append_events(&store, 20, None).await?;
    common::sequence_all(&mut sequencer, &store).await?;
    relay.fail_once_after_publish();
    assert!(
        relay.run_once().await.is_err(),
        "the first batch is published but the cursor is not advanced"
    );
    assert_eq!(
        store.cursor(sunshine_eventlog::relay::RELAY_CURSOR).await?,
        0
    );
    // A new relay (the next lease holder) publishes the same batch again, then the rest.
    let mut successor = Relay::new(store.clone(), jetstream.clone(), namespace.clone(), 8);
    while successor.run_once().await? > 0 {}
    assert_eq!(
        store.cursor(sunshine_eventlog::relay::RELAY_CURSOR).await?,
        20
    );

    let projection = RecordingProjection::new("relay-crash");
    let consumer = Consumer::new(
        store.clone(),
        projection.clone(),
        fast_consumer_config(namespace.clone()),
    );
    let (trigger, shutdown) = Shutdown::new();
    let consumer_task = {
        let consumer = consumer.clone();
        let jetstream = jetstream.clone();
        tokio::spawn(async move { consumer.run_jetstream(jetstream, shutdown).await })
    };
    eventually("20 events applied", PATIENCE, || async {
        Ok(projection.counts(&store).await? == (20, 20))
    })
    .await?;
    // JetStream itself dropped the re-published copies (Nats-Msg-Id).
    let mut info = jetstream.get_stream(&namespace.stream).await?;
    assert_eq!(info.info().await?.state.messages, 20);
    trigger.trigger();
    consumer_task.await?;
    assert_eq!(projection.counts(&store).await?, (20, 20));
    jetstream.delete_stream(&namespace.stream).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_envelope_numbers_the_global_order_from_zero_like_the_merkle_tree() -> anyhow::Result<()>
{
    let (store, _keep) = fresh_store(Backend::Postgres, 4).await?;
    let (jetstream, namespace) =
        jetstream_namespace(&format!("nats://{}", sunshine_testkit::nats_address())).await?;
    let (mut sequencer, _) = sequencer(&store, 3);
    append_events(&store, 3, None).await?;
    common::sequence_all(&mut sequencer, &store).await?;
    let mut relay = Relay::new(store.clone(), jetstream.clone(), namespace.clone(), 8);
    assert_eq!(relay.run_once().await?, 3);

    let stream = jetstream.get_stream(&namespace.stream).await?;
    for (message_sequence, position) in [(1u64, 0u64), (2, 1), (3, 2)] {
        let message = stream.get_raw_message(message_sequence).await?;
        let envelope =
            <sunshine_proto::v1::EventEnvelope as prost::Message>::decode(message.payload.clone())?;
        // The first event of the log is at global position 0: its log position, its header,
        // and the leaf index its inclusion proof is made for.
        assert_eq!(envelope.global_position, position);
        let header = message
            .headers
            .get(sunshine_eventlog::delivery::HEADER_LOG_POSITION)
            .map(|value| value.as_str().to_owned());
        assert_eq!(header, Some(position.to_string()));
        let decoded = sunshine_eventlog::delivery::decode(&message.payload)?;
        assert_eq!(decoded.log_position, Some(position));
        let proof = sunshine_eventlog::verify::inclusion_proof(&store, position, 3).await?;
        let root = sunshine_eventlog::merkle::root_from_leaf_hashes(
            &store
                .read_log(0, 3)
                .await?
                .iter()
                .map(|event| sunshine_eventlog::merkle::leaf_hash(&event.hash))
                .collect::<Vec<_>>(),
        );
        sunshine_eventlog::merkle::verify_inclusion(
            &sunshine_eventlog::merkle::leaf_hash(&decoded.hash),
            envelope.global_position,
            3,
            &proof,
            &root,
        )?;
    }
    jetstream.delete_stream(&namespace.stream).await?;
    Ok(())
}

/// Applies events only in increasing log position; anything else is an error (and a test
/// failure: the consumer would count it as a failed attempt).
#[derive(Debug, Clone, Default)]
struct InOrder {
    seen: std::sync::Arc<std::sync::Mutex<Vec<u64>>>,
}

impl sunshine_eventlog::consumer::Projection for InOrder {
    fn name(&self) -> &str {
        "in-order"
    }

    fn apply<'a>(
        &'a self,
        _connection: &'a mut sqlx::AnyConnection,
        event: &'a sunshine_eventlog::RecordedEvent,
    ) -> sunshine_eventlog::consumer::HandlerFuture<'a> {
        Box::pin(async move {
            let position = event.log_position.unwrap_or_default();
            let mut seen = self
                .seen
                .lock()
                .map_err(|_| sunshine_eventlog::consumer::HandlerError("poisoned lock".into()))?;
            if seen.last().is_some_and(|last| *last >= position) {
                return Err(sunshine_eventlog::consumer::HandlerError(format!(
                    "position {position} after {:?}",
                    seen.last()
                )));
            }
            seen.push(position);
            Ok(())
        })
    }

    fn reset<'a>(
        &'a self,
        _connection: &'a mut sqlx::AnyConnection,
    ) -> sunshine_eventlog::consumer::HandlerFuture<'a> {
        Box::pin(async move {
            self.seen
                .lock()
                .map_err(|_| sunshine_eventlog::consumer::HandlerError("poisoned lock".into()))?
                .clear();
            Ok(())
        })
    }
}

/// JetStream redelivers a message a dead process held after `ack_wait`, behind newer ones; a
/// consumer handed a later event first fills the gap from the log, in order, and the late
/// message then finds it done.
async fn events_delivered_out_of_order_are_applied_in_log_order(
    backend: Backend,
) -> anyhow::Result<()> {
    let (store, _keep) = fresh_store(backend, 6).await?;
    append_events(&store, 12, None).await?;
    let (mut sequencer, _verifier) = sequencer(&store, 100);
    // The horizon may lag while other tests' transactions run on the server.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while store.log_size().await? < 12 {
        anyhow::ensure!(tokio::time::Instant::now() < deadline, "not sequenced");
        sequencer.run_until_idle().await?;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let log = store.read_log(0, 100).await?;
    assert_eq!(log.len(), 12);
    let projection = InOrder::default();
    let consumer = Consumer::new(
        store.clone(),
        projection.clone(),
        fast_consumer_config(Namespace::default()),
    );

    // Position 7 arrives first: 0..=7 are applied, in order.
    assert_eq!(consumer.process(&log[7]).await?, Processed::Applied);
    assert_eq!(consumer.position().await?, 8);
    // The late ones are done already.
    for late in [&log[3], &log[0], &log[7]] {
        assert_eq!(consumer.process(late).await?, Processed::AlreadyProcessed);
    }
    // A batch with holes and duplicates, out of order.
    let jumbled = vec![
        log[11].clone(),
        log[9].clone(),
        log[2].clone(),
        log[9].clone(),
    ];
    let advanced = consumer.advance(&jumbled).await?;
    assert_eq!((advanced.from_position, advanced.next_position), (8, 12));
    assert_eq!(advanced.applied, 4);
    assert!(advanced.failed.is_none() && advanced.parked.is_empty());
    assert_eq!(
        *projection.seen.lock().expect("lock"),
        (0..12).collect::<Vec<u64>>()
    );
    assert!(consumer.dead_letters().await?.is_empty());

    // A rebuild gives the same projection.
    assert_eq!(consumer.rebuild().await?, 12);
    assert_eq!(
        *projection.seen.lock().expect("lock"),
        (0..12).collect::<Vec<u64>>()
    );
    Ok(())
}

/// Two deliveries of one consumer (two replicas of a service, or a redelivery racing the first)
/// share the cursor: the one that finds it moved under it goes on from where the other left
/// off, and no event is applied twice.
async fn a_second_delivery_racing_the_first_applies_nothing_twice(
    backend: Backend,
) -> anyhow::Result<()> {
    let (store, _keep) = fresh_store(backend, 6).await?;
    append_events(&store, 10, None).await?;
    let (mut sequencer, _verifier) = sequencer(&store, 100);
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while store.log_size().await? < 10 {
        anyhow::ensure!(tokio::time::Instant::now() < deadline, "not sequenced");
        sequencer.run_until_idle().await?;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let log = store.read_log(0, 100).await?;
    let projection = InOrder::default();
    let config = fast_consumer_config(Namespace::default());
    let first = Consumer::new(store.clone(), projection.clone(), config.clone());
    let second = Consumer::new(store.clone(), projection.clone(), config);
    // The second replica remembers position 0; the first then moves the cursor to 6.
    assert_eq!(second.position().await?, 0);
    assert_eq!(first.advance(&log[..6]).await?.next_position, 6);
    // The second one's compare-and-set fails, and it goes on from 6.
    let advanced = second.advance(&log).await?;
    assert_eq!(advanced.next_position, 10);
    assert_eq!(advanced.applied, 4);
    assert_eq!(
        *projection.seen.lock().expect("lock"),
        (0..10).collect::<Vec<u64>>(),
        "every event once, in order"
    );
    Ok(())
}
