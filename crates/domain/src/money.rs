//! Amounts of money as whole fen, with checked arithmetic and a yuan text form.
//!
//! This module owns [`Money`] and [`MoneyError`]. There are no floating-point numbers here:
//! every amount is an `i64` count of fen, every operation is checked for overflow, and the one
//! place that divides ([`Money::checked_mul_ratio`]) states its rounding rule.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

const FEN_PER_YUAN: i64 = 100;

/// 分 / 元 (fen / yuan): an amount of money, held as a signed whole number of fen
/// (1 yuan = 100 fen).
///
/// Negative amounts are allowed (refunds, reversals, corrections). Serde writes the amount as
/// an integer count of fen. `Display` writes yuan with exactly two decimals (`1234.56`,
/// `-0.05`, `0.00`), which [`Money::parse_yuan`] reads back.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Money {
    fen: i64,
}

/// Why an arithmetic operation or a parse on [`Money`] failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    #[error("amount is out of range")]
    Overflow,
    #[error("division by zero")]
    DivisionByZero,
    #[error("invalid yuan amount: {reason}")]
    InvalidFormat { reason: &'static str },
}

impl Money {
    pub const ZERO: Money = Money { fen: 0 };

    pub const fn from_fen(fen: i64) -> Money {
        Money { fen }
    }

    /// Whole yuan; `None` when `yuan * 100` does not fit in an `i64`.
    pub const fn from_yuan(yuan: i64) -> Option<Money> {
        match yuan.checked_mul(FEN_PER_YUAN) {
            Some(fen) => Some(Money { fen }),
            None => None,
        }
    }

    pub const fn fen(self) -> i64 {
        self.fen
    }

    pub const fn is_negative(self) -> bool {
        self.fen < 0
    }

    pub const fn is_zero(self) -> bool {
        self.fen == 0
    }

    pub fn checked_add(self, other: Money) -> Option<Money> {
        self.fen.checked_add(other.fen).map(Money::from_fen)
    }

    pub fn checked_sub(self, other: Money) -> Option<Money> {
        self.fen.checked_sub(other.fen).map(Money::from_fen)
    }

    pub fn checked_mul(self, factor: i64) -> Option<Money> {
        self.fen.checked_mul(factor).map(Money::from_fen)
    }

    pub fn checked_neg(self) -> Option<Money> {
        self.fen.checked_neg().map(Money::from_fen)
    }

    /// `self * numerator / denominator`, rounded to the nearest fen with ties rounded half
    /// away from zero (`0.5` fen → `1`, `-0.5` fen → `-1`).
    ///
    /// Used for coefficients and pro-rata amounts, e.g. a hardship coefficient of 1.3 is
    /// `checked_mul_ratio(13, 10)` and 11 days of a 30-day month is `checked_mul_ratio(11, 30)`.
    /// The product is computed in `i128`, so only a result outside `i64` overflows.
    pub fn checked_mul_ratio(self, numerator: i64, denominator: i64) -> Result<Money, MoneyError> {
        if denominator == 0 {
            return Err(MoneyError::DivisionByZero);
        }
        let product = i128::from(self.fen) * i128::from(numerator);
        let denominator = i128::from(denominator);
        let truncated_quotient = product / denominator;
        let remainder = product % denominator;
        // |remainder| < |denominator| <= 2^63, so doubling cannot overflow an i128.
        let rounds_away_from_zero = 2 * remainder.abs() >= denominator.abs();
        let exact_result_is_negative = (product < 0) != (denominator < 0);
        let rounded_quotient = if remainder != 0 && rounds_away_from_zero {
            if exact_result_is_negative {
                truncated_quotient - 1
            } else {
                truncated_quotient + 1
            }
        } else {
            truncated_quotient
        };
        i64::try_from(rounded_quotient)
            .map(Money::from_fen)
            .map_err(|_| MoneyError::Overflow)
    }

    /// The sum of all amounts; `None` if any partial sum overflows.
    pub fn checked_sum<I: IntoIterator<Item = Money>>(amounts: I) -> Option<Money> {
        let mut total = Money::ZERO;
        for amount in amounts {
            total = total.checked_add(amount)?;
        }
        Some(total)
    }

