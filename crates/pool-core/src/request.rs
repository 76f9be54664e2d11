//! What routing reads from a client's request body, and the checks it must pass first.
//!
//! The gateway forwards bodies as sent; it reads only `model` (to route) and `stream` (to frame
//! the answer). Before that, a body must be a JSON object, nested no deeper than [`MAX_DEPTH`]
//! (scanned without parsing, so a hostile body costs one pass), with a sane model name and, if
//! present, a boolean `stream`.

use std::borrow::Cow;
use std::fmt;

use serde::Deserialize;

use crate::model_name;

/// Deepest nesting (objects and arrays) a request body may have. serde skips unknown members
/// without a depth limit, so the gateway checks depth itself rather than forward a body built to
/// exhaust a parser upstream.
pub const MAX_DEPTH: usize = 64;

/// What routing reads from a valid body.
#[derive(Debug, PartialEq, Eq)]
pub struct Peeked {
    pub model: String,
    pub stream: bool,
}

/// Why a body was refused; each names the member at fault, if any.
#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    NotAnObject,
    TooDeep,
    /// Not JSON, or a member of the wrong type (`stream: "true"`), or a duplicate member.
    Json(String),
    MissingModel,
    InvalidModel,
}

impl Refused {
    /// The request member the refusal is about, for the error's `param`.
    pub fn param(&self) -> Option<&'static str> {
        matches!(self, Self::MissingModel | Self::InvalidModel).then_some("model")
    }
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotAnObject => f.write_str("The request body must be a JSON object"),
            Self::TooDeep => write!(f, "The request body is nested deeper than {MAX_DEPTH} levels"),
            Self::Json(e) => write!(f, "Invalid JSON body: {e}"),
            Self::MissingModel => f.write_str("The 'model' field is required"),
            Self::InvalidModel => {
                write!(f, "'model' must be 1-{} characters without control characters", model_name::MAX_CHARS)
            }
        }
    }
}

#[derive(Deserialize)]
struct Peek<'a> {
    #[serde(borrow)]
    model: Option<Cow<'a, str>>,
    stream: Option<bool>,
}

/// Checks what routing relies on and returns it.
pub fn peek(body: &[u8]) -> Result<Peeked, Refused> {
    if body.trim_ascii_start().first() != Some(&b'{') {
        return Err(Refused::NotAnObject);
    }
    if nesting_exceeds(body, MAX_DEPTH) {
        return Err(Refused::TooDeep);
    }
    // serde_json checks the text of the members it reads, not of those it skips: a body whose
    // other strings are not UTF-8 would pass, and is no JSON for the upstream.
    if let Err(e) = std::str::from_utf8(body) {
        return Err(Refused::Json(format!("The request body is not UTF-8 (at byte {})", e.valid_up_to())));
    }
    let peek: Peek<'_> = serde_json::from_slice(body).map_err(|e| Refused::Json(e.to_string()))?;
    let model = peek.model.ok_or(Refused::MissingModel)?;
    if !model_name::is_valid(&model) {
        return Err(Refused::InvalidModel);
    }
    Ok(Peeked { model: model.into_owned(), stream: peek.stream == Some(true) })
}

/// Whether JSON nesting (objects and arrays, outside strings) goes deeper than `limit`.
pub fn nesting_exceeds(body: &[u8], limit: usize) -> bool {
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for &b in body {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'{' | b'[' => {
                depth += 1;
                if depth > limit {
                    return true;
                }
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_objects_with_a_sane_model_pass() {
        let peeked = peek(br#" {"model":"llama3","stream":true,"messages":[]}"#).unwrap();
        assert_eq!(peeked, Peeked { model: "llama3".into(), stream: true });
        assert!(!peek(br#"{"model":"x","stream":false}"#).unwrap().stream);
        assert!(!peek(br#"{"model":"x"}"#).unwrap().stream);
        assert!(peek(br#"{"model":"x","extra":{"deep":[1,2,{"a":null}]}}"#).is_ok());
        assert_eq!(peek(br#"["llama3", true]"#), Err(Refused::NotAnObject));
        assert_eq!(peek(br#"{"stream":true}"#), Err(Refused::MissingModel));
        assert_eq!(peek(br#"{"model":""}"#), Err(Refused::InvalidModel));
        assert_eq!(peek(br#"{"model":"a\u0000b"}"#), Err(Refused::InvalidModel));
        for bad in [
            &br#"{"model":42}"#[..],
            br#"{"model":"x","stream":"true"}"#,
            br#"{"model":"x","model":"y"}"#,
            b"{\"model\":\"\xff\"}",
            // Found by fuzzing: bytes that are not UTF-8 in a member the validator skips
            b"{\"model\":\"x\",\"mode\x92l\":1}",
            b"{\"model\":\"x\",\"messages\":[{\"content\":\"\xc3\x28\"}]}",
            b"{not json",
        ] {
            assert!(matches!(peek(bad), Err(Refused::Json(_))), "{}", String::from_utf8_lossy(bad));
        }
        assert_eq!(peek(b""), Err(Refused::NotAnObject));
    }

    #[test]
    fn nesting_is_counted_outside_strings_only() {
        let deep = format!("{{\"model\":\"x\",\"a\":{}{}}}", "[".repeat(65), "]".repeat(65));
        assert_eq!(peek(deep.as_bytes()), Err(Refused::TooDeep));
        let fine = format!("{{\"model\":\"x\",\"a\":{}{},\"s\":\"[[[[\\\"{{{{\"}}", "[".repeat(60), "]".repeat(60));
        assert!(peek(fine.as_bytes()).is_ok(), "brackets inside strings do not count");
    }
}
