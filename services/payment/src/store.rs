//! Payment's store: the one place that reads what a command decides on and appends what it
//! decided. For every RPC:
//!
//! - **load**: a retry (the same command id and request digest) is answered from its first
//!   append before anything else, and the same id with other content is refused on
//!   `command_id` (`previous_outcome`); then the run, **in the caller's scope** — a run is the
//!   district's, and outside the district it reads exactly like a run that does not exist —
//!   at the version the caller saw (`ABORTED` otherwise);
//! - **facts** a creation decides on that are not on the run's stream: the entitlements and
//!   which of them a run of the period pays already (the guard table);
//! - **append**: with the expected version (`NoStream` for a new run) and the command's
//!   metadata, in events each under the log's bound ([`aggregate::bounded`]: a large bank
//!   result or returns file in line parts). A **new run** is decided and appended a page of
//!   entitlements at a time in one transaction (`append_streamed` with [`NewRun`] as its
//!   event source): each page read on the append's transaction, decided by
//!   [`aggregate::RunAssembly`], its claims on (entitlement, period) and its orders' rows
//!   written, its `PaymentRunOrdersAdded` parts inserted; the `PaymentRunCreated` with the
//!   totals closes it. The claims commit with the events, never by compensation, and no run
//!   is held whole.
//!
//! Medical claims (`payment-medical-<claim id>`) are loaded and appended the same way: the
//! case in the caller's scope (its street-town), the household's entitlements and what the
//! patient's earlier claims of the year paid, and the claim's guard row
//! ([`MedicalClaimGuard`]) in the append's transaction.

use std::sync::Arc;

use sunshine_domain::{Money, Month, WorkingDayCalendar};
use sunshine_eventlog::runtime::LogRuntime;
use sunshine_eventlog::{
    AppendOutcome, EventMetadata, EventSource, ExpectedVersion, GuardedAppend, NewEvent, StreamId,
    actor_of,
};
use sunshine_platform::{ApiError, Identity};
use sunshine_proto::events::StreamEvent as _;

use crate::aggregate::{self, RunEvent, RunState};
use crate::commands::{BudgetFacts, CreateRepayRun, CreateRun, FailedOrder, RepayFacts};
use crate::errors::{claim_not_found, run_not_found};
use crate::funds::Funds;
use crate::medical::{ClaimCase, ClaimState, MedicalEvent};
use crate::read_model::{self, MedicalClaimGuard};
use crate::recovery::{self, RecoveryEvent};
use sunshine_proto::v1 as pb;

/// Metadata of a command: the caller, its id and the digest of the whole request, so that only
/// a faithful retry is answered as one.
pub fn command_metadata(caller: &Identity, command_id: &str, digest: String) -> EventMetadata {
    EventMetadata {
        actor: actor_of(caller),
        command_id: Some(command_id.to_owned()),
        request_digest: Some(digest),
        traceparent: sunshine_platform::telemetry::current_traceparent(),
        ..EventMetadata::default()
    }
}

/// Metadata of an export: the caller, and no command id (an export is recorded each time it
/// is taken; there is nothing to retry).
pub fn export_metadata(caller: &Identity) -> EventMetadata {
    EventMetadata {
        actor: actor_of(caller),
        traceparent: sunshine_platform::telemetry::current_traceparent(),
        ..EventMetadata::default()
    }
}

/// The stream of run `run_id`.
pub fn run_stream(run_id: &str) -> Result<StreamId, ApiError> {
    StreamId::new("payment", "run", run_id)
        .map_err(|_| ApiError::invalid_field("run_id", "not a run id"))
}

/// The case a run's events are filed under (a run is no application's case).
fn run_case(run_id: &str) -> String {
    format!("payment-run-{run_id}")
}

/// A command on an existing run, loaded.
#[derive(Debug)]
pub enum Loaded {
    /// A faithful retry: the first append's outcome.
    Retried(AppendOutcome),
    /// The run in the caller's scope, at the version the caller expected.
    Current(Box<RunState>),
}

/// Payment's store over the service's log.
#[derive(Debug, Clone)]
pub struct PaymentStore {
    log: LogRuntime,
}

impl PaymentStore {
    pub fn new(log: LogRuntime) -> Self {
        PaymentStore { log }
    }

    pub fn pool(&self) -> &sqlx::AnyPool {
        self.log.store.pool()
    }

    // ---- load ----

