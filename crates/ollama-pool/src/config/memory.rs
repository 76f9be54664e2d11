//! The default of `proxy.buffer_budget_bytes`: the smaller of 256 MiB and an eighth of the
//! memory the process may use (the machine's, or its cgroup's limit when lower), read once at
//! start.

/// The budget when none is configured, or the machine's memory cannot be read.
const DEFAULT_CAP: u64 = 256 * 1024 * 1024;

/// The buffer budget in bytes: `configured`, or with 0 the default for this machine.
pub fn buffer_budget(configured: u64) -> usize {
    let bytes = match configured {
        0 => usable_memory().map_or(DEFAULT_CAP, auto_budget),
        n => n,
    };
    usize::try_from(bytes).unwrap_or(usize::MAX)
}

/// The smaller of 256 MiB and an eighth of `memory`.
fn auto_budget(memory: u64) -> u64 {
    (memory / 8).min(DEFAULT_CAP)
}

/// The memory the process may use: the machine's total, or its cgroup's limit when lower.
fn usable_memory() -> Option<u64> {
    let total = std::fs::read_to_string("/proc/meminfo").ok().and_then(|text| mem_total(&text));
    let cgroup = std::fs::read_to_string("/sys/fs/cgroup/memory.max").ok().and_then(|text| text.trim().parse().ok());
    match (total, cgroup) {
        (Some(total), Some(limit)) => Some(total.min(limit)),
        (one, other) => one.or(other),
    }
}

/// `MemTotal` of `/proc/meminfo`, in bytes.
fn mem_total(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find_map(|line| line.strip_prefix("MemTotal:"))?;
    let kib: u64 = line.trim().trim_end_matches("kB").trim().parse().ok()?;
    kib.checked_mul(1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_is_an_eighth_of_memory_up_to_256_mib() {
        assert_eq!(mem_total("MemTotal:       24683584 kB\nMemFree: 1 kB\n"), Some(24_683_584 * 1024));
        assert_eq!(mem_total("nothing here"), None);
        assert_eq!(auto_budget(1024 * 1024 * 1024), 128 * 1024 * 1024);
        assert_eq!(auto_budget(64 * 1024 * 1024 * 1024), 256 * 1024 * 1024);
        assert_eq!(buffer_budget(1234), 1234, "a configured budget is kept");
        assert!(buffer_budget(0) > 0 && buffer_budget(0) <= 256 * 1024 * 1024);
    }
}
