//! Scenario `failover`: mixed stream and non-stream chats through the gateway while keys fail.
//!
//! Run 1, fixed faults: six of eight keys fail, one way each (401, 402, 429 with `Retry-After`,
//! 500, a dropped connection, a first byte later than the gateway's timeout). Run 2, random
//! faults: every key fails a share of its requests at random (500/502/503/dropped). The figure
//! is what a client sees: answers that are not 200, and streams that began but did not end with
//! `[DONE]` (counted apart: no fault here cuts a stream, so any would be the gateway's doing).

use serde_json::{Value, json};

use pool_testkit::Fault;

use crate::faults::{Counts, FaultPlan, KEYS, Launch, closed_loop, fixed_faults, random_fault, start_rig};
use crate::http::Client;

pub struct FailoverResult {
    pub name: String,
    pub plan: FaultPlan,
    pub counts: Counts,
}

pub async fn fixed(client: &Client, launch: Launch<'_>, plan: FaultPlan) -> anyhow::Result<FailoverResult> {
    let faults = fixed_faults();
    let names: Vec<&str> = faults.iter().map(|(name, _)| *name).collect();
    let name = format!("{} of {KEYS} keys failing ({})", names.len(), names.join(", "));
    let mut faults = faults.into_iter().map(|(_, fault)| fault);
    run(client, launch, ("fixed", name), plan, |_| faults.next()).await
}

pub async fn random(client: &Client, launch: Launch<'_>, plan: FaultPlan) -> anyhow::Result<FailoverResult> {
    let name = format!("{KEYS} keys each failing {} % at random (500/502/503/dropped)", plan.random_pct);
    run(client, launch, ("random", name), plan, |_| Some(random_fault(plan.random_pct))).await
}

/// Starts a rig, gives each key the fault `fault_of` names for it (none: healthy), and runs the load.
async fn run(
    client: &Client,
    launch: Launch<'_>,
    (rig_name, name): (&str, String),
    plan: FaultPlan,
    mut fault_of: impl FnMut(usize) -> Option<Fault>,
) -> anyhow::Result<FailoverResult> {
    let mut rig = start_rig(client, launch, rig_name).await?;
    for (i, key) in rig.keys.iter().enumerate() {
        if let Some(fault) = fault_of(i) {
            rig.upstream.set_fault(key, fault);
        }
    }
    let counts = closed_loop(client, &rig.target, plan).await?;
    rig.gateway.ensure_running()?;
    Ok(FailoverResult { name, plan, counts })
}

pub fn print(results: &[FailoverResult]) {
    for r in results {
        let c = &r.counts;
        println!(
            "\nFailover: {}\n  {} requests (half streamed), {} at a time: {} client-visible failures ({:.2} %): \
             {} not 200 or no answer, {} streams cut after their start",
            r.name,
            c.requests,
            r.plan.concurrency,
            c.visible(),
            pct(c.visible(), c.requests),
            c.failed,
            c.cut,
        );
        if let Some(e) = &c.first_error {
            println!("  first failure: {e}");
        }
    }
}

pub fn json(results: &[FailoverResult]) -> Value {
    results
        .iter()
        .map(|r| {
            json!({"name": r.name, "concurrency": r.plan.concurrency, "counts": r.counts.json(),
                   "visible_failures": r.counts.visible(), "visible_pct": pct(r.counts.visible(), r.counts.requests)})
        })
        .collect()
}

pub fn pct(part: usize, whole: usize) -> f64 {
    if whole == 0 { 0.0 } else { 100.0 * part as f64 / whole as f64 }
}
