//! Wake-ups between the parts of the log: an append wakes the log worker (so it sequences at
//! once instead of at its next poll), and the worker moving the log wakes the consumers that
//! follow the log itself. Across processes (the cluster), appends travel as a core NATS message.
//!
//! A [`LogSignals`] is a value like any other: whoever builds the log's parts creates one and
//! hands clones to the store (which raises `appended`), the worker (which waits for it and
//! raises `advanced`) and the log consumers (which wait for `advanced`). [`LogRuntime`] does
//! that for a service; a process that runs several services on one database (`sunshine serve
//! all`, the demo, the test sandbox) creates one and gives it to each, so an append by any of
//! them wakes whichever worker holds the lease.
//!
//! No wake-up is lost: each signal is a generation counter, and a [`Waiter`] remembers the last
//! generation it saw, so a signal raised while its part was busy (not waiting) is seen at the
//! next [`Waiter::wait`] at once. Bursts coalesce: ten appends during one round are one wake.
//!
//! In the cluster every service runs in its own process, and the worker holding the lease is in
//! one of them. [`LogSignals::join_bus`] connects a process's signals to the others': each local
//! append is announced once on a core NATS subject (coalesced the same way, never persisted:
//! a lost announcement costs one poll, the log itself is never at risk), and announcements
//! from other processes raise `appended` here. Only local appends are announced, so two
//! processes never echo each other.
//!
//! [`LogRuntime`]: crate::runtime::LogRuntime

use std::sync::{Arc, OnceLock};

use futures::StreamExt as _;
use tokio::sync::watch;

/// How long [`LogSignals::join_bus`] waits to hear its own probe before going on without the
/// proof (wake-ups then start when the server catches up; the poll covers the meantime).
const JOIN_PATIENCE: std::time::Duration = std::time::Duration::from_secs(5);

/// The log's wake-ups; clones share them.
#[derive(Debug, Clone, Default)]
pub struct LogSignals {
    shared: Arc<Wakeups>,
}

#[derive(Debug)]
struct Wakeups {
    /// Any append this process should react to: its own or another process's.
    appended: watch::Sender<u64>,
    /// Appends made in this process only: what is announced to the others.
    appended_here: watch::Sender<u64>,
    advanced: watch::Sender<u64>,
    /// Set once this process announces its appends on the bus.
    joined: OnceLock<String>,
}

impl Default for Wakeups {
    fn default() -> Self {
        Wakeups {
            appended: watch::Sender::new(0),
            appended_here: watch::Sender::new(0),
            advanced: watch::Sender::new(0),
            joined: OnceLock::new(),
        }
    }
}

/// Waits for one signal; see [`LogSignals::appended_waiter`].
#[derive(Debug)]
pub struct Waiter {
    receiver: watch::Receiver<u64>,
}

impl Waiter {
    /// Resolves as soon as the signal has been raised since this waiter last returned (or was
    /// made): at once if it was raised meanwhile.
    pub async fn wait(&mut self) {
        if self.receiver.changed().await.is_err() {
            // The sender lives as long as the signals; if it is gone nothing will wake us.
            std::future::pending::<()>().await;
        }
    }
}

fn bump(sender: &watch::Sender<u64>) {
    sender.send_modify(|generation| *generation = generation.wrapping_add(1));
}

impl LogSignals {
    /// A fresh set, shared with nobody yet.
    pub fn new() -> Self {
        LogSignals::default()
    }

    /// An append committed in this process: wakes whoever waits for `appended` here, and, once
    /// [`LogSignals::join_bus`] ran, the other processes.
    pub fn notify_appended(&self) {
        bump(&self.shared.appended_here);
        bump(&self.shared.appended);
    }

    /// A waiter for appends, having seen every append so far.
    pub fn appended_waiter(&self) -> Waiter {
        Waiter {
            receiver: self.shared.appended.subscribe(),
        }
    }

    /// The worker moved the log: wakes whoever waits for `advanced`.
    pub fn notify_advanced(&self) {
        bump(&self.shared.advanced);
    }

    /// A waiter for the log's advances, having seen every advance so far.
    pub fn advanced_waiter(&self) -> Waiter {
        Waiter {
            receiver: self.shared.advanced.subscribe(),
        }
    }

    /// Connects these signals to every other process's on `subject` (core NATS, not JetStream):
    /// this process's appends are announced there, and announcements heard there raise
    /// `appended` here. It returns once the server has the subscription (or after a few
    /// seconds without proof). Idempotent: the second call for the same signals does nothing.
    pub async fn join_bus(
        &self,
        client: &async_nats::Client,
        subject: &str,
    ) -> Result<(), async_nats::SubscribeError> {
        if self.shared.joined.set(subject.to_owned()).is_err() {
            return Ok(());
        }
        let mut heard = client.subscribe(subject.to_owned()).await?;
        // Joined means the server has the subscription: the first message heard on it (our own
        // probe, which the server handles after our SUB, or anyone's announcement) proves it.
        if client
            .publish(subject.to_owned(), bytes::Bytes::new())
            .await
            .is_ok()
        {
            let _ = tokio::time::timeout(JOIN_PATIENCE, heard.next()).await;
        }
        let hearing = Arc::downgrade(&self.shared);
        tokio::spawn(async move {
            while heard.next().await.is_some() {
                let Some(shared) = hearing.upgrade() else {
                    return;
                };
                bump(&shared.appended);
            }
        });
        let mut local = self.shared.appended_here.subscribe();
        let announcing = Arc::downgrade(&self.shared);
        let client = client.clone();
        let subject = subject.to_owned();
        tokio::spawn(async move {
            while local.changed().await.is_ok() {
                if announcing.strong_count() == 0 {
                    return;
                }
                // Our own announcement comes back too and wakes our worker once more:
                // harmless, and cheaper than telling it apart.
                let announced = match client.publish(subject.clone(), bytes::Bytes::new()).await {
                    Ok(()) => client.flush().await.map_err(|error| error.to_string()),
                    Err(error) => Err(error.to_string()),
                };
                if let Err(error) = announced {
                    tracing::debug!(%error, "could not announce an append; the others poll");
                }
            }
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn a_signal_raised_while_nobody_waits_is_not_lost() {
        let signals = LogSignals::new();
        let mut waiter = signals.appended_waiter();
        signals.notify_appended();
        tokio::time::timeout(Duration::from_secs(5), waiter.wait())
            .await
            .expect("the append raised before the wait is seen");
    }

    #[tokio::test]
    async fn a_burst_is_one_wake_and_then_the_waiter_waits_again() {
        let signals = LogSignals::new();
        let mut waiter = signals.advanced_waiter();
        for _ in 0..10 {
            signals.notify_advanced();
        }
        waiter.wait().await;
        assert!(
            tokio::time::timeout(Duration::from_millis(50), waiter.wait())
                .await
                .is_err(),
            "ten signals before one wait are one wake"
        );
    }

    #[tokio::test]
    async fn a_waiter_made_after_a_signal_does_not_see_it() {
        let signals = LogSignals::new();
        signals.notify_appended();
        let mut waiter = signals.appended_waiter();
        assert!(
            tokio::time::timeout(Duration::from_millis(50), waiter.wait())
                .await
                .is_err()
        );
    }
}
