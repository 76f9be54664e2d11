//! The admin credential: from the configuration, or generated once and kept only as a hash.

use anyhow::Context;
use pool_core::ports::Store;
use pool_core::secret::{SecretHash, TOKEN_BYTES, format_token, hash_hex, hash_secret, parse_hash_hex};

/// The setting under which a generated admin token's SHA-256 is kept.
const SETTING: &str = "admin_token_sha256";

/// Where the admin credential came from; a generated token is carried out to be printed once.
#[derive(Debug)]
pub enum AdminTokenSource {
    Configured,
    Stored,
    Generated(String),
}

/// The admin token's hash: the configured token's, else the stored one, else a new token's.
pub async fn resolve(store: &dyn Store, configured: Option<&str>) -> anyhow::Result<(SecretHash, AdminTokenSource)> {
    if let Some(token) = configured {
        return Ok((hash_secret(token), AdminTokenSource::Configured));
    }
    if let Some(stored) = store.setting(SETTING).await.context("reading the stored admin token hash")? {
        let hash = parse_hash_hex(&stored)
            .context("the stored admin token hash is corrupt; run `ollama-pool admin reset-token`")?;
        return Ok((hash, AdminTokenSource::Stored));
    }
    let token = reset(store).await?;
    Ok((hash_secret(&token), AdminTokenSource::Generated(token)))
}

/// Generates a new admin token, stores its hash (replacing any), and returns it.
pub async fn reset(store: &dyn Store) -> anyhow::Result<String> {
    let mut random = [0u8; TOKEN_BYTES];
    getrandom::fill(&mut random).context("the OS random source failed")?;
    let token = format!("admin-{}", &format_token(&random)[3..]);
    store.put_setting(SETTING, &hash_hex(&hash_secret(&token))).await.context("storing the admin token hash")?;
    Ok(token)
}
