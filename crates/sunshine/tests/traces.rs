//! One trace across services, with the log process, intake and review as separate processes
//! (`sunshine serve log`, `… intake`, `… review`) on PostgreSQL and NATS JetStream, exporting over OTLP/gRPC
//! to a receiver in this test: a caller's trace runs through intake's server span, the log's
//! append, the relay's publish, review's handling of the event and review's append of
//! `CaseOpened`, each span under its own service's name, and the JSON log lines say which trace
//! and span they were written in.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use sunshine_eventlog::{EventStore, StreamId};
use sunshine_platform::Role;
use sunshine_platform::config::{DatabaseConfig, LogFormat};
use sunshine_proto::events::Event as _;
use sunshine_proto::v1 as pb;
use sunshine_proto::v1::intake_service_client::IntakeServiceClient;
use sunshine_tests::households::{dibao_application, family, registration};
use sunshine_tests::process::{SunshineProcess, write_config};
use sunshine_tests::{
    TestAuth, VILLAGE, migrated_postgres, nats_address, postgres_address, service_database_url,
    test_config,
};

const PATIENCE: Duration = Duration::from_secs(30);
/// The caller's trace and its span, as a client would send them.
const TRACE_ID: &str = "5b8efff798038103d269b633813fc60c";
const CALLER_SPAN_ID: &str = "eee19b7ec3c1b174";

/// A span as the receiver got it, with the `service.name` of its resource.
#[derive(Debug, Clone)]
struct ReceivedSpan {
    service: String,
    trace_id: String,
    span_id: String,
    parent_span_id: String,
    name: String,
    kind: i32,
    attributes: BTreeMap<String, String>,
}

impl ReceivedSpan {
    fn attribute(&self, key: &str) -> &str {
        self.attributes.get(key).map_or("", String::as_str)
    }
}

fn text_of(attributes: &[KeyValue]) -> BTreeMap<String, String> {
    let mut texts = BTreeMap::new();
    for attribute in attributes {
        let text = match attribute
            .value
            .as_ref()
            .and_then(|value| value.value.as_ref())
        {
            Some(Value::StringValue(text)) => text.clone(),
            Some(Value::IntValue(number)) => number.to_string(),
            Some(Value::BoolValue(flag)) => flag.to_string(),
            Some(other) => format!("{other:?}"),
            None => String::new(),
        };
        texts.insert(attribute.key.clone(), text);
    }
    texts
}

/// An OTLP/gRPC trace receiver keeping every span it is sent.
#[derive(Debug, Clone, Default)]
struct Receiver {
    spans: Arc<Mutex<Vec<ReceivedSpan>>>,
}

impl Receiver {
    fn spans(&self) -> Vec<ReceivedSpan> {
        self.spans
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

#[tonic::async_trait]
impl TraceService for Receiver {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut received = Vec::new();
        for resource_spans in request.into_inner().resource_spans {
            let resource = text_of(
                &resource_spans
                    .resource
                    .map(|resource| resource.attributes)
                    .unwrap_or_default(),
            );
            let service = resource.get("service.name").cloned().unwrap_or_default();
            for scope_spans in resource_spans.scope_spans {
                for span in scope_spans.spans {
                    received.push(ReceivedSpan {
                        service: service.clone(),
                        trace_id: hex::encode(&span.trace_id),
                        span_id: hex::encode(&span.span_id),
                        parent_span_id: hex::encode(&span.parent_span_id),
                        name: span.name.clone(),
                        kind: span.kind,
                        attributes: text_of(&span.attributes),
                    });
                }
            }
        }
        self.spans
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .extend(received);
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

async fn start_receiver() -> anyhow::Result<(Receiver, SocketAddr)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    let receiver = Receiver::default();
    let server = TraceServiceServer::new(receiver.clone());
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(server)
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    Ok((receiver, address))
}

/// `sunshine serve <name>` as its own process, exporting spans to `otlp_endpoint`.
async fn spawn_service(
    name: &'static str,
    config_file: &Path,
    otlp_endpoint: &str,
) -> anyhow::Result<SunshineProcess> {
    SunshineProcess::spawn(
        Path::new(env!("CARGO_BIN_EXE_sunshine")),
        name,
        config_file,
        // Export soon after spans end, not every five seconds.
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", otlp_endpoint),
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        ],
    )
    .await
}

/// A process's JSON log lines so far.
fn log_lines(process: &SunshineProcess) -> Vec<serde_json::Value> {
    process
        .stdout_lines()
        .iter()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect()
}

/// The spans of `trace_id` seen so far.
fn spans_of(receiver: &Receiver, trace_id: &str) -> Vec<ReceivedSpan> {
    receiver
        .spans()
        .into_iter()
        .filter(|span| span.trace_id == trace_id)
        .collect()
}

fn find<'a>(
    spans: &'a [ReceivedSpan],
    what: &str,
    matches: impl Fn(&ReceivedSpan) -> bool,
) -> anyhow::Result<&'a ReceivedSpan> {
    spans.iter().find(|span| matches(span)).ok_or_else(|| {
        let names: Vec<String> = spans
            .iter()
            .map(|span| format!("{}:{} {:?}", span.service, span.name, span.attributes))
            .collect();
        anyhow::anyhow!("no {what} among {names:#?}")
    })
}

