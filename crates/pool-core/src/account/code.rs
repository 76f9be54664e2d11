//! Verification codes: six digits mailed to an address, for registering, signing in or resetting
//! a password.
//!
//! A code is made from random bytes the caller draws from the OS CSPRNG (this crate reads
//! nothing), digit by digit without modulo bias, and stored only as a keyed hash.
//!
//! A key design decision: the hash is HMAC-SHA256 under a server secret, not the plain SHA-256
//! that suits client tokens. A token has 256 random bits, so its hash reveals nothing; a code
//! has 10^6 possible values, so anyone holding a plain hash (a leaked backup, a read-only SQL
//! injection) finds the code in a million hashes, well under a second. Under a key that lives
//! in configuration and never in the database, the stored value is useless on its own. The
//! email and the purpose go into the MAC as well, so a row copied to another address or purpose
//! verifies nothing.
//!
//! A code lives 10 minutes, one per (email, purpose) at a time (a new one replaces it), and
//! allows [`MAX_TRIES`] tries: the store counts every try atomically before the code is
//! compared, so concurrent guesses cannot share a try.

use std::fmt;

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use super::email::Email;
use crate::UnixMs;
use crate::secret::{Secret, SecretHash};

/// How long a code may be used.
pub const CODE_TTL_MS: i64 = 10 * 60_000;
/// Tries a code allows (wrong or right); the next one finds it burned.
pub const MAX_TRIES: u32 = 5;
/// Digits of a code.
pub const CODE_DIGITS: usize = 6;
/// Random bytes to hand [`generate_code`]: a byte is kept with probability 250/256, so 16 bytes
/// fall short of six digits with a probability below 10^-17.
pub const CODE_RANDOM_BYTES: usize = 16;
/// Bytes at or above this are dropped: 250 is the largest multiple of 10 that fits in a byte, so
/// every kept byte maps onto each digit exactly 25 times.
const UNBIASED_BYTES: u8 = 250;

/// What a code is for; each purpose has its own live code per address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CodePurpose {
    Register,
    Login,
    Reset,
}

impl CodePurpose {
    pub fn as_str(self) -> &'static str {
        match self {
            CodePurpose::Register => "register",
            CodePurpose::Login => "login",
            CodePurpose::Reset => "reset",
        }
    }

    pub fn parse(raw: &str) -> Option<CodePurpose> {
        match raw {
            "register" => Some(CodePurpose::Register),
            "login" => Some(CodePurpose::Login),
            "reset" => Some(CodePurpose::Reset),
            _ => None,
        }
    }
}

/// The server secret codes are keyed with (from configuration; at least 32 bytes), held as
/// the MAC already keyed with it.
#[derive(Clone)]
pub struct CodeKey(Hmac<Sha256>);

#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the verification code key must be at least 32 bytes")]
pub struct ShortCodeKey;

impl CodeKey {
    pub fn new(secret: &Secret) -> Result<CodeKey, ShortCodeKey> {
        let bytes = secret.expose_secret().as_bytes();
        if bytes.len() < 32 {
            return Err(ShortCodeKey);
        }
        Hmac::<Sha256>::new_from_slice(bytes).map(CodeKey).map_err(|_| ShortCodeKey)
    }

    /// The stored form of `code` for `email` and `purpose`.
    pub fn hash(&self, email: &Email, purpose: CodePurpose, code: &str) -> SecretHash {
        let mut mac = self.0.clone();
        for part in [purpose.as_str(), email.as_ref(), code] {
            mac.update(part.as_bytes());
            mac.update(b"\0");
        }
        mac.finalize().into_bytes().into()
    }
}

impl fmt::Debug for CodeKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CodeKey([redacted])")
    }
}

/// A fresh code, to mail once and then forget. Never printed by `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct Code(String);

