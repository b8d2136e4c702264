//! Effective-dated parameters: reading the parameter files, refusing bad ones, and answering
//! "what was this value as of that date".
//!
//! This module owns [`ParameterSet`], [`ParameterSeries`], [`ParameterEntry`] and
//! [`ParameterValue`]. Files are read with the TOML parser's span information so that every
//! problem names the file, the line and the parameter. Reading checks everything the schema in
//! [`crate::schema`] says; nothing is coerced or guessed (no floats, no negative amounts, no
//! unknown keys, dates strictly ascending).

use std::collections::BTreeMap;
use std::ops::Range;

use sunshine_domain::{Money, OrgTier, OrgUnitCode};
use time::Date;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

use crate::dates::{date_from_toml, format_iso_date};
use crate::error::{PolicyError, PolicyFileProblem};
use crate::schema::{
    PARAMETERS, ParameterDefinition, ParameterKind, SECTIONS, parameter_definition,
    section_definition,
};

/// A value of a parameter, already checked against its [`ParameterKind`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParameterValue {
    Money(Money),
    /// Counts, ages, days, months, grades.
    Integer(i64),
    /// Percents and coefficients, in basis points (1% = 100, 1.00 = 10 000).
    BasisPoints(i64),
    Flag(bool),
    Choice(&'static str),
    ItemList(Vec<&'static str>),
    Date(Date),
    Text(String),
    /// `(at_least, amount)`, ascending by `at_least`.
    IntegerMoneyTiers(Vec<(i64, Money)>),
    /// `(at_least, pay)` in basis points, ascending by `at_least`.
    ShareTiers(Vec<(i64, i64)>),
}

/// One dated entry of a parameter: `value` applies from `from` until the next entry's `from`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParameterEntry {
    pub from: Date,
    pub value: ParameterValue,
    /// The line of the entry in its file.
    pub line: usize,
}

/// All dated entries of one parameter, in ascending `from` order with no two on one date.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParameterSeries {
    pub definition: &'static ParameterDefinition,
    pub file: String,
    pub entries: Vec<ParameterEntry>,
}

impl ParameterSeries {
    /// The entry in force on `as_of`: the last one whose `from` is on or before it.
    pub fn entry_as_of(&self, as_of: Date) -> Option<&ParameterEntry> {
        let entries_in_force = self.entries.partition_point(|entry| entry.from <= as_of);
        entries_in_force
            .checked_sub(1)
            .and_then(|index| self.entries.get(index))
    }
}

/// Every parameter of a policy, validated; ask it for values as of a date.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ParameterSet {
    series_by_name: BTreeMap<&'static str, ParameterSeries>,
}

impl ParameterSet {
    pub fn series(&self, name: &str) -> Option<&ParameterSeries> {
        self.series_by_name.get(name)
    }

    /// Every series, by parameter name.
    pub fn iter(&self) -> impl Iterator<Item = &ParameterSeries> {
        self.series_by_name.values()
    }

    /// The value of `name` in force on `as_of`.
    pub fn value_as_of(
        &self,
        name: &'static str,
        as_of: Date,
    ) -> Result<&ParameterValue, PolicyError> {
        let series = self
            .series_by_name
            .get(name)
            .ok_or(PolicyError::ParameterKindMismatch { parameter: name })?;
        match series.entry_as_of(as_of) {
            Some(entry) => Ok(&entry.value),
            None => Err(PolicyError::NoValueAsOf {
                parameter: name,
                as_of,
                first_from: series.entries.first().map_or(as_of, |entry| entry.from),
            }),
        }
    }

    pub(crate) fn money(&self, name: &'static str, as_of: Date) -> Result<Money, PolicyError> {
        match self.value_as_of(name, as_of)? {
            ParameterValue::Money(amount) => Ok(*amount),
            _ => Err(PolicyError::ParameterKindMismatch { parameter: name }),
        }
    }

    pub(crate) fn integer(&self, name: &'static str, as_of: Date) -> Result<i64, PolicyError> {
        match self.value_as_of(name, as_of)? {
            ParameterValue::Integer(number) => Ok(*number),
            _ => Err(PolicyError::ParameterKindMismatch { parameter: name }),
        }
    }

