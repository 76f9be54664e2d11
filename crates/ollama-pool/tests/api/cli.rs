//! The operator CLI as a real process: `keys import|list|check|enable|disable` and
//! `tokens create|list|revoke` against an in-process gateway, `keys import` offline against a
//! SQLite file, and what the commands say when the token or the server is wrong.

use std::path::Path;
use std::process::{Output, Stdio};

use pool_testkit::Fault;
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;

use crate::helpers::{ADMIN, Options, TestApp, chat, free_addr, spawn_app, spawn_app_with};

/// Every text format, a comment, a blank line, duplicates and a line with too many fields; with
/// `--chunk-lines 4`, the invalid line 9 opens the third chunk.
const MIXED: &str = "\
# keys for the pool
sk-bare-key-0001
alice----sk-user-key-0002
bob@example.com----hunter2----sess=abc----sk-four-key-0003
carol@example.com----pw----sess----aid=9----sk-five-key-0004
{\"api_key\": \"sk-json-key-0005\", \"username\": \"dave\"}

sk-bare-key-0001
a----b----c----d----e----sk-six-fields-0006
sk-user-key-0002
";

const MIXED_KEYS: [&str; 5] =
    ["sk-bare-key-0001", "sk-user-key-0002", "sk-four-key-0003", "sk-five-key-0004", "sk-json-key-0005"];

/// What a run of the binary printed, and whether it succeeded.
struct Ran {
    success: bool,
    stdout: String,
    stderr: String,
}

impl Ran {
    fn from(output: Output) -> Self {
        let text = |bytes: Vec<u8>| String::from_utf8(bytes).unwrap();
        Ran { success: output.status.success(), stdout: text(output.stdout), stderr: text(output.stderr) }
    }

    /// Stdout, after checking that the command succeeded.
    fn ok(&self) -> &str {
        assert!(self.success, "the command failed:\n{}\n{}", self.stdout, self.stderr);
        &self.stdout
    }

    /// Neither output holds any of `secrets`, nor the admin token.
    fn assert_shows_none_of(&self, secrets: &[&str]) {
        for secret in secrets.iter().chain([&ADMIN]) {
            assert!(!self.stdout.contains(secret) && !self.stderr.contains(secret), "{secret} was printed");
        }
    }
}

/// `ollama-pool ARGS` with the admin token and `url` in the environment, on `db_url`.
async fn run_with(url: &str, token: Option<&str>, db_url: &str, args: &[&str], stdin: Option<&str>) -> Ran {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_ollama-pool"));
    command
        .args(args)
        .env("POOL_URL", url)
        .env("POOL_DATABASE_URL", db_url)
        .env("RUST_LOG", "warn")
        .env_remove("POOL_CONFIG")
        .env_remove("POOL_MASTER_KEY")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    match token {
        Some(token) => command.env("POOL_ADMIN_TOKEN", token),
        None => command.env_remove("POOL_ADMIN_TOKEN"),
    };
    let mut child = command.spawn().unwrap();
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.unwrap_or_default().as_bytes()).await.unwrap();
    drop(input);
    Ran::from(child.wait_with_output().await.unwrap())
}

/// `ollama-pool ARGS` against `app`, as its operator.
async fn run(app: &TestApp, args: &[&str]) -> Ran {
    run_with(&app.base, Some(ADMIN), &app.db_url, args, None).await
}

/// A URL where nothing listens: a port bound, then released.
fn dead_url() -> String {
    format!("http://{}", free_addr())
}

fn write_file(dir: &Path, content: &str) -> String {
    let path = dir.join("keys.txt");
    std::fs::write(&path, content).unwrap();
    path.to_str().unwrap().to_owned()
}

/// (username, provider) of the key whose whole secret is `secret`, if the gateway has it.
async fn stored(app: &TestApp, secret: &str) -> Option<(Value, Value)> {
    let found: Value = app.admin_get(&format!("/admin/api-keys?search={secret}")).await.json().await.unwrap();
    found["api_keys"].as_array().unwrap().first().map(|k| (k["username"].clone(), k["provider"].clone()))
}

