//! `x-pool-attempts` (off unless `proxy.attempts_header`): every key a proxied request tried, in
//! order, by key id, with why each was left, and the key that served.
//!
//! ```text
//! x-pool-attempts: 0199…a1=upstream answered 429; 0199…b2=ok
//! ```
//!
//! Entries are separated by `; `, and each is `<key id>=<reason>`: split on `; `, then on the
//! first `=`. The serving key's reason is `ok` for a 2xx answer, or `returned <status>` for a
//! client error passed through unchanged. A request that tried no key (none usable, or none
//! serves the model) carries the header with an empty value. Reasons are the gateway's own
//! outcome texts, which never hold key material, and are cut down to printable ASCII without
//! `;` or `=` (a model name in a reason cannot break the format), at most [`MAX_REASON`] bytes.

use axum::http::{HeaderName, HeaderValue};
use pool_core::proxy::{Delivery, ProxyError};
use pool_core::reqlog::{self, LastAttempt};

pub use pool_core::reqlog::MAX_REASON;

pub const X_POOL_ATTEMPTS: HeaderName = HeaderName::from_static("x-pool-attempts");

/// The header value for the gateway's result: the same list the request log keeps
/// ([`reqlog::attempt_list`]).
pub fn header(result: &Result<Delivery, ProxyError>) -> HeaderValue {
    let attempts = match result {
        Ok(d) => reqlog::attempt_list(&d.failed_attempts, Some(LastAttempt::Served(d.served_by)), d.status.as_u16()),
        Err(error) => reqlog::attempt_list(error.notes(), None, 0),
    };
    HeaderValue::try_from(reqlog::format_attempts(&attempts)).unwrap_or_else(|_| HeaderValue::from_static(""))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::{HeaderMap, StatusCode};
    use pool_core::ids::KeyId;
    use pool_core::proxy::Body;
    use pool_core::reqlog::AttemptNote;
    use pool_core::reqlog::sanitise;
    use uuid::Uuid;

    fn id(n: u128) -> KeyId {
        KeyId::from_uuid(Uuid::from_u128(n))
    }

    fn delivery(status: StatusCode, failed: Vec<AttemptNote>) -> Delivery {
        Delivery {
            status,
            headers: HeaderMap::new(),
            body: Body::Full(bytes::Bytes::new()),
            reservation: None,
            served_by: id(7),
            failed_attempts: failed,
        }
    }

    #[test]
    fn lists_failed_keys_in_order_then_the_key_that_served() {
        let notes = vec![
            AttemptNote { key: id(12), outcome: "upstream answered 429".into() },
            AttemptNote { key: id(13), outcome: "could not connect to upstream".into() },
        ];
        let value = header(&Ok(delivery(StatusCode::OK, notes)));
        assert_eq!(
            value.to_str().unwrap_or_default(),
            format!("{}=upstream answered 429; {}=could not connect to upstream; {}=ok", id(12), id(13), id(7))
        );
        let passed = header(&Ok(delivery(StatusCode::BAD_REQUEST, Vec::new())));
        assert_eq!(passed.to_str().unwrap_or_default(), format!("{}=returned 400", id(7)));
    }

    #[test]
    fn an_all_failed_error_lists_every_attempt_and_no_attempt_is_an_empty_list() {
        let notes = vec![
            AttemptNote { key: id(1), outcome: "upstream answered 500".into() },
            AttemptNote { key: id(2), outcome: "upstream answered 503".into() },
        ];
        let error = ProxyError::AllFailed { last: "x".into(), retry_after_s: None, notes };
        let value = header(&Err(error));
        assert_eq!(
            value.to_str().unwrap_or_default(),
            format!("{}=upstream answered 500; {}=upstream answered 503", id(1), id(2))
        );
        let none = ProxyError::NoKey {
            provider: pool_core::provider::ProviderName::parse("ollama").unwrap_or_else(|e| panic!("{e}")),
            retry_after_s: None,
            limited: false,
        };
        assert_eq!(header(&Err(none)).to_str().unwrap_or_default(), "");
    }

    #[test]
    fn reasons_cannot_break_the_format_or_the_header() {
        let outcome = "upstream answered 404: this key does not serve 'a;b=c\r\nx-evil: 1 ünï' (removed)";
        let reason = sanitise(outcome);
        assert_eq!(reason, "upstream answered 404: this key does not serve 'a_b_c__x-evil: 1 _n_' (removed)");
        assert!(sanitise(&"x".repeat(500)).len() == MAX_REASON);
        assert_eq!(sanitise("\u{1F600}"), "_");
        assert_eq!(sanitise(""), "unknown");
        let notes = vec![AttemptNote { key: id(1), outcome: outcome.into() }];
        let value = header(&Ok(delivery(StatusCode::OK, notes)));
        let text = value.to_str().unwrap_or_default();
        let entries: Vec<(&str, &str)> = text.split("; ").filter_map(|e| e.split_once('=')).collect();
        assert_eq!(entries.len(), 2, "{text}");
    }
}
