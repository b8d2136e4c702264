//! Typed, layered configuration: built-in defaults, then an optional TOML file, then
//! `SUNSHINE__SECTION__KEY` environment variables, then validation at start-up.
//!
//! Sources are passed in as a [`ConfigSource`] so that tests never touch the process
//! environment; only [`ConfigSource::from_process`] reads it. Secrets (the database password)
//! are redacted from `Debug` output.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sunshine_domain::{FieldViolation, ValidationErrors};

use crate::auth::{decode_verifying_key, is_development_issuer, is_development_key_id};

/// Prefix of configuration environment variables; nesting uses a double underscore.
pub const ENV_PREFIX: &str = "SUNSHINE__";
/// Environment variable naming the configuration file.
pub const CONFIG_FILE_ENV: &str = "SUNSHINE_CONFIG";
/// The standard OpenTelemetry variable; when set, traces are exported over OTLP.
pub const OTLP_ENDPOINT_ENV: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";

/// The runtime configuration every service shares.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub grpc: GrpcConfig,
    pub database: DatabaseConfig,
    pub bus: BusConfig,
    pub auth: AuthConfig,
    pub telemetry: TelemetryConfig,
    pub readiness: ReadinessConfig,
    pub log: LogConfig,
    pub policy: PolicyConfig,
    pub district: DistrictConfig,
    pub privacy: PrivacyConfig,
    pub payment: PaymentConfig,
    pub integration: IntegrationConfig,
}

// ---- department-integration ----

/// Department integration's configuration: the department registry and the service's own
/// person-index key (`docs/security.md`, "Department integration's person index").
#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IntegrationConfig {
    /// The department registry (format:
    /// `services/department-integration/departments/example-district.toml`); empty means the
    /// EXAMPLE district's, compiled in.
    pub departments_file: String,
    /// The key of department-integration's person index (base64 of 32 bytes): an HMAC of each
    /// pushed record's id number, so a department's query finds it without the log's
    /// blind-index key. Held by department-integration only. Empty (and no file): the RPCs that
    /// need it answer FAILED_PRECONDITION.
    pub person_index_key: String,
    /// A file holding [`Self::person_index_key`] (Kubernetes: a Secret volume).
    pub person_index_key_file: String,
    /// The linkage rules (format:
    /// `services/department-integration/departments/example-linkage.toml`); empty means the
    /// EXAMPLE district's, compiled in.
    pub linkage_file: String,
}

impl std::fmt::Debug for IntegrationConfig {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("IntegrationConfig")
            .field("departments_file", &self.departments_file)
            .field("person_index_key", &"<redacted>")
            .field("person_index_key_file", &self.person_index_key_file)
            .field("linkage_file", &self.linkage_file)
            .finish()
    }
}

impl IntegrationConfig {
    /// A fresh random person-index key (`sunshine dev-init`, tests).
    pub fn generate_person_index_key(&mut self) -> Result<(), getrandom::Error> {
        use base64::Engine as _;
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes)?;
        self.person_index_key = base64::engine::general_purpose::STANDARD.encode(bytes);
        Ok(())
    }

    /// The person-index key's base64 text, from the setting or its file; `None` when neither
    /// is given.
    pub fn person_index_key(&self) -> Result<Option<String>, String> {
        if !self.person_index_key.trim().is_empty() {
            return Ok(Some(self.person_index_key.trim().to_owned()));
        }
        if self.person_index_key_file.is_empty() {
            return Ok(None);
        }
        std::fs::read_to_string(&self.person_index_key_file)
            .map(|text| Some(text.trim().to_owned()))
            .map_err(|error| format!("integration.person_index_key_file: {error}"))
    }
}

/// Payment's parameters that are not policy.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PaymentConfig {
    /// Which fund pays which program and the funds' yearly budgets (format:
    /// `services/payment/funds/example-district.toml`); empty means the EXAMPLE district's,
    /// compiled in, whose amounts are invented.
    pub funds_file: String,
    /// The key the discipline-inspection export (纪委) hashes household ids under
    /// (`docs/inspection-export.md`): a file of at least 32 bytes, read once at start; empty
    /// means no key, and `ExportRunForInspection` is refused. Never the same key as the log's.
    pub inspection_key_file: String,
    /// The largest part of a bank file one message of `ExportBankFile`'s stream carries, in
    /// bytes; 0 means the default, 1 MiB (`docs/bank-files.md`, "The export").
    pub bank_file_chunk_bytes: usize,
}

/// The district this deployment serves: its org tree (every org-unit input is checked against
/// it, so a move to another district or to a code in no tree is refused).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DistrictConfig {
    /// The district's org tree (format: `crates/domain/data/example-district.toml`); empty
    /// means the EXAMPLE district compiled into the binary.
    pub org_tree_file: String,
}

impl DistrictConfig {
    /// Loads the configured org tree, or the compiled-in example district.
    pub fn load_org_tree(&self) -> Result<sunshine_domain::OrgTree, String> {
        if self.org_tree_file.is_empty() {
            sunshine_domain::OrgTree::example().map_err(|error| error.to_string())
        } else {
            sunshine_domain::OrgTree::load(&self.org_tree_file).map_err(|error| error.to_string())
        }
    }
}

/// Limits on reading personal data (bulk copying of the registry is refused and recorded).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PrivacyConfig {
    /// Reads of one household's personal data (masked or revealed) one officer may make per
    /// hour; above it, `RESOURCE_EXHAUSTED`, and the refusal is recorded.
    pub personal_data_reads_per_officer_per_hour: u32,
}

impl Default for PrivacyConfig {
    fn default() -> Self {
        PrivacyConfig {
            personal_data_reads_per_officer_per_hour: 300,
        }
    }
}

/// Where the district's policy lives, and the registry rules that vary by province.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PolicyConfig {
    /// A policy directory (e.g. `policy/example-district`); empty means the example district
    /// compiled into the binary, which says so in its files.
    pub directory: String,
    /// Relations of officials and cadres whose assistance must be registered (近亲属备案).
    pub official_relative_relations: Vec<String>,
    /// The review workflows (stages, roles, tiers); empty means the EXAMPLE district's,
    /// compiled in (`services/review/workflows/example-district.toml`).
    pub workflows_file: String,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        PolicyConfig {
            directory: String::new(),
            official_relative_relations: [
                "spouse",
                "parent",
                "child",
                "sibling",
                "parent_in_law",
                "child_in_law",
            ]
            .map(String::from)
            .to_vec(),
            workflows_file: String::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GrpcConfig {
    /// Where `main` binds; tests pass their own listener instead.
    pub listen_address: SocketAddr,
    /// Largest request or response message, in bytes.
    pub max_message_bytes: usize,
    /// Requests running longer are cancelled with `DEADLINE_EXCEEDED`/`CANCELLED`.
    pub request_timeout_ms: u64,
    /// After readiness turns NOT_SERVING on shutdown, how long to keep serving so that load
    /// balancers stop sending new calls, before draining in-flight ones.
    pub drain_delay_ms: u64,
    pub concurrency_limit_per_connection: usize,
}

impl Default for GrpcConfig {
    fn default() -> Self {
        GrpcConfig {
            listen_address: SocketAddr::from(([0, 0, 0, 0], 50051)),
            max_message_bytes: 16 * 1024 * 1024,
            request_timeout_ms: 30_000,
            drain_delay_ms: 5_000,
            concurrency_limit_per_connection: 256,
        }
    }
}

impl GrpcConfig {
    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }
    pub fn drain_delay(&self) -> Duration {
        Duration::from_millis(self.drain_delay_ms)
    }
}

