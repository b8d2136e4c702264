//! The gRPC service: every RPC identity → parse → load → decide → append → answer. The caller
//! is a department's system (role `department`), acting only as the department its token
//! names.

use std::sync::{Arc, OnceLock};

use sunshine_domain::{FieldViolation, NationalId, OrgUnitCode, ValidationErrors};
use sunshine_eventlog::request_digest;
use sunshine_platform::{ApiError, Identity, Role};
use sunshine_proto::v1 as pb;
use sunshine_proto::v1::department_integration_service_server::DepartmentIntegrationService;

use crate::aggregate::{self, Outcome, Prepared};
use crate::csv;
use crate::errors::Refusal;
use crate::read_model;
use crate::records::{self, Checked, MAX_BATCH, RecordFields};
use crate::registry::{Department, Registry};
use crate::store::{self, IntegrationStore};

/// Only departments' systems call this service.
const DEPARTMENTS: &[Role] = &[Role::Department];
/// Longest command id.
pub const MAX_COMMAND_ID_LEN: usize = 100;
/// Programs one query may name.
pub const MAX_QUERY_PROGRAMS: usize = 50;
/// A query's page: at most this many entries (0: [`DEFAULT_PAGE_SIZE`]).
pub const MAX_PAGE_SIZE: i32 = 100;
pub const DEFAULT_PAGE_SIZE: i32 = 50;

/// What a running service holds once the database and the bus are connected.
#[derive(Debug)]
pub struct IntegrationState {
    pub store: IntegrationStore,
    pub registry: Arc<Registry>,
    /// The deployment's district: a department of another district has no business here.
    pub district: OrgUnitCode,
    // ---- the economic-status check (slice 2) ----
    /// The field dictionary: the answers' item types and classes.
    pub dictionary: Arc<crate::dictionary::FieldDictionary>,
    /// The policy: the check's response deadline (procedure.check_response_working_days).
    pub policy: Arc<sunshine_policy::Policy>,
    pub working_days: Arc<sunshine_domain::WorkingDayCalendar>,
    pub clock: Arc<dyn sunshine_platform::clock::Clock>,
    // ---- subscriptions and linkage (slice 3) ----
    /// The log's poll interval: how long a followed subscription waits at most for new events
    /// when no wake-up reaches it (`log.poll_interval_ms`).
    pub poll_interval: std::time::Duration,
    /// The linkage rules (`integration.linkage_file`).
    pub linkage: Arc<crate::linkage::LinkageRules>,
}

#[derive(Debug, Clone)]
pub struct IntegrationApi {
    pub state: Arc<OnceLock<IntegrationState>>,
}

/// A push's or import's records, checked, with what identifies the command.
#[derive(Debug)]
struct Batch<'a> {
    /// `push` or `csv`.
    channel: &'a str,
    command_id: &'a str,
    /// The request's digest: a retry is the same command id with the same digest.
    digest: String,
    checked: Vec<Checked>,
}

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

fn fields_of(record: &pb::AssistanceRecord) -> RecordFields {
    RecordFields {
        record_id: record.record_id.clone(),
        national_id: record.national_id.clone(),
        program_code: record.program_code.clone(),
        kind: record.kind.clone(),
        amount_fen: record.amount.as_ref().map(|money| money.fen),
        period_start: record.period_start.clone(),
        period_end: record.period_end.clone(),
    }
}

fn to_pb_violations(violations: Vec<FieldViolation>) -> Vec<pb::FieldError> {
    violations
        .into_iter()
        .map(|violation| pb::FieldError {
            field: violation.field,
            description: violation.description,
        })
        .collect()
}

