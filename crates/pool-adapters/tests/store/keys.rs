//! Inserting, loading and deleting upstream keys.

use std::sync::Arc;

use pool_core::key::{Health, KeyStatus};
use pool_core::pool::{CounterValues, KeyDelta, KeyLimits};
use pool_core::ports::{KeyRecord, NewKey, Store};
use pool_core::secret::Secret;

use crate::support::{T0, contract, key, keys};

contract!(
    inserted_keys_load_back_with_their_fields_and_default_health,
    a_key_already_stored_for_its_provider_is_skipped,
    the_same_secret_under_another_provider_is_a_different_key,
    a_key_repeated_within_one_batch_is_inserted_once,
    deleting_keys_removes_exactly_those_and_counts_them,
    twenty_thousand_keys_insert_in_one_call,
    hostile_strings_round_trip_unchanged,
    key_limits_are_stored_at_insert_and_by_an_update_that_touches_nothing_else,
);

async fn load(store: &Arc<dyn Store>) -> Vec<KeyRecord> {
    store.load_keys().await.expect("keys load")
}

fn secrets(records: &[KeyRecord]) -> Vec<String> {
    records.iter().map(|r| r.key.secret.expose_secret().to_owned()).collect()
}

async fn inserted_keys_load_back_with_their_fields_and_default_health(store: &Arc<dyn Store>) {
    // Arrange
    let plain = key("openai", "sk-plain");
    let labelled =
        NewKey { label: Some("team A".into()), expires_at: Some(T0 + 86_400_000), ..key("ollama", "sk-labelled") };
    // Act
    let inserted = store.insert_keys(&[plain.clone(), labelled.clone()]).await.expect("insert");
    let loaded = load(store).await;
    // Assert
    assert_eq!(inserted, vec![plain.id, labelled.id]);
    assert_eq!(loaded.len(), 2);
    for (record, want) in loaded.iter().zip([&plain, &labelled]) {
        assert_eq!(record.key.id, want.id);
        assert_eq!(record.key.provider, want.provider);
        assert_eq!(record.key.secret, want.secret);
        assert_eq!(record.key.label, want.label);
        assert_eq!(record.key.created_at, want.created_at);
        assert_eq!(record.key.expires_at, want.expires_at);
        assert_eq!(record.health, Health::default());
        assert_eq!(record.counters, CounterValues::default());
    }
}

async fn a_key_already_stored_for_its_provider_is_skipped(store: &Arc<dyn Store>) {
    // Arrange
    let first = key("openai", "sk-one");
    store.insert_keys(std::slice::from_ref(&first)).await.expect("first insert");
    let again = key("openai", "sk-one");
    let fresh = key("openai", "sk-two");
    // Act
    let inserted = store.insert_keys(&[again, fresh.clone()]).await.expect("second insert");
    // Assert
    assert_eq!(inserted, vec![fresh.id]);
    let loaded = load(store).await;
    assert_eq!(loaded.iter().map(|r| r.key.id).collect::<Vec<_>>(), vec![first.id, fresh.id]);
}

async fn the_same_secret_under_another_provider_is_a_different_key(store: &Arc<dyn Store>) {
    // Arrange
    let openai = key("openai", "sk-shared");
    let ollama = key("ollama", "sk-shared");
    // Act
    let inserted = store.insert_keys(&[openai.clone(), ollama.clone()]).await.expect("insert");
    // Assert
    assert_eq!(inserted, vec![openai.id, ollama.id]);
}

async fn a_key_repeated_within_one_batch_is_inserted_once(store: &Arc<dyn Store>) {
    // Arrange
    let a = key("openai", "sk-a");
    let a_again = key("openai", "sk-a");
    let b = key("openai", "sk-b");
    // Act
    let inserted = store.insert_keys(&[a.clone(), a_again, b.clone(), a.clone()]).await.expect("insert");
    // Assert
    assert_eq!(inserted, vec![a.id, b.id]);
    assert_eq!(secrets(&load(store).await), vec!["sk-a", "sk-b"]);
}

async fn deleting_keys_removes_exactly_those_and_counts_them(store: &Arc<dyn Store>) {
    // Arrange
    let batch = keys("openai", 3);
    store.insert_keys(&batch).await.expect("insert");
    let unknown = key("openai", "never-stored").id;
    // Act
    let deleted = store.delete_keys(&[batch[0].id, batch[2].id, unknown]).await.expect("delete");
    let deleted_again = store.delete_keys(&[batch[0].id]).await.expect("delete again");
    // Assert
    assert_eq!(deleted, 2);
    assert_eq!(deleted_again, 0);
    assert_eq!(load(store).await.iter().map(|r| r.key.id).collect::<Vec<_>>(), vec![batch[1].id]);
}

