//! gRPC server bootstrap shared by every service.
//!
//! [`serve`] starts listening at once with health NOT_SERVING, connects the database and the
//! bus in the background (retrying), and only then reports SERVING. On shutdown it reports
//! NOT_SERVING first, keeps serving for `grpc.drain_delay_ms` so load balancers notice, then
//! stops accepting and drains in-flight calls. Health and reflection need no token; every other
//! service is wrapped by [`ServiceContext::protect`] with the bearer-token interceptor, whose
//! verifier accepts only tokens meant for this service (`<auth.audience>/<service name>`).
//! Message size limits, a per-request timeout, a per-connection concurrency limit and a tracing
//! span (child of the caller's W3C trace, named after this service) apply to every call.
//! Reflection describes only what this port serves: its own services, `ServiceInfoService`,
//! health and reflection ([`reflection_descriptors`]).

use std::collections::BTreeSet;
use std::convert::Infallible;
use std::future::Future;
use std::process::ExitCode;
use std::sync::{Arc, OnceLock};

use prost::Message as _;
use tokio::net::TcpListener;
use tonic::server::NamedService;
use tonic::service::RoutesBuilder;
use tonic::service::interceptor::InterceptedService;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

use crate::auth::{AuthInterceptor, KeyError, TokenVerifier};
use crate::backends::Backends;
use crate::config::{Config, ConfigError, ConfigSource, DatabaseKind};
use crate::error::ApiError;
use crate::service_info::ServiceInfo;
use crate::shutdown::Shutdown;
use crate::telemetry;