    /// The run's events up to `version` (all of them for `u64::MAX`), folded as `fold` says;
    /// `None` if there is no such run.
    pub async fn load_at(
        &self,
        run_id: &str,
        version: u64,
        fold: Fold,
    ) -> Result<Option<RunState>, ApiError> {
        let stream = run_stream(run_id)?;
        let mut run: Option<RunState> = None;
        // A page of events at a time, each folded as it is decoded and its payload dropped
        // after: a run's orders are held once, in the state, never also as stored events —
        // or, for a header, not at all (a page then holds a few parts, not a stream's worth).
        let page_events = match fold {
            Fold::Whole => STREAM_PAGE,
            Fold::Header => HEADER_PAGE_EVENTS,
        };
        let mut from = 1;
        while from <= version {
            let page = self
                .log
                .store
                .read_stream_page(&stream, from, page_events)
                .await?;
            let Some(last) = page.last().map(|event| event.stream_version) else {
                break;
            };
            for event in page
                .into_iter()
                .filter(|event| event.stream_version <= version)
            {
                let decoded = RunEvent::decode(&event.event_type, &event.payload)
                    .map_err(ApiError::internal)?;
                drop(event);
                let decoded = match (fold, decoded) {
                    (Fold::Header, RunEvent::OrdersAdded(mut added)) => {
                        added.orders = Vec::new();
                        RunEvent::OrdersAdded(added)
                    }
                    (Fold::Header, RunEvent::Created(mut created)) => {
                        created.orders = Vec::new();
                        RunEvent::Created(created)
                    }
                    (_, other) => other,
                };
                run.get_or_insert_with(RunState::default)
                    .apply_owned(decoded);
            }
            from = last + 1;
        }
        Ok(run)
    }

    /// The run, if it exists and the caller's org unit covers its district, folded as `fold`
    /// says. Outside the district it reads exactly like a run that does not exist.
    pub async fn run_in_scope(
        &self,
        caller: &Identity,
        run_id: &str,
        fold: Fold,
    ) -> Result<RunState, ApiError> {
        let Some(run) = self.load_at(run_id, u64::MAX, fold).await? else {
            return Err(run_not_found(run_id));
        };
        let district =
            sunshine_domain::OrgUnitCode::parse(&run.district_code).map_err(ApiError::internal)?;
        if !caller.org_unit.covers(&district) {
            return Err(run_not_found(run_id));
        }
        Ok(run)
    }

    /// The first append's outcome if `metadata`'s command was appended to run `run_id` already;
    /// the same command id with other content is refused on `command_id`.
    pub async fn run_retry(
        &self,
        run_id: &str,
        metadata: &EventMetadata,
    ) -> Result<Option<AppendOutcome>, ApiError> {
        let stream = run_stream(run_id)?;
        Ok(self.log.store.previous_outcome(&stream, metadata).await?)
    }

    /// A command on an existing run: a retry, or the run in the caller's scope at the version
    /// the caller saw, folded as `fold` says.
    pub async fn load_for_change(
        &self,
        caller: &Identity,
        metadata: &EventMetadata,
        run_id: &str,
        expected_version: u64,
        fold: Fold,
    ) -> Result<Loaded, ApiError> {
        if let Some(previous) = self.run_retry(run_id, metadata).await? {
            return Ok(Loaded::Retried(previous));
        }
        let run = self.run_in_scope(caller, run_id, fold).await?;
        if run.version != expected_version {
            return Err(ApiError::Conflict(format!(
                "run {run_id} is at version {}, not {expected_version}: someone changed it first; reload and retry",
                run.version
            )));
        }
        Ok(Loaded::Current(Box::new(run)))
    }

    /// A command on an existing run that names no version (`ImportBankResult`): a retry, or
    /// the run in the caller's scope as it is now (the append then expects that version).
    pub async fn load_current(
        &self,
        caller: &Identity,
        metadata: &EventMetadata,
        run_id: &str,
    ) -> Result<Loaded, ApiError> {
        if let Some(previous) = self.run_retry(run_id, metadata).await? {
            return Ok(Loaded::Retried(previous));
        }
        Ok(Loaded::Current(Box::new(
            self.run_in_scope(caller, run_id, Fold::Whole).await?,
        )))
    }

    /// The funds, and what approved runs of the period's year committed of them (as the
    /// projection has heard the approvals).
    pub async fn budget_facts(
        &self,
        period: Month,
        funds: &Arc<Funds>,
    ) -> Result<BudgetFacts, ApiError> {
        let mut connection = self.pool().acquire().await.map_err(ApiError::internal)?;
        let committed = read_model::committed(&mut connection, period.year())
            .await
            .map_err(ApiError::internal)?;
        Ok(BudgetFacts {
            funds: Arc::clone(funds),
            committed,
        })
    }

