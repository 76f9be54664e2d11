//! `/admin/api-keys`: add, list (masked, paged, filtered), edit (label and limits) and delete
//! upstream keys.
//!
//! A key's limits (`rpm`, `maxConcurrent`) make the pool pass it over while it is at them, without
//! blaming it; an edit applies to the next pick.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use pool_core::ids::KeyId;
use pool_core::import::validate_secret;
use pool_core::limit::{MAX_CONCURRENT, MAX_RPM};
use pool_core::pool::{KeyLimits, PoolKey};
use pool_core::ports::NewKey;
use pool_core::registry::{KeyEdit, ttl_to_expiry};
use pool_core::secret::mask;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::{KeyFilter, Page, PageInfo, label, limit, present, provider_or_default, query, select_keys, ttl};
use crate::error::{ApiError, ErrorBody};
use crate::extract::{Admin, AppJson};
use crate::state::AppState;
use crate::wire::{Success, iso};

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateKey {
    /// The upstream key (also read as `apiKey`).
    #[serde(alias = "apiKey")]
    api_key: String,
    /// A label for the key.
    username: Option<String>,
    /// Seconds until the key expires; absent or 0: never.
    ttl: Option<u64>,
    /// The provider the key belongs to; absent: the default provider.
    provider: Option<String>,
    /// Requests per minute this key may take; absent: no limit.
    rpm: Option<u32>,
    /// Requests this key may serve at once; absent: no limit.
    #[serde(rename = "maxConcurrent")]
    max_concurrent: Option<u32>,
}

/// The answer to adding a key: `success: false` when the key was already in the pool (the seed's
/// `success` and `message`; the new fields are camelCase).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct KeyAdded {
    success: bool,
    /// `Added` or `Already exists`.
    message: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    id: Option<KeyId>,
    /// The key, masked.
    #[serde(skip_serializing_if = "Option::is_none")]
    api_key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    provider: Option<pool_core::provider::ProviderName>,
}

#[utoipa::path(post, path = "/admin/api-keys", tag = "admin", request_body = CreateKey,
    responses(
        (status = 200, description = "Added, or already in the pool", body = KeyAdded),
        (status = 400, description = "A malformed key, label, limit or unknown provider", body = ErrorBody),
    ))]
pub async fn create(
    _: Admin,
    State(state): State<AppState>,
    AppJson(body): AppJson<CreateKey>,
) -> Result<Json<KeyAdded>, ApiError> {
    let provider = provider_or_default(&state, body.provider.as_deref())?;
    let secret = parse_secret(&body.api_key)?;
    let now = state.gateway.clock.now_ms();
    let label = label("username", body.username)?;
    let expires_at = ttl_to_expiry(now, ttl("ttl", body.ttl)?);
    let limits = KeyLimits {
        rpm: limit("rpm", body.rpm, MAX_RPM)?,
        max_concurrent: limit("maxConcurrent", body.max_concurrent, MAX_CONCURRENT)?,
    };
    let id = KeyId::from_uuid(Uuid::now_v7());
    let key = NewKey { limits, ..NewKey::new(id, provider.spec.name.as_ref(), secret, label, now, expires_at) };
    let (id, masked) = (key.id, mask(secret));
    let added = state.registry.add_keys(&provider.spec.name, vec![key]).await?;
    Ok(Json(if added.is_empty() {
        KeyAdded { success: false, message: "Already exists", id: None, api_key: None, provider: None }
    } else {
        let provider = Some(provider.spec.name.clone());
        KeyAdded { success: true, message: "Added", id: Some(id), api_key: Some(masked), provider }
    }))
}

/// An edit: absent fields stay, `null` clears.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateKey {
    /// The key's label (also read as `username`).
    #[serde(alias = "username", default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    label: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<u32>)]
    rpm: Option<Option<u32>>,
    #[serde(rename = "maxConcurrent", default, deserialize_with = "present")]
    #[schema(value_type = Option<u32>)]
    max_concurrent: Option<Option<u32>>,
}

#[utoipa::path(patch, path = "/admin/api-keys/{id}", tag = "admin", request_body = UpdateKey,
    params(("id" = String, Path, description = "The key's id")),
    responses(
        (status = 200, description = "The key as edited", body = KeyView),
        (status = 400, description = "A malformed label or limit", body = ErrorBody),
        (status = 404, description = "No key with that id", body = ErrorBody),
    ))]
