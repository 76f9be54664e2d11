//! Upstream keys encrypted at rest: [`EncryptingStore`] over each SQL store, and `replace_secrets`.
//!
//! What is stored is read through the undecorated store, whose `load_keys` returns the `secret`
//! column verbatim (the black-box tests also read the SQLite file's bytes).

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use pool_adapters::cipher::{self, CipherError, EncryptingStore, MasterKey, SEALED_PREFIX};
use pool_core::ids::KeyId;
use pool_core::pool::{CounterValues, KeyDelta};
use pool_core::ports::{KeyStore, NewKey, SettingsStore, Store, TokenStore};
use pool_core::secret::Secret;

use crate::support::{T0, chain, contract, key, keys, token};

contract!(
    a_stored_secret_is_never_the_plaintext,
    keys_round_trip_through_the_encrypting_store,
    the_same_key_added_twice_is_stored_once_with_encryption,
    two_encryptions_of_one_key_differ,
    a_ciphertext_moved_to_another_row_does_not_decrypt,
    plaintext_rows_are_encrypted_when_encryption_is_turned_on,
    a_wrong_master_key_is_refused,
    encrypted_keys_without_a_master_key_are_refused,
    rotation_re_encrypts_every_key_and_the_old_key_no_longer_decrypts,
    rotation_from_plaintext_encrypts_every_key,
    rotation_with_a_missing_or_wrong_current_key_changes_nothing,
    replacing_secrets_rewrites_exactly_the_named_rows,
    everything_but_secrets_passes_through_the_encrypting_store,
);

fn master(byte: u8) -> MasterKey {
    MasterKey::from_bytes([byte; 32])
}

fn encrypting(store: &Arc<dyn Store>, byte: u8) -> EncryptingStore {
    EncryptingStore::new(Arc::clone(store), &master(byte))
}

/// The `secret` column of every key, as stored, oldest first.
async fn stored(store: &Arc<dyn Store>) -> Vec<String> {
    let records = store.load_keys().await.expect("keys load");
    records.iter().map(|r| r.key.secret.expose_secret().to_owned()).collect()
}

async fn plaintexts(store: &dyn KeyStore) -> Vec<String> {
    let records = store.load_keys().await.expect("keys load");
    records.iter().map(|r| r.key.secret.expose_secret().to_owned()).collect()
}

fn is_sealed(stored: &str) -> bool {
    stored.starts_with(SEALED_PREFIX)
}

async fn a_stored_secret_is_never_the_plaintext(store: &Arc<dyn Store>) {
    // Arrange
    let sealed = encrypting(store, 1);
    let batch = keys("openai", 3);
    // Act
    sealed.insert_keys(&batch).await.expect("insert");
    // Assert
    let stored = stored(store).await;
    assert_eq!(stored.len(), 3);
    for (value, key) in stored.iter().zip(&batch) {
        assert!(is_sealed(value), "stored with the prefix");
        assert!(!value.contains(key.secret.expose_secret()), "the plaintext is not in the column");
    }
}

async fn keys_round_trip_through_the_encrypting_store(store: &Arc<dyn Store>) {
    // Arrange
    let sealed = encrypting(store, 1);
    let plain = key("openai", "sk-plain");
    let labelled =
        NewKey { label: Some("team A".into()), expires_at: Some(T0 + 86_400_000), ..key("ollama", "sk-labelled") };
    // Act
    let inserted = sealed.insert_keys(&[plain.clone(), labelled.clone()]).await.expect("insert");
    let loaded = sealed.load_keys().await.expect("load");
    // Assert
    assert_eq!(inserted, vec![plain.id, labelled.id]);
    for (record, want) in loaded.iter().zip([&plain, &labelled]) {
        assert_eq!(record.key.id, want.id);
        assert_eq!(record.key.provider, want.provider);
        assert_eq!(record.key.secret, want.secret);
        assert_eq!(record.key.secret_hash, want.secret_hash);
        assert_eq!(record.key.label, want.label);
        assert_eq!(record.key.expires_at, want.expires_at);
    }
}

async fn the_same_key_added_twice_is_stored_once_with_encryption(store: &Arc<dyn Store>) {
    // Arrange
    let sealed = encrypting(store, 1);
    let first = key("openai", "sk-same");
    sealed.insert_keys(std::slice::from_ref(&first)).await.expect("first insert");
    // Act
    let again = sealed.insert_keys(&[key("openai", "sk-same"), key("openai", "sk-same")]).await.expect("again");
    // Assert
    assert!(again.is_empty(), "{again:?}");
    assert_eq!(plaintexts(&sealed).await, vec!["sk-same"]);
}

