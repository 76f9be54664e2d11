//! The console at scale: a SQLite database holding 100,000 keys and 10,000,000 request-log rows
//! (`--keys`, `--requests`; small numbers with `--quick`), a gateway started on it, and the
//! calls the console's pages make, each timed over 20 tries: the dashboard page, the keys
//! page's first call, `/admin/stats`, and the request log's first page unfiltered and filtered
//! by token, by key, by request id and by status class.
//!
//! The keys go in through the store's own bulk insert; the log rows are generated inside SQLite
//! by a recursive `WITH` (a million rows a transaction), which writes them in seconds where
//! binding every value from here would take minutes. Traffic: 20 models, 100 tokens, every key
//! in turn, 3 % of requests failed over from a rate-limited key, 2 % answered 502, 3 % 400.
//!
//! Then the log's writer: how many entries a second `append_requests` stores, in the batches the
//! gateway's flush hands it, on a fresh SQLite file (and a fresh PostgreSQL database with
//! `--postgres`), to set beside the gateway's request rate.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use pool_core::accounting::REQUEST_LOG_BATCH;
use pool_core::ids::{KeyId, TokenId};
use pool_core::ports::NewKey;
use pool_core::provider::ProviderName;
use pool_core::reqlog::{AttemptNote, LastAttempt, RequestId, RequestLogEntry};
use pool_core::stats::Outcome;
use sqlx::Connection;
use uuid::Uuid;

use crate::http::{self, Client};
use crate::import;
use crate::procs::{self, GatewaySpec};
use crate::stats::{Percentiles, ms};

const TRIES: usize = 20;
/// Rows one seeding transaction writes.
const CHUNK: u64 = 1_000_000;
/// Keys one insert call takes.
const KEY_CHUNK: usize = 10_000;

/// How much the database holds.
#[derive(Clone, Copy, Debug)]
pub struct ConsolePlan {
    pub keys: u64,
    pub requests: u64,
}

impl ConsolePlan {
    pub fn new(quick: bool, keys: Option<u64>, requests: Option<u64>) -> Self {
        let (default_keys, default_requests) = if quick { (1_000, 20_000) } else { (100_000, 10_000_000) };
        Self { keys: keys.unwrap_or(default_keys), requests: requests.unwrap_or(default_requests) }
    }
}

