//! `GET /admin/requests`: the request log, newest first, a page at a time (keyset paging:
//! `before=<nextBefore>`), filtered by `status` (`404` or `4xx`), `outcome`, `model`, `token`,
//! `key` (any attempt), `requestId`, and `from`/`to` (unix ms, `to` exclusive); and
//! `GET /admin/requests/{requestId}`: the newest entry with that id.
//!
//! The queue is written first (best effort), so a request answered a moment ago is listed.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use pool_core::ids::{KeyId, TokenId};
use pool_core::reqlog::{MAX_PAGE, RequestQuery, RequestRecord, StatusFilter};
use pool_core::stats::Outcome;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::query;
use crate::error::{ApiError, ErrorBody};
use crate::extract::Admin;
use crate::state::AppState;
use crate::wire::iso;

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ListQuery {
    /// An entry id: the previous page's `nextBefore`.
    before: Option<i64>,
    /// Entries per page (default 50).
    limit: Option<u32>,
    /// A status (`404`) or a class (`4xx`).
    status: Option<String>,
    /// An outcome (`success`, `rate_limited`, ...).
    outcome: Option<String>,
    model: Option<String>,
    /// A token id.
    token: Option<String>,
    /// A key id: entries with an attempt on it.
    key: Option<String>,
    request_id: Option<String>,
    /// Unix milliseconds, inclusive.
    from: Option<i64>,
    /// Unix milliseconds, exclusive.
    to: Option<i64>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PageBody {
    /// `false` when `request_log.retention_days = 0`: nothing is recorded.
    enabled: bool,
    entries: Vec<EntryBody>,
    next_before: Option<i64>,
    has_more: bool,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EntryBody {
    id: i64,
    at: Option<String>,
    at_ms: i64,
    request_id: String,
    provider: String,
    model: String,
    token_id: Option<String>,
    token_name: Option<String>,
    status: u16,
    outcome: String,
    latency_ms: u64,
    prompt_tokens: u64,
    completion_tokens: u64,
    stream: bool,
    attempts: Vec<AttemptBody>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AttemptBody {
    key_id: String,
    reason: String,
}

impl From<RequestRecord> for EntryBody {
    fn from(r: RequestRecord) -> Self {
        Self {
            id: r.id,
            at: iso(Some(r.at)),
            at_ms: r.at,
            request_id: r.request_id,
            provider: r.provider,
            model: r.model,
            token_id: r.token,
            token_name: r.token_name,
            status: r.status,
            outcome: r.outcome,
            latency_ms: r.latency_ms,
            prompt_tokens: r.prompt_tokens,
            completion_tokens: r.completion_tokens,
            stream: r.stream,
            attempts: r
                .attempts
                .into_iter()
                .map(|a| AttemptBody { key_id: a.key.to_string(), reason: a.reason })
                .collect(),
        }
    }
}

#[utoipa::path(get, path = "/admin/requests", tag = "admin", params(ListQuery),
    responses(
        (status = 200, description = "A page of the request log, newest first", body = PageBody),
        (status = 400, description = "A parameter that makes no sense, named in `param`", body = ErrorBody),
    ))]
pub async fn list(
    _: Admin,
    State(state): State<AppState>,
    q: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<PageBody>, ApiError> {
    let query = parse(query(q)?)?;
    write_queue(&state).await;
    let page = state.registry.store.query_requests(&query).await?;
    Ok(Json(PageBody {
        enabled: state.gateway.requests.is_enabled(),
        next_before: page.next_before(),
        has_more: page.has_more,
        entries: page.entries.into_iter().map(EntryBody::from).collect(),
    }))
}

#[utoipa::path(get, path = "/admin/requests/{request_id}", tag = "admin",
    params(("request_id" = String, Path, description = "A request id, as in `x-request-id`")),
    responses(
        (status = 200, description = "The newest entry with that id", body = EntryBody),
        (status = 400, description = "Not a request id", body = ErrorBody),
        (status = 404, description = "No entry with that id", body = ErrorBody),
    ))]
pub async fn show(
    _: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<EntryBody>, ApiError> {
    if !crate::request_id::is_sane(id.as_bytes()) {
        return Err(ApiError::invalid_param(
            "requestId",
            "a request id is 1-64 characters of A-Z, a-z, 0-9, '.', '_', '-'",
        ));
    }
    write_queue(&state).await;
    let found = state.registry.store.request_by_id(&id).await?;
    found.map(|r| Json(EntryBody::from(r))).ok_or_else(|| ApiError::not_found(format!("No request '{id}' in the log")))
}

/// Writes what the queue holds; a failure leaves it for the periodic flush (and the read that
/// follows says whether the store answers).
async fn write_queue(state: &AppState) {
    let _ = state.flush_request_log().await;
}

/// The query, checked: every value that is set must make sense (400 naming the parameter).
fn parse(q: ListQuery) -> Result<RequestQuery, ApiError> {
    let text = |v: Option<String>| v.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty());
    let limit = q.limit.unwrap_or(50);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ApiError::invalid_param("limit", format!("'limit' is between 1 and {MAX_PAGE}")));
    }
    if q.before.is_some_and(|b| b < 1) {
        return Err(ApiError::invalid_param("before", "'before' is an entry id (the previous page's nextBefore)"));
    }
    if matches!((q.from, q.to), (Some(from), Some(to)) if from > to) {
        return Err(ApiError::invalid_param("from", "'from' is after 'to'"));
    }
    let status = text(q.status)
        .map(|s| {
            StatusFilter::parse(&s)
                .ok_or_else(|| ApiError::invalid_param("status", "'status' is a status (404) or a class (4xx)"))
        })
        .transpose()?;
    let outcome = text(q.outcome)
        .map(|s| Outcome::parse(&s).ok_or_else(|| ApiError::invalid_param("outcome", format!("Unknown outcome '{s}'"))))
        .transpose()?;
    let token = text(q.token)
        .map(|s| s.parse::<TokenId>().map_err(|_| ApiError::invalid_param("token", "'token' is a token id")))
        .transpose()?;
    let key = text(q.key)
        .map(|s| s.parse::<KeyId>().map_err(|_| ApiError::invalid_param("key", "'key' is a key id")))
        .transpose()?;
    let request_id = text(q.request_id);
    if request_id.as_deref().is_some_and(|id| !crate::request_id::is_sane(id.as_bytes())) {
        return Err(ApiError::invalid_param(
            "requestId",
            "a request id is 1-64 characters of A-Z, a-z, 0-9, '.', '_', '-'",
        ));
    }
    let model = text(q.model);
    Ok(RequestQuery { before: q.before, limit, status, outcome, model, token, key, request_id, from: q.from, to: q.to })
}
