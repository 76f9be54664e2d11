//! `/admin/cache/*`: the response cache's figures, and emptying it.

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;

use crate::extract::Admin;
use crate::state::AppState;

/// The cache's settings and counters since start.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CacheView {
    enabled: bool,
    entries: usize,
    bytes: usize,
    max_entries: usize,
    max_bytes: usize,
    ttl_secs: i64,
    /// Entries are kept per client token rather than shared.
    per_token: bool,
    hits: u64,
    misses: u64,
    evictions: u64,
    stores: u64,
}

#[utoipa::path(get, path = "/admin/cache/stats", tag = "admin",
    responses((status = 200, description = "The response cache's figures", body = CacheView)))]
pub async fn stats(_: Admin, State(state): State<AppState>) -> Json<CacheView> {
    let cache = &state.cache;
    let settings = cache.settings();
    let stats = cache.stats(state.gateway.clock.now_ms());
    Json(CacheView {
        enabled: settings.enabled,
        entries: stats.entries,
        bytes: stats.bytes,
        max_entries: settings.max_entries,
        max_bytes: settings.max_bytes,
        ttl_secs: settings.ttl_ms / 1000,
        per_token: settings.per_token,
        hits: stats.hits,
        misses: stats.misses,
        evictions: stats.evictions,
        stores: stats.stores,
    })
}

#[derive(Serialize, ToSchema)]
pub struct Cleared {
    /// Entries removed.
    cleared: usize,
}

#[utoipa::path(post, path = "/admin/cache/clear", tag = "admin",
    responses((status = 200, description = "The cache, emptied", body = Cleared)))]
pub async fn clear(_: Admin, State(state): State<AppState>) -> Json<Cleared> {
    Json(Cleared { cleared: state.cache.clear(state.gateway.clock.now_ms()) })
}
