//! Request checks and limits: every bad field of a request is reported at once, by its path,
//! before anything is read or written. `docs/limits.md` (Payment) lists the same limits; keep
//! the two in step.

pub use sunshine_domain::validation::{MAX_COMMAND_ID_CHARS, check_command_id, check_uuid};
use sunshine_domain::{Money, Month, ValidationErrors};
use sunshine_proto::v1 as pb;

/// Largest page of a list; larger requests are refused, not cut short silently (as intake's).
pub const MAX_PAGE_SIZE: i32 = 100;
pub const DEFAULT_PAGE_SIZE: i32 = 50;
/// The largest re-keyed control total: 10^12 yuan in fen, far above any district's month.
pub const MAX_CONTROL_TOTAL_FEN: i64 = 100_000_000_000_000;

/// A run's period: `YYYY-MM`, and not after the month after `this_month` (a run is prepared
/// before the month it pays, never further ahead).
pub fn check_period(
    errors: &mut ValidationErrors,
    field: &str,
    value: &str,
    this_month: Month,
) -> Option<Month> {
    let Ok(period) = Month::parse(value) else {
        errors.push(field, "a month, YYYY-MM");
        return None;
    };
    let latest = this_month.next().unwrap_or(this_month);
    if period > latest {
        errors.push(field, format!("not after next month ({latest})"));
        return None;
    }
    Some(period)
}

/// The statuses a run can be in (`RunResponse.status`), which `ListRuns` filters on.
pub const RUN_STATUSES: &[&str] = &[
    "created",
    "approved",
    "exported",
    "result_recorded",
    "reconciled",
];

/// A query's filters: a period (`YYYY-MM`, empty allowed when `optional`) and a run status
/// (empty or one of [`RUN_STATUSES`]).
pub fn check_query_period(
    errors: &mut ValidationErrors,
    field: &str,
    value: &str,
    optional: bool,
) -> Option<Month> {
    if value.is_empty() && optional {
        return None;
    }
    match Month::parse(value) {
        Ok(month) => Some(month),
        Err(_) => {
            errors.push(field, "a month, YYYY-MM");
            None
        }
    }
}

/// A run status filter: empty, or one of [`RUN_STATUSES`].
pub fn check_run_status(errors: &mut ValidationErrors, field: &str, value: &str) {
    if !value.is_empty() && !RUN_STATUSES.contains(&value) {
        errors.push(
            field,
            format!("empty or one of {}", RUN_STATUSES.join(", ")),
        );
    }
}

/// An amount re-keyed by an officer: present, not negative, within reason.
pub fn check_amount(
    errors: &mut ValidationErrors,
    field: &str,
    value: Option<&pb::Money>,
) -> Option<Money> {
    let Some(money) = value else {
        errors.push(field, "required (fen)");
        return None;
    };
    if !(0..=MAX_CONTROL_TOTAL_FEN).contains(&money.fen) {
        errors.push(field, format!("from 0 to {MAX_CONTROL_TOTAL_FEN} fen"));
        return None;
    }
    Some(Money::from_fen(money.fen))
}

/// A page request: a size from 0 (the default) to [`MAX_PAGE_SIZE`], a token from a previous
/// page (an order id). Answers the number of items to return.
pub fn check_page(errors: &mut ValidationErrors, page: &pb::PageRequest) -> usize {
    if !(0..=MAX_PAGE_SIZE).contains(&page.page_size) {
        errors.push(
            "page.page_size",
            format!("from 0 (default {DEFAULT_PAGE_SIZE}) to {MAX_PAGE_SIZE}"),
        );
    }
    if !page.page_token.is_empty() {
        check_uuid(
            errors,
            "page.page_token",
            &page.page_token,
            "a token from a previous page",
        );
    }
    let size = if page.page_size <= 0 || page.page_size > MAX_PAGE_SIZE {
        DEFAULT_PAGE_SIZE
    } else {
        page.page_size
    };
    usize::try_from(size).unwrap_or(50)
}

// ---- Medical assistance claims ----

/// The longest patient member id and settlement reference.
pub const MAX_CLAIM_ID_CHARS: usize = 64;
/// The largest out-of-pocket cost of one claim: 10^8 yuan in fen.
pub const MAX_OUT_OF_POCKET_FEN: i64 = 10_000_000_000;

/// An opaque id (a patient's member id, a case id): 1 to 64 of `A-Z a-z 0-9 - _`, never a
/// name.
pub fn check_opaque_id(errors: &mut ValidationErrors, field: &str, value: &str) {
    let fits = !value.is_empty()
        && value.len() <= MAX_CLAIM_ID_CHARS
        && value
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_');
    if !fits {
        errors.push(field, "1 to 64 of A-Z a-z 0-9 - _ (an opaque id)");
    }
}

