//! The request log port, implemented once for both stores: the statements read the same on
//! SQLite and PostgreSQL (`$n` placeholders, `RETURNING`, `LIMIT` in a subquery).
//!
//! A page is `ORDER BY id DESC LIMIT n + 1` under the filters, with `id < before` as the
//! cursor: no `COUNT`, and every filter column has an index ending in `id`, so the database
//! walks one index backwards and stops after a page. The key filter drives from
//! `request_log_keys` (key, log id) instead, for the same reason.

use pool_core::ports::StoreError;
use pool_core::reqlog::{self, RequestLogEntry, RequestQuery, RequestRecord, StatusFilter};

use super::rows::Columns;

/// The columns a new row fills, in [`LogRow`]'s order after the id. Ids are drawn before the
/// insert (from the table's sequence), so one multi-row statement writes a batch and its key
/// index without reading ids back row by row. A macro, so that statements can `concat!` it.
macro_rules! log_columns {
    () => {
        "id, at_ms, request_id, provider, model, token_id, token_name, status, status_class, outcome, \
         latency_ms, prompt_tokens, completion_tokens, stream, attempts"
    };
}

/// Values per new row, the id included.
pub(crate) const LOG_WIDTH: usize = 15;

const COLUMNS: &str = "r.id, r.at_ms, r.request_id, r.provider, r.model, r.token_id, r.token_name, r.status, \
     r.outcome, r.latency_ms, r.prompt_tokens, r.completion_tokens, r.stream, r.attempts";

/// The oldest rows from before `$1`, at most `$2` of them. Ordered by time, not id, so the
/// database walks the `at_ms` index and stops: ordered by id, it could scan every newer row
/// to learn that none is old enough (with nothing to prune, that is the whole table).
const OLDEST: &str = "SELECT id FROM request_log WHERE at_ms < $1 ORDER BY at_ms LIMIT $2";

pub(crate) fn prune_keys() -> String {
    format!("DELETE FROM request_log_keys WHERE log_id IN ({OLDEST})")
}

pub(crate) fn prune_rows() -> String {
    format!("DELETE FROM request_log WHERE id IN ({OLDEST})")
}

/// A value bound to a query's placeholder.
pub(crate) enum Bind {
    Int(i64),
    Text(String),
}

/// A new row's values, in `log_columns!`'s order after the id, and the keys it tried.
pub(crate) struct LogRow {
    pub at: i64,
    pub request_id: String,
    pub provider: String,
    pub model: String,
    /// A missing token is stored as the empty string (one type to bind on both backends), and
    /// read back as `None`.
    pub token_id: String,
    pub token_name: String,
    pub status: i64,
    pub status_class: i64,
    pub outcome: &'static str,
    pub latency_ms: i64,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub stream: i64,
    pub attempts: String,
    pub keys: Vec<String>,
}

impl LogRow {
    pub(crate) fn of(e: &RequestLogEntry) -> Self {
        let attempts = reqlog::attempt_list(&e.failed, e.last, e.status);
        let int = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        Self {
            at: e.at,
            request_id: e.request_id.as_str().to_owned(),
            provider: e.provider.to_string(),
            model: e.model.to_string(),
            token_id: e.token.map(|t| t.to_string()).unwrap_or_default(),
            token_name: e.token_name.clone().unwrap_or_default(),
            status: i64::from(e.status),
            status_class: i64::from(e.status / 100),
            outcome: e.outcome.as_str(),
            latency_ms: int(e.latency_ms),
            prompt_tokens: int(e.prompt_tokens),
            completion_tokens: int(e.completion_tokens),
            stream: i64::from(e.stream),
            attempts: reqlog::format_attempts(&attempts),
            keys: attempts.iter().map(|a| a.key.to_string()).collect(),
        }
    }
}

/// The page statement for `query` and its values; it fetches one row more than a page, to
/// learn whether there are more.
pub(crate) fn page(query: &RequestQuery) -> (String, Vec<Bind>) {
    let mut binds = Vec::new();
    let mut arg = |b: Bind| {
        binds.push(b);
        format!("${}", binds.len())
    };
    let (from, id) = match query.key {
        Some(key) => {
            let p = arg(Bind::Text(key.to_string()));
            (format!("request_log_keys k JOIN request_log r ON r.id = k.log_id AND k.key_id = {p}"), "k.log_id")
        }
        None => ("request_log r".to_owned(), "r.id"),
    };
    let mut conditions = Vec::new();
    if let Some(before) = query.before {
        conditions.push(format!("{id} < {}", arg(Bind::Int(before))));
    }
    match query.status {
        Some(StatusFilter::Exact(s)) => conditions.push(format!("r.status = {}", arg(Bind::Int(i64::from(s))))),
        Some(StatusFilter::Class(c)) => conditions.push(format!("r.status_class = {}", arg(Bind::Int(i64::from(c))))),
        None => {}
    }
    let texts = [
        ("r.outcome", query.outcome.map(|o| o.as_str().to_owned())),
        ("r.model", query.model.clone()),
        ("r.token_id", query.token.map(|t| t.to_string())),
        ("r.request_id", query.request_id.clone()),
    ];
    for (column, value) in texts {
        if let Some(value) = value {
            conditions.push(format!("{column} = {}", arg(Bind::Text(value))));
        }
    }
    if let Some(from) = query.from {
        conditions.push(format!("r.at_ms >= {}", arg(Bind::Int(from))));
    }
    if let Some(to) = query.to {
        conditions.push(format!("r.at_ms < {}", arg(Bind::Int(to))));
    }
    let limit = arg(Bind::Int(i64::from(query.limit.clamp(1, reqlog::MAX_PAGE)) + 1));
    let filter = if conditions.is_empty() { String::new() } else { format!(" WHERE {}", conditions.join(" AND ")) };
    (format!("SELECT {COLUMNS} FROM {from}{filter} ORDER BY {id} DESC LIMIT {limit}"), binds)
}

