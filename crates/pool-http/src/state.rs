//! `AppState`: everything a handler may touch, built once by the binary.

use std::collections::HashMap;
use std::ops::Deref;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering::Relaxed};

use arc_swap::ArcSwapOption;
use bytes::Bytes;
use pool_core::UnixMs;
use pool_core::ports::StoreError;
use pool_core::probe::Prober;
use pool_core::provider::{ProviderName, ProviderSpec};
use pool_core::proxy::Gateway;
use pool_core::registry::Registry;
use pool_core::secret::{SecretHash, ct_eq_hash, hash_secret};

/// Cheap to clone: one `Arc`.
#[derive(Clone)]
pub struct AppState(Arc<Services>);

impl AppState {
    pub fn new(services: Services) -> Self {
        Self(Arc::new(services))
    }
}

impl Deref for AppState {
    type Target = Services;
    fn deref(&self) -> &Services {
        &self.0
    }
}

pub struct Services {
    pub gateway: Gateway,
    pub registry: Registry,
    /// Probes keys with its own short timeouts (health checks, verification, validated imports).
    pub prober: Prober,
    /// Validated imports under way or recently finished.
    pub jobs: crate::jobs::Jobs,
    /// Background work started by handlers (validated imports); shutdown waits for it.
    pub tasks: tokio_util::task::TaskTracker,
    /// Fires at shutdown: long-running handler work stops early.
    pub stopping: tokio_util::sync::CancellationToken,
    pub providers: Providers,
    /// Answers of identical non-stream requests (off unless configured).
    pub cache: crate::cache::ResponseCache,
    pub admin: AdminCredential,
    pub settings: HttpSettings,
    pub started_at: UnixMs,
    /// The version, the effective configuration and its warnings, for the Settings page.
    pub about: crate::console::about::About,
    /// "sqlite" or "postgres", for `/health`.
    pub storage: &'static str,
    /// Whether the store takes writes, as the last calls found it (see `pool_adapters::guard`).
    pub store_health: Arc<pool_core::store_health::StoreHealth>,
    /// When statistics were last pruned.
    pub last_prune: AtomicI64,
    /// Requests answered at once, under `server.max_concurrent_requests`.
    pub capacity: Arc<crate::capacity::Capacity>,
    /// Client connections, counted by the accept loop, for `/metrics`.
    pub connections: Arc<crate::capacity::Connections>,
}

#[derive(Clone, Debug)]
pub struct HttpSettings {
    /// Largest request body accepted (413 beyond).
    pub max_body_bytes: usize,
    /// How slowly a request body may arrive (408 beyond).
    pub body_pace: crate::extract::BodyPace,
    /// How long a request waits for room in the buffer budget before its 503.
    pub buffer_wait: std::time::Duration,
    /// How long a fetched model list is served before it is fetched again.
    pub models_ttl_ms: i64,
    /// Probes running at once.
    pub probe_concurrency: usize,
    pub stats_retention: StatsRetention,
    /// Whether proxied answers carry `x-pool-attempts` (the keys tried, and why each was left).
    pub attempts_header: bool,
    /// Who may call the client API: blocked user agents, requests per client address.
    pub clients: pool_core::client::ClientRules,
    /// The web console's settings.
    pub console: ConsoleSettings,
}

/// How the console's browser sessions live.
#[derive(Clone, Copy, Debug)]
pub struct ConsoleSettings {
    pub sessions: pool_core::session::SessionPolicy,
}

/// How long statistics rollups are kept.
#[derive(Clone, Copy, Debug)]
pub struct StatsRetention {
    pub minutes_ms: i64,
    pub hours_ms: i64,
}

/// What one flush wrote.
#[derive(Clone, Copy, Debug, Default)]
pub struct Flushed {
    pub keys: usize,
    pub tokens: usize,
    pub stats: usize,
}

impl Flushed {
    pub fn is_empty(&self) -> bool {
        self.keys == 0 && self.tokens == 0 && self.stats == 0
    }
}

/// The setting a probe writes to find out whether the store takes writes again.
const PROBE_SETTING: &str = "store.last_probe";

impl Services {
    /// Writes every in-memory counter to the store: key and token counters, then statistics.
    /// What could not be written stays in memory for the next flush.
    pub async fn flush(&self) -> Result<Flushed, StoreError> {
        let now = self.gateway.clock.now_ms();
        let counters = self.registry.flush().await;
        let stats = pool_core::accounting::flush_stats(&self.gateway.stats, self.registry.store.as_ref(), now).await;
        let counters = counters?;
        Ok(Flushed { keys: counters.keys, tokens: counters.tokens, stats: stats? })
    }

