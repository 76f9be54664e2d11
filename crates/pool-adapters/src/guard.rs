//! [`GuardedStore`]: a decorator around the store of record that bounds every call in time and
//! reports how calls end to the domain's [`StoreHealth`].
//!
//! A store call that hangs (a stalled TCP path to PostgreSQL, a lock held by another process)
//! fails after `database.statement_timeout_secs` instead of holding a handler or the flush loop
//! for ever; the rows of a flush cut short this way go back to the backlog. PostgreSQL also gets
//! its own `statement_timeout` (see [`crate::sql::Tuning`]), so the server stops working on it
//! too.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use pool_core::UnixMs;
use pool_core::account::{
    CodePurpose, CodeRecord, Email, InviteRecord, LocalDay, PasswordHash, SendTallies, SignInPage, SignInRecord,
    UserPage, UserQuery, UserRecord, UserStatus,
};
use pool_core::ids::{KeyId, TokenId, UserId};
use pool_core::pool::{KeyDelta, KeyLimits};
use pool_core::ports::{
    AccountStore, KeyRecord, KeyStore, NewKey, RequestLogStore, SessionStore, SettingsStore, StatsStore, Store,
    StoreError, TokenRecord, TokenStore, TokenUsage, UsageQuery,
};
use pool_core::reqlog::{RequestLogEntry, RequestPage, RequestQuery, RequestRecord};
use pool_core::secret::{Secret, SecretHash};
use pool_core::session::SessionRecord;
use pool_core::stats::{Rollups, SummaryRow, UsagePoint};
use pool_core::store_health::StoreHealth;
use pool_core::token::TokenDelta;

use crate::clock::now_ms;

pub struct GuardedStore {
    inner: Arc<dyn Store>,
    deadline: Duration,
    health: Arc<StoreHealth>,
}

/// A store call that did not finish within the deadline.
#[derive(Debug, thiserror::Error)]
#[error("the store did not answer within {0:?} (database.statement_timeout_secs)")]
pub struct DeadlineExceeded(Duration);

impl GuardedStore {
    pub fn new(inner: Arc<dyn Store>, deadline: Duration, health: Arc<StoreHealth>) -> Self {
        Self { inner, deadline, health }
    }

    async fn call<T>(&self, write: bool, call: impl Future<Output = Result<T, StoreError>>) -> Result<T, StoreError> {
        let result = self.aside(call).await;
        match &result {
            Ok(_) if write => self.health.write_succeeded(),
            Err(e @ StoreError::Backend(_)) => self.health.failed(now_ms(), fault_reason(e)),
            _ => {}
        }
        result
    }

    async fn read<T>(&self, call: impl Future<Output = Result<T, StoreError>>) -> Result<T, StoreError> {
        self.call(false, call).await
    }

    async fn write<T>(&self, call: impl Future<Output = Result<T, StoreError>>) -> Result<T, StoreError> {
        self.call(true, call).await
    }

    /// A write under the deadline that says nothing of the store's health either way: the
    /// request log's. Its writes are large where the counters' are small (so on a nearly full
    /// disk one may fail while the other gets through), and they run on a loop of their own;
    /// the counters' writes alone decide whether the store is degraded.
    async fn aside<T>(&self, call: impl Future<Output = Result<T, StoreError>>) -> Result<T, StoreError> {
        tokio::time::timeout(self.deadline, call)
            .await
            .unwrap_or_else(|_| Err(StoreError::Backend(Box::new(DeadlineExceeded(self.deadline)))))
    }
}

/// Why a store call failed, in a few fixed words that are safe to show: never the driver's
/// message, which may name a host, a user or a path.
pub fn fault_reason(error: &StoreError) -> &'static str {
    let StoreError::Backend(source) = error else { return "the store refused the data" };
    if source.downcast_ref::<DeadlineExceeded>().is_some() {
        return "the store did not answer in time";
    }
    source.downcast_ref::<sqlx::Error>().map_or("the store failed", crate::sql::fault_reason)
}

#[async_trait]
impl KeyStore for GuardedStore {
    async fn load_keys(&self) -> Result<Vec<KeyRecord>, StoreError> {
        self.read(self.inner.load_keys()).await
    }

    async fn insert_keys(&self, keys: &[NewKey]) -> Result<Vec<KeyId>, StoreError> {
        self.write(self.inner.insert_keys(keys)).await
    }

