//! Providers: where upstream requests go, and how a client path maps onto the upstream's.
//!
//! Two kinds cover every upstream we know: `ollama` serves the OpenAI API under `{url}/v1` and its
//! native API under `{url}/api`; `openai` serves the OpenAI API directly under `{url}`.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// A provider's name: lower-case ASCII letters, digits, `-` and `_`, 1–32 characters. It appears
/// in URL paths (`/{name}/v1/...`), so it is validated once, here.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ProviderName(Arc<str>);

#[derive(Debug, thiserror::Error)]
#[error("provider names are 1-32 characters of a-z, 0-9, '-' and '_' (got {0:?})")]
pub struct InvalidProviderName(pub String);

impl ProviderName {
    pub fn parse(name: &str) -> Result<Self, InvalidProviderName> {
        let valid = !name.is_empty()
            && name.len() <= 32
            && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
        if valid { Ok(Self(name.into())) } else { Err(InvalidProviderName(name.to_owned())) }
    }
}

/// Maps keyed by provider name can be searched with a `&str` (no allocation per request).
impl std::borrow::Borrow<str> for ProviderName {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for ProviderName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ProviderName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for ProviderName {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    Ollama,
    #[serde(rename = "openai")]
    OpenAi,
}

/// One configured provider.
#[derive(Clone, Debug)]
pub struct ProviderSpec {
    pub name: ProviderName,
    pub kind: ProviderKind,
    /// Base URL without a trailing slash.
    pub url: String,
    pub enabled: bool,
    /// Extra headers sent upstream on every request (e.g. OpenRouter's `HTTP-Referer`, `X-Title`),
    /// parsed and checked once, when the configuration is read.
    pub headers: http::HeaderMap,
    /// Model a health probe asks for one token of; `None`: the key's first listed model.
    pub probe_model: Option<String>,
}

impl ProviderSpec {
    /// Upstream URL of an OpenAI-API path such as `chat/completions` or `models`.
    pub fn openai_url(&self, rest: &str) -> String {
        match self.kind {
            ProviderKind::Ollama => format!("{}/v1/{rest}", self.url),
            ProviderKind::OpenAi => format!("{}/{rest}", self.url),
        }
    }

    /// Upstream URL of an Ollama native path such as `chat` or `tags`; `None` for OpenAI providers.
    pub fn native_url(&self, rest: &str) -> Option<String> {
        match self.kind {
            ProviderKind::Ollama => Some(format!("{}/api/{rest}", self.url)),
            ProviderKind::OpenAi => None,
        }
    }

    /// Where the model list lives: Ollama's `/api/tags`, or the OpenAI `models`.
    pub fn models_url(&self) -> String {
        match self.kind {
            ProviderKind::Ollama => format!("{}/api/tags", self.url),
            ProviderKind::OpenAi => self.openai_url("models"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(kind: ProviderKind, url: &str) -> ProviderSpec {
        ProviderSpec {
            name: ProviderName::parse("p").unwrap_or_else(|e| panic!("{e}")),
            kind,
            url: url.into(),
            enabled: true,
            headers: http::HeaderMap::new(),
            probe_model: None,
        }
    }

    #[test]
    fn provider_names_are_path_safe() {
        assert!(ProviderName::parse("openrouter").is_ok());
        assert!(ProviderName::parse("my_vllm-2").is_ok());
        for bad in ["", "Upper", "a/b", "x y", "é", &"a".repeat(33), "..", "<script>"] {
            assert!(ProviderName::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn ollama_serves_openai_under_v1_and_native_under_api() {
        let p = spec(ProviderKind::Ollama, "https://ollama.com");
        assert_eq!(p.openai_url("chat/completions"), "https://ollama.com/v1/chat/completions");
        assert_eq!(p.native_url("chat").as_deref(), Some("https://ollama.com/api/chat"));
        assert_eq!(p.models_url(), "https://ollama.com/api/tags");
    }

    #[test]
    fn openai_kind_serves_directly_under_its_url() {
        let p = spec(ProviderKind::OpenAi, "https://openrouter.ai/api/v1");
        assert_eq!(p.openai_url("chat/completions"), "https://openrouter.ai/api/v1/chat/completions");
        assert_eq!(p.native_url("chat"), None);
        assert_eq!(p.models_url(), "https://openrouter.ai/api/v1/models");
    }
}
