//! The fake upstream's shared state: per-key faults, counters and records, model lists
//! and stream settings.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use crate::faults::{Fault, Outage, RecordedRequest, StoredRequest};
use crate::rng::SplitMix;

/// The model list served when none was set.
const DEFAULT_MODELS: [&str; 3] = ["llama3.2:3b", "qwen2.5:7b", "kimi-k2:1t"];

/// What the fake upstream knows about one key.
#[derive(Default)]
struct KeyState {
    calls: usize,
    last: Option<StoredRequest>,
    fault: Option<Fault>,
    /// Faults for the next requests, front first, each with its remaining count.
    queued: VecDeque<(Fault, usize)>,
}

impl KeyState {
    /// The fault of the request being received, consuming one queued use if any.
    fn take_fault(&mut self) -> Option<Fault> {
        if let Some((fault, left)) = self.queued.front_mut() {
            let fault = fault.clone();
            *left -= 1;
            if *left == 0 {
                self.queued.pop_front();
            }
            return Some(fault);
        }
        self.fault.clone()
    }
}

/// Model lists: a default one and per-key overrides.
struct Models {
    default: Arc<[String]>,
    per_key: HashMap<String, Arc<[String]>>,
}

/// State shared by the handle, the accept loop and every connection.
pub(crate) struct Inner {
    total: AtomicUsize,
    open: AtomicUsize,
    next_id: AtomicU64,
    chunks: AtomicUsize,
    chunk_delay_nanos: AtomicU64,
    keys: Mutex<HashMap<String, KeyState>>,
    models: Mutex<Models>,
    /// Whether any per-key model list was ever set (skips a lookup otherwise).
    per_key_models: AtomicBool,
    /// The draws of [`Fault::Random`] and [`Fault::OneOf`]: seeded, so a run can be repeated.
    rng: SplitMix,
    /// The [`Outage`] in force, as its index.
    outage: AtomicU8,
}

const OUTAGES: [Outage; 3] = [Outage::Off, Outage::Unavailable, Outage::Drop];

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Inner {
    pub(crate) fn new() -> Inner {
        Inner {
            total: AtomicUsize::new(0),
            open: AtomicUsize::new(0),
            next_id: AtomicU64::new(1),
            chunks: AtomicUsize::new(3),
            chunk_delay_nanos: AtomicU64::new(0),
            keys: Mutex::new(HashMap::new()),
            models: Mutex::new(Models {
                default: DEFAULT_MODELS.iter().map(|m| (*m).to_owned()).collect(),
                per_key: HashMap::new(),
            }),
            per_key_models: AtomicBool::new(false),
            rng: SplitMix::new(0),
            outage: AtomicU8::new(0),
        }
    }

    pub(crate) fn set_seed(&self, seed: u64) {
        self.rng.reseed(seed);
    }

    pub(crate) fn set_outage(&self, outage: Outage) {
        let index = OUTAGES.iter().position(|o| *o == outage).unwrap_or(0);
        self.outage.store(u8::try_from(index).unwrap_or(0), Ordering::Relaxed);
    }

    pub(crate) fn outage(&self) -> Outage {
        OUTAGES.get(usize::from(self.outage.load(Ordering::Relaxed))).copied().unwrap_or_default()
    }

    /// A fault with its random choices made: never [`Fault::Random`] or [`Fault::OneOf`].
    fn resolve(&self, mut fault: Fault) -> Option<Fault> {
        loop {
            fault = match fault {
                Fault::Random { ratio, fault } => {
                    if self.rng.unit() >= ratio {
                        return None;
                    }
                    *fault
                }
                Fault::OneOf(mut faults) if !faults.is_empty() => {
                    let len = u64::try_from(faults.len()).unwrap_or(u64::MAX);
                    let index = usize::try_from(self.rng.draw() % len).unwrap_or(0);
                    faults.swap_remove(index)
                }
                Fault::OneOf(_) => return None,
                leaf => return Some(leaf),
            }
        }
    }

    /// Counts and records a request of `key`, and returns the fault to apply to it.
    pub(crate) fn receive(&self, key: &str, request: StoredRequest) -> Option<Fault> {
        self.total.fetch_add(1, Ordering::Relaxed);
        let mut keys = lock(&self.keys);
        let state = match keys.get_mut(key) {
            Some(state) => state,
            None => keys.entry(key.to_owned()).or_default(),
        };
        state.calls += 1;
        state.last = Some(request);
        let fault = state.take_fault();
        drop(keys);
        match self.outage() {
            Outage::Off => fault.and_then(|fault| self.resolve(fault)),
            Outage::Unavailable => Some(Fault::status(503)),
            Outage::Drop => Some(Fault::DropBeforeHeaders),
        }
    }

    fn with_key(&self, key: &str, f: impl FnOnce(&mut KeyState)) {
        let mut keys = lock(&self.keys);
        f(keys.entry(key.to_owned()).or_default());
    }

    pub(crate) fn set_fault(&self, key: &str, fault: Fault) {
        self.with_key(key, |state| state.fault = Some(fault));
    }

    pub(crate) fn fail_next(&self, key: &str, fault: Fault, times: usize) {
        if times > 0 {
            self.with_key(key, |state| state.queued.push_back((fault, times)));
        }
    }

    pub(crate) fn clear_fault(&self, key: &str) {
        if let Some(state) = lock(&self.keys).get_mut(key) {
            state.fault = None;
            state.queued.clear();
        }
    }

    pub(crate) fn calls(&self, key: &str) -> usize {
        lock(&self.keys).get(key).map_or(0, |state| state.calls)
    }

    pub(crate) fn total_calls(&self) -> usize {
        self.total.load(Ordering::Relaxed)
    }

    pub(crate) fn last_request(&self, key: &str) -> Option<RecordedRequest> {
        let keys = lock(&self.keys);
        keys.get(key)?.last.as_ref().map(StoredRequest::to_recorded)
    }

    pub(crate) fn set_models(&self, key: Option<&str>, models: Vec<String>) {
        let mut lists = lock(&self.models);
        match key {
            None => lists.default = models.into(),
            Some(key) => {
                lists.per_key.insert(key.to_owned(), models.into());
                self.per_key_models.store(true, Ordering::Relaxed);
            }
        }
    }

    pub(crate) fn models_for(&self, key: &str) -> Arc<[String]> {
        let lists = lock(&self.models);
        if self.per_key_models.load(Ordering::Relaxed)
            && let Some(list) = lists.per_key.get(key)
        {
            return Arc::clone(list);
        }
        Arc::clone(&lists.default)
    }

    pub(crate) fn set_stream_chunks(&self, n: usize, delay: Duration) {
        let nanos = u64::try_from(delay.as_nanos()).unwrap_or(u64::MAX);
        self.chunks.store(n, Ordering::Relaxed);
        self.chunk_delay_nanos.store(nanos, Ordering::Relaxed);
    }

    /// Content chunks per stream and the delay before each event.
    pub(crate) fn stream_settings(&self) -> (usize, Duration) {
        let nanos = self.chunk_delay_nanos.load(Ordering::Relaxed);
        (self.chunks.load(Ordering::Relaxed), Duration::from_nanos(nanos))
    }

    /// A fresh number for response ids.
    pub(crate) fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    pub(crate) fn open_connections(&self) -> usize {
        self.open.load(Ordering::SeqCst)
    }

    pub(crate) fn connection_opened(&self) {
        self.open.fetch_add(1, Ordering::SeqCst);
    }

    pub(crate) fn connection_closed(&self) {
        self.open.fetch_sub(1, Ordering::SeqCst);
    }
}
