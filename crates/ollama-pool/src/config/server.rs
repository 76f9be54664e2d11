//! `[server]`: the client listener's limits (how long a client may take, how much it may hold)
//! and the shutdown grace.

use anyhow::bail;
use pool_http::extract::BodyPace;
use serde::{Deserialize, Serialize};

use super::duration;
use crate::server::Clock;

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    pub shutdown_grace_secs: f64,
    /// A connection that has not sent a whole request head this long after it opened (or, kept
    /// alive, after the first byte of its next request) is closed.
    pub header_read_timeout_secs: f64,
    /// A kept-alive connection idle this long between requests is closed.
    pub keep_alive_timeout_secs: f64,
    /// The longest a request body may take to arrive (408).
    pub body_read_timeout_secs: f64,
    /// The average a request body must keep once the grace has passed (408); 0 = no minimum.
    pub min_body_rate_bytes_per_sec: u64,
    pub min_body_rate_grace_secs: f64,
    /// Client connections open at once; beyond, new ones are closed as soon as accepted.
    /// 0 = sized from the file-descriptor limit, leaving room for upstream and store connections.
    pub max_connections: usize,
    /// Requests answered at once (streams until their end); beyond, 503 with `Retry-After: 1`.
    /// `/health` and `/metrics` are not counted.
    pub max_concurrent_requests: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            shutdown_grace_secs: 30.0,
            header_read_timeout_secs: 10.0,
            keep_alive_timeout_secs: 75.0,
            body_read_timeout_secs: 60.0,
            min_body_rate_bytes_per_sec: 1024,
            min_body_rate_grace_secs: 5.0,
            max_connections: 0,
            max_concurrent_requests: 4096,
        }
    }
}

impl ServerConfig {
    /// How slowly a client may send a request body.
    pub fn body_pace(&self) -> BodyPace {
        BodyPace {
            timeout: duration(self.body_read_timeout_secs),
            min_rate: self.min_body_rate_bytes_per_sec,
            grace: duration(self.min_body_rate_grace_secs),
        }
    }

    /// How long a connection may take over a request head, and stay idle.
    pub fn clock(&self) -> Clock {
        Clock {
            header_read: duration(self.header_read_timeout_secs),
            keep_alive: duration(self.keep_alive_timeout_secs),
        }
    }

    pub(super) fn validate(&self) -> anyhow::Result<()> {
        for (name, value) in [
            ("header_read_timeout_secs", self.header_read_timeout_secs),
            ("keep_alive_timeout_secs", self.keep_alive_timeout_secs),
            ("body_read_timeout_secs", self.body_read_timeout_secs),
        ] {
            if !(value.is_finite() && value > 0.0) {
                bail!("server.{name} must be a positive number of seconds");
            }
        }
        for (name, value) in [
            ("shutdown_grace_secs", self.shutdown_grace_secs),
            ("min_body_rate_grace_secs", self.min_body_rate_grace_secs),
        ] {
            if !(value.is_finite() && value >= 0.0) {
                bail!("server.{name} must be zero or a positive number of seconds");
            }
        }
        if self.max_concurrent_requests == 0 {
            bail!("server.max_concurrent_requests must be at least 1");
        }
        Ok(())
    }
}
