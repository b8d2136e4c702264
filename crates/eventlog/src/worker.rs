//! The log worker: in every service process, tries to take the log's lease; the holder
//! sequences committed events, signs checkpoints and (in the cluster) relays the log to
//! JetStream. Other replicas wait and take over when the holder's session ends.

use std::time::Duration;

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
    pub async fn run(mut self, shutdown: Shutdown) {
        let mut lease: Option<Lease> = None;
        let mut failures: u32 = 0;
        while !shutdown.is_triggered() {
            if let Some(held) = lease.as_mut()
                && !held.is_held().await
            {
                tracing::warn!("log worker lost its lease");
                lease = None;
            }
            if lease.is_none() {
                match Lease::try_acquire(&self.store, LOG_WORKER_LEASE).await {
                    Ok(Some(acquired)) => {
                        tracing::info!("log worker holds the lease");
                        lease = Some(acquired);
                    }
                    Ok(None) => {}
                    Err(error) => tracing::warn!(%error, "cannot take the log worker lease"),
                }
            }
            let mut moved = 0;
            if lease.is_some() {
                match self.round().await {
                    Ok(count) => {
                        moved = count;
                        failures = 0;
                    }
                    Err(error) => {
                        failures = failures.saturating_add(1);
                        tracing::warn!(%error, failures, "log worker round failed");
                    }
                }
            }
            if moved > 0 {
                self.signals.notify_advanced();
                continue;
            }
            let backoff = self.poll_interval * failures.clamp(1, 20);
            tokio::select! {
                () = tokio::time::sleep(backoff) => {}
                () = self.signals.appended(), if failures == 0 => {}
                () = shutdown.wait() => break,
            }
        }
        if let Some(held) = lease {
            held.release().await;
        }
    }

    /// Sequences what is ready, then relays what is sequenced; returns how much moved.
    async fn round(&mut self) -> Result<usize, String> {
        let sequenced = self
            .sequencer
            .run_once()
            .await
            .map_err(|error| error.to_string())?;
        let mut relayed = 0;
        if let Some(relay) = self.relay.as_mut() {
            relayed = relay.run_once().await.map_err(|error| error.to_string())?;
        }
        Ok(sequenced.sequenced + relayed)
    }
}
