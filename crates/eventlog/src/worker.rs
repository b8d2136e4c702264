//! The log worker: in every service process, tries to take the log's lease; the holder
//! sequences committed events, signs checkpoints and (in the cluster) relays the log to
//! JetStream. Other replicas wait and take over when the holder's session ends.

use std::time::Duration;

use tokio::time::Instant;

use sunshine_platform::Shutdown;

use crate::lease::Lease;
use crate::relay::Relay;
use crate::sequencer::Sequencer;
use crate::signals::LogSignals;
use crate::store::EventStore;

/// Name of the sequencer-and-relay lease.
pub const LOG_WORKER_LEASE: &str = "sunshine-log-worker";

/// Runs the sequencer (and the relay, when there is one) under the lease.
#[derive(Debug)]
pub struct LogWorker {
    store: EventStore,
    sequencer: Sequencer,
    relay: Option<Relay>,
    poll_interval: Duration,
    /// Appends wake the worker; the worker wakes log consumers.
    signals: LogSignals,
}

impl LogWorker {
    pub fn new(
        store: EventStore,
        sequencer: Sequencer,
        relay: Option<Relay>,
        poll_interval: Duration,
        signals: LogSignals,
    ) -> Self {
        LogWorker {
            store,
            sequencer,
            relay,
            poll_interval,
            signals,
        }
    }

    /// The signals this worker listens to and raises.
    pub fn signals(&self) -> LogSignals {
        self.signals.clone()
    }

    /// Works until `shutdown`.
    ///
    /// Holding the lease, it sequences and relays whenever an append is signalled (at once if
    /// one came while it was busy), and goes straight on while a round filled its batch or left
    /// the relay behind. When committed events
    /// wait behind a transaction still open (the sequencer's horizon), it looks again after a
    /// short, growing pause (from 1 ms) rather than a poll. Without the lease it ignores the
    /// signals and only tries the lease every poll interval; the poll interval is otherwise a
    /// safety net (a lost announcement from another process), not the path of an event.
    pub async fn run(mut self, shutdown: Shutdown) {
        let mut lease: Option<Lease> = None;
        let mut failures: u32 = 0;
        let mut appended = self.signals.appended_waiter();
        let mut held_back_pause = HELD_BACK_FIRST_PAUSE;
        let mut lease_checked = Instant::now();
        while !shutdown.is_triggered() {
            if let Some(held) = lease.as_mut()
                && lease_checked.elapsed() >= self.poll_interval
            {
                lease_checked = Instant::now();
                if !held.is_held().await {
                    tracing::warn!("log worker lost its lease");
                    lease = None;
                }
            }
            if lease.is_none() {
                match Lease::try_acquire(&self.store, LOG_WORKER_LEASE).await {
                    Ok(Some(acquired)) => {
                        tracing::info!("log worker holds the lease");
                        // Another holder may have moved the relay's cursor meanwhile.
                        if let Some(relay) = self.relay.as_mut() {
                            relay.forget_cursor();
                        }
                        lease = Some(acquired);
                        lease_checked = Instant::now();
                    }
                    Ok(None) => {}
                    Err(error) => tracing::warn!(%error, "cannot take the log worker lease"),
                }
            }
            if lease.is_none() {
                tokio::select! {
                    () = tokio::time::sleep(self.poll_interval) => {}
                    () = shutdown.wait() => break,
                }
                continue;
            }
            let mut held_back = false;
            match self.round().await {
                Ok(round) => {
                    failures = 0;
                    if round.moved > 0 {
                        held_back_pause = HELD_BACK_FIRST_PAUSE;
                        self.signals.notify_advanced();
                    }
                    if round.more {
                        continue;
                    }
                    // Otherwise wait: an append committed during the round has raised its
                    // signal since the last wait, so the next wait returns at once.
                    held_back = round.held_back;
                }
                Err(error) => {
                    failures = failures.saturating_add(1);
                    tracing::warn!(%error, failures, "log worker round failed");
                }
            }
            if failures > 0 {
                tokio::select! {
                    () = tokio::time::sleep(self.poll_interval * failures.clamp(1, 20)) => {}
                    () = shutdown.wait() => break,
                }
                continue;
            }
            let pause = if held_back {
                let pause = held_back_pause;
                held_back_pause = (held_back_pause * 2).min(self.poll_interval);
                pause
            } else {
                held_back_pause = HELD_BACK_FIRST_PAUSE;
                self.poll_interval
            };
            tokio::select! {
                () = tokio::time::sleep(pause) => {}
                () = appended.wait() => {}
                () = shutdown.wait() => break,
            }
        }
        if let Some(held) = lease {
            held.release().await;
        }
    }

    /// Sequences what is ready, then relays what is sequenced: the events just sequenced go
    /// out as they are, with no read back, when the relay stands where they begin.
    async fn round(&mut self) -> Result<Round, String> {
        let sequenced = self
            .sequencer
            .run_once()
            .await
            .map_err(|error| error.to_string())?;
        let mut relayed = 0;
        let mut relay_behind = false;
        if let Some(relay) = self.relay.as_mut() {
            let log_size = self.sequencer.tree_size();
            relayed = relay
                .run_after(self.sequencer.take_sequenced(), log_size)
                .await
                .map_err(|error| error.to_string())?;
            relay_behind = log_size.is_some_and(|size| relay.behind(size));
        }
        Ok(Round {
            moved: sequenced.sequenced + relayed,
            more: sequenced.batch_full || relay_behind,
            held_back: sequenced.held_back,
        })
    }
}

/// What one round did.
#[derive(Debug, Clone, Copy)]
struct Round {
    moved: usize,
    /// A batch was full or the relay is behind the sequencer: go on at once.
    more: bool,
    /// Committed events wait behind an open transaction.
    held_back: bool,
}

/// The first pause before looking again at events held back by an open transaction.
const HELD_BACK_FIRST_PAUSE: Duration = Duration::from_millis(1);
