//! Users as the store holds them, and the rules for what a user may set about themselves.

use std::fmt;

use super::email::Email;
use super::signin::LocalDay;
use crate::UnixMs;
use crate::ids::{TokenId, UserId};
use crate::import::{InvalidLabel, validate_label};
use crate::secret::Secret;

/// An argon2id hash in PHC form (`$argon2id$v=19$m=…`), made and checked by an adapter. It is
/// one-way, but still a secret (it allows an offline guess per candidate password), so it
/// never prints.
#[derive(Clone, PartialEq, Eq)]
pub struct PasswordHash(Secret);

impl PasswordHash {
    pub fn new(phc: impl Into<std::sync::Arc<str>>) -> PasswordHash {
        PasswordHash(Secret::new(phc))
    }

    pub fn expose_secret(&self) -> &str {
        self.0.expose_secret()
    }
}

impl fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PasswordHash([redacted])")
    }
}

/// Whether a user may sign in and use their credential.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum UserStatus {
    Active,
    Disabled,
}

impl UserStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            UserStatus::Active => "active",
            UserStatus::Disabled => "disabled",
        }
    }

    pub fn parse(raw: &str) -> Option<UserStatus> {
        match raw {
            "active" => Some(UserStatus::Active),
            "disabled" => Some(UserStatus::Disabled),
            _ => None,
        }
    }
}

/// A self-registered user.
#[derive(Clone, PartialEq, Eq)]
pub struct UserRecord {
    pub id: UserId,
    /// Unique: one account per address.
    pub email: Email,
    /// `None`: the user signs in by emailed code only (the seed's favourite way).
    pub password_hash: Option<PasswordHash>,
    pub status: UserStatus,
    pub created_at: UnixMs,
    pub last_login: Option<UnixMs>,
    /// The user's API credential: a client token of the same machinery as admin-made ones,
    /// whose expiry the daily sign-in moves.
    pub token: TokenId,
    /// What the user calls themselves (checked by [`display_name`]).
    pub name: Option<String>,
}

impl fmt::Debug for UserRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UserRecord")
            .field("id", &self.id)
            .field("email", &self.email)
            .field("password_hash", &self.password_hash.as_ref().map(|_| "[redacted]"))
            .field("status", &self.status)
            .field("created_at", &self.created_at)
            .field("last_login", &self.last_login)
            .field("token", &self.token)
            .field("name", &self.name)
            .finish()
    }
}

/// A display name: the rule of key labels (trimmed, empty is none, at most [`crate::import::MAX_LABEL_CHARS`] characters, no
/// control characters; markup and quotes are plain data, escaped where shown). One rule, one
/// home: [`crate::import::validate_label`].
pub fn display_name(raw: &str) -> Result<Option<String>, InvalidLabel> {
    validate_label(raw)
}

/// Most users a page holds.
pub const MAX_USER_PAGE: u32 = 100;

/// A page of the user list, newest first.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UserQuery {
    /// Users whose email or name contains this (ASCII letters in any case); `%`, `_` and `\` are
    /// plain characters.
    pub search: Option<String>,
    pub status: Option<UserStatus>,
    /// Users to skip (the page's start).
    pub offset: u64,
    /// At most [`MAX_USER_PAGE`].
    pub limit: u32,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UserPage {
    pub users: Vec<UserRecord>,
    /// Users matching the filter, on every page.
    pub total: u64,
}

/// One day signed in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignInRecord {
    /// Grows with every sign-in (the seed's `id`).
    pub id: i64,
    pub user: UserId,
    pub day: LocalDay,
    pub at: UnixMs,
}

/// Most sign-ins a page of history holds.
pub const MAX_SIGN_IN_PAGE: u32 = 400;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SignInPage {
    /// Newest first.
    pub items: Vec<SignInRecord>,
    /// Every sign-in of the user.
    pub total: u64,
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;

    #[test]
    fn a_display_name_follows_the_key_label_rule() {
        assert_eq!(display_name("  Alice <b>  "), Ok(Some("Alice <b>".to_owned())));
        assert_eq!(display_name("   "), Ok(None));
        assert_eq!(display_name("a\u{0}b"), Err(InvalidLabel::ControlCharacters));
        assert_eq!(display_name(&"x".repeat(crate::import::MAX_LABEL_CHARS + 1)), Err(InvalidLabel::TooLong));
    }

    #[test]
    fn statuses_round_trip() {
        for s in [UserStatus::Active, UserStatus::Disabled] {
            assert_eq!(UserStatus::parse(s.as_str()), Some(s));
        }
        assert_eq!(UserStatus::parse("banned"), None);
    }

    #[test]
    fn a_users_password_hash_never_prints() {
        let user = UserRecord {
            id: UserId::from_uuid(Uuid::nil()),
            email: Email::parse("a@b.co").unwrap(),
            password_hash: Some(PasswordHash::new("$argon2id$v=19$secretpart")),
            status: UserStatus::Active,
            created_at: 0,
            last_login: None,
            token: TokenId::from_uuid(Uuid::nil()),
            name: None,
        };
        let printed = format!("{user:?} {:?}", user.password_hash);
        assert!(!printed.contains("secretpart"), "{printed}");
        assert!(printed.contains("a@b.co"));
    }
}