#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseConfig {
    /// `postgres://user@host:port/db` (cluster) or `sqlite://path/to/file.db` (embedded).
    pub url: String,
    pub max_connections: u32,
    pub connect_timeout_ms: u64,
    /// Whether a service creates and upgrades its tables itself when it starts. Unset: yes on
    /// SQLite (embedded, one file, no roles), no on PostgreSQL, where the tables' owner runs
    /// `sunshine migrate` and the services log in as roles that may not change the schema; a
    /// service that finds the schema missing or older than it needs waits NOT_SERVING and says
    /// "run `sunshine migrate`".
    #[serde(skip_serializing_if = "Option::is_none")]
    pub migrate_on_start: Option<bool>,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        DatabaseConfig {
            url: "postgres://postgres@127.0.0.1:5432/sunshine".into(),
            max_connections: 10,
            connect_timeout_ms: 5_000,
            migrate_on_start: None,
        }
    }
}

impl fmt::Debug for DatabaseConfig {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("DatabaseConfig")
            .field("url", &redact_url_password(&self.url))
            .field("max_connections", &self.max_connections)
            .field("connect_timeout_ms", &self.connect_timeout_ms)
            .field("migrate_on_start", &self.migrate_on_start)
            .finish()
    }
}

/// `scheme://user:secret@host` → `scheme://user:***@host`.
pub fn redact_url_password(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_owned();
    };
    let authority_start = scheme_end + 3;
    let rest = &url[authority_start..];
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let Some(at) = authority.rfind('@') else {
        return url.to_owned();
    };
    let user_info = &authority[..at];
    let Some(colon) = user_info.find(':') else {
        return url.to_owned();
    };
    format!(
        "{}{}:***{}",
        &url[..authority_start],
        &user_info[..colon],
        &url[authority_start + at..]
    )
}

