//! Payment's refusals as `ApiError`s, in one place (`ApiError` then gives each its gRPC code
//! and stable reason: `docs/errors.md`).
//!
//! Re-keyed control figures that do not match the run's are `INVALID_ARGUMENT` on the fields
//! that differ (`control_count`, `control_total`): the request is the approver's reading of
//! the run's paper, and it is that reading which is wrong; nothing is written, and the
//! approver corrects the figures and sends again. A bank result file that does not match the
//! batch is `INVALID_ARGUMENT` too, each bad line its own violation (`lines[i]`): it is the
//! file that is wrong, and nothing of it is recorded. A returns file likewise; the closer's
//! re-keyed reconciliation figures likewise (`paid_count`, `paid_total`, `unpaid_count`,
//! `unpaid_total`).

use sunshine_domain::FieldViolation;
use sunshine_platform::ApiError;

use crate::aggregate::CommandError;
use crate::medical::{AssessRefusal, ClaimError};

impl From<CommandError> for ApiError {
    fn from(error: CommandError) -> Self {
        let description = error.to_string();
        match error {
            CommandError::AlreadyInRun { period, run_id } => ApiError::AlreadyExists {
                what: format!("a run of {period} with every entitlement due in it"),
                existing_id: Some(run_id),
            },
            CommandError::RunExists { run_id } => ApiError::AlreadyExists {
                what: "run".into(),
                existing_id: Some(run_id),
            },
            CommandError::AlreadyRepaid { period, run_id } => ApiError::AlreadyExists {
                what: format!("a re-pay run of {period} with every failed order in it"),
                existing_id: Some(run_id),
            },
            CommandError::NoRun { run_id } => run_not_found(&run_id),
            CommandError::NothingDue { .. }
            | CommandError::NothingFailed { .. }
            | CommandError::AlreadyApproved { .. }
            | CommandError::NotApproved { .. }
            | CommandError::NotExported { .. }
            | CommandError::ResultRecorded { .. }
            | CommandError::Budget(_)
            | CommandError::Calendar(_)
            | CommandError::OrdersDisagree { .. }
            | CommandError::WithoutAccount { .. }
            | CommandError::InstitutionUnpayable { .. } => {
                ApiError::FailedPrecondition(description)
            }
            CommandError::BadResultFile { violations } => ApiError::InvalidArgument(violations),
            CommandError::Unwritable(_) => ApiError::internal(std::io::Error::other(description)),
            CommandError::CreatorApproves => ApiError::PermissionDenied(description),
            CommandError::ControlMismatch { fields } => ApiError::InvalidArgument(
                fields
                    .into_iter()
                    .map(|field| FieldViolation {
                        field: field.to_owned(),
                        description: "does not match the run's control figure".into(),
                    })
                    .collect(),
            ),
            CommandError::Overflow => ApiError::internal(std::io::Error::other(description)),
            // settlement
            CommandError::NoResult { .. } | CommandError::ReconciliationClosed { .. } => {
                ApiError::FailedPrecondition(description)
            }
            CommandError::BadReturnsFile { violations } => ApiError::InvalidArgument(violations),
            CommandError::CloserTookPart { .. } => ApiError::PermissionDenied(description),
        }
    }
}

/// The one answer for a run the caller may not see (another district's), and for one that
/// does not exist.
pub fn run_not_found(run_id: &str) -> ApiError {
    ApiError::NotFound {
        what: format!("run {run_id}"),
    }
}

/// A household with no payment, or outside the caller's scope: the same answer (never the id:
/// the caller has it).
pub fn household_not_found() -> ApiError {
    ApiError::NotFound {
        what: "the household's payments".into(),
    }
}

// ---- Medical assistance claims ----

impl From<ClaimError> for ApiError {
    fn from(error: ClaimError) -> Self {
        let description = error.to_string();
        match error {
            ClaimError::ClaimExists { claim_id } => ApiError::AlreadyExists {
                what: "medical claim".into(),
                existing_id: Some(claim_id),
            },
            ClaimError::WrongProgram { .. } | ClaimError::NotApproved { .. } => {
                ApiError::FailedPrecondition(description)
            }
            ClaimError::Assess(AssessRefusal::NotPositive) => {
                ApiError::invalid_field("out_of_pocket", description)
            }
            ClaimError::Assess(AssessRefusal::OutOfRange) => {
                ApiError::internal(std::io::Error::other(description))
            }
        }
    }
}

/// The one answer for a claim or case the caller may not see, and for one that does not
/// exist.
pub fn not_found(what: &str, id: &str) -> ApiError {
    ApiError::NotFound {
        what: format!("{what} {id}"),
    }
}

// ---- Recovery (追缴) ----

impl From<crate::recovery::RecoveryError> for ApiError {
    fn from(error: crate::recovery::RecoveryError) -> Self {
        use crate::recovery::RecoveryError;
        let description = error.to_string();
        match error {
            RecoveryError::Closed { .. } => ApiError::FailedPrecondition(description),
            // The officer's figure is wrong, not the claim: the amount is the bad field.
            RecoveryError::MoreThanOutstanding { .. } => {
                ApiError::InvalidArgument(vec![FieldViolation {
                    field: "amount".into(),
                    description,
                }])
            }
            RecoveryError::RecorderWritesOff => ApiError::PermissionDenied(description),
        }
    }
}

/// The one answer for a claim the caller may not see (another district's), and for one that
/// does not exist.
pub fn claim_not_found(claim_id: &str) -> ApiError {
    ApiError::NotFound {
        what: format!("recovery claim {claim_id}"),
    }
}

// ---- Emergency cash (急难) ----

impl From<crate::cash::CashError> for ApiError {
    fn from(error: crate::cash::CashError) -> Self {
        use crate::cash::CashError;
        let description = error.to_string();
        match error {
            CashError::PaymentExists { payment_id } => ApiError::AlreadyExists {
                what: "cash payment".into(),
                existing_id: Some(payment_id),
            },
            CashError::NotEmergency { .. }
            | CashError::NoFund { .. }
            | CashError::NothingDue { .. } => ApiError::FailedPrecondition(description),
        }
    }
}
