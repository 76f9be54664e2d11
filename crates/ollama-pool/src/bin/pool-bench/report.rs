//! The figures of a run: the table on stdout, the targets with PASS/MISS, and the same
//! figures as one JSON object for the docs.

use serde_json::{Value, json};

use crate::cli::RunArgs;
use crate::closed::RpsResult;
use crate::machine::{BUSY_LIMIT, Machine};
use crate::open::LatencyResult;
use crate::stats::{diff_ms, ms};
use crate::streams::StreamsResult;

/// The rate at which the added-latency targets apply.
const TARGET_RATE: u32 = 1000;
/// The max-RPS runs, in the order they ran.
pub struct RpsRuns {
    pub direct: RpsResult,
    pub bare: RpsResult,
    pub gateway: RpsResult,
}

/// One latency comparison at a fixed rate.
pub struct LatencyAtRate {
    pub direct: LatencyResult,
    pub bare: LatencyResult,
    pub gateway: LatencyResult,
}

impl LatencyAtRate {
    /// Gateway minus direct, in ms, for p50 and p99.
    fn added(&self) -> Option<(f64, f64)> {
        added(&self.direct, &self.gateway)
    }

    /// Bare proxy minus direct: what forwarding alone adds, the floor for the gateway's.
    fn bare_added(&self) -> Option<(f64, f64)> {
        added(&self.direct, &self.bare)
    }
}

/// `via` minus `direct`, in ms, for p50 and p99.
fn added(direct: &LatencyResult, via: &LatencyResult) -> Option<(f64, f64)> {
    let (d, v) = (direct.percentiles?, via.percentiles?);
    Some((diff_ms(v.p50, d.p50), diff_ms(v.p99, d.p99)))
}

pub struct Report {
    pub machine: Machine,
    pub args: RunArgs,
    pub rps: Option<RpsRuns>,
    pub latency: Vec<LatencyAtRate>,
    pub streams: Option<StreamsResult>,
    pub imports: Vec<crate::import::ImportResult>,
    pub rollups: Vec<crate::rollups::RollupResult>,
    pub pick: Option<crate::pick::PickResult>,
    pub failover: Vec<crate::failover::FailoverResult>,
    pub outage: Option<crate::outage::OutageResult>,
    pub memory: Option<crate::memory::MemoryResult>,
    pub soak: Option<crate::soak::SoakResult>,
}

/// A target beside a figure; `pass` is `None` when the figure was not measured.
struct Check {
    name: String,
    observed: String,
    value: Option<f64>,
    pass: Option<bool>,
}

impl Check {
    fn new(name: String, value: Option<f64>, unit: &str, ok: impl Fn(f64) -> bool) -> Check {
        Check {
            name,
            observed: value.map_or_else(|| "not measured".to_owned(), |v| observed(v, unit)),
            value,
            pass: value.map(ok),
        }
    }

    fn verdict(&self) -> &'static str {
        match self.pass {
            Some(true) => "PASS",
            Some(false) => "MISS",
            None => "-",
        }
    }
}

impl Report {
    pub fn print(&self) {
        self.print_header();
        self.print_rps();
        self.print_latency();
        self.print_streams();
        self.print_imports();
        crate::rollups::print(&self.rollups);
        crate::pick::print(self.pick.as_ref());
        crate::failover::print(&self.failover);
        crate::outage::print(self.outage.as_ref());
        crate::memory::print(self.memory.as_ref());
        crate::soak::print(self.soak.as_ref());
        self.print_checks();
        for warning in self.warnings() {
            println!("\n!!! WARNING: {warning}");
        }
        if self.args.json {
            println!("\n{}", self.json());
        }
    }

    /// The machine's warnings, and one if other work took CPU during a max-RPS window.
    fn warnings(&self) -> Vec<String> {
        let mut warnings = self.machine.warnings();
        let others = self
            .rps
            .iter()
            .flat_map(|r| [&r.direct, &r.bare, &r.gateway])
            .flat_map(|r| r.cpu.iter().filter(|c| c.name == "others").map(|c| c.cores(r.window)));
        if let Some(busiest) = others.reduce(f64::max).filter(|&c| c > BUSY_LIMIT) {
            warnings.push(format!(
                "other processes kept up to {busiest:.2} cores busy during the max-RPS runs: the figures are low"
            ));
        }
        warnings
    }

