//! Exact statistics: every client request and every upstream attempt, counted separately, with no
//! sampling.
//!
//! The hot path adds to a [`Recorder`]: a sharded in-memory map from (minute, [`Dims`]) to a
//! [`Tally`], one short lock per record and no store round trip. A background flush takes what
//! accumulated ([`Recorder::take_flight`], driven by [`crate::accounting::flush_stats`]) and writes it to the store as atomic increments of four
//! rollups ([`Rollups`]): per minute and per hour with every dimension, per hour without key and
//! token (what dashboards read), and all-time totals. A flush that fails gives its rows back;
//! the backlog is bounded by a row cap, beyond which new rows are dropped and counted, so a long
//! database outage costs memory only up to the cap and never slows a request.
//!
//! [`Recorder`] also keeps cumulative figures for `/metrics` ([`Metrics`]), which never reset.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::hash::{BuildHasher, Hash, RandomState};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Mutex, MutexGuard, PoisonError};

use crate::UnixMs;
use crate::ids::{KeyId, TokenId};
use crate::provider::ProviderName;
use crate::usage::Usage;

pub use metrics::{CounterLabels, Histogram, Measure, Metrics, Snapshot};

mod metrics;
mod summary;
mod trend;

pub use summary::{Granularity, HourPoint, ModelCount, StatsSummary, SummaryRow, Totals, UsagePoint};
pub use trend::{Trend, TrendPoint, TrendRange};

pub const MINUTE_MS: UnixMs = 60_000;
pub const HOUR_MS: UnixMs = 3_600_000;
pub const DAY_MS: UnixMs = 86_400_000;

/// What a row counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// A client request, counted once whatever the number of attempts.
    Request,
    /// One upstream attempt with one key.
    Attempt,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Request => "request",
            Self::Attempt => "attempt",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "request" => Some(Self::Request),
            "attempt" => Some(Self::Attempt),
            _ => None,
        }
    }
}

/// How a request or an attempt ended. The names are stored, exported as metric labels and shown
/// on the dashboard: they are a contract.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Outcome {
    /// Answered 2xx in full (for a stream: it ended cleanly).
    Success,
    /// Served from the response cache.
    Cached,
    /// The upstream said the request itself was wrong (400, 404 model not found, 422…), passed
    /// through to the client; no key is blamed.
    ClientError,
    /// Refused by the gateway before any upstream was asked (bad body, token, limits).
    Rejected,
    /// No key could take the request (503).
    NoKey,
    /// Every attempt failed (502).
    Failed,
    /// The upstream answered 429.
    RateLimited,
    /// The upstream refused the key (401, 402, 403).
    AuthError,
    /// The upstream answered 5xx (or an error event opened its stream).
    ServerError,
    /// No answer in time (connect, first byte, or between chunks).
    Timeout,
    /// The connection failed or dropped.
    Network,
    /// The key turned out not to serve the model (404), and was taken off it.
    ModelMissing,
    /// A stream broke after its first byte had reached the client.
    StreamError,
    /// The client went away before the answer was complete.
    Cancelled,
}

impl Outcome {
    pub const ALL: [Self; 14] = [
        Self::Success,
        Self::Cached,
        Self::ClientError,
        Self::Rejected,
        Self::NoKey,
        Self::Failed,
        Self::RateLimited,
        Self::AuthError,
        Self::ServerError,
        Self::Timeout,
        Self::Network,
        Self::ModelMissing,
        Self::StreamError,
        Self::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Cached => "cached",
            Self::ClientError => "client_error",
            Self::Rejected => "rejected",
            Self::NoKey => "no_key",
            Self::Failed => "failed",
            Self::RateLimited => "rate_limited",
            Self::AuthError => "auth_error",
            Self::ServerError => "server_error",
            Self::Timeout => "timeout",
            Self::Network => "network",
            Self::ModelMissing => "model_missing",
            Self::StreamError => "stream_error",
            Self::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|o| o.as_str() == s)
    }

    /// Whether the client got what it asked for.
    pub fn is_success(self) -> bool {
        matches!(self, Self::Success | Self::Cached)
    }
}

