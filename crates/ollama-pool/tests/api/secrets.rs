//! Upstream keys encrypted at rest, end to end: a gateway with `POOL_MASTER_KEY`, restarts with
//! the right, the wrong and no master key, and `keys export` / `keys rotate-master-key` run as
//! real processes against a SQLite file.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Output;

use ollama_pool::app::App;
use ollama_pool::config::Config;
use pool_adapters::cipher::MasterKey;
use serde_json::{Value, json};
use sqlx::{Connection, SqliteConnection};

use crate::helpers::{ADMIN, Options, TestApp, chat, spawn_app_with};

const UPSTREAM_KEY: &str = "sk-upstream-secret-0123456789abcdef";

/// A master key in base64, the same for the same byte.
fn master(byte: u8) -> String {
    MasterKey::from_bytes([byte; 32]).expose_base64()
}

/// These tests read the SQLite file itself, so they run on SQLite whatever the suite's store.
fn with_master(byte: u8) -> Options {
    Options::new().on_sqlite().set("POOL_MASTER_KEY", &master(byte))
}

/// A gateway on the same database as `app` (stopped), with `options` on top.
async fn restart(app: &TestApp, options: Options) -> TestApp {
    spawn_app_with(Options { db_url: Some(app.db_url.clone()), ..options }).await
}

/// What `App::build` says on the database of `app` with the given master key.
async fn build_error(app: &TestApp, master_key: Option<String>) -> String {
    let mut env =
        vec![("POOL_ADMIN_TOKEN".to_owned(), ADMIN.to_owned()), ("POOL_DATABASE_URL".to_owned(), app.db_url.clone())];
    env.extend(master_key.map(|key| ("POOL_MASTER_KEY".to_owned(), key)));
    let config = Config::load_from(None, env).unwrap();
    format!("{:#}", App::build(&config).await.err().expect("the gateway refuses to start"))
}

/// The `secret` column of every stored key, read with plain SQL.
async fn stored_secrets(db_url: &str) -> Vec<String> {
    let mut conn = SqliteConnection::connect(db_url).await.unwrap();
    sqlx::query_scalar("SELECT secret FROM upstream_keys").fetch_all(&mut conn).await.unwrap()
}

/// The directory of a test gateway's SQLite file.
fn database_dir(app: &TestApp) -> PathBuf {
    let file = Path::new(app.db_url.strip_prefix("sqlite://").unwrap());
    file.parent().unwrap().to_owned()
}

/// Whether any file of the database (main file, WAL, shared memory) holds `needle`. A WAL file
/// that its last connection deletes meanwhile is skipped.
fn database_files_contain(dir: &Path, needle: &str) -> bool {
    let mut files = std::fs::read_dir(dir).unwrap().filter_map(|entry| std::fs::read(entry.unwrap().path()).ok());
    files.any(|bytes| bytes.windows(needle.len()).any(|window| window == needle.as_bytes()))
}

/// Runs `ollama-pool ARGS` on the database of `app`, with `POOL_MASTER_KEY` set or not.
async fn cli(app: &TestApp, master_key: Option<&str>, args: &[&str]) -> Output {
    cli_on(&app.db_url, master_key, args).await
}

async fn cli_on(db_url: &str, master_key: Option<&str>, args: &[&str]) -> Output {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_ollama-pool"));
    command.args(args).env("POOL_DATABASE_URL", db_url).env_remove("POOL_CONFIG").env_remove("POOL_NEW_MASTER_KEY");
    match master_key {
        Some(key) => command.env("POOL_MASTER_KEY", key),
        None => command.env_remove("POOL_MASTER_KEY"),
    };
    command.output().await.unwrap()
}

fn stdout(output: &Output) -> String {
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout.clone()).unwrap()
}

