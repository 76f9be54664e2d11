//! Token usage: read from an upstream's answer, and asked for when the client did not ask.
//!
//! Non-stream answers carry `usage` (OpenAI) or `prompt_eval_count`/`eval_count` (Ollama native).
//! OpenAI streams carry usage only when the request says `stream_options.include_usage`; the
//! gateway adds that when the client did not ([`ensure_stream_usage`]), and [`UsageTap`] then
//! reads the usage event and drops it from what the client receives, so clients see exactly the
//! stream they asked for while every request is counted.

use bytes::{Bytes, BytesMut};

use crate::sse::Framing;

mod splice;

pub use splice::{UsageSplice, ensure_stream_usage, stream_usage_splice};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    pub prompt: u64,
    pub completion: u64,
    pub total: u64,
}

impl Usage {
    /// Usage of a whole (non-stream) body, if it is JSON that carries any.
    pub fn of_body(body: &[u8]) -> Option<Self> {
        Answer::parse(body)?.usage()
    }
}

/// The parts of an answer (a whole body, or one stream event) that carry usage, read through
/// typed fields: everything else, the completion text included, is skipped without allocating.
#[derive(serde::Deserialize)]
struct Answer {
    /// OpenAI's `usage` (with Anthropic-style `input_tokens`/`output_tokens` accepted).
    usage: Option<MapOnly<AnswerUsage>>,
    /// Ollama's evaluation counts.
    prompt_eval_count: Option<u64>,
    eval_count: Option<u64>,
    /// Only its length matters: a stream event with usage and no choices carries nothing else.
    choices: Option<Vec<serde::de::IgnoredAny>>,
}

#[derive(serde::Deserialize)]
struct AnswerUsage {
    prompt_tokens: Option<u64>,
    input_tokens: Option<u64>,
    completion_tokens: Option<u64>,
    output_tokens: Option<u64>,
    total_tokens: Option<u64>,
}

/// A struct read from a JSON object only. Serde's derive also reads a struct from an array, by
/// position, so `[[4,1,4,1,1]]` would pass for an answer with usage (found by fuzzing); an
/// upstream answer is an object, and an array is no answer at all.
struct MapOnly<T>(T);

impl<'de, T: serde::Deserialize<'de>> serde::Deserialize<'de> for MapOnly<T> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor<T>(std::marker::PhantomData<T>);
        impl<'de, T: serde::Deserialize<'de>> serde::de::Visitor<'de> for Visitor<T> {
            type Value = MapOnly<T>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                T::deserialize(serde::de::value::MapAccessDeserializer::new(map)).map(MapOnly)
            }
        }
        deserializer.deserialize_map(Visitor(std::marker::PhantomData))
    }
}

impl Answer {
    fn parse(json: &[u8]) -> Option<Self> {
        serde_json::from_slice::<MapOnly<Self>>(json).ok().map(|MapOnly(answer)| answer)
    }

    fn usage(&self) -> Option<Usage> {
        if let Some(MapOnly(u)) = &self.usage {
            let prompt = u.prompt_tokens.or(u.input_tokens).unwrap_or(0);
            let completion = u.completion_tokens.or(u.output_tokens).unwrap_or(0);
            return Some(Usage {
                prompt,
                completion,
                total: u.total_tokens.unwrap_or(prompt.saturating_add(completion)),
            });
        }
        (self.prompt_eval_count.is_some() || self.eval_count.is_some()).then(|| {
            let (prompt, completion) = (self.prompt_eval_count.unwrap_or(0), self.eval_count.unwrap_or(0));
            Usage { prompt, completion, total: prompt.saturating_add(completion) }
        })
    }
}

/// Watches a stream for usage, and (when the gateway asked for it) removes the usage event the
/// client did not ask for. Events are cut at their boundaries; a partial event waits for the rest.
#[derive(Debug)]
pub struct UsageTap {
    framing: Framing,
    strip_usage_event: bool,
    pending: BytesMut,
    pub usage: Option<Usage>,
    /// Events passed on, for an estimate when the stream ends before its usage.
    events: u64,
}

impl UsageTap {
    pub fn new(framing: Framing, strip_usage_event: bool) -> Self {
        Self { framing, strip_usage_event, pending: BytesMut::new(), usage: None, events: 0 }
    }

    /// Feeds a chunk; returns what the client should get now (complete events only).
    pub fn feed(&mut self, chunk: &[u8]) -> Bytes {
        self.pending.extend_from_slice(chunk);
        let mut out = BytesMut::with_capacity(self.pending.len());
        while let Some(len) = self.framing.first_event_len(&self.pending) {
            let event = self.pending.split_to(len);
            if !self.observe(&event) {
                self.events += 1;
                out.extend_from_slice(&event);
            }
        }
        out.freeze()
    }

