//! The national low-income population monitoring platform's warnings (预警) as the district
//! center's work: a warning checked field by field (`warnings[i].field`), received once per
//! warning id with a deadline in working days, closed once with an outcome and a note; its
//! status as of a day. And the feed's hashed ids (`docs/monitoring-feed.md`). Pure.
//!
//! Events: `MonitoringWarningReceived` on `department-integration-warningbatch-<import>` (one
//! stream per import command, so a retry lands on it), `MonitoringWarningClosed` on
//! `department-integration-warning-<warning key>` (one per warning: closed once).

use std::collections::BTreeSet;

use sha2::Digest as _;
use sunshine_domain::{FieldViolation, OrgUnitCode, ValidationErrors};
use sunshine_proto::v1 as pb;
use time::Date;

sunshine_proto::stream_events! {
    /// The events of `department-integration-warningbatch-<import id>`.
    #[derive(Debug, Clone, PartialEq)]
    pub enum WarningBatchEvent in "department-integration-warningbatch" {
        Received(pb::MonitoringWarningReceived),
    }
}

sunshine_proto::stream_events! {
    /// The events of `department-integration-feed-<month>`.
    #[derive(Debug, Clone, PartialEq)]
    pub enum FeedEvent in "department-integration-feed" {
        Exported(pb::MonitoringFeedExported),
    }
}

sunshine_proto::stream_events! {
    /// The events of `department-integration-warning-<warning key>`.
    #[derive(Debug, Clone, PartialEq)]
    pub enum WarningEvent in "department-integration-warning" {
        Closed(pb::MonitoringWarningClosed),
    }
}

/// What the platform warns of.
pub const KINDS: &[&str] = &[
    "policy_not_delivered",
    "possibly_eligible",
    "complex_case",
    "possibly_ineligible",
];
/// How a warning is closed.
pub const OUTCOMES: &[&str] = &["verified", "not_confirmed", "rectified", "funds_recovered"];
/// Warnings in one import.
pub const MAX_BATCH: usize = 500;
/// Longest warning id (printable ASCII).
pub const MAX_WARNING_ID_LEN: usize = 64;
/// Longest detail of a warning, in characters.
pub const MAX_DETAIL_CHARS: usize = 500;
/// Longest closing note, in characters.
pub const MAX_NOTE_CHARS: usize = 1_000;

/// Whether `id` is a warning id: 1..=[`MAX_WARNING_ID_LEN`] printable ASCII, no space.
pub fn is_warning_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_WARNING_ID_LEN
        && id.bytes().all(|byte| byte.is_ascii_graphic())
}

/// Whether `id` is a feed id: 64 lowercase hexadecimal characters.
pub fn is_feed_id(id: &str) -> bool {
    id.len() == 64
        && id
            .bytes()
            .all(|byte| matches!(byte, b'0'..=b'9' | b'a'..=b'f'))
}

/// Whether `text` has at most `max` characters and no control character (line breaks allowed
/// when `lines`).
pub fn is_plain_text(text: &str, max: usize, lines: bool) -> bool {
    text.chars().count() <= max
        && text
            .chars()
            .all(|c| !c.is_control() || (lines && (c == '\n' || c == '\r')))
}

/// A warning whose every field is good.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckedWarning {
    pub warning: pb::MonitoringWarning,
    pub raised_on: Date,
}

