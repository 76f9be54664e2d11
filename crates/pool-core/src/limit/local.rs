//! [`LocalLimiter`]: the limiter of a single gateway, all in memory.
//!
//! Each subject's state (a GCRA time, two day counters, a slot count: a few atomics) sits in one
//! of 32 shards, each a `HashMap` behind an `RwLock`. A check on a known subject takes a shard's
//! read lock for one lookup and then works on atomics alone, so subjects never wait on each
//! other; a write lock is taken only to add a subject. Subjects at rest (nothing owed, nothing
//! counted today, nothing in flight, nobody holding them) are swept out of a shard whenever it has
//! doubled since its last sweep, so a stream of new client addresses cannot grow memory for ever.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use super::rules::{DayCounter, Gcra, Slots, day_window, next_utc_midnight};
use super::{Admission, Exceeded, Ledger, Limiter, Limits, RateInfo, Refusal, Subject, Window};
use crate::UnixMs;

const SHARD_BITS: u32 = 5;
const SHARDS: usize = 1 << SHARD_BITS;

/// A shard is not swept before it holds this many subjects.
const MIN_SWEEP: usize = 1024;

/// What a client refused for concurrency is told to wait: a slot frees whenever any of its
/// requests ends, which no clock can predict.
const CONCURRENCY_RETRY_MS: i64 = 1000;

/// The in-memory [`Limiter`].
#[derive(Debug)]
pub struct LocalLimiter {
    shards: Box<[RwLock<Shard>]>,
}

#[derive(Debug, Default)]
struct Shard {
    subjects: HashMap<Subject, Arc<SubjectState>>,
    /// Sweep when the shard holds this many subjects.
    sweep_at: usize,
}

/// The counters of one subject.
#[derive(Debug, Default)]
struct SubjectState {
    rate: Gcra,
    requests_today: DayCounter,
    tokens_today: DayCounter,
    slots: Slots,
}

impl Default for LocalLimiter {
    fn default() -> Self {
        let shards = (0..SHARDS).map(|_| RwLock::new(Shard { sweep_at: MIN_SWEEP, ..Shard::default() })).collect();
        Self { shards }
    }
}

impl Limiter for LocalLimiter {
    fn admit(&self, subject: Subject, limits: &Limits, now: UnixMs) -> Result<Admission, Refusal> {
        if limits.is_unlimited() {
            return Ok(Admission::unlimited());
        }
        let state = self.state(subject, now);
        let info = state.admit(limits, now)?;
        let holds_slot = limits.max_concurrent().is_some();
        Ok(Admission::new(state, holds_slot, limits.tpd().is_some(), info))
    }

    fn restore_day(&self, subject: Subject, requests: u64, tokens: u64, now: UnixMs) {
        let state = self.state(subject, now);
        state.requests_today.add(requests, now);
        state.tokens_today.add(tokens, now);
    }

    fn ready_at(&self, subject: Subject, limits: &Limits, now: UnixMs) -> UnixMs {
        if limits.is_unlimited() {
            return now;
        }
        let shard = read(&self.shards[shard_of(&subject)]);
        shard.subjects.get(&subject).map_or(now, |state| state.ready_at(limits, now))
    }
}

impl LocalLimiter {
    /// Subjects currently remembered (for tests and diagnostics).
    pub fn subjects(&self) -> usize {
        self.shards.iter().map(|shard| read(shard).subjects.len()).sum()
    }

    fn state(&self, subject: Subject, now: UnixMs) -> Arc<SubjectState> {
        let lock = &self.shards[shard_of(&subject)];
        if let Some(state) = read(lock).subjects.get(&subject) {
            return Arc::clone(state);
        }
        let mut shard = write(lock);
        if shard.subjects.len() >= shard.sweep_at {
            shard.sweep(now);
        }
        Arc::clone(shard.subjects.entry(subject).or_default())
    }
}

impl Shard {
    /// Forgets subjects at rest. One that anybody holds (a check under way, an admission with
    /// its slot) is kept, so no count can be lost to a sweep.
    fn sweep(&mut self, now: UnixMs) {
        self.subjects.retain(|_, state| Arc::strong_count(state) > 1 || !state.at_rest(now));
        self.sweep_at = (self.subjects.len() * 2).max(MIN_SWEEP);
    }
}