    /// What a re-pay run of `period` decides on: the period's failed orders (as the
    /// projection has heard the bank's results), and which of them a re-pay run pays already.
    pub async fn repay_facts(
        &self,
        period: Month,
        funds: &Arc<Funds>,
    ) -> Result<RepayFacts, ApiError> {
        let failed = read_model::failed_orders(self.pool(), period)
            .await
            .map_err(ApiError::internal)?
            .into_iter()
            .map(|(order, failure_reason)| FailedOrder {
                order,
                failure_reason,
            })
            .collect();
        let repaid = read_model::repaid(self.pool(), period)
            .await
            .map_err(ApiError::internal)?;
        Ok(RepayFacts {
            failed,
            repaid,
            budget: self.budget_facts(period, funds).await?,
        })
    }

    // ---- append ----

    /// Creates a run of `create.period`, decided and appended a page of entitlements at a
    /// time in one transaction ([`NewRun`]): the run is never held whole, and its claims on
    /// (entitlement, period) commit with its events or not at all. A claim another run holds
    /// refuses the whole append: `ALREADY_EXISTS`, naming that run. Answers the run as
    /// created.
    pub async fn create_run(
        &self,
        metadata: &EventMetadata,
        create: &CreateRun,
        funds: &Arc<Funds>,
        working_days: &WorkingDayCalendar,
    ) -> Result<(AppendOutcome, Option<pb::PaymentRunCreated>), ApiError> {
        let assembly = aggregate::RunAssembly::first_run(
            create,
            self.budget_facts(create.period, funds).await?,
            funds.calendar().pay_date(create.period, working_days),
        )?;
        let chunks = Chunks::Entitlements {
            period: create.period,
            after: String::new(),
        };
        self.append_new_run(metadata, assembly, chunks).await
    }

    /// Creates a re-pay run of `create.period` over the period's failed and returned orders
    /// (as the projection has heard the bank), the same way as [`PaymentStore::create_run`].
    pub async fn create_repay_run(
        &self,
        metadata: &EventMetadata,
        create: &CreateRepayRun,
        funds: &Arc<Funds>,
    ) -> Result<(AppendOutcome, Option<pb::PaymentRunCreated>), ApiError> {
        let facts = self.repay_facts(create.period, funds).await?;
        let assembly = aggregate::RunAssembly::repay_run(create, facts.budget)?;
        let chunks = Chunks::Failed(Some((facts.failed, facts.repaid)));
        self.append_new_run(metadata, assembly, chunks).await
    }

    async fn append_new_run(
        &self,
        metadata: &EventMetadata,
        assembly: aggregate::RunAssembly,
        chunks: Chunks,
    ) -> Result<(AppendOutcome, Option<pb::PaymentRunCreated>), ApiError> {
        let stream = run_stream(assembly.run_id())?;
        let mut source = NewRun {
            case: run_case(assembly.run_id()),
            assembly: Some(assembly),
            chunks,
            created: None,
        };
        match self
            .log
            .store
            .append_streamed(&stream, ExpectedVersion::NoStream, metadata, &mut source)
            .await?
        {
            GuardedAppend::Appended(outcome) => Ok((outcome, source.created)),
            // A retry racing its first send finds the run's claims taken by that send, which
            // committed meanwhile: it is answered as a retry, whatever the refusal said.
            GuardedAppend::Refused(refusal) => {
                match self.log.store.previous_outcome(&stream, metadata).await? {
                    Some(first) => Ok((first, None)),
                    None => Err(refusal),
                }
            }
        }
    }

    /// Appends `run`'s approval, its money committed by [`BudgetCommitment`] in the
    /// append's transaction: a fund the approved runs of the year (this one included) would
    /// take below its budget refuses the approval, `FAILED_PRECONDITION`, nothing written.
    pub async fn append_approval(
        &self,
        metadata: &EventMetadata,
        run: &RunState,
        events: Vec<RunEvent>,
        funds: &Funds,
    ) -> Result<AppendOutcome, ApiError> {
        let stream = run_stream(&run.run_id)?;
        let period = Month::parse(&run.period).map_err(ApiError::internal)?;
        let guard = read_model::BudgetCommitment {
            run_id: run.run_id.clone(),
            year: period.year(),
            control_count: run.control.count,
            control_total: Money::from_fen(run.control.total.as_ref().map_or(0, |money| money.fen)),
            funds,
        };
        let new_events = events
            .iter()
            .map(|event| NewEvent::typed(run_case(&run.run_id), event))
            .collect();
        match self
            .log
            .store
            .append_guarded(
                &stream,
                ExpectedVersion::Exact(run.version),
                metadata,
                new_events,
                &guard,
            )
            .await?
        {
            GuardedAppend::Appended(outcome) => Ok(outcome),
            GuardedAppend::Refused(read_model::ApprovalRefusal::Budget(refusal)) => {
                Err(aggregate::CommandError::Budget(refusal).into())
            }
            GuardedAppend::Refused(read_model::ApprovalRefusal::OrdersDisagree {
                count,
                total_fen,
            }) => Err(aggregate::CommandError::OrdersDisagree {
                run_id: run.run_id.clone(),
                count,
                total_fen,
                control_count: run.control.count,
                control_total_fen: run.control.total.as_ref().map_or(0, |money| money.fen),
            }
            .into()),
        }
    }

