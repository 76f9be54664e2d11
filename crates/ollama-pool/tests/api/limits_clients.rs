//! Limits on callers before authentication: requests per client address (with `X-Forwarded-For`
//! believed only from trusted proxies) and blocked user agents.

use reqwest::Response;
use serde_json::json;

use crate::helpers::{Options, TestApp, chat, error_of, spawn_app_with};

async fn chat_from(app: &TestApp, forwarded_for: Option<&str>) -> Response {
    let mut request = app.client.post(app.url("/v1/chat/completions")).bearer_auth(&app.token).json(&chat("m", false));
    if let Some(chain) = forwarded_for {
        request = request.header("x-forwarded-for", chain);
    }
    request.send().await.unwrap()
}

async fn statuses_from(app: &TestApp, forwarded_for: Option<&str>, n: usize) -> Vec<u16> {
    let mut statuses = Vec::new();
    for _ in 0..n {
        statuses.push(chat_from(app, forwarded_for).await.status().as_u16());
    }
    statuses
}

#[tokio::test]
async fn the_address_limit_comes_before_authentication_and_spares_health() {
    // Arrange
    let app = spawn_app_with(Options::new().set("POOL__LIMITS__IP_RPM", "3")).await;
    app.add_key("k").await;
    // Act
    let anonymous = app.client.post(app.url("/v1/chat/completions")).json(&chat("m", false)).send().await.unwrap();
    let models = app.get_as(&app.token, "/v1/models").await;
    let chat = chat_from(&app, None).await;
    let over = chat_from(&app, None).await;
    let over_without_token = app.client.get(app.url("/v1/models")).send().await.unwrap();
    let health = app.client.get(app.url("/health")).send().await.unwrap();
    let admin = app.admin_get("/admin/tokens").await;
    // Assert
    assert_eq!((anonymous.status().as_u16(), models.status().as_u16(), chat.status().as_u16()), (401, 200, 200));
    assert_eq!(over.status(), 429);
    assert!((19..=20).contains(&over.headers()["retry-after"].to_str().unwrap().parse::<u64>().unwrap()));
    assert_eq!(over.headers()["x-ratelimit-limit-requests"], "3");
    let error = error_of(over).await;
    assert_eq!(error["code"], "rate_limit_exceeded");
    assert!(error["message"].as_str().unwrap().contains("client address"), "{error}");
    assert_eq!(over_without_token.status(), 429, "refused before the token is looked at");
    assert_eq!((health.status().as_u16(), admin.status().as_u16()), (200, 200));
}

#[tokio::test]
async fn forwarded_for_from_a_peer_that_is_not_a_trusted_proxy_is_ignored() {
    // Arrange
    let app = spawn_app_with(Options::new().set("POOL__LIMITS__IP_RPM", "2")).await;
    app.add_key("k").await;
    // Act
    let mut statuses = Vec::new();
    for spoofed in ["198.51.100.1", "198.51.100.2", "198.51.100.3"] {
        statuses.push(chat_from(&app, Some(spoofed)).await.status().as_u16());
    }
    // Assert
    assert_eq!(statuses, [200, 200, 429]);
}

#[tokio::test]
async fn behind_a_trusted_proxy_each_forwarded_client_has_its_own_limit() {
    // Arrange
    let options = Options::new().set("POOL__LIMITS__IP_RPM", "2").set("POOL__LIMITS__TRUSTED_PROXIES", "127.0.0.1/32");
    let app = spawn_app_with(options).await;
    app.add_key("k").await;
    // Act
    let first_client = statuses_from(&app, Some("198.51.100.1"), 3).await;
    let spoofing_left = chat_from(&app, Some("203.0.113.9, 198.51.100.1")).await;
    let second_client = statuses_from(&app, Some("198.51.100.2"), 2).await;
    let the_proxy_itself = statuses_from(&app, None, 2).await;
    // Assert
    assert_eq!(first_client, [200, 200, 429]);
    assert_eq!(spoofing_left.status(), 429, "the right-most untrusted address is the client");
    assert_eq!(second_client, [200, 200]);
    assert_eq!(the_proxy_itself, [200, 200]);
}

#[tokio::test]
async fn blocked_user_agents_get_403_before_authentication() {
    // Arrange
    let app = spawn_app_with(Options::new().set("POOL__LIMITS__BLOCKED_USER_AGENTS", "curl,python-requests")).await;
    app.add_key("k").await;
    let post = |agent: &'static str| {
        app.client.post(app.url("/v1/chat/completions")).header("user-agent", agent).json(&chat("m", false)).send()
    };
    // Act
    let curl = post("curl/8.5.0").await.unwrap();
    let python = post("Python-Requests/2.31.0").await.unwrap();
    let browser = app
        .client
        .post(app.url("/v1/chat/completions"))
        .header("user-agent", "Mozilla/5.0")
        .bearer_auth(&app.token)
        .json(&chat("m", false))
        .send()
        .await
        .unwrap();
    let health = app.client.get(app.url("/health")).header("user-agent", "curl/8.5.0").send().await.unwrap();
    // Assert
    assert_eq!((curl.status().as_u16(), python.status().as_u16()), (403, 403));
    let error = error_of(curl).await;
    assert_eq!(
        (error["type"].clone(), error["code"].clone()),
        (json!("permission_error"), json!("user_agent_blocked"))
    );
    assert_eq!(browser.status(), 200);
    assert_eq!(health.status(), 200);
    assert_eq!(app.upstream.calls("k"), 1);
}
