//! Placeholder of the quota parser (replaced by the full one on merge).

use crate::UnixMs;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QuotaWindow {
    Short,
    Hourly,
    Daily,
    Weekly,
    Monthly,
    Credits,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimit {
    pub window: QuotaWindow,
    pub reset_after_ms: Option<i64>,
}

pub fn read_rate_limit(headers: &http::HeaderMap, _body: &[u8], now: UnixMs) -> RateLimit {
    let reset_after_ms = headers
        .get(http::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| crate::outcome::parse_retry_after(v, now));
    RateLimit { window: QuotaWindow::Short, reset_after_ms }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuotaRest {
    pub short_ms: i64,
    pub hourly_ms: i64,
    pub daily_ms: i64,
    pub weekly_ms: i64,
    pub monthly_ms: i64,
    pub credits_ms: i64,
    pub max_ms: i64,
}

impl Default for QuotaRest {
    fn default() -> Self {
        Self {
            short_ms: 60_000,
            hourly_ms: 3_600_000,
            daily_ms: 86_400_000,
            weekly_ms: 6 * 3_600_000,
            monthly_ms: 6 * 3_600_000,
            credits_ms: 3_600_000,
            max_ms: 30 * 86_400_000,
        }
    }
}

impl QuotaRest {
    pub fn rest_ms(&self, limit: &RateLimit) -> i64 {
        limit.reset_after_ms.unwrap_or(self.short_ms).min(self.max_ms)
    }
}
