//! Income counting: which income items count, and household and per-capita counted income.
//!
//! This module owns [`IncomeKindSet`] (the excluded kinds, from the parameter
//! `income.excluded_item_kinds`) and the counting functions every means test uses. Counting is
//! a plain sum of whole fen; the one division (per-capita income) rounds half away from zero,
//! as every division in this crate does.

use sunshine_domain::Money;

use crate::error::PolicyError;
use crate::facts::{HouseholdFacts, IncomeKind, MemberFacts};

/// A set of [`IncomeKind`]s, one bit each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct IncomeKindSet {
    bits: u32,
}

impl IncomeKindSet {
    pub fn from_codes(codes: &[&str]) -> IncomeKindSet {
        let mut set = IncomeKindSet::default();
        for code in codes {
            if let Some(kind) = IncomeKind::from_code(code) {
                set.insert(kind);
            }
        }
        set
    }

    pub fn insert(&mut self, kind: IncomeKind) {
        self.bits |= 1 << kind.index();
    }

    pub fn contains(&self, kind: IncomeKind) -> bool {
        self.bits & (1 << kind.index()) != 0
    }
}

/// A member's counted monthly income: every item whose kind is not excluded.
pub fn counted_member_income(
    member: &MemberFacts,
    excluded: IncomeKindSet,
) -> Result<Money, PolicyError> {
    let mut total = Money::ZERO;
    for item in &member.monthly_income {
        if !excluded.contains(item.kind) {
            total = total
                .checked_add(item.amount)
                .ok_or(PolicyError::AmountOverflow { program: "income" })?;
        }
    }
    Ok(total)
}

/// The household's counted monthly income.
pub fn counted_household_income(
    household: &HouseholdFacts,
    excluded: IncomeKindSet,
) -> Result<Money, PolicyError> {
    let mut total = Money::ZERO;
    for member in &household.members {
        total = total
            .checked_add(counted_member_income(member, excluded)?)
            .ok_or(PolicyError::AmountOverflow { program: "income" })?;
    }
    Ok(total)
}

/// Counted household income divided by the number of members, rounded to the nearest fen
/// (half away from zero).
pub fn per_capita(total: Money, member_count: usize) -> Result<Money, PolicyError> {
    let member_count = i64::try_from(member_count.max(1))
        .map_err(|_| PolicyError::AmountOverflow { program: "income" })?;
    total
        .checked_mul_ratio(1, member_count)
        .map_err(|_| PolicyError::AmountOverflow { program: "income" })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn set_membership() {
        let set =
            IncomeKindSet::from_codes(&["entitled_care_payment", "assistance_payment", "bogus"]);
        assert!(set.contains(IncomeKind::EntitledCarePayment));
        assert!(set.contains(IncomeKind::AssistancePayment));
        assert!(!set.contains(IncomeKind::Wages));
    }

    #[test]
    fn per_capita_rounds_half_away_from_zero() {
        assert_eq!(
            per_capita(Money::from_fen(100), 3).unwrap(),
            Money::from_fen(33)
        );
        assert_eq!(
            per_capita(Money::from_fen(200), 3).unwrap(),
            Money::from_fen(67)
        );
        assert_eq!(
            per_capita(Money::from_fen(5), 2).unwrap(),
            Money::from_fen(3)
        );
    }
}
