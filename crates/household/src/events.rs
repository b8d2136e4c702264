//! The events of a household stream, `intake-household-<household id>`: the registry part
//! (registration, changes of circumstances, deaths and their corrections, moves) and the
//! household's applications (submitted, flagged for a relative of an official, closed). One
//! stream, so "one open application per program" is decided with optimistic concurrency.

use sunshine_eventlog::{StreamId, event::StreamIdError};
use sunshine_proto::v1 as pb;

sunshine_proto::stream_events! {
    /// The events of a household stream. Decoding is strict: a household stream holds nothing
    /// else, and a fold that skipped an event would decide on a household that is not so.
    #[derive(Debug, Clone, PartialEq)]
    pub enum HouseholdEvent in "intake-household" {
        Registered(pb::HouseholdRegistered),
        CircumstanceChanged(pb::CircumstanceChanged),
        MemberDied(pb::MemberDied),
        DeathRecordCorrected(pb::DeathRecordCorrected),
        Moved(pb::HouseholdMoved),
        ApplicationSubmitted(pb::ApplicationSubmitted),
        RelativeOfOfficialFlagged(pb::RelativeOfOfficialFlagged),
        ApplicationClosed(pb::ApplicationClosed),
        // household composition
        MemberJoined(pb::MemberJoined),
        MemberLeft(pb::MemberLeft),
    }
}

/// The stream of household `household_id`.
pub fn stream_id(household_id: &str) -> Result<StreamId, StreamIdError> {
    StreamId::new("intake", "household", household_id)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use sunshine_proto::events::{Event as _, EventDecodeError, StreamEvent, TypedEvent as _};

    use super::*;

    #[test]
    fn events_round_trip_through_their_registered_types() {
        let events = [
            HouseholdEvent::Registered(pb::HouseholdRegistered {
                household_id: "h1".into(),
                ..Default::default()
            }),
            HouseholdEvent::ApplicationSubmitted(pb::ApplicationSubmitted {
                case_id: "c1".into(),
                ..Default::default()
            }),
            HouseholdEvent::DeathRecordCorrected(pb::DeathRecordCorrected {
                member_id: "m2".into(),
                ..Default::default()
            }),
        ];
        for event in events {
            let decoded =
                HouseholdEvent::decode(event.event_type(), &event.encode_payload()).unwrap();
            assert_eq!(decoded, event);
        }
        assert_eq!(
            HouseholdEvent::Registered(pb::HouseholdRegistered::default()).event_type(),
            pb::HouseholdRegistered::TYPE
        );
    }

    #[test]
    fn another_kinds_event_is_a_typed_error_not_a_skip() {
        assert_eq!(
            HouseholdEvent::decode(pb::CaseOpened::TYPE, b""),
            Err(EventDecodeError::UnknownType {
                stream_kind: "intake-household",
                event_type: pb::CaseOpened::TYPE.to_owned(),
            })
        );
        let stream = stream_id("0190f3c4-0000-7000-8000-000000000001").unwrap();
        assert!(HouseholdEvent::is_stream(stream.as_str()));
        assert!(!HouseholdEvent::is_stream("intake-access-1"));
    }
}
