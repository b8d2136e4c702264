//! Table-driven cases, OpenFisca-style: every row of `tests/cases/*.toml` is a household, a
//! program, a date and the hand-computed expected decision, evaluated against the example
//! district's parameter files in `policy/example-district/`.
//!
//! A case may name a `variant`: a small, named change to the example files (e.g. the dibao tier
//! method), so one table can cover a district's choices.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::path::PathBuf;

use serde::Deserialize;
use sunshine_domain::Money;
use sunshine_policy::dates::iso_date;
use sunshine_policy::{
    BenefitPeriod, EntitledMedicalRoute, HardshipLevel, HouseholdFacts, Policy, PolicySource,
    ProgramCode, example_district_sources,
};
use time::Date;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CaseFile {
    #[serde(rename = "case")]
    cases: Vec<Case>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    name: String,
    program: String,
    #[serde(with = "iso_date")]
    as_of: Date,
    #[serde(default)]
    variant: Option<String>,
    expect: Expectation,
    household: HouseholdFacts,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Expectation {
    #[serde(default)]
    eligible: Option<bool>,
    /// Yuan text, e.g. "1320.00".
    #[serde(default)]
    amount: Option<String>,
    #[serde(default)]
    period: Option<BenefitPeriod>,
    /// The exact set of failed `condition`-role reason codes.
    #[serde(default)]
    failed: Option<Vec<String>>,
    /// Calculation codes that must appear.
    #[serde(default)]
    calculations: Option<Vec<String>>,
    /// Coefficient text, e.g. "1.30".
    #[serde(default)]
    hardship: Option<String>,
    #[serde(default)]
    hardship_level: Option<HardshipLevel>,
    #[serde(default)]
    assist_first: Option<String>,
    #[serde(default)]
    routes: Option<Vec<EntitledMedicalRoute>>,
    /// The facts are invalid: evaluation must fail.
    #[serde(default)]
    error: Option<bool>,
}

fn cases_directory() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/cases")
}

/// The example district with `variant` applied; a variant that is unknown or no longer matches
/// the files is the case's failure, not a panic, so every other row is still checked.
fn policy_for(variant: Option<&str>) -> Result<Policy, String> {
    let mut sources: Vec<PolicySource> = example_district_sources();
    match variant {
        None => {}
        Some("dibao_tier_method") => {
            let dibao = sources
                .iter_mut()
                .find(|source| source.file_name == "dibao.toml")
                .unwrap();
            let replaced = dibao
                .text
                .replace("value = \"difference\"", "value = \"tier\"");
            if replaced == dibao.text {
                return Err("variant dibao_tier_method matches nothing".to_owned());
            }
            dibao.text = replaced;
        }
        // Issue 20 item 2: a district reading clause 4 without the wife's age.
        Some("family_planning_disabled_child_no_age") => {
            let file = sources
                .iter_mut()
                .find(|source| source.file_name == "family_planning.toml")
                .unwrap();
            let replaced = file.text.replace(
                "disabled_child_wife_min_age = [\n    { from = 2023-01-01, value = 49 },",
                "disabled_child_wife_min_age = [\n    { from = 2023-01-01, value = 0 },",
            );
            if replaced == file.text {
                return Err(format!("variant {variant:?} matches nothing"));
            }
            file.text = replaced;
        }
        // Issue 20 item 1: a district that carries the pension condition, not the residence one.
        Some("longevity_centenarian_pension_not_residence") => {
            let file = sources
                .iter_mut()
                .find(|source| source.file_name == "elderly.toml")
                .unwrap();
            let replaced = file
                .text
                .replace(
                    "centenarian_residence_carries_over = [\n    { from = 2023-01-01, value = true },",
                    "centenarian_residence_carries_over = [\n    { from = 2023-01-01, value = false },",
                )
                .replace(
                    "centenarian_pension_carries_over = [\n    { from = 2023-01-01, value = false },",
                    "centenarian_pension_carries_over = [\n    { from = 2023-01-01, value = true },",
                );
            if replaced == file.text {
                return Err(format!("variant {variant:?} matches nothing"));
            }
            file.text = replaced;
        }
        // Issue 20 item 3: a district counting a single father's former wife's age.
        Some("family_planning_single_father_former_wife_age") => {
            let file = sources
                .iter_mut()
                .find(|source| source.file_name == "family_planning.toml")
                .unwrap();
            let replaced = file.text.replace(
                "single_father_age_basis = [\n    { from = 2023-01-01, value = \"own_age\" },",
                "single_father_age_basis = [\n    { from = 2023-01-01, value = \"former_wife_age\" },",
            );
            if replaced == file.text {
                return Err(format!("variant {variant:?} matches nothing"));
            }
            file.text = replaced;
        }
        // Issue 20 item 4: a district reading the seed's 农村五保 literally.
        Some("tekun_rural_only") => {
            let file = sources
                .iter_mut()
                .find(|source| source.file_name == "tekun.toml")
                .unwrap();
            let replaced = file.text.replace(
                "urban_residents_covered = [\n    { from = 2021-04-26, value = true },",
                "urban_residents_covered = [\n    { from = 2021-04-26, value = false },",
            );
            if replaced == file.text {
                return Err(format!("variant {variant:?} matches nothing"));
            }
            file.text = replaced;
        }
        Some(other) => return Err(format!("unknown variant {other}")),
    }
    Policy::from_sources(sources).map_err(|error| error.to_string())
}

