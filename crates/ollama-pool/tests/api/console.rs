//! The web console's pages and its admin sessions: the admin token exchanged for an `HttpOnly`
//! cookie, CSRF on every cookie write, expiry, sign-out and revocation on the server, bearer
//! auth unchanged, security headers, no CORS on cookie routes.

use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::{ACCESS_CONTROL_ALLOW_ORIGIN, CONTENT_SECURITY_POLICY, COOKIE, SET_COOKIE};
use serde_json::{Value, json};

use crate::helpers::{ADMIN, Options, TestApp, error_of, spawn_app, spawn_app_with};

struct Session {
    cookie: String,
    csrf: String,
    set_cookie: String,
    id: String,
}

async fn sign_in(app: &TestApp) -> Session {
    let response = app.client.post(app.url("/admin/session")).json(&json!({"token": ADMIN})).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let set_cookie = response.headers()[SET_COOKIE].to_str().unwrap().to_owned();
    let cookie = set_cookie.split(';').next().unwrap().to_owned();
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["signedIn"], true);
    let csrf = body["csrfToken"].as_str().unwrap().to_owned();
    Session { cookie, csrf, set_cookie, id: body["id"].as_str().unwrap().to_owned() }
}

async fn get_with(app: &TestApp, path: &str, session: &Session) -> reqwest::Response {
    app.client.get(app.url(path)).header(COOKIE, &session.cookie).send().await.unwrap()
}

async fn session_state(app: &TestApp, session: &Session) -> Value {
    get_with(app, "/admin/session", session).await.json().await.unwrap()
}

#[tokio::test]
async fn signing_in_sets_an_httponly_strict_cookie_and_the_token_itself_is_never_stored() {
    // Arrange
    let app = spawn_app().await;

    // Act
    let session = sign_in(&app).await;

    // Assert
    let attributes: Vec<&str> = session.set_cookie.split("; ").collect();
    assert!(attributes[0].starts_with("pool_session=") && attributes[0].len() == "pool_session=".len() + 64);
    for wanted in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(attributes.contains(&wanted), "{wanted} in {}", session.set_cookie);
    }
    assert!(!attributes.contains(&"Secure"), "plain HTTP from an untrusted peer gets no Secure flag");
    assert!(!session.cookie.contains(ADMIN) && session.csrf != session.cookie);
    let state = session_state(&app, &session).await;
    assert_eq!((state["signedIn"].as_bool(), state["csrfToken"].as_str()), (Some(true), Some(session.csrf.as_str())));
}

#[tokio::test]
async fn a_trusted_proxy_saying_https_makes_the_cookie_secure() {
    let app = spawn_app_with(Options::new().set("POOL__LIMITS__TRUSTED_PROXIES", "127.0.0.0/8")).await;
    let response = app
        .client
        .post(app.url("/admin/session"))
        .header("x-forwarded-proto", "https")
        .json(&json!({"token": ADMIN}))
        .send()
        .await
        .unwrap();
    let set_cookie = response.headers()[SET_COOKIE].to_str().unwrap().to_owned();
    assert!(set_cookie.ends_with("; Secure"), "{set_cookie}");
}

#[tokio::test]
async fn a_wrong_token_opens_no_session_and_the_session_probe_answers_200_signed_out() {
    let app = spawn_app().await;
    let wrong = app.client.post(app.url("/admin/session")).json(&json!({"token": "nope"})).send().await.unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    assert!(wrong.headers().get(SET_COOKIE).is_none());
    let probe = app.client.get(app.url("/admin/session")).send().await.unwrap();
    assert_eq!(probe.status(), StatusCode::OK);
    assert_eq!(probe.json::<Value>().await.unwrap(), json!({"signedIn": false}));
    let forged = app.client.get(app.url("/admin/session")).header(COOKIE, format!("pool_session={}", "a".repeat(64)));
    assert_eq!(forged.send().await.unwrap().json::<Value>().await.unwrap()["signedIn"], false);
}