/// A settlement reference: 1 to 64 printable ASCII characters.
pub fn check_settlement_reference(errors: &mut ValidationErrors, field: &str, value: &str) {
    let fits = !value.is_empty()
        && value.len() <= MAX_CLAIM_ID_CHARS
        && value.bytes().all(|byte| byte.is_ascii_graphic());
    if !fits {
        errors.push(field, "1 to 64 printable ASCII characters");
    }
}

/// An out-of-pocket cost: present, more than 0, at most [`MAX_OUT_OF_POCKET_FEN`].
pub fn check_out_of_pocket(
    errors: &mut ValidationErrors,
    field: &str,
    value: Option<&pb::Money>,
) -> Option<Money> {
    match value {
        Some(money) if (1..=MAX_OUT_OF_POCKET_FEN).contains(&money.fen) => {
            Some(Money::from_fen(money.fen))
        }
        _ => {
            errors.push(
                field,
                format!("more than 0, at most {MAX_OUT_OF_POCKET_FEN} fen"),
            );
            None
        }
    }
}

/// A settlement date: a real date, not after `today`, not before last year's 1 January.
pub fn check_settlement_date(
    errors: &mut ValidationErrors,
    field: &str,
    value: Option<&pb::Date>,
    today: time::Date,
) -> Option<time::Date> {
    let date = value.and_then(|date| {
        let month = time::Month::try_from(u8::try_from(date.month).ok()?).ok()?;
        time::Date::from_calendar_date(date.year, month, u8::try_from(date.day).ok()?).ok()
    });
    let earliest = time::Date::from_calendar_date(today.year() - 1, time::Month::January, 1).ok();
    match date {
        Some(date) if date <= today && earliest.is_some_and(|earliest| date >= earliest) => {
            Some(date)
        }
        _ => {
            errors.push(
                field,
                format!("a date from {}-01-01 to today ({today})", today.year() - 1),
            );
            None
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn fields(errors: ValidationErrors) -> Vec<String> {
        errors
            .into_violations()
            .into_iter()
            .map(|violation| violation.field)
            .collect()
    }

    #[test]
    fn a_period_is_a_month_not_after_next_month() {
        let september = Month::parse("2026-09").unwrap();
        let mut errors = ValidationErrors::default();
        assert_eq!(
            check_period(&mut errors, "period", "2026-10", september),
            Some(Month::parse("2026-10").unwrap())
        );
        assert!(check_period(&mut errors, "period", "2025-01", september).is_some());
        assert!(errors.is_empty());
        for bad in [
            "2026-11",
            "2026-9",
            "2026-13",
            "",
            "2026-10\u{0}",
            "２０２６-10",
        ] {
            let mut errors = ValidationErrors::default();
            assert_eq!(check_period(&mut errors, "period", bad, september), None);
            assert_eq!(fields(errors), ["period"], "{bad:?}");
        }
    }

    #[test]
    fn command_ids_are_printable_ascii_of_bounded_length() {
        let mut errors = ValidationErrors::default();
        check_command_id(&mut errors, "run-2026-10");
        assert!(errors.is_empty());
        for bad in [
            String::new(),
            "x".repeat(101),
            "run\n1".into(),
            "运行".into(),
        ] {
            let mut errors = ValidationErrors::default();
            check_command_id(&mut errors, &bad);
            assert_eq!(fields(errors), ["command_id"]);
        }
    }

    #[test]
    fn a_page_of_a_million_is_refused() {
        let mut errors = ValidationErrors::default();
        let page = pb::PageRequest {
            page_size: 1_000_000,
            page_token: String::new(),
        };
        check_page(&mut errors, &page);
        assert_eq!(fields(errors), ["page.page_size"]);
        let mut errors = ValidationErrors::default();
        assert_eq!(check_page(&mut errors, &pb::PageRequest::default()), 50);
        assert!(errors.is_empty());
    }

    #[test]
    fn amounts_are_present_and_not_negative() {
        let mut errors = ValidationErrors::default();
        assert_eq!(
            check_amount(&mut errors, "control_total", Some(&pb::Money { fen: 5 })),
            Some(Money::from_fen(5))
        );
        check_amount(&mut errors, "control_total", None);
        check_amount(&mut errors, "control_total", Some(&pb::Money { fen: -1 }));
        assert_eq!(fields(errors), ["control_total", "control_total"]);
    }
}
