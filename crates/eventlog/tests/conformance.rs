//! The store's contract, run identically on PostgreSQL and SQLite: append, conflicts,
//! idempotent retries, reading by stream, by case and in commit order, and the database's own
//! refusal to change what was written.

mod common;

use common::{Backend, event, fresh_store, metadata, stream};
use sqlx::Row as _;
use sunshine_eventlog::record::GENESIS_HASH;
use sunshine_eventlog::store::CommitCursor;
use sunshine_eventlog::{AppendGuard, EventSource, ExpectedVersion, GuardedAppend, StoreError};

on_both_backends!(
    appends_and_reads_back_by_stream_case_and_commit_order,
    a_wrong_expected_version_is_a_conflict_and_writes_nothing,
    a_retried_command_appends_once,
    a_command_id_reused_for_other_content_is_refused_and_writes_nothing,
    a_guard_commits_and_rolls_back_with_its_append,
    a_streamed_append_is_one_append_made_batch_by_batch,
    concurrent_writers_to_one_stream_cannot_both_win,
    a_replica_with_a_stale_view_gets_a_conflict,
    invalid_appends_are_refused_whole,
    an_event_over_the_payload_bound_is_refused_whole,
    the_database_refuses_to_change_the_log,
);

async fn count_events(store: &sunshine_eventlog::EventStore) -> anyhow::Result<i64> {
    Ok(sqlx::query_scalar("SELECT COUNT(*) FROM events")
        .fetch_one(store.pool())
        .await?)
}

async fn appends_and_reads_back_by_stream_case_and_commit_order(
    backend: Backend,
) -> anyhow::Result<()> {
    let (store, _keep) = fresh_store(backend, 4).await?;
    let household = stream("household", "h1");
    let application = stream("application", "a1");

    let first = store
        .append(
            &household,
            ExpectedVersion::NoStream,
            &metadata(None),
            vec![
                event("case-1", "registered"),
                event("case-1", "member added"),
                event("case-1", "income declared"),
            ],
        )
        .await?;
    assert_eq!(
        (first.first_version, first.last_version, first.deduplicated),
        (1, 3, false)
    );
    store
        .append(
            &application,
            ExpectedVersion::NoStream,
            &metadata(None),
            vec![event("case-1", "submitted"), event("case-2", "other case")],
        )
        .await?;
    let next = store
        .append(
            &household,
            ExpectedVersion::Exact(3),
            &metadata(None),
            vec![event("case-1", "moved")],
        )
        .await?;
    assert_eq!((next.first_version, next.last_version), (4, 4));

    let household_events = store.read_stream(&household, 1).await?;
    let versions: Vec<u64> = household_events
        .iter()
        .map(|recorded| recorded.stream_version)
        .collect();
    assert_eq!(versions, [1, 2, 3, 4]);
    assert_eq!(household_events[0].previous_hash, GENESIS_HASH);
    for pair in household_events.windows(2) {
        assert_eq!(
            pair[1].previous_hash, pair[0].hash,
            "the chain links each event to the one before"
        );
    }
    for recorded in &household_events {
        assert_eq!(recorded.recompute_hash(), recorded.hash);
        assert_eq!(recorded.metadata()?.actor.subject, "clerk-1");
    }
    assert_eq!(store.read_stream(&household, 3).await?.len(), 2);
    assert_eq!(store.stream_version(&household).await?, 4);

    let case_file = store.read_case("case-1").await?;
    let payloads: Vec<&[u8]> = case_file
        .iter()
        .map(|recorded| recorded.payload.as_slice())
        .collect();
    assert_eq!(
        payloads,
        [
            b"registered".as_slice(),
            b"member added",
            b"income declared",
            b"submitted",
            b"moved"
        ]
    );

    // Another transaction anywhere on the server may hold the horizon back for a moment.
    let committed = common::read_committed_until(&store, CommitCursor::default(), 6).await?;
    assert_eq!(committed.len(), 6);
    let cursors: Vec<CommitCursor> = committed.iter().map(|entry| entry.cursor).collect();
    let mut sorted = cursors.clone();
    sorted.sort();
    assert_eq!(cursors, sorted, "commit order is (tx_id, sequence) order");
    let after_third = common::read_committed_until(&store, committed[2].cursor, 3).await?;
    assert_eq!(after_third.len(), 3);
    assert_eq!(after_third[0].event.event_id, committed[3].event.event_id);
    Ok(())
}

