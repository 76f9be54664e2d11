//! `GET /health`: liveness, the real version and uptime, whether the store takes writes, and per
//! provider whether it is enabled and how many keys are in each state. No secrets, no key
//! material, no connection string.
//!
//! While store writes fail the answer is 503 with `"storage": "degraded"` and a fixed-phrase
//! `storageError`: requests are still served, but counts and admin changes wait, and an
//! orchestrator or a monitor should know.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use pool_core::store_health::StoreStatus;
use serde_json::{Value, json};

use crate::state::AppState;
use crate::wire::iso;

pub async fn show(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    let now = state.gateway.clock.now_ms();
    let providers: BTreeMap<String, Value> = state
        .providers
        .all()
        .into_iter()
        .map(|p| {
            let (total, counts) = super::admin::key_counts(&state, &p.spec.name, now);
            let summary =
                json!({"enabled": p.is_enabled(), "kind": p.spec.kind, "keys": {"total": total, "byStatus": counts}});
            (p.spec.name.to_string(), summary)
        })
        .collect();
    let (status, storage, storage_error, since) = match state.store_health.status() {
        StoreStatus::Ok => (StatusCode::OK, "ok", None, None),
        StoreStatus::Degraded { since, reason } => {
            (StatusCode::SERVICE_UNAVAILABLE, "degraded", Some(reason), Some(since))
        }
    };
    let body = Json(json!({
        "status": if status.is_success() { "ok" } else { "degraded" },
        "service": "ollama-pool",
        "version": env!("CARGO_PKG_VERSION"),
        "storage": storage,
        "storageBackend": state.storage,
        "storageError": storage_error,
        "storageFailingSince": iso(since),
        "startedAt": iso(Some(state.started_at)),
        "uptimeSeconds": (now - state.started_at).max(0) / 1000,
        "defaultProvider": state.providers.default,
        "providers": providers,
    }));
    (status, body)
}
