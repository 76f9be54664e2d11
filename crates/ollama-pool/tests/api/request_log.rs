//! The request log (`GET /admin/requests`): every client request, with every key it tried
//! exactly as `x-pool-attempts` lists them, filtered and paged by cursor; kept across restarts,
//! pruned past its retention, held in memory while the store is away.

use std::time::Duration;

use pool_testkit::Fault;
use reqwest::Response;
use serde_json::{Value, json};
use sqlx::{Connection, SqliteConnection};

use crate::helpers::{Options, TestApp, chat, error_of, spawn_app, spawn_app_with};

fn attempts_on() -> Options {
    Options::new().set("POOL__PROXY__ATTEMPTS_HEADER", "true")
}

/// A chat request as `token`, with its own request id.
async fn post_with_id(app: &TestApp, token: &str, id: &str, body: &Value) -> Response {
    let request = app.client.post(app.url("/v1/chat/completions")).bearer_auth(token).header("x-request-id", id);
    request.json(body).send().await.unwrap()
}

/// A non-stream chat request with the suite's token and its own request id.
async fn chat_with_id(app: &TestApp, id: &str, model: &str) -> Response {
    post_with_id(app, &app.token, id, &chat(model, false)).await
}

/// The request ids the log lists, once `done` holds for them (the store may be catching up).
async fn ids_once(app: &TestApp, what: &str, done: impl Fn(&[String]) -> bool) -> Vec<String> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let response = app.admin_get("/admin/requests").await;
        if response.status() == 200 {
            let ids = request_ids(&response.json().await.unwrap());
            if done(&ids) {
                return ids;
            }
        }
        assert!(tokio::time::Instant::now() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn page(app: &TestApp, query: &str) -> Value {
    let response = app.admin_get(&format!("/admin/requests{query}")).await;
    assert_eq!(response.status(), 200, "{query}");
    response.json().await.unwrap()
}

fn request_ids(page: &Value) -> Vec<String> {
    page["entries"].as_array().unwrap().iter().map(|e| e["requestId"].as_str().unwrap().to_owned()).collect()
}

/// The header's entries as (key id, reason).
fn header_attempts(response: &Response) -> Vec<(String, String)> {
    let value = response.headers()["x-pool-attempts"].to_str().unwrap();
    value.split("; ").filter_map(|e| e.split_once('=')).map(|(k, r)| (k.to_owned(), r.to_owned())).collect()
}

fn logged_attempts(entry: &Value) -> Vec<(String, String)> {
    let attempts = entry["attempts"].as_array().unwrap();
    attempts
        .iter()
        .map(|a| (a["keyId"].as_str().unwrap().to_owned(), a["reason"].as_str().unwrap().to_owned()))
        .collect()
}

#[tokio::test]
async fn a_failed_over_request_is_logged_with_every_attempt_as_the_header_lists_them() {
    // Arrange
    let app = spawn_app_with(attempts_on()).await;
    let limited = app.add_key("limited").await;
    let good = app.add_key("good").await;
    app.upstream.set_fault("limited", Fault::rate_limited(None));
    // Act: round-robin puts the limited key first within two requests
    let mut headers = Vec::new();
    for id in ["fo-1", "fo-2"] {
        let response = chat_with_id(&app, id, "m").await;
        assert_eq!(response.status(), 200);
        headers.push((id, header_attempts(&response)));
    }
    // Assert
    let listed = page(&app, "").await;
    assert_eq!(request_ids(&listed), ["fo-2", "fo-1"], "newest first");
    for (id, header) in headers {
        let entry = app.admin_get(&format!("/admin/requests/{id}")).await.json::<Value>().await.unwrap();
        assert_eq!(logged_attempts(&entry), header, "{id}: the log and the header agree");
        assert_eq!(entry["status"], 200);
        assert_eq!(entry["outcome"], "success");
        assert_eq!(entry["model"], "m:latest", "the canonical name, as statistics count it");
        assert_eq!(entry["provider"], "ollama");
        assert_eq!(entry["tokenName"], "tests");
        assert_eq!((entry["promptTokens"].as_u64(), entry["completionTokens"].as_u64()), (Some(11), Some(7)));
        assert_eq!(entry["stream"], false);
    }
    let tried: Vec<Vec<(String, String)>> = listed["entries"].as_array().unwrap().iter().map(logged_attempts).collect();
    let failover = vec![(limited, "upstream answered 429".to_owned()), (good, "ok".to_owned())];
    assert!(tried.contains(&failover), "{tried:?}");
}

#[tokio::test]
async fn a_request_every_key_failed_is_logged_as_failed_with_each_attempt() {
    // Arrange
    let app = spawn_app_with(attempts_on()).await;
    app.add_key("a").await;
    app.add_key("b").await;
    app.upstream.set_fault("a", Fault::status(500));
    app.upstream.set_fault("b", Fault::status(503));
    // Act
    let response = chat_with_id(&app, "all-failed", "m").await;
    // Assert
    assert_eq!(response.status(), 502);
    let header = header_attempts(&response);
    let entry = app.admin_get("/admin/requests/all-failed").await.json::<Value>().await.unwrap();
    assert_eq!(entry["status"], 502);
    assert_eq!(entry["outcome"], "failed");
    assert_eq!(logged_attempts(&entry), header);
    assert_eq!(header.len(), 2);
}

#[tokio::test]
async fn a_stream_is_logged_when_it_ends_with_its_usage() {
    // Arrange
    let app = spawn_app().await;
    app.add_key("a").await;
    // Act
    let response = post_with_id(&app, &app.token, "streamed", &chat("m", true)).await;
    let _ = response.text().await.unwrap();
    // Assert
    let entry = app.admin_get("/admin/requests/streamed").await.json::<Value>().await.unwrap();
    assert_eq!(entry["stream"], true);
    assert_eq!(entry["outcome"], "success");
    assert_eq!(entry["promptTokens"], 11);
}

#[tokio::test]
async fn an_unknown_model_is_logged_under_other_and_a_refused_token_under_no_model() {
    // Arrange: the only key says the model does not exist
    let app = spawn_app().await;
    app.add_key("a").await;
    app.upstream.set_fault("a", Fault::status(404));
    // Act
    let unknown = chat_with_id(&app, "unknown-model", "no-such-model-<b>x</b>").await;
    let refused = post_with_id(&app, "not-a-token", "refused", &chat("m", false)).await;
    // Assert
    assert_eq!(unknown.status(), 404);
    let entry = app.admin_get("/admin/requests/unknown-model").await.json::<Value>().await.unwrap();
    assert_eq!(entry["model"], "other", "a name the pool does not know is not recorded");
    assert_eq!(entry["outcome"], "client_error");
    assert_eq!(refused.status(), 401);
    let entry = app.admin_get("/admin/requests/refused").await.json::<Value>().await.unwrap();
    assert_eq!((entry["status"].as_u64(), entry["outcome"].as_str()), (Some(401), Some("rejected")));
    assert_eq!(entry["model"], "");
    assert!(entry["tokenId"].is_null());
    assert_eq!(page(&app, "?model=no-such-model-<b>x</b>").await["entries"], json!([]));
}

/// Six requests of two tokens, two models, a 5xx and a 4xx, each with its request id.
async fn mixed_traffic(app: &TestApp) -> (String, String, String) {
    let bad = app.add_key("bad").await;
    let good = app.add_key("good").await;
    app.upstream.set_fault("bad", Fault::status(500));
    let other = app.create_token(json!({"name": "other"})).await;
    let other_token = other["token"].as_str().unwrap().to_owned();
    for (i, model) in ["m1", "m2", "m1", "m2"].iter().enumerate() {
        assert_eq!(chat_with_id(app, &format!("mix-{i}"), model).await.status(), 200);
    }
    let response = post_with_id(app, &other_token, "mix-other", &chat("m1", false)).await;
    assert_eq!(response.status(), 200);
    app.upstream.set_fault("good", Fault::status(400));
    app.upstream.set_fault("bad", Fault::status(400));
    assert_eq!(chat_with_id(app, "mix-400", "m1").await.status(), 400);
    (bad, good, other["id"].as_str().unwrap().to_owned())
}

#[tokio::test]
async fn every_filter_narrows_the_log() {
    // Arrange
    let app = spawn_app().await;
    let (bad, good, other_token) = mixed_traffic(&app).await;
    let all = page(&app, "").await;
    assert_eq!(all["entries"].as_array().unwrap().len(), 6);
    let token_of_tests = all["entries"][0]["tokenId"].as_str().unwrap().to_owned();
    // Act + Assert
    assert_eq!(request_ids(&page(&app, "?requestId=mix-2").await), ["mix-2"]);
    assert_eq!(request_ids(&page(&app, &format!("?token={other_token}")).await), ["mix-other"]);
    assert_eq!(page(&app, &format!("?token={token_of_tests}")).await["entries"].as_array().unwrap().len(), 5);
    assert_eq!(request_ids(&page(&app, "?status=400").await), ["mix-400"]);
    assert_eq!(request_ids(&page(&app, "?status=4xx").await), ["mix-400"]);
    assert!(request_ids(&page(&app, "?status=5xx").await).is_empty());
    assert_eq!(page(&app, "?status=2xx").await["entries"].as_array().unwrap().len(), 5);
    assert_eq!(request_ids(&page(&app, "?outcome=client_error").await), ["mix-400"]);
    assert_eq!(request_ids(&page(&app, "?model=m2:latest").await), ["mix-3", "mix-1"]);
    let by_bad = page(&app, &format!("?key={bad}")).await;
    let by_good = page(&app, &format!("?key={good}")).await;
    assert!(!request_ids(&by_bad).is_empty());
    assert!(by_good["entries"].as_array().unwrap().len() >= 5, "every 200 ended on the good key");
    for entry in by_bad["entries"].as_array().unwrap() {
        assert!(logged_attempts(entry).iter().any(|(k, _)| *k == bad));
    }
    let newest = all["entries"][0]["atMs"].as_i64().unwrap();
    assert_eq!(request_ids(&page(&app, &format!("?from={newest}&requestId=mix-400")).await), ["mix-400"]);
    assert!(request_ids(&page(&app, &format!("?to={}", newest - 60_000)).await).is_empty());
    let combined = page(&app, &format!("?model=m1:latest&token={token_of_tests}&status=2xx")).await;
    assert_eq!(request_ids(&combined), ["mix-2", "mix-0"]);
}

#[tokio::test]
async fn pages_follow_the_cursor_without_gaps_or_repeats() {
    // Arrange
    let app = spawn_app().await;
    app.add_key("a").await;
    for i in 0..7 {
        assert_eq!(chat_with_id(&app, &format!("p-{i}"), "m").await.status(), 200);
    }
    // Act
    let mut seen = Vec::new();
    let mut query = "?limit=3".to_owned();
    loop {
        let body = page(&app, &query).await;
        seen.extend(request_ids(&body));
        if body["hasMore"] == false {
            assert!(body["nextBefore"].is_null());
            break;
        }
        query = format!("?limit=3&before={}", body["nextBefore"]);
    }
    // Assert
    let expected: Vec<String> = (0..7).rev().map(|i| format!("p-{i}")).collect();
    assert_eq!(seen, expected);
}

#[tokio::test]
async fn bad_parameters_are_400_naming_the_parameter() {
    // Arrange
    let app = spawn_app().await;
    // Act + Assert
    for (query, param) in [
        ("?status=6xx", "status"),
        ("?status=abc", "status"),
        ("?outcome=nope", "outcome"),
        ("?token=not-a-uuid", "token"),
        ("?key=123", "key"),
        ("?limit=0", "limit"),
        ("?limit=1000", "limit"),
        ("?before=0", "before"),
        ("?from=10&to=5", "from"),
        ("?requestId=has%20space", "requestId"),
    ] {
        let response = app.admin_get(&format!("/admin/requests{query}")).await;
        assert_eq!(response.status(), 400, "{query}");
        assert_eq!(error_of(response).await["param"], param, "{query}");
    }
    for query in ["?before=abc", "?unknown=1", "?from=yesterday"] {
        let response = app.admin_get(&format!("/admin/requests{query}")).await;
        assert_eq!(response.status(), 400, "{query}");
        assert_eq!(error_of(response).await["type"], "invalid_request_error");
    }
    assert_eq!(app.admin_get("/admin/requests/no-such-id").await.status(), 404);
    assert_eq!(app.admin_get("/admin/requests/bad%20id").await.status(), 400);
    let anonymous = app.client.get(app.url("/admin/requests")).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
}

/// Moves every logged request `days` into the past, straight in the database.
async fn age_log(db_url: &str, days: i64) {
    let statement = format!("UPDATE request_log SET at_ms = at_ms - {}", days * 86_400_000);
    if db_url.starts_with("sqlite:") {
        let mut conn = SqliteConnection::connect(db_url).await.unwrap();
        sqlx::query(sqlx::AssertSqlSafe(statement)).execute(&mut conn).await.unwrap();
    } else {
        let mut conn = sqlx::PgConnection::connect(db_url).await.unwrap();
        sqlx::query(sqlx::AssertSqlSafe(statement)).execute(&mut conn).await.unwrap();
    }
}

#[tokio::test]
async fn the_log_survives_a_restart_and_entries_past_retention_are_pruned_at_start() {
    // Arrange
    let mut app = spawn_app().await;
    app.add_key("a").await;
    for id in ["old-1", "old-2"] {
        assert_eq!(chat_with_id(&app, id, "m").await.status(), 200);
    }
    assert_eq!(page(&app, "").await["entries"].as_array().unwrap().len(), 2);
    app.stop().await;
    let dir = app.take_dir();
    // Act: the first two are 8 days old by the time the gateway starts again
    age_log(&app.db_url, 8).await;
    let again = spawn_app_with(Options { db_url: Some(app.db_url.clone()), ..Options::new() }).await;
    assert_eq!(chat_with_id(&again, "new-1", "m").await.status(), 200);
    // Assert
    ids_once(&again, "the old entries were never pruned", |ids| ids == ["new-1"]).await;
    drop(dir);
}

#[tokio::test]
async fn entries_within_retention_survive_a_restart() {
    // Arrange
    let mut app = spawn_app().await;
    app.add_key("a").await;
    assert_eq!(chat_with_id(&app, "kept", "m").await.status(), 200);
    // Act
    app.stop().await;
    let dir = app.take_dir();
    let again = spawn_app_with(Options { db_url: Some(app.db_url.clone()), ..Options::new() }).await;
    // Assert
    let ids = request_ids(&page(&again, "").await);
    assert!(ids.contains(&"kept".to_owned()), "{ids:?}");
    drop(dir);
}

#[tokio::test]
async fn a_retention_of_zero_days_turns_the_log_off() {
    // Arrange
    let app = spawn_app_with(Options::new().set("POOL__REQUEST_LOG__RETENTION_DAYS", "0")).await;
    app.add_key("a").await;
    // Act
    assert_eq!(chat_with_id(&app, "unlogged", "m").await.status(), 200);
    // Assert
    let body = page(&app, "").await;
    assert_eq!(body["enabled"], false);
    assert!(request_ids(&body).is_empty());
}

#[tokio::test]
async fn entries_served_while_the_store_is_locked_are_written_once_it_lets_go() {
    // Arrange
    let app = spawn_app_with(Options::new().on_sqlite().set("POOL__DATABASE__STATEMENT_TIMEOUT_SECS", "1")).await;
    app.add_key("a").await;
    let mut other = SqliteConnection::connect(&app.db_url).await.unwrap();
    // Act
    sqlx::raw_sql("BEGIN EXCLUSIVE").execute(&mut other).await.unwrap();
    for i in 0..5 {
        assert_eq!(chat_with_id(&app, &format!("held-{i}"), "m").await.status(), 200, "served while locked");
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(app.metric("pool_request_log_dropped_total").await, 0.0);
    sqlx::raw_sql("ROLLBACK").execute(&mut other).await.unwrap();
    // Assert
    let ids = ids_once(&app, "the held entries were never written", |ids| ids.len() == 5).await;
    assert_eq!(ids, ["held-4", "held-3", "held-2", "held-1", "held-0"]);
}

#[tokio::test]
async fn a_full_queue_drops_the_oldest_entries_and_counts_them() {
    // Arrange: a queue of two, and a store that takes no writes
    let options = Options::new()
        .on_sqlite()
        .set("POOL__DATABASE__STATEMENT_TIMEOUT_SECS", "1")
        .set("POOL__REQUEST_LOG__MAX_QUEUE_ENTRIES", "2");
    let app = spawn_app_with(options).await;
    app.add_key("a").await;
    let mut other = SqliteConnection::connect(&app.db_url).await.unwrap();
    sqlx::raw_sql("BEGIN EXCLUSIVE").execute(&mut other).await.unwrap();
    // Act
    for i in 0..5 {
        assert_eq!(chat_with_id(&app, &format!("q-{i}"), "m").await.status(), 200);
    }
    // Assert (a flush under way holds entries outside the queue until it fails)
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while app.metric("pool_request_log_dropped_total").await < 3.0 {
        assert!(tokio::time::Instant::now() < deadline, "the oldest three were never dropped");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(app.metric("pool_request_log_dropped_total").await, 3.0);
    sqlx::raw_sql("ROLLBACK").execute(&mut other).await.unwrap();
    let ids = ids_once(&app, "the kept entries were never written", |ids| !ids.is_empty()).await;
    assert_eq!(ids, ["q-4", "q-3"], "the newest two were kept");
}
