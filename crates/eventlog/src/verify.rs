//! Verifying the log as an outside auditor would: every event's hash recomputed from its
//! stored bytes, every stream's chain followed, every position present, the Merkle tree rebuilt
//! and compared with every signed checkpoint, and no checkpoint larger than the log (a
//! truncated tail). The first problem is reported with its log position.
//!
//! [`Verification`] is the pure core (feed it entries in position order, then the checkpoints);
//! [`verify_log`] reads a store through it. Each event is hashed from its stored values as
//! stored ([`StoredEvent`]): nothing is parsed and re-formatted first, so an event id rewritten
//! in another case still hashes differently, and a row that cannot be an event at all (an id
//! that is no UUID, a hash of the wrong length) is reported at its position while the rest of
//! the log is still verified. Inclusion and consistency proofs for the signed checkpoints are
//! made from the stored leaf hashes.

use std::collections::HashMap;

use sqlx::Row as _;

use crate::checkpoint::{Checkpoint, CheckpointVerifier};
use crate::event::RecordedEvent;
use crate::merkle::{self, Hash, MerkleFrontier, leaf_hash};
use crate::record::{GENESIS_HASH, RecordFields, chain_hash};
use crate::store::{EventStore, StoreError, to_hash, to_i64, to_u64};

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
    /// The row cannot be an event the log wrote: an id that is not a lowercase hyphenated UUID,
    /// a negative version, a hash that is not 32 bytes. (`event_id` as stored.)
    MalformedEvent { event_id: String, reason: String },
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

/// An event row exactly as stored, every value as the database returned it: what the
/// verifier hashes and checks, with nothing parsed and re-formatted on the way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoredEvent<'a> {
    pub event_id: &'a str,
    pub stream_id: &'a str,
    pub stream_version: i64,
    pub case_id: &'a str,
    pub event_type: &'a str,
    pub schema_version: i64,
    pub payload: &'a [u8],
    pub metadata_json: &'a str,
    pub occurred_at_us: i64,
    pub recorded_at_us: i64,
    pub previous_hash: &'a [u8],
    pub hash: &'a [u8],
}

impl<'a> StoredEvent<'a> {
    /// The stored form of an event the store wrote (its id in the text the store writes,
    /// `event_id_text`: the lowercase hyphenated UUID).
    pub fn of_recorded(event: &'a RecordedEvent, event_id_text: &'a str) -> Self {
        StoredEvent {
            event_id: event_id_text,
            stream_id: &event.stream_id,
            stream_version: i64::try_from(event.stream_version).unwrap_or(-1),
            case_id: &event.case_id,
            event_type: &event.event_type,
            schema_version: i64::from(event.schema_version),
            payload: &event.payload,
            metadata_json: &event.metadata_json,
            occurred_at_us: event.occurred_at_us,
            recorded_at_us: event.recorded_at_us,
            previous_hash: &event.previous_hash,
            hash: &event.hash,
        }
    }

    /// The values as the record format types them, or why this row cannot be an event.
    fn typed(&self) -> Result<TypedEvent<'a>, String> {
        let stream_version = u64::try_from(self.stream_version)
            .ok()
            .filter(|version| *version >= 1)
            .ok_or_else(|| format!("stream version {} is not 1 or more", self.stream_version))?;
        let schema_version = u32::try_from(self.schema_version)
            .map_err(|_| format!("schema version {} is out of range", self.schema_version))?;
        let previous_hash: Hash = self.previous_hash.try_into().map_err(|_| {
            format!(
                "previous hash is {} bytes, not 32",
                self.previous_hash.len()
            )
        })?;
        let hash: Hash = self
            .hash
            .try_into()
            .map_err(|_| format!("hash is {} bytes, not 32", self.hash.len()))?;
        let fields = RecordFields {
            event_id: self.event_id,
            stream_id: self.stream_id,
            stream_version,
            case_id: self.case_id,
            event_type: self.event_type,
            schema_version,
            payload: self.payload,
            metadata_json: self.metadata_json,
            occurred_at_us: self.occurred_at_us,
            recorded_at_us: self.recorded_at_us,
        };
        Ok(TypedEvent {
            fields,
            previous_hash,
            hash,
        })
    }
}

struct TypedEvent<'a> {
    fields: RecordFields<'a>,
    previous_hash: Hash,
    hash: Hash,
}

