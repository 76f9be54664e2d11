//! CORS for browsers: any origin may call the API with a bearer token. The console's
//! cookie-bound answers get none of these headers (`console::cookie_bound`). Every header value is built once; a request pays for a few header inserts.
//!
//! (tower-http's `CorsLayer` did the same but cloned its whole configuration, vectors
//! included, on every request: about 3 % of the gateway's CPU per proxied request.)

use std::sync::LazyLock;

use axum::http::header::{
    ACCEPT, ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS, ACCESS_CONTROL_ALLOW_ORIGIN,
    ACCESS_CONTROL_EXPOSE_HEADERS, ACCESS_CONTROL_MAX_AGE, AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER, VARY,
};
use axum::http::{HeaderMap, HeaderName, HeaderValue};

use crate::attempts::X_POOL_ATTEMPTS;
use crate::cache::X_CACHE;
use crate::request_id::X_REQUEST_ID;

/// The headers a browser script may read from an answer.
static EXPOSED: LazyLock<HeaderValue> = LazyLock::new(|| {
    joined([RETRY_AFTER, X_REQUEST_ID, X_CACHE, X_POOL_ATTEMPTS].into_iter().chain(crate::wire::rate_header_names()))
});

/// The headers a browser may send.
static ALLOWED: LazyLock<HeaderValue> =
    LazyLock::new(|| joined([AUTHORIZATION, CONTENT_TYPE, ACCEPT, X_REQUEST_ID].into_iter()));

/// A preflight may be cached by the browser this long (seconds).
const MAX_AGE: &str = "600";
const METHODS: &str = "GET,POST,PUT,PATCH,DELETE,OPTIONS";
const VARY_VALUE: &str = "origin, access-control-request-method, access-control-request-headers";

fn joined(names: impl Iterator<Item = HeaderName>) -> HeaderValue {
    let list = names.map(|name| name.as_str().to_owned()).collect::<Vec<_>>().join(",");
    HeaderValue::try_from(list).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// The headers of every answer.
pub fn decorate(headers: &mut HeaderMap) {
    headers.insert(ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    headers.insert(ACCESS_CONTROL_EXPOSE_HEADERS, EXPOSED.clone());
    headers.append(VARY, HeaderValue::from_static(VARY_VALUE));
}

/// The headers of the answer to a preflight (`OPTIONS`) request.
pub fn preflight(headers: &mut HeaderMap) {
    headers.insert(ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    headers.insert(ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static(METHODS));
    headers.insert(ACCESS_CONTROL_ALLOW_HEADERS, ALLOWED.clone());
    headers.insert(ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static(MAX_AGE));
    headers.append(VARY, HeaderValue::from_static(VARY_VALUE));
}
