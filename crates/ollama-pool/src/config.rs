//! Configuration: defaults, then a TOML file, then `POOL__SECTION__KEY` environment variables,
//! then the short forms `POOL_ADMIN_TOKEN`, `POOL_MASTER_KEY`, `POOL_DATABASE_URL` and
//! `POOL_LISTEN`.
//!
//! Unknown keys are errors, in the file and in `POOL__…` variables alike: a typo must not
//! silently fall back to a default. Every option is documented in `ollama-pool.example.toml`,
//! which `ollama-pool config example` prints.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, bail};
use pool_adapters::cipher::MasterKey;
use pool_core::client::{Cidr, ClientRules};
use pool_core::key::FailurePolicy;
use pool_core::provider::{ProviderKind, ProviderName, ProviderSpec};
use pool_core::quota::QuotaRest;
use serde::{Deserialize, Serialize};

pub mod about;
mod console;
mod memory;
mod quota_rest;
mod server;

pub use console::ConsoleConfig;
pub use quota_rest::QuotaRestConfig;
pub use server::ServerConfig;

/// The example configuration, every option commented.
pub const EXAMPLE: &str = include_str!("../../../ollama-pool.example.toml");

/// Shortest admin token accepted.
pub const MIN_ADMIN_TOKEN_LEN: usize = 24;

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default = "default_listen")]
    pub listen: String,
    /// The admin bearer token. Unset: generated on first start and only its hash stored.
    pub admin_token: Option<String>,
    /// Base64 of 32 random bytes that encrypts upstream keys at rest. Unset: they are stored in
    /// plaintext, with a warning at start.
    pub master_key: Option<String>,
    #[serde(default = "default_provider")]
    pub default_provider: String,
    #[serde(default)]
    pub database: DatabaseConfig,
    #[serde(default)]
    pub providers: BTreeMap<String, ProviderConfig>,
    #[serde(default)]
    pub proxy: ProxyConfig,
    #[serde(default)]
    pub keys: KeyPolicyConfig,
    #[serde(default)]
    pub health: HealthConfig,
    #[serde(default)]
    pub stats: StatsConfig,
    #[serde(default)]
    pub request_log: RequestLogConfig,
    #[serde(default)]
    pub metrics: MetricsConfig,
    #[serde(default)]
    pub cache: CacheConfig,
    #[serde(default)]
    pub limits: LimitsConfig,
    #[serde(default)]
    pub server: ServerConfig,
    #[serde(default)]
    pub console: ConsoleConfig,
    #[serde(default)]
    pub log: LogConfig,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    #[serde(default = "default_database_url")]
    pub url: String,
    /// The longest one store call may take (PostgreSQL's `statement_timeout`, and a deadline on
    /// the gateway's side, so a stalled connection fails too); it then fails, and what it carried
    /// waits for the next flush.
    #[serde(default = "default_statement_timeout_secs")]
    pub statement_timeout_secs: f64,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderConfig {
    pub kind: Option<ProviderKind>,
    pub url: Option<String>,
    pub enabled: Option<bool>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Model a health probe asks one token of (default: the key's first listed model).
    pub probe_model: Option<String>,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProxyConfig {
    pub max_attempts: u32,
    /// Attempts past `max_attempts` the requests of one provider share: earned at a tenth per
    /// request served, capped at this; 0 = none.
    pub retry_budget: u32,
    pub max_body_bytes: usize,
    pub max_response_bytes: usize,
    /// Bytes of request bodies and upstream answers held in memory at once, all requests
    /// together; 0 = the smaller of 256 MiB and an eighth of the machine's memory.
    pub buffer_budget_bytes: u64,
    /// How long a request waits for room in the budget before its 503 `server_busy`.
    pub buffer_wait_ms: u64,
    pub connect_timeout_secs: f64,
    pub first_byte_timeout_secs: f64,
    pub idle_timeout_secs: f64,
    pub models_ttl_secs: u64,
    /// Whether proxied answers carry `x-pool-attempts` (key ids tried and why each was left).
    pub attempts_header: bool,
    /// No new attempt on another key starts once a request has waited this long.
    pub request_deadline_secs: f64,
    /// Rests per quota window named by a 429/402/403 (see [`ProxyConfig::quota_rest`]).
    pub quota_rest: QuotaRestConfig,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct KeyPolicyConfig {
    pub auth_failure_secs: u64,
    /// The window over which a key's errors are judged, the attempts it needs before the ratio
    /// counts, the ratio that rests the key, and the failures alone (no success) that do.
    pub errors_window_secs: u64,
    pub errors_min_requests: u32,
    pub errors_ratio: f64,
    pub errors_alone: u32,
    pub transient_cooldown_secs: u64,
    pub disable_after: u32,
    pub disable_secs: u64,
    /// Automatic holds at least this long end half-open (probed before serving again).
    pub probe_after_secs: u64,
    /// The longest a failed recovery probe extends a hold.
    pub backoff_max_secs: u64,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct HealthConfig {
    /// How often keys that are out (failed, auto-disabled, long cooldowns) are probed; 0 = never.
    pub interval_secs: u64,
    /// Probes running at once (health checks, verification, validated imports).
    pub concurrency: usize,
    /// Upper bound on one probe call (connect, headers, body).
    pub probe_timeout_secs: f64,
    /// How often half-open keys are probed and doubted model lists re-read.
    pub recovery_interval_secs: f64,
}

impl Default for HealthConfig {
    fn default() -> Self {
        Self { interval_secs: 300, concurrency: 8, probe_timeout_secs: 20.0, recovery_interval_secs: 5.0 }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct StatsConfig {
    pub flush_interval_secs: f64,
    /// Distinct statistics rows held in memory between flushes (while the database is away);
    /// beyond it new rows are dropped and counted.
    pub max_backlog_rows: usize,
    /// How long per-minute rows are kept.
    pub minute_retention_hours: u64,
    /// How long hourly rows are kept (all-time totals are kept forever).
    pub hour_retention_days: u64,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RequestLogConfig {
    /// How long the console's request log keeps an entry; 0 turns the log off (nothing is
    /// queued or written).
    pub retention_days: u64,
    /// Entries held in memory between flushes (while the database is away, or faster than a
    /// flush writes); beyond it the oldest are dropped and counted.
    pub max_queue_entries: usize,
}

impl Default for RequestLogConfig {
    fn default() -> Self {
        Self { retention_days: 7, max_queue_entries: 20_000 }
    }
}

#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// A separate address serving only `/metrics`, without a token (empty: none; `/metrics` is
    /// then served on the main address to the admin token only).
    pub listen: String,
}

/// The response cache; off by default, because identical requests from different clients then
/// share answers unless `per_token` is set.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct CacheConfig {
    pub enabled: bool,
    pub ttl_secs: u64,
    pub max_entries: usize,
    /// Bound on the total size of the cached bodies.
    pub max_bytes: usize,
    pub per_token: bool,
}

/// Limits on callers of the client API, applied before authentication. Per-token and per-key
/// limits are set through the admin API.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Requests per minute per client address (proxy and model routes); 0 = no limit.
    pub ip_rpm: u32,
    /// Address blocks (CIDR) of reverse proxies whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<String>,
    /// User agents refused with 403: case-insensitive substrings.
    pub blocked_user_agents: Vec<String>,
}

impl LimitsConfig {
    /// The rules, with the address blocks parsed (they were checked at load).
    pub fn client_rules(&self) -> anyhow::Result<ClientRules> {
        let blocks = self.trusted_proxies.iter().filter(|c| !c.trim().is_empty());
        let trusted = blocks.map(|c| Cidr::parse(c)).collect::<Result<Vec<_>, _>>();
        Ok(ClientRules::new(self.ip_rpm, trusted.context("limits.trusted_proxies")?, &self.blocked_user_agents))
    }
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `text` or `json`.
    pub format: String,
    /// A tracing filter such as `info` or `ollama_pool=debug,info`; `RUST_LOG` wins when set.
    pub level: String,
}

fn default_listen() -> String {
    "127.0.0.1:8080".into()
}
fn default_provider() -> String {
    "ollama".into()
}
fn default_database_url() -> String {
    "sqlite://data/pool.db".into()
}
fn default_statement_timeout_secs() -> f64 {
    10.0
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self { url: default_database_url(), statement_timeout_secs: default_statement_timeout_secs() }
    }
}

impl DatabaseConfig {
    pub fn tuning(&self) -> pool_adapters::sql::Tuning {
        pool_adapters::sql::Tuning { statement_timeout: duration(self.statement_timeout_secs) }
    }
}

impl Default for ProxyConfig {
    fn default() -> Self {
        Self {
            max_attempts: FailurePolicy::default().max_attempts,
            retry_budget: FailurePolicy::default().retry_budget,
            max_body_bytes: 32 * 1024 * 1024,
            max_response_bytes: 64 * 1024 * 1024,
            buffer_budget_bytes: 0,
            buffer_wait_ms: 2000,
            connect_timeout_secs: 10.0,
            first_byte_timeout_secs: 300.0,
            idle_timeout_secs: 120.0,
            models_ttl_secs: 300,
            attempts_header: false,
            request_deadline_secs: 300.0,
            quota_rest: QuotaRestConfig::default(),
        }
    }
}

impl Default for KeyPolicyConfig {
    fn default() -> Self {
        let p = FailurePolicy::default();
        Self {
            auth_failure_secs: secs(p.auth_failure_ms),
            errors_window_secs: secs(p.errors_window_ms),
            errors_min_requests: p.errors_min_requests,
            errors_ratio: p.errors_ratio,
            errors_alone: p.errors_alone,
            transient_cooldown_secs: secs(p.transient_cooldown_ms),
            disable_after: p.disable_after,
            disable_secs: secs(p.disable_ms),
            probe_after_secs: secs(p.probe_after_ms),
            backoff_max_secs: secs(p.backoff_max_ms),
        }
    }
}

impl ProxyConfig {
    /// How long a key rests for each quota window, for the gateway.
    pub fn quota_rest(&self) -> QuotaRest {
        self.quota_rest.to_rest()
    }

    /// The buffer budget in bytes (`buffer_budget_bytes`, or its default for this machine).
    pub fn buffer_budget(&self) -> usize {
        memory::buffer_budget(self.buffer_budget_bytes)
    }

    pub fn buffer_wait(&self) -> Duration {
        Duration::from_millis(self.buffer_wait_ms)
    }
}

fn secs(ms: i64) -> u64 {
    u64::try_from(ms / 1000).unwrap_or(0)
}

impl Default for StatsConfig {
    fn default() -> Self {
        Self {
            flush_interval_secs: 1.0,
            max_backlog_rows: 100_000,
            minute_retention_hours: 48,
            hour_retention_days: 90,
        }
    }
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self { enabled: false, ttl_secs: 300, max_entries: 10_000, max_bytes: 64 * 1024 * 1024, per_token: false }
    }
}

impl CacheConfig {
    pub fn settings(&self) -> pool_http::cache::CacheSettings {
        pool_http::cache::CacheSettings {
            enabled: self.enabled,
            ttl_ms: i64::try_from(self.ttl_secs.saturating_mul(1000)).unwrap_or(i64::MAX),
            max_entries: self.max_entries,
            max_bytes: self.max_bytes,
            per_token: self.per_token,
        }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        Self { format: "text".into(), level: "info".into() }
    }
}

impl Config {
    /// Loads the configuration: defaults, `file` (if given), then the environment.
    pub fn load(file: Option<&Path>) -> anyhow::Result<Self> {
        Self::load_from(file, std::env::vars())
    }

    /// As [`Config::load`], with the environment given explicitly (tests).
    pub fn load_from(file: Option<&Path>, env: impl IntoIterator<Item = (String, String)>) -> anyhow::Result<Self> {
        let mut builder = config::Config::builder();
        if let Some(file) = file {
            if !file.exists() {
                bail!("configuration file {} does not exist", file.display());
            }
            builder = builder.add_source(config::File::from(file).format(config::FileFormat::Toml));
        }
        Self::assemble(builder, env)
    }

    /// A configuration from TOML text alone, without the environment (the fuzz target).
    pub fn from_toml(text: &str) -> anyhow::Result<Self> {
        let source = config::File::from_str(text, config::FileFormat::Toml);
        Self::assemble(config::Config::builder().add_source(source), std::iter::empty())
    }

    /// Lays the environment over the defaults and whatever `builder` holds, then validates.
    fn assemble(
        mut builder: config::ConfigBuilder<config::builder::DefaultState>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> anyhow::Result<Self> {
        let env: BTreeMap<String, String> = env.into_iter().filter(|(k, _)| k.starts_with("POOL")).collect();
        let structured = config::Environment::with_prefix("POOL")
            .prefix_separator("__")
            .separator("__")
            .try_parsing(true)
            .list_separator(",")
            .with_list_parse_key("limits.trusted_proxies")
            .with_list_parse_key("limits.blocked_user_agents")
            .source(Some(env.clone().into_iter().collect()));
        builder = builder.add_source(structured);
        for (var, key) in [
            ("POOL_ADMIN_TOKEN", "admin_token"),
            ("POOL_MASTER_KEY", "master_key"),
            ("POOL_DATABASE_URL", "database.url"),
            ("POOL_LISTEN", "listen"),
        ] {
            if let Some(value) = env.get(var) {
                builder = builder.set_override(key, value.as_str())?;
            }
        }
        let config: Config =
            builder.build().context("reading the configuration")?.try_deserialize().context("invalid configuration")?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> anyhow::Result<()> {
        if let Some(token) = &self.admin_token {
            check_admin_token(token)?;
        }
        if let Some(key) = &self.master_key {
            MasterKey::parse(key).context("master_key / POOL_MASTER_KEY is invalid")?;
        }
        if self.health.concurrency == 0
            || !(self.health.probe_timeout_secs.is_finite() && self.health.probe_timeout_secs > 0.0)
        {
            bail!("health.concurrency must be at least 1 and health.probe_timeout_secs positive");
        }
        if self.cache.ttl_secs == 0 || self.cache.max_entries == 0 || self.cache.max_bytes == 0 {
            bail!("cache.ttl_secs, cache.max_entries and cache.max_bytes must be at least 1");
        }
        if self.proxy.max_attempts == 0 {
            bail!("proxy.max_attempts must be at least 1");
        }
        if !(self.keys.errors_ratio > 0.0 && self.keys.errors_ratio <= 1.0) {
            bail!("keys.errors_ratio must be above 0 and at most 1");
        }
        let stats = &self.stats;
        if stats.max_backlog_rows == 0 || stats.minute_retention_hours == 0 || stats.hour_retention_days == 0 {
            bail!(
                "stats.max_backlog_rows, stats.minute_retention_hours and stats.hour_retention_days must be at least 1"
            );
        }
        if self.request_log.max_queue_entries == 0 {
            bail!("request_log.max_queue_entries must be at least 1");
        }
        if self.request_log.retention_days > 36_500 {
            bail!("request_log.retention_days must be at most 36500 (0 turns the log off)");
        }
        for value in [
            self.proxy.connect_timeout_secs,
            self.proxy.first_byte_timeout_secs,
            self.proxy.idle_timeout_secs,
            self.proxy.request_deadline_secs,
            self.health.recovery_interval_secs,
            self.stats.flush_interval_secs,
            self.database.statement_timeout_secs,
        ] {
            if !(value.is_finite() && value > 0.0) {
                bail!("timeouts and intervals must be positive numbers of seconds");
            }
        }
        self.limits.client_rules()?;
        self.server.validate()?;
        self.console.validate()?;
        if !matches!(self.log.format.as_str(), "text" | "json") {
            bail!("log.format must be \"text\" or \"json\"");
        }
        let providers = self.provider_specs()?;
        if !providers.iter().any(|p| p.name.as_ref() == self.default_provider) {
            bail!("default_provider '{}' is not a configured provider", self.default_provider);
        }
        Ok(())
    }

    /// The built-in providers (`ollama`, `openrouter`) with the configuration laid over them, and
    /// any others the configuration adds.
    pub fn provider_specs(&self) -> anyhow::Result<Vec<ProviderSpec>> {
        self.merged_providers().into_iter().map(|(name, p)| provider_spec(&name, p)).collect()
    }

    /// The built-in providers with the configured ones laid over them, by name.
    pub fn merged_providers(&self) -> BTreeMap<String, ProviderConfig> {
        let mut merged: BTreeMap<String, ProviderConfig> = builtin_providers();
        for (name, given) in &self.providers {
            let base = merged.entry(name.clone()).or_default();
            base.kind = given.kind.or(base.kind);
            base.url = given.url.clone().or(base.url.take());
            base.enabled = given.enabled.or(base.enabled);
            base.headers.extend(given.headers.clone());
            base.probe_model = given.probe_model.clone().or(base.probe_model.take());
        }
        merged
    }

    pub fn failure_policy(&self) -> FailurePolicy {
        let k = &self.keys;
        let ms = |s: u64| i64::try_from(s.saturating_mul(1000)).unwrap_or(i64::MAX);
        FailurePolicy {
            max_attempts: self.proxy.max_attempts.max(1),
            retry_budget: self.proxy.retry_budget,
            auth_failure_ms: ms(k.auth_failure_secs),
            // One cap on every rest an upstream asks for: `proxy.quota_rest.max_secs`.
            rate_limit_max_ms: self.proxy.quota_rest().max_ms,
            errors_window_ms: ms(k.errors_window_secs.max(1)),
            errors_min_requests: k.errors_min_requests.max(1),
            errors_ratio: k.errors_ratio,
            errors_alone: k.errors_alone.max(1),
            transient_cooldown_ms: ms(k.transient_cooldown_secs),
            disable_after: k.disable_after.max(1),
            disable_ms: ms(k.disable_secs),
            probe_after_ms: ms(k.probe_after_secs),
            backoff_max_ms: ms(k.backoff_max_secs),
        }
    }
}

/// Seconds as a `Duration`, for the validated positive `f64` options.
pub fn duration(secs: f64) -> Duration {
    Duration::from_secs_f64(secs.max(0.0))
}

pub fn check_admin_token(token: &str) -> anyhow::Result<()> {
    if token.chars().count() < MIN_ADMIN_TOKEN_LEN {
        bail!("the admin token must be at least {MIN_ADMIN_TOKEN_LEN} characters long");
    }
    let first = token.chars().next();
    if token.contains("your-admin") || token.chars().all(|c| Some(c) == first) {
        bail!("the admin token looks like a placeholder; set a random one");
    }
    Ok(())
}

fn builtin_providers() -> BTreeMap<String, ProviderConfig> {
    let ollama = ProviderConfig {
        kind: Some(ProviderKind::Ollama),
        url: Some("https://ollama.com".into()),
        enabled: Some(true),
        headers: BTreeMap::new(),
        probe_model: None,
    };
    let openrouter = ProviderConfig {
        kind: Some(ProviderKind::OpenAi),
        url: Some("https://openrouter.ai/api/v1".into()),
        enabled: Some(true),
        headers: BTreeMap::from([("X-Title".to_owned(), "ollama-pool".to_owned())]),
        probe_model: None,
    };
    BTreeMap::from([("ollama".to_owned(), ollama), ("openrouter".to_owned(), openrouter)])
}

fn provider_spec(name: &str, p: ProviderConfig) -> anyhow::Result<ProviderSpec> {
    let name = ProviderName::parse(name)?;
    let kind = p.kind.with_context(|| format!("providers.{name}.kind is required (\"ollama\" or \"openai\")"))?;
    let url = p.url.with_context(|| format!("providers.{name}.url is required"))?;
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        bail!("providers.{name}.url must start with http:// or https://");
    }
    let mut headers = axum::http::HeaderMap::new();
    for (header, value) in &p.headers {
        let parsed = axum::http::HeaderName::try_from(header.as_str())
            .ok()
            .zip(axum::http::HeaderValue::try_from(value.as_str()).ok())
            .filter(|(parsed, _)| parsed != axum::http::header::AUTHORIZATION);
        let Some((header_name, header_value)) = parsed else {
            bail!("providers.{name}.headers.{header} is not an allowed header");
        };
        headers.insert(header_name, header_value);
    }
    Ok(ProviderSpec {
        probe_model: p.probe_model,
        name,
        kind,
        url: url.trim_end_matches('/').to_owned(),
        enabled: p.enabled.unwrap_or(true),
        headers,
    })
}

#[cfg(test)]
mod tests;
