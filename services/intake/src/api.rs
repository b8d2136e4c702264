//! `sunshine.v1.IntakeService`. Every command takes the same steps, in this order:
//!
//! 1. the caller's role;
//! 2. every field of the request at once (nothing is read or written before);
//! 3. a retry — the same command id and the same request digest — is answered from its first
//!    append ([`EventStore::previous_outcome`]); the same id with other content is refused;
//! 4. the household, **in the caller's scope**: outside it, it reads exactly like a household
//!    that does not exist (the same `NOT_FOUND`), and the attempt is recorded on the household's
//!    access stream ([`IntakeApi::household_in_scope`]);
//! 5. the decision on the folded household, then sealing (the first write, a data key at most);
//! 6. the append, with the expected version; rows a guard table must hold (the person index,
//!    the relatives registry) are written in the append's own transaction.
//!
//! Reads of personal data count against the officer's hourly quota and are access events.
//! Errors become statuses through `ApiError` only.
//!
//! [`EventStore::previous_outcome`]: sunshine_eventlog::EventStore::previous_outcome

use std::sync::{Arc, OnceLock};

use prost::Message as _;
use sunshine_domain::{OrgTree, OrgUnitCode, ValidationErrors};
use sunshine_eventlog::runtime::LogRuntime;
use sunshine_eventlog::{
    AppendOutcome, ExpectedVersion, GuardedAppend, NewEvent, StreamId, request_digest,
};
use sunshine_evidence::record::{Actor, EventMetadata};
use sunshine_platform::auth::identity;
use sunshine_platform::{ApiError, Identity, Role};
use sunshine_policy::{Channel, Policy, ProgramCode, ReviewWorkflow};
use sunshine_proto::v1 as pb;
use sunshine_proto::v1::intake_service_server::IntakeService;
use tonic::{Request, Response, Status};

use crate::access::{self, Reveal};
use crate::household::{HouseholdError, HouseholdEvent, HouseholdState, SCHEMA_VERSION};
use crate::masking;
use crate::read_model::{self, ApplicationQuery, ClaimRefusal, PersonClaim, PersonClaims};
use crate::validation::{self, check_command_id, check_text, check_uuid};

/// Blind-index domain of resident id numbers.
pub const NATIONAL_ID_DOMAIN: &str = "resident-id";

/// Who may act at a service point.
const CASEWORKERS: &[Role] = &[
    Role::VillageClerk,
    Role::StreetReviewer,
    Role::CenterReviewer,
];
/// Who may read households at all (masked unless revealed; see [`access::purposes_for`]).
const READERS: &[Role] = &[
    Role::VillageClerk,
    Role::StreetReviewer,
    Role::CenterReviewer,
    Role::CenterApprover,
    Role::FinanceOfficer,
    Role::FinanceApprover,
    Role::Auditor,
];
/// Who may undo a death recorded in error: the district center.
const DEATH_CORRECTORS: &[Role] = &[Role::CenterReviewer, Role::CenterApprover];
/// Who keeps the registry of officials' relatives: the district center.
const REGISTRY_KEEPERS: &[Role] = &[Role::CenterReviewer, Role::CenterApprover, Role::Admin];

/// RPC names, as access events record them.
mod rpc {
    pub const REGISTER_HOUSEHOLD: &str = "RegisterHousehold";
    pub const RECORD_CIRCUMSTANCE_CHANGE: &str = "RecordCircumstanceChange";
    pub const RECORD_DEATH: &str = "RecordDeath";
    pub const CORRECT_DEATH_RECORD: &str = "CorrectDeathRecord";
    pub const RECORD_MOVE: &str = "RecordMove";
    pub const SUBMIT_APPLICATION: &str = "SubmitApplication";
    pub const GET_HOUSEHOLD: &str = "GetHousehold";
    pub const FIND_HOUSEHOLD: &str = "FindHousehold";
}

/// The window of the per-officer quota of reads of personal data.
const QUOTA_WINDOW_US: i64 = 3_600 * 1_000_000;

/// What the handlers share once the service is connected.
#[derive(Debug, Clone)]
pub struct IntakeState {
    pub log: LogRuntime,
    pub policy: Arc<Policy>,
    /// Relations of officials' relatives that must be registered (configurable per province).
    pub official_relations: Arc<Vec<String>>,
    pub clock: Arc<dyn sunshine_platform::clock::Clock>,
    /// The district's org tree: every org-unit input must be one of its units.
    pub org_tree: Arc<OrgTree>,
    /// `privacy.personal_data_reads_per_officer_per_hour`.
    pub personal_data_reads_per_hour: u32,
}

/// The gRPC service; answers `UNAVAILABLE` until the log is ready.
#[derive(Debug, Clone)]
pub struct IntakeApi {
    pub state: Arc<OnceLock<IntakeState>>,
}

fn household_error(error: HouseholdError) -> ApiError {
    let description = error.to_string();
    match error {
        HouseholdError::UnknownMember { field, .. } | HouseholdError::MemberDead { field, .. } => {
            ApiError::invalid_field(field, description)
        }
        HouseholdError::MemberAlive { .. } => ApiError::FailedPrecondition(description),
        HouseholdError::ApplicationOpen {
            case_id,
            program_code,
        } => ApiError::AlreadyExists {
            what: format!("an open {program_code} application of this household"),
            existing_id: Some(case_id),
        },
        HouseholdError::AlreadyReceiving {
            case_id,
            program_code,
        } => ApiError::AlreadyExists {
            what: format!("{program_code} for this household (already received)"),
            existing_id: Some(case_id),
        },
    }
}

fn household_stream(household_id: &str) -> Result<StreamId, ApiError> {
    StreamId::new("intake", "household", household_id)
        .map_err(|_| ApiError::invalid_field("household_id", "not a household id"))
}

/// The one answer for a household the caller may not know exists, and for one that does not.
fn household_not_found(household_id: &str) -> ApiError {
    ApiError::NotFound {
        what: format!("household {household_id}"),
    }
}

/// The one answer of `FindHousehold` for nobody, and for somebody out of the caller's scope.
fn person_not_found() -> ApiError {
    ApiError::NotFound {
        what: "a household with this national id".into(),
    }
}

/// Household ids come from the command id, so a retried registration lands on the same stream.
fn household_id_for(command_id: &str) -> String {
    uuid::Uuid::new_v5(
        &uuid::Uuid::NAMESPACE_OID,
        format!("sunshine/intake/household/{command_id}").as_bytes(),
    )
    .to_string()
}

fn member_id_for(household_id: &str, position: usize) -> String {
    uuid::Uuid::new_v5(
        &uuid::Uuid::NAMESPACE_OID,
        format!("{household_id}/{position}").as_bytes(),
    )
    .to_string()
}

fn actor(caller: &Identity) -> Actor {
    Actor {
        subject: caller.subject.clone(),
        role: caller.role.as_str().to_owned(),
        org_unit: caller.org_unit.as_str().to_owned(),
        department_code: caller.department_code.clone(),
    }
}

/// Metadata of a command: its id and the digest of the whole request, so that only a faithful
/// retry is answered as one.
fn command_metadata(caller: &Identity, command_id: &str, digest: String) -> EventMetadata {
    EventMetadata {
        actor: actor(caller),
        command_id: Some(command_id.to_owned()),
        request_digest: Some(digest),
        traceparent: sunshine_platform::telemetry::current_traceparent(),
        ..EventMetadata::default()
    }
}

