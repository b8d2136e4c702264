//! Department integration's tables: `integration_records`, one row per (department, record
//! id) — the guard that makes a push idempotent, written in the push's own append
//! transaction, and the read model a query reads (by the service's person index, never the id
//! number).

use std::collections::BTreeMap;

use sqlx::{AnyConnection, AnyPool, Row as _};
use sunshine_eventlog::AppendGuard;
use sunshine_eventlog::schema::Migration;
use sunshine_platform::config::DatabaseKind;

use crate::aggregate::Prepared;

pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        description: "department-integration: departments' assistance records, one per (department, record id)",
        script: |_kind: DatabaseKind| {
            "CREATE TABLE integration_records (
            department_code TEXT NOT NULL,
            record_id TEXT NOT NULL,
            content_digest TEXT NOT NULL,
            person_index TEXT NOT NULL,
            program_code TEXT NOT NULL,
            kind TEXT NOT NULL,
            amount_fen BIGINT NOT NULL,
            period_start TEXT NOT NULL,
            period_end TEXT NOT NULL,
            batch_stream TEXT NOT NULL,
            PRIMARY KEY (department_code, record_id)
        );
        CREATE INDEX integration_records_person ON integration_records (person_index, program_code);"
            .into()
        },
    },
    // ---- The economic-status check (issue 13, slice 2) ----
    // (version 20: a number of its own, so other slices' migrations merge beside it)
    Migration {
        version: 20,
        description: "department-integration: the economic-status check's requests, one per (check, data holder): the work queue",
        script: |_kind: DatabaseKind| {
            "CREATE TABLE integration_check_requests (
            check_id TEXT NOT NULL,
            department_code TEXT NOT NULL,
            case_id TEXT NOT NULL,
            org_unit_code TEXT NOT NULL,
            round BIGINT NOT NULL,
            deadline TEXT NOT NULL,
            status TEXT NOT NULL,
            PRIMARY KEY (check_id, department_code)
        );
        CREATE INDEX integration_check_requests_queue ON integration_check_requests (status, deadline);"
            .into()
        },
    },
    // ---- Linkage notices (issue 13, slice 3): written by `linkage_store` ----
    // (version 30: a number of its own, so other slices' migrations merge beside it)
    Migration {
        version: 30,
        description: "department-integration: linkage notices, one per (case, rule), with their acknowledgement",
        script: |_kind: DatabaseKind| {
            "CREATE TABLE integration_linkage_notices (
            notice_id TEXT PRIMARY KEY,
            department_code TEXT NOT NULL,
            rule_code TEXT NOT NULL,
            case_id TEXT NOT NULL,
            household_id TEXT NOT NULL,
            program_code TEXT NOT NULL,
            sent_at_us BIGINT NOT NULL,
            outcome TEXT NOT NULL
        );
        CREATE INDEX integration_linkage_notices_department ON integration_linkage_notices (department_code, outcome, notice_id);"
            .into()
        },
    },
    // ---- Duplicate assistance and the monitoring platform (issue 13) ----
    // (versions 40 and 41: numbers of their own, so other slices' migrations merge beside them;
    // the tables' reads and writes are in `duplicates_store` and `monitoring_store`)
    Migration {
        version: 40,
        description: "department-integration: duplicate assistance found across departments, one row per pair",
        script: |_kind: DatabaseKind| {
            "CREATE TABLE integration_duplicates (
            duplicate_id TEXT NOT NULL PRIMARY KEY,
            person_index TEXT NOT NULL,
            program_code TEXT NOT NULL,
            kind TEXT NOT NULL,
            first_department TEXT NOT NULL,
            first_record TEXT NOT NULL,
            second_department TEXT NOT NULL,
            second_record TEXT NOT NULL,
            overlap_start TEXT NOT NULL,
            overlap_end TEXT NOT NULL,
            stream_id TEXT NOT NULL
        );
        CREATE INDEX integration_records_person_kind ON integration_records (person_index, kind);"
                .into()
        },
    },
    Migration {
        version: 41,
        description: "department-integration: the monitoring platform's warnings, one row per warning: the center's work items",
        script: |_kind: DatabaseKind| {
            "CREATE TABLE integration_warnings (
            warning_id TEXT NOT NULL PRIMARY KEY,
            stream_id TEXT NOT NULL,
            content_digest TEXT NOT NULL,
            kind TEXT NOT NULL,
            feed_person_id TEXT NOT NULL,
            program_code TEXT NOT NULL,
            street_town_code TEXT NOT NULL,
            org_unit_code TEXT NOT NULL,
            raised_on TEXT NOT NULL,
            received_on TEXT NOT NULL,
            deadline TEXT NOT NULL,
            status TEXT NOT NULL,
            outcome TEXT NOT NULL,
            closed_on TEXT NOT NULL
        );
        CREATE INDEX integration_warnings_queue ON integration_warnings (status, deadline);"
                .into()
        },
    },
];

