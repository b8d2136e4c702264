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

    intake_walkthrough(&addresses, &clerk).await?;

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

fn demo_id(body: &str) -> anyhow::Result<String> {
    sunshine_domain::NationalId::with_check_character(body).context("a 17-digit body")
}

/// A household of three registers at its village and applies for rural dibao; the review
/// service opens the case from the bus.
async fn intake_walkthrough(addresses: &[(&str, SocketAddr)], clerk: &str) -> anyhow::Result<()> {
    use sunshine_proto::v1 as pb;
    use sunshine_proto::v1::intake_service_client::IntakeServiceClient;

    let (_, intake_address) = addresses[0];
    let channel = Channel::from_shared(format!("http://{intake_address}"))?
        .connect()
        .await?;
    let mut intake = IntakeServiceClient::new(channel);
    let person =
        |name: &str, id: String, relation: pb::Relation, birth: (i32, i32, i32), wages: i64| {
            pb::MemberInput {
                name: name.into(),
                national_id: id,
                relation: relation as i32,
                birth_date: Some(pb::Date {
                    year: birth.0,
                    month: birth.1,
                    day: birth.2,
                }),
                hukou_type: pb::HukouType::Rural as i32,
                resident_since: Some(pb::Date {
                    year: 1990,
                    month: 1,
                    day: 1,
                }),
                monthly_income: vec![pb::IncomeItem {
                    kind: "wages".into(),
                    monthly_amount: Some(pb::Money { fen: wages }),
                }],
                ..Default::default()
            }
        };
    let members = vec![
        person(
            "王建国",
            demo_id("99010119650312011")?,
            pb::Relation::Head,
            (1965, 3, 12),
            60_000,
        ),
        person(
            "李秀英",
            demo_id("99010119670708022")?,
            pb::Relation::Spouse,
            (1967, 7, 8),
            0,
        ),
        person(
            "王秀兰",
            demo_id("99010119380920024")?,
            pb::Relation::Parent,
            (1938, 9, 20),
            0,
        ),
    ];
    let registered = intake
        .register_household(authorised(
            pb::RegisterHouseholdRequest {
                command_id: "demo-household".into(),
                hukou_org_unit_code: EXAMPLE_VILLAGE.into(),
                address: "示例区东城街道幸福里3号".into(),
                members,
                assets: None,
                payment_account: None,
            },
            clerk,
        )?)
        .await?
        .into_inner();
    println!(
        "\nthe village clerk registers household {} (3 members, personal data sealed in the log)",
        registered.household_id
    );
    let documents = [
        "application_form",
        "household_register",
        "identity_documents",
        "income_statement",
        "verification_authorisation",
    ]
    .iter()
    .map(|kind| pb::DocumentMetadata {
        kind: (*kind).into(),
        file_name: format!("{kind}.pdf"),
        sha256_hex: "ab".repeat(32),
        size_bytes: 2048,
    })
    .collect::<Vec<_>>();
    let mut application = pb::SubmitApplicationRequest {
        command_id: "demo-application".into(),
        household_id: registered.household_id.clone(),
        applicant_member_id: registered.member_ids[0].clone(),
        program_code: "dibao_rural".into(),
        channel: pb::ApplicationChannel::InPerson as i32,
        declared_facts: Default::default(),
        consent_to_verification: true,
        notify_and_pledge_accepted: true,
        documents: documents[..1].to_vec(),
    };
    if let Err(status) = intake
        .submit_application(authorised(application.clone(), clerk)?)
        .await
    {
        println!(
            "an application with only the form: {:?}: {}",
            status.code(),
            status.message()
        );
    }
    application.documents = documents;
    let accepted = intake
        .submit_application(authorised(application, clerk)?)
        .await?
        .into_inner();
    println!(
        "the complete application is accepted: case {} routed to review",
        accepted.case_id
    );
    for _ in 0..100 {
        let listed = intake
            .list_applications(authorised(
                pb::ListApplicationsRequest {
                    org_unit_code: EXAMPLE_VILLAGE.into(),
                    ..Default::default()
                },
                clerk,
            )?)
            .await?
            .into_inner();
        if let Some(found) = listed
            .applications
            .iter()
            .find(|summary| summary.case_id == accepted.case_id && summary.status == "under_review")
        {
            println!(
                "the review service opened the case from the bus: status {}",
                found.status
            );
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let household = intake
        .get_household(authorised(
            pb::GetHouseholdRequest {
                household_id: registered.household_id.clone(),
                ..Default::default()
            },
            clerk,
        )?)
        .await?
        .into_inner()
        .household
        .context("a household")?;
    println!(
        "the household as a caseworker sees it, masked (the read itself is an access event in the log):"
    );
    for member in &household.members {
        println!("  {} {}", member.name, member.national_id);
    }
    Ok(())
}
