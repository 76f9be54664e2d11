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

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use futures_core::Stream;
use futures_util::StreamExt;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use http::{HeaderMap, Method, StatusCode};

use crate::UnixMs;
use crate::buffer::{BufferBudget, Reservation};
use crate::ids::{KeyId, TokenId};
use crate::key::{FailurePolicy, KeyEvent};
use crate::limit::{Admission, Limiter, Refusal, Subject};
use crate::outcome::{Answer, Cost, Decision, Verdict, classify};
use crate::pool::{Pick, PoolKey, Pools};
use crate::ports::{BodyStream, Clock, Shutdown, TransportError, Upstream, UpstreamRequest, UpstreamResponse};
use crate::provider::{ProviderKind, ProviderName};
use crate::quota::QuotaRest;
use crate::recheck::ModelRechecks;
use crate::reqlog::{AttemptNote, LastAttempt, RequestId, RequestLog, RequestLogEntry};
use crate::sse::{Framing, inband_error_status};
use crate::stats::{Dims, Kind, Outcome, Recorder, Timing};
use crate::token::{AuthError, ClientToken};
use crate::usage::{Usage, UsageTap};

/// Everything the use case needs, built once at start.
pub struct Gateway {
    pub pools: Arc<Pools>,
    pub policy: FailurePolicy,
    /// How long a key rests for each kind of rate limit or quota.
    pub quota: QuotaRest,
    pub upstream: Arc<dyn Upstream>,
    pub clock: Arc<dyn Clock>,
    /// Largest upstream body read whole (non-stream answers, the held first stream event).
    pub max_response_bytes: usize,
    /// The bytes all requests may hold in memory at once; an answer that does not fit is 503.
    pub buffers: Arc<BufferBudget>,
    /// No new attempt starts once a request has waited this long for an answer.
    pub deadline_ms: i64,
    pub stats: Arc<Recorder>,
    /// Where every client request's entry goes, for the console's request log.
    pub requests: Arc<RequestLog>,
    /// Enforces the limits of keys and tokens (here) and of client addresses (in the handlers' gate).
    pub limiter: Arc<dyn Limiter>,
    /// Keys whose model list a 404 has put in doubt, for the background re-probe.
    pub rechecks: Arc<ModelRechecks>,
    /// Fires when a shutdown's grace period is over: streams still running end with an error
    /// event and are counted before the process exits.
    pub shutdown: Arc<dyn Shutdown>,
}

/// Why a token may not send a request: the model is not on its allow-list, or a limit is reached.
#[derive(Debug)]
pub enum TokenRefusal {
    Model(AuthError),
    Limit(Refusal),
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

/// What counting and settling a client request needs besides the request itself.
#[derive(Debug, Default)]
pub struct Measure {
    pub token: Option<TokenId>,
    /// When the request arrived ([`Clock::monotonic_us`]).
    pub started_us: i64,
    /// The gateway added `stream_options.include_usage`: the usage event is for the gateway
    /// only, and is taken out of the stream the client receives.
    pub strip_usage: bool,
    /// The token's admission: its concurrency slot is held, and the usage charged to its daily
    /// quota, when the answer is complete (whole, streamed to the end, cut short or failed).
    pub admission: Option<Admission>,
    /// The request's id (`x-request-id`), for its log entry.
    pub request_id: RequestId,
    /// The client asked for a stream.
    pub stream: bool,
}

/// A request the gateway answered itself, for [`Gateway::count_answered`].
#[derive(Debug)]
pub struct Answered<'a> {
    pub provider: &'a ProviderName,
    /// The canonical model; empty when the request was refused before it was read.
    pub model: &'a str,
    pub token: Option<TokenId>,
    pub status: u16,
    pub outcome: Outcome,
    /// When the request arrived ([`Clock::monotonic_us`]).
    pub started_us: i64,
    pub request_id: RequestId,
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
    /// The buffer budget a whole body holds: keep it until the body is sent.
    pub reservation: Option<Reservation>,
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
    /// The upstream answered, but the gateway cannot deliver it (larger than it reads whole).
    #[error("The upstream answer could not be delivered: {reason}")]
    Undeliverable { reason: String, notes: Vec<AttemptNote> },
    /// The answer did not fit in the gateway's buffer budget.
    #[error("The gateway is holding as many bytes as it may; retry shortly")]
    Busy { budget: usize, notes: Vec<AttemptNote> },
}