    async fn delete_keys(&self, ids: &[KeyId]) -> Result<u64, StoreError> {
        self.write(self.inner.delete_keys(ids)).await
    }

    async fn flush_keys(&self, deltas: &[KeyDelta]) -> Result<(), StoreError> {
        self.write(self.inner.flush_keys(deltas)).await
    }

    async fn replace_secrets(&self, secrets: &[(KeyId, Secret)]) -> Result<(), StoreError> {
        self.write(self.inner.replace_secrets(secrets)).await
    }

    async fn update_key(&self, id: KeyId, label: Option<&str>, limits: &KeyLimits) -> Result<bool, StoreError> {
        self.write(self.inner.update_key(id, label, limits)).await
    }
}

#[async_trait]
impl TokenStore for GuardedStore {
    async fn load_tokens(&self) -> Result<Vec<TokenRecord>, StoreError> {
        self.read(self.inner.load_tokens()).await
    }

    async fn insert_token(&self, token: &TokenRecord) -> Result<(), StoreError> {
        self.write(self.inner.insert_token(token)).await
    }

    async fn delete_token(&self, id: TokenId) -> Result<bool, StoreError> {
        self.write(self.inner.delete_token(id)).await
    }

    async fn delete_tokens(&self, ids: &[TokenId]) -> Result<u64, StoreError> {
        self.write(self.inner.delete_tokens(ids)).await
    }

    async fn update_token(&self, token: &TokenRecord) -> Result<bool, StoreError> {
        self.write(self.inner.update_token(token)).await
    }

    async fn flush_tokens(&self, deltas: &[TokenDelta]) -> Result<(), StoreError> {
        self.write(self.inner.flush_tokens(deltas)).await
    }
}

#[async_trait]
impl StatsStore for GuardedStore {
    async fn add_stats(&self, rollups: &Rollups) -> Result<(), StoreError> {
        self.write(self.inner.add_stats(rollups)).await
    }

    async fn prune_stats(&self, minutes_before: UnixMs, hours_before: UnixMs) -> Result<u64, StoreError> {
        self.write(self.inner.prune_stats(minutes_before, hours_before)).await
    }

    async fn stats_totals(&self, provider: Option<&str>) -> Result<Vec<SummaryRow>, StoreError> {
        self.read(self.inner.stats_totals(provider)).await
    }

    async fn stats_hours(&self, provider: Option<&str>, since: UnixMs) -> Result<Vec<SummaryRow>, StoreError> {
        self.read(self.inner.stats_hours(provider, since)).await
    }

    async fn usage_series(&self, query: &UsageQuery) -> Result<Vec<UsagePoint>, StoreError> {
        self.read(self.inner.usage_series(query)).await
    }

    async fn stats_minutes(&self, provider: Option<&str>, since: UnixMs) -> Result<Vec<SummaryRow>, StoreError> {
        self.read(self.inner.stats_minutes(provider, since)).await
    }

    async fn token_usage_since(&self, since: UnixMs) -> Result<Vec<TokenUsage>, StoreError> {
        self.read(self.inner.token_usage_since(since)).await
    }
}

#[async_trait]
impl SessionStore for GuardedStore {
    async fn insert_session(&self, session: &SessionRecord) -> Result<(), StoreError> {
        self.write(self.inner.insert_session(session)).await
    }

    async fn session_by_hash(&self, hash: &SecretHash) -> Result<Option<SessionRecord>, StoreError> {
        self.read(self.inner.session_by_hash(hash)).await
    }

    async fn touch_session(&self, id: &str, last_seen: UnixMs) -> Result<bool, StoreError> {
        self.write(self.inner.touch_session(id, last_seen)).await
    }

    async fn delete_session(&self, id: &str) -> Result<bool, StoreError> {
        self.write(self.inner.delete_session(id)).await
    }

    async fn list_sessions(&self) -> Result<Vec<SessionRecord>, StoreError> {
        self.read(self.inner.list_sessions()).await
    }

    async fn prune_sessions(&self, seen_before: UnixMs, created_before: UnixMs) -> Result<u64, StoreError> {
        self.write(self.inner.prune_sessions(seen_before, created_before)).await
    }
}

#[async_trait]
impl RequestLogStore for GuardedStore {
    async fn append_requests(&self, entries: &[RequestLogEntry]) -> Result<(), StoreError> {
        self.aside(self.inner.append_requests(entries)).await
    }

