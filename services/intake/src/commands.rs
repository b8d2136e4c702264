//! Requests parsed into commands: named-field structs of checked, typed values, every bad
//! field of the request reported at once ([`validation`]), before anything is read or written.
//! Ids the command creates (household, members, application, case) are chosen here, so the
//! aggregate's decision is a pure function of the household and the command.
//!
//! Each command also lists its personal data ([`Command::personal_data`]): what the store
//! seals — with the household's key, under the field's [`SealedField`] path — into the events
//! the aggregate decided, once every check has passed.

use std::collections::BTreeMap;

use prost::Message as _;
use sunshine_domain::{NationalId, OrgTree, OrgUnitCode, ValidationErrors};
use sunshine_eventlog::crypto::BlindIndexKey;
use sunshine_household::SealedField;
use sunshine_platform::{ApiError, Identity};
use sunshine_policy::{Policy, Program, ProgramCode, ReviewWorkflow};
use sunshine_proto::v1 as pb;
use time::Date;

use crate::read_model::{self, OfficialRelative};
use crate::validation::{self, check_command_id, check_text, check_uuid};

/// What parsing needs besides the request: the district's tree, the catalogue, today, and the
/// keyed blind index of resident ids (a pure function of the service's key).
#[derive(Debug, Clone, Copy)]
pub struct Parsing<'a> {
    pub org_tree: &'a OrgTree,
    pub policy: &'a Policy,
    pub official_relations: &'a [String],
    pub today: Date,
    pub blind_index_key: &'a BlindIndexKey,
}

/// A command on a household's stream, decided by [`crate::aggregate::handle`].
#[derive(Debug, Clone)]
pub enum Command {
    Register(RegisterHousehold),
    ChangeCircumstances(ChangeCircumstances),
    RecordDeath(RecordDeath),
    CorrectDeathRecord(CorrectDeathRecord),
    Move(MoveHousehold),
    // household composition
    AddMember(AddMember),
    RemoveMember(RemoveMember),
    SubmitApplication(SubmitApplication),
    FlagRelative(FlagRelative),
}

/// A person's datum to seal into the decided events: where it goes, and its plaintext.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersonalDatum {
    pub field: SealedField,
    pub plaintext: Vec<u8>,
}

fn datum(field: SealedField, plaintext: impl Into<Vec<u8>>) -> PersonalDatum {
    PersonalDatum {
        field,
        plaintext: plaintext.into(),
    }
}

impl Command {
    /// The personal data the command's events carry sealed.
    pub fn personal_data(&self) -> Vec<PersonalDatum> {
        match self {
            Command::Register(register) => {
                let mut data = Vec::with_capacity(register.members.len() * 3 + 2);
                for member in &register.members {
                    let member_id = &member.member_id;
                    data.push(datum(
                        SealedField::MemberName {
                            member_id: member_id.clone(),
                        },
                        member.input.name.as_bytes(),
                    ));
                    data.push(datum(
                        SealedField::MemberNationalId {
                            member_id: member_id.clone(),
                        },
                        member.national_id.as_str().as_bytes(),
                    ));
                    data.push(datum(
                        SealedField::MemberPhone {
                            member_id: member_id.clone(),
                        },
                        member.input.phone.as_bytes(),
                    ));
                }
                data.push(datum(SealedField::Address, register.address.as_bytes()));
                let account = register
                    .payment_account
                    .as_ref()
                    .map(|account| account.encode_to_vec())
                    .unwrap_or_default();
                data.push(datum(SealedField::PaymentAccount, account));
                data
            }
            Command::ChangeCircumstances(change) => {
                vec![change_reason(change.expected_version, &change.reason)]
            }
            Command::RecordDeath(death) => {
                vec![change_reason(death.expected_version, &death.reason)]
            }
            Command::CorrectDeathRecord(correction) => {
                vec![change_reason(
                    correction.expected_version,
                    &correction.reason,
                )]
            }
            Command::Move(moved) => vec![
                datum(SealedField::Address, moved.new_address.as_bytes()),
                change_reason(moved.expected_version, &moved.reason),
            ],
            // household composition
            Command::AddMember(add) => {
                let member_id = &add.member.member_id;
                vec![
                    datum(
                        SealedField::MemberName {
                            member_id: member_id.clone(),
                        },
                        add.member.input.name.as_bytes(),
                    ),
                    datum(
                        SealedField::MemberNationalId {
                            member_id: member_id.clone(),
                        },
                        add.member.national_id.as_str().as_bytes(),
                    ),
                    datum(
                        SealedField::MemberPhone {
                            member_id: member_id.clone(),
                        },
                        add.member.input.phone.as_bytes(),
                    ),
                    change_reason(add.expected_version, &add.note),
                ]
            }
            Command::RemoveMember(remove) => {
                vec![change_reason(remove.expected_version, &remove.note)]
            }
            Command::SubmitApplication(submission) => vec![datum(
                SealedField::DeclaredFacts {
                    application_id: submission.application_id.clone(),
                },
                submission.declared_facts_json.clone(),
            )],
            Command::FlagRelative(_) => Vec::new(),
        }
    }
}

