//! What only SQLite can show: files, reopening, the URL forms, and corrupt rows written behind
//! the store's back.

use pool_adapters::sql::{self, SqliteStore};
use pool_core::ports::{KeyStore, StoreError};
use sqlx::{Connection, SqliteConnection};

use crate::support::{SqliteDb, chain, key, keys};

#[tokio::test]
async fn data_survives_reopening_a_sqlite_file_in_new_directories() {
    // Arrange
    let dir = tempfile::tempdir().expect("a temporary directory");
    let url = format!("sqlite:{}/nested/deeper/pool.db", dir.path().display());
    let batch = keys("openai", 3);
    let store = sql::connect(&url).await.expect("opens, creating the directories");
    store.insert_keys(&batch).await.expect("insert");
    store.put_setting("admin_token_hash", "abc").await.expect("put");
    drop(store);
    // Act
    let reopened = sql::connect(&url).await.expect("reopens");
    // Assert
    assert_eq!(reopened.load_keys().await.expect("load").len(), 3);
    assert_eq!(reopened.setting("admin_token_hash").await.expect("read").as_deref(), Some("abc"));
}

#[tokio::test]
async fn an_in_memory_database_works_for_the_life_of_the_store() {
    // Arrange
    let store = SqliteStore::connect("sqlite::memory:").await.expect("opens");
    // Act
    store.insert_keys(&keys("openai", 2)).await.expect("insert");
    // Assert
    assert_eq!(store.load_keys().await.expect("load").len(), 2);
}

#[tokio::test]
async fn an_unknown_status_in_the_database_is_reported_as_corrupt() {
    // Arrange
    let db = SqliteDb::open().await;
    db.store.insert_keys(&[key("openai", "sk-x")]).await.expect("insert");
    let mut raw = SqliteConnection::connect(&db.url).await.expect("raw connection");
    sqlx::query("UPDATE upstream_keys SET status = 'resting'").execute(&mut raw).await.expect("update");
    // Act
    let loaded = db.store.load_keys().await;
    // Assert
    assert!(matches!(&loaded, Err(StoreError::Corrupt(why)) if why.contains("resting")), "{loaded:?}");
}

#[tokio::test]
async fn an_unknown_url_scheme_is_refused_with_the_accepted_ones_named() {
    // Act
    let refused = sql::connect("mysql://root@localhost/pool").await.err().expect("refused");
    // Assert
    let message = chain(&refused);
    assert!(message.contains("sqlite://") && message.contains("postgres://"), "{message}");
    assert!(!message.contains("root@localhost"), "the URL may hold a password: {message}");
}

#[test]
fn backend_names_follow_the_url_scheme() {
    assert_eq!(sql::backend_name("sqlite://data/pool.db"), "sqlite");
    assert_eq!(sql::backend_name("sqlite::memory:"), "sqlite");
    assert_eq!(sql::backend_name("postgres://u@h/db"), "postgres");
    assert_eq!(sql::backend_name("postgresql://u@h/db"), "postgres");
    assert_eq!(sql::backend_name("mysql://u@h/db"), "unknown");
    assert_eq!(sql::backend_name(""), "unknown");
}