    /// Appends `events` to run `run_id` at `version`.
    pub async fn append(
        &self,
        metadata: &EventMetadata,
        run_id: &str,
        version: u64,
        events: Vec<RunEvent>,
    ) -> Result<AppendOutcome, ApiError> {
        let stream = run_stream(run_id)?;
        let new_events = aggregate::bounded(events)
            .iter()
            .map(|event| NewEvent::typed(run_case(run_id), event))
            .collect();
        Ok(self
            .log
            .store
            .append(
                &stream,
                ExpectedVersion::Exact(version),
                metadata,
                new_events,
            )
            .await?)
    }
}

/// Events of a run's stream read per page when it is loaded whole.
const STREAM_PAGE: u32 = 32;

/// How much of a run a load folds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fold {
    /// Everything, its orders included.
    Whole,
    /// Everything but its orders (`orders` empty; the control figures, the bank's result and
    /// returns lines and the rest are there): what the approval, the export and an answer
    /// before the bank's result need, whatever the run's size.
    Header,
}

/// Entitlements a run reads per page, on its append's transaction.
const ENTITLEMENTS_PER_PAGE: u32 = 2_000;

/// What a new run is decided over, chunk by chunk.
enum Chunks {
    /// The entitlements started by `period`, a page at a time after entitlement `after`.
    Entitlements { period: Month, after: String },
    /// The failed orders (and which are re-paid already), all in one chunk; `None` once taken.
    Failed(Option<(Vec<FailedOrder>, std::collections::BTreeMap<String, String>)>),
}

/// A new run's events, made as the append goes ([`EventSource`]): per chunk, its orders
/// decided by the assembly, their claims and rows written by the guard on the append's
/// transaction, and their `PaymentRunOrdersAdded` parts; after the last chunk, the
/// `PaymentRunCreated` with the run's totals (kept in `created` for the answer).
struct NewRun {
    case: String,
    assembly: Option<aggregate::RunAssembly>,
    chunks: Chunks,
    created: Option<pb::PaymentRunCreated>,
}

impl NewRun {
    /// The next chunk's orders (claimed), `None` when no chunk is left.
    async fn next_orders(
        &mut self,
        connection: &mut sqlx::AnyConnection,
        assembly: &mut aggregate::RunAssembly,
    ) -> Result<Result<Option<Vec<pb::PaymentOrder>>, ApiError>, sqlx::Error> {
        let orders = match &mut self.chunks {
            Chunks::Entitlements { period, after } => {
                let page = read_model::entitlements_page(
                    connection,
                    *period,
                    after,
                    ENTITLEMENTS_PER_PAGE,
                )
                .await?;
                let Some(last) = page
                    .last()
                    .map(|entitlement| entitlement.entitlement_id.clone())
                else {
                    return Ok(Ok(None));
                };
                let in_runs =
                    read_model::in_runs_between(connection, *period, after, &last).await?;
                *after = last;
                assembly.orders_due(&page, &in_runs)
            }
            Chunks::Failed(failed) => {
                let Some((failed, repaid)) = failed.take() else {
                    return Ok(Ok(None));
                };
                assembly.orders_repaid(&failed, &repaid)
            }
        };
        let orders = match orders {
            Ok(orders) => orders,
            Err(refusal) => return Ok(Err(refusal.into())),
        };
        let claimed: Vec<&pb::PaymentOrder> = orders.iter().collect();
        match read_model::claim_orders(connection, assembly.run_id(), assembly.period(), &claimed)
            .await?
        {
            Ok(()) => Ok(Ok(Some(orders))),
            Err(held) => Ok(Err(ApiError::AlreadyExists {
                what: format!("a run of {} with these entitlements", assembly.period()),
                existing_id: Some(held.run_id),
            })),
        }
    }
}

impl EventSource for NewRun {
    type Refusal = ApiError;

    async fn next_events(
        &mut self,
        connection: &mut sqlx::AnyConnection,
    ) -> Result<Result<Option<Vec<NewEvent>>, ApiError>, sqlx::Error> {
        let Some(mut assembly) = self.assembly.take() else {
            return Ok(Ok(None));
        };
        let events = match self.next_orders(connection, &mut assembly).await? {
            Err(refusal) => return Ok(Err(refusal)),
            Ok(Some(orders)) => {
                let parts = assembly.parts(orders);
                self.assembly = Some(assembly);
                parts
            }
            Ok(None) => match assembly.finish() {
                Err(refusal) => return Ok(Err(refusal.into())),
                Ok(created) => {
                    self.created = Some(created.clone());
                    vec![RunEvent::Created(created)]
                }
            },
        };
        Ok(Ok(Some(
            events
                .iter()
                .map(|event| NewEvent::typed(self.case.clone(), event))
                .collect(),
        )))
    }
}

