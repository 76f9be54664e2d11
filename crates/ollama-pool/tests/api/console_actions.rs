//! The console's server-side actions: bulk key actions by ids or by the listing's filter (and a
//! verify job), the key export, bulk token revocation and token search, and what the providers
//! list says about models and base URLs.

use std::time::{Duration, Instant};

use pool_testkit::Fault;
use serde_json::{Value, json};

use crate::helpers::{TestApp, error_of, spawn_app};

async fn ok_json(app: &TestApp, path: &str, body: Value) -> Value {
    let response = app.admin_post(path, body).await;
    let status = response.status();
    let json: Value = response.json().await.unwrap();
    assert!(status.is_success(), "{path}: {status} {json}");
    json
}

async fn listed(app: &TestApp, query: &str) -> Value {
    app.admin_get(&format!("/admin/api-keys?{query}")).await.json().await.unwrap()
}

/// Imports `n` keys labelled `team-a-…` and `team-b-…` alternately, 20,000 a call.
async fn import_teams(app: &TestApp, n: usize) {
    for start in (0..n).step_by(20_000) {
        let lines: Vec<String> = (start..(start + 20_000).min(n))
            .map(|i| format!("team-{}-{i}----sk-console-{i:06}-0123456789abcdef", if i % 2 == 0 { "a" } else { "b" }))
            .collect();
        let report = ok_json(app, "/admin/api-keys/import-from-txt", json!({"content": lines.join("\n")})).await;
        assert_eq!(report["added"], lines.len(), "{}", report["invalid"]);
    }
}

#[tokio::test]
async fn a_bulk_disable_by_filter_over_100000_keys_disables_exactly_the_matching_half_in_one_call() {
    // Arrange
    let app = spawn_app().await;
    import_teams(&app, 100_000).await;
    // Act
    let started = Instant::now();
    let body = json!({"action": "disable", "filter": {"search": "team-a"}, "duration": 600});
    let answer = ok_json(&app, "/admin/api-keys/bulk", body).await;
    let elapsed = started.elapsed();
    // Assert
    println!("bulk disable of 50,000 of 100,000 keys by filter: {} ms", elapsed.as_millis());
    assert_eq!((answer["matched"].clone(), answer["changed"].clone()), (json!(50_000), json!(50_000)));
    assert!(answer["until"].is_string());
    assert_eq!(listed(&app, "status=disabled&pageSize=1").await["total"], 50_000);
    let others = listed(&app, "status=active&search=team-b&pageSize=1").await;
    assert_eq!(others["total"], 50_000, "keys outside the filter are untouched");
    assert!(elapsed < Duration::from_secs(30), "{elapsed:?}: a bulk action must not be quadratic");
}

#[tokio::test]
async fn bulk_actions_by_ids_enable_disable_reset_and_delete_and_count_what_changed() {
    // Arrange
    let app = spawn_app().await;
    let (a, b, c) = (app.add_key("ka").await, app.add_key("kb").await, app.add_key("kc").await);
    let bulk = |action: &str, ids: Vec<&String>| json!({"action": action, "ids": ids});
    // Act + Assert: a disable until enabled, an enable, a reset that lifts cooldowns only
    let disabled = ok_json(&app, "/admin/api-keys/bulk", bulk("disable", vec![&a, &b])).await;
    assert_eq!((disabled["changed"].clone(), disabled["until"].clone()), (json!(2), Value::Null));
    assert_eq!(app.key(&a).await["status"], "disabled");
    let enabled = ok_json(&app, "/admin/api-keys/bulk", bulk("enable", vec![&a, &c])).await;
    assert_eq!((enabled["matched"].clone(), enabled["changed"].clone()), (json!(2), json!(1)), "c was active");
    app.upstream.fail_next("kc", Fault::rate_limited(Some("600")), 1);
    app.upstream.fail_next("ka", Fault::rate_limited(Some("600")), 1);
    app.post_chat(&crate::helpers::chat("m", false)).await;
    let reset = ok_json(&app, "/admin/api-keys/bulk", json!({"action": "reset-cooldown", "filter": {}})).await;
    assert_eq!(reset["matched"], 3);
    assert_eq!(app.key(&b).await["status"], "disabled", "a reset never lifts an operator's disable");
    assert_eq!(app.key(&c).await["status"], "active");
    let deleted = ok_json(&app, "/admin/api-keys/bulk", bulk("delete", vec![&a, &c, &c])).await;
    assert_eq!(deleted["changed"], 2);
    assert_eq!(listed(&app, "").await["total"], 1);
}

