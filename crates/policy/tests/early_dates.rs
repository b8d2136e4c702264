//! Issue 20 item 12: evaluating a program on a date resolves only the parameter sections that
//! program reads, so a program whose parameters are in force is answered even when another
//! program's are not yet; a program whose own parameters are not in force fails with an error
//! naming the program, the date and the parameter. Table-driven, one row per program and date.

#![allow(clippy::unwrap_used)]

use sunshine_policy::{HouseholdFacts, Policy, PolicyError, ProgramCode};
use time::Date;
use time::macros::date;

fn household() -> HouseholdFacts {
    toml::from_str(
        r#"
hukou_org_unit = "990101001001"
members = [
  { relation = "head", sex = "male", birth_date = 1970-01-01, hukou_type = "urban", resident_since = 1970-01-01, employment = { status = "employed" } },
]
"#,
    )
    .unwrap()
}

/// `None`: a decision; `Some(parameter)`: an error naming the program, the date and it.
const ROWS: &[(&str, Date, Option<&str>)] = &[
    // Urban employee insurance reads only the district (in force from 2023-01-01).
    ("medical_urban_employee", date!(2023 - 06 - 01), None),
    // Every other section starts on 2024-01-01 or later: the error is the program's own.
    (
        "family_planning",
        date!(2023 - 06 - 01),
        Some("family_planning."),
    ),
    ("dibao_rural", date!(2023 - 06 - 01), Some("dibao.")),
    ("longevity", date!(2023 - 06 - 01), Some("longevity.")),
    ("tekun", date!(2023 - 06 - 01), Some("tekun.")),
    (
        "housing_urban_support",
        date!(2023 - 06 - 01),
        Some("housing_urban."),
    ),
    // On 2024-01-01 they are.
    ("family_planning", date!(2024 - 01 - 01), None),
    ("longevity", date!(2024 - 01 - 01), None),
    ("tekun", date!(2024 - 01 - 01), None),
];

#[test]
fn each_program_resolves_only_what_it_needs() {
    let policy = Policy::example_district().unwrap();
    let household = household();
    let mut failures = Vec::new();
    for (code, as_of, expected) in ROWS {
        let program: ProgramCode = code.parse().unwrap();
        let result = policy.evaluate(program, &household, *as_of);
        match (expected, result) {
            (None, Ok(_)) => {}
            (None, Err(error)) => failures.push(format!("{code} on {as_of}: {error}")),
            (Some(_), Ok(_)) => failures.push(format!("{code} on {as_of}: expected an error")),
            (Some(parameter), Err(error)) => {
                let text = error.to_string();
                let names_all = text.contains(code)
                    && text.contains(&as_of.to_string())
                    && text.contains(parameter);
                if !names_all || !matches!(error, PolicyError::ProgramNotInForce { .. }) {
                    failures.push(format!(
                        "{code} on {as_of}: {text:?} should name the program, the date and `{parameter}…`"
                    ));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn the_message_says_what_is_missing() {
    let policy = Policy::example_district().unwrap();
    let error = policy
        .evaluate(
            ProgramCode::FamilyPlanning,
            &household(),
            date!(2023 - 06 - 01),
        )
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "program `family_planning` cannot be evaluated as of 2023-06-01: parameter \
         `family_planning.rural_reward_annual` has no value then; its first entry is from 2024-01-01"
    );
}
