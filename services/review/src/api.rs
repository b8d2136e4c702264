//! `sunshine.v1.ReviewService`. Every command goes the same steps: check the caller's role
//! for the RPC, check every field against its limit ([`crate::limits`]), load the case *for
//! the caller* ([`load_case_for`]: out of scope reads exactly like an unknown case, a recused
//! official is refused), answer a retry from its first append (same command id and request
//! digest; the same id with other content is `INVALID_ARGUMENT` on `command_id`), check the
//! version the officer saw (another officer first → `ABORTED`), let the aggregate decide (the
//! workflow's roles and tiers, recusal, the one four-eyes rule), and only then write anything:
//! seal what must be sealed, append with the request's digest.

use std::sync::{Arc, OnceLock};

use sunshine_domain::{DueDate, OrgTree, OrgUnitCode, ValidationErrors, WorkingDayCalendar};
use sunshine_eventlog::runtime::LogRuntime;
use sunshine_eventlog::{
    Actor, AppendOutcome, EventMetadata, ExpectedVersion, NewEvent, StreamId, request_digest,
};
use sunshine_platform::auth::identity;
use sunshine_platform::{ApiError, Identity, Role};
use sunshine_policy::{Policy, ProgramCode};
use sunshine_proto::v1 as pb;
use sunshine_proto::v1::review_service_server::ReviewService;
use time::Date;
use tonic::{Request, Response, Status};

use crate::case::{
    Act, CaseError, CaseEvent, CaseState, CaseStatus, DeadlineLimits, Officer, RECUSAL_RULE,
    proto_date,
};
use crate::events::SCHEMA_VERSION;
use crate::limits;
use crate::workflow::Workflows;

pub use sunshine_platform::clock::{Clock, ManualClock, SystemClock};

/// Who may call each RPC. The aggregate then applies the workflow's roles and tier for the
/// stage or act, so these lists are the outer gate: officers of the case work, and (to read)
/// auditors. Departments, finance and administrators have no business with review cases.
pub const CASE_READERS: &[Role] = &[
    Role::VillageClerk,
    Role::StreetReviewer,
    Role::CenterReviewer,
    Role::CenterApprover,
    Role::Auditor,
];
/// The roles a workflow may name (`workflow.rs`): the outer bound of every command. Each
/// command's gate narrows it to the roles that may ever perform its act ([`command_roles`]).
pub const CASE_OFFICERS: &[Role] = &[
    Role::VillageClerk,
    Role::StreetReviewer,
    Role::CenterReviewer,
    Role::CenterApprover,
];

/// The roles that may ever call a command doing `acts`: those the district's workflows name
/// for the acts' stage kinds, over every workflow, or the acts' fixed lists
/// ([`Act::roles_ever`]). Checked before anything is looked up, so a role that may never
/// call the RPC learns nothing about the case.
pub fn command_roles(workflows: &Workflows, acts: &[Act]) -> Vec<Role> {
    let named: std::collections::BTreeSet<String> = acts
        .iter()
        .flat_map(|act| act.roles_ever(workflows))
        .collect();
    CASE_OFFICERS
        .iter()
        .copied()
        .filter(|role| named.contains(role.as_str()))
        .collect()
}
pub const OVERDUE_READERS: &[Role] = &[
    Role::StreetReviewer,
    Role::CenterReviewer,
    Role::CenterApprover,
    Role::Auditor,
];

/// What the handlers share once connected.
#[derive(Debug, Clone)]
pub struct ReviewState {
    pub log: LogRuntime,
    pub policy: Arc<Policy>,
    pub workflows: Arc<Workflows>,
    pub calendar: Arc<WorkingDayCalendar>,
    pub org_tree: Arc<OrgTree>,
    pub clock: Arc<dyn Clock>,
}

#[derive(Debug, Clone)]
pub struct ReviewApi {
    pub state: Arc<OnceLock<ReviewState>>,
}

fn case_error(error: CaseError) -> ApiError {
    match error {
        CaseError::NotAllowed(reason) => ApiError::PermissionDenied(reason),
        CaseError::NotNow(reason) => ApiError::FailedPrecondition(reason),
        CaseError::Invalid { field, reason } => ApiError::invalid_field(field, reason),
    }
}

