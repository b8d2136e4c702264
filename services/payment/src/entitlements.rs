//! Entitlements: what review's decisions entitle a household to, and the one pure rule of
//! payment's arithmetic, [`amount_due`] — what an entitlement pays in a month, in fen.
//!
//! A **monthly** entitlement is a review case's approval (`CaseApproved`: program, monthly
//! amount, first month paid), changed by `BenefitAdjusted` (a new amount from its effective
//! month), `BenefitSuspended` (nothing from its effective month on) and `BenefitTerminated`
//! (nothing from its effective month on, for good). Its id is the case id.
//!
//! A **one-off** entitlement is an assist-first grant (`AssistFirstGranted`, 先行救助): its
//! amount, once, in the month it was granted (the local month of the grant's event; review's
//! event carries no date of its own). The grant was paid out at once in cash or by transfer
//! at the street-town; the payment run of that month carries it so that the month's control
//! totals and the ledger hold every fen paid. A run created for that month after the grant
//! picks it up (a run of only the new entitlements, see `aggregate`); a run of another month
//! never pays it. Its id is `assist-first-<event id>`, one per grant.
//!
//! Every entitlement has its **payee** ([`Payee`]): the household's own payment account (the
//! one intake sealed), or — for a 特困 person supported centrally (集中供养) — the care
//! institution review's approval named (`CaseApproved.care_institution_code`). Each order
//! carries it (`PaymentOrder.care_institution_code`); the bank file's export resolves it to
//! an account (`crate::bank_export`).

use sunshine_domain::{Money, Month};

/// How an entitlement pays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Every month from the start month, at the amount in force that month.
    Monthly,
    /// Its amount once, in the start month only.
    OneOff,
}

impl Kind {
    /// The read model's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Monthly => "monthly",
            Kind::OneOff => "one_off",
        }
    }

    pub fn parse(text: &str) -> Option<Kind> {
        match text {
            "monthly" => Some(Kind::Monthly),
            "one_off" => Some(Kind::OneOff),
            _ => None,
        }
    }
}

/// Whom an entitlement's orders pay.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Payee {
    /// The household's own payment account, as intake sealed it.
    #[default]
    Household,
    /// The care institution (its unified social credit code) that supports the 特困 person
    /// centrally (集中供养): its account is the institutions file's.
    CareInstitution(String),
}

impl Payee {
    /// The payee of a `care_institution_code` as events and orders carry it ("": the
    /// household).
    pub fn of_code(code: &str) -> Payee {
        if code.is_empty() {
            Payee::Household
        } else {
            Payee::CareInstitution(code.to_owned())
        }
    }

    /// Its `care_institution_code`: the institution's, or "" for the household.
    pub fn institution_code(&self) -> &str {
        match self {
            Payee::Household => "",
            Payee::CareInstitution(code) => code,
        }
    }
}

/// A new monthly amount from `effective_month` on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Adjustment {
    pub effective_month: Month,
    pub amount: Money,
}

/// One entitlement, as payment's read model holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entitlement {
    pub entitlement_id: String,
    pub case_id: String,
    pub household_id: String,
    pub program_code: String,
    /// The street-town of the household's hukou (12 digits).
    pub street_town_code: String,
    pub kind: Kind,
    /// The monthly amount as approved, or the one-off's amount.
    pub amount: Money,
    /// The first month paid (a one-off: the month it was granted).
    pub start_month: Month,
    pub suspended_from: Option<Month>,
    pub terminated_from: Option<Month>,
    /// In the order they were decided; a later one for the same month wins.
    pub adjustments: Vec<Adjustment>,
    /// Whom its orders pay.
    pub payee: Payee,
}

