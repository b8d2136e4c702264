//! Funds and their yearly budgets (pure): which fund pays which program, as dated entries, and
//! each fund's budget per year and program, read from a funds file (format:
//! `services/payment/funds/example-district.toml`, the EXAMPLE district's, invented amounts).
//!
//! A run may not take a fund's **remaining** budget for the year below zero, per program:
//! remaining = budget − what approved runs of the year already committed ([`check_budget`]).
//! Assist-first grants are the program [`ASSIST_FIRST`] and draw on their fund (the example's
//! `emergency`) the same way.
//!
//! The same file holds the payment calendar (`[[calendar]]`, read by `crate::pay_calendar`):
//! it is payment's dated parameters file, as the funds are. So are the care institutions
//! that support 特困 persons centrally and their bank accounts (`[[institution]]`, read by
//! `crate::care_institutions`).
//!
//! The file is not a policy file: the policy loader (`crates/policy`) reads every `.toml` of
//! its directory against a fixed schema of sections and parameters, and funds are keyed by
//! the district's own fund names; it also leaves the policy version of every decision alone.

use std::collections::BTreeMap;

use serde::Deserialize;
use sunshine_domain::Money;
use time::Date;

use crate::care_institutions::{CareInstitutions, InstitutionSection};
use crate::pay_calendar::{CalendarEntry, PayCalendar};

/// The program key of assist-first grants, whatever their case's program.
pub const ASSIST_FIRST: &str = "assist_first";