/// Look-ups of the `IN (…)` lists per statement: a whole batch (`records::MAX_BATCH`) in one
/// round trip (about a thousand bound values, far under PostgreSQL's and SQLite's limits).
const LOOKUP_CHUNK: usize = 1_000;

/// The digests stored under `record_ids` of `department`.
pub async fn stored_digests(
    pool: &AnyPool,
    department: &str,
    record_ids: &[&str],
) -> Result<BTreeMap<String, String>, sqlx::Error> {
    let mut stored = BTreeMap::new();
    for chunk in record_ids.chunks(LOOKUP_CHUNK) {
        let placeholders: Vec<String> = (0..chunk.len()).map(|i| format!("${}", i + 2)).collect();
        let sql = format!(
            "SELECT record_id, content_digest FROM integration_records WHERE department_code = $1 AND record_id IN ({})",
            placeholders.join(", ")
        );
        // Only placeholders are formatted into the statement; every value is bound.
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(department);
        for id in chunk {
            query = query.bind(*id);
        }
        for row in query.fetch_all(pool).await? {
            stored.insert(row.try_get::<String, _>(0)?, row.try_get::<String, _>(1)?);
        }
    }
    Ok(stored)
}

/// The records a push stores, written with its append: a row already there (a push racing
/// this one) refuses the append, and the caller answers ABORTED.
#[derive(Debug)]
pub struct RecordRows<'a> {
    pub department: &'a str,
    pub batch_stream: &'a str,
    pub rows: &'a [(Prepared, String)],
}

/// Another push stored one of the records first.
#[derive(Debug)]
pub struct StoredMeanwhile;

/// Rows per statement of the guard's bulk insert: a whole batch ([`crate::records::MAX_BATCH`])
/// in one.
const BULK_ROWS: usize = 1_000;

/// `SELECT` of the rows of the JSON array of arrays in parameter `$1` (`json_array_elements`
/// on PostgreSQL, `json_each` on SQLite: sqlx's `Any` driver binds no arrays), column `i` the
/// row's `i`th element as text, `c{i}` (the form payment's guard uses).
fn json_rows(sqlite: bool, columns: usize) -> String {
    let select: Vec<String> = (0..columns)
        .map(|column| {
            if sqlite {
                format!("json_extract(r.value, '$[{column}]') AS c{column}")
            } else {
                format!("r.value->>{column} AS c{column}")
            }
        })
        .collect();
    let from = if sqlite {
        "json_each($1) AS r"
    } else {
        "json_array_elements(CAST($1 AS json)) AS r(value)"
    };
    format!("SELECT {} FROM {from}", select.join(", "))
}

