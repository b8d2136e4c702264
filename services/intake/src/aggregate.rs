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
    AddMember, ChangeCircumstances, Command, CorrectDeathRecord, FlagRelative, MoveHousehold,
    NewMember, RecordDeath, RegisterHousehold, RemoveMember, SubmitApplication,
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
    // household composition
    /// The joining person is a member of this household already (alive or recorded dead).
    #[error("member: already a member of this household ({member_id})")]
    AlreadyAMember { member_id: String },
    /// The head stays: another member cannot be named head by this RPC.
    #[error("member_id: the head of household cannot leave it")]
    HeadCannotLeave,
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
        (Some(household), Command::AddMember(add)) => add_member(household, add),
        (Some(household), Command::RemoveMember(remove)) => remove_member(household, remove),
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
        Command::AddMember(add) => &add.household_id,
        Command::RemoveMember(remove) => &remove.household_id,
        Command::SubmitApplication(submission) => &submission.household_id,
        Command::FlagRelative(flag) => &flag.household_id,
    }
}

/// A member as events carry it: the clear facts as given, the personal fields empty until the
/// store seals them.
fn sealed_member(member: &NewMember) -> pb::SealedMember {
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
}

fn register_household(register: &RegisterHousehold) -> Vec<HouseholdEvent> {
    let members = register.members.iter().map(sealed_member).collect();
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

// ---- household composition ----

/// A person joins: not one of the household already (the person index holds them to one
/// household; the store checked the others before and its guard claims them in the append).
fn add_member(
    household: &HouseholdState,
    add: &AddMember,
) -> Result<Vec<HouseholdEvent>, CommandError> {
    let index = add.member.national_id_index.as_slice();
    if let Some(existing) = household
        .members
        .iter()
        .find(|member| member.sealed.national_id_index == index)
    {
        return Err(CommandError::AlreadyAMember {
            member_id: existing.sealed.member_id.clone(),
        });
    }
    Ok(vec![HouseholdEvent::MemberJoined(pb::MemberJoined {
        household_id: household.household_id.clone(),
        member: Some(sealed_member(&add.member)),
        reason: add.reason as i32,
        sealed_note: Vec::new(),
    })])
}

/// A living member other than the head leaves; their claim goes with the event.
fn remove_member(
    household: &HouseholdState,
    remove: &RemoveMember,
) -> Result<Vec<HouseholdEvent>, CommandError> {
    let member = household.require_living_member("member_id", &remove.member_id)?;
    if member.sealed.relation == pb::Relation::Head as i32 {
        return Err(CommandError::HeadCannotLeave);
    }
    Ok(vec![HouseholdEvent::MemberLeft(pb::MemberLeft {
        household_id: household.household_id.clone(),
        member_id: remove.member_id.clone(),
        reason: remove.reason as i32,
        effective_date: Some(sunshine_proto::dates::from_date(remove.effective_date)),
        sealed_note: Vec::new(),
        national_id_index: member.sealed.national_id_index.clone(),
    })])
}

// ---- end of household composition ----

fn workflow_name(workflow: ReviewWorkflow) -> &'static str {
    match workflow {
        ReviewWorkflow::MeansTestedReview => "means_tested_review",
        ReviewWorkflow::ExtremePovertyReview => "extreme_poverty_review",
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
        // Flagged already (at the window, or by this registration before): once is enough.
        .filter(|open| {
            !open
                .flagged_registrations
                .contains(&registered.registration_id)
        })
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

/// Given/When/Then, as cqrs-es tests an aggregate: given the household's past events, when a
/// command, then exactly these events (or this refusal). No I/O.
#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use sunshine_domain::{NationalId, OrgUnitCode};
    use sunshine_household::SealedField;
    use sunshine_policy::{Policy, ProgramCode};
    use time::macros::date;

    use super::*;
    use crate::commands::{AddMember, NewMember, RegisteredRelative, RemoveMember, Window};
    use crate::read_model::OfficialRelative;

    const HOUSEHOLD: &str = "0190f3c4-0000-7000-8000-0000000000aa";
    const VILLAGE: &str = "990101001001";

    struct Given(Option<HouseholdState>);

    fn given(events: Vec<HouseholdEvent>) -> Given {
        let numbered = events
            .into_iter()
            .enumerate()
            .map(|(index, event)| (event, index as u64 + 1, index as i64 * 10));
        Given(HouseholdState::fold(numbered))
    }

    fn given_no_household() -> Given {
        Given(None)
    }

    impl Given {
        fn when(self, command: Command) -> Then {
            let decided = handle(self.0.as_ref(), &command);
            Then { command, decided }
        }
    }

    struct Then {
        command: Command,
        decided: Result<Vec<HouseholdEvent>, CommandError>,
    }

    impl Then {
        fn then_expect_events(self, expected: Vec<HouseholdEvent>) -> Self {
            assert_eq!(self.decided.as_ref().unwrap(), &expected);
            self
        }

        fn then_expect_error(self, expected: CommandError) {
            assert_eq!(self.decided.unwrap_err(), expected);
        }

        /// Every personal datum of the command has exactly one place in the decided events,
        /// and that place is empty until the store seals into it.
        fn and_every_personal_datum_has_its_slot(self) {
            let mut events = self.decided.unwrap();
            for datum in self.command.personal_data() {
                let slots: Vec<&mut Vec<u8>> = events
                    .iter_mut()
                    .filter_map(|event| datum.field.slot_in(event))
                    .collect();
                assert_eq!(slots.len(), 1, "{:?}", datum.field);
                assert!(
                    slots[0].is_empty(),
                    "{:?} filled before sealing",
                    datum.field
                );
            }
        }
    }

    fn member(id: &str, relation: pb::Relation) -> pb::SealedMember {
        pb::SealedMember {
            member_id: id.into(),
            relation: relation as i32,
            ..Default::default()
        }
    }

    fn registered() -> HouseholdEvent {
        HouseholdEvent::Registered(pb::HouseholdRegistered {
            household_id: HOUSEHOLD.into(),
            hukou_org_unit_code: VILLAGE.into(),
            members: vec![
                member("m1", pb::Relation::Head),
                member("m2", pb::Relation::Spouse),
            ],
            ..Default::default()
        })
    }

    fn died(member_id: &str) -> HouseholdEvent {
        HouseholdEvent::MemberDied(pb::MemberDied {
            household_id: HOUSEHOLD.into(),
            member_id: member_id.into(),
            date_of_death: Some(pb::Date {
                year: 2026,
                month: 10,
                day: 1,
            }),
            ..Default::default()
        })
    }

    fn program(code: &str) -> sunshine_policy::Program {
        let policy = Policy::example_district().unwrap();
        policy
            .catalogue()
            .program(code.parse::<ProgramCode>().unwrap())
            .clone()
    }

    fn submission(program_code: &str, officer: &str) -> SubmitApplication {
        SubmitApplication {
            household_id: HOUSEHOLD.into(),
            application_id: "app-1".into(),
            case_id: "case-1".into(),
            applicant_member_id: "m1".into(),
            program: program(program_code),
            channel: pb::ApplicationChannel::InPerson,
            window: Window {
                officer_subject: officer.into(),
                service_point: OrgUnitCode::parse(VILLAGE).unwrap(),
                accepted_on: date!(2026 - 11 - 02),
            },
            consent_to_verification: true,
            notify_and_pledge_accepted: true,
            documents: Vec::new(),
            declared_facts_json: b"{}".to_vec(),
            registered_relatives: Vec::new(),
        }
    }

    fn submitted(
        program_code: &str,
        route: pb::Route,
        department: &str,
    ) -> pb::ApplicationSubmitted {
        let workflow = match route {
            pb::Route::Review => "means_tested_review",
            pb::Route::Emergency => "emergency_evaluation",
            _ => "department_routine",
        };
        pb::ApplicationSubmitted {
            application_id: "app-1".into(),
            case_id: "case-1".into(),
            household_id: HOUSEHOLD.into(),
            applicant_member_id: "m1".into(),
            program_code: program_code.into(),
            channel: pb::ApplicationChannel::InPerson as i32,
            accepted_org_unit_code: VILLAGE.into(),
            route: route as i32,
            department_code: department.into(),
            consent_to_verification: true,
            notify_and_pledge_accepted: true,
            hukou_org_unit_code: VILLAGE.into(),
            review_workflow: workflow.into(),
            accepted_on: Some(pb::Date {
                year: 2026,
                month: 11,
                day: 2,
            }),
            ..Default::default()
        }
    }

    fn official(subject: &str) -> RegisteredRelative {
        RegisteredRelative {
            member_id: "m2".into(),
            relative: OfficialRelative {
                registration_id: "reg-1".into(),
                official_subject: subject.into(),
                relation: "spouse".into(),
                official_position: "村主任".into(),
                official_org_unit_code: VILLAGE.into(),
            },
        }
    }

    #[test]
    fn given_no_household_when_registering_then_it_is_registered_with_its_personal_data_to_seal() {
        let national_id = NationalId::parse("11010519491231002X").unwrap();
        let input = pb::MemberInput {
            name: "张三".into(),
            national_id: national_id.as_str().into(),
            relation: pb::Relation::Head as i32,
            hukou_type: pb::HukouType::Rural as i32,
            phone: "13800000000".into(),
            ..Default::default()
        };
        let register = RegisterHousehold {
            household_id: HOUSEHOLD.into(),
            village: OrgUnitCode::parse(VILLAGE).unwrap(),
            address: "一组 3 号".into(),
            members: vec![NewMember {
                position: 0,
                member_id: "m1".into(),
                national_id,
                national_id_index: [9; 32],
                input,
            }],
            assets: None,
            payment_account: None,
        };
        given_no_household()
            .when(Command::Register(register))
            .then_expect_events(vec![HouseholdEvent::Registered(pb::HouseholdRegistered {
                household_id: HOUSEHOLD.into(),
                hukou_org_unit_code: VILLAGE.into(),
                members: vec![pb::SealedMember {
                    member_id: "m1".into(),
                    national_id_index: vec![9; 32],
                    relation: pb::Relation::Head as i32,
                    hukou_type: pb::HukouType::Rural as i32,
                    ..Default::default()
                }],
                ..Default::default()
            })])
            .and_every_personal_datum_has_its_slot();
    }

    #[test]
    fn given_a_household_when_a_member_dies_then_the_death_is_recorded_with_its_reason_to_seal() {
        given(vec![registered()])
            .when(Command::RecordDeath(RecordDeath {
                household_id: HOUSEHOLD.into(),
                expected_version: 1,
                member_id: "m2".into(),
                date_of_death: date!(2026 - 10 - 01),
                reason: "死亡证明".into(),
            }))
            .then_expect_events(vec![died("m2")])
            .and_every_personal_datum_has_its_slot();
    }

    #[test]
    fn given_a_death_when_recording_it_again_or_for_a_stranger_then_the_member_is_named() {
        let death = |member_id: &str| {
            Command::RecordDeath(RecordDeath {
                household_id: HOUSEHOLD.into(),
                expected_version: 2,
                member_id: member_id.into(),
                date_of_death: date!(2026 - 10 - 01),
                reason: "x".into(),
            })
        };
        given(vec![registered(), died("m2")])
            .when(death("m2"))
            .then_expect_error(CommandError::Household(HouseholdError::MemberDead {
                field: "member_id".into(),
                member_id: "m2".into(),
            }));
        given(vec![registered()])
            .when(death("m9"))
            .then_expect_error(CommandError::Household(HouseholdError::UnknownMember {
                field: "member_id".into(),
                member_id: "m9".into(),
            }));
    }

    #[test]
    fn given_a_death_recorded_in_error_when_corrected_then_the_recorded_date_is_kept() {
        let correction = |member_id: &str| {
            Command::CorrectDeathRecord(CorrectDeathRecord {
                household_id: HOUSEHOLD.into(),
                expected_version: 2,
                member_id: member_id.into(),
                reason: "登记错误".into(),
            })
        };
        given(vec![registered(), died("m2")])
            .when(correction("m2"))
            .then_expect_events(vec![HouseholdEvent::DeathRecordCorrected(
                pb::DeathRecordCorrected {
                    household_id: HOUSEHOLD.into(),
                    member_id: "m2".into(),
                    recorded_date_of_death: Some(pb::Date {
                        year: 2026,
                        month: 10,
                        day: 1,
                    }),
                    sealed_reason: Vec::new(),
                },
            )])
            .and_every_personal_datum_has_its_slot();
        given(vec![registered(), died("m2")])
            .when(correction("m1"))
            .then_expect_error(CommandError::Household(HouseholdError::MemberAlive {
                field: "member_id".into(),
                member_id: "m1".into(),
            }));
    }

    #[test]
    fn given_a_death_when_circumstances_change_for_the_dead_then_the_income_entry_is_named() {
        let change = Command::ChangeCircumstances(ChangeCircumstances {
            household_id: HOUSEHOLD.into(),
            expected_version: 2,
            incomes: vec![
                pb::MemberIncome {
                    member_id: "m1".into(),
                    ..Default::default()
                },
                pb::MemberIncome {
                    member_id: "m2".into(),
                    ..Default::default()
                },
            ],
            assets: None,
            reason: "x".into(),
        });
        given(vec![registered(), died("m2")])
            .when(change)
            .then_expect_error(CommandError::Household(HouseholdError::MemberDead {
                field: "incomes[1].member_id".into(),
                member_id: "m2".into(),
            }));
    }

    #[test]
    fn given_a_household_when_it_moves_then_the_move_names_both_villages() {
        given(vec![registered()])
            .when(Command::Move(MoveHousehold {
                household_id: HOUSEHOLD.into(),
                expected_version: 1,
                to: OrgUnitCode::parse("990101002001").unwrap(),
                new_address: "二组 8 号".into(),
                reason: "迁入".into(),
            }))
            .then_expect_events(vec![HouseholdEvent::Moved(pb::HouseholdMoved {
                household_id: HOUSEHOLD.into(),
                from_org_unit_code: VILLAGE.into(),
                to_org_unit_code: "990101002001".into(),
                ..Default::default()
            })])
            .and_every_personal_datum_has_its_slot();
    }

    #[test]
    fn given_a_household_when_applying_then_the_catalogue_routes_the_application() {
        for (code, route, department) in [
            ("dibao_rural", pb::Route::Review, ""),
            ("temporary", pb::Route::Emergency, ""),
            (
                "old_age_subsidy",
                pb::Route::Department,
                "hr_social_security",
            ),
        ] {
            given(vec![registered()])
                .when(Command::SubmitApplication(submission(code, "clerk-1")))
                .then_expect_events(vec![HouseholdEvent::ApplicationSubmitted(submitted(
                    code, route, department,
                ))])
                .and_every_personal_datum_has_its_slot();
        }
    }

    #[test]
    fn given_an_open_application_when_applying_again_then_the_open_case_is_named() {
        let open = HouseholdEvent::ApplicationSubmitted(pb::ApplicationSubmitted {
            case_id: "case-0".into(),
            program_code: "dibao_rural".into(),
            ..submitted("dibao_rural", pb::Route::Review, "")
        });
        given(vec![registered(), open])
            .when(Command::SubmitApplication(submission(
                "dibao_rural",
                "clerk-1",
            )))
            .then_expect_error(CommandError::Household(HouseholdError::ApplicationOpen {
                program_code: "dibao_rural".into(),
                case_id: "case-0".into(),
            }));
    }

    #[test]
    fn given_an_officials_relative_when_applying_then_the_application_is_flagged() {
        let mut flagged_submission = submission("dibao_rural", "clerk-1");
        flagged_submission.registered_relatives = vec![official("cadre-1")];
        given(vec![registered()])
            .when(Command::SubmitApplication(flagged_submission))
            .then_expect_events(vec![
                HouseholdEvent::ApplicationSubmitted(pb::ApplicationSubmitted {
                    relative_of_official: true,
                    ..submitted("dibao_rural", pb::Route::Review, "")
                }),
                HouseholdEvent::RelativeOfOfficialFlagged(pb::RelativeOfOfficialFlagged {
                    application_id: "app-1".into(),
                    case_id: "case-1".into(),
                    household_id: HOUSEHOLD.into(),
                    member_id: "m2".into(),
                    relation: "spouse".into(),
                    registration_id: "reg-1".into(),
                    official_position: "村主任".into(),
                    official_org_unit_code: VILLAGE.into(),
                    official_subject: "cadre-1".into(),
                }),
            ])
            .and_every_personal_datum_has_its_slot();
    }

    #[test]
    fn given_an_officials_relative_when_the_official_accepts_at_the_window_then_recusal() {
        let mut own_relative = submission("dibao_rural", "cadre-1");
        own_relative.registered_relatives = vec![official("cadre-1")];
        given(vec![registered()])
            .when(Command::SubmitApplication(own_relative))
            .then_expect_error(CommandError::RecusedAtTheWindow);
    }

    #[test]
    fn given_open_applications_when_a_relation_is_registered_later_then_each_is_flagged_once() {
        let open = |program_code: &str, case_id: &str| {
            HouseholdEvent::ApplicationSubmitted(pb::ApplicationSubmitted {
                application_id: format!("app-{case_id}"),
                case_id: case_id.into(),
                program_code: program_code.into(),
                ..Default::default()
            })
        };
        let flag = |member_id: &str| {
            Command::FlagRelative(FlagRelative {
                household_id: HOUSEHOLD.into(),
                registration: pb::OfficialRelativeRegistered {
                    registration_id: "reg-1".into(),
                    official_subject: "cadre-1".into(),
                    relation: "spouse".into(),
                    ..Default::default()
                },
                member_id: member_id.into(),
            })
        };
        let flagged_for = |case_id: &str, registration_id: &str| {
            HouseholdEvent::RelativeOfOfficialFlagged(pb::RelativeOfOfficialFlagged {
                application_id: format!("app-{case_id}"),
                case_id: case_id.into(),
                household_id: HOUSEHOLD.into(),
                member_id: "m2".into(),
                relation: "spouse".into(),
                registration_id: registration_id.into(),
                official_subject: "cadre-1".into(),
                ..Default::default()
            })
        };
        let flagged = |case_id: &str| flagged_for(case_id, "reg-1");
        let history = || {
            vec![
                registered(),
                open("dibao_rural", "c-dibao"),
                open("temporary", "c-temporary"),
            ]
        };
        given(history())
            .when(flag("m2"))
            .then_expect_events(vec![flagged("c-dibao"), flagged("c-temporary")]);
        let mut after_death = history();
        after_death.push(died("m2"));
        given(after_death)
            .when(flag("m2"))
            .then_expect_events(Vec::new());
        // Flagged already — at the window, or by a first call the registration's retry
        // finishes — an application is not flagged again; the others still are.
        let mut flagged_at_the_window = history();
        flagged_at_the_window.push(flagged("c-dibao"));
        given(flagged_at_the_window)
            .when(flag("m2"))
            .then_expect_events(vec![flagged("c-temporary")]);
        let mut flagged_by_another_registration = history();
        flagged_by_another_registration.push(flagged_for("c-dibao", "reg-2"));
        given(flagged_by_another_registration)
            .when(flag("m2"))
            .then_expect_events(vec![flagged("c-dibao"), flagged("c-temporary")]);
    }

    // ---- household composition ----

    fn joining(index: u8, relation: pb::Relation) -> AddMember {
        let national_id = NationalId::parse("11010519491231002X").unwrap();
        AddMember {
            household_id: HOUSEHOLD.into(),
            expected_version: 1,
            member: NewMember {
                position: 0,
                member_id: "m3".into(),
                national_id: national_id.clone(),
                national_id_index: [index; 32],
                input: pb::MemberInput {
                    name: "李四".into(),
                    national_id: national_id.as_str().into(),
                    relation: relation as i32,
                    hukou_type: pb::HukouType::Rural as i32,
                    phone: "13900000000".into(),
                    ..Default::default()
                },
            },
            reason: pb::JoinReason::Marriage,
            note: "结婚登记".into(),
        }
    }

    fn leaving(member_id: &str) -> RemoveMember {
        RemoveMember {
            household_id: HOUSEHOLD.into(),
            expected_version: 1,
            member_id: member_id.into(),
            reason: pb::LeaveReason::MovedOut,
            effective_date: date!(2026 - 10 - 15),
            note: String::new(),
        }
    }

    fn registered_with_indexes() -> HouseholdEvent {
        HouseholdEvent::Registered(pb::HouseholdRegistered {
            household_id: HOUSEHOLD.into(),
            hukou_org_unit_code: VILLAGE.into(),
            members: vec![
                pb::SealedMember {
                    national_id_index: vec![1; 32],
                    ..member("m1", pb::Relation::Head)
                },
                pb::SealedMember {
                    national_id_index: vec![2; 32],
                    ..member("m2", pb::Relation::Spouse)
                },
            ],
            ..Default::default()
        })
    }

    #[test]
    fn given_a_household_when_a_person_joins_then_they_join_sealed_as_at_registration() {
        given(vec![registered_with_indexes()])
            .when(Command::AddMember(joining(9, pb::Relation::Spouse)))
            .then_expect_events(vec![HouseholdEvent::MemberJoined(pb::MemberJoined {
                household_id: HOUSEHOLD.into(),
                member: Some(pb::SealedMember {
                    member_id: "m3".into(),
                    national_id_index: vec![9; 32],
                    relation: pb::Relation::Spouse as i32,
                    hukou_type: pb::HukouType::Rural as i32,
                    ..Default::default()
                }),
                reason: pb::JoinReason::Marriage as i32,
                sealed_note: Vec::new(),
            })])
            .and_every_personal_datum_has_its_slot();
    }

    #[test]
    fn given_a_member_when_the_same_person_joins_again_then_the_member_is_named() {
        given(vec![registered_with_indexes()])
            .when(Command::AddMember(joining(2, pb::Relation::Child)))
            .then_expect_error(CommandError::AlreadyAMember {
                member_id: "m2".into(),
            });
        // Recorded dead here: still this household's.
        given(vec![registered_with_indexes(), died("m2")])
            .when(Command::AddMember(joining(2, pb::Relation::Child)))
            .then_expect_error(CommandError::AlreadyAMember {
                member_id: "m2".into(),
            });
    }

    #[test]
    fn given_a_joined_member_the_household_folds_them_in_and_out() {
        let joined = handle(
            HouseholdState::fold([(registered_with_indexes(), 1, 10)]).as_ref(),
            &Command::AddMember(joining(9, pb::Relation::Child)),
        )
        .unwrap()
        .remove(0);
        let state =
            HouseholdState::fold([(registered_with_indexes(), 1, 10), (joined.clone(), 2, 20)])
                .unwrap();
        assert!(state.require_living_member("member_id", "m3").is_ok());
        let mut remove = leaving("m3");
        remove.expected_version = 2;
        let left = handle(Some(&state), &Command::RemoveMember(remove))
            .unwrap()
            .remove(0);
        let HouseholdEvent::MemberLeft(payload) = &left else {
            unreachable!()
        };
        // The claim to give up goes with the event.
        assert_eq!(payload.national_id_index, vec![9; 32]);
        let after = HouseholdState::fold([
            (registered_with_indexes(), 1, 10),
            (joined, 2, 20),
            (left, 3, 30),
        ])
        .unwrap();
        assert_eq!(after.members.len(), 2);
        assert!(after.member("m3").is_none());
    }

    #[test]
    fn given_a_household_when_a_member_leaves_then_the_leave_is_recorded_with_its_note_to_seal() {
        let mut other = leaving("m2");
        other.reason = pb::LeaveReason::Other;
        other.note = "外出务工落户".into();
        given(vec![registered_with_indexes()])
            .when(Command::RemoveMember(other))
            .then_expect_events(vec![HouseholdEvent::MemberLeft(pb::MemberLeft {
                household_id: HOUSEHOLD.into(),
                member_id: "m2".into(),
                reason: pb::LeaveReason::Other as i32,
                effective_date: Some(pb::Date {
                    year: 2026,
                    month: 10,
                    day: 15,
                }),
                sealed_note: Vec::new(),
                national_id_index: vec![2; 32],
            })])
            .and_every_personal_datum_has_its_slot();
    }

    #[test]
    fn given_a_household_when_the_head_the_dead_or_a_stranger_leaves_then_refused() {
        given(vec![registered_with_indexes()])
            .when(Command::RemoveMember(leaving("m1")))
            .then_expect_error(CommandError::HeadCannotLeave);
        let mut after_death = leaving("m2");
        after_death.expected_version = 2;
        given(vec![registered_with_indexes(), died("m2")])
            .when(Command::RemoveMember(after_death))
            .then_expect_error(CommandError::Household(HouseholdError::MemberDead {
                field: "member_id".into(),
                member_id: "m2".into(),
            }));
        given(vec![registered_with_indexes()])
            .when(Command::RemoveMember(leaving("m9")))
            .then_expect_error(CommandError::Household(HouseholdError::UnknownMember {
                field: "member_id".into(),
                member_id: "m9".into(),
            }));
    }

    // ---- end of household composition ----

    #[test]
    fn a_change_of_reason_is_sealed_for_the_version_its_event_will_have() {
        let death = Command::RecordDeath(RecordDeath {
            household_id: HOUSEHOLD.into(),
            expected_version: 4,
            member_id: "m2".into(),
            date_of_death: date!(2026 - 10 - 01),
            reason: "x".into(),
        });
        let fields: Vec<SealedField> = death
            .personal_data()
            .into_iter()
            .map(|datum| datum.field)
            .collect();
        assert_eq!(fields, [SealedField::ChangeReason { version: 5 }]);
    }
}