    pub(crate) fn basis_points(&self, name: &'static str, as_of: Date) -> Result<i64, PolicyError> {
        match self.value_as_of(name, as_of)? {
            ParameterValue::BasisPoints(number) => Ok(*number),
            _ => Err(PolicyError::ParameterKindMismatch { parameter: name }),
        }
    }

    pub(crate) fn flag(&self, name: &'static str, as_of: Date) -> Result<bool, PolicyError> {
        match self.value_as_of(name, as_of)? {
            ParameterValue::Flag(flag) => Ok(*flag),
            _ => Err(PolicyError::ParameterKindMismatch { parameter: name }),
        }
    }

    pub(crate) fn choice(
        &self,
        name: &'static str,
        as_of: Date,
    ) -> Result<&'static str, PolicyError> {
        match self.value_as_of(name, as_of)? {
            ParameterValue::Choice(word) => Ok(word),
            _ => Err(PolicyError::ParameterKindMismatch { parameter: name }),
        }
    }

    pub(crate) fn item_list(
        &self,
        name: &'static str,
        as_of: Date,
    ) -> Result<&[&'static str], PolicyError> {
        match self.value_as_of(name, as_of)? {
            ParameterValue::ItemList(items) => Ok(items),
            _ => Err(PolicyError::ParameterKindMismatch { parameter: name }),
        }
    }

    pub(crate) fn date(&self, name: &'static str, as_of: Date) -> Result<Date, PolicyError> {
        match self.value_as_of(name, as_of)? {
            ParameterValue::Date(date) => Ok(*date),
            _ => Err(PolicyError::ParameterKindMismatch { parameter: name }),
        }
    }

    pub(crate) fn text(&self, name: &'static str, as_of: Date) -> Result<&str, PolicyError> {
        match self.value_as_of(name, as_of)? {
            ParameterValue::Text(text) => Ok(text),
            _ => Err(PolicyError::ParameterKindMismatch { parameter: name }),
        }
    }

    pub(crate) fn integer_money_tiers(
        &self,
        name: &'static str,
        as_of: Date,
    ) -> Result<&[(i64, Money)], PolicyError> {
        match self.value_as_of(name, as_of)? {
            ParameterValue::IntegerMoneyTiers(tiers) => Ok(tiers),
            _ => Err(PolicyError::ParameterKindMismatch { parameter: name }),
        }
    }

    pub(crate) fn share_tiers(
        &self,
        name: &'static str,
        as_of: Date,
    ) -> Result<&[(i64, i64)], PolicyError> {
        match self.value_as_of(name, as_of)? {
            ParameterValue::ShareTiers(tiers) => Ok(tiers),
            _ => Err(PolicyError::ParameterKindMismatch { parameter: name }),
        }
    }
}

/// A policy file as read: its name inside the policy directory and its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicySource {
    pub file_name: String,
    pub text: String,
}

/// The 1-based line of a byte offset.
pub(crate) fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|byte| **byte == b'\n')
        .count()
        + 1
}

struct ProblemSink<'a> {
    file_name: &'a str,
    text: &'a str,
    problems: Vec<PolicyFileProblem>,
}

impl ProblemSink<'_> {
    fn report(&mut self, span: Range<usize>, parameter: &str, problem: impl Into<String>) {
        self.problems.push(PolicyFileProblem {
            file: self.file_name.to_owned(),
            line: line_of(self.text, span.start),
            parameter: parameter.to_owned(),
            problem: problem.into(),
        });
    }
}

/// Where each section was found, for reporting missing parameters.
struct SectionSighting {
    file: String,
    line: usize,
    keys_present: Vec<String>,
}

