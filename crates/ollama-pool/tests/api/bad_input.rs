//! Hostile and broken input: a clear 4xx in the OpenAI shape, the server stays up, nothing
//! stored is harmed.

use pool_testkit::Fault;
use serde_json::json;

use crate::helpers::{Options, chat, error_of, spawn_app, spawn_app_with};

#[tokio::test]
async fn malformed_bodies_get_400_and_never_reach_upstream() {
    // Arrange
    let app = spawn_app().await;
    app.add_key("k").await;
    let deep = format!("{{\"model\":\"m\",\"x\":{}1{}}}", "[".repeat(10_000), "]".repeat(10_000));
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("invalid json", b"{\"model\": \"m\",".to_vec()),
        ("not an object", b"[\"m\"]".to_vec()),
        ("empty", Vec::new()),
        ("missing model", br#"{"messages":[]}"#.to_vec()),
        ("model of the wrong type", br#"{"model":["m"]}"#.to_vec()),
        ("stream as a string", br#"{"model":"m","stream":"true"}"#.to_vec()),
        ("duplicate model", br#"{"model":"m","model":"other"}"#.to_vec()),
        ("invalid utf-8", b"{\"model\":\"\xc3\x28\"}".to_vec()),
        ("invalid utf-8 in another member", b"{\"model\":\"m\",\"messages\":[{\"content\":\"\xc3\x28\"}]}".to_vec()),
        ("markup in the model", br#"{"model":"<img src=x onerror=alert(1)>\u0007"}"#.to_vec()),
        ("very long model", format!("{{\"model\":\"{}\"}}", "m".repeat(300)).into_bytes()),
        ("deep nesting", deep.into_bytes()),
    ];
    for (name, body) in cases {
        // Act
        let response = app.post_raw("/v1/chat/completions", body).await;
        // Assert
        assert_eq!(response.status(), 400, "{name}");
        let error = error_of(response).await;
        assert_eq!(error["type"], "invalid_request_error", "{name}");
    }
    assert_eq!(app.upstream.total_calls(), 0);
    assert_eq!(app.post_chat(&chat("m", false)).await.status(), 200, "still serving");
}

#[tokio::test]
async fn a_body_over_the_limit_gets_413_whether_declared_or_streamed() {
    // Arrange
    let app = spawn_app_with(Options::new().set("POOL__PROXY__MAX_BODY_BYTES", "1024")).await;
    app.add_key("k").await;
    let big = format!("{{\"model\":\"m\",\"pad\":\"{}\"}}", "x".repeat(2000));
    // Act
    let declared = app.post_raw("/v1/chat/completions", big.clone()).await;
    let chunks = futures_util::stream::iter(vec![Ok::<_, std::io::Error>(big.clone())]);
    let streamed = app.post_raw("/v1/chat/completions", reqwest::Body::wrap_stream(chunks)).await;
    // Assert
    for response in [declared, streamed] {
        assert_eq!(response.status(), 413);
        assert_eq!(error_of(response).await["code"], "request_too_large");
    }
    assert_eq!(app.post_chat(&chat("m", false)).await.status(), 200);
}

#[tokio::test]
async fn admin_bodies_reject_wrong_types_unknown_fields_and_bad_values() {
    let app = spawn_app().await;
    let id = app.add_key("existing-key").await;
    for body in [
        json!({"api_key": 12}),
        json!({"api_key": "k", "tll": 5}),
        json!({"api_key": "has space"}),
        json!({"api_key": "k\u{0}"}),
        json!({"api_key": ""}),
        json!({"api_key": "k", "provider": "nope"}),
        json!({"api_key": "k", "ttl": -1}),
        json!({"api_key": "k", "username": "x".repeat(500)}),
        json!({"api_key": "k".repeat(5000)}),
    ] {
        let response = app.admin_post("/admin/api-keys", body.clone()).await;
        assert_eq!(response.status(), 400, "{body}");
        error_of(response).await;
    }
    let raw = app
        .client
        .post(app.url("/admin/api-keys"))
        .bearer_auth(crate::helpers::ADMIN)
        .body("{oops")
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status(), 400);
    let listed = app.key(&id).await;
    assert_eq!(listed["username"], "user-existing-key", "nothing stored was touched");
}

#[tokio::test]
async fn hostile_names_are_stored_and_returned_as_plain_data() {
    let app = spawn_app().await;
    let name = "<script>alert('x')</script> ' OR 1=1; DROP TABLE upstream_keys; -- ✓";
    let response = app.admin_post("/admin/api-keys", json!({"api_key": "k", "username": name})).await;
    let id = response.json::<serde_json::Value>().await.unwrap()["id"].as_str().unwrap().to_owned();
    assert_eq!(app.key(&id).await["username"], name);
    let token = app.create_token(json!({"name": name})).await;
    assert_eq!(token["name"], name);
}

#[tokio::test]
async fn unknown_routes_and_wrong_methods_answer_in_the_openai_shape() {
    let app = spawn_app().await;
    let missing = app.client.get(app.url("/nope")).send().await.unwrap();
    assert_eq!(missing.status(), 404);
    error_of(missing).await;
    let wrong = app.get_as(&app.token, "/v1/chat/completions").await;
    assert_eq!(wrong.status(), 405);
    error_of(wrong).await;
}

#[tokio::test]
async fn an_upstream_failure_never_corrupts_the_pool() {
    let app = spawn_app().await;
    let id = app.add_key("k").await;
    app.upstream.set_fault("k", Fault::DropBeforeHeaders);
    assert_eq!(app.post_chat(&chat("m", false)).await.status(), 502);
    let listed = app.key(&id).await;
    assert_eq!(listed["total_requests"], 1);
    assert_eq!(listed["username"], "user-k");
}