impl Code {
    pub fn expose_secret(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Code([redacted])")
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("not enough random bytes for a verification code; draw more and try again")]
pub struct NotEnoughRandomness;

/// Six digits from `random` (draw [`CODE_RANDOM_BYTES`] from the OS CSPRNG): bytes below 250
/// give the digit `byte % 10`, the others are skipped, so every digit is equally likely.
pub fn generate_code(random: &[u8]) -> Result<Code, NotEnoughRandomness> {
    let digits: String =
        random.iter().filter(|&&b| b < UNBIASED_BYTES).take(CODE_DIGITS).map(|&b| char::from(b'0' + b % 10)).collect();
    if digits.len() == CODE_DIGITS { Ok(Code(digits)) } else { Err(NotEnoughRandomness) }
}

/// A code as stored: its keyed hash, never the digits.
#[derive(Clone, PartialEq, Eq)]
pub struct CodeRecord {
    pub email: Email,
    pub purpose: CodePurpose,
    /// [`CodeKey::hash`] of the digits.
    pub hash: SecretHash,
    pub created_at: UnixMs,
    pub expires_at: UnixMs,
    /// Tries made so far, this one included when the record comes from `take_code_try`.
    pub tries: u32,
}

impl CodeRecord {
    /// The record of a code just sent at `now`: no tries yet, valid for [`CODE_TTL_MS`].
    pub fn issue(key: &CodeKey, email: Email, purpose: CodePurpose, code: &Code, now: UnixMs) -> CodeRecord {
        let hash = key.hash(&email, purpose, code.expose_secret());
        CodeRecord { email, purpose, hash, created_at: now, expires_at: now.saturating_add(CODE_TTL_MS), tries: 0 }
    }

    /// Judges one try of `presented` against this record, which the store returned with the
    /// try already counted (so `tries` is at least 1). Order matters: a burned or expired code
    /// is refused before any comparison, so it tells nothing about the digits.
    pub fn check(&self, key: &CodeKey, presented: &str, now: UnixMs) -> CodeVerdict {
        if self.tries > MAX_TRIES {
            return CodeVerdict::Burned;
        }
        if now >= self.expires_at {
            return CodeVerdict::Expired;
        }
        let hash = key.hash(&self.email, self.purpose, presented.trim());
        if bool::from(hash.ct_eq(&self.hash)) {
            CodeVerdict::Accepted
        } else {
            CodeVerdict::Wrong { tries_left: MAX_TRIES - self.tries }
        }
    }
}

impl fmt::Debug for CodeRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CodeRecord")
            .field("email", &self.email)
            .field("purpose", &self.purpose)
            .field("hash", &"[redacted]")
            .field("created_at", &self.created_at)
            .field("expires_at", &self.expires_at)
            .field("tries", &self.tries)
            .finish()
    }
}

