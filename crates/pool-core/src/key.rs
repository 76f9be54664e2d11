//! The health state machine of one upstream key.
//!
//! A key is `active`, or held out of rotation by a [`Hold`]: `cooling` (rate limited or briefly
//! resting after repeated errors), `failed` (the upstream rejected the key: 401/403), or `disabled`
//! (too many consecutive failures, or an operator). Every hold but an open-ended manual disable has
//! an end time, and a hold whose end has passed simply no longer counts: recovery needs no job and
//! no write (the seed's keys stayed out forever because a status column stuck, B2).
//!
//! [`Health::apply`] is the whole transition table; it is pure and takes `now`.

use serde::{Deserialize, Serialize};

use crate::UnixMs;

/// What an operator sees as a key's state at a given instant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyStatus {
    Active,
    Cooling,
    Failed,
    Disabled,
    Expired,
}

impl KeyStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Cooling => "cooling",
            Self::Failed => "failed",
            Self::Disabled => "disabled",
            Self::Expired => "expired",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "active" => Self::Active,
            "cooling" => Self::Cooling,
            "failed" => Self::Failed,
            "disabled" => Self::Disabled,
            "expired" => Self::Expired,
            _ => return None,
        })
    }
}

/// Why, since when and until when a key is out of rotation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hold {
    pub status: KeyStatus,
    pub reason: String,
    pub since: UnixMs,
    /// `None` only for a manual disable without a duration: it lasts until enabled.
    pub until: Option<UnixMs>,
    /// Set by an operator: only an operator lifts it (a passing health probe does not).
    pub manual: bool,
}

impl Hold {
    pub fn in_force(&self, now: UnixMs) -> bool {
        self.until.is_none_or(|until| until > now)
    }

    /// The instant the hold ends, `i64::MAX` when open-ended.
    pub fn end(&self) -> UnixMs {
        self.until.unwrap_or(UnixMs::MAX)
    }
}

/// The limits of the state machine; every number is configurable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FailurePolicy {
    /// Attempts per client request, each on a different key.
    pub max_attempts: u32,
    /// How long a key the upstream rejected (401/403) stays `failed`.
    pub auth_failure_ms: i64,
    /// Cooldown after a 429 that carried no usable `Retry-After`.
    pub rate_limit_default_ms: i64,
    /// Upper bound on any `Retry-After` we honour, so a hostile upstream cannot park a key for years.
    pub rate_limit_max_ms: i64,
    /// Brief rest after `transient_cooldown_after` consecutive errors (5xx, timeouts, drops).
    pub transient_cooldown_ms: i64,
    pub transient_cooldown_after: u32,
    /// Consecutive failures that disable a key, and for how long.
    pub disable_after: u32,
    pub disable_ms: i64,
}

impl Default for FailurePolicy {
    fn default() -> Self {
        Self {
            max_attempts: 3,
            auth_failure_ms: 3_600_000,
            rate_limit_default_ms: 60_000,
            rate_limit_max_ms: 86_400_000,
            transient_cooldown_ms: 5_000,
            transient_cooldown_after: 2,
            disable_after: 3,
            disable_ms: 3_600_000,
        }
    }
}

/// What happened on one attempt, from the key's point of view.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyEvent {
    /// The upstream served the request.
    Success,
    /// 429: the key hit its limit; `retry_after_ms` from the upstream when it said.
    RateLimited { retry_after_ms: Option<i64> },
    /// 401/403 (or 402, out of credit): the upstream refuses this key.
    Rejected { status: u16 },
    /// 5xx, a timeout or a dropped connection: maybe the upstream, maybe the key.
    Transient { cause: String },
    /// Neither the key's merit nor its fault: a client error passed through, a client that left.
    Neutral,
}

/// The health of one key: the hold in force (if any) and the consecutive-failure counter.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Health {
    pub hold: Option<Hold>,
    pub consecutive_failures: u32,
}

impl Health {
    pub fn status(&self, now: UnixMs) -> KeyStatus {
        match &self.hold {
            Some(hold) if hold.in_force(now) => hold.status,
            _ => KeyStatus::Active,
        }
    }

    /// The instant from which the key may be picked again (0 when it may be picked now).
    pub fn blocked_until(&self) -> UnixMs {
        self.hold.as_ref().map_or(0, Hold::end)
    }

