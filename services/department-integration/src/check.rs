//! The economic-status check (核对, MZ/T 072-2024: application → information acquisition →
//! checking → report → re-check), decided without I/O: the household's consent
//! (`department-integration-consent-<household>`) and whether it is in force, the case review
//! waits on, and the check's stream `department-integration-check-<check id>` — one request per
//! data holder with its deadline, the holders' typed answers, overdue requests, the report when
//! nothing is left open, and the re-check of a report. Facts that are not on the check's stream
//! (the case, the consent, the household's composition changes, today, the deadline) are
//! loaded by the store and handed in on the command. Pure.

use std::collections::BTreeMap;

use sunshine_domain::FieldViolation;
use sunshine_proto::v1 as pb;
use time::Date;

use crate::dictionary::ValueType;
use crate::registry::HolderItems;

sunshine_proto::stream_events! {
    /// The events of `department-integration-check-<check id>`.
    #[derive(Debug, Clone, PartialEq)]
    pub enum CheckEvent in "department-integration-check" {
        Opened(pb::CheckOpened),
        RequestSent(pb::VerificationRequestSent),
        Answered(pb::VerificationAnswerRecorded),
        Overdue(pb::VerificationOverdue),
        ReportIssued(pb::CheckReportIssued),
        RecheckRequested(pb::RecheckRequested),
    }
}

sunshine_proto::stream_events! {
    /// The events of `department-integration-consent-<household>`.
    #[derive(Debug, Clone, PartialEq)]
    pub enum ConsentEvent in "department-integration-consent" {
        Recorded(pb::ConsentRecorded),
    }
}

sunshine_proto::stream_events! {
    /// What the check hears of review's case stream (`review-case-<case id>`); the rest of
    /// review's events are passed over (`decode_known`).
    #[derive(Debug, Clone, PartialEq)]
    pub enum HeardFromReview in "review-case" {
        Opened(pb::CaseOpened),
        StageEntered(pb::StageEntered),
        VerificationRequested(pb::VerificationRequested),
        Followed(pb::CaseFollowedHousehold),
        ReportAttached(pb::CheckReportAttached),
    }
}

/// Why a re-check is asked for (a bounded list: no free text, so no personal data).
pub const RECHECK_REASONS: &[&str] =
    &["household_objection", "new_information", "reviewer_request"];

/// Why the check refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckError {
    /// INVALID_ARGUMENT naming each field.
    #[error("invalid")]
    Invalid(Vec<FieldViolation>),
    /// NOT_FOUND: no such check or request for the caller (the same for one outside scope).
    #[error("no such check")]
    NotFound,
    /// FAILED_PRECONDITION: not in a state that allows it.
    #[error("{0}")]
    NotNow(String),
}

fn date_of(date: Option<&pb::Date>) -> Option<Date> {
    sunshine_proto::dates::to_date(date)
}

fn pb_date(date: Date) -> pb::Date {
    sunshine_proto::dates::from_date(date)
}

// ---- The case review waits on ----

/// What the check needs of a review case, folded from its stream.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CaseFacts {
    pub case_id: String,
    pub household_id: String,
    /// The case's hukou org unit now (it follows the household).
    pub org_unit_code: String,
    /// The stage the case is in.
    pub stage: String,
    /// The stream version of the VerificationRequested the case waits on: in the
    /// verification stage, after it was entered, no report attached since.
    pub waiting_since: Option<u64>,
    /// The stream version of the case's last VerificationRequested (a check's id is made of
    /// it, so a retry finds its check after the case moved on).
    pub last_requested: Option<u64>,
}

/// The case folded from `(event, stream version)`; `None` without a CaseOpened.
pub fn case_facts(events: &[(HeardFromReview, u64)]) -> Option<CaseFacts> {
    let mut facts: Option<CaseFacts> = None;
    for (event, version) in events {
        match event {
            HeardFromReview::Opened(opened) => {
                facts = Some(CaseFacts {
                    case_id: opened.case_id.clone(),
                    household_id: opened.household_id.clone(),
                    org_unit_code: opened.hukou_org_unit_code.clone(),
                    ..CaseFacts::default()
                });
            }
            HeardFromReview::StageEntered(entered) => {
                if let Some(facts) = facts.as_mut() {
                    facts.stage = entered.stage.clone();
                    facts.waiting_since = None;
                }
            }
            HeardFromReview::VerificationRequested(_) => {
                if let Some(facts) = facts.as_mut() {
                    facts.last_requested = Some(*version);
                    if facts.stage == "verification" {
                        facts.waiting_since = Some(*version);
                    }
                }
            }
            HeardFromReview::Followed(followed) => {
                if let Some(facts) = facts.as_mut() {
                    facts.org_unit_code = followed.to_org_unit_code.clone();
                }
            }
            HeardFromReview::ReportAttached(_) => {
                if let Some(facts) = facts.as_mut() {
                    facts.waiting_since = None;
                }
            }
        }
    }
    facts
}

