//! The event log's tables, created by numbered migrations per backend, and the database's own
//! guard that keeps them append-only.
//!
//! Both backends have the same tables and columns (BIGINT, TEXT, BYTEA/BLOB), so the store's
//! queries are written once. What differs: how the insertion sequence is generated and the
//! append-only triggers. Migrations run as the tables' owner: `sunshine migrate` on PostgreSQL
//! (then [`crate::roles`] grants the services' roles what each needs), the services themselves
//! on SQLite. A service that may not migrate checks instead ([`prepare`]): it refuses to start
//! on a schema that is missing a migration it knows.

use sqlx::AnyPool;
use sunshine_platform::config::DatabaseKind;

use crate::error::StoreError;

/// One migration: a version and the SQL for each backend.
/// One numbered schema change of a component (the event log, a service's read model): the
/// SQL for the given backend.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    pub version: i64,
    pub description: &'static str,
    pub script: fn(DatabaseKind) -> String,
}

const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        description: "event log: events, commands, log entries, checkpoints, cursors, consumer state, data keys",
        script: |kind| {
            let guards = match kind {
                DatabaseKind::Postgres => POSTGRES_GUARDS_V1,
                DatabaseKind::Sqlite => SQLITE_GUARDS_V1,
            };
            format!("{}\n{guards}", tables_for(kind))
        },
    },
    Migration {
        version: 2,
        description: "event log: the digest of the request each command id answered",
        // Nullable: commands recorded before version 2 have no digest and are answered as before.
        script: |_| "ALTER TABLE event_commands ADD COLUMN request_digest TEXT;".to_owned(),
    },
    Migration {
        version: 3,
        description: "event log: refuse inserts that would replace a stored row (SQLite's REPLACE)",
        script: |kind| match kind {
            // PostgreSQL has no REPLACE; `ON CONFLICT DO UPDATE` is an UPDATE, which the
            // version 1 triggers (and the services' privileges) already refuse.
            DatabaseKind::Postgres => "SELECT 1;".to_owned(),
            DatabaseKind::Sqlite => SQLITE_NO_REPLACE_V3.to_owned(),
        },
    },
    Migration {
        version: 4,
        description: "event log: privileges come from `sunshine migrate`, not from the unused role sunshine_service",
        script: |kind| match kind {
            DatabaseKind::Postgres => POSTGRES_RETIRE_SUNSHINE_SERVICE_V4.to_owned(),
            DatabaseKind::Sqlite => "SELECT 1;".to_owned(),
        },
    },
];

/// PostgreSQL: version 1 used to create the NOLOGIN role `sunshine_service` (which needed
/// CREATEROLE even when the role existed) and grant it the log; no service logged in as it.
/// Revoking by the tables' owner needs no CREATEROLE; the role itself is cluster-wide and left
/// to the DBA (`DROP ROLE sunshine_service` once no database grants it anything).
const POSTGRES_RETIRE_SUNSHINE_SERVICE_V4: &str = r#"
DO $retire$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'sunshine_service') THEN
        REVOKE ALL ON events, event_commands, log_entries, log_checkpoints, log_cursors,
            consumer_processed, consumer_failures, dead_letters, data_keys, destroyed_data_keys
            FROM sunshine_service;
    END IF;
END
$retire$;
"#;

/// Key of the advisory lock that serialises migrations run by several services at once.
pub(crate) const MIGRATION_LOCK_KEY: i64 = 0x5355_4e53_4d49_4752; // "SUNSMIGR"

/// The tables, the same on both backends but for two types: `{SEQUENCE_KEY}` (an identity
/// column on PostgreSQL, `AUTOINCREMENT` on SQLite) and `{BLOB}` (BYTEA / BLOB).
const TABLES_V1: &str = r#"
CREATE TABLE events (
    sequence        {SEQUENCE_KEY},
    tx_id           BIGINT NOT NULL,
    event_id        TEXT   NOT NULL UNIQUE,
    stream_id       TEXT   NOT NULL,
    stream_version  BIGINT NOT NULL CHECK (stream_version >= 1),
    case_id         TEXT   NOT NULL,
    event_type      TEXT   NOT NULL,
    schema_version  BIGINT NOT NULL,
    payload         {BLOB}  NOT NULL,
    metadata        TEXT   NOT NULL,
    occurred_at_us  BIGINT NOT NULL,
    recorded_at_us  BIGINT NOT NULL,
    previous_hash   {BLOB}  NOT NULL,
    hash            {BLOB}  NOT NULL,
    CONSTRAINT events_stream_version_unique UNIQUE (stream_id, stream_version)
);
CREATE INDEX events_case ON events (case_id, tx_id, sequence);
CREATE INDEX events_order ON events (tx_id, sequence);

