//! The review case (案件): a stage machine driven by the workflow, with the rules that make
//! every step accountable — who may act at which stage and tier, recusal (回避: the registered
//! official of a relative-of-official case takes no part in it), one four-eyes rule (an officer
//! acts in one role at one tier of a case; whoever took part in a case cannot decide it),
//! relatives of officials needing the workflow's extra home visit, no decision before publicity
//! ends or while an objection is open, decisions that depart from the policy engine's result
//! only with a written justification, the assist-first cap, and deadline breaches; for a
//! workflow with the district's home-visit sample (特困), a case joins one drawn sample and, if
//! sampled, is decided only after the district's visit.
//!
//! Pure, in the shape of a cqrs-es aggregate: a command is a named-field struct of domain
//! values ([`Decide`], [`RecordOpinion`], …, gathered in [`CaseCommand`]);
//! [`CaseState::handle`] decides it into the events to append, or refuses it with a
//! [`CaseError`]; [`CaseState::apply`] only folds an event into the state, and
//! [`CaseState::replay`] folds a whole stream. The service parses requests into commands,
//! loads the case (and, for opinions, decisions and reassessments, the policy engine's result,
//! an [`Evaluation`]), calls `handle` once and appends what it returns. The tests read as
//! given events → command → expected events.
//!
//! Every command by an officer goes through [`CaseState::authorize`] with the [`Act`] it
//! performs; the history of who did what ([`CaseState::acted`]) is folded from the events that
//! name an acting officer and is never cleared, so reopening a case forgets nothing. Naming
//! someone (an investigator) is not acting.

use std::collections::{BTreeMap, BTreeSet};

use sunshine_domain::{CreditCode, DueDate, Money, Month, OrgTier, OrgUnitCode};
use sunshine_policy::ProgramCode;
use sunshine_proto::v1 as pb;
use time::Date;

pub use sunshine_proto::dates::from_date as proto_date;
use sunshine_proto::dates::to_date as date_of;

pub use crate::events::CaseEvent;
use crate::workflow::{StageKind, Tier, Workflow, Workflows};

/// An acting officer, from the verified token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Officer {
    pub subject: String,
    pub role: String,
    pub org_unit: OrgUnitCode,
}

impl Officer {
    pub fn tier(&self) -> Tier {
        tier_of_code(&self.org_unit)
    }

    pub fn to_proto(&self) -> pb::CaseOfficer {
        pb::CaseOfficer {
            subject: self.subject.clone(),
            role: self.role.clone(),
            org_unit_code: self.org_unit.as_str().to_owned(),
        }
    }
}

/// Why a command is refused; each maps to one gRPC code in the service's API.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CaseError {
    /// PERMISSION_DENIED, with the rule that forbids it.
    #[error("not allowed: {0}")]
    NotAllowed(String),
    /// FAILED_PRECONDITION: the case is not in a state that allows it.
    #[error("not now: {0}")]
    NotNow(String),
    /// INVALID_ARGUMENT on one field.
    #[error("{field}: {reason}")]
    Invalid { field: String, reason: String },
}

/// The recusal rule, as every refusal states it.
pub const RECUSAL_RULE: &str = "recusal (回避): the registered official of a relative of this household takes no part in its case";
/// The four-eyes rule's two halves, as refusals state them.
pub const ONE_SEAT_RULE: &str = "four eyes: one officer acts in one role at one tier of a case";
pub const INDEPENDENT_DECISION_RULE: &str = "four eyes: an officer who took part in the case (accepted, investigated, reviewed or answered it) cannot decide it";

/// Where the case stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CaseStatus {
    Open,
    /// Approved; the benefit runs.
    Approved,
    Rejected,
    Withdrawn,
    /// Approved once, the benefit has ended.
    Terminated,
}

/// What an officer does to a case: the unit of authorization and of the acted history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Act {
    /// 受理: accepted the application (at intake).
    Accept,
    AssignInvestigators,
    /// An assigned investigator's home visit.
    Visit,
    /// The extra home visit of a relative-of-official case (the workflow's `relative_visit`).
    RelativeVisit,
    RequestVerification,
    Opinion,
    StartPublicity,
    AnswerObjection,
    AssistFirst,
    Decide,
    NotifyRefusal,
    ReturnForMaterial,
    Withdraw,
    ExtendDeadline,
    /// The district draws its home-visit sample over the case's batch (the workflow's
    /// `home_visit_sample`).
    DrawSample,
    /// The district's home visit of a sampled case.
    SampleVisit,
}

/// Roles of the acts that are not workflow stages.
const RETURN_ROLES: &[&str] = &["street_reviewer", "center_reviewer"];
const WITHDRAW_ROLES: &[&str] = &["village_clerk", "street_reviewer", "center_reviewer"];
const EXTEND_ROLES: &[&str] = &["street_reviewer", "center_reviewer", "center_approver"];
const NOTIFY_REFUSAL_ROLES: &[&str] = &["village_clerk", "street_reviewer", "center_reviewer"];

impl Act {
    /// The roles that may ever perform the act, over every workflow of the district: the
    /// roles of its stage kind (for a visit also the `relative_visit` roles, for an answer to
    /// an objection the publicity's), or its fixed list. A role outside it is refused at the
    /// RPC's gate, before any case is looked up; the case's own workflow, stage and tier are
    /// the aggregate's ([`CaseState::authorize`]).
    pub fn roles_ever(self, workflows: &Workflows) -> BTreeSet<String> {
        let fixed = |roles: &[&str]| roles.iter().map(|role| (*role).to_owned()).collect();
        let of_stage = |kind: StageKind| -> BTreeSet<String> {
            workflows
                .all()
                .iter()
                .filter_map(|workflow| workflow.stage_of(kind))
                .flat_map(|stage| stage.roles.iter().cloned())
                .collect()
        };
        match self {
            Act::Accept => BTreeSet::new(),
            Act::RelativeVisit => workflows
                .all()
                .iter()
                .filter_map(|workflow| workflow.stage_of(StageKind::Investigation))
                .filter_map(|stage| stage.relative_visit.as_ref())
                .flat_map(|rule| rule.roles.iter().cloned())
                .collect(),
            Act::AnswerObjection => of_stage(StageKind::Publicity),
            Act::DrawSample | Act::SampleVisit => workflows
                .all()
                .iter()
                .filter_map(Workflow::home_visit_sample)
                .flat_map(|rule| rule.roles.iter().cloned())
                .collect(),
            Act::ReturnForMaterial => fixed(RETURN_ROLES),
            Act::Withdraw => fixed(WITHDRAW_ROLES),
            Act::ExtendDeadline => fixed(EXTEND_ROLES),
            Act::NotifyRefusal => fixed(NOTIFY_REFUSAL_ROLES),
            Act::AssignInvestigators
            | Act::Visit
            | Act::RequestVerification
            | Act::Opinion
            | Act::StartPublicity
            | Act::AssistFirst
            | Act::Decide => self.stage().map(of_stage).unwrap_or_default(),
        }
    }

    /// The workflow stage the act belongs to, for acts that are a stage's work.
    pub fn stage(self) -> Option<StageKind> {
        Some(match self {
            Act::AssignInvestigators | Act::Visit | Act::RelativeVisit => StageKind::Investigation,
            Act::RequestVerification => StageKind::Verification,
            Act::Opinion => StageKind::PreliminaryOpinion,
            Act::StartPublicity => StageKind::Publicity,
            Act::AssistFirst => StageKind::AssistFirst,
            Act::Decide | Act::DrawSample | Act::SampleVisit => StageKind::Decision,
            Act::Accept
            | Act::AnswerObjection
            | Act::NotifyRefusal
            | Act::ReturnForMaterial
            | Act::Withdraw
            | Act::ExtendDeadline => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Act::Accept => "accept",
            Act::AssignInvestigators => "assign_investigators",
            Act::Visit => "home_visit",
            Act::RelativeVisit => "relative_of_official_visit",
            Act::RequestVerification => "request_verification",
            Act::Opinion => "preliminary_opinion",
            Act::StartPublicity => "start_publicity",
            Act::AnswerObjection => "answer_objection",
            Act::AssistFirst => "assist_first",
            Act::Decide => "decide",
            Act::NotifyRefusal => "notify_refusal",
            Act::ReturnForMaterial => "return_for_material",
            Act::Withdraw => "withdraw",
            Act::ExtendDeadline => "extend_deadline",
            Act::DrawSample => "draw_home_visit_sample",
            Act::SampleVisit => "home_visit_sample_visit",
        }
    }

    /// Acts that take part in the merits: whoever did one may not decide the case. Deciding,
    /// extending the time limit, notifying a refusal and withdrawing (on the household's
    /// request) do not judge the case; nor does drawing the home-visit sample (a
    /// deterministic draw anyone recomputes) — the sample's visit does.
    fn takes_part(self) -> bool {
        !matches!(
            self,
            Act::Decide
                | Act::ExtendDeadline
                | Act::NotifyRefusal
                | Act::Withdraw
                | Act::DrawSample
        )
    }
}

/// One officer's act on the case, as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acted {
    pub subject: String,
    /// Empty for events written before roles were recorded (then only the tier is compared).
    pub role: String,
    pub tier: Tier,
    pub act: Act,
}

/// A home visit of the current investigation round.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Visit {
    pub subject: String,
    pub role: String,
    pub tier: Tier,
    pub relative_of_official_visit: bool,
}

/// A recorded deadline breach.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Breach {
    pub due_on: Date,
    pub provisional: bool,
    pub detected_on: Date,
}

/// The first month after `date` (changes take effect from the following month); `None` after
/// 9999-12.
pub fn following_month(date: Date) -> Option<Month> {
    Month::of(date).next()
}

/// Working-day limits of one case, computed by the caller from the policy and the calendar
/// (on every read, so a holiday notice added later corrects provisional dates).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeadlineLimits {
    /// A limit the case's rules do not set is `None` (特困 has no investigation start and no
    /// whole-case review limit, dibao no street-town limit).
    pub investigation_start: Option<DueDate>,
    pub review: Option<DueDate>,
    pub review_extended: Option<DueDate>,
    /// 特困: the street-town's investigation and opinion, from acceptance.
    pub street_town_review: Option<DueDate>,
    /// From the district's receipt of the street-town opinion, once there is one.
    pub district_decision: Option<DueDate>,
    /// From a rejection, until the applicant is notified.
    pub refusal_notice: Option<DueDate>,
}

/// A date that is not a working-day count (re-review months): never provisional.
fn exact(date: Date) -> DueDate {
    DueDate {
        date,
        provisional: false,
    }
}

/// The case, folded from its events.
#[derive(Debug, Clone, PartialEq)]
pub struct CaseState {
    pub case_id: String,
    pub household_id: String,
    pub program_code: String,
    pub workflow: Workflow,
    pub stage: usize,
    pub status: CaseStatus,
    /// Where the household is registered now (it follows the household's moves).
    pub hukou_org_unit: OrgUnitCode,
    pub relative_of_official: bool,
    pub accepted_by: String,
    /// The day intake accepted the application: the statutory deadlines run from it.
    pub accepted_on: Option<Date>,
    /// Named by the assigner. Naming is not acting: these are not in [`CaseState::acted`].
    pub investigators: Vec<String>,
    /// Visits of the current investigation round (a reopened investigation starts over).
    pub visits: Vec<Visit>,
    /// Every act of every officer on this case, in order; append-only, never cleared.
    pub acted: Vec<Acted>,
    /// Token subjects recused from the case (回避).
    pub recused: BTreeSet<String>,
    pub pending_verifications: BTreeSet<String>,
    pub publicity: Option<(Date, Date)>,
    pub open_objections: BTreeSet<String>,
    /// The latest recorded breach of each deadline.
    pub breached: BTreeMap<String, Breach>,
    /// The whole-case limit was extended (30 → 45 working days).
    pub extended: bool,
    /// When the street-town's opinion was recorded (the district decision's clock starts).
    pub opinion_on: Option<Date>,
    /// The running benefit's monthly amount.
    pub benefit: Option<Money>,
    pub re_review_due: Option<Date>,
    pub rejected_on: Option<Date>,
    pub refusal_notified: bool,
    /// The district's home-visit sample the case was drawn in (特困), if any.
    pub home_visit_sample: Option<SampleMembership>,
    /// The district's visit of a sampled case was recorded.
    pub home_visit_sample_visited: bool,
}

/// A case's place in a drawn home-visit sample.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SampleMembership {
    pub sample_id: String,
    pub sampled: bool,
    /// The draw as recorded on this case (the same on every case of the batch).
    pub record: pb::HomeVisitSampleDrawn,
}

fn tier_of_code(code: &OrgUnitCode) -> Tier {
    match code.tier() {
        OrgTier::District => Tier::District,
        OrgTier::StreetTown => Tier::StreetTown,
        OrgTier::VillageCommunity => Tier::VillageCommunity,
    }
}

fn tier_of(code: &str) -> Option<Tier> {
    OrgUnitCode::parse(code)
        .ok()
        .map(|code| tier_of_code(&code))
}

// ---- Commands ----

/// The policy engine's result for the case's household and program, evaluated by the service
/// after it loaded the case; or why the household cannot be evaluated, which refuses the
/// command (`FAILED_PRECONDITION`) once the officer is allowed to give it.
pub type Evaluation = Result<pb::PolicyResult, Unassessable>;

/// Why the policy engine could not evaluate the case's household (not registered, facts the
/// rules cannot use, a rule that cannot be applied).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Unassessable(pub String);

/// Names the investigators of this round (naming is not acting).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssignInvestigators {
    pub by: Officer,
    pub investigators: Vec<Officer>,
}

/// An assigned investigator's home visit, or the extra visit a relative of an official needs.
/// The findings are sealed by the service only once the visit is allowed (sealing creates the
/// case's data key), into the emitted `HomeVisitRecorded.sealed_findings`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordHomeVisit {
    pub by: Officer,
    pub visited_on: Date,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestVerification {
    pub by: Officer,
    pub department_codes: Vec<String>,
}

/// A department's answer (appended by department-integration, taken in by the case opener).
#[derive(Debug, Clone, PartialEq)]
pub struct AnswerVerification {
    pub answer: pb::VerificationAnswered,
}

/// Department integration's check report (its CheckReportIssued, taken in by the case opener).
#[derive(Debug, Clone, PartialEq)]
pub struct AttachCheckReport {
    pub report: pb::CheckReportIssued,
}

/// The street-town's preliminary opinion (初审意见), decided with the engine's [`Evaluation`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordOpinion {
    pub by: Officer,
    pub on: Date,
    pub recommend_approval: bool,
    /// `None`: the amount the policy engine found.
    pub proposed_amount: Option<Money>,
    pub opinion: String,
    pub departure_justification: String,
}

/// The public notice (公示) for `first_day..=last_day` (the policy's publicity days).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartPublicity {
    pub by: Officer,
    pub first_day: Date,
    pub last_day: Date,
}

/// A public objection (appended by disclosure, taken in by the case opener).
#[derive(Debug, Clone, PartialEq)]
pub struct ReceiveObjection {
    pub objection: pb::ObjectionReceived,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnswerObjection {
    pub by: Officer,
    pub objection_id: String,
    pub upheld: bool,
    pub answer: String,
}

/// 先行救助: pays at once, never above the policy's cap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantAssistFirst {
    pub by: Officer,
    pub amount: Money,
    pub cap: Money,
    pub reason: String,
}

/// What the approver decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The benefit is paid from `start_month`.
    Approve {
        start_month: Month,
    },
    Reject,
}

/// When an approved case is reviewed again (复核), from the policy as of the decision: yearly
/// where income is stable (extreme-poverty support, 特困), half-yearly otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReReviewDue {
    pub variable_income: Date,
    pub stable_income: Date,
}

