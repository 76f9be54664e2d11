//! `/admin/providers`: the configured providers, and turning one off or on at run time. The
//! choice is persisted and wins over the configuration file at the next start.

use axum::Json;
use axum::extract::{Path, State};
use serde::Deserialize;
use serde_json::{Value, json};

use super::key_counts;
use crate::error::ApiError;
use crate::extract::{Admin, AppJson};
use crate::state::{AppState, ProviderRuntime};

/// The setting that remembers a provider's run-time switch.
pub fn enabled_setting(provider: &str) -> String {
    format!("provider.{provider}.enabled")
}

pub async fn list(_: Admin, State(state): State<AppState>) -> Json<Value> {
    let providers: Vec<Value> = state.providers.all().into_iter().map(|p| provider_json(&state, p)).collect();
    Json(json!({"providers": providers}))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Switch {
    enabled: bool,
}

pub async fn update(
    _: Admin,
    State(state): State<AppState>,
    Path(name): Path<String>,
    AppJson(body): AppJson<Switch>,
) -> Result<Json<Value>, ApiError> {
    let provider =
        state.providers.get(&name).ok_or_else(|| ApiError::not_found(format!("Unknown provider '{name}'")))?;
    state.registry.store.put_setting(&enabled_setting(&name), if body.enabled { "true" } else { "false" }).await?;
    provider.set_enabled(body.enabled);
    Ok(Json(provider_json(&state, provider)))
}

/// A provider with its keys by state, the models its pool serves now (the union of its keys'
/// discovered lists; `null` while none has been discovered), and the gateway's paths for it
/// (relative: the gateway does not know the address its clients reach it by).
fn provider_json(state: &AppState, provider: &ProviderRuntime) -> Value {
    let spec = &provider.spec;
    let now = state.gateway.clock.now_ms();
    let (total, by_status) = key_counts(state, &spec.name, now);
    let models = state.gateway.pools.pool(&spec.name).and_then(|p| p.served_models(now));
    let models: Option<Vec<String>> = models.map(|list| list.into_iter().map(|m| m.name).collect());
    let native = spec.native_url("").map(|_| format!("/{}/api", spec.name));
    json!({
        "name": spec.name,
        "kind": spec.kind,
        "url": spec.url,
        "enabled": provider.is_enabled(),
        "default": spec.name == state.providers.default,
        "keys": {"total": total, "byStatus": by_status},
        "models": models,
        "endpoints": {"openai": format!("/{}/v1", spec.name), "ollama": native},
    })
}
