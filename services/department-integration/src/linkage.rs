//! Linkage rules as data (`integration.linkage_file`, format: `departments/example-linkage.toml`):
//! when review approves a case, which departments are told, for which of their programs, and
//! on what condition — e.g. an approved dibao household with a school-age member notifies
//! education (fee exemption, living allowance); dibao and 特困 households notify health
//! (premium subsidy) and justice (free legal aid). Loading refuses a bad file naming every bad
//! entry; evaluation is pure ([`LinkageRules::notices_for`]).
//!
//! School age is a plain fact intake keeps of every member (not sealed): a living member with a
//! school stage recorded (`school_stage`: the member attends school), or aged
//! [`SCHOOL_AGE_FROM`] to [`SCHOOL_AGE_TO`] on the day of the approval by their birth date
//! (compulsory education from six, senior secondary to eighteen). Only the count leaves
//! [`school_age_members`]; nothing personal goes into a notice.

use std::collections::BTreeSet;

use serde::Deserialize;
use sunshine_proto::v1 as pb;
use time::Date;

use crate::dictionary::is_code;
use crate::registry::Registry;

/// The EXAMPLE district's rules, compiled in.
const EXAMPLE: &str = include_str!("../departments/example-linkage.toml");

/// The event kind a department must receive to be a rule's department.
pub const LINKAGE_NOTICE: &str = "linkage_notice";
/// The ages (in whole years, inclusive) that count as school age.
pub const SCHOOL_AGE_FROM: i32 = 6;
pub const SCHOOL_AGE_TO: i32 = 18;
/// What a department answers a notice with.
pub const OUTCOMES: &[&str] = &["granted", "not_eligible", "already_receiving"];

/// One rule: an approved case of one of `programs` notifies `department` for its `program`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkageRule {
    pub code: String,
    /// The approved case's programs the rule fires for.
    pub programs: BTreeSet<String>,
    pub department: String,
    /// The department's program the notice is for.
    pub program: String,
    /// What the department grants (documentation for the department: fee_exemption, …).
    pub benefits: Vec<String>,
    /// Fires only when the household has at least one school-age member.
    pub requires_school_age_member: bool,
}

/// The rules, in the file's order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LinkageRules {
    rules: Vec<LinkageRule>,
}

/// A bad rules file: every bad entry, named (`linkage[1].department: …`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("linkage rules: {}", .problems.join("; "))]
pub struct LinkageError {
    pub problems: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    linkage: Vec<Entry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    code: String,
    programs: Vec<String>,
    department: String,
    program: String,
    #[serde(default)]
    benefits: Vec<String>,
    #[serde(default)]
    requires_school_age_member: bool,
}

/// What the approval tells, with what intake's household adds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Approval {
    pub case_id: String,
    pub household_id: String,
    pub program_code: String,
    pub school_age_members: u32,
}

/// A notice to send: one per (case, rule).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoticeDraft {
    pub notice_id: String,
    pub event: pb::LinkageNoticeSent,
}

/// A notice's id from the case and the rule: one notice per case and rule, whoever reacts.
pub fn notice_id_for(case_id: &str, rule_code: &str) -> String {
    uuid::Uuid::new_v5(
        &uuid::Uuid::NAMESPACE_OID,
        format!("department-integration/linkage\n{case_id}\n{rule_code}").as_bytes(),
    )
    .to_string()
}

impl LinkageRules {
    /// The EXAMPLE district's rules.
    pub fn example(registry: &Registry) -> Result<LinkageRules, LinkageError> {
        LinkageRules::from_toml_str(EXAMPLE, registry)
    }