    /// Writes one small value, to learn whether the store takes writes (its health follows).
    pub async fn probe_store(&self) -> Result<(), StoreError> {
        let now = self.gateway.clock.now_ms();
        self.registry.store.put_setting(PROBE_SETTING, &now.to_string()).await
    }

    /// Deletes rollup rows past their retention, at most once an hour.
    pub async fn prune_stats_hourly(&self) -> Result<(), StoreError> {
        let now = self.gateway.clock.now_ms();
        let last = self.last_prune.load(Relaxed);
        if now - last < pool_core::stats::HOUR_MS
            || self.last_prune.compare_exchange(last, now, Relaxed, Relaxed).is_err()
        {
            return Ok(());
        }
        let retention = self.settings.stats_retention;
        let deleted = self.registry.store.prune_stats(now - retention.minutes_ms, now - retention.hours_ms).await?;
        tracing::debug!(deleted, "pruned old statistics");
        Ok(())
    }
}

/// The admin token, held only as its hash; compared in constant time.
pub struct AdminCredential {
    hash: SecretHash,
}

impl AdminCredential {
    pub fn from_hash(hash: SecretHash) -> Self {
        Self { hash }
    }

    pub fn verify(&self, presented: &str) -> bool {
        ct_eq_hash(&hash_secret(presented), &self.hash)
    }
}

/// The configured providers; the set is fixed at start, their `enabled` flags are not.
pub struct Providers {
    by_name: HashMap<ProviderName, Arc<ProviderRuntime>>,
    /// The provider of the unprefixed routes (`/v1/...`, `/api/...`).
    pub default: ProviderName,
}

impl Providers {
    pub fn new(specs: Vec<ProviderSpec>, default: ProviderName) -> Self {
        let by_name = specs.into_iter().map(|spec| (spec.name.clone(), Arc::new(ProviderRuntime::new(spec)))).collect();
        Self { by_name, default }
    }

    pub fn get(&self, name: &str) -> Option<&Arc<ProviderRuntime>> {
        self.by_name.get(name)
    }

    /// All providers, sorted by name.
    pub fn all(&self) -> Vec<&Arc<ProviderRuntime>> {
        let mut all: Vec<_> = self.by_name.values().collect();
        all.sort_by(|a, b| a.spec.name.cmp(&b.spec.name));
        all
    }
}

pub struct ProviderRuntime {
    pub spec: ProviderSpec,
    enabled: AtomicBool,
    pub models: ModelCache,
}

impl ProviderRuntime {
    fn new(spec: ProviderSpec) -> Self {
        let enabled = AtomicBool::new(spec.enabled);
        Self { spec, enabled, models: ModelCache::default() }
    }

    pub fn is_enabled(&self) -> bool {
        self.enabled.load(Relaxed)
    }

    pub fn set_enabled(&self, enabled: bool) {
        self.enabled.store(enabled, Relaxed);
    }
}

/// Which model list a client asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ModelList {
    /// `/v1/models`, in the OpenAI shape.
    OpenAi,
    /// `/api/tags`, in Ollama's shape.
    Tags,
}

impl ModelList {
    pub const ALL: [ModelList; 2] = [ModelList::OpenAi, ModelList::Tags];
}

/// The provider's model lists as last built, one per shape. Each instance builds its own from
/// its own keys (the keys' models reach other instances through the store at their restart), so
/// nothing here is shared between instances.
#[derive(Default)]
pub struct ModelCache {
    openai: ArcSwapOption<CachedModels>,
    tags: ArcSwapOption<CachedModels>,
    /// One build at a time per provider; others wait for its result.
    pub(crate) refresh: tokio::sync::Mutex<()>,
}

pub struct CachedModels {
    pub built_at: UnixMs,
    /// The pool's model generation when the list was built: a later change of the keys or of
    /// their models makes the list stale before its TTL.
    pub generation: u64,
    pub body: Bytes,
}

impl ModelCache {
    fn slot(&self, list: ModelList) -> &ArcSwapOption<CachedModels> {
        match list {
            ModelList::OpenAi => &self.openai,
            ModelList::Tags => &self.tags,
        }
    }

    pub fn get(&self, list: ModelList) -> Option<Arc<CachedModels>> {
        self.slot(list).load_full()
    }

    /// The list when it is younger than `ttl_ms` and was built at `generation`.
    pub fn fresh(&self, list: ModelList, now: UnixMs, ttl_ms: i64, generation: u64) -> Option<Arc<CachedModels>> {
        self.get(list).filter(|c| now - c.built_at < ttl_ms && c.generation == generation)
    }

    pub fn put(&self, list: ModelList, built: CachedModels) {
        self.slot(list).store(Some(Arc::new(built)));
    }
}
