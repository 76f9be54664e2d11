//! Admin sessions for the browser: the admin token, presented once to `POST /admin/session`,
//! becomes an `HttpOnly; SameSite=Strict` cookie naming a server-side session (see
//! `pool_core::session`). The token itself is never stored by the page.
//!
//! A call made with the cookie is admin; a state-changing one (anything but `GET`/`HEAD`) must
//! also carry the session's CSRF token as `X-CSRF-Token`, compared in constant time. The session
//! routes answer the CSRF token, so the page keeps it in memory only. `GET /admin/session`
//! answers 200 whether or not a session exists, so a page never has to probe with a failing
//! request. Reading the cookie on every admin call is `cookie.rs`.

use std::net::{IpAddr, SocketAddr};

use axum::Json;
use axum::extract::{ConnectInfo, FromRequestParts, Path, State};
use axum::http::header::{SET_COOKIE, USER_AGENT};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use pool_core::session::{
    SESSION_BYTES, SessionPolicy, SessionRecord, csrf_token, format_secret, kept_agent, secret_hash,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::cookie::{COOKIE_NAME, check_csrf, cookie, current};
use crate::error::{ApiError, ErrorBody};
use crate::extract::{Admin, AppJson};
use crate::state::AppState;
use crate::wire::Success;
use crate::wire::iso;

/// Longest admin token the sign-in reads (the configured one is far shorter).
const MAX_TOKEN_BYTES: usize = 1024;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignIn {
    /// The admin token.
    token: String,
}

/// What the session routes answer: `signedIn`, and the session's fields while signed in.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SessionInfo {
    signed_in: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    csrf_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    created_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    expires_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    idle_minutes: Option<i64>,
}

impl SessionInfo {
    const SIGNED_OUT: Self =
        Self { signed_in: false, id: None, csrf_token: None, created_at: None, expires_at: None, idle_minutes: None };

    fn of(session: &SessionRecord, csrf: String, policy: &SessionPolicy) -> Self {
        Self {
            signed_in: true,
            id: Some(session.id.clone()),
            csrf_token: Some(csrf),
            created_at: iso(Some(session.created_at)),
            expires_at: iso(Some(policy.expires_at(session))),
            idle_minutes: Some(policy.idle_ms / 60_000),
        }
    }
}

/// `POST /admin/session {"token"}`: a session for the admin token, in a fresh cookie.
#[utoipa::path(post, path = "/admin/session", tag = "session", request_body = SignIn,
    responses(
        (status = 200, description = "Signed in: the session cookie is set (`HttpOnly`, `SameSite=Strict`); keep \
            `csrfToken` in memory and send it as `X-CSRF-Token` on every state-changing call", body = SessionInfo,
            headers(("set-cookie" = String, description = "`pool_session=...`"))),
        (status = 401, description = "Wrong admin token", body = ErrorBody),
    ))]
pub async fn sign_in(
    State(state): State<AppState>,
    Peer(peer): Peer,
    headers: HeaderMap,
    AppJson(body): AppJson<SignIn>,
) -> Result<Response, ApiError> {
    if body.token.len() > MAX_TOKEN_BYTES || !state.admin.verify(body.token.trim()) {
        return Err(ApiError::unauthorized("Wrong admin token"));
    }
    let now = state.gateway.clock.now_ms();
    let policy = state.settings.console.sessions;
    let store = &state.registry.store;
    store.prune_sessions(now - policy.idle_ms, now - policy.max_ms).await?;
    let mut random = [0u8; SESSION_BYTES];
    getrandom::fill(&mut random).map_err(|e| ApiError::internal("the OS random source failed", &e))?;
    let secret = format_secret(&random);
    let address = peer.map(|ip| {
        let forwarded = headers.get_all("x-forwarded-for").iter().filter_map(|v| v.to_str().ok());
        state.settings.clients.client_ip(ip, forwarded).to_string()
    });
    let session = SessionRecord {
        id: Uuid::now_v7().to_string(),
        hash: secret_hash(&secret),
        created_at: now,
        last_seen: now,
        user_agent: headers.get(USER_AGENT).and_then(|v| v.to_str().ok()).and_then(kept_agent),
        address,
    };
    store.insert_session(&session).await?;
    tracing::info!(session = %session.id, "console session opened");
    let secure = behind_tls(&state, peer, &headers);
    let max_age = policy.max_ms / 1000;
    let set =
        format!("{COOKIE_NAME}={secret}; HttpOnly; SameSite=Strict; Path=/; Max-Age={max_age}{}", secure_flag(secure));
    let info = SessionInfo::of(&session, csrf_token(&secret), &policy);
    Ok(with_cookie(Json(info).into_response(), &set))
}

/// `GET /admin/session`: 200 either way.
#[utoipa::path(get, path = "/admin/session", tag = "session",
    responses((status = 200, description = "Whether this browser has a live session (never an error)", body = SessionInfo)))]
