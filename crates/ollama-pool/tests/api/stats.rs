//! Exact statistics: the counts equal the requests sent (concurrent, streamed, cut short, failed
//! over), usage asked for upstream never reaches a client that did not ask, the endpoints and
//! `/metrics`, and a database outage that fails nothing and is caught up.

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use pool_testkit::Fault;
use serde_json::{Value, json};

use crate::helpers::{
    ADMIN, Options, TestApp, chat, free_addr, fresh_postgres_database, postgres_url, spawn_app, spawn_app_with,
};

/// Tokens the fake reports for one non-stream chat completion.
const CHAT_USAGE: (u64, u64) = (11, 7);

/// `/admin/stats` once its request count reaches `requests` (a cancelled stream is counted when
/// the server notices the client left).
async fn stats_at(app: &TestApp, requests: u64) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let stats = admin_json(app, "/admin/stats").await;
        if stats["totalRequests"] == requests || Instant::now() > deadline {
            return stats;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn admin_json(app: &TestApp, path: &str) -> Value {
    let response = app.admin_get(path).await;
    assert_eq!(response.status(), 200, "{path}");
    response.json().await.unwrap()
}

#[tokio::test]
async fn counts_equal_the_requests_sent_concurrent_streamed_and_cut_short() {
    // Arrange
    let app = spawn_app().await;
    app.add_key("k1").await;
    app.add_key("k2").await;
    app.upstream.set_stream_chunks(4, Duration::from_millis(30));
    // Act: 24 concurrent answers, 4 whole streams, 3 streams left after their first chunk.
    let body = chat("llama3.2:3b", false);
    let whole = futures_util::future::join_all((0..24).map(|_| app.post_chat(&body))).await;
    assert!(whole.iter().all(|r| r.status() == 200));
    for _ in 0..4 {
        let body = app.post_chat(&chat("llama3.2:3b", true)).await.text().await.unwrap();
        assert!(body.ends_with("data: [DONE]\n\n"));
    }
    for _ in 0..3 {
        let mut stream = app.post_chat(&chat("llama3.2:3b", true)).await.bytes_stream();
        assert!(stream.next().await.is_some());
        drop(stream);
    }
    // Assert
    let stats = stats_at(&app, 31).await;
    assert_eq!(stats["totalRequests"], 31, "{stats}");
    assert_eq!(stats["successCount"], 28, "{stats}");
    assert_eq!(stats["failureCount"], 3, "{stats}");
    assert_eq!(stats["partialRequests"], 3, "{stats}");
    assert_eq!(stats["totalAttempts"], 31, "no failover: one attempt each");
    assert_eq!(stats["promptTokens"], 24 * CHAT_USAGE.0 + 4 * 11, "{stats}");
    let completion = stats["completionTokens"].as_u64().unwrap();
    assert!(completion >= 24 * CHAT_USAGE.1 + 4 * 4, "{stats}");
    assert_eq!(stats["requestsToday"], 31);
    assert_eq!(
        stats["topModels"][0],
        json!({"model": "llama3.2:3b", "requests": 31, "totalTokens": stats["totalTokens"]})
    );
    assert_eq!(stats["errorClasses"], json!([{"outcome": "cancelled", "count": 3}]), "{stats}");
    assert_eq!(stats["statuses"], json!([{"status": 200, "count": 31}]), "the streams had begun with 200");
}

#[tokio::test]
async fn attempts_are_counted_apart_from_requests() {
    // Arrange: one key the upstream refuses (banned after its first attempt), one good key.
    let app = spawn_app().await;
    app.add_key("bad").await;
    app.add_key("good").await;
    app.upstream.set_fault("bad", Fault::status(401));
    // Act
    for _ in 0..5 {
        assert_eq!(app.post_chat(&chat("llama3.2:3b", false)).await.status(), 200);
    }
    // Assert
    let stats = stats_at(&app, 5).await;
    assert_eq!((stats["totalRequests"].as_u64(), stats["successCount"].as_u64()), (Some(5), Some(5)));
    assert_eq!(stats["totalAttempts"], 6, "{stats}");
    assert_eq!(stats["failedAttempts"], 1);
    assert_eq!(stats["errorClasses"], json!([{"outcome": "auth_error", "count": 1}]));
}

#[tokio::test]
async fn usage_asked_for_upstream_is_counted_and_never_reaches_a_client_that_did_not_ask() {
    // Arrange
    let app = spawn_app().await;
    app.add_key("k").await;
    app.upstream.set_stream_chunks(5, Duration::ZERO);
    // Act
    let plain = app.post_chat(&chat("llama3.2:3b", true)).await.text().await.unwrap();
    let sent: Value = serde_json::from_slice(&app.upstream.last_request("k").unwrap().body).unwrap();
    let mut asked = chat("llama3.2:3b", true);
    asked["stream_options"] = json!({"include_usage": true});
    let with_usage = app.post_chat(&asked).await.text().await.unwrap();
    // Assert
    assert_eq!(sent["stream_options"]["include_usage"], true, "the gateway asked upstream for usage");
    assert!(!plain.contains("\"usage\""), "{plain}");
    assert!(plain.ends_with("data: [DONE]\n\n"));
    assert!(with_usage.contains("\"usage\""), "a client that asked gets its usage: {with_usage}");
    let stats = stats_at(&app, 2).await;
    assert_eq!(stats["completionTokens"], 10, "both streams' usage counted: {stats}");
    assert_eq!(stats["promptTokens"], 22);
    assert_eq!(stats["partialRequests"], 0);
}

#[tokio::test]
async fn refused_requests_are_counted_with_their_status() {
    // Arrange
    let app = spawn_app().await;
    app.add_key("k").await;
    // Act
    assert_eq!(app.post_raw("/v1/chat/completions", "{not json").await.status(), 400);
    let anonymous = app.client.post(app.url("/v1/chat/completions")).json(&chat("m", false)).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
    // Assert
    let stats = stats_at(&app, 2).await;
    assert_eq!(stats["failureCount"], 2, "{stats}");
    let statuses: Vec<u64> =
        stats["statuses"].as_array().unwrap().iter().map(|s| s["status"].as_u64().unwrap()).collect();
    assert!(statuses.contains(&400) && statuses.contains(&401), "{stats}");
    assert_eq!(stats["totalAttempts"], 0, "nothing went upstream");
}

#[tokio::test]
async fn public_stats_need_no_token_and_carry_no_key_or_token_data() {
    // Arrange: a model name that is markup, which must stay data.
    let app = spawn_app().await;
    let key = app.add_key("sk-upstream-secret-0123456789").await;
    let model = "<img src=x onerror=alert(1)>";
    assert_eq!(app.post_chat(&chat(model, false)).await.status(), 200);
    let _ = stats_at(&app, 1).await; // the admin view flushes
    // Act
    let response = app.client.get(app.url("/admin/public-stats")).send().await.unwrap();
    // Assert
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    let text = response.text().await.unwrap();
    let stats: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(stats["totalRequests"], 1);
    let recorded = format!("{model}:latest"); // its canonical name on an Ollama provider
    assert_eq!(stats["topModels"][0]["model"], recorded, "the name is a JSON string, unchanged");
    assert_eq!(stats["topModels24h"][0]["model"], recorded);
    assert_eq!(stats["hourly"].as_array().unwrap().len(), 24);
    for secret in [key.as_str(), app.token.as_str(), "sk-upstream", ADMIN] {
        assert!(!text.contains(secret), "{secret} leaked: {text}");
    }
    assert!(stats.get("keys").is_none() && stats.get("tokens").is_none() && stats.get("recording").is_none());
    let unknown = app.client.get(app.url("/admin/public-stats?provider=nope")).send().await.unwrap();
    assert_eq!(unknown.status(), 400);
}

#[tokio::test]
async fn usage_per_token_key_and_model_by_hour_and_day() {
    // Arrange: two tokens, one key.
    let app = spawn_app().await;
    let key = app.add_key("k").await;
    let other = app.create_token(json!({"name": "other"})).await;
    for _ in 0..3 {
        app.post_chat(&chat("llama3.2:3b", false)).await;
    }
    app.post_as(other["token"].as_str().unwrap(), "/v1/chat/completions", &chat("qwen2.5:7b", false)).await;
    let tokens = admin_json(&app, "/admin/tokens").await;
    let mine = tokens["tokens"].as_array().unwrap().iter().find(|t| t["name"] == "tests").unwrap()["id"].clone();
    // Act
    let by_day = admin_json(&app, &format!("/admin/tokens/{}/usage?granularity=day", mine.as_str().unwrap())).await;
    let by_hour = admin_json(&app, &format!("/admin/tokens/{}/usage", other["id"].as_str().unwrap())).await;
    let by_key = admin_json(&app, &format!("/admin/api-keys/{key}/usage?granularity=minute")).await;
    let by_model = admin_json(&app, "/admin/models/usage?model=qwen2.5:7b&granularity=day").await;
    let bad = app.admin_get("/admin/models/usage?granularity=week&model=x").await;
    // Assert
    assert_eq!(by_day["total"]["requests"], 3, "{by_day}");
    assert_eq!(by_day["total"]["totalTokens"], 54);
    assert_eq!(by_day["series"].as_array().unwrap().len(), 1);
    assert_eq!(by_hour["total"]["requests"], 1, "{by_hour}");
    assert_eq!((by_key["counts"].as_str(), by_key["total"]["requests"].as_u64()), (Some("attempts"), Some(4)));
    assert_eq!(by_model["total"]["requests"], 1, "{by_model}");
    assert_eq!(bad.status(), 400);
}

#[tokio::test]
async fn a_keys_usage_series_reports_the_tokens_of_the_requests_it_served() {
    // Arrange: every request tries "bad" first or second, and "good" serves it.
    let app = spawn_app().await;
    let good = app.add_key("good").await;
    let bad = app.add_key("bad").await;
    app.upstream.set_fault("bad", Fault::status(500));
    // Act
    for stream in [false, true] {
        let response = app.post_chat(&chat("llama3.2:3b", stream)).await;
        assert_eq!(response.status(), 200);
        response.text().await.unwrap();
    }
    stats_at(&app, 2).await;
    let served = admin_json(&app, &format!("/admin/api-keys/{good}/usage?granularity=minute")).await;
    let tried = admin_json(&app, &format!("/admin/api-keys/{bad}/usage?granularity=minute")).await;
    // Assert: the fake reports 11 + 7 for a whole answer, 11 + 3 for a 3-chunk stream.
    let total = &served["total"];
    assert_eq!(total["requests"], 2, "{served}");
    assert_eq!((total["promptTokens"].as_u64(), total["completionTokens"].as_u64()), (Some(22), Some(10)), "{served}");
    assert_eq!(total["totalTokens"], 32);
    assert_eq!(tried["total"]["totalTokens"], 0, "{tried}");
    assert_eq!(tried["total"]["successCount"], 0);
}

#[tokio::test]
async fn metrics_answer_only_the_admin_and_count_requests() {
    // Arrange
    let app = spawn_app().await;
    app.add_key("k").await;
    for _ in 0..2 {
        app.post_chat(&chat("llama3.2:3b", false)).await;
    }
    // Act
    let anonymous = app.client.get(app.url("/metrics")).send().await.unwrap();
    let as_client = app.get_as(&app.token, "/metrics").await;
    let metrics = app.admin_get("/metrics").await;
    // Assert
    assert_eq!((anonymous.status().as_u16(), as_client.status().as_u16()), (401, 401));
    assert_eq!(metrics.status(), 200);
    assert!(metrics.headers()["content-type"].to_str().unwrap().starts_with("text/plain; version=0.0.4"));
    let text = metrics.text().await.unwrap();
    for line in [
        "pool_requests_total{provider=\"ollama\",model=\"llama3.2:3b\",status=\"200\",outcome=\"success\"} 2",
        "pool_attempts_total{provider=\"ollama\",model=\"llama3.2:3b\",status=\"200\",outcome=\"success\"} 2",
        "pool_keys{provider=\"ollama\",status=\"active\"} 1",
        "pool_in_flight_requests 0",
        "pool_gateway_overhead_seconds_count{provider=\"ollama\"} 2",
        "pool_stats_dropped_total{kind=\"request\"} 0",
    ] {
        assert!(text.contains(line), "missing {line:?} in\n{text}");
    }
}

#[tokio::test]
async fn metrics_can_be_served_on_their_own_address() {
    // Arrange
    let addr = free_addr();
    let app = spawn_app_with(Options::new().set("POOL__METRICS__LISTEN", &addr.to_string())).await;
    // Act
    let deadline = Instant::now() + Duration::from_secs(5);
    let response = loop {
        match app.client.get(format!("http://{addr}/metrics")).send().await {
            Ok(r) => break r,
            Err(e) if Instant::now() > deadline => panic!("metrics address never answered: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    };
    // Assert
    assert_eq!(response.status(), 200);
    assert!(response.text().await.unwrap().contains("# TYPE pool_requests_total counter"));
    let other = app.client.get(format!("http://{addr}/admin/stats")).send().await.unwrap();
    assert_eq!(other.status(), 404, "only /metrics is served there");
}

/// PostgreSQL only (in CI always): the gateway's database refuses connections for a while.
#[tokio::test]
async fn a_database_outage_fails_no_request_and_the_counts_catch_up() {
    let Some(server) = postgres_url() else {
        eprintln!("skipped: no PostgreSQL (set POOL_TEST_POSTGRES_URL; CI=true always has one)");
        return;
    };
    // Arrange
    let db_url = fresh_postgres_database(&server).await;
    let name = db_url.rsplit_once('/').unwrap().1.to_owned();
    let app = spawn_app_with(Options { db_url: Some(db_url), ..Options::new() }).await;
    app.add_key("k").await;
    for _ in 0..3 {
        assert_eq!(app.post_chat(&chat("llama3.2:3b", false)).await.status(), 200);
    }
    assert_eq!(stats_at(&app, 3).await["totalRequests"], 3);
    let admin = || async {
        use sqlx::Connection;
        sqlx::PgConnection::connect(&server).await.unwrap()
    };
    let outage = [
        format!("ALTER DATABASE {name} WITH ALLOW_CONNECTIONS false"),
        format!("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"),
    ];
    for statement in outage {
        sqlx::query(sqlx::AssertSqlSafe(statement)).execute(&mut admin().await).await.unwrap();
    }
    // Act: traffic while the database is away, and long enough for flushes to fail.
    let started = Instant::now();
    for _ in 0..10 {
        let response = app.post_chat(&chat("llama3.2:3b", true)).await;
        assert_eq!(response.status(), 200);
        assert!(response.text().await.unwrap().ends_with("data: [DONE]\n\n"));
    }
    let during = started.elapsed();
    let deadline = Instant::now() + Duration::from_secs(20);
    let metrics = loop {
        let text = app.admin_get("/metrics").await.text().await.unwrap();
        if !text.contains("pool_stats_flush_failures 0") || Instant::now() > deadline {
            break text;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(!metrics.contains("pool_stats_flush_failures 0"), "flushes failed while the database was away");
    assert!(!metrics.contains("pool_stats_backlog_rows 0\n"), "the backlog holds the rows: {metrics}");
    sqlx::query(sqlx::AssertSqlSafe(format!("ALTER DATABASE {name} WITH ALLOW_CONNECTIONS true")))
        .execute(&mut admin().await)
        .await
        .unwrap();
    // Assert
    assert!(during < Duration::from_secs(5), "requests did not wait on the database: {during:?}");
    let stats = stats_at(&app, 13).await;
    assert_eq!(stats["totalRequests"], 13, "{stats}");
    assert_eq!(stats["successCount"], 13);
    assert_eq!(stats["recording"]["droppedRequests"], 0);
    assert_eq!(stats["recording"]["backlogRows"], 0);
}

#[tokio::test]
async fn cache_hits_are_requests_without_attempts() {
    // Arrange
    let app = spawn_app_with(Options::new().set("POOL__CACHE__ENABLED", "true")).await;
    app.add_key("k").await;
    // Act
    for expected in ["MISS", "HIT", "HIT"] {
        let response = app.post_chat(&chat("llama3.2:3b", false)).await;
        assert_eq!(response.headers()["x-cache"], expected);
    }
    // Assert
    let stats = stats_at(&app, 3).await;
    assert_eq!((stats["totalRequests"].as_u64(), stats["successCount"].as_u64()), (Some(3), Some(3)));
    assert_eq!(stats["totalAttempts"], 1, "only the miss went upstream");
    assert_eq!(stats["topModels"][0]["requests"], 3);
}
