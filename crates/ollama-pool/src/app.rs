//! Wiring: the one place the application is assembled, and its life cycle.
//!
//! `App::build` connects the store (behind encryption at rest when a master key is set), loads
//! keys and tokens into memory and builds the shared state; `App::serve` runs the server
//! ([`crate::server`]) on a bound listener until the shutdown token fires, then drains in-flight
//! requests for the grace period and flushes counters one last time. Tests bind port 0 and call
//! the same two functions.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::AtomicI64;
use std::time::Duration;

use anyhow::Context;
use pool_adapters::cipher::{self, EncryptingStore, MasterKey};
use pool_adapters::clock::{SystemClock, now_ms};
use pool_adapters::guard::GuardedStore;
use pool_adapters::upstream::{HttpUpstream, Timeouts, proxies_from_env};
use pool_core::buffer::BufferBudget;
use pool_core::limit::LocalLimiter;
use pool_core::pool::Pools;
use pool_core::ports::{Shutdown, Store};
use pool_core::probe::Prober;
use pool_core::proxy::Gateway;
use pool_core::recheck::ModelRechecks;
use pool_core::registry::Registry;
use pool_core::reqlog::RequestLog;
use pool_core::stats::Recorder;
use pool_core::store_health::StoreHealth;
use pool_core::token::TokenIndex;
use pool_http::cache::ResponseCache;
use pool_http::capacity::{Capacity, Connections};
use pool_http::jobs::Jobs;
use pool_http::{AdminCredential, AppState, ConsoleSettings, HttpSettings, Providers, Services, StatsRetention};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::admin_token::{self, AdminTokenSource};
use crate::config::about::Resolved;
use crate::config::{Config, duration};
use crate::server::{self, Limits};

pub struct App {
    pub state: AppState,
    pub admin_token: AdminTokenSource,
    flush_interval: Duration,
    /// Zero: no background health checks.
    health_interval: Duration,
    /// How often half-open keys are probed and doubted model lists re-read.
    recovery_interval: Duration,
    /// Cancelled when the grace period ends: streams still running end with an error event.
    streams_stop: CancellationToken,
    grace: Duration,
    /// A separate address for `/metrics`, if configured.
    metrics_listen: Option<String>,
    /// What a client connection may take and hold.
    limits: Limits,
}

