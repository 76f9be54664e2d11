//! The client API and the other routes without a handler of their own to carry a
//! `#[utoipa::path]`: one table, as the route table serves them.
//!
//! The proxied bodies go upstream byte for byte and come back as the upstream wrote them, so their
//! schemas are objects described as such: the gateway reads only `model` and `stream`.

use utoipa::Modify;
use utoipa::openapi::path::{HttpMethod, OperationBuilder};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::{ContentBuilder, OpenApi, Ref, Required, ResponseBuilder, Schema};

use super::{ADMIN, CLIENT, error_response};

/// One operation of the table.
struct Route {
    method: HttpMethod,
    path: &'static str,
    tag: &'static str,
    summary: &'static str,
    /// The request body's schema, if it takes one.
    body: Option<&'static str>,
    /// The answer's media types and schema.
    answer: Answer,
}

enum Answer {
    /// A proxied answer: JSON, or server-sent events when the request asked to stream.
    Upstream,
    /// A JSON body of the named schema.
    Json(&'static str),
    /// Plain text.
    Text(&'static str),
}

const ROUTES: &[Route] = &[
    proxied("/v1/chat/completions", "OpenAI chat completion"),
    proxied("/v1/completions", "OpenAI text completion"),
    proxied("/v1/embeddings", "OpenAI embeddings"),
    listing("/v1/models", "The models this token may use, in OpenAI's list shape", "OpenAiModels"),
    proxied("/api/chat", "Ollama chat"),
    proxied("/api/generate", "Ollama generate"),
    proxied("/api/embed", "Ollama embed"),
    proxied("/api/embeddings", "Ollama embeddings (the older shape)"),
    listing("/api/tags", "The models this token may use, in Ollama's tags shape", "OllamaTags"),
    Route {
        method: HttpMethod::Get,
        path: "/metrics",
        tag: ADMIN,
        summary: "Prometheus text exposition (also without a token on `metrics.listen`, when set)",
        body: None,
        answer: Answer::Text("text/plain; version=0.0.4"),
    },
    Route {
        method: HttpMethod::Get,
        path: "/openapi.json",
        tag: "public",
        summary: "This document",
        body: None,
        answer: Answer::Json("OpenApiDocument"),
    },
];

const fn proxied(path: &'static str, summary: &'static str) -> Route {
    Route {
        method: HttpMethod::Post,
        path,
        tag: CLIENT,
        summary,
        body: Some("ProxiedRequest"),
        answer: Answer::Upstream,
    }
}

const fn listing(path: &'static str, summary: &'static str, schema: &'static str) -> Route {
    Route { method: HttpMethod::Get, path, tag: CLIENT, summary, body: None, answer: Answer::Json(schema) }
}

/// The errors a client call may meet besides the upstream's own (which pass through unchanged).
const CLIENT_ERRORS: &[(&str, &str)] = &[
    ("400", "A body that is not JSON, has no `model`, or a field out of range"),
    ("403", "The token may not use this provider or model"),
    ("404", "No key of the pool serves this model, or an unknown provider"),
    ("408", "The body arrived too slowly"),
    ("413", "The body is larger than `proxy.max_body_bytes`"),
    ("429", "The token's or the client address's limit (`Retry-After` says when)"),
    ("502", "Every key tried failed upstream"),
    ("503", "No key is available now, or the gateway's buffers are full (`Retry-After` says when)"),
];

/// Adds the table's operations, the schemas they name, and `/stats.json` (the same operation as
/// `/admin/public-stats`).
pub(super) struct ClientApi;

impl Modify for ClientApi {
    fn modify(&self, doc: &mut OpenApi) {
        for route in ROUTES {
            doc.paths.add_path_operation(route.path, vec![route.method.clone()], operation(route));
        }
        if let Some(public) = doc.paths.paths.get("/admin/public-stats").cloned() {
            doc.paths.paths.insert("/stats.json".to_owned(), public);
        }
        let components = doc.components.get_or_insert_with(Default::default);
        for (name, schema) in schemas() {
            components.schemas.insert(name.to_owned(), schema.into());
        }
    }
}

fn operation(route: &Route) -> utoipa::openapi::path::Operation {
    let mut builder = OperationBuilder::new().tag(route.tag).summary(Some(route.summary));
    if let Some(body) = route.body {
        let content = ContentBuilder::new().schema(Some(Ref::from_schema_name(body))).build();
        let body = RequestBodyBuilder::new().required(Some(Required::True)).content("application/json", content);
        builder = builder.request_body(Some(body.build()));
    }
    let ok = match route.answer {
        Answer::Upstream => ResponseBuilder::new()
            .description("The upstream's answer, as it wrote it; with `\"stream\": true`, server-sent events")
            .content("application/json", json_of("UpstreamBody"))
            .content("text/event-stream", ContentBuilder::new().schema(Some(text())).build()),
        Answer::Json(schema) => {
            ResponseBuilder::new().description(route.summary).content("application/json", json_of(schema))
        }
        Answer::Text(media) => ResponseBuilder::new()
            .description(route.summary)
            .content(media, ContentBuilder::new().schema(Some(text())).build()),
    };
    builder = builder.response("200", ok.build());
    if route.tag == CLIENT {
        for (status, description) in CLIENT_ERRORS {
            builder = builder.response(*status, error_response(description));
        }
    }
    builder.build()
}

fn json_of(schema: &str) -> utoipa::openapi::Content {
    ContentBuilder::new().schema(Some(Ref::from_schema_name(schema))).build()
}

fn text() -> Schema {
    ObjectBuilder::new().schema_type(Type::String).build().into()
}

/// An object whose named properties are typed and whose other properties are anyone's.
fn object(description: &str, properties: &[(&str, Type, &str)], required: &[&str]) -> Schema {
    let mut builder = ObjectBuilder::new().schema_type(Type::Object).description(Some(description));
    for (name, kind, about) in properties {
        let property = ObjectBuilder::new().schema_type(kind.clone()).description(Some(*about));
        builder = builder.property(*name, property);
    }
    for name in required {
        builder = builder.required(*name);
    }
    builder.build().into()
}

fn schemas() -> [(&'static str, Schema); 5] {
    let listed = "Built by the gateway from the models discovered on the pool's keys, narrowed to the \
                  token's allow-list";
    [
        (
            "ProxiedRequest",
            object(
                "The request as the upstream API defines it (OpenAI's or Ollama's), passed upstream byte for \
                 byte; the gateway reads only `model` (to route) and `stream`",
                &[
                    ("model", Type::String, "The model, as the upstream names it"),
                    ("stream", Type::Boolean, "Stream the answer as server-sent events"),
                ],
                &["model"],
            ),
        ),
        ("UpstreamBody", object("The upstream's body, unchanged", &[], &[])),
        (
            "OpenAiModels",
            object(
                listed,
                &[("object", Type::String, "`list`"), ("data", Type::Array, "One entry per model, with its `id`")],
                &["data"],
            ),
        ),
        (
            "OllamaTags",
            object(listed, &[("models", Type::Array, "One entry per model, with its `name` and `model`")], &["models"]),
        ),
        ("OpenApiDocument", object("An OpenAPI 3.1 document", &[("openapi", Type::String, "`3.1.0`")], &["openapi"])),
    ]
}
