//! Cumulative figures for `/metrics`: counters that only grow and latency histograms, kept in
//! memory for the life of the process (Prometheus computes rates from them).

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, PoisonError};

use super::{Dims, Kind, Outcome, Timing};
use crate::provider::ProviderName;

/// Upper bounds of the latency buckets, in seconds (Prometheus' unit).
pub const LATENCY_BOUNDS: [f64; 14] =
    [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0];
/// Upper bounds of the gateway-overhead buckets, in seconds: the gateway's own time is
/// micro- to milliseconds.
pub const OVERHEAD_BOUNDS: [f64; 12] =
    [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5];

#[derive(Clone, Debug, PartialEq)]
pub struct Histogram {
    pub bounds: &'static [f64],
    /// Per bucket (not cumulative); the last one is `+Inf`.
    pub counts: Vec<u64>,
    pub sum: f64,
    pub count: u64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Self {
        Self { bounds, counts: vec![0; bounds.len() + 1], sum: 0.0, count: 0 }
    }

    fn observe(&mut self, seconds: f64) {
        let bucket = self.bounds.iter().position(|&b| seconds <= b).unwrap_or(self.bounds.len());
        self.counts[bucket] += 1;
        self.sum += seconds;
        self.count += 1;
    }
}

/// The labels of a request or attempt counter.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CounterLabels {
    pub kind: Kind,
    pub provider: ProviderName,
    pub model: Arc<str>,
    pub status: u16,
    pub outcome: Outcome,
}

/// Which latency a histogram measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Measure {
    /// Whole client requests, first byte in to last byte out.
    RequestDuration,
    /// Client requests, to the first byte out.
    TimeToFirstByte,
    /// The time of a request not spent waiting for upstreams.
    GatewayOverhead,
    /// One upstream attempt, up to the answer the gateway acted on.
    UpstreamDuration,
}

impl Measure {
    pub fn name(self) -> &'static str {
        match self {
            Self::RequestDuration => "pool_request_duration_seconds",
            Self::TimeToFirstByte => "pool_request_ttfb_seconds",
            Self::GatewayOverhead => "pool_gateway_overhead_seconds",
            Self::UpstreamDuration => "pool_upstream_duration_seconds",
        }
    }

    pub fn help(self) -> &'static str {
        match self {
            Self::RequestDuration => "Client request latency, first byte in to last byte out",
            Self::TimeToFirstByte => "Client request time to the first byte of the answer",
            Self::GatewayOverhead => "Time of a client request not spent waiting for upstreams",
            Self::UpstreamDuration => "Upstream attempt latency, up to the answer the gateway acted on",
        }
    }

    fn bounds(self) -> &'static [f64] {
        match self {
            Self::GatewayOverhead => &OVERHEAD_BOUNDS,
            _ => &LATENCY_BOUNDS,
        }
    }
}

#[derive(Default)]
struct Inner {
    counters: HashMap<CounterLabels, u64>,
    histograms: HashMap<(Measure, ProviderName), Histogram>,
}

impl Inner {
    fn observe(&mut self, measure: Measure, provider: &ProviderName, seconds: f64) {
        let histogram =
            self.histograms.entry((measure, provider.clone())).or_insert_with(|| Histogram::new(measure.bounds()));
        histogram.observe(seconds);
    }
}

/// What `/metrics` reads, in a stable order.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    pub counters: Vec<(CounterLabels, u64)>,
    pub histograms: Vec<(Measure, ProviderName, Histogram)>,
    pub in_flight: i64,
}

#[derive(Default)]
pub struct Metrics {
    inner: Mutex<Inner>,
    in_flight: AtomicI64,
}

impl Metrics {
    pub(super) fn observe_request(&self, dims: &Dims, timing: Timing) {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        *inner.counters.entry(labels(dims)).or_default() += 1;
        inner.observe(Measure::RequestDuration, &dims.provider, micros(timing.total_us));
        if dims.outcome != Outcome::Rejected {
            inner.observe(Measure::TimeToFirstByte, &dims.provider, micros(timing.ttfb_us));
            inner.observe(Measure::GatewayOverhead, &dims.provider, micros(timing.overhead_us));
        }
    }

    pub(super) fn observe_attempt(&self, dims: &Dims, upstream_us: u64) {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        *inner.counters.entry(labels(dims)).or_default() += 1;
        inner.observe(Measure::UpstreamDuration, &dims.provider, micros(upstream_us));
    }

    /// A request entered the proxy; [`Self::leave`] when its answer is complete.
    pub fn enter(&self) {
        self.in_flight.fetch_add(1, Relaxed);
    }

    pub fn leave(&self) {
        self.in_flight.fetch_sub(1, Relaxed);
    }

    pub fn snapshot(&self) -> Snapshot {
        let inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let mut counters: Vec<_> = inner.counters.iter().map(|(l, n)| (l.clone(), *n)).collect();
        let mut histograms: Vec<_> = inner.histograms.iter().map(|((m, p), h)| (*m, p.clone(), h.clone())).collect();
        drop(inner);
        counters.sort_by(|a, b| a.0.cmp(&b.0));
        histograms.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
        Snapshot { counters, histograms, in_flight: self.in_flight.load(Relaxed) }
    }
}

fn labels(dims: &Dims) -> CounterLabels {
    CounterLabels {
        kind: dims.kind,
        provider: dims.provider.clone(),
        model: Arc::clone(&dims.model),
        status: dims.status,
        outcome: dims.outcome,
    }
}

#[expect(clippy::cast_precision_loss, reason = "latencies far below 2^52 microseconds")]
fn micros(us: u64) -> f64 {
    us as f64 / 1_000_000.0
}