    fn print_header(&self) {
        let m = &self.machine;
        println!("ollama-pool benchmark (pool-bench), all processes on 127.0.0.1");
        println!(
            "  machine:  {} CPUs ({}); {:.2} cores busy with other work before the run",
            m.nproc, m.cpu, m.busy_before
        );
        println!(
            "  builds:   pool-bench {}, gateway {} ({})",
            if m.bench_release { "release" } else { "DEBUG" },
            if m.gateway_release { "release" } else { "NOT RELEASE?" },
            m.gateway.display()
        );
        println!(
            "  runs:     {} s measured after a 1 s warm-up; request body {} bytes",
            self.args.duration,
            crate::http::CHAT.len()
        );
    }

    fn print_rps(&self) {
        let Some(RpsRuns { direct, bare, gateway }) = &self.rps else { return };
        println!("\nMax throughput: closed loop, {} connections, non-stream", self.args.concurrency);
        println!("  {:<10} {:>11} {:>9} {:>7}", "", "req/s", "200s", "errors");
        for (label, r) in [("direct", direct), ("bare proxy", bare), ("gateway", gateway)] {
            println!("  {label:<10} {:>11.1} {:>9} {:>7}", r.rps(), r.tally.ok, r.tally.errors);
            print_cpu(r);
            if let Some(e) = &r.tally.first_error {
                println!("             first error: {e}");
            }
        }
        println!("  gateway/direct:     {:>5.1} %", ratio_pct(direct, gateway));
        println!("  bare proxy/direct:  {:>5.1} %  (a proxy that only forwards)", ratio_pct(direct, bare));
        println!("  gateway/bare proxy: {:>5.1} %", ratio_pct(bare, gateway));
    }

    fn print_latency(&self) {
        if self.latency.is_empty() {
            return;
        }
        println!(
            "\nLatency at fixed rates: open loop, from scheduled start to end of body (ms); targets interleaved in 1 s slices"
        );
        println!(
            "  {:>6} {:<10} {:>9} {:>8} {:>8} {:>8} {:>8} {:>7} {:>9}",
            "rate", "", "achieved", "p50", "p90", "p99", "max", "errors", "lag p99"
        );
        for runs in &self.latency {
            print_latency_row("direct", &runs.direct);
            // Each `added` row is the row above minus direct.
            for (label, r, added) in
                [("bare proxy", &runs.bare, runs.bare_added()), ("gateway", &runs.gateway, runs.added())]
            {
                print_latency_row(label, r);
                if let Some((p50, p99)) = added {
                    println!("  {:>6} {:<10} {:>9} {p50:>8.3} {:>8} {p99:>8.3}", r.rate, "added", "", "");
                }
            }
        }
    }

    fn print_streams(&self) {
        let Some(s) = &self.streams else { return };
        println!(
            "\nMemory: {} concurrent streams through the gateway ({} chunks x {} ms each)",
            s.requested,
            crate::STREAM_CHUNKS,
            crate::STREAM_DELAY.as_millis()
        );
        println!(
            "  completed with data: [DONE]  {}/{} (errors {}), at most {} open at once, {:.1} s",
            s.done, s.requested, s.errors, s.peak_open, s.secs
        );
        if let Some(e) = &s.first_error {
            println!("  first error: {e}");
        }
        let rows = [
            ("before the streams", s.rss_before_kib, ""),
            ("all connections open", s.rss_connected_kib, "(before the requests)"),
            ("peak", s.rss_peak_kib, "(sampled every 50 ms)"),
            ("VmHWM", s.hwm_kib, "(whole life of the process)"),
            ("1 s after the streams", s.rss_after_kib, ""),
        ];
        for (label, kib, note) in rows {
            println!("  gateway RSS {label:<22} {:>7.1} MiB  {note}", mib(kib));
        }
    }

    fn print_imports(&self) {
        if self.imports.is_empty() {
            return;
        }
        println!("\nBulk import: POST /admin/api-keys/import, one request");
        for i in &self.imports {
            println!(
                "  {:<9} {} keys in {:.2} s; added {}, in the pool right after: {}",
                i.backend, i.keys, i.secs, i.added, i.pooled
            );
        }
    }

