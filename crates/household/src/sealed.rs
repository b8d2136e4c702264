//! Where a household's sealed personal data lives, as typed paths. Every sealed value of a
//! household is sealed with the household's data key (subject: the household id) under
//! associated data `<household id>/<path>`, so a ciphertext moved to another field or another
//! household does not open. [`SealedField`] is the one place those paths are spelled.
//!
//! The paths are stored forever in the ciphertexts' authentication: the bytes
//! [`SealedField::associated_data`] makes must never change (a test pins each one), or the
//! household data already in the log no longer opens.
//!
//! | field | path |
//! |---|---|
//! | a member's name, resident id, phone | `<member id>/name`, `<member id>/national_id`, `<member id>/phone` |
//! | the address (registration, move) | `address` |
//! | the payment account (encoded `PaymentAccount`) | `payment_account` |
//! | the reason of a change, death, correction or move | `v<version of its event>/reason` |
//! | a joining member's name, resident id, phone (`MemberJoined`) | as a registration's members |
//! | the note of a member joining or leaving | `v<version of its event>/reason` |
//! | an application's declared facts (JSON) | `<application id>/declared_facts` |
//! | the officer's words when reading | `access/<event id>/note` |
//!
//! One sealed value is not the household's: an official's name in the registry of officials'
//! relatives, sealed with the registration's own key ([`OfficialName`]).

use sunshine_proto::v1 as pb;
use uuid::Uuid;

use crate::events::HouseholdEvent;

/// A sealed field of a household.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SealedField {
    MemberName {
        member_id: String,
    },
    MemberNationalId {
        member_id: String,
    },
    MemberPhone {
        member_id: String,
    },
    Address,
    PaymentAccount,
    /// The reason given for the change that the event at `version` records.
    ChangeReason {
        version: u64,
    },
    DeclaredFacts {
        application_id: String,
    },
    /// The officer's own words on a read (`PersonalDataAccessed.sealed_note`).
    AccessNote {
        event_id: Uuid,
    },
}

impl SealedField {
    /// The field's path inside the household.
    pub fn path(&self) -> String {
        match self {
            SealedField::MemberName { member_id } => format!("{member_id}/name"),
            SealedField::MemberNationalId { member_id } => format!("{member_id}/national_id"),
            SealedField::MemberPhone { member_id } => format!("{member_id}/phone"),
            SealedField::Address => "address".to_owned(),
            SealedField::PaymentAccount => "payment_account".to_owned(),
            SealedField::ChangeReason { version } => format!("v{version}/reason"),
            SealedField::DeclaredFacts { application_id } => {
                format!("{application_id}/declared_facts")
            }
            SealedField::AccessNote { event_id } => format!("access/{event_id}/note"),
        }
    }

    /// The associated data the field of `household_id` is sealed under.
    pub fn associated_data(&self, household_id: &str) -> Vec<u8> {
        format!("{household_id}/{}", self.path()).into_bytes()
    }

    /// The subject of the data key that seals it: the household.
    pub fn key_subject(household_id: &str) -> &str {
        household_id
    }

