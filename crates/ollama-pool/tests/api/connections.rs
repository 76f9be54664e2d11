//! The client listener's limits, on real sockets: request heads and idle keep-alive are bounded
//! in time, slow bodies are cut, connections beyond `server.max_connections` are shed, requests
//! beyond `server.max_concurrent_requests` get 503, the gateway survives its file-descriptor
//! limit, and every answer says `nosniff` and names no server.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use pool_testkit::Fault;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::helpers::{
    ADMIN, Options, ServingBinary, TestApp, chat, error_of, free_addr, fresh_postgres_database, metric, postgres_url,
    spawn_app_with, test_backend,
};

/// Far more than any timeout under test: how long a test waits for what must happen.
const PATIENCE: Duration = Duration::from_secs(15);

fn addr(base: &str) -> SocketAddr {
    base.trim_start_matches("http://").parse().unwrap()
}

async fn app_with(settings: &[(&str, &str)]) -> TestApp {
    let options = settings.iter().fold(Options::new(), |o, (k, v)| o.set(k, v));
    spawn_app_with(options).await
}

/// Reads until the peer closes (end of file or reset); returns what was read and how long it
/// took, or `None` when it was still open after `within`.
async fn read_until_closed(stream: &mut TcpStream, within: Duration) -> Option<(Vec<u8>, Duration)> {
    let started = Instant::now();
    let mut read = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout_at(started + within, stream.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0) | Err(_)) => return Some((read, started.elapsed())),
            Ok(Ok(n)) => read.extend_from_slice(&buf[..n]),
        }
    }
}

/// One HTTP/1.1 connection of our own, kept alive, to send requests on.
struct Pinned {
    sender: SendRequest<Full<Bytes>>,
}

impl Pinned {
    async fn open(addr: SocketAddr) -> Self {
        let stream = TcpStream::connect(addr).await.unwrap();
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.unwrap();
        tokio::spawn(connection);
        Self { sender }
    }

    async fn send(
        &mut self,
        method: &str,
        path: &str,
        token: &str,
        body: Option<&Value>,
    ) -> (u16, hyper::HeaderMap, Bytes) {
        let request = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header("host", "gateway")
            .header("authorization", format!("Bearer {token}"))
            .header("content-type", "application/json")
            .body(Full::new(body.map_or_else(Bytes::new, |b| Bytes::from(b.to_string()))))
            .unwrap();
        self.sender.ready().await.unwrap();
        let response = self.sender.send_request(request).await.unwrap();
        let (parts, body) = response.into_parts();
        (parts.status.as_u16(), parts.headers, body.collect().await.unwrap().to_bytes())
    }

    async fn get(&mut self, path: &str) -> (u16, Bytes) {
        let (status, _, body) = self.send("GET", path, ADMIN, None).await;
        (status, body)
    }

    /// A gauge or counter of `/metrics`, read on this connection.
    async fn metric(&mut self, name: &str) -> f64 {
        let (status, body) = self.get("/metrics").await;
        assert_eq!(status, 200);
        metric(&String::from_utf8_lossy(&body), name)
    }
}

/// Opens a connection, writes `bytes`, and returns how long until the gateway closed it.
async fn closed_after_sending(app: &TestApp, bytes: &[u8]) -> (Vec<u8>, Duration) {
    let mut stream = TcpStream::connect(addr(&app.base)).await.unwrap();
    stream.write_all(bytes).await.unwrap();
    read_until_closed(&mut stream, PATIENCE).await.expect("the gateway closed the connection")
}

#[tokio::test]
async fn a_connection_that_sends_nothing_is_closed_after_the_header_timeout() {
    // Arrange
    let app = app_with(&[("POOL__SERVER__HEADER_READ_TIMEOUT_SECS", "1")]).await;
    // Act
    let (answer, after) = closed_after_sending(&app, b"").await;
    // Assert
    assert!(answer.is_empty(), "closed without an answer");
    assert!(after >= Duration::from_millis(900), "not before the timeout: {after:?}");
}