impl DatabaseConfig {
    pub fn kind(&self) -> Option<DatabaseKind> {
        if self.url.starts_with("postgres://") || self.url.starts_with("postgresql://") {
            Some(DatabaseKind::Postgres)
        } else if self.url.starts_with("sqlite:") {
            Some(DatabaseKind::Sqlite)
        } else {
            None
        }
    }
    pub fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.connect_timeout_ms)
    }
    /// [`DatabaseConfig::migrate_on_start`], or its default for the backend.
    pub fn migrates_on_start(&self) -> bool {
        self.migrate_on_start
            .unwrap_or(self.kind() == Some(DatabaseKind::Sqlite))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatabaseKind {
    Postgres,
    Sqlite,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BusConfig {
    /// `nats://host:port` (cluster) or `memory://` (in-process, embedded mode).
    pub url: String,
}

impl Default for BusConfig {
    fn default() -> Self {
        BusConfig {
            url: "nats://127.0.0.1:4222".into(),
        }
    }
}

impl BusConfig {
    pub fn kind(&self) -> Option<BusKind> {
        if self.url.starts_with("nats://") || self.url.starts_with("tls://") {
            Some(BusKind::Nats)
        } else if self.url == "memory://" {
            Some(BusKind::InProcess)
        } else {
            None
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BusKind {
    Nats,
    InProcess,
}

/// Largest `auth.leeway_seconds` accepted: clocks five minutes apart need fixing, not leeway.
pub const MAX_LEEWAY_SECONDS: u32 = 300;
/// Largest `auth.max_token_lifetime_seconds` accepted: one week.
pub const MAX_TOKEN_LIFETIME_LIMIT_SECONDS: u32 = 7 * 24 * 3600;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// Expected `iss` claim.
    pub issuer: String,
    /// Base of the expected `aud` claim: each service accepts only tokens whose `aud` holds
    /// `<audience>/<service name>`, e.g. `sunshine/intake`.
    pub audience: String,
    /// Clock skew tolerated on `exp`, `nbf` and `iat`; at most [`MAX_LEEWAY_SECONDS`].
    pub leeway_seconds: u32,
    /// Longest `exp - iat` accepted.
    pub max_token_lifetime_seconds: u32,
    /// Trust the development issuer and keys (`sunshine dev-init`) on a PostgreSQL database
    /// too: for `make run-cluster` only, and logged loudly at start-up. With SQLite they are
    /// always allowed.
    pub allow_development_keys: bool,
    /// Verifying keys by key id; list the old and the new key while rotating.
    pub keys: Vec<VerifyingKeyConfig>,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            issuer: "sunshine-identity".into(),
            audience: "sunshine".into(),
            leeway_seconds: 30,
            max_token_lifetime_seconds: 12 * 3600,
            allow_development_keys: false,
            keys: Vec::new(),
        }
    }
}

impl AuthConfig {
    /// The audience `service_name` accepts, e.g. `sunshine/intake`.
    pub fn audience_for(&self, service_name: &str) -> String {
        crate::auth::Audience::of_service(&self.audience, service_name)
    }

    /// Whether the issuer or a key is the development one of `sunshine dev-init`.
    pub fn uses_development_identity(&self) -> bool {
        is_development_issuer(&self.issuer)
            || self.keys.iter().any(|key| is_development_key_id(&key.kid))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerifyingKeyConfig {
    pub kid: String,
    /// Base64 of the 32-byte Ed25519 public key.
    pub public_key: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TelemetryConfig {
    pub log_format: LogFormat,
    /// `tracing-subscriber` filter directives, e.g. `info,sunshine_intake=debug`.
    pub log_filter: String,
    /// OTLP/gRPC endpoint; taken from `OTEL_EXPORTER_OTLP_ENDPOINT` when that is set.
    pub otlp_endpoint: Option<String>,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        TelemetryConfig {
            log_format: LogFormat::Pretty,
            log_filter: "info".into(),
            otlp_endpoint: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    Pretty,
    Json,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReadinessConfig {
    /// How often connected backends are re-checked.
    pub check_interval_ms: u64,
    /// Longest wait between connection attempts while a backend is down.
    pub max_retry_delay_ms: u64,
}

impl Default for ReadinessConfig {
    fn default() -> Self {
        ReadinessConfig {
            check_interval_ms: 5_000,
            max_retry_delay_ms: 5_000,
        }
    }
}

impl ReadinessConfig {
    pub fn check_interval(&self) -> Duration {
        Duration::from_millis(self.check_interval_ms)
    }
    pub fn max_retry_delay(&self) -> Duration {
        Duration::from_millis(self.max_retry_delay_ms)
    }
}

/// `log.max_event_payload_bytes` by default: 512 KiB, half of NATS's default `max_payload`.
pub const DEFAULT_MAX_EVENT_PAYLOAD_BYTES: usize = 512 * 1024;

/// The case-event log: checkpoint signing, personal-data keys, delivery names. The three keys
/// are secrets (32 bytes, standard base64) and never printed.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// Names the log in its signed checkpoints.
    pub origin: String,
    /// Ed25519 seed that signs checkpoints.
    pub checkpoint_signing_key: String,
    /// Wraps the per-household data keys that seal personal data.
    pub key_encryption_key: String,
    /// Keys the blind indexes (lookups by resident id number).
    pub blind_index_key: String,
    /// The same three keys read from files instead (a Kubernetes Secret mounted read-only):
    /// a path whose content is the base64 text, a trailing newline allowed. Give a key inline
    /// or as a file, not both.
    pub checkpoint_signing_key_file: String,
    pub key_encryption_key_file: String,
    pub blind_index_key_file: String,
    /// While the key-encryption key is rotated (`docs/operations.md`): the key before it,
    /// secret, beside the new one wherever that is held, until `sunshine rewrap-data-keys` has
    /// wrapped every data key anew.
    pub previous_key_encryption_key: String,
    pub previous_key_encryption_key_file: String,
    /// The public half derived from the key-encryption key (`sunshine log-key --sealing`):
    /// seals personal data that only a holder of the key-encryption key can open. Public.
    pub sealing_public_key: String,
    /// The checkpoints' verifier key (`sunshine log-key`), public: what a process without the
    /// signing key reports in `GetServiceInfo`.
    pub verifier_key: String,
    pub checkpoint_every: u64,
    pub checkpoint_interval_ms: u64,
    /// How often the log worker looks for new events when not woken.
    pub poll_interval_ms: u64,
    /// How long JetStream waits for a consumer's ack before it delivers a message again (a
    /// process that died holding it). Order does not depend on it: consumers apply in log
    /// position and fill gaps from the log.
    pub consumer_ack_wait_ms: u64,
    /// The JetStream stream and subject prefix (change them to run two logs on one NATS).
    pub stream_name: String,
    pub subject_prefix: String,
    /// The largest encoded payload one event may have: an append with a larger one is refused
    /// (`docs/limits.md`). Keep it well under the bus's message limit (NATS `max_payload`,
    /// 1 MiB by default): the relay publishes in log order, so an event it cannot publish
    /// would hold back every later event of every service.
    pub max_event_payload_bytes: usize,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            origin: "sunshine.example/district-990101/case-events".into(),
            checkpoint_signing_key: String::new(),
            key_encryption_key: String::new(),
            blind_index_key: String::new(),
            checkpoint_signing_key_file: String::new(),
            key_encryption_key_file: String::new(),
            blind_index_key_file: String::new(),
            previous_key_encryption_key: String::new(),
            previous_key_encryption_key_file: String::new(),
            sealing_public_key: String::new(),
            verifier_key: String::new(),
            checkpoint_every: 1_000,
            checkpoint_interval_ms: 10_000,
            poll_interval_ms: 200,
            consumer_ack_wait_ms: 30_000,
            stream_name: "sunshine-events".into(),
            subject_prefix: "sunshine.events".into(),
            max_event_payload_bytes: DEFAULT_MAX_EVENT_PAYLOAD_BYTES,
        }
    }
}

impl fmt::Debug for LogConfig {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("LogConfig")
            .field("origin", &self.origin)
            .field("checkpoint_signing_key", &"<secret>")
            .field("key_encryption_key", &"<secret>")
            .field("blind_index_key", &"<secret>")
            .field(
                "checkpoint_signing_key_file",
                &self.checkpoint_signing_key_file,
            )
            .field("key_encryption_key_file", &self.key_encryption_key_file)
            .field("blind_index_key_file", &self.blind_index_key_file)
            .field("previous_key_encryption_key", &"<secret>")
            .field(
                "previous_key_encryption_key_file",
                &self.previous_key_encryption_key_file,
            )
            .field("sealing_public_key", &self.sealing_public_key)
            .field("verifier_key", &self.verifier_key)
            .field("checkpoint_every", &self.checkpoint_every)
            .field("checkpoint_interval_ms", &self.checkpoint_interval_ms)
            .field("poll_interval_ms", &self.poll_interval_ms)
            .field("consumer_ack_wait_ms", &self.consumer_ack_wait_ms)
            .field("stream_name", &self.stream_name)
            .field("subject_prefix", &self.subject_prefix)
            .field("max_event_payload_bytes", &self.max_event_payload_bytes)
            .finish()
    }
}

impl LogConfig {
    /// Fills the three keys with fresh random ones: for development, the demo and tests only
    /// (production keys come from the district's key management).
    pub fn generate_keys(&mut self) -> Result<(), getrandom::Error> {
        use base64::Engine as _;
        for key in [
            &mut self.checkpoint_signing_key,
            &mut self.key_encryption_key,
            &mut self.blind_index_key,
        ] {
            let mut bytes = [0u8; 32];
            getrandom::fill(&mut bytes)?;
            *key = base64::engine::general_purpose::STANDARD.encode(bytes);
        }
        Ok(())
    }
}

/// One of the case-event log's three secret keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogKey {
    /// Signs the Merkle checkpoints: only the log process.
    CheckpointSigning,
    /// Wraps the data keys that seal personal data: whoever opens personal data.
    KeyEncryption,
    /// Keys the blind indexes: whoever looks residents up by id number.
    BlindIndex,
}

impl LogKey {
    pub const ALL: [LogKey; 3] = [
        LogKey::CheckpointSigning,
        LogKey::KeyEncryption,
        LogKey::BlindIndex,
    ];

    /// The configuration field, e.g. `log.key_encryption_key`.
    pub fn field(self) -> &'static str {
        match self {
            LogKey::CheckpointSigning => "log.checkpoint_signing_key",
            LogKey::KeyEncryption => "log.key_encryption_key",
            LogKey::BlindIndex => "log.blind_index_key",
        }
    }

    /// Whether `config` gives this key (inline or, once read, from its file).
    pub fn given(self, config: &LogConfig) -> bool {
        !self.value(config).trim().is_empty()
    }

    fn value(self, config: &LogConfig) -> &str {
        match self {
            LogKey::CheckpointSigning => &config.checkpoint_signing_key,
            LogKey::KeyEncryption => &config.key_encryption_key,
            LogKey::BlindIndex => &config.blind_index_key,
        }
    }
}

/// Which of the log's keys a process holds, by the role of what runs in it: it must be given
/// those and must not be given the others (least privilege; `docs/security.md` has the table).
/// A process running several services (`serve all`, the demo, the test sandboxes) holds the
/// [`LogKeys::union`] of theirs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LogKeys {
    pub checkpoint_signing: bool,
    pub key_encryption: bool,
    pub blind_index: bool,
    /// Seals personal data without opening it: needs `log.sealing_public_key` (or, in a
    /// process that holds it anyway, the key-encryption key).
    pub sealing: bool,
}

