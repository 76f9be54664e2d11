//! Scenario `soak` (never part of `all`): a steady rate of mixed stream and non-stream chats for
//! a long while (10 minutes; 60 s with `--quick`) while the fake upstream cycles through faults
//! and the gateway's SQLite database is locked by another process for a minute in the middle.
//!
//! Phases repeat in this order: calm; 500s on three keys; a 429 storm on six keys; two keys whose
//! first byte comes after the gateway's first-byte timeout; dropped connections on four keys; and
//! a whole-upstream outage (every key answers 503). One key is healthy in every phase but the
//! outage, so every failure of a request whose lifetime did not touch an outage is a failure
//! "while a healthy key existed", and the target for it is zero.
//!
//! Counts lost: every request gets an answer from the gateway, which counts each one (failures
//! included); after the run, `/admin/stats` must report as many requests as were sent.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use pool_testkit::{Fault, Outage};
use serde_json::{Value, json};
use sqlx::Connection;
use tokio::task::JoinSet;

use crate::faults::{Counts, Launch, Seen, one, start_rig};
use crate::http::Client;

/// The rig's one key that never fails on its own.
const HEALTHY_KEY: usize = 7;

/// How long and how hard the soak runs.
#[derive(Clone, Copy, Debug)]
pub struct SoakPlan {
    pub duration: Duration,
    pub rate: u32,
    pub phase: Duration,
    /// When the database lock starts, and how long it is held.
    pub lock_at: Duration,
    pub lock_for: Duration,
}

impl SoakPlan {
    pub fn new(quick: bool) -> Self {
        let secs = Duration::from_secs;
        if quick {
            Self { duration: secs(60), rate: 50, phase: secs(3), lock_at: secs(20), lock_for: secs(10) }
        } else {
            Self { duration: secs(600), rate: 100, phase: secs(20), lock_at: secs(240), lock_for: secs(60) }
        }
    }
}

/// The faults of one phase: per key (by index), and whether the whole upstream is out.
struct Phase {
    name: &'static str,
    keys: Vec<(usize, Fault)>,
    outage: bool,
}

fn phases() -> Vec<Phase> {
    let on = |keys: std::ops::Range<usize>, fault: Fault| keys.map(|k| (k, fault.clone())).collect::<Vec<_>>();
    vec![
        Phase { name: "calm", keys: Vec::new(), outage: false },
        Phase { name: "500s on 3 keys", keys: on(0..3, Fault::status(500)), outage: false },
        Phase { name: "429 storm on 6 keys", keys: on(0..6, Fault::rate_limited(Some("2"))), outage: false },
        Phase {
            name: "2 keys slower than the first-byte timeout",
            keys: on(0..2, Fault::SlowFirstByte(Duration::from_secs(3))),
            outage: false,
        },
        Phase { name: "dropped connections on 4 keys", keys: on(2..6, Fault::DropBeforeHeaders), outage: false },
        Phase { name: "whole upstream out (503)", keys: Vec::new(), outage: true },
    ]
}

pub struct SoakResult {
    pub plan: SoakPlan,
    /// Requests whose whole lifetime passed while some key was healthy.
    pub with_healthy_key: Counts,
    /// Those of them that failed, by the phase they were sent in.
    pub failed_by_phase: Vec<(&'static str, usize)>,
    /// Requests that overlapped a whole-upstream outage.
    pub during_outage: Counts,
    pub sent: u64,
    pub recorded: u64,
    pub peak_rss_kib: u64,
    pub lock_held: Duration,
}

/// One request: when it was sent and ended (from the run's start), and how it ended.
struct Sent {
    at: Duration,
    ended: Duration,
    phase: usize,
    seen: Seen,
}

pub async fn run(client: &Client, launch: Launch<'_>, plan: SoakPlan) -> anyhow::Result<SoakResult> {
    let mut rig = start_rig(client, launch, "soak").await?;
    let db = launch.dir.join("soak").join("pool.db");
    let phases = phases();
    let start = Instant::now();
    let mut lock = JoinSet::new();
    lock.spawn(hold_lock(db, plan.lock_at, plan.lock_for));
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(plan.rate.max(1))));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let (mut in_flight, mut sent, mut outages) = (JoinSet::new(), Vec::new(), Vec::new());
    let mut current = usize::MAX;
    for i in 0.. {
        ticker.tick().await;
        let at = start.elapsed();
        if at >= plan.duration {
            break;
        }
        let index = usize::try_from(at.as_millis() / plan.phase.as_millis().max(1)).unwrap_or(0) % phases.len();
        if index != current {
            current = index;
            apply(&rig, &phases[index]);
            if phases[index].outage {
                outages.push((at, at + plan.phase));
            }
        }
        let (client, target) = (client.clone(), rig.target.clone());
        in_flight.spawn(async move {
            let seen = one(&client, &target, i).await;
            Sent { at, ended: start.elapsed(), phase: index, seen }
        });
        while let Some(done) = in_flight.try_join_next() {
            sent.push(done?);
        }
    }
    apply(&rig, &phases[0]);
    while let Some(done) = in_flight.join_next().await {
        sent.push(done?);
    }
    let lock_held = lock.join_next().await.context("the lock task is gone")???;
    rig.gateway.ensure_running()?;
    let total = u64::try_from(sent.len())?;
    let recorded = recorded_requests(client, &rig, launch.admin, total).await?;
    let peak_rss_kib = crate::streams::read_kib(rig.gateway.pid(), "VmHWM:")?;
    let (mut with_healthy_key, mut during_outage) = (Counts::default(), Counts::default());
    let mut failed_by_phase: Vec<(&'static str, usize)> = phases.iter().map(|p| (p.name, 0)).collect();
    for s in sent {
        if outages.iter().any(|&(from, to)| s.at < to && s.ended >= from) {
            during_outage.add(s.seen);
            continue;
        }
        if s.seen != Seen::Ok {
            failed_by_phase[s.phase].1 += 1;
        }
        with_healthy_key.add(s.seen);
    }
    failed_by_phase.retain(|&(_, n)| n > 0);
    let (sent, peak) = (total, peak_rss_kib);
    Ok(SoakResult {
        plan,
        with_healthy_key,
        failed_by_phase,
        during_outage,
        sent,
        recorded,
        peak_rss_kib: peak,
        lock_held,
    })
}

