//! The key pools and the selector of the hot path.
//!
//! Each provider has one [`KeyPool`]: an `ArcSwap` snapshot of its keys, replaced whole when an
//! operator adds or removes keys, and an atomic cursor. Picking a key is a load of the snapshot, a
//! `fetch_add` on the cursor and a scan from there to the first key that is eligible now and not
//! yet tried by this request; no lock is taken unless a key's health changes.
//!
//! A key's health lives in a `std::sync::Mutex` (never held across an await) mirrored by an atomic
//! `blocked_until`, so the selector reads one atomic per key it looks at.
//!
//! A key may also carry an operator's limits (requests per minute, requests at once). A key at
//! its limit is skipped like a held one, but nothing is recorded against it: it is not failing,
//! it is busy. The pick takes the key's slot and rate through the [`Limiter`] and hands it out
//! with the key, to be held for the attempt (and, for a stream, until the stream ends).

use std::collections::HashMap;
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, AtomicU64, AtomicUsize};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};

use arc_swap::{ArcSwap, ArcSwapOption};

use crate::UnixMs;
use crate::ids::KeyId;
use crate::key::{FailurePolicy, Health, HoldCause, KeyEvent, KeyStatus, Recent};
use crate::limit::{Admission, Limiter, Limits, Subject};
use crate::model_name;
pub use crate::models::ModelSet;
use crate::models::{ModelIndex, ServedModel, served_models};
use crate::provider::{ProviderName, ProviderSpec};
use crate::secret::{Secret, SecretHash};

/// One upstream key as the running gateway holds it.
#[derive(Debug)]
pub struct PoolKey {
    pub id: KeyId,
    pub provider: ProviderName,
    pub secret: Secret,
    /// SHA-256 of the secret: how a key given back by an operator is found, and how duplicates
    /// are recognised without comparing secrets.
    pub secret_hash: SecretHash,
    /// An operator's name for the key; editable, so behind an `ArcSwapOption`.
    label: ArcSwapOption<String>,
    pub created_at: UnixMs,
    pub expires_at: Option<UnixMs>,
    /// The operator's limits, 0 for none: atomics, so an edit applies to the next pick.
    rpm: AtomicU32,
    max_concurrent: AtomicU32,
    /// Mirror of `health.blocked_until()` for the selector.
    blocked_until: AtomicI64,
    /// When the key's hold is due to end (its half-open probe included): the `Retry-After` a
    /// client is told when no key is left. `i64::MAX` for an open-ended manual disable.
    returns_at: AtomicI64,
    /// Mirror of `health.is_clean()`: a success on a clean key takes no lock.
    clean: AtomicBool,
    /// Mirror of "held after a run of errors": the selector's last resort when nothing else is left.
    resting_after_errors: AtomicBool,
    /// When an attempt on it last failed in a way that holds nothing (a 5xx, a reset, a
    /// timeout): see [`PoolKey::suspect`].
    last_transient: AtomicI64,
    health: Mutex<Health>,
    /// The key's attempts in the recent window, judged on each error.
    window: ErrorWindow,
    /// The pool this key is in, told when the key's eligibility changes.
    pool: OnceLock<Arc<PoolSignal>>,
    /// Set when `health` changed since the last flush to the store.
    health_dirty: AtomicBool,
    /// The models this key is known to serve; `None` until discovered (then it may serve any).
    models: ArcSwapOption<ModelSet>,
    /// Set when `models` changed since the last flush to the store.
    models_dirty: AtomicBool,
    pub counters: KeyCounters,
}

/// An operator's limits on one upstream key; `None`: no limit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KeyLimits {
    /// Requests per minute sent with this key (a burst of `rpm`, then one every `60 / rpm` s).
    pub rpm: Option<u32>,
    /// Requests in flight with this key at once (a stream counts until it ends).
    pub max_concurrent: Option<u32>,
}

impl KeyLimits {
    pub fn is_unlimited(&self) -> bool {
        self.as_limits().is_unlimited()
    }

    pub fn as_limits(&self) -> Limits {
        Limits { rpm: self.rpm, max_concurrent: self.max_concurrent, ..Limits::default() }
    }
}

/// Exact per-key counters. Totals include what the store held at start; `pending` holds what
/// has not been flushed yet.
#[derive(Debug, Default)]
pub struct KeyCounters {
    pub requests: AtomicU64,
    pub successes: AtomicU64,
    pub failures: AtomicU64,
    pub last_used: AtomicI64,
    pub last_success: AtomicI64,
    pub last_failure: AtomicI64,
    pending_requests: AtomicU64,
    pending_successes: AtomicU64,
    pending_failures: AtomicU64,
}

/// Counter values as loaded from the store.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CounterValues {
    pub requests: u64,
    pub successes: u64,
    pub failures: u64,
    pub last_used: Option<UnixMs>,
    pub last_success: Option<UnixMs>,
    pub last_failure: Option<UnixMs>,
}

/// What a flush takes from a key: counter deltas, and the health and models when they changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyDelta {
    pub id: KeyId,
    pub counters: CounterValues,
    pub health: Option<Health>,
    /// `Some(list)` when the model list changed (`Some(None)`: no list any more).
    pub models: Option<Option<ModelSet>>,
}

impl PoolKey {
    pub fn new(
        id: KeyId,
        provider: ProviderName,
        secret: Secret,
        label: Option<String>,
        created_at: UnixMs,
        expires_at: Option<UnixMs>,
    ) -> Self {
        let secret_hash = crate::secret::hash_secret(secret.expose_secret());
        Self {
            id,
            provider,
            secret,
            secret_hash,
            label: ArcSwapOption::new(label.map(Arc::new)),
            created_at,
            expires_at,
            rpm: AtomicU32::new(0),
            max_concurrent: AtomicU32::new(0),
            blocked_until: AtomicI64::new(0),
            returns_at: AtomicI64::new(0),
            clean: AtomicBool::new(true),
            resting_after_errors: AtomicBool::new(false),
            last_transient: AtomicI64::new(0),
            health: Mutex::new(Health::default()),
            window: ErrorWindow::default(),
            pool: OnceLock::new(),
            health_dirty: AtomicBool::new(false),
            models: ArcSwapOption::empty(),
            models_dirty: AtomicBool::new(false),
            counters: KeyCounters::default(),
        }
    }

    /// Restores what the store remembered (at start).
    pub fn with_state(self, health: Health, counters: &CounterValues, models: Option<ModelSet>) -> Self {
        self.models.store(models.map(Arc::new));
        self.mirror(&health);
        *self.lock_health() = health;
        let c = &self.counters;
        c.requests.store(counters.requests, Relaxed);
        c.successes.store(counters.successes, Relaxed);
        c.failures.store(counters.failures, Relaxed);
        c.last_used.store(counters.last_used.unwrap_or(0), Relaxed);
        c.last_success.store(counters.last_success.unwrap_or(0), Relaxed);
        c.last_failure.store(counters.last_failure.unwrap_or(0), Relaxed);
        self
    }

    pub fn is_expired(&self, now: UnixMs) -> bool {
        self.expires_at.is_some_and(|at| at <= now)
    }

    pub fn label(&self) -> Option<Arc<String>> {
        self.label.load_full()
    }

    pub fn set_label(&self, label: Option<String>) {
        self.label.store(label.map(Arc::new));
    }

