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

macro_rules! impl_account_store {
    ($store:ty) => {
        #[async_trait::async_trait]
        impl pool_core::ports::AccountStore for $store {
            async fn insert_user(&self, u: &pool_core::account::UserRecord) -> Result<(), StoreError> {
                sqlx::query($crate::sql::accounts::INSERT_USER)
                    .bind(u.id.to_string())
                    .bind(u.email.as_ref())
                    .bind(u.password_hash.as_ref().map(|h| h.expose_secret()))
                    .bind(u.status.as_str())
                    .bind(u.created_at)
                    .bind(u.last_login)
                    .bind(u.token.to_string())
                    .bind(u.name.as_deref())
                    .execute(&self.pool)
                    .await
                    .map(drop)
                    .map_err(db_error)
            }

            async fn user_by_id(
                &self,
                id: pool_core::ids::UserId,
            ) -> Result<Option<pool_core::account::UserRecord>, StoreError> {
                let sql = $crate::sql::accounts::user_by("id");
                let found = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(id.to_string()).fetch_optional(&self.pool).await;
                found.map_err(db_error)?.as_ref().map($crate::sql::accounts::user).transpose()
            }

            async fn user_by_email(
                &self,
                email: &pool_core::account::Email,
            ) -> Result<Option<pool_core::account::UserRecord>, StoreError> {
                let sql = $crate::sql::accounts::user_by("email");
                let found = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(email.as_ref()).fetch_optional(&self.pool).await;
                found.map_err(db_error)?.as_ref().map($crate::sql::accounts::user).transpose()
            }

            async fn user_page(
                &self,
                q: &pool_core::account::UserQuery,
            ) -> Result<pool_core::account::UserPage, StoreError> {
                let pattern = q.search.as_deref().map($crate::sql::accounts::like_pattern);
                let status = q.status.map(|s| s.as_str());
                let limit = i64::from(q.limit.clamp(1, pool_core::account::MAX_USER_PAGE));
                let rows = sqlx::query(sqlx::AssertSqlSafe($crate::sql::accounts::user_page()))
                    .bind(pattern.as_deref())
                    .bind(status)
                    .bind(limit)
                    .bind($crate::sql::accounts::int(q.offset))
                    .fetch_all(&self.pool)
                    .await
                    .map_err(db_error)?;
                let total: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe($crate::sql::accounts::user_count()))
                    .bind(pattern.as_deref())
                    .bind(status)
                    .fetch_one(&self.pool)
                    .await
                    .map_err(db_error)?;
                let users = rows.iter().map($crate::sql::accounts::user).collect::<Result<Vec<_>, StoreError>>()?;
                Ok(pool_core::account::UserPage { users, total: u64::try_from(total).unwrap_or(0) })
            }

            async fn set_user_status(
                &self,
                id: pool_core::ids::UserId,
                status: pool_core::account::UserStatus,
            ) -> Result<bool, StoreError> {
                let q = sqlx::query($crate::sql::accounts::SET_STATUS).bind(id.to_string()).bind(status.as_str());
                Ok(q.execute(&self.pool).await.map_err(db_error)?.rows_affected() > 0)
            }

            async fn set_user_password(
                &self,
                id: pool_core::ids::UserId,
                hash: Option<&pool_core::account::PasswordHash>,
            ) -> Result<bool, StoreError> {
                let q = sqlx::query($crate::sql::accounts::SET_PASSWORD)
                    .bind(id.to_string())
                    .bind(hash.map(|h| h.expose_secret()));
                Ok(q.execute(&self.pool).await.map_err(db_error)?.rows_affected() > 0)
            }

            async fn set_user_name(&self, id: pool_core::ids::UserId, name: Option<&str>) -> Result<bool, StoreError> {
                let q = sqlx::query($crate::sql::accounts::SET_NAME).bind(id.to_string()).bind(name);
                Ok(q.execute(&self.pool).await.map_err(db_error)?.rows_affected() > 0)
            }

            async fn set_last_login(&self, id: pool_core::ids::UserId, at: UnixMs) -> Result<bool, StoreError> {
                let q = sqlx::query($crate::sql::accounts::SET_LAST_LOGIN).bind(id.to_string()).bind(at);
                Ok(q.execute(&self.pool).await.map_err(db_error)?.rows_affected() > 0)
            }

            async fn delete_user(&self, id: pool_core::ids::UserId) -> Result<bool, StoreError> {
                let id = id.to_string();
                let mut tx = self.begin_write().await?;
                let token: Option<String> = sqlx::query_scalar($crate::sql::accounts::USER_TOKEN)
                    .bind(&id)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(db_error)?;
                let Some(token) = token else { return Ok(false) };
                for sql in [$crate::sql::accounts::DELETE_SIGN_INS, $crate::sql::accounts::DELETE_USER] {
                    sqlx::query(sql).bind(&id).execute(&mut *tx).await.map_err(db_error)?;
                }
                sqlx::query($crate::sql::accounts::DELETE_TOKEN)
                    .bind(token)
                    .execute(&mut *tx)
                    .await
                    .map_err(db_error)?;
                tx.commit().await.map_err(db_error)?;
                Ok(true)
            }

            async fn put_code(&self, c: &pool_core::account::CodeRecord) -> Result<(), StoreError> {
                sqlx::query($crate::sql::accounts::PUT_CODE)
                    .bind(c.email.as_ref())
                    .bind(c.purpose.as_str())
                    .bind(pool_core::secret::hash_hex(&c.hash))
                    .bind(c.created_at)
                    .bind(c.expires_at)
                    .bind(i64::from(c.tries))
                    .execute(&self.pool)
                    .await
                    .map(drop)
                    .map_err(db_error)
            }

            async fn take_code_try(
                &self,
                email: &pool_core::account::Email,
                purpose: pool_core::account::CodePurpose,
            ) -> Result<Option<pool_core::account::CodeRecord>, StoreError> {
                let found = sqlx::query($crate::sql::accounts::TAKE_TRY)
                    .bind(email.as_ref())
                    .bind(purpose.as_str())
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(db_error)?;
                found.as_ref().map($crate::sql::accounts::code).transpose()
            }

            async fn consume_code(
                &self,
                email: &pool_core::account::Email,
                purpose: pool_core::account::CodePurpose,
                hash: &pool_core::secret::SecretHash,
            ) -> Result<bool, StoreError> {
                let done = sqlx::query($crate::sql::accounts::CONSUME_CODE)
                    .bind(email.as_ref())
                    .bind(purpose.as_str())
                    .bind(pool_core::secret::hash_hex(hash))
                    .execute(&self.pool)
                    .await;
                Ok(done.map_err(db_error)?.rows_affected() > 0)
            }

            async fn code_sends(
                &self,
                email: &pool_core::account::Email,
                address: &str,
                day: pool_core::account::LocalDay,
            ) -> Result<pool_core::account::SendTallies, StoreError> {
                let rows = sqlx::query($crate::sql::accounts::SENDS)
                    .bind(email.as_ref())
                    .bind(address)
                    .fetch_all(&self.pool)
                    .await
                    .map_err(db_error)?;
                $crate::sql::accounts::tallies(&rows, &day.to_string())
            }

            async fn count_code_send(
                &self,
                email: &pool_core::account::Email,
                address: &str,
                day: pool_core::account::LocalDay,
                at: UnixMs,
            ) -> Result<pool_core::account::SendTallies, StoreError> {
                let day = day.to_string();
                let mut tx = self.begin_write().await?;
                let mut counted = [pool_core::account::SendTally::default(); 2];
                for (slot, (scope, subject)) in
                    counted.iter_mut().zip([("email", email.as_ref()), ("address", address)])
                {
                    let row = sqlx::query($crate::sql::accounts::COUNT_SEND)
                        .bind(scope)
                        .bind(subject)
                        .bind(&day)
                        .bind(at)
                        .fetch_one(&mut *tx)
                        .await
                        .map_err(db_error)?;
                    *slot = $crate::sql::accounts::counted(&row)?;
                }
                tx.commit().await.map_err(db_error)?;
                Ok(pool_core::account::SendTallies { email: counted[0], address: counted[1] })
            }

            async fn sign_in(
                &self,
                user: pool_core::ids::UserId,
                day: pool_core::account::LocalDay,
                at: UnixMs,
                new_expiry: UnixMs,
            ) -> Result<Option<pool_core::account::SignInRecord>, StoreError> {
                let user_id = user.to_string();
                let mut tx = self.begin_write().await?;
                let id: Option<i64> = sqlx::query_scalar($crate::sql::accounts::INSERT_SIGN_IN)
                    .bind(&user_id)
                    .bind(day.to_string())
                    .bind(at)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(db_error)?;
                let Some(id) = id else { return Ok(None) };
                sqlx::query($crate::sql::accounts::SET_TOKEN_EXPIRY)
                    .bind(&user_id)
                    .bind(new_expiry)
                    .execute(&mut *tx)
                    .await
                    .map_err(db_error)?;
                tx.commit().await.map_err(db_error)?;
                Ok(Some(pool_core::account::SignInRecord { id, user, day, at }))
            }

            async fn sign_in_page(
                &self,
                user: pool_core::ids::UserId,
                offset: u64,
                limit: u32,
            ) -> Result<pool_core::account::SignInPage, StoreError> {
                let user = user.to_string();
                let rows = sqlx::query($crate::sql::accounts::SIGN_IN_PAGE)
                    .bind(&user)
                    .bind(i64::from(limit.clamp(1, pool_core::account::MAX_SIGN_IN_PAGE)))
                    .bind($crate::sql::accounts::int(offset))
                    .fetch_all(&self.pool)
                    .await
                    .map_err(db_error)?;
                let total: i64 = sqlx::query_scalar($crate::sql::accounts::SIGN_IN_COUNT)
                    .bind(&user)
                    .fetch_one(&self.pool)
                    .await
                    .map_err(db_error)?;
                let items = rows.iter().map($crate::sql::accounts::sign_in).collect::<Result<Vec<_>, StoreError>>()?;
                Ok(pool_core::account::SignInPage { items, total: u64::try_from(total).unwrap_or(0) })
            }

            async fn insert_invite(&self, i: &pool_core::account::InviteRecord) -> Result<(), StoreError> {
                sqlx::query($crate::sql::accounts::INSERT_INVITE)
                    .bind(i.id.to_string())
                    .bind(pool_core::secret::hash_hex(&i.hash))
                    .bind(i.note.as_deref())
                    .bind(i.created_at)
                    .bind(i.expires_at)
                    .bind(i.used_by.map(|u| u.to_string()))
                    .bind(i.used_at)
                    .execute(&self.pool)
                    .await
                    .map(drop)
                    .map_err(db_error)
            }

            async fn use_invite(
                &self,
                hash: &pool_core::secret::SecretHash,
                user: pool_core::ids::UserId,
                at: UnixMs,
            ) -> Result<bool, StoreError> {
                let done = sqlx::query($crate::sql::accounts::USE_INVITE)
                    .bind(pool_core::secret::hash_hex(hash))
                    .bind(user.to_string())
                    .bind(at)
                    .execute(&self.pool)
                    .await;
                Ok(done.map_err(db_error)?.rows_affected() > 0)
            }

            async fn list_invites(&self) -> Result<Vec<pool_core::account::InviteRecord>, StoreError> {
                let rows = sqlx::query($crate::sql::accounts::INVITES).fetch_all(&self.pool).await.map_err(db_error)?;
                rows.iter().map($crate::sql::accounts::invite).collect()
            }
        }
    };
}

pub(crate) use impl_account_store;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_search_is_taken_literally_by_like() {
        assert_eq!(like_pattern("Ab"), "%ab%");
        assert_eq!(like_pattern("50%_off\\"), "%50\\%\\_off\\\\%");
    }
}