impl LogKeys {
    /// Holds no key: disclosure, audit, the console, review's reads.
    pub const NONE: LogKeys = LogKeys {
        checkpoint_signing: false,
        key_encryption: false,
        blind_index: false,
        sealing: false,
    };
    /// The log process: sequences, signs checkpoints, relays.
    pub const LOG_PROCESS: LogKeys = LogKeys {
        checkpoint_signing: true,
        ..LogKeys::NONE
    };
    /// Every key: the embedded deployment, one process for everything.
    pub const ALL: LogKeys = LogKeys {
        checkpoint_signing: true,
        key_encryption: true,
        blind_index: true,
        sealing: true,
    };

    /// What a process running both `self` and `other` holds.
    pub const fn union(self, other: LogKeys) -> LogKeys {
        LogKeys {
            checkpoint_signing: self.checkpoint_signing || other.checkpoint_signing,
            key_encryption: self.key_encryption || other.key_encryption,
            blind_index: self.blind_index || other.blind_index,
            sealing: self.sealing || other.sealing,
        }
    }

    pub fn holds(self, key: LogKey) -> bool {
        match key {
            LogKey::CheckpointSigning => self.checkpoint_signing,
            LogKey::KeyEncryption => self.key_encryption,
            LogKey::BlindIndex => self.blind_index,
        }
    }

    /// Checks that `config` gives `process` every key it holds and none it must not hold;
    /// every problem is named by its field. Run before anything starts.
    pub fn check(self, process: &str, config: &LogConfig) -> Result<(), ConfigError> {
        let mut errors = ValidationErrors::default();
        for key in LogKey::ALL {
            match (self.holds(key), key.given(config)) {
                (true, false) => errors.push(key.field(), format!("is required by {process}")),
                (false, true) => errors.push(
                    key.field(),
                    format!("must not be given to {process}: its role does not hold this key"),
                ),
                _ => {}
            }
        }
        if !self.key_encryption && !config.previous_key_encryption_key.trim().is_empty() {
            errors.push(
                "log.previous_key_encryption_key",
                format!("must not be given to {process}: its role does not hold this key"),
            );
        }
        if self.sealing && !self.key_encryption && config.sealing_public_key.trim().is_empty() {
            errors.push(
                "log.sealing_public_key",
                format!("is required by {process} (it seals personal data)"),
            );
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::Invalid(errors.into_violations()))
        }
    }
}

impl LogConfig {
    /// Reads the keys given as files into their fields; a key given both ways, or a file that
    /// cannot be read, is an error naming the file's field (never its content).
    pub fn read_key_files(&mut self) -> Result<(), ConfigError> {
        let mut errors = ValidationErrors::default();
        for (field, value, path) in [
            (
                "log.checkpoint_signing_key_file",
                &mut self.checkpoint_signing_key,
                &self.checkpoint_signing_key_file,
            ),
            (
                "log.key_encryption_key_file",
                &mut self.key_encryption_key,
                &self.key_encryption_key_file,
            ),
            (
                "log.blind_index_key_file",
                &mut self.blind_index_key,
                &self.blind_index_key_file,
            ),
            (
                "log.previous_key_encryption_key_file",
                &mut self.previous_key_encryption_key,
                &self.previous_key_encryption_key_file,
            ),
        ] {
            if path.trim().is_empty() {
                continue;
            }
            if !value.trim().is_empty() {
                errors.push(
                    field,
                    "the key is also given inline: give it one way, not both",
                );
                continue;
            }
            match std::fs::read_to_string(path) {
                Ok(text) => *value = text.trim().to_owned(),
                Err(error) => errors.push(field, format!("cannot be read: {}", error.kind())),
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::Invalid(errors.into_violations()))
        }
    }
}

impl LogConfig {
    /// The verifier key of the log's checkpoints: the C2SP signed-note verifier key
    /// `<origin>+<key id, 8 hex digits>+<base64(0x01 || Ed25519 public key)>` of the key
    /// `checkpoint_signing_key` (the key's name is the origin). This is what auditors pin;
    /// `sunshine_evidence::checkpoint` owns the format.
    ///
    /// A process without the signing key (every service but the log process) reports the
    /// configured `verifier_key` instead; where both are given they must agree.
    pub fn checkpoint_verifier_key(&self) -> Result<String, String> {
        if self.checkpoint_signing_key.trim().is_empty() {
            let (origin, _) = sunshine_evidence::checkpoint::parse_verifier_key(&self.verifier_key)
                .map_err(|error| format!("log.verifier_key: {error}"))?;
            if origin != self.origin {
                return Err(format!(
                    "log.verifier_key names the log {origin}, not log.origin"
                ));
            }
            return Ok(self.verifier_key.trim().to_owned());
        }
        let seed = decode_key(&self.checkpoint_signing_key)
            .map_err(|reason| format!("log.checkpoint_signing_key {reason}"))?;
        let public_key = ed25519_dalek::SigningKey::from_bytes(&seed).verifying_key();
        let derived = sunshine_evidence::checkpoint::format_verifier_key(&self.origin, &public_key)
            .map_err(|error| format!("log.origin: {error}"))?;
        if !self.verifier_key.trim().is_empty() && self.verifier_key.trim() != derived {
            return Err("log.verifier_key is not the key of log.checkpoint_signing_key".into());
        }
        Ok(derived)
    }
}

/// 32 bytes from standard base64, or why not.
pub fn decode_key(text: &str) -> Result<[u8; 32], String> {
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .map_err(|_| "must be 32 bytes in standard base64".to_owned())?;
    bytes
        .try_into()
        .map_err(|_| "must be 32 bytes in standard base64".to_owned())
}

/// Where configuration comes from. Build one by hand in tests.
#[derive(Debug, Clone, Default)]
pub struct ConfigSource {
    pub file: Option<PathBuf>,
    /// Environment variables; only those starting with [`ENV_PREFIX`] and
    /// [`OTLP_ENDPOINT_ENV`] are used.
    pub environment: BTreeMap<String, String>,
}

impl ConfigSource {
    /// The process's environment, and the file named by `SUNSHINE_CONFIG` if set.
    pub fn from_process() -> Self {
        let environment: BTreeMap<String, String> = std::env::vars().collect();
        let file = environment.get(CONFIG_FILE_ENV).map(PathBuf::from);
        ConfigSource { file, environment }
    }

    pub fn with_file(mut self, path: impl AsRef<Path>) -> Self {
        self.file = Some(path.as_ref().to_path_buf());
        self
    }

    pub fn with_env(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.environment.insert(name.into(), value.into());
        self
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    ReadFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path} is not valid TOML: {message}")]
    ParseFile { path: PathBuf, message: String },
    #[error("environment variable {name} does not name a config field")]
    UnknownVariable { name: String },
    #[error("configuration does not fit its schema: {message}")]
    Schema { message: String },
    #[error("invalid configuration: {}", describe(.0))]
    Invalid(Vec<FieldViolation>),
}

fn describe(violations: &[FieldViolation]) -> String {
    let parts: Vec<String> = violations
        .iter()
        .map(|violation| format!("{}: {}", violation.field, violation.description))
        .collect();
    parts.join("; ")
}