fn officer(caller: &Identity) -> Officer {
    Officer {
        subject: caller.subject.clone(),
        role: caller.role.as_str().to_owned(),
        org_unit: caller.org_unit.clone(),
    }
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

/// The one answer for an org unit outside the caller's scope and for one not in the district.
fn org_unit_not_found(code: &str) -> ApiError {
    ApiError::NotFound {
        what: format!("org unit {code}"),
    }
}

fn status_name(status: CaseStatus) -> &'static str {
    match status {
        CaseStatus::Open => "open",
        CaseStatus::Approved => "approved",
        CaseStatus::Rejected => "rejected",
        CaseStatus::Withdrawn => "withdrawn",
        CaseStatus::Terminated => "terminated",
    }
}

/// A loaded case and its stream version.
#[derive(Debug)]
pub struct LoadedCase {
    pub state: CaseState,
    pub version: u64,
    pub accepted_on: Option<Date>,
    pub household_id: String,
}

/// Folds the case from its stream, whoever asks (reactors and the deadline watch). Handlers
/// use [`load_case_for`].
pub async fn load_case(state: &ReviewState, case_id: &str) -> Result<LoadedCase, ApiError> {
    load_case_until(state, case_id, u64::MAX).await
}

/// The case as it was at stream version `until`.
async fn load_case_until(
    state: &ReviewState,
    case_id: &str,
    until: u64,
) -> Result<LoadedCase, ApiError> {
    let stream = case_stream(case_id)?;
    let mut recorded = state
        .log
        .store
        .read_stream(&stream, 1)
        .await
        .map_err(ApiError::from)?;
    recorded.retain(|stored| stored.stream_version <= until);
    let mut case: Option<CaseState> = None;
    let mut accepted_on = None;
    let mut household_id = String::new();
    let mut version = 0;
    for stored in &recorded {
        version = stored.stream_version;
        let event =
            CaseEvent::decode(&stored.event_type, &stored.payload).map_err(ApiError::internal)?;
        match (&mut case, &event) {
            (None, CaseEvent::Opened(opened)) => {
                let workflow = state
                    .workflows
                    .get(&opened.workflow)
                    .ok_or_else(|| {
                        ApiError::internal(std::io::Error::other(format!(
                            "no workflow {}",
                            opened.workflow
                        )))
                    })?
                    .clone();
                accepted_on = sunshine_proto::dates::to_date(opened.accepted_on.as_ref());
                household_id = opened.household_id.clone();
                case = Some(CaseState::opened(opened, workflow).map_err(case_error)?);
            }
            (Some(current), event) => current.apply(event),
            (None, _) => {}
        }
    }
    let state = case.ok_or_else(|| case_not_found(case_id))?;
    Ok(LoadedCase {
        state,
        version,
        accepted_on,
        household_id,
    })
}

/// Whether the caller may see the case at all: its org unit covers the case's (where the
/// household is registered now), and the caller is not recused from it.
pub fn caller_sees(caller: &Identity, case: &CaseState) -> bool {
    caller.org_unit.covers(&case.hukou_org_unit) && !case.is_recused(&caller.subject)
}

/// Loads a case for `caller`: `NOT_FOUND` — exactly as for a case that does not exist — when
/// it is outside the caller's org scope; `PERMISSION_DENIED` naming the recusal rule when the
/// caller is recused from it. Every handler loads cases through here.
pub async fn load_case_for(
    state: &ReviewState,
    caller: &Identity,
    case_id: &str,
) -> Result<LoadedCase, ApiError> {
    let loaded = load_case(state, case_id).await?;
    if !caller.org_unit.covers(&loaded.state.hukou_org_unit) {
        return Err(case_not_found(case_id));
    }
    if loaded.state.is_recused(&caller.subject) {
        return Err(ApiError::PermissionDenied(RECUSAL_RULE.into()));
    }
    Ok(loaded)
}

