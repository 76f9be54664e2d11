//! The upstream HTTP client: pooled keep-alive connections (HTTP/1.1, or HTTP/2 where TLS
//! negotiates it), and every upstream timeout.
//!
//! Connect and first-byte timeouts fail `send`; the idle timeout bounds the wait for each body
//! chunk and ends the body with [`TransportError::IdleTimeout`]. Redirects are never followed: a
//! redirect would carry our pool key to wherever the upstream points.
//!
//! hyper's pooled client directly, not reqwest: this is the gateway's hot path, and reqwest's
//! conveniences (URL objects re-parsed per request, a cloned client and connector per request)
//! measured several percent of the gateway's CPU. TLS is rustls with the platform's verifier, as
//! reqwest configured it, and upstreams are reached through the HTTP proxy that `HTTPS_PROXY`,
//! `HTTP_PROXY` or `ALL_PROXY` name (except the hosts of `NO_PROXY`), as reqwest did.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use async_trait::async_trait;
use bytes::Bytes;
use futures_util::stream;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{AUTHORIZATION, HeaderValue, USER_AGENT};
use hyper::{Request, Uri};
use hyper_rustls::{ConfigBuilderExt, HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::proxy::Tunnel;
use hyper_util::client::legacy::connect::{Connect, HttpConnector};
pub use hyper_util::client::proxy::matcher::Matcher;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use pool_core::ports::{TransportError, Upstream, UpstreamRequest, UpstreamResponse};

/// The three upstream timeouts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    pub connect: Duration,
    /// From sending the request to the response headers.
    pub first_byte: Duration,
    /// Between two body chunks (and before the first).
    pub idle: Duration,
}

#[derive(Debug, thiserror::Error)]
#[error("building the upstream TLS configuration: {0}")]
pub struct BuildError(#[from] rustls::Error);

#[derive(Clone, Debug)]
pub struct HttpUpstream {
    client: Pooled<HttpsConnector<HttpConnector>>,
    /// Upstreams reached through an HTTP proxy (`HTTPS_PROXY` and friends); `None` without one.
    proxies: Option<Arc<Proxies>>,
    timeouts: Timeouts,
    user_agent: HeaderValue,
    /// Parsed upstream URIs. The set is small and fixed (providers × endpoints); a cached URI is
    /// a reference count, a parsed one a copy and a scan.
    uris: Arc<ArcSwap<HashMap<String, Uri>>>,
}

type Pooled<C> = Client<C, Full<Bytes>>;
type Tunneled = Pooled<HttpsConnector<Tunnel<HttpConnector>>>;

/// Which upstreams go through which proxy, and a pooled client per proxy. Every upstream
/// connection through a proxy is a `CONNECT` tunnel (TLS to the upstream inside it, so the
/// proxy sees neither the key nor the traffic).
#[derive(Debug)]
struct Proxies {
    matcher: Matcher,
    http: HttpConnector,
    tls: rustls::ClientConfig,
    /// One client per proxy address, made on first use.
    clients: ArcSwap<HashMap<Uri, Tunneled>>,
}

/// Upper bound on remembered URIs, in case a provider ever yields many distinct ones.
const MAX_CACHED_URIS: usize = 1024;
/// Idle pooled connections are closed after this long.
const POOL_IDLE: Duration = Duration::from_secs(90);
/// Most idle connections kept per upstream host.
const POOL_MAX_IDLE_PER_HOST: usize = 1024;

impl HttpUpstream {
    /// `proxies`: which upstreams to reach through an HTTP proxy (`Matcher::from_env()` reads
    /// `HTTPS_PROXY`, `HTTP_PROXY`, `ALL_PROXY` and `NO_PROXY` like curl); `None` for none.
    pub fn new(timeouts: Timeouts, user_agent: &str, proxies: Option<Matcher>) -> Result<Self, BuildError> {
        let mut http = HttpConnector::new();
        http.set_connect_timeout(Some(timeouts.connect));
        http.set_nodelay(true);
        http.enforce_http(false);
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .try_with_platform_verifier()?
            .with_no_client_auth();
        let client = pooled(tls.clone(), http.clone());
        let proxies = proxies.map(|matcher| Arc::new(Proxies { matcher, http, tls, clients: ArcSwap::default() }));
        let user_agent = HeaderValue::try_from(user_agent).unwrap_or_else(|_| HeaderValue::from_static("ollama-pool"));
        Ok(Self { client, proxies, timeouts, user_agent, uris: Arc::default() })
    }
}

/// The outbound proxies of the environment, when `HTTPS_PROXY`, `HTTP_PROXY` or `ALL_PROXY` (or
/// their lower-case forms) is set: curl's rules, `NO_PROXY` included. HTTP proxies only (every
/// upstream connection is a `CONNECT` tunnel); credentials in the proxy URL are sent as
/// `Proxy-Authorization: Basic`.
pub fn proxies_from_env() -> Option<Matcher> {
    const NAMES: [&str; 6] = ["HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"];
    let set = NAMES.iter().any(|name| std::env::var_os(name).is_some_and(|value| !value.is_empty()));
    set.then(Matcher::from_env)
}

/// A pooled client over `connector`, TLS (with HTTP/2 where the upstream offers it) for https.
fn pooled<C>(tls: rustls::ClientConfig, connector: C) -> Pooled<HttpsConnector<C>>
where
    HttpsConnector<C>: Connect + Clone + Send + Sync + 'static,
{
    let connector = HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_all_versions()
        .wrap_connector(connector);
    Client::builder(TokioExecutor::new())
        // The timer reaps idle connections in the background; without it they would only be
        // dropped when next checked out.
        .pool_timer(TokioTimer::new())
        .pool_idle_timeout(POOL_IDLE)
        .pool_max_idle_per_host(POOL_MAX_IDLE_PER_HOST)
        .build(connector)
}

impl Proxies {
    /// The client of the proxy `uri` goes through, if any.
    fn client_for(&self, uri: &Uri) -> Option<Tunneled> {
        let intercept = self.matcher.intercept(uri)?;
        let proxy = intercept.uri();
        if let Some(client) = self.clients.load().get(proxy) {
            return Some(client.clone());
        }
        let mut tunnel = Tunnel::new(proxy.clone(), self.http.clone());
        if let Some(auth) = intercept.basic_auth() {
            tunnel = tunnel.with_auth(auth.clone());
        }
        let client = pooled(self.tls.clone(), tunnel);
        self.clients.rcu(|clients| {
            let mut next = HashMap::clone(clients);
            next.entry(proxy.clone()).or_insert_with(|| client.clone());
            next
        });
        Some(client)
    }
}

#[async_trait]
impl Upstream for HttpUpstream {
    async fn send(&self, request: UpstreamRequest) -> Result<UpstreamResponse, TransportError> {
        let uri = self.uri(&request.url).ok_or(TransportError::Config)?;
        let mut bearer = HeaderValue::try_from(format!("Bearer {}", request.bearer.expose_secret()))
            .map_err(|_| TransportError::Config)?;
        bearer.set_sensitive(true);
        let mut outgoing = Request::new(Full::new(request.body));
        *outgoing.method_mut() = request.method;
        *outgoing.uri_mut() = uri;
        *outgoing.headers_mut() = request.headers;
        let headers = outgoing.headers_mut();
        headers.insert(AUTHORIZATION, bearer);
        headers.insert(USER_AGENT, self.user_agent.clone());
        let via_proxy = self.proxies.as_ref().and_then(|p| p.client_for(outgoing.uri()));
        let pending = match via_proxy {
            Some(client) => client.request(outgoing),
            None => self.client.request(outgoing),
        };
        let response = tokio::time::timeout(self.timeouts.first_byte, pending)
            .await
            .map_err(|_| TransportError::FirstByteTimeout)?
            .map_err(|e| sending_failed(&e))?;
        let (parts, body) = response.into_parts();
        Ok(UpstreamResponse {
            status: parts.status,
            headers: parts.headers,
            body: Box::pin(idle_bounded(body, self.timeouts.idle)),
        })
    }
}

/// A failed send, by source: the gateway's own resources (out of file descriptors or memory,
/// which no key can cause), a connection the host refused, or one that dropped.
fn sending_failed(error: &hyper_util::client::legacy::Error) -> TransportError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = source {
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && is_local_exhaustion(io)
        {
            return TransportError::Local;
        }
        source = e.source();
    }
    if error.is_connect() { TransportError::Connect } else { TransportError::Dropped }
}

