//! The ports: what the domain needs from the outside world, as small traits.
//!
//! Adapters implement them, one module per technology (`pool-adapters`). The records here are
//! plain data in the store's terms; turning them into running [`crate::pool::PoolKey`]s and
//! [`crate::token::ClientToken`]s is the domain's job.

use std::pin::Pin;

use async_trait::async_trait;
use bytes::Bytes;
use futures_core::Stream;

use crate::UnixMs;
use crate::account::{
    CodePurpose, CodeRecord, Email, InviteRecord, LocalDay, PasswordHash, SendTallies, SignInPage, SignInRecord,
    UserPage, UserQuery, UserRecord, UserStatus,
};
use crate::ids::{KeyId, TokenId, UserId};
use crate::key::Health;
use crate::limit::Limits;
use crate::pool::{CounterValues, KeyDelta, KeyLimits, ModelSet};
use crate::reqlog::{RequestLogEntry, RequestPage, RequestQuery, RequestRecord};
use crate::secret::{Secret, SecretHash};
use crate::session::SessionRecord;
use crate::stats::{Rollups, SummaryRow, UsagePoint};
use crate::token::TokenDelta;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("record already exists")]
    Conflict,
    #[error("stored data is invalid: {0}")]
    Corrupt(String),
    #[error("storage backend failed")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// An upstream key to insert.
#[derive(Clone, Debug)]
pub struct NewKey {
    pub id: KeyId,
    pub provider: String,
    pub secret: Secret,
    /// SHA-256 of the plaintext secret, computed by the caller; the store never hashes. Duplicates
    /// are found by `(provider, secret_hash)`, which still works when the store only ever sees
    /// the secret encrypted.
    pub secret_hash: SecretHash,
    pub label: Option<String>,
    pub created_at: UnixMs,
    pub expires_at: Option<UnixMs>,
    pub limits: KeyLimits,
}

impl NewKey {
    /// A key given in plaintext: its `secret_hash` is always the hash of that plaintext, the
    /// invariant duplicate detection rests on. (Only a store reading rows back builds the
    /// struct field by field.)
    pub fn new(
        id: KeyId,
        provider: impl Into<String>,
        secret: &str,
        label: Option<String>,
        created_at: UnixMs,
        expires_at: Option<UnixMs>,
    ) -> Self {
        let secret_hash = crate::secret::hash_secret(secret);
        let (provider, secret) = (provider.into(), Secret::new(secret));
        Self { id, provider, secret, secret_hash, label, created_at, expires_at, limits: KeyLimits::default() }
    }
}

/// An upstream key as stored, with its health and counters.
#[derive(Clone, Debug)]
pub struct KeyRecord {
    pub key: NewKey,
    pub health: Health,
    pub counters: CounterValues,
    /// The models discovered for this key, if any were.
    pub models: Option<ModelSet>,
}

/// A client token as stored: never the token itself, only its hash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenRecord {
    pub id: TokenId,
    pub name: String,
    pub prefix: String,
    pub hash: SecretHash,
    pub providers: Option<Vec<String>>,
    pub created_at: UnixMs,
    pub expires_at: Option<UnixMs>,
    pub requests: u64,
    pub last_used: Option<UnixMs>,
    pub limits: Limits,
    /// The models the token may use; `None`: every model.
    pub models: Option<Vec<String>>,
}

#[async_trait]
pub trait KeyStore: Send + Sync {
    async fn load_keys(&self) -> Result<Vec<KeyRecord>, StoreError>;
    /// Inserts keys in one transaction, skipping any whose (provider, secret) is already stored.
    /// Returns the ids actually inserted.
    async fn insert_keys(&self, keys: &[NewKey]) -> Result<Vec<KeyId>, StoreError>;
    async fn delete_keys(&self, ids: &[KeyId]) -> Result<u64, StoreError>;
    /// Adds counter deltas and stores changed health, all in one transaction.
    async fn flush_keys(&self, deltas: &[KeyDelta]) -> Result<(), StoreError>;
    /// Replaces the stored form of some keys' secrets, all in one transaction; unknown ids are
    /// skipped. The plaintext of each secret must not change (its `secret_hash` is kept): this is
    /// for sealing a secret differently, as when encryption is turned on or its key rotated.
    async fn replace_secrets(&self, secrets: &[(KeyId, Secret)]) -> Result<(), StoreError>;
    /// Stores what an operator may edit about a key: its label and limits. Returns whether the
    /// key exists.
    async fn update_key(&self, id: KeyId, label: Option<&str>, limits: &KeyLimits) -> Result<bool, StoreError>;
}