async fn a_wrong_expected_version_is_a_conflict_and_writes_nothing(
    backend: Backend,
) -> anyhow::Result<()> {
    let (store, _keep) = fresh_store(backend, 4).await?;
    let household = stream("household", "h1");
    store
        .append(
            &household,
            ExpectedVersion::NoStream,
            &metadata(None),
            vec![event("c", "1"), event("c", "2")],
        )
        .await?;

    let again = store
        .append(
            &household,
            ExpectedVersion::NoStream,
            &metadata(None),
            vec![event("c", "x")],
        )
        .await;
    assert!(
        matches!(again, Err(StoreError::Conflict { actual: 2, .. })),
        "{again:?}"
    );
    let stale = store
        .append(
            &household,
            ExpectedVersion::Exact(1),
            &metadata(None),
            vec![event("c", "x")],
        )
        .await;
    assert!(
        matches!(stale, Err(StoreError::Conflict { actual: 2, .. })),
        "{stale:?}"
    );
    let ahead = store
        .append(
            &household,
            ExpectedVersion::Exact(5),
            &metadata(None),
            vec![event("c", "x")],
        )
        .await;
    assert!(
        matches!(ahead, Err(StoreError::Conflict { .. })),
        "{ahead:?}"
    );
    let missing = store
        .append(
            &stream("household", "h2"),
            ExpectedVersion::Exact(1),
            &metadata(None),
            vec![event("c", "x")],
        )
        .await;
    assert!(
        matches!(missing, Err(StoreError::Conflict { actual: 0, .. })),
        "{missing:?}"
    );
    assert_eq!(count_events(&store).await?, 2);

    let status = tonic::Status::from(sunshine_platform::ApiError::from(
        stale.expect_err("conflict"),
    ));
    assert_eq!(status.code(), tonic::Code::Aborted);

    let any = store
        .append(
            &household,
            ExpectedVersion::Any,
            &metadata(None),
            vec![event("c", "3")],
        )
        .await?;
    assert_eq!(any.last_version, 3);
    Ok(())
}

async fn a_retried_command_appends_once(backend: Backend) -> anyhow::Result<()> {
    let (store, _keep) = fresh_store(backend, 4).await?;
    let household = stream("household", "h1");
    let command = metadata(Some("command-42"));
    let events = vec![event("c", "registered"), event("c", "member added")];

    let first = store
        .append(
            &household,
            ExpectedVersion::NoStream,
            &command,
            events.clone(),
        )
        .await?;
    // The client did not hear the answer and sends the same command again: same answer.
    let retry = store
        .append(
            &household,
            ExpectedVersion::NoStream,
            &command,
            events.clone(),
        )
        .await?;
    assert!(retry.deduplicated);
    assert_eq!(
        (retry.first_version, retry.last_version),
        (first.first_version, first.last_version)
    );
    let first_ids: Vec<_> = first
        .events
        .iter()
        .map(|recorded| recorded.event_id)
        .collect();
    let retry_ids: Vec<_> = retry
        .events
        .iter()
        .map(|recorded| recorded.event_id)
        .collect();
    assert_eq!(first_ids, retry_ids);
    assert_eq!(count_events(&store).await?, 2);

    // Even with fresh event ids, the command id decides.
    let regenerated = vec![event("c", "registered"), event("c", "member added")];
    let third = store
        .append(&household, ExpectedVersion::Exact(0), &command, regenerated)
        .await?;
    assert!(third.deduplicated);
    assert_eq!(count_events(&store).await?, 2);

    let elsewhere = store
        .append(
            &stream("household", "h2"),
            ExpectedVersion::NoStream,
            &command,
            events,
        )
        .await;
    assert!(
        matches!(elsewhere, Err(StoreError::CommandReused { .. })),
        "{elsewhere:?}"
    );

    // Concurrent retries of one new command: exactly one append.
    let racing = metadata(Some("command-43"));
    let mut tasks = Vec::new();
    for _ in 0..6 {
        let store = store.clone();
        let racing = racing.clone();
        let target = stream("household", "h3");
        tasks.push(tokio::spawn(async move {
            store
                .append(
                    &target,
                    ExpectedVersion::Any,
                    &racing,
                    vec![event("c", "once")],
                )
                .await
        }));
    }
    let mut written = 0;
    for task in tasks {
        let outcome = task.await??;
        if !outcome.deduplicated {
            written += 1;
        }
        assert_eq!(outcome.last_version, 1);
    }
    assert_eq!(written, 1);
    assert_eq!(
        store
            .read_stream(&stream("household", "h3"), 1)
            .await?
            .len(),
        1
    );
    Ok(())
}

