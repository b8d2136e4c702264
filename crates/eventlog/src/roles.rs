//! Who may do what in the database, on PostgreSQL (SQLite has no roles): each service logs in
//! as a role of its own, which may read and append to the log, keep the log's bookkeeping and
//! its own read model, and nothing else. Not being the tables' owner, it cannot UPDATE, DELETE
//! or TRUNCATE the log, ALTER its tables or disable or drop the append-only triggers: only the
//! owner can, and only `sunshine migrate` logs in as the owner.
//!
//! # Roles
//!
//! | role | login | privileges |
//! |---|---|---|
//! | `sunshine_log_writer` | no (a group) | SELECT, INSERT on `events`, `event_commands`, `log_entries`, `log_checkpoints`; the log's bookkeeping ([`LOG_PRIVILEGES`]); SELECT on `eventlog_migrations` |
//! | `sunshine_<service>` | yes | member of `sunshine_log_writer` if the service runs the log; DELETE on `data_keys` and INSERT on `destroyed_data_keys` only if it holds the key-encryption key ([`KEY_HOLDER_PRIVILEGES`]); if it runs the log, INSERT on `events` and `event_commands` only for rows of its own streams (`<service>-…`, row-level security: [`APPEND_TABLES`]); SELECT, INSERT, UPDATE, DELETE on its own tables (`<component>_…`), SELECT on its ledger `<component>_migrations` |
//!
//! Roles live in the whole PostgreSQL server, not in one database. The DBA creates them once
//! (with passwords), e.g. with [`role_script`]; the owner then needs no CREATEROLE. An owner that
//! has it (a development superuser) creates whatever is missing itself: the group NOLOGIN, the
//! services' roles LOGIN without a password (they can only log in by password once the DBA
//! sets one). Creating is idempotent and safe while several databases of one server are
//! migrated at once. Table privileges belong to one database and are set on every run, exactly:
//! what the roles held on the log's tables is revoked in the same transaction.

use sqlx::AnyPool;

use crate::schema::MIGRATION_LOCK_KEY;

/// The group every service that runs the log belongs to.
pub const LOG_WRITER_ROLE: &str = "sunshine_log_writer";

/// What [`LOG_WRITER_ROLE`] may do on each of the log's tables. The first four are the record
/// itself: read and append, nothing else.
pub const LOG_PRIVILEGES: &[(&str, &str)] = &[
    ("events", "SELECT, INSERT"),
    ("event_commands", "SELECT, INSERT"),
    ("log_entries", "SELECT, INSERT"),
    ("log_checkpoints", "SELECT, INSERT"),
    // Where each relay and consumer stands.
    ("log_cursors", "SELECT, INSERT, UPDATE"),
    // Exactly-once marks of releases before consumers kept a cursor (no longer written); a
    // rebuild deletes the consumer's own.
    ("consumer_processed", "SELECT, INSERT, DELETE"),
    ("consumer_failures", "SELECT, INSERT, UPDATE, DELETE"),
    ("dead_letters", "SELECT, INSERT, UPDATE"),
    // Data keys are created by every role that seals; destroying them (crypto-shredding, which
    // records the destruction) only by the roles that hold the key-encryption key
    // ([`KEY_HOLDER_PRIVILEGES`]).
    ("data_keys", "SELECT, INSERT"),
    ("destroyed_data_keys", "SELECT"),
    ("eventlog_migrations", "SELECT"),
];

/// What a role that holds the key-encryption key may do beyond [`LOG_PRIVILEGES`]: destroy a
/// subject's data keys and record it. A role without that key (review, the log process) could
/// otherwise shred every household's personal data for good.
pub const KEY_HOLDER_PRIVILEGES: &[(&str, &str)] =
    &[("data_keys", "DELETE"), ("destroyed_data_keys", "INSERT")];

/// The record's tables that carry a stream id: a role inserts only rows of its own streams.
pub const APPEND_TABLES: [&str; 2] = ["events", "event_commands"];

/// What one service needs in the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServiceAccess {
    /// The service's name (`intake`, `department-integration`, …).
    pub service: &'static str,
    /// Whether it runs the log (appends, sequences, relays, consumes): then its role joins
    /// [`LOG_WRITER_ROLE`].
    pub writes_log: bool,
    /// The component whose tables (`<component>_…`) are the service's own read model.
    pub read_model: Option<&'static str>,
    /// Whether its role holds the key-encryption key (`LogKeys::key_encryption`): then it may
    /// also destroy data keys ([`KEY_HOLDER_PRIVILEGES`]).
    pub holds_key_encryption: bool,
}

