//! The limits, with injected time.

use std::net::{IpAddr, Ipv4Addr};

use uuid::Uuid;

use super::*;

/// 2023-11-14T22:13:20Z: 6,400 s before a UTC midnight.
const T0: UnixMs = 1_700_000_000_000;

fn subject() -> Subject {
    Subject::Token(TokenId::from_uuid(Uuid::from_u128(7)))
}

fn rpm(n: u32) -> Limits {
    Limits { rpm: Some(n), ..Limits::default() }
}

fn refused(result: Result<Admission, Refusal>) -> Refusal {
    match result {
        Ok(admission) => panic!("admitted: {admission:?}"),
        Err(refusal) => refusal,
    }
}

fn admitted(result: Result<Admission, Refusal>) -> Admission {
    result.unwrap_or_else(|refusal| panic!("refused: {refusal}"))
}

#[test]
fn rpm_lets_a_burst_of_n_through_then_says_exactly_when_the_next_slot_comes() {
    let limiter = LocalLimiter::default();
    let remaining: Vec<_> =
        (0..3).map(|_| admitted(limiter.admit(subject(), &rpm(3), T0)).info.requests.map(|w| w.remaining)).collect();
    assert_eq!(remaining, [Some(2), Some(1), Some(0)]);
    let refusal = refused(limiter.admit(subject(), &rpm(3), T0));
    assert_eq!(refusal.exceeded, Exceeded::RequestsPerMinute(3));
    assert_eq!((refusal.retry_after_ms, refusal.retry_after_secs()), (20_000, 20));
    assert_eq!(refusal.info.requests, Some(Window { limit: 3, remaining: 0, reset_ms: 60_000 }));
    assert_eq!(refused(limiter.admit(subject(), &rpm(3), T0 + 19_999)).retry_after_ms, 1);
    admitted(limiter.admit(subject(), &rpm(3), T0 + 20_000));
    assert_eq!(refused(limiter.admit(subject(), &rpm(3), T0 + 20_000)).retry_after_ms, 20_000);
}

#[test]
fn rpm_releases_smoothly_one_request_per_interval() {
    let limiter = LocalLimiter::default();
    for _ in 0..600 {
        admitted(limiter.admit(subject(), &rpm(600), T0));
    }
    assert_eq!(refused(limiter.admit(subject(), &rpm(600), T0)).retry_after_ms, 100);
    for step in 1..=5 {
        let at = T0 + step * 100;
        admitted(limiter.admit(subject(), &rpm(600), at));
        assert_eq!(refused(limiter.admit(subject(), &rpm(600), at)).retry_after_ms, 100, "step {step}");
    }
}

#[test]
fn refused_requests_cost_nothing() {
    let limiter = LocalLimiter::default();
    admitted(limiter.admit(subject(), &rpm(1), T0));
    for ms in 0..100 {
        refused(limiter.admit(subject(), &rpm(1), T0 + ms * 100));
    }
    admitted(limiter.admit(subject(), &rpm(1), T0 + 60_000));
}

#[test]
fn the_daily_request_quota_resets_at_utc_midnight() {
    let limiter = LocalLimiter::default();
    let limits = Limits { rpd: Some(2), ..Limits::default() };
    let midnight = next_utc_midnight(T0);
    assert_eq!(midnight - T0, 6_400_000);
    admitted(limiter.admit(subject(), &limits, T0));
    let second = admitted(limiter.admit(subject(), &limits, T0));
    assert_eq!(second.info.requests, Some(Window { limit: 2, remaining: 0, reset_ms: 6_400_000 }));
    let refusal = refused(limiter.admit(subject(), &limits, midnight - 1));
    assert_eq!((refusal.exceeded, refusal.retry_after_ms), (Exceeded::RequestsPerDay(2), 1));
    admitted(limiter.admit(subject(), &limits, midnight));
    admitted(limiter.admit(subject(), &limits, midnight + 1));
    assert_eq!(refused(limiter.admit(subject(), &limits, midnight + 2)).retry_after_ms, DAY_MS - 2);
}

#[test]
fn raising_a_daily_quota_lets_the_next_request_in() {
    let limiter = LocalLimiter::default();
    let one = Limits { rpd: Some(1), ..Limits::default() };
    admitted(limiter.admit(subject(), &one, T0));
    refused(limiter.admit(subject(), &one, T0));
    admitted(limiter.admit(subject(), &Limits { rpd: Some(2), ..one }, T0));
}

