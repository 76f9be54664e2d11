//! Extractors that fail in the OpenAI error shape: bodies with a size limit and a pace, JSON,
//! the bearer token, and the admin credential.
//!
//! A body that arrives too slowly (not whole within `server.body_read_timeout_secs`, or below
//! `server.min_body_rate_bytes_per_sec` on average once the grace has passed) is answered 408;
//! the connection is then closed by hyper, since the rest of the body was never read. The check
//! costs nothing while the body is already buffered: the timer exists only once a read waits.
//!
//! A body read whole takes its bytes from the gateway's buffer budget
//! ([`pool_core::buffer`]): its declared length up front, or chunk by chunk. When they do not
//! fit, the request waits up to `proxy.buffer_wait_ms` for room and is then answered 503
//! `server_busy`, so a burst of large bodies queues or is refused instead of exhausting memory.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::HeaderMap;
use axum::http::header::{AUTHORIZATION, CONTENT_LENGTH};
use axum::http::request::Parts;
use bytes::{Bytes, BytesMut};
use http_body::{Frame, SizeHint};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use pool_core::buffer::{BufferBudget, Reservation};
use serde::de::DeserializeOwned;
use tokio::time::{Instant, Sleep};

use crate::error::ApiError;
use crate::state::{AppState, Services};

/// The token of `Authorization: Bearer <token>` (scheme case-insensitive), if any.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// Reads a whole request body, refusing more than `proxy.max_body_bytes` with a 413, a body
/// slower than its pace with a 408, and one that finds no room in the buffer budget within
/// `proxy.buffer_wait_ms` with a 503. The reservation holds the body's bytes: keep it as long
/// as the bytes.
pub async fn read_body(headers: &HeaderMap, body: Body, state: &Services) -> Result<(Bytes, Reservation), ApiError> {
    let settings = &state.settings;
    let (limit, pace) = (settings.max_body_bytes, &settings.body_pace);
    let declared = headers.get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(ApiError::too_large(limit));
    }
    let declared = declared.map_or(0, |n| n as usize);
    let room = Room { budget: &state.gateway.buffers, until: Instant::now() + settings.buffer_wait };
    let mut reservation = room.reserve(declared).await?;
    let mut body = Limited::new(Paced::new(body, *pace), limit);
    let mut first: Option<Bytes> = None;
    let mut buf = BytesMut::new();
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame.map_err(|e| body_error(&*e, limit, pace))?.into_data() else { continue };
        let total = first.as_ref().map_or(0, Bytes::len) + buf.len() + data.len();
        room.cover(&mut reservation, total).await?;
        // One chunk is kept as it came; a second starts one buffer of the declared size.
        match first.take() {
            None if buf.is_empty() => first = Some(data),
            held => {
                if let Some(held) = held {
                    buf.reserve(declared.max(total));
                    buf.extend_from_slice(&held);
                }
                buf.extend_from_slice(&data);
            }
        }
    }
    Ok((first.unwrap_or_else(|| buf.freeze()), reservation))
}

/// Grows `reservation` by `more` bytes for a copy of a body the request already holds, waiting
/// for room as long as a body read may (`proxy.buffer_wait_ms`), then 503 `server_busy`.
pub async fn hold_copy(state: &Services, reservation: &mut Reservation, more: usize) -> Result<(), ApiError> {
    let room = Room { budget: &state.gateway.buffers, until: Instant::now() + state.settings.buffer_wait };
    room.cover(reservation, reservation.bytes() + more).await
}

fn body_error(e: &(dyn std::error::Error + Send + Sync + 'static), limit: usize, pace: &BodyPace) -> ApiError {
    if e.downcast_ref::<LengthLimitError>().is_some() {
        ApiError::too_large(limit)
    } else if e.downcast_ref::<TooSlow>().is_some() {
        ApiError::request_timeout(pace.describe())
    } else {
        ApiError::bad_request("Could not read the request body")
    }
}

/// Room in the buffer budget for one request body, waited for until a deadline.
struct Room<'a> {
    budget: &'a Arc<BufferBudget>,
    until: Instant,
}

impl Room<'_> {
    async fn reserve(&self, bytes: usize) -> Result<Reservation, ApiError> {
        let mut reservation = self.budget.empty();
        self.cover(&mut reservation, bytes).await?;
        Ok(reservation)
    }

    /// Grows `reservation` to `total` bytes, waiting for room until the deadline.
    async fn cover(&self, reservation: &mut Reservation, total: usize) -> Result<(), ApiError> {
        let more = total.saturating_sub(reservation.bytes());
        if more == 0 || reservation.grow(more).is_ok() {
            return Ok(());
        }
        match tokio::time::timeout_at(self.until, reservation.grow_waiting(more)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) | Err(_) => {
                self.budget.count_refused();
                Err(crate::capacity::server_busy(self.budget.limit()))
            }
        }
    }
}