impl ProxyError {
    /// The status the client gets, and how the request is counted.
    pub fn status(&self) -> (StatusCode, Outcome) {
        match self {
            Self::UnknownProvider(_) | Self::ModelNotServed { .. } => (StatusCode::NOT_FOUND, Outcome::Rejected),
            Self::NoKey { .. } => (StatusCode::SERVICE_UNAVAILABLE, Outcome::NoKey),
            Self::AllFailed { .. } | Self::Undeliverable { .. } => (StatusCode::BAD_GATEWAY, Outcome::Failed),
            Self::Busy { .. } => (StatusCode::SERVICE_UNAVAILABLE, Outcome::Failed),
        }
    }

    /// Every attempt that failed, in order.
    pub fn notes(&self) -> &[AttemptNote] {
        match self {
            Self::AllFailed { notes, .. } | Self::Undeliverable { notes, .. } | Self::Busy { notes, .. } => notes,
            Self::UnknownProvider(_) | Self::NoKey { .. } | Self::ModelNotServed { .. } => &[],
        }
    }
}

fn no_key_detail(limited: bool) -> &'static str {
    if limited { ": every usable key is at its rate or concurrency limit" } else { "" }
}

enum Attempt {
    Served(StatusCode, HeaderMap, Served),
    Failed {
        event: KeyEvent,
        cost: Cost,
        decision: Decision,
        status: u16,
        answer: Option<Passed>,
    },
    Undeliverable {
        decision: Decision,
        status: u16,
    },
    /// The answer did not fit in the buffer budget.
    Busy {
        status: u16,
    },
}

/// A non-2xx answer kept while other keys are tried: the client gets it if no key serves.
struct Passed {
    status: StatusCode,
    headers: HeaderMap,
    body: Buffered,
}

enum Served {
    Whole(Buffered),
    Stream(Held),
}

/// Bytes read whole, with the budget they hold.
struct Buffered {
    bytes: Bytes,
    reservation: Reservation,
}

/// A stream held up to its first complete event.
struct Held {
    framing: Framing,
    bytes: Bytes,
    rest: BodyStream,
    /// The key's slot, held until the stream ends.
    permit: Admission,
    /// The budget the held bytes take, until they are passed on.
    reservation: Reservation,
}

/// How a request ended, for its count.
struct Ending {
    /// The key whose answer the client got; its attempt is counted with the request's outcome.
    served: Option<KeyId>,
    status: u16,
    outcome: Outcome,
    usage: Option<Usage>,
    /// The answer was cut short (a stream that broke, a client that left).
    partial: bool,
}

impl Ending {
    fn refused(status: u16, outcome: Outcome) -> Self {
        Self { served: None, status, outcome, usage: None, partial: false }
    }
}

/// The request's progress over its attempts.
struct Progress {
    tried: Vec<KeyId>,
    notes: Vec<AttemptNote>,
    /// Ambiguous failures so far, against [`FailurePolicy::max_attempts`].
    spent: u32,
    /// The last answer that said the key lacks the model, kept for the client.
    missing: Option<(KeyId, Passed)>,
    /// Some attempt failed for another reason than a missing model.
    other_failures: bool,
}

impl Gateway {
    /// Serves a request with the first key that answers it, counting the request and every
    /// attempt (when the request carries a [`Measure`]).
    pub async fn forward(&self, mut req: ForwardRequest) -> Result<Delivery, ProxyError> {
        let mut meter = req.measure.take().map(|measure| Meter::new(self, &req, measure));
        let result = self.try_keys(&req, &mut meter).await;
        if let (Err(error), Some(meter)) = (&result, meter.as_mut()) {
            let (status, outcome) = error.status();
            if matches!(error, ProxyError::ModelNotServed { .. }) {
                meter.model_unknown();
            }
            meter.finish(Ending::refused(status.as_u16(), outcome));
        }
        result
    }

