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
use pool_core::provider::{ProviderKind, ProviderName};
use pool_core::store_health::StoreStatus;
use serde::Serialize;
use utoipa::ToSchema;

use super::admin::KeyCounts;

use crate::state::AppState;
use crate::wire::iso;

/// Liveness and the store's state; the same body with 200 (`ok`) or 503 (`degraded`).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Health {
    /// `ok`, or `degraded` while store writes fail.
    status: &'static str,
    /// Always `ollama-pool`.
    service: &'static str,
    version: &'static str,
    /// The store: `ok` or `degraded`.
    storage: &'static str,
    /// `sqlite` or `postgres`.
    storage_backend: &'static str,
    /// A fixed phrase naming the failure, while degraded.
    storage_error: Option<&'static str>,
    storage_failing_since: Option<String>,
    started_at: Option<String>,
    uptime_seconds: i64,
    #[schema(value_type = String)]
    default_provider: ProviderName,
    /// Every configured provider, by name.
    providers: BTreeMap<String, ProviderHealth>,
}

#[derive(Serialize, ToSchema)]
pub struct ProviderHealth {
    enabled: bool,
    /// `ollama` or `openai`.
    #[schema(value_type = String)]
    kind: ProviderKind,
    keys: KeyCounts,
}

#[utoipa::path(get, path = "/health", tag = "public",
    responses(
        (status = 200, description = "Up, and the store takes writes", body = Health),
        (status = 503, description = "Up and serving, but store writes fail", body = Health),
    ))]
pub async fn show(State(state): State<AppState>) -> (StatusCode, Json<Health>) {
    let now = state.gateway.clock.now_ms();
    let providers = state
        .providers
        .all()
        .into_iter()
        .map(|p| {
            let keys = KeyCounts::of(&state, &p.spec.name, now);
            (p.spec.name.to_string(), ProviderHealth { enabled: p.is_enabled(), kind: p.spec.kind, keys })
        })
        .collect();
    let storage = storage_view(&state);
    let status = if storage.status == "ok" { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    let body = Json(Health {
        status: if status.is_success() { "ok" } else { "degraded" },
        service: "ollama-pool",
        version: env!("CARGO_PKG_VERSION"),
        storage: storage.status,
        storage_backend: storage.backend,
        storage_error: storage.error,
        storage_failing_since: storage.failing_since,
        started_at: iso(Some(state.started_at)),
        uptime_seconds: (now - state.started_at).max(0) / 1000,
        default_provider: state.providers.default.clone(),
        providers,
    });
    (status, body)
}

/// The store as `/health` and the Settings page report it.
#[derive(Debug, Serialize, ToSchema)]
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