/// The district's decision (审核确认), decided with the engine's [`Evaluation`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decide {
    pub by: Officer,
    pub on: Date,
    pub verdict: Verdict,
    /// The monthly benefit approved (compared with the engine's; a rejection's departure
    /// records it as given).
    pub monthly_amount: Money,
    pub reasons: Vec<String>,
    pub departure_justification: String,
    pub re_review: ReReviewDue,
    /// The care institution that supports a 特困 person centrally (集中供养), which the benefit
    /// is paid to; `None`: the household's own account ([`CaseState::payee_of`]).
    pub care_institution: Option<CreditCode>,
}

/// Records that the rejected applicant was told of the refusal and its reasons.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotifyRefusal {
    pub by: Officer,
    pub on: Date,
    pub channel: String,
}

/// Sends the case back for supplementary material: investigation again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReturnForMaterial {
    pub by: Officer,
    pub missing_materials: Vec<String>,
    pub reason: String,
}

/// The household withdraws the application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Withdraw {
    pub by: Officer,
    pub reason: String,
}

/// Extends the whole-case limit once (30 → 45 working days), with the recorded reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtendDeadline {
    pub by: Officer,
    pub reason: String,
}

/// Intake heard a relation to a registered official after the case opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recuse {
    pub official_subject: String,
    pub registration_id: String,
}

/// The household moved (intake's `HouseholdMoved`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FollowHousehold {
    pub household_id: String,
    pub to: OrgUnitCode,
}

/// Dynamic management: the household changed (or a member died), heard on `on`; decided with
/// the engine's new [`Evaluation`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reassess {
    /// The day review hears the change.
    pub on: Date,
    pub change: Change,
}

/// What changed in a household whose benefit runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Its circumstances (income, members): effective from the month after the day it is heard.
    Circumstances,
    /// A member died on `date_of_death`: effective from the month after the death, however
    /// late it is recorded — a month paid after it is then recovered by payment.
    Death { date_of_death: Date },
}

impl Change {
    /// The text `BenefitAdjusted` and `BenefitTerminated` carry as their cause.
    pub fn cause(self) -> &'static str {
        match self {
            Change::Circumstances => "change of circumstances",
            Change::Death { .. } => "member died",
        }
    }

    /// The month the reassessment takes effect from, for a change heard on `on`: the month
    /// after the death (a date after `on`, which intake refuses, counts as `on`), or after `on`.
    pub fn effective_month(self, on: Date) -> Option<Month> {
        match self {
            Change::Circumstances => following_month(on),
            Change::Death { date_of_death } => following_month(date_of_death.min(on)),
        }
    }
}

/// The deadline watch, on `on`, with the case's deadlines as the calendar reads now.
/// Records the district's draw on one case of its batch (the same record on each). A case
/// already in this sample appends nothing; in another sample, it is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinHomeVisitSample {
    pub by: Officer,
    pub record: pb::HomeVisitSampleDrawn,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordBreaches {
    pub on: Date,
    pub deadlines: Vec<(&'static str, DueDate)>,
}

/// Everything a case can be asked to do: by an officer (through the API) or by a reaction to
/// another service's event (the case opener, the deadline watch).
#[derive(Debug, Clone, PartialEq)]
pub enum CaseCommand {
    AssignInvestigators(AssignInvestigators),
    RecordHomeVisit(RecordHomeVisit),
    RequestVerification(RequestVerification),
    AnswerVerification(AnswerVerification),
    AttachCheckReport(AttachCheckReport),
    RecordOpinion(RecordOpinion, Evaluation),
    StartPublicity(StartPublicity),
    ReceiveObjection(ReceiveObjection),
    AnswerObjection(AnswerObjection),
    GrantAssistFirst(GrantAssistFirst),
    Decide(Decide, Evaluation),
    NotifyRefusal(NotifyRefusal),
    ReturnForMaterial(ReturnForMaterial),
    Withdraw(Withdraw),
    ExtendDeadline(ExtendDeadline),
    Recuse(Recuse),
    FollowHousehold(FollowHousehold),
    Reassess(Reassess, Evaluation),
    RecordBreaches(RecordBreaches),
    JoinHomeVisitSample(JoinHomeVisitSample),
}

macro_rules! command_from {
    ($($command:ident),+ $(,)?) => {
        $(
            impl From<$command> for CaseCommand {
                fn from(command: $command) -> CaseCommand {
                    CaseCommand::$command(command)
                }
            }
        )+
    };
}

command_from!(
    AssignInvestigators,
    RecordHomeVisit,
    RequestVerification,
    AnswerVerification,
    AttachCheckReport,
    StartPublicity,
    ReceiveObjection,
    AnswerObjection,
    GrantAssistFirst,
    NotifyRefusal,
    ReturnForMaterial,
    Withdraw,
    ExtendDeadline,
    Recuse,
    FollowHousehold,
    RecordBreaches,
    JoinHomeVisitSample,
);

/// Why a case stream could not be folded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FoldError {
    #[error("the case follows workflow {0}, which the district's workflows do not have")]
    UnknownWorkflow(String),
    #[error("the case's opening: {0}")]
    Opened(CaseError),
}

// ---- The fold ----

impl CaseState {
    /// A new case from its `CaseOpened`, following `workflow` (the one it names).
    fn opened(opened: &pb::CaseOpened, workflow: Workflow) -> Result<CaseState, CaseError> {
        let hukou_org_unit = OrgUnitCode::parse(&opened.hukou_org_unit_code).map_err(|error| {
            CaseError::Invalid {
                field: "hukou_org_unit_code".into(),
                reason: error.to_string(),
            }
        })?;
        let mut acted = Vec::new();
        if !opened.accepted_by.is_empty()
            && let Some(tier) = tier_of(&opened.accepted_org_unit_code)
        {
            acted.push(Acted {
                subject: opened.accepted_by.clone(),
                role: opened.accepted_by_role.clone(),
                tier,
                act: Act::Accept,
            });
        }
        Ok(CaseState {
            case_id: opened.case_id.clone(),
            household_id: opened.household_id.clone(),
            program_code: opened.program_code.clone(),
            workflow,
            stage: 0,
            status: CaseStatus::Open,
            hukou_org_unit,
            relative_of_official: opened.relative_of_official,
            accepted_by: opened.accepted_by.clone(),
            accepted_on: date_of(opened.accepted_on.as_ref()),
            investigators: Vec::new(),
            visits: Vec::new(),
            acted,
            recused: opened.recused_subjects.iter().cloned().collect(),
            pending_verifications: BTreeSet::new(),
            publicity: None,
            open_objections: BTreeSet::new(),
            breached: BTreeMap::new(),
            extended: false,
            opinion_on: None,
            benefit: None,
            re_review_due: None,
            rejected_on: None,
            refusal_notified: false,
            home_visit_sample: None,
            home_visit_sample_visited: false,
        })
    }

    /// Folds a case stream's events, in order: `None` until its `CaseOpened` (events before it
    /// are not the case's), then every event applied. The workflow is the one the case names.
    pub fn replay<'a>(
        workflows: &Workflows,
        events: impl IntoIterator<Item = &'a CaseEvent>,
    ) -> Result<Option<CaseState>, FoldError> {
        let mut case: Option<CaseState> = None;
        for event in events {
            match (&mut case, event) {
                (None, CaseEvent::Opened(opened)) => {
                    let workflow = workflows
                        .get(&opened.workflow)
                        .ok_or_else(|| FoldError::UnknownWorkflow(opened.workflow.clone()))?
                        .clone();
                    case = Some(CaseState::opened(opened, workflow).map_err(FoldError::Opened)?);
                }
                (Some(current), event) => current.apply(event),
                (None, _) => {}
            }
        }
        Ok(case)
    }

    fn note_actor(&mut self, officer: Option<&pb::CaseOfficer>, act: Act) {
        if let Some(officer) = officer
            && let Some(tier) = tier_of(&officer.org_unit_code)
        {
            self.acted.push(Acted {
                subject: officer.subject.clone(),
                role: officer.role.clone(),
                tier,
                act,
            });
        }
    }

    /// Folds one event.
    pub fn apply(&mut self, event: &CaseEvent) {
        match event {
            CaseEvent::Opened(_) => {}
            CaseEvent::StageEntered(entered) => {
                if let Some(kind) = StageKind::parse(&entered.stage)
                    && let Some(index) = self.workflow.position(kind)
                {
                    self.stage = index;
                    if kind == StageKind::Investigation {
                        // A reopened investigation needs its visits again; who acted is kept.
                        self.visits.clear();
                    }
                }
            }
            CaseEvent::InvestigatorsAssigned(assigned) => {
                self.note_actor(assigned.assigned_by.as_ref(), Act::AssignInvestigators);
                self.investigators = assigned
                    .investigators
                    .iter()
                    .map(|officer| officer.subject.clone())
                    .collect();
            }
            CaseEvent::HomeVisitRecorded(visit) if visit.home_visit_sample_visit => {
                self.note_actor(visit.visitor.as_ref(), Act::SampleVisit);
                self.home_visit_sample_visited = true;
            }
            CaseEvent::HomeVisitRecorded(visit) => {
                let act = if visit.relative_of_official_visit {
                    Act::RelativeVisit
                } else {
                    Act::Visit
                };
                self.note_actor(visit.visitor.as_ref(), act);
                if let Some(visitor) = &visit.visitor
                    && let Some(tier) = tier_of(&visitor.org_unit_code)
                {
                    self.visits.push(Visit {
                        subject: visitor.subject.clone(),
                        role: visitor.role.clone(),
                        tier,
                        relative_of_official_visit: visit.relative_of_official_visit,
                    });
                }
            }
            CaseEvent::VerificationRequested(requested) => {
                self.note_actor(requested.requested_by.as_ref(), Act::RequestVerification);
                self.pending_verifications = requested.department_codes.iter().cloned().collect();
            }
            CaseEvent::VerificationAnswered(answered) => {
                self.pending_verifications.remove(&answered.department_code);
            }
            CaseEvent::CheckReportAttached(_) => self.pending_verifications.clear(),
            CaseEvent::OpinionRecorded(opinion) => {
                self.note_actor(opinion.officer.as_ref(), Act::Opinion);
                self.opinion_on = date_of(opinion.recorded_on.as_ref());
            }
            CaseEvent::PublicityStarted(started) => {
                self.note_actor(started.started_by.as_ref(), Act::StartPublicity);
                if let (Some(first), Some(last)) = (
                    date_of(started.first_day.as_ref()),
                    date_of(started.last_day.as_ref()),
                ) {
                    self.publicity = Some((first, last));
                }
            }
            CaseEvent::ObjectionReceived(objection) => {
                self.open_objections.insert(objection.objection_id.clone());
            }
            CaseEvent::ObjectionAnswered(answered) => {
                self.note_actor(answered.officer.as_ref(), Act::AnswerObjection);
                self.open_objections.remove(&answered.objection_id);
            }
            CaseEvent::AssistFirstGranted(granted) => {
                self.note_actor(granted.officer.as_ref(), Act::AssistFirst);
            }
            CaseEvent::Approved(approved) => {
                self.note_actor(approved.approver.as_ref(), Act::Decide);
                self.status = CaseStatus::Approved;
                self.benefit = approved
                    .monthly_amount
                    .as_ref()
                    .map(|money| Money::from_fen(money.fen));
            }
            CaseEvent::Rejected(rejected) => {
                self.note_actor(rejected.approver.as_ref(), Act::Decide);
                self.status = CaseStatus::Rejected;
                self.rejected_on = date_of(rejected.decided_on.as_ref());
            }
            CaseEvent::RefusalNotified(notified) => {
                self.note_actor(notified.officer.as_ref(), Act::NotifyRefusal);
                self.refusal_notified = true;
            }
            CaseEvent::DeadlineBreached(breached) => {
                if let (Some(due_on), Some(detected_on)) = (
                    date_of(breached.due_on.as_ref()),
                    date_of(breached.detected_on.as_ref()),
                ) {
                    self.breached.insert(
                        breached.deadline.clone(),
                        Breach {
                            due_on,
                            provisional: breached.provisional,
                            detected_on,
                        },
                    );
                }
            }
            // The opinion or decision it accompanies records the officer.
            CaseEvent::DepartedFromPolicy(_) | CaseEvent::BenefitSuspended(_) => {}
            CaseEvent::Returned(returned) => {
                self.note_actor(returned.officer.as_ref(), Act::ReturnForMaterial);
            }
            CaseEvent::Withdrawn(withdrawn) => {
                self.note_actor(withdrawn.officer.as_ref(), Act::Withdraw);
                self.status = CaseStatus::Withdrawn;
            }
            CaseEvent::DeadlineExtended(extended) => {
                self.note_actor(extended.officer.as_ref(), Act::ExtendDeadline);
                self.extended = true;
            }
            CaseEvent::ReReviewScheduled(scheduled) => {
                self.re_review_due = date_of(scheduled.due_on.as_ref());
            }
            CaseEvent::BenefitAdjusted(adjusted) => {
                self.benefit = adjusted
                    .monthly_amount
                    .as_ref()
                    .map(|money| Money::from_fen(money.fen));
            }
            CaseEvent::BenefitTerminated(_) => {
                self.status = CaseStatus::Terminated;
                self.benefit = None;
            }
            CaseEvent::OfficialRecused(recused) => {
                self.recused.insert(recused.official_subject.clone());
                // A registered relation makes it a relative-of-official case from now on.
                self.relative_of_official = true;
            }
            CaseEvent::FollowedHousehold(followed) => {
                if let Ok(code) = OrgUnitCode::parse(&followed.to_org_unit_code) {
                    self.hukou_org_unit = code;
                }
            }
            CaseEvent::HomeVisitSampleDrawn(drawn) => {
                self.note_actor(drawn.drawn_by.as_ref(), Act::DrawSample);
                self.home_visit_sample = Some(SampleMembership {
                    sample_id: drawn.sample_id.clone(),
                    sampled: drawn.sampled_case_ids.contains(&self.case_id),
                    record: drawn.clone(),
                });
            }
        }
    }
}

// ---- Reading the state ----

impl CaseState {
    pub fn current_stage(&self) -> Option<StageKind> {
        self.workflow.stage(self.stage).map(|stage| stage.kind)
    }

    /// Whether `subject` is recused from this case.
    pub fn is_recused(&self, subject: &str) -> bool {
        self.recused.contains(subject)
    }

    /// The day the district receives the street-town's opinion: the day after its public
    /// notice's last day in a workflow with publicity (the first day it may decide), else the
    /// opinion's day. `None` before there is one.
    pub fn district_received_on(&self) -> Option<Date> {
        if self.workflow.has_publicity() {
            let (_, last_day) = self.publicity?;
            last_day.next_day()
        } else {
            self.opinion_on
        }
    }

    /// Re-reviewed yearly rather than half-yearly: extreme-poverty support (特困), whose income
    /// changes little.
    pub fn income_is_stable(&self) -> bool {
        self.program_code == ProgramCode::Tekun.as_str()
    }

    /// The statutory deadlines of the case now (name, due date).
    pub fn deadlines(&self, limits: &DeadlineLimits) -> Vec<(&'static str, DueDate)> {
        let mut due = Vec::new();
        let investigating = self.current_stage() == Some(StageKind::Investigation);
        if self.status == CaseStatus::Open
            && investigating
            && self.investigators.is_empty()
            && self.visits.is_empty()
            && let Some(start) = limits.investigation_start
        {
            due.push(("investigation_start", start));
        }
        if self.status == CaseStatus::Open
            && let Some(review) = if self.extended {
                limits.review_extended
            } else {
                limits.review
            }
        {
            due.push(("review", review));
        }
        if self.status == CaseStatus::Open
            && self.opinion_on.is_none()
            && let Some(street_town) = limits.street_town_review
        {
            due.push(("street_town_review", street_town));
        }
        if self.status == CaseStatus::Open
            && self.current_stage() == Some(StageKind::Decision)
            && let Some(district) = limits.district_decision
        {
            due.push(("district_decision", district));
        }
        if self.status == CaseStatus::Approved
            && let Some(re_review) = self.re_review_due
        {
            due.push(("re_review", exact(re_review)));
        }
        if self.status == CaseStatus::Rejected
            && !self.refusal_notified
            && let Some(notice) = limits.refusal_notice
        {
            due.push(("refusal_notice", notice));
        }
        due
    }