CREATE TABLE event_commands (
    command_id      TEXT   PRIMARY KEY,
    stream_id       TEXT   NOT NULL,
    first_version   BIGINT NOT NULL,
    last_version    BIGINT NOT NULL,
    recorded_at_us  BIGINT NOT NULL
);

CREATE TABLE log_entries (
    log_position    BIGINT PRIMARY KEY CHECK (log_position >= 0),
    event_sequence  BIGINT NOT NULL UNIQUE,
    leaf_hash       {BLOB}  NOT NULL
);

CREATE TABLE log_checkpoints (
    tree_size       BIGINT PRIMARY KEY,
    root_hash       {BLOB}  NOT NULL,
    note            TEXT   NOT NULL,
    created_at_us   BIGINT NOT NULL
);

CREATE TABLE log_cursors (
    name            TEXT   PRIMARY KEY,
    next_position   BIGINT NOT NULL,
    updated_at_us   BIGINT NOT NULL
);

CREATE TABLE consumer_processed (
    consumer        TEXT   NOT NULL,
    event_id        TEXT   NOT NULL,
    log_position    BIGINT NOT NULL,
    processed_at_us BIGINT NOT NULL,
    PRIMARY KEY (consumer, event_id)
);

CREATE TABLE consumer_failures (
    consumer        TEXT   NOT NULL,
    event_id        TEXT   NOT NULL,
    attempts        BIGINT NOT NULL,
    last_error      TEXT   NOT NULL,
    updated_at_us   BIGINT NOT NULL,
    PRIMARY KEY (consumer, event_id)
);

CREATE TABLE dead_letters (
    consumer        TEXT   NOT NULL,
    event_id        TEXT   NOT NULL,
    log_position    BIGINT NOT NULL,
    attempts        BIGINT NOT NULL,
    last_error      TEXT   NOT NULL,
    parked_at_us    BIGINT NOT NULL,
    replayed_at_us  BIGINT,
    PRIMARY KEY (consumer, event_id)
);

CREATE TABLE data_keys (
    key_id          TEXT   PRIMARY KEY,
    subject         TEXT   NOT NULL,
    wrapped_key     {BLOB}  NOT NULL,
    created_at_us   BIGINT NOT NULL
);
CREATE INDEX data_keys_subject ON data_keys (subject);

CREATE TABLE destroyed_data_keys (
    key_id          TEXT   PRIMARY KEY,
    subject         TEXT   NOT NULL,
    destroyed_at_us BIGINT NOT NULL,
    reason          TEXT   NOT NULL
);

"#;

/// PostgreSQL: the append-only guard (also against TRUNCATE). Who may do what is not a
/// migration's business: [`crate::roles::grant_access`] grants it on every `sunshine migrate`.
/// (Databases migrated before that change also got a NOLOGIN role `sunshine_service` here,
/// which no service used; version 4 takes its privileges back.)
const POSTGRES_GUARDS_V1: &str = r#"
CREATE FUNCTION eventlog_reject_change() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
    RAISE EXCEPTION 'the case-event log is append-only: % on % is not allowed', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END
$fn$;

CREATE TRIGGER events_append_only BEFORE UPDATE OR DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION eventlog_reject_change();
CREATE TRIGGER events_no_truncate BEFORE TRUNCATE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION eventlog_reject_change();
CREATE TRIGGER event_commands_append_only BEFORE UPDATE OR DELETE ON event_commands
    FOR EACH ROW EXECUTE FUNCTION eventlog_reject_change();
CREATE TRIGGER event_commands_no_truncate BEFORE TRUNCATE ON event_commands
    FOR EACH STATEMENT EXECUTE FUNCTION eventlog_reject_change();
