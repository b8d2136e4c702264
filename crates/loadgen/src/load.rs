//! The open-loop load: applications offered at a fixed rate whatever the system answers, each
//! timed from the moment the generator sends `SubmitApplication` until review's `GetCase` for
//! the case intake answered with (`SubmitApplicationResponse.case_id`) finds it.
//!
//! Each submission's task polls `GetCase` (one call in flight per case) and stops at the first
//! answer that is not `NOT_FOUND`. The pause between polls is `poll_interval` at first and grows
//! with the time already waited (`poll_backoff` × elapsed, at most `poll_max_interval`), so a
//! case is seen within about `poll_backoff` of its latency while slow cases do not flood review
//! with reads: polling every case each millisecond took review's connection pool from its own
//! consumer on current main and measured mostly the polling. And at most `max_concurrent_polls`
//! `GetCase` calls are in flight over all cases: review serves reads and runs its consumer from
//! one connection pool (`database.max_connections`, 10 by default), and unbounded polls of a
//! backlog took every connection from the consumer that would clear it (sqlx logged thousands of
//! acquires over 2 s), so the benchmark measured its own polling. The number of submissions not yet
//! seen is bounded (`max_in_flight`): when it is reached the generator waits, falls behind its
//! schedule, and the achieved rate shows it. Latency is measured from the actual send; how far
//! sends fell behind the schedule is reported beside it (`schedule_lag_*`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::Semaphore;

use crate::bustrace::PublishTimes;
use crate::cpu::{CpuMeter, CpuUse};
use crate::workload::{self, Clients, Household, Tokens};

/// How one step is run.
#[derive(Debug, Clone)]
pub struct StepPlan {
    pub rate_per_s: f64,
    pub duration: Duration,
    pub poll_interval: Duration,
    /// The pause grows to this fraction of the time waited so far...
    pub poll_backoff: f64,
    /// ...up to this.
    pub poll_max_interval: Duration,
    /// `GetCase` calls in flight at once, over every case.
    pub max_concurrent_polls: usize,
    pub max_in_flight: usize,
    /// A submission not seen by then counts as failed.
    pub case_timeout: Duration,
}

/// Percentiles of a set of durations, in milliseconds.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Percentiles {
    pub count: usize,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub mean_ms: f64,
}

impl Percentiles {
    /// Nearest-rank percentiles of `values` (milliseconds).
    pub fn of(values: &mut [f64]) -> Percentiles {
        if values.is_empty() {
            return Percentiles::default();
        }
        values.sort_by(f64::total_cmp);
        let rank = |fraction: f64| {
            let index = (fraction * values.len() as f64).ceil() as usize;
            values[index.clamp(1, values.len()) - 1]
        };
        Percentiles {
            count: values.len(),
            p50_ms: round3(rank(0.50)),
            p90_ms: round3(rank(0.90)),
            p99_ms: round3(rank(0.99)),
            max_ms: round3(values[values.len() - 1]),
            mean_ms: round3(values.iter().sum::<f64>() / values.len() as f64),
        }
    }
}

pub fn round3(value: f64) -> f64 {
    (value * 1000.0).round() / 1000.0
}

/// What one step measured.
#[derive(Debug, Clone, Serialize)]
pub struct StepReport {
    pub offered_rate_per_s: f64,
    pub duration_s: f64,
    /// Submissions the schedule asked for.
    pub scheduled: usize,
    pub sent: usize,
    /// Submissions whose case `GetCase` found.
    pub completed: usize,
    pub errors: usize,
    /// The first few errors, as text.
    pub error_samples: Vec<String>,
    /// Sends per second, from the first send to the last.
    pub sent_rate_per_s: f64,
    /// Completed submissions per second, from the first send to the last completion.
    pub achieved_rate_per_s: f64,
    /// SubmitApplication sent → GetCase finds the case.
    pub e2e: Percentiles,
    /// SubmitApplication alone (sent → answered).
    pub submit: Percentiles,
    /// SubmitApplication answered → GetCase finds the case.
    pub after_submit: Percentiles,
    /// Cluster: SubmitApplication sent → intake's event of the case on the bus (intake's
    /// request, append, sequencing and relay).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sent_to_published: Option<Percentiles>,
    /// Cluster: on the bus → GetCase finds the case (review's consumer and append, the poll).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub published_to_seen: Option<Percentiles>,
    /// How late sends were against the schedule.
    pub schedule_lag: Percentiles,
    /// GetCase calls per completed submission (the last one found it).
    pub polls_per_submission_mean: f64,
    /// GetCase calls per second over the step (the polling's own load on review).
    pub get_case_calls_per_s: f64,
    pub poll_interval_ms: f64,
    pub poll_backoff: f64,
    pub poll_max_interval_ms: f64,
    pub max_concurrent_polls: usize,
    pub max_in_flight: usize,
    pub cpu: CpuUse,
}

