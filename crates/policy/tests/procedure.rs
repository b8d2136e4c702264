//! Table-driven time limits per program (issue 20 item 11): every row of
//! `tests/procedure/deadlines.toml` is a program, an acceptance date, the day the district
//! receives the street-town's opinion, and the hand-counted deadlines its rules give, resolved
//! from the example district's `procedure.toml` and counted with the embedded working-day
//! calendar. A `samples` pair is (cases received, cases the district must home-visit; -1: the
//! program's rules ask for no sample).

#![allow(clippy::unwrap_used)]

use serde::Deserialize;
use sunshine_domain::WorkingDayCalendar;
use sunshine_policy::dates::iso_date;
use sunshine_policy::{Policy, ProgramCode};
use time::Date;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Table {
    row: Vec<Row>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Row {
    name: String,
    program: String,
    #[serde(with = "iso_date")]
    accepted_on: Date,
    #[serde(default, with = "optional_date")]
    received_on: Option<Date>,
    #[serde(default)]
    samples: Vec<(usize, i64)>,
    expect: Expected,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Expected {
    #[serde(default, with = "optional_date")]
    investigation_start: Option<Date>,
    #[serde(default, with = "optional_date")]
    review: Option<Date>,
    #[serde(default, with = "optional_date")]
    review_extended: Option<Date>,
    #[serde(default, with = "optional_date")]
    street_town: Option<Date>,
    #[serde(default, with = "optional_date")]
    district_decision: Option<Date>,
}

mod optional_date {
    use serde::{Deserialize, Deserializer};
    use time::Date;

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<Date>, D::Error> {
        let value = toml::value::Datetime::deserialize(deserializer)?;
        let date = value
            .date
            .ok_or_else(|| serde::de::Error::custom("a date"))?;
        let month = time::Month::try_from(date.month).map_err(serde::de::Error::custom)?;
        Date::from_calendar_date(i32::from(date.year), month, date.day)
            .map(Some)
            .map_err(serde::de::Error::custom)
    }
}

fn check(policy: &Policy, calendar: &WorkingDayCalendar, row: &Row) -> Vec<String> {
    let mut mismatches = Vec::new();
    let program: ProgramCode = match row.program.parse() {
        Ok(program) => program,
        Err(error) => return vec![error.to_string()],
    };
    let procedure = policy
        .resolve(row.accepted_on)
        .unwrap()
        .procedure
        .for_program(program);
    let deadlines = procedure.deadlines(calendar, row.accepted_on).unwrap();
    let compare =
        |name: &str, expected: Option<Date>, actual: Option<Date>, out: &mut Vec<String>| {
            if expected != actual {
                out.push(format!("{name}: expected {expected:?}, got {actual:?}"));
            }
        };
    let date = |due: Option<sunshine_domain::DueDate>| due.map(|due| due.date);
    compare(
        "investigation_start",
        row.expect.investigation_start,
        date(deadlines.investigation_start_by),
        &mut mismatches,
    );
    compare(
        "review",
        row.expect.review,
        date(deadlines.review_due_by),
        &mut mismatches,
    );
    compare(
        "review_extended",
        row.expect.review_extended,
        date(deadlines.review_extended_due_by),
        &mut mismatches,
    );
    compare(
        "street_town",
        row.expect.street_town,
        date(deadlines.street_town_due_by),
        &mut mismatches,
    );
    if let Some(received_on) = row.received_on {
        let due = procedure
            .district_decision_due(calendar, received_on)
            .unwrap();
        compare(
            "district_decision",
            row.expect.district_decision,
            Some(due.date),
            &mut mismatches,
        );
    }
    for (received, expected) in &row.samples {
        let actual = procedure
            .home_visit_sample_size(*received)
            .map_or(-1, |size| i64::try_from(size).unwrap());
        if actual != *expected {
            mismatches.push(format!(
                "sample of {received}: expected {expected}, got {actual}"
            ));
        }
    }
    mismatches
}

#[test]
fn every_program_gets_its_own_time_limits() {
    let policy = Policy::example_district().unwrap();
    let calendar = WorkingDayCalendar::embedded().unwrap();
    let text = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/procedure/deadlines.toml"),
    )
    .unwrap();
    let table: Table = toml::from_str(&text).unwrap();
    assert!(table.row.iter().any(|row| row.program == "tekun"));
    let failures: Vec<String> = table
        .row
        .iter()
        .flat_map(|row| {
            check(&policy, &calendar, row)
                .into_iter()
                .map(move |mismatch| format!("{:?}: {mismatch}", row.name))
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
