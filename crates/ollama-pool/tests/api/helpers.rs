//! `spawn_app()` and friends: one fresh gateway per test, on port 0, with its own database.

use std::time::Duration;

use ollama_pool::app::App;
use ollama_pool::config::Config;
use pool_testkit::FakeUpstream;
use reqwest::{Response, StatusCode};
use serde_json::{Value, json};
use sqlx::Connection;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub const ADMIN: &str = "test-admin-token-0123456789abcdef";

pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    pub upstream: FakeUpstream,
    pub token: String,
    pub db_url: String,
    shutdown: CancellationToken,
    server: Option<JoinHandle<anyhow::Result<()>>>,
    _dir: Option<tempfile::TempDir>,
}

/// Options of a test gateway, as `POOL_…` variables layered over the defaults.
pub struct Options {
    pub env: Vec<(String, String)>,
    pub db_url: Option<String>,
    pub upstream: Option<FakeUpstream>,
    /// SQLite whatever the suite's store: for tests that read the database file itself.
    pub sqlite: bool,
}

impl Options {
    pub fn new() -> Self {
        Self { env: Vec::new(), db_url: None, upstream: None, sqlite: false }
    }

    pub fn on_sqlite(mut self) -> Self {
        self.sqlite = true;
        self
    }
    pub fn set(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_owned(), value.to_owned()));
        self
    }
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(Options::new()).await
}

pub async fn spawn_app_with(options: Options) -> TestApp {
    let upstream = match options.upstream {
        Some(u) => u,
        None => FakeUpstream::start().await.expect("fake upstream"),
    };
    let (dir, db_url) = match options.db_url {
        Some(url) => (None, url),
        None if !options.sqlite && test_backend() == "postgres" => {
            let server = postgres_url().expect("POOL_TEST_API_DATABASE=postgres needs POOL_TEST_POSTGRES_URL");
            (None, fresh_postgres_database(&server).await)
        }
        None => {
            let dir = tempfile::tempdir().expect("tempdir");
            let url = format!("sqlite://{}/pool.db", dir.path().display());
            (Some(dir), url)
        }
    };
    let mut env = vec![
        ("POOL_ADMIN_TOKEN".to_owned(), ADMIN.to_owned()),
        ("POOL_DATABASE_URL".to_owned(), db_url.clone()),
        ("POOL__PROVIDERS__OLLAMA__URL".to_owned(), upstream.url()),
        ("POOL__PROVIDERS__OPENROUTER__URL".to_owned(), format!("{}/v1", upstream.url())),
        ("POOL__PROXY__CONNECT_TIMEOUT_SECS".to_owned(), "1".to_owned()),
        ("POOL__PROXY__FIRST_BYTE_TIMEOUT_SECS".to_owned(), "1".to_owned()),
        ("POOL__PROXY__IDLE_TIMEOUT_SECS".to_owned(), "1".to_owned()),
        ("POOL__STATS__FLUSH_INTERVAL_SECS".to_owned(), "0.2".to_owned()),
        ("POOL__SERVER__SHUTDOWN_GRACE_SECS".to_owned(), "5".to_owned()),
    ];
    env.extend(options.env);
    let config = Config::load_from(None, env).expect("test configuration");
    let app = App::build(&config).await.expect("app builds");
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(app.serve(listener, shutdown.clone()));
    let client = reqwest::Client::builder().pool_max_idle_per_host(64).build().expect("client");
    let mut test =
        TestApp { base, client, upstream, token: String::new(), db_url, shutdown, server: Some(server), _dir: dir };
    test.token = test.create_token(json!({"name": "tests"})).await["token"].as_str().expect("token").to_owned();
    test
}

