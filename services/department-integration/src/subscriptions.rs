//! Subscriptions (`SubscribeEvents`): the log's events in a department's scope, as a server
//! stream resumable from a log position the client keeps (`docs/department-subscriptions.md`).
//!
//! The scope is the registry's: only the event kinds the department's entry receives
//! ([`crate::registry::EVENT_KINDS`]), only events addressed to it (a verification request or a
//! linkage notice names its department) or, for the district's kinds (duplicates, monitoring
//! warnings), every one. The deployment is one district's, so every event of its log is the
//! district's; a token of another district is refused before anything is read.
//!
//! What a department sees of an event is a projection ([`project`], pure): kind, type, event
//! id, log position, case, household, program, the notice's, check's or warning's id, a rule or
//! the data items, a deadline. Never the payload: sealed fields stay in the log, and the
//! pseudonymous person index is not handed out either.
//!
//! Resuming: positions are dense (the sequencer gives each event the next one, never a gap), so
//! reading from `after_position + 1` in position order delivers every later event exactly once.
//! The stream is fed by a task through a bounded channel (a slow client holds the reader: it
//! reads the next page only when the client took the last), page by page; with `follow` it
//! waits, once caught up, for the log's `advanced` signal or the log's poll interval (another
//! process may hold the log worker), whichever comes first.

use std::time::Duration;

use sunshine_domain::ValidationErrors;
use sunshine_eventlog::signals::LogSignals;
use sunshine_eventlog::{EventStore, RecordedEvent};
use sunshine_proto::events::Event as _;
use sunshine_proto::v1 as pb;

use crate::registry::{Department, EVENT_KINDS};

/// Events read from the log per round by default, and at most.
pub const DEFAULT_PAGE: u32 = 100;
pub const MAX_PAGE: u32 = 1_000;
/// Events the stream holds for a client that has not taken them yet.
pub const CHANNEL_CAPACITY: usize = 64;

/// The stream `SubscribeEvents` answers.
pub type EventStream = sunshine_platform::server::RpcStream<pb::DepartmentEvent>;

/// Why a subscription is refused before it starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubscriptionRefusal {
    /// Bad fields, named.
    Invalid(Vec<sunshine_domain::FieldViolation>),
    /// Kinds the department's registry entry does not receive.
    OutOfScope(Vec<String>),
}

/// A subscription, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    pub department: Department,
    /// The kinds delivered: those asked for, or all the department receives.
    pub kinds: Vec<String>,
    /// The first position to read.
    pub from_position: u64,
    pub page_size: u32,
    /// 0: no limit.
    pub max_events: u32,
    pub follow: bool,
}

/// Checks a request against the department's registry entry.
pub fn check(
    department: &Department,
    request: &pb::SubscribeEventsRequest,
) -> Result<Subscription, SubscriptionRefusal> {
    let mut errors = ValidationErrors::new();
    if request.kinds.len() > EVENT_KINDS.len() {
        errors.push("kinds", format!("at most {}", EVENT_KINDS.len()));
    }
    let mut outside = Vec::new();
    for (index, kind) in request.kinds.iter().enumerate() {
        if !EVENT_KINDS.contains(&kind.as_str()) {
            errors.push(
                format!("kinds[{index}]"),
                format!("one of {}", EVENT_KINDS.join(", ")),
            );
        } else if !department.events.contains(kind) {
            outside.push(kind.clone());
        }
    }
    if request.page_size > MAX_PAGE {
        errors.push("page_size", format!("0 to {MAX_PAGE}"));
    }
    let from_position = match request.after_position {
        None => 0,
        Some(after) => match after.checked_add(1) {
            Some(next) if i64::try_from(next).is_ok() => next,
            _ => {
                errors.push("after_position", "a position of the log");
                0
            }
        },
    };
    if let Err(invalid) = errors.into_result() {
        return Err(SubscriptionRefusal::Invalid(invalid.into_violations()));
    }
    if !outside.is_empty() {
        return Err(SubscriptionRefusal::OutOfScope(outside));
    }
    let kinds = if request.kinds.is_empty() {
        department.events.iter().cloned().collect()
    } else {
        let mut kinds = request.kinds.clone();
        kinds.sort();
        kinds.dedup();
        kinds
    };
    Ok(Subscription {
        department: department.clone(),
        kinds,
        from_position,
        page_size: if request.page_size == 0 {
            DEFAULT_PAGE
        } else {
            request.page_size
        },
        max_events: request.max_events,
        follow: request.follow,
    })
}

fn decode<M: prost::Message + Default>(event: &RecordedEvent) -> Option<M> {
    M::decode(event.payload.as_slice()).ok()
}

/// Whether `event_type` is the message `M`'s full protobuf name: for the kinds whose messages
/// their slice has not registered yet (duplicates, monitoring), so no `Event::TYPE` exists.
fn is_named<M: prost::Name>(event_type: &str) -> bool {
    event_type
        .strip_prefix(M::PACKAGE)
        .and_then(|rest| rest.strip_prefix('.'))
        == Some(M::NAME)
}

