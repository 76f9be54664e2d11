//! The route table: every path the gateway answers, on one screen.
//!
//! OpenAI paths are served verbatim (`/v1/...`) for the default provider and under a provider
//! prefix (`/{provider}/v1/...`) for any configured one; Ollama's native paths likewise
//! (`/api/...`, `/{provider}/api/...`). Admin paths keep the shapes of the system we replace.
//! When the operator set any, the client routes pass [`limits::gate`] (blocked user agents,
//! requests per client address) before anything else; without, they pay nothing for it.
//! Every path here but the pages and assets is in `/openapi.json` ([`openapi`]); a test holds the
//! two together.

mod admin;
mod health;
mod limits;
mod metrics;
mod models;
mod openapi;

pub use admin::control::{background_health, recover};
pub use admin::providers::enabled_setting;
pub use models::refresh_models;
mod proxy;

use axum::Router;
use axum::middleware::from_fn_with_state;
use axum::routing::{delete, get, patch, post};

use crate::console::{assets, session};
use crate::edge::edge;
use crate::error::ApiError;
use crate::state::AppState;

pub fn router(state: AppState) -> Router {
    let router = Router::new()
        .route("/health", get(health::show))
        .route("/admin/api-keys", post(admin::keys::create).get(admin::keys::list).delete(admin::keys::delete_many))
        .route("/admin/api-keys/bulk", post(admin::bulk::run))
        .route("/admin/api-keys/export", get(admin::export::export))
        .route("/admin/api-keys/{id}", delete(admin::keys::delete_one).patch(admin::keys::update))
        .route("/admin/api-keys/import", post(admin::import::keys))
        .route("/admin/api-keys/import-from-txt", post(admin::import::text))
        .route("/admin/import", post(admin::import::accounts))
        .route("/admin/api-keys/import-with-validation", post(admin::validate::start))
        .route("/admin/jobs/{id}", get(admin::validate::job))
        .route("/admin/verify-key", post(admin::control::verify))
        .route("/admin/keys/stats", get(admin::stats::list))
        .route("/admin/stats", get(admin::traffic::admin_stats))
        .route("/admin/stats/trend", get(admin::trend::trend))
        .route("/admin/requests", get(admin::requests::list))
        .route("/admin/requests/{request_id}", get(admin::requests::show))
        .route("/admin/public-stats", get(admin::traffic::public_stats))
        .route("/stats.json", get(admin::traffic::public_stats))
        .route("/admin/api-keys/{id}/usage", get(admin::traffic::key_usage))
        .route("/admin/tokens/{id}/usage", get(admin::traffic::token_usage))
        .route("/admin/models/usage", get(admin::traffic::model_usage))
        .route("/metrics", get(metrics::export))
        .route("/openapi.json", get(openapi::serve))
        .route("/admin/keys/health-check", post(admin::control::health_check))
        .route("/admin/keys/enable", post(admin::control::enable))
        .route("/admin/keys/disable", post(admin::control::disable))
        .route("/admin/keys/reset-cooldowns", post(admin::control::reset_cooldowns))
        .route("/admin/providers", get(admin::providers::list))
        .route("/admin/providers/{name}", patch(admin::providers::update))
        .route("/admin/tokens", post(admin::tokens::create).get(admin::tokens::list))
        .route("/admin/tokens/bulk-revoke", post(admin::tokens::revoke_many))
        .route("/admin/tokens/{id}", delete(admin::tokens::revoke).patch(admin::tokens::update))
        .route("/admin/settings", get(admin::settings::show))
        .route("/admin/cache/stats", get(admin::cache::stats))
        .route("/admin/cache/clear", post(admin::cache::clear))
        .route("/admin/session", post(session::sign_in).get(session::show).delete(session::sign_out))
        .route("/admin/sessions", get(session::list))
        .route("/admin/sessions/{id}", delete(session::revoke))
        .route("/", get(assets::landing))
        .route("/dashboard", get(assets::dashboard))
        .route("/stats", get(assets::stats_page))
        .route("/docs", get(assets::docs_page))
        .route("/favicon.ico", get(assets::favicon))
        .route("/assets/{*path}", get(assets::file));
    let mut client = Router::new();
    for prefix in ["", "/{provider}"] {
        client = client
            .route(&format!("{prefix}/v1/chat/completions"), post(proxy::openai))
            .route(&format!("{prefix}/v1/completions"), post(proxy::openai))
            .route(&format!("{prefix}/v1/embeddings"), post(proxy::openai))
            .route(&format!("{prefix}/v1/models"), get(models::list))
            .route(&format!("{prefix}/api/chat"), post(proxy::native))
            .route(&format!("{prefix}/api/generate"), post(proxy::native))
            .route(&format!("{prefix}/api/embed"), post(proxy::native))
            .route(&format!("{prefix}/api/embeddings"), post(proxy::native))
            .route(&format!("{prefix}/api/tags"), get(models::native_tags));
    }
    if !state.settings.clients.is_empty() {
        client = client.route_layer(from_fn_with_state(state.clone(), limits::gate));
    }
    router
        .merge(client)
        .fallback(|| async { ApiError::not_found("Unknown route") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(axum::http::StatusCode::METHOD_NOT_ALLOWED, "invalid_request_error", "Method not allowed")
        })
        .layer(from_fn_with_state(state.clone(), edge))
        .with_state(state)
}

/// The separate metrics listener: `/metrics` only, without a token.
pub fn metrics_router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(metrics::open_export))
        .fallback(|| async { ApiError::not_found("Unknown route") })
        .layer(axum::middleware::from_fn(crate::edge::nosniff_only))
        .with_state(state)
}
