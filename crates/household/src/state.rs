//! The household as its stream folds: members (alive or not), where it is registered, its
//! assets, its open applications and the programs it receives; and the decisions about the
//! household itself. Pure: no I/O, no keys; personal fields stay sealed bytes here.

use std::collections::{BTreeMap, BTreeSet};

use sunshine_proto::v1 as pb;

use crate::events::HouseholdEvent;

/// A member as the household stream knows it.
#[derive(Debug, Clone, PartialEq)]
pub struct MemberState {
    pub sealed: pb::SealedMember,
    pub alive: bool,
    pub date_of_death: Option<pb::Date>,
}

/// An application not yet closed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenApplication {
    pub application_id: String,
    pub case_id: String,
    pub program_code: String,
    pub accepted_org_unit_code: String,
    pub route: i32,
    pub relative_of_official: bool,
    pub submitted_at_us: i64,
    /// The registrations of officials' relatives this application is flagged for (at the
    /// window or later): each flags it once.
    pub flagged_registrations: BTreeSet<String>,
}

/// The household, folded from its stream.
#[derive(Debug, Clone, PartialEq)]
pub struct HouseholdState {
    pub household_id: String,
    pub hukou_org_unit_code: String,
    pub sealed_address: Vec<u8>,
    pub sealed_payment_account: Vec<u8>,
    pub assets: Option<pb::Assets>,
    pub members: Vec<MemberState>,
    /// By program code.
    pub open_applications: BTreeMap<String, OpenApplication>,
    /// Programs the household receives (approved, not terminated), with their case.
    pub receiving: BTreeMap<String, String>,
    pub version: u64,
}

/// Why a command cannot be applied to the household as it is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HouseholdError {
    #[error("{field}: no member {member_id} in this household")]
    UnknownMember { field: String, member_id: String },
    #[error("{field}: member {member_id} has died")]
    MemberDead { field: String, member_id: String },
    #[error("{field}: member {member_id} is not recorded as deceased")]
    MemberAlive { field: String, member_id: String },
    #[error("an application for {program_code} is already open: case {case_id}")]
    ApplicationOpen {
        program_code: String,
        case_id: String,
    },
    #[error("the household already receives {program_code}: case {case_id}")]
    AlreadyReceiving {
        program_code: String,
        case_id: String,
    },
}

impl HouseholdState {
    /// Folds a stream; `None` if it does not start with a registration.
    pub fn fold(
        events: impl IntoIterator<Item = (HouseholdEvent, u64, i64)>,
    ) -> Option<HouseholdState> {
        let mut state: Option<HouseholdState> = None;
        for (event, version, recorded_at_us) in events {
            match (&mut state, event) {
                (None, HouseholdEvent::Registered(registered)) => {
                    state = Some(HouseholdState {
                        household_id: registered.household_id,
                        hukou_org_unit_code: registered.hukou_org_unit_code,
                        sealed_address: registered.sealed_address,
                        sealed_payment_account: registered.sealed_payment_account,
                        assets: registered.assets,
                        members: registered
                            .members
                            .into_iter()
                            .map(|sealed| MemberState {
                                sealed,
                                alive: true,
                                date_of_death: None,
                            })
                            .collect(),
                        open_applications: BTreeMap::new(),
                        receiving: BTreeMap::new(),
                        version,
                    });
                }
                (None, _) => {}
                (Some(current), event) => {
                    current.apply(event, recorded_at_us);
                    current.version = version;
                }
            }
        }
        state
    }

