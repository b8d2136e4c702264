//! Per-subject data keys for personal data (crypto-shredding).
//!
//! Each subject (a household, typically) gets its own data key, stored wrapped by the key
//! encryption key from configuration. Personal fields are sealed with it before they go into
//! an event payload ([`crate::crypto::seal`]); the log hashes the ciphertext. Destroying the
//! subject's keys (a deletion order, the end of a retention period) makes those fields
//! unreadable for ever, while every hash, chain link and checkpoint still verifies. The
//! destruction itself is recorded in `destroyed_data_keys` (who, when, why, never the key).
//!
//! A [`KeyStore`] runs in one of two modes:
//!
//! - [`KeyStore::new`], with the key-encryption key (intake, payment): it seals with the
//!   subject's current key (the newest row in `data_keys`, created if there is none), opens
//!   what any mode sealed, and destroys.
//! - [`KeyStore::seal_only`], with only the [`SealingPublicKey`] derived from that key (review,
//!   which seals home-visit findings and never opens them). It holds nothing that opens
//!   personal data: it cannot unwrap the subject's keys, so every [`KeyStore::seal`] and
//!   [`KeyStore::seal_all`] call creates a fresh data key for the subject (a new `dk-<uuid v7>`
//!   row, wrapped to the public key, format 0x02 in [`crate::crypto`]) and forgets it after
//!   sealing. [`KeyStore::open`], [`KeyStore::key`] and [`KeyStore::key_for`] answer
//!   [`KeyError::CannotOpen`]; [`KeyStore::destroy`] works as in the other mode and shreds
//!   these keys with the rest of the subject's. A key-encryption-key store opens what a
//!   seal-only store sealed, and may go on sealing with such a key when it is the subject's
//!   newest.

use sqlx::Row as _;

use crate::crypto::{self, CryptoError, DataKey, KeyEncryptionKey, SealingPublicKey};
use crate::error::StoreError;
use crate::event::now_micros;
use crate::store::EventStore;

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    /// The key was destroyed: the value is gone for good.
    #[error("data key {key_id} was destroyed")]
    Destroyed { key_id: String },
    #[error("no data key {key_id}")]
    Unknown { key_id: String },
    /// A seal-only store ([`KeyStore::seal_only`]) was asked for a key or to open a value.
    #[error("this process holds no key that opens personal data (its key store only seals)")]
    CannotOpen,
    /// The log's configuration does not give what a process needs (the field and why).
    #[error("{0}")]
    Config(String),
}

impl From<sqlx::Error> for KeyError {
    fn from(error: sqlx::Error) -> Self {
        KeyError::Store(StoreError::Database(error))
    }
}

/// The data keys of one log.
pub struct KeyStore {
    store: EventStore,
    wrapping: Wrapping,
    /// While the key-encryption key is rotated: the one before it, tried when the current one
    /// does not unwrap a data key ([`rewrap_data_keys`] has not reached it yet).
    previous: Option<KeyEncryptionKey>,
}

/// What a key store wraps data keys with.
enum Wrapping {
    /// Wraps and unwraps: seals and opens.
    KeyEncryptionKey(KeyEncryptionKey),
    /// Wraps only: seals with a fresh key each time, opens nothing.
    SealingPublicKey(SealingPublicKey),
}

impl std::fmt::Debug for KeyStore {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("KeyStore")
            .field("can_open", &self.can_open())
            .finish_non_exhaustive()
    }
}

impl KeyStore {
    pub fn new(store: EventStore, key_encryption_key: KeyEncryptionKey) -> Self {
        KeyStore {
            store,
            wrapping: Wrapping::KeyEncryptionKey(key_encryption_key),
            previous: None,
        }
    }

    /// During a rotation of the key-encryption key: also unwraps with `previous`, the key
    /// before the current one, until [`rewrap_data_keys`] has wrapped every data key anew.
    pub fn with_previous(mut self, previous: KeyEncryptionKey) -> Self {
        self.previous = Some(previous);
        self
    }

    /// A store that seals (each call with a fresh data key wrapped to `key`) and destroys, but
    /// opens nothing: for a process that must not hold the key-encryption key.
    pub fn seal_only(store: EventStore, key: SealingPublicKey) -> Self {
        KeyStore {
            store,
            wrapping: Wrapping::SealingPublicKey(key),
            previous: None,
        }
    }

