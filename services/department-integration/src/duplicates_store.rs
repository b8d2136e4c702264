//! Duplicate assistance's loads and appends: the stored records of a push's persons of the
//! kinds the policy compares, the pairs found before, each new pair's `DuplicateAssistanceDetected`
//! on its own stream with its `integration_duplicates` row in the same transaction (a pair
//! whose stream exists was found by a push racing this one: nothing more), and the work
//! queue's page.

use std::collections::BTreeSet;

use sqlx::{AnyConnection, AnyPool, Row as _};
use sunshine_domain::Month;
use sunshine_eventlog::{
    AppendGuard, EventMetadata, ExpectedVersion, NewEvent, StoreError, StreamId, actor_of,
};
use sunshine_platform::{ApiError, Identity};
use sunshine_proto::v1 as pb;

use crate::duplicates::{self, Candidate, DuplicateEvent, DuplicateRules};
use crate::store::IntegrationStore;

/// Look-ups of the `IN (…)` lists per statement: a whole batch (`records::MAX_BATCH`) in one
/// round trip (about a thousand bound values, far under PostgreSQL's and SQLite's limits).
const LOOKUP_CHUNK: usize = 1_000;

/// The pair's stream.
pub fn duplicate_stream(duplicate_id: &str) -> Result<StreamId, ApiError> {
    StreamId::new("department-integration", "duplicate", duplicate_id)
        .map_err(|error| ApiError::internal(std::io::Error::other(error.to_string())))
}

/// The stored records of the persons `person_indexes` (hex) of `kinds`, any department.
pub async fn records_of_persons(
    pool: &AnyPool,
    person_indexes: &[String],
    kinds: &[String],
) -> Result<Vec<Candidate>, sqlx::Error> {
    let mut found = Vec::new();
    if kinds.is_empty() {
        return Ok(found);
    }
    for chunk in person_indexes.chunks(LOOKUP_CHUNK) {
        let persons: Vec<String> = (0..chunk.len()).map(|i| format!("${}", i + 1)).collect();
        let kind_places: Vec<String> = (0..kinds.len())
            .map(|i| format!("${}", chunk.len() + i + 1))
            .collect();
        let sql = format!(
            "SELECT department_code, record_id, person_index, program_code, kind, amount_fen, period_start, period_end \
             FROM integration_records WHERE person_index IN ({}) AND kind IN ({})",
            persons.join(", "),
            kind_places.join(", ")
        );
        // Only placeholders are formatted into the statement; every value is bound.
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for person in chunk {
            query = query.bind(person.as_str());
        }
        for kind in kinds {
            query = query.bind(kind.as_str());
        }
        for row in query.fetch_all(pool).await? {
            let start: String = row.try_get(6)?;
            let end: String = row.try_get(7)?;
            let (Ok(period_start), Ok(period_end)) = (Month::parse(&start), Month::parse(&end))
            else {
                continue;
            };
            found.push(Candidate {
                department_code: row.try_get(0)?,
                record_id: row.try_get(1)?,
                person_index: row.try_get(2)?,
                program_code: row.try_get(3)?,
                kind: row.try_get(4)?,
                amount_fen: row.try_get(5)?,
                period_start,
                period_end,
            });
        }
    }
    Ok(found)
}

/// The duplicate ids already found among `ids`.
pub async fn known_duplicates(
    pool: &AnyPool,
    ids: &[String],
) -> Result<BTreeSet<String>, sqlx::Error> {
    let mut known = BTreeSet::new();
    for chunk in ids.chunks(LOOKUP_CHUNK) {
        let places: Vec<String> = (0..chunk.len()).map(|i| format!("${}", i + 1)).collect();
        let sql = format!(
            "SELECT duplicate_id FROM integration_duplicates WHERE duplicate_id IN ({})",
            places.join(", ")
        );
        // Only placeholders are formatted into the statement; every value is bound.
        let mut query = sqlx::query_scalar(sqlx::AssertSqlSafe(sql));
        for id in chunk {
            query = query.bind(id.as_str());
        }
        known.extend(query.fetch_all(pool).await?);
    }
    Ok(known)
}

/// The pair's row, written with its event.
#[derive(Debug)]
struct DuplicateRow<'a> {
    stream: &'a str,
    detected: &'a pb::DuplicateAssistanceDetected,
}

impl AppendGuard for DuplicateRow<'_> {
    type Refusal = std::convert::Infallible;

    async fn apply(
        &self,
        connection: &mut AnyConnection,
    ) -> Result<Result<(), Self::Refusal>, sqlx::Error> {
        let detected = self.detected;
        let first = detected.first.clone().unwrap_or_default();
        let second = detected.second.clone().unwrap_or_default();
        sqlx::query(
            "INSERT INTO integration_duplicates (duplicate_id, person_index, program_code, kind, \
             first_department, first_record, second_department, second_record, overlap_start, overlap_end, stream_id) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT DO NOTHING",
        )
        .bind(detected.duplicate_id.as_str())
        .bind(hex::encode(&detected.person_index))
        .bind(detected.program_code.as_str())
        .bind(detected.kind.as_str())
        .bind(first.department_code)
        .bind(first.record_id)
        .bind(second.department_code)
        .bind(second.record_id)
        .bind(detected.overlap_start.as_str())
        .bind(detected.overlap_end.as_str())
        .bind(self.stream)
        .execute(&mut *connection)
        .await?;
        Ok(Ok(()))
    }
}

