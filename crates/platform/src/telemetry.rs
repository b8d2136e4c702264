//! Logs and traces: `tracing-subscriber` (pretty for people, JSON for collectors, each JSON line
//! with the `trace_id` and `span_id` of the span it was logged in), OpenTelemetry spans for
//! every `tracing` span, export over OTLP/gRPC when an endpoint is configured (the standard
//! `OTEL_EXPORTER_OTLP_ENDPOINT`), and W3C trace context carried in gRPC metadata, in event
//! metadata and in NATS headers.
//!
//! Only `main` installs the global subscriber ([`init`], [`init_process`]); tests that start
//! services in-process leave global state alone.
//!
//! # One trace across services
//! A trace runs from a caller through a service's RPC ([`grpc_request_span`], a child of the
//! caller's `traceparent`), the log's append (whose span's context the store writes into the
//! event's metadata), the relay's publish and every consumer's handling of the event (both
//! children of that stored context: [`set_remote_parent`]), and what a consumer appends in turn.
//!
//! # Which service a span belongs to
//! A process running one service exports every span under a resource whose `service.name` is
//! that service. `sunshine serve all` runs every service in one process; there [`init_process`]
//! builds one tracer provider per service, each with its own resource, and one for the process
//! itself, and [`ServiceTracers`] gives each span to the provider of its service. A span's
//! service travels in its OpenTelemetry context: it is set where a service's work begins — the
//! server span of an RPC, a consumer's handling of an event, the relay's publish, an append that
//! starts a trace of its own ([`begin_trace_in`]) — and every span below inherits it, since a
//! child's context is its parent's plus the child. Spans that belong to no service (start-up)
//! go to the process's provider.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator as _};
use opentelemetry::trace::{SpanBuilder, TraceContextExt as _, TracerProvider as _};
use opentelemetry_otlp::WithExportConfig as _;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider, SpanExporter};
use tracing::dispatcher::WeakDispatch;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::Layer;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt as _;

use crate::config::{LogFormat, TelemetryConfig};

/// Flushes and stops trace export when dropped.
#[derive(Debug)]
pub struct TelemetryGuard {
    tracer_providers: Vec<SdkTracerProvider>,
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        for provider in self.tracer_providers.drain(..) {
            if let Err(error) = provider.shutdown() {
                eprintln!("trace exporter did not shut down cleanly: {error}");
            }
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("invalid log filter: {0}")]
    Filter(String),
    #[error("cannot build the OTLP exporter: {0}")]
    Exporter(String),
    #[error("a global subscriber is already installed")]
    AlreadyInstalled,
}

/// Installs the global subscriber of a process that runs one service (or a command such as
/// `migrate`). Call once, from `main`, inside the tokio runtime (the OTLP exporter spawns onto
/// it).
pub fn init(
    service_name: &'static str,
    config: &TelemetryConfig,
) -> Result<TelemetryGuard, TelemetryError> {
    init_process(service_name, &[service_name], config)
}

