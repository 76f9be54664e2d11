//! Client tokens: insert, load, delete, conflicts and flushes.

use std::sync::Arc;

use pool_core::limit::Limits;
use pool_core::ports::{Store, StoreError, TokenRecord};
use pool_core::secret::hash_secret;
use pool_core::token::TokenDelta;

use crate::keys::HOSTILE;
use crate::support::{T0, contract, token};

contract!(
    tokens_load_back_exactly_as_inserted,
    a_token_whose_hash_is_stored_is_a_conflict,
    a_token_whose_id_is_stored_is_a_conflict,
    deleting_a_token_says_whether_it_existed,
    deleting_many_tokens_removes_exactly_those_named_and_counts_them,
    token_flushes_add_requests_and_keep_the_latest_use,
    token_limits_and_models_load_back_exactly,
    updating_a_token_changes_its_settings_and_keeps_its_hash_and_counters,
    updating_a_token_that_is_not_stored_says_so,
);

async fn load(store: &Arc<dyn Store>) -> Vec<TokenRecord> {
    store.load_tokens().await.expect("tokens load")
}

async fn tokens_load_back_exactly_as_inserted(store: &Arc<dyn Store>) {
    // Arrange
    let everywhere = token("ci", "sk-everywhere");
    let scoped = TokenRecord {
        providers: Some(vec!["openai".into(), HOSTILE[2].into(), HOSTILE[5].into()]),
        expires_at: Some(T0 + 1_000),
        requests: 7,
        last_used: Some(T0 - 5),
        ..token(HOSTILE[3], "sk-scoped")
    };
    let empty_scope = TokenRecord { providers: Some(Vec::new()), ..token("nothing", "sk-nothing") };
    // Act
    for record in [&everywhere, &scoped, &empty_scope] {
        store.insert_token(record).await.expect("insert");
    }
    // Assert
    assert_eq!(load(store).await, vec![everywhere, scoped, empty_scope]);
}

async fn a_token_whose_hash_is_stored_is_a_conflict(store: &Arc<dyn Store>) {
    // Arrange
    let first = token("first", "sk-same");
    store.insert_token(&first).await.expect("insert");
    // Act
    let second = store.insert_token(&token("second", "sk-same")).await;
    // Assert
    assert!(matches!(second, Err(StoreError::Conflict)), "{second:?}");
    assert_eq!(load(store).await, vec![first]);
}

async fn a_token_whose_id_is_stored_is_a_conflict(store: &Arc<dyn Store>) {
    // Arrange
    let first = token("first", "sk-one");
    store.insert_token(&first).await.expect("insert");
    // Act
    let same_id = TokenRecord { hash: hash_secret("sk-other"), ..first.clone() };
    let second = store.insert_token(&same_id).await;
    // Assert
    assert!(matches!(second, Err(StoreError::Conflict)), "{second:?}");
}

async fn deleting_a_token_says_whether_it_existed(store: &Arc<dyn Store>) {
    // Arrange
    let doomed = token("doomed", "sk-doomed");
    let kept = token("kept", "sk-kept");
    store.insert_token(&doomed).await.expect("insert");
    store.insert_token(&kept).await.expect("insert");
    // Act
    let first = store.delete_token(doomed.id).await.expect("delete");
    let second = store.delete_token(doomed.id).await.expect("delete again");
    // Assert
    assert!(first);
    assert!(!second);
    assert_eq!(load(store).await, vec![kept]);
}

async fn deleting_many_tokens_removes_exactly_those_named_and_counts_them(store: &Arc<dyn Store>) {
    // Arrange
    let (a, b, kept) = (token("a", "sk-a"), token("b", "sk-b"), token("kept", "sk-kept"));
    for record in [&a, &b, &kept] {
        store.insert_token(record).await.expect("insert");
    }
    let never_stored = token("ghost", "sk-ghost").id;
    // Act
    let deleted = store.delete_tokens(&[a.id, b.id, never_stored, a.id]).await.expect("delete many");
    let none = store.delete_tokens(&[]).await.expect("delete none");
    // Assert
    assert_eq!((deleted, none), (2, 0));
    assert_eq!(load(store).await, vec![kept]);
}