// ---- Medical assistance claims ----

/// The stream of claim `claim_id`.
pub fn claim_stream(claim_id: &str) -> Result<StreamId, ApiError> {
    StreamId::new("payment", "medical", claim_id)
        .map_err(|_| ApiError::invalid_field("claim_id", "not a claim id"))
}

impl PaymentStore {
    /// The claim, folded; `None` if there is no such claim.
    pub async fn load_claim(&self, claim_id: &str) -> Result<Option<ClaimState>, ApiError> {
        let stored = self
            .log
            .store
            .read_stream(&claim_stream(claim_id)?, 1)
            .await?;
        let mut events = Vec::with_capacity(stored.len());
        for event in &stored {
            events.push(
                MedicalEvent::decode(&event.event_type, &event.payload)
                    .map_err(ApiError::internal)?,
            );
        }
        Ok(ClaimState::fold(&events))
    }

    /// The first append's outcome if `metadata`'s command was appended to claim `claim_id`.
    pub async fn claim_retry(
        &self,
        claim_id: &str,
        metadata: &EventMetadata,
    ) -> Result<Option<AppendOutcome>, ApiError> {
        Ok(self
            .log
            .store
            .previous_outcome(&claim_stream(claim_id)?, metadata)
            .await?)
    }

    /// The case a claim names, if payment heard it open and the caller's org unit covers its
    /// street-town; otherwise it reads exactly like a case that does not exist.
    pub async fn claim_case_in_scope(
        &self,
        caller: &Identity,
        case_id: &str,
    ) -> Result<ClaimCase, ApiError> {
        let not_found = || crate::errors::not_found("case", case_id);
        let case = read_model::claim_case(self.pool(), case_id)
            .await
            .map_err(ApiError::internal)?
            .ok_or_else(not_found)?;
        let street_town = sunshine_domain::OrgUnitCode::parse(&case.street_town_code)
            .map_err(ApiError::internal)?;
        if !caller.org_unit.covers(&street_town) {
            return Err(not_found());
        }
        Ok(case)
    }

    /// The claim, if it exists and the caller's org unit covers its case's street-town.
    pub async fn claim_in_scope(
        &self,
        caller: &Identity,
        claim_id: &str,
    ) -> Result<ClaimState, ApiError> {
        let not_found = || crate::errors::not_found("medical claim", claim_id);
        let claim = self.load_claim(claim_id).await?.ok_or_else(not_found)?;
        let street_town = sunshine_domain::OrgUnitCode::parse(&claim.claim.street_town_code)
            .map_err(ApiError::internal)?;
        if !caller.org_unit.covers(&street_town) {
            return Err(not_found());
        }
        Ok(claim)
    }

    /// The household's entitlements, and what payment's claims of `year` paid the patient.
    pub async fn claim_history(
        &self,
        household_id: &str,
        patient_member_id: &str,
        year: i32,
    ) -> Result<(Vec<crate::entitlements::Entitlement>, Money, u32), ApiError> {
        let household = read_model::household_entitlements(self.pool(), household_id)
            .await
            .map_err(ApiError::internal)?;
        let (paid, count) = read_model::patient_year(self.pool(), patient_member_id, year)
            .await
            .map_err(ApiError::internal)?;
        Ok((household, paid, count))
    }

    /// Appends a new claim, its guard row in the append's transaction. Another claim of the
    /// patient's year appended on the same earlier claims refuses it: `ABORTED`.
    pub async fn append_new_claim(
        &self,
        metadata: &EventMetadata,
        claim_id: &str,
        events: Vec<MedicalEvent>,
    ) -> Result<AppendOutcome, ApiError> {
        let guard = match events.first() {
            Some(MedicalEvent::Assessed(assessed)) => MedicalClaimGuard::of(assessed),
            None => {
                return Err(ApiError::internal(std::io::Error::other(
                    "a new claim starts with its assessment",
                )));
            }
        };
        let new_events = events
            .iter()
            .map(|event| NewEvent::typed(format!("payment-medical-{claim_id}"), event))
            .collect();
        match self
            .log
            .store
            .append_guarded(
                &claim_stream(claim_id)?,
                ExpectedVersion::NoStream,
                metadata,
                new_events,
                &guard,
            )
            .await?
        {
            GuardedAppend::Appended(outcome) => Ok(outcome),
            GuardedAppend::Refused(_) => Err(ApiError::Conflict(
                "another claim of this patient's year was assessed at the same time; submit again"
                    .into(),
            )),
        }
    }
}