impl App {
    pub async fn build(config: &Config) -> anyhow::Result<App> {
        let store_health = Arc::new(StoreHealth::default());
        let deadline = duration(config.database.statement_timeout_secs);
        let store: Arc<dyn Store> =
            Arc::new(GuardedStore::new(open_store(config).await?, deadline, Arc::clone(&store_health)));
        if config.master_key.is_none() {
            tracing::warn!(
                "upstream keys are stored in plaintext; to encrypt them, set POOL_MASTER_KEY (or master_key) \
                 to the output of `ollama-pool keys generate-master-key`"
            );
        }
        let specs = config.provider_specs()?;
        let pools = Arc::new(Pools::from_specs(&specs));
        let registry = Registry::new(Arc::clone(&pools), Arc::new(TokenIndex::default()), Arc::clone(&store));
        let loaded = registry.load().await.context("loading keys and tokens")?;
        tracing::info!(
            keys = loaded.keys,
            tokens = loaded.tokens,
            orphaned_keys = loaded.orphaned_keys,
            "loaded the pool"
        );
        let (admin_hash, admin_token) = admin_token::resolve(store.as_ref(), config.admin_token.as_deref()).await?;
        let streams_stop = CancellationToken::new();
        let gateway = Gateway {
            pools,
            policy: config.failure_policy(),
            quota: config.proxy.quota_rest(),
            upstream: Arc::new(upstream(config)?),
            clock: Arc::new(SystemClock),
            max_response_bytes: config.proxy.max_response_bytes,
            buffers: buffer_budget(config),
            deadline_ms: secs_ms(config.proxy.request_deadline_secs),
            stats: Arc::new(Recorder::new(config.stats.max_backlog_rows)),
            requests: Arc::new(RequestLog::new(
                config.request_log.max_queue_entries,
                config.request_log.retention_days > 0,
            )),
            limiter: Arc::new(LocalLimiter::default()),
            rechecks: Arc::new(ModelRechecks::default()),
            shutdown: Arc::new(StopStreams(streams_stop.clone())),
        };
        let restored = pool_core::accounting::restore_today(store.as_ref(), gateway.limiter.as_ref(), now_ms())
            .await
            .context("reading today's token usage for the daily quotas")?;
        tracing::debug!(tokens = restored, "restored today's token usage");
        let default = specs
            .iter()
            .map(|s| s.name.clone())
            .find(|n| n.as_ref() == config.default_provider)
            .context("default_provider is not configured")?;
        let providers = Providers::new(specs, default);
        apply_provider_switches(&providers, store.as_ref()).await?;
        let prober = Prober {
            upstream: Arc::new(probe_upstream(config)?),
            pools: Arc::clone(&gateway.pools),
            clock: Arc::new(SystemClock),
            policy: config.failure_policy(),
            quota: config.proxy.quota_rest(),
        };
        // The default `max_connections` comes from the descriptor limit, raised first.
        let max_connections = server::fds::max_connections(config.server.max_connections);
        let resolved = Resolved { buffer_budget_bytes: gateway.buffers.limit(), max_connections };
        let services = Services {
            gateway,
            registry,
            prober,
            jobs: Jobs::default(),
            tasks: TaskTracker::new(),
            stopping: CancellationToken::new(),
            providers,
            cache: ResponseCache::new(config.cache.settings()),
            admin: AdminCredential::from_hash(admin_hash),
            settings: HttpSettings {
                max_body_bytes: config.proxy.max_body_bytes,
                body_pace: config.server.body_pace(),
                buffer_wait: config.proxy.buffer_wait(),
                models_ttl_ms: i64::try_from(config.proxy.models_ttl_secs.saturating_mul(1000)).unwrap_or(i64::MAX),
                probe_concurrency: config.health.concurrency,
                stats_retention: StatsRetention {
                    minutes_ms: hours_ms(config.stats.minute_retention_hours),
                    hours_ms: hours_ms(config.stats.hour_retention_days.saturating_mul(24)),
                },
                request_log_retention_ms: Some(config.request_log.retention_days)
                    .filter(|days| *days > 0)
                    .map(|days| hours_ms(days.saturating_mul(24))),
                attempts_header: config.proxy.attempts_header,
                clients: config.limits.client_rules()?,
                console: ConsoleSettings { sessions: config.console.sessions() },
            },
            started_at: now_ms(),
            about: crate::config::about::about(config, resolved),
            storage: pool_adapters::sql::backend_name(&config.database.url),
            store_health,
            last_prune: AtomicI64::new(0),
            last_log_prune: AtomicI64::new(0),
            capacity: Capacity::new(config.server.max_concurrent_requests),
            connections: Arc::new(Connections::default()),
        };
        Ok(App {
            state: AppState::new(services),
            admin_token,
            flush_interval: duration(config.stats.flush_interval_secs),
            health_interval: Duration::from_secs(config.health.interval_secs),
            recovery_interval: duration(config.health.recovery_interval_secs),
            streams_stop,
            grace: duration(config.server.shutdown_grace_secs),
            metrics_listen: Some(config.metrics.listen.clone()).filter(|l| !l.is_empty()),
            limits: Limits { clock: config.server.clock(), max_connections },
        })
    }

    /// Serves until `shutdown` fires, then drains for the grace period and flushes.
    pub async fn serve(self, listener: TcpListener, shutdown: CancellationToken) -> anyhow::Result<()> {
        let (tasks, background) = (self.state.tasks.clone(), self.state.stopping.clone());
        tasks.spawn(flush_loop(self.state.clone(), self.flush_interval, background.clone()));
        tasks.spawn(request_log_loop(self.state.clone(), self.flush_interval, background.clone()));
        tasks.spawn(models_loop(self.state.clone(), background.clone()));
        if !self.health_interval.is_zero() {
            tasks.spawn(health_loop(self.state.clone(), self.health_interval, background.clone()));
        }
        tasks.spawn(recovery_loop(self.state.clone(), self.recovery_interval, background.clone()));
        if let Some(addr) = &self.metrics_listen {
            let metrics = TcpListener::bind(addr).await.with_context(|| format!("binding metrics.listen {addr}"))?;
            tracing::info!(address = %addr, "serving /metrics without a token");
            let router = pool_http::metrics_router(self.state.clone());
            let connections = Arc::new(Connections::default());
            tasks.spawn(server::run(metrics, router, self.limits, connections, background.clone()));
        }
        let router = pool_http::router(self.state.clone());
        let server = server::run(listener, router, self.limits, Arc::clone(&self.state.connections), shutdown.clone());
        let grace = self.grace;
        tokio::select! {
            () = server => {}
            () = async { shutdown.cancelled().await; tokio::time::sleep(grace).await } => {
                tracing::warn!(grace_secs = grace.as_secs_f64(), "grace period over; closing the remaining connections");
            }
        }
        self.streams_stop.cancel();
        settle_in_flight(&self.state).await;
        background.cancel();
        tasks.close();
        tasks.wait().await;
        flush_once(&self.state).await;
        write_request_log(&self.state).await;
        tracing::info!("stopped");
        Ok(())
    }
}

