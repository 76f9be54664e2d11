//! The facts of the machine a run comes from, and what makes its figures doubtful: a debug
//! build of either binary, or other work competing for the cores.

use std::path::PathBuf;

/// Cores busy with other work above which the machine is not quiet enough.
pub const BUSY_LIMIT: f64 = 0.2;

/// Where the figures come from; debug builds make them meaningless.
pub struct Machine {
    pub nproc: usize,
    pub cpu: String,
    pub bench_release: bool,
    pub gateway: PathBuf,
    pub gateway_release: bool,
    /// Cores busy with other work just before the run.
    pub busy_before: f64,
}

impl Machine {
    pub fn detect(gateway: PathBuf, busy_before: f64) -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .map(|rest| rest.trim_start_matches([' ', '\t', ':']).to_owned())
            .unwrap_or_else(|| "unknown".to_owned());
        let gateway_release = gateway.parent().and_then(|dir| dir.file_name()).is_some_and(|name| name == "release");
        Machine {
            nproc: std::thread::available_parallelism().map_or(1, usize::from),
            cpu,
            bench_release: !cfg!(debug_assertions),
            gateway,
            gateway_release,
            busy_before,
        }
    }

    /// Warnings to print before and after the figures.
    pub fn warnings(&self) -> Vec<String> {
        let mut warnings = Vec::new();
        if !self.bench_release {
            warnings.push(
                "pool-bench is a DEBUG build: the figures are meaningless; run target/release/pool-bench".to_owned(),
            );
        }
        if !self.gateway_release {
            warnings.push(format!(
                "the gateway {} does not look like a release build: the figures are meaningless",
                self.gateway.display()
            ));
        }
        if self.busy_before > BUSY_LIMIT {
            warnings.push(format!(
                "other processes kept {:.2} cores busy just before the run: the figures are low and noisy",
                self.busy_before
            ));
        }
        warnings
    }
}
