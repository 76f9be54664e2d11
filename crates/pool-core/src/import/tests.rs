//! The import parser: every format, every rejection, and properties over arbitrary input.

use proptest::prelude::*;
use serde_json::json;

use super::*;

/// The keys found, as (line, secret, label).
fn keys(parsed: &Parsed) -> Vec<(usize, &str, Option<&str>)> {
    parsed.keys.iter().map(|k| (k.line, k.secret.as_str(), k.label.as_deref())).collect()
}

fn rejected(parsed: &Parsed) -> Vec<(usize, &str)> {
    parsed.rejected.iter().map(|r| (r.line, r.reason.as_str())).collect()
}

fn only_reason(line: &str) -> String {
    let parsed = parse_text(line);
    assert!(parsed.keys.is_empty(), "{line:?} gave a key");
    assert_eq!(parsed.rejected.len(), 1, "{line:?}");
    parsed.rejected[0].reason.clone()
}

#[test]
fn a_bare_key_is_a_key_without_username() {
    assert_eq!(keys(&parse_text("sk-abc123")), [(1, "sk-abc123", None)]);
}

#[test]
fn username_then_key_keeps_both() {
    assert_eq!(keys(&parse_text("alice----sk-abc")), [(1, "sk-abc", Some("alice"))]);
}

#[test]
fn the_four_field_format_takes_the_last_field_and_drops_password_and_session() {
    let parsed = parse_text("bob@example.com----hunter2----sess=xyz;aid=1----sk-four");
    assert_eq!(keys(&parsed), [(1, "sk-four", Some("bob@example.com"))]);
    assert!(!format!("{parsed:?}").contains("hunter2"));
}

#[test]
fn the_five_field_format_takes_the_last_field_not_the_aid() {
    let parsed = parse_text("bob@example.com----pw----session----aid-123----sk-five");
    assert_eq!(keys(&parsed), [(1, "sk-five", Some("bob@example.com"))]);
}

#[test]
fn three_fields_are_understood_too() {
    assert_eq!(keys(&parse_text("carol----pw----sk-three")), [(1, "sk-three", Some("carol"))]);
}

#[test]
fn more_than_five_fields_are_rejected_with_the_count() {
    let reason = only_reason("a----b----c----d----e----sk-six");
    assert!(reason.contains("6 '----' fields"), "{reason}");
    assert!(reason.contains("at most 5"), "{reason}");
}

#[test]
fn an_empty_username_means_no_username() {
    assert_eq!(keys(&parse_text("----sk-x")), [(1, "sk-x", None)]);
    assert_eq!(keys(&parse_text("   ----pw----s----sk-y")), [(1, "sk-y", None)]);
}

#[test]
fn fields_are_trimmed() {
    assert_eq!(keys(&parse_text("  alice  ----  sk-abc  ")), [(1, "sk-abc", Some("alice"))]);
}

#[test]
fn blank_and_comment_lines_are_skipped_and_crlf_is_a_line_end() {
    let parsed = parse_text("# exported keys\r\n\r\n  \r\nsk-1\r\n   # indented comment\nsk-2\n");
    assert_eq!(keys(&parsed), [(4, "sk-1", None), (6, "sk-2", None)]);
    assert_eq!(parsed.skipped, 4);
    assert!(parsed.rejected.is_empty());
}

#[test]
fn a_json_object_line_is_read_like_an_object_entry() {
    let text = concat!(
        r#"{"api_key": "sk-j1", "username": "dave"}"#,
        "\n",
        r#"{"apiKey": "sk-j2", "email": "e@x.io", "password": "secret-pw"}"#,
        "\n",
        r#"{"api_key": "sk-j3", "username": null}"#,
    );
    let parsed = parse_text(text);
    assert_eq!(keys(&parsed), [(1, "sk-j1", Some("dave")), (2, "sk-j2", Some("e@x.io")), (3, "sk-j3", None)]);
}

#[test]
fn a_rejected_line_says_why_and_where() {
    let text = ["sk-good", "user----", "has space", "ok----key\u{7f}", "{\"username\": \"x\"}", "{not json"].join("\n");
    let parsed = parse_text(&text);
    assert_eq!(keys(&parsed), [(1, "sk-good", None)]);
    let lines: Vec<usize> = parsed.rejected.iter().map(|r| r.line).collect();
    assert_eq!(lines, [2, 3, 4, 5, 6]);
    assert_eq!(parsed.rejected[0].reason, "API key is empty");
    assert!(parsed.rejected[1].reason.contains("visible ASCII"));
    assert!(parsed.rejected[2].reason.contains("visible ASCII"));
    assert_eq!(parsed.rejected[3].reason, "JSON object has no \"api_key\" field");
    assert!(parsed.rejected[4].reason.starts_with("Line starts with '{' but is not valid JSON"));
}