/// Metadata of a record the service makes of a call (access events, refusals).
fn record_metadata(caller: &Identity) -> EventMetadata {
    EventMetadata {
        actor: actor(caller),
        traceparent: sunshine_platform::telemetry::current_traceparent(),
        ..EventMetadata::default()
    }
}

fn event(case_id: &str, household_event: &HouseholdEvent) -> NewEvent {
    NewEvent::new(
        case_id,
        household_event.event_type(),
        SCHEMA_VERSION,
        household_event.encode(),
    )
}

/// The pseudo-case of a household's registry events (not an application's case).
fn household_case(household_id: &str) -> String {
    format!("household-{household_id}")
}

fn workflow_name(workflow: ReviewWorkflow) -> &'static str {
    match workflow {
        ReviewWorkflow::MeansTestedReview => "means_tested_review",
        ReviewWorkflow::CenterReview => "center_review",
        ReviewWorkflow::EmergencyEvaluation => "emergency_evaluation",
        ReviewWorkflow::DepartmentRoutine => "department_routine",
    }
}

/// A command on an existing household, after steps 1–4.
enum Prepared {
    /// A faithful retry: the first append's outcome.
    Retried(AppendOutcome),
    /// The household in the caller's scope, at the version the caller expected.
    Current(HouseholdState),
}

impl IntakeApi {
    /// The district's date today (the configured clock; the system's until connected).
    fn today(&self) -> time::Date {
        use sunshine_platform::clock::Clock as _;
        match self.state.get() {
            Some(state) => state.clock.today(),
            None => sunshine_platform::clock::SystemClock.today(),
        }
    }

    fn state(&self) -> Result<&IntakeState, ApiError> {
        self.state
            .get()
            .ok_or_else(|| ApiError::Unavailable("intake is still starting".into()))
    }

    /// The household folded from its stream; `None` if there is none.
    async fn load(
        &self,
        state: &IntakeState,
        household_id: &str,
    ) -> Result<Option<HouseholdState>, ApiError> {
        let stream = household_stream(household_id)?;
        let recorded = state.log.store.read_stream(&stream, 1).await?;
        let mut events = Vec::with_capacity(recorded.len());
        for stored in &recorded {
            let decoded = HouseholdEvent::decode(&stored.event_type, &stored.payload)
                .map_err(ApiError::internal)?;
            if let Some(household_event) = decoded {
                events.push((
                    household_event,
                    stored.stream_version,
                    stored.recorded_at_us,
                ));
            }
        }
        Ok(HouseholdState::fold(events))
    }

    /// The household, if it exists and the caller's org unit covers it. Outside the caller's
    /// scope it reads exactly like a household that does not exist — the same code, message
    /// and details — and the attempt is recorded as `OutOfScopeAccessAttempted`.
    async fn household_in_scope(
        &self,
        state: &IntakeState,
        caller: &Identity,
        household_id: &str,
        rpc: &'static str,
    ) -> Result<HouseholdState, ApiError> {
        let Some(household) = self.load(state, household_id).await? else {
            return Err(household_not_found(household_id));
        };
        if !covers(caller, &household)? {
            self.record_out_of_scope(state, caller, household_id, rpc)
                .await?;
            return Err(household_not_found(household_id));
        }
        Ok(household)
    }

    async fn record_out_of_scope(
        &self,
        state: &IntakeState,
        caller: &Identity,
        household_id: &str,
        rpc: &'static str,
    ) -> Result<(), ApiError> {
        let attempted = pb::OutOfScopeAccessAttempted {
            household_id: household_id.to_owned(),
            rpc: rpc.to_owned(),
            caller_org_unit_code: caller.org_unit.as_str().to_owned(),
        };
        let stream = StreamId::new("intake", "access", household_id).map_err(ApiError::internal)?;
        append_record(
            state,
            &stream,
            caller,
            NewEvent::new(
                household_case(household_id),
                "sunshine.v1.OutOfScopeAccessAttempted",
                1,
                attempted.encode_to_vec(),
            ),
        )
        .await
    }

    /// Counts a read of personal data against the caller's hourly quota (in the database, so
    /// every replica counts together); beyond it the read is refused and the refusal recorded.
    async fn count_personal_data_read(
        &self,
        state: &IntakeState,
        caller: &Identity,
        rpc: &'static str,
    ) -> Result<(), ApiError> {
        let now_us = sunshine_eventlog::event::now_micros();
        let window_start_us = now_us - now_us.rem_euclid(QUOTA_WINDOW_US);
        let reads = read_model::count_personal_data_read(
            state.log.store.pool(),
            &caller.subject,
            window_start_us,
        )
        .await
        .map_err(ApiError::internal)?;
        let limit = state.personal_data_reads_per_hour;
        if reads <= u64::from(limit) {
            return Ok(());
        }
        let refused = pb::PersonalDataReadRefused {
            rpc: rpc.to_owned(),
            limit,
            window_start_unix_seconds: window_start_us / 1_000_000,
            reads_in_window: reads,
        };
        let officer = uuid::Uuid::new_v5(
            &uuid::Uuid::NAMESPACE_OID,
            format!("sunshine/intake/officer/{}", caller.subject).as_bytes(),
        );
        let stream =
            StreamId::new("intake", "quota", &officer.to_string()).map_err(ApiError::internal)?;
        append_record(
            state,
            &stream,
            caller,
            NewEvent::new(
                format!("officer-{officer}"),
                "sunshine.v1.PersonalDataReadRefused",
                1,
                refused.encode_to_vec(),
            ),
        )
        .await?;
        Err(ApiError::ResourceExhausted(format!(
            "at most {limit} reads of personal data per officer per hour; this hour's are used up"
        )))
    }

    async fn seal(
        &self,
        state: &IntakeState,
        household_id: &str,
        field: &str,
        value: &[u8],
    ) -> Result<Vec<u8>, ApiError> {
        if value.is_empty() {
            return Ok(Vec::new());
        }
        let associated = format!("{household_id}/{field}");
        state
            .log
            .keys
            .seal(household_id, value, associated.as_bytes())
            .await
            .map_err(ApiError::internal)
    }

    async fn open(
        &self,
        state: &IntakeState,
        household_id: &str,
        field: &str,
        sealed: &[u8],
    ) -> Result<String, ApiError> {
        match self.open_bytes(state, household_id, field, sealed).await? {
            Some(bytes) => String::from_utf8(bytes).map_err(ApiError::internal),
            // Crypto-shredded: the value is gone for good.
            None => Ok("[destroyed]".into()),
        }
    }

    /// The plaintext of a sealed field; `None` once its key was destroyed.
    async fn open_bytes(
        &self,
        state: &IntakeState,
        household_id: &str,
        field: &str,
        sealed: &[u8],
    ) -> Result<Option<Vec<u8>>, ApiError> {
        if sealed.is_empty() {
            return Ok(Some(Vec::new()));
        }
        let associated = format!("{household_id}/{field}");
        match state.log.keys.open(sealed, associated.as_bytes()).await {
            Ok(bytes) => Ok(Some(bytes)),
            Err(sunshine_eventlog::keys::KeyError::Destroyed { .. }) => Ok(None),
            Err(error) => Err(ApiError::internal(error)),
        }
    }

