//! Duplicate assistance's RPC: `ListDuplicateAssistance`, the district center's work queue of
//! the pairs found after pushes and imports (`IntegrationStore::detect_duplicates`, called by
//! the push in `api`).

use sunshine_domain::ValidationErrors;
use sunshine_platform::{ApiError, Identity, Role};
use sunshine_proto::v1 as pb;

use crate::api::{DEFAULT_PAGE_SIZE, IntegrationApi, IntegrationState, MAX_PAGE_SIZE};
use crate::duplicates_store;

/// Who reads the duplicates: the district center and its auditors.
const CENTER_READERS: &[Role] = &[Role::CenterReviewer, Role::CenterApprover, Role::Auditor];

impl IntegrationApi {
    /// The connected state (UNAVAILABLE while starting).
    pub(crate) fn state_now(&self) -> Result<&IntegrationState, ApiError> {
        self.state
            .get()
            .ok_or_else(|| ApiError::Unavailable("department-integration is starting".into()))
    }

    pub(crate) async fn list_duplicate_assistance(
        &self,
        caller: &Identity,
        request: pb::ListDuplicateAssistanceRequest,
    ) -> Result<pb::ListDuplicateAssistanceResponse, ApiError> {
        caller.require_role(CENTER_READERS)?;
        let state = self.state_now()?;
        caller.require_org_scope(&state.district)?;
        let mut errors = ValidationErrors::new();
        let page = request.page.clone().unwrap_or_default();
        if !(0..=MAX_PAGE_SIZE).contains(&page.page_size) {
            errors.push("page.page_size", format!("0 to {MAX_PAGE_SIZE}"));
        }
        let canonical = |token: &str| {
            uuid::Uuid::parse_str(token).is_ok_and(|id| id.hyphenated().to_string() == token)
        };
        if !page.page_token.is_empty() && !canonical(&page.page_token) {
            errors.push("page.page_token", "not a token this service gave");
        }
        errors.into_result()?;
        let limit = usize::try_from(if page.page_size == 0 {
            DEFAULT_PAGE_SIZE
        } else {
            page.page_size
        })
        .unwrap_or(50);
        let after = (!page.page_token.is_empty()).then_some(page.page_token.as_str());
        let mut items =
            duplicates_store::list_duplicates(state.store.log.store.pool(), after, limit)
                .await
                .map_err(ApiError::internal)?;
        let more = items.len() > limit;
        items.truncate(limit);
        let next_page_token = match (more, items.last()) {
            (true, Some(last)) => last.duplicate_id.clone(),
            _ => String::new(),
        };
        Ok(pb::ListDuplicateAssistanceResponse {
            items,
            page: Some(pb::PageResponse { next_page_token }),
        })
    }
}
