//! A development signing key in a local file (`.local/dev-signing-key` under `make run`), so a
//! developer can mint tokens for any role. Production verifies tokens from the district's
//! identity provider and never loads this file.

use std::path::Path;

use anyhow::Context as _;
use sunshine_platform::Config;
use sunshine_platform::auth::{Claims, TokenIssuer};
use sunshine_platform::config::VerifyingKeyConfig;

/// Key id of the development key.
pub const DEV_KEY_ID: &str = "dev";
/// Issuer and audience used by development tokens; `make run` configures the same.
pub const DEV_ISSUER: &str = "sunshine-dev";

/// Reads the key at `path`, creating it (mode 0600) if it does not exist.
pub fn load_or_create(path: &Path) -> anyhow::Result<TokenIssuer> {
    if path.exists() {
        let seed =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        return TokenIssuer::from_base64_seed(DEV_KEY_ID, &seed)
            .with_context(|| format!("{} is not a development key", path.display()));
    }
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let issuer = TokenIssuer::generate(DEV_KEY_ID)?;
    std::fs::write(path, issuer.seed_base64())
        .with_context(|| format!("writing {}", path.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(issuer)
}

/// Trusts `issuer`'s key and issuer name in `config`, beside any configured keys.
pub fn trust(config: &mut Config, issuer: &TokenIssuer) {
    config.auth.issuer = DEV_ISSUER.into();
    config.auth.keys.retain(|key| key.kid != issuer.key_id());
    config.auth.keys.push(VerifyingKeyConfig {
        kid: issuer.key_id().into(),
        public_key: issuer.public_key_base64(),
    });
}

/// Claims for a development token valid for `hours`.
pub fn claims(
    audience: &str,
    subject: &str,
    name: &str,
    role: sunshine_platform::Role,
    org_unit: &str,
    department_code: Option<String>,
    hours: i64,
) -> Claims {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    Claims {
        iss: DEV_ISSUER.into(),
        aud: audience.into(),
        sub: subject.into(),
        exp: now + hours * 3600,
        nbf: None,
        iat: now,
        name: name.into(),
        role,
        org_unit: org_unit.into(),
        department_code,
        scopes: Vec::new(),
    }
}

/// Writes `directory/sunshine.toml` for the embedded mode (SQLite under `directory/data`, the
/// in-process bus, ports from 50051, the development key trusted) unless it exists, and makes
/// sure the development key exists. Returns the config file's path.
pub fn init_embedded(directory: &Path) -> anyhow::Result<std::path::PathBuf> {
    let issuer = load_or_create(&directory.join("dev-signing-key"))?;
    let config_path = directory.join("sunshine.toml");
    if !config_path.exists() {
        std::fs::create_dir_all(directory.join("data"))?;
        let database_path = directory.join("data").join("sunshine.db");
        let mut log = sunshine_platform::config::LogConfig::default();
        log.generate_keys()?;
        let text = format!(
            "# Written by `sunshine dev-init` for `make run`: embedded mode with a development key.\n\
             # Not for production. Delete this file to have it written again.\n\
             [grpc]\nlisten_address = \"127.0.0.1:50051\"\ndrain_delay_ms = 0\n\n\
             [database]\nurl = \"sqlite://{database}\"\n\n\
             [bus]\nurl = \"memory://\"\n\n\
             [auth]\nissuer = \"{DEV_ISSUER}\"\nkeys = [{{ kid = \"{kid}\", public_key = \"{public_key}\" }}]\n\n\
             # Development keys of the case-event log; keep this file private.\n\
             [policy]\ndirectory = \"policy/example-district\"\n\
             workflows_file = \"services/review/workflows/example-district.toml\"\n\n\
             [log]\ncheckpoint_signing_key = \"{signing}\"\nkey_encryption_key = \"{kek}\"\nblind_index_key = \"{blind}\"\n",
            database = database_path.display(),
            kid = issuer.key_id(),
            public_key = issuer.public_key_base64(),
            signing = log.checkpoint_signing_key,
            kek = log.key_encryption_key,
            blind = log.blind_index_key,
        );
        std::fs::write(&config_path, text)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(&config_path, std::fs::Permissions::from_mode(0o600))?;
        }
    }
    Ok(config_path)
}
