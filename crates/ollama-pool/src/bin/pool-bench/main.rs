//! `pool-bench`: measures the gateway as operators run it, in four processes on 127.0.0.1:
//! the fake upstream (`pool-bench upstream`, hidden), the real `ollama-pool serve` binary from
//! the same target directory, a bare proxy to the same upstream (`pool-bench bare-proxy`,
//! hidden), and this process as the load generator.
//!
//! ```text
//! cargo build --release -p ollama-pool --bins
//! ulimit -n 65536   # if `ulimit -n` is below 4096
//! target/release/pool-bench [--duration 5] [--rates 1000,3000] [--concurrency 64]
//!                           [--streams 1000] [--postgres URL] [--json] [--quick]
//!                           [--scenario all|rps|latency|streams|import|stats|pick|failover|outage|memory|soak|console]
//!                           [--keys N] [--requests N]
//! ```
//!
//! Scenarios: max RPS (closed loop, `closed`), latency at fixed rates (open loop, `open`) and
//! gateway memory under many concurrent streams (`streams`), each direct to the fake upstream
//! and through the gateway, so that every gateway figure has a baseline beside it. Max RPS and
//! latency also go through the bare proxy (`bare`), which only forwards: any proxy costs one
//! more HTTP server and client per request, on the same cores here, and the bare proxy's
//! figures show that floor beside the gateway's. `pick` times the key selector in this process;
//! `failover` and `outage` count what clients see while keys or the whole upstream fail (`faults`);
//! `soak` runs through every fault and a locked database for ten minutes (`--scenario soak` only);
//! `console` times the console's calls over 100,000 keys and 10,000,000 logged requests
//! (`--scenario console` only).
//!
//! Why separate processes rather than the in-process `spawn_app()` of the tests: a shared
//! runtime would let the load generator and the upstream steal the gateway's worker threads,
//! and the gateway's resident set could not be told apart from theirs.

mod bare;
mod cli;
mod closed;
mod console;
mod cpu;
mod failover;
mod faults;
mod http;
mod import;
mod machine;
mod memory;
mod open;
mod outage;
mod pick;
mod procs;
mod report;
mod rollups;
mod soak;
mod stats;
mod streams;
mod upstream;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::Parser;

use crate::cli::{Cli, Command, RunArgs, Scenario};
use crate::closed::RpsResult;
use crate::cpu::CpuProbe;
use crate::http::{Client, Target};
use crate::machine::Machine;
use crate::procs::{Child, GatewaySpec, WorkDir};
use crate::report::{LatencyAtRate, Report, RpsRuns};

/// Content chunks of every streamed answer of the fake upstream.
pub const STREAM_CHUNKS: usize = 20;
/// Delay before each streamed event: a stream lasts about `(STREAM_CHUNKS + 2) * STREAM_DELAY`.
pub const STREAM_DELAY: Duration = Duration::from_millis(50);
/// Unmeasured time before each run: connections opened, caches and allocators warm.
pub const WARMUP: Duration = Duration::from_secs(1);
/// Upstream keys added to the gateway; direct requests rotate over the same keys.
const KEYS: usize = 8;
/// Most rates one run accepts, which bounds its length.
const MAX_RATES: usize = 8;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command.unwrap_or(Command::Run(cli.run)) {
        Command::Upstream(args) => upstream::run(args).await,
        Command::BareProxy(args) => bare::run(args).await,
        // Dropping the benchmark on Ctrl-C drops its child guards, which kill the children.
        Command::Run(args) => tokio::select! {
            done = bench(args) => done,
            _ = tokio::signal::ctrl_c() => anyhow::bail!("interrupted; child processes stopped"),
        },
    }
}

