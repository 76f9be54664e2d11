//! Client token limits: requests per minute and per UTC day, tokens per UTC day, requests at
//! once and a model allow-list; each fires at its threshold and lets go again. Edited with
//! `PATCH /admin/tokens/{id}`, applied to the next request.

use std::time::Duration;

use futures_util::StreamExt;
use pool_testkit::Fault;
use reqwest::Response;
use serde_json::{Value, json};

use crate::helpers::{Options, TestApp, chat, error_of, spawn_app, spawn_app_with};

/// A token created with `limits` (merged into the creation body); returns (id, token).
async fn limited_token(app: &TestApp, limits: Value) -> (String, String) {
    let mut body = json!({"name": "limited"});
    body.as_object_mut().unwrap().extend(limits.as_object().unwrap().clone());
    let created = app.create_token(body).await;
    (created["id"].as_str().unwrap().to_owned(), created["token"].as_str().unwrap().to_owned())
}

async fn chat_as(app: &TestApp, token: &str, stream: bool) -> Response {
    app.post_as(token, "/v1/chat/completions", &chat("llama3.2:3b", stream)).await
}

fn header(response: &Response, name: &str) -> String {
    response.headers().get(name).map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default()
}

fn number(response: &Response, name: &str) -> u64 {
    header(response, name).parse().unwrap_or_else(|_| panic!("{name}: {:?}", response.headers()))
}

/// Sends requests until one is not 200; returns it.
async fn until_refused(app: &TestApp, token: &str, at_most: usize) -> Response {
    for _ in 0..at_most {
        let response = chat_as(app, token, false).await;
        if response.status() != 200 {
            return response;
        }
    }
    panic!("never refused in {at_most} requests");
}

