//! The outermost layer of every route, in one middleware: the request id ([`request_id`]), the
//! request's log span, CORS ([`cors`], never on the console's cookie-bound answers), the cap on requests answered at once ([`capacity`]),
//! `X-Content-Type-Options: nosniff` on every answer, and marking credentials as sensitive so
//! that no debug print of the headers can show them.
//!
//! One function instead of a stack of tower layers: the gateway's whole budget per proxied request
//! is a few tens of microseconds, and each generic layer cost its share of it.

use std::time::Instant;

use axum::extract::{Request, State};
use axum::http::header::{AUTHORIZATION, COOKIE, X_CONTENT_TYPE_OPTIONS};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tracing::{Instrument, Span};

use crate::capacity::{self, Slot};
use crate::request_id::{self, X_REQUEST_ID};
use crate::state::AppState;
use crate::{console, cors};

/// Settles the request id and puts it on the request (for the layers inside) and on whatever
/// response comes back, errors and the 404 fallback included; takes the request's slot under the
/// cap (503 when none is free); answers CORS preflights; runs the rest inside the request's span,
/// with a debug line at its start and its end.
pub async fn edge(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let id = request_id::settle(request.headers());
    let headers = request.headers_mut();
    headers.insert(X_REQUEST_ID, id.clone());
    for name in [AUTHORIZATION, COOKIE] {
        if let Some(value) = headers.get_mut(name) {
            value.set_sensitive(true);
        }
    }
    let cors = !console::cookie_bound(&request);
    let mut response = match admit(&state, &request) {
        Err(refused) => {
            tracing::debug!(path = request.uri().path(), "refused a request: every slot is taken");
            let mut response = refused.into_response();
            if cors {
                cors::decorate(response.headers_mut());
            }
            response
        }
        Ok(slot) => {
            let response = answer(request, next, &id, cors).await;
            match slot {
                Some(slot) => slot.hold_until_answered(response),
                None => response,
            }
        }
    };
    let headers = response.headers_mut();
    headers.insert(X_REQUEST_ID, id);
    headers.insert(X_CONTENT_TYPE_OPTIONS, nosniff());
    response
}

/// The request's slot under the cap; none needed for the paths an operator watches with.
fn admit(state: &AppState, request: &Request) -> Result<Option<Slot>, crate::error::ApiError> {
    if capacity::exempt(request.uri().path()) {
        return Ok(None);
    }
    state.capacity.admit().map(Some)
}

/// `cors`: whether the answer gets CORS headers (never one bound to the console's cookie).
async fn answer(request: Request, next: Next, id: &HeaderValue, cors: bool) -> Response {
    if request.method() == Method::OPTIONS {
        let mut response = StatusCode::OK.into_response();
        if cors {
            cors::preflight(response.headers_mut());
        }
        return response;
    }
    let span = span(&request, id);
    let mut response = handle(request, next).instrument(span).await;
    if cors {
        cors::decorate(response.headers_mut());
    }
    response
}

/// Browsers must not guess another type than the one an answer declares (an error's JSON read
/// as HTML, say).
pub fn nosniff() -> HeaderValue {
    HeaderValue::from_static("nosniff")
}

/// The separate metrics listener's only layer: `nosniff`, as on the main address.
pub async fn nosniff_only(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    response.headers_mut().insert(X_CONTENT_TYPE_OPTIONS, nosniff());
    response
}

async fn handle(request: Request, next: Next) -> Response {
    let started = Instant::now();
    tracing::debug!("started processing request");
    let response = next.run(request).await;
    tracing::debug!(
        status = response.status().as_u16(),
        latency_us = started.elapsed().as_micros(),
        "finished processing request"
    );
    response
}

/// The span of one request: method, path (never the query string or headers) and request id.
/// At `INFO`, so that the request's own warnings carry it under the default log level.
fn span(request: &Request, id: &HeaderValue) -> Span {
    let id = id.to_str().unwrap_or_default();
    tracing::info_span!("request", method = %request.method(), path = request.uri().path(), request_id = id)
}