/// Checks a batch of warnings at `warnings[i]` for `district`, with `is_program` telling the
/// registry's programs: every warning, or every violation of every warning.
pub fn check_batch(
    warnings: &[pb::MonitoringWarning],
    district: &OrgUnitCode,
    is_program: impl Fn(&str) -> bool,
) -> Result<Vec<CheckedWarning>, Vec<FieldViolation>> {
    let mut errors = ValidationErrors::new();
    if warnings.is_empty() || warnings.len() > MAX_BATCH {
        errors.push("warnings", format!("1 to {MAX_BATCH} warnings"));
        return Err(errors.into_violations());
    }
    let mut seen = BTreeSet::new();
    let mut checked = Vec::with_capacity(warnings.len());
    for (index, warning) in warnings.iter().enumerate() {
        let field = |name: &str| format!("warnings[{index}].{name}");
        if !is_warning_id(&warning.warning_id) {
            errors.push(
                field("warning_id"),
                format!("1 to {MAX_WARNING_ID_LEN} printable ASCII characters, no spaces"),
            );
        } else if !seen.insert(warning.warning_id.as_str()) {
            errors.push(field("warning_id"), "used twice in this batch");
        }
        if !KINDS.contains(&warning.kind.as_str()) {
            errors.push(field("kind"), format!("one of {}", KINDS.join(", ")));
        }
        if !is_feed_id(&warning.feed_person_id) {
            errors.push(
                field("feed_person_id"),
                "the feed's id: 64 lowercase hexadecimal characters",
            );
        }
        if !warning.program_code.is_empty() && !is_program(&warning.program_code) {
            errors.push(field("program_code"), "not a program of the registry");
        }
        let in_district = OrgUnitCode::parse(&warning.street_town_code)
            .is_ok_and(|code| district.covers(&code) && code != *district);
        if !in_district {
            errors.push(
                field("street_town_code"),
                "an org unit code of this district's street-towns",
            );
        }
        if !is_plain_text(&warning.detail, MAX_DETAIL_CHARS, false) {
            errors.push(
                field("detail"),
                format!("at most {MAX_DETAIL_CHARS} characters, no control characters"),
            );
        }
        let raised_on = sunshine_proto::dates::to_date(warning.raised_on.as_ref());
        if raised_on.is_none() {
            errors.push(
                field("raised_on"),
                "required: the day the platform raised it",
            );
        }
        if let Some(raised_on) = raised_on {
            checked.push(CheckedWarning {
                warning: warning.clone(),
                raised_on,
            });
        }
    }
    errors
        .into_result()
        .map_err(|errors| errors.into_violations())?;
    Ok(checked)
}

/// SHA-256 (hex) of what a warning says.
pub fn warning_digest(warning: &pb::MonitoringWarning) -> String {
    let mut hasher = sha2::Sha256::new();
    hasher.update(b"sunshine/monitoring-warning/v1\n");
    hasher.update(prost::Message::encode_to_vec(warning));
    hex::encode(hasher.finalize())
}

/// A warning's status as of `today`: closed, overdue (open past its deadline) or open.
pub fn status(deadline: Date, closed: bool, today: Date) -> &'static str {
    if closed {
        "closed"
    } else if today > deadline {
        "overdue"
    } else {
        "open"
    }
}

/// Why a warning cannot be closed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloseError {
    Invalid(Vec<FieldViolation>),
    ClosedBefore,
}

/// Checks a closing: the outcome and the note.
pub fn check_close(outcome: &str, note: &str) -> Result<(), Vec<FieldViolation>> {
    let mut errors = ValidationErrors::new();
    if !OUTCOMES.contains(&outcome) {
        errors.push("outcome", format!("one of {}", OUTCOMES.join(", ")));
    }
    if note.trim().is_empty() || !is_plain_text(note, MAX_NOTE_CHARS, true) {
        errors.push(
            "note",
            format!("1 to {MAX_NOTE_CHARS} characters, no control characters but line breaks"),
        );
    }
    errors
        .into_result()
        .map_err(|errors| errors.into_violations())
}

/// The closing of a warning `closed` says whether it is closed already.
pub fn decide_close(
    warning_id: &str,
    closed: bool,
    outcome: &str,
    note: &str,
    today: Date,
) -> Result<pb::MonitoringWarningClosed, CloseError> {
    check_close(outcome, note).map_err(CloseError::Invalid)?;
    if closed {
        return Err(CloseError::ClosedBefore);
    }
    Ok(pb::MonitoringWarningClosed {
        warning_id: warning_id.to_owned(),
        outcome: outcome.to_owned(),
        note: note.to_owned(),
        closed_on: Some(sunshine_proto::dates::from_date(today)),
    })
}

// ---- The feed (docs/monitoring-feed.md) ----

