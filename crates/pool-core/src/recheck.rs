//! Keys whose model lists a client's request has put in doubt.
//!
//! An upstream 404 for a model a key is believed to serve is only a hint: a client may have
//! typed a name that exists on some keys only, or one key's list may really be out of date.
//! The request moves on to the next key; the key is queued here, and a background probe of its
//! model list (rate-limited per key) is the only thing that changes the list. So no client
//! request mutates the routing state every other client shares.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use crate::UnixMs;
use crate::ids::KeyId;

/// Keys to re-probe, each at most once per `min_interval_ms`.
#[derive(Debug)]
pub struct ModelRechecks {
    min_interval_ms: i64,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// When each key was last queued; bounded by the number of keys (operators create keys,
    /// clients do not), and pruned of entries older than the interval when it grows.
    last: HashMap<KeyId, UnixMs>,
    pending: Vec<KeyId>,
}

/// Beyond this many remembered keys, entries older than the interval are dropped.
const PRUNE_ABOVE: usize = 4_096;

impl ModelRechecks {
    pub fn new(min_interval_ms: i64) -> Self {
        Self { min_interval_ms, inner: Mutex::new(Inner::default()) }
    }

    /// Queues `key` for a re-probe unless it was queued within the interval; returns whether it
    /// was queued.
    pub fn hint(&self, key: KeyId, now: UnixMs) -> bool {
        let mut inner = self.lock();
        if inner.last.get(&key).is_some_and(|at| now - at < self.min_interval_ms) {
            return false;
        }
        if inner.last.len() >= PRUNE_ABOVE {
            let interval = self.min_interval_ms;
            inner.last.retain(|_, at| now - *at < interval);
        }
        inner.last.insert(key, now);
        inner.pending.push(key);
        true
    }

    /// The keys queued since the last call.
    pub fn take(&self) -> Vec<KeyId> {
        std::mem::take(&mut self.lock().pending)
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Default for ModelRechecks {
    /// One re-probe per key per five minutes.
    fn default() -> Self {
        Self::new(300_000)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    #[test]
    fn a_key_is_queued_at_most_once_per_interval() {
        let rechecks = ModelRechecks::new(1_000);
        let key = KeyId::from_uuid(Uuid::from_u128(1));
        assert!(rechecks.hint(key, 0));
        assert!(!rechecks.hint(key, 999));
        assert_eq!(rechecks.take(), vec![key]);
        assert!(rechecks.take().is_empty());
        assert!(rechecks.hint(key, 1_000));
    }

    #[test]
    fn the_memory_of_old_hints_is_pruned() {
        let rechecks = ModelRechecks::new(10);
        for n in 0..(PRUNE_ABOVE as u128 + 10) {
            rechecks.hint(KeyId::from_uuid(Uuid::from_u128(n)), n as i64 * 100);
        }
        assert!(rechecks.lock().last.len() <= 10, "only the hints within the interval are kept");
    }
}
