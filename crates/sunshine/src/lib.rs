//! The `sunshine` command: one binary that can run any service, or all of them in one process
//! (the embedded default behind `make run`), migrate the database, rebuild projections, mint
//! development tokens, print the log's verifier key, and run the demo.
//!
//! # Layout
//! - [`services`]: the table of services and their `run` functions.
//! - [`cluster`]: runs every service in one process, each on its own port.
//! - [`dev_keys`]: a development signing key kept in a local file, never for production.
//! - [`demo`]: starts the system in-process and walks through what it can do so far.
//! - [`log_key`]: the checkpoint verifier key, from the configuration.
//! - [`log_process`]: `sunshine serve log`, the one process that sequences, signs and relays.
//! - [`migrate`]: the schema step: every component's migrations and the services' grants.
//! - [`rebuild`]: resets projections and replays the log into them, service by service.

pub mod cluster;
pub mod demo;
pub mod dev_keys;
pub mod log_key;
pub mod log_process;
pub mod migrate;
pub mod rebuild;
pub mod services;
