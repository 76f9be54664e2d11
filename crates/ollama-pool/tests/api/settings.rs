//! `GET /admin/settings`, the console's Settings page: version, uptime, storage, warnings, and
//! the effective configuration with every secret masked.

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{ADMIN, Options, spawn_app, spawn_app_with};

const MASTER_KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

#[tokio::test]
async fn settings_show_the_effective_configuration_with_secrets_masked() {
    let app = spawn_app_with(Options::new().set("POOL_MASTER_KEY", MASTER_KEY)).await;
    let response = app.admin_get("/admin/settings").await;
    assert_eq!(response.status(), StatusCode::OK);
    let text = response.text().await.unwrap();
    assert!(!text.contains(ADMIN), "the admin token is never shown");
    assert!(!text.contains(MASTER_KEY), "the master key is never shown");
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(body["config"]["admin_token"], "********");
    assert_eq!(body["config"]["master_key"], "********");
    assert_eq!(body["config"]["stats"]["flush_interval_secs"], 0.2, "the effective value, not the default");
    assert_eq!(body["config"]["proxy"]["max_attempts"], 4);
    assert!(body["config"]["providers"]["openrouter"]["url"].is_string(), "built-in providers are listed");
    assert!(body["config"]["proxy"]["buffer_budget_bytes"].as_u64().unwrap() > 0, "automatic values as resolved");
    assert!(body["config"]["server"]["max_connections"].as_u64().unwrap() > 0);
    assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(body["storage"]["status"], "ok");
    assert!(["sqlite", "postgres"].contains(&body["storage"]["backend"].as_str().unwrap()));
    assert!(body["uptimeSeconds"].as_i64().unwrap() >= 0);
    assert_eq!(body["warnings"], serde_json::json!([]), "a configured master key leaves nothing to warn about");
}

#[tokio::test]
async fn settings_warn_when_upstream_keys_are_stored_in_plaintext() {
    let app = spawn_app().await;
    let body: Value = app.admin_get("/admin/settings").await.json().await.unwrap();
    let codes: Vec<&str> = body["warnings"].as_array().unwrap().iter().map(|w| w["code"].as_str().unwrap()).collect();
    assert_eq!(codes, ["no_master_key"]);
    assert!(body["config"]["master_key"].is_null(), "an unset secret reads as unset");
}

#[tokio::test]
async fn settings_need_the_admin_credential() {
    let app = spawn_app().await;
    let anonymous = app.client.get(app.url("/admin/settings")).send().await.unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    let client_token = app.client.get(app.url("/admin/settings")).bearer_auth(&app.token).send().await.unwrap();
    assert_eq!(client_token.status(), StatusCode::UNAUTHORIZED);
}