    /// Where the field's sealed bytes go in `event`, if the event carries it.
    pub fn slot_in<'a>(&self, event: &'a mut HouseholdEvent) -> Option<&'a mut Vec<u8>> {
        let member = |members: &'a mut Vec<pb::SealedMember>, member_id: &str| {
            members
                .iter_mut()
                .find(|member| member.member_id == member_id)
        };
        match (self, event) {
            (SealedField::MemberName { member_id }, HouseholdEvent::Registered(registered)) => {
                member(&mut registered.members, member_id).map(|member| &mut member.sealed_name)
            }
            (
                SealedField::MemberNationalId { member_id },
                HouseholdEvent::Registered(registered),
            ) => member(&mut registered.members, member_id)
                .map(|member| &mut member.sealed_national_id),
            (SealedField::MemberPhone { member_id }, HouseholdEvent::Registered(registered)) => {
                member(&mut registered.members, member_id).map(|member| &mut member.sealed_phone)
            }
            (SealedField::Address, HouseholdEvent::Registered(registered)) => {
                Some(&mut registered.sealed_address)
            }
            (SealedField::PaymentAccount, HouseholdEvent::Registered(registered)) => {
                Some(&mut registered.sealed_payment_account)
            }
            (SealedField::Address, HouseholdEvent::Moved(moved)) => Some(&mut moved.sealed_address),
            // household composition
            (SealedField::MemberName { member_id }, HouseholdEvent::MemberJoined(joined)) => joined
                .member
                .as_mut()
                .filter(|member| &member.member_id == member_id)
                .map(|member| &mut member.sealed_name),
            (SealedField::MemberNationalId { member_id }, HouseholdEvent::MemberJoined(joined)) => {
                joined
                    .member
                    .as_mut()
                    .filter(|member| &member.member_id == member_id)
                    .map(|member| &mut member.sealed_national_id)
            }
            (SealedField::MemberPhone { member_id }, HouseholdEvent::MemberJoined(joined)) => {
                joined
                    .member
                    .as_mut()
                    .filter(|member| &member.member_id == member_id)
                    .map(|member| &mut member.sealed_phone)
            }
            (SealedField::ChangeReason { .. }, HouseholdEvent::MemberJoined(joined)) => {
                Some(&mut joined.sealed_note)
            }
            (SealedField::ChangeReason { .. }, HouseholdEvent::MemberLeft(left)) => {
                Some(&mut left.sealed_note)
            }
            (SealedField::ChangeReason { .. }, HouseholdEvent::CircumstanceChanged(changed)) => {
                Some(&mut changed.sealed_reason)
            }
            (SealedField::ChangeReason { .. }, HouseholdEvent::MemberDied(died)) => {
                Some(&mut died.sealed_reason)
            }
            (SealedField::ChangeReason { .. }, HouseholdEvent::DeathRecordCorrected(corrected)) => {
                Some(&mut corrected.sealed_reason)
            }
            (SealedField::ChangeReason { .. }, HouseholdEvent::Moved(moved)) => {
                Some(&mut moved.sealed_reason)
            }
            (
                SealedField::DeclaredFacts { application_id },
                HouseholdEvent::ApplicationSubmitted(submitted),
            ) if &submitted.application_id == application_id => {
                Some(&mut submitted.sealed_declared_facts)
            }
            _ => None,
        }
    }
}

/// An official's name in the registry of officials' relatives: sealed with the registration's
/// own data key, under the registration id alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfficialName<'a> {
    pub registration_id: &'a str,
}

