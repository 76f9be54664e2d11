//! Named settings.

use std::sync::Arc;

use pool_core::ports::Store;

use crate::keys::HOSTILE;
use crate::support::contract;

contract!(a_setting_is_absent_then_stored_then_replaced, hostile_setting_values_round_trip_unchanged);

async fn a_setting_is_absent_then_stored_then_replaced(store: &Arc<dyn Store>) {
    // Arrange
    let before = store.setting("admin_token_hash").await.expect("read");
    // Act
    store.put_setting("admin_token_hash", "first").await.expect("put");
    let stored = store.setting("admin_token_hash").await.expect("read");
    store.put_setting("admin_token_hash", "second").await.expect("put again");
    let replaced = store.setting("admin_token_hash").await.expect("read");
    // Assert
    assert_eq!(before, None);
    assert_eq!(stored.as_deref(), Some("first"));
    assert_eq!(replaced.as_deref(), Some("second"));
    assert_eq!(store.setting("other").await.expect("read"), None);
}

async fn hostile_setting_values_round_trip_unchanged(store: &Arc<dyn Store>) {
    for (i, value) in HOSTILE.iter().enumerate() {
        // Act
        store.put_setting(value, value).await.expect("put");
        // Assert
        assert_eq!(store.setting(value).await.expect("read").as_deref(), Some(*value), "value {i}");
    }
}