/// The response from the outcomes, in batch order.
fn answer(outcomes: Vec<(String, Outcome)>) -> pb::PushAssistanceRecordsResponse {
    let mut response = pb::PushAssistanceRecordsResponse::default();
    for (index, (record_id, outcome)) in outcomes.into_iter().enumerate() {
        let (code, violations) = match outcome {
            Outcome::Stored => {
                response.stored += 1;
                (pb::RecordOutcome::Stored, Vec::new())
            }
            Outcome::Unchanged => {
                response.unchanged += 1;
                (pb::RecordOutcome::Unchanged, Vec::new())
            }
            Outcome::Refused => {
                response.refused += 1;
                (
                    pb::RecordOutcome::Refused,
                    vec![pb::FieldError {
                        field: format!("records[{index}].record_id"),
                        description: "stored before with other content; the stored record stands"
                            .into(),
                    }],
                )
            }
            Outcome::Rejected(violations) => {
                response.rejected += 1;
                (pb::RecordOutcome::Rejected, to_pb_violations(violations))
            }
        };
        response.results.push(pb::RecordResult {
            index: u32::try_from(index).unwrap_or(u32::MAX),
            record_id,
            outcome: code.into(),
            violations,
        });
    }
    response
}

impl IntegrationApi {
    pub(crate) fn connected(&self) -> Result<&IntegrationState, ApiError> {
        self.state
            .get()
            .ok_or_else(|| ApiError::Unavailable("department-integration is starting".into()))
    }