/// The configured master key, parsed.
pub fn master_key(config: &Config) -> anyhow::Result<Option<MasterKey>> {
    let key = config.master_key.as_deref().map(MasterKey::parse).transpose();
    key.context("master_key / POOL_MASTER_KEY is invalid (make one with `ollama-pool keys generate-master-key`)")
}

/// Opens the configured database, behind [`EncryptingStore`] when a master key is set.
///
/// With a key, keys stored before encryption was turned on are encrypted now, after every
/// encrypted one has been checked to open (so a wrong key stops the start here, with a clear
/// error). Without one, an encrypted key stops the start too, rather than reach an upstream as
/// ciphertext. Both checks read every key once more before the registry loads them: a startup
/// cost of milliseconds per ten thousand keys.
pub async fn open_store(config: &Config) -> anyhow::Result<Arc<dyn Store>> {
    let store =
        pool_adapters::sql::connect_with(&config.database.url, &config.database.tuning()).await.with_context(|| {
            format!("opening the database ({})", pool_adapters::sql::backend_name(&config.database.url))
        })?;
    let Some(key) = master_key(config)? else {
        cipher::refuse_sealed(store.as_ref()).await?;
        return Ok(store);
    };
    let encrypting = EncryptingStore::new(store, &key);
    let sealed = encrypting.seal_plaintext_keys().await?;
    if sealed > 0 {
        tracing::info!(keys = sealed, "encrypted the upstream keys stored before encryption was turned on");
    }
    Ok(Arc::new(encrypting))
}

fn upstream(config: &Config) -> anyhow::Result<HttpUpstream> {
    let timeouts = Timeouts {
        connect: duration(config.proxy.connect_timeout_secs),
        first_byte: duration(config.proxy.first_byte_timeout_secs),
        idle: duration(config.proxy.idle_timeout_secs),
    };
    let proxies = proxies_from_env();
    if proxies.is_some() {
        tracing::info!("upstream calls go through the HTTP proxy set in the environment (NO_PROXY respected)");
    }
    HttpUpstream::new(timeouts, concat!("ollama-pool/", env!("CARGO_PKG_VERSION")), proxies)
        .context("building the upstream HTTP client")
}

/// A client with short timeouts for health probes: a probe must never wait like a long generation.
fn probe_upstream(config: &Config) -> anyhow::Result<HttpUpstream> {
    let bound = duration(config.health.probe_timeout_secs);
    let timeouts =
        Timeouts { connect: bound.min(duration(config.proxy.connect_timeout_secs)), first_byte: bound, idle: bound };
    HttpUpstream::new(timeouts, concat!("ollama-pool/", env!("CARGO_PKG_VERSION")), proxies_from_env())
        .context("building the probe HTTP client")
}

/// Providers switched off or on at run time stay so across restarts.
async fn apply_provider_switches(providers: &Providers, store: &dyn pool_core::ports::Store) -> anyhow::Result<()> {
    for provider in providers.all() {
        let name = provider.spec.name.to_string();
        if let Some(value) =
            store.setting(&pool_http::routes::enabled_setting(&name)).await.context("reading provider switches")?
        {
            provider.set_enabled(value == "true");
        }
    }
    Ok(())
}

/// Probes keys that are out every `interval`, so they come back when their upstream recovers.
async fn health_loop(state: AppState, interval: Duration, cancel: CancellationToken) {
    let horizon_ms = i64::try_from(interval.as_millis()).unwrap_or(i64::MAX);
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => pool_http::routes::background_health(&state, horizon_ms).await,
            () = cancel.cancelled() => return,
        }
    }
}

