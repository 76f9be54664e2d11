use http::{HeaderMap, HeaderName, HeaderValue};

use super::*;

const NOW: UnixMs = 1_750_000_000_000;

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        if let (Ok(name), Ok(value)) = (HeaderName::try_from(*name), HeaderValue::try_from(*value)) {
            map.append(name, value);
        }
    }
    map
}

fn reset(pairs: &[(&str, &str)]) -> Option<i64> {
    read_rate_limit(&headers(pairs), b"", NOW).reset_after_ms
}

fn window(body: &str) -> QuotaWindow {
    read_rate_limit(&HeaderMap::new(), body.as_bytes(), NOW).window
}

#[test]
fn retry_after_is_read_in_seconds_and_as_a_date() {
    assert_eq!(reset(&[("retry-after", "30")]), Some(30_000));
    assert_eq!(reset(&[("retry-after", "Sun, 15 Jun 2025 15:08:20 GMT")]), Some(100_000));
}

#[test]
fn openai_durations_are_read() {
    for (value, ms) in [
        ("1s", 1_000),
        ("6m0s", 360_000),
        ("20ms", 20),
        ("1h30m", 5_400_000),
        ("0.5s", 500),
        ("1m30.5s", 90_500),
        ("150us", 1),
        (" 2s ", 2_000),
    ] {
        assert_eq!(reset(&[("x-ratelimit-reset-requests", value)]), Some(ms), "{value}");
    }
}

#[test]
fn openai_takes_the_exhausted_resource_or_else_the_later_reset() {
    let both = [("x-ratelimit-reset-requests", "1s"), ("x-ratelimit-reset-tokens", "6m0s")];
    assert_eq!(reset(&both), Some(360_000));
    let requests_out =
        [both[0], both[1], ("x-ratelimit-remaining-requests", "0"), ("x-ratelimit-remaining-tokens", "9")];
    assert_eq!(reset(&requests_out), Some(1_000));
    assert_eq!(reset(&[("x-ratelimit-reset-tokens", "20ms")]), Some(20));
}

#[test]
fn openrouter_reset_is_an_epoch_in_ms_or_seconds() {
    assert_eq!(reset(&[("x-ratelimit-reset", "1750000060000")]), Some(60_000));
    assert_eq!(reset(&[("x-ratelimit-reset", "1750000120")]), Some(120_000));
    assert_eq!(reset(&[("x-ratelimit-reset", "1749999999000")]), Some(0), "a past reset is now");
    assert_eq!(reset(&[("x-ratelimit-reset", "45")]), Some(45_000), "a small number is a delay");
    assert_eq!(reset(&[("x-ratelimit-reset", "30s")]), Some(30_000));
}

#[test]
fn retry_after_beats_the_other_headers() {
    let all = [("x-ratelimit-reset-requests", "6m0s"), ("x-ratelimit-reset", "1750000060000"), ("retry-after", "5")];
    assert_eq!(reset(&all), Some(5_000));
    assert_eq!(reset(&all[..2]), Some(60_000), "x-ratelimit-reset before OpenAI's");
}

#[test]
fn garbage_headers_are_ignored() {
    for (name, value) in [
        ("retry-after", "soon"),
        ("retry-after", "-5"),
        ("x-ratelimit-reset", "-1"),
        ("x-ratelimit-reset", "tomorrow"),
        ("x-ratelimit-reset-requests", "5 minutes"),
        ("x-ratelimit-reset-requests", "1d"),
        ("x-ratelimit-reset-requests", ""),
        ("x-ratelimit-reset-tokens", "1.2.3s"),
        ("x-ratelimit-reset-tokens", "s"),
    ] {
        assert_eq!(reset(&[(name, value)]), None, "{name}: {value}");
    }
    let mut map = HeaderMap::new();
    map.insert("retry-after", HeaderValue::from_bytes(b"\xff10").unwrap_or(HeaderValue::from_static("x")));
    assert_eq!(read_rate_limit(&map, b"", NOW).reset_after_ms, None, "not ASCII");
    assert_eq!(reset(&[]), None);
}

