//! CPU time of the three processes over a measured window, from `/proc/<pid>/stat`, and of
//! everything else on the machine, from `/proc/stat`: on a small machine the load generator,
//! the fake upstream and the gateway share the cores (with whatever else is running), so a
//! throughput figure means little without knowing who used them.

use std::time::Duration;

/// `/proc/<pid>/stat` counts in USER_HZ ticks, which Linux fixes at 100 for user space on
/// every mainstream architecture (the kernel's own HZ may differ, but is not exported).
const USER_HZ: f64 = 100.0;

/// The processes whose CPU time is read, by name.
#[derive(Clone)]
pub struct CpuProbe {
    processes: Vec<(&'static str, u32)>,
}

/// CPU seconds of each process, and of the whole machine, at one moment.
pub struct CpuSnapshot {
    processes: Vec<f64>,
    machine: f64,
}

/// CPU used by one process over a window.
#[derive(Clone, Debug)]
pub struct CpuUse {
    pub name: &'static str,
    pub secs: f64,
}

impl CpuProbe {
    pub fn new(processes: Vec<(&'static str, u32)>) -> CpuProbe {
        CpuProbe { processes }
    }

    pub fn snapshot(&self) -> CpuSnapshot {
        CpuSnapshot {
            processes: self.processes.iter().map(|(_, pid)| cpu_secs(*pid)).collect(),
            machine: machine_busy_secs(),
        }
    }

    /// What each process used between `before` and `after`, then what all the other
    /// processes of the machine used (as `others`).
    pub fn used(&self, before: &CpuSnapshot, after: &CpuSnapshot) -> Vec<CpuUse> {
        let mut used: Vec<CpuUse> = self
            .processes
            .iter()
            .zip(before.processes.iter().zip(&after.processes))
            .map(|((name, _), (b, a))| CpuUse { name, secs: (a - b).max(0.0) })
            .collect();
        let ours: f64 = used.iter().map(|u| u.secs).sum();
        let machine = after.machine - before.machine;
        used.push(CpuUse { name: "others", secs: (machine - ours).max(0.0) });
        used
    }
}

impl CpuUse {
    /// Cores kept busy on average over `window`.
    pub fn cores(&self, window: Duration) -> f64 {
        self.secs / window.as_secs_f64()
    }
}

/// User plus system time of `pid`, all threads (dead ones included), in seconds; 0 when
/// unreadable.
fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The command name (field 2) may hold spaces; the fields after its `)` start at field 3.
    let fields: Vec<&str> = stat.rsplit_once(')').map_or(Vec::new(), |(_, rest)| rest.split_whitespace().collect());
    let ticks =
        |field: usize| -> f64 { fields.get(field - 3).and_then(|v| v.parse::<u64>().ok()).map_or(0.0, |v| v as f64) };
    (ticks(14) + ticks(15)) / USER_HZ
}

/// Busy time of all CPUs together (everything but idle and iowait), in seconds.
pub fn machine_busy_secs() -> f64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let ticks: Vec<u64> = stat
        .lines()
        .next()
        .and_then(|l| l.strip_prefix("cpu "))
        .map_or(Vec::new(), |rest| rest.split_whitespace().filter_map(|v| v.parse().ok()).collect());
    // user nice system idle iowait irq softirq steal (guest time is already in user).
    let busy: u64 = ticks.iter().take(8).enumerate().filter(|(i, _)| *i != 3 && *i != 4).map(|(_, v)| v).sum();
    busy as f64 / USER_HZ
}

/// Cores kept busy by the whole machine over `window`, measured now.
pub async fn machine_load(window: Duration) -> f64 {
    let before = machine_busy_secs();
    tokio::time::sleep(window).await;
    (machine_busy_secs() - before) / window.as_secs_f64()
}
