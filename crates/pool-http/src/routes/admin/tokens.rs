//! `/admin/tokens`: create (the token is shown this once), list, edit and revoke client tokens,
//! with their limits: requests per minute and per UTC day, tokens per UTC day, requests at once,
//! and the models they may use.
//!
//! An edit (`PATCH`) changes only the fields it names; `null` removes a limit, an expiry, a
//! provider scope or a model list. It reaches the running gateway at once: the next request of the
//! token meets the new settings.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use pool_core::UnixMs;
use pool_core::ids::TokenId;
use pool_core::limit::{Limits, MAX_CONCURRENT, MAX_RPD, MAX_RPM, MAX_TPD};
use pool_core::model_name;
use pool_core::ports::TokenRecord;
use pool_core::provider::ProviderName;
use pool_core::registry::ttl_to_expiry;
use pool_core::secret::{TOKEN_BYTES, format_token, hash_secret, token_prefix};
use pool_core::token::{ClientToken, TokenSettings};
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use super::{id_list, label, limit, present, provider_or_default, query, ttl};
use crate::error::ApiError;
use crate::extract::{Admin, AppJson};
use crate::state::AppState;
use crate::wire::iso;

/// Most entries in a token's model allow-list.
const MAX_MODELS: usize = 1000;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    name: Option<String>,
    #[serde(rename = "expiresIn", alias = "ttl")]
    expires_in: Option<u64>,
    provider: Option<String>,
    providers: Option<Vec<String>>,
    rpm: Option<u32>,
    rpd: Option<u64>,
    tpd: Option<u64>,
    #[serde(rename = "maxConcurrent")]
    max_concurrent: Option<u32>,
    models: Option<Vec<String>>,
}

pub async fn create(
    _: Admin,
    State(state): State<AppState>,
    AppJson(body): AppJson<CreateToken>,
) -> Result<Json<Value>, ApiError> {
    let providers = scope(&state, body.provider, body.providers)?;
    let limits = limits(body.rpm, body.rpd, body.tpd, body.max_concurrent)?;
    let models = model_list(body.models)?;
    let now = state.gateway.clock.now_ms();
    let token = mint_token()?;
    let record = TokenRecord {
        id: TokenId::from_uuid(Uuid::now_v7()),
        name: label("name", body.name)?.unwrap_or_else(|| "unnamed".to_owned()),
        prefix: token_prefix(&token),
        hash: hash_secret(&token),
        providers: providers.map(|list| list.iter().map(ToString::to_string).collect()),
        created_at: now,
        expires_at: ttl_to_expiry(now, ttl("expiresIn", body.expires_in)?),
        requests: 0,
        last_used: None,
        limits,
        models,
    };
    let created = state.registry.add_token(record).await?;
    let mut shown = token_json(&created, now);
    shown["token"] = Value::String(token);
    Ok(Json(shown))
}

/// A fresh token from the OS CSPRNG.
fn mint_token() -> Result<String, ApiError> {
    let mut random = [0u8; TOKEN_BYTES];
    getrandom::fill(&mut random).map_err(|e| ApiError::internal("the OS random source failed", &e))?;
    Ok(format_token(&random))
}

/// An edit: absent fields stay, `null` clears.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateToken {
    name: Option<String>,
    #[serde(rename = "expiresIn", alias = "ttl", default, deserialize_with = "present")]
    expires_in: Option<Option<u64>>,
    provider: Option<String>,
    #[serde(default, deserialize_with = "present")]
    providers: Option<Option<Vec<String>>>,
    #[serde(default, deserialize_with = "present")]
    rpm: Option<Option<u32>>,
    #[serde(default, deserialize_with = "present")]
    rpd: Option<Option<u64>>,
    #[serde(default, deserialize_with = "present")]
    tpd: Option<Option<u64>>,
    #[serde(rename = "maxConcurrent", default, deserialize_with = "present")]
    max_concurrent: Option<Option<u32>>,
    #[serde(default, deserialize_with = "present")]
    models: Option<Option<Vec<String>>>,
}

