//! What both backends share on the way in and out: the statements that read the same on SQLite
//! and PostgreSQL, and the mapping between rows and records.
//!
//! Both backends accept `$n` placeholders, so a statement that needs no dialect-specific function
//! is written once, here. Rows are read through [`Columns`], implemented for any sqlx row that
//! decodes text and integers, so one mapping function serves both backends.

use std::collections::BTreeMap;

use pool_core::UnixMs;
use pool_core::ids::KeyId;
use pool_core::key::{Health, Hold, KeyStatus};
use pool_core::limit::Limits;
use pool_core::pool::{CounterValues, KeyLimits, ModelSet};
use pool_core::ports::{KeyRecord, NewKey, StoreError, TokenRecord};
use pool_core::secret::{Secret, SecretHash, hash_hex, parse_hash_hex};
use sqlx::{ColumnIndex, Decode, Row, Type};

use super::deltas::{bindable, cause_of};

/// Every key, oldest first (ids are UUIDv7).
pub(crate) const SELECT_KEYS: &str = "SELECT id, provider, secret, secret_hash, label, created_at, expires_at, \
     status, status_reason, status_since, status_until, strikes, status_cause, models, models_at, \
     total_requests, success_count, failure_count, last_used_at, last_success_at, last_failure_at, \
     rpm, max_concurrent FROM upstream_keys ORDER BY id";

/// Every client token, oldest first.
pub(crate) const SELECT_TOKENS: &str = "SELECT id, name, prefix, token_hash, providers, \
     created_at, expires_at, request_count, last_used_at, rpm, rpd, tpd, max_concurrent, models \
     FROM client_tokens ORDER BY id";

pub(crate) const INSERT_TOKEN: &str = "INSERT INTO client_tokens (id, name, prefix, token_hash, \
     providers, created_at, expires_at, request_count, last_used_at, rpm, rpd, tpd, max_concurrent, models) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)";

/// The fields an operator edits; the hash and the counters are never written here.
pub(crate) const UPDATE_TOKEN: &str = "UPDATE client_tokens SET name = $2, providers = $3, expires_at = $4, \
     rpm = $5, rpd = $6, tpd = $7, max_concurrent = $8, models = $9 WHERE id = $1";

pub(crate) const UPDATE_KEY: &str = "UPDATE upstream_keys SET label = $2, rpm = $3, max_concurrent = $4 WHERE id = $1";

pub(crate) const DELETE_TOKEN: &str = "DELETE FROM client_tokens WHERE id = $1";

pub(crate) const SELECT_SETTING: &str = "SELECT value FROM settings WHERE name = $1";

pub(crate) const UPSERT_SETTING: &str = "INSERT INTO settings (name, value) VALUES ($1, $2) \
     ON CONFLICT (name) DO UPDATE SET value = excluded.value";

/// Typed reads of named columns, for any sqlx row that decodes text and integers.
pub(crate) trait Columns {
    fn text(&self, name: &str) -> Result<String, StoreError>;
    fn opt_text(&self, name: &str) -> Result<Option<String>, StoreError>;
    fn int(&self, name: &str) -> Result<i64, StoreError>;
    fn opt_int(&self, name: &str) -> Result<Option<i64>, StoreError>;
    fn int32(&self, name: &str) -> Result<i32, StoreError>;
}

impl<R> Columns for R
where
    R: Row,
    for<'n> &'n str: ColumnIndex<R>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> i32: Decode<'r, R::Database> + Type<R::Database>,
{
    fn text(&self, name: &str) -> Result<String, StoreError> {
        self.try_get(name).map_err(|e| undecodable(name, &e))
    }
    fn opt_text(&self, name: &str) -> Result<Option<String>, StoreError> {
        self.try_get(name).map_err(|e| undecodable(name, &e))
    }
    fn int(&self, name: &str) -> Result<i64, StoreError> {
        self.try_get(name).map_err(|e| undecodable(name, &e))
    }
    fn opt_int(&self, name: &str) -> Result<Option<i64>, StoreError> {
        self.try_get(name).map_err(|e| undecodable(name, &e))
    }
    fn int32(&self, name: &str) -> Result<i32, StoreError> {
        self.try_get(name).map_err(|e| undecodable(name, &e))
    }
}

