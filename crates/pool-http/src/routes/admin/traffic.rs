//! Traffic statistics, read from pre-aggregated rollups (see `pool_core::stats`):
//! `GET /admin/stats` (admin), `GET /admin/public-stats` (anyone: no key, token or user data),
//! and usage series per token, key and model.
//!
//! The admin views flush first, so they include the request that finished a moment ago; the
//! public view does not (anyone may call it, and it must not be a way to make the gateway write).

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use pool_core::UnixMs;
use pool_core::ids::{KeyId, TokenId};
use pool_core::ports::{StoreError, UsageQuery, UsageSubject};
use pool_core::stats::{
    DAY_MS, Granularity, HourPoint, ModelCount, StatsSummary, UsagePoint, day_of, hour_of, minute_of,
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{KeyCounts, provider_or_default, query};
use crate::error::{ApiError, ErrorBody};
use crate::extract::Admin;
use crate::state::AppState;
use crate::wire::iso;

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ProviderQuery {
    /// A configured provider's name; absent: every provider together.
    pub(super) provider: Option<String>,
}

/// The statistics store could not be read: the figures are unknown, not zero.
pub(super) fn unavailable(e: &StoreError) -> ApiError {
    match e {
        StoreError::Corrupt(_) | StoreError::Conflict => ApiError::internal("reading statistics failed", e),
        StoreError::Backend(_) => {
            tracing::warn!(error.cause_chain = %e, "statistics store unavailable");
            ApiError::unavailable("The statistics store is unavailable; requests are still served and counted")
        }
    }
}

async fn summary(state: &AppState, provider: Option<&str>) -> Result<StatsSummary, ApiError> {
    let now = state.gateway.clock.now_ms();
    let store = &state.registry.store;
    let totals = store.stats_totals(provider).await.map_err(|e| unavailable(&e))?;
    let recent = store.stats_hours(provider, StatsSummary::recent_since(now)).await.map_err(|e| unavailable(&e))?;
    Ok(StatsSummary::build(&totals, &recent, now))
}

/// The provider filter, checked against the configured providers (`None`: all together).
pub(super) fn provider_filter(state: &AppState, q: &ProviderQuery) -> Result<Option<String>, ApiError> {
    q.provider.as_deref().map(|p| provider_or_default(state, Some(p)).map(|p| p.spec.name.to_string())).transpose()
}

/// The admin's view of the traffic: all time, today, the last 24 hours, and how recording fares.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AdminStats {
    /// The provider filtered on; `null`: every provider.
    provider: Option<String>,
    total_requests: u64,
    success_count: u64,
    failure_count: u64,
    /// Percent of requests that succeeded (100 before the first request).
    success_rate: f64,
    prompt_tokens: u64,
    completion_tokens: u64,
    total_tokens: u64,
    /// Requests whose usage the upstream did not report in full.
    partial_requests: u64,
    /// Upstream attempts (a request that moved keys made several).
    total_attempts: u64,
    failed_attempts: u64,
    requests_today: u64,
    tokens_today: u64,
    average_latency_ms: f64,
    average_ttfb_ms: f64,
    /// The gateway's own time per request.
    average_overhead_ms: f64,
    keys: KeyCounts,
    tokens: TokenCounts,
    top_models: Vec<ModelRow>,
    top_models24h: Vec<ModelRow>,
    hourly: Vec<HourRow>,
    error_classes: Vec<OutcomeCount>,
    statuses: Vec<StatusCount>,
    recording: Recording,
}

#[derive(Serialize, ToSchema)]
pub struct TokenCounts {
    total: usize,
    active: usize,
    expired: usize,
}

/// Failed requests by outcome.
#[derive(Serialize, ToSchema)]
pub struct OutcomeCount {
    outcome: &'static str,
    count: u64,
}

/// Requests by the status the client got.
#[derive(Serialize, ToSchema)]
pub struct StatusCount {
    status: u16,
    count: u64,
}

/// Whether the statistics keep up: counts dropped, rows waiting, the last good flush.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Recording {
    dropped_requests: u64,
    dropped_attempts: u64,
    backlog_rows: usize,
    last_flush_at: Option<String>,
    /// Flushes failed in a row.
    flush_failures: u64,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ModelRow {
    model: String,
    requests: u64,
    total_tokens: u64,
}

