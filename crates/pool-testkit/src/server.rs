//! The accept loop, the per-connection tasks and the request handler that counts,
//! records, applies faults and routes.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::header::{AUTHORIZATION, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::body::{Aborted, BoxError, Cut, ResBody, respond};
use crate::faults::{Fault, Outage, StoredRequest};
use crate::routes;
use crate::state::Inner;

/// Counts a connection as open for as long as it lives.
struct OpenGuard(Arc<Inner>);

impl OpenGuard {
    fn new(inner: Arc<Inner>) -> OpenGuard {
        inner.connection_opened();
        OpenGuard(inner)
    }
}

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.connection_closed();
    }
}

/// Accepts connections until `token` is cancelled; each connection ends then too.
pub(crate) async fn serve(listener: TcpListener, inner: Arc<Inner>, token: CancellationToken, tasks: TaskTracker) {
    let mut builder = http1::Builder::new();
    builder.keep_alive(true);
    loop {
        let accepted = tokio::select! {
            () = token.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(_) => {
                // Out of descriptors or similar: back off a little instead of spinning.
                tokio::time::sleep(Duration::from_millis(1)).await;
                continue;
            }
        };
        if inner.outage() == Outage::Drop {
            drop(stream);
            continue;
        }
        // Small writes (SSE events) must leave at once.
        let _ = stream.set_nodelay(true);
        let guard = OpenGuard::new(Arc::clone(&inner));
        let service_inner = Arc::clone(&inner);
        let service = service_fn(move |req| handle(Arc::clone(&service_inner), req));
        let connection = builder.serve_connection(TokioIo::new(stream), service);
        let token = token.clone();
        tasks.spawn(async move {
            let _guard = guard;
            tokio::select! {
                _ = connection => {}
                () = token.cancelled() => {}
            }
        });
    }
}

/// The bearer token of the request, if any and not empty.
fn bearer(value: Option<&HeaderValue>) -> Option<&str> {
    let value = value?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// Answers one request. An `Err` makes hyper close the connection without answering.
async fn handle(inner: Arc<Inner>, req: Request<Incoming>) -> Result<Response<ResBody>, BoxError> {
    let (parts, incoming) = req.into_parts();
    let body: Bytes = incoming.collect().await?.to_bytes();
    // Cheap clones (shared bytes) so the originals can be stored as the record.
    let authorization = parts.headers.get(AUTHORIZATION).cloned();
    let method = parts.method.clone();
    let uri = parts.uri.clone();
    let key = bearer(authorization.as_ref());
    let stored = StoredRequest { method: parts.method, uri: parts.uri, headers: parts.headers, body: body.clone() };
    let fault = inner.receive(key.unwrap_or(""), stored);

    let mut cut = Cut::None;
    match fault {
        None => {}
        Some(Fault::Status { status, retry_after, body }) => {
            return Ok(respond(routes::status_fault(status, retry_after, body), cut));
        }
        Some(Fault::SlowFirstByte(delay)) => tokio::time::sleep(delay).await,
        Some(Fault::DropBeforeHeaders) => return Err(Aborted.into()),
        Some(Fault::DropMidStream { after_events }) => cut = Cut::Drop(after_events),
        Some(Fault::StallMidStream { after_events }) => cut = Cut::Stall(after_events),
        Some(Fault::ModelNotFound) => return Ok(respond(routes::model_not_found(&body), cut)),
        // Resolved to one of the faults above by `Inner::receive`.
        Some(Fault::Random { .. } | Fault::OneOf(_)) => {}
    }

    let reply = match key {
        None => routes::unauthorized(),
        Some(key) => routes::route(&inner, key, &method, uri.path(), &body),
    };
    Ok(respond(reply, cut))
}