async fn concurrent_writers_to_one_stream_cannot_both_win(backend: Backend) -> anyhow::Result<()> {
    let (store, _keep) = fresh_store(backend, 8).await?;
    let household = stream("household", "h1");
    store
        .append(
            &household,
            ExpectedVersion::NoStream,
            &metadata(None),
            vec![event("c", "registered")],
        )
        .await?;
    let mut tasks = Vec::new();
    for writer in 0..8 {
        let store = store.clone();
        let target = household.clone();
        tasks.push(tokio::spawn(async move {
            store
                .append(
                    &target,
                    ExpectedVersion::Exact(1),
                    &metadata(None),
                    vec![event("c", &format!("change by {writer}"))],
                )
                .await
        }));
    }
    let mut winners = 0;
    let mut conflicts = 0;
    for task in tasks {
        match task.await? {
            Ok(_) => winners += 1,
            Err(StoreError::Conflict { .. }) => conflicts += 1,
            Err(other) => anyhow::bail!("unexpected error: {other}"),
        }
    }
    assert_eq!((winners, conflicts), (1, 7));
    assert_eq!(store.stream_version(&household).await?, 2);
    Ok(())
}

async fn a_replica_with_a_stale_view_gets_a_conflict(backend: Backend) -> anyhow::Result<()> {
    let (store, _keep) = fresh_store(backend, 4).await?;
    // Two replicas of a service: separate stores (separate remembered heads), one database.
    let other_replica =
        sunshine_eventlog::EventStore::new(store.pool().clone(), store.kind(), "another replica");
    let household = stream("household", "h1");
    store
        .append(
            &household,
            ExpectedVersion::NoStream,
            &metadata(None),
            vec![event("c", "1"), event("c", "2")],
        )
        .await?;
    other_replica
        .append(
            &household,
            ExpectedVersion::Exact(2),
            &metadata(None),
            vec![event("c", "3 by the other replica")],
        )
        .await?;
    // This replica still believes the head is version 2.
    let stale = store
        .append(
            &household,
            ExpectedVersion::Exact(2),
            &metadata(None),
            vec![event("c", "3 stale")],
        )
        .await;
    assert!(
        matches!(stale, Err(StoreError::Conflict { actual: 3, .. })),
        "{stale:?}"
    );
    let events = store.read_stream(&household, 1).await?;
    assert_eq!(events.len(), 3);
    assert_eq!(events[2].payload, b"3 by the other replica");
    // Having read the stream, it appends on the true head.
    let next = store
        .append(
            &household,
            ExpectedVersion::Exact(3),
            &metadata(None),
            vec![event("c", "4")],
        )
        .await?;
    assert_eq!(next.last_version, 4);
    let chain = store.read_stream(&household, 1).await?;
    assert_eq!(chain[3].previous_hash, chain[2].hash);
    Ok(())
}

async fn invalid_appends_are_refused_whole(backend: Backend) -> anyhow::Result<()> {
    let (store, _keep) = fresh_store(backend, 2).await?;
    let household = stream("household", "h1");
    let empty = store
        .append(&household, ExpectedVersion::Any, &metadata(None), vec![])
        .await;
    assert!(matches!(empty, Err(StoreError::Invalid(_))), "{empty:?}");
    let no_case = store
        .append(
            &household,
            ExpectedVersion::Any,
            &metadata(None),
            vec![event("c", "ok"), event(" ", "bad")],
        )
        .await;
    assert!(
        matches!(&no_case, Err(StoreError::Invalid(message)) if message.contains("events[1].case_id")),
        "{no_case:?}"
    );
    let twice = event("c", "same id");
    let duplicate_ids = store
        .append(
            &household,
            ExpectedVersion::Any,
            &metadata(None),
            vec![twice.clone(), twice.clone()],
        )
        .await;
    assert!(
        matches!(duplicate_ids, Err(StoreError::DuplicateEventId(_))),
        "{duplicate_ids:?}"
    );
    store
        .append(
            &household,
            ExpectedVersion::Any,
            &metadata(None),
            vec![twice.clone()],
        )
        .await?;
    let reused_id = store
        .append(
            &stream("household", "h2"),
            ExpectedVersion::Any,
            &metadata(None),
            vec![twice],
        )
        .await;
    assert!(
        matches!(reused_id, Err(StoreError::DuplicateEventId(_))),
        "{reused_id:?}"
    );
    assert_eq!(count_events(&store).await?, 1);
    Ok(())
}

