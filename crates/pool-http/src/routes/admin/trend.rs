//! `GET /admin/stats/trend?range=1h|24h|7d|30d&provider=`: the console's request trend (see
//! `pool_core::stats::Trend`), read from the per-minute rollup for the last hour and from the
//! hourly summary otherwise.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use pool_core::stats::{Trend, TrendPoint, TrendRange};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::query;
use super::traffic::{ProviderQuery, provider_filter, unavailable};
use crate::error::{ApiError, ErrorBody};
use crate::extract::Admin;
use crate::state::AppState;
use crate::wire::iso;

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct TrendQuery {
    /// `1h`, `24h` (default), `7d` or `30d`.
    range: Option<String>,
    provider: Option<String>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TrendBody {
    range: &'static str,
    granularity: &'static str,
    provider: Option<String>,
    points: Vec<PointBody>,
    current: PointBody,
    previous: PointBody,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PointBody {
    at: Option<String>,
    requests: u64,
    success_count: u64,
    client_error_count: u64,
    failure_count: u64,
    total_tokens: u64,
}

impl From<&TrendPoint> for PointBody {
    fn from(p: &TrendPoint) -> Self {
        Self {
            at: iso(Some(p.at)),
            requests: p.requests(),
            success_count: p.successes,
            client_error_count: p.client_errors,
            failure_count: p.failures,
            total_tokens: p.total_tokens,
        }
    }
}

#[utoipa::path(get, path = "/admin/stats/trend", tag = "admin", params(TrendQuery),
    responses(
        (status = 200, description = "The request trend, and this period against the previous one", body = TrendBody),
        (status = 400, description = "An unknown range or provider", body = ErrorBody),
    ))]
pub async fn trend(
    _: Admin,
    State(state): State<AppState>,
    q: Result<Query<TrendQuery>, QueryRejection>,
) -> Result<Json<TrendBody>, ApiError> {
    let q = query(q)?;
    let range = TrendRange::parse(q.range.as_deref().unwrap_or("24h"))
        .ok_or_else(|| ApiError::invalid_param("range", "'range' is one of 1h, 24h, 7d, 30d"))?;
    let provider = provider_filter(&state, &ProviderQuery { provider: q.provider })?;
    state.flush().await.map_err(|e| unavailable(&e))?;
    let now = state.gateway.clock.now_ms();
    let store = &state.registry.store;
    let since = range.read_since(now);
    let rows = if range.per_minute() {
        store.stats_minutes(provider.as_deref(), since).await
    } else {
        store.stats_hours(provider.as_deref(), since).await
    };
    let trend = Trend::build(range, &rows.map_err(|e| unavailable(&e))?, now);
    Ok(Json(TrendBody {
        range: range.as_str(),
        granularity: range.granularity(),
        provider,
        points: trend.points.iter().map(PointBody::from).collect(),
        current: PointBody::from(&trend.current),
        previous: PointBody::from(&trend.previous),
    }))
}
