//! Bulk key import: `/admin/api-keys/import` (`keys`), `/admin/api-keys/import-from-txt`
//! (`content`) and `/admin/import` (`accounts`), in the formats of [`pool_core::import`], into the
//! provider the body names.
//!
//! The payload fields are read as raw JSON and their type checked here, not by serde, because
//! serde's type errors quote the offending value (`invalid type: string "sk-…"`) and no answer of
//! this module may carry a key. Duplicates are found against one snapshot of the provider's pool
//! and one hash set for the batch, so 100,000 keys cost linear work before the single store
//! transaction of [`pool_core::registry::Registry::add_keys`].

use std::collections::HashSet;

use axum::Json;
use axum::extract::State;
use pool_core::UnixMs;
use pool_core::ids::KeyId;
use pool_core::import::{
    Deduped, Duplicate, DuplicateOf, Parsed, ParsedKey, Rejected, dedupe, parse_entries, parse_text,
};
use pool_core::ports::NewKey;
use pool_core::provider::ProviderName;
use pool_core::secret::{Secret, SecretHash, mask};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use uuid::Uuid;

use super::provider_or_default;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{Admin, AppJson};
use crate::state::AppState;

/// Most entries listed in `details`; the counts always cover everything.
const MAX_DETAILS: usize = 10_000;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ImportKeys {
    /// An array of strings, each read like a line of a text import (an object is read as in
    /// `accounts`: one parser for every endpoint).
    #[schema(value_type = Vec<Object>)]
    keys: Value,
    /// The provider the keys join; absent: the default provider.
    provider: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ImportText {
    /// The text of an `ollama.txt`-style file.
    #[schema(value_type = String)]
    content: Value,
    provider: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ImportAccounts {
    /// An array of lines and `{"api_key", "username"?}` objects, as the dashboard sends.
    #[schema(value_type = Vec<Object>)]
    accounts: Value,
    provider: Option<String>,
}

#[utoipa::path(post, path = "/admin/api-keys/import", tag = "admin", request_body = ImportKeys,
    responses(
        (status = 200, description = "The keys added, and what was set aside", body = ImportReport),
        (status = 400, description = "`keys` is not an array, or an unknown provider", body = ErrorBody),
    ))]
pub async fn keys(
    _: Admin,
    State(state): State<AppState>,
    AppJson(body): AppJson<ImportKeys>,
) -> Result<Json<ImportReport>, ApiError> {
    let provider = provider_or_default(&state, body.provider.as_deref())?;
    let parsed = parse_entries(array("keys", &body.keys)?);
    import(&state, &provider.spec.name, parsed).await
}

#[utoipa::path(post, path = "/admin/api-keys/import-from-txt", tag = "admin", request_body = ImportText,
    responses(
        (status = 200, description = "The keys added, and what was set aside", body = ImportReport),
        (status = 400, description = "`content` is not a string, or an unknown provider", body = ErrorBody),
    ))]
pub async fn text(
    _: Admin,
    State(state): State<AppState>,
    AppJson(body): AppJson<ImportText>,
) -> Result<Json<ImportReport>, ApiError> {
    let provider = provider_or_default(&state, body.provider.as_deref())?;
    let content =
        body.content.as_str().ok_or_else(|| ApiError::invalid_param("content", "'content' must be a string"))?;
    import(&state, &provider.spec.name, parse_text(content)).await
}

#[utoipa::path(post, path = "/admin/import", tag = "admin", request_body = ImportAccounts,
    responses(
        (status = 200, description = "The keys added, and what was set aside", body = ImportReport),
        (status = 400, description = "`accounts` is not an array, or an unknown provider", body = ErrorBody),
    ))]
pub async fn accounts(
    _: Admin,
    State(state): State<AppState>,
    AppJson(body): AppJson<ImportAccounts>,
) -> Result<Json<ImportReport>, ApiError> {
    let provider = provider_or_default(&state, body.provider.as_deref())?;
    let parsed = parse_entries(array("accounts", &body.accounts)?);
    import(&state, &provider.spec.name, parsed).await
}

fn array<'a>(param: &'static str, value: &'a Value) -> Result<&'a [Value], ApiError> {
    value
        .as_array()
        .map(Vec::as_slice)
        .ok_or_else(|| ApiError::invalid_param(param, format!("'{param}' must be an array")))
}

