//! The PostgreSQL store: for several gateways sharing one database.
//!
//! Every batch travels as a handful of bound arrays expanded by `UNNEST`, so inserting 10,000 keys
//! or flushing a few thousand deltas is one statement, not one round trip per row. A flush first
//! locks its rows in id order (`SELECT … ORDER BY id FOR UPDATE`): two gateways flushing
//! overlapping keys then queue instead of deadlocking, whatever join order the planner picks.

use std::str::FromStr;

use pool_core::pool::KeyDelta;
use pool_core::ports::StoreError;
use pool_core::token::TokenDelta;
use sqlx::postgres::{PgArguments, PgConnectOptions, PgPoolOptions};
use sqlx::query::{Query, QueryScalar};
use sqlx::{AssertSqlSafe, Connection, PgConnection, PgPool, Postgres};

use super::deltas::{HealthColumns, ModelColumns, bindable};
use super::requests::{LogRow, log_columns};
use super::rows::KeyRow;
use super::{Tuning, db_error, migrate, migrator};

const MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "init", include_str!("../../migrations/postgres/0001_init.sql")),
    (2, "key_models", include_str!("../../migrations/postgres/0002_key_models.sql")),
    (3, "stats", include_str!("../../migrations/postgres/0003_stats.sql")),
    (4, "limits", include_str!("../../migrations/postgres/0004_limits.sql")),
    (5, "hold_cause", include_str!("../../migrations/postgres/0005_hold_cause.sql")),
    (6, "request_log", include_str!("../../migrations/postgres/0006_request_log.sql")),
    (7, "console_sessions", include_str!("../../migrations/postgres/0007_console_sessions.sql")),
    (8, "accounts", include_str!("../../migrations/postgres/0008_accounts.sql")),
];

/// Keys per insert (or secret-replacing) statement: big enough to amortise the round trip, small
/// enough to keep each statement's arrays a few megabytes.
const INSERT_CHUNK: usize = 10_000;

const INSERT_KEYS: &str = "INSERT INTO upstream_keys \
     (id, provider, secret, secret_hash, label, created_at, expires_at, rpm, max_concurrent) \
     SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], \
                          $6::bigint[], $7::bigint[], $8::bigint[], $9::bigint[]) \
     ON CONFLICT DO NOTHING RETURNING id";

const DELETE_KEYS: &str = "DELETE FROM upstream_keys WHERE id = ANY($1::text[])";

const DELETE_TOKENS: &str = "DELETE FROM client_tokens WHERE id = ANY($1::text[])";

const LOCK_KEYS: &str = "SELECT id FROM upstream_keys WHERE id = ANY($1::text[]) ORDER BY id FOR UPDATE";

const REPLACE_SECRETS: &str = "UPDATE upstream_keys AS k SET secret = d.secret \
     FROM UNNEST($1::text[], $2::text[]) AS d(id, secret) WHERE k.id = d.id";

const LOCK_TOKENS: &str = "SELECT id FROM client_tokens WHERE id = ANY($1::text[]) ORDER BY id FOR UPDATE";