async fn two_encryptions_of_one_key_differ(store: &Arc<dyn Store>) {
    // Arrange
    let sealed = encrypting(store, 1);
    let (a, b) = (key("openai", "sk-shared"), key("ollama", "sk-shared"));
    // Act
    sealed.insert_keys(&[a, b]).await.expect("insert");
    // Assert
    let stored = stored(store).await;
    let nonces: Vec<Vec<u8>> = stored
        .iter()
        .map(|s| URL_SAFE_NO_PAD.decode(&s[SEALED_PREFIX.len()..]).expect("base64url")[..24].to_vec())
        .collect();
    assert_ne!(stored[0], stored[1]);
    assert_ne!(nonces[0], nonces[1], "a fresh random nonce per encryption");
}

async fn a_ciphertext_moved_to_another_row_does_not_decrypt(store: &Arc<dyn Store>) {
    // Arrange
    let sealed = encrypting(store, 1);
    let (a, b) = (key("openai", "sk-a"), key("openai", "sk-b"));
    sealed.insert_keys(&[a.clone(), b.clone()]).await.expect("insert");
    let stored = stored(store).await;
    // Act: swap the two ciphertexts behind the decorator's back
    let swapped = [(a.id, Secret::new(stored[1].as_str())), (b.id, Secret::new(stored[0].as_str()))];
    store.replace_secrets(&swapped).await.expect("raw replace");
    let loaded = sealed.load_keys().await;
    // Assert
    let error = loaded.expect_err("a moved ciphertext does not open");
    assert!(chain(&error).contains("does not decrypt"), "{}", chain(&error));
}

async fn plaintext_rows_are_encrypted_when_encryption_is_turned_on(store: &Arc<dyn Store>) {
    // Arrange: three keys stored before encryption, one after
    let old = keys("openai", 3);
    store.insert_keys(&old).await.expect("plaintext insert");
    let sealed = encrypting(store, 1);
    sealed.insert_keys(&[key("openai", "sk-new")]).await.expect("encrypted insert");
    // Act
    let encrypted_now = sealed.seal_plaintext_keys().await.expect("seal");
    let encrypted_later = sealed.seal_plaintext_keys().await.expect("seal again");
    // Assert
    assert_eq!((encrypted_now, encrypted_later), (3, 0));
    assert!(stored(store).await.iter().all(|s| is_sealed(s)));
    let want: Vec<String> = old.iter().map(|k| k.secret.expose_secret().to_owned()).chain(["sk-new".into()]).collect();
    assert_eq!(plaintexts(&sealed).await, want);
}

async fn a_wrong_master_key_is_refused(store: &Arc<dyn Store>) {
    // Arrange
    encrypting(store, 1).insert_keys(&keys("openai", 2)).await.expect("insert");
    store.insert_keys(&[key("openai", "sk-plaintext")]).await.expect("plaintext insert");
    let before = stored(store).await;
    let wrong = encrypting(store, 2);
    // Act
    let sealing = wrong.seal_plaintext_keys().await;
    let loading = wrong.load_keys().await;
    // Assert
    assert!(matches!(sealing, Err(CipherError::WrongKey(_))), "{sealing:?}");
    let error = loading.expect_err("the wrong key does not open the keys");
    assert!(chain(&error).contains("the wrong POOL_MASTER_KEY"), "{}", chain(&error));
    assert_eq!(stored(store).await, before, "nothing was encrypted under the wrong key");
}

async fn encrypted_keys_without_a_master_key_are_refused(store: &Arc<dyn Store>) {
    // Arrange
    store.insert_keys(&[key("openai", "sk-plaintext")]).await.expect("plaintext insert");
    let plaintext_only = cipher::refuse_sealed(store.as_ref()).await;
    encrypting(store, 1).insert_keys(&[key("openai", "sk-sealed")]).await.expect("insert");
    // Act
    let refused = cipher::refuse_sealed(store.as_ref()).await;
    // Assert
    assert!(plaintext_only.is_ok(), "{plaintext_only:?}");
    let error = refused.expect_err("refused");
    assert!(matches!(error, CipherError::NoMasterKey));
    assert_eq!(error.to_string(), "upstream keys are encrypted but no POOL_MASTER_KEY is configured");
}

