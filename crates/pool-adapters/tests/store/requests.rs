//! The request log: appended in batches, read newest first a page at a time under every filter,
//! found by request id, and pruned in bounded passes.

use std::sync::Arc;

use pool_core::ids::{KeyId, TokenId};
use pool_core::ports::Store;
use pool_core::provider::ProviderName;
use pool_core::reqlog::{
    AttemptNote, LastAttempt, LoggedAttempt, RequestId, RequestLogEntry, RequestQuery, RequestRecord, StatusFilter,
};
use pool_core::stats::Outcome;
use uuid::Uuid;

use crate::keys::HOSTILE;
use crate::support::{T0, contract};

contract!(
    an_entry_reads_back_whole_with_every_attempt_in_order,
    pages_run_newest_first_and_the_cursor_reaches_every_entry_once,
    every_filter_holds_alone_and_together,
    a_request_id_finds_its_newest_entry,
    pruning_takes_the_oldest_in_bounded_passes_with_their_key_rows,
    hostile_models_and_token_names_round_trip_unchanged,
    a_batch_larger_than_one_statement_is_written_whole_in_order,
    ids_keep_growing_after_every_entry_is_pruned,
);

fn entry(at: i64, request_id: &str, status: u16) -> RequestLogEntry {
    RequestLogEntry {
        at,
        request_id: RequestId::new(request_id.as_bytes()),
        provider: ProviderName::parse("ollama").expect("provider"),
        model: Arc::from("llama3.2:latest"),
        token: None,
        token_name: None,
        status,
        outcome: if status < 300 { Outcome::Success } else { Outcome::Failed },
        latency_ms: 12,
        prompt_tokens: 3,
        completion_tokens: 5,
        stream: false,
        failed: Vec::new(),
        last: None,
    }
}

fn key_id() -> KeyId {
    KeyId::from_uuid(Uuid::now_v7())
}

fn query(limit: u32) -> RequestQuery {
    RequestQuery { limit, ..RequestQuery::default() }
}

async fn ids_of(store: &Arc<dyn Store>, q: RequestQuery) -> Vec<String> {
    let page = store.query_requests(&q).await.expect("query");
    page.entries.into_iter().map(|e| e.request_id).collect()
}

async fn an_entry_reads_back_whole_with_every_attempt_in_order(store: &Arc<dyn Store>) {
    // Arrange: two keys failed, the third served
    let (a, b, c) = (key_id(), key_id(), key_id());
    let token = TokenId::from_uuid(Uuid::now_v7());
    let logged = RequestLogEntry {
        token: Some(token),
        token_name: Some("ci bot".to_owned()),
        stream: true,
        failed: vec![
            AttemptNote { key: a, outcome: "upstream answered 503".to_owned() },
            AttemptNote { key: b, outcome: "upstream connection dropped".to_owned() },
        ],
        last: Some(LastAttempt::Served(c)),
        ..entry(T0, "req-whole", 200)
    };
    // Act
    store.append_requests(&[logged]).await.expect("append");
    let page = store.query_requests(&query(10)).await.expect("query");
    // Assert
    assert!(!page.has_more);
    let [read] = page.entries.as_slice() else { panic!("one entry: {:?}", page.entries) };
    assert_eq!((read.at, read.request_id.as_str(), read.provider.as_str()), (T0, "req-whole", "ollama"));
    assert_eq!((read.model.as_str(), read.status, read.outcome.as_str()), ("llama3.2:latest", 200, "success"));
    assert_eq!(read.token.as_deref(), Some(token.to_string().as_str()));
    assert_eq!(read.token_name.as_deref(), Some("ci bot"));
    assert_eq!((read.latency_ms, read.prompt_tokens, read.completion_tokens, read.stream), (12, 3, 5, true));
    let reason = |key, reason: &str| LoggedAttempt { key, reason: reason.to_owned() };
    assert_eq!(
        read.attempts,
        [reason(a, "upstream answered 503"), reason(b, "upstream connection dropped"), reason(c, "ok")]
    );
}

