//! The admin API (admin token required): upstream keys, client tokens, the response cache.

pub mod bulk;
pub mod cache;
pub mod control;
pub mod export;
pub mod import;
pub mod keys;
pub mod providers;
pub mod requests;
pub mod settings;
pub mod stats;
pub mod tokens;
pub mod traffic;
pub mod trend;
pub mod validate;

use std::collections::BTreeMap;
use std::sync::Arc;

use pool_core::UnixMs;
use pool_core::ids::KeyId;
use pool_core::key::KeyStatus;
use pool_core::pool::PoolKey;
use pool_core::provider::ProviderName;
use pool_core::secret::hash_secret;

use axum::extract::Query;
use axum::extract::rejection::QueryRejection;
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::ToSchema;

use crate::error::ApiError;
use crate::state::{AppState, ProviderRuntime};

/// A query string, or a 400 in our shape.
pub(crate) fn query<T>(query: Result<Query<T>, QueryRejection>) -> Result<T, ApiError> {
    query.map(|Query(q)| q).map_err(|e| ApiError::bad_request(format!("Invalid query string: {}", e.body_text())))
}

/// The named provider, or the default one; 400 for a name that is not configured.
pub(crate) fn provider_or_default(state: &AppState, name: Option<&str>) -> Result<Arc<ProviderRuntime>, ApiError> {
    let name = name.unwrap_or(state.providers.default.as_ref());
    state
        .providers
        .get(name)
        .cloned()
        .ok_or_else(|| ApiError::invalid_param("provider", format!("Unknown provider '{name}'")))
}

/// A label or name, by the one rule for labels (`pool_core::import::validate_label`).
pub(crate) fn label(param: &'static str, value: Option<String>) -> Result<Option<String>, ApiError> {
    let Some(value) = value else { return Ok(None) };
    pool_core::import::validate_label(&value).map_err(|_| {
        let max = pool_core::import::MAX_LABEL_CHARS;
        ApiError::invalid_param(param, format!("'{param}' must be at most {max} characters without control characters"))
    })
}

/// Seconds of a time-to-live, refusing more than ten years.
pub(crate) fn ttl(param: &'static str, seconds: Option<u64>) -> Result<Option<u64>, ApiError> {
    const TEN_YEARS: u64 = 10 * 366 * 86_400;
    match seconds {
        Some(s) if s > TEN_YEARS => {
            Err(ApiError::invalid_param(param, format!("'{param}' must be at most {TEN_YEARS} seconds")))
        }
        other => Ok(other.filter(|&s| s > 0)),
    }
}

/// A limit an operator sets: 1 to `max`, or `None` for no limit (0 is refused: it would read as
/// "none" to some and "nothing" to others).
pub(crate) fn limit<T>(param: &'static str, value: Option<T>, max: T) -> Result<Option<T>, ApiError>
where
    T: Copy + PartialOrd + From<u8> + std::fmt::Display,
{
    match value {
        Some(v) if v < T::from(1) || v > max => Err(ApiError::invalid_param(
            param,
            format!("'{param}' must be between 1 and {max} (null or absent: no limit)"),
        )),
        other => Ok(other),
    }
}

/// For edits: a field that is absent (`None`: unchanged), `null` (`Some(None)`: cleared) or set.
/// Use with `#[serde(default, deserialize_with = "present")]`.
pub(crate) fn present<'de, T: Deserialize<'de>, D: Deserializer<'de>>(d: D) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// A list of ids in a bulk call: 1 to `max` entries, each a well-formed id (`what`: "key",
/// "token"); 400 otherwise, naming `ids`.
pub(crate) fn id_list<T: std::str::FromStr>(raw: &[String], max: usize, what: &str) -> Result<Vec<T>, ApiError> {
    if raw.is_empty() || raw.len() > max {
        return Err(ApiError::invalid_param("ids", format!("'ids' must name 1 to {max} {what}s")));
    }
    raw.iter()
        .map(|id| id.trim().parse::<T>())
        .collect::<Result<_, _>>()
        .map_err(|_| ApiError::invalid_param("ids", format!("each entry of 'ids' must be a {what} id")))
}

/// The keys an operator names: by whole secret (matched by hash) or by id, within `provider` if
/// given. Unknown names are simply not found.
pub(crate) fn select_keys(
    state: &AppState,
    provider: Option<&ProviderName>,
    secrets: &[String],
    ids: &[String],
) -> Vec<Arc<PoolKey>> {
    let pools = &state.gateway.pools;
    let mut keys: Vec<Arc<PoolKey>> =
        secrets.iter().flat_map(|s| pools.find_by_secret(provider, &hash_secret(s.trim()))).collect();
    keys.extend(
        ids.iter()
            .filter_map(|raw| raw.trim().parse::<KeyId>().ok())
            .filter_map(|id| pools.find(id))
            .filter(|k| provider.is_none_or(|p| *p == k.provider)),
    );
    keys.sort_by_key(|k| k.id);
    keys.dedup_by_key(|k| k.id);
    keys
}

/// A `status` filter: `all` (or nothing) or one key status.
pub(crate) fn status_filter(raw: Option<&str>) -> Result<Option<KeyStatus>, ApiError> {
    match raw.map(str::to_ascii_lowercase).as_deref() {
        None | Some("" | "all") => Ok(None),
        Some(s) => KeyStatus::parse(s).map(Some).ok_or_else(|| {
            ApiError::invalid_param("status", "status is one of all, active, cooling, failed, disabled, expired")
        }),
    }
}

/// The filter of a key listing: by provider, status and search. The listing, the export and the
/// bulk actions all read it from the same three fields and apply it here, so "the keys matching
/// the filter" means one thing everywhere.
#[derive(Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct KeyFilter {
    /// A configured provider's name; absent: every provider.
    pub provider: Option<String>,
    /// `all` (or absent), `active`, `cooling`, `failed`, `disabled` or `expired`.
    pub status: Option<String>,
    /// A case-insensitive substring of the label, the start of the id, or the whole secret.
    pub search: Option<String>,
}

