//! `sunshine.v1.IntakeService`. Every RPC has the same shape, in this order:
//!
//! 1. **identity**: the verified caller and its role (`PERMISSION_DENIED` for a role the RPC
//!    never serves);
//! 2. **parse**: the request into a command ([`crate::commands`]), every bad field at once;
//!    nothing is read or written before;
//! 3. **load** ([`IntakeStore`]): a retry — the same command id and request digest — is
//!    answered from its first append; the household **in the caller's scope** (outside it, it
//!    reads exactly like a household that does not exist, and the attempt is recorded), at the
//!    version the caller saw;
//! 4. **decide** ([`aggregate::handle`]): pure, the events or why not;
//! 5. **append** ([`IntakeStore`]): seal the command's personal data into the events (the
//!    first write), append with the expected version and the request's digest; guard rows (the
//!    person index, the relatives registry) commit in the append's transaction;
//! 6. **answer** from the append's outcome (the first one, for a retry).
//!
//! Reads take steps 1–3 and answer; each read of personal data counts against the officer's
//! hourly quota and is itself an access event. Errors become statuses through `ApiError` only
//! ([`crate::errors`]).

use std::sync::{Arc, OnceLock};

use prost::Message as _;
use sunshine_domain::{OrgTree, ValidationErrors};
use sunshine_eventlog::{AppendOutcome, ExpectedVersion, GuardedAppend, request_digest};
use sunshine_household::{HouseholdEvent, SealedField};
use sunshine_platform::{ApiError, Identity, Role};
use sunshine_policy::{Policy, ProgramCode};
use sunshine_proto::events::StreamEvent as _;
use sunshine_proto::v1 as pb;
use sunshine_proto::v1::intake_service_server::IntakeService;

use crate::access::{self, Reveal};
use crate::aggregate;
use crate::commands::{
    AddMember, ChangeCircumstances, Command, CorrectDeathRecord, FlagRelative, MoveHousehold,
    Parsing, RecordDeath, RegisterHousehold, RegisterOfficialRelative, RemoveMember,
    SubmitApplication,
};
use crate::errors::person_not_found;
use crate::masking;
use crate::read_model::{self, ApplicationQuery};
use crate::store::{IntakeStore, Loaded, command_metadata, covers};
use crate::streams::{OfficialEvent, official_stream};
use crate::validation::{self, check_text, check_uuid};

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
pub(crate) mod rpc {
    pub const REGISTER_HOUSEHOLD: &str = "RegisterHousehold";
    pub const RECORD_CIRCUMSTANCE_CHANGE: &str = "RecordCircumstanceChange";
    pub const RECORD_DEATH: &str = "RecordDeath";
    pub const CORRECT_DEATH_RECORD: &str = "CorrectDeathRecord";
    pub const RECORD_MOVE: &str = "RecordMove";
    pub const ADD_HOUSEHOLD_MEMBER: &str = "AddHouseholdMember";
    pub const REMOVE_HOUSEHOLD_MEMBER: &str = "RemoveHouseholdMember";
    pub const SUBMIT_APPLICATION: &str = "SubmitApplication";
    pub const GET_HOUSEHOLD: &str = "GetHousehold";
    pub const FIND_HOUSEHOLD: &str = "FindHousehold";
}

/// What the handlers share once the service is connected.
#[derive(Debug, Clone)]
pub struct IntakeState {
    pub store: IntakeStore,
    pub policy: Arc<Policy>,
    pub clock: Arc<dyn sunshine_platform::clock::Clock>,
    /// The district's org tree: every org-unit input must be one of its units.
    pub org_tree: Arc<OrgTree>,
}

impl IntakeState {
    /// The district's date today.
    fn today(&self) -> time::Date {
        self.clock.today()
    }

    fn parsing(&self) -> Parsing<'_> {
        Parsing {
            org_tree: &self.org_tree,
            policy: &self.policy,
            official_relations: self.store.official_relations(),
            today: self.today(),
            blind_index_key: self.store.blind_index_key(),
        }
    }
}

