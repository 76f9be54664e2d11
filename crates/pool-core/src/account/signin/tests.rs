use super::*;

/// Unix ms of an RFC 3339 instant with an offset (parsed without any zone database).
fn ms(at: &str) -> UnixMs {
    at.parse::<Timestamp>().unwrap().as_millisecond()
}

fn day(s: &str) -> LocalDay {
    s.parse().unwrap()
}

fn zone(name: &str) -> Zone {
    Zone::named(name).unwrap()
}

#[test]
fn the_day_turns_at_local_midnight_in_shanghai_not_at_utc_midnight() {
    let shanghai = zone(DEFAULT_ZONE);
    assert_eq!(shanghai.day(ms("2026-12-04T23:59:59.999+08:00")), day("2026-12-04"));
    assert_eq!(shanghai.day(ms("2026-12-05T00:00:00+08:00")), day("2026-12-05"));
    // 16:00 UTC on the 4th is already the 5th in Shanghai.
    assert_eq!(shanghai.day(ms("2026-12-04T16:00:00Z")), day("2026-12-05"));
    assert_eq!(zone("UTC").day(ms("2026-12-04T16:00:00Z")), day("2026-12-04"));
}

#[test]
fn the_next_sign_in_opens_at_the_next_local_midnight() {
    let shanghai = zone(DEFAULT_ZONE);
    let midnight = ms("2026-12-05T00:00:00+08:00");
    assert_eq!(shanghai.next_day_start(ms("2026-12-04T23:59:59+08:00")), midnight);
    assert_eq!(shanghai.next_day_start(ms("2026-12-04T00:00:00+08:00")), midnight);
    assert_eq!(shanghai.next_day_start(midnight), midnight + DAY_MS);
}

#[test]
fn in_new_york_the_day_of_the_spring_transition_has_23_hours() {
    let new_york = zone("America/New_York");
    // 2026-03-08: 02:00 EST becomes 03:00 EDT.
    assert_eq!(new_york.day(ms("2026-03-08T00:00:00-05:00")), day("2026-03-08"));
    assert_eq!(new_york.day(ms("2026-03-08T23:59:59-04:00")), day("2026-03-08"));
    assert_eq!(new_york.day(ms("2026-03-09T00:00:00-04:00")), day("2026-03-09"));
    let start = ms("2026-03-08T00:00:00-05:00");
    assert_eq!(new_york.next_day_start(start) - start, 23 * HOUR_MS);
}

#[test]
fn in_new_york_the_day_of_the_autumn_transition_has_25_hours() {
    let new_york = zone("America/New_York");
    // 2026-11-01: 02:00 EDT becomes 01:00 EST.
    let start = ms("2026-11-01T00:00:00-04:00");
    assert_eq!(new_york.next_day_start(start), ms("2026-11-02T00:00:00-05:00"));
    assert_eq!(new_york.next_day_start(start) - start, 25 * HOUR_MS);
    assert_eq!(new_york.day(ms("2026-11-01T23:59:59-05:00")), day("2026-11-01"));
    assert_eq!(new_york.day(ms("2026-11-02T00:00:00-05:00")), day("2026-11-02"));
}

#[test]
fn an_unknown_zone_name_is_refused() {
    assert!(Zone::named("Mars/Olympus_Mons").is_err());
    assert!(Zone::named("").is_err());
    assert_eq!(zone("Asia/Shanghai").name(), "Asia/Shanghai");
}

#[test]
fn instants_beyond_what_a_calendar_holds_do_not_panic() {
    let shanghai = zone(DEFAULT_ZONE);
    assert_eq!(shanghai.day(i64::MAX), shanghai.day(i64::MAX - 1));
    assert!(shanghai.next_day_start(i64::MAX) >= i64::MAX - DAY_MS);
    let _ = shanghai.day(i64::MIN);
}

#[test]
fn a_sign_in_extends_from_now_when_the_credential_has_expired() {
    let now = 100 * DAY_MS;
    assert_eq!(extend(now - 5 * DAY_MS, now, 24, 30), now + DAY_MS);
}

#[test]
fn a_sign_in_extends_from_the_expiry_when_it_is_still_ahead() {
    let now = 100 * DAY_MS;
    assert_eq!(extend(now + 2 * DAY_MS, now, 24, 30), now + 3 * DAY_MS);
    assert_eq!(extend(now + HOUR_MS, now, 6, 30), now + 7 * HOUR_MS);
}

#[test]
fn an_extension_stops_at_the_cap_and_never_shortens() {
    let now = 100 * DAY_MS;
    assert_eq!(extend(now + 29 * DAY_MS + HOUR_MS, now, 24, 30), now + 30 * DAY_MS, "capped");
    assert_eq!(extend(now + 30 * DAY_MS, now, 24, 30), now + 30 * DAY_MS, "at the cap already");
    assert_eq!(extend(now + 60 * DAY_MS, now, 24, 30), now + 60 * DAY_MS, "an operator's longer expiry stays");
    assert_eq!(extend(i64::MAX - 1, i64::MAX - 1, 24, 30), i64::MAX, "saturates");
}

#[test]
fn the_rule_uses_its_settings() {
    let rule = SignInRule { extend_hours: 48, max_days_ahead: 3, zone: zone(DEFAULT_ZONE) };
    assert_eq!(rule.extended(0, 0), 2 * DAY_MS);
    assert_eq!(rule.extended(2 * DAY_MS, 0), 3 * DAY_MS);
}

#[test]
fn a_streak_counts_consecutive_days_up_to_today_or_yesterday() {
    let days = [day("2026-03-01"), day("2026-02-28"), day("2026-02-27"), day("2026-02-25"), day("2026-03-01")];
    assert_eq!(streak(&days, day("2026-03-01")), 3, "today and the two days before");
    assert_eq!(streak(&days, day("2026-03-02")), 3, "not yet signed today: the run is still alive");
    assert_eq!(streak(&days, day("2026-03-03")), 0, "a missed day breaks it");
    assert_eq!(streak(&[], day("2026-03-03")), 0);
    assert_eq!(streak(&[day("2024-02-29"), day("2024-03-01")], day("2024-03-01")), 2, "across a leap day");
}

#[test]
fn a_day_is_written_and_read_as_yyyy_mm_dd_only() {
    assert_eq!(day("2026-03-08").to_string(), "2026-03-08");
    assert_eq!(LocalDay::new(2026, 3, 8).unwrap(), day("2026-03-08"));
    for bad in ["2026-3-8", "2026-02-30", "20260308", "2026-03-08T00:00", "", "２０２６-03-08"] {
        assert!(bad.parse::<LocalDay>().is_err(), "{bad:?}");
    }
    assert!(LocalDay::new(2026, 2, 30).is_err());
    assert!(day("2026-12-31") < day("2027-01-01"));
}