/// Appends `events` to the case's stream at `version`, under `command_id` (reactors: derived
/// from the event they react to, so there is no request to digest).
pub async fn append_case_events(
    state: &ReviewState,
    case_id: &str,
    version: u64,
    actor: Actor,
    command_id: &str,
    events: &[CaseEvent],
) -> Result<u64, ApiError> {
    let metadata = EventMetadata {
        actor,
        command_id: Some(command_id.to_owned()),
        traceparent: sunshine_platform::telemetry::current_traceparent(),
        ..EventMetadata::default()
    };
    append_with(state, case_id, version, &metadata, events).await
}

async fn append_with(
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

fn actor(caller: &Identity) -> Actor {
    Actor {
        subject: caller.subject.clone(),
        role: caller.role.as_str().to_owned(),
        org_unit: caller.org_unit.as_str().to_owned(),
        department_code: caller.department_code.clone(),
    }
}

/// A command that passed the gate: the case as the caller may see it, at the version the
/// officer saw.
struct Admitted<'a> {
    state: &'a ReviewState,
    loaded: LoadedCase,
    acting: Officer,
    /// The command id and the request's digest, for the append.
    metadata: EventMetadata,
}

/// What the gate lets through: a new command, or a retry answered from its first append.
enum Admission<'a> {
    Fresh(Box<Admitted<'a>>),
    Retried(pb::CaseCommandResponse),
}

/// The answer a command gave, rebuilt from its first append: the case as it was right after,
/// and the policy result the append carried.
async fn retried_answer(
    state: &ReviewState,
    case_id: &str,
    outcome: &AppendOutcome,
) -> Result<pb::CaseCommandResponse, ApiError> {
    let then = load_case_until(state, case_id, outcome.last_version).await?;
    let mut policy = None;
    for stored in &outcome.events {
        match CaseEvent::decode(&stored.event_type, &stored.payload).map_err(ApiError::internal)? {
            CaseEvent::OpinionRecorded(opinion) => policy = opinion.policy,
            CaseEvent::Approved(approved) => policy = approved.policy,
            CaseEvent::Rejected(rejected) => policy = rejected.policy,
            _ => {}
        }
    }
    Ok(command_response(&then.state, outcome.last_version, policy))
}

fn command_response(
    case: &CaseState,
    version: u64,
    policy: Option<pb::PolicyResult>,
) -> pb::CaseCommandResponse {
    pb::CaseCommandResponse {
        version,
        stage: case
            .current_stage()
            .map(|stage| stage.as_str().to_owned())
            .unwrap_or_default(),
        status: status_name(case.status).into(),
        policy,
    }
}

impl ReviewApi {
    fn state(&self) -> Result<&ReviewState, ApiError> {
        self.state
            .get()
            .ok_or_else(|| ApiError::Unavailable("review is still starting".into()))
    }

