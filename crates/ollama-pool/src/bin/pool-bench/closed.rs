//! Max RPS: a closed loop of N workers, each owning one raw HTTP/1.1 keep-alive connection
//! and sending the next request as soon as the previous answer is read.
//!
//! Raw `hyper::client::conn` connections instead of the pooled client: with a fixed set of
//! workers a pool only adds a lock per request, and on a small machine the load generator's
//! CPU time is taken from the processes under test.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::StatusCode;
use tokio::task::JoinSet;

use crate::cpu::{CpuProbe, CpuUse};
use crate::http::{CHAT, Target};

/// Longest wait for one answer: a hung request ends its connection, not the run.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// The measured part of a run; answers outside it are not counted.
#[derive(Clone, Copy)]
struct Window {
    start: Instant,
    end: Instant,
}

impl Window {
    fn contains(self, t: Instant) -> bool {
        t >= self.start && t < self.end
    }
}

/// What one worker, or the whole run, counted inside the window.
#[derive(Debug, Default)]
pub struct Tally {
    pub ok: u64,
    pub errors: u64,
    pub first_error: Option<String>,
}

impl Tally {
    fn error(&mut self, window: Window, message: impl FnOnce() -> String) {
        if window.contains(Instant::now()) {
            self.errors += 1;
            self.first_error.get_or_insert_with(message);
        }
    }

    fn merge(&mut self, other: Tally) {
        self.ok += other.ok;
        self.errors += other.errors;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }
}

#[derive(Debug)]
pub struct RpsResult {
    pub tally: Tally,
    pub window: Duration,
    /// CPU used by each process inside the window.
    pub cpu: Vec<CpuUse>,
}

impl RpsResult {
    pub fn rps(&self) -> f64 {
        self.tally.ok as f64 / self.window.as_secs_f64()
    }
}

/// Runs `concurrency` workers against `target` for `warmup + duration`, counting `duration`
/// and the CPU each process of `probe` used in it.
pub async fn max_rps(
    target: &Target,
    concurrency: u64,
    warmup: Duration,
    duration: Duration,
    probe: &CpuProbe,
) -> anyhow::Result<RpsResult> {
    let start = Instant::now() + warmup;
    let window = Window { start, end: start + duration };
    let body = Bytes::from_static(CHAT.as_bytes());
    let mut workers = JoinSet::new();
    for i in 0..concurrency {
        workers.spawn(worker(target.clone(), i as usize, body.clone(), window));
    }
    tokio::time::sleep_until(window.start.into()).await;
    let before = probe.snapshot();
    tokio::time::sleep_until(window.end.into()).await;
    let cpu = probe.used(&before, &probe.snapshot());
    let mut tally = Tally::default();
    while let Some(done) = workers.join_next().await {
        tally.merge(done?);
    }
    Ok(RpsResult { tally, window: duration, cpu })
}

async fn worker(target: Target, id: usize, body: Bytes, window: Window) -> Tally {
    let mut tally = Tally::default();
    while Instant::now() < window.end {
        if let Err(e) = connection(&target, id, &body, window, &mut tally).await {
            tally.error(window, || format!("connection: {e}"));
            // A refused or reset connection must not turn into a busy loop.
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    tally
}

/// Sends requests on one connection until the window ends or the connection fails.
async fn connection(target: &Target, id: usize, body: &Bytes, window: Window, tally: &mut Tally) -> anyhow::Result<()> {
    let (mut sender, conn) = crate::http::connect(target.addr).await?;
    let requests = async {
        while Instant::now() < window.end {
            let exchange = async {
                sender.ready().await?;
                let response = sender.send_request(target.raw(id, body)).await?;
                let status = response.status();
                response.into_body().collect().await?;
                anyhow::Ok(status)
            };
            let status = tokio::time::timeout(REQUEST_TIMEOUT, exchange).await??;
            if status == StatusCode::OK {
                if window.contains(Instant::now()) {
                    tally.ok += 1;
                }
            } else {
                tally.error(window, || format!("HTTP {status}"));
            }
        }
        anyhow::Ok(())
    };
    tokio::select! {
        closed = conn => {
            closed?;
            anyhow::bail!("the server closed the connection")
        }
        done = requests => done,
    }
}