    /// The transition table.
    pub fn apply(&mut self, event: &KeyEvent, policy: &FailurePolicy, now: UnixMs) {
        if self.hold.as_ref().is_some_and(|h| !h.in_force(now)) {
            self.hold = None;
        }
        match event {
            KeyEvent::Success => self.consecutive_failures = 0,
            KeyEvent::Neutral => {}
            KeyEvent::RateLimited { retry_after_ms } => {
                let wait = retry_after_ms.unwrap_or(policy.rate_limit_default_ms).clamp(0, policy.rate_limit_max_ms);
                let reason = match retry_after_ms {
                    Some(ms) => {
                        format!("rate limited by upstream (429, Retry-After {}s)", ms / 1000)
                    }
                    None => "rate limited by upstream (429)".to_owned(),
                };
                self.hold_at_least(KeyStatus::Cooling, reason, now, now + wait);
            }
            KeyEvent::Rejected { status } => {
                self.consecutive_failures += 1;
                let reason = format!("upstream rejected the key ({status})");
                if !self.disable_if_exhausted(policy, &reason, now) {
                    self.hold_at_least(KeyStatus::Failed, reason, now, now + policy.auth_failure_ms);
                }
            }
            KeyEvent::Transient { cause } => {
                self.consecutive_failures += 1;
                if !self.disable_if_exhausted(policy, cause, now)
                    && self.consecutive_failures >= policy.transient_cooldown_after
                {
                    let reason = format!("{} consecutive errors (last: {cause})", self.consecutive_failures);
                    self.hold_at_least(KeyStatus::Cooling, reason, now, now + policy.transient_cooldown_ms);
                }
            }
        }
    }

    /// An operator takes the key out, for `until` or until enabled.
    pub fn disable(&mut self, reason: String, now: UnixMs, until: Option<UnixMs>) {
        self.hold = Some(Hold { status: KeyStatus::Disabled, reason, since: now, until, manual: true });
    }

    /// An operator puts the key back: the hold and counter are cleared.
    pub fn enable(&mut self) {
        self.hold = None;
        self.consecutive_failures = 0;
    }

    /// A passing health probe puts the key back, unless an operator took it out.
    pub fn recover(&mut self) {
        if !self.hold.as_ref().is_some_and(|h| h.manual) {
            self.enable();
        }
    }

    /// An operator clears cooldowns and failures; manual disables stay. Returns whether it changed.
    pub fn reset_cooldown(&mut self) -> bool {
        let lifted = self.hold.as_ref().is_some_and(|h| !h.manual);
        if lifted {
            self.hold = None;
        }
        self.consecutive_failures = 0;
        lifted
    }

    fn disable_if_exhausted(&mut self, policy: &FailurePolicy, last: &str, now: UnixMs) -> bool {
        if self.consecutive_failures < policy.disable_after {
            return false;
        }
        let reason = format!("{} consecutive failures (last: {last})", self.consecutive_failures);
        self.hold_at_least(KeyStatus::Disabled, reason, now, now + policy.disable_ms);
        true
    }

