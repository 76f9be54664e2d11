//! Bulk import: 100,000 keys through `POST /admin/api-keys/import` of a running gateway, timed
//! from the first byte sent to the answer, then checked to be in rotation at once (`/health`
//! counts them without a restart). Run against the SQLite gateway of the other scenarios, and,
//! when `--postgres` names a server, against a second gateway on a fresh PostgreSQL database.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Instant;

use anyhow::Context;
use serde_json::{Value, json};
use sqlx::Connection;

use crate::http::{self, Client};
use crate::procs::{self, GatewaySpec};

pub struct ImportResult {
    pub backend: &'static str,
    pub keys: usize,
    pub added: u64,
    pub secs: f64,
    /// Keys the gateway reports in its pool right after the import answered.
    pub pooled: u64,
}

/// Imports `n` fresh keys into the gateway at `addr` and times it.
pub async fn run(
    client: &Client,
    addr: SocketAddr,
    admin: &str,
    backend: &'static str,
    n: usize,
) -> anyhow::Result<ImportResult> {
    let before = pooled(client, addr).await?;
    let keys: Vec<String> = (0..n).map(|i| format!("sk-import-{backend}-{i:07}-0123456789abcdef")).collect();
    let started = Instant::now();
    let answer = http::admin_post(client, addr, admin, "/admin/api-keys/import", json!({"keys": keys})).await?;
    let secs = started.elapsed().as_secs_f64();
    let added = answer["added"].as_u64().with_context(|| format!("no 'added' in the import answer: {answer}"))?;
    let pooled = pooled(client, addr).await? - before;
    Ok(ImportResult { backend, keys: n, added, secs, pooled })
}

/// How many keys the default provider's pool holds, from `/health`.
async fn pooled(client: &Client, addr: SocketAddr) -> anyhow::Result<u64> {
    let health: Value = http::get_json(client, addr, "/health").await?;
    health["providers"]["ollama"]["keys"]["total"].as_u64().context("no key count in /health")
}

/// The same import against a gateway on a fresh database of the PostgreSQL server at `server`
/// (created for this run and dropped after it).
pub async fn run_postgres(
    client: &Client,
    dir: &Path,
    spec: &GatewaySpec<'_>,
    server: &str,
    n: usize,
) -> anyhow::Result<ImportResult> {
    on_fresh_postgres(server, "import", |url| async move {
        let spec = GatewaySpec { database_url: Some(url), ..spec.clone() };
        let (mut gateway, addr) = procs::start_gateway(dir, &spec)?;
        http::wait_healthy(client, addr, &mut gateway).await?;
        run(client, addr, spec.admin_token, "postgres", n).await
    })
    .await
}

/// Runs `work` with the URL of a database created for it on the PostgreSQL server at `server`,
/// and drops the database afterwards, whatever `work` returned.
pub async fn on_fresh_postgres<T, Fut>(server: &str, what: &str, work: impl FnOnce(String) -> Fut) -> anyhow::Result<T>
where
    Fut: Future<Output = anyhow::Result<T>>,
{
    let name = format!("pool_bench_{what}_{}", std::process::id());
    let mut admin_conn =
        sqlx::PgConnection::connect(server).await.with_context(|| "connecting to --postgres".to_owned())?;
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&mut admin_conn).await?;
    let (base, _) = server.rsplit_once('/').context("--postgres must end in /DATABASE")?;
    let result = work(format!("{base}/{name}")).await;
    let dropped = sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")))
        .execute(&mut admin_conn)
        .await;
    let result = result?;
    dropped.context("dropping the benchmark database")?;
    Ok(result)
}
