use uuid::Uuid;

use super::*;

fn id(n: u128) -> KeyId {
    KeyId::from_uuid(Uuid::from_u128(n))
}

fn entry(n: u16) -> RequestLogEntry {
    RequestLogEntry {
        at: 1,
        request_id: RequestId::new(format!("req-{n}").as_bytes()),
        provider: ProviderName::parse("ollama").unwrap_or_else(|e| panic!("{e}")),
        model: "m".into(),
        token: None,
        token_name: None,
        status: n,
        outcome: Outcome::Success,
        latency_ms: 0,
        prompt_tokens: 0,
        completion_tokens: 0,
        stream: false,
        failed: Vec::new(),
        last: None,
    }
}

fn statuses(log: &RequestLog) -> Vec<u16> {
    log.take().into_iter().map(|e| e.status).collect()
}

#[test]
fn a_full_queue_drops_the_oldest_entry_and_counts_it() {
    let log = RequestLog::new(3, true);
    for n in 1..=5 {
        log.push(entry(n));
    }
    assert_eq!(log.dropped(), 2);
    assert_eq!(statuses(&log), [3, 4, 5]);
    assert_eq!(log.backlog(), 0);
}

#[test]
fn restored_entries_go_back_ahead_of_newer_ones_within_the_capacity() {
    let log = RequestLog::new(3, true);
    log.push(entry(1));
    log.push(entry(2));
    let taken = log.take();
    log.push(entry(3));
    log.push(entry(4));
    log.restore(taken);
    assert_eq!(log.dropped(), 1, "the oldest gives way");
    assert_eq!(statuses(&log), [2, 3, 4]);
}

#[test]
fn a_disabled_log_keeps_nothing() {
    let log = RequestLog::disabled();
    log.push(entry(1));
    assert_eq!(log.backlog(), 0);
    assert_eq!(log.dropped(), 0);
}

#[test]
fn request_ids_are_held_inline_and_cut_to_the_limit() {
    assert_eq!(RequestId::new(b"abc").as_str(), "abc");
    assert_eq!(RequestId::new(&[b'x'; 100]).as_str().len(), MAX_REQUEST_ID);
    assert_eq!(RequestId::new("ünï".as_bytes()).as_str(), "");
}

#[test]
fn attempts_read_like_the_header_and_parse_back() {
    let failed = vec![AttemptNote { key: id(1), outcome: "upstream answered 429; a=b".into() }];
    let served = attempt_list(&failed, Some(LastAttempt::Served(id(2))), 200);
    assert_eq!(format_attempts(&served), format!("{}=upstream answered 429_ a_b; {}=ok", id(1), id(2)));
    assert_eq!(parse_attempts(&format_attempts(&served)), served);
    let passed = attempt_list(&[], Some(LastAttempt::Served(id(3))), 400);
    assert_eq!(passed[0].reason, "returned 400");
    let left = attempt_list(&[], Some(LastAttempt::Abandoned(id(4))), 499);
    assert_eq!(left[0].reason, "client closed");
    assert!(attempt_list(&[], None, 503).is_empty());
    assert!(parse_attempts("").is_empty());
}

#[test]
fn status_filters_are_one_status_or_a_class() {
    assert_eq!(StatusFilter::parse("404"), Some(StatusFilter::Exact(404)));
    assert_eq!(StatusFilter::parse("5xx"), Some(StatusFilter::Class(5)));
    assert_eq!(StatusFilter::parse("2XX"), Some(StatusFilter::Class(2)));
    for bad in ["", "6xx", "abc", "1000", "xx", "-1"] {
        assert_eq!(StatusFilter::parse(bad), None, "{bad}");
    }
}
