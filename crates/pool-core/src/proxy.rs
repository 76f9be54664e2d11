//! The failover use case: pick a key, forward, classify, and try another key until one serves.
//!
//! Nothing reaches the client before the gateway has committed to an answer: a whole body is read
//! before it is returned, and a stream is held until its first complete event. So every failure
//! that happens before then (statuses that blame the key, timeouts, dropped connections, an
//! in-band error as a stream's first event) moves the request to another key unseen. After the
//! first byte a failure can no longer be hidden: the stream ends with an error event in the
//! OpenAI shape, and the key is marked. A client that leaves cancels the upstream request (its
//! body is dropped) and costs the key nothing. A key's limits are held for as long as its attempt
//! runs: a stream keeps its key's slot until it ends or is dropped.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use futures_core::Stream;
use futures_util::StreamExt;
use http::header::{CONTENT_TYPE, RETRY_AFTER};
use http::{HeaderMap, Method, StatusCode};

use crate::UnixMs;
use crate::ids::KeyId;
use crate::key::{FailurePolicy, KeyEvent};
use crate::limit::{Admission, Limiter};
use crate::outcome::{Verdict, classify_status, parse_retry_after};
use crate::pool::{Pick, PoolKey, Pools};
use crate::ports::{BodyStream, Clock, TransportError, Upstream, UpstreamRequest, UpstreamResponse};
use crate::provider::ProviderName;
use crate::sse::{Framing, inband_error_status};

/// Everything the use case needs, built once at start.
pub struct Gateway {
    pub pools: Arc<Pools>,
    pub policy: FailurePolicy,
    pub upstream: Arc<dyn Upstream>,
    pub clock: Arc<dyn Clock>,
    /// Largest upstream body read whole (non-stream answers, the held first stream event).
    pub max_response_bytes: usize,
    /// Enforces the limits of keys (here) and of tokens and client addresses (in the handlers).
    pub limiter: Arc<dyn Limiter>,
}

/// A client request, ready to go upstream once a key is chosen.
#[derive(Debug)]
pub struct ForwardRequest {
    pub provider: ProviderName,
    /// The requested model, when the request names one: only keys that serve it are picked.
    pub model: Option<String>,
    pub method: Method,
    pub url: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// One attempt that did not serve the request: which key, and why it was left.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttemptNote {
    pub key: KeyId,
    pub outcome: String,
}

pub enum Body {
    Full(Bytes),
    Stream(BodyStream),
}

/// The answer the client gets.
pub struct Delivery {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Body,
    /// The key that served, after the attempts that failed.
    pub served_by: KeyId,
    pub failed_attempts: Vec<AttemptNote>,
}

#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("provider '{0}' is not configured")]
    UnknownProvider(ProviderName),
    #[error("No upstream key is available for provider '{provider}' right now{}", no_key_detail(*.limited))]
    NoKey { provider: ProviderName, retry_after_s: Option<u64>, limited: bool },
    #[error("The model '{model}' is not served by any key of provider '{provider}'")]
    ModelNotServed { provider: ProviderName, model: String },
    #[error("All {} upstream attempts failed; last: {last}", .notes.len())]
    AllFailed { last: String, retry_after_s: Option<u64>, notes: Vec<AttemptNote> },
}

fn no_key_detail(limited: bool) -> &'static str {
    if limited { ": every usable key is at its rate or concurrency limit" } else { "" }
}

enum Attempt {
    Served(StatusCode, HeaderMap, Body),
    Failed(KeyEvent, String),
}

