//! The foundation's promises, shown on every service at once: readiness follows the backends,
//! every RPC needs a valid token of the right role, meant for that service, with the role at its
//! tier and a bounded lifetime; shutdown turns NOT_SERVING before draining.

use std::time::Duration;

use sunshine_evidence::checkpoint::{CheckpointSigner, CheckpointVerifier};
use sunshine_platform::Role;
use sunshine_platform::config::decode_key;
use sunshine_proto::v1::service_info_service_client::ServiceInfoServiceClient;
use sunshine_proto::v1::{BackendKind, GetServiceInfoRequest, WhoAmIRequest};
use sunshine_tests::{
    DISTRICT, GatedProxy, RunningService, STREET_TOWN, ScenarioBackends, TestAuth, VILLAGE,
    migrated_postgres, nats_address, postgres_address, service_database_url, start_every_service,
    test_config, wait_until, with_token,
};
use tonic::Code;
use tonic_health::pb::health_check_response::ServingStatus;

const PATIENCE: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_serve_only_with_database_and_bus_and_guard_every_rpc() -> anyhow::Result<()> {
    let auth = TestAuth::new()?;
    let database = migrated_postgres().await?;
    let postgres_gate = GatedProxy::start(postgres_address()).await?;
    let nats_gate = GatedProxy::start(nats_address()).await?;
    let config = test_config(
        &auth,
        database.owner_url(),
        format!("nats://{}", nats_gate.address()),
    );
    // Each service logs in as its own role, through the gate.
    let services = start_every_service(|service| {
        let mut service_config = config.clone();
        service_config.database.url =
            service_database_url(&database, &postgres_gate.address(), service);
        service_config
    })
    .await?;

    // Neither backend reachable: listening, but not ready.
    for service in &services {
        assert_eq!(
            service.health().await?,
            ServingStatus::NotServing,
            "{}",
            service.name
        );
    }

    // The database comes up; every service connects to it but still waits for the bus.
    postgres_gate.open();
    wait_until("every service to reach the database", PATIENCE, || {
        postgres_gate.forwarded_connections() >= services.len()
    })
    .await?;
    for service in &services {
        assert_eq!(
            service.health().await?,
            ServingStatus::NotServing,
            "{}",
            service.name
        );
    }

    // The bus comes up: now every service is SERVING.
    nats_gate.open();
    for service in &services {
        service
            .wait_for_health(ServingStatus::Serving, PATIENCE)
            .await?;
    }

    let admin = auth.token(Role::Admin, DISTRICT);
    let village_clerk = auth.token(Role::VillageClerk, VILLAGE);
    let expired_admin = auth.expired_token(Role::Admin, DISTRICT);
    for service in &services {
        let mut client = ServiceInfoServiceClient::new(service.channel().await?);

        let no_token = client
            .who_am_i(WhoAmIRequest {})
            .await
            .expect_err("a call without a token must fail");
        assert_eq!(
            no_token.code(),
            Code::Unauthenticated,
            "{}: {no_token:?}",
            service.name
        );

        let expired = client
            .get_service_info(with_token(GetServiceInfoRequest {}, &expired_admin)?)
            .await
            .expect_err("an expired token must fail");
        assert_eq!(
            expired.code(),
            Code::Unauthenticated,
            "{}: {expired:?}",
            service.name
        );
        assert!(
            expired.message().contains("expired"),
            "{}",
            expired.message()
        );

        let forged = format!("{}x", &admin[..admin.len() - 1]);
        let tampered = client
            .who_am_i(with_token(WhoAmIRequest {}, &forged)?)
            .await
            .expect_err("a tampered token must fail");
        assert_eq!(tampered.code(), Code::Unauthenticated, "{}", service.name);

        let wrong_role = client
            .get_service_info(with_token(GetServiceInfoRequest {}, &village_clerk)?)
            .await
            .expect_err("a village clerk may not read service info");
        assert_eq!(
            wrong_role.code(),
            Code::PermissionDenied,
            "{}: {wrong_role:?}",
            service.name
        );

        let me = client
            .who_am_i(with_token(WhoAmIRequest {}, &village_clerk)?)
            .await?
            .into_inner();
        let actor = me.actor.expect("who-am-i returns the actor");
        assert_eq!(actor.org_unit_code, VILLAGE);
        assert_eq!(actor.role(), sunshine_proto::v1::Role::VillageClerk);

        let info = client
            .get_service_info(with_token(GetServiceInfoRequest {}, &admin)?)
            .await?
            .into_inner();
        assert_eq!(info.service_name, service.name);
        let database_state = info.database.expect("database state");
        let bus_state = info.bus.expect("bus state");
        assert_eq!(database_state.kind(), BackendKind::Postgres);
        assert!(database_state.connected, "{}", service.name);
        assert_eq!(bus_state.kind(), BackendKind::Nats);
        assert!(bus_state.connected, "{}", service.name);
    }

    for service in services {
        service.stop().await?;
    }
    database.drop_database().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_reports_not_serving_before_it_drains() -> anyhow::Result<()> {
    let auth = TestAuth::new()?;
    let database = migrated_postgres().await?;
    let mut config = test_config(
        &auth,
        service_database_url(
            &database,
            &postgres_address(),
            sunshine_intake::SERVICE_NAME,
        ),
        format!("nats://{}", nats_address()),
    );
    config.grpc.drain_delay_ms = 2_000;
    let service = RunningService::start(
        sunshine_intake::SERVICE_NAME,
        config,
        sunshine_intake::run_sharing_process,
    )
    .await?;
    service
        .wait_for_health(ServingStatus::Serving, PATIENCE)
        .await?;
    let channel = service.channel().await?;

    service.trigger_shutdown();
    // Still answering during the drain delay, but no longer ready.
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel.clone());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    loop {
        let status = health
            .check(tonic_health::pb::HealthCheckRequest {
                service: String::new(),
            })
            .await?
            .into_inner()
            .status();
        if status == ServingStatus::NotServing {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "still {status:?} after shutdown"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut client = ServiceInfoServiceClient::new(channel);
    let token = auth.token(Role::Auditor, DISTRICT);
    let info = client
        .get_service_info(with_token(GetServiceInfoRequest {}, &token)?)
        .await?;
    assert_eq!(info.into_inner().service_name, "intake");

    service.stop().await?;
    database.drop_database().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_embedded_backends_take_the_same_path() -> anyhow::Result<()> {
    let auth = TestAuth::new()?;
    let directory =
        std::env::temp_dir().join(format!("sunshine-embedded-{}", uuid::Uuid::now_v7()));
    std::fs::create_dir_all(&directory)?;
    let database_url = format!("sqlite://{}", directory.join("sunshine.db").display());
    let config = test_config(&auth, database_url, "memory://".into());
    let published_key = CheckpointSigner::new(
        config.log.origin.clone(),
        ed25519_dalek::SigningKey::from_bytes(
            &decode_key(&config.log.checkpoint_signing_key).map_err(anyhow::Error::msg)?,
        ),
    )?
    .verifier_key();
    let services = start_every_service(|_| config.clone()).await?;
    for service in &services {
        service
            .wait_for_health(ServingStatus::Serving, PATIENCE)
            .await?;
        let mut client = ServiceInfoServiceClient::new(service.channel().await?);
        let token = auth.token(Role::Auditor, DISTRICT);
        let info = client
            .get_service_info(with_token(GetServiceInfoRequest {}, &token)?)
            .await?
            .into_inner();
        assert_eq!(info.database.expect("database").kind(), BackendKind::Sqlite);
        assert_eq!(info.bus.expect("bus").kind(), BackendKind::InProcess);
        // The log's origin and the key its checkpoints verify under, as the reference
        // implementation formats it (docs/audit-log-format.md §4).
        assert_eq!(info.log_origin, config.log.origin);
        assert_eq!(info.checkpoint_verifier_key, published_key);
        CheckpointVerifier::from_verifier_key(&info.checkpoint_verifier_key)?;
    }
    for service in services {
        service.stop().await?;
    }
    std::fs::remove_dir_all(directory)?;
    Ok(())
}

/// Intake and review on the embedded backends, for the token tests below (the token checks
/// run before any handler, so the backends need not be connected).
async fn intake_and_review(
    auth: &TestAuth,
) -> anyhow::Result<(ScenarioBackends, RunningService, RunningService)> {
    let backends = ScenarioBackends::start(false).await?;
    let config = test_config(auth, backends.database_url(), backends.bus_url());
    let intake = RunningService::start(
        sunshine_intake::SERVICE_NAME,
        config.clone(),
        sunshine_intake::run_sharing_process,
    )
    .await?;
    let review = RunningService::start(
        sunshine_review::SERVICE_NAME,
        config,
        sunshine_review::run_sharing_process,
    )
    .await?;
    Ok((backends, intake, review))
}

async fn who_am_i(service: &RunningService, token: &str) -> Result<String, tonic::Status> {
    let channel = service
        .channel()
        .await
        .map_err(|error| tonic::Status::unavailable(error.to_string()))?;
    let request = with_token(WhoAmIRequest {}, token)
        .map_err(|error| tonic::Status::invalid_argument(error.to_string()))?;
    let actor = ServiceInfoServiceClient::new(channel)
        .who_am_i(request)
        .await?
        .into_inner()
        .actor
        .unwrap_or_default();
    Ok(actor.subject)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_for_review_is_refused_by_intake() -> anyhow::Result<()> {
    let auth = TestAuth::new()?;
    let (_backends, intake, review) = intake_and_review(&auth).await?;
    let for_review = auth.token_for_services(
        &[sunshine_review::SERVICE_NAME],
        Role::CenterApprover,
        DISTRICT,
    );

    let refused = who_am_i(&intake, &for_review)
        .await
        .expect_err("intake must refuse a token meant for review");
    assert_eq!(refused.code(), Code::Unauthenticated, "{refused:?}");
    assert!(who_am_i(&review, &for_review).await.is_ok());
    // The tests' default tokens name every service, so both accept them.
    let for_all = auth.token(Role::CenterApprover, DISTRICT);
    assert!(who_am_i(&intake, &for_all).await.is_ok());
    assert!(who_am_i(&review, &for_all).await.is_ok());

    intake.stop().await?;
    review.stop().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_village_clerk_token_naming_the_district_is_refused() -> anyhow::Result<()> {
    let auth = TestAuth::new()?;
    let (_backends, intake, review) = intake_and_review(&auth).await?;
    for (role, wrong_unit) in [
        (Role::VillageClerk, DISTRICT),
        (Role::VillageClerk, STREET_TOWN),
        (Role::StreetReviewer, DISTRICT),
        (Role::CenterReviewer, VILLAGE),
        (Role::Admin, STREET_TOWN),
    ] {
        let token = auth.token(role, wrong_unit);
        for service in [&intake, &review] {
            let refused = who_am_i(service, &token)
                .await
                .expect_err("a role above or below its tier must be refused");
            assert_eq!(
                refused.code(),
                Code::Unauthenticated,
                "{role:?} at {wrong_unit} on {}: {refused:?}",
                service.name
            );
        }
    }
    assert!(
        who_am_i(&intake, &auth.token(Role::VillageClerk, VILLAGE))
            .await
            .is_ok()
    );
    intake.stop().await?;
    review.stop().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_year_token_is_refused() -> anyhow::Result<()> {
    let auth = TestAuth::new()?;
    let (_backends, intake, review) = intake_and_review(&auth).await?;
    let hundred_years = auth.token_with(Role::Admin, DISTRICT, |claims| {
        claims.exp = claims.iat + 100 * 365 * 24 * 3600;
    });
    let overflowing = auth.token_with(Role::Admin, DISTRICT, |claims| {
        claims.exp = i64::MAX;
    });
    for token in [&hundred_years, &overflowing] {
        let refused = who_am_i(&intake, token)
            .await
            .expect_err("an absurd lifetime must be refused");
        assert_eq!(refused.code(), Code::Unauthenticated, "{refused:?}");
    }
    intake.stop().await?;
    review.stop().await?;
    Ok(())
}
