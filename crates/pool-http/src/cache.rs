//! The response cache (opt-in): whole `200` answers of non-stream requests on the proxied
//! endpoints, served again to an identical request without contacting an upstream.
//!
//! What makes two requests identical is [`key`]: the provider, the upstream route, the whole body
//! in canonical form, and the client token when `per_token` is set (otherwise tenants share
//! answers, which is why the cache is off by default and per-token is one switch away).
//!
//! The decision a newcomer would question: the cache lives in this process's memory, not in
//! Redis. A shared cache would cost a network round trip on every cacheable request, the hot path
//! the gateway keeps free of them; each instance of a cluster keeps its own. Entries are bounded
//! three ways (a TTL each, a count, total body bytes) and the least recently used go first. One
//! `std::sync::Mutex` guards the entries; it is never held across an await, and a hit only clones
//! a reference-counted body under it. Two identical requests that miss at once both go upstream
//! (no request coalescing): the second answer simply replaces the first.

pub(crate) mod hook;
pub mod key;

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use axum::http::{HeaderName, HeaderValue, StatusCode};
use bytes::Bytes;
use pool_core::UnixMs;

pub use key::{CacheKey, KeyParts};

/// `x-cache: HIT` or `MISS`, on cacheable requests while the cache is on.
pub const X_CACHE: HeaderName = HeaderName::from_static("x-cache");

/// The cache's configuration (`[cache]`).
#[derive(Clone, Debug)]
pub struct CacheSettings {
    pub enabled: bool,
    /// How long an entry is served after it was stored.
    pub ttl_ms: i64,
    pub max_entries: usize,
    /// Bound on the sum of the cached bodies' lengths.
    pub max_bytes: usize,
    /// Whether each client token has its own entries (tenants never see each other's answers).
    pub per_token: bool,
}

impl CacheSettings {
    /// The cache turned off.
    pub fn disabled() -> Self {
        Self { enabled: false, ttl_ms: 300_000, max_entries: 10_000, max_bytes: 64 << 20, per_token: false }
    }
}

/// A stored answer: what a hit returns.
#[derive(Clone, Debug, PartialEq)]
pub struct CachedResponse {
    pub status: StatusCode,
    pub content_type: Option<HeaderValue>,
    pub body: Bytes,
}

/// The cache's figures, for `GET /admin/cache/stats`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CacheStats {
    pub entries: usize,
    pub bytes: usize,
    pub hits: u64,
    pub misses: u64,
    /// Entries removed to make room (not expiries, not clears).
    pub evictions: u64,
    pub stores: u64,
}

pub struct ResponseCache {
    settings: CacheSettings,
    entries: Mutex<Entries>,
    hits: AtomicU64,
    misses: AtomicU64,
    evictions: AtomicU64,
    stores: AtomicU64,
}

impl std::fmt::Debug for ResponseCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseCache").field("settings", &self.settings).finish_non_exhaustive()
    }
}

/// The entries and their two orders, always changed together.
#[derive(Default)]
struct Entries {
    map: HashMap<CacheKey, Entry>,
    /// Least recently used first: the eviction order.
    by_use: BTreeMap<u64, CacheKey>,
    /// Oldest stored first: with one TTL for every entry, also the order in which they expire.
    by_age: BTreeMap<u64, CacheKey>,
    bytes: usize,
    /// A logical clock for the two orders: each store and each hit takes the next tick.
    tick: u64,
}

struct Entry {
    response: CachedResponse,
    expires_at: UnixMs,
    used: u64,
    stored: u64,
}

impl ResponseCache {
    pub fn new(settings: CacheSettings) -> Self {
        Self {
            settings,
            entries: Mutex::default(),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            evictions: AtomicU64::new(0),
            stores: AtomicU64::new(0),
        }
    }

    pub fn settings(&self) -> &CacheSettings {
        &self.settings
    }

    pub fn enabled(&self) -> bool {
        self.settings.enabled
    }

