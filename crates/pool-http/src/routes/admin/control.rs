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
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{provider_or_default, select_keys, ttl};
use crate::error::{ApiError, ErrorBody};
use crate::extract::{Admin, AppJson};
use crate::state::AppState;
use crate::wire::iso;

/// Names keys by value or id; `duration` (seconds) only for a disable.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct KeyTarget {
    /// One whole key (also read as `api_key`).
    #[serde(rename = "apiKey", alias = "api_key")]
    api_key: Option<String>,
    #[serde(rename = "apiKeys")]
    api_keys: Option<Vec<String>>,
    id: Option<String>,
    ids: Option<Vec<String>>,
    /// Only keys of this provider.
    provider: Option<String>,
    /// For a disable: seconds until the key comes back; absent: until enabled.
    duration: Option<u64>,
}

/// The answer to an enable or a disable (the seed's `success` and `message`).
#[derive(Serialize, ToSchema)]
pub struct Switched {
    success: bool,
    /// `API Key enabled` or `API Key disabled`.
    message: &'static str,
    /// Keys named and found.
    count: usize,
    /// For a disable only: when it ends (`null`: until enabled).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    until: Option<Option<String>>,
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

#[utoipa::path(post, path = "/admin/keys/enable", tag = "admin", request_body = KeyTarget,
    responses(
        (status = 200, description = "The keys, enabled", body = Switched),
        (status = 400, description = "No key named, or a duration", body = ErrorBody),
        (status = 404, description = "None of the named keys exists", body = ErrorBody),
    ))]
pub async fn enable(
    _: Admin,
    State(state): State<AppState>,
    AppJson(body): AppJson<KeyTarget>,
) -> Result<Json<Switched>, ApiError> {
    let keys = body.resolve_without_duration(&state)?;
    state.registry.change_health(&keys, pool_core::key::Health::enable).await?;
    Ok(Json(Switched { success: true, message: "API Key enabled", count: keys.len(), until: None }))
}

#[utoipa::path(post, path = "/admin/keys/disable", tag = "admin", request_body = KeyTarget,
    responses(
        (status = 200, description = "The keys, disabled", body = Switched),
        (status = 400, description = "No key named, or a duration over ten years", body = ErrorBody),
        (status = 404, description = "None of the named keys exists", body = ErrorBody),
    ))]
pub async fn disable(
    _: Admin,
    State(state): State<AppState>,
    AppJson(body): AppJson<KeyTarget>,
) -> Result<Json<Switched>, ApiError> {
    let (keys, duration) = body.resolve(&state)?;
    let now = state.gateway.clock.now_ms();
    let until = pool_core::registry::ttl_to_expiry(now, ttl("duration", duration)?);
    state.registry.change_health(&keys, |h| h.disable("disabled by an operator".into(), now, until)).await?;
    let until = Some(iso(until));
    Ok(Json(Switched { success: true, message: "API Key disabled", count: keys.len(), until }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProviderScope {
    /// One provider's keys; absent: every provider's.
    provider: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct Reset {
    success: bool,
    /// Keys whose hold was lifted.
    reset: usize,
}

/// Lifts cooldowns and automatic failures (never an operator's disable) and resets the counters.
#[utoipa::path(post, path = "/admin/keys/reset-cooldowns", tag = "admin", request_body = ProviderScope,
    responses(
        (status = 200, description = "Cooldowns lifted", body = Reset),
        (status = 400, description = "An unknown provider", body = ErrorBody),
    ))]
pub async fn reset_cooldowns(
    _: Admin,
    State(state): State<AppState>,
    AppJson(body): AppJson<ProviderScope>,
) -> Result<Json<Reset>, ApiError> {
    let keys = scoped_keys(&state, body.provider.as_deref())?;
    let reset = keys.iter().filter(|k| k.health().reset_cooldown()).count();
    state
        .registry
        .change_health(&keys, |h| {
            h.reset_cooldown();
        })
        .await?;
    Ok(Json(Reset { success: true, reset }))
}

/// Probes one key now: on success it is enabled (whatever held it) and its counter reset; on
/// failure it is marked with the reason.
#[utoipa::path(post, path = "/admin/verify-key", tag = "admin", request_body = KeyTarget,
    responses(
        (status = 200, description = "The probe's verdict, applied to the key", body = KeyCheck),
        (status = 400, description = "Not exactly one key named", body = ErrorBody),
        (status = 404, description = "The named key does not exist", body = ErrorBody),
    ))]
pub async fn verify(
    _: Admin,
    State(state): State<AppState>,
    AppJson(body): AppJson<KeyTarget>,
) -> Result<Json<KeyCheck>, ApiError> {
    let keys = body.resolve_without_duration(&state)?;
    let [key] = keys.as_slice() else {
        return Err(ApiError::bad_request("verify-key checks one key; name exactly one"));
    };
    let result = check(&state, key, Asker::Operator).await?;
    persist(&state).await;
    Ok(Json(result))
}