impl Gateway {
    pub async fn forward(&self, req: ForwardRequest) -> Result<Delivery, ProxyError> {
        let pool = self.pools.pool(&req.provider).ok_or_else(|| ProxyError::UnknownProvider(req.provider.clone()))?;
        let mut tried: Vec<KeyId> = Vec::with_capacity(self.policy.max_attempts as usize);
        let mut notes = Vec::new();
        while tried.len() < self.policy.max_attempts as usize {
            let now = self.clock.now_ms();
            let (key, permit) = match pool.pick(now, &tried, req.model.as_deref(), self.limiter.as_ref()) {
                Pick::Key(key, permit) => (key, permit),
                Pick::Exhausted { retry_at, limited } => {
                    return Err(self.exhausted(&req.provider, notes, retry_at, limited, now));
                }
                Pick::Unserved => return Err(self.unserved(&req, notes, now)),
            };
            tried.push(key.id);
            key.begin_attempt(now);
            match self.attempt(&key, &req, permit).await {
                Attempt::Served(status, headers, body) => {
                    return Ok(Delivery { status, headers, body, served_by: key.id, failed_attempts: notes });
                }
                Attempt::Failed(event, outcome) => {
                    key.record(&event, &self.policy, self.clock.now_ms());
                    notes.push(AttemptNote { key: key.id, outcome });
                }
            }
        }
        let now = self.clock.now_ms();
        let retry_at = pool.next_ready(now, req.model.as_deref(), self.limiter.as_ref());
        Err(self.exhausted(&req.provider, notes, retry_at, false, now))
    }

    fn exhausted(
        &self,
        provider: &ProviderName,
        notes: Vec<AttemptNote>,
        retry_at: Option<UnixMs>,
        limited: bool,
        now: UnixMs,
    ) -> ProxyError {
        let retry_after_s = retry_at.map(|at| u64::try_from((at - now + 999) / 1000).unwrap_or(0).max(1));
        match notes.last() {
            None => ProxyError::NoKey { provider: provider.clone(), retry_after_s, limited },
            Some(last) => ProxyError::AllFailed { last: last.outcome.clone(), retry_after_s, notes },
        }
    }

    /// No key serves the model (any more): after keys that turned out not to have it, the last
    /// attempt's outcome; otherwise the model is simply not in this pool.
    fn unserved(&self, req: &ForwardRequest, notes: Vec<AttemptNote>, now: UnixMs) -> ProxyError {
        match notes.last() {
            Some(_) => self.exhausted(&req.provider, notes, None, false, now),
            None => ProxyError::ModelNotServed {
                provider: req.provider.clone(),
                model: req.model.clone().unwrap_or_default(),
            },
        }
    }

    /// One attempt on `key`; `permit` (the key's slot) lives as long as the attempt, or as the
    /// stream it delivers.
    async fn attempt(&self, key: &Arc<PoolKey>, req: &ForwardRequest, permit: Admission) -> Attempt {
        let request = UpstreamRequest {
            method: req.method.clone(),
            url: req.url.clone(),
            bearer: key.secret.clone(),
            headers: req.headers.clone(),
            body: req.body.clone(),
        };
        let response = match self.upstream.send(request).await {
            Ok(response) => response,
            Err(e) => return transient(&e),
        };
        let status = response.status;
        let retry_after =
            header_str(&response.headers, RETRY_AFTER.as_str()).and_then(|v| parse_retry_after(v, self.clock.now_ms()));
        if status == StatusCode::NOT_FOUND
            && let Some(model) = req.model.as_deref()
            && key.forget_model(model)
        {
            let outcome = format!("upstream answered 404: this key does not serve '{model}' (removed from its models)");
            return Attempt::Failed(KeyEvent::Neutral, outcome);
        }
        match classify_status(status.as_u16(), retry_after) {
            Verdict::Retry(event) => Attempt::Failed(event, format!("upstream answered {}", status.as_u16())),
            Verdict::Deliver => {
                match header_str(&response.headers, CONTENT_TYPE.as_str()).and_then(Framing::from_content_type) {
                    Some(framing) => self.hold_stream(key, framing, response, permit).await,
                    None => self.read_whole(key, response, KeyEvent::Success).await,
                }
            }
            Verdict::PassThrough => self.read_whole(key, response, KeyEvent::Neutral).await,
        }
    }

    async fn read_whole(&self, key: &Arc<PoolKey>, response: UpstreamResponse, event: KeyEvent) -> Attempt {
        match read_body(response.body, self.max_response_bytes).await {
            Ok(body) => {
                key.record(&event, &self.policy, self.clock.now_ms());
                Attempt::Served(response.status, client_headers(&response.headers), Body::Full(body))
            }
            Err(e) => transient(&e),
        }
    }

