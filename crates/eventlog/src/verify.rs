//! Verifying the log as an outside auditor would: every event's hash recomputed from its
//! stored bytes, every stream's chain followed, every position present, the Merkle tree rebuilt
//! and compared with every signed checkpoint, and no checkpoint larger than the log (a
//! truncated tail). The first problem is reported with its log position.
//!
//! [`Verification`] is the pure core (feed it entries in position order, then the checkpoints);
//! [`verify_log`] reads a store through it. Inclusion and consistency proofs for the signed
//! checkpoints are made from the stored leaf hashes.

use std::collections::HashMap;

use sqlx::Row as _;

use crate::checkpoint::{Checkpoint, CheckpointVerifier};
use crate::event::RecordedEvent;
use crate::merkle::{self, Hash, MerkleFrontier, leaf_hash};
use crate::record::GENESIS_HASH;
use crate::store::{EventStore, StoreError, decode_event, to_hash, to_i64, to_u64};

/// What is wrong, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The first log position affected.
    pub position: u64,
    pub kind: ProblemKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProblemKind {
    /// No log entry at this position although later ones exist.
    MissingEntry,
    /// The log entry's event is gone.
    MissingEvent,
    /// The event's stored bytes do not give its stored hash.
    AlteredEvent { event_id: String },
    /// The entry's leaf hash is not the leaf hash of the event's hash.
    WrongLeafHash,
    /// The stream's chain does not continue here (a version skipped, or the previous hash differs).
    ChainBroken {
        stream_id: String,
        expected_version: u64,
        found_version: u64,
    },
    /// A stored checkpoint whose signature or content does not verify.
    BadCheckpoint { tree_size: u64, reason: String },
    /// The rebuilt tree's root differs from a signed checkpoint's.
    RootMismatch { tree_size: u64 },
    /// A signed checkpoint covers more entries than the log holds.
    Truncated { checkpoint_size: u64, log_size: u64 },
}

impl std::fmt::Display for Problem {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(formatter, "position {}: {:?}", self.position, self.kind)
    }
}

/// The result of verifying a log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerificationReport {
    pub entries: u64,
    pub events_checked: u64,
    pub checkpoints_checked: usize,
    pub root: Hash,
    /// The first problem found; `None` means the log verified.
    pub problem: Option<Problem>,
}

/// Incremental verification of entries in position order.
#[derive(Debug)]
pub struct Verification {
    next_position: u64,
    frontier: MerkleFrontier,
    heads: HashMap<String, (u64, Hash)>,
    roots_at: HashMap<u64, Hash>,
    wanted_sizes: std::collections::HashSet<u64>,
    events_checked: u64,
    problem: Option<Problem>,
}

impl Verification {
    /// `checkpoint_sizes`: the tree sizes whose roots will be compared (remembered on the way).
    pub fn new(checkpoint_sizes: impl IntoIterator<Item = u64>) -> Self {
        Verification {
            next_position: 0,
            frontier: MerkleFrontier::new(),
            heads: HashMap::new(),
            roots_at: HashMap::new(),
            wanted_sizes: checkpoint_sizes.into_iter().collect(),
            events_checked: 0,
            problem: None,
        }
    }

    fn fail(&mut self, position: u64, kind: ProblemKind) {
        if self.problem.is_none() {
            self.problem = Some(Problem { position, kind });
        }
    }

    pub fn problem(&self) -> Option<&Problem> {
        self.problem.as_ref()
    }

    /// One log entry: its position, its leaf hash and its event (`None` if the event is gone).
    pub fn push(&mut self, position: u64, stored_leaf_hash: &Hash, event: Option<&RecordedEvent>) {
        if position != self.next_position {
            let missing = self.next_position;
            self.fail(missing, ProblemKind::MissingEntry);
            // Keep the tree aligned with positions so later checkpoints still say something.
            self.next_position = position;
        }
        match event {
            None => self.fail(position, ProblemKind::MissingEvent),
            Some(event) => {
                self.events_checked += 1;
                if event.recompute_hash() != event.hash {
                    self.fail(
                        position,
                        ProblemKind::AlteredEvent {
                            event_id: event.event_id.to_string(),
                        },
                    );
                }
                if leaf_hash(&event.hash) != *stored_leaf_hash {
                    self.fail(position, ProblemKind::WrongLeafHash);
                }
                let (head_version, head_hash) = self
                    .heads
                    .get(&event.stream_id)
                    .copied()
                    .unwrap_or((0, GENESIS_HASH));
                if event.stream_version != head_version + 1 || event.previous_hash != head_hash {
                    self.fail(
                        position,
                        ProblemKind::ChainBroken {
                            stream_id: event.stream_id.clone(),
                            expected_version: head_version + 1,
                            found_version: event.stream_version,
                        },
                    );
                }
                self.heads
                    .insert(event.stream_id.clone(), (event.stream_version, event.hash));
            }
        }
        // The tree is built from the stored leaf hashes: what was signed is what is compared.
        if self.frontier.push(*stored_leaf_hash).is_err() {
            self.fail(position, ProblemKind::MissingEntry);
        }
        self.next_position = position + 1;
        let size = self.frontier.tree_size();
        if self.wanted_sizes.contains(&size) {
            self.roots_at.insert(size, self.frontier.root());
        }
    }