pub fn chat(model: &str, stream: bool) -> Value {
    json!({"model": model, "stream": stream, "messages": [{"role": "user", "content": "hi"}]})
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Stops the server as SIGTERM would, and waits for it (drain, final flush).
    pub async fn stop(&mut self) {
        self.shutdown.cancel();
        if let Some(server) = self.server.take() {
            server.await.expect("server task").expect("server stopped cleanly");
        }
    }

    /// Keeps the database directory of a stopped app, for a restart on the same data.
    pub fn take_dir(&mut self) -> Option<tempfile::TempDir> {
        self._dir.take()
    }

    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    pub async fn admin_post(&self, path: &str, body: Value) -> Response {
        self.client.post(self.url(path)).bearer_auth(ADMIN).json(&body).send().await.expect("request")
    }

    pub async fn admin_patch(&self, path: &str, body: Value) -> Response {
        self.client.patch(self.url(path)).bearer_auth(ADMIN).json(&body).send().await.expect("request")
    }

    pub async fn admin_get(&self, path: &str) -> Response {
        self.client.get(self.url(path)).bearer_auth(ADMIN).send().await.expect("request")
    }

    pub async fn admin_delete(&self, path: &str, body: Option<Value>) -> Response {
        let request = self.client.delete(self.url(path)).bearer_auth(ADMIN);
        let request = match body {
            Some(b) => request.json(&b),
            None => request,
        };
        request.send().await.expect("request")
    }

    pub async fn add_key(&self, key: &str) -> String {
        self.add_key_to(None, key).await
    }

    pub async fn add_key_to(&self, provider: Option<&str>, key: &str) -> String {
        let mut body = json!({"api_key": key, "username": format!("user-{key}")});
        if let Some(p) = provider {
            body["provider"] = json!(p);
        }
        let response = self.admin_post("/admin/api-keys", body).await;
        assert_eq!(response.status(), StatusCode::OK);
        let json: Value = response.json().await.expect("json");
        assert_eq!(json["success"], true, "{json}");
        json["id"].as_str().expect("id").to_owned()
    }

    pub async fn create_token(&self, body: Value) -> Value {
        let response = self.admin_post("/admin/tokens", body).await;
        assert_eq!(response.status(), StatusCode::OK);
        response.json().await.expect("json")
    }

    pub async fn post_chat(&self, body: &Value) -> Response {
        self.post_as(&self.token, "/v1/chat/completions", body).await
    }

    pub async fn post_as(&self, token: &str, path: &str, body: &Value) -> Response {
        self.client.post(self.url(path)).bearer_auth(token).json(body).send().await.expect("request")
    }

    pub async fn get_as(&self, token: &str, path: &str) -> Response {
        self.client.get(self.url(path)).bearer_auth(token).send().await.expect("request")
    }

    /// A gauge or counter without labels of `/metrics`.
    pub async fn metric(&self, name: &str) -> f64 {
        metric(&self.admin_get("/metrics").await.text().await.expect("metrics"), name)
    }

    pub async fn get_json(&self, path: &str) -> Value {
        self.get_as(&self.token, path).await.json().await.expect("json")
    }

    pub async fn post_raw(&self, path: &str, body: impl Into<reqwest::Body>) -> Response {
        self.client
            .post(self.url(path))
            .bearer_auth(&self.token)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("request")
    }

    /// The admin view of one key, by id.
    pub async fn key(&self, id: &str) -> Value {
        let list: Value = self.admin_get("/admin/api-keys?fetch=all").await.json().await.expect("json");
        list["api_keys"].as_array().expect("keys").iter().find(|k| k["id"] == id).cloned().expect("key listed")
    }

    /// Polls the admin view until `pred` holds for key `id` (waiting on a state change, not a clock).
    pub async fn wait_for_key(&self, id: &str, within: Duration, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let key = self.key(id).await;
            if pred(&key) || tokio::time::Instant::now() > deadline {
                return key;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// The error object of an OpenAI-shaped error response, after checking the shape.
/// A gauge or counter without labels, read from `/metrics` text.
pub fn metric(text: &str, name: &str) -> f64 {
    let line = text.lines().find(|l| l.split_whitespace().next() == Some(name));
    line.and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{name} in {text}"))
}

pub async fn error_of(response: Response) -> Value {
    let body: Value = response.json().await.expect("error body is JSON");
    let error = body["error"].clone();
    assert!(error["message"].is_string(), "{body}");
    assert!(error["type"].is_string(), "{body}");
    assert!(error.get("param").is_some() && error.get("code").is_some(), "{body}");
    error
}

/// The PostgreSQL URL of the test server, if this run has one (always in CI).
pub fn postgres_url() -> Option<String> {
    match std::env::var("POOL_TEST_POSTGRES_URL") {
        Ok(url) => Some(url),
        Err(_) if std::env::var("CI").as_deref() == Ok("true") => {
            Some("postgres://postgres@127.0.0.1:5432/test".into())
        }
        Err(_) => None,
    }
}

/// A fresh database on the test server, for one test.
pub async fn fresh_postgres_database(server: &str) -> String {
    let name = format!("pool_e2e_{}", uuid::Uuid::now_v7().simple());
    let mut conn = sqlx::PgConnection::connect(server)
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL at {server} is required in CI: {e}"));
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&mut conn).await.unwrap();
    let (base, _) = server.rsplit_once('/').unwrap();
    format!("{base}/{name}")
}

/// The store the black-box suite runs on: SQLite, or PostgreSQL when
/// `POOL_TEST_API_DATABASE=postgres` (the test command's second pass), each test on a fresh
/// database of the server named by `POOL_TEST_POSTGRES_URL`.
pub fn test_backend() -> &'static str {
    match std::env::var("POOL_TEST_API_DATABASE").as_deref() {
        Ok("postgres") => "postgres",
        _ => "sqlite",
    }
}

/// An address where nothing listens yet: a port of 127.0.0.1 bound, then released.
pub fn free_addr() -> std::net::SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap()
}