/// The dimensions of one counted event.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Dims {
    pub kind: Kind,
    pub provider: ProviderName,
    /// Empty when the request named none (or was refused before it was read).
    pub model: Arc<str>,
    pub key: Option<KeyId>,
    pub token: Option<TokenId>,
    /// The HTTP status; 0 when no answer came (a transport failure).
    pub status: u16,
    pub outcome: Outcome,
}

/// Counts and sums of the events that share [`Dims`] in one time bucket.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    pub events: u64,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub total_tokens: u64,
    /// Events whose usage is incomplete (a stream cut short).
    pub partial: u64,
    /// Sum of total latencies.
    pub latency_ms: u64,
    /// Sum of times to the first byte.
    pub ttfb_ms: u64,
    /// Sum of the time the gateway itself spent (everything but waiting for upstreams).
    pub overhead_us: u64,
}

impl Tally {
    /// Adds `other` in, saturating: an upstream that reports absurd usage cannot wrap a sum.
    pub fn add(&mut self, other: &Self) {
        for (sum, n) in [
            (&mut self.events, other.events),
            (&mut self.prompt_tokens, other.prompt_tokens),
            (&mut self.completion_tokens, other.completion_tokens),
            (&mut self.total_tokens, other.total_tokens),
            (&mut self.partial, other.partial),
            (&mut self.latency_ms, other.latency_ms),
            (&mut self.ttfb_ms, other.ttfb_ms),
            (&mut self.overhead_us, other.overhead_us),
        ] {
            *sum = sum.saturating_add(n);
        }
    }

    pub fn with_usage(mut self, usage: Option<Usage>) -> Self {
        if let Some(u) = usage {
            self.prompt_tokens = u.prompt;
            self.completion_tokens = u.completion;
            self.total_tokens = u.total;
        }
        self
    }
}

/// One row of counted events: a bucket start (the minute, in a buffer and a flush), what was
/// counted, and how much.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatsRow {
    pub bucket: UnixMs,
    pub dims: Dims,
    pub tally: Tally,
}

/// Timings of one client request, in microseconds of a monotonic clock.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Timing {
    pub total_us: u64,
    pub ttfb_us: u64,
    pub overhead_us: u64,
}

impl Timing {
    fn tally(self) -> Tally {
        Tally {
            events: 1,
            latency_ms: self.total_us / 1000,
            ttfb_ms: self.ttfb_us / 1000,
            overhead_us: self.overhead_us,
            ..Tally::default()
        }
    }
}

/// Events dropped because the backlog was full (the store was away too long).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Dropped {
    pub requests: u64,
    pub attempts: u64,
}

/// Flush health, for `/metrics` and `/admin/stats`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FlushState {
    /// When a flush last succeeded (0: never).
    pub last_ok: UnixMs,
    /// Flushes that failed in a row.
    pub failures: u64,
    /// Flushes that failed since start.
    pub failures_total: u64,
    /// Rows not yet written: waiting for the next flush, or in one under way.
    pub backlog_rows: usize,
}

const SHARDS: usize = 8;

type Shard = HashMap<(UnixMs, Dims), Tally>;

/// The hot path's side of statistics. Cheap to share (`Arc`).
pub struct Recorder {
    shards: [Mutex<Shard>; SHARDS],
    hasher: RandomState,
    /// Most rows held per shard before new rows are dropped.
    cap_per_shard: usize,
    dropped_requests: AtomicU64,
    dropped_attempts: AtomicU64,
    last_flush_ok: AtomicI64,
    flush_failures: AtomicU64,
    flush_failures_total: AtomicU64,
    /// Rows taken by flushes under way.
    flushing: AtomicUsize,
    pub metrics: Metrics,
}

