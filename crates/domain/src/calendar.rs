//! Working days for statutory deadlines, from the State Council's yearly holiday notices.
//!
//! This module owns [`WorkingDayCalendar`]: which dates are working days, and deadline
//! arithmetic in working days. The exact questions ([`WorkingDayCalendar::is_working_day`],
//! [`WorkingDayCalendar::add_working_days`]) refuse to answer for a year whose holiday notice it
//! does not hold, because a deadline computed on a guessed calendar could be wrong by days.
//! Statutory deadlines must still be shown when the next year's notice is late (it usually comes
//! in October–November, and a case accepted in December runs into the new year), so
//! [`WorkingDayCalendar::due_after`] counts such a year by weekends only and marks the result
//! [`DueDate::provisional`]: callers compute deadlines on read, so they become exact as soon as
//! the notice is added to the data file.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use time::{Date, Month, Weekday};

const EMBEDDED_WORKING_DAYS_TOML: &str = include_str!("../data/working-days.toml");

/// 工作日 (working days): the official working-day calendar for the years it covers.
///
/// A date is a working day if it is Monday–Friday and not a public holiday, or if it is a
/// weekend date made a working day by 调休 (an adjusted working day). Built from one table per
/// year; see `data/working-days.toml` for the format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkingDayCalendar {
    rules_by_year: BTreeMap<i32, YearRules>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct YearRules {
    holidays: BTreeSet<Date>,
    adjusted_working_days: BTreeSet<Date>,
}

/// A deadline in working days, and whether it is only provisional: part of the count fell in a
/// year without a published holiday notice, where Monday–Friday counted as working days. A
/// provisional date may move later (never earlier) once that year's holidays are known.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DueDate {
    pub date: Date,
    pub provisional: bool,
}

/// Why a calendar question could not be answered or a calendar file was rejected.
#[derive(Debug, thiserror::Error)]
pub enum CalendarError {
    #[error("working-day calendar does not cover year {year}")]
    YearNotCovered { year: i32 },
    #[error("cannot read working-day calendar file {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("malformed working-day calendar file")]
    Toml(#[from] toml::de::Error),
    #[error("working-day calendar covers no years")]
    NoYears,
    #[error("calendar table name {key:?} is not a year")]
    InvalidYear { key: String },
    #[error("calendar year {year} has an invalid date {text:?}; expected YYYY-MM-DD")]
    InvalidDate { year: i32, text: String },
    #[error("date {date} is listed under year {year}")]
    DateOutsideItsYear { year: i32, date: Date },
    #[error("date {date} is listed more than once")]
    DuplicateDate { date: Date },
    #[error("adjusted working day {date} is not a saturday or sunday")]
    AdjustedWorkingDayNotOnWeekend { date: Date },
    #[error("date {date} is listed both as a holiday and as an adjusted working day")]
    HolidayAndAdjustedWorkingDay { date: Date },
    #[error("date arithmetic went past the last representable date")]
    DateOutOfRange,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct YearTable {
    #[serde(default)]
    holidays: Vec<String>,
    #[serde(default)]
    adjusted_working_days: Vec<String>,
}

impl WorkingDayCalendar {
    /// Parses and validates a calendar from TOML text: one table per year, e.g.
    /// `[2026]` with `holidays = ["2026-01-01", …]` and `adjusted_working_days = […]`.
    pub fn from_toml_str(text: &str) -> Result<WorkingDayCalendar, CalendarError> {
        let tables_by_key: BTreeMap<String, YearTable> = toml::from_str(text)?;
        if tables_by_key.is_empty() {
            return Err(CalendarError::NoYears);
        }
        let mut rules_by_year = BTreeMap::new();
        for (key, table) in tables_by_key {
            let year = parse_year_key(&key)?;
            let rules = YearRules::from_table(year, &table)?;
            rules_by_year.insert(year, rules);
        }
        Ok(WorkingDayCalendar { rules_by_year })
    }

    /// Reads and validates a calendar from a TOML file.
    pub fn load(path: impl AsRef<Path>) -> Result<WorkingDayCalendar, CalendarError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| CalendarError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        WorkingDayCalendar::from_toml_str(&text)
    }

    /// The calendar compiled into this crate from `data/working-days.toml`.
    pub fn embedded() -> Result<WorkingDayCalendar, CalendarError> {
        WorkingDayCalendar::from_toml_str(EMBEDDED_WORKING_DAYS_TOML)
    }

    /// The years this calendar can answer for, in ascending order.
    pub fn covered_years(&self) -> Vec<i32> {
        self.rules_by_year.keys().copied().collect()
    }

    pub fn covers_year(&self, year: i32) -> bool {
        self.rules_by_year.contains_key(&year)
    }

    pub fn is_working_day(&self, date: Date) -> Result<bool, CalendarError> {
        let rules = self
            .rules_by_year
            .get(&date.year())
            .ok_or(CalendarError::YearNotCovered { year: date.year() })?;
        Ok(rules.is_working_day(date))
    }

    /// The first working day strictly after `date`.
    pub fn next_working_day(&self, date: Date) -> Result<Date, CalendarError> {
        self.add_working_days(date, 1)
    }

    /// The deadline `working_day_count` working days after `start`: the start day itself does
    /// not count, and the result is the `working_day_count`-th working day after it. With a
    /// count of 0 the result is `start`.
    ///
    /// Fails with [`CalendarError::YearNotCovered`] if the walk reaches an uncovered year.
    pub fn add_working_days(
        &self,
        start: Date,
        working_day_count: u32,
    ) -> Result<Date, CalendarError> {
        let mut current = start;
        let mut working_days_passed = 0_u32;
        while working_days_passed < working_day_count {
            current = current.next_day().ok_or(CalendarError::DateOutOfRange)?;
            if self.is_working_day(current)? {
                working_days_passed += 1;
            }
        }
        Ok(current)
    }

    /// The deadline `working_day_count` working days after `start`, counted like
    /// [`WorkingDayCalendar::add_working_days`], except that a year the calendar does not cover
    /// counts every Monday–Friday as a working day (its holidays are not yet known) and makes
    /// the result [`DueDate::provisional`]. Never fails for an uncovered year.
    pub fn due_after(&self, start: Date, working_day_count: u32) -> Result<DueDate, CalendarError> {
        let mut current = start;
        let mut working_days_passed = 0_u32;
        let mut provisional = false;
        while working_days_passed < working_day_count {
            current = current.next_day().ok_or(CalendarError::DateOutOfRange)?;
            let working = match self.rules_by_year.get(&current.year()) {
                Some(rules) => rules.is_working_day(current),
                None => {
                    provisional = true;
                    !is_weekend(current)
                }
            };
            if working {
                working_days_passed += 1;
            }
        }
        Ok(DueDate {
            date: current,
            provisional,
        })
    }

    /// The number of working days in `(start, end]`: after `start`, up to and including `end`.
    /// Zero when `end` is not after `start`.
    pub fn working_days_between(&self, start: Date, end: Date) -> Result<u32, CalendarError> {
        let mut working_day_count = 0_u32;
        let mut current = start;
        while current < end {
            current = current.next_day().ok_or(CalendarError::DateOutOfRange)?;
            if self.is_working_day(current)? {
                working_day_count += 1;
            }
        }
        Ok(working_day_count)
    }
}

impl YearRules {
    fn is_working_day(&self, date: Date) -> bool {
        self.adjusted_working_days.contains(&date)
            || (!is_weekend(date) && !self.holidays.contains(&date))
    }

