//! `sunshine demo`: starts every service in this process on the embedded backends (SQLite in a
//! temporary folder, the in-process bus), then shows, as different officers, what the system
//! does so far. Each later issue adds its part of the story here.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context as _;
use sunshine_platform::auth::TokenIssuer;
use sunshine_platform::{Config, Role, Shutdown};
use sunshine_proto::v1::service_info_service_client::ServiceInfoServiceClient;
use sunshine_proto::v1::{GetServiceInfoRequest, WhoAmIRequest};
use tokio::net::TcpListener;
use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use crate::dev_keys;
use crate::services::SERVICES;

const EXAMPLE_DISTRICT: &str = "990101000000";
const EXAMPLE_VILLAGE: &str = "990101001001";

pub async fn run() -> anyhow::Result<()> {
    let directory = std::env::temp_dir().join(format!("sunshine-demo-{}", std::process::id()));
    std::fs::create_dir_all(&directory)?;
    let issuer = TokenIssuer::generate(dev_keys::DEV_KEY_ID)?;
    let mut config = Config::default();
    dev_keys::trust(&mut config, &issuer);
    config.database.url = format!("sqlite://{}", directory.join("sunshine.db").display());
    config.bus.url = "memory://".into();
    config.grpc.drain_delay_ms = 0;
    config.readiness.check_interval_ms = 200;
    config.log.generate_keys()?;
    config.validate()?;

    println!(
        "== Sunshine Assistance demo (embedded: SQLite in {}, in-process bus)",
        directory.display()
    );
    let (trigger, shutdown) = Shutdown::new();
    let mut addresses: Vec<(&str, SocketAddr)> = Vec::new();
    let mut tasks = tokio::task::JoinSet::new();
    for entry in &SERVICES {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        addresses.push((entry.name, listener.local_addr()?));
        tasks.spawn((entry.run)(config.clone(), listener, shutdown.clone()));
    }

    let admin = issuer.sign(&dev_keys::claims(
        &config.auth.audience,
        "admin-1",
        "系统管理员",
        Role::Admin,
        EXAMPLE_DISTRICT,
        None,
        1,
    ));
    let clerk = issuer.sign(&dev_keys::claims(
        &config.auth.audience,
        "clerk-1",
        "村居经办员",
        Role::VillageClerk,
        EXAMPLE_VILLAGE,
        None,
        1,
    ));

    for (name, address) in &addresses {
        let channel = Channel::from_shared(format!("http://{address}"))?
            .connect()
            .await?;
        wait_until_serving(channel.clone())
            .await
            .with_context(|| format!("{name} did not become ready"))?;
        let mut client = ServiceInfoServiceClient::new(channel);
        let info = client
            .get_service_info(authorised(GetServiceInfoRequest {}, &admin)?)
            .await?
            .into_inner();
        println!(
            "{name:>24} at {address}: SERVING, version {}, database connected: {}, bus connected: {}",
            info.version,
            info.database.is_some_and(|state| state.connected),
            info.bus.is_some_and(|state| state.connected)
        );
    }

    let (_, intake_address) = addresses[0];
    let channel = Channel::from_shared(format!("http://{intake_address}"))?
        .connect()
        .await?;
    let mut client = ServiceInfoServiceClient::new(channel);
    let me = client
        .who_am_i(authorised(WhoAmIRequest {}, &clerk)?)
        .await?
        .into_inner();
    if let Some(actor) = me.actor {
        println!(
            "\nvillage clerk asks intake who they are: {} ({}), org unit {}",
            actor.display_name, actor.subject, actor.org_unit_code
        );
    }
    let refused = client
        .get_service_info(authorised(GetServiceInfoRequest {}, &clerk)?)
        .await;
    if let Err(status) = refused {
        println!(
            "village clerk asks for service info: {:?}: {}",
            status.code(),
            status.message()
        );
    }
    let anonymous = client.who_am_i(WhoAmIRequest {}).await;
    if let Err(status) = anonymous {
        println!(
            "a call without a token: {:?}: {}",
            status.code(),
            status.message()
        );
    }

    trigger.trigger();
    while let Some(joined) = tasks.join_next().await {
        joined??;
    }
    std::fs::remove_dir_all(&directory)?;
    println!("\nall services stopped cleanly");
    Ok(())
}

fn authorised<T>(message: T, token: &str) -> anyhow::Result<tonic::Request<T>> {
    let mut request = tonic::Request::new(message);
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse()?);
    Ok(request)
}

async fn wait_until_serving(channel: Channel) -> anyhow::Result<()> {
    let mut health = HealthClient::new(channel);
    for _ in 0..100 {
        let status = health
            .check(HealthCheckRequest {
                service: String::new(),
            })
            .await?
            .into_inner()
            .status();
        if status == ServingStatus::Serving {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    anyhow::bail!("not serving after 10 s")
}
