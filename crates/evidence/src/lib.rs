//! The case-event log's evidence: everything an auditor needs to check the log, and nothing
//! that runs it. Pure functions over bytes — no database, no async runtime, no network — so the
//! offline verifier builds from this crate alone (a test checks that its dependency tree has
//! no sqlx, tokio, tonic or async-nats). The byte formats are specified in each module's docs
//! and restated for verifiers written elsewhere in `docs/audit-log-format.md`.
//!
//! # Layout
//! - [`merkle`]: RFC 6962 Merkle tree hashing, the incremental frontier, inclusion and
//!   consistency proofs over the global order.
//! - [`checkpoint`]: signed checkpoints (C2SP tlog-checkpoint in a C2SP signed-note, Ed25519)
//!   and the published verifier key.
//! - [`record`]: an event as the log holds it ([`RecordedEvent`], its [`EventMetadata`]), the
//!   exact bytes its hash covers, the per-stream hash chain.
//! - [`verify`]: the auditor's check of a whole log from its stored entries and checkpoints.
//!
//! # Module dependencies
//! Imports point one way; a module uses only modules above it (checked by
//! `tests/tests/module_order.rs` in the workspace):
//!
//! ```text
//! merkle
//! checkpoint   → merkle
//! record       → merkle
//! verify       → checkpoint, merkle, record
//! ```
//!
//! The runtime — the store, the sequencer that writes leaves and checkpoints, relay and
//! consumers — is `sunshine-eventlog`, which depends on this crate.

pub mod checkpoint;
pub mod merkle;
pub mod record;
pub mod verify;

pub use checkpoint::{Checkpoint, CheckpointSigner, CheckpointVerifier};
pub use merkle::Hash;
pub use record::{Actor, EventMetadata, RecordedEvent};
pub use verify::{Problem, ProblemKind, VerificationReport, verify_entries};