CREATE TRIGGER log_entries_append_only BEFORE UPDATE OR DELETE ON log_entries
    FOR EACH ROW EXECUTE FUNCTION eventlog_reject_change();
CREATE TRIGGER log_entries_no_truncate BEFORE TRUNCATE ON log_entries
    FOR EACH STATEMENT EXECUTE FUNCTION eventlog_reject_change();
CREATE TRIGGER log_checkpoints_append_only BEFORE UPDATE OR DELETE ON log_checkpoints
    FOR EACH ROW EXECUTE FUNCTION eventlog_reject_change();
CREATE TRIGGER log_checkpoints_no_truncate BEFORE TRUNCATE ON log_checkpoints
    FOR EACH STATEMENT EXECUTE FUNCTION eventlog_reject_change();
"#;

/// SQLite: the append-only guard (SQLite has no TRUNCATE and no roles).
const SQLITE_GUARDS_V1: &str = r#"
CREATE TRIGGER events_no_update BEFORE UPDATE ON events
    BEGIN SELECT RAISE(ABORT, 'the case-event log is append-only: UPDATE on events is not allowed'); END;
CREATE TRIGGER events_no_delete BEFORE DELETE ON events
    BEGIN SELECT RAISE(ABORT, 'the case-event log is append-only: DELETE on events is not allowed'); END;
CREATE TRIGGER event_commands_no_update BEFORE UPDATE ON event_commands
    BEGIN SELECT RAISE(ABORT, 'the case-event log is append-only: UPDATE on event_commands is not allowed'); END;
CREATE TRIGGER event_commands_no_delete BEFORE DELETE ON event_commands
    BEGIN SELECT RAISE(ABORT, 'the case-event log is append-only: DELETE on event_commands is not allowed'); END;
CREATE TRIGGER log_entries_no_update BEFORE UPDATE ON log_entries
    BEGIN SELECT RAISE(ABORT, 'the case-event log is append-only: UPDATE on log_entries is not allowed'); END;
CREATE TRIGGER log_entries_no_delete BEFORE DELETE ON log_entries
    BEGIN SELECT RAISE(ABORT, 'the case-event log is append-only: DELETE on log_entries is not allowed'); END;
CREATE TRIGGER log_checkpoints_no_update BEFORE UPDATE ON log_checkpoints
    BEGIN SELECT RAISE(ABORT, 'the case-event log is append-only: UPDATE on log_checkpoints is not allowed'); END;
CREATE TRIGGER log_checkpoints_no_delete BEFORE DELETE ON log_checkpoints
    BEGIN SELECT RAISE(ABORT, 'the case-event log is append-only: DELETE on log_checkpoints is not allowed'); END;
"#;

/// SQLite: `INSERT OR REPLACE` (also `REPLACE INTO`, or `OR REPLACE` as a table's conflict
/// clause) deletes the conflicting row without firing DELETE triggers (unless the connection
/// set `recursive_triggers`) and inserts the new one: a stored event rewritten in place. A
/// BEFORE INSERT trigger runs before that conflict resolution, so these refuse any insert that
/// meets a stored row on one of the log tables' unique keys, whatever the statement's conflict
/// clause and whatever the connection's pragmas: they live in the file, so they hold for the
/// `sqlite3` shell too. A plain INSERT that collides is refused here as well, with a message
/// naming the key (the store reads it as it read the unique violation before).
const SQLITE_NO_REPLACE_V3: &str = r#"
CREATE TRIGGER events_no_replace_sequence BEFORE INSERT ON events
    WHEN NEW.sequence IS NOT NULL AND EXISTS (SELECT 1 FROM events WHERE sequence = NEW.sequence)
    BEGIN SELECT RAISE(ABORT, 'the case-event log is append-only: events.sequence is already stored'); END;
CREATE TRIGGER events_no_replace_event_id BEFORE INSERT ON events
    WHEN EXISTS (SELECT 1 FROM events WHERE event_id = NEW.event_id)
    BEGIN SELECT RAISE(ABORT, 'the case-event log is append-only: events.event_id is already stored'); END;
