//! Scenarios `failover` and `outage` share this harness: a fake upstream in this process (so
//! the benchmark can set faults on it while the load runs), a gateway process of its own per
//! scenario (fresh key health and database), and requests that are judged the way a client
//! would judge them.
//!
//! These scenarios count failures, not time: the fake upstream sharing the load generator's
//! runtime costs nothing that is measured here.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::StatusCode;
use pool_testkit::{FakeUpstream, Fault};
use serde_json::{Value, json};
use tokio::task::JoinSet;

use crate::http::{CHAT, CHAT_STREAM, Client, Target};
use crate::procs::{Child, GatewaySpec};

/// Upstream keys of every fault scenario.
pub const KEYS: usize = 8;
/// The gateway's first-byte timeout here, so a slow key costs a second, not five minutes.
const FIRST_BYTE_TIMEOUT_SECS: &str = "1";
/// How long the slow key takes to answer: beyond the gateway's first-byte timeout.
const SLOW_FIRST_BYTE: Duration = Duration::from_secs(3);
/// Longest wait for one client request, streams included.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// The seed of the random faults, so two runs draw the same faults in the same order of arrival.
const SEED: u64 = 42;

/// Request counts and durations; `--quick` makes every one small.
#[derive(Clone, Copy, Debug)]
pub struct FaultPlan {
    pub requests: usize,
    pub concurrency: usize,
    /// Random failures per key, in percent, of the random-fault run.
    pub random_pct: u32,
    /// Requests per second of the outage run, and its phases.
    pub outage_rate: u32,
    pub before_outage: Duration,
    pub outage: Duration,
    pub after_outage: Duration,
}

impl FaultPlan {
    pub fn new(quick: bool) -> Self {
        let secs = Duration::from_secs;
        if quick {
            FaultPlan {
                requests: 200,
                concurrency: 32,
                random_pct: 30,
                outage_rate: 50,
                before_outage: secs(1),
                outage: secs(2),
                after_outage: secs(5),
            }
        } else {
            FaultPlan {
                requests: 2_000,
                concurrency: 32,
                random_pct: 30,
                outage_rate: 100,
                before_outage: secs(5),
                outage: secs(10),
                after_outage: secs(30),
            }
        }
    }
}

/// A fake upstream in this process and a gateway in front of it with `KEYS` keys.
pub struct Rig {
    pub upstream: FakeUpstream,
    pub gateway: Child,
    pub target: Target,
    pub keys: Vec<String>,
}

/// Where a rig's gateway keeps its database and log: a directory of its own per scenario.
fn rig_dir(dir: &Path, name: &str) -> anyhow::Result<PathBuf> {
    let path = dir.join(name);
    std::fs::create_dir_all(&path).with_context(|| format!("creating {}", path.display()))?;
    Ok(path)
}

/// What every rig's gateway is started from: the scratch directory, the binary, the admin token.
#[derive(Clone, Copy)]
pub struct Launch<'a> {
    pub dir: &'a Path,
    pub binary: &'a Path,
    pub admin: &'a str,
    /// `--gateway-env` settings.
    pub env: &'a [(String, String)],
}

pub async fn start_rig(client: &Client, launch: Launch<'_>, name: &str) -> anyhow::Result<Rig> {
    let Launch { dir, binary, admin, env: settings } = launch;
    let upstream = FakeUpstream::start().await.context("starting the in-process fake upstream")?;
    upstream.set_seed(SEED);
    let spec = GatewaySpec { binary, upstream: upstream.addr(), admin_token: admin, database_url: None, env: settings };
    let env = [("POOL__PROXY__FIRST_BYTE_TIMEOUT_SECS", FIRST_BYTE_TIMEOUT_SECS)];
    let (mut gateway, addr) = crate::procs::start_gateway_with(&rig_dir(dir, name)?, &spec, &env)?;
    crate::http::wait_healthy(client, addr, &mut gateway).await?;
    let keys: Vec<String> = (0..KEYS).map(|i| format!("sk-{name}-{i}")).collect();
    let token = crate::http::provision(client, addr, admin, &keys).await?;
    let target = Target::new("gateway", addr, &[token])?;
    Ok(Rig { upstream, gateway, target, keys })
}

/// How one client request ended, as the client sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Seen {
    Ok,
    /// Not 200, no answer, or a whole body that did not arrive.
    Failed(String),
    /// A stream that began (200) but ended without `[DONE]`: cut after its first byte.
    Cut(String),
}

