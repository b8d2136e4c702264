//! The case-event log at run time: the store, the sequencer, delivery to JetStream, consumers,
//! the lease and the data keys. What the log proves — record bytes, hash chain, Merkle tree,
//! checkpoints, verification — is the pure `sunshine-evidence` crate, re-exported here as
//! [`record`], [`merkle`] and [`checkpoint`] (and inside [`verify`]).
//!
//! # Layout
//! - [`error`]: [`StoreError`], what every part of the runtime returns, and its gRPC mapping.
//! - [`faults`]: fault points a crash test arms to stop a process at an exact place.
//! - [`signals`]: [`LogSignals`], the wake-ups from appends to the worker and from the worker
//!   to log consumers, passed to each part by whoever builds them.
//! - [`event`]: streams, expected versions, new events, the request digest (and, re-exported,
//!   the evidence's recorded events and metadata).
//! - [`crypto`]: sealing personal data with per-subject keys, wrapping them (under the
//!   key-encryption key, or to the sealing public key derived from it), blind indexes.
//! - [`schema`]: tables and append-only guards for PostgreSQL and SQLite; migrating, or checking.
//! - [`roles`]: PostgreSQL roles: what each service may do (read and append the log, no more).
//! - [`store`]: [`EventStore`]: append (optimistic concurrency, idempotent commands), reads.
//! - [`upcast`]: schema evolution on read; stored events are never rewritten.
//! - [`delivery`]: the JetStream stream, subjects, headers and the event envelope.
//! - [`keys`]: the per-subject data keys, wrapped; a seal-only store for processes that must
//!   not open personal data; destroying them (crypto-shredding).
//! - [`lease`]: one sequencer and relay at a time per log.
//! - [`sequencer`]: dense global positions, Merkle integration, signed checkpoints.
//! - [`verify`]: the auditor's check of a database's log; inclusion and consistency proofs.
//! - [`relay`]: publishes the log to JetStream in order, cursor advanced after the acks.
//! - [`consumer`]: exactly-once projections, dead letters, rebuilds; JetStream or log delivery.
//! - [`worker`]: the leased loop that runs the sequencer and the relay.
//! - [`runtime`]: the log inside a running service: migrations, worker, consumers, keys.
//! - [`throughput`]: the batched append rate the benchmarks measure and compare services with.
//!
//! # Module dependencies
//! Imports point one way; a module uses only modules above it in this order (checked by
//! `tests/tests/module_order.rs` in the workspace):
//!
//! ```text
//! error, faults, signals, crypto, event
//! schema       → error, event
//! roles        → schema
//! store        → error, event, schema, signals
//! upcast       → event
//! delivery     → error, event
//! keys         → crypto, error, event, store
//! lease        → error, store
//! sequencer    → error, event, store
//! verify       → error, store
//! relay        → delivery, error, event, store
//! consumer     → delivery, error, event, faults, relay, signals, store
//! worker       → lease, relay, sequencer, signals, store
//! runtime      → consumer, crypto, delivery, error, keys, lease, relay, schema, sequencer, signals, store, worker
//! throughput   → error, event, store
//! ```

pub mod consumer;
pub mod crypto;
pub mod delivery;
pub mod error;
pub mod event;
pub mod faults;
pub mod keys;
pub mod lease;
pub mod relay;
pub mod roles;
pub mod runtime;
pub mod schema;
pub mod sequencer;
pub mod signals;
pub mod store;
pub mod throughput;
pub mod upcast;
pub mod verify;
pub mod worker;

pub use sunshine_evidence::{checkpoint, merkle, record};

pub use error::StoreError;
pub use event::{
    Actor, EventMetadata, ExpectedVersion, NewEvent, RecordedEvent, StreamId, actor_of,
    request_digest,
};
pub use signals::LogSignals;
pub use store::{
    AppendGuard, AppendOutcome, CommitCursor, CommittedEvent, EventSource, EventStore,
    GuardedAppend,
};
