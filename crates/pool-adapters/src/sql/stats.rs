//! The statistics rollups on SQL, the same statements on both backends: multi-row
//! `INSERT … ON CONFLICT DO UPDATE SET events = t.events + excluded.events, …`, so every flush is
//! an atomic increment and several gateways can write one database.

use pool_core::UnixMs;
use pool_core::ports::{StoreError, TokenUsage, UsageQuery, UsageSubject};
use pool_core::stats::{Kind, Outcome, StatsRow, SummaryRow, Tally, UsagePoint};

use super::deltas::bindable;
use super::rows::Columns;

/// The four rollup tables, in the order a flush writes them.
pub(crate) const MINUTES: &str = "stats_minute";
pub(crate) const HOURS: &str = "stats_hour";
pub(crate) const HOUR_SUMMARY: &str = "stats_hour_summary";
pub(crate) const TOTALS: &str = "stats_total";

/// Bound parameters per row: 8 dimensions and 8 counters.
const PARAMS_PER_ROW: usize = 16;
/// Rows per statement: well under SQLite's 32,766 and PostgreSQL's 65,535 bound parameters.
pub(crate) const CHUNK: usize = 30_000 / PARAMS_PER_ROW;

/// `INSERT INTO table (…) ` (the caller adds `VALUES`).
pub(crate) fn insert_head(table: &str) -> String {
    format!(
        "INSERT INTO {table} (bucket, kind, provider, model, key_id, token_id, status, outcome, events, \
         prompt_tokens, completion_tokens, total_tokens, partial, latency_ms, ttfb_ms, overhead_us) "
    )
}

/// The counter columns of every rollup, in [`Bound::counters`] order.
const COUNTERS: [&str; 8] =
    ["events", "prompt_tokens", "completion_tokens", "total_tokens", "partial", "latency_ms", "ttfb_ms", "overhead_us"];

/// Every counter column through `each`, comma-separated.
fn counters(each: impl Fn(&str) -> String) -> String {
    COUNTERS.map(each).join(", ")
}

/// The increment on conflict.
pub(crate) fn upsert_tail(table: &str) -> String {
    format!(
        " ON CONFLICT (bucket, kind, provider, model, key_id, token_id, status, outcome) DO UPDATE SET {}",
        counters(|c| format!("{c} = {table}.{c} + excluded.{c}"))
    )
}

/// A row's values in column order: the dimensions as stored (no key or token is '').
pub(crate) struct Bound<'a> {
    pub bucket: UnixMs,
    pub kind: &'static str,
    pub provider: &'a str,
    pub model: &'a str,
    pub key: String,
    pub token: String,
    pub status: i64,
    pub outcome: &'static str,
    pub counters: [i64; 8],
}

impl<'a> Bound<'a> {
    pub(crate) fn of(row: &'a StatsRow) -> Self {
        let (d, t) = (&row.dims, &row.tally);
        Self {
            bucket: row.bucket,
            kind: d.kind.as_str(),
            provider: d.provider.as_ref(),
            model: &d.model,
            key: d.key.map(|k| k.to_string()).unwrap_or_default(),
            token: d.token.map(|k| k.to_string()).unwrap_or_default(),
            status: i64::from(d.status),
            outcome: d.outcome.as_str(),
            counters: [
                t.events,
                t.prompt_tokens,
                t.completion_tokens,
                t.total_tokens,
                t.partial,
                t.latency_ms,
                t.ttfb_ms,
                t.overhead_us,
            ]
            .map(bindable),
        }
    }
}

const SUMMARY_COLUMNS: &str = "bucket, kind, provider, model, status, outcome, events, prompt_tokens, \
     completion_tokens, total_tokens, partial, latency_ms, ttfb_ms, overhead_us";

// Every statement here is assembled from the constant names above, never from input: values are
// bound, so `AssertSqlSafe` holds.

/// `$1`: provider ('' for all).
pub(crate) fn select_totals() -> String {
    format!("SELECT {SUMMARY_COLUMNS} FROM {TOTALS} WHERE ($1 = '' OR provider = $1)")
}

/// `$1`: provider ('' for all); `$2`: the first hour. Only requests, summed per (hour, model,
/// outcome): what the dashboards read of recent hours, in as few rows as the traffic allows.
pub(crate) fn select_hours() -> String {
    format!(
        "SELECT bucket, kind, '' AS provider, model, CAST(0 AS BIGINT) AS status, outcome, {} FROM {HOUR_SUMMARY} \
         WHERE kind = 'request' AND bucket >= $2 AND ($1 = '' OR provider = $1) GROUP BY bucket, kind, model, outcome",
        counters(|c| format!("CAST(SUM({c}) AS BIGINT) AS {c}"))
    )
}

/// `$1`: provider ('' for all); `$2`: the first minute. Only requests, summed per (minute,
/// outcome): the short trend of the console.
pub(crate) fn select_minutes() -> String {
    format!(
        "SELECT bucket, kind, '' AS provider, '' AS model, CAST(0 AS BIGINT) AS status, outcome, {} FROM {MINUTES} \
         WHERE kind = 'request' AND bucket >= $2 AND ($1 = '' OR provider = $1) GROUP BY bucket, kind, outcome",
        counters(|c| format!("CAST(SUM({c}) AS BIGINT) AS {c}"))
    )
}

