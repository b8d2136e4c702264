//! Dates as the rules read them: completed years (周岁), anniversaries, and dates in files.
//!
//! This module owns the one definition of "age" used by every rule, and the serde helpers that
//! read a date either as a TOML date (`1966-05-01`) or as text (`"1966-05-01"`, e.g. in JSON)
//! and always write it as `YYYY-MM-DD` text.

use std::fmt;

use serde::de::{self, MapAccess, Visitor};
use serde::{Deserializer, Serializer};
use time::{Date, Month};

/// The date on which `start` has its `years`-th anniversary. A 29 February start has its
/// anniversary on 1 March in a common year (the person has not completed the year on 28
/// February). `None` outside the representable range.
pub fn anniversary(start: Date, years: i32) -> Option<Date> {
    let year = start.year().checked_add(years)?;
    match Date::from_calendar_date(year, start.month(), start.day()) {
        Ok(date) => Some(date),
        // Only 29 February in a common year fails here.
        Err(_) => Date::from_calendar_date(year, Month::March, 1).ok(),
    }
}

/// Completed years (周岁) from `start` to `as_of`: the year counts on its anniversary. Negative
/// when `as_of` is before `start`.
pub fn completed_years(start: Date, as_of: Date) -> i32 {
    let year_difference = as_of.year() - start.year();
    match anniversary(start, year_difference) {
        Some(this_years_anniversary) if as_of >= this_years_anniversary => year_difference,
        _ => year_difference - 1,
    }
}

/// Age in completed years (周岁) on `as_of` of a person born on `birth_date`.
pub fn age_on(birth_date: Date, as_of: Date) -> i32 {
    completed_years(birth_date, as_of)
}

/// Parses `YYYY-MM-DD`.
pub fn parse_iso_date(text: &str) -> Option<Date> {
    let bytes = text.as_bytes();
    if bytes.len() != 10 || bytes[4] != b'-' || bytes[7] != b'-' {
        return None;
    }
    let year: i32 = text.get(0..4)?.parse().ok()?;
    let month: u8 = text.get(5..7)?.parse().ok()?;
    let day: u8 = text.get(8..10)?.parse().ok()?;
    let month = Month::try_from(month).ok()?;
    Date::from_calendar_date(year, month, day).ok()
}

/// Writes `YYYY-MM-DD`.
pub fn format_iso_date(date: Date) -> String {
    format!(
        "{:04}-{:02}-{:02}",
        date.year(),
        u8::from(date.month()),
        date.day()
    )
}

/// Converts a TOML local date into a [`Date`]; `None` for date-times, times and invalid dates.
pub fn date_from_toml(datetime: &toml::value::Datetime) -> Option<Date> {
    match (datetime.date, datetime.time, datetime.offset) {
        (Some(date), None, None) => {
            let month = Month::try_from(date.month).ok()?;
            Date::from_calendar_date(i32::from(date.year), month, date.day).ok()
        }
        _ => None,
    }
}

struct DateVisitor;

impl<'de> Visitor<'de> for DateVisitor {
    type Value = Date;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("a date written YYYY-MM-DD")
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<Date, E> {
        parse_iso_date(text)
            .ok_or_else(|| E::custom(format!("invalid date {text:?}; expected YYYY-MM-DD")))
    }

    // A TOML date arrives as a one-entry map holding its text.
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Date, A::Error> {
        let Some((_key, text)) = map.next_entry::<String, String>()? else {
            return Err(de::Error::custom("empty date"));
        };
        self.visit_str(&text)
    }
}

/// `#[serde(with = "crate::dates::iso_date")]` for a [`Date`] field.
pub mod iso_date {
    use super::*;

    pub fn serialize<S: Serializer>(date: &Date, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&format_iso_date(*date))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Date, D::Error> {
        deserializer.deserialize_any(DateVisitor)
    }
}

/// `#[serde(with = "crate::dates::optional_iso_date", default)]` for an `Option<Date>` field.
pub mod optional_iso_date {
    use super::*;

