//! Statistics reads at scale: a database holding the rollups of 10,000,000 requests (90 days of
//! hourly rows, 48 hours of per-minute rows, every request with its attempt), then
//! `GET /admin/stats` and `GET /admin/public-stats` of a gateway on it, timed over many calls.
//!
//! The rows are merged by `Rollups::of` and written through the store's own `add_stats`, as a
//! flush does, one simulated day per transaction. Traffic is spread over 20 models, 50 keys and
//! 100 tokens in 100 distinct (model, key, token) combinations an hour, 3 % of requests
//! rate-limited once before they are served.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use pool_core::ids::{KeyId, TokenId};
use pool_core::provider::ProviderName;
use pool_core::stats::{DAY_MS, Dims, HOUR_MS, Kind, MINUTE_MS, Outcome, Rollups, StatsRow, Tally, hour_of};
use uuid::Uuid;

use crate::http::{self, Client};
use crate::procs::{self, GatewaySpec};
use crate::stats::Percentiles;

pub const REQUESTS: u64 = 10_000_000;
const DAYS: i64 = 90;
const MODELS: u64 = 20;
const COMBOS_PER_HOUR: u64 = 200;
const CALLS: usize = 50;

pub struct RollupResult {
    pub backend: &'static str,
    pub requests: u64,
    pub seed_secs: f64,
    pub admin_stats: Percentiles,
    pub public_stats: Percentiles,
}

/// Seeds a fresh database at `url`, starts a gateway on it, and times both endpoints.
pub async fn run(
    client: &Client,
    dir: &Path,
    spec: &GatewaySpec<'_>,
    backend: &'static str,
    url: String,
) -> anyhow::Result<RollupResult> {
    let started = Instant::now();
    seed(&url).await?;
    let seed_secs = started.elapsed().as_secs_f64();
    let spec = GatewaySpec { database_url: Some(url), ..spec.clone() };
    let (mut gateway, addr) = procs::start_gateway(dir, &spec)?;
    http::wait_healthy(client, addr, &mut gateway).await?;
    let total = http::admin_get(client, addr, spec.admin_token, "/admin/stats").await?;
    let counted = total["totalRequests"].as_u64().context("no totalRequests in /admin/stats")?;
    anyhow::ensure!(counted == REQUESTS, "the gateway reports {counted} requests, not {REQUESTS}");
    // Unmeasured, like every scenario's warm-up: the database settles after the bulk write.
    let warm_until = Instant::now() + crate::WARMUP;
    while Instant::now() < warm_until {
        http::admin_get(client, addr, spec.admin_token, "/admin/stats").await?;
        http::get_json(client, addr, "/admin/public-stats").await?;
    }
    let admin_stats = time(CALLS, || http::admin_get(client, addr, spec.admin_token, "/admin/stats")).await?;
    let public_stats = time(CALLS, || http::get_json(client, addr, "/admin/public-stats")).await?;
    gateway.ensure_running()?;
    Ok(RollupResult { backend, requests: counted, seed_secs, admin_stats, public_stats })
}

/// The same on a fresh database of the PostgreSQL server at `server`, dropped afterwards.
pub async fn run_postgres(
    client: &Client,
    dir: &Path,
    spec: &GatewaySpec<'_>,
    server: &str,
) -> anyhow::Result<RollupResult> {
    crate::import::on_fresh_postgres(server, "stats", |url| run(client, dir, spec, "postgres", url)).await
}

async fn time<F, Fut>(calls: usize, mut call: F) -> anyhow::Result<Percentiles>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<serde_json::Value>>,
{
    let mut samples: Vec<Duration> = Vec::with_capacity(calls);
    for _ in 0..calls {
        let started = Instant::now();
        call().await?;
        samples.push(started.elapsed());
    }
    Percentiles::of(samples).context("no samples")
}

