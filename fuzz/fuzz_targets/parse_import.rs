//! Fuzzes the key-import parser: any text must parse without panicking, every line that is not
//! skipped must come back as a key or a rejection, and every key must obey the key rule.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pool_core::import::{parse_text, validate_secret};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let parsed = parse_text(&text);
    assert_eq!(parsed.total() + parsed.skipped, text.lines().count());
    for key in &parsed.keys {
        assert_eq!(validate_secret(&key.secret), Ok(key.secret.as_str()));
    }
});
