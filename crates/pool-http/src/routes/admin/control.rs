//! Manual control of keys: enable, disable (for a while or until enabled), reset cooldowns,
//! verify one key now, health-check many; and the background health pass that brings keys back
//! when their upstream accepts them again (the seed never did).

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use futures_util::StreamExt;
use pool_core::UnixMs;
use pool_core::key::{HoldCause, KeyStatus};
use pool_core::pool::PoolKey;
use pool_core::probe::{Asker, Report};
use pool_core::secret::mask;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{provider_or_default, select_keys, ttl};
use crate::error::ApiError;
use crate::extract::{Admin, AppJson};
use crate::state::AppState;
use crate::wire::iso;

/// Names keys by value or id; `duration` (seconds) only for a disable.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyTarget {
    #[serde(rename = "apiKey", alias = "api_key")]
    api_key: Option<String>,
    #[serde(rename = "apiKeys")]
    api_keys: Option<Vec<String>>,
    id: Option<String>,
    ids: Option<Vec<String>>,
    provider: Option<String>,
    duration: Option<u64>,
}

impl KeyTarget {
    /// The keys named; 400 when nothing is named, 404 when nothing named exists.
    fn resolve(self, state: &AppState) -> Result<(Vec<Arc<PoolKey>>, Option<u64>), ApiError> {
        let provider = self.provider.as_deref().map(|p| provider_or_default(state, Some(p))).transpose()?;
        let secrets: Vec<String> = self.api_key.into_iter().chain(self.api_keys.unwrap_or_default()).collect();
        let ids: Vec<String> = self.id.into_iter().chain(self.ids.unwrap_or_default()).collect();
        if secrets.is_empty() && ids.is_empty() {
            return Err(ApiError::bad_request("Name the key: apiKey, apiKeys, id or ids"));
        }
        let keys = select_keys(state, provider.as_ref().map(|p| &p.spec.name), &secrets, &ids);
        if keys.is_empty() {
            return Err(ApiError::not_found("No such key in the pool"));
        }
        Ok((keys, self.duration))
    }

    /// [`KeyTarget::resolve`] for the actions that take no duration.
    fn resolve_without_duration(self, state: &AppState) -> Result<Vec<Arc<PoolKey>>, ApiError> {
        if self.duration.is_some() {
            return Err(ApiError::invalid_param("duration", "duration applies to a disable only"));
        }
        Ok(self.resolve(state)?.0)
    }
}

pub async fn enable(
    _: Admin,
    State(state): State<AppState>,
    AppJson(body): AppJson<KeyTarget>,
) -> Result<Json<Value>, ApiError> {
    let keys = body.resolve_without_duration(&state)?;
    state.registry.change_health(&keys, pool_core::key::Health::enable).await?;
    Ok(Json(json!({"success": true, "message": "API Key enabled", "count": keys.len()})))
}