#[test]
fn a_key_longer_than_the_limit_is_rejected() {
    let long = "k".repeat(MAX_SECRET_BYTES + 1);
    assert_eq!(only_reason(&long), "API key is longer than 4096 bytes");
    assert_eq!(keys(&parse_text(&"k".repeat(MAX_SECRET_BYTES))).len(), 1);
}

#[test]
fn a_bad_username_rejects_the_line() {
    let long = format!("{}----sk-1", "u".repeat(MAX_LABEL_CHARS + 1));
    assert_eq!(only_reason(&long), "username is longer than 200 characters");
    assert_eq!(only_reason("al\u{1b}[31mice----sk-1"), "username contains control characters");
    assert_eq!(only_reason(r#"{"api_key": "sk-1", "username": "a\u0000b"}"#), "username contains control characters");
}

#[test]
fn non_string_json_fields_are_rejected_by_name() {
    assert_eq!(only_reason(r#"{"api_key": 42}"#), "\"api_key\" is a number; expected a string");
    assert_eq!(only_reason(r#"{"api_key": "sk-1", "email": ["x"]}"#), "\"email\" is an array; expected a string");
}

#[test]
fn hostile_usernames_are_plain_data() {
    let label = "<script>alert(1)</script>'; DROP TABLE keys;--";
    assert_eq!(keys(&parse_text(&format!("{label}----sk-1"))), [(1, "sk-1", Some(label))]);
}

#[test]
fn reasons_never_echo_the_input() {
    let text = "secretpw----{\"a\"\nx----secretpw secretpw\n{\"api_key\": [\"secretpw\"]}\n{\"secretpw\n";
    for reason in parse_text(text).rejected {
        assert!(!reason.reason.contains("secretpw"), "{}", reason.reason);
    }
}

#[test]
fn entries_are_strings_or_objects_numbered_from_one() {
    let entries = [
        json!("sk-a"),
        json!("user----sk-b"),
        json!({"api_key": "sk-c", "username": "carol"}),
        json!(""),
        json!(7),
        json!(null),
        json!(["sk-d"]),
        json!({"username": "nobody"}),
    ];
    let parsed = parse_entries(&entries);
    assert_eq!(keys(&parsed), [(1, "sk-a", None), (2, "sk-b", Some("user")), (3, "sk-c", Some("carol"))]);
    assert_eq!(parsed.skipped, 1);
    assert_eq!(
        rejected(&parsed),
        [
            (5, "Entry is a number; expected a string or an object"),
            (6, "Entry is null; expected a string or an object"),
            (7, "Entry is an array; expected a string or an object"),
            (8, "JSON object has no \"api_key\" field"),
        ]
    );
    assert_eq!(parsed.total(), 7);
}

#[test]
fn the_secret_rule_trims_and_bounds() {
    assert_eq!(validate_secret("  sk-1 \t"), Ok("sk-1"));
    assert_eq!(validate_secret("   "), Err(InvalidSecret::Empty));
    assert_eq!(validate_secret("sk 1"), Err(InvalidSecret::NotVisibleAscii));
    assert_eq!(validate_secret("ключ"), Err(InvalidSecret::NotVisibleAscii));
    assert_eq!(validate_secret(&"x".repeat(4097)), Err(InvalidSecret::TooLong));
}

#[test]
fn the_label_rule_trims_and_treats_empty_as_none() {
    assert_eq!(validate_label("  alice "), Ok(Some("alice".to_owned())));
    assert_eq!(validate_label("   "), Ok(None));
    assert_eq!(validate_label(&"é".repeat(200)), Ok(Some("é".repeat(200))));
    assert_eq!(validate_label(&"é".repeat(201)), Err(InvalidLabel::TooLong));
    assert_eq!(validate_label("a\u{85}b"), Err(InvalidLabel::ControlCharacters));
}

#[test]
fn dashes_next_to_a_separator_go_to_the_field_that_can_hold_them() {
    // A session may end with '-' (base64url); a password may start with one.
    assert_eq!(keys(&parse_text("e@x.io----pw----sess-----sk-1")), [(1, "sk-1", Some("e@x.io"))]);
    assert_eq!(keys(&parse_text("e@x.io-----pw----s----sk-1")), [(1, "sk-1", Some("e@x.io"))]);
}

#[test]
fn a_debug_print_masks_the_secret() {
    let parsed = parse_text("alice----sk-0123456789abcdef");
    assert!(!format!("{parsed:?}").contains("0123456789"));
}

#[test]
fn duplicates_in_the_pool_and_in_the_batch_are_set_aside_first_occurrence_wins() {
    let parsed = parse_text("sk-pool-0000000000\nsk-new-1\nsk-new-2\nsk-new-1\nsk-pool-0000000000");
    let in_pool = HashSet::from([hash_secret("sk-pool-0000000000")]);
    let deduped = dedupe(parsed.keys, &in_pool);
    let fresh: Vec<(usize, &str)> = deduped.fresh.iter().map(|(k, _)| (k.line, k.secret.as_str())).collect();
    assert_eq!(fresh, [(2, "sk-new-1"), (3, "sk-new-2")]);
    assert_eq!(deduped.fresh[0].1, hash_secret("sk-new-1"));
    let dups: Vec<(usize, &str, DuplicateOf)> =
        deduped.duplicates.iter().map(|d| (d.line, d.masked.as_str(), d.of)).collect();
    assert_eq!(
        dups,
        [(1, "sk-p…0000", DuplicateOf::Pool), (4, "sk…-1", DuplicateOf::Batch), (5, "sk-p…0000", DuplicateOf::Pool)]
    );
}

/// A key as the parser accepts it at the end of a line: visible ASCII, no `----`, and not
/// starting with `-` (which would merge into the separator before it).
fn valid_key() -> impl Strategy<Value = String> {
    "[!-,.-~][!-~]{0,40}".prop_filter("no separator inside", |k| !k.contains(SEPARATOR))
}

/// A username that can open a line: valid, no `----`, not ending with `-`, and not starting with
/// `#` (a comment) or `{` (a JSON line).
fn valid_label() -> impl Strategy<Value = String> {
    prop_oneof!["[ -~]{0,30}", "\\PC{0,30}"].prop_filter("opens a line", |u| {
        let start = u.trim_start();
        validate_label(u).is_ok()
            && !u.contains(SEPARATOR)
            && !u.ends_with('-')
            && !start.starts_with('#')
            && !start.starts_with('{')
    })
}

/// A password, session or aid: anything on one line without `----`, not starting or ending with
/// `-` (which would merge with a neighbouring separator).
fn middle_field() -> impl Strategy<Value = String> {
    prop_oneof![Just(String::new()), "[^\n-]", "[^\n-][^\n]{0,30}[^\n-]"]
        .prop_filter("no separator inside", |m| !m.contains(SEPARATOR))
}

/// Text that hits the parser's branches often: separators, braces, comments, line ends.
fn line_soup() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("----".to_owned()),
        Just("-".to_owned()),
        Just("\n".to_owned()),
        Just("\r\n".to_owned()),
        Just("{".to_owned()),
        Just("}".to_owned()),
        Just("#".to_owned()),
        Just(" ".to_owned()),
        Just("\"api_key\":\"k\"".to_owned()),
        any::<char>().prop_map(String::from),
        "[a-z0-9]{1,6}",
    ];
    prop::collection::vec(piece, 0..60).prop_map(|pieces| pieces.concat())
}

fn expected_label(u: &str) -> Option<String> {
    validate_label(u).unwrap_or_else(|e| panic!("strategy gave an invalid label: {e}"))
}

proptest! {
    #[test]
    fn parsing_never_panics(text in any::<String>(), soup in line_soup()) {
        parse_text(&text);
        parse_text(&soup);
        parse_entries(&[json!(text), json!(soup)]);
    }

    #[test]
    fn username_and_key_come_back_exactly(u in valid_label(), k in valid_key()) {
        let parsed = parse_text(&format!("{u}----{k}"));
        prop_assert!(parsed.rejected.is_empty(), "{:?}", parsed.rejected);
        let label = expected_label(&u);
        prop_assert_eq!(keys(&parsed), vec![(1, k.as_str(), label.as_deref())]);
    }

    #[test]
    fn the_four_and_five_field_forms_give_first_and_last(
        u in valid_label(),
        k in valid_key(),
        middle in prop::collection::vec(middle_field(), 2..=3),
    ) {
        let line = format!("{u}----{}----{k}", middle.join("----"));
        let parsed = parse_text(&line);
        prop_assert!(parsed.rejected.is_empty(), "{:?}", parsed.rejected);
        let label = expected_label(&u);
        prop_assert_eq!(keys(&parsed), vec![(1, k.as_str(), label.as_deref())]);
    }

    #[test]
    fn every_line_that_is_not_skipped_is_a_key_or_a_rejection(text in prop_oneof![any::<String>(), line_soup()]) {
        let parsed = parse_text(&text);
        let expected: Vec<usize> = text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty() && !l.trim().starts_with('#'))
            .map(|(i, _)| i + 1)
            .collect();
        let mut found: Vec<usize> = parsed.keys.iter().map(|k| k.line).chain(parsed.rejected.iter().map(|r| r.line)).collect();
        found.sort_unstable();
        prop_assert_eq!(found, expected);
        prop_assert_eq!(parsed.total() + parsed.skipped, text.lines().count());
    }
}
