//! Emergency cash (急难临时救助 paid in cash), pure: the one payment not made into the
//! household's own account. An assist-first grant (先行救助, the one-off entitlement
//! `assist-first-<event id>`) may be paid at once, in cash, by a finance officer, with a
//! recorded reason: a code of [`REASON_CODES`] and a short note (no names or id numbers: it is
//! a plain payload), the day paid, the officer who handed it over and the SHA-256 of the
//! signed receipt's (签收单) scan.
//!
//! The payment's stream is `payment-cash-<payment id>`, one event ([`CashEvent::Paid`]). The
//! order it carries is the grant's as a run would make it, under the run id
//! `cash-<payment id>` ([`cash_run_id`]), so the grant's (entitlement, period) key in the guard
//! table is claimed by it (the store's guard, in the append's transaction): a monthly run of
//! the grant's month skips it, and a grant some run holds already cannot be paid in cash. Only
//! assist-first grants: any other entitlement is refused ([`CashError::NotEmergency`]). The
//! amount is the grant's, never the caller's.

use sunshine_domain::{Money, Month, ValidationErrors};
use sunshine_platform::ApiError;
use sunshine_proto::v1 as pb;

use crate::commands::order_id_for;
use crate::entitlements::{Entitlement, Kind};
use crate::funds::{self, Funds};
use crate::validation::{check_opaque_id, check_settlement_date};

sunshine_proto::stream_events! {
    /// The events of `payment-cash-<payment id>`.
    #[derive(Debug, Clone, PartialEq)]
    pub enum CashEvent in "payment-cash" {
        Paid(pb::EmergencyCashPaid),
    }
}

/// Why cash and not the bank: the fixed list a reason code is one of.
pub const REASON_CODES: &[&str] = &[
    "no_bank_account_yet",
    "bank_unreachable",
    "immediate_need",
    "other",
];

/// A note's longest, in characters.
pub const MAX_NOTE_CHARS: usize = 200;

/// An entitlement id's longest (`assist-first-` and a UUID fit).
pub const MAX_ENTITLEMENT_ID_CHARS: usize = 100;

/// The payment of command `command_id`: the same id however often it is retried.
pub fn cash_payment_id_for(command_id: &str) -> String {
    uuid::Uuid::new_v5(
        &uuid::Uuid::NAMESPACE_OID,
        format!("sunshine/payment/cash/{command_id}").as_bytes(),
    )
    .to_string()
}

/// The run id a cash payment holds its grant's key under: `cash-<payment id>`.
pub fn cash_run_id(payment_id: &str) -> String {
    format!("cash-{payment_id}")
}

/// `RecordEmergencyCashPayment`, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordCashPayment {
    pub payment_id: String,
    pub entitlement_id: String,
    pub reason_code: String,
    pub note: String,
    pub paid_on: time::Date,
    pub handed_over_by: String,
    pub receipt_sha256: String,
    pub recorded_by: String,
}

fn check_entitlement_id(errors: &mut ValidationErrors, value: &str) {
    let fits = !value.is_empty()
        && value.len() <= MAX_ENTITLEMENT_ID_CHARS
        && value
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_');
    if !fits {
        errors.push("entitlement_id", "1 to 100 of A-Z a-z 0-9 - _");
    }
}

fn check_note(errors: &mut ValidationErrors, value: &str) {
    let count = value.chars().count();
    if count == 0 || count > MAX_NOTE_CHARS || value.chars().any(char::is_control) {
        errors.push(
            "note",
            "1 to 200 characters, no control characters (no names or id numbers)",
        );
    }
}

fn check_sha256(errors: &mut ValidationErrors, value: &str) {
    let fits = value.len() == 64
        && value
            .bytes()
            .all(|byte| byte.is_ascii_digit() || (b'a'..=b'f').contains(&byte));
    if !fits {
        errors.push("receipt_sha256", "64 lowercase hex digits (SHA-256)");
    }
}

