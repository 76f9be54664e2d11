//! The HTTP side of the load generator: one pooled keep-alive client, the request shapes, and
//! the admin calls that prepare the gateway (health, keys, client token).
//!
//! Requests are built by hand rather than through `Request::builder`: nothing in them can be
//! invalid, so the hot path carries no `Result`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HOST, HeaderValue};
use hyper::{Method, Request, StatusCode, Uri};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{Value, json};
use tokio::net::TcpStream;

use crate::procs::Child;

/// The chat request of every non-stream scenario.
pub const CHAT: &str = r#"{"model":"llama3.2:3b","messages":[{"role":"user","content":"hello"}],"stream":false}"#;
/// The chat request of the streams scenario.
pub const CHAT_STREAM: &str = r#"{"model":"llama3.2:3b","messages":[{"role":"user","content":"hello"}],"stream":true}"#;
const CHAT_PATH: &str = "/v1/chat/completions";
/// Longest wait for a connection or an admin answer.
/// Bounds every setup call, a 100,000-key import included.
const SETUP_TIMEOUT: Duration = Duration::from_secs(60);

pub type Client = hyper_util::client::legacy::Client<HttpConnector, Full<Bytes>>;

pub fn client() -> Client {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    hyper_util::client::legacy::Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(30))
        .build(connector)
}

/// Where chat requests go, and with which credentials (round robin).
#[derive(Clone)]
pub struct Target {
    pub label: &'static str,
    pub addr: SocketAddr,
    host: HeaderValue,
    absolute: Uri,
    auths: Arc<[HeaderValue]>,
}

impl Target {
    pub fn new(label: &'static str, addr: SocketAddr, secrets: &[String]) -> anyhow::Result<Target> {
        let auths = secrets
            .iter()
            .map(|s| HeaderValue::try_from(format!("Bearer {s}")))
            .collect::<Result<Vec<_>, _>>()
            .context("a credential is not a valid header value")?;
        anyhow::ensure!(!auths.is_empty(), "no credential for {label}");
        Ok(Target {
            label,
            addr,
            host: HeaderValue::try_from(addr.to_string())?,
            absolute: format!("http://{addr}{CHAT_PATH}").parse()?,
            auths: auths.into(),
        })
    }

    /// Chat request number `i` with an absolute URI, for the pooled client.
    pub fn pooled(&self, i: usize, body: &Bytes) -> Request<Full<Bytes>> {
        self.request(self.absolute.clone(), i, body)
    }

    /// Chat request number `i` in origin form, for a raw HTTP/1.1 connection.
    pub fn raw(&self, i: usize, body: &Bytes) -> Request<Full<Bytes>> {
        self.request(Uri::from_static(CHAT_PATH), i, body)
    }

    fn request(&self, uri: Uri, i: usize, body: &Bytes) -> Request<Full<Bytes>> {
        let mut request = Request::new(Full::new(body.clone()));
        *request.method_mut() = Method::POST;
        *request.uri_mut() = uri;
        let headers = request.headers_mut();
        headers.insert(HOST, self.host.clone());
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert(AUTHORIZATION, self.auths[i % self.auths.len()].clone());
        request
    }
}

/// A raw HTTP/1.1 connection: its request handle, and the connection future that must be
/// polled (alongside the requests) for anything to move.
pub type RawConnection = (http1::SendRequest<Full<Bytes>>, http1::Connection<TokioIo<TcpStream>, Full<Bytes>>);

/// Opens a raw HTTP/1.1 connection to `addr`, with Nagle off like the pooled client.
pub async fn connect(addr: SocketAddr) -> anyhow::Result<RawConnection> {
    let stream = tokio::time::timeout(SETUP_TIMEOUT, TcpStream::connect(addr)).await??;
    stream.set_nodelay(true)?;
    Ok(http1::handshake(TokioIo::new(stream)).await?)
}

/// Sends a request and reads the whole answer; `Err` describes a failure or a non-200.
pub async fn send(client: &Client, request: Request<Full<Bytes>>) -> Result<(), String> {
    let response = client.request(request).await.map_err(|e| e.to_string())?;
    let status = response.status();
    let body = response.into_body().collect().await.map_err(|e| e.to_string())?;
    if status != StatusCode::OK {
        let text = String::from_utf8_lossy(&body.to_bytes()).chars().take(200).collect::<String>();
        return Err(format!("HTTP {status}: {text}"));
    }
    Ok(())
}