    /// Steps 3 and 4 of a command on an existing household.
    async fn prepare_change(
        &self,
        state: &IntakeState,
        caller: &Identity,
        metadata: &EventMetadata,
        household_id: &str,
        expected_version: u64,
        rpc: &'static str,
    ) -> Result<Prepared, ApiError> {
        let stream = household_stream(household_id)?;
        if let Some(previous) = state.log.store.previous_outcome(&stream, metadata).await? {
            return Ok(Prepared::Retried(previous));
        }
        let household = self
            .household_in_scope(state, caller, household_id, rpc)
            .await?;
        if household.version != expected_version {
            return Err(ApiError::Conflict(format!(
                "household {household_id} is at version {}, not {expected_version}: someone changed it first; reload and retry",
                household.version
            )));
        }
        Ok(Prepared::Current(household))
    }

    /// Step 6 for a registry change of `household`; answers the new version.
    async fn append_change(
        &self,
        state: &IntakeState,
        metadata: &EventMetadata,
        household: &HouseholdState,
        change: &HouseholdEvent,
    ) -> Result<u64, ApiError> {
        let stream = household_stream(&household.household_id)?;
        let outcome = state
            .log
            .store
            .append(
                &stream,
                ExpectedVersion::Exact(household.version),
                metadata,
                vec![event(&household_case(&household.household_id), change)],
            )
            .await?;
        Ok(outcome.last_version)
    }

    /// Seals a change's reason, bound to the version its event will have.
    async fn seal_reason(
        &self,
        state: &IntakeState,
        household: &HouseholdState,
        reason: &str,
    ) -> Result<Vec<u8>, ApiError> {
        let field = format!("v{}/reason", household.version + 1);
        self.seal(state, &household.household_id, &field, reason.as_bytes())
            .await
    }

    async fn register_household(
        &self,
        caller: &Identity,
        request: pb::RegisterHouseholdRequest,
    ) -> Result<pb::RegisterHouseholdResponse, ApiError> {
        caller.require_role(CASEWORKERS)?;
        let state = self.state()?;
        let mut errors = ValidationErrors::default();
        check_command_id(&mut errors, &request.command_id);
        let village = validation::check_village(
            &mut errors,
            &state.org_tree,
            "hukou_org_unit_code",
            &request.hukou_org_unit_code,
        );
        check_text(
            &mut errors,
            "address",
            &request.address,
            true,
            validation::MAX_TEXT_CHARS,
        );
        let members = validation::check_members(&mut errors, &request.members, self.today());
        validation::check_assets(&mut errors, "assets", request.assets.as_ref());
        validation::check_payment_account(&mut errors, request.payment_account.as_ref());
        errors.into_result()?;
        let Some(village) = village else {
            return Err(ApiError::invalid_field("hukou_org_unit_code", "required"));
        };
        caller.require_org_scope(&village)?;

        let household_id = household_id_for(&request.command_id);
        let stream = household_stream(&household_id)?;
        let metadata = command_metadata(caller, &request.command_id, request_digest(&request));
        if let Some(previous) = state.log.store.previous_outcome(&stream, &metadata).await? {
            return registration_answer(&previous);
        }

        // A person belongs to one household: every claim is checked before anything is
        // written, and made by the append's guard in the append's own transaction.
        let mut claims = Vec::with_capacity(members.len());
        for (position, member) in members.iter().enumerate() {
            claims.push(PersonClaim {
                position,
                index_hex: hex::encode(
                    state
                        .log
                        .blind_index(NATIONAL_ID_DOMAIN, member.national_id.as_str()),
                ),
                member_id: member_id_for(&household_id, position),
            });
        }
        for claim in &claims {
            let holder = read_model::find_person(state.log.store.pool(), &claim.index_hex)
                .await
                .map_err(ApiError::internal)?;
            if let Some((holder_household, holder_member)) = holder
                && holder_household != household_id
            {
                let refusal = ClaimRefusal {
                    position: claim.position,
                    household_id: holder_household,
                    member_id: holder_member,
                };
                return Err(self.claim_refused(state, caller, refusal).await);
            }
        }

        let mut sealed_members = Vec::with_capacity(members.len());
        for (member, claim) in members.iter().zip(&claims) {
            let member_id = &claim.member_id;
            let input = &member.input;
            sealed_members.push(pb::SealedMember {
                sealed_name: self
                    .seal(
                        state,
                        &household_id,
                        &format!("{member_id}/name"),
                        input.name.as_bytes(),
                    )
                    .await?,
                sealed_national_id: self
                    .seal(
                        state,
                        &household_id,
                        &format!("{member_id}/national_id"),
                        member.national_id.as_str().as_bytes(),
                    )
                    .await?,
                sealed_phone: self
                    .seal(
                        state,
                        &household_id,
                        &format!("{member_id}/phone"),
                        input.phone.as_bytes(),
                    )
                    .await?,
                national_id_index: hex::decode(&claim.index_hex).map_err(ApiError::internal)?,
                member_id: member_id.clone(),
                relation: input.relation,
                sex: input.sex,
                birth_date: input.birth_date,
                hukou_type: input.hukou_type,
                resident_since: input.resident_since,
                disability_category: input.disability_category.clone(),
                disability_grade: input.disability_grade,
                labour_capacity: input.labour_capacity,
                has_pension: input.has_pension,
                entitled_group_category: input.entitled_group_category.clone(),
                entitled_group_grade: input.entitled_group_grade,
                party_member_since: input.party_member_since,
                reservoir_migrant: input.reservoir_migrant,
                only_child_certificate: input.only_child_certificate,
                school_stage: input.school_stage.clone(),
                boarding: input.boarding,
                monthly_income: input.monthly_income.clone(),
            });
        }
        let account_bytes = request
            .payment_account
            .as_ref()
            .map(|account| account.encode_to_vec())
            .unwrap_or_default();
        let registered = HouseholdEvent::Registered(pb::HouseholdRegistered {
            household_id: household_id.clone(),
            hukou_org_unit_code: village.as_str().to_owned(),
            sealed_address: self
                .seal(state, &household_id, "address", request.address.as_bytes())
                .await?,
            members: sealed_members,
            assets: request.assets,
            sealed_payment_account: self
                .seal(state, &household_id, "payment_account", &account_bytes)
                .await?,
        });
        let guard = PersonClaims {
            household_id: household_id.clone(),
            claims,
        };
        let appended = state
            .log
            .store
            .append_guarded(
                &stream,
                ExpectedVersion::NoStream,
                &metadata,
                vec![event(&household_case(&household_id), &registered)],
                &guard,
            )
            .await?;
        match appended {
            GuardedAppend::Appended(outcome) => registration_answer(&outcome),
            GuardedAppend::Refused(refusal) => {
                Err(self.claim_refused(state, caller, refusal).await)
            }
        }
    }

