//! Model lists: `/v1/models` (OpenAI shape, cached per provider, never shared between providers)
//! and `/api/tags` (Ollama's native list, passed through). A token with a model allow-list sees
//! only the models it may use.

use axum::extract::{Path, Request, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use pool_core::models::{retain_models, to_openai_list};
use pool_core::provider::ProviderKind;
use pool_core::proxy::{Body, Delivery, ForwardRequest};
use pool_core::token::ClientToken;

use super::proxy::{authorized_provider, respond};
use crate::error::ApiError;
use crate::state::{AppState, ProviderRuntime};

pub async fn list(
    State(state): State<AppState>,
    provider: Option<Path<String>>,
    request: Request,
) -> Result<Response, ApiError> {
    let (provider, token) = authorized_provider(&state, provider.as_ref(), request.headers())?;
    let body = allowed_only(&token, provider.spec.kind, models_json(&state, &provider).await?);
    Ok(([(CONTENT_TYPE, HeaderValue::from_static("application/json"))], body).into_response())
}

pub async fn native_tags(
    State(state): State<AppState>,
    provider: Option<Path<String>>,
    request: Request,
) -> Result<Response, ApiError> {
    let (provider, token) = authorized_provider(&state, provider.as_ref(), request.headers())?;
    let url = provider.spec.native_url("tags").ok_or_else(|| ApiError::not_found("This provider has no native API"))?;
    let request = ForwardRequest {
        provider: provider.spec.name.clone(),
        model: None,
        method: Method::GET,
        url,
        headers: HeaderMap::new(),
        body: Bytes::new(),
        measure: None,
    };
    let delivery = state.gateway.forward(request).await?;
    let delivery = match delivery.body {
        Body::Full(body) if delivery.status.is_success() => {
            Delivery { body: Body::Full(allowed_only(&token, provider.spec.kind, body)), ..delivery }
        }
        _ => delivery,
    };
    Ok(respond(delivery))
}

/// The list narrowed to the token's allow-list, if it has one.
fn allowed_only(token: &ClientToken, kind: ProviderKind, list: Bytes) -> Bytes {
    let settings = token.settings();
    if settings.models.is_none() {
        return list;
    }
    retain_models(&list, |model| settings.allows_model(kind, model)).map_or(list, Bytes::from)
}

/// The provider's list in the OpenAI shape: from the cache while fresh, else fetched (one fetch
/// at a time per provider). When a refetch fails, a stale list is better than none.
pub async fn models_json(state: &AppState, provider: &ProviderRuntime) -> Result<Bytes, ApiError> {
    let ttl = state.settings.models_ttl_ms;
    if let Some(cached) = provider.models.fresh(state.gateway.clock.now_ms(), ttl) {
        return Ok(cached.body.clone());
    }
    let _single_flight = provider.models.refresh.lock().await;
    if let Some(cached) = provider.models.fresh(state.gateway.clock.now_ms(), ttl) {
        return Ok(cached.body.clone());
    }
    match fetch(state, provider).await {
        Ok(body) => {
            provider.models.put(state.gateway.clock.now_ms(), body.clone());
            Ok(body)
        }
        Err(e) => provider.models.get().map(|stale| stale.body.clone()).ok_or(e),
    }
}

async fn fetch(state: &AppState, provider: &ProviderRuntime) -> Result<Bytes, ApiError> {
    let spec = &provider.spec;
    let request = ForwardRequest {
        provider: spec.name.clone(),
        model: None,
        method: Method::GET,
        url: spec.models_url(),
        headers: HeaderMap::new(),
        body: Bytes::new(),
        measure: None,
    };
    let delivery = state.gateway.forward(request).await?;
    let upstream_error = |detail: String| {
        ApiError::new(
            StatusCode::BAD_GATEWAY,
            "upstream_error",
            format!("Could not fetch the model list of '{}': {detail}", spec.name),
        )
    };
    if !delivery.status.is_success() {
        return Err(upstream_error(format!("upstream answered {}", delivery.status.as_u16())));
    }
    let Body::Full(raw) = delivery.body else {
        return Err(upstream_error("unexpected stream".into()));
    };
    let created = state.gateway.clock.now_ms() / 1000;
    let list =
        to_openai_list(spec.kind, &raw, spec.name.as_ref(), created).map_err(|e| upstream_error(e.to_string()))?;
    Ok(Bytes::from(list.to_string()))
}

/// Refetches each list a client has asked for once it is half its TTL old, so that requests are
/// served from a fresh cache and never wait on the upstream. A list nobody asked for is never
/// fetched: that would spend pool keys for no one.
pub async fn refresh_models(state: &AppState) {
    let now = state.gateway.clock.now_ms();
    for provider in state.providers.all() {
        let wanted = provider.models.get().is_some();
        if !wanted || !provider.is_enabled() || provider.models.fresh(now, state.settings.models_ttl_ms / 2).is_some() {
            continue;
        }
        let _single_flight = provider.models.refresh.lock().await;
        match fetch(state, provider).await {
            Ok(body) => provider.models.put(state.gateway.clock.now_ms(), body),
            Err(e) => {
                tracing::warn!(provider = %provider.spec.name, error = %e.message, "refreshing the model list failed")
            }
        }
    }
}