#[tokio::test]
async fn a_bulk_verify_runs_as_a_job_whose_progress_ends_with_every_verdict() {
    // Arrange
    let app = spawn_app().await;
    let good = app.add_key("good").await;
    let bad = app.add_key("bad").await;
    app.upstream.set_fault("bad", Fault::status(401));
    // Act
    let response = app.admin_post("/admin/api-keys/bulk", json!({"action": "verify", "ids": [good, bad]})).await;
    assert_eq!(response.status(), 202);
    let started: Value = response.json().await.unwrap();
    let job = started["job"].as_str().unwrap().to_owned();
    assert_eq!(started["total"], 2);
    let deadline = Instant::now() + Duration::from_secs(10);
    let done = loop {
        let state: Value = app.admin_get(&format!("/admin/jobs/{job}")).await.json().await.unwrap();
        if state["status"] == "done" || Instant::now() > deadline {
            break state;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    };
    // Assert
    assert_eq!(done["status"], "done", "{done}");
    assert_eq!((done["valid"].as_array().unwrap().len(), done["invalid"].as_array().unwrap().len()), (1, 1));
    assert_eq!(done["invalid"][0]["id"], bad);
    assert_eq!(app.key(&bad).await["status"], "failed");
    assert!(!done.to_string().contains("\"bad\""), "never a whole key");
}

#[tokio::test]
async fn bulk_calls_that_name_keys_badly_are_refused_with_a_400_in_our_shape() {
    let app = spawn_app().await;
    let id = app.add_key("k").await;
    let huge: Vec<String> = (0..10_001).map(|_| id.clone()).collect();
    let cases = [
        (json!({"action": "explode", "ids": [id]}), Some("action")),
        (json!({"action": "enable", "ids": [id], "filter": {}}), None),
        (json!({"action": "enable"}), None),
        (json!({"action": "enable", "ids": []}), Some("ids")),
        (json!({"action": "enable", "ids": huge}), Some("ids")),
        (json!({"action": "enable", "ids": ["not-an-id"]}), Some("ids")),
        (json!({"action": "enable", "ids": [id], "duration": 60}), Some("duration")),
        (json!({"action": "enable", "filter": {"status": "sleepy"}}), Some("status")),
        (json!({"action": "enable", "filter": {"provider": "nowhere"}}), Some("provider")),
        (json!({"action": "enable", "filter": {"colour": "red"}}), None),
        (json!({"action": "disable", "ids": [id], "duration": 999_999_999_999_u64}), Some("duration")),
    ];
    for (body, param) in cases {
        let response = app.admin_post("/admin/api-keys/bulk", body.clone()).await;
        assert_eq!(response.status(), 400, "{body}");
        let error = error_of(response).await;
        if let Some(param) = param {
            assert_eq!(error["param"], param, "{body}: {error}");
        }
    }
    assert_eq!(app.key(&id).await["status"], "active", "no refused call changed anything");
}

#[tokio::test]
async fn the_export_streams_the_filtered_keys_masked_as_csv_or_json() {
    // Arrange
    let app = spawn_app().await;
    import_teams(&app, 1_201).await;
    let one = listed(&app, "search=team-b-7&pageSize=1").await["api_keys"][0]["id"].as_str().unwrap().to_owned();
    ok_json(&app, "/admin/api-keys/bulk", json!({"action": "disable", "ids": [one]})).await;
    // Act
    let csv = app.admin_get("/admin/api-keys/export?format=csv&search=team-a").await;
    let json_export = app.admin_get("/admin/api-keys/export?format=json&status=disabled").await;
    // Assert
    assert_eq!(csv.status(), 200);
    assert!(csv.headers()["content-type"].to_str().unwrap().starts_with("text/csv"));
    assert!(csv.headers()["content-disposition"].to_str().unwrap().starts_with("attachment"));
    let text = csv.text().await.unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("id,label,provider,api_key,state,reason"), "{}", lines[0]);
    assert_eq!(lines.len(), 1 + 601, "a header and every team-a key");
    assert!(lines[1..].iter().all(|l| l.contains(",team-a-") && l.contains(",active,")));
    assert!(!text.contains("0123456789abcdef"), "secrets are masked in an export");
    let rows: Vec<Value> = json_export.json().await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!((rows[0]["id"].as_str(), rows[0]["state"].as_str()), (Some(one.as_str()), Some("disabled")));
    assert_eq!(rows[0]["reason"], "disabled by an operator");
    assert!(rows[0]["api_key"].as_str().unwrap().contains('…'));
    let bad = app.admin_get("/admin/api-keys/export?format=xml").await;
    assert_eq!(bad.status(), 400);
    assert_eq!(error_of(bad).await["param"], "format");
    let unsigned = app.client.get(app.url("/admin/api-keys/export")).send().await.unwrap();
    assert_eq!(unsigned.status(), 401);
}

