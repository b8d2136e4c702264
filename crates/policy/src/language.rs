//! The languages explanations are written in, and the number format that decisions and the
//! hardship coefficient both print.
//!
//! This module owns [`Language`] and `format_coefficient`. It imports nothing else from the
//! crate, so [`crate::hardship`] and [`crate::decision`] can both use it without importing
//! each other in a circle.

/// The language of a rendered explanation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Language {
    Zh,
    En,
}

/// A coefficient held in basis points: two decimals when exact (`1.30`), else four (`1.3456`).
pub(crate) fn format_coefficient(basis_points: i64) -> String {
    let whole = basis_points / 10_000;
    let fraction = basis_points % 10_000;
    if fraction % 100 == 0 {
        format!("{whole}.{:02}", fraction / 100)
    } else {
        format!("{whole}.{fraction:04}")
    }
}