pub async fn disable(
    _: Admin,
    State(state): State<AppState>,
    AppJson(body): AppJson<KeyTarget>,
) -> Result<Json<Value>, ApiError> {
    let (keys, duration) = body.resolve(&state)?;
    let now = state.gateway.clock.now_ms();
    let until = pool_core::registry::ttl_to_expiry(now, ttl("duration", duration)?);
    state.registry.change_health(&keys, |h| h.disable("disabled by an operator".into(), now, until)).await?;
    Ok(Json(json!({"success": true, "message": "API Key disabled", "count": keys.len(), "until": iso(until)})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderScope {
    provider: Option<String>,
}

/// Lifts cooldowns and automatic failures (never an operator's disable) and resets the counters.
pub async fn reset_cooldowns(
    _: Admin,
    State(state): State<AppState>,
    AppJson(body): AppJson<ProviderScope>,
) -> Result<Json<Value>, ApiError> {
    let keys = scoped_keys(&state, body.provider.as_deref())?;
    let reset = keys.iter().filter(|k| k.health().reset_cooldown()).count();
    state
        .registry
        .change_health(&keys, |h| {
            h.reset_cooldown();
        })
        .await?;
    Ok(Json(json!({"success": true, "reset": reset})))
}

/// Probes one key now: on success it is enabled (whatever held it) and its counter reset; on
/// failure it is marked with the reason.
pub async fn verify(
    _: Admin,
    State(state): State<AppState>,
    AppJson(body): AppJson<KeyTarget>,
) -> Result<Json<Value>, ApiError> {
    let keys = body.resolve_without_duration(&state)?;
    let [key] = keys.as_slice() else {
        return Err(ApiError::bad_request("verify-key checks one key; name exactly one"));
    };
    let result = check(&state, key, Asker::Operator).await?;
    persist(&state).await;
    Ok(Json(result))
}

/// Probes every key of a provider (or of all), a few at a time; healthy keys that were failed or
/// auto-disabled come back, failing ones are marked.
pub async fn health_check(
    _: Admin,
    State(state): State<AppState>,
    AppJson(body): AppJson<ProviderScope>,
) -> Result<Json<Value>, ApiError> {
    let keys = scoped_keys(&state, body.provider.as_deref())?;
    let results: Vec<Value> = probe_all(&state, &keys).await.into_iter().filter_map(Result::ok).collect();
    persist(&state).await;
    let healthy = results.iter().filter(|r| r["valid"] == true).count();
    Ok(Json(
        json!({"results": results, "total": results.len(), "healthy": healthy, "unhealthy": results.len() - healthy}),
    ))
}

/// One background pass: probes the keys resting for a rate limit or quota longer than
/// `horizon_ms`, so they come back once their window resets.
pub async fn background_health(state: &AppState, horizon_ms: i64) {
    let now = state.gateway.clock.now_ms();
    let due: Vec<Arc<PoolKey>> = enabled_keys(state).filter(|k| is_due(k, now, horizon_ms)).collect();
    if due.is_empty() {
        return;
    }
    let recovered =
        probe_all(state, &due).await.iter().filter(|r| r.as_ref().is_ok_and(|v| v["valid"] == true)).count();
    tracing::info!(probed = due.len(), recovered, "background health check");
    persist(state).await;
}

/// Due for the routine pass: a long rest for a rate limit or quota (whose window may reset
/// early). Keys that are failed or disabled wait for their half-open probe ([`recover`]), so
/// their backoff holds.
fn is_due(key: &PoolKey, now: UnixMs, horizon_ms: i64) -> bool {
    let health = key.health();
    let Some(hold) = health.hold_at(now).filter(|h| !h.manual() && !h.awaiting_probe(now)) else { return false };
    hold.status == KeyStatus::Cooling && hold.cause == HoldCause::RateLimit && hold.end() - now > horizon_ms
}

/// The quick pass, every few seconds: probes the half-open keys (an automatic hold whose time is
/// up), which serve again only if the probe passes, and re-reads the model lists a client's 404
/// put in doubt. Changes are written at once.
pub async fn recover(state: &AppState) {
    let now = state.gateway.clock.now_ms();
    let half_open: Vec<Arc<PoolKey>> =
        enabled_keys(state).filter(|k| k.health().hold.as_ref().is_some_and(|h| h.awaiting_probe(now))).collect();
    let rechecks: Vec<Arc<PoolKey>> =
        state.gateway.rechecks.take().into_iter().filter_map(|id| state.gateway.pools.find(id)).collect();
    if half_open.is_empty() && rechecks.is_empty() {
        return;
    }
    let probes: Vec<_> = half_open.iter().map(|key| Box::pin(check(state, key, Asker::Recovery))).collect();
    let results: Vec<_> = futures_util::stream::iter(probes).buffered(state.settings.probe_concurrency).collect().await;
    let recovered = results.iter().filter(|r| r.as_ref().is_ok_and(|v| v["valid"] == true)).count();
    for key in &rechecks {
        if let Some(provider) = state.providers.get(key.provider.as_ref()) {
            let read = state.prober.rediscover(&provider.spec, key).await;
            tracing::info!(key.id = %key.id, read, "re-read a key's model list after an upstream 404");
        }
    }
    if !half_open.is_empty() {
        tracing::info!(probed = half_open.len(), recovered, "recovery probes of half-open keys");
    }
    persist(state).await;
}

fn enabled_keys(state: &AppState) -> impl Iterator<Item = Arc<PoolKey>> + '_ {
    let keys = state.gateway.pools.all_keys();
    keys.into_iter().filter(|k| state.providers.get(k.provider.as_ref()).is_some_and(|p| p.is_enabled()))
}

/// Probes keys a few at a time (routine: manual disables stay), results in key order.
async fn probe_all(state: &AppState, keys: &[Arc<PoolKey>]) -> Vec<Result<Value, ApiError>> {
    // Boxed so the handler's future stays `Send` with a nameable type (axum needs both).
    let checks: Vec<_> = keys.iter().map(|key| Box::pin(check(state, key, Asker::Routine))).collect();
    futures_util::stream::iter(checks).buffered(state.settings.probe_concurrency).collect().await
}

/// The keys of one provider, or of every provider.
fn scoped_keys(state: &AppState, provider: Option<&str>) -> Result<Vec<Arc<PoolKey>>, ApiError> {
    let provider = provider.map(|p| provider_or_default(state, Some(p))).transpose()?;
    let now = state.gateway.clock.now_ms();
    Ok(super::listed_keys(state, provider.as_ref().map(|p| &p.spec.name), None, None, now))
}

/// Probes a pooled key, applies the verdict, and describes the result.
pub(crate) async fn check(state: &AppState, key: &PoolKey, asker: Asker) -> Result<Value, ApiError> {
    let provider = state
        .providers
        .get(key.provider.as_ref())
        .ok_or_else(|| ApiError::not_found(format!("Provider '{}' is not configured", key.provider)))?;
    let report = state.prober.check(&provider.spec, key, asker).await;
    Ok(describe(state, key, &report))
}

fn describe(state: &AppState, key: &PoolKey, report: &Report) -> Value {
    let now = state.gateway.clock.now_ms();
    let models = key.models();
    json!({
        "id": key.id,
        "apiKey": mask(key.secret.expose_secret()),
        "provider": key.provider,
        "valid": report.healthy(),
        "status": key.status(now).as_str(),
        "detail": report.detail,
        "error": (!report.healthy()).then_some(&report.detail),
        "models": models.as_ref().map(|m| m.names.iter().collect::<Vec<_>>()),
        "categories": models.map(|m| m.categories()),
        "timestamp": iso(Some(now)),
    })
}

/// Writes the probes' verdicts at once rather than at the next flush. A failure is logged; the
/// verdicts hold in memory and the periodic flush retries. (An operator's own changes go through
/// [`pool_core::registry::Registry::change_health`]: store first, or not at all.)
pub(crate) async fn persist(state: &AppState) {
    if let Err(e) = state.registry.flush().await {
        tracing::warn!(error.cause_chain = %e, "writing key changes failed; the next flush retries");
    }
}
