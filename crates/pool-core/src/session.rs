//! Console sessions: the admin token exchanged, once, for a server-side session a browser holds
//! in an `HttpOnly` cookie.
//!
//! The cookie's value is a random secret; the store keeps only its hash (as for client tokens),
//! so a copy of the database opens no session. A session ends when it has been idle too long,
//! when it reaches its absolute age, when it is signed out, or when it is revoked. Its CSRF token
//! is derived from the secret, so it needs no storage and changes with every session.

use sha2::{Digest, Sha256};

use crate::UnixMs;
use crate::secret::{SecretHash, hash_secret};

/// Bytes of randomness in a session secret (hex in the cookie: 64 characters).
pub const SESSION_BYTES: usize = 32;

/// Longest user agent kept with a session (characters), so the list shows which browser it is.
const MAX_AGENT_CHARS: usize = 200;

/// A session as stored: never its secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionRecord {
    /// A public id (a UUID) for listing and revoking; not a credential.
    pub id: String,
    /// SHA-256 of the cookie's secret.
    pub hash: SecretHash,
    pub created_at: UnixMs,
    pub last_seen: UnixMs,
    pub user_agent: Option<String>,
    /// The client's address when it signed in.
    pub address: Option<String>,
}

/// How long sessions live.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionPolicy {
    /// A session unused this long is over.
    pub idle_ms: i64,
    /// A session is over this long after its sign-in, used or not.
    pub max_ms: i64,
}

impl SessionPolicy {
    /// When the session ends if it is not used again.
    pub fn expires_at(&self, session: &SessionRecord) -> UnixMs {
        session.last_seen.saturating_add(self.idle_ms).min(session.created_at.saturating_add(self.max_ms))
    }

    pub fn is_live(&self, session: &SessionRecord, now: UnixMs) -> bool {
        now < self.expires_at(session)
    }

    /// Whether a use at `now` is worth writing down: at most once a minute, or a tenth of the
    /// idle time when that is shorter, so reads do not each cost a write.
    pub fn worth_touching(&self, session: &SessionRecord, now: UnixMs) -> bool {
        now - session.last_seen >= (self.idle_ms / 10).clamp(0, 60_000)
    }
}

/// A fresh secret in the cookie's form (lower-case hex) from `random` bytes of the OS CSPRNG.
pub fn format_secret(random: &[u8; SESSION_BYTES]) -> String {
    random.iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether a cookie value has the form of a secret (so junk is refused before any lookup).
pub fn looks_like_secret(value: &str) -> bool {
    value.len() == SESSION_BYTES * 2 && value.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The hash a session is found by.
pub fn secret_hash(secret: &str) -> SecretHash {
    hash_secret(secret)
}

/// The session's CSRF token: derived from its secret (one-way, under its own label), so the
/// page may hold it while the secret stays in the `HttpOnly` cookie.
pub fn csrf_token(secret: &str) -> String {
    let digest = Sha256::new().chain_update(b"ollama-pool console csrf\0").chain_update(secret.as_bytes()).finalize();
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// A user agent as kept: trimmed, without control characters, at most 200 characters.
pub fn kept_agent(agent: &str) -> Option<String> {
    let kept: String = agent.chars().filter(|c| !c.is_control()).take(MAX_AGENT_CHARS).collect();
    Some(kept.trim().to_owned()).filter(|a| !a.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(created_at: UnixMs, last_seen: UnixMs) -> SessionRecord {
        let (id, hash) = ("s".to_owned(), hash_secret("x"));
        SessionRecord { id, hash, created_at, last_seen, user_agent: None, address: None }
    }

    #[test]
    fn a_session_ends_at_its_idle_time_or_its_absolute_age_whichever_is_first() {
        let policy = SessionPolicy { idle_ms: 1_000, max_ms: 10_000 };
        assert_eq!(policy.expires_at(&session(0, 0)), 1_000);
        assert_eq!(policy.expires_at(&session(0, 9_500)), 10_000);
        assert!(policy.is_live(&session(0, 500), 1_499));
        assert!(!policy.is_live(&session(0, 500), 1_500));
    }

    #[test]
    fn uses_are_written_at_most_once_a_minute() {
        let policy = SessionPolicy { idle_ms: 3_600_000, max_ms: 86_400_000 };
        assert!(!policy.worth_touching(&session(0, 0), 59_999));
        assert!(policy.worth_touching(&session(0, 0), 60_000));
        let short = SessionPolicy { idle_ms: 2_000, max_ms: 86_400_000 };
        assert!(short.worth_touching(&session(0, 0), 200));
    }

    #[test]
    fn the_csrf_token_is_per_session_and_not_the_secret() {
        let secret = format_secret(&[7; SESSION_BYTES]);
        assert!(looks_like_secret(&secret));
        assert_ne!(csrf_token(&secret), secret);
        assert_ne!(csrf_token(&secret), csrf_token(&format_secret(&[8; SESSION_BYTES])));
        assert!(!looks_like_secret("abc"));
        assert!(!looks_like_secret(&"z".repeat(64)));
    }

    #[test]
    fn user_agents_are_kept_short_and_printable() {
        assert_eq!(kept_agent(" Mozilla\u{7}/5.0 ").as_deref(), Some("Mozilla/5.0"));
        assert_eq!(kept_agent(&"a".repeat(500)).map(|a| a.len()), Some(200));
        assert_eq!(kept_agent("  "), None);
    }
}