/// `$1`: the first hour.
pub(crate) const SELECT_TOKEN_USAGE: &str = "SELECT token_id, CAST(SUM(events) AS BIGINT) AS events, \
     CAST(SUM(total_tokens) AS BIGINT) AS total_tokens FROM stats_hour \
     WHERE bucket >= $1 AND kind = 'request' AND token_id <> '' AND outcome <> 'rejected' GROUP BY token_id";

pub(crate) fn token_usage(row: &impl Columns) -> Result<TokenUsage, StoreError> {
    let id = row.text("token_id")?;
    Ok(TokenUsage {
        token: id.parse().map_err(|_| StoreError::Corrupt(format!("stats token_id {id:?}")))?,
        requests: count(row, "events")?,
        tokens: count(row, "total_tokens")?,
    })
}

pub(crate) const PRUNE_MINUTES: &str = "DELETE FROM stats_minute WHERE bucket < $1";
pub(crate) const PRUNE_HOURS: &str = "DELETE FROM stats_hour WHERE bucket < $1";
pub(crate) const PRUNE_HOUR_SUMMARY: &str = "DELETE FROM stats_hour_summary WHERE bucket < $1";

/// `$1`: the subject; `$2`: the kind whose events are counted; `$3..$4`: buckets; `$5`: provider
/// ('' for all). Tokens are always read from the request rows: an attempt carries none, and the
/// request row names the key that served it, so a key's series counts its attempts and the
/// tokens of the requests it served.
pub(crate) fn select_usage(query: &UsageQuery) -> String {
    let table = if query.per_minute { MINUTES } else { HOURS };
    let column = match query.subject {
        UsageSubject::Token(_) => "token_id",
        UsageSubject::Key(_) => "key_id",
        UsageSubject::Model(_) => "model",
    };
    let of = |kind: &str, c: &str| format!("CAST(SUM(CASE WHEN kind = {kind} THEN {c} ELSE 0 END) AS BIGINT) AS {c}");
    format!(
        "SELECT bucket, {}, CAST(SUM(CASE WHEN kind = $2 AND outcome IN ('success', 'cached') THEN events ELSE 0 END) \
         AS BIGINT) AS successes, {}, {}, {}, {} FROM {table} WHERE {column} = $1 AND kind IN ($2, 'request') \
         AND bucket >= $3 AND bucket < $4 AND ($5 = '' OR provider = $5) GROUP BY bucket ORDER BY bucket",
        of("$2", "events"),
        of("'request'", "prompt_tokens"),
        of("'request'", "completion_tokens"),
        of("'request'", "total_tokens"),
        of("'request'", "partial"),
    )
}

/// The bound subject and kind of a usage query: a key's series counts its attempts, the others
/// count client requests.
pub(crate) fn usage_subject(query: &UsageQuery) -> (String, &'static str) {
    match &query.subject {
        UsageSubject::Token(id) => (id.to_string(), Kind::Request.as_str()),
        UsageSubject::Key(id) => (id.to_string(), Kind::Attempt.as_str()),
        UsageSubject::Model(model) => (model.clone(), Kind::Request.as_str()),
    }
}

pub(crate) fn summary_row(row: &impl Columns) -> Result<SummaryRow, StoreError> {
    let kind = row.text("kind")?;
    let outcome = row.text("outcome")?;
    Ok(SummaryRow {
        bucket: row.int("bucket")?,
        kind: Kind::parse(&kind).ok_or_else(|| StoreError::Corrupt(format!("unknown stats kind {kind:?}")))?,
        provider: row.text("provider")?,
        model: row.text("model")?,
        status: u16::try_from(row.int("status")?).map_err(|_| StoreError::Corrupt("stats status".into()))?,
        outcome: Outcome::parse(&outcome)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown stats outcome {outcome:?}")))?,
        tally: Tally {
            events: count(row, "events")?,
            prompt_tokens: count(row, "prompt_tokens")?,
            completion_tokens: count(row, "completion_tokens")?,
            total_tokens: count(row, "total_tokens")?,
            partial: count(row, "partial")?,
            latency_ms: count(row, "latency_ms")?,
            ttfb_ms: count(row, "ttfb_ms")?,
            overhead_us: count(row, "overhead_us")?,
        },
    })
}

pub(crate) fn usage_point(row: &impl Columns) -> Result<UsagePoint, StoreError> {
    Ok(UsagePoint {
        bucket: row.int("bucket")?,
        events: count(row, "events")?,
        successes: count(row, "successes")?,
        prompt_tokens: count(row, "prompt_tokens")?,
        completion_tokens: count(row, "completion_tokens")?,
        total_tokens: count(row, "total_tokens")?,
        partial: count(row, "partial")?,
    })
}

fn count(row: &impl Columns, name: &str) -> Result<u64, StoreError> {
    u64::try_from(row.int(name)?).map_err(|_| StoreError::Corrupt(format!("negative {name}")))
}

