//! Flushing key counters and health.

use std::sync::Arc;

use pool_core::ids::KeyId;
use pool_core::key::{Health, Hold, HoldCause, KeyStatus};
use pool_core::pool::{CounterValues, KeyDelta, ModelSet};
use pool_core::ports::{KeyRecord, Store};
use tokio::task::JoinSet;

use crate::support::{T0, contract, key, keys};

contract!(
    flushed_deltas_add_up_across_flushes,
    concurrent_flushes_from_several_tasks_add_up_exactly,
    every_health_written_by_a_flush_reads_back,
    a_flush_without_health_leaves_the_stored_health_alone,
    a_flush_ignores_ids_it_does_not_know,
    deltas_for_one_key_in_one_flush_all_count,
    a_manual_hold_reads_back_as_manual,
    discovered_models_are_stored_kept_and_cleared,
);

fn counts(requests: u64, successes: u64, failures: u64) -> CounterValues {
    CounterValues { requests, successes, failures, ..CounterValues::default() }
}

fn delta(id: KeyId, counters: CounterValues) -> KeyDelta {
    KeyDelta { id, counters, health: None, models: None }
}

async fn stored_key(store: &Arc<dyn Store>) -> KeyId {
    let key = key("openai", "sk-flushed");
    store.insert_keys(std::slice::from_ref(&key)).await.expect("insert");
    key.id
}

async fn record(store: &Arc<dyn Store>, id: KeyId) -> KeyRecord {
    let records = store.load_keys().await.expect("keys load");
    records.into_iter().find(|r| r.key.id == id).expect("the key is stored")
}

async fn flushed_deltas_add_up_across_flushes(store: &Arc<dyn Store>) {
    // Arrange
    let id = stored_key(store).await;
    let first = CounterValues { last_used: Some(T0 + 100), last_success: Some(T0 + 90), ..counts(3, 2, 1) };
    let second = CounterValues { last_used: Some(T0 + 50), last_failure: Some(T0 + 40), ..counts(2, 1, 1) };
    // Act
    store.flush_keys(&[delta(id, first)]).await.expect("first flush");
    store.flush_keys(&[delta(id, second)]).await.expect("second flush");
    // Assert
    let want = CounterValues {
        last_used: Some(T0 + 100),
        last_success: Some(T0 + 90),
        last_failure: Some(T0 + 40),
        ..counts(5, 3, 2)
    };
    assert_eq!(record(store, id).await.counters, want);
}

async fn concurrent_flushes_from_several_tasks_add_up_exactly(store: &Arc<dyn Store>) {
    // Arrange
    const TASKS: u64 = 8;
    const FLUSHES: u64 = 25;
    let batch = keys("openai", 3);
    store.insert_keys(&batch).await.expect("insert");
    let ids: Vec<KeyId> = batch.iter().map(|k| k.id).collect();
    let mut tasks = JoinSet::new();
    // Act: every task flushes all three keys, half of them in reverse order.
    for task in 0..TASKS {
        let (store, mut ids) = (Arc::clone(store), ids.clone());
        if task % 2 == 1 {
            ids.reverse();
        }
        tasks.spawn(async move {
            for _ in 0..FLUSHES {
                let deltas: Vec<KeyDelta> = ids.iter().map(|&id| delta(id, counts(1, 1, 0))).collect();
                store.flush_keys(&deltas).await.expect("flush");
            }
        });
    }
    tasks.join_all().await;
    // Assert
    for record in store.load_keys().await.expect("keys load") {
        assert_eq!(record.counters, counts(TASKS * FLUSHES, TASKS * FLUSHES, 0));
    }
}

fn held(status: KeyStatus, until: Option<i64>, strikes: u32) -> Health {
    held_for(status, HoldCause::Errors, false, until, strikes)
}

fn held_for(status: KeyStatus, cause: HoldCause, probe: bool, until: Option<i64>, strikes: u32) -> Health {
    let reason = format!("{} for a test", status.as_str());
    Health { hold: Some(Hold { status, reason, since: T0, until, cause, probe }), strikes }
}

