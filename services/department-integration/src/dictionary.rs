//! The field dictionary: the data items departments read and answer, in classes, each with a
//! sensitivity flag (after MZ/T 073-2024's arrangement; the items are named plainly, with no
//! official numbers). Project data, compiled in from `data/field-dictionary.toml`; loading
//! refuses a bad entry by name (pure).

use std::collections::BTreeMap;

use serde::Deserialize;

/// The dictionary shipped with the service.
const EMBEDDED: &str = include_str!("../data/field-dictionary.toml");

/// Longest code of a class or an item.
pub const MAX_CODE_LEN: usize = 48;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataClass {
    pub code: String,
    pub name_zh: String,
    pub name_en: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataItem {
    pub code: String,
    pub class: String,
    pub name_zh: String,
    pub name_en: String,
    /// How a data holder answers the item in the economic-status check.
    pub value_type: ValueType,
    /// Sensitive personal information (PIPL): read only for a stated purpose, never shown
    /// beyond the department that asked.
    pub sensitive: bool,
}

/// How an item is answered: money in fen, a count, yes or no, a date.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueType {
    Amount,
    Count,
    Flag,
    Date,
}

impl ValueType {
    pub const CODES: &[&str] = &["amount", "count", "flag", "date"];

    pub fn parse(code: &str) -> Option<ValueType> {
        match code {
            "amount" => Some(ValueType::Amount),
            "count" => Some(ValueType::Count),
            "flag" => Some(ValueType::Flag),
            "date" => Some(ValueType::Date),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ValueType::Amount => "amount",
            ValueType::Count => "count",
            ValueType::Flag => "flag",
            ValueType::Date => "date",
        }
    }
}

/// The classes and items, by code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldDictionary {
    classes: BTreeMap<String, DataClass>,
    items: BTreeMap<String, DataItem>,
}

/// A bad dictionary: every bad entry, named (`item[3].class: …`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("field dictionary: {}", .problems.join("; "))]
pub struct DictionaryError {
    pub problems: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    class: Vec<ClassEntry>,
    #[serde(default)]
    item: Vec<ItemEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ClassEntry {
    code: String,
    name_zh: String,
    name_en: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ItemEntry {
    code: String,
    class: String,
    name_zh: String,
    name_en: String,
    value_type: String,
    sensitive: bool,
}

/// Whether `code` is 1..=[`MAX_CODE_LEN`] of a-z, 0-9 and _, starting with a letter.
pub fn is_code(code: &str) -> bool {
    !code.is_empty()
        && code.len() <= MAX_CODE_LEN
        && code.as_bytes()[0].is_ascii_lowercase()
        && code
            .bytes()
            .all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit() || byte == b'_')
}

/// A name of a dictionary or registry entry: non-empty, one line, no control characters.
pub fn is_name(name: &str) -> bool {
    !name.trim().is_empty() && name.chars().count() <= 100 && !name.chars().any(char::is_control)
}

impl FieldDictionary {
    /// The dictionary shipped with the service.
    pub fn embedded() -> Result<FieldDictionary, DictionaryError> {
        FieldDictionary::from_toml_str(EMBEDDED)
    }