    /// Whether this store can open sealed values (it was made with the key-encryption key).
    pub fn can_open(&self) -> bool {
        matches!(self.wrapping, Wrapping::KeyEncryptionKey(_))
    }

    /// Unwraps a stored data key with the current key-encryption key or, during a rotation,
    /// the previous one.
    fn unwrap(&self, wrapped: &[u8], key_id: &str) -> Result<DataKey, KeyError> {
        let current = self.key_encryption_key()?;
        match (current.unwrap(wrapped, key_id), &self.previous) {
            (Ok(key), _) => Ok(key),
            (Err(_), Some(previous)) => Ok(previous.unwrap(wrapped, key_id)?),
            (Err(error), None) => Err(error.into()),
        }
    }

    fn key_encryption_key(&self) -> Result<&KeyEncryptionKey, KeyError> {
        match &self.wrapping {
            Wrapping::KeyEncryptionKey(key_encryption_key) => Ok(key_encryption_key),
            Wrapping::SealingPublicKey(_) => Err(KeyError::CannotOpen),
        }
    }

    /// The subject's current key, created if it has none. [`KeyError::CannotOpen`] in a
    /// seal-only store.
    pub async fn key_for(&self, subject: &str) -> Result<(String, DataKey), KeyError> {
        self.key_encryption_key()?;
        let existing = sqlx::query(
            "SELECT key_id, wrapped_key FROM data_keys WHERE subject = $1 ORDER BY created_at_us DESC, key_id DESC LIMIT 1",
        )
        .bind(subject)
        .fetch_optional(self.store.pool())
        .await?;
        if let Some(row) = existing {
            let key_id: String = row.try_get(0)?;
            let wrapped: Vec<u8> = row.try_get(1)?;
            let key = self.unwrap(&wrapped, &key_id)?;
            return Ok((key_id, key));
        }
        self.create_key(subject).await
    }

    /// A new key for `subject`, stored wrapped as this store wraps.
    async fn create_key(&self, subject: &str) -> Result<(String, DataKey), KeyError> {
        let key_id = format!("dk-{}", uuid::Uuid::now_v7());
        let key = DataKey::generate()?;
        let wrapped = match &self.wrapping {
            Wrapping::KeyEncryptionKey(key_encryption_key) => {
                key_encryption_key.wrap(&key, &key_id)?
            }
            Wrapping::SealingPublicKey(public_key) => public_key.wrap(&key, &key_id)?,
        };
        sqlx::query("INSERT INTO data_keys (key_id, subject, wrapped_key, created_at_us) VALUES ($1, $2, $3, $4)")
            .bind(key_id.as_str())
            .bind(subject)
            .bind(wrapped)
            .bind(now_micros())
            .execute(self.store.pool())
            .await?;
        Ok((key_id, key))
    }

    /// The key to seal the subject's values with: its current one, or in a seal-only store a
    /// fresh one.
    async fn sealing_key_for(&self, subject: &str) -> Result<(String, DataKey), KeyError> {
        match self.wrapping {
            Wrapping::KeyEncryptionKey(_) => self.key_for(subject).await,
            Wrapping::SealingPublicKey(_) => self.create_key(subject).await,
        }
    }

    /// A key by id. [`KeyError::CannotOpen`] in a seal-only store.
    pub async fn key(&self, key_id: &str) -> Result<DataKey, KeyError> {
        self.key_encryption_key()?;
        let row = sqlx::query("SELECT wrapped_key FROM data_keys WHERE key_id = $1")
            .bind(key_id)
            .fetch_optional(self.store.pool())
            .await?;
        match row {
            Some(row) => self.unwrap(&row.try_get::<Vec<u8>, _>(0)?, key_id),
            None => {
                let destroyed: Option<String> =
                    sqlx::query_scalar("SELECT key_id FROM destroyed_data_keys WHERE key_id = $1")
                        .bind(key_id)
                        .fetch_optional(self.store.pool())
                        .await?;
                Err(match destroyed {
                    Some(_) => KeyError::Destroyed {
                        key_id: key_id.to_owned(),
                    },
                    None => KeyError::Unknown {
                        key_id: key_id.to_owned(),
                    },
                })
            }
        }
    }

