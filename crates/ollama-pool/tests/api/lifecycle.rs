//! Life cycle: counters reach the store and survive a restart, shutdown drains in-flight
//! requests, PostgreSQL works the same, and secrets never reach the logs.

use std::time::Duration;

use futures_util::StreamExt;
use serde_json::{Value, json};

use crate::helpers::{
    ADMIN, Options, ServingBinary, chat, fresh_postgres_database, postgres_url, spawn_app, spawn_app_with,
};

#[tokio::test]
async fn counters_are_flushed_and_survive_a_restart() {
    // Arrange
    let mut app = spawn_app().await;
    let id = app.add_key("k").await;
    for _ in 0..5 {
        app.post_chat(&chat("m", false)).await;
    }
    app.upstream.set_fault("k", pool_testkit::Fault::status(429));
    app.post_chat(&chat("m", false)).await;
    // Act
    app.stop().await;
    let dir = app.take_dir();
    let again = spawn_app_with(Options { db_url: Some(app.db_url.clone()), ..Options::new() }).await;
    // Assert
    let key = again.key(&id).await;
    assert_eq!(
        (key["total_requests"].clone(), key["success_count"].clone(), key["failure_count"].clone()),
        (json!(6), json!(5), json!(1))
    );
    assert_eq!(key["status"], "cooling", "health survives a restart too");
    let tokens: Value = again.admin_get("/admin/tokens").await.json().await.unwrap();
    let counted: Vec<u64> =
        tokens["tokens"].as_array().unwrap().iter().map(|t| t["requestCount"].as_u64().unwrap()).collect();
    assert!(counted.contains(&6), "{tokens}");
    drop(dir);
}

#[tokio::test]
async fn shutdown_lets_an_in_flight_stream_finish() {
    // Arrange
    let mut app = spawn_app().await;
    app.add_key("k").await;
    app.upstream.set_stream_chunks(5, Duration::from_millis(100));
    let response = app.post_chat(&chat("m", true)).await;
    let mut body = response.bytes_stream();
    let first = body.next().await.unwrap().unwrap();
    // Act
    app.shutdown_token().cancel();
    let mut rest = Vec::from(first.as_ref());
    while let Some(chunk) = body.next().await {
        rest.extend_from_slice(&chunk.unwrap());
    }
    app.stop().await;
    // Assert
    assert!(String::from_utf8(rest).unwrap().ends_with("data: [DONE]\n\n"));
    assert!(app.client.get(app.url("/health")).send().await.is_err(), "no longer listening");
}

#[tokio::test]
async fn the_gateway_works_the_same_on_postgresql() {
    let Some(server) = postgres_url() else {
        eprintln!("skipping PostgreSQL: set POOL_TEST_POSTGRES_URL");
        return;
    };
    // Arrange
    let url = fresh_postgres_database(&server).await;
    let mut app = spawn_app_with(Options { db_url: Some(url.clone()), ..Options::new() }).await;
    let bad = app.add_key("bad").await;
    let good = app.add_key("good").await;
    app.upstream.set_fault("bad", pool_testkit::Fault::status(401));
    // Act
    for _ in 0..4 {
        assert_eq!(app.post_chat(&chat("m", false)).await.status(), 200);
    }
    assert_eq!(app.post_chat(&chat("m", true)).await.status(), 200);
    app.stop().await;
    let again = spawn_app_with(Options { db_url: Some(url), ..Options::new() }).await;
    // Assert
    let health: Value = again.get_json("/health").await;
    assert_eq!(health["storageBackend"], "postgres");
    assert_eq!(again.key(&bad).await["status"], "failed");
    assert_eq!(again.key(&good).await["success_count"], 5);
}

#[tokio::test]
async fn secrets_never_reach_the_logs() {
    // Arrange: the real binary, logging everything
    let upstream = pool_testkit::FakeUpstream::start().await.unwrap();
    let url = upstream.url();
    let binary =
        ServingBinary::start(&["serve"], &[("RUST_LOG", "trace"), ("POOL__PROVIDERS__OLLAMA__URL", &url)]).await;
    let (base, client) = (binary.base.clone(), reqwest::Client::new());
    let upstream_key = "sk-upstream-secret-value-0123456789";
    client
        .post(format!("{base}/admin/api-keys"))
        .bearer_auth(ADMIN)
        .json(&json!({"api_key": upstream_key}))
        .send()
        .await
        .unwrap();
    let created: Value = client
        .post(format!("{base}/admin/tokens"))
        .bearer_auth(ADMIN)
        .json(&json!({"name": "t"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = created["token"].as_str().unwrap().to_owned();
    // Act
    for stream in [false, true] {
        let response = client
            .post(format!("{base}/v1/chat/completions"))
            .bearer_auth(&token)
            .json(&chat("m", stream))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        response.text().await.unwrap();
    }
    client
        .post(format!("{base}/v1/chat/completions"))
        .bearer_auth("sk-wrong-token-abcdef")
        .json(&chat("m", false))
        .send()
        .await
        .unwrap();
    let (clean, stderr, stdout) = binary.stop().await;
    // Assert
    assert!(clean, "SIGTERM is a clean stop");
    let logs = stderr + &stdout;
    assert!(logs.contains("stopped"), "{logs}");
    for secret in [upstream_key, token.as_str(), ADMIN, "sk-wrong-token-abcdef"] {
        assert!(!logs.contains(secret), "a secret reached the logs");
    }
}
