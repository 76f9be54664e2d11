//! Which quota window a refusal names, and how long to rest a key for it.
//!
//! A 429 (or a 402/403 about quota) is not one thing: a per-minute limit clears in seconds, an
//! hourly or weekly usage limit (Ollama cloud: "you've reached your weekly usage limit") or an
//! empty credit balance (OpenRouter: "Insufficient credits") does not, and retrying such a key
//! every minute wastes an attempt of every request for hours. [`read_rate_limit`] reads what the
//! upstream said: a reset time from its headers, and the window from its body's wording.
//! [`QuotaRest::rest_ms`] turns that into a rest.
//!
//! A key design decision: the upstream's reset, when it gives one, always beats the class default
//! (it knows; we guess), and both are capped by `max_ms`, so a garbled header cannot bench a key
//! for a year.

use std::time::SystemTime;

use http::HeaderMap;

use crate::UnixMs;

/// The window a limit belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum QuotaWindow {
    /// A per-minute (or per-second) rate limit, or one the upstream did not name.
    Short,
    Hourly,
    Daily,
    Weekly,
    Monthly,
    /// Out of credit or billing quota: clears when someone pays, not at a time.
    Credits,
}

/// What a refusal said about its limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimit {
    pub window: QuotaWindow,
    /// ms from now until the upstream says it resets, when it says.
    pub reset_after_ms: Option<i64>,
}

/// Only the start of a body is read: quota messages are short, and an odd upstream's megabyte of
/// HTML must not cost a scan.
const BODY_PREFIX: usize = 4096;

/// Reads a 429 (or 402/403 quota) answer: `Retry-After`, `x-ratelimit-reset-requests`/`-tokens`
/// (OpenAI durations like "1s", "6m0s", "20ms", "1h30m"), `x-ratelimit-reset` (OpenRouter: unix
/// epoch ms; epoch seconds and plain seconds accepted), and the body's wording.
pub fn read_rate_limit(headers: &HeaderMap, body: &[u8], now: UnixMs) -> RateLimit {
    RateLimit { window: window_of(body), reset_after_ms: reset_after_ms(headers, now) }
}

/// The body's words, first match wins. Time windows come before a bare "credit" because
/// OpenRouter's daily free-model limit says "free-models-per-day. Add 10 credits to unlock…";
/// "insufficient credits" and OpenAI's `insufficient_quota` are unambiguous and come first.
const WORDING: [(QuotaWindow, &[&str]); 6] = [
    (QuotaWindow::Credits, &["insufficient credits", "insufficient_quota", "insufficient balance"]),
    (QuotaWindow::Monthly, &["monthly", "per month", "per-month", "per_month"]),
    (QuotaWindow::Weekly, &["weekly", "per week", "per-week", "per_week"]),
    (QuotaWindow::Daily, &["daily", "per day", "per-day", "per_day", "(rpd)", "(tpd)"]),
    (QuotaWindow::Hourly, &["hourly", "per hour", "per-hour", "per_hour"]),
    (QuotaWindow::Credits, &["credit", "billing"]),
];

fn window_of(body: &[u8]) -> QuotaWindow {
    let text = String::from_utf8_lossy(&body[..body.len().min(BODY_PREFIX)]).to_ascii_lowercase();
    WORDING
        .iter()
        .find(|(_, words)| words.iter().any(|w| text.contains(w)))
        .map_or(QuotaWindow::Short, |(window, _)| *window)
}

/// The reset the headers give, most explicit first: `Retry-After`, then OpenRouter's
/// `x-ratelimit-reset`, then OpenAI's per-resource resets.
fn reset_after_ms(headers: &HeaderMap, now: UnixMs) -> Option<i64> {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim);
    text("retry-after")
        .and_then(|v| parse_retry_after(v, now))
        .or_else(|| text("x-ratelimit-reset").and_then(|v| parse_reset_at(v, now)))
        .or_else(|| openai_reset(&text))
}

/// OpenAI sends a reset for requests and one for tokens. The one whose `remaining` is 0 is the
/// limit that was hit; when neither says so, the later reset is the safe one.
fn openai_reset<'a>(text: &impl Fn(&str) -> Option<&'a str>) -> Option<i64> {
    let resets = ["requests", "tokens"].map(|what| {
        let reset = text(&format!("x-ratelimit-reset-{what}")).and_then(parse_duration_ms)?;
        let exhausted = text(&format!("x-ratelimit-remaining-{what}")) == Some("0");
        Some((exhausted, reset))
    });
    let mut found: Vec<(bool, i64)> = resets.into_iter().flatten().collect();
    if found.iter().any(|(exhausted, _)| *exhausted) {
        found.retain(|(exhausted, _)| *exhausted);
    }
    found.into_iter().map(|(_, reset)| reset).max()
}

