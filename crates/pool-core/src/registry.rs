//! The registry: keys and tokens as the store records them and as the running gateway holds them,
//! kept in step.
//!
//! Every change goes to the store first and then to memory, so a change the store refused never
//! shows in rotation (and the caller can answer that nothing changed). Counters go the other way: they grow in memory on the hot path and reach the
//! store through [`Registry::flush`], a few times a minute and at shutdown. A flush that fails
//! gives its deltas back, so nothing counted is lost while the database is away.
//!
//! Edits (a token's settings, a key's label and limits) read the current value, change it and
//! write it to the store and then to memory one at a time, so two edits at once can neither lose
//! each other's fields nor leave memory and store disagreeing.

use std::collections::HashSet;
use std::sync::Arc;

use futures_util::lock::Mutex;

use crate::UnixMs;
use crate::ids::{KeyId, TokenId};
use crate::key::Health;
use crate::pool::{CounterValues, KeyDelta, KeyLimits, PoolKey, Pools};
use crate::ports::{NewKey, Store, StoreError, TokenRecord};
use crate::provider::ProviderName;
use crate::token::{ClientToken, TokenDelta, TokenIndex, TokenSettings};

pub struct Registry {
    pub pools: Arc<Pools>,
    pub tokens: Arc<TokenIndex>,
    pub store: Arc<dyn Store>,
    /// Serialises edits (read, change, store, apply).
    edits: Mutex<()>,
}

/// What an operator may edit about a key.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeyEdit {
    pub label: Option<String>,
    pub limits: KeyLimits,
}

/// What a flush wrote.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FlushReport {
    pub keys: usize,
    pub tokens: usize,
}

/// What loading at start found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LoadReport {
    pub keys: usize,
    /// Keys of providers no longer configured: kept in the store, out of rotation.
    pub orphaned_keys: usize,
    pub tokens: usize,
}

impl Registry {
    pub fn new(pools: Arc<Pools>, tokens: Arc<TokenIndex>, store: Arc<dyn Store>) -> Self {
        Self { pools, tokens, store, edits: Mutex::new(()) }
    }

    /// Fills the pools and the token index from the store.
    pub async fn load(&self) -> Result<LoadReport, StoreError> {
        let mut report = LoadReport::default();
        let mut by_provider: Vec<(ProviderName, Vec<Arc<PoolKey>>)> = Vec::new();
        for record in self.store.load_keys().await? {
            let Some(provider) = self.configured(&record.key.provider) else {
                report.orphaned_keys += 1;
                continue;
            };
            let key =
                pool_key(&record.key, provider.clone()).with_state(record.health, &record.counters, record.models);
            match by_provider.iter_mut().find(|(p, _)| *p == provider) {
                Some((_, keys)) => keys.push(Arc::new(key)),
                None => by_provider.push((provider, vec![Arc::new(key)])),
            }
            report.keys += 1;
        }
        for (provider, keys) in by_provider {
            if let Some(pool) = self.pools.pool(&provider) {
                pool.add(keys);
            }
        }
        let tokens: Vec<_> = self.store.load_tokens().await?.iter().map(client_token).collect();
        report.tokens = tokens.len();
        self.tokens.replace_all(tokens.into_iter().map(Arc::new).collect());
        Ok(report)
    }

    /// Stores new keys (skipping duplicates) and puts them in rotation. Returns the ids added.
    pub async fn add_keys(&self, provider: &ProviderName, keys: Vec<NewKey>) -> Result<Vec<KeyId>, StoreError> {
        let added = self.store.insert_keys(&keys).await?;
        let inserted: HashSet<KeyId> = added.iter().copied().collect();
        let fresh: Vec<_> =
            keys.iter().filter(|k| inserted.contains(&k.id)).map(|k| Arc::new(pool_key(k, provider.clone()))).collect();
        if let Some(pool) = self.pools.pool(provider) {
            pool.add(fresh);
        }
        Ok(added)
    }

    /// Deletes keys from the store and takes them out of rotation.
    pub async fn delete_keys(&self, ids: &[KeyId]) -> Result<usize, StoreError> {
        if ids.is_empty() {
            return Ok(0);
        }
        self.store.delete_keys(ids).await?;
        Ok(self.pools.remove(ids))
    }

    pub async fn add_token(&self, record: TokenRecord) -> Result<Arc<ClientToken>, StoreError> {
        self.store.insert_token(&record).await?;
        let token = Arc::new(client_token(&record));
        self.tokens.insert(Arc::clone(&token));
        Ok(token)
    }

    /// Revokes a token: deleted from the store, then from memory. A store that fails leaves the
    /// token working, as the store still holds it; a revocation acknowledged holds across
    /// restarts.
    pub async fn revoke_token(&self, id: TokenId) -> Result<bool, StoreError> {
        let deleted = self.store.delete_token(id).await?;
        let removed = self.tokens.remove(id);
        Ok(removed.is_some() || deleted)
    }

    /// Revokes many tokens in one store write, then from memory (as [`Registry::revoke_token`]).
    /// Returns how many were revoked.
    pub async fn revoke_tokens(&self, ids: &[TokenId]) -> Result<usize, StoreError> {
        if ids.is_empty() {
            return Ok(0);
        }
        self.store.delete_tokens(ids).await?;
        Ok(self.tokens.remove_many(ids))
    }

