//! `pool-bench bare-proxy`: the cheapest correct HTTP/1.1 reverse proxy, as a floor for the
//! gateway. It does what any proxy must (one HTTP server and one pooled HTTP client per
//! request, on the same multi-thread runtime as the gateway) and nothing else: no
//! authentication, no parsing, no logging, no buffering.
//!
//! Headers pass through unchanged, `Host` included, which reverse proxies may keep: the load
//! generator sends no hop-by-hop header, so there is nothing to strip. It starts and stops
//! like the fake upstream (address file, stdin, SIGTERM).

use std::convert::Infallible;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use http_body_util::{Either, Empty};
use hyper::body::Incoming;
use hyper::http::uri::{Authority, Scheme};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode, Uri};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio_util::task::TaskTracker;

use crate::cli::BareProxyArgs;
use crate::upstream::{wait_for_end, write_addr};

type Client = hyper_util::client::legacy::Client<HttpConnector, Incoming>;
/// The upstream's body, streamed through, or the empty body of a 502.
type Body = Either<Incoming, Empty<Bytes>>;

/// What every request needs: the pooled client and where it sends.
struct Proxy {
    client: Client,
    upstream: Authority,
}

pub async fn run(args: BareProxyArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.listen.ip() == IpAddr::V4(Ipv4Addr::LOCALHOST),
        "the bare proxy listens on 127.0.0.1 only, not {}",
        args.listen
    );
    let listener = TcpListener::bind(args.listen).await.with_context(|| format!("binding {}", args.listen))?;
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let proxy = Arc::new(Proxy {
        client: hyper_util::client::legacy::Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(connector),
        upstream: Authority::try_from(args.upstream.to_string()).context("the upstream address")?,
    });
    write_addr(&args.addr_file, listener.local_addr().context("reading the bound address")?)?;
    // Leaving drops the runtime, which ends the connection tasks.
    tokio::select! {
        () = serve(listener, proxy) => {}
        () = wait_for_end(args.watch_stdin) => {}
    }
    Ok(())
}

/// Accepts connections and serves each in a task of its own, forever.
async fn serve(listener: TcpListener, proxy: Arc<Proxy>) {
    let tasks = TaskTracker::new();
    let mut builder = http1::Builder::new();
    builder.keep_alive(true);
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            // Out of descriptors or similar: back off a little instead of spinning.
            tokio::time::sleep(Duration::from_millis(1)).await;
            continue;
        };
        // Answers are small single writes: they must leave at once, not wait for an ACK.
        let _ = stream.set_nodelay(true);
        let proxy = Arc::clone(&proxy);
        let service = service_fn(move |request| forward(Arc::clone(&proxy), request));
        let connection = builder.serve_connection(TokioIo::new(stream), service);
        tasks.spawn(connection);
    }
}

/// Sends `request` to the upstream and hands back its answer, body streamed as it comes.
async fn forward(proxy: Arc<Proxy>, mut request: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    let mut uri = std::mem::take(request.uri_mut()).into_parts();
    uri.scheme = Some(Scheme::HTTP);
    uri.authority = Some(proxy.upstream.clone());
    // Fails only for a request without a path (CONNECT), which no upstream here serves.
    let Ok(uri) = Uri::from_parts(uri) else { return Ok(bad_gateway()) };
    *request.uri_mut() = uri;
    Ok(match proxy.client.request(request).await {
        Ok(response) => response.map(Either::Left),
        Err(_) => bad_gateway(),
    })
}

fn bad_gateway() -> Response<Body> {
    let mut response = Response::new(Either::Right(Empty::new()));
    *response.status_mut() = StatusCode::BAD_GATEWAY;
    response
}
