//! `POST /admin/api-keys/bulk`: one action on many keys in one call, the keys named by id or by
//! the listing's filter ([`KeyFilter`], the same rule as `GET /admin/api-keys`).
//!
//! Enable, disable, reset-cooldown and delete are one store write each and answer the count at
//! once, even for 100,000 keys. Verify probes every key upstream, so it runs as a job
//! (`/admin/jobs/{id}`, the machinery of validated imports): a few probes at a time
//! (`probe_concurrency`), each bounded by the prober's own timeouts.
//!
//! A caller names keys by ids *or* by a filter, never both: a request that mixed them would
//! leave it unclear whether the filter narrows the ids or adds to them.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use pool_core::ids::KeyId;
use pool_core::key::Health;
use pool_core::pool::PoolKey;
use pool_core::probe::Asker;
use pool_core::registry::ttl_to_expiry;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::control::{check, persist};
use super::{KeyFilter, id_list, ttl};
use crate::error::{ApiError, ErrorBody};
use crate::extract::{Admin, AppJson};
use crate::jobs::{Failure, Job};
use crate::state::AppState;
use crate::wire::iso;

/// Most ids one call may name; more keys than this are named by a filter.
pub const MAX_IDS: usize = 10_000;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BulkBody {
    /// `verify`, `enable`, `disable`, `reset-cooldown` or `delete`.
    action: String,
    /// Key ids (at most 10,000); or name the keys by `filter`, not both.
    ids: Option<Vec<String>>,
    /// Every key matching this filter, as `GET /admin/api-keys` reads it.
    filter: Option<KeyFilter>,
    /// Seconds, for a disable only; absent: until enabled.
    duration: Option<u64>,
}

/// What a bulk call does to each key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Action {
    Verify,
    Enable,
    Disable,
    ResetCooldown,
    Delete,
}

impl Action {
    fn parse(raw: &str) -> Result<Self, ApiError> {
        match raw {
            "verify" => Ok(Self::Verify),
            "enable" => Ok(Self::Enable),
            "disable" => Ok(Self::Disable),
            "reset-cooldown" => Ok(Self::ResetCooldown),
            "delete" => Ok(Self::Delete),
            _ => Err(ApiError::invalid_param(
                "action",
                "action is one of verify, enable, disable, reset-cooldown, delete",
            )),
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Self::Verify => "verify",
            Self::Enable => "enable",
            Self::Disable => "disable",
            Self::ResetCooldown => "reset-cooldown",
            Self::Delete => "delete",
        }
    }
}

/// A verify started as a job.
#[derive(Serialize, ToSchema)]
pub struct BulkStarted {
    /// Always `verify`.
    action: &'static str,
    /// The job's id: follow it at `/admin/jobs/{id}`.
    #[schema(value_type = String)]
    job: Uuid,
    total: usize,
}

/// A quick action, done.
#[derive(Serialize, ToSchema)]
pub struct BulkDone {
    action: &'static str,
    /// Keys named.
    matched: usize,
    /// Keys whose state changed (an enable of an active key changes nothing).
    changed: usize,
    /// For a disable only: when it ends (`null`: until enabled).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    until: Option<Option<String>>,
}

#[utoipa::path(post, path = "/admin/api-keys/bulk", tag = "admin", request_body = BulkBody,
    responses(
        (status = 200, description = "A quick action (enable, disable, reset-cooldown, delete), done", body = BulkDone),
        (status = 202, description = "A verify, started as a job", body = BulkStarted),
        (status = 400, description = "An unknown action, malformed ids, or both ids and a filter", body = ErrorBody),
    ))]
pub async fn run(
    _: Admin,
    State(state): State<AppState>,
    AppJson(body): AppJson<BulkBody>,
) -> Result<Response, ApiError> {
    let action = Action::parse(&body.action)?;
    if body.duration.is_some() && action != Action::Disable {
        return Err(ApiError::invalid_param("duration", "duration applies to a disable only"));
    }
    let keys = targets(&state, body.ids, body.filter)?;
    if action == Action::Verify {
        let job = state.jobs.start(keys.len(), state.gateway.clock.now_ms());
        state.tasks.spawn(verify_all(state.clone(), Arc::clone(&job), keys));
        let started = BulkStarted { action: "verify", job: job.id, total: job.total };
        return Ok((StatusCode::ACCEPTED, Json(started)).into_response());
    }
    Ok(Json(apply(&state, action, &keys, body.duration).await?).into_response())
}

