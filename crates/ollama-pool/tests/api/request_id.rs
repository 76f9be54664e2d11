//! `x-request-id` on every response, and in the request's log lines.

use std::collections::HashSet;

use reqwest::Response;
use serde_json::Value;

use crate::helpers::{ADMIN, ServingBinary, chat, spawn_app};

fn request_id(response: &Response) -> String {
    response.headers().get("x-request-id").expect("x-request-id on every response").to_str().unwrap().to_owned()
}

fn is_generated(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit())
}

#[tokio::test]
async fn every_response_has_a_fresh_id_errors_and_unknown_routes_included() {
    // Arrange
    let app = spawn_app().await;
    app.add_key("k").await;
    // Act
    let responses = [
        app.post_chat(&chat("m", false)).await,
        app.post_chat(&chat("m", false)).await,
        app.post_as("sk-unknown-token", "/v1/chat/completions", &chat("m", false)).await,
        app.post_raw("/v1/chat/completions", "{not json").await,
        app.get_as(&app.token, "/no/such/route").await,
        app.client.delete(app.url("/health")).send().await.unwrap(),
        app.client.get(app.url("/health")).send().await.unwrap(),
    ];
    // Assert
    let statuses: Vec<u16> = responses.iter().map(|r| r.status().as_u16()).collect();
    assert_eq!(statuses, [200, 200, 401, 400, 404, 405, 200]);
    let ids: Vec<String> = responses.iter().map(request_id).collect();
    assert!(ids.iter().all(|id| is_generated(id)), "{ids:?}");
    assert_eq!(ids.iter().collect::<HashSet<_>>().len(), ids.len(), "unique: {ids:?}");
}

#[tokio::test]
async fn a_sane_client_id_is_echoed_and_a_hostile_one_replaced() {
    // Arrange
    let app = spawn_app().await;
    app.add_key("k").await;
    let send = |id: String| {
        let request = app.client.post(app.url("/v1/chat/completions")).bearer_auth(&app.token).json(&chat("m", false));
        async move { request.header("x-request-id", id).send().await.unwrap() }
    };
    // Act
    let sane = send("client-req_42.retry-1".to_owned()).await;
    let longest = send("a".repeat(64)).await;
    let hostile: Vec<Response> = futures_util::future::join_all(
        ["a".repeat(65), "two words".to_owned(), "x\"},\"level\":\"ERROR".to_owned(), "ünïcode".to_owned()]
            .into_iter()
            .map(send),
    )
    .await;
    // Assert
    assert_eq!(request_id(&sane), "client-req_42.retry-1");
    assert_eq!(request_id(&longest), "a".repeat(64));
    for response in &hostile {
        assert_eq!(response.status(), 200);
        assert!(is_generated(&request_id(response)), "{}", request_id(response));
    }
}

#[tokio::test]
async fn each_json_log_line_of_a_request_carries_its_request_id() {
    // Arrange: the real binary, logging JSON
    let binary = ServingBinary::start(&["--log-format", "json", "serve"], &[("RUST_LOG", "debug")]).await;
    let (base, client) = (binary.base.clone(), reqwest::Client::new());
    // Act
    let echoed = client
        .get(format!("{base}/admin/providers?secret-query=1"))
        .bearer_auth(ADMIN)
        .header("x-request-id", "trace-me-0042")
        .send()
        .await
        .unwrap();
    let generated = client.get(format!("{base}/no/such/route")).send().await.unwrap();
    let generated_id = request_id(&generated);
    let (clean, logs, _banner) = binary.stop().await;
    assert!(clean);
    // Assert
    assert_eq!(echoed.status(), 200);
    let lines: Vec<Value> = logs.lines().map(|l| serde_json::from_str(l).expect("every log line is JSON")).collect();
    for (id, path) in [("trace-me-0042", "/admin/providers"), (generated_id.as_str(), "/no/such/route")] {
        let of_request: Vec<&Value> = lines.iter().filter(|l| l["span"]["request_id"] == id).collect();
        assert!(of_request.len() >= 2, "the request's start and end lines carry {id}: {logs}");
        for line in of_request {
            assert_eq!(line["span"]["path"], path);
            assert!(line["span"]["method"].is_string());
        }
    }
    assert!(!logs.contains("secret-query"), "the query string is never logged");
}
