//! Server-sent event streams: framing, failover before the first event, errors after it,
//! disconnects, and many streams at once.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use pool_testkit::Fault;
use serde_json::json;

use crate::helpers::{Options, chat, spawn_app, spawn_app_with};

async fn direct_stream(app: &crate::helpers::TestApp, key: &str) -> String {
    let response = reqwest::Client::new()
        .post(format!("{}/v1/chat/completions", app.upstream.url()))
        .bearer_auth(key)
        .json(&chat("llama3.2:3b", true))
        .send()
        .await
        .unwrap();
    response.text().await.unwrap()
}

/// The fake numbers its completions; everything else must match byte for byte.
fn without_ids(sse: &str) -> String {
    let mut out = String::new();
    for (i, part) in sse.split("chatcmpl-fake-").enumerate() {
        out.push_str(if i == 0 { part } else { part.trim_start_matches(|c: char| c.is_ascii_digit()) });
    }
    out
}

#[tokio::test]
async fn a_stream_reaches_the_client_byte_for_byte_as_sse() {
    // Arrange
    let app = spawn_app().await;
    app.add_key("k").await;
    let expected = direct_stream(&app, "k").await;
    // Act
    let response = app.post_chat(&chat("llama3.2:3b", true)).await;
    // Assert
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    assert_eq!(response.headers()["cache-control"], "no-cache");
    let body = response.text().await.unwrap();
    assert_eq!(without_ids(&body), without_ids(&expected));
    assert!(body.ends_with("data: [DONE]\n\n"));
    assert!(!body.contains("\"usage\""), "no usage chunk the client did not ask for");
}

#[tokio::test]
async fn a_stream_that_fails_before_its_first_event_moves_to_another_key_invisibly() {
    for fault in [
        Fault::DropMidStream { after_events: 0 },
        Fault::DropBeforeHeaders,
        Fault::status(429),
        Fault::SlowFirstByte(Duration::from_secs(3)),
    ] {
        // Arrange
        let app = spawn_app().await;
        let bad = app.add_key("bad").await;
        app.add_key("good").await;
        app.upstream.set_fault("bad", fault.clone());
        // Act
        let bodies = futures_util::future::join_all((0..2).map(|_| async {
            let response = app.post_chat(&chat("m", true)).await;
            assert_eq!(response.status(), 200, "{fault:?}");
            response.text().await.unwrap()
        }))
        .await;
        // Assert
        for body in bodies {
            assert!(body.ends_with("data: [DONE]\n\n") && !body.contains("\"error\""), "{fault:?}: {body}");
        }
        let listed = app.key(&bad).await;
        let marked = if matches!(fault, Fault::Status { .. }) {
            listed["status"] == "cooling"
        } else {
            listed["failure_count"] == 1 && listed["status"] == "active"
        };
        assert!(marked, "{fault:?}: {listed}");
        assert_eq!(app.upstream.calls("good"), 2, "{fault:?}: both streams were served by the good key");
    }
}

#[tokio::test]
async fn a_stream_that_breaks_after_its_first_event_ends_with_an_openai_error_event() {
    // Arrange
    let app = spawn_app().await;
    let key = app.add_key("k").await;
    app.upstream.set_fault("k", Fault::DropMidStream { after_events: 2 });
    // Act
    let response = app.post_chat(&chat("m", true)).await;
    // Assert
    assert_eq!(response.status(), 200);
    let body = response.text().await.unwrap();
    let events: Vec<&str> = body.split("\n\n").filter(|e| !e.is_empty()).collect();
    assert_eq!(events.len(), 3, "{body}");
    let error: serde_json::Value = serde_json::from_str(events[2].strip_prefix("data: ").unwrap()).unwrap();
    assert_eq!(error["error"]["type"], "upstream_error");
    assert!(error["error"]["message"].as_str().unwrap().contains("interrupted"));
    let listed = app.key(&key).await;
    assert_eq!(listed["failure_count"], 1);
    assert_eq!(listed["status"], "active", "one break is no reason to rest a key");
}

#[tokio::test]
async fn a_stream_that_goes_silent_is_ended_by_the_idle_timeout() {
    let app = spawn_app().await;
    app.add_key("k").await;
    app.upstream.set_fault("k", Fault::StallMidStream { after_events: 1 });
    let response = app.post_chat(&chat("m", true)).await;
    let body = response.text().await.unwrap();
    assert!(body.contains("went silent"), "{body}");
}

