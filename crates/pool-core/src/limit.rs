//! Limits that hold: requests per minute, requests and tokens per UTC day, and requests at once,
//! for any subject (a client token, an upstream key, a client address).
//!
//! # Layout
//! - This module: the [`Limiter`] port, the [`Limits`] it enforces, and what it answers: an
//!   [`Admission`] (which holds a concurrency slot until dropped and takes the tokens a response
//!   used) or a [`Refusal`] (which limit, and exactly when to come back).
//! - `rules`: the arithmetic, pure and driven by `now`: GCRA for requests per minute, calendar-day
//!   counters for the daily quotas, and the concurrency count.
//! - `local`: [`LocalLimiter`], the single-node implementation: subject state in a sharded map,
//!   every check a few atomic operations, no store round trip.
//!
//! A key design decision: the port is synchronous. It is consulted inside `KeyPool::pick`'s scan
//! and before every proxied request, where an await (let alone a network round trip per check)
//! would be the very cost the gateway exists to avoid. A cluster backend implements the same
//! port over local state reconciled with Redis in the background, or grows an async variant for
//! the one call per request that must hold globally.

mod local;
mod rules;

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use crate::UnixMs;
use crate::ids::{KeyId, TokenId};

pub use local::LocalLimiter;
pub use rules::{DAY_MS, next_utc_midnight};

/// The largest values an operator may set, so that every count stays exact.
pub const MAX_RPM: u32 = 1_000_000;
pub const MAX_RPD: u64 = 1_000_000_000;
pub const MAX_TPD: u64 = 1_000_000_000_000;
pub const MAX_CONCURRENT: u32 = 100_000;

const _: () = assert!(MAX_TPD <= rules::MAX_DAY_COUNT && MAX_RPD <= rules::MAX_DAY_COUNT);

/// Whose limits: each subject has its own counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Subject {
    Token(TokenId),
    Key(KeyId),
    /// A client address, as [`Subject::client`] folds it.
    Ip(IpAddr),
}

impl Subject {
    /// The subject of a client address: an IPv4-mapped IPv6 address is its IPv4 address, and an
    /// IPv6 address counts as its /64 network. One subscriber holds a whole /64 (often more), so
    /// limiting single IPv6 addresses would neither hold a client to its limit nor bound the
    /// limiter's memory: every address of the /64 would get counters of its own.
    pub fn client(ip: IpAddr) -> Subject {
        match ip.to_canonical() {
            IpAddr::V6(v6) => Subject::Ip(IpAddr::V6((u128::from(v6) & !((1u128 << 64) - 1)).into())),
            v4 => Subject::Ip(v4),
        }
    }
}

/// The limits of one subject; `None` (or 0) is no limit.
///
/// A limit of 0 never comes from the admin API (it refuses it); it reads as "no limit", like
/// `limits.ip_rpm = 0` in the configuration.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Limits {
    /// Requests per minute: a burst of `rpm`, then one more every `60 / rpm` seconds.
    pub rpm: Option<u32>,
    /// Requests per UTC calendar day.
    pub rpd: Option<u64>,
    /// Tokens per UTC calendar day: checked before a request (refused once used ≥ limit), charged
    /// after it when its usage is known.
    pub tpd: Option<u64>,
    /// Requests in flight at once.
    pub max_concurrent: Option<u32>,
}

impl Limits {
    pub fn rpm(&self) -> Option<u32> {
        self.rpm.filter(|&n| n > 0)
    }
    pub fn rpd(&self) -> Option<u64> {
        self.rpd.filter(|&n| n > 0)
    }
    pub fn tpd(&self) -> Option<u64> {
        self.tpd.filter(|&n| n > 0)
    }
    pub fn max_concurrent(&self) -> Option<u32> {
        self.max_concurrent.filter(|&n| n > 0)
    }

    /// No limit at all: the limiter is not even consulted.
    pub fn is_unlimited(&self) -> bool {
        self.rpm().is_none() && self.rpd().is_none() && self.tpd().is_none() && self.max_concurrent().is_none()
    }
}

/// The port: admits or refuses one request of a subject under its limits, at `now`.
pub trait Limiter: Send + Sync {
    /// Admits one request (taking a concurrency slot and counting it against every rate and
    /// quota) or refuses it, taking nothing.
    fn admit(&self, subject: Subject, limits: &Limits, now: UnixMs) -> Result<Admission, Refusal>;

    /// The earliest instant `admit` could succeed (`now` if it would succeed now); takes nothing.
    fn ready_at(&self, subject: Subject, limits: &Limits, now: UnixMs) -> UnixMs;

