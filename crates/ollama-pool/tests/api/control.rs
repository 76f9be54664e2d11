//! Manual control, probes, health checks, model discovery and model routing, provider switches,
//! and validated imports.

use std::time::Duration;

use futures_util::StreamExt;
use pool_testkit::Fault;
use serde_json::{Value, json};

use crate::helpers::{Options, TestApp, chat, error_of, spawn_app, spawn_app_with};

async fn post_ok(app: &TestApp, path: &str, body: Value) -> Value {
    let response = app.admin_post(path, body).await;
    assert_eq!(response.status(), 200, "{path}");
    response.json().await.unwrap()
}

#[tokio::test]
async fn a_key_disabled_for_two_seconds_comes_back_on_its_own() {
    // Arrange
    let app = spawn_app().await;
    let id = app.add_key("k").await;
    app.add_key("other").await;
    // Act
    let disabled = post_ok(&app, "/admin/keys/disable", json!({"id": id, "duration": 2})).await;
    // Assert
    assert!(disabled["until"].is_string());
    let key = app.key(&id).await;
    assert_eq!((key["status"].as_str(), key["reason"].as_str()), (Some("disabled"), Some("disabled by an operator")));
    for _ in 0..4 {
        app.post_chat(&chat("m", false)).await;
    }
    assert_eq!(app.upstream.calls("k"), 0);
    let back = app.wait_for_key(&id, Duration::from_secs(4), |k| k["status"] == "active").await;
    assert_eq!(back["status"], "active");
    for _ in 0..4 {
        app.post_chat(&chat("m", false)).await;
    }
    assert!(app.upstream.calls("k") > 0, "back in rotation");
}

#[tokio::test]
async fn a_manual_disable_without_duration_lasts_until_enabled_and_survives_health_checks() {
    let app = spawn_app().await;
    let id = app.add_key("k").await;
    post_ok(&app, "/admin/keys/disable", json!({"apiKey": "k"})).await;
    let checked = post_ok(&app, "/admin/keys/health-check", json!({})).await;
    assert_eq!(checked["results"][0]["valid"], true);
    assert_eq!(app.key(&id).await["status"], "disabled", "a passing probe never lifts an operator's disable");
    post_ok(&app, "/admin/keys/enable", json!({"apiKey": "k"})).await;
    assert_eq!(app.key(&id).await["status"], "active");
    let unknown = app.admin_post("/admin/keys/enable", json!({"apiKey": "nope"})).await;
    assert_eq!(unknown.status(), 404);
    let unnamed = app.admin_post("/admin/keys/disable", json!({"duration": 5})).await;
    assert_eq!(unnamed.status(), 400);
    error_of(unnamed).await;
}

#[tokio::test]
async fn resetting_cooldowns_brings_rate_limited_keys_back_but_not_manual_disables() {
    let app = spawn_app().await;
    let limited = app.add_key("limited").await;
    let manual = app.add_key("manual").await;
    app.upstream.fail_next("limited", Fault::rate_limited(Some("600")), 1);
    app.post_chat(&chat("m", false)).await;
    assert_eq!(app.key(&limited).await["status"], "cooling");
    post_ok(&app, "/admin/keys/disable", json!({"id": manual})).await;
    let reset = post_ok(&app, "/admin/keys/reset-cooldowns", json!({"provider": "ollama"})).await;
    assert_eq!(reset["reset"], 1);
    assert_eq!(app.key(&limited).await["status"], "active");
    assert_eq!(app.key(&manual).await["status"], "disabled");
}

