//! Identity: who is calling, proven by a signed bearer token, and what they may do.
//!
//! Tokens are compact JWTs signed with Ed25519 (`alg` = `EdDSA`). The header's `kid` picks the
//! verifying key, so keys can be rotated by publishing the new key beside the old one. Claims
//! give the subject, display name, [`Role`], org unit and, for departments, the department code
//! and scopes. Nothing else is trusted:
//! - the algorithm is fixed (no `alg` negotiation) and signatures are verified strictly
//!   (`verify_strict`); weak (small-order) and mixed-order verifying keys are refused when the
//!   configuration is validated, so no fixed signature can verify for them;
//! - the issuer must match, and the audience must name the service: a token is accepted by
//!   intake only if its `aud` (a string or an array of strings) holds `<auth.audience>/intake`;
//! - `exp` and `iat` are required and bounded: expired beyond the leeway, issued in the future
//!   beyond the leeway, or living longer than `auth.max_token_lifetime_seconds` is refused;
//! - a role is valid only at its tier ([`Role::tier`]): a village clerk's token must name a
//!   village or community, a district officer's the district.
//!
//! [`AuthInterceptor`] verifies the token of every RPC of a protected service and puts the
//! [`Identity`] into the request's extensions; handlers take it with [`identity`].
//!
//! A client sends the same token with every call until it expires, so the verifier remembers
//! the tokens whose signature and claims it has checked (by their exact bytes, at most
//! [`VERIFIED_TOKENS_REMEMBERED`]): a token seen again skips the signature and the parsing,
//! never the clock (expiry, not-before and issued-at are checked again on every call).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use sunshine_domain::{OrgTier, OrgUnitCode};
use time::OffsetDateTime;
use tonic::Status;
use tonic::service::Interceptor;

use crate::config::AuthConfig;
use crate::error::ApiError;

/// What an officer or caller may do (the token's `role` claim).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// 村居 clerk at a village or community service point.
    VillageClerk,
    /// Reviewer at a street or town service station (街镇).
    StreetReviewer,
    /// Reviewer at the district service center.
    CenterReviewer,
    /// Approver at the district service center.
    CenterApprover,
    FinanceOfficer,
    FinanceApprover,
    /// Discipline-inspection (纪委) and other auditors: read-only, everything.
    Auditor,
    /// A department system calling through department-integration.
    Department,
    Admin,
}

impl Role {
    pub const ALL: [Role; 9] = [
        Role::VillageClerk,
        Role::StreetReviewer,
        Role::CenterReviewer,
        Role::CenterApprover,
        Role::FinanceOfficer,
        Role::FinanceApprover,
        Role::Auditor,
        Role::Department,
        Role::Admin,
    ];

    /// The claim value, e.g. `village_clerk`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::VillageClerk => "village_clerk",
            Role::StreetReviewer => "street_reviewer",
            Role::CenterReviewer => "center_reviewer",
            Role::CenterApprover => "center_approver",
            Role::FinanceOfficer => "finance_officer",
            Role::FinanceApprover => "finance_approver",
            Role::Auditor => "auditor",
            Role::Department => "department",
            Role::Admin => "admin",
        }
    }

    pub fn parse(text: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|role| role.as_str() == text)
    }

    /// The one tier whose org units may hold this role: a token naming another tier is refused,
    /// so a clerk's token cannot carry the district's code and read the whole district.
    pub fn tier(self) -> OrgTier {
        match self {
            Role::VillageClerk => OrgTier::VillageCommunity,
            Role::StreetReviewer => OrgTier::StreetTown,
            Role::CenterReviewer
            | Role::CenterApprover
            | Role::FinanceOfficer
            | Role::FinanceApprover
            | Role::Auditor
            | Role::Department
            | Role::Admin => OrgTier::District,
        }
    }

    /// The protobuf enum value of this role.
    pub fn to_proto(self) -> sunshine_proto::v1::Role {
        use sunshine_proto::v1::Role as Proto;
        match self {
            Role::VillageClerk => Proto::VillageClerk,
            Role::StreetReviewer => Proto::StreetReviewer,
            Role::CenterReviewer => Proto::CenterReviewer,
            Role::CenterApprover => Proto::CenterApprover,
            Role::FinanceOfficer => Proto::FinanceOfficer,
            Role::FinanceApprover => Proto::FinanceApprover,
            Role::Auditor => Proto::Auditor,
            Role::Department => Proto::Department,
            Role::Admin => Proto::Admin,
        }
    }
}

/// Issuer of the tokens `sunshine dev-token` signs (and that `sunshine dev-init` trusts). With a
/// PostgreSQL database, configuration naming it is refused unless
/// `auth.allow_development_keys` is set.
pub const DEVELOPMENT_ISSUER: &str = "sunshine-dev";

/// Whether `key_id` marks a development key: `dev` (what `sunshine dev-init` writes) or
/// `dev-…`. Such keys are refused with a PostgreSQL database unless
/// `auth.allow_development_keys` is set.
pub fn is_development_key_id(key_id: &str) -> bool {
    let key_id = key_id.trim().to_ascii_lowercase();
    key_id == "dev" || key_id.starts_with("dev-")
}

/// Whether `issuer` is [`DEVELOPMENT_ISSUER`] (ignoring case and surrounding space).
pub fn is_development_issuer(issuer: &str) -> bool {
    issuer.trim().eq_ignore_ascii_case(DEVELOPMENT_ISSUER)
}

/// The `aud` claim: the services a token is meant for, each `<auth.audience>/<service name>`
/// (e.g. `sunshine/intake`). JWT (RFC 7519 §4.1.3) allows a string or an array of strings; both
/// are read, and one audience is written as a string.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "AudienceForm", into = "AudienceForm")]
pub struct Audience(Vec<String>);

