//! `[console]`: the web console's browser sessions.

use anyhow::bail;
use pool_core::session::SessionPolicy;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConsoleConfig {
    /// A session unused this long is over (fractions allowed).
    pub session_idle_minutes: f64,
    /// A session is over this long after its sign-in, used or not (fractions allowed).
    pub session_max_hours: f64,
}

impl Default for ConsoleConfig {
    fn default() -> Self {
        Self { session_idle_minutes: 60.0, session_max_hours: 12.0 }
    }
}

impl ConsoleConfig {
    pub(super) fn validate(&self) -> anyhow::Result<()> {
        let (idle, max) = (self.session_idle_minutes, self.session_max_hours);
        if !(idle.is_finite() && idle > 0.0 && max.is_finite() && max > 0.0) {
            bail!("console.session_idle_minutes and console.session_max_hours must be positive");
        }
        if max > 24.0 * 366.0 {
            bail!("console.session_max_hours must be at most a year ({} hours)", 24 * 366);
        }
        Ok(())
    }

    pub fn sessions(&self) -> SessionPolicy {
        let ms = |x: f64| (x.clamp(0.0, 1e13)) as i64;
        SessionPolicy {
            idle_ms: ms(self.session_idle_minutes * 60_000.0),
            max_ms: ms(self.session_max_hours * 3_600_000.0),
        }
    }
}
