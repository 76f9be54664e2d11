//! Client tokens: shown once, stored as a hash, scoped, expiring, revocable at once.

use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::{chat, error_of, spawn_app};

#[tokio::test]
async fn a_token_is_shown_once_and_listed_only_by_prefix() {
    let app = spawn_app().await;
    let created = app.create_token(json!({"name": "ci"})).await;
    let token = created["token"].as_str().unwrap();
    assert!(token.starts_with("sk-") && token.len() >= 46, "{token}");
    assert!(created["id"].is_string() && created["expiresAt"].is_null());
    let list = app.admin_get("/admin/tokens").await.text().await.unwrap();
    assert!(!list.contains(token));
    let list: Value = serde_json::from_str(&list).unwrap();
    let listed = list["tokens"].as_array().unwrap().iter().find(|t| t["id"] == created["id"]).unwrap().clone();
    assert_eq!(listed["prefix"], format!("{}…", &token[..9]));
    assert_eq!(listed["name"], "ci");
}

#[tokio::test]
async fn missing_and_unknown_tokens_get_401() {
    let app = spawn_app().await;
    app.add_key("k").await;
    let anonymous = app.client.post(app.url("/v1/chat/completions")).json(&chat("m", false)).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
    let unknown = app.post_as("sk-invalid-token-123", "/v1/chat/completions", &chat("m", false)).await;
    assert_eq!(unknown.status(), 401);
    assert_eq!(error_of(unknown).await["code"], "invalid_api_key");
    assert_eq!(app.upstream.total_calls(), 0);
}

#[tokio::test]
async fn a_revoked_token_fails_on_the_very_next_request() {
    let app = spawn_app().await;
    app.add_key("k").await;
    let created = app.create_token(json!({"name": "temp"})).await;
    let token = created["token"].as_str().unwrap();
    assert_eq!(app.post_as(token, "/v1/chat/completions", &chat("m", false)).await.status(), 200);
    let revoked = app.admin_delete(&format!("/admin/tokens/{}", created["id"].as_str().unwrap()), None).await;
    assert_eq!(revoked.status(), 200);
    assert_eq!(app.post_as(token, "/v1/chat/completions", &chat("m", false)).await.status(), 401);
    assert_eq!(
        app.admin_delete(&format!("/admin/tokens/{}", created["id"].as_str().unwrap()), None).await.status(),
        404
    );
}

#[tokio::test]
async fn an_expired_token_is_refused() {
    let app = spawn_app().await;
    app.add_key("k").await;
    let created = app.create_token(json!({"name": "brief", "expiresIn": 1})).await;
    let token = created["token"].as_str().unwrap().to_owned();
    assert!(created["expiresAt"].is_string());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    let mut status = 200;
    while status == 200 && tokio::time::Instant::now() < deadline {
        status = app.post_as(&token, "/v1/chat/completions", &chat("m", false)).await.status().as_u16();
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(status, 401);
    let response = app.post_as(&token, "/v1/chat/completions", &chat("m", false)).await;
    assert_eq!(error_of(response).await["code"], "token_expired");
}

#[tokio::test]
async fn a_token_scoped_to_one_provider_is_refused_on_another() {
    let app = spawn_app().await;
    app.add_key_to(Some("openrouter"), "or").await;
    app.add_key("ol").await;
    let created = app.create_token(json!({"name": "or-only", "provider": "openrouter"})).await;
    let token = created["token"].as_str().unwrap();
    assert_eq!(app.post_as(token, "/openrouter/v1/chat/completions", &chat("m", false)).await.status(), 200);
    let refused = app.post_as(token, "/v1/chat/completions", &chat("m", false)).await;
    assert_eq!(refused.status(), 403);
    assert_eq!(error_of(refused).await["code"], "provider_not_allowed");
    let bad = app.admin_post("/admin/tokens", json!({"providers": ["nope"]})).await;
    assert_eq!(bad.status(), 400);
}

#[tokio::test]
async fn each_authenticated_request_is_counted_on_the_token() {
    let app = spawn_app().await;
    app.add_key("k").await;
    for _ in 0..3 {
        app.post_chat(&chat("m", false)).await;
    }
    let list: Value = app.admin_get("/admin/tokens").await.json().await.unwrap();
    assert_eq!(list["tokens"][0]["requestCount"], 3);
    assert!(list["tokens"][0]["lastUsedAt"].is_string());
}