/// Why a service could not run.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("auth key: {0}")]
    Key(#[from] KeyError),
    #[error("telemetry: {0}")]
    Telemetry(#[from] telemetry::TelemetryError),
    #[error("reflection: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    #[error("reflection descriptors: {0}")]
    Descriptors(#[from] prost::DecodeError),
    #[error("cannot bind {address}: {source}")]
    Bind {
        address: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("grpc transport: {0}")]
    Transport(#[from] tonic::transport::Error),
}

/// What a service's handlers share: configuration, the token interceptor and, once connected,
/// the backends.
#[derive(Debug, Clone)]
pub struct ServiceContext {
    service_name: &'static str,
    config: Arc<Config>,
    interceptor: AuthInterceptor,
    backends: Arc<OnceLock<Backends>>,
}

impl ServiceContext {
    pub fn service_name(&self) -> &'static str {
        self.service_name
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Largest message a service accepts or sends; set it on every generated server.
    pub fn max_message_bytes(&self) -> usize {
        self.config.grpc.max_message_bytes
    }

    /// Wraps a generated server so every call needs a valid bearer token.
    pub fn protect<S>(&self, service: S) -> InterceptedService<S, AuthInterceptor> {
        InterceptedService::new(service, self.interceptor.clone())
    }

    /// The backends, or `UNAVAILABLE` while they are still connecting.
    pub fn backends(&self) -> Result<&Backends, ApiError> {
        self.backends.get().ok_or_else(|| {
            ApiError::Unavailable("the service is still connecting to its backends".into())
        })
    }

    pub(crate) fn backends_if_connected(&self) -> Option<&Backends> {
        self.backends.get()
    }
}

/// Work a service does once its backends are connected and before it reports SERVING
/// (migrations, starting its log worker and consumers). An error is logged and the whole step
/// is tried again after a pause; the service stays NOT_SERVING meanwhile.
pub type OnConnected = Box<
    dyn Fn(
            Backends,
            Shutdown,
        ) -> std::pin::Pin<Box<dyn Future<Output = Result<(), StartupError>> + Send>>
        + Send
        + Sync,
>;

/// Why a service's start-up work failed: what it was doing, and the cause, whose whole chain
/// is logged before the platform tries again.
#[derive(Debug, thiserror::Error)]
#[error("{context}")]
pub struct StartupError {
    context: String,
    #[source]
    source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

impl StartupError {
    /// A failure described by `context` alone.
    pub fn new(context: impl Into<String>) -> Self {
        StartupError {
            context: context.into(),
            source: None,
        }
    }

    /// A failure of `context`, caused by `source`.
    pub fn caused_by(
        context: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>,
    ) -> Self {
        StartupError {
            context: context.into(),
            source: Some(source.into()),
        }
    }

    /// The context and every cause, outermost first: `a: b: c`.
    pub fn chain(&self) -> String {
        let mut text = self.context.clone();
        let mut cause = std::error::Error::source(self);
        while let Some(error) = cause {
            text.push_str(": ");
            text.push_str(&error.to_string());
            cause = error.source();
        }
        text
    }
}

impl From<String> for StartupError {
    fn from(context: String) -> Self {
        StartupError::new(context)
    }
}

/// The gRPC services a port serves, as `add_routes` mounts them; their names decide what
/// reflection describes.
#[derive(Debug, Default)]
pub struct ServiceRoutes {
    builder: RoutesBuilder,
    names: Vec<&'static str>,
}

impl ServiceRoutes {
    /// Mounts a generated server (wrapped with [`ServiceContext::protect`] unless it is health
    /// or reflection).
    pub fn add_service<S>(&mut self, service: S) -> &mut Self
    where
        S: tower::Service<http::Request<tonic::body::Body>, Error = Infallible>
            + NamedService
            + Clone
            + Send
            + Sync
            + 'static,
        S::Response: axum::response::IntoResponse,
        S::Future: Send + 'static,
    {
        self.names.push(S::NAME);
        self.builder.add_service(service);
        self
    }

    /// The fully qualified names of the services mounted so far.
    pub fn names(&self) -> &[&'static str] {
        &self.names
    }
}

/// Serves one service on `listener` until `shutdown` fires. `add_routes` mounts the service's
/// own gRPC services (wrapped with [`ServiceContext::protect`]).
pub async fn serve<F>(
    service_name: &'static str,
    config: Config,
    listener: TcpListener,
    shutdown: Shutdown,
    add_routes: F,
) -> Result<(), RunError>
where
    F: FnOnce(&ServiceContext, &mut ServiceRoutes),
{
    serve_with(service_name, config, listener, shutdown, add_routes, None).await
}

/// [`serve`], with work to do between connecting and SERVING.
pub async fn serve_with<F>(
    service_name: &'static str,
    config: Config,
    listener: TcpListener,
    shutdown: Shutdown,
    add_routes: F,
    on_connected: Option<OnConnected>,
) -> Result<(), RunError>
where
    F: FnOnce(&ServiceContext, &mut ServiceRoutes),
{
    // Each service accepts only tokens whose audience names it.
    let verifier = Arc::new(TokenVerifier::from_config(&config.auth, service_name)?);
    if config.auth.allow_development_keys
        && config.database.kind() == Some(DatabaseKind::Postgres)
        && config.auth.uses_development_identity()
    {
        tracing::warn!(
            service = service_name,
            "auth.allow_development_keys is set: DEVELOPMENT TOKENS ARE TRUSTED on a PostgreSQL \
             database; anyone with the development key can act as any officer. Never in production."
        );
    }
    let context = ServiceContext {
        service_name,
        config: Arc::new(config),
        interceptor: AuthInterceptor::new(verifier),
        backends: Arc::new(OnceLock::new()),
    };
    let grpc = &context.config.grpc;

    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    set_readiness(&health_reporter, service_name, ServingStatus::NotServing).await;

    let mut routes = ServiceRoutes::default();
    routes.add_service(health_service);
    let service_info =
        sunshine_proto::v1::service_info_service_server::ServiceInfoServiceServer::new(
            ServiceInfo::new(context.clone()),
        )
        .max_decoding_message_size(grpc.max_message_bytes)
        .max_encoding_message_size(grpc.max_message_bytes);
    routes.add_service(context.protect(service_info));
    add_routes(&context, &mut routes);

    // Reflection lists what this port serves and describes it from the files that define those
    // services and what they import: no other service's methods, which would answer UNIMPLEMENTED.
    let mut served = routes.names().to_vec();
    served.push(tonic_reflection::pb::v1::server_reflection_server::SERVICE_NAME);
    let descriptors = reflection_descriptors(sunshine_proto::FILE_DESCRIPTOR_SET, &served)?;
    let mut reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(&descriptors)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET);
    for name in &served {
        reflection = reflection.with_service_name(*name);
    }
    routes.add_service(reflection.build_v1()?);

    let readiness_task = tokio::spawn(watch_readiness(
        context.clone(),
        health_reporter.clone(),
        shutdown.clone(),
        on_connected,
    ));

    let drain_delay = grpc.drain_delay();
    let drain_reporter = health_reporter.clone();
    let drain_shutdown = shutdown.clone();
    let stop_accepting = async move {
        drain_shutdown.wait().await;
        set_readiness(&drain_reporter, service_name, ServingStatus::NotServing).await;
        tracing::info!(
            drain_delay_ms = drain_delay.as_millis() as u64,
            "not serving; draining"
        );
        tokio::time::sleep(drain_delay).await;
    };

    let local_address = listener.local_addr().ok();
    tracing::info!(service = service_name, address = ?local_address, "grpc server listening");
    let served = tonic::transport::Server::builder()
        .timeout(grpc.request_timeout())
        .concurrency_limit_per_connection(grpc.concurrency_limit_per_connection)
        .trace_fn(move |request| telemetry::grpc_request_span(service_name, request))
        .add_routes(routes.builder.routes())
        .serve_with_incoming_shutdown(
            // No Nagle: a response written in several segments (headers, then data) must not
            // wait for the client's delayed ACK (~40 ms a call).
            tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true)),
            stop_accepting,
        )
        .await;

    readiness_task.abort();
    if let Some(backends) = context.backends_if_connected() {
        backends.close().await;
    }
    tracing::info!(service = service_name, "stopped");
    served.map_err(RunError::from)
}

/// An encoded `FileDescriptorSet` as its files' encodings, so a subset can be written back
/// byte for byte (decoding into `prost_types` would drop what it does not model).
#[derive(Clone, PartialEq, prost::Message)]
struct EncodedFiles {
    #[prost(bytes = "vec", repeated, tag = "1")]
    file: Vec<Vec<u8>>,
}

/// The files of `encoded_set` that reflection needs to describe `services` (fully qualified
/// names; those the set does not define are ignored): the files defining them and, transitively,
/// every file they import that the set holds. Encoded as a `FileDescriptorSet`, each file byte
/// for byte as compiled.
pub fn reflection_descriptors(
    encoded_set: &[u8],
    services: &[&str],
) -> Result<Vec<u8>, prost::DecodeError> {
    let encoded = EncodedFiles::decode(encoded_set)?;
    let mut files = Vec::with_capacity(encoded.file.len());
    for bytes in encoded.file {
        let descriptor = prost_types::FileDescriptorProto::decode(bytes.as_slice())?;
        files.push((descriptor, bytes));
    }
    let mut needed: Vec<String> = Vec::new();
    for (descriptor, _) in &files {
        let package = descriptor.package();
        let defines_one = descriptor.service.iter().any(|service| {
            let full_name = if package.is_empty() {
                service.name().to_owned()
            } else {
                format!("{package}.{}", service.name())
            };
            services.contains(&full_name.as_str())
        });
        if defines_one {
            needed.push(descriptor.name().to_owned());
        }
    }
    let mut included = BTreeSet::new();
    while let Some(name) = needed.pop() {
        if !included.insert(name.clone()) {
            continue;
        }
        if let Some((descriptor, _)) = files
            .iter()
            .find(|(descriptor, _)| descriptor.name() == name)
        {
            needed.extend(descriptor.dependency.iter().cloned());
        }
    }
    let subset = EncodedFiles {
        file: files
            .into_iter()
            .filter(|(descriptor, _)| included.contains(descriptor.name()))
            .map(|(_, bytes)| bytes)
            .collect(),
    };
    Ok(subset.encode_to_vec())
}

async fn set_readiness(reporter: &HealthReporter, service_name: &str, status: ServingStatus) {
    reporter.set_service_status("", status).await;
    reporter.set_service_status(service_name, status).await;
}

/// Connects the backends, runs `on_connected`, turns SERVING, then re-checks the backends
/// periodically.
async fn watch_readiness(
    context: ServiceContext,
    reporter: HealthReporter,
    shutdown: Shutdown,
    on_connected: Option<OnConnected>,
) {
    let service_name = context.service_name;
    let config = Arc::clone(&context.config);
    let Some(backends) = Backends::connect_with_retry(service_name, &config, &shutdown).await
    else {
        return;
    };
    if let Some(on_connected) = on_connected {
        loop {
            match on_connected(backends.clone(), shutdown.clone()).await {
                Ok(()) => break,
                Err(error) => {
                    let error = error.chain();
                    tracing::warn!(service = service_name, %error, "start-up work failed; retrying");
                    tokio::select! {
                        () = tokio::time::sleep(config.readiness.max_retry_delay()) => {}
                        () = shutdown.wait() => return,
                    }
                }
            }
        }
    }
    if context.backends.set(backends).is_err() {
        debug_assert!(false, "backends connected twice");
        return;
    }
    let mut serving = false;
    loop {
        if shutdown.is_triggered() {
            return;
        }
        let healthy = match context.backends.get() {
            Some(backends) => backends.bus.is_connected() && backends.database.ping().await,
            None => false,
        };
        if healthy != serving && !shutdown.is_triggered() {
            let status = if healthy {
                ServingStatus::Serving
            } else {
                ServingStatus::NotServing
            };
            tracing::info!(service = service_name, ?status, "readiness changed");
            set_readiness(&reporter, service_name, status).await;
            serving = healthy;
        }
        tokio::select! {
            () = tokio::time::sleep(config.readiness.check_interval()) => {}
            () = shutdown.wait() => return,
        }
    }
}

/// The whole of a service's `main`: configuration from the process, telemetry, bind, serve
/// until SIGTERM.
pub fn main_entry<F, Fut>(service_name: &'static str, run: F) -> ExitCode
where
    F: FnOnce(Config, TcpListener, Shutdown) -> Fut,
    Fut: Future<Output = Result<(), RunError>>,
{
    main_entry_for_services(service_name, &[service_name], run)
}

/// [`main_entry`] of a process called `process_name` that runs several `services` (`sunshine
/// serve all`): each service's spans are exported under its own `service.name`, the process's
/// own (start-up) under `process_name`.
pub fn main_entry_for_services<F, Fut>(
    process_name: &'static str,
    services: &[&'static str],
    run: F,
) -> ExitCode
where
    F: FnOnce(Config, TcpListener, Shutdown) -> Fut,
    Fut: Future<Output = Result<(), RunError>>,
{
    // `sunshine-intake: …` for one service; `sunshine: …` for `serve all`.
    let label = if services == [process_name] {
        format!("sunshine-{process_name}")
    } else {
        process_name.to_owned()
    };
    let config = match Config::load(&ConfigSource::from_process()) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("{label}: {error}");
            return ExitCode::FAILURE;
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("{label}: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        let _telemetry = telemetry::init_process(process_name, services, &config.telemetry)?;
        let address = config.grpc.listen_address;
        let listener = TcpListener::bind(address)
            .await
            .map_err(|source| RunError::Bind { address, source })?;
        run(config, listener, Shutdown::on_signals()).await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("{label}: {error}");
            ExitCode::FAILURE
        }
    }
}

/// One handler shape for every RPC of a service (`docs/adding-a-service.md`, section 7): the
/// generated tonic trait `$service` implemented for `$api` by calling, for each method, the
/// inherent handler of the same name with the verified caller ([`crate::auth::identity`]) and
/// the request's message, and answering its result or its error's status.
///
/// ```ignore
/// sunshine_platform::service_rpcs! {
///     IntakeService for IntakeApi {
///         register_household: pb::RegisterHouseholdRequest => pb::RegisterHouseholdResponse;
///     }
/// }
/// ```
///
/// Server-streaming RPCs follow in a `streams { … }` block, each with the generated trait's
/// stream type name and the type the inherent handler answers (a `Stream` of
/// `Result<message, tonic::Status>`):
///
/// ```ignore
/// sunshine_platform::service_rpcs! {
///     DepartmentIntegrationService for IntegrationApi {
///         push_assistance_records: pb::PushAssistanceRecordsRequest => pb::PushAssistanceRecordsResponse;
///     }
///     streams {
///         subscribe_events: pb::SubscribeEventsRequest => SubscribeEventsStream = EventStream;
///     }
/// }
/// ```
#[macro_export]
macro_rules! service_rpcs {
    ($service:ident for $api:ident { $($method:ident: $request:ty => $response:ty;)* }) => {
        $crate::service_rpcs! {
            $service for $api { $($method: $request => $response;)* } streams {}
        }
    };
    (
        $service:ident for $api:ident { $($method:ident: $request:ty => $response:ty;)* }
        streams { $($stream_method:ident: $stream_request:ty => $stream_name:ident = $stream_type:ty;)* }
    ) => {
        #[tonic::async_trait]
        impl $service for $api {
            $(
                type $stream_name = $stream_type;

                async fn $stream_method(
                    &self,
                    request: tonic::Request<$stream_request>,
                ) -> Result<tonic::Response<Self::$stream_name>, tonic::Status> {
                    let caller = $crate::auth::identity(&request)?.clone();
                    Ok(tonic::Response::new(
                        $api::$stream_method(self, &caller, request.into_inner()).await?,
                    ))
                }
            )*
            $(
                async fn $method(
                    &self,
                    request: tonic::Request<$request>,
                ) -> Result<tonic::Response<$response>, tonic::Status> {
                    let caller = $crate::auth::identity(&request)?.clone();
                    Ok(tonic::Response::new(
                        $api::$method(self, &caller, request.into_inner()).await?,
                    ))
                }
            )*
        }
    };
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn file_names(encoded_set: &[u8]) -> Vec<String> {
        let set = prost_types::FileDescriptorSet::decode(encoded_set).unwrap();
        set.file.iter().map(|file| file.name().to_owned()).collect()
    }

    #[test]
    fn reflection_describes_only_the_services_a_port_serves_and_what_they_import() {
        let review = reflection_descriptors(
            sunshine_proto::FILE_DESCRIPTOR_SET,
            &[
                sunshine_proto::v1::service_info_service_server::SERVICE_NAME,
                sunshine_proto::v1::review_service_server::SERVICE_NAME,
                "grpc.health.v1.Health",
            ],
        )
        .unwrap();
        let names = file_names(&review);
        assert!(
            names.contains(&"sunshine/v1/review.proto".to_owned()),
            "{names:?}"
        );
        assert!(
            names.contains(&"sunshine/v1/service_info.proto".to_owned()),
            "{names:?}"
        );
        assert!(
            names.contains(&"sunshine/v1/common.proto".to_owned()),
            "{names:?}"
        );
        assert!(
            !names.contains(&"sunshine/v1/intake.proto".to_owned()),
            "{names:?}"
        );
        assert!(
            !names.contains(&"sunshine/v1/events.proto".to_owned()),
            "{names:?}"
        );

        let payment = reflection_descriptors(
            sunshine_proto::FILE_DESCRIPTOR_SET,
            &[sunshine_proto::v1::service_info_service_server::SERVICE_NAME],
        )
        .unwrap();
        let names = file_names(&payment);
        assert!(
            !names
                .iter()
                .any(|name| name.ends_with("intake.proto") || name.ends_with("review.proto")),
            "{names:?}"
        );
    }

    #[test]
    fn a_start_up_failure_keeps_its_whole_cause_chain() {
        let migration = std::io::Error::other("relation \"events\" does not exist");
        let log = StartupError::caused_by("the case-event log could not start", migration);
        assert_eq!(
            log.chain(),
            "the case-event log could not start: relation \"events\" does not exist"
        );
        assert!(
            std::error::Error::source(&log).is_some(),
            "typed, not flattened"
        );
        let plain = StartupError::from("district.org_tree_file: no such file".to_owned());
        assert_eq!(plain.chain(), "district.org_tree_file: no such file");
    }

    #[test]
    fn the_subset_keeps_each_file_byte_for_byte() {
        let all = EncodedFiles::decode(sunshine_proto::FILE_DESCRIPTOR_SET).unwrap();
        let subset = EncodedFiles::decode(
            reflection_descriptors(
                sunshine_proto::FILE_DESCRIPTOR_SET,
                &[sunshine_proto::v1::intake_service_server::SERVICE_NAME],
            )
            .unwrap()
            .as_slice(),
        )
        .unwrap();
        assert!(!subset.file.is_empty());
        for file in &subset.file {
            assert!(all.file.contains(file));
        }
    }
}
