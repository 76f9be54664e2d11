//! The response cache, end to end: what is served again without an upstream call, what never is,
//! and its admin endpoints.

use std::time::Duration;

use pool_testkit::Fault;
use reqwest::Response;
use serde_json::{Value, json};

use crate::helpers::{ADMIN, Options, TestApp, chat, spawn_app, spawn_app_with};

fn cache_on() -> Options {
    Options::new().set("POOL__CACHE__ENABLED", "true")
}

fn x_cache(response: &Response) -> Option<String> {
    response.headers().get("x-cache").map(|v| v.to_str().unwrap().to_owned())
}

/// `x-cache` of a request with `token` to `path`, after reading the whole body.
async fn cache_state(app: &TestApp, token: &str, path: &str, body: &Value) -> Option<String> {
    let response = app.post_as(token, path, body).await;
    assert_eq!(response.status(), 200, "{path}");
    let state = x_cache(&response);
    response.bytes().await.unwrap();
    state
}

async fn stats(app: &TestApp) -> Value {
    app.admin_get("/admin/cache/stats").await.json().await.unwrap()
}

#[tokio::test]
async fn a_repeated_request_is_a_hit_that_never_reaches_the_upstream() {
    // Arrange
    let app = spawn_app_with(cache_on()).await;
    app.add_key("k").await;
    // Act
    let first = app.post_chat(&chat("m", false)).await;
    let (first_state, first_type) = (x_cache(&first), first.headers()["content-type"].clone());
    let first_body = first.text().await.unwrap();
    let second = app.post_chat(&chat("m", false)).await;
    // Assert
    assert_eq!(first_state.as_deref(), Some("MISS"));
    assert_eq!(second.status(), 200);
    assert_eq!(x_cache(&second).as_deref(), Some("HIT"));
    assert_eq!(second.headers()["content-type"], first_type);
    assert_eq!(second.text().await.unwrap(), first_body, "the stored answer, byte for byte");
    assert_eq!(app.upstream.calls("k"), 1, "the hit did not go upstream");
}