#[test]
fn tokens_per_day_are_checked_before_and_charged_after() {
    let limiter = LocalLimiter::default();
    let limits = Limits { tpd: Some(20), ..Limits::default() };
    let first = admitted(limiter.admit(subject(), &limits, T0));
    assert!(first.meters_tokens());
    first.charge_tokens(18, T0);
    let second = admitted(limiter.admit(subject(), &limits, T0));
    assert_eq!(second.info.tokens.map(|w| w.remaining), Some(2));
    second.charge_tokens(18, T0);
    let refusal = refused(limiter.admit(subject(), &limits, T0));
    assert_eq!(refusal.exceeded, Exceeded::TokensPerDay(20));
    assert_eq!(refusal.retry_after_ms, 6_400_000);
    assert_eq!(refusal.info.tokens, Some(Window { limit: 20, remaining: 0, reset_ms: 6_400_000 }));
    admitted(limiter.admit(subject(), &limits, next_utc_midnight(T0)));
}

#[test]
fn a_concurrency_slot_is_held_until_the_admission_is_dropped() {
    let limiter = LocalLimiter::default();
    let limits = Limits { max_concurrent: Some(2), ..Limits::default() };
    let first = admitted(limiter.admit(subject(), &limits, T0));
    let _second = admitted(limiter.admit(subject(), &limits, T0));
    let refusal = refused(limiter.admit(subject(), &limits, T0));
    assert_eq!((refusal.exceeded, refusal.retry_after_secs()), (Exceeded::Concurrency(2), 1));
    drop(first);
    admitted(limiter.admit(subject(), &limits, T0));
}

#[test]
fn a_refusal_gives_back_what_earlier_checks_took() {
    let limiter = LocalLimiter::default();
    let all = Limits { rpm: Some(1), rpd: Some(3), max_concurrent: Some(1), ..Limits::default() };
    drop(admitted(limiter.admit(subject(), &all, T0)));
    assert_eq!(refused(limiter.admit(subject(), &all, T0)).exceeded, Exceeded::RequestsPerMinute(1));
    let daily_only = Limits { rpd: Some(3), ..Limits::default() };
    let next = admitted(limiter.admit(subject(), &daily_only, T0));
    assert_eq!(next.info.requests.map(|w| w.remaining), Some(1), "the refused request was not counted");
    let _held = admitted(limiter.admit(subject(), &Limits { max_concurrent: Some(1), ..Limits::default() }, T0));
}

#[test]
fn the_request_headers_describe_the_limit_met_first() {
    let limiter = LocalLimiter::default();
    let limits = Limits { rpm: Some(100), rpd: Some(3), ..Limits::default() };
    let info = admitted(limiter.admit(subject(), &limits, T0)).info;
    assert_eq!(info.requests.map(|w| (w.limit, w.remaining)), Some((3, 2)));
    let limits = Limits { rpm: Some(2), rpd: Some(1000), ..Limits::default() };
    let info = admitted(limiter.admit(Subject::Ip(IpAddr::V4(Ipv4Addr::LOCALHOST)), &limits, T0)).info;
    assert_eq!(info.requests.map(|w| (w.limit, w.remaining, w.reset_ms)), Some((2, 1, 30_000)));
    assert_eq!(info.tokens, None);
}

#[test]
fn subjects_are_counted_apart() {
    let limiter = LocalLimiter::default();
    let other = Subject::Key(KeyId::from_uuid(Uuid::from_u128(7)));
    admitted(limiter.admit(subject(), &rpm(1), T0));
    admitted(limiter.admit(other, &rpm(1), T0));
    refused(limiter.admit(subject(), &rpm(1), T0));
}

