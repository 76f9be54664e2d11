//! [`FaultProxy`]: a TCP proxy on 127.0.0.1 between the gateway and its database, which a test
//! tells to misbehave as a network and a database server do: refuse new connections, cut every
//! open one (a server restart), or stall (stop forwarding, so a statement hangs).
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use pool_testkit::FaultProxy;
//! let proxy = FaultProxy::start("127.0.0.1:5432").await?;
//! // point database.url at 127.0.0.1:{proxy.port()} ...
//! proxy.cut_all();
//! proxy.set_refusing(true);
//! # Ok(()) }
//! ```

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// A running fault proxy; it closes every connection when dropped.
pub struct FaultProxy {
    addr: SocketAddr,
    state: Arc<State>,
    stop: CancellationToken,
}

struct State {
    target: String,
    refusing: AtomicBool,
    /// Replaced by a fresh token on every [`FaultProxy::cut_all`]: connections watch the one
    /// current when they opened.
    cut: std::sync::Mutex<CancellationToken>,
    /// `true` while forwarding is stopped.
    stalled: watch::Sender<bool>,
}

impl FaultProxy {
    /// Listens on 127.0.0.1:0 and forwards every connection to `target` (`host:port`).
    pub async fn start(target: &str) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(State {
            target: target.to_owned(),
            refusing: AtomicBool::new(false),
            cut: std::sync::Mutex::new(CancellationToken::new()),
            stalled: watch::channel(false).0,
        });
        let stop = CancellationToken::new();
        let tasks = TaskTracker::new();
        tasks.spawn(accept(listener, Arc::clone(&state), stop.clone(), tasks.clone()));
        Ok(Self { addr, state, stop })
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// New connections are accepted and closed at once (existing ones go on).
    pub fn set_refusing(&self, refusing: bool) {
        self.state.refusing.store(refusing, SeqCst);
    }

    /// Closes every open connection, as a database server restarting does.
    pub fn cut_all(&self) {
        let mut cut = self.state.cut.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        std::mem::replace(&mut *cut, CancellationToken::new()).cancel();
    }

    /// Stops (or resumes) forwarding bytes either way: connections stay open and silent.
    pub fn set_stalled(&self, stalled: bool) {
        self.state.stalled.send_replace(stalled);
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.stop.cancel();
        self.cut_all();
    }
}

async fn accept(listener: TcpListener, state: Arc<State>, stop: CancellationToken, tasks: TaskTracker) {
    loop {
        let client = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((client, _)) => client,
                Err(_) => continue,
            },
            () = stop.cancelled() => return,
        };
        if state.refusing.load(SeqCst) {
            drop(client);
            continue;
        }
        let cut = state.cut.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        let state = Arc::clone(&state);
        tasks.spawn(async move {
            let Ok(server) = TcpStream::connect(&state.target).await else { return };
            tokio::select! {
                () = relay(client, server, &state) => {}
                () = cut.cancelled() => {}
            }
        });
    }
}

async fn relay(client: TcpStream, server: TcpStream, state: &State) {
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let up = pipe(&mut client_read, &mut server_write, state.stalled.subscribe());
    let down = pipe(&mut server_read, &mut client_write, state.stalled.subscribe());
    tokio::select! {
        () = up => {}
        () = down => {}
    }
}

/// Copies one direction, holding each chunk while the proxy is stalled.
async fn pipe(
    from: &mut (impl AsyncReadExt + Unpin),
    to: &mut (impl AsyncWriteExt + Unpin),
    mut stalled: watch::Receiver<bool>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if stalled.wait_for(|s| !*s).await.is_err() {
            return;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}
