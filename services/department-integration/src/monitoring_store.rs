//! The monitoring warnings' loads and appends: an import's stream (from its command id, so a
//! retry lands on it) with the new warnings' `integration_warnings` rows in the same
//! transaction, a warning's closing on its own stream with its row's update, and the work
//! list's page.

use std::collections::BTreeMap;

use sqlx::{AnyConnection, AnyPool, Row as _};
use sunshine_eventlog::{
    AppendGuard, EventMetadata, ExpectedVersion, GuardedAppend, NewEvent, StoreError, StreamId,
};
use sunshine_platform::ApiError;
use sunshine_proto::events::StreamEvent as _;
use sunshine_proto::v1 as pb;

use crate::monitoring::{FeedEvent, FeedRecord, WarningBatchEvent, WarningEvent};
use crate::store::IntegrationStore;

const LOOKUP_CHUNK: usize = 200;

fn stream_of(kind: &str, seed: &str) -> Result<StreamId, ApiError> {
    let id = uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, seed.as_bytes());
    StreamId::new("department-integration", kind, &id.simple().to_string())
        .map_err(|error| ApiError::internal(std::io::Error::other(error.to_string())))
}

/// An import's stream, from its command id.
pub fn import_stream(command_id: &str) -> Result<StreamId, ApiError> {
    stream_of(
        "warningbatch",
        &format!("department-integration/warnings\n{command_id}"),
    )
}

/// A warning's own stream (its closing), from its id.
pub fn warning_stream(warning_id: &str) -> Result<StreamId, ApiError> {
    stream_of(
        "warning",
        &format!("department-integration/warning\n{warning_id}"),
    )
}

/// A warning's row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WarningRow {
    pub warning_id: String,
    pub content_digest: String,
    pub kind: String,
    pub feed_person_id: String,
    pub program_code: String,
    pub street_town_code: String,
    pub org_unit_code: String,
    pub raised_on: String,
    pub received_on: String,
    pub deadline: String,
    pub status: String,
    pub outcome: String,
    pub closed_on: String,
}

const COLUMNS: &str = "warning_id, content_digest, kind, feed_person_id, program_code, street_town_code, \
     org_unit_code, raised_on, received_on, deadline, status, outcome, closed_on";

fn row_of(row: &sqlx::any::AnyRow) -> Result<WarningRow, sqlx::Error> {
    Ok(WarningRow {
        warning_id: row.try_get(0)?,
        content_digest: row.try_get(1)?,
        kind: row.try_get(2)?,
        feed_person_id: row.try_get(3)?,
        program_code: row.try_get(4)?,
        street_town_code: row.try_get(5)?,
        org_unit_code: row.try_get(6)?,
        raised_on: row.try_get(7)?,
        received_on: row.try_get(8)?,
        deadline: row.try_get(9)?,
        status: row.try_get(10)?,
        outcome: row.try_get(11)?,
        closed_on: row.try_get(12)?,
    })
}

/// The digests of the warnings among `ids` received before.
pub async fn known_warnings(
    pool: &AnyPool,
    ids: &[&str],
) -> Result<BTreeMap<String, String>, sqlx::Error> {
    let mut known = BTreeMap::new();
    for chunk in ids.chunks(LOOKUP_CHUNK) {
        let places: Vec<String> = (0..chunk.len()).map(|i| format!("${}", i + 1)).collect();
        let sql = format!(
            "SELECT warning_id, content_digest FROM integration_warnings WHERE warning_id IN ({})",
            places.join(", ")
        );
        // Only placeholders are formatted into the statement; every value is bound.
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for id in chunk {
            query = query.bind(*id);
        }
        for row in query.fetch_all(pool).await? {
            known.insert(row.try_get(0)?, row.try_get(1)?);
        }
    }
    Ok(known)
}

/// A warning's row, if it was received.
pub async fn warning(pool: &AnyPool, warning_id: &str) -> Result<Option<WarningRow>, sqlx::Error> {
    let sql = format!("SELECT {COLUMNS} FROM integration_warnings WHERE warning_id = $1");
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(warning_id)
        .fetch_optional(pool)
        .await?
        .as_ref()
        .map(row_of)
        .transpose()
}

/// Which warnings a list shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Filter {
    /// Open, deadline not passed.
    Open,
    /// Open past the deadline.
    Overdue,
    /// Open, either.
    Unclosed,
    Closed,
}

