//! Upstream keys encrypted at rest: [`EncryptingStore`] wraps the store of record, seals every
//! secret on its way in and opens it on its way out, so the domain only ever sees plaintext and
//! the database only ever holds ciphertext.
//!
//! A stored secret reads `enc:v1:` followed by base64url (no padding) of a 24-byte random nonce,
//! then the XChaCha20-Poly1305 ciphertext and tag. The key's id is the associated data, so a
//! ciphertext copied onto another row fails to open instead of quietly serving another key. A
//! random 192-bit nonce never repeats in practice, so there is no counter to keep.
//!
//! A key design decision: a value without the prefix is a key stored before encryption was
//! turned on. It still loads, and [`EncryptingStore::seal_plaintext_keys`] encrypts such rows at
//! start. Duplicates are still found without plaintext in the store, because the caller hands in
//! the secret's SHA-256 (`NewKey::secret_hash`), which is kept beside the ciphertext: an API key has
//! far too much entropy for its hash to be reversed.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_PAD_INDIFFERENT, URL_SAFE_NO_PAD, URL_SAFE_PAD_INDIFFERENT};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
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
use pool_core::token::TokenDelta;
use secrecy::zeroize::Zeroize;
use secrecy::{ExposeSecret, SecretBox};

/// What every sealed secret starts with; the version names the cipher and the layout after it.
pub const SEALED_PREFIX: &str = "enc:v1:";

/// Bytes in a master key.
pub const MASTER_KEY_BYTES: usize = 32;

const NONCE_BYTES: usize = 24;
const TAG_BYTES: usize = 16;

/// The key that seals upstream keys (`POOL_MASTER_KEY`): 32 bytes, wiped from memory when dropped,
/// never shown by `Debug`.
pub struct MasterKey(SecretBox<[u8; MASTER_KEY_BYTES]>);

/// A master key that could not be parsed. The value itself is never part of the message.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum InvalidMasterKey {
    #[error("the master key is not base64; it must be 32 random bytes in base64")]
    NotBase64,
    #[error("the master key decodes to {0} bytes; it must be exactly 32")]
    WrongLength(usize),
}

impl MasterKey {
    /// Parses base64, standard or url-safe, padded or not, around any surrounding whitespace.
    pub fn parse(text: &str) -> Result<Self, InvalidMasterKey> {
        let text = text.trim();
        let mut bytes = STANDARD_PAD_INDIFFERENT
            .decode(text)
            .or_else(|_| URL_SAFE_PAD_INDIFFERENT.decode(text))
            .map_err(|_| InvalidMasterKey::NotBase64)?;
        let key = <[u8; MASTER_KEY_BYTES]>::try_from(bytes.as_slice()).map(Self::from_bytes);
        let len = bytes.len();
        bytes.zeroize();
        key.map_err(|_| InvalidMasterKey::WrongLength(len))
    }

    pub fn from_bytes(bytes: [u8; MASTER_KEY_BYTES]) -> Self {
        Self(SecretBox::new(Box::new(bytes)))
    }

    /// A fresh key from the OS random source.
    pub fn generate() -> Result<Self, getrandom::Error> {
        let mut bytes = [0u8; MASTER_KEY_BYTES];
        getrandom::fill(&mut bytes)?;
        let key = Self::from_bytes(bytes);
        bytes.zeroize();
        Ok(key)
    }

    /// The key in standard base64, to show an operator once.
    pub fn expose_base64(&self) -> String {
        STANDARD.encode(self.0.expose_secret())
    }
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey([redacted])")
    }
}