/// Implements [`pool_core::ports::StatsStore`] for a store with a `pool` and a `begin_write`.
macro_rules! impl_stats_store {
    ($store:ty, $db:ty) => {
        #[async_trait::async_trait]
        impl pool_core::ports::StatsStore for $store {
            async fn add_stats(&self, rollups: &pool_core::stats::Rollups) -> Result<(), StoreError> {
                use $crate::sql::stats::{
                    Bound, CHUNK, HOUR_SUMMARY, HOURS, MINUTES, TOTALS, insert_head, upsert_tail,
                };
                if rollups.is_empty() {
                    return Ok(());
                }
                let mut tx = self.begin_write().await?;
                let tables = [
                    (MINUTES, &rollups.minutes),
                    (HOURS, &rollups.hours),
                    (HOUR_SUMMARY, &rollups.hour_summary),
                    (TOTALS, &rollups.totals),
                ];
                for (table, rows) in tables {
                    let (head, tail) = (insert_head(table), upsert_tail(table));
                    for chunk in rows.chunks(CHUNK) {
                        let bound: Vec<Bound<'_>> = chunk.iter().map(Bound::of).collect();
                        let mut builder = sqlx::QueryBuilder::<$db>::new(&head);
                        builder.push_values(&bound, |mut b, row| {
                            b.push_bind(row.bucket).push_bind(row.kind).push_bind(row.provider).push_bind(row.model);
                            b.push_bind(row.key.as_str()).push_bind(row.token.as_str());
                            b.push_bind(row.status).push_bind(row.outcome);
                            for counter in row.counters {
                                b.push_bind(counter);
                            }
                        });
                        builder.push(&tail);
                        builder.build().execute(&mut *tx).await.map_err(db_error)?;
                    }
                }
                tx.commit().await.map_err(db_error)
            }

            async fn prune_stats(&self, minutes_before: UnixMs, hours_before: UnixMs) -> Result<u64, StoreError> {
                use $crate::sql::stats::{PRUNE_HOUR_SUMMARY, PRUNE_HOURS, PRUNE_MINUTES};
                let mut tx = self.begin_write().await?;
                let mut deleted = 0;
                for (statement, before) in
                    [(PRUNE_MINUTES, minutes_before), (PRUNE_HOURS, hours_before), (PRUNE_HOUR_SUMMARY, hours_before)]
                {
                    let done = sqlx::query(statement).bind(before).execute(&mut *tx).await.map_err(db_error)?;
                    deleted += done.rows_affected();
                }
                tx.commit().await.map_err(db_error)?;
                Ok(deleted)
            }

            async fn stats_totals(
                &self,
                provider: Option<&str>,
            ) -> Result<Vec<pool_core::stats::SummaryRow>, StoreError> {
                let sql = $crate::sql::stats::select_totals();
                let found =
                    sqlx::query(sqlx::AssertSqlSafe(sql)).bind(provider.unwrap_or("")).fetch_all(&self.pool).await;
                found.map_err(db_error)?.iter().map($crate::sql::stats::summary_row).collect()
            }

            async fn stats_hours(
                &self,
                provider: Option<&str>,
                since: UnixMs,
            ) -> Result<Vec<pool_core::stats::SummaryRow>, StoreError> {
                let sql = $crate::sql::stats::select_hours();
                let query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(provider.unwrap_or("")).bind(since);
                let found = query.fetch_all(&self.pool).await.map_err(db_error)?;
                found.iter().map($crate::sql::stats::summary_row).collect()
            }

            async fn stats_minutes(
                &self,
                provider: Option<&str>,
                since: UnixMs,
            ) -> Result<Vec<pool_core::stats::SummaryRow>, StoreError> {
                let sql = $crate::sql::stats::select_minutes();
                let query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(provider.unwrap_or("")).bind(since);
                let found = query.fetch_all(&self.pool).await.map_err(db_error)?;
                found.iter().map($crate::sql::stats::summary_row).collect()
            }

            async fn usage_series(
                &self,
                query: &pool_core::ports::UsageQuery,
            ) -> Result<Vec<pool_core::stats::UsagePoint>, StoreError> {
                let sql = $crate::sql::stats::select_usage(query);
                let (subject, kind) = $crate::sql::stats::usage_subject(query);
                let found = sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(subject)
                    .bind(kind)
                    .bind(query.since)
                    .bind(query.until)
                    .bind(query.provider.as_deref().unwrap_or(""))
                    .fetch_all(&self.pool)
                    .await
                    .map_err(db_error)?;
                found.iter().map($crate::sql::stats::usage_point).collect()
            }

            async fn token_usage_since(&self, since: UnixMs) -> Result<Vec<pool_core::ports::TokenUsage>, StoreError> {
                let query = sqlx::query($crate::sql::stats::SELECT_TOKEN_USAGE).bind(since);
                let found = query.fetch_all(&self.pool).await.map_err(db_error)?;
                found.iter().map($crate::sql::stats::token_usage).collect()
            }
        }
    };
}

pub(crate) use impl_stats_store;
