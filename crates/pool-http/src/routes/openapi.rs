//! `GET /openapi.json`: the OpenAPI 3.1 document of the client and admin APIs, generated from the
//! handlers' own `#[utoipa::path]` attributes and their typed bodies, so it cannot drift from them.
//!
//! The admin and session routes are described where they are written. The client routes are one
//! handler for several paths (and every one of them again under `/{provider}`), so they are
//! described by one table in [`client`]. The security schemes, the errors every admin call may
//! meet, and the operation ids are added in one pass ([`Conventions`]) rather than repeated on
//! each handler. A unit test holds the document against the route table in `routes/mod.rs`.

mod client;

use std::sync::OnceLock;

use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use utoipa::Modify;
use utoipa::OpenApi;
use utoipa::openapi::path::{Operation, PathItem};
use utoipa::openapi::security::{
    ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, Response, ResponseBuilder};

use self::client::ClientApi;
use super::{admin, health};
use crate::console::session;
use crate::error::ErrorBody;

/// Tags: which credential an operation takes.
pub(super) const ADMIN: &str = "admin";
pub(super) const CLIENT: &str = "client";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "ollama-pool",
        description = "An LLM API key-pool gateway. Clients call the OpenAI and Ollama APIs with a client token \
            of ours; operators run the pool through the admin API. Every client path is also served under \
            `/{provider}` (for example `/openrouter/v1/chat/completions`) for any configured provider; the \
            paths listed here serve the default provider. Every error the gateway itself produces has the one \
            `ErrorBody` shape."
    ),
    paths(
        health::show,
        admin::keys::create, admin::keys::list, admin::keys::delete_many, admin::keys::update,
        admin::keys::delete_one, admin::bulk::run, admin::export::export,
        admin::import::keys, admin::import::text, admin::import::accounts,
        admin::validate::start, admin::validate::job,
        admin::control::verify, admin::control::health_check, admin::control::enable,
        admin::control::disable, admin::control::reset_cooldowns,
        admin::stats::list, admin::traffic::admin_stats, admin::trend::trend,
        admin::requests::list, admin::requests::show,
        admin::traffic::public_stats, admin::traffic::key_usage, admin::traffic::token_usage,
        admin::traffic::model_usage,
        admin::providers::list, admin::providers::update,
        admin::tokens::create, admin::tokens::list, admin::tokens::revoke_many, admin::tokens::revoke,
        admin::tokens::update,
        admin::settings::show, admin::cache::stats, admin::cache::clear,
        session::sign_in, session::show, session::sign_out, session::list, session::revoke,
    ),
    components(schemas(
        ErrorBody, admin::validate::ImportEntry, crate::jobs::JobProgress, crate::jobs::Failure,
    )),
    modifiers(&ClientApi, &Conventions),
    tags(
        (name = "client", description = "The OpenAI and Ollama APIs, with a client token"),
        (name = "admin", description = "The admin API: the admin token as a bearer, or a console session"),
        (name = "session", description = "The console's sign-in: the admin token exchanged for a cookie"),
        (name = "public", description = "No credential"),
    ),
)]
pub struct ApiDoc;

/// The document, rendered once.
pub fn document() -> &'static str {
    static DOCUMENT: OnceLock<String> = OnceLock::new();
    DOCUMENT.get_or_init(|| ApiDoc::openapi().to_json().unwrap_or_default())
}

pub async fn serve() -> impl IntoResponse {
    ([(CONTENT_TYPE, "application/json")], document())
}

/// What every operation shares: security by tag, the errors of the admin credential and the
/// store, and an operation id from the method and path (the handlers' names repeat: `list`,
/// `show`, ...).
struct Conventions;

impl Modify for Conventions {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        for (name, scheme) in security_schemes() {
            components.security_schemes.insert(name.to_owned(), scheme);
        }
        for (name, description) in [
            ("Unauthorized", "No credential, or a wrong one"),
            ("CsrfFailed", "A console session's state-changing call without its `X-CSRF-Token`"),
            ("StoreUnavailable", "The store did not answer; nothing was changed (`Retry-After` says when to retry)"),
        ] {
            components.responses.insert(name.to_owned(), RefOr::T(error_response(description)));
        }
        for (path, item) in doc.paths.paths.iter_mut() {
            for (method, operation) in operations(item) {
                operation.operation_id = Some(operation_id(method, path));
                conventions_of_tag(operation);
            }
        }
    }
}

fn security_schemes() -> [(&'static str, SecurityScheme); 3] {
    let bearer = |description: &str| {
        SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).description(Some(description)).build())
    };
    let cookie = ApiKeyValue::with_description(
        crate::console::cookie::COOKIE_NAME,
        "A console session from `POST /admin/session`; a state-changing call also sends `X-CSRF-Token`",
    );
    [
        ("adminToken", bearer("`Authorization: Bearer <admin token>`")),
        ("adminSession", SecurityScheme::ApiKey(ApiKey::Cookie(cookie))),
        ("clientToken", bearer("`Authorization: Bearer <client token>`")),
    ]
}

/// The security and shared errors an operation's tag implies.
fn conventions_of_tag(operation: &mut Operation) {
    let tags = operation.tags.as_deref().unwrap_or_default();
    let responses = &mut operation.responses.responses;
    if tags.iter().any(|t| t == ADMIN) {
        operation.security = Some(vec![requirement("adminToken"), requirement("adminSession")]);
        responses.insert("401".into(), RefOr::Ref(Ref::from_response_name("Unauthorized")));
        responses.insert("403".into(), RefOr::Ref(Ref::from_response_name("CsrfFailed")));
        responses.entry("503".into()).or_insert_with(|| RefOr::Ref(Ref::from_response_name("StoreUnavailable")));
    } else if tags.iter().any(|t| t == CLIENT) {
        operation.security = Some(vec![requirement("clientToken")]);
        responses.insert("401".into(), RefOr::Ref(Ref::from_response_name("Unauthorized")));
    }
}

fn requirement(scheme: &str) -> SecurityRequirement {
    SecurityRequirement::new(scheme, Vec::<String>::new())
}

/// An error answer in the one `ErrorBody` shape.
pub(super) fn error_response(description: &str) -> Response {
    let content = ContentBuilder::new().schema(Some(Ref::from_schema_name("ErrorBody"))).build();
    ResponseBuilder::new().description(description).content("application/json", content).build()
}

/// The operations of a path, with their methods.
fn operations(item: &mut PathItem) -> impl Iterator<Item = (&'static str, &mut Operation)> {
    [
        ("get", item.get.as_mut()),
        ("post", item.post.as_mut()),
        ("put", item.put.as_mut()),
        ("patch", item.patch.as_mut()),
        ("delete", item.delete.as_mut()),
    ]
    .into_iter()
    .filter_map(|(method, operation)| operation.map(|o| (method, o)))
}

/// `get` and `/admin/api-keys/{id}/usage` → `getAdminApiKeysIdUsage`.
fn operation_id(method: &str, path: &str) -> String {
    let mut id = method.to_owned();
    for word in path.split(|c: char| !c.is_ascii_alphanumeric()).filter(|w| !w.is_empty()) {
        let mut chars = word.chars();
        id.extend(chars.next().map(|c| c.to_ascii_uppercase()));
        id.push_str(chars.as_str());
    }
    id
}

#[cfg(test)]
mod tests;
