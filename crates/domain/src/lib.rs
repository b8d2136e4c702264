//! Validated domain types shared by every Sunshine Livelihood Assistance service.
//!
//! Each type here can only hold a valid value: parse at the edge, then pass the typed value
//! around. The crate is pure apart from two small loaders that read TOML data files.
//!
//! # Layout
//! - [`national_id`]: [`NationalId`] (GB 11643 resident id, always masked when printed) and [`Sex`].
//! - [`money`]: [`Money`], integer fen with checked arithmetic; no floats anywhere.
//! - [`month`]: [`Month`], a calendar month (`YYYY-MM`), the unit benefits start and end in.
//! - [`org_unit`]: [`OrgUnitCode`], [`OrgTier`], [`OrgUnit`] and the validated [`OrgTree`],
//!   with the fictitious example district in `data/example-district.toml`.
//! - [`calendar`]: [`WorkingDayCalendar`] for deadlines in working days, with the State Council
//!   holiday notices in `data/working-days.toml`.
//! - [`credit_code`]: [`CreditCode`], an organisation's unified social credit code (GB 32100),
//!   as a care institution's.
//! - [`validation`]: [`ValidationErrors`], for reporting every invalid field at once, and the
//!   checks of free text and keys every service applies ([`check_text`], [`check_key`]).

pub mod calendar;
pub mod credit_code;
pub mod money;
pub mod month;
pub mod national_id;
pub mod org_unit;
pub mod validation;

pub use calendar::{CalendarError, DueDate, WorkingDayCalendar};
pub use credit_code::{CreditCode, CreditCodeError};
pub use money::{Money, MoneyError};
pub use month::{Month, MonthError};
pub use national_id::{NationalId, NationalIdError, Sex};
pub use org_unit::{OrgTier, OrgTree, OrgTreeError, OrgUnit, OrgUnitCode, OrgUnitCodeError};
pub use validation::{
    FieldViolation, TextRule, ValidationErrors, check_key, check_text, is_forbidden_in_text,
    is_invisible_format,
};

#[cfg(test)]
mod tests {
    /// Amounts must never pass through floating point; this scans the crate's own sources.
    #[test]
    fn no_floating_point_types_in_sources() {
        let sources = [
            include_str!("calendar.rs"),
            include_str!("credit_code.rs"),
            include_str!("lib.rs"),
            include_str!("money.rs"),
            include_str!("month.rs"),
            include_str!("national_id.rs"),
            include_str!("org_unit.rs"),
            include_str!("validation.rs"),
        ];
        let forbidden_tokens = [["f", "32"].concat(), ["f", "64"].concat()];
        for source in sources {
            for token in &forbidden_tokens {
                assert!(!source.contains(token.as_str()), "found {token}");
            }
        }
    }
}
