//! The runtime every Sunshine Assistance service is built on.
//!
//! # Layout
//! - [`config`]: typed, layered configuration (defaults → file → `SUNSHINE__…` env → validate).
//! - [`telemetry`]: logs, OpenTelemetry export, W3C trace context in gRPC metadata.
//! - [`auth`]: bearer tokens (Ed25519 JWT), roles, org scope, the interceptor.
//! - [`error`]: [`ApiError`] and the one mapping to `tonic::Status`.
//! - [`backends`]: database (PostgreSQL / SQLite) and bus (NATS JetStream / in-process).
//! - [`server`]: the gRPC bootstrap: health, reflection, limits, readiness, graceful shutdown.
//! - [`shutdown`]: the shutdown signal.
//! - [`clock`]: today's date, injectable.
//!
//! A service is a library exposing `run(config, listener, shutdown)` that calls
//! [`server::serve`], and a `main.rs` that calls [`server::main_entry`].

pub mod auth;
pub mod backends;
pub mod clock;
pub mod config;
pub mod error;
pub mod server;
mod service_info;
pub mod shutdown;
pub mod telemetry;

pub use auth::{Identity, Role};
pub use config::{Config, ConfigSource};
pub use error::ApiError;
pub use server::{
    OnConnected, RunError, ServiceContext, ServiceRoutes, StartupError, main_entry,
    main_entry_for_services, serve, serve_with,
};
pub use shutdown::{Shutdown, ShutdownTrigger};