fn undecodable(column: &str, error: &sqlx::Error) -> StoreError {
    StoreError::Corrupt(format!("column {column}: {error}"))
}

/// A row of [`SELECT_KEYS`] as a record.
pub(crate) fn key_record(row: &impl Columns) -> Result<KeyRecord, StoreError> {
    let key = NewKey {
        id: parse_id(&row.text("id")?)?,
        provider: row.text("provider")?,
        secret: Secret::new(row.text("secret")?),
        secret_hash: parse_hash(&row.text("secret_hash")?)?,
        label: row.opt_text("label")?,
        created_at: row.int("created_at")?,
        expires_at: row.opt_int("expires_at")?,
        limits: KeyLimits { rpm: limit(row, "rpm")?, max_concurrent: limit(row, "max_concurrent")? },
    };
    Ok(KeyRecord { key, health: health(row)?, counters: counters(row)?, models: models(row)? })
}

fn counters(row: &impl Columns) -> Result<CounterValues, StoreError> {
    Ok(CounterValues {
        requests: count(row.int("total_requests")?)?,
        successes: count(row.int("success_count")?)?,
        failures: count(row.int("failure_count")?)?,
        last_used: row.opt_int("last_used_at")?,
        last_success: row.opt_int("last_success_at")?,
        last_failure: row.opt_int("last_failure_at")?,
    })
}

/// Reads the status columns: `active` is no hold, whatever the other columns say.
fn health(row: &impl Columns) -> Result<Health, StoreError> {
    let status = row.text("status")?;
    let status =
        KeyStatus::parse(&status).ok_or_else(|| StoreError::Corrupt(format!("unknown key status {status:?}")))?;
    let strikes =
        u32::try_from(row.int32("strikes")?).map_err(|_| StoreError::Corrupt("negative strikes".to_owned()))?;
    let hold = match status {
        KeyStatus::Active => None,
        status => {
            let (cause, probe) = cause_of(row.int32("status_cause")?, status);
            Some(Hold {
                status,
                reason: row.opt_text("status_reason")?.unwrap_or_default(),
                since: row.opt_int("status_since")?.unwrap_or(0),
                until: row.opt_int("status_until")?,
                cause,
                probe,
            })
        }
    };
    Ok(Health { hold, strikes })
}

/// The models column: a JSON array of names, with the time they were discovered.
fn models(row: &impl Columns) -> Result<Option<ModelSet>, StoreError> {
    let Some(json) = row.opt_text("models")? else { return Ok(None) };
    let names =
        serde_json::from_str(&json).map_err(|_| StoreError::Corrupt("models is not a JSON array of names".into()))?;
    Ok(Some(ModelSet { names, discovered_at: row.opt_int("models_at")?.unwrap_or(0) }))
}

/// A row of [`SELECT_TOKENS`] as a record.
pub(crate) fn token_record(row: &impl Columns) -> Result<TokenRecord, StoreError> {
    let hash = row.text("token_hash")?;
    let providers = row.opt_text("providers")?;
    let models = row.opt_text("models")?;
    let limits = Limits {
        rpm: limit(row, "rpm")?,
        rpd: limit(row, "rpd")?,
        tpd: limit(row, "tpd")?,
        max_concurrent: limit(row, "max_concurrent")?,
    };
    Ok(TokenRecord {
        id: parse_id(&row.text("id")?)?,
        name: row.text("name")?,
        prefix: row.text("prefix")?,
        hash: parse_hash(&hash)?,
        providers: providers.as_deref().map(parse_providers).transpose()?,
        created_at: row.int("created_at")?,
        expires_at: row.opt_int("expires_at")?,
        requests: count(row.int("request_count")?)?,
        last_used: row.opt_int("last_used_at")?,
        limits,
        models: models.as_deref().map(parse_names).transpose()?,
    })
}

/// A limit column: NULL for none, else a count that fits its type.
fn limit<T: TryFrom<i64>>(row: &impl Columns, name: &str) -> Result<Option<T>, StoreError> {
    let value = row.opt_int(name)?;
    value.map(|v| T::try_from(v).map_err(|_| StoreError::Corrupt(format!("{name} out of range: {v}")))).transpose()
}