    /// Why a member cannot join: they belong to another household, or are recorded there as
    /// deceased. The other household is named only to a caller whose scope covers it; to any
    /// other the answer is generic, and the attempt is on that household's access record.
    async fn claim_refused(
        &self,
        state: &IntakeState,
        caller: &Identity,
        refusal: ClaimRefusal,
    ) -> ApiError {
        let field = format!("members[{}]", refusal.position);
        let holder = match self.load(state, &refusal.household_id).await {
            Ok(holder) => holder,
            Err(error) => return error,
        };
        let Some(holder) = holder else {
            // Claimed by a registration whose event is not readable yet: say no more.
            return ApiError::AlreadyExists {
                what: format!("{field} in another household"),
                existing_id: None,
            };
        };
        let in_scope = match covers(caller, &holder) {
            Ok(in_scope) => in_scope,
            Err(error) => return error,
        };
        if !in_scope
            && let Err(error) = self
                .record_out_of_scope(state, caller, &holder.household_id, rpc::REGISTER_HOUSEHOLD)
                .await
        {
            return error;
        }
        let deceased = holder
            .member(&refusal.member_id)
            .is_some_and(|member| !member.alive);
        if deceased {
            let place = if in_scope {
                format!("household {}", holder.household_id)
            } else {
                "another household".to_owned()
            };
            return ApiError::FailedPrecondition(format!(
                "{field} is recorded as deceased in {place}; a death recorded in error is corrected there (CorrectDeathRecord)"
            ));
        }
        ApiError::AlreadyExists {
            what: format!("{field} in another household"),
            existing_id: in_scope.then_some(holder.household_id),
        }
    }

    async fn submit_application(
        &self,
        caller: &Identity,
        request: pb::SubmitApplicationRequest,
    ) -> Result<pb::SubmitApplicationResponse, ApiError> {
        caller.require_role(CASEWORKERS)?;
        let state = self.state()?;
        let mut errors = ValidationErrors::default();
        check_command_id(&mut errors, &request.command_id);
        check_uuid(
            &mut errors,
            "household_id",
            &request.household_id,
            "a household id",
        );
        check_uuid(
            &mut errors,
            "applicant_member_id",
            &request.applicant_member_id,
            "a member id",
        );
        let program = match request.program_code.parse::<ProgramCode>() {
            Ok(code) => Some(state.policy.catalogue().program(code).clone()),
            Err(_) => {
                errors.push("program_code", "not a program of the catalogue");
                None
            }
        };
        if request.channel == pb::ApplicationChannel::Unspecified as i32
            || pb::ApplicationChannel::try_from(request.channel).is_err()
        {
            errors.push("channel", "in person, on behalf by the village, or online");
        }
        validation::check_declared_facts(&mut errors, &request.declared_facts);
        if !request.notify_and_pledge_accepted {
            errors.push(
                "notify_and_pledge_accepted",
                "the notify-and-pledge statement (告知承诺) must be signed",
            );
        }
        if let Some(program) = &program {
            if program.workflow == ReviewWorkflow::MeansTestedReview
                && !request.consent_to_verification
            {
                errors.push(
                    "consent_to_verification",
                    "economic-status verification needs the household's authorisation (核对授权)",
                );
            }
            validation::check_documents(
                &mut errors,
                &request.documents,
                &program.required_documents,
            );
        } else if request.documents.len() > validation::MAX_DOCUMENTS {
            errors.push(
                "documents",
                format!("at most {} documents", validation::MAX_DOCUMENTS),
            );
        }
        errors.into_result()?;
        let Some(program) = program else {
            return Err(ApiError::invalid_field("program_code", "required"));
        };

        let metadata = command_metadata(caller, &request.command_id, request_digest(&request));
        let stream = household_stream(&request.household_id)?;
        if let Some(previous) = state.log.store.previous_outcome(&stream, &metadata).await? {
            return self.submission_answer(state, &previous);
        }
        // One window: the caller's service point accepts for households in its scope.
        let household = self
            .household_in_scope(
                state,
                caller,
                &request.household_id,
                rpc::SUBMIT_APPLICATION,
            )
            .await?;
        household
            .require_living_member("applicant_member_id", &request.applicant_member_id)
            .map_err(household_error)?;
        household
            .require_no_open_application(program.code.as_str())
            .map_err(household_error)?;

        let mut flags = Vec::new();
        for member in household.members.iter().filter(|member| member.alive) {
            let index_hex = hex::encode(&member.sealed.national_id_index);
            for relative in read_model::official_relatives(state.log.store.pool(), &index_hex)
                .await
                .map_err(ApiError::internal)?
            {
                if state
                    .official_relations
                    .iter()
                    .any(|relation| relation == &relative.relation)
                {
                    flags.push((member.sealed.member_id.clone(), relative));
                }
            }
        }
        // Recusal starts at the window: the official may not accept their relative's
        // application (review recuses them from every later stage).
        if flags
            .iter()
            .any(|(_, relative)| relative.official_subject == caller.subject)
        {
            return Err(ApiError::PermissionDenied(
                "recusal: a registered official may not accept an application of their own relative's household".into(),
            ));
        }
        let (route, department_code) = match program.channel {
            Channel::DistrictCenter => (pb::Route::Review, String::new()),
            Channel::Emergency => (pb::Route::Emergency, String::new()),
            Channel::DepartmentRoutine => (
                pb::Route::Department,
                program.departments.first().cloned().unwrap_or_default(),
            ),
        };

        let application_id = uuid::Uuid::now_v7().to_string();
        let case_id = uuid::Uuid::now_v7().to_string();
        let declared = serde_json::to_vec(&request.declared_facts).map_err(ApiError::internal)?;
        let submitted = HouseholdEvent::ApplicationSubmitted(pb::ApplicationSubmitted {
            application_id: application_id.clone(),
            case_id: case_id.clone(),
            household_id: household.household_id.clone(),
            applicant_member_id: request.applicant_member_id.clone(),
            program_code: program.code.as_str().to_owned(),
            channel: request.channel,
            accepted_org_unit_code: caller.org_unit.as_str().to_owned(),
            route: route as i32,
            department_code: department_code.clone(),
            consent_to_verification: request.consent_to_verification,
            notify_and_pledge_accepted: request.notify_and_pledge_accepted,
            documents: request.documents.clone(),
            sealed_declared_facts: self
                .seal(
                    state,
                    &household.household_id,
                    &format!("{application_id}/declared_facts"),
                    &declared,
                )
                .await?,
            hukou_org_unit_code: household.hukou_org_unit_code.clone(),
            relative_of_official: !flags.is_empty(),
            review_workflow: workflow_name(program.workflow).to_owned(),
            accepted_on: Some(sunshine_proto::dates::from_date(self.today())),
        });
        let mut events = vec![event(&case_id, &submitted)];
        for (member_id, relative) in &flags {
            let flagged =
                HouseholdEvent::RelativeOfOfficialFlagged(pb::RelativeOfOfficialFlagged {
                    application_id: application_id.clone(),
                    case_id: case_id.clone(),
                    household_id: household.household_id.clone(),
                    member_id: member_id.clone(),
                    relation: relative.relation.clone(),
                    registration_id: relative.registration_id.clone(),
                    official_position: relative.official_position.clone(),
                    official_org_unit_code: relative.official_org_unit_code.clone(),
                    official_subject: relative.official_subject.clone(),
                });
            events.push(event(&case_id, &flagged));
        }
        let outcome = state
            .log
            .store
            .append(
                &stream,
                ExpectedVersion::Exact(household.version),
                &metadata,
                events,
            )
            .await?;
        self.submission_answer(state, &outcome)
    }

    /// The answer to a submission, from its append (the first one, for a retry).
    fn submission_answer(
        &self,
        state: &IntakeState,
        outcome: &AppendOutcome,
    ) -> Result<pb::SubmitApplicationResponse, ApiError> {
        let first = outcome
            .events
            .first()
            .and_then(|stored| pb::ApplicationSubmitted::decode(stored.payload.as_slice()).ok())
            .ok_or_else(|| {
                ApiError::internal(std::io::Error::other("append returned no application"))
            })?;
        let assist_first_cap = if first.route == pb::Route::Emergency as i32 {
            let resolved = state
                .policy
                .resolve(self.today())
                .map_err(ApiError::internal)?;
            Some(pb::Money {
                fen: resolved.temporary.assist_first_cap.fen(),
            })
        } else {
            None
        };
        Ok(pb::SubmitApplicationResponse {
            application_id: first.application_id,
            case_id: first.case_id,
            route: first.route,
            department_code: first.department_code,
            assist_first_cap,
            relative_of_official: first.relative_of_official,
        })
    }

