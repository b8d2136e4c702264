//! Who may sequence and relay: one worker at a time per log, so two replicas never interleave
//! the global order or the published stream.
//!
//! PostgreSQL: a session advisory lock held on a connection set aside from the pool; if that
//! connection dies (process crash, network), the server releases the lock and another replica
//! takes over. SQLite (embedded, one process): a process-wide mutex per database URL.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use sqlx::{AnyConnection, Connection as _};
use sunshine_platform::config::DatabaseKind;
use tokio::sync::OwnedMutexGuard;

use crate::error::StoreError;
use crate::store::EventStore;

/// A held lease; dropping it releases it.
#[derive(Debug)]
pub enum Lease {
    Postgres { connection: AnyConnection, key: i64 },
    Local(OwnedMutexGuard<()>),
}

/// Lock key for a lease name: the first eight bytes of its SHA-256.
fn lease_key(name: &str) -> i64 {
    use sha2::Digest as _;
    let digest = sha2::Sha256::digest(name.as_bytes());
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&digest[..8]);
    i64::from_be_bytes(bytes)
}

fn local_locks() -> &'static Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>> {
    static LOCKS: OnceLock<Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>> = OnceLock::new();
    LOCKS.get_or_init(|| Mutex::new(HashMap::new()))
}

impl Lease {
    /// Takes the lease `name` if nobody holds it.
    pub async fn try_acquire(store: &EventStore, name: &str) -> Result<Option<Lease>, StoreError> {
        match store.kind() {
            DatabaseKind::Postgres => {
                let key = lease_key(name);
                let mut pooled = store.pool().acquire().await?;
                let acquired: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
                    .bind(key)
                    .fetch_one(&mut *pooled)
                    .await?;
                if acquired {
                    // The session holds the lock: it leaves the pool for as long as the lease.
                    Ok(Some(Lease::Postgres {
                        connection: pooled.detach(),
                        key,
                    }))
                } else {
                    // Nothing held on it: back to the pool (closing it cost every replica a new
                    // connection, a fork and a TLS handshake, at every try).
                    Ok(None)
                }
            }
            DatabaseKind::Sqlite => {
                let identity = format!("{}#{name}", store.identity());
                let mutex = {
                    let mut locks = local_locks()
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                    Arc::clone(locks.entry(identity).or_default())
                };
                Ok(mutex.try_lock_owned().ok().map(Lease::Local))
            }
        }
    }

    /// Whether the lease is still held (the PostgreSQL session is alive).
    pub async fn is_held(&mut self) -> bool {
        match self {
            Lease::Postgres { connection, .. } => connection.ping().await.is_ok(),
            Lease::Local(_) => true,
        }
    }

    /// Gives the lease up now.
    pub async fn release(self) {
        if let Lease::Postgres {
            mut connection,
            key,
        } = self
        {
            let _ = sqlx::query("SELECT pg_advisory_unlock($1)")
                .bind(key)
                .execute(&mut connection)
                .await;
            let _ = connection.close().await;
        }
    }
}
