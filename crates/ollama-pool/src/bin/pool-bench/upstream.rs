//! `pool-bench upstream`: the fake upstream in a process of its own, so that its CPU time is
//! not charged to the load generator or the gateway.
//!
//! It writes its bound address to a file (written whole, then renamed into place, so the
//! parent never reads half an address) and serves until SIGTERM, Ctrl-C or, with
//! `--watch-stdin`, until its parent's end of the stdin pipe closes. That last one matters:
//! a parent killed with SIGKILL cannot kill its children, but its pipes close all the same.
//! The bare proxy (`bare.rs`) starts and stops the same way, through the same functions.

use std::io::Read;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use pool_testkit::{FakeUpstream, Fault};
use tokio::sync::oneshot;

use crate::cli::UpstreamArgs;

pub async fn run(args: UpstreamArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.listen.ip() == IpAddr::V4(Ipv4Addr::LOCALHOST),
        "the fake upstream listens on 127.0.0.1 only, not {}",
        args.listen
    );
    let upstream = FakeUpstream::start_on(args.listen).await.with_context(|| format!("binding {}", args.listen))?;
    upstream.set_stream_chunks(args.stream_chunks, Duration::from_millis(args.stream_delay_ms));
    for key in &args.refuse_keys {
        upstream.set_fault(key, Fault::status(401));
    }
    write_addr(&args.addr_file, upstream.addr())?;
    wait_for_end(args.watch_stdin).await;
    Ok(())
}

/// Writes `addr` to `path` whole, for the parent's `procs::wait_for_addr`.
pub(crate) fn write_addr(path: &Path, addr: SocketAddr) -> anyhow::Result<()> {
    let partial = path.with_extension("partial");
    std::fs::write(&partial, addr.to_string()).with_context(|| format!("writing {}", partial.display()))?;
    std::fs::rename(&partial, path).with_context(|| format!("renaming to {}", path.display()))
}

/// Resolves at SIGTERM, Ctrl-C or, with `watch_stdin`, the end of standard input.
pub(crate) async fn wait_for_end(watch_stdin: bool) {
    let stdin_closed = async {
        if watch_stdin {
            let _ = stdin_eof().await;
        } else {
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        () = stdin_closed => {}
        _ = tokio::signal::ctrl_c() => {}
        () = sigterm() => {}
    }
}

/// Resolves when standard input reaches its end. Reading stdin blocks, so a plain thread does
/// it (tokio's async stdin is itself a blocking thread, behind a feature we do not enable).
fn stdin_eof() -> oneshot::Receiver<()> {
    let (done, closed) = oneshot::channel();
    std::thread::spawn(move || {
        let mut buf = [0u8; 256];
        let mut stdin = std::io::stdin();
        while matches!(stdin.read(&mut buf), Ok(n) if n > 0) {}
        let _ = done.send(());
    });
    closed
}

async fn sigterm() {
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(mut signal) => {
            signal.recv().await;
        }
        Err(_) => std::future::pending::<()>().await,
    }
}
