//! Care institutions and their bank accounts (pure): where the benefit of a 特困 person
//! supported centrally (集中供养) is paid — the institution that supports them, not the
//! household — as dated entries of the funds file's `[[institution]]` section
//! (`services/payment/funds/example-district.toml`), read with the funds
//! (`crate::funds::Funds::institutions`).
//!
//! An institution is its unified social credit code (统一社会信用代码,
//! `sunshine_domain::CreditCode`, the code review's approval names); each dated entry gives,
//! from its `from` until the next, either its account — the name the account is held in, the
//! bank's code (the 12-digit CNAPS bank number, 联行号) and the account number — or that it is
//! `closed`. These are the district's data about organisations, not personal data: they are
//! kept in the clear, in the file and in errors.
//!
//! [`CareInstitutions::account_on`] answers the account in force on a day, or why there is
//! none ([`Unpayable`]): the bank file's export takes each institution's account on its own
//! date and refuses the run when one has none (`crate::bank_export`).

use std::collections::BTreeMap;

use serde::Deserialize;
use sunshine_domain::CreditCode;
use time::Date;

use crate::bank_files;

/// One `[[institution]]` of the funds file, as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstitutionSection {
    pub code: String,
    pub entries: Vec<InstitutionEntry>,
}

/// One dated entry of an institution, as written: its account, or `closed = true`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstitutionEntry {
    pub from: toml::value::Datetime,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub bank_code: String,
    #[serde(default)]
    pub account_number: String,
    #[serde(default)]
    pub closed: bool,
}

/// An institution's account, as an order line pays it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstitutionAccount {
    /// The name the account is held in (the batch line's account name).
    pub name: String,
    /// The bank's 12-digit CNAPS number (联行号).
    pub bank_code: String,
    pub account_number: String,
}

/// Why an institution has no account on a day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unpayable {
    /// The institutions file does not name it.
    Unknown,
    /// Its first entry starts after the day.
    NotYet { from: Date },
    /// Its entry in force says it is closed.
    Closed { since: Date },
}

impl std::fmt::Display for Unpayable {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unpayable::Unknown => formatter.write_str("not in the institutions file"),
            Unpayable::NotYet { from } => write!(formatter, "no account before {from}"),
            Unpayable::Closed { since } => write!(formatter, "closed since {since}"),
        }
    }
}

/// The institutions, checked (the default has none).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CareInstitutions {
    /// Code → (from, the account, or `None`: closed), oldest first.
    by_code: BTreeMap<String, Vec<(Date, Option<InstitutionAccount>)>>,
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

/// A CNAPS bank number (支付系统行号): 12 digits.
fn is_bank_code(text: &str) -> bool {
    text.len() == 12 && text.bytes().all(|byte| byte.is_ascii_digit())
}

/// A bank account number: 6 to 32 digits.
fn is_account_number(text: &str) -> bool {
    (6..=32).contains(&text.len())
        && text.bytes().all(|byte| byte.is_ascii_digit())
        && bank_files::fits_account(text)
}

impl CareInstitutions {
    /// Checks the sections — each code a unified social credit code, given once; each entry's
    /// date a TOML date after the one before it; an open entry a name the bank file can carry,
    /// a 12-digit bank code and an account number of 6 to 32 digits; a closed entry nothing
    /// else — each problem pushed to `problems` named `institution[i]`.
    pub fn from_sections(
        sections: Vec<InstitutionSection>,
        problems: &mut Vec<String>,
    ) -> CareInstitutions {
        let mut by_code: BTreeMap<String, Vec<(Date, Option<InstitutionAccount>)>> =
            BTreeMap::new();
        for (index, section) in sections.into_iter().enumerate() {
            let key = format!("institution[{index}]");
            let code = match CreditCode::parse(&section.code) {
                Ok(code) => code.as_str().to_owned(),
                Err(error) => {
                    problems.push(format!("{key}: code: {error}"));
                    continue;
                }
            };
            if section.entries.is_empty() {
                problems.push(format!("{key}: no entry"));
            }
            let mut dated: Vec<(Date, Option<InstitutionAccount>)> = Vec::new();
            let mut last_from: Option<Date> = None;
            for (at, entry) in section.entries.into_iter().enumerate() {
                let key = format!("{key}.entries[{at}]");
                let Some(from) = date_of(&entry.from) else {
                    problems.push(format!("{key}: from {} is not a date", entry.from));
                    continue;
                };
                if last_from.is_some_and(|last| last >= from) {
                    problems.push(format!("{key}: {from} is not after the entry before it"));
                }
                last_from = Some(from);
                if entry.closed {
                    if !(entry.name.is_empty()
                        && entry.bank_code.is_empty()
                        && entry.account_number.is_empty())
                    {
                        problems.push(format!("{key}: a closed entry gives no account"));
                    }
                    dated.push((from, None));
                    continue;
                }
                let mut fine = true;
                if !bank_files::fits_account_name(&entry.name) {
                    problems.push(format!(
                        "{key}: name is the account's name: not empty, no comma, quote or control character, at most 60 GBK bytes"
                    ));
                    fine = false;
                }
                if !is_bank_code(&entry.bank_code) {
                    problems.push(format!(
                        "{key}: bank_code is the bank's 12-digit CNAPS number (联行号)"
                    ));
                    fine = false;
                }
                if !is_account_number(&entry.account_number) {
                    problems.push(format!("{key}: account_number is 6 to 32 digits"));
                    fine = false;
                }
                if fine {
                    dated.push((
                        from,
                        Some(InstitutionAccount {
                            name: entry.name,
                            bank_code: entry.bank_code,
                            account_number: entry.account_number,
                        }),
                    ));
                }
            }
            if by_code.insert(code.clone(), dated).is_some() {
                problems.push(format!("{key}: institution {code} is given twice"));
            }
        }
        CareInstitutions { by_code }
    }