impl OfficialName<'_> {
    pub fn key_subject(&self) -> String {
        format!("official-{}", self.registration_id)
    }

    pub fn associated_data(&self) -> Vec<u8> {
        self.registration_id.as_bytes().to_vec()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use sunshine_eventlog::crypto::{self, DataKey};

    use super::*;

    const HOUSEHOLD: &str = "0190f3c4-0000-7000-8000-0000000000aa";
    const MEMBER: &str = "0190f3c4-0000-7000-8000-0000000000bb";
    const APPLICATION: &str = "0190f3c4-0000-7000-8000-0000000000cc";

    /// The associated data exactly as intake wrote it before this module existed; sealed data
    /// in the log is authenticated under these bytes.
    #[test]
    fn the_associated_data_is_byte_for_byte_what_was_sealed_before() {
        let event_id = Uuid::parse_str("0190f3c4-0000-7000-8000-0000000000dd").unwrap();
        let pinned: [(SealedField, String); 8] = [
            (
                SealedField::MemberName {
                    member_id: MEMBER.into(),
                },
                format!("{HOUSEHOLD}/{MEMBER}/name"),
            ),
            (
                SealedField::MemberNationalId {
                    member_id: MEMBER.into(),
                },
                format!("{HOUSEHOLD}/{MEMBER}/national_id"),
            ),
            (
                SealedField::MemberPhone {
                    member_id: MEMBER.into(),
                },
                format!("{HOUSEHOLD}/{MEMBER}/phone"),
            ),
            (SealedField::Address, format!("{HOUSEHOLD}/address")),
            (
                SealedField::PaymentAccount,
                format!("{HOUSEHOLD}/payment_account"),
            ),
            (
                SealedField::ChangeReason { version: 7 },
                format!("{HOUSEHOLD}/v7/reason"),
            ),
            (
                SealedField::DeclaredFacts {
                    application_id: APPLICATION.into(),
                },
                format!("{HOUSEHOLD}/{APPLICATION}/declared_facts"),
            ),
            (
                SealedField::AccessNote { event_id },
                format!("{HOUSEHOLD}/access/{event_id}/note"),
            ),
        ];
        for (field, before) in pinned {
            assert_eq!(
                field.associated_data(HOUSEHOLD),
                before.as_bytes(),
                "{field:?}"
            );
        }
        let official = OfficialName {
            registration_id: "reg-1",
        };
        assert_eq!(official.key_subject(), "official-reg-1");
        assert_eq!(official.associated_data(), b"reg-1");
    }

    #[test]
    fn a_value_sealed_under_the_old_spelling_opens_under_the_typed_path_and_nowhere_else() {
        let key = DataKey::from_bytes([7u8; 32]);
        let old_associated = format!("{HOUSEHOLD}/{MEMBER}/name");
        let sealed =
            crypto::seal(&key, "key-1", "张三".as_bytes(), old_associated.as_bytes()).unwrap();
        let field = SealedField::MemberName {
            member_id: MEMBER.into(),
        };
        let opened = crypto::open(&key, &sealed, &field.associated_data(HOUSEHOLD)).unwrap();
        assert_eq!(opened, "张三".as_bytes());
        let phone = SealedField::MemberPhone {
            member_id: MEMBER.into(),
        };
        assert!(crypto::open(&key, &sealed, &phone.associated_data(HOUSEHOLD)).is_err());
        assert!(crypto::open(&key, &sealed, &field.associated_data("another")).is_err());
    }

    #[test]
    fn each_field_has_its_slot_in_the_event_that_carries_it() {
        let mut registered = HouseholdEvent::Registered(pb::HouseholdRegistered {
            members: vec![pb::SealedMember {
                member_id: MEMBER.into(),
                ..Default::default()
            }],
            ..Default::default()
        });
        for field in [
            SealedField::MemberName {
                member_id: MEMBER.into(),
            },
            SealedField::MemberNationalId {
                member_id: MEMBER.into(),
            },
            SealedField::MemberPhone {
                member_id: MEMBER.into(),
            },
            SealedField::Address,
            SealedField::PaymentAccount,
        ] {
            let slot = field.slot_in(&mut registered).unwrap();
            *slot = field.path().into_bytes();
        }
        let HouseholdEvent::Registered(filled) = &registered else {
            unreachable!()
        };
        assert_eq!(
            filled.members[0].sealed_name,
            format!("{MEMBER}/name").as_bytes()
        );
        assert_eq!(filled.sealed_address, b"address");
        let other_member = SealedField::MemberName {
            member_id: "someone-else".into(),
        };
        assert!(other_member.slot_in(&mut registered).is_none());
        assert!(
            SealedField::ChangeReason { version: 2 }
                .slot_in(&mut registered)
                .is_none()
        );
        let mut submitted = HouseholdEvent::ApplicationSubmitted(pb::ApplicationSubmitted {
            application_id: APPLICATION.into(),
            ..Default::default()
        });
        let facts = SealedField::DeclaredFacts {
            application_id: APPLICATION.into(),
        };
        assert!(facts.slot_in(&mut submitted).is_some());
        let elsewhere = SealedField::DeclaredFacts {
            application_id: "another".into(),
        };
        assert!(elsewhere.slot_in(&mut submitted).is_none());
    }

    // household composition
    #[test]
    fn a_joining_members_fields_have_their_slots_in_member_joined_and_no_one_elses() {
        let mut joined = HouseholdEvent::MemberJoined(pb::MemberJoined {
            member: Some(pb::SealedMember {
                member_id: MEMBER.into(),
                ..Default::default()
            }),
            ..Default::default()
        });
        for field in [
            SealedField::MemberName {
                member_id: MEMBER.into(),
            },
            SealedField::MemberNationalId {
                member_id: MEMBER.into(),
            },
            SealedField::MemberPhone {
                member_id: MEMBER.into(),
            },
            SealedField::ChangeReason { version: 4 },
        ] {
            let slot = field.slot_in(&mut joined).unwrap();
            *slot = field.path().into_bytes();
        }
        let HouseholdEvent::MemberJoined(filled) = &joined else {
            unreachable!()
        };
        let member = filled.member.as_ref().unwrap();
        assert_eq!(
            member.sealed_national_id,
            format!("{MEMBER}/national_id").as_bytes()
        );
        assert_eq!(filled.sealed_note, b"v4/reason");
        let other_member = SealedField::MemberName {
            member_id: "someone-else".into(),
        };
        assert!(other_member.slot_in(&mut joined).is_none());
        let mut left = HouseholdEvent::MemberLeft(pb::MemberLeft::default());
        assert!(
            SealedField::ChangeReason { version: 5 }
                .slot_in(&mut left)
                .is_some()
        );
        assert!(SealedField::Address.slot_in(&mut left).is_none());
    }
}