/// How slowly a client may send a request body.
#[derive(Clone, Copy, Debug)]
pub struct BodyPace {
    /// The longest a whole body may take, from the end of the request head.
    pub timeout: Duration,
    /// Bytes per second the body must average once `grace` has passed; 0: no minimum.
    pub min_rate: u64,
    pub grace: Duration,
}

impl BodyPace {
    /// How long after its start a body that has sent `received` bytes may wait for more: at
    /// least the grace, then as long as the average stays at the minimum rate, never past the
    /// timeout.
    fn due(&self, received: u64) -> Duration {
        if self.min_rate == 0 {
            return self.timeout;
        }
        let paced = Duration::from_secs_f64(received as f64 / self.min_rate as f64);
        paced.max(self.grace).min(self.timeout)
    }

    fn describe(&self) -> String {
        let mut message = format!("The request body did not arrive within {} s", self.timeout.as_secs_f64());
        if self.min_rate > 0 {
            message.push_str(&format!(
                " at {} bytes/s or more (after the first {} s)",
                self.min_rate,
                self.grace.as_secs_f64()
            ));
        }
        message
    }
}

/// The error of a body that fell behind its pace.
#[derive(Debug)]
struct TooSlow;

impl std::fmt::Display for TooSlow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the request body arrived too slowly")
    }
}

impl std::error::Error for TooSlow {}

/// A request body held to a [`BodyPace`].
struct Paced {
    body: Body,
    pace: BodyPace,
    started: Instant,
    received: u64,
    /// Made at the first read that waits.
    timer: Option<Pin<Box<Sleep>>>,
}

impl Paced {
    fn new(body: Body, pace: BodyPace) -> Self {
        Self { body, pace, started: Instant::now(), received: 0, timer: None }
    }

    /// Whether the body has fallen behind; if not, the timer wakes the task when it would.
    fn behind(&mut self, cx: &mut Context<'_>) -> bool {
        let due = self.started + self.pace.due(self.received);
        let timer = self.timer.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(due)));
        if timer.deadline() != due {
            timer.as_mut().reset(due);
        }
        timer.as_mut().poll(cx).is_ready()
    }
}

impl http_body::Body for Paced {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        match Pin::new(&mut self.body).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                self.received += frame.data_ref().map_or(0, |data| data.len() as u64);
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(other) => Poll::Ready(other.map(|r| r.map_err(Into::into))),
            Poll::Pending if self.behind(cx) => Poll::Ready(Some(Err(TooSlow.into()))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// Parses JSON with a clear 400 on any mistake (syntax, types, unknown fields, nesting depth).
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes).map_err(|e| ApiError::bad_request(format!("Invalid JSON body: {e}")))
}

/// A JSON body, parsed with [`parse_json`] under the configured size limit.
pub struct AppJson<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for AppJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let (parts, body) = req.into_parts();
        let (bytes, _reservation) = read_body(&parts.headers, body, state).await?;
        parse_json(&bytes).map(AppJson)
    }
}

/// Proof that the request carries the admin token, or the cookie of a console session (with
/// its CSRF token for a write: see [`crate::console::session`]).
pub struct Admin;

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        match bearer(&parts.headers) {
            Some(token) if state.admin.verify(token) => Ok(Admin),
            Some(_) => Err(ApiError::unauthorized("Admin token required")),
            None => crate::console::session::admit(parts, state).await.map(|()| Admin),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(AUTHORIZATION, value.parse().unwrap_or_else(|_| panic!("header")));
        h
    }

    #[test]
    fn a_body_may_wait_the_grace_then_as_long_as_its_average_holds_never_past_the_timeout() {
        let pace = BodyPace { timeout: Duration::from_secs(60), min_rate: 1000, grace: Duration::from_secs(5) };
        assert_eq!(pace.due(0), Duration::from_secs(5));
        assert_eq!(pace.due(10_000), Duration::from_secs(10));
        assert_eq!(pace.due(1_000_000), Duration::from_secs(60));
        let unpaced = BodyPace { min_rate: 0, ..pace };
        assert_eq!(unpaced.due(0), Duration::from_secs(60));
    }

    #[test]
    fn bearer_tokens_are_read_case_insensitively_and_trimmed() {
        assert_eq!(bearer(&headers("Bearer sk-1")), Some("sk-1"));
        assert_eq!(bearer(&headers("bearer   sk-2 ")), Some("sk-2"));
        assert_eq!(bearer(&headers("Basic abc")), None);
        assert_eq!(bearer(&headers("Bearer")), None);
        assert_eq!(bearer(&HeaderMap::new()), None);
    }
}