async fn pages_run_newest_first_and_the_cursor_reaches_every_entry_once(store: &Arc<dyn Store>) {
    // Arrange: 7 entries written in two batches
    let batch = |range: std::ops::Range<i64>| range.map(|i| entry(T0 + i, &format!("r{i}"), 200)).collect::<Vec<_>>();
    store.append_requests(&batch(0..4)).await.expect("append");
    store.append_requests(&batch(4..7)).await.expect("append");
    // Act: pages of 3
    let mut seen = Vec::new();
    let mut before = None;
    let mut pages = 0;
    loop {
        let page = store.query_requests(&RequestQuery { before, ..query(3) }).await.expect("page");
        pages += 1;
        seen.extend(page.entries.iter().map(|e| e.request_id.clone()));
        match page.next_before() {
            Some(cursor) => before = Some(cursor),
            None => break,
        }
    }
    // Assert
    assert_eq!(pages, 3);
    assert_eq!(seen, ["r6", "r5", "r4", "r3", "r2", "r1", "r0"]);
}

async fn every_filter_holds_alone_and_together(store: &Arc<dyn Store>) {
    // Arrange
    let (key, other_key) = (key_id(), key_id());
    let token = TokenId::from_uuid(Uuid::now_v7());
    let entries = vec![
        RequestLogEntry { token: Some(token), last: Some(LastAttempt::Served(key)), ..entry(T0, "ok-1", 200) },
        RequestLogEntry {
            model: Arc::from("other"),
            failed: vec![AttemptNote { key: other_key, outcome: "upstream answered 500".to_owned() }],
            last: Some(LastAttempt::Served(key)),
            ..entry(T0 + 1_000, "ok-2", 200)
        },
        RequestLogEntry { outcome: Outcome::RateLimited, ..entry(T0 + 2_000, "limited", 429) },
        RequestLogEntry { token: Some(token), ..entry(T0 + 3_000, "failed", 502) },
    ];
    store.append_requests(&entries).await.expect("append");
    let q = |f: fn(&mut RequestQuery)| {
        let mut q = query(50);
        f(&mut q);
        q
    };
    // Act and assert
    assert_eq!(ids_of(store, q(|q| q.status = Some(StatusFilter::Exact(429)))).await, ["limited"]);
    assert_eq!(ids_of(store, q(|q| q.status = Some(StatusFilter::Class(2)))).await, ["ok-2", "ok-1"]);
    assert_eq!(ids_of(store, q(|q| q.outcome = Some(Outcome::RateLimited))).await, ["limited"]);
    assert_eq!(ids_of(store, q(|q| q.model = Some("other".to_owned()))).await, ["ok-2"]);
    let by_token = RequestQuery { token: Some(token), ..query(50) };
    assert_eq!(ids_of(store, by_token.clone()).await, ["failed", "ok-1"]);
    assert_eq!(ids_of(store, RequestQuery { key: Some(key), ..query(50) }).await, ["ok-2", "ok-1"]);
    assert_eq!(
        ids_of(store, RequestQuery { key: Some(other_key), ..query(50) }).await,
        ["ok-2"],
        "a failed attempt counts"
    );
    assert_eq!(ids_of(store, q(|q| q.request_id = Some("limited".to_owned()))).await, ["limited"]);
    let window = RequestQuery { from: Some(T0 + 1_000), to: Some(T0 + 3_000), ..query(50) };
    assert_eq!(ids_of(store, window).await, ["limited", "ok-2"], "from inclusive, to exclusive");
    let together = RequestQuery { status: Some(StatusFilter::Class(2)), key: Some(key), ..by_token };
    assert_eq!(ids_of(store, together).await, ["ok-1"]);
    assert_eq!(ids_of(store, q(|q| q.model = Some("absent".to_owned()))).await, Vec::<String>::new());
}

async fn a_request_id_finds_its_newest_entry(store: &Arc<dyn Store>) {
    // Arrange: a client that reuses its request id
    store.append_requests(&[entry(T0, "reused", 502), entry(T0 + 10, "reused", 200)]).await.expect("append");
    // Act
    let found = store.request_by_id("reused").await.expect("read").expect("found");
    let missing = store.request_by_id("never").await.expect("read");
    // Assert
    assert_eq!((found.at, found.status), (T0 + 10, 200));
    assert_eq!(missing, None);
}

