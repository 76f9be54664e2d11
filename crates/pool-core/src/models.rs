//! Model lists: what a provider's pool serves (the union of its keys' discovered models), an
//! upstream's list turned into the OpenAI `{"object":"list","data":[…]}` shape, and lists
//! narrowed to what a token may use.
//!
//! Each [`KeyPool`](crate::pool::KeyPool) keeps a [`ModelIndex`] beside its keys: a generation
//! bumped whenever its key set or a key's models change (a list built at an older generation is
//! out of date), and the set of every model name known to the pool, read in O(1) on the hot path.
//! A key design decision: that set only grows while the process runs. A model a key forgot (an
//! upstream 404) or whose keys were removed stays known until restart: the set exists to bound
//! statistics labels to names some upstream listed, and a superset of those is still bounded.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use arc_swap::ArcSwap;
use serde_json::{Value, json};

use crate::UnixMs;
use crate::provider::ProviderKind;

/// The models one key can use, as its provider listed them for it. Names are canonical
/// ([`crate::model_name::canonical`]), so `PoolKey::serves` is a plain set lookup.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelSet {
    pub names: BTreeSet<String>,
    pub discovered_at: UnixMs,
}

impl ModelSet {
    /// The seed's categories, derived from what the key really serves (not a global catalogue).
    pub fn categories(&self) -> Vec<&'static str> {
        let mut found: Vec<&'static str> = ["kimi", "llama", "qwen"]
            .into_iter()
            .filter(|family| self.names.iter().any(|m| m.to_ascii_lowercase().contains(family)))
            .collect();
        if found.is_empty() || self.names.len() > found.len() {
            found.push("general");
        }
        found
    }
}

/// What a provider's pool knows about models; see the module documentation.
#[derive(Debug, Default)]
pub struct ModelIndex {
    /// Bumped by every change of the key set or of a key's models.
    generation: AtomicU64,
    /// Canonical names discovered on some key since start, and the configured probe model.
    known: ArcSwap<HashSet<Arc<str>>>,
}

impl ModelIndex {
    /// The current generation: compare it with the one a cached list was built at.
    pub fn generation(&self) -> u64 {
        self.generation.load(Relaxed)
    }

    /// The interned name when the pool knows `canonical_model`.
    pub fn known(&self, canonical_model: &str) -> Option<Arc<str>> {
        self.known.load().get(canonical_model).cloned()
    }

    /// Adds names to the known set; writes only when one is new.
    pub fn learn<'a>(&self, names: impl Iterator<Item = &'a str> + Clone) {
        let known = self.known.load();
        if names.clone().all(|name| known.contains(name)) {
            return;
        }
        drop(known);
        self.known.rcu(|known| {
            let mut next = HashSet::clone(known);
            next.extend(names.clone().map(Arc::from));
            next
        });
    }

    /// Keys joined the pool, or left it (no sets), or a key's list changed: their names are
    /// learnt in one write (so loading many keys at start copies the set once), and lists built
    /// before are stale. Call it after the keys themselves changed.
    pub fn changed(&self, sets: &[Arc<ModelSet>]) {
        let names: HashSet<&str> = sets.iter().flat_map(|set| set.names.iter().map(String::as_str)).collect();
        self.learn(names.iter().copied());
        self.generation.fetch_add(1, Relaxed);
    }
}

/// One model of a pool's list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServedModel {
    /// The canonical name.
    pub name: String,
    /// When a key serving it last discovered it.
    pub discovered_at: UnixMs,
}

/// The union of the model lists `sets`, by name; `None` when there is none (the pool cannot say).
pub fn served_models(sets: &[Arc<ModelSet>]) -> Option<Vec<ServedModel>> {
    if sets.is_empty() {
        return None;
    }
    let mut union: BTreeMap<&str, UnixMs> = BTreeMap::new();
    for set in sets {
        for name in &set.names {
            let at = union.entry(name.as_str()).or_insert(set.discovered_at);
            *at = (*at).max(set.discovered_at);
        }
    }
    Some(union.into_iter().map(|(name, discovered_at)| ServedModel { name: name.to_owned(), discovered_at }).collect())
}

/// A pool's models in the OpenAI shape; `created` is when the model was discovered.
pub fn openai_list(models: &[ServedModel], owned_by: &str) -> Value {
    let data: Vec<Value> = models.iter().map(|m| openai_entry(&m.name, m.discovered_at / 1000, owned_by)).collect();
    json!({"object": "list", "data": data})
}

fn openai_entry(id: &str, created: i64, owned_by: &str) -> Value {
    json!({"id": id, "object": "model", "created": created, "owned_by": owned_by})
}

#[derive(Debug, thiserror::Error)]
#[error("upstream model list is not in the expected shape")]
pub struct UnexpectedModelList;

