//! Wake-ups between the parts of the log in one process: an append wakes the log worker (so
//! it sequences at once instead of at its next poll), and the worker moving the log wakes the
//! consumers that follow the log itself.
//!
//! A [`LogSignals`] is a value like any other: whoever builds the log's parts creates one and
//! hands clones to the store (which raises `appended`), the worker (which waits for it and
//! raises `advanced`) and the log consumers (which wait for `advanced`). [`LogRuntime`] does
//! that for a service; a process that runs several services on one database (`sunshine serve
//! all`, the demo, the test sandbox) creates one and gives it to each, so an append by any of
//! them wakes whichever worker holds the lease. Parts that were handed different signals only
//! find each other's work at their next poll.
//!
//! [`LogRuntime`]: crate::runtime::LogRuntime

use std::sync::Arc;

use tokio::sync::Notify;
use tokio::sync::futures::Notified;

/// The log's wake-ups; clones share them.
#[derive(Debug, Clone, Default)]
pub struct LogSignals {
    shared: Arc<Wakeups>,
}

#[derive(Debug, Default)]
struct Wakeups {
    appended: Notify,
    advanced: Notify,
}

impl LogSignals {
    /// A fresh set, shared with nobody yet.
    pub fn new() -> Self {
        LogSignals::default()
    }

    /// An append committed: wakes whoever waits in [`LogSignals::appended`].
    pub fn notify_appended(&self) {
        self.shared.appended.notify_waiters();
    }

    /// Resolves at the next [`LogSignals::notify_appended`] after it was created.
    pub fn appended(&self) -> Notified<'_> {
        self.shared.appended.notified()
    }

    /// The worker moved the log: wakes whoever waits in [`LogSignals::advanced`].
    pub fn notify_advanced(&self) {
        self.shared.advanced.notify_waiters();
    }

    /// Resolves at the next [`LogSignals::notify_advanced`] after it was created.
    pub fn advanced(&self) -> Notified<'_> {
        self.shared.advanced.notified()
    }
}
