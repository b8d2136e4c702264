//! Cluster only: when intake's events of each case reach the bus. A core NATS subscription to
//! the run's intake subjects (`<prefix>.intake.<case id>`) sees every message the relay
//! publishes to JetStream, so a submission's time splits into sent → published (intake's
//! request, append, and the log worker's sequencing and relay) and published → seen (review's
//! consumer, its append of `CaseOpened`, the poll that finds it).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use futures::StreamExt as _;

/// First time a message of each case was seen on the bus.
#[derive(Debug, Clone, Default)]
pub struct PublishTimes {
    first: Arc<Mutex<HashMap<String, Instant>>>,
}

impl PublishTimes {
    /// Subscribes to `<subject_prefix>.intake.*` on NATS at `address` until the process ends.
    pub async fn watch(address: &str, subject_prefix: &str) -> anyhow::Result<PublishTimes> {
        let client = async_nats::connect(format!("nats://{address}")).await?;
        let mut messages = client
            .subscribe(format!("{subject_prefix}.intake.*"))
            .await?;
        client.flush().await?;
        let times = PublishTimes::default();
        let first = Arc::clone(&times.first);
        tokio::spawn(async move {
            let _client = client;
            while let Some(message) = messages.next().await {
                let now = Instant::now();
                let Some(case_id) = message.subject.as_str().rsplit('.').next() else {
                    continue;
                };
                first
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .entry(case_id.to_owned())
                    .or_insert(now);
            }
        });
        Ok(times)
    }

    /// When the first message of `case_id` arrived, if it did.
    pub fn first_publish(&self, case_id: &str) -> Option<Instant> {
        self.first
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(case_id)
            .copied()
    }
}