    pub fn limits(&self) -> KeyLimits {
        let nonzero = |n: u32| (n > 0).then_some(n);
        KeyLimits { rpm: nonzero(self.rpm.load(Relaxed)), max_concurrent: nonzero(self.max_concurrent.load(Relaxed)) }
    }

    /// Replaces the limits; the next pick applies them.
    pub fn set_limits(&self, limits: KeyLimits) {
        self.rpm.store(limits.rpm.unwrap_or(0), Relaxed);
        self.max_concurrent.store(limits.max_concurrent.unwrap_or(0), Relaxed);
    }

    /// Takes this key's rate and a slot for one attempt, or says when it could have them. A key
    /// without limits never touches the limiter.
    pub fn admit(&self, limiter: &dyn Limiter, now: UnixMs) -> Result<Admission, UnixMs> {
        let limits = self.limits();
        if limits.is_unlimited() {
            return Ok(Admission::unlimited());
        }
        limiter.admit(Subject::Key(self.id), &limits.as_limits(), now).map_err(|refusal| now + refusal.retry_after_ms)
    }

    /// When this key's limits would let an attempt through (`now` if they would now).
    fn limits_ready_at(&self, limiter: &dyn Limiter, now: UnixMs) -> UnixMs {
        let limits = self.limits();
        if limits.is_unlimited() { now } else { limiter.ready_at(Subject::Key(self.id), &limits.as_limits(), now) }
    }

    /// May the selector pick this key now?
    pub fn is_eligible(&self, now: UnixMs) -> bool {
        self.blocked_until.load(Acquire) <= now && !self.is_expired(now)
    }

    /// Does this key serve `model` (a canonical name)? A key whose models were never discovered
    /// may serve any.
    pub fn serves(&self, model: Option<&str>) -> bool {
        match (model, &*self.models.load()) {
            (Some(model), Some(set)) => set.names.contains(model),
            _ => true,
        }
    }

    /// Does this key's discovered list name `model`? (An undiscovered key lists nothing.)
    pub fn lists(&self, model: &str) -> bool {
        self.models.load().as_ref().is_some_and(|set| set.names.contains(model))
    }

    pub fn models(&self) -> Option<Arc<ModelSet>> {
        self.models.load_full()
    }

    /// Records what a discovery found. Discovery goes through [`Pools::set_models`], which also
    /// tells the pool's [`ModelIndex`].
    pub fn set_models(&self, models: Option<ModelSet>) {
        self.models.store(models.map(Arc::new));
        self.models_dirty.store(true, Relaxed);
    }

    /// Takes the model list when it changed since the last flush.
    fn take_models_change(&self) -> Option<Option<ModelSet>> {
        self.models_dirty.swap(false, Relaxed).then(|| self.models().map(|m| ModelSet::clone(&m)))
    }

    pub fn status(&self, now: UnixMs) -> KeyStatus {
        if self.is_expired(now) { KeyStatus::Expired } else { self.lock_health().status(now) }
    }

    pub fn health(&self) -> Health {
        self.lock_health().clone()
    }

    /// Counts an attempt on this key as it starts.
    pub fn begin_attempt(&self, now: UnixMs) {
        let c = &self.counters;
        c.requests.fetch_add(1, Relaxed);
        c.pending_requests.fetch_add(1, Relaxed);
        c.last_used.fetch_max(now, Relaxed);
    }

    /// Records how an attempt ended: its counters, then its judgement ([`PoolKey::judge`]).
    pub fn record(&self, event: &KeyEvent, policy: &FailurePolicy, now: UnixMs) {
        self.count(event);
        self.judge(event, policy, now);
    }

    /// Counts an ended attempt as served or failed, for the key's statistics. A stream is
    /// counted when it ends ([`PoolKey::judge`] saw its success when it began).
    pub fn count(&self, event: &KeyEvent) {
        let c = &self.counters;
        let (total, pending) = match event {
            KeyEvent::Neutral => return,
            KeyEvent::Success => (&c.successes, &c.pending_successes),
            KeyEvent::RateLimited { .. } | KeyEvent::Rejected { .. } | KeyEvent::Transient { .. } => {
                (&c.failures, &c.pending_failures)
            }
        };
        total.fetch_add(1, Relaxed);
        pending.fetch_add(1, Relaxed);
    }

    /// What an outcome says about the key's health: the last success or failure, the recent
    /// window, then the health transition. A success on a clean key writes two atomics and
    /// takes no lock. A stream is judged a success as soon as its first event arrived: it lasts
    /// seconds, and errors of other requests meanwhile must not judge the key without it.
    pub fn judge(&self, event: &KeyEvent, policy: &FailurePolicy, now: UnixMs) {
        let c = &self.counters;
        let width = policy.errors_window_ms / WINDOW_BUCKETS as i64;
        let recent = match event {
            KeyEvent::Neutral => return,
            KeyEvent::Success => {
                c.last_success.fetch_max(now, Relaxed);
                self.window.add(now, width, false);
                if let Some(pool) = self.pool.get().filter(|pool| pool.degraded.load(Relaxed)) {
                    // The upstream is back: every rest after errors is lifted at the next pick.
                    pool.errors_cleared.store(true, Relaxed);
                }
                if self.clean.load(Relaxed) {
                    return;
                }
                Recent::default()
            }
            KeyEvent::RateLimited { .. } | KeyEvent::Rejected { .. } | KeyEvent::Transient { .. } => {
                c.last_failure.fetch_max(now, Relaxed);
                if matches!(event, KeyEvent::Transient { .. }) {
                    self.last_transient.fetch_max(now, Relaxed);
                }
                if !matches!(event, KeyEvent::Transient { .. }) {
                    Recent::default()
                } else if self.pool.get().is_some_and(|pool| pool.degraded.load(Relaxed)) {
                    // Every key of the pool rests after errors: the upstream is out, not this
                    // key. Its errors now add no strikes, so the outage cannot escalate every
                    // key to an hour's disable; the first success ends it for all.
                    return;
                } else {
                    self.window.add(now, width, true)
                }
            }
        };
        self.update_health(|h| {
            if h.apply(event, recent, policy, now) {
                self.window.clear();
            }
        });
    }

    /// Applies an operator's change (enable, disable), a probe's verdict or an attempt's
    /// transition; a change is logged, mirrored for the selector and marked for the next flush.
    pub fn update_health(&self, change: impl FnOnce(&mut Health)) {
        let mut health = self.lock_health();
        let before = health.clone();
        change(&mut health);
        if *health == before {
            return;
        }
        self.mirror(&health);
        self.health_dirty.store(true, Relaxed);
        let was_resting_after_errors = before.hold.as_ref().is_some_and(|h| h.cause == HoldCause::Errors);
        let hold_changed = before.hold != health.hold;
        let after = health.hold.clone();
        drop(health);
        if let Some(pool) = self.pool.get() {
            pool.stale.store(true, Relaxed);
            if was_resting_after_errors && after.is_none() {
                pool.errors_cleared.store(true, Relaxed);
            }
        }
        if hold_changed {
            log_transition(self, after.as_ref());
        }
    }

    /// `blocked_until` is stored last, with release: a pick that sees a key blocked (acquire)
    /// also sees why, so a key that just began to rest after errors is still a last resort.
    fn mirror(&self, health: &Health) {
        let returns_at = health.hold.as_ref().map_or(0, |h| h.until.unwrap_or(UnixMs::MAX));
        self.returns_at.store(returns_at, Relaxed);
        self.clean.store(health.is_clean(), Relaxed);
        let errors = health.hold.as_ref().is_some_and(|h| h.cause == HoldCause::Errors && !h.probe);
        self.resting_after_errors.store(errors, Relaxed);
        self.blocked_until.store(health.blocked_until(), Release);
    }

