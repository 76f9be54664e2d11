//! Black-box tests: the real server on port 0, a fake upstream with per-key faults, and a real
//! SQLite file (PostgreSQL where the test says so).
#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::disallowed_methods,
    reason = "a test that cannot go on should fail loudly; tests run detached servers with nothing to drain"
)]

mod admin;
mod attempts;
mod bad_input;
mod cache;
mod cli;
mod connections;
mod console;
mod console_actions;
mod control;
mod crashes;
mod failover;
mod helpers;
mod import;
mod lifecycle;
mod limits;
mod limits_clients;
mod limits_keys;
mod memory;
mod models;
mod openapi;
mod request_id;
mod request_log;
mod rotation;
mod routing;
mod secrets;
mod settings;
mod stats;
mod store_faults;
mod streaming;
mod tokens;