/// Installs the global subscriber of a process called `process_name` that runs `services`:
/// each service's spans are exported under its own `service.name` (see the module docs).
pub fn init_process(
    process_name: &'static str,
    services: &[&'static str],
    config: &TelemetryConfig,
) -> Result<TelemetryGuard, TelemetryError> {
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    let filter = EnvFilter::try_new(&config.log_filter)
        .map_err(|error| TelemetryError::Filter(error.to_string()))?;

    // Spans are always made, so trace context flows through calls, events and log lines; they
    // are exported only when an endpoint is configured.
    let (tracers, tracer_providers) = match &config.otlp_endpoint {
        Some(endpoint) => service_tracers(process_name, services, || {
            opentelemetry_otlp::SpanExporter::builder()
                .with_tonic()
                .with_endpoint(endpoint.clone())
                .build()
                .map_err(|error| TelemetryError::Exporter(error.to_string()))
        })?,
        None => unexported_tracers(process_name),
    };
    let otel_layer = tracing_opentelemetry::layer().with_tracer(tracers);

    let registry = tracing_subscriber::registry().with(filter).with(otel_layer);
    let installed = match config.log_format {
        LogFormat::Pretty => registry.with(tracing_subscriber::fmt::layer()).try_init(),
        LogFormat::Json => registry.with(json_log_layer(std::io::stdout)).try_init(),
    };
    installed.map_err(|_| TelemetryError::AlreadyInstalled)?;
    Ok(TelemetryGuard { tracer_providers })
}

/// The resource of one service's (or the process's) spans.
fn resource(service_name: &'static str) -> opentelemetry_sdk::Resource {
    opentelemetry_sdk::Resource::builder()
        .with_service_name(service_name)
        .with_attribute(opentelemetry::KeyValue::new(
            "service.namespace",
            "sunshine",
        ))
        .with_attribute(opentelemetry::KeyValue::new(
            "service.version",
            env!("CARGO_PKG_VERSION"),
        ))
        .build()
}

/// One provider (and exporter) per service and one for the process, which is the only one when
/// the process runs a single service of the same name.
fn service_tracers<E, F>(
    process_name: &'static str,
    services: &[&'static str],
    mut exporter: F,
) -> Result<(ServiceTracers, Vec<SdkTracerProvider>), TelemetryError>
where
    E: SpanExporter + 'static,
    F: FnMut() -> Result<E, TelemetryError>,
{
    let mut providers = Vec::with_capacity(services.len() + 1);
    let mut build = |name: &'static str| -> Result<SdkTracer, TelemetryError> {
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(exporter()?)
            .with_resource(resource(name))
            .build();
        let tracer = provider.tracer("sunshine");
        providers.push(provider);
        Ok(tracer)
    };
    let process = build(process_name)?;
    let mut by_service = Vec::with_capacity(services.len());
    for &service in services {
        if service != process_name {
            by_service.push((service, build(service)?));
        }
    }
    Ok((
        ServiceTracers {
            process,
            services: by_service,
        },
        providers,
    ))
}

/// Tracers whose spans carry context and ids but go nowhere.
fn unexported_tracers(process_name: &'static str) -> (ServiceTracers, Vec<SdkTracerProvider>) {
    let provider = SdkTracerProvider::builder()
        .with_resource(resource(process_name))
        .build();
    let tracers = ServiceTracers {
        process: provider.tracer("sunshine"),
        services: Vec::new(),
    };
    (tracers, vec![provider])
}

/// The service a span belongs to, carried in its OpenTelemetry context (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ServiceScope(&'static str);

/// The tracer behind the OpenTelemetry layer: starts each span with the tracer of its service
/// (the [`ServiceScope`] in its parent context), or the process's.
#[derive(Debug)]
pub struct ServiceTracers {
    process: SdkTracer,
    services: Vec<(&'static str, SdkTracer)>,
}

impl opentelemetry::trace::Tracer for ServiceTracers {
    type Span = opentelemetry_sdk::trace::Span;

    fn build_with_context(
        &self,
        builder: SpanBuilder,
        parent_cx: &opentelemetry::Context,
    ) -> Self::Span {
        let scope = parent_cx.get::<ServiceScope>();
        let tracer = self
            .services
            .iter()
            .find(|(name, _)| scope.is_some_and(|scope| scope.0 == *name))
            .map_or(&self.process, |(_, tracer)| tracer);
        tracer.build_with_context(builder, parent_cx)
    }
}

/// The JSON log layer: one object per line, the event's fields flattened, the current span,
/// and the `trace_id` and `span_id` of the span the event was logged in.
fn json_log_layer<S, W>(writer: W) -> impl Layer<S>
where
    S: tracing::Subscriber + for<'span> LookupSpan<'span>,
    W: for<'writer> tracing_subscriber::fmt::MakeWriter<'writer> + Send + Sync + 'static,
{
    let dispatch = Arc::new(OnceLock::new());
    let format = TraceIdsInJson {
        inner: tracing_subscriber::fmt::format()
            .json()
            .flatten_event(true)
            .with_current_span(true),
        dispatch: Arc::clone(&dispatch),
    };
    let fmt_layer = tracing_subscriber::fmt::layer()
        .json()
        .event_format(format)
        .with_writer(writer);
    fmt_layer.and_then(KeepDispatch(dispatch))
}

/// Remembers the subscriber it is registered with, for [`TraceIdsInJson`]: the OpenTelemetry
/// context of a span is reached through the dispatch (the layer keeps it private).
struct KeepDispatch(Arc<OnceLock<WeakDispatch>>);

impl<S: tracing::Subscriber> Layer<S> for KeepDispatch {
    fn on_register_dispatch(&self, subscriber: &tracing::Dispatch) {
        let _ = self.0.set(subscriber.downgrade());
    }
}

/// A JSON event format with the OpenTelemetry ids of the event's span appended to each object.
struct TraceIdsInJson<F> {
    inner: F,
    dispatch: Arc<OnceLock<WeakDispatch>>,
}

impl<F> TraceIdsInJson<F> {
    fn ids<S, N>(&self, context: &FmtContext<'_, S, N>) -> Option<(String, String)>
    where
        S: tracing::Subscriber + for<'span> LookupSpan<'span>,
        N: for<'writer> FormatFields<'writer> + 'static,
    {
        let span = context.parent_span()?;
        let dispatch = self.dispatch.get()?.upgrade()?;
        let otel_context = tracing_opentelemetry::get_otel_context(&span.id(), &dispatch)?;
        let otel_span = otel_context.span();
        let span_context = otel_span.span_context();
        span_context.is_valid().then(|| {
            (
                span_context.trace_id().to_string(),
                span_context.span_id().to_string(),
            )
        })
    }
}

impl<S, N, F> FormatEvent<S, N> for TraceIdsInJson<F>
where
    S: tracing::Subscriber + for<'span> LookupSpan<'span>,
    N: for<'writer> FormatFields<'writer> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        context: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        let Some((trace_id, span_id)) = self.ids(context) else {
            return self.inner.format_event(context, writer, event);
        };
        let mut line = String::new();
        self.inner
            .format_event(context, Writer::new(&mut line), event)?;
        // The inner format writes one object and a newline; the ids go before its closing brace.
        match line.trim_end().strip_suffix('}') {
            Some(open) => {
                let separator = if open.ends_with('{') { "" } else { "," };
                writeln!(
                    writer,
                    r#"{open}{separator}"trace_id":"{trace_id}","span_id":"{span_id}"}}"#
                )
            }
            None => writer.write_str(&line),
        }
    }
}

/// Reads trace context from gRPC metadata / HTTP headers.
struct HeaderExtractor<'a>(&'a http::HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|value| value.to_str().ok())
    }
    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}