#[tokio::test]
async fn three_bytes_that_cannot_tell_http1_from_http2_do_not_hold_a_connection() {
    // Arrange
    let app = app_with(&[("POOL__SERVER__HEADER_READ_TIMEOUT_SECS", "1")]).await;
    // Act
    let (answer, after) = closed_after_sending(&app, b"PRI").await;
    // Assert
    assert!(answer.is_empty());
    assert!(after >= Duration::from_millis(900), "{after:?}");
}

#[tokio::test]
async fn a_half_sent_request_head_is_closed_after_the_header_timeout() {
    // Arrange
    let app = app_with(&[("POOL__SERVER__HEADER_READ_TIMEOUT_SECS", "1")]).await;
    // Act
    let (answer, after) = closed_after_sending(&app, b"GET /health HTTP/1.1\r\nHost: gateway\r\n").await;
    // Assert
    assert!(!String::from_utf8_lossy(&answer).contains(" 200 "), "the head was never whole");
    assert!(after >= Duration::from_millis(900), "{after:?}");
}

#[tokio::test]
async fn an_idle_kept_alive_connection_is_closed_after_the_keep_alive_timeout_not_the_header_timeout() {
    // Arrange: a header timeout shorter than the keep-alive one
    let app =
        app_with(&[("POOL__SERVER__HEADER_READ_TIMEOUT_SECS", "1"), ("POOL__SERVER__KEEP_ALIVE_TIMEOUT_SECS", "6")])
            .await;
    let mut stream = TcpStream::connect(addr(&app.base)).await.unwrap();
    let request = b"GET /health HTTP/1.1\r\nHost: gateway\r\n\r\n";
    stream.write_all(request).await.unwrap();
    let mut buf = [0u8; 8192];
    let n = stream.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    // Act: idle for longer than the header timeout, then a second request; then idle
    tokio::time::sleep(Duration::from_millis(2000)).await;
    stream.write_all(request).await.unwrap();
    let n = stream.read(&mut buf).await.unwrap();
    let second = String::from_utf8_lossy(&buf[..n]).into_owned();
    let closed = read_until_closed(&mut stream, PATIENCE).await;
    // Assert
    assert!(second.starts_with("HTTP/1.1 200"), "idle within keep-alive is fine: {second}");
    let (_, after) = closed.expect("an idle connection is closed");
    assert!(after >= Duration::from_millis(5500), "kept for the keep-alive timeout: {after:?}");
}

#[tokio::test]
async fn an_http2_client_is_served_and_its_idle_connection_closed_after_the_keep_alive_timeout() {
    // Arrange: HTTP/2 with prior knowledge, as a gRPC-style client speaks it
    let app = app_with(&[("POOL__SERVER__KEEP_ALIVE_TIMEOUT_SECS", "1")]).await;
    let stream = TcpStream::connect(addr(&app.base)).await.unwrap();
    let (mut sender, connection) =
        hyper::client::conn::http2::handshake(hyper_util::rt::TokioExecutor::new(), TokioIo::new(stream))
            .await
            .unwrap();
    let connection = tokio::spawn(connection);
    let request = hyper::Request::get(format!("{}/health", app.base)).body(Full::new(Bytes::new())).unwrap();
    // Act
    let response = sender.send_request(request).await.unwrap();
    let (parts, body) = response.into_parts();
    body.collect().await.unwrap();
    let started = Instant::now();
    let ended = tokio::time::timeout(PATIENCE, connection).await;
    // Assert
    assert_eq!((parts.version, parts.status.as_u16()), (hyper::Version::HTTP_2, 200));
    assert!(ended.is_ok(), "the idle HTTP/2 connection is closed");
    assert!(started.elapsed() >= Duration::from_millis(800), "{:?}", started.elapsed());
}