#[tokio::test]
async fn verify_key_enables_a_good_key_and_marks_a_bad_one_with_the_reason() {
    // Arrange
    let app = spawn_app().await;
    let good = app.add_key("good").await;
    let bad = app.add_key("bad").await;
    app.upstream.fail_next("good", Fault::status(401), 1);
    app.post_chat(&chat("m", false)).await;
    assert_eq!(app.key(&good).await["status"], "failed");
    app.upstream.set_fault("bad", Fault::status(403));
    // Act
    let ok = post_ok(&app, "/admin/verify-key", json!({"apiKey": "good"})).await;
    let failed = post_ok(&app, "/admin/verify-key", json!({"id": bad})).await;
    // Assert
    assert_eq!((ok["valid"].clone(), ok["status"].clone()), (json!(true), json!("active")));
    assert_eq!(ok["models"], json!(["kimi-k2:1t", "llama3.2:3b", "qwen2.5:7b"]));
    assert_eq!(ok["categories"], json!(["kimi", "llama", "qwen"]));
    assert_eq!(app.key(&good).await["strikes"], 0);
    assert_eq!((failed["valid"].clone(), failed["status"].clone()), (json!(false), json!("failed")));
    assert!(failed["error"].as_str().unwrap().starts_with("HTTP 403"), "{failed}");
    assert!(!failed.to_string().contains("\"bad\""), "never the full key");
}

#[tokio::test]
async fn a_health_check_probes_every_key_and_re_enables_recovered_ones() {
    let app = spawn_app().await;
    let flaky = app.add_key("flaky").await;
    let broken = app.add_key("broken").await;
    app.add_key("fine").await;
    app.upstream.fail_next("flaky", Fault::status(401), 1);
    app.post_chat(&chat("m", false)).await;
    assert_eq!(app.key(&flaky).await["status"], "failed");
    app.upstream.set_fault("broken", Fault::status(401));
    let report = post_ok(&app, "/admin/keys/health-check", json!({"provider": "ollama"})).await;
    assert_eq!(
        (report["total"].clone(), report["healthy"].clone(), report["unhealthy"].clone()),
        (json!(3), json!(2), json!(1))
    );
    assert_eq!(app.key(&flaky).await["status"], "active", "the seed never did this");
    assert_eq!(app.key(&broken).await["status"], "failed");
}

#[tokio::test]
async fn a_failed_key_is_probed_when_its_hold_ends_and_serves_again_only_if_the_probe_passes() {
    // Arrange: a rejected key rests one second, half-open keys are probed every 200 ms
    let options =
        Options::new().set("POOL__KEYS__AUTH_FAILURE_SECS", "1").set("POOL__HEALTH__RECOVERY_INTERVAL_SECS", "0.2");
    let app = spawn_app_with(options).await;
    let id = app.add_key("k").await;
    app.upstream.fail_next("k", Fault::status(401), 2);
    assert_eq!(app.post_chat(&chat("m", false)).await.status(), 502);
    assert_eq!(app.key(&id).await["status"], "failed");
    // Act: the hold ends; the first probe is refused (401), which extends the hold
    let extended = app
        .wait_for_key(&id, Duration::from_secs(5), |k| {
            k["reason"].as_str().is_some_and(|r| r.contains("recovery probe failed"))
        })
        .await;
    // Assert: still out, no client request reached the key meanwhile
    assert_eq!(extended["status"], "failed", "{extended}");
    assert_eq!(app.upstream.calls("k"), 2, "one client attempt, one probe");
    assert_eq!(app.post_chat(&chat("m", false)).await.status(), 503);
    assert_eq!(app.upstream.calls("k"), 2, "a half-open key serves no client before its probe passes");
}

#[tokio::test]
async fn a_half_open_key_whose_probe_passes_serves_again() {
    let options =
        Options::new().set("POOL__KEYS__AUTH_FAILURE_SECS", "1").set("POOL__HEALTH__RECOVERY_INTERVAL_SECS", "0.2");
    let app = spawn_app_with(options).await;
    let id = app.add_key("k").await;
    app.upstream.fail_next("k", Fault::status(401), 1);
    assert_eq!(app.post_chat(&chat("m", false)).await.status(), 502);
    let back = app.wait_for_key(&id, Duration::from_secs(5), |k| k["status"] == "active").await;
    assert_eq!((back["status"].clone(), back["strikes"].clone()), (json!("active"), json!(0)));
    assert_eq!(app.post_chat(&chat("llama3.2:3b", false)).await.status(), 200);
}

