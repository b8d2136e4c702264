//! The economic-status check's RPCs, each identity → parse → load (retry, scope, version) →
//! decide (`check`) → append (`check_store`) → answer. Officers (caseworkers, reviewers, the
//! district center) act on households and cases within their org unit; a data holder answers
//! only its own requests. Anything outside the caller's reach reads exactly like something that
//! does not exist (NOT_FOUND, one message).

use sunshine_domain::{OrgUnitCode, ValidationErrors};
use sunshine_eventlog::{ExpectedVersion, request_digest};
use sunshine_platform::{ApiError, Identity, Role};
use sunshine_proto::v1 as pb;
use time::Date;

use crate::api::{
    DEFAULT_PAGE_SIZE, IntegrationApi, IntegrationState, MAX_COMMAND_ID_LEN, MAX_PAGE_SIZE,
};
use crate::check::{self, AnswerValue, CheckState, CheckedAnswer, OpenCheck, RECHECK_REASONS};
use crate::check_store::{self, check_id_for, consent_id_for, recheck_id_for};
use crate::dictionary::{ValueType, is_code};
use crate::errors::not_found;
use crate::registry::Department;
use crate::store::command_metadata;

/// Who records a household's consent: its caseworkers.
const CASEWORKERS: &[Role] = &[
    Role::VillageClerk,
    Role::StreetReviewer,
    Role::CenterReviewer,
];
/// Who opens checks and asks for re-checks: the street-town and district reviewers.
const REVIEWERS: &[Role] = &[Role::StreetReviewer, Role::CenterReviewer];
/// Who records overdue requests: the district center, and the ops worker's admin token.
const OVERDUE_RECORDERS: &[Role] = &[Role::CenterReviewer, Role::Admin];
/// Who reads the work queue: the district center, its auditors, a data holder (its own).
const QUEUE_READERS: &[Role] = &[
    Role::CenterReviewer,
    Role::CenterApprover,
    Role::Auditor,
    Role::Department,
];
const HOLDERS: &[Role] = &[Role::Department];

/// Items one consent or answer may list.
pub const MAX_ITEMS: usize = 50;
/// Largest amount answered for one item: ¥1,000,000,000.
pub const MAX_ANSWER_FEN: i64 = 100_000_000_000;
/// Largest count answered for one item.
pub const MAX_ANSWER_COUNT: u64 = 1_000;
/// Appends retried when another holder's answer moved the check meanwhile.
const ANSWER_ATTEMPTS: u32 = 5;

fn check_command_id(errors: &mut ValidationErrors, command_id: &str) {
    if command_id.is_empty()
        || command_id.len() > MAX_COMMAND_ID_LEN
        || !command_id.bytes().all(|byte| byte.is_ascii_graphic())
    {
        errors.push(
            "command_id",
            format!("1 to {MAX_COMMAND_ID_LEN} printable ASCII characters"),
        );
    }
}

/// A UUID as the services write them: 36 characters, lowercase, hyphenated.
fn check_uuid(errors: &mut ValidationErrors, field: &str, value: &str) {
    let canonical =
        uuid::Uuid::parse_str(value).is_ok_and(|parsed| parsed.hyphenated().to_string() == value);
    if !canonical {
        errors.push(
            field,
            "a UUID (36 lowercase hexadecimal characters and hyphens)",
        );
    }
}

fn date_field(
    errors: &mut ValidationErrors,
    field: &str,
    value: Option<&pb::Date>,
) -> Option<Date> {
    let date = value.and_then(|date| sunshine_proto::dates::to_date(Some(date)));
    if value.is_some() && date.is_none() {
        errors.push(field, "not a date");
    }
    date
}

/// Whether the caller's org unit covers `org_unit` (a code that is not one covers nothing).
fn covers(caller: &Identity, org_unit: &str) -> bool {
    OrgUnitCode::parse(org_unit).is_ok_and(|code| caller.org_unit.covers(&code))
}

