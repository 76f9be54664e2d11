//! What an upstream answer means: deliver it, hand the client its own error, or try another key.
//!
//! The classification follows pingora's split of an error by source (upstream, downstream,
//! internal) and by whether a retry is safe. Retrying is always safe here because nothing has gone
//! to the client yet; the proxy never retries after the first byte.

use std::time::SystemTime;

use crate::UnixMs;
use crate::key::KeyEvent;

/// The verdict on one upstream answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// 2xx: give it to the client; the key did well.
    Deliver,
    /// The client's own mistake (400, 404 model not found, 413, 422…): return it unchanged and
    /// do not blame the key.
    PassThrough,
    /// The key or the upstream failed: record the event on the key and try another.
    Retry(KeyEvent),
}

/// Classifies an upstream HTTP status. `retry_after_ms` is the parsed `Retry-After`, if any.
pub fn classify_status(status: u16, retry_after_ms: Option<i64>) -> Verdict {
    match status {
        200..=299 => Verdict::Deliver,
        429 => Verdict::Retry(KeyEvent::RateLimited { retry_after_ms }),
        // 402: OpenRouter's "insufficient credits" is a property of the key, like 401/403.
        401..=403 => Verdict::Retry(KeyEvent::Rejected { status }),
        // 408 (upstream timed out reading us) and 5xx are the upstream's trouble.
        408 | 500..=599 => Verdict::Retry(KeyEvent::Transient { cause: format!("upstream answered {status}") }),
        // Any other status (1xx/3xx should not happen; 4xx are the client's) goes back as sent.
        _ => Verdict::PassThrough,
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
mod tests {
    use super::*;

    #[test]
    fn success_statuses_are_delivered() {
        assert_eq!(classify_status(200, None), Verdict::Deliver);
        assert_eq!(classify_status(204, None), Verdict::Deliver);
    }

    #[test]
    fn client_errors_pass_through_without_blame() {
        for status in [400, 404, 405, 409, 413, 422] {
            assert_eq!(classify_status(status, None), Verdict::PassThrough, "{status}");
        }
    }

    #[test]
    fn key_rejections_retry_and_mark_the_key() {
        for status in [401, 402, 403] {
            assert_eq!(classify_status(status, None), Verdict::Retry(KeyEvent::Rejected { status }));
        }
    }

    #[test]
    fn rate_limits_carry_retry_after() {
        assert_eq!(
            classify_status(429, Some(7_000)),
            Verdict::Retry(KeyEvent::RateLimited { retry_after_ms: Some(7_000) })
        );
    }

    #[test]
    fn server_errors_are_transient() {
        for status in [408, 500, 502, 503, 504, 599] {
            assert!(matches!(classify_status(status, None), Verdict::Retry(KeyEvent::Transient { .. })));
        }
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let now = 1_445_412_480_000; // Wed, 21 Oct 2015 07:28:00 GMT
        assert_eq!(parse_retry_after("120", now), Some(120_000));
        assert_eq!(parse_retry_after(" 1.5 ", now), Some(1_500));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:29:00 GMT", now), Some(60_000));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now), Some(0));
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-5", now), None);
    }
}