    /// The deadlines breached as of `today`, as the calendar reads now: a breach recorded on a
    /// provisional date no longer counts if the deadline, recomputed, has not passed.
    pub fn breaches_now(&self, today: Date, deadlines: &[(&str, DueDate)]) -> Vec<String> {
        self.breached
            .iter()
            .filter(|(name, recorded)| {
                let current = deadlines
                    .iter()
                    .find(|(current, _)| current == name)
                    .map(|(_, due)| *due);
                match current {
                    Some(due) if recorded.provisional && due.date != recorded.due_on => {
                        today > due.date
                    }
                    _ => true,
                }
            })
            .map(|(name, _)| name.clone())
            .collect()
    }
}

/// A decision or opinion that departs from the engine's result needs a written justification.
fn require_justification(
    policy: &pb::PolicyResult,
    approve: bool,
    amount: Money,
    justification: &str,
) -> Result<bool, CaseError> {
    let engine_amount = engine_amount(policy).fen();
    let departs = policy.eligible != approve || (approve && engine_amount != amount.fen());
    if departs && justification.trim().is_empty() {
        return Err(CaseError::Invalid {
            field: "departure_justification".into(),
            reason: format!(
                "the policy engine found eligible={} amount={} fen; departing from it needs a written justification",
                policy.eligible, engine_amount
            ),
        });
    }
    Ok(departs)
}

// ---- Who may act ----

impl CaseState {
    /// The roles and tier that may perform `act` on this case now.
    fn rule_for(&self, act: Act) -> Result<(Vec<String>, Option<Tier>), CaseError> {
        let fixed = |roles: &[&str]| roles.iter().map(|role| (*role).to_owned()).collect();
        match act {
            Act::Accept => Err(CaseError::NotNow("a case is accepted by intake".into())),
            Act::RelativeVisit => {
                let rule = self
                    .workflow
                    .stage_of(StageKind::Investigation)
                    .and_then(|stage| stage.relative_visit.as_ref())
                    .ok_or_else(|| {
                        CaseError::NotNow("this workflow has no relative-of-official visit".into())
                    })?;
                Ok((rule.roles.clone(), Some(rule.tier)))
            }
            // Objections are heard by those who run the publicity.
            Act::AnswerObjection => {
                let stage = self
                    .workflow
                    .stage_of(StageKind::Publicity)
                    .ok_or_else(|| CaseError::NotNow("this workflow hears no objections".into()))?;
                Ok((stage.roles.clone(), stage.tier))
            }
            Act::DrawSample | Act::SampleVisit => {
                let rule = self.workflow.home_visit_sample().ok_or_else(|| {
                    CaseError::NotNow("this workflow has no district home-visit sample".into())
                })?;
                Ok((rule.roles.clone(), Some(rule.tier)))
            }
            Act::ReturnForMaterial => Ok((fixed(RETURN_ROLES), None)),
            Act::Withdraw => Ok((fixed(WITHDRAW_ROLES), None)),
            Act::ExtendDeadline => Ok((fixed(EXTEND_ROLES), None)),
            Act::NotifyRefusal => Ok((fixed(NOTIFY_REFUSAL_ROLES), None)),
            _ => {
                let stage = self
                    .workflow
                    .stage(self.stage)
                    .ok_or_else(|| CaseError::NotNow("the workflow has no current stage".into()))?;
                Ok((stage.roles.clone(), stage.tier))
            }
        }
    }

    /// Whether `officer` may perform `act` on this case now: recusal, the case's status and
    /// stage, the act's roles and tier, org scope, and the four-eyes rule. Every command by
    /// an officer asks this first.
    pub fn authorize(&self, officer: &Officer, act: Act) -> Result<(), CaseError> {
        if self.is_recused(&officer.subject) {
            return Err(CaseError::NotAllowed(RECUSAL_RULE.into()));
        }
        match act {
            Act::NotifyRefusal if self.status != CaseStatus::Rejected || self.refusal_notified => {
                return Err(CaseError::NotNow(
                    "only a rejected case not yet notified".into(),
                ));
            }
            Act::NotifyRefusal => {}
            _ if self.status != CaseStatus::Open => {
                return Err(CaseError::NotNow("the case is closed".into()));
            }
            _ => {}
        }
        if let Some(kind) = act.stage() {
            let current = self
                .current_stage()
                .ok_or_else(|| CaseError::NotNow("the workflow has no current stage".into()))?;
            if current != kind {
                return Err(CaseError::NotNow(format!(
                    "the case is at {}, not {}",
                    current.as_str(),
                    kind.as_str()
                )));
            }
        }
        let (roles, tier) = self.rule_for(act)?;
        if !roles.iter().any(|role| role == &officer.role) {
            return Err(CaseError::NotAllowed(format!(
                "{} may not {} (allowed: {})",
                officer.role,
                act.as_str(),
                roles.join(", ")
            )));
        }
        if let Some(tier) = tier
            && officer.tier() != tier
        {
            return Err(CaseError::NotAllowed(format!(
                "{} is done at the {tier:?} tier",
                act.as_str()
            )));
        }
        if !officer.org_unit.covers(&self.hukou_org_unit) {
            return Err(CaseError::NotAllowed(
                "the case is outside the officer's org unit".into(),
            ));
        }
        self.four_eyes(&officer.subject, &officer.role, officer.tier(), act)
    }

    /// The one four-eyes rule, over everything anyone really did on the case (never cleared):
    /// an officer acts in one role at one tier of a case, and whoever took part in the case
    /// cannot decide it.
    pub fn four_eyes(
        &self,
        subject: &str,
        role: &str,
        tier: Tier,
        act: Act,
    ) -> Result<(), CaseError> {
        for earlier in self
            .acted
            .iter()
            .filter(|earlier| earlier.subject == subject)
        {
            if earlier.tier != tier || (!earlier.role.is_empty() && earlier.role != role) {
                return Err(CaseError::NotAllowed(ONE_SEAT_RULE.into()));
            }
            if act == Act::Decide && earlier.act.takes_part() {
                return Err(CaseError::NotAllowed(INDEPENDENT_DECISION_RULE.into()));
            }
        }
        Ok(())
    }
}

// ---- Deciding ----

impl CaseState {
    /// Decides `command` against the case as it stands: the events to append, in order, or why
    /// it is refused. Nothing here changes the state; [`CaseState::apply`] folds what is
    /// appended.
    pub fn handle(&self, command: CaseCommand) -> Result<Vec<CaseEvent>, CaseError> {
        match command {
            CaseCommand::AssignInvestigators(command) => self.assign_investigators(command),
            CaseCommand::RecordHomeVisit(command) => self.record_visit(command),
            CaseCommand::RequestVerification(command) => self.request_verification(command),
            CaseCommand::AnswerVerification(command) => self.answer_verification(command),
            CaseCommand::AttachCheckReport(command) => Ok(self.attach_check_report(command)),
            CaseCommand::RecordOpinion(command, policy) => self.record_opinion(command, policy),
            CaseCommand::StartPublicity(command) => self.start_publicity(command),
            CaseCommand::ReceiveObjection(command) => self.receive_objection(command),
            CaseCommand::AnswerObjection(command) => self.answer_objection(command),
            CaseCommand::GrantAssistFirst(command) => self.grant_assist_first(command),
            CaseCommand::Decide(command, policy) => self.decide(command, policy),
            CaseCommand::NotifyRefusal(command) => self.notify_refusal(command),
            CaseCommand::ReturnForMaterial(command) => self.return_for_material(command),
            CaseCommand::Withdraw(command) => self.withdraw(command),
            CaseCommand::ExtendDeadline(command) => self.extend_deadline(command),
            CaseCommand::Recuse(command) => Ok(self.recuse(command)),
            CaseCommand::FollowHousehold(command) => Ok(self.follow_household(command)),
            CaseCommand::Reassess(command, policy) => self.reassess(command, policy),
            CaseCommand::RecordBreaches(command) => Ok(self.breached_deadlines(command)),
            CaseCommand::JoinHomeVisitSample(command) => self.join_home_visit_sample(command),
        }
    }

    fn next_stage_event(&self) -> Option<CaseEvent> {
        self.workflow.stage(self.stage + 1).map(|stage| {
            CaseEvent::StageEntered(pb::StageEntered {
                case_id: self.case_id.clone(),
                stage: stage.kind.as_str().into(),
            })
        })
    }

    fn back_to_investigation(&self) -> CaseEvent {
        CaseEvent::StageEntered(pb::StageEntered {
            case_id: self.case_id.clone(),
            stage: StageKind::Investigation.as_str().into(),
        })
    }

    /// Names the investigators (at least the workflow's minimum, all different, each one who
    /// could visit: the stage's roles and tier, in scope, not recused, not seated elsewhere).
    fn assign_investigators(
        &self,
        command: AssignInvestigators,
    ) -> Result<Vec<CaseEvent>, CaseError> {
        let AssignInvestigators { by, investigators } = command;
        self.authorize(&by, Act::AssignInvestigators)?;
        let stage = self.workflow.stage(self.stage);
        let minimum = stage.map_or(1, |stage| stage.min_investigators) as usize;
        let distinct: BTreeSet<&str> = investigators
            .iter()
            .map(|investigator| investigator.subject.as_str())
            .collect();
        if distinct.len() < minimum || distinct.len() != investigators.len() {
            return Err(CaseError::Invalid {
                field: "investigators".into(),
                reason: format!("at least {minimum} different officers"),
            });
        }
        for (index, investigator) in investigators.iter().enumerate() {
            let field = format!("investigators[{index}]");
            if self.is_recused(&investigator.subject) {
                return Err(CaseError::NotAllowed(RECUSAL_RULE.into()));
            }
            if let Some(stage) = stage {
                if !stage.roles.iter().any(|role| role == &investigator.role) {
                    return Err(CaseError::Invalid {
                        field,
                        reason: format!(
                            "an investigator's role is one of {}",
                            stage.roles.join(", ")
                        ),
                    });
                }
                if let Some(tier) = stage.tier
                    && investigator.tier() != tier
                {
                    return Err(CaseError::Invalid {
                        field,
                        reason: format!("investigators sit at the {tier:?} tier"),
                    });
                }
            }
            if !investigator.org_unit.covers(&self.hukou_org_unit) {
                return Err(CaseError::Invalid {
                    field,
                    reason: "outside the case's org unit".into(),
                });
            }
            self.four_eyes(
                &investigator.subject,
                &investigator.role,
                investigator.tier(),
                Act::Visit,
            )
            .map_err(|error| match error {
                CaseError::NotAllowed(rule) => CaseError::Invalid {
                    field: format!("investigators[{index}]"),
                    reason: rule,
                },
                other => other,
            })?;
        }
        Ok(vec![CaseEvent::InvestigatorsAssigned(
            pb::InvestigatorsAssigned {
                case_id: self.case_id.clone(),
                investigators: investigators.iter().map(Officer::to_proto).collect(),
                assigned_by: Some(by.to_proto()),
            },
        )])
    }

    /// Records a home visit, by an assigned investigator or (for a relative of an official) by
    /// the workflow's `relative_visit` officers; the stage is done when every investigator has
    /// visited this round and, for a relative of an official, the extra visit was made.
    fn record_visit(&self, command: RecordHomeVisit) -> Result<Vec<CaseEvent>, CaseError> {
        let RecordHomeVisit { by, visited_on } = command;
        if self.current_stage() == Some(StageKind::Decision)
            && self.workflow.home_visit_sample().is_some()
        {
            return self.record_sample_visit(by, visited_on);
        }
        let act = if self.investigators.contains(&by.subject) {
            Act::Visit
        } else if self.relative_of_official {
            Act::RelativeVisit
        } else {
            // Everything else first, so the refusal names the real reason.
            self.authorize(&by, Act::Visit)?;
            return Err(CaseError::NotAllowed(
                "only an assigned investigator records a visit".into(),
            ));
        };
        self.authorize(&by, act)?;
        let relative_visit = act == Act::RelativeVisit;
        let mut events = vec![CaseEvent::HomeVisitRecorded(pb::HomeVisitRecorded {
            case_id: self.case_id.clone(),
            visitor: Some(by.to_proto()),
            visited_on: Some(proto_date(visited_on)),
            sealed_findings: Vec::new(),
            relative_of_official_visit: relative_visit,
            home_visit_sample_visit: false,
        })];
        let mut visitors: BTreeSet<&str> = self
            .visits
            .iter()
            .filter(|visit| !visit.relative_of_official_visit)
            .map(|visit| visit.subject.as_str())
            .collect();
        if !relative_visit {
            visitors.insert(by.subject.as_str());
        }
        let investigators_done = !self.investigators.is_empty()
            && self
                .investigators
                .iter()
                .all(|investigator| visitors.contains(investigator.as_str()));
        let relative_done = !self.relative_of_official
            || relative_visit
            || self
                .visits
                .iter()
                .any(|visit| visit.relative_of_official_visit);
        if investigators_done
            && relative_done
            && let Some(next) = self.next_stage_event()
        {
            events.push(next);
        }
        Ok(events)
    }

    fn request_verification(
        &self,
        command: RequestVerification,
    ) -> Result<Vec<CaseEvent>, CaseError> {
        let RequestVerification {
            by,
            department_codes,
        } = command;
        self.authorize(&by, Act::RequestVerification)?;
        if department_codes.is_empty() {
            return Err(CaseError::Invalid {
                field: "department_codes".into(),
                reason: "at least one department".into(),
            });
        }
        Ok(vec![CaseEvent::VerificationRequested(
            pb::VerificationRequested {
                case_id: self.case_id.clone(),
                department_codes,
                requested_by: Some(by.to_proto()),
            },
        )])
    }

    /// A department's answer; the last one pending moves the case on.
    fn answer_verification(
        &self,
        command: AnswerVerification,
    ) -> Result<Vec<CaseEvent>, CaseError> {
        let AnswerVerification { answer } = command;
        if self.current_stage() != Some(StageKind::Verification)
            || !self.pending_verifications.contains(&answer.department_code)
        {
            return Err(CaseError::NotNow(format!(
                "no verification pending from {}",
                answer.department_code
            )));
        }
        let last = self.pending_verifications.len() == 1;
        let mut events = vec![CaseEvent::VerificationAnswered(answer)];
        if last && let Some(next) = self.next_stage_event() {
            events.push(next);
        }
        Ok(events)
    }

    /// The check report attached: always recorded (a re-check's report may come after the case
    /// moved on, or closed); in the verification stage it ends the wait and moves the case on.
    fn attach_check_report(&self, command: AttachCheckReport) -> Vec<CaseEvent> {
        let AttachCheckReport { report } = command;
        let mut events = vec![CaseEvent::CheckReportAttached(pb::CheckReportAttached {
            case_id: self.case_id.clone(),
            check_id: report.check_id,
            report_version: report.report_version,
            departments: report.departments,
            overdue_departments: report.overdue_departments,
        })];
        if self.current_stage() == Some(StageKind::Verification)
            && let Some(next) = self.next_stage_event()
        {
            events.push(next);
        }
        events
    }