    /// What is left at the end of the stream (an unterminated last event), passed on as is.
    pub fn finish(&mut self) -> Bytes {
        let rest = self.pending.split().freeze();
        if !rest.is_empty() {
            self.observe(&rest);
        }
        rest
    }

    /// Usage estimated from a stream cut short before it reported any: one completion token per
    /// event passed on (streams send about one token per event), nothing for the prompt.
    pub fn estimate(&self) -> Usage {
        Usage { prompt: 0, completion: self.events, total: self.events }
    }

    /// Records usage found in one event; returns whether the event is to be dropped.
    fn observe(&mut self, event: &[u8]) -> bool {
        if !contains(event, b"usage") && !contains(event, b"eval_count") {
            return false;
        }
        let json = match self.framing {
            Framing::Sse => {
                event.split(|&b| b == b'\n').find_map(|line| line.strip_prefix(b"data:")).map(<[u8]>::trim_ascii)
            }
            Framing::Ndjson => Some(event.trim_ascii()),
        };
        let Some(answer) = json.and_then(Answer::parse) else { return false };
        let Some(usage) = answer.usage() else { return false };
        self.usage = Some(usage);
        self.strip_usage_event && answer.choices.is_some_and(|choices| choices.is_empty())
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_is_read_from_openai_and_ollama_answers() {
        let openai = br#"{"choices":[],"usage":{"prompt_tokens":11,"completion_tokens":7,"total_tokens":18}}"#;
        assert_eq!(Usage::of_body(openai), Some(Usage { prompt: 11, completion: 7, total: 18 }));
        let ollama = br#"{"done":true,"prompt_eval_count":5,"eval_count":3}"#;
        assert_eq!(Usage::of_body(ollama), Some(Usage { prompt: 5, completion: 3, total: 8 }));
        assert_eq!(Usage::of_body(br#"{"choices":[]}"#), None);
        assert_eq!(Usage::of_body(b"not json"), None);
        // Found by fuzzing: serde reads a struct from an array by position
        assert_eq!(Usage::of_body(b"[[4,1,4,1,1],4,1,[]]"), None, "an array is no answer");
        assert_eq!(Usage::of_body(br#"{"usage":[4,1,4,1,1]}"#), None, "usage is an object or nothing");
        let anthropic_style = br#"{"content":[{"text":"x"}],"usage":{"input_tokens":4,"output_tokens":6}}"#;
        assert_eq!(Usage::of_body(anthropic_style), Some(Usage { prompt: 4, completion: 6, total: 10 }));
        let max = u64::MAX;
        let huge = format!(r#"{{"usage":{{"prompt_tokens":{max},"completion_tokens":1}}}}"#);
        assert_eq!(Usage::of_body(huge.as_bytes()).map(|u| u.total), Some(max), "a hostile count saturates");
        assert_eq!(
            Usage::of_body(br#"{"usage":null,"eval_count":2}"#),
            Some(Usage { prompt: 0, completion: 2, total: 2 })
        );
    }

    const CHUNK: &str = "data: {\"choices\":[{\"delta\":{\"content\":\"hi\"}}]}\n\n";
    const USAGE: &str =
        "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":2,\"completion_tokens\":3,\"total_tokens\":5}}\n\n";
    const DONE: &str = "data: [DONE]\n\n";

    #[test]
    fn the_injected_usage_event_is_read_and_removed_even_when_split_across_chunks() {
        let stream = format!("{CHUNK}{USAGE}{DONE}");
        let mut tap = UsageTap::new(Framing::Sse, true);
        let mut out = Vec::new();
        for piece in stream.as_bytes().chunks(7) {
            out.extend_from_slice(&tap.feed(piece));
        }
        out.extend_from_slice(&tap.finish());
        assert_eq!(String::from_utf8_lossy(&out), format!("{CHUNK}{DONE}"));
        assert_eq!(tap.usage, Some(Usage { prompt: 2, completion: 3, total: 5 }));
    }

    #[test]
    fn usage_the_client_asked_for_is_read_and_kept() {
        let mut tap = UsageTap::new(Framing::Sse, false);
        let out = tap.feed(format!("{CHUNK}{USAGE}{DONE}").as_bytes());
        assert_eq!(String::from_utf8_lossy(&out), format!("{CHUNK}{USAGE}{DONE}"));
        assert_eq!(tap.usage.map(|u| u.total), Some(5));
    }

    #[test]
    fn ndjson_streams_report_ollama_counts() {
        let mut tap = UsageTap::new(Framing::Ndjson, true);
        let stream: &[u8] = b"{\"done\":false}\n{\"done\":true,\"prompt_eval_count\":4,\"eval_count\":6}\n";
        assert_eq!(&tap.feed(stream)[..], stream, "native final lines carry content and are never dropped");
        assert_eq!(tap.usage, Some(Usage { prompt: 4, completion: 6, total: 10 }));
    }
}
