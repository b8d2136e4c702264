//! Resident identity numbers: parsing, checksum, birth date, sex and masking.
//!
//! This module owns [`NationalId`], the only type in the system that holds a full identity
//! number. Everything that prints one (`Debug`, `Display`, error messages) prints the masked
//! form; the full number leaves only through [`NationalId::as_str`] and serde, which exist for
//! encryption and storage.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use time::{Date, Month};

const NATIONAL_ID_LENGTH: usize = 18;
const BODY_LENGTH: usize = 17;
/// ISO 7064 MOD 11-2 weights for the 17 body digits, as listed in GB 11643-1999.
const CHECKSUM_WEIGHTS: [u32; BODY_LENGTH] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
/// Check character indexed by the weighted sum modulo 11.
const CHECK_CHARACTERS: [char; 11] = ['1', '0', 'X', '9', '8', '7', '6', '5', '4', '3', '2'];
const EARLIEST_BIRTH_YEAR: i32 = 1900;
/// The address code: the region, which a household's hukou code shows anyway.
const MASKED_KEPT_PREFIX: usize = 6;
/// The last sequence digit (the sex, shown anyway) and the check character. Keeping four, as
/// was common, leaves only the month and day hidden: about 33 numbers fit a known birth year,
/// sex and region, and those are in every masked view. With two, about 3,300 fit.
const MASKED_KEPT_SUFFIX: usize = 2;

/// 居民身份证号码: the 18-character resident identity number of GB 11643-1999.
///
/// Layout: 6-digit address code, 8-digit birth date (`YYYYMMDD`), 3-digit sequence number whose
/// last digit is odd for men and even for women, and a check character (`0`–`9` or `X`).
///
/// A value of this type is always valid: the checksum holds, the address code does not start
/// with `0`, and the birth date is a real calendar date on or after 1900-01-01. A lowercase `x`
/// check character is accepted and stored as `X`.
///
/// `Debug` and `Display` print only [`NationalId::masked`]. Serde writes the full number (the
/// storage form) and validates on the way back in.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NationalId {
    normalized: String,
    birth_date: Date,
    sex: Sex,
}

/// Sex as encoded in the 17th digit of a [`NationalId`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Sex {
    Male,
    Female,
}

/// Why a text is not a valid [`NationalId`]. Messages never contain the number itself.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NationalIdError {
    #[error("resident id must be 18 characters, got {actual}")]
    WrongLength { actual: usize },
    /// `position` is 1-based, counting characters from the left.
    #[error("resident id has an invalid character at position {position}")]
    InvalidCharacter { position: usize },
    #[error("resident id address code must not start with 0")]
    InvalidAddressCode,
    #[error("resident id birth date is not a real date on or after 1900-01-01")]
    InvalidBirthDate,
    #[error("resident id birth date is in the future")]
    BirthDateInFuture,
    #[error("resident id check character is wrong: expected {expected}, found {actual}")]
    WrongChecksum { expected: char, actual: char },
}

impl NationalId {
    /// Parses and validates an identity number without knowing today's date.
    ///
    /// Surrounding whitespace is rejected, not trimmed. Use [`NationalId::parse_as_of`] when the
    /// current date is known, so that birth dates in the future are rejected as well.
    pub fn parse(text: &str) -> Result<NationalId, NationalIdError> {
        let character_count = text.chars().count();
        if character_count != NATIONAL_ID_LENGTH {
            return Err(NationalIdError::WrongLength {
                actual: character_count,
            });
        }

        let mut body_digits = [0_u32; BODY_LENGTH];
        let mut normalized = String::with_capacity(NATIONAL_ID_LENGTH);
        for (index, character) in text.chars().enumerate() {
            if index < BODY_LENGTH {
                match character.to_digit(10) {
                    Some(digit) => body_digits[index] = digit,
                    None => {
                        return Err(NationalIdError::InvalidCharacter {
                            position: index + 1,
                        });
                    }
                }
                normalized.push(character);
            } else {
                match character {
                    '0'..='9' | 'X' => normalized.push(character),
                    'x' => normalized.push('X'),
                    _ => {
                        return Err(NationalIdError::InvalidCharacter {
                            position: index + 1,
                        });
                    }
                }
            }
        }

        if body_digits[0] == 0 {
            return Err(NationalIdError::InvalidAddressCode);
        }

        let birth_date = birth_date_from_body(&body_digits)?;

        let expected_check_character = check_character_for(&body_digits);
        let actual_check_character = normalized.chars().last().unwrap_or_default();
        if expected_check_character != actual_check_character {
            return Err(NationalIdError::WrongChecksum {
                expected: expected_check_character,
                actual: actual_check_character,
            });
        }

        let sex = if body_digits[BODY_LENGTH - 1] % 2 == 1 {
            Sex::Male
        } else {
            Sex::Female
        };

        debug_assert_eq!(normalized.len(), NATIONAL_ID_LENGTH);
        Ok(NationalId {
            normalized,
            birth_date,
            sex,
        })
    }