    /// The street-town's opinion, with the engine's result; departing from it needs a reason.
    fn record_opinion(
        &self,
        command: RecordOpinion,
        policy: Evaluation,
    ) -> Result<Vec<CaseEvent>, CaseError> {
        let RecordOpinion {
            by,
            on,
            recommend_approval,
            proposed_amount,
            opinion,
            departure_justification,
        } = command;
        self.authorize(&by, Act::Opinion)?;
        let policy = policy.map_err(|Unassessable(reason)| CaseError::NotNow(reason))?;
        let proposed = proposed_amount.unwrap_or_else(|| engine_amount(&policy));
        let departs = require_justification(
            &policy,
            recommend_approval,
            proposed,
            &departure_justification,
        )?;
        let mut events = Vec::new();
        if departs {
            events.push(self.departure(
                &by,
                StageKind::PreliminaryOpinion,
                &policy,
                recommend_approval,
                proposed,
                &departure_justification,
            ));
        }
        events.push(CaseEvent::OpinionRecorded(pb::PreliminaryOpinionRecorded {
            case_id: self.case_id.clone(),
            officer: Some(by.to_proto()),
            recommend_approval,
            proposed_amount: Some(pb::Money {
                fen: proposed.fen(),
            }),
            opinion,
            policy: Some(policy),
            departure_justification,
            recorded_on: Some(proto_date(on)),
        }));
        events.extend(self.next_stage_event());
        Ok(events)
    }

    fn departure(
        &self,
        officer: &Officer,
        stage: StageKind,
        policy: &pb::PolicyResult,
        approval: bool,
        amount: Money,
        justification: &str,
    ) -> CaseEvent {
        CaseEvent::DepartedFromPolicy(pb::DecisionDepartedFromPolicy {
            case_id: self.case_id.clone(),
            officer: Some(officer.to_proto()),
            stage: stage.as_str().into(),
            policy: Some(policy.clone()),
            recommended_or_decided_approval: approval,
            amount: Some(pb::Money { fen: amount.fen() }),
            justification: justification.to_owned(),
        })
    }

    /// Starts the public notice for `first_day..=last_day` (from the policy's publicity days).
    fn start_publicity(&self, command: StartPublicity) -> Result<Vec<CaseEvent>, CaseError> {
        let StartPublicity {
            by,
            first_day,
            last_day,
        } = command;
        self.authorize(&by, Act::StartPublicity)?;
        let mut events = vec![CaseEvent::PublicityStarted(pb::PublicityStarted {
            case_id: self.case_id.clone(),
            first_day: Some(proto_date(first_day)),
            last_day: Some(proto_date(last_day)),
            started_by: Some(by.to_proto()),
        })];
        events.extend(self.next_stage_event());
        Ok(events)
    }

    /// An objection (received through disclosure) reopens the case for investigation.
    fn receive_objection(&self, command: ReceiveObjection) -> Result<Vec<CaseEvent>, CaseError> {
        let ReceiveObjection { objection } = command;
        if self.status != CaseStatus::Open || self.publicity.is_none() {
            return Err(CaseError::NotNow(
                "objections are heard while the case is publicised".into(),
            ));
        }
        let mut events = vec![CaseEvent::ObjectionReceived(objection)];
        if self.current_stage() != Some(StageKind::Investigation) {
            events.push(self.back_to_investigation());
        }
        Ok(events)
    }

    fn answer_objection(&self, command: AnswerObjection) -> Result<Vec<CaseEvent>, CaseError> {
        let AnswerObjection {
            by,
            objection_id,
            upheld,
            answer,
        } = command;
        self.authorize(&by, Act::AnswerObjection)?;
        if !self.open_objections.contains(&objection_id) {
            return Err(CaseError::Invalid {
                field: "objection_id".into(),
                reason: "no open objection with this id".into(),
            });
        }
        if answer.trim().is_empty() {
            return Err(CaseError::Invalid {
                field: "answer".into(),
                reason: "an answer states its grounds".into(),
            });
        }
        Ok(vec![CaseEvent::ObjectionAnswered(pb::ObjectionAnswered {
            case_id: self.case_id.clone(),
            objection_id,
            officer: Some(by.to_proto()),
            upheld,
            answer,
        })])
    }

    /// 先行救助: pays at once, never above the policy cap.
    fn grant_assist_first(&self, command: GrantAssistFirst) -> Result<Vec<CaseEvent>, CaseError> {
        let GrantAssistFirst {
            by,
            amount,
            cap,
            reason,
        } = command;
        self.authorize(&by, Act::AssistFirst)?;
        if amount.fen() <= 0 {
            return Err(CaseError::Invalid {
                field: "amount".into(),
                reason: "must be positive".into(),
            });
        }
        if amount > cap {
            return Err(CaseError::Invalid {
                field: "amount".into(),
                reason: format!("exceeds the assist-first cap of {} fen", cap.fen()),
            });
        }
        let mut events = vec![CaseEvent::AssistFirstGranted(pb::AssistFirstGranted {
            case_id: self.case_id.clone(),
            officer: Some(by.to_proto()),
            amount: Some(pb::Money { fen: amount.fen() }),
            cap: Some(pb::Money { fen: cap.fen() }),
            reason,
        })];
        events.extend(self.next_stage_event());
        Ok(events)
    }

    /// Approves or rejects: four eyes, publicity over, objections answered, departures justified.
    fn decide(&self, command: Decide, policy: Evaluation) -> Result<Vec<CaseEvent>, CaseError> {
        let Decide {
            by,
            on,
            verdict,
            monthly_amount,
            reasons,
            departure_justification,
            re_review,
            care_institution,
        } = command;
        self.authorize(&by, Act::Decide)?;
        let care_institution_code = self.payee_of(&verdict, care_institution)?;
        let policy = policy.map_err(|Unassessable(reason)| CaseError::NotNow(reason))?;
        if !self.open_objections.is_empty() {
            return Err(CaseError::NotNow("an objection is still unanswered".into()));
        }
        if self.workflow.has_publicity() {
            match self.publicity {
                Some((_, last_day)) if on > last_day => {}
                Some((_, last_day)) => {
                    return Err(CaseError::NotNow(format!(
                        "the public notice runs until {last_day}"
                    )));
                }
                None => return Err(CaseError::NotNow("the case has not been publicised".into())),
            }
        }
        self.require_home_visit_sample_done()?;
        let approve = matches!(verdict, Verdict::Approve { .. });
        let departs =
            require_justification(&policy, approve, monthly_amount, &departure_justification)?;
        let mut events = Vec::new();
        if departs {
            events.push(self.departure(
                &by,
                StageKind::Decision,
                &policy,
                approve,
                monthly_amount,
                &departure_justification,
            ));
        }
        match verdict {
            Verdict::Approve { start_month } => {
                events.push(CaseEvent::Approved(pb::CaseApproved {
                    case_id: self.case_id.clone(),
                    approver: Some(by.to_proto()),
                    program_code: self.program_code.clone(),
                    monthly_amount: Some(pb::Money {
                        fen: monthly_amount.fen(),
                    }),
                    start_month: start_month.to_string(),
                    policy: Some(policy),
                    reasons: reasons.join("; "),
                    departure_justification,
                    care_institution_code,
                }));
                let due_on = if self.income_is_stable() {
                    re_review.stable_income
                } else {
                    re_review.variable_income
                };
                events.push(CaseEvent::ReReviewScheduled(pb::ReReviewScheduled {
                    case_id: self.case_id.clone(),
                    due_on: Some(proto_date(due_on)),
                }));
            }
            Verdict::Reject => {
                if reasons.iter().all(|reason| reason.trim().is_empty()) {
                    return Err(CaseError::Invalid {
                        field: "reasons".into(),
                        reason: "a rejection states its reasons".into(),
                    });
                }
                events.push(CaseEvent::Rejected(pb::CaseRejected {
                    case_id: self.case_id.clone(),
                    approver: Some(by.to_proto()),
                    reasons,
                    policy: Some(policy),
                    departure_justification,
                    decided_on: Some(proto_date(on)),
                }));
            }
        }
        Ok(events)
    }

    /// Whom an approval pays, as `CaseApproved.care_institution_code`: the care institution
    /// named, for a 特困 (tekun) person supported centrally (集中供养), or "" — the household's
    /// own account (dispersed support, 分散供养, and every other program). An institution on
    /// another program, or on a rejection, is refused naming the field.
    fn payee_of(
        &self,
        verdict: &Verdict,
        care_institution: Option<CreditCode>,
    ) -> Result<String, CaseError> {
        let Some(code) = care_institution else {
            return Ok(String::new());
        };
        let invalid = |reason: &str| CaseError::Invalid {
            field: "care_institution_code".into(),
            reason: reason.into(),
        };
        if self.program_code != ProgramCode::Tekun.as_str() {
            return Err(invalid(
                "only a 特困 (tekun) case names the care institution that supports the person centrally (集中供养)",
            ));
        }
        if !matches!(verdict, Verdict::Approve { .. }) {
            return Err(invalid("only an approval names a care institution"));
        }
        Ok(code.as_str().to_owned())
    }

    /// Records that the rejected applicant was told of the refusal and its reasons.
    fn notify_refusal(&self, command: NotifyRefusal) -> Result<Vec<CaseEvent>, CaseError> {
        let NotifyRefusal { by, on, channel } = command;
        self.authorize(&by, Act::NotifyRefusal)?;
        if channel.trim().is_empty() {
            return Err(CaseError::Invalid {
                field: "channel".into(),
                reason: "how the applicant was told".into(),
            });
        }
        Ok(vec![CaseEvent::RefusalNotified(pb::RefusalNotified {
            case_id: self.case_id.clone(),
            officer: Some(by.to_proto()),
            notified_on: Some(proto_date(on)),
            channel,
        })])
    }

    /// Sends the case back for supplementary material: investigation again.
    fn return_for_material(&self, command: ReturnForMaterial) -> Result<Vec<CaseEvent>, CaseError> {
        let ReturnForMaterial {
            by,
            missing_materials,
            reason,
        } = command;
        self.authorize(&by, Act::ReturnForMaterial)?;
        if reason.trim().is_empty() {
            return Err(CaseError::Invalid {
                field: "reason".into(),
                reason: "say what is missing and why".into(),
            });
        }
        Ok(vec![
            CaseEvent::Returned(pb::CaseReturned {
                case_id: self.case_id.clone(),
                officer: Some(by.to_proto()),
                missing_materials,
                reason,
            }),
            self.back_to_investigation(),
        ])
    }

    /// The household withdraws the application.
    fn withdraw(&self, command: Withdraw) -> Result<Vec<CaseEvent>, CaseError> {
        let Withdraw { by, reason } = command;
        self.authorize(&by, Act::Withdraw)?;
        if reason.trim().is_empty() {
            return Err(CaseError::Invalid {
                field: "reason".into(),
                reason: "required".into(),
            });
        }
        Ok(vec![CaseEvent::Withdrawn(pb::CaseWithdrawn {
            case_id: self.case_id.clone(),
            officer: Some(by.to_proto()),
            reason,
        })])
    }

    /// Extends the whole-case limit once (30 → 45 working days), with the recorded reason.
    fn extend_deadline(&self, command: ExtendDeadline) -> Result<Vec<CaseEvent>, CaseError> {
        let ExtendDeadline { by, reason } = command;
        self.authorize(&by, Act::ExtendDeadline)?;
        if self.extended {
            return Err(CaseError::NotNow("the limit was already extended".into()));
        }
        if reason.trim().is_empty() {
            return Err(CaseError::Invalid {
                field: "reason".into(),
                reason: "an extension records its reason".into(),
            });
        }
        Ok(vec![CaseEvent::DeadlineExtended(pb::DeadlineExtended {
            case_id: self.case_id.clone(),
            officer: Some(by.to_proto()),
            reason,
        })])
    }

    /// The official is recused from now on (nothing if already recused or no subject is known).
    fn recuse(&self, command: Recuse) -> Vec<CaseEvent> {
        let Recuse {
            official_subject,
            registration_id,
        } = command;
        if official_subject.trim().is_empty() || self.is_recused(&official_subject) {
            return Vec::new();
        }
        vec![CaseEvent::OfficialRecused(pb::OfficialRecused {
            case_id: self.case_id.clone(),
            official_subject,
            registration_id,
        })]
    }

    /// The case follows the household to the new org unit, so the old village (and
    /// street-town) lose scope and the new ones gain it. Nothing if the case is closed or
    /// already there.
    fn follow_household(&self, command: FollowHousehold) -> Vec<CaseEvent> {
        let FollowHousehold { household_id, to } = command;
        if matches!(self.status, CaseStatus::Withdrawn | CaseStatus::Terminated)
            || (self.status == CaseStatus::Rejected && self.refusal_notified)
            || self.hukou_org_unit == to
        {
            return Vec::new();
        }
        vec![CaseEvent::FollowedHousehold(pb::CaseFollowedHousehold {
            case_id: self.case_id.clone(),
            household_id,
            from_org_unit_code: self.hukou_org_unit.as_str().to_owned(),
            to_org_unit_code: to.as_str().to_owned(),
        })]
    }

    /// Dynamic management: the engine's new result adjusts or ends the running benefit from
    /// the month after the change ([`Change::effective_month`]).
    fn reassess(&self, command: Reassess, policy: Evaluation) -> Result<Vec<CaseEvent>, CaseError> {
        let Reassess { on, change } = command;
        let policy = policy.map_err(|Unassessable(reason)| CaseError::NotNow(reason))?;
        if self.status != CaseStatus::Approved {
            return Ok(Vec::new());
        }
        let effective_month = change
            .effective_month(on)
            .ok_or_else(|| CaseError::NotNow(format!("no month follows {on}")))?
            .to_string();
        let cause = change.cause().to_owned();
        let new_amount = engine_amount(&policy);
        if !policy.eligible || new_amount.fen() <= 0 {
            return Ok(vec![CaseEvent::BenefitTerminated(pb::BenefitTerminated {
                case_id: self.case_id.clone(),
                effective_month,
                cause,
                policy: Some(policy),
            })]);
        }
        if Some(new_amount) != self.benefit {
            return Ok(vec![CaseEvent::BenefitAdjusted(pb::BenefitAdjusted {
                case_id: self.case_id.clone(),
                monthly_amount: Some(pb::Money {
                    fen: new_amount.fen(),
                }),
                effective_month,
                policy: Some(policy),
                cause,
            })]);
        }
        Ok(Vec::new())
    }

    /// Deadlines that passed by `on` and were not yet recorded — or were recorded on a
    /// provisional date that the calendar now computes differently.
    fn breached_deadlines(&self, command: RecordBreaches) -> Vec<CaseEvent> {
        let RecordBreaches { on, deadlines } = command;
        if matches!(self.status, CaseStatus::Withdrawn | CaseStatus::Terminated) {
            return Vec::new();
        }
        deadlines
            .iter()
            .filter(|(name, due)| {
                on > due.date
                    && match self.breached.get(*name) {
                        None => true,
                        Some(recorded) => recorded.provisional && recorded.due_on != due.date,
                    }
            })
            .map(|(name, due)| {
                CaseEvent::DeadlineBreached(pb::DeadlineBreached {
                    case_id: self.case_id.clone(),
                    deadline: (*name).to_owned(),
                    due_on: Some(proto_date(due.date)),
                    detected_on: Some(proto_date(on)),
                    provisional: due.provisional,
                })
            })
            .collect()
    }
}

// ---- The district's home-visit sample (特困, issue 20 item 11) ----

impl CaseState {
    /// The district's visit of a case in its home-visit sample, at the decision stage.
    fn record_sample_visit(
        &self,
        by: Officer,
        visited_on: Date,
    ) -> Result<Vec<CaseEvent>, CaseError> {
        self.authorize(&by, Act::SampleVisit)?;
        match &self.home_visit_sample {
            Some(membership) if membership.sampled => {}
            Some(membership) => {
                return Err(CaseError::NotNow(format!(
                    "the case is not in the district's home-visit sample {}",
                    membership.sample_id
                )));
            }
            None => {
                return Err(CaseError::NotNow(
                    "the district's home-visit sample has not been drawn over this case".into(),
                ));
            }
        }
        Ok(vec![CaseEvent::HomeVisitRecorded(pb::HomeVisitRecorded {
            case_id: self.case_id.clone(),
            visitor: Some(by.to_proto()),
            visited_on: Some(proto_date(visited_on)),
            sealed_findings: Vec::new(),
            relative_of_official_visit: false,
            home_visit_sample_visit: true,
        })])
    }