/// Sets duplicates aside, inserts the rest in one transaction, and reports.
async fn import(state: &AppState, provider: &ProviderName, parsed: Parsed) -> Result<Json<ImportReport>, ApiError> {
    let total = parsed.total();
    let Deduped { fresh, mut duplicates } = dedupe(parsed.keys, &hashes_in_pool(state, provider));
    let (added, already_stored) = insert(state, provider, fresh).await?;
    duplicates.extend(already_stored);
    let invalid = parsed.rejected.len();
    tracing::info!(provider = %provider, total, added, duplicates = duplicates.len(), invalid, "keys imported");
    Ok(Json(ImportReport::of(provider, total, added, duplicates, parsed.rejected)))
}

/// Inserts keys in one transaction and puts them in rotation. Returns how many went in, and the
/// keys the store already held although the pool did not (an import racing this one).
async fn insert(
    state: &AppState,
    provider: &ProviderName,
    fresh: Vec<(ParsedKey, SecretHash)>,
) -> Result<(usize, Vec<Duplicate>), ApiError> {
    let now = state.gateway.clock.now_ms();
    let (keys, lines): (Vec<NewKey>, Vec<usize>) = fresh
        .into_iter()
        .map(|(key, _)| {
            let line = key.line;
            (new_key(provider, key, now), line)
        })
        .unzip();
    let sent: Vec<(KeyId, usize, Secret)> =
        keys.iter().zip(lines).map(|(key, line)| (key.id, line, key.secret.clone())).collect();
    let added: HashSet<KeyId> = state.registry.add_keys(provider, keys).await?.into_iter().collect();
    let already_stored = sent
        .into_iter()
        .filter(|(id, ..)| !added.contains(id))
        .map(|(_, line, secret)| Duplicate { line, masked: mask(secret.expose_secret()), of: DuplicateOf::Pool })
        .collect();
    Ok((added.len(), already_stored))
}

/// The hashes of the keys the provider's pool holds now.
fn hashes_in_pool(state: &AppState, provider: &ProviderName) -> HashSet<SecretHash> {
    let snapshot = state.gateway.pools.pool(provider).map(|p| p.snapshot()).unwrap_or_default();
    snapshot.iter().map(|k| k.secret_hash).collect()
}

fn new_key(provider: &ProviderName, key: ParsedKey, now: UnixMs) -> NewKey {
    NewKey::new(KeyId::from_uuid(Uuid::now_v7()), provider.as_ref(), &key.secret, key.label, now, None)
}

/// One entry of `details`: a rejected line or a duplicate, never a whole key.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub enum Detail {
    Rejected {
        line: usize,
        /// Why the line is not a key.
        error: String,
    },
    Duplicate {
        line: usize,
        /// The key, masked.
        #[serde(rename = "apiKey")]
        api_key: String,
        /// `pool` (already held) or `batch` (earlier in this import).
        duplicate: &'static str,
    },
}

impl Detail {
    fn line(&self) -> usize {
        match self {
            Self::Rejected { line, .. } | Self::Duplicate { line, .. } => *line,
        }
    }
}

impl From<Rejected> for Detail {
    fn from(r: Rejected) -> Self {
        Self::Rejected { line: r.line, error: r.reason }
    }
}

impl From<Duplicate> for Detail {
    fn from(d: Duplicate) -> Self {
        Self::Duplicate { line: d.line, api_key: d.masked, duplicate: d.of.as_str() }
    }
}

/// What an import did: counts of everything, and the lines set aside (at most 10,000).
#[derive(Serialize, ToSchema)]
pub struct ImportReport {
    #[schema(value_type = String)]
    provider: ProviderName,
    /// Lines or entries read.
    total: usize,
    added: usize,
    duplicates: usize,
    invalid: usize,
    details: Vec<Detail>,
    /// `details` was cut at 10,000 entries.
    truncated: bool,
}

impl ImportReport {
    fn of(
        provider: &ProviderName,
        total: usize,
        added: usize,
        duplicates: Vec<Duplicate>,
        rejected: Vec<Rejected>,
    ) -> Self {
        let (duplicate_count, invalid) = (duplicates.len(), rejected.len());
        let mut details: Vec<Detail> =
            rejected.into_iter().map(Detail::from).chain(duplicates.into_iter().map(Detail::from)).collect();
        // Two or three runs already in line order: the stable sort merges them in linear time.
        details.sort_by_key(Detail::line);
        let truncated = details.len() > MAX_DETAILS;
        details.truncate(MAX_DETAILS);
        Self { provider: provider.clone(), total, added, duplicates: duplicate_count, invalid, details, truncated }
    }
}
