//! What the commands print: plain tables, times, problem lines, and the progress bar.
//!
//! Results go to stdout; the progress bar goes to stderr and draws nothing when stderr is not a
//! terminal, so piped or captured output holds only the results.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::Value;

/// Most problem lines printed after an import; the counts always cover all of them.
pub const MAX_DETAILS: usize = 20;

/// A progress bar over `len` items of `unit`, on stderr.
pub fn progress(len: usize, unit: &str) -> ProgressBar {
    let template = format!("{{bar:40}} {{pos}}/{{len}} {unit} ({{elapsed}}, {{eta}} left)");
    let style = ProgressStyle::with_template(&template).unwrap_or_else(|_| ProgressStyle::default_bar());
    ProgressBar::with_draw_target(Some(count(len)), ProgressDrawTarget::stderr()).with_style(style)
}

pub fn count(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

/// A problem found at a line of the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Detail {
    pub line: usize,
    pub reason: String,
}

/// Prints the first [`MAX_DETAILS`] problems in line order, then how many more there are.
pub fn print_details(heading: &str, details: &[Detail]) {
    if details.is_empty() {
        return;
    }
    println!("{heading}:");
    for detail in details.iter().take(MAX_DETAILS) {
        println!("  line {}: {}", detail.line, detail.reason);
    }
    if details.len() > MAX_DETAILS {
        println!("  … and {} more", details.len() - MAX_DETAILS);
    }
}

/// Rows under a header, each column as wide as its widest cell.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let header: Vec<String> = header.iter().map(|h| (*h).to_owned()).collect();
    std::iter::once(&header).chain(rows).map(|row| line(&widths, row) + "\n").collect()
}

fn line(widths: &[usize], row: &[String]) -> String {
    let cells: Vec<String> = row.iter().zip(widths).map(|(cell, &width)| format!("{cell:<width$}")).collect();
    cells.join("  ").trim_end().to_owned()
}

/// At most `max` characters, with `…` where it was cut.
pub fn clip(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut clipped: String = text.chars().take(max.saturating_sub(1)).collect();
    clipped.push('…');
    clipped
}

/// A string or number as text; `-` for null or absent.
pub fn text(value: &Value) -> String {
    match value {
        Value::Null => "-".to_owned(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// An RFC 3339 time as `YYYY-MM-DD HH:MM:SS` (UTC); `empty` for null.
pub fn when(value: &Value, empty: &str) -> String {
    match value.as_str() {
        Some(at) => at.get(..19).unwrap_or(at).replacen('T', " ", 1),
        None => empty.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_table_aligns_its_columns_to_the_widest_cell() {
        let rows = vec![vec!["a".to_owned(), "1".to_owned()], vec!["long name".to_owned(), "22".to_owned()]];
        assert_eq!(table(&["NAME", "N"], &rows), "NAME       N\na          1\nlong name  22\n");
    }

    #[test]
    fn long_text_is_clipped_with_an_ellipsis() {
        assert_eq!(clip("abcdef", 4), "abc…");
        assert_eq!(clip("abc", 4), "abc");
    }

    #[test]
    fn times_are_shown_to_the_second_and_null_as_given() {
        assert_eq!(when(&json!("2026-01-02T03:04:05.678Z"), "-"), "2026-01-02 03:04:05");
        assert_eq!(when(&Value::Null, "never"), "never");
    }
}