    async fn record_circumstance_change(
        &self,
        caller: &Identity,
        request: pb::RecordCircumstanceChangeRequest,
    ) -> Result<u64, ApiError> {
        caller.require_role(CASEWORKERS)?;
        let state = self.state()?;
        let mut errors = ValidationErrors::default();
        check_command_id(&mut errors, &request.command_id);
        check_uuid(
            &mut errors,
            "household_id",
            &request.household_id,
            "a household id",
        );
        check_text(
            &mut errors,
            "reason",
            &request.reason,
            true,
            validation::MAX_REASON_CHARS,
        );
        validation::check_member_incomes(&mut errors, &request.incomes);
        validation::check_assets(&mut errors, "assets", request.assets.as_ref());
        errors.into_result()?;
        let metadata = command_metadata(caller, &request.command_id, request_digest(&request));
        let household = match self
            .prepare_change(
                state,
                caller,
                &metadata,
                &request.household_id,
                request.expected_version,
                rpc::RECORD_CIRCUMSTANCE_CHANGE,
            )
            .await?
        {
            Prepared::Retried(previous) => return Ok(previous.last_version),
            Prepared::Current(household) => household,
        };
        for (index, income) in request.incomes.iter().enumerate() {
            household
                .require_living_member(&format!("incomes[{index}].member_id"), &income.member_id)
                .map_err(household_error)?;
        }
        let change = HouseholdEvent::CircumstanceChanged(pb::CircumstanceChanged {
            household_id: household.household_id.clone(),
            incomes: request.incomes,
            assets: request.assets,
            reason: String::new(),
            sealed_reason: self.seal_reason(state, &household, &request.reason).await?,
        });
        self.append_change(state, &metadata, &household, &change)
            .await
    }

    async fn record_death(
        &self,
        caller: &Identity,
        request: pb::RecordDeathRequest,
    ) -> Result<u64, ApiError> {
        caller.require_role(CASEWORKERS)?;
        let state = self.state()?;
        let mut errors = ValidationErrors::default();
        check_command_id(&mut errors, &request.command_id);
        check_uuid(
            &mut errors,
            "household_id",
            &request.household_id,
            "a household id",
        );
        check_uuid(&mut errors, "member_id", &request.member_id, "a member id");
        check_text(
            &mut errors,
            "reason",
            &request.reason,
            true,
            validation::MAX_REASON_CHARS,
        );
        match sunshine_proto::dates::to_date(request.date_of_death.as_ref()) {
            None => errors.push("date_of_death", "required, a calendar date"),
            Some(date) if date > self.today() => {
                errors.push("date_of_death", "must not be in the future")
            }
            Some(_) => {}
        }
        errors.into_result()?;
        let metadata = command_metadata(caller, &request.command_id, request_digest(&request));
        let household = match self
            .prepare_change(
                state,
                caller,
                &metadata,
                &request.household_id,
                request.expected_version,
                rpc::RECORD_DEATH,
            )
            .await?
        {
            Prepared::Retried(previous) => return Ok(previous.last_version),
            Prepared::Current(household) => household,
        };
        household
            .require_living_member("member_id", &request.member_id)
            .map_err(household_error)?;
        // The member's id stays claimed by this household (see `read_model`).
        let change = HouseholdEvent::MemberDied(pb::MemberDied {
            household_id: household.household_id.clone(),
            member_id: request.member_id.clone(),
            date_of_death: request.date_of_death,
            reason: String::new(),
            sealed_reason: self.seal_reason(state, &household, &request.reason).await?,
        });
        self.append_change(state, &metadata, &household, &change)
            .await
    }

    async fn correct_death_record(
        &self,
        caller: &Identity,
        request: pb::CorrectDeathRecordRequest,
    ) -> Result<u64, ApiError> {
        caller.require_role(DEATH_CORRECTORS)?;
        let state = self.state()?;
        let mut errors = ValidationErrors::default();
        check_command_id(&mut errors, &request.command_id);
        check_uuid(
            &mut errors,
            "household_id",
            &request.household_id,
            "a household id",
        );
        check_uuid(&mut errors, "member_id", &request.member_id, "a member id");
        check_text(
            &mut errors,
            "reason",
            &request.reason,
            true,
            validation::MAX_REASON_CHARS,
        );
        errors.into_result()?;
        let metadata = command_metadata(caller, &request.command_id, request_digest(&request));
        let household = match self
            .prepare_change(
                state,
                caller,
                &metadata,
                &request.household_id,
                request.expected_version,
                rpc::CORRECT_DEATH_RECORD,
            )
            .await?
        {
            Prepared::Retried(previous) => return Ok(previous.last_version),
            Prepared::Current(household) => household,
        };
        let member = household
            .require_deceased_member("member_id", &request.member_id)
            .map_err(household_error)?;
        let change = HouseholdEvent::DeathRecordCorrected(pb::DeathRecordCorrected {
            household_id: household.household_id.clone(),
            member_id: request.member_id.clone(),
            recorded_date_of_death: member.date_of_death,
            sealed_reason: self.seal_reason(state, &household, &request.reason).await?,
        });
        self.append_change(state, &metadata, &household, &change)
            .await
    }

    async fn record_move(
        &self,
        caller: &Identity,
        request: pb::RecordMoveRequest,
    ) -> Result<u64, ApiError> {
        caller.require_role(CASEWORKERS)?;
        let state = self.state()?;
        let mut errors = ValidationErrors::default();
        check_command_id(&mut errors, &request.command_id);
        check_uuid(
            &mut errors,
            "household_id",
            &request.household_id,
            "a household id",
        );
        check_text(
            &mut errors,
            "reason",
            &request.reason,
            true,
            validation::MAX_REASON_CHARS,
        );
        check_text(
            &mut errors,
            "new_address",
            &request.new_address,
            true,
            validation::MAX_TEXT_CHARS,
        );
        let target = validation::check_village(
            &mut errors,
            &state.org_tree,
            "new_hukou_org_unit_code",
            &request.new_hukou_org_unit_code,
        );
        errors.into_result()?;
        let Some(target) = target else {
            return Err(ApiError::invalid_field(
                "new_hukou_org_unit_code",
                "required",
            ));
        };
        let metadata = command_metadata(caller, &request.command_id, request_digest(&request));
        // Scope over the household where it is now; the target is any village of the district.
        let household = match self
            .prepare_change(
                state,
                caller,
                &metadata,
                &request.household_id,
                request.expected_version,
                rpc::RECORD_MOVE,
            )
            .await?
        {
            Prepared::Retried(previous) => return Ok(previous.last_version),
            Prepared::Current(household) => household,
        };
        // Only now, with every check passed, is anything sealed (a data key may be created).
        let change = HouseholdEvent::Moved(pb::HouseholdMoved {
            household_id: household.household_id.clone(),
            from_org_unit_code: household.hukou_org_unit_code.clone(),
            to_org_unit_code: target.as_str().to_owned(),
            sealed_address: self
                .seal(
                    state,
                    &household.household_id,
                    "address",
                    request.new_address.as_bytes(),
                )
                .await?,
            reason: String::new(),
            sealed_reason: self.seal_reason(state, &household, &request.reason).await?,
        });
        self.append_change(state, &metadata, &household, &change)
            .await
    }

