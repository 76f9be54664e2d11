//! The store fails and comes back: requests keep being served, their counts wait in memory and
//! are written by the first flush that gets through (no restart), `/health` and `/metrics` tell
//! the truth meanwhile, and admin writes either happen in full or answer 503 and change nothing.
//!
//! The faults are real: another connection holding SQLite's write lock, a full file system (a
//! small tmpfs), an immutable database file (`chattr +i`: root ignores file modes), and for
//! PostgreSQL a TCP proxy between the gateway and the server that refuses connections, cuts them
//! all (a server restart) or stops forwarding (a statement that hangs).

use std::time::Duration;

use pool_testkit::FaultProxy;
use serde_json::{Value, json};
use sqlx::{Connection, SqliteConnection};

use crate::helpers::{Options, TestApp, chat, error_of, fresh_postgres_database, postgres_url, spawn_app_with};

/// Store calls fail after a second, so a test sees an outage quickly.
const FAST: (&str, &str) = ("POOL__DATABASE__STATEMENT_TIMEOUT_SECS", "1");

/// Sends `n` chat requests, each of which must be served; returns `n`.
async fn serve(app: &TestApp, n: u64) -> u64 {
    for _ in 0..n {
        let response = app.post_chat(&chat("m", false)).await;
        assert_eq!(response.status(), 200, "served while the store is away");
    }
    n
}

