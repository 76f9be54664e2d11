//! Memory under many streams: N concurrent `stream: true` requests through the gateway, each
//! read to its end, while the gateway's resident set is sampled from `/proc/<pid>/status`.
//!
//! The peak is the largest sample (every 50 ms); `VmHWM` is the kernel's own high-water mark
//! for the process's whole life, so it also covers the earlier scenarios and any spike
//! between two samples.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::StatusCode;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::http::{CHAT_STREAM, Client, Target};

const SAMPLE_EVERY: Duration = Duration::from_millis(50);
/// Longest a single stream may take, connection included.
const STREAM_TIMEOUT: Duration = Duration::from_secs(30);
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
    pub secs: f64,
    pub rss_before_kib: u64,
    pub rss_peak_kib: u64,
    pub hwm_kib: u64,
}

pub async fn run(client: &Client, target: &Target, streams: u64, pid: u32) -> anyhow::Result<StreamsResult> {
    let rss_before_kib = read_kib(pid, "VmRSS:")?;
    let stop = CancellationToken::new();
    let started = Instant::now();
    let streaming = async {
        let tally = open_all(client, target, streams).await;
        stop.cancel();
        tally
    };
    let (mut result, rss_peak_kib) = tokio::join!(streaming, peak_rss(pid, stop.clone()));
    result.secs = started.elapsed().as_secs_f64();
    result.rss_before_kib = rss_before_kib;
    result.rss_peak_kib = rss_peak_kib.max(rss_before_kib);
    result.hwm_kib = read_kib(pid, "VmHWM:")?;
    Ok(result)
}

/// Opens every stream at once and waits for all of them.
async fn open_all(client: &Client, target: &Target, streams: u64) -> StreamsResult {
    let (open, peak) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let body = Bytes::from_static(CHAT_STREAM.as_bytes());
    let mut set = JoinSet::new();
    for i in 0..streams {
        let request = target.pooled(i as usize, &body);
        let stream = one(client.clone(), request, Arc::clone(&open), Arc::clone(&peak));
        set.spawn(tokio::time::timeout(STREAM_TIMEOUT, stream));
    }
    let mut result = StreamsResult { requested: streams, ..StreamsResult::default() };
    while let Some(joined) = set.join_next().await {
        let outcome = match joined {
            Ok(Ok(outcome)) => outcome,
            Ok(Err(_)) => Err(format!("not finished within {STREAM_TIMEOUT:?}")),
            Err(e) => Err(format!("stream task failed: {e}")),
        };
        match outcome {
            Ok(()) => result.done += 1,
            Err(e) => {
                result.errors += 1;
                result.first_error.get_or_insert(e);
            }
        }
    }
    result.peak_open = peak.load(Ordering::Relaxed);
    result
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

/// One stream, read to its end; `Ok` only for a 200 whose last event is `data: [DONE]`.
async fn one(
    client: Client,
    request: hyper::Request<http_body_util::Full<Bytes>>,
    open: Arc<AtomicUsize>,
    peak: Arc<AtomicUsize>,
) -> Result<(), String> {
    let response = client.request(request).await.map_err(|e| e.to_string())?;
    if response.status() != StatusCode::OK {
        return Err(format!("HTTP {}", response.status()));
    }
    let _open = OpenGuard::new(open, &peak);
    let mut body = response.into_body();
    // Only the end matters; keep a short tail so 1,000 streams hold no bodies.
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