/// No service can append an event the bus could not carry: the relay publishes in log order,
/// so one such event would hold back every later event of every service.
async fn an_event_over_the_payload_bound_is_refused_whole(backend: Backend) -> anyhow::Result<()> {
    let (store, _keep) = fresh_store(backend, 2).await?;
    assert_eq!(
        store.max_event_payload_bytes(),
        sunshine_platform::config::DEFAULT_MAX_EVENT_PAYLOAD_BYTES
    );
    let household = stream("household", "h1");
    let at_bound = |bytes: usize| {
        sunshine_eventlog::NewEvent::new("c", "example.v1.TestEvent", 1, vec![b'x'; bytes])
    };
    let default_bound = store.max_event_payload_bytes();
    let too_large = store
        .append(
            &household,
            ExpectedVersion::NoStream,
            &metadata(None),
            vec![event("c", "small"), at_bound(default_bound + 1)],
        )
        .await;
    assert!(
        matches!(
            &too_large,
            Err(StoreError::EventTooLarge { index: 1, bytes, limit, .. })
                if *bytes == default_bound + 1 && *limit == default_bound
        ),
        "{too_large:?}"
    );
    assert_eq!(
        count_events(&store).await?,
        0,
        "nothing of a refused append is written"
    );
    let message = too_large
        .err()
        .map(|error| error.to_string())
        .unwrap_or_default();
    assert!(message.contains("over the log's limit"), "{message}");

    // The bound is the configured one, and exactly the bound is taken.
    let store = store.with_max_event_payload_bytes(1024);
    let over = store
        .append(
            &household,
            ExpectedVersion::NoStream,
            &metadata(None),
            vec![at_bound(1025)],
        )
        .await;
    assert!(
        matches!(over, Err(StoreError::EventTooLarge { limit: 1024, .. })),
        "{over:?}"
    );
    store
        .append(
            &household,
            ExpectedVersion::NoStream,
            &metadata(None),
            vec![at_bound(1024)],
        )
        .await?;
    assert_eq!(count_events(&store).await?, 1);
    Ok(())
}

async fn the_database_refuses_to_change_the_log(backend: Backend) -> anyhow::Result<()> {
    let (store, _keep) = fresh_store(backend, 2).await?;
    let household = stream("household", "h1");
    store
        .append(
            &household,
            ExpectedVersion::NoStream,
            &metadata(Some("c1")),
            vec![event("c", "original")],
        )
        .await?;

    let update = sqlx::query("UPDATE events SET payload = $1")
        .bind(b"forged".to_vec())
        .execute(store.pool())
        .await;
    let message = update.expect_err("an UPDATE must fail").to_string();
    assert!(message.contains("append-only"), "{message}");
    let delete = sqlx::query("DELETE FROM events")
        .execute(store.pool())
        .await;
    assert!(
        delete
            .expect_err("a DELETE must fail")
            .to_string()
            .contains("append-only")
    );
    let delete_command = sqlx::query("DELETE FROM event_commands")
        .execute(store.pool())
        .await;
    assert!(delete_command.is_err());
    if backend == Backend::Postgres {
        let truncate = sqlx::query("TRUNCATE events").execute(store.pool()).await;
        assert!(
            truncate
                .expect_err("a TRUNCATE must fail")
                .to_string()
                .contains("append-only")
        );
        // The services' roles may read and append, nothing else (append_only.rs has the rest).
        sunshine_eventlog::roles::grant_access(store.pool(), &[]).await?;
        let mut transaction = store.pool().begin().await?;
        sqlx::query("SET LOCAL ROLE sunshine_log_writer")
            .execute(&mut *transaction)
            .await?;
        let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM events")
            .fetch_one(&mut *transaction)
            .await?;
        assert_eq!(count, 1);
        let denied = sqlx::query("ALTER TABLE events DISABLE TRIGGER events_append_only")
            .execute(&mut *transaction)
            .await;
        assert!(
            denied
                .expect_err("the service role may not disable the guard")
                .to_string()
                .contains("owner")
        );
        transaction.rollback().await?;
    }
    let row = sqlx::query("SELECT payload FROM events")
        .fetch_one(store.pool())
        .await?;
    assert_eq!(row.try_get::<Vec<u8>, _>(0)?, b"original");
    Ok(())
}

