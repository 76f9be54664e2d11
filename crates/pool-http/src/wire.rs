//! Small wire-format helpers shared by the handlers: RFC 3339 times.

use pool_core::UnixMs;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// A unix-millisecond instant as RFC 3339 (UTC), or `None` for "never".
pub fn iso(ms: Option<UnixMs>) -> Option<String> {
    let ms = ms?;
    let at = OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).ok()?;
    at.format(&Rfc3339).ok()
}
