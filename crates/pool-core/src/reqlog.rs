//! The request log: one entry per client request (when, who, which model, how it ended, and
//! every key it tried), for the console's Requests page.
//!
//! An entry is built once, when the request is settled ([`crate::proxy`]), and pushed into a
//! bounded in-memory queue ([`RequestLog`]); the periodic flush that writes statistics drains it
//! and writes batches to the store ([`crate::accounting::flush_request_log`]). So the hot path
//! pays one short lock and no allocation beyond the entry itself: the request id is held
//! inline, the model and provider are shared `Arc`s, and the attempts that failed (rare) are
//! the only heap the entry owns. Reasons are cut down and the token's name looked up at flush
//! time, off the hot path. When the queue is full (the store away too long, or more requests
//! than a flush writes), the oldest entry gives way and is counted.
//!
//! A key design decision: the attempts are written exactly as `x-pool-attempts` reports them
//! ([`attempt_list`] is that header's one source), so a client's header and the console agree.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::UnixMs;
use crate::ids::{KeyId, TokenId};
use crate::provider::ProviderName;
use crate::stats::Outcome;

/// Longest request id kept (the gateway's own are 32 characters; a client's at most 64).
pub const MAX_REQUEST_ID: usize = 64;

/// Longest attempt reason kept, in bytes.
pub const MAX_REASON: usize = 96;

/// A request id held inline, so logging a request does not allocate for it.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct RequestId {
    len: u8,
    bytes: [u8; MAX_REQUEST_ID],
}

impl RequestId {
    /// The id as the edge settled it (always short ASCII); anything longer is cut, anything
    /// that is not ASCII dropped.
    pub fn new(id: &[u8]) -> Self {
        let mut bytes = [0u8; MAX_REQUEST_ID];
        let id: &[u8] = if id.is_ascii() { &id[..id.len().min(MAX_REQUEST_ID)] } else { &[] };
        bytes[..id.len()].copy_from_slice(id);
        Self { len: id.len() as u8, bytes }
    }

    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.bytes[..usize::from(self.len)]).unwrap_or_default()
    }
}

impl Default for RequestId {
    fn default() -> Self {
        Self::new(b"")
    }
}

impl std::fmt::Debug for RequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One attempt that did not serve the request: which key, and why it was left.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttemptNote {
    pub key: KeyId,
    pub outcome: String,
}

/// The last key a request went to, besides those that failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LastAttempt {
    /// Its answer is the client's (2xx, or a client error passed through).
    Served(KeyId),
    /// The client left while it was under way.
    Abandoned(KeyId),
}

/// One client request, as settled.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestLogEntry {
    pub at: UnixMs,
    pub request_id: RequestId,
    pub provider: ProviderName,
    /// The model as statistics count it: the client's name only if the pool knows it, else
    /// [`crate::proxy::OTHER_MODEL`]; empty when the request was refused before it was read.
    pub model: Arc<str>,
    pub token: Option<TokenId>,
    /// Looked up at flush time (`None` on the hot path, and for a token deleted meanwhile).
    pub token_name: Option<String>,
    pub status: u16,
    pub outcome: Outcome,
    pub latency_ms: u64,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub stream: bool,
    /// The attempts that did not serve, in order.
    pub failed: Vec<AttemptNote>,
    pub last: Option<LastAttempt>,
}

/// One attempt as `x-pool-attempts` and the request log report it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoggedAttempt {
    pub key: KeyId,
    pub reason: String,
}

/// Every attempt of a request, in order, with the reason `x-pool-attempts` gives each: the
/// failed ones' outcome texts (cut down by [`sanitise`]), then `ok` for the key that served a
/// 2xx, `returned <status>` for one whose client error was passed through, or `client closed`
/// for the attempt the client did not wait for.
pub fn attempt_list(failed: &[AttemptNote], last: Option<LastAttempt>, status: u16) -> Vec<LoggedAttempt> {
    let mut out: Vec<LoggedAttempt> =
        failed.iter().map(|n| LoggedAttempt { key: n.key, reason: sanitise(&n.outcome) }).collect();
    out.extend(last.map(|last| match last {
        LastAttempt::Served(key) => LoggedAttempt { key, reason: served_reason(status) },
        LastAttempt::Abandoned(key) => LoggedAttempt { key, reason: "client closed".to_owned() },
    }));
    out
}

/// The reason of the key whose answer the client got.
pub fn served_reason(status: u16) -> String {
    if (200..300).contains(&status) { "ok".to_owned() } else { format!("returned {status}") }
}

/// Printable ASCII without `;` or `=` (the header's separators), `_` for anything else, cut at
/// [`MAX_REASON`]: a model name in a reason cannot break the format.
pub fn sanitise(reason: &str) -> String {
    let keep = |c: char| c.is_ascii_alphanumeric() || " .,:_-/()'".contains(c);
    let mut out: String = reason.chars().map(|c| if keep(c) { c } else { '_' }).take(MAX_REASON).collect();
    out.truncate(out.trim_end().len());
    if out.is_empty() { "unknown".to_owned() } else { out }
}

