//! `GET /health`: liveness, the real version and uptime, and per provider whether it is enabled
//! and how many keys are in each state. No secrets, no key material.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use crate::state::AppState;
use crate::wire::iso;

pub async fn show(State(state): State<AppState>) -> Json<Value> {
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
    Json(json!({
        "status": "ok",
        "service": "ollama-pool",
        "version": env!("CARGO_PKG_VERSION"),
        "storage": state.storage,
        "startedAt": iso(Some(state.started_at)),
        "uptimeSeconds": (now - state.started_at).max(0) / 1000,
        "defaultProvider": state.providers.default,
        "providers": providers,
    }))
}