    /// A token's checks for one request for the canonical `model`: its allow-list, then its
    /// rates, quotas and concurrency. The admission must live as long as the answer (pass it in
    /// [`Measure::admission`]); the refusal says which check said no.
    pub fn admit(&self, token: &ClientToken, kind: ProviderKind, model: &str) -> Result<Admission, TokenRefusal> {
        let settings = token.settings();
        settings.check_model(kind, model).map_err(TokenRefusal::Model)?;
        let now = self.clock.now_ms();
        self.limiter.admit(Subject::Token(token.id), &settings.limits, now).map_err(TokenRefusal::Limit)
    }

    /// Counts a request the gateway answered itself: refused before it went upstream (under
    /// its provider, without a model), or served from the cache.
    pub fn count_answered(&self, answered: Answered<'_>) {
        let elapsed = elapsed_us(answered.started_us, self.clock.monotonic_us());
        let dims = Dims {
            kind: Kind::Request,
            provider: answered.provider.clone(),
            model: answered.model.into(),
            key: None,
            token: answered.token,
            status: answered.status,
            outcome: answered.outcome,
        };
        let timing = Timing { total_us: elapsed, ttfb_us: elapsed, overhead_us: elapsed };
        let now = self.clock.now_ms();
        if self.requests.is_enabled() {
            let settled = Settled { dims: &dims, timing, usage: None, stream: false };
            self.requests.push(log_entry(now, answered.request_id, settled, Vec::new(), None));
        }
        self.stats.request(now, dims, timing, None, false);
    }

    async fn try_keys(&self, req: &ForwardRequest, meter: &mut Option<Meter>) -> Result<Delivery, ProxyError> {
        let pool = self.pools.pool(&req.provider).ok_or_else(|| ProxyError::UnknownProvider(req.provider.clone()))?;
        let deadline_us = self.clock.monotonic_us().saturating_add(self.deadline_ms.saturating_mul(1000));
        let mut progress = Progress {
            tried: Vec::with_capacity(4),
            notes: Vec::new(),
            spent: 0,
            missing: None,
            other_failures: false,
        };
        while progress.tried.is_empty() || self.clock.monotonic_us() < deadline_us {
            let borrowed = progress.spent >= self.policy.max_attempts.max(1);
            if borrowed && !pool.retries.take(self.policy.retry_budget) {
                break;
            }
            let now = self.clock.now_ms();
            let picked = pool.pick(now, &progress.tried, req.model.as_deref(), self.limiter.as_ref());
            if borrowed && !matches!(picked, Pick::Key(..)) {
                pool.retries.refund();
            }
            let (key, permit) = match picked {
                Pick::Key(key, permit) => (key, permit),
                Pick::Exhausted { retry_at, limited } => return self.give_up(req, progress, retry_at, limited, meter),
                Pick::Unserved if progress.tried.is_empty() => {
                    return Err(ProxyError::ModelNotServed {
                        provider: req.provider.clone(),
                        model: req.model.clone().unwrap_or_default(),
                    });
                }
                Pick::Unserved => return self.give_up(req, progress, None, false, meter),
            };
            progress.tried.push(key.id);
            key.begin_attempt(now);
            let began = self.clock.monotonic_us();
            if let Some(meter) = meter.as_mut() {
                meter.current = Some(key.id);
            }
            let attempt = self.attempt(&key, req, permit).await;
            let waited = elapsed_us(began, self.clock.monotonic_us());
            if let Some(meter) = meter.as_mut() {
                meter.current = None;
                meter.upstream_us += waited;
            }
            match attempt {
                Attempt::Served(status, headers, served) => {
                    pool.retries.earn();
                    let (body, reservation) = self.commit(&key, status, served, meter.take(), waited);
                    let failed_attempts = progress.notes;
                    return Ok(Delivery { status, headers, body, reservation, served_by: key.id, failed_attempts });
                }
                Attempt::Failed { event, cost, decision, status, answer } => {
                    key.record(&event, &self.policy, self.clock.now_ms());
                    if cost == Cost::Spends {
                        progress.spent += 1;
                    }
                    if decision.outcome == Outcome::ModelMissing {
                        self.rechecks.hint(key.id, self.clock.now_ms());
                        progress.missing = answer.map(|a| (key.id, a));
                    } else {
                        progress.other_failures = true;
                    }
                    let note = AttemptNote { key: key.id, outcome: decision.note };
                    if let Some(meter) = meter.as_mut() {
                        meter.attempt(key.id, status, decision.outcome, waited);
                        meter.failed(&note);
                    }
                    progress.notes.push(note);
                }
                Attempt::Undeliverable { decision, status } => {
                    let note = AttemptNote { key: key.id, outcome: decision.note.clone() };
                    if let Some(meter) = meter.as_mut() {
                        meter.attempt(key.id, status, decision.outcome, waited);
                        meter.failed(&note);
                    }
                    progress.notes.push(note);
                    return Err(ProxyError::Undeliverable { reason: decision.note, notes: progress.notes });
                }
                Attempt::Busy { status } => {
                    let note = AttemptNote { key: key.id, outcome: "buffer budget full".into() };
                    if let Some(meter) = meter.as_mut() {
                        meter.attempt(key.id, status, Outcome::Failed, waited);
                        meter.failed(&note);
                    }
                    progress.notes.push(note);
                    self.buffers.count_refused();
                    return Err(ProxyError::Busy { budget: self.buffers.limit(), notes: progress.notes });
                }
            }
        }
        let now = self.clock.now_ms();
        let retry_at = pool.next_ready(now, req.model.as_deref(), self.limiter.as_ref());
        self.give_up(req, progress, retry_at, false, meter)
    }