    /// The caller's department: of this district, its token's code listed in the registry.
    pub(crate) fn department<'a>(
        state: &'a IntegrationState,
        caller: &Identity,
    ) -> Result<&'a Department, ApiError> {
        caller.require_org_scope(&state.district)?;
        let code = caller
            .department_code
            .as_deref()
            .ok_or(Refusal::NoDepartment)?;
        Ok(state
            .registry
            .department(code)
            .ok_or_else(|| Refusal::UnknownDepartment(code.to_owned()))?)
    }

    /// Load → decide → append → answer for a batch already checked.
    async fn push_checked(
        state: &IntegrationState,
        caller: &Identity,
        department: &Department,
        batch: Batch<'_>,
    ) -> Result<pb::PushAssistanceRecordsResponse, ApiError> {
        let Batch {
            channel,
            command_id,
            digest,
            checked,
        } = batch;
        let metadata = store::command_metadata(caller, command_id, digest);
        let stream = store::batch_stream(&department.code, command_id)?;
        if let Some(first) = state.store.previous(&stream, &metadata).await? {
            return Ok(answer(aggregate::outcomes_of_retry(checked, &first)));
        }
        let ids: Vec<&str> = checked
            .iter()
            .filter_map(|checked| {
                checked
                    .as_ref()
                    .ok()
                    .map(|record| record.record_id.as_str())
            })
            .collect();
        let stored = state.store.stored_digests(&department.code, &ids).await?;
        let mut batch = Vec::with_capacity(checked.len());
        for checked in checked {
            batch.push(match checked {
                Ok(record) => {
                    let person_index = state.store.person_index(&record.national_id)?;
                    (
                        record.record_id.clone(),
                        Ok(Prepared {
                            record,
                            person_index,
                        }),
                    )
                }
                Err(violations) => (String::new(), Err(violations)),
            });
        }
        // duplicate assistance (issue 13): the batch's good records and persons, compared once
        // the push is stored
        let mut compared = std::collections::BTreeSet::new();
        let mut persons = std::collections::BTreeSet::new();
        for (record_id, prepared) in &batch {
            if let Ok(prepared) = prepared {
                compared.insert(record_id.clone());
                persons.insert(hex::encode(prepared.person_index));
            }
        }
        let decision = aggregate::decide(&department.code, channel, batch, &stored);
        state
            .store
            .append_batch(&metadata, &stream, &department.code, &decision)
            .await?;
        state
            .store
            .detect_duplicates(
                caller,
                &department.code,
                &compared,
                &persons,
                &state.policy,
                state.clock.today(),
            )
            .await?;
        Ok(answer(decision.outcomes))
    }

    async fn push_assistance_records(
        &self,
        caller: &Identity,
        request: pb::PushAssistanceRecordsRequest,
    ) -> Result<pb::PushAssistanceRecordsResponse, ApiError> {
        caller.require_role(DEPARTMENTS)?;
        let state = self.connected()?;
        let department = Self::department(state, caller)?;
        let mut errors = ValidationErrors::new();
        check_command_id(&mut errors, &request.command_id);
        if request.records.is_empty() || request.records.len() > MAX_BATCH {
            errors.push("records", format!("1 to {MAX_BATCH} records"));
        }
        errors.into_result()?;
        let fields: Vec<RecordFields> = request.records.iter().map(fields_of).collect();
        let checked = records::check_batch("records", &fields, department);
        let digest = request_digest(&request);
        let batch = Batch {
            channel: "push",
            command_id: &request.command_id,
            digest,
            checked,
        };
        Self::push_checked(state, caller, department, batch).await
    }

    async fn import_assistance_csv(
        &self,
        caller: &Identity,
        request: pb::ImportAssistanceCsvRequest,
    ) -> Result<pb::PushAssistanceRecordsResponse, ApiError> {
        caller.require_role(DEPARTMENTS)?;
        let state = self.connected()?;
        let department = Self::department(state, caller)?;
        let mut errors = ValidationErrors::new();
        check_command_id(&mut errors, &request.command_id);
        errors.into_result()?;
        let checked =
            csv::check_file(&request.file, department).map_err(ApiError::InvalidArgument)?;
        if !request.good_rows_only {
            let bad: Vec<FieldViolation> = checked
                .iter()
                .filter_map(|checked| checked.as_ref().err())
                .flatten()
                .cloned()
                .collect();
            if !bad.is_empty() {
                return Err(Refusal::BadRows(bad).into());
            }
        }
        let digest = request_digest(&request);
        let batch = Batch {
            channel: "csv",
            command_id: &request.command_id,
            digest,
            checked,
        };
        Self::push_checked(state, caller, department, batch).await
    }

    async fn query_household_assistance(
        &self,
        caller: &Identity,
        request: pb::QueryHouseholdAssistanceRequest,
    ) -> Result<pb::QueryHouseholdAssistanceResponse, ApiError> {
        caller.require_role(DEPARTMENTS)?;
        let state = self.connected()?;
        let department = Self::department(state, caller)?;
        // parse
        let mut errors = ValidationErrors::new();
        let national_id = errors.check("national_id", NationalId::parse(&request.national_id));
        let purpose = pb::QueryPurpose::try_from(request.purpose)
            .ok()
            .filter(|purpose| *purpose != pb::QueryPurpose::Unspecified);
        if purpose.is_none() {
            errors.push(
                "purpose",
                "one of eligibility, duplicate_check, review, linkage",
            );
        }
        if request.program_codes.len() > MAX_QUERY_PROGRAMS {
            errors.push("program_codes", format!("at most {MAX_QUERY_PROGRAMS}"));
        } else {
            for (index, program) in request.program_codes.iter().enumerate() {
                if !state.registry.is_program(program) {
                    errors.push(
                        format!("program_codes[{index}]"),
                        "not a program of the registry",
                    );
                }
            }
        }
        let page = request.page.clone().unwrap_or_default();
        if !(0..=MAX_PAGE_SIZE).contains(&page.page_size) {
            errors.push("page.page_size", format!("0 to {MAX_PAGE_SIZE}"));
        }
        let after = if page.page_token.is_empty() {
            None
        } else {
            match page.page_token.split_once('/') {
                Some((department, record))
                    if records::is_record_id(record) && department.len() <= 48 =>
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
        let (Some(national_id), Some(purpose)) = (national_id, purpose) else {
            return Err(ApiError::internal(std::io::Error::other(
                "parsed query incomplete",
            )));
        };
        let person_index = state.store.person_index(&national_id)?;
        // scope
        let outside: Vec<String> = request
            .program_codes
            .iter()
            .filter(|program| !department.may_read_program(program))
            .cloned()
            .collect();
        let mut event = pb::DepartmentQueryRecorded {
            department_code: department.code.clone(),
            purpose: purpose.into(),
            person_index: person_index.to_vec(),
            program_codes: request.program_codes.clone(),
            answered: outside.is_empty(),
            entries: 0,
            refused_program_codes: outside.clone(),
            rpc: "QueryHouseholdAssistance".into(),
        };
        if !outside.is_empty() {
            state
                .store
                .record_query(caller, &department.code, event)
                .await?;
            return Err(Refusal::OutOfScope {
                department: department.code.clone(),
                programs: outside,
            }
            .into());
        }
        // load
        let programs: Vec<String> =
            if request.program_codes.is_empty() && !department.reads_all_records() {
                department.programs.iter().cloned().collect()
            } else {
                request.program_codes.clone()
            };
        let limit = usize::try_from(if page.page_size == 0 {
            DEFAULT_PAGE_SIZE
        } else {
            page.page_size
        })
        .unwrap_or(50);
        let only = (!department.reads_all_records()).then_some(department.code.as_str());
        let mut rows = read_model::records_of_person(
            state.store.log.store.pool(),
            &person_index,
            &programs,
            only,
            after,
            limit,
        )
        .await
        .map_err(ApiError::internal)?;
        let more = rows.len() > limit;
        rows.truncate(limit);
        let next_page_token = match (more, rows.last()) {
            (true, Some(last)) => format!("{}/{}", last.department_code, last.record_id),
            _ => String::new(),
        };
        event.entries = u32::try_from(rows.len()).unwrap_or(u32::MAX);
        state
            .store
            .record_query(caller, &department.code, event)
            .await?;
        Ok(pb::QueryHouseholdAssistanceResponse {
            entries: rows
                .into_iter()
                .map(|row| pb::AssistanceEntry {
                    department_code: row.department_code,
                    record_id: row.record_id,
                    program_code: row.program_code,
                    kind: row.kind,
                    amount: Some(pb::Money {
                        fen: row.amount_fen,
                    }),
                    period_start: row.period_start,
                    period_end: row.period_end,
                })
                .collect(),
            page: Some(pb::PageResponse { next_page_token }),
        })
    }
}

sunshine_platform::service_rpcs! {
    DepartmentIntegrationService for IntegrationApi {
        push_assistance_records: pb::PushAssistanceRecordsRequest => pb::PushAssistanceRecordsResponse;
        import_assistance_csv: pb::ImportAssistanceCsvRequest => pb::PushAssistanceRecordsResponse;
        query_household_assistance: pb::QueryHouseholdAssistanceRequest => pb::QueryHouseholdAssistanceResponse;
        // the economic-status check (slice 2, `check_api`)
        record_consent: pb::RecordConsentRequest => pb::RecordConsentResponse;
        open_check: pb::OpenCheckRequest => pb::CheckResponse;
        answer_check: pb::AnswerCheckRequest => pb::CheckResponse;
        record_overdue_verifications: pb::RecordOverdueVerificationsRequest => pb::RecordOverdueVerificationsResponse;
        list_check_work_queue: pb::ListCheckWorkQueueRequest => pb::ListCheckWorkQueueResponse;
        request_recheck: pb::RequestRecheckRequest => pb::CheckResponse;
        // duplicate assistance and the monitoring platform (`duplicates_api`, `monitoring_api`)
        list_duplicate_assistance: pb::ListDuplicateAssistanceRequest => pb::ListDuplicateAssistanceResponse;
        import_monitoring_warnings: pb::ImportMonitoringWarningsRequest => pb::ImportMonitoringWarningsResponse;
        close_monitoring_warning: pb::CloseMonitoringWarningRequest => pb::MonitoringWarningItem;
        list_monitoring_warnings: pb::ListMonitoringWarningsRequest => pb::ListMonitoringWarningsResponse;
        export_monitoring_feed: pb::ExportMonitoringFeedRequest => pb::MonitoringFeedPage;
        // subscriptions and linkage notices (slice 3, `linkage_api`)
        acknowledge_linkage_notice: pb::AcknowledgeLinkageNoticeRequest => pb::AcknowledgeLinkageNoticeResponse;
        list_linkage_notices: pb::ListLinkageNoticesRequest => pb::ListLinkageNoticesResponse;
    }
    streaming {
        subscribe_events: pb::SubscribeEventsRequest => pb::DepartmentEvent as SubscribeEventsStream;
    }
}