#[async_trait]
pub trait TokenStore: Send + Sync {
    async fn load_tokens(&self) -> Result<Vec<TokenRecord>, StoreError>;
    async fn insert_token(&self, token: &TokenRecord) -> Result<(), StoreError>;
    /// Returns whether a token was deleted.
    async fn delete_token(&self, id: TokenId) -> Result<bool, StoreError>;
    /// Deletes many tokens in one statement. Returns how many were deleted.
    async fn delete_tokens(&self, ids: &[TokenId]) -> Result<u64, StoreError>;
    /// Stores what an operator may edit about the token with `token.id`: name, providers,
    /// expiry, limits and models (never its hash or counters). Returns whether it exists.
    async fn update_token(&self, token: &TokenRecord) -> Result<bool, StoreError>;
    async fn flush_tokens(&self, deltas: &[TokenDelta]) -> Result<(), StoreError>;
}

/// Small named values the gateway keeps (the admin token's hash).
#[async_trait]
pub trait SettingsStore: Send + Sync {
    async fn setting(&self, name: &str) -> Result<Option<String>, StoreError>;
    async fn put_setting(&self, name: &str, value: &str) -> Result<(), StoreError>;
}

/// Whose usage a series sums.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UsageSubject {
    /// The requests of a client token.
    Token(TokenId),
    /// The attempts made with an upstream key.
    Key(KeyId),
    /// The requests for a model.
    Model(String),
}

/// A usage series to read: one subject, optionally one provider, `since..until` (bucket starts).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UsageQuery {
    pub subject: UsageSubject,
    pub provider: Option<String>,
    /// Minute reads the per-minute rollup; hour (and day, summed by the caller) the hourly one.
    pub per_minute: bool,
    pub since: UnixMs,
    pub until: UnixMs,
}

/// The statistics rollups (see [`crate::stats`]). Every write is an atomic increment, so several
/// gateways can flush into one database.
#[async_trait]
pub trait StatsStore: Send + Sync {
    /// Adds one flush's rows to every rollup, in one transaction.
    async fn add_stats(&self, rollups: &Rollups) -> Result<(), StoreError>;
    /// Deletes per-minute rows older than `minutes_before` and hourly rows older than
    /// `hours_before`; returns the rows deleted.
    async fn prune_stats(&self, minutes_before: UnixMs, hours_before: UnixMs) -> Result<u64, StoreError>;
    /// The all-time totals (`bucket` 0), of one provider or all.
    async fn stats_totals(&self, provider: Option<&str>) -> Result<Vec<SummaryRow>, StoreError>;
    /// The client requests of the hourly summary from `since` on, of one provider or all, summed
    /// per (hour, model, outcome): `provider` is empty and `status` 0 in the rows returned.
    async fn stats_hours(&self, provider: Option<&str>, since: UnixMs) -> Result<Vec<SummaryRow>, StoreError>;
    /// One subject's series, one point per non-empty bucket, oldest first.
    async fn usage_series(&self, query: &UsageQuery) -> Result<Vec<UsagePoint>, StoreError>;
    /// The client requests of the per-minute rollup from `since` on, of one provider or all,
    /// summed per (minute, outcome): `provider` and `model` are empty and `status` 0.
    async fn stats_minutes(&self, provider: Option<&str>, since: UnixMs) -> Result<Vec<SummaryRow>, StoreError>;
    /// Per client token, the requests it was admitted for (everything but `rejected`) and the
    /// tokens they used, from the hour `since` on.
    async fn token_usage_since(&self, since: UnixMs) -> Result<Vec<TokenUsage>, StoreError>;
}

/// What one client token used over a period.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TokenUsage {
    pub token: TokenId,
    pub requests: u64,
    pub tokens: u64,
}

