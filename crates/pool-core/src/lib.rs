//! The rules of ollama-pool, free of I/O.
//!
//! # Layout
//! - [`key`]: the health state machine of one upstream key (`active → cooling/failed/disabled →
//!   active`), driven by [`outcome`], the classification of what an upstream answered.
//! - [`pool`]: the per-provider key pools and the round-robin selector of the hot path.
//! - [`token`]: client tokens and their in-memory index.
//! - [`model_name`]: when two spellings name one model (Ollama's implicit `:latest`), and
//!   [`models`]: what a pool serves, and model lists.
//! - [`limit`]: rate limits, daily quotas and concurrency for tokens, keys and client addresses,
//!   behind the [`limit::Limiter`] port.
//! - [`request`]: what routing reads from a client's body, and the checks it must pass.
//! - [`proxy`]: the failover use case: pick, forward, classify, retry on another key.
//! - [`reqlog`]: the request log: one entry per client request, queued for the flush.
//! - [`buffer`]: the budget of bytes held in memory at once (bodies and answers read whole).
//! - [`quota`]: which quota window a 429 (or 402/403) names, and how long a key rests for it.
//! - [`ports`]: the traits adapters implement (stores, the upstream client, the clock).
//! - [`account`]: community accounts: emails and domain lists, verification codes and their
//!   throttle, the daily sign-in in the operator's time zone, users and invites.
//! - [`accounting`]: the use cases that move counts between memory and the store (flushes,
//!   the day's usage read back at start); [`store_health`]: whether the store takes writes.
//!
//! A key design decision: time is always passed in as unix milliseconds (`now`), never read here,
//! so every rule is a plain unit test. The only place that reads a clock is the [`ports::Clock`]
//! the proxy use case is handed.

pub mod account;
pub mod accounting;
pub mod buffer;
pub mod client;
pub mod ids;
pub mod import;
pub mod key;
pub mod limit;
pub mod model_name;
pub mod models;
pub mod outcome;
pub mod pool;
pub mod ports;
pub mod probe;
pub mod provider;
pub mod proxy;
pub mod quota;
pub mod recheck;
pub mod registry;
pub mod reqlog;
pub mod request;
pub mod secret;
pub mod session;
pub mod sse;
pub mod stats;
pub mod store_health;
pub mod token;
pub mod usage;

/// Milliseconds since the unix epoch, the one time unit of the domain.
pub type UnixMs = i64;