    async fn register_official_relative(
        &self,
        caller: &Identity,
        request: pb::RegisterOfficialRelativeRequest,
    ) -> Result<pb::RegisterOfficialRelativeResponse, ApiError> {
        caller.require_role(REGISTRY_KEEPERS)?;
        let state = self.state()?;
        let mut errors = ValidationErrors::default();
        check_command_id(&mut errors, &request.command_id);
        check_text(
            &mut errors,
            "official_subject",
            &request.official_subject,
            true,
            validation::MAX_OFFICIAL_TEXT_CHARS,
        );
        check_text(
            &mut errors,
            "official_name",
            &request.official_name,
            true,
            validation::MAX_NAME_CHARS,
        );
        check_text(
            &mut errors,
            "official_position",
            &request.official_position,
            true,
            validation::MAX_OFFICIAL_TEXT_CHARS,
        );
        let official_org_unit = validation::check_org_unit(
            &mut errors,
            &state.org_tree,
            "official_org_unit_code",
            &request.official_org_unit_code,
        );
        let relative =
            sunshine_domain::NationalId::parse_as_of(&request.relative_national_id, self.today());
        if let Err(error) = &relative {
            errors.push("relative_national_id", error.to_string());
        }
        if !state
            .official_relations
            .iter()
            .any(|relation| relation == &request.relation)
        {
            errors.push(
                "relation",
                format!("one of: {}", state.official_relations.join(", ")),
            );
        }
        errors.into_result()?;
        let relative = relative
            .map_err(|error| ApiError::invalid_field("relative_national_id", error.to_string()))?;
        // A registry keeper registers officials of its own org scope (the org tree is public:
        // refusing names no household).
        let Some(official_org_unit) = official_org_unit else {
            return Err(ApiError::invalid_field(
                "official_org_unit_code",
                "required",
            ));
        };
        caller.require_org_scope(&official_org_unit)?;
        let registration_id = uuid::Uuid::new_v5(
            &uuid::Uuid::NAMESPACE_OID,
            format!("sunshine/intake/official-relative/{}", request.command_id).as_bytes(),
        )
        .to_string();
        let stream =
            StreamId::new("intake", "official", &registration_id).map_err(ApiError::internal)?;
        let metadata = command_metadata(caller, &request.command_id, request_digest(&request));
        let relative_index = state
            .log
            .blind_index(NATIONAL_ID_DOMAIN, relative.as_str())
            .to_vec();
        if let Some(previous) = state.log.store.previous_outcome(&stream, &metadata).await? {
            // The retry also finishes flagging cases the first call may not have reached.
            if let Some(first) = previous.events.first() {
                let registered = pb::OfficialRelativeRegistered::decode(first.payload.as_slice())
                    .map_err(ApiError::internal)?;
                self.flag_open_applications(state, caller, &registered)
                    .await?;
            }
            return Ok(pb::RegisterOfficialRelativeResponse { registration_id });
        }
        let sealed_official_name = state
            .log
            .keys
            .seal(
                &format!("official-{registration_id}"),
                request.official_name.as_bytes(),
                registration_id.as_bytes(),
            )
            .await
            .map_err(ApiError::internal)?;
        let registered = pb::OfficialRelativeRegistered {
            registration_id: registration_id.clone(),
            official_subject: request.official_subject.clone(),
            sealed_official_name,
            official_position: request.official_position.clone(),
            official_org_unit_code: request.official_org_unit_code.clone(),
            relative_index,
            relation: request.relation.clone(),
        };
        // The registry row commits with its event, so the next application sees it; the
        // projection writes it from the log too.
        let guard = read_model::RegistryRow(&registered);
        state
            .log
            .store
            .append_guarded(
                &stream,
                ExpectedVersion::NoStream,
                &metadata,
                vec![NewEvent::new(
                    "registry-official-relatives",
                    "sunshine.v1.OfficialRelativeRegistered",
                    1,
                    registered.encode_to_vec(),
                )],
                &guard,
            )
            .await?;
        self.flag_open_applications(state, caller, &registered)
            .await?;
        Ok(pb::RegisterOfficialRelativeResponse { registration_id })
    }

    /// A relation registered after the relative applied: every open application of the
    /// relative's household is flagged now (review recuses the official when it hears it), each
    /// with a command id of its own so a retry flags nothing twice.
    async fn flag_open_applications(
        &self,
        state: &IntakeState,
        caller: &Identity,
        registered: &pb::OfficialRelativeRegistered,
    ) -> Result<(), ApiError> {
        let index_hex = hex::encode(&registered.relative_index);
        let Some((household_id, member_id)) =
            read_model::find_person(state.log.store.pool(), &index_hex)
                .await
                .map_err(ApiError::internal)?
        else {
            return Ok(());
        };
        let stream = household_stream(&household_id)?;
        // Another clerk may change the household meanwhile: reload and try again.
        for _attempt in 0..8 {
            let Some(household) = self.load(state, &household_id).await? else {
                return Ok(());
            };
            let living = household
                .members
                .iter()
                .any(|member| member.alive && member.sealed.member_id == member_id);
            if !living {
                return Ok(());
            }
            let mut pending = Vec::new();
            for open in household.open_applications.values() {
                let command_id = format!("flag/{}/{}", registered.registration_id, open.case_id);
                let flagged = pb::RelativeOfOfficialFlagged {
                    application_id: open.application_id.clone(),
                    case_id: open.case_id.clone(),
                    household_id: household_id.clone(),
                    member_id: member_id.clone(),
                    relation: registered.relation.clone(),
                    registration_id: registered.registration_id.clone(),
                    official_position: registered.official_position.clone(),
                    official_org_unit_code: registered.official_org_unit_code.clone(),
                    official_subject: registered.official_subject.clone(),
                };
                let metadata = command_metadata(caller, &command_id, request_digest(&flagged));
                if state
                    .log
                    .store
                    .previous_outcome(&stream, &metadata)
                    .await?
                    .is_none()
                {
                    pending.push((metadata, flagged));
                }
            }
            let Some((metadata, flagged)) = pending.into_iter().next() else {
                return Ok(());
            };
            let case_id = flagged.case_id.clone();
            let appended = state
                .log
                .store
                .append(
                    &stream,
                    ExpectedVersion::Exact(household.version),
                    &metadata,
                    vec![event(
                        &case_id,
                        &HouseholdEvent::RelativeOfOfficialFlagged(flagged),
                    )],
                )
                .await;
            match appended {
                // Flagged one; go round for the next (the household's version moved on).
                Ok(_) | Err(sunshine_eventlog::StoreError::Conflict { .. }) => continue,
                Err(error) => return Err(error.into()),
            }
        }
        Err(ApiError::Conflict(
            "the relative's household kept changing while its applications were flagged; retry the registration with the same command id".into(),
        ))
    }