    /// The gate of every command: role (for `acts`, [`command_roles`]), limits, the case for
    /// the caller, a retry, the version. `request` is the whole request, digested so that a
    /// retry must repeat it exactly.
    #[allow(clippy::too_many_arguments)]
    async fn admit(
        &self,
        caller: &Identity,
        acts: &[Act],
        request: &impl prost::Message,
        checked: ValidationErrors,
        command_id: &str,
        case_id: &str,
        expected_version: u64,
    ) -> Result<Admission<'_>, ApiError> {
        let state = self.state()?;
        caller.require_role(&command_roles(&state.workflows, acts))?;
        checked.into_result().map_err(ApiError::from)?;
        let loaded = load_case_for(state, caller, case_id).await?;
        let metadata = EventMetadata {
            actor: actor(caller),
            command_id: Some(command_id.to_owned()),
            traceparent: sunshine_platform::telemetry::current_traceparent(),
            request_digest: Some(request_digest(request)),
            ..EventMetadata::default()
        };
        if let Some(outcome) = state
            .log
            .store
            .previous_outcome(&case_stream(case_id)?, &metadata)
            .await
            .map_err(ApiError::from)?
        {
            return Ok(Admission::Retried(
                retried_answer(state, case_id, &outcome).await?,
            ));
        }
        if loaded.version != expected_version {
            return Err(ApiError::Conflict(format!(
                "case {case_id} is at version {}, not {expected_version}: another officer acted first",
                loaded.version
            )));
        }
        Ok(Admission::Fresh(Box::new(Admitted {
            state,
            loaded,
            acting: officer(caller),
            metadata,
        })))
    }

    /// Appends what the aggregate decided and answers with the case after it.
    async fn finish(
        &self,
        admitted: Box<Admitted<'_>>,
        events: Vec<CaseEvent>,
        policy: Option<pb::PolicyResult>,
    ) -> Result<pb::CaseCommandResponse, ApiError> {
        let Admitted {
            state,
            loaded,
            metadata,
            ..
        } = *admitted;
        let version = append_with(
            state,
            &loaded.state.case_id,
            loaded.version,
            &metadata,
            &events,
        )
        .await?;
        let mut after = loaded.state;
        for event in &events {
            after.apply(event);
        }
        Ok(command_response(&after, version, policy))
    }

    /// A command whose decision attaches no policy result: admit, decide, append, answer.
    #[allow(clippy::too_many_arguments)]
    async fn decide_plainly(
        &self,
        caller: &Identity,
        act: Act,
        request: &impl prost::Message,
        checked: ValidationErrors,
        command_id: &str,
        case_id: &str,
        expected_version: u64,
        decide: impl FnOnce(&ReviewState, &CaseState, &Officer) -> Result<Vec<CaseEvent>, CaseError>,
    ) -> Result<Response<pb::CaseCommandResponse>, Status> {
        let admitted = match self
            .admit(
                caller,
                &[act],
                request,
                checked,
                command_id,
                case_id,
                expected_version,
            )
            .await?
        {
            Admission::Retried(response) => return Ok(Response::new(response)),
            Admission::Fresh(admitted) => admitted,
        };
        let events =
            decide(admitted.state, &admitted.loaded.state, &admitted.acting).map_err(case_error)?;
        let response = self.finish(admitted, events, None).await?;
        Ok(Response::new(response))
    }

    /// The org unit a list is asked for: the caller's own when empty; `NOT_FOUND` when outside
    /// the caller's scope or not in the district's org tree (the same answer).
    fn list_scope(
        &self,
        state: &ReviewState,
        caller: &Identity,
        org_unit_code: &str,
    ) -> Result<OrgUnitCode, ApiError> {
        let scope = if org_unit_code.is_empty() {
            caller.org_unit.clone()
        } else {
            OrgUnitCode::parse(org_unit_code)
                .map_err(|error| ApiError::invalid_field("org_unit_code", error.to_string()))?
        };
        if !caller.org_unit.covers(&scope) || state.org_tree.get(&scope).is_none() {
            return Err(org_unit_not_found(scope.as_str()));
        }
        Ok(scope)
    }
}

/// The policy engine's result for the case's household and program, as of today.
pub async fn evaluate_case(
    state: &ReviewState,
    loaded: &LoadedCase,
) -> Result<pb::PolicyResult, ApiError> {
    let stream =
        StreamId::new("intake", "household", &loaded.household_id).map_err(ApiError::internal)?;
    let recorded = state
        .log
        .store
        .read_stream(&stream, 1)
        .await
        .map_err(ApiError::from)?;
    let mut events = Vec::new();
    for stored in &recorded {
        if let Some(event) =
            sunshine_intake::household::HouseholdEvent::decode(&stored.event_type, &stored.payload)
                .map_err(ApiError::internal)?
        {
            events.push((event, stored.stream_version, stored.recorded_at_us));
        }
    }
    let household = sunshine_intake::household::HouseholdState::fold(events).ok_or_else(|| {
        ApiError::FailedPrecondition("the case's household is not registered".into())
    })?;
    // Facts the rules cannot use are the household record's problem, not ours: say which.
    let facts = crate::facts::household_facts(&household).map_err(ApiError::FailedPrecondition)?;
    let program: ProgramCode = loaded
        .state
        .program_code
        .parse()
        .map_err(ApiError::internal)?;
    let decision = state
        .policy
        .evaluate(program, &facts, state.clock.today())
        .map_err(|error| {
            ApiError::FailedPrecondition(format!(
                "the policy cannot evaluate this household: {error}"
            ))
        })?;
    Ok(crate::policy_result::from_decision(
        &decision,
        state.policy.catalogue().program(program),
    ))
}

