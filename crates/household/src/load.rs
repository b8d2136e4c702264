//! One household from the log: read its stream, decode each event with the stream kind's one
//! typed decode, fold.

use sunshine_eventlog::{EventStore, StoreError};
use sunshine_platform::ApiError;
use sunshine_proto::events::{EventDecodeError, StreamEvent as _};

use crate::events::{HouseholdEvent, stream_id};
use crate::state::HouseholdState;

/// Why a household could not be read.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("not a household id")]
    InvalidId,
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("household stream: {0}")]
    Decode(#[from] EventDecodeError),
}

impl From<LoadError> for ApiError {
    fn from(error: LoadError) -> Self {
        match error {
            LoadError::InvalidId => ApiError::invalid_field("household_id", "not a household id"),
            LoadError::Store(error) => error.into(),
            LoadError::Decode(error) => ApiError::internal(error),
        }
    }
}

/// The household folded from its stream; `None` if there is none (or it does not start with a
/// registration).
pub async fn load(
    store: &EventStore,
    household_id: &str,
) -> Result<Option<HouseholdState>, LoadError> {
    let stream = stream_id(household_id).map_err(|_| LoadError::InvalidId)?;
    let recorded = store.read_stream(&stream, 1).await?;
    let mut events = Vec::with_capacity(recorded.len());
    for stored in &recorded {
        let event = HouseholdEvent::decode(&stored.event_type, &stored.payload)?;
        events.push((event, stored.stream_version, stored.recorded_at_us));
    }
    Ok(HouseholdState::fold(events))
}
