//! The document against the route table: every route of `router` (but the pages and assets, and
//! the `/{provider}` forms) has an operation, and every operation a route.

use std::collections::BTreeSet;

use serde_json::Value;
use utoipa::OpenApi;

use super::{ApiDoc, document};

/// Pages and files for browsers, not API: left out of the document on purpose.
const PAGES: &[&str] = &["/", "/dashboard", "/stats", "/docs", "/favicon.ico", "/assets/{*path}"];
const METHODS: &[&str] = &["get", "post", "put", "patch", "delete"];

/// `(method, path)` of every `.route(...)` in `router` (not in `metrics_router`), read from the
/// route table's source; `{prefix}` is read as the empty prefix, as the document lists it.
fn route_table() -> BTreeSet<(String, String)> {
    let source = include_str!("../mod.rs");
    let start = source.find("pub fn router(").unwrap_or_default();
    let end = source.find("pub fn metrics_router(").unwrap_or(source.len());
    let table = &source[start..end];
    let mut routes = BTreeSet::new();
    for call in table.split(".route(").skip(1) {
        let call = &call[..closing_paren(call)];
        let path = call.split('"').nth(1).unwrap_or_default().replace("{prefix}", "");
        if PAGES.contains(&path.as_str()) {
            continue;
        }
        for method in METHODS {
            let called = format!("{method}(");
            let mut from = 0;
            while let Some(at) = call[from..].find(&called) {
                let at = from + at;
                let before = call[..at].chars().last();
                if before.is_some_and(|c| !c.is_alphanumeric() && c != '_' && c != ':') {
                    routes.insert(((*method).to_owned(), path.clone()));
                }
                from = at + called.len();
            }
        }
    }
    routes
}

/// Where the argument list that starts `call` closes.
fn closing_paren(call: &str) -> usize {
    let mut depth = 1;
    for (i, c) in call.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            _ => {}
        }
        if depth == 0 {
            return i;
        }
    }
    call.len()
}

fn documented() -> BTreeSet<(String, String)> {
    let doc: Value = serde_json::from_str(document()).unwrap_or_default();
    let mut operations = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().into_iter().flatten() {
        for method in METHODS.iter().filter(|m| item.get(**m).is_some()) {
            operations.insert(((*method).to_owned(), path.clone()));
        }
    }
    operations
}

#[test]
fn every_route_has_an_operation_and_every_operation_a_route() {
    // Arrange
    let table = route_table();
    let documented = documented();
    // Assert
    assert!(table.len() > 50, "the route table read as {table:?}");
    let undocumented: Vec<_> = table.difference(&documented).collect();
    let unrouted: Vec<_> = documented.difference(&table).collect();
    assert!(undocumented.is_empty(), "routes without an operation in /openapi.json: {undocumented:?}");
    assert!(unrouted.is_empty(), "operations in /openapi.json without a route: {unrouted:?}");
}

#[test]
fn the_route_table_reader_sees_methods_and_prefixed_paths() {
    let table = route_table();
    for (method, path) in
        [("delete", "/admin/api-keys"), ("patch", "/admin/tokens/{id}"), ("post", "/v1/chat/completions")]
    {
        assert!(table.contains(&(method.to_owned(), path.to_owned())), "{method} {path} not read");
    }
    assert!(!table.iter().any(|(_, path)| path.contains("prefix") || PAGES.contains(&path.as_str())));
}

#[test]
fn the_document_is_openapi_3_1_with_the_crate_version_and_unique_operation_ids() {
    let doc: Value = serde_json::from_str(document()).unwrap_or_default();
    assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.1")), "{}", doc["openapi"]);
    assert_eq!(doc["info"]["version"], env!("CARGO_PKG_VERSION"));
    let ids: Vec<&str> = doc["paths"]
        .as_object()
        .into_iter()
        .flatten()
        .flat_map(|(_, item)| METHODS.iter().filter_map(|m| item[*m]["operationId"].as_str()))
        .collect();
    let unique: BTreeSet<&&str> = ids.iter().collect();
    assert_eq!(ids.len(), unique.len(), "operation ids repeat: {ids:?}");
    assert_eq!(serde_json::to_string(&ApiDoc::openapi()).ok().as_deref(), Some(document()));
}

#[test]
fn admin_operations_name_both_credentials_and_the_shared_errors() {
    let doc: Value = serde_json::from_str(document()).unwrap_or_default();
    let keys = &doc["paths"]["/admin/api-keys"]["get"];
    let schemes: Vec<&str> = keys["security"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r.as_object()?.keys().next())
        .map(String::as_str)
        .collect();
    assert_eq!(schemes, ["adminToken", "adminSession"]);
    assert_eq!(keys["responses"]["401"]["$ref"], "#/components/responses/Unauthorized");
    assert!(doc["paths"]["/health"]["get"].get("security").is_none());
    assert!(doc["paths"]["/stats.json"]["get"]["responses"]["200"].is_object());
}
