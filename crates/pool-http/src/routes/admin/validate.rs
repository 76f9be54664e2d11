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
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::provider_or_default;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{Admin, AppJson};
use crate::jobs::{Job, JobSnapshot};
use crate::state::{AppState, ProviderRuntime};

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ValidatedImport {
    /// The text of an `ollama.txt`-style file.
    content: String,
    provider: Option<String>,
    /// Probes at once (default 8, at most 64).
    concurrency: Option<usize>,
}

/// A validated import, started: its job id and what was set aside before probing.
#[derive(Serialize, ToSchema)]
pub struct ImportStarted {
    /// The job's id: follow it at `/admin/jobs/{id}`.
    #[schema(value_type = String)]
    id: Uuid,
    total: usize,
    duplicates: usize,
    rejected: usize,
}

/// One line of a validated import, as its job reports it: the key's new id and models when it
/// joined the pool, `error` when it did not.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImportEntry {
    line: usize,
    /// The key, masked (absent for a line that held no key).
    #[serde(skip_serializing_if = "Option::is_none")]
    api_key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    id: Option<KeyId>,
    /// How many models the key may use (`null` while unknown).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<usize>)]
    models: Option<Option<usize>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<String>>)]
    categories: Option<Option<Vec<&'static str>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<String>,
}

impl ImportEntry {
    /// A line that did not join the pool.
    fn failed(line: usize, api_key: Option<String>, error: impl Into<String>) -> Self {
        let error = Some(error.into());
        Self { line, api_key, error, id: None, models: None, categories: None, detail: None }
    }
}

#[utoipa::path(post, path = "/admin/api-keys/import-with-validation", tag = "admin", request_body = ValidatedImport,
    responses(
        (status = 202, description = "The job, started", body = ImportStarted),
        (status = 400, description = "An unknown provider", body = ErrorBody),
    ))]
pub async fn start(
    _: Admin,
    State(state): State<AppState>,
    AppJson(body): AppJson<ValidatedImport>,
) -> Result<(StatusCode, Json<ImportStarted>), ApiError> {
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
        job.record(false, &ImportEntry::failed(rejected.line, None, rejected.reason));
    }
    for duplicate in deduped.duplicates {
        let error = format!("duplicate: already in the {}", duplicate.of.as_str());
        job.record(false, &ImportEntry::failed(duplicate.line, Some(duplicate.masked), error));
    }
    let fresh: Vec<ParsedKey> = deduped.fresh.into_iter().map(|(key, _)| key).collect();
    state.tasks.spawn(run(state.clone(), Arc::clone(&job), provider, fresh, concurrency));
    Ok((StatusCode::ACCEPTED, Json(ImportStarted { id: job.id, total, duplicates, rejected })))
}

async fn run(state: AppState, job: Arc<Job>, provider: Arc<ProviderRuntime>, keys: Vec<ParsedKey>, concurrency: usize) {
    futures_util::stream::iter(keys)
        .map(|key| validate_one(&state, &provider, key))
        .buffer_unordered(concurrency)
        .take_until(state.stopping.cancelled())
        .for_each(|(valid, entry)| {
            job.record(valid, &entry);
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
async fn validate_one(state: &AppState, provider: &ProviderRuntime, key: ParsedKey) -> (bool, ImportEntry) {
    let masked = mask(&key.secret);
    let secret = Secret::new(key.secret);
    let report = state.prober.probe(&provider.spec, &secret).await;
    if !matches!(report.verdict, Verdict::Healthy | Verdict::RateLimited { .. }) {
        return (false, ImportEntry::failed(key.line, Some(masked), report.detail));
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
            return (false, ImportEntry::failed(key.line, Some(masked), "duplicate: already in the pool"));
        }
        Err(e) => {
            tracing::error!(error.cause_chain = %e, "storing a validated key failed");
            return (false, ImportEntry::failed(key.line, Some(masked), "could not store the key"));
        }
    }
    let pooled = state.gateway.pools.find(id);
    if let Some(pooled) = &pooled {
        state.prober.apply(pooled, &report, Asker::Routine);
    }
    let models = pooled.and_then(|k| k.models());
    let entry = ImportEntry {
        line: key.line,
        api_key: Some(masked),
        error: None,
        id: Some(id),
        models: Some(models.as_ref().map(|m| m.names.len())),
        categories: Some(models.map(|m| m.categories())),
        detail: Some(report.detail),
    };
    (true, entry)
}

/// A job's state: a JSON snapshot, or with `Accept: text/event-stream` a stream of `progress`
/// events ending with a `done` event that carries the full result.
#[utoipa::path(get, path = "/admin/jobs/{id}", tag = "admin",
    params(("id" = String, Path, description = "The job's id")),
    responses(
        (status = 200, description = "The job's state; with `Accept: text/event-stream`, `progress` events \
            (a `JobProgress` each) ending with a `done` event (a `JobSnapshot`)",
            content(
                (JobSnapshot = "application/json"),
                (String = "text/event-stream"),
            )),
        (status = 404, description = "No such job (finished jobs are kept an hour)", body = ErrorBody),
    ))]
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
