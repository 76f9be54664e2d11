//! How often codes may be sent: once per 60 s and 10 a day, per email **and** per client
//! address, over counters the store keeps (so the limits hold across restarts and gateways).
//!
//! The store keeps one tally per email and one per address: the local day it counts, the sends
//! that day, and the time of the last send. A send is judged twice: before it is counted
//! ([`Phase::Before`], a cheap refusal that costs no counter), and on what the atomic increment
//! returned ([`Phase::Counted`]), which is what makes the limit hold when two requests race: each
//! increment sees the other.

use crate::UnixMs;

/// The operator's throttle; the default is the issue's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SendRule {
    /// Least time between two sends to one email or from one address.
    pub interval_ms: i64,
    /// Most sends a local day per email and per address.
    pub per_day: u32,
}

impl Default for SendRule {
    fn default() -> Self {
        Self { interval_ms: 60_000, per_day: 10 }
    }
}

/// One subject's tally (an email's or an address's).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SendTally {
    /// Sends counted on the day asked about: before this one when read, this one included when
    /// returned by the increment.
    pub sends: u32,
    /// The previous send (on any day): the last one when read, the one before this when
    /// returned by the increment.
    pub last_sent: Option<UnixMs>,
}

/// The tallies one send is judged on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SendTallies {
    pub email: SendTally,
    pub address: SendTally,
}

/// Which reading of the tallies is judged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Read before counting: `sends` does not include this send.
    Before,
    /// Returned by the atomic increment: `sends` includes this send.
    Counted,
}

/// Why a send is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SendRefused {
    #[error("a code was sent less than a minute ago")]
    TooSoon { retry_at: UnixMs },
    #[error("the daily number of codes is reached")]
    DailyLimit,
}

impl SendRule {
    /// Whether the send the tallies describe may go out at `now`. The daily limit is reported
    /// before the interval: waiting a minute would not help.
    pub fn judge(&self, tallies: &SendTallies, phase: Phase, now: UnixMs) -> Result<(), SendRefused> {
        let before = |t: &SendTally| match phase {
            Phase::Before => t.sends,
            Phase::Counted => t.sends.saturating_sub(1),
        };
        if before(&tallies.email) >= self.per_day || before(&tallies.address) >= self.per_day {
            return Err(SendRefused::DailyLimit);
        }
        let last = tallies.email.last_sent.max(tallies.address.last_sent);
        match last.map(|at| at.saturating_add(self.interval_ms)) {
            Some(retry_at) if now < retry_at => Err(SendRefused::TooSoon { retry_at }),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tallies(email: (u32, Option<UnixMs>), address: (u32, Option<UnixMs>)) -> SendTallies {
        SendTallies {
            email: SendTally { sends: email.0, last_sent: email.1 },
            address: SendTally { sends: address.0, last_sent: address.1 },
        }
    }

    #[test]
    fn a_first_send_goes_out() {
        assert_eq!(SendRule::default().judge(&SendTallies::default(), Phase::Before, 0), Ok(()));
        assert_eq!(SendRule::default().judge(&tallies((1, None), (1, None)), Phase::Counted, 0), Ok(()));
    }

    #[test]
    fn a_resend_within_a_minute_is_refused_for_the_email_and_for_the_address() {
        let rule = SendRule::default();
        let by_email = tallies((1, Some(1_000)), (0, None));
        let by_address = tallies((0, None), (1, Some(1_000)));
        for t in [by_email, by_address] {
            assert_eq!(rule.judge(&t, Phase::Before, 60_999), Err(SendRefused::TooSoon { retry_at: 61_000 }));
            assert_eq!(rule.judge(&t, Phase::Before, 61_000), Ok(()));
        }
    }

    #[test]
    fn the_eleventh_send_of_a_day_is_refused_for_the_email_and_for_the_address() {
        let rule = SendRule::default();
        assert_eq!(rule.judge(&tallies((9, None), (0, None)), Phase::Before, 0), Ok(()));
        assert_eq!(rule.judge(&tallies((10, None), (0, None)), Phase::Before, 0), Err(SendRefused::DailyLimit));
        assert_eq!(rule.judge(&tallies((0, None), (10, None)), Phase::Before, 0), Err(SendRefused::DailyLimit));
        assert_eq!(rule.judge(&tallies((10, None), (10, None)), Phase::Counted, 0), Ok(()), "the tenth, counted");
        assert_eq!(rule.judge(&tallies((11, None), (1, None)), Phase::Counted, 0), Err(SendRefused::DailyLimit));
    }

    #[test]
    fn of_two_racing_sends_the_second_increment_sees_the_first() {
        // Both passed the check before counting; the second increment returns the first's time.
        let rule = SendRule::default();
        let first = tallies((1, None), (1, None));
        let second = tallies((2, Some(5_000)), (2, Some(5_000)));
        assert_eq!(rule.judge(&first, Phase::Counted, 5_000), Ok(()));
        assert_eq!(rule.judge(&second, Phase::Counted, 5_001), Err(SendRefused::TooSoon { retry_at: 65_000 }));
    }

    #[test]
    fn the_daily_limit_is_reported_before_the_interval() {
        let t = tallies((10, Some(1_000)), (0, None));
        assert_eq!(SendRule::default().judge(&t, Phase::Before, 2_000), Err(SendRefused::DailyLimit));
    }
}
