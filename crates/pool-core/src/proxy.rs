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
use crate::ids::{KeyId, TokenId};
use crate::key::{FailurePolicy, KeyEvent};
use crate::limit::{Admission, Limiter};
use crate::outcome::{Verdict, classify_status, parse_retry_after};
use crate::pool::{Pick, PoolKey, Pools};
use crate::ports::{BodyStream, Clock, TransportError, Upstream, UpstreamRequest, UpstreamResponse};
use crate::provider::ProviderName;
use crate::sse::{Framing, inband_error_status};
use crate::stats::{Dims, Kind, Outcome, Recorder, Timing};
use crate::usage::{Usage, UsageTap};

/// Everything the use case needs, built once at start.
pub struct Gateway {
    pub pools: Arc<Pools>,
    pub policy: FailurePolicy,
    pub upstream: Arc<dyn Upstream>,
    pub clock: Arc<dyn Clock>,
    /// Largest upstream body read whole (non-stream answers, the held first stream event).
    pub max_response_bytes: usize,
    pub stats: Arc<Recorder>,
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
    /// How to count the request; `None` for the gateway's own requests (model lists).
    pub measure: Option<Measure>,
}

/// What counting a client request needs besides the request itself.
#[derive(Default)]
pub struct Measure {
    pub token: Option<TokenId>,
    /// When the request arrived ([`Clock::monotonic_us`]).
    pub started_us: i64,
    /// The gateway added `stream_options.include_usage`: the usage event is for the gateway
    /// only, and is taken out of the stream the client receives.
    pub strip_usage: bool,
    /// Called once with the request's usage when its answer is complete (token quotas).
    pub on_usage: Option<Box<dyn FnOnce(Option<Usage>) + Send + Sync>>,
}

impl std::fmt::Debug for Measure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Measure").field("token", &self.token).field("strip_usage", &self.strip_usage).finish()
    }
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

impl ProxyError {
    /// The status the client gets, and how the request is counted.
    pub fn status(&self) -> (StatusCode, Outcome) {
        match self {
            Self::UnknownProvider(_) | Self::ModelNotServed { .. } => (StatusCode::NOT_FOUND, Outcome::Rejected),
            Self::NoKey { .. } => (StatusCode::SERVICE_UNAVAILABLE, Outcome::NoKey),
            Self::AllFailed { .. } => (StatusCode::BAD_GATEWAY, Outcome::Failed),
        }
    }
}

fn no_key_detail(limited: bool) -> &'static str {
    if limited { ": every usable key is at its rate or concurrency limit" } else { "" }
}

enum Attempt {
    Served(StatusCode, HeaderMap, Served),
    Failed { event: KeyEvent, note: String, status: u16, outcome: Outcome },
}

enum Served {
    Whole(Bytes),
    Stream(Held),
}

/// A stream held up to its first complete event.
struct Held {
    framing: Framing,
    bytes: Bytes,
    rest: BodyStream,
    /// The key's slot, held until the stream ends.
    permit: Admission,
}

impl Gateway {
    /// Serves a request with the first key that answers it, counting the request and every
    /// attempt (when the request carries a [`Measure`]).
    pub async fn forward(&self, mut req: ForwardRequest) -> Result<Delivery, ProxyError> {
        let mut meter = req.measure.take().map(|measure| Meter::new(self, &req, measure));
        let result = self.try_keys(&req, &mut meter).await;
        if let (Err(error), Some(meter)) = (&result, meter.as_mut()) {
            let (status, outcome) = error.status();
            let model_known = !matches!(error, ProxyError::ModelNotServed { .. });
            meter.finish(None, status.as_u16(), outcome, None, false, model_known);
        }
        result
    }

