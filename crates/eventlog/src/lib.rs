//! The case-event log: the system of record and the auditors' evidence.
//!
//! # Layout
//! - [`event`]: streams, expected versions, new and recorded events, metadata.
//! - [`record`]: the exact bytes each event's hash covers; the per-stream hash chain.
//! - [`schema`]: tables and append-only guards for PostgreSQL and SQLite; migrating, or checking.
//! - [`roles`]: PostgreSQL roles: what each service may do (read and append the log, no more).
//! - [`store`]: [`EventStore`]: append (optimistic concurrency, idempotent commands), reads.
//! - [`sequencer`]: dense global positions, Merkle integration, signed checkpoints.
//! - [`lease`]: one sequencer and relay at a time per log.
//! - [`verify`]: the auditor's check of the whole log; inclusion and consistency proofs.
//! - [`delivery`]: the JetStream stream, subjects, headers and the event envelope.
//! - [`relay`]: publishes the log to JetStream in order, cursor advanced after the acks.
//! - [`consumer`]: exactly-once projections, dead letters, rebuilds; JetStream or log delivery.
//! - [`runtime`]: the log inside a running service: migrations, worker, consumers, keys.
//! - [`worker`]: the leased loop that runs the sequencer and the relay.
//! - [`merkle`]: RFC 6962 Merkle tree hashing and proofs over the global order.
//! - [`checkpoint`]: signed checkpoints (C2SP signed-note format).
//! - [`crypto`]: sealing personal data with per-subject keys, blind indexes.
//! - [`keys`]: the per-subject data keys, wrapped; destroying them (crypto-shredding).
//! - [`upcast`]: schema evolution on read; stored events are never rewritten.

pub mod checkpoint;
pub mod consumer;
pub mod crypto;
pub mod delivery;
pub mod event;
pub mod keys;
pub mod lease;
pub mod merkle;
pub mod record;
pub mod relay;
pub mod roles;
pub mod runtime;
pub mod schema;
pub mod sequencer;
pub mod store;
pub mod upcast;
pub mod verify;
pub mod worker;

pub use event::{
    Actor, EventMetadata, ExpectedVersion, NewEvent, RecordedEvent, StreamId, actor_of,
    request_digest,
};
pub use store::{
    AppendGuard, AppendOutcome, CommitCursor, CommittedEvent, EventStore, GuardedAppend, StoreError,
};