impl ServiceAccess {
    /// The role the service logs in as.
    pub fn role(&self) -> String {
        service_role(self.service)
    }
}

/// `sunshine_<service>`, hyphens as underscores: the role service `service` logs in as.
pub fn service_role(service: &str) -> String {
    format!("sunshine_{}", service.replace('-', "_"))
}

/// Why the services' access could not be granted.
#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    #[error(
        "missing in the database server, and this role may not create them: {}; ask the DBA to create them (`sunshine migrate --print-role-sql` prints the SQL, docs/operations.md explains it), then run `sunshine migrate` again",
        .missing.join(", ")
    )]
    NeedsDba { missing: Vec<String> },
    #[error("role name {0} is not lowercase letters, digits and underscores")]
    InvalidRoleName(String),
    #[error("granting access: {0}")]
    Database(#[from] sqlx::Error),
}

/// What [`grant_access`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccessReport {
    /// Roles and memberships this run created (empty when the DBA had made them).
    pub created: Vec<String>,
    /// `role: table` for every table privilege set.
    pub granted: Vec<String>,
}

/// One role or membership the services need.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Need {
    Role { name: String, login: bool },
    Membership { group: String, member: String },
}

impl Need {
    fn describe(&self) -> String {
        match self {
            Need::Role { name, login: true } => format!("login role {name}"),
            Need::Role { name, login: false } => format!("group role {name}"),
            Need::Membership { group, member } => format!("{member} as a member of {group}"),
        }
    }

    /// Idempotent SQL that creates it; a concurrent creator's success counts as ours.
    fn sql(&self) -> String {
        let body = match self {
            Need::Role { name, login } => format!(
                "IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{name}') THEN\n        CREATE ROLE {name} {};\n    END IF;",
                if *login { "LOGIN" } else { "NOLOGIN" }
            ),
            Need::Membership { group, member } => format!(
                "IF NOT pg_has_role('{member}', '{group}', 'MEMBER') THEN\n        GRANT {group} TO {member};\n    END IF;"
            ),
        };
        format!(
            "DO $sunshine$\nBEGIN\n    {body}\nEXCEPTION WHEN duplicate_object OR unique_violation THEN\n    NULL; -- made meanwhile by another session\nEND\n$sunshine$;\n"
        )
    }
}

fn needs(services: &[ServiceAccess]) -> Result<Vec<Need>, AccessError> {
    let mut needs = vec![Need::Role {
        name: LOG_WRITER_ROLE.to_owned(),
        login: false,
    }];
    for service in services {
        let role = checked_role_name(service.role())?;
        needs.push(Need::Role {
            name: role.clone(),
            login: true,
        });
        if service.writes_log {
            needs.push(Need::Membership {
                group: LOG_WRITER_ROLE.to_owned(),
                member: role,
            });
        }
    }
    Ok(needs)
}

fn checked_role_name(name: String) -> Result<String, AccessError> {
    let valid = !name.is_empty()
        && name
            .bytes()
            .all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit() || byte == b'_');
    if valid {
        Ok(name)
    } else {
        Err(AccessError::InvalidRoleName(name))
    }
}

/// The SQL a DBA runs (as a superuser or a role with CREATEROLE) to create the roles and
/// memberships `services` need; idempotent. Passwords are the DBA's:
/// `ALTER ROLE sunshine_intake PASSWORD '…'` afterwards.
pub fn role_script(services: &[ServiceAccess]) -> Result<String, AccessError> {
    let mut script = String::from(
        "-- Sunshine Assistance: the database roles (once per PostgreSQL server; idempotent).\n",
    );
    for need in needs(services)? {
        script.push_str(&format!("-- {}\n", need.describe()));
        script.push_str(&need.sql());
    }
    Ok(script)
}

async fn is_present(pool: &AnyPool, need: &Need) -> Result<bool, sqlx::Error> {
    match need {
        Need::Role { name, .. } => {
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)")
                .bind(name.as_str())
                .fetch_one(pool)
                .await
        }
        Need::Membership { group, member } => {
            let both_exist: bool = sqlx::query_scalar(
                "SELECT COUNT(*) = 2 FROM pg_roles WHERE rolname = $1 OR rolname = $2",
            )
            .bind(group.as_str())
            .bind(member.as_str())
            .fetch_one(pool)
            .await?;
            if !both_exist {
                return Ok(false);
            }
            sqlx::query_scalar("SELECT pg_has_role($1, $2, 'MEMBER')")
                .bind(member.as_str())
                .bind(group.as_str())
                .fetch_one(pool)
                .await
        }
    }
}