    async fn try_keys(&self, req: &ForwardRequest, meter: &mut Option<Meter>) -> Result<Delivery, ProxyError> {
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
                Pick::Unserved => return Err(self.unserved(req, notes, now)),
            };
            tried.push(key.id);
            key.begin_attempt(now);
            let began = self.clock.monotonic_us();
            if let Some(meter) = meter.as_mut() {
                meter.current = Some(key.id);
            }
            let attempt = self.attempt(&key, req, permit).await;
            let waited = elapsed_us(began, self.clock.monotonic_us());
            match attempt {
                Attempt::Served(status, headers, served) => {
                    let body = match (served, meter.take()) {
                        (Served::Whole(bytes), Some(mut meter)) => {
                            meter.upstream_us += waited;
                            meter.served_us = waited;
                            let (outcome, usage) = if status.is_success() {
                                (Outcome::Success, Usage::of_body(&bytes))
                            } else {
                                (Outcome::ClientError, None)
                            };
                            let model_known = status != StatusCode::NOT_FOUND;
                            meter.finish(Some(key.id), status.as_u16(), outcome, usage, false, model_known);
                            Body::Full(bytes)
                        }
                        (Served::Whole(bytes), None) => Body::Full(bytes),
                        (Served::Stream(held), meter) => {
                            let meter = meter.map(|mut m| {
                                m.upstream_us += waited;
                                m.served_us = waited;
                                m.committed_us = Some(self.clock.monotonic_us());
                                m
                            });
                            Body::Stream(Box::pin(self.relay(&key, held, status, meter)))
                        }
                    };
                    return Ok(Delivery { status, headers, body, served_by: key.id, failed_attempts: notes });
                }
                Attempt::Failed { event, note, status, outcome } => {
                    key.record(&event, &self.policy, self.clock.now_ms());
                    if let Some(meter) = meter.as_mut() {
                        meter.current = None;
                        meter.upstream_us += waited;
                        meter.attempt(key.id, status, outcome, waited);
                    }
                    notes.push(AttemptNote { key: key.id, outcome: note });
                }
            }
        }
        let now = self.clock.now_ms();
        let retry_at = pool.next_ready(now, req.model.as_deref(), self.limiter.as_ref());
        Err(self.exhausted(&req.provider, notes, retry_at, false, now))
    }

    fn relay(&self, key: &Arc<PoolKey>, held: Held, status: StatusCode, meter: Option<Meter>) -> Relay {
        let strip = meter.as_ref().is_some_and(|m| m.strip_usage);
        Relay {
            held: Some(held.bytes),
            rest: held.rest,
            key: Arc::clone(key),
            policy: self.policy.clone(),
            clock: Arc::clone(&self.clock),
            framing: held.framing,
            tap: UsageTap::new(held.framing, strip),
            status: status.as_u16(),
            meter,
            finished: false,
            permit: Some(held.permit),
        }
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
            Err(e) => return transient(&e, 0),
        };
        let status = response.status;
        let retry_after =
            header_str(&response.headers, RETRY_AFTER.as_str()).and_then(|v| parse_retry_after(v, self.clock.now_ms()));
        if status == StatusCode::NOT_FOUND
            && let Some(model) = req.model.as_deref()
            && key.forget_model(model)
        {
            let note = format!("upstream answered 404: this key does not serve '{model}' (removed from its models)");
            return Attempt::Failed { event: KeyEvent::Neutral, note, status: 404, outcome: Outcome::ModelMissing };
        }
        let code = status.as_u16();
        match classify_status(code, retry_after) {
            Verdict::Retry(event) => Attempt::Failed {
                event,
                note: format!("upstream answered {code}"),
                status: code,
                outcome: Outcome::of_status(code),
            },
            Verdict::Deliver => {
                match header_str(&response.headers, CONTENT_TYPE.as_str()).and_then(Framing::from_content_type) {
                    Some(framing) => self.hold_stream(framing, response, permit).await,
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
                Attempt::Served(response.status, client_headers(&response.headers), Served::Whole(body))
            }
            Err(e) => transient(&e, response.status.as_u16()),
        }
    }

    async fn hold_stream(&self, framing: Framing, response: UpstreamResponse, permit: Admission) -> Attempt {
        let (bytes, first_len, rest) = match hold_first_event(framing, response.body, self.max_response_bytes).await {
            Ok(parts) => parts,
            Err(e) => return transient(&e, response.status.as_u16()),
        };
        if let Some(status) = inband_error_status(framing, &bytes[..first_len])
            && let Verdict::Retry(event) = classify_status(status, None)
        {
            let note = format!("upstream stream opened with error {status}");
            return Attempt::Failed { event, note, status, outcome: Outcome::of_status(status) };
        }
        let held = Held { framing, bytes, rest, permit };
        Attempt::Served(response.status, client_headers(&response.headers), Served::Stream(held))
    }
}

