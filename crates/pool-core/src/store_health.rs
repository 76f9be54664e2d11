//! Whether the store of record takes writes: what `/health` and `/metrics` tell, and what the
//! flush loop watches to know when to try again.
//!
//! The store adapter reports every call's outcome here: a write that succeeded makes the store
//! healthy, any call that failed for the backend's sake (not a conflict, not bad data) makes it
//! degraded, with a short reason from a fixed list (never the driver's message, which may name a
//! host, a user or a path). A read that succeeds proves nothing about writes (a read-only file
//! still answers reads), so it changes nothing.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::{Mutex, PoisonError};

use crate::UnixMs;

/// The store's standing, as the last calls found it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreStatus {
    Ok,
    /// Calls fail: since when, and why (a fixed phrase, safe to show).
    Degraded {
        since: UnixMs,
        reason: &'static str,
    },
}

#[derive(Debug, Default)]
pub struct StoreHealth {
    /// When the current run of failures began; 0 while healthy.
    failing_since: AtomicI64,
    reason: Mutex<&'static str>,
    failed_calls: AtomicU64,
}

impl StoreHealth {
    /// A write was acknowledged: the store takes writes again.
    pub fn write_succeeded(&self) {
        self.failing_since.store(0, Relaxed);
    }

    /// A call failed for the backend's sake.
    pub fn failed(&self, now: UnixMs, reason: &'static str) {
        *self.reason.lock().unwrap_or_else(PoisonError::into_inner) = reason;
        self.failed_calls.fetch_add(1, Relaxed);
        let _ = self.failing_since.compare_exchange(0, now.max(1), Relaxed, Relaxed);
    }

    pub fn status(&self) -> StoreStatus {
        match self.failing_since.load(Relaxed) {
            0 => StoreStatus::Ok,
            since => {
                StoreStatus::Degraded { since, reason: *self.reason.lock().unwrap_or_else(PoisonError::into_inner) }
            }
        }
    }

    pub fn is_ok(&self) -> bool {
        self.status() == StoreStatus::Ok
    }

    /// Store calls that failed since start.
    pub fn failed_calls(&self) -> u64 {
        self.failed_calls.load(Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_degrades_until_a_write_succeeds() {
        let health = StoreHealth::default();
        assert_eq!(health.status(), StoreStatus::Ok);
        health.failed(10, "disk full");
        health.failed(20, "database locked");
        assert_eq!(health.status(), StoreStatus::Degraded { since: 10, reason: "database locked" });
        assert_eq!(health.failed_calls(), 2);
        health.write_succeeded();
        assert!(health.is_ok());
    }
}