/// One page of warnings of `filter` as of `today` (YYYY-MM-DD), by (deadline, warning id)
/// after `after`; `limit + 1` rows tell whether there is more.
pub async fn list_warnings(
    pool: &AnyPool,
    filter: Filter,
    today: &str,
    after: Option<(String, String)>,
    limit: usize,
) -> Result<Vec<WarningRow>, sqlx::Error> {
    let condition = match filter {
        Filter::Open => "status = 'open' AND deadline >= $1",
        Filter::Overdue => "status = 'open' AND deadline < $1",
        Filter::Unclosed => "status = 'open' AND $1 = $1",
        Filter::Closed => "status = 'closed' AND $1 = $1",
    };
    let mut sql = format!("SELECT {COLUMNS} FROM integration_warnings WHERE {condition}");
    if after.is_some() {
        sql.push_str(" AND (deadline > $2 OR (deadline = $2 AND warning_id > $3))");
    }
    sql.push_str(&format!(
        " ORDER BY deadline, warning_id LIMIT {}",
        limit + 1
    ));
    // Only fixed conditions, placeholders and the numeric limit are formatted in.
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(today);
    if let Some((deadline, warning_id)) = after {
        query = query.bind(deadline).bind(warning_id);
    }
    query.fetch_all(pool).await?.iter().map(row_of).collect()
}

/// One page of the records in force in `month` (YYYY-MM), by (department, record id) after
/// `after`; `limit + 1` rows tell whether there is more.
pub async fn feed_records(
    pool: &AnyPool,
    month: &str,
    after: Option<(String, String)>,
    limit: usize,
) -> Result<Vec<(String, String, FeedRecord)>, sqlx::Error> {
    let mut sql = String::from(
        "SELECT department_code, record_id, person_index, program_code, kind, amount_fen, period_start, period_end \
         FROM integration_records WHERE period_start <= $1 AND period_end >= $1",
    );
    if after.is_some() {
        sql.push_str(" AND (department_code > $2 OR (department_code = $2 AND record_id > $3))");
    }
    sql.push_str(&format!(
        " ORDER BY department_code, record_id LIMIT {}",
        limit + 1
    ));
    // Only fixed conditions and the numeric limit are formatted in; every value is bound.
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(month);
    if let Some((department, record)) = after {
        query = query.bind(department).bind(record);
    }
    query
        .fetch_all(pool)
        .await?
        .iter()
        .map(|row| {
            let department: String = row.try_get(0)?;
            Ok((
                department.clone(),
                row.try_get(1)?,
                FeedRecord {
                    department_code: department,
                    person_index: row.try_get(2)?,
                    program_code: row.try_get(3)?,
                    kind: row.try_get(4)?,
                    amount_fen: row.try_get(5)?,
                    period_start: row.try_get(6)?,
                    period_end: row.try_get(7)?,
                },
            ))
        })
        .collect()
}

/// Attempts to append an export at the end of its stream.
const EXPORT_ATTEMPTS: u32 = 5;

/// The new warnings' rows, written with the import's append; a row there already (an import
/// racing this one) refuses it.
#[derive(Debug)]
struct ReceivedRows<'a> {
    stream: &'a str,
    rows: &'a [WarningRow],
}

/// Another import received one of the warnings first.
#[derive(Debug)]
pub struct ReceivedMeanwhile;

impl AppendGuard for ReceivedRows<'_> {
    type Refusal = ReceivedMeanwhile;

    async fn apply(
        &self,
        connection: &mut AnyConnection,
    ) -> Result<Result<(), ReceivedMeanwhile>, sqlx::Error> {
        for row in self.rows {
            let inserted = sqlx::query(
                "INSERT INTO integration_warnings (warning_id, stream_id, content_digest, kind, feed_person_id, \
                 program_code, street_town_code, org_unit_code, raised_on, received_on, deadline, status, outcome, closed_on) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 'open', '', '') ON CONFLICT DO NOTHING",
            )
            .bind(row.warning_id.as_str())
            .bind(self.stream)
            .bind(row.content_digest.as_str())
            .bind(row.kind.as_str())
            .bind(row.feed_person_id.as_str())
            .bind(row.program_code.as_str())
            .bind(row.street_town_code.as_str())
            .bind(row.org_unit_code.as_str())
            .bind(row.raised_on.as_str())
            .bind(row.received_on.as_str())
            .bind(row.deadline.as_str())
            .execute(&mut *connection)
            .await?
            .rows_affected();
            if inserted == 0 {
                return Ok(Err(ReceivedMeanwhile));
            }
        }
        Ok(Ok(()))
    }
}