/// Reads every parameter file (the catalogue is read elsewhere) and checks the whole set.
/// Returns the set and every problem found; the set is only usable when there are none.
pub(crate) fn read_parameter_files(
    sources: &[PolicySource],
) -> (ParameterSet, Vec<PolicyFileProblem>) {
    let mut set = ParameterSet::default();
    let mut problems = Vec::new();
    let mut sightings: BTreeMap<&'static str, SectionSighting> = BTreeMap::new();

    for source in sources {
        let mut sink = ProblemSink {
            file_name: &source.file_name,
            text: &source.text,
            problems: Vec::new(),
        };
        if !SECTIONS
            .iter()
            .any(|section| section.file == source.file_name)
        {
            sink.report(
                0..0,
                "",
                format!(
                    "unknown parameter file; expected one of: {}",
                    known_file_names().join(", ")
                ),
            );
            problems.append(&mut sink.problems);
            continue;
        }
        match DeTable::parse(&source.text) {
            Err(error) => {
                let span = error.span().unwrap_or(0..0);
                sink.report(span, "", format!("not valid TOML: {}", error.message()));
            }
            Ok(document) => {
                read_document(document.get_ref(), &mut sink, &mut set, &mut sightings);
            }
        }
        problems.append(&mut sink.problems);
    }

    report_missing(&set, &sightings, &mut problems);
    (set, problems)
}

fn known_file_names() -> Vec<&'static str> {
    let mut names: Vec<&'static str> = SECTIONS.iter().map(|section| section.file).collect();
    names.dedup();
    names
}

fn read_document(
    document: &DeTable<'_>,
    sink: &mut ProblemSink<'_>,
    set: &mut ParameterSet,
    sightings: &mut BTreeMap<&'static str, SectionSighting>,
) {
    for (section_key, section_value) in document.iter() {
        let section_name: &str = section_key.get_ref();
        let Some(section) = section_definition(section_name) else {
            sink.report(
                section_key.span(),
                section_name,
                "unknown section".to_owned(),
            );
            continue;
        };
        if section.file != sink.file_name {
            sink.report(
                section_key.span(),
                section_name,
                format!("section [{section_name}] belongs in {}", section.file),
            );
            continue;
        }
        let Some(section_table) = section_value.get_ref().as_table() else {
            sink.report(
                section_key.span(),
                section_name,
                format!("[{section_name}] must be a table of parameters"),
            );
            continue;
        };
        let mut keys_present = Vec::new();
        for (parameter_key, parameter_value) in section_table.iter() {
            let full_name = format!("{section_name}.{}", parameter_key.get_ref());
            keys_present.push(parameter_key.get_ref().to_string());
            let Some(definition) = parameter_definition(&full_name) else {
                sink.report(parameter_key.span(), &full_name, "unknown parameter");
                continue;
            };
            if let Some(series) = read_series(definition, parameter_key, parameter_value, sink) {
                set.series_by_name.insert(definition.name, series);
            }
        }
        sightings.insert(
            section.name,
            SectionSighting {
                file: sink.file_name.to_owned(),
                line: line_of(sink.text, section_key.span().start),
                keys_present,
            },
        );
    }
}

fn report_missing(
    set: &ParameterSet,
    sightings: &BTreeMap<&'static str, SectionSighting>,
    problems: &mut Vec<PolicyFileProblem>,
) {
    for section in SECTIONS {
        let Some(sighting) = sightings.get(section.name) else {
            problems.push(PolicyFileProblem {
                file: section.file.to_owned(),
                line: 1,
                parameter: section.name.to_owned(),
                problem: format!("section [{}] is missing", section.name),
            });
            continue;
        };
        for definition in PARAMETERS
            .iter()
            .filter(|definition| definition.section() == section.name)
        {
            let present = sighting
                .keys_present
                .iter()
                .any(|key| key == definition.key());
            // A present-but-broken parameter was already reported where it is.
            if !present && set.series(definition.name).is_none() {
                problems.push(PolicyFileProblem {
                    file: sighting.file.clone(),
                    line: sighting.line,
                    parameter: definition.name.to_owned(),
                    problem: format!(
                        "missing value: [{}] has no `{}` ({})",
                        section.name,
                        definition.key(),
                        definition.kind.expected()
                    ),
                });
            }
        }
    }
}