    /// A decision of a workflow with the district's home-visit sample needs the case drawn
    /// over, and a sampled case its recorded visit (入户抽查).
    fn require_home_visit_sample_done(&self) -> Result<(), CaseError> {
        if self.workflow.home_visit_sample().is_none() {
            return Ok(());
        }
        match &self.home_visit_sample {
            None => Err(CaseError::NotNow(
                "the district's home-visit sample (入户抽查) has not been drawn over this case: \
                 draw it (DrawHomeVisitSample) over the cases received first"
                    .into(),
            )),
            Some(membership) if membership.sampled && !self.home_visit_sample_visited => {
                Err(CaseError::NotNow(format!(
                    "the case is in the district's home-visit sample {}: its home visit \
                     (入户抽查) must be recorded before the decision",
                    membership.sample_id
                )))
            }
            Some(_) => Ok(()),
        }
    }

    /// Records the draw on this case of its batch.
    fn join_home_visit_sample(
        &self,
        command: JoinHomeVisitSample,
    ) -> Result<Vec<CaseEvent>, CaseError> {
        let JoinHomeVisitSample { by, mut record } = command;
        if let Some(membership) = &self.home_visit_sample {
            if membership.sample_id == record.sample_id {
                return Ok(Vec::new());
            }
            return Err(CaseError::NotNow(format!(
                "the case is already in the district's home-visit sample {}",
                membership.sample_id
            )));
        }
        self.authorize(&by, Act::DrawSample)?;
        if !record.received_case_ids.contains(&self.case_id) {
            return Err(CaseError::Invalid {
                field: "received_case_ids".into(),
                reason: "the draw's batch does not hold this case".into(),
            });
        }
        record.case_id = self.case_id.clone();
        record.drawn_by = Some(by.to_proto());
        Ok(vec![CaseEvent::HomeVisitSampleDrawn(record)])
    }
}

