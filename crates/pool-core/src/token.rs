//! Client tokens: who may call the gateway, on which providers, until when.
//!
//! Only the SHA-256 of a token is ever stored. The running gateway keeps every token in a
//! [`TokenIndex`], a hash map behind an `ArcSwap` that is replaced whole on each change, so
//! authenticating a request is one hash and one map lookup, with no store round trip; a revoked or
//! expired token fails on the very next request.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};

use arc_swap::ArcSwap;

use crate::UnixMs;
use crate::ids::TokenId;
use crate::provider::ProviderName;
use crate::secret::{SecretHash, hash_secret};

/// One client token as the running gateway holds it.
#[derive(Debug)]
pub struct ClientToken {
    pub id: TokenId,
    pub name: String,
    /// The first characters of the token, for recognising it in a list.
    pub prefix: String,
    pub hash: SecretHash,
    /// `None`: every provider.
    pub providers: Option<Vec<ProviderName>>,
    pub created_at: UnixMs,
    pub expires_at: Option<UnixMs>,
    /// Requests authenticated with this token, including what the store held at start.
    pub requests: AtomicU64,
    pub last_used: AtomicI64,
    pending_requests: AtomicU64,
}

/// What a flush takes from a token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenDelta {
    pub id: TokenId,
    pub requests: u64,
    pub last_used: Option<UnixMs>,
}

impl ClientToken {
    #[expect(clippy::too_many_arguments, reason = "a plain record constructor; every field is named at the call site")]
    pub fn new(
        id: TokenId,
        name: String,
        prefix: String,
        hash: SecretHash,
        providers: Option<Vec<ProviderName>>,
        created_at: UnixMs,
        expires_at: Option<UnixMs>,
        requests: u64,
    ) -> Self {
        Self {
            id,
            name,
            prefix,
            hash,
            providers,
            created_at,
            expires_at,
            requests: AtomicU64::new(requests),
            last_used: AtomicI64::new(0),
            pending_requests: AtomicU64::new(0),
        }
    }

    pub fn allows(&self, provider: &ProviderName) -> bool {
        self.providers.as_ref().is_none_or(|list| list.contains(provider))
    }

    pub fn is_expired(&self, now: UnixMs) -> bool {
        self.expires_at.is_some_and(|at| at <= now)
    }

    pub fn count_request(&self, now: UnixMs) {
        self.requests.fetch_add(1, Relaxed);
        self.pending_requests.fetch_add(1, Relaxed);
        self.last_used.fetch_max(now, Relaxed);
    }

    pub fn take_delta(&self) -> Option<TokenDelta> {
        let requests = self.pending_requests.swap(0, Relaxed);
        let last_used = self.last_used.load(Relaxed);
        (requests > 0).then_some(TokenDelta { id: self.id, requests, last_used: (last_used != 0).then_some(last_used) })
    }

    pub fn restore_delta(&self, delta: &TokenDelta) {
        self.pending_requests.fetch_add(delta.requests, Relaxed);
    }
}

/// Why a request was not let in. The messages are safe to show the caller.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("Missing bearer token: send 'Authorization: Bearer <token>'")]
    Missing,
    #[error("Invalid API token")]
    Unknown,
    #[error("API token has expired")]
    Expired,
    #[error("This token may not use provider '{0}'")]
    ProviderNotAllowed(ProviderName),
}

/// Every live token, by hash.
#[derive(Debug, Default)]
pub struct TokenIndex {
    by_hash: ArcSwap<HashMap<SecretHash, Arc<ClientToken>>>,
}

impl TokenIndex {
    /// Authenticates a presented token for a provider and counts the request.
    pub fn authenticate(
        &self,
        presented: Option<&str>,
        provider: &ProviderName,
        now: UnixMs,
    ) -> Result<Arc<ClientToken>, AuthError> {
        let token = self.identify(presented, now)?;
        if !token.allows(provider) {
            return Err(AuthError::ProviderNotAllowed(provider.clone()));
        }
        token.count_request(now);
        Ok(token)
    }