// ---- Consent ----

/// The consent a check may rely on: the household's last, if any, with the versions of its
/// household stream's composition changes (a member joined, left or died, or a death was
/// corrected).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ConsentFacts {
    pub last: Option<pb::ConsentRecorded>,
    pub composition_changes: Vec<u64>,
}

/// The household events that change its composition.
pub fn is_composition_change(event: &sunshine_household::HouseholdEvent) -> bool {
    matches!(
        event,
        sunshine_household::HouseholdEvent::MemberDied(_)
            | sunshine_household::HouseholdEvent::DeathRecordCorrected(_)
            | sunshine_household::HouseholdEvent::MemberJoined(_)
            | sunshine_household::HouseholdEvent::MemberLeft(_)
    )
}

/// The consent in force on `today` for `items`, or why there is none (FAILED_PRECONDITION).
pub fn consent_in_force<'a>(
    facts: &'a ConsentFacts,
    items: &[String],
    today: Date,
) -> Result<&'a pb::ConsentRecorded, CheckError> {
    let Some(consent) = facts.last.as_ref() else {
        return Err(CheckError::NotNow(
            "the household has no recorded consent (授权书) to the check".into(),
        ));
    };
    if facts
        .composition_changes
        .iter()
        .any(|version| *version > consent.household_version)
    {
        return Err(CheckError::NotNow(
            "the household's consent lapsed: its composition changed after it was given; record a new authorisation".into(),
        ));
    }
    if date_of(consent.valid_from.as_ref()).is_some_and(|from| today < from) {
        return Err(CheckError::NotNow(
            "the household's consent is not yet valid".into(),
        ));
    }
    if date_of(consent.valid_until.as_ref()).is_some_and(|until| today > until) {
        return Err(CheckError::NotNow(
            "the household's consent has expired; record a new authorisation".into(),
        ));
    }
    let missing: Vec<&str> = items
        .iter()
        .filter(|item| !consent.data_items.contains(item))
        .map(String::as_str)
        .collect();
    if !missing.is_empty() {
        return Err(CheckError::NotNow(format!(
            "the household's consent does not cover {}",
            missing.join(", ")
        )));
    }
    Ok(consent)
}

// ---- The check's state ----

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestStatus {
    Open,
    Answered,
    Overdue,
}

impl RequestStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RequestStatus::Open => "open",
            RequestStatus::Answered => "answered",
            RequestStatus::Overdue => "overdue",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct RequestState {
    pub items: Vec<String>,
    pub deadline: Date,
    pub status: RequestStatus,
    pub totals: Vec<pb::CheckClassTotal>,
}

/// A check folded from its stream (`apply` only folds).
#[derive(Debug, Clone, PartialEq)]
pub struct CheckState {
    pub opened: pb::CheckOpened,
    /// By department code.
    pub requests: BTreeMap<String, RequestState>,
    pub report: Option<pb::CheckReportIssued>,
    pub recheck_id: Option<String>,
    pub version: u64,
}

impl CheckState {
    /// The state after `events` (each with its stream version); `None` if it does not start
    /// with CheckOpened.
    pub fn fold(events: impl IntoIterator<Item = (CheckEvent, u64)>) -> Option<CheckState> {
        let mut state: Option<CheckState> = None;
        for (event, version) in events {
            match (&mut state, event) {
                (None, CheckEvent::Opened(opened)) => {
                    state = Some(CheckState {
                        opened,
                        requests: BTreeMap::new(),
                        report: None,
                        recheck_id: None,
                        version,
                    });
                }
                (Some(state), event) => {
                    state.apply(event);
                    state.version = version;
                }
                (None, _) => return None,
            }
        }
        state
    }