/// A change's reason is bound to the version its event will have: the one after the version
/// the caller saw (and the store checked).
fn change_reason(expected_version: u64, reason: &str) -> PersonalDatum {
    datum(
        SealedField::ChangeReason {
            version: expected_version + 1,
        },
        reason.as_bytes(),
    )
}

/// Household ids come from the command id, so a retried registration lands on the same stream.
pub fn household_id_for(command_id: &str) -> String {
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

/// `RegisterHousehold`: a new household at a village of the district.
#[derive(Debug, Clone)]
pub struct RegisterHousehold {
    pub household_id: String,
    pub village: OrgUnitCode,
    pub address: String,
    pub members: Vec<NewMember>,
    pub assets: Option<pb::Assets>,
    pub payment_account: Option<pb::PaymentAccount>,
}

/// A member of a registration, at `position` of the request.
#[derive(Debug, Clone)]
pub struct NewMember {
    pub position: usize,
    pub member_id: String,
    pub national_id: NationalId,
    /// The keyed blind index of the resident id: how the person index finds them.
    pub national_id_index: [u8; 32],
    /// The member as given (the clear facts go into the event as they are).
    pub input: pb::MemberInput,
}

impl RegisterHousehold {
    pub fn parse(
        request: &pb::RegisterHouseholdRequest,
        parsing: &Parsing<'_>,
    ) -> Result<Self, ApiError> {
        let mut errors = ValidationErrors::default();
        check_command_id(&mut errors, &request.command_id);
        let village = validation::check_village(
            &mut errors,
            parsing.org_tree,
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
        let members = validation::check_members(&mut errors, &request.members, parsing.today);
        validation::check_assets(&mut errors, "assets", request.assets.as_ref());
        validation::check_payment_account(&mut errors, request.payment_account.as_ref());
        errors.into_result()?;
        let Some(village) = village else {
            return Err(ApiError::invalid_field("hukou_org_unit_code", "required"));
        };
        let household_id = household_id_for(&request.command_id);
        let members = members
            .into_iter()
            .enumerate()
            .map(|(position, member)| NewMember {
                position,
                member_id: member_id_for(&household_id, position),
                national_id_index: read_model::national_id_index(
                    parsing.blind_index_key,
                    &member.national_id,
                ),
                national_id: member.national_id,
                input: member.input,
            })
            .collect();
        Ok(RegisterHousehold {
            household_id,
            village,
            address: request.address.clone(),
            members,
            assets: request.assets,
            payment_account: request.payment_account.clone(),
        })
    }
}

/// `RecordCircumstanceChange`: incomes and assets as they are now.
#[derive(Debug, Clone)]
pub struct ChangeCircumstances {
    pub household_id: String,
    pub expected_version: u64,
    pub incomes: Vec<pb::MemberIncome>,
    pub assets: Option<pb::Assets>,
    pub reason: String,
}

impl ChangeCircumstances {
    pub fn parse(request: &pb::RecordCircumstanceChangeRequest) -> Result<Self, ApiError> {
        let mut errors = ValidationErrors::default();
        check_command_id(&mut errors, &request.command_id);
        check_household_id(&mut errors, &request.household_id);
        check_reason(&mut errors, &request.reason);
        validation::check_member_incomes(&mut errors, &request.incomes);
        validation::check_assets(&mut errors, "assets", request.assets.as_ref());
        errors.into_result()?;
        Ok(ChangeCircumstances {
            household_id: request.household_id.clone(),
            expected_version: request.expected_version,
            incomes: request.incomes.clone(),
            assets: request.assets,
            reason: request.reason.clone(),
        })
    }
}

/// `RecordDeath`.
#[derive(Debug, Clone)]
pub struct RecordDeath {
    pub household_id: String,
    pub expected_version: u64,
    pub member_id: String,
    pub date_of_death: Date,
    pub reason: String,
}

impl RecordDeath {
    pub fn parse(request: &pb::RecordDeathRequest, today: Date) -> Result<Self, ApiError> {
        let mut errors = ValidationErrors::default();
        check_command_id(&mut errors, &request.command_id);
        check_household_id(&mut errors, &request.household_id);
        check_uuid(&mut errors, "member_id", &request.member_id, "a member id");
        check_reason(&mut errors, &request.reason);
        let date_of_death = sunshine_proto::dates::to_date(request.date_of_death.as_ref());
        match date_of_death {
            None => errors.push("date_of_death", "required, a calendar date"),
            Some(date) if date > today => errors.push("date_of_death", "must not be in the future"),
            Some(_) => {}
        }
        errors.into_result()?;
        let Some(date_of_death) = date_of_death else {
            return Err(ApiError::invalid_field(
                "date_of_death",
                "required, a calendar date",
            ));
        };
        Ok(RecordDeath {
            household_id: request.household_id.clone(),
            expected_version: request.expected_version,
            member_id: request.member_id.clone(),
            date_of_death,
            reason: request.reason.clone(),
        })
    }
}

/// `CorrectDeathRecord`: a death recorded in error is undone.
#[derive(Debug, Clone)]
pub struct CorrectDeathRecord {
    pub household_id: String,
    pub expected_version: u64,
    pub member_id: String,
    pub reason: String,
}

impl CorrectDeathRecord {
    pub fn parse(request: &pb::CorrectDeathRecordRequest) -> Result<Self, ApiError> {
        let mut errors = ValidationErrors::default();
        check_command_id(&mut errors, &request.command_id);
        check_household_id(&mut errors, &request.household_id);
        check_uuid(&mut errors, "member_id", &request.member_id, "a member id");
        check_reason(&mut errors, &request.reason);
        errors.into_result()?;
        Ok(CorrectDeathRecord {
            household_id: request.household_id.clone(),
            expected_version: request.expected_version,
            member_id: request.member_id.clone(),
            reason: request.reason.clone(),
        })
    }
}

/// `RecordMove`: the household's registered residence moves to another village.
#[derive(Debug, Clone)]
pub struct MoveHousehold {
    pub household_id: String,
    pub expected_version: u64,
    pub to: OrgUnitCode,
    pub new_address: String,
    pub reason: String,
}

impl MoveHousehold {
    pub fn parse(request: &pb::RecordMoveRequest, org_tree: &OrgTree) -> Result<Self, ApiError> {
        let mut errors = ValidationErrors::default();
        check_command_id(&mut errors, &request.command_id);
        check_household_id(&mut errors, &request.household_id);
        check_reason(&mut errors, &request.reason);
        check_text(
            &mut errors,
            "new_address",
            &request.new_address,
            true,
            validation::MAX_TEXT_CHARS,
        );
        let target = validation::check_village(
            &mut errors,
            org_tree,
            "new_hukou_org_unit_code",
            &request.new_hukou_org_unit_code,
        );
        errors.into_result()?;
        let Some(to) = target else {
            return Err(ApiError::invalid_field(
                "new_hukou_org_unit_code",
                "required",
            ));
        };
        Ok(MoveHousehold {
            household_id: request.household_id.clone(),
            expected_version: request.expected_version,
            to,
            new_address: request.new_address.clone(),
            reason: request.reason.clone(),
        })
    }
}

// ---- household composition ----

/// A joining member's id comes from the household and the command id, so a retry names the
/// same member (and a member id is never used twice).
fn joining_member_id_for(household_id: &str, command_id: &str) -> String {
    uuid::Uuid::new_v5(
        &uuid::Uuid::NAMESPACE_OID,
        format!("sunshine/intake/member/{household_id}/{command_id}").as_bytes(),
    )
    .to_string()
}

/// `AddHouseholdMember`: a person joins the household (never as its head).
#[derive(Debug, Clone)]
pub struct AddMember {
    pub household_id: String,
    pub expected_version: u64,
    /// At `position` 0: a refusal of the person names the field `member`.
    pub member: NewMember,
    pub reason: pb::JoinReason,
    pub note: String,
}

impl AddMember {
    pub fn parse(
        request: &pb::AddHouseholdMemberRequest,
        parsing: &Parsing<'_>,
    ) -> Result<Self, ApiError> {
        let mut errors = ValidationErrors::default();
        check_command_id(&mut errors, &request.command_id);
        check_household_id(&mut errors, &request.household_id);
        let member = match &request.member {
            None => {
                errors.push("member", "required");
                None
            }
            Some(member) => {
                if member.relation == pb::Relation::Head as i32 {
                    errors.push(
                        "member.relation",
                        "the household has its head; a joining member is related to the head",
                    );
                }
                validation::check_member(
                    &mut errors,
                    "member",
                    member,
                    parsing.today,
                    &mut std::collections::HashSet::new(),
                )
            }
        };
        let reason = match pb::JoinReason::try_from(request.reason) {
            Ok(pb::JoinReason::Unspecified) | Err(_) => {
                errors.push(
                    "reason",
                    "birth, marriage, moved in, or other (with a note)",
                );
                None
            }
            Ok(reason) => Some(reason),
        };
        check_note(
            &mut errors,
            &request.note,
            reason == Some(pb::JoinReason::Other),
        );
        errors.into_result()?;
        let (Some(member), Some(reason)) = (member, reason) else {
            return Err(ApiError::invalid_field("member", "required"));
        };
        let member_id = joining_member_id_for(&request.household_id, &request.command_id);
        Ok(AddMember {
            household_id: request.household_id.clone(),
            expected_version: request.expected_version,
            member: NewMember {
                position: 0,
                member_id,
                national_id_index: read_model::national_id_index(
                    parsing.blind_index_key,
                    &member.national_id,
                ),
                national_id: member.national_id,
                input: member.input,
            },
            reason,
            note: request.note.clone(),
        })
    }
}

/// `RemoveHouseholdMember`: a living member other than the head leaves.
#[derive(Debug, Clone)]
pub struct RemoveMember {
    pub household_id: String,
    pub expected_version: u64,
    pub member_id: String,
    pub reason: pb::LeaveReason,
    pub effective_date: Date,
    pub note: String,
}

impl RemoveMember {
    pub fn parse(
        request: &pb::RemoveHouseholdMemberRequest,
        today: Date,
    ) -> Result<Self, ApiError> {
        let mut errors = ValidationErrors::default();
        check_command_id(&mut errors, &request.command_id);
        check_household_id(&mut errors, &request.household_id);
        check_uuid(&mut errors, "member_id", &request.member_id, "a member id");
        let reason = match pb::LeaveReason::try_from(request.reason) {
            Ok(pb::LeaveReason::Unspecified) | Err(_) => {
                errors.push("reason", "moved out, married out, or other (with a note)");
                None
            }
            Ok(reason) => Some(reason),
        };
        check_note(
            &mut errors,
            &request.note,
            reason == Some(pb::LeaveReason::Other),
        );
        let effective_date = sunshine_proto::dates::to_date(request.effective_date.as_ref());
        match effective_date {
            None => errors.push("effective_date", "required, a calendar date"),
            Some(date) if date > today => {
                errors.push("effective_date", "must not be in the future")
            }
            Some(_) => {}
        }
        errors.into_result()?;
        let (Some(reason), Some(effective_date)) = (reason, effective_date) else {
            return Err(ApiError::invalid_field(
                "effective_date",
                "required, a calendar date",
            ));
        };
        Ok(RemoveMember {
            household_id: request.household_id.clone(),
            expected_version: request.expected_version,
            member_id: request.member_id.clone(),
            reason,
            effective_date,
            note: request.note.clone(),
        })
    }
}

/// A join's or leave's note: required for "other".
fn check_note(errors: &mut ValidationErrors, note: &str, required: bool) {
    check_text(errors, "note", note, required, validation::MAX_REASON_CHARS);
}

// ---- end of household composition ----

/// The officer accepting at the window (受理): who, and the service point.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    pub officer_subject: String,
    pub service_point: OrgUnitCode,
    pub accepted_on: Date,
}

/// `SubmitApplication`: an application accepted at the caller's window.
#[derive(Debug, Clone)]
pub struct SubmitApplication {
    pub household_id: String,
    pub application_id: String,
    pub case_id: String,
    pub applicant_member_id: String,
    pub program: Program,
    pub channel: pb::ApplicationChannel,
    pub window: Window,
    pub consent_to_verification: bool,
    pub notify_and_pledge_accepted: bool,
    pub documents: Vec<pb::DocumentMetadata>,
    /// The declared facts as JSON, sealed into the application.
    pub declared_facts_json: Vec<u8>,
    /// The registry's officials whose relatives live in the household (a relation that must be
    /// registered): looked up by the store when it loads the household, since the registry is
    /// a table, not the stream.
    pub registered_relatives: Vec<RegisteredRelative>,
}

/// A living member of the household registered as an official's relative.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisteredRelative {
    pub member_id: String,
    pub relative: OfficialRelative,
}

