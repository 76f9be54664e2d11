//! The health state machine of one upstream key.
//!
//! A key is `active`, or held out of rotation by a [`Hold`]: `cooling` (rate limited, or resting
//! after a run of errors), `failed` (the upstream rejected the key: 401/403), or `disabled` (errors
//! went on after repeated rests, or an operator). Every hold carries its [`HoldCause`], so the
//! selector knows which rests are transient (worth a try when nothing else is left) and which are
//! certain (a rejected key, an exhausted quota, an operator's word).
//!
//! Two decisions a newcomer would question:
//! - Errors are judged by their ratio over a recent window ([`Recent`]), not by a streak. Under
//!   concurrency attempts end out of order, so a streak counted in completion order trips on
//!   keys that mostly succeed. A key rests when at least `errors_min_requests` attempts in the
//!   window failed at `errors_ratio` or more, or when `errors_alone` failed with no success at all
//!   (a dead key under little traffic). A rest resets the window: a key that returns needs fresh
//!   evidence to be rested again.
//! - Long automatic holds end half-open: when such a hold's time is up, the key does not serve
//!   clients until a background probe passes ([`Hold::probe`]). A failed probe extends the hold,
//!   doubling each time up to `backoff_max_ms`. Short rests (seconds) end on their own, with no
//!   job and no write.
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

/// Why a key is held: who or what put it out, which decides who may bring it back.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HoldCause {
    /// An operator: only an operator lifts it.
    Operator,
    /// The upstream's rate limit or quota (429, out of credit): over when its window resets.
    RateLimit,
    /// The upstream refused the key (401/403).
    Rejected,
    /// A run of errors (5xx, timeouts, dropped connections): transient, perhaps not the key's.
    Errors,
}

impl HoldCause {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Operator => "operator",
            Self::RateLimit => "rate_limit",
            Self::Rejected => "rejected",
            Self::Errors => "errors",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::Operator, Self::RateLimit, Self::Rejected, Self::Errors].into_iter().find(|c| c.as_str() == s)
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
    pub cause: HoldCause,
    /// The key must pass a probe before it serves clients again, even once `until` has passed
    /// (half-open recovery of long automatic holds).
    pub probe: bool,
}

impl Hold {
    pub fn in_force(&self, now: UnixMs) -> bool {
        self.probe || self.until.is_none_or(|until| until > now)
    }

    /// Set by an operator: only an operator lifts it (a passing health probe does not).
    pub fn manual(&self) -> bool {
        self.cause == HoldCause::Operator
    }

    /// The instant from which the key may be picked, `i64::MAX` when open-ended or when a probe
    /// must pass first.
    pub fn end(&self) -> UnixMs {
        if self.probe { UnixMs::MAX } else { self.until.unwrap_or(UnixMs::MAX) }
    }

    /// The hold's time is up and it waits for a probe.
    pub fn awaiting_probe(&self, now: UnixMs) -> bool {
        self.probe && self.until.is_some_and(|until| until <= now)
    }
}

/// The limits of the state machine; every number is configurable.
#[derive(Clone, Debug, PartialEq)]
pub struct FailurePolicy {
    /// Ambiguous failures (5xx, timeouts, dropped connections) one client request may spend,
    /// each on a different key. Failures that are certainly the key's (401/403, 429, an
    /// exhausted quota) and keys that do not have the model cost nothing: a request is bounded
    /// by the pool's size and its deadline, not by them.
    pub max_attempts: u32,
    /// Attempts past `max_attempts` a pool's requests may share (see
    /// [`crate::pool::RetryBudget`]); 0 = none.
    pub retry_budget: u32,
    /// How long a key the upstream rejected (401/403) stays `failed` before it is probed.
    pub auth_failure_ms: i64,
    /// Upper bound on any rest an upstream asks for, so a hostile upstream cannot park a key
    /// for years.
    pub rate_limit_max_ms: i64,
    /// The window over which a key's errors are judged.
    pub errors_window_ms: i64,
    /// Attempts in the window before the ratio is judged at all.
    pub errors_min_requests: u32,
    /// The share of failed attempts in the window (0..=1) that rests the key.
    pub errors_ratio: f64,
    /// Failures with no success in the window that rest the key under little traffic.
    pub errors_alone: u32,
    /// The first rest after errors; each rest in a row doubles it.
    pub transient_cooldown_ms: i64,
    /// Rests in a row (strikes) after which the key is disabled for `disable_ms`.
    pub disable_after: u32,
    pub disable_ms: i64,
    /// Automatic holds at least this long end half-open: probed before serving again.
    pub probe_after_ms: i64,
    /// The longest a failed probe extends a hold (1 h, 2 h, 4 h … up to this).
    pub backoff_max_ms: i64,
}

