//! The limits of the client API, as HTTP: who may call at all (blocked user agents, requests per
//! client address: both before any token is looked at), and each token's models, rates and
//! quotas around one proxied request.
//!
//! A refusal is a 429 in the OpenAI shape with `Retry-After` and the `x-ratelimit-*` headers; an
//! admitted request of a token with limits gets the same headers on its answer. The admission is
//! held until the answer ends: for a stream, until its last byte or the client's disconnect.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::StatusCode;
use axum::http::header::USER_AGENT;
use axum::middleware::Next;
use axum::response::Response;
use pool_core::limit::{Refusal, Subject};
use pool_core::proxy::TokenRefusal;

use crate::error::ApiError;
use crate::state::AppState;
use crate::wire::rate_headers;

/// Middleware of the client routes, before authentication: a blocked user agent gets 403; a
/// client address over `limits.ip_rpm` gets 429. The address comes from the connection's
/// `ConnectInfo` (the binary always serves with it); a server without it limits no address.
pub(crate) async fn gate(State(state): State<AppState>, request: Request, next: Next) -> Result<Response, ApiError> {
    let rules = &state.settings.clients;
    let agent = request.headers().get(USER_AGENT).and_then(|v| v.to_str().ok());
    if rules.blocks_agent(agent) {
        return Err(ApiError {
            code: Some("user_agent_blocked"),
            ..ApiError::new(StatusCode::FORBIDDEN, "permission_error", "This client is not allowed to use the API")
        });
    }
    if let (Some(limits), Some(ConnectInfo(peer))) =
        (rules.ip_limits(), request.extensions().get::<ConnectInfo<SocketAddr>>())
    {
        let forwarded = request.headers().get_all("x-forwarded-for").iter().filter_map(|v| v.to_str().ok());
        let ip = rules.client_ip(peer.ip(), forwarded);
        let now = state.gateway.clock.now_ms();
        state.gateway.limiter.admit(Subject::client(ip), &limits, now).map_err(|r| refused(&r, "client address"))?;
    }
    Ok(next.run(request).await)
}

/// A token's refusal as HTTP: 403 for a model off its allow-list, 429 for a limit.
pub(crate) fn token_refused(refusal: TokenRefusal) -> ApiError {
    match refusal {
        TokenRefusal::Model(e) => e.into(),
        TokenRefusal::Limit(r) => refused(&r, "token"),
    }
}

/// A 429 naming the limit, with `Retry-After` and the `x-ratelimit-*` headers.
fn refused(refusal: &Refusal, subject: &str) -> ApiError {
    let retry_after_s = refusal.retry_after_secs();
    let message =
        format!("This {subject} has reached its limit of {}; retry after {retry_after_s} s", refusal.exceeded);
    ApiError {
        code: Some("rate_limit_exceeded"),
        retry_after_s: Some(retry_after_s),
        headers: Some(Box::new(rate_headers(&refusal.info))),
        ..ApiError::new(StatusCode::TOO_MANY_REQUESTS, "rate_limit_error", message)
    }
}
