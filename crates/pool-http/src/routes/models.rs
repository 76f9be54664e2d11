//! Model lists: `/v1/models` (OpenAI shape) and `/api/tags` (Ollama's shape), per provider,
//! never mixed between providers. A token with a model allow-list sees only the models it may use.
//!
//! A list is what the pool serves: the union of the models discovered on the provider's keys
//! ([`pool_core::pool::KeyPool::served_models`]), not one key's view. Only while no key has been
//! discovered is the list fetched through the gateway (spending one key). Either way it is cached
//! per provider and shape, rebuilt after its TTL or as soon as the pool's keys or their models
//! change (the pool's model generation), and refreshed in the background once a client has asked
//! for it.

use axum::extract::{Path, Request, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use pool_core::models::{ServedModel, openai_list, retain_models, to_openai_list};
use pool_core::provider::ProviderKind;
use pool_core::proxy::{Body, ForwardRequest};
use pool_core::token::ClientToken;
use serde_json::{Value, json};

use super::proxy::authorized_provider;
use crate::error::ApiError;
use crate::state::{AppState, CachedModels, ModelList, ProviderRuntime};
use crate::wire::iso;

pub async fn list(
    State(state): State<AppState>,
    provider: Option<Path<String>>,
    request: Request,
) -> Result<Response, ApiError> {
    let (provider, token) = authorized_provider(&state, provider.as_ref(), request.headers())?;
    let body = models_body(&state, &provider, ModelList::OpenAi).await?;
    Ok(json_response(allowed_only(&token, provider.spec.kind, body)))
}

pub async fn native_tags(
    State(state): State<AppState>,
    provider: Option<Path<String>>,
    request: Request,
) -> Result<Response, ApiError> {
    let (provider, token) = authorized_provider(&state, provider.as_ref(), request.headers())?;
    tags_url(&provider)?;
    let body = models_body(&state, &provider, ModelList::Tags).await?;
    Ok(json_response(allowed_only(&token, provider.spec.kind, body)))
}

fn json_response(body: Bytes) -> Response {
    ([(CONTENT_TYPE, HeaderValue::from_static("application/json"))], body).into_response()
}

fn tags_url(provider: &ProviderRuntime) -> Result<String, ApiError> {
    provider.spec.native_url("tags").ok_or_else(|| ApiError::not_found("This provider has no native API"))
}

/// The list narrowed to the token's allow-list, if it has one.
fn allowed_only(token: &ClientToken, kind: ProviderKind, list: Bytes) -> Bytes {
    let settings = token.settings();
    if settings.models.is_none() {
        return list;
    }
    retain_models(&list, |model| settings.allows_model(kind, model)).map_or(list, Bytes::from)
}

/// The provider's list: from the cache while fresh, else built (one build at a time per
/// provider). When a rebuild fails, a stale list is better than none.
pub async fn models_body(state: &AppState, provider: &ProviderRuntime, list: ModelList) -> Result<Bytes, ApiError> {
    let fresh = || {
        let now = state.gateway.clock.now_ms();
        provider.models.fresh(list, now, state.settings.models_ttl_ms, generation(state, provider))
    };
    if let Some(cached) = fresh() {
        return Ok(cached.body.clone());
    }
    let _single_flight = provider.models.refresh.lock().await;
    if let Some(cached) = fresh() {
        return Ok(cached.body.clone());
    }
    match build(state, provider, list).await {
        Ok(built) => {
            let body = built.body.clone();
            provider.models.put(list, built);
            Ok(body)
        }
        Err(e) => provider.models.get(list).map(|stale| stale.body.clone()).ok_or(e),
    }
}

/// The pool's model generation: it moves whenever its keys or their models change.
fn generation(state: &AppState, provider: &ProviderRuntime) -> u64 {
    state.gateway.pools.pool(&provider.spec.name).map_or(0, |pool| pool.models.generation())
}

/// The list from the keys' discovered models, or fetched through the gateway when no key has
/// been discovered yet.
async fn build(state: &AppState, provider: &ProviderRuntime, list: ModelList) -> Result<CachedModels, ApiError> {
    // Read before the keys: a change while building leaves the list stale, not wrongly fresh.
    let generation = generation(state, provider);
    let now = state.gateway.clock.now_ms();
    let served = state.gateway.pools.pool(&provider.spec.name).and_then(|pool| pool.served_models(now));
    let body = match served {
        Some(models) => Bytes::from(render(provider, list, &models).to_string()),
        None => fetch(state, provider, list).await?,
    };
    Ok(CachedModels { built_at: now, generation, body })
}

fn render(provider: &ProviderRuntime, list: ModelList, models: &[ServedModel]) -> Value {
    match list {
        ModelList::OpenAi => openai_list(models, provider.spec.name.as_ref()),
        ModelList::Tags => tags_list(models),
    }
}

/// Ollama's `/api/tags` shape from what discovery knows: each model's name and when it was seen.
/// Sizes, digests and details are per key upstream and not kept; they are left empty, with the
/// fields Ollama clients read still present.
fn tags_list(models: &[ServedModel]) -> Value {
    let entries: Vec<Value> = models
        .iter()
        .map(|m| {
            let modified_at = iso(Some(m.discovered_at));
            json!({"name": m.name, "model": m.name, "modified_at": modified_at, "size": 0, "digest": "", "details": {}})
        })
        .collect();
    json!({"models": entries})
}

/// The list as the upstream gives it through one pool key: the OpenAI list mapped to its shape,
/// Ollama's tags as they are (once checked to be a list).
async fn fetch(state: &AppState, provider: &ProviderRuntime, list: ModelList) -> Result<Bytes, ApiError> {
    let spec = &provider.spec;
    let url = match list {
        ModelList::OpenAi => spec.models_url(),
        ModelList::Tags => tags_url(provider)?,
    };
    let request = ForwardRequest {
        provider: spec.name.clone(),
        model: None,
        method: Method::GET,
        url,
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
    let mapped =
        to_openai_list(spec.kind, &raw, spec.name.as_ref(), created).map_err(|e| upstream_error(e.to_string()))?;
    Ok(match list {
        ModelList::OpenAi => Bytes::from(mapped.to_string()),
        ModelList::Tags => raw,
    })
}

/// Rebuilds each list a client has asked for once it is half its TTL old or the pool's models
/// changed, so that requests are served from a fresh cache and never wait on the upstream. A
/// list nobody asked for is never built: a fetch would spend pool keys for no one.
pub async fn refresh_models(state: &AppState) {
    for provider in state.providers.all().into_iter().filter(|p| p.is_enabled()) {
        for list in ModelList::ALL {
            let (now, half_ttl) = (state.gateway.clock.now_ms(), state.settings.models_ttl_ms / 2);
            let wanted = provider.models.get(list).is_some();
            if !wanted || provider.models.fresh(list, now, half_ttl, generation(state, provider)).is_some() {
                continue;
            }
            let _single_flight = provider.models.refresh.lock().await;
            match build(state, provider, list).await {
                Ok(built) => provider.models.put(list, built),
                Err(e) => {
                    tracing::warn!(provider = %provider.spec.name, error = %e.message, "refreshing a model list failed")
                }
            }
        }
    }
}
