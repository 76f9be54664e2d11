//! What a generation request asks for, read once by `routes` and built into answers by the
//! OpenAI and Ollama payload builders.

use std::time::Duration;

/// What a generation request asks for, ready for the payload builders.
pub(crate) struct Ask {
    /// Number for the response id.
    pub(crate) id: u64,
    /// The requested model as a JSON string literal (quoted and escaped).
    pub(crate) model: String,
    pub(crate) stream: bool,
    pub(crate) include_usage: bool,
    /// Content chunks per stream.
    pub(crate) chunks: usize,
    /// Delay before each streamed event.
    pub(crate) delay: Duration,
}

/// `s` as a JSON string literal.
pub(crate) fn quote(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| String::from("\"\""))
}
