//! `GET /admin/api-keys/export?format=csv|json&provider=&status=&search=`: the keys matching the
//! listing's filter ([`KeyFilter`]) as a download, with their state and counts.
//!
//! Secrets are masked (`sk-…abcd`): a key is shown whole only once, when it is added, and an
//! export is no way around that. The body is streamed a few hundred rows at a time, so 100,000
//! keys never sit in memory as one string; the keys themselves are one snapshot of `Arc`s taken
//! when the request arrives.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::header::{CONTENT_DISPOSITION, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use pool_core::UnixMs;
use pool_core::pool::PoolKey;
use pool_core::secret::mask;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{KeyFilter, query};
use crate::error::{ApiError, ErrorBody};
use crate::extract::Admin;
use crate::state::AppState;
use crate::wire::iso;

/// Rows serialised per chunk of the body.
const ROWS_PER_CHUNK: usize = 500;

const CSV_HEADER: &str = "id,label,provider,api_key,state,reason,until,models,requests,successes,failures,last_used\n";

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ExportQuery {
    /// `csv` (default) or `json`.
    format: Option<String>,
    /// The listing's filter, as `GET /admin/api-keys` reads it.
    provider: Option<String>,
    status: Option<String>,
    search: Option<String>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Format {
    Csv,
    Json,
}

#[utoipa::path(get, path = "/admin/api-keys/export", tag = "admin", params(ExportQuery),
    responses(
        (status = 200, description = "The matching keys as a download, masked", content(
            (Vec<KeyRow> = "application/json"),
            (String = "text/csv"),
        )),
        (status = 400, description = "An unknown format, provider or status", body = ErrorBody),
    ))]
pub async fn export(
    _: Admin,
    State(state): State<AppState>,
    q: Result<Query<ExportQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let q = query(q)?;
    let format = match q.format.as_deref() {
        None | Some("csv") => Format::Csv,
        Some("json") => Format::Json,
        Some(_) => return Err(ApiError::invalid_param("format", "format is one of csv, json")),
    };
    let now = state.gateway.clock.now_ms();
    let filter = KeyFilter { provider: q.provider, status: q.status, search: q.search };
    let keys = Arc::new(filter.keys(&state, now)?);
    let (mime, ext) = match format {
        Format::Csv => ("text/csv; charset=utf-8", "csv"),
        Format::Json => ("application/json", "json"),
    };
    let disposition = format!("attachment; filename=\"ollama-pool-keys.{ext}\"");
    let body = Body::from_stream(chunks(keys, format, now));
    Ok(([(CONTENT_TYPE, mime.to_owned()), (CONTENT_DISPOSITION, disposition)], body).into_response())
}

/// The body: a head, the rows a chunk at a time, a tail.
fn chunks(
    keys: Arc<Vec<Arc<PoolKey>>>,
    format: Format,
    now: UnixMs,
) -> impl futures_util::Stream<Item = Result<Bytes, std::convert::Infallible>> + Send {
    let (head, tail) = match format {
        Format::Csv => (CSV_HEADER, ""),
        Format::Json => ("[", "]\n"),
    };
    let starts = (0..keys.len()).step_by(ROWS_PER_CHUNK);
    let rows = starts.map(move |start| {
        let mut out = String::new();
        for (i, key) in keys.iter().enumerate().skip(start).take(ROWS_PER_CHUNK) {
            let row = KeyRow::of(key, now);
            match format {
                Format::Csv => row.write_csv(&mut out),
                Format::Json => {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&serde_json::to_string(&row).unwrap_or_default());
                }
            }
        }
        out
    });
    let parts = std::iter::once(head.to_owned()).chain(rows).chain(std::iter::once(tail.to_owned()));
    futures_util::stream::iter(parts.map(|s| Ok(Bytes::from(s))))
}

/// One exported key, the secret only masked. Its names are the CSV's columns (snake_case, like the
/// seed's key listing).
#[derive(Serialize, ToSchema)]
pub struct KeyRow {
    id: String,
    label: Option<String>,
    provider: String,
    api_key: String,
    state: &'static str,
    reason: Option<String>,
    until: Option<String>,
    models: Vec<String>,
    requests: u64,
    successes: u64,
    failures: u64,
    last_used: Option<String>,
}

impl KeyRow {
    fn of(key: &PoolKey, now: UnixMs) -> Self {
        use std::sync::atomic::Ordering::Relaxed;
        let health = key.health();
        let hold = health.hold_at(now);
        let c = &key.counters;
        Self {
            id: key.id.to_string(),
            label: key.label().map(|l| String::clone(&l)),
            provider: key.provider.to_string(),
            api_key: mask(key.secret.expose_secret()),
            state: key.status(now).as_str(),
            reason: hold.map(|h| h.reason.clone()),
            until: iso(hold.and_then(|h| h.until)),
            models: key.models().map(|m| m.names.iter().cloned().collect()).unwrap_or_default(),
            requests: c.requests.load(Relaxed),
            successes: c.successes.load(Relaxed),
            failures: c.failures.load(Relaxed),
            last_used: iso(Some(c.last_used.load(Relaxed)).filter(|&v| v != 0)),
        }
    }

    fn write_csv(&self, out: &mut String) {
        let opt = |v: &Option<String>| v.clone().unwrap_or_default();
        let fields = [
            self.id.clone(),
            opt(&self.label),
            self.provider.clone(),
            self.api_key.clone(),
            self.state.to_owned(),
            opt(&self.reason),
            opt(&self.until),
            self.models.join(" "),
            self.requests.to_string(),
            self.successes.to_string(),
            self.failures.to_string(),
            opt(&self.last_used),
        ];
        let cells: Vec<String> = fields.iter().map(|f| csv_cell(f)).collect();
        out.push_str(&cells.join(","));
        out.push('\n');
    }
}

/// A CSV cell: quoted when it holds a comma, quote or line break; a leading `=`, `+`, `-`, `@`
/// or tab is defused with a `'`, so a hostile label cannot become a spreadsheet formula.
fn csv_cell(value: &str) -> String {
    let defused =
        if value.starts_with(['=', '+', '-', '@', '\t', '\r']) { format!("'{value}") } else { value.to_owned() };
    if defused.contains([',', '"', '\n', '\r']) { format!("\"{}\"", defused.replace('"', "\"\"")) } else { defused }
}

#[cfg(test)]
mod tests {
    use super::csv_cell;

    #[test]
    fn a_csv_cell_is_quoted_when_it_must_be_and_never_starts_a_formula() {
        assert_eq!(csv_cell("plain"), "plain");
        assert_eq!(csv_cell("a,b"), "\"a,b\"");
        assert_eq!(csv_cell("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_cell("=HYPERLINK(1)"), "'=HYPERLINK(1)");
        assert_eq!(csv_cell("-1,2"), "\"'-1,2\"");
    }
}
