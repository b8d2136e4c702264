//! Statutory deadlines: working-day limits computed with the domain's working-day calendar,
//! the publicity period in calendar days, and re-review dates in months.
//!
//! This module owns [`ReviewDeadlines`] and the deadline methods of
//! [`ProcedureParameters`]. The limits themselves are parameters (`procedure.*`, national
//! values cited in `procedure.toml`); counting follows [`WorkingDayCalendar::due_after`]: the
//! start day does not count, the deadline is the n-th working day after it, and a deadline that
//! reaches a year without a published holiday notice is counted by weekends only and marked
//! provisional (never an error: a late notice must not stop the service).
//!
//! A case's limits depend on its program ([`ProcedureParameters::for_program`], issue 20 item
//! 11): 特困 cases follow 特困人员认定办法 — the street-town's 15 working days, the county's 15
//! working days and the county's home-visit sample ([`CaseProcedure`]) — and every other
//! program the dibao review's limits.

use sunshine_domain::{DueDate, WorkingDayCalendar};
use time::{Date, Duration, Month};

use crate::catalogue::ProgramCode;
use crate::error::PolicyError;
use crate::resolved::ProcedureParameters;

/// Which national rules set a case's time limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProcedureRules {
    /// 最低生活保障审核确认办法 (民发〔2021〕57号): every reviewed program but 特困.
    MinimumLivingGuarantee,
    /// 特困人员认定办法 (民发〔2021〕43号).
    ExtremePoverty,
}

/// The time limits (working days) and checks of one program's cases, resolved from the
/// `procedure` parameters as of a date ([`ProcedureParameters::for_program`]). A limit the
/// program's rules do not set is `None`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CaseProcedure {
    pub rules: ProcedureRules,
    /// The household investigation starts within this many working days of acceptance.
    pub investigation_start_working_days: Option<u32>,
    /// The whole review, from acceptance …
    pub review_working_days: Option<u32>,
    /// … or, extended with a recorded reason, this many.
    pub review_extended_working_days: Option<u32>,
    /// The street-town's investigation and opinion, from acceptance (特困).
    pub street_town_working_days: Option<u32>,
    /// The district (county) decides within this many working days of receiving the
    /// street-town's opinion.
    pub district_decision_working_days: u32,
    /// The district home-visits at least this share (basis points) of the cases it receives
    /// (特困).
    pub district_home_visit_share_basis_points: Option<i64>,
}

/// The deadlines of one case that run from its acceptance, by its program's rules; a
/// deadline its rules do not set is `None`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CaseDeadlines {
    pub accepted_on: Date,
    pub investigation_start_by: Option<DueDate>,
    pub review_due_by: Option<DueDate>,
    pub review_extended_due_by: Option<DueDate>,
    pub street_town_due_by: Option<DueDate>,
}

impl CaseProcedure {
    /// The deadlines that run from acceptance.
    pub fn deadlines(
        &self,
        calendar: &WorkingDayCalendar,
        accepted_on: Date,
    ) -> Result<CaseDeadlines, PolicyError> {
        let due = |days: Option<u32>| -> Result<Option<DueDate>, PolicyError> {
            days.map(|days| calendar.due_after(accepted_on, days))
                .transpose()
                .map_err(PolicyError::from)
        };
        Ok(CaseDeadlines {
            accepted_on,
            investigation_start_by: due(self.investigation_start_working_days)?,
            review_due_by: due(self.review_working_days)?,
            review_extended_due_by: due(self.review_extended_working_days)?,
            street_town_due_by: due(self.street_town_working_days)?,
        })
    }

    /// The district's decision is due this many working days after it receives the
    /// street-town's opinion (on `received_on`).
    pub fn district_decision_due(
        &self,
        calendar: &WorkingDayCalendar,
        received_on: Date,
    ) -> Result<DueDate, PolicyError> {
        Ok(calendar.due_after(received_on, self.district_decision_working_days)?)
    }

    /// How many of `received` cases the district must home-visit: ⌈share × received⌉, in
    /// integers (basis points); `None` when the program's rules ask for no sample.
    pub fn home_visit_sample_size(&self, received: usize) -> Option<usize> {
        let share = u128::try_from(
            self.district_home_visit_share_basis_points?
                .clamp(0, 10_000),
        )
        .unwrap_or(0);
        let received_wide = u128::try_from(received).unwrap_or(u128::MAX / 20_000);
        let size = (share * received_wide).div_ceil(10_000);
        Some(usize::try_from(size).unwrap_or(received).min(received))
    }
}