    fn apply(&mut self, event: CheckEvent) {
        match event {
            CheckEvent::Opened(_) => {}
            CheckEvent::RequestSent(sent) => {
                self.requests.insert(
                    sent.department_code,
                    RequestState {
                        items: sent.data_items,
                        deadline: date_of(sent.deadline.as_ref()).unwrap_or(Date::MIN),
                        status: RequestStatus::Open,
                        totals: Vec::new(),
                    },
                );
            }
            CheckEvent::Answered(answered) => {
                if let Some(request) = self.requests.get_mut(&answered.department_code) {
                    request.status = RequestStatus::Answered;
                    request.totals = answered.totals;
                }
            }
            CheckEvent::Overdue(overdue) => {
                if let Some(request) = self.requests.get_mut(&overdue.department_code) {
                    request.status = RequestStatus::Overdue;
                }
            }
            CheckEvent::ReportIssued(report) => self.report = Some(report),
            CheckEvent::RecheckRequested(requested) => self.recheck_id = Some(requested.recheck_id),
        }
    }

    pub fn check_id(&self) -> &str {
        &self.opened.check_id
    }

    /// The state after one more event at `version`.
    pub fn with(mut self, event: CheckEvent, version: u64) -> CheckState {
        self.apply(event);
        self.version = version;
        self
    }
}

// ---- Commands ----

/// Opening a check (or a re-check's round): the case, consent and holders are facts the store
/// loaded; the deadline is the policy's, counted on the working-day calendar from `today`.
#[derive(Debug, Clone, PartialEq)]
pub struct OpenCheck {
    pub check_id: String,
    pub case: CaseFacts,
    pub consent: ConsentFacts,
    pub items: Vec<String>,
    pub holders: Vec<HolderItems>,
    pub today: Date,
    pub deadline: Date,
    pub provisional: bool,
    /// For a re-check: the first check's state and the reason.
    pub recheck_of: Option<(CheckState, String)>,
}

/// One answer, checked against the dictionary: its item, the item's class, its value.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckedAnswer {
    pub item: String,
    pub class: String,
    pub value: AnswerValue,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnswerValue {
    AmountFen(i64),
    Count(u64),
    Flag(bool),
    Date(Date),
}

impl AnswerValue {
    pub fn value_type(self) -> ValueType {
        match self {
            AnswerValue::AmountFen(_) => ValueType::Amount,
            AnswerValue::Count(_) => ValueType::Count,
            AnswerValue::Flag(_) => ValueType::Flag,
            AnswerValue::Date(_) => ValueType::Date,
        }
    }
}

/// A holder's answer; the values are sealed by the store into `sealed_answers` afterwards.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub department_code: String,
    pub answers: Vec<CheckedAnswer>,
    pub today: Date,
}

/// Opens the check: CheckOpened and one VerificationRequestSent per holder.
pub fn open(command: &OpenCheck) -> Result<Vec<CheckEvent>, CheckError> {
    let OpenCheck {
        check_id,
        case,
        consent,
        items,
        holders,
        today,
        deadline,
        provisional,
        recheck_of,
    } = command;
    match recheck_of {
        None if case.waiting_since.is_none() => {
            return Err(CheckError::NotNow(format!(
                "case {} is not waiting for verification (stage {})",
                case.case_id,
                if case.stage.is_empty() {
                    "none"
                } else {
                    &case.stage
                }
            )));
        }
        Some((first, _)) if first.report.is_none() => {
            return Err(CheckError::NotNow(
                "the check's report is not issued yet: nothing to re-check".into(),
            ));
        }
        _ => {}
    }
    if holders.is_empty() {
        return Err(CheckError::NotNow(
            "no data holder of the registry answers the check's items".into(),
        ));
    }
    let consent = consent_in_force(consent, items, *today)?;
    let (round, previous_check_id, recheck_reason) = match recheck_of {
        Some((first, reason)) => (
            first.opened.round + 1,
            first.check_id().to_owned(),
            reason.clone(),
        ),
        None => (1, String::new(), String::new()),
    };
    let mut events = vec![CheckEvent::Opened(pb::CheckOpened {
        check_id: check_id.clone(),
        case_id: case.case_id.clone(),
        household_id: case.household_id.clone(),
        org_unit_code: case.org_unit_code.clone(),
        consent_id: consent.consent_id.clone(),
        round,
        previous_check_id,
        recheck_reason,
        opened_on: Some(pb_date(*today)),
        data_items: items.clone(),
    })];
    for holder in holders {
        events.push(CheckEvent::RequestSent(pb::VerificationRequestSent {
            check_id: check_id.clone(),
            case_id: case.case_id.clone(),
            department_code: holder.department_code.clone(),
            data_items: holder.items.clone(),
            deadline: Some(pb_date(*deadline)),
            consent_id: consent.consent_id.clone(),
            sent_on: Some(pb_date(*today)),
            provisional: *provisional,
        }));
    }
    Ok(events)
}