/// The feed's format, in its every row and event.
pub const FEED_FORMAT: &str = "sunshine-monitoring-feed/1";
/// The feed's header line.
pub const FEED_HEADER: &str = "format,month,feed_person_id,department_code,program_code,category,kind,amount_fen,period_start,period_end,street_town_code";
/// Rows in one page of the feed.
pub const MAX_FEED_PAGE: i32 = 5_000;

/// A person's id in the feed: SHA-256 (hex) of the district and the service's person index
/// (itself an HMAC of the id number under the service's own key), so the feed never carries
/// an id number and nobody without the key can compute a feed id from one.
pub fn feed_person_id(district: &str, person_index_hex: &str) -> String {
    let mut hasher = sha2::Sha256::new();
    hasher.update(b"sunshine/monitoring-feed/person/v1\n");
    hasher.update(district.as_bytes());
    hasher.update(b"\n");
    hasher.update(person_index_hex.as_bytes());
    hex::encode(hasher.finalize())
}

/// The feed's category of a program: the recipients of dibao and tekun, the near-recipients
/// (低保边缘) of the low-income programs, the rest special or temporary assistance.
pub fn category(program_code: &str) -> &'static str {
    match program_code {
        "dibao" => "dibao",
        "tekun" => "tekun",
        "low_income" | "low_income_margin" => "low_income",
        "temporary_assistance" | "disaster_relief" => "temporary",
        _ => "special",
    }
}

/// One record in force in the month, as the feed writes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedRecord {
    pub person_index: String,
    pub department_code: String,
    pub program_code: String,
    pub kind: String,
    pub amount_fen: i64,
    pub period_start: String,
    pub period_end: String,
}

/// The feed file of `records` for `month` of `district`: the header and one line a record.
/// Every value is a code, a number, a month or a hex id (no comma or quote to escape); the
/// street-town column is empty (departments' records carry none).
pub fn feed_file(district: &str, month: &str, records: &[FeedRecord]) -> Vec<u8> {
    let mut file = String::with_capacity(64 + records.len() * 160);
    file.push_str(FEED_HEADER);
    file.push('\n');
    for record in records {
        let line = [
            FEED_FORMAT,
            month,
            &feed_person_id(district, &record.person_index),
            &record.department_code,
            &record.program_code,
            category(&record.program_code),
            &record.kind,
            &record.amount_fen.to_string(),
            &record.period_start,
            &record.period_end,
            "",
        ]
        .join(",");
        file.push_str(&line);
        file.push('\n');
    }
    file.into_bytes()
}