/// The deadlines of one application, from its acceptance (受理) date. Each says whether it is
/// provisional ([`DueDate::provisional`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ReviewDeadlines {
    pub accepted_on: Date,
    /// The household investigation must start by this day (3 working days).
    pub investigation_start_by: DueDate,
    /// The review must be complete by this day (30 working days) …
    pub review_due_by: DueDate,
    /// … or by this day when extended with a recorded reason (45 working days).
    pub review_extended_due_by: DueDate,
}

impl ProcedureParameters {
    /// The limits and checks that govern `program`'s cases: 特困 by 特困人员认定办法, every
    /// other program by the dibao review's rules.
    pub fn for_program(&self, program: ProgramCode) -> CaseProcedure {
        match program {
            ProgramCode::Tekun => CaseProcedure {
                rules: ProcedureRules::ExtremePoverty,
                investigation_start_working_days: None,
                review_working_days: None,
                review_extended_working_days: None,
                street_town_working_days: Some(self.tekun.street_town_working_days),
                district_decision_working_days: self.tekun.county_working_days,
                district_home_visit_share_basis_points: Some(
                    self.tekun.county_home_visit_share_basis_points,
                ),
            },
            _ => CaseProcedure {
                rules: ProcedureRules::MinimumLivingGuarantee,
                investigation_start_working_days: Some(self.investigation_start_working_days),
                review_working_days: Some(self.review_working_days),
                review_extended_working_days: Some(self.review_extended_working_days),
                street_town_working_days: None,
                district_decision_working_days: self.district_decision_working_days,
                district_home_visit_share_basis_points: None,
            },
        }
    }

    /// The dibao review's deadlines that run from acceptance (every program but 特困: see
    /// [`ProcedureParameters::for_program`]).
    pub fn review_deadlines(
        &self,
        calendar: &WorkingDayCalendar,
        accepted_on: Date,
    ) -> Result<ReviewDeadlines, PolicyError> {
        Ok(ReviewDeadlines {
            accepted_on,
            investigation_start_by: calendar
                .due_after(accepted_on, self.investigation_start_working_days)?,
            review_due_by: calendar.due_after(accepted_on, self.review_working_days)?,
            review_extended_due_by: calendar
                .due_after(accepted_on, self.review_extended_working_days)?,
        })
    }

    /// The district's decision is due this many working days after it receives the
    /// street-town's opinion.
    pub fn district_decision_due(
        &self,
        calendar: &WorkingDayCalendar,
        opinion_received_on: Date,
    ) -> Result<DueDate, PolicyError> {
        Ok(calendar.due_after(opinion_received_on, self.district_decision_working_days)?)
    }

    /// A data holder's answer to an economic-status check's request sent on `sent_on` is due
    /// by this day.
    pub fn check_response_due(
        &self,
        calendar: &WorkingDayCalendar,
        sent_on: Date,
    ) -> Result<DueDate, PolicyError> {
        Ok(calendar.due_after(sent_on, self.check_response_working_days)?)
    }

    /// A refusal must be notified in writing by this day.
    pub fn refusal_notice_due(
        &self,
        calendar: &WorkingDayCalendar,
        decided_on: Date,
    ) -> Result<DueDate, PolicyError> {
        Ok(calendar.due_after(decided_on, self.refusal_notice_working_days)?)
    }

    /// The last day of a public notice that starts on `started_on` (a 7-day notice starting on
    /// the 1st runs to the 7th, calendar days).
    pub fn publicity_last_day(&self, started_on: Date) -> Result<Date, PolicyError> {
        let days = i64::from(self.publicity_days.max(1)) - 1;
        started_on
            .checked_add(Duration::days(days))
            .ok_or(PolicyError::DateOutOfRange)
    }

    /// The first day a decision may be taken after the notice.
    pub fn decision_allowed_from(&self, started_on: Date) -> Result<Date, PolicyError> {
        self.publicity_last_day(started_on)?
            .next_day()
            .ok_or(PolicyError::DateOutOfRange)
    }

    /// When the next re-review (复核) is due: yearly for households whose income changes little,
    /// half-yearly otherwise.
    pub fn next_re_review(
        &self,
        last_reviewed_on: Date,
        income_is_stable: bool,
    ) -> Result<Date, PolicyError> {
        let months = if income_is_stable {
            self.re_review_months_stable_income
        } else {
            self.re_review_months_variable_income
        };
        add_months(last_reviewed_on, months)
    }
}