    /// Parses like [`NationalId::parse`] and also rejects a birth date after `today`.
    pub fn parse_as_of(text: &str, today: Date) -> Result<NationalId, NationalIdError> {
        let national_id = NationalId::parse(text)?;
        if national_id.birth_date > today {
            return Err(NationalIdError::BirthDateInFuture);
        }
        Ok(national_id)
    }

    pub fn birth_date(&self) -> Date {
        self.birth_date
    }

    pub fn sex(&self) -> Sex {
        self.sex
    }

    /// The 6-digit administrative address code at registration (digits 1–6).
    pub fn address_code(&self) -> &str {
        &self.normalized[..6]
    }

    /// The full 18-character number, with an uppercase `X` check character.
    ///
    /// Only for encryption, hashing and storage. Never log it or show it to a user who is not
    /// entitled to see it; use [`NationalId::masked`] instead.
    pub fn as_str(&self) -> &str {
        &self.normalized
    }

    /// The number with birth date and sequence hidden, e.g. `110105**********2X`: the first six
    /// characters (the region) and the last two (the sex digit and the check character) are
    /// kept. Even with the birth year and sex known as well, some 3,300 valid numbers fit a
    /// masked one (`masked_id_leaves_thousands_of_candidates` counts them).
    pub fn masked(&self) -> String {
        let hidden_count = NATIONAL_ID_LENGTH - MASKED_KEPT_PREFIX - MASKED_KEPT_SUFFIX;
        let mut masked = String::with_capacity(NATIONAL_ID_LENGTH);
        masked.push_str(&self.normalized[..MASKED_KEPT_PREFIX]);
        masked.push_str(&"*".repeat(hidden_count));
        masked.push_str(&self.normalized[NATIONAL_ID_LENGTH - MASKED_KEPT_SUFFIX..]);
        masked
    }
}

impl NationalId {
    /// The full 18-character id for 17 body digits (address code, birth date, sequence), with
    /// the check character computed: for test data and demonstrations, never for real people.
    /// `None` if `body` is not 17 ASCII digits.
    pub fn with_check_character(body: &str) -> Option<String> {
        if body.len() != BODY_LENGTH || !body.bytes().all(|byte| byte.is_ascii_digit()) {
            return None;
        }
        let mut digits = [0_u32; BODY_LENGTH];
        for (slot, byte) in digits.iter_mut().zip(body.bytes()) {
            *slot = u32::from(byte - b'0');
        }
        Some(format!("{body}{}", check_character_for(&digits)))
    }
}

/// The check character that GB 11643-1999 prescribes for the 17 body digits.
fn check_character_for(body_digits: &[u32; BODY_LENGTH]) -> char {
    let mut weighted_sum = 0_u32;
    for (digit, weight) in body_digits.iter().zip(CHECKSUM_WEIGHTS.iter()) {
        weighted_sum += digit * weight;
    }
    CHECK_CHARACTERS[(weighted_sum % 11) as usize]
}

/// Reads digits 7–14 as `YYYYMMDD` and checks they form a real date on or after 1900-01-01.
fn birth_date_from_body(body_digits: &[u32; BODY_LENGTH]) -> Result<Date, NationalIdError> {
    let decimal = |range: std::ops::Range<usize>| -> u32 {
        let mut value = 0_u32;
        for digit in &body_digits[range] {
            value = value * 10 + digit;
        }
        value
    };
    let year = decimal(6..10);
    let month = decimal(10..12);
    let day = decimal(12..14);

    let year = i32::try_from(year).map_err(|_| NationalIdError::InvalidBirthDate)?;
    if year < EARLIEST_BIRTH_YEAR {
        return Err(NationalIdError::InvalidBirthDate);
    }
    let month = u8::try_from(month)
        .ok()
        .and_then(|month_number| Month::try_from(month_number).ok())
        .ok_or(NationalIdError::InvalidBirthDate)?;
    let day = u8::try_from(day).map_err(|_| NationalIdError::InvalidBirthDate)?;
    Date::from_calendar_date(year, month, day).map_err(|_| NationalIdError::InvalidBirthDate)
}

impl fmt::Debug for NationalId {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_tuple("NationalId")
            .field(&self.masked())
            .finish()
    }
}

impl fmt::Display for NationalId {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.masked())
    }
}

impl FromStr for NationalId {
    type Err = NationalIdError;

    fn from_str(text: &str) -> Result<NationalId, NationalIdError> {
        NationalId::parse(text)
    }
}

impl Serialize for NationalId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.normalized)
    }
}

impl<'de> Deserialize<'de> for NationalId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<NationalId, D::Error> {
        let text = String::deserialize(deserializer)?;
        NationalId::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use time::macros::date;

