//! Console sessions: stored by the hash of their secret, touched on use, listed newest first,
//! revoked, and pruned by idleness and by age.

use std::sync::Arc;

use pool_core::ports::Store;
use pool_core::secret::hash_secret;
use pool_core::session::SessionRecord;
use uuid::Uuid;

use crate::keys::HOSTILE;
use crate::support::{T0, contract};

contract!(
    a_session_is_found_by_its_secrets_hash_only,
    a_touch_moves_last_seen_and_says_whether_the_session_exists,
    sessions_are_listed_newest_first_and_a_revoked_one_is_gone,
    pruning_ends_idle_and_old_sessions_and_keeps_the_rest,
    hostile_user_agents_and_addresses_round_trip_unchanged,
);

fn session(secret: &str, created_at: i64) -> SessionRecord {
    SessionRecord {
        id: Uuid::now_v7().to_string(),
        hash: hash_secret(secret),
        created_at,
        last_seen: created_at,
        user_agent: Some("Mozilla/5.0".to_owned()),
        address: Some("192.0.2.7".to_owned()),
    }
}

async fn a_session_is_found_by_its_secrets_hash_only(store: &Arc<dyn Store>) {
    // Arrange
    let stored = session("s3cret-one", T0);
    store.insert_session(&stored).await.expect("insert");
    // Act
    let found = store.session_by_hash(&hash_secret("s3cret-one")).await.expect("read");
    let other = store.session_by_hash(&hash_secret("s3cret-on")).await.expect("read");
    // Assert
    assert_eq!(found, Some(stored));
    assert_eq!(other, None, "a different secret finds nothing");
}

async fn a_touch_moves_last_seen_and_says_whether_the_session_exists(store: &Arc<dyn Store>) {
    // Arrange
    let stored = session("touched", T0);
    store.insert_session(&stored).await.expect("insert");
    // Act
    let touched = store.touch_session(&stored.id, T0 + 60_000).await.expect("touch");
    let missing = store.touch_session(&Uuid::now_v7().to_string(), T0 + 60_000).await.expect("touch");
    // Assert
    assert!(touched);
    assert!(!missing, "an unknown session is not created by a touch");
    let read = store.session_by_hash(&stored.hash).await.expect("read").expect("still there");
    assert_eq!((read.created_at, read.last_seen), (T0, T0 + 60_000));
    assert_eq!(store.list_sessions().await.expect("list").len(), 1);
}

async fn sessions_are_listed_newest_first_and_a_revoked_one_is_gone(store: &Arc<dyn Store>) {
    // Arrange
    let (older, newer) = (session("older", T0), session("newer", T0 + 1_000));
    store.insert_session(&older).await.expect("insert");
    store.insert_session(&newer).await.expect("insert");
    // Act
    let listed: Vec<String> = store.list_sessions().await.expect("list").into_iter().map(|s| s.id).collect();
    let deleted = store.delete_session(&newer.id).await.expect("delete");
    let again = store.delete_session(&newer.id).await.expect("delete again");
    // Assert
    assert_eq!(listed, [newer.id.clone(), older.id.clone()]);
    assert!(deleted);
    assert!(!again, "a second revoke finds nothing");
    assert_eq!(store.session_by_hash(&newer.hash).await.expect("read"), None);
    assert_eq!(store.list_sessions().await.expect("list"), [older]);
}

async fn pruning_ends_idle_and_old_sessions_and_keeps_the_rest(store: &Arc<dyn Store>) {
    // Arrange: one idle, one too old though busy, one fine
    let idle = session("idle", T0);
    let mut old = session("old", T0 - 10_000);
    old.last_seen = T0 + 5_000;
    let fresh = session("fresh", T0 + 1_000);
    for s in [&idle, &old, &fresh] {
        store.insert_session(s).await.expect("insert");
    }
    // Act: seen before T0 + 500 is idle; signed in before T0 - 5_000 is too old
    let pruned = store.prune_sessions(T0 + 500, T0 - 5_000).await.expect("prune");
    // Assert
    assert_eq!(pruned, 2);
    assert_eq!(store.list_sessions().await.expect("list"), [fresh]);
    assert_eq!(store.prune_sessions(T0 + 500, T0 - 5_000).await.expect("prune again"), 0);
}

async fn hostile_user_agents_and_addresses_round_trip_unchanged(store: &Arc<dyn Store>) {
    for (i, value) in HOSTILE.iter().enumerate() {
        // Arrange
        let stored = SessionRecord {
            user_agent: Some((*value).to_owned()),
            address: Some((*value).to_owned()),
            ..session(&format!("hostile-{i}"), T0 + i64::try_from(i).expect("small"))
        };
        // Act
        store.insert_session(&stored).await.expect("insert");
        // Assert
        assert_eq!(store.session_by_hash(&stored.hash).await.expect("read"), Some(stored), "value {i}");
    }
}