/// `date` plus `months`, the day clamped to the target month's length (31 Jan + 1 month = 28 or
/// 29 Feb).
pub fn add_months(date: Date, months: u32) -> Result<Date, PolicyError> {
    let zero_based_month = i64::from(u8::from(date.month())) - 1 + i64::from(months);
    let year = i64::from(date.year()) + zero_based_month / 12;
    let year = i32::try_from(year).map_err(|_| PolicyError::DateOutOfRange)?;
    let month_number =
        u8::try_from(zero_based_month % 12 + 1).map_err(|_| PolicyError::DateOutOfRange)?;
    let month = Month::try_from(month_number).map_err(|_| PolicyError::DateOutOfRange)?;
    let day = date.day().min(month.length(year));
    Date::from_calendar_date(year, month, day).map_err(|_| PolicyError::DateOutOfRange)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use time::macros::date;

    fn procedure() -> ProcedureParameters {
        ProcedureParameters {
            publicity_days: 7,
            review_working_days: 30,
            review_extended_working_days: 45,
            district_decision_working_days: 10,
            investigation_start_working_days: 3,
            refusal_notice_working_days: 3,
            check_response_working_days: 5,
            re_review_months_stable_income: 12,
            re_review_months_variable_income: 6,
            tekun: crate::resolved::TekunProcedureParameters {
                street_town_working_days: 15,
                county_working_days: 15,
                county_home_visit_share_basis_points: 3_000,
            },
        }
    }

    #[test]
    fn the_home_visit_sample_is_the_share_rounded_up() {
        let tekun = procedure().for_program(ProgramCode::Tekun);
        let sizes: Vec<Option<usize>> = [0, 1, 3, 4, 10, 11]
            .into_iter()
            .map(|received| tekun.home_visit_sample_size(received))
            .collect();
        assert_eq!(
            sizes,
            vec![Some(0), Some(1), Some(1), Some(2), Some(3), Some(4)]
        );
        let dibao = procedure().for_program(ProgramCode::DibaoRural);
        assert_eq!(dibao.home_visit_sample_size(10), None);
    }

    #[test]
    fn working_day_deadlines_skip_weekends_and_holidays() {
        let calendar = WorkingDayCalendar::embedded().unwrap();
        // Friday 2025-09-26: National Day and Mid-Autumn (1–8 October 2025) lie ahead, with
        // Sunday 28 September and Saturday 11 October worked (国办发明电〔2024〕12号).
        let deadlines = procedure()
            .review_deadlines(&calendar, date!(2025 - 09 - 26))
            .unwrap();
        assert_eq!(deadlines.investigation_start_by.date, date!(2025 - 09 - 30));
        let count = calendar
            .working_days_between(date!(2025 - 09 - 26), deadlines.review_due_by.date)
            .unwrap();
        assert_eq!(count, 30);
        assert!(deadlines.review_extended_due_by.date > deadlines.review_due_by.date);
        assert!(!deadlines.review_extended_due_by.provisional);
        let refusal = procedure()
            .refusal_notice_due(&calendar, date!(2026 - 11 - 27))
            .unwrap();
        assert_eq!(refusal.date, date!(2026 - 12 - 02));
        assert!(!refusal.provisional);
    }

    #[test]
    fn deadlines_into_a_year_without_a_notice_are_provisional_not_errors() {
        // Accepted 2026-12-01; the 2027 holiday notice is not in the data.
        let calendar = WorkingDayCalendar::embedded().unwrap();
        let deadlines = procedure()
            .review_deadlines(&calendar, date!(2026 - 12 - 01))
            .unwrap();
        assert!(!deadlines.investigation_start_by.provisional);
        assert!(deadlines.review_due_by.provisional);
        assert!(deadlines.review_extended_due_by.provisional);
        assert_eq!(deadlines.review_due_by.date, date!(2027 - 01 - 12));
        let decision = procedure()
            .district_decision_due(&calendar, date!(2026 - 12 - 28))
            .unwrap();
        assert!(decision.provisional);
    }

    #[test]
    fn publicity_runs_seven_calendar_days() {
        assert_eq!(
            procedure()
                .publicity_last_day(date!(2026 - 11 - 02))
                .unwrap(),
            date!(2026 - 11 - 08)
        );
        assert_eq!(
            procedure()
                .decision_allowed_from(date!(2026 - 11 - 02))
                .unwrap(),
            date!(2026 - 11 - 09)
        );
    }

    #[test]
    fn re_review_adds_months_and_clamps_the_day() {
        assert_eq!(
            procedure()
                .next_re_review(date!(2026 - 01 - 31), true)
                .unwrap(),
            date!(2027 - 01 - 31)
        );
        assert_eq!(
            procedure()
                .next_re_review(date!(2025 - 08 - 31), false)
                .unwrap(),
            date!(2026 - 02 - 28)
        );
        assert_eq!(
            add_months(date!(2023 - 08 - 31), 6).unwrap(),
            date!(2024 - 02 - 29)
        );
    }
}
