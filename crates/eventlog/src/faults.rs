//! Fault points: named places in delivery where a crash test can stop a process on purpose,
//! so "killed between delivery and ack" happens every run, not by luck.
//!
//! A point is armed only by the environment variable `SUNSHINE_FAULT_POINT`, read once per
//! process, as `<point>:<consumer>:<n>` — e.g. `consumer-before-ack:review-case-opener:25`.
//! When the consumer named reaches the point for the `n`-th time in this process, it writes one
//! line to standard error, `SUNSHINE_FAULT_POINT reached <point> <consumer> <n>`, and then waits
//! for ever (the task stops; the process keeps its connections), for the test to `kill -9` it.
//! Unset (every deployment), [`reached`] is one relaxed atomic load.
//!
//! The points, in the order a delivery passes them:
//! - `consumer-before-apply`: a message is delivered; nothing is applied or acknowledged.
//! - `consumer-before-ack`: the batch holding it is applied and committed; not acknowledged.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

/// The environment variable that arms a fault point.
pub const FAULT_POINT_VARIABLE: &str = "SUNSHINE_FAULT_POINT";

/// A delivered message, before anything is applied or acknowledged.
pub const CONSUMER_BEFORE_APPLY: &str = "consumer-before-apply";
/// After the transaction that applied a message committed, before it is acknowledged.
pub const CONSUMER_BEFORE_ACK: &str = "consumer-before-ack";

#[derive(Debug)]
struct Armed {
    point: String,
    consumer: String,
    at: u64,
    passes: AtomicU64,
}

fn armed() -> Option<&'static Armed> {
    static ARMED: OnceLock<Option<Armed>> = OnceLock::new();
    ARMED
        .get_or_init(|| {
            let spec = std::env::var(FAULT_POINT_VARIABLE).ok()?;
            parse(&spec)
        })
        .as_ref()
}

fn parse(spec: &str) -> Option<Armed> {
    let mut parts = spec.rsplitn(2, ':');
    let at = parts.next()?.parse::<u64>().ok()?;
    let rest = parts.next()?;
    let (point, consumer) = rest.split_once(':')?;
    if at == 0 || point.is_empty() || consumer.is_empty() {
        return None;
    }
    Some(Armed {
        point: point.to_owned(),
        consumer: consumer.to_owned(),
        at,
        passes: AtomicU64::new(0),
    })
}

/// Passes fault point `point` for `consumer`; if this is the armed point's `n`-th pass, says so
/// on standard error and never returns.
pub async fn reached(point: &str, consumer: &str) {
    let Some(armed) = armed() else {
        return;
    };
    if armed.point != point || armed.consumer != consumer {
        return;
    }
    let pass = armed.passes.fetch_add(1, Ordering::Relaxed) + 1;
    if pass != armed.at {
        return;
    }
    eprintln!("{FAULT_POINT_VARIABLE} reached {point} {consumer} {pass}");
    std::future::pending::<()>().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spec_names_point_consumer_and_count() {
        let armed = parse("consumer-before-ack:review-case-opener:25").expect("parses");
        assert_eq!(armed.point, "consumer-before-ack");
        assert_eq!(armed.consumer, "review-case-opener");
        assert_eq!(armed.at, 25);
    }

    #[test]
    fn malformed_specs_arm_nothing() {
        for spec in [
            "",
            "consumer-before-ack",
            "consumer-before-ack:x",
            "consumer-before-ack:x:0",
            ":x:3",
            "consumer-before-ack::3",
        ] {
            assert!(parse(spec).is_none(), "{spec:?}");
        }
    }
}