mod personal_data {
    use super::common::{Backend, event, fresh_store, metadata, sequencer, stream};
    use sunshine_eventlog::ExpectedVersion;
    use sunshine_eventlog::crypto::KeyEncryptionKey;
    use sunshine_eventlog::keys::{KeyError, KeyStore};

    async fn destroying_a_key_leaves_the_log_verifiable(backend: Backend) -> anyhow::Result<()> {
        let (store, _keep) = fresh_store(backend, 4).await?;
        let keys = KeyStore::new(store.clone(), KeyEncryptionKey::from_bytes([7u8; 32]));
        let household = "household-h1";
        let name = "张三".as_bytes();
        let sealed = keys.seal(household, name, b"members[0].name").await?;
        assert!(
            !sealed.windows(name.len()).any(|window| window == name),
            "no plain text in the sealed value"
        );
        let mut payload = b"name=".to_vec();
        payload.extend_from_slice(&sealed);
        store
            .append(
                &stream("household", "h1"),
                ExpectedVersion::NoStream,
                &metadata(None),
                vec![event("case-1", "registered"), {
                    let mut with_name = event("case-1", "");
                    with_name.payload = payload;
                    with_name
                }],
            )
            .await?;
        let stored = store
            .read_stream(&stream("household", "h1"), 2)
            .await?
            .remove(0);
        assert_eq!(
            keys.open(&stored.payload[5..], b"members[0].name").await?,
            name
        );
        assert!(
            keys.open(&stored.payload[5..], b"members[1].name")
                .await
                .is_err(),
            "bound to its field"
        );

        assert_eq!(keys.destroy(household, "retention period ended").await?, 1);
        let gone = keys.open(&stored.payload[5..], b"members[0].name").await;
        assert!(matches!(gone, Err(KeyError::Destroyed { .. })), "{gone:?}");

        let (mut sequencer, verifier) = sequencer(&store, 100);
        super::common::sequence_all(&mut sequencer, &store).await?;
        sequencer.checkpoint_now().await?;
        let report = sunshine_eventlog::verify::verify_log(&store, &verifier).await?;
        assert_eq!(
            (report.problem, report.entries),
            (None, 2),
            "shredding breaks no hash"
        );
        Ok(())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn on_postgres() -> anyhow::Result<()> {
        destroying_a_key_leaves_the_log_verifiable(Backend::Postgres).await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn on_sqlite() -> anyhow::Result<()> {
        destroying_a_key_leaves_the_log_verifiable(Backend::Sqlite).await
    }
}

fn with_digest(command_id: &str, digest: &str) -> sunshine_eventlog::EventMetadata {
    let mut metadata = metadata(Some(command_id));
    metadata.request_digest = Some(digest.to_owned());
    metadata
}

async fn a_command_id_reused_for_other_content_is_refused_and_writes_nothing(
    backend: Backend,
) -> anyhow::Result<()> {
    let (store, _keep) = fresh_store(backend, 4).await?;
    let household = stream("household", "h1");
    let first = store
        .append(
            &household,
            ExpectedVersion::NoStream,
            &with_digest("register-1", "digest-of-two-members"),
            vec![event("c", "registered with two members")],
        )
        .await?;
    assert!(!first.deduplicated);

    // The same command id with other content: on the fast path (head known), on the slow path
    // (head unknown), and asked before any side effect.
    let other = with_digest("register-1", "digest-of-three-members");
    for expected in [ExpectedVersion::NoStream, ExpectedVersion::Any] {
        let refused = store
            .append(
                &household,
                expected,
                &other,
                vec![event("c", "registered with three members")],
            )
            .await;
        assert!(
            matches!(&refused, Err(StoreError::CommandReused { command_id }) if command_id == "register-1"),
            "{refused:?}"
        );
    }
    let asked = store.previous_outcome(&household, &other).await;
    assert!(
        matches!(asked, Err(StoreError::CommandReused { .. })),
        "{asked:?}"
    );
    // A retry without any digest cannot pass for the first request either.
    let undigested = store
        .previous_outcome(&household, &metadata(Some("register-1")))
        .await;
    assert!(
        matches!(undigested, Err(StoreError::CommandReused { .. })),
        "{undigested:?}"
    );
    assert_eq!(count_events(&store).await?, 1);

    // The faithful retry is answered from the first append, before and at the append.
    let faithful = with_digest("register-1", "digest-of-two-members");
    let before = store
        .previous_outcome(&household, &faithful)
        .await?
        .expect("the first append is known");
    assert_eq!(before.last_version, first.last_version);
    let retried = store
        .append(
            &household,
            ExpectedVersion::NoStream,
            &faithful,
            vec![event("c", "x")],
        )
        .await?;
    assert!(retried.deduplicated);

    // The very same request replayed by another officer is not their retry: refused, and they
    // learn nothing of the stream (not even its version).
    let mut replayed = faithful.clone();
    replayed.actor.subject = "clerk-of-another-village".into();
    replayed.actor.org_unit = "990101002001".into();
    let replay = store.previous_outcome(&household, &replayed).await;
    assert!(
        matches!(replay, Err(StoreError::CommandReused { .. })),
        "{replay:?}"
    );
    let replay = store
        .append(
            &household,
            ExpectedVersion::NoStream,
            &replayed,
            vec![event("c", "x")],
        )
        .await;
    assert!(
        matches!(replay, Err(StoreError::CommandReused { .. })),
        "{replay:?}"
    );

    // The refusal names neither the other stream nor its content, and maps to
    // INVALID_ARGUMENT on `command_id`.
    let elsewhere = store
        .append(
            &stream("household", "h-other-village"),
            ExpectedVersion::NoStream,
            &faithful,
            vec![event("c", "y")],
        )
        .await
        .expect_err("a command id belongs to one stream");
    let message = elsewhere.to_string();
    assert!(
        !message.contains("h1") && !message.contains("household"),
        "{message}"
    );
    let api = sunshine_platform::ApiError::from(elsewhere);
    assert_eq!(api.code(), tonic::Code::InvalidArgument);
    assert_eq!(count_events(&store).await?, 1);
    Ok(())
}

/// Claims a name in a side table; refuses when another owner has it.
struct ClaimName<'a> {
    name: &'a str,
    owner: &'a str,
}

impl AppendGuard for ClaimName<'_> {
    type Refusal = String;