/// What one try of a code found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CodeVerdict {
    /// The code is right: consume it (only the caller whose consume deletes it may act on it).
    Accepted,
    /// The code is wrong; `tries_left` more may be made (0: the next finds it burned).
    Wrong { tries_left: u32 },
    /// Its ten minutes are over.
    Expired,
    /// Its tries are used up: delete it; a new one must be sent.
    Burned,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> CodeKey {
        CodeKey::new(&Secret::new("k".repeat(32))).unwrap()
    }

    fn email(raw: &str) -> Email {
        Email::parse(raw).unwrap()
    }

    fn record(code: &str, tries: u32) -> CodeRecord {
        let code = generate_code(code.as_bytes().iter().map(|b| b - b'0').collect::<Vec<_>>().as_slice()).unwrap();
        CodeRecord { tries, ..CodeRecord::issue(&key(), email("a@b.co"), CodePurpose::Login, &code, 1_000) }
    }

    #[test]
    fn every_byte_value_is_either_dropped_or_maps_evenly_onto_the_digits() {
        // Arrange: each of the 256 byte values, on its own, followed by five zero bytes
        let mut per_digit = [0u32; 10];
        let mut dropped = 0;
        for byte in 0..=255u8 {
            // Act
            let code = generate_code(&[byte, 0, 0, 0, 0, 0]);
            // Assert (tallied below)
            match code {
                Ok(code) => per_digit[usize::from(code.expose_secret().as_bytes()[0] - b'0')] += 1,
                Err(NotEnoughRandomness) => dropped += 1,
            }
        }
        assert_eq!(per_digit, [25; 10], "each digit from exactly 25 byte values");
        assert_eq!(dropped, 6, "the values 250..=255 are dropped");
    }

    #[test]
    fn a_code_is_six_digits_and_skips_the_biased_bytes() {
        let code = generate_code(&[250, 1, 255, 12, 249, 3, 100, 45, 7]).unwrap();
        assert_eq!(code.expose_secret(), "129305");
        assert_eq!(generate_code(&[1, 2, 3, 4, 5, 255, 255]), Err(NotEnoughRandomness));
        assert_eq!(format!("{code:?}"), "Code([redacted])");
    }

    #[test]
    fn the_hash_is_keyed_and_bound_to_the_address_and_purpose() {
        let (k, a) = (key(), email("a@b.co"));
        let other_key = CodeKey::new(&Secret::new("x".repeat(32))).unwrap();
        let h = k.hash(&a, CodePurpose::Login, "123456");
        assert_eq!(h, k.hash(&a, CodePurpose::Login, "123456"));
        assert_ne!(h, other_key.hash(&a, CodePurpose::Login, "123456"));
        assert_ne!(h, k.hash(&email("c@b.co"), CodePurpose::Login, "123456"));
        assert_ne!(h, k.hash(&a, CodePurpose::Register, "123456"));
        assert_ne!(h, crate::secret::hash_secret("123456"), "not a plain hash");
        assert!(CodeKey::new(&Secret::new("short")).is_err());
    }

    #[test]
    fn the_right_code_is_accepted_within_its_tries_and_ten_minutes() {
        let r = record("123456", 1);
        assert_eq!(r.check(&key(), "123456", 1_000), CodeVerdict::Accepted);
        assert_eq!(r.check(&key(), " 123456 ", 1_000 + CODE_TTL_MS - 1), CodeVerdict::Accepted);
        assert_eq!(record("123456", MAX_TRIES).check(&key(), "123456", 2_000), CodeVerdict::Accepted);
    }

    #[test]
    fn a_wrong_code_says_how_many_tries_are_left() {
        assert_eq!(record("123456", 1).check(&key(), "123457", 1_000), CodeVerdict::Wrong { tries_left: 4 });
        assert_eq!(record("123456", 5).check(&key(), "000000", 1_000), CodeVerdict::Wrong { tries_left: 0 });
    }

    #[test]
    fn after_five_tries_even_the_right_code_finds_it_burned() {
        assert_eq!(record("123456", MAX_TRIES + 1).check(&key(), "123456", 1_000), CodeVerdict::Burned);
    }

    #[test]
    fn a_code_expires_after_ten_minutes() {
        assert_eq!(record("123456", 1).check(&key(), "123456", 1_000 + CODE_TTL_MS), CodeVerdict::Expired);
        assert_eq!(record("123456", 1).expires_at, 1_000 + 600_000);
    }

    #[test]
    fn purposes_round_trip_and_secrets_stay_out_of_debug() {
        for p in [CodePurpose::Register, CodePurpose::Login, CodePurpose::Reset] {
            assert_eq!(CodePurpose::parse(p.as_str()), Some(p));
        }
        assert_eq!(CodePurpose::parse("admin"), None);
        let printed = format!("{:?} {:?}", record("123456", 0), key());
        assert!(!printed.contains(&format!("{:?}", record("123456", 0).hash)), "{printed}");
        assert!(printed.contains("[redacted]") && !printed.contains("kkkk"), "{printed}");
    }
}