async fn seed(url: &str) -> anyhow::Result<()> {
    let store = pool_adapters::sql::connect(url).await.context("opening the benchmark database")?;
    let provider = ProviderName::parse("ollama")?;
    let now = pool_adapters::clock::now_ms();
    let first_hour = hour_of(now) - (DAYS * 24 - 1) * HOUR_MS;
    let hours = u64::try_from(DAYS * 24)?;
    let models: Vec<std::sync::Arc<str>> = (0..MODELS).map(|m| format!("model-{m:02}").into()).collect();
    for day in 0..DAYS {
        let mut rows = Vec::new();
        for h in 0..24 {
            let index = u64::try_from(day * 24 + h)?;
            let hour = first_hour + (day * 24 + h) * HOUR_MS;
            let in_hour = REQUESTS / hours + u64::from(index < REQUESTS % hours);
            for combo in 0..COMBOS_PER_HOUR {
                let events = in_hour / COMBOS_PER_HOUR + u64::from(combo < in_hour % COMBOS_PER_HOUR);
                // The hour's traffic lands in its first minutes, a combination per minute.
                let bucket = hour + MINUTE_MS * i64::try_from(combo % 60)?;
                let dims = Dims {
                    kind: Kind::Request,
                    provider: provider.clone(),
                    model: models[usize::try_from(combo % MODELS)?].clone(),
                    key: Some(KeyId::from_uuid(Uuid::from_u128(u128::from(combo % 50) + 1))),
                    token: Some(TokenId::from_uuid(Uuid::from_u128(u128::from(combo % 100) + 1))),
                    status: 200,
                    outcome: Outcome::Success,
                };
                let tally = Tally {
                    events,
                    prompt_tokens: events * 40,
                    completion_tokens: events * 200,
                    total_tokens: events * 240,
                    latency_ms: events * 900,
                    ttfb_ms: events * 300,
                    overhead_us: events * 150,
                    ..Tally::default()
                };
                let attempt = |outcome, status, events| StatsRow {
                    bucket,
                    dims: Dims { kind: Kind::Attempt, status, outcome, ..dims.clone() },
                    tally: Tally { events, ..Tally::default() },
                };
                rows.push(attempt(Outcome::Success, 200, events));
                rows.push(attempt(Outcome::RateLimited, 429, events * 3 / 100));
                rows.push(StatsRow { bucket, dims, tally });
            }
        }
        // What a flush writes, but per-minute rows only for the last 48 hours (as retention keeps).
        let mut rollups = Rollups::of(&rows);
        rollups.minutes.retain(|row| now - row.bucket < 2 * DAY_MS);
        store.add_stats(&rollups).await.context("writing a day of rollups")?;
    }
    analyze(url).await
}

/// Gathers planner statistics, as a database holding 90 days of history has long had them
/// (PostgreSQL's autovacuum analyzes a table after 10 % of it changed). Freshly bulk-loaded and
/// never analyzed, PostgreSQL scans the hourly summary whole: 40 ms instead of 2.
async fn analyze(url: &str) -> anyhow::Result<()> {
    use sqlx::Connection;
    if url.starts_with("sqlite:") {
        let mut conn = sqlx::SqliteConnection::connect(url).await?;
        sqlx::query("ANALYZE").execute(&mut conn).await?;
    } else {
        let mut conn = sqlx::PgConnection::connect(url).await?;
        sqlx::query("ANALYZE").execute(&mut conn).await?;
    }
    Ok(())
}

pub fn print(results: &[RollupResult]) {
    if results.is_empty() {
        return;
    }
    println!("\nStatistics reads with {REQUESTS} requests recorded ({CALLS} calls each)");
    for r in results {
        println!(
            "  {:<9} seeded in {:.1} s; /admin/stats p50 {:.1} ms p99 {:.1} ms; /admin/public-stats p50 {:.1} ms p99 {:.1} ms",
            r.backend,
            r.seed_secs,
            crate::stats::ms(r.admin_stats.p50),
            crate::stats::ms(r.admin_stats.p99),
            crate::stats::ms(r.public_stats.p50),
            crate::stats::ms(r.public_stats.p99),
        );
    }
}

/// For the targets table: the slower endpoint's p99.
pub fn worst_p99_ms(r: &RollupResult) -> f64 {
    crate::stats::ms(r.admin_stats.p99.max(r.public_stats.p99))
}