/// A check's state as its RPCs answer it.
fn response(state: &CheckState) -> pb::CheckResponse {
    response_for(state, None)
}

/// As [`response`]; for a data holder (`Some(code)`) only its own request: a holder does not
/// learn which other departments a check asks.
fn response_for(state: &CheckState, holder: Option<&str>) -> pb::CheckResponse {
    pb::CheckResponse {
        check_id: state.check_id().to_owned(),
        version: state.version,
        round: state.opened.round,
        requests: state
            .requests
            .iter()
            .filter(|(department, _)| holder.is_none_or(|holder| holder == department.as_str()))
            .map(|(department, request)| pb::VerificationRequestState {
                department_code: department.clone(),
                data_items: request.items.clone(),
                deadline: Some(sunshine_proto::dates::from_date(request.deadline)),
                status: request.status.as_str().into(),
            })
            .collect(),
        report_issued: state.report.is_some(),
    }
}

/// The check after `events` were appended on `state` (or opened it, from version 1).
fn after(state: Option<CheckState>, events: &[check::CheckEvent]) -> Result<CheckState, ApiError> {
    let folded = match state {
        None => CheckState::fold(events.iter().cloned().zip(1..)),
        Some(state) => {
            let base = state.version;
            Some(
                events
                    .iter()
                    .cloned()
                    .zip(base + 1..)
                    .fold(state, |state, (event, version)| state.with(event, version)),
            )
        }
    };
    folded.ok_or_else(|| ApiError::internal(std::io::Error::other("a check without CheckOpened")))
}

impl IntegrationApi {
    fn check_state(&self) -> Result<&IntegrationState, ApiError> {
        self.state
            .get()
            .ok_or_else(|| ApiError::Unavailable("department-integration is starting".into()))
    }

