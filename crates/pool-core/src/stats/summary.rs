//! What the statistics endpoints show, computed from pre-aggregated rows: the all-time totals
//! and the hourly summary of the last day (a few thousand rows at most, whatever the traffic).

use std::collections::HashMap;

use super::{DAY_MS, HOUR_MS, Kind, Outcome, Tally, day_of, hour_of};
use crate::UnixMs;

/// A row of a rollup without key and token, as the store returns it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SummaryRow {
    /// The hour (0 for all-time totals).
    pub bucket: UnixMs,
    pub kind: Kind,
    pub provider: String,
    pub model: String,
    pub status: u16,
    pub outcome: Outcome,
    pub tally: Tally,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ModelCount {
    pub model: String,
    pub requests: u64,
    pub total_tokens: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HourPoint {
    pub hour: UnixMs,
    pub requests: u64,
    pub successes: u64,
    pub total_tokens: u64,
}

/// Requests (or attempts) and what they carried.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    pub tally: Tally,
    pub successes: u64,
}

impl Totals {
    fn add(&mut self, row: &SummaryRow) {
        self.tally.add(&row.tally);
        if row.outcome.is_success() {
            self.successes += row.tally.events;
        }
    }

    pub fn failures(&self) -> u64 {
        self.tally.events - self.successes
    }

    /// Percent of requests that succeeded (100 when there were none: nothing failed).
    #[expect(clippy::cast_precision_loss, reason = "a percentage for display")]
    pub fn success_rate(&self) -> f64 {
        if self.tally.events == 0 {
            return 100.0;
        }
        (self.successes as f64 * 10_000.0 / self.tally.events as f64).round() / 100.0
    }

    /// Mean of a summed duration over the events, in milliseconds.
    #[expect(clippy::cast_precision_loss, reason = "a mean for display")]
    pub fn mean_ms(&self, sum_ms: u64) -> f64 {
        if self.tally.events == 0 { 0.0 } else { sum_ms as f64 / self.tally.events as f64 }
    }
}

/// Everything `/admin/stats` and `/admin/public-stats` show about traffic.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StatsSummary {
    pub requests: Totals,
    pub attempts: Totals,
    pub requests_today: u64,
    pub tokens_today: u64,
    /// All time, most requested first (at most 10).
    pub top_models: Vec<ModelCount>,
    /// The last 24 hours, most requested first (at most 10).
    pub top_models_24h: Vec<ModelCount>,
    /// The last 24 hours, oldest first, every hour present.
    pub hourly: Vec<HourPoint>,
    /// Failed attempts by outcome class, most frequent first.
    pub error_classes: Vec<(Outcome, u64)>,
    /// Requests by the status the client got, most frequent first.
    pub statuses: Vec<(u16, u64)>,
}

impl StatsSummary {
    /// `totals`: the all-time rows; `recent`: hourly rows since [`Self::recent_since`].
    pub fn build(totals: &[SummaryRow], recent: &[SummaryRow], now: UnixMs) -> Self {
        let mut summary = Self::default();
        let mut errors: HashMap<Outcome, u64> = HashMap::new();
        let mut statuses: HashMap<u16, u64> = HashMap::new();
        for row in totals {
            match row.kind {
                Kind::Request => {
                    summary.requests.add(row);
                    *statuses.entry(row.status).or_default() += row.tally.events;
                }
                Kind::Attempt => {
                    summary.attempts.add(row);
                    if !row.outcome.is_success() {
                        *errors.entry(row.outcome).or_default() += row.tally.events;
                    }
                }
            }
        }
        summary.top_models = top_models(totals.iter(), 10);
        summary.error_classes = by_count_desc(errors);
        summary.statuses = by_count_desc(statuses);

        let (today, first_hour) = (day_of(now), hour_of(now) - 23 * HOUR_MS);
        let requests = || recent.iter().filter(|r| r.kind == Kind::Request);
        for row in requests().filter(|r| r.bucket >= today) {
            summary.requests_today += row.tally.events;
            summary.tokens_today += row.tally.total_tokens;
        }
        summary.top_models_24h = top_models(requests().filter(|r| r.bucket >= first_hour), 10);
        summary.hourly = hour_series(requests(), first_hour, 24);
        summary
    }

