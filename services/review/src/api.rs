//! `sunshine.v1.ReviewService`. Every RPC has one shape:
//!
//! 1. **identity**: the verified token, the service's state, the RPC's role gate
//!    ([`command_roles`] for commands: a role that may never call it learns nothing of the
//!    case), and the acting [`Officer`] and the log's `Actor`, built once from the identity;
//! 2. **parse**: the request into the aggregate's command ([`crate::requests`]: every limit
//!    and every field, all violations at once);
//! 3. **load** ([`crate::store`]): first a retry, answered from its first append (same
//!    command id and request digest, by the same caller; the same id with other content is
//!    `INVALID_ARGUMENT` on `command_id`) — before anything that depends on the case as it is
//!    now; then the case *for the caller* (out of scope reads exactly like an unknown case, a
//!    recused official is refused), the version the officer saw (another officer first →
//!    `ABORTED`), and for opinions and decisions the policy engine's evaluation;
//! 4. **decide**: `CaseState::handle`, once (the workflow's roles and tiers, recusal, the one
//!    four-eyes rule);
//! 5. **append**, with the request's digest — and only now is anything written: a visit's
//!    findings are sealed (the case's data key created) between the decision and the append;
//! 6. **response**: the case after the append (a retry gets the same, rebuilt).
//!
//! Reads stop after the load and answer from the case.

use sunshine_domain::{Money, OrgUnitCode, ValidationErrors};
use sunshine_eventlog::{Actor, AppendOutcome, EventMetadata, request_digest};
use sunshine_platform::auth::identity;
use sunshine_platform::{ApiError, Identity, Role};
use sunshine_policy::{ProgramCode, ResolvedPolicy};
use sunshine_proto::v1 as pb;
use sunshine_proto::v1::review_service_server::ReviewService;
use tonic::{Request, Response, Status};

use crate::case::{
    Act, CaseError, CaseEvent, CaseState, CaseStatus, JoinHomeVisitSample, Officer, ReReviewDue,
};
use crate::deadlines;
use crate::limits;
use crate::requests::{self, CaseCommandRequest};
use crate::sample;
use crate::state::ReviewState;
use crate::store::{self, LoadedCase};
use crate::workflow::Workflows;

pub use crate::state::{Clock, ManualClock, SystemClock};

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

#[derive(Debug, Clone)]
pub struct ReviewApi {
    pub state: std::sync::Arc<std::sync::OnceLock<ReviewState>>,
}

