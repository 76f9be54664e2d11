//! Unit tests of counting, the backlog bound, rollups and summaries.

use uuid::Uuid;

use super::*;
use crate::ports::{StatsStore, StoreError};

const T0: UnixMs = 1_700_000_000_000 - 1_700_000_000_000 % DAY_MS + 10 * HOUR_MS; // 10:00 UTC

fn dims(kind: Kind, model: &str, key: u128, outcome: Outcome) -> Dims {
    Dims {
        kind,
        provider: ProviderName::parse("ollama").unwrap_or_else(|e| panic!("{e}")),
        model: model.into(),
        key: (key > 0).then(|| KeyId::from_uuid(Uuid::from_u128(key))),
        token: Some(TokenId::from_uuid(Uuid::from_u128(99))),
        status: if outcome.is_success() { 200 } else { 502 },
        outcome,
    }
}

fn usage(total: u64) -> Option<Usage> {
    Some(Usage { prompt: total / 2, completion: total - total / 2, total })
}

#[test]
fn events_with_the_same_dimensions_in_one_minute_share_a_row() {
    let recorder = Recorder::new(100);
    for i in 0..5 {
        recorder.request(
            T0 + i * 1000,
            dims(Kind::Request, "m", 1, Outcome::Success),
            Timing::default(),
            usage(10),
            false,
        );
    }
    recorder.request(T0 + MINUTE_MS, dims(Kind::Request, "m", 1, Outcome::Success), Timing::default(), None, true);
    let mut rows = recorder.take();
    rows.sort_by_key(|r| r.bucket);
    assert_eq!(rows.len(), 2);
    assert_eq!((rows[0].tally.events, rows[0].tally.total_tokens, rows[0].tally.partial), (5, 50, 0));
    assert_eq!((rows[1].tally.events, rows[1].tally.partial), (1, 1));
    assert!(recorder.take().is_empty(), "a take empties the buffer");
}

#[test]
fn beyond_the_backlog_cap_new_rows_are_dropped_and_counted_but_known_rows_still_grow() {
    let recorder = Recorder::new(8); // one row per shard
    for key in 1..=200 {
        recorder.attempt(T0, dims(Kind::Attempt, "m", key, Outcome::Success), 0);
    }
    let held = recorder.flush_state().backlog_rows;
    assert!(held <= 8, "{held} rows held");
    assert_eq!(recorder.dropped().attempts, 200 - held as u64);
    let rows = recorder.take();
    recorder.restore(rows.clone());
    recorder.restore(rows);
    let total: u64 = recorder.take().iter().map(|r| r.tally.events).sum();
    assert_eq!(total, 2 * held as u64, "restored rows merge into their own rows");
}

#[test]
fn rollups_merge_minutes_into_hours_and_drop_ids_from_summaries() {
    let recorder = Recorder::new(1000);
    for (offset, key) in [(0, 1), (MINUTE_MS, 2), (2 * MINUTE_MS, 1), (HOUR_MS, 1)] {
        recorder.request(
            T0 + offset,
            dims(Kind::Request, "m", key, Outcome::Success),
            Timing::default(),
            usage(4),
            false,
        );
    }
    let rollups = Rollups::of(&recorder.take());
    assert_eq!(rollups.minutes.len(), 4);
    assert_eq!(rollups.hours.len(), 3, "hour 10 by key 1 and 2, hour 11 by key 1");
    assert_eq!(rollups.hour_summary.len(), 2, "one row per hour without ids");
    assert!(rollups.hour_summary.iter().all(|r| r.dims.key.is_none() && r.dims.token.is_none()));
    assert_eq!(rollups.totals.len(), 1);
    assert_eq!(
        (rollups.totals[0].bucket, rollups.totals[0].tally.events, rollups.totals[0].tally.total_tokens),
        (0, 4, 16)
    );
}

fn summary_row(bucket: UnixMs, kind: Kind, model: &str, outcome: Outcome, events: u64) -> SummaryRow {
    SummaryRow {
        bucket,
        kind,
        provider: "ollama".into(),
        model: model.into(),
        status: if outcome.is_success() { 200 } else { 429 },
        outcome,
        tally: Tally { events, total_tokens: events * 10, ..Tally::default() },
    }
}