#[tonic::async_trait]
impl ReviewService for ReviewApi {
    async fn get_case(
        &self,
        request: Request<pb::GetCaseRequest>,
    ) -> Result<Response<pb::GetCaseResponse>, Status> {
        let caller = identity(&request)?.clone();
        caller.require_role(CASE_READERS)?;
        let message = request.into_inner();
        let mut errors = ValidationErrors::default();
        limits::check_case_id(&mut errors, &message.case_id);
        errors.into_result().map_err(ApiError::from)?;
        let state = self.state()?;
        let loaded = load_case_for(state, &caller, &message.case_id).await?;
        let deadlines = match limits_for(state, &loaded)? {
            Some(limits) => loaded.state.deadlines(&limits),
            None => Vec::new(),
        };
        let case = &loaded.state;
        Ok(Response::new(pb::GetCaseResponse {
            case_id: case.case_id.clone(),
            program_code: case.program_code.clone(),
            workflow: case.workflow.code.clone(),
            stage: case
                .current_stage()
                .map(|stage| stage.as_str().to_owned())
                .unwrap_or_default(),
            status: status_name(case.status).into(),
            version: loaded.version,
            relative_of_official: case.relative_of_official,
            open_objections: case.open_objections.iter().cloned().collect(),
            breached_deadlines: case.breaches_now(state.clock.today(), &deadlines),
        }))
    }

    async fn assign_investigators(
        &self,
        request: Request<pb::AssignInvestigatorsRequest>,
    ) -> Result<Response<pb::CaseCommandResponse>, Status> {
        let caller = identity(&request)?.clone();
        let message = request.into_inner();
        let checked = limits::assign_investigators(&message);
        let mut investigators = Vec::new();
        for investigator in &message.investigators {
            if let Ok(org_unit) = OrgUnitCode::parse(&investigator.org_unit_code) {
                investigators.push(Officer {
                    subject: investigator.subject.clone(),
                    role: investigator.role.clone(),
                    org_unit,
                });
            }
        }
        self.decide_plainly(
            &caller,
            Act::AssignInvestigators,
            &message,
            checked,
            &message.command_id,
            &message.case_id,
            message.expected_version,
            |_, case, acting| case.assign_investigators(acting, &investigators),
        )
        .await
    }

    async fn record_home_visit(
        &self,
        request: Request<pb::RecordHomeVisitRequest>,
    ) -> Result<Response<pb::CaseCommandResponse>, Status> {
        let caller = identity(&request)?.clone();
        let message = request.into_inner();
        let checked = limits::record_home_visit(&message);
        let admitted = match self
            .admit(
                &caller,
                &[Act::Visit, Act::RelativeVisit],
                &message,
                checked,
                &message.command_id,
                &message.case_id,
                message.expected_version,
            )
            .await?
        {
            Admission::Retried(response) => return Ok(Response::new(response)),
            Admission::Fresh(admitted) => admitted,
        };
        let state = admitted.state;
        let visited_on = sunshine_proto::dates::to_date(message.visited_on.as_ref())
            .ok_or_else(|| ApiError::invalid_field("visited_on", "a calendar date"))?;
        if visited_on > state.clock.today() {
            return Err(ApiError::invalid_field("visited_on", "must not be in the future").into());
        }
        // Decide first: sealing creates the case's data key, which must not happen for a
        // visit that is refused.
        admitted
            .loaded
            .state
            .record_visit(&admitted.acting, visited_on, Vec::new())
            .map_err(case_error)?;
        let sealed = if message.findings.is_empty() {
            Vec::new()
        } else {
            state
                .log
                .keys
                .seal(
                    &format!("case-{}", message.case_id),
                    message.findings.as_bytes(),
                    message.case_id.as_bytes(),
                )
                .await
                .map_err(ApiError::internal)?
        };
        let events = admitted
            .loaded
            .state
            .record_visit(&admitted.acting, visited_on, sealed)
            .map_err(case_error)?;
        let response = self.finish(admitted, events, None).await?;
        Ok(Response::new(response))
    }