/// Writes trace context into outgoing gRPC metadata.
struct MetadataInjector<'a>(&'a mut tonic::metadata::MetadataMap);

impl Injector for MetadataInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(name), Ok(value)) = (
            tonic::metadata::MetadataKey::from_bytes(key.as_bytes()),
            tonic::metadata::MetadataValue::try_from(value.as_str()),
        ) {
            self.0.insert(name, value);
        }
    }
}

/// The span of one inbound RPC of `service_name`, a child of the caller's trace when the
/// request carries `traceparent`. Installed on every server with `Server::trace_fn`.
pub fn grpc_request_span(service_name: &'static str, request: &http::Request<()>) -> tracing::Span {
    let path = request.uri().path();
    let mut segments = path.trim_start_matches('/').splitn(2, '/');
    let rpc_service = segments.next().unwrap_or_default();
    let rpc_method = segments.next().unwrap_or_default();
    let span = tracing::info_span!(
        "grpc.request",
        otel.name = %path.trim_start_matches('/'),
        otel.kind = "server",
        rpc.system = "grpc",
        rpc.service = %rpc_service,
        rpc.method = %rpc_method,
    );
    let parent = TraceContextPropagator::new().extract_with_context(
        &opentelemetry::Context::new(),
        &HeaderExtractor(request.headers()),
    );
    // Fails only when no OpenTelemetry layer is installed, where there is nothing to link.
    let _ = span.set_parent(parent.with_value(ServiceScope(service_name)));
    span
}

/// Makes `span` — just created, not yet entered — a child of the W3C trace context
/// `traceparent`/`tracestate` (as an event's metadata stores it, or a NATS header carries it),
/// belonging to `service`. Without a valid `traceparent` the span starts a trace of its own.
pub fn set_remote_parent(
    span: &tracing::Span,
    traceparent: Option<&str>,
    tracestate: Option<&str>,
    service: Option<&'static str>,
) {
    let mut carrier = HashMap::new();
    if let Some(traceparent) = traceparent {
        carrier.insert("traceparent".to_owned(), traceparent.to_owned());
    }
    if let Some(tracestate) = tracestate {
        carrier.insert("tracestate".to_owned(), tracestate.to_owned());
    }
    let mut parent = TraceContextPropagator::new()
        .extract_with_context(&opentelemetry::Context::new(), &carrier);
    if let Some(service) = service {
        parent = parent.with_value(ServiceScope(service));
    }
    let _ = span.set_parent(parent);
}