#[tokio::test]
async fn requests_for_a_model_go_only_to_keys_that_serve_it() {
    // Arrange: three keys, discovered through a health check
    let app = spawn_app().await;
    for key in ["k1", "k2", "k3"] {
        app.add_key(key).await;
    }
    app.upstream.set_models(Some("k1"), vec!["llama3".into(), "qwen".into()]);
    app.upstream.set_models(Some("k2"), vec!["qwen".into()]);
    app.upstream.set_models(Some("k3"), vec!["llama3".into()]);
    post_ok(&app, "/admin/keys/health-check", json!({})).await;
    let probes: usize = ["k1", "k2", "k3"].iter().map(|k| app.upstream.calls(k)).sum();
    // Act
    for _ in 0..20 {
        assert_eq!(app.post_chat(&chat("llama3", false)).await.status(), 200);
    }
    // Assert
    assert_eq!(app.upstream.calls("k2"), 2, "only its two probe calls: it does not serve llama3");
    let served = app.upstream.calls("k1") + app.upstream.calls("k3") - (probes - 2);
    assert_eq!(served, 20);
    let unserved = app.post_chat(&chat("gpt-5", false)).await;
    assert_eq!(unserved.status(), 404);
    assert_eq!(error_of(unserved).await["code"], "model_not_found");
}

#[tokio::test]
async fn a_clients_404_never_changes_the_pool_only_the_background_probe_of_that_key_does() {
    // Arrange: both keys discovered with the same models
    let app = spawn_app_with(Options::new().set("POOL__HEALTH__RECOVERY_INTERVAL_SECS", "0.2")).await;
    let k1 = app.add_key("k1").await;
    app.add_key("k2").await;
    post_ok(&app, "/admin/keys/health-check", json!({})).await;
    app.upstream.set_models(Some("k1"), vec!["qwen2.5:7b".into()]);
    app.upstream.fail_next("k1", Fault::ModelNotFound, 1);
    // Act: requests for a model k1 lists (one of two starts on k1); its 404 moves it on to k2
    for _ in 0..2 {
        assert_eq!(app.post_chat(&chat("llama3.2:3b", false)).await.status(), 200);
    }
    // Assert: the key is not blamed, and its list changes only when the probe re-reads it
    let models_of_k1 = |stats: &Value| stats["stats"][0]["models"].as_array().cloned().unwrap_or_default();
    let stats = app.admin_get("/admin/keys/stats?search=user-k1").await.json::<Value>().await.unwrap();
    assert_eq!((stats["stats"][0]["id"].clone(), stats["stats"][0]["strikes"].clone()), (json!(k1), json!(0)));
    assert_eq!(stats["stats"][0]["status"], "active", "not the key's fault");
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let mut models = models_of_k1(&stats);
    while models.contains(&json!("llama3.2:3b")) && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
        models = models_of_k1(&app.admin_get("/admin/keys/stats?search=user-k1").await.json::<Value>().await.unwrap());
    }
    assert_eq!(models, vec![json!("qwen2.5:7b")], "the probe re-read the key's list");
}

#[tokio::test]
async fn a_typo_from_one_client_takes_no_model_offline_for_anyone() {
    // Arrange
    let app = spawn_app().await;
    app.add_key("k1").await;
    app.add_key("k2").await;
    post_ok(&app, "/admin/keys/health-check", json!({})).await;
    for key in ["k1", "k2"] {
        app.upstream.fail_next(key, Fault::ModelNotFound, 1);
    }
    // Act: every key answers 404 once
    let first = app.post_chat(&chat("llama3.2:3b", false)).await;
    // Assert: the client gets the upstream's 404; the next request is served as before
    assert_eq!(first.status(), 404);
    assert_eq!(app.post_chat(&chat("llama3.2:3b", false)).await.status(), 200);
}

