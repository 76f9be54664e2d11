//! The client listener: our own accept loop over hyper's HTTP/1 and HTTP/2 server (the auto
//! builder), so that a client holds only what `[server]` allows it.
//!
//! `axum::serve` has no limit at all: a connection that sends nothing is kept for ever, and at
//! the file-descriptor limit it waits a whole second per failed accept. Here:
//! - every connection is bounded in time by [`conn`]: its request head, its idle keep-alive;
//! - at most `max_connections` are open; one more is accepted and closed at once (shed), so the
//!   gateway answers the clients it has instead of queueing ones it cannot serve;
//! - when accept fails for want of descriptors or memory (EMFILE, ENFILE, ENOBUFS, ENOMEM), the
//!   loop sleeps [`BACKOFF`] and tries again, warning at most every [`WARN_EVERY`]; the
//!   connections it has are served meanwhile, and it recovers by itself once descriptors free.
//!
//! Shutdown: the listener is closed at once, every connection is told to finish (HTTP/1 after
//! its current answer, HTTP/2 with GOAWAY), and [`run`] returns when all have ended; the caller
//! bounds that wait with the grace period.

mod conn;
pub mod fds;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use pool_http::capacity::Connections;
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use conn::Clock;

/// How long the loop waits after an accept failed for want of resources.
const BACKOFF: Duration = Duration::from_millis(50);
/// At most one warning this often per kind of trouble (shedding, exhaustion).
const WARN_EVERY: Duration = Duration::from_secs(10);

/// What one listener allows its clients.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub clock: Clock,
    /// Connections open at once; beyond, new ones are closed as soon as accepted.
    pub max_connections: usize,
}

/// Serves `router` on `listener` until `shutdown` fires, then until every connection has ended.
pub async fn run(
    socket: TcpListener,
    router: Router,
    limits: Limits,
    connections: Arc<Connections>,
    shutdown: CancellationToken,
) {
    let listener = Listener {
        builder: Arc::new(builder(&limits.clock)),
        graceful: GracefulShutdown::new(),
        tasks: TaskTracker::new(),
        router,
        limits,
        connections,
        shed_warning: Warning::default(),
        exhaustion_warning: Warning::default(),
    };
    listener.accept_until(socket, shutdown).await;
}

/// The accept loop's state.
struct Listener {
    /// One configuration for every connection (HTTP/2 pings use the same clock).
    builder: Arc<Builder<TokioExecutor>>,
    graceful: GracefulShutdown,
    /// The connections' tasks (the graceful shutdown is what waits for them).
    tasks: TaskTracker,
    router: Router,
    limits: Limits,
    connections: Arc<Connections>,
    shed_warning: Warning,
    exhaustion_warning: Warning,
}

impl Listener {
    async fn accept_until(mut self, socket: TcpListener, shutdown: CancellationToken) {
        loop {
            let accepted = tokio::select! {
                () = shutdown.cancelled() => break,
                accepted = socket.accept() => accepted,
            };
            match accepted {
                Ok((stream, peer)) => self.admit(stream, peer),
                Err(e) => self.accept_failed(&e).await,
            }
        }
        drop(socket);
        self.graceful.shutdown().await;
    }

    /// Serves a new connection, or closes it at once when `max_connections` are open.
    fn admit(&mut self, stream: TcpStream, peer: SocketAddr) {
        if self.connections.open() >= self.limits.max_connections {
            self.connections.count_shed();
            if let Some(suppressed) = self.shed_warning.due() {
                tracing::warn!(
                    max_connections = self.limits.max_connections,
                    shed_since_last_warning = suppressed,
                    "closing new client connections: server.max_connections are open"
                );
            }
            return;
        }
        // Nagle's algorithm would hold each small stream event until the client acknowledged
        // the previous one: answers leave as soon as they are written.
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(error = %e, "could not turn off Nagle's algorithm on a client connection");
        }
        let open = self.connections.opened();
        let (io, service) = conn::watch(stream, peer, self.router.clone(), self.limits.clock);
        let (builder, watcher) = (Arc::clone(&self.builder), self.graceful.watcher());
        self.tasks.spawn(async move {
            let _open = open;
            let connection = builder.serve_connection(TokioIo::new(io), service);
            if let Err(e) = watcher.watch(connection).await {
                tracing::debug!(error = %e, "a client connection ended with an error");
            }
        });
    }

    /// Backs off when the process is out of descriptors or memory; other failures concern
    /// one connection only (aborted before it was accepted) and are skipped.
    async fn accept_failed(&mut self, error: &std::io::Error) {
        if !pool_adapters::upstream::is_local_exhaustion(error) {
            tracing::debug!(error = %error, "accepting a client connection failed");
            return;
        }
        self.connections.count_exhausted();
        if let Some(suppressed) = self.exhaustion_warning.due() {
            tracing::warn!(
                error = %error,
                open_connections = self.connections.open(),
                failures_since_last_warning = suppressed,
                "cannot accept client connections (out of file descriptors or memory); serving the open ones and retrying"
            );
        }
        tokio::time::sleep(BACKOFF).await;
    }
}

/// HTTP/1 and HTTP/2 as the client speaks; HTTP/2 pings a peer with streams open every
/// keep-alive period and drops it if it does not answer within the header timeout.
fn builder(clock: &Clock) -> Builder<TokioExecutor> {
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(clock.keep_alive)
        .keep_alive_timeout(clock.header_read);
    builder
}

/// A warning given at most every [`WARN_EVERY`], with the number of times it was held back.
#[derive(Default)]
struct Warning {
    last: Option<Instant>,
    held_back: u64,
}

impl Warning {
    /// `Some(times held back)` when the warning should be given now.
    fn due(&mut self) -> Option<u64> {
        let now = Instant::now();
        if self.last.is_some_and(|last| now.duration_since(last) < WARN_EVERY) {
            self.held_back += 1;
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.held_back))
    }
}
