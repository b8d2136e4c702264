//! The events of a review case stream (`review-case-<case id>`) and their one codec.
//!
//! [`CaseEvent`] is declared from one list, each variant with the proto message it carries. A
//! message's stored type is its full protobuf name (`prost::Name`), so the list is the registry:
//! [`CaseEvent::event_type`], [`CaseEvent::encode`] and [`CaseEvent::decode`] are derived from
//! it, and no event type is spelled out as text anywhere in the service. Adding an event is its
//! message in `review.proto`, its line here, and the arm of `CaseState::apply` that folds it
//! (the compiler asks for that one). A type that is not in the list, on a case stream, is an
//! error ([`CaseEventError::UnknownType`]), never skipped.
//!
//! Decoding also reads old payloads forward (upcasting in memory; stored events never change):
//! a `PolicyResult` stored with its period as text gets the enum (`policy_result::upcast`).

use sunshine_proto::v1 as pb;

use crate::policy_result;

/// The schema version every case event is written with. Readers also accept what older
/// versions stored (see the module's docs).
pub const SCHEMA_VERSION: u32 = 1;

/// Why a stored event could not be read as a case event.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CaseEventError {
    #[error("{event_type} is not an event of a review case")]
    UnknownType { event_type: String },
    #[error("{event_type}: {source}")]
    Malformed {
        event_type: String,
        source: prost::DecodeError,
    },
}

/// Whether `event_type` is the stored type of message `M` (its full protobuf name), without
/// building the name.
pub fn is_type<M: prost::Name>(event_type: &str) -> bool {
    event_type
        .strip_prefix(M::PACKAGE)
        .and_then(|rest| rest.strip_prefix('.'))
        == Some(M::NAME)
}

/// Decodes `payload` as message `M`, naming the type in the error.
pub fn decode_as<M: prost::Message + Default>(
    event_type: &str,
    payload: &[u8],
) -> Result<M, CaseEventError> {
    M::decode(payload).map_err(|source| CaseEventError::Malformed {
        event_type: event_type.to_owned(),
        source,
    })
}