#[tokio::test]
async fn key_stats_are_exact_paged_and_filtered() {
    let app = spawn_app().await;
    app.add_key("a").await;
    let b = app.add_key("b").await;
    // A 429 rests the key at once (a 5xx would only make new requests pass over it for a moment)
    app.upstream.set_fault("b", Fault::rate_limited(Some("60")));
    for _ in 0..6 {
        app.post_chat(&chat("m", false)).await;
    }
    let all = app.admin_get("/admin/keys/stats?provider=ollama").await.json::<Value>().await.unwrap();
    assert_eq!(all["total"], 2);
    let a = all["stats"].as_array().unwrap().iter().find(|s| s["id"] != b).unwrap().clone();
    assert_eq!(
        (a["totalRequests"].clone(), a["successCount"].clone(), a["successRate"].clone()),
        (json!(6), json!(6), json!(100.0))
    );
    for field in [
        "apiKey",
        "username",
        "status",
        "reason",
        "until",
        "failureCount",
        "strikes",
        "cause",
        "awaitingProbe",
        "lastUsed",
        "lastSuccess",
        "lastFailure",
        "models",
    ] {
        assert!(a.get(field).is_some(), "{field}");
    }
    let cooling = app.admin_get("/admin/keys/stats?status=cooling").await.json::<Value>().await.unwrap();
    assert_eq!(cooling["stats"][0]["id"], b);
    assert_eq!(cooling["stats"][0]["successRate"], 0.0);
    let page = app.admin_get("/admin/keys/stats?pageSize=1&page=2").await.json::<Value>().await.unwrap();
    assert_eq!(
        (page["page"].clone(), page["totalPages"].clone(), page["stats"].as_array().map(Vec::len)),
        (json!(2), json!(2), Some(1))
    );
}