/// A limit as a bind value.
pub(crate) fn limit_column<T: Into<u64>>(limit: Option<T>) -> Option<i64> {
    limit.map(|v| bindable(v.into()))
}

fn parse_names(json: &str) -> Result<Vec<String>, StoreError> {
    serde_json::from_str(json).map_err(|e| StoreError::Corrupt(format!("token models: {e}")))
}

fn parse_hash(hex: &str) -> Result<SecretHash, StoreError> {
    parse_hash_hex(hex).ok_or_else(|| StoreError::Corrupt("a stored hash is not 64 hex digits".to_owned()))
}

fn parse_id<T: std::str::FromStr>(text: &str) -> Result<T, StoreError> {
    text.parse().map_err(|_| StoreError::Corrupt(format!("invalid id {text:?}")))
}

fn parse_providers(json: &str) -> Result<Vec<String>, StoreError> {
    serde_json::from_str(json).map_err(|e| StoreError::Corrupt(format!("token providers: {e}")))
}

fn count(value: i64) -> Result<u64, StoreError> {
    u64::try_from(value).map_err(|_| StoreError::Corrupt(format!("negative counter {value}")))
}

/// The bind values of one key to insert.
pub(crate) struct KeyRow<'a> {
    pub id: String,
    pub provider: &'a str,
    /// The secret as this store keeps it: plaintext, or sealed by an encrypting decorator.
    pub secret: &'a str,
    /// SHA-256 hex of the plaintext secret, from the caller: duplicates are found by
    /// `(provider, secret_hash)`.
    pub secret_hash: String,
    pub label: Option<&'a str>,
    pub created_at: UnixMs,
    pub expires_at: Option<UnixMs>,
    pub rpm: Option<i64>,
    pub max_concurrent: Option<i64>,
}

impl<'a> KeyRow<'a> {
    pub(crate) fn of(key: &'a NewKey) -> Self {
        Self {
            id: key.id.to_string(),
            provider: &key.provider,
            secret: key.secret.expose_secret(),
            secret_hash: hash_hex(&key.secret_hash),
            label: key.label.as_deref(),
            created_at: key.created_at,
            expires_at: key.expires_at,
            rpm: limit_column(key.limits.rpm),
            max_concurrent: limit_column(key.limits.max_concurrent),
        }
    }
}

/// The bind values of a secret replacement: `(id, stored secret)`, each id once (the last given
/// wins), in id order, so a PostgreSQL `UPDATE … FROM` sees every id once and concurrent writers
/// lock rows in the same sequence.
pub(crate) fn secret_rows(secrets: &[(KeyId, Secret)]) -> Vec<(String, &str)> {
    let by_id: BTreeMap<KeyId, &str> = secrets.iter().map(|(id, secret)| (*id, secret.expose_secret())).collect();
    by_id.into_iter().map(|(id, secret)| (id.to_string(), secret)).collect()
}

/// The bind values of one client token to insert.
pub(crate) struct TokenRow {
    pub id: String,
    pub hash: String,
    /// JSON array of provider names; `None` allows every provider.
    pub providers: Option<String>,
    pub requests: i64,
    pub rpm: Option<i64>,
    pub rpd: Option<i64>,
    pub tpd: Option<i64>,
    pub max_concurrent: Option<i64>,
    /// JSON array of model names; `None` allows every model.
    pub models: Option<String>,
}

impl TokenRow {
    pub(crate) fn of(token: &TokenRecord) -> Result<Self, StoreError> {
        let json = |list: Option<&Vec<String>>| {
            list.map(serde_json::to_string).transpose().map_err(|e| StoreError::Backend(Box::new(e)))
        };
        Ok(Self {
            id: token.id.to_string(),
            hash: hash_hex(&token.hash),
            providers: json(token.providers.as_ref())?,
            requests: bindable(token.requests),
            rpm: limit_column(token.limits.rpm),
            rpd: limit_column(token.limits.rpd),
            tpd: limit_column(token.limits.tpd),
            max_concurrent: limit_column(token.limits.max_concurrent),
            models: json(token.models.as_ref())?,
        })
    }
}
