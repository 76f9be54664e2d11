//! Memory under many streams: N concurrent `stream: true` requests through the gateway, each
//! read to its end, while the gateway's resident set is sampled from `/proc/<pid>/status`.
//!
//! Every client connection is opened first and the requests then leave together: opened one
//! after the other, the first streams (about a second long) would end before the last began,
//! and the figure would be for fewer streams than announced. The peak is the largest sample
//! (every 50 ms); `VmHWM` is the kernel's own high-water mark over the process's whole life,
//! so it also covers the earlier scenarios and any spike between two samples.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::StatusCode;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::http::{CHAT_STREAM, Target};

const SAMPLE_EVERY: Duration = Duration::from_millis(50);
/// Wait after the streams before the "after" sample.
const SETTLE: Duration = Duration::from_secs(1);
/// Longest wait for every connection to be open before the requests leave anyway.
const CONNECT_ALL_TIMEOUT: Duration = Duration::from_secs(20);
/// Longest a single stream may take, from its connection to its end.
const STREAM_TIMEOUT: Duration = Duration::from_secs(60);
const DONE: &[u8] = b"data: [DONE]";

#[derive(Debug, Default)]
pub struct StreamsResult {
    pub requested: u64,
    /// Streams answered 200 that ended with `data: [DONE]`.
    pub done: u64,
    pub errors: u64,
    pub first_error: Option<String>,
    /// Most streams between headers and end at the same moment.
    pub peak_open: usize,
    /// From the go signal to the end of the last stream.
    pub secs: f64,
    pub rss_before_kib: u64,
    /// With every client connection open, before the requests leave.
    pub rss_connected_kib: u64,
    pub rss_peak_kib: u64,
    /// A second after the last stream ended, connections closed: memory kept, not leaked
    /// necessarily (allocators keep freed pages), but worth a look when it stays high.
    pub rss_after_kib: u64,
    pub hwm_kib: u64,
}

pub async fn run(target: &Target, streams: u64, pid: u32) -> anyhow::Result<StreamsResult> {
    let rss_before_kib = read_kib(pid, "VmRSS:")?;
    let stop = CancellationToken::new();
    let streaming = async {
        let tally = open_all(target, streams, pid).await;
        stop.cancel();
        tally
    };
    let (mut result, rss_peak_kib) = tokio::join!(streaming, peak_rss(pid, stop.clone()));
    result.rss_before_kib = rss_before_kib;
    result.rss_peak_kib = rss_peak_kib.max(rss_before_kib);
    result.hwm_kib = read_kib(pid, "VmHWM:")?;
    tokio::time::sleep(SETTLE).await;
    result.rss_after_kib = read_kib(pid, "VmRSS:")?;
    Ok(result)
}

/// What the stream tasks share.
#[derive(Clone)]
struct Shared {
    target: Target,
    body: Bytes,
    /// Each task sends once when its connection is open (or failed to open).
    ready: mpsc::Sender<()>,
    go: CancellationToken,
    open: Arc<AtomicUsize>,
    peak: Arc<AtomicUsize>,
}

/// Connects every stream, starts them all at once, and waits for all of them.
async fn open_all(target: &Target, streams: u64, pid: u32) -> StreamsResult {
    let (ready, mut connected) = mpsc::channel(1024);
    let shared = Shared {
        target: target.clone(),
        body: Bytes::from_static(CHAT_STREAM.as_bytes()),
        ready,
        go: CancellationToken::new(),
        open: Arc::default(),
        peak: Arc::default(),
    };
    let mut set = JoinSet::new();
    for i in 0..streams {
        set.spawn(tokio::time::timeout(STREAM_TIMEOUT, one(shared.clone(), i as usize)));
    }
    let all_connected = async {
        for _ in 0..streams {
            connected.recv().await;
        }
    };
    let _ = tokio::time::timeout(CONNECT_ALL_TIMEOUT, all_connected).await;
    let rss_connected_kib = read_kib(pid, "VmRSS:").unwrap_or(0);
    let started = Instant::now();
    shared.go.cancel();
    let mut result = collect(&mut set, streams).await;
    result.secs = started.elapsed().as_secs_f64();
    result.peak_open = shared.peak.load(Ordering::Relaxed);
    result.rss_connected_kib = rss_connected_kib;
    result
}

