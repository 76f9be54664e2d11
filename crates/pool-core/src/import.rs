//! Bulk import of upstream keys: the one parser of every shape an operator pastes, and the rule
//! of what a key and a username may be.
//!
//! The system we replace had two parsers that disagreed (one took the 4th `----` field, the other
//! the last) and advertised `username----key` while rejecting it. Here the key is **always the
//! last** `----` field and the username **always the first**; 2 to 5 fields are understood:
//!
//! ```text
//! sk-bare-key
//! username----sk-key
//! email----password----session----sk-key
//! email----password----session----aid----sk-key
//! {"api_key": "sk-key", "username": "alice"}
//! ```
//!
//! Middle fields (passwords, sessions) are read past and never kept. Blank lines and lines that
//! start with `#` are skipped; every other problem becomes a [`Rejected`] entry with its line.
//!
//! A decision a newcomer would question: a run of more than four dashes is ambiguous (`a-----b`
//! is `a-` + `b` or `a` + `-b`). The key is cut at the **rightmost** separator (keys never start
//! with `-`; sessions may end with one) and the username at the **leftmost** (an email never ends
//! with `-`; a password may start with one).

use std::collections::HashSet;
use std::fmt;

use serde_json::{Map, Value};

use crate::secret::{SecretHash, hash_secret, mask};

/// Longest key accepted, in bytes: it must fit in an HTTP header with room to spare.
pub const MAX_SECRET_BYTES: usize = 4096;
/// Longest username, in characters; labels are data shown on dashboards.
pub const MAX_LABEL_CHARS: usize = 200;
/// Most `----` fields a line may have (`email----password----session----aid----key`).
pub const MAX_FIELDS: usize = 5;
const SEPARATOR: &str = "----";

/// A key found in the input, with the line (or entry) it came from, 1-based.
#[derive(Clone, PartialEq, Eq)]
pub struct ParsedKey {
    pub line: usize,
    pub secret: String,
    pub label: Option<String>,
}

impl fmt::Debug for ParsedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ParsedKey")
            .field("line", &self.line)
            .field("secret", &mask(&self.secret))
            .field("label", &self.label)
            .finish()
    }
}

/// A line (or entry) that holds no usable key, and why, phrased for the operator.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejected {
    pub line: usize,
    pub reason: String,
}

/// Everything found in one import.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Parsed {
    pub keys: Vec<ParsedKey>,
    pub rejected: Vec<Rejected>,
    /// Blank and `#` comment lines: neither keys nor mistakes.
    pub skipped: usize,
}

impl Parsed {
    /// Entries that were neither blank nor comments.
    pub fn total(&self) -> usize {
        self.keys.len() + self.rejected.len()
    }

    fn push(&mut self, line: usize, entry: Entry) {
        match entry {
            Entry::Skip => self.skipped += 1,
            Entry::Key { secret, label } => self.keys.push(ParsedKey { line, secret, label }),
            Entry::Reject(reason) => self.rejected.push(Rejected { line, reason }),
        }
    }
}

/// Why a string is not a usable key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InvalidSecret {
    #[error("API key is empty")]
    Empty,
    #[error("API key is longer than {MAX_SECRET_BYTES} bytes")]
    TooLong,
    #[error("API key may contain only visible ASCII characters (no spaces or control characters)")]
    NotVisibleAscii,
}

/// Why a string is not a usable username.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InvalidLabel {
    #[error("username is longer than {MAX_LABEL_CHARS} characters")]
    TooLong,
    #[error("username contains control characters")]
    ControlCharacters,
}

/// The rule for an upstream key: trimmed, 1 to [`MAX_SECRET_BYTES`] bytes of visible ASCII, since
/// it travels in an `Authorization` header.
pub fn validate_secret(raw: &str) -> Result<&str, InvalidSecret> {
    let secret = raw.trim();
    if secret.is_empty() {
        Err(InvalidSecret::Empty)
    } else if secret.len() > MAX_SECRET_BYTES {
        Err(InvalidSecret::TooLong)
    } else if !secret.bytes().all(|b| b.is_ascii_graphic()) {
        Err(InvalidSecret::NotVisibleAscii)
    } else {
        Ok(secret)
    }
}

/// The rule for a username: trimmed, empty means none, at most [`MAX_LABEL_CHARS`] characters and
/// no control characters. Anything else (markup, quotes) is plain data.
pub fn validate_label(raw: &str) -> Result<Option<String>, InvalidLabel> {
    let label = raw.trim();
    if label.is_empty() {
        Ok(None)
    } else if label.chars().count() > MAX_LABEL_CHARS {
        Err(InvalidLabel::TooLong)
    } else if label.chars().any(char::is_control) {
        Err(InvalidLabel::ControlCharacters)
    } else {
        Ok(Some(label.to_owned()))
    }
}