    async fn apply(
        &self,
        connection: &mut sqlx::AnyConnection,
    ) -> Result<Result<(), String>, sqlx::Error> {
        let holder: Option<String> =
            sqlx::query_scalar("SELECT owner FROM test_claims WHERE name = $1")
                .bind(self.name)
                .fetch_optional(&mut *connection)
                .await?;
        match holder {
            Some(holder) if holder != self.owner => Ok(Err(holder)),
            Some(_) => Ok(Ok(())),
            None => {
                sqlx::query("INSERT INTO test_claims (name, owner) VALUES ($1, $2)")
                    .bind(self.name)
                    .bind(self.owner)
                    .execute(&mut *connection)
                    .await?;
                Ok(Ok(()))
            }
        }
    }
}

async fn a_guard_commits_and_rolls_back_with_its_append(backend: Backend) -> anyhow::Result<()> {
    let (store, _keep) = fresh_store(backend, 4).await?;
    sqlx::query("CREATE TABLE test_claims (name TEXT PRIMARY KEY, owner TEXT NOT NULL)")
        .execute(store.pool())
        .await?;
    let claims = |store: &sunshine_eventlog::EventStore| {
        let pool = store.pool().clone();
        async move {
            let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM test_claims")
                .fetch_one(&pool)
                .await?;
            anyhow::Ok(count)
        }
    };
    let first = store
        .append_guarded(
            &stream("household", "h1"),
            ExpectedVersion::NoStream,
            &with_digest("register-h1", "d1"),
            vec![event("c", "h1 registered")],
            &ClaimName {
                name: "person-a",
                owner: "h1",
            },
        )
        .await?;
    assert!(matches!(first, GuardedAppend::Appended(_)));
    assert_eq!((count_events(&store).await?, claims(&store).await?), (1, 1));

    // Refused by the guard: neither the event nor any claim is written.
    let refused = store
        .append_guarded(
            &stream("household", "h2"),
            ExpectedVersion::NoStream,
            &with_digest("register-h2", "d2"),
            vec![event("c", "h2 registered")],
            &ClaimName {
                name: "person-a",
                owner: "h2",
            },
        )
        .await?;
    assert!(
        matches!(&refused, GuardedAppend::Refused(holder) if holder == "h1"),
        "{refused:?}"
    );
    assert_eq!((count_events(&store).await?, claims(&store).await?), (1, 1));
    let nothing = store
        .previous_outcome(
            &stream("household", "h2"),
            &with_digest("register-h2", "d2"),
        )
        .await?;
    assert!(nothing.is_none(), "a refused append records no command");

    // The append fails (a stale version): the guard's writes roll back with it.
    let stale = store
        .append_guarded(
            &stream("household", "h1"),
            ExpectedVersion::Exact(7),
            &with_digest("change-h1", "d3"),
            vec![event("c", "h1 changed")],
            &ClaimName {
                name: "person-b",
                owner: "h1",
            },
        )
        .await;
    assert!(
        matches!(stale, Err(StoreError::Conflict { .. })),
        "{stale:?}"
    );
    assert_eq!((count_events(&store).await?, claims(&store).await?), (1, 1));

    // A faithful retry is answered from the first append without running the guard again.
    let retry = store
        .append_guarded(
            &stream("household", "h1"),
            ExpectedVersion::NoStream,
            &with_digest("register-h1", "d1"),
            vec![event("c", "h1 registered")],
            &ClaimName {
                name: "person-z",
                owner: "h1",
            },
        )
        .await?;
    assert!(matches!(&retry, GuardedAppend::Appended(outcome) if outcome.deduplicated));
    assert_eq!((count_events(&store).await?, claims(&store).await?), (1, 1));
    Ok(())
}