pub async fn update(
    _: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
    AppJson(body): AppJson<UpdateToken>,
) -> Result<Json<Value>, ApiError> {
    let id: TokenId = id.parse().map_err(|_| ApiError::not_found("No token with that id"))?;
    let now = state.gateway.clock.now_ms();
    let edit = Edit::parse(&state, body, now)?;
    let updated = state.registry.update_token(id, |current| Ok::<_, ApiError>(edit.apply(current))).await?;
    let token = updated.ok_or_else(|| ApiError::not_found("No token with that id"))?;
    Ok(Json(token_json(&token, now)))
}

/// An edit, validated: `Some(new value)` for each field it changes.
struct Edit {
    name: Option<String>,
    expires_at: Option<Option<UnixMs>>,
    providers: Option<Option<Vec<ProviderName>>>,
    rpm: Option<Option<u32>>,
    rpd: Option<Option<u64>>,
    tpd: Option<Option<u64>>,
    max_concurrent: Option<Option<u32>>,
    models: Option<Option<Vec<String>>>,
}

impl Edit {
    fn parse(state: &AppState, body: UpdateToken, now: UnixMs) -> Result<Self, ApiError> {
        let providers = match (body.provider, body.providers) {
            (None, None) => None,
            (None, Some(None)) => Some(None),
            (one, many) => Some(scope(state, one, many.flatten())?),
        };
        let expires_at = body.expires_in.map(|s| ttl("expiresIn", s).map(|s| ttl_to_expiry(now, s))).transpose()?;
        Ok(Self {
            name: body
                .name
                .map(|n| label("name", Some(n)).map(|l| l.unwrap_or_else(|| "unnamed".to_owned())))
                .transpose()?,
            expires_at,
            providers,
            rpm: body.rpm.map(|v| limit("rpm", v, MAX_RPM)).transpose()?,
            rpd: body.rpd.map(|v| limit("rpd", v, MAX_RPD)).transpose()?,
            tpd: body.tpd.map(|v| limit("tpd", v, MAX_TPD)).transpose()?,
            max_concurrent: body.max_concurrent.map(|v| limit("maxConcurrent", v, MAX_CONCURRENT)).transpose()?,
            models: body.models.map(model_list).transpose()?,
        })
    }

    fn apply(self, current: &TokenSettings) -> TokenSettings {
        let limits = Limits {
            rpm: self.rpm.unwrap_or(current.limits.rpm),
            rpd: self.rpd.unwrap_or(current.limits.rpd),
            tpd: self.tpd.unwrap_or(current.limits.tpd),
            max_concurrent: self.max_concurrent.unwrap_or(current.limits.max_concurrent),
        };
        TokenSettings {
            name: self.name.unwrap_or_else(|| current.name.clone()),
            providers: self.providers.unwrap_or_else(|| current.providers.clone()),
            expires_at: self.expires_at.unwrap_or(current.expires_at),
            limits,
            models: self.models.unwrap_or_else(|| current.models.clone()),
        }
    }
}

/// The providers a token is scoped to (`provider` and `providers` together); `None`: all.
fn scope(
    state: &AppState,
    one: Option<String>,
    many: Option<Vec<String>>,
) -> Result<Option<Vec<ProviderName>>, ApiError> {
    if one.is_none() && many.is_none() {
        return Ok(None);
    }
    let names = one.into_iter().chain(many.unwrap_or_default());
    names.map(|p| provider_or_default(state, Some(&p)).map(|p| p.spec.name.clone())).collect::<Result<_, _>>().map(Some)
}

fn limits(
    rpm: Option<u32>,
    rpd: Option<u64>,
    tpd: Option<u64>,
    max_concurrent: Option<u32>,
) -> Result<Limits, ApiError> {
    Ok(Limits {
        rpm: limit("rpm", rpm, MAX_RPM)?,
        rpd: limit("rpd", rpd, MAX_RPD)?,
        tpd: limit("tpd", tpd, MAX_TPD)?,
        max_concurrent: limit("maxConcurrent", max_concurrent, MAX_CONCURRENT)?,
    })
}