#[tokio::test]
async fn a_client_that_disconnects_cancels_the_upstream_request_without_penalising_the_key() {
    // Arrange
    let app = spawn_app().await;
    let key = app.add_key("k").await;
    app.upstream.set_fault("k", Fault::StallMidStream { after_events: 1 });
    let response = app.post_chat(&chat("m", true)).await;
    let mut stream = response.bytes_stream();
    let first = stream.next().await.unwrap().unwrap();
    assert!(first.starts_with(b"data: "));
    assert_eq!(app.upstream.open_connections(), 1);
    // Act
    drop(stream);
    // Assert
    assert!(
        app.upstream.wait_for_open_connections(0, Duration::from_secs(2)).await,
        "the upstream request was cancelled"
    );
    let listed = app.key(&key).await;
    assert_eq!((listed["failure_count"].clone(), listed["status"].clone()), (json!(0), json!("active")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_hundred_concurrent_streams_all_complete() {
    // Arrange
    let app = Arc::new(
        spawn_app_with(
            Options::new()
                .set("POOL__PROXY__IDLE_TIMEOUT_SECS", "10")
                .set("POOL__PROXY__FIRST_BYTE_TIMEOUT_SECS", "10")
                .set("POOL__PROXY__CONNECT_TIMEOUT_SECS", "10"),
        )
        .await,
    );
    for key in ["a", "b", "c", "d"] {
        app.add_key(key).await;
    }
    app.upstream.set_stream_chunks(5, Duration::from_millis(20));
    let client = reqwest::Client::builder().pool_max_idle_per_host(600).build().unwrap();
    // Act
    let tasks: Vec<_> = (0..500)
        .map(|_| {
            let (app, client) = (Arc::clone(&app), client.clone());
            tokio::spawn(async move {
                let response = client
                    .post(app.url("/v1/chat/completions"))
                    .bearer_auth(&app.token)
                    .json(&chat("m", true))
                    .send()
                    .await
                    .unwrap();
                let status = response.status();
                let body = response.text().await.unwrap();
                assert_eq!(status, 200, "{body}");
                body
            })
        })
        .collect();
    // Assert
    for task in tasks {
        let body = task.await.unwrap();
        assert!(body.ends_with("data: [DONE]\n\n"), "{body}");
        assert_eq!(body.matches("data: ").count(), 7, "5 content events, the stop event, [DONE]");
    }
    assert_eq!(app.upstream.total_calls(), 500, "every stream served on its first attempt");
}

#[tokio::test]
async fn native_ollama_streams_are_ndjson_and_held_until_their_first_line() {
    let app = spawn_app().await;
    app.add_key("bad").await;
    app.add_key("good").await;
    app.upstream.set_fault("bad", Fault::DropMidStream { after_events: 0 });
    for _ in 0..2 {
        let response = app.post_as(&app.token, "/api/chat", &json!({"model": "m", "messages": []})).await;
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["content-type"], "application/x-ndjson");
        let body = response.text().await.unwrap();
        let last: serde_json::Value = serde_json::from_str(body.lines().last().unwrap()).unwrap();
        assert_eq!(last["done"], true);
    }
}

#[tokio::test]
async fn include_usage_is_spliced_into_the_clients_bytes_keeping_big_numbers_and_member_order() {
    // Arrange
    let app = spawn_app().await;
    app.add_key("k").await;
    let body = r#"{"seed": 12345678901234567890123, "model":"llama3.2:3b", "stream":true,
        "stream_options": {"include_usage": false, "z": 1}, "messages":[{"role":"user","content":"hi"}], "a": 0.10000000000000000555}"#;
    // Act
    let answer = app.post_raw("/v1/chat/completions", body).await.text().await.unwrap();
    // Assert
    let sent = app.upstream.last_request("k").unwrap().body;
    assert_eq!(
        String::from_utf8_lossy(&sent),
        body.replace(r#""include_usage": false"#, r#""include_usage": true"#),
        "only the flag changed, in place"
    );
    assert!(!answer.contains("\"usage\""), "the client said false, so it gets no usage event: {answer}");
    assert!(answer.ends_with("data: [DONE]\n\n"));
}
