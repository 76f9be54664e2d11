//! The three child processes (fake upstream, bare proxy, gateway), the scratch directory they
//! share, and the checks made before starting them.
//!
//! Children are `std::process` children behind a guard that kills and reaps them on drop, so
//! an error or Ctrl-C in the benchmark never leaves a gateway running. (tokio's `process`
//! feature would give `kill_on_drop`, but it is not enabled for this crate's binaries.)

use std::fs::File;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};

/// Fewest open files the four processes need, whatever the options.
const MIN_OPEN_FILES: u64 = 4096;

/// A scratch directory for the database, the address file and the logs; removed on drop.
pub struct WorkDir(PathBuf);

impl WorkDir {
    pub fn create() -> anyhow::Result<WorkDir> {
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
        let name = format!("pool-bench-{}-{nanos:x}", std::process::id());
        let path = std::env::temp_dir().join(name);
        std::fs::create_dir(&path).with_context(|| format!("creating {}", path.display()))?;
        Ok(WorkDir(path))
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A running child process, killed and reaped on drop.
pub struct Child {
    name: &'static str,
    inner: std::process::Child,
    log: PathBuf,
}

impl Child {
    pub fn pid(&self) -> u32 {
        self.inner.id()
    }

    /// An error, with the tail of the child's log, if it has exited.
    pub fn ensure_running(&mut self) -> anyhow::Result<()> {
        match self.inner.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => {
                bail!("the {} exited ({status}); its log ends with:\n{}", self.name, log_tail(&self.log))
            }
            Err(e) => Err(e).with_context(|| format!("checking on the {}", self.name)),
        }
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.inner.kill();
        let _ = self.inner.wait();
    }
}

fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

/// A command whose stdout and stderr go to `log`, with no `POOL…` variable inherited.
fn command(program: &Path, dir: &Path, log: &Path) -> anyhow::Result<Command> {
    let out = File::create(log).with_context(|| format!("creating {}", log.display()))?;
    let err = out.try_clone().context("duplicating a log handle")?;
    let mut cmd = Command::new(program);
    cmd.current_dir(dir).stdout(out).stderr(err);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("POOL") {
            cmd.env_remove(name);
        }
    }
    Ok(cmd)
}

/// Starts `pool-bench upstream` and waits for its address.
pub fn start_upstream(dir: &Path, chunks: usize, delay: Duration) -> anyhow::Result<(Child, SocketAddr)> {
    let (chunks, delay) = (chunks.to_string(), delay.as_millis().to_string());
    start_helper(dir, "upstream", "fake upstream", &["--stream-chunks", &chunks, "--stream-delay-ms", &delay])
}

/// Starts `pool-bench bare-proxy` in front of the upstream at `upstream` and waits for its address.
pub fn start_bare_proxy(dir: &Path, upstream: SocketAddr) -> anyhow::Result<(Child, SocketAddr)> {
    start_helper(dir, "bare-proxy", "bare proxy", &["--upstream", &upstream.to_string()])
}

/// Starts `pool-bench <subcommand> <args>` on a port of 127.0.0.1 that it picks, as a child
/// that exits with this process, and waits for the address it writes to `<subcommand>.addr`.
fn start_helper(
    dir: &Path,
    subcommand: &str,
    name: &'static str,
    args: &[&str],
) -> anyhow::Result<(Child, SocketAddr)> {
    let exe = std::env::current_exe().context("locating the pool-bench executable")?;
    let addr_file = dir.join(format!("{subcommand}.addr"));
    let log = dir.join(format!("{subcommand}.log"));
    let mut cmd = command(&exe, dir, &log)?;
    cmd.arg(subcommand)
        .args(["--listen", "127.0.0.1:0", "--watch-stdin", "--addr-file"])
        .arg(&addr_file)
        .args(args)
        .stdin(Stdio::piped());
    let inner = cmd.spawn().with_context(|| format!("starting the {name}"))?;
    let mut child = Child { name, inner, log };
    let addr = wait_for_addr(&mut child, &addr_file)?;
    Ok((child, addr))
}