pub async fn show(State(state): State<AppState>, headers: HeaderMap) -> Result<Json<SessionInfo>, ApiError> {
    let now = state.gateway.clock.now_ms();
    let policy = state.settings.console.sessions;
    Ok(Json(match current(&state, &headers, now).await? {
        Some((session, csrf)) => SessionInfo::of(&session, csrf, &policy),
        None => SessionInfo::SIGNED_OUT,
    }))
}

/// `DELETE /admin/session`: signs out on the server (CSRF token required) and clears the cookie.
#[utoipa::path(delete, path = "/admin/session", tag = "session",
    responses(
        (status = 200, description = "Signed out; the cookie is cleared", body = SessionInfo),
        (status = 403, description = "A session cookie without its `X-CSRF-Token`", body = ErrorBody),
    ))]
pub async fn sign_out(
    State(state): State<AppState>,
    Peer(peer): Peer,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let now = state.gateway.clock.now_ms();
    if let Some((session, csrf)) = current(&state, &headers, now).await? {
        check_csrf(&headers, &csrf)?;
        state.registry.store.delete_session(&session.id).await?;
        tracing::info!(session = %session.id, "console session closed");
    }
    let secure = behind_tls(&state, peer, &headers);
    let clear = format!("{COOKIE_NAME}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0{}", secure_flag(secure));
    Ok(with_cookie(Json(SessionInfo::SIGNED_OUT).into_response(), &clear))
}

/// One session as listed: never its secret.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ListedSession {
    id: String,
    created_at: Option<String>,
    last_seen: Option<String>,
    expires_at: Option<String>,
    user_agent: Option<String>,
    address: Option<String>,
    /// The session of this request.
    current: bool,
}

#[derive(Serialize, ToSchema)]
pub struct SessionList {
    sessions: Vec<ListedSession>,
}

/// `GET /admin/sessions`: the live sessions, newest first.
#[utoipa::path(get, path = "/admin/sessions", tag = "admin",
    responses((status = 200, description = "The live console sessions, newest first", body = SessionList)))]
pub async fn list(_: Admin, State(state): State<AppState>, headers: HeaderMap) -> Result<Json<SessionList>, ApiError> {
    let now = state.gateway.clock.now_ms();
    let policy = state.settings.console.sessions;
    let mine = cookie(&headers).map(secret_hash);
    let sessions = state.registry.store.list_sessions().await?;
    let sessions = sessions
        .into_iter()
        .filter(|s| policy.is_live(s, now))
        .map(|s| ListedSession {
            current: mine.is_some_and(|h| pool_core::secret::ct_eq_hash(&h, &s.hash)),
            created_at: iso(Some(s.created_at)),
            last_seen: iso(Some(s.last_seen)),
            expires_at: iso(Some(policy.expires_at(&s))),
            id: s.id,
            user_agent: s.user_agent,
            address: s.address,
        })
        .collect();
    Ok(Json(SessionList { sessions }))
}

/// `DELETE /admin/sessions/{id}`: ends a session at once.
#[utoipa::path(delete, path = "/admin/sessions/{id}", tag = "admin",
    params(("id" = String, Path, description = "The session's id")),
    responses(
        (status = 200, description = "Ended", body = Success),
        (status = 404, description = "No session with that id", body = ErrorBody),
    ))]
pub async fn revoke(
    _: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Success>, ApiError> {
    if id.len() > 64 || !state.registry.store.delete_session(&id).await? {
        return Err(ApiError::not_found("No session with that id"));
    }
    tracing::info!(session = %id, "console session revoked");
    Ok(Json(Success { success: true }))
}

/// The TCP peer's address, when the server put it on the request (the binary always does).
pub struct Peer(Option<IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for Peer {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Peer(parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|ConnectInfo(peer)| peer.ip())))
    }
}

/// Whether the browser reached us over TLS: told by a trusted proxy (`X-Forwarded-Proto:
/// https`), as the gateway itself speaks plain HTTP.
fn behind_tls(state: &AppState, peer: Option<IpAddr>, headers: &HeaderMap) -> bool {
    let proto = headers.get("x-forwarded-proto").and_then(|v| v.to_str().ok());
    let https = proto.is_some_and(|p| p.split(',').next().is_some_and(|p| p.trim().eq_ignore_ascii_case("https")));
    https && peer.is_some_and(|ip| state.settings.clients.trusts(ip.to_canonical()))
}

fn secure_flag(secure: bool) -> &'static str {
    if secure { "; Secure" } else { "" }
}

fn with_cookie(mut response: Response, cookie: &str) -> Response {
    if let Ok(value) = HeaderValue::try_from(cookie) {
        response.headers_mut().insert(SET_COOKIE, value);
    }
    super::no_cache(response.headers_mut());
    response
}
