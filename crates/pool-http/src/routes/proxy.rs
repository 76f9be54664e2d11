//! The proxied endpoints: OpenAI (`/v1/chat/completions`, `/v1/completions`, `/v1/embeddings`)
//! and Ollama's native API (`/api/chat`, `/api/generate`, `/api/embed`, `/api/embeddings`).
//!
//! The handler reads only `model` and `stream` from the body, to validate the request; the body
//! goes upstream byte for byte. The token's allow-list and limits are checked once the model is
//! known, before anything goes upstream ([`super::limits`]).

use std::borrow::Cow;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::header::{ACCEPT, CACHE_CONTROL, CONTENT_TYPE};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method};
use axum::response::{IntoResponse, Response};
use pool_core::provider::ProviderSpec;
use pool_core::proxy::{self, ForwardRequest};
use pool_core::token::ClientToken;
use serde::Deserialize;

use super::limits;
use crate::error::ApiError;
use crate::extract::{bearer, read_body};
use crate::state::{AppState, ProviderRuntime};

/// Longest model name accepted; model names are shown on dashboards and must stay data.
const MAX_MODEL_LEN: usize = 256;

/// Deepest JSON nesting accepted. serde skips unknown fields without a depth limit, so the
/// gateway checks depth itself rather than forward a body built to exhaust a parser upstream.
const MAX_DEPTH: usize = 64;

pub async fn openai(
    State(state): State<AppState>,
    provider: Option<Path<String>>,
    request: Request,
) -> Result<Response, ApiError> {
    let rest = path_after(&request, "/v1/");
    proxy(&state, provider, request, |spec| Some(spec.openai_url(&rest))).await
}

pub async fn native(
    State(state): State<AppState>,
    provider: Option<Path<String>>,
    request: Request,
) -> Result<Response, ApiError> {
    let rest = path_after(&request, "/api/");
    proxy(&state, provider, request, |spec| spec.native_url(&rest)).await
}

/// The part of the path after `marker` (`chat/completions` of `/openrouter/v1/chat/completions`).
fn path_after(request: &Request, marker: &str) -> String {
    request.uri().path().rsplit_once(marker).map_or("", |(_, rest)| rest).to_owned()
}

async fn proxy(
    state: &AppState,
    provider: Option<Path<String>>,
    request: Request,
    upstream_url: impl FnOnce(&ProviderSpec) -> Option<String>,
) -> Result<Response, ApiError> {
    let (provider, token) = authorized_provider(state, provider, request.headers())?;
    let url = upstream_url(&provider.spec).ok_or_else(|| {
        ApiError::not_found(format!("Provider '{}' does not speak the Ollama native API", provider.spec.name))
    })?;
    forward(state, &provider, &token, url, request).await
}

/// Resolves the provider, authenticates the token for it, and checks that it is enabled, in
/// that order: an anonymous caller learns nothing about the pool.
pub(crate) fn authorized_provider(
    state: &AppState,
    provider: Option<Path<String>>,
    headers: &HeaderMap,
) -> Result<(Arc<ProviderRuntime>, Arc<ClientToken>), ApiError> {
    let name = provider.as_ref().map_or(state.providers.default.as_ref(), |Path(p)| p.as_str());
    let provider =
        state.providers.get(name).ok_or_else(|| ApiError::not_found(format!("Unknown provider '{name}'")))?;
    let token =
        state.registry.tokens.authenticate(bearer(headers), &provider.spec.name, state.gateway.clock.now_ms())?;
    if !provider.is_enabled() {
        return Err(ApiError::unavailable(format!(
            "Provider '{}' is disabled by the administrator",
            provider.spec.name
        )));
    }
    Ok((Arc::clone(provider), token))
}

