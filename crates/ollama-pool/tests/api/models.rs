//! Model lists (`/v1/models`, `/api/tags`) per provider: the union of what the keys serve, cached,
//! never mixed between providers; and model names under each provider's rule (on Ollama, an
//! untagged name means `:latest`; OpenAI-compatible providers compare names exactly).

use serde_json::{Value, json};

use crate::control::finished_job;
use crate::helpers::{Options, TestApp, chat, error_of, spawn_app, spawn_app_with};

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

/// Imports `keys` (one per line) into `provider` with validation, and waits for the job: each key
/// is probed, and the models its upstream lists become its discovered set.
async fn validated_import(app: &TestApp, provider: &str, keys: &[&str]) {
    let body = json!({"content": keys.join("\n"), "provider": provider});
    let response = app.admin_post("/admin/api-keys/import-with-validation", body).await;
    assert_eq!(response.status(), 202);
    let id = response.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned();
    let job = finished_job(app, &id).await;
    assert_eq!(job["valid"].as_array().map(Vec::len), Some(keys.len()), "{job}");
}

#[tokio::test]
async fn an_untagged_model_is_served_after_a_validated_import_found_its_latest_tag() {
    // Arrange
    let app = spawn_app().await;
    app.upstream.set_models(Some("k1"), vec!["mock-gpt:latest".into()]);
    validated_import(&app, "ollama", &["k1"]).await;
    // Act
    let response = app.post_chat(&chat("mock-gpt", false)).await;
    // Assert
    assert_eq!(response.status(), 200);
    let sent: Value = serde_json::from_slice(&app.upstream.last_request("k1").unwrap().body).unwrap();
    assert_eq!(sent["model"], "mock-gpt", "the body goes upstream as the client wrote it");
}

#[tokio::test]
async fn an_allow_list_entry_and_its_latest_tag_admit_each_other_on_ollama() {
    // Arrange
    let app = spawn_app().await;
    app.add_key("k").await;
    let untagged = app.create_token(json!({"name": "untagged", "models": ["mock-gpt"]})).await;
    let tagged = app.create_token(json!({"name": "tagged", "models": ["mock-gpt:latest"]})).await;
    let token = |t: &Value| t["token"].as_str().unwrap().to_owned();
    // Act
    let latest = app.post_as(&token(&untagged), "/v1/chat/completions", &chat("mock-gpt:latest", false)).await;
    let bare = app.post_as(&token(&tagged), "/v1/chat/completions", &chat("mock-gpt", false)).await;
    let other = app.post_as(&token(&untagged), "/v1/chat/completions", &chat("mock-gpt:7b", false)).await;
    // Assert
    assert_eq!(latest.status(), 200);
    assert_eq!(bare.status(), 200);
    assert_eq!(other.status(), 403, "another tag is another model");
}

#[tokio::test]
async fn an_openai_kind_provider_keeps_model_names_exactly() {
    // Arrange
    let app = spawn_app().await;
    app.upstream.set_models(Some("or1"), vec!["gpt:latest".into()]);
    validated_import(&app, "openrouter", &["or1"]).await;
    let limited = app.create_token(json!({"name": "gpt-only", "models": ["gpt"]})).await;
    let limited = limited["token"].as_str().unwrap();
    // Act
    let routed = app.post_as(&app.token, "/openrouter/v1/chat/completions", &chat("gpt", false)).await;
    let refused = app.post_as(limited, "/openrouter/v1/chat/completions", &chat("gpt:latest", false)).await;
    // Assert
    assert_eq!(routed.status(), 404, "`gpt` is not `gpt:latest` on an OpenAI-compatible provider");
    assert_eq!(error_of(routed).await["code"], "model_not_found");
    assert_eq!(refused.status(), 403);
}
