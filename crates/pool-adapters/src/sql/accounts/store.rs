//! [`AccountStore`](pool_core::ports::AccountStore) for both stores, over the statements and
//! row mappers of the parent module. A macro, like the other ports' (see `sql/ports.rs`).

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
