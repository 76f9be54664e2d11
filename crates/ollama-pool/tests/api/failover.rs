//! Outcome classes: what each upstream answer does to the request and to the key.

use std::time::Duration;

use pool_testkit::Fault;
use serde_json::{Value, json};

use crate::helpers::{Options, chat, error_of, spawn_app, spawn_app_with};

#[tokio::test]
async fn a_401_fails_the_key_for_an_hour_and_another_key_serves() {
    // Arrange
    let app = spawn_app().await;
    let bad = app.add_key("bad").await;
    app.add_key("good").await;
    app.upstream.set_fault("bad", Fault::status(401));
    // Act
    let mut statuses = Vec::new();
    for _ in 0..4 {
        statuses.push(app.post_chat(&chat("m", false)).await.status().as_u16());
    }
    // Assert
    assert_eq!(statuses, [200; 4]);
    assert_eq!(app.upstream.calls("bad"), 1, "a failed key is not tried again");
    let key = app.key(&bad).await;
    assert_eq!(key["status"], "failed");
    assert_eq!(key["reason"], "upstream rejected the key (401)");
    let until =
        time::OffsetDateTime::parse(key["until"].as_str().unwrap(), &time::format_description::well_known::Rfc3339)
            .unwrap();
    let left = until - time::OffsetDateTime::now_utc();
    assert!(left > time::Duration::minutes(59) && left <= time::Duration::hours(1), "{left}");
}

#[tokio::test]
async fn a_403_is_treated_like_a_401() {
    let app = spawn_app().await;
    let bad = app.add_key("bad").await;
    app.add_key("good").await;
    app.upstream.set_fault("bad", Fault::status(403));
    for _ in 0..2 {
        assert_eq!(app.post_chat(&chat("m", false)).await.status(), 200);
    }
    assert_eq!(app.key(&bad).await["status"], "failed");
}

#[tokio::test]
async fn a_429_with_retry_after_cools_the_key_that_long_and_it_comes_back_on_its_own() {
    // Arrange
    let app = spawn_app().await;
    let limited = app.add_key("limited").await;
    app.add_key("other").await;
    app.upstream.fail_next("limited", Fault::rate_limited(Some("1")), 1);
    // Act
    for _ in 0..2 {
        assert_eq!(app.post_chat(&chat("m", false)).await.status(), 200);
    }
    // Assert
    let key = app.key(&limited).await;
    assert_eq!(key["status"], "cooling");
    assert_eq!(key["reason"], "rate limited by upstream (429); short limit, resting 1 s");
    let back = app.wait_for_key(&limited, Duration::from_secs(3), |k| k["status"] == "active").await;
    assert_eq!(back["status"], "active", "the cooldown ends by itself");
    for _ in 0..4 {
        app.post_chat(&chat("m", false)).await;
    }
    assert!(app.upstream.calls("limited") >= 2, "the key is back in rotation");
}

#[tokio::test]
async fn a_429_without_retry_after_cools_for_the_configured_default() {
    let app = spawn_app_with(Options::new().set("POOL__PROXY__QUOTA_REST__SHORT_SECS", "42")).await;
    let limited = app.add_key("limited").await;
    app.add_key("other").await;
    app.upstream.set_fault("limited", Fault::rate_limited(None));
    for _ in 0..2 {
        assert_eq!(app.post_chat(&chat("m", false)).await.status(), 200);
    }
    let key = app.key(&limited).await;
    assert_eq!(key["status"], "cooling");
    let left = seconds_until(&key);
    assert!((38..=42).contains(&left), "{left}");
}

#[tokio::test]
async fn server_errors_timeouts_and_dropped_connections_move_to_the_next_key() {
    for fault in
        [Fault::status(500), Fault::status(503), Fault::SlowFirstByte(Duration::from_secs(3)), Fault::DropBeforeHeaders]
    {
        // Arrange
        let app = spawn_app().await;
        let bad = app.add_key("bad").await;
        app.add_key("good").await;
        app.upstream.set_fault("bad", fault.clone());
        // Act
        let body = chat("m", false);
        let responses = futures_util::future::join_all((0..2).map(|_| app.post_chat(&body))).await;
        // Assert
        assert!(responses.iter().all(|r| r.status() == 200), "{fault:?}");
        assert_eq!(app.upstream.calls("good"), 2, "{fault:?}: both requests were served by the good key");
        let bad = app.key(&bad).await;
        assert_eq!((bad["failure_count"].clone(), bad["status"].clone()), (json!(1), json!("active")), "{fault:?}");
    }
}