    async fn request_verification(
        &self,
        request: Request<pb::RequestVerificationRequest>,
    ) -> Result<Response<pb::CaseCommandResponse>, Status> {
        let caller = identity(&request)?.clone();
        let message = request.into_inner();
        self.decide_plainly(
            &caller,
            Act::RequestVerification,
            &message,
            limits::request_verification(&message),
            &message.command_id,
            &message.case_id,
            message.expected_version,
            |_, case, acting| case.request_verification(acting, &message.department_codes),
        )
        .await
    }

    async fn record_opinion(
        &self,
        request: Request<pb::RecordOpinionRequest>,
    ) -> Result<Response<pb::CaseCommandResponse>, Status> {
        let caller = identity(&request)?.clone();
        let message = request.into_inner();
        let admitted = match self
            .admit(
                &caller,
                &[Act::Opinion],
                &message,
                limits::record_opinion(&message),
                &message.command_id,
                &message.case_id,
                message.expected_version,
            )
            .await?
        {
            Admission::Retried(response) => return Ok(Response::new(response)),
            Admission::Fresh(admitted) => admitted,
        };
        // Who may act is settled before the household is read and evaluated.
        admitted
            .loaded
            .state
            .authorize(&admitted.acting, crate::case::Act::Opinion)
            .map_err(case_error)?;
        let policy = evaluate_case(admitted.state, &admitted.loaded).await?;
        // No proposed amount means "as the engine found".
        let engine_amount = policy.amount.as_ref().map_or(0, |money| money.fen);
        let proposed = message
            .proposed_amount
            .map_or(engine_amount, |money| money.fen);
        let events = admitted
            .loaded
            .state
            .record_opinion(
                &admitted.acting,
                admitted.state.clock.today(),
                message.recommend_approval,
                proposed,
                &message.opinion,
                policy.clone(),
                &message.departure_justification,
            )
            .map_err(case_error)?;
        let response = self.finish(admitted, events, Some(policy)).await?;
        Ok(Response::new(response))
    }

    async fn start_publicity(
        &self,
        request: Request<pb::StartPublicityRequest>,
    ) -> Result<Response<pb::CaseCommandResponse>, Status> {
        let caller = identity(&request)?.clone();
        let message = request.into_inner();
        let admitted = match self
            .admit(
                &caller,
                &[Act::StartPublicity],
                &message,
                limits::start_publicity(&message),
                &message.command_id,
                &message.case_id,
                message.expected_version,
            )
            .await?
        {
            Admission::Retried(response) => return Ok(Response::new(response)),
            Admission::Fresh(admitted) => admitted,
        };
        let state = admitted.state;
        let today = state.clock.today();
        let procedure = state
            .policy
            .resolve(today)
            .map_err(ApiError::internal)?
            .procedure;
        let last_day = procedure
            .publicity_last_day(today)
            .map_err(ApiError::internal)?;
        let events = admitted
            .loaded
            .state
            .start_publicity(&admitted.acting, today, last_day)
            .map_err(case_error)?;
        let response = self.finish(admitted, events, None).await?;
        Ok(Response::new(response))
    }

    async fn answer_objection(
        &self,
        request: Request<pb::AnswerObjectionRequest>,
    ) -> Result<Response<pb::CaseCommandResponse>, Status> {
        let caller = identity(&request)?.clone();
        let message = request.into_inner();
        self.decide_plainly(
            &caller,
            Act::AnswerObjection,
            &message,
            limits::answer_objection(&message),
            &message.command_id,
            &message.case_id,
            message.expected_version,
            |_, case, acting| {
                case.answer_objection(
                    acting,
                    &message.objection_id,
                    message.upheld,
                    &message.answer,
                )
            },
        )
        .await
    }

