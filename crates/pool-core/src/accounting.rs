//! The use cases that carry counts between memory and the store: a statistics flush, and the
//! day's token usage read back at start.
//!
//! They sit above both what is counted ([`crate::stats`], [`crate::limit`]) and where it goes
//! ([`crate::ports`]), so that neither of those needs the other.

use crate::UnixMs;
use crate::limit::{Limiter, Subject};
use crate::ports::{StatsStore, StoreError};
use crate::stats::{Recorder, Rollups, day_of};

/// Writes what the recorder accumulated to the store; on failure (or if this future is dropped
/// half-way) the rows stay for the next flush. Returns the number of rows written.
pub async fn flush_stats(recorder: &Recorder, store: &dyn StatsStore, now: UnixMs) -> Result<usize, StoreError> {
    let flight = recorder.take_flight();
    if !flight.rows().is_empty() {
        store.add_stats(&Rollups::of(flight.rows())).await?;
    }
    Ok(flight.landed(now))
}

/// Restores every token's use of the current UTC day from the statistics, so a restart does not
/// hand out a second daily quota. Returns the number of tokens restored.
pub async fn restore_today(stats: &dyn StatsStore, limiter: &dyn Limiter, now: UnixMs) -> Result<usize, StoreError> {
    let used = stats.token_usage_since(day_of(now)).await?;
    for u in &used {
        limiter.restore_day(Subject::Token(u.token), u.requests, u.tokens, now);
    }
    Ok(used.len())
}