    /// The earliest hour [`Self::build`] needs in `recent`.
    pub fn recent_since(now: UnixMs) -> UnixMs {
        day_of(now).min(hour_of(now) - 23 * HOUR_MS)
    }
}

/// Request rows summed per hour from `first_hour`, `hours` of them, zero-filled.
fn hour_series<'a>(rows: impl Iterator<Item = &'a SummaryRow>, first_hour: UnixMs, hours: usize) -> Vec<HourPoint> {
    let mut series: Vec<HourPoint> = (0..hours)
        .map(|i| HourPoint { hour: first_hour + HOUR_MS * i64::try_from(i).unwrap_or(0), ..HourPoint::default() })
        .collect();
    for row in rows.filter(|r| r.kind == Kind::Request && r.bucket >= first_hour) {
        let Ok(index) = usize::try_from((row.bucket - first_hour) / HOUR_MS) else { continue };
        if let Some(point) = series.get_mut(index) {
            point.requests += row.tally.events;
            point.total_tokens += row.tally.total_tokens;
            if row.outcome.is_success() {
                point.successes += row.tally.events;
            }
        }
    }
    series
}

/// The most requested models among request rows (requests that named none are left out).
fn top_models<'a>(rows: impl Iterator<Item = &'a SummaryRow>, n: usize) -> Vec<ModelCount> {
    let mut by_model: HashMap<&str, ModelCount> = HashMap::new();
    for row in rows.filter(|r| r.kind == Kind::Request && !r.model.is_empty()) {
        let entry = by_model
            .entry(&row.model)
            .or_insert_with(|| ModelCount { model: row.model.clone(), ..ModelCount::default() });
        entry.requests += row.tally.events;
        entry.total_tokens += row.tally.total_tokens;
    }
    let mut models: Vec<ModelCount> = by_model.into_values().collect();
    models.sort_by(|a, b| b.requests.cmp(&a.requests).then_with(|| a.model.cmp(&b.model)));
    models.truncate(n);
    models
}

fn by_count_desc<K: Ord + Copy>(counts: HashMap<K, u64>) -> Vec<(K, u64)> {
    let mut out: Vec<(K, u64)> = counts.into_iter().collect();
    out.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    out
}

/// The resolution of a usage series.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Granularity {
    /// From the per-minute rollup (kept 48 h by default).
    Minute,
    Hour,
    /// Hours summed per UTC day.
    Day,
}

impl Granularity {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "minute" => Some(Self::Minute),
            "hour" => Some(Self::Hour),
            "day" => Some(Self::Day),
            _ => None,
        }
    }

    pub fn step_ms(self) -> UnixMs {
        match self {
            Self::Minute => super::MINUTE_MS,
            Self::Hour => HOUR_MS,
            Self::Day => DAY_MS,
        }
    }
}

/// One bucket of a usage series (per token, key or model).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UsagePoint {
    pub bucket: UnixMs,
    pub events: u64,
    pub successes: u64,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub total_tokens: u64,
    pub partial: u64,
}

impl UsagePoint {
    pub fn add(&mut self, other: &Self) {
        self.events += other.events;
        self.successes += other.successes;
        self.prompt_tokens += other.prompt_tokens;
        self.completion_tokens += other.completion_tokens;
        self.total_tokens += other.total_tokens;
        self.partial += other.partial;
    }

    /// Hourly points summed per UTC day, in order.
    pub fn per_day(hours: &[Self]) -> Vec<Self> {
        let mut days: Vec<Self> = Vec::new();
        for point in hours {
            let day = day_of(point.bucket);
            match days.last_mut() {
                Some(last) if last.bucket == day => last.add(point),
                _ => days.push(Self { bucket: day, ..*point }),
            }
        }
        days
    }
}
