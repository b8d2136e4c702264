//! A department's assistance record: its fields checked one record at a time, every bad field
//! named under the record's place (`records[i].field`, or `rows[i].field` for a CSV), and the
//! bounds of a batch (`docs/limits.md`, Department integration). Pure.

use std::collections::BTreeSet;

use sunshine_domain::{FieldViolation, Money, Month, NationalId, ValidationErrors};

use crate::registry::Department;

/// Records in one push or import.
pub const MAX_BATCH: usize = 1_000;
/// Longest record id (printable ASCII).
pub const MAX_RECORD_ID_LEN: usize = 64;
/// Largest amount of one record: ¥1,000,000.
pub const MAX_AMOUNT_FEN: i64 = 100_000_000;
/// Longest period one record covers.
pub const MAX_PERIOD_MONTHS: i32 = 120;

/// What a department gives.
pub const KINDS: &[&str] = &["cash", "in_kind", "service", "fee_exemption", "subsidy"];

/// A record as it arrives (from the request or a CSV row), unchecked.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RecordFields {
    pub record_id: String,
    pub national_id: String,
    pub program_code: String,
    pub kind: String,
    /// In fen; `None` when absent.
    pub amount_fen: Option<i64>,
    pub period_start: String,
    pub period_end: String,
}

/// A record whose every field is good, of the department's own program.
#[derive(Clone, PartialEq, Eq)]
pub struct CheckedRecord {
    pub record_id: String,
    /// Personal data: sealed before it is written, never logged.
    pub national_id: NationalId,
    pub program_code: String,
    pub kind: String,
    pub amount: Money,
    pub period_start: Month,
    pub period_end: Month,
}

impl std::fmt::Debug for CheckedRecord {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("CheckedRecord")
            .field("record_id", &self.record_id)
            .field("national_id", &"<personal data>")
            .field("program_code", &self.program_code)
            .finish_non_exhaustive()
    }
}

/// Whether `id` is a record id: 1..=[`MAX_RECORD_ID_LEN`] printable ASCII, no space.
pub fn is_record_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_RECORD_ID_LEN
        && id.bytes().all(|byte| byte.is_ascii_graphic())
}

/// Checks one record of `department` at `at` (`records[3]`): the record, or every violation.
pub fn check_record(
    at: &str,
    fields: &RecordFields,
    department: &Department,
) -> Result<CheckedRecord, Vec<FieldViolation>> {
    let mut errors = ValidationErrors::new();
    let field = |name: &str| format!("{at}.{name}");
    if !is_record_id(&fields.record_id) {
        errors.push(
            field("record_id"),
            format!("1 to {MAX_RECORD_ID_LEN} printable ASCII characters, no spaces"),
        );
    }
    let national_id = errors.check(field("national_id"), NationalId::parse(&fields.national_id));
    if !department.programs.contains(&fields.program_code) {
        errors.push(
            field("program_code"),
            format!("not a program of department {}", department.code),
        );
    }
    if !KINDS.contains(&fields.kind.as_str()) {
        errors.push(field("kind"), format!("one of {}", KINDS.join(", ")));
    }
    let amount = match fields.amount_fen {
        Some(fen) if (0..=MAX_AMOUNT_FEN).contains(&fen) => Some(Money::from_fen(fen)),
        Some(_) => {
            errors.push(field("amount"), format!("0 to {MAX_AMOUNT_FEN} fen"));
            None
        }
        None => {
            errors.push(
                field("amount"),
                "required (0 for a benefit that is not money)",
            );
            None
        }
    };
    let start = errors.check(field("period_start"), Month::parse(&fields.period_start));
    let end = errors.check(field("period_end"), Month::parse(&fields.period_end));
    if let (Some(start), Some(end)) = (start, end) {
        let months = (end.year() - start.year()) * 12 + i32::from(end.month())
            - i32::from(start.month())
            + 1;
        if months < 1 {
            errors.push(field("period_end"), "must not be before period_start");
        } else if months > MAX_PERIOD_MONTHS {
            errors.push(
                field("period_end"),
                format!("at most {MAX_PERIOD_MONTHS} months after period_start"),
            );
        }
    }
    match (errors.into_result(), national_id, amount, start, end) {
        (Ok(()), Some(national_id), Some(amount), Some(period_start), Some(period_end)) => {
            Ok(CheckedRecord {
                record_id: fields.record_id.clone(),
                national_id,
                program_code: fields.program_code.clone(),
                kind: fields.kind.clone(),
                amount,
                period_start,
                period_end,
            })
        }
        (Err(errors), ..) => Err(errors.into_violations()),
        _ => Err(vec![FieldViolation {
            field: at.to_owned(),
            description: "incomplete record".into(),
        }]),
    }
}