    pub fn from_toml_str(text: &str, registry: &Registry) -> Result<LinkageRules, LinkageError> {
        let file: File = toml::from_str(text).map_err(|error| LinkageError {
            problems: vec![error.to_string().trim().to_owned()],
        })?;
        let mut problems = Vec::new();
        let mut rules = Vec::new();
        let mut codes = BTreeSet::new();
        for (index, entry) in file.linkage.into_iter().enumerate() {
            let at = format!("linkage[{index}]");
            if !is_code(&entry.code) {
                problems.push(format!("{at}.code: {:?} is not a code", entry.code));
            } else if !codes.insert(entry.code.clone()) {
                problems.push(format!("{at}.code: {} is listed twice", entry.code));
            }
            if entry.programs.is_empty() {
                problems.push(format!("{at}.programs ({}): at least one", entry.code));
            }
            let mut programs = BTreeSet::new();
            for (position, program) in entry.programs.iter().enumerate() {
                if !registry.is_program(program) {
                    problems.push(format!(
                        "{at}.programs[{position}]: {program:?} is not a program of the registry"
                    ));
                } else if !programs.insert(program.clone()) {
                    problems.push(format!(
                        "{at}.programs[{position}]: {program:?} is listed twice"
                    ));
                }
            }
            match registry.department(&entry.department) {
                None => problems.push(format!(
                    "{at}.department: {:?} is not a department of the registry",
                    entry.department
                )),
                Some(department) => {
                    if !department.events.contains(LINKAGE_NOTICE) {
                        problems.push(format!(
                            "{at}.department: {} does not receive {LINKAGE_NOTICE}",
                            entry.department
                        ));
                    }
                    if !department.programs.contains(&entry.program) {
                        problems.push(format!(
                            "{at}.program: {:?} is not a program {} runs",
                            entry.program, entry.department
                        ));
                    }
                }
            }
            for (position, benefit) in entry.benefits.iter().enumerate() {
                if !is_code(benefit) {
                    problems.push(format!(
                        "{at}.benefits[{position}]: {benefit:?} is not a code"
                    ));
                }
            }
            rules.push(LinkageRule {
                code: entry.code,
                programs,
                department: entry.department,
                program: entry.program,
                benefits: entry.benefits,
                requires_school_age_member: entry.requires_school_age_member,
            });
        }
        if !problems.is_empty() {
            return Err(LinkageError { problems });
        }
        Ok(LinkageRules { rules })
    }

    pub fn rules(&self) -> &[LinkageRule] {
        &self.rules
    }

    /// The notices an approval sends: one per rule it meets, in the rules' order.
    pub fn notices_for(&self, approval: &Approval) -> Vec<NoticeDraft> {
        self.rules
            .iter()
            .filter(|rule| rule.programs.contains(&approval.program_code))
            .filter(|rule| !rule.requires_school_age_member || approval.school_age_members > 0)
            .map(|rule| {
                let notice_id = notice_id_for(&approval.case_id, &rule.code);
                NoticeDraft {
                    notice_id: notice_id.clone(),
                    event: pb::LinkageNoticeSent {
                        notice_id,
                        rule_code: rule.code.clone(),
                        department_code: rule.department.clone(),
                        case_id: approval.case_id.clone(),
                        household_id: approval.household_id.clone(),
                        program_code: rule.program.clone(),
                    },
                }
            })
            .collect()
    }
}

/// Whole years from `birth` to `on`.
fn age_on(birth: Date, on: Date) -> i32 {
    let mut age = on.year() - birth.year();
    if (on.month() as u8, on.day()) < (birth.month() as u8, birth.day()) {
        age -= 1;
    }
    age
}

