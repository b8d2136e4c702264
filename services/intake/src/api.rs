//! `sunshine.v1.IntakeService`: authorise, validate (every bad field at once), decide against
//! the household's stream, append with the expected version. Errors become statuses through
//! `ApiError` only.

use std::sync::{Arc, OnceLock};

use prost::Message as _;
use sunshine_domain::{OrgTier, OrgUnitCode, ValidationErrors};
use sunshine_eventlog::runtime::LogRuntime;
use sunshine_eventlog::{Actor, EventMetadata, ExpectedVersion, NewEvent, StoreError, StreamId};
use sunshine_platform::auth::identity;
use sunshine_platform::{ApiError, Identity, Role};
use sunshine_policy::{Channel, Policy, ProgramCode, ReviewWorkflow};
use sunshine_proto::v1 as pb;
use sunshine_proto::v1::intake_service_server::IntakeService;
use tonic::{Request, Response, Status};

use crate::household::{HouseholdError, HouseholdEvent, HouseholdState, SCHEMA_VERSION};
use crate::masking;
use crate::read_model::{self, ApplicationQuery};
use crate::validation::{self, check_command_id, check_org_unit, check_text};

/// Blind-index domain of resident id numbers.
pub const NATIONAL_ID_DOMAIN: &str = "resident-id";

/// Who may act at a service point.
const CASEWORKERS: &[Role] = &[
    Role::VillageClerk,
    Role::StreetReviewer,
    Role::CenterReviewer,
];
/// Who may see personal data in full (for a stated purpose).
const REVEALERS: &[Role] = &[
    Role::VillageClerk,
    Role::StreetReviewer,
    Role::CenterReviewer,
    Role::CenterApprover,
    Role::FinanceOfficer,
];
/// Who may read households at all (masked unless revealed).
const READERS: &[Role] = &[
    Role::VillageClerk,
    Role::StreetReviewer,
    Role::CenterReviewer,
    Role::CenterApprover,
    Role::FinanceOfficer,
    Role::FinanceApprover,
    Role::Auditor,
];

/// What the handlers share once the service is connected.
#[derive(Debug, Clone)]
pub struct IntakeState {
    pub log: LogRuntime,
    pub policy: Arc<Policy>,
    /// Relations of officials' relatives that must be registered (configurable per province).
    pub official_relations: Arc<Vec<String>>,
    pub clock: Arc<dyn sunshine_platform::clock::Clock>,
}

/// The gRPC service; answers `UNAVAILABLE` until the log is ready.
#[derive(Debug, Clone)]
pub struct IntakeApi {
    pub state: Arc<OnceLock<IntakeState>>,
}

fn store_error(error: StoreError) -> ApiError {
    ApiError::from(error)
}

