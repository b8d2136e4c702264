//! Verifying the log as an outside auditor would: every event's hash recomputed from its
//! stored bytes, every stream's chain followed, every position present, the Merkle tree rebuilt
//! and compared with every signed checkpoint, and no checkpoint larger than the log (a
//! truncated tail). The first problem is reported with its log position.
//!
//! Each event is hashed from its stored values as stored ([`StoredEvent`]): nothing is parsed
//! and re-formatted first, so an event id rewritten in another case still hashes differently,
//! and a row that cannot be an event at all (an id that is no UUID, a hash of the wrong length)
//! is reported at its position while the rest of the log is still verified.
//!
//! [`Verification`] is the core (feed it entries in position order, then the checkpoints);
//! [`LogVerification`] adds the stored checkpoints ([`check_stored_checkpoints`]) and the
//! auditor's own; [`verify_entries`] runs it over an iterator of [`StoredEntry`]s, which is all
//! an offline verifier needs. (`sunshine_eventlog::verify::verify_log` feeds it from the
//! database, batch by batch.) Inclusion and consistency proofs are [`crate::merkle`]'s, over the
//! stored leaf hashes.

use std::collections::HashMap;

use crate::checkpoint::{Checkpoint, CheckpointVerifier};
use crate::merkle::{Hash, MerkleFrontier, leaf_hash};
use crate::record::{GENESIS_HASH, RecordFields, RecordedEvent, chain_hash};

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

/// A stored checkpoint: the tree size and root hash its row states, and its signed note.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoredCheckpoint<'a> {
    pub tree_size: u64,
    pub root_hash: Hash,
    pub note: &'a str,
}

/// The stored checkpoints that verified, and the first problem with one that did not.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CheckedCheckpoints {
    pub checkpoints: Vec<Checkpoint>,
    pub problem: Option<Problem>,
}

/// Each stored checkpoint verified against `verifier` and the row it was stored in: a note
/// that does not verify, or says another size or root than its row, is a
/// [`ProblemKind::BadCheckpoint`] (the first one is kept) and is left out.
pub fn check_stored_checkpoints<'a>(
    stored: impl IntoIterator<Item = StoredCheckpoint<'a>>,
    verifier: &CheckpointVerifier,
) -> CheckedCheckpoints {
    let mut checked = CheckedCheckpoints::default();
    for row in stored {
        match verifier.verify(row.note) {
            Ok(checkpoint)
                if checkpoint.tree_size == row.tree_size
                    && checkpoint.root_hash == row.root_hash =>
            {
                checked.checkpoints.push(checkpoint);
            }
            Ok(_) => {
                checked.problem.get_or_insert(Problem {
                    position: row.tree_size.saturating_sub(1),
                    kind: ProblemKind::BadCheckpoint {
                        tree_size: row.tree_size,
                        reason: "the row differs from its signed note".into(),
                    },
                });
            }
            Err(error) => {
                checked.problem.get_or_insert(Problem {
                    position: row.tree_size.saturating_sub(1),
                    kind: ProblemKind::BadCheckpoint {
                        tree_size: row.tree_size,
                        reason: error.to_string(),
                    },
                });
            }
        }
    }
    checked
}

/// One entry of the log as stored: its position, its leaf hash's bytes and its event row
/// (`None` if the event is gone).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoredEntry<'a> {
    pub position: u64,
    pub leaf_hash: &'a [u8],
    pub event: Option<StoredEvent<'a>>,
}

/// The whole check of one log: its entries in position order, then the stored checkpoints
/// (already checked, [`check_stored_checkpoints`]) and those the auditor kept from earlier
/// visits. What [`verify_entries`] runs over an iterator, for readers that fetch the entries
/// in batches.
#[derive(Debug)]
pub struct LogVerification {
    verification: Verification,
    checkpoints: Vec<Checkpoint>,
    checkpoint_problem: Option<Problem>,
}

impl LogVerification {
    /// `witnessed`: checkpoints the auditor kept (already signature-checked), so that a
    /// tamperer who deletes stored checkpoints cannot hide what was signed before.
    pub fn new(stored: CheckedCheckpoints, witnessed: &[Checkpoint]) -> Self {
        let mut checkpoints = stored.checkpoints;
        checkpoints.extend(witnessed.iter().cloned());
        let verification =
            Verification::new(checkpoints.iter().map(|checkpoint| checkpoint.tree_size));
        LogVerification {
            verification,
            checkpoints,
            checkpoint_problem: stored.problem,
        }
    }

    /// The next entry, in position order.
    pub fn push(&mut self, entry: &StoredEntry<'_>) {
        self.verification
            .push_stored(entry.position, entry.leaf_hash, entry.event.as_ref());
    }

    /// The report: the first problem by position, among the entries and the checkpoints.
    pub fn finish(self) -> VerificationReport {
        let mut report = self.verification.finish(&self.checkpoints);
        if let Some(problem) = self.checkpoint_problem
            && report
                .problem
                .as_ref()
                .is_none_or(|found| problem.position < found.position)
        {
            report.problem = Some(problem);
        }
        report
    }
}

/// Verifies a whole log as an auditor's offline tool reads it: its stored checkpoints (each
/// checked against `verifier`), the checkpoints the auditor kept (`witnessed`, already
/// signature-checked) and every entry in position order.
pub fn verify_entries<'a>(
    verifier: &CheckpointVerifier,
    stored_checkpoints: impl IntoIterator<Item = StoredCheckpoint<'a>>,
    witnessed: &[Checkpoint],
    entries: impl IntoIterator<Item = StoredEntry<'a>>,
) -> VerificationReport {
    let stored = check_stored_checkpoints(stored_checkpoints, verifier);
    let mut verification = LogVerification::new(stored, witnessed);
    for entry in entries {
        verification.push(&entry);
    }
    verification.finish()
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
