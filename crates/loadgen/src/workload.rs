//! What the generator sends: tokens, households (registered in an untimed set-up phase) and
//! one application per household, and the gRPC clients that carry them.
//!
//! Each application has a household of its own: intake allows one open application per
//! program and household, and one household per application keeps intake's optimistic
//! concurrency on a household stream out of the measurement.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use sunshine_platform::auth::{Audience, Claims, TokenIssuer};
use sunshine_platform::config::VerifyingKeyConfig;
use sunshine_platform::{Config, Role};
use sunshine_proto::v1 as pb;
use sunshine_proto::v1::intake_service_client::IntakeServiceClient;
use sunshine_proto::v1::review_service_client::ReviewServiceClient;
use tonic::metadata::MetadataValue;
use tonic::transport::{Channel, Endpoint};

/// The example district and one of its villages (`crates/domain/data/example-district.toml`).
pub const DISTRICT: &str = "990101000000";
pub const VILLAGE: &str = "990101001001";

/// Issuer and key id of the generator's tokens: a fresh key per run, trusted only by the
/// services it starts. Neither is a development marker, so no `allow_development_keys` is
/// needed on PostgreSQL.
const ISSUER: &str = "sunshine-loadgen";
const KEY_ID: &str = "loadgen";

/// The run's signing key.
#[derive(Debug)]
pub struct Signer {
    issuer: TokenIssuer,
}

/// The bearer tokens the generator sends, as `authorization` values.
#[derive(Debug, Clone)]
pub struct Tokens {
    /// A village clerk: registers households and submits applications to intake.
    pub clerk: MetadataValue<tonic::metadata::Ascii>,
    /// A district auditor: reads cases from review.
    pub auditor: MetadataValue<tonic::metadata::Ascii>,
}

impl Signer {
    pub fn generate() -> anyhow::Result<Signer> {
        Ok(Signer {
            issuer: TokenIssuer::generate(KEY_ID)?,
        })
    }

    /// Trusts this key, and only it, in `config`.
    pub fn configure(&self, config: &mut Config) {
        config.auth.issuer = ISSUER.into();
        config.auth.keys = vec![VerifyingKeyConfig {
            kid: self.issuer.key_id().into(),
            public_key: self.issuer.public_key_base64(),
        }];
    }

    /// A token for `role` at `org_unit` as `subject`, for `services` under `config`'s
    /// audience, valid for `lifetime`, as an `authorization` value.
    pub fn token(
        &self,
        config: &Config,
        services: &[&str],
        role: Role,
        org_unit: &str,
        subject: &str,
        lifetime: Duration,
    ) -> anyhow::Result<MetadataValue<tonic::metadata::Ascii>> {
        self.sign(config, services, role, org_unit, subject, None, lifetime)
    }