/// EMFILE, ENFILE, ENOMEM, ENOBUFS: the gateway ran out, the upstream did nothing. (The
/// client listener's accept loop backs off on the same errors.)
pub fn is_local_exhaustion(error: &std::io::Error) -> bool {
    matches!(error.kind(), std::io::ErrorKind::OutOfMemory) || matches!(error.raw_os_error(), Some(12 | 23 | 24 | 105))
}

impl HttpUpstream {
    /// The parsed form of `raw`, from the cache when it was seen before.
    fn uri(&self, raw: &str) -> Option<Uri> {
        if let Some(uri) = self.uris.load().get(raw) {
            return Some(uri.clone());
        }
        let uri = Uri::try_from(raw).ok().filter(|u| u.scheme().is_some() && u.authority().is_some())?;
        self.uris.rcu(|cached| {
            let mut next = HashMap::clone(cached);
            if next.len() < MAX_CACHED_URIS {
                next.insert(raw.to_owned(), uri.clone());
            }
            next
        });
        Some(uri)
    }
}

/// The response body as a stream of its data, every chunk of which must arrive within `idle`.
/// Trailers, which no provider sends on these endpoints, are skipped.
fn idle_bounded(
    body: Incoming,
    idle: Duration,
) -> impl futures_util::Stream<Item = Result<Bytes, TransportError>> + Send {
    stream::unfold(Some(body), move |state| async move {
        let mut body = state?;
        loop {
            match tokio::time::timeout(idle, body.frame()).await {
                Err(_) => return Some((Err(TransportError::IdleTimeout), None)),
                Ok(None) => return None,
                Ok(Some(Err(_))) => return Some((Err(TransportError::Dropped), None)),
                Ok(Some(Ok(frame))) => {
                    if let Ok(data) = frame.into_data() {
                        return Some((Ok(data), Some(body)));
                    }
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::Method;
    use pool_core::secret::Secret;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    fn timeouts() -> Timeouts {
        let bound = Duration::from_secs(5);
        Timeouts { connect: bound, first_byte: bound, idle: bound }
    }

    fn request(url: String) -> UpstreamRequest {
        UpstreamRequest {
            method: Method::POST,
            url,
            bearer: Secret::new("sk-test"),
            headers: hyper::HeaderMap::new(),
            body: Bytes::from_static(b"{}"),
        }
    }

    /// Answers the next connection with a plain-text HTTP response, after its first bytes
    /// (all of a small request, or a TLS hello).
    async fn answer_plainly(listener: &TcpListener) {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut seen = Vec::new();
        let mut buf = [0u8; 4096];
        // A TLS record starts with 0x16; a plain request ends with its `{}` body.
        while seen.first() != Some(&0x16) && !seen.ends_with(b"\r\n\r\n{}") {
            match socket.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => seen.extend_from_slice(&buf[..n]),
            }
        }
        let _ = socket.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok").await;
    }

    #[tokio::test]
    async fn https_urls_go_through_tls_and_a_failed_handshake_is_a_connect_error() {
        let upstream = HttpUpstream::new(timeouts(), "ollama-pool/test", None).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (plain, ()) =
            tokio::join!(upstream.send(request(format!("http://{addr}/v1/models"))), answer_plainly(&listener));
        assert_eq!(plain.unwrap().status, 200, "the server answers plain HTTP");
        let (tls, ()) =
            tokio::join!(upstream.send(request(format!("https://{addr}/v1/models"))), answer_plainly(&listener));
        assert_eq!(tls.err(), Some(TransportError::Connect), "a server that does not speak TLS fails the handshake");
    }

    #[tokio::test]
    async fn a_url_without_scheme_or_host_is_refused_before_any_connection() {
        let upstream = HttpUpstream::new(timeouts(), "ollama-pool/test", None).unwrap();
        for url in ["/v1/models", "not a url", ""] {
            assert_eq!(upstream.send(request(url.to_owned())).await.err(), Some(TransportError::Config), "{url}");
        }
    }

    /// A one-connection HTTP `CONNECT` proxy: answers 200, then relays until the upstream side
    /// ends. Returns the request head the client sent it.
    async fn tunnel_once(listener: &TcpListener) -> String {
        let (mut client, _) = listener.accept().await.unwrap();
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            assert_eq!(client.read(&mut byte).await.unwrap(), 1, "the client closed before its CONNECT ended");
            head.push(byte[0]);
        }
        let head = String::from_utf8(head).unwrap();
        let target = head.split_whitespace().nth(1).unwrap().to_owned();
        let upstream = tokio::net::TcpStream::connect(target).await.unwrap();
        client.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n").await.unwrap();
        let (mut from_client, mut to_client) = client.into_split();
        let (mut from_upstream, mut to_upstream) = upstream.into_split();
        tokio::select! {
            _ = tokio::io::copy(&mut from_upstream, &mut to_client) => {}
            _ = tokio::io::copy(&mut from_client, &mut to_upstream) => {}
        }
        head
    }

    #[tokio::test]
    async fn a_configured_proxy_carries_upstream_calls_in_a_connect_tunnel_with_its_credentials() {
        let proxy = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let target = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (proxy_addr, target_addr) = (proxy.local_addr().unwrap(), target.local_addr().unwrap());
        let matcher = Matcher::builder().http(format!("http://user:secret@{proxy_addr}")).build();
        let upstream = HttpUpstream::new(timeouts(), "ollama-pool/test", Some(matcher)).unwrap();
        let exchange = async {
            tokio::join!(
                upstream.send(request(format!("http://{target_addr}/v1/models"))),
                tunnel_once(&proxy),
                answer_plainly(&target)
            )
        };
        let (answer, head, ()) =
            tokio::time::timeout(Duration::from_secs(10), exchange).await.expect("the call went through the proxy");
        assert_eq!(answer.unwrap().status, 200);
        assert!(head.starts_with(&format!("CONNECT {target_addr} HTTP/1.1\r\n")), "{head}");
        assert!(head.to_lowercase().contains("proxy-authorization: basic dxnlcjpzzwnyzxq="), "{head}");
    }

    #[tokio::test]
    async fn no_proxy_hosts_are_reached_directly() {
        // The proxy listens but never answers: a request sent to it would time out.
        let proxy = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let target = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (proxy_addr, target_addr) = (proxy.local_addr().unwrap(), target.local_addr().unwrap());
        let matcher = Matcher::builder().all(format!("http://{proxy_addr}")).no("127.0.0.1").build();
        let upstream = HttpUpstream::new(timeouts(), "ollama-pool/test", Some(matcher)).unwrap();
        let (answer, ()) =
            tokio::join!(upstream.send(request(format!("http://{target_addr}/v1/models"))), answer_plainly(&target));
        assert_eq!(answer.unwrap().status, 200);
    }
}
