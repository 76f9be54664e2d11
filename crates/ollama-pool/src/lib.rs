//! The `ollama-pool` binary's library half: configuration, wiring and the server's life cycle.
//!
//! This crate holds no business logic (that is `pool-core`) and no routes (`pool-http`): it reads
//! the configuration, builds the one [`app::App`] everything shares, and runs it until shutdown.
//! It is a library too so that the black-box tests and the benchmark start the very same server
//! the binary does.

pub mod admin_token;
pub mod app;
pub mod cli;
pub mod config;
pub mod keys_cli;
pub mod server;
pub mod telemetry;