impl StepReport {
    /// p99 under `p99_limit_ms`, at least `min_fraction` of the offered rate achieved, and
    /// nothing failed.
    pub fn passes(&self, p99_limit_ms: f64, min_fraction: f64) -> bool {
        self.errors == 0
            && self.completed == self.scheduled
            && self.e2e.p99_ms < p99_limit_ms
            && self.achieved_rate_per_s >= min_fraction * self.offered_rate_per_s
    }
}

/// One submission's fate.
#[derive(Debug)]
struct Outcome {
    sent_at: Instant,
    schedule_lag: Duration,
    result: Result<Seen, String>,
    polls: u64,
}

#[derive(Debug)]
struct Seen {
    submitted_at: Instant,
    found_at: Instant,
    /// Cluster: when intake's event of the case reached the bus.
    published_at: Option<Instant>,
}

/// Sends one application and polls until its case is seen.
async fn submit_and_watch(
    clients: Clients,
    tokens: Tokens,
    request: sunshine_proto::v1::SubmitApplicationRequest,
    plan: Arc<StepPlan>,
    polls_allowed: Arc<Semaphore>,
    publish_times: Option<PublishTimes>,
    scheduled_at: Instant,
) -> Outcome {
    let sent_at = Instant::now();
    let schedule_lag = sent_at.saturating_duration_since(scheduled_at);
    let mut polls = 0;
    let result = async {
        let answer = clients
            .intake()
            .submit_application(workload::with_token(request, &tokens.clerk))
            .await
            .map_err(|status| {
                format!("SubmitApplication: {}: {}", status.code(), status.message())
            })?
            .into_inner();
        let submitted_at = Instant::now();
        if answer.case_id.is_empty() {
            return Err("SubmitApplication answered without a case id".to_owned());
        }
        let mut review = clients.review();
        loop {
            polls += 1;
            let permit = polls_allowed
                .acquire()
                .await
                .map_err(|error| format!("poll limit: {error}"))?;
            let looked = review
                .get_case(workload::with_token(
                    sunshine_proto::v1::GetCaseRequest {
                        case_id: answer.case_id.clone(),
                    },
                    &tokens.auditor,
                ))
                .await;
            drop(permit);
            match looked {
                Ok(_) => {
                    let found_at = Instant::now();
                    return Ok(Seen {
                        submitted_at,
                        found_at,
                        published_at: publish_times
                            .as_ref()
                            .and_then(|times| times.first_publish(&answer.case_id)),
                    });
                }
                Err(status) if status.code() == tonic::Code::NotFound => {}
                Err(status) => {
                    return Err(format!("GetCase: {}: {}", status.code(), status.message()));
                }
            }
            if sent_at.elapsed() > plan.case_timeout {
                return Err(format!(
                    "case {} not seen within {:?}",
                    answer.case_id, plan.case_timeout
                ));
            }
            tokio::time::sleep(poll_pause(&plan, sent_at.elapsed())).await;
        }
    }
    .await;
    Outcome {
        sent_at,
        schedule_lag,
        result,
        polls,
    }
}

/// The pause before the next poll of a case waited for `waited`.
pub fn poll_pause(plan: &StepPlan, waited: Duration) -> Duration {
    waited.mul_f64(plan.poll_backoff.max(0.0)).clamp(
        plan.poll_interval,
        plan.poll_max_interval.max(plan.poll_interval),
    )
}

