//! Test support for ollama-pool: a fake upstream LLM provider (OpenAI-shaped and
//! Ollama-native routes) with per-key fault injection, counters and request records.
//!
//! The key of a request is the bearer token of its `Authorization` header; a request
//! without one is answered 401 and counted under the key `""`.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use pool_testkit::{Fault, FakeUpstream};
//! let upstream = FakeUpstream::start().await?;
//! upstream.fail_next("sk-a", Fault::rate_limited(Some("1")), 2);
//! // ... point the gateway at upstream.url() ...
//! assert_eq!(upstream.calls("sk-a"), 0);
//! # Ok(()) }
//! ```

mod ask;
mod body;
mod fault_proxy;
mod faults;
mod ollama;
mod openai;
mod rng;
mod routes;
mod server;
mod state;

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use crate::fault_proxy::FaultProxy;
pub use crate::faults::{Fault, Outage, RecordedRequest};
use crate::state::Inner;

/// A running fake upstream. It shuts down (closing every connection) when dropped.
pub struct FakeUpstream {
    addr: SocketAddr,
    inner: Arc<Inner>,
    token: CancellationToken,
}

impl FakeUpstream {
    /// Starts a fake upstream on `127.0.0.1` and a free port.
    pub async fn start() -> std::io::Result<FakeUpstream> {
        FakeUpstream::start_on(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).await
    }

    /// Starts a fake upstream on `addr`.
    pub async fn start_on(addr: SocketAddr) -> std::io::Result<FakeUpstream> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let inner = Arc::new(Inner::new());
        let token = CancellationToken::new();
        let tasks = tokio_util::task::TaskTracker::new();
        tasks.spawn(server::serve(listener, Arc::clone(&inner), token.clone(), tasks.clone()));
        Ok(FakeUpstream { addr, inner, token })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its base URL, e.g. `http://127.0.0.1:41234` (no trailing slash).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every request with `key` gets `fault` until [`FakeUpstream::clear_fault`].
    pub fn set_fault(&self, key: &str, fault: Fault) {
        self.inner.set_fault(key, fault);
    }

    /// The next `times` requests with `key` get `fault`, then the requests are answered
    /// as before. Calls queue up: their faults apply one after the other, before any
    /// fault set with [`FakeUpstream::set_fault`].
    pub fn fail_next(&self, key: &str, fault: Fault, times: usize) {
        self.inner.fail_next(key, fault, times);
    }

    /// Seeds the generator behind [`Fault::Random`] and [`Fault::OneOf`] (0 until set): the same
    /// seed and the same order of requests draw the same faults.
    pub fn set_seed(&self, seed: u64) {
        self.inner.set_seed(seed);
    }

    /// Puts the whole fake upstream out of service (every key, every route) or back
    /// ([`Outage::Off`]); per-key faults apply again once it is back.
    pub fn set_outage(&self, outage: Outage) {
        self.inner.set_outage(outage);
    }

    /// Removes every fault of `key` (set or queued).
    pub fn clear_fault(&self, key: &str) {
        self.inner.clear_fault(key);
    }

    /// Sets the model list served to `key` (`None`: to every key without its own list).
    pub fn set_models(&self, key: Option<&str>, models: Vec<String>) {
        self.inner.set_models(key, models);
    }

    /// Sets the content chunks per stream (default 3) and the delay before each streamed
    /// event (default none).
    pub fn set_stream_chunks(&self, n: usize, delay: Duration) {
        self.inner.set_stream_chunks(n, delay);
    }

    /// Requests received with `key`, on any path, faulted ones included.
    pub fn calls(&self, key: &str) -> usize {
        self.inner.calls(key)
    }

    /// Requests received in all.
    pub fn total_calls(&self) -> usize {
        self.inner.total_calls()
    }

    /// The last request received with `key`.
    pub fn last_request(&self, key: &str) -> Option<RecordedRequest> {
        self.inner.last_request(key)
    }

    /// TCP connections currently open.
    pub fn open_connections(&self) -> usize {
        self.inner.open_connections()
    }

    /// Polls every 5 ms until exactly `n` connections are open; `false` if that did not
    /// happen `within` this time.
    pub async fn wait_for_open_connections(&self, n: usize, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        loop {
            if self.open_connections() == n {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Stops accepting and closes every connection.
    pub fn shutdown(self) {
        drop(self);
    }
}

impl Drop for FakeUpstream {
    fn drop(&mut self) {
        self.token.cancel();
    }
}