/// The EXAMPLE district's funds file, compiled in.
pub const EXAMPLE_FUNDS: &str = include_str!("../funds/example-district.toml");

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FundsFile {
    payers: BTreeMap<String, Vec<PayerEntry>>,
    #[serde(default)]
    budget: Vec<BudgetEntry>,
    /// The payment calendar (`crate::pay_calendar`): dated entries, oldest first.
    #[serde(default)]
    calendar: Vec<CalendarEntry>,
    /// The care institutions and their accounts (`crate::care_institutions`).
    #[serde(default)]
    institution: Vec<InstitutionSection>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PayerEntry {
    from: toml::value::Datetime,
    fund: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BudgetEntry {
    fund: String,
    program: String,
    yearly: Vec<YearlyEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct YearlyEntry {
    from: toml::value::Datetime,
    yuan: String,
}

/// Why a funds file is refused: every problem at once.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the funds file: {}", problems.join("; "))]
pub struct FundsError {
    pub problems: Vec<String>,
}

/// The funds, checked (the default has none: it pays nothing).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Funds {
    /// Program → (from, fund), oldest first.
    payers: BTreeMap<String, Vec<(Date, String)>>,
    /// (fund, program) → (from, yearly budget), oldest first.
    budgets: BTreeMap<(String, String), Vec<(Date, Money)>>,
    /// When runs pay (`[[calendar]]`).
    calendar: PayCalendar,
    /// Where centrally supported 特困 persons' benefits are paid (`[[institution]]`).
    institutions: CareInstitutions,
}

fn date_of(value: &toml::value::Datetime) -> Option<Date> {
    match (value.date, value.time, value.offset) {
        (Some(date), None, None) => {
            let month = time::Month::try_from(date.month).ok()?;
            Date::from_calendar_date(i32::from(date.year), month, date.day).ok()
        }
        _ => None,
    }
}

impl Funds {
    /// Reads and checks a funds file: dates (TOML dates) ascending per program, each budget
    /// once, in yuan of at most two decimals and not negative, and of a fund some program's
    /// entry names.
    pub fn from_toml_str(text: &str) -> Result<Funds, FundsError> {
        let file: FundsFile = toml::from_str(text).map_err(|error| FundsError {
            problems: vec![error.to_string()],
        })?;
        let mut problems = Vec::new();
        let mut payers = BTreeMap::new();
        for (program, entries) in file.payers {
            if entries.is_empty() {
                problems.push(format!("payers.{program}: no entry"));
            }
            let mut dated: Vec<(Date, String)> = Vec::new();
            for entry in entries {
                let Some(from) = date_of(&entry.from) else {
                    problems.push(format!("payers.{program}: {} is not a date", entry.from));
                    continue;
                };
                if dated.last().is_some_and(|(last, _)| *last >= from) {
                    problems.push(format!(
                        "payers.{program}: {from} is not after the entry before it"
                    ));
                }
                if entry.fund.trim().is_empty() {
                    problems.push(format!("payers.{program}: an empty fund"));
                }
                dated.push((from, entry.fund));
            }
            payers.insert(program, dated);
        }
        let named = |fund: &str| {
            payers
                .values()
                .any(|entries: &Vec<(Date, String)>| entries.iter().any(|(_, name)| name == fund))
        };
        let mut budgets = BTreeMap::new();
        for entry in file.budget {
            let key = format!("budget {}/{}", entry.fund, entry.program);
            if !named(&entry.fund) {
                problems.push(format!("{key}: no program is paid by fund {}", entry.fund));
            }
            if entry.yearly.is_empty() {
                problems.push(format!("{key}: no entry"));
            }
            let mut dated: Vec<(Date, Money)> = Vec::new();
            for yearly in entry.yearly {
                let Some(from) = date_of(&yearly.from) else {
                    problems.push(format!("{key}: {} is not a date", yearly.from));
                    continue;
                };
                if dated.last().is_some_and(|(last, _)| *last >= from) {
                    problems.push(format!("{key}: {from} is not after the entry before it"));
                }
                match Money::parse_yuan(&yearly.yuan) {
                    Ok(amount) if amount.is_negative() => {
                        problems.push(format!("{key}: a negative budget"));
                    }
                    Ok(amount) => dated.push((from, amount)),
                    Err(error) => problems.push(format!("{key}: {error}")),
                }
            }
            if budgets.insert((entry.fund, entry.program), dated).is_some() {
                problems.push(format!("{key}: given twice"));
            }
        }
        let calendar = PayCalendar::from_entries(file.calendar, &mut problems);
        let institutions = CareInstitutions::from_sections(file.institution, &mut problems);
        if problems.is_empty() {
            Ok(Funds {
                payers,
                budgets,
                calendar,
                institutions,
            })
        } else {
            Err(FundsError { problems })
        }
    }

    /// The EXAMPLE district's funds.
    pub fn example() -> Result<Funds, FundsError> {
        Funds::from_toml_str(EXAMPLE_FUNDS)
    }

    /// The fund that pays `program` on `on`: the last entry from on or before it.
    pub fn fund_paying(&self, program: &str, on: Date) -> Option<&str> {
        self.payers
            .get(program)?
            .iter()
            .rev()
            .find(|(from, _)| *from <= on)
            .map(|(_, fund)| fund.as_str())
    }

    /// The payment calendar: when a period's run pays.
    pub fn calendar(&self) -> &PayCalendar {
        &self.calendar
    }

    /// The care institutions and their accounts.
    pub fn institutions(&self) -> &CareInstitutions {
        &self.institutions
    }

    /// The budget of `fund` for `program` in `year`: the last entry from in or before it.
    pub fn budget(&self, fund: &str, program: &str, year: i32) -> Option<Money> {
        self.budgets
            .get(&(fund.to_owned(), program.to_owned()))?
            .iter()
            .rev()
            .find(|(from, _)| from.year() <= year)
            .map(|(_, amount)| *amount)
    }
}

/// The entitlement ids of assist-first grants start so (`read_model::assist_first_entitlement`).
pub const ASSIST_FIRST_PREFIX: &str = "assist-first-";

/// The program an order's money is budgeted under: [`ASSIST_FIRST`] for an assist-first grant,
/// else its program.
pub fn budget_program<'a>(entitlement_id: &str, program_code: &'a str) -> &'a str {
    if entitlement_id.starts_with(ASSIST_FIRST_PREFIX) {
        ASSIST_FIRST
    } else {
        program_code
    }
}

/// Why a run's demand on a fund is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BudgetRefusal {
    #[error("no fund pays program {program} on {on}")]
    NoFund { program: String, on: Date },
    #[error("fund {fund} has no budget for program {program} in {year}")]
    NoBudget {
        fund: String,
        program: String,
        year: i32,
    },
    #[error(
        "fund {fund} has {remaining} yuan left of its {year} budget for program {program}: \
         the run needs {needed}"
    )]
    OverBudget {
        fund: String,
        program: String,
        year: i32,
        remaining: Money,
        needed: Money,
    },
}