impl Recorder {
    /// A recorder that holds at most `max_backlog_rows` distinct rows between flushes.
    pub fn new(max_backlog_rows: usize) -> Self {
        Self {
            shards: std::array::from_fn(|_| Mutex::new(HashMap::new())),
            hasher: RandomState::new(),
            cap_per_shard: max_backlog_rows.div_ceil(SHARDS).max(1),
            dropped_requests: AtomicU64::new(0),
            dropped_attempts: AtomicU64::new(0),
            last_flush_ok: AtomicI64::new(0),
            flush_failures: AtomicU64::new(0),
            flush_failures_total: AtomicU64::new(0),
            flushing: AtomicUsize::new(0),
            metrics: Metrics::default(),
        }
    }

    /// Counts a client request that ended.
    pub fn request(&self, now: UnixMs, dims: Dims, timing: Timing, usage: Option<Usage>, partial: bool) {
        debug_assert_eq!(dims.kind, Kind::Request);
        self.metrics.observe_request(&dims, timing);
        let mut tally = timing.tally().with_usage(usage);
        tally.partial = u64::from(partial);
        self.add(minute_of(now), dims, tally);
    }

    /// Counts one upstream attempt; `upstream_us` is how long it waited on the upstream.
    pub fn attempt(&self, now: UnixMs, dims: Dims, upstream_us: u64) {
        debug_assert_eq!(dims.kind, Kind::Attempt);
        self.metrics.observe_attempt(&dims, upstream_us);
        let tally = Tally { events: 1, latency_ms: upstream_us / 1000, ..Tally::default() };
        self.add(minute_of(now), dims, tally);
    }

    fn add(&self, bucket: UnixMs, dims: Dims, tally: Tally) {
        let key = (bucket, dims);
        let shard = self.hasher.hash_one(&key) as usize % SHARDS;
        let mut rows = lock(&self.shards[shard]);
        let len = rows.len();
        match rows.entry(key) {
            Entry::Occupied(mut row) => row.get_mut().add(&tally),
            Entry::Vacant(row) if len < self.cap_per_shard => {
                row.insert(tally);
            }
            Entry::Vacant(row) => {
                let dropped = match row.key().1.kind {
                    Kind::Request => &self.dropped_requests,
                    Kind::Attempt => &self.dropped_attempts,
                };
                dropped.fetch_add(tally.events, Relaxed);
            }
        }
    }

    /// Takes every row accumulated since the last take.
    pub fn take(&self) -> Vec<StatsRow> {
        let mut out = Vec::new();
        for shard in &self.shards {
            let rows = std::mem::take(&mut *lock(shard));
            out.extend(rows.into_iter().map(|((bucket, dims), tally)| StatsRow { bucket, dims, tally }));
        }
        out
    }

    /// Gives back rows a flush could not write (subject to the backlog cap, like new rows).
    pub fn restore(&self, rows: Vec<StatsRow>) {
        for row in rows {
            self.add(row.bucket, row.dims, row.tally);
        }
    }

    /// Takes every row accumulated since the last take for a flush: until the flight is told it
    /// [`Flight::landed`], the rows still count as backlog, and a flight that failed (or was
    /// dropped half-way, as when its store call timed out) gives them back.
    pub fn take_flight(&self) -> Flight<'_> {
        let rows = self.take();
        self.flushing.fetch_add(rows.len(), Relaxed);
        Flight { recorder: self, rows }
    }

    fn flushed(&self, now: UnixMs) {
        self.last_flush_ok.store(now, Relaxed);
        self.flush_failures.store(0, Relaxed);
    }

    pub fn dropped(&self) -> Dropped {
        Dropped { requests: self.dropped_requests.load(Relaxed), attempts: self.dropped_attempts.load(Relaxed) }
    }

    pub fn flush_state(&self) -> FlushState {
        FlushState {
            last_ok: self.last_flush_ok.load(Relaxed),
            failures: self.flush_failures.load(Relaxed),
            failures_total: self.flush_failures_total.load(Relaxed),
            backlog_rows: self.shards.iter().map(|s| lock(s).len()).sum::<usize>() + self.flushing.load(Relaxed),
        }
    }
}

