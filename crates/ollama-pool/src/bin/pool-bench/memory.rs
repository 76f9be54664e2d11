//! Scenario `memory`: bursts of large request bodies from one token, and the gateway's resident
//! set through them and after them.
//!
//! Each burst sends `BURST` chats of about `BODY_MIB` MiB at once (the issue's 16 × 30 MiB, more
//! than the default buffer budget of 256 MiB holds), waits for every answer, and pauses
//! `BETWEEN_BURSTS`. The fake upstream holds each request for `HOLD` so the bodies overlap. The
//! figures: idle RSS before the first burst, peak RSS (`VmHWM`), RSS `SETTLE` after the last
//! burst, and how many requests were served and refused (503 `server_busy`) per burst.
//!
//! Targets: peak under 600 MiB, and RSS after the settle within 50 MiB of idle.

use std::time::Duration;

use bytes::Bytes;
use hyper::StatusCode;
use pool_testkit::Fault;
use serde_json::{Value, json};
use tokio::task::JoinSet;

use crate::faults::{Launch, start_rig};
use crate::http::Client;
use crate::streams::read_kib;

/// Concurrent bodies of a burst, and each body's size.
const BURST: usize = 16;
const BODY_MIB: usize = 30;
const BURSTS: usize = 3;
/// How long the upstream holds each request before it answers, so a burst's bodies overlap.
const HOLD: Duration = Duration::from_millis(500);
const BETWEEN_BURSTS: Duration = Duration::from_secs(2);
/// How long after the last burst the resident set is read back.
const SETTLE: Duration = Duration::from_secs(10);

pub struct MemoryResult {
    pub idle_kib: u64,
    pub peak_kib: u64,
    pub settled_kib: u64,
    /// Per burst: served, refused busy, other failures.
    pub bursts: Vec<(usize, usize, usize)>,
    pub first_failure: Option<String>,
}

pub async fn run(client: &Client, launch: Launch<'_>, quick: bool) -> anyhow::Result<MemoryResult> {
    let rig = start_rig(client, launch, "memory").await?;
    for key in &rig.keys {
        rig.upstream.set_fault(key, Fault::SlowFirstByte(HOLD));
    }
    let pid = rig.gateway.pid();
    // A few ordinary requests first, so the idle figure includes warm connections and caches.
    for i in 0..8 {
        let small = Bytes::from_static(crate::http::CHAT.as_bytes());
        crate::http::send(client, rig.target.pooled(i, &small)).await.map_err(anyhow::Error::msg)?;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle_kib = read_kib(pid, "VmRSS:")?;
    let body = padded_chat(if quick { 4 } else { BODY_MIB } << 20);
    let mut bursts = Vec::new();
    let mut first_failure = None;
    for burst in 0..BURSTS {
        let mut set = JoinSet::new();
        for i in 0..BURST {
            let (client, request) = (client.clone(), rig.target.pooled(burst * BURST + i, &body));
            set.spawn(async move { answer(&client, request).await });
        }
        let (mut served, mut busy, mut failed) = (0, 0, 0);
        while let Some(done) = set.join_next().await {
            match done? {
                Ok(StatusCode::OK) => served += 1,
                Ok(StatusCode::SERVICE_UNAVAILABLE) => busy += 1,
                Ok(status) => {
                    failed += 1;
                    first_failure.get_or_insert_with(|| format!("HTTP {status}"));
                }
                Err(e) => {
                    failed += 1;
                    first_failure.get_or_insert(e);
                }
            }
        }
        bursts.push((served, busy, failed));
        tokio::time::sleep(BETWEEN_BURSTS).await;
    }
    tokio::time::sleep(SETTLE.saturating_sub(BETWEEN_BURSTS)).await;
    let settled_kib = read_kib(pid, "VmRSS:")?;
    let peak_kib = read_kib(pid, "VmHWM:")?;
    Ok(MemoryResult { idle_kib, peak_kib, settled_kib, bursts, first_failure })
}

/// A chat whose one message makes the JSON body about `bytes` long.
fn padded_chat(bytes: usize) -> Bytes {
    let head = r#"{"model":"llama3.2:3b","stream":false,"messages":[{"role":"user","content":""#;
    let mut body = Vec::with_capacity(bytes + head.len() + 4);
    body.extend_from_slice(head.as_bytes());
    body.resize(body.len() + bytes, b'x');
    body.extend_from_slice(br#""}]}"#);
    Bytes::from(body)
}

/// The status of one request once its whole answer has been read.
async fn answer(client: &Client, request: hyper::Request<http_body_util::Full<Bytes>>) -> Result<StatusCode, String> {
    use http_body_util::BodyExt;
    let response = client.request(request).await.map_err(|e| e.to_string())?;
    let status = response.status();
    response.into_body().collect().await.map_err(|e| e.to_string())?;
    Ok(status)
}

pub fn print(result: Option<&MemoryResult>) {
    let Some(r) = result else { return };
    let mib = |kib: u64| kib as f64 / 1024.0;
    println!(
        "\nMemory: {BURSTS} bursts of {BURST} concurrent {BODY_MIB} MiB chats from one token (default buffer budget)"
    );
    for (i, (served, busy, failed)) in r.bursts.iter().enumerate() {
        println!(
            "  burst {}: {served:>2} served, {busy:>2} refused 503 server_busy, {failed:>2} other failures",
            i + 1
        );
    }
    if let Some(e) = &r.first_failure {
        println!("  first other failure: {e}");
    }
    println!(
        "  gateway RSS: idle {:.1} MiB, peak {:.1} MiB (target < 600), {:?} after the last burst {:.1} MiB \
         ({:+.1} MiB against idle; target within 50)",
        mib(r.idle_kib),
        mib(r.peak_kib),
        SETTLE,
        mib(r.settled_kib),
        mib(r.settled_kib) - mib(r.idle_kib)
    );
}

pub fn json(result: Option<&MemoryResult>) -> Value {
    result.map_or(Value::Null, |r| {
        json!({"bursts": r.bursts.iter().map(|&(served, busy, failed)| json!({"served": served, "busy": busy, "failed": failed})).collect::<Vec<_>>(),
               "idle_kib": r.idle_kib, "peak_kib": r.peak_kib, "settled_kib": r.settled_kib,
               "first_failure": r.first_failure})
    })
}