/// `/health` once it answers `status`.
async fn health_once(app: &TestApp, status: u16) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let response = app.client.get(app.url("/health")).send().await.unwrap();
        let answered = response.status();
        let health: Value = response.json().await.unwrap();
        if answered == status {
            return health;
        }
        assert!(tokio::time::Instant::now() < deadline, "/health never answered {status}: {health}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// One unlabelled sample of `/metrics`.
async fn metric(app: &TestApp, name: &str) -> f64 {
    let text = app.admin_get("/metrics").await.text().await.unwrap();
    let line = text.lines().find(|l| l.split_once(' ').is_some_and(|(n, _)| n == name));
    line.and_then(|l| l.split_once(' ')).map(|(_, v)| v.parse().unwrap()).unwrap_or_else(|| panic!("no {name}"))
}

/// The client requests the store holds (`/admin/stats` flushes first). Right after the store
/// came back, a read may still meet a SQLite connection that the fault left unusable, until the
/// pool replaces it (every 10 s): a 503 is retried for that long, and no longer.
async fn recorded(app: &TestApp) -> u64 {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let response = app.admin_get("/admin/stats").await;
        let status = response.status();
        let body: Value = response.json().await.unwrap();
        if status == 200 {
            return body["totalRequests"].as_u64().unwrap();
        }
        assert!(status == 503 && tokio::time::Instant::now() < deadline, "{status} {body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// While the store is failing: `/health` says so (503, a reason, no connection string) and
/// `/metrics` shows the backlog and the failed flushes.
async fn assert_degraded(app: &TestApp, reason_contains: &str) {
    let health = health_once(app, 503).await;
    assert_eq!(health["storage"], "degraded", "{health}");
    let reason = health["storageError"].as_str().unwrap_or_default();
    eprintln!("degraded: {reason}");
    assert!(reason.contains(reason_contains), "{health}");
    assert!(!health.to_string().contains(&app.db_url), "no connection string in {health}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while metric(app, "pool_stats_flush_failures_total").await == 0.0 {
        assert!(tokio::time::Instant::now() < deadline, "no statistics flush failed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(metric(app, "pool_stats_backlog_rows").await > 0.0);
    assert_eq!(metric(app, "pool_store_up").await, 0.0);
}

/// Once the store is back, with no restart: healthy, nothing waiting, every count written.
async fn assert_recovered(app: &TestApp, served: u64) {
    let health = health_once(app, 200).await;
    assert_eq!(health["storage"], "ok", "{health}");
    assert_eq!(recorded(app).await, served, "every request served during the outage is counted");
    assert_eq!(metric(app, "pool_stats_backlog_rows").await, 0.0);
    assert_eq!(metric(app, "pool_store_up").await, 1.0);
}

#[tokio::test]
async fn counts_served_while_another_process_holds_the_sqlite_lock_are_written_once_it_lets_go() {
    // Arrange
    let app = spawn_app_with(Options::new().on_sqlite().set(FAST.0, FAST.1)).await;
    app.add_key("a").await;
    let served = serve(&app, 3).await;
    let mut other = SqliteConnection::connect(&app.db_url).await.unwrap();
    // Act
    sqlx::raw_sql("BEGIN EXCLUSIVE").execute(&mut other).await.unwrap();
    let served = served + serve(&app, 20).await;
    // Assert
    assert_degraded(&app, "locked").await;
    sqlx::raw_sql("ROLLBACK").execute(&mut other).await.unwrap();
    assert_recovered(&app, served).await;
}

/// A small tmpfs holding the database: filled to the last byte and emptied at will; unmounted
/// (lazily) when dropped.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    /// `None` when this process may not mount (not root): allowed only outside CI.
    fn mount() -> Option<Self> {
        let dir = tempfile::tempdir().unwrap();
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=8m", "tmpfs"])
            .arg(dir.path())
            .status()
            .is_ok_and(|s| s.success());
        if !mounted {
            assert_ne!(std::env::var("CI").as_deref(), Ok("true"), "the disk-full test needs root (mount) in CI");
            eprintln!("not root: the disk-full test cannot mount a tmpfs here and checks nothing");
            return None;
        }
        Some(Self { dir })
    }

    fn url(&self) -> String {
        format!("sqlite://{}/pool.db", self.dir.path().display())
    }

    /// Writes a ballast file until the file system has no byte left.
    fn fill(&self) {
        use std::io::Write;
        let mut ballast = std::fs::File::create(self.dir.path().join("ballast")).unwrap();
        let chunk = vec![0u8; 4096];
        while ballast.write_all(&chunk).is_ok() {}
        let _ = ballast.write_all(&[0u8; 1]);
        let _ = ballast.sync_all();
    }

    fn empty(&self) {
        std::fs::remove_file(self.dir.path().join("ballast")).unwrap();
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg("-l").arg(self.dir.path()).status();
    }
}

#[tokio::test]
async fn counts_served_while_the_disk_is_full_are_written_once_there_is_space_again() {
    // Arrange
    let Some(disk) = SmallDisk::mount() else { return };
    let app =
        spawn_app_with(Options { db_url: Some(disk.url()), ..Options::new().on_sqlite().set(FAST.0, FAST.1) }).await;
    app.add_key("a").await;
    let served = serve(&app, 3).await;
    // Act
    disk.fill();
    let served = served + serve(&app, 30).await;
    // Assert
    assert_degraded(&app, "").await;
    disk.empty();
    assert_recovered(&app, served).await;
}

/// The database file and its log made immutable (`chattr +i`), which binds root too; undone when
/// dropped.
struct Immutable(Vec<std::path::PathBuf>);

impl Immutable {
    fn set(files: Vec<std::path::PathBuf>) -> Option<Self> {
        let done = std::process::Command::new("chattr").arg("+i").args(&files).status().is_ok_and(|s| s.success());
        if !done {
            assert_ne!(
                std::env::var("CI").as_deref(),
                Ok("true"),
                "the read-only test needs chattr (root, ext4) in CI"
            );
            eprintln!("chattr +i refused here: the read-only test checks nothing");
            return None;
        }
        Some(Self(files))
    }
}

impl Drop for Immutable {
    fn drop(&mut self) {
        let _ = std::process::Command::new("chattr").arg("-i").args(&self.0).status();
    }
}

#[tokio::test]
async fn counts_served_while_the_database_file_is_read_only_are_written_once_it_is_writable() {
    // Arrange
    let app = spawn_app_with(Options::new().on_sqlite().set(FAST.0, FAST.1)).await;
    app.add_key("a").await;
    let served = serve(&app, 3).await;
    let file = std::path::PathBuf::from(app.db_url.trim_start_matches("sqlite://"));
    let wal = file.with_extension("db-wal");
    // Act
    let Some(read_only) = Immutable::set(vec![file, wal]) else { return };
    let served = served + serve(&app, 20).await;
    // Assert
    assert_degraded(&app, "").await;
    drop(read_only);
    assert_recovered(&app, served).await;
}

/// A gateway whose store can be broken and mended: SQLite through another connection holding its
/// write lock, PostgreSQL through a [`FaultProxy`] that refuses and cuts connections.
struct Breakable {
    app: TestApp,
    fault: Fault,
}

enum Fault {
    Lock(SqliteConnection),
    Proxy { proxy: FaultProxy, direct: String },
}

impl Breakable {
    async fn spawn() -> Self {
        if crate::helpers::test_backend() == "postgres" {
            let server = postgres_url().expect("POOL_TEST_API_DATABASE=postgres needs POOL_TEST_POSTGRES_URL");
            let (proxy, direct, via_proxy) = proxied_postgres(&server).await;
            let app = spawn_app_with(Options { db_url: Some(via_proxy), ..Options::new().set(FAST.0, FAST.1) }).await;
            return Self { app, fault: Fault::Proxy { proxy, direct } };
        }
        let app = spawn_app_with(Options::new().on_sqlite().set(FAST.0, FAST.1)).await;
        let other = SqliteConnection::connect(&app.db_url).await.unwrap();
        Self { app, fault: Fault::Lock(other) }
    }

    async fn break_store(&mut self) {
        match &mut self.fault {
            Fault::Lock(other) => drop(sqlx::raw_sql("BEGIN EXCLUSIVE").execute(other).await.unwrap()),
            Fault::Proxy { proxy, .. } => {
                proxy.set_refusing(true);
                proxy.cut_all();
            }
        }
    }

    async fn mend_store(&mut self) {
        match &mut self.fault {
            Fault::Lock(other) => drop(sqlx::raw_sql("ROLLBACK").execute(other).await.unwrap()),
            Fault::Proxy { proxy, .. } => proxy.set_refusing(false),
        }
    }

    /// The database URL a restarted gateway opens (around the proxy).
    fn direct_url(&self) -> String {
        match &self.fault {
            Fault::Lock(_) => self.app.db_url.clone(),
            Fault::Proxy { direct, .. } => direct.clone(),
        }
    }
}

/// A fresh database of `server`, and its URL through a new [`FaultProxy`].
async fn proxied_postgres(server: &str) -> (FaultProxy, String, String) {
    let direct = fresh_postgres_database(server).await;
    // postgres://USER@HOST:PORT/NAME: the host and port are what the proxy stands in for.
    let (scheme, rest) = direct.split_once("://").unwrap();
    let (authority, path) = rest.split_once('/').unwrap();
    let (user, target) = authority.rsplit_once('@').map_or(("", authority), |(u, t)| (u, t));
    let target = if target.contains(':') { target.to_owned() } else { format!("{target}:5432") };
    let proxy = FaultProxy::start(&target).await.unwrap();
    let user = if user.is_empty() { String::new() } else { format!("{user}@") };
    let via = format!("{scheme}://{user}127.0.0.1:{}/{path}", proxy.port());
    (proxy, direct, via)
}

#[tokio::test]
async fn a_revoke_while_the_store_fails_answers_503_and_changes_nothing_and_holds_once_acknowledged() {
    // Arrange
    let mut store = Breakable::spawn().await;
    store.app.add_key("a").await;
    let victim = store.app.create_token(json!({"name": "victim"})).await;
    let (id, secret) = (victim["id"].as_str().unwrap().to_owned(), victim["token"].as_str().unwrap().to_owned());
    let path = format!("/admin/tokens/{id}");
    // Act
    store.break_store().await;
    let refused = store.app.admin_delete(&path, None).await;
    // Assert
    assert_eq!(refused.status(), 503);
    assert_eq!(error_of(refused).await["code"], "storage_unavailable");
    let still = store.app.post_as(&secret, "/v1/chat/completions", &chat("m", false)).await;
    assert_eq!(still.status(), 200, "memory agrees with the store: the token still works");
    store.mend_store().await;
    health_once(&store.app, 200).await;
    assert_eq!(store.app.admin_delete(&path, None).await.status(), 200);
    assert_eq!(store.app.post_as(&secret, "/v1/chat/completions", &chat("m", false)).await.status(), 401);
    store.app.stop().await;
    let _dir = store.app.take_dir();
    let again = spawn_app_with(Options { db_url: Some(store.direct_url()), ..Options::new() }).await;
    assert_eq!(again.post_as(&secret, "/v1/chat/completions", &chat("m", false)).await.status(), 401, "still revoked");
}

#[tokio::test]
async fn operator_key_changes_while_the_store_fails_answer_503_and_change_nothing() {
    // Arrange
    let mut store = Breakable::spawn().await;
    let id = store.app.add_key("a").await;
    store.break_store().await;
    // Act
    let disable = store.app.admin_post("/admin/keys/disable", json!({"id": id})).await;
    let add = store.app.admin_post("/admin/api-keys", json!({"api_key": "b"})).await;
    let switch = store
        .app
        .client
        .patch(store.app.url("/admin/providers/ollama"))
        .bearer_auth(crate::helpers::ADMIN)
        .json(&json!({"enabled": false}))
        .send()
        .await
        .unwrap();
    // Assert
    for refused in [disable, add, switch] {
        assert_eq!(refused.status(), 503);
        assert_eq!(error_of(refused).await["code"], "storage_unavailable");
    }
    assert_eq!(store.app.key(&id).await["status"], "active", "not disabled in memory");
    assert_eq!(store.app.post_chat(&chat("m", false)).await.status(), 200, "provider still on, key still serving");
    store.mend_store().await;
    health_once(&store.app, 200).await;
    let list: Value = store.app.admin_get("/admin/api-keys?fetch=all").await.json().await.unwrap();
    assert_eq!(list["api_keys"].as_array().unwrap().len(), 1, "the refused key was not added");
}

/// A fresh gateway on PostgreSQL through a fault proxy; `None` without PostgreSQL (never in CI).
async fn on_proxied_postgres() -> Option<(TestApp, FaultProxy)> {
    let server = postgres_url()?;
    let (proxy, _, via_proxy) = proxied_postgres(&server).await;
    let app = spawn_app_with(Options { db_url: Some(via_proxy), ..Options::new().set(FAST.0, FAST.1) }).await;
    Some((app, proxy))
}

#[tokio::test]
async fn counts_survive_postgres_refusing_connections_and_restarting() {
    // Arrange
    let Some((app, proxy)) = on_proxied_postgres().await else { return };
    app.add_key("a").await;
    let served = serve(&app, 3).await;
    // Act: the server restarts (every connection cut) and refuses connections for a while.
    proxy.set_refusing(true);
    proxy.cut_all();
    let served = served + serve(&app, 20).await;
    // Assert
    assert_degraded(&app, "").await;
    proxy.set_refusing(false);
    assert_recovered(&app, served).await;
}

#[tokio::test]
async fn a_postgres_statement_that_hangs_fails_within_the_statement_timeout() {
    // Arrange
    let Some((app, proxy)) = on_proxied_postgres().await else { return };
    app.add_key("a").await;
    let victim = app.create_token(json!({"name": "victim"})).await;
    let served = serve(&app, 3).await;
    // Act: the network path stalls: connections stay open, nothing comes back.
    proxy.set_stalled(true);
    let started = tokio::time::Instant::now();
    let refused = app.admin_delete(&format!("/admin/tokens/{}", victim["id"].as_str().unwrap()), None).await;
    // Assert
    assert_eq!(refused.status(), 503);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "bounded by the 1 s statement timeout: {:?}",
        started.elapsed()
    );
    let served = served + serve(&app, 10).await;
    assert_degraded(&app, "time").await;
    proxy.set_stalled(false);
    assert_recovered(&app, served).await;
}