    pub fn serialize<S: Serializer>(date: &Option<Date>, serializer: S) -> Result<S::Ok, S::Error> {
        match date {
            Some(date) => serializer.serialize_some(&format_iso_date(*date)),
            None => serializer.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<Date>, D::Error> {
        struct OptionalDateVisitor;
        impl<'de> Visitor<'de> for OptionalDateVisitor {
            type Value = Option<Date>;
            fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                formatter.write_str("a date written YYYY-MM-DD, or nothing")
            }
            fn visit_none<E: de::Error>(self) -> Result<Option<Date>, E> {
                Ok(None)
            }
            fn visit_unit<E: de::Error>(self) -> Result<Option<Date>, E> {
                Ok(None)
            }
            fn visit_some<D: Deserializer<'de>>(
                self,
                deserializer: D,
            ) -> Result<Option<Date>, D::Error> {
                deserializer.deserialize_any(DateVisitor).map(Some)
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<Option<Date>, E> {
                DateVisitor.visit_str(text).map(Some)
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Option<Date>, A::Error> {
                DateVisitor.visit_map(map).map(Some)
            }
        }
        deserializer.deserialize_option(OptionalDateVisitor)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use time::macros::date;

    #[test]
    fn age_counts_on_the_birthday() {
        assert_eq!(age_on(date!(1966 - 11 - 28), date!(2026 - 11 - 27)), 59);
        assert_eq!(age_on(date!(1966 - 11 - 28), date!(2026 - 11 - 28)), 60);
        assert_eq!(age_on(date!(1966 - 11 - 28), date!(2026 - 12 - 31)), 60);
        assert_eq!(age_on(date!(2026 - 11 - 28), date!(2026 - 11 - 28)), 0);
        assert_eq!(age_on(date!(2026 - 11 - 29), date!(2026 - 11 - 28)), -1);
    }

    #[test]
    fn leap_day_birthdays_complete_on_the_first_of_march() {
        assert_eq!(age_on(date!(1964 - 02 - 29), date!(2025 - 02 - 28)), 60);
        assert_eq!(age_on(date!(1964 - 02 - 29), date!(2025 - 03 - 01)), 61);
        assert_eq!(age_on(date!(1964 - 02 - 29), date!(2024 - 02 - 28)), 59);
        assert_eq!(age_on(date!(1964 - 02 - 29), date!(2024 - 02 - 29)), 60);
    }

    #[test]
    fn residence_of_two_years_364_days_is_not_three_years() {
        assert_eq!(
            completed_years(date!(2023 - 11 - 29), date!(2026 - 11 - 28)),
            2
        );
        assert_eq!(
            completed_years(date!(2023 - 11 - 28), date!(2026 - 11 - 28)),
            3
        );
    }

    #[test]
    fn parses_and_formats_iso_dates() {
        assert_eq!(parse_iso_date("2026-11-28"), Some(date!(2026 - 11 - 28)));
        assert_eq!(parse_iso_date("2026-02-30"), None);
        assert_eq!(parse_iso_date("2026-1-28"), None);
        assert_eq!(format_iso_date(date!(2026 - 01 - 05)), "2026-01-05");
    }

    #[test]
    fn reads_dates_from_toml_dates_and_from_text() {
        #[derive(serde::Deserialize)]
        struct Row {
            #[serde(with = "iso_date")]
            on: Date,
            #[serde(with = "optional_iso_date", default)]
            maybe: Option<Date>,
        }
        let row: Row = toml::from_str("on = 2026-11-28\nmaybe = \"2020-01-02\"").unwrap();
        assert_eq!(row.on, date!(2026 - 11 - 28));
        assert_eq!(row.maybe, Some(date!(2020 - 01 - 02)));
        let row: Row = serde_json::from_str(r#"{"on": "2026-11-28"}"#).unwrap();
        assert_eq!(row.on, date!(2026 - 11 - 28));
        assert_eq!(row.maybe, None);
        let row: Row = toml::from_str("on = \"2026-11-28\"\nmaybe = 2021-03-04").unwrap();
        assert_eq!(row.maybe, Some(date!(2021 - 03 - 04)));
    }
}
