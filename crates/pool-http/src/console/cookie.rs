//! The cookie half of the admin credential: the session a request's `pool_session` cookie
//! names, live at this moment, and for a write the session's CSRF token in `X-CSRF-Token`,
//! compared in constant time. [`crate::extract::Admin`] takes a bearer admin token or this;
//! the session routes (`session.rs`) create and end what this reads.

use axum::http::header::COOKIE;
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, StatusCode};
use pool_core::UnixMs;
use pool_core::secret::ct_eq;
use pool_core::session::{SessionRecord, csrf_token, looks_like_secret, secret_hash};

use crate::error::ApiError;
use crate::state::AppState;

/// The cookie's name.
pub const COOKIE_NAME: &str = "pool_session";
/// The header a cookie-authenticated write must carry.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// The session value of a `Cookie` header, if it has one of our form.
pub fn cookie_in(header: &[u8]) -> Option<&str> {
    let header = std::str::from_utf8(header).ok()?;
    header
        .split(';')
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE_NAME)
        .map(|(_, value)| value.trim())
        .filter(|value| looks_like_secret(value))
}

pub(crate) fn cookie(headers: &HeaderMap) -> Option<&str> {
    headers.get_all(COOKIE).iter().find_map(|v| cookie_in(v.as_bytes()))
}

/// A session the request's cookie names, live at `now`; an expired one is deleted on sight.
pub(crate) async fn current(
    state: &AppState,
    headers: &HeaderMap,
    now: UnixMs,
) -> Result<Option<(SessionRecord, String)>, ApiError> {
    let Some(secret) = cookie(headers) else { return Ok(None) };
    let store = &state.registry.store;
    let Some(session) = store.session_by_hash(&secret_hash(secret)).await? else { return Ok(None) };
    let policy = state.settings.console.sessions;
    if !policy.is_live(&session, now) {
        store.delete_session(&session.id).await?;
        return Ok(None);
    }
    if policy.worth_touching(&session, now) && !store.touch_session(&session.id, now).await? {
        return Ok(None);
    }
    let csrf = csrf_token(secret);
    Ok(Some((SessionRecord { last_seen: now.max(session.last_seen), ..session }, csrf)))
}

/// The cookie half of [`Admin`]: a live session, and for a write its CSRF token.
pub(crate) async fn admit(parts: &Parts, state: &AppState) -> Result<(), ApiError> {
    let now = state.gateway.clock.now_ms();
    let Some((_, csrf)) = current(state, &parts.headers, now).await? else {
        return Err(ApiError::unauthorized("Admin token or console session required"));
    };
    if matches!(parts.method, Method::GET | Method::HEAD) {
        return Ok(());
    }
    check_csrf(&parts.headers, &csrf)
}

pub(crate) fn check_csrf(headers: &HeaderMap, csrf: &str) -> Result<(), ApiError> {
    let presented = headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok()).unwrap_or("");
    if ct_eq(presented, csrf) {
        Ok(())
    } else {
        Err(ApiError {
            code: Some("csrf_failed"),
            ..ApiError::new(StatusCode::FORBIDDEN, "permission_error", "Missing or wrong X-CSRF-Token for this session")
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cookie_is_found_among_others_and_junk_is_ignored() {
        let secret = "ab".repeat(32);
        let header = format!("theme=dark; {COOKIE_NAME}={secret}; other=1");
        assert_eq!(cookie_in(header.as_bytes()), Some(secret.as_str()));
        assert_eq!(cookie_in(format!("{COOKIE_NAME}=short").as_bytes()), None);
        assert_eq!(cookie_in(b"x=1"), None);
    }
}
