//! Calendar months, the unit benefits start, change and end in.
//!
//! This module owns [`Month`] and [`MonthError`]. A month's one text form is `YYYY-MM` (four
//! digits, a hyphen, two digits from `01` to `12`): what requests carry and what events store
//! (`CaseApproved.start_month`, `BenefitAdjusted.effective_month`). Parse it at the edge, then
//! pass the `Month` around.

use std::fmt;
use std::str::FromStr;

use time::Date;

/// A calendar month of a year, e.g. `2026-11`. Years run from 0000 to 9999, so the text form
/// is always seven characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Month {
    year: u16,
    /// 1 to 12.
    month: u8,
}

/// Why a text is not a month.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a month is YYYY-MM (month 01 to 12)")]
pub struct MonthError;

impl Month {
    /// `year` 0–9999 and `month` 1–12, or `None`.
    pub fn new(year: i32, month: u8) -> Option<Month> {
        let year = u16::try_from(year).ok().filter(|year| *year <= 9999)?;
        (1..=12).contains(&month).then_some(Month { year, month })
    }

    /// The month `date` falls in.
    pub fn of(date: Date) -> Month {
        // A `time::Date` year may lie outside 0–9999 only with its large-dates feature.
        debug_assert!((0..=9999).contains(&date.year()), "{date}");
        Month {
            year: u16::try_from(date.year().clamp(0, 9999)).unwrap_or_default(),
            month: u8::from(date.month()),
        }
    }

    /// The month after this one; `None` after 9999-12.
    pub fn next(self) -> Option<Month> {
        if self.month == 12 {
            Month::new(i32::from(self.year) + 1, 1)
        } else {
            Month::new(i32::from(self.year), self.month + 1)
        }
    }

    pub fn year(self) -> i32 {
        i32::from(self.year)
    }

    /// 1 to 12.
    pub fn month(self) -> u8 {
        self.month
    }

    /// Reads `YYYY-MM`, and nothing else: no sign, no spaces, exactly two month digits.
    pub fn parse(text: &str) -> Result<Month, MonthError> {
        let bytes = text.as_bytes();
        let digits = |range: std::ops::Range<usize>| -> Option<u16> {
            bytes[range].iter().try_fold(0_u16, |value, byte| {
                byte.is_ascii_digit()
                    .then(|| value * 10 + u16::from(byte - b'0'))
            })
        };
        if bytes.len() != 7 || bytes[4] != b'-' {
            return Err(MonthError);
        }
        let year = digits(0..4).ok_or(MonthError)?;
        let month = digits(5..7).ok_or(MonthError)?;
        Month::new(
            i32::from(year),
            u8::try_from(month).map_err(|_| MonthError)?,
        )
        .ok_or(MonthError)
    }
}

impl fmt::Display for Month {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{:04}-{:02}", self.year, self.month)
    }
}

impl FromStr for Month {
    type Err = MonthError;

    fn from_str(text: &str) -> Result<Month, MonthError> {
        Month::parse(text)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use time::macros::date;

    #[test]
    fn a_month_reads_and_writes_yyyy_mm() {
        let november = Month::parse("2026-11").unwrap();
        assert_eq!((november.year(), november.month()), (2026, 11));
        assert_eq!(november.to_string(), "2026-11");
        assert_eq!(Month::parse("0001-01").unwrap().to_string(), "0001-01");
    }

    #[test]
    fn anything_but_yyyy_mm_is_refused() {
        for text in [
            "",
            "2026",
            "2026-1",
            "2026-13",
            "2026-00",
            "2026/11",
            "202-011",
            "+202-11",
            "2026-+1",
            " 2026-1",
            "2026-11 ",
            "２０２６-11",
            "2026-1a",
        ] {
            assert_eq!(Month::parse(text), Err(MonthError), "{text:?}");
        }
    }

    #[test]
    fn the_following_month_crosses_the_year() {
        assert_eq!(Month::of(date!(2026 - 12 - 3)).next(), Month::new(2027, 1));
        assert_eq!(
            Month::of(date!(2026 - 10 - 31)).next(),
            Month::new(2026, 11)
        );
        assert_eq!(Month::new(9999, 12).unwrap().next(), None);
        assert!(Month::new(2026, 1) < Month::new(2026, 2));
        assert!(Month::new(2025, 12) < Month::new(2026, 1));
    }
}
