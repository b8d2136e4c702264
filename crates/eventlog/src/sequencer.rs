//! The sequencer: gives committed events their place in the global order and integrates them
//! into the Merkle log, making signed checkpoints as it goes.
//!
//! It reads committed events behind the transaction horizon
//! ([`EventStore::read_ready_after`]), so it never skips one that commits late, assigns
//! each the next `log_position` (dense, from 0: the Merkle leaf index), and writes
//! `log_entries` rows with the leaf hash `SHA-256(0x00 || event hash)`. It signs a checkpoint
//! (C2SP signed note) and stores it in `log_checkpoints` whenever the tree size reaches a
//! multiple of `checkpoint_every` (a batch never crosses one), and, while entries arrive, at
//! least every `checkpoint_interval`: those time-based checkpoints have whatever size the log
//! has then, between the multiples, and do not move them. Only the lease holder runs
//! it (see [`crate::lease`]); a second sequencer's writes would fail on the position key.

use std::time::{Duration, Instant};

use sqlx::Row as _;
use sunshine_evidence::checkpoint::{Checkpoint, CheckpointSigner};
use sunshine_evidence::merkle::{Hash, MerkleFrontier, leaf_hash};

use crate::error::{StoreError, to_hash, to_i64, to_u64};
use crate::event::RecordedEvent;
use crate::store::{CommitCursor, EventStore};

/// How the sequencer works.
#[derive(Debug, Clone)]
pub struct SequencerConfig {
    /// Events taken per transaction.
    pub batch_size: u32,
    /// Sign a checkpoint at every multiple of this many entries (tree sizes N, 2N, 3N, …) ...
    pub checkpoint_every: u64,
    /// ... and at least this often while entries arrive (at any size).
    pub checkpoint_interval: Duration,
}

impl SequencerConfig {
    fn validated(mut self) -> Self {
        self.batch_size = self.batch_size.max(1);
        self.checkpoint_every = self.checkpoint_every.max(1);
        self
    }
}

impl Default for SequencerConfig {
    fn default() -> Self {
        SequencerConfig {
            batch_size: 1_000,
            checkpoint_every: 1_000,
            checkpoint_interval: Duration::from_secs(10),
        }
    }
}

/// What one round did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SequenceOutcome {
    pub sequenced: usize,
    /// Tree size of the checkpoint made in this round, if one was.
    pub checkpoint: Option<u64>,
    /// The round took as many events as it could: more may be waiting.
    pub batch_full: bool,
    /// Committed events wait behind a transaction still open (the horizon): worth looking
    /// again soon.
    pub held_back: bool,
}

struct SequencerState {
    cursor: CommitCursor,
    frontier: MerkleFrontier,
    last_checkpoint_size: u64,
    last_checkpoint_at: Instant,
}

/// Sequences one log. Not `Clone`: one per lease holder.
pub struct Sequencer {
    store: EventStore,
    signer: CheckpointSigner,
    origin: String,
    config: SequencerConfig,
    state: Option<SequencerState>,
    /// The events the last round sequenced, with their positions, for the relay to take
    /// without reading them back ([`Sequencer::take_sequenced`]).
    sequenced: Vec<RecordedEvent>,
}

impl std::fmt::Debug for Sequencer {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Sequencer")
            .field("origin", &self.origin)
            .field("config", &self.config)
            .finish()
    }
}

impl Sequencer {
    /// `origin` names the log in its checkpoints, e.g. `sunshine.example/district-990101/case-events`.
    pub fn new(
        store: EventStore,
        origin: impl Into<String>,
        signer: CheckpointSigner,
        config: SequencerConfig,
    ) -> Self {
        Sequencer {
            store,
            signer,
            origin: origin.into(),
            config: config.validated(),
            state: None,
            sequenced: Vec::new(),
        }
    }

