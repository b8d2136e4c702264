//! The log stays append-only against anyone who is not the database's superuser: on SQLite for
//! any connection to the file (the guard is in the schema, not in the service's connection
//! settings), on PostgreSQL for the roles the services log in as.

mod common;

use common::{Backend, event, fresh_store, metadata, sequence_all, sequencer, stream};
use sqlx::Connection as _;
use sunshine_eventlog::checkpoint::CheckpointVerifier;
use sunshine_eventlog::{EventStore, ExpectedVersion, RecordedEvent};

/// Two streams of two events, sequenced and checkpointed: a row in every log table. Also the
/// verifier of the checkpoints' key.
async fn a_small_log(
    store: &EventStore,
) -> anyhow::Result<(Vec<RecordedEvent>, CheckpointVerifier)> {
    for (index, household) in ["h1", "h2"].into_iter().enumerate() {
        store
            .append(
                &stream("household", household),
                ExpectedVersion::NoStream,
                &metadata(Some(&format!("command-{index}"))),
                vec![event("case-1", "first"), event("case-1", "second")],
            )
            .await?;
    }
    let (mut sequencer, verifier) = sequencer(store, 1_000);
    sequence_all(&mut sequencer, store).await?;
    sequencer.checkpoint_now().await?;
    Ok((store.read_log(0, 100).await?, verifier))
}

/// What every log table holds, as text, to compare before and after an attack.
async fn snapshot(connection: &mut sqlx::SqliteConnection) -> anyhow::Result<Vec<String>> {
    let mut rows = Vec::new();
    for query in [
        "SELECT sequence || '|' || event_id || '|' || stream_id || '|' || stream_version || '|' || hex(payload) || '|' || hex(hash) FROM events ORDER BY sequence",
        "SELECT command_id || '|' || stream_id || '|' || first_version || '|' || last_version FROM event_commands ORDER BY command_id",
        "SELECT log_position || '|' || event_sequence || '|' || hex(leaf_hash) FROM log_entries ORDER BY log_position",
        "SELECT tree_size || '|' || hex(root_hash) || '|' || note FROM log_checkpoints ORDER BY tree_size",
    ] {
        let table: Vec<String> = sqlx::query_scalar(query)
            .fetch_all(&mut *connection)
            .await?;
        rows.extend(table);
    }
    Ok(rows)
}