async fn forward(
    state: &AppState,
    provider: &ProviderRuntime,
    token: &ClientToken,
    url: String,
    request: Request,
) -> Result<Response, ApiError> {
    let (parts, body) = request.into_parts();
    let body = read_body(&parts.headers, body, state.settings.max_body_bytes).await?;
    let model = validate(&body)?;
    let admission = limits::admit(state, token, &token.settings(), &model)?;
    let headers = upstream_headers(provider, &parts.headers);
    let delivery = state
        .gateway
        .forward(ForwardRequest {
            provider: provider.spec.name.clone(),
            model: Some(model),
            method: Method::POST,
            url,
            headers,
            body,
        })
        .await?;
    Ok(limits::respond_admitted(delivery, admission, state.gateway.clock.now_ms()))
}

#[derive(Deserialize)]
struct Peek<'a> {
    #[serde(borrow)]
    model: Option<Cow<'a, str>>,
    #[serde(rename = "stream")]
    _stream: Option<bool>,
}

/// Checks what routing relies on: a JSON object with a sane `model` and a boolean `stream`.
fn validate(body: &[u8]) -> Result<String, ApiError> {
    if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(ApiError::bad_request("The request body must be a JSON object"));
    }
    if nesting_exceeds(body, MAX_DEPTH) {
        return Err(ApiError::bad_request(format!("The request body is nested deeper than {MAX_DEPTH} levels")));
    }
    let peek: Peek<'_> =
        serde_json::from_slice(body).map_err(|e| ApiError::bad_request(format!("Invalid JSON body: {e}")))?;
    let model = peek.model.ok_or_else(|| ApiError::invalid_param("model", "The 'model' field is required"))?;
    if model.is_empty() || model.chars().count() > MAX_MODEL_LEN || model.chars().any(char::is_control) {
        return Err(ApiError::invalid_param(
            "model",
            format!("'model' must be 1-{MAX_MODEL_LEN} characters without control characters"),
        ));
    }
    Ok(model.into_owned())
}

/// Whether JSON nesting (objects and arrays, outside strings) goes deeper than `limit`.
fn nesting_exceeds(body: &[u8], limit: usize) -> bool {
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for &b in body {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'{' | b'[' => {
                depth += 1;
                if depth > limit {
                    return true;
                }
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
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
        if let (Ok(name), Ok(value)) = (HeaderName::try_from(name.as_str()), HeaderValue::try_from(value.as_str())) {
            headers.insert(name, value);
        }
    }
    headers
}

pub(crate) fn respond(delivery: proxy::Delivery) -> Response {
    let streaming = matches!(delivery.body, proxy::Body::Stream(_));
    let body = match delivery.body {
        proxy::Body::Full(bytes) => Body::from(bytes),
        proxy::Body::Stream(stream) => Body::from_stream(stream),
    };
    let mut response = (delivery.status, delivery.headers, body).into_response();
    if streaming {
        let headers = response.headers_mut();
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        headers.insert(HeaderName::from_static("x-accel-buffering"), HeaderValue::from_static("no"));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_objects_with_a_sane_model_pass() {
        assert!(validate(br#" {"model":"llama3","stream":true,"messages":[]}"#).is_ok());
        assert!(validate(br#"{"model":"x","extra":{"deep":[1,2,{"a":null}]}}"#).is_ok());
        for bad in [
            &br#"["llama3", true]"#[..],
            br#"{"stream":true}"#,
            br#"{"model":42}"#,
            br#"{"model":"x","stream":"true"}"#,
            br#"{"model":""}"#,
            br#"{"model":"a\u0000b"}"#,
            br#"{"model":"x","model":"y"}"#,
            b"{\"model\":\"\xff\"}",
            b"{not json",
            b"",
        ] {
            assert!(validate(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
        let deep = format!("{{\"model\":\"x\",\"a\":{}{}}}", "[".repeat(65), "]".repeat(65));
        assert!(validate(deep.as_bytes()).is_err(), "nesting beyond the limit is refused");
        let fine = format!("{{\"model\":\"x\",\"a\":{}{},\"s\":\"[[[[\\\"{{{{\"}}", "[".repeat(60), "]".repeat(60));
        assert!(validate(fine.as_bytes()).is_ok(), "brackets inside strings do not count");
    }
}