    /// Reloads where the log stands: the last sequenced event and the Merkle frontier.
    async fn load_state(&self) -> Result<SequencerState, StoreError> {
        let rows =
            sqlx::query("SELECT log_position, leaf_hash FROM log_entries ORDER BY log_position")
                .fetch_all(self.store.pool())
                .await?;
        let mut frontier = MerkleFrontier::new();
        for (expected_position, row) in rows.iter().enumerate() {
            let position = to_u64(row.try_get::<i64, _>(0)?)?;
            if position != expected_position as u64 {
                return Err(StoreError::Corrupt(format!(
                    "log position {expected_position} is missing"
                )));
            }
            frontier
                .push(to_hash(&row.try_get::<Vec<u8>, _>(1)?)?)
                .map_err(|error| StoreError::Corrupt(error.to_string()))?;
        }
        let last = sqlx::query(
            "SELECT e.tx_id, e.sequence FROM log_entries l JOIN events e ON e.sequence = l.event_sequence \
             ORDER BY l.log_position DESC LIMIT 1",
        )
        .fetch_optional(self.store.pool())
        .await?;
        let cursor = match last {
            Some(row) => CommitCursor {
                tx_id: row.try_get(0)?,
                sequence: row.try_get(1)?,
            },
            None => CommitCursor::default(),
        };
        let last_checkpoint: Option<i64> =
            sqlx::query_scalar("SELECT MAX(tree_size) FROM log_checkpoints")
                .fetch_one(self.store.pool())
                .await?;
        let last_checkpoint_size = to_u64(last_checkpoint.unwrap_or(0))?;
        if frontier.tree_size() < last_checkpoint_size {
            // Someone removed signed entries. Refuse to write over the evidence.
            return Err(StoreError::Corrupt(format!(
                "the log holds {} entries but a checkpoint of {last_checkpoint_size} was signed: it was truncated",
                frontier.tree_size()
            )));
        }
        Ok(SequencerState {
            cursor,
            frontier,
            last_checkpoint_size,
            last_checkpoint_at: Instant::now(),
        })
    }

    /// Sequences up to one batch; makes a checkpoint when one is due.
    pub async fn run_once(&mut self) -> Result<SequenceOutcome, StoreError> {
        let result = self.run_once_inner().await;
        if result.is_err() {
            // Whatever failed may have left memory ahead of the database: reload next time.
            self.state = None;
        }
        result
    }

    /// The log's size as this sequencer knows it (`None` before its first round).
    pub fn tree_size(&self) -> Option<u64> {
        self.state.as_ref().map(|state| state.frontier.tree_size())
    }

    /// The events the last [`Sequencer::run_once`] sequenced, in position order with their
    /// positions set, exactly as [`EventStore::read_log`] would return them; empty after a
    /// round that sequenced nothing or failed.
    pub fn take_sequenced(&mut self) -> Vec<RecordedEvent> {
        std::mem::take(&mut self.sequenced)
    }