/// Maps an upstream model list (Ollama `/api/tags` or OpenAI `/models`) to the OpenAI shape.
/// `created` is used for entries that carry no creation time of their own.
pub fn to_openai_list(
    kind: ProviderKind,
    body: &[u8],
    owned_by: &str,
    created: i64,
) -> Result<Value, UnexpectedModelList> {
    let parsed: Value = serde_json::from_slice(body).map_err(|_| UnexpectedModelList)?;
    let entries = match kind {
        ProviderKind::Ollama => parsed.get("models"),
        ProviderKind::OpenAi => parsed.get("data").or_else(|| parsed.get("models")),
    }
    .and_then(Value::as_array)
    .ok_or(UnexpectedModelList)?;
    let data: Vec<Value> = entries
        .iter()
        .filter_map(|entry| {
            let id = ["id", "name", "model"].iter().find_map(|f| entry.get(*f)?.as_str())?;
            let created = entry.get("created").and_then(Value::as_i64).unwrap_or(created);
            let owner = entry.get("owned_by").and_then(Value::as_str).unwrap_or(owned_by);
            Some(openai_entry(id, created, owner))
        })
        .collect();
    Ok(json!({"object": "list", "data": data}))
}

/// A model list (OpenAI `data` or Ollama `models`) keeping only the entries whose `id`, `name`
/// or `model` is `allowed`; `None` when the body is not such a list (an error passed through).
pub fn retain_models(body: &[u8], allowed: impl Fn(&str) -> bool) -> Option<Vec<u8>> {
    let mut value: Value = serde_json::from_slice(body).ok()?;
    let mut found = false;
    for field in ["data", "models"] {
        if let Some(list) = value.get_mut(field).and_then(Value::as_array_mut) {
            found = true;
            list.retain(|entry| ["id", "name", "model"].iter().filter_map(|f| entry.get(*f)?.as_str()).any(&allowed));
        }
    }
    if found { serde_json::to_vec(&value).ok() } else { None }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pool_list_has_the_openai_shape() {
        let list = openai_list(&[ServedModel { name: "m:latest".into(), discovered_at: 42_000 }], "ollama");
        assert_eq!(
            list,
            json!({"object":"list","data":[{"id":"m:latest","object":"model","created":42,"owned_by":"ollama"}]})
        );
    }

    #[test]
    fn ollama_tags_become_an_openai_list() {
        let body = br#"{"models":[{"name":"llama3:8b","model":"llama3:8b"},{"model":"qwen"}]}"#;
        let list = to_openai_list(ProviderKind::Ollama, body, "ollama", 42).unwrap_or_default();
        assert_eq!(list["object"], "list");
        assert_eq!(list["data"][0], json!({"id":"llama3:8b","object":"model","created":42,"owned_by":"ollama"}));
        assert_eq!(list["data"][1]["id"], "qwen");
    }

    #[test]
    fn openai_lists_keep_their_ids_and_owners() {
        let body = br#"{"object":"list","data":[{"id":"gpt-4o","created":7,"owned_by":"openai"},{"nope":1}]}"#;
        let list = to_openai_list(ProviderKind::OpenAi, body, "openrouter", 42).unwrap_or_default();
        assert_eq!(list["data"].as_array().map(Vec::len), Some(1));
        assert_eq!(list["data"][0]["created"], 7);
        assert_eq!(list["data"][0]["owned_by"], "openai");
    }

    #[test]
    fn garbage_is_rejected() {
        assert!(to_openai_list(ProviderKind::Ollama, b"<html>", "o", 0).is_err());
        assert!(to_openai_list(ProviderKind::Ollama, br#"{"data":[]}"#, "o", 0).is_err());
    }

    #[test]
    fn lists_are_narrowed_to_the_allowed_models() {
        let openai = br#"{"object":"list","data":[{"id":"a"},{"id":"b"},{"id":"c"}]}"#;
        let kept = retain_models(openai, |m| m != "b").unwrap_or_default();
        assert_eq!(
            serde_json::from_slice::<Value>(&kept).ok(),
            Some(json!({"object":"list","data":[{"id":"a"},{"id":"c"}]}))
        );
        let tags = br#"{"models":[{"name":"llama3:8b","model":"llama3:8b"},{"name":"qwen"}]}"#;
        let kept = retain_models(tags, |m| m.starts_with("qwen")).unwrap_or_default();
        assert_eq!(serde_json::from_slice::<Value>(&kept).ok(), Some(json!({"models":[{"name":"qwen"}]})));
        assert_eq!(retain_models(br#"{"error":{"message":"no"}}"#, |_| true), None);
        assert_eq!(retain_models(b"<html>", |_| true), None);
    }
}
