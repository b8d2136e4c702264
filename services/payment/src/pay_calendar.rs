//! The payment calendar (pure): when a run's money reaches the recipients, as dated entries of
//! the funds file's `[[calendar]]` section (`services/payment/funds/example-district.toml`):
//! the cadence (monthly or quarterly), the due day of the month, and what a due day on a
//! non-working day becomes (the previous or the next working day of the domain's working-day
//! calendar, `sunshine_domain::WorkingDayCalendar`, the one review counts its deadlines on).
//!
//! A run's period is always **one entitlement-month** (its guard key, `payment_run_orders`, is
//! (entitlement, month), so no cadence can pay one entitlement-month twice). The cadence only
//! says when a month is paid: monthly, on the due day of the month itself; quarterly, every
//! month of a calendar quarter on the due day of the quarter's **last** month (in arrears: a
//! run of the quarter's first month can be created in that month, and its pay date is never
//! before the months it pays). The entry in force is the one in force on the period's first
//! day, so a change of cadence applies from the first period that starts on or after it.
//!
//! A due day past the month's end is the month's last day. A pay date in a year the working-day
//! calendar does not cover yet is counted on weekends only and marked provisional (as review's
//! deadlines are): a late holiday notice must not stop the payments.

use serde::Deserialize;
use sunshine_domain::{CalendarError, Month, WorkingDayCalendar};
use time::{Date, Weekday};

/// How often the months are paid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cadence {
    Monthly,
    Quarterly,
}

/// What a due day that is no working day becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NonWorkingDay {
    /// The last working day before it.
    Previous,
    /// The first working day after it.
    Next,
}

/// One `[[calendar]]` entry of the funds file, as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CalendarEntry {
    pub from: toml::value::Datetime,
    pub cadence: String,
    pub due_day: i64,
    pub non_working_day: String,
}

/// A calendar entry, checked: in force from `from` until the next one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CalendarRule {
    pub from: Date,
    pub cadence: Cadence,
    /// 1..=31; past the month's end, the month's last day.
    pub due_day: u8,
    pub non_working_day: NonWorkingDay,
}

/// The calendar's entries, oldest first (the default has none: no run has a pay date).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PayCalendar {
    rules: Vec<CalendarRule>,
}

/// A run's pay date; `provisional` when its year's holidays are not known yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PayDate {
    pub date: Date,
    pub provisional: bool,
}

/// Why a period has no pay date.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CalendarRefusal {
    #[error("no payment calendar entry is in force for {period} (payment.funds_file [[calendar]])")]
    NoEntry { period: String },
    #[error("the pay date of {period} is out of range")]
    OutOfRange { period: String },
}

fn first_day(month: Month) -> Option<Date> {
    let number = time::Month::try_from(month.month()).ok()?;
    Date::from_calendar_date(month.year(), number, 1).ok()
}

impl PayCalendar {
    /// Checks the entries (dates ascending, known cadence and rule, due day 1..=31), each
    /// problem pushed to `problems` named `calendar[i]`.
    pub fn from_entries(entries: Vec<CalendarEntry>, problems: &mut Vec<String>) -> PayCalendar {
        let mut rules: Vec<CalendarRule> = Vec::new();
        for (index, entry) in entries.into_iter().enumerate() {
            let key = format!("calendar[{index}]");
            let from = match (entry.from.date, entry.from.time, entry.from.offset) {
                (Some(date), None, None) => {
                    time::Month::try_from(date.month).ok().and_then(|month| {
                        Date::from_calendar_date(i32::from(date.year), month, date.day).ok()
                    })
                }
                _ => None,
            };
            let cadence = match entry.cadence.as_str() {
                "monthly" => Some(Cadence::Monthly),
                "quarterly" => Some(Cadence::Quarterly),
                _ => None,
            };
            let rule = match entry.non_working_day.as_str() {
                "previous" => Some(NonWorkingDay::Previous),
                "next" => Some(NonWorkingDay::Next),
                _ => None,
            };
            let due_day = u8::try_from(entry.due_day)
                .ok()
                .filter(|day| (1..=31).contains(day));
            if from.is_none() {
                problems.push(format!("{key}: from {} is not a date", entry.from));
            }
            if cadence.is_none() {
                problems.push(format!("{key}: cadence is monthly or quarterly"));
            }
            if rule.is_none() {
                problems.push(format!("{key}: non_working_day is previous or next"));
            }
            if due_day.is_none() {
                problems.push(format!("{key}: due_day is 1 to 31"));
            }
            if let (Some(from), Some(cadence), Some(non_working_day), Some(due_day)) =
                (from, cadence, rule, due_day)
            {
                if rules.last().is_some_and(|last| last.from >= from) {
                    problems.push(format!("{key}: {from} is not after the entry before it"));
                }
                rules.push(CalendarRule {
                    from,
                    cadence,
                    due_day,
                    non_working_day,
                });
            }
        }
        PayCalendar { rules }
    }