/// `GREATEST` ignores NULLs, so an instant the delta does not carry leaves the column as it was.
/// A NULL `d.status` (no health in the delta) leaves the status columns alone.
const FLUSH_KEYS: &str = "UPDATE upstream_keys AS k SET \
     total_requests = k.total_requests + d.requests, \
     success_count = k.success_count + d.successes, \
     failure_count = k.failure_count + d.failures, \
     last_used_at = GREATEST(k.last_used_at, d.last_used), \
     last_success_at = GREATEST(k.last_success_at, d.last_success), \
     last_failure_at = GREATEST(k.last_failure_at, d.last_failure), \
     status = COALESCE(d.status, k.status), \
     status_reason = CASE WHEN d.status IS NULL THEN k.status_reason ELSE d.reason END, \
     status_since = CASE WHEN d.status IS NULL THEN k.status_since ELSE d.since END, \
     status_until = CASE WHEN d.status IS NULL THEN k.status_until ELSE d.until END, \
     strikes = COALESCE(d.strikes, k.strikes), \
     status_cause = COALESCE(d.cause, k.status_cause), \
     models = CASE WHEN d.models_changed = 1 THEN d.models ELSE k.models END, \
     models_at = CASE WHEN d.models_changed = 1 THEN d.models_at ELSE k.models_at END \
     FROM UNNEST($1::text[], $2::bigint[], $3::bigint[], $4::bigint[], $5::bigint[], $6::bigint[], \
          $7::bigint[], $8::text[], $9::text[], $10::bigint[], $11::bigint[], $12::integer[], \
          $13::integer[], $14::integer[], $15::text[], $16::bigint[]) \
     AS d(id, requests, successes, failures, last_used, last_success, last_failure, \
          status, reason, since, until, strikes, cause, models_changed, models, models_at) \
     WHERE k.id = d.id";

/// Ids for a batch of request log rows, drawn from the table's own sequence (so gateways sharing
/// the database never draw the same one).
const RESERVE_LOG_IDS: &str = "SELECT nextval(pg_get_serial_sequence('request_log', 'id')) FROM generate_series(1, $1)";

const INSERT_LOG: &str = concat!(
    "INSERT INTO request_log (",
    log_columns!(),
    ") SELECT * FROM UNNEST($1::bigint[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[], \
          $7::text[], $8::bigint[], $9::bigint[], $10::text[], $11::bigint[], $12::bigint[], $13::bigint[], \
          $14::bigint[], $15::text[])",
);

const INSERT_LOG_KEYS: &str = "INSERT INTO request_log_keys (key_id, log_id) \
     SELECT * FROM UNNEST($1::text[], $2::bigint[]) ON CONFLICT DO NOTHING";

const FLUSH_TOKENS: &str = "UPDATE client_tokens AS t SET \
     request_count = t.request_count + d.requests, \
     last_used_at = GREATEST(t.last_used_at, d.last_used) \
     FROM UNNEST($1::text[], $2::bigint[], $3::bigint[]) AS d(id, requests, last_used) \
     WHERE t.id = d.id";

/// Implements the store ports on one PostgreSQL schema.
#[derive(Clone, Debug)]
pub struct PgStore {
    pub(super) pool: PgPool,
}

