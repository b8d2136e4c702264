//! Generated protobuf messages and gRPC services of package `sunshine.v1`.
//!
//! # Layout
//! - `v1`: everything generated from `proto/sunshine/v1/*.proto` (messages, enums, tonic clients
//!   and servers).
//! - [`events`]: the registry of event types (a message's stored type is its full name, from
//!   `prost::Name`), and [`stream_events!`], a stream kind's events as one typed enum.
//! - [`dates`]: protobuf dates to and from `time::Date`.
//! - [`FILE_DESCRIPTOR_SET`]: the encoded descriptors, registered with gRPC reflection.
//!
//! The `.proto` files are the contract; this crate only compiles them.

/// Package `sunshine.v1`.
#[allow(clippy::all, missing_debug_implementations)]
pub mod v1 {
    tonic::include_proto!("sunshine.v1");
}

pub mod events;

/// `sunshine.v1.Date` ↔ `time::Date`, the one place the two meet.
pub mod dates {
    use crate::v1;

    /// A calendar date, or `None` if absent or not a real date.
    pub fn to_date(value: Option<&v1::Date>) -> Option<time::Date> {
        let value = value?;
        let month = time::Month::try_from(u8::try_from(value.month).ok()?).ok()?;
        time::Date::from_calendar_date(value.year, month, u8::try_from(value.day).ok()?).ok()
    }

    pub fn from_date(date: time::Date) -> v1::Date {
        v1::Date {
            year: date.year(),
            month: i32::from(u8::from(date.month())),
            day: i32::from(date.day()),
        }
    }
}

/// Encoded `google.protobuf.FileDescriptorSet` of every `sunshine.v1` file, for reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/sunshine_descriptor.bin"));