/// The keys named: by ids (each a key id; unknown ones are not found) or by a filter.
fn targets(
    state: &AppState,
    ids: Option<Vec<String>>,
    filter: Option<KeyFilter>,
) -> Result<Vec<Arc<PoolKey>>, ApiError> {
    match (ids, filter) {
        (Some(_), Some(_)) => Err(ApiError::bad_request("Name the keys by ids or by filter, not both")),
        (None, None) => Err(ApiError::bad_request("Name the keys: ids or filter")),
        (Some(ids), None) => by_ids(state, &ids),
        (None, Some(filter)) => filter.keys(state, state.gateway.clock.now_ms()),
    }
}

fn by_ids(state: &AppState, raw: &[String]) -> Result<Vec<Arc<PoolKey>>, ApiError> {
    let ids: Vec<KeyId> = id_list(raw, MAX_IDS, "key")?;
    Ok(state.gateway.pools.find_many(&ids))
}

/// Keys one store write of a quick action covers: each write stays well inside the store's
/// statement deadline (`database.statement_timeout_secs`) however many keys a filter names.
const WRITE_CHUNK: usize = 5_000;

/// A quick action: one store write per [`WRITE_CHUNK`] keys (each applied to memory once the
/// store took it), then the count. `matched` keys were named, `changed` of them changed (an
/// enable of an active key changes nothing). When the store fails part-way, the keys written
/// before stay changed and the 503 says how many.
async fn apply(
    state: &AppState,
    action: Action,
    keys: &[Arc<PoolKey>],
    duration: Option<u64>,
) -> Result<BulkDone, ApiError> {
    let now = state.gateway.clock.now_ms();
    let until = match action {
        Action::Disable => ttl_to_expiry(now, ttl("duration", duration)?),
        _ => None,
    };
    let shown_until = (action == Action::Disable).then(|| iso(until));
    let mut changed = 0;
    for chunk in keys.chunks(WRITE_CHUNK) {
        match apply_chunk(state, action, chunk, now, until).await {
            Ok(n) => changed += n,
            Err(e) if changed == 0 => return Err(e.into()),
            Err(e) => {
                tracing::warn!(
                    action = action.as_str(),
                    changed,
                    matched = keys.len(),
                    "bulk key action stopped part-way"
                );
                return Err(ApiError::storage_unavailable_after(&e, changed, keys.len()));
            }
        }
    }
    tracing::info!(action = action.as_str(), matched = keys.len(), changed, "bulk key action");
    Ok(BulkDone { action: action.as_str(), matched: keys.len(), changed, until: shown_until })
}

async fn apply_chunk(
    state: &AppState,
    action: Action,
    keys: &[Arc<PoolKey>],
    now: pool_core::UnixMs,
    until: Option<pool_core::UnixMs>,
) -> Result<usize, pool_core::ports::StoreError> {
    let registry = &state.registry;
    match action {
        Action::Enable => registry.change_health(keys, Health::enable).await,
        Action::Disable => {
            registry.change_health(keys, |h| h.disable("disabled by an operator".into(), now, until)).await
        }
        Action::ResetCooldown => {
            registry
                .change_health(keys, |h| {
                    h.reset_cooldown();
                })
                .await
        }
        Action::Delete => registry.delete_keys(&keys.iter().map(|k| k.id).collect::<Vec<_>>()).await,
        Action::Verify => Ok(0),
    }
}

/// Probes every key, `probe_concurrency` at a time, recording each verdict in the job.
async fn verify_all(state: AppState, job: Arc<Job>, keys: Vec<Arc<PoolKey>>) {
    futures_util::stream::iter(keys)
        .map(|key| {
            let state = &state;
            async move { check(state, &key, Asker::Operator).await }
        })
        .buffer_unordered(state.settings.probe_concurrency)
        .take_until(state.stopping.cancelled())
        .for_each(|result| {
            match result {
                Ok(entry) => job.record(entry.valid, &entry),
                Err(e) => job.record(false, &Failure { error: e.message }),
            }
            futures_util::future::ready(())
        })
        .await;
    persist(&state).await;
    job.finish(state.gateway.clock.now_ms());
}
