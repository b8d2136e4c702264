//! Collecting every invalid field of a request, so callers can report them all at once.
//!
//! This module owns [`FieldViolation`] and [`ValidationErrors`]. Services validate each field
//! with the parsers in this crate, record failures here instead of returning on the first one,
//! and map the whole list to one error with field-level details at the edge.
//!
//! It also owns the checks every service applies to command ids and UUIDs
//! ([`check_command_id`], [`check_uuid`]), to free text and to keys ([`check_text`],
//! [`check_key`]): a length limit counted without reading a huge value whole, and no character
//! that is invisible or changes how the text around it displays ([`is_forbidden_in_text`]), so
//! a name in the append-only log reads the same to every officer who ever looks at it.

use std::fmt;

/// The longest command id a client may choose (`docs/limits.md`).
pub const MAX_COMMAND_ID_CHARS: usize = 100;

/// A request's `command_id`: 1 to [`MAX_COMMAND_ID_CHARS`] printable ASCII characters.
pub fn check_command_id(errors: &mut ValidationErrors, command_id: &str) {
    if command_id.is_empty()
        || command_id.len() > MAX_COMMAND_ID_CHARS
        || !command_id.bytes().all(|byte| byte.is_ascii_graphic())
    {
        errors.push(
            "command_id",
            "1 to 100 printable ASCII characters, chosen by the client and reused on retries",
        );
    }
}

/// A UUID in its canonical text form, 36 lowercase characters (the ids services hand out and
/// their stream ids use; page tokens): anything else is a violation of `field`, naming `what`.
pub fn check_uuid(errors: &mut ValidationErrors, field: &str, value: &str, what: &str) {
    let canonical = value.len() == 36
        && uuid::Uuid::parse_str(value)
            .is_ok_and(|parsed| parsed.hyphenated().to_string() == value);
    if !canonical {
        errors.push(field, format!("{what} (a UUID)"));
    }
}

/// One invalid field: its path in the request (e.g. `members[2].national_id`) and what is wrong
/// with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldViolation {
    pub field: String,
    pub description: String,
}

impl fmt::Display for FieldViolation {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{}: {}", self.field, self.description)
    }
}

/// All field violations found in one request, in the order they were found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ValidationErrors {
    violations: Vec<FieldViolation>,
}

impl ValidationErrors {
    pub fn new() -> ValidationErrors {
        ValidationErrors::default()
    }

    pub fn push(&mut self, field: impl Into<String>, description: impl Into<String>) {
        self.violations.push(FieldViolation {
            field: field.into(),
            description: description.into(),
        });
    }

    /// Returns the value of an `Ok`, or records the error's message against `field` and returns
    /// `None`:
    ///
    /// ```
    /// # use sunshine_domain::{Money, ValidationErrors};
    /// let mut errors = ValidationErrors::new();
    /// let amount = errors.check("amount", Money::parse_yuan("12.345"));
    /// assert!(amount.is_none());
    /// assert_eq!(errors.violations()[0].field, "amount");
    /// ```
    pub fn check<T, E: fmt::Display>(
        &mut self,
        field: impl Into<String>,
        result: Result<T, E>,
    ) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(error) => {
                self.push(field, error.to_string());
                None
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.violations.is_empty()
    }

    pub fn len(&self) -> usize {
        self.violations.len()
    }

    pub fn violations(&self) -> &[FieldViolation] {
        &self.violations
    }

    /// `Ok(())` when nothing was recorded, otherwise `Err(self)`.
    pub fn into_result(self) -> Result<(), ValidationErrors> {
        if self.violations.is_empty() {
            Ok(())
        } else {
            Err(self)
        }
    }

    pub fn into_violations(self) -> Vec<FieldViolation> {
        self.violations
    }
}

impl fmt::Display for ValidationErrors {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{} invalid field(s)", self.violations.len())?;
        let mut separator = ": ";
        for violation in &self.violations {
            write!(formatter, "{separator}{violation}")?;
            separator = "; ";
        }
        Ok(())
    }
}

impl std::error::Error for ValidationErrors {}

/// Whether `character` may not appear in any text of a request: every C0/C1 control (Unicode
/// category Cc, including tab and newline unless a [`TextRule`] allows line breaks) and every
/// [`is_invisible_format`] character.
pub fn is_forbidden_in_text(character: char) -> bool {
    character.is_control() || is_invisible_format(character)
}