/// SHA-256 (hex) of a feed page.
pub fn file_sha256(file: &[u8]) -> String {
    hex::encode(sha2::Sha256::digest(file))
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    fn district() -> OrgUnitCode {
        OrgUnitCode::parse("110105000000").expect("a district")
    }

    pub(crate) fn good(id: &str) -> pb::MonitoringWarning {
        pb::MonitoringWarning {
            warning_id: id.into(),
            kind: "possibly_eligible".into(),
            feed_person_id: "ab".repeat(32),
            program_code: "dibao".into(),
            street_town_code: "110105001000".into(),
            detail: "income fell below the standard".into(),
            raised_on: Some(sunshine_proto::dates::from_date(date!(2026 - 11 - 30))),
        }
    }

    fn fields(result: Result<Vec<CheckedWarning>, Vec<FieldViolation>>) -> Vec<String> {
        match result {
            Ok(_) => Vec::new(),
            Err(violations) => violations.into_iter().map(|v| v.field).collect(),
        }
    }

    #[test]
    fn a_good_batch_is_checked() {
        let checked =
            check_batch(&[good("w-1"), good("w-2")], &district(), |p| p == "dibao").expect("ok");
        assert_eq!(checked.len(), 2);
        assert_eq!(checked[1].raised_on, date!(2026 - 11 - 30));
    }

    #[test]
    fn every_bad_field_is_named_under_its_warning() {
        let mut bad = good("w 2");
        bad.kind = "rumour".into();
        bad.feed_person_id = "110105201001010000".into();
        bad.program_code = "lottery".into();
        bad.street_town_code = "120105001000".into();
        bad.detail = "bell\u{7}".into();
        bad.raised_on = None;
        assert_eq!(
            fields(check_batch(
                &[good("w-1"), bad, good("w-1")],
                &district(),
                |p| p == "dibao"
            )),
            [
                "warnings[1].warning_id",
                "warnings[1].kind",
                "warnings[1].feed_person_id",
                "warnings[1].program_code",
                "warnings[1].street_town_code",
                "warnings[1].detail",
                "warnings[1].raised_on",
                "warnings[2].warning_id",
            ]
        );
    }

    #[test]
    fn a_batch_is_bounded_and_the_district_itself_is_no_street_town() {
        assert_eq!(
            fields(check_batch(&[], &district(), |_| true)),
            ["warnings"]
        );
        let many = vec![good("w"); MAX_BATCH + 1];
        assert_eq!(
            fields(check_batch(&many, &district(), |_| true)),
            ["warnings"]
        );
        let mut at_district = good("w-1");
        at_district.street_town_code = "110105000000".into();
        assert_eq!(
            fields(check_batch(&[at_district], &district(), |_| true)),
            ["warnings[0].street_town_code"]
        );
    }

    #[test]
    fn a_warning_is_open_then_overdue_until_closed() {
        let deadline = date!(2026 - 12 - 14);
        assert_eq!(status(deadline, false, date!(2026 - 12 - 14)), "open");
        assert_eq!(status(deadline, false, date!(2026 - 12 - 15)), "overdue");
        assert_eq!(status(deadline, true, date!(2026 - 12 - 15)), "closed");
    }

    #[test]
    fn a_warning_closes_once_with_an_outcome_and_a_plain_note() {
        let today = date!(2026 - 12 - 2);
        let closed =
            decide_close("w-1", false, "rectified", "paid from December\n", today).expect("closed");
        assert_eq!(closed.outcome, "rectified");
        assert_eq!(
            decide_close("w-1", true, "rectified", "again", today),
            Err(CloseError::ClosedBefore)
        );
        let Err(CloseError::Invalid(violations)) = decide_close(
            "w-1",
            false,
            "forgotten",
            &"x".repeat(MAX_NOTE_CHARS + 1),
            today,
        ) else {
            panic!("invalid")
        };
        let named: Vec<&str> = violations.iter().map(|v| v.field.as_str()).collect();
        assert_eq!(named, ["outcome", "note"]);
        assert!(decide_close("w-1", false, "verified", "tab\u{9}bell\u{7}", today).is_err());
        assert!(decide_close("w-1", false, "verified", "  ", today).is_err());
    }

    #[test]
    fn the_feed_has_a_header_and_a_line_a_record_with_no_id_number() {
        let record = FeedRecord {
            person_index: "07".repeat(32),
            department_code: "civil_affairs".into(),
            program_code: "dibao".into(),
            kind: "cash".into(),
            amount_fen: 98_000,
            period_start: "2026-01".into(),
            period_end: "2026-12".into(),
        };
        let file =
            String::from_utf8(feed_file("990101000000", "2026-09", &[record])).expect("utf-8");
        let lines: Vec<&str> = file.lines().collect();
        assert_eq!(lines[0], FEED_HEADER);
        let fields: Vec<&str> = lines[1].split(',').collect();
        assert_eq!(fields.len(), FEED_HEADER.split(',').count());
        assert_eq!(fields[2], feed_person_id("990101000000", &"07".repeat(32)));
        assert!(is_feed_id(fields[2]));
        assert_eq!((fields[5], fields[7]), ("dibao", "98000"));
        assert_ne!(
            feed_person_id("990101000000", &"07".repeat(32)),
            feed_person_id("990102000000", &"07".repeat(32))
        );
    }

    #[test]
    fn the_digest_changes_with_the_content() {
        let mut other = good("w-1");
        other.detail = "other".into();
        assert_ne!(warning_digest(&good("w-1")), warning_digest(&other));
        assert_eq!(warning_digest(&good("w-1")), warning_digest(&good("w-1")));
    }
}