fn read_series(
    definition: &'static ParameterDefinition,
    key: &Spanned<std::borrow::Cow<'_, str>>,
    value: &Spanned<DeValue<'_>>,
    sink: &mut ProblemSink<'_>,
) -> Option<ParameterSeries> {
    let name = definition.name;
    let Some(entries_array) = value.get_ref().as_array() else {
        sink.report(
            value.span(),
            name,
            "must be a list of entries { from = DATE, value = … }",
        );
        return None;
    };
    if entries_array.is_empty() {
        sink.report(
            key.span(),
            name,
            "missing value: the list of dated entries is empty",
        );
        return None;
    }
    let problems_before = sink.problems.len();
    let mut entries: Vec<ParameterEntry> = Vec::with_capacity(entries_array.len());
    for entry_value in entries_array.iter() {
        let Some(entry_table) = entry_value.get_ref().as_table() else {
            sink.report(
                entry_value.span(),
                name,
                "each entry must be a table { from = DATE, value = … }",
            );
            continue;
        };
        let mut from: Option<Date> = None;
        let mut parsed_value: Option<ParameterValue> = None;
        for (entry_key, entry_field) in entry_table.iter() {
            match entry_key.get_ref().as_ref() {
                "from" => match entry_field.get_ref().as_datetime().and_then(date_from_toml) {
                    Some(date) => from = Some(date),
                    None => sink.report(
                        entry_field.span(),
                        name,
                        "`from` must be a date such as 2026-01-01",
                    ),
                },
                "value" => {
                    parsed_value = read_value(definition, entry_field, sink);
                }
                other => sink.report(
                    entry_key.span(),
                    name,
                    format!(
                        "unknown key `{other}` in an entry; only `from` and `value` are allowed"
                    ),
                ),
            }
        }
        let line = line_of(sink.text, entry_value.span().start);
        if from.is_none() && !entry_table.iter().any(|(key, _)| key.get_ref() == "from") {
            sink.report(entry_value.span(), name, "entry has no `from` date");
        }
        if !entry_table.iter().any(|(key, _)| key.get_ref() == "value") {
            sink.report(
                entry_value.span(),
                name,
                format!(
                    "missing value: entry has no `value` ({})",
                    definition.kind.expected()
                ),
            );
        }
        if let (Some(from), Some(value)) = (from, parsed_value) {
            if let Some(previous) = entries.last() {
                if from == previous.from {
                    sink.report(
                        entry_value.span(),
                        name,
                        format!(
                            "overlapping dates: two entries from {} (lines {} and {line})",
                            format_iso_date(from),
                            previous.line
                        ),
                    );
                } else if from < previous.from {
                    sink.report(
                        entry_value.span(),
                        name,
                        format!(
                            "dates out of order: an entry from {} follows one from {} (line {}); list entries oldest first",
                            format_iso_date(from),
                            format_iso_date(previous.from),
                            previous.line
                        ),
                    );
                }
            }
            entries.push(ParameterEntry { from, value, line });
        }
    }
    if sink.problems.len() > problems_before {
        return None;
    }
    Some(ParameterSeries {
        definition,
        file: sink.file_name.to_owned(),
        entries,
    })
}

