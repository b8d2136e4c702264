//! The one place where errors become gRPC statuses.
//!
//! Handlers return [`ApiError`]; `From<ApiError> for tonic::Status` picks the code, attaches
//! machine-readable details (`google.rpc.BadRequest` field violations, `google.rpc.ErrorInfo`
//! with a stable reason) and, for internal errors, logs the full cause chain under a reference
//! id while the caller sees only that reference.

use std::error::Error as StdError;

use sunshine_domain::{FieldViolation, ValidationErrors};
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

/// The `domain` of every `google.rpc.ErrorInfo` this system returns.
pub const ERROR_DOMAIN: &str = "sunshine.gov.example";

/// What a request can fail with, as seen by a caller. Each variant maps to exactly one gRPC code
/// and one stable reason string (see [`ApiError::reason`]); `docs/errors.md` lists them.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// One or more fields are invalid; nothing was written.
    #[error("invalid argument: {}", describe_violations(.0))]
    InvalidArgument(Vec<FieldViolation>),
    /// No credentials, or credentials that cannot be trusted.
    #[error("unauthenticated: {0}")]
    Unauthenticated(String),
    /// A trusted caller that may not do this (role, org scope, four-eyes rule).
    #[error("permission denied: {0}")]
    PermissionDenied(String),
    #[error("{what} not found")]
    NotFound { what: String },
    /// The thing to create exists already; `existing_id` names it where that helps the caller.
    #[error("{what} already exists")]
    AlreadyExists {
        what: String,
        existing_id: Option<String>,
    },
    /// Someone else changed the thing first (optimistic concurrency): re-read and retry.
    #[error("conflict: {0}")]
    Conflict(String),
    /// The request is valid but the thing is not in a state that allows it.
    #[error("failed precondition: {0}")]
    FailedPrecondition(String),
    /// The caller has used up a quota (e.g. reads of personal data per hour); recorded.
    #[error("resource exhausted: {0}")]
    ResourceExhausted(String),
    /// A backend is not reachable right now; retrying later may succeed.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// A fault of ours. The message never reaches the caller.
    #[error("internal error")]
    Internal(#[source] Box<dyn StdError + Send + Sync + 'static>),
}

impl ApiError {
    /// Wraps any error as an internal one.
    pub fn internal(error: impl Into<Box<dyn StdError + Send + Sync + 'static>>) -> Self {
        ApiError::Internal(error.into())
    }

    /// A single invalid field.
    pub fn invalid_field(field: impl Into<String>, description: impl Into<String>) -> Self {
        ApiError::InvalidArgument(vec![FieldViolation {
            field: field.into(),
            description: description.into(),
        }])
    }

    /// The gRPC code of this error.
    pub fn code(&self) -> Code {
        match self {
            ApiError::InvalidArgument(_) => Code::InvalidArgument,
            ApiError::Unauthenticated(_) => Code::Unauthenticated,
            ApiError::PermissionDenied(_) => Code::PermissionDenied,
            ApiError::NotFound { .. } => Code::NotFound,
            ApiError::AlreadyExists { .. } => Code::AlreadyExists,
            ApiError::Conflict(_) => Code::Aborted,
            ApiError::FailedPrecondition(_) => Code::FailedPrecondition,
            ApiError::ResourceExhausted(_) => Code::ResourceExhausted,
            ApiError::Unavailable(_) => Code::Unavailable,
            ApiError::Internal(_) => Code::Internal,
        }
    }

    /// The stable, documented reason carried in `google.rpc.ErrorInfo.reason`.
    pub fn reason(&self) -> &'static str {
        match self {
            ApiError::InvalidArgument(_) => "INVALID_ARGUMENT",
            ApiError::Unauthenticated(_) => "UNAUTHENTICATED",
            ApiError::PermissionDenied(_) => "PERMISSION_DENIED",
            ApiError::NotFound { .. } => "NOT_FOUND",
            ApiError::AlreadyExists { .. } => "ALREADY_EXISTS",
            ApiError::Conflict(_) => "CONFLICT",
            ApiError::FailedPrecondition(_) => "FAILED_PRECONDITION",
            ApiError::ResourceExhausted(_) => "RESOURCE_EXHAUSTED",
            ApiError::Unavailable(_) => "UNAVAILABLE",
            ApiError::Internal(_) => "INTERNAL",
        }
    }
}