/// Adds a key with a username that does not contain it (`TestApp::add_key` puts it in), so that
/// output can be checked for the key.
async fn add_key_of(app: &TestApp, secret: &str, username: &str) -> String {
    let added: Value =
        app.admin_post("/admin/api-keys", json!({"api_key": secret, "username": username})).await.json().await.unwrap();
    added["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn import_sends_every_format_through_the_server_and_reports_true_file_lines() {
    // Arrange
    let app = spawn_app().await;
    let dir = tempfile::tempdir().unwrap();
    let file = write_file(dir.path(), MIXED);
    // Act
    let ran = run(&app, &["keys", "import", &file, "--provider", "openrouter", "--chunk-lines", "4"]).await;
    // Assert
    let out = ran.ok();
    for count in ["total:      8", "added:      5", "duplicates: 2", "invalid:    1"] {
        assert!(out.contains(count), "{count}: {out}");
    }
    assert!(out.contains("line 9: Line has 6 '----' fields"), "the third chunk's first line is line 9: {out}");
    assert!(out.contains("line 8: duplicate") && out.contains("line 10: duplicate"), "{out}");
    assert_eq!(stored(&app, "sk-five-key-0004").await, Some((json!("carol@example.com"), json!("openrouter"))));
    assert_eq!(stored(&app, "sk-json-key-0005").await, Some((json!("dave"), json!("openrouter"))));
    assert_eq!(stored(&app, "sk-bare-key-0001").await, Some((Value::Null, json!("openrouter"))));
    ran.assert_shows_none_of(&MIXED_KEYS);
}

#[tokio::test]
async fn import_with_validate_adds_only_the_keys_the_upstream_accepts() {
    // Arrange
    let app = spawn_app().await;
    app.upstream.set_fault("sk-refused-key-0003", Fault::status(401));
    let dir = tempfile::tempdir().unwrap();
    let file = write_file(dir.path(), "sk-good-key-0001\nalice----sk-good-key-0002\nsk-refused-key-0003\nbad key\n");
    // Act
    let ran = run(&app, &["keys", "import", &file, "--validate", "--concurrency", "2"]).await;
    // Assert
    let out = ran.ok();
    assert!(out.contains("valid:   2") && out.contains("invalid: 2"), "{out}");
    assert!(out.contains("line 3: ") && out.contains("line 4: "), "{out}");
    assert_eq!(stored(&app, "sk-good-key-0002").await, Some((json!("alice"), json!("ollama"))));
    assert!(stored(&app, "sk-good-key-0001").await.is_some());
    assert_eq!(stored(&app, "sk-refused-key-0003").await, None);
    ran.assert_shows_none_of(&["sk-good-key-0001", "sk-good-key-0002", "sk-refused-key-0003"]);
}

#[tokio::test]
async fn import_with_no_server_writes_to_the_database_that_a_gateway_then_serves() {
    // Arrange
    let dir = tempfile::tempdir().unwrap();
    let db_url = format!("sqlite://{}/pool.db", dir.path().display());
    let file = write_file(dir.path(), MIXED);
    let url = dead_url();
    let import = ["keys", "import", file.as_str(), "--url", url.as_str(), "--chunk-lines", "2"];
    // Act
    let first = run_with(&dead_url(), None, &db_url, &import, None).await;
    let again = run_with(&dead_url(), None, &db_url, &import, None).await;
    let app = spawn_app_with(Options { db_url: Some(db_url.clone()), ..Options::new() }).await;
    // Assert
    let out = first.ok();
    assert!(out.contains("added:      5") && out.contains("duplicates: 2") && out.contains("invalid:    1"), "{out}");
    assert!(out.contains("line 9: Line has 6 '----' fields") && out.contains(&url), "{out}");
    assert!(again.ok().contains("added:      0") && again.ok().contains("duplicates: 7"), "{}", again.stdout);
    assert_eq!(stored(&app, "sk-four-key-0003").await, Some((json!("bob@example.com"), json!("ollama"))));
    assert_eq!(app.post_chat(&chat("m", false)).await.status(), 200);
    first.assert_shows_none_of(&MIXED_KEYS);
}

#[tokio::test]
async fn import_with_no_server_refuses_validate_and_unknown_providers() {
    // Arrange
    let dir = tempfile::tempdir().unwrap();
    let db_url = format!("sqlite://{}/pool.db", dir.path().display());
    let file = write_file(dir.path(), "sk-some-key-0001\n");
    let url = dead_url();
    // Act
    let validate = run_with(&url, None, &db_url, &["keys", "import", &file, "--validate"], None).await;
    let unknown = run_with(&url, None, &db_url, &["keys", "import", &file, "--provider", "nope"], None).await;
    // Assert
    assert!(!validate.success && validate.stderr.contains("--validate needs a running server"), "{}", validate.stderr);
    assert!(!unknown.success && unknown.stderr.contains("unknown provider 'nope'"), "{}", unknown.stderr);
}

#[tokio::test]
async fn list_shows_every_key_masked_with_its_state() {
    // Arrange
    let app = spawn_app().await;
    let active = add_key_of(&app, "sk-listed-key-0001", "alice").await;
    let held = add_key_of(&app, "sk-listed-key-0002", "bob").await;
    let disabled = app.admin_post("/admin/keys/disable", json!({"id": held, "duration": 600})).await;
    assert_eq!(disabled.status(), 200);
    // Act
    let table = run(&app, &["keys", "list"]).await;
    let only_disabled = run(&app, &["keys", "list", "--status", "disabled", "--json"]).await;
    // Assert
    let out = table.ok();
    let line_of = |id: &str| out.lines().find(|l| l.starts_with(id)).unwrap_or_default().to_owned();
    assert!(line_of(&active).contains("active") && line_of(&active).contains("alice"), "{out}");
    assert!(line_of(&held).contains("disabled by an operator until"), "{out}");
    assert!(out.contains("Page 1 of 1 (2 keys)."), "{out}");
    let json: Value = serde_json::from_str(only_disabled.ok()).unwrap();
    assert_eq!(json["total"], 1);
    assert_eq!(json["stats"][0]["id"], held);
    table.assert_shows_none_of(&["sk-listed-key-0001", "sk-listed-key-0002"]);
}

#[tokio::test]
async fn check_names_the_keys_the_upstream_refuses() {
    // Arrange
    let app = spawn_app().await;
    let good = add_key_of(&app, "sk-good-key-0001", "alice").await;
    let bad = add_key_of(&app, "sk-bad-key-0002", "bob").await;
    app.upstream.set_fault("sk-bad-key-0002", Fault::status(401));
    // Act
    let ran = run(&app, &["keys", "check"]).await;
    // Assert
    let out = ran.ok();
    assert!(out.contains("Checked 2 keys: 1 healthy, 1 unhealthy."), "{out}");
    assert!(out.contains(&bad) && !out.contains(&good), "{out}");
    assert_eq!(app.key(&bad).await["status"], "failed");
    ran.assert_shows_none_of(&["sk-good-key-0001", "sk-bad-key-0002"]);
}

#[tokio::test]
async fn disable_by_id_and_enable_by_a_key_on_stdin_take_a_key_out_and_back() {
    // Arrange
    let app = spawn_app().await;
    let id = add_key_of(&app, "sk-switched-key-0001", "alice").await;
    // Act
    let disabled = run(&app, &["keys", "disable", &id, "--duration", "600"]).await;
    let status_disabled = app.key(&id).await["status"].clone();
    let enabled =
        run_with(&app.base, Some(ADMIN), &app.db_url, &["keys", "enable", "-"], Some("sk-switched-key-0001\n")).await;
    // Assert
    assert!(disabled.ok().contains("Disabled 1 key(s) until 20"), "{}", disabled.stdout);
    assert_eq!(status_disabled, "disabled");
    assert!(enabled.ok().contains("Enabled 1 key(s)."), "{}", enabled.stdout);
    assert_eq!(app.key(&id).await["status"], "active");
    enabled.assert_shows_none_of(&["sk-switched-key-0001"]);
}

#[tokio::test]
async fn a_token_created_by_the_cli_works_until_the_cli_revokes_it() {
    // Arrange
    let app = spawn_app().await;
    add_key_of(&app, "sk-upstream-key-0001", "alice").await;
    // Act
    let created = run(&app, &["tokens", "create", "--name", "ci-app", "--provider", "ollama"]).await;
    let token = created.ok().trim().to_owned();
    let served = app.post_as(&token, "/v1/chat/completions", &chat("m", false)).await.status();
    let listed = run(&app, &["tokens", "list"]).await;
    let id = listed.ok().lines().find(|l| l.contains("ci-app")).unwrap().split_whitespace().next().unwrap().to_owned();
    let revoked = run(&app, &["tokens", "revoke", &id]).await;
    let refused = app.post_as(&token, "/v1/chat/completions", &chat("m", false)).await.status();
    // Assert
    assert_eq!(served, 200);
    assert!(created.stderr.contains("shown this once") && created.stderr.contains(&id), "{}", created.stderr);
    assert!(listed.stdout.lines().any(|l| l.contains("ci-app") && l.contains("ollama") && l.contains("never")));
    assert!(revoked.ok().contains(&format!("Revoked token {id}.")));
    assert_eq!(refused, 401);
    listed.assert_shows_none_of(&[&token, "sk-upstream-key-0001"]);
    revoked.assert_shows_none_of(&[&token]);
}

#[tokio::test]
async fn a_token_created_by_the_cli_carries_its_limits() {
    // Arrange
    let app = spawn_app().await;
    add_key_of(&app, "sk-upstream-key-0001", "alice").await;
    let args = ["tokens", "create", "--name", "limited", "--rpd", "1", "--tpd", "500", "--max-concurrent", "2"];
    // Act
    let created = run(&app, &[&args[..], &["--model", "llama3*", "--rpm", "60"]].concat()).await;
    let token = created.ok().trim().to_owned();
    let first = app.post_as(&token, "/v1/chat/completions", &chat("llama3.2:3b", false)).await.status();
    let other_model = app.post_as(&token, "/v1/chat/completions", &chat("qwen2.5:7b", false)).await.status();
    let second = app.post_as(&token, "/v1/chat/completions", &chat("llama3.2:3b", false)).await.status();
    // Assert
    assert_eq!((first.as_u16(), other_model.as_u16(), second.as_u16()), (200, 403, 429));
    let listed: Value = app.admin_get("/admin/tokens").await.json().await.unwrap();
    let limited = listed["tokens"].as_array().unwrap().iter().find(|t| t["name"] == "limited").unwrap().clone();
    assert_eq!(
        [&limited["rpm"], &limited["rpd"], &limited["tpd"], &limited["maxConcurrent"], &limited["models"]],
        [&json!(60), &json!(1), &json!(500), &json!(2), &json!(["llama3*"])]
    );
}

#[tokio::test]
async fn a_wrong_admin_token_is_refused_with_a_clear_message() {
    // Arrange
    let app = spawn_app().await;
    let wrong = "wrong-admin-token-0123456789abcdef";
    // Act
    let ran = run_with(&app.base, Some(wrong), &app.db_url, &["keys", "list"], None).await;
    // Assert
    assert!(!ran.success);
    assert!(ran.stderr.contains(&format!("the gateway at {} refused the admin token", app.base)), "{}", ran.stderr);
    ran.assert_shows_none_of(&[wrong]);
}

#[tokio::test]
async fn a_command_with_no_server_to_talk_to_names_the_url_it_tried() {
    // Arrange
    let url = dead_url();
    // Act
    let ran = run_with(&url, Some(ADMIN), "sqlite::memory:", &["keys", "list"], None).await;
    // Assert
    assert!(!ran.success);
    assert!(ran.stderr.contains(&format!("could not reach the gateway at {url}")), "{}", ran.stderr);
    ran.assert_shows_none_of(&[]);
}

#[tokio::test]
async fn a_server_error_is_shown_with_the_servers_message() {
    // Arrange
    let app = spawn_app().await;
    // Act
    let ran = run(&app, &["tokens", "revoke", "0190ffff-0000-7000-8000-000000000000"]).await;
    // Assert
    assert!(!ran.success);
    assert!(ran.stderr.contains("404 Not Found: No token with that id"), "{}", ran.stderr);
}

#[tokio::test]
async fn the_admin_token_can_come_from_a_file_instead_of_the_environment() {
    // Arrange
    let app = spawn_app().await;
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("admin-token");
    std::fs::write(&token_file, format!("{ADMIN}\n")).unwrap();
    let args = ["tokens", "list", "--admin-token-file", token_file.to_str().unwrap()];
    // Act
    let with_file = run_with(&app.base, None, &app.db_url, &args, None).await;
    let without = run_with(&app.base, None, &app.db_url, &["tokens", "list"], None).await;
    // Assert
    assert!(with_file.ok().contains("tests"), "the token spawn_app made is listed: {}", with_file.stdout);
    assert!(!without.success && without.stderr.contains("set POOL_ADMIN_TOKEN or pass --admin-token-file"));
    with_file.assert_shows_none_of(&[]);
}
