//! The SQLite store: one file, WAL journal, the default for a single gateway.
//!
//! Bulk inserts are multi-row `INSERT … VALUES (…), (…) … ON CONFLICT DO NOTHING RETURNING id`
//! in chunks that stay under SQLite's limit of 32,766 bound parameters; flushes run one prepared
//! `UPDATE` per delta inside one transaction, which SQLite executes in microseconds. Writes
//! begin `IMMEDIATE`, so two writers queue on the busy timeout instead of failing to upgrade a
//! read lock. `secure_delete` is on, and replacing secrets checkpoints at once, so the former
//! form of a key (plaintext before encryption was turned on) does not linger in the file.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use pool_core::pool::KeyDelta;
use pool_core::ports::StoreError;
use pool_core::token::TokenDelta;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{QueryBuilder, Sqlite, SqliteConnection, SqlitePool, Transaction};

use super::deltas::{HealthColumns, ModelColumns, bindable};
use super::requests::{LOG_WIDTH, LogRow, log_columns};
use super::rows::KeyRow;
use super::{Tuning, db_error, migrate, migrator};

const MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "init", include_str!("../../migrations/sqlite/0001_init.sql")),
    (2, "key_models", include_str!("../../migrations/sqlite/0002_key_models.sql")),
    (3, "stats", include_str!("../../migrations/sqlite/0003_stats.sql")),
    (4, "limits", include_str!("../../migrations/sqlite/0004_limits.sql")),
    (5, "hold_cause", include_str!("../../migrations/sqlite/0005_hold_cause.sql")),
    (6, "request_log", include_str!("../../migrations/sqlite/0006_request_log.sql")),
    (7, "console_sessions", include_str!("../../migrations/sqlite/0007_console_sessions.sql")),
    (8, "accounts", include_str!("../../migrations/sqlite/0008_accounts.sql")),
];

/// Bound parameters per key row of [`INSERT_KEYS`].
const KEY_COLUMNS: usize = 9;

/// The most values SQLite binds to one statement (`SQLITE_MAX_VARIABLE_NUMBER`).
const MAX_BINDS: usize = 32_766;

/// The request log's last id, kept by `AUTOINCREMENT` (never lowered by pruning).
const LOG_SEQUENCE: &str = "SELECT COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'request_log'), 0)";

/// Keys per insert statement.
const INSERT_CHUNK: usize = MAX_BINDS / KEY_COLUMNS;

const INSERT_KEYS: &str = "INSERT INTO upstream_keys (id, provider, secret, secret_hash, label, created_at, expires_at, rpm, max_concurrent) ";

const DELETE_KEYS: &str = "DELETE FROM upstream_keys WHERE id IN (SELECT value FROM json_each($1))";

const DELETE_TOKENS: &str = "DELETE FROM client_tokens WHERE id IN (SELECT value FROM json_each($1))";

/// SQLite's two-argument `MAX` is NULL when either side is: the `COALESCE` keeps whichever
/// instant is known. A NULL `$8` (no health in the delta) leaves the status columns alone.
const FLUSH_KEY: &str = "UPDATE upstream_keys SET \
     total_requests = total_requests + $2, \
     success_count = success_count + $3, \
     failure_count = failure_count + $4, \
     last_used_at = COALESCE(MAX(last_used_at, $5), last_used_at, $5), \
     last_success_at = COALESCE(MAX(last_success_at, $6), last_success_at, $6), \
     last_failure_at = COALESCE(MAX(last_failure_at, $7), last_failure_at, $7), \
     status = COALESCE($8, status), \
     status_reason = CASE WHEN $8 IS NULL THEN status_reason ELSE $9 END, \
     status_since = CASE WHEN $8 IS NULL THEN status_since ELSE $10 END, \
     status_until = CASE WHEN $8 IS NULL THEN status_until ELSE $11 END, \
     strikes = COALESCE($12, strikes), \
     status_cause = COALESCE($13, status_cause), \
     models = CASE WHEN $14 = 1 THEN $15 ELSE models END, \
     models_at = CASE WHEN $14 = 1 THEN $16 ELSE models_at END \
     WHERE id = $1";

const REPLACE_SECRET: &str = "UPDATE upstream_keys SET secret = $2 WHERE id = $1";

/// Copies the WAL into the main file and empties it (a reader still on an older snapshot leaves
/// it to a later checkpoint, without an error).
const CHECKPOINT: &str = "PRAGMA wal_checkpoint(TRUNCATE)";

const FLUSH_TOKEN: &str = "UPDATE client_tokens SET \
     request_count = request_count + $2, \
     last_used_at = COALESCE(MAX(last_used_at, $3), last_used_at, $3) \
     WHERE id = $1";

