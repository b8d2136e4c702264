//! A loaded policy: the parameter files and the catalogue of one policy directory, validated,
//! with their version; the entry point for evaluation.
//!
//! This module owns [`Policy`] (loading from a directory, from in-memory sources, or the
//! embedded example district) and [`evaluate`]. Loading is the only place with I/O; everything
//! after it is pure.

use std::path::Path;

use time::Date;

use crate::catalogue::{Catalogue, ProgramCode, read_catalogue};
use crate::decision::Decision;
use crate::error::{PolicyError, PolicyFileProblem, PolicyLoadError};
use crate::facts::HouseholdFacts;
use crate::hardship::HardshipCoefficient;
use crate::parameters::{ParameterSet, PolicySource, read_parameter_files};
use crate::resolved::ResolvedPolicy;
use crate::rules;
use crate::schema::CATALOGUE_FILE;
use crate::version::PolicyVersion;

/// The example district's files, compiled in (`policy/example-district/` at the workspace root).
const EXAMPLE_DISTRICT_FILES: &[(&str, &str)] = &[
    (
        "catalogue.toml",
        include_str!("../../../policy/example-district/catalogue.toml"),
    ),
    (
        "dibao.toml",
        include_str!("../../../policy/example-district/dibao.toml"),
    ),
    (
        "low_income.toml",
        include_str!("../../../policy/example-district/low_income.toml"),
    ),
    (
        "disaster.toml",
        include_str!("../../../policy/example-district/disaster.toml"),
    ),
    (
        "district.toml",
        include_str!("../../../policy/example-district/district.toml"),
    ),
    (
        "education.toml",
        include_str!("../../../policy/example-district/education.toml"),
    ),
    (
        "elderly.toml",
        include_str!("../../../policy/example-district/elderly.toml"),
    ),
    (
        "employment.toml",
        include_str!("../../../policy/example-district/employment.toml"),
    ),
    (
        "entitled.toml",
        include_str!("../../../policy/example-district/entitled.toml"),
    ),
    (
        "family_planning.toml",
        include_str!("../../../policy/example-district/family_planning.toml"),
    ),
    (
        "hardship.toml",
        include_str!("../../../policy/example-district/hardship.toml"),
    ),
    (
        "housing.toml",
        include_str!("../../../policy/example-district/housing.toml"),
    ),
    (
        "income.toml",
        include_str!("../../../policy/example-district/income.toml"),
    ),
    (
        "medical.toml",
        include_str!("../../../policy/example-district/medical.toml"),
    ),
    (
        "other.toml",
        include_str!("../../../policy/example-district/other.toml"),
    ),
    (
        "integration.toml",
        include_str!("../../../policy/example-district/integration.toml"),
    ),
    (
        "procedure.toml",
        include_str!("../../../policy/example-district/procedure.toml"),
    ),
    (
        "temporary.toml",
        include_str!("../../../policy/example-district/temporary.toml"),
    ),
    (
        "tekun.toml",
        include_str!("../../../policy/example-district/tekun.toml"),
    ),
];

/// 救助政策 (policy): validated parameters and catalogue, identified by their [`PolicyVersion`].
#[derive(Debug, Clone)]
pub struct Policy {
    version: PolicyVersion,
    sources: Vec<PolicySource>,
    parameters: ParameterSet,
    catalogue: Catalogue,
}

impl Policy {
    /// Reads every `*.toml` file of `directory` (other files, e.g. a README, are ignored).
    pub fn load_dir(directory: impl AsRef<Path>) -> Result<Policy, PolicyLoadError> {
        let directory = directory.as_ref();
        let io_error = |source| PolicyLoadError::Io {
            path: directory.to_path_buf(),
            source,
        };
        let mut sources = Vec::new();
        for entry in std::fs::read_dir(directory).map_err(io_error)? {
            let path = entry.map_err(io_error)?.path();
            if path.extension().and_then(|extension| extension.to_str()) != Some("toml") {
                continue;
            }
            let text = std::fs::read_to_string(&path).map_err(|source| PolicyLoadError::Io {
                path: path.clone(),
                source,
            })?;
            let file_name = path
                .file_name()
                .and_then(|name| name.to_str())
                .unwrap_or_default()
                .to_owned();
            sources.push(PolicySource { file_name, text });
        }
        Policy::from_sources(sources)
    }