impl PgStore {
    /// Connects to `postgres://…` (or `postgresql://…`) and migrates the schema the connection's
    /// `search_path` names first (usually `public`).
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        Self::connect_with(url, &Tuning::default()).await
    }

    /// [`PgStore::connect`] with `tuning`: every statement ends after `statement_timeout` on
    /// the server, and a call waits no longer than that for a connection.
    pub async fn connect_with(url: &str, tuning: &Tuning) -> Result<Self, StoreError> {
        Self::open(PgConnectOptions::from_str(url).map_err(db_error)?, tuning).await
    }

    /// Like [`PgStore::connect`], but every connection works in `schema` (created if missing):
    /// how tests get a fresh, isolated database each.
    pub async fn connect_in_schema(url: &str, schema: &str) -> Result<Self, StoreError> {
        let options = PgConnectOptions::from_str(url).map_err(db_error)?;
        let schema = quote_ident(schema);
        create_schema(&options, &schema).await?;
        Self::open(options.options([("search_path", schema)]), &Tuning::default()).await
    }

    async fn open(options: PgConnectOptions, tuning: &Tuning) -> Result<Self, StoreError> {
        let timeout = tuning.statement_timeout;
        let options = options.options([("statement_timeout", format!("{}ms", timeout.as_millis().max(1)))]);
        // A bounded acquire timeout: while the database is away, a flush gives up in seconds and
        // keeps its rows for the next one, and admin calls answer 503 instead of hanging.
        let pool = PgPoolOptions::new()
            .max_connections(8)
            // Two open from the start: an admin read beside a background flush does not wait
            // for a connection to be set up.
            .min_connections(2)
            .acquire_timeout(timeout.min(std::time::Duration::from_secs(5)))
            .connect_with(options)
            .await
            .map_err(db_error)?;
        migrate(&migrator(MIGRATIONS), &pool).await?;
        Ok(Self { pool })
    }

    pub(super) async fn begin_write(&self) -> Result<sqlx::Transaction<'static, Postgres>, StoreError> {
        self.pool.begin().await.map_err(db_error)
    }

    /// A batch of request log rows in three statements (ids, rows, key index), whatever its size.
    pub(super) async fn append_log(&self, rows: &[LogRow]) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        let count = i64::try_from(rows.len()).unwrap_or(i64::MAX);
        let mut ids: Vec<i64> =
            sqlx::query_scalar(RESERVE_LOG_IDS).bind(count).fetch_all(&mut *tx).await.map_err(db_error)?;
        // In order, so a batch pages in the order its requests settled.
        ids.sort_unstable();
        sqlx::query(INSERT_LOG)
            .bind(&ids)
            .bind(column(rows, |r| r.at))
            .bind(column(rows, |r| r.request_id.as_str()))
            .bind(column(rows, |r| r.provider.as_str()))
            .bind(column(rows, |r| r.model.as_str()))
            .bind(column(rows, |r| r.token_id.as_str()))
            .bind(column(rows, |r| r.token_name.as_str()))
            .bind(column(rows, |r| r.status))
            .bind(column(rows, |r| r.status_class))
            .bind(column(rows, |r| r.outcome))
            .bind(column(rows, |r| r.latency_ms))
            .bind(column(rows, |r| r.prompt_tokens))
            .bind(column(rows, |r| r.completion_tokens))
            .bind(column(rows, |r| r.stream))
            .bind(column(rows, |r| r.attempts.as_str()))
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        let (keys, log_ids): (Vec<&str>, Vec<i64>) =
            rows.iter().zip(&ids).flat_map(|(r, id)| r.keys.iter().map(move |k| (k.as_str(), *id))).unzip();
        sqlx::query(INSERT_LOG_KEYS).bind(keys).bind(log_ids).execute(&mut *tx).await.map_err(db_error)?;
        tx.commit().await.map_err(db_error)
    }

    pub(super) async fn insert_batch(&self, keys: &[KeyRow<'_>]) -> Result<Vec<String>, StoreError> {
        let mut tx = self.pool.begin().await.map_err(db_error)?;
        let mut inserted = Vec::with_capacity(keys.len());
        for chunk in keys.chunks(INSERT_CHUNK) {
            let query = insert_query(chunk);
            inserted.extend(query.fetch_all(&mut *tx).await.map_err(db_error)?);
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

    async fn delete_ids(&self, sql: &'static str, ids: &[String]) -> Result<u64, StoreError> {
        let done = sqlx::query(sql).bind(ids).execute(&self.pool).await.map_err(db_error)?;
        Ok(done.rows_affected())
    }

    pub(super) async fn flush_key_batch(&self, deltas: &[KeyDelta]) -> Result<(), StoreError> {
        let ids = column(deltas, |d| d.id.to_string());
        let health = column(deltas, |d| HealthColumns::of(d.health.as_ref()));
        let models = column(deltas, |d| ModelColumns::of(d.models.as_ref()));
        let mut tx = self.pool.begin().await.map_err(db_error)?;
        lock_rows(&mut tx, LOCK_KEYS, &ids).await?;
        flush_keys_query(&ids, deltas, &health, &models).execute(&mut *tx).await.map_err(db_error)?;
        tx.commit().await.map_err(db_error)
    }

    /// Locks the rows first, in id order, like a flush: a gateway flushing meanwhile queues.
    pub(super) async fn replace_secret_batch(&self, secrets: &[(String, &str)]) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await.map_err(db_error)?;
        lock_rows(&mut tx, LOCK_KEYS, &column(secrets, |(id, _)| id.clone())).await?;
        for chunk in secrets.chunks(INSERT_CHUNK) {
            let query = sqlx::query(REPLACE_SECRETS).bind(column(chunk, |(id, _)| id.as_str()));
            query.bind(column(chunk, |(_, secret)| *secret)).execute(&mut *tx).await.map_err(db_error)?;
        }
        tx.commit().await.map_err(db_error)
    }

    pub(super) async fn flush_token_batch(&self, deltas: &[TokenDelta]) -> Result<(), StoreError> {
        let ids = column(deltas, |d| d.id.to_string());
        let mut tx = self.pool.begin().await.map_err(db_error)?;
        lock_rows(&mut tx, LOCK_TOKENS, &ids).await?;
        sqlx::query(FLUSH_TOKENS)
            .bind(&ids)
            .bind(column(deltas, |d| bindable(d.requests)))
            .bind(column(deltas, |d| d.last_used))
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        tx.commit().await.map_err(db_error)
    }
}

/// One field of every item, as the array bound to one `UNNEST` column.
fn column<'a, T, U>(items: &'a [T], field: impl Fn(&'a T) -> U) -> Vec<U> {
    items.iter().map(field).collect()
}

/// Quotes an identifier for PostgreSQL (`"name"`, inner quotes doubled).
fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

async fn create_schema(options: &PgConnectOptions, quoted: &str) -> Result<(), StoreError> {
    let mut conn = PgConnection::connect_with(options).await.map_err(db_error)?;
    let create = format!("CREATE SCHEMA IF NOT EXISTS {quoted}");
    sqlx::query(AssertSqlSafe(create)).execute(&mut conn).await.map_err(db_error)?;
    conn.close().await.map_err(db_error)
}

async fn lock_rows(tx: &mut PgConnection, lock: &'static str, ids: &[String]) -> Result<(), StoreError> {
    sqlx::query(lock).bind(ids).execute(&mut *tx).await.map_err(db_error)?;
    Ok(())
}

fn insert_query<'a>(chunk: &'a [KeyRow<'_>]) -> QueryScalar<'a, Postgres, String, PgArguments> {
    sqlx::query_scalar(INSERT_KEYS)
        .bind(column(chunk, |k| k.id.as_str()))
        .bind(column(chunk, |k| k.provider))
        .bind(column(chunk, |k| k.secret))
        .bind(column(chunk, |k| k.secret_hash.as_str()))
        .bind(column(chunk, |k| k.label))
        .bind(column(chunk, |k| k.created_at))
        .bind(column(chunk, |k| k.expires_at))
        .bind(column(chunk, |k| k.rpm))
        .bind(column(chunk, |k| k.max_concurrent))
}

fn flush_keys_query<'a>(
    ids: &'a [String],
    deltas: &'a [KeyDelta],
    health: &'a [HealthColumns],
    models: &'a [ModelColumns],
) -> Query<'a, Postgres, PgArguments> {
    sqlx::query(FLUSH_KEYS)
        .bind(ids)
        .bind(column(deltas, |d| bindable(d.counters.requests)))
        .bind(column(deltas, |d| bindable(d.counters.successes)))
        .bind(column(deltas, |d| bindable(d.counters.failures)))
        .bind(column(deltas, |d| d.counters.last_used))
        .bind(column(deltas, |d| d.counters.last_success))
        .bind(column(deltas, |d| d.counters.last_failure))
        .bind(column(health, |h| h.status))
        .bind(column(health, |h| h.reason.as_deref()))
        .bind(column(health, |h| h.since))
        .bind(column(health, |h| h.until))
        .bind(column(health, |h| h.strikes))
        .bind(column(health, |h| h.cause))
        .bind(column(models, |m| m.changed))
        .bind(column(models, |m| m.json.as_deref()))
        .bind(column(models, |m| m.at))
}
