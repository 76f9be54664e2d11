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
use serde::Deserialize;
use serde_json::{Value, json};

use super::{key_counts, provider_or_default, query};
use crate::error::ApiError;
use crate::extract::Admin;
use crate::state::AppState;
use crate::wire::iso;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderQuery {
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

pub async fn admin_stats(
    _: Admin,
    State(state): State<AppState>,
    q: Result<Query<ProviderQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let provider = provider_filter(&state, &query(q)?)?;
    if let Err(e) = state.flush().await {
        return Err(unavailable(&e));
    }
    let s = summary(&state, provider.as_deref()).await?;
    let now = state.gateway.clock.now_ms();
    let mut keys_by_status: BTreeMap<&str, usize> = BTreeMap::new();
    let mut keys_total = 0;
    for p in state.providers.all() {
        if provider.as_deref().is_some_and(|name| p.spec.name.as_ref() != name) {
            continue;
        }
        let (total, counts) = key_counts(&state, &p.spec.name, now);
        keys_total += total;
        for (status, n) in counts {
            *keys_by_status.entry(status).or_default() += n;
        }
    }
    let tokens = state.registry.tokens.all();
    let live_tokens = tokens.iter().filter(|t| !t.is_expired(now)).count();
    let (requests, attempts) = (&s.requests, &s.attempts);
    let dropped = state.gateway.stats.dropped();
    let flush = state.gateway.stats.flush_state();
    Ok(Json(json!({
        "provider": provider,
        "totalRequests": requests.tally.events,
        "successCount": requests.successes,
        "failureCount": requests.failures(),
        "successRate": requests.success_rate(),
        "promptTokens": requests.tally.prompt_tokens,
        "completionTokens": requests.tally.completion_tokens,
        "totalTokens": requests.tally.total_tokens,
        "partialRequests": requests.tally.partial,
        "totalAttempts": attempts.tally.events,
        "failedAttempts": attempts.failures(),
        "requestsToday": s.requests_today,
        "tokensToday": s.tokens_today,
        "averageLatencyMs": requests.mean_ms(requests.tally.latency_ms),
        "averageTtfbMs": requests.mean_ms(requests.tally.ttfb_ms),
        "averageOverheadMs": requests.mean_ms(requests.tally.overhead_us) / 1000.0,
        "keys": {"total": keys_total, "byStatus": keys_by_status},
        "tokens": {"total": tokens.len(), "active": live_tokens, "expired": tokens.len() - live_tokens},
        "topModels": models_json(&s.top_models),
        "topModels24h": models_json(&s.top_models_24h),
        "hourly": hours_json(&s.hourly),
        "errorClasses": s.error_classes.iter().map(|(o, n)| json!({"outcome": o.as_str(), "count": n})).collect::<Vec<_>>(),
        "statuses": s.statuses.iter().map(|(status, n)| json!({"status": status, "count": n})).collect::<Vec<_>>(),
        "recording": {
            "droppedRequests": dropped.requests,
            "droppedAttempts": dropped.attempts,
            "backlogRows": flush.backlog_rows,
            "lastFlushAt": iso(Some(flush.last_ok).filter(|&t| t != 0)),
            "flushFailures": flush.failures,
        },
    })))
}

pub async fn public_stats(
    State(state): State<AppState>,
    q: Result<Query<ProviderQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let provider = provider_filter(&state, &query(q)?)?;
    let s = summary(&state, provider.as_deref()).await?;
    let top3: Vec<ModelCount> = s.top_models_24h.iter().take(3).cloned().collect();
    Ok(Json(json!({
        "provider": provider,
        "totalRequests": s.requests.tally.events,
        "successCount": s.requests.successes,
        "failureCount": s.requests.failures(),
        "successRate": s.requests.success_rate(),
        "totalTokens": s.requests.tally.total_tokens,
        "requestsToday": s.requests_today,
        "tokensToday": s.tokens_today,
        "topModels": models_json(&s.top_models),
        "topModels24h": models_json(&top3),
        "hourly": hours_json(&s.hourly),
        "generatedAt": iso(Some(state.gateway.clock.now_ms())),
    })))
}

fn models_json(models: &[ModelCount]) -> Vec<Value> {
    models.iter().map(|m| json!({"model": m.model, "requests": m.requests, "totalTokens": m.total_tokens})).collect()
}

fn hours_json(hours: &[HourPoint]) -> Vec<Value> {
    hours
        .iter()
        .map(|h| json!({"hour": iso(Some(h.hour)), "requests": h.requests, "successCount": h.successes, "totalTokens": h.total_tokens}))
        .collect()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UsageParams {
    /// `minute`, `hour` (default) or `day`.
    granularity: Option<String>,
    /// Bucket range in unix milliseconds; default: the last 24 hours (minute), 7 days (hour) or
    /// 30 days (day).
    since: Option<UnixMs>,
    until: Option<UnixMs>,
    provider: Option<String>,
    /// For `/admin/models/usage`: the model.
    model: Option<String>,
}

pub async fn token_usage(
    _: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
    q: Result<Query<UsageParams>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let id: TokenId = id.parse().map_err(|_| ApiError::not_found("No token with that id"))?;
    usage(&state, UsageSubject::Token(id), query(q)?).await
}

pub async fn key_usage(
    _: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
    q: Result<Query<UsageParams>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let id: KeyId = id.parse().map_err(|_| ApiError::not_found("No key with that id"))?;
    usage(&state, UsageSubject::Key(id), query(q)?).await
}

pub async fn model_usage(
    _: Admin,
    State(state): State<AppState>,
    q: Result<Query<UsageParams>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let mut params = query(q)?;
    let model = params.model.take().filter(|m| !m.is_empty() && m.len() <= 256);
    let model = model.ok_or_else(|| ApiError::invalid_param("model", "'model' (1-256 characters) is required"))?;
    usage(&state, UsageSubject::Model(model), params).await
}

async fn usage(state: &AppState, subject: UsageSubject, params: UsageParams) -> Result<Json<Value>, ApiError> {
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
    let (what, id) = match &subject {
        UsageSubject::Token(id) => ("token", id.to_string()),
        UsageSubject::Key(id) => ("key", id.to_string()),
        UsageSubject::Model(model) => ("model", model.clone()),
    };
    let mut total = UsagePoint::default();
    points.iter().for_each(|p| total.add(p));
    Ok(Json(json!({
        what: id,
        "provider": provider,
        "granularity": params.granularity.as_deref().unwrap_or("hour"),
        "counts": if what == "key" { "attempts" } else { "requests" },
        "since": iso(Some(floor(since))),
        "until": iso(Some(until)),
        "total": point_json(&total, None),
        "series": points.iter().map(|p| point_json(p, iso(Some(p.bucket)))).collect::<Vec<_>>(),
    })))
}

fn point_json(p: &UsagePoint, at: Option<String>) -> Value {
    let mut v = json!({
        "requests": p.events,
        "successCount": p.successes,
        "failureCount": p.events - p.successes,
        "promptTokens": p.prompt_tokens,
        "completionTokens": p.completion_tokens,
        "totalTokens": p.total_tokens,
        "partial": p.partial,
    });
    if let (Some(at), Some(map)) = (at, v.as_object_mut()) {
        map.insert("at".into(), Value::String(at));
    }
    v
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
