//! Validated import: every key is probed against its provider before it joins the pool, a few at
//! a time, as a background job (`POST /admin/api-keys/import-with-validation` answers its id at
//! once; `GET /admin/jobs/{id}` reports progress, as JSON or as server-sent events).

use std::collections::HashSet;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::header::ACCEPT;
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use pool_core::ids::KeyId;
use pool_core::import::{ParsedKey, dedupe, parse_text};
use pool_core::ports::NewKey;
use pool_core::probe::{Asker, Verdict};
use pool_core::secret::{Secret, SecretHash, mask};
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use super::provider_or_default;
use crate::error::ApiError;
use crate::extract::{Admin, AppJson};
use crate::jobs::Job;
use crate::state::{AppState, ProviderRuntime};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ValidatedImport {
    content: String,
    provider: Option<String>,
    /// Probes at once (default 8, at most 64).
    concurrency: Option<usize>,
}

pub async fn start(
    _: Admin,
    State(state): State<AppState>,
    AppJson(body): AppJson<ValidatedImport>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let provider = provider_or_default(&state, body.provider.as_deref())?;
    let concurrency = body.concurrency.unwrap_or(8).clamp(1, 64);
    let parsed = parse_text(&body.content);
    let in_pool: HashSet<SecretHash> = state
        .gateway
        .pools
        .pool(&provider.spec.name)
        .map(|p| p.snapshot().iter().map(|k| k.secret_hash).collect())
        .unwrap_or_default();
    let deduped = dedupe(parsed.keys, &in_pool);
    let total = parsed.rejected.len() + deduped.duplicates.len() + deduped.fresh.len();
    let (rejected, duplicates) = (parsed.rejected.len(), deduped.duplicates.len());
    let job = state.jobs.start(total, state.gateway.clock.now_ms());
    for rejected in parsed.rejected {
        job.record(false, json!({"line": rejected.line, "error": rejected.reason}));
    }
    for duplicate in deduped.duplicates {
        let error = format!("duplicate: already in the {}", duplicate.of.as_str());
        job.record(false, json!({"line": duplicate.line, "apiKey": duplicate.masked, "error": error}));
    }
    let fresh: Vec<ParsedKey> = deduped.fresh.into_iter().map(|(key, _)| key).collect();
    state.tasks.spawn(run(state.clone(), Arc::clone(&job), provider, fresh, concurrency));
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"id": job.id, "total": total, "duplicates": duplicates, "rejected": rejected})),
    ))
}

async fn run(state: AppState, job: Arc<Job>, provider: Arc<ProviderRuntime>, keys: Vec<ParsedKey>, concurrency: usize) {
    futures_util::stream::iter(keys)
        .map(|key| validate_one(&state, &provider, key))
        .buffer_unordered(concurrency)
        .take_until(state.stopping.cancelled())
        .for_each(|(valid, entry)| {
            job.record(valid, entry);
            futures_util::future::ready(())
        })
        .await;
    if let Err(e) = state.registry.flush().await {
        tracing::warn!(error.cause_chain = %e, "writing validated keys' state failed; the next flush retries");
    }
    job.finish(state.gateway.clock.now_ms());
}

/// Probes one key; a key the upstream accepts (even if rate-limited now) joins the pool with its
/// discovered models.
async fn validate_one(state: &AppState, provider: &ProviderRuntime, key: ParsedKey) -> (bool, Value) {
    let masked = mask(&key.secret);
    let secret = Secret::new(key.secret);
    let report = state.prober.probe(&provider.spec, &secret).await;
    if !matches!(report.verdict, Verdict::Healthy | Verdict::RateLimited { .. }) {
        return (false, json!({"line": key.line, "apiKey": masked, "error": report.detail}));
    }
    let now = state.gateway.clock.now_ms();
    let new = NewKey::new(
        KeyId::from_uuid(Uuid::now_v7()),
        provider.spec.name.as_ref(),
        secret.expose_secret(),
        key.label,
        now,
        None,
    );
    let id = new.id;
    match state.registry.add_keys(&provider.spec.name, vec![new]).await {
        Ok(added) if added.contains(&id) => {}
        Ok(_) => {
            return (false, json!({"line": key.line, "apiKey": masked, "error": "duplicate: already in the pool"}));
        }
        Err(e) => {
            tracing::error!(error.cause_chain = %e, "storing a validated key failed");
            return (false, json!({"line": key.line, "apiKey": masked, "error": "could not store the key"}));
        }
    }
    let pooled = state.gateway.pools.find(id);
    if let Some(pooled) = &pooled {
        state.prober.apply(pooled, &report, Asker::Routine);
    }
    let models = pooled.and_then(|k| k.models());
    (
        true,
        json!({
            "line": key.line,
            "apiKey": masked,
            "id": id,
            "models": models.as_ref().map(|m| m.names.len()),
            "categories": models.map(|m| m.categories()),
            "detail": report.detail,
        }),
    )
}

/// A job's state: a JSON snapshot, or with `Accept: text/event-stream` a stream of `progress`
/// events ending with a `done` event that carries the full result.
pub async fn job(
    _: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let job =
        id.parse::<Uuid>().ok().and_then(|id| state.jobs.get(id)).ok_or_else(|| ApiError::not_found("No such job"))?;
    let wants_events =
        headers.get(ACCEPT).and_then(|v| v.to_str().ok()).is_some_and(|v| v.contains("text/event-stream"));
    if wants_events {
        return Ok(Sse::new(job.events()).keep_alive(KeepAlive::default()).into_response());
    }
    Ok(Json(job.snapshot()).into_response())
}