    async fn hold_stream(
        &self,
        key: &Arc<PoolKey>,
        framing: Framing,
        response: UpstreamResponse,
        permit: Admission,
    ) -> Attempt {
        let (held, first_len, rest) = match hold_first_event(framing, response.body, self.max_response_bytes).await {
            Ok(parts) => parts,
            Err(e) => return transient(&e),
        };
        if let Some(status) = inband_error_status(framing, &held[..first_len])
            && let Verdict::Retry(event) = classify_status(status, None)
        {
            return Attempt::Failed(event, format!("upstream stream opened with error {status}"));
        }
        let relay = Relay {
            held: Some(held),
            rest,
            key: Arc::clone(key),
            policy: self.policy.clone(),
            clock: Arc::clone(&self.clock),
            framing,
            finished: false,
            permit: Some(permit),
        };
        Attempt::Served(response.status, client_headers(&response.headers), Body::Stream(Box::pin(relay)))
    }
}

fn transient(error: &TransportError) -> Attempt {
    Attempt::Failed(KeyEvent::Transient { cause: error.to_string() }, error.to_string())
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The upstream headers a client may see: the content type. Everything else (cookies, the
/// upstream's rate-limit headers about *our* key, hop-by-hop headers) stays with the gateway.
fn client_headers(upstream: &HeaderMap) -> HeaderMap {
    let mut headers = HeaderMap::new();
    if let Some(v) = upstream.get(CONTENT_TYPE) {
        headers.insert(CONTENT_TYPE, v.clone());
    }
    headers
}

async fn read_body(mut body: BodyStream, limit: usize) -> Result<Bytes, TransportError> {
    let Some(first) = body.next().await.transpose()? else {
        return Ok(Bytes::new());
    };
    let Some(second) = body.next().await.transpose()? else {
        return Ok(first);
    };
    let mut buf = BytesMut::from(&first[..]);
    buf.extend_from_slice(&second);
    while let Some(chunk) = body.next().await.transpose()? {
        if buf.len() + chunk.len() > limit {
            return Err(TransportError::TooLarge);
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
}

/// Reads until the first complete event; returns the bytes held, the first event's length, and
/// the rest of the stream.
async fn hold_first_event(
    framing: Framing,
    mut body: BodyStream,
    limit: usize,
) -> Result<(Bytes, usize, BodyStream), TransportError> {
    let mut buf = BytesMut::new();
    while let Some(chunk) = body.next().await.transpose()? {
        buf.extend_from_slice(&chunk);
        if let Some(len) = framing.first_event_len(&buf) {
            return Ok((buf.freeze(), len, body));
        }
        if buf.len() > limit {
            return Err(TransportError::TooLarge);
        }
    }
    if buf.is_empty() {
        return Err(TransportError::Dropped);
    }
    let len = buf.len();
    Ok((buf.freeze(), len, body))
}

/// The client's side of a committed stream: the held bytes, then the upstream's, then either a
/// clean end (the key succeeded) or an error event (the key is marked). Dropped early, it records
/// nothing against the key: the client left. It holds the key's slot until either.
struct Relay {
    held: Option<Bytes>,
    rest: BodyStream,
    key: Arc<PoolKey>,
    policy: FailurePolicy,
    clock: Arc<dyn Clock>,
    framing: Framing,
    finished: bool,
    /// The key's limits' admission, released when the stream ends.
    permit: Option<Admission>,
}

impl Stream for Relay {
    type Item = Result<Bytes, TransportError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if let Some(held) = self.held.take() {
            return Poll::Ready(Some(Ok(held)));
        }
        if self.finished {
            return Poll::Ready(None);
        }
        let polled = self.rest.as_mut().poll_next(cx);
        match polled {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(Ok(chunk))) => Poll::Ready(Some(Ok(chunk))),
            Poll::Ready(Some(Err(e))) => {
                self.finish(&KeyEvent::Transient { cause: e.to_string() });
                let message = format!("The upstream stream was interrupted: {e}");
                Poll::Ready(Some(Ok(self.framing.error_event(&message))))
            }
            Poll::Ready(None) => {
                self.finish(&KeyEvent::Success);
                Poll::Ready(None)
            }
        }
    }
}

impl Relay {
    fn finish(&mut self, event: &KeyEvent) {
        self.finished = true;
        self.permit = None;
        self.key.record(event, &self.policy, self.clock.now_ms());
    }
}

#[cfg(test)]
mod tests;
