//! Unit tests of the probe against a scripted upstream.

use std::sync::Mutex;

use async_trait::async_trait;
use futures_util::stream;
use uuid::Uuid;

use super::*;
use crate::ids::KeyId;
use crate::key::KeyStatus;
use crate::ports::{TransportError, UpstreamResponse};
use crate::provider::{ProviderKind, ProviderName};

const T0: i64 = 1_700_000_000_000;

/// Answers by URL suffix: (suffix, status, body); records the URLs and models asked for.
struct Scripted {
    answers: Vec<(&'static str, u16, &'static str)>,
    seen: Mutex<Vec<String>>,
}

#[async_trait]
impl Upstream for Scripted {
    async fn send(&self, request: UpstreamRequest) -> Result<UpstreamResponse, TransportError> {
        let body = String::from_utf8_lossy(&request.body).into_owned();
        self.seen.lock().map(|mut s| s.push(format!("{} {body}", request.url))).ok();
        let (_, status, text) =
            *self.answers.iter().find(|(suffix, ..)| request.url.ends_with(suffix)).ok_or(TransportError::Connect)?;
        let mut headers = HeaderMap::new();
        if status == 429 {
            headers.insert(http::header::RETRY_AFTER, HeaderValue::from_static("30"));
        }
        let chunks = stream::iter([Ok(Bytes::from_static(text.as_bytes()))]);
        Ok(UpstreamResponse {
            status: StatusCode::from_u16(status).unwrap_or(StatusCode::OK),
            headers,
            body: Box::pin(chunks),
        })
    }
}

struct Fixed;
impl Clock for Fixed {
    fn now_ms(&self) -> i64 {
        T0
    }
}

fn prober(answers: Vec<(&'static str, u16, &'static str)>) -> (Prober, Arc<Scripted>) {
    let upstream = Arc::new(Scripted { answers, seen: Mutex::new(Vec::new()) });
    let pools = Arc::new(Pools::new([spec().name]));
    let prober = Prober {
        upstream: upstream.clone(),
        pools,
        clock: Arc::new(Fixed),
        policy: FailurePolicy::default(),
        quota: QuotaRest::default(),
    };
    (prober, upstream)
}

fn spec() -> ProviderSpec {
    ProviderSpec {
        name: ProviderName::parse("ollama").unwrap_or_else(|e| panic!("{e}")),
        kind: ProviderKind::Ollama,
        url: "http://up".into(),
        enabled: true,
        headers: http::HeaderMap::new(),
        probe_model: None,
    }
}

const TAGS: &str = r#"{"models":[{"name":"llama3"},{"name":"kimi-k2"}]}"#;

fn key() -> PoolKey {
    PoolKey::new(KeyId::from_uuid(Uuid::from_u128(1)), spec().name, Secret::new("k"), None, T0, None)
}

#[tokio::test]
async fn a_good_key_is_healthy_and_its_models_are_discovered() {
    let (prober, upstream) = prober(vec![("/api/tags", 200, TAGS), ("/chat/completions", 200, "{}")]);
    let report = prober.probe(&spec(), &Secret::new("k")).await;
    assert!(report.healthy(), "{report:?}");
    assert_eq!(report.models, Some(vec!["llama3:latest".to_owned(), "kimi-k2:latest".to_owned()]), "canonical");
    let seen = upstream.seen.lock().map(|s| s.clone()).unwrap_or_default();
    assert!(seen[1].contains("\"model\":\"llama3:latest\"") && seen[1].contains("\"max_tokens\":1"), "{seen:?}");
}

#[tokio::test]
async fn the_configured_probe_model_is_used_when_the_key_has_it() {
    let (prober, upstream) = prober(vec![("/api/tags", 200, TAGS), ("/chat/completions", 200, "{}")]);
    prober.probe(&ProviderSpec { probe_model: Some("kimi-k2".into()), ..spec() }, &Secret::new("k")).await;
    let seen = upstream.seen.lock().map(|s| s.clone()).unwrap_or_default();
    assert!(seen[1].contains("\"model\":\"kimi-k2\""), "{seen:?}");
}

