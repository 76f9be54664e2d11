//! The console's files, embedded at build time (`rust-embed`; a debug build reads them from
//! `crates/pool-http/assets/` on each request instead).
//!
//! Caching: files under `vendor/` carry their version in their path (`vendor/uplot-1.6.32/…`)
//! and are cached for a year, immutable; everything else (the pages and the console's own
//! modules) is `no-cache` with a strong `ETag` from the file's SHA-256, so a browser revalidates
//! with one cheap `304` and never runs a stale module after an upgrade. No compression: the
//! console is small (tens of KiB) and most operators reach it on a LAN or behind a proxy that
//! compresses.

use axum::body::Body;
use axum::extract::Path;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, ETAG, IF_NONE_MATCH};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use rust_embed::RustEmbed;

use crate::error::ApiError;

#[derive(RustEmbed)]
#[folder = "assets/"]
struct Assets;

/// A page: `/` (landing and sign-in), `/dashboard`, `/stats`, `/docs`.
pub async fn landing(headers: HeaderMap) -> Response {
    serve("index.html", &headers)
}

pub async fn dashboard(headers: HeaderMap) -> Response {
    serve("dashboard.html", &headers)
}

pub async fn stats_page(headers: HeaderMap) -> Response {
    serve("stats.html", &headers)
}

pub async fn docs_page(headers: HeaderMap) -> Response {
    serve("docs.html", &headers)
}

pub async fn favicon(headers: HeaderMap) -> Response {
    serve("favicon.svg", &headers)
}

/// `/assets/{*path}`.
pub async fn file(Path(path): Path<String>, headers: HeaderMap) -> Response {
    serve(&path, &headers)
}

fn serve(path: &str, request: &HeaderMap) -> Response {
    let Some(file) = Assets::get(path).filter(|_| !path.contains("..")) else {
        return ApiError::not_found("Unknown route").into_response();
    };
    let hash = file.metadata.sha256_hash();
    let etag = format!("\"{}\"", hash.iter().take(16).map(|b| format!("{b:02x}")).collect::<String>());
    let etag = HeaderValue::try_from(etag).unwrap_or_else(|_| HeaderValue::from_static("\"0\""));
    let fresh = request.get(IF_NONE_MATCH).is_some_and(|v| matches(v.as_bytes(), etag.as_bytes()));
    let mut response = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let mut response = Response::new(Body::from(file.data.into_owned()));
        response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(content_type(path)));
        response
    };
    let headers = response.headers_mut();
    headers.insert(ETAG, etag);
    if path.starts_with("vendor/") {
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("public, max-age=31536000, immutable"));
    } else {
        super::no_cache(headers);
    }
    super::secure(headers);
    response
}

/// Whether an `If-None-Match` list names the tag (or is `*`).
fn matches(list: &[u8], etag: &[u8]) -> bool {
    list.split(|&b| b == b',')
        .map(|t| t.trim_ascii())
        .any(|t| t == b"*" || t == etag || t.strip_prefix(b"W/") == Some(etag))
}

fn content_type(path: &str) -> &'static str {
    let name = path.rsplit('/').next().unwrap_or(path);
    if name == "VERSIONS" {
        return "text/plain; charset=utf-8";
    }
    match name.rsplit('.').next().unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "svg" => "image/svg+xml",
        "json" => "application/json",
        "png" => "image/png",
        "txt" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_none_match_lists_are_read_with_weak_tags_and_stars() {
        assert!(matches(b"\"a\", \"b\"", b"\"b\""));
        assert!(matches(b"W/\"b\"", b"\"b\""));
        assert!(matches(b"*", b"\"b\""));
        assert!(!matches(b"\"c\"", b"\"b\""));
    }

    #[test]
    fn every_vendored_file_is_in_versions_with_its_sha256() {
        let versions =
            Assets::get("VERSIONS").map(|f| String::from_utf8_lossy(&f.data).into_owned()).unwrap_or_default();
        let listed: Vec<(&str, &str)> = versions
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| {
                let fields: Vec<&str> = l.split_whitespace().collect();
                Some((*fields.iter().find(|f| f.starts_with("vendor/"))?, *fields.last()?))
            })
            .collect();
        let vendored: Vec<String> =
            Assets::iter().filter(|n| n.starts_with("vendor/")).map(|n| n.into_owned()).collect();
        assert!(!vendored.is_empty());
        for name in vendored {
            let (_, sha) =
                listed.iter().find(|(path, _)| *path == name).unwrap_or_else(|| panic!("{name} not in VERSIONS"));
            let hash = Assets::get(&name).map(|f| f.metadata.sha256_hash()).unwrap_or_default();
            let hex: String = hash.iter().map(|b| format!("{b:02x}")).collect();
            assert_eq!(&hex, sha, "{name}");
        }
    }

    #[test]
    fn every_page_and_module_is_embedded_with_a_known_type() {
        for page in ["index.html", "dashboard.html", "stats.html"] {
            assert!(Assets::get(page).is_some(), "{page}");
        }
        for name in Assets::iter() {
            assert_ne!(content_type(&name), "application/octet-stream", "{name}");
        }
    }
}
