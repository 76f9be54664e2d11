//! The admin API (admin token required): upstream keys and client tokens.

pub mod keys;
pub mod tokens;

use std::sync::Arc;

use axum::extract::Query;
use axum::extract::rejection::QueryRejection;

use crate::error::ApiError;
use crate::state::{AppState, ProviderRuntime};

/// Longest operator-supplied label or name; labels are data shown on dashboards.
const MAX_LABEL_CHARS: usize = 200;

/// A query string, or a 400 in our shape.
pub(crate) fn query<T>(query: Result<Query<T>, QueryRejection>) -> Result<T, ApiError> {
    query.map(|Query(q)| q).map_err(|e| ApiError::bad_request(format!("Invalid query string: {}", e.body_text())))
}

/// The named provider, or the default one; 400 for a name that is not configured.
pub(crate) fn provider_or_default(state: &AppState, name: Option<&str>) -> Result<Arc<ProviderRuntime>, ApiError> {
    let name = name.unwrap_or(state.providers.default.as_ref());
    state
        .providers
        .get(name)
        .cloned()
        .ok_or_else(|| ApiError::invalid_param("provider", format!("Unknown provider '{name}'")))
}

/// A label or name: trimmed, at most [`MAX_LABEL_CHARS`], no control characters.
pub(crate) fn label(param: &'static str, value: Option<String>) -> Result<Option<String>, ApiError> {
    let Some(value) = value.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    if value.chars().count() > MAX_LABEL_CHARS || value.chars().any(char::is_control) {
        return Err(ApiError::invalid_param(
            param,
            format!("'{param}' must be at most {MAX_LABEL_CHARS} characters without control characters"),
        ));
    }
    Ok(Some(value))
}

/// Seconds of a time-to-live, refusing more than ten years.
pub(crate) fn ttl(param: &'static str, seconds: Option<u64>) -> Result<Option<u64>, ApiError> {
    const TEN_YEARS: u64 = 10 * 366 * 86_400;
    match seconds {
        Some(s) if s > TEN_YEARS => {
            Err(ApiError::invalid_param(param, format!("'{param}' must be at most {TEN_YEARS} seconds")))
        }
        other => Ok(other.filter(|&s| s > 0)),
    }
}