    async fn get_household(
        &self,
        caller: &Identity,
        request: pb::GetHouseholdRequest,
    ) -> Result<pb::Household, ApiError> {
        caller.require_role(READERS)?;
        let state = self.state()?;
        let mut errors = ValidationErrors::default();
        check_uuid(
            &mut errors,
            "household_id",
            &request.household_id,
            "a household id",
        );
        let purpose = pb::RevealPurpose::try_from(request.reveal_purpose)
            .unwrap_or(pb::RevealPurpose::Unspecified);
        if request.reveal_personal_data || !request.case_id.is_empty() {
            check_uuid(&mut errors, "case_id", &request.case_id, "a case id");
        }
        if (request.reveal_personal_data || request.reveal_purpose != 0)
            && purpose == pb::RevealPurpose::Unspecified
        {
            errors.push("reveal_purpose", "one of the RevealPurpose values");
        }
        check_text(
            &mut errors,
            "purpose",
            &request.purpose,
            request.reveal_personal_data,
            validation::MAX_TEXT_CHARS,
        );
        errors.into_result()?;
        let reveal = if request.reveal_personal_data {
            access::authorise_reveal(caller.role, purpose).map_err(ApiError::PermissionDenied)?
        } else {
            Reveal::NOTHING
        };
        self.count_personal_data_read(state, caller, rpc::GET_HOUSEHOLD)
            .await?;
        let household = self
            .household_in_scope(state, caller, &request.household_id, rpc::GET_HOUSEHOLD)
            .await?;
        if reveal.any() && !household.has_live_case(&request.case_id) {
            return Err(ApiError::invalid_field(
                "case_id",
                "not an open or running case of this household",
            ));
        }
        let id = &household.household_id;

        // The read itself is on the record, before anything is shown.
        let accessed = pb::PersonalDataAccessed {
            household_id: id.clone(),
            revealed: reveal.any(),
            purpose: if reveal.any() {
                "reveal".into()
            } else {
                "masked read".into()
            },
            fields: vec!["members".into(), "address".into(), "payment_account".into()],
            case_id: if reveal.any() {
                request.case_id.clone()
            } else {
                String::new()
            },
            reveal_purpose: if reveal.any() { purpose as i32 } else { 0 },
            sealed_note: Vec::new(),
            revealed_fields: reveal.field_names(),
            rpc: rpc::GET_HOUSEHOLD.into(),
        };
        self.record_access(state, caller, accessed, &request.purpose)
            .await?;

        let mut members = Vec::with_capacity(household.members.len());
        for member in &household.members {
            let member_id = &member.sealed.member_id;
            let opened = masking::OpenedMember {
                name: self
                    .open(
                        state,
                        id,
                        &format!("{member_id}/name"),
                        &member.sealed.sealed_name,
                    )
                    .await?,
                national_id: self
                    .open(
                        state,
                        id,
                        &format!("{member_id}/national_id"),
                        &member.sealed.sealed_national_id,
                    )
                    .await?,
                phone: self
                    .open(
                        state,
                        id,
                        &format!("{member_id}/phone"),
                        &member.sealed.sealed_phone,
                    )
                    .await?,
            };
            members.push(masking::member_view(member, opened, reveal));
        }
        let address = self
            .open(state, id, "address", &household.sealed_address)
            .await?;
        let account_bytes = self
            .open_bytes(
                state,
                id,
                "payment_account",
                &household.sealed_payment_account,
            )
            .await?
            .unwrap_or_default();
        let mut payment_account = pb::PaymentAccount::decode(account_bytes.as_slice()).ok();
        if !reveal.payment_account
            && let Some(account) = payment_account.as_mut()
        {
            account.account_number = masking::mask_account(&account.account_number);
            account.holder_name = masking::mask_name(&account.holder_name);
        }
        let open_applications = household
            .open_applications
            .values()
            .map(|open| pb::ApplicationSummary {
                application_id: open.application_id.clone(),
                case_id: open.case_id.clone(),
                household_id: id.clone(),
                program_code: open.program_code.clone(),
                status: read_model::initial_status(open.route).into(),
                accepted_org_unit_code: open.accepted_org_unit_code.clone(),
                submitted_at: None,
                route: open.route,
                relative_of_official: open.relative_of_official,
            })
            .collect();
        Ok(pb::Household {
            household_id: id.clone(),
            hukou_org_unit_code: household.hukou_org_unit_code.clone(),
            address: if reveal.address {
                address
            } else {
                masking::mask_address(&address)
            },
            version: household.version,
            members,
            assets: household.assets,
            payment_account,
            open_applications,
            revealed: reveal.any(),
            revealed_fields: reveal.field_names(),
        })
    }

    async fn find_household(
        &self,
        caller: &Identity,
        request: pb::FindHouseholdRequest,
    ) -> Result<pb::FindHouseholdResponse, ApiError> {
        caller.require_role(READERS)?;
        let state = self.state()?;
        let national_id = sunshine_domain::NationalId::parse(&request.national_id)
            .map_err(|error| ApiError::invalid_field("national_id", error.to_string()))?;
        self.count_personal_data_read(state, caller, rpc::FIND_HOUSEHOLD)
            .await?;
        let index_hex = hex::encode(
            state
                .log
                .blind_index(NATIONAL_ID_DOMAIN, national_id.as_str()),
        );
        let found = read_model::find_person(state.log.store.pool(), &index_hex)
            .await
            .map_err(ApiError::internal)?;
        let Some((household_id, member_id)) = found else {
            return Err(person_not_found());
        };
        let Some(household) = self.load(state, &household_id).await? else {
            return Err(person_not_found());
        };
        if !covers(caller, &household)? {
            self.record_out_of_scope(state, caller, &household_id, rpc::FIND_HOUSEHOLD)
                .await?;
            return Err(person_not_found());
        }
        let accessed = pb::PersonalDataAccessed {
            household_id: household_id.clone(),
            purpose: "lookup by national id".into(),
            fields: vec!["national_id".into()],
            rpc: rpc::FIND_HOUSEHOLD.into(),
            ..Default::default()
        };
        self.record_access(state, caller, accessed, "").await?;
        Ok(pb::FindHouseholdResponse {
            household_id,
            member_id,
        })
    }

    async fn list_applications(
        &self,
        caller: &Identity,
        request: pb::ListApplicationsRequest,
    ) -> Result<pb::ListApplicationsResponse, ApiError> {
        caller.require_role(READERS)?;
        let state = self.state()?;
        let mut errors = ValidationErrors::default();
        let org_unit = if request.org_unit_code.is_empty() {
            Some(caller.org_unit.clone())
        } else {
            validation::check_org_unit(
                &mut errors,
                &state.org_tree,
                "org_unit_code",
                &request.org_unit_code,
            )
        };
        if !request.program_code.is_empty() && request.program_code.parse::<ProgramCode>().is_err()
        {
            errors.push("program_code", "not a program of the catalogue");
        }
        if !request.status.is_empty()
            && !validation::APPLICATION_STATUSES.contains(&request.status.as_str())
        {
            errors.push(
                "status",
                format!("one of: {}", validation::APPLICATION_STATUSES.join(", ")),
            );
        }
        let page = request.page.unwrap_or_default();
        validation::check_page(&mut errors, &page);
        errors.into_result()?;
        let Some(org_unit) = org_unit else {
            return Err(ApiError::invalid_field("org_unit_code", "required"));
        };
        caller.require_org_scope(&org_unit)?;
        let limit = i64::from(if page.page_size == 0 {
            validation::DEFAULT_PAGE_SIZE
        } else {
            page.page_size
        });
        let query = ApplicationQuery {
            org_unit_prefix: org_unit.scope_prefix().to_owned(),
            program_code: (!request.program_code.is_empty()).then_some(request.program_code),
            status: (!request.status.is_empty()).then_some(request.status),
            after_application_id: (!page.page_token.is_empty()).then_some(page.page_token),
            limit: limit + 1,
        };
        let mut applications = read_model::list_applications(state.log.store.pool(), &query)
            .await
            .map_err(ApiError::internal)?;
        let next_page_token = if applications.len() as i64 > limit {
            applications.truncate(limit as usize);
            applications
                .last()
                .map(|last| last.application_id.clone())
                .unwrap_or_default()
        } else {
            String::new()
        };
        Ok(pb::ListApplicationsResponse {
            applications,
            page: Some(pb::PageResponse { next_page_token }),
        })
    }