/// Implements the store ports on one SQLite database.
#[derive(Clone, Debug)]
pub struct SqliteStore {
    pub(super) pool: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating the file and its directories if missing) and migrates a SQLite database:
    /// `sqlite://path`, `sqlite:path` or `sqlite::memory:`.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        Self::connect_with(url, &Tuning::default()).await
    }

    /// [`SqliteStore::connect`], waiting at most `tuning.statement_timeout` for a lock another
    /// connection holds.
    pub async fn connect_with(url: &str, tuning: &Tuning) -> Result<Self, StoreError> {
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        // Half the deadline: a lock held elsewhere fails as "locked", before the deadline cuts in.
        let options = connect_options(url)?.busy_timeout((tuning.statement_timeout / 2).min(Duration::from_secs(5)));
        if !in_memory {
            create_parent_dir(options.get_filename())?;
        }
        let pool = pool_options(in_memory)
            .acquire_timeout(tuning.statement_timeout)
            .connect_with(options)
            .await
            .map_err(db_error)?;
        migrate(&migrator(MIGRATIONS), &pool).await?;
        Ok(Self { pool })
    }

    pub(super) async fn begin_write(&self) -> Result<Transaction<'static, Sqlite>, StoreError> {
        self.pool.begin_with("BEGIN IMMEDIATE").await.map_err(db_error)
    }

    /// A batch of request log rows: the ids follow the table's sequence (read inside the write
    /// transaction, so no other writer can draw them), then multi-row inserts of the rows and
    /// of the key index.
    pub(super) async fn append_log(&self, rows: &[LogRow]) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        let last: i64 = sqlx::query_scalar(LOG_SEQUENCE).fetch_one(&mut *tx).await.map_err(db_error)?;
        let ids: Vec<i64> = (1..).map(|n| last + n).take(rows.len()).collect();
        let numbered: Vec<_> = ids.iter().zip(rows).collect();
        for chunk in numbered.chunks(MAX_BINDS / LOG_WIDTH) {
            let mut insert = QueryBuilder::<Sqlite>::new(concat!("INSERT INTO request_log (", log_columns!(), ") "));
            insert.push_values(chunk, |mut b, (id, r)| {
                b.push_bind(**id).push_bind(r.at).push_bind(&r.request_id).push_bind(&r.provider);
                b.push_bind(&r.model).push_bind(&r.token_id).push_bind(&r.token_name).push_bind(r.status);
                b.push_bind(r.status_class).push_bind(r.outcome).push_bind(r.latency_ms);
                b.push_bind(r.prompt_tokens).push_bind(r.completion_tokens).push_bind(r.stream);
                b.push_bind(&r.attempts);
            });
            insert.build().execute(&mut *tx).await.map_err(db_error)?;
        }
        let keys: Vec<(&str, i64)> =
            numbered.iter().flat_map(|(id, r)| r.keys.iter().map(|k| (k.as_str(), **id))).collect();
        for chunk in keys.chunks(MAX_BINDS / 2) {
            let mut insert = QueryBuilder::<Sqlite>::new("INSERT INTO request_log_keys (key_id, log_id) ");
            insert.push_values(chunk, |mut b, (key, id)| {
                b.push_bind(*key).push_bind(*id);
            });
            insert.push(" ON CONFLICT DO NOTHING");
            insert.build().execute(&mut *tx).await.map_err(db_error)?;
        }
        tx.commit().await.map_err(db_error)
    }

    pub(super) async fn insert_batch(&self, keys: &[KeyRow<'_>]) -> Result<Vec<String>, StoreError> {
        let mut tx = self.begin_write().await?;
        let mut inserted = Vec::with_capacity(keys.len());
        for chunk in keys.chunks(INSERT_CHUNK) {
            inserted.extend(insert_chunk(&mut tx, chunk).await?);
        }
        tx.commit().await.map_err(db_error)?;
        Ok(inserted)
    }

    pub(super) async fn delete_batch(&self, ids: &[String]) -> Result<u64, StoreError> {
        self.delete_ids(DELETE_KEYS, ids).await
    }

    pub(super) async fn delete_token_batch(&self, ids: &[String]) -> Result<u64, StoreError> {
        self.delete_ids(DELETE_TOKENS, ids).await
    }

    /// One `DELETE … IN (json_each)`: a JSON array is one bound parameter, whatever its length.
    async fn delete_ids(&self, sql: &'static str, ids: &[String]) -> Result<u64, StoreError> {
        let ids = serde_json::to_string(ids).map_err(|e| StoreError::Backend(Box::new(e)))?;
        let done = sqlx::query(sql).bind(ids).execute(&self.pool).await.map_err(db_error)?;
        Ok(done.rows_affected())
    }

    pub(super) async fn flush_key_batch(&self, deltas: &[KeyDelta]) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        for delta in deltas {
            flush_key(&mut tx, delta).await?;
        }
        tx.commit().await.map_err(db_error)
    }

    /// Checkpoints at once: until the next checkpoint the main file still holds the pages with
    /// the secrets' previous form (the plaintext, when encryption is turned on).
    pub(super) async fn replace_secret_batch(&self, secrets: &[(String, &str)]) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        for (id, secret) in secrets {
            sqlx::query(REPLACE_SECRET).bind(id).bind(*secret).execute(&mut *tx).await.map_err(db_error)?;
        }
        tx.commit().await.map_err(db_error)?;
        sqlx::query(CHECKPOINT).execute(&self.pool).await.map_err(db_error)?;
        Ok(())
    }

    pub(super) async fn flush_token_batch(&self, deltas: &[TokenDelta]) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        for delta in deltas {
            let query = sqlx::query(FLUSH_TOKEN).bind(delta.id.to_string()).bind(bindable(delta.requests));
            query.bind(delta.last_used).execute(&mut *tx).await.map_err(db_error)?;
        }
        tx.commit().await.map_err(db_error)
    }
}

