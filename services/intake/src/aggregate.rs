//! The household aggregate's decisions: [`handle`] takes the household as its stream folds (or
//! none, for a registration) and a [`Command`], and answers the events to append or why not.
//! Pure: no I/O, no keys, no clock. What the household *is* — its events, its fold and the
//! checks about it — is `sunshine-household`'s; what may be done to it is decided here.
//!
//! The events come back with their sealed fields empty: the store seals the command's
//! personal data into them ([`Command::personal_data`]) only after this decision, so a refused
//! command never creates a data key.

use sunshine_household::{HouseholdError, HouseholdEvent, HouseholdState};
use sunshine_policy::{Channel, ReviewWorkflow};
use sunshine_proto::v1 as pb;

use crate::commands::{
    ChangeCircumstances, Command, CorrectDeathRecord, FlagRelative, MoveHousehold, RecordDeath,
    RegisterHousehold, SubmitApplication,
};

/// Why a command is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    #[error(transparent)]
    Household(#[from] HouseholdError),
    /// Recusal starts at the window: a registered official may not accept their relative's
    /// application (review recuses them from every later stage).
    #[error(
        "recusal: a registered official may not accept an application of their own relative's household"
    )]
    RecusedAtTheWindow,
    #[error("household {household_id} is already registered")]
    AlreadyRegistered { household_id: String },
    #[error("no household {household_id}")]
    NoHousehold { household_id: String },
}

/// Decides `command` on `household` (`None`: no stream yet).
pub fn handle(
    household: Option<&HouseholdState>,
    command: &Command,
) -> Result<Vec<HouseholdEvent>, CommandError> {
    match (household, command) {
        (None, Command::Register(register)) => Ok(register_household(register)),
        (Some(existing), Command::Register(_)) => Err(CommandError::AlreadyRegistered {
            household_id: existing.household_id.clone(),
        }),
        (None, command) => Err(CommandError::NoHousehold {
            household_id: command_household_id(command).to_owned(),
        }),
        (Some(household), Command::ChangeCircumstances(change)) => {
            change_circumstances(household, change)
        }
        (Some(household), Command::RecordDeath(death)) => record_death(household, death),
        (Some(household), Command::CorrectDeathRecord(correction)) => {
            correct_death_record(household, correction)
        }
        (Some(household), Command::Move(moved)) => Ok(move_household(household, moved)),
        (Some(household), Command::SubmitApplication(submission)) => {
            submit_application(household, submission)
        }
        (Some(household), Command::FlagRelative(flag)) => Ok(flag_relative(household, flag)),
    }
}

fn command_household_id(command: &Command) -> &str {
    match command {
        Command::Register(register) => &register.household_id,
        Command::ChangeCircumstances(change) => &change.household_id,
        Command::RecordDeath(death) => &death.household_id,
        Command::CorrectDeathRecord(correction) => &correction.household_id,
        Command::Move(moved) => &moved.household_id,
        Command::SubmitApplication(submission) => &submission.household_id,
        Command::FlagRelative(flag) => &flag.registration.registration_id,
    }
}

fn register_household(register: &RegisterHousehold) -> Vec<HouseholdEvent> {
    let members = register
        .members
        .iter()
        .map(|member| {
            let input = &member.input;
            pb::SealedMember {
                member_id: member.member_id.clone(),
                national_id_index: member.national_id_index.to_vec(),
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
                // Sealed by the store: name, resident id, phone.
                sealed_name: Vec::new(),
                sealed_national_id: Vec::new(),
                sealed_phone: Vec::new(),
            }
        })
        .collect();
    vec![HouseholdEvent::Registered(pb::HouseholdRegistered {
        household_id: register.household_id.clone(),
        hukou_org_unit_code: register.village.as_str().to_owned(),
        members,
        assets: register.assets,
        sealed_address: Vec::new(),
        sealed_payment_account: Vec::new(),
    })]
}

fn change_circumstances(
    household: &HouseholdState,
    change: &ChangeCircumstances,
) -> Result<Vec<HouseholdEvent>, CommandError> {
    for (index, income) in change.incomes.iter().enumerate() {
        household
            .require_living_member(&format!("incomes[{index}].member_id"), &income.member_id)?;
    }
    Ok(vec![HouseholdEvent::CircumstanceChanged(
        pb::CircumstanceChanged {
            household_id: household.household_id.clone(),
            incomes: change.incomes.clone(),
            assets: change.assets,
            reason: String::new(),
            sealed_reason: Vec::new(),
        },
    )])
}

fn record_death(
    household: &HouseholdState,
    death: &RecordDeath,
) -> Result<Vec<HouseholdEvent>, CommandError> {
    household.require_living_member("member_id", &death.member_id)?;
    // The member's id stays claimed by this household (see `read_model`).
    Ok(vec![HouseholdEvent::MemberDied(pb::MemberDied {
        household_id: household.household_id.clone(),
        member_id: death.member_id.clone(),
        date_of_death: Some(sunshine_proto::dates::from_date(death.date_of_death)),
        reason: String::new(),
        sealed_reason: Vec::new(),
    })])
}

