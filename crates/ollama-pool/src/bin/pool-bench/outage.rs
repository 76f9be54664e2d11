//! Scenario `outage`: a steady rate of chats through the gateway, the whole upstream out of
//! service for a while (every key answering 503), then back. The figures are how long after the
//! upstream's return the first request succeeds, and from when on every request does; and the
//! failures during and after the outage.
//!
//! Every key fails during the outage, so the gateway's key health decides the recovery: a key
//! held for longer than the window after the return shows as "no success within the window".

use std::time::{Duration, Instant};

use pool_testkit::Outage;
use serde_json::{Value, json};
use tokio::task::JoinSet;

use crate::faults::{Counts, FaultPlan, Launch, Seen, one, start_rig};
use crate::http::Client;

pub struct OutageResult {
    pub plan: FaultPlan,
    pub before: Counts,
    pub during: Counts,
    pub after: Counts,
    /// From the upstream's return to the first success that completed after it.
    pub first_success: Option<Duration>,
    /// From the upstream's return to the start of the run of successes that lasted to the end.
    pub sustained: Option<Duration>,
}

/// One request: when it was sent (from the run's start), when it ended, and how.
struct Sent {
    at: Duration,
    ended: Duration,
    seen: Seen,
}

pub async fn run(client: &Client, launch: Launch<'_>, plan: FaultPlan) -> anyhow::Result<OutageResult> {
    let mut rig = start_rig(client, launch, "outage").await?;
    let down_at = plan.before_outage;
    let back_at = down_at + plan.outage;
    let end = back_at + plan.after_outage;
    let start = Instant::now();
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(plan.outage_rate.max(1))));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut in_flight = JoinSet::new();
    let mut sent = Vec::new();
    let mut phase = Outage::Off;
    for i in 0.. {
        ticker.tick().await;
        let at = start.elapsed();
        if at >= end {
            break;
        }
        let wanted = if at >= down_at && at < back_at { Outage::Unavailable } else { Outage::Off };
        if wanted != phase {
            rig.upstream.set_outage(wanted);
            phase = wanted;
        }
        let (client, target) = (client.clone(), rig.target.clone());
        in_flight.spawn(async move {
            let seen = one(&client, &target, i).await;
            Sent { at, ended: start.elapsed(), seen }
        });
        while let Some(done) = in_flight.try_join_next() {
            sent.push(done?);
        }
    }
    rig.upstream.set_outage(Outage::Off);
    while let Some(done) = in_flight.join_next().await {
        sent.push(done?);
    }
    rig.gateway.ensure_running()?;
    Ok(summarise(plan, sent, down_at, back_at))
}

fn summarise(plan: FaultPlan, mut sent: Vec<Sent>, down_at: Duration, back_at: Duration) -> OutageResult {
    sent.sort_by_key(|s| s.at);
    let (mut before, mut during, mut after) = (Counts::default(), Counts::default(), Counts::default());
    for s in &sent {
        let counts = if s.at < down_at {
            &mut before
        } else if s.at < back_at {
            &mut during
        } else {
            &mut after
        };
        counts.add(s.seen.clone());
    }
    let first_success =
        sent.iter().filter(|s| s.seen == Seen::Ok && s.ended >= back_at).map(|s| s.ended - back_at).min();
    let last_failure = sent.iter().rposition(|s| s.seen != Seen::Ok);
    let sustained = match last_failure {
        None => Some(Duration::ZERO),
        Some(i) => sent.get(i + 1).map(|s| s.at.saturating_sub(back_at)),
    };
    OutageResult { plan, before, during, after, first_success, sustained }
}

pub fn print(result: Option<&OutageResult>) {
    let Some(r) = result else { return };
    let p = &r.plan;
    println!(
        "\nOutage recovery: {} req/s (half streamed), upstream answering 503 on every key from {:?} to {:?}, \
         then back for {:?}",
        p.outage_rate,
        p.before_outage,
        p.before_outage + p.outage,
        p.after_outage
    );
    let since = |d: Option<Duration>| d.map_or_else(|| "none within the window".to_owned(), |d| format!("{d:.3?}"));
    println!("  first success after the return: {}", since(r.first_success));
    println!("  every request succeeding from:   {}", since(r.sustained));
    for (name, c) in [("before", &r.before), ("during", &r.during), ("after", &r.after)] {
        println!("  {name:<6}: {:>6} requests, {:>6} failed, {:>4} streams cut", c.requests, c.failed, c.cut);
    }
}

pub fn json(result: Option<&OutageResult>) -> Value {
    result.map_or(Value::Null, |r| {
        let ms = |d: Option<Duration>| d.map(|d| d.as_secs_f64() * 1000.0);
        json!({"rate": r.plan.outage_rate, "before_s": r.plan.before_outage.as_secs_f64(),
               "outage_s": r.plan.outage.as_secs_f64(), "after_s": r.plan.after_outage.as_secs_f64(),
               "first_success_ms": ms(r.first_success), "sustained_ms": ms(r.sustained),
               "before": r.before.json(), "during": r.during.json(), "after": r.after.json()})
    })
}
