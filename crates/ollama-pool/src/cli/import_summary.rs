//! The outcome of a key import, online or offline, as the CLI prints it.

use std::path::Path;

use anyhow::Context;
use pool_core::import::DuplicateOf;
use serde_json::Value;

use super::output::{Detail, print_details};

/// The outcome of an import, whichever way it went.
#[derive(Debug, Default)]
pub struct Summary {
    pub provider: String,
    /// Entries that were neither blank nor comments.
    pub total: usize,
    pub added: usize,
    pub duplicates: usize,
    pub invalid: usize,
    /// Invalid lines and duplicates, in line order.
    pub details: Vec<Detail>,
}

impl Summary {
    /// Adds one chunk's report, whose lines start after `offset` lines of the file.
    pub(super) fn absorb(&mut self, report: &Value, offset: usize) -> anyhow::Result<()> {
        let number = |field: &str| {
            report[field].as_u64().and_then(|n| usize::try_from(n).ok()).context("unexpected import report")
        };
        self.provider = report["provider"].as_str().unwrap_or_default().to_owned();
        self.total += number("total")?;
        self.added += number("added")?;
        self.duplicates += number("duplicates")?;
        self.invalid += number("invalid")?;
        let details = report["details"].as_array().map(Vec::as_slice).unwrap_or_default();
        self.details.extend(details.iter().map(|d| detail(d, offset)));
        Ok(())
    }

    pub fn print(&self, file: &Path) {
        println!("Imported {} into provider {}:", file.display(), self.provider);
        println!("  total:      {}", self.total);
        println!("  added:      {}", self.added);
        println!("  duplicates: {}", self.duplicates);
        println!("  invalid:    {}", self.invalid);
        print_details("Not added", &self.details);
    }
}

/// One entry of a report's `details` (an invalid line or a duplicate), at its line in the file.
pub(super) fn detail(entry: &Value, offset: usize) -> Detail {
    let line = entry["line"].as_u64().and_then(|n| usize::try_from(n).ok()).unwrap_or(0) + offset;
    let masked = entry["apiKey"].as_str().unwrap_or("…");
    match (entry["error"].as_str(), entry["duplicate"].as_str()) {
        (Some(error), _) if entry["apiKey"].is_string() => Detail { line, reason: format!("{error} ({masked})") },
        (Some(error), _) => Detail { line, reason: error.to_owned() },
        (None, Some("batch")) => duplicate(line, masked, DuplicateOf::Batch),
        (None, _) => duplicate(line, masked, DuplicateOf::Pool),
    }
}

/// A key set aside as a duplicate, shown masked.
pub(super) fn duplicate(line: usize, masked: &str, of: DuplicateOf) -> Detail {
    let reason = match of {
        DuplicateOf::Pool => format!("duplicate: already in the pool ({masked})"),
        DuplicateOf::Batch => format!("duplicate of a key earlier in the file ({masked})"),
    };
    Detail { line, reason }
}