fn read_value(
    definition: &'static ParameterDefinition,
    field: &Spanned<DeValue<'_>>,
    sink: &mut ProblemSink<'_>,
) -> Option<ParameterValue> {
    let name = definition.name;
    let span = field.span();
    let value = field.get_ref();
    let wrong_kind = |sink: &mut ProblemSink<'_>| {
        let hint = if value.is_float() {
            " (floating-point numbers are not accepted; write the number as text)"
        } else {
            ""
        };
        sink.report(
            span.clone(),
            name,
            format!(
                "expected {}, found {}{hint}",
                definition.kind.expected(),
                value.type_str()
            ),
        );
    };
    match definition.kind {
        ParameterKind::Money => match value.as_str() {
            Some(text) => read_money(text, name, span, sink).map(ParameterValue::Money),
            None => {
                wrong_kind(sink);
                None
            }
        },
        ParameterKind::Count { max } => match value.as_integer() {
            Some(integer) => match i64::from_str_radix(integer.as_str(), integer.radix()) {
                Ok(number) if number < 0 => {
                    sink.report(
                        span,
                        name,
                        format!("negative value {number} is not allowed"),
                    );
                    None
                }
                Ok(number) if number > max => {
                    sink.report(
                        span,
                        name,
                        format!("{number} is above the largest allowed value {max}"),
                    );
                    None
                }
                Ok(number) => Some(ParameterValue::Integer(number)),
                Err(_) => {
                    sink.report(span, name, "number out of range");
                    None
                }
            },
            None => {
                wrong_kind(sink);
                None
            }
        },
        ParameterKind::Percent { max_basis_points } => match value.as_str() {
            Some(text) => {
                let basis_points = read_percent(text, name, span.clone(), sink)?;
                if basis_points > max_basis_points {
                    sink.report(
                        span,
                        name,
                        format!(
                            "{text} is above the largest allowed {}%",
                            max_basis_points / 100
                        ),
                    );
                    return None;
                }
                Some(ParameterValue::BasisPoints(basis_points))
            }
            None => {
                wrong_kind(sink);
                None
            }
        },
        ParameterKind::Coefficient => match value.as_str() {
            Some(text) => match parse_hundredths(text) {
                Some(hundredths) => Some(ParameterValue::BasisPoints(hundredths * 100)),
                None => {
                    report_bad_number(text, "a coefficient such as \"1.30\"", name, span, sink);
                    None
                }
            },
            None => {
                wrong_kind(sink);
                None
            }
        },
        ParameterKind::Flag => match value.as_bool() {
            Some(flag) => Some(ParameterValue::Flag(flag)),
            None => {
                wrong_kind(sink);
                None
            }
        },
        ParameterKind::Choice(allowed) => match value.as_str() {
            Some(text) => match allowed.iter().find(|word| **word == text) {
                Some(word) => Some(ParameterValue::Choice(word)),
                None => {
                    sink.report(
                        span,
                        name,
                        format!("{text:?} is not one of: {}", allowed.join(", ")),
                    );
                    None
                }
            },
            None => {
                wrong_kind(sink);
                None
            }
        },
        ParameterKind::ItemList(allowed) => {
            let Some(items) = value.as_array() else {
                wrong_kind(sink);
                return None;
            };
            let mut words: Vec<&'static str> = Vec::with_capacity(items.len());
            let mut all_good = true;
            for item in items.iter() {
                match item
                    .get_ref()
                    .as_str()
                    .and_then(|text| allowed.iter().find(|word| **word == text))
                {
                    Some(word) if words.contains(word) => {
                        sink.report(item.span(), name, format!("{word:?} is listed twice"));
                        all_good = false;
                    }
                    Some(word) => words.push(word),
                    None => {
                        sink.report(
                            item.span(),
                            name,
                            format!("each item must be one of: {}", allowed.join(", ")),
                        );
                        all_good = false;
                    }
                }
            }
            all_good.then_some(ParameterValue::ItemList(words))
        }
        ParameterKind::Date => match value.as_datetime().and_then(date_from_toml) {
            Some(date) => Some(ParameterValue::Date(date)),
            None => {
                wrong_kind(sink);
                None
            }
        },
        ParameterKind::DivisionCode => match value.as_str() {
            Some(text) => match OrgUnitCode::parse(text) {
                Ok(code) if code.tier() == OrgTier::District => {
                    Some(ParameterValue::Text(text.to_owned()))
                }
                Ok(_) => {
                    sink.report(
                        span,
                        name,
                        "division code must be of a district (ends in 000000)",
                    );
                    None
                }
                Err(error) => {
                    sink.report(span, name, error.to_string());
                    None
                }
            },
            None => {
                wrong_kind(sink);
                None
            }
        },
        ParameterKind::Text => match value.as_str() {
            Some(text) => Some(ParameterValue::Text(text.to_owned())),
            None => {
                wrong_kind(sink);
                None
            }
        },
        ParameterKind::IntegerMoneyTiers => read_integer_money_tiers(definition, field, sink),
        ParameterKind::ShareTiers => read_share_tiers(definition, field, sink),
    }
}

fn read_money(
    text: &str,
    name: &str,
    span: Range<usize>,
    sink: &mut ProblemSink<'_>,
) -> Option<Money> {
    match Money::parse_yuan(text) {
        Ok(amount) if amount.is_negative() => {
            sink.report(span, name, format!("negative amount {text} is not allowed"));
            None
        }
        Ok(amount) => Some(amount),
        Err(error) => {
            sink.report(
                span,
                name,
                format!("{text:?} is not a yuan amount: {error}"),
            );
            None
        }
    }
}

