//! Generated protobuf messages and gRPC services of package `sunshine.v1`.
//!
//! # Layout
//! - `v1`: everything generated from `proto/sunshine/v1/*.proto` (messages, enums, tonic clients
//!   and servers).
//! - [`FILE_DESCRIPTOR_SET`]: the encoded descriptors, registered with gRPC reflection.
//!
//! The `.proto` files are the contract; this crate only compiles them.

/// Package `sunshine.v1`.
#[allow(clippy::all, missing_debug_implementations)]
pub mod v1 {
    tonic::include_proto!("sunshine.v1");
}

/// Encoded `google.protobuf.FileDescriptorSet` of every `sunshine.v1` file, for reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/sunshine_descriptor.bin"));
