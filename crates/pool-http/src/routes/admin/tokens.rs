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
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::{id_list, label, limit, present, provider_or_default, query, ttl};
use crate::error::{ApiError, ErrorBody};
use crate::extract::{Admin, AppJson};
use crate::state::AppState;
use crate::wire::{Success, iso};

/// Most entries in a token's model allow-list.
const MAX_MODELS: usize = 1000;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    /// Default `unnamed`.
    name: Option<String>,
    /// Seconds until the token expires (also read as `ttl`); absent: never.
    #[serde(rename = "expiresIn", alias = "ttl")]
    expires_in: Option<u64>,
    /// One provider the token may use; with `providers`, the union. Absent: every provider.
    provider: Option<String>,
    providers: Option<Vec<String>>,
    /// Requests per minute; absent: no limit.
    rpm: Option<u32>,
    /// Requests per UTC day.
    rpd: Option<u64>,
    /// Tokens per UTC day.
    tpd: Option<u64>,
    /// Requests at once.
    #[serde(rename = "maxConcurrent")]
    max_concurrent: Option<u32>,
    /// The models the token may use (an entry ending in `*` matches by prefix); absent: every model.
    models: Option<Vec<String>>,
}

/// A new token: the only answer that carries the whole token.
#[derive(Serialize, ToSchema)]
pub struct CreatedToken {
    #[serde(flatten)]
    view: TokenView,
    /// The token itself, shown this once.
    token: String,
}

#[utoipa::path(post, path = "/admin/tokens", tag = "admin", request_body = CreateToken,
    responses(
        (status = 200, description = "The token, shown this once", body = CreatedToken),
        (status = 400, description = "A malformed name, limit, model list or unknown provider", body = ErrorBody),
    ))]
pub async fn create(
    _: Admin,
    State(state): State<AppState>,
    AppJson(body): AppJson<CreateToken>,
) -> Result<Json<CreatedToken>, ApiError> {
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
    Ok(Json(CreatedToken { view: TokenView::of(&created, now), token }))
}

/// A fresh token from the OS CSPRNG.
fn mint_token() -> Result<String, ApiError> {
    let mut random = [0u8; TOKEN_BYTES];
    getrandom::fill(&mut random).map_err(|e| ApiError::internal("the OS random source failed", &e))?;
    Ok(format_token(&random))
}

/// An edit: absent fields stay, `null` clears.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateToken {
    name: Option<String>,
    /// Seconds from now (also read as `ttl`); `null`: never expires.
    #[serde(rename = "expiresIn", alias = "ttl", default, deserialize_with = "present")]
    #[schema(value_type = Option<u64>)]
    expires_in: Option<Option<u64>>,
    provider: Option<String>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Vec<String>>)]
    providers: Option<Option<Vec<String>>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<u32>)]
    rpm: Option<Option<u32>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<u64>)]
    rpd: Option<Option<u64>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<u64>)]
    tpd: Option<Option<u64>>,
    #[serde(rename = "maxConcurrent", default, deserialize_with = "present")]
    #[schema(value_type = Option<u32>)]
    max_concurrent: Option<Option<u32>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Vec<String>>)]
    models: Option<Option<Vec<String>>>,
}

#[utoipa::path(patch, path = "/admin/tokens/{id}", tag = "admin", request_body = UpdateToken,
    params(("id" = String, Path, description = "The token's id")),
    responses(
        (status = 200, description = "The token as edited", body = TokenView),
        (status = 400, description = "A malformed field", body = ErrorBody),
        (status = 404, description = "No token with that id", body = ErrorBody),
    ))]
pub async fn update(
    _: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
    AppJson(body): AppJson<UpdateToken>,
) -> Result<Json<TokenView>, ApiError> {
    let id: TokenId = id.parse().map_err(|_| ApiError::not_found("No token with that id"))?;
    let now = state.gateway.clock.now_ms();
    let edit = Edit::parse(&state, body, now)?;
    let updated = state.registry.update_token(id, |current| Ok::<_, ApiError>(edit.apply(current))).await?;
    let token = updated.ok_or_else(|| ApiError::not_found("No token with that id"))?;
    Ok(Json(TokenView::of(&token, now)))
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

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// A case-insensitive substring of the name, or the start of the display prefix.
    search: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct TokenList {
    tokens: Vec<TokenView>,
}

#[utoipa::path(get, path = "/admin/tokens", tag = "admin", params(ListQuery),
    responses((status = 200, description = "The matching tokens (never the tokens themselves)", body = TokenList)))]
