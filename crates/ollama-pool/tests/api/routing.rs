//! Routing you can trust: with one healthy key left no client sees a failure, an outage of
//! every key ends for clients as soon as the upstream returns, answers too large to read blame
//! no key, names the pool does not know share one statistics label, a stream cut by a shutdown
//! is counted, and every change of a key's state is logged.

use std::time::Duration;

use futures_util::StreamExt;
use pool_testkit::Fault;
use serde_json::{Value, json};

use crate::helpers::{ADMIN, Options, ServingBinary, chat, error_of, spawn_app, spawn_app_with};

#[tokio::test]
async fn with_two_healthy_keys_among_eight_no_client_sees_a_failure_from_the_first_request() {
    // Arrange: six keys failing in every way a key can fail
    let app = spawn_app().await;
    let faults = [
        Fault::status(401),
        Fault::status(402),
        Fault::status(403),
        Fault::rate_limited(Some("30")),
        Fault::status(500),
        Fault::DropBeforeHeaders,
    ];
    for (i, fault) in faults.into_iter().enumerate() {
        let name = format!("bad-{i}");
        app.add_key(&name).await;
        app.upstream.set_fault(&name, fault);
    }
    app.add_key("good-1").await;
    app.add_key("good-2").await;
    // Act: the very first requests, streams and whole answers, eight at a time
    let app = &app;
    let requests = (0..32).map(|i| async move {
        let response = app.post_chat(&chat("m", i % 2 == 0)).await;
        (response.status().as_u16(), response.text().await.unwrap_or_default())
    });
    let answers: Vec<_> = futures_util::stream::iter(requests).buffer_unordered(8).collect().await;
    // Assert
    for (i, (status, body)) in answers.iter().enumerate() {
        assert_eq!(*status, 200, "request {i}: {body}");
        assert!(!body.contains("\"error\""), "request {i}: {body}");
    }
    assert_eq!(app.upstream.calls("good-1") + app.upstream.calls("good-2"), 32);
}

#[tokio::test]
async fn an_outage_of_every_key_ends_for_clients_as_soon_as_the_upstream_returns() {
    // Arrange: every key fails until all of them rest
    let app = spawn_app().await;
    let mut ids = Vec::new();
    for key in ["a", "b", "c"] {
        ids.push(app.add_key(key).await);
        app.upstream.set_fault(key, Fault::status(503));
    }
    for _ in 0..4 {
        assert_eq!(app.post_chat(&chat("m", false)).await.status(), 502);
    }
    for id in &ids {
        assert_eq!(app.key(id).await["status"], "cooling");
    }
    // Act: the upstream is back
    for key in ["a", "b", "c"] {
        app.upstream.clear_fault(key);
    }
    let first = app.post_chat(&chat("m", false)).await;
    // Assert: served at once, by a resting key tried as the last resort; then every rest is lifted
    assert_eq!(first.status(), 200, "no 503 while every key rests after errors");
    assert_eq!(app.post_chat(&chat("m", false)).await.status(), 200);
    for id in &ids {
        assert_eq!(app.key(id).await["status"], "active", "the upstream is back for every key");
    }
}

#[tokio::test]
async fn keys_out_for_certain_causes_are_not_tried_as_a_last_resort() {
    let app = spawn_app().await;
    app.add_key("rejected").await;
    app.upstream.set_fault("rejected", Fault::status(401));
    assert_eq!(app.post_chat(&chat("m", false)).await.status(), 502);
    let again = app.post_chat(&chat("m", false)).await;
    assert_eq!(again.status(), 503);
    assert_eq!(error_of(again).await["code"], "no_available_key");
    assert_eq!(app.upstream.calls("rejected"), 1);
}

#[tokio::test]
async fn an_answer_larger_than_the_limit_fails_with_502_and_cools_no_key() {
    // Arrange: the fake's completions are larger than 64 bytes
    let app = spawn_app_with(Options::new().set("POOL__PROXY__MAX_RESPONSE_BYTES", "64")).await;
    let a = app.add_key("a").await;
    let b = app.add_key("b").await;
    // Act
    let response = app.post_chat(&chat("m", false)).await;
    // Assert
    assert_eq!(response.status(), 502);
    let error = error_of(response).await;
    assert_eq!(error["code"], "upstream_undeliverable", "{error}");
    assert!(error["message"].as_str().unwrap().contains("max_response_bytes"), "{error}");
    assert_eq!(app.upstream.total_calls(), 1, "not retried on another key");
    for id in [&a, &b] {
        let key = app.key(id).await;
        assert_eq!((key["status"].clone(), key["failure_count"].clone()), (json!("active"), json!(0)), "{key}");
    }
    assert_eq!(app.post_chat(&chat("m", false)).await.status(), 502, "the next request is tried, not refused");
}

