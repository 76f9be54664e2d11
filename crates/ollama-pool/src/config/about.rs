//! The configuration as the console's Settings page shows it: every effective value, with
//! secrets masked, and the warnings an operator should act on.
//!
//! Masking goes by name, so an option added later is masked without anyone remembering to: a
//! string whose name says token, password, secret or key is replaced by [`MASK`]; every value of
//! a `headers` table (providers' extra headers carry credentials) likewise; and a URL keeps its
//! user name but not its password.

use pool_http::console::about::{About, Warning};
use serde_json::Value;

use super::{Config, MIN_ADMIN_TOKEN_LEN};

/// What a masked secret reads as.
pub const MASK: &str = "********";

/// Distinct characters a configured admin token should have, at least.
const MIN_DISTINCT_CHARS: usize = 12;

/// Values the configuration leaves to the machine (0 = automatic), as the process resolved them.
#[derive(Clone, Copy, Debug)]
pub struct Resolved {
    pub buffer_budget_bytes: usize,
    pub max_connections: usize,
}

pub fn about(config: &Config, resolved: Resolved) -> About {
    About {
        version: env!("CARGO_PKG_VERSION").to_owned(),
        config: masked(config, resolved),
        warnings: warnings(config),
    }
}

/// The effective configuration with every secret masked: the built-in providers included, and
/// automatic values as resolved.
pub fn masked(config: &Config, resolved: Resolved) -> Value {
    let mut value = serde_json::to_value(config).unwrap_or(Value::Null);
    if let Some(members) = value.as_object_mut() {
        members.insert("providers".into(), serde_json::to_value(config.merged_providers()).unwrap_or(Value::Null));
    }
    if let Some(proxy) = value.get_mut("proxy").and_then(Value::as_object_mut) {
        proxy.insert("buffer_budget_bytes".into(), resolved.buffer_budget_bytes.into());
    }
    if let Some(server) = value.get_mut("server").and_then(Value::as_object_mut) {
        server.insert("max_connections".into(), resolved.max_connections.into());
    }
    mask(&mut value);
    value
}

fn mask(value: &mut Value) {
    match value {
        Value::Object(members) => {
            for (name, member) in members.iter_mut() {
                if name == "headers" {
                    mask_all(member);
                } else if let Value::String(s) = member {
                    *s = if is_secret_name(name) { MASK.to_owned() } else { without_password(s) };
                } else {
                    mask(member);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(mask),
        Value::String(s) => *s = without_password(s),
        _ => {}
    }
}

fn mask_all(value: &mut Value) {
    match value {
        Value::Object(members) => members.values_mut().for_each(mask_all),
        Value::Array(items) => items.iter_mut().for_each(mask_all),
        Value::String(s) => MASK.clone_into(s),
        _ => {}
    }
}

fn is_secret_name(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    ["token", "password", "secret", "key"].iter().any(|word| name.contains(word))
}

/// `scheme://user:password@host/...` without the password; anything else unchanged.
fn without_password(s: &str) -> String {
    let Some(scheme_end) = s.find("://").map(|i| i + 3) else { return s.to_owned() };
    let authority_end = s[scheme_end..].find(['/', '?', '#']).map_or(s.len(), |i| scheme_end + i);
    let Some(at) = s[scheme_end..authority_end].rfind('@').map(|i| scheme_end + i) else { return s.to_owned() };
    match s[scheme_end..at].find(':') {
        Some(colon) => format!("{}:{MASK}{}", &s[..scheme_end + colon], &s[at..]),
        None => s.to_owned(),
    }
}

/// What the operator should fix: a weak configured admin token, no master key.
pub fn warnings(config: &Config) -> Vec<Warning> {
    let mut warnings = Vec::new();
    if config.admin_token.as_deref().is_some_and(is_weak) {
        warnings.push(Warning {
            code: "weak_admin_token",
            message: format!(
                "The configured admin token is weak (few distinct characters or a repeated pattern); set a random \
                 one of at least {MIN_ADMIN_TOKEN_LEN} characters, e.g. `openssl rand -hex 32`"
            ),
        });
    }
    if config.master_key.is_none() {
        warnings.push(Warning {
            code: "no_master_key",
            message: "Upstream keys are stored in plaintext: set POOL_MASTER_KEY to the output of \
                      `ollama-pool keys generate-master-key`"
                .to_owned(),
        });
    }
    warnings
}

/// A token that passes the length check but is easy to guess: few distinct characters, or a
/// short piece repeated.
fn is_weak(token: &str) -> bool {
    let chars: Vec<char> = token.chars().collect();
    let mut distinct = chars.clone();
    distinct.sort_unstable();
    distinct.dedup();
    let repeated =
        (1..=chars.len() / 2).any(|n| chars.len().is_multiple_of(n) && chars.chunks(n).all(|c| c == &chars[..n]));
    distinct.len() < MIN_DISTINCT_CHARS || repeated
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_masked_by_name_in_headers_and_in_url_passwords() {
        let mut value = serde_json::json!({
            "admin_token": "admin-abc", "master_key": "k", "listen": "0.0.0.0:8080",
            "database": {"url": "postgres://pool:hunter2@db:5432/pool?sslmode=require"},
            "providers": {"x": {"base_url": "https://api.example.com/v1", "headers": {"Authorization": "Bearer s"}}},
            "cache": {"per_token": true, "max_entries": 10},
            "nothing": null,
        });
        mask(&mut value);
        assert_eq!(value["admin_token"], MASK);
        assert_eq!(value["master_key"], MASK);
        assert_eq!(value["listen"], "0.0.0.0:8080");
        assert_eq!(value["database"]["url"], format!("postgres://pool:{MASK}@db:5432/pool?sslmode=require"));
        assert_eq!(value["providers"]["x"]["base_url"], "https://api.example.com/v1");
        assert_eq!(value["providers"]["x"]["headers"]["Authorization"], MASK);
        assert_eq!(value["cache"]["per_token"], true, "only strings are masked");
        assert!(value["nothing"].is_null());
    }

    #[test]
    fn urls_without_a_password_are_kept() {
        assert_eq!(without_password("postgres://pool@db/pool"), "postgres://pool@db/pool");
        assert_eq!(without_password("sqlite://data/pool.db"), "sqlite://data/pool.db");
        assert_eq!(without_password("https://h/p?a=b@c"), "https://h/p?a=b@c");
        assert_eq!(without_password("redis://:pw@h:6379"), format!("redis://:{MASK}@h:6379"));
    }

    #[test]
    fn weak_tokens_are_those_with_few_characters_or_a_repeated_piece() {
        assert!(is_weak("changeme-changeme-changeme"));
        assert!(is_weak("abcdefghijklmabcdefghijklm"));
        assert!(is_weak("aaaaaaaaaaaaaaaaaaaaaaaaab"));
        assert!(!is_weak("3f9c1e0b7a6d4c2e8f1a9b0c7d6e5f4a"));
        assert!(!is_weak("admin-Xq2M8vT4kLp0Zr7NcW1yHs5Bf3Jd9Ge6Ua"));
    }
}