#[test]
fn the_summary_counts_requests_apart_from_attempts() {
    let totals = [
        summary_row(0, Kind::Request, "a", Outcome::Success, 90),
        summary_row(0, Kind::Request, "b", Outcome::Failed, 10),
        summary_row(0, Kind::Attempt, "a", Outcome::Success, 90),
        summary_row(0, Kind::Attempt, "b", Outcome::RateLimited, 25),
    ];
    let recent = [
        summary_row(hour_of(T0), Kind::Request, "b", Outcome::Success, 3),
        summary_row(hour_of(T0) - 2 * HOUR_MS, Kind::Request, "a", Outcome::Success, 2),
        // Yesterday 23:00: in the last 24 hours, not today.
        summary_row(day_of(T0) - HOUR_MS, Kind::Request, "a", Outcome::Success, 4),
    ];
    let s = StatsSummary::build(&totals, &recent, T0);
    assert_eq!((s.requests.tally.events, s.requests.successes, s.requests.failures()), (100, 90, 10));
    assert!((s.requests.success_rate() - 90.0).abs() < f64::EPSILON);
    assert_eq!(s.attempts.tally.events, 115);
    assert_eq!(s.error_classes, vec![(Outcome::RateLimited, 25)]);
    assert_eq!((s.requests_today, s.tokens_today), (5, 50));
    assert_eq!(s.top_models.iter().map(|m| (m.model.as_str(), m.requests)).collect::<Vec<_>>(), [("a", 90), ("b", 10)]);
    assert_eq!(s.top_models_24h[0].model, "a");
    assert_eq!(s.hourly.len(), 24);
    assert_eq!(s.hourly[23].requests, 3, "the current hour is last");
    assert_eq!(s.hourly[21].requests, 2);
    assert_eq!(s.hourly.iter().map(|p| p.requests).sum::<u64>(), 9);
    assert_eq!(s.hourly[0].hour, hour_of(T0) - 23 * HOUR_MS);
    assert!(StatsSummary::recent_since(T0) <= day_of(T0) - HOUR_MS);
}

#[test]
fn an_empty_summary_is_all_zero_with_full_success() {
    let s = StatsSummary::build(&[], &[], T0);
    assert_eq!(s.requests.tally.events, 0);
    assert!((s.requests.success_rate() - 100.0).abs() < f64::EPSILON);
    assert_eq!(s.hourly.len(), 24);
}

#[test]
fn hours_sum_into_utc_days() {
    let point = |bucket, events| UsagePoint { bucket, events, ..UsagePoint::default() };
    let day = day_of(T0);
    let days = UsagePoint::per_day(&[point(day - HOUR_MS, 1), point(day, 2), point(day + 5 * HOUR_MS, 3)]);
    assert_eq!(days.iter().map(|d| (d.bucket, d.events)).collect::<Vec<_>>(), [(day - DAY_MS, 1), (day, 5)]);
}

#[test]
fn outcome_names_round_trip() {
    for outcome in Outcome::ALL {
        assert_eq!(Outcome::parse(outcome.as_str()), Some(outcome));
    }
    assert_eq!(Kind::parse(Kind::Attempt.as_str()), Some(Kind::Attempt));
}

#[test]
fn metrics_accumulate_across_flushes() {
    let recorder = Recorder::new(100);
    let timing = Timing { total_us: 2_000_000, ttfb_us: 1_000_000, overhead_us: 300 };
    recorder.request(T0, dims(Kind::Request, "m", 1, Outcome::Success), timing, None, false);
    let _ = recorder.take();
    recorder.request(T0, dims(Kind::Request, "m", 1, Outcome::Success), timing, None, false);
    let snapshot = recorder.metrics.snapshot();
    assert_eq!(snapshot.counters.len(), 1);
    assert_eq!(snapshot.counters[0].1, 2, "a flush does not reset metrics");
    let overhead = snapshot.histograms.iter().find(|h| h.0 == Measure::GatewayOverhead).map(|h| &h.2);
    let overhead = overhead.unwrap_or_else(|| panic!("no overhead histogram"));
    assert_eq!(overhead.count, 2);
    assert_eq!(overhead.counts[3], 2, "300 µs falls in the 0.5 ms bucket");
}