#[tokio::test]
async fn a_cookie_reads_the_admin_api_and_writes_only_with_its_csrf_token() {
    // Arrange
    let app = spawn_app().await;
    let session = sign_in(&app).await;
    let add = |csrf: Option<&str>| {
        let mut request = app
            .client
            .post(app.url("/admin/api-keys"))
            .header(COOKIE, &session.cookie)
            .json(&json!({"api_key": "sk-console-0123456789", "username": "console"}));
        if let Some(csrf) = csrf {
            request = request.header("x-csrf-token", csrf);
        }
        request.send()
    };

    // Act
    let read = get_with(&app, "/admin/stats", &session).await;
    let without = add(None).await.unwrap();
    let wrong = add(Some(&"0".repeat(64))).await.unwrap();
    let with = add(Some(&session.csrf)).await.unwrap();

    // Assert
    assert_eq!(read.status(), StatusCode::OK);
    assert_eq!(without.status(), StatusCode::FORBIDDEN);
    assert_eq!(error_of(without).await["code"], "csrf_failed");
    assert_eq!(wrong.status(), StatusCode::FORBIDDEN);
    assert_eq!(with.status(), StatusCode::OK);
    assert_eq!(with.json::<Value>().await.unwrap()["success"], true);
    let listed = app.admin_get("/admin/api-keys?search=console").await.json::<Value>().await.unwrap();
    assert_eq!(listed["total"], 1, "only the write with the CSRF token went through");
}

