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

/// The names of a list in either shape (`data[].id` or `models[].name`).
fn names(list: &Value) -> Vec<String> {
    let entries = list["data"].as_array().or_else(|| list["models"].as_array()).unwrap();
    entries.iter().map(|m| m["id"].as_str().or_else(|| m["name"].as_str()).unwrap().to_owned()).collect()
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

#[tokio::test]
async fn the_model_list_is_the_union_of_what_every_key_serves() {
    // Arrange: `rare` is served by two of four keys
    let app = spawn_app().await;
    for (key, models) in
        [("k1", &["common", "rare"][..]), ("k2", &["common"]), ("k3", &["common", "rare"]), ("k4", &["common"])]
    {
        app.upstream.set_models(Some(key), models.iter().map(|m| format!("{m}:latest")).collect());
    }
    validated_import(&app, "ollama", &["k1", "k2", "k3", "k4"]).await;
    let spent = app.upstream.total_calls();
    // Act
    let openai: Value = app.get_json("/v1/models").await;
    let tags: Value = app.get_json("/api/tags").await;
    // Assert
    assert_eq!(names(&openai), ["common:latest", "rare:latest"]);
    assert_eq!(names(&tags), ["common:latest", "rare:latest"]);
    let entry = &tags["models"][1];
    assert_eq!(entry["model"], "rare:latest");
    assert!(entry["modified_at"].is_string() && entry["size"].is_u64() && entry["details"].is_object(), "{entry}");
    assert_eq!(app.upstream.total_calls(), spent, "built from discovery: no key spent");
}

#[tokio::test]
async fn native_tags_are_cached_until_a_key_is_discovered() {
    // Arrange
    let app = spawn_app().await;
    let id = app.add_key("k").await;
    app.upstream.set_models(Some("k"), vec!["first:latest".into()]);
    // Act: no key discovered yet, so the list is fetched once, then cached
    for _ in 0..5 {
        assert_eq!(app.get_as(&app.token, "/api/tags").await.status(), 200);
    }
    let fetched = app.upstream.calls("k");
    app.upstream.set_models(Some("k"), vec!["first:latest".into(), "second:latest".into()]);
    let verified = app.admin_post("/admin/verify-key", json!({"id": id})).await;
    assert_eq!(verified.status(), 200);
    let probed = app.upstream.calls("k");
    let tags: Value = app.get_json("/api/tags").await;
    // Assert
    assert_eq!(fetched, 1, "five lists, one upstream call");
    assert_eq!(names(&tags), ["first:latest", "second:latest"], "a discovery makes the cached list stale");
    assert_eq!(app.upstream.calls("k"), probed, "the list after discovery costs no upstream call");
}

#[tokio::test]
async fn an_allow_list_narrows_the_pool_list_in_both_shapes() {
    // Arrange
    let app = spawn_app().await;
    app.upstream.set_models(Some("k1"), vec!["mock-gpt:latest".into(), "other:7b".into()]);
    validated_import(&app, "ollama", &["k1"]).await;
    let token = app.create_token(json!({"name": "narrow", "models": ["mock-gpt"]})).await;
    let token = token["token"].as_str().unwrap();
    // Act
    let openai: Value = app.get_as(token, "/v1/models").await.json().await.unwrap();
    let tags: Value = app.get_as(token, "/api/tags").await.json().await.unwrap();
    // Assert
    assert_eq!(names(&openai), ["mock-gpt:latest"]);
    assert_eq!(names(&tags), ["mock-gpt:latest"]);
}