#[tokio::test]
async fn model_names_the_pool_does_not_know_are_counted_under_one_label() {
    // Arrange: discovered models
    let app = spawn_app().await;
    app.add_key("k").await;
    let checked = app.admin_post("/admin/keys/health-check", json!({})).await;
    assert_eq!(checked.status(), 200);
    // Act: typos, then a known model
    for typo in ["typo-1", "typo-2", "typo-3"] {
        assert_eq!(app.post_chat(&chat(typo, false)).await.status(), 404);
    }
    assert_eq!(app.post_chat(&chat("llama3.2:3b", false)).await.status(), 200);
    // Assert
    let stats: Value = app.admin_get("/admin/stats").await.json().await.unwrap();
    let models: Vec<String> =
        stats["topModels"].as_array().unwrap().iter().map(|m| m["model"].as_str().unwrap().to_owned()).collect();
    assert!(models.contains(&"llama3.2:3b".to_owned()), "{models:?}");
    assert!(!models.iter().any(|m| m.starts_with("typo")), "{models:?}");
    let metrics = app.admin_get("/metrics").await.text().await.unwrap();
    assert!(!metrics.contains("typo-"), "no label for a made-up name");
    assert!(metrics.contains("model=\"other\""), "{metrics}");
}

#[tokio::test]
async fn a_stream_still_running_when_the_grace_period_ends_gets_an_error_event_and_is_counted() {
    // Arrange: a slow stream, a short grace period
    let mut app = spawn_app_with(Options::new().set("POOL__SERVER__SHUTDOWN_GRACE_SECS", "0.3")).await;
    app.add_key("k").await;
    app.upstream.set_stream_chunks(40, Duration::from_millis(100));
    let response = app.post_chat(&chat("m", true)).await;
    let mut body = response.bytes_stream();
    let mut text = String::from_utf8(body.next().await.unwrap().unwrap().to_vec()).unwrap();
    // Act
    app.shutdown_token().cancel();
    while let Some(chunk) = body.next().await {
        match chunk {
            Ok(chunk) => text.push_str(&String::from_utf8_lossy(&chunk)),
            Err(_) => break,
        }
    }
    app.stop().await;
    let dir = app.take_dir();
    let again = spawn_app_with(Options { db_url: Some(app.db_url.clone()), ..Options::new() }).await;
    // Assert: the client was told, and the request was counted before the process ended
    assert!(text.contains("shutting down"), "{text}");
    assert!(!text.contains("[DONE]"), "{text}");
    let stats: Value = again.admin_get("/admin/stats").await.json().await.unwrap();
    assert_eq!(stats["totalRequests"], 1, "{stats}");
    let classes = stats["errorClasses"].as_array().unwrap();
    assert!(classes.iter().any(|c| c["outcome"] == "stream_error" && c["count"] == 1), "{stats}");
    drop(dir);
}

#[tokio::test]
async fn every_change_of_a_keys_state_is_logged_with_its_reason_and_end() {
    // Arrange: the real binary
    let upstream = pool_testkit::FakeUpstream::start().await.unwrap();
    let url = upstream.url();
    let binary = ServingBinary::start(&["serve"], &[("POOL__PROVIDERS__OLLAMA__URL", &url)]).await;
    let (base, client) = (binary.base.clone(), reqwest::Client::new());
    let secret = "sk-logged-state-change-0123456789";
    let added: Value = admin_post_json(&client, &base, "/admin/api-keys", json!({"api_key": secret})).await;
    upstream.set_fault(secret, Fault::status(401));
    let token: Value = admin_post_json(&client, &base, "/admin/tokens", json!({"name": "t"})).await;
    // Act
    let response = client
        .post(format!("{base}/v1/chat/completions"))
        .bearer_auth(token["token"].as_str().unwrap())
        .json(&chat("m", false))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 502);
    let (_, stderr, stdout) = binary.stop().await;
    // Assert
    let logs = stderr + &stdout;
    let line =
        logs.lines().find(|l| l.contains("key held")).unwrap_or_else(|| panic!("no state change logged: {logs}"));
    let id = added["id"].as_str().unwrap();
    assert!(line.contains("INFO"), "{line}");
    assert!(line.contains(id), "the key id: {line}");
    assert!(line.contains("upstream rejected the key (401)") && line.contains("until"), "{line}");
    assert!(!logs.contains(secret), "never the secret");
}

async fn admin_post_json(client: &reqwest::Client, base: &str, path: &str, body: Value) -> Value {
    client.post(format!("{base}{path}")).bearer_auth(ADMIN).json(&body).send().await.unwrap().json().await.unwrap()
}
