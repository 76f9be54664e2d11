//! Request ids: every response carries `x-request-id`, and every log line written while a request
//! is handled carries the same id in the request's span.
//!
//! A client's own `x-request-id` is kept when it is 1-64 characters of `[A-Za-z0-9._-]`, so a
//! caller can follow its request through our logs; anything else (too long, spaces, control or
//! non-ASCII bytes, an attempt to forge log fields) is replaced, so what reaches a log line or a
//! header is always this safe alphabet. A new id is 128 bits from the OS random source, as 32 hex
//! digits.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use tracing::Span;

pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Longest client-chosen id kept.
pub const MAX_LEN: usize = 64;

/// Middleware (the outermost layer): settles the id, puts it on the request for the layers
/// inside (the trace span reads it there), and on whatever response comes back, errors and the
/// 404 fallback included.
pub async fn stamp(mut request: Request, next: Next) -> Response {
    let id = request.headers().get(&X_REQUEST_ID).filter(|v| is_sane(v.as_bytes())).cloned().unwrap_or_else(generate);
    request.headers_mut().insert(X_REQUEST_ID, id.clone());
    let mut response = next.run(request).await;
    response.headers_mut().insert(X_REQUEST_ID, id);
    response
}

/// The span of one request: method, path (never the query string or headers) and request id.
/// At `INFO`, so that the request's own warnings carry it under the default log level.
pub fn span<B>(request: &axum::http::Request<B>) -> Span {
    let id = request.headers().get(&X_REQUEST_ID).and_then(|v| v.to_str().ok()).unwrap_or_default();
    tracing::info_span!("request", method = %request.method(), path = request.uri().path(), request_id = id)
}

/// Whether a client's id may be kept as it is.
pub fn is_sane(id: &[u8]) -> bool {
    (1..=MAX_LEN).contains(&id.len()) && id.iter().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(b))
}

fn generate() -> HeaderValue {
    let mut bytes = [0u8; 16];
    if getrandom::fill(&mut bytes).is_err() {
        bytes = fallback_bytes();
    }
    HeaderValue::try_from(format!("{:032x}", u128::from_be_bytes(bytes)))
        .unwrap_or_else(|_| HeaderValue::from_static("0"))
}

/// Without an OS random source (it does not fail on any supported platform) ids must still be
/// unique: the time in nanoseconds and a process-wide counter.
fn fallback_bytes() -> [u8; 16] {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    let high = u64::try_from(nanos & u128::from(u64::MAX)).unwrap_or(0);
    ((u128::from(high) << 64) | u128::from(COUNTER.fetch_add(1, Relaxed))).to_be_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_short_ids_of_the_safe_alphabet_are_kept() {
        for good in ["a", "req-1.2_3", "0123456789abcdef0123456789abcdef", &"x".repeat(MAX_LEN)] {
            assert!(is_sane(good.as_bytes()), "{good}");
        }
        for bad in ["", "with space", "a\"b", "line\nbreak", "{\"json\":1}", "ünï", &"x".repeat(MAX_LEN + 1)] {
            assert!(!is_sane(bad.as_bytes()), "{bad}");
        }
    }

    #[test]
    fn generated_ids_are_32_hex_digits_and_differ() {
        let (a, b) = (generate(), generate());
        assert_ne!(a, b);
        for id in [a, b] {
            assert!(id.len() == 32 && id.as_bytes().iter().all(u8::is_ascii_hexdigit), "{id:?}");
            assert!(is_sane(id.as_bytes()));
        }
        assert_ne!(fallback_bytes(), fallback_bytes());
    }
}
