//! What the review service's handlers and reactions share once its backends are connected —
//! the log, the policy, the workflows, the working-day calendar, the org tree and the clock —
//! and the configuration they are read from, each failure a [`StartError`].

use std::sync::Arc;

use sunshine_domain::{CalendarError, OrgTree, WorkingDayCalendar};
use sunshine_eventlog::runtime::LogRuntime;
use sunshine_platform::Config;
use sunshine_policy::{Policy, PolicyLoadError};

pub use sunshine_platform::clock::{Clock, ManualClock, SystemClock};

use crate::workflow::{WorkflowError, Workflows};

/// What the handlers share once connected.
#[derive(Debug, Clone)]
pub struct ReviewState {
    pub log: LogRuntime,
    pub policy: Arc<Policy>,
    pub workflows: Arc<Workflows>,
    pub calendar: Arc<WorkingDayCalendar>,
    pub org_tree: Arc<OrgTree>,
    pub clock: Arc<dyn Clock>,
}

/// Why the service could not start serving; it stays NOT_SERVING and tries again.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("policy: {0}")]
    Policy(#[from] PolicyLoadError),
    #[error("policy.workflows_file {path}: {source}")]
    WorkflowsFile {
        path: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Workflows(#[from] WorkflowError),
    #[error("working-day calendar: {0}")]
    Calendar(#[from] CalendarError),
    /// The platform's loader reports its problem as text.
    #[error("district.org_tree_file: {0}")]
    OrgTree(String),
}

/// What the service reads from its configuration before it touches the log.
#[derive(Debug)]
pub struct Setup {
    pub policy: Policy,
    pub workflows: Workflows,
    pub calendar: WorkingDayCalendar,
    pub org_tree: OrgTree,
}

impl Setup {
    /// The district's policy, workflows and org tree (the example district's where none is
    /// configured, with a warning) and the embedded working-day calendar.
    pub fn load(config: &Config) -> Result<Setup, StartError> {
        let policy = Policy::load_configured(&config.policy.directory)?;
        let workflows = if config.policy.workflows_file.is_empty() {
            tracing::warn!(
                "no policy.workflows_file configured: using the EXAMPLE district's workflows"
            );
            Workflows::example()?
        } else {
            let path = &config.policy.workflows_file;
            let text =
                std::fs::read_to_string(path).map_err(|source| StartError::WorkflowsFile {
                    path: path.clone(),
                    source,
                })?;
            Workflows::from_toml_str(&text)?
        };
        Ok(Setup {
            policy,
            workflows,
            calendar: WorkingDayCalendar::embedded()?,
            org_tree: config
                .district
                .load_org_tree()
                .map_err(StartError::OrgTree)?,
        })
    }

    /// The state handlers share, over the started log.
    pub fn with_log(self, log: LogRuntime, clock: Arc<dyn Clock>) -> ReviewState {
        ReviewState {
            log,
            policy: Arc::new(self.policy),
            workflows: Arc::new(self.workflows),
            calendar: Arc::new(self.calendar),
            org_tree: Arc::new(self.org_tree),
            clock,
        }
    }
}
