//! The registry of event types: which generated messages are events of the case-event log, the
//! type each is stored under, and its schema version; and, per stream kind, the typed enum its
//! stored events decode into.
//!
//! # The stored type
//! An event's `event_type` is its message's full protobuf name, `<package>.<message>`, built at
//! compile time from `prost::Name` ([`Event::TYPE`]). Nothing else spells it: code compares
//! with `pb::CaseOpened::TYPE` (a constant, so it works as a `match` pattern), writes with
//! `NewEvent::typed` (in `sunshine-eventlog`) and reads with a stream kind's `decode`. A test of
//! the workspace refuses the package's name as a string literal anywhere else.
//!
//! # Registering an event
//! Add the message to a `.proto` file, then one line to [`registry!`]'s list below (with
//! `= <n>` once its schema version moves past 1, alongside an upcaster for the older ones).
//! Requests and responses are messages too, but not events: only registered messages can be
//! appended.
//!
//! # Decoding, per stream kind
//! [`stream_events!`] declares a stream kind's events as an enum, one variant per message, and
//! derives [`TypedEvent`] (type, version, bytes, for writing) and [`StreamEvent`] (the one
//! typed `decode` of that kind). A type the enum does not list is
//! [`EventDecodeError::UnknownType`], an error: a stream's own reader folds every event of it,
//! and skipping one would decide on a wrong state. A reader that hears only some events of
//! another service's streams (a projection over the whole log) says so explicitly with
//! [`StreamEvent::decode_known`], which answers `None` for the rest.

use crate::v1;

/// A message registered as an event of the log.
pub trait Event: prost::Message + prost::Name + Default {
    /// The stored event type: the message's full protobuf name.
    const TYPE: &'static str;
    /// The schema version new events of this type are written with.
    const SCHEMA_VERSION: u32;
}

/// Whatever can be written as an event: a registered message, or a stream kind's enum.
pub trait TypedEvent {
    /// The stored event type ([`Event::TYPE`] of the message inside).
    fn event_type(&self) -> &'static str;
    /// The schema version it is written with.
    fn schema_version(&self) -> u32;
    /// The payload bytes, exactly as they will be stored and hashed.
    fn encode_payload(&self) -> Vec<u8>;
}

impl<E: Event> TypedEvent for E {
    fn event_type(&self) -> &'static str {
        E::TYPE
    }

    fn schema_version(&self) -> u32 {
        E::SCHEMA_VERSION
    }

    fn encode_payload(&self) -> Vec<u8> {
        self.encode_to_vec()
    }
}

/// The events of one stream kind (`<service>-<kind>-<id>`), decoded from their stored form.
/// Implemented by [`stream_events!`].
pub trait StreamEvent: TypedEvent + Sized {
    /// `<service>-<kind>`: the streams of this kind are `<STREAM_KIND>-<id>`.
    const STREAM_KIND: &'static str;
    /// Every event type the kind holds.
    const TYPES: &'static [&'static str];

    /// The one typed decode of a stored event of this kind; a type the kind does not hold is
    /// [`EventDecodeError::UnknownType`].
    fn decode(event_type: &str, payload: &[u8]) -> Result<Self, EventDecodeError>;

    /// [`StreamEvent::decode`] for a reader that hears only these events among others (a
    /// projection over the whole log): `None` for a type the kind does not list. A malformed
    /// payload of a listed type is still an error.
    fn decode_known(event_type: &str, payload: &[u8]) -> Result<Option<Self>, EventDecodeError> {
        match Self::decode(event_type, payload) {
            Ok(event) => Ok(Some(event)),
            Err(EventDecodeError::UnknownType { .. }) => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// Whether `stream_id` is a stream of this kind.
    fn is_stream(stream_id: &str) -> bool {
        stream_id
            .strip_prefix(Self::STREAM_KIND)
            .and_then(|rest| rest.strip_prefix('-'))
            .is_some_and(|id| !id.is_empty())
    }
}

/// Why a stored event is not one of its stream kind's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventDecodeError {
    #[error("event type {event_type} is not an event of {stream_kind} streams")]
    UnknownType {
        stream_kind: &'static str,
        event_type: String,
    },
    #[error("event of type {event_type} does not decode: {source}")]
    Malformed {
        event_type: &'static str,
        source: prost::DecodeError,
    },
}