    /// Its last attempt that ended served: the key to prefer after a failure.
    fn proven(&self) -> bool {
        let c = &self.counters;
        c.last_success.load(Relaxed) > c.last_failure.load(Relaxed)
    }

    /// Its last attempt failed without a hold (a 5xx, a reset, a timeout), less than
    /// [`SUSPECT_MS`] ago: a new request tries other keys first. Keys that begin to fail
    /// together (resets on several keys at once) otherwise get fresh requests until the error
    /// judgement rests them, and one request can meet one of them on every attempt it may
    /// make. (A failure that holds the key, a 429 or a 401, keeps it out of rotation already.)
    fn suspect(&self, now: UnixMs) -> bool {
        let failed = self.last_transient.load(Relaxed);
        failed > self.counters.last_success.load(Relaxed) && now - failed < SUSPECT_MS
    }

    /// Takes what changed since the last flush; `None` when nothing did.
    pub fn take_delta(&self) -> Option<KeyDelta> {
        let c = &self.counters;
        let counters = CounterValues {
            requests: c.pending_requests.swap(0, Relaxed),
            successes: c.pending_successes.swap(0, Relaxed),
            failures: c.pending_failures.swap(0, Relaxed),
            last_used: nonzero(c.last_used.load(Relaxed)),
            last_success: nonzero(c.last_success.load(Relaxed)),
            last_failure: nonzero(c.last_failure.load(Relaxed)),
        };
        let health = self.health_dirty.swap(false, Relaxed).then(|| self.health());
        let models = self.take_models_change();
        let idle = counters.requests == 0 && counters.successes == 0 && counters.failures == 0;
        (!idle || health.is_some() || models.is_some()).then_some(KeyDelta { id: self.id, counters, health, models })
    }

    /// Gives a delta back after a failed flush, so nothing is lost.
    pub fn restore_delta(&self, delta: &KeyDelta) {
        let c = &self.counters;
        c.pending_requests.fetch_add(delta.counters.requests, Relaxed);
        c.pending_successes.fetch_add(delta.counters.successes, Relaxed);
        c.pending_failures.fetch_add(delta.counters.failures, Relaxed);
        if delta.health.is_some() {
            self.health_dirty.store(true, Relaxed);
        }
        if delta.models.is_some() {
            self.models_dirty.store(true, Relaxed);
        }
    }

    fn lock_health(&self) -> MutexGuard<'_, Health> {
        self.health.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn nonzero(ms: UnixMs) -> Option<UnixMs> {
    (ms != 0).then_some(ms)
}

/// Every change of a key's hold, at `info`, with the key's id, the reason and the end: an
/// operator reads why a key is out from the log as well as from the API. No secret is logged.
fn log_transition(key: &PoolKey, hold: Option<&crate::key::Hold>) {
    match hold {
        Some(hold) => tracing::info!(
            key.id = %key.id,
            provider = %key.provider,
            status = hold.status.as_str(),
            cause = hold.cause.as_str(),
            reason = %hold.reason,
            until = hold.until,
            probe_before_serving = hold.probe,
            "key held"
        ),
        None => tracing::info!(key.id = %key.id, provider = %key.provider, "key back in rotation"),
    }
}

/// Buckets of a key's error window.
const WINDOW_BUCKETS: usize = 6;

/// A key's recent attempts: successes and failures per bucket of a sliding window, each bucket
/// one atomic word (bucket number, successes, failures), so recording takes no lock.
#[derive(Debug, Default)]
struct ErrorWindow {
    buckets: [AtomicU64; WINDOW_BUCKETS],
}

impl ErrorWindow {
    fn pack(epoch: u32, successes: u16, failures: u16) -> u64 {
        (u64::from(epoch) << 32) | (u64::from(successes) << 16) | u64::from(failures)
    }

    fn unpack(word: u64) -> (u32, u16, u16) {
        ((word >> 32) as u32, (word >> 16) as u16, word as u16)
    }

    /// Counts one attempt; for a failure, returns the window's totals, this one included.
    fn add(&self, now: UnixMs, width_ms: i64, failed: bool) -> Recent {
        let epoch = u32::try_from(now / width_ms.max(1)).unwrap_or(u32::MAX).max(1);
        let slot = &self.buckets[epoch as usize % WINDOW_BUCKETS];
        let mut current = slot.load(Relaxed);
        loop {
            let (at, mut successes, mut failures) = Self::unpack(current);
            if at != epoch {
                (successes, failures) = (0, 0);
            }
            if failed {
                failures = failures.saturating_add(1);
            } else {
                successes = successes.saturating_add(1);
            }
            match slot.compare_exchange_weak(current, Self::pack(epoch, successes, failures), Relaxed, Relaxed) {
                Ok(_) => break,
                Err(seen) => current = seen,
            }
        }
        if !failed {
            return Recent::default();
        }
        let oldest = epoch.saturating_sub(WINDOW_BUCKETS as u32 - 1);
        self.buckets
            .iter()
            .map(|b| Self::unpack(b.load(Relaxed)))
            .filter(|(at, ..)| (oldest..=epoch).contains(at))
            .fold(Recent::default(), |sum, (_, s, f)| Recent {
                successes: sum.successes + u32::from(s),
                failures: sum.failures + u32::from(f),
            })
    }

    fn clear(&self) {
        for bucket in &self.buckets {
            bucket.store(0, Relaxed);
        }
    }
}

/// The result of asking a pool for a key.
#[derive(Debug)]
pub enum Pick {
    /// A key, with its limits' admission: hold it for as long as the attempt runs.
    Key(Arc<PoolKey>, Admission),
    /// No eligible untried key. `retry_at` is when the earliest held or limited key comes back,
    /// if any will; `limited` says some key was passed over only because it was at its limit.
    Exhausted { retry_at: Option<UnixMs>, limited: bool },
    /// No key of the pool serves the requested model at all.
    Unserved,
}

/// What a pool's keys tell it: its list of ready keys is out of date, or a key resting after
/// errors has just served (the upstream is back).
#[derive(Debug, Default)]
struct PoolSignal {
    stale: AtomicBool,
    errors_cleared: AtomicBool,
    /// When the earliest held key's hold ends: the ready list must be rebuilt then.
    next_return: AtomicI64,
    last_rebuild: AtomicI64,
    /// Every key of the pool was resting after errors at the last pick (logged once).
    degraded: AtomicBool,
    rebuilding: Mutex<()>,
}

/// The least time between two rebuilds of the ready list while keys come and go, so a pool of
/// 100,000 keys whose holds end one by one does not rebuild on every pick. A key that returns
/// waits at most this long; a key that is held is skipped at once (the selector checks each
/// key it looks at).
const REBUILD_GAP_MS: UnixMs = 100;

/// The keys of one provider: all of them, and the snapshot of those ready now, which the
/// selector scans. Keys that rest are not in it, so a pick costs the same whether 1 % or 99 %
/// of the keys are out.
#[derive(Debug, Default)]
pub struct KeyPool {
    keys: ArcSwap<Vec<Arc<PoolKey>>>,
    ready: ArcSwap<Vec<Arc<PoolKey>>>,
    cursor: AtomicUsize,
    signal: Arc<PoolSignal>,
    /// The models the keys serve, kept current by `add`, `remove` and [`Pools::set_models`].
    pub models: ModelIndex,
    /// Attempts past a request's own budget, shared by the pool's requests.
    pub retries: RetryBudget,
}

/// Ambiguous attempts past [`FailurePolicy::max_attempts`], shared by every request of a pool
/// (gRPC's retry throttling, Finagle's retry budget). Each request a key serves earns a tenth
/// of an attempt, each attempt past a request's own budget spends one, and the pool holds at
/// most [`FailurePolicy::retry_budget`]. So a request that meets a run of keys which began to
/// fail together walks on to a healthy one, while an upstream failing for everyone drains the
/// budget and then sees at most `max_attempts` per request: retries add at most a tenth to the
/// load of a pool that serves, and a fixed burst to one that does not.
///
/// Kept as the debt against a full budget, in thousandths of an attempt, so a new pool starts
/// full and a pool that never fails never writes the line.
#[derive(Debug, Default)]
pub struct RetryBudget {
    debt_milli: AtomicU64,
}

const RETRY_COST_MILLI: u64 = 1000;
const RETRY_EARN_MILLI: u64 = 100;

impl RetryBudget {
    /// Spends one attempt if the pool has one left of `cap`.
    pub fn take(&self, cap: u32) -> bool {
        let limit = u64::from(cap) * RETRY_COST_MILLI;
        self.debt_milli
            .fetch_update(Relaxed, Relaxed, |debt| {
                (debt + RETRY_COST_MILLI <= limit).then_some(debt + RETRY_COST_MILLI)
            })
            .is_ok()
    }