#[tokio::test]
async fn with_a_master_key_the_upstream_gets_the_key_and_the_database_only_ciphertext() {
    // Arrange
    let mut app = spawn_app_with(with_master(1)).await;
    let added = app.admin_post("/admin/api-keys", json!({"api_key": UPSTREAM_KEY})).await;
    assert_eq!(added.status(), 200, "added without a label: `add_key` would put the key in it");
    // Act
    let response = app.post_chat(&chat("m", false)).await;
    app.stop().await;
    // Assert
    assert_eq!(response.status(), 200);
    assert_eq!(app.upstream.calls(UPSTREAM_KEY), 1, "the upstream sees the plaintext key");
    let stored = stored_secrets(&app.db_url).await;
    assert!(stored.len() == 1 && stored[0].starts_with("enc:v1:"), "{stored:?}");
    assert!(!database_files_contain(&database_dir(&app), UPSTREAM_KEY), "the plaintext is in no database file");
}

#[tokio::test]
async fn a_restart_with_the_wrong_or_no_master_key_fails_to_build() {
    // Arrange
    let mut app = spawn_app_with(with_master(1)).await;
    app.add_key(UPSTREAM_KEY).await;
    app.stop().await;
    // Act
    let wrong = build_error(&app, Some(master(2))).await;
    let missing = build_error(&app, None).await;
    // Assert
    assert!(wrong.contains("upstream keys are encrypted but the wrong POOL_MASTER_KEY is configured"), "{wrong}");
    assert!(missing.contains("upstream keys are encrypted but no POOL_MASTER_KEY is configured"), "{missing}");
    for message in [wrong, missing] {
        assert!(!message.contains(UPSTREAM_KEY) && !message.contains(&master(1)), "no key material in errors");
    }
}

#[tokio::test]
async fn keys_stored_in_plaintext_are_encrypted_when_a_master_key_is_set() {
    // Arrange
    let mut plain = spawn_app_with(Options::new().on_sqlite()).await;
    plain.admin_post("/admin/api-keys", json!({"api_key": UPSTREAM_KEY})).await;
    plain.stop().await;
    assert_eq!(stored_secrets(&plain.db_url).await, vec![UPSTREAM_KEY]);
    // Act
    let encrypted = restart(&plain, with_master(1)).await;
    let lingering = database_files_contain(&database_dir(&plain), UPSTREAM_KEY);
    let response = encrypted.post_chat(&chat("m", false)).await;
    // Assert
    assert!(!lingering, "the former plaintext is gone from the files while the gateway runs");
    assert!(stored_secrets(&plain.db_url).await.iter().all(|s| s.starts_with("enc:v1:")));
    assert_eq!(response.status(), 200);
    assert_eq!(encrypted.upstream.calls(UPSTREAM_KEY), 1);
}

#[tokio::test]
async fn export_writes_an_owner_only_file_that_imports_back_into_a_new_gateway() {
    // Arrange: a labelled key, a bare one, and a label the short form cannot carry
    let mut app = spawn_app_with(with_master(1)).await;
    app.add_key("sk-labelled-0001").await;
    for body in [json!({"api_key": "sk-bare-0002"}), json!({"api_key": "sk-odd-0003", "username": "team----a"})] {
        assert_eq!(app.admin_post("/admin/api-keys", body).await.status(), 200);
    }
    app.stop().await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("keys.txt");
    // Act
    let output =
        stdout(&cli(&app, Some(master(1).as_str()), &["keys", "export", "--out", out.to_str().unwrap()]).await);
    // Assert
    assert!(output.contains("Wrote 3 upstream keys"), "{output}");
    assert!(!output.contains("sk-"), "the command prints no key: {output}");
    assert_eq!(std::fs::metadata(&out).unwrap().permissions().mode() & 0o777, 0o600);
    let content = std::fs::read_to_string(&out).unwrap();
    assert!(content.contains("user-sk-labelled-0001----sk-labelled-0001\nsk-bare-0002\n"), "{content}");
    let fresh = spawn_app_with(Options::new().on_sqlite()).await;
    let imported: Value =
        fresh.admin_post("/admin/api-keys/import-from-txt", json!({"content": content})).await.json().await.unwrap();
    assert_eq!((imported["added"].clone(), imported["invalid"].clone()), (json!(3), json!(0)), "{imported}");
    for (secret, username) in [
        ("sk-labelled-0001", json!("user-sk-labelled-0001")),
        ("sk-bare-0002", Value::Null),
        ("sk-odd-0003", json!("team----a")),
    ] {
        let found: Value = fresh.admin_get(&format!("/admin/api-keys?search={secret}")).await.json().await.unwrap();
        assert_eq!(found["api_keys"][0]["username"], username, "{secret}: {found}");
    }
}

