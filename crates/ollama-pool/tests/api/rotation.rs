//! Round-robin rotation over healthy keys.

use std::sync::Arc;

use crate::helpers::{chat, spawn_app};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_keys_share_1600_requests_within_five_percent() {
    // Arrange
    let app = Arc::new(spawn_app().await);
    for key in ["k1", "k2", "k3", "k4"] {
        app.add_key(key).await;
    }
    // Act: 1,600 requests, 16 at a time
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let app = Arc::clone(&app);
        tasks.push(tokio::spawn(async move {
            for _ in 0..100 {
                assert_eq!(app.post_chat(&chat("llama3.2:3b", false)).await.status(), 200);
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    // Assert
    for key in ["k1", "k2", "k3", "k4"] {
        let calls = app.upstream.calls(key);
        assert!((380..=420).contains(&calls), "{key} got {calls} of 1600");
    }
}

#[tokio::test]
async fn a_new_key_joins_the_rotation_without_a_restart() {
    // Arrange
    let app = spawn_app().await;
    app.add_key("k1").await;
    for _ in 0..4 {
        app.post_chat(&chat("m", false)).await;
    }
    // Act
    app.add_key("k2").await;
    for _ in 0..10 {
        app.post_chat(&chat("m", false)).await;
    }
    // Assert
    assert_eq!(app.upstream.calls("k2"), 5);
}

#[tokio::test]
async fn a_deleted_key_leaves_the_rotation_at_once() {
    // Arrange
    let app = spawn_app().await;
    let k1 = app.add_key("k1").await;
    app.add_key("k2").await;
    // Act
    assert_eq!(app.admin_delete(&format!("/admin/api-keys/{k1}"), None).await.status(), 200);
    for _ in 0..6 {
        assert_eq!(app.post_chat(&chat("m", false)).await.status(), 200);
    }
    // Assert
    assert_eq!(app.upstream.calls("k1"), 0);
    assert_eq!(app.upstream.calls("k2"), 6);
}
