//! The monitoring platform's RPCs, each identity → parse → load (retry, known warnings) →
//! decide (`monitoring`) → append (`monitoring_store`) → answer. The district center's
//! officers of this district only; a warning that does not exist reads NOT_FOUND.

use sunshine_domain::ValidationErrors;
use sunshine_eventlog::request_digest;
use sunshine_platform::{ApiError, Identity, Role};
use sunshine_proto::v1 as pb;
use time::Date;

use crate::api::{DEFAULT_PAGE_SIZE, IntegrationApi, MAX_COMMAND_ID_LEN, MAX_PAGE_SIZE};
use crate::errors::not_found;
use crate::monitoring::{self, CloseError, WarningBatchEvent};
use crate::monitoring_store::{self, Closing, Filter, WarningRow};
use crate::store::command_metadata;

/// Who imports warnings: the district center's reviewers, and admins (the connector's job).
const IMPORTERS: &[Role] = &[Role::CenterReviewer, Role::Admin];
/// Who closes them: the district center's officers.
const CLOSERS: &[Role] = &[Role::CenterReviewer, Role::CenterApprover];
/// Who exports the feed: the district center's officers, and admins (the connector's job).
const EXPORTERS: &[Role] = &[Role::CenterReviewer, Role::CenterApprover, Role::Admin];
/// Who reads them: the district center and its auditors.
const READERS: &[Role] = &[Role::CenterReviewer, Role::CenterApprover, Role::Auditor];

