//! `ApiError`: every error the gateway itself produces, in the OpenAI error shape.
//!
//! For a 5xx the client gets a generic message and the cause is logged here, once.

use axum::Json;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header::RETRY_AFTER};
use axum::response::{IntoResponse, Response};
use pool_core::ports::StoreError;
use pool_core::proxy::ProxyError;
use pool_core::request::Refused;
use pool_core::token::AuthError;
use serde::Serialize;
use utoipa::ToSchema;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    pub kind: &'static str,
    pub code: Option<&'static str>,
    pub param: Option<&'static str>,
    pub retry_after_s: Option<u64>,
    /// More headers for the client (the `x-ratelimit-*` of a refusal); boxed, as most errors
    /// have none and every `Result` of a handler carries this type.
    pub headers: Option<Box<HeaderMap>>,
}

impl ApiError {
    pub fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> Self {
        let message = message.into();
        Self { status, message, kind, code: None, param: None, retry_after_s: None, headers: None }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request_error", message)
    }

    pub fn invalid_param(param: &'static str, message: impl Into<String>) -> Self {
        Self { param: Some(param), ..Self::bad_request(message) }
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found_error", message)
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self { code: Some("invalid_api_key"), ..Self::new(StatusCode::UNAUTHORIZED, "authentication_error", message) }
    }

    pub fn too_large(limit: usize) -> Self {
        let message = format!("Request body is larger than the limit of {limit} bytes");
        Self {
            code: Some("request_too_large"),
            ..Self::new(StatusCode::PAYLOAD_TOO_LARGE, "invalid_request_error", message)
        }
    }

    /// A request body that arrived too slowly.
    pub fn request_timeout(message: impl Into<String>) -> Self {
        Self {
            code: Some("request_timeout"),
            ..Self::new(StatusCode::REQUEST_TIMEOUT, "invalid_request_error", message)
        }
    }

    /// The answer to a request whose bytes found no room in the buffer budget
    /// (`proxy.buffer_budget_bytes`), in time or at all.
    pub fn server_busy(budget: usize) -> Self {
        let message =
            format!("The gateway is holding its limit of {budget} bytes of request and answer bodies; retry shortly");
        Self { retry_after_s: Some(1), ..Self::unavailable(message).with_code("server_busy") }
    }

    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "service_unavailable", message)
    }

    /// The store did not take a write (or answer a read): nothing was changed, and the client
    /// may try again. The cause is logged, never shown (it may name the database's host).
    pub fn storage_unavailable(cause: &dyn std::error::Error) -> Self {
        tracing::warn!(error.cause_chain = %cause_chain(cause), "store unavailable");
        let message = "The store is unavailable; nothing was changed. Requests are still served; try again shortly";
        Self { retry_after_s: Some(5), ..Self::unavailable(message).with_code("storage_unavailable") }
    }

    /// The store stopped taking writes part-way through a change of many records: the first
    /// `done` of `total` were changed (store and memory agree on each), the rest were not.
    pub fn storage_unavailable_after(cause: &dyn std::error::Error, done: usize, total: usize) -> Self {
        tracing::warn!(error.cause_chain = %cause_chain(cause), done, total, "store unavailable part-way");
        let message = format!(
            "The store became unavailable after {done} of {total} were changed; the rest were not. Requests are \
             still served; try again shortly"
        );
        Self { retry_after_s: Some(5), ..Self::unavailable(message).with_code("storage_unavailable") }
    }

    /// A failure of ours: logged with its cause, shown to the client without it.
    pub fn internal(context: &str, cause: &dyn std::error::Error) -> Self {
        tracing::error!(error.cause_chain = %cause_chain(cause), "{context}");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "server_error", "Internal server error")
    }

    fn with_code(mut self, code: &'static str) -> Self {
        self.code = Some(code);
        self
    }
}

fn cause_chain(error: &dyn std::error::Error) -> String {
    let mut chain = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        chain.push_str(": ");
        chain.push_str(&e.to_string());
        source = e.source();
    }
    chain
}

/// The body of every error the gateway itself answers: OpenAI's error shape.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// For the reader: what went wrong and, where it helps, what to do.
    pub message: String,
    /// The class of error: `invalid_request_error`, `authentication_error`, `permission_error`,
    /// `not_found_error`, `upstream_error`, `service_unavailable`, `server_error`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// The request field or parameter at fault, when one is.
    pub param: Option<&'static str>,
    /// A stable code for programs (`invalid_api_key`, `no_available_key`, `csrf_failed`, ...).
    pub code: Option<&'static str>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let error = ErrorDetail { message: self.message, kind: self.kind, param: self.param, code: self.code };
        let mut response = (self.status, Json(ErrorBody { error })).into_response();
        if let Some(seconds) = self.retry_after_s {
            response.headers_mut().insert(RETRY_AFTER, HeaderValue::from(seconds));
        }
        if let Some(headers) = self.headers {
            response.headers_mut().extend(*headers);
        }
        response
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::ProviderNotAllowed(_) => {
                Self::new(StatusCode::FORBIDDEN, "permission_error", e.to_string()).with_code("provider_not_allowed")
            }
            AuthError::ModelNotAllowed(_) => Self {
                param: Some("model"),
                ..Self::new(StatusCode::FORBIDDEN, "permission_error", e.to_string()).with_code("model_not_allowed")
            },
            AuthError::Expired => Self::unauthorized(e.to_string()).with_code("token_expired"),
            AuthError::Missing | AuthError::Unknown => Self::unauthorized(e.to_string()),
        }
    }
}

impl From<Refused> for ApiError {
    fn from(e: Refused) -> Self {
        Self { param: e.param(), ..Self::bad_request(e.to_string()) }
    }
}

impl From<ProxyError> for ApiError {
    fn from(e: ProxyError) -> Self {
        let message = e.to_string();
        match e {
            ProxyError::UnknownProvider(_) => Self::not_found(message),
            ProxyError::ModelNotServed { .. } => {
                Self { param: Some("model"), ..Self::not_found(message).with_code("model_not_found") }
            }
            ProxyError::NoKey { retry_after_s, .. } => {
                Self { retry_after_s, ..Self::unavailable(message).with_code("no_available_key") }
            }
            ProxyError::Undeliverable { .. } => {
                Self::new(StatusCode::BAD_GATEWAY, "upstream_error", message).with_code("upstream_undeliverable")
            }
            ProxyError::Busy { budget, .. } => ApiError::server_busy(budget),
            ProxyError::AllFailed { retry_after_s, .. } => Self {
                retry_after_s,
                ..Self::new(StatusCode::BAD_GATEWAY, "upstream_error", message).with_code("upstream_failed")
            },
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict => Self::new(StatusCode::CONFLICT, "invalid_request_error", "Record already exists"),
            StoreError::Backend(_) => Self::storage_unavailable(&e),
            StoreError::Corrupt(_) => Self::internal("store operation failed", &e),
        }
    }
}