    async fn grant_assist_first(
        &self,
        request: Request<pb::GrantAssistFirstRequest>,
    ) -> Result<Response<pb::CaseCommandResponse>, Status> {
        let caller = identity(&request)?.clone();
        let message = request.into_inner();
        let admitted = match self
            .admit(
                &caller,
                &[Act::AssistFirst],
                &message,
                limits::grant_assist_first(&message),
                &message.command_id,
                &message.case_id,
                message.expected_version,
            )
            .await?
        {
            Admission::Retried(response) => return Ok(Response::new(response)),
            Admission::Fresh(admitted) => admitted,
        };
        let state = admitted.state;
        let cap = state
            .policy
            .resolve(state.clock.today())
            .map_err(ApiError::internal)?
            .temporary
            .assist_first_cap
            .fen();
        let amount = message.amount.map_or(0, |money| money.fen);
        let events = admitted
            .loaded
            .state
            .grant_assist_first(&admitted.acting, amount, cap, &message.reason)
            .map_err(case_error)?;
        let response = self.finish(admitted, events, None).await?;
        Ok(Response::new(response))
    }

    async fn decide(
        &self,
        request: Request<pb::DecideRequest>,
    ) -> Result<Response<pb::CaseCommandResponse>, Status> {
        let caller = identity(&request)?.clone();
        let message = request.into_inner();
        let admitted = match self
            .admit(
                &caller,
                &[Act::Decide],
                &message,
                limits::decide(&message),
                &message.command_id,
                &message.case_id,
                message.expected_version,
            )
            .await?
        {
            Admission::Retried(response) => return Ok(Response::new(response)),
            Admission::Fresh(admitted) => admitted,
        };
        admitted
            .loaded
            .state
            .authorize(&admitted.acting, crate::case::Act::Decide)
            .map_err(case_error)?;
        let state = admitted.state;
        let policy = evaluate_case(state, &admitted.loaded).await?;
        let amount = message.monthly_amount.map_or(0, |money| money.fen);
        // Re-review half-yearly, or yearly where income is stable (extreme-poverty support).
        let income_is_stable = admitted.loaded.state.program_code == "tekun";
        let procedure = state
            .policy
            .resolve(state.clock.today())
            .map_err(ApiError::internal)?
            .procedure;
        let re_review_due = Some(
            procedure
                .next_re_review(state.clock.today(), income_is_stable)
                .map_err(ApiError::internal)?,
        );
        let events = admitted
            .loaded
            .state
            .decide(
                &admitted.acting,
                state.clock.today(),
                message.approve,
                amount,
                &message.start_month,
                &message.reasons,
                policy.clone(),
                &message.departure_justification,
                re_review_due,
            )
            .map_err(case_error)?;
        let response = self.finish(admitted, events, Some(policy)).await?;
        Ok(Response::new(response))
    }

    async fn return_for_material(
        &self,
        request: Request<pb::ReturnForMaterialRequest>,
    ) -> Result<Response<pb::CaseCommandResponse>, Status> {
        let caller = identity(&request)?.clone();
        let message = request.into_inner();
        self.decide_plainly(
            &caller,
            Act::ReturnForMaterial,
            &message,
            limits::return_for_material(&message),
            &message.command_id,
            &message.case_id,
            message.expected_version,
            |_, case, acting| {
                case.return_for_material(acting, &message.missing_materials, &message.reason)
            },
        )
        .await
    }

    async fn withdraw(
        &self,
        request: Request<pb::WithdrawRequest>,
    ) -> Result<Response<pb::CaseCommandResponse>, Status> {
        let caller = identity(&request)?.clone();
        let message = request.into_inner();
        self.decide_plainly(
            &caller,
            Act::Withdraw,
            &message,
            limits::withdraw(&message),
            &message.command_id,
            &message.case_id,
            message.expected_version,
            |_, case, acting| case.withdraw(acting, &message.reason),
        )
        .await
    }

    async fn extend_deadline(
        &self,
        request: Request<pb::ExtendDeadlineRequest>,
    ) -> Result<Response<pb::CaseCommandResponse>, Status> {
        let caller = identity(&request)?.clone();
        let message = request.into_inner();
        self.decide_plainly(
            &caller,
            Act::ExtendDeadline,
            &message,
            limits::extend_deadline(&message),
            &message.command_id,
            &message.case_id,
            message.expected_version,
            |_, case, acting| case.extend_deadline(acting, &message.reason),
        )
        .await
    }

