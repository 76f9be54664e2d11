//! Model names: what a valid one looks like, and when two spellings name one model.
//!
//! This is the one home of the rule; routing (`PoolKey::serves`), token allow-lists, discovered
//! model sets, model lists and statistics all compare [`canonical`] names.
//!
//! Ollama fills in a missing tag with `latest`, so `llama3.2` and `llama3.2:latest` are one
//! model. The tag is what follows the last `:` only if that part has no `/`:
//! `registry.example.com:5000/ns/model` has a port, not a tag. A name with a digest (`@sha256:…`)
//! is already exact and kept as written. OpenAI-compatible providers (OpenRouter…) define no
//! such rule, so their names are compared exactly.
//!
//! A key design decision: the canonical name is used for comparing and recording only. The body
//! sent upstream is never rewritten; the client's spelling goes upstream as sent.

use std::borrow::Cow;

use crate::provider::ProviderKind;

/// Longest model name (or allow-list entry) accepted; names are shown on dashboards and must
/// stay data.
pub const MAX_CHARS: usize = 256;

/// Ollama's default tag, as appended to an untagged name.
const LATEST: &str = ":latest";

/// A model name or allow-list entry: 1 to [`MAX_CHARS`] characters, no control characters.
pub fn is_valid(name: &str) -> bool {
    !name.is_empty() && name.chars().count() <= MAX_CHARS && !name.chars().any(char::is_control)
}

/// The name `name` stands for on a provider of `kind`: borrowed when it is already canonical.
pub fn canonical(kind: ProviderKind, name: &str) -> Cow<'_, str> {
    match missing_suffix(kind, name) {
        None => Cow::Borrowed(name),
        Some(suffix) => Cow::Owned(format!("{name}{suffix}")),
    }
}

/// Whether `name` stands for the model whose canonical name is `canonical_name` (no allocation).
pub fn names(kind: ProviderKind, name: &str, canonical_name: &str) -> bool {
    match missing_suffix(kind, name) {
        None => name == canonical_name,
        Some(suffix) => canonical_name.strip_suffix(suffix) == Some(name),
    }
}

/// What must be appended to `name` to make it canonical; `None` when it already is.
fn missing_suffix(kind: ProviderKind, name: &str) -> Option<&'static str> {
    if kind == ProviderKind::OpenAi || name.is_empty() || name.contains('@') {
        return None;
    }
    match name.rsplit_once(':') {
        Some((_, tag)) if tag.contains('/') => Some(LATEST),
        Some((_, "")) => Some(&LATEST[1..]),
        Some(_) => None,
        None => Some(LATEST),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OLLAMA: ProviderKind = ProviderKind::Ollama;

    #[test]
    fn an_untagged_ollama_name_means_latest() {
        assert_eq!(canonical(OLLAMA, "llama3.2"), "llama3.2:latest");
        assert_eq!(canonical(OLLAMA, "library/llama3.2"), "library/llama3.2:latest");
        assert_eq!(canonical(OLLAMA, "mock-gpt:"), "mock-gpt:latest");
    }

    #[test]
    fn a_tag_is_kept_and_a_canonical_name_is_borrowed() {
        assert_eq!(canonical(OLLAMA, "model:7b"), "model:7b");
        assert!(matches!(canonical(OLLAMA, "llama3.2:latest"), Cow::Borrowed("llama3.2:latest")));
        assert_eq!(canonical(OLLAMA, "ns/model:q4_K_M"), "ns/model:q4_K_M");
    }

    #[test]
    fn a_registry_port_is_not_a_tag() {
        assert_eq!(
            canonical(OLLAMA, "registry.example.com:5000/ns/model"),
            "registry.example.com:5000/ns/model:latest"
        );
        assert_eq!(canonical(OLLAMA, "registry.example.com:5000/ns/model:7b"), "registry.example.com:5000/ns/model:7b");
    }

    #[test]
    fn digests_and_openai_names_are_kept_exactly() {
        assert_eq!(canonical(OLLAMA, "model@sha256:abc"), "model@sha256:abc");
        assert_eq!(canonical(ProviderKind::OpenAi, "gpt"), "gpt");
        assert_eq!(canonical(ProviderKind::OpenAi, "openai/gpt-4o"), "openai/gpt-4o");
    }

    #[test]
    fn a_spelling_names_its_canonical_model_and_no_other() {
        assert!(names(OLLAMA, "mock-gpt", "mock-gpt:latest"));
        assert!(names(OLLAMA, "mock-gpt:latest", "mock-gpt:latest"));
        assert!(!names(OLLAMA, "mock-gpt", "mock-gpt:7b"));
        assert!(!names(OLLAMA, "mock", "mock-gpt:latest"));
        assert!(!names(ProviderKind::OpenAi, "gpt", "gpt:latest"));
        assert!(names(ProviderKind::OpenAi, "gpt:latest", "gpt:latest"));
    }

    #[test]
    fn canonical_is_idempotent_and_agrees_with_names() {
        for name in ["a", "a:b", "h:1/n/m", "h:1/n/m:t", "x:", "m@sha256:1", "o/p"] {
            let once = canonical(OLLAMA, name).into_owned();
            assert_eq!(canonical(OLLAMA, &once), once.as_str(), "{name}");
            assert!(names(OLLAMA, name, &once), "{name}");
        }
    }

    #[test]
    fn valid_names_are_short_and_free_of_control_characters() {
        assert!(is_valid("qwen*") && !is_valid("") && !is_valid("a\nb"));
        assert!(is_valid(&"m".repeat(MAX_CHARS)) && !is_valid(&"m".repeat(MAX_CHARS + 1)));
    }
}