/// Makes sure the roles `services` log in as exist (creating them only if missing, and only
/// if this role may), then grants each exactly what it needs on this database's tables. Run it
/// as the tables' owner, after the migrations (`sunshine migrate` does).
pub async fn grant_access(
    pool: &AnyPool,
    services: &[ServiceAccess],
) -> Result<AccessReport, AccessError> {
    let mut report = AccessReport::default();
    let mut missing = Vec::new();
    let mut missing_roles = Vec::new();
    for need in needs(services)? {
        if let Need::Membership { group, member } = &need
            && (missing_roles.contains(group) || missing_roles.contains(member))
        {
            missing.push(need.describe());
            continue;
        }
        if is_present(pool, &need).await? {
            continue;
        }
        match sqlx::raw_sql(sqlx::AssertSqlSafe(need.sql()))
            .execute(pool)
            .await
        {
            Ok(_) => report.created.push(need.describe()),
            // Not allowed to (no CREATEROLE, no ADMIN OPTION on the group): the DBA's part.
            Err(sqlx::Error::Database(error)) if error.code().as_deref() == Some("42501") => {
                if let Need::Role { name, .. } = &need {
                    missing_roles.push(name.clone());
                }
                missing.push(need.describe());
            }
            Err(error) => return Err(error.into()),
        }
    }
    if !missing.is_empty() {
        return Err(AccessError::NeedsDba { missing });
    }

    let service_roles: Vec<String> = services.iter().map(ServiceAccess::role).collect();
    let mut statements = Vec::new();
    let everyone = std::iter::once("PUBLIC".to_owned())
        .chain(std::iter::once(LOG_WRITER_ROLE.to_owned()))
        .chain(service_roles.iter().cloned())
        .collect::<Vec<_>>()
        .join(", ");
    for (table, privileges) in LOG_PRIVILEGES {
        statements.push(format!("REVOKE ALL ON {table} FROM {everyone}"));
        statements.push(format!(
            "GRANT {privileges} ON {table} TO {LOG_WRITER_ROLE}"
        ));
        report.granted.push(format!("{LOG_WRITER_ROLE}: {table}"));
    }
    for service in services
        .iter()
        .filter(|service| service.writes_log && service.holds_key_encryption)
    {
        let role = service.role();
        for (table, privileges) in KEY_HOLDER_PRIVILEGES {
            statements.push(format!("GRANT {privileges} ON {table} TO {role}"));
            report
                .granted
                .push(format!("{role}: {table} ({privileges})"));
        }
    }
    let mut transaction = pool.begin().await?;
    // One migrator at a time per database (the same lock the migrations take).
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(MIGRATION_LOCK_KEY)
        .execute(&mut *transaction)
        .await?;
    for service in services {
        let Some(component) = service.read_model else {
            continue;
        };
        let role = service.role();
        let ledger = format!("{component}_migrations");
        let tables: Vec<String> = sqlx::query_scalar(
            "SELECT tablename::text FROM pg_tables WHERE schemaname = current_schema() \
             AND left(tablename, length($1)) = $1 ORDER BY tablename",
        )
        .bind(format!("{component}_"))
        .fetch_all(&mut *transaction)
        .await?;
        for table in tables {
            let privileges = if table == ledger {
                "SELECT"
            } else {
                "SELECT, INSERT, UPDATE, DELETE"
            };
            let quoted = quote_identifier(&table);
            statements.push(format!("REVOKE ALL ON {quoted} FROM PUBLIC, {role}"));
            statements.push(format!("GRANT {privileges} ON {quoted} TO {role}"));
            report.granted.push(format!("{role}: {table}"));
        }
        let sequences: Vec<String> = sqlx::query_scalar(
            "SELECT sequencename::text FROM pg_sequences WHERE schemaname = current_schema() \
             AND left(sequencename, length($1)) = $1 ORDER BY sequencename",
        )
        .bind(format!("{component}_"))
        .fetch_all(&mut *transaction)
        .await?;
        for sequence in sequences {
            statements.push(format!(
                "GRANT USAGE, SELECT ON SEQUENCE {} TO {role}",
                quote_identifier(&sequence)
            ));
        }
    }
    // Each role appends only to its own streams (`<service>-<kind>-<id>`): row-level security
    // on the record's two tables that carry a stream, one INSERT policy per role; every role of
    // the group reads all of it. The owner is not subject to it (it migrates and rebuilds).
    for table in APPEND_TABLES {
        statements.push(format!("ALTER TABLE {table} ENABLE ROW LEVEL SECURITY"));
        let policies: Vec<String> = sqlx::query_scalar(
            "SELECT policyname::text FROM pg_policies WHERE schemaname = current_schema() \
             AND tablename = $1 AND left(policyname, 9) = 'sunshine_' ORDER BY policyname",
        )
        .bind(table)
        .fetch_all(&mut *transaction)
        .await?;
        for policy in policies {
            statements.push(format!(
                "DROP POLICY {} ON {table}",
                quote_identifier(&policy)
            ));
        }
        statements.push(format!(
            "CREATE POLICY sunshine_read ON {table} FOR SELECT TO {LOG_WRITER_ROLE} USING (true)"
        ));
        for service in services.iter().filter(|service| service.writes_log) {
            let role = service.role();
            statements.push(format!(
                "CREATE POLICY {} ON {table} FOR INSERT TO {role} WITH CHECK (starts_with(stream_id, {}))",
                quote_identifier(&format!("sunshine_append_{role}")),
                quote_literal(&format!("{}-", service.service)),
            ));
            report
                .granted
                .push(format!("{role}: {table} rows of {}-…", service.service));
        }
    }
    // The roles use the schema; they may not create anything in it (PostgreSQL 15 and later
    // already deny PUBLIC that; before 15 it is granted by default).
    let roles = std::iter::once(LOG_WRITER_ROLE.to_owned())
        .chain(service_roles.iter().cloned())
        .collect::<Vec<_>>()
        .join(", ");
    statements.push(format!(
        "DO $sunshine$\nBEGIN\n    EXECUTE format('GRANT USAGE ON SCHEMA %I TO {roles}', current_schema());\n    \
         IF EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = current_schema() AND pg_has_role(nspowner, 'USAGE')) THEN\n        \
         EXECUTE format('REVOKE CREATE ON SCHEMA %I FROM PUBLIC, {roles}', current_schema());\n    END IF;\nEND\n$sunshine$"
    ));
    for statement in statements {
        sqlx::raw_sql(sqlx::AssertSqlSafe(statement))
            .execute(&mut *transaction)
            .await?;
    }
    transaction.commit().await?;
    Ok(report)
}

