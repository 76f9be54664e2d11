//! Scenario `pick`: what `KeyPool::pick` costs over a large pool, all keys healthy against
//! nearly all cooling, in this process (no HTTP: the figure is the selector's scan alone).
//!
//! The healthy keys of the cooling pool are spread evenly (one in a hundred), so a pick scans
//! about a hundred keys before it finds one: the typical case of a pool whose keys hit their
//! upstream limits one after the other, not the worst case of one healthy key at the far end.

use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use pool_core::ids::KeyId;
use pool_core::key::{FailurePolicy, KeyEvent};
use pool_core::limit::LocalLimiter;
use pool_core::pool::{KeyPool, Pick, PoolKey};
use pool_core::provider::ProviderName;
use pool_core::secret::Secret;
use serde_json::{Value, json};
use uuid::Uuid;

/// How many keys, rounds and picks per round; `--quick` makes every count small.
#[derive(Clone, Copy, Debug)]
pub struct PickPlan {
    pub keys: usize,
    pub rounds: usize,
    pub picks: usize,
    /// One key in `healthy_every` stays healthy in the cooling pool.
    pub healthy_every: usize,
}

impl PickPlan {
    pub fn new(quick: bool) -> Self {
        if quick {
            Self { keys: 100_000, rounds: 3, picks: 1_000, healthy_every: 100 }
        } else {
            Self { keys: 100_000, rounds: 9, picks: 20_000, healthy_every: 100 }
        }
    }
}

pub struct PickResult {
    pub plan: PickPlan,
    /// Median over the rounds of ns per pick.
    pub healthy_ns: f64,
    pub cooling_ns: f64,
}

pub fn run(plan: PickPlan) -> anyhow::Result<PickResult> {
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis().try_into()?;
    let healthy = pool(plan.keys, now)?;
    let cooling = pool(plan.keys, now)?;
    let policy = FailurePolicy::default();
    let hour = KeyEvent::RateLimited { rest_ms: 3_600_000, reason: "benchmark: cooling for an hour".into() };
    for (i, key) in cooling.snapshot().iter().enumerate() {
        if !i.is_multiple_of(plan.healthy_every) {
            key.record(&hour, &policy, now);
        }
    }
    Ok(PickResult { plan, healthy_ns: median_ns(&healthy, plan, now)?, cooling_ns: median_ns(&cooling, plan, now)? })
}

fn pool(n: usize, now: i64) -> anyhow::Result<KeyPool> {
    let provider = ProviderName::parse("ollama")?;
    let keys = (0..n)
        .map(|i| {
            let id = KeyId::from_uuid(Uuid::from_u128(i as u128 + 1));
            Arc::new(PoolKey::new(id, provider.clone(), Secret::new(format!("sk-pick-{i}")), None, now, None))
        })
        .collect();
    let pool = KeyPool::default();
    pool.add(keys);
    Ok(pool)
}

/// The median of `plan.rounds` rounds of `plan.picks` picks each, in ns per pick.
fn median_ns(pool: &KeyPool, plan: PickPlan, now: i64) -> anyhow::Result<f64> {
    let limiter = LocalLimiter::default();
    let mut rounds = Vec::with_capacity(plan.rounds);
    for _ in 0..plan.rounds {
        let started = Instant::now();
        for _ in 0..plan.picks {
            // The admission is dropped at once, as an attempt's would be when it ends.
            let picked = pool.pick(now, &[], None, &limiter);
            anyhow::ensure!(matches!(picked, Pick::Key(..)), "no key picked: {picked:?}");
        }
        rounds.push(started.elapsed().as_nanos() as f64 / plan.picks as f64);
    }
    rounds.sort_by(f64::total_cmp);
    Ok(rounds[rounds.len() / 2])
}

pub fn print(result: Option<&PickResult>) {
    let Some(r) = result else { return };
    println!("\nKey pick cost ({} keys, median of {} rounds of {} picks)", r.plan.keys, r.plan.rounds, r.plan.picks);
    println!("  all healthy:                       {:>10.0} ns per pick", r.healthy_ns);
    let cooling_pct = 100.0 - 100.0 / r.plan.healthy_every as f64;
    println!(
        "  {cooling_pct:.0} % cooling (1 in {} healthy):    {:>10.0} ns per pick",
        r.plan.healthy_every, r.cooling_ns
    );
}

pub fn json(result: Option<&PickResult>) -> Value {
    result.map_or(Value::Null, |r| {
        json!({"keys": r.plan.keys, "rounds": r.plan.rounds, "picks": r.plan.picks,
               "healthy_ns": r.healthy_ns, "cooling_ns": r.cooling_ns, "healthy_every": r.plan.healthy_every})
    })
}