/// The real `ollama-pool` binary, serving on a free port of 127.0.0.1 from a fresh directory.
pub struct ServingBinary {
    pub base: String,
    child: tokio::process::Child,
    _dir: tempfile::TempDir,
}

impl ServingBinary {
    /// Runs `ollama-pool ARGS` (ending in `serve`) with the test admin token and `env`, and waits
    /// until `/health` answers.
    pub async fn start(args: &[&str], env: &[(&str, &str)]) -> Self {
        Self::start_with(tokio::process::Command::new(env!("CARGO_BIN_EXE_ollama-pool")), args, env).await
    }

    /// As [`ServingBinary::start`], with the process's file-descriptor limit (soft and hard)
    /// set to `limit` by the shell that execs it.
    pub async fn start_with_fd_limit(limit: u64, args: &[&str], env: &[(&str, &str)]) -> Self {
        let mut shell = tokio::process::Command::new("bash");
        shell.arg("-c").arg(format!("ulimit -n {limit} && exec \"$0\" \"$@\"")).arg(env!("CARGO_BIN_EXE_ollama-pool"));
        Self::start_with(shell, args, env).await
    }

    async fn start_with(mut command: tokio::process::Command, args: &[&str], env: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let addr = free_addr();
        let child = command
            .args(args)
            .current_dir(dir.path())
            .env("POOL_ADMIN_TOKEN", ADMIN)
            .env("POOL_LISTEN", addr.to_string())
            .env_remove("POOL_CONFIG")
            .envs(env.iter().copied())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let base = format!("http://{addr}");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while reqwest::get(format!("{base}/health")).await.is_err() {
            assert!(tokio::time::Instant::now() < deadline, "the binary did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Self { base, child, _dir: dir }
    }

    /// Kills it with SIGKILL (no shutdown, no final flush: a crash) and waits until it is gone.
    pub async fn kill(mut self) {
        let pid = self.child.id().unwrap();
        std::process::Command::new("kill").arg("-KILL").arg(pid.to_string()).status().unwrap();
        self.child.wait().await.unwrap();
    }

    /// Stops it with SIGTERM; returns whether it exited cleanly, its stderr and its stdout.
    pub async fn stop(mut self) -> (bool, String, String) {
        use tokio::io::AsyncReadExt;
        let pid = self.child.id().unwrap();
        std::process::Command::new("kill").arg("-TERM").arg(pid.to_string()).status().unwrap();
        let clean = self.child.wait().await.unwrap().success();
        let (mut stderr, mut stdout) = (String::new(), String::new());
        self.child.stderr.take().unwrap().read_to_string(&mut stderr).await.unwrap();
        self.child.stdout.take().unwrap().read_to_string(&mut stdout).await.unwrap();
        (clean, stderr, stdout)
    }
}
