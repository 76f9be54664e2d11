//! `GET /admin/settings`: the console's Settings page. The effective configuration with secrets
//! masked, version, uptime, the store, and warnings (a weak admin token, no master key).

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use crate::console::about::Warning;
use crate::extract::Admin;
use crate::routes::health::{StorageView, storage_view};
use crate::state::AppState;
use crate::wire::iso;

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SettingsView {
    version: String,
    started_at: Option<String>,
    uptime_seconds: i64,
    storage: StorageView,
    warnings: Vec<Warning>,
    /// The effective configuration, section by section as in `ollama-pool.toml`, every secret
    /// masked.
    #[schema(value_type = Object)]
    config: Value,
}

#[utoipa::path(get, path = "/admin/settings", tag = "admin",
    responses((status = 200, description = "The running gateway's settings", body = SettingsView)))]
pub async fn show(_: Admin, State(state): State<AppState>) -> Json<SettingsView> {
    let now = state.gateway.clock.now_ms();
    let about = &state.about;
    let view = SettingsView {
        version: about.version.clone(),
        started_at: iso(Some(state.started_at)),
        uptime_seconds: (now - state.started_at).max(0) / 1000,
        storage: storage_view(&state),
        warnings: about.warnings.clone(),
        config: about.config.clone(),
    };
    Json(view)
}