/// Console sessions (see [`crate::session`]): only the hash of a session's secret is stored.
#[async_trait]
pub trait SessionStore: Send + Sync {
    async fn insert_session(&self, session: &SessionRecord) -> Result<(), StoreError>;
    async fn session_by_hash(&self, hash: &SecretHash) -> Result<Option<SessionRecord>, StoreError>;
    /// Records a use; returns whether the session exists.
    async fn touch_session(&self, id: &str, last_seen: UnixMs) -> Result<bool, StoreError>;
    /// Returns whether a session was deleted.
    async fn delete_session(&self, id: &str) -> Result<bool, StoreError>;
    /// Every stored session, newest first.
    async fn list_sessions(&self) -> Result<Vec<SessionRecord>, StoreError>;
    /// Deletes sessions last seen before `seen_before` or signed in before `created_before`.
    async fn prune_sessions(&self, seen_before: UnixMs, created_before: UnixMs) -> Result<u64, StoreError>;
}

/// The request log (see [`crate::reqlog`]): appended in batches, read a page at a time newest
/// first, pruned in bounded passes.
#[async_trait]
pub trait RequestLogStore: Send + Sync {
    /// Writes a batch of entries (their token names filled in), in one transaction, in order.
    async fn append_requests(&self, entries: &[RequestLogEntry]) -> Result<(), StoreError>;
    /// One page, newest first, without counting what does not fit.
    async fn query_requests(&self, query: &RequestQuery) -> Result<RequestPage, StoreError>;
    /// The newest entry with this request id.
    async fn request_by_id(&self, request_id: &str) -> Result<Option<RequestRecord>, StoreError>;
    /// Deletes at most `max_rows` of the oldest entries from before `before`; returns how many
    /// went (fewer than `max_rows`: none older is left).
    async fn prune_requests(&self, before: UnixMs, max_rows: u32) -> Result<u64, StoreError>;
}

/// Community accounts (see [`crate::account`]): users, verification codes and their send
/// tallies, daily sign-ins and invite codes. Every count a limit rests on is changed here
/// atomically, so the limits hold across restarts and between gateways sharing a database.
#[async_trait]
pub trait AccountStore: Send + Sync {
    /// Inserts a user; [`StoreError::Conflict`] when the email (or id) is taken.
    async fn insert_user(&self, user: &UserRecord) -> Result<(), StoreError>;
    async fn user_by_id(&self, id: UserId) -> Result<Option<UserRecord>, StoreError>;
    async fn user_by_email(&self, email: &Email) -> Result<Option<UserRecord>, StoreError>;
    /// One page of users, newest first, and how many match the filter in all.
    async fn user_page(&self, query: &UserQuery) -> Result<UserPage, StoreError>;
    /// Each setter returns whether the user exists.
    async fn set_user_status(&self, id: UserId, status: UserStatus) -> Result<bool, StoreError>;
    async fn set_user_password(&self, id: UserId, hash: Option<&PasswordHash>) -> Result<bool, StoreError>;
    async fn set_user_name(&self, id: UserId, name: Option<&str>) -> Result<bool, StoreError>;
    async fn set_last_login(&self, id: UserId, at: UnixMs) -> Result<bool, StoreError>;
    /// Deletes a user, their sign-ins and their client token, in one transaction. Returns
    /// whether the user existed. (The running token index is the caller's to update.)
    async fn delete_user(&self, id: UserId) -> Result<bool, StoreError>;

    /// Stores a new code for its (email, purpose), replacing the live one and its tries.
    async fn put_code(&self, code: &CodeRecord) -> Result<(), StoreError>;
    /// Counts one try of the live code of (email, purpose), atomically, and returns the record
    /// with the try counted (`tries` is this try's number), or `None` when there is no code.
    async fn take_code_try(&self, email: &Email, purpose: CodePurpose) -> Result<Option<CodeRecord>, StoreError>;
    /// Deletes the code of (email, purpose) if it is still the one whose hash is `hash`.
    /// Returns whether it did: of two callers accepting the same code, only the one that
    /// deleted it may act on it.
    async fn consume_code(&self, email: &Email, purpose: CodePurpose, hash: &SecretHash) -> Result<bool, StoreError>;
    /// The send tallies of an email and a client address on `day` (sends that day, last send).
    /// `address` is the client's address as [`crate::limit::Subject::client`] folds it (an IPv6
    /// address as its /64), so one subscriber cannot rotate through addresses.
    async fn code_sends(&self, email: &Email, address: &str, day: LocalDay) -> Result<SendTallies, StoreError>;
    /// Counts a send at `at` on `day` for the email and the address, atomically, and returns
    /// the new tallies: `sends` with this send counted, `last_sent` the send before it.
    async fn count_code_send(
        &self,
        email: &Email,
        address: &str,
        day: LocalDay,
        at: UnixMs,
    ) -> Result<SendTallies, StoreError>;