async fn every_health_written_by_a_flush_reads_back(store: &Arc<dyn Store>) {
    // Arrange
    let id = stored_key(store).await;
    let healths = [
        held(KeyStatus::Cooling, Some(T0 + 60_000), 0),
        held_for(KeyStatus::Cooling, HoldCause::RateLimit, true, Some(T0 + 60_000), 0),
        held_for(KeyStatus::Failed, HoldCause::Rejected, true, Some(T0 + 3_600_000), 1),
        held_for(KeyStatus::Disabled, HoldCause::Operator, false, None, 0),
        held(KeyStatus::Disabled, Some(T0 + 7_200_000), 3),
        held(KeyStatus::Disabled, None, 0),
        held(KeyStatus::Expired, Some(T0), 0),
        Health { hold: None, strikes: 2 },
        Health::default(),
    ];
    for health in healths {
        // Act
        let flushed = KeyDelta { health: Some(health.clone()), ..delta(id, CounterValues::default()) };
        store.flush_keys(&[flushed]).await.expect("flush");
        // Assert
        assert_eq!(record(store, id).await.health, health);
    }
}

async fn a_flush_without_health_leaves_the_stored_health_alone(store: &Arc<dyn Store>) {
    // Arrange
    let id = stored_key(store).await;
    let disabled = held(KeyStatus::Disabled, None, 4);
    let with_health = KeyDelta { health: Some(disabled.clone()), ..delta(id, counts(1, 0, 1)) };
    store.flush_keys(&[with_health]).await.expect("flush with health");
    // Act
    store.flush_keys(&[delta(id, counts(1, 1, 0))]).await.expect("flush without health");
    // Assert
    let record = record(store, id).await;
    assert_eq!(record.health, disabled);
    assert_eq!(record.counters, counts(2, 1, 1));
}

async fn a_flush_ignores_ids_it_does_not_know(store: &Arc<dyn Store>) {
    // Arrange
    let id = stored_key(store).await;
    let gone = key("openai", "sk-never-stored").id;
    let sick = KeyDelta { health: Some(held(KeyStatus::Failed, Some(T0), 1)), ..delta(gone, counts(9, 0, 9)) };
    // Act
    store.flush_keys(&[sick, delta(id, counts(1, 1, 0))]).await.expect("flush");
    // Assert
    let records = store.load_keys().await.expect("keys load");
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].counters, counts(1, 1, 0));
}

async fn deltas_for_one_key_in_one_flush_all_count(store: &Arc<dyn Store>) {
    // Arrange
    let id = stored_key(store).await;
    let cooling = held(KeyStatus::Cooling, Some(T0 + 5_000), 2);
    let deltas = [
        KeyDelta { health: Some(cooling.clone()), ..delta(id, counts(1, 0, 1)) },
        delta(id, CounterValues { last_used: Some(T0 + 7), ..counts(2, 2, 0) }),
    ];
    // Act
    store.flush_keys(&deltas).await.expect("flush");
    // Assert
    let record = record(store, id).await;
    assert_eq!(record.counters, CounterValues { last_used: Some(T0 + 7), ..counts(3, 2, 1) });
    assert_eq!(record.health, cooling);
}

async fn a_manual_hold_reads_back_as_manual(store: &Arc<dyn Store>) {
    // Arrange
    let id = stored_key(store).await;
    let mut health = Health::default();
    health.disable("operator".into(), T0, None);
    // Act
    store
        .flush_keys(&[KeyDelta { health: Some(health.clone()), ..delta(id, CounterValues::default()) }])
        .await
        .expect("flush");
    // Assert
    let loaded = record(store, id).await.health;
    assert_eq!(loaded, health);
    assert!(loaded.hold.is_some_and(|h| h.manual()));
}

async fn discovered_models_are_stored_kept_and_cleared(store: &Arc<dyn Store>) {
    // Arrange
    let id = stored_key(store).await;
    let set = ModelSet { names: ["llama3".to_owned(), "qwen'; DROP TABLE x; --".to_owned()].into(), discovered_at: T0 };
    // Act + Assert: stored
    store
        .flush_keys(&[KeyDelta { models: Some(Some(set.clone())), ..delta(id, counts(1, 1, 0)) }])
        .await
        .expect("flush");
    assert_eq!(record(store, id).await.models, Some(set.clone()));
    // a flush without a model change keeps them
    store.flush_keys(&[delta(id, counts(1, 1, 0))]).await.expect("flush");
    assert_eq!(record(store, id).await.models, Some(set));
    // clearing them
    store.flush_keys(&[KeyDelta { models: Some(None), ..delta(id, CounterValues::default()) }]).await.expect("flush");
    assert_eq!(record(store, id).await.models, None);
}
