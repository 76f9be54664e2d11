//! `GET /metrics`: Prometheus text exposition (format 0.0.4), written by hand: a few families of
//! counters, gauges and histograms need no exporter crate.
//!
//! On the main listen address it answers the admin bearer token only; with `metrics.listen` set
//! it is also served, without a token, on that separate address (for a scraper on a private
//! network).

use std::fmt::Write;

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use pool_core::stats::{Kind, Measure};

use crate::extract::Admin;
use crate::state::AppState;

pub async fn export(_: Admin, State(state): State<AppState>) -> Response {
    open_export(State(state)).await
}

/// The same, for the separate metrics address.
pub async fn open_export(State(state): State<AppState>) -> Response {
    ([(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], render(&state)).into_response()
}

fn render(state: &AppState) -> String {
    let stats = &state.gateway.stats;
    let snapshot = stats.metrics.snapshot();
    let now = state.gateway.clock.now_ms();
    let mut out = String::with_capacity(4096);

    for (kind, name, help) in [
        (Kind::Request, "pool_requests_total", "Client requests by provider, model, status and outcome"),
        (Kind::Attempt, "pool_attempts_total", "Upstream attempts by provider, model, status and outcome"),
    ] {
        family(&mut out, name, "counter", help);
        for (labels, n) in snapshot.counters.iter().filter(|(l, _)| l.kind == kind) {
            let _ = writeln!(
                out,
                "{name}{{provider=\"{}\",model=\"{}\",status=\"{}\",outcome=\"{}\"}} {n}",
                escape(labels.provider.as_ref()),
                escape(&labels.model),
                labels.status,
                labels.outcome.as_str(),
            );
        }
    }

    family(&mut out, "pool_in_flight_requests", "gauge", "Client requests being answered now");
    let _ = writeln!(out, "pool_in_flight_requests {}", snapshot.in_flight);

    family(&mut out, "pool_keys", "gauge", "Upstream keys by provider and state");
    for provider in state.providers.all() {
        let (_, counts) = super::admin::key_counts(state, &provider.spec.name, now);
        for (status, n) in counts {
            let _ = writeln!(
                out,
                "pool_keys{{provider=\"{}\",status=\"{status}\"}} {n}",
                escape(provider.spec.name.as_ref())
            );
        }
    }

    family(
        &mut out,
        "pool_retry_budget",
        "gauge",
        "Attempts past max_attempts the provider's requests may still share",
    );
    let cap = state.gateway.policy.retry_budget;
    for (name, pool) in state.gateway.pools.providers() {
        let _ = writeln!(out, "pool_retry_budget{{provider=\"{}\"}} {}", escape(name.as_ref()), pool.retries.left(cap));
    }

    for measure in
        [Measure::RequestDuration, Measure::TimeToFirstByte, Measure::GatewayOverhead, Measure::UpstreamDuration]
    {
        let name = measure.name();
        family(&mut out, name, "histogram", measure.help());
        for (_, provider, h) in snapshot.histograms.iter().filter(|(m, _, _)| *m == measure) {
            let provider = escape(provider.as_ref());
            let mut cumulative = 0;
            for (bound, n) in h.bounds.iter().zip(&h.counts) {
                cumulative += n;
                let _ = writeln!(out, "{name}_bucket{{provider=\"{provider}\",le=\"{bound}\"}} {cumulative}");
            }
            let _ = writeln!(out, "{name}_bucket{{provider=\"{provider}\",le=\"+Inf\"}} {}", h.count);
            let _ = writeln!(out, "{name}_sum{{provider=\"{provider}\"}} {}", h.sum);
            let _ = writeln!(out, "{name}_count{{provider=\"{provider}\"}} {}", h.count);
        }
    }

    let flush = stats.flush_state();
    let since = if flush.last_ok == 0 { state.started_at } else { flush.last_ok };
    family(
        &mut out,
        "pool_stats_flush_lag_seconds",
        "gauge",
        "Seconds since statistics were last written to the store",
    );
    let _ = writeln!(out, "pool_stats_flush_lag_seconds {}", (now - since).max(0) as f64 / 1000.0);
    family(&mut out, "pool_stats_flush_failures", "gauge", "Statistics flushes that failed in a row");
    let _ = writeln!(out, "pool_stats_flush_failures {}", flush.failures);
    family(&mut out, "pool_stats_flush_failures_total", "counter", "Statistics flushes that failed");
    let _ = writeln!(out, "pool_stats_flush_failures_total {}", flush.failures_total);
    let health = &state.store_health;
    family(&mut out, "pool_store_up", "gauge", "1 while the store takes writes, 0 while its writes fail");
    let _ = writeln!(out, "pool_store_up {}", u8::from(health.is_ok()));
    family(&mut out, "pool_store_errors_total", "counter", "Store calls that failed (the backend, or its deadline)");
    let _ = writeln!(out, "pool_store_errors_total {}", health.failed_calls());
    family(&mut out, "pool_stats_backlog_rows", "gauge", "Statistics rows waiting to be written");
    let _ = writeln!(out, "pool_stats_backlog_rows {}", flush.backlog_rows);
    let dropped = stats.dropped();
    family(&mut out, "pool_stats_dropped_total", "counter", "Events not recorded because the backlog was full");
    let _ = writeln!(out, "pool_stats_dropped_total{{kind=\"request\"}} {}", dropped.requests);
    let _ = writeln!(out, "pool_stats_dropped_total{{kind=\"attempt\"}} {}", dropped.attempts);
    let requests = &state.gateway.requests;
    family(&mut out, "pool_request_log_backlog", "gauge", "Request log entries waiting to be written");
    let _ = writeln!(out, "pool_request_log_backlog {}", requests.backlog());
    family(
        &mut out,
        "pool_request_log_dropped_total",
        "counter",
        "Request log entries dropped because the queue was full",
    );
    let _ = writeln!(out, "pool_request_log_dropped_total {}", requests.dropped());
    load(&mut out, state);
    out
}

/// What clients hold: connections, requests under the cap, and bytes under the budget.
fn load(out: &mut String, state: &AppState) {
    let (connections, capacity, buffers) = (&state.connections, &state.capacity, &state.gateway.buffers);
    for (name, kind, help, value) in [
        ("pool_client_connections", "gauge", "Client connections open", connections.open() as u64),
        (
            "pool_client_connections_shed_total",
            "counter",
            "Client connections closed at once because server.max_connections were open",
            connections.shed(),
        ),
        (
            "pool_accept_exhausted_total",
            "counter",
            "Accepts that failed for want of file descriptors or memory (EMFILE, ENFILE, ENOBUFS, ENOMEM)",
            connections.exhausted(),
        ),
        (
            "pool_concurrent_requests",
            "gauge",
            "Requests being answered, under server.max_concurrent_requests",
            capacity.in_use() as u64,
        ),
        (
            "pool_requests_overloaded_total",
            "counter",
            "Requests refused with 503 because server.max_concurrent_requests were being answered",
            capacity.refused(),
        ),
        (
            "pool_buffer_budget_bytes",
            "gauge",
            "Bytes bodies read whole may hold at once (proxy.buffer_budget_bytes)",
            buffers.limit() as u64,
        ),
        (
            "pool_buffer_bytes",
            "gauge",
            "Bytes of request bodies and upstream answers held now",
            buffers.in_use() as u64,
        ),
        (
            "pool_requests_busy_total",
            "counter",
            "Requests refused with 503 server_busy because their bytes did not fit in the buffer budget",
            buffers.refused(),
        ),
    ] {
        family(out, name, kind, help);
        let _ = writeln!(out, "{name} {value}");
    }
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// A label value as the exposition format wants it: backslash, quote and newline escaped.
fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn label_values_are_escaped() {
        assert_eq!(super::escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
