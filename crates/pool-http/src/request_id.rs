//! Request ids: every response carries `x-request-id`, and every log line written while a request
//! is handled carries the same id in the request's span ([`crate::edge`]).
//!
//! A client's own `x-request-id` is kept when it is 1-64 characters of `[A-Za-z0-9._-]`, so a
//! caller can follow its request through our logs; anything else (too long, spaces, control or
//! non-ASCII bytes, an attempt to forge log fields) is replaced, so what reaches a log line or a
//! header is always this safe alphabet. A new id is 32 hex digits: 64 bits drawn once per process
//! from the OS random source, then a per-process counter passed through a bijective mix, so ids
//! never repeat within a process, practically never across processes, and do not reveal how
//! many requests the gateway served. (Drawing 128 random bits per request cost a system call
//! each time, about 2 % of the gateway's CPU.)

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use axum::http::{HeaderMap, HeaderName, HeaderValue};

pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Longest client-chosen id kept.
pub const MAX_LEN: usize = 64;

/// The request's id: the client's when it is sane, a new one otherwise.
pub fn settle(headers: &HeaderMap) -> HeaderValue {
    headers.get(&X_REQUEST_ID).filter(|v| is_sane(v.as_bytes())).cloned().unwrap_or_else(generate)
}

/// Whether a client's id may be kept as it is.
pub fn is_sane(id: &[u8]) -> bool {
    (1..=MAX_LEN).contains(&id.len()) && id.iter().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(b))
}

fn generate() -> HeaderValue {
    static SEED: OnceLock<[u64; 2]> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let [prefix, key] = *SEED.get_or_init(seed);
    let n = COUNTER.fetch_add(1, Relaxed);
    let mut hex = [0u8; 32];
    put_hex(&mut hex[..16], prefix);
    put_hex(&mut hex[16..], mix(n ^ key));
    HeaderValue::from_bytes(&hex).unwrap_or_else(|_| HeaderValue::from_static("0"))
}

/// The process's id prefix and counter key, from the OS random source; without one (it does
/// not fail on any supported platform) the start time and process id still set processes apart.
fn seed() -> [u64; 2] {
    let mut bytes = [0u8; 16];
    if getrandom::fill(&mut bytes).is_err() {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        bytes = (nanos ^ (u128::from(std::process::id()) << 96)).to_be_bytes();
    }
    let both = u128::from_be_bytes(bytes);
    [(both >> 64) as u64, both as u64]
}

/// splitmix64's finalizer: a bijection on `u64`, so distinct counters give distinct ids.
fn mix(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

fn put_hex(out: &mut [u8], value: u64) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for (i, slot) in out.iter_mut().enumerate() {
        *slot = DIGITS[((value >> (60 - 4 * i)) & 0xf) as usize];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_short_ids_of_the_safe_alphabet_are_kept() {
        for good in ["a", "req-1.2_3", "0123456789abcdef0123456789abcdef", &"x".repeat(MAX_LEN)] {
            assert!(is_sane(good.as_bytes()), "{good}");
        }
        for bad in ["", "with space", "a\"b", "line\nbreak", "{\"json\":1}", "ünï", &"x".repeat(MAX_LEN + 1)] {
            assert!(!is_sane(bad.as_bytes()), "{bad}");
        }
    }

    #[test]
    fn generated_ids_are_32_hex_digits_and_differ() {
        let (a, b) = (generate(), generate());
        assert_ne!(a, b);
        for id in [a, b] {
            assert!(id.len() == 32 && id.as_bytes().iter().all(u8::is_ascii_hexdigit), "{id:?}");
            assert!(is_sane(id.as_bytes()));
        }
    }

    #[test]
    fn the_counter_mix_is_a_bijection_on_a_sample() {
        let mixed: std::collections::HashSet<u64> = (0..100_000u64).map(mix).collect();
        assert_eq!(mixed.len(), 100_000);
        let mut hex = [0u8; 16];
        put_hex(&mut hex, 0x0123_4567_89ab_cdef);
        assert_eq!(&hex, b"0123456789abcdef");
    }
}