const DAY: &[time::format_description::FormatItem<'static>] =
    time::macros::format_description!("[year]-[month]-[day]");

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

fn day(date: Date) -> String {
    date.format(DAY).unwrap_or_default()
}

fn pb_day(text: &str) -> Option<pb::Date> {
    Date::parse(text, DAY)
        .ok()
        .map(sunshine_proto::dates::from_date)
}

/// A row as the RPCs answer it, its status as of `today`.
fn item(row: WarningRow, today: Date) -> pb::MonitoringWarningItem {
    let deadline = Date::parse(&row.deadline, DAY).ok();
    let status = match deadline {
        Some(deadline) => monitoring::status(deadline, row.status == "closed", today),
        None => "open",
    };
    pb::MonitoringWarningItem {
        raised_on: pb_day(&row.raised_on),
        received_on: pb_day(&row.received_on),
        deadline: pb_day(&row.deadline),
        closed_on: pb_day(&row.closed_on),
        warning_id: row.warning_id,
        kind: row.kind,
        feed_person_id: row.feed_person_id,
        program_code: row.program_code,
        street_town_code: row.street_town_code,
        status: status.into(),
        outcome: row.outcome,
        org_unit_code: row.org_unit_code,
    }
}

impl IntegrationApi {
    pub(crate) async fn import_monitoring_warnings(
        &self,
        caller: &Identity,
        request: pb::ImportMonitoringWarningsRequest,
    ) -> Result<pb::ImportMonitoringWarningsResponse, ApiError> {
        caller.require_role(IMPORTERS)?;
        let state = self.state_now()?;
        caller.require_org_scope(&state.district)?;
        let mut errors = ValidationErrors::new();
        check_command_id(&mut errors, &request.command_id);
        errors.into_result()?;
        let checked = monitoring::check_batch(&request.warnings, &state.district, |program| {
            state.registry.is_program(program)
        })
        .map_err(ApiError::InvalidArgument)?;
        let metadata = command_metadata(caller, &request.command_id, request_digest(&request));
        let stream = monitoring_store::import_stream(&request.command_id)?;
        let ids: Vec<&str> = checked
            .iter()
            .map(|warning| warning.warning.warning_id.as_str())
            .collect();
        let pool = state.store.log.store.pool();
        if let Some(first) = state.store.previous_import(&stream, &metadata).await? {
            // The first answer again: the warnings it received, and of the others (whose rows
            // never change) those stored with the same content or with other content.
            let received: std::collections::BTreeSet<String> = first
                .iter()
                .filter_map(|WarningBatchEvent::Received(event)| {
                    event.warning.as_ref().map(|w| w.warning_id.clone())
                })
                .collect();
            let known = monitoring_store::known_warnings(pool, &ids)
                .await
                .map_err(ApiError::internal)?;
            let mut answer = pb::ImportMonitoringWarningsResponse {
                received: u32::try_from(received.len()).unwrap_or(u32::MAX),
                ..Default::default()
            };
            for warning in &checked {
                if received.contains(&warning.warning.warning_id) {
                    continue;
                }
                match known.get(&warning.warning.warning_id) {
                    Some(stored) if *stored == monitoring::warning_digest(&warning.warning) => {
                        answer.unchanged += 1;
                    }
                    _ => answer.refused += 1,
                }
            }
            return Ok(answer);
        }
        let known = monitoring_store::known_warnings(pool, &ids)
            .await
            .map_err(ApiError::internal)?;
        let today = state.clock.today();
        let working_days = state
            .policy
            .resolve(today)
            .map_err(|error| ApiError::FailedPrecondition(error.to_string()))?
            .integration
            .monitoring_warning_working_days;
        let due = state
            .working_days
            .due_after(today, working_days)
            .map_err(|error| ApiError::FailedPrecondition(error.to_string()))?;
        let (mut unchanged, mut refused) = (0, 0);
        let mut events = Vec::new();
        let mut rows = Vec::new();
        for warning in checked {
            let digest = monitoring::warning_digest(&warning.warning);
            match known.get(&warning.warning.warning_id) {
                Some(stored) if *stored == digest => unchanged += 1,
                Some(_) => refused += 1,
                None => {
                    rows.push(WarningRow {
                        warning_id: warning.warning.warning_id.clone(),
                        content_digest: digest,
                        kind: warning.warning.kind.clone(),
                        feed_person_id: warning.warning.feed_person_id.clone(),
                        program_code: warning.warning.program_code.clone(),
                        street_town_code: warning.warning.street_town_code.clone(),
                        org_unit_code: state.district.to_string(),
                        raised_on: day(warning.raised_on),
                        received_on: day(today),
                        deadline: day(due.date),
                        status: "open".into(),
                        outcome: String::new(),
                        closed_on: String::new(),
                    });
                    events.push(WarningBatchEvent::Received(pb::MonitoringWarningReceived {
                        warning: Some(warning.warning),
                        received_on: Some(sunshine_proto::dates::from_date(today)),
                        deadline: Some(sunshine_proto::dates::from_date(due.date)),
                        deadline_provisional: due.provisional,
                        org_unit_code: state.district.to_string(),
                    }));
                }
            }
        }
        if !state
            .store
            .append_import(&metadata, &stream, &events, &rows)
            .await?
        {
            return Err(ApiError::Conflict(
                "another import received one of these warnings meanwhile; send the batch again"
                    .into(),
            ));
        }
        Ok(pb::ImportMonitoringWarningsResponse {
            received: u32::try_from(events.len()).unwrap_or(u32::MAX),
            unchanged,
            refused,
        })
    }

    pub(crate) async fn close_monitoring_warning(
        &self,
        caller: &Identity,
        request: pb::CloseMonitoringWarningRequest,
    ) -> Result<pb::MonitoringWarningItem, ApiError> {
        caller.require_role(CLOSERS)?;
        let state = self.state_now()?;
        caller.require_org_scope(&state.district)?;
        let mut errors = ValidationErrors::new();
        check_command_id(&mut errors, &request.command_id);
        if !monitoring::is_warning_id(&request.warning_id) {
            errors.push(
                "warning_id",
                format!(
                    "1 to {} printable ASCII characters, no spaces",
                    monitoring::MAX_WARNING_ID_LEN
                ),
            );
        }
        if let Err(violations) = monitoring::check_close(&request.outcome, &request.note) {
            for violation in violations {
                errors.push(violation.field, violation.description);
            }
        }
        errors.into_result()?;
        let metadata = command_metadata(caller, &request.command_id, request_digest(&request));
        let stream = monitoring_store::warning_stream(&request.warning_id)?;
        let pool = state.store.log.store.pool();
        let today = state.clock.today();
        let load = || async {
            monitoring_store::warning(pool, &request.warning_id)
                .await
                .map_err(ApiError::internal)?
                .ok_or_else(|| not_found("warning"))
        };
        if state.store.previous_closing(&stream, &metadata).await? {
            return Ok(item(load().await?, today));
        }
        let row = load().await?;
        let closed = monitoring::decide_close(
            &request.warning_id,
            row.status == "closed",
            &request.outcome,
            &request.note,
            today,
        )
        .map_err(|error| match error {
            CloseError::Invalid(violations) => ApiError::InvalidArgument(violations),
            CloseError::ClosedBefore => {
                ApiError::FailedPrecondition("the warning was closed before".into())
            }
        })?;
        match state
            .store
            .append_closing(&metadata, &stream, &closed, &day(today))
            .await?
        {
            Closing::Appended => Ok(item(load().await?, today)),
            Closing::ClosedMeanwhile => Err(ApiError::FailedPrecondition(
                "the warning was closed before".into(),
            )),
        }
    }

    pub(crate) async fn list_monitoring_warnings(
        &self,
        caller: &Identity,
        request: pb::ListMonitoringWarningsRequest,
    ) -> Result<pb::ListMonitoringWarningsResponse, ApiError> {
        caller.require_role(READERS)?;
        let state = self.state_now()?;
        caller.require_org_scope(&state.district)?;
        let mut errors = ValidationErrors::new();
        let filter = match request.status.as_str() {
            "" => Some(Filter::Unclosed),
            "open" => Some(Filter::Open),
            "overdue" => Some(Filter::Overdue),
            "closed" => Some(Filter::Closed),
            _ => {
                errors.push(
                    "status",
                    "open, overdue, closed, or empty for open and overdue",
                );
                None
            }
        };
        let page = request.page.clone().unwrap_or_default();
        if !(0..=MAX_PAGE_SIZE).contains(&page.page_size) {
            errors.push("page.page_size", format!("0 to {MAX_PAGE_SIZE}"));
        }
        let after = if page.page_token.is_empty() {
            None
        } else {
            match page.page_token.split_once('/') {
                Some((deadline, warning_id))
                    if Date::parse(deadline, DAY).is_ok()
                        && monitoring::is_warning_id(warning_id) =>
                {
                    Some((deadline.to_owned(), warning_id.to_owned()))
                }
                _ => {
                    errors.push("page.page_token", "not a token this service gave");
                    None
                }
            }
        };
        errors.into_result()?;
        let filter = filter.unwrap_or(Filter::Unclosed);
        let limit = usize::try_from(if page.page_size == 0 {
            DEFAULT_PAGE_SIZE
        } else {
            page.page_size
        })
        .unwrap_or(50);
        let today = state.clock.today();
        let mut rows = monitoring_store::list_warnings(
            state.store.log.store.pool(),
            filter,
            &day(today),
            after,
            limit,
        )
        .await
        .map_err(ApiError::internal)?;
        let more = rows.len() > limit;
        rows.truncate(limit);
        let next_page_token = match (more, rows.last()) {
            (true, Some(last)) => format!("{}/{}", last.deadline, last.warning_id),
            _ => String::new(),
        };
        Ok(pb::ListMonitoringWarningsResponse {
            items: rows.into_iter().map(|row| item(row, today)).collect(),
            page: Some(pb::PageResponse { next_page_token }),
        })
    }

    pub(crate) async fn export_monitoring_feed(
        &self,
        caller: &Identity,
        request: pb::ExportMonitoringFeedRequest,
    ) -> Result<pb::MonitoringFeedPage, ApiError> {
        caller.require_role(EXPORTERS)?;
        let state = self.state_now()?;
        caller.require_org_scope(&state.district)?;
        let mut errors = ValidationErrors::new();
        let month = sunshine_domain::Month::parse(&request.month).ok();
        if month.is_none() {
            errors.push("month", "YYYY-MM");
        }
        let page = request.page.clone().unwrap_or_default();
        if !(0..=monitoring::MAX_FEED_PAGE).contains(&page.page_size) {
            errors.push(
                "page.page_size",
                format!("0 to {}", monitoring::MAX_FEED_PAGE),
            );
        }
        let after = if page.page_token.is_empty() {
            None
        } else {
            match page.page_token.split_once('/') {
                Some((department, record))
                    if crate::dictionary::is_code(department)
                        && monitoring::is_warning_id(record) =>
                {
                    Some((department.to_owned(), record.to_owned()))
                }
                _ => {
                    errors.push("page.page_token", "not a token this service gave");
                    None
                }
            }
        };
        errors.into_result()?;
        let month = month.map(|month| month.to_string()).unwrap_or_default();
        let limit = usize::try_from(if page.page_size == 0 {
            monitoring::MAX_FEED_PAGE
        } else {
            page.page_size
        })
        .unwrap_or(5_000);
        let mut rows =
            monitoring_store::feed_records(state.store.log.store.pool(), &month, after, limit)
                .await
                .map_err(ApiError::internal)?;
        let more = rows.len() > limit;
        rows.truncate(limit);
        let next_page_token = match (more, rows.last()) {
            (true, Some((department, record, _))) => format!("{department}/{record}"),
            _ => String::new(),
        };
        let records: Vec<monitoring::FeedRecord> =
            rows.into_iter().map(|(_, _, record)| record).collect();
        let file = monitoring::feed_file(state.district.as_str(), &month, &records);
        let file_sha256 = monitoring::file_sha256(&file);
        let count = u32::try_from(records.len()).unwrap_or(u32::MAX);
        let metadata = sunshine_eventlog::EventMetadata {
            actor: sunshine_eventlog::actor_of(caller),
            traceparent: sunshine_platform::telemetry::current_traceparent(),
            ..sunshine_eventlog::EventMetadata::default()
        };
        state
            .store
            .record_export(
                &metadata,
                pb::MonitoringFeedExported {
                    month,
                    format_version: monitoring::FEED_FORMAT.into(),
                    rows: count,
                    file_sha256: file_sha256.clone(),
                    page_token: page.page_token,
                },
            )
            .await?;
        Ok(pb::MonitoringFeedPage {
            file,
            rows: count,
            file_sha256,
            page: Some(pb::PageResponse { next_page_token }),
        })
    }
}
