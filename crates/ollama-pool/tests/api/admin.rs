//! The admin API for keys: auth, masking, paging, filters, deletion, expiry, health, CORS.

use serde_json::{Value, json};

use crate::helpers::{ADMIN, chat, error_of, spawn_app};

#[tokio::test]
async fn admin_routes_require_the_admin_token() {
    let app = spawn_app().await;
    for token in [None, Some("wrong-token-wrong-token-wrong"), Some(app.token.as_str())] {
        let request = app.client.get(app.url("/admin/api-keys"));
        let request = match token {
            Some(t) => request.bearer_auth(t),
            None => request,
        };
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 401, "{token:?}");
        assert_eq!(error_of(response).await["type"], "authentication_error");
    }
    assert_eq!(app.admin_get("/admin/api-keys").await.status(), 200);
}

#[tokio::test]
async fn keys_are_never_returned_in_full_after_import() {
    // Arrange
    let secret = "sk-or-v1-0123456789abcdef0123456789abcdef";
    let app = spawn_app().await;
    // Act
    let created: Value = app
        .admin_post("/admin/api-keys", json!({"apiKey": secret, "provider": "openrouter"}))
        .await
        .json()
        .await
        .unwrap();
    let listed = app.admin_get("/admin/api-keys?fetch=all").await.text().await.unwrap();
    let health = app.client.get(app.url("/health")).send().await.unwrap().text().await.unwrap();
    // Assert
    assert_eq!(created["apiKey"], "sk-o…cdef");
    for body in [created.to_string(), listed.clone(), health] {
        assert!(!body.contains(secret), "{body}");
        assert!(!body.contains("0123456789abcdef0123"), "{body}");
    }
    let listed: Value = serde_json::from_str(&listed).unwrap();
    assert_eq!(listed["api_keys"][0]["api_key"], "sk-o…cdef");
    assert_eq!(listed["api_keys"][0]["provider"], "openrouter");
}