// ---- Recovery (追缴): payment-recovery-<claim id> ----

/// The stream of claim `claim_id`.
pub fn recovery_stream(claim_id: &str) -> Result<StreamId, ApiError> {
    StreamId::new("payment", "recovery", claim_id)
        .map_err(|_| ApiError::invalid_field("claim_id", "not a claim id"))
}

/// The case a claim's events are filed under.
fn recovery_case(claim_id: &str) -> String {
    format!("payment-recovery-{claim_id}")
}

/// A command on an existing claim, loaded.
#[derive(Debug)]
pub enum LoadedClaim {
    /// A faithful retry: the first append's outcome.
    Retried(AppendOutcome),
    /// The claim in the caller's scope, at the version the caller expected.
    Current(Box<recovery::ClaimState>),
}

impl PaymentStore {
    /// The claim's events up to `version` (all of them for `u64::MAX`), folded; `None` if
    /// there is no such claim.
    pub async fn recovery_claim_at(
        &self,
        claim_id: &str,
        version: u64,
    ) -> Result<Option<recovery::ClaimState>, ApiError> {
        let stream = recovery_stream(claim_id)?;
        let stored = self.log.store.read_stream(&stream, 1).await?;
        let mut events = Vec::with_capacity(stored.len());
        for event in stored
            .iter()
            .filter(|event| event.stream_version <= version)
        {
            events.push(
                RecoveryEvent::decode(&event.event_type, &event.payload)
                    .map_err(ApiError::internal)?,
            );
        }
        Ok(recovery::ClaimState::fold(&events))
    }

    /// The claim, if it exists and the caller's org unit covers its district; outside the
    /// district it reads exactly like a claim that does not exist.
    pub async fn recovery_claim_in_scope(
        &self,
        caller: &Identity,
        claim_id: &str,
    ) -> Result<recovery::ClaimState, ApiError> {
        let Some(claim) = self.recovery_claim_at(claim_id, u64::MAX).await? else {
            return Err(claim_not_found(claim_id));
        };
        let district = sunshine_domain::OrgUnitCode::parse(&claim.opened.district_code)
            .map_err(ApiError::internal)?;
        if !caller.org_unit.covers(&district) {
            return Err(claim_not_found(claim_id));
        }
        Ok(claim)
    }

    /// A command on a claim: a retry (answered from its first append), or the claim in the
    /// caller's scope at the version the caller saw (`ABORTED` otherwise).
    pub async fn load_recovery_claim_for_change(
        &self,
        caller: &Identity,
        metadata: &EventMetadata,
        claim_id: &str,
        expected_version: u64,
    ) -> Result<LoadedClaim, ApiError> {
        let stream = recovery_stream(claim_id)?;
        if let Some(previous) = self.log.store.previous_outcome(&stream, metadata).await? {
            return Ok(LoadedClaim::Retried(previous));
        }
        let claim = self.recovery_claim_in_scope(caller, claim_id).await?;
        if claim.version != expected_version {
            return Err(ApiError::Conflict(format!(
                "claim {claim_id} is at version {}, not {expected_version}: someone changed it first; reload and retry",
                claim.version
            )));
        }
        Ok(LoadedClaim::Current(Box::new(claim)))
    }

    /// Appends `events` to claim `claim_id` at `version`.
    pub async fn append_recovery_claim(
        &self,
        metadata: &EventMetadata,
        claim_id: &str,
        version: u64,
        events: Vec<RecoveryEvent>,
    ) -> Result<AppendOutcome, ApiError> {
        let stream = recovery_stream(claim_id)?;
        let new_events = events
            .iter()
            .map(|event| NewEvent::typed(recovery_case(claim_id), event))
            .collect();
        Ok(self
            .log
            .store
            .append(
                &stream,
                ExpectedVersion::Exact(version),
                metadata,
                new_events,
            )
            .await?)
    }

    /// Opens a claim on its new stream, under `metadata`'s command id. A claim whose command
    /// was seen, or whose stream exists (its id derives from its order's: another reaction
    /// opened it), is opened already: `false`, nothing written.
    pub async fn open_recovery_claim(
        &self,
        metadata: &EventMetadata,
        opened: pb::RecoveryClaimOpened,
    ) -> Result<bool, ApiError> {
        if let Some(command_id) = &metadata.command_id
            && self.log.store.command_seen(command_id).await?
        {
            return Ok(false);
        }
        let claim_id = opened.claim_id.clone();
        let stream = recovery_stream(&claim_id)?;
        let event = RecoveryEvent::Opened(opened);
        match self
            .log
            .store
            .append(
                &stream,
                ExpectedVersion::NoStream,
                metadata,
                vec![NewEvent::typed(recovery_case(&claim_id), &event)],
            )
            .await
        {
            Ok(_) => Ok(true),
            Err(sunshine_eventlog::StoreError::Conflict { .. }) => Ok(false),
            Err(error) => Err(error.into()),
        }
    }