/// Whether `fund` may pay `needed` more for `program` in `year`, having committed `committed`
/// to approved runs of the year: remaining = budget − committed must stay at or above zero.
pub fn check_budget(
    funds: &Funds,
    fund: &str,
    program: &str,
    year: i32,
    committed: Money,
    needed: Money,
) -> Result<(), BudgetRefusal> {
    let budget = funds
        .budget(fund, program, year)
        .ok_or_else(|| BudgetRefusal::NoBudget {
            fund: fund.to_owned(),
            program: program.to_owned(),
            year,
        })?;
    let over = || BudgetRefusal::OverBudget {
        fund: fund.to_owned(),
        program: program.to_owned(),
        year,
        remaining: budget.checked_sub(committed).unwrap_or(Money::ZERO),
        needed,
    };
    let remaining = budget.checked_sub(committed).ok_or_else(over)?;
    match remaining.checked_sub(needed) {
        Some(left) if !left.is_negative() => Ok(()),
        _ => Err(over()),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use time::macros::date;

    use super::*;

    fn yuan(text: &str) -> Money {
        Money::parse_yuan(text).unwrap()
    }

    #[test]
    fn the_example_reads_and_says_it_is_an_example() {
        let funds = Funds::example().unwrap();
        assert!(EXAMPLE_FUNDS.contains("EXAMPLE") && EXAMPLE_FUNDS.contains("INVENTED"));
        assert_eq!(
            funds.fund_paying(ASSIST_FIRST, date!(2026 - 12 - 01)),
            Some("emergency")
        );
        assert_eq!(
            funds.fund_paying("dibao", date!(2026 - 12 - 01)),
            Some("dibao")
        );
        assert_eq!(funds.fund_paying("dibao", date!(2024 - 12 - 31)), None);
        assert_eq!(
            funds.budget("emergency", ASSIST_FIRST, 2025),
            Some(yuan("200000.00"))
        );
        assert_eq!(
            funds.budget("emergency", ASSIST_FIRST, 2031),
            Some(yuan("250000.00"))
        );
        assert_eq!(funds.budget("emergency", ASSIST_FIRST, 2024), None);
        // The example's care institution, open from 2025.
        let home = sunshine_domain::CreditCode::with_check_character("12990100MB0000001").unwrap();
        assert!(
            funds
                .institutions()
                .account_on(home.as_str(), date!(2026 - 12 - 01))
                .is_ok()
        );
    }

    #[test]
    fn a_payer_applies_from_its_date_until_the_next() {
        let funds = Funds::from_toml_str(
            "[payers]\ndibao = [{ from = 2025-01-01, fund = \"old\" }, { from = 2026-07-01, fund = \"new\" }]\n",
        )
        .unwrap();
        assert_eq!(
            funds.fund_paying("dibao", date!(2026 - 06 - 30)),
            Some("old")
        );
        assert_eq!(
            funds.fund_paying("dibao", date!(2026 - 07 - 01)),
            Some("new")
        );
        assert_eq!(funds.fund_paying("tekun", date!(2026 - 07 - 01)), None);
    }

    #[test]
    fn a_bad_file_names_every_problem() {
        let error = Funds::from_toml_str(
            "[payers]\n\
             dibao = [{ from = 2026-07-01, fund = \"a\" }, { from = 2026-01-01, fund = \"a\" }]\n\
             [[budget]]\nfund = \"a\"\nprogram = \"dibao\"\nyearly = [{ from = 2026-01-01, yuan = \"-1.00\" }]\n\
             [[budget]]\nfund = \"ghost\"\nprogram = \"dibao\"\nyearly = [{ from = 2026-01-01, yuan = \"1.005\" }]\n",
        )
        .unwrap_err();
        assert_eq!(error.problems.len(), 4, "{error}");
        assert!(Funds::from_toml_str("[payers]\nx = []\nextra = 1\n").is_err());
    }

    #[test]
    fn remaining_is_the_budget_less_what_approved_runs_committed() {
        let funds = Funds::example().unwrap();
        let check = |committed: &str, needed: &str| {
            check_budget(
                &funds,
                "emergency",
                ASSIST_FIRST,
                2026,
                yuan(committed),
                yuan(needed),
            )
        };
        assert_eq!(check("0.00", "250000.00"), Ok(()));
        assert_eq!(check("200000.00", "50000.00"), Ok(()));
        assert_eq!(
            check("200000.00", "50000.01"),
            Err(BudgetRefusal::OverBudget {
                fund: "emergency".into(),
                program: ASSIST_FIRST.into(),
                year: 2026,
                remaining: yuan("50000.00"),
                needed: yuan("50000.01"),
            })
        );
        let refused = check("0.00", "250000.01").unwrap_err().to_string();
        assert!(
            refused.contains("emergency") && refused.contains(ASSIST_FIRST),
            "{refused}"
        );
        assert_eq!(
            check_budget(&funds, "dibao", "dibao", 2024, Money::ZERO, yuan("1.00")),
            Err(BudgetRefusal::NoBudget {
                fund: "dibao".into(),
                program: "dibao".into(),
                year: 2024
            })
        );
    }
}