fn connect_options(url: &str) -> Result<SqliteConnectOptions, StoreError> {
    let options = SqliteConnectOptions::from_str(url).map_err(db_error)?;
    Ok(options
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .busy_timeout(Duration::from_secs(5))
        .foreign_keys(true)
        // Deleted and rewritten rows are zeroed, not left in free space: they may be keys.
        .pragma("secure_delete", "on"))
}

/// An in-memory database lives only as long as a connection to it: keep exactly one, forever.
/// A file's connections are replaced every 10 s: one that an I/O error left unusable (seen after
/// the file was made read-only and writable again) is gone within that, with no restart, and
/// opening a SQLite file costs microseconds.
fn pool_options(in_memory: bool) -> SqlitePoolOptions {
    let options = SqlitePoolOptions::new();
    if in_memory {
        options.max_connections(1).min_connections(1).idle_timeout(None).max_lifetime(None)
    } else {
        let recycle = std::time::Duration::from_secs(10);
        options.max_connections(4).max_lifetime(recycle).idle_timeout(recycle)
    }
}

/// The directory of the database file could not be created.
#[derive(Debug, thiserror::Error)]
#[error("cannot create the database directory {}", path.display())]
struct CreateDirError {
    path: PathBuf,
    #[source]
    source: std::io::Error,
}

/// Startup-only, so the blocking call is harmless.
fn create_parent_dir(file: &Path) -> Result<(), StoreError> {
    let Some(dir) = file.parent().filter(|dir| !dir.as_os_str().is_empty()) else {
        return Ok(());
    };
    std::fs::create_dir_all(dir)
        .map_err(|source| StoreError::Backend(Box::new(CreateDirError { path: dir.to_owned(), source })))
}

async fn insert_chunk(tx: &mut SqliteConnection, chunk: &[KeyRow<'_>]) -> Result<Vec<String>, StoreError> {
    let mut builder = QueryBuilder::<Sqlite>::new(INSERT_KEYS);
    builder.push_values(chunk, |mut row, key| {
        row.push_bind(key.id.as_str()).push_bind(key.provider).push_bind(key.secret);
        row.push_bind(key.secret_hash.as_str()).push_bind(key.label);
        row.push_bind(key.created_at).push_bind(key.expires_at);
        row.push_bind(key.rpm).push_bind(key.max_concurrent);
    });
    builder.push(" ON CONFLICT DO NOTHING RETURNING id");
    builder.build_query_scalar().fetch_all(&mut *tx).await.map_err(db_error)
}

async fn flush_key(tx: &mut SqliteConnection, delta: &KeyDelta) -> Result<(), StoreError> {
    let counters = &delta.counters;
    let health = HealthColumns::of(delta.health.as_ref());
    let models = ModelColumns::of(delta.models.as_ref());
    sqlx::query(FLUSH_KEY)
        .bind(delta.id.to_string())
        .bind(bindable(counters.requests))
        .bind(bindable(counters.successes))
        .bind(bindable(counters.failures))
        .bind(counters.last_used)
        .bind(counters.last_success)
        .bind(counters.last_failure)
        .bind(health.status)
        .bind(health.reason)
        .bind(health.since)
        .bind(health.until)
        .bind(health.strikes)
        .bind(health.cause)
        .bind(models.changed)
        .bind(models.json)
        .bind(models.at)
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
    Ok(())
}