    /// Reads a yuan amount: an optional `-`, one or more ASCII digits, and optionally a `.`
    /// followed by one or two digits (`"1234"`, `"1234.5"`, `"1234.56"`, `"-3.07"`).
    ///
    /// Rejects everything else: empty text, whitespace, `+`, thousands separators, exponent
    /// forms such as `1e3`, more than two decimals (no silent rounding), and amounts outside
    /// the `i64` fen range.
    pub fn parse_yuan(text: &str) -> Result<Money, MoneyError> {
        let (is_negative, unsigned_text) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        let (yuan_text, fraction_text) = match unsigned_text.split_once('.') {
            Some((yuan_text, fraction_text)) => (yuan_text, Some(fraction_text)),
            None => (unsigned_text, None),
        };

        if yuan_text.is_empty() {
            return Err(MoneyError::InvalidFormat {
                reason: "missing yuan digits",
            });
        }
        let mut magnitude_in_fen: i128 = 0;
        for character in yuan_text.chars() {
            let digit = character.to_digit(10).ok_or(MoneyError::InvalidFormat {
                reason: "only digits, an optional leading '-' and one '.' are allowed",
            })?;
            magnitude_in_fen = magnitude_in_fen
                .checked_mul(10)
                .and_then(|value| value.checked_add(i128::from(digit)))
                .ok_or(MoneyError::Overflow)?;
        }
        magnitude_in_fen = magnitude_in_fen
            .checked_mul(i128::from(FEN_PER_YUAN))
            .ok_or(MoneyError::Overflow)?;

        if let Some(fraction_text) = fraction_text {
            let mut fraction_in_fen: i128 = 0;
            let mut fraction_digit_count = 0_usize;
            for character in fraction_text.chars() {
                let digit = character.to_digit(10).ok_or(MoneyError::InvalidFormat {
                    reason: "only digits, an optional leading '-' and one '.' are allowed",
                })?;
                fraction_digit_count += 1;
                if fraction_digit_count > 2 {
                    return Err(MoneyError::InvalidFormat {
                        reason: "more than two decimal places",
                    });
                }
                fraction_in_fen = fraction_in_fen * 10 + i128::from(digit);
            }
            if fraction_digit_count == 0 {
                return Err(MoneyError::InvalidFormat {
                    reason: "missing digits after '.'",
                });
            }
            if fraction_digit_count == 1 {
                fraction_in_fen *= 10;
            }
            magnitude_in_fen = magnitude_in_fen
                .checked_add(fraction_in_fen)
                .ok_or(MoneyError::Overflow)?;
        }

        let signed_fen = if is_negative {
            -magnitude_in_fen
        } else {
            magnitude_in_fen
        };
        i64::try_from(signed_fen)
            .map(Money::from_fen)
            .map_err(|_| MoneyError::Overflow)
    }
}

impl fmt::Display for Money {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        // unsigned_abs keeps i64::MIN printable.
        let magnitude = self.fen.unsigned_abs();
        let sign = if self.fen < 0 { "-" } else { "" };
        let fen_per_yuan = FEN_PER_YUAN.unsigned_abs();
        write!(
            formatter,
            "{sign}{}.{:02}",
            magnitude / fen_per_yuan,
            magnitude % fen_per_yuan
        )
    }
}

impl FromStr for Money {
    type Err = MoneyError;

