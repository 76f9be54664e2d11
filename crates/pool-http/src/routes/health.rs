//! `GET /health`: liveness, the real version and uptime, and per provider whether it is enabled
//! and how many keys are in each state. No secrets, no key material.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use pool_core::key::KeyStatus;
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
            let keys = state.gateway.pools.pool(&p.spec.name).map(|pool| pool.snapshot()).unwrap_or_default();
            let mut counts: BTreeMap<&str, usize> =
                [KeyStatus::Active, KeyStatus::Cooling, KeyStatus::Failed, KeyStatus::Disabled, KeyStatus::Expired]
                    .iter()
                    .map(|s| (s.as_str(), 0))
                    .collect();
            for key in keys.iter() {
                *counts.entry(key.status(now).as_str()).or_default() += 1;
            }
            let summary = json!({"enabled": p.is_enabled(), "kind": p.spec.kind, "keys": {"total": keys.len(), "byStatus": counts}});
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