/// Makes `span` — just created, not yet entered, with no span above it — the root of a new
/// trace of `service` (an append by a background task, say), instead of the process's.
pub fn begin_trace_in(span: &tracing::Span, service: Option<&'static str>) {
    if let Some(service) = service {
        let _ = span.set_parent(opentelemetry::Context::new().with_value(ServiceScope(service)));
    }
}

/// A span's W3C trace context, as stored in event metadata and sent in NATS headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceContext {
    pub traceparent: String,
    pub tracestate: Option<String>,
}

/// The W3C trace context of `span`; `None` outside a trace (or with no OpenTelemetry layer).
pub fn trace_context(span: &tracing::Span) -> Option<TraceContext> {
    let context = span.context();
    let mut carrier: HashMap<String, String> = HashMap::new();
    TraceContextPropagator::new().inject_context(&context, &mut carrier);
    let traceparent = carrier.remove("traceparent")?;
    let tracestate = carrier
        .remove("tracestate")
        .filter(|state| !state.is_empty());
    Some(TraceContext {
        traceparent,
        tracestate,
    })
}

/// Puts the current span's trace context into outgoing metadata, for calls to other services.
pub fn inject_trace_context(metadata: &mut tonic::metadata::MetadataMap) {
    let context = tracing::Span::current().context();
    TraceContextPropagator::new().inject_context(&context, &mut MetadataInjector(metadata));
}