async fn bench(args: RunArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.rates.len() <= MAX_RATES, "at most {MAX_RATES} rates");
    procs::check_open_files(args.streams)?;
    let idle_check = cpu::machine_load(Duration::from_millis(500)).await;
    let machine = Machine::detect(procs::gateway_binary()?, idle_check);
    for warning in machine.warnings() {
        eprintln!("WARNING: {warning}");
    }
    // Declared first, dropped last: the children stop before their directory goes.
    let dir = WorkDir::create()?;
    progress("starting the fake upstream, the bare proxy and the gateway");
    let (upstream, upstream_addr) = procs::start_upstream(dir.path(), STREAM_CHUNKS, STREAM_DELAY)?;
    let (bare, bare_addr) = procs::start_bare_proxy(dir.path(), upstream_addr)?;
    let admin = admin_token();
    let gateway_binary = machine.gateway.clone();
    let gateway_env = args.gateway_env.clone();
    let spec = GatewaySpec {
        binary: &gateway_binary,
        upstream: upstream_addr,
        admin_token: &admin,
        database_url: None,
        env: &gateway_env,
    };
    let (mut gateway, gateway_addr) = procs::start_gateway(dir.path(), &spec)?;
    let client = http::client();
    http::wait_healthy(&client, gateway_addr, &mut gateway).await?;
    let keys: Vec<String> = (0..KEYS).map(|i| format!("sk-bench-{i}")).collect();
    let token = http::provision(&client, gateway_addr, &admin, &keys).await?;
    let targets = Targets {
        direct: Target::new("direct", upstream_addr, &keys)?,
        // The bare proxy forwards the credentials untouched: the upstream checks them as direct.
        bare: Target::new("bare proxy", bare_addr, &keys)?,
        gateway: Target::new("gateway", gateway_addr, &[token])?,
        cpu: CpuProbe::new(vec![
            ("gateway", gateway.pid()),
            ("bare proxy", bare.pid()),
            ("upstream", upstream.pid()),
            ("pool-bench", std::process::id()),
        ]),
    };
    let mut report = Report {
        machine,
        args,
        rps: None,
        latency: Vec::new(),
        streams: None,
        imports: Vec::new(),
        rollups: Vec::new(),
        pick: None,
        failover: Vec::new(),
        outage: None,
        memory: None,
        soak: None,
        console: None,
    };
    run_scenarios(&mut report, &client, &targets, &mut gateway).await?;
    if report.args.scenario.includes(Scenario::Import) {
        let n = usize::try_from(report.args.import_keys)?;
        progress(&format!("importing {n} keys into the SQLite gateway"));
        report.imports.push(import::run(&client, gateway_addr, &admin, "sqlite", n).await?);
        if let Some(server) = report.args.postgres.clone() {
            progress(&format!("importing {n} keys into a gateway on a fresh PostgreSQL database"));
            report.imports.push(import::run_postgres(&client, dir.path(), &spec, &server, n).await?);
        }
    }
    if report.args.scenario.includes(Scenario::Stats) {
        progress(&format!("recording {} requests in SQLite, then timing the statistics endpoints", rollups::REQUESTS));
        let url = format!("sqlite://{}/stats.db", dir.path().display());
        report.rollups.push(rollups::run(&client, dir.path(), &spec, "sqlite", url).await?);
        if let Some(server) = report.args.postgres.clone() {
            progress("the same on a fresh PostgreSQL database");
            report.rollups.push(rollups::run_postgres(&client, dir.path(), &spec, &server).await?);
        }
    }
    run_fault_scenarios(&mut report, &client, dir.path(), &spec).await?;
    if report.args.scenario == Scenario::Console {
        let plan = console::ConsolePlan::new(report.args.quick, report.args.keys, report.args.requests);
        progress(&format!(
            "seeding {} keys and {} logged requests in SQLite, then timing the console",
            plan.keys, plan.requests
        ));
        let postgres = report.args.postgres.clone();
        report.console = Some(console::run(&client, dir.path(), &spec, plan, postgres.as_deref()).await?);
    }
    report.print();
    Ok(())
}