async fn token_flushes_add_requests_and_keep_the_latest_use(store: &Arc<dyn Store>) {
    // Arrange
    let used = TokenRecord { requests: 10, ..token("used", "sk-used") };
    let idle = token("idle", "sk-idle");
    store.insert_token(&used).await.expect("insert");
    store.insert_token(&idle).await.expect("insert");
    let gone = token("gone", "sk-gone").id;
    // Act
    let first = [
        TokenDelta { id: used.id, requests: 3, last_used: Some(T0 + 30) },
        TokenDelta { id: gone, requests: 1, last_used: Some(T0) },
        TokenDelta { id: used.id, requests: 1, last_used: Some(T0 + 10) },
    ];
    store.flush_tokens(&first).await.expect("first flush");
    store.flush_tokens(&[TokenDelta { id: used.id, requests: 2, last_used: None }]).await.expect("second flush");
    // Assert
    let loaded = load(store).await;
    assert_eq!(loaded[0], TokenRecord { requests: 16, last_used: Some(T0 + 30), ..used });
    assert_eq!(loaded[1], idle);
}

fn limited(name: &str, secret: &str) -> TokenRecord {
    TokenRecord {
        limits: Limits {
            rpm: Some(60),
            rpd: Some(1_000_000_000),
            tpd: Some(1_000_000_000_000),
            max_concurrent: Some(4),
        },
        models: Some(vec!["llama3.2:3b".into(), "openai/*".into(), HOSTILE[3].into(), HOSTILE[5].into()]),
        ..token(name, secret)
    }
}

async fn token_limits_and_models_load_back_exactly(store: &Arc<dyn Store>) {
    // Arrange
    let full = limited("full", "sk-full");
    let rpm_only = TokenRecord { limits: Limits { rpm: Some(1), ..Limits::default() }, ..token("rpm", "sk-rpm") };
    let no_models = TokenRecord { models: Some(Vec::new()), ..token("none", "sk-none") };
    // Act
    for record in [&full, &rpm_only, &no_models] {
        store.insert_token(record).await.expect("insert");
    }
    // Assert
    assert_eq!(load(store).await, vec![full, rpm_only, no_models]);
}

async fn updating_a_token_changes_its_settings_and_keeps_its_hash_and_counters(store: &Arc<dyn Store>) {
    // Arrange
    let stored = TokenRecord { requests: 7, last_used: Some(T0 + 5), ..limited("before", "sk-edit") };
    store.insert_token(&stored).await.expect("insert");
    store.flush_tokens(&[TokenDelta { id: stored.id, requests: 3, last_used: Some(T0 + 9) }]).await.expect("flush");
    let edited = TokenRecord {
        name: HOSTILE[2].into(),
        providers: Some(vec!["openrouter".into()]),
        expires_at: Some(T0 + 86_400_000),
        limits: Limits { rpd: Some(5), ..Limits::default() },
        models: None,
        hash: hash_secret("sk-must-not-be-written"),
        requests: 0,
        last_used: None,
        ..stored.clone()
    };
    // Act
    let updated = store.update_token(&edited).await.expect("update");
    // Assert
    assert!(updated);
    let loaded = load(store).await;
    assert_eq!(
        loaded,
        vec![TokenRecord { hash: stored.hash, requests: 10, last_used: Some(T0 + 9), ..edited.clone() }]
    );
    let cleared = TokenRecord { limits: Limits::default(), expires_at: None, providers: None, ..edited };
    assert!(store.update_token(&cleared).await.expect("update again"));
    assert_eq!(load(store).await[0].limits, Limits::default());
    assert_eq!((load(store).await[0].expires_at, load(store).await[0].providers.clone()), (None, None));
}

async fn updating_a_token_that_is_not_stored_says_so(store: &Arc<dyn Store>) {
    // Act
    let updated = store.update_token(&limited("ghost", "sk-ghost")).await.expect("update");
    // Assert
    assert!(!updated);
    assert!(load(store).await.is_empty());
}