#[tokio::test]
async fn a_key_whose_errors_reach_the_ratio_is_disabled_and_probed_before_it_serves_again() {
    // Arrange: the first rest after errors is already the disable
    let options = Options::new().set("POOL__KEYS__DISABLE_AFTER", "1").set("POOL__PROXY__MAX_ATTEMPTS", "1");
    let app = spawn_app_with(options).await;
    let key = app.add_key("flaky").await;
    app.upstream.fail_next("flaky", Fault::status(502), 2);
    // Act + Assert: two errors among few attempts rest nothing
    for _ in 0..2 {
        assert_eq!(app.post_chat(&chat("m", false)).await.status(), 502);
    }
    assert_eq!(app.post_chat(&chat("m", false)).await.status(), 200);
    assert_eq!(app.key(&key).await["status"], "active");
    // four errors of five recent attempts: over the ratio, the key is disabled and half-open
    app.upstream.set_fault("flaky", Fault::status(500));
    for _ in 0..2 {
        app.post_chat(&chat("m", false)).await;
    }
    let disabled = app.key(&key).await;
    assert_eq!(
        (disabled["status"].clone(), disabled["cause"].clone()),
        (json!("disabled"), json!("errors")),
        "{disabled}"
    );
    assert!(
        disabled["reason"].as_str().unwrap().starts_with("errors after 0 rests: 4 of 5 recent attempts failed"),
        "{disabled}"
    );
    let response = app.post_chat(&chat("m", false)).await;
    assert_eq!(response.status(), 503);
    let retry_after: u64 = response.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((3590..=3600).contains(&retry_after), "the probe is due in an hour: {retry_after}");
}

#[tokio::test]
async fn client_errors_are_returned_unchanged_and_do_not_penalise_the_key() {
    // Arrange
    let app = spawn_app().await;
    let key = app.add_key("k").await;
    let body = r#"{"error":{"message":"bad temperature","type":"invalid_request_error"}}"#;
    app.upstream.set_fault("k", Fault::Status { status: 400, retry_after: None, body: Some(body.into()) });
    // Act
    let response = app.post_chat(&chat("m", false)).await;
    // Assert
    assert_eq!(response.status(), 400);
    assert_eq!(response.text().await.unwrap(), body);
    app.upstream.set_fault("k", Fault::ModelNotFound);
    let response = app.post_chat(&chat("nope", false)).await;
    assert_eq!(response.status(), 404);
    assert!(response.text().await.unwrap().contains("model \\\"nope\\\" not found"));
    let listed = app.key(&key).await;
    assert_eq!((listed["status"].clone(), listed["strikes"].clone()), (json!("active"), json!(0)));
    assert_eq!(app.upstream.calls("k"), 2, "no retry on a client error");
}

#[tokio::test]
async fn when_every_attempt_fails_the_client_gets_502_naming_the_last_upstream_status() {
    let app = spawn_app_with(Options::new().set("POOL__PROXY__RETRY_BUDGET", "0")).await;
    for key in ["a", "b", "c", "d", "e", "f"] {
        app.add_key(key).await;
        app.upstream.set_fault(key, Fault::status(503));
    }
    let response = app.post_chat(&chat("m", false)).await;
    assert_eq!(response.status(), 502);
    let error = error_of(response).await;
    assert_eq!(error["message"], "All 4 upstream attempts failed; last: upstream answered 503");
    assert_eq!(app.upstream.total_calls(), 4, "four ambiguous failures at most, each on a different key");
}

#[tokio::test]
async fn with_no_usable_key_the_client_gets_503_with_retry_after_of_the_earliest_return() {
    // Arrange
    let app = spawn_app().await;
    let empty = app.post_chat(&chat("m", false)).await;
    assert_eq!(empty.status(), 503);
    assert!(empty.headers().get("retry-after").is_none(), "no key will come back on its own");
    app.add_key("a").await;
    app.add_key("b").await;
    app.upstream.set_fault("a", Fault::rate_limited(Some("120")));
    app.upstream.set_fault("b", Fault::rate_limited(Some("30")));
    assert_eq!(app.post_chat(&chat("m", false)).await.status(), 502);
    // Act
    let response = app.post_chat(&chat("m", false)).await;
    // Assert
    assert_eq!(response.status(), 503);
    let retry_after: u64 = response.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((29..=30).contains(&retry_after), "{retry_after}");
    let error: Value = error_of(response).await;
    assert_eq!(error["code"], "no_available_key");
}

