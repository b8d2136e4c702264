//! The review case (案件): a stage machine driven by the workflow, with the rules that make
//! every step accountable — who may act at which stage and tier, recusal (回避: the registered
//! official of a relative-of-official case takes no part in it), one four-eyes rule (an officer
//! acts in one role at one tier of a case; whoever took part in a case cannot decide it),
//! relatives of officials needing the workflow's extra home visit, no decision before publicity
//! ends or while an objection is open, decisions that depart from the policy engine's result
//! only with a written justification, the assist-first cap, and deadline breaches. Pure:
//! commands in, events out.
//!
//! Every command by an officer goes through [`CaseState::authorize`] with the [`Act`] it
//! performs; the history of who did what ([`CaseState::acted`]) is folded from the events that
//! name an acting officer and is never cleared, so reopening a case forgets nothing. Naming
//! someone (an investigator) is not acting.

use std::collections::{BTreeMap, BTreeSet};

use sunshine_domain::{DueDate, OrgTier, OrgUnitCode};
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
            Act::Decide => StageKind::Decision,
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
        }
    }

    /// Acts that take part in the merits: whoever did one may not decide the case. Deciding,
    /// extending the time limit, notifying a refusal and withdrawing (on the household's
    /// request) do not judge the case.
    fn takes_part(self) -> bool {
        !matches!(
            self,
            Act::Decide | Act::ExtendDeadline | Act::NotifyRefusal | Act::Withdraw
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

/// The first month after `date`, "YYYY-MM" (changes take effect from the following month).
pub fn following_month(date: Date) -> String {
    let month = u8::from(date.month());
    let (year, next) = if month == 12 {
        (date.year() + 1, 1)
    } else {
        (date.year(), month + 1)
    };
    format!("{year:04}-{next:02}")
}

/// Working-day limits of one case, computed by the caller from the policy and the calendar
/// (on every read, so a holiday notice added later corrects provisional dates).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeadlineLimits {
    pub investigation_start: DueDate,
    pub review: DueDate,
    pub review_extended: DueDate,
    /// From the street-town opinion, once there is one.
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
    pub program_code: String,
    pub workflow: Workflow,
    pub stage: usize,
    pub status: CaseStatus,
    /// Where the household is registered now (it follows the household's moves).
    pub hukou_org_unit: OrgUnitCode,
    pub relative_of_official: bool,
    pub accepted_by: String,
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
    /// The running benefit: monthly amount in fen.
    pub benefit_fen: Option<i64>,
    pub re_review_due: Option<Date>,
    pub rejected_on: Option<Date>,
    pub refusal_notified: bool,
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

impl CaseState {
    /// A new case from its `CaseOpened` (the workflow looked up by the caller).
    pub fn opened(opened: &pb::CaseOpened, workflow: Workflow) -> Result<CaseState, CaseError> {
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
            program_code: opened.program_code.clone(),
            workflow,
            stage: 0,
            status: CaseStatus::Open,
            hukou_org_unit,
            relative_of_official: opened.relative_of_official,
            accepted_by: opened.accepted_by.clone(),
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
            benefit_fen: None,
            re_review_due: None,
            rejected_on: None,
            refusal_notified: false,
        })
    }

    pub fn current_stage(&self) -> Option<StageKind> {
        self.workflow.stage(self.stage).map(|stage| stage.kind)
    }

    /// Whether `subject` is recused from this case.
    pub fn is_recused(&self, subject: &str) -> bool {
        self.recused.contains(subject)
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
                self.benefit_fen = approved.monthly_amount.as_ref().map(|money| money.fen);
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
                self.benefit_fen = adjusted.monthly_amount.as_ref().map(|money| money.fen);
            }
            CaseEvent::BenefitTerminated(_) => {
                self.status = CaseStatus::Terminated;
                self.benefit_fen = None;
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

    /// Names the investigators (at least the workflow's minimum, all different, each one who
    /// could visit: the stage's roles and tier, in scope, not recused, not seated elsewhere).
    pub fn assign_investigators(
        &self,
        officer: &Officer,
        investigators: &[Officer],
    ) -> Result<Vec<CaseEvent>, CaseError> {
        self.authorize(officer, Act::AssignInvestigators)?;
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
                assigned_by: Some(officer.to_proto()),
            },
        )])
    }

    /// Records a home visit, by an assigned investigator or (for a relative of an official) by
    /// the workflow's `relative_visit` officers; the stage is done when every investigator has
    /// visited this round and, for a relative of an official, the extra visit was made.
    pub fn record_visit(
        &self,
        officer: &Officer,
        visited_on: Date,
        sealed_findings: Vec<u8>,
    ) -> Result<Vec<CaseEvent>, CaseError> {
        let act = if self.investigators.contains(&officer.subject) {
            Act::Visit
        } else if self.relative_of_official {
            Act::RelativeVisit
        } else {
            // Everything else first, so the refusal names the real reason.
            self.authorize(officer, Act::Visit)?;
            return Err(CaseError::NotAllowed(
                "only an assigned investigator records a visit".into(),
            ));
        };
        self.authorize(officer, act)?;
        let relative_visit = act == Act::RelativeVisit;
        let mut events = vec![CaseEvent::HomeVisitRecorded(pb::HomeVisitRecorded {
            case_id: self.case_id.clone(),
            visitor: Some(officer.to_proto()),
            visited_on: Some(proto_date(visited_on)),
            sealed_findings,
            relative_of_official_visit: relative_visit,
        })];
        let mut visitors: BTreeSet<&str> = self
            .visits
            .iter()
            .filter(|visit| !visit.relative_of_official_visit)
            .map(|visit| visit.subject.as_str())
            .collect();
        if !relative_visit {
            visitors.insert(officer.subject.as_str());
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

    pub fn request_verification(
        &self,
        officer: &Officer,
        departments: &[String],
    ) -> Result<Vec<CaseEvent>, CaseError> {
        self.authorize(officer, Act::RequestVerification)?;
        if departments.is_empty() {
            return Err(CaseError::Invalid {
                field: "department_codes".into(),
                reason: "at least one department".into(),
            });
        }
        Ok(vec![CaseEvent::VerificationRequested(
            pb::VerificationRequested {
                case_id: self.case_id.clone(),
                department_codes: departments.to_vec(),
                requested_by: Some(officer.to_proto()),
            },
        )])
    }

    /// A department's answer (appended by department-integration); the last one moves on.
    pub fn answer_verification(
        &self,
        answer: pb::VerificationAnswered,
    ) -> Result<Vec<CaseEvent>, CaseError> {
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

    /// The street-town's opinion, with the engine's result; departing from it needs a reason.
    #[allow(clippy::too_many_arguments)]
    pub fn record_opinion(
        &self,
        officer: &Officer,
        today: Date,
        recommend_approval: bool,
        proposed_amount_fen: i64,
        opinion: &str,
        policy: pb::PolicyResult,
        departure_justification: &str,
    ) -> Result<Vec<CaseEvent>, CaseError> {
        self.authorize(officer, Act::Opinion)?;
        let departs = require_justification(
            &policy,
            recommend_approval,
            proposed_amount_fen,
            departure_justification,
        )?;
        let mut events = Vec::new();
        if departs {
            events.push(self.departure(
                officer,
                StageKind::PreliminaryOpinion,
                &policy,
                recommend_approval,
                proposed_amount_fen,
                departure_justification,
            ));
        }
        events.push(CaseEvent::OpinionRecorded(pb::PreliminaryOpinionRecorded {
            case_id: self.case_id.clone(),
            officer: Some(officer.to_proto()),
            recommend_approval,
            proposed_amount: Some(pb::Money {
                fen: proposed_amount_fen,
            }),
            opinion: opinion.to_owned(),
            policy: Some(policy),
            departure_justification: departure_justification.to_owned(),
            recorded_on: Some(proto_date(today)),
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
        amount_fen: i64,
        justification: &str,
    ) -> CaseEvent {
        CaseEvent::DepartedFromPolicy(pb::DecisionDepartedFromPolicy {
            case_id: self.case_id.clone(),
            officer: Some(officer.to_proto()),
            stage: stage.as_str().into(),
            policy: Some(policy.clone()),
            recommended_or_decided_approval: approval,
            amount: Some(pb::Money { fen: amount_fen }),
            justification: justification.to_owned(),
        })
    }

    /// Sends the case back for supplementary material: investigation again.
    pub fn return_for_material(
        &self,
        officer: &Officer,
        missing: &[String],
        reason: &str,
    ) -> Result<Vec<CaseEvent>, CaseError> {
        self.authorize(officer, Act::ReturnForMaterial)?;
        if reason.trim().is_empty() {
            return Err(CaseError::Invalid {
                field: "reason".into(),
                reason: "say what is missing and why".into(),
            });
        }
        Ok(vec![
            CaseEvent::Returned(pb::CaseReturned {
                case_id: self.case_id.clone(),
                officer: Some(officer.to_proto()),
                missing_materials: missing.to_vec(),
                reason: reason.to_owned(),
            }),
            CaseEvent::StageEntered(pb::StageEntered {
                case_id: self.case_id.clone(),
                stage: StageKind::Investigation.as_str().into(),
            }),
        ])
    }

    /// The household withdraws the application.
    pub fn withdraw(&self, officer: &Officer, reason: &str) -> Result<Vec<CaseEvent>, CaseError> {
        self.authorize(officer, Act::Withdraw)?;
        if reason.trim().is_empty() {
            return Err(CaseError::Invalid {
                field: "reason".into(),
                reason: "required".into(),
            });
        }
        Ok(vec![CaseEvent::Withdrawn(pb::CaseWithdrawn {
            case_id: self.case_id.clone(),
            officer: Some(officer.to_proto()),
            reason: reason.to_owned(),
        })])
    }

    /// Extends the whole-case limit once (30 → 45 working days), with the recorded reason.
    pub fn extend_deadline(
        &self,
        officer: &Officer,
        reason: &str,
    ) -> Result<Vec<CaseEvent>, CaseError> {
        self.authorize(officer, Act::ExtendDeadline)?;
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
            officer: Some(officer.to_proto()),
            reason: reason.to_owned(),
        })])
    }

    /// Intake heard a relation to a registered official after the case opened: the official
    /// is recused from now on (nothing if already recused or no subject is known).
    pub fn recuse(&self, official_subject: &str, registration_id: &str) -> Vec<CaseEvent> {
        if official_subject.trim().is_empty() || self.is_recused(official_subject) {
            return Vec::new();
        }
        vec![CaseEvent::OfficialRecused(pb::OfficialRecused {
            case_id: self.case_id.clone(),
            official_subject: official_subject.to_owned(),
            registration_id: registration_id.to_owned(),
        })]
    }

    /// The household moved (intake's `HouseholdMoved`): the case follows it to the new org
    /// unit, so the old village (and street-town) lose scope and the new ones gain it.
    /// Nothing if the case is closed or already there.
    pub fn follow_household(&self, household_id: &str, to: &OrgUnitCode) -> Vec<CaseEvent> {
        if matches!(self.status, CaseStatus::Withdrawn | CaseStatus::Terminated)
            || (self.status == CaseStatus::Rejected && self.refusal_notified)
            || &self.hukou_org_unit == to
        {
            return Vec::new();
        }
        vec![CaseEvent::FollowedHousehold(pb::CaseFollowedHousehold {
            case_id: self.case_id.clone(),
            household_id: household_id.to_owned(),
            from_org_unit_code: self.hukou_org_unit.as_str().to_owned(),
            to_org_unit_code: to.as_str().to_owned(),
        })]
    }

    /// Dynamic management: the household's circumstances changed (or a member died); the
    /// engine's new result adjusts or ends the running benefit from the following month.
    pub fn reassess(&self, today: Date, policy: pb::PolicyResult, cause: &str) -> Vec<CaseEvent> {
        if self.status != CaseStatus::Approved {
            return Vec::new();
        }
        let effective_month = following_month(today);
        let new_amount = policy.amount.as_ref().map_or(0, |money| money.fen);
        if !policy.eligible || new_amount <= 0 {
            return vec![CaseEvent::BenefitTerminated(pb::BenefitTerminated {
                case_id: self.case_id.clone(),
                effective_month,
                cause: cause.to_owned(),
                policy: Some(policy),
            })];
        }
        if Some(new_amount) != self.benefit_fen {
            return vec![CaseEvent::BenefitAdjusted(pb::BenefitAdjusted {
                case_id: self.case_id.clone(),
                monthly_amount: Some(pb::Money { fen: new_amount }),
                effective_month,
                policy: Some(policy),
                cause: cause.to_owned(),
            })];
        }
        Vec::new()
    }

    /// The statutory deadlines of the case now (name, due date).
    pub fn deadlines(&self, limits: &DeadlineLimits) -> Vec<(&'static str, DueDate)> {
        let mut due = Vec::new();
        let investigating = self.current_stage() == Some(StageKind::Investigation);
        if self.status == CaseStatus::Open
            && investigating
            && self.investigators.is_empty()
            && self.visits.is_empty()
        {
            due.push(("investigation_start", limits.investigation_start));
        }
        if self.status == CaseStatus::Open {
            due.push((
                "review",
                if self.extended {
                    limits.review_extended
                } else {
                    limits.review
                },
            ));
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

    /// Records that the rejected applicant was told of the refusal and its reasons.
    pub fn notify_refusal(
        &self,
        officer: &Officer,
        today: Date,
        channel: &str,
    ) -> Result<Vec<CaseEvent>, CaseError> {
        self.authorize(officer, Act::NotifyRefusal)?;
        if channel.trim().is_empty() {
            return Err(CaseError::Invalid {
                field: "channel".into(),
                reason: "how the applicant was told".into(),
            });
        }
        Ok(vec![CaseEvent::RefusalNotified(pb::RefusalNotified {
            case_id: self.case_id.clone(),
            officer: Some(officer.to_proto()),
            notified_on: Some(proto_date(today)),
            channel: channel.to_owned(),
        })])
    }

    /// Starts the public notice for `first_day..=last_day` (from the policy's publicity days).
    pub fn start_publicity(
        &self,
        officer: &Officer,
        first_day: Date,
        last_day: Date,
    ) -> Result<Vec<CaseEvent>, CaseError> {
        self.authorize(officer, Act::StartPublicity)?;
        let mut events = vec![CaseEvent::PublicityStarted(pb::PublicityStarted {
            case_id: self.case_id.clone(),
            first_day: Some(proto_date(first_day)),
            last_day: Some(proto_date(last_day)),
            started_by: Some(officer.to_proto()),
        })];
        events.extend(self.next_stage_event());
        Ok(events)
    }

    /// An objection (received through disclosure) reopens the case for investigation.
    pub fn receive_objection(
        &self,
        objection: pb::ObjectionReceived,
    ) -> Result<Vec<CaseEvent>, CaseError> {
        if self.status != CaseStatus::Open || self.publicity.is_none() {
            return Err(CaseError::NotNow(
                "objections are heard while the case is publicised".into(),
            ));
        }
        let mut events = vec![CaseEvent::ObjectionReceived(objection)];
        if self.current_stage() != Some(StageKind::Investigation) {
            events.push(CaseEvent::StageEntered(pb::StageEntered {
                case_id: self.case_id.clone(),
                stage: StageKind::Investigation.as_str().into(),
            }));
        }
        Ok(events)
    }

    pub fn answer_objection(
        &self,
        officer: &Officer,
        objection_id: &str,
        upheld: bool,
        answer: &str,
    ) -> Result<Vec<CaseEvent>, CaseError> {
        self.authorize(officer, Act::AnswerObjection)?;
        if !self.open_objections.contains(objection_id) {
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
            objection_id: objection_id.to_owned(),
            officer: Some(officer.to_proto()),
            upheld,
            answer: answer.to_owned(),
        })])
    }

    /// 先行救助: pays at once, never above the policy cap.
    pub fn grant_assist_first(
        &self,
        officer: &Officer,
        amount_fen: i64,
        cap_fen: i64,
        reason: &str,
    ) -> Result<Vec<CaseEvent>, CaseError> {
        self.authorize(officer, Act::AssistFirst)?;
        if amount_fen <= 0 {
            return Err(CaseError::Invalid {
                field: "amount".into(),
                reason: "must be positive".into(),
            });
        }
        if amount_fen > cap_fen {
            return Err(CaseError::Invalid {
                field: "amount".into(),
                reason: format!("exceeds the assist-first cap of {} fen", cap_fen),
            });
        }
        let mut events = vec![CaseEvent::AssistFirstGranted(pb::AssistFirstGranted {
            case_id: self.case_id.clone(),
            officer: Some(officer.to_proto()),
            amount: Some(pb::Money { fen: amount_fen }),
            cap: Some(pb::Money { fen: cap_fen }),
            reason: reason.to_owned(),
        })];
        events.extend(self.next_stage_event());
        Ok(events)
    }

    /// Approves or rejects: four eyes, publicity over, objections answered, departures justified.
    #[allow(clippy::too_many_arguments)]
    pub fn decide(
        &self,
        officer: &Officer,
        today: Date,
        approve: bool,
        monthly_amount_fen: i64,
        start_month: &str,
        reasons: &[String],
        policy: pb::PolicyResult,
        departure_justification: &str,
        re_review_due: Option<Date>,
    ) -> Result<Vec<CaseEvent>, CaseError> {
        self.authorize(officer, Act::Decide)?;
        if !self.open_objections.is_empty() {
            return Err(CaseError::NotNow("an objection is still unanswered".into()));
        }
        if self.workflow.has_publicity() {
            match self.publicity {
                Some((_, last_day)) if today > last_day => {}
                Some((_, last_day)) => {
                    return Err(CaseError::NotNow(format!(
                        "the public notice runs until {last_day}"
                    )));
                }
                None => return Err(CaseError::NotNow("the case has not been publicised".into())),
            }
        }
        let departs = require_justification(
            &policy,
            approve,
            monthly_amount_fen,
            departure_justification,
        )?;
        let mut events = Vec::new();
        if departs {
            events.push(self.departure(
                officer,
                StageKind::Decision,
                &policy,
                approve,
                monthly_amount_fen,
                departure_justification,
            ));
        }
        if approve {
            let valid_month = start_month.len() == 7
                && start_month.as_bytes()[4] == b'-'
                && start_month[..4].parse::<u16>().is_ok()
                && start_month[5..]
                    .parse::<u8>()
                    .is_ok_and(|month| (1..=12).contains(&month));
            if !valid_month {
                return Err(CaseError::Invalid {
                    field: "start_month".into(),
                    reason: "YYYY-MM".into(),
                });
            }
            events.push(CaseEvent::Approved(pb::CaseApproved {
                case_id: self.case_id.clone(),
                approver: Some(officer.to_proto()),
                program_code: self.program_code.clone(),
                monthly_amount: Some(pb::Money {
                    fen: monthly_amount_fen,
                }),
                start_month: start_month.to_owned(),
                policy: Some(policy),
                reasons: reasons.join("; "),
                departure_justification: departure_justification.to_owned(),
            }));
            if let Some(due_on) = re_review_due {
                events.push(CaseEvent::ReReviewScheduled(pb::ReReviewScheduled {
                    case_id: self.case_id.clone(),
                    due_on: Some(proto_date(due_on)),
                }));
            }
            Ok(events)
        } else {
            if reasons.iter().all(|reason| reason.trim().is_empty()) {
                return Err(CaseError::Invalid {
                    field: "reasons".into(),
                    reason: "a rejection states its reasons".into(),
                });
            }
            events.push(CaseEvent::Rejected(pb::CaseRejected {
                case_id: self.case_id.clone(),
                approver: Some(officer.to_proto()),
                reasons: reasons.to_vec(),
                policy: Some(policy),
                departure_justification: departure_justification.to_owned(),
                decided_on: Some(proto_date(today)),
            }));
            Ok(events)
        }
    }

    /// Deadlines (`name`, due date) that passed by `today` and were not yet recorded — or
    /// were recorded on a provisional date that the calendar now computes differently.
    pub fn breached_deadlines(&self, today: Date, deadlines: &[(&str, DueDate)]) -> Vec<CaseEvent> {
        if matches!(self.status, CaseStatus::Withdrawn | CaseStatus::Terminated) {
            return Vec::new();
        }
        deadlines
            .iter()
            .filter(|(name, due)| {
                today > due.date
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
                    detected_on: Some(proto_date(today)),
                    provisional: due.provisional,
                })
            })
            .collect()
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
    amount_fen: i64,
    justification: &str,
) -> Result<bool, CaseError> {
    let engine_amount = policy.amount.as_ref().map_or(0, |money| money.fen);
    let departs = policy.eligible != approve || (approve && engine_amount != amount_fen);
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use time::macros::date;

    const VILLAGE: &str = "990101001001";
    const STREET: &str = "990101001000";
    const DISTRICT: &str = "990101000000";

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

    fn exact_on(date: Date) -> DueDate {
        DueDate {
            date,
            provisional: false,
        }
    }

    fn officer(subject: &str, role: &str, org_unit: &str) -> Officer {
        Officer {
            subject: subject.into(),
            role: role.into(),
            org_unit: OrgUnitCode::parse(org_unit).unwrap(),
        }
    }

    fn case(workflow: &str, relative_of_official: bool) -> CaseState {
        let workflow = Workflows::example().unwrap().get(workflow).unwrap().clone();
        let opened = pb::CaseOpened {
            case_id: "case-1".into(),
            program_code: "dibao_rural".into(),
            hukou_org_unit_code: VILLAGE.into(),
            relative_of_official,
            accepted_by: "clerk".into(),
            accepted_by_role: "village_clerk".into(),
            accepted_org_unit_code: VILLAGE.into(),
            ..Default::default()
        };
        CaseState::opened(&opened, workflow).unwrap()
    }

    fn with_workflow(state: CaseState, toml: &str, code: &str) -> CaseState {
        let workflow = Workflows::from_toml_str(toml)
            .unwrap()
            .get(code)
            .unwrap()
            .clone();
        CaseState { workflow, ..state }
    }

    fn denied(result: Result<Vec<CaseEvent>, CaseError>) -> String {
        match result {
            Err(CaseError::NotAllowed(rule)) => rule,
            other => panic!("expected PERMISSION_DENIED, got {other:?}"),
        }
    }

    fn approve(state: &CaseState, approver: &Officer) -> Result<Vec<CaseEvent>, CaseError> {
        state.decide(
            approver,
            date!(2026 - 10 - 5),
            true,
            132_000,
            "2026-11",
            &[],
            engine(true, 132_000),
            "",
            None,
        )
    }

    /// A relative-of-official dibao case whose investigators were assigned.
    fn relative_case_assigned() -> CaseState {
        let mut state = case("means_tested_review", true);
        let street = officer("reviewer", "street_reviewer", STREET);
        run(&mut state, |case| {
            case.assign_investigators(
                &street,
                &[
                    officer("inv-1", "village_clerk", VILLAGE),
                    officer("inv-2", "village_clerk", VILLAGE),
                ],
            )
        });
        state
    }

    fn run(
        state: &mut CaseState,
        decide: impl FnOnce(&CaseState) -> Result<Vec<CaseEvent>, CaseError>,
    ) {
        for event in decide(state).unwrap() {
            state.apply(&event);
        }
    }

    fn engine(eligible: bool, fen: i64) -> pb::PolicyResult {
        pb::PolicyResult {
            eligible,
            amount: Some(pb::Money { fen }),
            policy_version: "v".into(),
            ..Default::default()
        }
    }

    /// A dibao case up to its decision stage, publicised 2026-09-28..=2026-10-04.
    fn publicised_dibao() -> CaseState {
        let mut state = case("means_tested_review", false);
        let street = officer("reviewer", "street_reviewer", STREET);
        let investigators = [
            officer("clerk", "village_clerk", VILLAGE),
            officer("inv-2", "village_clerk", VILLAGE),
        ];
        run(&mut state, |case| {
            case.assign_investigators(&street, &investigators)
        });
        run(&mut state, |case| {
            case.record_visit(&investigators[0], date!(2026 - 9 - 1), vec![])
        });
        run(&mut state, |case| {
            case.record_visit(&investigators[1], date!(2026 - 9 - 1), vec![])
        });
        assert_eq!(state.current_stage(), Some(StageKind::Verification));
        run(&mut state, |case| {
            case.request_verification(&street, &["civil_affairs".into()])
        });
        run(&mut state, |case| {
            case.answer_verification(pb::VerificationAnswered {
                case_id: "case-1".into(),
                department_code: "civil_affairs".into(),
                ..Default::default()
            })
        });
        run(&mut state, |case| {
            case.record_opinion(
                &street,
                date!(2026 - 9 - 20),
                true,
                132_000,
                "eligible",
                engine(true, 132_000),
                "",
            )
        });
        run(&mut state, |case| {
            case.start_publicity(&street, date!(2026 - 9 - 28), date!(2026 - 10 - 4))
        });
        assert_eq!(state.current_stage(), Some(StageKind::Decision));
        state
    }

    #[test]
    fn a_dibao_case_walks_the_whole_path() {
        let mut state = publicised_dibao();
        let approver = officer("approver", "center_approver", DISTRICT);
        run(&mut state, |case| {
            case.decide(
                &approver,
                date!(2026 - 10 - 5),
                true,
                132_000,
                "2026-11",
                &[],
                engine(true, 132_000),
                "",
                None,
            )
        });
        assert_eq!(state.status, CaseStatus::Approved);
    }

    #[test]
    fn no_decision_before_the_public_notice_ends() {
        let state = publicised_dibao();
        let approver = officer("approver", "center_approver", DISTRICT);
        let early = state.decide(
            &approver,
            date!(2026 - 10 - 4),
            true,
            132_000,
            "2026-11",
            &[],
            engine(true, 132_000),
            "",
            None,
        );
        assert!(matches!(early, Err(CaseError::NotNow(_))), "{early:?}");
    }

    #[test]
    fn four_eyes_and_one_tier_per_officer() {
        let state = publicised_dibao();
        // An investigator who is also an approver still may not decide.
        let investigator_as_approver = officer("inv-2", "center_approver", DISTRICT);
        let refused = state.decide(
            &investigator_as_approver,
            date!(2026 - 10 - 5),
            true,
            132_000,
            "2026-11",
            &[],
            engine(true, 132_000),
            "",
            None,
        );
        assert!(
            matches!(refused, Err(CaseError::NotAllowed(_))),
            "{refused:?}"
        );
        let acceptor = officer("clerk", "center_approver", DISTRICT);
        assert!(matches!(
            state.decide(
                &acceptor,
                date!(2026 - 10 - 5),
                true,
                132_000,
                "2026-11",
                &[],
                engine(true, 132_000),
                "",
                None
            ),
            Err(CaseError::NotAllowed(_))
        ));
        // The street reviewer acted at the street tier; at the district tier they are refused.
        let same_person_at_district = officer("reviewer", "center_approver", DISTRICT);
        let two_tiers = state.decide(
            &same_person_at_district,
            date!(2026 - 10 - 5),
            true,
            132_000,
            "2026-11",
            &[],
            engine(true, 132_000),
            "",
            None,
        );
        assert_eq!(two_tiers, Err(CaseError::NotAllowed(ONE_SEAT_RULE.into())));
    }

    #[test]
    fn departing_from_the_engine_needs_a_justification() {
        let state = publicised_dibao();
        let approver = officer("approver", "center_approver", DISTRICT);
        let more = state.decide(
            &approver,
            date!(2026 - 10 - 5),
            true,
            150_000,
            "2026-11",
            &[],
            engine(true, 132_000),
            "",
            None,
        );
        assert!(
            matches!(more, Err(CaseError::Invalid { ref field, .. }) if field == "departure_justification"),
            "{more:?}"
        );
        let justified = state.decide(
            &approver,
            date!(2026 - 10 - 5),
            true,
            150_000,
            "2026-11",
            &[],
            engine(true, 132_000),
            "medical costs verified",
            None,
        );
        assert!(justified.is_ok());
    }

    #[test]
    fn an_objection_reopens_the_case_and_must_be_answered() {
        let mut state = publicised_dibao();
        let objection = pb::ObjectionReceived {
            case_id: "case-1".into(),
            objection_id: "obj-1".into(),
            ..Default::default()
        };
        run(&mut state, |case| case.receive_objection(objection));
        assert_eq!(state.current_stage(), Some(StageKind::Investigation));
        assert!(state.visits.is_empty(), "the investigation starts over");
        let street = officer("reviewer", "street_reviewer", STREET);
        run(&mut state, |case| {
            case.answer_objection(&street, "obj-1", false, "income verified again")
        });
        assert!(state.open_objections.is_empty());
    }

    #[test]
    fn a_relative_of_an_official_needs_a_district_visit() {
        let mut state = case("means_tested_review", true);
        let street = officer("reviewer", "street_reviewer", STREET);
        let investigators = [
            officer("inv-1", "village_clerk", VILLAGE),
            officer("inv-2", "village_clerk", VILLAGE),
        ];
        run(&mut state, |case| {
            case.assign_investigators(&street, &investigators)
        });
        run(&mut state, |case| {
            case.record_visit(&investigators[0], date!(2026 - 9 - 1), vec![])
        });
        run(&mut state, |case| {
            case.record_visit(&investigators[1], date!(2026 - 9 - 1), vec![])
        });
        assert_eq!(
            state.current_stage(),
            Some(StageKind::Investigation),
            "still waiting for the district"
        );
        run(&mut state, |case| {
            case.record_visit(
                &officer("district-visitor", "center_reviewer", DISTRICT),
                date!(2026 - 9 - 2),
                vec![],
            )
        });
        assert_eq!(state.current_stage(), Some(StageKind::Verification));
    }

    #[test]
    fn assist_first_is_capped() {
        let state = case("emergency_evaluation", false);
        let street = officer("reviewer", "street_reviewer", STREET);
        let above = state.grant_assist_first(&street, 300_001, 300_000, "fire");
        assert!(
            matches!(above, Err(CaseError::Invalid { ref field, .. }) if field == "amount"),
            "{above:?}"
        );
        let events = state
            .grant_assist_first(&street, 300_000, 300_000, "fire")
            .unwrap();
        assert!(
            matches!(events.last(), Some(CaseEvent::StageEntered(entered)) if entered.stage == "investigation")
        );
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
        let mut state = case("means_tested_review", false);
        assert!(
            state
                .breached_deadlines(due, &[("district_decision", exact_on(due))])
                .is_empty()
        );
        let breached = state.breached_deadlines(
            due.next_day().unwrap(),
            &[("district_decision", exact_on(due))],
        );
        assert_eq!(breached.len(), 1);
        run(&mut state, |_| Ok(breached));
        assert!(
            state
                .breached_deadlines(
                    due.next_day().unwrap(),
                    &[("district_decision", exact_on(due))]
                )
                .is_empty()
        );
    }

    #[test]
    fn the_wrong_role_or_stage_is_refused() {
        let state = case("means_tested_review", false);
        let approver = officer("approver", "center_approver", DISTRICT);
        assert!(matches!(
            state.assign_investigators(&approver, &[]),
            Err(CaseError::NotAllowed(_))
        ));
        let street = officer("reviewer", "street_reviewer", STREET);
        assert!(matches!(
            state.start_publicity(&street, date!(2026 - 9 - 1), date!(2026 - 9 - 7)),
            Err(CaseError::NotNow(_))
        ));
        let other_street = officer("other", "street_reviewer", "990101002000");
        assert!(matches!(
            state.assign_investigators(&other_street, &[]),
            Err(CaseError::NotAllowed(_))
        ));
    }

    #[test]
    fn a_running_benefit_is_adjusted_or_ended_from_the_following_month() {
        let mut state = publicised_dibao();
        let approver = officer("approver", "center_approver", DISTRICT);
        run(&mut state, |case| {
            case.decide(
                &approver,
                date!(2026 - 10 - 5),
                true,
                132_000,
                "2026-11",
                &[],
                engine(true, 132_000),
                "",
                Some(date!(2027 - 4 - 5)),
            )
        });
        assert_eq!(state.re_review_due, Some(date!(2027 - 4 - 5)));
        assert!(
            state
                .reassess(date!(2026 - 12 - 3), engine(true, 132_000), "no change")
                .is_empty()
        );
        let lower = state.reassess(date!(2026 - 12 - 3), engine(true, 90_000), "member died");
        assert!(
            matches!(&lower[..], [CaseEvent::BenefitAdjusted(adjusted)] if adjusted.effective_month == "2027-01")
        );
        let ended = state.reassess(date!(2026 - 11 - 3), engine(false, 0), "income rose");
        assert!(
            matches!(&ended[..], [CaseEvent::BenefitTerminated(terminated)] if terminated.effective_month == "2026-12")
        );
        run(&mut state, |_| Ok(ended));
        assert_eq!(state.status, CaseStatus::Terminated);
    }

    #[test]
    fn returns_withdrawals_and_one_extension() {
        let mut state = publicised_dibao();
        let street = officer("reviewer", "street_reviewer", STREET);
        run(&mut state, |case| {
            case.return_for_material(&street, &["income_statement".into()], "收入证明不清")
        });
        assert_eq!(state.current_stage(), Some(StageKind::Investigation));
        run(&mut state, |case| {
            case.extend_deadline(&street, "核对未返回")
        });
        assert!(matches!(
            state.extend_deadline(&street, "again"),
            Err(CaseError::NotNow(_))
        ));
        let clerk = officer("clerk", "village_clerk", VILLAGE);
        run(&mut state, |case| case.withdraw(&clerk, "申请人撤回"));
        assert_eq!(state.status, CaseStatus::Withdrawn);
        assert!(matches!(
            state.withdraw(&clerk, "again"),
            Err(CaseError::NotNow(_))
        ));
    }

    #[test]
    fn the_deadline_plan_follows_the_stage() {
        let limits = DeadlineLimits {
            investigation_start: exact_on(date!(2026 - 10 - 9)),
            review: exact_on(date!(2026 - 11 - 10)),
            review_extended: exact_on(date!(2026 - 12 - 1)),
            district_decision: Some(exact_on(date!(2026 - 10 - 20))),
            refusal_notice: None,
        };
        let fresh = case("means_tested_review", false);
        let names: Vec<&str> = fresh
            .deadlines(&limits)
            .iter()
            .map(|(name, _)| *name)
            .collect();
        assert_eq!(names, ["investigation_start", "review"]);
        let at_decision = publicised_dibao();
        let plan = at_decision.deadlines(&limits);
        assert!(plan.contains(&("district_decision", exact_on(date!(2026 - 10 - 20)))));
        assert!(!plan.iter().any(|(name, _)| *name == "investigation_start"));
    }

    #[test]
    fn a_refusal_must_be_notified_within_its_working_days() {
        let mut state = publicised_dibao();
        let approver = officer("approver", "center_approver", DISTRICT);
        run(&mut state, |case| {
            case.decide(
                &approver,
                date!(2026 - 10 - 5),
                false,
                0,
                "",
                &["收入超过标准".into()],
                engine(false, 0),
                "",
                None,
            )
        });
        assert_eq!(state.rejected_on, Some(date!(2026 - 10 - 5)));
        let limits = DeadlineLimits {
            investigation_start: exact_on(date!(2026 - 9 - 3)),
            review: exact_on(date!(2026 - 11 - 10)),
            review_extended: exact_on(date!(2026 - 12 - 1)),
            district_decision: None,
            refusal_notice: Some(exact_on(date!(2026 - 10 - 10))),
        };
        assert_eq!(
            state.deadlines(&limits),
            [("refusal_notice", exact_on(date!(2026 - 10 - 10)))]
        );
        assert_eq!(
            state
                .breached_deadlines(date!(2026 - 10 - 11), &state.deadlines(&limits))
                .len(),
            1
        );
        let clerk = officer("clerk", "village_clerk", VILLAGE);
        run(&mut state, |case| {
            case.notify_refusal(&clerk, date!(2026 - 10 - 8), "in_person")
        });
        assert!(state.deadlines(&limits).is_empty());
        assert!(matches!(
            state.notify_refusal(&clerk, date!(2026 - 10 - 8), "post"),
            Err(CaseError::NotNow(_))
        ));
    }

    #[test]
    fn the_relative_visit_is_made_only_by_the_workflows_roles_at_its_tier() {
        let state = relative_case_assigned();
        let on = date!(2026 - 9 - 2);
        // Before the fix any district-tier token counted as the district visit.
        for role in ["auditor", "admin", "department", "center_approver"] {
            let rule = denied(state.record_visit(&officer("someone", role, DISTRICT), on, vec![]));
            assert!(
                rule.contains("may not relative_of_official_visit"),
                "{role}: {rule}"
            );
        }
        // The right role at the wrong tier, or outside the case's district.
        let street_level = officer("cr-street", "center_reviewer", STREET);
        assert!(denied(state.record_visit(&street_level, on, vec![])).contains("tier"));
        let elsewhere = officer("cr-other", "center_reviewer", "990102000000");
        assert!(denied(state.record_visit(&elsewhere, on, vec![])).contains("org unit"));
        // Four eyes: the street reviewer who assigned cannot come back as the district visitor.
        let same_person = officer("reviewer", "center_reviewer", DISTRICT);
        assert_eq!(
            denied(state.record_visit(&same_person, on, vec![])),
            ONE_SEAT_RULE
        );
        let visitor = officer("cr-1", "center_reviewer", DISTRICT);
        let events = state.record_visit(&visitor, on, vec![]).unwrap();
        assert!(
            matches!(&events[..], [CaseEvent::HomeVisitRecorded(visit)] if visit.relative_of_official_visit)
        );
        // Not a relative-of-official case: only assigned investigators visit.
        let plain = case("means_tested_review", false);
        denied(plain.record_visit(&visitor, on, vec![]));
        let unassigned_clerk = officer("clerk-9", "village_clerk", VILLAGE);
        assert!(denied(plain.record_visit(&unassigned_clerk, on, vec![])).contains("investigator"));
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
        let mut state = with_workflow(
            case("means_tested_review", false),
            variant,
            "district_publicity",
        );
        let reviewer = officer("dual", "center_reviewer", DISTRICT);
        let investigator = officer("inv-1", "village_clerk", VILLAGE);
        let assigner = officer("clerk", "village_clerk", VILLAGE);
        run(&mut state, |case| {
            case.assign_investigators(&assigner, std::slice::from_ref(&investigator))
        });
        run(&mut state, |case| {
            case.record_visit(&investigator, date!(2026 - 9 - 1), vec![])
        });
        run(&mut state, |case| {
            case.start_publicity(&reviewer, date!(2026 - 9 - 2), date!(2026 - 9 - 8))
        });
        run(&mut state, |case| {
            case.receive_objection(pb::ObjectionReceived {
                case_id: "case-1".into(),
                objection_id: "obj-1".into(),
                ..Default::default()
            })
        });
        run(&mut state, |case| {
            case.answer_objection(&reviewer, "obj-1", false, "核实无误")
        });
        run(&mut state, |case| {
            case.record_visit(&investigator, date!(2026 - 9 - 10), vec![])
        });
        run(&mut state, |case| {
            case.start_publicity(&reviewer, date!(2026 - 9 - 11), date!(2026 - 9 - 17))
        });
        let same_subject = officer("dual", "center_approver", DISTRICT);
        assert_eq!(denied(approve(&state, &same_subject)), ONE_SEAT_RULE);
        assert!(approve(&state, &officer("approver", "center_approver", DISTRICT)).is_ok());
    }

    #[test]
    fn objections_are_answered_by_the_publicity_roles_at_their_tier() {
        let mut state = publicised_dibao();
        run(&mut state, |case| {
            case.receive_objection(pb::ObjectionReceived {
                case_id: "case-1".into(),
                objection_id: "obj-1".into(),
                ..Default::default()
            })
        });
        // Before the fix a center reviewer (any tier) could answer.
        let district = officer("cr-1", "center_reviewer", DISTRICT);
        assert!(denied(state.answer_objection(&district, "obj-1", false, "x")).contains("may not"));
        let other_street = officer("other", "street_reviewer", "990101002000");
        assert!(
            denied(state.answer_objection(&other_street, "obj-1", false, "x")).contains("org unit")
        );
    }

    #[test]
    fn return_withdraw_and_extend_apply_the_four_eyes_rule() {
        // "reviewer" acted at the street tier; before the fix they could return, withdraw or
        // extend as a district officer of the same case.
        let state = publicised_dibao();
        let same_at_district = officer("reviewer", "center_reviewer", DISTRICT);
        assert_eq!(
            denied(state.return_for_material(&same_at_district, &[], "缺材料")),
            ONE_SEAT_RULE
        );
        assert_eq!(
            denied(state.withdraw(&same_at_district, "撤回")),
            ONE_SEAT_RULE
        );
        assert_eq!(
            denied(state.extend_deadline(&same_at_district, "核对未返回")),
            ONE_SEAT_RULE
        );
        // The investigator "inv-2" (village clerk) cannot come back as the street reviewer.
        let investigator_at_street = officer("inv-2", "street_reviewer", STREET);
        assert_eq!(
            denied(state.return_for_material(&investigator_at_street, &[], "缺材料")),
            ONE_SEAT_RULE
        );
        // Whoever extended the time limit in the approver's seat may still decide.
        let mut extended = state.clone();
        let approver = officer("approver", "center_approver", DISTRICT);
        run(&mut extended, |case| {
            case.extend_deadline(&approver, "核对未返回")
        });
        assert!(approve(&extended, &approver).is_ok());
    }

    #[test]
    fn a_first_round_district_visitor_cannot_decide_after_the_case_reopens() {
        let mut state = relative_case_assigned();
        let first_visitor = officer("cr-1", "center_reviewer", DISTRICT);
        let street = officer("reviewer", "street_reviewer", STREET);
        for visitor in [
            officer("inv-1", "village_clerk", VILLAGE),
            officer("inv-2", "village_clerk", VILLAGE),
            first_visitor.clone(),
        ] {
            run(&mut state, |case| {
                case.record_visit(&visitor, date!(2026 - 9 - 2), vec![])
            });
        }
        assert_eq!(state.current_stage(), Some(StageKind::Verification));
        // Sent back: the visits start over, who acted does not.
        run(&mut state, |case| {
            case.return_for_material(&street, &["income_statement".into()], "收入证明不清")
        });
        assert!(state.visits.is_empty());
        assert!(
            state
                .acted
                .iter()
                .any(|acted| acted.subject == "cr-1" && acted.act == Act::RelativeVisit)
        );
        let as_approver = officer("cr-1", "center_approver", DISTRICT);
        assert!(
            state
                .four_eyes("cr-1", "center_approver", Tier::District, Act::Decide)
                .is_err()
        );
        // The same subject in the approver's seat is refused whatever stage the case is at.
        assert_eq!(
            denied(state.extend_deadline(&as_approver, "核对未返回")),
            ONE_SEAT_RULE
        );
    }

    #[test]
    fn whoever_took_part_cannot_decide_even_in_the_approvers_seat() {
        // A district officer who accepted the application (in the approver's role) may not
        // decide it; neither may the officer who wrote the preliminary opinion in a workflow
        // where the district writes it.
        let opened = pb::CaseOpened {
            case_id: "case-1".into(),
            program_code: "dibao_rural".into(),
            hukou_org_unit_code: VILLAGE.into(),
            accepted_by: "approver".into(),
            accepted_by_role: "center_approver".into(),
            accepted_org_unit_code: DISTRICT.into(),
            workflow: "means_tested_review".into(),
            ..Default::default()
        };
        let state = publicised_dibao();
        let accepted_by_approver = CaseState {
            acted: CaseState::opened(&opened, state.workflow.clone())
                .unwrap()
                .acted
                .into_iter()
                .chain(state.acted.iter().cloned())
                .collect(),
            ..state.clone()
        };
        let approver = officer("approver", "center_approver", DISTRICT);
        assert_eq!(
            denied(approve(&accepted_by_approver, &approver)),
            INDEPENDENT_DECISION_RULE
        );
        assert!(approve(&state, &approver).is_ok());
    }

    #[test]
    fn naming_someone_is_not_acting_and_only_the_stages_roles_can_be_named() {
        // Before the fix a clerk could name the district's approvers as investigators, which
        // wrote them into the record of who acted and barred them from deciding.
        let state = case("means_tested_review", false);
        let clerk = officer("clerk", "village_clerk", VILLAGE);
        let approvers = [
            officer("approver", "center_approver", DISTRICT),
            officer("approver-2", "center_approver", DISTRICT),
        ];
        assert!(matches!(
            state.assign_investigators(&clerk, &approvers),
            Err(CaseError::Invalid { ref field, .. }) if field == "investigators[0]"
        ));
        let mut state = state;
        let named = [
            officer("inv-1", "village_clerk", VILLAGE),
            officer("inv-2", "village_clerk", VILLAGE),
        ];
        run(&mut state, |case| case.assign_investigators(&clerk, &named));
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
        let seated = [
            officer("inv-1", "village_clerk", VILLAGE),
            officer("clerk", "street_reviewer", STREET),
        ];
        let street = officer("reviewer", "street_reviewer", STREET);
        assert!(matches!(
            state.assign_investigators(&street, &seated),
            Err(CaseError::Invalid { ref field, ref reason }) if field == "investigators[1]" && reason == ONE_SEAT_RULE
        ));
    }

    #[test]
    fn a_recused_official_is_refused_every_command() {
        let opened = pb::CaseOpened {
            case_id: "case-1".into(),
            program_code: "dibao_rural".into(),
            hukou_org_unit_code: VILLAGE.into(),
            relative_of_official: true,
            accepted_by: "clerk".into(),
            recused_subjects: vec!["cadre".into()],
            ..Default::default()
        };
        let workflow = Workflows::example()
            .unwrap()
            .get("means_tested_review")
            .unwrap()
            .clone();
        let mut state = CaseState::opened(&opened, workflow).unwrap();
        let on = date!(2026 - 9 - 2);
        let cadre_street = officer("cadre", "street_reviewer", STREET);
        let cadre_district = officer("cadre", "center_reviewer", DISTRICT);
        let investigators = [
            officer("inv-1", "village_clerk", VILLAGE),
            officer("inv-2", "village_clerk", VILLAGE),
        ];
        assert_eq!(
            denied(state.assign_investigators(&cadre_street, &investigators)),
            RECUSAL_RULE
        );
        assert_eq!(
            denied(state.record_visit(&cadre_district, on, vec![])),
            RECUSAL_RULE
        );
        assert_eq!(denied(state.withdraw(&cadre_street, "x")), RECUSAL_RULE);
        assert_eq!(
            denied(state.extend_deadline(&cadre_street, "x")),
            RECUSAL_RULE
        );
        assert_eq!(
            denied(state.return_for_material(&cadre_street, &[], "x")),
            RECUSAL_RULE
        );
        // Nor may anyone name them.
        let street = officer("reviewer", "street_reviewer", STREET);
        let with_cadre = [
            officer("inv-1", "village_clerk", VILLAGE),
            officer("cadre", "village_clerk", VILLAGE),
        ];
        assert_eq!(
            denied(state.assign_investigators(&street, &with_cadre)),
            RECUSAL_RULE
        );
        // A relation flagged after the case opened recuses that official too, once.
        let late = state.recuse("cadre-2", "reg-2");
        assert!(
            matches!(&late[..], [CaseEvent::OfficialRecused(recused)] if recused.official_subject == "cadre-2")
        );
        run(&mut state, |_| Ok(late));
        assert!(state.recuse("cadre-2", "reg-2").is_empty());
        assert!(state.recuse("", "reg-3").is_empty());
        let cadre_2 = officer("cadre-2", "street_reviewer", STREET);
        assert_eq!(
            denied(state.assign_investigators(&cadre_2, &investigators)),
            RECUSAL_RULE
        );
        assert!(state.assign_investigators(&street, &investigators).is_ok());
    }

    #[test]
    fn a_case_follows_its_household_to_the_new_village() {
        let mut state = case("means_tested_review", false);
        let new_village = OrgUnitCode::parse("990101002001").unwrap();
        let events = state.follow_household("hh-1", &new_village);
        assert!(
            matches!(&events[..], [CaseEvent::FollowedHousehold(followed)]
            if followed.from_org_unit_code == VILLAGE && followed.to_org_unit_code == "990101002001")
        );
        run(&mut state, |_| Ok(events));
        assert_eq!(state.hukou_org_unit, new_village);
        assert!(
            state.follow_household("hh-1", &new_village).is_empty(),
            "idempotent"
        );
        let investigators = [
            officer("inv-1", "village_clerk", VILLAGE),
            officer("inv-2", "village_clerk", VILLAGE),
        ];
        let old_street = officer("reviewer", "street_reviewer", STREET);
        assert!(
            denied(state.assign_investigators(&old_street, &investigators)).contains("org unit")
        );
        let new_street = officer("reviewer-2", "street_reviewer", "990101002000");
        let new_investigators = [
            officer("inv-3", "village_clerk", "990101002001"),
            officer("inv-4", "village_clerk", "990101002001"),
        ];
        assert!(matches!(
            state.assign_investigators(&new_street, &investigators),
            Err(CaseError::Invalid { .. })
        ));
        assert!(
            state
                .assign_investigators(&new_street, &new_investigators)
                .is_ok()
        );
        // A closed case stays where it was decided.
        let mut withdrawn = case("means_tested_review", false);
        run(&mut withdrawn, |case| {
            case.withdraw(&officer("clerk", "village_clerk", VILLAGE), "撤回")
        });
        assert!(withdrawn.follow_household("hh-1", &new_village).is_empty());
    }

    #[test]
    fn a_provisional_breach_is_recorded_again_when_the_notice_makes_it_exact() {
        let mut state = case("means_tested_review", false);
        let provisional = DueDate {
            date: date!(2027 - 1 - 12),
            provisional: true,
        };
        let breached = state.breached_deadlines(date!(2027 - 1 - 13), &[("review", provisional)]);
        assert!(
            matches!(&breached[..], [CaseEvent::DeadlineBreached(breach)] if breach.provisional)
        );
        run(&mut state, |_| Ok(breached));
        // The same provisional date: nothing new.
        assert!(
            state
                .breached_deadlines(date!(2027 - 1 - 13), &[("review", provisional)])
                .is_empty()
        );
        // The 2027 notice arrives and moves the date later: not a breach on the 13th …
        let exact_date = exact_on(date!(2027 - 1 - 14));
        assert!(
            state
                .breached_deadlines(date!(2027 - 1 - 13), &[("review", exact_date)])
                .is_empty()
        );
        assert!(
            state
                .breaches_now(date!(2027 - 1 - 13), &[("review", exact_date)])
                .is_empty()
        );
        // … but on the 15th it is, recorded once more, now exact.
        let again = state.breached_deadlines(date!(2027 - 1 - 15), &[("review", exact_date)]);
        assert!(matches!(&again[..], [CaseEvent::DeadlineBreached(breach)] if !breach.provisional));
        run(&mut state, |_| Ok(again));
        assert!(
            state
                .breached_deadlines(date!(2027 - 1 - 16), &[("review", exact_date)])
                .is_empty()
        );
        assert_eq!(
            state.breaches_now(date!(2027 - 1 - 16), &[("review", exact_date)]),
            ["review"]
        );
    }
}