fn household_error(error: HouseholdError) -> ApiError {
    let description = error.to_string();
    match error {
        HouseholdError::UnknownMember { field, .. } | HouseholdError::MemberDead { field, .. } => {
            ApiError::invalid_field(field, description)
        }
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

fn check_household_id(errors: &mut ValidationErrors, household_id: &str) {
    if uuid::Uuid::parse_str(household_id).is_err() {
        errors.push("household_id", "a household id (UUID)");
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

fn metadata(caller: &Identity, command_id: Option<&str>) -> EventMetadata {
    EventMetadata {
        actor: Actor {
            subject: caller.subject.clone(),
            role: caller.role.as_str().to_owned(),
            org_unit: caller.org_unit.as_str().to_owned(),
            department_code: caller.department_code.clone(),
        },
        command_id: command_id.map(str::to_owned),
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

    async fn load(
        &self,
        state: &IntakeState,
        household_id: &str,
    ) -> Result<HouseholdState, ApiError> {
        let stream = household_stream(household_id)?;
        let recorded = state
            .log
            .store
            .read_stream(&stream, 1)
            .await
            .map_err(store_error)?;
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
        HouseholdState::fold(events).ok_or_else(|| ApiError::NotFound {
            what: format!("household {household_id}"),
        })
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

    async fn append(
        &self,
        state: &IntakeState,
        household_id: &str,
        expected: ExpectedVersion,
        caller: &Identity,
        command_id: &str,
        events: Vec<NewEvent>,
    ) -> Result<sunshine_eventlog::AppendOutcome, ApiError> {
        let stream = household_stream(household_id)?;
        state
            .log
            .store
            .append(
                &stream,
                expected,
                &metadata(caller, Some(command_id)),
                events,
            )
            .await
            .map_err(store_error)
    }

    async fn register_household(
        &self,
        caller: &Identity,
        request: pb::RegisterHouseholdRequest,
    ) -> Result<pb::RegisterHouseholdResponse, ApiError> {
        caller.require_role(CASEWORKERS)?;
        let mut errors = ValidationErrors::default();
        check_command_id(&mut errors, &request.command_id);
        let org_unit = check_org_unit(
            &mut errors,
            "hukou_org_unit_code",
            &request.hukou_org_unit_code,
        );
        if let Some(code) = &org_unit
            && code.tier() != OrgTier::VillageCommunity
        {
            errors.push(
                "hukou_org_unit_code",
                "a household is registered at a village or community",
            );
        }
        check_text(
            &mut errors,
            "address",
            &request.address,
            true,
            validation::MAX_TEXT_CHARS,
        );
        let members = validation::check_members(&mut errors, &request.members, self.today());
        validation::check_assets(&mut errors, "assets", request.assets.as_ref());
        if let Some(account) = &request.payment_account {
            check_text(
                &mut errors,
                "payment_account.bank",
                &account.bank,
                false,
                60,
            );
            check_text(
                &mut errors,
                "payment_account.holder_name",
                &account.holder_name,
                false,
                validation::MAX_NAME_CHARS,
            );
            if !account.account_number.is_empty()
                && (account.account_number.len() > 34
                    || !account
                        .account_number
                        .bytes()
                        .all(|byte| byte.is_ascii_alphanumeric()))
            {
                errors.push(
                    "payment_account.account_number",
                    "at most 34 letters and digits",
                );
            }
        }
        errors.into_result()?;
        let Some(org_unit) = org_unit else {
            return Err(ApiError::invalid_field("hukou_org_unit_code", "required"));
        };
        caller.require_org_scope(&org_unit)?;
        let state = self.state()?;

        let household_id = household_id_for(&request.command_id);
        let mut sealed_members = Vec::with_capacity(members.len());
        let mut claimed: Vec<String> = Vec::new();
        for (index, member) in members.iter().enumerate() {
            let member_id = uuid::Uuid::new_v5(
                &uuid::Uuid::NAMESPACE_OID,
                format!("{household_id}/{index}").as_bytes(),
            )
            .to_string();
            let index_hex = hex::encode(
                state
                    .log
                    .blind_index(NATIONAL_ID_DOMAIN, member.national_id.as_str()),
            );
            match read_model::claim_person(
                state.log.store.pool(),
                &index_hex,
                &household_id,
                &member_id,
            )
            .await
            {
                Ok(Ok(())) => claimed.push(index_hex.clone()),
                Ok(Err(other_household)) => {
                    self.release(state, &claimed, &household_id).await;
                    return Err(ApiError::AlreadyExists {
                        what: format!("members[{index}] in another household"),
                        existing_id: Some(other_household),
                    });
                }
                Err(error) => {
                    self.release(state, &claimed, &household_id).await;
                    return Err(ApiError::internal(error));
                }
            }
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
                national_id_index: hex::decode(&index_hex).map_err(ApiError::internal)?,
                member_id,
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
            hukou_org_unit_code: org_unit.as_str().to_owned(),
            sealed_address: self
                .seal(state, &household_id, "address", request.address.as_bytes())
                .await?,
            members: sealed_members,
            assets: request.assets,
            sealed_payment_account: self
                .seal(state, &household_id, "payment_account", &account_bytes)
                .await?,
        });
        let member_ids = match &registered {
            HouseholdEvent::Registered(message) => message
                .members
                .iter()
                .map(|member| member.member_id.clone())
                .collect(),
            _ => Vec::new(),
        };
        let appended = self
            .append(
                state,
                &household_id,
                ExpectedVersion::NoStream,
                caller,
                &request.command_id,
                vec![event(&household_case(&household_id), &registered)],
            )
            .await;
        match appended {
            Ok(outcome) => Ok(pb::RegisterHouseholdResponse {
                household_id,
                version: outcome.last_version,
                member_ids,
            }),
            Err(error) => {
                self.release(state, &claimed, &household_id).await;
                Err(error)
            }
        }
    }

    async fn release(&self, state: &IntakeState, claimed: &[String], household_id: &str) {
        for index_hex in claimed {
            if let Err(error) =
                read_model::release_person(state.log.store.pool(), index_hex, household_id).await
            {
                tracing::warn!(%error, "could not release a person claim");
            }
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
        check_household_id(&mut errors, &request.household_id);
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
        if request.declared_facts.len() > validation::MAX_ITEMS {
            errors.push(
                "declared_facts",
                format!("at most {} items", validation::MAX_ITEMS),
            );
        }
        for (key, value) in &request.declared_facts {
            check_text(
                &mut errors,
                &format!("declared_facts.{key}"),
                value,
                false,
                validation::MAX_REASON_CHARS,
            );
        }
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
        }
        errors.into_result()?;
        let Some(program) = program else {
            return Err(ApiError::invalid_field("program_code", "required"));
        };

        let household = self.load(state, &request.household_id).await?;
        let hukou =
            OrgUnitCode::parse(&household.hukou_org_unit_code).map_err(ApiError::internal)?;
        // One window: the caller's service point accepts for households in its scope.
        caller.require_org_scope(&hukou)?;
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
        let (route, department_code) = match program.channel {
            Channel::DistrictCenter => (pb::Route::Review, String::new()),
            Channel::Emergency => (pb::Route::Emergency, String::new()),
            Channel::DepartmentRoutine => (
                pb::Route::Department,
                program.departments.first().cloned().unwrap_or_default(),
            ),
        };
        let assist_first_cap = if route == pb::Route::Emergency {
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
                    // Filled from the registry by the recusal fix (issue 9, item 11).
                    official_subject: String::new(),
                });
            events.push(event(&case_id, &flagged));
        }
        let outcome = self
            .append(
                state,
                &household.household_id,
                ExpectedVersion::Exact(household.version),
                caller,
                &request.command_id,
                events,
            )
            .await?;
        // A retried command answers with the first append's application.
        let first = outcome
            .events
            .first()
            .and_then(|stored| pb::ApplicationSubmitted::decode(stored.payload.as_slice()).ok())
            .ok_or_else(|| {
                ApiError::internal(std::io::Error::other("append returned no application"))
            })?;
        Ok(pb::SubmitApplicationResponse {
            application_id: first.application_id,
            case_id: first.case_id,
            route: first.route,
            department_code: first.department_code,
            assist_first_cap,
            relative_of_official: first.relative_of_official,
        })
    }

    async fn change_household(
        &self,
        caller: &Identity,
        command_id: &str,
        household_id: &str,
        expected_version: u64,
        build: impl FnOnce(&HouseholdState) -> Result<HouseholdEvent, ApiError>,
    ) -> Result<u64, ApiError> {
        let state = self.state()?;
        let household = self.load(state, household_id).await?;
        let hukou =
            OrgUnitCode::parse(&household.hukou_org_unit_code).map_err(ApiError::internal)?;
        caller.require_org_scope(&hukou)?;
        if household.version != expected_version {
            return Err(ApiError::Conflict(format!(
                "household {household_id} is at version {}, not {expected_version}: someone changed it first; reload and retry",
                household.version
            )));
        }
        let change = build(&household)?;
        let outcome = self
            .append(
                state,
                household_id,
                ExpectedVersion::Exact(expected_version),
                caller,
                command_id,
                vec![event(&household_case(household_id), &change)],
            )
            .await?;
        Ok(outcome.last_version)
    }

    async fn get_household(
        &self,
        caller: &Identity,
        request: pb::GetHouseholdRequest,
    ) -> Result<pb::Household, ApiError> {
        caller.require_role(READERS)?;
        let mut errors = ValidationErrors::default();
        check_household_id(&mut errors, &request.household_id);
        if request.reveal_personal_data {
            check_text(
                &mut errors,
                "purpose",
                &request.purpose,
                true,
                validation::MAX_TEXT_CHARS,
            );
        }
        errors.into_result()?;
        if request.reveal_personal_data {
            caller.require_role(REVEALERS)?;
        }
        let state = self.state()?;
        let household = self.load(state, &request.household_id).await?;
        let hukou =
            OrgUnitCode::parse(&household.hukou_org_unit_code).map_err(ApiError::internal)?;
        caller.require_org_scope(&hukou)?;
        let reveal = request.reveal_personal_data;
        let id = &household.household_id;

        // The read itself is on the record, before anything is shown.
        let fields = vec!["members".into(), "address".into(), "payment_account".into()];
        self.record_access(state, caller, id, reveal, &request.purpose, fields)
            .await?;

        let mut members = Vec::with_capacity(household.members.len());
        for member in &household.members {
            let member_id = &member.sealed.member_id;
            let name = self
                .open(
                    state,
                    id,
                    &format!("{member_id}/name"),
                    &member.sealed.sealed_name,
                )
                .await?;
            let national_id = self
                .open(
                    state,
                    id,
                    &format!("{member_id}/national_id"),
                    &member.sealed.sealed_national_id,
                )
                .await?;
            let phone = self
                .open(
                    state,
                    id,
                    &format!("{member_id}/phone"),
                    &member.sealed.sealed_phone,
                )
                .await?;
            let (name, national_id, phone) = if reveal {
                (name, national_id, phone)
            } else {
                let masked_id = sunshine_domain::NationalId::parse(&national_id)
                    .map(|parsed| parsed.masked())
                    .unwrap_or_default();
                (
                    masking::mask_name(&name),
                    masked_id,
                    masking::mask_phone(&phone),
                )
            };
            members.push(pb::Member {
                member_id: member_id.clone(),
                name,
                national_id,
                relation: member.sealed.relation,
                sex: member.sealed.sex,
                birth_date: member.sealed.birth_date,
                hukou_type: member.sealed.hukou_type,
                phone,
                alive: member.alive,
                date_of_death: member.date_of_death,
                monthly_income: member.sealed.monthly_income.clone(),
                disability_grade: member.sealed.disability_grade,
                labour_capacity: member.sealed.labour_capacity,
            });
        }
        let address = self
            .open(state, id, "address", &household.sealed_address)
            .await?;
        let account_text = self
            .open_bytes(
                state,
                id,
                "payment_account",
                &household.sealed_payment_account,
            )
            .await?
            .unwrap_or_default();
        let mut payment_account = pb::PaymentAccount::decode(account_text.as_slice()).ok();
        if !reveal && let Some(account) = payment_account.as_mut() {
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
            address: if reveal {
                address
            } else {
                masking::mask_address(&address)
            },
            version: household.version,
            members,
            assets: household.assets,
            payment_account,
            open_applications,
            revealed: reveal,
        })
    }

    /// Appends `PersonalDataAccessed` to the household's access stream.
    async fn record_access(
        &self,
        state: &IntakeState,
        caller: &Identity,
        household_id: &str,
        revealed: bool,
        purpose: &str,
        fields: Vec<String>,
    ) -> Result<(), ApiError> {
        let accessed = pb::PersonalDataAccessed {
            household_id: household_id.to_owned(),
            revealed,
            purpose: purpose.to_owned(),
            fields,
        };
        let stream = StreamId::new("intake", "access", household_id).map_err(ApiError::internal)?;
        let event = NewEvent::new(
            household_case(household_id),
            "sunshine.v1.PersonalDataAccessed",
            1,
            accessed.encode_to_vec(),
        );
        state
            .log
            .store
            .append(
                &stream,
                ExpectedVersion::Any,
                &metadata(caller, None),
                vec![event],
            )
            .await
            .map_err(store_error)?;
        Ok(())
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
        caller.require_role(CASEWORKERS)?;
        let message = request.into_inner();
        let mut errors = ValidationErrors::default();
        check_command_id(&mut errors, &message.command_id);
        check_household_id(&mut errors, &message.household_id);
        check_text(
            &mut errors,
            "reason",
            &message.reason,
            true,
            validation::MAX_REASON_CHARS,
        );
        for (index, income) in message.incomes.iter().enumerate() {
            validation::check_income(
                &mut errors,
                &format!("incomes[{index}].monthly_income"),
                &income.monthly_income,
            );
        }
        validation::check_assets(&mut errors, "assets", message.assets.as_ref());
        errors.into_result().map_err(ApiError::from)?;
        let version = self
            .change_household(
                &caller,
                &message.command_id,
                &message.household_id,
                message.expected_version,
                |household| {
                    for (index, income) in message.incomes.iter().enumerate() {
                        household
                            .require_living_member(
                                &format!("incomes[{index}].member_id"),
                                &income.member_id,
                            )
                            .map_err(household_error)?;
                    }
                    Ok(HouseholdEvent::CircumstanceChanged(
                        pb::CircumstanceChanged {
                            household_id: message.household_id.clone(),
                            incomes: message.incomes.clone(),
                            assets: message.assets,
                            reason: message.reason.clone(),
                        },
                    ))
                },
            )
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
        caller.require_role(CASEWORKERS)?;
        let message = request.into_inner();
        let mut errors = ValidationErrors::default();
        check_command_id(&mut errors, &message.command_id);
        check_household_id(&mut errors, &message.household_id);
        check_text(
            &mut errors,
            "reason",
            &message.reason,
            true,
            validation::MAX_REASON_CHARS,
        );
        match sunshine_proto::dates::to_date(message.date_of_death.as_ref()) {
            None => errors.push("date_of_death", "required, a calendar date"),
            Some(date) if date > self.today() => {
                errors.push("date_of_death", "must not be in the future")
            }
            Some(_) => {}
        }
        errors.into_result().map_err(ApiError::from)?;
        let version = self
            .change_household(
                &caller,
                &message.command_id,
                &message.household_id,
                message.expected_version,
                |household| {
                    household
                        .require_living_member("member_id", &message.member_id)
                        .map_err(household_error)?;
                    Ok(HouseholdEvent::MemberDied(pb::MemberDied {
                        household_id: message.household_id.clone(),
                        member_id: message.member_id.clone(),
                        date_of_death: message.date_of_death,
                        reason: message.reason.clone(),
                    }))
                },
            )
            .await?;
        Ok(Response::new(pb::RecordDeathResponse { version }))
    }

    async fn record_move(
        &self,
        request: Request<pb::RecordMoveRequest>,
    ) -> Result<Response<pb::RecordMoveResponse>, Status> {
        let caller = identity(&request)?.clone();
        caller.require_role(CASEWORKERS)?;
        let message = request.into_inner();
        let mut errors = ValidationErrors::default();
        check_command_id(&mut errors, &message.command_id);
        check_household_id(&mut errors, &message.household_id);
        check_text(
            &mut errors,
            "reason",
            &message.reason,
            true,
            validation::MAX_REASON_CHARS,
        );
        check_text(
            &mut errors,
            "new_address",
            &message.new_address,
            true,
            validation::MAX_TEXT_CHARS,
        );
        let target = check_org_unit(
            &mut errors,
            "new_hukou_org_unit_code",
            &message.new_hukou_org_unit_code,
        );
        if let Some(code) = &target
            && code.tier() != OrgTier::VillageCommunity
        {
            errors.push(
                "new_hukou_org_unit_code",
                "a household is registered at a village or community",
            );
        }
        errors.into_result().map_err(ApiError::from)?;
        let state = self.state()?;
        let sealed_address = self
            .seal(
                state,
                &message.household_id,
                "address",
                message.new_address.as_bytes(),
            )
            .await?;
        let version = self
            .change_household(
                &caller,
                &message.command_id,
                &message.household_id,
                message.expected_version,
                |household| {
                    Ok(HouseholdEvent::Moved(pb::HouseholdMoved {
                        household_id: message.household_id.clone(),
                        from_org_unit_code: household.hukou_org_unit_code.clone(),
                        to_org_unit_code: message.new_hukou_org_unit_code.clone(),
                        sealed_address,
                        reason: message.reason.clone(),
                    }))
                },
            )
            .await?;
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
        // The registry is kept by the district center.
        caller.require_role(&[Role::CenterReviewer, Role::CenterApprover, Role::Admin])?;
        let message = request.into_inner();
        let state = self.state()?;
        let mut errors = ValidationErrors::default();
        check_command_id(&mut errors, &message.command_id);
        check_text(
            &mut errors,
            "official_subject",
            &message.official_subject,
            true,
            100,
        );
        check_text(
            &mut errors,
            "official_name",
            &message.official_name,
            true,
            validation::MAX_NAME_CHARS,
        );
        check_text(
            &mut errors,
            "official_position",
            &message.official_position,
            true,
            100,
        );
        check_org_unit(
            &mut errors,
            "official_org_unit_code",
            &message.official_org_unit_code,
        );
        let relative =
            sunshine_domain::NationalId::parse_as_of(&message.relative_national_id, self.today());
        if let Err(error) = &relative {
            errors.push("relative_national_id", error.to_string());
        }
        if !state
            .official_relations
            .iter()
            .any(|relation| relation == &message.relation)
        {
            errors.push(
                "relation",
                format!("one of: {}", state.official_relations.join(", ")),
            );
        }
        errors.into_result().map_err(ApiError::from)?;
        let relative = relative
            .map_err(|error| ApiError::invalid_field("relative_national_id", error.to_string()))?;
        let registration_id = uuid::Uuid::new_v5(
            &uuid::Uuid::NAMESPACE_OID,
            format!("sunshine/intake/official-relative/{}", message.command_id).as_bytes(),
        )
        .to_string();
        let sealed_official_name = state
            .log
            .keys
            .seal(
                &format!("official-{registration_id}"),
                message.official_name.as_bytes(),
                registration_id.as_bytes(),
            )
            .await
            .map_err(ApiError::internal)?;
        let registered = pb::OfficialRelativeRegistered {
            registration_id: registration_id.clone(),
            official_subject: message.official_subject.clone(),
            sealed_official_name,
            official_position: message.official_position.clone(),
            official_org_unit_code: message.official_org_unit_code.clone(),
            relative_index: state
                .log
                .blind_index(NATIONAL_ID_DOMAIN, relative.as_str())
                .to_vec(),
            relation: message.relation.clone(),
        };
        let stream =
            StreamId::new("intake", "official", &registration_id).map_err(ApiError::internal)?;
        state
            .log
            .store
            .append(
                &stream,
                ExpectedVersion::NoStream,
                &metadata(&caller, Some(&message.command_id)),
                vec![NewEvent::new(
                    "registry-official-relatives",
                    "sunshine.v1.OfficialRelativeRegistered",
                    1,
                    registered.encode_to_vec(),
                )],
            )
            .await
            .map_err(store_error)?;
        // Write-through, so the next application sees it; the projection writes it too.
        let mut connection = state
            .log
            .store
            .pool()
            .acquire()
            .await
            .map_err(ApiError::internal)?;
        read_model::record_official_relative(&mut connection, &registered)
            .await
            .map_err(ApiError::internal)?;
        Ok(Response::new(pb::RegisterOfficialRelativeResponse {
            registration_id,
        }))
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
        caller.require_role(READERS)?;
        let message = request.into_inner();
        let national_id = sunshine_domain::NationalId::parse(&message.national_id)
            .map_err(|error| ApiError::invalid_field("national_id", error.to_string()))?;
        let state = self.state()?;
        let index_hex = hex::encode(
            state
                .log
                .blind_index(NATIONAL_ID_DOMAIN, national_id.as_str()),
        );
        let found = read_model::find_person(state.log.store.pool(), &index_hex)
            .await
            .map_err(ApiError::internal)?;
        let Some((household_id, member_id)) = found else {
            return Err(ApiError::NotFound {
                what: "a household with this national id".into(),
            }
            .into());
        };
        let household = self.load(state, &household_id).await?;
        let hukou =
            OrgUnitCode::parse(&household.hukou_org_unit_code).map_err(ApiError::internal)?;
        caller.require_org_scope(&hukou)?;
        let fields = vec!["national_id".into()];
        self.record_access(
            state,
            &caller,
            &household_id,
            false,
            "lookup by national id",
            fields,
        )
        .await?;
        Ok(Response::new(pb::FindHouseholdResponse {
            household_id,
            member_id,
        }))
    }

    async fn list_applications(
        &self,
        request: Request<pb::ListApplicationsRequest>,
    ) -> Result<Response<pb::ListApplicationsResponse>, Status> {
        let caller = identity(&request)?.clone();
        caller.require_role(READERS)?;
        let message = request.into_inner();
        let state = self.state()?;
        let mut errors = ValidationErrors::default();
        let org_unit = if message.org_unit_code.is_empty() {
            Some(caller.org_unit.clone())
        } else {
            check_org_unit(&mut errors, "org_unit_code", &message.org_unit_code)
        };
        if !message.program_code.is_empty() && message.program_code.parse::<ProgramCode>().is_err()
        {
            errors.push("program_code", "not a program of the catalogue");
        }
        let page = message.page.unwrap_or_default();
        if !(0..=500).contains(&page.page_size) {
            errors.push("page.page_size", "from 0 (default 50) to 500");
        }
        if !page.page_token.is_empty() && uuid::Uuid::parse_str(&page.page_token).is_err() {
            errors.push("page.page_token", "not a token from a previous page");
        }
        errors.into_result().map_err(ApiError::from)?;
        let Some(org_unit) = org_unit else {
            return Err(ApiError::invalid_field("org_unit_code", "required").into());
        };
        caller.require_org_scope(&org_unit)?;
        let limit = if page.page_size == 0 {
            50
        } else {
            i64::from(page.page_size)
        };
        let query = ApplicationQuery {
            org_unit_prefix: org_unit.scope_prefix().to_owned(),
            program_code: (!message.program_code.is_empty()).then_some(message.program_code),
            status: (!message.status.is_empty()).then_some(message.status),
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
        Ok(Response::new(pb::ListApplicationsResponse {
            applications,
            page: Some(pb::PageResponse { next_page_token }),
        }))
    }
}
