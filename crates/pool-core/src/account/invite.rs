//! Who may register: the registration policy, and the admin's invite codes.
//!
//! An invite code carries 128 random bits, so (like a client token, and unlike a six-digit
//! code) its plain SHA-256 is a safe stored form: there is nothing to brute-force.

use std::fmt;

use crate::UnixMs;
use crate::ids::{InviteId, UserId};
use crate::secret::{SecretHash, hash_secret};

/// `users.registration`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RegistrationPolicy {
    /// Anyone whose email domain the lists admit.
    #[default]
    Open,
    /// No one: accounts come from the admin only.
    Closed,
    /// Only with an unused invite code.
    Invite,
}

/// Why a registration is refused by the policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RegistrationRefused {
    #[error("registration is closed")]
    Closed,
    #[error("registration needs an invite code")]
    InviteRequired,
}

impl RegistrationPolicy {
    pub fn parse(raw: &str) -> Option<RegistrationPolicy> {
        match raw {
            "open" => Some(RegistrationPolicy::Open),
            "closed" => Some(RegistrationPolicy::Closed),
            "invite" => Some(RegistrationPolicy::Invite),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            RegistrationPolicy::Open => "open",
            RegistrationPolicy::Closed => "closed",
            RegistrationPolicy::Invite => "invite",
        }
    }

    /// Whether a registration may go ahead, given whether it presents an invite code (whose
    /// validity the store's one-time use decides). Under `open`, a code is simply not needed.
    pub fn admits(self, presents_invite: bool) -> Result<(), RegistrationRefused> {
        match (self, presents_invite) {
            (RegistrationPolicy::Open, _) | (RegistrationPolicy::Invite, true) => Ok(()),
            (RegistrationPolicy::Closed, _) => Err(RegistrationRefused::Closed),
            (RegistrationPolicy::Invite, false) => Err(RegistrationRefused::InviteRequired),
        }
    }
}

/// Random bytes in an invite code.
pub const INVITE_BYTES: usize = 16;

/// A fresh invite code in its shown form (`inv-` and 32 hex digits), from OS CSPRNG bytes.
pub fn format_invite(random: &[u8; INVITE_BYTES]) -> String {
    let hex: String = random.iter().map(|b| format!("{b:02x}")).collect();
    format!("inv-{hex}")
}

/// The hash an invite code is found by: trimmed and lower-cased first, so a code read aloud or
/// retyped in capitals still works.
pub fn invite_hash(code: &str) -> SecretHash {
    hash_secret(&code.trim().to_ascii_lowercase())
}

/// An invite code as stored: its hash, never the code.
#[derive(Clone, PartialEq, Eq)]
pub struct InviteRecord {
    pub id: InviteId,
    pub hash: SecretHash,
    /// The admin's note (who it is for).
    pub note: Option<String>,
    pub created_at: UnixMs,
    /// `None`: valid until used.
    pub expires_at: Option<UnixMs>,
    /// Who registered with it, once used; a code is used at most once.
    pub used_by: Option<UserId>,
    pub used_at: Option<UnixMs>,
}

impl fmt::Debug for InviteRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InviteRecord")
            .field("id", &self.id)
            .field("hash", &"[redacted]")
            .field("note", &self.note)
            .field("created_at", &self.created_at)
            .field("expires_at", &self.expires_at)
            .field("used_by", &self.used_by)
            .field("used_at", &self.used_at)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;

    #[test]
    fn each_policy_admits_what_it_says() {
        use RegistrationPolicy::*;
        assert_eq!(Open.admits(false), Ok(()));
        assert_eq!(Open.admits(true), Ok(()));
        assert_eq!(Closed.admits(true), Err(RegistrationRefused::Closed));
        assert_eq!(Invite.admits(false), Err(RegistrationRefused::InviteRequired));
        assert_eq!(Invite.admits(true), Ok(()));
        for p in [Open, Closed, Invite] {
            assert_eq!(RegistrationPolicy::parse(p.as_str()), Some(p));
        }
        assert_eq!(RegistrationPolicy::parse("Open"), None);
    }

    #[test]
    fn an_invite_code_is_found_by_its_hash_however_it_is_typed() {
        let code = format_invite(&[0xab; INVITE_BYTES]);
        assert_eq!(code, format!("inv-{}", "ab".repeat(16)));
        assert_eq!(invite_hash(&code), invite_hash(&format!("  {}\n", code.to_uppercase())));
        assert_ne!(invite_hash(&code), invite_hash(&format_invite(&[0xac; INVITE_BYTES])));
    }

    #[test]
    fn an_invites_hash_never_prints() {
        let invite = InviteRecord {
            id: InviteId::from_uuid(Uuid::nil()),
            hash: invite_hash("inv-x"),
            note: Some("for bob".to_owned()),
            created_at: 0,
            expires_at: None,
            used_by: None,
            used_at: None,
        };
        let printed = format!("{invite:?}");
        assert!(printed.contains("[redacted]") && printed.contains("for bob"));
        assert!(!printed.contains(&format!("{:?}", invite.hash)), "{printed}");
    }
}