CREATE TRIGGER events_no_replace_stream_version BEFORE INSERT ON events
    WHEN EXISTS (SELECT 1 FROM events WHERE stream_id = NEW.stream_id AND stream_version = NEW.stream_version)
    BEGIN SELECT RAISE(ABORT, 'the case-event log is append-only: events.stream_id, events.stream_version is already stored'); END;
CREATE TRIGGER event_commands_no_replace BEFORE INSERT ON event_commands
    WHEN EXISTS (SELECT 1 FROM event_commands WHERE command_id = NEW.command_id)
    BEGIN SELECT RAISE(ABORT, 'the case-event log is append-only: event_commands.command_id is already stored'); END;
CREATE TRIGGER log_entries_no_replace_position BEFORE INSERT ON log_entries
    WHEN EXISTS (SELECT 1 FROM log_entries WHERE log_position = NEW.log_position)
    BEGIN SELECT RAISE(ABORT, 'the case-event log is append-only: log_entries.log_position is already stored'); END;
CREATE TRIGGER log_entries_no_replace_event BEFORE INSERT ON log_entries
    WHEN EXISTS (SELECT 1 FROM log_entries WHERE event_sequence = NEW.event_sequence)
    BEGIN SELECT RAISE(ABORT, 'the case-event log is append-only: log_entries.event_sequence is already stored'); END;
CREATE TRIGGER log_checkpoints_no_replace BEFORE INSERT ON log_checkpoints
    WHEN EXISTS (SELECT 1 FROM log_checkpoints WHERE tree_size = NEW.tree_size)
    BEGIN SELECT RAISE(ABORT, 'the case-event log is append-only: log_checkpoints.tree_size is already stored'); END;
"#;

/// Whether a database error says a row with the same unique key is already stored: the unique
/// violation itself, or (SQLite, from version 3) the no-replace trigger that refuses it first.
pub(crate) fn is_duplicate_key(error: &dyn sqlx::error::DatabaseError) -> bool {
    error.is_unique_violation()
        || (error
            .message()
            .starts_with("the case-event log is append-only: ")
            && error.message().ends_with(" is already stored"))
}

fn tables_for(kind: DatabaseKind) -> String {
    match kind {
        DatabaseKind::Postgres => TABLES_V1
            .replace(
                "{SEQUENCE_KEY}",
                "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY",
            )
            .replace("{BLOB}", "BYTEA"),
        DatabaseKind::Sqlite => TABLES_V1
            .replace("{SEQUENCE_KEY}", "INTEGER PRIMARY KEY AUTOINCREMENT")
            .replace("{BLOB}", "BLOB"),
    }
}

/// A component's tables: its name (its ledger is `<name>_migrations`, and its tables' names
/// start with `<name>_`, which is how [`crate::roles`] finds what a service owns) and its
/// migrations.
#[derive(Debug, Clone, Copy)]
pub struct Component {
    pub name: &'static str,
    pub migrations: &'static [Migration],
}

/// The event log's tables (named without the prefix: they predate the convention).
pub const EVENT_LOG: Component = Component {
    name: "eventlog",
    migrations: MIGRATIONS,
};

/// Applies the migrations not yet applied, each in its own transaction. Safe to call from
/// several services at once.
pub async fn migrate(pool: &AnyPool, kind: DatabaseKind) -> Result<(), StoreError> {
    run_migrations(pool, kind, EVENT_LOG.name, EVENT_LOG.migrations).await
}

