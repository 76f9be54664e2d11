//! The console sessions port, implemented once for both stores: the statements read the same on
//! SQLite and PostgreSQL.

use pool_core::ports::StoreError;
use pool_core::secret::parse_hash_hex;
use pool_core::session::SessionRecord;

use super::rows::Columns;

pub(crate) const INSERT: &str = "INSERT INTO console_sessions \
     (id, secret_hash, created_at, last_seen, user_agent, address) VALUES ($1, $2, $3, $4, $5, $6)";
pub(crate) const BY_HASH: &str = "SELECT id, secret_hash, created_at, last_seen, user_agent, address \
     FROM console_sessions WHERE secret_hash = $1";
pub(crate) const ALL: &str = "SELECT id, secret_hash, created_at, last_seen, user_agent, address \
     FROM console_sessions ORDER BY created_at DESC, id";
/// A use only moves `last_seen` forward (two gateways may record uses out of order).
pub(crate) const TOUCH: &str = "UPDATE console_sessions SET last_seen = $2 WHERE id = $1 AND last_seen < $2";
pub(crate) const EXISTS: &str = "SELECT COUNT(*) FROM console_sessions WHERE id = $1";
pub(crate) const DELETE: &str = "DELETE FROM console_sessions WHERE id = $1";
pub(crate) const PRUNE: &str = "DELETE FROM console_sessions WHERE last_seen < $1 OR created_at < $2";

pub(crate) fn record(row: &impl Columns) -> Result<SessionRecord, StoreError> {
    let hash = row.text("secret_hash")?;
    Ok(SessionRecord {
        id: row.text("id")?,
        hash: parse_hash_hex(&hash).ok_or_else(|| StoreError::Corrupt("a session hash is not 64 hex digits".into()))?,
        created_at: row.int("created_at")?,
        last_seen: row.int("last_seen")?,
        user_agent: row.opt_text("user_agent")?,
        address: row.opt_text("address")?,
    })
}

macro_rules! impl_session_store {
    ($store:ty) => {
        #[async_trait::async_trait]
        impl pool_core::ports::SessionStore for $store {
            async fn insert_session(&self, s: &pool_core::session::SessionRecord) -> Result<(), StoreError> {
                sqlx::query($crate::sql::sessions::INSERT)
                    .bind(&s.id)
                    .bind(pool_core::secret::hash_hex(&s.hash))
                    .bind(s.created_at)
                    .bind(s.last_seen)
                    .bind(s.user_agent.as_deref())
                    .bind(s.address.as_deref())
                    .execute(&self.pool)
                    .await
                    .map(drop)
                    .map_err(db_error)
            }

            async fn session_by_hash(
                &self,
                hash: &pool_core::secret::SecretHash,
            ) -> Result<Option<pool_core::session::SessionRecord>, StoreError> {
                let found = sqlx::query($crate::sql::sessions::BY_HASH)
                    .bind(pool_core::secret::hash_hex(hash))
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(db_error)?;
                found.as_ref().map($crate::sql::sessions::record).transpose()
            }

            async fn touch_session(&self, id: &str, last_seen: UnixMs) -> Result<bool, StoreError> {
                let done = sqlx::query($crate::sql::sessions::TOUCH).bind(id).bind(last_seen).execute(&self.pool).await;
                if done.map_err(db_error)?.rows_affected() > 0 {
                    return Ok(true);
                }
                let count: i64 = sqlx::query_scalar($crate::sql::sessions::EXISTS)
                    .bind(id)
                    .fetch_one(&self.pool)
                    .await
                    .map_err(db_error)?;
                Ok(count > 0)
            }

            async fn delete_session(&self, id: &str) -> Result<bool, StoreError> {
                let done = sqlx::query($crate::sql::sessions::DELETE).bind(id).execute(&self.pool).await;
                Ok(done.map_err(db_error)?.rows_affected() > 0)
            }

            async fn list_sessions(&self) -> Result<Vec<pool_core::session::SessionRecord>, StoreError> {
                let found = sqlx::query($crate::sql::sessions::ALL).fetch_all(&self.pool).await.map_err(db_error)?;
                found.iter().map($crate::sql::sessions::record).collect()
            }

            async fn prune_sessions(&self, seen_before: UnixMs, created_before: UnixMs) -> Result<u64, StoreError> {
                let done = sqlx::query($crate::sql::sessions::PRUNE)
                    .bind(seen_before)
                    .bind(created_before)
                    .execute(&self.pool)
                    .await;
                Ok(done.map_err(db_error)?.rows_affected())
            }
        }
    };
}

pub(crate) use impl_session_store;