#[tokio::test]
async fn a_disabled_provider_answers_503() {
    let app = spawn_app_with(Options::new().set("POOL__PROVIDERS__OPENROUTER__ENABLED", "false")).await;
    app.add_key_to(Some("openrouter"), "or-key").await;
    let response = app.post_as(&app.token, "/openrouter/v1/chat/completions", &chat("m", false)).await;
    assert_eq!(response.status(), 503);
    assert!(error_of(response).await["message"].as_str().unwrap().contains("disabled"));
    assert_eq!(app.upstream.total_calls(), 0);
}

#[tokio::test]
async fn the_body_goes_upstream_byte_for_byte_with_the_pool_key() {
    // Arrange
    let app = spawn_app().await;
    app.add_key("k").await;
    let raw = "{ \"model\" : \"m\",\"temperature\":1.0,\"seed\":12345678901234567890123,\"messages\":[{\"role\":\"user\",\"content\":\"\\u00e9 ü\"}] }";
    // Act
    let response = app.post_raw("/v1/chat/completions", raw).await;
    // Assert
    assert_eq!(response.status(), 200);
    let seen = app.upstream.last_request("k").unwrap();
    assert_eq!(seen.body, raw.as_bytes());
    assert_eq!(seen.path, "/v1/chat/completions");
    let header = |name: &str| seen.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone());
    assert_eq!(header("authorization").as_deref(), Some("Bearer k"), "the client's token never goes upstream");
}

#[tokio::test]
async fn completions_and_embeddings_are_proxied_too() {
    let app = spawn_app().await;
    app.add_key("k").await;
    let completion = app.post_as(&app.token, "/v1/completions", &json!({"model": "m", "prompt": "hi"})).await;
    assert_eq!(completion.status(), 200);
    let embedding = app.post_as(&app.token, "/v1/embeddings", &json!({"model": "m", "input": "hi"})).await;
    assert_eq!(embedding.status(), 200);
    let body: Value = embedding.json().await.unwrap();
    assert_eq!(body["data"][0]["object"], "embedding");
    let native = app.post_as(&app.token, "/api/chat", &json!({"model": "m", "stream": false, "messages": []})).await;
    assert_eq!(native.status(), 200);
    assert_eq!(app.upstream.last_request("k").unwrap().path, "/api/chat");
}

#[tokio::test]
async fn provider_prefixed_routes_use_that_providers_keys() {
    let app = spawn_app().await;
    app.add_key_to(Some("ollama"), "ollama-key").await;
    app.add_key_to(Some("openrouter"), "or-key").await;
    let response = app.post_as(&app.token, "/openrouter/v1/chat/completions", &chat("m", false)).await;
    assert_eq!(response.status(), 200);
    assert_eq!((app.upstream.calls("or-key"), app.upstream.calls("ollama-key")), (1, 0));
    let unknown = app.post_as(&app.token, "/nope/v1/chat/completions", &chat("m", false)).await;
    assert_eq!(unknown.status(), 404);
}

#[tokio::test]
async fn upstream_requests_carry_the_providers_headers_and_nothing_of_the_clients() {
    // Arrange: OpenRouter is configured with `X-Title` by default
    let app = spawn_app().await;
    app.add_key_to(Some("openrouter"), "or-key").await;
    // Act
    let response = app
        .client
        .post(app.url("/openrouter/v1/chat/completions"))
        .bearer_auth(&app.token)
        .header("cookie", "session=private")
        .header("referer", "https://private.example/page")
        .header("user-agent", "Mozilla/5.0 (fingerprint)")
        .header("accept", "application/json")
        .json(&chat("m", false))
        .send()
        .await
        .unwrap();
    // Assert
    assert_eq!(response.status(), 200);
    let seen = app.upstream.last_request("or-key").unwrap();
    let header = |name: &str| seen.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone());
    assert_eq!(header("authorization").as_deref(), Some("Bearer or-key"));
    assert_eq!(header("x-title").as_deref(), Some("ollama-pool"), "the provider's configured header");
    assert_eq!(header("accept").as_deref(), Some("application/json"));
    assert!(header("user-agent").unwrap().starts_with("ollama-pool/"), "{:?}", header("user-agent"));
    assert_eq!(header("cookie"), None);
    assert_eq!(header("referer"), None);
}