/// What the trace of a submission must hold once every span is exported: (what, span name,
/// event type, service), empty meaning any.
/// Stands for the server span of `SubmitApplication`, named by its gRPC path.
const SUBMIT_SPAN: &str = "SubmitApplication";

/// Whether `span` is the one `name` stands for (`SUBMIT_SPAN`: the method's full gRPC path).
fn span_is(span: &ReceivedSpan, name: &str) -> bool {
    if name == SUBMIT_SPAN {
        let service = sunshine_proto::v1::intake_service_server::SERVICE_NAME;
        span.name == format!("{service}/{SUBMIT_SPAN}")
    } else {
        span.name == name
    }
}

const WANTED: [(&str, &str, &str, &str); 7] = [
    ("intake's server span", SUBMIT_SPAN, "", "intake"),
    (
        "intake's append",
        "eventlog.append",
        pb::ApplicationSubmitted::TYPE,
        "",
    ),
    (
        "the publish of the application",
        "eventlog.publish",
        pb::ApplicationSubmitted::TYPE,
        "",
    ),
    (
        "review's handling",
        "eventlog.consume",
        pb::ApplicationSubmitted::TYPE,
        "review",
    ),
    (
        "review's transaction",
        "eventlog.consumer.transaction",
        "",
        "review",
    ),
    (
        "review's append",
        "eventlog.append",
        pb::CaseOpened::TYPE,
        "",
    ),
    (
        "the publish of CaseOpened",
        "eventlog.publish",
        pb::CaseOpened::TYPE,
        "",
    ),
];

