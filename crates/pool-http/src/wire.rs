//! Small wire-format helpers shared by the handlers: RFC 3339 times and OpenAI's reset durations.

use pool_core::UnixMs;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// A unix-millisecond instant as RFC 3339 (UTC), or `None` for "never".
pub fn iso(ms: Option<UnixMs>) -> Option<String> {
    let ms = ms?;
    let at = OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).ok()?;
    at.format(&Rfc3339).ok()
}

/// A duration as OpenAI writes `x-ratelimit-reset-*`: `250ms`, `20s`, `1.5s`, `6m0s`, `1h46m40s`.
pub fn reset_text(ms: i64) -> String {
    let ms = ms.max(0);
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let (hours, minutes, second_ms) = (ms / 3_600_000, ms % 3_600_000 / 60_000, ms % 60_000);
    let seconds = match second_ms % 1000 {
        0 => format!("{}", second_ms / 1000),
        frac => format!("{}.{:03}", second_ms / 1000, frac).trim_end_matches('0').to_owned(),
    };
    match (hours, minutes) {
        (0, 0) => format!("{seconds}s"),
        (0, m) => format!("{m}m{seconds}s"),
        (h, m) => format!("{h}h{m}m{seconds}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reset_durations_read_like_openais() {
        assert_eq!(reset_text(100), "100ms");
        assert_eq!(reset_text(-5), "0ms");
        assert_eq!(reset_text(20_000), "20s");
        assert_eq!(reset_text(1_500), "1.5s");
        assert_eq!(reset_text(360_000), "6m0s");
        assert_eq!(reset_text(6_400_000), "1h46m40s");
        assert_eq!(reset_text(86_399_999), "23h59m59.999s");
    }
}