impl SubjectState {
    /// Takes a slot, checks the token quota, counts the day's request and the minute's, in that
    /// order; a refusal gives back whatever was taken before it.
    fn admit(&self, limits: &Limits, now: UnixMs) -> Result<RateInfo, Refusal> {
        let mut slot = Entered(None);
        if let Some(max) = limits.max_concurrent() {
            if !self.slots.try_enter(max) {
                return Err(self.refusal(Exceeded::Concurrency(max), CONCURRENCY_RETRY_MS, limits, now));
            }
            slot = Entered(Some(&self.slots));
        }
        let tokens = limits.tpd().map(|limit| day_window(limit, self.tokens_today.used(now), now));
        if let (Some(limit), Some(window)) = (limits.tpd(), tokens)
            && window.remaining == 0
        {
            return Err(self.refusal(Exceeded::TokensPerDay(limit), window.reset_ms, limits, now));
        }
        let daily = match limits.rpd() {
            Some(limit) => match self.requests_today.take(limit, now) {
                Some(used) => Some(day_window(limit, used, now)),
                None => {
                    let wait = next_utc_midnight(now) - now;
                    return Err(self.refusal(Exceeded::RequestsPerDay(limit), wait, limits, now));
                }
            },
            None => None,
        };
        let minute = match limits.rpm() {
            Some(rpm) => match self.rate.take(rpm, now) {
                Ok(window) => Some(window),
                Err(wait) => {
                    if daily.is_some() {
                        self.requests_today.give_back(now);
                    }
                    return Err(self.refusal(Exceeded::RequestsPerMinute(rpm), wait, limits, now));
                }
            },
            None => None,
        };
        slot.keep();
        Ok(RateInfo { requests: tighter(minute, daily), tokens })
    }

    fn refusal(&self, exceeded: Exceeded, retry_after_ms: i64, limits: &Limits, now: UnixMs) -> Refusal {
        let minute = limits.rpm().map(|rpm| self.rate.peek(rpm, now).0);
        let daily = limits.rpd().map(|limit| day_window(limit, self.requests_today.used(now), now));
        let requests = match exceeded {
            Exceeded::RequestsPerMinute(_) => minute,
            Exceeded::RequestsPerDay(_) => daily,
            Exceeded::TokensPerDay(_) | Exceeded::Concurrency(_) => tighter(minute, daily),
        };
        let tokens = limits.tpd().map(|limit| day_window(limit, self.tokens_today.used(now), now));
        Refusal { exceeded, retry_after_ms, info: RateInfo { requests, tokens } }
    }

    fn ready_at(&self, limits: &Limits, now: UnixMs) -> UnixMs {
        let mut at = now;
        if limits.max_concurrent().is_some_and(|max| self.slots.in_flight() >= max) {
            at = at.max(now + CONCURRENCY_RETRY_MS);
        }
        let spent = |limit: Option<u64>, counter: &DayCounter| limit.is_some_and(|l| counter.used(now) >= l);
        if spent(limits.tpd(), &self.tokens_today) || spent(limits.rpd(), &self.requests_today) {
            at = at.max(next_utc_midnight(now));
        }
        if let Some(rpm) = limits.rpm() {
            at = at.max(now + self.rate.peek(rpm, now).1);
        }
        at
    }

    fn at_rest(&self, now: UnixMs) -> bool {
        self.rate.is_full(now)
            && self.requests_today.used(now) == 0
            && self.tokens_today.used(now) == 0
            && self.slots.in_flight() == 0
    }
}

impl Ledger for SubjectState {
    fn release_slot(&self) {
        self.slots.leave();
    }

    fn charge_tokens(&self, tokens: u64, now: UnixMs) {
        self.tokens_today.add(tokens, now);
    }
}

/// A slot taken during a check, given back if the check fails after it.
struct Entered<'a>(Option<&'a Slots>);

impl Entered<'_> {
    /// The check passed: the slot now belongs to the admission.
    fn keep(mut self) {
        self.0 = None;
    }
}

impl Drop for Entered<'_> {
    fn drop(&mut self) {
        if let Some(slots) = self.0 {
            slots.leave();
        }
    }
}

/// The request window with less left (the minute's on a tie): the one a client meets first.
fn tighter(minute: Option<Window>, daily: Option<Window>) -> Option<Window> {
    match (minute, daily) {
        (Some(m), Some(d)) if d.remaining < m.remaining => Some(d),
        (m, d) => m.or(d),
    }
}

/// Spreads subjects over the shards: UUIDv7 ids end in random bits, and addresses are mixed.
fn shard_of(subject: &Subject) -> usize {
    let bits = match subject {
        Subject::Token(id) => id.as_uuid().as_u64_pair().1,
        Subject::Key(id) => id.as_uuid().as_u64_pair().1,
        Subject::Ip(IpAddr::V4(ip)) => u64::from(u32::from(*ip)),
        Subject::Ip(IpAddr::V6(ip)) => {
            let n = u128::from(*ip);
            (n as u64) ^ ((n >> 64) as u64)
        }
    };
    (bits.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - SHARD_BITS)) as usize
}

fn read(lock: &RwLock<Shard>) -> RwLockReadGuard<'_, Shard> {
    lock.read().unwrap_or_else(PoisonError::into_inner)
}

fn write(lock: &RwLock<Shard>) -> RwLockWriteGuard<'_, Shard> {
    lock.write().unwrap_or_else(PoisonError::into_inner)
}