impl Config {
    /// Layers defaults, file and environment, then validates.
    pub fn load(source: &ConfigSource) -> Result<Config, ConfigError> {
        let config = Config::load_unvalidated(source)?;
        config.validate()?;
        Ok(config)
    }

    /// Layers defaults, file and environment (unknown keys and wrong types are still errors)
    /// without [`Config::validate`]: for tools that need one section only (`sunshine migrate`
    /// needs the database, `sunshine log-key` the log) and check that section themselves.
    pub fn load_unvalidated(source: &ConfigSource) -> Result<Config, ConfigError> {
        let defaults =
            toml::Value::try_from(Config::default()).map_err(|error| ConfigError::Schema {
                message: error.to_string(),
            })?;
        let mut merged = defaults;
        if let Some(path) = &source.file {
            let text = std::fs::read_to_string(path).map_err(|source| ConfigError::ReadFile {
                path: path.clone(),
                source,
            })?;
            let file_value: toml::Value =
                toml::from_str(&text).map_err(|error| ConfigError::ParseFile {
                    path: path.clone(),
                    message: error.to_string(),
                })?;
            merge_values(&mut merged, file_value);
        }
        for (name, raw_value) in &source.environment {
            if let Some(path) = name.strip_prefix(ENV_PREFIX) {
                let keys: Vec<String> = path
                    .split("__")
                    .map(|key| key.to_ascii_lowercase())
                    .collect();
                set_from_env(&mut merged, &keys, raw_value)
                    .map_err(|()| ConfigError::UnknownVariable { name: name.clone() })?;
            }
        }
        if let Some(endpoint) = source.environment.get(OTLP_ENDPOINT_ENV)
            && !endpoint.trim().is_empty()
        {
            set_from_env(
                &mut merged,
                &["telemetry".into(), "otlp_endpoint".into()],
                endpoint,
            )
            .map_err(|()| ConfigError::UnknownVariable {
                name: OTLP_ENDPOINT_ENV.into(),
            })?;
        }
        let mut config: Config =
            merged
                .try_into()
                .map_err(|error: toml::de::Error| ConfigError::Schema {
                    message: error.to_string(),
                })?;
        config.log.read_key_files()?;
        Ok(config)
    }

    /// Checks what types alone cannot; reports every problem at once.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut errors = ValidationErrors::default();
        if !(1024..=64 * 1024 * 1024).contains(&self.grpc.max_message_bytes) {
            errors.push("grpc.max_message_bytes", "must be between 1 KiB and 64 MiB");
        }
        if self.grpc.request_timeout_ms == 0 {
            errors.push("grpc.request_timeout_ms", "must be positive");
        }
        if self.grpc.concurrency_limit_per_connection == 0 {
            errors.push("grpc.concurrency_limit_per_connection", "must be positive");
        }
        if self.database.kind().is_none() {
            errors.push("database.url", "must start with postgres:// or sqlite:");
        }
        if self.database.max_connections == 0 {
            errors.push("database.max_connections", "must be positive");
        }
        if self.bus.kind().is_none() {
            errors.push(
                "bus.url",
                "must be nats://host:port, tls://host:port or memory://",
            );
        }
        if self.auth.issuer.trim().is_empty() {
            errors.push("auth.issuer", "must not be empty");
        }
        if self.auth.audience.trim().is_empty() {
            errors.push("auth.audience", "must not be empty");
        }
        if self.auth.leeway_seconds > MAX_LEEWAY_SECONDS {
            errors.push(
                "auth.leeway_seconds",
                format!("must be at most {MAX_LEEWAY_SECONDS}"),
            );
        }
        if !(60..=MAX_TOKEN_LIFETIME_LIMIT_SECONDS).contains(&self.auth.max_token_lifetime_seconds)
        {
            errors.push(
                "auth.max_token_lifetime_seconds",
                format!("must be between 60 and {MAX_TOKEN_LIFETIME_LIMIT_SECONDS} (one week)"),
            );
        }
        if self.auth.keys.is_empty() {
            errors.push("auth.keys", "at least one verifying key is required");
        }
        // A cluster must not trust what `sunshine dev-init` wrote: its key sits in a file on a
        // developer's disk. `make run-cluster` opts in explicitly.
        let cluster_database = self.database.kind() == Some(DatabaseKind::Postgres);
        let refuse_development = cluster_database && !self.auth.allow_development_keys;
        if refuse_development && is_development_issuer(&self.auth.issuer) {
            errors.push(
                "auth.issuer",
                "is the development issuer, refused with a PostgreSQL database \
                 (set auth.allow_development_keys = true only for a local cluster)",
            );
        }
        let mut seen_key_ids = std::collections::BTreeSet::new();
        for (index, key) in self.auth.keys.iter().enumerate() {
            if key.kid.trim().is_empty() {
                errors.push(format!("auth.keys[{index}].kid"), "must not be empty");
            } else if !seen_key_ids.insert(key.kid.as_str()) {
                errors.push(format!("auth.keys[{index}].kid"), "duplicate key id");
            }
            if refuse_development && is_development_key_id(&key.kid) {
                errors.push(
                    format!("auth.keys[{index}].kid"),
                    "is a development key id (dev, dev-…), refused with a PostgreSQL database \
                     (set auth.allow_development_keys = true only for a local cluster)",
                );
            }
            if let Err(error) = decode_verifying_key(&key.public_key) {
                errors.push(format!("auth.keys[{index}].public_key"), error.to_string());
            }
        }
        if self.readiness.check_interval_ms == 0 {
            errors.push("readiness.check_interval_ms", "must be positive");
        }
        if self.readiness.max_retry_delay_ms == 0 {
            errors.push("readiness.max_retry_delay_ms", "must be positive");
        }
        // Each key does one job; one secret in two roles means one leak breaks both. A key not
        // given is not held: which process must hold which is `LogKeys::check`.
        let mut decoded_log_keys: Vec<(&str, [u8; 32])> = Vec::new();
        for key in LogKey::ALL {
            if !key.given(&self.log) {
                continue;
            }
            let field = key.field();
            match decode_key(key.value(&self.log)) {
                Ok(bytes) => {
                    let same = decoded_log_keys
                        .iter()
                        .find(|(_, earlier)| *earlier == bytes);
                    if let Some((earlier_field, _)) = same {
                        errors.push(field, format!("must differ from {earlier_field}"));
                    }
                    decoded_log_keys.push((field, bytes));
                }
                Err(reason) => errors.push(field, reason),
            }
        }
        if !self.log.previous_key_encryption_key.trim().is_empty() {
            let field = "log.previous_key_encryption_key";
            match decode_key(&self.log.previous_key_encryption_key) {
                Ok(bytes) => {
                    if let Some((earlier_field, _)) = decoded_log_keys
                        .iter()
                        .find(|(_, earlier)| *earlier == bytes)
                    {
                        errors.push(field, format!("must differ from {earlier_field}"));
                    }
                }
                Err(reason) => errors.push(field, reason),
            }
        }
        if (!self.log.verifier_key.trim().is_empty() || LogKey::CheckpointSigning.given(&self.log))
            && let Err(reason) = self.log.checkpoint_verifier_key()
        {
            errors.push("log.verifier_key", reason);
        }
        if !self.log.sealing_public_key.trim().is_empty()
            && let Err(reason) = decode_key(&self.log.sealing_public_key)
        {
            errors.push("log.sealing_public_key", reason);
        }
        if self.log.origin.trim().is_empty()
            || self.log.origin.contains(char::is_whitespace)
            || self.log.origin.contains('+')
        {
            errors.push("log.origin", "must be non-empty, without spaces or '+'");
        }
        if self.log.checkpoint_every == 0
            || self.log.checkpoint_interval_ms == 0
            || self.log.poll_interval_ms == 0
            || self.log.consumer_ack_wait_ms == 0
        {
            errors.push(
                "log",
                "checkpoint_every, checkpoint_interval_ms, poll_interval_ms and consumer_ack_wait_ms must be positive",
            );
        }
        if self.log.stream_name.trim().is_empty() || self.log.subject_prefix.trim().is_empty() {
            errors.push("log", "stream_name and subject_prefix must not be empty");
        }
        if !(1024..=64 * 1024 * 1024).contains(&self.log.max_event_payload_bytes) {
            errors.push(
                "log.max_event_payload_bytes",
                "must be between 1024 and 67108864 (and under the bus's max_payload)",
            );
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::Invalid(errors.into_violations()))
        }
    }
}

