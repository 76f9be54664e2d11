//! `GET /admin/settings`: the console's Settings page. The effective configuration with secrets
//! masked, version, uptime, the store, and warnings (a weak admin token, no master key).

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use serde_json::Value;

use crate::console::about::Warning;
use crate::extract::Admin;
use crate::routes::health::{StorageView, storage_view};
use crate::state::AppState;
use crate::wire::iso;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SettingsView<'a> {
    version: &'a str,
    started_at: Option<String>,
    uptime_seconds: i64,
    storage: StorageView,
    warnings: &'a [Warning],
    config: &'a Value,
}

pub async fn show(_: Admin, State(state): State<AppState>) -> Json<Value> {
    let now = state.gateway.clock.now_ms();
    let about = &state.about;
    let view = SettingsView {
        version: &about.version,
        started_at: iso(Some(state.started_at)),
        uptime_seconds: (now - state.started_at).max(0) / 1000,
        storage: storage_view(&state),
        warnings: &about.warnings,
        config: &about.config,
    };
    Json(serde_json::to_value(view).unwrap_or(Value::Null))
}