/// The request as a command (recorded by `recorded_by`, the caller), every bad field named
/// at once.
pub fn parse(
    request: &pb::RecordEmergencyCashPaymentRequest,
    recorded_by: &str,
    today: time::Date,
) -> Result<RecordCashPayment, ApiError> {
    let mut errors = ValidationErrors::default();
    sunshine_domain::validation::check_command_id(&mut errors, &request.command_id);
    check_entitlement_id(&mut errors, &request.entitlement_id);
    if !REASON_CODES.contains(&request.reason_code.as_str()) {
        errors.push("reason_code", format!("one of {}", REASON_CODES.join(", ")));
    }
    check_note(&mut errors, &request.note);
    let paid_on = check_settlement_date(&mut errors, "paid_on", request.paid_on.as_ref(), today);
    check_opaque_id(&mut errors, "handed_over_by", &request.handed_over_by);
    check_sha256(&mut errors, &request.receipt_sha256);
    errors.into_result()?;
    let Some(paid_on) = paid_on else {
        return Err(ApiError::invalid_field("paid_on", "required"));
    };
    Ok(RecordCashPayment {
        payment_id: cash_payment_id_for(&request.command_id),
        entitlement_id: request.entitlement_id.clone(),
        reason_code: request.reason_code.clone(),
        note: request.note.clone(),
        paid_on,
        handed_over_by: request.handed_over_by.clone(),
        receipt_sha256: request.receipt_sha256.clone(),
        recorded_by: recorded_by.to_owned(),
    })
}

/// What a cash payment decides on: the grant (as payment's projection holds it), and the
/// funds (which fund pays assist-first grants in the grant's month).
#[derive(Debug, Clone)]
pub struct CashFacts<'a> {
    pub entitlement: Entitlement,
    pub funds: &'a Funds,
    pub district_code: String,
}

/// A cash payment, folded from its stream.
#[derive(Debug, Clone, PartialEq)]
pub struct CashState {
    pub paid: pb::EmergencyCashPaid,
    pub version: u64,
}

impl CashState {
    /// The payment of `events`; `None` without its event.
    pub fn fold(events: &[CashEvent]) -> Option<CashState> {
        let mut state: Option<CashState> = None;
        for event in events {
            let CashEvent::Paid(paid) = event;
            state = Some(match state {
                None => CashState {
                    paid: paid.clone(),
                    version: 1,
                },
                Some(mut state) => {
                    state.version += 1;
                    state
                }
            });
        }
        state
    }
}

/// Why a cash payment is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CashError {
    #[error("cash payment {payment_id} exists already")]
    PaymentExists { payment_id: String },
    #[error(
        "entitlement {entitlement_id} is not an assist-first grant: cash is only for emergency \
         temporary assistance (急难), everything else is paid into the household's account"
    )]
    NotEmergency { entitlement_id: String },
    #[error("no fund pays assist-first grants on {on}")]
    NoFund { on: time::Date },
    #[error("entitlement {entitlement_id} has nothing to pay")]
    NothingDue { entitlement_id: String },
}

/// The first day of `month`.
fn first_day(month: Month) -> Option<time::Date> {
    let calendar_month = time::Month::try_from(month.month()).ok()?;
    time::Date::from_calendar_date(month.year(), calendar_month, 1).ok()
}