impl From<&ModelCount> for ModelRow {
    fn from(m: &ModelCount) -> Self {
        Self { model: m.model.clone(), requests: m.requests, total_tokens: m.total_tokens }
    }
}

/// One hour of the last 24, oldest first.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct HourRow {
    hour: Option<String>,
    requests: u64,
    success_count: u64,
    total_tokens: u64,
}

impl From<&HourPoint> for HourRow {
    fn from(h: &HourPoint) -> Self {
        Self { hour: iso(Some(h.hour)), requests: h.requests, success_count: h.successes, total_tokens: h.total_tokens }
    }
}

fn rows<'a, T: 'a, R: From<&'a T>>(items: impl IntoIterator<Item = &'a T>) -> Vec<R> {
    items.into_iter().map(R::from).collect()
}

#[utoipa::path(get, path = "/admin/stats", tag = "admin", params(ProviderQuery),
    responses(
        (status = 200, description = "Traffic, keys and tokens", body = AdminStats),
        (status = 400, description = "An unknown provider", body = ErrorBody),
    ))]
pub async fn admin_stats(
    _: Admin,
    State(state): State<AppState>,
    q: Result<Query<ProviderQuery>, QueryRejection>,
) -> Result<Json<AdminStats>, ApiError> {
    let provider = provider_filter(&state, &query(q)?)?;
    if let Err(e) = state.flush().await {
        return Err(unavailable(&e));
    }
    let s = summary(&state, provider.as_deref()).await?;
    let now = state.gateway.clock.now_ms();
    let mut keys = KeyCounts { total: 0, by_status: BTreeMap::new() };
    for p in state.providers.all() {
        if provider.as_deref().is_some_and(|name| p.spec.name.as_ref() != name) {
            continue;
        }
        let counts = KeyCounts::of(&state, &p.spec.name, now);
        keys.total += counts.total;
        for (status, n) in counts.by_status {
            *keys.by_status.entry(status).or_default() += n;
        }
    }
    let tokens = state.registry.tokens.all();
    let live_tokens = tokens.iter().filter(|t| !t.is_expired(now)).count();
    let (requests, attempts) = (&s.requests, &s.attempts);
    let dropped = state.gateway.stats.dropped();
    let flush = state.gateway.stats.flush_state();
    Ok(Json(AdminStats {
        provider,
        total_requests: requests.tally.events,
        success_count: requests.successes,
        failure_count: requests.failures(),
        success_rate: requests.success_rate(),
        prompt_tokens: requests.tally.prompt_tokens,
        completion_tokens: requests.tally.completion_tokens,
        total_tokens: requests.tally.total_tokens,
        partial_requests: requests.tally.partial,
        total_attempts: attempts.tally.events,
        failed_attempts: attempts.failures(),
        requests_today: s.requests_today,
        tokens_today: s.tokens_today,
        average_latency_ms: requests.mean_ms(requests.tally.latency_ms),
        average_ttfb_ms: requests.mean_ms(requests.tally.ttfb_ms),
        average_overhead_ms: requests.mean_ms(requests.tally.overhead_us) / 1000.0,
        keys,
        tokens: TokenCounts { total: tokens.len(), active: live_tokens, expired: tokens.len() - live_tokens },
        top_models: rows(&s.top_models),
        top_models24h: rows(&s.top_models_24h),
        hourly: rows(&s.hourly),
        error_classes: s.error_classes.iter().map(|(o, n)| OutcomeCount { outcome: o.as_str(), count: *n }).collect(),
        statuses: s.statuses.iter().map(|&(status, count)| StatusCount { status, count }).collect(),
        recording: Recording {
            dropped_requests: dropped.requests,
            dropped_attempts: dropped.attempts,
            backlog_rows: flush.backlog_rows,
            last_flush_at: iso(Some(flush.last_ok).filter(|&t| t != 0)),
            flush_failures: flush.failures,
        },
    }))
}

/// What anyone may see: counts and models, no key, token or user data.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PublicStats {
    provider: Option<String>,
    total_requests: u64,
    success_count: u64,
    failure_count: u64,
    success_rate: f64,
    total_tokens: u64,
    requests_today: u64,
    tokens_today: u64,
    top_models: Vec<ModelRow>,
    /// The last 24 hours' top three.
    top_models24h: Vec<ModelRow>,
    hourly: Vec<HourRow>,
    generated_at: Option<String>,
}