/// Why stored secrets could not be sealed or opened. Never carries key material.
#[derive(Debug, thiserror::Error)]
pub enum CipherError {
    #[error("upstream keys are encrypted but no POOL_MASTER_KEY is configured")]
    NoMasterKey,
    #[error(
        "upstream keys are encrypted but the wrong POOL_MASTER_KEY is configured \
         (key {0} does not decrypt; or its stored value was altered)"
    )]
    WrongKey(KeyId),
    #[error("the stored secret of upstream key {0} starts with {SEALED_PREFIX} but is not a sealed value")]
    Malformed(KeyId),
    #[error("the OS random source failed")]
    Random(#[source] getrandom::Error),
    #[error("encrypting an upstream key failed")]
    Seal,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<CipherError> for StoreError {
    fn from(error: CipherError) -> Self {
        match error {
            CipherError::Store(inner) => inner,
            other => StoreError::Backend(Box::new(other)),
        }
    }
}

/// What binds a ciphertext to its row: the key's id.
fn associated_data(id: KeyId) -> [u8; 16] {
    id.as_uuid().into_bytes()
}

/// Seals and opens single secrets under one master key.
struct Sealer(XChaCha20Poly1305);

impl Sealer {
    fn new(key: &MasterKey) -> Self {
        Self(XChaCha20Poly1305::new(key.0.expose_secret().into()))
    }

    fn seal(&self, id: KeyId, secret: &Secret) -> Result<Secret, CipherError> {
        let mut nonce = [0u8; NONCE_BYTES];
        getrandom::fill(&mut nonce).map_err(CipherError::Random)?;
        let aad = associated_data(id);
        let payload = Payload { msg: secret.expose_secret().as_bytes(), aad: &aad };
        let sealed = self.0.encrypt(&XNonce::from(nonce), payload).map_err(|_| CipherError::Seal)?;
        let mut bytes = Vec::with_capacity(NONCE_BYTES + sealed.len());
        bytes.extend_from_slice(&nonce);
        bytes.extend_from_slice(&sealed);
        Ok(Secret::new(format!("{SEALED_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes))))
    }

    /// The plaintext of a stored secret; `None` when it was stored as plaintext.
    fn open(&self, id: KeyId, stored: &Secret) -> Result<Option<Secret>, CipherError> {
        let Some(body) = stored.expose_secret().strip_prefix(SEALED_PREFIX) else {
            return Ok(None);
        };
        let bytes = URL_SAFE_NO_PAD.decode(body).map_err(|_| CipherError::Malformed(id))?;
        if bytes.len() < NONCE_BYTES + TAG_BYTES {
            return Err(CipherError::Malformed(id));
        }
        let (nonce, sealed) = bytes.split_at(NONCE_BYTES);
        let nonce = XNonce::try_from(nonce).map_err(|_| CipherError::Malformed(id))?;
        let aad = associated_data(id);
        let payload = Payload { msg: sealed, aad: &aad };
        let plain = self.0.decrypt(&nonce, payload).map_err(|_| CipherError::WrongKey(id))?;
        let plain = String::from_utf8(plain).map_err(|_| CipherError::Malformed(id))?;
        Ok(Some(Secret::new(plain)))
    }

    /// Every record with its secret opened (plaintext rows as they are).
    fn open_all(&self, mut records: Vec<KeyRecord>) -> Result<Vec<KeyRecord>, CipherError> {
        for record in &mut records {
            if let Some(plain) = self.open(record.key.id, &record.key.secret)? {
                record.key.secret = plain;
            }
        }
        Ok(records)
    }

    fn seal_all<'a>(&self, keys: impl IntoIterator<Item = &'a NewKey>) -> Result<Vec<(KeyId, Secret)>, CipherError> {
        keys.into_iter().map(|key| Ok((key.id, self.seal(key.id, &key.secret)?))).collect()
    }
}

/// A store whose upstream keys are encrypted at rest; everything else passes straight through.
pub struct EncryptingStore {
    inner: Arc<dyn Store>,
    sealer: Sealer,
}

impl EncryptingStore {
    pub fn new(inner: Arc<dyn Store>, key: &MasterKey) -> Self {
        Self { inner, sealer: Sealer::new(key) }
    }

    /// Encrypts in place, in one transaction, every key stored before encryption was turned on,
    /// after checking that every encrypted one opens under this master key. Returns how many it
    /// encrypted.
    pub async fn seal_plaintext_keys(&self) -> Result<usize, CipherError> {
        let mut plain = Vec::new();
        for record in self.inner.load_keys().await? {
            if self.sealer.open(record.key.id, &record.key.secret)?.is_none() {
                plain.push(record.key);
            }
        }
        let sealed = self.sealer.seal_all(&plain)?;
        self.inner.replace_secrets(&sealed).await?;
        Ok(sealed.len())
    }
}

/// Fails with [`CipherError::NoMasterKey`] if any upstream key is stored encrypted: without the
/// master key it would reach an upstream as garbage.
pub async fn refuse_sealed(store: &dyn KeyStore) -> Result<(), CipherError> {
    if any_sealed(&store.load_keys().await?) { Err(CipherError::NoMasterKey) } else { Ok(()) }
}

fn any_sealed(records: &[KeyRecord]) -> bool {
    records.iter().any(|r| r.key.secret.expose_secret().starts_with(SEALED_PREFIX))
}

/// Re-encrypts every upstream key under `new` in one transaction, reading them with `current`
/// (`None`: they are all plaintext). Returns how many keys it re-encrypted.
///
/// Run it with the gateways stopped: a key one of them adds meanwhile stays under the old key.
pub async fn rotate(inner: &dyn Store, current: Option<&MasterKey>, new: &MasterKey) -> Result<usize, CipherError> {
    let stored = inner.load_keys().await?;
    let records = match current {
        Some(key) => Sealer::new(key).open_all(stored)?,
        None if any_sealed(&stored) => return Err(CipherError::NoMasterKey),
        None => stored,
    };
    let sealed = Sealer::new(new).seal_all(records.iter().map(|r| &r.key))?;
    inner.replace_secrets(&sealed).await?;
    Ok(sealed.len())
}

#[async_trait]
impl KeyStore for EncryptingStore {
    async fn load_keys(&self) -> Result<Vec<KeyRecord>, StoreError> {
        let stored = self.inner.load_keys().await?;
        Ok(self.sealer.open_all(stored)?)
    }

    async fn insert_keys(&self, keys: &[NewKey]) -> Result<Vec<KeyId>, StoreError> {
        let sealed = self.sealer.seal_all(keys)?;
        let keys: Vec<NewKey> =
            keys.iter().zip(sealed).map(|(key, (_, secret))| NewKey { secret, ..key.clone() }).collect();
        self.inner.insert_keys(&keys).await
    }

    async fn delete_keys(&self, ids: &[KeyId]) -> Result<u64, StoreError> {
        self.inner.delete_keys(ids).await
    }

    async fn flush_keys(&self, deltas: &[KeyDelta]) -> Result<(), StoreError> {
        self.inner.flush_keys(deltas).await
    }

    async fn replace_secrets(&self, secrets: &[(KeyId, Secret)]) -> Result<(), StoreError> {
        let sealed: Result<Vec<_>, CipherError> =
            secrets.iter().map(|(id, secret)| Ok((*id, self.sealer.seal(*id, secret)?))).collect();
        self.inner.replace_secrets(&sealed?).await
    }

    async fn update_key(&self, id: KeyId, label: Option<&str>, limits: &KeyLimits) -> Result<bool, StoreError> {
        self.inner.update_key(id, label, limits).await
    }
}

#[async_trait]
impl TokenStore for EncryptingStore {
    async fn load_tokens(&self) -> Result<Vec<TokenRecord>, StoreError> {
        self.inner.load_tokens().await
    }

    async fn insert_token(&self, token: &TokenRecord) -> Result<(), StoreError> {
        self.inner.insert_token(token).await
    }

    async fn delete_token(&self, id: TokenId) -> Result<bool, StoreError> {
        self.inner.delete_token(id).await
    }

    async fn delete_tokens(&self, ids: &[TokenId]) -> Result<u64, StoreError> {
        self.inner.delete_tokens(ids).await
    }

    async fn update_token(&self, token: &TokenRecord) -> Result<bool, StoreError> {
        self.inner.update_token(token).await
    }

    async fn flush_tokens(&self, deltas: &[TokenDelta]) -> Result<(), StoreError> {
        self.inner.flush_tokens(deltas).await
    }
}

/// Statistics hold no secrets: passed through.
#[async_trait]
impl StatsStore for EncryptingStore {
    async fn add_stats(&self, rollups: &Rollups) -> Result<(), StoreError> {
        self.inner.add_stats(rollups).await
    }

    async fn prune_stats(&self, minutes_before: UnixMs, hours_before: UnixMs) -> Result<u64, StoreError> {
        self.inner.prune_stats(minutes_before, hours_before).await
    }

    async fn stats_totals(&self, provider: Option<&str>) -> Result<Vec<SummaryRow>, StoreError> {
        self.inner.stats_totals(provider).await
    }

    async fn stats_hours(&self, provider: Option<&str>, since: UnixMs) -> Result<Vec<SummaryRow>, StoreError> {
        self.inner.stats_hours(provider, since).await
    }

    async fn stats_minutes(&self, provider: Option<&str>, since: UnixMs) -> Result<Vec<SummaryRow>, StoreError> {
        self.inner.stats_minutes(provider, since).await
    }

    async fn usage_series(&self, query: &UsageQuery) -> Result<Vec<UsagePoint>, StoreError> {
        self.inner.usage_series(query).await
    }

    async fn token_usage_since(&self, since: UnixMs) -> Result<Vec<TokenUsage>, StoreError> {
        self.inner.token_usage_since(since).await
    }
}

/// Sessions hold only hashes: passed through.
#[async_trait]
impl SessionStore for EncryptingStore {
    async fn insert_session(&self, session: &SessionRecord) -> Result<(), StoreError> {
        self.inner.insert_session(session).await
    }

    async fn session_by_hash(&self, hash: &SecretHash) -> Result<Option<SessionRecord>, StoreError> {
        self.inner.session_by_hash(hash).await
    }

    async fn touch_session(&self, id: &str, last_seen: UnixMs) -> Result<bool, StoreError> {
        self.inner.touch_session(id, last_seen).await
    }

    async fn delete_session(&self, id: &str) -> Result<bool, StoreError> {
        self.inner.delete_session(id).await
    }

    async fn list_sessions(&self) -> Result<Vec<SessionRecord>, StoreError> {
        self.inner.list_sessions().await
    }

    async fn prune_sessions(&self, seen_before: UnixMs, created_before: UnixMs) -> Result<u64, StoreError> {
        self.inner.prune_sessions(seen_before, created_before).await
    }
}

/// The request log holds no key material (keys by id, reasons cut to the gateway's own
/// texts): passed through.
#[async_trait]
impl RequestLogStore for EncryptingStore {
    async fn append_requests(&self, entries: &[RequestLogEntry]) -> Result<(), StoreError> {
        self.inner.append_requests(entries).await
    }

    async fn query_requests(&self, query: &RequestQuery) -> Result<RequestPage, StoreError> {
        self.inner.query_requests(query).await
    }

    async fn request_by_id(&self, request_id: &str) -> Result<Option<RequestRecord>, StoreError> {
        self.inner.request_by_id(request_id).await
    }

    async fn prune_requests(&self, before: UnixMs, max_rows: u32) -> Result<u64, StoreError> {
        self.inner.prune_requests(before, max_rows).await
    }
}

#[async_trait]
impl SettingsStore for EncryptingStore {
    async fn setting(&self, name: &str) -> Result<Option<String>, StoreError> {
        self.inner.setting(name).await
    }

    async fn put_setting(&self, name: &str, value: &str) -> Result<(), StoreError> {
        self.inner.put_setting(name, value).await
    }
}

/// Accounts hold hashes only (codes and invites hashed, passwords argon2id): passed through.
#[async_trait]
impl AccountStore for EncryptingStore {
    async fn insert_user(&self, user: &UserRecord) -> Result<(), StoreError> {
        self.inner.insert_user(user).await
    }

    async fn user_by_id(&self, id: UserId) -> Result<Option<UserRecord>, StoreError> {
        self.inner.user_by_id(id).await
    }

    async fn user_by_email(&self, email: &Email) -> Result<Option<UserRecord>, StoreError> {
        self.inner.user_by_email(email).await
    }

    async fn user_page(&self, query: &UserQuery) -> Result<UserPage, StoreError> {
        self.inner.user_page(query).await
    }

    async fn set_user_status(&self, id: UserId, status: UserStatus) -> Result<bool, StoreError> {
        self.inner.set_user_status(id, status).await
    }

    async fn set_user_password(&self, id: UserId, hash: Option<&PasswordHash>) -> Result<bool, StoreError> {
        self.inner.set_user_password(id, hash).await
    }

    async fn set_user_name(&self, id: UserId, name: Option<&str>) -> Result<bool, StoreError> {
        self.inner.set_user_name(id, name).await
    }

    async fn set_last_login(&self, id: UserId, at: UnixMs) -> Result<bool, StoreError> {
        self.inner.set_last_login(id, at).await
    }

    async fn delete_user(&self, id: UserId) -> Result<bool, StoreError> {
        self.inner.delete_user(id).await
    }

    async fn put_code(&self, code: &CodeRecord) -> Result<(), StoreError> {
        self.inner.put_code(code).await
    }

    async fn take_code_try(&self, email: &Email, purpose: CodePurpose) -> Result<Option<CodeRecord>, StoreError> {
        self.inner.take_code_try(email, purpose).await
    }

    async fn consume_code(&self, email: &Email, purpose: CodePurpose, hash: &SecretHash) -> Result<bool, StoreError> {
        self.inner.consume_code(email, purpose, hash).await
    }

    async fn code_sends(&self, email: &Email, address: &str, day: LocalDay) -> Result<SendTallies, StoreError> {
        self.inner.code_sends(email, address, day).await
    }

    async fn count_code_send(
        &self,
        email: &Email,
        address: &str,
        day: LocalDay,
        at: UnixMs,
    ) -> Result<SendTallies, StoreError> {
        self.inner.count_code_send(email, address, day, at).await
    }

    async fn sign_in(
        &self,
        user: UserId,
        day: LocalDay,
        at: UnixMs,
        new_expiry: UnixMs,
    ) -> Result<Option<SignInRecord>, StoreError> {
        self.inner.sign_in(user, day, at, new_expiry).await
    }

    async fn sign_in_page(&self, user: UserId, offset: u64, limit: u32) -> Result<SignInPage, StoreError> {
        self.inner.sign_in_page(user, offset, limit).await
    }

    async fn insert_invite(&self, invite: &InviteRecord) -> Result<(), StoreError> {
        self.inner.insert_invite(invite).await
    }

    async fn use_invite(&self, hash: &SecretHash, user: UserId, at: UnixMs) -> Result<bool, StoreError> {
        self.inner.use_invite(hash, user, at).await
    }

    async fn list_invites(&self) -> Result<Vec<InviteRecord>, StoreError> {
        self.inner.list_invites().await
    }
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;

    fn id() -> KeyId {
        KeyId::from_uuid(Uuid::now_v7())
    }

    #[test]
    fn a_master_key_parses_from_standard_or_url_safe_base64_padded_or_not() {
        let bytes: [u8; 32] = std::array::from_fn(|i| 250u8.wrapping_add(i as u8));
        let standard = STANDARD.encode(bytes);
        assert!(standard.contains('+') || standard.contains('/'), "the sample exercises both alphabets");
        let url_safe = URL_SAFE_NO_PAD.encode(bytes);
        for text in [standard.clone(), standard.trim_end_matches('=').to_owned(), url_safe, format!(" {standard}\n")] {
            let key = MasterKey::parse(&text).expect("parses");
            assert_eq!(key.expose_base64(), standard);
        }
    }

    #[test]
    fn a_master_key_that_is_not_32_bytes_of_base64_is_refused() {
        assert_eq!(MasterKey::parse("not base64!").err(), Some(InvalidMasterKey::NotBase64));
        assert_eq!(MasterKey::parse(&STANDARD.encode([7u8; 16])).err(), Some(InvalidMasterKey::WrongLength(16)));
        assert_eq!(MasterKey::parse("").err(), Some(InvalidMasterKey::WrongLength(0)));
    }

    #[test]
    fn debug_of_a_master_key_is_redacted() {
        let key = MasterKey::from_bytes([9; 32]);
        assert_eq!(format!("{key:?}"), "MasterKey([redacted])");
    }

    #[test]
    fn a_sealed_secret_opens_only_for_its_own_key_id() {
        let sealer = Sealer::new(&MasterKey::from_bytes([1; 32]));
        let (mine, other) = (id(), id());
        let sealed = sealer.seal(mine, &Secret::new("sk-plain")).expect("seals");
        assert!(sealed.expose_secret().starts_with(SEALED_PREFIX));
        assert_eq!(sealer.open(mine, &sealed).expect("opens"), Some(Secret::new("sk-plain")));
        assert!(matches!(sealer.open(other, &sealed), Err(CipherError::WrongKey(id)) if id == other));
    }

    #[test]
    fn a_damaged_sealed_value_is_reported_as_malformed() {
        let sealer = Sealer::new(&MasterKey::from_bytes([1; 32]));
        let key = id();
        for stored in ["enc:v1:", "enc:v1:***", "enc:v1:AAAA"] {
            let opened = sealer.open(key, &Secret::new(stored));
            assert!(matches!(opened, Err(CipherError::Malformed(id)) if id == key), "{stored}");
        }
        assert_eq!(sealer.open(key, &Secret::new("sk-plain")).expect("plaintext passes"), None);
    }
}