    /// Applies an operator's change of health (enable, disable, lift cooldowns) to some keys:
    /// written to the store first, applied in memory only once the store has it. Returns the
    /// number of keys whose health changed.
    pub async fn change_health(
        &self,
        keys: &[Arc<PoolKey>],
        change: impl Fn(&mut Health),
    ) -> Result<usize, StoreError> {
        let deltas: Vec<KeyDelta> = keys
            .iter()
            .filter_map(|key| {
                let before = key.health();
                let mut after = before.clone();
                change(&mut after);
                (after != before).then(|| KeyDelta {
                    id: key.id,
                    counters: CounterValues::default(),
                    health: Some(after),
                    models: None,
                })
            })
            .collect();
        if !deltas.is_empty() {
            self.store.flush_keys(&deltas).await?;
        }
        for key in keys {
            key.update_health(&change);
        }
        Ok(deltas.len())
    }

    /// Changes a token's settings: `change` gets the current ones and returns the new ones (or an
    /// error, which changes nothing). `Ok(None)`: no such token.
    pub async fn update_token<E: From<StoreError>>(
        &self,
        id: TokenId,
        change: impl FnOnce(&TokenSettings) -> Result<TokenSettings, E>,
    ) -> Result<Option<Arc<ClientToken>>, E> {
        let _edit = self.edits.lock().await;
        let Some(token) = self.tokens.find(id) else { return Ok(None) };
        let settings = change(&token.settings())?;
        if !self.store.update_token(&token_record(&token, &settings)).await? {
            return Ok(None);
        }
        token.set_settings(settings);
        Ok(Some(token))
    }

    /// Changes a key's label and limits, like [`Registry::update_token`].
    pub async fn update_key<E: From<StoreError>>(
        &self,
        id: KeyId,
        change: impl FnOnce(KeyEdit) -> Result<KeyEdit, E>,
    ) -> Result<Option<Arc<PoolKey>>, E> {
        let _edit = self.edits.lock().await;
        let Some(key) = self.pools.find(id) else { return Ok(None) };
        let current = KeyEdit { label: key.label().map(|l| String::clone(&l)), limits: key.limits() };
        let edit = change(current)?;
        if !self.store.update_key(id, edit.label.as_deref(), &edit.limits).await? {
            return Ok(None);
        }
        key.set_label(edit.label);
        key.set_limits(edit.limits);
        Ok(Some(key))
    }

    /// Writes every counter delta and health change since the last flush.
    pub async fn flush(&self) -> Result<FlushReport, StoreError> {
        let keys = self.pools.all_keys();
        let key_deltas: Vec<KeyDelta> = keys.iter().filter_map(|k| k.take_delta()).collect();
        if !key_deltas.is_empty()
            && let Err(e) = self.store.flush_keys(&key_deltas).await
        {
            give_back_keys(&keys, &key_deltas);
            return Err(e);
        }
        let tokens = self.tokens.all();
        let token_deltas: Vec<TokenDelta> = tokens.iter().filter_map(|t| t.take_delta()).collect();
        if !token_deltas.is_empty()
            && let Err(e) = self.store.flush_tokens(&token_deltas).await
        {
            for delta in &token_deltas {
                if let Some(token) = tokens.iter().find(|t| t.id == delta.id) {
                    token.restore_delta(delta);
                }
            }
            return Err(e);
        }
        Ok(FlushReport { keys: key_deltas.len(), tokens: token_deltas.len() })
    }

    fn configured(&self, provider: &str) -> Option<ProviderName> {
        self.pools.providers().map(|(name, _)| name).find(|name| name.as_ref() == provider).cloned()
    }
}

fn give_back_keys(keys: &[Arc<PoolKey>], deltas: &[KeyDelta]) {
    for delta in deltas {
        if let Some(key) = keys.iter().find(|k| k.id == delta.id) {
            key.restore_delta(delta);
        }
    }
}

fn pool_key(key: &NewKey, provider: ProviderName) -> PoolKey {
    let pool_key =
        PoolKey::new(key.id, provider, key.secret.clone(), key.label.clone(), key.created_at, key.expires_at);
    pool_key.set_limits(key.limits);
    pool_key
}

fn client_token(record: &TokenRecord) -> ClientToken {
    let providers =
        record.providers.as_ref().map(|list| list.iter().filter_map(|p| ProviderName::parse(p).ok()).collect());
    let settings = TokenSettings {
        name: record.name.clone(),
        providers,
        expires_at: record.expires_at,
        limits: record.limits,
        models: record.models.clone(),
    };
    let token =
        ClientToken::new(record.id, record.prefix.clone(), record.hash, record.created_at, settings, record.requests);
    if let Some(at) = record.last_used {
        token.last_used.store(at, std::sync::atomic::Ordering::Relaxed);
    }
    token
}

/// A token in the store's terms, with `settings` for its editable fields.
fn token_record(token: &ClientToken, settings: &TokenSettings) -> TokenRecord {
    use std::sync::atomic::Ordering::Relaxed;
    let last_used = token.last_used.load(Relaxed);
    TokenRecord {
        id: token.id,
        name: settings.name.clone(),
        prefix: token.prefix.clone(),
        hash: token.hash,
        providers: settings.providers.as_ref().map(|list| list.iter().map(ToString::to_string).collect()),
        created_at: token.created_at,
        expires_at: settings.expires_at,
        requests: token.requests.load(Relaxed),
        last_used: (last_used != 0).then_some(last_used),
        limits: settings.limits,
        models: settings.models.clone(),
    }
}

/// Seconds to milliseconds for a time-to-live given by an operator, refusing nonsense.
pub fn ttl_to_expiry(now: UnixMs, ttl_seconds: Option<u64>) -> Option<UnixMs> {
    let ttl = ttl_seconds.filter(|&s| s > 0)?;
    Some(now.saturating_add(i64::try_from(ttl).unwrap_or(i64::MAX / 1000).saturating_mul(1000)))
}