pub async fn list(
    _: Admin,
    State(state): State<AppState>,
    q: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<TokenList>, ApiError> {
    let q = query(q)?;
    let now = state.gateway.clock.now_ms();
    let needle = q.search.as_deref().map(str::trim).filter(|s| !s.is_empty()).map(str::to_lowercase);
    let tokens = state
        .registry
        .tokens
        .all()
        .iter()
        .filter(|t| needle.as_deref().is_none_or(|n| matches_search(t, n)))
        .map(|t| TokenView::of(t, now))
        .collect();
    Ok(Json(TokenList { tokens }))
}

/// A search (already lowercased) matches a name by substring or a display prefix by its start.
fn matches_search(token: &ClientToken, needle: &str) -> bool {
    token.settings().name.to_lowercase().contains(needle) || token.prefix.to_lowercase().starts_with(needle)
}

/// Most tokens one bulk revocation may name.
const MAX_REVOKE: usize = 10_000;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RevokeMany {
    /// 1 to 10,000 token ids.
    ids: Vec<String>,
}

#[derive(Serialize, ToSchema)]
pub struct Revoked {
    success: bool,
    /// Tokens revoked (unknown ids are not found).
    revoked: usize,
    total: usize,
}

/// Revokes many tokens in one store write; unknown ids are not found, malformed ones refused.
#[utoipa::path(post, path = "/admin/tokens/bulk-revoke", tag = "admin", request_body = RevokeMany,
    responses(
        (status = 200, description = "How many were revoked", body = Revoked),
        (status = 400, description = "No ids, too many, or a malformed one", body = ErrorBody),
    ))]
pub async fn revoke_many(
    _: Admin,
    State(state): State<AppState>,
    AppJson(body): AppJson<RevokeMany>,
) -> Result<Json<Revoked>, ApiError> {
    let ids: Vec<TokenId> = id_list(&body.ids, MAX_REVOKE, "token")?;
    let revoked = state.registry.revoke_tokens(&ids).await?;
    Ok(Json(Revoked { success: true, revoked, total: ids.len() }))
}

#[utoipa::path(delete, path = "/admin/tokens/{id}", tag = "admin",
    params(("id" = String, Path, description = "The token's id")),
    responses(
        (status = 200, description = "Revoked", body = Success),
        (status = 404, description = "No token with that id", body = ErrorBody),
    ))]
pub async fn revoke(
    _: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Success>, ApiError> {
    let id: TokenId = id.parse().map_err(|_| ApiError::not_found("No token with that id"))?;
    if state.registry.revoke_token(id).await? {
        Ok(Json(Success { success: true }))
    } else {
        Err(ApiError::not_found("No token with that id"))
    }
}

/// A client token as listed: never the token itself, only its display prefix (the seed's
/// `createdAt`, `expiresAt`, `requestCount`, camelCase like them).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TokenView {
    #[schema(value_type = String)]
    id: TokenId,
    name: String,
    /// The token's first characters, to recognise it by.
    prefix: String,
    /// The providers the token may use; `null`: every provider.
    #[schema(value_type = Option<Vec<String>>)]
    providers: Option<Vec<ProviderName>>,
    created_at: Option<String>,
    expires_at: Option<String>,
    expired: bool,
    request_count: u64,
    last_used_at: Option<String>,
    rpm: Option<u32>,
    rpd: Option<u64>,
    tpd: Option<u64>,
    max_concurrent: Option<u32>,
    /// The models the token may use; `null`: every model.
    models: Option<Vec<String>>,
}

impl TokenView {
    fn of(token: &ClientToken, now: i64) -> Self {
        use std::sync::atomic::Ordering::Relaxed;
        let last_used = Some(token.last_used.load(Relaxed)).filter(|&v| v != 0);
        let settings = token.settings();
        let limits = &settings.limits;
        Self {
            id: token.id,
            name: settings.name.clone(),
            prefix: token.prefix.clone(),
            providers: settings.providers.clone(),
            created_at: iso(Some(token.created_at)),
            expires_at: iso(settings.expires_at),
            expired: settings.is_expired(now),
            request_count: token.requests.load(Relaxed),
            last_used_at: iso(last_used),
            rpm: limits.rpm,
            rpd: limits.rpd,
            tpd: limits.tpd,
            max_concurrent: limits.max_concurrent,
            models: settings.models.clone(),
        }
    }
}
