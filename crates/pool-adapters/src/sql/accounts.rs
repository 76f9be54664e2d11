//! The account port, implemented once for both stores: the statements read the same on SQLite
//! and PostgreSQL (`$n` placeholders, `ON CONFLICT … DO UPDATE/NOTHING`, `RETURNING`).
//!
//! Every limit rests on one statement that both changes and reads: a try is `UPDATE … SET
//! tries = tries + 1 … RETURNING`, a send an upsert returning its new count and the previous
//! send, a sign-in an `INSERT … ON CONFLICT (user_id, day) DO NOTHING RETURNING id` whose row
//! decides, inside the same transaction, whether the token's expiry moves. No read-modify-write
//! happens in Rust, so concurrent requests (or gateways) cannot both pass a limit.

use pool_core::account::{
    CodePurpose, CodeRecord, Email, InviteRecord, LocalDay, PasswordHash, SendTallies, SendTally, SignInRecord,
    UserRecord, UserStatus,
};
use pool_core::ports::StoreError;
use pool_core::secret::parse_hash_hex;

use super::rows::Columns;

mod store;

pub(crate) use store::impl_account_store;

const USER_COLUMNS: &str = "id, email, password_hash, status, created_at, last_login, token_id, name";

pub(crate) const INSERT_USER: &str = "INSERT INTO users \
     (id, email, password_hash, status, created_at, last_login, token_id, name) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";
pub(crate) const SET_STATUS: &str = "UPDATE users SET status = $2 WHERE id = $1";
pub(crate) const SET_PASSWORD: &str = "UPDATE users SET password_hash = $2 WHERE id = $1";
pub(crate) const SET_NAME: &str = "UPDATE users SET name = $2 WHERE id = $1";
pub(crate) const SET_LAST_LOGIN: &str = "UPDATE users SET last_login = $2 WHERE id = $1";
pub(crate) const USER_TOKEN: &str = "SELECT token_id FROM users WHERE id = $1";
pub(crate) const DELETE_TOKEN: &str = "DELETE FROM client_tokens WHERE id = $1";
pub(crate) const DELETE_SIGN_INS: &str = "DELETE FROM sign_ins WHERE user_id = $1";
pub(crate) const DELETE_USER: &str = "DELETE FROM users WHERE id = $1";

/// The filter of a user page: `$1` a `LIKE` pattern (or NULL), `$2` a status (or NULL).
const USER_FILTER: &str = "WHERE ($1 IS NULL OR LOWER(email) LIKE $1 ESCAPE '\\' \
     OR LOWER(COALESCE(name, '')) LIKE $1 ESCAPE '\\') AND ($2 IS NULL OR status = $2)";

pub(crate) fn user_by(column: &str) -> String {
    format!("SELECT {USER_COLUMNS} FROM users WHERE {column} = $1")
}

pub(crate) fn user_page() -> String {
    format!("SELECT {USER_COLUMNS} FROM users {USER_FILTER} ORDER BY created_at DESC, id DESC LIMIT $3 OFFSET $4")
}

pub(crate) fn user_count() -> String {
    format!("SELECT COUNT(*) FROM users {USER_FILTER}")
}