/// What the engine found the benefit to be (zero when it names no amount).
fn engine_amount(policy: &pb::PolicyResult) -> Money {
    Money::from_fen(policy.amount.as_ref().map_or(0, |money| money.fen))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    //! Given events → a command → the events it emits (or its refusal), with no I/O: the shape
    //! of cqrs-es's aggregate tests. Histories are written as events ([`publicised_dibao`],
    //! …); `a_dibao_case_walks_the_whole_path` checks that the commands emit exactly them.

    use super::*;
    use time::macros::date;

    const CASE: &str = "case-1";
    const VILLAGE: &str = "990101001001";
    const STREET: &str = "990101001000";
    const DISTRICT: &str = "990101000000";

    // ---- The harness ----

    /// A case given by its history, ready for a command.
    struct Given {
        workflows: Workflows,
        history: Vec<CaseEvent>,
    }

    /// What a command did to the given case.
    struct Then {
        given: Given,
        result: Result<Vec<CaseEvent>, CaseError>,
    }

    fn given(history: impl IntoIterator<Item = CaseEvent>) -> Given {
        given_in(Workflows::example().unwrap(), history)
    }

    fn given_in(workflows: Workflows, history: impl IntoIterator<Item = CaseEvent>) -> Given {
        Given {
            workflows,
            history: history.into_iter().collect(),
        }
    }

    impl Given {
        /// The case folded from the history.
        fn state(&self) -> CaseState {
            CaseState::replay(&self.workflows, &self.history)
                .unwrap()
                .expect("the history opens the case")
        }

        fn when(self, command: impl Into<CaseCommand>) -> Then {
            let result = self.state().handle(command.into());
            Then {
                given: self,
                result,
            }
        }

        /// A command on the same history, leaving it for the next.
        fn try_command(
            &self,
            command: impl Into<CaseCommand>,
        ) -> Result<Vec<CaseEvent>, CaseError> {
            self.state().handle(command.into())
        }
    }

    impl Then {
        /// Asserts the emitted events; the history goes on with them.
        fn then_expect_events(self, expected: impl IntoIterator<Item = CaseEvent>) -> Given {
            let expected: Vec<CaseEvent> = expected.into_iter().collect();
            assert_eq!(self.result, Ok(expected.clone()));
            let mut given = self.given;
            given.history.extend(expected);
            given
        }

        fn then_expect_error(self, expected: CaseError) -> Given {
            assert_eq!(self.result, Err(expected));
            self.given
        }

        /// The rule of a PERMISSION_DENIED refusal.
        fn then_refused(self) -> String {
            match self.result {
                Err(CaseError::NotAllowed(rule)) => rule,
                other => panic!("expected PERMISSION_DENIED, got {other:?}"),
            }
        }

        /// The command succeeded; the history goes on with what it emitted.
        fn then_ok(self) -> Given {
            self.then_events().1
        }

        /// The emitted events, for checking one field of them; the history goes on with them.
        fn then_events(self) -> (Vec<CaseEvent>, Given) {
            let events = self.result.unwrap();
            let mut given = self.given;
            given.history.extend(events.clone());
            (events, given)
        }
    }

    fn refused(result: Result<Vec<CaseEvent>, CaseError>) -> String {
        match result {
            Err(CaseError::NotAllowed(rule)) => rule,
            other => panic!("expected PERMISSION_DENIED, got {other:?}"),
        }
    }

    // ---- Who ----

    fn officer(subject: &str, role: &str, org_unit: &str) -> Officer {
        Officer {
            subject: subject.into(),
            role: role.into(),
            org_unit: OrgUnitCode::parse(org_unit).unwrap(),
        }
    }

    /// The village clerk who accepted the application (and investigates).
    fn clerk() -> Officer {
        officer("clerk", "village_clerk", VILLAGE)
    }

    fn street() -> Officer {
        officer("reviewer", "street_reviewer", STREET)
    }

    fn approver() -> Officer {
        officer("approver", "center_approver", DISTRICT)
    }

    fn inv(subject: &str) -> Officer {
        officer(subject, "village_clerk", VILLAGE)
    }

    fn engine(eligible: bool, fen: i64) -> pb::PolicyResult {
        pb::PolicyResult {
            eligible,
            amount: Some(pb::Money { fen }),
            policy_version: "v".into(),
            benefit_period: pb::BenefitPeriod::Monthly as i32,
            ..Default::default()
        }
    }

    fn fen(fen: i64) -> Option<pb::Money> {
        Some(pb::Money { fen })
    }

    fn month(text: &str) -> Month {
        Month::parse(text).unwrap()
    }

    const RE_REVIEW: ReReviewDue = ReReviewDue {
        variable_income: date!(2027 - 4 - 5),
        stable_income: date!(2027 - 10 - 5),
    };

    fn exact_on(date: Date) -> DueDate {
        DueDate {
            date,
            provisional: false,
        }
    }

    // ---- Events ----

    fn opened(workflow: &str, relative_of_official: bool) -> CaseEvent {
        CaseEvent::Opened(pb::CaseOpened {
            case_id: CASE.into(),
            household_id: "hh-1".into(),
            program_code: "dibao_rural".into(),
            workflow: workflow.into(),
            hukou_org_unit_code: VILLAGE.into(),
            relative_of_official,
            accepted_by: "clerk".into(),
            accepted_by_role: "village_clerk".into(),
            accepted_org_unit_code: VILLAGE.into(),
            ..Default::default()
        })
    }

    fn entered(stage: StageKind) -> CaseEvent {
        CaseEvent::StageEntered(pb::StageEntered {
            case_id: CASE.into(),
            stage: stage.as_str().into(),
        })
    }

    fn assigned(by: &Officer, investigators: &[Officer]) -> CaseEvent {
        CaseEvent::InvestigatorsAssigned(pb::InvestigatorsAssigned {
            case_id: CASE.into(),
            investigators: investigators.iter().map(Officer::to_proto).collect(),
            assigned_by: Some(by.to_proto()),
        })
    }

    fn visited(by: &Officer, on: Date, relative_of_official_visit: bool) -> CaseEvent {
        CaseEvent::HomeVisitRecorded(pb::HomeVisitRecorded {
            case_id: CASE.into(),
            visitor: Some(by.to_proto()),
            visited_on: Some(proto_date(on)),
            sealed_findings: Vec::new(),
            relative_of_official_visit,
            home_visit_sample_visit: false,
        })
    }

    fn verification_answer(department: &str) -> pb::VerificationAnswered {
        pb::VerificationAnswered {
            case_id: CASE.into(),
            department_code: department.into(),
            ..Default::default()
        }
    }

    fn objection(id: &str) -> pb::ObjectionReceived {
        pb::ObjectionReceived {
            case_id: CASE.into(),
            objection_id: id.into(),
            ..Default::default()
        }
    }

    fn opinion_recorded(by: &Officer, on: Date, amount: i64) -> CaseEvent {
        CaseEvent::OpinionRecorded(pb::PreliminaryOpinionRecorded {
            case_id: CASE.into(),
            officer: Some(by.to_proto()),
            recommend_approval: true,
            proposed_amount: fen(amount),
            opinion: "eligible".into(),
            policy: Some(engine(true, amount)),
            departure_justification: String::new(),
            recorded_on: Some(proto_date(on)),
        })
    }

    fn publicity_started(by: &Officer, first_day: Date, last_day: Date) -> CaseEvent {
        CaseEvent::PublicityStarted(pb::PublicityStarted {
            case_id: CASE.into(),
            first_day: Some(proto_date(first_day)),
            last_day: Some(proto_date(last_day)),
            started_by: Some(by.to_proto()),
        })
    }

    fn approved(
        by: &Officer,
        amount: i64,
        policy: pb::PolicyResult,
        justification: &str,
    ) -> CaseEvent {
        CaseEvent::Approved(pb::CaseApproved {
            case_id: CASE.into(),
            approver: Some(by.to_proto()),
            program_code: "dibao_rural".into(),
            monthly_amount: fen(amount),
            start_month: "2026-11".into(),
            policy: Some(policy),
            reasons: String::new(),
            departure_justification: justification.into(),
            care_institution_code: String::new(),
        })
    }

    fn re_review_scheduled(due_on: Date) -> CaseEvent {
        CaseEvent::ReReviewScheduled(pb::ReReviewScheduled {
            case_id: CASE.into(),
            due_on: Some(proto_date(due_on)),
        })
    }

    fn breached(deadline: &str, due: DueDate, detected_on: Date) -> CaseEvent {
        CaseEvent::DeadlineBreached(pb::DeadlineBreached {
            case_id: CASE.into(),
            deadline: deadline.into(),
            due_on: Some(proto_date(due.date)),
            detected_on: Some(proto_date(detected_on)),
            provisional: due.provisional,
        })
    }

    // ---- Commands ----

    fn assign(by: &Officer, investigators: &[Officer]) -> AssignInvestigators {
        AssignInvestigators {
            by: by.clone(),
            investigators: investigators.to_vec(),
        }
    }

    fn visit(by: &Officer, visited_on: Date) -> RecordHomeVisit {
        RecordHomeVisit {
            by: by.clone(),
            visited_on,
        }
    }

    /// Approves 132,000 fen a month from 2026-11, as the engine found, on `on`.
    fn approval(by: &Officer, on: Date) -> CaseCommand {
        approval_of(by, on, 132_000, "")
    }

    fn approval_of(by: &Officer, on: Date, amount: i64, justification: &str) -> CaseCommand {
        CaseCommand::Decide(
            Decide {
                by: by.clone(),
                on,
                verdict: Verdict::Approve {
                    start_month: month("2026-11"),
                },
                monthly_amount: Money::from_fen(amount),
                reasons: Vec::new(),
                departure_justification: justification.into(),
                re_review: RE_REVIEW,
                care_institution: None,
            },
            Ok(engine(true, 132_000)),
        )
    }

    fn return_for(by: &Officer, reason: &str) -> ReturnForMaterial {
        ReturnForMaterial {
            by: by.clone(),
            missing_materials: Vec::new(),
            reason: reason.into(),
        }
    }

    fn withdraw(by: &Officer, reason: &str) -> Withdraw {
        Withdraw {
            by: by.clone(),
            reason: reason.into(),
        }
    }

    fn extend(by: &Officer, reason: &str) -> ExtendDeadline {
        ExtendDeadline {
            by: by.clone(),
            reason: reason.into(),
        }
    }

    fn answer(by: &Officer, objection_id: &str, answer: &str) -> AnswerObjection {
        AnswerObjection {
            by: by.clone(),
            objection_id: objection_id.into(),
            upheld: false,
            answer: answer.into(),
        }
    }

    fn breaches(on: Date, deadlines: &[(&'static str, DueDate)]) -> RecordBreaches {
        RecordBreaches {
            on,
            deadlines: deadlines.to_vec(),
        }
    }

    // ---- Histories ----

    /// A dibao case up to its decision stage, publicised 2026-09-28..=2026-10-04.
    fn publicised_dibao() -> Vec<CaseEvent> {
        vec![
            opened("means_tested_review", false),
            assigned(&street(), &[clerk(), inv("inv-2")]),
            visited(&clerk(), date!(2026 - 9 - 1), false),
            visited(&inv("inv-2"), date!(2026 - 9 - 1), false),
            entered(StageKind::Verification),
            CaseEvent::VerificationRequested(pb::VerificationRequested {
                case_id: CASE.into(),
                department_codes: vec!["civil_affairs".into()],
                requested_by: Some(street().to_proto()),
            }),
            CaseEvent::VerificationAnswered(verification_answer("civil_affairs")),
            entered(StageKind::PreliminaryOpinion),
            opinion_recorded(&street(), date!(2026 - 9 - 20), 132_000),
            entered(StageKind::Publicity),
            publicity_started(&street(), date!(2026 - 9 - 28), date!(2026 - 10 - 4)),
            entered(StageKind::Decision),
        ]
    }

    // ---- 特困 (issue 20 item 11) ----

    const OTHER_CASE: &str = "case-2";

    fn center_reviewer() -> Officer {
        officer("county-reviewer", "center_reviewer", DISTRICT)
    }

    /// A 特困 case publicised and received by the district (the notice ended 2026-10-04).
    fn publicised_tekun() -> Vec<CaseEvent> {
        let mut history = publicised_dibao();
        history[0] = CaseEvent::Opened(pb::CaseOpened {
            program_code: "tekun".into(),
            workflow: "extreme_poverty_review".into(),
            ..match &history[0] {
                CaseEvent::Opened(opened) => opened.clone(),
                _ => unreachable!(),
            }
        });
        history
    }

    /// The district's draw over this case and another, `sampled` naming the cases drawn.
    fn sample_record(sampled: &[&str]) -> pb::HomeVisitSampleDrawn {
        pb::HomeVisitSampleDrawn {
            case_id: String::new(),
            sample_id: "sample-1".into(),
            org_unit_code: DISTRICT.into(),
            received_from: Some(proto_date(date!(2026 - 10 - 1))),
            received_to: Some(proto_date(date!(2026 - 10 - 31))),
            received_case_ids: vec![CASE.into(), OTHER_CASE.into()],
            seed_sha256: "00".into(),
            share_basis_points: 3_000,
            sample_size: u32::try_from(sampled.len()).unwrap(),
            sampled_case_ids: sampled.iter().map(|id| (*id).to_owned()).collect(),
            drawn_by: None,
            drawn_on: Some(proto_date(date!(2026 - 11 - 2))),
            algorithm: "sha256-rank-v1".into(),
        }
    }

    fn join(by: &Officer, record: pb::HomeVisitSampleDrawn) -> JoinHomeVisitSample {
        JoinHomeVisitSample {
            by: by.clone(),
            record,
        }
    }

    fn not_now(result: Result<Vec<CaseEvent>, CaseError>) -> String {
        match result {
            Err(CaseError::NotNow(reason)) => reason,
            other => panic!("expected FAILED_PRECONDITION, got {other:?}"),
        }
    }

    #[test]
    fn a_sampled_tekun_case_is_decided_only_after_the_districts_visit() {
        let given = given(publicised_tekun());
        // Not drawn over yet: no decision.
        let reason = not_now(given.try_command(approval(&approver(), date!(2026 - 11 - 2))));
        assert!(reason.contains("home-visit sample"), "{reason}");
        assert!(reason.contains("DrawHomeVisitSample"), "{reason}");
        // Only the sample's roles at its tier draw it.
        assert!(
            refused(given.try_command(join(&approver(), sample_record(&[CASE]))))
                .contains("center_approver may not draw_home_visit_sample")
        );
        let street_center = officer("street-center", "center_reviewer", STREET);
        assert!(
            refused(given.try_command(join(&street_center, sample_record(&[CASE]))))
                .contains("District")
        );
        let mut expected = sample_record(&[CASE]);
        expected.case_id = CASE.into();
        expected.drawn_by = Some(center_reviewer().to_proto());
        let given = given
            .when(join(&center_reviewer(), sample_record(&[CASE])))
            .then_expect_events([CaseEvent::HomeVisitSampleDrawn(expected)]);
        // Drawn again by the same draw: nothing; by another: refused.
        assert_eq!(
            given.try_command(join(&center_reviewer(), sample_record(&[CASE]))),
            Ok(Vec::new())
        );
        let other = pb::HomeVisitSampleDrawn {
            sample_id: "sample-2".into(),
            ..sample_record(&[])
        };
        assert!(not_now(given.try_command(join(&center_reviewer(), other))).contains("sample-1"));
        // Sampled, not visited: the refusal names the sample and the visit.
        let reason = not_now(given.try_command(approval(&approver(), date!(2026 - 11 - 2))));
        assert!(reason.contains("sample-1"), "{reason}");
        assert!(reason.contains("home visit"), "{reason}");
        // The street-town's reviewer does not make the district's visit.
        assert!(
            refused(given.try_command(visit(&street(), date!(2026 - 11 - 3))))
                .contains("street_reviewer may not home_visit_sample_visit")
        );
        let given = given
            .when(visit(&center_reviewer(), date!(2026 - 11 - 3)))
            .then_expect_events([CaseEvent::HomeVisitRecorded(pb::HomeVisitRecorded {
                case_id: CASE.into(),
                visitor: Some(center_reviewer().to_proto()),
                visited_on: Some(proto_date(date!(2026 - 11 - 3))),
                sealed_findings: Vec::new(),
                relative_of_official_visit: false,
                home_visit_sample_visit: true,
            })]);
        // The visitor took part: she may not decide, even in the approver's seat.
        let visitor_as_approver = officer("county-reviewer", "center_approver", DISTRICT);
        assert_eq!(
            refused(given.try_command(approval(&visitor_as_approver, date!(2026 - 11 - 4)))),
            ONE_SEAT_RULE
        );
        let (events, _) = given
            .when(approval(&approver(), date!(2026 - 11 - 4)))
            .then_events();
        assert!(matches!(events[0], CaseEvent::Approved(_)));
    }

    #[test]
    fn an_unsampled_tekun_case_is_decided_without_a_visit_and_cannot_be_visited() {
        let given = given(publicised_tekun())
            .when(join(&center_reviewer(), sample_record(&[OTHER_CASE])))
            .then_ok();
        assert!(
            not_now(given.try_command(visit(&center_reviewer(), date!(2026 - 11 - 3))))
                .contains("not in the district's home-visit sample sample-1")
        );
        // The drawer does not take part: drawing is a recomputable draw, not a judgement.
        let (events, _) = given
            .when(approval(&approver(), date!(2026 - 11 - 4)))
            .then_events();
        assert!(matches!(events[0], CaseEvent::Approved(_)));
        // A draw whose batch does not hold the case is refused.
        let elsewhere = pb::HomeVisitSampleDrawn {
            received_case_ids: vec![OTHER_CASE.into()],
            ..sample_record(&[])
        };
        let fresh = super::tests::given(publicised_tekun());
        assert!(matches!(
            fresh.try_command(join(&center_reviewer(), elsewhere)),
            Err(CaseError::Invalid { field, .. }) if field == "received_case_ids"
        ));
        // A dibao case has no sample: deciding needs none, drawing is refused.
        let dibao = super::tests::given(publicised_dibao());
        assert!(
            not_now(dibao.try_command(join(&center_reviewer(), sample_record(&[CASE]))))
                .contains("no district home-visit sample")
        );
    }

    #[test]
    fn tekun_deadlines_are_the_street_towns_then_the_districts() {
        let limits = DeadlineLimits {
            investigation_start: None,
            review: None,
            review_extended: None,
            street_town_review: Some(exact_on(date!(2026 - 9 - 22))),
            district_decision: Some(exact_on(date!(2026 - 10 - 26))),
            refusal_notice: None,
        };
        let tekun = publicised_tekun();
        let opened_only = given(tekun[..1].to_vec()).state();
        assert_eq!(
            opened_only.deadlines(&limits),
            [("street_town_review", exact_on(date!(2026 - 9 - 22)))]
        );
        let at_decision = given(tekun).state();
        assert_eq!(
            at_decision.deadlines(&limits),
            [("district_decision", exact_on(date!(2026 - 10 - 26)))]
        );
        // Received the day after the notice's last day (4 October).
        assert_eq!(
            at_decision.district_received_on(),
            Some(date!(2026 - 10 - 5))
        );
    }

    /// A relative-of-official dibao case whose two investigators were assigned.
    fn relative_case_assigned() -> Vec<CaseEvent> {
        vec![
            opened("means_tested_review", true),
            assigned(&street(), &[inv("inv-1"), inv("inv-2")]),
        ]
    }

    // ---- The tests ----

    #[test]
    fn each_act_is_open_to_the_roles_some_workflow_names_for_it() {
        let workflows = Workflows::example().unwrap();
        let roles = |act: Act| -> Vec<String> { act.roles_ever(&workflows).into_iter().collect() };
        assert_eq!(
            roles(Act::AssignInvestigators),
            ["center_reviewer", "street_reviewer", "village_clerk"]
        );
        assert_eq!(roles(Act::RelativeVisit), ["center_reviewer"]);
        assert_eq!(roles(Act::RequestVerification), ["street_reviewer"]);
        assert_eq!(roles(Act::Opinion), ["street_reviewer"]);
        assert_eq!(roles(Act::StartPublicity), ["street_reviewer"]);
        // Objections are heard by those who run the publicity, and nobody else.
        assert_eq!(roles(Act::AnswerObjection), ["street_reviewer"]);
        assert_eq!(roles(Act::AssistFirst), ["street_reviewer"]);
        assert_eq!(roles(Act::Decide), ["center_approver"]);
        assert_eq!(
            roles(Act::ReturnForMaterial),
            ["center_reviewer", "street_reviewer"]
        );
        assert_eq!(
            roles(Act::ExtendDeadline),
            ["center_approver", "center_reviewer", "street_reviewer"]
        );
        assert!(roles(Act::Accept).is_empty());
    }

    #[test]
    fn a_check_report_ends_the_verification_wait_and_a_late_one_is_only_recorded() {
        let investigators = [clerk(), inv("inv-2")];
        let report = pb::CheckReportIssued {
            check_id: "check-1".into(),
            case_id: CASE.into(),
            report_version: 1,
            departments: vec!["public_security".into(), "tax".into()],
            overdue_departments: vec!["real_estate".into()],
            ..Default::default()
        };
        let attached = |version: u32| {
            CaseEvent::CheckReportAttached(pb::CheckReportAttached {
                case_id: CASE.into(),
                check_id: "check-1".into(),
                report_version: version,
                departments: vec!["public_security".into(), "tax".into()],
                overdue_departments: vec!["real_estate".into()],
            })
        };
        given([opened("means_tested_review", false)])
            .when(assign(&street(), &investigators))
            .then_expect_events([assigned(&street(), &investigators)])
            .when(visit(&investigators[0], date!(2026 - 9 - 1)))
            .then_expect_events([visited(&investigators[0], date!(2026 - 9 - 1), false)])
            .when(visit(&investigators[1], date!(2026 - 9 - 1)))
            .then_expect_events([
                visited(&investigators[1], date!(2026 - 9 - 1), false),
                entered(StageKind::Verification),
            ])
            .when(RequestVerification {
                by: street(),
                department_codes: vec!["public_security".into(), "tax".into()],
            })
            .then_expect_events([CaseEvent::VerificationRequested(
                pb::VerificationRequested {
                    case_id: CASE.into(),
                    department_codes: vec!["public_security".into(), "tax".into()],
                    requested_by: Some(street().to_proto()),
                },
            )])
            .when(AttachCheckReport {
                report: report.clone(),
            })
            .then_expect_events([attached(1), entered(StageKind::PreliminaryOpinion)])
            .when(AttachCheckReport {
                report: pb::CheckReportIssued {
                    report_version: 2,
                    ..report
                },
            })
            .then_expect_events([attached(2)]);
    }

    #[test]
    fn a_dibao_case_walks_the_whole_path() {
        let investigators = [clerk(), inv("inv-2")];
        let at_decision = given([opened("means_tested_review", false)])
            .when(assign(&street(), &investigators))
            .then_expect_events([assigned(&street(), &investigators)])
            .when(visit(&investigators[0], date!(2026 - 9 - 1)))
            .then_expect_events([visited(&investigators[0], date!(2026 - 9 - 1), false)])
            .when(visit(&investigators[1], date!(2026 - 9 - 1)))
            .then_expect_events([
                visited(&investigators[1], date!(2026 - 9 - 1), false),
                entered(StageKind::Verification),
            ])
            .when(RequestVerification {
                by: street(),
                department_codes: vec!["civil_affairs".into()],
            })
            .then_expect_events([CaseEvent::VerificationRequested(
                pb::VerificationRequested {
                    case_id: CASE.into(),
                    department_codes: vec!["civil_affairs".into()],
                    requested_by: Some(street().to_proto()),
                },
            )])
            .when(AnswerVerification {
                answer: verification_answer("civil_affairs"),
            })
            .then_expect_events([
                CaseEvent::VerificationAnswered(verification_answer("civil_affairs")),
                entered(StageKind::PreliminaryOpinion),
            ])
            .when(CaseCommand::RecordOpinion(
                RecordOpinion {
                    by: street(),
                    on: date!(2026 - 9 - 20),
                    recommend_approval: true,
                    // As the engine found.
                    proposed_amount: None,
                    opinion: "eligible".into(),
                    departure_justification: String::new(),
                },
                Ok(engine(true, 132_000)),
            ))
            .then_expect_events([
                opinion_recorded(&street(), date!(2026 - 9 - 20), 132_000),
                entered(StageKind::Publicity),
            ])
            .when(StartPublicity {
                by: street(),
                first_day: date!(2026 - 9 - 28),
                last_day: date!(2026 - 10 - 4),
            })
            .then_expect_events([
                publicity_started(&street(), date!(2026 - 9 - 28), date!(2026 - 10 - 4)),
                entered(StageKind::Decision),
            ]);
        assert_eq!(at_decision.history, publicised_dibao());
        let decided = at_decision
            .when(approval(&approver(), date!(2026 - 10 - 5)))
            .then_expect_events([
                approved(&approver(), 132_000, engine(true, 132_000), ""),
                re_review_scheduled(date!(2027 - 4 - 5)),
            ]);
        assert_eq!(decided.state().status, CaseStatus::Approved);
    }

    #[test]
    fn no_decision_before_the_public_notice_ends() {
        given(publicised_dibao())
            .when(approval(&approver(), date!(2026 - 10 - 4)))
            .then_expect_error(CaseError::NotNow(
                "the public notice runs until 2026-10-04".into(),
            ));
    }

    #[test]
    fn a_household_the_policy_cannot_evaluate_is_refused_once_the_officer_may_decide() {
        let unassessable = |by: &Officer| {
            let CaseCommand::Decide(decide, _) = approval(by, date!(2026 - 10 - 5)) else {
                unreachable!()
            };
            CaseCommand::Decide(decide, Err(Unassessable("not registered".into())))
        };
        given(publicised_dibao())
            .when(unassessable(&approver()))
            .then_expect_error(CaseError::NotNow("not registered".into()));
        // Who may not decide learns only that.
        let rule = given(publicised_dibao())
            .when(unassessable(&officer(
                "reviewer",
                "center_approver",
                DISTRICT,
            )))
            .then_refused();
        assert_eq!(rule, ONE_SEAT_RULE);
    }

    #[test]
    fn four_eyes_and_one_tier_per_officer() {
        let case = given(publicised_dibao());
        // An investigator who is also an approver still may not decide.
        let investigator_as_approver = officer("inv-2", "center_approver", DISTRICT);
        assert!(matches!(
            case.try_command(approval(&investigator_as_approver, date!(2026 - 10 - 5))),
            Err(CaseError::NotAllowed(_))
        ));
        let acceptor = officer("clerk", "center_approver", DISTRICT);
        assert!(matches!(
            case.try_command(approval(&acceptor, date!(2026 - 10 - 5))),
            Err(CaseError::NotAllowed(_))
        ));
        // The street reviewer acted at the street tier; at the district tier they are refused.
        let same_person_at_district = officer("reviewer", "center_approver", DISTRICT);
        case.when(approval(&same_person_at_district, date!(2026 - 10 - 5)))
            .then_expect_error(CaseError::NotAllowed(ONE_SEAT_RULE.into()));
    }

    #[test]
    fn departing_from_the_engine_needs_a_justification() {
        let case = given(publicised_dibao());
        let unjustified =
            case.try_command(approval_of(&approver(), date!(2026 - 10 - 5), 150_000, ""));
        assert!(
            matches!(unjustified, Err(CaseError::Invalid { ref field, .. }) if field == "departure_justification"),
            "{unjustified:?}"
        );
        case.when(approval_of(
            &approver(),
            date!(2026 - 10 - 5),
            150_000,
            "medical costs verified",
        ))
        .then_expect_events([
            CaseEvent::DepartedFromPolicy(pb::DecisionDepartedFromPolicy {
                case_id: CASE.into(),
                officer: Some(approver().to_proto()),
                stage: "decision".into(),
                policy: Some(engine(true, 132_000)),
                recommended_or_decided_approval: true,
                amount: fen(150_000),
                justification: "medical costs verified".into(),
            }),
            approved(
                &approver(),
                150_000,
                engine(true, 132_000),
                "medical costs verified",
            ),
            re_review_scheduled(date!(2027 - 4 - 5)),
        ]);
    }

    #[test]
    fn extreme_poverty_support_is_re_reviewed_yearly() {
        let mut history = publicised_dibao();
        if let CaseEvent::Opened(opened) = &mut history[0] {
            opened.program_code = "tekun".into();
        }
        let (events, _) = given(history)
            .when(approval(&approver(), date!(2026 - 10 - 5)))
            .then_events();
        assert_eq!(
            events.last(),
            Some(&re_review_scheduled(date!(2027 - 10 - 5)))
        );
    }

    // ---- The payee: a care institution for centrally supported 特困 persons (集中供养) ----

    fn care_home() -> CreditCode {
        CreditCode::with_check_character("12990100MB0000001").unwrap()
    }

    fn decision_naming(institution: Option<CreditCode>, verdict: Verdict) -> CaseCommand {
        let CaseCommand::Decide(mut decide, policy) = approval(&approver(), date!(2026 - 10 - 5))
        else {
            unreachable!("approval is a decision")
        };
        decide.care_institution = institution;
        if verdict == Verdict::Reject {
            decide.reasons = vec!["不符合条件".into()];
            return CaseCommand::Decide(
                Decide {
                    verdict,
                    monthly_amount: Money::ZERO,
                    ..decide
                },
                Ok(engine(false, 0)),
            );
        }
        CaseCommand::Decide(decide, policy)
    }

    fn tekun_case() -> Vec<CaseEvent> {
        let mut history = publicised_dibao();
        if let CaseEvent::Opened(opened) = &mut history[0] {
            opened.program_code = "tekun".into();
        }
        history
    }

    #[test]
    fn a_centrally_supported_tekun_approval_names_its_care_institution() {
        let approve = Verdict::Approve {
            start_month: month("2026-11"),
        };
        let (events, _) = given(tekun_case())
            .when(decision_naming(Some(care_home()), approve))
            .then_events();
        let approved = events.iter().find_map(|event| match event {
            CaseEvent::Approved(approved) => Some(approved),
            _ => None,
        });
        assert_eq!(
            approved.map(|approved| approved.care_institution_code.as_str()),
            Some(care_home().as_str())
        );
        // Dispersed support (分散供养) names none: the household's own account.
        let (events, _) = given(tekun_case())
            .when(decision_naming(None, approve))
            .then_events();
        assert!(events.iter().any(|event| matches!(
            event,
            CaseEvent::Approved(approved) if approved.care_institution_code.is_empty()
        )));
    }

    #[test]
    fn only_a_tekun_approval_names_a_care_institution() {
        let approve = Verdict::Approve {
            start_month: month("2026-11"),
        };
        let on_dibao =
            given(publicised_dibao()).try_command(decision_naming(Some(care_home()), approve));
        assert!(
            matches!(on_dibao, Err(CaseError::Invalid { ref field, .. }) if field == "care_institution_code"),
            "{on_dibao:?}"
        );
        let on_rejection =
            given(tekun_case()).try_command(decision_naming(Some(care_home()), Verdict::Reject));
        assert!(
            matches!(on_rejection, Err(CaseError::Invalid { ref field, .. }) if field == "care_institution_code"),
            "{on_rejection:?}"
        );
        // Who may not decide learns only that, not the rule on the institution.
        let clerk = officer("clerk", "village_clerk", VILLAGE);
        let CaseCommand::Decide(decide, policy) = decision_naming(Some(care_home()), approve)
        else {
            unreachable!("a decision")
        };
        let by_clerk = given(publicised_dibao()).try_command(CaseCommand::Decide(
            Decide {
                by: clerk,
                ..decide
            },
            policy,
        ));
        assert!(
            matches!(by_clerk, Err(CaseError::NotAllowed(_))),
            "{by_clerk:?}"
        );
    }

    #[test]
    fn an_objection_reopens_the_case_and_must_be_answered() {
        let reopened = given(publicised_dibao())
            .when(ReceiveObjection {
                objection: objection("obj-1"),
            })
            .then_expect_events([
                CaseEvent::ObjectionReceived(objection("obj-1")),
                entered(StageKind::Investigation),
            ]);
        let state = reopened.state();
        assert_eq!(state.current_stage(), Some(StageKind::Investigation));
        assert!(state.visits.is_empty(), "the investigation starts over");
        let answered = reopened
            .when(answer(&street(), "obj-1", "income verified again"))
            .then_expect_events([CaseEvent::ObjectionAnswered(pb::ObjectionAnswered {
                case_id: CASE.into(),
                objection_id: "obj-1".into(),
                officer: Some(street().to_proto()),
                upheld: false,
                answer: "income verified again".into(),
            })]);
        assert!(answered.state().open_objections.is_empty());
    }

    #[test]
    fn a_relative_of_an_official_needs_a_district_visit() {
        let on = date!(2026 - 9 - 1);
        let district_visitor = officer("district-visitor", "center_reviewer", DISTRICT);
        given(relative_case_assigned())
            .when(visit(&inv("inv-1"), on))
            .then_expect_events([visited(&inv("inv-1"), on, false)])
            // Still waiting for the district: no stage entered.
            .when(visit(&inv("inv-2"), on))
            .then_expect_events([visited(&inv("inv-2"), on, false)])
            .when(visit(&district_visitor, date!(2026 - 9 - 2)))
            .then_expect_events([
                visited(&district_visitor, date!(2026 - 9 - 2), true),
                entered(StageKind::Verification),
            ]);
    }

    #[test]
    fn assist_first_is_capped() {
        let emergency = given([opened("emergency_evaluation", false)]);
        let grant = |fen: i64| GrantAssistFirst {
            by: street(),
            amount: Money::from_fen(fen),
            cap: Money::from_fen(300_000),
            reason: "fire".into(),
        };
        let above = emergency.try_command(grant(300_001));
        assert!(
            matches!(above, Err(CaseError::Invalid { ref field, .. }) if field == "amount"),
            "{above:?}"
        );
        emergency.when(grant(300_000)).then_expect_events([
            CaseEvent::AssistFirstGranted(pb::AssistFirstGranted {
                case_id: CASE.into(),
                officer: Some(street().to_proto()),
                amount: fen(300_000),
                cap: fen(300_000),
                reason: "fire".into(),
            }),
            entered(StageKind::Investigation),
        ]);
    }

    #[test]
    fn a_deadline_across_the_spring_festival_is_breached_once() {
        // 10 working days from 2026-02-10 land after the 2026 Spring Festival holiday.
        let calendar = sunshine_domain::WorkingDayCalendar::embedded().unwrap();
        let due = calendar.add_working_days(date!(2026 - 2 - 10), 10).unwrap();
        assert!(
            due > date!(2026 - 2 - 24),
            "the holiday does not count: {due}"
        );
        let day_after = due.next_day().unwrap();
        let deadlines = [("district_decision", exact_on(due))];
        given([opened("means_tested_review", false)])
            .when(breaches(due, &deadlines))
            .then_expect_events([])
            .when(breaches(day_after, &deadlines))
            .then_expect_events([breached("district_decision", exact_on(due), day_after)])
            .when(breaches(day_after, &deadlines))
            .then_expect_events([]);
    }

    #[test]
    fn the_wrong_role_or_stage_is_refused() {
        let case = given([opened("means_tested_review", false)]);
        assert!(matches!(
            case.try_command(assign(&approver(), &[])),
            Err(CaseError::NotAllowed(_))
        ));
        assert!(matches!(
            case.try_command(StartPublicity {
                by: street(),
                first_day: date!(2026 - 9 - 1),
                last_day: date!(2026 - 9 - 7),
            }),
            Err(CaseError::NotNow(_))
        ));
        let other_street = officer("other", "street_reviewer", "990101002000");
        assert!(matches!(
            case.try_command(assign(&other_street, &[])),
            Err(CaseError::NotAllowed(_))
        ));
    }

    #[test]
    fn a_running_benefit_is_adjusted_or_ended_from_the_following_month() {
        let approved_case = given(publicised_dibao())
            .when(approval(&approver(), date!(2026 - 10 - 5)))
            .then_expect_events([
                approved(&approver(), 132_000, engine(true, 132_000), ""),
                re_review_scheduled(date!(2027 - 4 - 5)),
            ]);
        assert_eq!(
            approved_case.state().re_review_due,
            Some(date!(2027 - 4 - 5))
        );
        let reassess = |on: Date, policy: pb::PolicyResult, change: Change| {
            CaseCommand::Reassess(Reassess { on, change }, Ok(policy))
        };
        let died_on = |date_of_death: Date| Change::Death { date_of_death };
        assert_eq!(
            approved_case.try_command(reassess(
                date!(2026 - 12 - 3),
                engine(true, 132_000),
                Change::Circumstances
            )),
            Ok(Vec::new())
        );
        assert_eq!(
            approved_case.try_command(reassess(
                date!(2026 - 12 - 3),
                engine(true, 90_000),
                died_on(date!(2026 - 12 - 1))
            )),
            Ok(vec![CaseEvent::BenefitAdjusted(pb::BenefitAdjusted {
                case_id: CASE.into(),
                monthly_amount: fen(90_000),
                effective_month: "2027-01".into(),
                policy: Some(engine(true, 90_000)),
                cause: "member died".into(),
            })])
        );
        let ended = approved_case
            .when(reassess(
                date!(2026 - 11 - 3),
                engine(false, 0),
                Change::Circumstances,
            ))
            .then_expect_events([CaseEvent::BenefitTerminated(pb::BenefitTerminated {
                case_id: CASE.into(),
                effective_month: "2026-12".into(),
                cause: "change of circumstances".into(),
                policy: Some(engine(false, 0)),
            })]);
        assert_eq!(ended.state().status, CaseStatus::Terminated);
    }

    #[test]
    fn a_death_takes_effect_from_the_month_after_the_date_of_death_not_after_its_recording() {
        let approved_case = given(publicised_dibao())
            .when(approval(&approver(), date!(2026 - 10 - 5)))
            .then_expect_events([
                approved(&approver(), 132_000, engine(true, 132_000), ""),
                re_review_scheduled(date!(2027 - 4 - 5)),
            ]);
        let death_heard = |on: Date, date_of_death: Date, policy: pb::PolicyResult| {
            CaseCommand::Reassess(
                Reassess {
                    on,
                    change: Change::Death { date_of_death },
                },
                Ok(policy),
            )
        };
        // Died in December, recorded in February: ended from January, not from March.
        assert_eq!(
            approved_case.try_command(death_heard(
                date!(2027 - 2 - 10),
                date!(2026 - 12 - 20),
                engine(false, 0),
            )),
            Ok(vec![CaseEvent::BenefitTerminated(pb::BenefitTerminated {
                case_id: CASE.into(),
                effective_month: "2027-01".into(),
                cause: "member died".into(),
                policy: Some(engine(false, 0)),
            })])
        );
        // A larger household's benefit is adjusted from the month after the death too.
        assert_eq!(
            approved_case.try_command(death_heard(
                date!(2027 - 2 - 10),
                date!(2026 - 12 - 31),
                engine(true, 90_000),
            )),
            Ok(vec![CaseEvent::BenefitAdjusted(pb::BenefitAdjusted {
                case_id: CASE.into(),
                monthly_amount: fen(90_000),
                effective_month: "2027-01".into(),
                policy: Some(engine(true, 90_000)),
                cause: "member died".into(),
            })])
        );
        // Recorded in the month of the death: from the next month, as before.
        assert_eq!(
            approved_case.try_command(death_heard(
                date!(2026 - 11 - 30),
                date!(2026 - 11 - 2),
                engine(false, 0),
            )),
            Ok(vec![CaseEvent::BenefitTerminated(pb::BenefitTerminated {
                case_id: CASE.into(),
                effective_month: "2026-12".into(),
                cause: "member died".into(),
                policy: Some(engine(false, 0)),
            })])
        );
        // A date of death after the day it is heard (intake refuses one) counts as that day.
        assert_eq!(
            approved_case.try_command(death_heard(
                date!(2026 - 11 - 30),
                date!(2027 - 3 - 1),
                engine(false, 0),
            )),
            Ok(vec![CaseEvent::BenefitTerminated(pb::BenefitTerminated {
                case_id: CASE.into(),
                effective_month: "2026-12".into(),
                cause: "member died".into(),
                policy: Some(engine(false, 0)),
            })])
        );
    }

    #[test]
    fn returns_withdrawals_and_one_extension() {
        let returned = given(publicised_dibao())
            .when(ReturnForMaterial {
                by: street(),
                missing_materials: vec!["income_statement".into()],
                reason: "收入证明不清".into(),
            })
            .then_expect_events([
                CaseEvent::Returned(pb::CaseReturned {
                    case_id: CASE.into(),
                    officer: Some(street().to_proto()),
                    missing_materials: vec!["income_statement".into()],
                    reason: "收入证明不清".into(),
                }),
                entered(StageKind::Investigation),
            ]);
        assert_eq!(
            returned.state().current_stage(),
            Some(StageKind::Investigation)
        );
        let extended = returned
            .when(extend(&street(), "核对未返回"))
            .then_expect_events([CaseEvent::DeadlineExtended(pb::DeadlineExtended {
                case_id: CASE.into(),
                officer: Some(street().to_proto()),
                reason: "核对未返回".into(),
            })]);
        assert!(matches!(
            extended.try_command(extend(&street(), "again")),
            Err(CaseError::NotNow(_))
        ));
        let withdrawn = extended
            .when(withdraw(&clerk(), "申请人撤回"))
            .then_expect_events([CaseEvent::Withdrawn(pb::CaseWithdrawn {
                case_id: CASE.into(),
                officer: Some(clerk().to_proto()),
                reason: "申请人撤回".into(),
            })]);
        assert_eq!(withdrawn.state().status, CaseStatus::Withdrawn);
        assert!(matches!(
            withdrawn.try_command(withdraw(&clerk(), "again")),
            Err(CaseError::NotNow(_))
        ));
    }

    #[test]
    fn the_deadline_plan_follows_the_stage() {
        let limits = DeadlineLimits {
            investigation_start: Some(exact_on(date!(2026 - 10 - 9))),
            review: Some(exact_on(date!(2026 - 11 - 10))),
            review_extended: Some(exact_on(date!(2026 - 12 - 1))),
            street_town_review: None,
            district_decision: Some(exact_on(date!(2026 - 10 - 20))),
            refusal_notice: None,
        };
        let fresh = given([opened("means_tested_review", false)]).state();
        let names: Vec<&str> = fresh
            .deadlines(&limits)
            .iter()
            .map(|(name, _)| *name)
            .collect();
        assert_eq!(names, ["investigation_start", "review"]);
        let plan = given(publicised_dibao()).state().deadlines(&limits);
        assert!(plan.contains(&("district_decision", exact_on(date!(2026 - 10 - 20)))));
        assert!(!plan.iter().any(|(name, _)| *name == "investigation_start"));
    }

    #[test]
    fn a_refusal_must_be_notified_within_its_working_days() {
        let rejection = CaseCommand::Decide(
            Decide {
                by: approver(),
                on: date!(2026 - 10 - 5),
                verdict: Verdict::Reject,
                monthly_amount: Money::ZERO,
                reasons: vec!["收入超过标准".into()],
                departure_justification: String::new(),
                re_review: RE_REVIEW,
                care_institution: None,
            },
            Ok(engine(false, 0)),
        );
        let rejected = given(publicised_dibao())
            .when(rejection)
            .then_expect_events([CaseEvent::Rejected(pb::CaseRejected {
                case_id: CASE.into(),
                approver: Some(approver().to_proto()),
                reasons: vec!["收入超过标准".into()],
                policy: Some(engine(false, 0)),
                departure_justification: String::new(),
                decided_on: Some(proto_date(date!(2026 - 10 - 5))),
            })]);
        let state = rejected.state();
        assert_eq!(state.rejected_on, Some(date!(2026 - 10 - 5)));
        let limits = DeadlineLimits {
            investigation_start: Some(exact_on(date!(2026 - 9 - 3))),
            review: Some(exact_on(date!(2026 - 11 - 10))),
            review_extended: Some(exact_on(date!(2026 - 12 - 1))),
            street_town_review: None,
            district_decision: None,
            refusal_notice: Some(exact_on(date!(2026 - 10 - 10))),
        };
        let plan = state.deadlines(&limits);
        assert_eq!(plan, [("refusal_notice", exact_on(date!(2026 - 10 - 10)))]);
        assert_eq!(
            rejected.try_command(breaches(date!(2026 - 10 - 11), &plan)),
            Ok(vec![breached(
                "refusal_notice",
                exact_on(date!(2026 - 10 - 10)),
                date!(2026 - 10 - 11)
            )])
        );
        let notify = |channel: &str| NotifyRefusal {
            by: clerk(),
            on: date!(2026 - 10 - 8),
            channel: channel.into(),
        };
        let notified =
            rejected
                .when(notify("in_person"))
                .then_expect_events([CaseEvent::RefusalNotified(pb::RefusalNotified {
                    case_id: CASE.into(),
                    officer: Some(clerk().to_proto()),
                    notified_on: Some(proto_date(date!(2026 - 10 - 8))),
                    channel: "in_person".into(),
                })]);
        assert!(notified.state().deadlines(&limits).is_empty());
        assert!(matches!(
            notified.try_command(notify("post")),
            Err(CaseError::NotNow(_))
        ));
    }

    #[test]
    fn the_relative_visit_is_made_only_by_the_workflows_roles_at_its_tier() {
        let case = given(relative_case_assigned());
        let on = date!(2026 - 9 - 2);
        // Before the fix any district-tier token counted as the district visit.
        for role in ["auditor", "admin", "department", "center_approver"] {
            let rule = refused(case.try_command(visit(&officer("someone", role, DISTRICT), on)));
            assert!(
                rule.contains("may not relative_of_official_visit"),
                "{role}: {rule}"
            );
        }
        // The right role at the wrong tier, or outside the case's district.
        let street_level = officer("cr-street", "center_reviewer", STREET);
        assert!(refused(case.try_command(visit(&street_level, on))).contains("tier"));
        let elsewhere = officer("cr-other", "center_reviewer", "990102000000");
        assert!(refused(case.try_command(visit(&elsewhere, on))).contains("org unit"));
        // Four eyes: the street reviewer who assigned cannot come back as the district visitor.
        let same_person = officer("reviewer", "center_reviewer", DISTRICT);
        assert_eq!(
            refused(case.try_command(visit(&same_person, on))),
            ONE_SEAT_RULE
        );
        let visitor = officer("cr-1", "center_reviewer", DISTRICT);
        case.when(visit(&visitor, on))
            .then_expect_events([visited(&visitor, on, true)]);
        // Not a relative-of-official case: only assigned investigators visit.
        let plain = given([opened("means_tested_review", false)]);
        refused(plain.try_command(visit(&visitor, on)));
        let unassigned_clerk = officer("clerk-9", "village_clerk", VILLAGE);
        assert!(refused(plain.try_command(visit(&unassigned_clerk, on))).contains("investigator"));
    }

    #[test]
    fn answering_an_objection_as_center_reviewer_then_deciding_as_center_approver_is_refused() {
        // Publicity (and objections) run by the district in this variant, so the answer itself
        // is allowed; before the fix nothing stopped the same subject deciding afterwards.
        let variant = r#"
[[workflow]]
code = "district_publicity"
stages = [
  { kind = "investigation", roles = ["village_clerk"], min_investigators = 1, relative_visit = { roles = ["center_reviewer"], tier = "district" } },
  { kind = "publicity", roles = ["center_reviewer"], tier = "district" },
  { kind = "decision", roles = ["center_approver"], tier = "district" },
]"#;
        let reviewer = officer("dual", "center_reviewer", DISTRICT);
        let investigator = inv("inv-1");
        let publicity = |first_day: Date, last_day: Date| StartPublicity {
            by: reviewer.clone(),
            first_day,
            last_day,
        };
        let case = given_in(
            Workflows::from_toml_str(variant).unwrap(),
            [opened("district_publicity", false)],
        )
        .when(assign(&clerk(), std::slice::from_ref(&investigator)))
        .then_expect_events([assigned(&clerk(), std::slice::from_ref(&investigator))])
        .when(visit(&investigator, date!(2026 - 9 - 1)))
        .then_expect_events([
            visited(&investigator, date!(2026 - 9 - 1), false),
            entered(StageKind::Publicity),
        ])
        .when(publicity(date!(2026 - 9 - 2), date!(2026 - 9 - 8)))
        .then_expect_events([
            publicity_started(&reviewer, date!(2026 - 9 - 2), date!(2026 - 9 - 8)),
            entered(StageKind::Decision),
        ])
        .when(ReceiveObjection {
            objection: objection("obj-1"),
        })
        .then_expect_events([
            CaseEvent::ObjectionReceived(objection("obj-1")),
            entered(StageKind::Investigation),
        ])
        .when(answer(&reviewer, "obj-1", "核实无误"))
        .then_ok()
        .when(visit(&investigator, date!(2026 - 9 - 10)))
        .then_expect_events([
            visited(&investigator, date!(2026 - 9 - 10), false),
            entered(StageKind::Publicity),
        ])
        .when(publicity(date!(2026 - 9 - 11), date!(2026 - 9 - 17)))
        .then_ok();
        let same_subject = officer("dual", "center_approver", DISTRICT);
        assert_eq!(
            refused(case.try_command(approval(&same_subject, date!(2026 - 10 - 5)))),
            ONE_SEAT_RULE
        );
        assert!(
            case.try_command(approval(&approver(), date!(2026 - 10 - 5)))
                .is_ok()
        );
    }

    #[test]
    fn objections_are_answered_by_the_publicity_roles_at_their_tier() {
        let case = given(publicised_dibao())
            .when(ReceiveObjection {
                objection: objection("obj-1"),
            })
            .then_ok();
        // Before the fix a center reviewer (any tier) could answer.
        let district = officer("cr-1", "center_reviewer", DISTRICT);
        assert!(refused(case.try_command(answer(&district, "obj-1", "x"))).contains("may not"));
        let other_street = officer("other", "street_reviewer", "990101002000");
        assert!(
            refused(case.try_command(answer(&other_street, "obj-1", "x"))).contains("org unit")
        );
    }

    #[test]
    fn return_withdraw_and_extend_apply_the_four_eyes_rule() {
        // "reviewer" acted at the street tier; before the fix they could return, withdraw or
        // extend as a district officer of the same case.
        let case = given(publicised_dibao());
        let same_at_district = officer("reviewer", "center_reviewer", DISTRICT);
        assert_eq!(
            refused(case.try_command(return_for(&same_at_district, "缺材料"))),
            ONE_SEAT_RULE
        );
        assert_eq!(
            refused(case.try_command(withdraw(&same_at_district, "撤回"))),
            ONE_SEAT_RULE
        );
        assert_eq!(
            refused(case.try_command(extend(&same_at_district, "核对未返回"))),
            ONE_SEAT_RULE
        );
        // The investigator "inv-2" (village clerk) cannot come back as the street reviewer.
        let investigator_at_street = officer("inv-2", "street_reviewer", STREET);
        assert_eq!(
            refused(case.try_command(return_for(&investigator_at_street, "缺材料"))),
            ONE_SEAT_RULE
        );
        // Whoever extended the time limit in the approver's seat may still decide.
        let extended = case.when(extend(&approver(), "核对未返回")).then_ok();
        assert!(
            extended
                .try_command(approval(&approver(), date!(2026 - 10 - 5)))
                .is_ok()
        );
    }

    #[test]
    fn a_first_round_district_visitor_cannot_decide_after_the_case_reopens() {
        let first_visitor = officer("cr-1", "center_reviewer", DISTRICT);
        let on = date!(2026 - 9 - 2);
        let visited_all = given(relative_case_assigned())
            .when(visit(&inv("inv-1"), on))
            .then_ok()
            .when(visit(&inv("inv-2"), on))
            .then_ok()
            .when(visit(&first_visitor, on))
            .then_expect_events([
                visited(&first_visitor, on, true),
                entered(StageKind::Verification),
            ]);
        // Sent back: the visits start over, who acted does not.
        let returned = visited_all
            .when(ReturnForMaterial {
                by: street(),
                missing_materials: vec!["income_statement".into()],
                reason: "收入证明不清".into(),
            })
            .then_ok();
        let state = returned.state();
        assert!(state.visits.is_empty());
        assert!(
            state
                .acted
                .iter()
                .any(|acted| acted.subject == "cr-1" && acted.act == Act::RelativeVisit)
        );
        assert!(
            state
                .four_eyes("cr-1", "center_approver", Tier::District, Act::Decide)
                .is_err()
        );
        // The same subject in the approver's seat is refused whatever stage the case is at.
        let as_approver = officer("cr-1", "center_approver", DISTRICT);
        assert_eq!(
            returned
                .when(extend(&as_approver, "核对未返回"))
                .then_refused(),
            ONE_SEAT_RULE
        );
    }

    #[test]
    fn whoever_took_part_cannot_decide_even_in_the_approvers_seat() {
        // A district officer who accepted the application (in the approver's role) may not
        // decide it.
        let mut accepted_by_approver = publicised_dibao();
        if let CaseEvent::Opened(opened) = &mut accepted_by_approver[0] {
            opened.accepted_by = "approver".into();
            opened.accepted_by_role = "center_approver".into();
            opened.accepted_org_unit_code = DISTRICT.into();
        }
        // The clerk still investigated; only who accepted differs.
        assert_eq!(
            given(accepted_by_approver)
                .when(approval(&approver(), date!(2026 - 10 - 5)))
                .then_refused(),
            INDEPENDENT_DECISION_RULE
        );
        assert!(
            given(publicised_dibao())
                .try_command(approval(&approver(), date!(2026 - 10 - 5)))
                .is_ok()
        );
    }

    #[test]
    fn naming_someone_is_not_acting_and_only_the_stages_roles_can_be_named() {
        // Before the fix a clerk could name the district's approvers as investigators, which
        // wrote them into the record of who acted and barred them from deciding.
        let case = given([opened("means_tested_review", false)]);
        let approvers = [
            approver(),
            officer("approver-2", "center_approver", DISTRICT),
        ];
        assert!(matches!(
            case.try_command(assign(&clerk(), &approvers)),
            Err(CaseError::Invalid { ref field, .. }) if field == "investigators[0]"
        ));
        let named = [inv("inv-1"), inv("inv-2")];
        let assigned_case = case
            .when(assign(&clerk(), &named))
            .then_expect_events([assigned(&clerk(), &named)]);
        let state = assigned_case.state();
        assert_eq!(state.investigators, ["inv-1", "inv-2"]);
        assert!(
            !state
                .acted
                .iter()
                .any(|acted| acted.subject.starts_with("inv-")),
            "named, not acted: {:?}",
            state.acted
        );
        // Someone already seated elsewhere on the case cannot be named.
        let seated = [inv("inv-1"), officer("clerk", "street_reviewer", STREET)];
        assigned_case
            .when(assign(&street(), &seated))
            .then_expect_error(CaseError::Invalid {
                field: "investigators[1]".into(),
                reason: ONE_SEAT_RULE.into(),
            });
    }

    #[test]
    fn a_recused_official_is_refused_every_command() {
        let mut opened_with_recusal = opened("means_tested_review", true);
        if let CaseEvent::Opened(opened) = &mut opened_with_recusal {
            opened.recused_subjects = vec!["cadre".into()];
        }
        let case = given([opened_with_recusal]);
        let on = date!(2026 - 9 - 2);
        let cadre_street = officer("cadre", "street_reviewer", STREET);
        let cadre_district = officer("cadre", "center_reviewer", DISTRICT);
        let investigators = [inv("inv-1"), inv("inv-2")];
        assert_eq!(
            refused(case.try_command(assign(&cadre_street, &investigators))),
            RECUSAL_RULE
        );
        assert_eq!(
            refused(case.try_command(visit(&cadre_district, on))),
            RECUSAL_RULE
        );
        assert_eq!(
            refused(case.try_command(withdraw(&cadre_street, "x"))),
            RECUSAL_RULE
        );
        assert_eq!(
            refused(case.try_command(extend(&cadre_street, "x"))),
            RECUSAL_RULE
        );
        assert_eq!(
            refused(case.try_command(return_for(&cadre_street, "x"))),
            RECUSAL_RULE
        );
        // Nor may anyone name them.
        let with_cadre = [inv("inv-1"), officer("cadre", "village_clerk", VILLAGE)];
        assert_eq!(
            refused(case.try_command(assign(&street(), &with_cadre))),
            RECUSAL_RULE
        );
        // A relation flagged after the case opened recuses that official too, once.
        let recuse = |subject: &str, registration: &str| Recuse {
            official_subject: subject.into(),
            registration_id: registration.into(),
        };
        let recused =
            case.when(recuse("cadre-2", "reg-2"))
                .then_expect_events([CaseEvent::OfficialRecused(pb::OfficialRecused {
                    case_id: CASE.into(),
                    official_subject: "cadre-2".into(),
                    registration_id: "reg-2".into(),
                })]);
        assert_eq!(
            recused.try_command(recuse("cadre-2", "reg-2")),
            Ok(Vec::new())
        );
        assert_eq!(recused.try_command(recuse("", "reg-3")), Ok(Vec::new()));
        let cadre_2 = officer("cadre-2", "street_reviewer", STREET);
        assert_eq!(
            refused(recused.try_command(assign(&cadre_2, &investigators))),
            RECUSAL_RULE
        );
        assert!(
            recused
                .try_command(assign(&street(), &investigators))
                .is_ok()
        );
    }

    #[test]
    fn a_case_follows_its_household_to_the_new_village() {
        let new_village = OrgUnitCode::parse("990101002001").unwrap();
        let follow = || FollowHousehold {
            household_id: "hh-1".into(),
            to: new_village.clone(),
        };
        let moved = given([opened("means_tested_review", false)])
            .when(follow())
            .then_expect_events([CaseEvent::FollowedHousehold(pb::CaseFollowedHousehold {
                case_id: CASE.into(),
                household_id: "hh-1".into(),
                from_org_unit_code: VILLAGE.into(),
                to_org_unit_code: "990101002001".into(),
            })]);
        assert_eq!(moved.state().hukou_org_unit, new_village);
        assert_eq!(moved.try_command(follow()), Ok(Vec::new()), "idempotent");
        let investigators = [inv("inv-1"), inv("inv-2")];
        assert!(refused(moved.try_command(assign(&street(), &investigators))).contains("org unit"));
        let new_street = officer("reviewer-2", "street_reviewer", "990101002000");
        let new_investigators = [
            officer("inv-3", "village_clerk", "990101002001"),
            officer("inv-4", "village_clerk", "990101002001"),
        ];
        assert!(matches!(
            moved.try_command(assign(&new_street, &investigators)),
            Err(CaseError::Invalid { .. })
        ));
        assert!(
            moved
                .try_command(assign(&new_street, &new_investigators))
                .is_ok()
        );
        // A closed case stays where it was decided.
        given([opened("means_tested_review", false)])
            .when(withdraw(&clerk(), "撤回"))
            .then_ok()
            .when(follow())
            .then_expect_events([]);
    }

    #[test]
    fn a_provisional_breach_is_recorded_again_when_the_notice_makes_it_exact() {
        let provisional = DueDate {
            date: date!(2027 - 1 - 12),
            provisional: true,
        };
        let exact_date = exact_on(date!(2027 - 1 - 14));
        let recorded = given([opened("means_tested_review", false)])
            .when(breaches(date!(2027 - 1 - 13), &[("review", provisional)]))
            .then_expect_events([breached("review", provisional, date!(2027 - 1 - 13))])
            // The same provisional date: nothing new.
            .when(breaches(date!(2027 - 1 - 13), &[("review", provisional)]))
            .then_expect_events([])
            // The 2027 notice arrives and moves the date later: not a breach on the 13th …
            .when(breaches(date!(2027 - 1 - 13), &[("review", exact_date)]))
            .then_expect_events([]);
        assert!(
            recorded
                .state()
                .breaches_now(date!(2027 - 1 - 13), &[("review", exact_date)])
                .is_empty()
        );
        // … but on the 15th it is, recorded once more, now exact.
        let again = recorded
            .when(breaches(date!(2027 - 1 - 15), &[("review", exact_date)]))
            .then_expect_events([breached("review", exact_date, date!(2027 - 1 - 15))])
            .when(breaches(date!(2027 - 1 - 16), &[("review", exact_date)]))
            .then_expect_events([]);
        assert_eq!(
            again
                .state()
                .breaches_now(date!(2027 - 1 - 16), &[("review", exact_date)]),
            ["review"]
        );
    }

    #[test]
    fn an_event_before_the_opening_is_not_the_case_and_an_unknown_workflow_is_an_error() {
        assert_eq!(
            CaseState::replay(
                &Workflows::example().unwrap(),
                &[entered(StageKind::Decision)]
            ),
            Ok(None)
        );
        assert_eq!(
            CaseState::replay(&Workflows::example().unwrap(), &[opened("no_such", false)]),
            Err(FoldError::UnknownWorkflow("no_such".into()))
        );
    }
}