    /// The account of institution `code` in force on `on`: its last entry from on or before
    /// that day, unless it says the institution is closed.
    pub fn account_on(&self, code: &str, on: Date) -> Result<&InstitutionAccount, Unpayable> {
        let entries = self.by_code.get(code).ok_or(Unpayable::Unknown)?;
        match entries.iter().rev().find(|(from, _)| *from <= on) {
            Some((_, Some(account))) => Ok(account),
            Some((since, None)) => Err(Unpayable::Closed { since: *since }),
            None => Err(Unpayable::NotYet {
                from: entries.first().map_or(on, |(from, _)| *from),
            }),
        }
    }

    /// How many institutions the file names.
    pub fn len(&self) -> usize {
        self.by_code.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_code.is_empty()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use time::macros::date;

    use super::*;

    fn read(text: &str) -> Result<CareInstitutions, Vec<String>> {
        #[derive(Deserialize)]
        struct File {
            institution: Vec<InstitutionSection>,
        }
        let file: File = toml::from_str(text).map_err(|error| vec![error.to_string()])?;
        let mut problems = Vec::new();
        let institutions = CareInstitutions::from_sections(file.institution, &mut problems);
        if problems.is_empty() {
            Ok(institutions)
        } else {
            Err(problems)
        }
    }

    fn code() -> String {
        CreditCode::with_check_character("12990100MB0000001")
            .unwrap()
            .as_str()
            .to_owned()
    }

    fn one_institution() -> CareInstitutions {
        read(&format!(
            "[[institution]]\ncode = \"{}\"\nentries = [\n\
             {{ from = 2025-01-01, name = \"示例区中心敬老院\", bank_code = \"402990100016\", account_number = \"6228480099001234567\" }},\n\
             {{ from = 2026-07-01, name = \"示例区中心敬老院\", bank_code = \"402990100016\", account_number = \"6228480099007654321\" }},\n\
             {{ from = 2027-01-01, closed = true }},\n]\n",
            code().to_ascii_lowercase()
        ))
        .unwrap()
    }

    #[test]
    fn an_institution_s_account_is_the_entry_in_force_until_it_closes() {
        let institutions = one_institution();
        assert_eq!(institutions.len(), 1);
        let number = |on| {
            institutions
                .account_on(&code(), on)
                .map(|account| account.account_number.clone())
        };
        assert_eq!(
            number(date!(2024 - 12 - 31)),
            Err(Unpayable::NotYet {
                from: date!(2025 - 01 - 01)
            })
        );
        assert_eq!(
            number(date!(2026 - 06 - 30)).unwrap(),
            "6228480099001234567"
        );
        assert_eq!(
            number(date!(2026 - 07 - 01)).unwrap(),
            "6228480099007654321"
        );
        assert_eq!(
            number(date!(2027 - 01 - 01)),
            Err(Unpayable::Closed {
                since: date!(2027 - 01 - 01)
            })
        );
        assert_eq!(
            institutions.account_on("52990100MJ00000038", date!(2026 - 07 - 01)),
            Err(Unpayable::Unknown)
        );
        let account = institutions
            .account_on(&code(), date!(2026 - 07 - 01))
            .unwrap();
        assert_eq!(account.name, "示例区中心敬老院");
        assert_eq!(account.bank_code, "402990100016");
    }

    #[test]
    fn a_bad_section_names_every_problem() {
        let problems = read(&format!(
            "[[institution]]\ncode = \"12990100MB00000010\"\nentries = [{{ from = 2025-01-01, closed = true }}]\n\
             [[institution]]\ncode = \"{code}\"\nentries = [\n\
             {{ from = 2026-01-01, name = \"敬老院,一\", bank_code = \"4029\", account_number = \"62x\" }},\n\
             {{ from = 2025-01-01, closed = true, account_number = \"6228480099001234567\" }},\n]\n\
             [[institution]]\ncode = \"{code}\"\nentries = []\n",
            code = code()
        ))
        .unwrap_err();
        assert_eq!(problems.len(), 8, "{problems:#?}");
        assert!(
            problems[0].starts_with("institution[0]: code"),
            "{problems:?}"
        );
        assert!(
            problems
                .iter()
                .any(|problem| problem.contains("is given twice")),
            "{problems:?}"
        );
        assert!(read("[[institution]]\ncode = \"x\"\nentries = []\nextra = 1\n").is_err());
        let long_name = "院".repeat(31);
        let problems = read(&format!(
            "[[institution]]\ncode = \"{}\"\nentries = [{{ from = 2025-01-01, name = \"{long_name}\", bank_code = \"402990100016\", account_number = \"6228480099001234567\" }}]\n",
            code()
        ))
        .unwrap_err();
        assert_eq!(problems.len(), 1, "{problems:?}");
    }
}