/// One record's check in a batch: good, or its violations.
pub type Checked = Result<CheckedRecord, Vec<FieldViolation>>;

/// Checks every record of a batch (`prefix` is `records` or `rows`); a record id used twice in
/// the batch is a violation of the later record.
pub fn check_batch(prefix: &str, batch: &[RecordFields], department: &Department) -> Vec<Checked> {
    let mut seen = BTreeSet::new();
    batch
        .iter()
        .enumerate()
        .map(|(index, fields)| {
            let at = format!("{prefix}[{index}]");
            let mut checked = check_record(&at, fields, department);
            if is_record_id(&fields.record_id) && !seen.insert(fields.record_id.clone()) {
                let twice = FieldViolation {
                    field: format!("{at}.record_id"),
                    description: "used twice in this batch".into(),
                };
                match &mut checked {
                    Ok(_) => checked = Err(vec![twice]),
                    Err(violations) => violations.push(twice),
                }
            }
            checked
        })
        .collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::dictionary::FieldDictionary;
    use crate::registry::Registry;

    pub(crate) fn education() -> Department {
        let dictionary = FieldDictionary::embedded().expect("dictionary");
        Registry::example(&dictionary)
            .expect("registry")
            .department("education")
            .expect("education")
            .clone()
    }

    pub(crate) fn national_id(sequence: u32) -> String {
        NationalId::with_check_character(&format!("11010520100101{:03}", sequence % 1000))
            .expect("an id")
    }

    pub(crate) fn good(record_id: &str) -> RecordFields {
        RecordFields {
            record_id: record_id.into(),
            national_id: national_id(7),
            program_code: "education_assistance".into(),
            kind: "fee_exemption".into(),
            amount_fen: Some(120_000),
            period_start: "2026-09".into(),
            period_end: "2027-06".into(),
        }
    }

    fn fields_of(result: &Checked) -> Vec<String> {
        match result {
            Ok(_) => Vec::new(),
            Err(violations) => violations.iter().map(|v| v.field.clone()).collect(),
        }
    }

    #[test]
    fn a_good_record_is_checked() {
        let record = check_record("records[0]", &good("r-1"), &education()).expect("good");
        assert_eq!(record.amount, Money::from_fen(120_000));
        assert_eq!(record.period_end.to_string(), "2027-06");
    }

    #[test]
    fn every_bad_field_is_named_under_the_records_place() {
        let bad = RecordFields {
            record_id: "has space".into(),
            national_id: "110105201001010000".into(),
            program_code: "legal_aid".into(),
            kind: "gold".into(),
            amount_fen: Some(-1),
            period_start: "2026-13".into(),
            period_end: "2026-01".into(),
        };
        let result = check_record("records[4]", &bad, &education());
        assert_eq!(
            fields_of(&result),
            [
                "records[4].record_id",
                "records[4].national_id",
                "records[4].program_code",
                "records[4].kind",
                "records[4].amount",
                "records[4].period_start",
            ]
        );
    }

    #[test]
    fn no_violation_repeats_the_id_number() {
        let mut bad = good("r-1");
        bad.national_id = "11010520100101007Y".into();
        let Err(violations) = check_record("records[0]", &bad, &education()) else {
            panic!("a bad id number")
        };
        for violation in violations {
            assert!(!violation.description.contains("1101052010"), "{violation}");
        }
    }

    #[test]
    fn periods_and_amounts_are_bounded() {
        let mut backwards = good("r-1");
        backwards.period_end = "2026-08".into();
        assert_eq!(
            fields_of(&check_record("records[0]", &backwards, &education())),
            ["records[0].period_end"]
        );
        let mut long = good("r-1");
        long.period_start = "2020-01".into();
        long.period_end = "2030-01".into();
        assert_eq!(
            fields_of(&check_record("records[0]", &long, &education())),
            ["records[0].period_end"]
        );
        let mut rich = good("r-1");
        rich.amount_fen = Some(MAX_AMOUNT_FEN + 1);
        assert_eq!(
            fields_of(&check_record("records[0]", &rich, &education())),
            ["records[0].amount"]
        );
        let mut control = good("r-\u{7}");
        control.amount_fen = None;
        assert_eq!(
            fields_of(&check_record("records[0]", &control, &education())),
            ["records[0].record_id", "records[0].amount"]
        );
    }

    #[test]
    fn a_record_id_twice_in_a_batch_is_refused_at_its_second_place() {
        let checked = check_batch("records", &[good("a"), good("b"), good("a")], &education());
        assert!(checked[0].is_ok() && checked[1].is_ok());
        assert_eq!(fields_of(&checked[2]), ["records[2].record_id"]);
    }
}