#[tokio::test]
async fn a_trickled_body_is_cut_with_a_408_and_the_connection_closed() {
    // Arrange: at least 1 KiB/s after a 1 s grace
    let app = app_with(&[
        ("POOL__SERVER__MIN_BODY_RATE_GRACE_SECS", "1"),
        ("POOL__SERVER__MIN_BODY_RATE_BYTES_PER_SEC", "1024"),
        ("POOL__SERVER__BODY_READ_TIMEOUT_SECS", "30"),
    ])
    .await;
    app.add_key("k").await;
    let mut stream = TcpStream::connect(addr(&app.base)).await.unwrap();
    let head = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nHost: gateway\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: 10000\r\n\r\n{{",
        app.token
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    // Act: a byte every 100 ms until the gateway answers
    let started = Instant::now();
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    while started.elapsed() < PATIENCE {
        tokio::select! {
            read = stream.read(&mut buf) => match read {
                Ok(0) | Err(_) => break,
                Ok(n) => answer.extend_from_slice(&buf[..n]),
            },
            () = tokio::time::sleep(Duration::from_millis(100)) => {
                if stream.write_all(b" ").await.is_err() {
                    break;
                }
            }
        }
    }
    // Assert
    let answer = String::from_utf8_lossy(&answer).into_owned();
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("\"code\":\"request_timeout\""), "{answer}");
    assert!(started.elapsed() < PATIENCE, "the connection was closed after the answer");
    assert_eq!(app.upstream.total_calls(), 0, "nothing went upstream");
}

#[tokio::test]
async fn fifty_slowloris_connections_do_not_stop_a_normal_client_and_are_all_closed() {
    // Arrange
    let app = app_with(&[("POOL__SERVER__HEADER_READ_TIMEOUT_SECS", "2")]).await;
    let target = addr(&app.base);
    let mut slow = Vec::new();
    for _ in 0..50 {
        let mut stream = TcpStream::connect(target).await.unwrap();
        stream.write_all(b"GET /health HTTP/1.1\r\nHost: gateway\r\nX-Slow: ").await.unwrap();
        slow.push(tokio::spawn(async move {
            // A header byte every 200 ms, for as long as the gateway keeps the connection.
            let started = Instant::now();
            let mut buf = [0u8; 64];
            while started.elapsed() < PATIENCE {
                tokio::select! {
                    read = stream.read(&mut buf) => if matches!(read, Ok(0) | Err(_)) { return true },
                    () = tokio::time::sleep(Duration::from_millis(200)) => {
                        if stream.write_all(b"a").await.is_err() { return true }
                    }
                }
            }
            false
        }));
    }
    // Act
    let health = app.client.get(app.url("/health")).send().await.unwrap();
    // Assert
    assert_eq!(health.status(), 200, "a normal client is served while they trickle");
    for connection in slow {
        assert!(connection.await.unwrap(), "every slowloris connection is closed");
    }
}

#[tokio::test]
async fn beyond_max_connections_new_ones_are_shed_while_an_open_one_is_still_served() {
    // Arrange: four connections allowed, four open (the helper's client may hold one of them)
    let app = app_with(&[("POOL__SERVER__MAX_CONNECTIONS", "4")]).await;
    let target = addr(&app.base);
    let mut first = Pinned::open(target).await;
    assert_eq!(first.get("/health").await.0, 200);
    let mut idle = Vec::new();
    for _ in 0..3 {
        idle.push(TcpStream::connect(target).await.unwrap());
    }
    let deadline = Instant::now() + PATIENCE;
    while first.metric("pool_client_connections").await < 4.0 {
        assert!(Instant::now() < deadline, "the idle connections were never counted");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let shed_before = first.metric("pool_client_connections_shed_total").await;
    // Act
    let mut extra = TcpStream::connect(target).await.unwrap();
    extra.write_all(b"GET /health HTTP/1.1\r\nHost: gateway\r\n\r\n").await.ok();
    let shed = read_until_closed(&mut extra, PATIENCE).await;
    // Assert
    let (answer, _) = shed.expect("the connection beyond the limit is closed");
    assert!(answer.is_empty(), "closed without an answer");
    assert_eq!(first.get("/health").await.0, 200, "the open connection is still served");
    assert!(first.metric("pool_client_connections_shed_total").await > shed_before, "the shed one is counted");
    assert!(first.metric("pool_client_connections").await <= 4.0, "never more than the limit open");
    drop(idle);
    let deadline = Instant::now() + PATIENCE;
    while !health_on_a_new_connection(target).await {
        assert!(Instant::now() < deadline, "room again once connections closed");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Whether `/health` answers 200 on a connection of its own.
async fn health_on_a_new_connection(target: SocketAddr) -> bool {
    let Ok(mut stream) = TcpStream::connect(target).await else { return false };
    if stream.write_all(b"GET /health HTTP/1.1\r\nHost: gateway\r\nConnection: close\r\n\r\n").await.is_err() {
        return false;
    }
    let answer = read_until_closed(&mut stream, PATIENCE).await.map(|(bytes, _)| bytes).unwrap_or_default();
    answer.starts_with(b"HTTP/1.1 200")
}

#[tokio::test]
async fn beyond_max_concurrent_requests_the_gateway_answers_503_with_retry_after_and_still_shows_its_health() {
    // Arrange: two streams held open by a stalling upstream fill a cap of two
    let app =
        app_with(&[("POOL__SERVER__MAX_CONCURRENT_REQUESTS", "2"), ("POOL__PROXY__IDLE_TIMEOUT_SECS", "60")]).await;
    app.add_key("k").await;
    app.upstream.set_fault("k", Fault::StallMidStream { after_events: 1 });
    let mut streams = Vec::new();
    for _ in 0..2 {
        let response = app.post_chat(&chat("m", true)).await;
        assert_eq!(response.status(), 200);
        let mut body = response.bytes_stream();
        body.next().await.unwrap().unwrap();
        streams.push(body);
    }
    // Act
    let refused = app.post_chat(&chat("m", false)).await;
    let health = app.client.get(app.url("/health")).send().await.unwrap();
    let metrics = app.admin_get("/metrics").await.text().await.unwrap();
    // Assert
    assert_eq!(refused.status(), 503);
    assert_eq!(refused.headers()["retry-after"], "1");
    assert_eq!(error_of(refused).await["code"], "overloaded");
    assert_eq!(health.status(), 200, "/health takes no slot");
    assert_eq!(metric(&metrics, "pool_requests_overloaded_total"), 1.0);
    assert_eq!(metric(&metrics, "pool_concurrent_requests"), 2.0, "a stream holds its slot until it ends");
    app.upstream.clear_fault("k");
    drop(streams.pop());
    let deadline = Instant::now() + PATIENCE;
    while app.post_chat(&chat("m", false)).await.status() != 200 {
        assert!(Instant::now() < deadline, "an ended stream frees its slot");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[tokio::test]
async fn every_answer_says_nosniff_and_names_no_server() {
    // Arrange
    let metrics_addr = free_addr().to_string();
    let app = app_with(&[("POOL__METRICS__LISTEN", &metrics_addr)]).await;
    app.add_key("k").await;
    // Act
    let answers = vec![
        app.client.get(app.url("/health")).send().await.unwrap(),
        app.admin_get("/metrics").await,
        app.client.get(app.url("/no/such/route")).send().await.unwrap(),
        app.post_as("sk-wrong", "/v1/chat/completions", &chat("m", false)).await,
        app.post_chat(&chat("m", true)).await,
        app.client.request(reqwest::Method::OPTIONS, app.url("/v1/models")).send().await.unwrap(),
        reqwest::get(format!("http://{metrics_addr}/metrics")).await.unwrap(),
    ];
    // Assert
    for answer in answers {
        let what = format!("{} {}", answer.url().path(), answer.status());
        assert_eq!(
            answer.headers().get("x-content-type-options").map(|v| v.to_str().unwrap()),
            Some("nosniff"),
            "{what}"
        );
        assert!(answer.headers().get("server").is_none(), "{what}");
    }
}

#[tokio::test]
async fn at_the_file_descriptor_limit_the_gateway_keeps_serving_blames_no_key_and_recovers() {
    // Arrange: the real binary with 128 descriptors, more connections allowed than it can hold
    let upstream = pool_testkit::FakeUpstream::start().await.unwrap();
    let url = upstream.url();
    let database = match postgres_url().filter(|_| test_backend() == "postgres") {
        Some(server) => fresh_postgres_database(&server).await,
        None => "sqlite://data/pool.db".to_owned(),
    };
    let binary = ServingBinary::start_with_fd_limit(
        128,
        &["serve"],
        &[
            ("POOL_DATABASE_URL", &database),
            ("POOL__PROVIDERS__OLLAMA__URL", &url),
            ("POOL__SERVER__MAX_CONNECTIONS", "100000"),
            ("POOL__SERVER__HEADER_READ_TIMEOUT_SECS", "120"),
            ("POOL__PROXY__FIRST_BYTE_TIMEOUT_SECS", "10"),
        ],
    )
    .await;
    let target = addr(&binary.base);
    let client = reqwest::Client::new();
    for key in ["k1", "k2"] {
        let added =
            client.post(format!("{}/admin/api-keys", binary.base)).bearer_auth(ADMIN).json(&json!({"api_key": key}));
        assert_eq!(added.send().await.unwrap().status(), 200);
    }
    let created = client.post(format!("{}/admin/tokens", binary.base)).bearer_auth(ADMIN).json(&json!({"name": "t"}));
    let created: Value = created.send().await.unwrap().json().await.unwrap();
    let token = created["token"].as_str().unwrap().to_owned();
    let mut held = Vec::new();
    for _ in 0..4 {
        let mut pinned = Pinned::open(target).await;
        assert_eq!(pinned.get("/health").await.0, 200);
        held.push(pinned);
    }
    // Act: connections until accept fails
    let mut flood = Vec::new();
    for _ in 0..200 {
        flood.push(TcpStream::connect(target).await.unwrap());
    }
    let deadline = Instant::now() + PATIENCE;
    while held[0].metric("pool_accept_exhausted_total").await < 1.0 {
        assert!(Instant::now() < deadline, "the gateway never ran out of descriptors");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Assert: the open connections are answered (the upstream calls that need a new socket fail)
    for pinned in &mut held {
        assert_eq!(pinned.get("/health").await.0, 200, "an open connection is still served");
    }
    upstream.set_fault("k1", Fault::SlowFirstByte(Duration::from_millis(300)));
    upstream.set_fault("k2", Fault::SlowFirstByte(Duration::from_millis(300)));
    let body = chat("m", false);
    let answered = futures_util::future::join_all(
        held.iter_mut().map(|p| p.send("POST", "/v1/chat/completions", &token, Some(&body))),
    )
    .await;
    let statuses: Vec<u16> = answered.iter().map(|(status, _, _)| *status).collect();
    assert!(statuses.iter().all(|s| [200, 502].contains(s)), "every request got an answer: {statuses:?}");
    let exhausted = answered.iter().filter(|(_, _, body)| String::from_utf8_lossy(body).contains("out of resources"));
    assert!(exhausted.count() > 0, "some upstream calls needed a socket the gateway did not have: {statuses:?}");
    // Recovery: the flood leaves, new clients are served again
    drop(flood);
    upstream.clear_fault("k1");
    upstream.clear_fault("k2");
    let deadline = Instant::now() + PATIENCE;
    loop {
        let served =
            client.post(format!("{}/v1/chat/completions", binary.base)).bearer_auth(&token).json(&body).send().await;
        if served.is_ok_and(|r| r.status() == 200) {
            break;
        }
        assert!(Instant::now() < deadline, "the gateway recovers by itself");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let keys: Value = client
        .get(format!("{}/admin/api-keys?fetch=all", binary.base))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for key in keys["api_keys"].as_array().unwrap() {
        assert_eq!(key["status"], "active", "no key is blamed for the gateway's own exhaustion: {key}");
    }
    let (clean, logs, _) = binary.stop().await;
    assert!(clean, "{logs}");
    assert!(logs.contains("cannot accept client connections"), "the exhaustion is logged");
}