async fn twenty_thousand_keys_insert_in_one_call(store: &Arc<dyn Store>) {
    // Arrange
    let batch = keys("openai", 20_000);
    // Act
    let inserted = store.insert_keys(&batch).await.expect("insert");
    let again = store.insert_keys(&batch).await.expect("insert again");
    // Assert
    assert_eq!(inserted.len(), 20_000);
    assert_eq!(inserted, batch.iter().map(|k| k.id).collect::<Vec<_>>());
    assert!(again.is_empty(), "every key is already stored");
    assert_eq!(load(store).await.len(), 20_000);
}

/// Strings an attacker or a careless operator might feed the store.
pub const HOSTILE: &[&str] = &[
    "it's",
    "\"double\" and `back`",
    "'; DROP TABLE upstream_keys; --",
    "Robert'); DELETE FROM client_tokens WHERE ('1'='1",
    "$1 ? :name @p %s \\ \\\\ ''",
    "ключ 鍵 🔑 e\u{301} \u{200b}zero-width",
    "line\nbreak\ttab\r\n",
];

async fn hostile_strings_round_trip_unchanged(store: &Arc<dyn Store>) {
    // Arrange
    let long_label = "x'\"😀".repeat(1_500);
    let mut batch: Vec<NewKey> = HOSTILE
        .iter()
        .map(|s| NewKey { provider: (*s).to_owned(), label: Some((*s).to_owned()), ..key("p", s) })
        .collect();
    batch.push(NewKey { label: Some(long_label.clone()), ..key("openai", "sk-long-label") });
    // Act
    let inserted = store.insert_keys(&batch).await.expect("insert");
    let loaded = load(store).await;
    // Assert
    assert_eq!(inserted.len(), batch.len());
    for (record, want) in loaded.iter().zip(&batch) {
        assert_eq!(record.key.provider, want.provider);
        assert_eq!(record.key.secret, want.secret);
        assert_eq!(record.key.label, want.label);
    }
    assert!(long_label.len() >= 10 * 1024);
    assert_eq!(loaded.last().and_then(|r| r.key.label.clone()), Some(long_label));
    assert_eq!(loaded[0].key.secret, Secret::new(HOSTILE[0]));
}

async fn key_limits_are_stored_at_insert_and_by_an_update_that_touches_nothing_else(store: &Arc<dyn Store>) {
    // Arrange
    let limits = KeyLimits { rpm: Some(30), max_concurrent: Some(2) };
    let limited = NewKey { limits, ..key("ollama", "sk-limited") };
    let plain = key("ollama", "sk-plain");
    store.insert_keys(&[limited.clone(), plain.clone()]).await.expect("insert");
    let mut health = Health::default();
    health.disable("operator".into(), T0, None);
    let counters = CounterValues { requests: 4, ..CounterValues::default() };
    let delta = KeyDelta { id: plain.id, counters, health: Some(health.clone()), models: None };
    store.flush_keys(&[delta]).await.expect("flush");
    // Act
    let loaded_limits: Vec<KeyLimits> = load(store).await.iter().map(|r| r.key.limits).collect();
    let updated = store.update_key(plain.id, Some(HOSTILE[3]), &KeyLimits { rpm: Some(1), max_concurrent: None });
    let updated = updated.await.expect("update");
    let cleared = store.update_key(limited.id, None, &KeyLimits::default()).await.expect("clear");
    let ghost = store.update_key(key("ollama", "sk-ghost").id, None, &limits).await.expect("unknown id");
    // Assert
    assert_eq!(loaded_limits, vec![limits, KeyLimits::default()]);
    assert!(updated && cleared && !ghost);
    let loaded = load(store).await;
    assert_eq!((loaded[0].key.limits, loaded[0].key.label.clone()), (KeyLimits::default(), None));
    let edited = &loaded[1];
    assert_eq!(edited.key.limits, KeyLimits { rpm: Some(1), max_concurrent: None });
    assert_eq!(edited.key.label.as_deref(), Some(HOSTILE[3]));
    assert_eq!((edited.health.status(T0), edited.counters.requests), (KeyStatus::Disabled, 4));
    assert_eq!(edited.key.secret, plain.secret);
}