/// Decodes one registered message (what [`stream_events!`] expands to per variant).
pub fn decode_message<E: Event>(payload: &[u8]) -> Result<E, EventDecodeError> {
    E::decode(payload).map_err(|source| EventDecodeError::Malformed {
        event_type: E::TYPE,
        source,
    })
}

/// Whether a stored event is of the registered type `E`.
pub fn is<E: Event>(event_type: &str) -> bool {
    event_type == E::TYPE
}

/// `<package>.<name>` as bytes, at compile time (what [`Event::TYPE`] is made of).
#[doc(hidden)]
pub const fn full_name_bytes<const LENGTH: usize>(package: &str, name: &str) -> [u8; LENGTH] {
    let package = package.as_bytes();
    let name = name.as_bytes();
    assert!(package.len() + 1 + name.len() == LENGTH);
    let mut bytes = [0u8; LENGTH];
    let mut index = 0;
    while index < package.len() {
        bytes[index] = package[index];
        index += 1;
    }
    bytes[index] = b'.';
    let mut offset = 0;
    while offset < name.len() {
        bytes[package.len() + 1 + offset] = name[offset];
        offset += 1;
    }
    bytes
}

#[doc(hidden)]
pub const fn utf8(bytes: &'static [u8]) -> &'static str {
    match core::str::from_utf8(bytes) {
        Ok(text) => text,
        Err(_) => panic!("a protobuf name is UTF-8"),
    }
}

/// Registers messages of [`crate::v1`] as events: `Message` (schema version 1) or
/// `Message = 2`.
macro_rules! registry {
    ($($message:ident $(= $version:literal)?),* $(,)?) => {
        $(
            impl Event for v1::$message {
                const TYPE: &'static str = {
                    const PACKAGE: &str = <v1::$message as prost::Name>::PACKAGE;
                    const NAME: &str = <v1::$message as prost::Name>::NAME;
                    const BYTES: [u8; PACKAGE.len() + 1 + NAME.len()] =
                        full_name_bytes(PACKAGE, NAME);
                    utf8(&BYTES)
                };
                const SCHEMA_VERSION: u32 = registry!(@version $($version)?);
            }
        )*

        /// Every registered event type.
        pub const REGISTERED: &[&str] = &[$(<v1::$message as Event>::TYPE),*];
    };
    (@version) => { 1 };
    (@version $version:literal) => { $version };
}

