//! Who may see which personal data of a household in full, and for what (pure; the access
//! events are written by [`crate::api`]). `docs/privacy.md` has the same table for people.
//!
//! A reveal needs three things: a role whose work needs the data, a purpose from the fixed
//! list that this role may state, and a live case of the household (checked by the api). A
//! purpose shows only the fields it needs; everything else stays masked.

use sunshine_platform::Role;
use sunshine_proto::v1 as pb;

/// Which personal fields a read shows in full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Reveal {
    pub names: bool,
    pub national_ids: bool,
    pub phones: bool,
    pub address: bool,
    pub payment_account: bool,
}

impl Reveal {
    pub const NOTHING: Reveal = Reveal {
        names: false,
        national_ids: false,
        phones: false,
        address: false,
        payment_account: false,
    };

    const EVERYTHING: Reveal = Reveal {
        names: true,
        national_ids: true,
        phones: true,
        address: true,
        payment_account: true,
    };

    /// What a purpose needs to see.
    pub fn for_purpose(purpose: pb::RevealPurpose) -> Reveal {
        match purpose {
            pb::RevealPurpose::Unspecified => Reveal::NOTHING,
            // Finding the household and talking to its members.
            pb::RevealPurpose::HomeVisit => Reveal {
                names: true,
                phones: true,
                address: true,
                ..Reveal::NOTHING
            },
            // Comparing people with their documents.
            pb::RevealPurpose::VerifyIdentity => Reveal {
                names: true,
                national_ids: true,
                ..Reveal::NOTHING
            },
            // Comparing the account with the bank's records (and its holder's name).
            pb::RevealPurpose::PaymentAccountCheck => Reveal {
                payment_account: true,
                ..Reveal::NOTHING
            },
            // Correcting a record, or showing the household what is recorded about it.
            pb::RevealPurpose::Correction | pb::RevealPurpose::ApplicantRequest => {
                Reveal::EVERYTHING
            }
        }
    }

    pub fn any(&self) -> bool {
        *self != Reveal::NOTHING
    }

    /// The names used in `Household.revealed_fields` and in access events.
    pub fn field_names(&self) -> Vec<String> {
        let mut names = Vec::new();
        for (shown, name) in [
            (self.names, "names"),
            (self.national_ids, "national_ids"),
            (self.phones, "phones"),
            (self.address, "address"),
            (self.payment_account, "payment_account"),
        ] {
            if shown {
                names.push(name.to_owned());
            }
        }
        names
    }
}

/// The purposes each role may reveal personal data for. Caseworkers of the case's stages
/// (acceptance, investigation, review) visit, verify and correct; a finance officer checks the
/// account a benefit is paid to, and nothing else. Approvers decide on the file, auditors and
/// finance approvers check what was done, departments and administrators run systems: none of
/// them needs a person's data in full, so none of them can reveal it.
pub fn purposes_for(role: Role) -> &'static [pb::RevealPurpose] {
    use pb::RevealPurpose as Purpose;
    match role {
        Role::VillageClerk | Role::StreetReviewer | Role::CenterReviewer => &[
            Purpose::HomeVisit,
            Purpose::VerifyIdentity,
            Purpose::Correction,
            Purpose::ApplicantRequest,
        ],
        Role::FinanceOfficer => &[Purpose::PaymentAccountCheck],
        Role::CenterApprover
        | Role::FinanceApprover
        | Role::Auditor
        | Role::Department
        | Role::Admin => &[],
    }
}

/// What `role` sees in full for `purpose`, or why it may not.
pub fn authorise_reveal(role: Role, purpose: pb::RevealPurpose) -> Result<Reveal, String> {
    let allowed = purposes_for(role);
    if allowed.is_empty() {
        return Err(format!(
            "role {} never sees personal data in full",
            role.as_str()
        ));
    }
    if !allowed.contains(&purpose) {
        let names: Vec<&str> = allowed
            .iter()
            .map(|allowed_purpose| allowed_purpose.as_str_name())
            .collect();
        return Err(format!(
            "role {} may reveal personal data only for: {}",
            role.as_str(),
            names.join(", ")
        ));
    }
    Ok(Reveal::for_purpose(purpose))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn finance_officers_see_the_account_and_nothing_else() {
        let reveal =
            authorise_reveal(Role::FinanceOfficer, pb::RevealPurpose::PaymentAccountCheck).unwrap();
        assert_eq!(reveal.field_names(), ["payment_account"]);
        for purpose in [
            pb::RevealPurpose::HomeVisit,
            pb::RevealPurpose::VerifyIdentity,
            pb::RevealPurpose::Correction,
            pb::RevealPurpose::ApplicantRequest,
            pb::RevealPurpose::Unspecified,
        ] {
            assert!(authorise_reveal(Role::FinanceOfficer, purpose).is_err());
        }
    }

    #[test]
    fn overseers_and_systems_never_reveal() {
        for role in [
            Role::CenterApprover,
            Role::FinanceApprover,
            Role::Auditor,
            Role::Department,
            Role::Admin,
        ] {
            for purpose in [
                pb::RevealPurpose::HomeVisit,
                pb::RevealPurpose::VerifyIdentity,
                pb::RevealPurpose::PaymentAccountCheck,
                pb::RevealPurpose::Correction,
                pb::RevealPurpose::ApplicantRequest,
            ] {
                assert!(authorise_reveal(role, purpose).is_err(), "{role:?}");
            }
        }
    }

    #[test]
    fn caseworkers_reveal_what_the_purpose_needs() {
        let visit = authorise_reveal(Role::VillageClerk, pb::RevealPurpose::HomeVisit).unwrap();
        assert_eq!(visit.field_names(), ["names", "phones", "address"]);
        let verify =
            authorise_reveal(Role::StreetReviewer, pb::RevealPurpose::VerifyIdentity).unwrap();
        assert_eq!(verify.field_names(), ["names", "national_ids"]);
        assert!(
            authorise_reveal(Role::CenterReviewer, pb::RevealPurpose::PaymentAccountCheck).is_err()
        );
        assert!(authorise_reveal(Role::VillageClerk, pb::RevealPurpose::Unspecified).is_err());
        assert_eq!(
            authorise_reveal(Role::VillageClerk, pb::RevealPurpose::Correction)
                .unwrap()
                .field_names()
                .len(),
            5
        );
    }
}