async fn rotation_re_encrypts_every_key_and_the_old_key_no_longer_decrypts(store: &Arc<dyn Store>) {
    // Arrange: two keys under the old master key, one stored as plaintext
    encrypting(store, 1).insert_keys(&keys("openai", 2)).await.expect("insert");
    store.insert_keys(&[key("ollama", "sk-plaintext")]).await.expect("plaintext insert");
    let before = stored(store).await;
    let want = plaintexts(&encrypting(store, 1)).await;
    // Act
    let rotated = cipher::rotate(store.as_ref(), Some(&master(1)), &master(2)).await.expect("rotate");
    // Assert
    assert_eq!(rotated, 3);
    let after = stored(store).await;
    assert!(after.iter().all(|s| is_sealed(s)));
    assert!(after.iter().zip(&before).all(|(a, b)| a != b), "every stored value changed");
    assert_eq!(plaintexts(&encrypting(store, 2)).await, want);
    assert!(encrypting(store, 1).load_keys().await.is_err(), "the old key no longer decrypts");
}

async fn rotation_from_plaintext_encrypts_every_key(store: &Arc<dyn Store>) {
    // Arrange
    let batch = keys("openai", 3);
    store.insert_keys(&batch).await.expect("plaintext insert");
    // Act
    let rotated = cipher::rotate(store.as_ref(), None, &master(2)).await.expect("rotate");
    // Assert
    assert_eq!(rotated, 3);
    assert!(stored(store).await.iter().all(|s| is_sealed(s)));
    let want: Vec<String> = batch.iter().map(|k| k.secret.expose_secret().to_owned()).collect();
    assert_eq!(plaintexts(&encrypting(store, 2)).await, want);
}

async fn rotation_with_a_missing_or_wrong_current_key_changes_nothing(store: &Arc<dyn Store>) {
    // Arrange
    encrypting(store, 1).insert_keys(&keys("openai", 2)).await.expect("insert");
    let before = stored(store).await;
    // Act
    let without = cipher::rotate(store.as_ref(), None, &master(2)).await;
    let wrong = cipher::rotate(store.as_ref(), Some(&master(3)), &master(2)).await;
    // Assert
    assert!(matches!(without, Err(CipherError::NoMasterKey)), "{without:?}");
    assert!(matches!(wrong, Err(CipherError::WrongKey(_))), "{wrong:?}");
    assert_eq!(stored(store).await, before);
}

async fn replacing_secrets_rewrites_exactly_the_named_rows(store: &Arc<dyn Store>) {
    // Arrange: more keys than one PostgreSQL statement takes, and counters that must survive
    let batch = keys("openai", 12_001);
    store.insert_keys(&batch).await.expect("insert");
    let counted = KeyDelta {
        id: batch[0].id,
        counters: CounterValues { requests: 7, ..Default::default() },
        health: None,
        models: None,
    };
    store.flush_keys(&[counted]).await.expect("flush");
    let mut replacements: Vec<(KeyId, Secret)> =
        batch[..12_000].iter().map(|k| (k.id, Secret::new(format!("new-{}", k.secret.expose_secret())))).collect();
    replacements.push((batch[0].id, Secret::new("last-wins")));
    replacements.push((key("openai", "never-stored").id, Secret::new("ignored")));
    // Act
    store.replace_secrets(&replacements).await.expect("replace");
    // Assert
    let loaded = store.load_keys().await.expect("load");
    assert_eq!(loaded.len(), 12_001);
    assert_eq!(loaded[0].key.secret, Secret::new("last-wins"));
    assert_eq!(loaded[0].counters.requests, 7);
    assert_eq!(loaded[0].key.secret_hash, batch[0].secret_hash, "the hash of the plaintext is kept");
    assert_eq!(loaded[1].key.secret, Secret::new(format!("new-{}", batch[1].secret.expose_secret())));
    assert_eq!(loaded[12_000].key.secret, batch[12_000].secret, "a key not named is untouched");
}

async fn everything_but_secrets_passes_through_the_encrypting_store(store: &Arc<dyn Store>) {
    // Arrange
    let sealed = encrypting(store, 1);
    let batch = keys("openai", 2);
    sealed.insert_keys(&batch).await.expect("insert");
    let tokens = [token("ci", "sk-token")];
    // Act
    sealed.insert_token(&tokens[0]).await.expect("token");
    sealed.put_setting("name", "value").await.expect("setting");
    let counted = KeyDelta {
        id: batch[1].id,
        counters: CounterValues { requests: 3, ..Default::default() },
        health: None,
        models: None,
    };
    sealed.flush_keys(&[counted]).await.expect("flush");
    let deleted = sealed.delete_keys(&[batch[0].id]).await.expect("delete");
    // Assert
    assert_eq!(deleted, 1);
    let loaded = sealed.load_keys().await.expect("load");
    assert_eq!((loaded.len(), loaded[0].counters.requests), (1, 3));
    assert_eq!(store.load_tokens().await.expect("tokens"), tokens);
    assert_eq!(sealed.load_tokens().await.expect("tokens"), tokens);
    assert_eq!(sealed.setting("name").await.expect("setting").as_deref(), Some("value"));
}