    /// The answer the client gets once it is committed (with the budget a whole body holds): a
    /// whole body is counted now, a stream when it ends.
    fn commit(
        &self,
        key: &Arc<PoolKey>,
        status: StatusCode,
        served: Served,
        meter: Option<Meter>,
        waited: u64,
    ) -> (Body, Option<Reservation>) {
        match (served, meter) {
            (Served::Whole(Buffered { bytes, reservation }), Some(mut meter)) => {
                meter.served_us = waited;
                let (outcome, usage) = if status.is_success() {
                    (Outcome::Success, Usage::of_body(&bytes))
                } else {
                    (Outcome::ClientError, None)
                };
                if status == StatusCode::NOT_FOUND {
                    meter.model_unknown();
                }
                meter.finish(Ending { served: Some(key.id), status: status.as_u16(), outcome, usage, partial: false });
                (Body::Full(bytes), Some(reservation))
            }
            (Served::Whole(Buffered { bytes, reservation }), None) => (Body::Full(bytes), Some(reservation)),
            (Served::Stream(held), meter) => {
                key.judge(&KeyEvent::Success, &self.policy, self.clock.now_ms());
                let meter = meter.map(|mut m| {
                    m.served_us = waited;
                    m.committed_us = Some(self.clock.monotonic_us());
                    m
                });
                (Body::Stream(Box::pin(self.relay(key, held, status, meter))), None)
            }
        }
    }

    /// No key served: the last answer that said a key lacks the model when every key asked
    /// said so (the client's 404), else the gateway's own error.
    fn give_up(
        &self,
        req: &ForwardRequest,
        progress: Progress,
        retry_at: Option<UnixMs>,
        limited: bool,
        meter: &mut Option<Meter>,
    ) -> Result<Delivery, ProxyError> {
        let Progress { notes, missing, other_failures, .. } = progress;
        if let Some((key, passed)) = missing.filter(|_| !other_failures) {
            if let Some(mut meter) = meter.take() {
                meter.model_unknown();
                meter.last = Some(LastAttempt::Served(key));
                meter.finish(Ending::refused(passed.status.as_u16(), Outcome::ClientError));
            }
            let Buffered { bytes, reservation } = passed.body;
            return Ok(Delivery {
                status: passed.status,
                headers: passed.headers,
                body: Body::Full(bytes),
                reservation: Some(reservation),
                served_by: key,
                failed_attempts: notes,
            });
        }
        let now = self.clock.now_ms();
        let retry_after_s = retry_at.map(|at| u64::try_from((at - now + 999) / 1000).unwrap_or(0).max(1));
        Err(match notes.last() {
            None => ProxyError::NoKey { provider: req.provider.clone(), retry_after_s, limited },
            Some(last) => ProxyError::AllFailed { last: last.outcome.clone(), retry_after_s, notes },
        })
    }

