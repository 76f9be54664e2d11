//! Small wire-format helpers shared by the handlers: RFC 3339 times, OpenAI's reset durations
//! and its `x-ratelimit-*` headers, and the seed's `{"success": bool}` answer.

use axum::http::{HeaderMap, HeaderName, HeaderValue};
use pool_core::UnixMs;
use pool_core::limit::{RateInfo, Window};
use serde::Serialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use utoipa::ToSchema;

/// `{"success": bool}`: the answer of a single deletion or revocation (the seed's shape).
#[derive(Serialize, ToSchema)]
pub struct Success {
    pub success: bool,
}

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

/// The headers a refusal or an admitted answer carries: limit, remaining, reset.
const REQUEST_HEADERS: [&str; 3] =
    ["x-ratelimit-limit-requests", "x-ratelimit-remaining-requests", "x-ratelimit-reset-requests"];
const TOKEN_HEADERS: [&str; 3] =
    ["x-ratelimit-limit-tokens", "x-ratelimit-remaining-tokens", "x-ratelimit-reset-tokens"];

/// Every `x-ratelimit-*` header, for browsers to read too (CORS).
pub(crate) fn rate_header_names() -> impl Iterator<Item = HeaderName> {
    REQUEST_HEADERS.into_iter().chain(TOKEN_HEADERS).map(HeaderName::from_static)
}

/// The `x-ratelimit-*` headers of a token's or an address's windows.
pub(crate) fn rate_headers(info: &RateInfo) -> HeaderMap {
    let mut headers = HeaderMap::new();
    if let Some(window) = &info.requests {
        put_window(&mut headers, REQUEST_HEADERS, window);
    }
    if let Some(window) = &info.tokens {
        put_window(&mut headers, TOKEN_HEADERS, window);
    }
    headers
}

fn put_window(headers: &mut HeaderMap, [limit, remaining, reset]: [&'static str; 3], window: &Window) {
    headers.insert(HeaderName::from_static(limit), HeaderValue::from(window.limit));
    headers.insert(HeaderName::from_static(remaining), HeaderValue::from(window.remaining));
    if let Ok(value) = HeaderValue::try_from(reset_text(window.reset_ms)) {
        headers.insert(HeaderName::from_static(reset), value);
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
