//! Latency at a fixed rate: an open loop whose ticker starts request `i` at `t0 + i / rate`
//! whatever happened to the earlier ones, and whose latency runs from that scheduled start to
//! the last byte of the answer. A slow answer therefore cannot delay (and hide) the requests
//! queued behind it: the coordinated-omission trap of closed-loop latency tools.
//!
//! The ticker is a blocking thread sleeping with `std::thread::sleep` (tens of microseconds
//! of slack on Linux) rather than a tokio interval, whose timer wheel ticks in whole
//! milliseconds; each start is spawned onto the runtime through a `TaskTracker`.
//!
//! Several targets are compared in interleaved one-second slices ([`interleaved`]), each at
//! the full rate, in an order that rotates every round. A virtual machine's speed drifts over
//! tens of seconds; measured one after the other, the targets' p50s moved by more than the
//! difference being measured (0.04 to 0.18 ms of "added" latency for the same build).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::runtime::Handle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::http::{CHAT, Client, Target, send};
use crate::stats::Percentiles;

/// Requests allowed in flight before the ticker skips starts (counted as errors). Past this
/// the target is plainly overloaded, and each request holds a socket in this process and two
/// in the gateway, within the 4,096 open files `procs::check_open_files` insists on.
const MAX_IN_FLIGHT: usize = 1500;
/// Longest wait for one answer; it bounds the drain after the last start.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// The recorded outcomes of the measured requests.
#[derive(Default)]
struct Samples {
    latencies: Vec<Duration>,
    /// How late each request really started (ticker and runtime delay): a check on the
    /// generator itself, since its lag counts as latency.
    lags: Vec<Duration>,
    errors: u64,
    first_error: Option<String>,
}

impl Samples {
    fn error(&mut self, message: String) {
        self.errors += 1;
        self.first_error.get_or_insert(message);
    }

    fn merge(&mut self, other: Samples) {
        self.latencies.extend(other.latencies);
        self.lags.extend(other.lags);
        self.errors += other.errors;
        if let Some(message) = other.first_error {
            self.first_error.get_or_insert(message);
        }
    }
}

#[derive(Debug)]
pub struct LatencyResult {
    pub rate: u32,
    pub ok: u64,
    pub errors: u64,
    pub first_error: Option<String>,
    /// 200 answers per second of the measured window.
    pub achieved: f64,
    pub percentiles: Option<Percentiles>,
    pub lag: Option<Percentiles>,
}

/// The schedule of one run: `warmup` starts not recorded, then `measured` recorded ones.
#[derive(Clone, Copy)]
struct Plan {
    t0: Instant,
    rate: u64,
    warmup: u64,
    measured: u64,
}

impl Plan {
    fn at(self, i: u64) -> Instant {
        self.t0 + Duration::from_nanos(i * 1_000_000_000 / self.rate)
    }
}

/// What every request task shares.
#[derive(Clone)]
struct Shared {
    client: Client,
    target: Target,
    body: Bytes,
    samples: Arc<Mutex<Samples>>,
    in_flight: Arc<AtomicUsize>,
    /// Cancelled when the run is dropped (Ctrl-C), so that the ticker thread stops too.
    stop: CancellationToken,
}

/// Measures `targets` at `rate` for `duration` each, after `warmup` each, in interleaved
/// one-second slices; the results are in the order of `targets`.
pub async fn interleaved<const N: usize>(
    client: &Client,
    targets: [&Target; N],
    rate: u32,
    warmup: Duration,
    duration: Duration,
) -> anyhow::Result<[LatencyResult; N]> {
    const SLICE: Duration = Duration::from_secs(1);
    let mut samples: [Samples; N] = std::array::from_fn(|_| Samples::default());
    for target in targets {
        run(client, target, rate, warmup, Duration::ZERO).await?;
    }
    let rounds = duration.as_secs().max(1);
    for round in 0..rounds {
        for k in 0..N {
            // Rotate the order so that no target always follows the same one.
            let i = (k + usize::try_from(round)?) % N;
            samples[i].merge(run(client, targets[i], rate, Duration::ZERO, SLICE).await?);
        }
    }
    let measured = SLICE * u32::try_from(rounds)?;
    Ok(samples.map(|s| result(rate, measured, s)))
}