#[tokio::test]
async fn a_key_out_of_its_weekly_quota_rests_until_the_window_can_have_reset_then_is_probed() {
    // Arrange: Ollama cloud's wording, no reset time
    let app = spawn_app().await;
    let spent = app.add_key("spent").await;
    app.add_key("other").await;
    let body = r#"{"error":"you've reached your weekly usage limit, please upgrade"}"#;
    app.upstream.set_fault("spent", Fault::Status { status: 429, retry_after: None, body: Some(body.into()) });
    // Act
    for _ in 0..2 {
        assert_eq!(app.post_chat(&chat("m", false)).await.status(), 200);
    }
    // Assert: not the flat minute of a per-minute limit
    let key = app.key(&spent).await;
    assert_eq!((key["status"].clone(), key["cause"].clone()), (json!("cooling"), json!("rate_limit")), "{key}");
    assert!(key["reason"].as_str().unwrap().contains("weekly"), "{key}");
    let left = seconds_until(&key);
    assert!((21_590..=21_600).contains(&left), "six hours, then a probe: {left}");
}

#[tokio::test]
async fn a_reset_the_upstream_gives_beats_the_class_default() {
    let app = spawn_app().await;
    let limited = app.add_key("limited").await;
    app.add_key("other").await;
    let body = r#"{"error":{"message":"hourly usage limit reached"}}"#;
    app.upstream
        .set_fault("limited", Fault::Status { status: 429, retry_after: Some("90".into()), body: Some(body.into()) });
    for _ in 0..2 {
        assert_eq!(app.post_chat(&chat("m", false)).await.status(), 200);
    }
    let key = app.key(&limited).await;
    let left = seconds_until(&key);
    assert!((85..=90).contains(&left), "{left}");
}

/// Seconds from now until the listed key's hold ends.
fn seconds_until(key: &Value) -> i64 {
    let rfc3339 = &time::format_description::well_known::Rfc3339;
    let until = time::OffsetDateTime::parse(key["until"].as_str().unwrap(), rfc3339).unwrap();
    (until - time::OffsetDateTime::now_utc()).whole_seconds()
}

#[tokio::test]
async fn new_requests_pass_over_a_key_whose_connection_just_dropped() {
    // Arrange: three keys; one drops every connection (ambiguous: it is not held at once)
    let app = spawn_app().await;
    for key in ["k1", "k2", "k3"] {
        app.add_key(key).await;
    }
    app.upstream.set_fault("k2", Fault::DropBeforeHeaders);
    // Act: well within two seconds, twelve requests one after another
    let started = std::time::Instant::now();
    let mut statuses = Vec::new();
    for _ in 0..12 {
        statuses.push(app.post_chat(&chat("m", false)).await.status().as_u16());
    }
    // Assert: every request served; after its first drop the key got no new request (rotation
    // alone would have sent it every third one)
    assert!(started.elapsed() < Duration::from_millis(1500), "the test ran within the moment");
    assert_eq!(statuses, [200; 12]);
    assert_eq!(app.upstream.calls("k2"), 1, "the key that just failed was passed over");
}

#[tokio::test]
async fn a_request_that_meets_a_run_of_keys_failing_together_walks_on_to_the_healthy_one() {
    // Arrange: seven keys added together start dropping connections at once; the eighth serves
    let app = spawn_app().await;
    for i in 1..=7 {
        let name = format!("drop{i}");
        app.add_key(&name).await;
        app.upstream.set_fault(&name, Fault::DropBeforeHeaders);
    }
    app.add_key("good").await;
    let budget = "pool_retry_budget{provider=\"ollama\"}";
    assert_eq!(app.metric(budget).await, 100.0, "a new pool starts with the whole shared budget");
    // Act
    let response = app.post_chat(&chat("m", false)).await;
    // Assert: served from the very first request, past its own four attempts
    assert_eq!(response.status(), 200);
    assert_eq!(app.upstream.calls("good"), 1);
    assert_eq!(app.upstream.total_calls(), 8, "every dropping key once, in ring order, then the good one");
    let borrowed = 8 - 4;
    assert_eq!(
        app.metric(budget).await,
        100.0 - borrowed as f64,
        "each attempt past the request's own four came from the pool"
    );
}
