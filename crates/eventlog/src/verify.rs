//! The auditor's check of the log in a database: the stored checkpoints and every entry read
//! in position order and fed to the evidence's verification
//! ([`sunshine_evidence::verify::LogVerification`], whose types are re-exported here), and
//! inclusion and consistency proofs made from the stored leaf hashes. The checks themselves
//! are the evidence's; this module only reads.

use sqlx::Row as _;
use sunshine_evidence::checkpoint::{Checkpoint, CheckpointVerifier};
use sunshine_evidence::merkle::{self, Hash};
pub use sunshine_evidence::verify::*;

use crate::error::{StoreError, to_hash, to_i64, to_u64};
use crate::store::EventStore;

/// The stored checkpoints, each verified against `verifier` and the row it was stored in.
pub async fn stored_checkpoints(
    store: &EventStore,
    verifier: &CheckpointVerifier,
) -> Result<(Vec<Checkpoint>, Option<Problem>), StoreError> {
    let checked = read_checkpoints(store, verifier).await?;
    Ok((checked.checkpoints, checked.problem))
}

async fn read_checkpoints(
    store: &EventStore,
    verifier: &CheckpointVerifier,
) -> Result<CheckedCheckpoints, StoreError> {
    let rows =
        sqlx::query("SELECT tree_size, root_hash, note FROM log_checkpoints ORDER BY tree_size")
            .fetch_all(store.pool())
            .await?;
    let mut stored = Vec::with_capacity(rows.len());
    for row in rows {
        let tree_size = to_u64(row.try_get::<i64, _>(0)?)?;
        let root_hash = to_hash(&row.try_get::<Vec<u8>, _>(1)?)?;
        let note: String = row.try_get(2)?;
        stored.push((tree_size, root_hash, note));
    }
    Ok(check_stored_checkpoints(
        stored
            .iter()
            .map(|(tree_size, root_hash, note)| StoredCheckpoint {
                tree_size: *tree_size,
                root_hash: *root_hash,
                note,
            }),
        verifier,
    ))
}

const VERIFY_BATCH: i64 = 5_000;

/// Verifies the whole log in `store` against the checkpoint key and the checkpoints stored
/// with it.
pub async fn verify_log(
    store: &EventStore,
    verifier: &CheckpointVerifier,
) -> Result<VerificationReport, StoreError> {
    verify_log_against(store, verifier, &[]).await
}

/// As [`verify_log`], and also against checkpoints the auditor kept from earlier visits
/// (`witnessed`, already signature-checked): a tamperer who deletes stored checkpoints cannot
/// hide what was signed before.
pub async fn verify_log_against(
    store: &EventStore,
    verifier: &CheckpointVerifier,
    witnessed: &[Checkpoint],
) -> Result<VerificationReport, StoreError> {
    let stored = read_checkpoints(store, verifier).await?;
    let mut verification = LogVerification::new(stored, witnessed);
    let sql = "SELECT e.sequence, l.log_position, e.event_id, e.stream_id, e.stream_version, e.case_id, \
         e.event_type, e.schema_version, e.payload, e.metadata, e.occurred_at_us, e.recorded_at_us, \
         e.previous_hash, e.hash, l.leaf_hash \
         FROM log_entries l LEFT JOIN events e ON e.sequence = l.event_sequence \
         WHERE l.log_position >= $1 ORDER BY l.log_position LIMIT $2";
    let mut from_position: i64 = 0;
    loop {
        let rows = sqlx::query(sql)
            .bind(from_position)
            .bind(VERIFY_BATCH)
            .fetch_all(store.pool())
            .await?;
        if rows.is_empty() {
            break;
        }
        for row in &rows {
            let position = to_u64(row.try_get::<i64, _>(1)?)?;
            let stored_leaf: Vec<u8> = row.try_get(14)?;
            let sequence: Option<i64> = row.try_get(0)?;
            match sequence {
                Some(_) => {
                    let event_id: String = row.try_get(2)?;
                    let stream_id: String = row.try_get(3)?;
                    let case_id: String = row.try_get(5)?;
                    let event_type: String = row.try_get(6)?;
                    let payload: Vec<u8> = row.try_get(8)?;
                    let metadata_json: String = row.try_get(9)?;
                    let previous_hash: Vec<u8> = row.try_get(12)?;
                    let hash: Vec<u8> = row.try_get(13)?;
                    let stored = StoredEvent {
                        event_id: &event_id,
                        stream_id: &stream_id,
                        stream_version: row.try_get(4)?,
                        case_id: &case_id,
                        event_type: &event_type,
                        schema_version: row.try_get(7)?,
                        payload: &payload,
                        metadata_json: &metadata_json,
                        occurred_at_us: row.try_get(10)?,
                        recorded_at_us: row.try_get(11)?,
                        previous_hash: &previous_hash,
                        hash: &hash,
                    };
                    verification.push(&StoredEntry {
                        position,
                        leaf_hash: &stored_leaf,
                        event: Some(stored),
                    });
                }
                None => verification.push(&StoredEntry {
                    position,
                    leaf_hash: &stored_leaf,
                    event: None,
                }),
            }
            from_position = to_i64(position)? + 1;
        }
    }
    Ok(verification.finish())
}

async fn leaf_hashes(store: &EventStore, tree_size: u64) -> Result<Vec<Hash>, StoreError> {
    let rows = sqlx::query(
        "SELECT leaf_hash FROM log_entries WHERE log_position < $1 ORDER BY log_position",
    )
    .bind(to_i64(tree_size)?)
    .fetch_all(store.pool())
    .await?;
    if rows.len() as u64 != tree_size {
        return Err(StoreError::Invalid(format!(
            "the log holds {} entries, not {tree_size}",
            rows.len()
        )));
    }
    rows.iter()
        .map(|row| to_hash(&row.try_get::<Vec<u8>, _>(0)?))
        .collect()
}

/// The inclusion proof of the event at `position` in the tree of `tree_size` entries.
pub async fn inclusion_proof(
    store: &EventStore,
    position: u64,
    tree_size: u64,
) -> Result<Vec<Hash>, StoreError> {
    let leaves = leaf_hashes(store, tree_size).await?;
    merkle::inclusion_proof(&leaves, position)
        .map_err(|error| StoreError::Invalid(error.to_string()))
}

/// The consistency proof between the trees of `old_size` and `new_size` entries.
pub async fn consistency_proof(
    store: &EventStore,
    old_size: u64,
    new_size: u64,
) -> Result<Vec<Hash>, StoreError> {
    let leaves = leaf_hashes(store, new_size).await?;
    merkle::consistency_proof(&leaves, old_size)
        .map_err(|error| StoreError::Invalid(error.to_string()))
}