/// The invisible formatting characters: the zero-width and direction marks U+200B–U+200F, the
/// bidirectional embeddings and overrides U+202A–U+202E, the isolates U+2066–U+2069, the
/// Arabic letter mark U+061C, the word joiners and invisible operators U+2060–U+2064, the
/// soft hyphen U+00AD, the Mongolian vowel separator U+180E and the byte-order mark U+FEFF.
/// They display as nothing, or reorder what follows ("Trojan Source"), so two names that look
/// identical could differ, or one could look like another.
pub fn is_invisible_format(character: char) -> bool {
    matches!(
        character,
        '\u{00AD}'
            | '\u{061C}'
            | '\u{180E}'
            | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{2069}'
            | '\u{FEFF}'
    )
}

/// What a free-text field accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TextRule {
    /// At most this many characters (Unicode scalar values).
    pub max_chars: usize,
    /// Refuse an empty or all-whitespace value.
    pub required: bool,
    /// Allow `\n` (and `\r\n`) between lines, e.g. in findings; never any other control.
    pub multiline: bool,
}

impl TextRule {
    /// One line of at most `max_chars`, required.
    pub const fn required(max_chars: usize) -> TextRule {
        TextRule {
            max_chars,
            required: true,
            multiline: false,
        }
    }

    /// One line of at most `max_chars`, may be empty.
    pub const fn optional(max_chars: usize) -> TextRule {
        TextRule {
            max_chars,
            required: false,
            multiline: false,
        }
    }

    /// The same rule, allowing line breaks.
    pub const fn multiline(self) -> TextRule {
        TextRule {
            multiline: true,
            ..self
        }
    }
}

/// Records a violation of `rule` by `value` against `field`. A value far over the limit is
/// refused from its byte length without being walked; the message never repeats the value.
pub fn check_text(errors: &mut ValidationErrors, field: &str, value: &str, rule: TextRule) {
    if rule.required && value.trim().is_empty() {
        errors.push(field, "must not be empty");
        return;
    }
    // A character is at most 4 bytes: more bytes than that is over the limit for sure.
    let too_long = value.len() > rule.max_chars.saturating_mul(4)
        || value.chars().take(rule.max_chars + 1).count() > rule.max_chars;
    if too_long {
        errors.push(field, format!("at most {} characters", rule.max_chars));
        return;
    }
    let mut characters = value.chars().peekable();
    while let Some(character) = characters.next() {
        // A line break is `\n` or `\r\n`; a lone `\r` rewrites a terminal line, so it is refused.
        let line_break = rule.multiline
            && (character == '\n' || (character == '\r' && characters.peek() == Some(&'\n')));
        if is_forbidden_in_text(character) && !line_break {
            errors.push(
                field,
                "must not contain control, zero-width or text-direction characters",
            );
            return;
        }
    }
}

