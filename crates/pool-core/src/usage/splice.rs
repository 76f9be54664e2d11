//! Asking an OpenAI stream for its usage by splicing bytes into the client's body, never by
//! re-serialising it: a parse and print through `serde_json::Value` reorders members and rounds
//! numbers beyond `f64` (`"seed": 12345678901234567890123` would reach the upstream as
//! `1.2345678901234568e+22`), so the upstream would not get the request the client sent.
//!
//! The body is read once by a borrowed struct whose interesting members are [`RawValue`]s: serde
//! finds them (escaped keys included, duplicates refused), and their position inside the original
//! slice is the span to edit. Anything unusual (not an object, a duplicate member, a
//! `stream_options` that is not an object or null, an `include_usage` that is not a boolean or
//! null) is forwarded untouched.

use bytes::{Bytes, BytesMut};
use serde::Deserialize;
use serde_json::value::RawValue;

const FLAG: &[u8] = b"\"include_usage\":true";
const NEXT_FLAG: &[u8] = b",\"include_usage\":true";
const OPTIONS_VALUE: &[u8] = b"{\"include_usage\":true}";
const OPTIONS: &[u8] = b"\"stream_options\":{\"include_usage\":true}";
const NEXT_OPTIONS: &[u8] = b",\"stream_options\":{\"include_usage\":true}";

/// The top-level members that decide the edit; others are skipped unparsed.
#[derive(Deserialize)]
struct StreamRequest<'a> {
    #[serde(default, borrow, deserialize_with = "present")]
    stream: Option<&'a RawValue>,
    #[serde(default, borrow, deserialize_with = "present")]
    stream_options: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct StreamOptions<'a> {
    #[serde(default, borrow, deserialize_with = "present")]
    include_usage: Option<&'a RawValue>,
}

/// A member that is present, `null` included (`Option<&RawValue>` alone reads `null` as absent,
/// which would add a second `stream_options`).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<&'de RawValue>, D::Error> {
    <&RawValue>::deserialize(d).map(Some)
}

/// The one edit that makes a streaming request ask for usage: replace `span` of the body with
/// `with`. Found first and applied second, so a caller can hold room for the copy in between.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UsageSplice {
    span: std::ops::Range<usize>,
    with: &'static [u8],
}

impl UsageSplice {
    /// The length of the body once the splice is applied to it.
    pub fn spliced_len(&self, body: &[u8]) -> usize {
        body.len() - self.span.len() + self.with.len()
    }

    /// A copy of `body` (the one the splice was found in) with the edit made.
    pub fn apply(&self, body: &[u8]) -> Bytes {
        let mut out = BytesMut::with_capacity(self.spliced_len(body));
        out.extend_from_slice(&body[..self.span.start]);
        out.extend_from_slice(self.with);
        out.extend_from_slice(&body[self.span.end..]);
        out.freeze()
    }
}

/// For an OpenAI streaming request that does not already ask for usage, the edit that sets
/// `stream_options.include_usage` to `true`; `None` when nothing needs adding or the body is
/// unusual enough to forward as sent. `Some` means the usage event was not asked for by the
/// client, so the caller strips it from the client's stream.
pub fn stream_usage_splice(body: &[u8]) -> Option<UsageSplice> {
    if body.trim_ascii_start().first() != Some(&b'{') {
        return None;
    }
    let request: StreamRequest<'_> = serde_json::from_slice(body).ok()?;
    if request.stream?.get() != "true" {
        return None;
    }
    match request.stream_options {
        None => add_options(body),
        Some(options) if options.get() == "null" => {
            Some(UsageSplice { span: span_of(body, options)?, with: OPTIONS_VALUE })
        }
        Some(options) => set_flag(body, options),
    }
}

/// [`stream_usage_splice`] applied: the body that asks for usage, when it needs the edit.
pub fn ensure_stream_usage(body: &[u8]) -> Option<Bytes> {
    stream_usage_splice(body).map(|splice| splice.apply(body))
}

/// `"stream_options":{"include_usage":true}` as the last member of the top-level object.
fn add_options(body: &[u8]) -> Option<UsageSplice> {
    let end = body.iter().rposition(|&b| b == b'}')?;
    let with = if is_empty_object_before(&body[..end]) { OPTIONS } else { NEXT_OPTIONS };
    Some(UsageSplice { span: end..end, with })
}

/// Inside an existing `stream_options` object: `false` (or `null`) becomes `true` in place, an
/// absent flag is added as the object's last member, `true` needs nothing.
fn set_flag(body: &[u8], options: &RawValue) -> Option<UsageSplice> {
    let raw = options.get().as_bytes();
    if raw.first() != Some(&b'{') {
        return None;
    }
    let parsed: StreamOptions<'_> = serde_json::from_str(options.get()).ok()?;
    let start = span_of(body, options)?.start;
    match parsed.include_usage.map(RawValue::get) {
        None => {
            let end = start + raw.len() - 1;
            let with = if is_empty_object_before(&body[..end]) { FLAG } else { NEXT_FLAG };
            Some(UsageSplice { span: end..end, with })
        }
        Some("false" | "null") => Some(UsageSplice { span: span_of(body, parsed.include_usage?)?, with: b"true" }),
        Some(_) => None,
    }
}

/// Whether the object whose closing brace follows `before` has no members.
fn is_empty_object_before(before: &[u8]) -> bool {
    before.trim_ascii_end().last() == Some(&b'{')
}

/// Where a value borrowed from `body` sits in it.
fn span_of(body: &[u8], value: &RawValue) -> Option<std::ops::Range<usize>> {
    let start = (value.get().as_ptr() as usize).checked_sub(body.as_ptr() as usize)?;
    let end = start + value.get().len();
    (end <= body.len()).then_some(start..end)
}

#[cfg(test)]
mod tests;