impl SubmitApplication {
    pub fn parse(
        request: &pb::SubmitApplicationRequest,
        caller: &Identity,
        parsing: &Parsing<'_>,
    ) -> Result<Self, ApiError> {
        let mut errors = ValidationErrors::default();
        check_command_id(&mut errors, &request.command_id);
        check_household_id(&mut errors, &request.household_id);
        check_uuid(
            &mut errors,
            "applicant_member_id",
            &request.applicant_member_id,
            "a member id",
        );
        let program = match request.program_code.parse::<ProgramCode>() {
            Ok(code) => Some(parsing.policy.catalogue().program(code).clone()),
            Err(_) => {
                errors.push("program_code", "not a program of the catalogue");
                None
            }
        };
        let channel = match pb::ApplicationChannel::try_from(request.channel) {
            Ok(pb::ApplicationChannel::Unspecified) | Err(_) => {
                errors.push("channel", "in person, on behalf by the village, or online");
                None
            }
            Ok(channel) => Some(channel),
        };
        validation::check_declared_facts(&mut errors, &request.declared_facts);
        if !request.notify_and_pledge_accepted {
            errors.push(
                "notify_and_pledge_accepted",
                "the notify-and-pledge statement (告知承诺) must be signed",
            );
        }
        if let Some(program) = &program {
            if matches!(
                program.workflow,
                ReviewWorkflow::MeansTestedReview | ReviewWorkflow::ExtremePovertyReview
            ) && !request.consent_to_verification
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
        let Some(channel) = channel else {
            return Err(ApiError::invalid_field("channel", "required"));
        };
        let declared: &BTreeMap<String, String> = &request.declared_facts;
        let declared_facts_json = serde_json::to_vec(declared).map_err(ApiError::internal)?;
        Ok(SubmitApplication {
            household_id: request.household_id.clone(),
            application_id: uuid::Uuid::now_v7().to_string(),
            case_id: uuid::Uuid::now_v7().to_string(),
            applicant_member_id: request.applicant_member_id.clone(),
            program,
            channel,
            window: Window {
                officer_subject: caller.subject.clone(),
                service_point: caller.org_unit.clone(),
                accepted_on: parsing.today,
            },
            consent_to_verification: request.consent_to_verification,
            notify_and_pledge_accepted: request.notify_and_pledge_accepted,
            documents: request.documents.clone(),
            declared_facts_json,
            registered_relatives: Vec::new(),
        })
    }
}

/// Flag the open applications of a newly registered official's relative (`member_id` of the
/// household the person index names).
#[derive(Debug, Clone)]
pub struct FlagRelative {
    pub household_id: String,
    pub registration: pb::OfficialRelativeRegistered,
    pub member_id: String,
}

/// `RegisterOfficialRelative`: a row of the registry of officials' relatives (近亲属备案), on
/// its own stream (`intake-official-<registration id>`).
#[derive(Debug, Clone)]
pub struct RegisterOfficialRelative {
    pub registration_id: String,
    pub official_subject: String,
    pub official_name: String,
    pub official_position: String,
    pub official_org_unit: OrgUnitCode,
    pub relative_index: Vec<u8>,
    pub relation: String,
}

impl RegisterOfficialRelative {
    pub fn parse(
        request: &pb::RegisterOfficialRelativeRequest,
        parsing: &Parsing<'_>,
    ) -> Result<Self, ApiError> {
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
            parsing.org_tree,
            "official_org_unit_code",
            &request.official_org_unit_code,
        );
        let relative = NationalId::parse_as_of(&request.relative_national_id, parsing.today);
        if let Err(error) = &relative {
            errors.push("relative_national_id", error.to_string());
        }
        if !parsing
            .official_relations
            .iter()
            .any(|relation| relation == &request.relation)
        {
            errors.push(
                "relation",
                format!("one of: {}", parsing.official_relations.join(", ")),
            );
        }
        errors.into_result()?;
        let relative = relative
            .map_err(|error| ApiError::invalid_field("relative_national_id", error.to_string()))?;
        let Some(official_org_unit) = official_org_unit else {
            return Err(ApiError::invalid_field(
                "official_org_unit_code",
                "required",
            ));
        };
        let registration_id = uuid::Uuid::new_v5(
            &uuid::Uuid::NAMESPACE_OID,
            format!("sunshine/intake/official-relative/{}", request.command_id).as_bytes(),
        )
        .to_string();
        Ok(RegisterOfficialRelative {
            registration_id,
            official_subject: request.official_subject.clone(),
            official_name: request.official_name.clone(),
            official_position: request.official_position.clone(),
            official_org_unit,
            relative_index: read_model::national_id_index(parsing.blind_index_key, &relative)
                .to_vec(),
            relation: request.relation.clone(),
        })
    }
}

fn check_household_id(errors: &mut ValidationErrors, household_id: &str) {
    check_uuid(errors, "household_id", household_id, "a household id");
}

fn check_reason(errors: &mut ValidationErrors, reason: &str) {
    check_text(errors, "reason", reason, true, validation::MAX_REASON_CHARS);
}
