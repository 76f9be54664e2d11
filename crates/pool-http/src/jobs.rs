//! Jobs: long admin operations (validated imports) that run in the background and report
//! progress, as a JSON snapshot or as a server-sent event stream.
//!
//! Jobs live in memory: they are operator conveniences, not records. A finished job is kept for
//! an hour so its result can still be fetched.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use axum::response::sse::Event;
use futures_util::Stream;
use pool_core::UnixMs;
use serde::Serialize;
use serde_json::Value;
use tokio::sync::watch;
use utoipa::ToSchema;
use uuid::Uuid;

/// How long a finished job stays visible.
const KEEP_FINISHED_MS: i64 = 3_600_000;

#[derive(Default)]
pub struct Jobs {
    by_id: Mutex<HashMap<Uuid, Arc<Job>>>,
}

impl Jobs {
    /// Registers a new running job (and forgets jobs finished over an hour ago).
    pub fn start(&self, total: usize, now: UnixMs) -> Arc<Job> {
        let job = Arc::new(Job::new(total));
        let mut jobs = lock(&self.by_id);
        jobs.retain(|_, j| j.finished_at().is_none_or(|at| now - at < KEEP_FINISHED_MS));
        jobs.insert(job.id, Arc::clone(&job));
        job
    }

    pub fn get(&self, id: Uuid) -> Option<Arc<Job>> {
        lock(&self.by_id).get(&id).cloned()
    }
}

#[derive(Default)]
struct Results {
    valid: Vec<Value>,
    invalid: Vec<Value>,
    finished_at: Option<UnixMs>,
}

pub struct Job {
    pub id: Uuid,
    pub total: usize,
    done: AtomicUsize,
    finished: AtomicBool,
    results: Mutex<Results>,
    /// Bumped on every change; watchers wake on it.
    changes: watch::Sender<u64>,
}

impl Job {
    fn new(total: usize) -> Self {
        Self {
            id: Uuid::now_v7(),
            total,
            done: AtomicUsize::new(0),
            finished: AtomicBool::new(false),
            results: Mutex::default(),
            changes: watch::channel(0).0,
        }
    }

    /// Records one finished item.
    pub fn record(&self, valid: bool, entry: &impl Serialize) {
        let entry = serde_json::to_value(entry).unwrap_or(Value::Null);
        {
            let mut results = lock(&self.results);
            if valid { results.valid.push(entry) } else { results.invalid.push(entry) }
        }
        self.done.fetch_add(1, Relaxed);
        self.changes.send_modify(|n| *n += 1);
    }

    pub fn finish(&self, now: UnixMs) {
        lock(&self.results).finished_at = Some(now);
        self.finished.store(true, Relaxed);
        self.changes.send_modify(|n| *n += 1);
    }

    pub fn is_finished(&self) -> bool {
        self.finished.load(Relaxed)
    }

    fn finished_at(&self) -> Option<UnixMs> {
        lock(&self.results).finished_at
    }

    /// Everything: counts and the full lists.
    pub fn snapshot(&self) -> JobSnapshot {
        let results = lock(&self.results);
        JobSnapshot { state: self.state(), valid: results.valid.clone(), invalid: results.invalid.clone() }
    }

    /// Counts only, for progress events.
    fn progress(&self) -> JobProgress {
        let results = lock(&self.results);
        JobProgress { state: self.state(), valid_count: results.valid.len(), invalid_count: results.invalid.len() }
    }

    fn state(&self) -> JobState {
        JobState {
            id: self.id,
            status: if self.is_finished() { "done" } else { "running" },
            done: self.done.load(Relaxed),
            total: self.total,
        }
    }

    /// `progress` events while the job runs, then one `done` event with the full snapshot.
    pub fn events(self: Arc<Self>) -> impl Stream<Item = Result<Event, Infallible>> + Send {
        let changes = self.changes.subscribe();
        futures_util::stream::unfold(Some((self, changes)), |state| async move {
            let (job, mut changes) = state?;
            if job.is_finished() {
                let done = Event::default().event("done").data(to_json(&job.snapshot()));
                return Some((Ok(done), None));
            }
            let progress = Event::default().event("progress").data(to_json(&job.progress()));
            changes.borrow_and_update();
            if changes.changed().await.is_err() {
                return Some((Ok(progress), None));
            }
            Some((Ok(progress), Some((job, changes))))
        })
    }
}

fn to_json(value: &impl Serialize) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

/// A job's id and progress.
#[derive(Serialize, ToSchema)]
pub struct JobState {
    #[schema(value_type = String)]
    id: Uuid,
    /// `running` or `done`.
    status: &'static str,
    /// Items finished so far, of `total`.
    done: usize,
    total: usize,
}

/// A job in full: `GET /admin/jobs/{id}`, and the `done` event of its stream.
#[derive(Serialize, ToSchema)]
pub struct JobSnapshot {
    #[serde(flatten)]
    state: JobState,
    /// The items that passed: a `KeyCheck` for a bulk verify, an `ImportEntry` for a validated
    /// import.
    #[schema(value_type = Vec<Object>)]
    valid: Vec<Value>,
    /// The items that did not, in the same shapes (or `{"error"}` when a probe could not run).
    #[schema(value_type = Vec<Object>)]
    invalid: Vec<Value>,
}

/// A `progress` event of a job's stream: counts only.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobProgress {
    #[serde(flatten)]
    state: JobState,
    valid_count: usize,
    invalid_count: usize,
}

/// An item a job could not work on at all.
#[derive(Serialize, ToSchema)]
pub struct Failure {
    pub error: String,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
