//! `/v1/models` per provider, in the OpenAI shape, cached, never mixed between providers.

use serde_json::Value;

use crate::helpers::spawn_app;

#[tokio::test]
async fn each_provider_lists_its_own_models_in_the_openai_shape() {
    // Arrange
    let app = spawn_app().await;
    app.add_key_to(Some("ollama"), "ol").await;
    app.add_key_to(Some("openrouter"), "or").await;
    app.upstream.set_models(Some("ol"), vec!["llama3.2:3b".into(), "qwen2.5:7b".into()]);
    app.upstream.set_models(Some("or"), vec!["openai/gpt-4o-mini".into()]);
    // Act
    let ollama: Value = app.client.get(app.url("/v1/models")).bearer_auth(&app.token).send().await.unwrap().json().await.unwrap();
    let openrouter: Value = app.client.get(app.url("/openrouter/v1/models")).bearer_auth(&app.token).send().await.unwrap().json().await.unwrap();
    // Assert
    assert_eq!(ollama["object"], "list");
    let ids = |list: &Value| list["data"].as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap().to_owned()).collect::<Vec<_>>();
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
        let response = app.client.get(app.url("/v1/models")).bearer_auth(&app.token).send().await.unwrap();
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
    let tags: Value = app.client.get(app.url("/api/tags")).bearer_auth(&app.token).send().await.unwrap().json().await.unwrap();
    assert!(tags["models"][0]["name"].is_string(), "{tags}");
}