/// The W3C `traceparent` of the current span, for event metadata; `None` outside a trace.
/// (The store records its append span's context itself: [`trace_context`].)
pub fn current_traceparent() -> Option<String> {
    trace_context(&tracing::Span::current()).map(|context| context.traceparent)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use opentelemetry_sdk::trace::SpanData;

    const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
    const CALLER_SPAN_ID: &str = "00f067aa0ba902b7";

    fn caller_traceparent() -> String {
        format!("00-{TRACE_ID}-{CALLER_SPAN_ID}-01")
    }

    fn request_from_caller(path: &str) -> http::Request<()> {
        http::Request::builder()
            .uri(path)
            .header("traceparent", caller_traceparent())
            .body(())
            .unwrap()
    }

    /// Keeps every exported span with the service name of the provider that exported it.
    #[derive(Debug, Clone, Default)]
    struct Collected(Arc<Mutex<Vec<(String, SpanData)>>>);

    #[derive(Debug)]
    struct CollectingExporter {
        collected: Collected,
        service_name: String,
    }

    impl SpanExporter for CollectingExporter {
        async fn export(&self, batch: Vec<SpanData>) -> opentelemetry_sdk::error::OTelSdkResult {
            let mut collected = self.collected.0.lock().unwrap();
            for span in batch {
                collected.push((self.service_name.clone(), span));
            }
            Ok(())
        }

        fn set_resource(&mut self, resource: &opentelemetry_sdk::Resource) {
            self.service_name = resource
                .get(&opentelemetry::Key::new("service.name"))
                .map(|value| value.to_string())
                .unwrap_or_default();
        }
    }

    fn collecting_tracers(
        process_name: &'static str,
        services: &[&'static str],
    ) -> (ServiceTracers, Vec<SdkTracerProvider>, Collected) {
        let collected = Collected::default();
        let (tracers, providers) = service_tracers(process_name, services, || {
            Ok(CollectingExporter {
                collected: collected.clone(),
                service_name: String::new(),
            })
        })
        .unwrap();
        (tracers, providers, collected)
    }

    fn flush(providers: &[SdkTracerProvider]) {
        for provider in providers {
            provider.force_flush().unwrap();
        }
    }

    #[test]
    fn inbound_traceparent_becomes_the_parent_and_flows_out_again() {
        let (tracers, _providers, _) = collecting_tracers("intake", &["intake"]);
        let subscriber = tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(tracers));
        tracing::subscriber::with_default(subscriber, || {
            let span = grpc_request_span(
                "intake",
                &request_from_caller("/sunshine.v1.ServiceInfoService/WhoAmI"),
            );
            let seen_trace_id = span.context().span().span_context().trace_id().to_string();
            assert_eq!(seen_trace_id, TRACE_ID);

            let _entered = span.enter();
            let outgoing = current_traceparent().unwrap();
            assert!(
                outgoing.starts_with(&format!("00-{TRACE_ID}-")),
                "{outgoing}"
            );
            assert!(!outgoing.contains(CALLER_SPAN_ID), "{outgoing}");
        });
    }

    #[test]
    fn without_an_opentelemetry_layer_there_is_no_trace_context() {
        let subscriber = tracing_subscriber::registry();
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("eventlog.append");
            assert_eq!(trace_context(&span), None);
        });
    }

    #[test]
    fn in_one_process_each_services_spans_carry_its_own_service_name() {
        let (tracers, providers, collected) = collecting_tracers("sunshine", &["intake", "review"]);
        let subscriber = tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(tracers));
        tracing::subscriber::with_default(subscriber, || {
            let intake_call = grpc_request_span(
                "intake",
                &request_from_caller("/sunshine.v1.IntakeService/SubmitApplication"),
            );
            let stored = intake_call.in_scope(|| {
                let append = tracing::info_span!("eventlog.append");
                trace_context(&append).unwrap()
            });
            drop(intake_call);

            let consume = tracing::info_span!("eventlog.consume");
            set_remote_parent(
                &consume,
                Some(&stored.traceparent),
                stored.tracestate.as_deref(),
                Some("review"),
            );
            consume.in_scope(|| {
                let _append = tracing::info_span!("eventlog.append").entered();
            });
            drop(consume);

            let background = tracing::info_span!("eventlog.append");
            begin_trace_in(&background, Some("review"));
            drop(background);
            drop(tracing::info_span!("start-up"));
        });
        flush(&providers);

        let spans = collected.0.lock().unwrap();
        let service_of = |name: &str, nth: usize| -> (String, SpanData) {
            spans
                .iter()
                .filter(|(_, span)| span.name == name)
                .nth(nth)
                .cloned()
                .unwrap_or_else(|| panic!("no span {name} #{nth} in {spans:?}"))
        };
        let (service, server) = service_of(
            &format!(
                "{}/SubmitApplication",
                sunshine_proto::v1::intake_service_server::SERVICE_NAME
            ),
            0,
        );
        assert_eq!(service, "intake");
        assert_eq!(server.parent_span_id.to_string(), CALLER_SPAN_ID);
        let (service, intake_append) = service_of("eventlog.append", 0);
        assert_eq!(service, "intake");
        assert_eq!(intake_append.parent_span_id, server.span_context.span_id());
        let (service, consume) = service_of("eventlog.consume", 0);
        assert_eq!(service, "review");
        assert_eq!(consume.parent_span_id, intake_append.span_context.span_id());
        assert_eq!(consume.span_context.trace_id().to_string(), TRACE_ID);
        let (service, review_append) = service_of("eventlog.append", 1);
        assert_eq!(service, "review");
        assert_eq!(review_append.parent_span_id, consume.span_context.span_id());
        let (service, background) = service_of("eventlog.append", 2);
        assert_eq!(service, "review");
        assert_ne!(background.span_context.trace_id().to_string(), TRACE_ID);
        let (service, _) = service_of("start-up", 0);
        assert_eq!(service, "sunshine");
    }

    /// Captures what the JSON layer writes.
    #[derive(Debug, Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn json_log_lines_carry_the_trace_and_span_ids() {
        let (tracers, _providers, _) = collecting_tracers("intake", &["intake"]);
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(tracers))
            .with(json_log_layer(move || writer.clone()));
        let span_id = tracing::subscriber::with_default(subscriber, || {
            tracing::info!(outside = 1, "before any span");
            let span = grpc_request_span(
                "intake",
                &request_from_caller("/sunshine.v1.IntakeService/GetHousehold"),
            );
            let _entered = span.enter();
            tracing::info!(household = "h-1", "inside the call");
            span.context().span().span_context().span_id().to_string()
        });
        let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert_eq!(lines[0]["message"], "before any span");
        assert!(lines[0].get("trace_id").is_none(), "{text}");
        assert_eq!(lines[1]["message"], "inside the call");
        assert_eq!(lines[1]["household"], "h-1");
        assert_eq!(lines[1]["trace_id"], TRACE_ID);
        assert_eq!(lines[1]["span_id"], span_id.as_str());
        assert_eq!(lines[1]["span"]["name"], "grpc.request");
    }
}