impl IntegrationStore {
    /// Finds and appends the duplicates of `department`'s records `record_ids` (a batch's good
    /// records, stored now or before) of the persons `person_indexes` (hex), under the policy
    /// in force `today`: how many new pairs. A batch's records stored before are compared
    /// again, so a push retried after a failure here finds what the first missed.
    pub async fn detect_duplicates(
        &self,
        caller: &Identity,
        department: &str,
        record_ids: &BTreeSet<String>,
        person_indexes: &BTreeSet<String>,
        policy: &sunshine_policy::Policy,
        today: time::Date,
    ) -> Result<usize, ApiError> {
        if record_ids.is_empty() {
            return Ok(0);
        }
        let rules = DuplicateRules::from_policy(
            &policy
                .resolve(today)
                .map_err(|error| ApiError::FailedPrecondition(error.to_string()))?
                .integration,
        );
        let pool = self.log.store.pool();
        let persons: Vec<String> = person_indexes.iter().cloned().collect();
        let stored = records_of_persons(pool, &persons, &rules.kinds)
            .await
            .map_err(ApiError::internal)?;
        let pushed: Vec<Candidate> = stored
            .iter()
            .filter(|record| {
                record.department_code == department && record_ids.contains(&record.record_id)
            })
            .cloned()
            .collect();
        let unfiltered = duplicates::find(department, &pushed, &stored, &rules, &BTreeSet::new());
        if unfiltered.is_empty() {
            return Ok(0);
        }
        let ids: Vec<String> = unfiltered
            .iter()
            .map(|found| found.duplicate_id.clone())
            .collect();
        let known = known_duplicates(pool, &ids)
            .await
            .map_err(ApiError::internal)?;
        let found: Vec<pb::DuplicateAssistanceDetected> = unfiltered
            .into_iter()
            .filter(|found| !known.contains(&found.duplicate_id))
            .collect();
        let metadata = EventMetadata {
            actor: actor_of(caller),
            traceparent: sunshine_platform::telemetry::current_traceparent(),
            ..EventMetadata::default()
        };
        self.append_duplicates(&metadata, found).await
    }

    /// Appends each pair's detection on its own stream (a stream that exists: found
    /// meanwhile, skipped). How many were appended.
    pub async fn append_duplicates(
        &self,
        metadata: &EventMetadata,
        found: Vec<pb::DuplicateAssistanceDetected>,
    ) -> Result<usize, ApiError> {
        let mut appended = 0;
        for detected in found {
            let stream = duplicate_stream(&detected.duplicate_id)?;
            let event = DuplicateEvent::Detected(detected.clone());
            let guard = DuplicateRow {
                stream: stream.as_str(),
                detected: &detected,
            };
            match self
                .log
                .store
                .append_guarded(
                    &stream,
                    ExpectedVersion::NoStream,
                    metadata,
                    vec![NewEvent::typed(stream.as_str(), &event)],
                    &guard,
                )
                .await
            {
                Ok(_) => appended += 1,
                Err(StoreError::Conflict { .. }) => {}
                Err(error) => return Err(error.into()),
            }
        }
        Ok(appended)
    }
}

/// One page of the duplicates, by id after `after`; `limit + 1` rows tell whether there is
/// more. The sides' periods and amounts are the records' own, from `integration_records`.
pub async fn list_duplicates(
    pool: &AnyPool,
    after: Option<&str>,
    limit: usize,
) -> Result<Vec<pb::DuplicateAssistanceItem>, sqlx::Error> {
    let sql = format!(
        "SELECT d.duplicate_id, d.person_index, d.program_code, d.kind, d.overlap_start, d.overlap_end, \
         a.department_code, a.record_id, a.period_start, a.period_end, a.amount_fen, \
         b.department_code, b.record_id, b.period_start, b.period_end, b.amount_fen \
         FROM integration_duplicates d \
         JOIN integration_records a ON a.department_code = d.first_department AND a.record_id = d.first_record \
         JOIN integration_records b ON b.department_code = d.second_department AND b.record_id = d.second_record \
         WHERE d.duplicate_id > $1 ORDER BY d.duplicate_id LIMIT {}",
        limit + 1
    );
    // Only the numeric limit is formatted in; every value is bound.
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(after.unwrap_or(""))
        .fetch_all(pool)
        .await?;
    rows.into_iter()
        .map(|row| {
            let side = |at: usize| -> Result<pb::DuplicateSide, sqlx::Error> {
                Ok(pb::DuplicateSide {
                    department_code: row.try_get(at)?,
                    record_id: row.try_get(at + 1)?,
                    period_start: row.try_get(at + 2)?,
                    period_end: row.try_get(at + 3)?,
                    amount: Some(pb::Money {
                        fen: row.try_get(at + 4)?,
                    }),
                })
            };
            let start: String = row.try_get(4)?;
            let end: String = row.try_get(5)?;
            let months = match (Month::parse(&start), Month::parse(&end)) {
                (Ok(start), Ok(end)) => crate::duplicates::months_between(start, end),
                _ => 0,
            };
            Ok(pb::DuplicateAssistanceItem {
                duplicate_id: row.try_get(0)?,
                person_index: row.try_get(1)?,
                program_code: row.try_get(2)?,
                kind: row.try_get(3)?,
                first: Some(side(6)?),
                second: Some(side(11)?),
                overlap_start: start,
                overlap_end: end,
                overlap_months: months,
            })
        })
        .collect()
}
