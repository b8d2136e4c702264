//! Review's reads and writes of the log, the one module that loads and appends case streams
//! (`review-case-<case id>`): a case folded from its stream — for a caller (out of scope reads
//! exactly like a case that does not exist, a recused official is refused) or for a reaction —
//! a command's first outcome (retries), the household's policy result, appends with their
//! metadata, and the open-case list the deadline watch walks.

use sqlx::Row as _;
use sunshine_eventlog::{
    Actor, AppendGuard, AppendOutcome, EventMetadata, ExpectedVersion, GuardedAppend, NewEvent,
    RecordedEvent, StreamId,
};
use sunshine_platform::{ApiError, Identity};
use sunshine_policy::ProgramCode;
use sunshine_proto::v1 as pb;

use crate::case::{CaseEvent, CaseState, Evaluation, RECUSAL_RULE, Unassessable};
use crate::events::SCHEMA_VERSION;
use crate::state::ReviewState;

/// A case folded from its stream, and the stream's version.
#[derive(Debug)]
pub struct LoadedCase {
    pub state: CaseState,
    pub version: u64,
}

pub fn case_stream(case_id: &str) -> Result<StreamId, ApiError> {
    StreamId::new("review", "case", case_id)
        .map_err(|_| ApiError::invalid_field("case_id", "not a case id"))
}

/// The one answer for a case the caller may not see and for a case that does not exist.
pub fn case_not_found(case_id: &str) -> ApiError {
    ApiError::NotFound {
        what: format!("case {case_id}"),
    }
}

/// Whether the caller may see the case at all: its org unit covers the case's (where the
/// household is registered now), and the caller is not recused from it.
pub fn caller_sees(caller: &Identity, case: &CaseState) -> bool {
    caller.org_unit.covers(&case.hukou_org_unit) && !case.is_recused(&caller.subject)
}

/// Who a service-side append is by (a reaction, the deadline watch): `subject` names it.
pub fn system_actor(subject: &str) -> Actor {
    Actor {
        subject: subject.into(),
        role: "system".into(),
        org_unit: String::new(),
        department_code: None,
    }
}

/// Folds the case from its stream, whoever asks (reactions and the deadline watch). Handlers
/// use [`load_for`].
pub async fn load(state: &ReviewState, case_id: &str) -> Result<LoadedCase, ApiError> {
    load_until(state, case_id, u64::MAX).await
}

/// The case as it was at stream version `until`.
pub async fn load_until(
    state: &ReviewState,
    case_id: &str,
    until: u64,
) -> Result<LoadedCase, ApiError> {
    let mut recorded = state
        .log
        .store
        .read_stream(&case_stream(case_id)?, 1)
        .await
        .map_err(ApiError::from)?;
    recorded.retain(|stored| stored.stream_version <= until);
    let version = recorded.last().map_or(0, |stored| stored.stream_version);
    let events = decode_all(&recorded)?;
    let case = CaseState::replay(&state.workflows, &events)
        .map_err(ApiError::internal)?
        .ok_or_else(|| case_not_found(case_id))?;
    Ok(LoadedCase {
        state: case,
        version,
    })
}

/// The case events of `recorded`, in order (an event of another type is an error).
pub fn decode_all(recorded: &[RecordedEvent]) -> Result<Vec<CaseEvent>, ApiError> {
    recorded
        .iter()
        .map(|stored| {
            CaseEvent::decode(&stored.event_type, &stored.payload).map_err(ApiError::internal)
        })
        .collect()
}

/// Loads a case for `caller`: `NOT_FOUND` — exactly as for a case that does not exist — when
/// it is outside the caller's org scope; `PERMISSION_DENIED` naming the recusal rule when the
/// caller is recused from it. Every handler loads cases through here.
pub async fn load_for(
    state: &ReviewState,
    caller: &Identity,
    case_id: &str,
) -> Result<LoadedCase, ApiError> {
    let loaded = load(state, case_id).await?;
    if !caller.org_unit.covers(&loaded.state.hukou_org_unit) {
        return Err(case_not_found(case_id));
    }
    if loaded.state.is_recused(&caller.subject) {
        return Err(ApiError::PermissionDenied(RECUSAL_RULE.into()));
    }
    Ok(loaded)
}

/// The first append of the command `metadata` names (its command id, by its caller, with the
/// same request digest), if there was one; the same id with other content is refused.
pub async fn previous_outcome(
    state: &ReviewState,
    case_id: &str,
    metadata: &EventMetadata,
) -> Result<Option<AppendOutcome>, ApiError> {
    state
        .log
        .store
        .previous_outcome(&case_stream(case_id)?, metadata)
        .await
        .map_err(ApiError::from)
}

/// Appends `events` to the case's stream at `version`; the stream's new version.
pub async fn append(
    state: &ReviewState,
    case_id: &str,
    version: u64,
    metadata: &EventMetadata,
    events: &[CaseEvent],
) -> Result<u64, ApiError> {
    let new_events = events
        .iter()
        .map(|event| NewEvent::new(case_id, event.event_type(), SCHEMA_VERSION, event.encode()))
        .collect();
    let outcome = state
        .log
        .store
        .append(
            &case_stream(case_id)?,
            ExpectedVersion::Exact(version),
            metadata,
            new_events,
        )
        .await
        .map_err(ApiError::from)?;
    Ok(outcome.last_version)
}