/// The attempts in `x-pool-attempts`' format: `<key id>=<reason>` joined by `; `.
pub fn format_attempts(attempts: &[LoggedAttempt]) -> String {
    let entries: Vec<String> = attempts.iter().map(|a| format!("{}={}", a.key, a.reason)).collect();
    entries.join("; ")
}

/// Reads [`format_attempts`]' output back; entries that do not parse are skipped.
pub fn parse_attempts(text: &str) -> Vec<LoggedAttempt> {
    text.split("; ")
        .filter_map(|entry| entry.split_once('='))
        .filter_map(|(key, reason)| Some(LoggedAttempt { key: key.parse().ok()?, reason: reason.to_owned() }))
        .collect()
}

/// The bounded queue between the hot path and the store. Cheap to share (`Arc`).
pub struct RequestLog {
    queue: Mutex<VecDeque<RequestLogEntry>>,
    capacity: usize,
    enabled: bool,
    dropped: AtomicU64,
}

impl RequestLog {
    /// A log holding at most `capacity` entries between flushes; a disabled one takes none.
    pub fn new(capacity: usize, enabled: bool) -> Self {
        Self { queue: Mutex::new(VecDeque::new()), capacity: capacity.max(1), enabled, dropped: AtomicU64::new(0) }
    }

    /// A log that keeps nothing (`request_log.retention_days = 0`).
    pub fn disabled() -> Self {
        Self::new(1, false)
    }

    pub fn is_enabled(&self) -> bool {
        self.enabled
    }

    /// Queues an entry; when the queue is full, the oldest gives way (and is counted).
    pub fn push(&self, entry: RequestLogEntry) {
        if !self.enabled {
            return;
        }
        let mut queue = lock(&self.queue);
        if queue.len() >= self.capacity {
            queue.pop_front();
            self.dropped.fetch_add(1, Relaxed);
        }
        queue.push_back(entry);
    }

    /// Takes every entry queued so far, oldest first.
    pub fn take(&self) -> Vec<RequestLogEntry> {
        lock(&self.queue).drain(..).collect()
    }

    /// Gives back entries a flush could not write, ahead of those queued since; beyond the
    /// capacity the oldest give way (and are counted).
    pub fn restore(&self, entries: Vec<RequestLogEntry>) {
        let mut queue = lock(&self.queue);
        for entry in entries.into_iter().rev() {
            queue.push_front(entry);
        }
        while queue.len() > self.capacity {
            queue.pop_front();
            self.dropped.fetch_add(1, Relaxed);
        }
    }

    /// Entries waiting for a flush.
    pub fn backlog(&self) -> usize {
        lock(&self.queue).len()
    }

    /// Entries dropped since start because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Relaxed)
    }
}

/// A poisoned queue still holds whole entries (every change is one push or pop).
fn lock(queue: &Mutex<VecDeque<RequestLogEntry>>) -> MutexGuard<'_, VecDeque<RequestLogEntry>> {
    queue.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Which statuses a query asks for: one, or a class (`4` for 4xx).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StatusFilter {
    Exact(u16),
    Class(u16),
}

impl StatusFilter {
    /// `404`, or `4xx` (any case); `None` for anything else.
    pub fn parse(s: &str) -> Option<Self> {
        let s = s.trim();
        if let Some(class) = s.strip_suffix("xx").or_else(|| s.strip_suffix("XX")) {
            return class.parse::<u16>().ok().filter(|c| (1..=5).contains(c)).map(Self::Class);
        }
        s.parse::<u16>().ok().filter(|s| (100..=599).contains(s) || *s == 0).map(Self::Exact)
    }
}

/// Most entries one page returns.
pub const MAX_PAGE: u32 = 200;

/// A page of the log, newest first: every filter that is set must hold.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RequestQuery {
    /// Only entries older than this log id (the previous page's `next_before`).
    pub before: Option<i64>,
    pub limit: u32,
    pub status: Option<StatusFilter>,
    pub outcome: Option<Outcome>,
    pub model: Option<String>,
    pub token: Option<TokenId>,
    /// Any attempt went to this key.
    pub key: Option<KeyId>,
    pub request_id: Option<String>,
    /// From this instant, inclusive.
    pub from: Option<UnixMs>,
    /// Up to this instant, exclusive.
    pub to: Option<UnixMs>,
}

/// One stored entry, as read back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestRecord {
    /// The log's own id: increasing, the paging cursor.
    pub id: i64,
    pub at: UnixMs,
    pub request_id: String,
    pub provider: String,
    pub model: String,
    pub token: Option<String>,
    pub token_name: Option<String>,
    pub status: u16,
    pub outcome: String,
    pub latency_ms: u64,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub stream: bool,
    pub attempts: Vec<LoggedAttempt>,
}

/// A page of entries, and whether older ones match too.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RequestPage {
    pub entries: Vec<RequestRecord>,
    pub has_more: bool,
}

impl RequestPage {
    /// The cursor of the next page: the oldest entry's id, when there is one.
    pub fn next_before(&self) -> Option<i64> {
        if self.has_more { self.entries.last().map(|e| e.id) } else { None }
    }
}

#[cfg(test)]
mod tests;