    /// Builds a policy from files already read (name inside the directory, and text).
    pub fn from_sources(mut sources: Vec<PolicySource>) -> Result<Policy, PolicyLoadError> {
        sources.sort_by(|left, right| left.file_name.cmp(&right.file_name));
        let mut problems: Vec<PolicyFileProblem> = Vec::new();
        for pair in sources.windows(2) {
            if pair[0].file_name == pair[1].file_name {
                problems.push(PolicyFileProblem {
                    file: pair[1].file_name.clone(),
                    line: 1,
                    parameter: String::new(),
                    problem: "file given twice".to_owned(),
                });
            }
        }
        let (catalogue_sources, parameter_sources): (Vec<PolicySource>, Vec<PolicySource>) =
            sources
                .iter()
                .cloned()
                .partition(|source| source.file_name == CATALOGUE_FILE);
        let (parameters, mut parameter_problems) = read_parameter_files(&parameter_sources);
        problems.append(&mut parameter_problems);
        let catalogue = match catalogue_sources.first() {
            Some(source) => match read_catalogue(source) {
                Ok(catalogue) => Some(catalogue),
                Err(mut catalogue_problems) => {
                    problems.append(&mut catalogue_problems);
                    None
                }
            },
            None => {
                problems.push(PolicyFileProblem {
                    file: CATALOGUE_FILE.to_owned(),
                    line: 1,
                    parameter: String::new(),
                    problem: "the program catalogue file is missing".to_owned(),
                });
                None
            }
        };
        match (problems.is_empty(), catalogue) {
            (true, Some(catalogue)) => Ok(Policy {
                version: PolicyVersion::of_sources(&sources),
                sources,
                parameters,
                catalogue,
            }),
            _ => Err(PolicyLoadError::Invalid { problems }),
        }
    }

    /// The example district shipped in `policy/example-district/` (EXAMPLE values), compiled in.
    pub fn example_district() -> Result<Policy, PolicyLoadError> {
        Policy::from_sources(example_district_sources())
    }

    /// The policy a service is configured with (`policy.directory`): the directory's files, or,
    /// when none is configured, the compiled-in example district — said in a warning, since
    /// its values are EXAMPLE values.
    pub fn load_configured(directory: &str) -> Result<Policy, PolicyLoadError> {
        if directory.is_empty() {
            tracing::warn!(
                "no policy.directory configured: using the EXAMPLE district's parameters"
            );
            Policy::example_district()
        } else {
            Policy::load_dir(directory)
        }
    }

    pub fn version(&self) -> PolicyVersion {
        self.version
    }

    pub fn catalogue(&self) -> &Catalogue {
        &self.catalogue
    }

    pub fn parameters(&self) -> &ParameterSet {
        &self.parameters
    }

    /// The files the policy was built from, sorted by name.
    pub fn sources(&self) -> &[PolicySource] {
        &self.sources
    }

    /// Every parameter as of `as_of`; build once, then evaluate many households against it.
    pub fn resolve(&self, as_of: Date) -> Result<ResolvedPolicy, PolicyError> {
        ResolvedPolicy::from_parameters(&self.parameters, self.version, as_of)
    }

    /// Evaluates one program for one household as of a date. Only the parameter sections the
    /// program reads ([`ProgramCode::parameter_sections`]) must be in force on the date; a
    /// parameter of theirs without a value is [`PolicyError::ProgramNotInForce`], naming the
    /// program, the date and the parameter.
    pub fn evaluate(
        &self,
        program: ProgramCode,
        household: &HouseholdFacts,
        as_of: Date,
    ) -> Result<Decision, PolicyError> {
        let resolved = ResolvedPolicy::from_parameters_for(
            &self.parameters,
            self.version,
            as_of,
            Some(program.parameter_sections()),
        )
        .map_err(|error| match error {
            PolicyError::NoValueAsOf {
                parameter,
                as_of,
                first_from,
            } => PolicyError::ProgramNotInForce {
                program: program.as_str(),
                as_of,
                parameter,
                first_from,
            },
            other => other,
        })?;
        resolved.evaluate(program, household)
    }

    /// The hardship coefficient of a household as of a date.
    pub fn hardship(
        &self,
        household: &HouseholdFacts,
        as_of: Date,
    ) -> Result<HardshipCoefficient, PolicyError> {
        self.resolve(as_of)?.hardship(household)
    }
}

impl ResolvedPolicy {
    /// Evaluates one program for one household as of [`ResolvedPolicy::as_of`].
    pub fn evaluate(
        &self,
        program: ProgramCode,
        household: &HouseholdFacts,
    ) -> Result<Decision, PolicyError> {
        rules::evaluate(self, program, household)
    }

    pub fn hardship(&self, household: &HouseholdFacts) -> Result<HardshipCoefficient, PolicyError> {
        household.validate(self.as_of)?;
        HardshipCoefficient::compute(self, household)
    }
}

/// The example district's files as sources, e.g. to modify one in a test.
pub fn example_district_sources() -> Vec<PolicySource> {
    EXAMPLE_DISTRICT_FILES
        .iter()
        .map(|(file_name, text)| PolicySource {
            file_name: (*file_name).to_owned(),
            text: (*text).to_owned(),
        })
        .collect()
}

/// `evaluate(program, household, as_of)` against `policy`: the same as [`Policy::evaluate`].
pub fn evaluate(
    policy: &Policy,
    program: ProgramCode,
    household: &HouseholdFacts,
    as_of: Date,
) -> Result<Decision, PolicyError> {
    policy.evaluate(program, household, as_of)
}
