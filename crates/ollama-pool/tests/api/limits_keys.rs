//! Upstream key limits: a key at its `maxConcurrent` or `rpm` is passed over (not blamed); a
//! pool whose every key is at its limit answers 503 with `Retry-After`.

use futures_util::StreamExt;
use pool_testkit::Fault;
use serde_json::{Value, json};

use crate::helpers::{Options, TestApp, chat, error_of, spawn_app, spawn_app_with};

/// Adds a key with `limits` merged into the body; returns its id.
async fn add_limited_key(app: &TestApp, secret: &str, limits: Value) -> String {
    let mut body = json!({"api_key": secret});
    body.as_object_mut().unwrap().extend(limits.as_object().unwrap().clone());
    let response: Value = app.admin_post("/admin/api-keys", body).await.json().await.unwrap();
    assert_eq!(response["success"], true, "{response}");
    response["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_key_with_max_concurrent_1_never_serves_two_requests_at_once() {
    // Arrange: every key's first request stalls after its first event, holding its slot
    let app = spawn_app_with(Options::new().set("POOL__PROXY__IDLE_TIMEOUT_SECS", "30")).await;
    let k1 = add_limited_key(&app, "k1", json!({"maxConcurrent": 1})).await;
    add_limited_key(&app, "k2", json!({"maxConcurrent": 1})).await;
    for key in ["k1", "k2"] {
        app.upstream.fail_next(key, Fault::StallMidStream { after_events: 1 }, 1);
    }
    // Act
    let mut first = app.post_chat(&chat("m", true)).await.bytes_stream();
    assert!(first.next().await.unwrap().unwrap().starts_with(b"data: "));
    let mut second = app.post_chat(&chat("m", true)).await.bytes_stream();
    assert!(second.next().await.unwrap().unwrap().starts_with(b"data: "));
    let third = app.post_chat(&chat("m", false)).await;
    // Assert
    assert_eq!((app.upstream.calls("k1"), app.upstream.calls("k2")), (1, 1), "one request per key");
    assert_eq!(third.status(), 503);
    assert_eq!(third.headers()["retry-after"], "1");
    let error = error_of(third).await;
    assert_eq!(error["code"], "no_available_key");
    assert!(error["message"].as_str().unwrap().contains("at its rate or concurrency limit"), "{error}");
    let key = app.key(&k1).await;
    assert_eq!((key["status"].clone(), key["failure_count"].clone()), (json!("active"), json!(0)));
    drop(first);
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
    let mut status = 503;
    while status != 200 && tokio::time::Instant::now() < deadline {
        status = app.post_chat(&chat("m", false)).await.status().as_u16();
    }
    assert_eq!(status, 200, "the slot is released when the client drops the stream");
    drop(second);
}

#[tokio::test]
async fn a_keys_rpm_spreads_the_load_to_the_other_keys_without_blaming_it() {
    // Arrange
    let app = spawn_app().await;
    let slow = add_limited_key(&app, "slow", json!({"rpm": 2})).await;
    app.add_key("free").await;
    // Act
    let mut statuses = Vec::new();
    for _ in 0..10 {
        statuses.push(app.post_chat(&chat("m", false)).await.status().as_u16());
    }
    // Assert
    assert_eq!(statuses, [200; 10]);
    assert_eq!((app.upstream.calls("slow"), app.upstream.calls("free")), (2, 8));
    let key = app.key(&slow).await;
    assert_eq!((key["status"].clone(), key["failure_count"].clone()), (json!("active"), json!(0)));
}

#[tokio::test]
async fn a_pool_whose_only_key_is_at_its_rate_limit_says_when_to_come_back() {
    // Arrange
    let app = spawn_app().await;
    let id = add_limited_key(&app, "only", json!({"rpm": 1})).await;
    assert_eq!(app.post_chat(&chat("m", false)).await.status(), 200);
    // Act
    let over = app.post_chat(&chat("m", false)).await;
    // Assert
    assert_eq!(over.status(), 503);
    let wait: u64 = over.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((59..=60).contains(&wait), "the key's next slot is a minute away: {wait}");
    assert_eq!(error_of(over).await["code"], "no_available_key");
    assert_eq!(app.upstream.calls("only"), 1);
    assert_eq!(app.key(&id).await["strikes"], 0);
}

#[tokio::test]
async fn key_limits_are_set_at_creation_edited_by_patch_and_listed() {
    // Arrange
    let app = spawn_app().await;
    let id = add_limited_key(&app, "k", json!({"rpm": 30, "maxConcurrent": 2, "username": "alice"})).await;
    let created = app.key(&id).await;
    // Act
    let patched = app.admin_patch(&format!("/admin/api-keys/{id}"), json!({"label": "bob", "rpm": null})).await;
    let patched: Value = patched.json().await.unwrap();
    let renamed =
        app.admin_patch(&format!("/admin/api-keys/{id}"), json!({"username": null, "maxConcurrent": 5})).await;
    let listed = app.key(&id).await;
    // Assert
    assert_eq!((created["rpm"].clone(), created["maxConcurrent"].clone()), (json!(30), json!(2)));
    assert_eq!((patched["username"].clone(), patched["rpm"].clone()), (json!("bob"), Value::Null));
    assert_eq!(renamed.status(), 200);
    assert_eq!((listed["username"].clone(), listed["maxConcurrent"].clone()), (Value::Null, json!(5)));
    let found: Value = app.admin_get("/admin/api-keys?search=bob").await.json().await.unwrap();
    assert_eq!(found["total"], 0, "the old label is gone from search too");
}

#[tokio::test]
async fn key_edits_are_validated() {
    // Arrange
    let app = spawn_app().await;
    let id = app.add_key("k").await;
    let path = format!("/admin/api-keys/{id}");
    // Act and Assert
    for bad in [
        json!({"rpm": 0}),
        json!({"rpm": "1"}),
        json!({"maxConcurrent": 100_001}),
        json!({"label": 5}),
        json!({"api_key": "sk-new"}),
        json!({"ttl": 60}),
    ] {
        let response = app.admin_patch(&path, bad.clone()).await;
        assert_eq!(response.status(), 400, "{bad}");
        error_of(response).await;
    }
    let bad_create = app.admin_post("/admin/api-keys", json!({"api_key": "k2", "maxConcurrent": -1})).await;
    assert_eq!(bad_create.status(), 400);
    assert_eq!(app.admin_patch("/admin/api-keys/0190f5c9-02aa-7c41-8e0b-3f6d2a1c9e7a", json!({})).await.status(), 404);
    assert_eq!(app.key(&id).await["rpm"], Value::Null);
}