    /// A department system's token (role `department` in the district, naming the
    /// registry's department `department_code`) for `services`, valid for `lifetime`.
    pub fn department_token(
        &self,
        config: &Config,
        services: &[&str],
        department_code: &str,
        lifetime: Duration,
    ) -> anyhow::Result<MetadataValue<tonic::metadata::Ascii>> {
        self.sign(
            config,
            services,
            Role::Department,
            DISTRICT,
            &format!("loadgen-system-{department_code}"),
            Some(department_code),
            lifetime,
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn sign(
        &self,
        config: &Config,
        services: &[&str],
        role: Role,
        org_unit: &str,
        subject: &str,
        department_code: Option<&str>,
        lifetime: Duration,
    ) -> anyhow::Result<MetadataValue<tonic::metadata::Ascii>> {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let claims = Claims {
            iss: ISSUER.into(),
            aud: Audience::many(
                services
                    .iter()
                    .map(|service| config.auth.audience_for(service)),
            ),
            sub: subject.into(),
            exp: now + i64::try_from(lifetime.as_secs()).unwrap_or(3600),
            nbf: None,
            iat: now,
            name: "负载测试".into(),
            role,
            org_unit: org_unit.into(),
            department_code: department_code.map(str::to_owned),
            scopes: Vec::new(),
        };
        Ok(format!("Bearer {}", self.issuer.sign(&claims)).parse()?)
    }

    /// Tokens for intake and review under `config`'s audience, valid for `lifetime`.
    pub fn tokens(&self, config: &Config, lifetime: Duration) -> anyhow::Result<Tokens> {
        let services = ["intake", "review"];
        let sign = |role: Role, org_unit: &str, subject: &str| {
            self.token(config, &services, role, org_unit, subject, lifetime)
        };
        Ok(Tokens {
            clerk: sign(Role::VillageClerk, VILLAGE, "loadgen-clerk")?,
            auditor: sign(Role::Auditor, DISTRICT, "loadgen-auditor")?,
        })
    }
}

/// `message` with the bearer token `token`.
pub fn with_token<T>(
    message: T,
    token: &MetadataValue<tonic::metadata::Ascii>,
) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request
        .metadata_mut()
        .insert("authorization", token.clone());
    request
}

/// A pool of HTTP/2 connections to intake and to review, handed out round-robin.
#[derive(Debug, Clone)]
pub struct Clients {
    intake: Arc<Vec<IntakeServiceClient<Channel>>>,
    review: Arc<Vec<ReviewServiceClient<Channel>>>,
    next: Arc<AtomicUsize>,
}

impl Clients {
    /// `connections` connections to each address.
    pub async fn connect(
        intake: std::net::SocketAddr,
        review: std::net::SocketAddr,
        connections: usize,
    ) -> anyhow::Result<Clients> {
        let mut intake_clients = Vec::new();
        let mut review_clients = Vec::new();
        for _ in 0..connections.max(1) {
            intake_clients.push(IntakeServiceClient::new(connect(intake).await?));
            review_clients.push(ReviewServiceClient::new(connect(review).await?));
        }
        Ok(Clients {
            intake: Arc::new(intake_clients),
            review: Arc::new(review_clients),
            next: Arc::new(AtomicUsize::new(0)),
        })
    }

    fn pick(&self) -> usize {
        self.next.fetch_add(1, Ordering::Relaxed)
    }

    pub fn intake(&self) -> IntakeServiceClient<Channel> {
        self.intake[self.pick() % self.intake.len()].clone()
    }