    /// Gives back an attempt taken but not made (no key was left to try).
    pub fn refund(&self) {
        let _ = self.debt_milli.fetch_update(Relaxed, Relaxed, |debt| Some(debt.saturating_sub(RETRY_COST_MILLI)));
    }

    /// A request served: earns a tenth of an attempt back (no write while the budget is full).
    pub fn earn(&self) {
        if self.debt_milli.load(Relaxed) == 0 {
            return;
        }
        let _ = self.debt_milli.fetch_update(Relaxed, Relaxed, |debt| Some(debt.saturating_sub(RETRY_EARN_MILLI)));
    }

    /// Whole attempts left of `cap`.
    pub fn left(&self, cap: u32) -> u32 {
        let spent = self.debt_milli.load(Relaxed).div_ceil(RETRY_COST_MILLI);
        cap.saturating_sub(u32::try_from(spent).unwrap_or(u32::MAX))
    }
}

/// How many candidates a pick passes over for one it prefers: on a retry one whose last attempt
/// served, on a first attempt one that is not [`PoolKey::suspect`].
const PROVEN_LOOKAHEAD: usize = 16;

/// How long a key whose last attempt failed comes after the others for new requests.
const SUSPECT_MS: i64 = 2_000;

impl KeyPool {
    /// Round-robin over the ready keys that serve `model`, skipping those already tried by
    /// this request and those at their limits. A retry (`tried` not empty) prefers a key whose
    /// last attempt served; a first attempt prefers a key whose last attempt did not fail just
    /// now. When no key is ready and every one left is resting after errors,
    /// the one whose rest ends first is tried anyway: a pool is never empty by accident.
    pub fn pick(&self, now: UnixMs, tried: &[KeyId], model: Option<&str>, limiter: &dyn Limiter) -> Pick {
        self.refresh(now, false);
        let mut limited_until = match self.scan(now, tried, model, limiter) {
            Ok(pick) => return pick,
            Err(limited_until) => limited_until,
        };
        if self.refresh(now, true) {
            match self.scan(now, tried, model, limiter) {
                Ok(pick) => return pick,
                Err(until) => limited_until = earliest(limited_until, until),
            }
        }
        let keys = self.keys.load();
        if let Some(pick) = self.last_resort(&keys, now, tried, model, limiter) {
            return pick;
        }
        nothing_to_pick(&keys, now, tried, model, limited_until)
    }

    fn scan(
        &self,
        now: UnixMs,
        tried: &[KeyId],
        model: Option<&str>,
        limiter: &dyn Limiter,
    ) -> Result<Pick, Option<UnixMs>> {
        let keys = self.ready.load();
        let n = keys.len();
        if n == 0 {
            return Err(None);
        }
        let start = self.cursor.fetch_add(1, Relaxed) % n;
        let mut limited_until = None;
        let mut unproven: Vec<&Arc<PoolKey>> = Vec::new();
        for i in 0..n {
            let key = &keys[(start + i) % n];
            if !is_candidate(key, now, tried, model) {
                continue;
            }
            let deferred = if tried.is_empty() { key.suspect(now) } else { !key.proven() };
            if deferred && unproven.len() < PROVEN_LOOKAHEAD {
                unproven.push(key);
                continue;
            }
            match key.admit(limiter, now) {
                Ok(admission) => return Ok(Pick::Key(Arc::clone(key), admission)),
                Err(at) => limited_until = earliest(limited_until, Some(at)),
            }
        }
        for key in unproven {
            match key.admit(limiter, now) {
                Ok(admission) => return Ok(Pick::Key(Arc::clone(key), admission)),
                Err(at) => limited_until = earliest(limited_until, Some(at)),
            }
        }
        Err(limited_until)
    }

    /// The untried key resting after errors whose rest ends first, when no key is ready.
    fn last_resort(
        &self,
        keys: &[Arc<PoolKey>],
        now: UnixMs,
        tried: &[KeyId],
        model: Option<&str>,
        limiter: &dyn Limiter,
    ) -> Option<Pick> {
        let key = keys
            .iter()
            .filter(|k| k.resting_after_errors.load(Relaxed) && !k.is_expired(now))
            .filter(|k| !tried.contains(&k.id) && k.serves(model))
            .min_by_key(|k| k.blocked_until.load(Relaxed))?;
        let admission = key.admit(limiter, now).ok()?;
        if !self.signal.degraded.swap(true, Relaxed) {
            tracing::warn!(
                provider = %key.provider,
                "every usable key is resting after errors: trying the one whose rest ends first (provider degraded)"
            );
        }
        Some(Pick::Key(Arc::clone(key), admission))
    }

    /// Brings the ready list up to date when a key's eligibility changed or a hold has ended;
    /// `force` ignores the gap between rebuilds. Returns whether it rebuilt. A key resting
    /// after errors that served again means the upstream is back: every such rest is lifted.
    fn refresh(&self, now: UnixMs, force: bool) -> bool {
        let signal = &self.signal;
        // A load first: the hot path must not write a shared cache line on every pick.
        if signal.errors_cleared.load(Relaxed) && signal.errors_cleared.swap(false, Relaxed) {
            self.lift_error_rests();
        }
        let due = signal.stale.load(Relaxed) || now >= signal.next_return.load(Relaxed);
        if !due || (!force && now - signal.last_rebuild.load(Relaxed) < REBUILD_GAP_MS) {
            return false;
        }
        // Unforced, a pick that finds another rebuilding goes on with the list it has. Forced
        // (its scan found no key), it waits for the rebuild and scans again: a burst of first
        // requests after keys were added must not see the old, shorter list and answer 503.
        let _rebuilding = if force {
            let guard = signal.rebuilding.lock().unwrap_or_else(PoisonError::into_inner);
            if !(signal.stale.load(Relaxed) || now >= signal.next_return.load(Relaxed)) {
                return true;
            }
            guard
        } else {
            match signal.rebuilding.try_lock() {
                Ok(guard) => guard,
                Err(_) => return false,
            }
        };
        signal.stale.store(false, Relaxed);
        let keys = self.keys.load();
        let mut next_return = UnixMs::MAX;
        let ready: Vec<_> = keys
            .iter()
            .filter(|key| {
                let until = key.blocked_until.load(Relaxed);
                if until > now {
                    next_return = next_return.min(until);
                }
                until <= now && !key.is_expired(now)
            })
            .cloned()
            .collect();
        signal.next_return.store(next_return, Relaxed);
        signal.last_rebuild.store(now, Relaxed);
        self.ready.store(Arc::new(ready));
        true
    }

