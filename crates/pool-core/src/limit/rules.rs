//! The arithmetic of the limits, on atomics, driven by `now`.
//!
//! - [`Gcra`]: requests per minute as the generic cell rate algorithm. One number per subject,
//!   the theoretical arrival time (TAT): a request at `now` passes when `max(TAT, now) - now ≤ τ`
//!   and then moves TAT on by the emission interval `T = 60 s / rpm`; with `τ = (rpm - 1)·T` a
//!   fresh subject may burst `rpm` requests, then gets one more every `T`. A refused request
//!   learns exactly when it would pass (`max(TAT, now) - τ`) and changes nothing.
//! - [`DayCounter`]: a count for the current UTC day, packed with the day's number into one
//!   `AtomicU64` (24 bits of day, 40 of count), so a new day starts at zero without a reset job.
//! - [`Slots`]: requests in flight, bounded by compare-and-swap.
//!
//! Time inside GCRA is in microseconds, so that `60 s / rpm` stays exact enough for any rpm.

use std::sync::atomic::{AtomicI64, AtomicU32, AtomicU64, Ordering::AcqRel, Ordering::Acquire};

use super::Window;
use crate::UnixMs;

/// A UTC day in milliseconds.
pub const DAY_MS: i64 = 86_400_000;

const MINUTE_US: i64 = 60_000_000;

/// The first instant of the UTC day after the one of `now`.
pub fn next_utc_midnight(now: UnixMs) -> UnixMs {
    (now.div_euclid(DAY_MS) + 1) * DAY_MS
}

fn us(ms: UnixMs) -> i64 {
    ms.saturating_mul(1000)
}

/// Microseconds as milliseconds, rounded up.
fn ms_ceil(us: i64) -> i64 {
    us.saturating_add(999).div_euclid(1000)
}

/// Requests per minute, as GCRA over one atomic TAT (microseconds).
#[derive(Debug, Default)]
pub(super) struct Gcra {
    tat_us: AtomicI64,
}

/// The emission interval and the burst tolerance of `rpm`, in microseconds.
fn gcra_params(rpm: u32) -> (i64, i64) {
    let t = (MINUTE_US / i64::from(rpm.max(1))).max(1);
    (t, t * (i64::from(rpm.max(1)) - 1))
}

impl Gcra {
    /// Takes one request: `Ok(window after it)`, or `Err(wait in ms)` with nothing taken.
    pub(super) fn take(&self, rpm: u32, now: UnixMs) -> Result<Window, i64> {
        let (t, tau) = gcra_params(rpm);
        let now_us = us(now);
        let mut tat = self.tat_us.load(Acquire);
        loop {
            let base = tat.max(now_us);
            if base - now_us > tau {
                return Err(ms_ceil(base - tau - now_us));
            }
            match self.tat_us.compare_exchange_weak(tat, base + t, AcqRel, Acquire) {
                Ok(_) => return Ok(window(rpm, base + t, now_us)),
                Err(current) => tat = current,
            }
        }
    }

    /// The standing without taking: the window now, and the wait before the next request would
    /// pass (0 when it would pass now).
    pub(super) fn peek(&self, rpm: u32, now: UnixMs) -> (Window, i64) {
        let (_, tau) = gcra_params(rpm);
        let now_us = us(now);
        let tat = self.tat_us.load(Acquire).max(now_us);
        (window(rpm, tat, now_us), ms_ceil((tat - tau - now_us).max(0)))
    }

    /// Nothing is owed: the bucket is full (the state can be forgotten).
    pub(super) fn is_full(&self, now: UnixMs) -> bool {
        self.tat_us.load(Acquire) <= us(now)
    }
}

/// The window of a GCRA at TAT `tat`: requests that would pass now, and when the bucket is full.
fn window(rpm: u32, tat: i64, now_us: i64) -> Window {
    let (t, tau) = gcra_params(rpm);
    let slack = tau - (tat - now_us);
    let remaining = if slack < 0 { 0 } else { u64::try_from(slack / t + 1).unwrap_or(0) };
    Window { limit: u64::from(rpm), remaining, reset_ms: ms_ceil((tat - now_us).max(0)) }
}

