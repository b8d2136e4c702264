//! The CSV file of assistance records for departments without a network link
//! (`docs/department-files.md`): read byte by byte and checked row by row, every bad row named
//! (`rows[i]`, `rows[i].field`, counting data rows from 0); a row is whole or bad, never half
//! read. Pure.

use sunshine_domain::FieldViolation;

use crate::records::{self, Checked, MAX_BATCH, RecordFields};
use crate::registry::Department;

/// Largest file: 4 MiB.
pub const MAX_FILE_BYTES: usize = 4 * 1024 * 1024;

/// The header line, exactly (a UTF-8 byte-order mark before it is allowed).
pub const HEADER: &str =
    "record_id,national_id,program_code,kind,amount_fen,period_start,period_end";

const COLUMNS: usize = 7;

fn violation(field: impl Into<String>, description: impl Into<String>) -> FieldViolation {
    FieldViolation {
        field: field.into(),
        description: description.into(),
    }
}

/// One line's fields: comma-separated, a field may be quoted with `"` (a quote inside doubled);
/// `None` when the quoting is broken.
fn split_line(line: &str) -> Option<Vec<String>> {
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut characters = line.chars().peekable();
    let mut quoted = false;
    let mut at_field_start = true;
    while let Some(character) = characters.next() {
        if quoted {
            if character == '"' {
                if characters.peek() == Some(&'"') {
                    characters.next();
                    field.push('"');
                } else {
                    quoted = false;
                    // After a closing quote only a comma or the end may follow.
                    match characters.peek() {
                        None | Some(',') => {}
                        Some(_) => return None,
                    }
                }
            } else {
                field.push(character);
            }
            continue;
        }
        match character {
            '"' if at_field_start => {
                quoted = true;
                at_field_start = false;
            }
            '"' => return None,
            ',' => {
                fields.push(std::mem::take(&mut field));
                at_field_start = true;
            }
            other => {
                field.push(other);
                at_field_start = false;
            }
        }
    }
    if quoted {
        return None;
    }
    fields.push(field);
    Some(fields)
}

/// The file's data rows as records' fields, or each row's structural fault; a fault of the
/// whole file (size, encoding, header, row count) is `Err`, naming `file`.
pub fn read_rows(
    file: &[u8],
) -> Result<Vec<Result<RecordFields, Vec<FieldViolation>>>, Vec<FieldViolation>> {
    if file.len() > MAX_FILE_BYTES {
        return Err(vec![violation(
            "file",
            format!("at most {MAX_FILE_BYTES} bytes"),
        )]);
    }
    let Ok(text) = std::str::from_utf8(file) else {
        return Err(vec![violation("file", "must be UTF-8")]);
    };
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut lines = text
        .split('\n')
        .map(|line| line.strip_suffix('\r').unwrap_or(line));
    if lines.next() != Some(HEADER) {
        return Err(vec![violation(
            "file",
            format!("the first line must be the header {HEADER}"),
        )]);
    }
    let mut rows: Vec<&str> = lines.collect();
    // One line break after the last row is allowed.
    if rows.last() == Some(&"") {
        rows.pop();
    }
    if rows.is_empty() {
        return Err(vec![violation("file", "has no data rows")]);
    }
    if rows.len() > MAX_BATCH {
        return Err(vec![violation(
            "file",
            format!("at most {MAX_BATCH} data rows"),
        )]);
    }
    Ok(rows
        .into_iter()
        .enumerate()
        .map(|(index, line)| read_row(index, line))
        .collect())
}

fn read_row(index: usize, line: &str) -> Result<RecordFields, Vec<FieldViolation>> {
    let at = format!("rows[{index}]");
    let Some(fields) = split_line(line) else {
        return Err(vec![violation(at, "broken quoting: the row is not read")]);
    };
    if fields.len() != COLUMNS {
        return Err(vec![violation(
            at,
            format!(
                "{} fields, {COLUMNS} expected: the row is not read",
                fields.len()
            ),
        )]);
    }
    let amount_fen = if fields[4].is_empty() {
        None
    } else if fields[4].len() <= 12 && fields[4].bytes().all(|byte| byte.is_ascii_digit()) {
        fields[4].parse::<i64>().ok()
    } else {
        return Err(vec![violation(
            format!("{at}.amount"),
            "whole fen, digits only",
        )]);
    };
    let mut fields = fields.into_iter();
    let mut next = || fields.next().unwrap_or_default();
    let record_id = next();
    let national_id = next();
    let program_code = next();
    let kind = next();
    let _amount = next();
    Ok(RecordFields {
        record_id,
        national_id,
        program_code,
        kind,
        amount_fen,
        period_start: next(),
        period_end: next(),
    })
}

