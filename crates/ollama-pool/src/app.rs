//! Wiring: the one place the application is assembled, and its life cycle.
//!
//! `App::build` connects the store, loads keys and tokens into memory and builds the shared state;
//! `App::serve` runs the server on a bound listener until the shutdown token fires, then drains
//! in-flight requests for the grace period and flushes counters one last time. Tests bind port 0
//! and call the same two functions.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use pool_adapters::clock::{SystemClock, now_ms};
use pool_adapters::upstream::{HttpUpstream, Timeouts};
use pool_core::pool::Pools;
use pool_core::proxy::Gateway;
use pool_core::registry::Registry;
use pool_core::token::TokenIndex;
use pool_http::{AdminCredential, AppState, HttpSettings, Providers, Services};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::admin_token::{self, AdminTokenSource};
use crate::config::{Config, duration};

pub struct App {
    pub state: AppState,
    pub admin_token: AdminTokenSource,
    flush_interval: Duration,
    grace: Duration,
}

impl App {
    pub async fn build(config: &Config) -> anyhow::Result<App> {
        let store = pool_adapters::sql::connect(&config.database.url).await.with_context(|| {
            format!("opening the database ({})", pool_adapters::sql::backend_name(&config.database.url))
        })?;
        let specs = config.provider_specs()?;
        let pools = Arc::new(Pools::new(specs.iter().map(|s| s.name.clone())));
        let registry =
            Registry { pools: Arc::clone(&pools), tokens: Arc::new(TokenIndex::default()), store: Arc::clone(&store) };
        let loaded = registry.load().await.context("loading keys and tokens")?;
        tracing::info!(
            keys = loaded.keys,
            tokens = loaded.tokens,
            orphaned_keys = loaded.orphaned_keys,
            "loaded the pool"
        );
        let (admin_hash, admin_token) = admin_token::resolve(store.as_ref(), config.admin_token.as_deref()).await?;
        let gateway = Gateway {
            pools,
            policy: config.failure_policy(),
            upstream: Arc::new(upstream(config)?),
            clock: Arc::new(SystemClock),
            max_response_bytes: config.proxy.max_response_bytes,
        };
        let default = specs
            .iter()
            .map(|s| s.name.clone())
            .find(|n| n.as_ref() == config.default_provider)
            .context("default_provider is not configured")?;
        let services = Services {
            gateway,
            registry,
            providers: Providers::new(specs, default),
            admin: AdminCredential::from_hash(admin_hash),
            settings: HttpSettings {
                max_body_bytes: config.proxy.max_body_bytes,
                models_ttl_ms: i64::try_from(config.proxy.models_ttl_secs.saturating_mul(1000)).unwrap_or(i64::MAX),
            },
            started_at: now_ms(),
            storage: pool_adapters::sql::backend_name(&config.database.url),
        };
        Ok(App {
            state: AppState::new(services),
            admin_token,
            flush_interval: duration(config.stats.flush_interval_secs),
            grace: duration(config.server.shutdown_grace_secs),
        })
    }

    /// Serves until `shutdown` fires, then drains for the grace period and flushes.
    pub async fn serve(self, listener: TcpListener, shutdown: CancellationToken) -> anyhow::Result<()> {
        let tasks = TaskTracker::new();
        let background = CancellationToken::new();
        tasks.spawn(flush_loop(self.state.clone(), self.flush_interval, background.clone()));
        tasks.spawn(models_loop(self.state.clone(), background.clone()));
        let server = axum::serve(listener, pool_http::router(self.state.clone()))
            .with_graceful_shutdown(shutdown.clone().cancelled_owned());
        let grace = self.grace;
        tokio::select! {
            served = server.into_future() => served.context("serving HTTP")?,
            () = async { shutdown.cancelled().await; tokio::time::sleep(grace).await } => {
                tracing::warn!(grace_secs = grace.as_secs_f64(), "grace period over; closing the remaining connections");
            }
        }
        background.cancel();
        tasks.close();
        tasks.wait().await;
        flush_once(&self.state).await;
        tracing::info!("stopped");
        Ok(())
    }
}

fn upstream(config: &Config) -> anyhow::Result<HttpUpstream> {
    let timeouts = Timeouts {
        connect: duration(config.proxy.connect_timeout_secs),
        first_byte: duration(config.proxy.first_byte_timeout_secs),
        idle: duration(config.proxy.idle_timeout_secs),
    };
    HttpUpstream::new(timeouts, concat!("ollama-pool/", env!("CARGO_PKG_VERSION")))
        .context("building the upstream HTTP client")
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
    match state.registry.flush().await {
        Ok(report) => tracing::debug!(keys = report.keys, tokens = report.tokens, "flushed counters"),
        Err(e) => {
            tracing::warn!(error.cause_chain = %e, "flushing counters failed; they stay in memory until the next flush")
        }
    }
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
