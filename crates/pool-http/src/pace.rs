//! How slowly a client may send a request body (`server.body_read_timeout_secs`,
//! `server.min_body_rate_bytes_per_sec` after `server.min_body_rate_grace_secs`).

use std::time::Duration;

/// How slowly a client may send a request body.
#[derive(Clone, Copy, Debug)]
pub struct BodyPace {
    /// The longest a whole body may take, from the end of the request head.
    pub timeout: Duration,
    /// Bytes per second the body must average once `grace` has passed; 0: no minimum.
    pub min_rate: u64,
    pub grace: Duration,
}

impl BodyPace {
    /// How long after its start a body that has sent `received` bytes may wait for more: at
    /// least the grace, then as long as the average stays at the minimum rate, never past the
    /// timeout.
    pub(crate) fn due(&self, received: u64) -> Duration {
        if self.min_rate == 0 {
            return self.timeout;
        }
        let paced = Duration::from_secs_f64(received as f64 / self.min_rate as f64);
        paced.max(self.grace).min(self.timeout)
    }

    pub(crate) fn describe(&self) -> String {
        let mut message = format!("The request body did not arrive within {} s", self.timeout.as_secs_f64());
        if self.min_rate > 0 {
            message.push_str(&format!(
                " at {} bytes/s or more (after the first {} s)",
                self.min_rate,
                self.grace.as_secs_f64()
            ));
        }
        message
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_may_wait_the_grace_then_as_long_as_its_average_holds_never_past_the_timeout() {
        let pace = BodyPace { timeout: Duration::from_secs(60), min_rate: 1000, grace: Duration::from_secs(5) };
        assert_eq!(pace.due(0), Duration::from_secs(5));
        assert_eq!(pace.due(10_000), Duration::from_secs(10));
        assert_eq!(pace.due(1_000_000), Duration::from_secs(60));
        let unpaced = BodyPace { min_rate: 0, ..pace };
        assert_eq!(unpaced.due(0), Duration::from_secs(60));
    }
}