#[utoipa::path(get, path = "/admin/public-stats", tag = "public", params(ProviderQuery),
    responses(
        (status = 200, description = "The public statistics (also at `/stats.json`)", body = PublicStats),
        (status = 400, description = "An unknown provider", body = ErrorBody),
        (status = 503, description = "The statistics store is unavailable", body = ErrorBody),
    ))]
pub async fn public_stats(
    State(state): State<AppState>,
    q: Result<Query<ProviderQuery>, QueryRejection>,
) -> Result<Json<PublicStats>, ApiError> {
    let provider = provider_filter(&state, &query(q)?)?;
    let s = summary(&state, provider.as_deref()).await?;
    Ok(Json(PublicStats {
        provider,
        total_requests: s.requests.tally.events,
        success_count: s.requests.successes,
        failure_count: s.requests.failures(),
        success_rate: s.requests.success_rate(),
        total_tokens: s.requests.tally.total_tokens,
        requests_today: s.requests_today,
        tokens_today: s.tokens_today,
        top_models: rows(&s.top_models),
        top_models24h: rows(s.top_models_24h.iter().take(3)),
        hourly: rows(&s.hourly),
        generated_at: iso(Some(state.gateway.clock.now_ms())),
    }))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct UsageParams {
    /// `minute`, `hour` (default) or `day`.
    granularity: Option<String>,
    /// Bucket range in unix milliseconds; default: the last 24 hours (minute), 7 days (hour) or
    /// 30 days (day).
    #[param(value_type = Option<i64>)]
    since: Option<UnixMs>,
    #[param(value_type = Option<i64>)]
    until: Option<UnixMs>,
    provider: Option<String>,
    /// For `/admin/models/usage`: the model.
    model: Option<String>,
}

/// A usage series: what one token, key or model did, bucket by bucket.
#[derive(Serialize, ToSchema)]
pub struct Usage {
    /// The token's id, for `/admin/tokens/{id}/usage`.
    #[serde(skip_serializing_if = "Option::is_none")]
    token: Option<String>,
    /// The key's id, for `/admin/api-keys/{id}/usage`.
    #[serde(skip_serializing_if = "Option::is_none")]
    key: Option<String>,
    /// The model, for `/admin/models/usage`.
    #[serde(skip_serializing_if = "Option::is_none")]
    model: Option<String>,
    provider: Option<String>,
    granularity: String,
    /// `attempts` (a key's series counts each upstream attempt) or `requests`.
    counts: &'static str,
    since: Option<String>,
    until: Option<String>,
    total: UsageRow,
    series: Vec<UsageRow>,
}

/// One bucket of a usage series (or the series' total, without `at`).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UsageRow {
    #[serde(skip_serializing_if = "Option::is_none")]
    at: Option<String>,
    requests: u64,
    success_count: u64,
    failure_count: u64,
    prompt_tokens: u64,
    completion_tokens: u64,
    total_tokens: u64,
    partial: u64,
}

impl UsageRow {
    fn of(p: &UsagePoint, at: Option<String>) -> Self {
        Self {
            at,
            requests: p.events,
            success_count: p.successes,
            failure_count: p.events - p.successes,
            prompt_tokens: p.prompt_tokens,
            completion_tokens: p.completion_tokens,
            total_tokens: p.total_tokens,
            partial: p.partial,
        }
    }
}

#[utoipa::path(get, path = "/admin/tokens/{id}/usage", tag = "admin",
    params(("id" = String, Path, description = "The token's id"), UsageParams),
    responses(
        (status = 200, description = "The token's requests, bucket by bucket", body = Usage),
        (status = 400, description = "A malformed granularity, range or provider", body = ErrorBody),
        (status = 404, description = "A malformed token id", body = ErrorBody),
    ))]
pub async fn token_usage(
    _: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
    q: Result<Query<UsageParams>, QueryRejection>,
) -> Result<Json<Usage>, ApiError> {
    let id: TokenId = id.parse().map_err(|_| ApiError::not_found("No token with that id"))?;
    usage(&state, UsageSubject::Token(id), query(q)?).await
}