const COUNT_BITS: u32 = 40;
const COUNT_MASK: u64 = (1 << COUNT_BITS) - 1;
const DAY_MASK: u64 = (1 << (64 - COUNT_BITS)) - 1;

/// The largest count a [`DayCounter`] holds; counts saturate there.
pub(super) const MAX_DAY_COUNT: u64 = COUNT_MASK;

/// A count for one UTC day; the count of an earlier day reads as zero.
#[derive(Debug, Default)]
pub(super) struct DayCounter {
    packed: AtomicU64,
}

fn day_tag(now: UnixMs) -> u64 {
    u64::try_from(now.div_euclid(DAY_MS)).unwrap_or(0) & DAY_MASK
}

fn pack(day: u64, count: u64) -> u64 {
    (day << COUNT_BITS) | count.min(COUNT_MASK)
}

impl DayCounter {
    /// The count of the day of `now`.
    pub(super) fn used(&self, now: UnixMs) -> u64 {
        count_on(self.packed.load(Acquire), day_tag(now))
    }

    /// Counts one more unless the day's count already reached `limit`: the count after, or
    /// `None` with nothing taken.
    pub(super) fn take(&self, limit: u64, now: UnixMs) -> Option<u64> {
        let day = day_tag(now);
        let stored = self.update(|packed| {
            let used = count_on(packed, day);
            (used < limit).then(|| pack(day, used + 1))
        });
        stored.map(|packed| packed & COUNT_MASK)
    }

    /// Adds `n` to the day's count (saturating).
    pub(super) fn add(&self, n: u64, now: UnixMs) {
        let day = day_tag(now);
        let _ = self.update(|packed| Some(pack(day, count_on(packed, day).saturating_add(n))));
    }

    /// Takes back one count of the day of `now` (a request counted, then refused by another limit).
    pub(super) fn give_back(&self, now: UnixMs) {
        let day = day_tag(now);
        let _ = self.update(|packed| {
            let used = count_on(packed, day);
            (used > 0).then(|| pack(day, used - 1))
        });
    }

    /// Compare-and-swap loop: `change` returns the new value, or `None` to leave it. Returns the
    /// value stored.
    fn update(&self, change: impl Fn(u64) -> Option<u64>) -> Option<u64> {
        let mut current = self.packed.load(Acquire);
        loop {
            let next = change(current)?;
            match self.packed.compare_exchange_weak(current, next, AcqRel, Acquire) {
                Ok(_) => return Some(next),
                Err(actual) => current = actual,
            }
        }
    }
}

fn count_on(packed: u64, day: u64) -> u64 {
    if packed >> COUNT_BITS == day { packed & COUNT_MASK } else { 0 }
}

/// The window of a daily limit with `used` counted at `now`.
pub(super) fn day_window(limit: u64, used: u64, now: UnixMs) -> Window {
    Window { limit, remaining: limit.saturating_sub(used), reset_ms: next_utc_midnight(now) - now }
}

/// Requests in flight.
#[derive(Debug, Default)]
pub(super) struct Slots {
    in_flight: AtomicU32,
}

impl Slots {
    /// Takes a slot unless `max` are taken.
    pub(super) fn try_enter(&self, max: u32) -> bool {
        let mut current = self.in_flight.load(Acquire);
        loop {
            if current >= max {
                return false;
            }
            match self.in_flight.compare_exchange_weak(current, current + 1, AcqRel, Acquire) {
                Ok(_) => return true,
                Err(actual) => current = actual,
            }
        }
    }

    pub(super) fn leave(&self) {
        let _ = self.in_flight.fetch_update(AcqRel, Acquire, |n| n.checked_sub(1));
    }

    pub(super) fn in_flight(&self) -> u32 {
        self.in_flight.load(Acquire)
    }
}
