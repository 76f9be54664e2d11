//! Contract tests of the SQL stores: every story is written once, against `Arc<dyn Store>`, and
//! runs on SQLite and on PostgreSQL (`contract!` makes one test per backend).
//!
//! PostgreSQL comes from `POOL_TEST_POSTGRES_URL`, or from
//! `postgres://postgres@127.0.0.1:5432/test` when `CI=true`. With neither, the PostgreSQL
//! variants print a line and pass; with a URL, an unreachable server fails them loudly. Each test
//! gets a fresh SQLite file or PostgreSQL schema.
#![expect(clippy::expect_used, reason = "a test fails loudly on an unexpected error")]

mod accounts;
mod cipher;
mod flush;
mod keys;
mod requests;
mod sessions;
mod settings;
mod sqlite;
mod stats;
mod support;
mod tokens;