impl From<ValidationErrors> for ApiError {
    fn from(errors: ValidationErrors) -> Self {
        ApiError::InvalidArgument(errors.into_violations())
    }
}

fn describe_violations(violations: &[FieldViolation]) -> String {
    let mut text = String::new();
    for (index, violation) in violations.iter().enumerate() {
        if index > 0 {
            text.push_str("; ");
        }
        text.push_str(&violation.field);
        text.push_str(": ");
        text.push_str(&violation.description);
    }
    text
}

impl From<ApiError> for Status {
    fn from(error: ApiError) -> Self {
        let code = error.code();
        let reason = error.reason();
        let mut details = ErrorDetails::new();
        details.set_error_info(reason, ERROR_DOMAIN, std::collections::HashMap::new());
        let message = match &error {
            ApiError::InvalidArgument(violations) => {
                let pairs: Vec<tonic_types::FieldViolation> = violations
                    .iter()
                    .map(|violation| {
                        tonic_types::FieldViolation::new(
                            violation.field.clone(),
                            violation.description.clone(),
                        )
                    })
                    .collect();
                details.set_bad_request(pairs);
                error.to_string()
            }
            ApiError::AlreadyExists { what, existing_id } => {
                if let Some(existing_id) = existing_id {
                    details.set_resource_info(what.clone(), existing_id.clone(), "", "");
                    format!("{what} already exists: {existing_id}")
                } else {
                    error.to_string()
                }
            }
            ApiError::Internal(source) => {
                let reference = uuid::Uuid::now_v7();
                tracing::error!(
                    error.reference = %reference,
                    error.chain = %cause_chain(source.as_ref()),
                    "internal error"
                );
                format!("internal error; reference {reference}")
            }
            _ => error.to_string(),
        };
        Status::with_error_details(code, message, details)
    }
}

/// `outer: inner: innermost`, for logs.
pub fn cause_chain(error: &(dyn StdError + 'static)) -> String {
    let mut chain = error.to_string();
    let mut current = error.source();
    while let Some(cause) = current {
        chain.push_str(": ");
        chain.push_str(&cause.to_string());
        current = cause.source();
    }
    chain
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn invalid_argument_carries_every_field_violation() {
        let mut errors = ValidationErrors::default();
        errors.push("members[0].national_id", "wrong checksum");
        errors.push("members[1].name", "must not be empty");
        let status = Status::from(ApiError::from(errors));
        assert_eq!(status.code(), Code::InvalidArgument);
        let details = status.get_error_details();
        let bad_request = details.bad_request().unwrap();
        let fields: Vec<&str> = bad_request
            .field_violations
            .iter()
            .map(|violation| violation.field.as_str())
            .collect();
        assert_eq!(fields, ["members[0].national_id", "members[1].name"]);
        assert_eq!(details.error_info().unwrap().reason, "INVALID_ARGUMENT");
    }

    #[test]
    fn conflict_is_aborted() {
        let status = Status::from(ApiError::Conflict("household changed".into()));
        assert_eq!(status.code(), Code::Aborted);
    }

    #[test]
    fn internal_errors_do_not_leak_their_message() {
        let source = std::io::Error::other("password=hunter2 at db-7");
        let status = Status::from(ApiError::internal(source));
        assert_eq!(status.code(), Code::Internal);
        assert!(!status.message().contains("hunter2"));
        assert!(status.message().starts_with("internal error; reference "));
    }

    #[test]
    fn already_exists_names_the_existing_resource() {
        let status = Status::from(ApiError::AlreadyExists {
            what: "open application".into(),
            existing_id: Some("case-123".into()),
        });
        assert_eq!(status.code(), Code::AlreadyExists);
        assert!(status.message().contains("case-123"));
        let details = status.get_error_details();
        assert_eq!(details.resource_info().unwrap().resource_name, "case-123");
    }
}
