//! The `sunshine` command: one binary that can run any service, or all of them in one process
//! (the embedded default behind `make run`), mint development tokens, and run the demo.
//!
//! # Layout
//! - [`services`]: the table of services and their `run` functions.
//! - [`cluster`]: runs every service in one process, each on its own port.
//! - [`dev_keys`]: a development signing key kept in a local file, never for production.
//! - [`demo`]: starts the system in-process and walks through what it can do so far.
//! - [`log_key`]: the checkpoint verifier key, from the configuration.

pub mod cluster;
pub mod demo;
pub mod dev_keys;
pub mod log_key;
pub mod services;