pub async fn update(
    _: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
    AppJson(body): AppJson<UpdateKey>,
) -> Result<Json<KeyView>, ApiError> {
    let id: KeyId = id.parse().map_err(|_| ApiError::not_found("No key with that id"))?;
    let new_label = body.label.map(|l| label("label", l)).transpose()?;
    let rpm = body.rpm.map(|v| limit("rpm", v, MAX_RPM)).transpose()?;
    let max_concurrent = body.max_concurrent.map(|v| limit("maxConcurrent", v, MAX_CONCURRENT)).transpose()?;
    let edit = |current: KeyEdit| {
        let limits = KeyLimits {
            rpm: rpm.unwrap_or(current.limits.rpm),
            max_concurrent: max_concurrent.unwrap_or(current.limits.max_concurrent),
        };
        Ok::<_, ApiError>(KeyEdit { label: new_label.unwrap_or(current.label), limits })
    };
    let key = state.registry.update_key(id, edit).await?.ok_or_else(|| ApiError::not_found("No key with that id"))?;
    Ok(Json(KeyView::of(&key, state.gateway.clock.now_ms())))
}

/// An upstream key as given, by the one rule of [`validate_secret`].
pub(crate) fn parse_secret(raw: &str) -> Result<&str, ApiError> {
    validate_secret(raw).map_err(|e| ApiError::invalid_param("api_key", e.to_string()))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// A configured provider's name; absent: every provider.
    provider: Option<String>,
    /// `all` (default), `active`, `cooling`, `failed`, `disabled` or `expired`.
    status: Option<String>,
    /// A case-insensitive substring of the label, the start of the id, or the whole secret.
    search: Option<String>,
    /// From 1; clamped into range.
    page: Option<usize>,
    /// 1 to 200 (default 50).
    #[serde(rename = "pageSize")]
    page_size: Option<usize>,
    /// `all`: every matching key on one page.
    fetch: Option<String>,
    /// `created` (default: oldest first) or `requests` (most used first).
    sort: Option<String>,
}

/// A page of keys. Keeps the seed's names (`api_keys` beside `pageSize`, as the seed answered).
#[derive(Serialize, ToSchema)]
pub struct KeyPage {
    api_keys: Vec<KeyView>,
    #[serde(flatten)]
    page: PageInfo,
}

#[utoipa::path(get, path = "/admin/api-keys", tag = "admin", params(ListQuery),
    responses(
        (status = 200, description = "One page of the matching keys, masked", body = KeyPage),
        (status = 400, description = "An unknown provider, status or sort", body = ErrorBody),
    ))]
pub async fn list(
    _: Admin,
    State(state): State<AppState>,
    q: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<KeyPage>, ApiError> {
    let q = query(q)?;
    let now = state.gateway.clock.now_ms();
    let filter = KeyFilter { provider: q.provider, status: q.status, search: q.search };
    let mut keys = filter.keys(&state, now)?;
    match q.sort.as_deref() {
        None | Some("created") => {}
        Some("requests") => {
            keys.sort_by_key(|k| std::cmp::Reverse(k.counters.requests.load(std::sync::atomic::Ordering::Relaxed)))
        }
        Some(_) => return Err(ApiError::invalid_param("sort", "sort is one of created, requests")),
    }
    let page = Page::of(keys.len(), q.page, q.page_size, q.fetch.as_deref() == Some("all"));
    let api_keys = page.slice(&keys).map(|k| KeyView::of(k, now)).collect();
    Ok(Json(KeyPage { api_keys, page: page.info() }))
}

/// One key as listed, masked. Keeps the seed's snake_case names (`api_key`, `created_at`,
/// `total_requests`, `last_used`, ...), which the console and the CLI read; `maxConcurrent` is
/// the camelCase name the create and edit bodies take.
#[derive(Serialize, ToSchema)]
pub struct KeyView {
    #[schema(value_type = String)]
    id: KeyId,
    #[schema(value_type = String)]
    provider: pool_core::provider::ProviderName,
    /// The key, masked (`sk-…abcd`).
    api_key: String,
    /// The key's label.
    username: Option<String>,
    /// `active`, `cooling`, `failed`, `disabled` or `expired`.
    status: &'static str,
    /// Why the key is held, while it is.
    reason: Option<String>,
    since: Option<String>,
    /// When the hold ends; `null`: until enabled (or while not held).
    until: Option<String>,
    created_at: Option<String>,
    expires_at: Option<String>,
    /// What put the hold on, while one is in force.
    cause: Option<&'static str>,
    /// The hold's time is up and the key waits for its probe.
    awaiting_probe: bool,
    /// Consecutive failures.
    strikes: u32,
    /// The models discovered on the key; `null` until discovered.
    models: Option<Vec<String>>,
    last_error: Option<String>,
    total_requests: u64,
    success_count: u64,
    failure_count: u64,
    last_used: Option<String>,
    last_success: Option<String>,
    last_failure: Option<String>,
    rpm: Option<u32>,
    #[serde(rename = "maxConcurrent")]
    max_concurrent: Option<u32>,
}

impl KeyView {
    fn of(key: &PoolKey, now: i64) -> Self {
        use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
        let health = key.health();
        let hold = health.hold.as_ref().filter(|h| h.in_force(now));
        let c = &key.counters;
        let at = |a: &AtomicI64| iso(Some(a.load(Relaxed)).filter(|&v| v != 0));
        let count = |a: &AtomicU64| a.load(Relaxed);
        Self {
            id: key.id,
            provider: key.provider.clone(),
            api_key: mask(key.secret.expose_secret()),
            username: key.label().map(|l| String::clone(&l)),
            status: key.status(now).as_str(),
            reason: hold.map(|h| h.reason.clone()),
            since: iso(hold.map(|h| h.since)),
            until: iso(hold.and_then(|h| h.until)),
            created_at: iso(Some(key.created_at)),
            expires_at: iso(key.expires_at),
            cause: hold.map(|h| h.cause.as_str()),
            awaiting_probe: hold.is_some_and(|h| h.awaiting_probe(now)),
            strikes: health.strikes,
            models: key.models().map(|m| m.names.iter().cloned().collect()),
            last_error: health.hold.as_ref().filter(|h| !h.manual()).map(|h| h.reason.clone()),
            total_requests: count(&c.requests),
            success_count: count(&c.successes),
            failure_count: count(&c.failures),
            last_used: at(&c.last_used),
            last_success: at(&c.last_success),
            last_failure: at(&c.last_failure),
            rpm: key.limits().rpm,
            max_concurrent: key.limits().max_concurrent,
        }
    }
}

/// Names keys by whole secret or by id; one (`apiKey`, `id`) or many (`apiKeys`, `ids`).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeleteKeys {
    /// One whole key (also read as `api_key`).
    #[serde(alias = "api_key")]
    #[serde(rename = "apiKey")]
    api_key: Option<String>,
    #[serde(rename = "apiKeys")]
    api_keys: Option<Vec<String>>,
    id: Option<String>,
    ids: Option<Vec<String>>,
    /// Only keys of this provider.
    provider: Option<String>,
}

