//! `/admin/tokens`: create (the token is shown this once), list, revoke client tokens.

use axum::Json;
use axum::extract::{Path, State};
use pool_core::ids::TokenId;
use pool_core::ports::TokenRecord;
use pool_core::registry::ttl_to_expiry;
use pool_core::secret::{TOKEN_BYTES, format_token, hash_secret, token_prefix};
use pool_core::token::ClientToken;
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use super::{label, provider_or_default, ttl};
use crate::error::ApiError;
use crate::extract::{Admin, AppJson};
use crate::state::AppState;
use crate::wire::iso;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    name: Option<String>,
    #[serde(rename = "expiresIn", alias = "ttl")]
    expires_in: Option<u64>,
    provider: Option<String>,
    providers: Option<Vec<String>>,
}

pub async fn create(
    _: Admin,
    State(state): State<AppState>,
    AppJson(body): AppJson<CreateToken>,
) -> Result<Json<Value>, ApiError> {
    let providers = match (body.provider, body.providers) {
        (None, None) => None,
        (one, many) => Some(
            one.into_iter()
                .chain(many.unwrap_or_default())
                .map(|p| provider_or_default(&state, Some(&p)).map(|p| p.spec.name.to_string()))
                .collect::<Result<Vec<_>, _>>()?,
        ),
    };
    let now = state.gateway.clock.now_ms();
    let token = mint_token()?;
    let record = TokenRecord {
        id: TokenId::from_uuid(Uuid::now_v7()),
        name: label("name", body.name)?.unwrap_or_else(|| "unnamed".to_owned()),
        prefix: token_prefix(&token),
        hash: hash_secret(&token),
        providers,
        created_at: now,
        expires_at: ttl_to_expiry(now, ttl("expiresIn", body.expires_in)?),
        requests: 0,
        last_used: None,
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

pub async fn list(_: Admin, State(state): State<AppState>) -> Json<Value> {
    let now = state.gateway.clock.now_ms();
    let tokens: Vec<Value> = state.registry.tokens.all().iter().map(|t| token_json(t, now)).collect();
    Json(json!({"tokens": tokens}))
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
    json!({
        "id": token.id,
        "name": token.name,
        "prefix": token.prefix,
        "providers": token.providers,
        "createdAt": iso(Some(token.created_at)),
        "expiresAt": iso(token.expires_at),
        "expired": token.is_expired(now),
        "requestCount": token.requests.load(Relaxed),
        "lastUsedAt": iso(last_used),
    })
}
