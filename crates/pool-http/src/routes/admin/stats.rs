//! `GET /admin/keys/stats`: exact per-key counters and state, paged and filtered.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use pool_core::UnixMs;
use pool_core::ids::KeyId;
use pool_core::pool::PoolKey;
use pool_core::provider::ProviderName;
use pool_core::secret::mask;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{Page, PageInfo, listed_keys, provider_or_default, query, status_filter};
use crate::error::{ApiError, ErrorBody};
use crate::extract::Admin;
use crate::state::AppState;
use crate::wire::iso;

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StatsQuery {
    /// A configured provider's name; absent: every provider.
    provider: Option<String>,
    /// `all` (default), `active`, `cooling`, `failed`, `disabled` or `expired`.
    status: Option<String>,
    /// A case-insensitive substring of the label, the start of the id, or the whole secret.
    search: Option<String>,
    page: Option<usize>,
    /// 1 to 200 (default 50).
    #[serde(rename = "pageSize")]
    page_size: Option<usize>,
}

/// A page of per-key statistics (the seed's `stats`).
#[derive(Serialize, ToSchema)]
pub struct KeyStatsPage {
    stats: Vec<KeyStats>,
    #[serde(flatten)]
    page: PageInfo,
}

#[utoipa::path(get, path = "/admin/keys/stats", tag = "admin", params(StatsQuery),
    responses(
        (status = 200, description = "One page of per-key counters and state", body = KeyStatsPage),
        (status = 400, description = "An unknown provider or status", body = ErrorBody),
    ))]
pub async fn list(
    _: Admin,
    State(state): State<AppState>,
    q: Result<Query<StatsQuery>, QueryRejection>,
) -> Result<Json<KeyStatsPage>, ApiError> {
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
    let stats = page.slice(&keys).map(|k| KeyStats::of(k, now)).collect();
    Ok(Json(KeyStatsPage { stats, page: page.info() }))
}

/// One key's exact counters and state (the seed's camelCase names: `apiKey`, `totalRequests`,
/// `successRate`, `lastUsed`, ...).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct KeyStats {
    #[schema(value_type = String)]
    id: KeyId,
    #[schema(value_type = String)]
    provider: ProviderName,
    /// The key, masked.
    api_key: String,
    username: Option<String>,
    status: &'static str,
    reason: Option<String>,
    /// The hold is an operator's.
    manual: bool,
    cause: Option<&'static str>,
    awaiting_probe: bool,
    until: Option<String>,
    expires_at: Option<String>,
    total_requests: u64,
    success_count: u64,
    failure_count: u64,
    /// Percent with two decimals; `null` before the first request.
    success_rate: Option<f64>,
    strikes: u32,
    last_used: Option<String>,
    last_success: Option<String>,
    last_failure: Option<String>,
    models: Option<Vec<String>>,
    models_discovered_at: Option<String>,
    categories: Option<Vec<&'static str>>,
}

impl KeyStats {
    fn of(key: &PoolKey, now: UnixMs) -> Self {
        let health = key.health();
        let hold = health.hold.as_ref().filter(|h| h.in_force(now));
        let c = &key.counters;
        let count = |a: &AtomicU64| a.load(Relaxed);
        let at = |a: &AtomicI64| iso(Some(a.load(Relaxed)).filter(|&v| v != 0));
        let (requests, successes) = (count(&c.requests), count(&c.successes));
        let models = key.models();
        Self {
            id: key.id,
            provider: key.provider.clone(),
            api_key: mask(key.secret.expose_secret()),
            username: key.label().map(|l| String::clone(&l)),
            status: key.status(now).as_str(),
            reason: hold.map(|h| h.reason.clone()),
            manual: hold.is_some_and(|h| h.manual()),
            cause: hold.map(|h| h.cause.as_str()),
            awaiting_probe: hold.is_some_and(|h| h.awaiting_probe(now)),
            until: iso(hold.and_then(|h| h.until)),
            expires_at: iso(key.expires_at),
            total_requests: requests,
            success_count: successes,
            failure_count: count(&c.failures),
            success_rate: (requests > 0).then(|| (successes as f64 * 10_000.0 / requests as f64).round() / 100.0),
            strikes: health.strikes,
            last_used: at(&c.last_used),
            last_success: at(&c.last_success),
            last_failure: at(&c.last_failure),
            models: models.as_ref().map(|m| m.names.iter().cloned().collect()),
            models_discovered_at: iso(models.as_ref().map(|m| m.discovered_at)),
            categories: models.map(|m| m.categories()),
        }
    }
}
