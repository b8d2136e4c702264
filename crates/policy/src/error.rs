//! Errors of the policy crate: refusing bad policy files at load, and failing an evaluation.
//!
//! This module owns [`PolicyLoadError`] (with one [`PolicyFileProblem`] per thing wrong in the
//! files, each naming the file, the line and the parameter) and [`PolicyError`] (what can go
//! wrong when a loaded policy is asked a question).

use std::fmt;
use std::path::PathBuf;

use time::Date;

/// One problem in one policy file: where it is and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyFileProblem {
    /// The file name inside the policy directory, e.g. `dibao.toml`.
    pub file: String,
    /// 1-based line; the line of the section header when the problem is something missing.
    pub line: usize,
    /// The parameter's full name, `section.key` (e.g. `dibao.urban_standard_monthly`); for the
    /// catalogue, the program or department it concerns; empty when the file as a whole is wrong.
    pub parameter: String,
    pub problem: String,
}

impl fmt::Display for PolicyFileProblem {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.parameter.is_empty() {
            write!(formatter, "{}:{}: {}", self.file, self.line, self.problem)
        } else {
            write!(
                formatter,
                "{}:{}: parameter `{}`: {}",
                self.file, self.line, self.parameter, self.problem
            )
        }
    }
}

/// Why a policy directory (or a set of policy sources) was refused. Nothing is half-loaded.
#[derive(Debug, thiserror::Error)]
pub enum PolicyLoadError {
    #[error("cannot read policy directory or file {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("policy files refused:\n{}", render_problems(.problems))]
    Invalid { problems: Vec<PolicyFileProblem> },
}

impl PolicyLoadError {
    /// The problems found, in file order; empty for an I/O error.
    pub fn problems(&self) -> &[PolicyFileProblem] {
        match self {
            PolicyLoadError::Io { .. } => &[],
            PolicyLoadError::Invalid { problems } => problems,
        }
    }
}

fn render_problems(problems: &[PolicyFileProblem]) -> String {
    let mut text = String::new();
    for problem in problems {
        text.push_str("  ");
        text.push_str(&problem.to_string());
        text.push('\n');
    }
    text
}

/// Why a question to a loaded policy could not be answered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// The parameter has no entry dated on or before `as_of`.
    #[error(
        "parameter `{parameter}` has no value as of {as_of}; its first entry is from {first_from}"
    )]
    NoValueAsOf {
        parameter: &'static str,
        as_of: Date,
        first_from: Date,
    },
    /// Issue 20 item 12: a parameter `program` reads has no value on `as_of`.
    #[error(
        "program `{program}` cannot be evaluated as of {as_of}: parameter `{parameter}` has no value then; its first entry is from {first_from}"
    )]
    ProgramNotInForce {
        program: &'static str,
        as_of: Date,
        parameter: &'static str,
        first_from: Date,
    },
    /// The household facts break a rule of their own (e.g. two heads, a birth date after
    /// `as_of`); every violation is listed.
    #[error("household facts are invalid: {}", .violations.join("; "))]
    InvalidFacts { violations: Vec<String> },
    #[error("amount out of range while evaluating {program}")]
    AmountOverflow { program: &'static str },
    #[error("unknown program code {code:?}")]
    UnknownProgram { code: String },
    /// A statutory deadline could not be computed (usually: the calendar does not cover the year).
    #[error("working-day calendar: {message}")]
    Calendar { message: String },
    /// The schema and the code disagree about a parameter; a bug in this crate, caught by tests.
    #[error("parameter `{parameter}` is not of the kind the rules expect")]
    ParameterKindMismatch { parameter: &'static str },
    /// A date computation went outside the representable range.
    #[error("date out of range")]
    DateOutOfRange,
}

impl From<sunshine_domain::CalendarError> for PolicyError {
    fn from(error: sunshine_domain::CalendarError) -> PolicyError {
        PolicyError::Calendar {
            message: error.to_string(),
        }
    }
}
