//! The properties ollama-pool's parsers must keep on any input, in one place for two runners:
//! the cargo-fuzz targets in `fuzz/` (one line each, run for minutes on a nightly-free
//! `RUSTC_BOOTSTRAP=1` build) and the test suite, which replays the kept corpus in
//! `fuzz/corpus/<target>/` through the same functions on every CI run.
//!
//! Each property takes raw bytes and panics when the code under test breaks its contract; "does
//! not panic" is always part of it (arithmetic overflow included: fuzz builds keep debug
//! assertions).
#![allow(clippy::expect_used, reason = "a property reports a broken contract by panicking")]

use bytes::BytesMut;
use http::{HeaderMap, HeaderName, HeaderValue};
use pool_core::import::{parse_text, validate_secret};
use pool_core::quota::{QuotaRest, parse_retry_after, read_rate_limit};
use pool_core::request::{self, MAX_DEPTH};
use pool_core::sse::{Framing, inband_error_status};
use pool_core::usage::{Usage, UsageTap, ensure_stream_usage};
use serde_json::Value;

/// A property: panics when the input breaks it.
pub type Property = fn(&[u8]);

/// Every target, by the name of its corpus folder and its fuzz binary.
pub const TARGETS: &[(&str, Property)] = &[
    ("parse_import", parse_import),
    ("stream_framing", stream_framing),
    ("usage_body", usage_body),
    ("request_peek", request_peek),
    ("quota", quota),
    ("stream_usage_splice", stream_usage_splice),
    ("config", config),
];

/// A fixed "now" (2025-06-15), so a run is repeatable.
const NOW: i64 = 1_750_000_000_000;

/// The key-import parser: every line that is not skipped comes back as a key or a rejection, and
/// every key obeys the key rule.
pub fn parse_import(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let parsed = parse_text(&text);
    assert_eq!(parsed.total() + parsed.skipped, text.lines().count());
    for key in &parsed.keys {
        assert_eq!(validate_secret(&key.secret), Ok(key.secret.as_str()));
    }
}

/// The SSE and NDJSON framers and the usage tap: the first event ends at a terminator inside the
/// buffer; a tap that strips nothing passes the stream on byte for byte; and how the stream is
/// cut into chunks (the first byte picks the chunk size) never changes what the client gets or
/// the usage read.
pub fn stream_framing(data: &[u8]) {
    let Some((&seed, stream)) = data.split_first() else { return };
    let chunk = usize::from(seed % 17) + 1;
    for framing in [Framing::Sse, Framing::Ndjson] {
        if let Some(len) = framing.first_event_len(stream) {
            assert!(len > 0 && len <= stream.len());
            let event = &stream[..len];
            assert!(event.ends_with(b"\n"), "an event ends at a line break");
            let _ = inband_error_status(framing, event).inspect(|s| assert!((400..600).contains(s)));
        }
        let (whole, whole_usage) = tap(framing, true, &[stream]);
        let pieces: Vec<&[u8]> = stream.chunks(chunk).collect();
        let (chunked, chunked_usage) = tap(framing, true, &pieces);
        assert_eq!(whole, chunked, "chunking changed the stream ({framing:?}, {chunk}-byte chunks)");
        assert_eq!(whole_usage, chunked_usage);
        assert!(whole.len() <= stream.len(), "stripping only removes");
        let (kept, _) = tap(framing, false, &pieces);
        assert_eq!(&kept[..], stream, "a tap that strips nothing changes nothing");
    }
}

fn tap(framing: Framing, strip: bool, pieces: &[&[u8]]) -> (BytesMut, Option<Usage>) {
    let mut tap = UsageTap::new(framing, strip);
    let mut out = BytesMut::new();
    for piece in pieces {
        out.extend_from_slice(&tap.feed(piece));
    }
    out.extend_from_slice(&tap.finish());
    let _ = tap.estimate();
    (out, tap.usage)
}

