//! `keys import` with no gateway running: straight into the configured database.
//!
//! It opens the store exactly as the server does ([`crate::app::open_store`]: encryption with the
//! configured master key included) and uses the server's parser and deduplication
//! ([`pool_core::import`]), so a key imported here is stored exactly as an online import stores
//! it. The provider's existing keys are read once, into a set of hashes.

use std::collections::HashSet;

use anyhow::{Context, bail};
use pool_adapters::clock::now_ms;
use pool_core::UnixMs;
use pool_core::ids::KeyId;
use pool_core::import::{Deduped, DuplicateOf, ParsedKey, dedupe, parse_text};
use pool_core::ports::{NewKey, Store};
use pool_core::secret::{SecretHash, mask};
use uuid::Uuid;

use super::import_summary::{Summary, duplicate};
use super::output::{Detail, count, progress};
use crate::app;
use crate::config::Config;

pub async fn run(
    config: &Config,
    provider: Option<&str>,
    chunk_lines: usize,
    content: &str,
) -> anyhow::Result<Summary> {
    let provider = known_provider(config, provider)?;
    let store = app::open_store(config).await?;
    let parsed = parse_text(content);
    let Deduped { fresh, duplicates } = dedupe(parsed.keys, &hashes_of(store.as_ref(), &provider).await?);
    let mut summary = Summary {
        total: parsed.rejected.len() + duplicates.len() + fresh.len(),
        invalid: parsed.rejected.len(),
        duplicates: duplicates.len(),
        details: parsed.rejected.into_iter().map(|r| Detail { line: r.line, reason: r.reason }).collect(),
        ..Summary::default()
    };
    summary.details.extend(duplicates.into_iter().map(|d| duplicate(d.line, &d.masked, d.of)));
    insert(store.as_ref(), &provider, &fresh, chunk_lines, &mut summary).await?;
    summary.details.sort_by_key(|d| d.line);
    summary.provider = provider;
    Ok(summary)
}

/// The provider named (or the default one), if the configuration knows it.
fn known_provider(config: &Config, name: Option<&str>) -> anyhow::Result<String> {
    let name = name.unwrap_or(&config.default_provider);
    let specs = config.provider_specs()?;
    if !specs.iter().any(|spec| spec.name.as_ref() == name) {
        let known: Vec<String> = specs.iter().map(|spec| spec.name.to_string()).collect();
        bail!("unknown provider '{name}' (configured: {})", known.join(", "));
    }
    Ok(name.to_owned())
}

/// The hashes of the keys the provider already has in the database.
async fn hashes_of(store: &dyn Store, provider: &str) -> anyhow::Result<HashSet<SecretHash>> {
    let records = store.load_keys().await.context("reading the upstream keys")?;
    Ok(records.into_iter().filter(|r| r.key.provider == provider).map(|r| r.key.secret_hash).collect())
}

/// Inserts in transactions of `chunk` keys; a key the store turns down (stored meanwhile) is a
/// duplicate.
async fn insert(
    store: &dyn Store,
    provider: &str,
    fresh: &[(ParsedKey, SecretHash)],
    chunk: usize,
    summary: &mut Summary,
) -> anyhow::Result<()> {
    let bar = progress(fresh.len(), "keys");
    let now = now_ms();
    for batch in fresh.chunks(chunk) {
        let keys: Vec<NewKey> = batch.iter().map(|(key, _)| new_key(provider, key, now)).collect();
        let inserted: HashSet<KeyId> = store
            .insert_keys(&keys)
            .await
            .with_context(|| format!("storing keys (the ones before are stored: {} added)", summary.added))?
            .into_iter()
            .collect();
        summary.added += inserted.len();
        for ((key, _), new) in batch.iter().zip(&keys).filter(|(_, new)| !inserted.contains(&new.id)) {
            summary.duplicates += 1;
            summary.details.push(duplicate(key.line, &mask(new.secret.expose_secret()), DuplicateOf::Pool));
        }
        bar.inc(count(batch.len()));
    }
    bar.finish_and_clear();
    Ok(())
}

fn new_key(provider: &str, key: &ParsedKey, now: UnixMs) -> NewKey {
    NewKey::new(KeyId::from_uuid(Uuid::now_v7()), provider, &key.secret, key.label.clone(), now, None)
}
