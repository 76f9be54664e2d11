//! Client tokens: who may call the gateway, on which providers and models, until when, and how
//! much.
//!
//! Only the SHA-256 of a token is ever stored. The running gateway keeps every token in a
//! [`TokenIndex`], a hash map behind an `ArcSwap` that is replaced whole on each change, so
//! authenticating a request is one hash and one map lookup, with no store round trip; a revoked or
//! expired token fails on the very next request. What an operator may edit about a token
//! ([`TokenSettings`]) sits behind an `ArcSwap` of its own, so an edit applies to the next request
//! without replacing the token and its counters.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};

use arc_swap::ArcSwap;

use crate::UnixMs;
use crate::ids::TokenId;
use crate::limit::Limits;
use crate::model_name;
use crate::provider::{ProviderKind, ProviderName};
use crate::secret::{SecretHash, hash_secret};

/// What an operator may change about a token; replaced whole, so a request sees one version.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TokenSettings {
    pub name: String,
    /// `None`: every provider.
    pub providers: Option<Vec<ProviderName>>,
    pub expires_at: Option<UnixMs>,
    pub limits: Limits,
    /// The models this token may use; `None`: every model. An entry ending in `*` allows every
    /// model whose canonical name starts with what comes before it (`openai/*`); any other entry
    /// allows the model it names under the provider's rule (on Ollama, `llama3.2` is
    /// `llama3.2:latest`; see [`crate::model_name`]).
    pub models: Option<Vec<String>>,
}

impl TokenSettings {
    pub fn allows(&self, provider: &ProviderName) -> bool {
        self.providers.as_ref().is_none_or(|list| list.contains(provider))
    }

    pub fn is_expired(&self, now: UnixMs) -> bool {
        self.expires_at.is_some_and(|at| at <= now)
    }

    /// Whether the allow-list admits `model` (any spelling) on a provider of `kind`.
    pub fn allows_model(&self, kind: ProviderKind, model: &str) -> bool {
        let Some(list) = &self.models else { return true };
        let model = model_name::canonical(kind, model);
        list.iter().any(|entry| match entry.strip_suffix('*') {
            Some(prefix) => model.starts_with(prefix),
            None => model_name::names(kind, entry, &model),
        })
    }

    /// The allow-list check of a request for `model` on a provider of `kind`.
    pub fn check_model(&self, kind: ProviderKind, model: &str) -> Result<(), AuthError> {
        if self.allows_model(kind, model) { Ok(()) } else { Err(AuthError::ModelNotAllowed(model.to_owned())) }
    }
}

/// One client token as the running gateway holds it.
#[derive(Debug)]
pub struct ClientToken {
    pub id: TokenId,
    /// The first characters of the token, for recognising it in a list.
    pub prefix: String,
    pub hash: SecretHash,
    pub created_at: UnixMs,
    settings: ArcSwap<TokenSettings>,
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
    pub fn new(
        id: TokenId,
        prefix: String,
        hash: SecretHash,
        created_at: UnixMs,
        settings: TokenSettings,
        requests: u64,
    ) -> Self {
        Self {
            id,
            prefix,
            hash,
            created_at,
            settings: ArcSwap::from_pointee(settings),
            requests: AtomicU64::new(requests),
            last_used: AtomicI64::new(0),
            pending_requests: AtomicU64::new(0),
        }
    }

    /// The settings in force now.
    pub fn settings(&self) -> Arc<TokenSettings> {
        self.settings.load_full()
    }

    /// Replaces the settings; the next request sees them.
    pub fn set_settings(&self, settings: TokenSettings) {
        self.settings.store(Arc::new(settings));
    }

    pub fn is_expired(&self, now: UnixMs) -> bool {
        self.settings.load().is_expired(now)
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
    #[error("This token may not use model '{0}'")]
    ModelNotAllowed(String),
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
        if !token.settings.load().allows(provider) {
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
    /// Removes every token of `ids` in one swap; returns how many were there.
    pub fn remove_many(&self, ids: &[TokenId]) -> usize {
        let gone: std::collections::HashSet<TokenId> = ids.iter().copied().collect();
        let mut removed = 0;
        self.by_hash.rcu(|map| {
            let mut next = HashMap::clone(map);
            next.retain(|_, t| !gone.contains(&t.id));
            removed = map.len() - next.len();
            next
        });
        removed
    }

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
        let settings = TokenSettings { name: "t".into(), providers, expires_at, ..TokenSettings::default() };
        index.insert(Arc::new(ClientToken::new(id, "sk-…".into(), hash_secret(secret), T0, settings, 0)));
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
    fn edited_settings_apply_to_the_next_request() {
        let (index, id) = index_with("sk-good", None, None);
        let token = index.find(id).unwrap_or_else(|| panic!("token"));
        token.set_settings(TokenSettings { expires_at: Some(T0), ..TokenSettings::clone(&token.settings()) });
        assert_eq!(index.authenticate(Some("sk-good"), &name("ollama"), T0).err(), Some(AuthError::Expired));
        token.set_settings(TokenSettings { providers: Some(vec![name("openrouter")]), ..TokenSettings::default() });
        assert!(index.authenticate(Some("sk-good"), &name("ollama"), T0).is_err());
        assert!(index.authenticate(Some("sk-good"), &name("openrouter"), T0).is_ok());
    }

    #[test]
    fn the_model_allow_list_matches_exactly_or_by_a_trailing_star() {
        let settings =
            TokenSettings { models: Some(vec!["llama3.2:3b".into(), "openai/*".into()]), ..TokenSettings::default() };
        let allows = |model: &str| settings.allows_model(ProviderKind::Ollama, model);
        assert!(allows("llama3.2:3b"));
        assert!(allows("openai/gpt-4o"));
        assert!(!allows("llama3.2"));
        assert!(!allows("qwen2.5:7b"));
        assert_eq!(settings.check_model(ProviderKind::Ollama, "qwen"), Err(AuthError::ModelNotAllowed("qwen".into())));
        assert!(TokenSettings::default().allows_model(ProviderKind::OpenAi, "anything"));
    }

    #[test]
    fn on_ollama_an_untagged_entry_and_its_latest_tag_admit_each_other() {
        let list = |entry: &str| TokenSettings { models: Some(vec![entry.into()]), ..TokenSettings::default() };
        assert!(list("mock-gpt").allows_model(ProviderKind::Ollama, "mock-gpt:latest"));
        assert!(list("mock-gpt:latest").allows_model(ProviderKind::Ollama, "mock-gpt"));
        assert!(!list("mock-gpt").allows_model(ProviderKind::Ollama, "mock-gpt:7b"));
        assert!(list("mock-*").allows_model(ProviderKind::Ollama, "mock-gpt"));
        assert!(!list("gpt").allows_model(ProviderKind::OpenAi, "gpt:latest"));
        assert!(!list("gpt:latest").allows_model(ProviderKind::OpenAi, "gpt"));
    }

    #[test]
    fn a_revoked_token_fails_on_the_next_request() {
        let (index, id) = index_with("sk-good", None, None);
        assert!(index.remove(id).is_some());
        assert_eq!(index.authenticate(Some("sk-good"), &name("ollama"), T0).err(), Some(AuthError::Unknown));
    }
}