    /// The log position `consumer` applies next: every event before it is in its tables.
    pub async fn consumer_position(&self, consumer: &str) -> Result<u64, ApiError> {
        Ok(self
            .log
            .store
            .cursor(&format!("consumer:{consumer}"))
            .await?)
    }
}

// ---- The 纪委's exports ----

impl PaymentStore {
    /// Records an export of a run for the discipline-inspection commission on
    /// `payment-inspection-<run id>` (its own stream, so the run's stream and fold stay the
    /// run's; every export taken is recorded, so no expected version).
    pub async fn record_inspection_export(
        &self,
        metadata: &EventMetadata,
        exported: &pb::InspectionExported,
    ) -> Result<AppendOutcome, ApiError> {
        let stream = StreamId::new("payment", "inspection", &exported.run_id)
            .map_err(|_| ApiError::invalid_field("run_id", "not a run id"))?;
        Ok(self
            .log
            .store
            .append(
                &stream,
                ExpectedVersion::Any,
                metadata,
                vec![NewEvent::typed(run_case(&exported.run_id), exported)],
            )
            .await?)
    }
}

// ---- The bank file's export: the run without its orders; accounts opened ----

/// Events of a run's stream read at once for its header ([`Fold::Header`]): a few
/// `PaymentRunOrdersAdded` parts (each under the log's bound) at a time, never the stream.
const HEADER_PAGE_EVENTS: u32 = 8;

impl PaymentStore {
    /// Opens each household's sealed account (`SealedField::PaymentAccount` of intake's
    /// registration), with one look-up of the keys for them all: `None` for a household with
    /// none, or whose data key was destroyed (its personal data shredded), or whose sealed
    /// bytes are no account. The opened accounts are held only by the caller, never stored.
    pub async fn open_accounts(
        &self,
        sealed: &[(&str, Option<&[u8]>)],
    ) -> Result<Vec<Option<crate::bank_files::Account>>, ApiError> {
        use sunshine_eventlog::keys::KeyError;
        let field = sunshine_household::sealed::SealedField::PaymentAccount;
        let present: Vec<(usize, &[u8], Vec<u8>)> = sealed
            .iter()
            .enumerate()
            .filter_map(|(at, (household_id, bytes))| {
                bytes
                    .filter(|bytes| !bytes.is_empty())
                    .map(|bytes| (at, bytes, field.associated_data(household_id)))
            })
            .collect();
        let values: Vec<(&[u8], &[u8])> = present
            .iter()
            .map(|(_, bytes, associated_data)| (*bytes, associated_data.as_slice()))
            .collect();
        let opened = if values.is_empty() {
            Vec::new()
        } else {
            self.log
                .keys
                .open_all(&values)
                .await
                .map_err(ApiError::internal)?
        };
        let mut accounts = vec![None; sealed.len()];
        for ((at, _, _), opened) in present.iter().zip(opened) {
            accounts[*at] = match opened {
                Ok(bytes) => crate::bank_files::Account::from_opened(&bytes),
                Err(KeyError::Destroyed { .. }) => None,
                Err(error) => return Err(ApiError::internal(error)),
            };
        }
        Ok(accounts)
    }

    /// The account numbers of the run's households, opened (a household without an account
    /// is absent), and of the care institutions its orders pay, as `institutions` has them on
    /// `on` (one with none then is absent): what the bank's answer to the run is matched
    /// against.
    pub async fn run_account_numbers(
        &self,
        run: &crate::aggregate::RunState,
        institutions: &crate::care_institutions::CareInstitutions,
        on: time::Date,
    ) -> Result<crate::bank_files::AccountNumbers, ApiError> {
        let mut numbers = self.household_account_numbers(&run.run_id).await?;
        for order in &run.orders {
            let code = &order.care_institution_code;
            if code.is_empty() || numbers.institutions.contains_key(code) {
                continue;
            }
            if let Ok(account) = institutions.account_on(code, on) {
                numbers
                    .institutions
                    .insert(code.clone(), account.account_number.clone());
            }
        }
        Ok(numbers)
    }

    /// The account numbers of the run's households, opened (a household without an account
    /// is absent).
    async fn household_account_numbers(
        &self,
        run_id: &str,
    ) -> Result<crate::bank_files::AccountNumbers, ApiError> {
        let sealed = read_model::run_sealed_accounts(self.pool(), run_id)
            .await
            .map_err(ApiError::internal)?;
        let households: Vec<(&str, Option<&[u8]>)> = sealed
            .iter()
            .map(|(household_id, bytes)| (household_id.as_str(), Some(bytes.as_slice())))
            .collect();
        let opened = self.open_accounts(&households).await?;
        Ok(crate::bank_files::AccountNumbers {
            households: households
                .iter()
                .zip(opened)
                .filter_map(|((household_id, _), account)| {
                    account.map(|account| ((*household_id).to_owned(), account.number))
                })
                .collect(),
            institutions: std::collections::BTreeMap::new(),
        })
    }
}