/// One open-loop run of `target`: `warmup` unrecorded, then `measured` recorded.
async fn run(
    client: &Client,
    target: &Target,
    rate: u32,
    warmup: Duration,
    measured: Duration,
) -> anyhow::Result<Samples> {
    let rate64 = u64::from(rate);
    let plan = Plan {
        t0: Instant::now() + Duration::from_millis(10),
        rate: rate64,
        warmup: rate64 * warmup.as_secs(),
        measured: rate64 * measured.as_secs(),
    };
    let shared = Shared {
        client: client.clone(),
        target: target.clone(),
        body: Bytes::from_static(CHAT.as_bytes()),
        samples: Arc::new(Mutex::new(Samples {
            latencies: Vec::with_capacity(usize::try_from(plan.measured)?),
            lags: Vec::with_capacity(usize::try_from(plan.measured)?),
            ..Samples::default()
        })),
        in_flight: Arc::default(),
        stop: CancellationToken::new(),
    };
    let _stop_ticker = shared.stop.clone().drop_guard();
    let tracker = TaskTracker::new();
    let ticker = {
        let (tracker2, shared, handle) = (tracker.clone(), shared.clone(), Handle::current());
        tracker.spawn_blocking(move || tick(plan, &shared, &tracker2, &handle))
    };
    ticker.await?;
    tracker.close();
    tracker.wait().await;
    let samples = std::mem::take(&mut *shared.samples.lock().unwrap_or_else(PoisonError::into_inner));
    Ok(samples)
}

fn result(rate: u32, duration: Duration, samples: Samples) -> LatencyResult {
    let ok = samples.latencies.len() as u64;
    LatencyResult {
        rate,
        ok,
        errors: samples.errors,
        first_error: samples.first_error,
        achieved: ok as f64 / duration.as_secs_f64(),
        percentiles: Percentiles::of(samples.latencies),
        lag: Percentiles::of(samples.lags),
    }
}

/// Starts every request of `plan` at its time (or at once, when the ticker is late).
fn tick(plan: Plan, shared: &Shared, tracker: &TaskTracker, handle: &Handle) {
    for i in 0..plan.warmup + plan.measured {
        if shared.stop.is_cancelled() {
            return;
        }
        let at = plan.at(i);
        let now = Instant::now();
        if at > now {
            std::thread::sleep(at - now);
        }
        let record = i >= plan.warmup;
        if shared.in_flight.load(Ordering::Relaxed) >= MAX_IN_FLIGHT {
            if record {
                lock(&shared.samples).error(format!("skipped: {MAX_IN_FLIGHT} requests in flight"));
            }
            continue;
        }
        shared.in_flight.fetch_add(1, Ordering::Relaxed);
        tracker.spawn_on(one(shared.clone(), i as usize, at, record), handle);
    }
}

async fn one(shared: Shared, i: usize, scheduled: Instant, record: bool) {
    let lag = scheduled.elapsed();
    let request = shared.target.pooled(i, &shared.body);
    let outcome = tokio::time::timeout(REQUEST_TIMEOUT, send(&shared.client, request)).await;
    let latency = scheduled.elapsed();
    shared.in_flight.fetch_sub(1, Ordering::Relaxed);
    if !record {
        return;
    }
    let mut samples = lock(&shared.samples);
    match outcome {
        Ok(Ok(())) => {
            samples.latencies.push(latency);
            samples.lags.push(lag);
        }
        Ok(Err(e)) => samples.error(e),
        Err(_) => samples.error(format!("no answer within {REQUEST_TIMEOUT:?}")),
    }
}

fn lock(samples: &Mutex<Samples>) -> std::sync::MutexGuard<'_, Samples> {
    samples.lock().unwrap_or_else(PoisonError::into_inner)
}
