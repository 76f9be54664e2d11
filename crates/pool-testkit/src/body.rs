//! Turning a planned answer into a hyper response, cutting it short (abort or stall) when a
//! fault asks for it.

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use hyper::header::{CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use hyper::{Response, StatusCode};

/// The error type of response bodies (and of the connection service).
pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The body type of every response.
pub(crate) type ResBody = UnsyncBoxBody<Bytes, BoxError>;

/// The error used to abort a connection on purpose.
#[derive(Debug)]
pub(crate) struct Aborted;

impl std::fmt::Display for Aborted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("fake upstream aborted the connection on purpose")
    }
}

impl std::error::Error for Aborted {}

pub(crate) const JSON: &str = "application/json";
pub(crate) const SSE: &str = "text/event-stream";
pub(crate) const NDJSON: &str = "application/x-ndjson";

/// An answer, before any mid-body fault is applied.
pub(crate) enum Reply {
    /// A complete body sent at once.
    Full { status: StatusCode, content_type: &'static str, body: Bytes, retry_after: Option<String> },
    /// A 200 stream of events, each its own chunk, each preceded by `delay`.
    Stream { content_type: &'static str, events: Vec<Bytes>, delay: Duration },
}

impl Reply {
    /// A JSON answer with this status.
    pub(crate) fn json(status: StatusCode, body: String) -> Reply {
        Reply::Full { status, content_type: JSON, body: Bytes::from(body), retry_after: None }
    }

    /// A 200 JSON answer.
    pub(crate) fn ok(body: String) -> Reply {
        Reply::json(StatusCode::OK, body)
    }
}

/// How a response body ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Cut {
    /// Normally.
    None,
    /// With an aborted connection after this many events.
    Drop(usize),
    /// By sending nothing more after this many events.
    Stall(usize),
}

/// Builds the hyper response of `reply`, ending its body as `cut` says.
pub(crate) fn respond(reply: Reply, cut: Cut) -> Response<ResBody> {
    match reply {
        Reply::Full { status, content_type, body, retry_after } => {
            let len = body.len();
            let mut response = if cut == Cut::None {
                Response::new(Full::new(body).map_err(never).boxed_unsync())
            } else {
                // Half the body, then the cut: the client sees the headers and a short body.
                let half = body.slice(..len / 2);
                let cut = match cut {
                    Cut::Stall(_) => Cut::Stall(1),
                    _ => Cut::Drop(1),
                };
                Response::new(events_body(vec![half], Duration::ZERO, cut))
            };
            *response.status_mut() = status;
            let headers = response.headers_mut();
            headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
            headers.insert(CONTENT_LENGTH, HeaderValue::from(len));
            if let Some(value) = retry_after.and_then(|v| HeaderValue::from_str(&v).ok()) {
                headers.insert(RETRY_AFTER, value);
            }
            response
        }
        Reply::Stream { content_type, events, delay } => {
            let mut response = Response::new(events_body(events, delay, cut));
            let headers = response.headers_mut();
            headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
            headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
            response
        }
    }
}

fn never(never: Infallible) -> BoxError {
    match never {}
}

/// Where a streamed body is.
struct Progress {
    events: std::vec::IntoIter<Bytes>,
    sent: usize,
    delay: Duration,
    cut: Cut,
    done: bool,
}

/// A body sending `events` one chunk each (flushed separately), ended as `cut` says.
fn events_body(events: Vec<Bytes>, delay: Duration, cut: Cut) -> ResBody {
    let progress = Progress { events: events.into_iter(), sent: 0, delay, cut, done: false };
    let frames = stream::unfold(progress, |mut progress| async move {
        if progress.done {
            return None;
        }
        let cut_here = match progress.cut {
            Cut::Drop(n) | Cut::Stall(n) => progress.sent >= n || progress.events.len() == 0,
            Cut::None => false,
        };
        if cut_here {
            // Give hyper a chance to flush what was sent before cutting.
            tokio::task::yield_now().await;
            if let Cut::Stall(_) = progress.cut {
                std::future::pending::<()>().await;
            }
            progress.done = true;
            return Some((Err(BoxError::from(Aborted)), progress));
        }
        let event = progress.events.next()?;
        if !progress.delay.is_zero() {
            tokio::time::sleep(progress.delay).await;
        } else if progress.sent > 0 {
            // A pending poll makes hyper flush the previous event as its own write.
            tokio::task::yield_now().await;
        }
        progress.sent += 1;
        Some((Ok(Frame::data(event)), progress))
    });
    StreamBody::new(frames).boxed_unsync()
}
