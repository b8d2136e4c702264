//! The department registry, configuration (`integration.departments_file`, format:
//! `departments/example-district.toml`): every responsible unit and data holder — its code
//! (the code department tokens carry), names, the programs it runs, the data items it may read
//! and answer, the events it may receive — and what a department's scope is (pure). Loading
//! refuses a bad file naming every bad entry.

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;

use crate::dictionary::{FieldDictionary, is_code, is_name};

/// The EXAMPLE district's registry, compiled in.
const EXAMPLE: &str = include_str!("../departments/example-district.toml");

/// The data item that lets a department read every department's assistance records (the
/// center's coordinating departments); without it a department reads only its own.
pub const ALL_RECORDS_ITEM: &str = "assistance_records";

/// The events a department may be sent (slices to come deliver them).
pub const EVENT_KINDS: &[&str] = &[
    "verification_requested",
    "linkage_notice",
    "duplicate_assistance",
    "monitoring_warning",
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Department {
    pub code: String,
    pub name_zh: String,
    pub name_en: String,
    pub programs: BTreeSet<String>,
    pub reads: BTreeSet<String>,
    pub answers: BTreeSet<String>,
    pub events: BTreeSet<String>,
}

impl Department {
    /// Whether the department may read other departments' records, not only its own.
    pub fn reads_all_records(&self) -> bool {
        self.reads.contains(ALL_RECORDS_ITEM)
    }

    /// Whether `program` is within the department's reading scope: one it runs, or any with
    /// [`ALL_RECORDS_ITEM`].
    pub fn may_read_program(&self, program: &str) -> bool {
        self.reads_all_records() || self.programs.contains(program)
    }

    /// Whether the department may see a record pushed by `department`.
    pub fn may_read_records_of(&self, department: &str) -> bool {
        self.reads_all_records() || self.code == department
    }
}

/// The event kind that makes a department a data holder of the economic-status check.
pub const VERIFICATION_REQUESTED: &str = "verification_requested";

/// The departments, by code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registry {
    departments: BTreeMap<String, Department>,
    programs: BTreeSet<String>,
    /// The items the economic-status check acquires (`[check] items`), in the file's order.
    check_items: Vec<String>,
}

/// One data holder's part of a check: the department and the check's items it answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HolderItems {
    pub department_code: String,
    pub items: Vec<String>,
}

/// A bad registry: every bad entry, named (`department[2].reads[0]: …`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("department registry: {}", .problems.join("; "))]
pub struct RegistryError {
    pub problems: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    department: Vec<Entry>,
    #[serde(default)]
    check: CheckEntry,
}

/// `[check]`: what the economic-status check acquires.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct CheckEntry {
    #[serde(default)]
    items: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    code: String,
    name_zh: String,
    name_en: String,
    #[serde(default)]
    programs: Vec<String>,
    #[serde(default)]
    reads: Vec<String>,
    #[serde(default)]
    answers: Vec<String>,
    #[serde(default)]
    events: Vec<String>,
}

/// The list's entries as a set; a bad or repeated entry is a problem named `at.list[i]`.
fn checked_set(
    problems: &mut Vec<String>,
    at: &str,
    list: &str,
    values: Vec<String>,
    known: impl Fn(&str) -> Result<(), String>,
) -> BTreeSet<String> {
    let mut set = BTreeSet::new();
    for (index, value) in values.into_iter().enumerate() {
        if let Err(reason) = known(&value) {
            problems.push(format!("{at}.{list}[{index}]: {value:?} {reason}"));
        } else if !set.insert(value.clone()) {
            problems.push(format!("{at}.{list}[{index}]: {value:?} is listed twice"));
        }
    }
    set
}

impl Registry {
    /// The EXAMPLE district's registry.
    pub fn example(dictionary: &FieldDictionary) -> Result<Registry, RegistryError> {
        Registry::from_toml_str(EXAMPLE, dictionary)
    }