/// Offers one application per household of `households` at `plan.rate_per_s` (as many as the
/// rate and duration ask for) and measures them.
pub async fn run_step(
    clients: &Clients,
    tokens: &Tokens,
    households: &[Household],
    command_prefix: &str,
    plan: StepPlan,
    processes: &[(String, u32)],
    publish_times: Option<&PublishTimes>,
) -> anyhow::Result<StepReport> {
    let scheduled = scheduled_count(plan.rate_per_s, plan.duration);
    anyhow::ensure!(
        households.len() >= scheduled,
        "{scheduled} submissions need as many households; {} registered",
        households.len()
    );
    let plan = Arc::new(plan);
    let in_flight = Arc::new(Semaphore::new(plan.max_in_flight.max(1)));
    let polls_allowed = Arc::new(Semaphore::new(plan.max_concurrent_polls.max(1)));
    let mut tasks = tokio::task::JoinSet::new();
    let interval = Duration::from_secs_f64(1.0 / plan.rate_per_s);
    let meter = CpuMeter::start(processes);
    // Start a little ahead, so the first sends are not late because of the set-up.
    let start = tokio::time::Instant::now() + Duration::from_millis(5);
    for (index, household) in households.iter().take(scheduled).enumerate() {
        let scheduled_at = start + interval.mul_f64(index as f64);
        tokio::time::sleep_until(scheduled_at).await;
        let permit = Arc::clone(&in_flight).acquire_owned().await?;
        let request = workload::application(household, format!("{command_prefix}-{index}"));
        let clients = clients.clone();
        let tokens = tokens.clone();
        let plan = Arc::clone(&plan);
        let polls_allowed = Arc::clone(&polls_allowed);
        let publish_times = publish_times.cloned();
        tasks.spawn(async move {
            let outcome = submit_and_watch(
                clients,
                tokens,
                request,
                plan,
                polls_allowed,
                publish_times,
                scheduled_at.into_std(),
            )
            .await;
            drop(permit);
            outcome
        });
    }
    let mut outcomes = Vec::with_capacity(scheduled);
    while let Some(joined) = tasks.join_next().await {
        outcomes.push(joined?);
    }
    let cpu = meter.finish();
    Ok(summarise(&plan, scheduled, &outcomes, cpu))
}

/// One application, sent and waited for (untimed): `Ok` once its case shows.
pub async fn wait_for_one(
    clients: &Clients,
    tokens: &Tokens,
    household: &Household,
    command_id: &str,
    plan: StepPlan,
) -> anyhow::Result<()> {
    let request = workload::application(household, command_id.to_owned());
    let polls_allowed = Arc::new(Semaphore::new(plan.max_concurrent_polls.max(1)));
    let outcome = submit_and_watch(
        clients.clone(),
        tokens.clone(),
        request,
        Arc::new(plan),
        polls_allowed,
        None,
        Instant::now(),
    )
    .await;
    outcome.result.map(|_| ()).map_err(anyhow::Error::msg)
}

/// How many submissions `rate` for `duration` asks for.
pub fn scheduled_count(rate_per_s: f64, duration: Duration) -> usize {
    (rate_per_s * duration.as_secs_f64()).round().max(1.0) as usize
}

