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

use serde::Serialize;

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
    let storage = storage_view(&state);
    let status = if storage.status == "ok" { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    let body = Json(json!({
        "status": if status.is_success() { "ok" } else { "degraded" },
        "service": "ollama-pool",
        "version": env!("CARGO_PKG_VERSION"),
        "storage": storage.status,
        "storageBackend": storage.backend,
        "storageError": storage.error,
        "storageFailingSince": storage.failing_since,
        "startedAt": iso(Some(state.started_at)),
        "uptimeSeconds": (now - state.started_at).max(0) / 1000,
        "defaultProvider": state.providers.default,
        "providers": providers,
    }));
    (status, body)
}

/// The store as `/health` and the Settings page report it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StorageView {
    /// "sqlite" or "postgres".
    pub backend: &'static str,
    /// "ok", or "degraded" while writes fail.
    pub status: &'static str,
    /// A fixed phrase naming the failure, while degraded.
    pub error: Option<&'static str>,
    pub failing_since: Option<String>,
}

pub fn storage_view(state: &AppState) -> StorageView {
    let (status, error, since) = match state.store_health.status() {
        StoreStatus::Ok => ("ok", None, None),
        StoreStatus::Degraded { since, reason } => ("degraded", Some(reason), Some(since)),
    };
    StorageView { backend: state.storage, status, error, failing_since: iso(since) }
}