    /// Compares the signed checkpoints (already signature-checked) with the rebuilt tree.
    pub fn finish(mut self, checkpoints: &[Checkpoint]) -> VerificationReport {
        let log_size = self.frontier.tree_size();
        let mut sorted: Vec<&Checkpoint> = checkpoints.iter().collect();
        sorted.sort_by_key(|checkpoint| checkpoint.tree_size);
        for checkpoint in &sorted {
            if checkpoint.tree_size > log_size {
                self.fail(
                    log_size,
                    ProblemKind::Truncated {
                        checkpoint_size: checkpoint.tree_size,
                        log_size,
                    },
                );
                break;
            }
            match self.roots_at.get(&checkpoint.tree_size) {
                Some(root) if *root == checkpoint.root_hash => {}
                _ => {
                    // The first position that can differ is just after the last matching checkpoint.
                    let position = checkpoint.tree_size.saturating_sub(1);
                    self.fail(
                        position,
                        ProblemKind::RootMismatch {
                            tree_size: checkpoint.tree_size,
                        },
                    );
                }
            }
        }
        VerificationReport {
            entries: log_size,
            events_checked: self.events_checked,
            checkpoints_checked: sorted.len(),
            root: self.frontier.root(),
            problem: self.problem,
        }
    }
}

/// The stored checkpoints, each verified against `verifier` and the row it was stored in.
pub async fn stored_checkpoints(
    store: &EventStore,
    verifier: &CheckpointVerifier,
) -> Result<(Vec<Checkpoint>, Option<Problem>), StoreError> {
    let rows =
        sqlx::query("SELECT tree_size, root_hash, note FROM log_checkpoints ORDER BY tree_size")
            .fetch_all(store.pool())
            .await?;
    let mut checkpoints = Vec::with_capacity(rows.len());
    let mut problem = None;
    for row in rows {
        let tree_size = to_u64(row.try_get::<i64, _>(0)?)?;
        let root_hash = to_hash(&row.try_get::<Vec<u8>, _>(1)?)?;
        let note: String = row.try_get(2)?;
        match verifier.verify(&note) {
            Ok(checkpoint)
                if checkpoint.tree_size == tree_size && checkpoint.root_hash == root_hash =>
            {
                checkpoints.push(checkpoint);
            }
            Ok(_) => {
                problem.get_or_insert(Problem {
                    position: tree_size.saturating_sub(1),
                    kind: ProblemKind::BadCheckpoint {
                        tree_size,
                        reason: "the row differs from its signed note".into(),
                    },
                });
            }
            Err(error) => {
                problem.get_or_insert(Problem {
                    position: tree_size.saturating_sub(1),
                    kind: ProblemKind::BadCheckpoint {
                        tree_size,
                        reason: error.to_string(),
                    },
                });
            }
        }
    }
    Ok((checkpoints, problem))
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
    let (mut checkpoints, checkpoint_problem) = stored_checkpoints(store, verifier).await?;
    checkpoints.extend(witnessed.iter().cloned());
    let mut verification =
        Verification::new(checkpoints.iter().map(|checkpoint| checkpoint.tree_size));
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
            let stored_leaf = to_hash(&row.try_get::<Vec<u8>, _>(14)?)?;
            let sequence: Option<i64> = row.try_get(0)?;
            let event = match sequence {
                Some(_) => Some(decode_event(row)?),
                None => None,
            };
            verification.push(position, &stored_leaf, event.as_ref());
            from_position = to_i64(position)? + 1;
        }
    }
    let mut report = verification.finish(&checkpoints);
    if let Some(problem) = checkpoint_problem
        && report
            .problem
            .as_ref()
            .is_none_or(|found| problem.position < found.position)
    {
        report.problem = Some(problem);
    }
    Ok(report)
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
