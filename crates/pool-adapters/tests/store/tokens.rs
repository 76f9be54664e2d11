//! Client tokens: insert, load, delete, conflicts and flushes.

use std::sync::Arc;

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
    token_flushes_add_requests_and_keep_the_latest_use,
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
