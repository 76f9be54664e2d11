//! The store of record on SQL: SQLite (the default: one file, zero setup) or PostgreSQL
//! (several gateways sharing one database), chosen at run time from the URL, never by a
//! compile-time feature.
//!
//! # Layout
//! - `rows`: everything both backends share: the statements that read the same on both, row →
//!   record mapping, health ↔ columns, and the merging of flush deltas.
//! - `ports`: one macro that implements the three store ports for both stores over those pieces.
//! - `sessions`, `requests`, `stats`, `accounts`: one port each, as statements both backends
//!   read alike and a macro that implements the port on both stores.
//! - `sqlite` / `postgres`: only what differs: connecting, and the bulk statements (multi-row
//!   `VALUES` on SQLite, `UNNEST` of bound arrays on PostgreSQL).
//!
//! A key design decision: no compile-time-checked `query!` macros (they would need a live
//! database, or offline data, per backend at build time) and no `migrate!` (it needs sqlx's
//! `macros` feature). Statements are bound by hand, the migrations are embedded with
//! `include_str!`, and both backends run the same contract tests (`tests/store`).
//!
//! Counters only ever grow in SQL (`col = col + $n`), never by a read-modify-write in Rust, so
//! several gateways can flush into one PostgreSQL without losing a request.

mod accounts;
mod deltas;
mod ports;
mod postgres;
mod requests;
mod rows;
mod sessions;
mod sqlite;
mod stats;

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use pool_core::ports::{Store, StoreError};
use sqlx::SqlSafeStr;
use sqlx::migrate::{Migration, MigrationType, Migrator};

pub use postgres::PgStore;
pub use sqlite::SqliteStore;

/// Opens the store a URL names and brings its schema up to date.
///
/// `sqlite://path`, `sqlite:path` and `sqlite::memory:` open SQLite; `postgres://…` and
/// `postgresql://…` open PostgreSQL.
pub async fn connect(url: &str) -> Result<Arc<dyn Store>, StoreError> {
    connect_with(url, &Tuning::default()).await
}

/// How long the database may take, set per connection.
#[derive(Clone, Copy, Debug)]
pub struct Tuning {
    /// The longest a statement may run (PostgreSQL's `statement_timeout`), and the longest a
    /// call waits for a connection from the pool (or, on SQLite, for another process's lock).
    pub statement_timeout: Duration,
}

impl Default for Tuning {
    fn default() -> Self {
        Self { statement_timeout: Duration::from_secs(10) }
    }
}

/// [`connect`], with `tuning`.
pub async fn connect_with(url: &str, tuning: &Tuning) -> Result<Arc<dyn Store>, StoreError> {
    match backend_name(url) {
        "sqlite" => Ok(Arc::new(SqliteStore::connect_with(url, tuning).await?)),
        "postgres" => Ok(Arc::new(PgStore::connect_with(url, tuning).await?)),
        _ => Err(StoreError::Backend(Box::new(UnsupportedUrl))),
    }
}

/// Why a database call failed, in a few fixed words safe to show in `/health` (a driver's
/// message may name a host, a user or a path).
pub(crate) fn fault_reason(error: &sqlx::Error) -> &'static str {
    match error {
        sqlx::Error::Database(db) => {
            let code = db.code();
            let code = code.as_deref().unwrap_or("");
            match code.parse::<i32>().map(|c| c & 0xff) {
                // SQLite's (extended) result codes: the primary code is the low byte.
                Ok(5 | 6) => "the database is locked by another process",
                Ok(8) => "the database is read-only",
                Ok(10) => "the database had an I/O error",
                Ok(13) => "the disk is full",
                Ok(14) => "the database file cannot be opened",
                Ok(11 | 26) => "the database file is damaged",
                _ => match code {
                    "57014" => "a statement timed out",
                    "57P01" | "57P02" | "57P03" => "the database server is restarting or shutting down",
                    "53100" => "the disk is full",
                    "25006" => "the database is read-only",
                    c if c.starts_with("08") => "the connection to the database failed",
                    c if c.starts_with("53") => "the database server is out of resources",
                    _ => "the database refused the statement",
                },
            }
        }
        sqlx::Error::Io(_) | sqlx::Error::Tls(_) | sqlx::Error::Protocol(_) => "the connection to the database failed",
        sqlx::Error::PoolTimedOut => "no database connection within the timeout",
        sqlx::Error::PoolClosed | sqlx::Error::WorkerCrashed => "the database connection pool is closed",
        _ => "the database call failed",
    }
}

/// The backend a URL names, for logs and health output: `sqlite`, `postgres` or `unknown`.
pub fn backend_name(url: &str) -> &'static str {
    let starts = |prefix: &str| url.get(..prefix.len()).is_some_and(|head| head.eq_ignore_ascii_case(prefix));
    if starts("sqlite:") {
        "sqlite"
    } else if starts("postgres://") || starts("postgresql://") {
        "postgres"
    } else {
        "unknown"
    }
}

/// A database URL of a scheme we do not speak. The URL itself is left out: it may hold a password.
#[derive(Debug, thiserror::Error)]
#[error(
    "unsupported database URL: expected sqlite://PATH, sqlite::memory:, \
     postgres://… or postgresql://…"
)]
pub struct UnsupportedUrl;

/// Converts a sqlx error: a unique violation is a [`StoreError::Conflict`], anything else a
/// backend failure.
pub(crate) fn db_error(error: sqlx::Error) -> StoreError {
    match &error {
        sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict,
        _ => StoreError::Backend(Box::new(error)),
    }
}

/// The embedded migrations of one backend. A later schema change adds `0002_….sql` to both
/// folders and one entry to each backend's list.
pub(crate) fn migrator(migrations: &[(i64, &'static str, &'static str)]) -> Migrator {
    let migrations = migrations
        .iter()
        .map(|&(version, description, sql)| {
            Migration::new(version, Cow::Borrowed(description), MigrationType::Simple, sql.into_sql_str(), false)
        })
        .collect();
    Migrator::with_migrations(migrations)
}

/// Runs the embedded migrations on a pool.
pub(crate) async fn migrate<'a, A>(migrator: &Migrator, pool: A) -> Result<(), StoreError>
where
    A: sqlx::Acquire<'a>,
    <A::Connection as std::ops::Deref>::Target: sqlx::migrate::Migrate,
{
    migrator.run(pool).await.map_err(|e| StoreError::Backend(Box::new(e)))
}