/// Hands out its batches one per call, claiming `batch-<n>` in `test_claims` for each on the
/// append's transaction; refuses instead of handing out batch `refuse_at` (counted from 0).
struct Batches {
    batches: std::collections::VecDeque<Vec<sunshine_eventlog::NewEvent>>,
    refuse_at: Option<usize>,
    calls: usize,
}

impl Batches {
    fn of(batches: Vec<Vec<sunshine_eventlog::NewEvent>>, refuse_at: Option<usize>) -> Batches {
        Batches {
            batches: batches.into(),
            refuse_at,
            calls: 0,
        }
    }
}

impl EventSource for Batches {
    type Refusal = String;

    async fn next_events(
        &mut self,
        connection: &mut sqlx::AnyConnection,
    ) -> Result<Result<Option<Vec<sunshine_eventlog::NewEvent>>, String>, sqlx::Error> {
        let call = self.calls;
        self.calls += 1;
        if self.refuse_at == Some(call) {
            return Ok(Err(format!("refused at batch {call}")));
        }
        let Some(batch) = self.batches.pop_front() else {
            return Ok(Ok(None));
        };
        sqlx::query("INSERT INTO test_claims (name, owner) VALUES ($1, 'streamed')")
            .bind(format!("batch-{call}"))
            .execute(&mut *connection)
            .await?;
        Ok(Ok(Some(batch)))
    }
}