    /// Check characters below were computed by hand with the weights and table above; the first
    /// is the sample printed in many references.
    const FEMALE_BORN_1949: &str = "11010519491231002X";
    const MALE_BORN_1990: &str = "320102199003071239";
    const FEMALE_BORN_2000: &str = "510107200012310046";
    const FEMALE_BORN_1985: &str = "440306198506150026";
    const BORN_ON_LEAP_DAY_2000: &str = "440306200002290017";
    const BORN_FIRST_DAY_1900: &str = "11010519000101001X";

    #[test]
    fn generated_ids_carry_the_right_check_character() {
        assert_eq!(
            NationalId::with_check_character("11010519491231002").as_deref(),
            Some("11010519491231002X")
        );
        let generated = NationalId::with_check_character("99010119650312101").unwrap();
        assert!(NationalId::parse(&generated).is_ok());
        assert!(NationalId::with_check_character("1101051949123100").is_none());
        assert!(NationalId::with_check_character("1101051949123100a").is_none());
    }

    #[test]
    fn accepts_valid_ids_and_reads_their_fields() {
        let first = NationalId::parse(FEMALE_BORN_1949).unwrap();
        assert_eq!(first.birth_date(), date!(1949 - 12 - 31));
        assert_eq!(first.sex(), Sex::Female);
        assert_eq!(first.address_code(), "110105");
        assert_eq!(first.as_str(), FEMALE_BORN_1949);

        let second = NationalId::parse(MALE_BORN_1990).unwrap();
        assert_eq!(second.birth_date(), date!(1990 - 03 - 07));
        assert_eq!(second.sex(), Sex::Male);
        assert_eq!(second.address_code(), "320102");

        let third = NationalId::parse(FEMALE_BORN_2000).unwrap();
        assert_eq!(third.birth_date(), date!(2000 - 12 - 31));
        assert_eq!(third.sex(), Sex::Female);

        let fourth = NationalId::parse(FEMALE_BORN_1985).unwrap();
        assert_eq!(fourth.birth_date(), date!(1985 - 06 - 15));

        let leap_day = NationalId::parse(BORN_ON_LEAP_DAY_2000).unwrap();
        assert_eq!(leap_day.birth_date(), date!(2000 - 02 - 29));
        assert_eq!(leap_day.sex(), Sex::Male);

        let earliest = NationalId::parse(BORN_FIRST_DAY_1900).unwrap();
        assert_eq!(earliest.birth_date(), date!(1900 - 01 - 01));
    }

    #[test]
    fn lowercase_check_character_is_accepted_and_normalised() {
        let national_id = NationalId::parse("11010519491231002x").unwrap();
        assert_eq!(national_id.as_str(), FEMALE_BORN_1949);
        assert_eq!(national_id, NationalId::parse(FEMALE_BORN_1949).unwrap());
    }

    #[test]
    fn rejects_wrong_checksum() {
        assert_eq!(
            NationalId::parse("110105194912310021"),
            Err(NationalIdError::WrongChecksum {
                expected: 'X',
                actual: '1'
            })
        );
        assert_eq!(
            NationalId::parse("32010219900307123X"),
            Err(NationalIdError::WrongChecksum {
                expected: '9',
                actual: 'X'
            })
        );
    }

    #[test]
    fn rejects_impossible_birth_dates() {
        // Each has a correct check character, so only the date is wrong.
        for text in [
            "110105199902300015", // 30 February
            "110105202313010014", // month 13
            "110105189912310015", // before 1900
            "440306190002290010", // 1900 was not a leap year
        ] {
            assert_eq!(
                NationalId::parse(text),
                Err(NationalIdError::InvalidBirthDate),
                "{text}"
            );
        }
    }

    #[test]
    fn rejects_future_birth_date_only_when_today_is_known() {
        let born_new_year_2026 = "990101202601010017";
        assert!(NationalId::parse(born_new_year_2026).is_ok());
        assert_eq!(
            NationalId::parse_as_of(born_new_year_2026, date!(2025 - 12 - 31)),
            Err(NationalIdError::BirthDateInFuture)
        );
        assert!(NationalId::parse_as_of(born_new_year_2026, date!(2026 - 01 - 01)).is_ok());
        assert_eq!(
            NationalId::parse_as_of("990101202601020012", date!(2026 - 01 - 01)),
            Err(NationalIdError::BirthDateInFuture)
        );
    }

    #[test]
    fn rejects_wrong_length_and_surrounding_whitespace() {
        assert_eq!(
            NationalId::parse("11010519491231002"),
            Err(NationalIdError::WrongLength { actual: 17 })
        );
        assert_eq!(
            NationalId::parse(""),
            Err(NationalIdError::WrongLength { actual: 0 })
        );
        assert_eq!(
            NationalId::parse(" 11010519491231002X"),
            Err(NationalIdError::WrongLength { actual: 19 })
        );
        assert_eq!(
            NationalId::parse("11010519491231002X\n"),
            Err(NationalIdError::WrongLength { actual: 19 })
        );
    }