    /// Records the user's sign-in for `day` and sets their client token's expiry to
    /// `new_expiry`, in one transaction, exactly once per (user, day): a second call for the
    /// same day, concurrent or not, changes nothing and returns `None` (as does a call for a
    /// user that does not exist). The running token index is the caller's to update.
    async fn sign_in(
        &self,
        user: UserId,
        day: LocalDay,
        at: UnixMs,
        new_expiry: UnixMs,
    ) -> Result<Option<SignInRecord>, StoreError>;
    /// A page of the user's sign-ins, newest first, with the total.
    async fn sign_in_page(&self, user: UserId, offset: u64, limit: u32) -> Result<SignInPage, StoreError>;

    /// Stores an invite; [`StoreError::Conflict`] when its code (or id) is already stored.
    async fn insert_invite(&self, invite: &InviteRecord) -> Result<(), StoreError>;
    /// Marks the unused, unexpired invite with `hash` as used by `user` at `at`, atomically:
    /// returns whether this call used it (of two racing registrations, one wins).
    async fn use_invite(&self, hash: &SecretHash, user: UserId, at: UnixMs) -> Result<bool, StoreError>;
    /// Every invite, newest first.
    async fn list_invites(&self) -> Result<Vec<InviteRecord>, StoreError>;
}

/// The store of record: SQLite or PostgreSQL.
pub trait Store:
    KeyStore + TokenStore + SettingsStore + StatsStore + SessionStore + RequestLogStore + AccountStore
{
}
impl<T: KeyStore + TokenStore + SettingsStore + StatsStore + SessionStore + RequestLogStore + AccountStore> Store
    for T
{
}

/// The one way the domain learns the time.
pub trait Clock: Send + Sync {
    fn now_ms(&self) -> UnixMs;

    /// A monotonic reading in microseconds from an arbitrary origin, for measuring durations.
    fn monotonic_us(&self) -> i64 {
        self.now_ms() * 1000
    }
}

/// Why an upstream exchange broke before a complete answer.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TransportError {
    #[error("could not connect to upstream")]
    Connect,
    #[error("upstream sent no response headers in time")]
    FirstByteTimeout,
    #[error("upstream went silent mid-response")]
    IdleTimeout,
    #[error("upstream connection dropped")]
    Dropped,
    #[error("upstream answer larger than proxy.max_response_bytes")]
    TooLarge,
    /// The gateway could not form the request (a malformed upstream URL or header): its own
    /// configuration, never a key's fault.
    #[error("the upstream request could not be formed (check the provider's URL and headers)")]
    Config,
    /// The gateway itself ran out of something (file descriptors, memory, buffers).
    #[error("the gateway is out of resources (file descriptors or memory)")]
    Local,
}

/// Tells long-running answers that the gateway is stopping (its grace period is over).
pub trait Shutdown: Send + Sync {
    /// A future that completes when the gateway stops; one per stream.
    fn stopped(&self) -> Pin<Box<dyn std::future::Future<Output = ()> + Send>>;
}

/// A gateway that never stops on its own (tests of the use case, tools).
#[derive(Debug, Default)]
pub struct NeverStops;

impl Shutdown for NeverStops {
    fn stopped(&self) -> Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
        Box::pin(std::future::pending())
    }
}

pub type BodyStream = Pin<Box<dyn Stream<Item = Result<Bytes, TransportError>> + Send>>;

/// One request to an upstream, with the pool key to present.
#[derive(Debug)]
pub struct UpstreamRequest {
    pub method: http::Method,
    pub url: String,
    pub bearer: Secret,
    /// Headers to send besides `Authorization` (already filtered: never the client's credentials).
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

pub struct UpstreamResponse {
    pub status: http::StatusCode,
    pub headers: http::HeaderMap,
    pub body: BodyStream,
}

/// The client that talks to upstream providers. It owns the timeouts: connect and first byte
/// fail `send`, and the idle timeout between chunks ends `body` with an error.
#[async_trait]
pub trait Upstream: Send + Sync {
    async fn send(&self, request: UpstreamRequest) -> Result<UpstreamResponse, TransportError>;
}