    fn relay(&self, key: &Arc<PoolKey>, held: Held, status: StatusCode, meter: Option<Meter>) -> Relay {
        let strip = meter.as_ref().is_some_and(|m| m.strip_usage);
        Relay {
            held: Some(held.bytes),
            held_reservation: Some(held.reservation),
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
            stop: self.shutdown.stopped(),
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
            Err(e) => return self.broken(&e, 0),
        };
        if response.status.is_success() {
            return match header_str(&response.headers, CONTENT_TYPE.as_str()).and_then(Framing::from_content_type) {
                Some(framing) => self.hold_stream(framing, response, permit).await,
                None => self.read_whole(key, response).await,
            };
        }
        let status = response.status;
        let headers = client_headers(&response.headers);
        let body = match self.read_body(response.body, &response.headers).await {
            Ok(body) => body,
            Err(unread) => return self.unread(unread, status.as_u16()),
        };
        let model_listed = req.model.as_deref().is_some_and(|m| key.lists(m));
        let answer =
            Answer::Status { status: status.as_u16(), headers: &response.headers, body: &body.bytes, model_listed };
        let decision = classify(answer, &self.quota, self.clock.now_ms());
        match decision.verdict.clone() {
            Verdict::Retry { event, cost } => {
                let answer = Some(Passed { status, headers, body });
                Attempt::Failed { event, cost, decision, status: status.as_u16(), answer }
            }
            Verdict::Fail => Attempt::Undeliverable { decision, status: status.as_u16() },
            Verdict::Deliver | Verdict::PassThrough => Attempt::Served(status, headers, Served::Whole(body)),
        }
    }

    /// A transport failure; `status` is what the upstream had answered before it broke (0: nothing).
    fn broken(&self, error: &TransportError, status: u16) -> Attempt {
        let decision = classify(Answer::Transport(error), &self.quota, self.clock.now_ms());
        match decision.verdict.clone() {
            Verdict::Retry { event, cost } => Attempt::Failed { event, cost, decision, status, answer: None },
            Verdict::Fail | Verdict::Deliver | Verdict::PassThrough => Attempt::Undeliverable { decision, status },
        }
    }

    /// A body that could not be read whole: broken on the way, or beyond the buffer budget.
    fn unread(&self, unread: Unread, status: u16) -> Attempt {
        match unread {
            Unread::Transport(e) => self.broken(&e, status),
            Unread::Busy => Attempt::Busy { status },
        }
    }

    async fn read_whole(&self, key: &Arc<PoolKey>, response: UpstreamResponse) -> Attempt {
        match self.read_body(response.body, &response.headers).await {
            Ok(body) => {
                key.record(&KeyEvent::Success, &self.policy, self.clock.now_ms());
                Attempt::Served(response.status, client_headers(&response.headers), Served::Whole(body))
            }
            Err(unread) => self.unread(unread, response.status.as_u16()),
        }
    }

    /// Reads an upstream body whole, under the size limit and within the buffer budget (its
    /// declared length reserved up front, else grown as chunks arrive).
    async fn read_body(&self, body: BodyStream, headers: &HeaderMap) -> Result<Buffered, Unread> {
        let declared = header_str(headers, CONTENT_LENGTH.as_str()).and_then(|v| v.parse::<usize>().ok());
        let mut hold = Hold { reservation: self.buffers.empty(), limit: self.max_response_bytes };
        hold.cover(declared.unwrap_or(0))?;
        let bytes = read_body(body, &mut hold, declared.unwrap_or(0)).await?;
        Ok(Buffered { bytes, reservation: hold.reservation })
    }