/// An insert into `events` of a forged copy of `victim` (payload replaced), with the conflict
/// clause `verb` (`INSERT OR REPLACE`, `REPLACE`, …) and an optional upsert `tail`.
async fn forge_event(
    connection: &mut sqlx::SqliteConnection,
    verb: &str,
    victim: &RecordedEvent,
    sequence: Option<i64>,
    event_id: &str,
    stream_version: i64,
    tail: &str,
) -> Result<sqlx::sqlite::SqliteQueryResult, sqlx::Error> {
    let sql = format!(
        "{verb} INTO events (sequence, tx_id, event_id, stream_id, stream_version, case_id, event_type, schema_version, \
         payload, metadata, occurred_at_us, recorded_at_us, previous_hash, hash) \
         VALUES ($1, 1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) {tail}"
    );
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(sequence)
        .bind(event_id)
        .bind(victim.stream_id.as_str())
        .bind(stream_version)
        .bind(victim.case_id.as_str())
        .bind(victim.event_type.as_str())
        .bind(i64::from(victim.schema_version))
        .bind(b"forged: a larger amount".to_vec())
        .bind(victim.metadata_json.as_str())
        .bind(victim.occurred_at_us)
        .bind(victim.recorded_at_us)
        .bind(victim.previous_hash.to_vec())
        .bind(victim.hash.to_vec())
        .execute(&mut *connection)
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_refuses_replace_and_upsert_on_every_log_table_from_any_connection()
-> anyhow::Result<()> {
    let (store, keep) = fresh_store(Backend::Sqlite, 2).await?;
    let (log, _) = a_small_log(&store).await?;
    let common::Keep::Sqlite(sqlite) = &keep else {
        anyhow::bail!("a SQLite store");
    };
    // A connection of its own, as the sqlite3 shell would open: no pragma of the service's,
    // and in particular no recursive_triggers (with which REPLACE's delete would fire the
    // DELETE trigger).
    let mut connection = sqlx::SqliteConnection::connect(&sqlite.url()).await?;
    let recursive_triggers: i64 = sqlx::query_scalar("PRAGMA recursive_triggers")
        .fetch_one(&mut connection)
        .await?;
    assert_eq!(recursive_triggers, 0);
    let before = snapshot(&mut connection).await?;

    let victim = &log[0];
    let victim_id = victim.event_id.hyphenated().to_string();
    let fresh_id = uuid::Uuid::now_v7().hyphenated().to_string();
    let version = victim.stream_version as i64;
    let unused_version = 1_000;
    let mut attempts: Vec<(String, Result<sqlx::sqlite::SqliteQueryResult, sqlx::Error>)> =
        Vec::new();
    for verb in ["INSERT OR REPLACE", "REPLACE"] {
        // The same event id, the same (stream, version), the same sequence: each key alone.
        attempts.push((
            format!("{verb} on events.event_id"),
            forge_event(
                &mut connection,
                verb,
                victim,
                None,
                &victim_id,
                unused_version,
                "",
            )
            .await,
        ));
        attempts.push((
            format!("{verb} on events (stream_id, stream_version)"),
            forge_event(&mut connection, verb, victim, None, &fresh_id, version, "").await,
        ));
        attempts.push((
            format!("{verb} on events.sequence"),
            forge_event(
                &mut connection,
                verb,
                victim,
                Some(victim.sequence),
                &fresh_id,
                unused_version,
                "",
            )
            .await,
        ));
        for (table, sql) in [
            (
                "event_commands",
                format!(
                    "{verb} INTO event_commands (command_id, stream_id, first_version, last_version, recorded_at_us) \
                     VALUES ('command-0', 'intake-household-forged', 1, 9, 0)"
                ),
            ),
            (
                "log_entries.log_position",
                format!(
                    "{verb} INTO log_entries (log_position, event_sequence, leaf_hash) VALUES (0, 999999, zeroblob(32))"
                ),
            ),
            (
                "log_entries.event_sequence",
                format!(
                    "{verb} INTO log_entries (log_position, event_sequence, leaf_hash) VALUES (999999, {}, zeroblob(32))",
                    victim.sequence
                ),
            ),
            (
                "log_checkpoints",
                format!(
                    "{verb} INTO log_checkpoints (tree_size, root_hash, note, created_at_us) VALUES ({}, zeroblob(32), 'forged', 0)",
                    log.len()
                ),
            ),
        ] {
            let result = sqlx::query(sqlx::AssertSqlSafe(sql))
                .execute(&mut connection)
                .await;
            attempts.push((format!("{verb} on {table}"), result));
        }
    }
    // UPSERT: the conflict becomes an UPDATE of the stored row.
    attempts.push((
        "upsert on events.event_id".into(),
        forge_event(
            &mut connection,
            "INSERT",
            victim,
            None,
            &victim_id,
            unused_version,
            "ON CONFLICT (event_id) DO UPDATE SET payload = excluded.payload",
        )
        .await,
    ));
    for (table, sql) in [
        (
            "event_commands",
            "INSERT INTO event_commands (command_id, stream_id, first_version, last_version, recorded_at_us) \
             VALUES ('command-0', 'intake-household-forged', 1, 9, 0) \
             ON CONFLICT (command_id) DO UPDATE SET stream_id = excluded.stream_id",
        ),
        (
            "log_entries",
            "INSERT INTO log_entries (log_position, event_sequence, leaf_hash) VALUES (0, 999999, zeroblob(32)) \
             ON CONFLICT (log_position) DO UPDATE SET leaf_hash = excluded.leaf_hash",
        ),
        (
            "log_checkpoints",
            "INSERT INTO log_checkpoints (tree_size, root_hash, note, created_at_us) VALUES (4, zeroblob(32), 'forged', 0) \
             ON CONFLICT (tree_size) DO UPDATE SET note = excluded.note",
        ),
    ] {
        let result = sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(&mut connection)
            .await;
        attempts.push((format!("upsert on {table}"), result));
    }

    let mut accepted = Vec::new();
    for (attempt, result) in &attempts {
        match result {
            Ok(_) => accepted.push(attempt.clone()),
            Err(error) => assert!(
                error.to_string().contains("append-only"),
                "{attempt}: refused, but not by the guard: {error}"
            ),
        }
    }
    assert!(accepted.is_empty(), "accepted: {accepted:?}");
    assert_eq!(snapshot(&mut connection).await?, before);
    connection.close().await?;

    // (The store's own conflicts, now refused by these triggers first, are still told apart:
    // conformance.rs `a_replica_with_a_stale_view_gets_a_conflict` and
    // `invalid_appends_are_refused_whole` run on SQLite too.)
    Ok(())
}

/// The intake service's access, as `sunshine migrate` grants it (the list of every service is
/// the `sunshine` crate's; the log's part is the same for each service that writes the log).
const INTAKE: sunshine_eventlog::roles::ServiceAccess = sunshine_eventlog::roles::ServiceAccess {
    service: "intake",
    writes_log: true,
    read_model: None,
    holds_key_encryption: true,
};

/// Review's: it runs the log but holds no key-encryption key.
const REVIEW: sunshine_eventlog::roles::ServiceAccess = sunshine_eventlog::roles::ServiceAccess {
    service: "review",
    writes_log: true,
    read_model: None,
    holds_key_encryption: false,
};

const LOG_TABLES: [&str; 4] = ["events", "event_commands", "log_entries", "log_checkpoints"];

/// Runs `sql` and says whether PostgreSQL refused it for lack of privilege (SQLSTATE 42501:
/// no privilege on the table, or not its owner).
async fn refused(connection: &mut sqlx::PgConnection, sql: &str) -> anyhow::Result<bool> {
    match sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
        .execute(&mut *connection)
        .await
    {
        Ok(_) => Ok(false),
        Err(sqlx::Error::Database(error)) if error.code().as_deref() == Some("42501") => Ok(true),
        Err(error) => Err(anyhow::anyhow!(
            "{sql}: refused, but not for privilege: {error}"
        )),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_role_may_read_and_append_to_the_log_and_nothing_else() -> anyhow::Result<()> {
    let role_sql = sunshine_eventlog::roles::role_script(&[INTAKE, REVIEW])?;
    // The DBA has made the roles; the database belongs to an owner without CREATEROLE, which
    // migrates and grants: neither needs CREATEROLE when the roles exist.
    let database = sunshine_testkit::TestDatabase::create_owned(&role_sql).await?;
    let owner = sunshine_platform::backends::Database::connect(
        &sunshine_platform::config::DatabaseConfig {
            url: database.owner_url(),
            max_connections: 2,
            ..Default::default()
        },
    )
    .await?;
    let owner_store = EventStore::from_database(&owner);
    owner_store.migrate().await?;
    sunshine_eventlog::roles::grant_access(owner_store.pool(), &[INTAKE, REVIEW]).await?;

    // The service, logged in as its role, appends, sequences and signs checkpoints: INSERT and
    // SELECT on every log table work.
    let service = sunshine_platform::backends::Database::connect(
        &sunshine_platform::config::DatabaseConfig {
            url: database.url_as(&INTAKE.role()),
            max_connections: 2,
            ..Default::default()
        },
    )
    .await?;
    let store = EventStore::from_database(&service);
    let (log, verifier) = a_small_log(&store).await?;
    assert_eq!(log.len(), 4);
    let mut connection = sqlx::PgConnection::connect(&database.url_as(&INTAKE.role())).await?;
    for table in LOG_TABLES {
        let rows: i64 =
            sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT COUNT(*) FROM {table}")))
                .fetch_one(&mut connection)
                .await?;
        assert!(rows > 0, "{table} is readable and holds what was appended");
    }

    // Everything else is refused, on every log table.
    let mut accepted = Vec::new();
    for table in LOG_TABLES {
        // A unique key, and a column a tamperer would rewrite.
        let (key, column, overriding) = match table {
            "events" => ("sequence", "payload", "OVERRIDING SYSTEM VALUE "),
            "event_commands" => ("command_id", "stream_id", ""),
            "log_entries" => ("log_position", "leaf_hash", ""),
            _ => ("tree_size", "note", ""),
        };
        for sql in [
            format!("UPDATE {table} SET {column} = {column}"),
            format!("DELETE FROM {table}"),
            format!("TRUNCATE {table}"),
            format!("ALTER TABLE {table} ADD COLUMN forged TEXT"),
            format!("ALTER TABLE {table} DISABLE TRIGGER USER"),
            format!("ALTER TABLE {table} DISABLE TRIGGER {table}_append_only"),
            format!("ALTER TABLE {table} DISABLE TRIGGER ALL"),
            format!("DROP TRIGGER {table}_append_only ON {table}"),
            format!("DROP TRIGGER {table}_no_truncate ON {table}"),
            format!("ALTER TABLE {table} OWNER TO {}", INTAKE.role()),
            format!("DROP TABLE {table}"),
            format!(
                "INSERT INTO {table} {overriding}SELECT * FROM {table} ON CONFLICT ({key}) DO UPDATE SET {column} = excluded.{column}"
            ),
        ] {
            if !refused(&mut connection, &sql).await? {
                accepted.push(sql);
            }
        }
    }
    // Nor can it make tables of its own, or take the owner's role.
    for sql in [
        "CREATE TABLE forged (x TEXT)".to_owned(),
        format!("SET ROLE {}", sunshine_testkit::OWNER_ROLE),
    ] {
        if !refused(&mut connection, &sql).await? {
            accepted.push(sql);
        }
    }
    assert!(accepted.is_empty(), "accepted: {accepted:?}");

    // Its own streams only: an event on another service's stream, or a command row for one,
    // is refused by row-level security, and nothing of it is written.
    let foreign = sunshine_eventlog::StreamId::new("review", "case", "c-forged")?;
    let forged = store
        .append(
            &foreign,
            ExpectedVersion::NoStream,
            &metadata(Some("forged-command")),
            vec![event("c-forged", "approved by nobody")],
        )
        .await;
    assert!(
        matches!(&forged, Err(error) if error.to_string().contains("row-level security")),
        "{forged:?}"
    );
    assert!(
        refused(
            &mut connection,
            "INSERT INTO event_commands (command_id, stream_id, first_version, last_version, recorded_at_us, request_digest) \
             VALUES ('forged', 'review-case-c-forged', 1, 1, 0, '')"
        )
        .await?,
        "a command row for another service's stream"
    );
    assert_eq!(store.stream_version(&foreign).await?, 0);

    // Only a role that holds the key-encryption key destroys data keys: review's role creates
    // them (it seals) but may not shred anyone's data.
    let mut review = sqlx::PgConnection::connect(&database.url_as(&REVIEW.role())).await?;
    sqlx::raw_sql(
        "INSERT INTO data_keys (key_id, subject, wrapped_key, created_at_us) VALUES ('dk-review', 'case-1', '\\x00', 0)",
    )
    .execute(&mut review)
    .await?;
    for sql in [
        "DELETE FROM data_keys",
        "INSERT INTO destroyed_data_keys (key_id, subject, destroyed_at_us, reason) VALUES ('dk-review', 'case-1', 0, 'forged')",
    ] {
        assert!(refused(&mut review, sql).await?, "review's role may: {sql}");
    }
    sqlx::raw_sql("DELETE FROM data_keys WHERE key_id = 'dk-review'")
        .execute(&mut connection)
        .await?;

    // The log is as appended, and verifies.
    assert_eq!(store.read_log(0, 100).await?, log);
    let report = sunshine_eventlog::verify::verify_log(&store, &verifier).await?;
    assert_eq!((report.problem, report.entries), (None, 4));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_owner_without_createrole_is_told_which_roles_the_dba_must_create() -> anyhow::Result<()>
{
    let database =
        sunshine_testkit::TestDatabase::create_owned(&sunshine_eventlog::roles::role_script(&[
            INTAKE,
        ])?)
        .await?;
    let owner = sunshine_platform::backends::Database::connect(
        &sunshine_platform::config::DatabaseConfig {
            url: database.owner_url(),
            max_connections: 2,
            ..Default::default()
        },
    )
    .await?;
    let store = EventStore::from_database(&owner);
    store.migrate().await?;
    // A service whose role nobody created (a name of this test's own: roles are server-wide).
    let name: &'static str =
        Box::leak(format!("ghost-{}", uuid::Uuid::now_v7().simple()).into_boxed_str());
    let ghost = sunshine_eventlog::roles::ServiceAccess {
        service: name,
        writes_log: true,
        read_model: None,
        holds_key_encryption: false,
    };
    let error = sunshine_eventlog::roles::grant_access(store.pool(), &[INTAKE, ghost])
        .await
        .expect_err("the owner may not create roles");
    let message = error.to_string();
    assert!(
        message.contains(&format!("login role {}", ghost.role()))
            && message.contains("sunshine migrate --print-role-sql"),
        "{message}"
    );
    assert!(!message.contains("sunshine_intake"), "{message}");
    Ok(())
}
