//! Households and applications for scenarios: fictitious people of the example district with
//! valid resident ids.

use sunshine_proto::v1 as pb;

use crate::VILLAGE;

/// A valid GB 11643 id in the example district for a birth date and sequence (odd = male).
pub fn national_id(birth: &str, sequence: u32) -> String {
    sunshine_domain::NationalId::with_check_character(&format!("990101{birth}{sequence:03}"))
        .expect("17 digits")
}

pub fn date(year: i32, month: i32, day: i32) -> Option<pb::Date> {
    Some(pb::Date { year, month, day })
}

#[derive(Debug, Clone)]
pub struct Person {
    pub name: &'static str,
    pub id: String,
    pub birth: (i32, i32, i32),
    pub relation: pb::Relation,
}

pub fn member(person: &Person, income_fen: i64) -> pb::MemberInput {
    pb::MemberInput {
        name: person.name.into(),
        national_id: person.id.clone(),
        relation: person.relation as i32,
        birth_date: date(person.birth.0, person.birth.1, person.birth.2),
        hukou_type: pb::HukouType::Rural as i32,
        phone: "13812345678".into(),
        resident_since: if person.birth.0 >= 1990 {
            date(person.birth.0, person.birth.1, person.birth.2)
        } else {
            date(1990, 1, 1)
        },
        monthly_income: vec![pb::IncomeItem {
            kind: "wages".into(),
            monthly_amount: Some(pb::Money { fen: income_fen }),
        }],
        ..Default::default()
    }
}

/// Four people of one household; `seed` keeps households of different tests apart.
pub fn family(seed: u32) -> Vec<Person> {
    vec![
        Person {
            name: "王建国",
            id: national_id("19650312", 100 + seed * 4 + 1),
            birth: (1965, 3, 12),
            relation: pb::Relation::Head,
        },
        Person {
            name: "李秀英",
            id: national_id("19670708", 100 + seed * 4 + 2),
            birth: (1967, 7, 8),
            relation: pb::Relation::Spouse,
        },
        Person {
            name: "王小明",
            id: national_id("20090115", 100 + seed * 4 + 3),
            birth: (2009, 1, 15),
            relation: pb::Relation::Child,
        },
        Person {
            name: "王秀兰",
            id: national_id("19380920", 100 + seed * 4 + 4),
            birth: (1938, 9, 20),
            relation: pb::Relation::Parent,
        },
    ]
}

pub fn registration(command_id: &str, people: &[Person]) -> pb::RegisterHouseholdRequest {
    pb::RegisterHouseholdRequest {
        command_id: command_id.into(),
        hukou_org_unit_code: VILLAGE.into(),
        address: "示例区东城街道幸福里3号".into(),
        members: people.iter().map(|person| member(person, 30_000)).collect(),
        assets: Some(pb::Assets {
            financial_assets: Some(pb::Money { fen: 500_000 }),
            ..Default::default()
        }),
        payment_account: Some(pb::PaymentAccount {
            bank: "示例农商银行".into(),
            account_number: "6222020200112233".into(),
            holder_name: "王建国".into(),
        }),
    }
}

pub fn documents(kinds: &[&str]) -> Vec<pb::DocumentMetadata> {
    kinds
        .iter()
        .map(|kind| pb::DocumentMetadata {
            kind: (*kind).into(),
            file_name: format!("{kind}.pdf"),
            sha256_hex: "ab".repeat(32),
            size_bytes: 1024,
        })
        .collect()
}

pub fn dibao_application(
    command_id: &str,
    household_id: &str,
    applicant: &str,
) -> pb::SubmitApplicationRequest {
    pb::SubmitApplicationRequest {
        command_id: command_id.into(),
        household_id: household_id.into(),
        applicant_member_id: applicant.into(),
        program_code: "dibao_rural".into(),
        channel: pb::ApplicationChannel::InPerson as i32,
        declared_facts: [("illness".to_owned(), "王秀兰长期卧床".to_owned())].into(),
        consent_to_verification: true,
        notify_and_pledge_accepted: true,
        documents: documents(&[
            "application_form",
            "household_register",
            "identity_documents",
            "income_statement",
            "verification_authorisation",
        ]),
    }
}
