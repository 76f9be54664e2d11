//! Model lists: an upstream's list turned into the OpenAI `{"object":"list","data":[…]}` shape,
//! and narrowed to what a token may use.

use serde_json::{Value, json};

use crate::provider::ProviderKind;

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
            Some(json!({"id": id, "object": "model", "created": created, "owned_by": owner}))
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