/// The answers' totals per class, in class order: amounts added up, counts and true flags
/// counted; dates are not totalled.
pub fn totals(answers: &[CheckedAnswer]) -> Vec<pb::CheckClassTotal> {
    let mut by_class: BTreeMap<&str, (i64, u64)> = BTreeMap::new();
    for answer in answers {
        let entry = by_class.entry(answer.class.as_str()).or_default();
        match answer.value {
            AnswerValue::AmountFen(fen) => entry.0 = entry.0.saturating_add(fen),
            AnswerValue::Count(count) => entry.1 = entry.1.saturating_add(count),
            AnswerValue::Flag(flag) => entry.1 += u64::from(flag),
            AnswerValue::Date(_) => {}
        }
    }
    by_class
        .into_iter()
        .map(|(class, (fen, count))| pb::CheckClassTotal {
            class_code: class.to_owned(),
            amount: Some(pb::Money { fen }),
            count,
        })
        .collect()
}

fn add_totals(into: &mut BTreeMap<String, (i64, u64)>, totals: &[pb::CheckClassTotal]) {
    for total in totals {
        let entry = into.entry(total.class_code.clone()).or_default();
        entry.0 = entry
            .0
            .saturating_add(total.amount.as_ref().map_or(0, |money| money.fen));
        entry.1 = entry.1.saturating_add(total.count);
    }
}

/// The report, when no request is left open after `state` and `events`.
fn report_if_done(state: &CheckState, events: &[CheckEvent], today: Date) -> Option<CheckEvent> {
    if state.report.is_some() {
        return None;
    }
    let mut after = state.clone();
    for event in events {
        after.apply(event.clone());
    }
    if after
        .requests
        .values()
        .any(|request| request.status == RequestStatus::Open)
    {
        return None;
    }
    let mut totals: BTreeMap<String, (i64, u64)> = BTreeMap::new();
    let mut answered = Vec::new();
    let mut overdue = Vec::new();
    for (department, request) in &after.requests {
        match request.status {
            RequestStatus::Answered => {
                answered.push(department.clone());
                add_totals(&mut totals, &request.totals);
            }
            RequestStatus::Overdue => overdue.push(department.clone()),
            RequestStatus::Open => {}
        }
    }
    Some(CheckEvent::ReportIssued(pb::CheckReportIssued {
        check_id: state.check_id().to_owned(),
        case_id: state.opened.case_id.clone(),
        report_version: state.opened.round,
        departments: answered,
        discrepancy: false,
        overdue_departments: overdue,
        totals: totals
            .into_iter()
            .map(|(class_code, (fen, count))| pb::CheckClassTotal {
                class_code,
                amount: Some(pb::Money { fen }),
                count,
            })
            .collect(),
        household_id: state.opened.household_id.clone(),
        previous_check_id: state.opened.previous_check_id.clone(),
        issued_on: Some(pb_date(today)),
    }))
}

/// A holder's answer: its request's every item once, of the item's type; the report when it
/// was the last one open. `sealed_answers` is empty here; the store seals into it.
pub fn answer(state: &CheckState, command: &Answer) -> Result<Vec<CheckEvent>, CheckError> {
    let Some(request) = state.requests.get(&command.department_code) else {
        return Err(CheckError::NotFound);
    };
    if state.report.is_some() {
        return Err(CheckError::NotNow(
            "the check's report was issued; a re-check opens a new round".into(),
        ));
    }
    if request.status == RequestStatus::Answered {
        return Err(CheckError::NotNow(format!(
            "{} answered this request before",
            command.department_code
        )));
    }
    let mut violations = Vec::new();
    for (index, answer) in command.answers.iter().enumerate() {
        if !request.items.contains(&answer.item) {
            violations.push(FieldViolation {
                field: format!("answers[{index}].item"),
                description: format!(
                    "{} is not an item of {}'s request in this check",
                    answer.item, command.department_code
                ),
            });
        }
    }
    let missing: Vec<&str> = request
        .items
        .iter()
        .filter(|item| !command.answers.iter().any(|answer| answer.item == **item))
        .map(String::as_str)
        .collect();
    if !missing.is_empty() {
        violations.push(FieldViolation {
            field: "answers".into(),
            description: format!(
                "every item of the request is answered; missing {}",
                missing.join(", ")
            ),
        });
    }
    if !violations.is_empty() {
        return Err(CheckError::Invalid(violations));
    }
    let mut ordered: Vec<CheckedAnswer> = Vec::with_capacity(request.items.len());
    for item in &request.items {
        if let Some(answer) = command.answers.iter().find(|answer| answer.item == *item) {
            ordered.push(answer.clone());
        }
    }
    let mut events = vec![CheckEvent::Answered(pb::VerificationAnswerRecorded {
        check_id: state.check_id().to_owned(),
        department_code: command.department_code.clone(),
        items: request.items.clone(),
        totals: totals(&ordered),
        sealed_answers: Vec::new(),
        answered_on: Some(pb_date(command.today)),
        late: request.status == RequestStatus::Overdue,
    })];
    if let Some(report) = report_if_done(state, &events, command.today) {
        events.push(report);
    }
    Ok(events)
}