#[tokio::test]
async fn a_rejected_key_is_reported_with_the_upstream_message() {
    let (prober, _) = prober(vec![
        ("/api/tags", 200, TAGS),
        ("/chat/completions", 401, r#"{"error":{"message":"invalid api key"}}"#),
    ]);
    let report = prober.probe(&spec(), &Secret::new("k")).await;
    assert_eq!(report.verdict, Verdict::Rejected { status: 401 });
    assert_eq!(report.detail, "HTTP 401: invalid api key");
}

#[tokio::test]
async fn a_rate_limited_key_carries_retry_after() {
    let (prober, _) = prober(vec![("/api/tags", 429, "slow down")]);
    let report = prober.probe(&spec(), &Secret::new("k")).await;
    assert!(matches!(report.verdict, Verdict::RateLimited { rest_ms: 30_000, .. }), "{:?}", report.verdict);
}

#[tokio::test]
async fn an_unreachable_upstream_is_not_the_keys_fault_yet() {
    let (prober, _) = prober(vec![]);
    let report = prober.probe(&spec(), &Secret::new("k")).await;
    assert_eq!(report.verdict, Verdict::Unreachable);
}

#[tokio::test]
async fn a_routine_pass_recovers_a_failed_key_but_not_a_manual_disable() {
    let (prober, _) = prober(vec![("/api/tags", 200, TAGS), ("/chat/completions", 200, "{}")]);
    let failed = key();
    failed.update_health(|h| {
        h.apply(&KeyEvent::Rejected { status: 401 }, Recent::default(), &FailurePolicy::default(), T0);
    });
    prober.check(&spec(), &failed, Asker::Routine).await;
    assert_eq!(failed.status(T0), KeyStatus::Active);
    assert!(failed.serves(Some("kimi-k2:latest")) && !failed.serves(Some("qwen:latest")), "models stored on the key");
    let manual = key();
    manual.update_health(|h| h.disable("operator".into(), T0, None));
    prober.check(&spec(), &manual, Asker::Routine).await;
    assert_eq!(manual.status(T0), KeyStatus::Disabled);
    prober.check(&spec(), &manual, Asker::Operator).await;
    assert_eq!(manual.status(T0), KeyStatus::Active, "an operator's verify re-enables");
}

#[tokio::test]
async fn a_failing_probe_marks_the_key() {
    let (prober, _) = prober(vec![("/api/tags", 403, "{}")]);
    let k = key();
    prober.check(&spec(), &k, Asker::Routine).await;
    assert_eq!(k.status(T0), KeyStatus::Failed);
    assert_eq!(k.counters.requests.load(std::sync::atomic::Ordering::Relaxed), 0, "probes are not client requests");
}

#[tokio::test]
async fn a_half_open_key_that_fails_its_recovery_probe_stays_out_twice_as_long() {
    let (prober, _) = prober(vec![("/api/tags", 401, "{}")]);
    let k = key();
    let policy = FailurePolicy::default();
    k.update_health(|h| {
        h.apply(&KeyEvent::Rejected { status: 401 }, Recent::default(), &policy, T0 - policy.auth_failure_ms);
    });
    assert!(k.health().hold.is_some_and(|h| h.awaiting_probe(T0)));
    prober.check(&spec(), &k, Asker::Recovery).await;
    let hold = k.health().hold.unwrap_or_else(|| panic!("still held"));
    assert_eq!(hold.until, Some(T0 + policy.disable_ms), "the first failed probe waits the base time");
    assert!(hold.reason.contains("recovery probe failed"), "{}", hold.reason);
    assert_eq!(k.status(T0), KeyStatus::Failed);
}

#[tokio::test]
async fn a_half_open_key_that_passes_its_probe_serves_again() {
    let (prober, _) = prober(vec![("/api/tags", 200, TAGS), ("/chat/completions", 200, "{}")]);
    let k = key();
    let policy = FailurePolicy::default();
    k.update_health(|h| {
        h.apply(&KeyEvent::Rejected { status: 401 }, Recent::default(), &policy, T0 - policy.auth_failure_ms);
    });
    prober.check(&spec(), &k, Asker::Recovery).await;
    assert_eq!(k.status(T0), KeyStatus::Active);
    assert!(k.health().is_clean());
}

#[tokio::test]
async fn discovered_models_become_known_to_the_keys_pool() {
    let (prober, _) = prober(vec![("/api/tags", 200, TAGS), ("/chat/completions", 200, "{}")]);
    let k = key();
    let before = prober.pools.pool(&spec().name).map(|p| p.models.generation());
    prober.check(&spec(), &k, Asker::Routine).await;
    assert!(prober.pools.known_model(&spec().name, "kimi-k2:latest"));
    assert!(!prober.pools.known_model(&spec().name, "qwen:latest"));
    assert_ne!(prober.pools.pool(&spec().name).map(|p| p.models.generation()), before, "cached lists go stale");
}
