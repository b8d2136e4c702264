//! Unified social credit codes (统一社会信用代码, GB 32100-2015): the national identifier of
//! every organisation, the care institutions that support 特困 persons centrally (集中供养)
//! among them.
//!
//! This module owns [`CreditCode`]. An organisation's code is no personal data: it prints in
//! full.

use std::fmt;

/// The code's length in characters.
pub const CREDIT_CODE_LENGTH: usize = 18;

/// The 31 characters a code is written in (GB 32100-2015, table 1: digits and capital letters
/// without I, O, Z, S, V), each worth its index.
const CHARACTERS: &[u8; 31] = b"0123456789ABCDEFGHJKLMNPQRTUWXY";

/// The weights of the first 17 characters (3^(i-1) mod 31).
const WEIGHTS: [u32; 17] = [
    1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28,
];

/// 统一社会信用代码: 18 characters — the registering authority (1), the organisation's kind
/// (1), the administrative division of its registration (6 digits), its organisation code (9)
/// and a check character — whose check character holds (GB 32100-2015, 4.3). Lowercase
/// letters are taken as capitals.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CreditCode(String);

/// Why a text is no [`CreditCode`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CreditCodeError {
    #[error("a unified social credit code has 18 characters, this has {actual}")]
    WrongLength { actual: usize },
    /// `position` is 1-based.
    #[error(
        "a unified social credit code has digits and capitals but I, O, Z, S, V; not the character at position {position}"
    )]
    InvalidCharacter { position: usize },
    #[error(
        "a unified social credit code's characters 3–8 are its administrative division's digits"
    )]
    InvalidDivision,
    #[error("the unified social credit code's check character does not hold")]
    Checksum,
}

fn value_of(character: u8) -> Option<u32> {
    CHARACTERS
        .iter()
        .position(|known| *known == character)
        .and_then(|at| u32::try_from(at).ok())
}

/// The check character of a code's first 17 characters (each one of [`CHARACTERS`]).
fn check_character(body: &[u8]) -> Option<u8> {
    let mut sum = 0_u32;
    for (character, weight) in body.iter().zip(WEIGHTS) {
        sum += value_of(*character)? * weight;
    }
    let check = (31 - sum % 31) % 31;
    CHARACTERS.get(usize::try_from(check).ok()?).copied()
}

impl CreditCode {
    pub fn parse(text: &str) -> Result<CreditCode, CreditCodeError> {
        let actual = text.chars().count();
        if actual != CREDIT_CODE_LENGTH {
            return Err(CreditCodeError::WrongLength { actual });
        }
        let upper = text.to_ascii_uppercase();
        let bytes = upper.as_bytes();
        // 18 characters and 18 bytes: every character is ASCII.
        if bytes.len() != CREDIT_CODE_LENGTH {
            let position = text
                .chars()
                .position(|character| !character.is_ascii())
                .map_or(1, |at| at + 1);
            return Err(CreditCodeError::InvalidCharacter { position });
        }
        if let Some(at) = bytes.iter().position(|byte| value_of(*byte).is_none()) {
            return Err(CreditCodeError::InvalidCharacter { position: at + 1 });
        }
        if !bytes[2..8].iter().all(u8::is_ascii_digit) {
            return Err(CreditCodeError::InvalidDivision);
        }
        if check_character(&bytes[..17]) != Some(bytes[17]) {
            return Err(CreditCodeError::Checksum);
        }
        Ok(CreditCode(upper))
    }

    /// `body` (17 characters) completed with its check character: for examples and tests.
    pub fn with_check_character(body: &str) -> Result<CreditCode, CreditCodeError> {
        let actual = body.chars().count() + 1;
        if actual != CREDIT_CODE_LENGTH || !body.is_ascii() {
            return Err(CreditCodeError::WrongLength { actual });
        }
        let upper = body.to_ascii_uppercase();
        let check = check_character(upper.as_bytes()).ok_or(CreditCodeError::InvalidCharacter {
            position: upper
                .bytes()
                .position(|byte| value_of(byte).is_none())
                .map_or(1, |at| at + 1),
        })?;
        CreditCode::parse(&format!("{upper}{}", char::from(check)))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CreditCode {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.0)
    }
}

impl std::str::FromStr for CreditCode {
    type Err = CreditCodeError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        CreditCode::parse(text)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// A fictitious public institution (事业单位, `12`) of the example district (`990100`).
    const EXAMPLE_BODY: &str = "12990100MB0000001";

    #[test]
    fn a_body_completed_with_its_check_character_parses_and_prints_in_full() {
        let code = CreditCode::with_check_character(EXAMPLE_BODY).unwrap();
        assert_eq!(code.as_str().len(), CREDIT_CODE_LENGTH);
        assert!(code.as_str().starts_with(EXAMPLE_BODY));
        assert_eq!(CreditCode::parse(code.as_str()).unwrap(), code);
        assert_eq!(code.to_string(), code.as_str());
        assert_eq!(
            CreditCode::parse(&code.as_str().to_ascii_lowercase()).unwrap(),
            code
        );
    }

    #[test]
    fn the_check_character_is_gb_32100_s() {
        // The standard's own example (GB 32100-2015, appendix).
        assert!(CreditCode::parse("91350100M000100Y43").is_ok());
        assert_eq!(
            CreditCode::with_check_character("91350100M000100Y4")
                .unwrap()
                .as_str(),
            "91350100M000100Y43"
        );
        // A wrong last character is refused whatever it is.
        let code = CreditCode::with_check_character(EXAMPLE_BODY).unwrap();
        let last = code.as_str().as_bytes()[17];
        for other in CHARACTERS.iter().filter(|character| **character != last) {
            let text = format!("{EXAMPLE_BODY}{}", char::from(*other));
            assert_eq!(CreditCode::parse(&text), Err(CreditCodeError::Checksum));
        }
        // The sum with the check character's value is a multiple of 31.
        let sum: u32 = code.as_str().as_bytes()[..17]
            .iter()
            .zip(WEIGHTS)
            .map(|(character, weight)| value_of(*character).unwrap() * weight)
            .sum();
        assert_eq!((sum + value_of(last).unwrap()) % 31, 0);
    }

    #[test]
    fn every_malformed_kind_is_refused() {
        let good = CreditCode::with_check_character(EXAMPLE_BODY)
            .unwrap()
            .as_str()
            .to_owned();
        assert_eq!(
            CreditCode::parse(&good[..17]),
            Err(CreditCodeError::WrongLength { actual: 17 })
        );
        assert_eq!(
            CreditCode::parse(""),
            Err(CreditCodeError::WrongLength { actual: 0 })
        );
        assert_eq!(
            CreditCode::parse(&format!("{good}0")),
            Err(CreditCodeError::WrongLength { actual: 19 })
        );
        // I, O, Z, S, V are not in the code's alphabet.
        let with_o = format!("O{}", &good[1..]);
        assert_eq!(
            CreditCode::parse(&with_o),
            Err(CreditCodeError::InvalidCharacter { position: 1 })
        );
        let with_control = format!("12\u{7}{}", &good[3..]);
        assert_eq!(
            CreditCode::parse(&with_control),
            Err(CreditCodeError::InvalidCharacter { position: 3 })
        );
        let with_han = format!("12九{}", &good[3..]);
        assert_eq!(
            CreditCode::parse(&with_han),
            Err(CreditCodeError::InvalidCharacter { position: 3 })
        );
        let letter_division = CreditCode::with_check_character("12A90100MB0000001");
        assert_eq!(letter_division, Err(CreditCodeError::InvalidDivision));
    }
}
