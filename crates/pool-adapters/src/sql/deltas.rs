//! What both backends share on a flush: merging the deltas of one batch, and the status columns
//! a changed health becomes.
//!
//! Merging first means each backend sees every id once, in id order: a PostgreSQL `UPDATE … FROM`
//! would apply only one of two rows for the same id, and a fixed order makes concurrent flushes
//! lock rows in the same sequence.

use std::collections::BTreeMap;

use pool_core::UnixMs;
use pool_core::ids::{KeyId, TokenId};
use pool_core::key::{Health, Hold, HoldCause, KeyStatus};
use pool_core::pool::{CounterValues, KeyDelta, ModelSet};
use pool_core::token::TokenDelta;

/// A counter as a bindable integer; saturates (no counter reaches `i64::MAX`).
pub(crate) fn bindable(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// The status columns a flush writes. All `None` (a delta without health) leaves the stored
/// health alone; no hold (or a hold that says `active`) is `active` with reason and times cleared.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct HealthColumns {
    pub status: Option<&'static str>,
    pub reason: Option<String>,
    pub since: Option<UnixMs>,
    pub until: Option<UnixMs>,
    pub strikes: Option<i32>,
    /// The hold's cause and half-open flag as one code ([`cause_code`]).
    pub cause: Option<i32>,
}

/// Probe-before-serving flag in the cause code.
const PROBE_BIT: i32 = 8;

/// The `status_cause` column of a hold (see migration 0005).
pub(crate) fn cause_code(hold: &Hold) -> i32 {
    let cause = match hold.cause {
        HoldCause::Operator => 1,
        HoldCause::RateLimit => 2,
        HoldCause::Rejected => 3,
        HoldCause::Errors => 4,
    };
    if hold.probe { cause | PROBE_BIT } else { cause }
}

/// A hold's cause and half-open flag from its `status_cause` column; a hold stored before
/// causes were kept (0) takes the cause its status implies.
pub(crate) fn cause_of(code: i32, status: KeyStatus) -> (HoldCause, bool) {
    let cause = match code & (PROBE_BIT - 1) {
        1 => HoldCause::Operator,
        2 => HoldCause::RateLimit,
        3 => HoldCause::Rejected,
        4 => HoldCause::Errors,
        _ => match status {
            KeyStatus::Cooling => HoldCause::RateLimit,
            KeyStatus::Failed => HoldCause::Rejected,
            KeyStatus::Active | KeyStatus::Disabled | KeyStatus::Expired => HoldCause::Errors,
        },
    };
    (cause, code & PROBE_BIT != 0)
}

impl HealthColumns {
    pub(crate) fn of(health: Option<&Health>) -> Self {
        let Some(health) = health else {
            return Self::default();
        };
        let strikes = Some(i32::try_from(health.strikes).unwrap_or(i32::MAX));
        match &health.hold {
            Some(hold) if hold.status != KeyStatus::Active => Self {
                status: Some(hold.status.as_str()),
                reason: Some(hold.reason.clone()),
                since: Some(hold.since),
                until: hold.until,
                strikes,
                cause: Some(cause_code(hold)),
            },
            _ => Self { status: Some(KeyStatus::Active.as_str()), strikes, cause: Some(0), ..Self::default() },
        }
    }
}

/// The model columns a flush writes: `changed` 0 leaves the stored list alone.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct ModelColumns {
    pub changed: i32,
    /// A JSON array of names; `None` clears the list (the key serves anything again).
    pub json: Option<String>,
    pub at: Option<UnixMs>,
}

impl ModelColumns {
    pub(crate) fn of(change: Option<&Option<ModelSet>>) -> Self {
        match change {
            None => Self::default(),
            Some(None) => Self { changed: 1, ..Self::default() },
            Some(Some(set)) => {
                Self { changed: 1, json: serde_json::to_string(&set.names).ok(), at: Some(set.discovered_at) }
            }
        }
    }
}

/// Folds deltas that name the same key into one (counters add up, the latest instants and the
/// last health win), ordered by id.
pub(crate) fn merge_key_deltas(deltas: &[KeyDelta]) -> Vec<KeyDelta> {
    let mut merged: BTreeMap<KeyId, KeyDelta> = BTreeMap::new();
    for delta in deltas {
        match merged.get_mut(&delta.id) {
            Some(into) => {
                add_counters(&mut into.counters, &delta.counters);
                if delta.health.is_some() {
                    into.health.clone_from(&delta.health);
                }
                if delta.models.is_some() {
                    into.models.clone_from(&delta.models);
                }
            }
            None => {
                merged.insert(delta.id, delta.clone());
            }
        }
    }
    merged.into_values().collect()
}

fn add_counters(into: &mut CounterValues, more: &CounterValues) {
    into.requests = into.requests.saturating_add(more.requests);
    into.successes = into.successes.saturating_add(more.successes);
    into.failures = into.failures.saturating_add(more.failures);
    into.last_used = into.last_used.max(more.last_used);
    into.last_success = into.last_success.max(more.last_success);
    into.last_failure = into.last_failure.max(more.last_failure);
}

/// [`merge_key_deltas`] for tokens.
pub(crate) fn merge_token_deltas(deltas: &[TokenDelta]) -> Vec<TokenDelta> {
    let mut merged: BTreeMap<TokenId, TokenDelta> = BTreeMap::new();
    for delta in deltas {
        merged
            .entry(delta.id)
            .and_modify(|into| {
                into.requests = into.requests.saturating_add(delta.requests);
                into.last_used = into.last_used.max(delta.last_used);
            })
            .or_insert_with(|| delta.clone());
    }
    merged.into_values().collect()
}

#[cfg(test)]
mod tests {
    use pool_core::key::Hold;
    use uuid::Uuid;

    use super::*;

    fn key_delta(id: KeyId, requests: u64, last_used: Option<UnixMs>, health: Option<Health>) -> KeyDelta {
        let counters = CounterValues { requests, last_used, ..CounterValues::default() };
        KeyDelta { id, counters, health, models: None }
    }

    #[test]
    fn deltas_for_one_key_add_up_and_the_last_health_wins() {
        let id = KeyId::from_uuid(Uuid::now_v7());
        let sick = Health { hold: None, strikes: 2 };
        let deltas = [
            key_delta(id, 1, Some(5), Some(sick.clone())),
            key_delta(id, 2, None, None),
            key_delta(id, 3, Some(4), None),
        ];
        let merged = merge_key_deltas(&deltas);
        assert_eq!(merged, vec![key_delta(id, 6, Some(5), Some(sick))]);
    }

    #[test]
    fn a_hold_that_says_active_is_stored_as_no_hold() {
        let hold = Hold {
            status: KeyStatus::Active,
            reason: "x".into(),
            since: 1,
            until: Some(2),
            cause: HoldCause::Errors,
            probe: false,
        };
        let columns = HealthColumns::of(Some(&Health { hold: Some(hold), strikes: 1 }));
        assert_eq!(columns, HealthColumns::of(Some(&Health { hold: None, strikes: 1 })));
    }
}