/// The gRPC service; answers `UNAVAILABLE` until the log is ready.
#[derive(Debug, Clone)]
pub struct IntakeApi {
    pub state: Arc<OnceLock<IntakeState>>,
}

/// The first event of an append, as the household's: what every answer is built from.
fn first_event(outcome: &AppendOutcome) -> Option<HouseholdEvent> {
    let stored = outcome.events.first()?;
    HouseholdEvent::decode(&stored.event_type, &stored.payload).ok()
}

/// An append that did not record what its command records: a bug, never the caller's doing.
fn missing(what: &'static str) -> ApiError {
    ApiError::internal(std::io::Error::other(what))
}

/// The answer to a registration, from its append (the first one, for a retry).
fn registration_answer(outcome: &AppendOutcome) -> Result<pb::RegisterHouseholdResponse, ApiError> {
    let Some(HouseholdEvent::Registered(registered)) = first_event(outcome) else {
        return Err(missing("append returned no registration"));
    };
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

/// The answer to a member joining, from its append (the first one, for a retry).
fn joining_answer(outcome: &AppendOutcome) -> Result<pb::AddHouseholdMemberResponse, ApiError> {
    let Some(HouseholdEvent::MemberJoined(joined)) = first_event(outcome) else {
        return Err(missing("append returned no member joining"));
    };
    Ok(pb::AddHouseholdMemberResponse {
        member_id: joined
            .member
            .map(|member| member.member_id)
            .unwrap_or_default(),
        version: outcome.last_version,
    })
}

/// The answer to a submission, from its append (the first one, for a retry): everything from
/// the recorded `ApplicationSubmitted`, and an emergency's assist-first cap as the policy has
/// it on the recorded day of acceptance — never as of today, so a retry after the cap changed
/// still gets the first answer.
fn submission_answer(
    policy: &Policy,
    outcome: &AppendOutcome,
) -> Result<pb::SubmitApplicationResponse, ApiError> {
    let Some(HouseholdEvent::ApplicationSubmitted(first)) = first_event(outcome) else {
        return Err(missing("append returned no application"));
    };
    let assist_first_cap = if first.route == pb::Route::Emergency as i32 {
        let accepted_on = sunshine_proto::dates::to_date(first.accepted_on.as_ref())
            .ok_or_else(|| missing("a recorded application without its day of acceptance"))?;
        let resolved = policy.resolve(accepted_on).map_err(ApiError::internal)?;
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

impl IntakeApi {
    fn connected(&self) -> Result<&IntakeState, ApiError> {
        self.state
            .get()
            .ok_or_else(|| ApiError::Unavailable("intake is still starting".into()))
    }

    /// Steps 3–6 of a command on an existing household's registry (changes, deaths,
    /// corrections, moves): answers the household's new version.
    async fn change_household(
        &self,
        caller: &Identity,
        metadata: sunshine_eventlog::EventMetadata,
        command: Command,
        expected_version: u64,
        household_id: &str,
        rpc: &'static str,
    ) -> Result<u64, ApiError> {
        let intake = self.connected()?;
        let household = match intake
            .store
            .load_for_change(caller, &metadata, household_id, expected_version, rpc)
            .await?
        {
            Loaded::Retried(previous) => return Ok(previous.last_version),
            Loaded::Current(household) => household,
        };
        let events = aggregate::handle(Some(&household), &command)?;
        let outcome = intake
            .store
            .append(
                &metadata,
                &household.household_id,
                ExpectedVersion::Exact(household.version),
                events,
                command.personal_data(),
            )
            .await?;
        Ok(outcome.last_version)
    }

    async fn register_household(
        &self,
        caller: &Identity,
        request: pb::RegisterHouseholdRequest,
    ) -> Result<pb::RegisterHouseholdResponse, ApiError> {
        caller.require_role(CASEWORKERS)?;
        let intake = self.connected()?;
        let register = RegisterHousehold::parse(&request, &intake.parsing())?;
        caller.require_org_scope(&register.village)?;
        let metadata = command_metadata(caller, &request.command_id, request_digest(&request));
        if let Some(previous) = intake
            .store
            .household_retry(&register.household_id, &metadata)
            .await?
        {
            return registration_answer(&previous);
        }
        // A person belongs to one household: every claim is checked before anything is
        // written, and made by the append's guard in the append's own transaction.
        let claims = intake
            .store
            .claims_for(caller, &register, rpc::REGISTER_HOUSEHOLD)
            .await?;
        let command = Command::Register(register);
        let events = aggregate::handle(None, &command)?;
        let outcome = intake
            .store
            .append_registration(
                caller,
                &metadata,
                &claims,
                events,
                command.personal_data(),
                rpc::REGISTER_HOUSEHOLD,
            )
            .await?;
        registration_answer(&outcome)
    }

    async fn record_circumstance_change(
        &self,
        caller: &Identity,
        request: pb::RecordCircumstanceChangeRequest,
    ) -> Result<pb::RecordCircumstanceChangeResponse, ApiError> {
        caller.require_role(CASEWORKERS)?;
        self.connected()?;
        let change = ChangeCircumstances::parse(&request)?;
        let metadata = command_metadata(caller, &request.command_id, request_digest(&request));
        let version = self
            .change_household(
                caller,
                metadata,
                Command::ChangeCircumstances(change),
                request.expected_version,
                &request.household_id,
                rpc::RECORD_CIRCUMSTANCE_CHANGE,
            )
            .await?;
        Ok(pb::RecordCircumstanceChangeResponse { version })
    }

    async fn record_death(
        &self,
        caller: &Identity,
        request: pb::RecordDeathRequest,
    ) -> Result<pb::RecordDeathResponse, ApiError> {
        caller.require_role(CASEWORKERS)?;
        let intake = self.connected()?;
        let death = RecordDeath::parse(&request, intake.today())?;
        let metadata = command_metadata(caller, &request.command_id, request_digest(&request));
        let version = self
            .change_household(
                caller,
                metadata,
                Command::RecordDeath(death),
                request.expected_version,
                &request.household_id,
                rpc::RECORD_DEATH,
            )
            .await?;
        Ok(pb::RecordDeathResponse { version })
    }

    async fn correct_death_record(
        &self,
        caller: &Identity,
        request: pb::CorrectDeathRecordRequest,
    ) -> Result<pb::CorrectDeathRecordResponse, ApiError> {
        caller.require_role(DEATH_CORRECTORS)?;
        self.connected()?;
        let correction = CorrectDeathRecord::parse(&request)?;
        let metadata = command_metadata(caller, &request.command_id, request_digest(&request));
        let version = self
            .change_household(
                caller,
                metadata,
                Command::CorrectDeathRecord(correction),
                request.expected_version,
                &request.household_id,
                rpc::CORRECT_DEATH_RECORD,
            )
            .await?;
        Ok(pb::CorrectDeathRecordResponse { version })
    }

    async fn record_move(
        &self,
        caller: &Identity,
        request: pb::RecordMoveRequest,
    ) -> Result<pb::RecordMoveResponse, ApiError> {
        caller.require_role(CASEWORKERS)?;
        let intake = self.connected()?;
        let moved = MoveHousehold::parse(&request, &intake.org_tree)?;
        let metadata = command_metadata(caller, &request.command_id, request_digest(&request));
        // Scope over the household where it is now; the target is any village of the district.
        let version = self
            .change_household(
                caller,
                metadata,
                Command::Move(moved),
                request.expected_version,
                &request.household_id,
                rpc::RECORD_MOVE,
            )
            .await?;
        Ok(pb::RecordMoveResponse { version })
    }

    // ---- household composition ----

    async fn add_household_member(
        &self,
        caller: &Identity,
        request: pb::AddHouseholdMemberRequest,
    ) -> Result<pb::AddHouseholdMemberResponse, ApiError> {
        caller.require_role(CASEWORKERS)?;
        let intake = self.connected()?;
        let add = AddMember::parse(&request, &intake.parsing())?;
        let metadata = command_metadata(caller, &request.command_id, request_digest(&request));
        let household = match intake
            .store
            .load_for_change(
                caller,
                &metadata,
                &add.household_id,
                add.expected_version,
                rpc::ADD_HOUSEHOLD_MEMBER,
            )
            .await?
        {
            Loaded::Retried(previous) => return joining_answer(&previous),
            Loaded::Current(household) => household,
        };
        // A person belongs to one household: checked before anything is written, and claimed
        // by the append's guard in the append's own transaction.
        let claims = intake
            .store
            .claim_for_joining(caller, &add, rpc::ADD_HOUSEHOLD_MEMBER)
            .await?;
        let command = Command::AddMember(add);
        let events = aggregate::handle(Some(&household), &command)?;
        match intake
            .store
            .append_joining(
                &metadata,
                ExpectedVersion::Exact(household.version),
                &claims,
                events,
                command.personal_data(),
            )
            .await?
        {
            GuardedAppend::Appended(outcome) => joining_answer(&outcome),
            GuardedAppend::Refused(refusal) => Err(intake
                .store
                .claim_refused_as(caller, refusal, "member".into(), rpc::ADD_HOUSEHOLD_MEMBER)
                .await),
        }
    }

    async fn remove_household_member(
        &self,
        caller: &Identity,
        request: pb::RemoveHouseholdMemberRequest,
    ) -> Result<pb::RemoveHouseholdMemberResponse, ApiError> {
        caller.require_role(CASEWORKERS)?;
        let intake = self.connected()?;
        let remove = RemoveMember::parse(&request, intake.today())?;
        let metadata = command_metadata(caller, &request.command_id, request_digest(&request));
        let household = match intake
            .store
            .load_for_change(
                caller,
                &metadata,
                &remove.household_id,
                remove.expected_version,
                rpc::REMOVE_HOUSEHOLD_MEMBER,
            )
            .await?
        {
            Loaded::Retried(previous) => {
                return Ok(pb::RemoveHouseholdMemberResponse {
                    version: previous.last_version,
                });
            }
            Loaded::Current(household) => household,
        };
        let command = Command::RemoveMember(remove);
        let events = aggregate::handle(Some(&household), &command)?;
        let outcome = intake
            .store
            .append_leaving(
                &metadata,
                &household.household_id,
                ExpectedVersion::Exact(household.version),
                events,
                command.personal_data(),
            )
            .await?;
        Ok(pb::RemoveHouseholdMemberResponse {
            version: outcome.last_version,
        })
    }

    // ---- end of household composition ----

    async fn submit_application(
        &self,
        caller: &Identity,
        request: pb::SubmitApplicationRequest,
    ) -> Result<pb::SubmitApplicationResponse, ApiError> {
        caller.require_role(CASEWORKERS)?;
        let intake = self.connected()?;
        let mut submission = SubmitApplication::parse(&request, caller, &intake.parsing())?;
        let metadata = command_metadata(caller, &request.command_id, request_digest(&request));
        if let Some(previous) = intake
            .store
            .household_retry(&submission.household_id, &metadata)
            .await?
        {
            return submission_answer(&intake.policy, &previous);
        }
        // One window: the caller's service point accepts for households in its scope.
        let household = intake
            .store
            .household_in_scope(caller, &submission.household_id, rpc::SUBMIT_APPLICATION)
            .await?;
        submission.registered_relatives = intake.store.registered_relatives(&household).await?;
        let command = Command::SubmitApplication(submission);
        let events = aggregate::handle(Some(&household), &command)?;
        let outcome = intake
            .store
            .append(
                &metadata,
                &household.household_id,
                ExpectedVersion::Exact(household.version),
                events,
                command.personal_data(),
            )
            .await?;
        submission_answer(&intake.policy, &outcome)
    }

    async fn register_official_relative(
        &self,
        caller: &Identity,
        request: pb::RegisterOfficialRelativeRequest,
    ) -> Result<pb::RegisterOfficialRelativeResponse, ApiError> {
        caller.require_role(REGISTRY_KEEPERS)?;
        let intake = self.connected()?;
        let registration = RegisterOfficialRelative::parse(&request, &intake.parsing())?;
        // A registry keeper registers officials of its own org scope (the org tree is public:
        // refusing names no household).
        caller.require_org_scope(&registration.official_org_unit)?;
        let registration_id = registration.registration_id.clone();
        let stream = official_stream(&registration_id)?;
        let metadata = command_metadata(caller, &request.command_id, request_digest(&request));
        if let Some(previous) = intake.store.previous_outcome(&stream, &metadata).await? {
            // The retry also finishes flagging cases the first call may not have reached.
            if let Some(first) = previous.events.first() {
                let OfficialEvent::RelativeRegistered(registered) =
                    OfficialEvent::decode(&first.event_type, &first.payload)
                        .map_err(ApiError::internal)?;
                self.flag_open_applications(intake, caller, &registered)
                    .await?;
            }
            return Ok(pb::RegisterOfficialRelativeResponse { registration_id });
        }
        let registered = pb::OfficialRelativeRegistered {
            registration_id: registration.registration_id,
            official_subject: registration.official_subject,
            sealed_official_name: Vec::new(),
            official_position: registration.official_position,
            official_org_unit_code: request.official_org_unit_code.clone(),
            relative_index: registration.relative_index,
            relation: registration.relation,
        };
        let registered = intake
            .store
            .append_official(&metadata, registered, &registration.official_name)
            .await?;
        self.flag_open_applications(intake, caller, &registered)
            .await?;
        Ok(pb::RegisterOfficialRelativeResponse { registration_id })
    }

    /// A relation registered after the relative applied: every open application of the
    /// relative's household is flagged now (review recuses the official when it hears it), each
    /// with a command id of its own so a retry flags nothing twice.
    async fn flag_open_applications(
        &self,
        intake: &IntakeState,
        caller: &Identity,
        registered: &pb::OfficialRelativeRegistered,
    ) -> Result<(), ApiError> {
        let index_hex = hex::encode(&registered.relative_index);
        let Some((household_id, member_id)) =
            read_model::find_person(intake.store.pool(), &index_hex)
                .await
                .map_err(ApiError::internal)?
        else {
            return Ok(());
        };
        let command = Command::FlagRelative(FlagRelative {
            household_id: household_id.clone(),
            registration: registered.clone(),
            member_id,
        });
        // One append per open application; another clerk may change the household meanwhile:
        // reload and try again, up to a few times in a row.
        let mut conflicts_in_a_row = 0;
        while conflicts_in_a_row < 8 {
            let Some(household) = intake.store.load(&household_id).await? else {
                return Ok(());
            };
            let mut pending = None;
            for flag in aggregate::handle(Some(&household), &command)? {
                let HouseholdEvent::RelativeOfOfficialFlagged(flagged) = &flag else {
                    continue;
                };
                let command_id = format!("flag/{}/{}", registered.registration_id, flagged.case_id);
                let metadata = command_metadata(caller, &command_id, request_digest(flagged));
                if intake
                    .store
                    .household_retry(&household_id, &metadata)
                    .await?
                    .is_none()
                {
                    pending = Some((metadata, flag));
                    break;
                }
            }
            let Some((metadata, flag)) = pending else {
                return Ok(());
            };
            let appended = intake
                .store
                .append(
                    &metadata,
                    &household_id,
                    ExpectedVersion::Exact(household.version),
                    vec![flag],
                    Vec::new(),
                )
                .await;
            match appended {
                // Flagged one; go round for the next (the household's version moved on).
                Ok(_) => conflicts_in_a_row = 0,
                Err(ApiError::Conflict(_)) => conflicts_in_a_row += 1,
                Err(error) => return Err(error),
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
    ) -> Result<pb::GetHouseholdResponse, ApiError> {
        caller.require_role(READERS)?;
        let intake = self.connected()?;
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
        let store = &intake.store;
        store
            .count_personal_data_read(caller, rpc::GET_HOUSEHOLD)
            .await?;
        let household = store
            .household_in_scope(caller, &request.household_id, rpc::GET_HOUSEHOLD)
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
        store
            .record_access(caller, accessed, &request.purpose)
            .await?;

        let mut members = Vec::with_capacity(household.members.len());
        for member in &household.members {
            let member_id = member.sealed.member_id.clone();
            let opened = masking::OpenedMember {
                name: store
                    .open(
                        id,
                        &SealedField::MemberName {
                            member_id: member_id.clone(),
                        },
                        &member.sealed.sealed_name,
                    )
                    .await?,
                national_id: store
                    .open(
                        id,
                        &SealedField::MemberNationalId {
                            member_id: member_id.clone(),
                        },
                        &member.sealed.sealed_national_id,
                    )
                    .await?,
                phone: store
                    .open(
                        id,
                        &SealedField::MemberPhone { member_id },
                        &member.sealed.sealed_phone,
                    )
                    .await?,
            };
            members.push(masking::member_view(member, opened, reveal));
        }
        let address = store
            .open(id, &SealedField::Address, &household.sealed_address)
            .await?;
        let account_bytes = store
            .open_bytes(
                id,
                &SealedField::PaymentAccount,
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
        Ok(pb::GetHouseholdResponse {
            household: Some(pb::Household {
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
            }),
        })
    }

    async fn find_household(
        &self,
        caller: &Identity,
        request: pb::FindHouseholdRequest,
    ) -> Result<pb::FindHouseholdResponse, ApiError> {
        caller.require_role(READERS)?;
        let intake = self.connected()?;
        let national_id = sunshine_domain::NationalId::parse(&request.national_id)
            .map_err(|error| ApiError::invalid_field("national_id", error.to_string()))?;
        let store = &intake.store;
        store
            .count_personal_data_read(caller, rpc::FIND_HOUSEHOLD)
            .await?;
        let index_hex = hex::encode(store.national_id_index(&national_id));
        let found = read_model::find_person(store.pool(), &index_hex)
            .await
            .map_err(ApiError::internal)?;
        let Some((household_id, member_id)) = found else {
            return Err(person_not_found());
        };
        let Some(household) = store.load(&household_id).await? else {
            return Err(person_not_found());
        };
        if !covers(caller, &household)? {
            store
                .record_out_of_scope(caller, &household_id, rpc::FIND_HOUSEHOLD)
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
        store.record_access(caller, accessed, "").await?;
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
        let intake = self.connected()?;
        let mut errors = ValidationErrors::default();
        let org_unit = if request.org_unit_code.is_empty() {
            Some(caller.org_unit.clone())
        } else {
            validation::check_org_unit(
                &mut errors,
                &intake.org_tree,
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
        let mut applications = read_model::list_applications(intake.store.pool(), &query)
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
}

// Every RPC: the verified caller, then the handler, then the answer (or the error's status).
sunshine_platform::service_rpcs! {
    IntakeService for IntakeApi {
        register_household: pb::RegisterHouseholdRequest => pb::RegisterHouseholdResponse;
        record_circumstance_change: pb::RecordCircumstanceChangeRequest => pb::RecordCircumstanceChangeResponse;
        record_death: pb::RecordDeathRequest => pb::RecordDeathResponse;
        correct_death_record: pb::CorrectDeathRecordRequest => pb::CorrectDeathRecordResponse;
        record_move: pb::RecordMoveRequest => pb::RecordMoveResponse;
        // household composition
        add_household_member: pb::AddHouseholdMemberRequest => pb::AddHouseholdMemberResponse;
        remove_household_member: pb::RemoveHouseholdMemberRequest => pb::RemoveHouseholdMemberResponse;
        submit_application: pb::SubmitApplicationRequest => pb::SubmitApplicationResponse;
        register_official_relative: pb::RegisterOfficialRelativeRequest => pb::RegisterOfficialRelativeResponse;
        get_household: pb::GetHouseholdRequest => pb::GetHouseholdResponse;
        find_household: pb::FindHouseholdRequest => pb::FindHouseholdResponse;
        list_applications: pb::ListApplicationsRequest => pb::ListApplicationsResponse;
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use prost::Message as _;
    use sunshine_eventlog::RecordedEvent;
    use sunshine_policy::{Policy, PolicySource};
    use sunshine_proto::events::Event;

    use super::*;

    /// The example district's policy, with the assist-first cap lowered to 1500.00 yuan from
    /// 2026-09-10.
    fn policy_lowering_the_cap() -> Policy {
        let mut sources = sunshine_policy::example_district_sources();
        let temporary: &mut PolicySource = sources
            .iter_mut()
            .find(|source| source.file_name == "temporary.toml")
            .unwrap();
        let cap = "assist_first_cap = [\n    { from = 2024-01-01, value = \"2000.00\" },\n";
        assert!(temporary.text.contains(cap));
        temporary.text = temporary.text.replace(
            cap,
            &format!("{cap}    {{ from = 2026-09-10, value = \"1500.00\" }},\n"),
        );
        Policy::from_sources(sources).unwrap()
    }

    fn recorded(submitted: &pb::ApplicationSubmitted) -> AppendOutcome {
        AppendOutcome {
            stream_id: format!("intake-household-{}", submitted.household_id),
            first_version: 2,
            last_version: 2,
            events: vec![RecordedEvent {
                sequence: 7,
                log_position: None,
                event_id: uuid::Uuid::now_v7(),
                stream_id: format!("intake-household-{}", submitted.household_id),
                stream_version: 2,
                case_id: submitted.case_id.clone(),
                event_type: <pb::ApplicationSubmitted as Event>::TYPE.to_owned(),
                schema_version: 1,
                payload: submitted.encode_to_vec(),
                metadata_json: "{}".into(),
                occurred_at_us: 0,
                recorded_at_us: 0,
                previous_hash: [0; 32],
                hash: [0; 32],
            }],
            deduplicated: true,
        }
    }

    fn emergency(accepted_on: pb::Date) -> pb::ApplicationSubmitted {
        pb::ApplicationSubmitted {
            application_id: "app-1".into(),
            case_id: "case-1".into(),
            household_id: "0190f3c4-0000-7000-8000-0000000000aa".into(),
            program_code: "temporary".into(),
            route: pb::Route::Emergency as i32,
            accepted_on: Some(accepted_on),
            ..Default::default()
        }
    }

    #[test]
    fn a_submission_is_answered_with_the_cap_of_its_day_of_acceptance() {
        let policy = policy_lowering_the_cap();
        let before = submission_answer(
            &policy,
            &recorded(&emergency(pb::Date {
                year: 2026,
                month: 9,
                day: 9,
            })),
        )
        .unwrap();
        assert_eq!(
            before,
            pb::SubmitApplicationResponse {
                application_id: "app-1".into(),
                case_id: "case-1".into(),
                route: pb::Route::Emergency as i32,
                department_code: String::new(),
                assist_first_cap: Some(pb::Money { fen: 200_000 }),
                relative_of_official: false,
            }
        );
        let after = submission_answer(
            &policy,
            &recorded(&emergency(pb::Date {
                year: 2026,
                month: 9,
                day: 10,
            })),
        )
        .unwrap();
        assert_eq!(after.assist_first_cap, Some(pb::Money { fen: 150_000 }));
        // Not an emergency: no cap to tell.
        let routine = pb::ApplicationSubmitted {
            route: pb::Route::Review as i32,
            ..emergency(pb::Date {
                year: 2026,
                month: 9,
                day: 9,
            })
        };
        assert_eq!(
            submission_answer(&policy, &recorded(&routine))
                .unwrap()
                .assist_first_cap,
            None
        );
    }
}