/// The file's rows checked as records of `department` (`rows[i].field`), or the file's own
/// fault.
pub fn check_file(
    file: &[u8],
    department: &Department,
) -> Result<Vec<Checked>, Vec<FieldViolation>> {
    let rows = read_rows(file)?;
    let good: Vec<RecordFields> = rows
        .iter()
        .map(|row| row.clone().unwrap_or_default())
        .collect();
    let checked = records::check_batch("rows", &good, department);
    Ok(rows
        .into_iter()
        .zip(checked)
        .map(|(row, checked)| match row {
            Ok(_) => checked,
            Err(violations) => Err(violations),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::tests::{education, national_id};

    fn row(record_id: &str, national_id: &str, amount: &str) -> String {
        format!(
            "{record_id},{national_id},education_assistance,fee_exemption,{amount},2026-09,2027-06"
        )
    }

    fn file(rows: &[String]) -> Vec<u8> {
        let mut text = String::from(HEADER);
        for row in rows {
            text.push_str("\r\n");
            text.push_str(row);
        }
        text.push('\n');
        text.into_bytes()
    }

    fn bad_fields(checked: &[Checked]) -> Vec<String> {
        checked
            .iter()
            .filter_map(|checked| checked.as_ref().err())
            .flatten()
            .map(|violation| violation.field.clone())
            .collect()
    }

    #[test]
    fn a_good_file_reads_every_row() {
        let rows: Vec<String> = (0..3)
            .map(|i| row(&format!("r-{i}"), &national_id(i), "1000"))
            .collect();
        let checked = check_file(&file(&rows), &education()).expect("a good file");
        assert_eq!(checked.len(), 3);
        assert!(checked.iter().all(Result::is_ok));
    }

    #[test]
    fn every_bad_row_is_named_and_a_short_or_broken_row_is_not_read_at_all() {
        let rows = vec![
            row("r-0", &national_id(0), "1000"),
            row("r-1", "not-an-id", "1000"),
            "r-2,only,three".to_owned(),
            row("r-3", &national_id(3), "12.50"),
            format!("\"r-4,{}", &national_id(4)),
            row("r-5", &national_id(5), "1000"),
            row("r-0", &national_id(6), "1000"),
        ];
        let checked = check_file(&file(&rows), &education()).expect("rows");
        assert_eq!(
            bad_fields(&checked),
            [
                "rows[1].national_id",
                "rows[2]",
                "rows[3].amount",
                "rows[4]",
                "rows[6].record_id"
            ]
        );
        assert!(checked[0].is_ok() && checked[5].is_ok());
    }

    #[test]
    fn quoted_fields_and_a_byte_order_mark_are_read() {
        let mut text = format!("\u{feff}{HEADER}\n");
        text.push_str(&format!(
            "\"r,\"\"1\"\"\",{},education_assistance,cash,0,2026-01,2026-01\n",
            national_id(1)
        ));
        let rows = read_rows(text.as_bytes()).expect("rows");
        let fields = rows[0].as_ref().expect("a row");
        assert_eq!(fields.record_id, "r,\"1\"");
        assert_eq!(fields.amount_fen, Some(0));
    }

    #[test]
    fn the_whole_file_is_refused_for_its_header_size_encoding_or_row_count() {
        let file_fault = |bytes: &[u8]| {
            read_rows(bytes)
                .expect_err("a bad file")
                .iter()
                .map(|v| v.field.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(file_fault(b"id,name\n1,2\n"), ["file"]);
        assert_eq!(file_fault(&[0xff, 0xfe, 0x00]), ["file"]);
        assert_eq!(file_fault(format!("{HEADER}\n").as_bytes()), ["file"]);
        assert_eq!(file_fault(&vec![b'a'; MAX_FILE_BYTES + 1]), ["file"]);
        let many: Vec<String> = (0..=MAX_BATCH as u32)
            .map(|i| row(&format!("r-{i}"), &national_id(i), "1"))
            .collect();
        assert_eq!(file_fault(&file(&many)), ["file"]);
    }

    #[test]
    fn the_documented_example_is_read_as_the_docs_say() {
        let docs = include_str!("../../../docs/department-files.md");
        let start = docs
            .find(&format!("```text\n{HEADER}\nedu"))
            .expect("the example")
            + 8;
        let end = start + docs[start..].find("```").expect("its end");
        let checked = check_file(&docs.as_bytes()[start..end], &education()).expect("a good file");
        assert_eq!(checked.len(), 2);
        assert!(checked.iter().all(Result::is_ok), "{checked:?}");
    }

    #[test]
    fn a_control_character_in_a_row_makes_it_bad() {
        let rows = vec![row("r-\u{1b}[31m", &national_id(1), "1")];
        let checked = check_file(&file(&rows), &education()).expect("rows");
        assert_eq!(bad_fields(&checked), ["rows[0].record_id"]);
    }
}
