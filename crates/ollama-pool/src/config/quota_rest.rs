//! `[proxy.quota_rest]`: how long a key rests for each quota window an upstream names (see
//! `pool_core::quota`), in seconds here and in milliseconds in the domain.

use pool_core::quota::QuotaRest;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct QuotaRestConfig {
    /// A per-minute or unnamed limit, without a reset from the upstream.
    pub short_secs: u64,
    pub hourly_secs: u64,
    pub daily_secs: u64,
    /// Short of the window on purpose: a weekly window can reset at any time in 7 days.
    pub weekly_secs: u64,
    pub monthly_secs: u64,
    /// Out of credit: clears when someone pays, so the key is tried again now and then.
    pub credits_secs: u64,
    /// The longest rest, the upstream's own reset included.
    pub max_secs: u64,
}

impl Default for QuotaRestConfig {
    fn default() -> Self {
        let r = QuotaRest::default();
        let secs = |ms: i64| u64::try_from(ms / 1000).unwrap_or(0);
        Self {
            short_secs: secs(r.short_ms),
            hourly_secs: secs(r.hourly_ms),
            daily_secs: secs(r.daily_ms),
            weekly_secs: secs(r.weekly_ms),
            monthly_secs: secs(r.monthly_ms),
            credits_secs: secs(r.credits_ms),
            max_secs: secs(r.max_ms),
        }
    }
}

impl QuotaRestConfig {
    pub fn to_rest(&self) -> QuotaRest {
        let ms = |s: u64| i64::try_from(s.saturating_mul(1000)).unwrap_or(i64::MAX);
        QuotaRest {
            short_ms: ms(self.short_secs),
            hourly_ms: ms(self.hourly_secs),
            daily_ms: ms(self.daily_secs),
            weekly_ms: ms(self.weekly_secs),
            monthly_ms: ms(self.monthly_secs),
            credits_ms: ms(self.credits_secs),
            max_ms: ms(self.max_secs),
        }
    }
}
