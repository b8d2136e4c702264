//! Intake's streams other than the household's (whose events are the shared
//! `sunshine-household` crate's): their event enums and their names.

use sunshine_eventlog::StreamId;
use sunshine_platform::ApiError;
use sunshine_proto::v1 as pb;

sunshine_proto::stream_events! {
    /// The events of `intake-official-<registration id>`: the registry of officials' relatives.
    #[derive(Debug, Clone, PartialEq)]
    pub enum OfficialEvent in "intake-official" {
        RelativeRegistered(pb::OfficialRelativeRegistered),
    }
}

sunshine_proto::stream_events! {
    /// The events of `intake-access-<household id>`: every read of the household's personal
    /// data and every attempt on it from outside the caller's scope.
    #[derive(Debug, Clone, PartialEq)]
    pub enum AccessEvent in "intake-access" {
        PersonalDataAccessed(pb::PersonalDataAccessed),
        OutOfScopeAttempted(pb::OutOfScopeAccessAttempted),
    }
}

sunshine_proto::stream_events! {
    /// The events of `intake-quota-<officer>`: reads refused over the hourly quota.
    #[derive(Debug, Clone, PartialEq)]
    pub enum QuotaEvent in "intake-quota" {
        ReadRefused(pb::PersonalDataReadRefused),
    }
}

/// The stream of a registration of an official's relative.
pub fn official_stream(registration_id: &str) -> Result<StreamId, ApiError> {
    StreamId::new("intake", "official", registration_id).map_err(ApiError::internal)
}

pub fn access_stream(household_id: &str) -> Result<StreamId, ApiError> {
    StreamId::new("intake", "access", household_id).map_err(ApiError::internal)
}