    /// The calling data holder: of this district (another district's reads like no request:
    /// NOT_FOUND) and in the registry.
    fn holder<'a>(
        state: &'a IntegrationState,
        caller: &Identity,
    ) -> Result<&'a Department, ApiError> {
        if !caller.org_unit.covers(&state.district) {
            return Err(not_found("check"));
        }
        Self::department(state, caller)
    }

    pub(crate) async fn record_consent(
        &self,
        caller: &Identity,
        request: pb::RecordConsentRequest,
    ) -> Result<pb::RecordConsentResponse, ApiError> {
        caller.require_role(CASEWORKERS)?;
        let state = self.check_state()?;
        let mut errors = ValidationErrors::new();
        check_command_id(&mut errors, &request.command_id);
        check_uuid(&mut errors, "household_id", &request.household_id);
        if request.data_items.is_empty() || request.data_items.len() > MAX_ITEMS {
            errors.push("data_items", format!("1 to {MAX_ITEMS} items"));
        }
        for (index, item) in request.data_items.iter().take(MAX_ITEMS).enumerate() {
            if !is_code(item) || state.dictionary.item(item).is_none() {
                errors.push(
                    format!("data_items[{index}]"),
                    "not an item of the field dictionary",
                );
            } else if request.data_items[..index].contains(item) {
                errors.push(format!("data_items[{index}]"), "listed twice");
            }
        }
        let valid_from = date_field(&mut errors, "valid_from", request.valid_from.as_ref());
        if request.valid_from.is_none() {
            errors.push("valid_from", "required");
        }
        let valid_until = date_field(&mut errors, "valid_until", request.valid_until.as_ref());
        if let (Some(from), Some(until)) = (valid_from, valid_until)
            && until < from
        {
            errors.push("valid_until", "must not be before valid_from");
        }
        if request.document_digest.len() != 64
            || !request
                .document_digest
                .bytes()
                .all(|byte| byte.is_ascii_digit() || (b'a'..=b'f').contains(&byte))
        {
            errors.push("document_digest", "SHA-256: 64 lowercase hex characters");
        }
        errors.into_result()?;
        let metadata = command_metadata(caller, &request.command_id, request_digest(&request));
        // A retry first: its first answer.
        let stream = check_store::consent_stream(&request.household_id)?;
        if let Some(previous) = state
            .store
            .log
            .store
            .previous_outcome(&stream, &metadata)
            .await?
        {
            return Ok(pb::RecordConsentResponse {
                consent_id: consent_id_for(&request.household_id, &request.command_id),
                version: previous.last_version,
            });
        }
        // The household, in the caller's scope.
        let Some((org_unit, household_version)) =
            state.store.household_now(&request.household_id).await?
        else {
            return Err(not_found("household"));
        };
        if !covers(caller, &org_unit) {
            return Err(not_found("household"));
        }
        let consent = pb::ConsentRecorded {
            consent_id: consent_id_for(&request.household_id, &request.command_id),
            household_id: request.household_id.clone(),
            data_items: request.data_items.clone(),
            valid_from: request.valid_from,
            valid_until: request.valid_until,
            household_version,
            document_digest: request.document_digest.clone(),
        };
        let (consent_id, version) = state.store.record_consent(&metadata, consent).await?;
        Ok(pb::RecordConsentResponse {
            consent_id,
            version,
        })
    }

    pub(crate) async fn open_check(
        &self,
        caller: &Identity,
        request: pb::OpenCheckRequest,
    ) -> Result<pb::CheckResponse, ApiError> {
        caller.require_role(REVIEWERS)?;
        let state = self.check_state()?;
        let mut errors = ValidationErrors::new();
        check_command_id(&mut errors, &request.command_id);
        check_uuid(&mut errors, "case_id", &request.case_id);
        errors.into_result()?;
        let metadata = command_metadata(caller, &request.command_id, request_digest(&request));
        // A retry first: the check of the case's last verification request (or, for a case
        // that has none, a stream no check has, so that a command id used before is refused).
        let case = state.store.case_facts(&request.case_id).await?;
        let requested_at = case.as_ref().and_then(|case| case.last_requested);
        let check_id = check_id_for(&request.case_id, requested_at.unwrap_or(0));
        if let Some(first) = state.store.retried_check(&check_id, &metadata).await? {
            return Ok(response(&first));
        }
        // The case, in the caller's scope.
        let Some(case) = case else {
            return Err(not_found("case"));
        };
        if !covers(caller, &case.org_unit_code) {
            return Err(not_found("case"));
        }
        if requested_at.is_none() {
            return Err(check::CheckError::NotNow(format!(
                "case {} is not waiting for verification",
                case.case_id
            ))
            .into());
        }
        if let Some(existing) = state.store.load_check(&check_id).await? {
            return Err(ApiError::AlreadyExists {
                what: "check".into(),
                existing_id: Some(existing.check_id().to_owned()),
            });
        }
        let consent = state.store.consent_facts(&case.household_id).await?;
        let command = self.open_command(state, check_id, case, consent, None)?;
        let events = check::open(&command)?;
        state
            .store
            .append_check(
                &metadata,
                None,
                ExpectedVersion::NoStream,
                events.clone(),
                None,
            )
            .await
            .map_err(|error| match error {
                ApiError::Conflict(_) => ApiError::AlreadyExists {
                    what: "check".into(),
                    existing_id: Some(command.check_id.clone()),
                },
                other => other,
            })?;
        Ok(response(&after(None, &events)?))
    }

    /// The opening command: today, the check's items and holders, and the deadline from the
    /// policy in force today on the working-day calendar.
    fn open_command(
        &self,
        state: &IntegrationState,
        check_id: String,
        case: check::CaseFacts,
        consent: check::ConsentFacts,
        recheck_of: Option<(CheckState, String)>,
    ) -> Result<OpenCheck, ApiError> {
        let today = state.clock.today();
        let items = state.registry.check_items().to_vec();
        let holders = state.registry.holders_for(&items);
        let procedure = state
            .policy
            .resolve(today)
            .map_err(|error| ApiError::FailedPrecondition(error.to_string()))?
            .procedure;
        let due = procedure
            .check_response_due(&state.working_days, today)
            .map_err(|error| ApiError::FailedPrecondition(error.to_string()))?;
        Ok(OpenCheck {
            check_id,
            case,
            consent,
            items,
            holders,
            today,
            deadline: due.date,
            provisional: due.provisional,
            recheck_of,
        })
    }

    pub(crate) async fn answer_check(
        &self,
        caller: &Identity,
        request: pb::AnswerCheckRequest,
    ) -> Result<pb::CheckResponse, ApiError> {
        caller.require_role(HOLDERS)?;
        let state = self.check_state()?;
        let department = Self::holder(state, caller)?;
        let mut errors = ValidationErrors::new();
        check_command_id(&mut errors, &request.command_id);
        check_uuid(&mut errors, "check_id", &request.check_id);
        if request.answers.is_empty() || request.answers.len() > MAX_ITEMS {
            errors.push("answers", format!("1 to {MAX_ITEMS} answers"));
        }
        let mut answers = Vec::new();
        for (index, answer) in request.answers.iter().take(MAX_ITEMS).enumerate() {
            let at = format!("answers[{index}]");
            let item = if !is_code(&answer.item) {
                None
            } else {
                state.dictionary.item(&answer.item)
            };
            let Some(item) = item.filter(|_| department.answers.contains(&answer.item)) else {
                errors.push(
                    format!("{at}.item"),
                    format!("not an item department {} answers", department.code),
                );
                continue;
            };
            if request.answers[..index]
                .iter()
                .any(|earlier| earlier.item == answer.item)
            {
                errors.push(format!("{at}.item"), "answered twice");
                continue;
            }
            let value = match &answer.value {
                Some(pb::item_answer::Value::Amount(money)) => {
                    if (0..=MAX_ANSWER_FEN).contains(&money.fen) {
                        Some(AnswerValue::AmountFen(money.fen))
                    } else {
                        errors.push(format!("{at}.amount"), format!("0 to {MAX_ANSWER_FEN} fen"));
                        continue;
                    }
                }
                Some(pb::item_answer::Value::Count(count)) => {
                    if *count <= MAX_ANSWER_COUNT {
                        Some(AnswerValue::Count(*count))
                    } else {
                        errors.push(format!("{at}.count"), format!("0 to {MAX_ANSWER_COUNT}"));
                        continue;
                    }
                }
                Some(pb::item_answer::Value::Flag(flag)) => Some(AnswerValue::Flag(*flag)),
                Some(pb::item_answer::Value::Date(date)) => {
                    match sunshine_proto::dates::to_date(Some(date)) {
                        Some(date) => Some(AnswerValue::Date(date)),
                        None => {
                            errors.push(format!("{at}.date"), "not a date");
                            continue;
                        }
                    }
                }
                None => None,
            };
            match value {
                Some(value) if value.value_type() == item.value_type => {
                    answers.push(CheckedAnswer {
                        item: item.code.clone(),
                        class: item.class.clone(),
                        value,
                    })
                }
                _ => errors.push(
                    format!("{at}.value"),
                    format!(
                        "{} is answered as {}",
                        item.code,
                        match item.value_type {
                            ValueType::Amount => "an amount (fen)",
                            ValueType::Count => "a count",
                            ValueType::Flag => "a flag",
                            ValueType::Date => "a date",
                        }
                    ),
                ),
            }
        }
        errors.into_result()?;
        let metadata = command_metadata(caller, &request.command_id, request_digest(&request));
        if let Some(first) = state
            .store
            .retried_check(&request.check_id, &metadata)
            .await?
        {
            return Ok(response_for(&first, Some(&department.code)));
        }
        let command = check::Answer {
            department_code: department.code.clone(),
            answers,
            today: state.clock.today(),
        };
        let mut attempt = 1;
        loop {
            let Some(check) = state.store.load_check(&request.check_id).await? else {
                return Err(not_found("check"));
            };
            let events = check::answer(&check, &command)?;
            match state
                .store
                .append_check(
                    &metadata,
                    Some(&check),
                    ExpectedVersion::Exact(check.version),
                    events.clone(),
                    Some((department.code.as_str(), request.answers.clone())),
                )
                .await
            {
                Ok(_) => {
                    let done = after(Some(check), &events)?;
                    return Ok(response_for(&done, Some(&department.code)));
                }
                Err(ApiError::Conflict(_)) if attempt < ANSWER_ATTEMPTS => attempt += 1,
                Err(error) => return Err(error),
            }
        }
    }

    pub(crate) async fn record_overdue_verifications(
        &self,
        caller: &Identity,
        _request: pb::RecordOverdueVerificationsRequest,
    ) -> Result<pb::RecordOverdueVerificationsResponse, ApiError> {
        caller.require_role(OVERDUE_RECORDERS)?;
        let state = self.check_state()?;
        caller.require_org_scope(&state.district)?;
        let today = state.clock.today();
        let metadata = sunshine_eventlog::EventMetadata {
            actor: sunshine_eventlog::actor_of(caller),
            traceparent: sunshine_platform::telemetry::current_traceparent(),
            ..sunshine_eventlog::EventMetadata::default()
        };
        let late = crate::read_model::checks_with_late_requests(
            state.store.log.store.pool(),
            &today.to_string(),
        )
        .await
        .map_err(ApiError::internal)?;
        let mut answer = pb::RecordOverdueVerificationsResponse::default();
        for check_id in late {
            let mut attempt = 1;
            loop {
                let Some(check) = state.store.load_check(&check_id).await? else {
                    break;
                };
                let events = check::mark_overdue(&check, today);
                if events.is_empty() {
                    break;
                }
                match state
                    .store
                    .append_check(
                        &metadata,
                        Some(&check),
                        ExpectedVersion::Exact(check.version),
                        events.clone(),
                        None,
                    )
                    .await
                {
                    Ok(_) => {
                        for event in &events {
                            match event {
                                check::CheckEvent::Overdue(_) => answer.recorded += 1,
                                check::CheckEvent::ReportIssued(_) => answer.reports_issued += 1,
                                _ => {}
                            }
                        }
                        break;
                    }
                    Err(ApiError::Conflict(_)) if attempt < ANSWER_ATTEMPTS => attempt += 1,
                    Err(error) => return Err(error),
                }
            }
        }
        Ok(answer)
    }

    pub(crate) async fn list_check_work_queue(
        &self,
        caller: &Identity,
        request: pb::ListCheckWorkQueueRequest,
    ) -> Result<pb::ListCheckWorkQueueResponse, ApiError> {
        caller.require_role(QUEUE_READERS)?;
        let state = self.check_state()?;
        caller.require_org_scope(&state.district)?;
        let department = if caller.role == Role::Department {
            Some(Self::department(state, caller)?.code.clone())
        } else {
            None
        };
        let mut errors = ValidationErrors::new();
        let statuses: &[&str] = match request.status.as_str() {
            "" => &["open", "overdue"],
            "open" => &["open"],
            "overdue" => &["overdue"],
            _ => {
                errors.push("status", "open, overdue, or empty for both");
                &[]
            }
        };
        let page = request.page.clone().unwrap_or_default();
        if !(0..=MAX_PAGE_SIZE).contains(&page.page_size) {
            errors.push("page.page_size", format!("0 to {MAX_PAGE_SIZE}"));
        }
        let after = if page.page_token.is_empty() {
            None
        } else {
            let parts: Vec<&str> = page.page_token.split('/').collect();
            match parts.as_slice() {
                [deadline, check_id, department]
                    if deadline.len() == 10
                        && uuid::Uuid::parse_str(check_id).is_ok()
                        && is_code(department) =>
                {
                    Some((
                        (*deadline).to_owned(),
                        (*check_id).to_owned(),
                        (*department).to_owned(),
                    ))
                }
                _ => {
                    errors.push("page.page_token", "not a token this service gave");
                    None
                }
            }
        };
        errors.into_result()?;
        let limit = usize::try_from(if page.page_size == 0 {
            DEFAULT_PAGE_SIZE
        } else {
            page.page_size
        })
        .unwrap_or(50);
        let mut rows = crate::read_model::work_queue(
            state.store.log.store.pool(),
            statuses,
            department.as_deref(),
            after,
            limit,
        )
        .await
        .map_err(ApiError::internal)?;
        let more = rows.len() > limit;
        rows.truncate(limit);
        let next_page_token = match (more, rows.last()) {
            (true, Some(last)) => format!(
                "{}/{}/{}",
                last.deadline, last.check_id, last.department_code
            ),
            _ => String::new(),
        };
        Ok(pb::ListCheckWorkQueueResponse {
            items: rows
                .into_iter()
                .map(|row| pb::CheckWorkItem {
                    deadline: Date::parse(
                        &row.deadline,
                        time::macros::format_description!("[year]-[month]-[day]"),
                    )
                    .ok()
                    .map(sunshine_proto::dates::from_date),
                    check_id: row.check_id,
                    case_id: row.case_id,
                    department_code: row.department_code,
                    status: row.status,
                    round: u32::try_from(row.round).unwrap_or(0),
                })
                .collect(),
            page: Some(pb::PageResponse { next_page_token }),
        })
    }

    pub(crate) async fn request_recheck(
        &self,
        caller: &Identity,
        request: pb::RequestRecheckRequest,
    ) -> Result<pb::CheckResponse, ApiError> {
        caller.require_role(REVIEWERS)?;
        let state = self.check_state()?;
        let mut errors = ValidationErrors::new();
        check_command_id(&mut errors, &request.command_id);
        check_uuid(&mut errors, "check_id", &request.check_id);
        if !RECHECK_REASONS.contains(&request.reason.as_str()) {
            errors.push("reason", format!("one of {}", RECHECK_REASONS.join(", ")));
        }
        errors.into_result()?;
        let metadata = command_metadata(caller, &request.command_id, request_digest(&request));
        let recheck_id = recheck_id_for(&request.check_id);
        if let Some(retried) = state.store.retried_check(&recheck_id, &metadata).await? {
            return Ok(response(&retried));
        }
        let Some(first) = state.store.load_check(&request.check_id).await? else {
            return Err(not_found("check"));
        };
        if !covers(caller, &first.opened.org_unit_code) {
            return Err(not_found("check"));
        }
        let resumed = first.recheck_id.as_deref() == Some(recheck_id.as_str())
            && state.store.load_check(&recheck_id).await?.is_none();
        if !resumed && first.version != request.expected_version {
            return Err(ApiError::Conflict(format!(
                "the check is at version {}, not {}",
                first.version, request.expected_version
            )));
        }
        let asked = if resumed {
            Vec::new()
        } else {
            check::request_recheck(&first, &recheck_id, &request.reason)?
        };
        let Some(case) = state.store.case_facts(&first.opened.case_id).await? else {
            return Err(not_found("check"));
        };
        let consent = state.store.consent_facts(&case.household_id).await?;
        let command = self.open_command(
            state,
            recheck_id.clone(),
            case,
            consent,
            Some((first.clone(), request.reason.clone())),
        )?;
        let events = check::open(&command)?;
        if !asked.is_empty() {
            // Its own command id: the log knows a command id once, and the re-check's stream
            // holds the request's (a retry is found there).
            let marker = command_metadata(
                caller,
                &format!("{}/recheck-requested", request.command_id),
                request_digest(&request),
            );
            state
                .store
                .append_check(
                    &marker,
                    Some(&first),
                    ExpectedVersion::Exact(first.version),
                    asked,
                    None,
                )
                .await?;
        }
        state
            .store
            .append_check(
                &metadata,
                None,
                ExpectedVersion::NoStream,
                events.clone(),
                None,
            )
            .await?;
        Ok(response(&after(None, &events)?))
    }
}
