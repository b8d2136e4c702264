//! Collecting every invalid field of a request, so callers can report them all at once.
//!
//! This module owns [`FieldViolation`] and [`ValidationErrors`]. Services validate each field
//! with the parsers in this crate, record failures here instead of returning on the first one,
//! and map the whole list to one error with field-level details at the edge.

use std::fmt;

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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::{Money, NationalId};

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
    fn empty_collection_is_ok() {
        let mut errors = ValidationErrors::new();
        assert_eq!(errors.check::<_, String>("name", Ok("张三")), Some("张三"));
        assert!(errors.is_empty());
        assert!(errors.into_result().is_ok());
    }
}