impl Default for FailurePolicy {
    fn default() -> Self {
        Self {
            max_attempts: 4,
            retry_budget: 100,
            auth_failure_ms: 3_600_000,
            rate_limit_max_ms: 30 * 86_400_000,
            errors_window_ms: 60_000,
            errors_min_requests: 5,
            errors_ratio: 0.5,
            errors_alone: 3,
            transient_cooldown_ms: 5_000,
            disable_after: 4,
            disable_ms: 3_600_000,
            probe_after_ms: 300_000,
            backoff_max_ms: 86_400_000,
        }
    }
}

/// What happened on one attempt, from the key's point of view.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyEvent {
    /// The upstream served the request.
    Success,
    /// The key hit a rate limit or quota (429, 402 out of credit): rest it for `rest_ms`.
    RateLimited { rest_ms: i64, reason: String },
    /// 401/403: the upstream refuses this key.
    Rejected { status: u16 },
    /// 5xx, a timeout or a dropped connection: maybe the upstream, maybe the key.
    Transient { cause: String },
    /// Neither the key's merit nor its fault: a client error passed through, a client that
    /// left, a connection the upstream refused for every key, the gateway's own trouble.
    Neutral,
}

/// A key's attempts in the recent window, this one included.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Recent {
    pub successes: u32,
    pub failures: u32,
}

impl Recent {
    /// Does this record rest the key?
    fn trips(self, policy: &FailurePolicy) -> bool {
        let total = self.successes.saturating_add(self.failures);
        let ratio_tripped = total >= policy.errors_min_requests.max(1)
            && f64::from(self.failures) >= policy.errors_ratio * f64::from(total);
        ratio_tripped || (self.successes == 0 && self.failures >= policy.errors_alone.max(1))
    }
}

/// The health of one key: the hold in force (if any) and its strikes, the holds in a row
/// without a success between them (the exponent of every backoff).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Health {
    pub hold: Option<Hold>,
    pub strikes: u32,
}

