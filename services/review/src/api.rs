//! `sunshine.v1.ReviewService`: each command loads the case from its stream, asks the case
//! aggregate to decide, attaches the policy engine's result where a judgement is made, and
//! appends with the version the officer saw (another officer first → `ABORTED`).

use std::sync::{Arc, OnceLock};

use sunshine_domain::{OrgUnitCode, WorkingDayCalendar};
use sunshine_eventlog::runtime::LogRuntime;
use sunshine_eventlog::{Actor, EventMetadata, ExpectedVersion, NewEvent, StreamId};
use sunshine_platform::auth::identity;
use sunshine_platform::{ApiError, Identity, Role};
use sunshine_policy::{Policy, ProgramCode};
use sunshine_proto::v1 as pb;
use sunshine_proto::v1::review_service_server::ReviewService;
use time::Date;
use tonic::{Request, Response, Status};

use crate::case::{
    CaseError, CaseEvent, CaseState, CaseStatus, DeadlineLimits, Officer, codec, proto_date,
};
use crate::workflow::Workflows;

pub use sunshine_platform::clock::{Clock, ManualClock, SystemClock};

/// What the handlers share once connected.
#[derive(Debug, Clone)]
pub struct ReviewState {
    pub log: LogRuntime,
    pub policy: Arc<Policy>,
    pub workflows: Arc<Workflows>,
    pub calendar: Arc<WorkingDayCalendar>,
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

pub async fn load_case(state: &ReviewState, case_id: &str) -> Result<LoadedCase, ApiError> {
    let stream = case_stream(case_id)?;
    let recorded = state
        .log
        .store
        .read_stream(&stream, 1)
        .await
        .map_err(ApiError::from)?;
    let mut case: Option<CaseState> = None;
    let mut accepted_on = None;
    let mut household_id = String::new();
    let mut version = 0;
    for stored in &recorded {
        version = stored.stream_version;
        let Some(event) =
            codec::decode(&stored.event_type, &stored.payload).map_err(ApiError::internal)?
        else {
            continue;
        };
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
    let state = case.ok_or_else(|| ApiError::NotFound {
        what: format!("case {case_id}"),
    })?;
    Ok(LoadedCase {
        state,
        version,
        accepted_on,
        household_id,
    })
}

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
    let new_events = events
        .iter()
        .map(|event| NewEvent::new(case_id, codec::event_type(event), 1, codec::encode(event)))
        .collect();
    let outcome = state
        .log
        .store
        .append(
            &case_stream(case_id)?,
            ExpectedVersion::Exact(version),
            &metadata,
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

fn check_command(command_id: &str, case_id: &str) -> Result<(), ApiError> {
    let mut errors = sunshine_domain::ValidationErrors::default();
    if command_id.is_empty()
        || command_id.len() > 100
        || !command_id.bytes().all(|byte| byte.is_ascii_graphic())
    {
        errors.push(
            "command_id",
            "1 to 100 printable ASCII characters, reused on retries",
        );
    }
    if uuid::Uuid::parse_str(case_id).is_err() {
        errors.push("case_id", "a case id (UUID)");
    }
    errors.into_result().map_err(ApiError::from)
}

impl ReviewApi {
    fn state(&self) -> Result<&ReviewState, ApiError> {
        self.state
            .get()
            .ok_or_else(|| ApiError::Unavailable("review is still starting".into()))
    }

    /// A command whose decision attaches no policy result: load, decide, append, answer.
    async fn decide_plainly(
        &self,
        caller: &Identity,
        command_id: &str,
        case_id: &str,
        expected_version: u64,
        decide: impl FnOnce(&ReviewState, &CaseState, &Officer) -> Result<Vec<CaseEvent>, CaseError>,
    ) -> Result<Response<pb::CaseCommandResponse>, Status> {
        let response = self
            .command(
                caller,
                command_id,
                case_id,
                expected_version,
                |state, loaded, acting| {
                    Ok((
                        decide(state, &loaded.state, acting).map_err(case_error)?,
                        None,
                    ))
                },
            )
            .await?;
        Ok(Response::new(response))
    }

    /// Loads, checks the version the officer saw, decides, appends.
    async fn command(
        &self,
        caller: &Identity,
        command_id: &str,
        case_id: &str,
        expected_version: u64,
        decide: impl FnOnce(
            &ReviewState,
            &LoadedCase,
            &Officer,
        ) -> Result<(Vec<CaseEvent>, Option<pb::PolicyResult>), ApiError>,
    ) -> Result<pb::CaseCommandResponse, ApiError> {
        check_command(command_id, case_id)?;
        let state = self.state()?;
        let loaded = load_case(state, case_id).await?;
        if loaded.version != expected_version {
            return Err(ApiError::Conflict(format!(
                "case {case_id} is at version {}, not {expected_version}: another officer acted first",
                loaded.version
            )));
        }
        let acting = officer(caller);
        let (events, policy) = decide(state, &loaded, &acting)?;
        let version = append_case_events(
            state,
            case_id,
            loaded.version,
            actor(caller),
            command_id,
            &events,
        )
        .await?;
        let mut after = loaded.state.clone();
        for event in &events {
            after.apply(event);
        }
        Ok(pb::CaseCommandResponse {
            version,
            stage: after
                .current_stage()
                .map(|stage| stage.as_str().to_owned())
                .unwrap_or_default(),
            status: status_name(after.status).into(),
            policy,
        })
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
    let program_name = &state.policy.catalogue().program(program).name_zh;
    Ok(crate::facts::policy_result(&decision, program_name))
}

#[tonic::async_trait]
impl ReviewService for ReviewApi {
    async fn get_case(
        &self,
        request: Request<pb::GetCaseRequest>,
    ) -> Result<Response<pb::GetCaseResponse>, Status> {
        let caller = identity(&request)?.clone();
        let message = request.into_inner();
        check_command("read", &message.case_id)?;
        let state = self.state()?;
        let loaded = load_case(state, &message.case_id).await?;
        if caller.role != Role::Auditor {
            caller.require_org_scope(&loaded.state.hukou_org_unit)?;
        }
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
            breached_deadlines: case.breached.iter().cloned().collect(),
        }))
    }

    async fn assign_investigators(
        &self,
        request: Request<pb::AssignInvestigatorsRequest>,
    ) -> Result<Response<pb::CaseCommandResponse>, Status> {
        let caller = identity(&request)?.clone();
        let message = request.into_inner();
        let mut investigators = Vec::new();
        for (index, investigator) in message.investigators.iter().enumerate() {
            let org_unit = OrgUnitCode::parse(&investigator.org_unit_code).map_err(|error| {
                ApiError::invalid_field(
                    format!("investigators[{index}].org_unit_code"),
                    error.to_string(),
                )
            })?;
            if investigator.subject.trim().is_empty() || Role::parse(&investigator.role).is_none() {
                return Err(ApiError::invalid_field(
                    format!("investigators[{index}]"),
                    "a subject and a role",
                )
                .into());
            }
            investigators.push(Officer {
                subject: investigator.subject.clone(),
                role: investigator.role.clone(),
                org_unit,
            });
        }
        self.decide_plainly(
            &caller,
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
        let visited_on = sunshine_proto::dates::to_date(message.visited_on.as_ref())
            .ok_or_else(|| ApiError::invalid_field("visited_on", "a calendar date"))?;
        let state = self.state()?;
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
        let response = self
            .command(
                &caller,
                &message.command_id,
                &message.case_id,
                message.expected_version,
                |state, loaded, acting| {
                    if visited_on > state.clock.today() {
                        return Err(ApiError::invalid_field(
                            "visited_on",
                            "must not be in the future",
                        ));
                    }
                    Ok((
                        loaded
                            .state
                            .record_visit(acting, visited_on, sealed)
                            .map_err(case_error)?,
                        None,
                    ))
                },
            )
            .await?;
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
        check_command(&message.command_id, &message.case_id)?;
        let state = self.state()?;
        let loaded = load_case(state, &message.case_id).await?;
        let policy = evaluate_case(state, &loaded).await?;
        // No proposed amount means "as the engine found".
        let engine_amount = policy.amount.as_ref().map_or(0, |money| money.fen);
        let proposed = message
            .proposed_amount
            .map_or(engine_amount, |money| money.fen);
        let response = self
            .command(
                &caller,
                &message.command_id,
                &message.case_id,
                message.expected_version,
                |state, loaded, acting| {
                    let events = loaded
                        .state
                        .record_opinion(
                            acting,
                            state.clock.today(),
                            message.recommend_approval,
                            proposed,
                            &message.opinion,
                            policy.clone(),
                            &message.departure_justification,
                        )
                        .map_err(case_error)?;
                    Ok((events, Some(policy.clone())))
                },
            )
            .await?;
        Ok(Response::new(response))
    }

    async fn start_publicity(
        &self,
        request: Request<pb::StartPublicityRequest>,
    ) -> Result<Response<pb::CaseCommandResponse>, Status> {
        let caller = identity(&request)?.clone();
        let message = request.into_inner();
        let response = self
            .command(
                &caller,
                &message.command_id,
                &message.case_id,
                message.expected_version,
                |state, loaded, acting| {
                    let today = state.clock.today();
                    let procedure = state
                        .policy
                        .resolve(today)
                        .map_err(ApiError::internal)?
                        .procedure;
                    let last_day = procedure
                        .publicity_last_day(today)
                        .map_err(ApiError::internal)?;
                    Ok((
                        loaded
                            .state
                            .start_publicity(acting, today, last_day)
                            .map_err(case_error)?,
                        None,
                    ))
                },
            )
            .await?;
        Ok(Response::new(response))
    }

    async fn answer_objection(
        &self,
        request: Request<pb::AnswerObjectionRequest>,
    ) -> Result<Response<pb::CaseCommandResponse>, Status> {
        let caller = identity(&request)?.clone();
        caller.require_role(&[Role::StreetReviewer, Role::CenterReviewer])?;
        let message = request.into_inner();
        let response = self
            .command(
                &caller,
                &message.command_id,
                &message.case_id,
                message.expected_version,
                |_, loaded, acting| {
                    let events = loaded
                        .state
                        .answer_objection(
                            acting,
                            &message.objection_id,
                            message.upheld,
                            &message.answer,
                        )
                        .map_err(case_error)?;
                    Ok((events, None))
                },
            )
            .await?;
        Ok(Response::new(response))
    }

    async fn grant_assist_first(
        &self,
        request: Request<pb::GrantAssistFirstRequest>,
    ) -> Result<Response<pb::CaseCommandResponse>, Status> {
        let caller = identity(&request)?.clone();
        let message = request.into_inner();
        let response = self
            .command(
                &caller,
                &message.command_id,
                &message.case_id,
                message.expected_version,
                |state, loaded, acting| {
                    let cap = state
                        .policy
                        .resolve(state.clock.today())
                        .map_err(ApiError::internal)?
                        .temporary
                        .assist_first_cap
                        .fen();
                    let amount = message.amount.map_or(0, |money| money.fen);
                    Ok((
                        loaded
                            .state
                            .grant_assist_first(acting, amount, cap, &message.reason)
                            .map_err(case_error)?,
                        None,
                    ))
                },
            )
            .await?;
        Ok(Response::new(response))
    }

    async fn decide(
        &self,
        request: Request<pb::DecideRequest>,
    ) -> Result<Response<pb::CaseCommandResponse>, Status> {
        let caller = identity(&request)?.clone();
        let message = request.into_inner();
        check_command(&message.command_id, &message.case_id)?;
        let state = self.state()?;
        let loaded = load_case(state, &message.case_id).await?;
        let policy = evaluate_case(state, &loaded).await?;
        let amount = message.monthly_amount.map_or(0, |money| money.fen);
        // Re-review half-yearly, or yearly where income is stable (extreme-poverty support).
        let income_is_stable = loaded.state.program_code == "tekun";
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
        let response = self
            .command(
                &caller,
                &message.command_id,
                &message.case_id,
                message.expected_version,
                |state, loaded, acting| {
                    let events = loaded
                        .state
                        .decide(
                            acting,
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
                    Ok((events, Some(policy.clone())))
                },
            )
            .await?;
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
        caller.require_role(&[
            Role::VillageClerk,
            Role::StreetReviewer,
            Role::CenterReviewer,
            Role::CenterApprover,
            Role::Auditor,
        ])?;
        let message = request.into_inner();
        let scope = if message.org_unit_code.is_empty() {
            caller.org_unit.clone()
        } else {
            OrgUnitCode::parse(&message.org_unit_code)
                .map_err(|error| ApiError::invalid_field("org_unit_code", error.to_string()))?
        };
        caller.require_org_scope(&scope)?;
        let state = self.state()?;
        let items =
            crate::deadlines::work_queue(state, scope.scope_prefix(), &caller.subject).await?;
        Ok(Response::new(pb::ListWorkQueueResponse { items }))
    }

    async fn notify_refusal(
        &self,
        request: Request<pb::NotifyRefusalRequest>,
    ) -> Result<Response<pb::CaseCommandResponse>, Status> {
        let caller = identity(&request)?.clone();
        let message = request.into_inner();
        self.decide_plainly(
            &caller,
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
        caller.require_role(&[
            Role::StreetReviewer,
            Role::CenterReviewer,
            Role::CenterApprover,
            Role::Auditor,
            Role::Admin,
        ])?;
        let message = request.into_inner();
        let scope = if message.org_unit_code.is_empty() {
            caller.org_unit.clone()
        } else {
            OrgUnitCode::parse(&message.org_unit_code)
                .map_err(|error| ApiError::invalid_field("org_unit_code", error.to_string()))?
        };
        caller.require_org_scope(&scope)?;
        let state = self.state()?;
        let cases = crate::deadlines::record_breaches(state, scope.scope_prefix()).await?;
        Ok(Response::new(pb::ListOverdueCasesResponse { cases }))
    }
}

/// The working-day limits of a case, from the policy and the holiday calendar.
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

pub fn overdue_entry(case: &CaseState, deadline: &str, due_on: Date) -> pb::OverdueCase {
    pb::OverdueCase {
        case_id: case.case_id.clone(),
        deadline: deadline.to_owned(),
        due_on: Some(proto_date(due_on)),
        stage: case
            .current_stage()
            .map(|stage| stage.as_str().to_owned())
            .unwrap_or_default(),
    }
}