    async fn run_once_inner(&mut self) -> Result<SequenceOutcome, StoreError> {
        self.sequenced.clear();
        if self.state.is_none() {
            self.state = Some(self.load_state().await?);
        }
        let Some(state) = self.state.as_mut() else {
            return Ok(SequenceOutcome::default());
        };
        // Stop each batch at the next multiple of `checkpoint_every`, so those checkpoints fall
        // on exact multiples (predictable sizes for auditors). The grid is counted from 0, not
        // from the last checkpoint: a time-based checkpoint in between does not move it.
        let every = self.config.checkpoint_every;
        let until_boundary = every - state.frontier.tree_size() % every;
        let limit = u64::from(self.config.batch_size).min(until_boundary);
        let limit = u32::try_from(limit).unwrap_or(self.config.batch_size);
        let read = self.store.read_ready_after(state.cursor, limit).await?;
        let committed = read.ready;
        let mut outcome = SequenceOutcome {
            held_back: read.held_back,
            ..SequenceOutcome::default()
        };
        if !committed.is_empty() {
            let first_position = state.frontier.tree_size();
            let mut leaf_hashes: Vec<Hash> = Vec::with_capacity(committed.len());
            let mut transaction = self.store.pool().begin().await?;
            for chunk_start in (0..committed.len()).step_by(300) {
                let chunk = &committed[chunk_start..committed.len().min(chunk_start + 300)];
                let mut sql = String::from(
                    "INSERT INTO log_entries (log_position, event_sequence, leaf_hash) VALUES ",
                );
                for index in 0..chunk.len() {
                    if index > 0 {
                        sql.push_str(", ");
                    }
                    sql.push_str(&format!(
                        "(${}, ${}, ${})",
                        index * 3 + 1,
                        index * 3 + 2,
                        index * 3 + 3
                    ));
                }
                let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
                for (offset, entry) in chunk.iter().enumerate() {
                    let position = first_position + (chunk_start + offset) as u64;
                    let leaf = leaf_hash(&entry.event.hash);
                    leaf_hashes.push(leaf);
                    query = query
                        .bind(to_i64(position)?)
                        .bind(entry.event.sequence)
                        .bind(leaf.to_vec());
                }
                query.execute(&mut *transaction).await?;
            }
            transaction.commit().await?;
            for leaf in leaf_hashes {
                state
                    .frontier
                    .push(leaf)
                    .map_err(|error| StoreError::Corrupt(error.to_string()))?;
            }
            if let Some(last) = committed.last() {
                state.cursor = last.cursor;
            }
            outcome.sequenced = committed.len();
            outcome.batch_full = committed.len() == limit as usize;
            self.sequenced = committed
                .into_iter()
                .enumerate()
                .map(|(offset, entry)| {
                    let mut event = entry.event;
                    event.log_position = Some(first_position + offset as u64);
                    event
                })
                .collect();
        }
        let size = state.frontier.tree_size();
        let entries_since = size.saturating_sub(state.last_checkpoint_size);
        let on_the_grid = size % every == 0;
        let due = entries_since > 0
            && (on_the_grid
                || state.last_checkpoint_at.elapsed() >= self.config.checkpoint_interval);
        if due {
            outcome.checkpoint = Some(self.checkpoint_now().await?);
        }
        Ok(outcome)
    }

    /// Signs and stores a checkpoint of the tree as it stands; returns its size. A checkpoint of
    /// the same size as the last one is not stored again.
    pub async fn checkpoint_now(&mut self) -> Result<u64, StoreError> {
        if self.state.is_none() {
            self.state = Some(self.load_state().await?);
        }
        let Some(state) = self.state.as_mut() else {
            return Ok(0);
        };
        let size = state.frontier.tree_size();
        if size == 0 || size == state.last_checkpoint_size {
            return Ok(size);
        }
        let checkpoint = Checkpoint {
            origin: self.origin.clone(),
            tree_size: size,
            root_hash: state.frontier.root(),
        };
        let note = self
            .signer
            .sign(&checkpoint)
            .map_err(|error| StoreError::Invalid(error.to_string()))?;
        sqlx::query("INSERT INTO log_checkpoints (tree_size, root_hash, note, created_at_us) VALUES ($1, $2, $3, $4)")
            .bind(to_i64(size)?)
            .bind(checkpoint.root_hash.to_vec())
            .bind(note)
            .bind(crate::event::now_micros())
            .execute(self.store.pool())
            .await?;
        state.last_checkpoint_size = size;
        state.last_checkpoint_at = Instant::now();
        tracing::debug!(tree_size = size, "checkpoint signed");
        Ok(size)
    }

    /// Sequences until nothing committed is left behind the horizon.
    pub async fn run_until_idle(&mut self) -> Result<usize, StoreError> {
        let mut total = 0;
        loop {
            let outcome = self.run_once().await?;
            total += outcome.sequenced;
            if !outcome.batch_full {
                return Ok(total);
            }
        }
    }
}