#[utoipa::path(get, path = "/admin/api-keys/{id}/usage", tag = "admin",
    params(("id" = String, Path, description = "The key's id"), UsageParams),
    responses(
        (status = 200, description = "The key's upstream attempts, bucket by bucket", body = Usage),
        (status = 400, description = "A malformed granularity, range or provider", body = ErrorBody),
        (status = 404, description = "A malformed key id", body = ErrorBody),
    ))]
pub async fn key_usage(
    _: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
    q: Result<Query<UsageParams>, QueryRejection>,
) -> Result<Json<Usage>, ApiError> {
    let id: KeyId = id.parse().map_err(|_| ApiError::not_found("No key with that id"))?;
    usage(&state, UsageSubject::Key(id), query(q)?).await
}

#[utoipa::path(get, path = "/admin/models/usage", tag = "admin", params(UsageParams),
    responses(
        (status = 200, description = "The model's requests, bucket by bucket", body = Usage),
        (status = 400, description = "No model, or a malformed granularity, range or provider", body = ErrorBody),
    ))]
pub async fn model_usage(
    _: Admin,
    State(state): State<AppState>,
    q: Result<Query<UsageParams>, QueryRejection>,
) -> Result<Json<Usage>, ApiError> {
    let mut params = query(q)?;
    let model = params.model.take().filter(|m| !m.is_empty() && m.len() <= 256);
    let model = model.ok_or_else(|| ApiError::invalid_param("model", "'model' (1-256 characters) is required"))?;
    usage(&state, UsageSubject::Model(model), params).await
}

async fn usage(state: &AppState, subject: UsageSubject, params: UsageParams) -> Result<Json<Usage>, ApiError> {
    let granularity = match params.granularity.as_deref() {
        None => Granularity::Hour,
        Some(g) => Granularity::parse(g)
            .ok_or_else(|| ApiError::invalid_param("granularity", "'granularity' must be 'minute', 'hour' or 'day'"))?,
    };
    let provider = provider_filter(state, &ProviderQuery { provider: params.provider })?;
    let now = state.gateway.clock.now_ms();
    let (floor, default_span): (fn(UnixMs) -> UnixMs, UnixMs) = match granularity {
        Granularity::Minute => (minute_of, DAY_MS),
        Granularity::Hour => (hour_of, 7 * DAY_MS),
        Granularity::Day => (day_of, 30 * DAY_MS),
    };
    let until = params.until.unwrap_or(now + granularity.step_ms());
    let since = params.since.unwrap_or(until - default_span);
    if since >= until || since < 0 {
        return Err(ApiError::bad_request("'since' must be a unix time in milliseconds before 'until'"));
    }
    if let Err(e) = state.flush().await {
        return Err(unavailable(&e));
    }
    let query = UsageQuery {
        subject: subject.clone(),
        provider: provider.clone(),
        per_minute: granularity == Granularity::Minute,
        since: floor(since),
        until,
    };
    let points = state.registry.store.usage_series(&query).await.map_err(|e| unavailable(&e))?;
    let points = if granularity == Granularity::Day { UsagePoint::per_day(&points) } else { points };
    let (token, key, model) = match subject {
        UsageSubject::Token(id) => (Some(id.to_string()), None, None),
        UsageSubject::Key(id) => (None, Some(id.to_string()), None),
        UsageSubject::Model(model) => (None, None, Some(model)),
    };
    let mut total = UsagePoint::default();
    points.iter().for_each(|p| total.add(p));
    Ok(Json(Usage {
        counts: if key.is_some() { "attempts" } else { "requests" },
        token,
        key,
        model,
        provider,
        granularity: params.granularity.unwrap_or_else(|| "hour".to_owned()),
        since: iso(Some(floor(since))),
        until: iso(Some(until)),
        total: UsageRow::of(&total, None),
        series: points.iter().map(|p| UsageRow::of(p, iso(Some(p.bucket)))).collect(),
    }))
}

#[cfg(test)]
mod tests {
    use axum::http::StatusCode;

    use super::*;

    #[test]
    fn a_store_outage_is_a_503_and_corruption_a_500() {
        let outage = StoreError::Backend(Box::new(std::io::Error::other("down")));
        assert_eq!(unavailable(&outage).status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(unavailable(&StoreError::Corrupt("x".into())).status, StatusCode::INTERNAL_SERVER_ERROR);
    }
}