    async fn list_work_queue(
        &self,
        request: Request<pb::ListWorkQueueRequest>,
    ) -> Result<Response<pb::ListWorkQueueResponse>, Status> {
        let caller = identity(&request)?.clone();
        caller.require_role(CASE_READERS)?;
        let message = request.into_inner();
        let mut errors = ValidationErrors::default();
        let page = limits::page(
            &mut errors,
            message.page.as_ref(),
            crate::deadlines::is_work_queue_key,
        );
        errors.into_result().map_err(ApiError::from)?;
        let state = self.state()?;
        let scope = self.list_scope(state, &caller, &message.org_unit_code)?;
        let items = crate::deadlines::work_queue(state, &scope, &caller).await?;
        let (items, page) = limits::paginate(items, &page, crate::deadlines::work_queue_key);
        Ok(Response::new(pb::ListWorkQueueResponse {
            items,
            page: Some(page),
        }))
    }

    async fn notify_refusal(
        &self,
        request: Request<pb::NotifyRefusalRequest>,
    ) -> Result<Response<pb::CaseCommandResponse>, Status> {
        let caller = identity(&request)?.clone();
        let message = request.into_inner();
        self.decide_plainly(
            &caller,
            Act::NotifyRefusal,
            &message,
            limits::notify_refusal(&message),
            &message.command_id,
            &message.case_id,
            message.expected_version,
            |state, case, acting| {
                case.notify_refusal(acting, state.clock.today(), &message.channel)
            },
        )
        .await
    }

    async fn list_overdue_cases(
        &self,
        request: Request<pb::ListOverdueCasesRequest>,
    ) -> Result<Response<pb::ListOverdueCasesResponse>, Status> {
        let caller = identity(&request)?.clone();
        caller.require_role(OVERDUE_READERS)?;
        let message = request.into_inner();
        let mut errors = ValidationErrors::default();
        let page = limits::page(
            &mut errors,
            message.page.as_ref(),
            crate::deadlines::is_overdue_key,
        );
        errors.into_result().map_err(ApiError::from)?;
        let state = self.state()?;
        let scope = self.list_scope(state, &caller, &message.org_unit_code)?;
        let cases = crate::deadlines::record_breaches(state, &scope, &caller).await?;
        let (cases, page) = limits::paginate(cases, &page, crate::deadlines::overdue_key);
        Ok(Response::new(pb::ListOverdueCasesResponse {
            cases,
            page: Some(page),
        }))
    }
}

/// The working-day limits of a case, from the policy and the holiday calendar, computed on
/// every read: a date that reached a year without a published notice is provisional and
/// becomes exact once the notice is in the calendar.
pub fn limits_for(
    state: &ReviewState,
    loaded: &LoadedCase,
) -> Result<Option<DeadlineLimits>, ApiError> {
    let Some(accepted_on) = loaded.accepted_on else {
        return Ok(None);
    };
    let procedure = state
        .policy
        .resolve(accepted_on)
        .map_err(ApiError::internal)?
        .procedure;
    let review = procedure
        .review_deadlines(&state.calendar, accepted_on)
        .map_err(ApiError::internal)?;
    let district_decision = match loaded.state.opinion_on {
        Some(opinion_on) => Some(
            procedure
                .district_decision_due(&state.calendar, opinion_on)
                .map_err(ApiError::internal)?,
        ),
        None => None,
    };
    let refusal_notice = match loaded.state.rejected_on {
        Some(rejected_on) => Some(
            procedure
                .refusal_notice_due(&state.calendar, rejected_on)
                .map_err(ApiError::internal)?,
        ),
        None => None,
    };
    Ok(Some(DeadlineLimits {
        investigation_start: review.investigation_start_by,
        review: review.review_due_by,
        review_extended: review.review_extended_due_by,
        district_decision,
        refusal_notice,
    }))
}

pub fn overdue_entry(case: &CaseState, deadline: &str, due: DueDate) -> pb::OverdueCase {
    pb::OverdueCase {
        case_id: case.case_id.clone(),
        deadline: deadline.to_owned(),
        due_on: Some(proto_date(due.date)),
        stage: case
            .current_stage()
            .map(|stage| stage.as_str().to_owned())
            .unwrap_or_default(),
        provisional: due.provisional,
    }
}
