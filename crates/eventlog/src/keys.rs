//! Per-subject data keys for personal data (crypto-shredding).
//!
//! Each subject (a household, typically) gets its own data key, stored wrapped by the key
//! encryption key from configuration. Personal fields are sealed with it before they go into
//! an event payload ([`crate::crypto::seal`]); the log hashes the ciphertext. Destroying the
//! subject's keys (a deletion order, the end of a retention period) makes those fields
//! unreadable for ever, while every hash, chain link and checkpoint still verifies. The
//! destruction itself is recorded in `destroyed_data_keys` (who, when, why, never the key).

use sqlx::Row as _;

use crate::crypto::{self, CryptoError, DataKey, KeyEncryptionKey};
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
}

impl From<sqlx::Error> for KeyError {
    fn from(error: sqlx::Error) -> Self {
        KeyError::Store(StoreError::Database(error))
    }
}

/// The data keys of one log.
pub struct KeyStore {
    store: EventStore,
    key_encryption_key: KeyEncryptionKey,
}

impl std::fmt::Debug for KeyStore {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("KeyStore").finish_non_exhaustive()
    }
}

impl KeyStore {
    pub fn new(store: EventStore, key_encryption_key: KeyEncryptionKey) -> Self {
        KeyStore {
            store,
            key_encryption_key,
        }
    }

    /// The subject's current key, created if it has none.
    pub async fn key_for(&self, subject: &str) -> Result<(String, DataKey), KeyError> {
        let existing = sqlx::query(
            "SELECT key_id, wrapped_key FROM data_keys WHERE subject = $1 ORDER BY created_at_us DESC, key_id DESC LIMIT 1",
        )
        .bind(subject)
        .fetch_optional(self.store.pool())
        .await?;
        if let Some(row) = existing {
            let key_id: String = row.try_get(0)?;
            let wrapped: Vec<u8> = row.try_get(1)?;
            let key = self.key_encryption_key.unwrap(&wrapped, &key_id)?;
            return Ok((key_id, key));
        }
        let key_id = format!("dk-{}", uuid::Uuid::now_v7());
        let key = DataKey::generate()?;
        let wrapped = self.key_encryption_key.wrap(&key, &key_id)?;
        sqlx::query("INSERT INTO data_keys (key_id, subject, wrapped_key, created_at_us) VALUES ($1, $2, $3, $4)")
            .bind(key_id.as_str())
            .bind(subject)
            .bind(wrapped)
            .bind(now_micros())
            .execute(self.store.pool())
            .await?;
        Ok((key_id, key))
    }

    /// A key by id.
    pub async fn key(&self, key_id: &str) -> Result<DataKey, KeyError> {
        let row = sqlx::query("SELECT wrapped_key FROM data_keys WHERE key_id = $1")
            .bind(key_id)
            .fetch_optional(self.store.pool())
            .await?;
        match row {
            Some(row) => Ok(self
                .key_encryption_key
                .unwrap(&row.try_get::<Vec<u8>, _>(0)?, key_id)?),
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

    /// Seals `plaintext` with the subject's key. `associated_data` binds the value to its place
    /// (e.g. the field name and the household id) and must be given again to open it.
    pub async fn seal(
        &self,
        subject: &str,
        plaintext: &[u8],
        associated_data: &[u8],
    ) -> Result<Vec<u8>, KeyError> {
        let (key_id, key) = self.key_for(subject).await?;
        Ok(crypto::seal(&key, &key_id, plaintext, associated_data)?)
    }

    /// Seals several values of one subject with one look-up of its key: each
    /// `(plaintext, associated_data)` as [`KeyStore::seal`] would, in order.
    pub async fn seal_all(
        &self,
        subject: &str,
        values: &[(&[u8], &[u8])],
    ) -> Result<Vec<Vec<u8>>, KeyError> {
        if values.is_empty() {
            return Ok(Vec::new());
        }
        let (key_id, key) = self.key_for(subject).await?;
        values
            .iter()
            .map(|(plaintext, associated_data)| {
                Ok(crypto::seal(&key, &key_id, plaintext, associated_data)?)
            })
            .collect()
    }

    /// Opens a sealed value; [`KeyError::Destroyed`] once its key was destroyed.
    pub async fn open(&self, sealed: &[u8], associated_data: &[u8]) -> Result<Vec<u8>, KeyError> {
        let key_id = crypto::sealed_key_id(sealed)?.to_owned();
        let key = self.key(&key_id).await?;
        Ok(crypto::open(&key, sealed, associated_data)?)
    }

    /// Destroys every key of `subject`; returns how many. The record of the destruction stays.
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