/// Decides `command` on `state` (`None`: a new payment): the payment's event, or why not.
/// The budget and the grant's key are the store's guard's (they need the database).
pub fn handle(
    state: Option<&CashState>,
    command: &RecordCashPayment,
    facts: &CashFacts<'_>,
) -> Result<Vec<CashEvent>, CashError> {
    if state.is_some() {
        return Err(CashError::PaymentExists {
            payment_id: command.payment_id.clone(),
        });
    }
    let entitlement = &facts.entitlement;
    let not_emergency = || CashError::NotEmergency {
        entitlement_id: entitlement.entitlement_id.clone(),
    };
    if !entitlement
        .entitlement_id
        .starts_with(funds::ASSIST_FIRST_PREFIX)
        || entitlement.kind != Kind::OneOff
    {
        return Err(not_emergency());
    }
    let amount = entitlement.amount;
    if amount.is_zero() || amount.is_negative() {
        return Err(CashError::NothingDue {
            entitlement_id: entitlement.entitlement_id.clone(),
        });
    }
    let period = entitlement.start_month;
    let on = first_day(period).ok_or(CashError::NoFund {
        on: command.paid_on,
    })?;
    let fund = facts
        .funds
        .fund_paying(funds::ASSIST_FIRST, on)
        .ok_or(CashError::NoFund { on })?
        .to_owned();
    let run_id = cash_run_id(&command.payment_id);
    let date = command.paid_on;
    Ok(vec![CashEvent::Paid(pb::EmergencyCashPaid {
        payment_id: command.payment_id.clone(),
        order: Some(pb::PaymentOrder {
            order_id: order_id_for(&run_id, &entitlement.entitlement_id),
            entitlement_id: entitlement.entitlement_id.clone(),
            case_id: entitlement.case_id.clone(),
            household_id: entitlement.household_id.clone(),
            program_code: entitlement.program_code.clone(),
            street_town_code: entitlement.street_town_code.clone(),
            amount: Some(pb::Money { fen: amount.fen() }),
            repays_order_id: String::new(),
            fund,
            // Paid in cash, to no account.
            care_institution_code: String::new(),
        }),
        run_id,
        period: period.to_string(),
        reason_code: command.reason_code.clone(),
        note: command.note.clone(),
        paid_on: Some(pb::Date {
            year: date.year(),
            month: i32::from(u8::from(date.month())),
            day: i32::from(date.day()),
        }),
        handed_over_by: command.handed_over_by.clone(),
        receipt_sha256: command.receipt_sha256.clone(),
        recorded_by: command.recorded_by.clone(),
        district_code: facts.district_code.clone(),
    })])
}

/// The amount a cash payment's order pays.
pub fn amount_of(paid: &pb::EmergencyCashPaid) -> Money {
    Money::from_fen(
        paid.order
            .as_ref()
            .and_then(|order| order.amount.as_ref())
            .map_or(0, |money| money.fen),
    )
}

