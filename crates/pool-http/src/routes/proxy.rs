//! The proxied endpoints: OpenAI (`/v1/chat/completions`, `/v1/completions`, `/v1/embeddings`)
//! and Ollama's native API (`/api/chat`, `/api/generate`, `/api/embed`, `/api/embeddings`).
//!
//! The handler reads only `model` and `stream` from the body, to validate the request; the body
//! goes upstream byte for byte. The model is canonicalised once, here
//! ([`pool_core::model_name::canonical`]): that name is routed, checked and counted, while the
//! client's spelling goes upstream as sent. The token's allow-list and limits are checked once the model is
//! known, before anything goes upstream ([`super::limits`]). The response cache (`crate::cache`)
//! answers before the gateway when it can, and is offered the gateway's answer after.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::http::header::{ACCEPT, CACHE_CONTROL, CONTENT_TYPE};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use pool_core::buffer::Reservation;
use pool_core::ids::TokenId;
use pool_core::limit::Admission;
use pool_core::model_name;
use pool_core::provider::{ProviderName, ProviderSpec};
use pool_core::proxy::{self, Delivery, ForwardRequest, Measure, ProxyError};
use pool_core::request::{self, Peeked};
use pool_core::stats::Outcome;
use pool_core::token::ClientToken;
use pool_core::usage::stream_usage_splice;

use super::limits;
use crate::attempts::{self, X_POOL_ATTEMPTS};
use crate::cache::X_CACHE;
use crate::cache::hook::{self as cache, Lookup};
use crate::capacity::Holding;
use crate::error::ApiError;
use crate::extract::{bearer, read_body};
use crate::state::{AppState, ProviderRuntime};

pub async fn openai(
    State(state): State<AppState>,
    provider: Option<Path<String>>,
    request: Request,
) -> Result<Response, ApiError> {
    let rest = path_after(&request, "/v1/");
    // OpenAI streams report usage only when asked: the gateway asks, and keeps the answer from
    // the client.
    let ask_usage = matches!(rest.as_str(), "chat/completions" | "completions");
    proxy(&state, provider, request, ask_usage, |spec| Some(spec.openai_url(&rest))).await
}

pub async fn native(
    State(state): State<AppState>,
    provider: Option<Path<String>>,
    request: Request,
) -> Result<Response, ApiError> {
    let rest = path_after(&request, "/api/");
    proxy(&state, provider, request, false, |spec| spec.native_url(&rest)).await
}

/// The part of the path after `marker` (`chat/completions` of `/openrouter/v1/chat/completions`).
fn path_after(request: &Request, marker: &str) -> String {
    request.uri().path().rsplit_once(marker).map_or("", |(_, rest)| rest).to_owned()
}

/// Everything the handler learned about a request before it went upstream.
struct Admitted {
    provider: Arc<ProviderRuntime>,
    token: Arc<ClientToken>,
    url: String,
    parts: axum::http::request::Parts,
    body: Bytes,
    /// The canonical model name (routing, allow-list, statistics); the body keeps the client's.
    model: String,
    /// The body asked for a stream (`"stream": true`).
    stream: bool,
    /// The token's limits' admission: its concurrency slot is held, and its usage charged, until
    /// the answer is complete.
    admission: Admission,
    /// The buffer budget the body takes, until it has gone upstream.
    reservation: Reservation,
}

async fn proxy(
    state: &AppState,
    provider: Option<Path<String>>,
    request: Request,
    ask_usage: bool,
    upstream_url: impl FnOnce(&ProviderSpec) -> Option<String>,
) -> Result<Response, ApiError> {
    let started_us = state.gateway.clock.monotonic_us();
    let mut seen = Seen::default();
    match admit(state, provider, request, upstream_url, &mut seen).await {
        Ok(admitted) => forward(state, admitted, ask_usage, started_us).await,
        Err(error) => {
            count_rejected(state, &seen, error.status, started_us);
            Err(error)
        }
    }
}

/// What is known of a request refused before it went upstream, to count it.
#[derive(Default)]
struct Seen {
    provider: Option<ProviderName>,
    token: Option<TokenId>,
}

/// Counts a request refused before it went upstream, under its provider and without a model
/// (a request for an unknown provider is not counted: its name is whatever the caller typed).
fn count_rejected(state: &AppState, seen: &Seen, status: StatusCode, started_us: i64) {
    if let Some(provider) = &seen.provider {
        state.gateway.count_answered(provider, "", seen.token, status.as_u16(), Outcome::Rejected, started_us);
    }
}

async fn admit(
    state: &AppState,
    provider: Option<Path<String>>,
    request: Request,
    upstream_url: impl FnOnce(&ProviderSpec) -> Option<String>,
    seen: &mut Seen,
) -> Result<Admitted, ApiError> {
    let provider = provider_named(state, provider.as_ref())?;
    seen.provider = Some(provider.spec.name.clone());
    let token = authorize(state, provider, request.headers())?;
    seen.token = Some(token.id);
    let provider = Arc::clone(provider);
    let url = upstream_url(&provider.spec).ok_or_else(|| {
        ApiError::not_found(format!("Provider '{}' does not speak the Ollama native API", provider.spec.name))
    })?;
    let (parts, body) = request.into_parts();
    let (body, reservation) = read_body(&parts.headers, body, state).await?;
    let Peeked { model, stream } = request::peek(&body)?;
    let model = model_name::canonical(provider.spec.kind, &model).into_owned();
    let admission = state.gateway.admit(&token, provider.spec.kind, &model).map_err(limits::token_refused)?;
    Ok(Admitted { provider, token, url, parts, body, model, stream, admission, reservation })
}

