//! Unit tests of the failover use case against a scripted upstream.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, Ordering::Relaxed};

use async_trait::async_trait;
use futures_util::stream;
use uuid::Uuid;

use super::*;
use crate::key::KeyStatus;
use crate::limit::LocalLimiter;
use crate::pool::KeyLimits;
use crate::secret::Secret;

const T0: UnixMs = 1_700_000_000_000;

#[derive(Clone)]
enum Script {
    Status(u16),
    Large(usize),
    Transport(TransportError),
    Sse(Vec<Result<&'static str, TransportError>>),
    /// Each call takes the next script; the last one repeats.
    Queue(Arc<Mutex<Vec<Script>>>),
}

impl Script {
    fn queue(scripts: Vec<Script>) -> Script {
        Script::Queue(Arc::new(Mutex::new(scripts.into_iter().rev().collect())))
    }

    fn next(self) -> Script {
        let Script::Queue(queue) = self else { return self };
        let mut queue = queue.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let next = if queue.len() > 1 { queue.pop() } else { queue.last().cloned() };
        next.unwrap_or(Script::Status(200))
    }
}

struct Scripted(Mutex<HashMap<String, Script>>);

#[async_trait]
impl Upstream for Scripted {
    async fn send(&self, request: UpstreamRequest) -> Result<UpstreamResponse, TransportError> {
        let script = self.0.lock().map(|m| m.get(request.bearer.expose_secret()).cloned()).ok().flatten();
        let (status, content_type, chunks) = match script.unwrap_or(Script::Status(200)).next() {
            Script::Transport(e) => return Err(e),
            Script::Status(s) => (s, "application/json", vec![Ok(r#"{"ok":true}"#)]),
            Script::Large(n) => {
                let chunk: &'static str = Box::leak("x".repeat(1024).into_boxed_str());
                (200, "application/json", vec![Ok(chunk); n])
            }
            Script::Sse(chunks) => (200, "text/event-stream", chunks),
            Script::Queue(_) => unreachable!("a queue yields a script"),
        };
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, content_type.parse().unwrap_or_else(|_| panic!("header")));
        let body = stream::iter(chunks.into_iter().map(|c| c.map(|s: &'static str| Bytes::from_static(s.as_bytes()))));
        Ok(UpstreamResponse {
            status: StatusCode::from_u16(status).unwrap_or(StatusCode::OK),
            headers,
            body: Box::pin(body),
        })
    }
}

struct FixedClock(AtomicI64);
impl Clock for FixedClock {
    fn now_ms(&self) -> UnixMs {
        self.0.load(Relaxed)
    }
}

fn provider() -> ProviderName {
    ProviderName::parse("ollama").unwrap_or_else(|e| panic!("{e}"))
}

fn gateway(keys: &[&str], scripts: &[(&str, Script)]) -> (Gateway, Vec<Arc<PoolKey>>) {
    let pools = Pools::new([provider()]);
    let keys: Vec<_> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| {
            Arc::new(PoolKey::new(
                KeyId::from_uuid(Uuid::from_u128(i as u128 + 1)),
                provider(),
                Secret::new(*k),
                None,
                T0,
                None,
            ))
        })
        .collect();
    pools.pool(&provider()).unwrap_or_else(|| panic!("pool")).add(keys.clone());
    let scripts = scripts.iter().map(|(k, s)| ((*k).to_owned(), s.clone())).collect();
    let gateway = Gateway {
        pools: Arc::new(pools),
        policy: FailurePolicy::default(),
        quota: QuotaRest::default(),
        upstream: Arc::new(Scripted(Mutex::new(scripts))),
        clock: Arc::new(FixedClock(AtomicI64::new(T0))),
        max_response_bytes: 1 << 20,
        buffers: BufferBudget::new(1 << 30),
        deadline_ms: 60_000,
        stats: Arc::new(Recorder::new(10_000)),
        requests: Arc::new(crate::reqlog::RequestLog::new(1000, true)),
        limiter: Arc::new(LocalLimiter::default()),
        rechecks: Arc::new(ModelRechecks::default()),
        shutdown: Arc::new(crate::ports::NeverStops),
    };
    (gateway, keys)
}

fn request() -> ForwardRequest {
    ForwardRequest {
        provider: provider(),
        model: None,
        method: Method::POST,
        url: "http://up/v1/chat/completions".into(),
        headers: HeaderMap::new(),
        body: Bytes::new(),
        measure: Some(Measure::default()),
    }
}

/// What the gateway counted: (kind, key index or none, status, outcome, events), sorted.
fn counted(gw: &Gateway, keys: &[Arc<PoolKey>]) -> Vec<(Kind, Option<usize>, u16, Outcome, u64)> {
    let mut rows: Vec<_> = gw
        .stats
        .take()
        .into_iter()
        .map(|r| {
            let key = r.dims.key.and_then(|id| keys.iter().position(|k| k.id == id));
            (r.dims.kind, key, r.dims.status, r.dims.outcome, r.tally.events)
        })
        .collect();
    rows.sort();
    rows
}

async fn collect(body: Body) -> String {
    match body {
        Body::Full(b) => String::from_utf8_lossy(&b).into_owned(),
        Body::Stream(s) => {
            let chunks: Vec<_> = s.collect().await;
            chunks.into_iter().map(|c| String::from_utf8_lossy(&c.unwrap_or_default()).into_owned()).collect()
        }
    }
}

#[tokio::test]
async fn a_failing_key_is_skipped_and_the_next_one_serves() {
    let (gw, keys) = gateway(&["a", "b"], &[("a", Script::Status(503))]);
    let delivery = gw.forward(request()).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(delivery.status, StatusCode::OK);
    assert_eq!(delivery.served_by, keys[1].id);
    assert_eq!(
        delivery.failed_attempts,
        vec![AttemptNote { key: keys[0].id, outcome: "upstream answered 503".into() }]
    );
    assert_eq!(keys[0].counters.failures.load(Relaxed), 1);
    assert_eq!(keys[0].status(T0), KeyStatus::Active, "one error is no reason to rest a key");
    assert_eq!(
        counted(&gw, &keys),
        vec![
            (Kind::Request, Some(1), 200, Outcome::Success, 1),
            (Kind::Attempt, Some(0), 503, Outcome::ServerError, 1),
            (Kind::Attempt, Some(1), 200, Outcome::Success, 1),
        ],
        "one request, two attempts, each with its own outcome"
    );
}

#[tokio::test]
async fn a_client_error_is_returned_as_sent_without_blame() {
    let (gw, keys) = gateway(&["a", "b"], &[("a", Script::Status(400)), ("b", Script::Status(400))]);
    let delivery = gw.forward(request()).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(delivery.status, StatusCode::BAD_REQUEST);
    assert!(delivery.failed_attempts.is_empty());
    assert!(keys.iter().all(|k| k.status(T0) == KeyStatus::Active && k.health().is_clean()));
}

#[tokio::test]
async fn when_every_attempt_fails_the_error_names_the_last_status() {
    let scripts = [
        ("a", Script::Status(500)),
        ("b", Script::Status(401)),
        ("c", Script::Status(502)),
        ("d", Script::Status(502)),
    ];
    let (gw, keys) = gateway(&["a", "b", "c", "d"], &scripts);
    let Err(ProxyError::AllFailed { notes, .. }) = gw.forward(request()).await else { panic!("expected AllFailed") };
    assert_eq!(notes.len(), 4, "every key: the 401 spent none of the budget");
    assert_eq!(keys.iter().map(|k| k.counters.requests.load(Relaxed)).sum::<u64>(), 4);
    let counted = counted(&gw, &keys);
    assert_eq!(counted.iter().filter(|r| r.0 == Kind::Attempt).count(), 4);
    assert_eq!(counted[0], (Kind::Request, None, 502, Outcome::Failed, 1));
}

async fn attempts_until_failure(gw: &Gateway) -> usize {
    let Err(ProxyError::AllFailed { notes, .. }) = gw.forward(request()).await else { panic!("expected AllFailed") };
    notes.len()
}

/// Six keys that all answer 503, with the pool's shared retry budget set to `budget`.
fn six_failing_keys(budget: u32) -> Gateway {
    let names = ["a", "b", "c", "d", "e", "f"];
    let scripts: Vec<_> = names.iter().map(|k| (*k, Script::Status(503))).collect();
    let (mut gw, _) = gateway(&names, &scripts);
    gw.policy.retry_budget = budget;
    gw
}

#[tokio::test]
async fn ambiguous_failures_spend_the_budget_and_stop_the_request() {
    let gw = six_failing_keys(0);
    assert_eq!(attempts_until_failure(&gw).await, FailurePolicy::default().max_attempts as usize);
}

#[tokio::test]
async fn the_pools_retry_budget_carries_a_request_past_a_run_of_failing_keys_to_the_healthy_one() {
    let names = ["a", "b", "c", "d", "e", "f", "g", "h"];
    let drops: Vec<_> = names[..7].iter().map(|k| (*k, Script::Transport(TransportError::Dropped))).collect();
    let (gw, keys) = gateway(&names, &drops);
    let delivery = gw.forward(request()).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(delivery.served_by, keys[7].id, "seven drops in a row, then the healthy key");
    assert_eq!(delivery.failed_attempts.len(), 7);
    let pool = gw.pools.pool(&provider()).unwrap_or_else(|| panic!("pool"));
    assert_eq!(
        pool.retries.left(gw.policy.retry_budget),
        gw.policy.retry_budget - 4,
        "the fifth to eighth attempts borrowed"
    );
}

#[tokio::test]
async fn an_upstream_failing_for_everyone_drains_the_budget_and_requests_stop_at_their_own() {
    let gw = six_failing_keys(3);
    assert_eq!(attempts_until_failure(&gw).await, 6, "two borrowed, and the untaken third given back");
    assert_eq!(attempts_until_failure(&gw).await, 5, "the last one left");
    assert_eq!(attempts_until_failure(&gw).await, 4, "drained: the request's own budget only");
    let pool = gw.pools.pool(&provider()).unwrap_or_else(|| panic!("pool"));
    assert_eq!(pool.retries.left(3), 0);
}

#[tokio::test]
async fn served_requests_earn_the_budget_back_a_tenth_at_a_time() {
    let (mut gw, _) = gateway(&["a", "b", "c", "d", "e", "f"], &[]);
    gw.policy.retry_budget = 5;
    let pool = gw.pools.pool(&provider()).unwrap_or_else(|| panic!("pool"));
    assert!(pool.retries.take(5) && pool.retries.take(5));
    assert_eq!(pool.retries.left(5), 3);
    for _ in 0..9 {
        gw.forward(request()).await.unwrap_or_else(|e| panic!("{e}"));
    }
    assert_eq!(pool.retries.left(5), 3, "nine tenths is not yet an attempt");
    gw.forward(request()).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(pool.retries.left(5), 4);
}

#[tokio::test]
async fn failures_that_are_certainly_the_keys_never_keep_a_healthy_key_from_serving() {
    let names = ["a", "b", "c", "d", "e", "f", "g", "h"];
    let faults = [401, 402, 403, 429, 401, 403, 503];
    let scripts: Vec<_> = names.iter().zip(faults).map(|(k, s)| (*k, Script::Status(s))).collect();
    let (gw, keys) = gateway(&names, &scripts);
    let delivery = gw.forward(request()).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(delivery.served_by, keys[7].id);
}

#[tokio::test]
async fn no_attempt_starts_after_the_deadline() {
    let names = ["a", "b", "c"];
    let scripts: Vec<_> = names.iter().map(|k| (*k, Script::Status(401))).collect();
    let (mut gw, _) = gateway(&names, &scripts);
    gw.deadline_ms = -1;
    let Err(ProxyError::AllFailed { notes, .. }) = gw.forward(request()).await else { panic!("expected AllFailed") };
    assert_eq!(notes.len(), 1, "the first attempt always goes");
}

#[tokio::test]
async fn an_answer_too_large_to_read_fails_the_request_and_blames_no_key() {
    let (gw, keys) = gateway(&["a", "b"], &[("a", Script::Large(2048)), ("b", Script::Large(2048))]);
    let result = gw.forward(request()).await;
    assert!(matches!(&result, Err(ProxyError::Undeliverable { notes, .. }) if notes.len() == 1), "{:?}", result.err());
    assert!(keys.iter().all(|k| k.health().is_clean() && k.counters.failures.load(Relaxed) == 0));
    assert!(gw.forward(request()).await.is_err(), "the next request is not refused for want of a key");
}

#[tokio::test]
async fn an_answer_read_whole_holds_the_buffer_budget_until_its_delivery_is_dropped() {
    let (mut gw, keys) = gateway(&["a"], &[("a", Script::Large(4))]);
    gw.buffers = BufferBudget::new(4096);
    let delivery = gw.forward(request()).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(gw.buffers.in_use(), 4096, "the whole answer is reserved");
    drop(delivery);
    assert_eq!(gw.buffers.in_use(), 0);
    gw.buffers = BufferBudget::new(3000);
    let result = gw.forward(request()).await;
    assert!(matches!(&result, Err(ProxyError::Busy { notes, .. }) if notes.len() == 1), "{:?}", result.err());
    assert_eq!(gw.buffers.in_use(), 0, "a refused answer gives its bytes back");
    assert!(keys[0].health().is_clean() && keys[0].counters.failures.load(Relaxed) == 0, "no key is blamed");
}

#[tokio::test]
async fn a_held_first_stream_event_holds_the_buffer_budget_until_it_is_passed_on() {
    let script = Script::Sse(vec![Ok("data: 1\n\n"), Ok("data: 2\n\n")]);
    let (mut gw, _) = gateway(&["a"], &[("a", script)]);
    gw.buffers = BufferBudget::new(1 << 20);
    let delivery = gw.forward(request()).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(gw.buffers.in_use(), "data: 1\n\n".len());
    let Body::Stream(mut stream) = delivery.body else { panic!("a stream") };
    let first = stream.next().await;
    assert!(matches!(first, Some(Ok(_))), "{first:?}");
    assert_eq!(gw.buffers.in_use(), 0, "passed on, the held event no longer counts");
    gw.buffers = BufferBudget::new(4);
    assert!(matches!(gw.forward(request()).await, Err(ProxyError::Busy { .. })), "an event beyond the budget");
}

#[tokio::test]
async fn an_empty_pool_says_no_key() {
    let (gw, _) = gateway(&[], &[]);
    assert!(matches!(gw.forward(request()).await, Err(ProxyError::NoKey { retry_after_s: None, .. })));
}

#[tokio::test]
async fn rate_limited_keys_give_retry_after_of_the_earliest_return() {
    let (gw, keys) = gateway(&["a"], &[]);
    keys[0].record(&KeyEvent::RateLimited { rest_ms: 12_500, reason: "429".into() }, &FailurePolicy::default(), T0);
    assert!(matches!(gw.forward(request()).await, Err(ProxyError::NoKey { retry_after_s: Some(13), .. })));
}

#[tokio::test]
async fn a_stream_that_breaks_before_its_first_event_moves_to_another_key() {
    let broken = Script::Sse(vec![Ok("data: {\"par"), Err(TransportError::Dropped)]);
    let (gw, keys) =
        gateway(&["a", "b"], &[("a", broken), ("b", Script::Sse(vec![Ok("data: 1\n\n"), Ok("data: [DONE]\n\n")]))]);
    let delivery = gw.forward(request()).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(delivery.served_by, keys[1].id);
    assert_eq!(collect(delivery.body).await, "data: 1\n\ndata: [DONE]\n\n");
    assert_eq!(keys[1].counters.successes.load(Relaxed), 1, "success recorded at the stream's end");
}

#[tokio::test]
async fn a_stream_that_breaks_after_its_first_event_ends_with_an_error_event() {
    let script = Script::Sse(vec![Ok("data: 1\n\n"), Err(TransportError::IdleTimeout)]);
    let (gw, keys) = gateway(&["a"], &[("a", script)]);
    let delivery = gw.forward(request()).await.unwrap_or_else(|e| panic!("{e}"));
    let text = collect(delivery.body).await;
    assert!(text.starts_with("data: 1\n\ndata: {\"error\""), "{text}");
    assert_eq!(keys[0].counters.failures.load(Relaxed), 1);
}

#[tokio::test]
async fn streams_still_running_count_as_successes_when_errors_judge_the_key() {
    let stream = Script::Sse(vec![Ok("data: 1\n\n"), Ok("data: [DONE]\n\n")]);
    let timeout = Script::Transport(TransportError::FirstByteTimeout);
    let mut scripts = vec![stream; 4];
    scripts.extend([timeout.clone(), timeout.clone(), timeout]);
    let (gw, keys) = gateway(&["a"], &[("a", Script::queue(scripts))]);
    let mut running = Vec::new();
    for _ in 0..4 {
        running.push(gw.forward(request()).await.unwrap_or_else(|e| panic!("{e}")));
    }
    for _ in 0..3 {
        assert!(gw.forward(request()).await.is_err());
    }
    assert_eq!(keys[0].status(T0), KeyStatus::Active, "4 streams serving and 3 timeouts: the key works");
    assert_eq!(keys[0].counters.successes.load(Relaxed), 0, "a stream is counted when it ends");
    for delivery in running {
        collect(delivery.body).await;
    }
    assert_eq!(keys[0].counters.successes.load(Relaxed), 4);
}

#[tokio::test]
async fn a_stream_opening_with_an_inband_rate_limit_moves_on() {
    let inband = Script::Sse(vec![Ok("data: {\"error\":{\"code\":429,\"message\":\"slow down\"}}\n\n")]);
    let (gw, keys) = gateway(&["a", "b"], &[("a", inband), ("b", Script::Sse(vec![Ok("data: ok\n\n")]))]);
    let delivery = gw.forward(request()).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(delivery.served_by, keys[1].id);
    assert_eq!(keys[0].status(T0), KeyStatus::Cooling);
}

#[tokio::test]
async fn a_client_that_leaves_mid_stream_costs_the_key_nothing() {
    let script = Script::Sse(vec![Ok("data: 1\n\n"), Ok("data: 2\n\n")]);
    let (gw, keys) = gateway(&["a"], &[("a", script)]);
    let delivery = gw.forward(request()).await.unwrap_or_else(|e| panic!("{e}"));
    drop(delivery);
    assert_eq!(keys[0].counters.failures.load(Relaxed), 0);
    assert_eq!(keys[0].counters.successes.load(Relaxed), 0);
    assert_eq!(keys[0].status(T0), KeyStatus::Active);
}

#[tokio::test]
async fn refused_connections_blame_no_key() {
    let (gw, keys) = gateway(&["a"], &[("a", Script::Transport(TransportError::Connect))]);
    for _ in 0..5 {
        assert!(matches!(gw.forward(request()).await, Err(ProxyError::AllFailed { .. })));
    }
    assert!(keys[0].health().is_clean(), "the host refused: every key would");
    assert_eq!(keys[0].status(T0), KeyStatus::Active);
}

#[tokio::test]
async fn repeated_timeouts_rest_the_key() {
    let (gw, keys) = gateway(&["a"], &[("a", Script::Transport(TransportError::FirstByteTimeout))]);
    for _ in 0..3 {
        let _ = gw.forward(request()).await;
    }
    assert_eq!(keys[0].status(T0), KeyStatus::Cooling);
}

fn serving(names: &[&str]) -> Option<crate::pool::ModelSet> {
    Some(crate::pool::ModelSet { names: names.iter().map(|n| (*n).to_owned()).collect(), discovered_at: T0 })
}

#[tokio::test]
async fn a_404_from_a_key_thought_to_serve_the_model_moves_on_and_only_asks_for_a_recheck() {
    let (gw, keys) = gateway(&["a", "b"], &[("a", Script::Status(404))]);
    keys[0].set_models(serving(&["m"]));
    keys[1].set_models(serving(&["m"]));
    let req = ForwardRequest { model: Some("m".into()), ..request() };
    let delivery = gw.forward(req).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(delivery.served_by, keys[1].id);
    assert!(keys[0].serves(Some("m")), "a client's request never changes a key's models");
    assert!(keys[0].health().is_clean(), "not the key's fault");
    assert_eq!(gw.rechecks.take(), vec![keys[0].id], "the key's list is re-probed in the background");
}

#[tokio::test]
async fn when_every_key_listing_the_model_answers_404_the_client_gets_the_404() {
    let (gw, keys) = gateway(&["a", "b"], &[("a", Script::Status(404)), ("b", Script::Status(404))]);
    keys[0].set_models(serving(&["m"]));
    keys[1].set_models(serving(&["m"]));
    let delivery = gw.forward(ForwardRequest { model: Some("m".into()), ..request() }).await;
    let delivery = delivery.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((delivery.status, delivery.failed_attempts.len()), (StatusCode::NOT_FOUND, 2));
    let rows = gw.stats.take();
    let request = rows.iter().find(|r| r.dims.kind == Kind::Request).unwrap_or_else(|| panic!("a request row"));
    assert_eq!((&*request.dims.model, request.dims.outcome), (OTHER_MODEL, Outcome::ClientError));
}

#[tokio::test]
async fn a_404_from_a_key_with_no_known_models_is_the_clients_answer() {
    let (gw, keys) = gateway(&["a", "b"], &[("a", Script::Status(404)), ("b", Script::Status(404))]);
    let delivery = gw.forward(ForwardRequest { model: Some("nope".into()), ..request() }).await;
    assert_eq!(delivery.map(|d| d.status).ok(), Some(StatusCode::NOT_FOUND));
    assert!(keys.iter().all(|k| k.serves(Some("anything"))));
}

#[tokio::test]
async fn a_model_no_key_serves_is_reported_as_such() {
    let (gw, keys) = gateway(&["a"], &[]);
    keys[0].set_models(serving(&["other"]));
    let result = gw.forward(ForwardRequest { model: Some("m".into()), ..request() }).await;
    assert!(matches!(result, Err(ProxyError::ModelNotServed { model, .. }) if model == "m"));
}

const USAGE_EVENT: &str =
    "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":4,\"total_tokens\":7}}\n\n";

#[tokio::test]
async fn a_streams_usage_is_counted_and_the_injected_event_removed() {
    let chunks = vec![Ok("data: {\"choices\":[{}]}\n\n"), Ok(USAGE_EVENT), Ok("data: [DONE]\n\n")];
    let (gw, keys) = gateway(&["a"], &[("a", Script::Sse(chunks))]);
    let measure = Measure { strip_usage: true, ..Measure::default() };
    let delivery = gw.forward(ForwardRequest { measure: Some(measure), ..request() }).await;
    let text = collect(delivery.unwrap_or_else(|e| panic!("{e}")).body).await;
    assert_eq!(text, "data: {\"choices\":[{}]}\n\ndata: [DONE]\n\n");
    let rows = gw.stats.take();
    let request = rows.iter().find(|r| r.dims.kind == Kind::Request).unwrap_or_else(|| panic!("no request row"));
    assert_eq!((request.tally.prompt_tokens, request.tally.completion_tokens, request.tally.total_tokens), (3, 4, 7));
    assert_eq!((request.dims.outcome, request.tally.partial), (Outcome::Success, 0));
    assert_eq!(rows.len(), 2, "one request and one attempt: {rows:?}");
    let _ = keys;
}

#[tokio::test]
async fn a_stream_the_client_leaves_is_counted_once_as_cancelled_and_partial() {
    let chunks = vec![Ok("data: {\"choices\":[{}]}\n\n"), Ok("data: {\"choices\":[{}]}\n\n"), Ok(USAGE_EVENT)];
    let (gw, keys) = gateway(&["a"], &[("a", Script::Sse(chunks))]);
    let delivery = gw.forward(request()).await;
    let Body::Stream(mut stream) = delivery.unwrap_or_else(|e| panic!("{e}")).body else { panic!("a stream") };
    assert!(stream.next().await.is_some());
    drop(stream);
    let rows = gw.stats.take();
    let request = rows.iter().find(|r| r.dims.kind == Kind::Request).unwrap_or_else(|| panic!("a request row"));
    assert_eq!((request.tally.completion_tokens, request.tally.partial), (1, 1), "one event reached the client");
    gw.stats.restore(rows);
    assert_eq!(
        counted(&gw, &keys),
        vec![
            (Kind::Request, Some(0), 200, Outcome::Cancelled, 1),
            (Kind::Attempt, Some(0), 200, Outcome::Cancelled, 1)
        ]
    );
}

struct Stopped;

impl crate::ports::Shutdown for Stopped {
    fn stopped(&self) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        Box::pin(std::future::ready(()))
    }
}

#[tokio::test]
async fn a_stream_still_running_at_shutdown_ends_with_an_error_event_and_is_counted() {
    let chunks = vec![Ok("data: {\"choices\":[{}]}\n\n"), Ok("data: {\"choices\":[{}]}\n\n")];
    let (mut gw, keys) = gateway(&["a"], &[("a", Script::Sse(chunks))]);
    gw.shutdown = Arc::new(Stopped);
    let delivery = gw.forward(request()).await.unwrap_or_else(|e| panic!("{e}"));
    let text = collect(delivery.body).await;
    assert!(text.starts_with("data: {\"choices\":[{}]}\n\ndata: {\"error\""), "{text}");
    assert!(text.contains("shutting down"), "{text}");
    assert_eq!(
        counted(&gw, &keys),
        vec![
            (Kind::Request, Some(0), 200, Outcome::StreamError, 1),
            (Kind::Attempt, Some(0), 200, Outcome::StreamError, 1)
        ]
    );
    assert!(keys[0].health().is_clean(), "the gateway stopped, not the key");
}

#[tokio::test]
async fn a_request_abandoned_while_waiting_counts_its_attempt_as_cancelled() {
    let (gw, keys) = gateway(&["a"], &[]);
    {
        let mut meter = Some(Meter::new(&gw, &request(), Measure::default()));
        if let Some(m) = meter.as_mut() {
            m.current = Some(keys[0].id);
        }
    }
    assert_eq!(
        counted(&gw, &keys),
        vec![
            (Kind::Request, None, CLIENT_CLOSED, Outcome::Cancelled, 1),
            (Kind::Attempt, Some(0), 0, Outcome::Cancelled, 1)
        ]
    );
    assert_eq!(gw.stats.metrics.snapshot().in_flight, 0, "in-flight goes back down");
}

#[tokio::test]
async fn a_model_nobody_serves_is_not_kept_as_a_model_name() {
    let (gw, keys) = gateway(&["a"], &[]);
    keys[0].set_models(serving(&["m"]));
    let _ = gw.forward(ForwardRequest { model: Some("made-up".into()), ..request() }).await;
    let rows = gw.stats.take();
    assert_eq!(rows.len(), 1);
    assert_eq!(
        (&*rows[0].dims.model, rows[0].dims.status, rows[0].dims.outcome),
        (OTHER_MODEL, 404, Outcome::Rejected)
    );
}

#[tokio::test]
async fn a_stream_holds_its_keys_slot_until_it_ends() {
    // Arrange
    let script = Script::Sse(vec![Ok("data: 1\n\n"), Ok("data: 2\n\n")]);
    let (gw, keys) = gateway(&["a"], &[("a", script)]);
    keys[0].set_limits(KeyLimits { rpm: None, max_concurrent: Some(1) });
    // Act
    let open = gw.forward(request()).await.unwrap_or_else(|e| panic!("{e}"));
    let busy = gw.forward(request()).await.err();
    let Body::Stream(mut stream) = open.body else { panic!("a stream") };
    while stream.next().await.is_some() {}
    let after = gw.forward(request()).await;
    // Assert
    assert!(
        matches!(&busy, Some(ProxyError::NoKey { limited: true, retry_after_s: Some(1), .. })),
        "{:?}",
        busy.map(|e| e.to_string())
    );
    assert!(busy.is_some_and(|e| e.to_string().contains("at its rate or concurrency limit")));
    assert!(after.is_ok());
    assert!(keys[0].health().is_clean(), "a busy key is not a failing key");
}

#[tokio::test]
async fn a_key_at_its_rate_limit_sends_the_request_to_another_key() {
    // Arrange
    let (gw, keys) = gateway(&["a", "b"], &[]);
    keys[0].set_limits(KeyLimits { rpm: Some(1), max_concurrent: None });
    // Act
    let mut served = Vec::new();
    for _ in 0..5 {
        served.push(gw.forward(request()).await.unwrap_or_else(|e| panic!("{e}")).served_by);
    }
    // Assert
    assert_eq!(served.iter().filter(|id| **id == keys[0].id).count(), 1, "{served:?}");
}

/// The attempts of the one entry the request log holds, as `x-pool-attempts` reads them.
fn logged(gw: &Gateway) -> (u16, Outcome, Vec<(KeyId, String)>) {
    let entries = gw.requests.take();
    assert_eq!(entries.len(), 1, "one entry per request");
    let e = &entries[0];
    let attempts = crate::reqlog::attempt_list(&e.failed, e.last, e.status);
    (e.status, e.outcome, attempts.into_iter().map(|a| (a.key, a.reason)).collect())
}

#[tokio::test]
async fn a_request_that_failed_over_is_logged_once_with_every_attempt() {
    let (gw, keys) = gateway(&["a", "b"], &[("a", Script::Status(503))]);
    let delivery = gw.forward(request()).await.unwrap_or_else(|e| panic!("{e}"));
    drop(delivery);
    let (status, outcome, attempts) = logged(&gw);
    assert_eq!((status, outcome), (200, Outcome::Success));
    assert_eq!(attempts, vec![(keys[0].id, "upstream answered 503".to_owned()), (keys[1].id, "ok".to_owned())]);
}

#[tokio::test]
async fn a_request_whose_every_attempt_failed_is_logged_with_each_of_them() {
    let (gw, keys) = gateway(&["a", "b"], &[("a", Script::Status(500)), ("b", Script::Status(502))]);
    assert!(gw.forward(request()).await.is_err());
    let (status, outcome, attempts) = logged(&gw);
    assert_eq!((status, outcome), (502, Outcome::Failed));
    assert_eq!(attempts.iter().map(|a| a.0).collect::<Vec<_>>(), vec![keys[0].id, keys[1].id]);
}

#[tokio::test]
async fn a_stream_the_client_left_is_logged_as_cancelled_once_dropped() {
    let script = Script::Sse(vec![Ok("data: 1\n\n"), Ok("data: 2\n\n")]);
    let (gw, keys) = gateway(&["a"], &[("a", script)]);
    let delivery = gw.forward(request()).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(gw.requests.backlog(), 0, "a stream is logged when it ends");
    drop(delivery);
    let (_, outcome, attempts) = logged(&gw);
    assert_eq!(outcome, Outcome::Cancelled);
    assert_eq!(attempts, vec![(keys[0].id, "ok".to_owned())], "its first event had gone out: the key served");
}