    /// Appends `PersonalDataAccessed` to the household's access stream (in the case's file too,
    /// for a reveal); the officer's own words are sealed.
    async fn record_access(
        &self,
        state: &IntakeState,
        caller: &Identity,
        mut accessed: pb::PersonalDataAccessed,
        note: &str,
    ) -> Result<(), ApiError> {
        let household_id = accessed.household_id.clone();
        let stream =
            StreamId::new("intake", "access", &household_id).map_err(ApiError::internal)?;
        let case_id = if accessed.case_id.is_empty() {
            household_case(&household_id)
        } else {
            accessed.case_id.clone()
        };
        let mut new_event =
            NewEvent::new(case_id, "sunshine.v1.PersonalDataAccessed", 1, Vec::new());
        accessed.sealed_note = self
            .seal(
                state,
                &household_id,
                &format!("access/{}/note", new_event.event_id),
                note.as_bytes(),
            )
            .await?;
        new_event.payload = accessed.encode_to_vec();
        append_record(state, &stream, caller, new_event).await
    }
}

/// Attempts of [`append_record`] before giving up.
const RECORD_ATTEMPTS: usize = 16;

/// Appends a record the service makes of a call (an access, an attempt, a refusal) at the end
/// of its stream, whatever that end is. Several readers of one household record at once, and
/// two appends at "any" version can still collide on the stream's next version: the loser
/// tries again at the new end rather than fail the caller's read.
async fn append_record(
    state: &IntakeState,
    stream: &StreamId,
    caller: &Identity,
    new_event: NewEvent,
) -> Result<(), ApiError> {
    let metadata = record_metadata(caller);
    let mut attempt = 1;
    loop {
        match state
            .log
            .store
            .append(
                stream,
                ExpectedVersion::Any,
                &metadata,
                vec![new_event.clone()],
            )
            .await
        {
            Ok(_) => return Ok(()),
            Err(sunshine_eventlog::StoreError::Conflict { .. }) if attempt < RECORD_ATTEMPTS => {
                attempt += 1;
            }
            Err(error) => return Err(error.into()),
        }
    }
}

/// Whether the caller's org unit covers the household where it is registered now.
fn covers(caller: &Identity, household: &HouseholdState) -> Result<bool, ApiError> {
    let hukou = OrgUnitCode::parse(&household.hukou_org_unit_code).map_err(ApiError::internal)?;
    Ok(caller.org_unit.covers(&hukou))
}

/// The answer to a registration, from its append (the first one, for a retry).
fn registration_answer(outcome: &AppendOutcome) -> Result<pb::RegisterHouseholdResponse, ApiError> {
    let registered = outcome
        .events
        .first()
        .and_then(|stored| pb::HouseholdRegistered::decode(stored.payload.as_slice()).ok())
        .ok_or_else(|| {
            ApiError::internal(std::io::Error::other("append returned no registration"))
        })?;
    Ok(pb::RegisterHouseholdResponse {
        household_id: registered.household_id,
        version: outcome.last_version,
        member_ids: registered
            .members
            .into_iter()
            .map(|member| member.member_id)
            .collect(),
    })
}

#[tonic::async_trait]
impl IntakeService for IntakeApi {
    async fn register_household(
        &self,
        request: Request<pb::RegisterHouseholdRequest>,
    ) -> Result<Response<pb::RegisterHouseholdResponse>, Status> {
        let caller = identity(&request)?.clone();
        Ok(Response::new(
            self.register_household(&caller, request.into_inner())
                .await?,
        ))
    }

    async fn record_circumstance_change(
        &self,
        request: Request<pb::RecordCircumstanceChangeRequest>,
    ) -> Result<Response<pb::RecordCircumstanceChangeResponse>, Status> {
        let caller = identity(&request)?.clone();
        let version = self
            .record_circumstance_change(&caller, request.into_inner())
            .await?;
        Ok(Response::new(pb::RecordCircumstanceChangeResponse {
            version,
        }))
    }

    async fn record_death(
        &self,
        request: Request<pb::RecordDeathRequest>,
    ) -> Result<Response<pb::RecordDeathResponse>, Status> {
        let caller = identity(&request)?.clone();
        let version = self.record_death(&caller, request.into_inner()).await?;
        Ok(Response::new(pb::RecordDeathResponse { version }))
    }

    async fn correct_death_record(
        &self,
        request: Request<pb::CorrectDeathRecordRequest>,
    ) -> Result<Response<pb::CorrectDeathRecordResponse>, Status> {
        let caller = identity(&request)?.clone();
        let version = self
            .correct_death_record(&caller, request.into_inner())
            .await?;
        Ok(Response::new(pb::CorrectDeathRecordResponse { version }))
    }

    async fn record_move(
        &self,
        request: Request<pb::RecordMoveRequest>,
    ) -> Result<Response<pb::RecordMoveResponse>, Status> {
        let caller = identity(&request)?.clone();
        let version = self.record_move(&caller, request.into_inner()).await?;
        Ok(Response::new(pb::RecordMoveResponse { version }))
    }

    async fn submit_application(
        &self,
        request: Request<pb::SubmitApplicationRequest>,
    ) -> Result<Response<pb::SubmitApplicationResponse>, Status> {
        let caller = identity(&request)?.clone();
        Ok(Response::new(
            self.submit_application(&caller, request.into_inner())
                .await?,
        ))
    }

    async fn register_official_relative(
        &self,
        request: Request<pb::RegisterOfficialRelativeRequest>,
    ) -> Result<Response<pb::RegisterOfficialRelativeResponse>, Status> {
        let caller = identity(&request)?.clone();
        Ok(Response::new(
            self.register_official_relative(&caller, request.into_inner())
                .await?,
        ))
    }

    async fn get_household(
        &self,
        request: Request<pb::GetHouseholdRequest>,
    ) -> Result<Response<pb::GetHouseholdResponse>, Status> {
        let caller = identity(&request)?.clone();
        let household = self.get_household(&caller, request.into_inner()).await?;
        Ok(Response::new(pb::GetHouseholdResponse {
            household: Some(household),
        }))
    }

    async fn find_household(
        &self,
        request: Request<pb::FindHouseholdRequest>,
    ) -> Result<Response<pb::FindHouseholdResponse>, Status> {
        let caller = identity(&request)?.clone();
        Ok(Response::new(
            self.find_household(&caller, request.into_inner()).await?,
        ))
    }

    async fn list_applications(
        &self,
        request: Request<pb::ListApplicationsRequest>,
    ) -> Result<Response<pb::ListApplicationsResponse>, Status> {
        let caller = identity(&request)?.clone();
        Ok(Response::new(
            self.list_applications(&caller, request.into_inner())
                .await?,
        ))
    }
}