    fn from_str(text: &str) -> Result<Money, MoneyError> {
        Money::parse_yuan(text)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn fen(amount: i64) -> Money {
        Money::from_fen(amount)
    }

    #[test]
    fn constructors_and_accessors() {
        assert_eq!(Money::from_yuan(12), Some(fen(1200)));
        assert_eq!(Money::from_yuan(-3), Some(fen(-300)));
        assert_eq!(Money::from_yuan(i64::MAX), None);
        assert_eq!(Money::from_yuan(i64::MIN / 100 - 1), None);
        assert_eq!(Money::ZERO.fen(), 0);
        assert_eq!(Money::default(), Money::ZERO);
        assert!(fen(-1).is_negative());
        assert!(!Money::ZERO.is_negative());
        assert!(Money::ZERO.is_zero());
    }

    #[test]
    fn checked_arithmetic_reports_overflow() {
        assert_eq!(fen(150).checked_add(fen(-50)), Some(fen(100)));
        assert_eq!(fen(i64::MAX).checked_add(fen(1)), None);
        assert_eq!(fen(100).checked_sub(fen(250)), Some(fen(-150)));
        assert_eq!(fen(i64::MIN).checked_sub(fen(1)), None);
        assert_eq!(fen(123).checked_mul(-3), Some(fen(-369)));
        assert_eq!(fen(i64::MAX / 2 + 1).checked_mul(2), None);
        assert_eq!(fen(5).checked_neg(), Some(fen(-5)));
        assert_eq!(fen(i64::MIN).checked_neg(), None);
    }

    #[test]
    fn checked_sum_adds_all_or_reports_overflow() {
        assert_eq!(Money::checked_sum([fen(1), fen(2), fen(-4)]), Some(fen(-1)));
        assert_eq!(Money::checked_sum(Vec::new()), Some(Money::ZERO));
        assert_eq!(Money::checked_sum([fen(i64::MAX), fen(1), fen(-5)]), None);
    }

    #[test]
    fn ratio_rounds_half_away_from_zero_for_both_signs() {
        // 5 fen * 1/2 = 2.5 fen
        assert_eq!(fen(5).checked_mul_ratio(1, 2), Ok(fen(3)));
        assert_eq!(fen(-5).checked_mul_ratio(1, 2), Ok(fen(-3)));
        assert_eq!(fen(5).checked_mul_ratio(-1, 2), Ok(fen(-3)));
        assert_eq!(fen(5).checked_mul_ratio(1, -2), Ok(fen(-3)));
        assert_eq!(fen(-5).checked_mul_ratio(-1, 2), Ok(fen(3)));
        // below the half rounds toward zero, above rounds away
        assert_eq!(fen(10).checked_mul_ratio(1, 3), Ok(fen(3)));
        assert_eq!(fen(-10).checked_mul_ratio(1, 3), Ok(fen(-3)));
        assert_eq!(fen(20).checked_mul_ratio(1, 3), Ok(fen(7)));
        assert_eq!(fen(-20).checked_mul_ratio(1, 3), Ok(fen(-7)));
        // exact results are unchanged
        assert_eq!(fen(100_000).checked_mul_ratio(13, 10), Ok(fen(130_000)));
        assert_eq!(fen(0).checked_mul_ratio(7, 3), Ok(fen(0)));
    }

    #[test]
    fn ratio_uses_a_wide_intermediate_and_reports_errors() {
        // The product overflows i64 but the result fits.
        assert_eq!(fen(i64::MAX).checked_mul_ratio(3, 3), Ok(fen(i64::MAX)));
        assert_eq!(
            fen(i64::MAX).checked_mul_ratio(2, 1),
            Err(MoneyError::Overflow)
        );
        assert_eq!(
            fen(i64::MIN).checked_mul_ratio(-1, 1),
            Err(MoneyError::Overflow)
        );
        assert_eq!(
            fen(100).checked_mul_ratio(1, 0),
            Err(MoneyError::DivisionByZero)
        );
        assert_eq!(
            fen(i64::MIN).checked_mul_ratio(i64::MIN, i64::MIN),
            Ok(fen(i64::MIN))
        );
    }

    #[test]
    fn displays_yuan_with_two_decimals() {
        assert_eq!(fen(123_456).to_string(), "1234.56");
        assert_eq!(fen(-5).to_string(), "-0.05");
        assert_eq!(fen(0).to_string(), "0.00");
        assert_eq!(fen(100).to_string(), "1.00");
        assert_eq!(fen(-307).to_string(), "-3.07");
        assert_eq!(fen(i64::MIN).to_string(), "-92233720368547758.08");
        assert_eq!(fen(i64::MAX).to_string(), "92233720368547758.07");
    }

    #[test]
    fn parses_yuan_text() {
        assert_eq!(Money::parse_yuan("1234"), Ok(fen(123_400)));
        assert_eq!(Money::parse_yuan("1234.5"), Ok(fen(123_450)));
        assert_eq!(Money::parse_yuan("1234.56"), Ok(fen(123_456)));
        assert_eq!(Money::parse_yuan("-3.07"), Ok(fen(-307)));
        assert_eq!(Money::parse_yuan("-0.05"), Ok(fen(-5)));
        assert_eq!(Money::parse_yuan("0"), Ok(Money::ZERO));
        assert_eq!(Money::parse_yuan("007.10"), Ok(fen(710)));
        assert_eq!("12.34".parse::<Money>(), Ok(fen(1234)));
    }

    #[test]
    fn rejects_malformed_yuan_text() {
        for text in [
            "", "-", ".5", "1.", "1.234", "1e3", "1.5e2", "1E3", " 1", "1 ", "+1", "1,000",
            "1.2.3", "--1", "-.5", "NaN", "inf", "１２", "1.-5",
        ] {
            assert!(
                matches!(
                    Money::parse_yuan(text),
                    Err(MoneyError::InvalidFormat { .. })
                ),
                "{text:?} should be rejected as malformed"
            );
        }
    }

    #[test]
    fn rejects_yuan_text_out_of_range() {
        assert_eq!(
            Money::parse_yuan("92233720368547758.08"),
            Err(MoneyError::Overflow)
        );
        assert_eq!(
            Money::parse_yuan("-92233720368547758.09"),
            Err(MoneyError::Overflow)
        );
        assert_eq!(
            Money::parse_yuan("99999999999999999999999999999999999999999999999"),
            Err(MoneyError::Overflow)
        );
        assert_eq!(
            Money::parse_yuan("-92233720368547758.08"),
            Ok(fen(i64::MIN))
        );
    }

    #[test]
    fn display_and_parse_round_trip() {
        for amount in [
            0,
            1,
            -1,
            9,
            10,
            99,
            100,
            -307,
            123_456,
            -123_456,
            i64::MAX,
            i64::MIN,
        ] {
            let money = fen(amount);
            assert_eq!(Money::parse_yuan(&money.to_string()), Ok(money));
        }
    }

    #[test]
    fn serializes_as_integer_fen() {
        #[derive(Serialize, Deserialize, PartialEq, Debug)]
        struct Row {
            amount: Money,
        }
        let row = Row { amount: fen(-307) };
        let text = toml::to_string(&row).unwrap();
        assert_eq!(text.trim(), "amount = -307");
        assert_eq!(toml::from_str::<Row>(&text).unwrap(), row);
    }

    #[test]
    fn orders_by_amount() {
        let mut amounts = vec![fen(5), fen(-10), Money::ZERO];
        amounts.sort();
        assert_eq!(amounts, vec![fen(-10), Money::ZERO, fen(5)]);
    }
}
