//! Slice 3's RPCs, the same shape as the others (identity → parse → load → decide → append →
//! answer): `SubscribeEvents` (a server stream, [`crate::subscriptions`]),
//! `AcknowledgeLinkageNotice` and `ListLinkageNotices`.

use sunshine_domain::ValidationErrors;
use sunshine_eventlog::request_digest;
use sunshine_platform::{ApiError, Identity, Role};
use sunshine_proto::v1 as pb;

use crate::api::{DEFAULT_PAGE_SIZE, IntegrationApi, MAX_COMMAND_ID_LEN, MAX_PAGE_SIZE};
use crate::dictionary::is_code;
use crate::errors::{Refusal, not_found};
use crate::linkage::OUTCOMES;
use crate::linkage_store;
use crate::store::command_metadata;
use crate::subscriptions::{self, EventStream, SubscriptionRefusal};

const DEPARTMENTS: &[Role] = &[Role::Department];
/// Who lists notices: the district center and its auditors (all), a department (its own).
const NOTICE_READERS: &[Role] = &[
    Role::CenterReviewer,
    Role::CenterApprover,
    Role::Auditor,
    Role::Department,
];

fn is_notice_id(text: &str) -> bool {
    uuid::Uuid::parse_str(text).is_ok_and(|id| id.to_string() == text)
}

impl IntegrationApi {
    pub(crate) async fn subscribe_events(
        &self,
        caller: &Identity,
        request: pb::SubscribeEventsRequest,
    ) -> Result<EventStream, ApiError> {
        caller.require_role(DEPARTMENTS)?;
        let state = self.connected()?;
        let department = Self::department(state, caller)?;
        let subscription = match subscriptions::check(department, &request) {
            Ok(subscription) => subscription,
            Err(SubscriptionRefusal::Invalid(violations)) => {
                return Err(ApiError::InvalidArgument(violations));
            }
            Err(SubscriptionRefusal::OutOfScope(kinds)) => {
                return Err(Refusal::OutOfScope {
                    department: department.code.clone(),
                    programs: kinds,
                }
                .into());
            }
        };
        Ok(subscriptions::start(
            state.store.log.store.clone(),
            state.store.log.signals().clone(),
            state.poll_interval,
            subscription,
        ))
    }

    pub(crate) async fn acknowledge_linkage_notice(
        &self,
        caller: &Identity,
        request: pb::AcknowledgeLinkageNoticeRequest,
    ) -> Result<pb::AcknowledgeLinkageNoticeResponse, ApiError> {
        caller.require_role(DEPARTMENTS)?;
        let state = self.connected()?;
        let department = Self::department(state, caller)?;
        let mut errors = ValidationErrors::new();
        if request.command_id.is_empty()
            || request.command_id.len() > MAX_COMMAND_ID_LEN
            || !request
                .command_id
                .bytes()
                .all(|byte| byte.is_ascii_graphic())
        {
            errors.push(
                "command_id",
                format!("1 to {MAX_COMMAND_ID_LEN} printable ASCII characters"),
            );
        }
        if !is_notice_id(&request.notice_id) {
            errors.push("notice_id", "a notice id (a UUID, lowercase)");
        }
        if !OUTCOMES.contains(&request.outcome.as_str()) {
            errors.push("outcome", format!("one of {}", OUTCOMES.join(", ")));
        }
        errors.into_result()?;
        let metadata = command_metadata(caller, &request.command_id, request_digest(&request));
        if let Some(retried) = state
            .store
            .retried_notice(&request.notice_id, &metadata)
            .await?
        {
            return Ok(pb::AcknowledgeLinkageNoticeResponse {
                notice: Some(retried.to_pb()),
            });
        }
        let notice = state
            .store
            .load_notice(&request.notice_id)
            .await?
            .filter(|notice| notice.sent.department_code == department.code)
            .ok_or_else(|| not_found("linkage notice"))?;
        if notice.acknowledged.is_some() {
            return Err(ApiError::FailedPrecondition(
                "the notice is acknowledged already".into(),
            ));
        }
        let acknowledged = pb::LinkageNoticeAcknowledged {
            notice_id: request.notice_id.clone(),
            department_code: department.code.clone(),
            outcome: request.outcome.clone(),
        };
        let notice = state
            .store
            .acknowledge_notice(&metadata, &notice, acknowledged)
            .await?;
        Ok(pb::AcknowledgeLinkageNoticeResponse {
            notice: Some(notice.to_pb()),
        })
    }

    pub(crate) async fn list_linkage_notices(
        &self,
        caller: &Identity,
        request: pb::ListLinkageNoticesRequest,
    ) -> Result<pb::ListLinkageNoticesResponse, ApiError> {
        caller.require_role(NOTICE_READERS)?;
        let state = self.connected()?;
        caller.require_org_scope(&state.district)?;
        let own = if caller.role == Role::Department {
            Some(Self::department(state, caller)?.code.clone())
        } else {
            None
        };
        let mut errors = ValidationErrors::new();
        if !request.department_code.is_empty() {
            if !is_code(&request.department_code)
                || state
                    .registry
                    .department(&request.department_code)
                    .is_none()
            {
                errors.push("department_code", "a department of the registry");
            } else if own
                .as_deref()
                .is_some_and(|own| own != request.department_code)
            {
                errors.push("department_code", "empty or the caller's own department");
            }
        }
        let page = request.page.clone().unwrap_or_default();
        if !(0..=MAX_PAGE_SIZE).contains(&page.page_size) {
            errors.push("page.page_size", format!("0 to {MAX_PAGE_SIZE}"));
        }
        if !page.page_token.is_empty() && !is_notice_id(&page.page_token) {
            errors.push("page.page_token", "not a token this service gave");
        }
        errors.into_result()?;
        let department = own.or_else(|| {
            (!request.department_code.is_empty()).then(|| request.department_code.clone())
        });
        let limit = usize::try_from(if page.page_size == 0 {
            DEFAULT_PAGE_SIZE
        } else {
            page.page_size
        })
        .unwrap_or(50);
        let mut notices = linkage_store::list_notices(
            state.store.log.store.pool(),
            department.as_deref(),
            request.unacknowledged_only,
            (!page.page_token.is_empty()).then_some(page.page_token.as_str()),
            limit,
        )
        .await
        .map_err(ApiError::internal)?;
        let more = notices.len() > limit;
        notices.truncate(limit);
        let next_page_token = match (more, notices.last()) {
            (true, Some(last)) => last.notice_id.clone(),
            _ => String::new(),
        };
        Ok(pb::ListLinkageNoticesResponse {
            notices,
            page: Some(pb::PageResponse { next_page_token }),
        })
    }
}