/// Records a violation unless `key` is an identifier-like key: 1 to `max_len` characters of
/// `a`–`z`, `0`–`9` and `_`, starting with a letter (keys of maps such as declared facts). The
/// message never repeats the key, which may be huge or hold anything.
pub fn check_key(errors: &mut ValidationErrors, field: &str, key: &str, max_len: usize) {
    let well_formed = !key.is_empty()
        && key.len() <= max_len
        && key.as_bytes()[0].is_ascii_lowercase()
        && key
            .bytes()
            .all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit() || byte == b'_');
    if !well_formed {
        errors.push(
            field,
            format!("keys are 1 to {max_len} characters of a-z, 0-9 and _, starting with a letter"),
        );
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::{Money, NationalId};

    #[test]
    fn command_ids_and_uuids_are_checked_to_their_one_form() {
        let mut errors = ValidationErrors::default();
        check_command_id(&mut errors, "retry-1");
        check_uuid(
            &mut errors,
            "run_id",
            "0190c7a4-3c1f-7c2e-9a4b-2f1e3d4c5b6a",
            "a run",
        );
        assert!(errors.is_empty());
        for bad in [
            "",
            "with space",
            "控制",
            &"x".repeat(MAX_COMMAND_ID_CHARS + 1),
        ] {
            let mut errors = ValidationErrors::default();
            check_command_id(&mut errors, bad);
            assert_eq!(errors.len(), 1, "{bad:?}");
        }
        for bad in [
            "0190C7A4-3C1F-7C2E-9A4B-2F1E3D4C5B6A",
            "0190c7a43c1f7c2e9a4b2f1e3d4c5b6a",
            "",
        ] {
            let mut errors = ValidationErrors::default();
            check_uuid(&mut errors, "run_id", bad, "a run");
            assert_eq!(errors.len(), 1, "{bad:?}");
        }
    }

    #[test]
    fn collects_every_bad_field() {
        let mut errors = ValidationErrors::new();
        let national_id = errors.check("head.national_id", NationalId::parse("110105194912310021"));
        let amount = errors.check("amount", Money::parse_yuan("12.5"));
        let other_amount = errors.check("fee", Money::parse_yuan("1e3"));
        errors.push("members", "at least one member is required");

        assert!(national_id.is_none());
        assert_eq!(amount, Some(Money::from_fen(1250)));
        assert!(other_amount.is_none());
        assert_eq!(errors.len(), 3);
        let fields: Vec<&str> = errors
            .violations()
            .iter()
            .map(|violation| violation.field.as_str())
            .collect();
        assert_eq!(fields, vec!["head.national_id", "fee", "members"]);
        assert!(!errors.to_string().contains("110105194912310021"));

        let returned = errors.clone().into_result().unwrap_err();
        assert_eq!(returned, errors);
        assert_eq!(errors.into_violations().len(), 3);
    }

    #[test]
    fn text_with_invisible_or_reordering_characters_is_refused() {
        let rule = TextRule::required(50);
        for bad in [
            "张\u{200B}三",
            "张\u{200F}三",
            "\u{202E}三张",
            "张三\u{202A}",
            "\u{2066}张三\u{2069}",
            "\u{FEFF}张三",
            "张\u{0007}三",
            "张\u{0085}三",
            "张\n三",
            "张\t三",
        ] {
            let mut errors = ValidationErrors::new();
            check_text(&mut errors, "members[0].name", bad, rule);
            assert_eq!(errors.len(), 1, "{bad:?}");
            assert_eq!(errors.violations()[0].field, "members[0].name");
            assert!(!errors.violations()[0].description.contains('三'));
        }
        let mut errors = ValidationErrors::new();
        check_text(&mut errors, "name", "欧阳娜娜", rule);
        check_text(&mut errors, "name", "Zoë O'Brien-Smith", rule);
        check_text(
            &mut errors,
            "findings",
            "第一行\n第二行\r\n第三行",
            TextRule::required(100).multiline(),
        );
        assert!(errors.is_empty(), "{errors}");
        check_text(
            &mut errors,
            "findings",
            "行\u{202E}反",
            TextRule::required(100).multiline(),
        );
        check_text(
            &mut errors,
            "findings",
            "行\u{0000}",
            TextRule::required(100).multiline(),
        );
        check_text(
            &mut errors,
            "findings",
            "行\r覆盖",
            TextRule::required(100).multiline(),
        );
        assert_eq!(errors.len(), 3);
    }

    #[test]
    fn text_limits_count_characters_and_refuse_huge_values_at_once() {
        let mut errors = ValidationErrors::new();
        check_text(
            &mut errors,
            "name",
            &"王".repeat(50),
            TextRule::required(50),
        );
        assert!(errors.is_empty());
        check_text(
            &mut errors,
            "name",
            &"王".repeat(51),
            TextRule::required(50),
        );
        check_text(
            &mut errors,
            "address",
            &"地".repeat(3 * 1024 * 1024),
            TextRule::required(200),
        );
        check_text(&mut errors, "reason", "  ", TextRule::required(10));
        check_text(&mut errors, "note", "", TextRule::optional(10));
        let fields: Vec<&str> = errors
            .violations()
            .iter()
            .map(|violation| violation.field.as_str())
            .collect();
        assert_eq!(fields, ["name", "address", "reason"]);
    }

    #[test]
    fn keys_are_short_snake_case_and_never_echoed() {
        let mut errors = ValidationErrors::new();
        check_key(&mut errors, "declared_facts", "illness", 40);
        check_key(&mut errors, "declared_facts", "rent_2026", 40);
        assert!(errors.is_empty());
        for bad in [
            String::new(),
            "x".repeat(41),
            "k".repeat(2 * 1024 * 1024),
            "Illness".into(),
            "1st".into(),
            "病情".into(),
            "a b".into(),
            "a\u{200B}b".into(),
        ] {
            let mut errors = ValidationErrors::new();
            check_key(&mut errors, "declared_facts", &bad, 40);
            assert_eq!(errors.len(), 1, "{bad:?}");
            assert!(errors.violations()[0].description.len() < 100);
        }
    }

    #[test]
    fn empty_collection_is_ok() {
        let mut errors = ValidationErrors::new();
        assert_eq!(errors.check::<_, String>("name", Ok("张三")), Some("张三"));
        assert!(errors.is_empty());
        assert!(errors.into_result().is_ok());
    }
}
