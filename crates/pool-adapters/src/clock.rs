//! The system clock, the one place the domain's time comes from.

use std::time::{SystemTime, UNIX_EPOCH};

use pool_core::UnixMs;
use pool_core::ports::Clock;

#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> UnixMs {
        now_ms()
    }
}

/// Milliseconds since the unix epoch (0 if the system clock is set before 1970).
pub fn now_ms() -> UnixMs {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| UnixMs::try_from(d.as_millis()).unwrap_or(UnixMs::MAX))
}