    fn print_checks(&self) {
        println!("\nTargets");
        for check in self.checks() {
            println!("  {:<4}  {:<46} {}", check.verdict(), check.name, check.observed);
        }
    }

    fn checks(&self) -> Vec<Check> {
        let added = self.latency.iter().find(|p| p.direct.rate == TARGET_RATE).and_then(LatencyAtRate::added);
        let ratio = self.rps.as_ref().map(|r| ratio_pct(&r.direct, &r.gateway));
        let streams = self.streams.as_ref();
        let n = self.args.streams;
        vec![
            Check::new(format!("added p50 <= 0.1 ms at {TARGET_RATE} req/s"), added.map(|a| a.0), "ms", |v| v <= 0.1),
            Check::new(format!("added p99 <= 1 ms at {TARGET_RATE} req/s"), added.map(|a| a.1), "ms", |v| v <= 1.0),
            Check::new("gateway max RPS >= 50 % of direct".to_owned(), ratio, "%", |v| v >= 50.0),
            Check::new(
                format!("gateway peak RSS <= 100 MiB at {n} streams"),
                streams.map(|s| mib(s.rss_peak_kib)),
                "MiB",
                |v| v <= 100.0,
            ),
            Check::new(format!("streams ending in data: [DONE] (of {n})"), streams.map(|s| s.done as f64), "", |v| {
                v >= n as f64
            }),
        ]
        .into_iter()
        .chain(self.imports.iter().map(|i| {
            let limit = if i.backend == "postgres" { 10.0 } else { 5.0 };
            let complete = i.added as usize == i.keys && i.pooled as usize == i.keys;
            let secs = complete.then_some(i.secs);
            Check::new(
                format!("import {} keys into {} <= {limit:.0} s, in rotation", i.keys, i.backend),
                secs,
                "s",
                move |v| v <= limit,
            )
        }))
        .chain(self.rollups.iter().map(|r| {
            let complete = r.requests == crate::rollups::REQUESTS;
            Check::new(
                format!("/admin/stats and public-stats p99 <= 50 ms, 10M requests, {}", r.backend),
                complete.then(|| crate::rollups::worst_p99_ms(r)),
                "ms",
                |v| v <= 50.0,
            )
        }))
        .collect()
    }

    fn json(&self) -> Value {
        let m = &self.machine;
        json!({
            "machine": {"nproc": m.nproc, "cpu": m.cpu, "pool_bench_release": m.bench_release,
                        "gateway_binary": m.gateway.display().to_string(), "gateway_release": m.gateway_release, "busy_cores_before": m.busy_before},
            "settings": {"duration_secs": self.args.duration, "warmup_secs": 1, "rates": self.args.rates,
                         "concurrency": self.args.concurrency, "streams": self.args.streams,
                         "body_bytes": crate::http::CHAT.len()},
            "max_rps": self.rps.as_ref().map(|RpsRuns { direct: d, bare: b, gateway: g }| json!({
                "direct": rps_json(d), "bare_proxy": rps_json(b), "gateway": rps_json(g), "ratio_pct": ratio_pct(d, g),
                "bare_proxy_ratio_pct": ratio_pct(d, b), "gateway_bare_proxy_ratio_pct": ratio_pct(b, g)})),
            "latency": self.latency.iter().map(|p| json!({
                "rate": p.direct.rate, "direct": latency_json(&p.direct), "bare_proxy": latency_json(&p.bare),
                "gateway": latency_json(&p.gateway),
                "added_p50_ms": p.added().map(|a| a.0), "added_p99_ms": p.added().map(|a| a.1),
                "bare_proxy_added_p50_ms": p.bare_added().map(|a| a.0),
                "bare_proxy_added_p99_ms": p.bare_added().map(|a| a.1)})).collect::<Vec<_>>(),
            "streams": self.streams.as_ref().map(streams_json),
            "imports": self.imports.iter().map(|i| json!({"backend": i.backend, "keys": i.keys, "added": i.added,
                "pooled": i.pooled, "secs": i.secs})).collect::<Vec<_>>(),
            "statistics": self.rollups.iter().map(|r| json!({"backend": r.backend, "requests": r.requests,
                "seed_secs": r.seed_secs,
                "admin_stats_ms": {"p50": crate::stats::ms(r.admin_stats.p50), "p99": crate::stats::ms(r.admin_stats.p99)},
                "public_stats_ms": {"p50": crate::stats::ms(r.public_stats.p50), "p99": crate::stats::ms(r.public_stats.p99)}})).collect::<Vec<_>>(),
            "pick": crate::pick::json(self.pick.as_ref()),
            "failover": crate::failover::json(&self.failover),
            "outage": crate::outage::json(self.outage.as_ref()),
            "memory": crate::memory::json(self.memory.as_ref()),
            "soak": crate::soak::json(self.soak.as_ref()),
            "targets": self.checks().iter().map(|c| json!({"name": c.name, "value": c.value, "pass": c.pass})).collect::<Vec<_>>(),
        })
    }
}