    fn lift_error_rests(&self) {
        let mut lifted = 0;
        for key in self.keys.load().iter().filter(|k| k.resting_after_errors.load(Relaxed)) {
            key.update_health(|h| {
                if h.hold.as_ref().is_some_and(|hold| hold.cause == HoldCause::Errors && !hold.probe) {
                    h.hold = None;
                }
            });
            lifted += 1;
        }
        if self.signal.degraded.swap(false, Relaxed) || lifted > 0 {
            tracing::info!(keys = lifted, "a key resting after errors served again: the upstream is back");
        }
    }

    /// When a key could next be picked for `model` (holds and limits both ended), if none can
    /// be now; `None` when one can now, or none ever will. Takes nothing.
    pub fn next_ready(&self, now: UnixMs, model: Option<&str>, limiter: &dyn Limiter) -> Option<UnixMs> {
        let mut earliest_at: Option<UnixMs> = None;
        for key in self.keys.load().iter().filter(|k| !k.is_expired(now) && k.serves(model)) {
            let (blocked, returns) = (key.blocked_until.load(Relaxed), key.returns_at.load(Relaxed));
            if returns == UnixMs::MAX {
                continue;
            }
            // A half-open key whose time is up returns when its probe passes: soon, not now.
            let held_until = if blocked > now { returns.max(now + 1) } else { blocked };
            let at = held_until.max(key.limits_ready_at(limiter, now));
            if at <= now {
                return None;
            }
            earliest_at = earliest(earliest_at, Some(at));
        }
        earliest_at
    }

    /// The union of the models this pool's keys serve; `None` when no key that has not
    /// expired has been discovered yet (the pool cannot say). Keys resting (cooling, failed)
    /// still count: they serve the model, they are just out for now.
    pub fn served_models(&self, now: UnixMs) -> Option<Vec<ServedModel>> {
        let keys = self.keys.load();
        let sets: Vec<Arc<ModelSet>> = keys.iter().filter(|k| !k.is_expired(now)).filter_map(|k| k.models()).collect();
        served_models(&sets)
    }

    pub fn snapshot(&self) -> Arc<Vec<Arc<PoolKey>>> {
        self.keys.load_full()
    }

    pub fn len(&self) -> usize {
        self.keys.load().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether every usable key was resting after errors at the last pick.
    pub fn is_degraded(&self) -> bool {
        self.signal.degraded.load(Relaxed)
    }

    /// Adds keys; the new snapshot is visible to the next pick.
    pub fn add(&self, new: Vec<Arc<PoolKey>>) {
        for key in &new {
            // A key belongs to one pool for its whole life; a second `set` cannot happen.
            let _ = key.pool.set(Arc::clone(&self.signal));
        }
        self.keys.rcu(|keys| {
            let mut next = Vec::with_capacity(keys.len() + new.len());
            next.extend(keys.iter().cloned());
            next.extend(new.iter().cloned());
            next
        });
        self.changed();
        let sets: Vec<Arc<ModelSet>> = new.iter().filter_map(|key| key.models()).collect();
        self.models.changed(&sets);
    }

    /// Removes the keys whose ids are listed; returns how many went.
    pub fn remove(&self, ids: &[KeyId]) -> usize {
        let gone: std::collections::HashSet<KeyId> = ids.iter().copied().collect();
        let mut removed = 0;
        self.keys.rcu(|keys| {
            let next: Vec<_> = keys.iter().filter(|k| !gone.contains(&k.id)).cloned().collect();
            removed = keys.len() - next.len();
            next
        });
        self.changed();
        self.models.changed(&[]);
        removed
    }

    /// The set of keys changed: the next pick rebuilds the ready list, whatever the gap.
    fn changed(&self) {
        self.signal.stale.store(true, Relaxed);
        self.signal.last_rebuild.store(UnixMs::MIN / 2, Relaxed);
    }
}

fn earliest(a: Option<UnixMs>, b: Option<UnixMs>) -> Option<UnixMs> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

fn is_candidate(key: &PoolKey, now: UnixMs, tried: &[KeyId], model: Option<&str>) -> bool {
    key.is_eligible(now) && !tried.contains(&key.id) && key.serves(model)
}

/// Why a pick found no key: no key serves the model at all, or when the earliest one returns.
/// A candidate the limiter refused counts by `limited_until`, not by its (absent) hold.
fn nothing_to_pick(
    keys: &[Arc<PoolKey>],
    now: UnixMs,
    tried: &[KeyId],
    model: Option<&str>,
    limited_until: Option<UnixMs>,
) -> Pick {
    let serving = || keys.iter().filter(|k| !k.is_expired(now) && k.serves(model));
    if serving().next().is_none() && model.is_some() && keys.iter().any(|k| !k.is_expired(now)) {
        return Pick::Unserved;
    }
    let held_until = serving()
        .filter(|k| !is_candidate(k, now, tried, model))
        .map(|k| k.returns_at.load(Relaxed).max(now + 1))
        .filter(|&at| at < UnixMs::MAX)
        .min();
    Pick::Exhausted { retry_at: earliest(held_until, limited_until), limited: limited_until.is_some() }
}

/// The pools of every configured provider. The set of providers is fixed at start.
#[derive(Debug, Default)]
pub struct Pools {
    by_provider: HashMap<ProviderName, KeyPool>,
}

impl Pools {
    pub fn new(providers: impl IntoIterator<Item = ProviderName>) -> Self {
        Self { by_provider: providers.into_iter().map(|p| (p, KeyPool::default())).collect() }
    }

    /// The pools of `specs`, each knowing its configured probe model.
    pub fn from_specs(specs: &[ProviderSpec]) -> Self {
        let pools = Self::new(specs.iter().map(|s| s.name.clone()));
        for spec in specs {
            if let (Some(pool), Some(model)) = (pools.pool(&spec.name), &spec.probe_model) {
                pool.models.learn(std::iter::once(model_name::canonical(spec.kind, model).as_ref()));
            }
        }
        pools
    }

    /// Whether the pool of `provider` knows `canonical_model`: discovered on one of its keys
    /// since start, or its configured probe model. One hash lookup.
    pub fn known_model(&self, provider: &ProviderName, canonical_model: &str) -> bool {
        self.model_label(provider, canonical_model).is_some()
    }

    /// The interned name of a model [`Self::known_model`] knows, for statistics labels.
    pub fn model_label(&self, provider: &ProviderName, canonical_model: &str) -> Option<Arc<str>> {
        self.pool(provider)?.models.known(canonical_model)
    }

    /// Records what a discovery found for `key` (canonical names), and tells its pool.
    pub fn set_models(&self, key: &PoolKey, models: Option<ModelSet>) {
        match self.pool(&key.provider) {
            Some(pool) => {
                let set = models.clone().map(Arc::new);
                key.set_models(models);
                pool.models.changed(set.as_slice());
            }
            None => key.set_models(models),
        }
    }

