//! The offline verifier, with nothing but this crate: a small log built in memory (records
//! chained per stream, leaves, a signed checkpoint) verifies through [`verify_entries`], and
//! each kind of tampering is found at its position.

use ed25519_dalek::SigningKey;
use sunshine_evidence::checkpoint::{Checkpoint, CheckpointSigner};
use sunshine_evidence::merkle::{Hash, leaf_hash, root_from_leaf_hashes};
use sunshine_evidence::record::{GENESIS_HASH, RecordFields, chain_hash};
use sunshine_evidence::verify::{
    ProblemKind, StoredCheckpoint, StoredEntry, StoredEvent, VerificationReport, verify_entries,
};

const ORIGIN: &str = "sunshine.example/district-990101/case-events";

/// One stored row, owned, as an auditor's export would hold it.
#[derive(Debug, Clone)]
struct Row {
    position: u64,
    leaf_hash: Vec<u8>,
    event_id: String,
    stream_id: String,
    stream_version: i64,
    payload: Vec<u8>,
    previous_hash: Vec<u8>,
    hash: Vec<u8>,
}

impl Row {
    fn entry(&self) -> StoredEntry<'_> {
        StoredEntry {
            position: self.position,
            leaf_hash: &self.leaf_hash,
            event: Some(StoredEvent {
                event_id: &self.event_id,
                stream_id: &self.stream_id,
                stream_version: self.stream_version,
                case_id: "case-1",
                event_type: "example.v1.Registered",
                schema_version: 1,
                payload: &self.payload,
                metadata_json: "{}",
                occurred_at_us: 1,
                recorded_at_us: 2,
                previous_hash: &self.previous_hash,
                hash: &self.hash,
            }),
        }
    }
}

/// Five events over two streams, in position order.
fn log() -> Vec<Row> {
    let mut heads: std::collections::HashMap<&str, (u64, Hash)> = Default::default();
    let mut rows = Vec::new();
    for position in 0..5u64 {
        let stream_id = if position % 2 == 0 {
            "intake-household-1"
        } else {
            "review-case-1"
        };
        let (version, previous_hash) = heads.get(stream_id).copied().unwrap_or((0, GENESIS_HASH));
        let event_id = format!("0190f3c4-0000-7000-8000-00000000000{position}");
        let payload = format!("payload {position}").into_bytes();
        let hash = chain_hash(
            &previous_hash,
            &RecordFields {
                event_id: &event_id,
                stream_id,
                stream_version: version + 1,
                case_id: "case-1",
                event_type: "example.v1.Registered",
                schema_version: 1,
                payload: &payload,
                metadata_json: "{}",
                occurred_at_us: 1,
                recorded_at_us: 2,
            },
        );
        heads.insert(stream_id, (version + 1, hash));
        rows.push(Row {
            position,
            leaf_hash: leaf_hash(&hash).to_vec(),
            event_id,
            stream_id: stream_id.to_owned(),
            stream_version: i64::try_from(version + 1).unwrap_or(-1),
            payload,
            previous_hash: previous_hash.to_vec(),
            hash: hash.to_vec(),
        });
    }
    rows
}

fn signer() -> CheckpointSigner {
    CheckpointSigner::new(ORIGIN, SigningKey::from_bytes(&[7u8; 32])).expect("a valid origin")
}

/// The signed checkpoint of the first `size` rows, as `(tree size, root, note)`.
fn checkpoint_of(rows: &[Row], size: usize) -> (u64, Hash, String) {
    let leaves: Vec<Hash> = rows[..size]
        .iter()
        .map(|row| row.leaf_hash.as_slice().try_into().expect("32 bytes"))
        .collect();
    let checkpoint = Checkpoint {
        origin: ORIGIN.to_owned(),
        tree_size: size as u64,
        root_hash: root_from_leaf_hashes(&leaves),
    };
    let note = signer().sign(&checkpoint).expect("signed");
    (checkpoint.tree_size, checkpoint.root_hash, note)
}

fn verify(rows: &[Row], checkpoints: &[(u64, Hash, String)]) -> VerificationReport {
    let verifier = signer().verifier();
    verify_entries(
        &verifier,
        checkpoints
            .iter()
            .map(|(tree_size, root_hash, note)| StoredCheckpoint {
                tree_size: *tree_size,
                root_hash: *root_hash,
                note,
            }),
        &[],
        rows.iter().map(Row::entry),
    )
}

#[test]
fn an_untouched_log_verifies() {
    let rows = log();
    let checkpoints = [checkpoint_of(&rows, 4), checkpoint_of(&rows, 5)];
    let report = verify(&rows, &checkpoints);
    assert_eq!(report.problem, None);
    assert_eq!(
        (
            report.entries,
            report.events_checked,
            report.checkpoints_checked
        ),
        (5, 5, 2)
    );
}

#[test]
fn tampering_is_found_at_its_position() {
    let rows = log();
    let checkpoints = [checkpoint_of(&rows, 5)];

    let mut altered = rows.clone();
    altered[2].payload = b"payload 2, rewritten".to_vec();
    let problem = verify(&altered, &checkpoints).problem.expect("altered");
    assert_eq!(problem.position, 2);
    assert!(matches!(problem.kind, ProblemKind::AlteredEvent { .. }));

    let mut deleted = rows.clone();
    deleted.remove(3);
    let problem = verify(&deleted, &checkpoints).problem.expect("deleted");
    assert_eq!(
        (problem.position, problem.kind),
        (3, ProblemKind::MissingEntry)
    );

    let truncated = &rows[..4];
    let problem = verify(truncated, &checkpoints).problem.expect("truncated");
    assert_eq!(
        problem.kind,
        ProblemKind::Truncated {
            checkpoint_size: 5,
            log_size: 4
        }
    );

    let mut forged = checkpoint_of(&rows, 5);
    forged.2 = forged.2.replacen("\n5\n", "\n6\n", 1);
    let problem = verify(&rows, &[forged]).problem.expect("forged note");
    assert!(matches!(
        problem.kind,
        ProblemKind::BadCheckpoint { tree_size: 5, .. }
    ));
}
