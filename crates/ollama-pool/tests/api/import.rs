//! Bulk key import through its three endpoints: every format, the provider honoured,
//! duplicates and mistakes reported by line, nothing secret echoed, keys in rotation at once.

use reqwest::Response;
use serde_json::{Value, json};

use crate::helpers::{ADMIN, Options, TestApp, chat, error_of, spawn_app, spawn_app_with};

const KEYS: &str = "/admin/api-keys/import";
const TEXT: &str = "/admin/api-keys/import-from-txt";
const ACCOUNTS: &str = "/admin/import";

/// One line of each text format, with the key and username it must yield.
const LINES: [(&str, &str, Option<&str>); 5] = [
    ("sk-bare-0001", "sk-bare-0001", None),
    ("alice----sk-user-0002", "sk-user-0002", Some("alice")),
    ("bob@example.com----hunter2----sess=abc----sk-four-0003", "sk-four-0003", Some("bob@example.com")),
    ("carol@example.com----pw----sess----aid=9----sk-five-0004", "sk-five-0004", Some("carol@example.com")),
    (r#"{"api_key": "sk-json-0005", "username": "dave"}"#, "sk-json-0005", Some("dave")),
];

/// The body of `endpoint` carrying `lines`, one entry per line.
fn body_of(endpoint: &str, lines: &[&str], provider: Option<&str>) -> Value {
    let mut body = match endpoint {
        KEYS => json!({"keys": lines}),
        TEXT => json!({"content": lines.join("\n")}),
        _ => json!({"accounts": lines}),
    };
    if let Some(p) = provider {
        body["provider"] = json!(p);
    }
    body
}

async fn import(app: &TestApp, endpoint: &str, body: Value) -> Value {
    let response = app.admin_post(endpoint, body).await;
    assert_eq!(response.status(), 200, "{endpoint}");
    response.json().await.unwrap()
}

async fn admin_raw(app: &TestApp, path: &str, body: &'static str) -> Response {
    let request = app.client.post(app.url(path)).bearer_auth(ADMIN).header("content-type", "application/json");
    request.body(body).send().await.unwrap()
}

/// (username, provider) of the key whose whole secret is `secret`, found by the admin search.
async fn stored(app: &TestApp, secret: &str) -> Option<(Value, Value)> {
    let found: Value = app.admin_get(&format!("/admin/api-keys?search={secret}")).await.json().await.unwrap();
    found["api_keys"].as_array().unwrap().first().map(|k| (k["username"].clone(), k["provider"].clone()))
}

fn counts(report: &Value) -> [u64; 4] {
    ["total", "added", "duplicates", "invalid"].map(|field| report[field].as_u64().unwrap())
}

#[tokio::test]
async fn every_format_is_imported_through_each_endpoint() {
    for endpoint in [KEYS, TEXT, ACCOUNTS] {
        // Arrange
        let app = spawn_app().await;
        let lines: Vec<&str> = LINES.iter().map(|(line, ..)| *line).collect();
        // Act
        let report = import(&app, endpoint, body_of(endpoint, &lines, None)).await;
        // Assert
        assert_eq!(counts(&report), [5, 5, 0, 0], "{endpoint}: {report}");
        assert_eq!(report["details"], json!([]));
        assert_eq!(report["truncated"], false);
        for (_, secret, username) in LINES {
            assert_eq!(stored(&app, secret).await, Some((json!(username), json!("ollama"))), "{endpoint} {secret}");
        }
    }
}

#[tokio::test]
async fn accounts_may_be_objects_with_username_or_email() {
    // Arrange
    let app = spawn_app().await;
    let accounts = json!([
        {"api_key": "sk-obj-0001", "username": "erin"},
        {"apiKey": "sk-obj-0002", "email": "frank@example.com", "password": "pw-frank"},
        {"api_key": "sk-obj-0003"},
    ]);
    // Act
    let report = import(&app, ACCOUNTS, json!({"accounts": accounts})).await;
    // Assert
    assert_eq!(counts(&report), [3, 3, 0, 0], "{report}");
    assert_eq!(stored(&app, "sk-obj-0001").await.unwrap().0, "erin");
    assert_eq!(stored(&app, "sk-obj-0002").await.unwrap().0, "frank@example.com");
    assert_eq!(stored(&app, "sk-obj-0003").await.unwrap().0, Value::Null);
}

#[tokio::test]
async fn imported_keys_serve_the_provider_named_in_the_body_and_no_other() {
    for endpoint in [KEYS, TEXT, ACCOUNTS] {
        // Arrange
        let app = spawn_app().await;
        // Act
        let report = import(&app, endpoint, body_of(endpoint, &["owner----or-key-1"], Some("openrouter"))).await;
        let routed = app.post_as(&app.token, "/openrouter/v1/chat/completions", &chat("m", false)).await;
        let default = app.post_chat(&chat("m", false)).await;
        // Assert
        assert_eq!(report["provider"], "openrouter", "{endpoint}");
        assert_eq!(routed.status(), 200, "{endpoint}");
        assert_eq!(app.upstream.calls("or-key-1"), 1, "{endpoint}");
        assert_eq!(default.status(), 503, "{endpoint}: the default pool has no key");
        assert_eq!(stored(&app, "or-key-1").await.unwrap().1, "openrouter");
    }
}

#[tokio::test]
async fn an_imported_key_serves_the_very_next_request() {
    // Arrange
    let app = spawn_app().await;
    // Act
    import(&app, TEXT, json!({"content": "user----sk-fresh-key"})).await;
    let response = app.post_chat(&chat("m", false)).await;
    // Assert
    assert_eq!(response.status(), 200);
    assert_eq!(app.upstream.calls("sk-fresh-key"), 1);
}

#[tokio::test]
async fn imported_keys_and_their_usernames_survive_a_restart() {
    // Arrange
    let mut app = spawn_app().await;
    let body = json!({"content": "alice----sk-persist-0001\nsk-persist-0002", "provider": "openrouter"});
    import(&app, TEXT, body).await;
    // Act
    app.stop().await;
    let _dir = app.take_dir();
    let again = spawn_app_with(Options { db_url: Some(app.db_url.clone()), ..Options::new() }).await;
    // Assert
    assert_eq!(stored(&again, "sk-persist-0001").await, Some((json!("alice"), json!("openrouter"))));
    assert_eq!(stored(&again, "sk-persist-0002").await, Some((Value::Null, json!("openrouter"))));
}

#[tokio::test]
async fn duplicates_in_the_pool_and_in_the_batch_are_counted_with_their_lines() {
    // Arrange
    let app = spawn_app().await;
    app.add_key("sk-already-pooled-01").await;
    app.add_key_to(Some("openrouter"), "sk-other-provider-01").await;
    let content = "sk-new-key-000001\n# comment\nsk-already-pooled-01\nx----sk-new-key-000001\nsk-other-provider-01";
    // Act
    let report = import(&app, TEXT, json!({"content": content})).await;
    // Assert
    assert_eq!(counts(&report), [4, 2, 2, 0], "{report}");
    assert_eq!(
        report["details"],
        json!([
            {"line": 3, "apiKey": "sk-a…d-01", "duplicate": "pool"},
            {"line": 4, "apiKey": "sk-n…0001", "duplicate": "batch"},
        ])
    );
    assert_eq!(stored(&app, "sk-new-key-000001").await.unwrap().0, Value::Null, "the first occurrence wins");
}

#[tokio::test]
async fn invalid_lines_are_reported_with_their_line_and_reason() {
    // Arrange
    let app = spawn_app().await;
    let content =
        ["sk-good-key-1", "user----", "two words", "a----b----c----d----e----sk-six", "{\"username\": \"x\"}"];
    // Act
    let report = import(&app, TEXT, json!({"content": content.join("\r\n")})).await;
    // Assert
    assert_eq!(counts(&report), [5, 1, 0, 4], "{report}");
    let details = report["details"].as_array().unwrap();
    let lines: Vec<u64> = details.iter().map(|d| d["line"].as_u64().unwrap()).collect();
    assert_eq!(lines, [2, 3, 4, 5]);
    assert_eq!(details[0]["error"], "API key is empty");
    assert!(details[1]["error"].as_str().unwrap().contains("visible ASCII"));
    assert!(details[2]["error"].as_str().unwrap().contains("6 '----' fields"));
    assert_eq!(details[3]["error"], "JSON object has no \"api_key\" field");
}

#[tokio::test]
async fn entries_that_are_neither_strings_nor_objects_are_invalid_not_fatal() {
    // Arrange
    let app = spawn_app().await;
    // Act
    let report = import(&app, ACCOUNTS, json!({"accounts": ["sk-fine-0001", 42, null, ["sk-nested"]]})).await;
    // Assert
    assert_eq!(counts(&report), [4, 1, 0, 3], "{report}");
    assert_eq!(report["details"][0], json!({"line": 2, "error": "Entry is a number; expected a string or an object"}));
}

#[tokio::test]
async fn no_answer_carries_a_full_key_or_a_password() {
    // Arrange
    let app = spawn_app().await;
    let secret = "sk-live-0123456789abcdefSECRET";
    let password = "pw-Tr0ub4dor-and-3";
    let session = "session-cookie-value-xyz";
    let content =
        format!("me@x.io----{password}----{session}----{secret}\nme@x.io----{password}----{session}----{secret}");
    // Act
    let first = app.admin_post(TEXT, json!({"content": content})).await.text().await.unwrap();
    let again = app.admin_post(TEXT, json!({"content": content})).await.text().await.unwrap();
    let wrong_type = app.admin_post(KEYS, json!({"keys": secret})).await;
    let wrong_status = wrong_type.status();
    let wrong_type = wrong_type.text().await.unwrap();
    // Assert
    assert_eq!(wrong_status, 400);
    for body in [first, again, wrong_type] {
        for hidden in [secret, password, session, "0123456789abcdef"] {
            assert!(!body.contains(hidden), "{hidden} in {body}");
        }
    }
}

#[tokio::test]
async fn twenty_thousand_keys_import_in_one_call() {
    // Arrange
    let app = spawn_app().await;
    app.add_key("sk-bulk-000000").await;
    let keys: Vec<String> = (0..20_000).map(|i| format!("user{i}----sk-bulk-{i:06}")).collect();
    // Act
    let report = import(&app, KEYS, json!({"keys": keys})).await;
    let listed: Value = app.admin_get("/admin/api-keys?pageSize=1").await.json().await.unwrap();
    // Assert
    assert_eq!(counts(&report), [20_000, 19_999, 1, 0], "{}", report["details"]);
    assert_eq!(listed["total"], 20_000);
    assert_eq!(stored(&app, "sk-bulk-019999").await.unwrap().0, "user19999");
}

#[tokio::test]
async fn details_stop_at_ten_thousand_entries_and_say_so() {
    // Arrange
    let app = spawn_app().await;
    let content = "not a key\n".repeat(10_001);
    // Act
    let report = import(&app, TEXT, json!({"content": content})).await;
    // Assert
    assert_eq!(counts(&report), [10_001, 0, 0, 10_001]);
    assert_eq!(report["details"].as_array().unwrap().len(), 10_000);
    assert_eq!(report["truncated"], true);
}

#[tokio::test]
async fn hostile_usernames_are_stored_as_plain_data() {
    // Arrange
    let app = spawn_app().await;
    let hostile = ["<script>alert(1)</script>", "'; DROP TABLE keys; --", "x{{7*7}} ${jndi:ldap://x}", "ключ 🔑"];
    let accounts: Vec<String> = hostile.iter().enumerate().map(|(i, u)| format!("{u}----sk-hostile-{i:04}")).collect();
    // Act
    let report = import(&app, ACCOUNTS, json!({"accounts": accounts})).await;
    // Assert
    assert_eq!(counts(&report), [4, 4, 0, 0], "{report}");
    for (i, username) in hostile.iter().enumerate() {
        assert_eq!(stored(&app, &format!("sk-hostile-{i:04}")).await.unwrap().0, *username);
    }
    let control = import(&app, ACCOUNTS, json!({"accounts": ["bad\u{1b}[2J----sk-hostile-9999"]})).await;
    assert_eq!(control["details"][0]["error"], "username contains control characters");
}

#[tokio::test]
async fn malformed_import_bodies_get_400_in_the_openai_shape() {
    // Arrange
    let app = spawn_app().await;
    let cases: [(&str, &str, &'static str); 9] = [
        ("invalid json", KEYS, r#"{"keys": ["#),
        ("not an object", KEYS, r#"["sk-1"]"#),
        ("missing field", TEXT, r#"{"provider": "ollama"}"#),
        ("unknown field", ACCOUNTS, r#"{"accounts": [], "dryRun": true}"#),
        ("keys not an array", KEYS, r#"{"keys": "sk-1"}"#),
        ("content not a string", TEXT, r#"{"content": ["sk-1"]}"#),
        ("accounts not an array", ACCOUNTS, r#"{"accounts": {"api_key": "sk-1"}}"#),
        ("unknown provider", ACCOUNTS, r#"{"accounts": ["sk-1"], "provider": "nope"}"#),
        ("provider of the wrong type", TEXT, r#"{"content": "sk-1", "provider": 7}"#),
    ];
    for (name, path, body) in cases {
        // Act
        let response = admin_raw(&app, path, body).await;
        // Assert
        assert_eq!(response.status(), 400, "{name}");
        assert_eq!(error_of(response).await["type"], "invalid_request_error", "{name}");
    }
    let anonymous = app.client.post(app.url(KEYS)).json(&json!({"keys": ["sk-1"]})).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
    let listed: Value = app.admin_get("/admin/api-keys").await.json().await.unwrap();
    assert_eq!(listed["total"], 0, "nothing was imported");
}
