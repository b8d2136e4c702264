//! What can go wrong with the store, and how a stored value that cannot be what the log wrote
//! becomes [`StoreError::Corrupt`]. Every module of the runtime returns [`StoreError`] (or wraps
//! it); the one mapping to a gRPC status is here.

use sunshine_evidence::merkle::Hash;
use sunshine_platform::ApiError;
use uuid::Uuid;

/// What can go wrong with the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The stream is not at the expected version: someone else wrote first.
    #[error("stream {stream_id} is at version {actual}, expected {expected}")]
    Conflict {
        stream_id: String,
        expected: String,
        actual: u64,
    },
    /// The command id was used before for another request (another stream, or the same stream
    /// with other content). The message names neither the stream nor its content: out of the
    /// caller's scope they must stay unknown.
    #[error(
        "command id {command_id} was already used for a different request; a retry must repeat its request exactly, and a new request needs a new command id"
    )]
    CommandReused { command_id: String },
    #[error("event id {0} is already in the log")]
    DuplicateEventId(Uuid),
    #[error("invalid append: {0}")]
    Invalid(String),
    /// An event's encoded payload is over `log.max_event_payload_bytes`: nothing is written.
    /// The writer must split what it records into more, smaller events.
    #[error(
        "events[{index}] ({event_type}) has a payload of {bytes} bytes, over the log's limit of {limit} bytes per event"
    )]
    EventTooLarge {
        index: usize,
        event_type: String,
        bytes: usize,
        limit: usize,
    },
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// A stored row that cannot be what the log wrote (e.g. a hash of the wrong length).
    #[error("corrupt row: {0}")]
    Corrupt(String),
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Conflict { .. } => ApiError::Conflict(error.to_string()),
            StoreError::CommandReused { .. } => {
                ApiError::invalid_field("command_id", error.to_string())
            }
            StoreError::DuplicateEventId(_) => ApiError::AlreadyExists {
                what: "event".into(),
                existing_id: None,
            },
            StoreError::Invalid(message) => ApiError::invalid_field("events", message),
            // The service wrote an event too large to publish: its fault, not the caller's.
            StoreError::EventTooLarge { .. } => ApiError::internal(error),
            StoreError::Database(
                sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::PoolClosed,
            ) => ApiError::Unavailable("the database is not reachable".into()),
            other => ApiError::internal(other),
        }
    }
}

/// A stored hash: 32 bytes, or the row is corrupt.
pub(crate) fn to_hash(bytes: &[u8]) -> Result<Hash, StoreError> {
    bytes
        .try_into()
        .map_err(|_| StoreError::Corrupt(format!("a hash of {} bytes", bytes.len())))
}

/// A stored BIGINT that is a count or position: never negative, or the row is corrupt.
pub(crate) fn to_u64(value: i64) -> Result<u64, StoreError> {
    u64::try_from(value).map_err(|_| StoreError::Corrupt(format!("negative value {value}")))
}

/// A count or position as the BIGINT it is stored as.
pub(crate) fn to_i64(value: u64) -> Result<i64, StoreError> {
    i64::try_from(value).map_err(|_| StoreError::Invalid(format!("value {value} out of range")))
}
