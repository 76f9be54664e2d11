//! The console's request trend: client requests per bucket, split into successes, client errors
//! and failures, over one of four ranges, with the totals of the range and of the one before it
//! (for "change against the previous period").

use super::{DAY_MS, HOUR_MS, Kind, MINUTE_MS, Outcome, SummaryRow, day_of, hour_of, minute_of};
use crate::UnixMs;

/// A preset range and the bucket it is drawn with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TrendRange {
    /// The last hour, per minute (from the per-minute rollup).
    Hour,
    /// The last 24 hours, per hour.
    Day,
    /// The last 7 days, per hour.
    Week,
    /// The last 30 days, per day.
    Month,
}

impl TrendRange {
    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "1h" => Some(Self::Hour),
            "24h" => Some(Self::Day),
            "7d" => Some(Self::Week),
            "30d" => Some(Self::Month),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hour => "1h",
            Self::Day => "24h",
            Self::Week => "7d",
            Self::Month => "30d",
        }
    }

    /// The width of a bucket.
    pub fn step_ms(self) -> UnixMs {
        match self {
            Self::Hour => MINUTE_MS,
            Self::Day | Self::Week => HOUR_MS,
            Self::Month => DAY_MS,
        }
    }

    pub fn granularity(self) -> &'static str {
        match self {
            Self::Hour => "minute",
            Self::Day | Self::Week => "hour",
            Self::Month => "day",
        }
    }

    /// Buckets in the range.
    pub fn buckets(self) -> usize {
        match self {
            Self::Hour => 60,
            Self::Day => 24,
            Self::Week => 168,
            Self::Month => 30,
        }
    }

    /// Whether the rows come from the per-minute rollup (else from the hourly summary).
    pub fn per_minute(self) -> bool {
        self == Self::Hour
    }

    fn floor(self, at: UnixMs) -> UnixMs {
        match self {
            Self::Hour => minute_of(at),
            Self::Day | Self::Week => hour_of(at),
            Self::Month => day_of(at),
        }
    }

    /// The first bucket of the range ending with the bucket of `now`.
    pub fn first_bucket(self, now: UnixMs) -> UnixMs {
        self.floor(now) - self.step_ms() * (self.buckets() as i64 - 1)
    }

    /// The first bucket of the previous range: what must be read for the comparison.
    pub fn read_since(self, now: UnixMs) -> UnixMs {
        self.first_bucket(now) - self.step_ms() * self.buckets() as i64
    }
}

/// Client requests in one bucket (or one range), by how they ended.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TrendPoint {
    pub at: UnixMs,
    pub successes: u64,
    /// The request itself was wrong: refused by the gateway or by the upstream (4xx, no key blamed).
    pub client_errors: u64,
    /// Everything else: no key, every attempt failed, broken streams, cancellations.
    pub failures: u64,
    pub total_tokens: u64,
}

impl TrendPoint {
    pub fn requests(&self) -> u64 {
        self.successes + self.client_errors + self.failures
    }

    fn add(&mut self, outcome: Outcome, events: u64, tokens: u64) {
        match outcome {
            o if o.is_success() => self.successes += events,
            Outcome::ClientError | Outcome::Rejected => self.client_errors += events,
            _ => self.failures += events,
        }
        self.total_tokens += tokens;
    }
}

/// The trend of a range: one point per bucket (empty ones included), oldest first, with the
/// totals of the range and of the range before it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Trend {
    pub points: Vec<TrendPoint>,
    pub current: TrendPoint,
    pub previous: TrendPoint,
}

impl Trend {
    /// `rows`: request rows from [`TrendRange::read_since`] on (per minute for the hour range,
    /// per hour otherwise).
    pub fn build(range: TrendRange, rows: &[SummaryRow], now: UnixMs) -> Self {
        let first = range.first_bucket(now);
        let step = range.step_ms();
        let mut points: Vec<TrendPoint> =
            (0..range.buckets()).map(|i| TrendPoint { at: first + step * i as i64, ..TrendPoint::default() }).collect();
        let mut previous = TrendPoint { at: range.read_since(now), ..TrendPoint::default() };
        for row in rows.iter().filter(|r| r.kind == Kind::Request) {
            let bucket = range.floor(row.bucket);
            let (events, tokens) = (row.tally.events, row.tally.total_tokens);
            if bucket < first {
                if bucket >= previous.at {
                    previous.add(row.outcome, events, tokens);
                }
                continue;
            }
            if let Some(point) = usize::try_from((bucket - first) / step).ok().and_then(|i| points.get_mut(i)) {
                point.add(row.outcome, events, tokens);
            }
        }
        let mut current = TrendPoint { at: first, ..TrendPoint::default() };
        for p in &points {
            current.successes += p.successes;
            current.client_errors += p.client_errors;
            current.failures += p.failures;
            current.total_tokens += p.total_tokens;
        }
        Self { points, current, previous }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::Tally;

    fn row(bucket: UnixMs, outcome: Outcome, events: u64) -> SummaryRow {
        SummaryRow {
            bucket,
            kind: Kind::Request,
            provider: String::new(),
            model: String::new(),
            status: 0,
            outcome,
            tally: Tally { events, total_tokens: events * 10, ..Tally::default() },
        }
    }

    #[test]
    fn requests_fall_in_their_bucket_by_how_they_ended_and_the_range_before_is_summed_apart() {
        // Arrange: now is 10:30 on day 3; the 24 h range is 11:00 on day 2 to 10:00 on day 3.
        let now = 2 * DAY_MS + 10 * HOUR_MS + 30 * MINUTE_MS;
        let rows = [
            row(now - 5 * MINUTE_MS, Outcome::Success, 3),
            row(hour_of(now), Outcome::ClientError, 1),
            row(hour_of(now) - HOUR_MS, Outcome::Failed, 2),
            row(hour_of(now) - 30 * HOUR_MS, Outcome::Cached, 4),
            row(hour_of(now) - 60 * HOUR_MS, Outcome::Success, 100),
        ];

        // Act
        let trend = Trend::build(TrendRange::Day, &rows, now);

        // Assert
        assert_eq!(trend.points.len(), 24);
        let last = trend.points[23];
        assert_eq!((last.at, last.successes, last.client_errors), (hour_of(now), 3, 1));
        assert_eq!(trend.points[22].failures, 2);
        assert_eq!((trend.current.requests(), trend.current.total_tokens), (6, 60));
        assert_eq!(trend.previous.successes, 4, "the row before both ranges is left out");
    }

    #[test]
    fn the_month_is_drawn_per_day_and_the_hour_per_minute() {
        let now = 40 * DAY_MS + 5 * HOUR_MS;
        let trend = Trend::build(TrendRange::Month, &[row(now - HOUR_MS, Outcome::Success, 1)], now);
        assert_eq!((trend.points.len(), trend.points[29].at, trend.points[29].successes), (30, 40 * DAY_MS, 1));
        assert_eq!(TrendRange::Hour.first_bucket(now), now - 59 * MINUTE_MS);
        assert_eq!(TrendRange::parse("7d").map(TrendRange::buckets), Some(168));
        assert_eq!(TrendRange::parse("2d"), None);
    }
}