/// What `subscription`'s department sees of `event`: `None` when it is not in its scope (a
/// kind it does not receive, addressed to another department, or no kind at all).
pub fn project(subscription: &Subscription, event: &RecordedEvent) -> Option<pb::DepartmentEvent> {
    let position = event.log_position?;
    let department = &subscription.department;
    let base = |kind: &str| pb::DepartmentEvent {
        log_position: position,
        kind: kind.to_owned(),
        event_type: event.event_type.clone(),
        event_id: event.event_id.to_string(),
        recorded_at_us: event.recorded_at_us,
        ..pb::DepartmentEvent::default()
    };
    let wants = |kind: &str| subscription.kinds.iter().any(|wanted| wanted == kind);
    let projected = match event.event_type.as_str() {
        pb::VerificationRequestSent::TYPE if wants("verification_requested") => {
            let sent: pb::VerificationRequestSent = decode(event)?;
            (sent.department_code == department.code).then(|| pb::DepartmentEvent {
                case_id: sent.case_id,
                reference: sent.check_id,
                data_items: sent.data_items,
                deadline: sent.deadline,
                ..base("verification_requested")
            })
        }
        pb::LinkageNoticeSent::TYPE if wants("linkage_notice") => {
            let sent: pb::LinkageNoticeSent = decode(event)?;
            (sent.department_code == department.code).then(|| pb::DepartmentEvent {
                case_id: sent.case_id,
                household_id: sent.household_id,
                program_code: sent.program_code,
                reference: sent.notice_id,
                rule_code: sent.rule_code,
                ..base("linkage_notice")
            })
        }
        other
            if is_named::<pb::DuplicateAssistanceDetected>(other)
                && wants("duplicate_assistance") =>
        {
            let detected: pb::DuplicateAssistanceDetected = decode(event)?;
            // The records involved that the department may see (`<department>/<record id>`);
            // never the person index.
            let records = [detected.first.as_ref(), detected.second.as_ref()]
                .into_iter()
                .flatten()
                .filter(|side| department.may_read_records_of(&side.department_code))
                .map(|side| format!("{}/{}", side.department_code, side.record_id))
                .collect();
            Some(pb::DepartmentEvent {
                program_code: detected.program_code,
                rule_code: detected.kind,
                reference: detected.duplicate_id,
                data_items: records,
                ..base("duplicate_assistance")
            })
        }
        other
            if is_named::<pb::MonitoringWarningReceived>(other) && wants("monitoring_warning") =>
        {
            let received: pb::MonitoringWarningReceived = decode(event)?;
            let warning = received.warning.unwrap_or_default();
            Some(pb::DepartmentEvent {
                program_code: warning.program_code,
                rule_code: warning.kind,
                reference: warning.warning_id,
                deadline: received.deadline,
                ..base("monitoring_warning")
            })
        }
        other if is_named::<pb::MonitoringWarningClosed>(other) && wants("monitoring_warning") => {
            let closed: pb::MonitoringWarningClosed = decode(event)?;
            Some(pb::DepartmentEvent {
                rule_code: closed.outcome,
                reference: closed.warning_id,
                ..base("monitoring_warning")
            })
        }
        _ => None,
    };
    if event.case_id.is_empty() {
        return projected;
    }
    projected.map(|mut projected| {
        if projected.case_id.is_empty() && is_case_id(&event.case_id) {
            projected.case_id = event.case_id.clone();
        }
        projected
    })
}

fn is_case_id(text: &str) -> bool {
    uuid::Uuid::parse_str(text).is_ok()
}

