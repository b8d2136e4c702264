//! Finding events in the log by their registered type (`sunshine_proto::events`), never by a
//! spelled-out type name.

use sunshine_eventlog::RecordedEvent;
use sunshine_proto::events::Event;

/// Whether `stored` is an event of the registered type `E`.
pub fn is<E: Event>(stored: &RecordedEvent) -> bool {
    stored.event_type == E::TYPE
}

/// The events of type `E` among `events`, decoded, in their order.
pub fn decoded<E: Event>(events: &[RecordedEvent]) -> anyhow::Result<Vec<E>> {
    events
        .iter()
        .filter(|stored| is::<E>(stored))
        .map(|stored| Ok(E::decode(stored.payload.as_slice())?))
        .collect()
}