registry! {
    // intake: intake-household-<id>
    HouseholdRegistered,
    CircumstanceChanged,
    MemberDied,
    DeathRecordCorrected,
    HouseholdMoved,
    ApplicationSubmitted,
    RelativeOfOfficialFlagged,
    ApplicationClosed,
    // intake: intake-household-<id>, household composition
    MemberJoined,
    MemberLeft,
    // intake: intake-official-<id>, intake-access-<household>, intake-quota-<officer>
    OfficialRelativeRegistered,
    PersonalDataAccessed,
    OutOfScopeAccessAttempted,
    PersonalDataReadRefused,
    // review: review-case-<id>
    CaseOpened,
    StageEntered,
    InvestigatorsAssigned,
    HomeVisitRecorded,
    VerificationRequested,
    PreliminaryOpinionRecorded,
    PublicityStarted,
    ObjectionAnswered,
    AssistFirstGranted,
    CaseApproved,
    CaseRejected,
    DeadlineBreached,
    RefusalNotified,
    DecisionDepartedFromPolicy,
    CaseReturned,
    CaseWithdrawn,
    DeadlineExtended,
    ReReviewScheduled,
    BenefitAdjusted,
    BenefitSuspended,
    BenefitTerminated,
    OfficialRecused,
    CaseFollowedHousehold,
    // review: the district's home-visit sample of 特困 cases, on each case of the batch
    HomeVisitSampleDrawn,
    // departments' answers and the public's objections (their services append them; review
    // takes them into the case)
    VerificationAnswered,
    ObjectionReceived,
    // payment: payment-run-<run id>
    PaymentRunCreated,
    PaymentRunOrdersAdded,
    PaymentRunApproved,
    BankFileExported,
    BankResultLinesAdded,
    BankResultRecorded,
    // payment's settlement: returns (退票) and the reconciliation's close
    BankReturnLinesAdded,
    BankReturnsRecorded,
    ReconciliationClosed,
    // payment: payment-medical-<claim id>
    MedicalClaimAssessed,
    // payment: payment-recovery-<claim id>
    RecoveryClaimOpened,
    RecoveryRepaymentRecorded,
    RecoveryWrittenOff,
    RecoveryClaimCancelled,
    // payment: payment-inspection-<run id> (the 纪委's exports)
    InspectionExported,
    // payment: payment-cash-<payment id> (emergency cash, 急难)
    EmergencyCashPaid,
    // department-integration: department-integration-batch-<batch id>,
    // department-integration-access-<department>
    AssistanceRecordsPushed,
    AssistanceRecordsRefused,
    DepartmentQueryRecorded,
    // department-integration's economic-status check (issue 13, slice 2):
    // department-integration-consent-<household>, department-integration-check-<check id>
    ConsentRecorded,
    CheckOpened,
    VerificationRequestSent,
    VerificationAnswerRecorded,
    VerificationOverdue,
    CheckReportIssued,
    RecheckRequested,
    // review: the check's report attached to the case (review-case-<id>)
    CheckReportAttached,
    // department-integration, duplicates and monitoring (issue 13):
    // department-integration-duplicate-<id>, department-integration-warning-<key>
    DuplicateAssistanceDetected,
    MonitoringWarningReceived,
    MonitoringWarningClosed,
    // department-integration-feed-<month>
    MonitoringFeedExported,
    // department-integration's linkage notices (issue 13, slice 3):
    // department-integration-notice-<notice id>
    LinkageNoticeSent,
    LinkageNoticeAcknowledged,
}