/// `base` doubled `exponent` times, capped.
fn backoff(base: i64, exponent: u32, cap: i64) -> i64 {
    base.saturating_mul(1_i64 << exponent.min(40)).min(cap.max(base))
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

    /// The hold in force, if any.
    pub fn hold_at(&self, now: UnixMs) -> Option<&Hold> {
        self.hold.as_ref().filter(|h| h.in_force(now))
    }

    /// Nothing to remember: no hold, no strikes. A success on such a key changes nothing.
    pub fn is_clean(&self) -> bool {
        self.hold.is_none() && self.strikes == 0
    }

    /// The transition table. `recent` is the key's window of attempts, this one included; only
    /// [`KeyEvent::Transient`] reads it. Returns whether a new hold began (the caller clears the
    /// window).
    pub fn apply(&mut self, event: &KeyEvent, recent: Recent, policy: &FailurePolicy, now: UnixMs) -> bool {
        if self.hold.as_ref().is_some_and(|h| !h.in_force(now)) {
            self.hold = None;
        }
        match event {
            KeyEvent::Success => {
                self.strikes = 0;
                // A key tried while resting after errors (nothing else was left) is back.
                if self.hold.as_ref().is_some_and(|h| h.cause == HoldCause::Errors) {
                    self.hold = None;
                }
                false
            }
            KeyEvent::Neutral => false,
            KeyEvent::RateLimited { rest_ms, reason } => {
                let rest = (*rest_ms).clamp(0, policy.rate_limit_max_ms);
                let probe = rest >= policy.probe_after_ms;
                self.hold_at_least(KeyStatus::Cooling, HoldCause::RateLimit, reason.clone(), now, now + rest, probe)
            }
            KeyEvent::Rejected { status } => {
                let rest = backoff(policy.auth_failure_ms, self.strikes, policy.backoff_max_ms);
                self.strikes = self.strikes.saturating_add(1);
                let reason = format!("upstream rejected the key ({status})");
                self.hold_at_least(KeyStatus::Failed, HoldCause::Rejected, reason, now, now + rest, true)
            }
            KeyEvent::Transient { cause } => {
                if !recent.trips(policy) {
                    return false;
                }
                self.strikes = self.strikes.saturating_add(1);
                let errors =
                    format!("{} of {} recent attempts failed", recent.failures, recent.failures + recent.successes);
                let (status, rest, reason) = if self.strikes >= policy.disable_after.max(1) {
                    let over = self.strikes - policy.disable_after.max(1);
                    let rest = backoff(policy.disable_ms, over, policy.backoff_max_ms);
                    (
                        KeyStatus::Disabled,
                        rest,
                        format!("errors after {} rests: {errors} (last: {cause})", self.strikes - 1),
                    )
                } else {
                    let rest = backoff(policy.transient_cooldown_ms, self.strikes - 1, policy.disable_ms);
                    (KeyStatus::Cooling, rest, format!("{errors} (last: {cause})"))
                };
                let probe = rest >= policy.probe_after_ms;
                self.hold_at_least(status, HoldCause::Errors, reason, now, now + rest, probe)
            }
        }
    }

    /// An operator takes the key out, for `until` or until enabled.
    pub fn disable(&mut self, reason: String, now: UnixMs, until: Option<UnixMs>) {
        let (status, cause) = (KeyStatus::Disabled, HoldCause::Operator);
        self.hold = Some(Hold { status, reason, since: now, until, cause, probe: false });
    }

    /// An operator puts the key back: the hold and strikes are cleared.
    pub fn enable(&mut self) {
        self.hold = None;
        self.strikes = 0;
    }

    /// A passing health probe puts the key back, unless an operator took it out.
    pub fn recover(&mut self) {
        if !self.hold.as_ref().is_some_and(Hold::manual) {
            self.enable();
        }
    }

    /// A probe of a half-open key failed: the hold goes on, twice as long as the last time.
    pub fn probe_failed(&mut self, detail: &str, policy: &FailurePolicy, now: UnixMs) {
        let Some(hold) = self.hold.as_mut().filter(|h| h.probe && !h.manual()) else { return };
        let rest = backoff(policy.disable_ms, self.strikes.saturating_sub(1), policy.backoff_max_ms);
        self.strikes = self.strikes.saturating_add(1);
        hold.until = Some(now + rest);
        hold.reason = format!("recovery probe failed ({detail}); next probe in {} s", rest / 1000);
    }

    /// An operator clears cooldowns and failures; manual disables stay. Returns whether it changed.
    pub fn reset_cooldown(&mut self) -> bool {
        let lifted = self.hold.as_ref().is_some_and(|h| !h.manual());
        if lifted {
            self.hold = None;
        }
        self.strikes = 0;
        lifted
    }

    /// Sets a hold unless one already in force ends later: a 429 never shortens a disable.
    /// Returns whether the hold was set.
    fn hold_at_least(
        &mut self,
        status: KeyStatus,
        cause: HoldCause,
        reason: String,
        now: UnixMs,
        until: UnixMs,
        probe: bool,
    ) -> bool {
        if self.hold.as_ref().is_some_and(|h| h.end() > until) {
            return false;
        }
        self.hold = Some(Hold { status, reason, since: now, until: Some(until), cause, probe });
        true
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

    fn limited(rest_ms: i64) -> KeyEvent {
        KeyEvent::RateLimited { rest_ms, reason: "rate limited by upstream (429)".into() }
    }

    fn recent(successes: u32, failures: u32) -> Recent {
        Recent { successes, failures }
    }

    #[test]
    fn a_rate_limit_cools_the_key_for_exactly_its_rest() {
        let mut health = Health::default();
        assert!(health.apply(&limited(30_000), Recent::default(), &policy(), T0));
        assert_eq!(health.status(T0 + 29_999), KeyStatus::Cooling);
        assert_eq!(health.status(T0 + 30_000), KeyStatus::Active);
        assert_eq!(health.strikes, 0, "a rate limit is not a failure of the key");
        assert_eq!(health.hold.map(|h| (h.cause, h.probe)), Some((HoldCause::RateLimit, false)));
    }

    #[test]
    fn a_long_quota_rest_ends_half_open() {
        let mut health = Health::default();
        health.apply(&limited(7 * 86_400_000), Recent::default(), &policy(), T0);
        let later = T0 + 7 * 86_400_000;
        assert_eq!(health.status(later), KeyStatus::Cooling, "still out until a probe passes");
        assert!(health.hold.as_ref().is_some_and(|h| h.awaiting_probe(later)));
        assert_eq!(health.blocked_until(), UnixMs::MAX);
        health.recover();
        assert_eq!(health.status(later), KeyStatus::Active);
    }

    #[test]
    fn an_absurd_rest_is_capped() {
        let mut health = Health::default();
        health.apply(&limited(i64::MAX / 2), Recent::default(), &policy(), T0);
        assert_eq!(health.hold.and_then(|h| h.until), Some(T0 + policy().rate_limit_max_ms));
    }

    #[test]
    fn a_401_fails_the_key_then_a_failed_probe_doubles_the_hold() {
        let mut health = Health::default();
        health.apply(&KeyEvent::Rejected { status: 401 }, Recent::default(), &policy(), T0);
        assert_eq!(health.status(T0 + 3_599_999), KeyStatus::Failed);
        let back = T0 + 3_600_000;
        assert_eq!(health.status(back), KeyStatus::Failed, "half-open: waits for a probe");
        assert_eq!(health.hold.as_ref().map(|h| h.reason.as_str()), Some("upstream rejected the key (401)"));
        health.probe_failed("HTTP 401", &policy(), back);
        assert_eq!(health.hold.as_ref().and_then(|h| h.until), Some(back + 3_600_000));
        health.probe_failed("HTTP 401", &policy(), back + 3_600_000);
        assert_eq!(health.hold.as_ref().and_then(|h| h.until), Some(back + 3_600_000 + 7_200_000));
        health.recover();
        assert!(health.is_clean());
    }

    #[test]
    fn the_probe_backoff_is_capped() {
        let mut health = Health::default();
        health.apply(&KeyEvent::Rejected { status: 403 }, Recent::default(), &policy(), T0);
        for _ in 0..40 {
            health.probe_failed("HTTP 403", &policy(), T0);
        }
        assert_eq!(health.hold.and_then(|h| h.until), Some(T0 + policy().backoff_max_ms));
    }

    #[test]
    fn errors_under_the_ratio_never_rest_the_key() {
        let mut health = Health::default();
        for failures in 1..=30 {
            assert!(!health.apply(&transient(), recent(70, failures), &policy(), T0));
        }
        assert!(health.is_clean(), "a key failing 30 % of the time keeps serving");
    }

    #[test]
    fn errors_at_the_ratio_rest_the_key_briefly_and_each_rest_in_a_row_doubles() {
        let mut health = Health::default();
        assert!(!health.apply(&transient(), recent(1, 3), &policy(), T0), "too few attempts to judge");
        assert!(health.apply(&transient(), recent(2, 3), &policy(), T0));
        assert_eq!((health.status(T0), health.blocked_until()), (KeyStatus::Cooling, T0 + 5_000));
        assert_eq!(health.hold.as_ref().map(|h| h.cause), Some(HoldCause::Errors));
        assert!(health.apply(&transient(), recent(0, 5), &policy(), T0 + 5_000));
        assert_eq!(health.blocked_until(), T0 + 5_000 + 10_000);
    }

    #[test]
    fn a_dead_key_under_little_traffic_rests_after_a_few_failures_alone() {
        let mut health = Health::default();
        assert!(!health.apply(&transient(), recent(0, 2), &policy(), T0));
        assert!(health.apply(&transient(), recent(0, 3), &policy(), T0));
        assert_eq!(health.status(T0), KeyStatus::Cooling);
    }

    #[test]
    fn rests_that_go_on_end_in_a_disable_that_is_probed() {
        let mut health = Health::default();
        let mut now = T0;
        for _ in 0..policy().disable_after {
            health.apply(&transient(), recent(0, 5), &policy(), now);
            now = health.blocked_until();
        }
        assert_eq!(health.status(now - 1), KeyStatus::Disabled);
        let hold = health.hold.clone().unwrap_or_else(|| panic!("a hold"));
        assert_eq!((hold.until, hold.probe), (Some(hold.since + 3_600_000), true));
    }

    #[test]
    fn a_success_clears_strikes_and_an_errors_rest() {
        let mut health = Health::default();
        health.apply(&transient(), recent(0, 5), &policy(), T0);
        health.apply(&KeyEvent::Success, Recent::default(), &policy(), T0 + 1);
        assert!(health.is_clean());
    }

    #[test]
    fn a_rate_limit_never_shortens_a_longer_hold() {
        let mut health = Health::default();
        health.disable("operator".into(), T0, None);
        health.apply(&limited(1_000), Recent::default(), &policy(), T0);
        assert_eq!(health.status(T0 + 10_000_000), KeyStatus::Disabled);
        assert_eq!(health.hold.map(|h| h.reason), Some("operator".into()));
    }

    #[test]
    fn a_timed_manual_disable_ends_on_its_own_and_enable_clears_everything() {
        let mut health = Health::default();
        health.disable("maintenance".into(), T0, Some(T0 + 2_000));
        assert_eq!(health.status(T0 + 1_999), KeyStatus::Disabled);
        assert_eq!(health.status(T0 + 2_000), KeyStatus::Active);
        health.apply(&KeyEvent::Rejected { status: 403 }, Recent::default(), &policy(), T0);
        health.enable();
        assert_eq!(health, Health::default());
    }

    #[test]
    fn a_probe_recovers_a_failed_key_but_never_lifts_a_manual_disable() {
        let mut failed = Health::default();
        failed.apply(&KeyEvent::Rejected { status: 401 }, Recent::default(), &policy(), T0);
        failed.recover();
        assert_eq!(failed.status(T0), KeyStatus::Active);
        let mut manual = Health::default();
        manual.disable("operator".into(), T0, None);
        manual.recover();
        manual.probe_failed("x", &policy(), T0);
        assert_eq!(manual.status(T0), KeyStatus::Disabled);
        assert_eq!(manual.hold.as_ref().and_then(|h| h.until), None, "a probe never touches a manual hold");
        assert!(!manual.reset_cooldown(), "a reset of cooldowns keeps manual disables");
        assert_eq!(manual.status(T0), KeyStatus::Disabled);
    }

    #[test]
    fn an_expired_hold_is_dropped_on_the_next_event() {
        let mut health = Health::default();
        health.apply(&limited(1_000), Recent::default(), &policy(), T0);
        health.apply(&KeyEvent::Neutral, Recent::default(), &policy(), T0 + 5_000);
        assert_eq!(health.hold, None);
    }

    #[test]
    fn hold_causes_round_trip_through_their_names() {
        for cause in [HoldCause::Operator, HoldCause::RateLimit, HoldCause::Rejected, HoldCause::Errors] {
            assert_eq!(HoldCause::parse(cause.as_str()), Some(cause));
        }
    }
}