    pub fn pool(&self, provider: &ProviderName) -> Option<&KeyPool> {
        self.by_provider.get(provider)
    }

    pub fn providers(&self) -> impl Iterator<Item = (&ProviderName, &KeyPool)> {
        self.by_provider.iter()
    }

    /// Every key of every provider (admin views, flushes).
    pub fn all_keys(&self) -> Vec<Arc<PoolKey>> {
        self.by_provider.values().flat_map(|p| p.snapshot().iter().cloned().collect::<Vec<_>>()).collect()
    }

    pub fn find(&self, id: KeyId) -> Option<Arc<PoolKey>> {
        self.by_provider.values().find_map(|p| p.snapshot().iter().find(|k| k.id == id).cloned())
    }

    /// The keys of `ids` that exist, in pool order, each once: one pass over the pools whatever
    /// the number of ids (a bulk action may name thousands).
    pub fn find_many(&self, ids: &[KeyId]) -> Vec<Arc<PoolKey>> {
        let wanted: std::collections::HashSet<KeyId> = ids.iter().copied().collect();
        self.by_provider
            .values()
            .flat_map(|p| p.snapshot().iter().filter(|k| wanted.contains(&k.id)).cloned().collect::<Vec<_>>())
            .collect()
    }

    pub fn find_by_secret(&self, provider: Option<&ProviderName>, hash: &SecretHash) -> Vec<Arc<PoolKey>> {
        self.by_provider
            .iter()
            .filter(|(name, _)| provider.is_none_or(|p| p == *name))
            .flat_map(|(_, pool)| {
                pool.snapshot().iter().filter(|k| &k.secret_hash == hash).cloned().collect::<Vec<_>>()
            })
            .collect()
    }

