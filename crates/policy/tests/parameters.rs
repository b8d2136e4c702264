//! Policy files: the example district loads from disk and from the compiled-in copy with the
//! same version; bad files are refused with the file, the line and the parameter; and a
//! parameter change dated in the future leaves today's decisions unchanged.

#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

use sunshine_domain::Money;
use sunshine_policy::{
    HouseholdFacts, Policy, PolicyFileProblem, PolicyLoadError, PolicySource, ProgramCode,
    example_district_sources,
};
use time::macros::date;

fn example_directory() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../policy/example-district")
}

fn example_household(name: &str) -> HouseholdFacts {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../policy/examples")
        .join(name);
    toml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// The example sources with `file` changed by `change`; the change must change something.
fn sources_with(file: &str, change: impl Fn(&str) -> String) -> Vec<PolicySource> {
    let mut sources = example_district_sources();
    let source = sources
        .iter_mut()
        .find(|source| source.file_name == file)
        .unwrap();
    let changed = change(&source.text);
    assert_ne!(changed, source.text, "the change to {file} changed nothing");
    source.text = changed;
    sources
}

fn refused(sources: &[PolicySource]) -> Vec<PolicyFileProblem> {
    match Policy::from_sources(sources.to_vec()) {
        Ok(_) => panic!("bad policy files were accepted"),
        Err(PolicyLoadError::Invalid { problems }) => problems,
        Err(other) => panic!("unexpected error {other}"),
    }
}

/// The 1-based line of the first occurrence of `needle` in `text`.
fn line_of(text: &str, needle: &str) -> usize {
    let offset = text.find(needle).unwrap();
    text[..offset].matches('\n').count() + 1
}

fn assert_problem(
    problems: &[PolicyFileProblem],
    file: &str,
    line: usize,
    parameter: &str,
    words: &str,
) {
    let found = problems.iter().any(|problem| {
        problem.file == file
            && problem.line == line
            && problem.parameter == parameter
            && problem.problem.contains(words)
    });
    assert!(
        found,
        "expected {file}:{line} `{parameter}` \"{words}\", got:\n{}",
        problems
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[test]
fn example_directory_loads_with_the_version_of_the_compiled_in_copy() {
    let from_disk = Policy::load_dir(example_directory()).unwrap();
    let compiled_in = Policy::example_district().unwrap();
    assert_eq!(from_disk.version(), compiled_in.version());
    assert_eq!(from_disk.version().to_hex().len(), 64);
    assert_eq!(
        from_disk.catalogue().programs().len(),
        ProgramCode::ALL.len()
    );
}

#[test]
fn any_change_to_any_file_changes_the_version() {
    let original = Policy::example_district().unwrap().version();
    let commented = Policy::from_sources(sources_with("other.toml", |text| {
        format!("{text}\n# note\n")
    }))
    .unwrap()
    .version();
    assert_ne!(original, commented);
    assert_eq!(original, Policy::example_district().unwrap().version());
}

#[test]
fn missing_value_in_an_entry_is_refused_with_file_line_and_parameter() {
    let needle = "{ from = 2025-07-01, value = \"1010.00\" },";
    let sources = sources_with("dibao.toml", |text| {
        text.replacen(needle, "{ from = 2025-07-01 },", 1)
    });
    let text = &sources
        .iter()
        .find(|s| s.file_name == "dibao.toml")
        .unwrap()
        .text;
    let line = line_of(text, "{ from = 2025-07-01 },");
    let problems = refused(&sources);
    assert_problem(
        &problems,
        "dibao.toml",
        line,
        "dibao.urban_standard_monthly",
        "missing value",
    );
    // The rendered error says it all in one line.
    let message = Policy::from_sources(sources).unwrap_err().to_string();
    assert!(
        message.contains(&format!(
            "dibao.toml:{line}: parameter `dibao.urban_standard_monthly`: missing value"
        )),
        "{message}"
    );
}

#[test]
fn missing_parameter_is_refused_at_its_section() {
    let sources = sources_with("dibao.toml", |text| {
        text.replacen(
            "max_extra_housing_units = [\n    { from = 2024-01-01, value = 0 },\n]\n",
            "",
            1,
        )
    });
    let text = &sources
        .iter()
        .find(|s| s.file_name == "dibao.toml")
        .unwrap()
        .text;
    let line = line_of(text, "[dibao]");
    let problems = refused(&sources);
    assert_problem(
        &problems,
        "dibao.toml",
        line,
        "dibao.max_extra_housing_units",
        "missing value",
    );
}

#[test]
fn empty_list_of_entries_is_a_missing_value() {
    let sources = sources_with("temporary.toml", |text| {
        text.replacen(
            "assist_first_cap = [\n    { from = 2024-01-01, value = \"2000.00\" },\n]",
            "assist_first_cap = []",
            1,
        )
    });
    let text = &sources
        .iter()
        .find(|s| s.file_name == "temporary.toml")
        .unwrap()
        .text;
    let line = line_of(text, "assist_first_cap = []");
    assert_problem(
        &refused(&sources),
        "temporary.toml",
        line,
        "temporary.assist_first_cap",
        "missing value",
    );
}

#[test]
fn overlapping_dates_are_refused() {
    let sources = sources_with("dibao.toml", |text| {
        text.replacen(
            "{ from = 2026-07-01, value = \"840.00\" },",
            "{ from = 2026-07-01, value = \"840.00\" },\n    { from = 2026-07-01, value = \"850.00\" },",
            1,
        )
    });
    let text = &sources
        .iter()
        .find(|s| s.file_name == "dibao.toml")
        .unwrap()
        .text;
    let line = line_of(text, "{ from = 2026-07-01, value = \"850.00\" },");
    assert_problem(
        &refused(&sources),
        "dibao.toml",
        line,
        "dibao.rural_standard_monthly",
        "overlapping dates",
    );
}

#[test]
fn unordered_dates_are_refused() {
    let sources = sources_with("tekun.toml", |text| {
        text.replacen(
            "    { from = 2024-01-01, value = \"1280.00\" },\n    { from = 2026-07-01, value = \"1370.00\" },",
            "    { from = 2026-07-01, value = \"1370.00\" },\n    { from = 2024-01-01, value = \"1280.00\" },",
            1,
        )
    });
    let text = &sources
        .iter()
        .find(|s| s.file_name == "tekun.toml")
        .unwrap()
        .text;
    let line = line_of(text, "{ from = 2024-01-01, value = \"1280.00\" },");
    assert_problem(
        &refused(&sources),
        "tekun.toml",
        line,
        "tekun.basic_living_standard_monthly",
        "out of order",
    );
}

#[test]
fn negative_amounts_are_refused() {
    let sources = sources_with("medical.toml", |text| {
        text.replacen("value = \"1000.00\" },", "value = \"-1000.00\" },", 1)
    });
    let text = &sources
        .iter()
        .find(|s| s.file_name == "medical.toml")
        .unwrap()
        .text;
    let line = line_of(text, "\"-1000.00\"");
    assert_problem(
        &refused(&sources),
        "medical.toml",
        line,
        "medical_serious_illness.deductible_low_income",
        "negative amount",
    );
}

#[test]
fn negative_counts_and_percents_are_refused() {
    let sources = sources_with("hardship.toml", |text| {
        text.replacen("value = \"30%\"", "value = \"-30%\"", 1)
            .replacen("value = 2 }", "value = -2 }", 1)
    });
    let text = &sources
        .iter()
        .find(|s| s.file_name == "hardship.toml")
        .unwrap()
        .text;
    let problems = refused(&sources);
    assert_problem(
        &problems,
        "hardship.toml",
        line_of(text, "\"-30%\""),
        "hardship.weight_income_gap",
        "negative",
    );
    assert_problem(
        &problems,
        "hardship.toml",
        line_of(text, "value = -2 }"),
        "hardship.full_at_members",
        "negative",
    );
}

#[test]
fn floats_are_refused_with_a_hint() {
    let sources = sources_with("dibao.toml", |text| {
        text.replacen("value = \"980.00\"", "value = 980.00", 1)
    });
    let text = &sources
        .iter()
        .find(|s| s.file_name == "dibao.toml")
        .unwrap()
        .text;
    let line = line_of(text, "value = 980.00");
    assert_problem(
        &refused(&sources),
        "dibao.toml",
        line,
        "dibao.urban_standard_monthly",
        "floating-point",
    );
}

#[test]
fn unknown_keys_are_refused() {
    let sources = sources_with("dibao.toml", |text| {
        text.replacen(
            "[dibao]\n",
            "[dibao]\nurban_standard_monthy = [{ from = 2024-01-01, value = \"1.00\" }]\n",
            1,
        )
        .replacen(
            "{ from = 2024-01-01, value = 24 }",
            "{ from = 2024-01-01, value = 24, until = 2030-01-01 }",
            1,
        )
    });
    let text = &sources
        .iter()
        .find(|s| s.file_name == "dibao.toml")
        .unwrap()
        .text;
    let problems = refused(&sources);
    assert_problem(
        &problems,
        "dibao.toml",
        line_of(text, "urban_standard_monthy"),
        "dibao.urban_standard_monthy",
        "unknown parameter",
    );
    assert_problem(
        &problems,
        "dibao.toml",
        line_of(text, "until = 2030-01-01"),
        "dibao.asset_limit_months_of_standard",
        "unknown key `until`",
    );
}

#[test]
fn unknown_sections_and_misplaced_sections_are_refused() {
    let sources = sources_with("other.toml", |text| {
        format!("{text}\n[dibaoo]\nx = [{{ from = 2024-01-01, value = 1 }}]\n")
    });
    let text = &sources
        .iter()
        .find(|s| s.file_name == "other.toml")
        .unwrap()
        .text;
    assert_problem(
        &refused(&sources),
        "other.toml",
        line_of(text, "[dibaoo]"),
        "dibaoo",
        "unknown section",
    );
}

#[test]
fn wrong_choices_tiers_and_codes_are_refused() {
    let dibao = sources_with("dibao.toml", |text| {
        text.replacen("value = \"difference\"", "value = \"differences\"", 1)
            .replacen(
                "{ at_least = \"80%\", pay = \"100%\" }",
                "{ at_least = \"80%\", pay = \"50%\" }",
                1,
            )
    });
    let text = &dibao
        .iter()
        .find(|s| s.file_name == "dibao.toml")
        .unwrap()
        .text;
    let problems = refused(&dibao);
    assert_problem(
        &problems,
        "dibao.toml",
        line_of(text, "\"differences\""),
        "dibao.amount_method",
        "is not one of",
    );
    assert_problem(
        &problems,
        "dibao.toml",
        line_of(text, "pay = \"50%\""),
        "dibao.tiers",
        "must not fall",
    );

    let elderly = sources_with("elderly.toml", |text| {
        text.replacen(
            "{ at_least = 70, yuan = \"80.00\" },",
            "{ at_least = 59, yuan = \"80.00\" },",
            1,
        )
    });
    let text = &elderly
        .iter()
        .find(|s| s.file_name == "elderly.toml")
        .unwrap()
        .text;
    assert_problem(
        &refused(&elderly),
        "elderly.toml",
        line_of(text, "at_least = 59"),
        "old_age_subsidy.monthly_amount_by_age",
        "ascend",
    );

    let district = sources_with("district.toml", |text| {
        text.replacen("\"990101000000\"", "\"990101001000\"", 1)
    });
    let text = &district
        .iter()
        .find(|s| s.file_name == "district.toml")
        .unwrap()
        .text;
    assert_problem(
        &refused(&district),
        "district.toml",
        line_of(text, "990101001000"),
        "district.division_code",
        "district",
    );

    let income = sources_with("income.toml", |text| {
        text.replacen("\"elderly_subsidy\",", "\"elderly_subsidies\",", 1)
    });
    let text = &income
        .iter()
        .find(|s| s.file_name == "income.toml")
        .unwrap()
        .text;
    assert_problem(
        &refused(&income),
        "income.toml",
        line_of(text, "elderly_subsidies"),
        "income.excluded_item_kinds",
        "one of",
    );
}

#[test]
fn missing_files_and_broken_toml_are_refused() {
    let mut without_tekun = example_district_sources();
    without_tekun.retain(|source| source.file_name != "tekun.toml");
    let problems = refused(&without_tekun);
    assert_problem(
        &problems,
        "tekun.toml",
        1,
        "tekun",
        "section [tekun] is missing",
    );

    let broken = sources_with("disaster.toml", |text| {
        text.replacen("[disaster]", "[disaster", 1)
    });
    let text = &broken
        .iter()
        .find(|s| s.file_name == "disaster.toml")
        .unwrap()
        .text;
    let problems = refused(&broken);
    assert!(
        problems
            .iter()
            .any(|problem| problem.file == "disaster.toml"
                && problem.line == line_of(text, "[disaster")
                && problem.problem.contains("not valid TOML")),
        "{problems:?}"
    );

    let mut extra = example_district_sources();
    extra.push(PolicySource {
        file_name: "notes.toml".to_owned(),
        text: String::new(),
    });
    assert_problem(
        &refused(&extra),
        "notes.toml",
        1,
        "",
        "unknown parameter file",
    );
}

#[test]
fn catalogue_problems_name_the_line_and_the_program() {
    let unknown_department = sources_with("catalogue.toml", |text| {
        text.replacen(
            "departments = [\"water_affairs\"]",
            "departments = [\"water_bureau\"]",
            1,
        )
    });
    let text = &unknown_department
        .iter()
        .find(|s| s.file_name == "catalogue.toml")
        .unwrap()
        .text;
    assert_problem(
        &refused(&unknown_department),
        "catalogue.toml",
        line_of(text, "\"water_bureau\""),
        "reservoir_migrant_support",
        "unknown department",
    );

    let missing_program = sources_with("catalogue.toml", |text| {
        text.replacen("code = \"legal_aid\"", "code = \"legal_aids\"", 1)
    });
    let text = &missing_program
        .iter()
        .find(|s| s.file_name == "catalogue.toml")
        .unwrap()
        .text;
    let problems = refused(&missing_program);
    assert_problem(
        &problems,
        "catalogue.toml",
        line_of(text, "legal_aids"),
        "legal_aids",
        "unknown program code",
    );
    assert!(
        problems
            .iter()
            .any(|problem| problem.parameter == "legal_aid" && problem.problem.contains("missing"))
    );

    let unknown_key = sources_with("catalogue.toml", |text| {
        text.replacen(
            "benefit_kind = \"housing\"\n",
            "benefit_kind = \"housing\"\nbudget = 1\n",
            1,
        )
    });
    let text = &unknown_key
        .iter()
        .find(|s| s.file_name == "catalogue.toml")
        .unwrap()
        .text;
    let problems = refused(&unknown_key);
    assert!(
        problems
            .iter()
            .any(|problem| problem.file == "catalogue.toml"
                && problem.line == line_of(text, "budget = 1")
                && problem.problem.contains("budget")),
        "{problems:?}"
    );
}

#[test]
fn a_parameter_change_dated_in_the_future_leaves_todays_decisions_unchanged() {
    let today = date!(2026 - 11 - 28);
    let later = date!(2027 - 01 - 02);
    let current = Policy::example_district().unwrap();
    let with_future_change = Policy::from_sources(sources_with("dibao.toml", |text| {
        text.replacen(
            "{ from = 2026-07-01, value = \"840.00\" },",
            "{ from = 2026-07-01, value = \"840.00\" },\n    { from = 2027-01-01, value = \"900.00\" },",
            1,
        )
    }))
    .unwrap();
    assert_ne!(current.version(), with_future_change.version());

    let rural = example_household("rural-household.toml");
    let urban = example_household("urban-household-emergency.toml");
    for program in ProgramCode::ALL {
        for household in [&rural, &urban] {
            let before = current.evaluate(program, household, today).unwrap();
            let mut after = with_future_change
                .evaluate(program, household, today)
                .unwrap();
            assert_eq!(after.policy_version, with_future_change.version());
            after.policy_version = before.policy_version;
            assert_eq!(before, after, "{program} changed today");
        }
    }
    // And from its date the change applies: 3 × 900 − 1200 = 1500.00.
    let decision = with_future_change
        .evaluate(ProgramCode::DibaoRural, &rural, later)
        .unwrap();
    assert_eq!(decision.amount, Money::parse_yuan("1500.00").unwrap());
    let before_change = current
        .evaluate(ProgramCode::DibaoRural, &rural, later)
        .unwrap();
    assert_eq!(before_change.amount, Money::parse_yuan("1320.00").unwrap());
}

#[test]
fn a_date_before_every_entry_has_no_value() {
    let policy = Policy::example_district().unwrap();
    let error = policy.resolve(date!(2020 - 01 - 01)).unwrap_err();
    assert!(
        error.to_string().contains("no value as of 2020-01-01"),
        "{error}"
    );
}

/// Issue 20 item 10: the catalogue flag `never_publicised` (disclosure reads it): set for the
/// near-dibao and rigid-expenditure recognitions, absent (false) elsewhere; a non-flag refused.
#[test]
fn never_publicised_is_a_catalogue_flag() {
    let policy = Policy::example_district().unwrap();
    for program in policy.catalogue().programs() {
        let expected = matches!(
            program.code,
            ProgramCode::NearDibao | ProgramCode::RigidExpenditureHardship
        );
        assert_eq!(program.never_publicised, expected, "{}", program.code);
    }
    let sources = sources_with("catalogue.toml", |text| {
        text.replacen("never_publicised = true", "never_publicised = \"yes\"", 1)
    });
    let problems = refused(&sources);
    assert!(
        problems
            .iter()
            .any(|problem| problem.file == "catalogue.toml"),
        "{problems:?}"
    );
}
