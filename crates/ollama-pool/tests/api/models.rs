//! `/v1/models` per provider, in the OpenAI shape, cached, never mixed between providers.

use serde_json::Value;

use crate::helpers::{Options, spawn_app, spawn_app_with};

#[tokio::test]
async fn each_provider_lists_its_own_models_in_the_openai_shape() {
    // Arrange
    let app = spawn_app().await;
    app.add_key_to(Some("ollama"), "ol").await;
    app.add_key_to(Some("openrouter"), "or").await;
    app.upstream.set_models(Some("ol"), vec!["llama3.2:3b".into(), "qwen2.5:7b".into()]);
    app.upstream.set_models(Some("or"), vec!["openai/gpt-4o-mini".into()]);
    // Act
    let ollama: Value = app.get_json("/v1/models").await;
    let openrouter: Value = app.get_json("/openrouter/v1/models").await;
    // Assert
    assert_eq!(ollama["object"], "list");
    let ids = |list: &Value| {
        list["data"].as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap().to_owned()).collect::<Vec<_>>()
    };
    assert_eq!(ids(&ollama), ["llama3.2:3b", "qwen2.5:7b"]);
    assert_eq!(ids(&openrouter), ["openai/gpt-4o-mini"]);
    let first = &ollama["data"][0];
    assert_eq!((first["object"].as_str(), first["owned_by"].as_str()), (Some("model"), Some("ollama")));
    assert!(first["created"].is_i64());
    assert_eq!(app.upstream.last_request("ol").unwrap().path, "/api/tags");
}

#[tokio::test]
async fn the_model_list_is_cached() {
    let app = spawn_app().await;
    app.add_key("k").await;
    for _ in 0..5 {
        let response = app.get_as(&app.token, "/v1/models").await;
        assert_eq!(response.status(), 200);
    }
    assert_eq!(app.upstream.calls("k"), 1);
}

#[tokio::test]
async fn the_model_list_requires_a_token() {
    let app = spawn_app().await;
    app.add_key("k").await;
    let response = app.client.get(app.url("/v1/models")).send().await.unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(app.upstream.total_calls(), 0, "anonymous callers spend no key");
}

#[tokio::test]
async fn native_tags_pass_through() {
    let app = spawn_app().await;
    app.add_key("k").await;
    let tags: Value = app.get_json("/api/tags").await;
    assert!(tags["models"][0]["name"].is_string(), "{tags}");
}

#[tokio::test]
async fn a_requested_model_list_is_refreshed_in_the_background() {
    // Arrange: a one-second TTL, so the refresher runs every second
    let app = spawn_app_with(Options::new().set("POOL__PROXY__MODELS_TTL_SECS", "1")).await;
    app.add_key("k").await;
    assert_eq!(app.get_as(&app.token, "/v1/models").await.status(), 200);
    app.upstream.set_models(None, vec!["fresh-model".into()]);
    // Act: no client request; wait for the refresher to fetch again
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
    while app.upstream.calls("k") < 2 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    // Assert
    assert!(app.upstream.calls("k") >= 2, "the list was refetched without a client asking");
    let list = app.get_json("/v1/models").await;
    assert_eq!(list["data"][0]["id"], "fresh-model");
}