    pub fn from_toml_str(text: &str) -> Result<FieldDictionary, DictionaryError> {
        let file: File = toml::from_str(text).map_err(|error| DictionaryError {
            problems: vec![error.message().to_owned()],
        })?;
        let mut problems = Vec::new();
        let mut classes = BTreeMap::new();
        for (index, entry) in file.class.into_iter().enumerate() {
            let at = format!("class[{index}]");
            if !is_code(&entry.code) {
                problems.push(format!("{at}.code: {:?} is not a code", entry.code));
            }
            if !is_name(&entry.name_zh) || !is_name(&entry.name_en) {
                problems.push(format!(
                    "{at} ({}): names must be one non-empty line",
                    entry.code
                ));
            }
            if classes.contains_key(&entry.code) {
                problems.push(format!("{at}.code: {} is listed twice", entry.code));
            }
            classes.insert(
                entry.code.clone(),
                DataClass {
                    code: entry.code,
                    name_zh: entry.name_zh,
                    name_en: entry.name_en,
                },
            );
        }
        let mut items = BTreeMap::new();
        for (index, entry) in file.item.into_iter().enumerate() {
            let at = format!("item[{index}]");
            if !is_code(&entry.code) {
                problems.push(format!("{at}.code: {:?} is not a code", entry.code));
            }
            if !classes.contains_key(&entry.class) {
                problems.push(format!(
                    "{at}.class ({}): no class {:?}",
                    entry.code, entry.class
                ));
            }
            if !is_name(&entry.name_zh) || !is_name(&entry.name_en) {
                problems.push(format!(
                    "{at} ({}): names must be one non-empty line",
                    entry.code
                ));
            }
            if items.contains_key(&entry.code) {
                problems.push(format!("{at}.code: {} is listed twice", entry.code));
            }
            let value_type = ValueType::parse(&entry.value_type).unwrap_or_else(|| {
                problems.push(format!(
                    "{at}.value_type ({}): {:?} is not one of {}",
                    entry.code,
                    entry.value_type,
                    ValueType::CODES.join(", ")
                ));
                ValueType::Flag
            });
            items.insert(
                entry.code.clone(),
                DataItem {
                    code: entry.code,
                    class: entry.class,
                    name_zh: entry.name_zh,
                    name_en: entry.name_en,
                    value_type,
                    sensitive: entry.sensitive,
                },
            );
        }
        if items.is_empty() {
            problems.push("item: the dictionary has no items".into());
        }
        if problems.is_empty() {
            Ok(FieldDictionary { classes, items })
        } else {
            Err(DictionaryError { problems })
        }
    }

    pub fn item(&self, code: &str) -> Option<&DataItem> {
        self.items.get(code)
    }

    pub fn class(&self, code: &str) -> Option<&DataClass> {
        self.classes.get(code)
    }

    pub fn items(&self) -> impl Iterator<Item = &DataItem> {
        self.items.values()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_dictionary_loads_with_every_class_used_and_sensitive_items_flagged() {
        let dictionary = FieldDictionary::embedded().expect("the shipped dictionary");
        for class in [
            "identity",
            "income",
            "property",
            "expenditure",
            "assistance",
        ] {
            assert!(dictionary.class(class).is_some(), "{class}");
            assert!(
                dictionary.items().any(|item| item.class == class),
                "class {class} has no item"
            );
        }
        assert!(
            dictionary
                .item("bank_deposits")
                .expect("bank deposits")
                .sensitive
        );
        assert!(
            !dictionary
                .item("assistance_records")
                .expect("records")
                .sensitive
        );
        assert_eq!(
            dictionary.item("vehicles").expect("vehicles").value_type,
            ValueType::Count
        );
        assert_eq!(
            dictionary.item("wages").expect("wages").value_type,
            ValueType::Amount
        );
    }

    #[test]
    fn a_bad_dictionary_is_refused_naming_every_bad_entry() {
        let text = r#"
            [[class]]
            code = "income"
            name_zh = "收入"
            name_en = "Income"
            [[item]]
            code = "wages"
            class = "income"
            name_zh = "工资"
            name_en = "Wages"
            value_type = "amount"
            sensitive = true
            [[item]]
            code = "Cars"
            class = "property"
            name_zh = "车"
            name_en = "Cars"
            value_type = "count"
            sensitive = true
            [[item]]
            code = "wages"
            class = "income"
            name_zh = "工资"
            name_en = ""
            value_type = "money"
            sensitive = false
        "#;
        let error = FieldDictionary::from_toml_str(text).expect_err("bad entries");
        let problems = error.problems.join("\n");
        assert!(problems.contains("item[1].code"), "{problems}");
        assert!(problems.contains("item[1].class"), "{problems}");
        assert!(problems.contains("item[2] (wages): names"), "{problems}");
        assert!(
            problems.contains("item[2].code: wages is listed twice"),
            "{problems}"
        );
        assert!(
            problems.contains("item[2].value_type (wages): \"money\""),
            "{problems}"
        );
    }

    #[test]
    fn an_unknown_key_is_refused() {
        let text = "[[class]]\ncode = \"a\"\nname_zh = \"甲\"\nname_en = \"A\"\ncolour = \"red\"\n";
        assert!(FieldDictionary::from_toml_str(text).is_err());
    }
}
