//! The cache's two points in a proxied request: [`lookup`] after the body is validated, and
//! [`Lookup::offer`] once the gateway has an answer. The proxy handler calls nothing else.

use axum::body::Body;
use axum::http::HeaderValue;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use pool_core::ids::TokenId;
use pool_core::provider::ProviderName;
use pool_core::proxy::{self, Delivery};

use super::{CacheKey, CachedResponse, KeyParts, X_CACHE};
use crate::state::AppState;

/// What the cache made of a request.
pub(crate) enum Lookup {
    /// The cache is off or the request is not cacheable: no header, nothing stored.
    Skip,
    /// The answer, ready to send; no upstream is contacted.
    Hit(Response),
    /// Not cached: the upstream's answer is offered back under this key.
    Miss(CacheKey),
}

/// Looks the request up. `url` is the upstream URL, which names the route.
pub(crate) fn lookup(state: &AppState, provider: &ProviderName, url: &str, token: TokenId, body: &[u8]) -> Lookup {
    let cache = &state.cache;
    if !cache.enabled() {
        return Lookup::Skip;
    }
    let now = state.gateway.clock.now_ms();
    let token = cache.settings().per_token.then_some(token);
    let Some(key) = CacheKey::of(KeyParts { provider: provider.as_ref(), route: url, body, token }) else {
        return Lookup::Skip;
    };
    match cache.get(&key, now) {
        Some(hit) => Lookup::Hit(hit_response(hit)),
        None => Lookup::Miss(key),
    }
}

impl Lookup {
    /// After a miss, stores a whole `200` answer, and returns `x-cache: MISS` for any whole
    /// answer (a stream is neither stored nor marked).
    pub(crate) fn offer(self, state: &AppState, delivery: &Delivery) -> Option<HeaderValue> {
        let Lookup::Miss(key) = self else { return None };
        let proxy::Body::Full(body) = &delivery.body else { return None };
        if delivery.status.as_u16() == 200 {
            let content_type = delivery.headers.get(CONTENT_TYPE).cloned();
            let response = CachedResponse { status: delivery.status, content_type, body: body.clone() };
            state.cache.put(key, response, state.gateway.clock.now_ms());
        }
        Some(HeaderValue::from_static("MISS"))
    }
}

fn hit_response(hit: CachedResponse) -> Response {
    let mut response = (hit.status, Body::from(hit.body)).into_response();
    let headers = response.headers_mut();
    if let Some(content_type) = hit.content_type {
        headers.insert(CONTENT_TYPE, content_type);
    }
    headers.insert(X_CACHE, HeaderValue::from_static("HIT"));
    response
}