fn elapsed_us(from: i64, to: i64) -> u64 {
    u64::try_from(to - from).unwrap_or(0)
}

/// A transport failure; `status` is what the upstream had answered before it broke (0: nothing).
fn transient(error: &TransportError, status: u16) -> Attempt {
    let outcome = match error {
        TransportError::FirstByteTimeout | TransportError::IdleTimeout => Outcome::Timeout,
        TransportError::Connect | TransportError::Dropped => Outcome::Network,
        TransportError::TooLarge => Outcome::ServerError,
    };
    let note = error.to_string();
    Attempt::Failed { event: KeyEvent::Transient { cause: note.clone() }, note, status, outcome }
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
/// clean end (the key succeeded) or an error event (the key is marked). Usage is read on the way
/// (and the usage event the gateway asked for is taken out). Dropped early, it records nothing
/// against the key (the client left) and counts the request as cancelled, with the usage seen.
struct Relay {
    held: Option<Bytes>,
    rest: BodyStream,
    key: Arc<PoolKey>,
    policy: FailurePolicy,
    clock: Arc<dyn Clock>,
    framing: Framing,
    tap: UsageTap,
    /// The upstream's status, for the attempt's row.
    status: u16,
    meter: Option<Meter>,
    finished: bool,
    /// The key's limits' admission, released when the stream ends.
    permit: Option<Admission>,
}

impl Stream for Relay {
    type Item = Result<Bytes, TransportError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if let Some(held) = self.held.take() {
            let out = self.tap.feed(&held);
            if !out.is_empty() {
                return Poll::Ready(Some(Ok(out)));
            }
        }
        loop {
            if self.finished {
                return Poll::Ready(None);
            }
            match self.rest.as_mut().poll_next(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Ok(chunk))) => {
                    let out = self.tap.feed(&chunk);
                    if !out.is_empty() {
                        return Poll::Ready(Some(Ok(out)));
                    }
                }
                Poll::Ready(Some(Err(e))) => {
                    self.finish(&KeyEvent::Transient { cause: e.to_string() }, Outcome::StreamError);
                    let mut out = BytesMut::from(&self.tap.finish()[..]);
                    out.extend_from_slice(
                        &self.framing.error_event(&format!("The upstream stream was interrupted: {e}")),
                    );
                    return Poll::Ready(Some(Ok(out.freeze())));
                }
                Poll::Ready(None) => {
                    let rest = self.tap.finish();
                    self.finish(&KeyEvent::Success, Outcome::Success);
                    return Poll::Ready((!rest.is_empty()).then_some(Ok(rest)));
                }
            }
        }
    }
}

impl Relay {
    fn finish(&mut self, event: &KeyEvent, outcome: Outcome) {
        self.finished = true;
        self.permit = None;
        self.key.record(event, &self.policy, self.clock.now_ms());
        self.count(outcome);
    }