    pub fn from_toml_str(
        text: &str,
        dictionary: &FieldDictionary,
    ) -> Result<Registry, RegistryError> {
        let file: File = toml::from_str(text).map_err(|error| RegistryError {
            problems: vec![error.to_string().trim().to_owned()],
        })?;
        let mut problems = Vec::new();
        let mut departments = BTreeMap::new();
        let item = |value: &str| match dictionary.item(value) {
            Some(_) => Ok(()),
            None => Err("is not a data item of the field dictionary".to_owned()),
        };
        for (index, entry) in file.department.into_iter().enumerate() {
            let at = format!("department[{index}]");
            if !is_code(&entry.code) {
                problems.push(format!("{at}.code: {:?} is not a code", entry.code));
            }
            if !is_name(&entry.name_zh) {
                problems.push(format!(
                    "{at}.name_zh ({}): must be one non-empty line",
                    entry.code
                ));
            }
            if !is_name(&entry.name_en) {
                problems.push(format!(
                    "{at}.name_en ({}): must be one non-empty line",
                    entry.code
                ));
            }
            let programs = checked_set(&mut problems, &at, "programs", entry.programs, |value| {
                if is_code(value) {
                    Ok(())
                } else {
                    Err("is not a program code".into())
                }
            });
            let reads = checked_set(&mut problems, &at, "reads", entry.reads, item);
            let answers = checked_set(&mut problems, &at, "answers", entry.answers, item);
            let events = checked_set(&mut problems, &at, "events", entry.events, |value| {
                if EVENT_KINDS.contains(&value) {
                    Ok(())
                } else {
                    Err(format!("is not an event kind ({})", EVENT_KINDS.join(", ")))
                }
            });
            if departments.contains_key(&entry.code) {
                problems.push(format!("{at}.code: {} is listed twice", entry.code));
            }
            departments.insert(
                entry.code.clone(),
                Department {
                    code: entry.code,
                    name_zh: entry.name_zh,
                    name_en: entry.name_en,
                    programs,
                    reads,
                    answers,
                    events,
                },
            );
        }
        if departments.is_empty() {
            problems.push("department: the registry has no departments".into());
        }
        let check_set = checked_set(
            &mut problems,
            "check",
            "items",
            file.check.items.clone(),
            item,
        );
        let mut seen = BTreeSet::new();
        let check_items: Vec<String> = file
            .check
            .items
            .into_iter()
            .filter(|code| check_set.contains(code) && seen.insert(code.clone()))
            .collect();
        for (index, code) in check_items.iter().enumerate() {
            let answered = departments.values().any(|department: &Department| {
                department.events.contains(VERIFICATION_REQUESTED)
                    && department.answers.contains(code)
            });
            if !answered {
                problems.push(format!(
                    "check.items: {code:?} (item {index}) is answered by no department that receives {VERIFICATION_REQUESTED}"
                ));
            }
        }
        if !problems.is_empty() {
            return Err(RegistryError { problems });
        }
        let programs = departments
            .values()
            .flat_map(|department| department.programs.iter().cloned())
            .collect();
        Ok(Registry {
            departments,
            programs,
            check_items,
        })
    }

    /// The items the economic-status check acquires.
    pub fn check_items(&self) -> &[String] {
        &self.check_items
    }

    /// The data holders of a check of `items`: each department receiving
    /// `verification_requested` that answers some of them, with those it answers (by code).
    pub fn holders_for(&self, items: &[String]) -> Vec<HolderItems> {
        self.departments
            .values()
            .filter(|department| department.events.contains(VERIFICATION_REQUESTED))
            .filter_map(|department| {
                let answered: Vec<String> = items
                    .iter()
                    .filter(|item| department.answers.contains(*item))
                    .cloned()
                    .collect();
                (!answered.is_empty()).then(|| HolderItems {
                    department_code: department.code.clone(),
                    items: answered,
                })
            })
            .collect()
    }

    pub fn department(&self, code: &str) -> Option<&Department> {
        self.departments.get(code)
    }

    pub fn departments(&self) -> impl Iterator<Item = &Department> {
        self.departments.values()
    }

