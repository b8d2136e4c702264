//! Department integration's refusals as `ApiError`s, in one place (`docs/errors.md`).
//!
//! A department's token naming a department the registry does not list is PERMISSION_DENIED:
//! the token is genuine but names no unit this district connects. A query outside the
//! department's scope is PERMISSION_DENIED too (issue 13 says so, and the refusal is recorded
//! as an access event): what the department may read is the registry's, public to it, so
//! refusing it reveals nothing about the person. A CSV with a bad row, all-or-nothing, is
//! INVALID_ARGUMENT naming every bad row. The economic-status check's refusals
//! (`check::CheckError`): bad fields INVALID_ARGUMENT, a check, case or household the caller
//! may not reach NOT_FOUND exactly as one that does not exist, a state that does not allow it
//! (no consent in force, a case not waiting, a report issued) FAILED_PRECONDITION.

use sunshine_domain::FieldViolation;
use sunshine_platform::ApiError;

/// Why a department's call is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("department {0} is not in this district's registry")]
    UnknownDepartment(String),
    #[error("the token carries no department code")]
    NoDepartment,
    #[error("programs outside department {department}'s scope: {}", .programs.join(", "))]
    OutOfScope {
        department: String,
        programs: Vec<String>,
    },
    #[error("integration.person_index_key is not configured")]
    NoPersonIndexKey,
    #[error("another push stored one of these records meanwhile; send the batch again")]
    StoredMeanwhile,
    #[error("bad rows")]
    BadRows(Vec<FieldViolation>),
}

impl From<Refusal> for ApiError {
    fn from(refusal: Refusal) -> Self {
        let description = refusal.to_string();
        match refusal {
            Refusal::UnknownDepartment(_) | Refusal::NoDepartment | Refusal::OutOfScope { .. } => {
                ApiError::PermissionDenied(description)
            }
            Refusal::NoPersonIndexKey => ApiError::FailedPrecondition(description),
            Refusal::StoredMeanwhile => ApiError::Conflict(description),
            Refusal::BadRows(violations) => ApiError::InvalidArgument(violations),
        }
    }
}

// ---- The economic-status check (slice 2) ----

/// The check's refusals: bad fields INVALID_ARGUMENT, a check or request that is not the
/// caller's (or does not exist) NOT_FOUND with one message, a state that does not allow it
/// FAILED_PRECONDITION.
impl From<crate::check::CheckError> for ApiError {
    fn from(error: crate::check::CheckError) -> Self {
        match error {
            crate::check::CheckError::Invalid(violations) => ApiError::InvalidArgument(violations),
            crate::check::CheckError::NotFound => not_found("check"),
            crate::check::CheckError::NotNow(reason) => ApiError::FailedPrecondition(reason),
        }
    }
}

/// The one answer for a check, case or household that does not exist or is outside the
/// caller's scope.
pub fn not_found(what: &str) -> ApiError {
    ApiError::NotFound { what: what.into() }
}