fn yuan(text: &str) -> Money {
    Money::parse_yuan(text).unwrap()
}

fn check_case(policy: &Policy, case: &Case) -> Vec<String> {
    let mut mismatches = Vec::new();
    let program: ProgramCode = match case.program.parse() {
        Ok(program) => program,
        Err(error) => return vec![error.to_string()],
    };
    let result = policy.evaluate(program, &case.household, case.as_of);
    let expect = &case.expect;
    if expect.error == Some(true) {
        if result.is_ok() {
            mismatches.push("expected an error, got a decision".to_owned());
        }
        return mismatches;
    }
    let decision = match result {
        Ok(decision) => decision,
        Err(error) => return vec![format!("evaluation failed: {error}")],
    };
    if let Some(eligible) = expect.eligible
        && decision.eligible != eligible
    {
        mismatches.push(format!(
            "eligible: expected {eligible}, got {}",
            decision.eligible
        ));
    }
    if let Some(amount) = &expect.amount
        && decision.amount != yuan(amount)
    {
        mismatches.push(format!(
            "amount: expected {amount}, got {}",
            decision.amount
        ));
    }
    if let Some(period) = expect.period
        && decision.period != period
    {
        mismatches.push(format!(
            "period: expected {period:?}, got {:?}",
            decision.period
        ));
    }
    if let Some(expected_failed) = &expect.failed {
        let expected: BTreeSet<&str> = expected_failed.iter().map(String::as_str).collect();
        let actual: BTreeSet<&str> = decision
            .failed_conditions()
            .iter()
            .map(|code| code.as_str())
            .collect();
        if expected != actual {
            mismatches.push(format!(
                "failed conditions: expected {expected:?}, got {actual:?}"
            ));
        }
    }
    if let Some(calculations) = &expect.calculations {
        for code in calculations {
            let present = decision.reasons.iter().any(|reason| {
                reason.role == sunshine_policy::ReasonRole::Calculation
                    && reason.condition.as_str() == code
            });
            if !present {
                mismatches.push(format!("calculation {code} missing"));
            }
        }
    }
    if let Some(coefficient) = &expect.hardship {
        match &decision.hardship {
            Some(hardship) if hardship.to_text() == *coefficient => {}
            Some(hardship) => mismatches.push(format!(
                "hardship: expected {coefficient}, got {}",
                hardship.to_text()
            )),
            None => mismatches.push("hardship: none computed".to_owned()),
        }
    }
    if let Some(level) = expect.hardship_level
        && decision.hardship.map(|hardship| hardship.level) != Some(level)
    {
        mismatches.push(format!(
            "hardship level: expected {level:?}, got {:?}",
            decision.hardship.map(|hardship| hardship.level)
        ));
    }
    if let Some(assist_first) = &expect.assist_first
        && decision.assist_first_amount != Some(yuan(assist_first))
    {
        mismatches.push(format!(
            "assist first: expected {assist_first}, got {:?}",
            decision.assist_first_amount
        ));
    }
    if let Some(routes) = &expect.routes {
        let actual: Vec<EntitledMedicalRoute> = decision
            .medical_routes
            .iter()
            .map(|route| route.route)
            .collect();
        if *routes != actual {
            mismatches.push(format!("routes: expected {routes:?}, got {actual:?}"));
        }
    }
    // Invariants of every decision.
    if !decision.eligible && !decision.amount.is_zero() {
        mismatches.push("an ineligible decision has an amount".to_owned());
    }
    if decision.amount.is_negative() {
        mismatches.push("negative amount".to_owned());
    }
    if decision.policy_version != policy.version() {
        mismatches.push("decision carries another policy version".to_owned());
    }
    mismatches
}

#[test]
fn every_case_in_the_tables_holds() {
    let default_policy = policy_for(None).unwrap();
    let mut files: Vec<PathBuf> = std::fs::read_dir(cases_directory())
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| {
            path.extension()
                .is_some_and(|extension| extension == "toml")
        })
        .collect();
    files.sort();
    assert!(!files.is_empty());

    let mut failures = Vec::new();
    let mut case_count = 0;
    let mut programs_covered = BTreeSet::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        let case_file: CaseFile =
            toml::from_str(&text).unwrap_or_else(|error| panic!("{}: {error}", file.display()));
        for case in &case_file.cases {
            case_count += 1;
            programs_covered.insert(case.program.clone());
            let policy = match case.variant.as_deref() {
                None => default_policy.clone(),
                Some(variant) => match policy_for(Some(variant)) {
                    Ok(policy) => policy,
                    Err(problem) => {
                        failures.push(format!(
                            "{} / {:?}: {problem}",
                            file.file_name().unwrap().to_string_lossy(),
                            case.name
                        ));
                        continue;
                    }
                },
            };
            for mismatch in check_case(&policy, case) {
                failures.push(format!(
                    "{} / {:?}: {mismatch}",
                    file.file_name().unwrap().to_string_lossy(),
                    case.name
                ));
            }
        }
    }
    println!("{case_count} cases in {} files", files.len());
    for program in ProgramCode::ALL {
        if !programs_covered.contains(program.as_str()) {
            failures.push(format!("no case covers {program}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