/// Probes half-open keys and re-reads doubted model lists every `interval` until cancelled.
async fn recovery_loop(state: AppState, interval: Duration, cancel: CancellationToken) {
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => pool_http::routes::recover(&state).await,
            () = cancel.cancelled() => return,
        }
    }
}

/// Streams told to stop end on their next poll; this waits (briefly) until each has counted
/// itself, so the final flush holds them.
async fn settle_in_flight(state: &AppState) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    while state.gateway.stats.metrics.snapshot().in_flight > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The gateway's [`Shutdown`]: fires when the grace period of a shutdown is over.
struct StopStreams(CancellationToken);

impl Shutdown for StopStreams {
    fn stopped(&self) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        Box::pin(self.0.clone().cancelled_owned())
    }
}

fn secs_ms(secs: f64) -> i64 {
    i64::try_from(duration(secs).as_millis()).unwrap_or(i64::MAX)
}

/// Writes counters to the store every `interval` until cancelled; a failed flush keeps them in
/// memory and the next one catches up.
async fn flush_loop(state: AppState, interval: Duration, cancel: CancellationToken) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => flush_once(&state).await,
            () = cancel.cancelled() => return,
        }
    }
}

async fn flush_once(state: &AppState) {
    let was_ok = state.store_health.is_ok();
    match state.flush().await {
        Ok(report) => {
            tracing::debug!(keys = report.keys, tokens = report.tokens, stats = report.stats, "flushed counters");
            if report.is_empty() && !state.store_health.is_ok() {
                // Nothing to write, so nothing found out whether the store takes writes again.
                let _ = state.probe_store().await;
            }
        }
        // Logged once per outage, and once when it ends; `/health` and `/metrics` tell the rest.
        Err(e) if was_ok => {
            tracing::warn!(error.cause_chain = %e, "flushing counters failed; they stay in memory until the next flush")
        }
        Err(e) => tracing::debug!(error.cause_chain = %e, "flushing counters failed again"),
    }
    if !was_ok && state.store_health.is_ok() {
        tracing::info!("the store takes writes again; the counts held in memory are written");
    }
    let pruned = state.prune_stats_hourly().await;
    if let Err(e) = pruned {
        tracing::warn!(error.cause_chain = %e, "pruning old statistics failed; the next hour tries again");
    }
}

/// Writes the request log every `interval` until cancelled, apart from the counters: a log
/// write that takes long (many entries, a slow store) never delays a statistics flush, which is
/// what bounds the counts a crash can lose. Its store calls leave the store's health to the
/// counters' writes (see `pool_adapters::guard`).
async fn request_log_loop(state: AppState, interval: Duration, cancel: CancellationToken) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => write_request_log(&state).await,
            () = cancel.cancelled() => return,
        }
    }
}

async fn write_request_log(state: &AppState) {
    match state.flush_request_log().await {
        Ok(written) => tracing::debug!(written, "wrote the request log"),
        Err(e) => tracing::debug!(error.cause_chain = %e, "writing the request log failed; its entries wait"),
    }
    if let Err(e) = state.prune_request_log_hourly().await {
        tracing::warn!(error.cause_chain = %e, "pruning the request log failed; the next hour tries again");
    }
}

fn hours_ms(hours: u64) -> i64 {
    i64::try_from(hours.saturating_mul(3_600_000)).unwrap_or(i64::MAX)
}

/// Keeps every provider's model list fresh so that `/v1/models` never waits on an upstream.
async fn models_loop(state: AppState, cancel: CancellationToken) {
    let period = Duration::from_millis(u64::try_from(state.settings.models_ttl_ms / 4).unwrap_or(0).max(1000));
    let mut ticker = tokio::time::interval(period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => pool_http::routes::refresh_models(&state).await,
            () = cancel.cancelled() => return,
        }
    }
}

/// The buffer budget, logged once: with a body limit above it, the largest bodies are refused.
fn buffer_budget(config: &Config) -> Arc<BufferBudget> {
    let budget = config.proxy.buffer_budget();
    tracing::info!(bytes = budget, "buffer budget for bodies and answers read whole");
    if budget < config.proxy.max_body_bytes {
        tracing::warn!(
            budget,
            max_body_bytes = config.proxy.max_body_bytes,
            "proxy.buffer_budget_bytes is below proxy.max_body_bytes: the largest bodies will be refused with 503"
        );
    }
    BufferBudget::new(budget)
}