async fn pruning_takes_the_oldest_in_bounded_passes_with_their_key_rows(store: &Arc<dyn Store>) {
    // Arrange: 5 old entries (each tried one key) and 2 new ones
    let key = key_id();
    let tried = |e: RequestLogEntry| RequestLogEntry { last: Some(LastAttempt::Served(key)), ..e };
    let mut entries: Vec<_> = (0..5).map(|i| tried(entry(T0 + i, &format!("old{i}"), 200))).collect();
    entries.extend((0..2).map(|i| tried(entry(T0 + 100_000 + i, &format!("new{i}"), 200))));
    store.append_requests(&entries).await.expect("append");
    // Act: at most 3 rows a pass
    let passes = [
        store.prune_requests(T0 + 50_000, 3).await.expect("prune"),
        store.prune_requests(T0 + 50_000, 3).await.expect("prune"),
        store.prune_requests(T0 + 50_000, 3).await.expect("prune"),
    ];
    // Assert
    assert_eq!(passes, [3, 2, 0], "bounded, then what is left, then nothing older");
    assert_eq!(ids_of(store, query(50)).await, ["new1", "new0"]);
    assert_eq!(ids_of(store, RequestQuery { key: Some(key), ..query(50) }).await, ["new1", "new0"]);
}

async fn hostile_models_and_token_names_round_trip_unchanged(store: &Arc<dyn Store>) {
    // Arrange
    let entries: Vec<_> = HOSTILE
        .iter()
        .enumerate()
        .map(|(i, s)| RequestLogEntry {
            model: Arc::from(*s),
            token_name: Some((*s).to_owned()),
            ..entry(T0 + i64::try_from(i).expect("small"), &format!("h{i}"), 200)
        })
        .collect();
    // Act
    store.append_requests(&entries).await.expect("append");
    // Assert
    for (i, s) in HOSTILE.iter().enumerate() {
        let read = store.request_by_id(&format!("h{i}")).await.expect("read").expect("found");
        assert_eq!((read.model.as_str(), read.token_name.as_deref()), (*s, Some(*s)), "value {i}");
        let by_model = RequestQuery { model: Some((*s).to_owned()), ..query(50) };
        assert_eq!(ids_of(store, by_model).await, [format!("h{i}")], "filter by value {i}");
    }
}

/// Every entry under `q`, page after page.
async fn walk(store: &Arc<dyn Store>, q: RequestQuery) -> Vec<RequestRecord> {
    let mut all = Vec::new();
    let mut before = None;
    loop {
        let page = store.query_requests(&RequestQuery { before, ..q.clone() }).await.expect("query");
        before = page.entries.last().map(|e| e.id);
        all.extend(page.entries);
        if !page.has_more {
            return all;
        }
    }
}

async fn a_batch_larger_than_one_statement_is_written_whole_in_order(store: &Arc<dyn Store>) {
    // Arrange: more rows, and more key rows, than SQLite binds to one statement
    let (a, b) = (key_id(), key_id());
    let entries: Vec<_> = (0..5_000)
        .map(|i| RequestLogEntry {
            failed: vec![AttemptNote { key: a, outcome: "upstream answered 500".to_owned() }],
            last: Some(LastAttempt::Served(b)),
            ..entry(T0 + i, &format!("bulk{i}"), 200)
        })
        .collect();
    // Act
    store.append_requests(&entries).await.expect("append");
    // Assert: all of them, newest first, each findable by either key it tried
    let read = walk(store, query(200)).await;
    let expected: Vec<_> = (0..5_000).rev().map(|i| format!("bulk{i}")).collect();
    assert_eq!(read.iter().map(|e| e.request_id.clone()).collect::<Vec<_>>(), expected);
    assert!(read.windows(2).all(|w| w[0].id > w[1].id), "ids follow the batch's order");
    assert_eq!(walk(store, RequestQuery { key: Some(a), ..query(200) }).await.len(), 5_000);
    assert_eq!(walk(store, RequestQuery { key: Some(b), ..query(200) }).await.len(), 5_000);
}

async fn ids_keep_growing_after_every_entry_is_pruned(store: &Arc<dyn Store>) {
    // Arrange: two batches, then everything pruned
    store.append_requests(&[entry(T0, "first", 200), entry(T0 + 1, "second", 200)]).await.expect("append");
    store.append_requests(&[entry(T0 + 2, "third", 200)]).await.expect("append");
    let newest = walk(store, query(10)).await[0].id;
    assert_eq!(store.prune_requests(T0 + 10, 100).await.expect("prune"), 3);
    // Act
    store.append_requests(&[entry(T0 + 20, "after", 200)]).await.expect("append");
    // Assert: a cursor a console still holds never meets a reused id
    let read = walk(store, query(10)).await;
    assert_eq!(read.len(), 1);
    assert!(read[0].id > newest, "{} after {newest}", read[0].id);
}