/// Polls `GET /health` until it answers 200, for at most 30 s.
pub async fn wait_healthy(client: &Client, addr: SocketAddr, gateway: &mut Child) -> anyhow::Result<()> {
    let uri: Uri = format!("http://{addr}/health").parse()?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        gateway.ensure_running()?;
        let mut request = Request::new(Full::new(Bytes::new()));
        *request.uri_mut() = uri.clone();
        let answer = tokio::time::timeout(Duration::from_secs(1), client.request(request)).await;
        if matches!(answer, Ok(Ok(r)) if r.status() == StatusCode::OK) {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!("the gateway at {addr} did not answer GET /health within 30 s")
}

/// `GET path` as JSON (no credentials: `/health`).
pub async fn get_json(client: &Client, addr: SocketAddr, path: &str) -> anyhow::Result<Value> {
    let mut request = Request::new(Full::new(Bytes::new()));
    *request.uri_mut() = format!("http://{addr}{path}").parse()?;
    let exchange = async {
        let response = client.request(request).await?;
        anyhow::Ok(response.into_body().collect().await?.to_bytes())
    };
    let bytes =
        tokio::time::timeout(SETUP_TIMEOUT, exchange).await.with_context(|| format!("GET {path} timed out"))??;
    serde_json::from_slice(&bytes).with_context(|| format!("parsing the answer to GET {path}"))
}

/// Adds the upstream keys and creates a client token through the admin API; returns the token.
pub async fn provision(client: &Client, addr: SocketAddr, admin: &str, keys: &[String]) -> anyhow::Result<String> {
    for key in keys {
        let answer = admin_post(client, addr, admin, "/admin/api-keys", json!({"api_key": key})).await?;
        anyhow::ensure!(answer["success"] == true, "adding an upstream key failed: {answer}");
    }
    let answer = admin_post(client, addr, admin, "/admin/tokens", json!({"name": "pool-bench"})).await?;
    answer["token"]
        .as_str()
        .map(str::to_owned)
        .with_context(|| format!("no token in the answer to POST /admin/tokens: {answer}"))
}

/// `GET path` with the admin token; the answer must be 200 JSON.
pub async fn admin_get(client: &Client, addr: SocketAddr, admin: &str, path: &str) -> anyhow::Result<Value> {
    admin_call(client, addr, admin, Method::GET, path, None).await
}

/// `POST path` with a JSON body and the admin token; the answer must be 200 JSON.
pub async fn admin_post(
    client: &Client,
    addr: SocketAddr,
    admin: &str,
    path: &str,
    body: Value,
) -> anyhow::Result<Value> {
    admin_call(client, addr, admin, Method::POST, path, Some(body)).await
}

async fn admin_call(
    client: &Client,
    addr: SocketAddr,
    admin: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> anyhow::Result<Value> {
    let mut request = Request::new(Full::new(body.as_ref().map_or_else(Bytes::new, |b| Bytes::from(b.to_string()))));
    *request.method_mut() = method.clone();
    *request.uri_mut() = format!("http://{addr}{path}").parse()?;
    let headers = request.headers_mut();
    if body.is_some() {
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    }
    headers.insert(AUTHORIZATION, HeaderValue::try_from(format!("Bearer {admin}"))?);
    let exchange = async {
        let response = client.request(request).await?;
        let status = response.status();
        anyhow::Ok((status, response.into_body().collect().await?.to_bytes()))
    };
    let answer = tokio::time::timeout(SETUP_TIMEOUT, exchange).await;
    let (status, bytes) =
        answer.with_context(|| format!("{method} {path} timed out"))?.with_context(|| format!("{method} {path}"))?;
    anyhow::ensure!(status == StatusCode::OK, "{method} {path} answered {status}: {}", String::from_utf8_lossy(&bytes));
    serde_json::from_slice(&bytes).with_context(|| format!("parsing the answer to {method} {path}"))
}