    /// Folds one event into the state; decides nothing.
    fn apply(&mut self, event: HouseholdEvent, recorded_at_us: i64) {
        match event {
            HouseholdEvent::Registered(_) => {}
            HouseholdEvent::CircumstanceChanged(changed) => {
                for income in changed.incomes {
                    if let Some(member) = self.member_mut(&income.member_id) {
                        member.sealed.monthly_income = income.monthly_income;
                    }
                }
                if changed.assets.is_some() {
                    self.assets = changed.assets;
                }
            }
            HouseholdEvent::MemberDied(died) => {
                if let Some(member) = self.member_mut(&died.member_id) {
                    member.alive = false;
                    member.date_of_death = died.date_of_death;
                }
            }
            HouseholdEvent::DeathRecordCorrected(corrected) => {
                if let Some(member) = self.member_mut(&corrected.member_id) {
                    member.alive = true;
                    member.date_of_death = None;
                }
            }
            // Household composition: a member joins as registration's members do; one who
            // leaves is no longer the household's (their person-index claim is given up).
            HouseholdEvent::MemberJoined(joined) => {
                if let Some(sealed) = joined.member {
                    self.members.push(MemberState {
                        sealed,
                        alive: true,
                        date_of_death: None,
                    });
                }
            }
            HouseholdEvent::MemberLeft(left) => {
                self.members
                    .retain(|member| member.sealed.member_id != left.member_id);
            }
            HouseholdEvent::Moved(moved) => {
                self.hukou_org_unit_code = moved.to_org_unit_code;
                self.sealed_address = moved.sealed_address;
            }
            HouseholdEvent::ApplicationSubmitted(submitted) => {
                self.open_applications.insert(
                    submitted.program_code.clone(),
                    OpenApplication {
                        application_id: submitted.application_id,
                        case_id: submitted.case_id,
                        program_code: submitted.program_code,
                        accepted_org_unit_code: submitted.accepted_org_unit_code,
                        route: submitted.route,
                        relative_of_official: submitted.relative_of_official,
                        submitted_at_us: recorded_at_us,
                        flagged_registrations: BTreeSet::new(),
                    },
                );
            }
            HouseholdEvent::RelativeOfOfficialFlagged(flagged) => {
                if let Some(open) = self
                    .open_applications
                    .values_mut()
                    .find(|open| open.case_id == flagged.case_id)
                {
                    open.flagged_registrations.insert(flagged.registration_id);
                }
            }
            HouseholdEvent::ApplicationClosed(closed) => {
                self.open_applications.remove(&closed.program_code);
                match closed.outcome.as_str() {
                    "approved" => {
                        self.receiving.insert(closed.program_code, closed.case_id);
                    }
                    "terminated" => {
                        self.receiving.remove(&closed.program_code);
                    }
                    _ => {}
                }
            }
        }
    }

    fn member_mut(&mut self, member_id: &str) -> Option<&mut MemberState> {
        self.members
            .iter_mut()
            .find(|member| member.sealed.member_id == member_id)
    }

    pub fn member(&self, member_id: &str) -> Option<&MemberState> {
        self.members
            .iter()
            .find(|member| member.sealed.member_id == member_id)
    }

    /// The member must exist and be alive.
    pub fn require_living_member(
        &self,
        field: &str,
        member_id: &str,
    ) -> Result<&MemberState, HouseholdError> {
        let member = self
            .member(member_id)
            .ok_or_else(|| HouseholdError::UnknownMember {
                field: field.into(),
                member_id: member_id.into(),
            })?;
        if !member.alive {
            return Err(HouseholdError::MemberDead {
                field: field.into(),
                member_id: member_id.into(),
            });
        }
        Ok(member)
    }

    /// The member must exist and be recorded as deceased (for correcting that record).
    pub fn require_deceased_member(
        &self,
        field: &str,
        member_id: &str,
    ) -> Result<&MemberState, HouseholdError> {
        let member = self
            .member(member_id)
            .ok_or_else(|| HouseholdError::UnknownMember {
                field: field.into(),
                member_id: member_id.into(),
            })?;
        if member.alive {
            return Err(HouseholdError::MemberAlive {
                field: field.into(),
                member_id: member_id.into(),
            });
        }
        Ok(member)
    }

    /// Whether `case_id` is a case of this household that is open or running (approved and
    /// not terminated): the cases an officer may reveal personal data for.
    pub fn has_live_case(&self, case_id: &str) -> bool {
        self.open_applications
            .values()
            .any(|open| open.case_id == case_id)
            || self.receiving.values().any(|received| received == case_id)
    }

