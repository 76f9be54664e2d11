//! The command line: `pool-bench [run] [OPTIONS]` for a benchmark, and the hidden
//! `pool-bench upstream` and `pool-bench bare-proxy` that the benchmark starts as its fake
//! upstream and bare proxy processes.
//!
//! Every option has an upper bound so that a run always ends by itself in bounded time.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Parser)]
#[command(
    name = "pool-bench",
    version,
    about = "Benchmark the ollama-pool gateway against a fake upstream, on 127.0.0.1 only",
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Subcommand)]
pub enum Command {
    /// Run the benchmark (the default).
    Run(RunArgs),
    /// Run the fake upstream until killed (started by `run`).
    #[command(hide = true)]
    Upstream(UpstreamArgs),
    /// Run the bare proxy to an upstream until killed (started by `run`).
    #[command(hide = true)]
    BareProxy(BareProxyArgs),
}

#[derive(Args, Clone, Debug)]
pub struct RunArgs {
    /// Seconds measured per run (each run adds a 1 s warm-up).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=60))]
    pub duration: u64,
    /// Fixed request rates (req/s) of the latency scenario, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1000,3000",
          value_parser = clap::value_parser!(u32).range(1..=20_000))]
    pub rates: Vec<u32>,
    /// In-flight requests of the max-RPS scenario.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=1024))]
    pub concurrency: u64,
    /// Concurrent streams of the memory scenario.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=5000))]
    pub streams: u64,
    /// Also print one JSON object with every figure.
    #[arg(long)]
    pub json: bool,
    /// Keys of the bulk-import scenario.
    #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub import_keys: u64,
    /// PostgreSQL server for the import and statistics scenarios (a fresh database is created and dropped),
    /// e.g. postgres://postgres@127.0.0.1:5432/postgres. Without it only SQLite is measured.
    #[arg(long, env = "POOL_BENCH_POSTGRES_URL")]
    pub postgres: Option<String>,
    /// Configuration for every gateway the benchmark starts, as `POOL__SECTION__KEY=VALUE`
    /// (repeatable), e.g. `POOL__REQUEST_LOG__RETENTION_DAYS=0` for an A/B without the request
    /// log. The benchmark's own environment never reaches its gateways.
    #[arg(long = "gateway-env", value_name = "POOL__…=VALUE", value_parser = gateway_setting)]
    pub gateway_env: Vec<(String, String)>,
    /// Which scenario to run.
    #[arg(long, value_enum, default_value_t = Scenario::All)]
    pub scenario: Scenario,
    /// Small counts and short phases for the pick, failover and outage scenarios: a smoke run
    /// that checks they work end to end, not a measurement.
    #[arg(long)]
    pub quick: bool,
    /// Keys of the console scenario (100,000; 1,000 with `--quick`).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub keys: Option<u64>,
    /// Logged requests of the console scenario (10,000,000; 20,000 with `--quick`).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=100_000_000))]
    pub requests: Option<u64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Scenario {
    All,
    Rps,
    Latency,
    Streams,
    Import,
    /// Statistics reads with 10 million requests recorded.
    Stats,
    /// `KeyPool::pick` over 100,000 keys, all healthy and 99 % cooling.
    Pick,
    /// Client-visible failures while keys fail: six of eight one way each, then all at random.
    Failover,
    /// Recovery after the whole upstream was out for a while.
    Outage,
    /// Resident set through three bursts of 16 concurrent 30 MiB bodies, and 10 s after.
    Memory,
    /// Ten minutes of traffic through cycling faults and a locked database (60 s with
    /// `--quick`); never part of `all`.
    Soak,
    /// The console's calls over 100,000 keys and 10,000,000 logged requests in SQLite
    /// (`--keys`, `--requests`); never part of `all`.
    Console,
}

impl Scenario {
    /// Whether running `self` includes `part`.
    pub fn includes(self, part: Scenario) -> bool {
        self == part || (self == Scenario::All && !matches!(part, Scenario::Soak | Scenario::Console))
    }
}

#[derive(Args, Clone, Debug)]
pub struct UpstreamArgs {
    /// Address to listen on; only 127.0.0.1 is accepted.
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: SocketAddr,
    /// File that receives the bound address once listening.
    #[arg(long)]
    pub addr_file: PathBuf,
    /// Content chunks per streamed answer.
    #[arg(long, default_value_t = 3)]
    pub stream_chunks: usize,
    /// Delay before each streamed event, in milliseconds.
    #[arg(long, default_value_t = 0)]
    pub stream_delay_ms: u64,
    /// Exit when standard input closes, i.e. when the parent benchmark dies.
    #[arg(long)]
    pub watch_stdin: bool,
    /// A key the upstream refuses with a 401 (repeatable), for tests of validation.
    #[arg(long = "refuse-key")]
    pub refuse_keys: Vec<String>,
}

#[derive(Args, Clone, Debug)]
pub struct BareProxyArgs {
    /// Address to listen on; only 127.0.0.1 is accepted.
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: SocketAddr,
    /// Address of the upstream that every request goes to.
    #[arg(long)]
    pub upstream: SocketAddr,
    /// File that receives the bound address once listening.
    #[arg(long)]
    pub addr_file: PathBuf,
    /// Exit when standard input closes, i.e. when the parent benchmark dies.
    #[arg(long)]
    pub watch_stdin: bool,
}

/// `POOL__SECTION__KEY=VALUE`, split at the first `=`.
fn gateway_setting(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((name, value)) if name.starts_with("POOL_") => Ok((name.to_owned(), value.to_owned())),
        _ => Err(format!("expected POOL__SECTION__KEY=VALUE, got {text:?}")),
    }
}