/// The payment as a caller sees it.
pub fn response(state: CashState) -> pb::EmergencyCashPaymentResponse {
    pb::EmergencyCashPaymentResponse {
        payment: Some(state.paid),
        version: state.version,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use time::macros::date;

    use super::*;
    use crate::entitlements::Payee;

    fn grant(entitlement_id: &str, kind: Kind, fen: i64) -> Entitlement {
        Entitlement {
            entitlement_id: entitlement_id.into(),
            case_id: "case-a".into(),
            household_id: "h1".into(),
            program_code: "temporary".into(),
            street_town_code: "990101001000".into(),
            kind,
            amount: Money::from_fen(fen),
            start_month: Month::parse("2026-11").unwrap(),
            suspended_from: None,
            terminated_from: None,
            adjustments: Vec::new(),
            payee: Payee::Household,
        }
    }

    fn command() -> RecordCashPayment {
        RecordCashPayment {
            payment_id: cash_payment_id_for("cmd-1"),
            entitlement_id: "assist-first-e1".into(),
            reason_code: "no_bank_account_yet".into(),
            note: "paid at the street office".into(),
            paid_on: date!(2026 - 11 - 20),
            handed_over_by: "officer-2".into(),
            receipt_sha256: "a".repeat(64),
            recorded_by: "finance-1".into(),
        }
    }

    fn request() -> pb::RecordEmergencyCashPaymentRequest {
        pb::RecordEmergencyCashPaymentRequest {
            command_id: "cmd-1".into(),
            entitlement_id: "assist-first-e1".into(),
            reason_code: "immediate_need".into(),
            note: "家中突发火灾，急需生活费".into(),
            paid_on: Some(pb::Date {
                year: 2026,
                month: 11,
                day: 20,
            }),
            handed_over_by: "officer-2".into(),
            receipt_sha256: "0123456789abcdef".repeat(4),
        }
    }

    fn caller() -> &'static str {
        "finance-1"
    }

    fn fields(error: ApiError) -> Vec<String> {
        match error {
            ApiError::InvalidArgument(violations) => {
                violations.into_iter().map(|field| field.field).collect()
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_good_request_parses_with_the_payment_id_from_the_command_id() {
        let parsed = parse(&request(), caller(), date!(2026 - 11 - 25)).unwrap();
        assert_eq!(parsed.payment_id, cash_payment_id_for("cmd-1"));
        assert_eq!(parsed.recorded_by, "finance-1");
        assert_eq!(parsed.paid_on, date!(2026 - 11 - 20));
    }

    #[test]
    fn bad_fields_are_each_named() {
        let today = date!(2026 - 11 - 25);
        let mut bad = request();
        bad.reason_code = "because".into();
        assert_eq!(
            fields(parse(&bad, caller(), today).unwrap_err()),
            ["reason_code"]
        );
        let mut bad = request();
        bad.note = "line one\nline two".into();
        assert_eq!(fields(parse(&bad, caller(), today).unwrap_err()), ["note"]);
        let mut bad = request();
        bad.note = "字".repeat(201);
        assert_eq!(fields(parse(&bad, caller(), today).unwrap_err()), ["note"]);
        let mut fits = request();
        fits.note = "字".repeat(200);
        assert!(parse(&fits, caller(), today).is_ok());
        let mut bad = request();
        bad.note = String::new();
        bad.receipt_sha256 = "A".repeat(64);
        bad.paid_on = Some(pb::Date {
            year: 2026,
            month: 11,
            day: 26,
        });
        bad.handed_over_by = "张三".into();
        bad.entitlement_id = String::new();
        assert_eq!(
            fields(parse(&bad, caller(), today).unwrap_err()),
            [
                "entitlement_id",
                "note",
                "paid_on",
                "handed_over_by",
                "receipt_sha256"
            ]
        );
    }

    fn facts(entitlement: Entitlement, funds: &Funds) -> CashFacts<'_> {
        CashFacts {
            entitlement,
            funds,
            district_code: "990101".into(),
        }
    }

    #[test]
    fn given_a_grant_when_paid_in_cash_then_its_order_is_the_grants_from_the_emergency_fund() {
        let funds = Funds::example().unwrap();
        let events = handle(
            None,
            &command(),
            &facts(grant("assist-first-e1", Kind::OneOff, 150_000), &funds),
        )
        .unwrap();
        let [CashEvent::Paid(paid)] = events.as_slice() else {
            panic!("{events:?}");
        };
        let run_id = cash_run_id(&command().payment_id);
        assert_eq!(paid.run_id, run_id);
        assert_eq!(paid.period, "2026-11");
        let order = paid.order.as_ref().unwrap();
        assert_eq!(order.order_id, order_id_for(&run_id, "assist-first-e1"));
        assert_eq!(order.fund, "emergency");
        assert_eq!(amount_of(paid), Money::from_fen(150_000));
        assert_eq!(paid.reason_code, "no_bank_account_yet");
        assert_eq!(paid.handed_over_by, "officer-2");
        let state = CashState::fold(&events).unwrap();
        assert_eq!(state.version, 1);
        // Then: the same payment again is refused.
        assert_eq!(
            handle(
                Some(&state),
                &command(),
                &facts(grant("assist-first-e1", Kind::OneOff, 150_000), &funds)
            ),
            Err(CashError::PaymentExists {
                payment_id: command().payment_id
            })
        );
    }

    #[test]
    fn given_any_other_entitlement_when_paid_in_cash_then_it_is_refused() {
        let funds = Funds::example().unwrap();
        for entitlement in [
            grant("case-a", Kind::Monthly, 50_000),
            grant("medical-claim-1", Kind::OneOff, 50_000),
            grant("assist-first-e1", Kind::Monthly, 50_000),
        ] {
            let id = entitlement.entitlement_id.clone();
            assert_eq!(
                handle(None, &command(), &facts(entitlement, &funds)),
                Err(CashError::NotEmergency { entitlement_id: id })
            );
        }
    }

    #[test]
    fn given_a_grant_of_nothing_when_paid_in_cash_then_nothing_is_due() {
        let funds = Funds::example().unwrap();
        assert_eq!(
            handle(
                None,
                &command(),
                &facts(grant("assist-first-e1", Kind::OneOff, 0), &funds)
            ),
            Err(CashError::NothingDue {
                entitlement_id: "assist-first-e1".into()
            })
        );
    }
}