/// What `entitlement` pays in `month`: nothing before its start month; a one-off its amount in
/// its month and nothing after; a monthly benefit nothing from its termination's or its
/// suspension's effective month on, otherwise the amount of the latest adjustment in force
/// (effective in or before `month`), or the approved amount.
pub fn amount_due(entitlement: &Entitlement, month: Month) -> Money {
    if month < entitlement.start_month {
        return Money::ZERO;
    }
    match entitlement.kind {
        Kind::OneOff => {
            if month == entitlement.start_month {
                entitlement.amount
            } else {
                Money::ZERO
            }
        }
        Kind::Monthly => {
            let stopped = |from: Option<Month>| from.is_some_and(|from| month >= from);
            if stopped(entitlement.terminated_from) || stopped(entitlement.suspended_from) {
                return Money::ZERO;
            }
            let mut in_force: Option<Adjustment> = None;
            for adjustment in &entitlement.adjustments {
                if adjustment.effective_month > month {
                    continue;
                }
                // The latest effective month wins; of two for one month, the later decision.
                if in_force
                    .is_none_or(|current| adjustment.effective_month >= current.effective_month)
                {
                    in_force = Some(*adjustment);
                }
            }
            in_force.map_or(entitlement.amount, |adjustment| adjustment.amount)
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn month(text: &str) -> Month {
        Month::parse(text).unwrap()
    }

    fn dibao() -> Entitlement {
        Entitlement {
            entitlement_id: "case-1".into(),
            case_id: "case-1".into(),
            household_id: "h1".into(),
            program_code: "dibao".into(),
            street_town_code: "990101001000".into(),
            kind: Kind::Monthly,
            amount: Money::from_fen(80_000),
            start_month: month("2026-10"),
            suspended_from: None,
            terminated_from: None,
            adjustments: Vec::new(),
            payee: Payee::Household,
        }
    }

    fn due(entitlement: &Entitlement, text: &str) -> i64 {
        amount_due(entitlement, month(text)).fen()
    }

    #[test]
    fn nothing_before_the_start_month_then_the_approved_amount() {
        let entitlement = dibao();
        assert_eq!(due(&entitlement, "2026-09"), 0);
        assert_eq!(due(&entitlement, "2026-10"), 80_000);
        assert_eq!(due(&entitlement, "2027-03"), 80_000);
    }

    #[test]
    fn an_adjustment_pays_its_amount_from_its_effective_month() {
        let mut entitlement = dibao();
        entitlement.adjustments = vec![
            Adjustment {
                effective_month: month("2026-12"),
                amount: Money::from_fen(60_000),
            },
            Adjustment {
                effective_month: month("2027-02"),
                amount: Money::from_fen(70_000),
            },
        ];
        assert_eq!(due(&entitlement, "2026-11"), 80_000);
        assert_eq!(due(&entitlement, "2026-12"), 60_000);
        assert_eq!(due(&entitlement, "2027-01"), 60_000);
        assert_eq!(due(&entitlement, "2027-02"), 70_000);
    }

    #[test]
    fn of_two_adjustments_for_one_month_the_later_decision_wins() {
        let mut entitlement = dibao();
        entitlement.adjustments = vec![
            Adjustment {
                effective_month: month("2026-12"),
                amount: Money::from_fen(60_000),
            },
            Adjustment {
                effective_month: month("2026-12"),
                amount: Money::from_fen(65_000),
            },
        ];
        assert_eq!(due(&entitlement, "2026-12"), 65_000);
    }

    #[test]
    fn nothing_while_suspended_nor_after_termination() {
        let mut entitlement = dibao();
        entitlement.suspended_from = Some(month("2026-12"));
        assert_eq!(due(&entitlement, "2026-11"), 80_000);
        assert_eq!(due(&entitlement, "2026-12"), 0);
        assert_eq!(due(&entitlement, "2027-01"), 0);
        let mut entitlement = dibao();
        entitlement.terminated_from = Some(month("2027-01"));
        assert_eq!(due(&entitlement, "2026-12"), 80_000);
        assert_eq!(due(&entitlement, "2027-01"), 0);
        assert_eq!(due(&entitlement, "2030-01"), 0);
    }

    #[test]
    fn a_one_off_pays_once_in_its_month() {
        let entitlement = Entitlement {
            entitlement_id: "assist-first-e1".into(),
            kind: Kind::OneOff,
            amount: Money::from_fen(150_000),
            start_month: month("2026-09"),
            ..dibao()
        };
        assert_eq!(due(&entitlement, "2026-08"), 0);
        assert_eq!(due(&entitlement, "2026-09"), 150_000);
        assert_eq!(due(&entitlement, "2026-10"), 0);
    }

    #[test]
    fn a_payee_reads_back_as_its_code() {
        assert_eq!(Payee::of_code(""), Payee::Household);
        assert_eq!(Payee::Household.institution_code(), "");
        let institution = Payee::of_code("12990100MB0000001P");
        assert_eq!(
            institution,
            Payee::CareInstitution("12990100MB0000001P".into())
        );
        assert_eq!(institution.institution_code(), "12990100MB0000001P");
    }

    #[test]
    fn kinds_read_back_as_written() {
        for kind in [Kind::Monthly, Kind::OneOff] {
            assert_eq!(Kind::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(Kind::parse("weekly"), None);
    }
}