#[tokio::test]
async fn member_order_does_not_matter_but_every_value_does() {
    // Arrange
    let app = spawn_app_with(cache_on()).await;
    app.add_key("k").await;
    let raw = |body: &'static str| app.post_raw("/v1/chat/completions", body);
    // Act
    let ordered = raw(r#"{"model":"m","temperature":0,"messages":[{"role":"user","content":"hi"}]}"#).await;
    let reordered = raw(r#"{"messages":[{"content":"hi","role":"user"}],"temperature":0,"model":"m"}"#).await;
    let one = raw(r#"{"model":"m","temperature":1,"messages":[{"role":"user","content":"hi"}]}"#).await;
    let float = raw(r#"{"model":"m","temperature":0.0,"messages":[{"role":"user","content":"hi"}]}"#).await;
    let absent = raw(r#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#).await;
    let other_prompt = raw(r#"{"model":"m","temperature":0,"messages":[{"role":"user","content":"ho"}]}"#).await;
    // Assert
    let states: Vec<_> = [&ordered, &reordered, &one, &float, &absent, &other_prompt].map(x_cache).into();
    let expected = ["MISS", "HIT", "MISS", "MISS", "MISS", "MISS"].map(|s| Some(s.to_owned()));
    assert_eq!(states, expected, "temperature 0 is not 1, not 0.0 and not absent");
    assert_eq!(app.upstream.calls("k"), 5);
}

#[tokio::test]
async fn another_provider_or_route_is_a_miss() {
    // Arrange
    let app = spawn_app_with(cache_on()).await;
    app.add_key("k").await;
    app.add_key_to(Some("openrouter"), "or").await;
    let body = chat("m", false);
    let token = app.token.clone();
    // Act
    let mut states = Vec::new();
    for path in [
        "/v1/chat/completions",
        "/openrouter/v1/chat/completions",
        "/v1/completions",
        "/v1/embeddings",
        "/api/chat",
        "/api/generate",
        "/ollama/v1/chat/completions",
    ] {
        states.push((path, cache_state(&app, &token, path, &body).await));
    }
    // Assert
    let miss = Some("MISS".to_owned());
    for (path, state) in &states[..6] {
        assert_eq!(*state, miss, "{path}");
    }
    assert_eq!(states[6].1.as_deref(), Some("HIT"), "the default provider named explicitly is the same provider");
    assert_eq!(app.upstream.calls("k"), 5);
    assert_eq!(app.upstream.calls("or"), 1);
}

#[tokio::test]
async fn per_token_keeps_tokens_apart_and_the_shared_cache_does_not() {
    for (per_token, second_token_state, upstream_calls) in [("true", "MISS", 2), ("false", "HIT", 1)] {
        // Arrange
        let app = spawn_app_with(cache_on().set("POOL__CACHE__PER_TOKEN", per_token)).await;
        app.add_key("k").await;
        let other = app.create_token(json!({"name": "other"})).await["token"].as_str().unwrap().to_owned();
        let path = "/v1/chat/completions";
        // Act
        let first = cache_state(&app, &app.token, path, &chat("m", false)).await;
        let second = cache_state(&app, &other, path, &chat("m", false)).await;
        let first_again = cache_state(&app, &app.token, path, &chat("m", false)).await;
        // Assert
        assert_eq!(first.as_deref(), Some("MISS"));
        assert_eq!(second.as_deref(), Some(second_token_state), "per_token = {per_token}");
        assert_eq!(first_again.as_deref(), Some("HIT"));
        assert_eq!(app.upstream.calls("k"), upstream_calls, "per_token = {per_token}");
        assert_eq!(stats(&app).await["perToken"], per_token == "true");
    }
}

#[tokio::test]
async fn streams_are_never_cached() {
    // Arrange
    let app = spawn_app_with(cache_on()).await;
    app.add_key("k").await;
    // Act
    let mut states = Vec::new();
    for _ in 0..2 {
        let response = app.post_chat(&chat("m", true)).await;
        assert_eq!(response.status(), 200);
        states.push(x_cache(&response));
        assert!(response.text().await.unwrap().ends_with("data: [DONE]\n\n"));
    }
    // Assert
    assert_eq!(states, [None, None], "a stream carries no x-cache header");
    assert_eq!(app.upstream.calls("k"), 2);
    assert_eq!(stats(&app).await["stores"], 0);
}

#[tokio::test]
async fn upstream_errors_are_never_cached() {
    // Arrange
    let app = spawn_app_with(cache_on()).await;
    app.add_key("k").await;
    app.upstream.fail_next("k", Fault::status(400), 2);
    app.upstream.fail_next("k", Fault::status(500), 1);
    // Act
    let mut answers = Vec::new();
    for _ in 0..5 {
        let response = app.post_chat(&chat("m", false)).await;
        answers.push((response.status().as_u16(), x_cache(&response)));
    }
    // Assert
    let state = |s: &str| Some(s.to_owned());
    assert_eq!(
        answers,
        [(400, state("MISS")), (400, state("MISS")), (502, None), (200, state("MISS")), (200, state("HIT"))],
        "a client error passes through uncached, a gateway error has no x-cache, the first 200 is stored"
    );
    assert_eq!(app.upstream.calls("k"), 4);
}

#[tokio::test]
async fn an_entry_expires_after_its_ttl() {
    // Arrange
    let app = spawn_app_with(cache_on().set("POOL__CACHE__TTL_SECS", "1")).await;
    app.add_key("k").await;
    let path = "/v1/chat/completions";
    assert_eq!(cache_state(&app, &app.token, path, &chat("m", false)).await.as_deref(), Some("MISS"));
    assert_eq!(cache_state(&app, &app.token, path, &chat("m", false)).await.as_deref(), Some("HIT"));
    // Act: wait for the entry to expire, watching the cache rather than the clock
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while stats(&app).await["entries"] != 0 {
        assert!(tokio::time::Instant::now() < deadline, "the entry never expired");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let after = cache_state(&app, &app.token, path, &chat("m", false)).await;
    // Assert
    assert_eq!(after.as_deref(), Some("MISS"));
    assert_eq!(app.upstream.calls("k"), 2);
}

#[tokio::test]
async fn clear_empties_the_cache_and_needs_the_admin_token() {
    // Arrange
    let app = spawn_app_with(cache_on()).await;
    app.add_key("k").await;
    let path = "/v1/chat/completions";
    cache_state(&app, &app.token, path, &chat("m", false)).await;
    cache_state(&app, &app.token, path, &chat("other", false)).await;
    // Act
    let refused = app.post_as(&app.token, "/admin/cache/clear", &json!({})).await;
    let cleared: Value =
        app.client.post(app.url("/admin/cache/clear")).bearer_auth(ADMIN).send().await.unwrap().json().await.unwrap();
    let after = cache_state(&app, &app.token, path, &chat("m", false)).await;
    // Assert
    assert_eq!(refused.status(), 401);
    assert_eq!(cleared, json!({"cleared": 2}));
    assert_eq!(after.as_deref(), Some("MISS"));
    assert_eq!(app.upstream.calls("k"), 3);
}

#[tokio::test]
async fn stats_count_hits_misses_stores_and_evictions() {
    // Arrange
    let app = spawn_app_with(cache_on().set("POOL__CACHE__MAX_ENTRIES", "1")).await;
    app.add_key("k").await;
    let path = "/v1/chat/completions";
    // Act
    for _ in 0..3 {
        cache_state(&app, &app.token, path, &chat("m", false)).await;
    }
    let last = app.post_chat(&chat("other", false)).await.bytes().await.unwrap();
    let stats = stats(&app).await;
    // Assert
    assert_eq!(
        stats,
        json!({"enabled": true, "entries": 1, "bytes": last.len(), "maxEntries": 1, "maxBytes": 67108864,
               "ttlSecs": 300, "perToken": false, "hits": 2, "misses": 2, "evictions": 1, "stores": 2})
    );
    assert_eq!(app.admin_get("/admin/cache/stats").await.status(), 200);
    assert_eq!(app.get_as(&app.token, "/admin/cache/stats").await.status(), 401);
}

#[tokio::test]
async fn a_disabled_cache_adds_no_header_and_every_request_goes_upstream() {
    // Arrange
    let app = spawn_app().await;
    app.add_key("k").await;
    // Act
    let mut states = Vec::new();
    for _ in 0..3 {
        let response = app.post_chat(&chat("m", false)).await;
        assert_eq!(response.status(), 200);
        states.push(x_cache(&response));
    }
    // Assert
    assert_eq!(states, [None, None, None]);
    assert_eq!(app.upstream.calls("k"), 3);
    let stats = stats(&app).await;
    assert_eq!(
        (stats["enabled"].clone(), stats["entries"].clone(), stats["misses"].clone()),
        (json!(false), json!(0), json!(0))
    );
}
