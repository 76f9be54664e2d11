//! `x-pool-attempts`: off by default; when on, every key tried, in order, and why it was left.

use pool_testkit::Fault;
use reqwest::Response;

use crate::helpers::{Options, chat, spawn_app, spawn_app_with};

fn attempts_on() -> Options {
    Options::new().set("POOL__PROXY__ATTEMPTS_HEADER", "true")
}

/// The header's entries as (key id, reason).
fn attempts(response: &Response) -> Vec<(String, String)> {
    let value = response.headers().get("x-pool-attempts").expect("x-pool-attempts").to_str().unwrap();
    value
        .split("; ")
        .filter(|e| !e.is_empty())
        .map(|e| {
            let (key, reason) = e.split_once('=').expect("key=reason");
            (key.to_owned(), reason.to_owned())
        })
        .collect()
}

#[tokio::test]
async fn the_header_is_off_by_default() {
    // Arrange
    let app = spawn_app().await;
    app.add_key("limited").await;
    app.add_key("good").await;
    app.upstream.set_fault("limited", Fault::rate_limited(None));
    // Act
    let responses = [app.post_chat(&chat("m", false)).await, app.post_chat(&chat("m", false)).await];
    // Assert
    for response in responses {
        assert_eq!(response.status(), 200);
        assert!(response.headers().get("x-pool-attempts").is_none());
    }
    assert_eq!(app.upstream.calls("limited"), 1, "the failover happened");
}

#[tokio::test]
async fn a_rate_limited_key_then_the_key_that_served_are_listed_in_order() {
    // Arrange
    let app = spawn_app_with(attempts_on()).await;
    let limited = app.add_key("limited").await;
    let good = app.add_key("good").await;
    app.upstream.set_fault("limited", Fault::rate_limited(None));
    // Act: round-robin puts the limited key first within two requests
    let mut lists = Vec::new();
    for _ in 0..2 {
        let response = app.post_chat(&chat("m", false)).await;
        assert_eq!(response.status(), 200);
        lists.push(attempts(&response));
    }
    // Assert
    let expected = vec![(limited.clone(), "upstream answered 429".to_owned()), (good.clone(), "ok".to_owned())];
    assert!(lists.contains(&expected), "{lists:?}");
    assert!(lists.contains(&vec![(good, "ok".to_owned())]), "{lists:?}");
    assert!(lists.iter().flatten().all(|(_, reason)| !reason.contains("limited")), "key ids only, never keys");
}

#[tokio::test]
async fn an_all_failed_502_lists_every_attempt() {
    // Arrange
    let app = spawn_app_with(attempts_on()).await;
    let mut ids = vec![app.add_key("a").await, app.add_key("b").await];
    app.upstream.set_fault("a", Fault::status(500));
    app.upstream.set_fault("b", Fault::status(503));
    // Act
    let response = app.post_chat(&chat("m", false)).await;
    // Assert
    assert_eq!(response.status(), 502);
    let mut listed = attempts(&response);
    let reasons: Vec<&str> = listed.iter().map(|(_, r)| r.as_str()).collect();
    assert!(
        reasons == ["upstream answered 500", "upstream answered 503"]
            || reasons == ["upstream answered 503", "upstream answered 500"],
        "{listed:?}"
    );
    listed.sort();
    ids.sort();
    assert_eq!(listed.into_iter().map(|(id, _)| id).collect::<Vec<_>>(), ids);
}

#[tokio::test]
async fn a_request_that_tried_no_key_has_an_empty_list() {
    // Arrange
    let app = spawn_app_with(attempts_on()).await;
    // Act
    let response = app.post_chat(&chat("m", false)).await;
    // Assert
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["x-pool-attempts"], "");
}
