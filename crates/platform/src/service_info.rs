//! `sunshine.v1.ServiceInfoService`, mounted in every service: the caller's verified identity,
//! and the service's name, version and backend state for operators and auditors, with the
//! case-event log's origin and checkpoint verifier key (what auditors pin).

use sunshine_proto::v1::service_info_service_server::ServiceInfoService;
use sunshine_proto::v1::{
    BackendKind, BackendState, GetServiceInfoRequest, GetServiceInfoResponse, WhoAmIRequest,
    WhoAmIResponse,
};
use tonic::{Request, Response, Status};

use sunshine_domain::OrgUnitCode;

use crate::auth::{Role, identity};
use crate::config::{BusKind, DatabaseKind};
use crate::error::ApiError;
use crate::server::ServiceContext;

#[derive(Debug)]
pub(crate) struct ServiceInfo {
    context: ServiceContext,
    /// The district this deployment serves (its org tree's root), or why it is unknown: only
    /// that district's administrators and auditors read the service's state.
    district: Result<OrgUnitCode, String>,
}

impl ServiceInfo {
    pub(crate) fn new(context: ServiceContext) -> Self {
        let district = context
            .config()
            .district
            .load_org_tree()
            .map(|tree| tree.district().code().clone());
        ServiceInfo { context, district }
    }
}

fn database_kind(kind: Option<DatabaseKind>) -> BackendKind {
    match kind {
        Some(DatabaseKind::Postgres) => BackendKind::Postgres,
        Some(DatabaseKind::Sqlite) => BackendKind::Sqlite,
        None => BackendKind::Unspecified,
    }
}

fn bus_kind(kind: Option<BusKind>) -> BackendKind {
    match kind {
        Some(BusKind::Nats) => BackendKind::Nats,
        Some(BusKind::InProcess) => BackendKind::InProcess,
        None => BackendKind::Unspecified,
    }
}

#[tonic::async_trait]
impl ServiceInfoService for ServiceInfo {
    async fn who_am_i(
        &self,
        request: Request<WhoAmIRequest>,
    ) -> Result<Response<WhoAmIResponse>, Status> {
        let caller = identity(&request)?;
        Ok(Response::new(WhoAmIResponse {
            actor: Some(caller.to_proto()),
        }))
    }

    async fn get_service_info(
        &self,
        request: Request<GetServiceInfoRequest>,
    ) -> Result<Response<GetServiceInfoResponse>, Status> {
        let caller = identity(&request)?;
        caller.require_role(&[Role::Admin, Role::Auditor])?;
        // Another district's officers learn nothing of this deployment.
        let district = self.district.as_ref().map_err(|reason| {
            ApiError::FailedPrecondition(format!("district.org_tree_file: {reason}"))
        })?;
        caller.require_org_scope(district)?;
        let config = self.context.config();
        let (database_connected, bus_connected) = match self.context.backends_if_connected() {
            Some(backends) => (backends.database.ping().await, backends.bus.is_connected()),
            None => (false, false),
        };
        Ok(Response::new(GetServiceInfoResponse {
            service_name: self.context.service_name().to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            database: Some(BackendState {
                kind: database_kind(config.database.kind()) as i32,
                connected: database_connected,
            }),
            bus: Some(BackendState {
                kind: bus_kind(config.bus.kind()) as i32,
                connected: bus_connected,
            }),
            log_origin: config.log.origin.clone(),
            // Validated at start-up, so the key decodes.
            checkpoint_verifier_key: config.log.checkpoint_verifier_key().unwrap_or_default(),
        }))
    }
}