fn read_percent(
    text: &str,
    name: &str,
    span: Range<usize>,
    sink: &mut ProblemSink<'_>,
) -> Option<i64> {
    let Some(number_text) = text.strip_suffix('%') else {
        report_bad_number(text, "a percent such as \"70%\"", name, span, sink);
        return None;
    };
    // Hundredths of a percent are basis points.
    match parse_hundredths(number_text) {
        Some(basis_points) => Some(basis_points),
        None => {
            report_bad_number(text, "a percent such as \"70%\"", name, span, sink);
            None
        }
    }
}

fn report_bad_number(
    text: &str,
    expected: &str,
    name: &str,
    span: Range<usize>,
    sink: &mut ProblemSink<'_>,
) {
    let problem = if text.starts_with('-') {
        format!("negative value {text} is not allowed")
    } else {
        format!("{text:?} is not {expected} (digits, at most two decimals)")
    };
    sink.report(span, name, problem);
}

/// Reads `"12"`, `"12.5"`, `"12.34"` as hundredths (1200, 1250, 1234). No sign, no exponent.
pub(crate) fn parse_hundredths(text: &str) -> Option<i64> {
    let (whole_text, fraction_text) = match text.split_once('.') {
        Some((whole, fraction)) => (whole, fraction),
        None => (text, ""),
    };
    if whole_text.is_empty()
        || whole_text.len() > 12
        || !whole_text.bytes().all(|byte| byte.is_ascii_digit())
        || fraction_text.len() > 2
        || !fraction_text.bytes().all(|byte| byte.is_ascii_digit())
        || (text.contains('.') && fraction_text.is_empty())
    {
        return None;
    }
    let whole: i64 = whole_text.parse().ok()?;
    let mut fraction: i64 = if fraction_text.is_empty() {
        0
    } else {
        fraction_text.parse().ok()?
    };
    if fraction_text.len() == 1 {
        fraction *= 10;
    }
    whole.checked_mul(100)?.checked_add(fraction)
}

/// One tier as found: its bound, its payload and the row's span.
type TierRow<'a, 'i> = (
    &'a Spanned<DeValue<'i>>,
    &'a Spanned<DeValue<'i>>,
    Range<usize>,
);

fn tier_rows<'a, 'i>(
    definition: &'static ParameterDefinition,
    field: &'a Spanned<DeValue<'i>>,
    sink: &mut ProblemSink<'_>,
    expected_keys: [&str; 2],
) -> Option<Vec<TierRow<'a, 'i>>> {
    let name = definition.name;
    let Some(rows) = field.get_ref().as_array() else {
        sink.report(
            field.span(),
            name,
            format!("expected {}", definition.kind.expected()),
        );
        return None;
    };
    if rows.is_empty() {
        sink.report(
            field.span(),
            name,
            "missing value: the list of tiers is empty",
        );
        return None;
    }
    let mut found = Vec::with_capacity(rows.len());
    let mut all_good = true;
    for row in rows.iter() {
        let Some(table) = row.get_ref().as_table() else {
            sink.report(
                row.span(),
                name,
                format!("expected {}", definition.kind.expected()),
            );
            all_good = false;
            continue;
        };
        for (key, _) in table.iter() {
            if !expected_keys.contains(&key.get_ref().as_ref()) {
                sink.report(
                    key.span(),
                    name,
                    format!(
                        "unknown key `{}` in a tier; only `{}` and `{}` are allowed",
                        key.get_ref(),
                        expected_keys[0],
                        expected_keys[1]
                    ),
                );
                all_good = false;
            }
        }
        let bound = table
            .iter()
            .find(|(key, _)| key.get_ref() == expected_keys[0]);
        let payload = table
            .iter()
            .find(|(key, _)| key.get_ref() == expected_keys[1]);
        match (bound, payload) {
            (Some((_, bound)), Some((_, payload))) => found.push((bound, payload, row.span())),
            _ => {
                sink.report(
                    row.span(),
                    name,
                    format!(
                        "missing value: each tier needs `{}` and `{}`",
                        expected_keys[0], expected_keys[1]
                    ),
                );
                all_good = false;
            }
        }
    }
    all_good.then_some(found)
}

