//! The use cases that carry counts between memory and the store: a statistics flush, the
//! request log's flush and pruning, and the day's token usage read back at start.
//!
//! They sit above both what is counted ([`crate::stats`], [`crate::limit`]) and where it goes
//! ([`crate::ports`]), so that neither of those needs the other.

use crate::UnixMs;
use crate::limit::{Limiter, Subject};
use crate::ports::{RequestLogStore, StatsStore, StoreError};
use crate::reqlog::RequestLog;
use crate::stats::{Recorder, Rollups, day_of};
use crate::token::TokenIndex;

/// Entries one store call writes (one transaction): a backlog after an outage is written in
/// several, each short.
pub const REQUEST_LOG_BATCH: usize = 2_000;

/// Rows one pruning pass deletes: a pass never holds the database's locks for long.
pub const PRUNE_PASS_ROWS: u32 = 5_000;

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

/// Writes the request log's queued entries, in batches, with their tokens' names; what could
/// not be written goes back to the queue (bounded) for the next flush. Returns the entries
/// written.
pub async fn flush_request_log(
    log: &RequestLog,
    tokens: &TokenIndex,
    store: &dyn RequestLogStore,
) -> Result<usize, StoreError> {
    let mut pending = log.take();
    for entry in &mut pending {
        entry.token_name = entry.token.and_then(|id| tokens.find(id)).map(|t| t.settings().name.clone());
    }
    let mut written = 0;
    while written < pending.len() {
        let end = (written + REQUEST_LOG_BATCH).min(pending.len());
        if let Err(e) = store.append_requests(&pending[written..end]).await {
            log.restore(pending.split_off(written));
            return Err(e);
        }
        written = end;
    }
    Ok(written)
}

/// Deletes request log entries from before `before`, one bounded pass after another until none
/// is left. Returns the entries deleted.
pub async fn prune_request_log(store: &dyn RequestLogStore, before: UnixMs) -> Result<u64, StoreError> {
    let mut deleted = 0;
    loop {
        let pass = store.prune_requests(before, PRUNE_PASS_ROWS).await?;
        deleted += pass;
        if pass < u64::from(PRUNE_PASS_ROWS) {
            return Ok(deleted);
        }
    }
}