    /// The live answer stored under `key`, counted as a hit or a miss.
    pub fn get(&self, key: &CacheKey, now: UnixMs) -> Option<CachedResponse> {
        let found = self.with_entries(|entries| {
            entries.purge_expired(now);
            let tick = entries.next_tick();
            let entry = entries.map.get_mut(key).filter(|e| e.expires_at > now)?;
            let previous = std::mem::replace(&mut entry.used, tick);
            let response = entry.response.clone();
            entries.by_use.remove(&previous);
            entries.by_use.insert(tick, *key);
            Some(response)
        });
        let counter = if found.is_some() { &self.hits } else { &self.misses };
        counter.fetch_add(1, Relaxed);
        found
    }

    /// Stores an answer under `key` (replacing any), then evicts the least recently used entries
    /// until both bounds hold. An answer larger than the whole byte bound is not stored.
    pub fn put(&self, key: CacheKey, response: CachedResponse, now: UnixMs) {
        let (max_entries, max_bytes) = (self.settings.max_entries, self.settings.max_bytes);
        if !self.settings.enabled || response.body.len() > max_bytes || max_entries == 0 {
            return;
        }
        let expires_at = now.saturating_add(self.settings.ttl_ms);
        let evicted = self.with_entries(|entries| {
            entries.remove(&key);
            entries.purge_expired(now);
            entries.insert(key, response, expires_at);
            entries.evict_until(max_entries, max_bytes)
        });
        self.stores.fetch_add(1, Relaxed);
        self.evictions.fetch_add(evicted, Relaxed);
    }

    /// Removes every entry; returns how many were live.
    pub fn clear(&self, now: UnixMs) -> usize {
        self.with_entries(|entries| {
            entries.purge_expired(now);
            std::mem::take(entries).map.len()
        })
    }

    pub fn stats(&self, now: UnixMs) -> CacheStats {
        let (entries, bytes) = self.with_entries(|entries| {
            entries.purge_expired(now);
            (entries.map.len(), entries.bytes)
        });
        CacheStats {
            entries,
            bytes,
            hits: self.hits.load(Relaxed),
            misses: self.misses.load(Relaxed),
            evictions: self.evictions.load(Relaxed),
            stores: self.stores.load(Relaxed),
        }
    }

    /// Runs `f` under the lock. A panic under it cannot leave the orders half-changed in a way
    /// that matters more than losing cached answers, so a poisoned lock is simply taken over.
    fn with_entries<T>(&self, f: impl FnOnce(&mut Entries) -> T) -> T {
        let mut guard = self.entries.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut guard)
    }
}

impl Entries {
    fn next_tick(&mut self) -> u64 {
        self.tick += 1;
        self.tick
    }

    fn insert(&mut self, key: CacheKey, response: CachedResponse, expires_at: UnixMs) {
        let tick = self.next_tick();
        self.bytes += response.body.len();
        self.by_use.insert(tick, key);
        self.by_age.insert(tick, key);
        self.map.insert(key, Entry { response, expires_at, used: tick, stored: tick });
    }

    fn remove(&mut self, key: &CacheKey) -> bool {
        let Some(entry) = self.map.remove(key) else { return false };
        self.by_use.remove(&entry.used);
        self.by_age.remove(&entry.stored);
        self.bytes -= entry.response.body.len();
        true
    }

    /// Drops the expired entries at the old end; amortised O(log n) per entry ever stored.
    fn purge_expired(&mut self, now: UnixMs) {
        while let Some((_, key)) = self.by_age.first_key_value() {
            let key = *key;
            if self.map.get(&key).is_some_and(|e| e.expires_at > now) {
                return;
            }
            if !self.remove(&key) {
                self.by_age.pop_first();
            }
        }
    }

    /// Evicts least recently used entries until both bounds hold; returns how many went.
    fn evict_until(&mut self, max_entries: usize, max_bytes: usize) -> u64 {
        let mut evicted = 0;
        while self.map.len() > max_entries || self.bytes > max_bytes {
            let Some((_, key)) = self.by_use.pop_first() else { break };
            if self.remove(&key) {
                evicted += 1;
            }
        }
        evicted
    }
}

#[cfg(test)]
mod tests;
