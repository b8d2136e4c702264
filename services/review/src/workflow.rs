//! Workflows as data: the ordered stages of each review workflow and who may act at each,
//! read from a TOML file (`workflows/example-district.toml` is compiled in as the example), so
//! a province's variant is a configuration change.

use serde::Deserialize;

/// What happens at a stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StageKind {
    /// 先行救助: the street-town pays at once, within the policy cap.
    AssistFirst,
    /// 入户调查: home visits by at least the configured number of officers.
    Investigation,
    /// 家庭经济状况核对: departments' answers, through department-integration.
    Verification,
    /// 初审意见: the street-town's opinion, with the policy result attached.
    PreliminaryOpinion,
    /// 公示: the public notice; objections are heard.
    Publicity,
    /// 审核确认: approval or rejection at the district.
    Decision,
}

impl StageKind {
    pub fn as_str(self) -> &'static str {
        match self {
            StageKind::AssistFirst => "assist_first",
            StageKind::Investigation => "investigation",
            StageKind::Verification => "verification",
            StageKind::PreliminaryOpinion => "preliminary_opinion",
            StageKind::Publicity => "publicity",
            StageKind::Decision => "decision",
        }
    }

    pub fn parse(text: &str) -> Option<StageKind> {
        [
            StageKind::AssistFirst,
            StageKind::Investigation,
            StageKind::Verification,
            StageKind::PreliminaryOpinion,
            StageKind::Publicity,
            StageKind::Decision,
        ]
        .into_iter()
        .find(|kind| kind.as_str() == text)
    }
}

/// The org-unit tier an officer must sit at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Tier {
    VillageCommunity,
    StreetTown,
    District,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Stage {
    pub kind: StageKind,
    /// Role claim values (`street_reviewer`, …).
    pub roles: Vec<String>,
    #[serde(default)]
    pub tier: Option<Tier>,
    #[serde(default)]
    pub min_investigators: u32,
    /// Investigation only: who makes the extra home visit a relative of an official needs
    /// (近亲属备案, reviewed with extra care), besides the assigned investigators.
    #[serde(default)]
    pub relative_visit: Option<VisitRule>,
    /// Decision only: the district's home-visit sample (入户抽查, 特困): who draws it over the
    /// cases received and makes its visits; a sampled case is decided only after its visit.
    /// The share is the policy's (`procedure.tekun_county_home_visit_share`).
    #[serde(default)]
    pub home_visit_sample: Option<VisitRule>,
}

/// Who may make a visit: the roles, at one tier.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VisitRule {
    pub roles: Vec<String>,
    pub tier: Tier,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Workflow {
    pub code: String,
    pub stages: Vec<Stage>,
}

impl Workflow {
    pub fn stage(&self, index: usize) -> Option<&Stage> {
        self.stages.get(index)
    }

    pub fn position(&self, kind: StageKind) -> Option<usize> {
        self.stages.iter().position(|stage| stage.kind == kind)
    }

    /// The stage of this kind, if the workflow has one.
    pub fn stage_of(&self, kind: StageKind) -> Option<&Stage> {
        self.stages.iter().find(|stage| stage.kind == kind)
    }

    /// Who draws the district's home-visit sample and visits it, for a workflow that has one.
    pub fn home_visit_sample(&self) -> Option<&VisitRule> {
        self.stage_of(StageKind::Decision)
            .and_then(|stage| stage.home_visit_sample.as_ref())
    }

    /// Publicity is skipped by workflows that have no publicity stage (emergencies).
    pub fn has_publicity(&self) -> bool {
        self.position(StageKind::Publicity).is_some()
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WorkflowFile {
    workflow: Vec<Workflow>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("workflow file: {0}")]
pub struct WorkflowError(pub String);

const ROLES: [&str; 4] = [
    "village_clerk",
    "street_reviewer",
    "center_reviewer",
    "center_approver",
];

/// The validated workflows of a district.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workflows {
    workflows: Vec<Workflow>,
}

impl Workflows {
    pub fn from_toml_str(text: &str) -> Result<Workflows, WorkflowError> {
        let file: WorkflowFile =
            toml::from_str(text).map_err(|error| WorkflowError(error.to_string()))?;
        for workflow in &file.workflow {
            if workflow.stages.last().map(|stage| stage.kind) != Some(StageKind::Decision) {
                return Err(WorkflowError(format!(
                    "{}: the last stage must be the decision",
                    workflow.code
                )));
            }
            let mut seen = std::collections::HashSet::new();
            for stage in &workflow.stages {
                if !seen.insert(stage.kind) {
                    return Err(WorkflowError(format!(
                        "{}: stage {} appears twice",
                        workflow.code,
                        stage.kind.as_str()
                    )));
                }
                if stage.roles.is_empty()
                    || stage
                        .roles
                        .iter()
                        .any(|role| !ROLES.contains(&role.as_str()))
                {
                    return Err(WorkflowError(format!(
                        "{}: stage {} needs roles among {}",
                        workflow.code,
                        stage.kind.as_str(),
                        ROLES.join(", ")
                    )));
                }
                if stage.kind == StageKind::Investigation && stage.min_investigators == 0 {
                    return Err(WorkflowError(format!(
                        "{}: investigation needs min_investigators ≥ 1",
                        workflow.code
                    )));
                }
                match (&stage.relative_visit, stage.kind) {
                    (None, StageKind::Investigation) => {
                        return Err(WorkflowError(format!(
                            "{}: investigation needs relative_visit (who visits a relative of an official)",
                            workflow.code
                        )));
                    }
                    (Some(_), kind) if kind != StageKind::Investigation => {
                        return Err(WorkflowError(format!(
                            "{}: only the investigation has a relative_visit",
                            workflow.code
                        )));
                    }
                    (Some(rule), _)
                        if rule.roles.is_empty()
                            || rule
                                .roles
                                .iter()
                                .any(|role| !ROLES.contains(&role.as_str())) =>
                    {
                        return Err(WorkflowError(format!(
                            "{}: relative_visit needs roles among {}",
                            workflow.code,
                            ROLES.join(", ")
                        )));
                    }
                    _ => {}
                }
                match (&stage.home_visit_sample, stage.kind) {
                    (Some(_), kind) if kind != StageKind::Decision => {
                        return Err(WorkflowError(format!(
                            "{}: only the decision has a home_visit_sample",
                            workflow.code
                        )));
                    }
                    (Some(rule), _)
                        if rule.roles.is_empty()
                            || rule
                                .roles
                                .iter()
                                .any(|role| !ROLES.contains(&role.as_str())) =>
                    {
                        return Err(WorkflowError(format!(
                            "{}: home_visit_sample needs roles among {}",
                            workflow.code,
                            ROLES.join(", ")
                        )));
                    }
                    _ => {}
                }
            }
            if workflow.stages.first().map(|stage| stage.kind) == Some(StageKind::Decision) {
                return Err(WorkflowError(format!(
                    "{}: a decision needs a stage before it",
                    workflow.code
                )));
            }
        }
        Ok(Workflows {
            workflows: file.workflow,
        })
    }