/// The rows of one flush on their way to the store (see [`Recorder::take_flight`]).
pub struct Flight<'a> {
    recorder: &'a Recorder,
    rows: Vec<StatsRow>,
}

impl Flight<'_> {
    pub fn rows(&self) -> &[StatsRow] {
        &self.rows
    }

    /// The store took the rows: they leave the backlog. Returns how many there were.
    pub fn landed(mut self, now: UnixMs) -> usize {
        let rows = std::mem::take(&mut self.rows);
        self.recorder.flushing.fetch_sub(rows.len(), Relaxed);
        self.recorder.flushed(now);
        rows.len()
    }
}

/// A flight that did not land (the store failed, or the flush was cancelled) gives its rows
/// back, subject to the backlog cap like new rows, and counts as a failed flush.
impl Drop for Flight<'_> {
    fn drop(&mut self) {
        let rows = std::mem::take(&mut self.rows);
        if rows.is_empty() {
            return;
        }
        let taken = rows.len();
        self.recorder.restore(rows);
        self.recorder.flushing.fetch_sub(taken, Relaxed);
        self.recorder.flush_failures.fetch_add(1, Relaxed);
        self.recorder.flush_failures_total.fetch_add(1, Relaxed);
    }
}

/// A poisoned shard still holds valid counts (every update is a plain addition).
fn lock(shard: &Mutex<Shard>) -> MutexGuard<'_, Shard> {
    shard.lock().unwrap_or_else(PoisonError::into_inner)
}

pub fn minute_of(now: UnixMs) -> UnixMs {
    now - now.rem_euclid(MINUTE_MS)
}

pub fn hour_of(now: UnixMs) -> UnixMs {
    now - now.rem_euclid(HOUR_MS)
}

pub fn day_of(now: UnixMs) -> UnixMs {
    now - now.rem_euclid(DAY_MS)
}

/// One flush's rows, merged per rollup: what the store adds to each of its four tables.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Rollups {
    /// Per minute, every dimension.
    pub minutes: Vec<StatsRow>,
    /// Per hour, every dimension.
    pub hours: Vec<StatsRow>,
    /// Per hour, without key and token: what dashboards read.
    pub hour_summary: Vec<StatsRow>,
    /// All time, without key and token (`bucket` 0).
    pub totals: Vec<StatsRow>,
}

impl Rollups {
    pub fn of(rows: &[StatsRow]) -> Self {
        let merge = |bucket: fn(UnixMs) -> UnixMs, keep_ids: bool| {
            let mut merged: HashMap<(UnixMs, Dims), Tally> = HashMap::new();
            for row in rows {
                let mut dims = row.dims.clone();
                if !keep_ids {
                    dims.key = None;
                    dims.token = None;
                }
                merged.entry((bucket(row.bucket), dims)).or_default().add(&row.tally);
            }
            let mut out: Vec<StatsRow> =
                merged.into_iter().map(|((bucket, dims), tally)| StatsRow { bucket, dims, tally }).collect();
            // A stable order: concurrent flushes of several gateways lock rows in the same order.
            out.sort_by(|a, b| row_order(a).cmp(&row_order(b)));
            out
        };
        Self {
            minutes: merge(minute_of, true),
            hours: merge(hour_of, true),
            hour_summary: merge(hour_of, false),
            totals: merge(|_| 0, false),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.minutes.is_empty() && self.hours.is_empty() && self.hour_summary.is_empty() && self.totals.is_empty()
    }
}

type RowOrder<'a> = (UnixMs, Kind, &'a str, &'a str, Option<KeyId>, Option<TokenId>, u16, Outcome);

fn row_order(row: &StatsRow) -> RowOrder<'_> {
    let d = &row.dims;
    (row.bucket, d.kind, d.provider.as_ref(), &d.model, d.key, d.token, d.status, d.outcome)
}

#[cfg(test)]
mod tests;