/// Opens the case: its `CaseOpened`, first on a stream that must not exist yet (the
/// metadata's command id makes a redelivery append nothing).
pub async fn open(
    state: &ReviewState,
    opened: pb::CaseOpened,
    metadata: &EventMetadata,
) -> Result<(), ApiError> {
    let stream = case_stream(&opened.case_id)?;
    let row = OpenCaseRow {
        case_id: opened.case_id.clone(),
        household_id: opened.household_id.clone(),
        hukou_org_unit_code: opened.hukou_org_unit_code.clone(),
    };
    let opened = CaseEvent::Opened(opened);
    let event = NewEvent::new(
        row.case_id.clone(),
        opened.event_type(),
        SCHEMA_VERSION,
        opened.encode(),
    );
    match state
        .log
        .store
        .append_guarded(
            &stream,
            ExpectedVersion::NoStream,
            metadata,
            vec![event],
            &row,
        )
        .await
        .map_err(ApiError::from)?
    {
        GuardedAppend::Appended(_) => Ok(()),
        GuardedAppend::Refused(never) => match never {},
    }
}

/// The open-case row the deadline watch walks, written in the same transaction as the case's
/// `CaseOpened`: the list never lacks a case the log holds, and never names one it does not.
/// The projection writes the same row from the log (rebuilds).
struct OpenCaseRow {
    case_id: String,
    household_id: String,
    hukou_org_unit_code: String,
}

impl AppendGuard for OpenCaseRow {
    type Refusal = std::convert::Infallible;

    async fn apply(
        &self,
        connection: &mut sqlx::AnyConnection,
    ) -> Result<Result<(), Self::Refusal>, sqlx::Error> {
        sqlx::query(
            "INSERT INTO review_cases (case_id, household_id, hukou_org_unit_code, status) VALUES ($1, $2, $3, 'open') \
             ON CONFLICT (case_id) DO NOTHING",
        )
        .bind(self.case_id.as_str())
        .bind(self.household_id.as_str())
        .bind(self.hukou_org_unit_code.as_str())
        .execute(connection)
        .await?;
        Ok(Ok(()))
    }
}

/// The metadata of a service-side append under `command_id` (derived from what it reacts to,
/// so a redelivery appends nothing; there is no request to digest).
pub fn system_metadata(actor: Actor, command_id: &str) -> EventMetadata {
    EventMetadata {
        actor,
        command_id: Some(command_id.to_owned()),
        traceparent: sunshine_platform::telemetry::current_traceparent(),
        ..EventMetadata::default()
    }
}

/// The policy engine's result for the case's household and program, as of today: the
/// household folded from intake's stream (no personal data opened). A household the rules
/// cannot evaluate is an [`Unassessable`] evaluation, for the aggregate to refuse once the
/// officer is allowed to act; reading or decoding failures are errors.
pub async fn evaluate(state: &ReviewState, case: &CaseState) -> Result<Evaluation, ApiError> {
    let household = sunshine_household::load(&state.log.store, &case.household_id)
        .await
        .map_err(|error| match error {
            sunshine_household::LoadError::Store(error) => ApiError::from(error),
            other => ApiError::internal(other),
        })?;
    let Some(household) = household else {
        return Ok(Err(Unassessable(
            "the case's household is not registered".into(),
        )));
    };
    // Facts the rules cannot use are the household record's problem, not ours: say which.
    let facts = match crate::facts::household_facts(&household) {
        Ok(facts) => facts,
        Err(problem) => return Ok(Err(Unassessable(problem))),
    };
    let program: ProgramCode = case.program_code.parse().map_err(ApiError::internal)?;
    let decision = match state.policy.evaluate(program, &facts, state.clock.today()) {
        Ok(decision) => decision,
        Err(error) => {
            return Ok(Err(Unassessable(format!(
                "the policy cannot evaluate this household: {error}"
            ))));
        }
    };
    Ok(Ok(crate::policy_result::from_decision(
        &decision,
        state.policy.catalogue().program(program),
    )))
}

/// The open-case list (`review_cases`): cases under the org-unit `prefix` that are open or
/// running (a rejection stays until its refusal is notified), by case id. Advisory: every
/// command loads the case itself.
pub async fn cases_in_scope(state: &ReviewState, prefix: &str) -> Result<Vec<String>, ApiError> {
    let rows = sqlx::query(
        "SELECT case_id FROM review_cases WHERE hukou_org_unit_code LIKE $1 AND status IN ('open', 'approved', 'rejected') ORDER BY case_id",
    )
    .bind(format!("{prefix}%"))
    .fetch_all(state.log.store.pool())
    .await
    .map_err(ApiError::internal)?;
    rows.iter()
        .map(|row| row.try_get::<String, _>(0).map_err(ApiError::internal))
        .collect()
}