    /// Removes keys by id from whichever pool holds them.
    pub fn remove(&self, ids: &[KeyId]) -> usize {
        self.by_provider.values().map(|p| p.remove(ids)).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limit::LocalLimiter;
    use uuid::Uuid;

    const T0: UnixMs = 1_700_000_000_000;

    fn provider() -> ProviderName {
        ProviderName::parse("ollama").unwrap_or_else(|e| panic!("{e}"))
    }

    fn key(n: u128) -> Arc<PoolKey> {
        let id = KeyId::from_uuid(Uuid::from_u128(n));
        Arc::new(PoolKey::new(id, provider(), Secret::new(format!("key-{n}")), None, T0, None))
    }

    fn pool_of(n: u128) -> (KeyPool, Vec<Arc<PoolKey>>) {
        let keys: Vec<_> = (1..=n).map(key).collect();
        let pool = KeyPool::default();
        pool.add(keys.clone());
        (pool, keys)
    }

    #[test]
    fn find_many_returns_each_existing_key_once_and_skips_unknown_ids() {
        let pools = Pools::new([provider()]);
        let keys: Vec<_> = (1..=5).map(key).collect();
        pools.pool(&provider()).unwrap_or_else(|| panic!("pool")).add(keys.clone());
        let unknown = KeyId::from_uuid(Uuid::from_u128(99));
        let found = pools.find_many(&[keys[3].id, keys[1].id, keys[3].id, unknown]);
        let ids: Vec<KeyId> = found.iter().map(|k| k.id).collect();
        assert_eq!(ids, vec![keys[1].id, keys[3].id]);
    }

    fn limited_for(rest_ms: i64) -> KeyEvent {
        KeyEvent::RateLimited { rest_ms, reason: "429".into() }
    }

    fn failing(key: &PoolKey, times: usize, now: UnixMs) {
        for _ in 0..times {
            key.begin_attempt(now);
            key.record(&KeyEvent::Transient { cause: "503".into() }, &FailurePolicy::default(), now);
        }
    }

    fn picked(pool: &KeyPool, now: UnixMs, tried: &[KeyId]) -> Option<KeyId> {
        match pool.pick(now, tried, None, &LocalLimiter::default()) {
            Pick::Key(k, _) => Some(k.id),
            Pick::Exhausted { .. } | Pick::Unserved => None,
        }
    }

    #[test]
    fn rotation_is_exactly_even_over_healthy_keys() {
        let (pool, keys) = pool_of(4);
        let mut counts = HashMap::new();
        for _ in 0..400 {
            *counts.entry(picked(&pool, T0, &[])).or_insert(0) += 1;
        }
        for k in &keys {
            assert_eq!(counts.get(&Some(k.id)), Some(&100));
        }
    }

    #[test]
    fn a_held_key_is_skipped_until_its_hold_ends() {
        let (pool, keys) = pool_of(2);
        keys[0].record(&limited_for(1_000), &FailurePolicy::default(), T0);
        for _ in 0..10 {
            assert_eq!(picked(&pool, T0 + 999, &[]), Some(keys[1].id));
        }
        let back_at = T0 + 1_000 + REBUILD_GAP_MS;
        let back: Vec<_> = (0..2).map(|_| picked(&pool, back_at, &[])).collect();
        assert!(back.contains(&Some(keys[0].id)), "back within the rebuild gap");
    }

    #[test]
    fn a_key_already_tried_is_never_picked_again() {
        let (pool, keys) = pool_of(3);
        let tried = [keys[0].id, keys[2].id];
        for _ in 0..10 {
            assert_eq!(picked(&pool, T0, &tried), Some(keys[1].id));
        }
        assert_eq!(picked(&pool, T0, &[keys[0].id, keys[1].id, keys[2].id]), None);
    }

    #[test]
    fn exhaustion_reports_when_the_earliest_key_returns() {
        let (pool, keys) = pool_of(2);
        let policy = FailurePolicy::default();
        keys[0].record(&limited_for(30_000), &policy, T0);
        keys[1].record(&limited_for(10_000), &policy, T0);
        assert!(
            matches!(pool.pick(T0, &[], None, &LocalLimiter::default()), Pick::Exhausted { retry_at: Some(at), .. } if at == T0 + 10_000)
        );
    }

    #[test]
    fn expired_and_manually_disabled_keys_are_never_picked() {
        let expired = Arc::new(PoolKey::new(
            KeyId::from_uuid(Uuid::from_u128(9)),
            provider(),
            Secret::new("e"),
            None,
            T0,
            Some(T0),
        ));
        let (pool, keys) = pool_of(1);
        keys[0].update_health(|h| h.disable("operator".into(), T0, None));
        pool.add(vec![expired]);
        assert!(matches!(pool.pick(T0, &[], None, &LocalLimiter::default()), Pick::Exhausted { retry_at: None, .. }));
    }

    #[test]
    fn deltas_are_taken_once_and_can_be_given_back() {
        let (_, keys) = pool_of(1);
        let k = &keys[0];
        k.begin_attempt(T0);
        k.record(&KeyEvent::Success, &FailurePolicy::default(), T0);
        let delta = k.take_delta().unwrap_or_else(|| panic!("a delta"));
        assert_eq!((delta.counters.requests, delta.counters.successes), (1, 1));
        assert_eq!(delta.health, None, "a clean success changes no health");
        assert_eq!(k.take_delta(), None);
        k.restore_delta(&delta);
        assert_eq!(k.take_delta().map(|d| d.counters.requests), Some(1));
    }

    fn models(names: &[&str]) -> Option<ModelSet> {
        Some(ModelSet { names: names.iter().map(|n| (*n).to_owned()).collect(), discovered_at: T0 })
    }

    #[test]
    fn a_model_goes_only_to_keys_known_to_serve_it_or_not_yet_discovered() {
        let (pool, keys) = pool_of(3);
        keys[0].set_models(models(&["llama3"]));
        keys[1].set_models(models(&["qwen"]));
        let picks: Vec<_> = (0..6)
            .map(|_| match pool.pick(T0, &[], Some("llama3"), &LocalLimiter::default()) {
                Pick::Key(k, _) => k.id,
                other => panic!("{other:?}"),
            })
            .collect();
        assert!(picks.iter().all(|id| *id == keys[0].id || *id == keys[2].id), "never the qwen-only key");
        assert!(picks.contains(&keys[0].id) && picks.contains(&keys[2].id));
    }

    #[test]
    fn a_model_no_key_serves_is_unserved_not_exhausted() {
        let (pool, keys) = pool_of(1);
        keys[0].set_models(models(&["qwen"]));
        assert!(matches!(pool.pick(T0, &[], Some("llama3"), &LocalLimiter::default()), Pick::Unserved));
        assert!(matches!(pool.pick(T0, &[], Some("qwen"), &LocalLimiter::default()), Pick::Key(..)));
    }

    #[test]
    fn categories_come_from_the_keys_own_models() {
        assert_eq!(models(&["kimi-k2:1t", "llama3"]).map(|m| m.categories()), Some(vec!["kimi", "llama"]));
        assert_eq!(models(&["qwen2.5", "gpt-oss"]).map(|m| m.categories()), Some(vec!["qwen", "general"]));
        assert_eq!(models(&[]).map(|m| m.categories()), Some(vec!["general"]));
    }

    fn limited(key: &PoolKey, rpm: Option<u32>, max_concurrent: Option<u32>) {
        key.set_limits(KeyLimits { rpm, max_concurrent });
    }

    #[test]
    fn a_key_at_its_rate_limit_is_skipped_without_blame_and_resumes_after() {
        let (pool, keys) = pool_of(2);
        let limiter = LocalLimiter::default();
        limited(&keys[0], Some(1), None);
        let ids = |at: UnixMs| -> Vec<KeyId> {
            (0..4)
                .map(|_| match pool.pick(at, &[], None, &limiter) {
                    Pick::Key(k, _) => k.id,
                    other => panic!("{other:?}"),
                })
                .collect()
        };
        let first = ids(T0);
        assert_eq!(first.iter().filter(|id| **id == keys[0].id).count(), 1, "{first:?}");
        assert_eq!((keys[0].status(T0), keys[0].health()), (KeyStatus::Active, Health::default()));
        assert!(ids(T0 + 60_000).contains(&keys[0].id));
    }

    #[test]
    fn a_key_at_its_concurrency_limit_returns_when_its_slot_is_released() {
        let (pool, keys) = pool_of(1);
        let limiter = LocalLimiter::default();
        limited(&keys[0], None, Some(1));
        let Pick::Key(_, slot) = pool.pick(T0, &[], None, &limiter) else { panic!("a key") };
        let busy = pool.pick(T0, &[], None, &limiter);
        assert!(matches!(busy, Pick::Exhausted { retry_at: Some(at), limited: true } if at == T0 + 1_000), "{busy:?}");
        drop(slot);
        assert!(matches!(pool.pick(T0, &[], None, &limiter), Pick::Key(..)));
    }

    #[test]
    fn when_every_key_is_at_its_limit_the_retry_is_the_earliest_free_slot() {
        let (pool, keys) = pool_of(2);
        let limiter = LocalLimiter::default();
        limited(&keys[0], Some(1), None);
        limited(&keys[1], Some(2), None);
        for _ in 0..3 {
            assert!(matches!(pool.pick(T0, &[], None, &limiter), Pick::Key(..)));
        }
        let exhausted = pool.pick(T0, &[], None, &limiter);
        assert!(matches!(exhausted, Pick::Exhausted { retry_at: Some(at), limited: true } if at == T0 + 30_000));
        assert_eq!(pool.next_ready(T0, None, &limiter), Some(T0 + 30_000));
        assert_eq!(pool.next_ready(T0, None, &limiter), Some(T0 + 30_000), "next_ready takes nothing");
        assert_eq!(pool.next_ready(T0 + 30_000, None, &limiter), None);
        keys[1].set_limits(KeyLimits::default());
        assert!(matches!(pool.pick(T0, &[], None, &limiter), Pick::Key(k, _) if k.id == keys[1].id));
    }

    #[test]
    fn removing_keys_takes_them_out_of_rotation_at_once() {
        let (pool, keys) = pool_of(2);
        assert_eq!(pool.remove(&[keys[0].id]), 1);
        for _ in 0..5 {
            assert_eq!(picked(&pool, T0, &[]), Some(keys[1].id));
        }
    }

    #[test]
    fn resting_keys_leave_the_ready_list_and_rotation_stays_even_over_the_rest() {
        let (pool, keys) = pool_of(100);
        for key in &keys[..99] {
            key.record(&limited_for(60_000), &FailurePolicy::default(), T0);
        }
        for _ in 0..10 {
            assert_eq!(picked(&pool, T0 + 1, &[]), Some(keys[99].id));
        }
        assert_eq!(pool.ready.load().len(), 1, "the selector scans only the ready key");
        assert!(picked(&pool, T0 + 60_000, &[]).is_some());
        let back: std::collections::HashSet<_> = (0..200).filter_map(|_| picked(&pool, T0 + 60_000, &[])).collect();
        assert_eq!(back.len(), 100, "every key returns when its rest ends");
    }

    #[test]
    fn a_key_failing_now_and_then_is_never_rested_but_a_failing_one_is() {
        let (_, keys) = pool_of(2);
        let policy = FailurePolicy::default();
        for i in 0..100 {
            let event = if i % 3 == 0 { KeyEvent::Transient { cause: "503".into() } } else { KeyEvent::Success };
            keys[0].record(&event, &policy, T0 + i);
        }
        assert_eq!(keys[0].status(T0 + 100), KeyStatus::Active);
        failing(&keys[1], 3, T0);
        assert_eq!(keys[1].status(T0), KeyStatus::Cooling);
    }

    #[test]
    fn a_retry_prefers_a_key_whose_last_attempt_served() {
        let (pool, keys) = pool_of(4);
        let policy = FailurePolicy::default();
        keys[3].record(&KeyEvent::Success, &policy, T0);
        for key in &keys[..3] {
            key.record(&KeyEvent::Transient { cause: "503".into() }, &policy, T0);
        }
        for _ in 0..8 {
            assert_eq!(picked(&pool, T0, &[keys[0].id]), Some(keys[3].id));
        }
        assert!(picked(&pool, T0, &[keys[0].id, keys[3].id]).is_some(), "others still serve when none proved itself");
    }

    #[test]
    fn a_first_attempt_passes_over_a_key_that_failed_just_now_until_the_moment_is_over() {
        let (pool, keys) = pool_of(3);
        let policy = FailurePolicy::default();
        for key in &keys {
            key.record(&KeyEvent::Success, &policy, T0);
        }
        keys[0].record(&KeyEvent::Transient { cause: "reset".into() }, &policy, T0 + 1);
        let soon: Vec<_> = (0..30).filter_map(|_| picked(&pool, T0 + 10, &[])).collect();
        assert!(soon.iter().all(|id| *id != keys[0].id), "the key that just failed waits while others serve");
        let later: Vec<_> = (0..30).filter_map(|_| picked(&pool, T0 + 1 + SUSPECT_MS, &[])).collect();
        assert!(later.contains(&keys[0].id), "then it is in the rotation again");
        for key in &keys[1..] {
            key.record(&KeyEvent::Transient { cause: "reset".into() }, &policy, T0 + 20);
        }
        assert!(picked(&pool, T0 + 30, &[]).is_some(), "when every key failed just now, one is still picked");
    }

    #[test]
    fn when_every_key_rests_after_errors_the_one_back_soonest_is_tried_and_its_success_lifts_the_rest() {
        let (pool, keys) = pool_of(3);
        for (i, key) in keys.iter().enumerate() {
            failing(key, 3, T0 + i as i64);
        }
        assert!(keys.iter().all(|k| k.status(T0 + 10) == KeyStatus::Cooling));
        let Pick::Key(key, _) = pool.pick(T0 + 10, &[], None, &LocalLimiter::default()) else {
            panic!("a last resort")
        };
        assert_eq!(key.id, keys[0].id, "the rest that ends first");
        assert!(pool.is_degraded());
        key.record(&KeyEvent::Success, &FailurePolicy::default(), T0 + 11);
        assert!(picked(&pool, T0 + 12, &[]).is_some());
        assert!(keys.iter().all(|k| k.status(T0 + 12) == KeyStatus::Active), "the upstream is back for every key");
        assert!(!pool.is_degraded());
    }

    #[test]
    fn keys_out_for_certain_causes_are_never_a_last_resort() {
        let (pool, keys) = pool_of(2);
        let policy = FailurePolicy::default();
        keys[0].record(&KeyEvent::Rejected { status: 401 }, &policy, T0);
        keys[1].record(&limited_for(60_000), &policy, T0);
        assert!(matches!(pool.pick(T0, &[], None, &LocalLimiter::default()), Pick::Exhausted { .. }));
    }

    #[test]
    fn the_error_window_forgets_old_buckets() {
        let window = ErrorWindow::default();
        for _ in 0..4 {
            window.add(T0, 10_000, true);
        }
        assert_eq!(window.add(T0, 10_000, true), Recent { successes: 0, failures: 5 });
        window.add(T0 + 30_000, 10_000, false);
        assert_eq!(window.add(T0 + 30_000, 10_000, true), Recent { successes: 1, failures: 6 });
        assert_eq!(window.add(T0 + 60_001, 10_000, true), Recent { successes: 1, failures: 2 });
        window.clear();
        assert_eq!(window.add(T0 + 60_001, 10_000, true), Recent { successes: 0, failures: 1 });
    }

    #[test]
    fn errors_during_an_outage_of_every_key_add_no_strikes() {
        let (pool, keys) = pool_of(2);
        for key in &keys {
            failing(key, 3, T0);
        }
        let Pick::Key(key, _) = pool.pick(T0 + 1, &[], None, &LocalLimiter::default()) else { panic!("a last resort") };
        failing(&key, 30, T0 + 2);
        assert_eq!(key.health().strikes, 1, "the outage is not the key's fault");
        assert_eq!(key.status(T0 + 5_000), KeyStatus::Active, "its short rest ends on time");
    }

    #[test]
    fn a_success_of_a_key_that_was_not_resting_also_ends_an_outage() {
        let (pool, keys) = pool_of(2);
        for key in &keys {
            failing(key, 3, T0);
        }
        assert!(matches!(pool.pick(T0 + 1, &[], None, &LocalLimiter::default()), Pick::Key(..)));
        assert!(pool.is_degraded());
        keys[0].update_health(Health::enable);
        keys[0].record(&KeyEvent::Success, &FailurePolicy::default(), T0 + 2);
        assert!(picked(&pool, T0 + 3, &[]).is_some());
        assert!(!pool.is_degraded());
        assert_eq!(keys[1].status(T0 + 3), KeyStatus::Active);
    }

    fn model_set(names: &[&str], discovered_at: UnixMs) -> Option<ModelSet> {
        Some(ModelSet { names: names.iter().map(|n| (*n).to_owned()).collect(), discovered_at })
    }

    fn model_spec(probe_model: Option<&str>) -> crate::provider::ProviderSpec {
        crate::provider::ProviderSpec {
            name: provider(),
            kind: crate::provider::ProviderKind::Ollama,
            url: "http://up".into(),
            enabled: true,
            headers: http::HeaderMap::new(),
            probe_model: probe_model.map(str::to_owned),
        }
    }

    #[test]
    fn a_pool_serves_the_union_of_its_live_keys_models() {
        let pools = Pools::from_specs(&[model_spec(None)]);
        let pool = pools.pool(&provider()).unwrap_or_else(|| panic!("pool"));
        let expiring = |n: u128| {
            let id = KeyId::from_uuid(Uuid::from_u128(n));
            Arc::new(PoolKey::new(id, provider(), Secret::new(format!("k{n}")), None, T0, Some(T0)))
        };
        let keys: Vec<_> = (1..=4).map(key).chain([expiring(5)]).collect();
        keys[0].set_models(model_set(&["a:latest", "shared:7b"], T0));
        keys[1].set_models(model_set(&["shared:7b"], T0 + 5_000));
        keys[2].set_models(model_set(&["b:latest"], T0));
        keys[4].set_models(model_set(&["expired-only:latest"], T0));
        assert_eq!(pool.served_models(T0), None, "no key yet");
        pool.add(vec![Arc::clone(&keys[3])]);
        assert_eq!(pool.served_models(T0), None, "no live key was discovered");
        pool.add(keys.iter().take(3).chain(keys.iter().skip(4)).cloned().collect());
        let served = pool.served_models(T0).unwrap_or_default();
        let names: Vec<_> = served.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["a:latest", "b:latest", "shared:7b"]);
        assert_eq!(served[2].discovered_at, T0 + 5_000, "the latest discovery");
    }