/// Request `i`: even ones stream, odd ones do not.
pub async fn one(client: &Client, target: &Target, i: usize) -> Seen {
    let stream = i.is_multiple_of(2);
    let body = Bytes::from_static(if stream { CHAT_STREAM } else { CHAT }.as_bytes());
    match tokio::time::timeout(REQUEST_TIMEOUT, exchange(client, target, i, &body)).await {
        Err(_) => Seen::Failed(format!("no complete answer in {REQUEST_TIMEOUT:?}")),
        Ok(Err(e)) => Seen::Failed(e),
        Ok(Ok((status, _))) if status != StatusCode::OK => Seen::Failed(format!("HTTP {status}")),
        Ok(Ok((_, Err(e)))) if stream => Seen::Cut(e),
        Ok(Ok((_, Err(e)))) => Seen::Failed(e),
        Ok(Ok((_, Ok(text)))) if stream && !text.trim_end().ends_with("data: [DONE]") => {
            Seen::Cut(format!("no [DONE]: ...{}", tail(&text)))
        }
        Ok(Ok(_)) => Seen::Ok,
    }
}

type Exchange = (StatusCode, Result<String, String>);

async fn exchange(client: &Client, target: &Target, i: usize, body: &Bytes) -> Result<Exchange, String> {
    let response = client.request(target.pooled(i, body)).await.map_err(|e| format!("request: {e}"))?;
    let status = response.status();
    let text = response.into_body().collect().await.map(|b| String::from_utf8_lossy(&b.to_bytes()).into_owned());
    Ok((status, text.map_err(|e| format!("body: {e}"))))
}

fn tail(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    chars[chars.len().saturating_sub(80)..].iter().collect()
}

/// What a batch of requests came to.
#[derive(Clone, Debug, Default)]
pub struct Counts {
    pub requests: usize,
    pub ok: usize,
    pub failed: usize,
    pub cut: usize,
    pub first_error: Option<String>,
}

impl Counts {
    pub fn add(&mut self, seen: Seen) {
        self.requests += 1;
        let error = match seen {
            Seen::Ok => {
                self.ok += 1;
                return;
            }
            Seen::Failed(e) => {
                self.failed += 1;
                e
            }
            Seen::Cut(e) => {
                self.cut += 1;
                e
            }
        };
        self.first_error.get_or_insert(error);
    }

    /// Client-visible failures, cut streams included.
    pub fn visible(&self) -> usize {
        self.failed + self.cut
    }

    pub fn json(&self) -> Value {
        json!({"requests": self.requests, "ok": self.ok, "failed": self.failed, "cut_streams": self.cut,
               "first_error": self.first_error})
    }
}

/// `plan.requests` requests, `plan.concurrency` at a time (closed loop).
pub async fn closed_loop(client: &Client, target: &Target, plan: FaultPlan) -> anyhow::Result<Counts> {
    let next = Arc::new(AtomicUsize::new(0));
    let mut workers = JoinSet::new();
    for _ in 0..plan.concurrency {
        let (client, target, next) = (client.clone(), target.clone(), Arc::clone(&next));
        workers.spawn(async move {
            let mut counts = Counts::default();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= plan.requests {
                    return counts;
                }
                counts.add(one(&client, &target, i).await);
            }
        });
    }
    let mut total = Counts::default();
    while let Some(done) = workers.join_next().await {
        let counts = done?;
        total.requests += counts.requests;
        total.ok += counts.ok;
        total.failed += counts.failed;
        total.cut += counts.cut;
        total.first_error = total.first_error.or(counts.first_error);
    }
    Ok(total)
}

/// The faults of the fixed-fault run: six of the eight keys fail, each its own way; the last
/// two are healthy.
pub fn fixed_faults() -> [(&'static str, Fault); 6] {
    [
        ("401", Fault::status(401)),
        ("402", Fault::status(402)),
        ("429 Retry-After: 30", Fault::rate_limited(Some("30"))),
        ("500", Fault::status(500)),
        ("dropped connection", Fault::DropBeforeHeaders),
        ("first byte after 3 s (timeout 1 s)", Fault::SlowFirstByte(SLOW_FIRST_BYTE)),
    ]
}

/// The fault of every key of the random run: `pct` % of its requests fail, as 500, 502, 503 or
/// a dropped connection.
pub fn random_fault(pct: u32) -> Fault {
    let mix = Fault::OneOf(vec![Fault::status(500), Fault::status(502), Fault::status(503), Fault::DropBeforeHeaders]);
    Fault::random(f64::from(pct) / 100.0, mix)
}