/// Resolves the provider, authenticates the token for it, and checks that it is enabled, in
/// that order: an anonymous caller learns nothing about the pool.
pub(crate) fn authorized_provider(
    state: &AppState,
    provider: Option<&Path<String>>,
    headers: &HeaderMap,
) -> Result<(Arc<ProviderRuntime>, Arc<ClientToken>), ApiError> {
    let provider = provider_named(state, provider)?;
    let token = authorize(state, provider, headers)?;
    Ok((Arc::clone(provider), token))
}

/// The provider of a path's prefix, or the default one.
fn provider_named<'a>(
    state: &'a AppState,
    provider: Option<&Path<String>>,
) -> Result<&'a Arc<ProviderRuntime>, ApiError> {
    let name = provider.map_or(state.providers.default.as_ref(), |Path(p)| p.as_str());
    state.providers.get(name).ok_or_else(|| ApiError::not_found(format!("Unknown provider '{name}'")))
}

/// Authenticates the token for `provider` (counting the request), then checks the provider is on.
fn authorize(state: &AppState, provider: &ProviderRuntime, headers: &HeaderMap) -> Result<Arc<ClientToken>, ApiError> {
    let token =
        state.registry.tokens.authenticate(bearer(headers), &provider.spec.name, state.gateway.clock.now_ms())?;
    if !provider.is_enabled() {
        return Err(ApiError::unavailable(format!(
            "Provider '{}' is disabled by the administrator",
            provider.spec.name
        )));
    }
    Ok(token)
}

async fn forward(state: &AppState, admitted: Admitted, ask_usage: bool, started_us: i64) -> Result<Response, ApiError> {
    let Admitted { provider, token, url, parts, body, model, stream, admission, mut reservation } = admitted;
    let rate_headers = crate::wire::rate_headers(&admission.info);
    let cached = match cache::lookup(state, &provider.spec.name, &url, token.id, &body) {
        Lookup::Hit(mut response) => {
            let (provider, token) = (&provider.spec.name, Some(token.id));
            state.gateway.count_answered(provider, &model, token, StatusCode::OK.as_u16(), Outcome::Cached, started_us);
            response.headers_mut().extend(rate_headers);
            return Ok(response);
        }
        other => other,
    };
    let headers = upstream_headers(&provider, &parts.headers);
    let (body, strip_usage) = match ask_usage && stream {
        true => with_stream_usage(state, body, &mut reservation).await?,
        false => (body, false),
    };
    let measure = Measure { token: Some(token.id), started_us, strip_usage, admission: Some(admission) };
    let result = state
        .gateway
        .forward(ForwardRequest {
            provider: provider.spec.name.clone(),
            model: Some(model),
            method: Method::POST,
            url,
            headers,
            body,
            measure: Some(measure),
        })
        .await;
    drop(reservation);
    let mut response = answer(state, cached, result);
    response.headers_mut().extend(rate_headers);
    Ok(response)
}

/// The body with `stream_options.include_usage` spliced in when it needs it (and whether it
/// did), the copy held in the buffer budget while both it and the client's body exist.
async fn with_stream_usage(
    state: &AppState,
    body: Bytes,
    reservation: &mut Reservation,
) -> Result<(Bytes, bool), ApiError> {
    let Some(splice) = stream_usage_splice(&body) else { return Ok((body, false)) };
    let spliced_len = splice.spliced_len(&body);
    crate::extract::hold_copy(state, reservation, spliced_len).await?;
    let spliced = splice.apply(&body);
    drop(body);
    reservation.release_to(spliced_len);
    Ok((spliced, true))
}

/// The client's answer, the gateway's error included, with `x-cache` (stored first, when the
/// cache takes it) and `x-pool-attempts` as configured.
fn answer(state: &AppState, cached: Lookup, result: Result<Delivery, ProxyError>) -> Response {
    let attempts = state.settings.attempts_header.then(|| attempts::header(&result));
    let mut response = match result {
        Ok(delivery) => {
            let x_cache = cached.offer(state, &delivery);
            let mut response = respond(delivery);
            response.headers_mut().extend(x_cache.map(|v| (X_CACHE, v)));
            response
        }
        Err(e) => ApiError::from(e).into_response(),
    };
    response.headers_mut().extend(attempts.map(|v| (X_POOL_ATTEMPTS, v)));
    response
}

/// What goes upstream besides the key: the body's type, what the client accepts, and the
/// provider's configured extra headers. Nothing else of the client's (no cookies, no
/// fingerprints) leaves the gateway.
fn upstream_headers(provider: &ProviderRuntime, client: &HeaderMap) -> HeaderMap {
    let mut headers = HeaderMap::with_capacity(2 + provider.spec.headers.len());
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if let Some(accept) = client.get(ACCEPT) {
        headers.insert(ACCEPT, accept.clone());
    }
    for (name, value) in &provider.spec.headers {
        headers.insert(name.clone(), value.clone());
    }
    headers
}

pub(crate) fn respond(delivery: proxy::Delivery) -> Response {
    let streaming = matches!(delivery.body, proxy::Body::Stream(_));
    let body = match delivery.body {
        proxy::Body::Full(bytes) => Body::from(bytes),
        proxy::Body::Stream(stream) => Body::from_stream(stream),
    };
    // A whole body holds its bytes of the buffer budget until it is sent.
    let body = match delivery.reservation {
        Some(reservation) => Body::new(Holding::new(body, reservation)),
        None => body,
    };
    let mut response = (delivery.status, delivery.headers, body).into_response();
    if streaming {
        let headers = response.headers_mut();
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        headers.insert(HeaderName::from_static("x-accel-buffering"), HeaderValue::from_static("no"));
    }
    response
}