    fn count(&mut self, outcome: Outcome) {
        let (key, status) = (self.key.id, self.status);
        let partial = outcome != Outcome::Success;
        let usage = match (self.tap.usage, partial) {
            (Some(usage), _) => Some(usage),
            (None, true) => Some(self.tap.estimate()),
            (None, false) => None,
        };
        if let Some(mut meter) = self.meter.take() {
            meter.finish(Some(key), status, outcome, usage, partial, true);
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        if !self.finished {
            self.count(Outcome::Cancelled);
        }
    }
}

/// One client request being counted: the attempts as they end, the request once, when its
/// answer is complete. Dropped before that (the client left while the gateway waited on an
/// upstream), it counts the request and the attempt under way as cancelled.
struct Meter {
    stats: Arc<Recorder>,
    clock: Arc<dyn Clock>,
    provider: ProviderName,
    model: Arc<str>,
    token: Option<TokenId>,
    strip_usage: bool,
    on_usage: Option<Box<dyn FnOnce(Option<Usage>) + Send + Sync>>,
    started_us: i64,
    /// Time spent waiting on upstreams before the answer was committed.
    upstream_us: u64,
    /// Of which the attempt that served waited.
    served_us: u64,
    /// When the answer was committed to the client (a stream's first event).
    committed_us: Option<i64>,
    /// The key of the attempt under way.
    current: Option<KeyId>,
    done: bool,
}

impl Meter {
    fn new(gateway: &Gateway, req: &ForwardRequest, measure: Measure) -> Self {
        gateway.stats.metrics.enter();
        Self {
            stats: Arc::clone(&gateway.stats),
            clock: Arc::clone(&gateway.clock),
            provider: req.provider.clone(),
            model: req.model.as_deref().unwrap_or("").into(),
            token: measure.token,
            strip_usage: measure.strip_usage,
            on_usage: measure.on_usage,
            started_us: measure.started_us,
            upstream_us: 0,
            served_us: 0,
            committed_us: None,
            current: None,
            done: false,
        }
    }

    fn dims(&self, kind: Kind, key: Option<KeyId>, status: u16, outcome: Outcome) -> Dims {
        Dims {
            kind,
            provider: self.provider.clone(),
            model: Arc::clone(&self.model),
            key,
            token: self.token,
            status,
            outcome,
        }
    }

    fn attempt(&self, key: KeyId, status: u16, outcome: Outcome, waited_us: u64) {
        let dims = self.dims(Kind::Attempt, Some(key), status, outcome);
        self.stats.attempt(self.clock.now_ms(), dims, waited_us);
    }

    /// Counts the request. `served`: the key whose answer the client got (its attempt is
    /// counted here, with the request's outcome). `model_known`: false when the model turned
    /// out not to exist, so a client cannot fill the statistics with made-up model names.
    fn finish(
        &mut self,
        served: Option<KeyId>,
        status: u16,
        outcome: Outcome,
        usage: Option<Usage>,
        partial: bool,
        model_known: bool,
    ) {
        if std::mem::replace(&mut self.done, true) {
            return;
        }
        let now_us = self.clock.monotonic_us();
        let ttfb_us = elapsed_us(self.started_us, self.committed_us.unwrap_or(now_us));
        let timing = Timing {
            total_us: elapsed_us(self.started_us, now_us),
            ttfb_us,
            overhead_us: ttfb_us.saturating_sub(self.upstream_us),
        };
        match (served, self.current) {
            (Some(key), _) => self.attempt(key, status, outcome, self.served_us),
            (None, Some(key)) => self.attempt(key, 0, Outcome::Cancelled, 0),
            (None, None) => {}
        }
        if !model_known {
            self.model = "".into();
        }
        let dims = self.dims(Kind::Request, served, status, outcome);
        self.stats.request(self.clock.now_ms(), dims, timing, usage, partial);
        self.stats.metrics.leave();
        if let Some(on_usage) = self.on_usage.take() {
            on_usage(usage);
        }
    }
}

impl Drop for Meter {
    fn drop(&mut self) {
        self.finish(None, CLIENT_CLOSED, Outcome::Cancelled, None, true, true);
    }
}

/// The status counted for a request whose client left before the answer (nginx's convention).
pub const CLIENT_CLOSED: u16 = 499;

#[cfg(test)]
mod tests;
/// Handlers run on a multi-threaded runtime: the use case's future must be `Send` (checked at
/// compile time).
#[cfg(test)]
fn _forward_is_send(g: &Gateway, r: ForwardRequest) {
    fn is_send<T: Send>(_: T) {}
    is_send(g.forward(r));
}