    /// The example district's workflows, compiled in.
    pub fn example() -> Result<Workflows, WorkflowError> {
        Workflows::from_toml_str(include_str!("../workflows/example-district.toml"))
    }

    pub fn get(&self, code: &str) -> Option<&Workflow> {
        self.workflows.iter().find(|workflow| workflow.code == code)
    }

    /// Every workflow of the district.
    pub fn all(&self) -> &[Workflow] {
        &self.workflows
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_example_workflows_load() {
        let workflows = Workflows::example().unwrap();
        let dibao = workflows.get("means_tested_review").unwrap();
        assert!(dibao.has_publicity());
        assert_eq!(dibao.stages[0].min_investigators, 2);
        let emergency = workflows.get("emergency_evaluation").unwrap();
        assert!(!emergency.has_publicity());
        assert_eq!(emergency.stages[0].kind, StageKind::AssistFirst);
        assert!(dibao.home_visit_sample().is_none());
        // Issue 20 item 11: 特困 has the county's home-visit sample, at the district.
        let tekun = workflows.get("extreme_poverty_review").unwrap();
        assert!(tekun.has_publicity());
        let sample = tekun.home_visit_sample().unwrap();
        assert_eq!(sample.tier, Tier::District);
        assert_eq!(sample.roles, vec!["center_reviewer".to_owned()]);
    }

    #[test]
    fn malformed_workflows_are_refused() {
        let no_decision = "[[workflow]]\ncode = \"x\"\nstages = [{ kind = \"investigation\", roles = [\"street_reviewer\"], min_investigators = 1 }]";
        assert!(Workflows::from_toml_str(no_decision).is_err());
        let unknown_role = "[[workflow]]\ncode = \"x\"\nstages = [{ kind = \"investigation\", roles = [\"mayor\"], min_investigators = 1 }, { kind = \"decision\", roles = [\"center_approver\"] }]";
        assert!(Workflows::from_toml_str(unknown_role).is_err());
        let twice = "[[workflow]]\ncode = \"x\"\nstages = [{ kind = \"decision\", roles = [\"center_approver\"] }, { kind = \"decision\", roles = [\"center_approver\"] }]";
        assert!(Workflows::from_toml_str(twice).is_err());
        let no_relative_visit = "[[workflow]]\ncode = \"x\"\nstages = [{ kind = \"investigation\", roles = [\"street_reviewer\"], min_investigators = 1 }, { kind = \"decision\", roles = [\"center_approver\"] }]";
        assert!(Workflows::from_toml_str(no_relative_visit).is_err());
        let auditor_visits = "[[workflow]]\ncode = \"x\"\nstages = [{ kind = \"investigation\", roles = [\"street_reviewer\"], min_investigators = 1, relative_visit = { roles = [\"auditor\"], tier = \"district\" } }, { kind = \"decision\", roles = [\"center_approver\"] }]";
        assert!(Workflows::from_toml_str(auditor_visits).is_err());
        let sample_at_investigation = "[[workflow]]\ncode = \"x\"\nstages = [{ kind = \"investigation\", roles = [\"street_reviewer\"], min_investigators = 1, relative_visit = { roles = [\"center_reviewer\"], tier = \"district\" }, home_visit_sample = { roles = [\"center_reviewer\"], tier = \"district\" } }, { kind = \"decision\", roles = [\"center_approver\"] }]";
        assert!(Workflows::from_toml_str(sample_at_investigation).is_err());
        let sample_by_auditor = "[[workflow]]\ncode = \"x\"\nstages = [{ kind = \"investigation\", roles = [\"street_reviewer\"], min_investigators = 1, relative_visit = { roles = [\"center_reviewer\"], tier = \"district\" } }, { kind = \"decision\", roles = [\"center_approver\"], home_visit_sample = { roles = [\"auditor\"], tier = \"district\" } }]";
        assert!(Workflows::from_toml_str(sample_by_auditor).is_err());
    }
}