#[tokio::test]
async fn adding_the_same_key_twice_says_it_already_exists() {
    let app = spawn_app().await;
    app.add_key("dup").await;
    let again: Value = app.admin_post("/admin/api-keys", json!({"api_key": "dup"})).await.json().await.unwrap();
    assert_eq!(again, json!({"success": false, "message": "Already exists"}));
    let other_provider: Value = app
        .admin_post("/admin/api-keys", json!({"api_key": "dup", "provider": "openrouter"}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(other_provider["success"], true, "the same key may serve another provider");
}

#[tokio::test]
async fn the_key_list_pages_filters_and_searches() {
    // Arrange
    let app = spawn_app().await;
    for i in 0..7 {
        app.add_key(&format!("key-{i}")).await;
    }
    app.add_key_to(Some("openrouter"), "or-1").await;
    app.admin_post(
        "/admin/api-keys",
        json!({"api_key": "zz-secret-999", "username": "alice", "provider": "openrouter"}),
    )
    .await;
    // Act
    let page: Value = app.admin_get("/admin/api-keys?provider=ollama&page=2&pageSize=3").await.json().await.unwrap();
    let by_label: Value = app.admin_get("/admin/api-keys?search=USER-KEY-3").await.json().await.unwrap();
    let by_secret: Value = app.admin_get("/admin/api-keys?search=zz-secret-999").await.json().await.unwrap();
    let partial_secret: Value = app.admin_get("/admin/api-keys?search=secret").await.json().await.unwrap();
    let failed: Value = app.admin_get("/admin/api-keys?status=failed").await.json().await.unwrap();
    let bad = app.admin_get("/admin/api-keys?status=sleeping").await;
    let bad_page = app.admin_get("/admin/api-keys?page=abc").await;
    // Assert
    assert_eq!(
        (page["total"].clone(), page["page"].clone(), page["totalPages"].clone()),
        (json!(7), json!(2), json!(3))
    );
    let labels: Vec<&str> =
        page["api_keys"].as_array().unwrap().iter().map(|k| k["username"].as_str().unwrap()).collect();
    assert_eq!(labels, ["user-key-3", "user-key-4", "user-key-5"]);
    assert_eq!(by_label["total"], 1);
    assert_eq!(by_secret["api_keys"][0]["username"], "alice", "the whole secret finds its key");
    assert_eq!(by_secret["total"], 1);
    assert_eq!(partial_secret["total"], 0, "secrets are never substring-searched");
    assert_eq!(failed["total"], 0);
    assert_eq!(bad.status(), 400);
    assert_eq!(bad_page.status(), 400);
    error_of(bad_page).await;
}

#[tokio::test]
async fn keys_are_deleted_by_value_in_batches_and_by_id() {
    let app = spawn_app().await;
    for key in ["a", "b", "c"] {
        app.add_key(key).await;
    }
    let or = app.add_key_to(Some("openrouter"), "a").await;
    let batch: Value = app
        .admin_delete("/admin/api-keys", Some(json!({"apiKeys": ["a", "b", "zzz"], "provider": "ollama"})))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(batch, json!({"success": true, "deleted": 2, "failed": 1, "total": 3}));
    let single: Value = app.admin_delete("/admin/api-keys", Some(json!({"apiKey": "c"}))).await.json().await.unwrap();
    assert_eq!(single, json!({"success": true}));
    assert_eq!(app.admin_delete(&format!("/admin/api-keys/{or}"), None).await.status(), 200);
    assert_eq!(app.admin_delete(&format!("/admin/api-keys/{or}"), None).await.status(), 404);
    assert_eq!(app.admin_delete("/admin/api-keys", Some(json!({}))).await.status(), 400);
    let left: Value = app.admin_get("/admin/api-keys").await.json().await.unwrap();
    assert_eq!(left["total"], 0);
}

#[tokio::test]
async fn an_expired_key_is_shown_as_expired_and_never_used() {
    let app = spawn_app().await;
    let response: Value =
        app.admin_post("/admin/api-keys", json!({"api_key": "short-lived", "ttl": 1})).await.json().await.unwrap();
    let id = response["id"].as_str().unwrap().to_owned();
    app.add_key("long-lived").await;
    let expired = app.wait_for_key(&id, std::time::Duration::from_secs(3), |k| k["status"] == "expired").await;
    assert_eq!(expired["status"], "expired");
    for _ in 0..4 {
        assert_eq!(app.post_chat(&chat("m", false)).await.status(), 200);
    }
    assert_eq!(app.upstream.calls("long-lived"), 4);
}

#[tokio::test]
async fn health_reports_version_uptime_and_key_states_without_auth() {
    let app = spawn_app().await;
    app.add_key("a").await;
    let b = app.add_key("b").await;
    app.upstream.set_fault("b", pool_testkit::Fault::status(401));
    app.post_chat(&chat("m", false)).await;
    app.post_chat(&chat("m", false)).await;
    assert_eq!(app.key(&b).await["status"], "failed");
    let health: Value = app.get_json("/health").await;
    assert_eq!(health["status"], "ok");
    assert_eq!(health["version"], env!("CARGO_PKG_VERSION"));
    assert!(health["uptimeSeconds"].is_u64());
    assert_eq!(health["storageBackend"], crate::helpers::test_backend());
    assert_eq!(health["storage"], "ok");
    assert_eq!(health["providers"]["ollama"]["keys"]["total"], 2);
    assert_eq!(health["providers"]["ollama"]["keys"]["byStatus"]["failed"], 1);
    assert_eq!(health["providers"]["openrouter"]["enabled"], true);
}

#[tokio::test]
async fn browsers_get_cors_preflight_answers() {
    let app = spawn_app().await;
    let response = app
        .client
        .request(reqwest::Method::OPTIONS, app.url("/v1/chat/completions"))
        .header("origin", "https://app.example")
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "authorization,content-type")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let headers = response.headers();
    assert_eq!(headers["access-control-allow-origin"], "*");
    let allowed = headers["access-control-allow-headers"].to_str().unwrap().to_lowercase();
    assert!(allowed.contains("authorization") && allowed.contains("content-type"), "{allowed}");
    assert!(headers["access-control-allow-methods"].to_str().unwrap().contains("POST"));
    assert_eq!(headers["access-control-max-age"], "600");
    assert_eq!(headers.get_all("vary").iter().count(), 1, "one Vary header: {headers:?}");
    assert!(headers.contains_key("x-request-id"));

    // An ordinary answer, an error included, lets a browser script read the gateway's headers.
    let answer =
        app.client.get(app.url("/admin/providers")).header("origin", "https://app.example").send().await.unwrap();
    assert_eq!(answer.status(), 401);
    assert_eq!(answer.headers()["access-control-allow-origin"], "*");
    let exposed = answer.headers()["access-control-expose-headers"].to_str().unwrap().to_lowercase();
    for name in ["retry-after", "x-request-id", "x-cache", "x-pool-attempts", "x-ratelimit-remaining-requests"] {
        assert!(exposed.split(',').any(|n| n == name), "{name} in {exposed}");
    }
    let _ = ADMIN;
}
