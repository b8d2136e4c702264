//! gRPC reflection on each port describes what that port serves — its own service,
//! `ServiceInfoService`, health and reflection — and nothing that would answer UNIMPLEMENTED
//! there. Asked over a socket, as `grpcurl list` asks.

use sunshine_tests::{RunningService, TempSqlite, TestAuth, test_config};
use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
use tonic_reflection::pb::v1::{ServerReflectionRequest, ServerReflectionResponse};

const INTAKE_SERVICE: &str = sunshine_proto::v1::intake_service_server::SERVICE_NAME;
const REVIEW_SERVICE: &str = sunshine_proto::v1::review_service_server::SERVICE_NAME;
const PAYMENT_SERVICE: &str = sunshine_proto::v1::payment_service_server::SERVICE_NAME;
const SERVICE_INFO: &str = sunshine_proto::v1::service_info_service_server::SERVICE_NAME;
const HEALTH: &str = "grpc.health.v1.Health";
const REFLECTION: &str = "grpc.reflection.v1.ServerReflection";

/// One reflection request on `service`'s port, and its answer (tonic's reflection answers an
/// unknown symbol with a NOT_FOUND status on the stream).
async fn ask(
    service: &RunningService,
    request: MessageRequest,
) -> anyhow::Result<Result<MessageResponse, tonic::Status>> {
    let mut client = ServerReflectionClient::new(service.channel().await?);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(request),
    };
    let mut answers = client
        .server_reflection_info(futures::stream::iter([request]))
        .await?
        .into_inner();
    let answer: ServerReflectionResponse = match answers.message().await {
        Ok(Some(answer)) => answer,
        Ok(None) => anyhow::bail!("reflection closed without an answer"),
        Err(status) => return Ok(Err(status)),
    };
    Ok(Ok(answer.message_response.ok_or_else(|| {
        anyhow::anyhow!("an empty reflection answer")
    })?))
}

async fn listed_services(service: &RunningService) -> anyhow::Result<Vec<String>> {
    match ask(service, MessageRequest::ListServices(String::new())).await?? {
        MessageResponse::ListServicesResponse(list) => {
            let mut names: Vec<String> = list.service.into_iter().map(|entry| entry.name).collect();
            names.sort();
            Ok(names)
        }
        other => anyhow::bail!("not a service list: {other:?}"),
    }
}

/// Whether the port can describe `symbol` (a client resolving a method before calling it).
async fn describes(service: &RunningService, symbol: &str) -> anyhow::Result<bool> {
    match ask(service, MessageRequest::FileContainingSymbol(symbol.into())).await? {
        Ok(MessageResponse::FileDescriptorResponse(files)) => {
            Ok(!files.file_descriptor_proto.is_empty())
        }
        Ok(MessageResponse::ErrorResponse(error))
            if error.error_code == tonic::Code::NotFound as i32 =>
        {
            Ok(false)
        }
        Err(status) if status.code() == tonic::Code::NotFound => Ok(false),
        other => anyhow::bail!("unexpected reflection answer for {symbol}: {other:?}"),
    }
}

fn sorted(names: &[&str]) -> Vec<String> {
    let mut names: Vec<String> = names.iter().map(|name| (*name).to_owned()).collect();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_port_reflects_only_the_services_it_serves() -> anyhow::Result<()> {
    let auth = TestAuth::new()?;
    let sqlite = TempSqlite::create()?;
    let config = test_config(&auth, sqlite.url(), "memory://".into());
    let intake = RunningService::start(
        sunshine_intake::SERVICE_NAME,
        config.clone(),
        sunshine_intake::run_sharing_process,
    )
    .await?;
    let review = RunningService::start(
        sunshine_review::SERVICE_NAME,
        config.clone(),
        sunshine_review::run_sharing_process,
    )
    .await?;
    let payment = RunningService::start(
        sunshine_payment::SERVICE_NAME,
        config.clone(),
        sunshine_payment::run_sharing_process,
    )
    .await?;

    assert_eq!(
        listed_services(&review).await?,
        sorted(&[REVIEW_SERVICE, SERVICE_INFO, HEALTH, REFLECTION])
    );
    assert!(describes(&review, REVIEW_SERVICE).await?);
    assert!(describes(&review, &format!("{REVIEW_SERVICE}.GetCase")).await?);
    assert!(!describes(&review, INTAKE_SERVICE).await?);
    assert!(!describes(&review, &format!("{INTAKE_SERVICE}.SubmitApplication")).await?);

    assert_eq!(
        listed_services(&intake).await?,
        sorted(&[INTAKE_SERVICE, SERVICE_INFO, HEALTH, REFLECTION])
    );
    assert!(describes(&intake, INTAKE_SERVICE).await?);
    assert!(!describes(&intake, REVIEW_SERVICE).await?);

    assert_eq!(
        listed_services(&payment).await?,
        sorted(&[PAYMENT_SERVICE, SERVICE_INFO, HEALTH, REFLECTION])
    );
    assert!(describes(&payment, &format!("{PAYMENT_SERVICE}.CreateRun")).await?);
    assert!(!describes(&payment, INTAKE_SERVICE).await?);
    assert!(!describes(&review, PAYMENT_SERVICE).await?);
    assert!(describes(&payment, SERVICE_INFO).await?);

    payment.stop().await?;
    review.stop().await?;
    intake.stop().await?;
    Ok(())
}