impl KeyFilter {
    /// The matching keys, oldest first; 400 for an unknown provider or status.
    pub(crate) fn keys(&self, state: &AppState, now: UnixMs) -> Result<Vec<Arc<PoolKey>>, ApiError> {
        let provider = self.provider.as_deref().filter(|p| !p.is_empty());
        let provider = provider.map(|p| provider_or_default(state, Some(p))).transpose()?;
        let status = status_filter(self.status.as_deref())?;
        Ok(listed_keys(state, provider.as_ref().map(|p| &p.spec.name), status, self.search.as_deref(), now))
    }
}

/// The keys of a listing, oldest first: by provider, status (at `now`) and search.
pub(crate) fn listed_keys(
    state: &AppState,
    provider: Option<&ProviderName>,
    status: Option<KeyStatus>,
    search: Option<&str>,
    now: UnixMs,
) -> Vec<Arc<PoolKey>> {
    let search = search.map(str::trim).filter(|s| !s.is_empty());
    let mut keys: Vec<Arc<PoolKey>> = state
        .gateway
        .pools
        .all_keys()
        .into_iter()
        .filter(|k| provider.is_none_or(|p| *p == k.provider))
        .filter(|k| status.is_none_or(|s| k.status(now) == s))
        .filter(|k| search.is_none_or(|s| matches_search(k, s)))
        .collect();
    keys.sort_by_key(|k| (k.created_at, k.id));
    keys
}

/// A search matches a label (case-insensitive substring), an id prefix, or the whole secret.
/// Never a substring of a secret: the list must not become an oracle for key material.
pub(crate) fn matches_search(key: &PoolKey, search: &str) -> bool {
    let needle = search.to_lowercase();
    key.label().is_some_and(|l| l.to_lowercase().contains(&needle))
        || key.id.to_string().starts_with(&needle)
        || key.secret_hash == hash_secret(search)
}

/// One page of a listing: `page` is clamped into range, `page_size` to 1..=200 (50 by default).
pub(crate) struct Page {
    pub page: usize,
    pub page_size: usize,
    pub total: usize,
}

impl Page {
    pub fn of(total: usize, page: Option<usize>, page_size: Option<usize>, all: bool) -> Self {
        let page_size = if all { total.max(1) } else { page_size.unwrap_or(50).clamp(1, 200) };
        let page = page.unwrap_or(1).clamp(1, total.div_ceil(page_size).max(1));
        Self { page, page_size, total }
    }

    pub fn total_pages(&self) -> usize {
        self.total.div_ceil(self.page_size).max(1)
    }

    /// The page's place in the listing, as the listings answer it.
    pub fn info(&self) -> PageInfo {
        PageInfo { total: self.total, page: self.page, page_size: self.page_size, total_pages: self.total_pages() }
    }

    pub fn slice<'a, T>(&self, items: &'a [T]) -> impl Iterator<Item = &'a T> {
        items.iter().skip((self.page - 1) * self.page_size).take(self.page_size)
    }
}

/// Where a page sits in a listing (the seed's `total`, `page`, `pageSize`, `totalPages`).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PageInfo {
    /// Entries matching the filter, on every page.
    pub total: usize,
    pub page: usize,
    pub page_size: usize,
    pub total_pages: usize,
}

/// How many keys there are, and how many in each state (every state is listed, 0 included).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct KeyCounts {
    pub total: usize,
    #[schema(value_type = BTreeMap<String, usize>)]
    pub by_status: BTreeMap<&'static str, usize>,
}

impl KeyCounts {
    /// The keys of `provider` now.
    pub(crate) fn of(state: &AppState, provider: &ProviderName, now: UnixMs) -> Self {
        let (total, by_status) = key_counts(state, provider, now);
        Self { total, by_status }
    }
}

/// How many keys of a provider are in each state now.
pub(crate) fn key_counts(
    state: &AppState,
    provider: &ProviderName,
    now: UnixMs,
) -> (usize, BTreeMap<&'static str, usize>) {
    let keys = state.gateway.pools.pool(provider).map(|p| p.snapshot()).unwrap_or_default();
    let mut counts: BTreeMap<&'static str, usize> =
        [KeyStatus::Active, KeyStatus::Cooling, KeyStatus::Failed, KeyStatus::Disabled, KeyStatus::Expired]
            .iter()
            .map(|s| (s.as_str(), 0))
            .collect();
    for key in keys.iter() {
        *counts.entry(key.status(now).as_str()).or_default() += 1;
    }
    (keys.len(), counts)
}
