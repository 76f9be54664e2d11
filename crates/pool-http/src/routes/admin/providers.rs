//! `/admin/providers`: the configured providers, and turning one off or on at run time. The
//! choice is persisted and wins over the configuration file at the next start.

use axum::Json;
use axum::extract::{Path, State};
use pool_core::provider::{ProviderKind, ProviderName};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::KeyCounts;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{Admin, AppJson};
use crate::state::{AppState, ProviderRuntime};

/// The setting that remembers a provider's run-time switch.
pub fn enabled_setting(provider: &str) -> String {
    format!("provider.{provider}.enabled")
}

#[derive(Serialize, ToSchema)]
pub struct ProviderList {
    providers: Vec<ProviderView>,
}

#[utoipa::path(get, path = "/admin/providers", tag = "admin",
    responses((status = 200, description = "Every configured provider", body = ProviderList)))]
pub async fn list(_: Admin, State(state): State<AppState>) -> Json<ProviderList> {
    let providers = state.providers.all().into_iter().map(|p| ProviderView::of(&state, p)).collect();
    Json(ProviderList { providers })
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Switch {
    /// `false`: the provider serves no request until switched on again.
    enabled: bool,
}

#[utoipa::path(patch, path = "/admin/providers/{name}", tag = "admin", request_body = Switch,
    params(("name" = String, Path, description = "The provider's name")),
    responses(
        (status = 200, description = "The provider, switched", body = ProviderView),
        (status = 404, description = "No provider of that name", body = ErrorBody),
    ))]
pub async fn update(
    _: Admin,
    State(state): State<AppState>,
    Path(name): Path<String>,
    AppJson(body): AppJson<Switch>,
) -> Result<Json<ProviderView>, ApiError> {
    let provider =
        state.providers.get(&name).ok_or_else(|| ApiError::not_found(format!("Unknown provider '{name}'")))?;
    state.registry.store.put_setting(&enabled_setting(&name), if body.enabled { "true" } else { "false" }).await?;
    provider.set_enabled(body.enabled);
    Ok(Json(ProviderView::of(&state, provider)))
}

/// A provider with its keys by state, the models its pool serves now (the union of its keys'
/// discovered lists; `null` while none has been discovered), and the gateway's paths for it
/// (relative: the gateway does not know the address its clients reach it by).
#[derive(Serialize, ToSchema)]
pub struct ProviderView {
    #[schema(value_type = String)]
    name: ProviderName,
    /// `ollama` or `openai` (any OpenAI-compatible upstream).
    #[schema(value_type = String)]
    kind: ProviderKind,
    /// The upstream's base URL.
    url: String,
    enabled: bool,
    /// The provider of the unprefixed paths (`/v1/...`, `/api/...`).
    default: bool,
    keys: KeyCounts,
    models: Option<Vec<String>>,
    endpoints: Endpoints,
}

/// The gateway's base paths for a provider.
#[derive(Serialize, ToSchema)]
pub struct Endpoints {
    openai: String,
    /// `null` when the provider has no native API.
    ollama: Option<String>,
}

impl ProviderView {
    fn of(state: &AppState, provider: &ProviderRuntime) -> Self {
        let spec = &provider.spec;
        let now = state.gateway.clock.now_ms();
        let models = state.gateway.pools.pool(&spec.name).and_then(|p| p.served_models(now));
        let native = spec.native_url("").map(|_| format!("/{}/api", spec.name));
        Self {
            name: spec.name.clone(),
            kind: spec.kind,
            url: spec.url.clone(),
            enabled: provider.is_enabled(),
            default: spec.name == state.providers.default,
            keys: KeyCounts::of(state, &spec.name, now),
            models: models.map(|list| list.into_iter().map(|m| m.name).collect()),
            endpoints: Endpoints { openai: format!("/{}/v1", spec.name), ollama: native },
        }
    }
}