/// A model allow-list: 1 to 1000 names, each like a request's `model` (an entry ending in `*`
/// matches by prefix); repeats are dropped.
fn model_list(models: Option<Vec<String>>) -> Result<Option<Vec<String>>, ApiError> {
    let Some(list) = models else { return Ok(None) };
    if list.is_empty() || list.len() > MAX_MODELS {
        return Err(ApiError::invalid_param(
            "models",
            format!("'models' must list 1 to {MAX_MODELS} model names (null or absent: every model)"),
        ));
    }
    if !list.iter().all(|m| model_name::is_valid(m)) {
        return Err(ApiError::invalid_param(
            "models",
            format!("each entry of 'models' must be 1-{} characters without control characters", model_name::MAX_CHARS),
        ));
    }
    let mut unique: Vec<String> = Vec::with_capacity(list.len());
    for model in list {
        if !unique.contains(&model) {
            unique.push(model);
        }
    }
    Ok(Some(unique))
}

#[derive(Deserialize)]
pub struct ListQuery {
    /// A case-insensitive substring of the name, or the start of the display prefix.
    search: Option<String>,
}

pub async fn list(
    _: Admin,
    State(state): State<AppState>,
    q: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let q = query(q)?;
    let now = state.gateway.clock.now_ms();
    let needle = q.search.as_deref().map(str::trim).filter(|s| !s.is_empty()).map(str::to_lowercase);
    let tokens: Vec<Value> = state
        .registry
        .tokens
        .all()
        .iter()
        .filter(|t| needle.as_deref().is_none_or(|n| matches_search(t, n)))
        .map(|t| token_json(t, now))
        .collect();
    Ok(Json(json!({"tokens": tokens})))
}

/// A search (already lowercased) matches a name by substring or a display prefix by its start.
fn matches_search(token: &ClientToken, needle: &str) -> bool {
    token.settings().name.to_lowercase().contains(needle) || token.prefix.to_lowercase().starts_with(needle)
}

/// Most tokens one bulk revocation may name.
const MAX_REVOKE: usize = 10_000;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RevokeMany {
    ids: Vec<String>,
}

/// Revokes many tokens in one store write; unknown ids are not found, malformed ones refused.
pub async fn revoke_many(
    _: Admin,
    State(state): State<AppState>,
    AppJson(body): AppJson<RevokeMany>,
) -> Result<Json<Value>, ApiError> {
    let ids: Vec<TokenId> = id_list(&body.ids, MAX_REVOKE, "token")?;
    let revoked = state.registry.revoke_tokens(&ids).await?;
    Ok(Json(json!({"success": true, "revoked": revoked, "total": ids.len()})))
}

pub async fn revoke(_: Admin, State(state): State<AppState>, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    let id: TokenId = id.parse().map_err(|_| ApiError::not_found("No token with that id"))?;
    if state.registry.revoke_token(id).await? {
        Ok(Json(json!({"success": true})))
    } else {
        Err(ApiError::not_found("No token with that id"))
    }
}

fn token_json(token: &ClientToken, now: i64) -> Value {
    use std::sync::atomic::Ordering::Relaxed;
    let last_used = Some(token.last_used.load(Relaxed)).filter(|&v| v != 0);
    let settings = token.settings();
    let limits = &settings.limits;
    json!({
        "id": token.id,
        "name": settings.name,
        "prefix": token.prefix,
        "providers": settings.providers,
        "createdAt": iso(Some(token.created_at)),
        "expiresAt": iso(settings.expires_at),
        "expired": settings.is_expired(now),
        "requestCount": token.requests.load(Relaxed),
        "lastUsedAt": iso(last_used),
        "rpm": limits.rpm,
        "rpd": limits.rpd,
        "tpd": limits.tpd,
        "maxConcurrent": limits.max_concurrent,
        "models": settings.models,
    })
}
