//! `sunshine-policy`: the policy crate's own command until `sunshinectl policy` exists.
//!
//! - `eval --program CODE --household FILE --as-of DATE [--policy-dir DIR] [--json]` evaluates a
//!   household file (TOML, or JSON when the name ends in `.json`) and prints the decision with
//!   its explanation in Chinese and English.
//! - `hardship --household FILE --as-of DATE` prints the hardship coefficient factor by factor.
//! - `catalogue` lists the programs; `version` prints the policy version;
//!   `deadlines --accepted-on DATE [--program CODE]` prints the statutory deadlines of an
//!   application by its program's rules (特困: the street-town's and the county's own limits).
//!
//! Without `--policy-dir` the example district compiled into the crate is used.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use sunshine_domain::WorkingDayCalendar;
use sunshine_policy::dates::parse_iso_date;
use sunshine_policy::{HouseholdFacts, Language, Policy, ProgramCode};
use time::Date;

#[derive(Debug, Parser)]
#[command(
    name = "sunshine-policy",
    about = "Evaluate assistance programs against effective-dated policy files"
)]
struct Command {
    /// Policy directory (default: the example district compiled in).
    #[arg(long, global = true)]
    policy_dir: Option<PathBuf>,
    #[command(subcommand)]
    action: Action,
}