fn quote_identifier(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn quote_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const SERVICES: &[ServiceAccess] = &[
        ServiceAccess {
            service: "intake",
            writes_log: true,
            read_model: Some("intake"),
            holds_key_encryption: true,
        },
        ServiceAccess {
            service: "department-integration",
            writes_log: false,
            read_model: None,
            holds_key_encryption: false,
        },
    ];

    #[test]
    fn roles_are_named_after_services() {
        assert_eq!(service_role("intake"), "sunshine_intake");
        assert_eq!(
            service_role("department-integration"),
            "sunshine_department_integration"
        );
    }

    #[test]
    fn the_role_script_creates_each_role_and_membership_only_if_missing() {
        let script = role_script(SERVICES).unwrap();
        assert!(script.contains("CREATE ROLE sunshine_log_writer NOLOGIN;"));
        assert!(script.contains("CREATE ROLE sunshine_intake LOGIN;"));
        assert!(script.contains("CREATE ROLE sunshine_department_integration LOGIN;"));
        assert!(script.contains("GRANT sunshine_log_writer TO sunshine_intake;"));
        assert!(!script.contains("TO sunshine_department_integration;"));
        assert_eq!(
            script.matches("IF NOT").count(),
            4,
            "every statement is guarded: {script}"
        );
        assert_eq!(
            script
                .matches("EXCEPTION WHEN duplicate_object OR unique_violation")
                .count(),
            4
        );
    }

    #[test]
    fn a_bad_role_name_is_refused() {
        let bad = [ServiceAccess {
            service: "x'; DROP TABLE events; --",
            writes_log: false,
            read_model: None,
            holds_key_encryption: false,
        }];
        assert!(matches!(
            role_script(&bad),
            Err(AccessError::InvalidRoleName(_))
        ));
    }
}