/// Parses a text file, one entry per line (`\n` or `\r\n`); line numbers start at 1.
pub fn parse_text(content: &str) -> Parsed {
    let mut parsed = Parsed::default();
    for (i, line) in content.lines().enumerate() {
        parsed.push(i + 1, parse_line(line));
    }
    parsed
}

/// Parses a JSON array's entries: a string is read like a line, an object like a JSON line.
/// Entry `i` is reported as line `i + 1`.
pub fn parse_entries(entries: &[Value]) -> Parsed {
    let mut parsed = Parsed::default();
    for (i, entry) in entries.iter().enumerate() {
        let entry = match entry {
            Value::String(line) => parse_line(line),
            Value::Object(object) => parse_object(object),
            other => Entry::Reject(format!("Entry is {}; expected a string or an object", kind(other))),
        };
        parsed.push(i + 1, entry);
    }
    parsed
}

/// What one line holds.
enum Entry {
    Skip,
    Key { secret: String, label: Option<String> },
    Reject(String),
}

fn parse_line(line: &str) -> Entry {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return Entry::Skip;
    }
    if line.starts_with('{') {
        return parse_json_line(line);
    }
    let Some((head, key)) = line.rsplit_once(SEPARATOR) else {
        return key_entry(line, None);
    };
    let fields = head.split(SEPARATOR).count() + 1;
    if fields > MAX_FIELDS {
        return Entry::Reject(format!(
            "Line has {fields} '----' fields; at most {MAX_FIELDS} are understood \
             (email----password----session----aid----key)"
        ));
    }
    let username = head.split_once(SEPARATOR).map_or(head, |(first, _)| first);
    key_entry(key, Some(username))
}

fn parse_json_line(line: &str) -> Entry {
    // Parsed as a `Value`, whose errors name a position and never echo the input back.
    match serde_json::from_str::<Value>(line) {
        Ok(Value::Object(object)) => parse_object(&object),
        Ok(other) => Entry::Reject(format!("Line is JSON {}; expected a JSON object", kind(&other))),
        Err(e) => Entry::Reject(format!("Line starts with '{{' but is not valid JSON ({e})")),
    }
}

fn parse_object(object: &Map<String, Value>) -> Entry {
    let secret = match field(object, &["api_key", "apiKey"]) {
        None => return Entry::Reject("JSON object has no \"api_key\" field".to_owned()),
        Some((_, Value::String(secret))) => secret,
        Some((name, other)) => return not_a_string(name, other),
    };
    let username = match field(object, &["username", "email"]) {
        None => None,
        Some((_, Value::String(username))) => Some(username.as_str()),
        Some((name, other)) => return not_a_string(name, other),
    };
    key_entry(secret, username)
}

/// The first of `names` present with a non-null value, and its name.
fn field<'a>(object: &'a Map<String, Value>, names: &[&'static str]) -> Option<(&'static str, &'a Value)> {
    names.iter().filter_map(|&name| Some((name, object.get(name)?))).find(|(_, value)| !value.is_null())
}

fn not_a_string(name: &str, value: &Value) -> Entry {
    Entry::Reject(format!("\"{name}\" is {}; expected a string", kind(value)))
}

fn key_entry(raw_secret: &str, raw_label: Option<&str>) -> Entry {
    let secret = match validate_secret(raw_secret) {
        Ok(secret) => secret.to_owned(),
        Err(e) => return Entry::Reject(e.to_string()),
    };
    match raw_label.map(validate_label).transpose() {
        Ok(label) => Entry::Key { secret, label: label.flatten() },
        Err(e) => Entry::Reject(e.to_string()),
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Where a key was already present.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DuplicateOf {
    /// In the provider's pool before this import.
    Pool,
    /// Earlier in this import (the first occurrence wins).
    Batch,
}

impl DuplicateOf {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pool => "pool",
            Self::Batch => "batch",
        }
    }
}

/// A key set aside as a duplicate, shown masked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Duplicate {
    pub line: usize,
    pub masked: String,
    pub of: DuplicateOf,
}

/// Parsed keys split into the ones to insert and the ones already present.
#[derive(Debug, Default)]
pub struct Deduped {
    /// Keys to insert, each with its hash, in input order.
    pub fresh: Vec<(ParsedKey, SecretHash)>,
    pub duplicates: Vec<Duplicate>,
}

/// Sets aside keys whose hash is in `in_pool` and repeats within the batch, in one pass.
pub fn dedupe(keys: Vec<ParsedKey>, in_pool: &HashSet<SecretHash>) -> Deduped {
    let mut seen = HashSet::with_capacity(keys.len());
    let mut out = Deduped::default();
    for key in keys {
        let hash = hash_secret(&key.secret);
        let of = if in_pool.contains(&hash) {
            DuplicateOf::Pool
        } else if !seen.insert(hash) {
            DuplicateOf::Batch
        } else {
            out.fresh.push((key, hash));
            continue;
        };
        out.duplicates.push(Duplicate { line: key.line, masked: mask(&key.secret), of });
    }
    out
}

#[cfg(test)]
mod tests;