/// The one mapping of the aggregate's refusals to the API's.
fn case_error(error: CaseError) -> ApiError {
    match error {
        CaseError::NotAllowed(reason) => ApiError::PermissionDenied(reason),
        CaseError::NotNow(reason) => ApiError::FailedPrecondition(reason),
        CaseError::Invalid { field, reason } => ApiError::invalid_field(field, reason),
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

/// The policy result a command's events carry (its opinion or decision), for the response.
fn policy_of(events: &[CaseEvent]) -> Option<pb::PolicyResult> {
    let mut policy = None;
    for event in events {
        match event {
            CaseEvent::OpinionRecorded(opinion) => policy = opinion.policy.clone(),
            CaseEvent::Approved(approved) => policy = approved.policy.clone(),
            CaseEvent::Rejected(rejected) => policy = rejected.policy.clone(),
            _ => {}
        }
    }
    policy
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

/// The answer a command gave, rebuilt from its first append: the case as it was right after,
/// and the policy result the append carried.
async fn retried_answer(
    state: &ReviewState,
    case_id: &str,
    outcome: &AppendOutcome,
) -> Result<pb::CaseCommandResponse, ApiError> {
    let then = store::load_until(state, case_id, outcome.last_version).await?;
    let events = store::decode_all(&outcome.events)?;
    Ok(command_response(
        &then.state,
        outcome.last_version,
        policy_of(&events),
    ))
}

/// One call: the service's state and who calls, from the verified token — as the acting
/// officer and as the actor the log records, each built once.
struct Call<'a> {
    state: &'a ReviewState,
    caller: Identity,
    officer: Officer,
    actor: Actor,
}

/// A command past the load: the case at the version the officer saw, and the metadata its
/// append carries (the command id and the request's digest).
struct Admitted {
    case: LoadedCase,
    metadata: EventMetadata,
}

/// What loading finds for a command: the case, or the answer of the command's first append.
enum Loaded {
    Fresh(Box<Admitted>),
    Retried(pb::CaseCommandResponse),
}

impl Call<'_> {
    fn today(&self) -> time::Date {
        self.state.clock.today()
    }

    /// The policy in force today.
    fn policy_today(&self) -> Result<ResolvedPolicy, ApiError> {
        self.state
            .policy
            .resolve(self.today())
            .map_err(ApiError::internal)
    }

    /// The load of every command: a retry answered from its first append, then the case for
    /// the caller, then the version the officer saw.
    ///
    /// The retry comes first, before anything that depends on the case as it is now: the
    /// first answer was given by the case as it was, and a case that has since left the
    /// caller's scope (the household moved) or recused the caller must not turn an OK whose
    /// answer was lost into a refusal. Only the same caller's same request is a retry (the
    /// store binds the digest to the actor), so nobody learns anything they were not told.
    async fn load<R: CaseCommandRequest>(&self, request: &R) -> Result<Loaded, ApiError> {
        let case_id = request.case_id();
        let metadata = EventMetadata {
            actor: self.actor.clone(),
            command_id: Some(request.command_id().to_owned()),
            traceparent: sunshine_platform::telemetry::current_traceparent(),
            request_digest: Some(request_digest(request)),
            ..EventMetadata::default()
        };
        if let Some(outcome) = store::previous_outcome(self.state, case_id, &metadata).await? {
            return Ok(Loaded::Retried(
                retried_answer(self.state, case_id, &outcome).await?,
            ));
        }
        let case = store::load_for(self.state, &self.caller, case_id).await?;
        let expected_version = request.expected_version();
        if case.version != expected_version {
            return Err(ApiError::Conflict(format!(
                "case {case_id} is at version {}, not {expected_version}: another officer acted first",
                case.version
            )));
        }
        Ok(Loaded::Fresh(Box::new(Admitted { case, metadata })))
    }

    /// Appends what the aggregate decided and answers with the case after it.
    /// Decides `command` on the admitted case (`CaseState::handle`, once) and appends what was
    /// decided: the last two steps of every command.
    async fn decide_and_append(
        &self,
        admitted: Box<Admitted>,
        command: crate::case::CaseCommand,
    ) -> CommandAnswer {
        let events = admitted.case.state.handle(command).map_err(case_error)?;
        Ok(Response::new(self.append(admitted, events).await?))
    }

    async fn append(
        &self,
        admitted: Box<Admitted>,
        events: Vec<CaseEvent>,
    ) -> Result<pb::CaseCommandResponse, ApiError> {
        let Admitted { case, metadata } = *admitted;
        let version = store::append(
            self.state,
            &case.state.case_id,
            case.version,
            &metadata,
            &events,
        )
        .await?;
        let mut after = case.state;
        for event in &events {
            after.apply(event);
        }
        Ok(command_response(&after, version, policy_of(&events)))
    }

    /// The org unit a list is asked for: the caller's own when empty; `NOT_FOUND` when outside
    /// the caller's scope or not in the district's org tree (the same answer).
    fn list_scope(&self, org_unit_code: &str) -> Result<OrgUnitCode, ApiError> {
        let scope = if org_unit_code.is_empty() {
            self.caller.org_unit.clone()
        } else {
            OrgUnitCode::parse(org_unit_code)
                .map_err(|error| ApiError::invalid_field("org_unit_code", error.to_string()))?
        };
        if !self.caller.org_unit.covers(&scope) || self.state.org_tree.get(&scope).is_none() {
            return Err(org_unit_not_found(scope.as_str()));
        }
        Ok(scope)
    }
}

/// What a command's loading found: go on with the admitted command, or answer the retry.
macro_rules! fresh_or_answer {
    ($loaded:expr) => {
        match $loaded {
            Loaded::Fresh(admitted) => admitted,
            Loaded::Retried(answer) => return Ok(Response::new(answer)),
        }
    };
}

impl ReviewApi {
    fn state(&self) -> Result<&ReviewState, ApiError> {
        self.state
            .get()
            .ok_or_else(|| ApiError::Unavailable("review is still starting".into()))
    }

    /// The start of every RPC: the identity, the service's state, the role gate (`allowed`
    /// from the state, so commands can use the workflows).
    fn call<M>(
        &self,
        request: &Request<M>,
        allowed: impl FnOnce(&ReviewState) -> Vec<Role>,
    ) -> Result<Call<'_>, ApiError> {
        let caller = identity(request)?.clone();
        let state = self.state()?;
        caller.require_role(&allowed(state))?;
        let officer = Officer {
            subject: caller.subject.clone(),
            role: caller.role.as_str().to_owned(),
            org_unit: caller.org_unit.clone(),
        };
        let actor = sunshine_eventlog::actor_of(&caller);
        Ok(Call {
            state,
            caller,
            officer,
            actor,
        })
    }

    /// [`ReviewApi::call`] for a command doing `acts` ([`command_roles`]).
    fn command_call<M>(&self, request: &Request<M>, acts: &[Act]) -> Result<Call<'_>, ApiError> {
        self.call(request, |state| command_roles(&state.workflows, acts))
    }
}

