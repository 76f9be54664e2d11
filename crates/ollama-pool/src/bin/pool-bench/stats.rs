//! Latency percentiles over every sample of a run. A run holds at most a few tens of thousands
//! of samples, so a sorted `Vec` is exact and cheap; no bucketed histogram is needed.

use std::time::Duration;

#[derive(Clone, Copy, Debug)]
pub struct Percentiles {
    pub p50: Duration,
    pub p90: Duration,
    pub p95: Duration,
    pub p99: Duration,
    pub max: Duration,
}

impl Percentiles {
    /// Nearest-rank percentiles; `None` without samples.
    pub fn of(mut samples: Vec<Duration>) -> Option<Percentiles> {
        samples.sort_unstable();
        let max = *samples.last()?;
        let at = |p: f64| {
            let rank = (p * samples.len() as f64).ceil() as usize;
            samples[rank.clamp(1, samples.len()) - 1]
        };
        Some(Percentiles { p50: at(0.50), p90: at(0.90), p95: at(0.95), p99: at(0.99), max })
    }
}

/// A duration in milliseconds, for tables and JSON.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// `a - b` in milliseconds; negative when `a` is faster.
pub fn diff_ms(a: Duration, b: Duration) -> f64 {
    ms(a) - ms(b)
}