/// Whether `text` is a UUID in the one form the log writes: lowercase, hyphenated.
fn is_canonical_event_id(text: &str) -> bool {
    uuid::Uuid::parse_str(text).is_ok_and(|id| id.hyphenated().to_string() == text)
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
        match event {
            Some(event) => {
                let event_id_text = event.event_id.hyphenated().to_string();
                let stored = StoredEvent::of_recorded(event, &event_id_text);
                self.push_stored(position, stored_leaf_hash, Some(&stored));
            }
            None => self.push_stored(position, stored_leaf_hash, None),
        }
    }

    /// One log entry as stored: its position, its leaf hash's bytes and its event row (`None`
    /// if the event is gone). Whatever is wrong with the row is a problem at `position`; the
    /// verification goes on with the next entry.
    pub fn push_stored(
        &mut self,
        position: u64,
        stored_leaf_hash: &[u8],
        event: Option<&StoredEvent<'_>>,
    ) {
        if position != self.next_position {
            let missing = self.next_position;
            self.fail(missing, ProblemKind::MissingEntry);
            // Keep the tree aligned with positions so later checkpoints still say something.
            self.next_position = position;
        }
        let leaf: Hash = match stored_leaf_hash.try_into() {
            Ok(leaf) => leaf,
            Err(_) => {
                self.fail(position, ProblemKind::WrongLeafHash);
                // A placeholder keeps the positions aligned; no root can match it.
                [0u8; 32]
            }
        };
        match event {
            None => self.fail(position, ProblemKind::MissingEvent),
            Some(event) => {
                self.events_checked += 1;
                self.check_event(position, &leaf, event);
            }
        }
        // The tree is built from the stored leaf hashes: what was signed is what is compared.
        if self.frontier.push(leaf).is_err() {
            self.fail(position, ProblemKind::MissingEntry);
        }
        self.next_position = position + 1;
        let size = self.frontier.tree_size();
        if self.wanted_sizes.contains(&size) {
            self.roots_at.insert(size, self.frontier.root());
        }
    }

    fn check_event(&mut self, position: u64, leaf: &Hash, event: &StoredEvent<'_>) {
        let typed = match event.typed() {
            Ok(typed) => typed,
            Err(reason) => {
                self.fail(
                    position,
                    ProblemKind::MalformedEvent {
                        event_id: event.event_id.to_owned(),
                        reason,
                    },
                );
                return;
            }
        };
        // The stored bytes, as stored: an id in capitals hashes differently from the one hashed.
        if chain_hash(&typed.previous_hash, &typed.fields) != typed.hash {
            self.fail(
                position,
                ProblemKind::AlteredEvent {
                    event_id: event.event_id.to_owned(),
                },
            );
        }
        if !is_canonical_event_id(event.event_id) {
            self.fail(
                position,
                ProblemKind::MalformedEvent {
                    event_id: event.event_id.to_owned(),
                    reason: "the event id is not a lowercase hyphenated UUID".into(),
                },
            );
        }
        if leaf_hash(&typed.hash) != *leaf {
            self.fail(position, ProblemKind::WrongLeafHash);
        }
        let stream_version = typed.fields.stream_version;
        let (head_version, head_hash) = self
            .heads
            .get(event.stream_id)
            .copied()
            .unwrap_or((0, GENESIS_HASH));
        if stream_version != head_version + 1 || typed.previous_hash != head_hash {
            self.fail(
                position,
                ProblemKind::ChainBroken {
                    stream_id: event.stream_id.to_owned(),
                    expected_version: head_version + 1,
                    found_version: stream_version,
                },
            );
        }
        self.heads
            .insert(event.stream_id.to_owned(), (stream_version, typed.hash));
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
                    verification.push_stored(position, &stored_leaf, Some(&stored));
                }
                None => verification.push_stored(position, &stored_leaf, None),
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    const EVENT_ID: &str = "0190f3c4-0000-7000-8000-000000000001";

    /// A one-event log whose event is hashed over `event_id` exactly as given.
    fn one_event(event_id: &str) -> (Vec<u8>, Hash) {
        let fields = RecordFields {
            event_id,
            stream_id: "intake-household-1",
            stream_version: 1,
            case_id: "case-1",
            event_type: "example.v1.Registered",
            schema_version: 1,
            payload: b"payload",
            metadata_json: "{}",
            occurred_at_us: 1,
            recorded_at_us: 2,
        };
        let hash = chain_hash(&GENESIS_HASH, &fields);
        (hash.to_vec(), leaf_hash(&hash))
    }

    fn stored<'a>(event_id: &'a str, hash: &'a [u8]) -> StoredEvent<'a> {
        StoredEvent {
            event_id,
            stream_id: "intake-household-1",
            stream_version: 1,
            case_id: "case-1",
            event_type: "example.v1.Registered",
            schema_version: 1,
            payload: b"payload",
            metadata_json: "{}",
            occurred_at_us: 1,
            recorded_at_us: 2,
            previous_hash: &GENESIS_HASH,
            hash,
        }
    }

    fn verify_one(event: &StoredEvent<'_>, leaf: &[u8]) -> Option<ProblemKind> {
        let mut verification = Verification::new([]);
        verification.push_stored(0, leaf, Some(event));
        verification.finish(&[]).problem.map(|problem| problem.kind)
    }

    #[test]
    fn the_stored_id_is_hashed_as_stored() {
        let (hash, leaf) = one_event(EVENT_ID);
        assert_eq!(verify_one(&stored(EVENT_ID, &hash), &leaf), None);
        let upper = EVENT_ID.to_uppercase();
        assert_eq!(
            verify_one(&stored(&upper, &hash), &leaf),
            Some(ProblemKind::AlteredEvent {
                event_id: upper.clone()
            })
        );
        // Hashed in capitals from the start (not what the log writes): still not an event id.
        let (upper_hash, upper_leaf) = one_event(&upper);
        assert!(matches!(
            verify_one(&stored(&upper, &upper_hash), &upper_leaf),
            Some(ProblemKind::MalformedEvent { .. })
        ));
    }

    #[test]
    fn a_row_that_cannot_be_an_event_is_reported_and_the_rest_verified() {
        let (hash, leaf) = one_event(EVENT_ID);
        let mut verification = Verification::new([]);
        let mut short_hash = stored(EVENT_ID, &hash[..31]);
        verification.push_stored(0, &leaf, Some(&short_hash));
        short_hash.stream_version = -1;
        verification.push_stored(1, &leaf[..5], Some(&short_hash));
        verification.push_stored(2, &leaf, None);
        let report = verification.finish(&[]);
        assert_eq!((report.entries, report.events_checked), (3, 2));
        assert_eq!(
            report.problem,
            Some(Problem {
                position: 0,
                kind: ProblemKind::MalformedEvent {
                    event_id: EVENT_ID.into(),
                    reason: "hash is 31 bytes, not 32".into()
                }
            })
        );
    }
}
