//! Intake's refusals as `ApiError`s, in one place (`ApiError` then gives each its gRPC code
//! and stable reason: `docs/errors.md`).

use sunshine_household::HouseholdError;
use sunshine_platform::ApiError;

use crate::aggregate::CommandError;

impl From<CommandError> for ApiError {
    fn from(error: CommandError) -> Self {
        let description = error.to_string();
        match error {
            CommandError::Household(error) => household_error(error),
            CommandError::RecusedAtTheWindow => ApiError::PermissionDenied(description),
            // The store answers both before the aggregate is asked: a registration's stream
            // must not exist (and a retry is answered first), a change needs the household.
            CommandError::AlreadyRegistered { household_id } => ApiError::AlreadyExists {
                what: "household".into(),
                existing_id: Some(household_id),
            },
            CommandError::NoHousehold { household_id } => household_not_found(&household_id),
            // household composition
            CommandError::AlreadyAMember { member_id } => ApiError::AlreadyExists {
                what: "member in this household".into(),
                existing_id: Some(member_id),
            },
            CommandError::HeadCannotLeave => ApiError::FailedPrecondition(description),
        }
    }
}

fn household_error(error: HouseholdError) -> ApiError {
    let description = error.to_string();
    match error {
        HouseholdError::UnknownMember { field, .. } | HouseholdError::MemberDead { field, .. } => {
            ApiError::invalid_field(field, description)
        }
        HouseholdError::MemberAlive { .. } => ApiError::FailedPrecondition(description),
        HouseholdError::ApplicationOpen {
            case_id,
            program_code,
        } => ApiError::AlreadyExists {
            what: format!("an open {program_code} application of this household"),
            existing_id: Some(case_id),
        },
        HouseholdError::AlreadyReceiving {
            case_id,
            program_code,
        } => ApiError::AlreadyExists {
            what: format!("{program_code} for this household (already received)"),
            existing_id: Some(case_id),
        },
    }
}

/// The one answer for a household the caller may not know exists, and for one that does not.
pub fn household_not_found(household_id: &str) -> ApiError {
    ApiError::NotFound {
        what: format!("household {household_id}"),
    }
}

/// The one answer of `FindHousehold` for nobody, and for somebody out of the caller's scope.
pub fn person_not_found() -> ApiError {
    ApiError::NotFound {
        what: "a household with this national id".into(),
    }
}

pub fn not_a_household_id() -> ApiError {
    ApiError::invalid_field("household_id", "not a household id")
}
