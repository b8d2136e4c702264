//! The review case (案件): a stage machine driven by the workflow, with the rules that make
//! every step accountable — who may act at which stage and tier, four eyes (whoever accepted or
//! investigated a case cannot decide it; nobody acts at two tiers of one case), relatives of
//! officials needing a district home visit, no decision before publicity ends or while an
//! objection is open, decisions that depart from the policy engine's result only with a written
//! justification, the assist-first cap, and deadline breaches. Pure: commands in, events out.

use std::collections::{BTreeMap, BTreeSet};

use sunshine_domain::{OrgTier, OrgUnitCode};
use sunshine_proto::v1 as pb;
use time::Date;

pub use sunshine_proto::dates::from_date as proto_date;
use sunshine_proto::dates::to_date as date_of;

use crate::workflow::{StageKind, Tier, Workflow};

/// An acting officer, from the verified token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Officer {
    pub subject: String,
    pub role: String,
    pub org_unit: OrgUnitCode,
}

impl Officer {
    pub fn tier(&self) -> Tier {
        match self.org_unit.tier() {
            OrgTier::District => Tier::District,
            OrgTier::StreetTown => Tier::StreetTown,
            OrgTier::VillageCommunity => Tier::VillageCommunity,
        }
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

/// A case's events.
#[derive(Debug, Clone, PartialEq)]
pub enum CaseEvent {
    Opened(pb::CaseOpened),
    StageEntered(pb::StageEntered),
    InvestigatorsAssigned(pb::InvestigatorsAssigned),
    HomeVisitRecorded(pb::HomeVisitRecorded),
    VerificationRequested(pb::VerificationRequested),
    VerificationAnswered(pb::VerificationAnswered),
    OpinionRecorded(pb::PreliminaryOpinionRecorded),
    PublicityStarted(pb::PublicityStarted),
    ObjectionReceived(pb::ObjectionReceived),
    ObjectionAnswered(pb::ObjectionAnswered),
    AssistFirstGranted(pb::AssistFirstGranted),
    Approved(pb::CaseApproved),
    Rejected(pb::CaseRejected),
    DeadlineBreached(pb::DeadlineBreached),
    DepartedFromPolicy(pb::DecisionDepartedFromPolicy),
    Returned(pb::CaseReturned),
    Withdrawn(pb::CaseWithdrawn),
    DeadlineExtended(pb::DeadlineExtended),
    ReReviewScheduled(pb::ReReviewScheduled),
    BenefitAdjusted(pb::BenefitAdjusted),
    BenefitSuspended(pb::BenefitSuspended),
    BenefitTerminated(pb::BenefitTerminated),
    RefusalNotified(pb::RefusalNotified),
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

/// Working-day limits of one case, computed by the caller from the policy and the calendar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeadlineLimits {
    pub investigation_start: Date,
    pub review: Date,
    pub review_extended: Date,
    /// From the street-town opinion, once there is one.
    pub district_decision: Option<Date>,
    /// From a rejection, until the applicant is notified.
    pub refusal_notice: Option<Date>,
}

/// The case, folded from its events.
#[derive(Debug, Clone, PartialEq)]
pub struct CaseState {
    pub case_id: String,
    pub program_code: String,
    pub workflow: Workflow,
    pub stage: usize,
    pub status: CaseStatus,
    pub hukou_org_unit: OrgUnitCode,
    pub relative_of_official: bool,
    pub accepted_by: String,
    pub investigators: Vec<String>,
    /// Who visited, at which tier.
    pub visits: Vec<(String, Tier)>,
    /// The tier each officer has acted at on this case.
    pub acted: BTreeMap<String, Tier>,
    pub pending_verifications: BTreeSet<String>,
    pub publicity: Option<(Date, Date)>,
    pub open_objections: BTreeSet<String>,
    pub breached: BTreeSet<String>,
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

fn tier_of(code: &str) -> Option<Tier> {
    let code = OrgUnitCode::parse(code).ok()?;
    Some(match code.tier() {
        OrgTier::District => Tier::District,
        OrgTier::StreetTown => Tier::StreetTown,
        OrgTier::VillageCommunity => Tier::VillageCommunity,
    })
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
            acted: BTreeMap::new(),
            pending_verifications: BTreeSet::new(),
            publicity: None,
            open_objections: BTreeSet::new(),
            breached: BTreeSet::new(),
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

    fn note_actor(&mut self, officer: Option<&pb::CaseOfficer>) {
        if let Some(officer) = officer
            && let Some(tier) = tier_of(&officer.org_unit_code)
        {
            self.acted.entry(officer.subject.clone()).or_insert(tier);
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
                        // A reopened investigation starts over.
                        self.visits.clear();
                    }
                }
            }
            CaseEvent::InvestigatorsAssigned(assigned) => {
                self.note_actor(assigned.assigned_by.as_ref());
                self.investigators = assigned
                    .investigators
                    .iter()
                    .map(|officer| officer.subject.clone())
                    .collect();
                for investigator in &assigned.investigators {
                    self.note_actor(Some(investigator));
                }
            }
            CaseEvent::HomeVisitRecorded(visit) => {
                self.note_actor(visit.visitor.as_ref());
                if let Some(visitor) = &visit.visitor
                    && let Some(tier) = tier_of(&visitor.org_unit_code)
                {
                    self.visits.push((visitor.subject.clone(), tier));
                }
            }
            CaseEvent::VerificationRequested(requested) => {
                self.note_actor(requested.requested_by.as_ref());
                self.pending_verifications = requested.department_codes.iter().cloned().collect();
            }
            CaseEvent::VerificationAnswered(answered) => {
                self.pending_verifications.remove(&answered.department_code);
            }
            CaseEvent::OpinionRecorded(opinion) => {
                self.note_actor(opinion.officer.as_ref());
                self.opinion_on = date_of(opinion.recorded_on.as_ref());
            }
            CaseEvent::PublicityStarted(started) => {
                self.note_actor(started.started_by.as_ref());
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
                self.note_actor(answered.officer.as_ref());
                self.open_objections.remove(&answered.objection_id);
            }
            CaseEvent::AssistFirstGranted(granted) => self.note_actor(granted.officer.as_ref()),
            CaseEvent::Approved(approved) => {
                self.note_actor(approved.approver.as_ref());
                self.status = CaseStatus::Approved;
                self.benefit_fen = approved.monthly_amount.as_ref().map(|money| money.fen);
            }
            CaseEvent::Rejected(rejected) => {
                self.note_actor(rejected.approver.as_ref());
                self.status = CaseStatus::Rejected;
                self.rejected_on = date_of(rejected.decided_on.as_ref());
            }
            CaseEvent::RefusalNotified(notified) => {
                self.note_actor(notified.officer.as_ref());
                self.refusal_notified = true;
            }
            CaseEvent::DeadlineBreached(breached) => {
                self.breached.insert(breached.deadline.clone());
            }
            CaseEvent::DepartedFromPolicy(_) | CaseEvent::BenefitSuspended(_) => {}
            CaseEvent::Returned(returned) => self.note_actor(returned.officer.as_ref()),
            CaseEvent::Withdrawn(withdrawn) => {
                self.note_actor(withdrawn.officer.as_ref());
                self.status = CaseStatus::Withdrawn;
            }
            CaseEvent::DeadlineExtended(extended) => {
                self.note_actor(extended.officer.as_ref());
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

    /// Checks that `officer` may act at the current stage, which must be `kind`.
    pub fn authorize(&self, officer: &Officer, kind: StageKind) -> Result<(), CaseError> {
        if self.status != CaseStatus::Open {
            return Err(CaseError::NotNow("the case is closed".into()));
        }
        let Some(stage) = self.workflow.stage(self.stage) else {
            return Err(CaseError::NotNow(
                "the workflow has no current stage".into(),
            ));
        };
        if stage.kind != kind {
            return Err(CaseError::NotNow(format!(
                "the case is at {}, not {}",
                stage.kind.as_str(),
                kind.as_str()
            )));
        }
        if !stage.roles.iter().any(|role| role == &officer.role) {
            return Err(CaseError::NotAllowed(format!(
                "{} may not act at {}",
                officer.role,
                kind.as_str()
            )));
        }
        if let Some(tier) = stage.tier
            && officer.tier() != tier
        {
            return Err(CaseError::NotAllowed(format!(
                "{} is decided at the {tier:?} tier",
                kind.as_str()
            )));
        }
        if !officer.org_unit.covers(&self.hukou_org_unit) {
            return Err(CaseError::NotAllowed(
                "the case is outside the officer's org unit".into(),
            ));
        }
        if let Some(tier) = self.acted.get(&officer.subject)
            && *tier != officer.tier()
        {
            return Err(CaseError::NotAllowed(
                "one officer cannot act at two tiers of one case".into(),
            ));
        }
        Ok(())
    }

    /// Assigns the investigators (at least the workflow's minimum, all different).
    pub fn assign_investigators(
        &self,
        officer: &Officer,
        investigators: &[Officer],
    ) -> Result<Vec<CaseEvent>, CaseError> {
        self.authorize(officer, StageKind::Investigation)?;
        let minimum = self
            .workflow
            .stage(self.stage)
            .map_or(1, |stage| stage.min_investigators) as usize;
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
        for investigator in investigators {
            if !investigator.org_unit.covers(&self.hukou_org_unit) {
                return Err(CaseError::Invalid {
                    field: "investigators".into(),
                    reason: format!("{} is outside the case's org unit", investigator.subject),
                });
            }
        }
        Ok(vec![CaseEvent::InvestigatorsAssigned(
            pb::InvestigatorsAssigned {
                case_id: self.case_id.clone(),
                investigators: investigators.iter().map(Officer::to_proto).collect(),
                assigned_by: Some(officer.to_proto()),
            },
        )])
    }

    /// Records a home visit; the stage is done when every investigator has visited (and, for a
    /// relative of an official, a district officer too).
    pub fn record_visit(
        &self,
        officer: &Officer,
        visited_on: Date,
        sealed_findings: Vec<u8>,
    ) -> Result<Vec<CaseEvent>, CaseError> {
        let district_visit = self.relative_of_official && officer.tier() == Tier::District;
        if !district_visit {
            self.authorize(officer, StageKind::Investigation)?;
            if !self.investigators.contains(&officer.subject) {
                return Err(CaseError::NotAllowed(
                    "only an assigned investigator records a visit".into(),
                ));
            }
        } else if self.current_stage() != Some(StageKind::Investigation)
            || self.status != CaseStatus::Open
        {
            return Err(CaseError::NotNow(
                "the case is not being investigated".into(),
            ));
        }
        let mut events = vec![CaseEvent::HomeVisitRecorded(pb::HomeVisitRecorded {
            case_id: self.case_id.clone(),
            visitor: Some(officer.to_proto()),
            visited_on: Some(proto_date(visited_on)),
            sealed_findings,
        })];
        let mut visitors: BTreeSet<&str> = self
            .visits
            .iter()
            .map(|(subject, _)| subject.as_str())
            .collect();
        visitors.insert(officer.subject.as_str());
        let investigators_done = !self.investigators.is_empty()
            && self
                .investigators
                .iter()
                .all(|investigator| visitors.contains(investigator.as_str()));
        let district_done = !self.relative_of_official
            || district_visit
            || self.visits.iter().any(|(_, tier)| *tier == Tier::District);
        if investigators_done
            && district_done
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
        self.authorize(officer, StageKind::Verification)?;
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
        self.authorize(officer, StageKind::PreliminaryOpinion)?;
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

    fn require_open_and_in_scope(
        &self,
        officer: &Officer,
        roles: &[&str],
    ) -> Result<(), CaseError> {
        if self.status != CaseStatus::Open {
            return Err(CaseError::NotNow("the case is closed".into()));
        }
        if !roles.contains(&officer.role.as_str()) {
            return Err(CaseError::NotAllowed(format!(
                "{} may not do this",
                officer.role
            )));
        }
        if !officer.org_unit.covers(&self.hukou_org_unit) {
            return Err(CaseError::NotAllowed(
                "the case is outside the officer's org unit".into(),
            ));
        }
        Ok(())
    }

    /// Sends the case back for supplementary material: investigation again.
    pub fn return_for_material(
        &self,
        officer: &Officer,
        missing: &[String],
        reason: &str,
    ) -> Result<Vec<CaseEvent>, CaseError> {
        self.require_open_and_in_scope(officer, &["street_reviewer", "center_reviewer"])?;
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
        self.require_open_and_in_scope(
            officer,
            &["village_clerk", "street_reviewer", "center_reviewer"],
        )?;
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
        self.require_open_and_in_scope(
            officer,
            &["street_reviewer", "center_reviewer", "center_approver"],
        )?;
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
    pub fn deadlines(&self, limits: &DeadlineLimits) -> Vec<(&'static str, Date)> {
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
            due.push(("re_review", re_review));
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
        if self.status != CaseStatus::Rejected || self.refusal_notified {
            return Err(CaseError::NotNow(
                "only a rejected case not yet notified".into(),
            ));
        }
        if !["village_clerk", "street_reviewer", "center_reviewer"].contains(&officer.role.as_str())
        {
            return Err(CaseError::NotAllowed(format!(
                "{} may not do this",
                officer.role
            )));
        }
        if !officer.org_unit.covers(&self.hukou_org_unit) {
            return Err(CaseError::NotAllowed(
                "the case is outside the officer's org unit".into(),
            ));
        }
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
        self.authorize(officer, StageKind::Publicity)?;
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
        if !self.open_objections.contains(objection_id) {
            return Err(CaseError::Invalid {
                field: "objection_id".into(),
                reason: "no open objection with this id".into(),
            });
        }
        if !officer.org_unit.covers(&self.hukou_org_unit) {
            return Err(CaseError::NotAllowed(
                "the case is outside the officer's org unit".into(),
            ));
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
        self.authorize(officer, StageKind::AssistFirst)?;
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
        self.authorize(officer, StageKind::Decision)?;
        if officer.subject == self.accepted_by {
            return Err(CaseError::NotAllowed(
                "the officer who accepted the application cannot decide it".into(),
            ));
        }
        if self.investigators.contains(&officer.subject)
            || self
                .visits
                .iter()
                .any(|(subject, _)| subject == &officer.subject)
        {
            return Err(CaseError::NotAllowed(
                "an officer who investigated the case cannot decide it".into(),
            ));
        }
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

    /// Deadlines (`name`, due date) that passed by `today` and were not yet recorded.
    pub fn breached_deadlines(&self, today: Date, deadlines: &[(&str, Date)]) -> Vec<CaseEvent> {
        if matches!(self.status, CaseStatus::Withdrawn | CaseStatus::Terminated) {
            return Vec::new();
        }
        deadlines
            .iter()
            .filter(|(name, due_on)| today > *due_on && !self.breached.contains(*name))
            .map(|(name, due_on)| {
                CaseEvent::DeadlineBreached(pb::DeadlineBreached {
                    case_id: self.case_id.clone(),
                    deadline: (*name).to_owned(),
                    due_on: Some(proto_date(*due_on)),
                    detected_on: Some(proto_date(today)),
                })
            })
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

/// The event type names and protobuf encoding of case events.
pub mod codec {
    use prost::Message as _;
    use sunshine_proto::v1 as pb;

    use super::CaseEvent;

    pub fn event_type(event: &CaseEvent) -> &'static str {
        match event {
            CaseEvent::Opened(_) => "sunshine.v1.CaseOpened",
            CaseEvent::StageEntered(_) => "sunshine.v1.StageEntered",
            CaseEvent::InvestigatorsAssigned(_) => "sunshine.v1.InvestigatorsAssigned",
            CaseEvent::HomeVisitRecorded(_) => "sunshine.v1.HomeVisitRecorded",
            CaseEvent::VerificationRequested(_) => "sunshine.v1.VerificationRequested",
            CaseEvent::VerificationAnswered(_) => "sunshine.v1.VerificationAnswered",
            CaseEvent::OpinionRecorded(_) => "sunshine.v1.PreliminaryOpinionRecorded",
            CaseEvent::PublicityStarted(_) => "sunshine.v1.PublicityStarted",
            CaseEvent::ObjectionReceived(_) => "sunshine.v1.ObjectionReceived",
            CaseEvent::ObjectionAnswered(_) => "sunshine.v1.ObjectionAnswered",
            CaseEvent::AssistFirstGranted(_) => "sunshine.v1.AssistFirstGranted",
            CaseEvent::Approved(_) => "sunshine.v1.CaseApproved",
            CaseEvent::Rejected(_) => "sunshine.v1.CaseRejected",
            CaseEvent::DeadlineBreached(_) => "sunshine.v1.DeadlineBreached",
            CaseEvent::RefusalNotified(_) => "sunshine.v1.RefusalNotified",
            CaseEvent::DepartedFromPolicy(_) => "sunshine.v1.DecisionDepartedFromPolicy",
            CaseEvent::Returned(_) => "sunshine.v1.CaseReturned",
            CaseEvent::Withdrawn(_) => "sunshine.v1.CaseWithdrawn",
            CaseEvent::DeadlineExtended(_) => "sunshine.v1.DeadlineExtended",
            CaseEvent::ReReviewScheduled(_) => "sunshine.v1.ReReviewScheduled",
            CaseEvent::BenefitAdjusted(_) => "sunshine.v1.BenefitAdjusted",
            CaseEvent::BenefitSuspended(_) => "sunshine.v1.BenefitSuspended",
            CaseEvent::BenefitTerminated(_) => "sunshine.v1.BenefitTerminated",
        }
    }

    pub fn encode(event: &CaseEvent) -> Vec<u8> {
        match event {
            CaseEvent::Opened(message) => message.encode_to_vec(),
            CaseEvent::StageEntered(message) => message.encode_to_vec(),
            CaseEvent::InvestigatorsAssigned(message) => message.encode_to_vec(),
            CaseEvent::HomeVisitRecorded(message) => message.encode_to_vec(),
            CaseEvent::VerificationRequested(message) => message.encode_to_vec(),
            CaseEvent::VerificationAnswered(message) => message.encode_to_vec(),
            CaseEvent::OpinionRecorded(message) => message.encode_to_vec(),
            CaseEvent::PublicityStarted(message) => message.encode_to_vec(),
            CaseEvent::ObjectionReceived(message) => message.encode_to_vec(),
            CaseEvent::ObjectionAnswered(message) => message.encode_to_vec(),
            CaseEvent::AssistFirstGranted(message) => message.encode_to_vec(),
            CaseEvent::Approved(message) => message.encode_to_vec(),
            CaseEvent::Rejected(message) => message.encode_to_vec(),
            CaseEvent::DeadlineBreached(message) => message.encode_to_vec(),
            CaseEvent::RefusalNotified(message) => message.encode_to_vec(),
            CaseEvent::DepartedFromPolicy(message) => message.encode_to_vec(),
            CaseEvent::Returned(message) => message.encode_to_vec(),
            CaseEvent::Withdrawn(message) => message.encode_to_vec(),
            CaseEvent::DeadlineExtended(message) => message.encode_to_vec(),
            CaseEvent::ReReviewScheduled(message) => message.encode_to_vec(),
            CaseEvent::BenefitAdjusted(message) => message.encode_to_vec(),
            CaseEvent::BenefitSuspended(message) => message.encode_to_vec(),
            CaseEvent::BenefitTerminated(message) => message.encode_to_vec(),
        }
    }

    /// `None` for types that are not case events.
    pub fn decode(
        event_type: &str,
        payload: &[u8],
    ) -> Result<Option<CaseEvent>, prost::DecodeError> {
        Ok(Some(match event_type {
            "sunshine.v1.CaseOpened" => CaseEvent::Opened(pb::CaseOpened::decode(payload)?),
            "sunshine.v1.StageEntered" => {
                CaseEvent::StageEntered(pb::StageEntered::decode(payload)?)
            }
            "sunshine.v1.InvestigatorsAssigned" => {
                CaseEvent::InvestigatorsAssigned(pb::InvestigatorsAssigned::decode(payload)?)
            }
            "sunshine.v1.HomeVisitRecorded" => {
                CaseEvent::HomeVisitRecorded(pb::HomeVisitRecorded::decode(payload)?)
            }
            "sunshine.v1.VerificationRequested" => {
                CaseEvent::VerificationRequested(pb::VerificationRequested::decode(payload)?)
            }
            "sunshine.v1.VerificationAnswered" => {
                CaseEvent::VerificationAnswered(pb::VerificationAnswered::decode(payload)?)
            }
            "sunshine.v1.PreliminaryOpinionRecorded" => {
                CaseEvent::OpinionRecorded(pb::PreliminaryOpinionRecorded::decode(payload)?)
            }
            "sunshine.v1.PublicityStarted" => {
                CaseEvent::PublicityStarted(pb::PublicityStarted::decode(payload)?)
            }
            "sunshine.v1.ObjectionReceived" => {
                CaseEvent::ObjectionReceived(pb::ObjectionReceived::decode(payload)?)
            }
            "sunshine.v1.ObjectionAnswered" => {
                CaseEvent::ObjectionAnswered(pb::ObjectionAnswered::decode(payload)?)
            }
            "sunshine.v1.AssistFirstGranted" => {
                CaseEvent::AssistFirstGranted(pb::AssistFirstGranted::decode(payload)?)
            }
            "sunshine.v1.CaseApproved" => CaseEvent::Approved(pb::CaseApproved::decode(payload)?),
            "sunshine.v1.CaseRejected" => CaseEvent::Rejected(pb::CaseRejected::decode(payload)?),
            "sunshine.v1.DeadlineBreached" => {
                CaseEvent::DeadlineBreached(pb::DeadlineBreached::decode(payload)?)
            }
            "sunshine.v1.DecisionDepartedFromPolicy" => {
                CaseEvent::DepartedFromPolicy(pb::DecisionDepartedFromPolicy::decode(payload)?)
            }
            "sunshine.v1.CaseReturned" => CaseEvent::Returned(pb::CaseReturned::decode(payload)?),
            "sunshine.v1.CaseWithdrawn" => {
                CaseEvent::Withdrawn(pb::CaseWithdrawn::decode(payload)?)
            }
            "sunshine.v1.DeadlineExtended" => {
                CaseEvent::DeadlineExtended(pb::DeadlineExtended::decode(payload)?)
            }
            "sunshine.v1.ReReviewScheduled" => {
                CaseEvent::ReReviewScheduled(pb::ReReviewScheduled::decode(payload)?)
            }
            "sunshine.v1.BenefitAdjusted" => {
                CaseEvent::BenefitAdjusted(pb::BenefitAdjusted::decode(payload)?)
            }
            "sunshine.v1.BenefitSuspended" => {
                CaseEvent::BenefitSuspended(pb::BenefitSuspended::decode(payload)?)
            }
            "sunshine.v1.BenefitTerminated" => {
                CaseEvent::BenefitTerminated(pb::BenefitTerminated::decode(payload)?)
            }
            "sunshine.v1.RefusalNotified" => {
                CaseEvent::RefusalNotified(pb::RefusalNotified::decode(payload)?)
            }
            _ => return Ok(None),
        }))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::workflow::Workflows;
    use time::macros::date;

    const VILLAGE: &str = "990101001001";
    const STREET: &str = "990101001000";
    const DISTRICT: &str = "990101000000";

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
            ..Default::default()
        };
        CaseState::opened(&opened, workflow).unwrap()
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
        assert_eq!(
            two_tiers,
            Err(CaseError::NotAllowed(
                "one officer cannot act at two tiers of one case".into()
            ))
        );
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
                .breached_deadlines(due, &[("district_decision", due)])
                .is_empty()
        );
        let breached =
            state.breached_deadlines(due.next_day().unwrap(), &[("district_decision", due)]);
        assert_eq!(breached.len(), 1);
        run(&mut state, |_| Ok(breached));
        assert!(
            state
                .breached_deadlines(due.next_day().unwrap(), &[("district_decision", due)])
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
            investigation_start: date!(2026 - 10 - 9),
            review: date!(2026 - 11 - 10),
            review_extended: date!(2026 - 12 - 1),
            district_decision: Some(date!(2026 - 10 - 20)),
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
        assert!(plan.contains(&("district_decision", date!(2026 - 10 - 20))));
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
            investigation_start: date!(2026 - 9 - 3),
            review: date!(2026 - 11 - 10),
            review_extended: date!(2026 - 12 - 1),
            district_decision: None,
            refusal_notice: Some(date!(2026 - 10 - 10)),
        };
        assert_eq!(
            state.deadlines(&limits),
            [("refusal_notice", date!(2026 - 10 - 10))]
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
}
