//! The recovery watch (`payment-recovery-watch`): payment's reaction that opens recovery
//! claims (追缴), as review's case opener reacts to intake. It hears the two events that make a
//! paid month owed back — review's `BenefitTerminated` (a death's included) and payment's own
//! `BankResultRecorded` — and, whichever comes second, finds the orders paid for a period on
//! or after the termination's effective month (in the entitlements projection's tables) and
//! opens their claims ([`crate::recovery::open_claims`], pure) on new streams.
//!
//! It reads the entitlements projection, so it first waits for that projection to have
//! applied the event it hears (its cursor past the event's position): then both facts are
//! there for the second of the two, whatever order the consumers run in. Each claim's
//! opening appends under the command id `recover-<order id>` to a stream whose id derives
//! from the order's: a redelivery, a replay or the other event's reaction opens none.
//!
//! It also hears `BankReturnsRecorded`: an order the bank returned (退票) after its claim
//! opened brought the money back through the return, so the claim is cancelled
//! ([`crate::recovery::cancel_for_return`]: what was outstanding cancelled, a write-off
//! reversed, a repayment owed back to the household), read from the claim's own stream (its
//! id derives from the order's), so a claim opened just before the return is found whatever
//! the projection has applied. A redelivered return cancels nothing more.

use std::time::Duration;

use sqlx::AnyConnection;
use sunshine_eventlog::consumer::{HandlerError, HandlerFuture, Projection};
use sunshine_eventlog::{Actor, EventMetadata, RecordedEvent};
use sunshine_platform::ApiError;
use sunshine_proto::events::StreamEvent as _;
use sunshine_proto::v1 as pb;

use crate::aggregate::RunEvent;
use crate::read_model::{self, HeardFromReview, PaidOrdersOf};
use crate::recovery;
use crate::store::PaymentStore;

/// The projection whose tables the watch reads.
const ENTITLEMENTS: &str = "payment-entitlements";
/// How long one reaction waits for the entitlements projection before the consumer tries
/// the event again.
const CATCH_UP: Duration = Duration::from_secs(10);

/// Who the watch's appends are by.
fn watch_actor() -> Actor {
    Actor {
        subject: "payment-service".into(),
        role: "system".into(),
        org_unit: String::new(),
        department_code: None,
    }
}

/// The consumer that opens recovery claims.
#[derive(Debug, Clone)]
pub struct RecoveryWatch {
    pub store: PaymentStore,
    /// The deployment's district: each claim's scope.
    pub district_code: String,
}

/// What an event heard concerns.
enum Concern {
    /// A monthly entitlement (its case id) was terminated.
    Entitlement(String),
    /// A run's bank result was recorded.
    Run(String),
    /// A run's returns (退票) were recorded: these orders' claims, if any, are cancelled.
    Returned(pb::BankReturnsRecorded),
}

fn failed(error: ApiError) -> HandlerError {
    HandlerError(format!("recovery watch: {error:?}"))
}

impl RecoveryWatch {
    /// Which paid orders `event` may have made owed back (an entitlement's, or a run's);
    /// `None` for any other event.
    fn concerns(event: &RecordedEvent) -> Result<Option<Concern>, HandlerError> {
        if HeardFromReview::is_stream(&event.stream_id) {
            let heard = HeardFromReview::decode_known(&event.event_type, &event.payload)
                .map_err(|error| HandlerError(error.to_string()))?;
            return Ok(match heard {
                Some(HeardFromReview::Terminated(terminated)) => {
                    Some(Concern::Entitlement(terminated.case_id))
                }
                _ => None,
            });
        }
        if RunEvent::is_stream(&event.stream_id) {
            // Only these two concern it: a run's parts (up to 384 KiB of orders each, a
            // thousand of them in a large run) are not even decoded.
            use sunshine_proto::events::Event as _;
            if event.event_type != pb::BankResultRecorded::TYPE
                && event.event_type != pb::BankReturnsRecorded::TYPE
            {
                return Ok(None);
            }
            let run = RunEvent::decode(&event.event_type, &event.payload)
                .map_err(|error| HandlerError(error.to_string()))?;
            return Ok(match run {
                RunEvent::BankResultRecorded(recorded) => Some(Concern::Run(recorded.run_id)),
                RunEvent::BankReturnsRecorded(returned) => Some(Concern::Returned(returned)),
                _ => None,
            });
        }
        Ok(None)
    }

