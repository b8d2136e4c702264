//! Policy as code for Sunshine Livelihood Assistance (阳光民生救助): the program catalogue,
//! effective-dated parameters, one rule per program, and the hardship coefficient. Every
//! decision explains itself condition by condition, in Chinese and English, and names the
//! policy version (a content hash of the parameter files) that produced it.
//!
//! ```no_run
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use sunshine_policy::{Policy, ProgramCode, HouseholdFacts};
//! let policy = Policy::load_dir("policy/example-district")?;
//! let household: HouseholdFacts = toml::from_str(&std::fs::read_to_string("policy/examples/rural-household.toml")?)?;
//! let decision = policy.evaluate(ProgramCode::DibaoRural, &household, time::macros::date!(2026 - 11 - 28))?;
//! println!("{} {}", decision.eligible, decision.amount);
//! # Ok(()) }
//! ```
//!
//! # Layout
//! - [`schema`]: every parameter section and parameter, with its kind and file.
//! - [`parameters`]: reading and validating parameter files (file, line and parameter in every
//!   error); [`ParameterSet`] answers "as of a date".
//! - [`version`]: [`PolicyVersion`], the SHA-256 over the files in canonical order.
//! - [`catalogue`]: [`ProgramCode`], [`BenefitPeriod`] and the validated [`Catalogue`] from
//!   `catalogue.toml`.
//! - [`resolved`]: [`ResolvedPolicy`], every parameter as of one date, typed; the fast path.
//! - [`facts`]: [`HouseholdFacts`], the rules' input.
//! - [`income`]: income counting with excluded kinds.
//! - [`language`]: [`Language`] and the number format explanations share.
//! - [`hardship`]: [`HardshipCoefficient`], the weighted hardship model.
//! - `rules` (private): one evaluation function per program.
//! - [`decision`]: [`Decision`], [`Reason`], [`ConditionCode`] and rendering.
//! - [`deadlines`]: statutory working-day deadlines with the domain calendar.
//! - [`policy`]: [`Policy`], loading and the `evaluate` entry point.
//! - [`dates`]: completed years (周岁) and date (de)serialisation.
//! - [`error`]: [`PolicyLoadError`] and [`PolicyError`].
//!
//! # Module dependencies
//! Imports point one way; a module uses only modules above it in this order (a test,
//! `tests/module_order.rs`, reads the sources and checks it):
//!
//! ```text
//! error, dates, language
//! facts        → dates, error
//! schema       → facts
//! parameters   → dates, error, schema
//! version      → parameters
//! catalogue    → error, parameters, schema
//! income       → error, facts
//! resolved     → error, facts, income, parameters, version
//! deadlines    → catalogue, error, resolved
//! hardship     → dates, error, facts, income, language, resolved
//! decision     → catalogue, dates, hardship, language, version
//! rules        → catalogue, dates, decision, error, facts, hardship, income, resolved
//! policy       → everything above
//! ```
//!
//! The parameter-file format and the rounding rule are described in `crates/policy/README.md`.

pub mod catalogue;
pub mod dates;
pub mod deadlines;
pub mod decision;
pub mod error;
pub mod facts;
pub mod hardship;
pub mod income;
pub mod language;
pub mod parameters;
pub mod policy;
pub mod resolved;
mod rules;
pub mod schema;
pub mod version;

pub use catalogue::{
    BenefitKind, BenefitPeriod, Catalogue, Channel, Department, Program, ProgramCode,
    ReviewWorkflow,
};
pub use deadlines::{CaseDeadlines, CaseProcedure, ProcedureRules, ReviewDeadlines};
pub use decision::{
    ConditionCode, Decision, EntitledMedicalRoute, MemberMedicalRoute, Reason, ReasonRole,
    ReasonValue,
};
pub use error::{PolicyError, PolicyFileProblem, PolicyLoadError};
pub use facts::HouseholdFacts;
pub use hardship::{FactorContribution, HardshipCoefficient, HardshipFactor, HardshipLevel};
pub use language::Language;
pub use parameters::{ParameterSet, PolicySource};
pub use policy::{Policy, evaluate, example_district_sources};
pub use resolved::{ResolvedPolicy, TekunProcedureParameters};
pub use version::PolicyVersion;

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// Amounts must never pass through floating point; this scans the crate's own sources.
    #[test]
    fn no_floating_point_types_in_sources() {
        let sources = [
            include_str!("lib.rs"),
            include_str!("catalogue.rs"),
            include_str!("dates.rs"),
            include_str!("deadlines.rs"),
            include_str!("decision.rs"),
            include_str!("error.rs"),
            include_str!("facts.rs"),
            include_str!("hardship.rs"),
            include_str!("income.rs"),
            include_str!("parameters.rs"),
            include_str!("policy.rs"),
            include_str!("resolved.rs"),
            include_str!("schema.rs"),
            include_str!("version.rs"),
            include_str!("rules/mod.rs"),
            include_str!("rules/dibao.rs"),
            include_str!("rules/disaster.rs"),
            include_str!("rules/education.rs"),
            include_str!("rules/elderly.rs"),
            include_str!("rules/employment.rs"),
            include_str!("rules/entitled.rs"),
            include_str!("rules/family_planning.rs"),
            include_str!("rules/housing.rs"),
            include_str!("rules/low_income.rs"),
            include_str!("rules/medical.rs"),
            include_str!("rules/other.rs"),
            include_str!("rules/tekun.rs"),
            include_str!("rules/temporary.rs"),
            include_str!("bin/sunshine-policy.rs"),
        ];
        let forbidden_tokens = [["f", "32"].concat(), ["f", "64"].concat()];
        for source in sources {
            for token in &forbidden_tokens {
                assert!(!source.contains(token.as_str()), "found {token}");
            }
        }
    }

    #[test]
    fn every_schema_parameter_is_resolved() {
        let resolver_source = include_str!("resolved.rs");
        for definition in schema::PARAMETERS {
            assert!(
                resolver_source.contains(&format!("\"{}\"", definition.name)),
                "{} is never read",
                definition.name
            );
        }
    }

    #[test]
    fn example_district_loads_and_resolves_on_every_day_it_covers() {
        let policy = Policy::example_district().unwrap();
        for year in 2024..=2027 {
            let date = time::Date::from_calendar_date(year, time::Month::January, 1).unwrap();
            policy.resolve(date).unwrap();
        }
    }

    #[test]
    fn catalogue_benefit_kinds_agree_with_rule_periods() {
        let policy = Policy::example_district().unwrap();
        for program in policy.catalogue().programs() {
            let period = program.code.period();
            let agrees = match program.benefit_kind {
                BenefitKind::MonthlyCash => period == BenefitPeriod::Monthly,
                BenefitKind::OneOffCash => period == BenefitPeriod::OneOff,
                BenefitKind::AnnualCash
                | BenefitKind::PremiumSubsidy
                | BenefitKind::InsuranceEnrolment => period == BenefitPeriod::Annual,
                // Services, exemptions and housing state their own period.
                BenefitKind::Service | BenefitKind::FeeExemption | BenefitKind::Housing => true,
            };
            assert!(
                agrees,
                "{} is {:?} but pays {:?}",
                program.code, program.benefit_kind, period
            );
        }
    }
}