#[tokio::test]
async fn the_bearer_token_still_works_without_any_csrf_token() {
    let app = spawn_app().await;
    let response = app.admin_post("/admin/api-keys", json!({"api_key": "sk-bearer-0123456789"})).await;
    assert_eq!(response.status(), StatusCode::OK);
    let wrong = app.client.get(app.url("/admin/stats")).bearer_auth("wrong").send().await.unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn signing_out_ends_the_session_on_the_server() {
    // Arrange
    let app = spawn_app().await;
    let session = sign_in(&app).await;

    // Act
    let refused = app.client.delete(app.url("/admin/session")).header(COOKIE, &session.cookie).send().await.unwrap();
    let out = app
        .client
        .delete(app.url("/admin/session"))
        .header(COOKIE, &session.cookie)
        .header("x-csrf-token", &session.csrf)
        .send()
        .await
        .unwrap();

    // Assert
    assert_eq!(refused.status(), StatusCode::FORBIDDEN, "signing out is a write: it needs the CSRF token");
    assert_eq!(out.status(), StatusCode::OK);
    assert!(out.headers()[SET_COOKIE].to_str().unwrap().contains("Max-Age=0"));
    assert_eq!(get_with(&app, "/admin/stats", &session).await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(session_state(&app, &session).await["signedIn"], false);
}

#[tokio::test]
async fn sessions_are_listed_without_their_secret_and_a_revoked_one_ends_at_once() {
    // Arrange
    let app = spawn_app().await;
    let (mine, other) = (sign_in(&app).await, sign_in(&app).await);

    // Act
    let listed: Value = get_with(&app, "/admin/sessions", &mine).await.json().await.unwrap();
    let revoked = app.admin_delete(&format!("/admin/sessions/{}", other.id), None).await;
    let again = app.admin_delete(&format!("/admin/sessions/{}", other.id), None).await;

    // Assert
    let sessions = listed["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 2);
    let text = listed.to_string();
    for session in [&mine, &other] {
        let secret = session.cookie.trim_start_matches("pool_session=");
        assert!(!text.contains(secret), "a listing never shows a session's secret");
    }
    assert_eq!(sessions.iter().filter(|s| s["current"] == true).count(), 1);
    assert_eq!(revoked.status(), StatusCode::OK);
    assert_eq!(again.status(), StatusCode::NOT_FOUND);
    assert_eq!(get_with(&app, "/admin/stats", &other).await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(get_with(&app, "/admin/stats", &mine).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn an_idle_session_expires() {
    // Arrange: sessions idle for 0.6 s are over.
    let app = spawn_app_with(Options::new().set("POOL__CONSOLE__SESSION_IDLE_MINUTES", "0.01")).await;
    let session = sign_in(&app).await;
    let expires: Value = session_state(&app, &session).await;
    let expires_at = expires["expiresAt"].as_str().unwrap().to_owned();

    // Act: wait, unused, until the expiry the server announced (any use would renew it).
    tokio::time::sleep(Duration::from_millis(900)).await;

    // Assert
    assert_eq!(get_with(&app, "/admin/stats", &session).await.status(), StatusCode::UNAUTHORIZED, "{expires_at}");
    assert_eq!(session_state(&app, &session).await["signedIn"], false);
}

#[tokio::test]
async fn a_session_ends_at_its_absolute_age_even_when_used() {
    let app = spawn_app_with(Options::new().set("POOL__CONSOLE__SESSION_MAX_HOURS", "0.0003")).await;
    let session = sign_in(&app).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while get_with(&app, "/admin/stats", &session).await.status() == StatusCode::OK {
        assert!(tokio::time::Instant::now() < deadline, "the session outlived its absolute age");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(session_state(&app, &session).await["signedIn"], false);
}

#[tokio::test]
async fn pages_carry_a_strict_csp_and_cookie_routes_no_cors_header() {
    let app = spawn_app().await;
    for path in ["/", "/dashboard", "/stats", "/assets/js/dashboard.js"] {
        let response = app.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        let csp = response.headers()[CONTENT_SECURITY_POLICY].to_str().unwrap();
        assert!(csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"), "{path}: {csp}");
        assert!(!csp.contains("unsafe-inline"));
        assert_eq!(response.headers()["x-frame-options"], "DENY");
        assert_eq!(response.headers()["referrer-policy"], "no-referrer");
        assert!(response.headers().get(ACCESS_CONTROL_ALLOW_ORIGIN).is_none(), "{path}");
    }
    let session = sign_in(&app).await;
    for response in [
        app.client.get(app.url("/admin/session")).header("origin", "https://evil.example").send().await.unwrap(),
        app.client.request(reqwest::Method::OPTIONS, app.url("/admin/session")).send().await.unwrap(),
        get_with(&app, "/admin/stats", &session).await,
    ] {
        assert!(response.headers().get(ACCESS_CONTROL_ALLOW_ORIGIN).is_none(), "{}", response.url());
    }
    let bearer = app.admin_get("/admin/stats").await;
    assert_eq!(bearer.headers()[ACCESS_CONTROL_ALLOW_ORIGIN], "*", "bearer API calls stay open to any origin");
}

#[tokio::test]
async fn assets_have_their_type_and_an_etag_and_vendored_files_are_cached_for_long() {
    let app = spawn_app().await;
    let module = app.client.get(app.url("/assets/js/api.js")).send().await.unwrap();
    assert_eq!(module.headers()["content-type"], "text/javascript; charset=utf-8");
    assert_eq!(module.headers()["cache-control"], "no-cache");
    let etag = module.headers()["etag"].to_str().unwrap().to_owned();
    let again = app.client.get(app.url("/assets/js/api.js")).header("if-none-match", &etag).send().await.unwrap();
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
    let vendored = app.client.get(app.url("/assets/vendor/uplot-1.6.32/uPlot.esm.js")).send().await.unwrap();
    assert!(vendored.headers()["cache-control"].to_str().unwrap().contains("immutable"));
    let missing = app.client.get(app.url("/assets/../Cargo.toml")).send().await.unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    let stats = app.client.get(app.url("/stats.json")).send().await.unwrap();
    assert_eq!(stats.status(), StatusCode::OK);
    assert!(stats.json::<Value>().await.unwrap().get("totalRequests").is_some());
}

#[tokio::test]
async fn hostile_or_huge_sign_in_bodies_are_refused_with_a_4xx() {
    let app = spawn_app().await;
    let huge_token = json!({"token": "x".repeat(100_000)});
    for body in [
        "not json".to_owned(),
        "{\"token\": 1}".to_owned(),
        "{\"token\": \"a\", \"extra\": true}".to_owned(),
        "[".repeat(10_000),
        huge_token.to_string(),
        format!("{{\"token\": \"{}\"}}", "y".repeat(40 * 1024 * 1024)),
    ] {
        let response = app
            .client
            .post(app.url("/admin/session"))
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert!(response.status().is_client_error(), "{} for {}…", response.status(), &body[..body.len().min(40)]);
        assert!(response.headers().get(SET_COOKIE).is_none());
    }
}

#[tokio::test]
async fn the_trend_splits_requests_by_how_they_ended_against_the_previous_period() {
    let app = spawn_app().await;
    app.add_key("sk-trend-0123456789").await;
    assert_eq!(app.post_chat(&crate::helpers::chat("llama3", false)).await.status(), StatusCode::OK);
    for range in ["1h", "24h", "7d", "30d"] {
        let trend = app.admin_get(&format!("/admin/stats/trend?range={range}")).await.json::<Value>().await.unwrap();
        assert_eq!(trend["current"]["successCount"], 1, "{range}");
        assert_eq!(trend["previous"]["requests"], 0, "{range}");
        let points = trend["points"].as_array().unwrap();
        assert_eq!(points.iter().map(|p| p["requests"].as_u64().unwrap()).sum::<u64>(), 1, "{range}");
    }
    assert_eq!(app.admin_get("/admin/stats/trend?range=2d").await.status(), StatusCode::BAD_REQUEST);
}