// ---- Emergency cash (急难): payment-cash-<payment id> ----

/// The stream of cash payment `payment_id`.
pub fn cash_stream(payment_id: &str) -> Result<StreamId, ApiError> {
    StreamId::new("payment", "cash", payment_id)
        .map_err(|_| ApiError::invalid_field("command_id", "not a payment id"))
}

impl PaymentStore {
    /// The cash payment, folded; `None` if there is no such payment.
    pub async fn load_cash_payment(
        &self,
        payment_id: &str,
    ) -> Result<Option<crate::cash::CashState>, ApiError> {
        let stored = self
            .log
            .store
            .read_stream(&cash_stream(payment_id)?, 1)
            .await?;
        let mut events = Vec::with_capacity(stored.len());
        for event in &stored {
            events.push(
                crate::cash::CashEvent::decode(&event.event_type, &event.payload)
                    .map_err(ApiError::internal)?,
            );
        }
        Ok(crate::cash::CashState::fold(&events))
    }

    /// The first append's outcome if `metadata`'s command was appended to payment
    /// `payment_id`.
    pub async fn cash_retry(
        &self,
        payment_id: &str,
        metadata: &EventMetadata,
    ) -> Result<Option<AppendOutcome>, ApiError> {
        Ok(self
            .log
            .store
            .previous_outcome(&cash_stream(payment_id)?, metadata)
            .await?)
    }

    /// The grant `entitlement_id`, if payment heard it and the caller's org unit covers its
    /// case's street-town; otherwise it reads exactly like an entitlement that does not exist.
    pub async fn entitlement_in_scope(
        &self,
        caller: &Identity,
        entitlement_id: &str,
    ) -> Result<crate::entitlements::Entitlement, ApiError> {
        let not_found = || crate::errors::not_found("entitlement", entitlement_id);
        let entitlement = read_model::entitlement(self.pool(), entitlement_id)
            .await
            .map_err(ApiError::internal)?
            .ok_or_else(not_found)?;
        let street_town = sunshine_domain::OrgUnitCode::parse(&entitlement.street_town_code)
            .map_err(ApiError::internal)?;
        if !caller.org_unit.covers(&street_town) {
            return Err(not_found());
        }
        Ok(entitlement)
    }

    /// Appends a new cash payment, its guard ([`read_model::CashPaymentGuard`]) in the
    /// append's transaction: the grant's key claimed (held already: `ALREADY_EXISTS` naming
    /// the holder) and the fund's budget of the year checked under its lock (over:
    /// `FAILED_PRECONDITION` naming the fund), nothing written when refused.
    pub async fn append_cash_payment(
        &self,
        metadata: &EventMetadata,
        events: Vec<crate::cash::CashEvent>,
        funds: &Funds,
    ) -> Result<AppendOutcome, ApiError> {
        let paid = match events.first() {
            Some(crate::cash::CashEvent::Paid(paid)) => paid.clone(),
            None => {
                return Err(ApiError::internal(std::io::Error::other(
                    "a cash payment is its one event",
                )));
            }
        };
        let stream = cash_stream(&paid.payment_id)?;
        let guard = read_model::CashPaymentGuard { paid: &paid, funds };
        let new_events = events
            .iter()
            .map(|event| NewEvent::typed(format!("payment-cash-{}", paid.payment_id), event))
            .collect();
        match self
            .log
            .store
            .append_guarded(
                &stream,
                ExpectedVersion::NoStream,
                metadata,
                new_events,
                &guard,
            )
            .await?
        {
            GuardedAppend::Appended(outcome) => Ok(outcome),
            GuardedAppend::Refused(refusal) => {
                // A retry racing its first send finds the key taken by that send.
                if let Some(first) = self.log.store.previous_outcome(&stream, metadata).await? {
                    return Ok(first);
                }
                Err(match refusal {
                    read_model::CashRefusal::Claimed(claimed) => ApiError::AlreadyExists {
                        what: format!(
                            "a payment of entitlement {} for {}",
                            paid.order
                                .as_ref()
                                .map_or("", |order| order.entitlement_id.as_str()),
                            paid.period
                        ),
                        existing_id: Some(claimed.run_id),
                    },
                    read_model::CashRefusal::Budget(refusal) => {
                        ApiError::FailedPrecondition(refusal.to_string())
                    }
                })
            }
        }
    }
}
