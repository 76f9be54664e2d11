//! What an upstream answer means: deliver it, hand the client its own error, or try another key.
//!
//! The classification follows pingora's split of an error by source (upstream, downstream,
//! internal) and by whether a retry is safe. Retrying is always safe here because nothing has gone
//! to the client yet; the proxy never retries after the first byte.

use http::HeaderMap;

use crate::UnixMs;
use crate::key::KeyEvent;
use crate::ports::TransportError;
use crate::quota::{QuotaRest, QuotaWindow, RateLimit, read_rate_limit};
use crate::stats::Outcome;

/// What an upstream did on one attempt, as far as the table needs to know.
#[derive(Clone, Copy, Debug)]
pub enum Answer<'a> {
    /// An HTTP answer: its status, headers and the start of its body (for a 429, which window
    /// ran out). `model_listed`: the key's discovered models name the requested model, so a
    /// 404 says the list is out of date, not that the client mistyped.
    Status { status: u16, headers: &'a HeaderMap, body: &'a [u8], model_listed: bool },
    /// A `2xx` stream whose first event is an error naming this status (OpenRouter does this).
    InBand { status: u16 },
    /// No usable answer.
    Transport(&'a TransportError),
}

/// Whether a failure spends the request's budget of ambiguous failures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cost {
    /// Certainly this key's (401/403, 429, an exhausted quota, a model it does not have):
    /// another key will do, and a request is bounded by the pool's size and its deadline.
    Free,
    /// Perhaps the upstream's (5xx, timeouts, dropped or refused connections).
    Spends,
}

/// The verdict on one upstream answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// 2xx: give it to the client; the key did well.
    Deliver,
    /// The client's own mistake (400, 404 model not found, 413, 422…): return it unchanged and
    /// do not blame the key.
    PassThrough,
    /// Try another key, recording `event` on this one.
    Retry { event: KeyEvent, cost: Cost },
    /// The gateway cannot deliver this (an answer larger than it reads whole, its own
    /// misconfiguration): the request fails with 502 and no key is blamed.
    Fail,
}

/// The table's whole answer: what to do, how to count the attempt, and a note for the log,
/// `x-pool-attempts` and the client's error message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    pub verdict: Verdict,
    pub outcome: Outcome,
    pub note: String,
}

/// The one table: every upstream answer (status, in-band stream error, transport error),
/// for the proxy and the prober alike.
pub fn classify(answer: Answer<'_>, quota: &QuotaRest, now: UnixMs) -> Decision {
    match answer {
        Answer::Status { status, headers, body, model_listed } => {
            classify_status(status, headers, body, model_listed, quota, now)
        }
        Answer::InBand { status } => {
            let mut decision = classify_status(status, &HeaderMap::new(), b"", false, quota, now);
            if !matches!(decision.verdict, Verdict::Retry { .. }) {
                // An error event that names no failure of the key: the stream goes to the client.
                decision = Decision { verdict: Verdict::Deliver, outcome: Outcome::Success, note: String::new() };
            } else {
                decision.note = format!("upstream stream opened with error {status}");
            }
            decision
        }
        Answer::Transport(error) => classify_transport(error),
    }
}

fn classify_status(
    status: u16,
    headers: &HeaderMap,
    body: &[u8],
    model_listed: bool,
    quota: &QuotaRest,
    now: UnixMs,
) -> Decision {
    let note = format!("upstream answered {status}");
    let (verdict, outcome) = match status {
        200..=299 => (Verdict::Deliver, Outcome::Success),
        429 => {
            (rest(read_rate_limit(headers, body, now), quota, "rate limited by upstream (429)"), Outcome::RateLimited)
        }
        // OpenRouter's "insufficient credits": the key's money ran out, not its welcome.
        402 => {
            let credits = RateLimit { window: QuotaWindow::Credits, reset_after_ms: None };
            (rest(credits, quota, "out of credit upstream (402)"), Outcome::AuthError)
        }
        401 | 403 => (Verdict::Retry { event: KeyEvent::Rejected { status }, cost: Cost::Free }, Outcome::AuthError),
        // The key's model list is out of date: another key that lists the model is asked; only
        // a background probe of this key's list changes it (no client may change the pool).
        404 if model_listed => (Verdict::Retry { event: KeyEvent::Neutral, cost: Cost::Free }, Outcome::ModelMissing),
        // 408 (the upstream timed out reading us) and 5xx are the upstream's trouble.
        408 | 500..=599 => {
            let event = KeyEvent::Transient { cause: note.clone() };
            (Verdict::Retry { event, cost: Cost::Spends }, Outcome::ServerError)
        }
        // Any other status (1xx/3xx should not happen; 4xx are the client's) goes back as sent.
        _ => (Verdict::PassThrough, Outcome::ClientError),
    };
    Decision { verdict, outcome, note }
}

/// A rest for the window the upstream named (or its class default).
fn rest(limit: RateLimit, quota: &QuotaRest, what: &str) -> Verdict {
    let rest_ms = quota.rest_ms(&limit);
    let reason = format!("{what}; {:?} limit, resting {} s", limit.window, rest_ms / 1000).to_lowercase();
    Verdict::Retry { event: KeyEvent::RateLimited { rest_ms, reason }, cost: Cost::Free }
}