impl AppendGuard for RecordRows<'_> {
    type Refusal = StoredMeanwhile;

    /// One `INSERT … SELECT` over a JSON parameter per [`BULK_ROWS`] records, `ON CONFLICT DO
    /// NOTHING`: fewer rows inserted than records means one was stored meanwhile.
    async fn apply(
        &self,
        connection: &mut AnyConnection,
    ) -> Result<Result<(), StoredMeanwhile>, sqlx::Error> {
        let sqlite = connection.backend_name().eq_ignore_ascii_case("sqlite");
        let statement = format!(
            "INSERT INTO integration_records (department_code, record_id, content_digest, person_index, \
             program_code, kind, amount_fen, period_start, period_end, batch_stream) \
             SELECT $2, j.c0, j.c1, j.c2, j.c3, j.c4, CAST(j.c5 AS BIGINT), j.c6, j.c7, $3 \
             FROM ({}) AS j WHERE 1 = 1 ON CONFLICT DO NOTHING",
            json_rows(sqlite, 8)
        );
        for chunk in self.rows.chunks(BULK_ROWS) {
            let rows: Vec<[String; 8]> = chunk
                .iter()
                .map(|(prepared, digest)| {
                    let record = &prepared.record;
                    [
                        record.record_id.clone(),
                        digest.clone(),
                        hex::encode(prepared.person_index),
                        record.program_code.clone(),
                        record.kind.clone(),
                        record.amount.fen().to_string(),
                        record.period_start.to_string(),
                        record.period_end.to_string(),
                    ]
                })
                .collect();
            let rows = serde_json::to_string(&rows)
                .map_err(|error| sqlx::Error::Encode(Box::new(error)))?;
            // Only the placeholders' SQL is formatted in; every value is bound.
            let inserted = sqlx::query(sqlx::AssertSqlSafe(statement.clone()))
                .bind(rows)
                .bind(self.department)
                .bind(self.batch_stream)
                .execute(&mut *connection)
                .await?
                .rows_affected();
            if inserted < chunk.len() as u64 {
                return Ok(Err(StoredMeanwhile));
            }
        }
        Ok(Ok(()))
    }
}

/// A stored record as a query answers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRecord {
    pub department_code: String,
    pub record_id: String,
    pub program_code: String,
    pub kind: String,
    pub amount_fen: i64,
    pub period_start: String,
    pub period_end: String,
}

/// One page of the person's records of `programs` pushed by `departments` (`None`: any),
/// after the (department, record id) `after`, in that order; `limit + 1` rows tell whether
/// there is more.
pub async fn records_of_person(
    pool: &AnyPool,
    person_index: &[u8; 32],
    programs: &[String],
    department: Option<&str>,
    after: Option<(String, String)>,
    limit: usize,
) -> Result<Vec<StoredRecord>, sqlx::Error> {
    let mut sql = String::from(
        "SELECT department_code, record_id, program_code, kind, amount_fen, period_start, period_end \
         FROM integration_records WHERE person_index = $1",
    );
    let mut next = 2;
    let mut binds: Vec<String> = Vec::new();
    if !programs.is_empty() {
        let placeholders: Vec<String> = programs
            .iter()
            .map(|program| {
                binds.push(program.clone());
                next += 1;
                format!("${}", next - 1)
            })
            .collect();
        sql.push_str(&format!(
            " AND program_code IN ({})",
            placeholders.join(", ")
        ));
    }
    if let Some(department) = department {
        binds.push(department.to_owned());
        sql.push_str(&format!(" AND department_code = ${next}"));
        next += 1;
    }
    if let Some((after_department, after_record)) = after {
        sql.push_str(&format!(
            " AND (department_code > ${a} OR (department_code = ${a} AND record_id > ${b}))",
            a = next,
            b = next + 1
        ));
        binds.push(after_department);
        binds.push(after_record);
    }
    sql.push_str(&format!(
        " ORDER BY department_code, record_id LIMIT {}",
        limit + 1
    ));
    // Only placeholders and the numeric limit are formatted in; every value is bound.
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(hex::encode(person_index));
    for value in &binds {
        query = query.bind(value.as_str());
    }
    query
        .fetch_all(pool)
        .await?
        .into_iter()
        .map(|row| {
            Ok(StoredRecord {
                department_code: row.try_get(0)?,
                record_id: row.try_get(1)?,
                program_code: row.try_get(2)?,
                kind: row.try_get(3)?,
                amount_fen: row.try_get(4)?,
                period_start: row.try_get(5)?,
                period_end: row.try_get(6)?,
            })
        })
        .collect()
}

/// How many records `department` has stored (tests and operators).
pub async fn record_count(pool: &AnyPool, department: &str) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT COUNT(*) FROM integration_records WHERE department_code = $1")
        .bind(department)
        .fetch_one(pool)
        .await
}

// ---- The economic-status check's work queue (issue 13, slice 2) ----

/// A change to the check's request rows, written in the check's append transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestRow {
    /// A request sent: a new open row.
    Sent {
        check_id: String,
        department_code: String,
        case_id: String,
        org_unit_code: String,
        round: u32,
        /// YYYY-MM-DD.
        deadline: String,
    },
    /// A request answered or overdue.
    Status {
        check_id: String,
        department_code: String,
        status: &'static str,
    },
}