#[tokio::test]
async fn tokens_are_searched_by_the_server_and_revoked_many_in_one_call() {
    // Arrange
    let app = spawn_app().await;
    let mut ids = Vec::new();
    for name in ["ci-one", "ci-two", "keep-me"] {
        ids.push(app.create_token(json!({"name": name})).await["id"].as_str().unwrap().to_owned());
    }
    let ci: Value = app.admin_get("/admin/tokens?search=CI-").await.json().await.unwrap();
    assert_eq!(ci["tokens"].as_array().unwrap().len(), 2);
    let secret = app.create_token(json!({"name": "used"})).await;
    let used = secret["token"].as_str().unwrap().to_owned();
    ids.push(secret["id"].as_str().unwrap().to_owned());
    // Act
    let answer = ok_json(&app, "/admin/tokens/bulk-revoke", json!({"ids": [ids[0], ids[1], ids[3]]})).await;
    // Assert
    assert_eq!((answer["revoked"].clone(), answer["total"].clone()), (json!(3), json!(3)));
    let left: Value = app.admin_get("/admin/tokens").await.json().await.unwrap();
    let names: Vec<&str> = left["tokens"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(names.contains(&"keep-me") && names.contains(&"tests"));
    app.add_key("k").await;
    assert_eq!(app.post_as(&used, "/v1/chat/completions", &crate::helpers::chat("m", false)).await.status(), 401);
    for body in [json!({"ids": []}), json!({"ids": ["nope"]}), json!({}), json!({"ids": [ids[2]], "all": true})] {
        let response = app.admin_post("/admin/tokens/bulk-revoke", body.clone()).await;
        assert_eq!(response.status(), 400, "{body}");
        error_of(response).await;
    }
}

#[tokio::test]
async fn the_providers_list_names_each_pools_models_and_the_gateways_base_urls() {
    let app = spawn_app().await;
    let id = app.add_key("k").await;
    ok_json(&app, "/admin/verify-key", json!({"id": id})).await;
    let providers: Value = app.admin_get("/admin/providers").await.json().await.unwrap();
    let all = providers["providers"].as_array().unwrap();
    let ollama = all.iter().find(|p| p["name"] == "ollama").unwrap();
    assert_eq!(ollama["models"], json!(["kimi-k2:1t", "llama3.2:3b", "qwen2.5:7b"]));
    assert_eq!(ollama["endpoints"], json!({"openai": "/ollama/v1", "ollama": "/ollama/api"}));
    let openrouter = all.iter().find(|p| p["name"] == "openrouter").unwrap();
    assert_eq!(openrouter["models"], Value::Null, "no key discovered yet");
    assert_eq!(openrouter["endpoints"], json!({"openai": "/openrouter/v1", "ollama": null}));
}

#[tokio::test]
async fn a_validated_import_answers_its_duplicates_and_rejections_up_front() {
    let app = spawn_app().await;
    app.add_key("sk-already-there-0123456789").await;
    let content = "sk-already-there-0123456789\nsk-fresh-one-0123456789\nbad key with spaces";
    let response = app.admin_post("/admin/api-keys/import-with-validation", json!({"content": content})).await;
    assert_eq!(response.status(), 202);
    let started: Value = response.json().await.unwrap();
    assert_eq!((started["total"].clone(), started["duplicates"].clone()), (json!(3), json!(1)));
    assert_eq!(started["rejected"], 1);
}