    /// Seals `plaintext` with the subject's key (in a seal-only store, a fresh key of the
    /// subject's). `associated_data` binds the value to its place (e.g. the field name and the
    /// household id) and must be given again to open it.
    pub async fn seal(
        &self,
        subject: &str,
        plaintext: &[u8],
        associated_data: &[u8],
    ) -> Result<Vec<u8>, KeyError> {
        let (key_id, key) = self.sealing_key_for(subject).await?;
        Ok(crypto::seal(&key, &key_id, plaintext, associated_data)?)
    }

    /// Seals several values of one subject with one look-up of its key (in a seal-only store,
    /// one fresh key for them all): each `(plaintext, associated_data)` as [`KeyStore::seal`]
    /// would, in order.
    pub async fn seal_all(
        &self,
        subject: &str,
        values: &[(&[u8], &[u8])],
    ) -> Result<Vec<Vec<u8>>, KeyError> {
        if values.is_empty() {
            return Ok(Vec::new());
        }
        let (key_id, key) = self.sealing_key_for(subject).await?;
        values
            .iter()
            .map(|(plaintext, associated_data)| {
                Ok(crypto::seal(&key, &key_id, plaintext, associated_data)?)
            })
            .collect()
    }

    /// Opens a sealed value; [`KeyError::Destroyed`] once its key was destroyed,
    /// [`KeyError::CannotOpen`] in a seal-only store.
    pub async fn open(&self, sealed: &[u8], associated_data: &[u8]) -> Result<Vec<u8>, KeyError> {
        self.key_encryption_key()?;
        let key_id = crypto::sealed_key_id(sealed)?.to_owned();
        let key = self.key(&key_id).await?;
        Ok(crypto::open(&key, sealed, associated_data)?)
    }

    /// Opens many sealed values with one look-up of their keys (a few statements however many
    /// values, rather than one per value as [`KeyStore::open`]): each value's plaintext or why
    /// it does not open ([`KeyError::Destroyed`], [`KeyError::Unknown`], a crypto error), in
    /// the order given. [`KeyError::CannotOpen`] in a seal-only store.
    pub async fn open_all(
        &self,
        values: &[(&[u8], &[u8])],
    ) -> Result<Vec<Result<Vec<u8>, KeyError>>, KeyError> {
        self.key_encryption_key()?;
        let mut key_ids: Vec<&str> = values
            .iter()
            .filter_map(|(sealed, _)| crypto::sealed_key_id(sealed).ok())
            .collect();
        key_ids.sort_unstable();
        key_ids.dedup();
        let mut keys: std::collections::BTreeMap<String, DataKey> =
            std::collections::BTreeMap::new();
        // Few enough parameters a statement for either backend.
        for batch in key_ids.chunks(500) {
            let placeholders: Vec<String> = (1..=batch.len()).map(|at| format!("${at}")).collect();
            let sql = format!(
                "SELECT key_id, wrapped_key FROM data_keys WHERE key_id IN ({})",
                placeholders.join(", ")
            );
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
            for key_id in batch {
                query = query.bind(*key_id);
            }
            for row in query.fetch_all(self.store.pool()).await? {
                let key_id: String = row.try_get(0)?;
                let wrapped: Vec<u8> = row.try_get(1)?;
                let key = self.unwrap(&wrapped, &key_id)?;
                keys.insert(key_id, key);
            }
        }
        let mut opened = Vec::with_capacity(values.len());
        for (sealed, associated_data) in values {
            let key_id = match crypto::sealed_key_id(sealed) {
                Ok(key_id) => key_id,
                Err(error) => {
                    opened.push(Err(error.into()));
                    continue;
                }
            };
            opened.push(match keys.get(key_id) {
                Some(key) => crypto::open(key, sealed, associated_data).map_err(KeyError::from),
                // Not among the stored keys: destroyed or unknown, as `key` tells them apart.
                None => self.key(key_id).await.and_then(|key| {
                    crypto::open(&key, sealed, associated_data).map_err(KeyError::from)
                }),
            });
        }
        Ok(opened)
    }

    /// Destroys every key of `subject`; returns how many. The record of the destruction stays.
    /// Needs no key, so a seal-only store destroys too.
    pub async fn destroy(&self, subject: &str, reason: &str) -> Result<usize, KeyError> {
        let mut transaction = self.store.pool().begin().await?;
        let key_ids: Vec<String> =
            sqlx::query_scalar("SELECT key_id FROM data_keys WHERE subject = $1")
                .bind(subject)
                .fetch_all(&mut *transaction)
                .await?;
        let now = now_micros();
        for key_id in &key_ids {
            sqlx::query("INSERT INTO destroyed_data_keys (key_id, subject, destroyed_at_us, reason) VALUES ($1, $2, $3, $4)")
                .bind(key_id.as_str())
                .bind(subject)
                .bind(now)
                .bind(reason)
                .execute(&mut *transaction)
                .await?;
        }
        sqlx::query("DELETE FROM data_keys WHERE subject = $1")
            .bind(subject)
            .execute(&mut *transaction)
            .await?;
        transaction.commit().await?;
        Ok(key_ids.len())
    }
}