/// Sets the faults of `phase` on the rig's upstream, clearing the others.
fn apply(rig: &crate::faults::Rig, phase: &Phase) {
    for (i, key) in rig.keys.iter().enumerate() {
        match phase.keys.iter().find(|(k, _)| *k == i && *k != HEALTHY_KEY) {
            Some((_, fault)) => rig.upstream.set_fault(key, fault.clone()),
            None => rig.upstream.clear_fault(key),
        }
    }
    rig.upstream.set_outage(if phase.outage { Outage::Unavailable } else { Outage::Off });
}

/// Locks the gateway's database from another connection (as another process would) from `at`
/// for `hold`: every write of the gateway meanwhile fails with "database is locked".
async fn hold_lock(db: std::path::PathBuf, at: Duration, hold: Duration) -> anyhow::Result<Duration> {
    tokio::time::sleep(at).await;
    let mut conn = lock_connection(&db).await?;
    sqlx::query("BEGIN EXCLUSIVE").execute(&mut conn).await.context("taking the exclusive lock")?;
    let held = Instant::now();
    tokio::time::sleep(hold).await;
    sqlx::query("COMMIT").execute(&mut conn).await.context("releasing the lock")?;
    conn.close().await?;
    Ok(held.elapsed())
}

async fn lock_connection(db: &Path) -> anyhow::Result<sqlx::SqliteConnection> {
    let options = sqlx::sqlite::SqliteConnectOptions::new().filename(db).busy_timeout(Duration::from_secs(30));
    sqlx::SqliteConnection::connect_with(&options).await.with_context(|| format!("opening {}", db.display()))
}

/// The requests `/admin/stats` reports, once it stops growing (flushes are periodic), or once it
/// reaches `sent`; waits at most 30 s.
async fn recorded_requests(client: &Client, rig: &crate::faults::Rig, admin: &str, sent: u64) -> anyhow::Result<u64> {
    let addr = rig.target.addr;
    let deadline = Instant::now() + Duration::from_secs(30);
    let (mut last, mut steady_since) = (u64::MAX, Instant::now());
    loop {
        let stats = crate::http::admin_get(client, addr, admin, "/admin/stats").await?;
        let now = stats["totalRequests"].as_u64().context("no totalRequests in /admin/stats")?;
        if now != last {
            (last, steady_since) = (now, Instant::now());
        }
        if now >= sent || Instant::now() >= deadline || steady_since.elapsed() > Duration::from_secs(10) {
            return Ok(now);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

pub fn print(result: Option<&SoakResult>) {
    let Some(r) = result else { return };
    let p = &r.plan;
    println!(
        "\nFault soak: {:?} at {} req/s (half streamed), faults cycling every {:?}, the database locked by another \
         process for {:.1?} from {:?}",
        p.duration, p.rate, p.phase, r.lock_held, p.lock_at
    );
    let names: Vec<&str> = phases().iter().map(|phase| phase.name).collect();
    println!("  phases: {}", names.join("; "));
    for (name, c) in [("with a healthy key", &r.with_healthy_key), ("overlapping an outage", &r.during_outage)] {
        println!(
            "  {name:<22}: {:>7} requests, {:>7} served, {:>5} failed, {:>4} streams cut",
            c.requests, c.ok, c.failed, c.cut
        );
        if let Some(e) = &c.first_error {
            println!("  {:<22}  first failure: {e}", "");
        }
    }
    for (phase, n) in &r.failed_by_phase {
        println!("  {:<22}  {n} of the failures with a healthy key were sent during: {phase}", "");
    }
    println!(
        "  counts lost: {} (sent {}, recorded {}); gateway peak RSS {:.1} MiB",
        r.sent.saturating_sub(r.recorded),
        r.sent,
        r.recorded,
        r.peak_rss_kib as f64 / 1024.0
    );
}

pub fn json(result: Option<&SoakResult>) -> Value {
    result.map_or(Value::Null, |r| {
        json!({"duration_s": r.plan.duration.as_secs_f64(), "rate": r.plan.rate,
               "phase_s": r.plan.phase.as_secs_f64(), "lock_at_s": r.plan.lock_at.as_secs_f64(),
               "lock_held_s": r.lock_held.as_secs_f64(),
               "with_healthy_key": r.with_healthy_key.json(), "during_outage": r.during_outage.json(),
               "failed_by_phase": r.failed_by_phase.iter().map(|(p, n)| json!({"phase": p, "failed": n})).collect::<Vec<_>>(),
               "sent": r.sent, "recorded": r.recorded, "counts_lost": r.sent.saturating_sub(r.recorded),
               "peak_rss_kib": r.peak_rss_kib})
    })
}
