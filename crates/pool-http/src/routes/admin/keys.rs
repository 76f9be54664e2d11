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
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use super::{KeyFilter, Page, label, limit, present, provider_or_default, query, select_keys, ttl};
use crate::error::ApiError;
use crate::extract::{Admin, AppJson};
use crate::state::AppState;
use crate::wire::iso;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateKey {
    #[serde(alias = "apiKey")]
    api_key: String,
    username: Option<String>,
    ttl: Option<u64>,
    provider: Option<String>,
    rpm: Option<u32>,
    #[serde(rename = "maxConcurrent")]
    max_concurrent: Option<u32>,
}

pub async fn create(
    _: Admin,
    State(state): State<AppState>,
    AppJson(body): AppJson<CreateKey>,
) -> Result<Json<Value>, ApiError> {
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
        json!({"success": false, "message": "Already exists"})
    } else {
        json!({"success": true, "message": "Added", "id": id, "apiKey": masked, "provider": provider.spec.name})
    }))
}

/// An edit: absent fields stay, `null` clears.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateKey {
    #[serde(alias = "username", default, deserialize_with = "present")]
    label: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    rpm: Option<Option<u32>>,
    #[serde(rename = "maxConcurrent", default, deserialize_with = "present")]
    max_concurrent: Option<Option<u32>>,
}

pub async fn update(
    _: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
    AppJson(body): AppJson<UpdateKey>,
) -> Result<Json<Value>, ApiError> {
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
    Ok(Json(key_json(&key, state.gateway.clock.now_ms())))
}

/// An upstream key as given, by the one rule of [`validate_secret`].
pub(crate) fn parse_secret(raw: &str) -> Result<&str, ApiError> {
    validate_secret(raw).map_err(|e| ApiError::invalid_param("api_key", e.to_string()))
}

#[derive(Deserialize)]
pub struct ListQuery {
    provider: Option<String>,
    status: Option<String>,
    search: Option<String>,
    page: Option<usize>,
    #[serde(rename = "pageSize")]
    page_size: Option<usize>,
    fetch: Option<String>,
    /// `created` (default: oldest first) or `requests` (most used first).
    sort: Option<String>,
}

pub async fn list(
    _: Admin,
    State(state): State<AppState>,
    q: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
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
    let items: Vec<Value> = page.slice(&keys).map(|k| key_json(k, now)).collect();
    let (total, page_size, total_pages, page) = (page.total, page.page_size, page.total_pages(), page.page);
    Ok(Json(json!({"api_keys": items, "total": total, "page": page, "pageSize": page_size, "totalPages": total_pages})))
}

fn key_json(key: &PoolKey, now: i64) -> Value {
    let health = key.health();
    let hold = health.hold.as_ref().filter(|h| h.in_force(now));
    let c = &key.counters;
    let load =
        |a: &std::sync::atomic::AtomicI64| Some(a.load(std::sync::atomic::Ordering::Relaxed)).filter(|&v| v != 0);
    let count = |a: &std::sync::atomic::AtomicU64| a.load(std::sync::atomic::Ordering::Relaxed);
    json!({
        "id": key.id,
        "provider": key.provider,
        "api_key": mask(key.secret.expose_secret()),
        "username": key.label().as_deref(),
        "status": key.status(now).as_str(),
        "reason": hold.map(|h| h.reason.clone()),
        "since": iso(hold.map(|h| h.since)),
        "until": iso(hold.and_then(|h| h.until)),
        "created_at": iso(Some(key.created_at)),
        "expires_at": iso(key.expires_at),
        "cause": hold.map(|h| h.cause.as_str()),
        "awaiting_probe": hold.is_some_and(|h| h.awaiting_probe(now)),
        "strikes": health.strikes,
        "models": key.models().map(|m| m.names.iter().cloned().collect::<Vec<_>>()),
        "last_error": health.hold.as_ref().filter(|h| !h.manual()).map(|h| h.reason.clone()),
        "total_requests": count(&c.requests),
        "success_count": count(&c.successes),
        "failure_count": count(&c.failures),
        "last_used": iso(load(&c.last_used)),
        "last_success": iso(load(&c.last_success)),
        "last_failure": iso(load(&c.last_failure)),
        "rpm": key.limits().rpm,
        "maxConcurrent": key.limits().max_concurrent,
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeleteKeys {
    #[serde(alias = "api_key")]
    #[serde(rename = "apiKey")]
    api_key: Option<String>,
    #[serde(rename = "apiKeys")]
    api_keys: Option<Vec<String>>,
    id: Option<String>,
    ids: Option<Vec<String>>,
    provider: Option<String>,
}

pub async fn delete_many(
    _: Admin,
    State(state): State<AppState>,
    AppJson(body): AppJson<DeleteKeys>,
) -> Result<Json<Value>, ApiError> {
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
        json!({"success": deleted > 0})
    } else {
        json!({"success": true, "deleted": deleted, "failed": total.saturating_sub(deleted), "total": total})
    }))
}

pub async fn delete_one(
    _: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id: KeyId = id.parse().map_err(|_| ApiError::not_found("No key with that id"))?;
    match state.registry.delete_keys(&[id]).await? {
        0 => Err(ApiError::not_found("No key with that id")),
        _ => Ok(Json(json!({"success": true}))),
    }
}