#[derive(Debug, Subcommand)]
enum Action {
    /// Evaluate one program for one household as of a date.
    Eval {
        #[arg(long)]
        program: String,
        #[arg(long)]
        household: PathBuf,
        /// YYYY-MM-DD
        #[arg(long)]
        as_of: String,
        /// Print the decision as JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Print a household's hardship coefficient with each factor's contribution.
    Hardship {
        #[arg(long)]
        household: PathBuf,
        #[arg(long)]
        as_of: String,
    },
    /// List the program catalogue.
    Catalogue,
    /// Print the policy version (SHA-256 of the policy files).
    Version,
    /// Print the statutory deadlines of an application accepted on a date.
    Deadlines {
        #[arg(long)]
        accepted_on: String,
        /// The program whose rules set the limits (特困: `tekun`); the dibao review's by
        /// default.
        #[arg(long, default_value = "dibao_rural")]
        program: String,
    },
}

fn main() -> ExitCode {
    let command = Command::parse();
    match run(command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run(command: Command) -> Result<(), String> {
    let policy = match &command.policy_dir {
        Some(directory) => Policy::load_dir(directory),
        None => Policy::example_district(),
    }
    .map_err(|error| error.to_string())?;

    match command.action {
        Action::Eval {
            program,
            household,
            as_of,
            json,
        } => {
            let program: ProgramCode =
                program
                    .parse()
                    .map_err(|error: sunshine_policy::PolicyError| {
                        let known: Vec<&str> =
                            ProgramCode::ALL.iter().map(|code| code.as_str()).collect();
                        format!("{error}; known programs: {}", known.join(", "))
                    })?;
            let as_of = parse_date("--as-of", &as_of)?;
            let household = read_household(&household)?;
            let decision = policy
                .evaluate(program, &household, as_of)
                .map_err(|error| error.to_string())?;
            if json {
                let text =
                    serde_json::to_string_pretty(&decision).map_err(|error| error.to_string())?;
                println!("{text}");
            } else {
                let entry = policy.catalogue().program(program);
                // A refusal says why first; the full explanation follows.
                if !decision.eligible {
                    print!("{}", decision.refusal_summary());
                    println!();
                }
                print!("{}", decision.explain(Language::Zh, &entry.name_zh));
                println!();
                print!("{}", decision.explain(Language::En, &entry.name_en));
                let failed = decision.failed_conditions();
                if !failed.is_empty() {
                    let codes: Vec<&str> = failed.iter().map(|code| code.as_str()).collect();
                    println!("failed conditions: {}", codes.join(", "));
                }
                println!("policy version: {}", decision.policy_version);
            }
        }
        Action::Hardship { household, as_of } => {
            let as_of = parse_date("--as-of", &as_of)?;
            let household = read_household(&household)?;
            let hardship = policy
                .hardship(&household, as_of)
                .map_err(|error| error.to_string())?;
            print!("{}", hardship.explain(Language::Zh));
            print!("{}", hardship.explain(Language::En));
        }
        Action::Catalogue => {
            for program in policy.catalogue().programs() {
                println!(
                    "{:<28} {:<10} {:<18} {:<22} {:<20} {} / {} [{}]",
                    program.code.as_str(),
                    program.seed_item,
                    format!("{:?}", program.channel),
                    format!("{:?}", program.workflow),
                    format!("{:?}", program.benefit_kind),
                    program.name_zh,
                    program.name_en,
                    program.departments.join(", ")
                );
            }
        }
        Action::Version => println!("{}", policy.version()),
        Action::Deadlines {
            accepted_on,
            program,
        } => {
            let accepted_on = parse_date("--accepted-on", &accepted_on)?;
            let program: ProgramCode = program
                .parse()
                .map_err(|error| format!("--program: {error}"))?;
            let calendar = WorkingDayCalendar::embedded().map_err(|error| error.to_string())?;
            let procedure = policy
                .resolve(accepted_on)
                .map_err(|error| error.to_string())?
                .procedure
                .for_program(program);
            let deadlines = procedure
                .deadlines(&calendar, accepted_on)
                .map_err(|error| error.to_string())?;
            // A date that reaches a year without a published holiday notice is provisional.
            let show = |due: sunshine_domain::DueDate| {
                if due.provisional {
                    format!("{} (provisional: no holiday notice published)", due.date)
                } else {
                    due.date.to_string()
                }
            };
            println!("accepted on                 {}", deadlines.accepted_on);
            println!("rules                       {:?}", procedure.rules);
            let lines = [
                (
                    "investigation starts by     ",
                    deadlines.investigation_start_by,
                ),
                ("review due by               ", deadlines.review_due_by),
                (
                    "review due by (extended)    ",
                    deadlines.review_extended_due_by,
                ),
                ("street-town review due by   ", deadlines.street_town_due_by),
            ];
            for (label, due) in lines {
                if let Some(due) = due {
                    println!("{label}{}", show(due));
                }
            }
            println!(
                "district decides within     {} working days of receiving the opinion",
                procedure.district_decision_working_days
            );
            if let Some(share) = procedure.district_home_visit_share_basis_points {
                println!(
                    "district home-visits        at least {}.{:02}% of the cases it receives",
                    share / 100,
                    share % 100
                );
            }
        }
    }
    Ok(())
}

fn parse_date(option: &str, text: &str) -> Result<Date, String> {
    parse_iso_date(text)
        .ok_or_else(|| format!("{option}: invalid date {text:?}; expected YYYY-MM-DD"))
}

/// The household fields that hold money (whole fen).
const MONEY_KEYS: &[&str] = &[
    "amount",
    "monthly_rent",
    "loss",
    "financial_assets",
    "annual_medical_out_of_pocket",
    "temporary_assistance_paid_this_year",
    "uncovered_expense",
    "out_of_pocket_after_insurance",
    "paid_this_year",
];

/// The first money field written in yuan (text or a decimal number) instead of integer fen,
/// as a message naming its path and the fen it should be; household facts hold no decimals.
fn amount_not_in_fen(path: &str, value: &serde_json::Value) -> Option<String> {
    match value {
        serde_json::Value::Object(map) => map.iter().find_map(|(key, value)| {
            let child = if path.is_empty() {
                key.clone()
            } else {
                format!("{path}.{key}")
            };
            let wrong = MONEY_KEYS.contains(&key.as_str())
                && (value.is_string() || (value.is_number() && !value.is_i64()));
            if wrong {
                let written = match value {
                    serde_json::Value::String(text) => text.clone(),
                    other => other.to_string(),
                };
                let fen = sunshine_domain::Money::parse_yuan(&written)
                    .map(|money| format!(" ({written} yuan is {})", money.fen()))
                    .unwrap_or_default();
                Some(format!(
                    "{child}: amounts are integer fen, e.g. 50000 for 500.00 yuan; got {written}{fen}"
                ))
            } else {
                amount_not_in_fen(&child, value)
            }
        }),
        serde_json::Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(index, item)| amount_not_in_fen(&format!("{path}[{index}]"), item)),
        _ => None,
    }
}

fn read_household(path: &Path) -> Result<HouseholdFacts, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|error| format!("cannot read {}: {error}", path.display()))?;
    let json = path.extension().and_then(|extension| extension.to_str()) == Some("json");
    let parsed = if json {
        serde_json::from_str(&text).map_err(|error| error.to_string())
    } else {
        toml::from_str(&text).map_err(|error| error.to_string())
    };
    parsed.map_err(|error| {
        // An amount in yuan is the usual cause; say so instead of the parser's words.
        let tree: Option<serde_json::Value> = if json {
            serde_json::from_str(&text).ok()
        } else {
            toml::from_str::<toml::Value>(&text)
                .ok()
                .and_then(|value| serde_json::to_value(value).ok())
        };
        match tree.and_then(|tree| amount_not_in_fen("", &tree)) {
            Some(problem) => format!("{}: {problem}", path.display()),
            None => format!("{}: {error}", path.display()),
        }
    })
}