pub struct ConsoleResult {
    pub plan: ConsolePlan,
    pub seed_secs: f64,
    pub timings: Vec<(&'static str, Percentiles)>,
    /// Request log entries written a second, per backend.
    pub log_writes: Vec<(&'static str, f64)>,
}

/// Entries of the log-writer figure; each tried two keys (one failed), as a failover does.
const LOG_ENTRIES: usize = 100_000;

/// Seeds a fresh SQLite database in `dir`, starts a gateway on it, and times the console's calls.
pub async fn run(
    client: &Client,
    dir: &Path,
    spec: &GatewaySpec<'_>,
    plan: ConsolePlan,
    postgres: Option<&str>,
) -> anyhow::Result<ConsoleResult> {
    let url = format!("sqlite://{}/console.db", dir.display());
    let started = Instant::now();
    seed(&url, plan).await?;
    let seed_secs = started.elapsed().as_secs_f64();
    let spec = GatewaySpec { database_url: Some(url), ..spec.clone() };
    let (mut gateway, addr) = procs::start_gateway(dir, &spec)?;
    http::wait_healthy(client, addr, &mut gateway).await?;
    let admin = spec.admin_token;
    let first = http::admin_get(client, addr, admin, "/admin/requests?limit=1").await?;
    let request_id = first["entries"][0]["requestId"].as_str().context("the request log is empty")?.to_owned();
    let paths = [
        ("GET /admin/api-keys?page=1&pageSize=50", "/admin/api-keys?page=1&pageSize=50".to_owned()),
        ("GET /admin/stats", "/admin/stats".to_owned()),
        ("GET /admin/requests", "/admin/requests".to_owned()),
        ("GET /admin/requests?token=", format!("/admin/requests?token={}", id(3))),
        ("GET /admin/requests?key=", format!("/admin/requests?key={}", id(plan.keys.min(7)))),
        ("GET /admin/requests?requestId=", format!("/admin/requests?requestId={request_id}")),
        ("GET /admin/requests?status=5xx", "/admin/requests?status=5xx".to_owned()),
    ];
    for (name, path) in &paths[2..] {
        let answer = http::admin_get(client, addr, admin, path).await?;
        let found = answer["entries"].as_array().map_or(0, Vec::len);
        anyhow::ensure!(found > 0, "{name} found no entry in the seeded log: {answer}");
    }
    let mut timings = vec![("GET /dashboard", time(|| page(client, addr, "/dashboard")).await?)];
    for (name, path) in paths {
        timings.push((name, time(|| async { http::admin_get(client, addr, admin, &path).await.map(drop) }).await?));
    }
    gateway.ensure_running()?;
    let mut log_writes = vec![("sqlite", write_rate(&format!("sqlite://{}/log.db", dir.display())).await?)];
    if let Some(server) = postgres {
        log_writes.push((
            "postgres",
            import::on_fresh_postgres(server, "log", |url| async move { write_rate(&url).await }).await?,
        ));
    }
    Ok(ConsoleResult { plan, seed_secs, timings, log_writes })
}

/// Entries a second through the store's `append_requests`, in the flush's batches.
async fn write_rate(url: &str) -> anyhow::Result<f64> {
    let store = pool_adapters::sql::connect(url).await.context("opening the log-writer database")?;
    let now = pool_adapters::clock::now_ms();
    let provider = ProviderName::parse("ollama")?;
    let model: Arc<str> = Arc::from("model-01");
    let entries: Vec<RequestLogEntry> = (0..LOG_ENTRIES)
        .map(|i| RequestLogEntry {
            at: now + i64::try_from(i).unwrap_or(0),
            request_id: RequestId::new(format!("bench-{i:010}").as_bytes()),
            provider: provider.clone(),
            model: Arc::clone(&model),
            token: Some(TokenId::from_uuid(id(u64::try_from(i % 100).unwrap_or(0) + 1))),
            token_name: Some(format!("token-{:02}", i % 100)),
            status: 200,
            outcome: Outcome::Success,
            latency_ms: 240,
            prompt_tokens: 40,
            completion_tokens: 200,
            stream: i % 2 == 0,
            failed: vec![AttemptNote { key: KeyId::from_uuid(id(1)), outcome: "upstream answered 429".to_owned() }],
            last: Some(LastAttempt::Served(KeyId::from_uuid(id(2)))),
        })
        .collect();
    let started = Instant::now();
    for batch in entries.chunks(REQUEST_LOG_BATCH) {
        store.append_requests(batch).await.context("appending to the request log")?;
    }
    Ok(f64::from(u32::try_from(LOG_ENTRIES)?) / started.elapsed().as_secs_f64())
}

async fn time<F, Fut>(mut call: F) -> anyhow::Result<Percentiles>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    call().await?;
    let mut samples = Vec::with_capacity(TRIES);
    for _ in 0..TRIES {
        let started = Instant::now();
        call().await?;
        samples.push(started.elapsed());
    }
    Percentiles::of(samples).context("no samples")
}

/// `GET path` of a page (HTML); it must answer 200.
async fn page(client: &Client, addr: SocketAddr, path: &str) -> anyhow::Result<()> {
    let mut request = Request::new(Full::new(Bytes::new()));
    *request.uri_mut() = format!("http://{addr}{path}").parse()?;
    let response = tokio::time::timeout(Duration::from_secs(30), client.request(request)).await??;
    let status = response.status();
    response.into_body().collect().await?;
    anyhow::ensure!(status == 200, "GET {path} answered {status}");
    Ok(())
}

/// The id of the `n`th seeded key or token (1-based): a UUID SQLite can print too.
fn id(n: u64) -> Uuid {
    Uuid::from_u128(u128::from(n))
}

async fn seed(url: &str, plan: ConsolePlan) -> anyhow::Result<()> {
    let store = pool_adapters::sql::connect(url).await.context("opening the benchmark database")?;
    let now = pool_adapters::clock::now_ms();
    let keys: Vec<NewKey> = (1..=plan.keys)
        .map(|n| NewKey::new(KeyId::from_uuid(id(n)), "ollama", &format!("sk-console-{n:08}"), None, now, None))
        .collect();
    for chunk in keys.chunks(KEY_CHUNK) {
        store.insert_keys(chunk).await.context("inserting keys")?;
    }
    drop(store);
    let mut conn = sqlx::SqliteConnection::connect(url).await?;
    sqlx::raw_sql("PRAGMA journal_mode = WAL; PRAGMA synchronous = OFF").execute(&mut conn).await?;
    // The rows span the last six days (inside the default retention), one every `step` ms.
    let step = (6 * 86_400_000 / i64::try_from(plan.requests.max(1))?).max(1);
    let first_at = now - step * i64::try_from(plan.requests)?;
    let mut start = 0;
    while start < plan.requests {
        let end = (start + CHUNK).min(plan.requests);
        let mut tx = conn.begin().await?;
        sqlx::query(SEED_ROWS)
            .bind(i64::try_from(start)?)
            .bind(i64::try_from(end)?)
            .bind(first_at)
            .bind(step)
            .bind(i64::try_from(plan.keys)?)
            .execute(&mut *tx)
            .await
            .context("writing request log rows")?;
        tx.commit().await?;
        start = end;
    }
    let mut tx = conn.begin().await?;
    sqlx::raw_sql(SEED_KEYS).execute(&mut *tx).await.context("indexing the attempts by key")?;
    tx.commit().await?;
    sqlx::raw_sql("ANALYZE").execute(&mut conn).await?;
    Ok(())
}

/// Rows `$1..$2`: `$3` the first time, `$4` ms apart, over `$5` keys. Key and token ids are the
/// UUIDs of [`id`]. Every 33rd request first went to the next key, which answered 429.
const SEED_ROWS: &str = "WITH RECURSIVE n(i) AS (SELECT $1 UNION ALL SELECT i + 1 FROM n WHERE i + 1 < $2), \
     r AS (SELECT i, CASE WHEN i % 100 < 2 THEN 502 WHEN i % 100 < 5 THEN 400 ELSE 200 END AS status, \
       printf('00000000-0000-0000-0000-%012x', i % $5 + 1) AS key, \
       printf('00000000-0000-0000-0000-%012x', (i + 1) % $5 + 1) AS first FROM n) \
     INSERT INTO request_log (at_ms, request_id, provider, model, token_id, token_name, status, status_class, \
       outcome, latency_ms, prompt_tokens, completion_tokens, stream, attempts) \
     SELECT $3 + i * $4, printf('bench-%010d', i), 'ollama', printf('model-%02d', i % 20), \
       printf('00000000-0000-0000-0000-%012x', i % 100 + 1), printf('token-%02d', i % 100), \
       status, status / 100, \
       CASE status WHEN 200 THEN 'success' WHEN 400 THEN 'client_error' ELSE 'failed' END, \
       200 + i % 900, 40, 200, i % 2, \
       CASE WHEN i % 33 = 0 THEN first || '=upstream answered 429; ' ELSE '' END \
         || key || CASE status WHEN 200 THEN '=ok' WHEN 400 THEN '=returned 400' ELSE '=upstream answered 502' END \
     FROM r";

/// Every attempt of every row, from its `attempts` text (one or two keys).
const SEED_KEYS: &str = "INSERT OR IGNORE INTO request_log_keys (key_id, log_id) \
     SELECT substr(attempts, 1, 36), id FROM request_log; \
     INSERT OR IGNORE INTO request_log_keys (key_id, log_id) \
     SELECT substr(attempts, instr(attempts, '; ') + 2, 36), id FROM request_log WHERE instr(attempts, '; ') > 0";

pub fn print(result: Option<&ConsoleResult>) {
    let Some(r) = result else { return };
    println!(
        "\nConsole at scale (SQLite): {} keys, {} logged requests, seeded in {:.1} s; {TRIES} tries each",
        r.plan.keys, r.plan.requests, r.seed_secs
    );
    println!("  {:<44} {:>9} {:>9}", "", "p50 ms", "p95 ms");
    for (name, p) in &r.timings {
        println!("  {:<44} {:>9.2} {:>9.2}", name, ms(p.p50), ms(p.p95));
    }
    for (backend, rate) in &r.log_writes {
        println!(
            "  request log writer ({backend}): {rate:.0} entries/s ({LOG_ENTRIES} in batches of {REQUEST_LOG_BATCH})"
        );
    }
}

pub fn json(result: Option<&ConsoleResult>) -> serde_json::Value {
    let Some(r) = result else { return serde_json::Value::Null };
    let timings: serde_json::Map<String, serde_json::Value> = r
        .timings
        .iter()
        .map(|(name, p)| ((*name).to_owned(), serde_json::json!({"p50Ms": ms(p.p50), "p95Ms": ms(p.p95)})))
        .collect();
    let writes: serde_json::Map<String, serde_json::Value> =
        r.log_writes.iter().map(|(backend, rate)| ((*backend).to_owned(), serde_json::json!(rate))).collect();
    serde_json::json!({"keys": r.plan.keys, "requests": r.plan.requests, "seedSecs": r.seed_secs, "timings": timings,
        "logWritesPerSec": writes})
}