/// The rows a check's append writes (never refuses: the stream's version guards the check).
#[derive(Debug)]
pub struct CheckRows<'a> {
    pub rows: &'a [RequestRow],
}

impl AppendGuard for CheckRows<'_> {
    type Refusal = std::convert::Infallible;

    async fn apply(
        &self,
        connection: &mut AnyConnection,
    ) -> Result<Result<(), Self::Refusal>, sqlx::Error> {
        for row in self.rows {
            match row {
                RequestRow::Sent {
                    check_id,
                    department_code,
                    case_id,
                    org_unit_code,
                    round,
                    deadline,
                } => {
                    sqlx::query(
                        "INSERT INTO integration_check_requests (check_id, department_code, case_id, \
                         org_unit_code, round, deadline, status) VALUES ($1, $2, $3, $4, $5, $6, 'open')",
                    )
                    .bind(check_id.as_str())
                    .bind(department_code.as_str())
                    .bind(case_id.as_str())
                    .bind(org_unit_code.as_str())
                    .bind(i64::from(*round))
                    .bind(deadline.as_str())
                    .execute(&mut *connection)
                    .await?;
                }
                RequestRow::Status {
                    check_id,
                    department_code,
                    status,
                } => {
                    sqlx::query(
                        "UPDATE integration_check_requests SET status = $1 WHERE check_id = $2 AND department_code = $3",
                    )
                    .bind(*status)
                    .bind(check_id.as_str())
                    .bind(department_code.as_str())
                    .execute(&mut *connection)
                    .await?;
                }
            }
        }
        Ok(Ok(()))
    }
}

/// One row of the work queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedRequest {
    pub check_id: String,
    pub case_id: String,
    pub department_code: String,
    pub deadline: String,
    pub status: String,
    pub round: i64,
}

/// The open checks with a request still open whose deadline is before `today` (YYYY-MM-DD).
pub async fn checks_with_late_requests(
    pool: &AnyPool,
    today: &str,
) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT DISTINCT check_id FROM integration_check_requests WHERE status = 'open' AND deadline < $1 ORDER BY check_id",
    )
    .bind(today)
    .fetch_all(pool)
    .await
}

/// One page of the queue: requests of `statuses`, of `department` when given, after the
/// (deadline, check id, department) `after`, in that order; `limit + 1` rows tell whether there
/// is more.
pub async fn work_queue(
    pool: &AnyPool,
    statuses: &[&str],
    department: Option<&str>,
    after: Option<(String, String, String)>,
    limit: usize,
) -> Result<Vec<QueuedRequest>, sqlx::Error> {
    let mut sql = String::from(
        "SELECT check_id, case_id, department_code, deadline, status, round FROM integration_check_requests WHERE status IN (",
    );
    let mut binds: Vec<String> = Vec::new();
    let placeholders: Vec<String> = statuses
        .iter()
        .map(|status| {
            binds.push((*status).to_owned());
            format!("${}", binds.len())
        })
        .collect();
    sql.push_str(&placeholders.join(", "));
    sql.push(')');
    if let Some(department) = department {
        binds.push(department.to_owned());
        sql.push_str(&format!(" AND department_code = ${}", binds.len()));
    }
    if let Some((deadline, check_id, department)) = after {
        let base = binds.len();
        sql.push_str(&format!(
            " AND (deadline > ${a} OR (deadline = ${a} AND (check_id > ${b} OR (check_id = ${b} AND department_code > ${c}))))",
            a = base + 1,
            b = base + 2,
            c = base + 3
        ));
        binds.extend([deadline, check_id, department]);
    }
    sql.push_str(&format!(
        " ORDER BY deadline, check_id, department_code LIMIT {}",
        limit + 1
    ));
    // Only placeholders and the numeric limit are formatted in; every value is bound.
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
    for value in &binds {
        query = query.bind(value.as_str());
    }
    query
        .fetch_all(pool)
        .await?
        .into_iter()
        .map(|row| {
            Ok(QueuedRequest {
                check_id: row.try_get(0)?,
                case_id: row.try_get(1)?,
                department_code: row.try_get(2)?,
                deadline: row.try_get(3)?,
                status: row.try_get(4)?,
                round: row.try_get(5)?,
            })
        })
        .collect()
}