/// `x-ratelimit-reset`: a unix time in ms (OpenRouter) or in seconds, told apart by size; a small
/// number is seconds from now; a duration ("30s") is read as one. A time in the past is 0.
fn parse_reset_at(value: &str, now: UnixMs) -> Option<i64> {
    /// 2001-09-09 in ms, and 33658 AD in seconds: no epoch in either unit is ambiguous.
    const EPOCH_MS_FROM: i64 = 1_000_000_000_000;
    /// 2001-09-09 in seconds; below this a number is a delay, not a date.
    const EPOCH_S_FROM: i64 = 1_000_000_000;
    let Ok(n) = value.parse::<i64>() else { return parse_duration_ms(value) };
    match n {
        ..0 => None,
        EPOCH_MS_FROM.. => Some((n - now).max(0)),
        EPOCH_S_FROM.. => Some((n.saturating_mul(1000) - now).max(0)),
        _ => Some(n.saturating_mul(1000)),
    }
}

/// A Go-style duration as OpenAI sends it: "1s", "6m0s", "20ms", "1h30m", "0.5s", in ms.
fn parse_duration_ms(value: &str) -> Option<i64> {
    let mut rest = value.trim();
    if rest.is_empty() {
        return None;
    }
    let mut total = 0.0_f64;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(rest.len());
        let number: f64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        total += number * unit_ms(&rest[..unit])?;
        rest = &rest[unit..];
    }
    (total.is_finite() && total < i64::MAX as f64).then(|| total.ceil() as i64)
}

fn unit_ms(unit: &str) -> Option<f64> {
    match unit {
        "h" => Some(3_600_000.0),
        "m" => Some(60_000.0),
        "s" => Some(1_000.0),
        "ms" => Some(1.0),
        "us" | "µs" => Some(0.001),
        "ns" => Some(0.000_001),
        _ => None,
    }
}

/// How long to rest a key for a limit: the upstream's reset when it gave one, else the class
/// default; both capped by `max_ms`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
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
    /// A rest too short costs one failed attempt (retried on another key) when it ends; a rest
    /// too long idles a key that could serve. So a window whose reset time is unknown rests a
    /// fraction of its length and lets the next attempt (or the health probe) find out:
    /// - short: 60 s, hourly: 1 h (the whole window is short enough to wait out);
    /// - daily: 6 h, weekly: 6 h (a weekly window may reset at any time in the next 7 days);
    /// - monthly: 24 h; credits: 1 h (a top-up can come at any time);
    /// - max: 7 days, the longest reset an upstream is believed for (a weekly window's whole length).
    fn default() -> Self {
        const HOUR: i64 = 3_600_000;
        Self {
            short_ms: 60_000,
            hourly_ms: HOUR,
            daily_ms: 6 * HOUR,
            weekly_ms: 6 * HOUR,
            monthly_ms: 24 * HOUR,
            credits_ms: HOUR,
            max_ms: 7 * 24 * HOUR,
        }
    }
}

impl QuotaRest {
    pub fn rest_ms(&self, limit: &RateLimit) -> i64 {
        limit.reset_after_ms.unwrap_or_else(|| self.default_ms(limit.window)).clamp(0, self.max_ms.max(0))
    }

    fn default_ms(&self, window: QuotaWindow) -> i64 {
        match window {
            QuotaWindow::Short => self.short_ms,
            QuotaWindow::Hourly => self.hourly_ms,
            QuotaWindow::Daily => self.daily_ms,
            QuotaWindow::Weekly => self.weekly_ms,
            QuotaWindow::Monthly => self.monthly_ms,
            QuotaWindow::Credits => self.credits_ms,
        }
    }
}

/// Parses `Retry-After`: delta-seconds or an HTTP-date. Returns milliseconds from `now`.
pub fn parse_retry_after(value: &str, now: UnixMs) -> Option<i64> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(i64::try_from(seconds).ok()?.saturating_mul(1000));
    }
    if let Ok(seconds) = value.parse::<f64>()
        && seconds.is_finite()
        && seconds >= 0.0
    {
        return Some((seconds * 1000.0).min(i64::MAX as f64) as i64);
    }
    let at = httpdate::parse_http_date(value).ok()?;
    let at_ms = at.duration_since(SystemTime::UNIX_EPOCH).ok()?.as_millis();
    Some((i64::try_from(at_ms).ok()? - now).max(0))
}

#[cfg(test)]
mod tests;