    /// The entry in force on `period`'s first day.
    pub fn in_force(&self, period: Month) -> Option<&CalendarRule> {
        let first = first_day(period)?;
        self.rules.iter().rev().find(|rule| rule.from <= first)
    }

    /// The day the run of `period` pays on: the due day of the month it is paid in (the period
    /// itself, or its quarter's last month), moved off a non-working day by the entry's rule.
    pub fn pay_date(
        &self,
        period: Month,
        working_days: &WorkingDayCalendar,
    ) -> Result<PayDate, CalendarRefusal> {
        let rule = self
            .in_force(period)
            .ok_or_else(|| CalendarRefusal::NoEntry {
                period: period.to_string(),
            })?;
        let out_of_range = || CalendarRefusal::OutOfRange {
            period: period.to_string(),
        };
        let paid_in = match rule.cadence {
            Cadence::Monthly => period.month(),
            Cadence::Quarterly => (period.month() - 1) / 3 * 3 + 3,
        };
        let month = time::Month::try_from(paid_in).map_err(|_| out_of_range())?;
        let day = rule.due_day.min(month.length(period.year()));
        let mut date =
            Date::from_calendar_date(period.year(), month, day).map_err(|_| out_of_range())?;
        let mut provisional = false;
        loop {
            match working_days.is_working_day(date) {
                Ok(true) => break,
                Ok(false) => {}
                Err(CalendarError::YearNotCovered { .. }) => {
                    provisional = true;
                    if !matches!(date.weekday(), Weekday::Saturday | Weekday::Sunday) {
                        break;
                    }
                }
                Err(_) => return Err(out_of_range()),
            }
            date = match rule.non_working_day {
                NonWorkingDay::Previous => date.previous_day(),
                NonWorkingDay::Next => date.next_day(),
            }
            .ok_or_else(out_of_range)?;
        }
        Ok(PayDate { date, provisional })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use time::macros::date;

    use super::*;

    fn calendar(entries: &str) -> PayCalendar {
        #[derive(Deserialize)]
        struct File {
            calendar: Vec<CalendarEntry>,
        }
        let file: File = toml::from_str(entries).unwrap();
        let mut problems = Vec::new();
        let calendar = PayCalendar::from_entries(file.calendar, &mut problems);
        assert!(problems.is_empty(), "{problems:?}");
        calendar
    }

    fn working_days() -> WorkingDayCalendar {
        WorkingDayCalendar::embedded().unwrap()
    }

    fn pay(calendar: &PayCalendar, period: &str) -> PayDate {
        calendar
            .pay_date(Month::parse(period).unwrap(), &working_days())
            .unwrap()
    }

    const MONTHLY_PREVIOUS: &str = "[[calendar]]\nfrom = 2025-01-01\ncadence = \"monthly\"\ndue_day = 1\nnon_working_day = \"previous\"\n";

    #[test]
    fn a_due_day_on_a_working_day_stays() {
        let calendar = calendar(MONTHLY_PREVIOUS);
        // 2026-12-01 is a Tuesday.
        assert_eq!(
            pay(&calendar, "2026-12"),
            PayDate {
                date: date!(2026 - 12 - 01),
                provisional: false
            }
        );
    }

    #[test]
    fn a_holiday_moves_to_the_previous_or_the_next_working_day() {
        // National Day: 2026-10-01 to 07 are holidays; 2026-09-30 is a Wednesday.
        let previous = calendar(MONTHLY_PREVIOUS);
        assert_eq!(pay(&previous, "2026-10").date, date!(2026 - 09 - 30));
        let next = calendar(&MONTHLY_PREVIOUS.replace("previous", "next"));
        assert_eq!(pay(&next, "2026-10").date, date!(2026 - 10 - 08));
        // Labour Day 2026-05-01..05; a weekend before it (04-30 is a Thursday).
        assert_eq!(pay(&previous, "2026-05").date, date!(2026 - 04 - 30));
        assert_eq!(pay(&next, "2026-05").date, date!(2026 - 05 - 06));
    }

    #[test]
    fn a_weekend_moves_and_an_adjusted_working_day_counts() {
        let on_the_tenth = |rule: &str| {
            calendar(
                &MONTHLY_PREVIOUS
                    .replace("due_day = 1", "due_day = 10")
                    .replace("previous", rule),
            )
        };
        // 2026-01-10 is a Saturday, 2026-01-09 a Friday, 2026-01-12 a Monday.
        assert_eq!(
            pay(&on_the_tenth("previous"), "2026-01").date,
            date!(2026 - 01 - 09)
        );
        assert_eq!(
            pay(&on_the_tenth("next"), "2026-01").date,
            date!(2026 - 01 - 12)
        );
        // 2026-10-10 is a Saturday worked for National Day: it stays.
        assert_eq!(
            pay(&on_the_tenth("next"), "2026-10").date,
            date!(2026 - 10 - 10)
        );
    }

    #[test]
    fn a_due_day_past_the_months_end_is_its_last_day() {
        let calendar = calendar(&MONTHLY_PREVIOUS.replace("due_day = 1", "due_day = 31"));
        // 2026-02-28 is a Saturday, and worked (Spring Festival): it stays.
        assert_eq!(pay(&calendar, "2026-02").date, date!(2026 - 02 - 28));
        // 2026-04-30 is a Thursday.
        assert_eq!(pay(&calendar, "2026-04").date, date!(2026 - 04 - 30));
    }

    #[test]
    fn a_change_of_cadence_applies_from_the_first_period_after_it() {
        let calendar = calendar(&format!(
            "{MONTHLY_PREVIOUS}[[calendar]]\nfrom = 2026-07-01\ncadence = \"quarterly\"\ndue_day = 20\nnon_working_day = \"next\"\n"
        ));
        // June 2026 is still monthly, on its 1st (a Monday).
        assert_eq!(pay(&calendar, "2026-06").date, date!(2026 - 06 - 01));
        // July to September are paid together on 2026-09-20, a Sunday that is an adjusted
        // working day (National Day): it stays.
        for period in ["2026-07", "2026-08", "2026-09"] {
            assert_eq!(
                pay(&calendar, period).date,
                date!(2026 - 09 - 20),
                "{period}"
            );
        }
        // The next quarter on 2026-12-20, a Sunday: the Monday after.
        assert_eq!(pay(&calendar, "2026-10").date, date!(2026 - 12 - 21));
        assert_eq!(
            calendar
                .in_force(Month::parse("2026-07").unwrap())
                .unwrap()
                .cadence,
            Cadence::Quarterly
        );
    }

    #[test]
    fn no_entry_in_force_is_no_pay_date() {
        let calendar = calendar(MONTHLY_PREVIOUS);
        assert_eq!(
            calendar.pay_date(Month::parse("2024-12").unwrap(), &working_days()),
            Err(CalendarRefusal::NoEntry {
                period: "2024-12".into()
            })
        );
    }

    #[test]
    fn a_year_without_holidays_is_counted_on_weekends_and_provisional() {
        let calendar = calendar(MONTHLY_PREVIOUS);
        let year = working_days().covered_years().last().copied().unwrap() + 1;
        let period = Month::parse(&format!("{year:04}-03")).unwrap();
        let paid = calendar.pay_date(period, &working_days()).unwrap();
        assert!(paid.provisional);
        assert!(!matches!(
            paid.date.weekday(),
            Weekday::Saturday | Weekday::Sunday
        ));
    }

    #[test]
    fn a_bad_entry_names_every_problem() {
        #[derive(Deserialize)]
        struct File {
            calendar: Vec<CalendarEntry>,
        }
        let file: File = toml::from_str(
            "[[calendar]]\nfrom = 2026-01-01\ncadence = \"weekly\"\ndue_day = 0\nnon_working_day = \"skip\"\n\
             [[calendar]]\nfrom = 2025-01-01\ncadence = \"monthly\"\ndue_day = 5\nnon_working_day = \"next\"\n\
             [[calendar]]\nfrom = 2024-01-01\ncadence = \"monthly\"\ndue_day = 5\nnon_working_day = \"next\"\n",
        )
        .unwrap();
        let mut problems = Vec::new();
        PayCalendar::from_entries(file.calendar, &mut problems);
        assert_eq!(problems.len(), 4, "{problems:?}");
    }
}