#[test]
fn the_body_names_the_window() {
    for (body, expected) in [
        (r#"{"error":"you've reached your weekly usage limit, please upgrade"}"#, QuotaWindow::Weekly),
        (r#"{"error":"you've reached your hourly usage limit"}"#, QuotaWindow::Hourly),
        (r#"{"error":"You have reached your Daily usage limit"}"#, QuotaWindow::Daily),
        (r#"{"error":"monthly usage limit reached"}"#, QuotaWindow::Monthly),
        (
            r#"{"error":{"message":"Insufficient credits. Add more using https://openrouter.ai/settings/credits","code":402}}"#,
            QuotaWindow::Credits,
        ),
        (
            r#"{"error":{"message":"You exceeded your current quota, please check your plan and billing details.","type":"insufficient_quota"}}"#,
            QuotaWindow::Credits,
        ),
        (
            r#"{"error":{"message":"Rate limit exceeded: free-models-per-day. Add 10 credits to unlock 1000 free model requests per day","code":429}}"#,
            QuotaWindow::Daily,
        ),
        (
            r#"{"error":{"message":"Rate limit reached for model `m` on tokens per day (TPD): Limit 500000"}}"#,
            QuotaWindow::Daily,
        ),
        (
            r#"{"error":{"message":"Rate limit reached for gpt-4 on requests per min (RPM): Limit 3"}}"#,
            QuotaWindow::Short,
        ),
        ("Too Many Requests", QuotaWindow::Short),
        ("", QuotaWindow::Short),
    ] {
        assert_eq!(window(body), expected, "{body}");
    }
}

#[test]
fn odd_bodies_are_read_safely_and_only_their_start() {
    let mut binary = vec![0xff, 0xfe, 0x00];
    binary.extend_from_slice(b"weekly usage limit");
    assert_eq!(read_rate_limit(&HeaderMap::new(), &binary, NOW).window, QuotaWindow::Weekly);
    let mut huge = vec![b' '; BODY_PREFIX];
    huge.extend_from_slice(b"weekly usage limit");
    assert_eq!(read_rate_limit(&HeaderMap::new(), &huge, NOW).window, QuotaWindow::Short);
}

#[test]
fn the_upstream_reset_beats_the_class_default_and_the_cap_holds() {
    let rest = QuotaRest::default();
    let weekly = |reset_after_ms| RateLimit { window: QuotaWindow::Weekly, reset_after_ms };
    assert_eq!(rest.rest_ms(&weekly(None)), rest.weekly_ms);
    assert_eq!(rest.rest_ms(&weekly(Some(90_000))), 90_000);
    assert_eq!(rest.rest_ms(&weekly(Some(30 * 86_400_000))), rest.max_ms);
    assert_eq!(rest.rest_ms(&weekly(Some(-5))), 0);
    let capped = QuotaRest { max_ms: 1_000, ..QuotaRest::default() };
    assert_eq!(capped.rest_ms(&weekly(None)), 1_000, "the cap holds for defaults too");
}

#[test]
fn each_window_has_its_default() {
    let rest =
        QuotaRest { short_ms: 1, hourly_ms: 2, daily_ms: 3, weekly_ms: 4, monthly_ms: 5, credits_ms: 6, max_ms: 100 };
    let windows = [
        QuotaWindow::Short,
        QuotaWindow::Hourly,
        QuotaWindow::Daily,
        QuotaWindow::Weekly,
        QuotaWindow::Monthly,
        QuotaWindow::Credits,
    ];
    let rests = windows.map(|window| rest.rest_ms(&RateLimit { window, reset_after_ms: None }));
    assert_eq!(rests, [1, 2, 3, 4, 5, 6]);
}

#[test]
fn headers_and_body_are_read_together() {
    let limit = read_rate_limit(
        &headers(&[("retry-after", "3600")]),
        br#"{"error":"you've reached your hourly usage limit"}"#,
        NOW,
    );
    assert_eq!(limit, RateLimit { window: QuotaWindow::Hourly, reset_after_ms: Some(3_600_000) });
}

#[test]
fn retry_after_reads_seconds_and_dates() {
    let now = 1_445_412_480_000; // Wed, 21 Oct 2015 07:28:00 GMT
    assert_eq!(parse_retry_after("120", now), Some(120_000));
    assert_eq!(parse_retry_after(" 1.5 ", now), Some(1_500));
    assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:29:00 GMT", now), Some(60_000));
    assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now), Some(0));
    assert_eq!(parse_retry_after("soon", now), None);
    assert_eq!(parse_retry_after("-5", now), None);
}
