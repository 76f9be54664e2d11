//! `GET /admin/keys/stats`: exact per-key counters and state, paged and filtered.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use pool_core::UnixMs;
use pool_core::pool::PoolKey;
use pool_core::secret::mask;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Page, listed_keys, provider_or_default, query, status_filter};
use crate::error::ApiError;
use crate::extract::Admin;
use crate::state::AppState;
use crate::wire::iso;

#[derive(Deserialize)]
pub struct StatsQuery {
    provider: Option<String>,
    status: Option<String>,
    search: Option<String>,
    page: Option<usize>,
    #[serde(rename = "pageSize")]
    page_size: Option<usize>,
}

pub async fn list(
    _: Admin,
    State(state): State<AppState>,
    q: Result<Query<StatsQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let q = query(q)?;
    let now = state.gateway.clock.now_ms();
    let provider = q.provider.as_deref().map(|p| provider_or_default(&state, Some(p))).transpose()?;
    let keys = listed_keys(
        &state,
        provider.as_ref().map(|p| &p.spec.name),
        status_filter(q.status.as_deref())?,
        q.search.as_deref(),
        now,
    );
    let page = Page::of(keys.len(), q.page, q.page_size, false);
    let stats: Vec<Value> = page.slice(&keys).map(|k| key_stats(k, now)).collect();
    Ok(Json(
        json!({"stats": stats, "total": page.total, "page": page.page, "pageSize": page.page_size, "totalPages": page.total_pages()}),
    ))
}

pub(crate) fn key_stats(key: &PoolKey, now: UnixMs) -> Value {
    let health = key.health();
    let hold = health.hold.as_ref().filter(|h| h.in_force(now));
    let c = &key.counters;
    let count = |a: &AtomicU64| a.load(Relaxed);
    let at = |a: &AtomicI64| iso(Some(a.load(Relaxed)).filter(|&v| v != 0));
    let (requests, successes) = (count(&c.requests), count(&c.successes));
    let models = key.models();
    json!({
        "id": key.id,
        "provider": key.provider,
        "apiKey": mask(key.secret.expose_secret()),
        "username": key.label().as_deref(),
        "status": key.status(now).as_str(),
        "reason": hold.map(|h| h.reason.clone()),
        "manual": hold.is_some_and(|h| h.manual()),
        "cause": hold.map(|h| h.cause.as_str()),
        "awaitingProbe": hold.is_some_and(|h| h.awaiting_probe(now)),
        "until": iso(hold.and_then(|h| h.until)),
        "expiresAt": iso(key.expires_at),
        "totalRequests": requests,
        "successCount": successes,
        "failureCount": count(&c.failures),
        "successRate": if requests == 0 { None } else { Some((successes as f64 * 10_000.0 / requests as f64).round() / 100.0) },
        "strikes": health.strikes,
        "lastUsed": at(&c.last_used),
        "lastSuccess": at(&c.last_success),
        "lastFailure": at(&c.last_failure),
        "models": models.as_ref().map(|m| m.names.iter().collect::<Vec<_>>()),
        "modelsDiscoveredAt": iso(models.as_ref().map(|m| m.discovered_at)),
        "categories": models.map(|m| m.categories()),
    })
}