fn correct_death_record(
    household: &HouseholdState,
    correction: &CorrectDeathRecord,
) -> Result<Vec<HouseholdEvent>, CommandError> {
    let member = household.require_deceased_member("member_id", &correction.member_id)?;
    Ok(vec![HouseholdEvent::DeathRecordCorrected(
        pb::DeathRecordCorrected {
            household_id: household.household_id.clone(),
            member_id: correction.member_id.clone(),
            recorded_date_of_death: member.date_of_death,
            sealed_reason: Vec::new(),
        },
    )])
}

/// Scope over the household where it is now was the store's check; the target is any village
/// of the district (parsing checked it).
fn move_household(household: &HouseholdState, moved: &MoveHousehold) -> Vec<HouseholdEvent> {
    vec![HouseholdEvent::Moved(pb::HouseholdMoved {
        household_id: household.household_id.clone(),
        from_org_unit_code: household.hukou_org_unit_code.clone(),
        to_org_unit_code: moved.to.as_str().to_owned(),
        sealed_address: Vec::new(),
        reason: String::new(),
        sealed_reason: Vec::new(),
    })]
}

fn workflow_name(workflow: ReviewWorkflow) -> &'static str {
    match workflow {
        ReviewWorkflow::MeansTestedReview => "means_tested_review",
        ReviewWorkflow::CenterReview => "center_review",
        ReviewWorkflow::EmergencyEvaluation => "emergency_evaluation",
        ReviewWorkflow::DepartmentRoutine => "department_routine",
    }
}

/// One window: the applicant lives, the program is not open or received already, the officer
/// at the window is not a registered official of the household; then the application goes the
/// catalogue's way (review, emergency or a department), with a flag for every relative of an
/// official among the living members.
fn submit_application(
    household: &HouseholdState,
    submission: &SubmitApplication,
) -> Result<Vec<HouseholdEvent>, CommandError> {
    household.require_living_member("applicant_member_id", &submission.applicant_member_id)?;
    let program = &submission.program;
    household.require_no_open_application(program.code.as_str())?;
    let flags = &submission.registered_relatives;
    if flags
        .iter()
        .any(|flag| flag.relative.official_subject == submission.window.officer_subject)
    {
        return Err(CommandError::RecusedAtTheWindow);
    }
    let (route, department_code) = match program.channel {
        Channel::DistrictCenter => (pb::Route::Review, String::new()),
        Channel::Emergency => (pb::Route::Emergency, String::new()),
        Channel::DepartmentRoutine => (
            pb::Route::Department,
            program.departments.first().cloned().unwrap_or_default(),
        ),
    };
    let mut events = vec![HouseholdEvent::ApplicationSubmitted(
        pb::ApplicationSubmitted {
            application_id: submission.application_id.clone(),
            case_id: submission.case_id.clone(),
            household_id: household.household_id.clone(),
            applicant_member_id: submission.applicant_member_id.clone(),
            program_code: program.code.as_str().to_owned(),
            channel: submission.channel as i32,
            accepted_org_unit_code: submission.window.service_point.as_str().to_owned(),
            route: route as i32,
            department_code,
            consent_to_verification: submission.consent_to_verification,
            notify_and_pledge_accepted: submission.notify_and_pledge_accepted,
            documents: submission.documents.clone(),
            sealed_declared_facts: Vec::new(),
            hukou_org_unit_code: household.hukou_org_unit_code.clone(),
            relative_of_official: !flags.is_empty(),
            review_workflow: workflow_name(program.workflow).to_owned(),
            accepted_on: Some(sunshine_proto::dates::from_date(
                submission.window.accepted_on,
            )),
        },
    )];
    for flag in flags {
        let relative = &flag.relative;
        events.push(HouseholdEvent::RelativeOfOfficialFlagged(
            pb::RelativeOfOfficialFlagged {
                application_id: submission.application_id.clone(),
                case_id: submission.case_id.clone(),
                household_id: household.household_id.clone(),
                member_id: flag.member_id.clone(),
                relation: relative.relation.clone(),
                registration_id: relative.registration_id.clone(),
                official_position: relative.official_position.clone(),
                official_org_unit_code: relative.official_org_unit_code.clone(),
                official_subject: relative.official_subject.clone(),
            },
        ));
    }
    Ok(events)
}

/// A relation registered after the relative applied: one flag per open application of the
/// household, while the relative lives (the store appends each under its own command id).
fn flag_relative(household: &HouseholdState, flag: &FlagRelative) -> Vec<HouseholdEvent> {
    let living = household
        .members
        .iter()
        .any(|member| member.alive && member.sealed.member_id == flag.member_id);
    if !living {
        return Vec::new();
    }
    let registered = &flag.registration;
    household
        .open_applications
        .values()
        .map(|open| {
            HouseholdEvent::RelativeOfOfficialFlagged(pb::RelativeOfOfficialFlagged {
                application_id: open.application_id.clone(),
                case_id: open.case_id.clone(),
                household_id: household.household_id.clone(),
                member_id: flag.member_id.clone(),
                relation: registered.relation.clone(),
                registration_id: registered.registration_id.clone(),
                official_position: registered.official_position.clone(),
                official_org_unit_code: registered.official_org_unit_code.clone(),
                official_subject: registered.official_subject.clone(),
            })
        })
        .collect()
}
