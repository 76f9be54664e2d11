//! The buffer budget (`proxy.buffer_budget_bytes`): request bodies, upstream answers read whole
//! and a stream's held first event share it; a request that finds no room within
//! `proxy.buffer_wait_ms` gets 503 `server_busy` with `Retry-After`, and the gateway stays up.

use std::time::Duration;

use pool_testkit::Fault;
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::helpers::{Options, TestApp, chat, error_of, spawn_app_with};

/// Far more than any wait under test: how long a test waits for what must happen.
const PATIENCE: Duration = Duration::from_secs(15);

/// A chat request of about `bytes` bytes of JSON.
fn padded_chat(bytes: usize, stream: bool) -> Value {
    let mut body = chat("m", stream);
    body["messages"] = json!([{"role": "user", "content": "x".repeat(bytes)}]);
    body
}

fn body_len(body: &Value) -> usize {
    serde_json::to_vec(body).unwrap().len()
}

async fn app_with_budget(budget: usize) -> TestApp {
    app_with(budget, Duration::from_millis(200)).await
}

async fn app_with(budget: usize, wait: Duration) -> TestApp {
    let options = Options::new()
        .set("POOL__PROXY__BUFFER_BUDGET_BYTES", &budget.to_string())
        .set("POOL__PROXY__BUFFER_WAIT_MS", &wait.as_millis().to_string())
        .set("POOL__PROXY__FIRST_BYTE_TIMEOUT_SECS", "10");
    let app = spawn_app_with(options).await;
    app.add_key("k1").await;
    app
}

async fn wait_until_no_bytes_are_held(app: &TestApp) {
    let deadline = Instant::now() + PATIENCE;
    while app.metric("pool_buffer_bytes").await > 0.0 {
        assert!(Instant::now() < deadline, "the budget's bytes are given back");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn bodies_beyond_the_budget_wait_then_get_503_server_busy_and_the_gateway_serves_again() {
    // Arrange: room for two bodies; the upstream holds each request for longer than the wait
    let body = padded_chat(400 * 1024, false);
    let app = app_with_budget(2 * body_len(&body) + 1024).await;
    app.upstream.set_fault("k1", Fault::SlowFirstByte(Duration::from_millis(1500)));
    // Act
    let answers = futures_util::future::join_all((0..6).map(|_| app.post_chat(&body))).await;
    // Assert
    let (mut served, mut busy) = (0, 0);
    for response in answers {
        match response.status().as_u16() {
            200 => served += 1,
            503 => {
                assert_eq!(response.headers()["retry-after"], "1");
                assert_eq!(error_of(response).await["code"], "server_busy");
                busy += 1;
            }
            other => panic!("unexpected status {other}"),
        }
    }
    assert_eq!(served + busy, 6);
    assert!((1..=2).contains(&served), "the bodies within the budget are served: {served}");
    assert!(busy >= 4, "the ones beyond it are refused: {busy}");
    assert_eq!(app.metric("pool_requests_busy_total").await, f64::from(busy));
    assert_eq!(app.metric("pool_buffer_budget_bytes").await, (2 * body_len(&body) + 1024) as f64);
    wait_until_no_bytes_are_held(&app).await;
    app.upstream.clear_fault("k1");
    assert_eq!(app.post_chat(&body).await.status(), 200, "after the burst, requests are served again");
}

#[tokio::test]
async fn bodies_beyond_the_budget_wait_for_room_and_are_served_when_it_frees() {
    // Arrange: room for one body; each request holds it while the upstream takes 300 ms
    let body = padded_chat(400 * 1024, false);
    let app = app_with(body_len(&body) + 1024, PATIENCE).await;
    app.upstream.set_fault("k1", Fault::SlowFirstByte(Duration::from_millis(300)));
    // Act
    let answers = futures_util::future::join_all((0..3).map(|_| app.post_chat(&body))).await;
    // Assert
    let statuses: Vec<u16> = answers.iter().map(|r| r.status().as_u16()).collect();
    assert_eq!(statuses, [200, 200, 200], "each waited its turn");
    assert_eq!(app.metric("pool_requests_busy_total").await, 0.0);
}

#[tokio::test]
async fn a_body_larger_than_the_whole_budget_is_refused_at_once() {
    let app = app_with(64 * 1024, PATIENCE).await;
    let started = Instant::now();
    let response = app.post_chat(&padded_chat(100 * 1024, false)).await;
    assert_eq!(response.status(), 503);
    assert_eq!(error_of(response).await["code"], "server_busy");
    assert!(started.elapsed() < PATIENCE, "it can never fit: it does not wait");
    assert_eq!(app.upstream.total_calls(), 0);
}

#[tokio::test]
async fn an_upstream_answer_read_whole_counts_toward_the_budget() {
    // Arrange: room for the request body and 16 bytes more, less than any answer
    let body = padded_chat(4096, false);
    let app = app_with_budget(body_len(&body) + 16).await;
    // Act
    let response = app.post_chat(&body).await;
    // Assert: the body fitted and went upstream; the answer did not fit
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["retry-after"], "1");
    assert_eq!(error_of(response).await["code"], "server_busy");
    assert_eq!(app.upstream.calls("k1"), 1, "the request went upstream");
    let key = app.admin_get("/admin/api-keys?fetch=all").await.json::<Value>().await.unwrap();
    assert_eq!(key["api_keys"][0]["status"], "active", "no key is blamed for the gateway's budget");
    wait_until_no_bytes_are_held(&app).await;
}

#[tokio::test]
async fn a_held_first_stream_event_counts_toward_the_budget() {
    // The body already asks for usage, so the gateway holds no spliced copy of it
    let mut body = padded_chat(4096, true);
    body["stream_options"] = json!({"include_usage": true});
    let app = app_with_budget(body_len(&body) + 16).await;
    let response = app.post_chat(&body).await;
    assert_eq!(response.status(), 503);
    assert_eq!(error_of(response).await["code"], "server_busy");
    assert_eq!(app.upstream.calls("k1"), 1, "the request went upstream; its first event did not fit");
    wait_until_no_bytes_are_held(&app).await;
}

#[tokio::test]
async fn the_copy_that_asks_a_stream_for_usage_counts_toward_the_budget() {
    // Arrange: room for the body, its answer and a little more, but not for a second copy of it
    let body = padded_chat(64 * 1024, true);
    let app = app_with_budget(body_len(&body) + 32 * 1024).await;
    // Act: the gateway must add `stream_options.include_usage` to count this stream's tokens
    let response = app.post_chat(&body).await;
    // Assert: the copy found no room, so nothing went upstream
    assert_eq!(response.status(), 503);
    assert_eq!(error_of(response).await["code"], "server_busy");
    assert_eq!(app.upstream.total_calls(), 0);
    // The same body asking for usage itself needs no copy and is served
    let mut asking = body.clone();
    asking["stream_options"] = json!({"include_usage": true});
    assert_eq!(app.post_chat(&asking).await.status(), 200);
    wait_until_no_bytes_are_held(&app).await;
}

#[tokio::test]
async fn within_the_budget_streams_and_whole_answers_are_served_and_give_their_bytes_back() {
    let app = app_with_budget(1024 * 1024).await;
    for stream in [false, true] {
        let response = app.post_chat(&padded_chat(4096, stream)).await;
        assert_eq!(response.status(), 200);
        assert!(!response.bytes().await.unwrap().is_empty());
    }
    wait_until_no_bytes_are_held(&app).await;
}