    /// Finds a live token without checking a provider or counting (model lists, probes).
    pub fn identify(&self, presented: Option<&str>, now: UnixMs) -> Result<Arc<ClientToken>, AuthError> {
        let presented = presented.filter(|t| !t.is_empty()).ok_or(AuthError::Missing)?;
        let token = self.by_hash.load().get(&hash_secret(presented)).cloned().ok_or(AuthError::Unknown)?;
        if token.is_expired(now) {
            return Err(AuthError::Expired);
        }
        Ok(token)
    }

    pub fn insert(&self, token: Arc<ClientToken>) {
        self.by_hash.rcu(|map| {
            let mut next = HashMap::clone(map);
            next.insert(token.hash, Arc::clone(&token));
            next
        });
    }

    pub fn replace_all(&self, tokens: Vec<Arc<ClientToken>>) {
        self.by_hash.store(Arc::new(tokens.into_iter().map(|t| (t.hash, t)).collect()));
    }

    /// Revokes a token; the next request with it fails.
    pub fn remove(&self, id: TokenId) -> Option<Arc<ClientToken>> {
        let mut removed = None;
        self.by_hash.rcu(|map| {
            let mut next = HashMap::clone(map);
            next.retain(|_, t| t.id != id);
            removed = map.values().find(|t| t.id == id).cloned();
            next
        });
        removed
    }

    pub fn find(&self, id: TokenId) -> Option<Arc<ClientToken>> {
        self.by_hash.load().values().find(|t| t.id == id).cloned()
    }

    /// All tokens, oldest first.
    pub fn all(&self) -> Vec<Arc<ClientToken>> {
        let mut tokens: Vec<_> = self.by_hash.load().values().cloned().collect();
        tokens.sort_by_key(|t| (t.created_at, t.id));
        tokens
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    const T0: UnixMs = 1_700_000_000_000;

    fn name(p: &str) -> ProviderName {
        ProviderName::parse(p).unwrap_or_else(|e| panic!("{e}"))
    }

    fn index_with(
        secret: &str,
        providers: Option<Vec<ProviderName>>,
        expires_at: Option<UnixMs>,
    ) -> (TokenIndex, TokenId) {
        let id = TokenId::from_uuid(Uuid::from_u128(1));
        let index = TokenIndex::default();
        index.insert(Arc::new(ClientToken::new(
            id,
            "t".into(),
            "sk-…".into(),
            hash_secret(secret),
            providers,
            T0,
            expires_at,
            0,
        )));
        (index, id)
    }

    #[test]
    fn a_known_token_is_let_in_and_counted() {
        let (index, _) = index_with("sk-good", None, None);
        let token = index.authenticate(Some("sk-good"), &name("ollama"), T0);
        assert_eq!(token.map(|t| t.requests.load(Relaxed)), Ok(1));
    }

    #[test]
    fn missing_unknown_and_expired_tokens_are_refused() {
        let (index, _) = index_with("sk-good", None, Some(T0 + 10));
        assert_eq!(index.authenticate(None, &name("ollama"), T0).err(), Some(AuthError::Missing));
        assert_eq!(index.authenticate(Some(""), &name("ollama"), T0).err(), Some(AuthError::Missing));
        assert_eq!(index.authenticate(Some("sk-bad"), &name("ollama"), T0).err(), Some(AuthError::Unknown));
        assert_eq!(index.authenticate(Some("sk-good"), &name("ollama"), T0 + 10).err(), Some(AuthError::Expired));
    }

    #[test]
    fn a_token_scoped_to_one_provider_is_refused_on_another() {
        let (index, _) = index_with("sk-good", Some(vec![name("openrouter")]), None);
        assert!(index.authenticate(Some("sk-good"), &name("openrouter"), T0).is_ok());
        assert_eq!(
            index.authenticate(Some("sk-good"), &name("ollama"), T0).err(),
            Some(AuthError::ProviderNotAllowed(name("ollama")))
        );
    }

    #[test]
    fn a_revoked_token_fails_on_the_next_request() {
        let (index, id) = index_with("sk-good", None, None);
        assert!(index.remove(id).is_some());
        assert_eq!(index.authenticate(Some("sk-good"), &name("ollama"), T0).err(), Some(AuthError::Unknown));
    }
}
