//! `sunshine demo`: starts every service in this process on the embedded backends (SQLite in a
//! temporary folder, the in-process bus), then shows, as different officers, what the system
//! does so far. Each later issue adds its part of the story here.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context as _;
use sunshine_eventlog::LogSignals;
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
    config.integration.generate_person_index_key()?;
    config.validate()?;

    println!(
        "== Sunshine Assistance demo (embedded: SQLite in {}, in-process bus)",
        directory.display()
    );
    let (trigger, shutdown) = Shutdown::new();
    let mut addresses: Vec<(&str, SocketAddr)> = Vec::new();
    let mut tasks = tokio::task::JoinSet::new();
    // Intake and review share a clock the demo can move (publicity takes seven days).
    let clock = std::sync::Arc::new(sunshine_platform::clock::ManualClock::new(
        sunshine_platform::clock::Clock::today(&sunshine_platform::clock::SystemClock),
    ));
    // Every service here uses one database: an append by any wakes whichever log worker holds
    // the lease, the demo's own appends included.
    let log_signals = LogSignals::new();
    for entry in &SERVICES {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        addresses.push((entry.name, listener.local_addr()?));
        let shared_clock: std::sync::Arc<dyn sunshine_platform::clock::Clock> = clock.clone();
        match entry.name {
            "intake" => tasks.spawn(Box::pin(sunshine_intake::run_sharing_log(
                config.clone(),
                listener,
                shutdown.clone(),
                shared_clock,
                log_signals.clone(),
            )) as crate::services::RunFuture),
            "review" => tasks.spawn(Box::pin(sunshine_review::run_sharing_log(
                config.clone(),
                listener,
                shutdown.clone(),
                shared_clock,
                log_signals.clone(),
            )) as crate::services::RunFuture),
            _ => tasks.spawn((entry.run)(
                config.clone(),
                listener,
                shutdown.clone(),
                log_signals.clone(),
            )),
        };
    }

    let admin = issuer.sign(&dev_keys::claims(
        dev_keys::every_service(&config.auth),
        "admin-1",
        "系统管理员",
        Role::Admin,
        EXAMPLE_DISTRICT,
        None,
        1,
    ));
    let clerk = issuer.sign(&dev_keys::claims(
        dev_keys::every_service(&config.auth),
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

    let case_id = intake_walkthrough(&addresses, &clerk).await?;
    review_walkthrough(&addresses, &issuer, &config, &case_id, &clock, &log_signals).await?;

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
async fn intake_walkthrough(
    addresses: &[(&str, SocketAddr)],
    clerk: &str,
) -> anyhow::Result<String> {
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
    Ok(accepted.case_id)
}

/// The case through review: investigators, visits, verification, opinion with the policy
/// result, seven days of public notice, and the district's decision.
async fn review_walkthrough(
    addresses: &[(&str, SocketAddr)],
    issuer: &TokenIssuer,
    config: &Config,
    case_id: &str,
    clock: &sunshine_platform::clock::ManualClock,
    log_signals: &LogSignals,
) -> anyhow::Result<()> {
    use sunshine_platform::clock::Clock as _;
    use sunshine_proto::v1 as pb;
    use sunshine_proto::v1::review_service_client::ReviewServiceClient;

    let token = |subject: &str, name: &str, role: Role, org_unit: &str| {
        issuer.sign(&dev_keys::claims(
            dev_keys::every_service(&config.auth),
            subject,
            name,
            role,
            org_unit,
            None,
            1,
        ))
    };
    let street = token(
        "street-1",
        "街道审核员",
        Role::StreetReviewer,
        "990101001000",
    );
    let visitor = token("clerk-2", "村居调查员", Role::VillageClerk, EXAMPLE_VILLAGE);
    let clerk = token("clerk-1", "村居经办员", Role::VillageClerk, EXAMPLE_VILLAGE);
    let approver = token(
        "approver-1",
        "区中心审批人",
        Role::CenterApprover,
        EXAMPLE_DISTRICT,
    );
    let (_, review_address) = addresses[1];
    let mut review = ReviewServiceClient::new(
        Channel::from_shared(format!("http://{review_address}"))?
            .connect()
            .await?,
    );
    let version = review
        .get_case(authorised(
            pb::GetCaseRequest {
                case_id: case_id.into(),
            },
            &street,
        )?)
        .await?
        .into_inner()
        .version;
    let officer = |subject: &str| pb::CaseOfficer {
        subject: subject.into(),
        role: "village_clerk".into(),
        org_unit_code: EXAMPLE_VILLAGE.into(),
    };
    let mut version = review
        .assign_investigators(authorised(
            pb::AssignInvestigatorsRequest {
                command_id: "demo-assign".into(),
                case_id: case_id.into(),
                expected_version: version,
                investigators: vec![officer("clerk-1"), officer("clerk-2")],
            },
            &street,
        )?)
        .await?
        .into_inner()
        .version;
    for (command, visiting) in [("demo-visit-1", &clerk), ("demo-visit-2", &visitor)] {
        let visited_on = pb::Date {
            year: clock.today().year(),
            month: i32::from(u8::from(clock.today().month())),
            day: i32::from(clock.today().day()),
        };
        version = review
            .record_home_visit(authorised(
                pb::RecordHomeVisitRequest {
                    command_id: command.into(),
                    case_id: case_id.into(),
                    expected_version: version,
                    visited_on: Some(visited_on),
                    findings: "家中有卧床老人".into(),
                },
                visiting,
            )?)
            .await?
            .into_inner()
            .version;
    }
    println!("\nreview: two investigators visited the household");
    let requested = review
        .request_verification(authorised(
            pb::RequestVerificationRequest {
                command_id: "demo-verify".into(),
                case_id: case_id.into(),
                expected_version: version,
                department_codes: vec!["civil_affairs".into()],
            },
            &street,
        )?)
        .await?
        .into_inner();
    // Department-integration is not built yet: answer as it will, on its own stream.
    let database = sunshine_platform::backends::Database::connect(&config.database).await?;
    let store =
        sunshine_eventlog::EventStore::from_database(&database).with_signals(log_signals.clone());
    let answer = pb::VerificationAnswered {
        case_id: case_id.into(),
        department_code: "civil_affairs".into(),
        ..Default::default()
    };
    store
        .append(
            &sunshine_eventlog::StreamId::new("departments", "verification", case_id)?,
            sunshine_eventlog::ExpectedVersion::NoStream,
            &sunshine_eventlog::EventMetadata::default(),
            vec![sunshine_eventlog::NewEvent::typed(case_id, &answer)],
        )
        .await?;
    println!(
        "review: economic-status verification requested (version {}) and answered by civil affairs",
        requested.version
    );
    let mut at_opinion = None;
    for _ in 0..100 {
        let case = review
            .get_case(authorised(
                pb::GetCaseRequest {
                    case_id: case_id.into(),
                },
                &street,
            )?)
            .await?
            .into_inner();
        if case.stage == "preliminary_opinion" {
            at_opinion = Some(case);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let at_opinion = at_opinion.context("verification answer never arrived")?;
    let opinion = review
        .record_opinion(authorised(
            pb::RecordOpinionRequest {
                command_id: "demo-opinion".into(),
                case_id: case_id.into(),
                expected_version: at_opinion.version,
                recommend_approval: true,
                proposed_amount: None,
                opinion: "符合农村低保条件".into(),
                departure_justification: String::new(),
            },
            &street,
        )?)
        .await?
        .into_inner();
    let policy = opinion.policy.clone().unwrap_or_default();
    let amount = policy.amount.as_ref().map_or(0, |money| money.fen);
    println!(
        "review: the street-town recommends approval; the policy engine (version {}…) finds:",
        &policy.policy_version[..12.min(policy.policy_version.len())]
    );
    for line in policy.reasons.iter().take(6) {
        println!("    {line}");
    }
    let publicity = review
        .start_publicity(authorised(
            pb::StartPublicityRequest {
                command_id: "demo-publicity".into(),
                case_id: case_id.into(),
                expected_version: opinion.version,
            },
            &street,
        )?)
        .await?
        .into_inner();
    let decide = |command: &str| pb::DecideRequest {
        command_id: command.into(),
        case_id: case_id.into(),
        expected_version: publicity.version,
        approve: true,
        monthly_amount: Some(pb::Money { fen: amount }),
        start_month: sunshine_review::case::following_month(clock.today())
            .map(|month| month.to_string())
            .unwrap_or_default(),
        reasons: vec!["符合条件".into()],
        departure_justification: String::new(),
        care_institution_code: String::new(),
    };
    if let Err(status) = review
        .decide(authorised(decide("demo-decide-early"), &approver)?)
        .await
    {
        println!(
            "review: a decision during the public notice: {:?}: {}",
            status.code(),
            status.message()
        );
    }
    clock.set(clock.today() + time::Duration::days(8));
    let decided = review
        .decide(authorised(decide("demo-decide"), &approver)?)
        .await?
        .into_inner();
    println!(
        "review: eight days later the district approves: status {}, {}.{:02} yuan a month",
        decided.status,
        amount / 100,
        amount % 100
    );
    database.close().await;
    Ok(())
}