    async fn hold_stream(&self, framing: Framing, response: UpstreamResponse, permit: Admission) -> Attempt {
        let hold = Hold { reservation: self.buffers.empty(), limit: self.max_response_bytes };
        let (bytes, first_len, rest, reservation) = match hold_first_event(framing, response.body, hold).await {
            Ok(parts) => parts,
            Err(unread) => return self.unread(unread, response.status.as_u16()),
        };
        if let Some(status) = inband_error_status(framing, &bytes[..first_len]) {
            let decision = classify(Answer::InBand { status }, &self.quota, self.clock.now_ms());
            if let Verdict::Retry { event, cost } = decision.verdict.clone() {
                return Attempt::Failed { event, cost, decision, status, answer: None };
            }
        }
        let held = Held { framing, bytes, rest, permit, reservation };
        Attempt::Served(response.status, client_headers(&response.headers), Served::Stream(held))
    }
}

fn elapsed_us(from: i64, to: i64) -> u64 {
    u64::try_from(to - from).unwrap_or(0)
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

/// Why an upstream body was not read whole.
enum Unread {
    Transport(TransportError),
    /// It did not fit in the buffer budget.
    Busy,
}

impl From<TransportError> for Unread {
    fn from(e: TransportError) -> Self {
        Self::Transport(e)
    }
}

/// What a body being read may take: up to `limit` bytes, each one reserved in the budget.
struct Hold {
    reservation: Reservation,
    limit: usize,
}

impl Hold {
    /// Makes room for `total` bytes in all.
    fn cover(&mut self, total: usize) -> Result<(), Unread> {
        if total > self.limit {
            return Err(TransportError::TooLarge.into());
        }
        self.reservation.cover(total).map_err(|_| Unread::Busy)
    }
}

/// Reads a body whole (one chunk is kept as it came; more are copied into one buffer of
/// `capacity` bytes, or as grown).
async fn read_body(mut body: BodyStream, hold: &mut Hold, capacity: usize) -> Result<Bytes, Unread> {
    let Some(first) = body.next().await.transpose()? else {
        return Ok(Bytes::new());
    };
    hold.cover(first.len())?;
    let Some(second) = body.next().await.transpose()? else {
        return Ok(first);
    };
    hold.cover(first.len() + second.len())?;
    let mut buf = BytesMut::with_capacity(capacity.max(first.len() + second.len()));
    buf.extend_from_slice(&first);
    buf.extend_from_slice(&second);
    while let Some(chunk) = body.next().await.transpose()? {
        hold.cover(buf.len() + chunk.len())?;
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
}

/// Reads until the first complete event; returns the bytes held, the first event's length, the
/// rest of the stream, and the budget the held bytes take.
async fn hold_first_event(
    framing: Framing,
    mut body: BodyStream,
    mut hold: Hold,
) -> Result<(Bytes, usize, BodyStream, Reservation), Unread> {
    let mut buf = BytesMut::new();
    while let Some(chunk) = body.next().await.transpose()? {
        hold.cover(buf.len() + chunk.len())?;
        buf.extend_from_slice(&chunk);
        if let Some(len) = framing.first_event_len(&buf) {
            return Ok((buf.freeze(), len, body, hold.reservation));
        }
    }
    if buf.is_empty() {
        return Err(TransportError::Dropped.into());
    }
    let len = buf.len();
    Ok((buf.freeze(), len, body, hold.reservation))
}

/// The client's side of a committed stream: the held bytes, then the upstream's, then either a
/// clean end (the key succeeded) or an error event (the key is marked). Usage is read on the way
/// (and the usage event the gateway asked for is taken out). Dropped early, it records nothing
/// against the key (the client left) and counts the request as cancelled, with the usage seen.
/// When the shutdown's grace period ends first, it ends with an error event and is counted.
struct Relay {
    held: Option<Bytes>,
    /// The budget the held bytes take, given back once they are passed on.
    held_reservation: Option<Reservation>,
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
    /// Ready when the gateway stops serving.
    stop: Pin<Box<dyn Future<Output = ()> + Send>>,
}

impl Stream for Relay {
    type Item = Result<Bytes, TransportError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if let Some(held) = self.held.take() {
            let out = self.tap.feed(&held);
            drop(held);
            self.held_reservation = None;
            if !out.is_empty() {
                return Poll::Ready(Some(Ok(out)));
            }
        }
        loop {
            if self.finished {
                return Poll::Ready(None);
            }
            if self.stop.as_mut().poll(cx).is_ready() {
                let message = "The gateway is shutting down; the answer was cut short";
                return Poll::Ready(Some(Ok(self.break_off(&KeyEvent::Neutral, message))));
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
                    let message = format!("The upstream stream was interrupted: {e}");
                    return Poll::Ready(Some(Ok(
                        self.break_off(&KeyEvent::Transient { cause: e.to_string() }, &message)
                    )));
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
    /// Ends the stream early: what the tap still holds, then an error event.
    fn break_off(&mut self, event: &KeyEvent, message: &str) -> Bytes {
        self.finish(event, Outcome::StreamError);
        let mut out = BytesMut::from(&self.tap.finish()[..]);
        out.extend_from_slice(&self.framing.error_event(message));
        out.freeze()
    }

    /// The stream ended: the key's attempt is counted, and judged again only if it broke (its
    /// success was judged when its first event arrived).
    fn finish(&mut self, event: &KeyEvent, outcome: Outcome) {
        self.finished = true;
        self.permit = None;
        self.key.count(event);
        if !matches!(event, KeyEvent::Success) {
            self.key.judge(event, &self.policy, self.clock.now_ms());
        }
        self.count(outcome);
    }

    fn count(&mut self, outcome: Outcome) {
        let partial = outcome != Outcome::Success;
        let usage = match (self.tap.usage, partial) {
            (Some(usage), _) => Some(usage),
            (None, true) => Some(self.tap.estimate()),
            (None, false) => None,
        };
        if let Some(mut meter) = self.meter.take() {
            meter.finish(Ending { served: Some(self.key.id), status: self.status, outcome, usage, partial });
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

/// The model label of statistics for names the pool does not know, so clients cannot grow the
/// tables or the metrics' label sets without bound.
pub const OTHER_MODEL: &str = "other";

/// One client request being counted: the attempts as they end, the request once, when its
/// answer is complete; then the token's admission is settled. Dropped before that (the client
/// left while the gateway waited on an upstream), it counts the request and the attempt under
/// way as cancelled.
struct Meter {
    stats: Arc<Recorder>,
    requests: Arc<RequestLog>,
    clock: Arc<dyn Clock>,
    provider: ProviderName,
    /// The model as requested (canonical).
    model: Arc<str>,
    /// The pool knows the model (discovered on a key, or configured): it has its own label.
    /// Otherwise only an answer the upstream served earns it one; failures count as `other`.
    known: bool,
    token: Option<TokenId>,
    strip_usage: bool,
    admission: Option<Admission>,
    started_us: i64,
    /// Time spent waiting on upstreams before the answer was committed.
    upstream_us: u64,
    /// Of which the attempt that served waited.
    served_us: u64,
    /// When the answer was committed to the client (a stream's first event).
    committed_us: Option<i64>,
    /// The key of the attempt under way.
    current: Option<KeyId>,
    request_id: RequestId,
    stream: bool,
    /// The attempts that failed, for the request's log entry (empty, so free, unless one did).
    failed: Vec<AttemptNote>,
    /// The key whose answer the client got, when [`Ending::served`] does not say (a 404 passed
    /// through after every key lacked the model).
    last: Option<LastAttempt>,
    done: bool,
}

impl Meter {
    fn new(gateway: &Gateway, req: &ForwardRequest, measure: Measure) -> Self {
        gateway.stats.metrics.enter();
        let requested = req.model.as_deref().unwrap_or("");
        let label = gateway.pools.model_label(&req.provider, requested);
        Self {
            stats: Arc::clone(&gateway.stats),
            requests: Arc::clone(&gateway.requests),
            clock: Arc::clone(&gateway.clock),
            provider: req.provider.clone(),
            known: label.is_some() || requested.is_empty(),
            model: label.unwrap_or_else(|| requested.into()),
            token: measure.token,
            strip_usage: measure.strip_usage,
            admission: measure.admission,
            started_us: measure.started_us,
            upstream_us: 0,
            served_us: 0,
            committed_us: None,
            current: None,
            request_id: measure.request_id,
            stream: measure.stream,
            failed: Vec::new(),
            last: None,
            done: false,
        }
    }

    /// Notes an attempt that failed, for the log entry (only when the log keeps entries).
    fn failed(&mut self, note: &AttemptNote) {
        if self.requests.is_enabled() {
            self.failed.push(note.clone());
        }
    }

    /// The model turned out not to exist: its name is not the pool's to record.
    fn model_unknown(&mut self) {
        self.known = self.model.is_empty();
    }

    /// The statistics label of the model for an event of this status.
    fn label(&self, status: u16) -> Arc<str> {
        if self.known || (200..300).contains(&status) { Arc::clone(&self.model) } else { OTHER_MODEL.into() }
    }

    fn dims(&self, kind: Kind, key: Option<KeyId>, status: u16, outcome: Outcome) -> Dims {
        Dims {
            kind,
            provider: self.provider.clone(),
            model: self.label(status),
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

    /// Counts the request (and the attempt that served it), then settles the token's
    /// admission: the usage charged to its daily quota, its slot freed.
    fn finish(&mut self, ending: Ending) {
        if std::mem::replace(&mut self.done, true) {
            return;
        }
        let Ending { served, status, outcome, usage, partial } = ending;
        let now_us = self.clock.monotonic_us();
        let ttfb_us = elapsed_us(self.started_us, self.committed_us.unwrap_or(now_us));
        let timing = Timing {
            total_us: elapsed_us(self.started_us, now_us),
            ttfb_us,
            overhead_us: ttfb_us.saturating_sub(self.upstream_us),
        };
        let last = match (served, self.current) {
            (Some(key), _) => {
                self.attempt(key, status, outcome, self.served_us);
                Some(LastAttempt::Served(key))
            }
            (None, Some(key)) => {
                self.attempt(key, 0, Outcome::Cancelled, 0);
                Some(LastAttempt::Abandoned(key))
            }
            (None, None) => self.last,
        };
        let now = self.clock.now_ms();
        let dims = self.dims(Kind::Request, served, status, outcome);
        if self.requests.is_enabled() {
            let settled = Settled { dims: &dims, timing, usage, stream: self.stream };
            let failed = std::mem::take(&mut self.failed);
            self.requests.push(log_entry(now, self.request_id, settled, failed, last));
        }
        self.stats.request(now, dims, timing, usage, partial);
        self.stats.metrics.leave();
        // Dropping the admission frees the token's slot, after its usage is charged.
        if let (Some(admission), Some(usage)) = (self.admission.take(), usage) {
            admission.charge_tokens(usage.total, now);
        }
    }
}

impl Drop for Meter {
    fn drop(&mut self) {
        let ending = Ending { partial: true, ..Ending::refused(CLIENT_CLOSED, Outcome::Cancelled) };
        self.finish(ending);
    }
}

/// How a request was settled, for its log entry.
struct Settled<'a> {
    dims: &'a Dims,
    timing: Timing,
    usage: Option<Usage>,
    stream: bool,
}

/// A request's log entry: the one place one is built, whether an upstream answered or the
/// gateway did.
fn log_entry(
    now: UnixMs,
    request_id: RequestId,
    settled: Settled<'_>,
    failed: Vec<AttemptNote>,
    last: Option<LastAttempt>,
) -> RequestLogEntry {
    let Settled { dims, timing, usage, stream } = settled;
    RequestLogEntry {
        at: now,
        request_id,
        provider: dims.provider.clone(),
        model: Arc::clone(&dims.model),
        token: dims.token,
        token_name: None,
        status: dims.status,
        outcome: dims.outcome,
        latency_ms: timing.total_us / 1000,
        prompt_tokens: usage.map_or(0, |u| u.prompt),
        completion_tokens: usage.map_or(0, |u| u.completion),
        stream,
        failed,
        last,
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