/// The seed's answers: `{"success"}` for one key named, with `deleted`, `failed` and `total`
/// when many were.
#[derive(Serialize, ToSchema)]
pub struct Deleted {
    success: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    deleted: Option<usize>,
    /// Named but not found.
    #[serde(skip_serializing_if = "Option::is_none")]
    failed: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    total: Option<usize>,
}

#[utoipa::path(delete, path = "/admin/api-keys", tag = "admin", request_body = DeleteKeys,
    responses(
        (status = 200, description = "How many of the named keys were deleted", body = Deleted),
        (status = 400, description = "No key named, or an unknown provider", body = ErrorBody),
    ))]
pub async fn delete_many(
    _: Admin,
    State(state): State<AppState>,
    AppJson(body): AppJson<DeleteKeys>,
) -> Result<Json<Deleted>, ApiError> {
    let provider = body.provider.as_deref().map(|p| provider_or_default(&state, Some(p))).transpose()?;
    let provider_name = provider.as_ref().map(|p| &p.spec.name);
    let single = body.api_keys.is_none() && body.ids.is_none();
    let secrets: Vec<String> = body.api_key.into_iter().chain(body.api_keys.unwrap_or_default()).collect();
    let raw_ids: Vec<String> = body.id.into_iter().chain(body.ids.unwrap_or_default()).collect();
    let total = secrets.len() + raw_ids.len();
    if total == 0 {
        return Err(ApiError::bad_request("Missing apiKey or apiKeys (or id or ids)"));
    }
    let ids: Vec<KeyId> = select_keys(&state, provider_name, &secrets, &raw_ids).iter().map(|k| k.id).collect();
    let deleted = state.registry.delete_keys(&ids).await?;
    Ok(Json(if single {
        Deleted { success: deleted > 0, deleted: None, failed: None, total: None }
    } else {
        let failed = Some(total.saturating_sub(deleted));
        Deleted { success: true, deleted: Some(deleted), failed, total: Some(total) }
    }))
}

#[utoipa::path(delete, path = "/admin/api-keys/{id}", tag = "admin",
    params(("id" = String, Path, description = "The key's id")),
    responses(
        (status = 200, description = "Deleted", body = Success),
        (status = 404, description = "No key with that id", body = ErrorBody),
    ))]
pub async fn delete_one(
    _: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Success>, ApiError> {
    let id: KeyId = id.parse().map_err(|_| ApiError::not_found("No key with that id"))?;
    match state.registry.delete_keys(&[id]).await? {
        0 => Err(ApiError::not_found("No key with that id")),
        _ => Ok(Json(Success { success: true })),
    }
}