/// A stream task's result: its own outcome, unless it timed out.
type Outcome = Result<Result<(), String>, tokio::time::error::Elapsed>;

async fn collect(set: &mut JoinSet<Outcome>, streams: u64) -> StreamsResult {
    let mut result = StreamsResult { requested: streams, ..StreamsResult::default() };
    while let Some(joined) = set.join_next().await {
        match flatten(joined) {
            Ok(()) => result.done += 1,
            Err(e) => {
                result.errors += 1;
                result.first_error.get_or_insert(e);
            }
        }
    }
    result
}

fn flatten(joined: Result<Outcome, tokio::task::JoinError>) -> Result<(), String> {
    match joined {
        Ok(Ok(outcome)) => outcome,
        Ok(Err(_)) => Err(format!("not finished within {STREAM_TIMEOUT:?}")),
        Err(e) => Err(format!("stream task failed: {e}")),
    }
}

/// Counts a stream as open from its headers to its end, whichever way it ends.
struct OpenGuard(Arc<AtomicUsize>);

impl OpenGuard {
    fn new(open: Arc<AtomicUsize>, peak: &AtomicUsize) -> OpenGuard {
        let now = open.fetch_add(1, Ordering::Relaxed) + 1;
        peak.fetch_max(now, Ordering::Relaxed);
        OpenGuard(open)
    }
}

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// One stream on its own connection: connect, wait for the go, then read the answer to its
/// end; `Ok` only for a 200 whose last event is `data: [DONE]`.
async fn one(shared: Shared, i: usize) -> Result<(), String> {
    let connected = crate::http::connect(shared.target.addr).await;
    let _ = shared.ready.send(()).await;
    let (mut sender, conn) = connected.map_err(|e| format!("connect: {e}"))?;
    shared.go.cancelled().await;
    let exchange = async {
        sender.ready().await.map_err(|e| e.to_string())?;
        let request = shared.target.raw(i, &shared.body);
        let response = sender.send_request(request).await.map_err(|e| e.to_string())?;
        if response.status() != StatusCode::OK {
            return Err(format!("HTTP {}", response.status()));
        }
        let _open = OpenGuard::new(Arc::clone(&shared.open), &shared.peak);
        read_tail(response.into_body()).await
    };
    tokio::pin!(exchange);
    tokio::select! {
        tail = &mut exchange => tail,
        // The connection may end first (after the last byte); the body is buffered by then.
        closed = conn => {
            closed.map_err(|e| e.to_string())?;
            exchange.await
        }
    }
}

/// Reads a body to its end and checks that it ends with `data: [DONE]`. Only a short tail is
/// kept, so that a thousand streams hold no bodies in the load generator.
async fn read_tail(mut body: hyper::body::Incoming) -> Result<(), String> {
    let mut tail: Vec<u8> = Vec::with_capacity(128);
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.map_err(|e| e.to_string())?.into_data() {
            tail.extend_from_slice(&data);
            let excess = tail.len().saturating_sub(64);
            tail.drain(..excess);
        }
    }
    let ended = tail.windows(DONE.len()).any(|w| w == DONE);
    ended.then_some(()).ok_or_else(|| "the stream ended without data: [DONE]".to_owned())
}

/// The largest `VmRSS` of `pid` seen every 50 ms until `stop`.
async fn peak_rss(pid: u32, stop: CancellationToken) -> u64 {
    let mut peak = 0;
    let mut ticker = tokio::time::interval(SAMPLE_EVERY);
    loop {
        peak = peak.max(read_kib(pid, "VmRSS:").unwrap_or(0));
        tokio::select! {
            _ = ticker.tick() => {}
            () = stop.cancelled() => return peak.max(read_kib(pid, "VmRSS:").unwrap_or(0)),
        }
    }
}

/// A `kB` field of `/proc/<pid>/status`, such as `VmRSS:`.
pub fn read_kib(pid: u32, field: &str) -> anyhow::Result<u64> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .with_context(|| format!("no {field} in {path}"))
}
