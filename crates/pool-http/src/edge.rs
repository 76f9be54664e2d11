//! The outermost layer of every route, in one middleware: the request id ([`request_id`]), the
//! request's log span, CORS ([`cors`]), and marking credentials as sensitive so that no debug
//! print of the headers can show them.
//!
//! One function instead of a stack of tower layers: the gateway's whole budget per proxied request
//! is a few tens of microseconds, and each generic layer cost its share of it.

use std::time::Instant;

use axum::extract::Request;
use axum::http::header::{AUTHORIZATION, COOKIE};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tracing::{Instrument, Span};

use crate::cors;
use crate::request_id::{self, X_REQUEST_ID};

/// Settles the request id and puts it on the request (for the layers inside) and on whatever
/// response comes back, errors and the 404 fallback included; answers CORS preflights; runs the
/// rest inside the request's span, with a debug line at its start and its end.
pub async fn edge(mut request: Request, next: Next) -> Response {
    let id = request_id::settle(request.headers());
    let headers = request.headers_mut();
    headers.insert(X_REQUEST_ID, id.clone());
    for name in [AUTHORIZATION, COOKIE] {
        if let Some(value) = headers.get_mut(name) {
            value.set_sensitive(true);
        }
    }
    let mut response = if request.method() == Method::OPTIONS {
        let mut response = StatusCode::OK.into_response();
        cors::preflight(response.headers_mut());
        response
    } else {
        let span = span(&request, &id);
        let mut response = handle(request, next).instrument(span).await;
        cors::decorate(response.headers_mut());
        response
    };
    response.headers_mut().insert(X_REQUEST_ID, id);
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