#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum AudienceForm {
    One(String),
    Many(Vec<String>),
}

impl From<AudienceForm> for Audience {
    fn from(form: AudienceForm) -> Self {
        match form {
            AudienceForm::One(audience) => Audience(vec![audience]),
            AudienceForm::Many(audiences) => Audience(audiences),
        }
    }
}

impl From<Audience> for AudienceForm {
    fn from(audience: Audience) -> Self {
        let Audience(mut audiences) = audience;
        if audiences.len() == 1
            && let Some(only) = audiences.pop()
        {
            return AudienceForm::One(only);
        }
        AudienceForm::Many(audiences)
    }
}

impl Audience {
    pub fn one(audience: impl Into<String>) -> Self {
        Audience(vec![audience.into()])
    }

    pub fn many<I, S>(audiences: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Audience(audiences.into_iter().map(Into::into).collect())
    }

    /// The audience of `service_name` under the configured base audience, e.g.
    /// `sunshine/intake`.
    pub fn of_service(base_audience: &str, service_name: &str) -> String {
        format!("{base_audience}/{service_name}")
    }

    pub fn contains(&self, audience: &str) -> bool {
        self.0.iter().any(|candidate| candidate == audience)
    }

    pub fn values(&self) -> &[String] {
        &self.0
    }
}

impl From<&str> for Audience {
    fn from(audience: &str) -> Self {
        Audience::one(audience)
    }
}

impl From<String> for Audience {
    fn from(audience: String) -> Self {
        Audience::one(audience)
    }
}

/// Latest instant a token's `exp`, `iat` or `nbf` may name: 9999-12-31T23:59:59Z. Anything
/// later is refused before any arithmetic, so adding the leeway can never overflow.
const LATEST_TIMESTAMP: i64 = 253_402_300_799;

/// The claims of a token, as signed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    /// The services the token is meant for (`<auth.audience>/<service name>`).
    pub aud: Audience,
    pub sub: String,
    /// Expiry, seconds since the Unix epoch. Required.
    pub exp: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    /// Issued at, seconds since the Unix epoch. Required: `exp - iat` may not exceed
    /// `auth.max_token_lifetime_seconds`.
    pub iat: i64,
    /// Display name of the officer or system.
    pub name: String,
    pub role: Role,
    /// 12-digit statistical division code of the caller's org unit.
    pub org_unit: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub department_code: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scopes: Vec<String>,
}

/// A verified caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub subject: String,
    pub display_name: String,
    pub role: Role,
    pub org_unit: OrgUnitCode,
    pub department_code: Option<String>,
    pub scopes: Vec<String>,
}

impl Identity {
    /// `PERMISSION_DENIED` unless the caller has one of `allowed`.
    pub fn require_role(&self, allowed: &[Role]) -> Result<(), ApiError> {
        if allowed.contains(&self.role) {
            return Ok(());
        }
        let names: Vec<&str> = allowed.iter().map(|role| role.as_str()).collect();
        Err(ApiError::PermissionDenied(format!(
            "role {} may not do this; allowed: {}",
            self.role.as_str(),
            names.join(", ")
        )))
    }

    /// `PERMISSION_DENIED` unless the caller's org unit is `target` or above it (a district
    /// officer covers the district, a street-town its villages, a village itself).
    pub fn require_org_scope(&self, target: &OrgUnitCode) -> Result<(), ApiError> {
        if self.org_unit.covers(target) {
            return Ok(());
        }
        Err(ApiError::PermissionDenied(format!(
            "org unit {} is outside the caller's org unit {}",
            target.as_str(),
            self.org_unit.as_str()
        )))
    }

    pub fn to_proto(&self) -> sunshine_proto::v1::Actor {
        sunshine_proto::v1::Actor {
            subject: self.subject.clone(),
            display_name: self.display_name.clone(),
            role: self.role.to_proto() as i32,
            org_unit_code: self.org_unit.as_str().to_owned(),
            department_code: self.department_code.clone().unwrap_or_default(),
            scopes: self.scopes.clone(),
        }
    }
}

