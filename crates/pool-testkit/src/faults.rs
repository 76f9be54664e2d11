//! The faults a test can inject per key, and the request record a test can inspect.

use std::time::Duration;

use bytes::Bytes;

/// Something going wrong on the fake upstream, for the requests of one key.
#[derive(Clone, Debug)]
pub enum Fault {
    /// Answer this status at once, with a `Retry-After` header if given.
    ///
    /// The body defaults to
    /// `{"error":{"message":"fake upstream error <status>","type":"upstream_error","code":<status>}}`.
    /// A code that is not a valid HTTP status is answered as 500.
    Status {
        /// The HTTP status code.
        status: u16,
        /// The value of the `Retry-After` header, if any.
        retry_after: Option<String>,
        /// The JSON body, replacing the default one.
        body: Option<String>,
    },
    /// Wait this long before sending the response headers, then answer normally.
    SlowFirstByte(Duration),
    /// Read the request, then close the TCP connection without writing any response.
    DropBeforeHeaders,
    /// Streams: send this many events, then abort the connection (no terminating chunk,
    /// no `[DONE]`). Non-streaming answers: send the headers and half the body, then abort.
    ///
    /// If `after_events` is at least the number of events of the stream, every event is
    /// sent before the abort.
    DropMidStream {
        /// How many events to send before the abort.
        after_events: usize,
    },
    /// Streams: send this many events, then nothing more until the client goes away.
    /// Non-streaming answers: send the headers and half the body, then stall.
    StallMidStream {
        /// How many events to send before stalling.
        after_events: usize,
    },
    /// Answer 404 `model_not_found` naming the request's `model`.
    ModelNotFound,
    /// Apply `fault` to a fraction `ratio` (0.0 to 1.0) of the requests, drawn at random from
    /// the fake upstream's seeded generator ([`crate::FakeUpstream::set_seed`]); answer the
    /// others normally.
    Random {
        /// The fraction of requests that get `fault`.
        ratio: f64,
        /// The fault they get (itself possibly random, or one of several).
        fault: Box<Fault>,
    },
    /// Apply one of these faults, chosen uniformly at random for each request (none if empty).
    OneOf(Vec<Fault>),
}

/// What every request gets while the whole fake upstream is out ([`crate::FakeUpstream::set_outage`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Outage {
    /// Normal service: per-key faults apply.
    #[default]
    Off,
    /// Every request is answered 503 (counted, and recorded, like any other).
    Unavailable,
    /// Every request's connection is closed without an answer, and new connections are closed
    /// as soon as they are accepted.
    Drop,
}

impl Fault {
    /// A plain error status with the default body and no `Retry-After`.
    pub fn status(code: u16) -> Fault {
        Fault::Status { status: code, retry_after: None, body: None }
    }

    /// A 429 answer, with the given `Retry-After` header if any.
    pub fn rate_limited(retry_after: Option<&str>) -> Fault {
        Fault::Status { status: 429, retry_after: retry_after.map(str::to_owned), body: None }
    }

    /// `fault` for a fraction `ratio` of the requests, at random.
    pub fn random(ratio: f64, fault: Fault) -> Fault {
        Fault::Random { ratio, fault: Box::new(fault) }
    }
}

/// A request as the fake upstream received it.
#[derive(Clone, Debug)]
pub struct RecordedRequest {
    /// The method, e.g. `POST`.
    pub method: String,
    /// The path, without the query.
    pub path: String,
    /// Every header, names lower-cased, in the order received.
    pub headers: Vec<(String, String)>,
    /// The raw body.
    pub body: Bytes,
}

/// A request stored cheaply on the hot path; converted to a [`RecordedRequest`] on demand.
pub(crate) struct StoredRequest {
    pub(crate) method: hyper::Method,
    pub(crate) uri: hyper::Uri,
    pub(crate) headers: hyper::HeaderMap,
    pub(crate) body: Bytes,
}

impl StoredRequest {
    pub(crate) fn to_recorded(&self) -> RecordedRequest {
        RecordedRequest {
            method: self.method.as_str().to_owned(),
            path: self.uri.path().to_owned(),
            headers: self
                .headers
                .iter()
                .map(|(name, value)| {
                    let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
                    (name.as_str().to_owned(), value)
                })
                .collect(),
            body: self.body.clone(),
        }
    }
}