/// What [`rewrap_data_keys`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Rewrapped {
    /// Data keys wrapped under the previous key (either format) and now under the current one.
    pub rewrapped: usize,
    /// Data keys the current key already unwrapped (a second run, or created since).
    pub already_current: usize,
}

/// Rotates the key-encryption key without touching the log: every data key the `current` key
/// does not unwrap is unwrapped with `previous` and wrapped again under `current` (symmetric
/// format 0x01; keys a seal-only process wrapped to the previous sealing public key too), in
/// place. The data keys themselves, and so every sealed value in every event, stay as they
/// are: the hashes, chains and checkpoints are untouched. Safe to run again, and beside
/// running services (each row is replaced only if it still holds what was read). A data key
/// that neither key unwraps stops it, named. Run as the tables' owner: the services' roles may
/// not UPDATE `data_keys`.
pub async fn rewrap_data_keys(
    store: &EventStore,
    previous: &KeyEncryptionKey,
    current: &KeyEncryptionKey,
) -> Result<Rewrapped, KeyError> {
    let mut done = Rewrapped::default();
    let mut after = String::new();
    loop {
        let rows = sqlx::query(
            "SELECT key_id, wrapped_key FROM data_keys WHERE key_id > $1 ORDER BY key_id LIMIT 500",
        )
        .bind(after.as_str())
        .fetch_all(store.pool())
        .await?;
        let Some(last) = rows.last() else {
            return Ok(done);
        };
        after = last.try_get(0)?;
        let mut transaction = store.pool().begin().await?;
        for row in &rows {
            let key_id: String = row.try_get(0)?;
            let wrapped: Vec<u8> = row.try_get(1)?;
            if current.unwrap(&wrapped, &key_id).is_ok() {
                done.already_current += 1;
                continue;
            }
            let key = previous.unwrap(&wrapped, &key_id).map_err(|_| {
                KeyError::Config(format!(
                    "data key {key_id} opens under neither the current nor the previous key-encryption key"
                ))
            })?;
            sqlx::query(
                "UPDATE data_keys SET wrapped_key = $1 WHERE key_id = $2 AND wrapped_key = $3",
            )
            .bind(current.wrap(&key, &key_id)?)
            .bind(key_id.as_str())
            .bind(wrapped)
            .execute(&mut *transaction)
            .await?;
            done.rewrapped += 1;
        }
        transaction.commit().await?;
    }
}

/// `config` as a process holding `keys` must be given it: the keys its role does not hold
/// removed (inline and as files), the public checkpoint verifier key in place of the signing
/// key, and, for one that seals without the key-encryption key, the public sealing key derived
/// from it. For tools and tests that start the cluster's processes
/// from one configuration; in production each process's Secrets are mounted separately.
pub fn log_config_for(
    config: &sunshine_platform::config::LogConfig,
    keys: sunshine_platform::config::LogKeys,
) -> Result<sunshine_platform::config::LogConfig, KeyError> {
    let mut given = config.clone();
    if keys.sealing && !keys.key_encryption && given.sealing_public_key.trim().is_empty() {
        given.sealing_public_key = KeyEncryptionKey::from_base64(&config.key_encryption_key)?
            .sealing_public_key()
            .to_base64();
    }
    if !keys.checkpoint_signing {
        if given.verifier_key.trim().is_empty() {
            given.verifier_key = config.checkpoint_verifier_key().map_err(KeyError::Config)?;
        }
        given.checkpoint_signing_key.clear();
        given.checkpoint_signing_key_file.clear();
    }
    if !keys.key_encryption {
        given.key_encryption_key.clear();
        given.key_encryption_key_file.clear();
        given.previous_key_encryption_key.clear();
        given.previous_key_encryption_key_file.clear();
    }
    if !keys.blind_index {
        given.blind_index_key.clear();
        given.blind_index_key_file.clear();
    }
    Ok(given)
}