    /// Sets a hold unless one already in force ends later: a 429 never shortens a disable.
    fn hold_at_least(&mut self, status: KeyStatus, reason: String, now: UnixMs, until: UnixMs) {
        if self.hold.as_ref().is_some_and(|h| h.end() > until) {
            return;
        }
        self.hold = Some(Hold { status, reason, since: now, until: Some(until), manual: false });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: UnixMs = 1_700_000_000_000;

    fn policy() -> FailurePolicy {
        FailurePolicy::default()
    }

    fn transient() -> KeyEvent {
        KeyEvent::Transient { cause: "upstream answered 503".into() }
    }

    #[test]
    fn a_429_with_retry_after_cools_the_key_for_exactly_that_long() {
        let mut health = Health::default();
        health.apply(&KeyEvent::RateLimited { retry_after_ms: Some(30_000) }, &policy(), T0);
        assert_eq!(health.status(T0 + 29_999), KeyStatus::Cooling);
        assert_eq!(health.status(T0 + 30_000), KeyStatus::Active);
        assert_eq!(health.consecutive_failures, 0, "a rate limit is not a failure of the key");
    }

    #[test]
    fn a_429_without_retry_after_cools_for_the_default() {
        let mut health = Health::default();
        health.apply(&KeyEvent::RateLimited { retry_after_ms: None }, &policy(), T0);
        assert_eq!(health.blocked_until(), T0 + 60_000);
    }

    #[test]
    fn an_absurd_retry_after_is_capped() {
        let mut health = Health::default();
        health.apply(&KeyEvent::RateLimited { retry_after_ms: Some(i64::MAX / 2) }, &policy(), T0);
        assert_eq!(health.blocked_until(), T0 + policy().rate_limit_max_ms);
    }

    #[test]
    fn a_401_fails_the_key_for_an_hour_then_it_recovers_on_its_own() {
        let mut health = Health::default();
        health.apply(&KeyEvent::Rejected { status: 401 }, &policy(), T0);
        assert_eq!(health.status(T0 + 3_599_999), KeyStatus::Failed);
        assert_eq!(health.status(T0 + 3_600_000), KeyStatus::Active);
        let hold = health.hold.as_ref().map(|h| h.reason.clone());
        assert_eq!(hold.as_deref(), Some("upstream rejected the key (401)"));
    }

    #[test]
    fn one_transient_error_does_not_hold_the_key() {
        let mut health = Health::default();
        health.apply(&transient(), &policy(), T0);
        assert_eq!(health.status(T0), KeyStatus::Active);
        assert_eq!(health.consecutive_failures, 1);
    }

    #[test]
    fn repeated_transient_errors_cool_briefly_then_disable() {
        let mut health = Health::default();
        health.apply(&transient(), &policy(), T0);
        health.apply(&transient(), &policy(), T0);
        assert_eq!(health.status(T0), KeyStatus::Cooling);
        assert_eq!(health.blocked_until(), T0 + 5_000);
        health.apply(&transient(), &policy(), T0 + 6_000);
        assert_eq!(health.status(T0 + 6_000), KeyStatus::Disabled);
        assert_eq!(health.blocked_until(), T0 + 6_000 + 3_600_000);
        assert_eq!(health.status(T0 + 6_000 + 3_600_000), KeyStatus::Active);
    }

    #[test]
    fn success_resets_the_consecutive_counter() {
        let mut health = Health::default();
        health.apply(&transient(), &policy(), T0);
        health.apply(&KeyEvent::Success, &policy(), T0);
        health.apply(&transient(), &policy(), T0);
        assert_eq!(health.consecutive_failures, 1);
        assert_eq!(health.status(T0), KeyStatus::Active);
    }

    #[test]
    fn a_rate_limit_never_shortens_a_longer_hold() {
        let mut health = Health::default();
        health.disable("operator".into(), T0, None);
        health.apply(&KeyEvent::RateLimited { retry_after_ms: Some(1_000) }, &policy(), T0);
        assert_eq!(health.status(T0 + 10_000_000), KeyStatus::Disabled);
        assert_eq!(health.hold.map(|h| h.reason), Some("operator".into()));
    }

    #[test]
    fn a_timed_manual_disable_ends_on_its_own_and_enable_clears_everything() {
        let mut health = Health::default();
        health.disable("maintenance".into(), T0, Some(T0 + 2_000));
        assert_eq!(health.status(T0 + 1_999), KeyStatus::Disabled);
        assert_eq!(health.status(T0 + 2_000), KeyStatus::Active);
        health.apply(&KeyEvent::Rejected { status: 403 }, &policy(), T0);
        health.enable();
        assert_eq!(health, Health::default());
    }

    #[test]
    fn a_probe_recovers_a_failed_key_but_never_lifts_a_manual_disable() {
        let mut failed = Health::default();
        failed.apply(&KeyEvent::Rejected { status: 401 }, &policy(), T0);
        failed.recover();
        assert_eq!(failed.status(T0), KeyStatus::Active);
        let mut manual = Health::default();
        manual.disable("operator".into(), T0, None);
        manual.recover();
        assert_eq!(manual.status(T0), KeyStatus::Disabled);
        assert!(!manual.reset_cooldown(), "a reset of cooldowns keeps manual disables");
        assert_eq!(manual.status(T0), KeyStatus::Disabled);
    }

    #[test]
    fn an_expired_hold_is_dropped_on_the_next_event() {
        let mut health = Health::default();
        health.apply(&KeyEvent::RateLimited { retry_after_ms: Some(1_000) }, &policy(), T0);
        health.apply(&KeyEvent::Neutral, &policy(), T0 + 5_000);
        assert_eq!(health.hold, None);
    }
}