/// Feeds `subscription` from `store` into a bounded channel until the client goes away, the
/// limit is reached or (without `follow`) the log's end; the stream the client reads.
pub fn start(
    store: EventStore,
    signals: LogSignals,
    poll_interval: Duration,
    subscription: Subscription,
) -> EventStream {
    let (sender, receiver) = tokio::sync::mpsc::channel(CHANNEL_CAPACITY);
    tokio::spawn(async move {
        let mut next = subscription.from_position;
        let mut delivered: u32 = 0;
        let mut advanced = signals.advanced_waiter();
        loop {
            let page = match store.read_log(next, subscription.page_size).await {
                Ok(page) => page,
                Err(error) => {
                    tracing::warn!(%error, "a subscription could not read the log");
                    let _ = sender
                        .send(Err(tonic::Status::unavailable("the log could not be read")))
                        .await;
                    return;
                }
            };
            let read = page.len();
            for event in page {
                let Some(position) = event.log_position else {
                    continue;
                };
                next = position + 1;
                if let Some(projected) = project(&subscription, &event) {
                    if sender.send(Ok(projected)).await.is_err() {
                        return; // the client went away
                    }
                    delivered += 1;
                    if subscription.max_events != 0 && delivered >= subscription.max_events {
                        return;
                    }
                }
            }
            if read < subscription.page_size as usize {
                if !subscription.follow {
                    return;
                }
                tokio::select! {
                    () = advanced.wait() => {}
                    () = tokio::time::sleep(poll_interval) => {}
                    () = sender.closed() => return,
                }
            }
        }
    });
    Box::pin(tokio_stream::wrappers::ReceiverStream::new(receiver))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dictionary::FieldDictionary;
    use crate::registry::Registry;
    use prost::Message as _;

    fn registry() -> Registry {
        Registry::example(&FieldDictionary::embedded().expect("dictionary")).expect("registry")
    }

    fn subscription(code: &str) -> Subscription {
        let registry = registry();
        check(
            registry.department(code).expect("listed"),
            &pb::SubscribeEventsRequest::default(),
        )
        .expect("a subscription")
    }

    fn recorded(position: u64, event_type: &str, payload: Vec<u8>) -> RecordedEvent {
        RecordedEvent {
            sequence: 1,
            log_position: Some(position),
            event_id: uuid::Uuid::nil(),
            stream_id: "department-integration-notice-x".into(),
            stream_version: 1,
            case_id: String::new(),
            event_type: event_type.into(),
            schema_version: 1,
            payload,
            metadata_json: "{}".into(),
            occurred_at_us: 0,
            recorded_at_us: 0,
            previous_hash: Default::default(),
            hash: Default::default(),
        }
    }

    fn notice(department: &str) -> RecordedEvent {
        let sent = pb::LinkageNoticeSent {
            notice_id: "n-1".into(),
            rule_code: "dibao_school_age".into(),
            department_code: department.into(),
            case_id: "c".into(),
            household_id: "h".into(),
            program_code: "education_assistance".into(),
        };
        recorded(7, pb::LinkageNoticeSent::TYPE, sent.encode_to_vec())
    }

    #[test]
    fn a_notice_reaches_its_department_only() {
        let projected = project(&subscription("education"), &notice("education")).expect("own");
        assert_eq!(projected.kind, "linkage_notice");
        assert_eq!(projected.log_position, 7);
        assert_eq!(projected.reference, "n-1");
        assert!(project(&subscription("health"), &notice("education")).is_none());
    }

    #[test]
    fn a_kind_outside_the_registry_entry_is_never_projected_and_refused_when_asked() {
        let sent = pb::VerificationRequestSent {
            check_id: "k".into(),
            department_code: "education".into(),
            ..Default::default()
        };
        let event = recorded(3, pb::VerificationRequestSent::TYPE, sent.encode_to_vec());
        assert!(project(&subscription("education"), &event).is_none());
        let registry = registry();
        let education = registry.department("education").expect("listed");
        let asked = pb::SubscribeEventsRequest {
            kinds: vec!["verification_requested".into()],
            ..Default::default()
        };
        assert_eq!(
            check(education, &asked),
            Err(SubscriptionRefusal::OutOfScope(vec![
                "verification_requested".into()
            ]))
        );
        // Any other event is nobody's.
        let pushed = recorded(4, pb::AssistanceRecordsPushed::TYPE, Vec::new());
        assert!(project(&subscription("civil_affairs"), &pushed).is_none());
    }

    #[test]
    fn a_duplicate_shows_the_center_only_what_it_may_read() {
        let side = |department: &str, record: &str| pb::DuplicateSide {
            department_code: department.into(),
            record_id: record.into(),
            ..Default::default()
        };
        let detected = pb::DuplicateAssistanceDetected {
            kind: "cash".into(),
            first: Some(side("education", "e-1")),
            second: Some(side("justice", "j-1")),
            person_index: vec![7; 32],
            ..Default::default()
        };
        let event = recorded(
            9,
            &<pb::DuplicateAssistanceDetected as prost::Name>::full_name(),
            detected.encode_to_vec(),
        );
        let projected = project(&subscription("civil_affairs"), &event).expect("the center's");
        assert_eq!(projected.kind, "duplicate_assistance");
        assert_eq!(projected.data_items, ["education/e-1", "justice/j-1"]);
        assert!(project(&subscription("education"), &event).is_none());
    }

    #[test]
    fn bad_fields_are_named() {
        let registry = registry();
        let education = registry.department("education").expect("listed");
        let request = pb::SubscribeEventsRequest {
            kinds: vec!["birthday\u{7}".into()],
            page_size: 1_000_000,
            after_position: Some(u64::MAX),
            ..Default::default()
        };
        let Err(SubscriptionRefusal::Invalid(violations)) = check(education, &request) else {
            panic!("refused");
        };
        let fields: Vec<&str> = violations.iter().map(|v| v.field.as_str()).collect();
        assert_eq!(fields, ["kinds[0]", "page_size", "after_position"]);
    }

    #[test]
    fn resuming_starts_after_the_last_position() {
        let registry = registry();
        let education = registry.department("education").expect("listed");
        let request = pb::SubscribeEventsRequest {
            after_position: Some(41),
            ..Default::default()
        };
        assert_eq!(check(education, &request).expect("ok").from_position, 42);
        let from_start = check(education, &pb::SubscribeEventsRequest::default()).expect("ok");
        assert_eq!(from_start.from_position, 0);
        assert_eq!(from_start.page_size, DEFAULT_PAGE);
    }
}