    pub fn review(&self) -> ReviewServiceClient<Channel> {
        self.review[self.pick() % self.review.len()].clone()
    }
}

async fn connect(address: std::net::SocketAddr) -> anyhow::Result<Channel> {
    Endpoint::from_shared(format!("http://{address}"))?
        .tcp_nodelay(true)
        .connect_timeout(Duration::from_secs(5))
        .connect()
        .await
        .with_context(|| format!("connecting to {address}"))
}

/// A registered household and the member who applies.
#[derive(Debug, Clone)]
pub struct Household {
    pub household_id: String,
    pub applicant_member_id: String,
}

/// Numbers the run's households, so every registration has its own people and command id.
#[derive(Debug, Default)]
pub struct HouseholdNumbers(AtomicU64);

impl HouseholdNumbers {
    fn next(&self) -> u64 {
        self.0.fetch_add(1, Ordering::Relaxed)
    }
}

/// A valid GB 11643 id in the example district, distinct for every `number` below about 10⁷:
/// birth dates from 1940-01-01, 999 sequence numbers per day.
pub fn national_id(number: u64) -> anyhow::Result<String> {
    let birth = birth_date(number)?;
    let sequence = number % 999 + 1;
    let body = format!(
        "990101{:04}{:02}{:02}{sequence:03}",
        birth.year(),
        u8::from(birth.month()),
        birth.day()
    );
    sunshine_domain::NationalId::with_check_character(&body).context("an id body of 17 digits")
}

/// The birth date of household `number`'s member (the id number carries it too).
fn birth_date(number: u64) -> anyhow::Result<time::Date> {
    let base = time::macros::date!(1940 - 01 - 01);
    let days = i64::try_from(number / 999)?;
    base.checked_add(time::Duration::days(days))
        .context("birth date out of range")
}

/// A one-person household in the village, with an income below the line.
pub fn registration(number: u64, run_tag: &str) -> anyhow::Result<pb::RegisterHouseholdRequest> {
    let id = national_id(number)?;
    let birth = birth_date(number)?;
    Ok(pb::RegisterHouseholdRequest {
        command_id: format!("loadgen-{run_tag}-register-{number}"),
        hukou_org_unit_code: VILLAGE.into(),
        address: "示例区东城街道幸福里3号".into(),
        members: vec![pb::MemberInput {
            name: "王建国".into(),
            national_id: id,
            relation: pb::Relation::Head as i32,
            birth_date: Some(pb::Date {
                year: birth.year(),
                month: i32::from(u8::from(birth.month())),
                day: i32::from(birth.day()),
            }),
            hukou_type: pb::HukouType::Rural as i32,
            phone: "13812345678".into(),
            resident_since: Some(pb::Date {
                year: 1990,
                month: 1,
                day: 1,
            }),
            monthly_income: vec![pb::IncomeItem {
                kind: "wages".into(),
                monthly_amount: Some(pb::Money { fen: 30_000 }),
            }],
            ..Default::default()
        }],
        assets: Some(pb::Assets {
            financial_assets: Some(pb::Money { fen: 500_000 }),
            ..Default::default()
        }),
        payment_account: Some(pb::PaymentAccount {
            bank: "示例农商银行".into(),
            account_number: "6222020200112233".into(),
            holder_name: "王建国".into(),
        }),
    })
}

/// A rural dibao application (routed to review) for `household`, with every required document.
pub fn application(household: &Household, command_id: String) -> pb::SubmitApplicationRequest {
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
        size_bytes: 1024,
    })
    .collect();
    pb::SubmitApplicationRequest {
        command_id,
        household_id: household.household_id.clone(),
        applicant_member_id: household.applicant_member_id.clone(),
        program_code: "dibao_rural".into(),
        channel: pb::ApplicationChannel::InPerson as i32,
        declared_facts: [("illness".to_owned(), "长期卧床".to_owned())].into(),
        consent_to_verification: true,
        notify_and_pledge_accepted: true,
        documents,
    }
}

/// Registers `count` fresh households, `concurrency` at a time (untimed set-up).
pub async fn register_households(
    clients: &Clients,
    tokens: &Tokens,
    numbers: &HouseholdNumbers,
    run_tag: &str,
    count: usize,
    concurrency: usize,
) -> anyhow::Result<Vec<Household>> {
    let mut households = Vec::with_capacity(count);
    let mut pending = futures::stream::FuturesUnordered::new();
    let mut started = 0;
    use futures::StreamExt as _;
    while households.len() < count {
        while started < count && pending.len() < concurrency.max(1) {
            let request = registration(numbers.next(), run_tag)?;
            let mut client = clients.intake();
            let token = tokens.clerk.clone();
            pending.push(async move {
                let answer = client
                    .register_household(with_token(request, &token))
                    .await
                    .context("RegisterHousehold")?
                    .into_inner();
                let applicant_member_id = answer
                    .member_ids
                    .first()
                    .cloned()
                    .context("a registration without members")?;
                anyhow::Ok(Household {
                    household_id: answer.household_id,
                    applicant_member_id,
                })
            });
            started += 1;
        }
        match pending.next().await {
            Some(household) => households.push(household?),
            None => break,
        }
    }
    Ok(households)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn national_ids_are_valid_and_distinct() {
        let mut seen = std::collections::BTreeSet::new();
        for number in [0, 1, 998, 999, 1000, 50_000, 123_456] {
            let id = national_id(number).unwrap();
            assert!(sunshine_domain::NationalId::parse(&id).is_ok(), "{id}");
            assert!(seen.insert(id));
        }
    }
}
