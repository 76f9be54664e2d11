//! What clients hold of the gateway at once: requests being answered (capped by
//! `server.max_concurrent_requests`, 503 beyond) and client connections (counted here, capped by
//! the binary's accept loop), both for `/metrics`.
//!
//! A request's slot is held until its answer's body is dropped: a stream counts until its last
//! byte or the client's disconnect, like a token's concurrency slot. `/health` and `/metrics`
//! take no slot, so operators can still see what is happening while the gateway is full.
//!
//! The third cap, on bytes held in memory, is `pool_core::buffer::BufferBudget` (the gateway
//! reads upstream answers under it too); its refusal is [`ApiError::server_busy`].

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::task::{Context, Poll};

use axum::body::Body;
use axum::http::StatusCode;
use axum::response::Response;
use bytes::Bytes;
use http_body::{Frame, SizeHint};

use crate::error::ApiError;

/// The cap on requests answered at once.
pub struct Capacity {
    limit: usize,
    in_use: AtomicUsize,
    refused: AtomicU64,
}

impl Capacity {
    pub fn new(limit: usize) -> Arc<Self> {
        Arc::new(Self { limit: limit.max(1), in_use: AtomicUsize::new(0), refused: AtomicU64::new(0) })
    }

    /// A slot, or the 503 that refuses the request (counted).
    pub fn admit(self: &Arc<Self>) -> Result<Slot, ApiError> {
        if self.in_use.fetch_add(1, Relaxed) < self.limit {
            return Ok(Slot(Arc::clone(self)));
        }
        self.in_use.fetch_sub(1, Relaxed);
        self.refused.fetch_add(1, Relaxed);
        Err(overloaded(self.limit))
    }

    /// Requests holding a slot now.
    pub fn in_use(&self) -> usize {
        self.in_use.load(Relaxed)
    }

    /// Requests refused since the start.
    pub fn refused(&self) -> u64 {
        self.refused.load(Relaxed)
    }
}

/// Paths that take no slot: what an operator needs to look at a full gateway.
pub fn exempt(path: &str) -> bool {
    matches!(path, "/health" | "/metrics")
}

fn overloaded(limit: usize) -> ApiError {
    let message = format!("The gateway is answering its limit of {limit} requests at once; retry shortly");
    ApiError {
        code: Some("overloaded"),
        retry_after_s: Some(1),
        ..ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "service_unavailable", message)
    }
}

/// One request's place under the cap, freed on drop.
pub struct Slot(Arc<Capacity>);

impl Slot {
    /// Keeps the slot until `response`'s body is done with (its last byte sent, or the client gone).
    pub fn hold_until_answered(self, response: Response) -> Response {
        response.map(|body| Body::new(Holding::new(body, self)))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.in_use.fetch_sub(1, Relaxed);
    }
}

/// A body that keeps `guard` until it is dropped: after its last byte, or when the client left.
pub struct Holding<G> {
    body: Body,
    _guard: G,
}

impl<G> Holding<G> {
    pub fn new(body: Body, guard: G) -> Self {
        Self { body, _guard: guard }
    }
}

impl<G: Unpin> http_body::Body for Holding<G> {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// Client connections, as the accept loop sees them.
#[derive(Default)]
pub struct Connections {
    open: AtomicUsize,
    shed: AtomicU64,
    exhausted: AtomicU64,
}

impl Connections {
    /// A connection accepted: counted as open until the guard is dropped.
    pub fn opened(self: &Arc<Self>) -> OpenConnection {
        self.open.fetch_add(1, Relaxed);
        OpenConnection(Arc::clone(self))
    }

    pub fn open(&self) -> usize {
        self.open.load(Relaxed)
    }

    /// A connection closed at once because `server.max_connections` were open.
    pub fn count_shed(&self) {
        self.shed.fetch_add(1, Relaxed);
    }

    pub fn shed(&self) -> u64 {
        self.shed.load(Relaxed)
    }

    /// An accept that failed for want of file descriptors or memory (EMFILE, ENFILE, ENOBUFS,
    /// ENOMEM).
    pub fn count_exhausted(&self) {
        self.exhausted.fetch_add(1, Relaxed);
    }

    pub fn exhausted(&self) -> u64 {
        self.exhausted.load(Relaxed)
    }
}

/// One open connection.
pub struct OpenConnection(Arc<Connections>);

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_beyond_the_cap_is_refused_with_retry_after_and_counted() {
        let capacity = Capacity::new(2);
        let (first, _second) = (capacity.admit().ok(), capacity.admit().ok());
        let refused = capacity.admit().err().expect("third is refused");
        assert_eq!(
            (refused.status, refused.code, refused.retry_after_s),
            (StatusCode::SERVICE_UNAVAILABLE, Some("overloaded"), Some(1))
        );
        assert_eq!((capacity.in_use(), capacity.refused()), (2, 1));
        drop(first);
        assert!(capacity.admit().is_ok(), "a freed slot serves the next request");
    }
}
