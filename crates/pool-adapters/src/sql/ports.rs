//! The three store ports, implemented once for both stores.
//!
//! Statements that read the same on both backends run here; the bulk ones are delegated to each
//! store's own `insert_batch`, `delete_batch`, `flush_key_batch`, `flush_token_batch` and
//! `replace_secret_batch`, which receive merged, id-ordered rows. A macro rather than generic
//! code over `sqlx::Database`: the executor and codec bounds such code needs would outweigh the
//! few lines it saves.

use std::collections::HashSet;

use async_trait::async_trait;
use pool_core::ids::{KeyId, TokenId};
use pool_core::pool::{KeyDelta, KeyLimits};
use pool_core::ports::{KeyRecord, KeyStore, NewKey, SettingsStore, StoreError, TokenRecord, TokenStore};
use pool_core::secret::Secret;
use pool_core::token::TokenDelta;

use super::deltas::{merge_key_deltas, merge_token_deltas};
use super::{PgStore, SqliteStore, db_error, rows};

macro_rules! impl_store_ports {
    ($store:ty) => {
        #[async_trait]
        impl KeyStore for $store {
            async fn load_keys(&self) -> Result<Vec<KeyRecord>, StoreError> {
                let found = sqlx::query(rows::SELECT_KEYS).fetch_all(&self.pool).await.map_err(db_error)?;
                found.iter().map(rows::key_record).collect()
            }

            async fn insert_keys(&self, keys: &[NewKey]) -> Result<Vec<KeyId>, StoreError> {
                if keys.is_empty() {
                    return Ok(Vec::new());
                }
                let rows: Vec<rows::KeyRow<'_>> = keys.iter().map(rows::KeyRow::of).collect();
                let inserted = self.insert_batch(&rows).await?;
                Ok(in_input_order(keys, inserted))
            }

            async fn delete_keys(&self, ids: &[KeyId]) -> Result<u64, StoreError> {
                if ids.is_empty() {
                    return Ok(0);
                }
                let ids: Vec<String> = ids.iter().map(ToString::to_string).collect();
                self.delete_batch(&ids).await
            }

            async fn flush_keys(&self, deltas: &[KeyDelta]) -> Result<(), StoreError> {
                if deltas.is_empty() {
                    return Ok(());
                }
                self.flush_key_batch(&merge_key_deltas(deltas)).await
            }

            async fn replace_secrets(&self, secrets: &[(KeyId, Secret)]) -> Result<(), StoreError> {
                if secrets.is_empty() {
                    return Ok(());
                }
                self.replace_secret_batch(&rows::secret_rows(secrets)).await
            }

            async fn update_key(&self, id: KeyId, label: Option<&str>, limits: &KeyLimits) -> Result<bool, StoreError> {
                let done = sqlx::query(rows::UPDATE_KEY)
                    .bind(id.to_string())
                    .bind(label)
                    .bind(rows::limit_column(limits.rpm))
                    .bind(rows::limit_column(limits.max_concurrent))
                    .execute(&self.pool)
                    .await;
                Ok(done.map_err(db_error)?.rows_affected() > 0)
            }
        }

        #[async_trait]
        impl TokenStore for $store {
            async fn load_tokens(&self) -> Result<Vec<TokenRecord>, StoreError> {
                let found = sqlx::query(rows::SELECT_TOKENS).fetch_all(&self.pool).await.map_err(db_error)?;
                found.iter().map(rows::token_record).collect()
            }

            async fn insert_token(&self, token: &TokenRecord) -> Result<(), StoreError> {
                let row = rows::TokenRow::of(token)?;
                sqlx::query(rows::INSERT_TOKEN)
                    .bind(row.id)
                    .bind(&token.name)
                    .bind(&token.prefix)
                    .bind(row.hash)
                    .bind(row.providers)
                    .bind(token.created_at)
                    .bind(token.expires_at)
                    .bind(row.requests)
                    .bind(token.last_used)
                    .bind(row.rpm)
                    .bind(row.rpd)
                    .bind(row.tpd)
                    .bind(row.max_concurrent)
                    .bind(&row.models)
                    .execute(&self.pool)
                    .await
                    .map_err(db_error)?;
                Ok(())
            }

            async fn update_token(&self, token: &TokenRecord) -> Result<bool, StoreError> {
                let row = rows::TokenRow::of(token)?;
                let done = sqlx::query(rows::UPDATE_TOKEN)
                    .bind(row.id)
                    .bind(&token.name)
                    .bind(row.providers)
                    .bind(token.expires_at)
                    .bind(row.rpm)
                    .bind(row.rpd)
                    .bind(row.tpd)
                    .bind(row.max_concurrent)
                    .bind(row.models)
                    .execute(&self.pool)
                    .await;
                Ok(done.map_err(db_error)?.rows_affected() > 0)
            }

            async fn delete_token(&self, id: TokenId) -> Result<bool, StoreError> {
                let done = sqlx::query(rows::DELETE_TOKEN).bind(id.to_string()).execute(&self.pool).await;
                Ok(done.map_err(db_error)?.rows_affected() > 0)
            }

            async fn delete_tokens(&self, ids: &[TokenId]) -> Result<u64, StoreError> {
                if ids.is_empty() {
                    return Ok(0);
                }
                let ids: Vec<String> = ids.iter().map(ToString::to_string).collect();
                self.delete_token_batch(&ids).await
            }

            async fn flush_tokens(&self, deltas: &[TokenDelta]) -> Result<(), StoreError> {
                if deltas.is_empty() {
                    return Ok(());
                }
                self.flush_token_batch(&merge_token_deltas(deltas)).await
            }
        }

        #[async_trait]
        impl SettingsStore for $store {
            async fn setting(&self, name: &str) -> Result<Option<String>, StoreError> {
                let value = sqlx::query_scalar(rows::SELECT_SETTING).bind(name).fetch_optional(&self.pool).await;
                value.map_err(db_error)
            }

            async fn put_setting(&self, name: &str, value: &str) -> Result<(), StoreError> {
                let done = sqlx::query(rows::UPSERT_SETTING).bind(name).bind(value).execute(&self.pool).await;
                done.map(drop).map_err(db_error)
            }
        }
    };
}

impl_store_ports!(SqliteStore);
impl_store_ports!(PgStore);

use pool_core::UnixMs;
super::stats::impl_stats_store!(SqliteStore, sqlx::Sqlite);
super::stats::impl_stats_store!(PgStore, sqlx::Postgres);
super::sessions::impl_session_store!(SqliteStore);
super::sessions::impl_session_store!(PgStore);
super::requests::impl_request_log_store!(SqliteStore);
super::requests::impl_request_log_store!(PgStore);
super::accounts::impl_account_store!(SqliteStore);
super::accounts::impl_account_store!(PgStore);

/// The ids a batch insert returned, in the order the caller gave the keys (a database may
/// return them in any order), each once.
fn in_input_order(keys: &[NewKey], inserted: Vec<String>) -> Vec<KeyId> {
    let mut inserted: HashSet<String> = inserted.into_iter().collect();
    keys.iter().filter(|key| inserted.remove(&key.id.to_string())).map(|key| key.id).collect()
}