/// A figure with the precision its unit deserves.
fn observed(v: f64, unit: &str) -> String {
    match unit {
        "ms" => format!("{v:.3} ms"),
        "" => format!("{v:.0}"),
        _ => format!("{v:.1} {unit}"),
    }
}

fn print_latency_row(label: &str, r: &LatencyResult) {
    let rate = r.rate;
    let lag = r.lag.map_or(0.0, |l| ms(l.p99));
    match r.percentiles {
        Some(p) => println!(
            "  {rate:>6} {label:<10} {:>9.1} {:>8.3} {:>8.3} {:>8.3} {:>8.3} {:>7} {lag:>9.3}",
            r.achieved,
            ms(p.p50),
            ms(p.p90),
            ms(p.p99),
            ms(p.max),
            r.errors
        ),
        None => println!("  {rate:>6} {label:<10} {:>9.1} {:>35} {:>7}", r.achieved, "no answers", r.errors),
    }
    if let Some(e) = &r.first_error {
        println!("           first error: {e}");
    }
}

/// The cores each process kept busy, and its CPU time per 200 answer.
fn print_cpu(r: &RpsResult) {
    let parts: Vec<String> = r
        .cpu
        .iter()
        .map(|c| {
            let per = 1e6 * c.secs / (r.tally.ok.max(1) as f64);
            format!("{} {:.2} ({per:.1} us/req)", c.name, c.cores(r.window))
        })
        .collect();
    println!("             CPU cores: {}", parts.join(", "));
}

/// The throughput of `other` as a percentage of `base`'s.
fn ratio_pct(base: &RpsResult, other: &RpsResult) -> f64 {
    if base.rps() > 0.0 { 100.0 * other.rps() / base.rps() } else { 0.0 }
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn rps_json(r: &RpsResult) -> Value {
    let cpu: serde_json::Map<String, Value> =
        r.cpu.iter().map(|c| (c.name.to_owned(), json!({"cores": c.cores(r.window), "cpu_secs": c.secs}))).collect();
    json!({"rps": r.rps(), "ok": r.tally.ok, "errors": r.tally.errors, "first_error": r.tally.first_error,
           "cpu": cpu})
}

fn latency_json(r: &LatencyResult) -> Value {
    let p = r.percentiles;
    json!({"achieved_rps": r.achieved, "ok": r.ok, "errors": r.errors, "first_error": r.first_error,
           "p50_ms": p.map(|p| ms(p.p50)), "p90_ms": p.map(|p| ms(p.p90)),
           "p99_ms": p.map(|p| ms(p.p99)), "max_ms": p.map(|p| ms(p.max)),
           "start_lag_p99_ms": r.lag.map(|l| ms(l.p99))})
}

fn streams_json(s: &StreamsResult) -> Value {
    json!({"requested": s.requested, "done": s.done, "errors": s.errors, "first_error": s.first_error,
           "peak_open": s.peak_open, "secs": s.secs, "rss_before_mib": mib(s.rss_before_kib),
           "rss_connected_mib": mib(s.rss_connected_kib), "rss_after_mib": mib(s.rss_after_kib),
           "rss_peak_mib": mib(s.rss_peak_kib), "vm_hwm_mib": mib(s.hwm_kib)})
}