fn wait_for_addr(child: &mut Child, file: &Path) -> anyhow::Result<SocketAddr> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(text) = std::fs::read_to_string(file) {
            return text.trim().parse().with_context(|| format!("parsing the {} address {text:?}", child.name));
        }
        child.ensure_running()?;
        std::thread::sleep(Duration::from_millis(10));
    }
    bail!("the {} did not report its address within 10 s", child.name)
}

/// What the gateway is started with.
#[derive(Clone)]
pub struct GatewaySpec<'a> {
    pub binary: &'a Path,
    pub upstream: SocketAddr,
    pub admin_token: &'a str,
    /// `None`: a fresh SQLite file in the work directory.
    pub database_url: Option<String>,
    /// `--gateway-env` settings, before the scenario's own.
    pub env: &'a [(String, String)],
}

/// Starts `ollama-pool serve` on a free port of 127.0.0.1 with a fresh SQLite database.
pub fn start_gateway(dir: &Path, spec: &GatewaySpec<'_>) -> anyhow::Result<(Child, SocketAddr)> {
    start_gateway_with(dir, spec, &[])
}

/// [`start_gateway`] with more configuration, as `POOL__…` variables.
pub fn start_gateway_with(
    dir: &Path,
    spec: &GatewaySpec<'_>,
    env: &[(&str, &str)],
) -> anyhow::Result<(Child, SocketAddr)> {
    let addr = free_port()?;
    let log = dir.join("gateway.log");
    let mut cmd = command(spec.binary, dir, &log)?;
    cmd.arg("serve")
        .stdin(Stdio::null())
        .env("POOL_LISTEN", addr.to_string())
        .env(
            "POOL_DATABASE_URL",
            spec.database_url.clone().unwrap_or_else(|| format!("sqlite://{}/pool.db", dir.display())),
        )
        .env("POOL_ADMIN_TOKEN", spec.admin_token)
        .env("POOL__PROVIDERS__OLLAMA__URL", format!("http://{}", spec.upstream))
        .env("RUST_LOG", "warn")
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        .envs(env.iter().copied());
    let inner = cmd.spawn().with_context(|| format!("starting {}", spec.binary.display()))?;
    let child = Child { name: "gateway", inner, log };
    Ok((child, addr))
}

/// A port of 127.0.0.1 that was free a moment ago. The gateway binds it by number, so there
/// is a small window for another process to take it; the health check would then fail.
fn free_port() -> anyhow::Result<SocketAddr> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).context("finding a free port on 127.0.0.1")?;
    listener.local_addr().context("reading a bound address")
}

/// The `ollama-pool` binary next to this one.
pub fn gateway_binary() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("locating the pool-bench executable")?;
    let dir = exe.parent().context("the pool-bench executable has no parent directory")?;
    let binary = dir.join("ollama-pool");
    if !binary.is_file() {
        bail!(
            "{} not found (it must sit next to pool-bench); build it with `cargo build --release -p ollama-pool`",
            binary.display()
        );
    }
    Ok(binary)
}

/// Checks the soft open-files limit, which the children inherit: the gateway holds two
/// sockets per stream (client and upstream side).
pub fn check_open_files(streams: u64) -> anyhow::Result<()> {
    let needed = MIN_OPEN_FILES.max(streams * 2 + 512);
    let limits = std::fs::read_to_string("/proc/self/limits").context("reading /proc/self/limits")?;
    let soft = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3))
        .context("no open-files limit in /proc/self/limits")?;
    if soft == "unlimited" {
        return Ok(());
    }
    let soft: u64 = soft.parse().context("parsing the open-files limit")?;
    if soft < needed {
        bail!(
            "the open-files limit is {soft}, below the {needed} this run needs; raise it first, e.g. `ulimit -n 65536`"
        );
    }
    Ok(())
}