fn missing_spans(spans: &[ReceivedSpan]) -> Vec<&'static str> {
    let mut missing = Vec::new();
    for (what, name, event_type, service) in WANTED {
        let present = spans.iter().any(|span| {
            span_is(span, name)
                && (event_type.is_empty() || span.attribute("sunshine.event_type") == event_type)
                && (service.is_empty() || span.service == service)
        });
        if !present {
            missing.push(what);
        }
    }
    // Review's transaction of the application itself (a child of its handling), not the one
    // of its own CaseOpened coming back, which may be exported first.
    let handling = spans.iter().find(|span| {
        span.name == "eventlog.consume"
            && span.service == "review"
            && span.attribute("messaging.consumer.group.name") == "review-case-opener"
            && span.attribute("sunshine.event_type") == pb::ApplicationSubmitted::TYPE
    });
    let applied = handling.is_some_and(|handling| {
        spans.iter().any(|span| {
            span.name == "eventlog.consumer.transaction" && span.parent_span_id == handling.span_id
        })
    });
    if !applied {
        missing.push("review's transaction of the application");
    }
    missing
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_trace_runs_from_the_caller_through_intake_and_the_log_into_reviews_reaction()
-> anyhow::Result<()> {
    let (receiver, receiver_address) = start_receiver().await?;
    let otlp_endpoint = format!("http://{receiver_address}");
    let auth = TestAuth::new()?;
    let database = migrated_postgres().await?;
    let mut config = test_config(
        &auth,
        database.owner_url(),
        format!("nats://{}", nats_address()),
    );
    config.grpc.listen_address = SocketAddr::from(([127, 0, 0, 1], 0));
    config.telemetry.log_format = LogFormat::Json;
    // Statements are logged at debug: lines written inside the traced work.
    config.telemetry.log_filter = "info,sqlx::query=debug".into();

    let directory = std::env::temp_dir().join(format!("sunshine-traces-{}", uuid::Uuid::now_v7()));
    std::fs::create_dir_all(&directory)?;
    let mut files = BTreeMap::new();
    for (service, keys) in [
        (
            sunshine::log_process::PROCESS_NAME,
            sunshine::log_process::KEYS,
        ),
        (sunshine_intake::SERVICE_NAME, sunshine_intake::KEYS),
        (sunshine_review::SERVICE_NAME, sunshine_review::KEYS),
    ] {
        let mut service_config = config.clone();
        service_config.database.url = service_database_url(&database, &postgres_address(), service);
        service_config.log = sunshine_eventlog::keys::log_config_for(&config.log, keys)?;
        files.insert(service, write_config(&directory, service, &service_config)?);
    }
    // The log process sequences and relays: the relay's publish spans are its own.
    let mut log_process = spawn_service(
        sunshine::log_process::PROCESS_NAME,
        &files[sunshine::log_process::PROCESS_NAME],
        &otlp_endpoint,
    )
    .await?;
    log_process.wait_until_serving().await?;
    log_process
        .wait_for_log("log worker holds the lease")
        .await?;
    let mut intake = spawn_service(
        sunshine_intake::SERVICE_NAME,
        &files[sunshine_intake::SERVICE_NAME],
        &otlp_endpoint,
    )
    .await?;
    intake.wait_until_serving().await?;
    let mut review = spawn_service(
        sunshine_review::SERVICE_NAME,
        &files[sunshine_review::SERVICE_NAME],
        &otlp_endpoint,
    )
    .await?;
    review.wait_until_serving().await?;

    let clerk = auth.token_for_services(
        &[sunshine_intake::SERVICE_NAME],
        Role::VillageClerk,
        VILLAGE,
    );
    let mut intake_client = IntakeServiceClient::new(intake.channel().await?);
    let household = intake_client
        .register_household(sunshine_tests::with_token(
            registration("reg-trace", &family(61)),
            &clerk,
        )?)
        .await?
        .into_inner();
    // Review hears the registration before the submission: a consumer's transaction is a span
    // of its batch's first event, so the application must come in a batch of its own for its
    // transaction to be in the caller's trace (under load, both would share one).
    let store = EventStore::from_database(
        &sunshine_platform::backends::Database::connect(&DatabaseConfig {
            url: database.owner_url(),
            max_connections: 2,
            ..Default::default()
        })
        .await?,
    );
    let quiet_by = tokio::time::Instant::now() + PATIENCE;
    while sunshine_tests::events_behind(store.pool(), "review-case-opener").await? > 0 {
        anyhow::ensure!(
            tokio::time::Instant::now() < quiet_by,
            "review never heard the registration"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut submission = sunshine_tests::with_token(
        dibao_application(
            "app-trace",
            &household.household_id,
            &household.member_ids[0],
        ),
        &clerk,
    )?;
    submission.metadata_mut().insert(
        "traceparent",
        format!("00-{TRACE_ID}-{CALLER_SPAN_ID}-01").parse()?,
    );
    let accepted = intake_client
        .submit_application(submission)
        .await?
        .into_inner();
    let case_id = accepted.case_id;

    // Review opens the case in the caller's trace; its CaseOpened is relayed in it too. Spans
    // are exported as they end, parents after children and each process on its own schedule:
    // wait for all of them.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let spans = loop {
        let spans = spans_of(&receiver, TRACE_ID);
        let missing = missing_spans(&spans);
        if missing.is_empty() {
            break spans;
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "the trace still lacks {missing:?}; it has {:#?}",
            spans
                .iter()
                .map(|span| format!("{}:{} {:?}", span.service, span.name, span.attributes))
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };

    // The caller → intake's server span.
    let server = find(&spans, "intake's server span", |span| {
        span_is(span, SUBMIT_SPAN)
    })?;
    assert_eq!(server.service, "intake");
    assert_eq!(server.kind, SpanKind::Server as i32);
    assert_eq!(server.parent_span_id, CALLER_SPAN_ID);

    // Review's handling of ApplicationSubmitted, a child of the append that wrote it.
    let consume = find(&spans, "review's handling of the application", |span| {
        span.name == "eventlog.consume"
            && span.service == "review"
            && span.attribute("messaging.consumer.group.name") == "review-case-opener"
            && span.attribute("sunshine.event_type") == pb::ApplicationSubmitted::TYPE
    })?;
    assert_eq!(consume.kind, SpanKind::Consumer as i32);
    assert_eq!(consume.attribute("sunshine.outcome"), "applied");
    let intake_append = find(&spans, "intake's append of the application", |span| {
        span.span_id == consume.parent_span_id
    })?;
    assert_eq!(intake_append.name, "eventlog.append");
    assert_eq!(intake_append.service, "intake");
    assert_eq!(intake_append.kind, SpanKind::Client as i32);
    assert_eq!(intake_append.attribute("db.system.name"), "postgresql");
    assert!(
        intake_append
            .attribute("sunshine.stream_id")
            .starts_with("intake-household-"),
        "{intake_append:?}"
    );
    assert_eq!(intake_append.parent_span_id, server.span_id);

    // The relay's publish of it, a child of the same append, in the log process.
    let intake_publish = find(&spans, "the relay's publish of the application", |span| {
        span.name == "eventlog.publish"
            && span.attribute("sunshine.event_type") == pb::ApplicationSubmitted::TYPE
    })?;
    assert_eq!(intake_publish.kind, SpanKind::Producer as i32);
    assert_eq!(intake_publish.parent_span_id, intake_append.span_id);
    assert_eq!(intake_publish.service, sunshine::log_process::PROCESS_NAME);
    assert_eq!(intake_publish.attribute("messaging.system"), "nats");

    // Review's append of CaseOpened, inside its handling, and the publish that follows it.
    let review_append = find(&spans, "review's append of CaseOpened", |span| {
        span.name == "eventlog.append"
            && span.attribute("sunshine.event_type") == pb::CaseOpened::TYPE
    })?;
    assert_eq!(review_append.service, "review");
    assert_eq!(review_append.parent_span_id, consume.span_id);
    assert_eq!(
        review_append.attribute("sunshine.stream_id"),
        format!("review-case-{case_id}")
    );
    let review_publish = find(&spans, "the relay's publish of CaseOpened", |span| {
        span.name == "eventlog.publish"
            && span.attribute("sunshine.event_type") == pb::CaseOpened::TYPE
    })?;
    assert_eq!(review_publish.parent_span_id, review_append.span_id);

    // The consumer's transaction and the store's reads are spans of the trace too.
    let transaction = find(&spans, "review's consumer transaction", |span| {
        span.name == "eventlog.consumer.transaction" && span.parent_span_id == consume.span_id
    })?;
    assert_eq!(transaction.service, "review");
    assert_eq!(transaction.attribute("db.system.name"), "postgresql");
    let read = find(&spans, "a read of the case file in review", |span| {
        span.name == "read_case" && span.service == "review"
    })?;
    assert_eq!(read.attribute("db.operation.name"), "read_case");

    // CaseOpened carries the trace context of the span that appended it.
    let case_events = store
        .read_stream(&StreamId::new("review", "case", &case_id)?, 1)
        .await?;
    let case_opened = case_events
        .first()
        .ok_or_else(|| anyhow::anyhow!("no CaseOpened"))?;
    assert_eq!(case_opened.event_type, pb::CaseOpened::TYPE);
    assert_eq!(
        case_opened.metadata()?.traceparent,
        Some(format!("00-{TRACE_ID}-{}-01", review_append.span_id))
    );

    // Every span of every process names its own service, never `all` or the SDK's default.
    for span in receiver.spans() {
        assert!(
            ["intake", "review", sunshine::log_process::PROCESS_NAME]
                .contains(&span.service.as_str()),
            "{span:?}"
        );
    }

    // JSON log lines written inside the trace say so, with the span they were written in.
    for process in [&intake, &review] {
        let own_span_ids: Vec<&str> = spans
            .iter()
            .filter(|span| span.service == process.name)
            .map(|span| span.span_id.as_str())
            .collect();
        let in_trace = log_lines(process).into_iter().any(|line| {
            line["trace_id"] == TRACE_ID
                && line["span_id"]
                    .as_str()
                    .is_some_and(|span_id| own_span_ids.contains(&span_id))
        });
        assert!(in_trace, "no log line of {} names the trace", process.name);
    }

    review.stop().await?;
    intake.stop().await?;
    log_process.stop().await?;
    std::fs::remove_dir_all(&directory)?;
    Ok(())
}