#[tokio::test]
async fn rows_on_their_way_to_the_store_still_count_as_backlog() {
    // Arrange
    let recorder = std::sync::Arc::new(Recorder::new(100));
    recorder.attempt(T0, dims(Kind::Attempt, "m", 1, Outcome::Success), 0);
    recorder.attempt(T0, dims(Kind::Attempt, "m", 2, Outcome::Success), 0);
    let store = Flaky { watch: Some(std::sync::Arc::clone(&recorder)), ..Flaky::default() };
    store.down.store(true, Relaxed);
    // Act
    let flushed = crate::accounting::flush_stats(&recorder, &store, T0).await;
    // Assert
    assert!(flushed.is_err());
    assert_eq!(*store.seen.lock().unwrap_or_else(PoisonError::into_inner), Some(2), "counted while being written");
    let after = recorder.flush_state();
    assert_eq!((after.backlog_rows, after.failures, after.failures_total), (2, 1, 1), "given back after the failure");
}

/// A store that fails while `down` is set and counts the events it was given otherwise; with
/// `watch`, it reads that recorder's backlog while a flush is writing to it.
#[derive(Default)]
struct Flaky {
    down: std::sync::atomic::AtomicBool,
    events: std::sync::atomic::AtomicU64,
    watch: Option<std::sync::Arc<Recorder>>,
    seen: Mutex<Option<usize>>,
}

#[async_trait::async_trait]
impl StatsStore for Flaky {
    async fn add_stats(&self, rollups: &Rollups) -> Result<(), StoreError> {
        if let Some(recorder) = &self.watch {
            *self.seen.lock().unwrap_or_else(PoisonError::into_inner) = Some(recorder.flush_state().backlog_rows);
        }
        if self.down.load(Relaxed) {
            return Err(StoreError::Backend(Box::new(std::io::Error::other("disk full"))));
        }
        self.events.fetch_add(rollups.minutes.iter().map(|r| r.tally.events).sum::<u64>(), Relaxed);
        Ok(())
    }
    async fn prune_stats(&self, _: UnixMs, _: UnixMs) -> Result<u64, StoreError> {
        Ok(0)
    }
    async fn stats_totals(&self, _: Option<&str>) -> Result<Vec<SummaryRow>, StoreError> {
        Ok(Vec::new())
    }
    async fn stats_hours(&self, _: Option<&str>, _: UnixMs) -> Result<Vec<SummaryRow>, StoreError> {
        Ok(Vec::new())
    }
    async fn stats_minutes(&self, _: Option<&str>, _: UnixMs) -> Result<Vec<SummaryRow>, StoreError> {
        Ok(Vec::new())
    }
    async fn usage_series(&self, _: &crate::ports::UsageQuery) -> Result<Vec<UsagePoint>, StoreError> {
        Ok(Vec::new())
    }
    async fn token_usage_since(&self, _: UnixMs) -> Result<Vec<crate::ports::TokenUsage>, StoreError> {
        Ok(Vec::new())
    }
}

#[tokio::test]
async fn the_first_flush_after_an_outage_writes_the_whole_backlog() {
    // Arrange
    let recorder = Recorder::new(100);
    let store = Flaky::default();
    store.down.store(true, Relaxed);
    for i in 0..30 {
        recorder.attempt(T0 + i * 10_000, dims(Kind::Attempt, "m", 1 + i as u128 % 3, Outcome::Success), 0);
        assert!(crate::accounting::flush_stats(&recorder, &store, T0).await.is_err());
    }
    assert_eq!(recorder.flush_state().failures_total, 30);
    // Act
    store.down.store(false, Relaxed);
    let written = crate::accounting::flush_stats(&recorder, &store, T0 + MINUTE_MS).await;
    // Assert
    assert!(written.is_ok_and(|rows| rows > 0));
    assert_eq!(store.events.load(Relaxed), 30, "every event counted during the outage");
    let after = recorder.flush_state();
    assert_eq!((after.backlog_rows, after.failures, after.last_ok), (0, 0, T0 + MINUTE_MS));
}

#[test]
fn a_flight_dropped_half_way_gives_its_rows_back() {
    let recorder = Recorder::new(100);
    recorder.attempt(T0, dims(Kind::Attempt, "m", 1, Outcome::Success), 0);
    let flight = recorder.take_flight();
    assert_eq!(recorder.flush_state().backlog_rows, 1, "still backlog while in flight");
    drop(flight);
    let after = recorder.flush_state();
    assert_eq!((after.backlog_rows, after.failures), (1, 1));
    assert_eq!(recorder.take().len(), 1);
}

#[test]
fn absurd_usage_saturates_instead_of_wrapping() {
    let mut tally = Tally { events: 1, total_tokens: u64::MAX, ..Tally::default() };
    tally.add(&Tally { events: 1, total_tokens: 5, ..Tally::default() });
    assert_eq!((tally.events, tally.total_tokens), (2, u64::MAX));
}
