//! `GET /openapi.json`: served without a credential, OpenAPI 3.1, every `$ref` resolving, and
//! the routes the console and the CLI use documented with a typed answer. (The answers of real
//! calls are validated against these schemas by `tests/browser/openapi.test.mjs`, with a JSON
//! Schema validator.)

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::spawn_app;

/// Every `$ref` in `value`, with the JSON path it was found at.
fn refs<'a>(value: &'a Value, at: &str, found: &mut Vec<(String, &'a str)>) {
    match value {
        Value::Object(map) => {
            for (name, child) in map {
                match (name.as_str(), child) {
                    ("$ref", Value::String(target)) => found.push((at.to_owned(), target)),
                    _ => refs(child, &format!("{at}/{name}"), found),
                }
            }
        }
        Value::Array(items) => items.iter().enumerate().for_each(|(i, child)| refs(child, &format!("{at}/{i}"), found)),
        _ => {}
    }
}

async fn document() -> (StatusCode, Option<String>, String) {
    let app = spawn_app().await;
    let response = app.client.get(app.url("/openapi.json")).send().await.unwrap();
    let status = response.status();
    let kind = response.headers().get("content-type").and_then(|v| v.to_str().ok()).map(str::to_owned);
    (status, kind, response.text().await.unwrap())
}

#[tokio::test]
async fn the_document_is_served_to_anyone_as_openapi_3_1_with_the_crate_version() {
    // Act
    let (status, kind, text) = document().await;
    // Assert
    assert_eq!(status, StatusCode::OK);
    assert_eq!(kind.as_deref(), Some("application/json"));
    let doc: Value = serde_json::from_str(&text).unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"), "{}", doc["openapi"]);
    assert_eq!(doc["info"]["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(doc["info"]["title"], "ollama-pool");
}

#[tokio::test]
async fn every_ref_in_the_document_resolves() {
    // Arrange
    let (_, _, text) = document().await;
    let doc: Value = serde_json::from_str(&text).unwrap();
    let mut found = Vec::new();
    // Act
    refs(&doc, "", &mut found);
    // Assert
    assert!(found.len() > 100, "the document refers to its schemas ({} refs)", found.len());
    let dangling: Vec<_> = found
        .iter()
        .filter(|(_, target)| target.strip_prefix('#').is_none_or(|pointer| doc.pointer(pointer).is_none()))
        .collect();
    assert!(dangling.is_empty(), "refs that resolve to nothing: {dangling:?}");
}

#[tokio::test]
async fn the_console_routes_answer_a_documented_schema_and_admin_routes_name_their_credentials() {
    // Arrange
    let (_, _, text) = document().await;
    let doc: Value = serde_json::from_str(&text).unwrap();
    // Assert
    for (method, path, schema) in [
        ("post", "/admin/tokens", "CreatedToken"),
        ("get", "/admin/tokens", "TokenList"),
        ("get", "/admin/api-keys", "KeyPage"),
        ("get", "/admin/stats", "AdminStats"),
        ("get", "/admin/settings", "SettingsView"),
        ("get", "/admin/requests", "PageBody"),
        ("get", "/health", "Health"),
        ("get", "/stats.json", "PublicStats"),
    ] {
        let operation = &doc["paths"][path][method];
        let answer = &operation["responses"]["200"]["content"]["application/json"]["schema"]["$ref"];
        assert_eq!(answer, &format!("#/components/schemas/{schema}"), "{method} {path}");
        let secured = operation["security"].as_array().is_some_and(|s| !s.is_empty());
        assert_eq!(secured, path.starts_with("/admin/"), "{method} {path}: security");
    }
    let error = &doc["components"]["schemas"]["ErrorDetail"]["properties"];
    for field in ["message", "type", "param", "code"] {
        assert!(error[field].is_object(), "the error shape documents '{field}'");
    }
    let schemes = doc["components"]["securitySchemes"].as_object().unwrap();
    assert!(["adminToken", "adminSession", "clientToken"].iter().all(|s| schemes.contains_key(*s)));
}