fn summarise(plan: &StepPlan, scheduled: usize, outcomes: &[Outcome], cpu: CpuUse) -> StepReport {
    let millis = |duration: Duration| duration.as_secs_f64() * 1000.0;
    let mut e2e = Vec::new();
    let mut submit = Vec::new();
    let mut after_submit = Vec::new();
    let mut lag = Vec::new();
    let mut to_bus = Vec::new();
    let mut from_bus = Vec::new();
    let mut errors = Vec::new();
    let mut polls_of_completed = 0u64;
    let mut polls_total = 0u64;
    let first_send = outcomes.iter().map(|outcome| outcome.sent_at).min();
    let last_send = outcomes.iter().map(|outcome| outcome.sent_at).max();
    let mut last_completion = None;
    for outcome in outcomes {
        lag.push(millis(outcome.schedule_lag));
        polls_total += outcome.polls;
        match &outcome.result {
            Ok(seen) => {
                e2e.push(millis(seen.found_at - outcome.sent_at));
                submit.push(millis(seen.submitted_at - outcome.sent_at));
                after_submit.push(millis(seen.found_at - seen.submitted_at));
                polls_of_completed += outcome.polls;
                if let Some(published_at) = seen.published_at {
                    to_bus.push(millis(
                        published_at.saturating_duration_since(outcome.sent_at),
                    ));
                    from_bus.push(millis(
                        seen.found_at.saturating_duration_since(published_at),
                    ));
                }
                last_completion = last_completion.max(Some(seen.found_at));
            }
            Err(error) => errors.push(error.clone()),
        }
    }
    let completed = e2e.len();
    let span_of = |end: Option<Instant>| match (first_send, end) {
        (Some(first), Some(end)) if end > first => (end - first).as_secs_f64(),
        _ => 0.0,
    };
    let sending = span_of(last_send);
    let completing = span_of(last_completion);
    let rate = |count: usize, seconds: f64| {
        if seconds > 0.0 {
            count as f64 / seconds
        } else {
            0.0
        }
    };
    StepReport {
        offered_rate_per_s: plan.rate_per_s,
        duration_s: plan.duration.as_secs_f64(),
        scheduled,
        sent: outcomes.len(),
        completed,
        errors: errors.len(),
        error_samples: errors.iter().take(5).cloned().collect(),
        // n sends span n-1 intervals.
        sent_rate_per_s: round3(rate(outcomes.len().saturating_sub(1), sending)),
        achieved_rate_per_s: round3(rate(completed, completing)),
        e2e: Percentiles::of(&mut e2e),
        submit: Percentiles::of(&mut submit),
        after_submit: Percentiles::of(&mut after_submit),
        sent_to_published: (!to_bus.is_empty()).then(|| Percentiles::of(&mut to_bus)),
        published_to_seen: (!from_bus.is_empty()).then(|| Percentiles::of(&mut from_bus)),
        schedule_lag: Percentiles::of(&mut lag),
        polls_per_submission_mean: if completed > 0 {
            round3(polls_of_completed as f64 / completed as f64)
        } else {
            0.0
        },
        get_case_calls_per_s: round3(rate(polls_total as usize, completing.max(sending))),
        poll_interval_ms: millis(plan.poll_interval),
        poll_backoff: plan.poll_backoff,
        poll_max_interval_ms: millis(plan.poll_max_interval),
        max_concurrent_polls: plan.max_concurrent_polls,
        max_in_flight: plan.max_in_flight,
        cpu,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let mut values: Vec<f64> = (1..=100).map(f64::from).collect();
        let percentiles = Percentiles::of(&mut values);
        assert_eq!(percentiles.p50_ms, 50.0);
        assert_eq!(percentiles.p90_ms, 90.0);
        assert_eq!(percentiles.p99_ms, 99.0);
        assert_eq!(percentiles.max_ms, 100.0);
        assert_eq!(Percentiles::of(&mut []).count, 0);
        let mut one = [7.0];
        assert_eq!(Percentiles::of(&mut one).p99_ms, 7.0);
    }

    #[test]
    fn polls_slow_down_with_the_wait_within_bounds() {
        let plan = StepPlan {
            rate_per_s: 1.0,
            duration: Duration::from_secs(1),
            poll_interval: Duration::from_millis(1),
            poll_backoff: 0.1,
            poll_max_interval: Duration::from_millis(20),
            max_concurrent_polls: 1,
            max_in_flight: 1,
            case_timeout: Duration::from_secs(1),
        };
        assert_eq!(poll_pause(&plan, Duration::ZERO), Duration::from_millis(1));
        assert_eq!(
            poll_pause(&plan, Duration::from_millis(50)),
            Duration::from_millis(5)
        );
        assert_eq!(
            poll_pause(&plan, Duration::from_secs(3)),
            Duration::from_millis(20)
        );
    }

    #[test]
    fn the_schedule_asks_for_rate_times_duration() {
        assert_eq!(scheduled_count(200.0, Duration::from_secs(30)), 6000);
        assert_eq!(scheduled_count(50.0, Duration::from_secs(3)), 150);
        assert_eq!(scheduled_count(0.1, Duration::from_secs(1)), 1);
    }
}
