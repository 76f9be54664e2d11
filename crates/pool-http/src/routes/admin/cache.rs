//! `/admin/cache/*`: the response cache's figures, and emptying it.

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use crate::extract::Admin;
use crate::state::AppState;

pub async fn stats(_: Admin, State(state): State<AppState>) -> Json<Value> {
    let cache = &state.cache;
    let settings = cache.settings();
    let stats = cache.stats(state.gateway.clock.now_ms());
    Json(json!({
        "enabled": settings.enabled,
        "entries": stats.entries,
        "bytes": stats.bytes,
        "maxEntries": settings.max_entries,
        "maxBytes": settings.max_bytes,
        "ttlSecs": settings.ttl_ms / 1000,
        "perToken": settings.per_token,
        "hits": stats.hits,
        "misses": stats.misses,
        "evictions": stats.evictions,
        "stores": stats.stores,
    }))
}

pub async fn clear(_: Admin, State(state): State<AppState>) -> Json<Value> {
    Json(json!({"cleared": state.cache.clear(state.gateway.clock.now_ms())}))
}