/// The newest entry with request id `$1`.
pub(crate) fn by_request_id() -> String {
    format!("SELECT {COLUMNS} FROM request_log r WHERE r.request_id = $1 ORDER BY r.id DESC LIMIT 1")
}

pub(crate) fn record(row: &impl Columns) -> Result<RequestRecord, StoreError> {
    let uint = |name: &str| row.int(name).map(|n| u64::try_from(n).unwrap_or(0));
    Ok(RequestRecord {
        id: row.int("id")?,
        at: row.int("at_ms")?,
        request_id: row.text("request_id")?,
        provider: row.text("provider")?,
        model: row.text("model")?,
        token: row.opt_text("token_id")?.filter(|t| !t.is_empty()),
        token_name: row.opt_text("token_name")?.filter(|t| !t.is_empty()),
        status: u16::try_from(row.int("status")?).unwrap_or(0),
        outcome: row.text("outcome")?,
        latency_ms: uint("latency_ms")?,
        prompt_tokens: uint("prompt_tokens")?,
        completion_tokens: uint("completion_tokens")?,
        stream: row.int("stream")? != 0,
        attempts: reqlog::parse_attempts(&row.text("attempts")?),
    })
}

macro_rules! bind_all {
    ($query:expr, $binds:expr) => {{
        let mut query = $query;
        for bind in $binds {
            query = match bind {
                $crate::sql::requests::Bind::Int(n) => query.bind(n),
                $crate::sql::requests::Bind::Text(t) => query.bind(t),
            };
        }
        query
    }};
}

macro_rules! impl_request_log_store {
    ($store:ty) => {
        #[async_trait::async_trait]
        impl pool_core::ports::RequestLogStore for $store {
            async fn append_requests(&self, entries: &[pool_core::reqlog::RequestLogEntry]) -> Result<(), StoreError> {
                if entries.is_empty() {
                    return Ok(());
                }
                let rows: Vec<_> = entries.iter().map($crate::sql::requests::LogRow::of).collect();
                self.append_log(&rows).await
            }

            async fn query_requests(
                &self,
                query: &pool_core::reqlog::RequestQuery,
            ) -> Result<pool_core::reqlog::RequestPage, StoreError> {
                let (sql, binds) = $crate::sql::requests::page(query);
                let statement = sqlx::query(sqlx::AssertSqlSafe(sql));
                let found =
                    $crate::sql::requests::bind_all!(statement, binds).fetch_all(&self.pool).await.map_err(db_error)?;
                let mut entries =
                    found.iter().map($crate::sql::requests::record).collect::<Result<Vec<_>, StoreError>>()?;
                let page = usize::try_from(query.limit.clamp(1, pool_core::reqlog::MAX_PAGE)).unwrap_or(1);
                let has_more = entries.len() > page;
                entries.truncate(page);
                Ok(pool_core::reqlog::RequestPage { entries, has_more })
            }

            async fn request_by_id(
                &self,
                request_id: &str,
            ) -> Result<Option<pool_core::reqlog::RequestRecord>, StoreError> {
                let found = sqlx::query(sqlx::AssertSqlSafe($crate::sql::requests::by_request_id()))
                    .bind(request_id)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(db_error)?;
                found.as_ref().map($crate::sql::requests::record).transpose()
            }

            async fn prune_requests(&self, before: UnixMs, max_rows: u32) -> Result<u64, StoreError> {
                let mut tx = self.begin_write().await?;
                sqlx::query(sqlx::AssertSqlSafe($crate::sql::requests::prune_keys()))
                    .bind(before)
                    .bind(i64::from(max_rows))
                    .execute(&mut *tx)
                    .await
                    .map_err(db_error)?;
                let done = sqlx::query(sqlx::AssertSqlSafe($crate::sql::requests::prune_rows()))
                    .bind(before)
                    .bind(i64::from(max_rows))
                    .execute(&mut *tx)
                    .await
                    .map_err(db_error)?;
                tx.commit().await.map_err(db_error)?;
                Ok(done.rows_affected())
            }
        }
    };
}

pub(crate) use {bind_all, impl_request_log_store, log_columns};