type CommandAnswer = Result<Response<pb::CaseCommandResponse>, Status>;

#[tonic::async_trait]
impl ReviewService for ReviewApi {
    async fn get_case(
        &self,
        request: Request<pb::GetCaseRequest>,
    ) -> Result<Response<pb::GetCaseResponse>, Status> {
        let call = self.call(&request, |_| CASE_READERS.to_vec())?;
        let message = request.into_inner();
        let mut errors = ValidationErrors::default();
        limits::check_case_id(&mut errors, &message.case_id);
        errors.into_result().map_err(ApiError::from)?;
        let loaded = store::load_for(call.state, &call.caller, &message.case_id).await?;
        let deadlines = match deadlines::limits_for(call.state, &loaded.state)? {
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
            breached_deadlines: case.breaches_now(call.today(), &deadlines),
        }))
    }

    async fn assign_investigators(
        &self,
        request: Request<pb::AssignInvestigatorsRequest>,
    ) -> CommandAnswer {
        let call = self.command_call(&request, &[Act::AssignInvestigators])?;
        let message = request.into_inner();
        let command =
            requests::assign_investigators(&message, &call.officer).map_err(ApiError::from)?;
        let admitted = fresh_or_answer!(call.load(&message).await?);
        call.decide_and_append(admitted, command.into()).await
    }

    async fn record_home_visit(
        &self,
        request: Request<pb::RecordHomeVisitRequest>,
    ) -> CommandAnswer {
        let call = self.command_call(&request, &[Act::Visit, Act::RelativeVisit])?;
        let message = request.into_inner();
        let command = requests::record_home_visit(&message, &call.officer, call.today())
            .map_err(ApiError::from)?;
        let admitted = fresh_or_answer!(call.load(&message).await?);
        let mut events = admitted
            .case
            .state
            .handle(command.into())
            .map_err(case_error)?;
        // Sealing creates the case's data key: only for a visit the aggregate allowed.
        if !message.findings.is_empty() {
            let sealed = call
                .state
                .log
                .keys
                .seal(
                    &format!("case-{}", message.case_id),
                    message.findings.as_bytes(),
                    message.case_id.as_bytes(),
                )
                .await
                .map_err(ApiError::internal)?;
            for event in &mut events {
                if let CaseEvent::HomeVisitRecorded(visit) = event {
                    visit.sealed_findings = sealed.clone();
                }
            }
        }
        Ok(Response::new(call.append(admitted, events).await?))
    }

    async fn request_verification(
        &self,
        request: Request<pb::RequestVerificationRequest>,
    ) -> CommandAnswer {
        let call = self.command_call(&request, &[Act::RequestVerification])?;
        let message = request.into_inner();
        let command =
            requests::request_verification(&message, &call.officer).map_err(ApiError::from)?;
        let admitted = fresh_or_answer!(call.load(&message).await?);
        call.decide_and_append(admitted, command.into()).await
    }

    async fn record_opinion(&self, request: Request<pb::RecordOpinionRequest>) -> CommandAnswer {
        let call = self.command_call(&request, &[Act::Opinion])?;
        let message = request.into_inner();
        let command = requests::record_opinion(&message, &call.officer, call.today())
            .map_err(ApiError::from)?;
        let admitted = fresh_or_answer!(call.load(&message).await?);
        let policy = store::evaluate(call.state, &admitted.case.state).await?;
        call.decide_and_append(
            admitted,
            crate::case::CaseCommand::RecordOpinion(command, policy),
        )
        .await
    }

    async fn start_publicity(&self, request: Request<pb::StartPublicityRequest>) -> CommandAnswer {
        let call = self.command_call(&request, &[Act::StartPublicity])?;
        let message = request.into_inner();
        let today = call.today();
        let last_day = call
            .policy_today()?
            .procedure
            .publicity_last_day(today)
            .map_err(ApiError::internal)?;
        let command = requests::start_publicity(&message, &call.officer, today, last_day)
            .map_err(ApiError::from)?;
        let admitted = fresh_or_answer!(call.load(&message).await?);
        call.decide_and_append(admitted, command.into()).await
    }

    async fn answer_objection(
        &self,
        request: Request<pb::AnswerObjectionRequest>,
    ) -> CommandAnswer {
        let call = self.command_call(&request, &[Act::AnswerObjection])?;
        let message = request.into_inner();
        let command =
            requests::answer_objection(&message, &call.officer).map_err(ApiError::from)?;
        let admitted = fresh_or_answer!(call.load(&message).await?);
        call.decide_and_append(admitted, command.into()).await
    }

    async fn grant_assist_first(
        &self,
        request: Request<pb::GrantAssistFirstRequest>,
    ) -> CommandAnswer {
        let call = self.command_call(&request, &[Act::AssistFirst])?;
        let message = request.into_inner();
        let cap: Money = call.policy_today()?.temporary.assist_first_cap;
        let command =
            requests::grant_assist_first(&message, &call.officer, cap).map_err(ApiError::from)?;
        let admitted = fresh_or_answer!(call.load(&message).await?);
        call.decide_and_append(admitted, command.into()).await
    }

    async fn decide(&self, request: Request<pb::DecideRequest>) -> CommandAnswer {
        let call = self.command_call(&request, &[Act::Decide])?;
        let message = request.into_inner();
        let today = call.today();
        let procedure = call.policy_today()?.procedure;
        let re_review = ReReviewDue {
            variable_income: procedure
                .next_re_review(today, false)
                .map_err(ApiError::internal)?,
            stable_income: procedure
                .next_re_review(today, true)
                .map_err(ApiError::internal)?,
        };
        let command =
            requests::decide(&message, &call.officer, today, re_review).map_err(ApiError::from)?;
        let admitted = fresh_or_answer!(call.load(&message).await?);
        let policy = store::evaluate(call.state, &admitted.case.state).await?;
        call.decide_and_append(admitted, crate::case::CaseCommand::Decide(command, policy))
            .await
    }

    async fn return_for_material(
        &self,
        request: Request<pb::ReturnForMaterialRequest>,
    ) -> CommandAnswer {
        let call = self.command_call(&request, &[Act::ReturnForMaterial])?;
        let message = request.into_inner();
        let command =
            requests::return_for_material(&message, &call.officer).map_err(ApiError::from)?;
        let admitted = fresh_or_answer!(call.load(&message).await?);
        call.decide_and_append(admitted, command.into()).await
    }

    async fn withdraw(&self, request: Request<pb::WithdrawRequest>) -> CommandAnswer {
        let call = self.command_call(&request, &[Act::Withdraw])?;
        let message = request.into_inner();
        let command = requests::withdraw(&message, &call.officer).map_err(ApiError::from)?;
        let admitted = fresh_or_answer!(call.load(&message).await?);
        call.decide_and_append(admitted, command.into()).await
    }

    async fn extend_deadline(&self, request: Request<pb::ExtendDeadlineRequest>) -> CommandAnswer {
        let call = self.command_call(&request, &[Act::ExtendDeadline])?;
        let message = request.into_inner();
        let command = requests::extend_deadline(&message, &call.officer).map_err(ApiError::from)?;
        let admitted = fresh_or_answer!(call.load(&message).await?);
        call.decide_and_append(admitted, command.into()).await
    }

    async fn list_work_queue(
        &self,
        request: Request<pb::ListWorkQueueRequest>,
    ) -> Result<Response<pb::ListWorkQueueResponse>, Status> {
        let call = self.call(&request, |_| CASE_READERS.to_vec())?;
        let message = request.into_inner();
        let mut errors = ValidationErrors::default();
        let page = limits::page(
            &mut errors,
            message.page.as_ref(),
            deadlines::is_work_queue_key,
        );
        errors.into_result().map_err(ApiError::from)?;
        let scope = call.list_scope(&message.org_unit_code)?;
        let items = deadlines::work_queue(call.state, &scope, &call.caller).await?;
        let (items, page) = limits::paginate(items, &page, deadlines::work_queue_key);
        Ok(Response::new(pb::ListWorkQueueResponse {
            items,
            page: Some(page),
        }))
    }

    async fn notify_refusal(&self, request: Request<pb::NotifyRefusalRequest>) -> CommandAnswer {
        let call = self.command_call(&request, &[Act::NotifyRefusal])?;
        let message = request.into_inner();
        let command = requests::notify_refusal(&message, &call.officer, call.today())
            .map_err(ApiError::from)?;
        let admitted = fresh_or_answer!(call.load(&message).await?);
        call.decide_and_append(admitted, command.into()).await
    }

    async fn list_overdue_cases(
        &self,
        request: Request<pb::ListOverdueCasesRequest>,
    ) -> Result<Response<pb::ListOverdueCasesResponse>, Status> {
        let call = self.call(&request, |_| OVERDUE_READERS.to_vec())?;
        let message = request.into_inner();
        let mut errors = ValidationErrors::default();
        let page = limits::page(
            &mut errors,
            message.page.as_ref(),
            deadlines::is_overdue_key,
        );
        errors.into_result().map_err(ApiError::from)?;
        let scope = call.list_scope(&message.org_unit_code)?;
        let cases = deadlines::record_breaches(call.state, &scope, &call.caller).await?;
        let (cases, page) = limits::paginate(cases, &page, deadlines::overdue_key);
        Ok(Response::new(pb::ListOverdueCasesResponse {
            cases,
            page: Some(page),
        }))
    }

    /// The district's home-visit sample (特困): every case of a workflow with a
    /// `home_visit_sample`, in the scope, at the decision stage, received in the period and
    /// not yet in a sample — those the caller may act on — is the batch; the policy's share
    /// of it (rounded up) is drawn by [`sample::draw`] and the draw appended to each case
    /// (its own command id per case: `<command id>/<case id>`). A retry completes an
    /// interrupted draw from the record already appended, and answers with it.
    async fn draw_home_visit_sample(
        &self,
        request: Request<pb::DrawHomeVisitSampleRequest>,
    ) -> Result<Response<pb::DrawHomeVisitSampleResponse>, Status> {
        let call = self.command_call(&request, &[Act::DrawSample])?;
        let message = request.into_inner();
        limits::draw_home_visit_sample(&message)
            .into_result()
            .map_err(ApiError::from)?;
        // The limits refused missing dates.
        let (Some(from), Some(to)) = (
            sunshine_proto::dates::to_date(message.received_from.as_ref()),
            sunshine_proto::dates::to_date(message.received_to.as_ref()),
        ) else {
            return Err(ApiError::invalid_field("received_from", "a calendar date").into());
        };
        if !call.state.workflows.all().iter().any(|workflow| {
            workflow
                .home_visit_sample()
                .is_some_and(|rule| rule.tier == call.officer.tier())
        }) {
            return Err(ApiError::PermissionDenied(format!(
                "{} is done at the district's tier",
                Act::DrawSample.as_str()
            ))
            .into());
        }
        let scope = call.list_scope(&message.org_unit_code)?;
        let metadata_for = |case_id: &str| EventMetadata {
            actor: call.actor.clone(),
            command_id: Some(format!("{}/{case_id}", message.command_id)),
            traceparent: sunshine_platform::telemetry::current_traceparent(),
            request_digest: Some(request_digest(&message)),
            ..EventMetadata::default()
        };
        // The batch: the cases drawn already by this command, and those awaiting a sample.
        let mut drawn_before: Option<pb::HomeVisitSampleDrawn> = None;
        let mut awaiting = Vec::new();
        for case_id in store::cases_in_scope(call.state, scope.scope_prefix()).await? {
            let loaded = match store::load(call.state, &case_id).await {
                Ok(loaded) => loaded,
                Err(ApiError::NotFound { .. }) => continue,
                Err(error) => return Err(error.into()),
            };
            let case = &loaded.state;
            if !scope.covers(&case.hukou_org_unit) || !store::caller_sees(&call.caller, case) {
                continue;
            }
            if let Some(membership) = &case.home_visit_sample {
                if membership.sample_id == message.command_id && drawn_before.is_none() {
                    // Only the same caller's same request is its retry.
                    if store::previous_outcome(call.state, &case_id, &metadata_for(&case_id))
                        .await?
                        .is_none()
                    {
                        return Err(ApiError::invalid_field(
                            "command_id",
                            "already used by another draw",
                        )
                        .into());
                    }
                    drawn_before = Some(membership.record.clone());
                }
                continue;
            }
            let received = case.district_received_on();
            if case.workflow.home_visit_sample().is_some()
                && case.current_stage() == Some(crate::workflow::StageKind::Decision)
                && received.is_some_and(|day| from <= day && day <= to)
                && case.authorize(&call.officer, Act::DrawSample).is_ok()
            {
                awaiting.push(loaded);
            }
        }
        let record = match drawn_before {
            Some(record) => record,
            None => {
                if awaiting.is_empty() {
                    return Err(ApiError::FailedPrecondition(
                        "no case received in the period awaits the district's home-visit sample"
                            .into(),
                    )
                    .into());
                }
                if awaiting.len() > limits::MAX_SAMPLE_CASES {
                    return Err(ApiError::FailedPrecondition(format!(
                        "{} cases in the period: at most {} in one draw; draw over a shorter period",
                        awaiting.len(),
                        limits::MAX_SAMPLE_CASES
                    ))
                    .into());
                }
                let today = call.today();
                let rules = call
                    .policy_today()?
                    .procedure
                    .for_program(ProgramCode::Tekun);
                let share = rules.district_home_visit_share_basis_points.unwrap_or(0);
                let ids: Vec<String> = awaiting
                    .iter()
                    .map(|loaded| loaded.state.case_id.clone())
                    .collect();
                let size = rules.home_visit_sample_size(ids.len()).unwrap_or(0);
                let drawn = sample::draw(&ids, size);
                pb::HomeVisitSampleDrawn {
                    case_id: String::new(),
                    sample_id: message.command_id.clone(),
                    org_unit_code: scope.as_str().to_owned(),
                    received_from: Some(crate::case::proto_date(from)),
                    received_to: Some(crate::case::proto_date(to)),
                    received_case_ids: drawn.received,
                    seed_sha256: drawn.seed_hex,
                    share_basis_points: share,
                    sample_size: u32::try_from(size).unwrap_or(u32::MAX),
                    sampled_case_ids: drawn.sampled,
                    drawn_by: Some(call.officer.to_proto()),
                    drawn_on: Some(crate::case::proto_date(today)),
                    algorithm: sample::ALGORITHM.to_owned(),
                }
            }
        };
        // Record it on every case of the batch not yet holding it.
        for case_id in &record.received_case_ids {
            let loaded = store::load(call.state, case_id).await?;
            let events = loaded
                .state
                .handle(
                    JoinHomeVisitSample {
                        by: call.officer.clone(),
                        record: record.clone(),
                    }
                    .into(),
                )
                .map_err(case_error)?;
            if events.is_empty() {
                continue;
            }
            store::append(
                call.state,
                case_id,
                loaded.version,
                &metadata_for(case_id),
                &events,
            )
            .await?;
        }
        Ok(Response::new(pb::DrawHomeVisitSampleResponse {
            sample: Some(pb::HomeVisitSampleDrawn {
                case_id: String::new(),
                ..record
            }),
        }))
    }
}
