//! A development signing key in a local file (`.local/dev-signing-key` under `make run`), so a
//! developer can mint tokens for any role. Production verifies tokens from the district's
//! identity provider and never loads this file.
//!
//! The key is marked as a development key by its id (`dev`) and its tokens by their issuer
//! (`sunshine-dev`): configuration with a PostgreSQL database refuses both unless
//! `auth.allow_development_keys` is set (`make run-cluster` sets it).

use std::path::Path;

use anyhow::Context as _;
use sunshine_domain::OrgTier;
use sunshine_platform::Config;
use sunshine_platform::auth::{Audience, Claims, TokenIssuer};
use sunshine_platform::config::{AuthConfig, VerifyingKeyConfig};

/// Key id of the development key; [`sunshine_platform::auth::is_development_key_id`] knows it.
pub const DEV_KEY_ID: &str = "dev";
/// Issuer of development tokens; `make run` configures the same.
pub const DEV_ISSUER: &str = sunshine_platform::auth::DEVELOPMENT_ISSUER;

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

/// The audience naming each of `service_names` under `auth.audience`, e.g. `sunshine/intake`.
pub fn audience(auth: &AuthConfig, service_names: &[&str]) -> Audience {
    Audience::many(
        service_names
            .iter()
            .map(|service_name| auth.audience_for(service_name)),
    )
}

/// The audience of every service of the cluster.
pub fn every_service(auth: &AuthConfig) -> Audience {
    let names: Vec<&str> = crate::services::SERVICES
        .iter()
        .map(|entry| entry.name)
        .collect();
    audience(auth, &names)
}

/// A unit of `tier` in the EXAMPLE district, the default org unit of a development token.
pub fn example_org_unit(tier: OrgTier) -> &'static str {
    match tier {
        OrgTier::District => "990101000000",
        OrgTier::StreetTown => "990101001000",
        OrgTier::VillageCommunity => "990101001001",
    }
}

/// Claims for a development token valid for `hours`.
pub fn claims(
    audience: Audience,
    subject: &str,
    name: &str,
    role: sunshine_platform::Role,
    org_unit: &str,
    department_code: Option<String>,
    hours: u32,
) -> Claims {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    Claims {
        iss: DEV_ISSUER.into(),
        aud: audience,
        sub: subject.into(),
        exp: now.saturating_add(i64::from(hours) * 3600),
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
        let mut integration = sunshine_platform::config::IntegrationConfig::default();
        integration.generate_person_index_key()?;
        let text = format!(
            "# Written by `sunshine dev-init` for `make run`: embedded mode with a development key.\n\
             # Not for production. Delete this file to have it written again. With a PostgreSQL\n\
             # database the development issuer and key are refused unless\n\
             # auth.allow_development_keys = true (what `make run-cluster` sets).\n\
             [grpc]\nlisten_address = \"127.0.0.1:50051\"\ndrain_delay_ms = 0\n\n\
             [database]\nurl = \"sqlite://{database}\"\n\n\
             [bus]\nurl = \"memory://\"\n\n\
             [auth]\nissuer = \"{DEV_ISSUER}\"\nkeys = [{{ kid = \"{kid}\", public_key = \"{public_key}\" }}]\n\n\
             # Development keys of the case-event log; keep this file private.\n\
             [policy]\ndirectory = \"policy/example-district\"\n\
             workflows_file = \"services/review/workflows/example-district.toml\"\n\n\
             [log]\ncheckpoint_signing_key = \"{signing}\"\nkey_encryption_key = \"{kek}\"\nblind_index_key = \"{blind}\"\n\n\
             # department-integration's own person-index key (docs/security.md).\n\
             [integration]\nperson_index_key = \"{person_index}\"\n",
            database = database_path.display(),
            kid = issuer.key_id(),
            public_key = issuer.public_key_base64(),
            signing = log.checkpoint_signing_key,
            kek = log.key_encryption_key,
            blind = log.blind_index_key,
            person_index = integration.person_index_key,
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use sunshine_platform::auth::{TokenVerifier, is_development_key_id};
    use sunshine_platform::config::{ConfigError, ConfigSource};
    use sunshine_platform::{Config, Role};

    use super::*;
    use crate::services::SERVICES;

    fn scratch_directory(name: &str) -> std::path::PathBuf {
        let directory =
            std::env::temp_dir().join(format!("sunshine-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&directory);
        directory
    }

    #[test]
    fn development_tokens_are_for_every_service_by_default() {
        let issuer = TokenIssuer::generate(DEV_KEY_ID).unwrap();
        let mut config = Config::default();
        trust(&mut config, &issuer);
        let now = time::OffsetDateTime::now_utc();
        let token = issuer.sign(&claims(
            every_service(&config.auth),
            "admin-1",
            "管理员",
            Role::Admin,
            example_org_unit(Role::Admin.tier()),
            None,
            8,
        ));
        for entry in &SERVICES {
            let verifier = TokenVerifier::from_config(&config.auth, entry.name).unwrap();
            assert!(verifier.verify(&token, now).is_ok(), "{}", entry.name);
        }

        let narrowed = issuer.sign(&claims(
            audience(&config.auth, &["review"]),
            "clerk-1",
            "经办员",
            Role::VillageClerk,
            example_org_unit(Role::VillageClerk.tier()),
            None,
            1,
        ));
        let review = TokenVerifier::from_config(&config.auth, "review").unwrap();
        let intake = TokenVerifier::from_config(&config.auth, "intake").unwrap();
        assert!(review.verify(&narrowed, now).is_ok());
        assert!(intake.verify(&narrowed, now).is_err());
    }

    #[test]
    fn example_org_units_sit_at_their_tier() {
        for role in Role::ALL {
            let code = sunshine_domain::OrgUnitCode::parse(example_org_unit(role.tier())).unwrap();
            assert_eq!(code.tier(), role.tier(), "{role:?}");
        }
    }

    #[test]
    fn the_dev_init_configuration_is_refused_on_postgres_unless_opted_in() {
        assert!(is_development_key_id(DEV_KEY_ID));
        let directory = scratch_directory("dev-init");
        let config_path = init_embedded(&directory).unwrap();

        // As written (SQLite), it loads.
        let embedded = ConfigSource::default().with_file(&config_path);
        assert!(Config::load(&embedded).is_ok());

        // Pointed at PostgreSQL, the development issuer and key are refused...
        let cluster = embedded.with_env(
            "SUNSHINE__DATABASE__URL",
            "postgres://postgres@127.0.0.1:5432/sunshine",
        );
        let Err(ConfigError::Invalid(violations)) = Config::load(&cluster) else {
            panic!("expected the development identity to be refused on PostgreSQL")
        };
        let fields: Vec<&str> = violations
            .iter()
            .map(|violation| violation.field.as_str())
            .collect();
        assert_eq!(fields, ["auth.issuer", "auth.keys[0].kid"]);

        // ...unless explicitly allowed, as `make run-cluster` does.
        let opted_in = cluster.with_env("SUNSHINE__AUTH__ALLOW_DEVELOPMENT_KEYS", "true");
        assert!(Config::load(&opted_in).is_ok());
        std::fs::remove_dir_all(directory).unwrap();
    }
}