/// Transport errors by source: the upstream's (timeouts, drops) rest the key if they go on; a
/// refused connection is the host's, not the key's; the gateway's own trouble (its
/// configuration, its file descriptors or memory) blames nobody upstream.
fn classify_transport(error: &TransportError) -> Decision {
    let note = error.to_string();
    let transient = |outcome| {
        let event = KeyEvent::Transient { cause: note.clone() };
        (Verdict::Retry { event, cost: Cost::Spends }, outcome)
    };
    let (verdict, outcome) = match error {
        TransportError::FirstByteTimeout | TransportError::IdleTimeout => transient(Outcome::Timeout),
        TransportError::Dropped => transient(Outcome::Network),
        TransportError::Connect | TransportError::Local => {
            (Verdict::Retry { event: KeyEvent::Neutral, cost: Cost::Spends }, Outcome::Network)
        }
        TransportError::TooLarge | TransportError::Config => (Verdict::Fail, Outcome::Failed),
    };
    Decision { verdict, outcome, note }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: UnixMs = 1_445_412_480_000; // Wed, 21 Oct 2015 07:28:00 GMT

    fn status(code: u16) -> Decision {
        classify(
            Answer::Status { status: code, headers: &HeaderMap::new(), body: b"", model_listed: false },
            &QuotaRest::default(),
            NOW,
        )
    }

    fn retry(decision: &Decision) -> Option<(&KeyEvent, Cost)> {
        match &decision.verdict {
            Verdict::Retry { event, cost } => Some((event, *cost)),
            _ => None,
        }
    }

    #[test]
    fn success_statuses_are_delivered() {
        assert_eq!(status(200).verdict, Verdict::Deliver);
        assert_eq!(status(204).outcome, Outcome::Success);
    }

    #[test]
    fn client_errors_pass_through_without_blame() {
        for code in [400, 404, 405, 409, 413, 422] {
            assert_eq!((status(code).verdict, status(code).outcome), (Verdict::PassThrough, Outcome::ClientError));
        }
    }

    #[test]
    fn a_404_for_a_model_the_key_lists_moves_on_for_free_and_changes_nothing() {
        let answer = Answer::Status { status: 404, headers: &HeaderMap::new(), body: b"", model_listed: true };
        let decision = classify(answer, &QuotaRest::default(), NOW);
        assert_eq!(retry(&decision), Some((&KeyEvent::Neutral, Cost::Free)));
        assert_eq!(decision.outcome, Outcome::ModelMissing);
    }

    #[test]
    fn key_rejections_retry_for_free_and_mark_the_key() {
        for code in [401, 403] {
            assert_eq!(retry(&status(code)), Some((&KeyEvent::Rejected { status: code }, Cost::Free)));
            assert_eq!(status(code).outcome, Outcome::AuthError);
        }
        assert!(matches!(retry(&status(402)), Some((KeyEvent::RateLimited { .. }, Cost::Free))));
    }

    #[test]
    fn rate_limits_rest_the_key_for_what_the_upstream_said() {
        let mut headers = HeaderMap::new();
        headers.insert(http::header::RETRY_AFTER, http::HeaderValue::from_static("7"));
        let answer = Answer::Status { status: 429, headers: &headers, body: b"", model_listed: false };
        let decision = classify(answer, &QuotaRest::default(), NOW);
        assert!(matches!(retry(&decision), Some((KeyEvent::RateLimited { rest_ms: 7_000, .. }, Cost::Free))));
        assert_eq!(decision.outcome, Outcome::RateLimited);
    }

    #[test]
    fn server_errors_and_408_are_transient_spend_the_budget_and_count_alike() {
        for code in [408, 500, 502, 503, 504, 599] {
            let decision = status(code);
            assert!(matches!(retry(&decision), Some((KeyEvent::Transient { .. }, Cost::Spends))), "{code}");
            assert_eq!(decision.outcome, Outcome::ServerError, "{code}");
        }
    }

    #[test]
    fn in_band_errors_follow_the_status_table() {
        let quota = QuotaRest::default();
        let decision = classify(Answer::InBand { status: 429 }, &quota, NOW);
        assert!(matches!(retry(&decision), Some((KeyEvent::RateLimited { .. }, Cost::Free))));
        assert_eq!(classify(Answer::InBand { status: 400 }, &quota, NOW).verdict, Verdict::Deliver);
    }

    #[test]
    fn transport_errors_are_classified_by_their_source() {
        let quota = QuotaRest::default();
        let of = |e: TransportError| classify(Answer::Transport(&e), &quota, NOW);
        assert!(matches!(
            retry(&of(TransportError::FirstByteTimeout)),
            Some((KeyEvent::Transient { .. }, Cost::Spends))
        ));
        assert!(matches!(retry(&of(TransportError::Dropped)), Some((KeyEvent::Transient { .. }, Cost::Spends))));
        assert_eq!(
            retry(&of(TransportError::Connect)),
            Some((&KeyEvent::Neutral, Cost::Spends)),
            "the host, not the key"
        );
        assert_eq!(retry(&of(TransportError::Local)), Some((&KeyEvent::Neutral, Cost::Spends)), "the gateway's own");
        assert_eq!(of(TransportError::TooLarge).verdict, Verdict::Fail, "not the key's fault");
        assert_eq!(of(TransportError::Config).verdict, Verdict::Fail, "the gateway's configuration");
    }
}