fn read_integer_money_tiers(
    definition: &'static ParameterDefinition,
    field: &Spanned<DeValue<'_>>,
    sink: &mut ProblemSink<'_>,
) -> Option<ParameterValue> {
    let name = definition.name;
    let rows = tier_rows(definition, field, sink, ["at_least", "yuan"])?;
    let mut tiers: Vec<(i64, Money)> = Vec::with_capacity(rows.len());
    let mut all_good = true;
    for (bound, payload, row_span) in rows {
        let bound_value = bound
            .get_ref()
            .as_integer()
            .and_then(|integer| i64::from_str_radix(integer.as_str(), integer.radix()).ok());
        let Some(bound_value) = bound_value.filter(|number| *number >= 0) else {
            sink.report(
                bound.span(),
                name,
                "`at_least` must be a whole number, not negative",
            );
            all_good = false;
            continue;
        };
        let Some(text) = payload.get_ref().as_str() else {
            sink.report(
                payload.span(),
                name,
                "`yuan` must be yuan as text, e.g. \"100.00\"",
            );
            all_good = false;
            continue;
        };
        let Some(amount) = read_money(text, name, payload.span(), sink) else {
            all_good = false;
            continue;
        };
        if let Some((previous_bound, _)) = tiers.last()
            && bound_value <= *previous_bound
        {
            sink.report(
                row_span,
                name,
                format!(
                    "tiers must ascend: `at_least = {bound_value}` follows `at_least = {previous_bound}`"
                ),
            );
            all_good = false;
        }
        tiers.push((bound_value, amount));
    }
    all_good.then_some(ParameterValue::IntegerMoneyTiers(tiers))
}

fn read_share_tiers(
    definition: &'static ParameterDefinition,
    field: &Spanned<DeValue<'_>>,
    sink: &mut ProblemSink<'_>,
) -> Option<ParameterValue> {
    let name = definition.name;
    let rows = tier_rows(definition, field, sink, ["at_least", "pay"])?;
    let mut tiers: Vec<(i64, i64)> = Vec::with_capacity(rows.len());
    let mut all_good = true;
    for (bound, payload, row_span) in rows {
        let bound_value = bound
            .get_ref()
            .as_str()
            .and_then(|text| read_percent(text, name, bound.span(), sink));
        let payload_value = payload
            .get_ref()
            .as_str()
            .and_then(|text| read_percent(text, name, payload.span(), sink));
        let (Some(bound_value), Some(payload_value)) = (bound_value, payload_value) else {
            if bound.get_ref().as_str().is_none() || payload.get_ref().as_str().is_none() {
                sink.report(
                    row_span,
                    name,
                    "`at_least` and `pay` must be percents as text",
                );
            }
            all_good = false;
            continue;
        };
        match tiers.last() {
            None if bound_value != 0 => {
                sink.report(
                    row_span,
                    name,
                    "the first tier must start `at_least = \"0%\"`",
                );
                all_good = false;
            }
            Some((previous_bound, previous_pay)) => {
                if bound_value <= *previous_bound {
                    sink.report(row_span, name, "tiers must ascend by `at_least`");
                    all_good = false;
                } else if payload_value < *previous_pay {
                    sink.report(
                        row_span,
                        name,
                        "`pay` must not fall as `at_least` rises (more income must never raise the amount)",
                    );
                    all_good = false;
                }
            }
            None => {}
        }
        tiers.push((bound_value, payload_value));
    }
    all_good.then_some(ParameterValue::ShareTiers(tiers))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hundredths_parse_strictly() {
        assert_eq!(parse_hundredths("70"), Some(7000));
        assert_eq!(parse_hundredths("12.5"), Some(1250));
        assert_eq!(parse_hundredths("1.30"), Some(130));
        assert_eq!(parse_hundredths("0"), Some(0));
        for bad in ["", "-1", "1.", ".5", "1.234", "1e2", " 1", "1,5"] {
            assert_eq!(parse_hundredths(bad), None, "{bad}");
        }
    }

    #[test]
    fn line_numbers_are_one_based() {
        let text = "a\nb\nc";
        assert_eq!(line_of(text, 0), 1);
        assert_eq!(line_of(text, 2), 2);
        assert_eq!(line_of(text, 4), 3);
        assert_eq!(line_of(text, 100), 3);
    }
}
