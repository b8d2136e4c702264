//! The global order and its evidence, on both backends: dense positions, signed checkpoints,
//! proofs that verify, a catch-up reader that never skips an event racing writers, and every
//! kind of tampering detected at its first bad position.

mod common;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use common::{
    Backend, disable_guards, event, fresh_store, metadata, sequence_all, sequencer, stream,
};
use rand::Rng as _;
use sunshine_eventlog::merkle;
use sunshine_eventlog::store::CommitCursor;
use sunshine_eventlog::verify::{self, ProblemKind};
use sunshine_eventlog::{EventStore, ExpectedVersion};

on_both_backends!(
    sequenced_events_get_dense_positions_and_verifiable_checkpoints,
    a_catch_up_reader_racing_writers_sees_every_event_once_in_order,
    an_altered_payload_is_found_at_its_position,
    a_deleted_event_is_found_at_its_position,
    a_truncated_tail_is_found_and_breaks_consistency,
    time_based_checkpoints_leave_the_every_n_grid_in_place,
    an_event_id_rewritten_or_malformed_is_found_at_its_position,
);

/// Appends `count` single-event commands spread over `streams` streams of one case each.
async fn fill(store: &EventStore, streams: usize, count: usize) -> anyhow::Result<()> {
    for index in 0..count {
        let target = stream("household", index % streams);
        store
            .append(
                &target,
                ExpectedVersion::Any,
                &metadata(None),
                vec![event(
                    &format!("case-{}", index % streams),
                    &format!("event {index}"),
                )],
            )
            .await?;
    }
    Ok(())
}

async fn sequenced_events_get_dense_positions_and_verifiable_checkpoints(
    backend: Backend,
) -> anyhow::Result<()> {
    let (store, _keep) = fresh_store(backend, 4).await?;
    let (mut sequencer, verifier) = sequencer(&store, 10);
    fill(&store, 3, 25).await?;
    assert_eq!(sequence_all(&mut sequencer, &store).await?, 25);
    sequencer.checkpoint_now().await?;

    let log = store.read_log(0, 1000).await?;
    let positions: Vec<u64> = log
        .iter()
        .filter_map(|recorded| recorded.log_position)
        .collect();
    assert_eq!(positions, (0..25).collect::<Vec<u64>>());

    let report = verify::verify_log(&store, &verifier).await?;
    assert_eq!(report.problem, None, "{report:?}");
    assert_eq!(report.entries, 25);
    assert_eq!(
        report.checkpoints_checked, 3,
        "checkpoints at 10, 20 and 25"
    );

    let (checkpoints, _) = verify::stored_checkpoints(&store, &verifier).await?;
    let latest = checkpoints.last().expect("a checkpoint");
    let earliest = checkpoints.first().expect("a checkpoint");
    assert_eq!((earliest.tree_size, latest.tree_size), (10, 25));
    for position in [0u64, 7, 24] {
        let proof = verify::inclusion_proof(&store, position, latest.tree_size).await?;
        let leaf = merkle::leaf_hash(&log[position as usize].hash);
        merkle::verify_inclusion(&leaf, position, latest.tree_size, &proof, &latest.root_hash)?;
    }
    let proof = verify::consistency_proof(&store, earliest.tree_size, latest.tree_size).await?;
    merkle::verify_consistency(
        earliest.tree_size,
        latest.tree_size,
        &earliest.root_hash,
        &latest.root_hash,
        &proof,
    )?;

    // Appending more and sequencing again continues the same tree.
    fill(&store, 2, 5).await?;
    assert_eq!(sequence_all(&mut sequencer, &store).await?, 30);
    let report = verify::verify_log(&store, &verifier).await?;
    assert_eq!((report.problem, report.entries), (None, 30));
    Ok(())
}