/// Why a token was not accepted. Every variant is `UNAUTHENTICATED` for the caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("missing bearer token in the authorization metadata")]
    MissingToken,
    #[error("malformed token: {0}")]
    Malformed(&'static str),
    #[error("unsupported token algorithm; only EdDSA is accepted")]
    UnsupportedAlgorithm,
    #[error("unknown signing key id")]
    UnknownKey,
    #[error("bad token signature")]
    BadSignature,
    #[error("token expired")]
    Expired,
    #[error("token not yet valid")]
    NotYetValid,
    #[error("token issued in the future")]
    IssuedInTheFuture,
    #[error("token lifetime exceeds the maximum of {max_seconds} seconds")]
    LifetimeTooLong { max_seconds: i64 },
    #[error("token issuer or audience does not match")]
    WrongIssuerOrAudience,
    #[error("invalid claim {0}")]
    InvalidClaim(&'static str),
    #[error("role {role} is valid only at a {tier} org unit")]
    RoleOutsideItsTier { role: &'static str, tier: OrgTier },
}

impl From<AuthError> for ApiError {
    fn from(error: AuthError) -> Self {
        ApiError::Unauthenticated(error.to_string())
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Header {
    alg: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    typ: Option<String>,
    #[serde(default)]
    kid: Option<String>,
}

/// How many verified tokens a verifier remembers; when full it forgets them all and starts
/// again (a district has a few thousand officers, each with one live token at a time).
pub const VERIFIED_TOKENS_REMEMBERED: usize = 8_192;

/// Checks tokens meant for one service against the configured verifying keys.
#[derive(Debug, Clone)]
pub struct TokenVerifier {
    issuer: String,
    /// `<auth.audience>/<service name>`: the one audience this service accepts.
    audience: String,
    leeway_seconds: i64,
    max_lifetime_seconds: i64,
    keys: HashMap<String, VerifyingKey>,
    /// Tokens whose signature and claims passed, by their exact text, with what they proved.
    verified: Arc<Mutex<HashMap<String, Arc<VerifiedToken>>>>,
}

/// What a verified token proved: the claims (for the clock checks on every use) and the
/// identity they give.
#[derive(Debug)]
struct VerifiedToken {
    claims: Claims,
    identity: Identity,
}

impl TokenVerifier {
    /// The verifier of the service called `service_name`, from validated configuration (keys
    /// are checked again here, so a weak key is refused even if validation was skipped).
    pub fn from_config(config: &AuthConfig, service_name: &str) -> Result<Self, KeyError> {
        let mut keys = HashMap::new();
        for key in &config.keys {
            keys.insert(key.kid.clone(), decode_verifying_key(&key.public_key)?);
        }
        Ok(TokenVerifier {
            issuer: config.issuer.clone(),
            audience: Audience::of_service(&config.audience, service_name),
            leeway_seconds: i64::from(config.leeway_seconds),
            max_lifetime_seconds: i64::from(config.max_token_lifetime_seconds),
            keys,
            verified: Arc::default(),
        })
    }

    /// The audience a token must carry to be accepted here, e.g. `sunshine/intake`.
    pub fn audience(&self) -> &str {
        &self.audience
    }

    /// Verifies `token` at `now` and returns the caller's identity. A token verified before
    /// is checked again only against the clock.
    pub fn verify(&self, token: &str, now: OffsetDateTime) -> Result<Identity, AuthError> {
        let remembered = self.remembered().get(token).cloned();
        if let Some(verified) = remembered {
            self.check_times(&verified.claims, now.unix_timestamp())?;
            return Ok(verified.identity.clone());
        }
        let (claims, identity) = self.verify_in_full(token, now)?;
        let mut remembered = self.remembered();
        if remembered.len() >= VERIFIED_TOKENS_REMEMBERED {
            remembered.clear();
        }
        remembered.insert(
            token.to_owned(),
            Arc::new(VerifiedToken {
                claims,
                identity: identity.clone(),
            }),
        );
        Ok(identity)
    }

    /// Verifies `token` at `now` from scratch (signature, claims, clock), remembering nothing:
    /// what [`TokenVerifier::verify`] does for a token it has not seen.
    pub fn verify_uncached(&self, token: &str, now: OffsetDateTime) -> Result<Identity, AuthError> {
        self.verify_in_full(token, now)
            .map(|(_, identity)| identity)
    }

    fn remembered(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<VerifiedToken>>> {
        // A panic while holding the lock leaves only a map of verified tokens behind: use it.
        self.verified
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn verify_in_full(
        &self,
        token: &str,
        now: OffsetDateTime,
    ) -> Result<(Claims, Identity), AuthError> {
        let mut parts = token.split('.');
        let (Some(header_part), Some(claims_part), Some(signature_part), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(AuthError::Malformed("expected three dot-separated parts"));
        };
        let header_bytes = URL_SAFE_NO_PAD
            .decode(header_part)
            .map_err(|_| AuthError::Malformed("header is not base64url"))?;
        let header: Header = serde_json::from_slice(&header_bytes)
            .map_err(|_| AuthError::Malformed("header is not JSON"))?;
        if header.alg != "EdDSA" {
            return Err(AuthError::UnsupportedAlgorithm);
        }
        let key_id = header
            .kid
            .ok_or(AuthError::Malformed("header has no kid"))?;
        let verifying_key = self.keys.get(&key_id).ok_or(AuthError::UnknownKey)?;
        let signature_bytes = URL_SAFE_NO_PAD
            .decode(signature_part)
            .map_err(|_| AuthError::Malformed("signature is not base64url"))?;
        let signature = Signature::from_slice(&signature_bytes)
            .map_err(|_| AuthError::Malformed("signature has the wrong length"))?;
        let signed_len = header_part.len() + 1 + claims_part.len();
        // Weak keys are refused at start-up; checked again because under one a fixed signature
        // verifies for every message. `verify_strict` also refuses small-order `R` components.
        if verifying_key.is_weak() {
            return Err(AuthError::BadSignature);
        }
        verifying_key
            .verify_strict(&token.as_bytes()[..signed_len], &signature)
            .map_err(|_| AuthError::BadSignature)?;

        let claims_bytes = URL_SAFE_NO_PAD
            .decode(claims_part)
            .map_err(|_| AuthError::Malformed("claims are not base64url"))?;
        let claims: Claims = serde_json::from_slice(&claims_bytes)
            .map_err(|_| AuthError::Malformed("claims are not the expected JSON"))?;
        if claims.iss != self.issuer || !claims.aud.contains(&self.audience) {
            return Err(AuthError::WrongIssuerOrAudience);
        }
        self.check_times(&claims, now.unix_timestamp())?;
        if claims.sub.trim().is_empty() {
            return Err(AuthError::InvalidClaim("sub"));
        }
        let org_unit = OrgUnitCode::parse(&claims.org_unit)
            .map_err(|_| AuthError::InvalidClaim("org_unit"))?;
        let role_tier = claims.role.tier();
        if org_unit.tier() != role_tier {
            return Err(AuthError::RoleOutsideItsTier {
                role: claims.role.as_str(),
                tier: role_tier,
            });
        }
        if claims.role == Role::Department && claims.department_code.is_none() {
            return Err(AuthError::InvalidClaim("department_code"));
        }
        let identity = Identity {
            subject: claims.sub.clone(),
            display_name: claims.name.clone(),
            role: claims.role,
            org_unit,
            department_code: claims.department_code.clone(),
            scopes: claims.scopes.clone(),
        };
        Ok((claims, identity))
    }
}

impl TokenVerifier {
    /// Expiry, not-before, issued-at and lifetime, with the leeway on each side. Timestamps
    /// outside 1970..=9999 are refused first; the arithmetic saturates regardless.
    fn check_times(&self, claims: &Claims, now_seconds: i64) -> Result<(), AuthError> {
        let in_range = |seconds: i64| (0..=LATEST_TIMESTAMP).contains(&seconds);
        if !in_range(claims.exp) {
            return Err(AuthError::InvalidClaim("exp"));
        }
        if !in_range(claims.iat) {
            return Err(AuthError::InvalidClaim("iat"));
        }
        if let Some(not_before) = claims.nbf
            && !in_range(not_before)
        {
            return Err(AuthError::InvalidClaim("nbf"));
        }
        if now_seconds > claims.exp.saturating_add(self.leeway_seconds) {
            return Err(AuthError::Expired);
        }
        if let Some(not_before) = claims.nbf
            && now_seconds.saturating_add(self.leeway_seconds) < not_before
        {
            return Err(AuthError::NotYetValid);
        }
        if claims.iat > now_seconds.saturating_add(self.leeway_seconds) {
            return Err(AuthError::IssuedInTheFuture);
        }
        let Some(lifetime) = claims.exp.checked_sub(claims.iat) else {
            return Err(AuthError::InvalidClaim("exp"));
        };
        if lifetime < 0 {
            return Err(AuthError::InvalidClaim("exp"));
        }
        if lifetime > self.max_lifetime_seconds {
            return Err(AuthError::LifetimeTooLong {
                max_seconds: self.max_lifetime_seconds,
            });
        }
        Ok(())
    }
}

/// Signs tokens: used by the development token command, the demo and the tests. Production
/// tokens come from the district's identity provider, signed with a key it holds.
#[derive(Debug)]
pub struct TokenIssuer {
    key_id: String,
    signing_key: SigningKey,
}

impl TokenIssuer {
    pub fn new(key_id: impl Into<String>, signing_key: SigningKey) -> Self {
        TokenIssuer {
            key_id: key_id.into(),
            signing_key,
        }
    }

    /// A fresh random key.
    pub fn generate(key_id: impl Into<String>) -> Result<Self, KeyError> {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|_| KeyError::Random)?;
        Ok(TokenIssuer::new(key_id, SigningKey::from_bytes(&seed)))
    }

    /// From the base64 of the 32-byte Ed25519 seed.
    pub fn from_base64_seed(
        key_id: impl Into<String>,
        seed_base64: &str,
    ) -> Result<Self, KeyError> {
        let bytes = STANDARD
            .decode(seed_base64.trim())
            .map_err(|_| KeyError::NotBase64)?;
        let seed: [u8; 32] = bytes.try_into().map_err(|_| KeyError::WrongLength)?;
        Ok(TokenIssuer::new(key_id, SigningKey::from_bytes(&seed)))
    }

    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// Base64 of the 32-byte seed, for a development key file.
    pub fn seed_base64(&self) -> String {
        STANDARD.encode(self.signing_key.to_bytes())
    }

    /// Base64 of the 32-byte public key, as `auth.keys[].public_key` expects.
    pub fn public_key_base64(&self) -> String {
        STANDARD.encode(self.signing_key.verifying_key().to_bytes())
    }

    pub fn sign(&self, claims: &Claims) -> String {
        let header = Header {
            alg: "EdDSA".into(),
            typ: Some("JWT".into()),
            kid: Some(self.key_id.clone()),
        };
        // Serialising these plain structs cannot fail.
        let header_json = serde_json::to_vec(&header).unwrap_or_default();
        let claims_json = serde_json::to_vec(claims).unwrap_or_default();
        let mut token = URL_SAFE_NO_PAD.encode(header_json);
        token.push('.');
        token.push_str(&URL_SAFE_NO_PAD.encode(claims_json));
        let signature = self.signing_key.sign(token.as_bytes());
        token.push('.');
        token.push_str(&URL_SAFE_NO_PAD.encode(signature.to_bytes()));
        token
    }
}

/// A key in configuration that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("key is not base64")]
    NotBase64,
    #[error("key must be 32 bytes")]
    WrongLength,
    #[error("not a valid Ed25519 public key")]
    InvalidKey,
    #[error(
        "a weak (small-order) Ed25519 key: a fixed signature would verify for any token under it"
    )]
    WeakKey,
    #[error("not a prime-order Ed25519 public key (it has a small-order component)")]
    MixedOrderKey,
    #[error("no randomness available to generate a key")]
    Random,
}

pub(crate) fn decode_verifying_key(public_key_base64: &str) -> Result<VerifyingKey, KeyError> {
    let bytes = STANDARD
        .decode(public_key_base64.trim())
        .map_err(|_| KeyError::NotBase64)?;
    let raw: [u8; 32] = bytes.try_into().map_err(|_| KeyError::WrongLength)?;
    let key = VerifyingKey::from_bytes(&raw).map_err(|_| KeyError::InvalidKey)?;
    // An honest key is a multiple of the base point, of prime order. A small-order key (the
    // identity, the all-zero bytes, the other torsion points, in any encoding) lets anyone
    // forge; a mixed-order one cannot come from a real signing key, so it is refused too.
    // (Every non-canonical encoding decodes to one of the two.)
    if key.is_weak() {
        return Err(KeyError::WeakKey);
    }
    if !key.to_edwards().is_torsion_free() {
        return Err(KeyError::MixedOrderKey);
    }
    Ok(key)
}

/// Verifies the bearer token of every call to the service it wraps and stores the
/// [`Identity`] in the request extensions. Health and reflection are not wrapped, so that
/// probes need no token.
#[derive(Debug, Clone)]
pub struct AuthInterceptor {
    verifier: Arc<TokenVerifier>,
}

impl AuthInterceptor {
    pub fn new(verifier: Arc<TokenVerifier>) -> Self {
        AuthInterceptor { verifier }
    }
}

impl Interceptor for AuthInterceptor {
    fn call(&mut self, mut request: tonic::Request<()>) -> Result<tonic::Request<()>, Status> {
        let token = bearer_token(request.metadata()).map_err(ApiError::from)?;
        let identity = self
            .verifier
            .verify(token, OffsetDateTime::now_utc())
            .map_err(|error| {
                tracing::info!(reason = %error, "rejected bearer token");
                ApiError::from(error)
            })?;
        request.extensions_mut().insert(identity);
        Ok(request)
    }
}

fn bearer_token(metadata: &tonic::metadata::MetadataMap) -> Result<&str, AuthError> {
    let value = metadata
        .get("authorization")
        .ok_or(AuthError::MissingToken)?;
    let text = value
        .to_str()
        .map_err(|_| AuthError::Malformed("authorization is not ASCII"))?;
    let token = text
        .strip_prefix("Bearer ")
        .or_else(|| text.strip_prefix("bearer "))
        .ok_or(AuthError::MissingToken)?;
    Ok(token.trim())
}

/// The verified caller of a request that passed through [`AuthInterceptor`].
pub fn identity<T>(request: &tonic::Request<T>) -> Result<&Identity, ApiError> {
    request
        .extensions()
        .get::<Identity>()
        .ok_or_else(|| ApiError::Unauthenticated("no verified identity on the request".into()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::config::VerifyingKeyConfig;

    const DISTRICT: &str = "990101000000";
    const STREET_TOWN: &str = "990101001000";
    const VILLAGE: &str = "990101001002";
    const SERVICE: &str = "intake";

    /// An org unit of `tier` in the example district.
    fn org_unit_at(tier: OrgTier) -> &'static str {
        match tier {
            OrgTier::District => DISTRICT,
            OrgTier::StreetTown => STREET_TOWN,
            OrgTier::VillageCommunity => VILLAGE,
        }
    }

    fn claims(now: OffsetDateTime, role: Role) -> Claims {
        Claims {
            iss: "sunshine-test".into(),
            aud: Audience::one("sunshine/intake"),
            sub: "officer-1".into(),
            exp: now.unix_timestamp() + 600,
            nbf: None,
            iat: now.unix_timestamp(),
            name: "张三".into(),
            role,
            org_unit: org_unit_at(role.tier()).into(),
            department_code: (role == Role::Department).then(|| "civil_affairs".into()),
            scopes: vec![],
        }
    }

    fn auth_config(issuers: &[&TokenIssuer]) -> AuthConfig {
        AuthConfig {
            issuer: "sunshine-test".into(),
            audience: "sunshine".into(),
            leeway_seconds: 30,
            keys: issuers
                .iter()
                .map(|issuer| VerifyingKeyConfig {
                    kid: issuer.key_id().into(),
                    public_key: issuer.public_key_base64(),
                })
                .collect(),
            ..AuthConfig::default()
        }
    }

    fn verifier_for(issuers: &[&TokenIssuer]) -> TokenVerifier {
        TokenVerifier::from_config(&auth_config(issuers), SERVICE).unwrap()
    }

    fn hex_bytes(hex: &str) -> [u8; 32] {
        let mut bytes = [0u8; 32];
        for (index, byte) in bytes.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&hex[2 * index..2 * index + 2], 16).unwrap();
        }
        bytes
    }

    /// The compressed identity point: y = 1, x = 0.
    const IDENTITY_POINT: [u8; 32] = {
        let mut bytes = [0u8; 32];
        bytes[0] = 1;
        bytes
    };

    /// The eight points of small order (the torsion subgroup), canonically encoded.
    const SMALL_ORDER_POINTS: [&str; 8] = [
        // order 1: the identity
        "0100000000000000000000000000000000000000000000000000000000000000",
        // order 2: y = -1
        "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
        // order 4: y = 0 (the all-zero key) and its negation
        "0000000000000000000000000000000000000000000000000000000000000000",
        "0000000000000000000000000000000000000000000000000000000000000080",
        // order 8
        "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
        "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85",
        "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
        "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa",
    ];

    /// Non-canonical encodings of small-order points: the identity with the sign bit set, and
    /// y = p + 1 (which is 1) and y = p (which is 0).
    const NON_CANONICAL_SMALL_ORDER_POINTS: [&str; 3] = [
        "0100000000000000000000000000000000000000000000000000000000000080",
        "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
        "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    ];

    #[test]
    fn a_signed_token_verifies_and_gives_the_identity() {
        let issuer = TokenIssuer::generate("k1").unwrap();
        let now = OffsetDateTime::now_utc();
        let token = issuer.sign(&claims(now, Role::CenterApprover));
        let identity = verifier_for(&[&issuer]).verify(&token, now).unwrap();
        assert_eq!(identity.role, Role::CenterApprover);
        assert_eq!(identity.display_name, "张三");
        assert_eq!(identity.org_unit.as_str(), DISTRICT);
    }

    #[test]
    fn rotated_keys_are_picked_by_kid() {
        let old = TokenIssuer::generate("2026-01").unwrap();
        let new = TokenIssuer::generate("2026-07").unwrap();
        let verifier = verifier_for(&[&old, &new]);
        let now = OffsetDateTime::now_utc();
        assert!(
            verifier
                .verify(&old.sign(&claims(now, Role::Auditor)), now)
                .is_ok()
        );
        assert!(
            verifier
                .verify(&new.sign(&claims(now, Role::Auditor)), now)
                .is_ok()
        );
        let stranger = TokenIssuer::generate("2026-07").unwrap();
        assert_eq!(
            verifier.verify(&stranger.sign(&claims(now, Role::Auditor)), now),
            Err(AuthError::BadSignature)
        );
    }

    #[test]
    fn expired_tampered_and_foreign_tokens_are_rejected() {
        let issuer = TokenIssuer::generate("k1").unwrap();
        let verifier = verifier_for(&[&issuer]);
        let now = OffsetDateTime::now_utc();
        let token = issuer.sign(&claims(now, Role::VillageClerk));
        let later = now + time::Duration::hours(1);
        assert_eq!(verifier.verify(&token, later), Err(AuthError::Expired));

        let mut tampered_claims = claims(now, Role::VillageClerk);
        tampered_claims.role = Role::Admin;
        let forged_body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&tampered_claims).unwrap());
        let mut parts: Vec<&str> = token.split('.').collect();
        parts[1] = &forged_body;
        assert_eq!(
            verifier.verify(&parts.join("."), now),
            Err(AuthError::BadSignature)
        );

        let unsigned_header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","kid":"k1"}"#);
        let none_token = format!("{unsigned_header}.{}.", token.split('.').nth(1).unwrap());
        assert_eq!(
            verifier.verify(&none_token, now),
            Err(AuthError::UnsupportedAlgorithm)
        );

        let mut other_audience = claims(now, Role::VillageClerk);
        other_audience.aud = "another-system".into();
        assert_eq!(
            verifier.verify(&issuer.sign(&other_audience), now),
            Err(AuthError::WrongIssuerOrAudience)
        );
        assert!(matches!(
            verifier.verify("not-a-token", now),
            Err(AuthError::Malformed(_))
        ));
    }

    #[test]
    fn department_tokens_need_a_department_code() {
        let issuer = TokenIssuer::generate("k1").unwrap();
        let now = OffsetDateTime::now_utc();
        let mut department = claims(now, Role::Department);
        department.department_code = None;
        assert_eq!(
            verifier_for(&[&issuer]).verify(&issuer.sign(&department), now),
            Err(AuthError::InvalidClaim("department_code"))
        );
    }

    // Item 4: forged tokens under weak keys.

    #[test]
    fn a_forged_admin_token_under_the_identity_key_is_refused() {
        // Under the identity point A, R = [s]B - [k]A = [s]B whatever the message: the
        // signature (R = identity, s = 0) verifies for every token without strict checks.
        let identity_key = VerifyingKey::from_bytes(&IDENTITY_POINT).unwrap();
        let mut crafted = [0u8; 64];
        crafted[..32].copy_from_slice(&IDENTITY_POINT);
        let signature = Signature::from_bytes(&crafted);

        let now = OffsetDateTime::now_utc();
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"EdDSA","typ":"JWT","kid":"careless"}"#);
        let body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims(now, Role::Admin)).unwrap());
        let signed = format!("{header}.{body}");
        let forged = format!("{signed}.{}", URL_SAFE_NO_PAD.encode(crafted));
        // The hole: plain (RFC 8032 cofactorless) verification accepts the forgery; strict
        // verification does not.
        assert!(
            ed25519_dalek::Verifier::verify(&identity_key, signed.as_bytes(), &signature).is_ok()
        );
        assert!(
            identity_key
                .verify_strict(signed.as_bytes(), &signature)
                .is_err()
        );

        // Configured, the key stops the service from starting.
        let mut config = auth_config(&[]);
        config.keys.push(VerifyingKeyConfig {
            kid: "careless".into(),
            public_key: STANDARD.encode(IDENTITY_POINT),
        });
        assert_eq!(
            TokenVerifier::from_config(&config, SERVICE).unwrap_err(),
            KeyError::WeakKey
        );

        // And a verifier that somehow holds it still refuses the forgery.
        let verifier = TokenVerifier {
            issuer: "sunshine-test".into(),
            audience: "sunshine/intake".into(),
            leeway_seconds: 30,
            max_lifetime_seconds: 3600,
            keys: HashMap::from([("careless".to_owned(), identity_key)]),
            verified: Arc::default(),
        };
        assert_eq!(verifier.verify(&forged, now), Err(AuthError::BadSignature));
    }

    #[test]
    fn weak_small_order_and_mixed_order_keys_are_refused() {
        for hex in SMALL_ORDER_POINTS {
            let bytes = hex_bytes(hex);
            // Independent of `is_weak`: eight times the point is the identity.
            let point = VerifyingKey::from_bytes(&bytes).unwrap().to_edwards();
            assert_eq!(
                point.mul_by_cofactor().compress().to_bytes(),
                IDENTITY_POINT,
                "{hex}"
            );
            assert_eq!(
                decode_verifying_key(&STANDARD.encode(bytes)),
                Err(KeyError::WeakKey),
                "{hex}"
            );
        }
        for hex in NON_CANONICAL_SMALL_ORDER_POINTS {
            let refused = decode_verifying_key(&STANDARD.encode(hex_bytes(hex)));
            assert!(
                matches!(refused, Err(KeyError::WeakKey | KeyError::InvalidKey)),
                "{hex}: {refused:?}"
            );
        }
        // A real key plus a point of order 8: not small order, but no signing key makes it.
        let honest = TokenIssuer::generate("k1").unwrap();
        let honest_point = decode_verifying_key(&honest.public_key_base64())
            .unwrap()
            .to_edwards();
        let torsion = VerifyingKey::from_bytes(&hex_bytes(SMALL_ORDER_POINTS[4]))
            .unwrap()
            .to_edwards();
        let mixed = (honest_point + torsion).compress().to_bytes();
        assert_eq!(
            decode_verifying_key(&STANDARD.encode(mixed)),
            Err(KeyError::MixedOrderKey)
        );
    }

    // Item 5: lifetimes, overflow, audiences.

    #[test]
    fn absurd_timestamps_are_refused_without_overflow() {
        let issuer = TokenIssuer::generate("k1").unwrap();
        let verifier = verifier_for(&[&issuer]);
        let now = OffsetDateTime::now_utc();
        let mut far_expiry = claims(now, Role::Auditor);
        far_expiry.exp = i64::MAX;
        assert_eq!(
            verifier.verify(&issuer.sign(&far_expiry), now),
            Err(AuthError::InvalidClaim("exp"))
        );
        let mut negative_issue = claims(now, Role::Auditor);
        negative_issue.iat = i64::MIN;
        assert_eq!(
            verifier.verify(&issuer.sign(&negative_issue), now),
            Err(AuthError::InvalidClaim("iat"))
        );
        let mut far_not_before = claims(now, Role::Auditor);
        far_not_before.nbf = Some(i64::MAX);
        assert_eq!(
            verifier.verify(&issuer.sign(&far_not_before), now),
            Err(AuthError::InvalidClaim("nbf"))
        );
        let mut expiry_before_issue = claims(now, Role::Auditor);
        expiry_before_issue.exp = expiry_before_issue.iat - 1;
        assert_eq!(
            verifier.verify(&issuer.sign(&expiry_before_issue), now),
            Err(AuthError::InvalidClaim("exp"))
        );
    }

    #[test]
    fn tokens_living_longer_than_the_maximum_are_refused() {
        let issuer = TokenIssuer::generate("k1").unwrap();
        let verifier = verifier_for(&[&issuer]);
        let now = OffsetDateTime::now_utc();
        let max_seconds = i64::from(AuthConfig::default().max_token_lifetime_seconds);

        let mut at_the_maximum = claims(now, Role::Admin);
        at_the_maximum.exp = at_the_maximum.iat + max_seconds;
        assert!(verifier.verify(&issuer.sign(&at_the_maximum), now).is_ok());

        let mut hundred_years = claims(now, Role::Admin);
        hundred_years.exp = hundred_years.iat + 100 * 365 * 24 * 3600;
        assert_eq!(
            verifier.verify(&issuer.sign(&hundred_years), now),
            Err(AuthError::LifetimeTooLong { max_seconds })
        );
        let mut one_second_too_long = claims(now, Role::Admin);
        one_second_too_long.exp = one_second_too_long.iat + max_seconds + 1;
        assert_eq!(
            verifier.verify(&issuer.sign(&one_second_too_long), now),
            Err(AuthError::LifetimeTooLong { max_seconds })
        );
    }

    #[test]
    fn tokens_issued_in_the_future_beyond_the_leeway_are_refused() {
        let issuer = TokenIssuer::generate("k1").unwrap();
        let verifier = verifier_for(&[&issuer]);
        let now = OffsetDateTime::now_utc();
        let mut within_leeway = claims(now, Role::Admin);
        within_leeway.iat += 30;
        assert!(verifier.verify(&issuer.sign(&within_leeway), now).is_ok());
        let mut beyond_leeway = claims(now, Role::Admin);
        beyond_leeway.iat += 31;
        assert_eq!(
            verifier.verify(&issuer.sign(&beyond_leeway), now),
            Err(AuthError::IssuedInTheFuture)
        );
    }

    #[test]
    fn a_token_for_review_is_refused_by_intake() {
        let issuer = TokenIssuer::generate("k1").unwrap();
        let config = auth_config(&[&issuer]);
        let intake = TokenVerifier::from_config(&config, "intake").unwrap();
        let review = TokenVerifier::from_config(&config, "review").unwrap();
        assert_eq!(intake.audience(), "sunshine/intake");
        let now = OffsetDateTime::now_utc();
        let mut for_review = claims(now, Role::CenterApprover);
        for_review.aud = Audience::one("sunshine/review");
        let token = issuer.sign(&for_review);
        assert!(review.verify(&token, now).is_ok());
        assert_eq!(
            intake.verify(&token, now),
            Err(AuthError::WrongIssuerOrAudience)
        );
        // The bare base audience no longer reaches any service.
        let mut bare = claims(now, Role::CenterApprover);
        bare.aud = Audience::one("sunshine");
        assert_eq!(
            intake.verify(&issuer.sign(&bare), now),
            Err(AuthError::WrongIssuerOrAudience)
        );
    }

    #[test]
    fn a_token_seen_before_is_still_held_to_the_clock_and_its_exact_bytes() {
        let issuer = TokenIssuer::generate("k1").unwrap();
        let verifier = verifier_for(&[&issuer]);
        let now = OffsetDateTime::now_utc();
        let claims = claims(now, Role::CenterReviewer);
        let token = issuer.sign(&claims);
        let first = verifier.verify(&token, now).unwrap();
        // Remembered: the same identity again, also through a clone (the interceptor's).
        assert_eq!(verifier.clone().verify(&token, now), Ok(first));
        // The clock is checked on every use: expired beyond the leeway, and before `iat`.
        let later = now + time::Duration::seconds(claims.exp - claims.iat + 31);
        assert_eq!(verifier.verify(&token, later), Err(AuthError::Expired));
        let earlier = now - time::Duration::seconds(31);
        assert_eq!(
            verifier.verify(&token, earlier),
            Err(AuthError::IssuedInTheFuture)
        );
        // One byte changed in the signature is another token: verified in full, and refused.
        let mut tampered = token.clone().into_bytes();
        let last = tampered.len() - 2;
        tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(tampered).unwrap();
        assert_eq!(
            verifier.verify(&tampered, now),
            Err(AuthError::BadSignature)
        );
        // A refused token is not remembered: refused again.
        assert_eq!(
            verifier.verify(&tampered, now),
            Err(AuthError::BadSignature)
        );
    }

    #[test]
    fn the_verifier_remembers_a_bounded_number_of_tokens() {
        let issuer = TokenIssuer::generate("k1").unwrap();
        let verifier = verifier_for(&[&issuer]);
        let now = OffsetDateTime::now_utc();
        for index in 0..VERIFIED_TOKENS_REMEMBERED + 10 {
            let mut claims = claims(now, Role::CenterReviewer);
            claims.sub = format!("officer-{index}");
            assert!(verifier.verify(&issuer.sign(&claims), now).is_ok());
        }
        assert!(verifier.remembered().len() <= VERIFIED_TOKENS_REMEMBERED);
    }

    #[test]
    fn the_audience_claim_may_be_a_string_or_an_array() {
        let issuer = TokenIssuer::generate("k1").unwrap();
        let config = auth_config(&[&issuer]);
        let now = OffsetDateTime::now_utc();
        let mut several = claims(now, Role::Auditor);
        several.aud = Audience::many(["sunshine/review", "sunshine/intake"]);
        let token = issuer.sign(&several);
        for service in ["intake", "review"] {
            let verifier = TokenVerifier::from_config(&config, service).unwrap();
            assert!(verifier.verify(&token, now).is_ok(), "{service}");
        }
        let payment = TokenVerifier::from_config(&config, "payment").unwrap();
        assert_eq!(
            payment.verify(&token, now),
            Err(AuthError::WrongIssuerOrAudience)
        );

        // One audience is written as a string; both forms read back.
        let one = serde_json::to_value(Audience::one("sunshine/intake")).unwrap();
        assert_eq!(one, serde_json::json!("sunshine/intake"));
        let two = serde_json::to_value(Audience::many(["a", "b"])).unwrap();
        assert_eq!(two, serde_json::json!(["a", "b"]));
        let read: Audience =
            serde_json::from_value(serde_json::json!(["sunshine/intake"])).unwrap();
        assert!(read.contains("sunshine/intake"));
        let read: Audience = serde_json::from_value(serde_json::json!("sunshine/intake")).unwrap();
        assert_eq!(read, Audience::one("sunshine/intake"));
        assert!(serde_json::from_value::<Audience>(serde_json::json!(7)).is_err());
    }

    // Item 6: a role only at its tier.

    #[test]
    fn every_role_is_refused_at_every_tier_but_its_own() {
        let issuer = TokenIssuer::generate("k1").unwrap();
        let verifier = verifier_for(&[&issuer]);
        let now = OffsetDateTime::now_utc();
        let tiers = [
            OrgTier::District,
            OrgTier::StreetTown,
            OrgTier::VillageCommunity,
        ];
        for role in Role::ALL {
            for tier in tiers {
                let mut token_claims = claims(now, role);
                token_claims.org_unit = org_unit_at(tier).into();
                let verified = verifier.verify(&issuer.sign(&token_claims), now);
                if tier == role.tier() {
                    assert!(verified.is_ok(), "{role:?} at {tier}: {verified:?}");
                } else {
                    assert_eq!(
                        verified,
                        Err(AuthError::RoleOutsideItsTier {
                            role: role.as_str(),
                            tier: role.tier(),
                        }),
                        "{role:?} at {tier}"
                    );
                    let status = tonic::Status::from(ApiError::from(verified.unwrap_err()));
                    assert_eq!(status.code(), tonic::Code::Unauthenticated);
                }
            }
        }
    }

    #[test]
    fn roles_sit_at_the_tiers_of_the_organisation() {
        assert_eq!(Role::VillageClerk.tier(), OrgTier::VillageCommunity);
        assert_eq!(Role::StreetReviewer.tier(), OrgTier::StreetTown);
        for role in [
            Role::CenterReviewer,
            Role::CenterApprover,
            Role::FinanceOfficer,
            Role::FinanceApprover,
            Role::Auditor,
            Role::Department,
            Role::Admin,
        ] {
            assert_eq!(role.tier(), OrgTier::District, "{role:?}");
        }
    }

    #[test]
    fn development_markers_are_recognised() {
        assert!(is_development_key_id("dev"));
        assert!(is_development_key_id("dev-2026"));
        assert!(is_development_key_id(" DEV "));
        assert!(!is_development_key_id("test-key"));
        assert!(!is_development_key_id("devops-2026"));
        assert!(is_development_issuer("sunshine-dev"));
        assert!(!is_development_issuer("sunshine-test"));
    }

    #[test]
    fn org_scope_follows_the_division_code() {
        let district = OrgUnitCode::parse("990101000000").unwrap();
        let street = OrgUnitCode::parse("990101001000").unwrap();
        let village = OrgUnitCode::parse("990101001002").unwrap();
        let other_village = OrgUnitCode::parse("990101002001").unwrap();
        let identity = |org_unit: &OrgUnitCode| Identity {
            subject: "officer".into(),
            display_name: "officer".into(),
            role: Role::StreetReviewer,
            org_unit: org_unit.clone(),
            department_code: None,
            scopes: vec![],
        };
        assert!(identity(&district).require_org_scope(&village).is_ok());
        assert!(identity(&street).require_org_scope(&village).is_ok());
        assert!(matches!(
            identity(&street).require_org_scope(&other_village),
            Err(ApiError::PermissionDenied(_))
        ));
        assert!(identity(&village).require_org_scope(&village).is_ok());
        assert!(identity(&village).require_org_scope(&street).is_err());
    }
}