macro_rules! case_events {
    ($( $(#[$doc:meta])* $variant:ident($message:ty), )+) => {
        /// A case's events: every message review appends to a case stream.
        #[derive(Debug, Clone, PartialEq)]
        pub enum CaseEvent {
            $( $(#[$doc])* $variant($message), )+
        }

        impl CaseEvent {
            /// The stored type: the message's full protobuf name, e.g. `sunshine.v1.CaseOpened`.
            pub fn event_type(&self) -> String {
                match self {
                    $( CaseEvent::$variant(_) => <$message as prost::Name>::full_name(), )+
                }
            }

            /// The stored payload: the message's protobuf encoding.
            pub fn encode(&self) -> Vec<u8> {
                match self {
                    $( CaseEvent::$variant(message) => prost::Message::encode_to_vec(message), )+
                }
            }

            /// The case event stored as `event_type` with `payload`, read forward to what the
            /// service writes today.
            pub fn decode(event_type: &str, payload: &[u8]) -> Result<CaseEvent, CaseEventError> {
                $(
                    if is_type::<$message>(event_type) {
                        let message = decode_as::<$message>(event_type, payload)?;
                        return Ok(CaseEvent::$variant(message).upcast());
                    }
                )+
                Err(CaseEventError::UnknownType {
                    event_type: event_type.to_owned(),
                })
            }

            /// Every case event's stored type, in the list's order.
            pub fn event_types() -> Vec<String> {
                vec![$( <$message as prost::Name>::full_name(), )+]
            }
        }
    };
}

case_events! {
    /// Opened by the case opener for an application intake routed to review or emergency.
    Opened(pb::CaseOpened),
    StageEntered(pb::StageEntered),
    InvestigatorsAssigned(pb::InvestigatorsAssigned),
    HomeVisitRecorded(pb::HomeVisitRecorded),
    VerificationRequested(pb::VerificationRequested),
    /// A department's answer, taken in from department-integration's stream.
    VerificationAnswered(pb::VerificationAnswered),
    OpinionRecorded(pb::PreliminaryOpinionRecorded),
    PublicityStarted(pb::PublicityStarted),
    /// A public objection, taken in from disclosure's stream.
    ObjectionReceived(pb::ObjectionReceived),
    ObjectionAnswered(pb::ObjectionAnswered),
    AssistFirstGranted(pb::AssistFirstGranted),
    Approved(pb::CaseApproved),
    Rejected(pb::CaseRejected),
    DeadlineBreached(pb::DeadlineBreached),
    DepartedFromPolicy(pb::DecisionDepartedFromPolicy),
    Returned(pb::CaseReturned),
    Withdrawn(pb::CaseWithdrawn),
    DeadlineExtended(pb::DeadlineExtended),
    ReReviewScheduled(pb::ReReviewScheduled),
    BenefitAdjusted(pb::BenefitAdjusted),
    BenefitSuspended(pb::BenefitSuspended),
    BenefitTerminated(pb::BenefitTerminated),
    RefusalNotified(pb::RefusalNotified),
    OfficialRecused(pb::OfficialRecused),
    FollowedHousehold(pb::CaseFollowedHousehold),
    /// Department integration's economic-status check report, taken in from its check stream.
    CheckReportAttached(pb::CheckReportAttached),
    /// The district's home-visit sample drawn over a batch of received cases (特困), the same
    /// record on each case of the batch.
    HomeVisitSampleDrawn(pb::HomeVisitSampleDrawn),
}

impl CaseEvent {
    /// The policy engine's result the event carries (opinions, decisions, departures,
    /// reassessments).
    pub fn policy(&self) -> Option<&pb::PolicyResult> {
        match self {
            CaseEvent::OpinionRecorded(event) => event.policy.as_ref(),
            CaseEvent::Approved(event) => event.policy.as_ref(),
            CaseEvent::Rejected(event) => event.policy.as_ref(),
            CaseEvent::DepartedFromPolicy(event) => event.policy.as_ref(),
            CaseEvent::BenefitAdjusted(event) => event.policy.as_ref(),
            CaseEvent::BenefitTerminated(event) => event.policy.as_ref(),
            _ => None,
        }
    }

    /// Reads an old payload forward, in memory.
    fn upcast(mut self) -> CaseEvent {
        let policy = match &mut self {
            CaseEvent::OpinionRecorded(event) => event.policy.as_mut(),
            CaseEvent::Approved(event) => event.policy.as_mut(),
            CaseEvent::Rejected(event) => event.policy.as_mut(),
            CaseEvent::DepartedFromPolicy(event) => event.policy.as_mut(),
            CaseEvent::BenefitAdjusted(event) => event.policy.as_mut(),
            CaseEvent::BenefitTerminated(event) => event.policy.as_mut(),
            _ => None,
        };
        if let Some(policy) = policy {
            policy_result::upcast(policy);
        }
        self
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use prost::{Message as _, Name as _};

    use super::*;

    #[test]
    fn every_case_event_is_stored_as_its_message_name_and_read_back() {
        let events = [
            CaseEvent::Opened(pb::CaseOpened {
                case_id: "case-1".into(),
                workflow: "means_tested_review".into(),
                ..Default::default()
            }),
            CaseEvent::StageEntered(pb::StageEntered {
                case_id: "case-1".into(),
                stage: "verification".into(),
            }),
            CaseEvent::FollowedHousehold(pb::CaseFollowedHousehold {
                case_id: "case-1".into(),
                to_org_unit_code: "990101002001".into(),
                ..Default::default()
            }),
        ];
        for event in events {
            let stored_type = event.event_type();
            assert!(CaseEvent::event_types().contains(&stored_type));
            assert_eq!(
                CaseEvent::decode(&stored_type, &event.encode()).unwrap(),
                event
            );
        }
        assert_eq!(
            CaseEvent::Opened(pb::CaseOpened::default()).event_type(),
            pb::CaseOpened::full_name()
        );
        let mut names = CaseEvent::event_types();
        names.sort();
        names.dedup();
        assert_eq!(
            names.len(),
            CaseEvent::event_types().len(),
            "one message, one variant"
        );
    }

    #[test]
    fn a_type_that_is_no_case_event_is_an_error_not_a_skip() {
        let household = pb::ApplicationSubmitted::full_name();
        assert_eq!(
            CaseEvent::decode(&household, &[]),
            Err(CaseEventError::UnknownType {
                event_type: household
            })
        );
        assert!(matches!(
            CaseEvent::decode(&pb::CaseOpened::full_name(), &[0xff, 0xff]),
            Err(CaseEventError::Malformed { .. })
        ));
        // A name that only starts like one is not it.
        let longer = format!("{}Later", pb::CaseOpened::full_name());
        assert!(!is_type::<pb::CaseOpened>(&longer));
        assert!(!is_type::<pb::CaseOpened>("CaseOpened"));
        assert!(is_type::<pb::CaseOpened>(&pb::CaseOpened::full_name()));
    }

    #[test]
    fn a_policy_period_stored_as_text_reads_as_the_enum() {
        // As review wrote them before the period was an enum: "oneoff" (Debug, lowercased),
        // where the policy crate says "one_off".
        for (text, period) in [
            ("oneoff", pb::BenefitPeriod::OneOff),
            ("one_off", pb::BenefitPeriod::OneOff),
            ("monthly", pb::BenefitPeriod::Monthly),
            ("annual", pb::BenefitPeriod::Annual),
        ] {
            let stored = pb::CaseApproved {
                case_id: "case-1".into(),
                policy: Some(pb::PolicyResult {
                    eligible: true,
                    period: text.into(),
                    ..Default::default()
                }),
                ..Default::default()
            };
            let read =
                CaseEvent::decode(&pb::CaseApproved::full_name(), &stored.encode_to_vec()).unwrap();
            let policy = read.policy().unwrap();
            assert_eq!(policy.benefit_period(), period, "{text}");
            assert_eq!(policy.period, text, "the stored text is kept");
        }
        // A result written with the enum is read as written.
        let written = CaseEvent::BenefitTerminated(pb::BenefitTerminated {
            policy: Some(pb::PolicyResult {
                benefit_period: pb::BenefitPeriod::Monthly as i32,
                ..Default::default()
            }),
            ..Default::default()
        });
        let read = CaseEvent::decode(&written.event_type(), &written.encode()).unwrap();
        assert_eq!(read, written);
    }
}