    async fn query_requests(&self, query: &RequestQuery) -> Result<RequestPage, StoreError> {
        self.read(self.inner.query_requests(query)).await
    }

    async fn request_by_id(&self, request_id: &str) -> Result<Option<RequestRecord>, StoreError> {
        self.read(self.inner.request_by_id(request_id)).await
    }

    async fn prune_requests(&self, before: UnixMs, max_rows: u32) -> Result<u64, StoreError> {
        self.aside(self.inner.prune_requests(before, max_rows)).await
    }
}

#[async_trait]
impl SettingsStore for GuardedStore {
    async fn setting(&self, name: &str) -> Result<Option<String>, StoreError> {
        self.read(self.inner.setting(name)).await
    }

    async fn put_setting(&self, name: &str, value: &str) -> Result<(), StoreError> {
        self.write(self.inner.put_setting(name, value)).await
    }
}

#[async_trait]
impl AccountStore for GuardedStore {
    async fn insert_user(&self, user: &UserRecord) -> Result<(), StoreError> {
        self.write(self.inner.insert_user(user)).await
    }

    async fn user_by_id(&self, id: UserId) -> Result<Option<UserRecord>, StoreError> {
        self.read(self.inner.user_by_id(id)).await
    }

    async fn user_by_email(&self, email: &Email) -> Result<Option<UserRecord>, StoreError> {
        self.read(self.inner.user_by_email(email)).await
    }

    async fn user_page(&self, query: &UserQuery) -> Result<UserPage, StoreError> {
        self.read(self.inner.user_page(query)).await
    }

    async fn set_user_status(&self, id: UserId, status: UserStatus) -> Result<bool, StoreError> {
        self.write(self.inner.set_user_status(id, status)).await
    }

    async fn set_user_password(&self, id: UserId, hash: Option<&PasswordHash>) -> Result<bool, StoreError> {
        self.write(self.inner.set_user_password(id, hash)).await
    }

    async fn set_user_name(&self, id: UserId, name: Option<&str>) -> Result<bool, StoreError> {
        self.write(self.inner.set_user_name(id, name)).await
    }

    async fn set_last_login(&self, id: UserId, at: UnixMs) -> Result<bool, StoreError> {
        self.write(self.inner.set_last_login(id, at)).await
    }

    async fn delete_user(&self, id: UserId) -> Result<bool, StoreError> {
        self.write(self.inner.delete_user(id)).await
    }

    async fn put_code(&self, code: &CodeRecord) -> Result<(), StoreError> {
        self.write(self.inner.put_code(code)).await
    }

    async fn take_code_try(&self, email: &Email, purpose: CodePurpose) -> Result<Option<CodeRecord>, StoreError> {
        self.write(self.inner.take_code_try(email, purpose)).await
    }

    async fn consume_code(&self, email: &Email, purpose: CodePurpose, hash: &SecretHash) -> Result<bool, StoreError> {
        self.write(self.inner.consume_code(email, purpose, hash)).await
    }

    async fn code_sends(&self, email: &Email, address: &str, day: LocalDay) -> Result<SendTallies, StoreError> {
        self.read(self.inner.code_sends(email, address, day)).await
    }

    async fn count_code_send(
        &self,
        email: &Email,
        address: &str,
        day: LocalDay,
        at: UnixMs,
    ) -> Result<SendTallies, StoreError> {
        self.write(self.inner.count_code_send(email, address, day, at)).await
    }

    async fn sign_in(
        &self,
        user: UserId,
        day: LocalDay,
        at: UnixMs,
        new_expiry: UnixMs,
    ) -> Result<Option<SignInRecord>, StoreError> {
        self.write(self.inner.sign_in(user, day, at, new_expiry)).await
    }

    async fn sign_in_page(&self, user: UserId, offset: u64, limit: u32) -> Result<SignInPage, StoreError> {
        self.read(self.inner.sign_in_page(user, offset, limit)).await
    }

    async fn insert_invite(&self, invite: &InviteRecord) -> Result<(), StoreError> {
        self.write(self.inner.insert_invite(invite)).await
    }

    async fn use_invite(&self, hash: &SecretHash, user: UserId, at: UnixMs) -> Result<bool, StoreError> {
        self.write(self.inner.use_invite(hash, user, at)).await
    }

    async fn list_invites(&self) -> Result<Vec<InviteRecord>, StoreError> {
        self.read(self.inner.list_invites()).await
    }
}
