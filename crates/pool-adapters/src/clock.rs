//! The system clock, the one place the domain's time comes from.

use std::sync::LazyLock;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use pool_core::UnixMs;
use pool_core::ports::Clock;

#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> UnixMs {
        now_ms()
    }

    fn monotonic_us(&self) -> i64 {
        static ORIGIN: LazyLock<Instant> = LazyLock::new(Instant::now);
        i64::try_from(ORIGIN.elapsed().as_micros()).unwrap_or(i64::MAX)
    }
}

/// Milliseconds since the unix epoch (0 if the system clock is set before 1970).
pub fn now_ms() -> UnixMs {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| UnixMs::try_from(d.as_millis()).unwrap_or(UnixMs::MAX))
}
