//! The cache key's canonical form, and the store's TTL, bounds and counters.

use axum::http::{HeaderValue, StatusCode};
use bytes::Bytes;
use pool_core::ids::TokenId;
use uuid::Uuid;

use super::*;

fn key_on(provider: &str, route: &str, body: &str, token: Option<TokenId>) -> Option<CacheKey> {
    CacheKey::of(KeyParts { provider, route, body: body.as_bytes(), token })
}

fn key(body: &str) -> CacheKey {
    key_on("ollama", "http://up/v1/chat/completions", body, None).unwrap_or_else(|| panic!("cacheable: {body}"))
}

fn token(n: u128) -> Option<TokenId> {
    Some(TokenId::from_uuid(Uuid::from_u128(n)))
}

#[test]
fn member_order_does_not_matter_at_any_depth() {
    assert_eq!(
        key(r#"{"model":"m","messages":[{"role":"user","content":"hi"}],"top_p":1}"#),
        key(r#" { "top_p" : 1, "messages" : [ {"content":"hi","role":"user"} ], "model" : "m" } "#)
    );
}

#[test]
fn every_field_and_value_counts() {
    assert_ne!(key(r#"{"model":"m","seed":1}"#), key(r#"{"model":"m","seed":2}"#));
    assert_ne!(key(r#"{"model":"m","tools":[]}"#), key(r#"{"model":"m"}"#));
    assert_ne!(key(r#"{"model":"m","messages":["a","b"]}"#), key(r#"{"model":"m","messages":["b","a"]}"#));
    assert_ne!(key(r#"{"model":"m","stop":null}"#), key(r#"{"model":"m"}"#));
    assert_ne!(key(r#"{"model":"m","n":"1"}"#), key(r#"{"model":"m","n":1}"#));
}

#[test]
fn temperature_zero_is_neither_one_nor_absent() {
    let zero = key(r#"{"model":"m","temperature":0}"#);
    let one = key(r#"{"model":"m","temperature":1}"#);
    let absent = key(r#"{"model":"m"}"#);
    assert_ne!(zero, one);
    assert_ne!(zero, absent);
    assert_ne!(one, absent);
    assert_ne!(zero, key(r#"{"model":"m","temperature":0.0}"#), "numbers keep their kind");
    assert_ne!(one, key(r#"{"model":"m","temperature":1.0}"#));
    assert_ne!(key(r#"{"model":"m","temperature":0.7}"#), key(r#"{"model":"m","temperature":0.8}"#));
}

#[test]
fn provider_route_and_token_are_part_of_the_key() {
    let body = r#"{"model":"m"}"#;
    let chat = "http://up/v1/chat/completions";
    let base = key_on("ollama", chat, body, None);
    assert!(base.is_some());
    assert_ne!(base, key_on("openrouter", chat, body, None));
    assert_ne!(base, key_on("ollama", "http://up/v1/completions", body, None));
    assert_ne!(base, key_on("ollama", "http://up/v1/embeddings", body, None));
    assert_ne!(base, key_on("ollama", "http://up/api/chat", body, None));
    assert_ne!(base, key_on("ollama", chat, body, token(1)));
    assert_ne!(key_on("ollama", chat, body, token(1)), key_on("ollama", chat, body, token(2)));
    assert_eq!(key_on("ollama", chat, body, token(1)), key_on("ollama", chat, body, token(1)));
    assert_ne!(key_on("ab", "c", body, None), key_on("a", "bc", body, None), "parts cannot run into each other");
}

#[test]
fn streams_and_uncanonical_bodies_have_no_key() {
    let chat = "http://up/v1/chat/completions";
    assert_eq!(key_on("ollama", chat, r#"{"model":"m","stream":true}"#, None), None);
    assert!(key_on("ollama", chat, r#"{"model":"m","stream":false}"#, None).is_some());
    for bad in [r#"{"model":"m","a":1,"a":2}"#, r#"{"model":"m","x":{"b":1,"b":1}}"#, "[1]", "{", "\"m\"", ""] {
        assert_eq!(key_on("ollama", chat, bad, None), None, "{bad}");
    }
}

fn settings() -> CacheSettings {
    CacheSettings { enabled: true, ttl_ms: 1_000, max_entries: 3, max_bytes: 100, per_token: false }
}

fn answer(len: usize) -> CachedResponse {
    CachedResponse {
        status: StatusCode::OK,
        content_type: Some(HeaderValue::from_static("application/json")),
        body: Bytes::from(vec![b'x'; len]),
    }
}

fn k(n: u8) -> CacheKey {
    key(&format!(r#"{{"model":"m","n":{n}}}"#))
}

#[test]
fn an_entry_is_served_until_its_ttl_and_not_after() {
    let cache = ResponseCache::new(settings());
    cache.put(k(1), answer(5), 10_000);
    assert_eq!(cache.get(&k(1), 10_999), Some(answer(5)));
    assert_eq!(cache.get(&k(1), 11_000), None);
    assert_eq!(cache.stats(11_000).entries, 0, "expired entries are dropped");
    assert_eq!(cache.stats(11_000).bytes, 0);
}

#[test]
fn the_least_recently_used_entry_goes_when_the_count_is_reached() {
    let cache = ResponseCache::new(settings());
    for n in 1..=3 {
        cache.put(k(n), answer(1), 0);
    }
    assert!(cache.get(&k(1), 1).is_some(), "1 is now the most recently used");
    cache.put(k(4), answer(1), 2);
    assert!(cache.get(&k(2), 3).is_none(), "2 was the least recently used");
    for n in [1, 3, 4] {
        assert!(cache.get(&k(n), 3).is_some(), "{n}");
    }
    let stats = cache.stats(3);
    assert_eq!((stats.entries, stats.evictions, stats.stores), (3, 1, 4));
}

#[test]
fn entries_go_when_the_bytes_are_reached_and_an_oversized_answer_is_not_stored() {
    let cache = ResponseCache::new(settings());
    cache.put(k(1), answer(40), 0);
    cache.put(k(2), answer(40), 0);
    cache.put(k(3), answer(40), 0);
    assert!(cache.get(&k(1), 1).is_none(), "120 bytes > 100: the oldest went");
    assert_eq!(cache.stats(1).bytes, 80);
    cache.put(k(4), answer(101), 1);
    assert!(cache.get(&k(4), 1).is_none());
    assert_eq!(cache.stats(1).bytes, 80, "nothing was evicted for it either");
}

#[test]
fn storing_again_replaces_the_entry_and_its_bytes() {
    let cache = ResponseCache::new(settings());
    cache.put(k(1), answer(10), 0);
    cache.put(k(1), answer(30), 0);
    let stats = cache.stats(0);
    assert_eq!((stats.entries, stats.bytes), (1, 30));
    assert_eq!(cache.get(&k(1), 0).map(|a| a.body.len()), Some(30));
}

#[test]
fn clear_empties_and_counts_and_hits_and_misses_are_counted() {
    let cache = ResponseCache::new(settings());
    cache.put(k(1), answer(1), 0);
    cache.put(k(2), answer(1), 0);
    assert!(cache.get(&k(1), 0).is_some());
    assert!(cache.get(&k(3), 0).is_none());
    assert_eq!(cache.clear(0), 2);
    assert!(cache.get(&k(1), 0).is_none());
    let stats = cache.stats(0);
    assert_eq!(stats, CacheStats { entries: 0, bytes: 0, hits: 1, misses: 2, evictions: 0, stores: 2 });
}

#[test]
fn a_disabled_cache_stores_nothing() {
    let cache = ResponseCache::new(CacheSettings::disabled());
    cache.put(k(1), answer(1), 0);
    assert_eq!(cache.stats(0).entries, 0);
}
