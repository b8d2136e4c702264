//! Issue 20 item 13: the `sunshine-policy` command's refusals and input errors, one row per
//! invocation: the arguments, the household file, and what the first lines of the output (or
//! the error) must say.

#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::process::Command;

struct Row {
    name: &'static str,
    args: &'static [&'static str],
    /// Written to a temporary household file passed as `--household` when set.
    household: Option<&'static str>,
    success: bool,
    /// Must appear in the first `within` lines of stdout (success) or stderr (failure).
    first_lines: &'static [&'static str],
    within: usize,
}

const FAMILY_PLANNING_YOUNG_COUPLE: &str = r#"
hukou_org_unit = "990101001001"
family_planning = { living_sons = 1, only_child_disabled = true }
members = [
  { relation = "head", sex = "male", birth_date = 1996-01-01, hukou_type = "urban", resident_since = 1996-01-01 },
  { relation = "spouse", sex = "female", birth_date = 1998-01-01, hukou_type = "urban", resident_since = 2020-01-01 },
]
"#;

const TEKUN_WITH_INCOME: &str = r#"
hukou_org_unit = "990101101201"
members = [
  { relation = "head", sex = "male", birth_date = 1950-01-01, hukou_type = "rural", resident_since = 1950-01-01, monthly_income = [{ kind = "wages", amount = 50000 }] },
]
"#;

const AMOUNT_AS_FLOAT: &str = r#"
hukou_org_unit = "990101101201"
members = [
  { relation = "head", sex = "male", birth_date = 1950-01-01, hukou_type = "rural", resident_since = 1950-01-01, monthly_income = [{ kind = "wages", amount = 500.00 }] },
]
"#;

const AMOUNT_IN_YUAN_TEXT: &str = r#"
hukou_org_unit = "990101101201"
members = [
  { relation = "head", sex = "male", birth_date = 1950-01-01, hukou_type = "rural", resident_since = 1950-01-01, monthly_income = [{ kind = "wages", amount = "500.00" }] },
]
"#;

const NEAR_DIBAO: &str = r#"
hukou_org_unit = "990101001001"
members = [
  { relation = "head", sex = "female", birth_date = 1980-01-01, hukou_type = "urban", resident_since = 1980-01-01, monthly_income = [{ kind = "wages", amount = 240000 }] },
  { relation = "child", sex = "male", birth_date = 2012-01-01, hukou_type = "urban", resident_since = 2012-01-01 },
]
"#;

const ROWS: &[Row] = &[
    Row {
        name: "a near-dibao household is told its band",
        args: &["eval", "--program", "near_dibao", "--as-of", "2026-11-28"],
        household: Some(NEAR_DIBAO),
        success: true,
        first_lines: &[
            "near_dibao_band",
            "低保边缘",
            "1.14",
            "near_dibao (from the standard to below its multiple)",
        ],
        within: 6,
    },
    Row {
        name: "a family-planning refusal says why in its first lines",
        args: &[
            "eval",
            "--program",
            "family_planning",
            "--as-of",
            "2026-11-28",
        ],
        household: Some(FAMILY_PLANNING_YOUNG_COUPLE),
        success: true,
        first_lines: &["fp_wife_age_disabled_child", "not eligible"],
        within: 6,
    },
    Row {
        name: "a tekun refusal lists the failed condition first",
        args: &["eval", "--program", "tekun", "--as-of", "2026-11-28"],
        household: Some(TEKUN_WITH_INCOME),
        success: true,
        first_lines: &["no_source_of_living"],
        within: 3,
    },
    Row {
        name: "a bad --as-of names the option",
        args: &["eval", "--program", "tekun", "--as-of", "2026-13-01"],
        household: Some(TEKUN_WITH_INCOME),
        success: false,
        first_lines: &["--as-of", "YYYY-MM-DD"],
        within: 1,
    },
    // Issue 20 item 11: each program's own limits.
    Row {
        name: "dibao deadlines by default",
        args: &["deadlines", "--accepted-on", "2026-03-02"],
        household: None,
        success: true,
        first_lines: &[
            "MinimumLivingGuarantee",
            "review due by               2026-04-14",
        ],
        within: 4,
    },
    Row {
        name: "tekun deadlines are the street-town's and the county's, with the sample",
        args: &[
            "deadlines",
            "--accepted-on",
            "2026-03-02",
            "--program",
            "tekun",
        ],
        household: None,
        success: true,
        first_lines: &[
            "ExtremePoverty",
            "street-town review due by   2026-03-23",
            "within     15 working days",
            "at least 30.00%",
        ],
        within: 5,
    },
    Row {
        name: "a bad --accepted-on names the option",
        args: &["deadlines", "--accepted-on", "28/11/2026"],
        household: None,
        success: false,
        first_lines: &["--accepted-on"],
        within: 1,
    },
    Row {
        name: "an amount written as a float says amounts are integer fen",
        args: &["eval", "--program", "tekun", "--as-of", "2026-11-28"],
        household: Some(AMOUNT_AS_FLOAT),
        success: false,
        first_lines: &[
            "integer fen",
            "members[0].monthly_income[0].amount",
            "50000",
        ],
        within: 1,
    },
    Row {
        name: "an amount written in yuan as text says amounts are integer fen",
        args: &["eval", "--program", "tekun", "--as-of", "2026-11-28"],
        household: Some(AMOUNT_IN_YUAN_TEXT),
        success: false,
        first_lines: &[
            "integer fen",
            "members[0].monthly_income[0].amount",
            "50000",
        ],
        within: 1,
    },
];

#[test]
fn every_row_of_the_command_table_holds() {
    let directory = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("cli-rows");
    std::fs::create_dir_all(&directory).unwrap();
    let mut failures = Vec::new();
    for (index, row) in ROWS.iter().enumerate() {
        let mut command = Command::new(env!("CARGO_BIN_EXE_sunshine-policy"));
        command.args(row.args);
        if let Some(text) = row.household {
            let path = directory.join(format!("household-{index}.toml"));
            std::fs::write(&path, text).unwrap();
            command.arg("--household").arg(&path);
        }
        let output = command.output().unwrap();
        let stream = if row.success {
            &output.stdout
        } else {
            &output.stderr
        };
        let text = String::from_utf8_lossy(stream);
        let head: Vec<&str> = text.lines().take(row.within).collect();
        let head = head.join("\n");
        if output.status.success() != row.success {
            failures.push(format!(
                "{}: exit {:?}; stderr {}",
                row.name,
                output.status.code(),
                String::from_utf8_lossy(&output.stderr)
            ));
            continue;
        }
        for needle in row.first_lines {
            if !head.contains(needle) {
                failures.push(format!(
                    "{}: {needle:?} not in the first {} lines:\n{head}",
                    row.name, row.within
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