    /// Waits until the entitlements projection has applied `event`.
    async fn entitlements_past(&self, event: &RecordedEvent) -> Result<(), HandlerError> {
        let Some(position) = event.log_position else {
            return Ok(());
        };
        let deadline = tokio::time::Instant::now() + CATCH_UP;
        loop {
            if self
                .store
                .consumer_position(ENTITLEMENTS)
                .await
                .map_err(failed)?
                > position
            {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(HandlerError(format!(
                    "recovery watch: the entitlements projection has not reached log position {position} yet"
                )));
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    async fn watch(&self, event: &RecordedEvent) -> Result<(), HandlerError> {
        let Some(concern) = Self::concerns(event)? else {
            return Ok(());
        };
        let of = match &concern {
            Concern::Entitlement(entitlement_id) => PaidOrdersOf::Entitlement(entitlement_id),
            Concern::Run(run_id) => PaidOrdersOf::Run(run_id),
            Concern::Returned(returned) => return self.cancel_returned(event, returned).await,
        };
        self.entitlements_past(event).await?;
        let facts = read_model::paid_after_termination(self.store.pool(), of).await?;
        for opened in recovery::open_claims(&facts, &self.district_code) {
            let order_id = opened
                .orders
                .first()
                .map(|order| order.order_id.clone())
                .unwrap_or_default();
            let metadata = EventMetadata {
                actor: watch_actor(),
                command_id: Some(format!("recover-{order_id}")),
                causation_id: Some(event.event_id.to_string()),
                traceparent: sunshine_platform::telemetry::current_traceparent(),
                ..EventMetadata::default()
            };
            let claim_id = opened.claim_id.clone();
            if self
                .store
                .open_recovery_claim(&metadata, opened)
                .await
                .map_err(failed)?
            {
                tracing::info!(claim_id = %claim_id, "recovery claim opened");
            }
        }
        Ok(())
    }
}

impl RecoveryWatch {
    /// Cancels the claim of each order `returned` returned, if it has one still standing.
    async fn cancel_returned(
        &self,
        event: &RecordedEvent,
        returned: &pb::BankReturnsRecorded,
    ) -> Result<(), HandlerError> {
        for order in &returned.returns {
            let claim_id = crate::commands::recovery_claim_id_for(&order.order_id);
            let Some(claim) = self
                .store
                .recovery_claim_at(&claim_id, u64::MAX)
                .await
                .map_err(failed)?
            else {
                continue;
            };
            let Some(cancelled) =
                recovery::cancel_for_return(&claim, &order.order_id, &returned.run_id)
            else {
                continue;
            };
            let metadata = EventMetadata {
                actor: watch_actor(),
                command_id: Some(format!("cancel-{}", order.order_id)),
                causation_id: Some(event.event_id.to_string()),
                traceparent: sunshine_platform::telemetry::current_traceparent(),
                ..EventMetadata::default()
            };
            // A repayment appended in between is a conflict: the event is tried again, on
            // the claim as it is then.
            self.store
                .append_recovery_claim(&metadata, &claim_id, claim.version, vec![cancelled])
                .await
                .map_err(failed)?;
            tracing::info!(claim_id = %claim_id, "recovery claim cancelled: its order was returned");
        }
        Ok(())
    }
}

impl Projection for RecoveryWatch {
    fn name(&self) -> &str {
        "payment-recovery-watch"
    }

    fn react<'a>(&'a self, event: &'a RecordedEvent) -> HandlerFuture<'a> {
        Box::pin(self.watch(event))
    }

    fn apply<'a>(
        &'a self,
        _connection: &'a mut AnyConnection,
        _event: &'a RecordedEvent,
    ) -> HandlerFuture<'a> {
        // A process manager: what it decides is on the log, it keeps no table.
        Box::pin(async { Ok(()) })
    }

    fn reset<'a>(&'a self, _connection: &'a mut AnyConnection) -> HandlerFuture<'a> {
        Box::pin(async { Ok(()) })
    }
}