    #[test]
    fn the_pool_knows_discovered_and_configured_models_in_one_lookup() {
        let pools = Pools::from_specs(&[model_spec(Some("probe"))]);
        let k = key(1);
        let pool = pools.pool(&provider()).unwrap_or_else(|| panic!("pool"));
        pool.add(vec![Arc::clone(&k)]);
        let before = pool.models.generation();
        pools.set_models(&k, model_set(&["mock-gpt:latest"], T0));
        assert!(pools.known_model(&provider(), "mock-gpt:latest"));
        assert!(pools.known_model(&provider(), "probe:latest"), "the configured probe model, canonical");
        assert!(!pools.known_model(&provider(), "made-up:latest"));
        assert_eq!(pools.model_label(&provider(), "mock-gpt:latest").as_deref(), Some("mock-gpt:latest"));
        assert!(pool.models.generation() > before);
        assert!(k.serves(Some("mock-gpt:latest")));
    }

    #[test]
    fn keys_joining_or_leaving_make_built_lists_stale() {
        let pools = Pools::from_specs(&[model_spec(None)]);
        let pool = pools.pool(&provider()).unwrap_or_else(|| panic!("pool"));
        let restored = key(1);
        restored.set_models(model_set(&["from-store:latest"], T0));
        let g0 = pool.models.generation();
        pool.add(vec![Arc::clone(&restored)]);
        let g1 = pool.models.generation();
        assert!(g1 > g0 && pools.known_model(&provider(), "from-store:latest"));
        pool.remove(&[restored.id]);
        assert!(pool.models.generation() > g1);
        assert!(pools.known_model(&provider(), "from-store:latest"), "known names only grow");
    }
}