/// Declares a stream kind's events: an enum with one variant per registered message, its
/// [`TypedEvent`] and its [`StreamEvent`] (the kind's typed decode).
///
/// ```
/// use sunshine_proto::events::StreamEvent as _;
/// use sunshine_proto::v1 as pb;
///
/// sunshine_proto::stream_events! {
///     /// The events of `intake-quota-<officer>`.
///     #[derive(Debug, Clone, PartialEq)]
///     pub enum QuotaEvent in "intake-quota" {
///         ReadRefused(pb::PersonalDataReadRefused),
///     }
/// }
///
/// let refused = QuotaEvent::ReadRefused(pb::PersonalDataReadRefused::default());
/// let decoded = QuotaEvent::decode(
///     sunshine_proto::events::TypedEvent::event_type(&refused),
///     &sunshine_proto::events::TypedEvent::encode_payload(&refused),
/// );
/// assert_eq!(decoded, Ok(refused));
/// assert!(QuotaEvent::is_stream("intake-quota-0190f3c4"));
/// ```
#[macro_export]
macro_rules! stream_events {
    (
        $(#[$meta:meta])*
        $visibility:vis enum $name:ident in $kind:literal {
            $($(#[$variant_meta:meta])* $variant:ident($message:ty)),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        $visibility enum $name {
            $($(#[$variant_meta])* $variant($message),)+
        }

        impl $crate::events::TypedEvent for $name {
            fn event_type(&self) -> &'static str {
                match self {
                    $($name::$variant(_) => <$message as $crate::events::Event>::TYPE,)+
                }
            }

            fn schema_version(&self) -> u32 {
                match self {
                    $($name::$variant(_) => <$message as $crate::events::Event>::SCHEMA_VERSION,)+
                }
            }

            fn encode_payload(&self) -> ::std::vec::Vec<u8> {
                match self {
                    $($name::$variant(message) => $crate::events::TypedEvent::encode_payload(message),)+
                }
            }
        }

        impl $crate::events::StreamEvent for $name {
            const STREAM_KIND: &'static str = $kind;
            const TYPES: &'static [&'static str] =
                &[$(<$message as $crate::events::Event>::TYPE),+];

            fn decode(
                event_type: &str,
                payload: &[u8],
            ) -> ::std::result::Result<Self, $crate::events::EventDecodeError> {
                $(
                    if event_type == <$message as $crate::events::Event>::TYPE {
                        return $crate::events::decode_message::<$message>(payload)
                            .map($name::$variant);
                    }
                )+
                Err($crate::events::EventDecodeError::UnknownType {
                    stream_kind: $kind,
                    event_type: event_type.to_owned(),
                })
            }
        }
    };
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::collections::BTreeSet;

    use prost::Name as _;

    use super::*;

    #[test]
    fn a_stored_type_is_the_messages_full_protobuf_name() {
        assert_eq!(v1::CaseOpened::TYPE, v1::CaseOpened::full_name());
        assert_eq!(
            v1::HouseholdRegistered::TYPE,
            v1::HouseholdRegistered::full_name()
        );
        assert_eq!(v1::CaseOpened::SCHEMA_VERSION, 1);
        let distinct: BTreeSet<&str> = REGISTERED.iter().copied().collect();
        assert_eq!(distinct.len(), REGISTERED.len());
        for event_type in REGISTERED {
            let (package, name) = event_type.rsplit_once('.').unwrap();
            assert_eq!(package, v1::CaseOpened::PACKAGE);
            assert!(name.starts_with(|first: char| first.is_ascii_uppercase()));
        }
    }

    #[test]
    fn registered_types_are_constants_that_match_as_patterns() {
        let kind = |event_type: &str| match event_type {
            v1::CaseOpened::TYPE => "opened",
            v1::CaseApproved::TYPE => "approved",
            _ => "other",
        };
        assert_eq!(kind(&v1::CaseApproved::full_name()), "approved");
        assert_eq!(kind(&v1::StageEntered::full_name()), "other");
        assert!(is::<v1::CaseOpened>(&v1::CaseOpened::full_name()));
    }

    crate::stream_events! {
        #[derive(Debug, Clone, PartialEq)]
        enum Example in "example-thing" {
            Opened(v1::CaseOpened),
            Approved(v1::CaseApproved),
        }
    }

    #[test]
    fn a_stream_kind_decodes_its_own_types_and_refuses_others() {
        let opened = Example::Opened(v1::CaseOpened {
            case_id: "c1".into(),
            ..Default::default()
        });
        assert_eq!(opened.event_type(), v1::CaseOpened::TYPE);
        assert_eq!(opened.schema_version(), 1);
        assert_eq!(
            Example::decode(opened.event_type(), &opened.encode_payload()),
            Ok(opened.clone())
        );
        assert_eq!(
            Example::decode(v1::StageEntered::TYPE, b""),
            Err(EventDecodeError::UnknownType {
                stream_kind: "example-thing",
                event_type: v1::StageEntered::TYPE.to_owned(),
            })
        );
        assert_eq!(Example::decode_known(v1::StageEntered::TYPE, b""), Ok(None));
        assert!(matches!(
            Example::decode_known(v1::CaseOpened::TYPE, &[0xff]),
            Err(EventDecodeError::Malformed { .. })
        ));
        assert_eq!(
            Example::TYPES,
            &[v1::CaseOpened::TYPE, v1::CaseApproved::TYPE]
        );
        assert!(Example::is_stream("example-thing-1"));
        assert!(!Example::is_stream("example-thing-"));
        assert!(!Example::is_stream("example-things-1"));
    }
}
