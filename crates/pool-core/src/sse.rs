//! Stream framing: where the first event of an upstream stream ends, and how the gateway writes
//! an error into a stream that has already started.
//!
//! OpenAI streams are server-sent events (`data: …\n\n`); Ollama's native API streams
//! newline-delimited JSON. The gateway holds a stream until its first complete event so that a
//! failure before it can still move to another key unseen by the client.

use bytes::Bytes;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    Sse,
    Ndjson,
}

impl Framing {
    /// The framing of a response, from its `Content-Type`; `None` for a body read whole.
    pub fn from_content_type(content_type: &str) -> Option<Self> {
        let media = content_type.split(';').next().unwrap_or("").trim();
        if media.eq_ignore_ascii_case("text/event-stream") {
            Some(Self::Sse)
        } else if media.eq_ignore_ascii_case("application/x-ndjson") {
            Some(Self::Ndjson)
        } else {
            None
        }
    }

    /// The length of the first complete event in `buf`, if one is there.
    pub fn first_event_len(self, buf: &[u8]) -> Option<usize> {
        match self {
            Self::Sse => {
                let lf = find(buf, b"\n\n").map(|i| i + 2);
                let crlf = find(buf, b"\r\n\r\n").map(|i| i + 4);
                match (lf, crlf) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                }
            }
            Self::Ndjson => buf.iter().position(|&b| b == b'\n').map(|i| i + 1),
        }
    }

    /// An error event in this framing, in the OpenAI error shape.
    pub fn error_event(self, message: &str) -> Bytes {
        let body = serde_json::json!({
            "error": {"message": message, "type": "upstream_error", "param": null, "code": "stream_interrupted"}
        });
        match self {
            Self::Sse => Bytes::from(format!("data: {body}\n\n")),
            Self::Ndjson => Bytes::from(format!("{body}\n")),
        }
    }
}

/// An upstream that answers 200 and then reports an error as the first event (OpenRouter does):
/// the status it names, if numeric, so the proxy can treat it like the HTTP status.
pub fn inband_error_status(framing: Framing, event: &[u8]) -> Option<u16> {
    let text = std::str::from_utf8(event).ok()?;
    let json = match framing {
        Framing::Sse => text.lines().find_map(|l| l.strip_prefix("data:"))?.trim(),
        Framing::Ndjson => text.trim(),
    };
    let value: serde_json::Value = serde_json::from_str(json).ok()?;
    let code = value.get("error")?.get("code")?;
    code.as_u64()
        .or_else(|| code.as_str()?.parse().ok())
        .and_then(|c| u16::try_from(c).ok())
        .filter(|c| (400..600).contains(c))
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types_choose_the_framing() {
        assert_eq!(Framing::from_content_type("text/event-stream; charset=utf-8"), Some(Framing::Sse));
        assert_eq!(Framing::from_content_type("application/x-ndjson"), Some(Framing::Ndjson));
        assert_eq!(Framing::from_content_type("application/json"), None);
    }

    #[test]
    fn the_first_sse_event_ends_at_a_blank_line() {
        assert_eq!(Framing::Sse.first_event_len(b"data: {}\n"), None);
        assert_eq!(Framing::Sse.first_event_len(b"data: {}\n\ndata: x"), Some(10));
        assert_eq!(Framing::Sse.first_event_len(b"data: {}\r\n\r\n"), Some(12));
        assert_eq!(Framing::Ndjson.first_event_len(b"{\"a\":1}\n{"), Some(8));
    }

    #[test]
    fn an_error_event_is_openai_shaped_and_framed() {
        let event = Framing::Sse.error_event("upstream went silent");
        let text = std::str::from_utf8(&event).unwrap_or_default();
        assert!(text.starts_with("data: {") && text.ends_with("}\n\n"));
        let json: serde_json::Value = serde_json::from_str(&text[6..]).unwrap_or_default();
        assert_eq!(json["error"]["message"], "upstream went silent");
    }

    #[test]
    fn inband_errors_name_their_status() {
        assert_eq!(
            inband_error_status(Framing::Sse, b"data: {\"error\":{\"code\":429,\"message\":\"x\"}}\n\n"),
            Some(429)
        );
        assert_eq!(inband_error_status(Framing::Sse, b"data: {\"error\":{\"code\":\"502\"}}\n\n"), Some(502));
        assert_eq!(inband_error_status(Framing::Sse, b"data: {\"choices\":[]}\n\n"), None);
        assert_eq!(inband_error_status(Framing::Ndjson, b"{\"error\":{\"code\":200}}\n"), None);
    }
}