/// Why a service will not start on this database's schema.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    #[error(
        "the {component} tables are older than this release (migrations {missing:?} are not applied): run `sunshine migrate` as the tables' owner first"
    )]
    NotMigrated {
        component: String,
        missing: Vec<i64>,
    },
    #[error(
        "cannot read {ledger} ({source}): the schema is not migrated, or this role was not granted it; run `sunshine migrate` as the tables' owner first"
    )]
    Unreadable {
        ledger: String,
        #[source]
        source: sqlx::Error,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Makes sure `component`'s tables are at (at least) every version this binary knows: migrates
/// them when `migrate` is set (SQLite, or `database.migrate_on_start`), and otherwise only
/// checks, refusing with "run `sunshine migrate`" ([`require_migrated`]).
pub async fn prepare(
    pool: &AnyPool,
    kind: DatabaseKind,
    component: Component,
    migrate: bool,
) -> Result<(), SchemaError> {
    if migrate {
        Ok(run_migrations(pool, kind, component.name, component.migrations).await?)
    } else {
        require_migrated(pool, component).await
    }
}

/// Checks that every migration of `component` is recorded in its ledger, without changing
/// anything (a service's role may not). Versions the ledger has beyond ours (a newer release
/// migrated the database) are fine.
pub async fn require_migrated(pool: &AnyPool, component: Component) -> Result<(), SchemaError> {
    check_component_name(component.name)?;
    let ledger = format!("{}_migrations", component.name);
    let applied: Vec<i64> =
        match sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT version FROM {ledger}")))
            .fetch_all(pool)
            .await
        {
            Ok(applied) => applied,
            // No such table, or no privilege on it.
            Err(sqlx::Error::Database(error)) => {
                return Err(SchemaError::Unreadable {
                    ledger,
                    source: sqlx::Error::Database(error),
                });
            }
            Err(other) => return Err(StoreError::Database(other).into()),
        };
    let missing: Vec<i64> = component
        .migrations
        .iter()
        .map(|migration| migration.version)
        .filter(|version| !applied.contains(version))
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(SchemaError::NotMigrated {
            component: component.name.to_owned(),
            missing,
        })
    }
}

fn check_component_name(component: &str) -> Result<(), StoreError> {
    if component.is_empty()
        || !component
            .bytes()
            .all(|byte| byte.is_ascii_lowercase() || byte == b'_')
    {
        return Err(StoreError::Invalid(format!("component name {component}")));
    }
    Ok(())
}

/// Applies `component`'s migrations not yet recorded in `<component>_migrations`, each in its
/// own transaction, serialised across processes (an advisory lock on PostgreSQL, the write lock
/// on SQLite). Services use it for their read models.
pub async fn run_migrations(
    pool: &AnyPool,
    kind: DatabaseKind,
    component: &str,
    migrations: &[Migration],
) -> Result<(), StoreError> {
    check_component_name(component)?;
    let ledger = format!("{component}_migrations");
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "CREATE TABLE IF NOT EXISTS {ledger} (version BIGINT PRIMARY KEY, description TEXT NOT NULL, applied_at_us BIGINT NOT NULL)"
    )))
    .execute(pool)
    .await
    .or_else(ignore_concurrent_create)?;
    for migration in migrations {
        let mut transaction = match kind {
            DatabaseKind::Postgres => pool.begin().await?,
            DatabaseKind::Sqlite => pool.begin_with("BEGIN IMMEDIATE").await?,
        };
        if kind == DatabaseKind::Postgres {
            sqlx::query("SELECT pg_advisory_xact_lock($1)")
                .bind(MIGRATION_LOCK_KEY)
                .execute(&mut *transaction)
                .await?;
        }
        let applied: Option<i64> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT version FROM {ledger} WHERE version = $1"
        )))
        .bind(migration.version)
        .fetch_optional(&mut *transaction)
        .await?;
        if applied.is_some() {
            transaction.rollback().await?;
            continue;
        }
        sqlx::raw_sql(sqlx::AssertSqlSafe((migration.script)(kind)))
            .execute(&mut *transaction)
            .await?;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO {ledger} (version, description, applied_at_us) VALUES ($1, $2, $3)"
        )))
        .bind(migration.version)
        .bind(migration.description)
        .bind(crate::event::now_micros())
        .execute(&mut *transaction)
        .await?;
        transaction.commit().await?;
        tracing::info!(
            component,
            version = migration.version,
            description = migration.description,
            "migrated"
        );
    }
    Ok(())
}

/// `CREATE TABLE IF NOT EXISTS` run by two PostgreSQL sessions at once can still fail on the
/// catalog's unique index; the table exists either way.
fn ignore_concurrent_create(error: sqlx::Error) -> Result<sqlx::any::AnyQueryResult, sqlx::Error> {
    match &error {
        sqlx::Error::Database(database_error) if database_error.is_unique_violation() => {
            Ok(sqlx::any::AnyQueryResult::default())
        }
        _ => Err(error),
    }
}