/// VerificationOverdue for every open request whose deadline is before `today`; the report
/// when none is left open. Nothing when nothing is late (a second run records nothing).
pub fn mark_overdue(state: &CheckState, today: Date) -> Vec<CheckEvent> {
    if state.report.is_some() {
        return Vec::new();
    }
    let mut events: Vec<CheckEvent> = state
        .requests
        .iter()
        .filter(|(_, request)| request.status == RequestStatus::Open && request.deadline < today)
        .map(|(department, request)| {
            CheckEvent::Overdue(pb::VerificationOverdue {
                check_id: state.check_id().to_owned(),
                department_code: department.clone(),
                deadline: Some(pb_date(request.deadline)),
                detected_on: Some(pb_date(today)),
            })
        })
        .collect();
    if events.is_empty() {
        return events;
    }
    if let Some(report) = report_if_done(state, &events, today) {
        events.push(report);
    }
    events
}

/// The re-check asked for on the first check's stream.
pub fn request_recheck(
    state: &CheckState,
    recheck_id: &str,
    reason: &str,
) -> Result<Vec<CheckEvent>, CheckError> {
    if state.report.is_none() {
        return Err(CheckError::NotNow(
            "the check's report is not issued yet: nothing to re-check".into(),
        ));
    }
    if let Some(existing) = &state.recheck_id {
        return Err(CheckError::NotNow(format!(
            "a re-check of this report was asked for already: check {existing}"
        )));
    }
    Ok(vec![CheckEvent::RecheckRequested(pb::RecheckRequested {
        check_id: state.check_id().to_owned(),
        recheck_id: recheck_id.to_owned(),
        reason: reason.to_owned(),
    })])
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    const TODAY: Date = date!(2026 - 10 - 12);

    fn case() -> CaseFacts {
        CaseFacts {
            case_id: "case-1".into(),
            household_id: "hh-1".into(),
            org_unit_code: "990101001001".into(),
            stage: "verification".into(),
            waiting_since: Some(6),
            last_requested: Some(6),
        }
    }

    fn consent(household_version: u64) -> pb::ConsentRecorded {
        pb::ConsentRecorded {
            consent_id: "consent-1".into(),
            household_id: "hh-1".into(),
            data_items: vec![
                "vehicles".into(),
                "real_estate".into(),
                "bank_deposits".into(),
            ],
            valid_from: Some(pb_date(date!(2026 - 10 - 1))),
            valid_until: None,
            household_version,
            document_digest: "ab".repeat(32),
        }
    }

    fn holders() -> Vec<HolderItems> {
        [
            ("banks_insurers", "bank_deposits"),
            ("public_security", "vehicles"),
            ("real_estate", "real_estate"),
        ]
        .into_iter()
        .map(|(department, item)| HolderItems {
            department_code: department.into(),
            items: vec![item.into()],
        })
        .collect()
    }

    fn open_command(consent: ConsentFacts) -> OpenCheck {
        OpenCheck {
            check_id: "check-1".into(),
            case: case(),
            consent,
            items: vec![
                "vehicles".into(),
                "real_estate".into(),
                "bank_deposits".into(),
            ],
            holders: holders(),
            today: TODAY,
            deadline: date!(2026 - 10 - 19),
            provisional: false,
            recheck_of: None,
        }
    }

    fn consented() -> ConsentFacts {
        ConsentFacts {
            last: Some(consent(3)),
            composition_changes: vec![2],
        }
    }

    /// Given the events, the state.
    fn given(events: Vec<CheckEvent>) -> CheckState {
        CheckState::fold(events.into_iter().zip(1..)).expect("a check")
    }

    fn opened() -> Vec<CheckEvent> {
        open(&open_command(consented())).expect("opens")
    }

    fn answer_of(department: &str, item: &str, class: &str, value: AnswerValue) -> Answer {
        Answer {
            department_code: department.into(),
            answers: vec![CheckedAnswer {
                item: item.into(),
                class: class.into(),
                value,
            }],
            today: TODAY,
        }
    }

    #[test]
    fn a_check_sends_one_request_per_holder_with_its_items_and_deadline() {
        let events = opened();
        assert_eq!(events.len(), 4);
        let CheckEvent::Opened(opened) = &events[0] else {
            panic!("CheckOpened first")
        };
        assert_eq!((opened.round, opened.consent_id.as_str()), (1, "consent-1"));
        let sent: Vec<(&str, &[String], Option<Date>)> = events[1..]
            .iter()
            .map(|event| match event {
                CheckEvent::RequestSent(sent) => (
                    sent.department_code.as_str(),
                    sent.data_items.as_slice(),
                    date_of(sent.deadline.as_ref()),
                ),
                other => panic!("a request: {other:?}"),
            })
            .collect();
        assert_eq!(sent[0].0, "banks_insurers");
        assert_eq!(sent[1].1, ["vehicles".to_owned()]);
        assert!(
            sent.iter()
                .all(|(_, _, deadline)| *deadline == Some(date!(2026 - 10 - 19)))
        );
    }

    #[test]
    fn a_check_needs_a_consent_in_force_that_covers_its_items() {
        let none = open(&open_command(ConsentFacts::default()));
        assert!(
            matches!(none, Err(CheckError::NotNow(reason)) if reason.contains("no recorded consent"))
        );
        let lapsed = open(&open_command(ConsentFacts {
            last: Some(consent(3)),
            composition_changes: vec![2, 5],
        }));
        assert!(matches!(lapsed, Err(CheckError::NotNow(reason)) if reason.contains("lapsed")));
        let mut narrow = consent(3);
        narrow.data_items.pop();
        let uncovered = open(&open_command(ConsentFacts {
            last: Some(narrow),
            composition_changes: Vec::new(),
        }));
        assert!(
            matches!(uncovered, Err(CheckError::NotNow(reason)) if reason.contains("bank_deposits"))
        );
        let mut expired = consent(3);
        expired.valid_until = Some(pb_date(date!(2026 - 10 - 11)));
        let expired = open(&open_command(ConsentFacts {
            last: Some(expired),
            composition_changes: Vec::new(),
        }));
        assert!(matches!(expired, Err(CheckError::NotNow(reason)) if reason.contains("expired")));
    }

    // household composition
    #[test]
    fn members_joining_and_leaving_are_composition_changes_as_deaths_are() {
        use sunshine_household::HouseholdEvent;
        for event in [
            HouseholdEvent::MemberJoined(pb::MemberJoined::default()),
            HouseholdEvent::MemberLeft(pb::MemberLeft::default()),
            HouseholdEvent::MemberDied(pb::MemberDied::default()),
            HouseholdEvent::DeathRecordCorrected(pb::DeathRecordCorrected::default()),
        ] {
            assert!(is_composition_change(&event), "{event:?}");
        }
        for event in [
            HouseholdEvent::CircumstanceChanged(pb::CircumstanceChanged::default()),
            HouseholdEvent::Moved(pb::HouseholdMoved::default()),
            HouseholdEvent::ApplicationSubmitted(pb::ApplicationSubmitted::default()),
        ] {
            assert!(!is_composition_change(&event), "{event:?}");
        }
    }

    #[test]
    fn a_case_not_waiting_for_verification_opens_no_check() {
        let mut command = open_command(consented());
        command.case.waiting_since = None;
        command.case.stage = "investigation".into();
        assert!(
            matches!(open(&command), Err(CheckError::NotNow(reason)) if reason.contains("investigation"))
        );
    }

    #[test]
    fn the_case_waits_from_its_verification_request_until_a_report_is_attached() {
        let events = vec![
            (
                HeardFromReview::Opened(pb::CaseOpened {
                    case_id: "case-1".into(),
                    household_id: "hh-1".into(),
                    hukou_org_unit_code: "990101001001".into(),
                    ..Default::default()
                }),
                1,
            ),
            (
                HeardFromReview::StageEntered(pb::StageEntered {
                    case_id: "case-1".into(),
                    stage: "verification".into(),
                }),
                5,
            ),
            (
                HeardFromReview::VerificationRequested(pb::VerificationRequested::default()),
                6,
            ),
        ];
        assert_eq!(case_facts(&events).expect("a case").waiting_since, Some(6));
        let mut attached = events.clone();
        attached.push((
            HeardFromReview::ReportAttached(pb::CheckReportAttached::default()),
            7,
        ));
        assert_eq!(case_facts(&attached).expect("a case").waiting_since, None);
    }

    #[test]
    fn the_last_answer_issues_the_report_with_totals_per_class() {
        let mut events = opened();
        for (department, item, value) in [
            (
                "banks_insurers",
                "bank_deposits",
                AnswerValue::AmountFen(1_250_000),
            ),
            ("public_security", "vehicles", AnswerValue::Count(1)),
        ] {
            let emitted = answer(
                &given(events.clone()),
                &answer_of(department, item, "property", value),
            )
            .expect("answered");
            assert_eq!(emitted.len(), 1, "no report while one is open");
            events.extend(emitted);
        }
        let last = answer(
            &given(events.clone()),
            &answer_of(
                "real_estate",
                "real_estate",
                "property",
                AnswerValue::Count(2),
            ),
        )
        .expect("answered");
        let [CheckEvent::Answered(_), CheckEvent::ReportIssued(report)] = last.as_slice() else {
            panic!("the answer and the report: {last:?}")
        };
        assert_eq!(
            report.departments,
            ["banks_insurers", "public_security", "real_estate"]
        );
        assert!(report.overdue_departments.is_empty());
        assert_eq!(report.report_version, 1);
        assert_eq!(
            report.totals,
            [pb::CheckClassTotal {
                class_code: "property".into(),
                amount: Some(pb::Money { fen: 1_250_000 }),
                count: 3,
            }]
        );
    }

    #[test]
    fn an_item_outside_the_request_or_a_missing_one_is_refused_by_field() {
        let state = given(opened());
        let mut wrong = answer_of("real_estate", "vehicles", "property", AnswerValue::Count(1));
        let refused = answer(&state, &wrong).expect_err("not its item");
        let CheckError::Invalid(violations) = refused else {
            panic!("invalid")
        };
        let fields: Vec<&str> = violations.iter().map(|v| v.field.as_str()).collect();
        assert_eq!(fields, ["answers[0].item", "answers"]);
        wrong.department_code = "tax".into();
        assert_eq!(answer(&state, &wrong), Err(CheckError::NotFound));
    }

    #[test]
    fn a_request_past_its_deadline_is_overdue_once_and_the_report_names_it() {
        let mut events = opened();
        for (department, item, value) in [
            ("banks_insurers", "bank_deposits", AnswerValue::AmountFen(0)),
            ("public_security", "vehicles", AnswerValue::Count(0)),
        ] {
            events.extend(
                answer(
                    &given(events.clone()),
                    &answer_of(department, item, "property", value),
                )
                .expect("answered"),
            );
        }
        assert!(mark_overdue(&given(events.clone()), date!(2026 - 10 - 19)).is_empty());
        let late = mark_overdue(&given(events.clone()), date!(2026 - 10 - 20));
        let [
            CheckEvent::Overdue(overdue),
            CheckEvent::ReportIssued(report),
        ] = late.as_slice()
        else {
            panic!("overdue and the report: {late:?}")
        };
        assert_eq!(overdue.department_code, "real_estate");
        assert_eq!(report.overdue_departments, ["real_estate"]);
        assert_eq!(report.departments, ["banks_insurers", "public_security"]);
        events.extend(late);
        assert!(mark_overdue(&given(events.clone()), date!(2026 - 10 - 21)).is_empty());
        let after = answer(
            &given(events),
            &answer_of(
                "real_estate",
                "real_estate",
                "property",
                AnswerValue::Count(1),
            ),
        );
        assert!(matches!(after, Err(CheckError::NotNow(_))));
    }

    #[test]
    fn a_late_answer_before_the_report_is_taken_and_marked_late() {
        // One request overdue while others are open (deadlines differ once a holder's own
        // limit is a parameter; today all of a check's requests share one).
        let mut events = opened();
        events.push(CheckEvent::Overdue(pb::VerificationOverdue {
            check_id: "check-1".into(),
            department_code: "real_estate".into(),
            deadline: Some(pb_date(date!(2026 - 10 - 19))),
            detected_on: Some(pb_date(date!(2026 - 10 - 20))),
        }));
        let late = answer(
            &given(events),
            &answer_of(
                "real_estate",
                "real_estate",
                "property",
                AnswerValue::Count(1),
            ),
        )
        .expect("taken");
        assert!(matches!(&late[0], CheckEvent::Answered(answered) if answered.late));
        assert_eq!(late.len(), 1, "two others are still open: no report yet");
    }

    #[test]
    fn a_report_is_re_checked_once_in_a_new_round_referencing_it() {
        let mut events = opened();
        events.extend(mark_overdue(&given(events.clone()), date!(2026 - 10 - 20)));
        let first = given(events.clone());
        assert!(first.report.is_some());
        let asked = request_recheck(&first, "check-2", "household_objection").expect("asked");
        events.extend(asked);
        let first = given(events);
        assert!(matches!(
            request_recheck(&first, "check-3", "household_objection"),
            Err(CheckError::NotNow(_))
        ));
        let mut command = open_command(consented());
        command.check_id = "check-2".into();
        command.case.waiting_since = None;
        command.recheck_of = Some((first, "household_objection".into()));
        let second = open(&command).expect("the re-check opens");
        let CheckEvent::Opened(opened) = &second[0] else {
            panic!("opened")
        };
        assert_eq!(
            (
                opened.round,
                opened.previous_check_id.as_str(),
                opened.recheck_reason.as_str()
            ),
            (2, "check-1", "household_objection")
        );
        assert_eq!(second.len(), 4);
    }

    #[test]
    fn given_two_answers_when_the_third_is_overdue_then_exactly_the_overdue_and_the_report() {
        let mut events = opened();
        for (department, item, value) in [
            (
                "banks_insurers",
                "bank_deposits",
                AnswerValue::AmountFen(300_000),
            ),
            ("public_security", "vehicles", AnswerValue::Count(1)),
        ] {
            events.extend(
                answer(
                    &given(events.clone()),
                    &answer_of(department, item, "property", value),
                )
                .expect("answered"),
            );
        }
        let today = date!(2026 - 10 - 20);
        assert_eq!(
            mark_overdue(&given(events), today),
            [
                CheckEvent::Overdue(pb::VerificationOverdue {
                    check_id: "check-1".into(),
                    department_code: "real_estate".into(),
                    deadline: Some(pb_date(date!(2026 - 10 - 19))),
                    detected_on: Some(pb_date(today)),
                }),
                CheckEvent::ReportIssued(pb::CheckReportIssued {
                    check_id: "check-1".into(),
                    case_id: "case-1".into(),
                    report_version: 1,
                    departments: vec!["banks_insurers".into(), "public_security".into()],
                    discrepancy: false,
                    overdue_departments: vec!["real_estate".into()],
                    totals: vec![pb::CheckClassTotal {
                        class_code: "property".into(),
                        amount: Some(pb::Money { fen: 300_000 }),
                        count: 1,
                    }],
                    household_id: "hh-1".into(),
                    previous_check_id: String::new(),
                    issued_on: Some(pb_date(today)),
                }),
            ]
        );
    }

    #[test]
    fn given_an_open_request_when_its_holder_answers_then_exactly_the_answer_unsealed() {
        let state = given(opened());
        assert_eq!(
            answer(
                &state,
                &answer_of(
                    "public_security",
                    "vehicles",
                    "property",
                    AnswerValue::Count(2)
                ),
            ),
            Ok(vec![CheckEvent::Answered(pb::VerificationAnswerRecorded {
                check_id: "check-1".into(),
                department_code: "public_security".into(),
                items: vec!["vehicles".into()],
                totals: vec![pb::CheckClassTotal {
                    class_code: "property".into(),
                    amount: Some(pb::Money { fen: 0 }),
                    count: 2,
                }],
                // The store seals the values into it after the decision.
                sealed_answers: Vec::new(),
                answered_on: Some(pb_date(TODAY)),
                late: false,
            })])
        );
    }

    #[test]
    fn a_report_not_yet_issued_cannot_be_re_checked() {
        let state = given(opened());
        assert!(matches!(
            request_recheck(&state, "check-2", "new_information"),
            Err(CheckError::NotNow(_))
        ));
    }
}