    fn from_table(year: i32, table: &YearTable) -> Result<YearRules, CalendarError> {
        let mut rules = YearRules::default();
        for text in &table.holidays {
            let date = parse_date_in_year(year, text)?;
            if !rules.holidays.insert(date) {
                return Err(CalendarError::DuplicateDate { date });
            }
        }
        for text in &table.adjusted_working_days {
            let date = parse_date_in_year(year, text)?;
            if !is_weekend(date) {
                return Err(CalendarError::AdjustedWorkingDayNotOnWeekend { date });
            }
            if rules.holidays.contains(&date) {
                return Err(CalendarError::HolidayAndAdjustedWorkingDay { date });
            }
            if !rules.adjusted_working_days.insert(date) {
                return Err(CalendarError::DuplicateDate { date });
            }
        }
        Ok(rules)
    }
}

fn is_weekend(date: Date) -> bool {
    matches!(date.weekday(), Weekday::Saturday | Weekday::Sunday)
}

fn parse_year_key(key: &str) -> Result<i32, CalendarError> {
    let invalid_year = || CalendarError::InvalidYear {
        key: key.to_owned(),
    };
    if key.len() != 4 || !key.bytes().all(|byte| byte.is_ascii_digit()) {
        return Err(invalid_year());
    }
    key.parse::<i32>().map_err(|_| invalid_year())
}

/// Reads a strict `YYYY-MM-DD` date and checks it belongs to `year`.
fn parse_date_in_year(year: i32, text: &str) -> Result<Date, CalendarError> {
    let date = parse_iso_date(text).ok_or_else(|| CalendarError::InvalidDate {
        year,
        text: text.to_owned(),
    })?;
    if date.year() != year {
        return Err(CalendarError::DateOutsideItsYear { year, date });
    }
    Ok(date)
}

fn parse_iso_date(text: &str) -> Option<Date> {
    let bytes = text.as_bytes();
    if bytes.len() != 10 || bytes[4] != b'-' || bytes[7] != b'-' {
        return None;
    }
    let number = |range: std::ops::Range<usize>| -> Option<u32> {
        let mut value = 0_u32;
        for byte in &bytes[range] {
            if !byte.is_ascii_digit() {
                return None;
            }
            value = value * 10 + u32::from(byte - b'0');
        }
        Some(value)
    };
    let year = i32::try_from(number(0..4)?).ok()?;
    let month = Month::try_from(u8::try_from(number(5..7)?).ok()?).ok()?;
    let day = u8::try_from(number(8..10)?).ok()?;
    Date::from_calendar_date(year, month, day).ok()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use time::macros::date;

    fn embedded() -> WorkingDayCalendar {
        WorkingDayCalendar::embedded().unwrap()
    }

    #[test]
    fn embedded_calendar_covers_2024_to_2026() {
        let calendar = embedded();
        assert_eq!(calendar.covered_years(), vec![2024, 2025, 2026]);
        assert!(calendar.covers_year(2025));
        assert!(!calendar.covers_year(2027));
    }

    #[test]
    fn classifies_days_around_spring_festival_2026() {
        let calendar = embedded();
        // Friday before the holiday, then the adjusted Saturday.
        assert!(calendar.is_working_day(date!(2026 - 02 - 13)).unwrap());
        assert!(calendar.is_working_day(date!(2026 - 02 - 14)).unwrap());
        // The holiday, weekdays included.
        for day in 15..=23 {
            let holiday = Date::from_calendar_date(2026, Month::February, day).unwrap();
            assert!(!calendar.is_working_day(holiday).unwrap(), "{holiday}");
        }
        assert!(calendar.is_working_day(date!(2026 - 02 - 24)).unwrap());
        // An ordinary Sunday and the adjusted Saturday after the holiday.
        assert!(!calendar.is_working_day(date!(2026 - 03 - 01)).unwrap());
        assert!(calendar.is_working_day(date!(2026 - 02 - 28)).unwrap());
        assert!(!calendar.is_working_day(date!(2026 - 03 - 07)).unwrap());
    }

    #[test]
    fn adds_working_days_across_spring_festival_2026() {
        let calendar = embedded();
        // Thursday 12 Feb: Fri 13 (1), Sat 14 adjusted (2), holiday 15–23, Tue 24 (3) … Fri 27
        // (6), Sat 28 adjusted (7), Mon 2 Mar (8), Tue 3 (9), Wed 4 (10).
        assert_eq!(
            calendar
                .add_working_days(date!(2026 - 02 - 12), 10)
                .unwrap(),
            date!(2026 - 03 - 04)
        );
        assert_eq!(
            calendar.add_working_days(date!(2026 - 02 - 13), 1).unwrap(),
            date!(2026 - 02 - 14)
        );
        assert_eq!(
            calendar.add_working_days(date!(2026 - 02 - 14), 1).unwrap(),
            date!(2026 - 02 - 24)
        );
        assert_eq!(
            calendar.next_working_day(date!(2026 - 02 - 16)).unwrap(),
            date!(2026 - 02 - 24)
        );
        assert_eq!(
            calendar.add_working_days(date!(2026 - 02 - 16), 0).unwrap(),
            date!(2026 - 02 - 16)
        );
        assert_eq!(
            calendar
                .working_days_between(date!(2026 - 02 - 12), date!(2026 - 03 - 04))
                .unwrap(),
            10
        );
        assert_eq!(
            calendar
                .working_days_between(date!(2026 - 02 - 14), date!(2026 - 02 - 23))
                .unwrap(),
            0
        );
        assert_eq!(
            calendar
                .working_days_between(date!(2026 - 03 - 04), date!(2026 - 02 - 12))
                .unwrap(),
            0
        );
    }

    #[test]
    fn adds_working_days_across_a_year_boundary() {
        let calendar = embedded();
        // Wed 31 Dec 2025; 1–3 Jan 2026 off; Sun 4 Jan adjusted working day.
        assert_eq!(
            calendar.next_working_day(date!(2025 - 12 - 31)).unwrap(),
            date!(2026 - 01 - 04)
        );
        // National Day 2025 (8 days) with its adjusted Saturday 11 October.
        assert_eq!(
            calendar.add_working_days(date!(2025 - 09 - 30), 2).unwrap(),
            date!(2025 - 10 - 10)
        );
        assert_eq!(
            calendar.add_working_days(date!(2025 - 09 - 30), 3).unwrap(),
            date!(2025 - 10 - 11)
        );
    }

    #[test]
    fn refuses_to_guess_outside_covered_years() {
        let calendar = embedded();
        assert!(matches!(
            calendar.is_working_day(date!(2027 - 03 - 01)),
            Err(CalendarError::YearNotCovered { year: 2027 })
        ));
        assert!(matches!(
            calendar.add_working_days(date!(2026 - 12 - 30), 5),
            Err(CalendarError::YearNotCovered { year: 2027 })
        ));
        assert!(matches!(
            calendar.working_days_between(date!(2023 - 12 - 01), date!(2024 - 01 - 10)),
            Err(CalendarError::YearNotCovered { year: 2023 })
        ));
    }

    #[test]
    fn a_year_without_a_notice_counts_weekends_only_and_is_provisional() {
        let calendar = embedded();
        // Accepted Tuesday 2026-12-01: 3 working days stay in 2026 and are exact.
        assert_eq!(
            calendar.due_after(date!(2026 - 12 - 01), 3).unwrap(),
            DueDate {
                date: date!(2026 - 12 - 04),
                provisional: false
            }
        );
        // 30 working days run into 2027, which has no published notice: 22 working days are
        // left in December 2026, then eight Monday–Fridays of January 2027.
        assert_eq!(
            calendar.due_after(date!(2026 - 12 - 01), 30).unwrap(),
            DueDate {
                date: date!(2027 - 01 - 12),
                provisional: true
            }
        );
        // A fixture notice (test data only, not the State Council's) makes it exact, and later.
        let mut with_notice = calendar.clone();
        with_notice.rules_by_year.insert(
            2027,
            YearRules {
                holidays: [date!(2027 - 01 - 01), date!(2027 - 01 - 04)].into(),
                adjusted_working_days: BTreeSet::new(),
            },
        );
        assert_eq!(
            with_notice.due_after(date!(2026 - 12 - 01), 30).unwrap(),
            DueDate {
                date: date!(2027 - 01 - 14),
                provisional: false
            }
        );
        // The exact question still refuses to guess.
        assert!(
            calendar
                .add_working_days(date!(2026 - 12 - 01), 30)
                .is_err()
        );
    }

    #[test]
    fn every_embedded_adjusted_working_day_is_a_working_weekend_day() {
        let calendar = embedded();
        for rules in calendar.rules_by_year.values() {
            for date in &rules.adjusted_working_days {
                assert!(is_weekend(*date));
                assert!(calendar.is_working_day(*date).unwrap());
            }
        }
    }

    #[test]
    fn rejects_adjusted_working_day_on_a_weekday() {
        let text = "[2026]\nholidays = []\nadjusted_working_days = [\"2026-02-16\"]\n";
        assert!(matches!(
            WorkingDayCalendar::from_toml_str(text),
            Err(CalendarError::AdjustedWorkingDayNotOnWeekend { date }) if date == date!(2026 - 02 - 16)
        ));
    }

    #[test]
    fn rejects_date_listed_as_holiday_and_adjusted_working_day() {
        let text =
            "[2026]\nholidays = [\"2026-02-15\"]\nadjusted_working_days = [\"2026-02-15\"]\n";
        assert!(matches!(
            WorkingDayCalendar::from_toml_str(text),
            Err(CalendarError::HolidayAndAdjustedWorkingDay { .. })
        ));
    }

    #[test]
    fn rejects_date_in_the_wrong_year_table() {
        let text = "[2026]\nholidays = [\"2025-10-01\"]\n";
        assert!(matches!(
            WorkingDayCalendar::from_toml_str(text),
            Err(CalendarError::DateOutsideItsYear { year: 2026, .. })
        ));
    }

    #[test]
    fn rejects_malformed_files() {
        for (text, description) in [
            ("[2026]\nholidays = [\"2026-2-15\"]\n", "unpadded date"),
            ("[2026]\nholidays = [\"2026-02-30\"]\n", "impossible date"),
            ("[2026]\nholidays = [\" 2026-02-15\"]\n", "whitespace"),
            (
                "[2026]\nholidays = [\"2026-02-15\", \"2026-02-15\"]\n",
                "duplicate",
            ),
            ("[26]\nholidays = []\n", "short year key"),
            ("[year]\nholidays = []\n", "non-numeric year key"),
            ("[2026]\nholiday = []\n", "misspelt field"),
            ("", "no years"),
        ] {
            assert!(
                WorkingDayCalendar::from_toml_str(text).is_err(),
                "{description} should be rejected"
            );
        }
    }

    #[test]
    fn load_reports_missing_file() {
        assert!(matches!(
            WorkingDayCalendar::load("/nonexistent/working-days.toml"),
            Err(CalendarError::Io { .. })
        ));
    }
}
