//! The web console: its pages and static files, embedded in the binary, and the admin's
//! browser sessions.
//!
//! - [`assets`]: the files of `crates/pool-http/assets/` (plain ES modules, CSS, vendored
//!   libraries; no build step), embedded with `rust-embed` (read from disk in debug builds, so a
//!   reload shows an edit), served with their type, an `ETag` and caching by kind.
//! - [`session`]: `POST/GET/DELETE /admin/session` (the admin token exchanged for an `HttpOnly`
//!   cookie, CSRF token included), `GET /admin/sessions`, `DELETE /admin/sessions/{id}`, and the
//!   cookie half of the admin credential ([`crate::extract::Admin`]).
//!
//! Every console answer carries a strict Content-Security-Policy (no inline script or style),
//! `Referrer-Policy: no-referrer` and `X-Frame-Options: DENY`; the pages insert every value from
//! the API as text. Cookie-bound answers never carry `Access-Control-Allow-Origin`.

pub mod about;
pub mod assets;
pub mod session;

use axum::http::header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY, COOKIE, REFERRER_POLICY, X_FRAME_OPTIONS};
use axum::http::{HeaderMap, HeaderValue, Request};

/// The policy of every console page: scripts, styles, images and calls from this origin only.
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
     connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

/// The security headers of a console answer.
pub fn secure(headers: &mut HeaderMap) {
    headers.insert(CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    headers.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
}

/// Whether an answer must go without CORS headers: the session routes, the console's own files,
/// and any request that carries the session cookie. (The API stays open to any origin for
/// bearer tokens, which a browser never sends by itself.)
pub fn cookie_bound<B>(request: &Request<B>) -> bool {
    let path = request.uri().path();
    path.starts_with("/admin/session")
        || is_console_path(path)
        || request.headers().get_all(COOKIE).iter().any(|v| session::cookie_in(v.as_bytes()).is_some())
}

/// The paths of the console's pages and files.
pub fn is_console_path(path: &str) -> bool {
    matches!(path, "/" | "/dashboard" | "/stats" | "/docs" | "/favicon.ico") || path.starts_with("/assets/")
}

/// `Cache-Control` for an answer that must be checked again on every use.
pub(crate) fn no_cache(headers: &mut HeaderMap) {
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
}
