//! Routing a request (after faults) to its answer, and the error answers.

use std::borrow::Cow;

use hyper::{Method, StatusCode};
use serde::Deserialize;

use crate::ask::{Ask, quote};
use crate::body::Reply;
use crate::ollama::{self, Native};
use crate::openai;
use crate::state::Inner;

/// The endpoints the fake upstream answers.
#[derive(Clone, Copy)]
enum Endpoint {
    Chat,
    Completions,
    Embeddings,
    Models,
    Tags,
    NativeChat,
    NativeGenerate,
    NativeEmbed,
}

fn endpoint(method: &Method, path: &str) -> Option<Endpoint> {
    let endpoint = match path {
        "/v1/chat/completions" | "/chat/completions" => Endpoint::Chat,
        "/v1/completions" | "/completions" => Endpoint::Completions,
        "/v1/embeddings" | "/embeddings" => Endpoint::Embeddings,
        "/v1/models" | "/models" => Endpoint::Models,
        "/api/tags" => Endpoint::Tags,
        "/api/chat" => Endpoint::NativeChat,
        "/api/generate" => Endpoint::NativeGenerate,
        "/api/embed" => Endpoint::NativeEmbed,
        _ => return None,
    };
    let expected = match endpoint {
        Endpoint::Models | Endpoint::Tags => Method::GET,
        _ => Method::POST,
    };
    (*method == expected).then_some(endpoint)
}

/// The parts of a request body the fake upstream looks at.
#[derive(Deserialize, Default)]
struct Params<'a> {
    #[serde(borrow, default)]
    model: Option<Cow<'a, str>>,
    #[serde(default)]
    stream: Option<bool>,
    #[serde(default)]
    stream_options: Option<StreamOptions>,
}

#[derive(Deserialize, Default)]
struct StreamOptions {
    #[serde(default)]
    include_usage: Option<bool>,
}

/// The answer to a request that passed the fault and authorization checks.
pub(crate) fn route(inner: &Inner, key: &str, method: &Method, path: &str, body: &[u8]) -> Reply {
    let Some(endpoint) = endpoint(method, path) else {
        return not_found(method, path);
    };
    match endpoint {
        Endpoint::Models => return openai::models(&inner.models_for(key)),
        Endpoint::Tags => return ollama::tags(&inner.models_for(key)),
        _ => {}
    }
    let Ok(params) = serde_json::from_slice::<Params<'_>>(body) else {
        return Reply::json(
            StatusCode::BAD_REQUEST,
            String::from(r#"{"error":{"message":"invalid json","type":"invalid_request_error"}}"#),
        );
    };
    let native = matches!(endpoint, Endpoint::NativeChat | Endpoint::NativeGenerate);
    let (chunks, delay) = inner.stream_settings();
    let ask = Ask {
        id: inner.next_id(),
        model: quote(params.model.as_deref().unwrap_or("")),
        stream: params.stream.unwrap_or(native),
        include_usage: params.stream_options.and_then(|options| options.include_usage).unwrap_or(false),
        chunks,
        delay,
    };
    match endpoint {
        Endpoint::Chat => openai::chat(&ask),
        Endpoint::Completions => openai::completions(&ask),
        Endpoint::Embeddings => openai::embeddings(&ask),
        Endpoint::NativeChat => ollama::generate(&ask, Native::Chat),
        Endpoint::NativeGenerate => ollama::generate(&ask, Native::Generate),
        Endpoint::NativeEmbed | Endpoint::Models | Endpoint::Tags => ollama::embed(&ask),
    }
}

/// 404 for an unknown route.
fn not_found(method: &Method, path: &str) -> Reply {
    let message = quote(&format!("no route for {method} {path}"));
    Reply::json(
        StatusCode::NOT_FOUND,
        format!(r#"{{"error":{{"message":{message},"type":"not_found_error","code":404}}}}"#),
    )
}

/// 401 for a request without a bearer token.
pub(crate) fn unauthorized() -> Reply {
    Reply::json(
        StatusCode::UNAUTHORIZED,
        String::from(r#"{"error":{"message":"missing bearer token","type":"authentication_error","code":401}}"#),
    )
}

/// The answer of a [`crate::Fault::Status`].
pub(crate) fn status_fault(status: u16, retry_after: Option<String>, body: Option<String>) -> Reply {
    let body = body.unwrap_or_else(|| {
        format!(r#"{{"error":{{"message":"fake upstream error {status}","type":"upstream_error","code":{status}}}}}"#)
    });
    Reply::Full {
        status: StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        content_type: crate::body::JSON,
        body: body.into(),
        retry_after,
    }
}

/// The answer of a [`crate::Fault::ModelNotFound`], naming the request's model.
pub(crate) fn model_not_found(body: &[u8]) -> Reply {
    let params = serde_json::from_slice::<Params<'_>>(body).unwrap_or_default();
    let message = quote(&format!("model \"{}\" not found", params.model.as_deref().unwrap_or("")));
    Reply::json(
        StatusCode::NOT_FOUND,
        format!(r#"{{"error":{{"message":{message},"type":"not_found_error","code":"model_not_found"}}}}"#),
    )
}