#[derive(Serialize, ToSchema)]
pub struct HealthCheck {
    /// The seed's name; one entry per key probed.
    results: Vec<KeyCheck>,
    total: usize,
    healthy: usize,
    unhealthy: usize,
}

/// Probes every key of a provider (or of all), a few at a time; healthy keys that were failed or
/// auto-disabled come back, failing ones are marked.
#[utoipa::path(post, path = "/admin/keys/health-check", tag = "admin", request_body = ProviderScope,
    responses(
        (status = 200, description = "Every key probed", body = HealthCheck),
        (status = 400, description = "An unknown provider", body = ErrorBody),
    ))]
pub async fn health_check(
    _: Admin,
    State(state): State<AppState>,
    AppJson(body): AppJson<ProviderScope>,
) -> Result<Json<HealthCheck>, ApiError> {
    let keys = scoped_keys(&state, body.provider.as_deref())?;
    let results: Vec<KeyCheck> = probe_all(&state, &keys).await.into_iter().filter_map(Result::ok).collect();
    persist(&state).await;
    let healthy = results.iter().filter(|r| r.valid).count();
    Ok(Json(HealthCheck { total: results.len(), healthy, unhealthy: results.len() - healthy, results }))
}

/// One background pass: probes the keys resting for a rate limit or quota longer than
/// `horizon_ms`, so they come back once their window resets.
pub async fn background_health(state: &AppState, horizon_ms: i64) {
    let now = state.gateway.clock.now_ms();
    let due: Vec<Arc<PoolKey>> = enabled_keys(state).filter(|k| is_due(k, now, horizon_ms)).collect();
    if due.is_empty() {
        return;
    }
    let recovered = probe_all(state, &due).await.iter().filter(|r| r.as_ref().is_ok_and(|v| v.valid)).count();
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
    let recovered = results.iter().filter(|r| r.as_ref().is_ok_and(|v| v.valid)).count();
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
async fn probe_all(state: &AppState, keys: &[Arc<PoolKey>]) -> Vec<Result<KeyCheck, ApiError>> {
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
pub(crate) async fn check(state: &AppState, key: &PoolKey, asker: Asker) -> Result<KeyCheck, ApiError> {
    let provider = state
        .providers
        .get(key.provider.as_ref())
        .ok_or_else(|| ApiError::not_found(format!("Provider '{}' is not configured", key.provider)))?;
    let report = state.prober.check(&provider.spec, key, asker).await;
    Ok(KeyCheck::of(key, &report, state.gateway.clock.now_ms()))
}

/// A probe's verdict on one key, as applied (the seed's `valid`, `status`, `error`, `apiKey` and
/// `timestamp`, camelCase like them).
#[derive(Serialize, ToSchema)]
pub struct KeyCheck {
    #[schema(value_type = String)]
    id: pool_core::ids::KeyId,
    /// The key, masked.
    #[serde(rename = "apiKey")]
    api_key: String,
    #[schema(value_type = String)]
    provider: pool_core::provider::ProviderName,
    /// The upstream accepted the key.
    pub(crate) valid: bool,
    /// The key's state after the verdict.
    status: &'static str,
    /// What the probe saw.
    detail: String,
    /// The same as `detail` when the key is not valid; `null` otherwise.
    error: Option<String>,
    /// The models discovered on the key; `null` until discovered.
    models: Option<Vec<String>>,
    /// Families found among the models (`kimi`, `llama`, `qwen`, `general`).
    categories: Option<Vec<&'static str>>,
    timestamp: Option<String>,
}

impl KeyCheck {
    fn of(key: &PoolKey, report: &Report, now: UnixMs) -> Self {
        let models = key.models();
        Self {
            id: key.id,
            api_key: mask(key.secret.expose_secret()),
            provider: key.provider.clone(),
            valid: report.healthy(),
            status: key.status(now).as_str(),
            detail: report.detail.clone(),
            error: (!report.healthy()).then(|| report.detail.clone()),
            models: models.as_ref().map(|m| m.names.iter().cloned().collect()),
            categories: models.map(|m| m.categories()),
            timestamp: iso(Some(now)),
        }
    }
}

/// Writes the probes' verdicts at once rather than at the next flush. A failure is logged; the
/// verdicts hold in memory and the periodic flush retries. (An operator's own changes go through
/// [`pool_core::registry::Registry::change_health`]: store first, or not at all.)
pub(crate) async fn persist(state: &AppState) {
    if let Err(e) = state.registry.flush().await {
        tracing::warn!(error.cause_chain = %e, "writing key changes failed; the next flush retries");
    }
}
