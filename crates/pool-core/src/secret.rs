//! Secrets: a redacting wrapper, hashing, masking, constant-time comparison and token minting.
//!
//! Client tokens are stored only as SHA-256. A token is looked up by its hash in a map; that
//! lookup is not constant-time, but what it could leak is a property of the hash of a value the
//! attacker already holds, not of any stored secret. Direct comparisons (the admin token) use
//! [`ct_eq`].

use std::fmt;
use std::sync::Arc;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// A secret string that never prints. Reading it is the visible, greppable `expose_secret()`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Arc<str>);

impl Secret {
    pub fn new(value: impl Into<Arc<str>>) -> Self {
        Self(value.into())
    }
    pub fn expose_secret(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

/// SHA-256 of a secret, the only form in which client tokens are stored.
pub type SecretHash = [u8; 32];

pub fn hash_secret(value: &str) -> SecretHash {
    Sha256::digest(value.as_bytes()).into()
}

pub fn hash_hex(hash: &SecretHash) -> String {
    hash.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn parse_hash_hex(hex: &str) -> Option<SecretHash> {
    if hex.len() != 64 || !hex.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

/// Constant-time equality of two secrets (compares their hashes, so lengths leak nothing either).
pub fn ct_eq(a: &str, b: &str) -> bool {
    hash_secret(a).ct_eq(&hash_secret(b)).into()
}

/// Constant-time equality of two stored hashes.
pub fn ct_eq_hash(a: &SecretHash, b: &SecretHash) -> bool {
    a.ct_eq(b).into()
}

/// The form in which an upstream key is shown after import: `sk-a…wxyz`.
///
/// Short keys reveal less: at most a quarter of the characters ever show.
pub fn mask(secret: &str) -> String {
    let chars: Vec<char> = secret.chars().collect();
    let n = chars.len();
    let (head, tail) = match n {
        0..=7 => (0, 0),
        8..=15 => (2, 2),
        _ => (4, 4),
    };
    let head: String = chars[..head].iter().collect();
    let tail: String = chars[n - tail..].iter().collect();
    format!("{head}…{tail}")
}

/// Number of random bytes in a client token (256 bits).
pub const TOKEN_BYTES: usize = 32;

/// Formats random bytes from the OS CSPRNG as a client token: `sk-` and 43 base64url characters.
pub fn format_token(random: &[u8; TOKEN_BYTES]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(3 + 43);
    out.push_str("sk-");
    let mut acc: u32 = 0;
    let mut bits = 0;
    for &byte in random {
        acc = (acc << 8) | u32::from(byte);
        bits += 8;
        while bits >= 6 {
            bits -= 6;
            out.push(char::from(ALPHABET[((acc >> bits) & 63) as usize]));
        }
    }
    if bits > 0 {
        out.push(char::from(ALPHABET[((acc << (6 - bits)) & 63) as usize]));
    }
    out
}

/// The short display prefix kept for a token: enough to recognise it, useless to an attacker.
pub fn token_prefix(token: &str) -> String {
    token.chars().take(9).collect::<String>() + "…"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_sk_and_43_url_safe_characters() {
        let token = format_token(&[0xff; TOKEN_BYTES]);
        assert!(token.starts_with("sk-"));
        assert_eq!(token.len(), 46);
        assert!(token[3..].chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
        assert_ne!(format_token(&[0; TOKEN_BYTES]), token);
    }

    #[test]
    fn masking_never_shows_more_than_eight_characters() {
        assert_eq!(mask("sk-1234567890abcdefXYZ"), "sk-1…fXYZ");
        assert_eq!(mask("abcdefghij"), "ab…ij");
        assert_eq!(mask("short"), "…");
        assert_eq!(mask("ключ-ключ-ключ-ключ"), "ключ…ключ");
    }

    #[test]
    fn debug_of_a_secret_is_redacted() {
        assert_eq!(format!("{:?}", Secret::new("sk-live")), "Secret([redacted])");
    }

    #[test]
    fn constant_time_comparison_agrees_with_equality() {
        assert!(ct_eq("same-token", "same-token"));
        assert!(!ct_eq("same-token", "same-tokeN"));
        assert!(!ct_eq("short", "longer-value"));
    }

    #[test]
    fn hash_hex_round_trips() {
        let h = hash_secret("x");
        assert_eq!(parse_hash_hex(&hash_hex(&h)), Some(h));
        assert_eq!(parse_hash_hex("zz"), None);
    }
}