/// The `LIKE` pattern of a search: ASCII lower-case (as `LOWER` is on SQLite), with `%`, `_` and
/// the escape character itself taken literally.
pub(crate) fn like_pattern(search: &str) -> String {
    let mut pattern = String::with_capacity(search.len() + 2);
    pattern.push('%');
    for c in search.to_ascii_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

pub(crate) const PUT_CODE: &str = "INSERT INTO verification_codes \
     (email, purpose, code_hash, created_at, expires_at, tries) VALUES ($1, $2, $3, $4, $5, $6) \
     ON CONFLICT (email, purpose) DO UPDATE SET code_hash = excluded.code_hash, \
     created_at = excluded.created_at, expires_at = excluded.expires_at, tries = excluded.tries";
pub(crate) const TAKE_TRY: &str = "UPDATE verification_codes SET tries = tries + 1 \
     WHERE email = $1 AND purpose = $2 \
     RETURNING email, purpose, code_hash, created_at, expires_at, tries";
pub(crate) const CONSUME_CODE: &str =
    "DELETE FROM verification_codes WHERE email = $1 AND purpose = $2 AND code_hash = $3";

pub(crate) const SENDS: &str = "SELECT scope, day, sends, last_at FROM code_sends \
     WHERE (scope = 'email' AND subject = $1) OR (scope = 'address' AND subject = $2)";
/// A send: a new day starts the count again; the previous `last_at` comes back as `prev_at`
/// (every `SET` expression reads the row as it was).
pub(crate) const COUNT_SEND: &str = "INSERT INTO code_sends (scope, subject, day, sends, last_at, prev_at) \
     VALUES ($1, $2, $3, 1, $4, NULL) \
     ON CONFLICT (scope, subject) DO UPDATE SET \
     sends = CASE WHEN code_sends.day = excluded.day THEN code_sends.sends + 1 ELSE 1 END, \
     day = excluded.day, prev_at = code_sends.last_at, last_at = excluded.last_at \
     RETURNING sends, prev_at";

/// Only for a user that exists (an unknown one signs in nowhere, rather than failing on the
/// foreign key). The `WHERE` also keeps SQLite's upsert-after-`SELECT` unambiguous.
pub(crate) const INSERT_SIGN_IN: &str = "INSERT INTO sign_ins (user_id, day, at_ms) \
     SELECT $1, $2, $3 WHERE EXISTS (SELECT 1 FROM users WHERE id = $1) \
     ON CONFLICT (user_id, day) DO NOTHING RETURNING id";
pub(crate) const SET_TOKEN_EXPIRY: &str =
    "UPDATE client_tokens SET expires_at = $2 WHERE id = (SELECT token_id FROM users WHERE id = $1)";
pub(crate) const SIGN_IN_PAGE: &str = "SELECT id, user_id, day, at_ms FROM sign_ins WHERE user_id = $1 \
     ORDER BY day DESC, id DESC LIMIT $2 OFFSET $3";
pub(crate) const SIGN_IN_COUNT: &str = "SELECT COUNT(*) FROM sign_ins WHERE user_id = $1";

pub(crate) const INSERT_INVITE: &str = "INSERT INTO invites \
     (id, invite_hash, note, created_at, expires_at, used_by, used_at) VALUES ($1, $2, $3, $4, $5, $6, $7)";
pub(crate) const USE_INVITE: &str = "UPDATE invites SET used_by = $2, used_at = $3 \
     WHERE invite_hash = $1 AND used_at IS NULL AND (expires_at IS NULL OR expires_at > $3)";
pub(crate) const INVITES: &str = "SELECT id, invite_hash, note, created_at, expires_at, used_by, used_at \
     FROM invites ORDER BY created_at DESC, id DESC";

fn corrupt(what: &str) -> StoreError {
    StoreError::Corrupt(format!("an account row has an invalid {what}"))
}

fn id<T: std::str::FromStr>(text: &str, what: &str) -> Result<T, StoreError> {
    text.parse().map_err(|_| corrupt(what))
}

fn hash(hex: &str, what: &str) -> Result<pool_core::secret::SecretHash, StoreError> {
    parse_hash_hex(hex).ok_or_else(|| corrupt(what))
}

fn count(n: i64) -> u32 {
    u32::try_from(n).unwrap_or(if n < 0 { 0 } else { u32::MAX })
}

pub(crate) fn user(row: &impl Columns) -> Result<UserRecord, StoreError> {
    Ok(UserRecord {
        id: id(&row.text("id")?, "user id")?,
        email: Email::from_stored(row.text("email")?),
        password_hash: row.opt_text("password_hash")?.map(PasswordHash::new),
        status: UserStatus::parse(&row.text("status")?).ok_or_else(|| corrupt("user status"))?,
        created_at: row.int("created_at")?,
        last_login: row.opt_int("last_login")?,
        token: id(&row.text("token_id")?, "token id")?,
        name: row.opt_text("name")?,
    })
}

pub(crate) fn code(row: &impl Columns) -> Result<CodeRecord, StoreError> {
    Ok(CodeRecord {
        email: Email::from_stored(row.text("email")?),
        purpose: CodePurpose::parse(&row.text("purpose")?).ok_or_else(|| corrupt("code purpose"))?,
        hash: hash(&row.text("code_hash")?, "code hash")?,
        created_at: row.int("created_at")?,
        expires_at: row.int("expires_at")?,
        tries: count(row.int("tries")?),
    })
}

/// The tallies of [`SENDS`] as read for `day`: sends on another day count as none, the last
/// send still counts (the interval spans midnight).
pub(crate) fn tallies(rows: &[impl Columns], day: &str) -> Result<SendTallies, StoreError> {
    let mut tallies = SendTallies::default();
    for row in rows {
        let sends = if row.text("day")? == day { count(row.int("sends")?) } else { 0 };
        let tally = SendTally { sends, last_sent: Some(row.int("last_at")?) };
        match row.text("scope")?.as_str() {
            "email" => tallies.email = tally,
            _ => tallies.address = tally,
        }
    }
    Ok(tallies)
}

/// A tally as the increment returned it.
pub(crate) fn counted(row: &impl Columns) -> Result<SendTally, StoreError> {
    Ok(SendTally { sends: count(row.int("sends")?), last_sent: row.opt_int("prev_at")? })
}

pub(crate) fn sign_in(row: &impl Columns) -> Result<SignInRecord, StoreError> {
    Ok(SignInRecord {
        id: row.int("id")?,
        user: id(&row.text("user_id")?, "user id")?,
        day: row.text("day")?.parse::<LocalDay>().map_err(|_| corrupt("sign-in day"))?,
        at: row.int("at_ms")?,
    })
}

pub(crate) fn invite(row: &impl Columns) -> Result<InviteRecord, StoreError> {
    Ok(InviteRecord {
        id: id(&row.text("id")?, "invite id")?,
        hash: hash(&row.text("invite_hash")?, "invite hash")?,
        note: row.opt_text("note")?,
        created_at: row.int("created_at")?,
        expires_at: row.opt_int("expires_at")?,
        used_by: row.opt_text("used_by")?.map(|u| id(&u, "invite user")).transpose()?,
        used_at: row.opt_int("used_at")?,
    })
}

/// Offsets and limits as bound (SQL integers are signed).
pub(crate) fn int(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_search_is_taken_literally_by_like() {
        assert_eq!(like_pattern("Ab"), "%ab%");
        assert_eq!(like_pattern("50%_off\\"), "%50\\%\\_off\\\\%");
    }
}