/// The closing's update of the row.
#[derive(Debug)]
struct ClosedRow<'a> {
    closed: &'a pb::MonitoringWarningClosed,
    closed_on: &'a str,
}

impl AppendGuard for ClosedRow<'_> {
    type Refusal = std::convert::Infallible;

    async fn apply(
        &self,
        connection: &mut AnyConnection,
    ) -> Result<Result<(), Self::Refusal>, sqlx::Error> {
        sqlx::query(
            "UPDATE integration_warnings SET status = 'closed', outcome = $1, closed_on = $2 WHERE warning_id = $3",
        )
        .bind(self.closed.outcome.as_str())
        .bind(self.closed_on)
        .bind(self.closed.warning_id.as_str())
        .execute(&mut *connection)
        .await?;
        Ok(Ok(()))
    }
}

/// A closing's append: appended, or the warning closed meanwhile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Closing {
    Appended,
    ClosedMeanwhile,
}

impl IntegrationStore {
    /// Records a feed page exported, at the end of the month's feed stream.
    pub async fn record_export(
        &self,
        metadata: &EventMetadata,
        exported: pb::MonitoringFeedExported,
    ) -> Result<(), ApiError> {
        let stream = StreamId::new("department-integration", "feed", &exported.month)
            .map_err(|error| ApiError::internal(std::io::Error::other(error.to_string())))?;
        let event = NewEvent::typed(stream.as_str(), &FeedEvent::Exported(exported));
        let mut attempt = 1;
        loop {
            match self
                .log
                .store
                .append(&stream, ExpectedVersion::Any, metadata, vec![event.clone()])
                .await
            {
                Ok(_) => return Ok(()),
                Err(StoreError::Conflict { .. }) if attempt < EXPORT_ATTEMPTS => attempt += 1,
                Err(error) => return Err(error.into()),
            }
        }
    }

    /// The first append's events when `metadata`'s import was appended before (a retry).
    pub async fn previous_import(
        &self,
        stream: &StreamId,
        metadata: &EventMetadata,
    ) -> Result<Option<Vec<WarningBatchEvent>>, ApiError> {
        let Some(outcome) = self.log.store.previous_outcome(stream, metadata).await? else {
            return Ok(None);
        };
        outcome
            .events
            .iter()
            .map(|event| {
                WarningBatchEvent::decode(&event.event_type, &event.payload)
                    .map_err(|error| ApiError::internal(std::io::Error::other(error.to_string())))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    }

    /// Appends an import's received warnings with their rows; `Ok(false)`: another import
    /// received one of them meanwhile (nothing written).
    pub async fn append_import(
        &self,
        metadata: &EventMetadata,
        stream: &StreamId,
        events: &[WarningBatchEvent],
        rows: &[WarningRow],
    ) -> Result<bool, ApiError> {
        if events.is_empty() {
            return Ok(true);
        }
        let new_events = events
            .iter()
            .map(|event| NewEvent::typed(stream.as_str(), event))
            .collect();
        let guard = ReceivedRows {
            stream: stream.as_str(),
            rows,
        };
        match self
            .log
            .store
            .append_guarded(
                stream,
                ExpectedVersion::NoStream,
                metadata,
                new_events,
                &guard,
            )
            .await?
        {
            GuardedAppend::Appended(_) => Ok(true),
            GuardedAppend::Refused(_) => Ok(false),
        }
    }

    /// Whether `metadata`'s closing was appended before (a retry).
    pub async fn previous_closing(
        &self,
        stream: &StreamId,
        metadata: &EventMetadata,
    ) -> Result<bool, ApiError> {
        Ok(self
            .log
            .store
            .previous_outcome(stream, metadata)
            .await?
            .is_some())
    }

    /// Appends a warning's closing with its row's update.
    pub async fn append_closing(
        &self,
        metadata: &EventMetadata,
        stream: &StreamId,
        closed: &pb::MonitoringWarningClosed,
        closed_on: &str,
    ) -> Result<Closing, ApiError> {
        let event = WarningEvent::Closed(closed.clone());
        let guard = ClosedRow { closed, closed_on };
        match self
            .log
            .store
            .append_guarded(
                stream,
                ExpectedVersion::NoStream,
                metadata,
                vec![NewEvent::typed(stream.as_str(), &event)],
                &guard,
            )
            .await
        {
            Ok(_) => Ok(Closing::Appended),
            Err(StoreError::Conflict { .. }) => Ok(Closing::ClosedMeanwhile),
            Err(error) => Err(error.into()),
        }
    }
}