#[tokio::test]
async fn export_refuses_to_overwrite_a_file_unless_forced() {
    // Arrange
    let mut app = spawn_app_with(Options::new().on_sqlite()).await;
    app.add_key(UPSTREAM_KEY).await;
    app.stop().await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("keys.txt");
    std::fs::write(&out, "precious\n").unwrap();
    std::fs::set_permissions(&out, std::fs::Permissions::from_mode(0o644)).unwrap();
    let path = out.to_str().unwrap();
    // Act
    let refused = cli(&app, None, &["keys", "export", "--out", path]).await;
    let kept = std::fs::read_to_string(&out).unwrap();
    let forced = cli(&app, None, &["keys", "export", "--out", path, "--force"]).await;
    // Assert
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--force"));
    assert_eq!(kept, "precious\n");
    assert!(stdout(&forced).contains("Wrote 1 upstream keys"));
    assert_eq!(std::fs::read_to_string(&out).unwrap(), format!("user-{UPSTREAM_KEY}----{UPSTREAM_KEY}\n"));
    assert_eq!(std::fs::metadata(&out).unwrap().permissions().mode() & 0o777, 0o600);
}

#[tokio::test]
async fn after_rotation_the_new_master_key_starts_the_gateway_and_the_old_one_does_not() {
    // Arrange
    let mut app = spawn_app_with(with_master(1)).await;
    app.add_key(UPSTREAM_KEY).await;
    app.stop().await;
    let before = stored_secrets(&app.db_url).await;
    // Act
    let output =
        stdout(&cli(&app, Some(master(1).as_str()), &["keys", "rotate-master-key", "--new-key", &master(2)]).await);
    // Assert
    assert!(output.contains("Re-encrypted 1 upstream keys") && output.contains("POOL_MASTER_KEY"), "{output}");
    assert_ne!(stored_secrets(&app.db_url).await, before);
    let old = build_error(&app, Some(master(1))).await;
    assert!(old.contains("the wrong POOL_MASTER_KEY"), "{old}");
    let rotated = restart(&app, with_master(2)).await;
    assert_eq!(rotated.post_chat(&chat("m", false)).await.status(), 200);
    assert_eq!(rotated.upstream.calls(UPSTREAM_KEY), 1);
}

#[tokio::test]
async fn rotation_with_a_generated_key_prints_the_key_that_then_opens_the_keys() {
    // Arrange: keys stored in plaintext, no master key yet
    let mut app = spawn_app_with(Options::new().on_sqlite()).await;
    app.add_key(UPSTREAM_KEY).await;
    app.stop().await;
    // Act
    let output = stdout(&cli(&app, None, &["keys", "rotate-master-key", "--generate"]).await);
    // Assert
    let generated = output.lines().map(str::trim).find(|line| MasterKey::parse(line).is_ok()).expect("the new key");
    assert!(stored_secrets(&app.db_url).await.iter().all(|s| s.starts_with("enc:v1:")));
    let rotated = restart(&app, Options::new().set("POOL_MASTER_KEY", generated)).await;
    assert_eq!(rotated.post_chat(&chat("m", false)).await.status(), 200);
    assert_eq!(rotated.upstream.calls(UPSTREAM_KEY), 1);
}

#[tokio::test]
async fn generate_master_key_prints_a_fresh_valid_key_each_time() {
    // Act: no database needed
    let first = stdout(&cli_on("sqlite::memory:", None, &["keys", "generate-master-key"]).await);
    let second = stdout(&cli_on("sqlite::memory:", None, &["keys", "generate-master-key"]).await);
    // Assert
    assert!(MasterKey::parse(first.trim()).is_ok() && MasterKey::parse(second.trim()).is_ok(), "{first}");
    assert_ne!(first, second);
}