    /// Whether some department runs `program`.
    pub fn is_program(&self, program: &str) -> bool {
        self.programs.contains(program)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dictionary() -> FieldDictionary {
        FieldDictionary::embedded().expect("the shipped dictionary")
    }

    #[test]
    fn the_example_registry_has_every_unit_the_issue_names() {
        let registry = Registry::example(&dictionary()).expect("the example registry");
        for code in [
            "education",
            "human_resources",
            "health",
            "housing_management",
            "housing_construction",
            "court",
            "justice",
            "water_affairs",
            "organisation",
            "charity_federation",
            "red_cross",
            "disabled_persons_federation",
            "emergency",
            "finance",
            "ageing",
            "population_family_planning",
            "trade_union",
            "economy",
            "civil_affairs",
            "public_security",
            "real_estate",
            "market_regulation",
            "tax",
            "housing_provident_fund",
            "banks_insurers",
        ] {
            assert!(registry.department(code).is_some(), "{code} is missing");
        }
        assert_eq!(registry.departments().count(), 25);
        let public_security = registry.department("public_security").expect("listed");
        assert!(public_security.answers.contains("vehicles"));
        assert!(public_security.answers.contains("household_registration"));
    }

    #[test]
    fn the_checks_items_go_to_the_holders_that_answer_them() {
        let registry = Registry::example(&dictionary()).expect("the example registry");
        let holders = registry.holders_for(registry.check_items());
        let codes: Vec<&str> = holders
            .iter()
            .map(|holder| holder.department_code.as_str())
            .collect();
        assert_eq!(
            codes,
            [
                "banks_insurers",
                "housing_provident_fund",
                "human_resources",
                "market_regulation",
                "public_security",
                "real_estate",
                "tax"
            ]
        );
        let real_estate = holders
            .iter()
            .find(|holder| holder.department_code == "real_estate")
            .expect("real estate");
        assert_eq!(real_estate.items, ["real_estate"]);
        let only_vehicles = registry.holders_for(&["vehicles".to_owned()]);
        assert_eq!(only_vehicles.len(), 1);
        assert_eq!(only_vehicles[0].department_code, "public_security");
    }

    #[test]
    fn a_check_item_nobody_answers_is_refused() {
        let text = "[[department]]\ncode = \"a\"\nname_zh = \"甲\"\nname_en = \"A\"\nanswers = [\"wages\"]\n\n[check]\nitems = [\"wages\", \"shoe\"]\n";
        let error = Registry::from_toml_str(text, &dictionary()).expect_err("bad check items");
        let problems = error.problems.join("\n");
        assert!(problems.contains("check.items[1]: \"shoe\""), "{problems}");
        assert!(problems.contains("check.items: \"wages\""), "{problems}");
    }

    #[test]
    fn a_department_reads_its_own_programs_and_all_only_with_the_records_item() {
        let registry = Registry::example(&dictionary()).expect("the example registry");
        let education = registry.department("education").expect("listed");
        assert!(education.may_read_program("education_assistance"));
        assert!(!education.may_read_program("legal_aid"));
        assert!(education.may_read_records_of("education"));
        assert!(!education.may_read_records_of("justice"));
        let civil_affairs = registry.department("civil_affairs").expect("listed");
        assert!(civil_affairs.may_read_program("legal_aid"));
        assert!(civil_affairs.may_read_records_of("justice"));
    }

    #[test]
    fn a_bad_registry_is_refused_naming_every_bad_entry() {
        let text = r#"
            [[department]]
            code = "education"
            name_zh = "教育局"
            name_en = "Education Bureau"
            programs = ["education_assistance", "education_assistance"]
            reads = ["dibao_status", "shoe_size"]
            events = ["birthday"]

            [[department]]
            code = "Education!"
            name_zh = ""
            name_en = "Another"

            [[department]]
            code = "education"
            name_zh = "教育局"
            name_en = "Again"
        "#;
        let error = Registry::from_toml_str(text, &dictionary()).expect_err("bad entries");
        let problems = error.problems.join("\n");
        for expected in [
            "department[0].programs[1]: \"education_assistance\" is listed twice",
            "department[0].reads[1]: \"shoe_size\" is not a data item",
            "department[0].events[0]: \"birthday\" is not an event kind",
            "department[1].code",
            "department[1].name_zh",
            "department[2].code: education is listed twice",
        ] {
            assert!(problems.contains(expected), "{expected} in {problems}");
        }
    }

    #[test]
    fn an_unknown_key_or_an_empty_registry_is_refused() {
        let dictionary = dictionary();
        assert!(Registry::from_toml_str("", &dictionary).is_err());
        let text = "[[department]]\ncode = \"a\"\nname_zh = \"甲\"\nname_en = \"A\"\nbudget = 3\n";
        let error = Registry::from_toml_str(text, &dictionary).expect_err("unknown key");
        assert!(error.problems[0].contains("budget"), "{error}");
    }
}