    /// A household has at most one open application per program.
    pub fn require_no_open_application(&self, program_code: &str) -> Result<(), HouseholdError> {
        if let Some(open) = self.open_applications.get(program_code) {
            return Err(HouseholdError::ApplicationOpen {
                program_code: program_code.into(),
                case_id: open.case_id.clone(),
            });
        }
        if let Some(case_id) = self.receiving.get(program_code) {
            return Err(HouseholdError::AlreadyReceiving {
                program_code: program_code.into(),
                case_id: case_id.clone(),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn registered() -> HouseholdEvent {
        HouseholdEvent::Registered(pb::HouseholdRegistered {
            household_id: "h1".into(),
            hukou_org_unit_code: "990101001001".into(),
            members: vec![
                pb::SealedMember {
                    member_id: "m1".into(),
                    relation: pb::Relation::Head as i32,
                    ..Default::default()
                },
                pb::SealedMember {
                    member_id: "m2".into(),
                    relation: pb::Relation::Spouse as i32,
                    ..Default::default()
                },
            ],
            ..Default::default()
        })
    }

    fn submitted(program: &str, case_id: &str) -> HouseholdEvent {
        HouseholdEvent::ApplicationSubmitted(pb::ApplicationSubmitted {
            application_id: format!("a-{case_id}"),
            case_id: case_id.into(),
            program_code: program.into(),
            ..Default::default()
        })
    }

    #[test]
    fn given_an_open_dibao_application_when_applying_again_then_the_open_case_is_named() {
        let state = HouseholdState::fold([
            (registered(), 1, 10),
            (submitted("dibao_rural", "case-7"), 2, 20),
        ])
        .unwrap();
        assert_eq!(state.version, 2);
        assert_eq!(
            state.require_no_open_application("dibao_rural"),
            Err(HouseholdError::ApplicationOpen {
                program_code: "dibao_rural".into(),
                case_id: "case-7".into()
            })
        );
        assert!(state.require_no_open_application("temporary").is_ok());
    }

    #[test]
    fn given_a_death_the_member_can_no_longer_apply() {
        let died = HouseholdEvent::MemberDied(pb::MemberDied {
            household_id: "h1".into(),
            member_id: "m2".into(),
            date_of_death: Some(pb::Date {
                year: 2026,
                month: 10,
                day: 1,
            }),
            reason: "death certificate".into(),
            ..Default::default()
        });
        let state = HouseholdState::fold([(registered(), 1, 10), (died, 2, 20)]).unwrap();
        assert!(
            state
                .require_living_member("applicant_member_id", "m1")
                .is_ok()
        );
        assert!(matches!(
            state.require_living_member("applicant_member_id", "m2"),
            Err(HouseholdError::MemberDead { .. })
        ));
        assert!(matches!(
            state.require_living_member("applicant_member_id", "m9"),
            Err(HouseholdError::UnknownMember { .. })
        ));
    }

    #[test]
    fn given_a_death_recorded_in_error_when_corrected_then_the_member_is_alive_again() {
        let died = HouseholdEvent::MemberDied(pb::MemberDied {
            household_id: "h1".into(),
            member_id: "m2".into(),
            date_of_death: Some(pb::Date {
                year: 2026,
                month: 10,
                day: 1,
            }),
            ..Default::default()
        });
        let corrected = HouseholdEvent::DeathRecordCorrected(pb::DeathRecordCorrected {
            household_id: "h1".into(),
            member_id: "m2".into(),
            ..Default::default()
        });
        let dead = HouseholdState::fold([(registered(), 1, 10), (died.clone(), 2, 20)]).unwrap();
        assert!(dead.require_deceased_member("member_id", "m2").is_ok());
        assert!(matches!(
            dead.require_deceased_member("member_id", "m1"),
            Err(HouseholdError::MemberAlive { .. })
        ));
        let alive =
            HouseholdState::fold([(registered(), 1, 10), (died, 2, 20), (corrected, 3, 30)])
                .unwrap();
        assert!(alive.require_living_member("member_id", "m2").is_ok());
        assert_eq!(alive.member("m2").unwrap().date_of_death, None);
    }

    #[test]
    fn only_open_or_running_cases_are_live() {
        let closed = |case_id: &str, outcome: &str| {
            HouseholdEvent::ApplicationClosed(pb::ApplicationClosed {
                case_id: case_id.into(),
                program_code: "dibao_rural".into(),
                outcome: outcome.into(),
                ..Default::default()
            })
        };
        let state = HouseholdState::fold([
            (registered(), 1, 10),
            (submitted("dibao_rural", "rejected-case"), 2, 20),
            (closed("rejected-case", "rejected"), 3, 30),
            (submitted("dibao_rural", "running-case"), 4, 40),
            (closed("running-case", "approved"), 5, 50),
            (submitted("temporary", "open-case"), 6, 60),
        ])
        .unwrap();
        assert!(state.has_live_case("open-case"));
        assert!(state.has_live_case("running-case"));
        assert!(!state.has_live_case("rejected-case"));
        assert!(!state.has_live_case("someone-elses-case"));
    }

    #[test]
    fn a_stream_without_a_registration_is_no_household() {
        assert!(HouseholdState::fold([(submitted("dibao_rural", "c"), 1, 1)]).is_none());
    }

    #[test]
    fn closing_an_application_frees_the_program_unless_it_is_received() {
        let closed = |outcome: &str| {
            HouseholdEvent::ApplicationClosed(pb::ApplicationClosed {
                case_id: "case-7".into(),
                program_code: "dibao_rural".into(),
                outcome: outcome.into(),
                ..Default::default()
            })
        };
        let opened = || (submitted("dibao_rural", "case-7"), 2, 20);
        let rejected =
            HouseholdState::fold([(registered(), 1, 10), opened(), (closed("rejected"), 3, 30)])
                .unwrap();
        assert!(rejected.require_no_open_application("dibao_rural").is_ok());
        let approved =
            HouseholdState::fold([(registered(), 1, 10), opened(), (closed("approved"), 3, 30)])
                .unwrap();
        assert!(matches!(
            approved.require_no_open_application("dibao_rural"),
            Err(HouseholdError::AlreadyReceiving { .. })
        ));
        let ended = HouseholdState::fold([
            (registered(), 1, 10),
            opened(),
            (closed("approved"), 3, 30),
            (closed("terminated"), 4, 40),
        ])
        .unwrap();
        assert!(ended.require_no_open_application("dibao_rural").is_ok());
    }
}