/// The usage reader of whole answers: never panics, and a total is never below its parts unless
/// the upstream said so.
pub fn usage_body(data: &[u8]) {
    if let Some(usage) = Usage::of_body(data) {
        let stated_total = serde_json::from_slice::<Value>(data)
            .ok()
            .and_then(|v| v.get("usage").and_then(|u| u.get("total_tokens")).and_then(Value::as_u64));
        if stated_total.is_none() {
            assert_eq!(usage.total, usage.prompt.saturating_add(usage.completion));
        }
    }
}

/// The request validator: a body it accepts is a JSON object nested within the limit, whose
/// `model` is the name it returns.
pub fn request_peek(data: &[u8]) {
    let nested_too_deep = request::nesting_exceeds(data, MAX_DEPTH);
    let Ok(peeked) = request::peek(data) else { return };
    assert!(!nested_too_deep);
    let value: Value = match serde_json::from_slice(data) {
        Ok(value) => value,
        // JSON puts no bound on numbers; serde_json's `Value` does (f64). Such a body is JSON,
        // and the upstream may take it: the validator rightly lets it through.
        Err(e) if e.to_string().starts_with("number out of range") => return,
        Err(e) => panic!("an accepted body is JSON: {e}"),
    };
    assert_eq!(value.get("model").and_then(Value::as_str), Some(peeked.model.as_str()));
    assert_eq!(peeked.stream, value.get("stream") == Some(&Value::Bool(true)));
}

/// The quota reader: lines of `name: value` headers, then a blank line and the body. A reset is
/// never in the past, and a rest is always within the configured bounds.
pub fn quota(data: &[u8]) {
    let (head, body) = match data.windows(2).position(|w| w == b"\n\n") {
        Some(at) => (&data[..at], &data[at + 2..]),
        None => (data, &[][..]),
    };
    let mut headers = HeaderMap::new();
    for line in head.split(|&b| b == b'\n') {
        let Some(colon) = line.iter().position(|&b| b == b':') else { continue };
        let (Ok(name), Ok(value)) =
            (HeaderName::from_bytes(&line[..colon]), HeaderValue::from_bytes(line[colon + 1..].trim_ascii()))
        else {
            continue;
        };
        if let Ok(text) = value.to_str() {
            let _ = parse_retry_after(text, NOW).inspect(|ms| assert!(*ms >= 0, "Retry-After {text:?} gave {ms}"));
        }
        headers.append(name, value);
    }
    let limit = read_rate_limit(&headers, body, NOW);
    assert!(limit.reset_after_ms.is_none_or(|ms| ms >= 0), "reset in the past: {limit:?}");
    let rest = QuotaRest::default();
    assert!((0..=rest.max_ms).contains(&rest.rest_ms(&limit)));
}

/// The stream-usage splice: when it edits a body, the result is JSON that asks for usage and
/// differs from the client's body in `stream_options.include_usage` only.
pub fn stream_usage_splice(data: &[u8]) {
    let Some(spliced) = ensure_stream_usage(data) else { return };
    let mut original: Value = serde_json::from_slice(data).expect("only JSON is spliced");
    let mut edited: Value = serde_json::from_slice(&spliced).expect("a splice yields JSON");
    assert_eq!(edited.pointer("/stream_options/include_usage"), Some(&Value::Bool(true)));
    for value in [&mut original, &mut edited] {
        let object = value.as_object_mut().expect("only objects are spliced");
        if let Some(Value::Object(options)) = object.get_mut("stream_options") {
            options.remove("include_usage");
            if options.is_empty() {
                object.remove("stream_options");
            }
        } else if object.get("stream_options") == Some(&Value::Null) {
            object.remove("stream_options");
        }
    }
    assert_eq!(original, edited, "the splice changed more than include_usage");
}

/// The configuration loader: any TOML text gives a configuration or an error, never a panic,
/// and an accepted one describes its providers.
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(config) = ollama_pool::config::Config::from_toml(text) {
        config.provider_specs().expect("a validated configuration has valid providers");
    }
}