fn merge_values(base: &mut toml::Value, overlay: toml::Value) {
    match (base, overlay) {
        (toml::Value::Table(base_table), toml::Value::Table(overlay_table)) => {
            for (key, overlay_value) in overlay_table {
                match base_table.get_mut(&key) {
                    Some(base_value) => merge_values(base_value, overlay_value),
                    None => {
                        base_table.insert(key, overlay_value);
                    }
                }
            }
        }
        (base_value, overlay_value) => *base_value = overlay_value,
    }
}

/// Sets `keys` in `root` from an environment string, typed like the value it replaces. An
/// unknown section is an error (a typo must not be silently ignored); an unknown leaf in a
/// known section is inserted and rejected later by `deny_unknown_fields`.
fn set_from_env(root: &mut toml::Value, keys: &[String], raw_value: &str) -> Result<(), ()> {
    let Some((leaf, sections)) = keys.split_last() else {
        return Err(());
    };
    let mut table = root.as_table_mut().ok_or(())?;
    for section in sections {
        table = table
            .get_mut(section)
            .and_then(toml::Value::as_table_mut)
            .ok_or(())?;
    }
    let value = match table.get(leaf) {
        Some(toml::Value::String(_)) => toml::Value::String(raw_value.to_owned()),
        _ => parse_toml_scalar(raw_value),
    };
    table.insert(leaf.clone(), value);
    Ok(())
}