#[test]
fn ready_at_says_when_admit_would_pass_and_takes_nothing() {
    let limiter = LocalLimiter::default();
    assert_eq!(limiter.ready_at(subject(), &rpm(1), T0), T0, "an unknown subject is ready");
    admitted(limiter.admit(subject(), &rpm(1), T0));
    assert_eq!(limiter.ready_at(subject(), &rpm(1), T0 + 1_000), T0 + 60_000);
    assert_eq!(limiter.ready_at(subject(), &rpm(1), T0 + 1_000), T0 + 60_000);
    assert_eq!(limiter.ready_at(subject(), &Limits::default(), T0), T0);
    let held = Limits { max_concurrent: Some(1), ..Limits::default() };
    let _slot = admitted(limiter.admit(subject(), &held, T0));
    assert_eq!(limiter.ready_at(subject(), &held, T0), T0 + 1_000);
}

#[test]
fn unlimited_subjects_are_not_remembered() {
    let limiter = LocalLimiter::default();
    let admission = admitted(limiter.admit(subject(), &Limits::default(), T0));
    admission.charge_tokens(1_000, T0);
    assert!(!admission.meters_tokens() && admission.info.is_empty());
    assert_eq!(limiter.subjects(), 0);
}

#[test]
fn a_limit_of_zero_reads_as_no_limit() {
    let limiter = LocalLimiter::default();
    let zero = Limits { rpm: Some(0), rpd: Some(0), tpd: Some(0), max_concurrent: Some(0) };
    assert!(zero.is_unlimited());
    for _ in 0..10 {
        admitted(limiter.admit(subject(), &zero, T0));
    }
}

#[test]
fn subjects_at_rest_are_forgotten_so_memory_stays_bounded() {
    let limiter = LocalLimiter::default();
    let ip = |n: u32| Subject::Ip(IpAddr::V4(Ipv4Addr::from(n)));
    for n in 0..50_000 {
        admitted(limiter.admit(ip(n), &rpm(60), T0));
    }
    let held = admitted(limiter.admit(ip(0), &Limits { max_concurrent: Some(1), ..Limits::default() }, T0));
    for n in 50_000..100_000 {
        admitted(limiter.admit(ip(n), &rpm(60), T0 + 2_000));
    }
    assert!(limiter.subjects() < 75_000, "{} subjects remembered", limiter.subjects());
    refused(limiter.admit(ip(0), &Limits { max_concurrent: Some(1), ..Limits::default() }, T0 + 2_000));
    drop(held);
}

#[test]
fn a_days_use_restored_after_a_restart_counts_against_the_quotas() {
    // Arrange: before the restart the token made 2 requests that used 30 tokens.
    let limiter = LocalLimiter::default();
    limiter.restore_day(subject(), 2, 30, T0);
    // Act
    let rpd = limiter.admit(subject(), &Limits { rpd: Some(3), ..Limits::default() }, T0);
    let again = limiter.admit(subject(), &Limits { rpd: Some(3), ..Limits::default() }, T0);
    let tpd = limiter.admit(subject(), &Limits { tpd: Some(30), ..Limits::default() }, T0);
    // Assert
    drop(admitted(rpd));
    assert!(matches!(refused(again).exceeded, Exceeded::RequestsPerDay(3)));
    assert!(matches!(refused(tpd).exceeded, Exceeded::TokensPerDay(30)));
    let tomorrow = T0 + 86_400_000;
    drop(admitted(limiter.admit(subject(), &Limits { rpd: Some(1), ..Limits::default() }, tomorrow)));
}

#[test]
fn a_client_address_is_limited_as_its_ipv4_or_its_ipv6_64() {
    let v6 = |s: &str| Subject::client(s.parse::<IpAddr>().unwrap());
    assert_eq!(v6("2001:db8:1:2:aaaa::1"), v6("2001:db8:1:2:ffff:ffff:ffff:ffff"), "one /64, one subject");
    assert_ne!(v6("2001:db8:1:2::1"), v6("2001:db8:1:3::1"), "another /64 is another subject");
    assert_eq!(v6("::ffff:192.0.2.7"), Subject::Ip(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7))), "mapped IPv4 is IPv4");
    assert_ne!(v6("192.0.2.7"), v6("192.0.2.8"), "IPv4 addresses stay apart");
    // Every address of one /64 shares the limit
    let limiter = LocalLimiter::default();
    for host in 0..3u128 {
        let ip = IpAddr::V6((0x2001_0db8_0000_0001_0000_0000_0000_0000u128 + host).into());
        let result = limiter.admit(Subject::client(ip), &rpm(2), T0);
        if host < 2 {
            admitted(result);
        } else {
            refused(result);
        }
    }
}
