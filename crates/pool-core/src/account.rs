//! Community accounts: who may register, how an email proves itself with a code, and how the
//! daily sign-in keeps a user's credential alive. Pure rules: the caller passes `now`, the OS
//! randomness (as bytes) and the server secret in; the records here are what
//! [`crate::ports::AccountStore`] keeps.
//!
//! # Layout
//! - `email`: [`Email::parse`] (the seed's rule, with length bounds) and the domain allow and
//!   deny lists with `*` wildcards.
//! - `code`: six-digit verification codes: made without modulo bias, stored as an HMAC under a
//!   server secret, valid 10 minutes, burned after 5 tries, compared in constant time.
//! - `throttle`: once per 60 s and 10 a day per email and per address, over stored tallies.
//! - `signin`: the local day in an IANA zone, the capped extension, the streak.
//! - `user`: users, their status and display name, and the pages the store returns.
//! - `invite`: the registration policy and invite codes.
//!
//! A key design decision: every limit the issue names is counted by the store, atomically
//! (tries, sends, the one sign-in a day), and only judged here. A limit kept in memory would
//! reset with every restart and differ between gateways, which is how the seed's codes became
//! brute-forceable once Redis was off.

mod code;
mod email;
mod invite;
mod signin;
mod throttle;
mod user;

pub use code::{
    CODE_DIGITS, CODE_RANDOM_BYTES, CODE_TTL_MS, Code, CodeKey, CodePurpose, CodeRecord, CodeVerdict, MAX_TRIES,
    NotEnoughRandomness, ShortCodeKey, generate_code,
};
pub use email::{DomainPattern, DomainRules, Email, InvalidEmail, InvalidPattern, MAX_EMAIL_CHARS, MAX_LOCAL_CHARS};
pub use invite::{INVITE_BYTES, InviteRecord, RegistrationPolicy, RegistrationRefused, format_invite, invite_hash};
pub use signin::{DEFAULT_ZONE, InvalidDay, LocalDay, SignInRule, UnknownZone, Zone, extend, streak};
pub use throttle::{Phase, SendRefused, SendRule, SendTallies, SendTally};
pub use user::{
    MAX_SIGN_IN_PAGE, MAX_USER_PAGE, PasswordHash, SignInPage, SignInRecord, UserPage, UserQuery, UserRecord,
    UserStatus, display_name,
};