fn parse_toml_scalar(raw_value: &str) -> toml::Value {
    let document = format!("value = {raw_value}");
    match toml::from_str::<toml::Table>(&document) {
        Ok(mut table) => table
            .remove("value")
            .unwrap_or_else(|| toml::Value::String(raw_value.to_owned())),
        Err(_) => toml::Value::String(raw_value.to_owned()),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const PUBLIC_KEY: &str = "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=";
    const SECRET_KEY: &str = "c2VjcmV0LWtleS1vZi10aGlydHktdHdvLWJ5dGVzISE=";
    const OTHER_SECRET_KEY: &str = "b3RoZXIta2V5LW9mLXRoaXJ0eS10d28tYnl0ZXMhISE=";
    const THIRD_SECRET_KEY: &str = "dGhpcmQta2V5LW9mLXRoaXJ0eS10d28tYnl0ZXMhISE=";
    /// The identity point: a weak key under which one fixed signature verifies everything.
    const IDENTITY_POINT_KEY: &str = "AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
    /// Thirty-two zero bytes: a point of order 4.
    const ALL_ZERO_KEY: &str = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
    /// A point of order 8.
    const ORDER_EIGHT_KEY: &str = "JuiVj8KyJ7BFw/SJ8u+Y8NXfrAXTxjM5sTgCiG1T/AU=";

    fn with_key(source: ConfigSource) -> ConfigSource {
        source
            .with_env(
                "SUNSHINE__AUTH__KEYS",
                format!(r#"[{{ kid = "k1", public_key = "{PUBLIC_KEY}" }}]"#),
            )
            .with_env("SUNSHINE__LOG__CHECKPOINT_SIGNING_KEY", SECRET_KEY)
            .with_env("SUNSHINE__LOG__KEY_ENCRYPTION_KEY", OTHER_SECRET_KEY)
            .with_env("SUNSHINE__LOG__BLIND_INDEX_KEY", THIRD_SECRET_KEY)
    }

    fn invalid_fields(source: &ConfigSource) -> Vec<(String, String)> {
        match Config::load(source) {
            Err(ConfigError::Invalid(violations)) => violations
                .into_iter()
                .map(|violation| (violation.field, violation.description))
                .collect(),
            other => panic!("expected invalid, got {other:?}"),
        }
    }

    #[test]
    fn defaults_then_file_then_environment() {
        let directory =
            std::env::temp_dir().join(format!("sunshine-config-{}", uuid::Uuid::now_v7()));
        std::fs::create_dir_all(&directory).unwrap();
        let file = directory.join("sunshine.toml");
        std::fs::write(
            &file,
            "[grpc]\nlisten_address = \"127.0.0.1:7000\"\nmax_message_bytes = 2048\n[bus]\nurl = \"memory://\"\n",
        )
        .unwrap();
        let source = with_key(ConfigSource::default().with_file(&file))
            .with_env("SUNSHINE__GRPC__MAX_MESSAGE_BYTES", "4096")
            .with_env("SUNSHINE__DATABASE__URL", "sqlite://data/sunshine.db")
            .with_env("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317")
            .with_env("UNRELATED", "ignored");
        let config = Config::load(&source).unwrap();
        assert_eq!(config.grpc.listen_address.port(), 7000);
        assert_eq!(config.grpc.max_message_bytes, 4096);
        assert_eq!(config.bus.kind(), Some(BusKind::InProcess));
        assert_eq!(config.database.kind(), Some(DatabaseKind::Sqlite));
        assert_eq!(
            config.grpc.request_timeout_ms,
            GrpcConfig::default().request_timeout_ms
        );
        assert_eq!(
            config.telemetry.otlp_endpoint.as_deref(),
            Some("http://collector:4317")
        );
        std::fs::remove_dir_all(directory).unwrap();
    }

    #[test]
    fn keys_come_from_files_and_never_both_ways() {
        let directory =
            std::env::temp_dir().join(format!("sunshine-keys-{}", uuid::Uuid::now_v7()));
        std::fs::create_dir_all(&directory).unwrap();
        let file = directory.join("key");
        std::fs::write(&file, format!("{OTHER_SECRET_KEY}\n")).unwrap();
        let path = file.to_str().unwrap();
        let from_file = ConfigSource::default()
            .with_env(
                "SUNSHINE__AUTH__KEYS",
                format!(r#"[{{ kid = "k1", public_key = "{PUBLIC_KEY}" }}]"#),
            )
            .with_env("SUNSHINE__LOG__KEY_ENCRYPTION_KEY_FILE", path);
        let config = Config::load(&from_file).unwrap();
        assert_eq!(config.log.key_encryption_key, OTHER_SECRET_KEY);
        assert!(!LogKey::CheckpointSigning.given(&config.log));

        let both = from_file
            .clone()
            .with_env("SUNSHINE__LOG__KEY_ENCRYPTION_KEY", OTHER_SECRET_KEY);
        assert_eq!(
            invalid_fields(&both)[0].0,
            "log.key_encryption_key_file",
            "a key given inline and as a file"
        );
        let missing = from_file.with_env(
            "SUNSHINE__LOG__KEY_ENCRYPTION_KEY_FILE",
            directory.join("absent").to_str().unwrap(),
        );
        let refused = invalid_fields(&missing);
        assert_eq!(refused[0].0, "log.key_encryption_key_file");
        assert!(!refused[0].1.contains(OTHER_SECRET_KEY));
        std::fs::remove_dir_all(directory).unwrap();
    }

    #[test]
    fn a_process_is_given_exactly_the_keys_its_role_holds() {
        let all = Config::load(&with_key(ConfigSource::default())).unwrap();
        LogKeys::ALL.check("serve all", &all.log).unwrap();
        let refused = |keys: LogKeys, config: &LogConfig| -> Vec<String> {
            match keys.check("review", config) {
                Err(ConfigError::Invalid(violations)) => violations
                    .into_iter()
                    .map(|violation| violation.field)
                    .collect(),
                other => panic!("expected refused, got {other:?}"),
            }
        };
        // Handed every key, a process that holds none names each one.
        assert_eq!(
            refused(LogKeys::NONE, &all.log),
            [
                "log.checkpoint_signing_key",
                "log.key_encryption_key",
                "log.blind_index_key"
            ]
        );
        // A sealer without the key-encryption key needs the public sealing key, nothing else.
        let sealer = LogKeys {
            sealing: true,
            ..LogKeys::NONE
        };
        let mut bare = all.log.clone();
        bare.checkpoint_signing_key.clear();
        bare.key_encryption_key.clear();
        bare.blind_index_key.clear();
        assert_eq!(refused(sealer, &bare), ["log.sealing_public_key"]);
        bare.sealing_public_key = PUBLIC_KEY.into();
        sealer.check("review", &bare).unwrap();
        // The log process needs its signing key.
        let error = LogKeys::LOG_PROCESS.check("log", &bare).unwrap_err();
        assert!(error.to_string().contains("log.checkpoint_signing_key"));
        // The previous key-encryption key (a rotation) only where the key itself is held.
        let mut rotating = bare.clone();
        rotating.previous_key_encryption_key = OTHER_SECRET_KEY.into();
        assert_eq!(
            refused(sealer, &rotating),
            ["log.previous_key_encryption_key"]
        );
        // A process of two services holds what either holds.
        assert_eq!(
            LogKeys::NONE.union(LogKeys::LOG_PROCESS),
            LogKeys::LOG_PROCESS
        );
    }

    #[test]
    fn every_invalid_field_is_reported_at_once() {
        let source = ConfigSource::default()
            .with_env("SUNSHINE__DATABASE__URL", "mysql://x")
            .with_env("SUNSHINE__GRPC__MAX_MESSAGE_BYTES", "10")
            .with_env("SUNSHINE__LOG__BLIND_INDEX_KEY", "too-short");
        let Err(ConfigError::Invalid(violations)) = Config::load(&source) else {
            panic!("expected invalid")
        };
        let fields: Vec<&str> = violations
            .iter()
            .map(|violation| violation.field.as_str())
            .collect();
        assert_eq!(
            fields,
            [
                "grpc.max_message_bytes",
                "database.url",
                "auth.keys",
                "log.blind_index_key"
            ]
        );
    }

    #[test]
    fn typos_are_errors_not_silently_ignored() {
        let unknown_section =
            with_key(ConfigSource::default()).with_env("SUNSHINE__GRCP__LISTEN_ADDRESS", "x");
        assert!(matches!(
            Config::load(&unknown_section),
            Err(ConfigError::UnknownVariable { .. })
        ));
        let unknown_leaf =
            with_key(ConfigSource::default()).with_env("SUNSHINE__GRPC__LISTEN_ADRESS", "x");
        assert!(matches!(
            Config::load(&unknown_leaf),
            Err(ConfigError::Schema { .. })
        ));
    }

    #[test]
    fn the_kubernetes_config_file_fits_the_schema() {
        // Only the deliberate placeholders are invalid: the public keys to replace. The secrets
        // come from files each Deployment mounts (and `LogKeys::check` wants them there).
        let file = concat!(env!("CARGO_MANIFEST_DIR"), "/../../k8s/base/sunshine.toml");
        let Err(ConfigError::Invalid(violations)) =
            Config::load(&ConfigSource::default().with_file(file))
        else {
            panic!("expected only the placeholders to be invalid")
        };
        let fields: Vec<&str> = violations
            .iter()
            .map(|violation| violation.field.as_str())
            .collect();
        assert_eq!(
            fields,
            [
                "auth.keys[0].public_key",
                "log.verifier_key",
                "log.sealing_public_key"
            ]
        );
    }

    #[test]
    fn services_migrate_on_start_on_sqlite_only_unless_told() {
        let load = |url: &str, migrate_on_start: Option<&str>| {
            let mut source =
                with_key(ConfigSource::default()).with_env("SUNSHINE__DATABASE__URL", url);
            if let Some(value) = migrate_on_start {
                source = source.with_env("SUNSHINE__DATABASE__MIGRATE_ON_START", value);
            }
            Config::load(&source).unwrap().database.migrates_on_start()
        };
        assert!(load("sqlite://data/sunshine.db", None));
        assert!(!load("postgres://sunshine_intake@db/sunshine", None));
        assert!(load("postgres://postgres@127.0.0.1/sunshine", Some("true")));
        assert!(!load("sqlite://data/sunshine.db", Some("false")));
    }

    #[test]
    fn the_checkpoint_verifier_key_is_named_after_the_origin() {
        let log = LogConfig {
            origin: "sunshine.example/district-990101/case-events".into(),
            checkpoint_signing_key: SECRET_KEY.into(),
            ..LogConfig::default()
        };
        let key = log.checkpoint_verifier_key().unwrap();
        let parts: Vec<&str> = key.splitn(3, '+').collect();
        assert_eq!(parts[0], log.origin);
        assert_eq!(parts[1].len(), 8);
        assert_eq!(parts[2].len(), 44, "base64 of 33 bytes");
        assert!(
            LogConfig::default()
                .checkpoint_verifier_key()
                .unwrap_err()
                .contains("log.verifier_key")
        );
    }

    #[test]
    fn log_keys_are_never_printed() {
        let config = Config::load(&with_key(ConfigSource::default())).unwrap();
        assert!(!format!("{config:?}").contains(&SECRET_KEY[..10]));
    }

    #[test]
    fn passwords_are_redacted_in_debug_output() {
        let config = DatabaseConfig {
            url: "postgres://sunshine:s3cret@db:5432/sunshine".into(),
            ..Default::default()
        };
        let printed = format!("{config:?}");
        assert!(!printed.contains("s3cret"));
        assert!(printed.contains("postgres://sunshine:***@db:5432/sunshine"));
    }

    #[test]
    fn a_bad_key_names_its_field() {
        let source = ConfigSource::default().with_env(
            "SUNSHINE__AUTH__KEYS",
            r#"[{ kid = "k1", public_key = "not base64!" }]"#,
        );
        let Err(ConfigError::Invalid(violations)) = Config::load(&source) else {
            panic!("expected invalid")
        };
        assert_eq!(violations[0].field, "auth.keys[0].public_key");
    }

    #[test]
    fn weak_verifying_keys_are_refused_at_start_up() {
        let source = with_key(ConfigSource::default()).with_env(
            "SUNSHINE__AUTH__KEYS",
            format!(
                r#"[{{ kid = "good", public_key = "{PUBLIC_KEY}" }},
                    {{ kid = "identity", public_key = "{IDENTITY_POINT_KEY}" }},
                    {{ kid = "zero", public_key = "{ALL_ZERO_KEY}" }},
                    {{ kid = "eight", public_key = "{ORDER_EIGHT_KEY}" }}]"#
            ),
        );
        let violations = invalid_fields(&source);
        let fields: Vec<&str> = violations.iter().map(|(field, _)| field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "auth.keys[1].public_key",
                "auth.keys[2].public_key",
                "auth.keys[3].public_key"
            ]
        );
        for (_, description) in &violations {
            assert!(description.contains("weak"), "{description}");
        }
    }

    #[test]
    fn equal_log_keys_are_refused() {
        let source = with_key(ConfigSource::default())
            .with_env("SUNSHINE__LOG__KEY_ENCRYPTION_KEY", SECRET_KEY)
            .with_env("SUNSHINE__LOG__BLIND_INDEX_KEY", format!(" {SECRET_KEY}\n"));
        let violations = invalid_fields(&source);
        assert_eq!(
            violations,
            [
                (
                    "log.key_encryption_key".to_owned(),
                    "must differ from log.checkpoint_signing_key".to_owned()
                ),
                (
                    "log.blind_index_key".to_owned(),
                    "must differ from log.checkpoint_signing_key".to_owned()
                ),
            ]
        );
        let kek_equals_blind = with_key(ConfigSource::default())
            .with_env("SUNSHINE__LOG__BLIND_INDEX_KEY", OTHER_SECRET_KEY);
        assert_eq!(
            invalid_fields(&kek_equals_blind),
            [(
                "log.blind_index_key".to_owned(),
                "must differ from log.key_encryption_key".to_owned()
            )]
        );
        for (_, description) in invalid_fields(&source) {
            assert!(!description.contains(&SECRET_KEY[..10]));
        }
    }

    #[test]
    fn leeway_and_token_lifetime_are_bounded() {
        let loaded = Config::load(&with_key(ConfigSource::default())).unwrap();
        assert_eq!(loaded.auth.max_token_lifetime_seconds, 12 * 3600);
        let at_the_caps = with_key(ConfigSource::default())
            .with_env("SUNSHINE__AUTH__LEEWAY_SECONDS", "300")
            .with_env("SUNSHINE__AUTH__MAX_TOKEN_LIFETIME_SECONDS", "604800");
        assert!(Config::load(&at_the_caps).is_ok());
        let beyond = with_key(ConfigSource::default())
            .with_env("SUNSHINE__AUTH__LEEWAY_SECONDS", "4294967295")
            .with_env("SUNSHINE__AUTH__MAX_TOKEN_LIFETIME_SECONDS", "3153600000");
        let fields: Vec<String> = invalid_fields(&beyond)
            .into_iter()
            .map(|(field, _)| field)
            .collect();
        assert_eq!(
            fields,
            ["auth.leeway_seconds", "auth.max_token_lifetime_seconds"]
        );
        let zero_lifetime = with_key(ConfigSource::default())
            .with_env("SUNSHINE__AUTH__MAX_TOKEN_LIFETIME_SECONDS", "0");
        assert_eq!(
            invalid_fields(&zero_lifetime)[0].0,
            "auth.max_token_lifetime_seconds"
        );
    }

    #[test]
    fn a_cluster_database_refuses_the_development_identity() {
        let development = |database_url: &str| {
            with_key(ConfigSource::default())
                .with_env("SUNSHINE__DATABASE__URL", database_url)
                .with_env("SUNSHINE__AUTH__ISSUER", "sunshine-dev")
                .with_env(
                    "SUNSHINE__AUTH__KEYS",
                    format!(
                        r#"[{{ kid = "idp-2026", public_key = "{PUBLIC_KEY}" }},
                            {{ kid = "dev", public_key = "{PUBLIC_KEY}" }}]"#
                    ),
                )
        };
        let cluster = development("postgres://postgres@127.0.0.1:5432/sunshine");
        let fields: Vec<String> = invalid_fields(&cluster)
            .into_iter()
            .map(|(field, _)| field)
            .collect();
        assert_eq!(fields, ["auth.issuer", "auth.keys[1].kid"]);

        // A kid `dev-…` is a development key too.
        let dev_prefixed = with_key(ConfigSource::default()).with_env(
            "SUNSHINE__AUTH__KEYS",
            format!(r#"[{{ kid = "dev-laptop", public_key = "{PUBLIC_KEY}" }}]"#),
        );
        assert_eq!(invalid_fields(&dev_prefixed)[0].0, "auth.keys[0].kid");

        // The explicit opt-in of `make run-cluster`; the embedded mode needs none.
        let opted_in = cluster.with_env("SUNSHINE__AUTH__ALLOW_DEVELOPMENT_KEYS", "true");
        let config = Config::load(&opted_in).unwrap();
        assert!(config.auth.allow_development_keys);
        assert!(config.auth.uses_development_identity());
        assert!(Config::load(&development("sqlite://data/sunshine.db")).is_ok());

        // The scenario tests' own issuer and random keys stay allowed on PostgreSQL.
        let tests = with_key(ConfigSource::default())
            .with_env("SUNSHINE__AUTH__ISSUER", "sunshine-test")
            .with_env("SUNSHINE__DATABASE__URL", "postgres://postgres@db/test");
        assert!(Config::load(&tests).is_ok());
    }

    #[test]
    fn each_service_has_its_own_audience() {
        let auth = AuthConfig::default();
        assert_eq!(auth.audience_for("intake"), "sunshine/intake");
        assert_eq!(
            auth.audience_for("department-integration"),
            "sunshine/department-integration"
        );
    }
}