async fn a_streamed_append_is_one_append_made_batch_by_batch(
    backend: Backend,
) -> anyhow::Result<()> {
    let (store, _keep) = fresh_store(backend, 4).await?;
    sqlx::query("CREATE TABLE test_claims (name TEXT PRIMARY KEY, owner TEXT NOT NULL)")
        .execute(store.pool())
        .await?;
    let claims = |store: &sunshine_eventlog::EventStore| {
        let pool = store.pool().clone();
        async move {
            let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM test_claims")
                .fetch_one(&pool)
                .await?;
            anyhow::Ok(count)
        }
    };
    let batch = |from: usize, count: usize| {
        (from..from + count)
            .map(|index| event("run", &format!("part {index}")))
            .collect::<Vec<_>>()
    };
    let run = stream("run", "r1");

    // Refused at the second batch: nothing of the first batch stays — events, claims, command.
    let mut refusing = Batches::of(vec![batch(0, 400), batch(400, 400)], Some(1));
    let refused = store
        .append_streamed(
            &run,
            ExpectedVersion::NoStream,
            &with_digest("create-r1", "d1"),
            &mut refusing,
        )
        .await?;
    assert!(
        matches!(&refused, GuardedAppend::Refused(why) if why == "refused at batch 1"),
        "{refused:?}"
    );
    assert_eq!((count_events(&store).await?, claims(&store).await?), (0, 0));
    assert!(
        store
            .previous_outcome(&run, &with_digest("create-r1", "d1"))
            .await?
            .is_none()
    );

    // An event over the bound in a later batch: refused whole, named by its index in the append.
    let mut too_large = Batches::of(
        vec![
            batch(0, 3),
            vec![
                event("run", "small"),
                sunshine_eventlog::NewEvent::new(
                    "run",
                    "example.v1.TestEvent",
                    1,
                    vec![b'x'; store.max_event_payload_bytes() + 1],
                ),
            ],
        ],
        None,
    );
    let over = store
        .append_streamed(
            &run,
            ExpectedVersion::NoStream,
            &with_digest("create-r1", "d1"),
            &mut too_large,
        )
        .await;
    assert!(
        matches!(over, Err(StoreError::EventTooLarge { index: 4, .. })),
        "{over:?}"
    );
    assert_eq!((count_events(&store).await?, claims(&store).await?), (0, 0));

    // No events at all is no append.
    let empty = store
        .append_streamed(
            &run,
            ExpectedVersion::NoStream,
            &with_digest("create-r1", "d1"),
            &mut Batches::of(Vec::new(), None),
        )
        .await;
    assert!(matches!(empty, Err(StoreError::Invalid(_))), "{empty:?}");

    // Three batches, 1,200 events in all (more than one plain append may carry): one append,
    // versions 1..=1,200 in order, one hash chain across the batches, every claim written, and
    // an outcome that holds no events.
    let mut source = Batches::of(vec![batch(0, 400), batch(400, 400), batch(800, 400)], None);
    let appended = store
        .append_streamed(
            &run,
            ExpectedVersion::NoStream,
            &with_digest("create-r1", "d1"),
            &mut source,
        )
        .await?;
    let GuardedAppend::Appended(outcome) = appended else {
        anyhow::bail!("refused: {appended:?}");
    };
    assert_eq!((outcome.first_version, outcome.last_version), (1, 1_200));
    assert!(outcome.events.is_empty() && !outcome.deduplicated);
    assert_eq!(
        (count_events(&store).await?, claims(&store).await?),
        (1_200, 3)
    );
    let stored = store.read_stream(&run, 1).await?;
    let mut previous = GENESIS_HASH;
    for (index, event) in stored.iter().enumerate() {
        assert_eq!(event.stream_version, index as u64 + 1);
        assert_eq!(event.payload, format!("part {index}").into_bytes());
        assert_eq!(event.previous_hash, previous, "the chain breaks at {index}");
        previous = event.hash;
    }
    let paged = store.read_stream_page(&run, 399, 3).await?;
    assert_eq!(
        paged
            .iter()
            .map(|event| event.stream_version)
            .collect::<Vec<_>>(),
        [399, 400, 401]
    );

    // A faithful retry is answered from the first append without asking the source for anything.
    let mut untouched = Batches::of(vec![batch(0, 1)], None);
    let retry = store
        .append_streamed(
            &run,
            ExpectedVersion::NoStream,
            &with_digest("create-r1", "d1"),
            &mut untouched,
        )
        .await?;
    assert!(
        matches!(&retry, GuardedAppend::Appended(outcome) if outcome.deduplicated && outcome.last_version == 1_200),
        "{retry:?}"
    );
    assert_eq!(untouched.calls, 0);
    assert_eq!(count_events(&store).await?, 1_200);
    Ok(())
}