    /// Adds what a subject already used on the UTC day of `now` (requests admitted, tokens
    /// charged), as the statistics recorded it before a restart, so daily quotas survive one.
    fn restore_day(&self, subject: Subject, requests: u64, tokens: u64, now: UnixMs);
}

/// What an [`Admission`] keeps of its subject's state, so that it can give its slot back and
/// charge tokens after the limiter call has returned. Implemented by each limiter backend.
pub trait Ledger: Send + Sync {
    /// Gives back one concurrency slot.
    fn release_slot(&self);
    /// Adds `tokens` to the subject's tokens of the UTC day of `now`.
    fn charge_tokens(&self, tokens: u64, now: UnixMs);
}

/// One limit's standing, as the `x-ratelimit-*` headers tell it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    pub limit: u64,
    pub remaining: u64,
    /// Until the limit is fully available again, in milliseconds.
    pub reset_ms: i64,
}

/// What a client may learn of its limits: the binding request limit (per minute or per day,
/// whichever has less left) and the daily token quota.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RateInfo {
    pub requests: Option<Window>,
    pub tokens: Option<Window>,
}

impl RateInfo {
    pub fn is_empty(&self) -> bool {
        self.requests.is_none() && self.tokens.is_none()
    }
}

/// A request let in. Holds its concurrency slot (if its subject has a concurrency limit) until
/// dropped; a stream keeps it for as long as it runs (the proxy's stream relay holds it).
pub struct Admission {
    ledger: Option<Arc<dyn Ledger>>,
    holds_slot: bool,
    meters_tokens: bool,
    /// The subject's standing after this request, for the response headers.
    pub info: RateInfo,
}

impl Admission {
    /// An admission that holds nothing and charges nothing: the subject has no limits.
    pub fn unlimited() -> Self {
        Self { ledger: None, holds_slot: false, meters_tokens: false, info: RateInfo::default() }
    }

    /// For limiter backends: an admission over `ledger`, holding one slot if `holds_slot`, and
    /// charging tokens if `meters_tokens` (the subject has a daily token quota).
    pub fn new(ledger: Arc<dyn Ledger>, holds_slot: bool, meters_tokens: bool, info: RateInfo) -> Self {
        Self { ledger: Some(ledger), holds_slot, meters_tokens, info }
    }

    /// Whether this admission holds a concurrency slot (and so must live as long as the answer).
    pub fn holds_slot(&self) -> bool {
        self.holds_slot
    }

    /// Whether the subject has a daily token quota, so that usage is worth extracting.
    pub fn meters_tokens(&self) -> bool {
        self.meters_tokens
    }

    /// Charges the tokens this request used (prompt and completion) to its subject's UTC day,
    /// once they are known. Does nothing for a subject without a daily token quota.
    pub fn charge_tokens(&self, total: u64, now: UnixMs) {
        if let (true, Some(ledger)) = (self.meters_tokens, &self.ledger) {
            ledger.charge_tokens(total, now);
        }
    }
}

impl Drop for Admission {
    fn drop(&mut self) {
        if let (true, Some(ledger)) = (self.holds_slot, &self.ledger) {
            ledger.release_slot();
        }
    }
}

impl fmt::Debug for Admission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Admission")
            .field("holds_slot", &self.holds_slot)
            .field("meters_tokens", &self.meters_tokens)
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

/// Which limit refused a request, with the limit's value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exceeded {
    RequestsPerMinute(u32),
    RequestsPerDay(u64),
    TokensPerDay(u64),
    Concurrency(u32),
}

impl fmt::Display for Exceeded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::RequestsPerMinute(n) => write!(f, "{n} requests per minute"),
            Self::RequestsPerDay(n) => write!(f, "{n} requests per day (UTC)"),
            Self::TokensPerDay(n) => write!(f, "{n} tokens per day (UTC)"),
            Self::Concurrency(n) => write!(f, "{n} concurrent requests"),
        }
    }
}

/// A request refused by a limit. Nothing was taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("limit of {exceeded} reached")]
pub struct Refusal {
    pub exceeded: Exceeded,
    /// How long until a retry can succeed (as far as this limit knows; for concurrency, a short
    /// guess, since a slot frees whenever a request ends).
    pub retry_after_ms: i64,
    /// The subject's standing, for the response headers.
    pub info: RateInfo,
}

impl Refusal {
    /// Whole seconds to wait, rounded up, at least 1: the `Retry-After` value.
    pub fn retry_after_secs(&self) -> u64 {
        ceil_secs(self.retry_after_ms).max(1)
    }
}

/// Milliseconds as whole seconds, rounded up (never negative).
pub fn ceil_secs(ms: i64) -> u64 {
    u64::try_from(ms.max(0)).unwrap_or(0).div_ceil(1000)
}

#[cfg(test)]
mod tests;
