//! One client connection's clock: how long it may take to send a request head, and how long it
//! may sit idle between requests.
//!
//! A key design decision: the deadline lives in the connection's IO ([`Watched`]), not in
//! hyper. hyper's HTTP/1 `header_read_timeout` also runs while a kept-alive connection waits for
//! its next request, so it cannot tell a slow head from an idle connection, and the auto
//! builder waits for ever on the bytes that tell HTTP/1 from HTTP/2. A read that waits past the
//! deadline fails instead, which ends the connection (closed without an answer). The service
//! tells the IO when requests begin and end ([`Tracker`]), so the deadline is:
//! - before the first request has been answered: `header_read` from the accept (the bytes that
//!   choose HTTP/1 or HTTP/2 included);
//! - idle after an answer: `keep_alive`; on HTTP/1 the first byte of a next request gives its
//!   head `header_read` from that byte;
//! - while a request is being answered: none here (its body has its own pace, in
//!   `pool_http::extract`; an answer may stream for minutes).

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use futures_util::task::AtomicWaker;
use hyper::body::Incoming;
use hyper::{Request, Response, Version};
use pool_http::capacity::Holding;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};
use tower_service::Service;

/// The two waits a connection is allowed.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    /// For a whole request head.
    pub header_read: Duration,
    /// Idle between two requests.
    pub keep_alive: Duration,
}

/// A connection's IO under its clock, and the service that feeds the clock.
pub(super) fn watch(stream: TcpStream, peer: SocketAddr, router: Router, clock: Clock) -> (Watched, impl Answers) {
    let opened = Instant::now();
    let tracker = Arc::new(Tracker {
        opened,
        active: AtomicU32::new(0),
        idle_since_us: AtomicU64::new(0),
        http2: AtomicBool::new(false),
        waker: AtomicWaker::new(),
    });
    let timer = Box::pin(tokio::time::sleep_until(opened + clock.header_read));
    let io = Watched { io: stream, tracker: Arc::clone(&tracker), clock, timer, seen_idle: 0, head_from: None };
    (io, hyper::service::service_fn(move |request| serve(&tracker, peer, router.clone(), request)))
}

/// The service of one connection.
pub(super) trait Answers:
    hyper::service::Service<Request<Incoming>, Response = Response<Tracked>, Error = Infallible, Future: Send + 'static>
    + Send
    + 'static
{
}

impl<S> Answers for S where
    S: hyper::service::Service<
            Request<Incoming>,
            Response = Response<Tracked>,
            Error = Infallible,
            Future: Send + 'static,
        > + Send
        + 'static
{
}

/// Answers one request through the router, with the client's address as `ConnectInfo` (the
/// per-address limits read it), the connection counted busy until the answer's body is done.
fn serve(
    tracker: &Arc<Tracker>,
    peer: SocketAddr,
    mut router: Router,
    request: Request<Incoming>,
) -> impl Future<Output = Result<Response<Tracked>, Infallible>> + Send + use<> {
    let busy = Tracker::begin(tracker, request.version());
    let mut request = request.map(Body::new);
    request.extensions_mut().insert(ConnectInfo(peer));
    let answered = router.call(request);
    async move {
        let response = answered.await?;
        Ok(response.map(|body| Holding::new(body, busy)))
    }
}

/// What the service and the IO of one connection share.
struct Tracker {
    opened: Instant,
    /// Requests being answered.
    active: AtomicU32,
    /// Microseconds after `opened` when the last answer ended (0: none has yet).
    idle_since_us: AtomicU64,
    /// The client speaks HTTP/2: frames between requests (pings, window updates) start no head.
    http2: AtomicBool,
    /// The IO's reader, woken when the connection falls idle so that its deadline starts.
    waker: AtomicWaker,
}

impl Tracker {
    fn begin(this: &Arc<Tracker>, version: Version) -> Busy {
        if version == Version::HTTP_2 {
            this.http2.store(true, Ordering::Relaxed);
        }
        this.active.fetch_add(1, Ordering::AcqRel);
        Busy(Arc::clone(this))
    }
}

/// A request being answered, until its answer's body is dropped.
pub(super) struct Busy(Arc<Tracker>);

impl Drop for Busy {
    fn drop(&mut self) {
        let tracker = &self.0;
        // Written before the count falls, so a reader that sees zero sees this idle's start.
        let since = u64::try_from(tracker.opened.elapsed().as_micros()).unwrap_or(u64::MAX).max(1);
        tracker.idle_since_us.store(since, Ordering::Release);
        if tracker.active.fetch_sub(1, Ordering::AcqRel) == 1 {
            tracker.waker.wake();
        }
    }
}

/// An answer's body, which keeps its connection busy until it is dropped.
pub(super) type Tracked = Holding<Busy>;

/// The connection's socket; a read that waits past the connection's deadline fails.
pub(super) struct Watched {
    io: TcpStream,
    tracker: Arc<Tracker>,
    clock: Clock,
    timer: Pin<Box<Sleep>>,
    /// The idle period the fields below belong to (its `idle_since_us`).
    seen_idle: u64,
    /// When the first byte of the next request head arrived in this idle period (HTTP/1).
    head_from: Option<Instant>,
}

/// Where a connection stands, as its reader sees it.
enum Wait {
    /// A request is being answered: no deadline.
    Busy,
    /// Waiting for the first request head.
    First,
    /// Idle after an answer that ended at `since`.
    Idle { since: Instant },
}

impl Watched {
    fn wait(&mut self) -> Wait {
        let tracker = &*self.tracker;
        if tracker.active.load(Ordering::Acquire) > 0 {
            return Wait::Busy;
        }
        let idle = tracker.idle_since_us.load(Ordering::Acquire);
        if idle == 0 {
            return Wait::First;
        }
        if idle != self.seen_idle {
            (self.seen_idle, self.head_from) = (idle, None);
        }
        Wait::Idle { since: tracker.opened + Duration::from_micros(idle) }
    }

    fn deadline(&self, wait: &Wait) -> Option<Instant> {
        match (wait, self.head_from) {
            (Wait::Busy, _) => None,
            (Wait::First, _) => Some(self.tracker.opened + self.clock.header_read),
            (Wait::Idle { .. }, Some(first_byte)) => Some(first_byte + self.clock.header_read),
            (Wait::Idle { since }, None) => Some(*since + self.clock.keep_alive),
        }
    }

    /// Whether `deadline` has passed; if not, the timer wakes the task when it does.
    fn expired(&mut self, deadline: Instant, cx: &mut Context<'_>) -> bool {
        if self.timer.deadline() != deadline {
            self.timer.as_mut().reset(deadline);
        }
        self.timer.as_mut().poll(cx).is_ready()
    }
}

impl AsyncRead for Watched {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let wait = this.wait();
        match this.deadline(&wait) {
            None => this.tracker.waker.register(cx.waker()),
            Some(deadline) if this.expired(deadline, cx) => {
                return Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, timed_out(&wait))));
            }
            Some(_) => {}
        }
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.io).poll_read(cx, buf);
        let head_begins = matches!(wait, Wait::Idle { .. }) && this.head_from.is_none() && buf.filled().len() > before;
        if head_begins && !this.tracker.http2.load(Ordering::Relaxed) {
            this.head_from = Some(Instant::now());
        }
        polled
    }
}

fn timed_out(wait: &Wait) -> &'static str {
    match wait {
        Wait::First => "the client sent no whole request head within server.header_read_timeout_secs",
        _ => {
            "the connection was idle or sent its next request head too slowly (server.keep_alive_timeout_secs, server.header_read_timeout_secs)"
        }
    }
}

impl AsyncWrite for Watched {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}