#[tokio::test]
async fn a_provider_switched_off_at_run_time_stays_off_after_a_restart() {
    // Arrange
    let mut app = spawn_app().await;
    app.add_key("k").await;
    // Act
    let response = app
        .client
        .patch(app.url("/admin/providers/ollama"))
        .bearer_auth(crate::helpers::ADMIN)
        .json(&json!({"enabled": false}))
        .send()
        .await
        .unwrap();
    // Assert
    assert_eq!(response.status(), 200);
    assert_eq!(response.json::<Value>().await.unwrap()["enabled"], false);
    assert_eq!(app.post_chat(&chat("m", false)).await.status(), 503);
    app.stop().await;
    let dir = app.take_dir();
    let again = spawn_app_with(Options { db_url: Some(app.db_url.clone()), ..Options::new() }).await;
    let providers = again.admin_get("/admin/providers").await.json::<Value>().await.unwrap();
    let ollama = providers["providers"].as_array().unwrap().iter().find(|p| p["name"] == "ollama").unwrap().clone();
    assert_eq!(
        (ollama["enabled"].clone(), ollama["default"].clone(), ollama["keys"]["total"].clone()),
        (json!(false), json!(true), json!(1))
    );
    assert_eq!(again.post_chat(&chat("m", false)).await.status(), 503);
    let unknown = again
        .client
        .patch(again.url("/admin/providers/nope"))
        .bearer_auth(crate::helpers::ADMIN)
        .json(&json!({"enabled": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);
    drop(dir);
}

pub(crate) async fn finished_job(app: &TestApp, id: &str) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let job = app.admin_get(&format!("/admin/jobs/{id}")).await.json::<Value>().await.unwrap();
        if job["status"] == "done" || tokio::time::Instant::now() > deadline {
            return job;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_validated_import_adds_only_keys_the_upstream_accepts_with_their_models() {
    // Arrange
    let app = spawn_app().await;
    app.add_key("already").await;
    app.upstream.set_fault("rejected", Fault::status(401));
    app.upstream.set_models(Some("good"), vec!["kimi-k2:1t".into()]);
    let content = "alice----good\nrejected\nalready\nbad key with spaces\n# comment\n";
    // Act
    let response =
        app.admin_post("/admin/api-keys/import-with-validation", json!({"content": content, "concurrency": 2})).await;
    assert_eq!(response.status(), 202);
    let id = response.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned();
    let job = finished_job(&app, &id).await;
    // Assert
    assert_eq!((job["status"].clone(), job["done"].clone(), job["total"].clone()), (json!("done"), json!(4), json!(4)));
    assert_eq!(job["valid"].as_array().map(Vec::len), Some(1));
    assert_eq!(job["valid"][0]["categories"], json!(["kimi"]));
    let invalid: Vec<u64> = job["invalid"].as_array().unwrap().iter().map(|e| e["line"].as_u64().unwrap()).collect();
    assert_eq!(invalid.len(), 3);
    assert!(invalid.contains(&2) && invalid.contains(&3) && invalid.contains(&4), "{job}");
    assert!(!job.to_string().contains("\"good\"") && !job.to_string().contains("rejected\""), "keys are masked");
    let listed = app.admin_get("/admin/api-keys?search=alice").await.json::<Value>().await.unwrap();
    assert_eq!(listed["total"], 1);
    assert_eq!(app.post_chat(&chat("kimi-k2:1t", false)).await.status(), 200);
    assert_eq!(app.upstream.last_request("good").unwrap().path, "/v1/chat/completions");
}

#[tokio::test]
async fn a_validated_import_reports_progress_as_server_sent_events() {
    let app = spawn_app().await;
    app.upstream.set_stream_chunks(1, Duration::from_millis(0));
    let content: String = (0..5).map(|i| format!("key-{i}\n")).collect();
    let response = app.admin_post("/admin/api-keys/import-with-validation", json!({"content": content})).await;
    let id = response.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned();
    let events = app
        .client
        .get(app.url(&format!("/admin/jobs/{id}")))
        .bearer_auth(crate::helpers::ADMIN)
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(events.headers()["content-type"], "text/event-stream");
    let mut body = String::new();
    let mut stream = events.bytes_stream();
    while let Some(chunk) = tokio::time::timeout(Duration::from_secs(10), stream.next()).await.unwrap() {
        body.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
        if body.contains("event: done") && body.ends_with("\n\n") {
            break;
        }
    }
    let done = body.split("event: done\ndata: ").nth(1).unwrap().trim();
    let done: Value = serde_json::from_str(done).unwrap();
    assert_eq!(done["valid"].as_array().map(Vec::len), Some(5));
    let missing = app.admin_get("/admin/jobs/0190ffff-0000-7000-8000-000000000000").await;
    assert_eq!(missing.status(), 404);
}

#[tokio::test]
async fn discovered_models_and_manual_disables_survive_a_restart() {
    // Arrange
    let mut app = spawn_app().await;
    let k1 = app.add_key("k1").await;
    let k2 = app.add_key("k2").await;
    app.upstream.set_models(Some("k1"), vec!["llama3".into()]);
    post_ok(&app, "/admin/verify-key", json!({"id": k1})).await;
    post_ok(&app, "/admin/keys/disable", json!({"id": k2})).await;
    // Act
    app.stop().await;
    let dir = app.take_dir();
    let again = spawn_app_with(Options { db_url: Some(app.db_url.clone()), ..Options::new() }).await;
    // Assert
    let stats = again.admin_get("/admin/keys/stats").await.json::<Value>().await.unwrap();
    let by_id = |id: &str| stats["stats"].as_array().unwrap().iter().find(|s| s["id"] == id).unwrap().clone();
    assert_eq!(by_id(&k1)["models"], json!(["llama3:latest"]), "discovered names are stored canonical");
    assert_eq!((by_id(&k2)["status"].clone(), by_id(&k2)["manual"].clone()), (json!("disabled"), json!(true)));
    let qwen = again.post_chat(&chat("qwen", false)).await;
    assert_eq!(qwen.status(), 503, "k1 serves only llama3; k2 (models unknown) is disabled");
    assert_eq!(again.post_chat(&chat("llama3", false)).await.status(), 200);
    drop(dir);
}