/// The household's living members of school age on `on` (see the module docs).
pub fn school_age_members(members: &[(bool, &pb::SealedMember)], on: Date) -> u32 {
    let count = members
        .iter()
        .filter(|(alive, _)| *alive)
        .filter(|(_, member)| {
            !member.school_stage.trim().is_empty()
                || member
                    .birth_date
                    .as_ref()
                    .and_then(|date| {
                        Date::from_calendar_date(
                            date.year,
                            time::Month::try_from(u8::try_from(date.month).ok()?).ok()?,
                            u8::try_from(date.day).ok()?,
                        )
                        .ok()
                    })
                    .is_some_and(|birth| {
                        (SCHOOL_AGE_FROM..=SCHOOL_AGE_TO).contains(&age_on(birth, on))
                    })
        })
        .count();
    u32::try_from(count).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dictionary::FieldDictionary;
    use time::macros::date;

    fn registry() -> Registry {
        Registry::example(&FieldDictionary::embedded().expect("dictionary")).expect("registry")
    }

    fn approval(program: &str, school_age_members: u32) -> Approval {
        Approval {
            case_id: "0190f3c4-0000-7000-8000-000000000001".into(),
            household_id: "0190f3c4-0000-7000-8000-000000000002".into(),
            program_code: program.into(),
            school_age_members,
        }
    }

    fn departments(notices: &[NoticeDraft]) -> Vec<&str> {
        notices
            .iter()
            .map(|notice| notice.event.department_code.as_str())
            .collect()
    }

    #[test]
    fn a_dibao_household_with_a_pupil_notifies_education_health_and_justice() {
        let rules = LinkageRules::example(&registry()).expect("the example rules");
        let notices = rules.notices_for(&approval("dibao", 1));
        assert_eq!(departments(&notices), ["education", "health", "justice"]);
        assert_eq!(notices[0].event.program_code, "education_assistance");
        assert_eq!(
            notices[0].notice_id,
            notice_id_for(&notices[0].event.case_id, &notices[0].event.rule_code)
        );
    }

    #[test]
    fn without_a_pupil_education_is_not_told_and_tekun_reaches_health_and_justice() {
        let rules = LinkageRules::example(&registry()).expect("the example rules");
        assert_eq!(
            departments(&rules.notices_for(&approval("dibao", 0))),
            ["health", "justice"]
        );
        assert_eq!(
            departments(&rules.notices_for(&approval("tekun", 0))),
            ["health", "justice"]
        );
        assert!(
            rules
                .notices_for(&approval("disaster_relief", 2))
                .is_empty()
        );
    }

    #[test]
    fn school_age_is_a_stage_or_six_to_eighteen_and_alive() {
        let member = |birth: Option<pb::Date>, stage: &str| pb::SealedMember {
            birth_date: birth,
            school_stage: stage.into(),
            ..Default::default()
        };
        let on = date!(2026 - 09 - 01);
        let born = |year, month, day| Some(pb::Date { year, month, day });
        let six_tomorrow = member(born(2020, 9, 2), "");
        let six_today = member(born(2020, 9, 1), "");
        let nineteen = member(born(2007, 8, 1), "");
        let student = member(born(2000, 1, 1), "university");
        let adult = member(born(1980, 1, 1), "");
        let members = [
            (true, &six_tomorrow),
            (true, &six_today),
            (true, &nineteen),
            (true, &student),
            (true, &adult),
            (false, &six_today),
        ];
        assert_eq!(school_age_members(&members, on), 2);
    }

    #[test]
    fn a_bad_rules_file_is_refused_naming_every_bad_entry() {
        let text = r#"
            [[linkage]]
            code = "a"
            programs = ["dibao", "shoes"]
            department = "education"
            program = "legal_aid"

            [[linkage]]
            code = "a"
            programs = []
            department = "water_affairs"
            program = "reservoir_migrant_support"
            benefits = ["Fee!"]

            [[linkage]]
            code = "c"
            programs = ["dibao"]
            department = "nobody"
            program = "x"
        "#;
        let error = LinkageRules::from_toml_str(text, &registry()).expect_err("bad entries");
        let problems = error.problems.join("\n");
        for expected in [
            "linkage[0].programs[1]: \"shoes\"",
            "linkage[0].program: \"legal_aid\" is not a program education runs",
            "linkage[1].code: a is listed twice",
            "linkage[1].programs (a): at least one",
            "linkage[1].department: water_affairs does not receive linkage_notice",
            "linkage[1].benefits[0]",
            "linkage[2].department: \"nobody\"",
        ] {
            assert!(problems.contains(expected), "{expected} in {problems}");
        }
        let unknown = LinkageRules::from_toml_str(
            "[[linkage]]\ncode = \"a\"\nprograms = [\"dibao\"]\ndepartment = \"health\"\nprogram = \"entitled_medical\"\nbudget = 1\n",
            &registry(),
        )
        .expect_err("unknown key");
        assert!(unknown.problems[0].contains("budget"), "{unknown}");
    }
}