/// Pick cost, failover under faults, outage recovery: each fault scenario with a gateway and an
/// in-process fake upstream of its own (see `faults`).
async fn run_fault_scenarios(
    report: &mut Report,
    client: &Client,
    dir: &std::path::Path,
    spec: &GatewaySpec<'_>,
) -> anyhow::Result<()> {
    let args = report.args.clone();
    if args.scenario.includes(Scenario::Pick) {
        progress("KeyPool::pick over 100,000 keys, all healthy, then 99 % cooling");
        report.pick = Some(pick::run(pick::PickPlan::new(args.quick))?);
    }
    let plan = faults::FaultPlan::new(args.quick);
    let launch = faults::Launch { dir, binary: spec.binary, admin: spec.admin_token, env: spec.env };
    if args.scenario.includes(Scenario::Failover) {
        progress(&format!("{} chats through a gateway with six of eight keys failing", plan.requests));
        report.failover.push(failover::fixed(client, launch, plan).await?);
        progress(&format!("{} chats with every key failing {} % at random", plan.requests, plan.random_pct));
        report.failover.push(failover::random(client, launch, plan).await?);
    }
    if args.scenario.includes(Scenario::Outage) {
        progress(&format!("{} req/s through an upstream outage of {:?}", plan.outage_rate, plan.outage));
        report.outage = Some(outage::run(client, launch, plan).await?);
    }
    if args.scenario.includes(Scenario::Memory) {
        progress("three bursts of 16 concurrent 30 MiB chats, then 10 s of rest");
        report.memory = Some(memory::run(client, launch, args.quick).await?);
    }
    if args.scenario.includes(Scenario::Soak) {
        let plan = soak::SoakPlan::new(args.quick);
        progress(&format!(
            "fault soak: {:?} at {} req/s through cycling faults and a locked database",
            plan.duration, plan.rate
        ));
        report.soak = Some(soak::run(client, launch, plan).await?);
    }
    Ok(())
}

/// Where requests go, and whose CPU time is read.
struct Targets {
    direct: Target,
    bare: Target,
    gateway: Target,
    cpu: CpuProbe,
}

async fn run_scenarios(
    report: &mut Report,
    client: &Client,
    targets: &Targets,
    gateway: &mut Child,
) -> anyhow::Result<()> {
    let args = report.args.clone();
    let duration = Duration::from_secs(args.duration);
    if args.scenario.includes(Scenario::Rps) {
        // Struct fields are evaluated in order: direct, bare proxy, gateway.
        let mut run = async |target: &Target| -> anyhow::Result<RpsResult> {
            progress(&format!("max RPS, {}", target.label));
            let result = closed::max_rps(target, args.concurrency, WARMUP, duration, &targets.cpu).await?;
            gateway.ensure_running()?;
            Ok(result)
        };
        report.rps = Some(RpsRuns {
            direct: run(&targets.direct).await?,
            bare: run(&targets.bare).await?,
            gateway: run(&targets.gateway).await?,
        });
    }
    if args.scenario.includes(Scenario::Latency) {
        for &rate in &args.rates {
            progress(&format!("latency at {rate} req/s, direct, bare proxy and gateway"));
            let [direct, bare, gateway_run] =
                open::interleaved(client, [&targets.direct, &targets.bare, &targets.gateway], rate, WARMUP, duration)
                    .await?;
            let runs = LatencyAtRate { direct, bare, gateway: gateway_run };
            gateway.ensure_running()?;
            report.latency.push(runs);
        }
    }
    if args.scenario.includes(Scenario::Streams) {
        progress(&format!("{} concurrent streams through the gateway", args.streams));
        report.streams = Some(streams::run(&targets.gateway, args.streams, gateway.pid()).await?);
        gateway.ensure_running()?;
    }
    Ok(())
}

/// A throwaway admin token for this run's gateway (long enough for its 24-character minimum).
fn admin_token() -> String {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    format!("pool-bench-admin-{:08x}-{nanos:032x}", std::process::id())
}

/// Progress goes to stderr so that stdout holds only the figures.
fn progress(step: &str) {
    eprintln!("pool-bench: {step}...");
}