    #[test]
    fn rejects_letters_and_other_characters_in_the_body() {
        assert_eq!(
            NationalId::parse("1101051949A231002X"),
            Err(NationalIdError::InvalidCharacter { position: 11 })
        );
        assert_eq!(
            NationalId::parse("X10105194912310021"),
            Err(NationalIdError::InvalidCharacter { position: 1 })
        );
        assert_eq!(
            NationalId::parse("1101051949123100２X"),
            Err(NationalIdError::InvalidCharacter { position: 17 })
        );
        assert_eq!(
            NationalId::parse("11010519491231002Y"),
            Err(NationalIdError::InvalidCharacter { position: 18 })
        );
    }

    #[test]
    fn rejects_address_code_starting_with_zero() {
        assert_eq!(
            NationalId::parse("010105194912310026"),
            Err(NationalIdError::InvalidAddressCode)
        );
    }

    #[test]
    fn debug_and_display_print_only_the_masked_form() {
        let national_id = NationalId::parse(FEMALE_BORN_1949).unwrap();
        assert_eq!(national_id.masked(), "110105**********2X");
        let displayed = national_id.to_string();
        let debugged = format!("{national_id:?}");
        let pretty_debugged = format!("{national_id:#?}");
        assert_eq!(displayed, "110105**********2X");
        for printed in [&displayed, &debugged, &pretty_debugged] {
            assert!(!printed.contains(FEMALE_BORN_1949), "{printed}");
            assert!(!printed.contains("19491231"), "{printed}");
        }
    }

    /// Every valid number that agrees with a masked one, its birth year and its sex: what
    /// someone holding a masked view (and the clear birth year) would have to choose among.
    fn candidates(masked: &str, birth_year: i32, sex: Sex) -> usize {
        let prefix = &masked[..MASKED_KEPT_PREFIX];
        let mut count = 0;
        let mut day = Date::from_calendar_date(birth_year, Month::January, 1).unwrap();
        while day.year() == birth_year {
            for sequence in 0..1000 {
                let body = format!(
                    "{prefix}{birth_year:04}{:02}{:02}{sequence:03}",
                    u8::from(day.month()),
                    day.day()
                );
                let full = NationalId::with_check_character(&body).unwrap();
                let parsed = NationalId::parse(&full).unwrap();
                if parsed.sex() == sex && parsed.masked() == masked {
                    count += 1;
                }
            }
            day = day.next_day().unwrap();
        }
        count
    }

    #[test]
    fn masked_id_leaves_thousands_of_candidates() {
        for text in [FEMALE_BORN_1949, MALE_BORN_1990, BORN_ON_LEAP_DAY_2000] {
            let national_id = NationalId::parse(text).unwrap();
            let count = candidates(
                &national_id.masked(),
                national_id.birth_date().year(),
                national_id.sex(),
            );
            assert!(count >= 1_000, "{text}: only {count} candidates");
        }
    }

    #[test]
    fn error_messages_never_contain_the_number() {
        let wrong_checksum = NationalId::parse("110105194912310021").unwrap_err();
        assert!(!wrong_checksum.to_string().contains("11010519491231"));
        let future = NationalId::parse_as_of(FEMALE_BORN_1949, date!(1949 - 01 - 01)).unwrap_err();
        assert!(!future.to_string().contains("11010519491231"));
    }

    #[test]
    fn serde_round_trips_and_validates() {
        let national_id = NationalId::parse(FEMALE_BORN_1949).unwrap();
        let value =
            serde::de::value::StrDeserializer::<serde::de::value::Error>::new(national_id.as_str());
        assert_eq!(NationalId::deserialize(value).unwrap(), national_id);

        let lowercase =
            serde::de::value::StrDeserializer::<serde::de::value::Error>::new("11010519491231002x");
        assert_eq!(NationalId::deserialize(lowercase).unwrap(), national_id);

        let invalid =
            serde::de::value::StrDeserializer::<serde::de::value::Error>::new("110105194912310021");
        let error = NationalId::deserialize(invalid).unwrap_err();
        assert!(!error.to_string().contains("110105194912310021"));
    }

    #[test]
    fn serializes_as_the_full_number_for_storage() {
        #[derive(Serialize)]
        struct Row {
            national_id: NationalId,
        }
        let row = Row {
            national_id: NationalId::parse(MALE_BORN_1990).unwrap(),
        };
        let text = toml::to_string(&row).unwrap();
        assert_eq!(text.trim(), format!("national_id = \"{MALE_BORN_1990}\""));
    }
}