/// Polls until a request passes (waiting on the limit, never on a fixed delay).
async fn until_admitted(app: &TestApp, token: &str, within: Duration) -> Response {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let response = chat_as(app, token, false).await;
        if response.status() == 200 || tokio::time::Instant::now() > deadline {
            return response;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn rpm_lets_the_burst_through_then_refuses_with_retry_after_and_rate_headers() {
    // Arrange
    let app = spawn_app().await;
    app.add_key("k").await;
    let (_, token) = limited_token(&app, json!({"rpm": 3})).await;
    // Act
    let mut remaining = Vec::new();
    for _ in 0..3 {
        let response = chat_as(&app, &token, false).await;
        assert_eq!(response.status(), 200);
        remaining.push(number(&response, "x-ratelimit-remaining-requests"));
    }
    let refused = chat_as(&app, &token, false).await;
    // Assert
    assert_eq!(remaining, [2, 1, 0]);
    assert_eq!(refused.status(), 429);
    assert!((19..=20).contains(&number(&refused, "retry-after")), "{:?}", refused.headers());
    assert_eq!(number(&refused, "x-ratelimit-limit-requests"), 3);
    assert_eq!(number(&refused, "x-ratelimit-remaining-requests"), 0);
    assert!(header(&refused, "x-ratelimit-reset-requests").ends_with('s'));
    let error = error_of(refused).await;
    assert_eq!(
        (error["type"].clone(), error["code"].clone()),
        (json!("rate_limit_error"), json!("rate_limit_exceeded"))
    );
    assert!(error["message"].as_str().unwrap().contains("3 requests per minute"), "{error}");
    assert_eq!(app.upstream.calls("k"), 3, "a refused request never goes upstream");
}

#[tokio::test]
async fn rpm_lets_a_request_through_again_once_the_refill_interval_has_passed() {
    // Arrange: 600 per minute is one more every 0.1 s
    let app = spawn_app().await;
    app.add_key("k").await;
    let (_, token) = limited_token(&app, json!({"rpm": 600})).await;
    // Act
    let refused = until_refused(&app, &token, 2_000).await;
    let again = until_admitted(&app, &token, Duration::from_secs(5)).await;
    // Assert
    assert_eq!(refused.status(), 429);
    assert_eq!(number(&refused, "retry-after"), 1);
    assert_eq!(again.status(), 200);
}

#[tokio::test]
async fn rpd_refuses_at_the_quota_and_a_patch_raising_it_lets_the_next_request_in() {
    // Arrange
    let app = spawn_app().await;
    app.add_key("k").await;
    let (id, token) = limited_token(&app, json!({"rpd": 2})).await;
    for _ in 0..2 {
        assert_eq!(chat_as(&app, &token, false).await.status(), 200);
    }
    // Act
    let refused = chat_as(&app, &token, false).await;
    let patched = app.admin_patch(&format!("/admin/tokens/{id}"), json!({"rpd": 5})).await;
    let after = chat_as(&app, &token, false).await;
    // Assert
    assert_eq!(refused.status(), 429);
    let retry = number(&refused, "retry-after");
    assert!((1..=86_400).contains(&retry), "seconds to the next UTC midnight: {retry}");
    assert_eq!(number(&refused, "x-ratelimit-limit-requests"), 2);
    assert!(error_of(refused).await["message"].as_str().unwrap().contains("2 requests per day"));
    assert_eq!(patched.status(), 200);
    assert_eq!(after.status(), 200);
    assert_eq!(number(&after, "x-ratelimit-remaining-requests"), 2, "5 per day, 3 used");
}

#[tokio::test]
async fn tpd_refuses_once_the_usage_the_upstream_reported_reaches_the_quota() {
    // Arrange: the fake upstream reports 18 tokens per answer
    let app = spawn_app().await;
    app.add_key("k").await;
    let (_, token) = limited_token(&app, json!({"tpd": 20})).await;
    // Act
    let first = chat_as(&app, &token, false).await;
    let second = chat_as(&app, &token, false).await;
    let third = chat_as(&app, &token, false).await;
    // Assert
    assert_eq!((first.status().as_u16(), second.status().as_u16()), (200, 200));
    assert_eq!(number(&first, "x-ratelimit-remaining-tokens"), 20);
    assert_eq!(number(&second, "x-ratelimit-remaining-tokens"), 2);
    assert_eq!(third.status(), 429);
    assert_eq!((number(&third, "x-ratelimit-limit-tokens"), number(&third, "x-ratelimit-remaining-tokens")), (20, 0));
    assert!(error_of(third).await["message"].as_str().unwrap().contains("20 tokens per day"));
    assert_eq!(app.upstream.calls("k"), 2);
}

#[tokio::test]
async fn daily_quotas_hold_across_a_restart() {
    // Arrange: a token with 2 requests a day uses both.
    let mut app = spawn_app().await;
    app.add_key("k").await;
    let (_, token) = limited_token(&app, json!({"rpd": 2})).await;
    for _ in 0..2 {
        assert_eq!(chat_as(&app, &token, false).await.status(), 200);
    }
    // Act: the gateway restarts on the same database.
    app.stop().await;
    let _dir = app.take_dir();
    let again = spawn_app_with(Options { db_url: Some(app.db_url.clone()), ..Options::new() }).await;
    let third = chat_as(&again, &token, false).await;
    // Assert
    assert_eq!(third.status(), 429, "the day's two requests were remembered");
    assert!(error_of(third).await["message"].as_str().unwrap().contains("per day"));
}

#[tokio::test]
async fn tpd_counts_streamed_answers_from_the_usage_the_gateway_asked_for() {
    // Arrange: each stream reports 11 prompt + 5 completion tokens, to the gateway only.
    let app = spawn_app().await;
    app.add_key("k").await;
    app.upstream.set_stream_chunks(5, Duration::ZERO);
    let (_, token) = limited_token(&app, json!({"tpd": 20})).await;
    // Act
    let first = chat_as(&app, &token, true).await.text().await.unwrap();
    let second = chat_as(&app, &token, true).await.text().await.unwrap();
    let third = chat_as(&app, &token, true).await;
    // Assert
    assert!(!first.contains("\"usage\"") && !second.contains("\"usage\""), "{first}");
    assert_eq!(third.status(), 429, "16 + 16 tokens used of 20");
    assert_eq!(number(&third, "x-ratelimit-remaining-tokens"), 0);
}

#[tokio::test]
async fn max_concurrent_holds_the_slot_for_a_stream_until_it_ends_or_the_client_leaves() {
    // Arrange
    let app = spawn_app_with(Options::new().set("POOL__PROXY__IDLE_TIMEOUT_SECS", "30")).await;
    app.add_key("k").await;
    let (_, token) = limited_token(&app, json!({"maxConcurrent": 1})).await;
    let finished = chat_as(&app, &token, true).await.text().await.unwrap();
    assert!(finished.contains("[DONE]"));
    app.upstream.fail_next("k", Fault::StallMidStream { after_events: 1 }, 1);
    // Act
    let held = chat_as(&app, &token, true).await;
    let mut held = held.bytes_stream();
    assert!(held.next().await.unwrap().unwrap().starts_with(b"data: "));
    let busy = chat_as(&app, &token, false).await;
    drop(held);
    let released = until_admitted(&app, &token, Duration::from_secs(5)).await;
    // Assert
    assert_eq!(busy.status(), 429);
    assert_eq!(number(&busy, "retry-after"), 1);
    assert!(error_of(busy).await["message"].as_str().unwrap().contains("1 concurrent requests"));
    assert_eq!(released.status(), 200);
}

#[tokio::test]
async fn a_finished_stream_frees_its_slot_before_the_client_sees_the_end() {
    // Arrange
    let app = spawn_app().await;
    app.add_key("k").await;
    let (_, token) = limited_token(&app, json!({"maxConcurrent": 1})).await;
    // Act
    let mut statuses = Vec::new();
    for _ in 0..5 {
        let response = chat_as(&app, &token, true).await;
        statuses.push(response.status().as_u16());
        assert!(response.text().await.unwrap().contains("[DONE]"));
    }
    // Assert
    assert_eq!(statuses, [200; 5]);
}

#[tokio::test]
async fn a_model_outside_the_allow_list_is_refused_and_model_lists_are_narrowed() {
    // Arrange
    let app = spawn_app().await;
    app.add_key("k").await;
    let (_, token) = limited_token(&app, json!({"models": ["llama3.2:3b", "qwen*"]})).await;
    // Act
    let refused = app.post_as(&token, "/v1/chat/completions", &chat("kimi-k2:1t", false)).await;
    let allowed = app.post_as(&token, "/v1/chat/completions", &chat("llama3.2:3b", false)).await;
    let by_prefix = app.post_as(&token, "/v1/chat/completions", &chat("qwen2.5:7b", false)).await;
    let listed: Value = app.get_as(&token, "/v1/models").await.json().await.unwrap();
    let tags: Value = app.get_as(&token, "/api/tags").await.json().await.unwrap();
    let unrestricted: Value = app.get_json("/v1/models").await;
    // Assert
    assert_eq!(refused.status(), 403);
    let error = error_of(refused).await;
    assert_eq!((error["code"].clone(), error["param"].clone()), (json!("model_not_allowed"), json!("model")));
    assert_eq!((allowed.status().as_u16(), by_prefix.status().as_u16()), (200, 200));
    assert_eq!(app.upstream.calls("k"), 2 + 1 + 1, "two chats, one model list, one tags list");
    let ids: Vec<&str> = listed["data"].as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["llama3.2:3b", "qwen2.5:7b"]);
    let names: Vec<&str> = tags["models"].as_array().unwrap().iter().map(|m| m["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["llama3.2:3b", "qwen2.5:7b"]);
    assert_eq!(unrestricted["data"].as_array().unwrap().len(), 3);
}

#[tokio::test]
async fn a_token_without_limits_gets_no_rate_headers() {
    // Arrange
    let app = spawn_app().await;
    app.add_key("k").await;
    // Act
    let response = app.post_chat(&chat("m", false)).await;
    // Assert
    assert_eq!(response.status(), 200);
    assert!(response.headers().keys().all(|name| !name.as_str().starts_with("x-ratelimit")));
}

#[tokio::test]
async fn limits_set_at_creation_are_listed_and_a_patch_changes_only_what_it_names() {
    // Arrange
    let app = spawn_app().await;
    app.add_key_to(Some("openrouter"), "or").await;
    let limits = json!({"rpm": 60, "rpd": 1000, "tpd": 50000, "maxConcurrent": 2, "models": ["a", "a", "b*"], "expiresIn": 3600});
    let (id, token) = limited_token(&app, limits).await;
    // Act
    let patched = app
        .admin_patch(
            &format!("/admin/tokens/{id}"),
            json!({"name": "renamed", "expiresIn": null, "rpm": null, "providers": ["openrouter"]}),
        )
        .await;
    let patched: Value = patched.json().await.unwrap();
    let list: Value = app.admin_get("/admin/tokens").await.json().await.unwrap();
    let listed = list["tokens"].as_array().unwrap().iter().find(|t| t["id"] == id.as_str()).unwrap().clone();
    // Assert
    assert_eq!(listed, patched);
    assert_eq!(listed["name"], "renamed");
    assert_eq!(listed["expiresAt"], Value::Null);
    assert_eq!(listed["providers"], json!(["openrouter"]));
    assert_eq!(
        [&listed["rpm"], &listed["rpd"], &listed["tpd"], &listed["maxConcurrent"]],
        [&Value::Null, &json!(1000), &json!(50000), &json!(2)]
    );
    assert_eq!(listed["models"], json!(["a", "b*"]), "repeats are dropped");
    let moved = app.post_as(&token, "/v1/chat/completions", &chat("a", false)).await;
    assert_eq!(moved.status(), 403, "the provider scope applies to the next request");
    assert_eq!(app.post_as(&token, "/openrouter/v1/chat/completions", &chat("b1", false)).await.status(), 200);
}

#[tokio::test]
async fn token_edits_are_validated() {
    // Arrange
    let app = spawn_app().await;
    let (id, _) = limited_token(&app, json!({})).await;
    let path = format!("/admin/tokens/{id}");
    // Act and Assert
    for bad in [
        json!({"rpm": "ten"}),
        json!({"rpm": 0}),
        json!({"rpm": -1}),
        json!({"rpm": 1.5}),
        json!({"rpm": 1_000_001}),
        json!({"rpd": 0}),
        json!({"tpd": 10_000_000_000_000u64}),
        json!({"maxConcurrent": true}),
        json!({"models": []}),
        json!({"models": "llama3"}),
        json!({"models": ["ok", ""]}),
        json!({"models": ["bad\u{0}name"]}),
        json!({"name": "bell\u{7}"}),
        json!({"providers": ["nowhere"]}),
        json!({"expiresIn": -5}),
        json!({"bogus": 1}),
    ] {
        let response = app.admin_patch(&path, bad.clone()).await;
        assert_eq!(response.status(), 400, "{bad}");
        error_of(response).await;
    }
    assert_eq!(
        app.admin_patch("/admin/tokens/0190f5c9-02aa-7c41-8e0b-3f6d2a1c9e7a", json!({"rpm": 1})).await.status(),
        404
    );
    assert_eq!(app.admin_patch("/admin/tokens/not-an-id", json!({"rpm": 1})).await.status(), 404);
    let anonymous = app.client.patch(app.url(&path)).json(&json!({"rpm": 1})).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
    let bad_create = app.admin_post("/admin/tokens", json!({"name": "x", "maxConcurrent": 0})).await;
    assert_eq!(bad_create.status(), 400);
    let listed: Value = app.admin_get("/admin/tokens").await.json().await.unwrap();
    let token = listed["tokens"].as_array().unwrap().iter().find(|t| t["id"] == id.as_str()).unwrap().clone();
    assert_eq!(token["rpm"], Value::Null, "a refused edit changes nothing");
}

#[tokio::test]
async fn limits_survive_a_restart() {
    // Arrange
    let mut app = spawn_app().await;
    let key = app.add_key("k").await;
    let (id, token) = limited_token(&app, json!({"rpd": 1, "models": ["m"]})).await;
    assert_eq!(app.admin_patch(&format!("/admin/api-keys/{key}"), json!({"maxConcurrent": 3})).await.status(), 200);
    // Act
    app.stop().await;
    let dir = app.take_dir();
    let again = spawn_app_with(Options { db_url: Some(app.db_url.clone()), ..Options::new() }).await;
    // Assert
    let list: Value = again.admin_get("/admin/tokens").await.json().await.unwrap();
    let listed = list["tokens"].as_array().unwrap().iter().find(|t| t["id"] == id.as_str()).unwrap().clone();
    assert_eq!((listed["rpd"].clone(), listed["models"].clone()), (json!(1), json!(["m"])));
    assert_eq!(again.key(&key).await["maxConcurrent"], 3);
    assert_eq!(again.post_as(&token, "/v1/chat/completions", &chat("x", false)).await.status(), 403);
    drop(dir);
}