async fn a_catch_up_reader_racing_writers_sees_every_event_once_in_order(
    backend: Backend,
) -> anyhow::Result<()> {
    const WRITERS: usize = 8;
    const APPENDS_PER_WRITER: usize = 15;
    // `SUNSHINE_RACE_ITERATIONS=50 cargo test -p sunshine-eventlog --test sequencing` for a long soak.
    let iterations: usize = std::env::var("SUNSHINE_RACE_ITERATIONS")
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or(3);
    for iteration in 0..iterations {
        let (plain_store, _keep) = fresh_store(backend, 12).await?;
        // Each append sleeps 0–15 ms inside its transaction before committing, so commit order
        // differs from insertion order all the time.
        let store = plain_store
            .with_commit_delay(|| Duration::from_millis(rand::rng().random_range(0..15)));
        let (mut sequencer, verifier) = sequencer(&store, 40);

        let mut writers = Vec::new();
        for writer in 0..WRITERS {
            let store = store.clone();
            writers.push(tokio::spawn(async move {
                let mut committed = Vec::new();
                for append in 0..APPENDS_PER_WRITER {
                    // Two writers share each stream, so appends also conflict and retry.
                    let target = stream("household", writer / 2);
                    loop {
                        let events = vec![
                            event("case-race", &format!("w{writer} a{append} e0")),
                            event("case-race", &format!("w{writer} a{append} e1")),
                        ];
                        match store
                            .append(&target, ExpectedVersion::Any, &metadata(None), events)
                            .await
                        {
                            Ok(outcome) => {
                                committed.extend(
                                    outcome.events.iter().map(|recorded| recorded.event_id),
                                );
                                break;
                            }
                            Err(sunshine_eventlog::StoreError::Conflict { .. }) => continue,
                            Err(other) => return Err(anyhow::Error::from(other)),
                        }
                    }
                }
                Ok::<_, anyhow::Error>(committed)
            }));
        }

        // The reader and the sequencer run while the writers write.
        let total = WRITERS * APPENDS_PER_WRITER * 2;
        let mut cursor = CommitCursor::default();
        let mut seen = Vec::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        while seen.len() < total {
            let batch = store.read_committed_after(cursor, 7).await?;
            for entry in &batch {
                seen.push((
                    entry.event.event_id,
                    entry.event.stream_id.clone(),
                    entry.event.stream_version,
                ));
                cursor = entry.cursor;
            }
            sequencer.run_once().await?;
            anyhow::ensure!(
                tokio::time::Instant::now() < deadline,
                "reader saw only {} of {total}",
                seen.len()
            );
            if batch.is_empty() {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }
        let mut written = HashSet::new();
        for writer in writers {
            written.extend(writer.await??);
        }
        assert_eq!(written.len(), total);
        let seen_ids: HashSet<_> = seen.iter().map(|(event_id, _, _)| *event_id).collect();
        assert_eq!(
            seen_ids.len(),
            seen.len(),
            "iteration {iteration}: an event was seen twice"
        );
        assert_eq!(
            seen_ids, written,
            "iteration {iteration}: the reader missed an event"
        );
        let mut last_version: HashMap<String, u64> = HashMap::new();
        for (_, stream_id, version) in &seen {
            let previous = last_version
                .insert(stream_id.clone(), *version)
                .unwrap_or(0);
            assert_eq!(
                *version,
                previous + 1,
                "iteration {iteration}: {stream_id} out of order"
            );
        }
        // Nothing more appears behind the cursor later.
        assert!(store.read_committed_after(cursor, 10).await?.is_empty());

        assert_eq!(sequence_all(&mut sequencer, &store).await?, total as u64);
        sequencer.checkpoint_now().await?;
        let sequenced: Vec<_> = store
            .read_log(0, 10_000)
            .await?
            .iter()
            .map(|recorded| recorded.event_id)
            .collect();
        let read_order: Vec<_> = seen.iter().map(|(event_id, _, _)| *event_id).collect();
        assert_eq!(
            sequenced, read_order,
            "the log's order is the commit order the reader saw"
        );
        let report = verify::verify_log(&store, &verifier).await?;
        assert_eq!(report.problem, None);
    }
    Ok(())
}

async fn an_altered_payload_is_found_at_its_position(backend: Backend) -> anyhow::Result<()> {
    let (store, _keep) = fresh_store(backend, 4).await?;
    let (mut sequencer, verifier) = sequencer(&store, 5);
    fill(&store, 2, 12).await?;
    sequence_all(&mut sequencer, &store).await?;
    sequencer.checkpoint_now().await?;
    let victim = store.read_log(7, 1).await?.remove(0);

    disable_guards(&store, backend).await?;
    sqlx::query("UPDATE events SET payload = $1 WHERE sequence = $2")
        .bind(b"a larger amount".to_vec())
        .bind(victim.sequence)
        .execute(store.pool())
        .await?;
    let report = verify::verify_log(&store, &verifier).await?;
    let problem = report.problem.expect("the alteration is detected");
    assert_eq!(problem.position, 7);
    assert!(
        matches!(problem.kind, ProblemKind::AlteredEvent { .. }),
        "{problem}"
    );

    // Recomputing the altered event's hash as well still breaks the next link of its chain.
    let (_, fresh_verifier) = common::sequencer(&store, 5);
    let altered = store.read_log(7, 1).await?.remove(0);
    sqlx::query("UPDATE events SET hash = $1 WHERE sequence = $2")
        .bind(altered.recompute_hash().to_vec())
        .bind(victim.sequence)
        .execute(store.pool())
        .await?;
    let report = verify::verify_log(&store, &verifier).await?;
    let problem = report.problem.expect("the rewritten hash is detected");
    assert!(problem.position >= 7, "{problem}");
    assert!(
        matches!(
            problem.kind,
            ProblemKind::WrongLeafHash
                | ProblemKind::ChainBroken { .. }
                | ProblemKind::RootMismatch { .. }
        ),
        "{problem}"
    );
    // A checkpoint key the log never used signs nothing here.
    let foreign = verify::verify_log(&store, &fresh_verifier).await?;
    assert!(matches!(
        foreign.problem.map(|problem| problem.kind),
        Some(ProblemKind::BadCheckpoint { .. })
    ));
    Ok(())
}

async fn a_deleted_event_is_found_at_its_position(backend: Backend) -> anyhow::Result<()> {
    let (store, _keep) = fresh_store(backend, 4).await?;
    let (mut sequencer, verifier) = sequencer(&store, 5);
    fill(&store, 2, 12).await?;
    sequence_all(&mut sequencer, &store).await?;
    sequencer.checkpoint_now().await?;
    let victim = store.read_log(4, 1).await?.remove(0);

    disable_guards(&store, backend).await?;
    sqlx::query("DELETE FROM events WHERE sequence = $1")
        .bind(victim.sequence)
        .execute(store.pool())
        .await?;
    let problem = verify::verify_log(&store, &verifier)
        .await?
        .problem
        .expect("the deletion is detected");
    assert_eq!(
        (problem.position, problem.kind),
        (4, ProblemKind::MissingEvent)
    );

    // Deleting its log entry too leaves a hole in the positions.
    sqlx::query("DELETE FROM log_entries WHERE log_position = 4")
        .execute(store.pool())
        .await?;
    let problem = verify::verify_log(&store, &verifier)
        .await?
        .problem
        .expect("the hole is detected");
    assert_eq!(
        (problem.position, problem.kind),
        (4, ProblemKind::MissingEntry)
    );
    Ok(())
}

async fn a_truncated_tail_is_found_and_breaks_consistency(backend: Backend) -> anyhow::Result<()> {
    let (store, _keep) = fresh_store(backend, 4).await?;
    let (mut sequencer, verifier) = sequencer(&store, 10);
    fill(&store, 3, 20).await?;
    sequence_all(&mut sequencer, &store).await?;
    let (checkpoints, _) = verify::stored_checkpoints(&store, &verifier).await?;
    let early = checkpoints
        .iter()
        .find(|checkpoint| checkpoint.tree_size == 10)
        .expect("checkpoint at 10")
        .clone();
    let late = checkpoints
        .iter()
        .find(|checkpoint| checkpoint.tree_size == 20)
        .expect("checkpoint at 20")
        .clone();

    disable_guards(&store, backend).await?;
    sqlx::query("DELETE FROM events WHERE sequence IN (SELECT event_sequence FROM log_entries WHERE log_position >= 15)")
        .execute(store.pool())
        .await?;
    sqlx::query("DELETE FROM log_entries WHERE log_position >= 15")
        .execute(store.pool())
        .await?;
    let problem = verify::verify_log(&store, &verifier)
        .await?
        .problem
        .expect("the truncation is detected");
    assert_eq!(problem.position, 15);
    assert_eq!(
        problem.kind,
        ProblemKind::Truncated {
            checkpoint_size: 20,
            log_size: 15
        }
    );

    // The sequencer refuses to write over a truncated log.
    let (mut honest_sequencer, _) = common::sequencer(&store, 10);
    assert!(honest_sequencer.run_once().await.is_err());

    // The tamperer also removes the later checkpoints and appends five new events to reach
    // size 20 again. The auditor kept the late checkpoint from an earlier visit: the
    // consistency proof from the early checkpoint no longer leads to it.
    sqlx::query("DELETE FROM log_checkpoints WHERE tree_size > 15")
        .execute(store.pool())
        .await?;
    fill(&store, 3, 5).await?;
    let (mut tamperer_sequencer, _) = common::sequencer(&store, 1_000);
    sequence_all(&mut tamperer_sequencer, &store).await?;
    assert_eq!(store.log_size().await?, 20);
    let proof = verify::consistency_proof(&store, early.tree_size, late.tree_size).await?;
    let verified = merkle::verify_consistency(
        early.tree_size,
        late.tree_size,
        &early.root_hash,
        &late.root_hash,
        &proof,
    );
    assert!(
        verified.is_err(),
        "a consistency proof across the rewritten tail must fail"
    );
    let report = verify::verify_log_against(&store, &verifier, std::slice::from_ref(&late)).await?;
    let problem = report.problem.expect("the rewritten tail is detected");
    assert_eq!(problem.kind, ProblemKind::RootMismatch { tree_size: 20 });
    Ok(())
}

/// The stored checkpoints' tree sizes, in order.
async fn checkpoint_sizes(store: &EventStore) -> anyhow::Result<Vec<i64>> {
    Ok(
        sqlx::query_scalar("SELECT tree_size FROM log_checkpoints ORDER BY tree_size")
            .fetch_all(store.pool())
            .await?,
    )
}

async fn time_based_checkpoints_leave_the_every_n_grid_in_place(
    backend: Backend,
) -> anyhow::Result<()> {
    let (store, _keep) = fresh_store(backend, 4).await?;
    let seed = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
    let signer = sunshine_eventlog::checkpoint::CheckpointSigner::new(common::ORIGIN, seed)?;
    let verifier = signer.verifier();
    // A zero interval: every round that sequences anything is also due by time, so time-based
    // checkpoints happen between the multiples of 5.
    let mut sequencer = sunshine_eventlog::sequencer::Sequencer::new(
        store.clone(),
        common::ORIGIN,
        signer,
        sunshine_eventlog::sequencer::SequencerConfig {
            batch_size: 50,
            checkpoint_every: 5,
            checkpoint_interval: Duration::ZERO,
        },
    );
    fill(&store, 2, 3).await?;
    assert_eq!(sequence_all(&mut sequencer, &store).await?, 3);
    // (On PostgreSQL the horizon may hold an event back for a round, making 1 or 2 as well.)
    let before = checkpoint_sizes(&store).await?;
    assert_eq!(
        before.last(),
        Some(&3),
        "time-based checkpoints: {before:?}"
    );

    fill(&store, 2, 9).await?;
    assert_eq!(sequence_all(&mut sequencer, &store).await?, 12);
    let sizes = checkpoint_sizes(&store).await?;
    // 5 and 10, the multiples of N, whatever came in between; 12 by time at the end. Counting
    // N from the time-based checkpoint at 3 would have made 8 instead.
    assert!(
        sizes.contains(&5) && sizes.contains(&10),
        "checkpoints at {sizes:?}"
    );
    assert!(!sizes.contains(&8), "checkpoints at {sizes:?}");
    assert_eq!(sizes.last(), Some(&12), "checkpoints at {sizes:?}");
    let report = verify::verify_log(&store, &verifier).await?;
    assert_eq!(
        (report.problem, report.checkpoints_checked),
        (None, sizes.len())
    );
    Ok(())
}

async fn an_event_id_rewritten_or_malformed_is_found_at_its_position(
    backend: Backend,
) -> anyhow::Result<()> {
    let (store, _keep) = fresh_store(backend, 4).await?;
    let (mut sequencer, verifier) = sequencer(&store, 5);
    fill(&store, 2, 12).await?;
    sequence_all(&mut sequencer, &store).await?;
    sequencer.checkpoint_now().await?;
    let victim = store.read_log(3, 1).await?.remove(0);
    disable_guards(&store, backend).await?;

    // The same UUID in capitals: parsed, it is the same id; stored, it is other bytes.
    let upper = victim.event_id.hyphenated().to_string().to_uppercase();
    sqlx::query("UPDATE events SET event_id = $1 WHERE sequence = $2")
        .bind(upper.as_str())
        .bind(victim.sequence)
        .execute(store.pool())
        .await?;
    let report = verify::verify_log(&store, &verifier).await?;
    let problem = report.problem.expect("the rewritten id is detected");
    assert_eq!(
        (problem.position, problem.kind),
        (3, ProblemKind::AlteredEvent { event_id: upper })
    );

    // No UUID at all: reported at its position, and the rest of the log is still verified.
    sqlx::query("UPDATE events SET event_id = 'not-an-event-id' WHERE sequence = $1")
        .bind(victim.sequence)
        .execute(store.pool())
        .await?;
    let report = verify::verify_log(&store, &verifier).await?;
    assert_eq!((report.entries, report.events_checked), (12, 12));
    let problem = report.problem.expect("the malformed id is detected");
    assert_eq!(problem.position, 3);
    assert_eq!(
        problem.kind,
        ProblemKind::AlteredEvent {
            event_id: "not-an-event-id".into()
        }
    );
    Ok(())
}

/// An event committed after an older transaction began is held back (not ready, and said to
/// be waiting) until that transaction ends; then it is ready, and what the sequencer hands
/// the relay is exactly what the log reads back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_behind_an_open_transaction_is_held_back_until_it_ends() -> anyhow::Result<()> {
    let (store, _keep) = fresh_store(Backend::Postgres, 4).await?;
    let (mut sequencer, _verifier) = sequencer(&store, 100);
    // An older transaction with a transaction id, still open.
    let mut open = store.pool().begin().await?;
    sqlx::query("SELECT pg_current_xact_id()::text")
        .fetch_one(&mut *open)
        .await?;
    fill(&store, 1, 1).await?;

    let read = store.read_ready_after(CommitCursor::default(), 10).await?;
    assert!(read.ready.is_empty(), "handed out past an open transaction");
    assert!(read.held_back, "the committed event was not said to wait");
    let outcome = sequencer.run_once().await?;
    assert_eq!((outcome.sequenced, outcome.held_back), (0, true));
    assert!(sequencer.take_sequenced().is_empty());

    open.rollback().await?;
    // Other tests' transactions on the shared server may hold the horizon a moment longer.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let outcome = sequencer.run_once().await?;
        if outcome.sequenced == 1 {
            break;
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "never sequenced after the transaction ended"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(sequencer.take_sequenced(), store.read_log(0, 10).await?);
    assert_eq!(sequencer.tree_size(), Some(1));
    Ok(())
}
