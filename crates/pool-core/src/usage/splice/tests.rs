use proptest::prelude::*;
use serde_json::Value;

use super::*;

fn spliced(body: &str) -> String {
    let out = ensure_stream_usage(body.as_bytes()).unwrap_or_default();
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn stream_options_is_added_at_the_end_keeping_the_original_bytes() {
    let body = r#"{ "model":"m", "stream":true, "temperature":1.0 }"#;
    assert_eq!(
        spliced(body),
        r#"{ "model":"m", "stream":true, "temperature":1.0 ,"stream_options":{"include_usage":true}}"#
    );
}

#[test]
fn an_existing_stream_options_gains_the_flag_with_big_numbers_and_order_kept() {
    let body = r#"{"seed": 12345678901234567890123, "model":"m","stream":true,"stream_options":{"x": 1.50},"a":0}"#;
    assert_eq!(
        spliced(body),
        r#"{"seed": 12345678901234567890123, "model":"m","stream":true,"stream_options":{"x": 1.50,"include_usage":true},"a":0}"#
    );
}

#[test]
fn an_empty_stream_options_gains_the_flag_without_a_leading_comma() {
    let body = r#"{"model":"m","stream":true,"stream_options":{}}"#;
    assert_eq!(spliced(body), r#"{"model":"m","stream":true,"stream_options":{"include_usage":true}}"#);
    let spaced = "{\"stream\" : true , \"stream_options\" : {\n \t} }";
    assert_eq!(spliced(spaced), "{\"stream\" : true , \"stream_options\" : {\n \t\"include_usage\":true} }");
}

#[test]
fn include_usage_false_or_null_is_turned_true_in_place() {
    let body = r#"{"stream":true,"stream_options":{ "include_usage" : false ,"y":2},"seed":12345678901234567890123}"#;
    assert_eq!(
        spliced(body),
        r#"{"stream":true,"stream_options":{ "include_usage" : true ,"y":2},"seed":12345678901234567890123}"#
    );
    assert_eq!(
        spliced(r#"{"stream":true,"stream_options":{"include_usage":null}}"#),
        r#"{"stream":true,"stream_options":{"include_usage":true}}"#
    );
}

#[test]
fn a_null_stream_options_is_replaced_not_duplicated() {
    assert_eq!(
        spliced(r#"{"stream":true,"stream_options":null,"n":1}"#),
        r#"{"stream":true,"stream_options":{"include_usage":true},"n":1}"#
    );
}

#[test]
fn escaped_member_names_are_recognised() {
    let body = r#"{"stream":true,"stream\u005foptions":{"include\u005fusage":false}}"#;
    assert_eq!(spliced(body), r#"{"stream":true,"stream\u005foptions":{"include\u005fusage":true}}"#);
    let already = r#"{"stream":true,"stream\u005foptions":{"include_usage":true}}"#;
    assert_eq!(ensure_stream_usage(already.as_bytes()), None);
}

#[test]
fn the_names_inside_strings_are_not_members() {
    let body = r#"{"messages":[{"content":"\"stream_options\":{} }"}],"stream":true}"#;
    assert_eq!(
        spliced(body),
        r#"{"messages":[{"content":"\"stream_options\":{} }"}],"stream":true,"stream_options":{"include_usage":true}}"#
    );
}

#[test]
fn nothing_is_added_when_not_streaming_or_already_asked() {
    for body in [
        r#"{"model":"m"}"#,
        r#"{"model":"m","stream":false}"#,
        r#"{"model":"m","stream":"true"}"#,
        r#"{"model":"m","stream":true,"stream_options":{"include_usage":true}}"#,
        r#"{"model":"m","stream":true,"stream_options":{"x":[1,{}],"include_usage":true}}"#,
    ] {
        assert_eq!(ensure_stream_usage(body.as_bytes()), None, "{body}");
    }
}

#[test]
fn odd_bodies_are_forwarded_untouched() {
    for body in [
        r#"[true,{}]"#,
        r#"{"stream":true,"stream":true}"#,
        r#"{"stream":true,"stream_options":{},"stream_options":{}}"#,
        r#"{"stream":true,"stream_options":{"include_usage":false,"include_usage":false}}"#,
        r#"{"stream":true,"stream_options":[]}"#,
        r#"{"stream":true,"stream_options":"yes"}"#,
        r#"{"stream":true,"stream_options":{"include_usage":1}}"#,
        r#"{"stream":true,"stream_options":{"include_usage":"false"}}"#,
        r#"{"stream":true"#,
        "not json",
        "",
    ] {
        assert_eq!(ensure_stream_usage(body.as_bytes()), None, "{body}");
    }
}

#[test]
fn bytes_serde_skips_unchecked_are_kept_as_sent() {
    // serde does not check the UTF-8 of members it skips; the splice leaves them as they came.
    let out = ensure_stream_usage(b"{\"stream\":true,\"x\":\"\xff\"}").unwrap_or_default();
    assert_eq!(&out[..], b"{\"stream\":true,\"x\":\"\xff\",\"stream_options\":{\"include_usage\":true}}");
}

/// A member name and its value, as JSON text.
fn member() -> impl Strategy<Value = (String, String)> {
    let names = prop::sample::select(vec!["model", "seed", "n", "messages", "x", "include_usage", "é\\\"q"]);
    let values = prop::sample::select(vec![
        "12345678901234567890123",
        "-0.10000000000000000555",
        "\"stream_options\"",
        "[1, {\"a\": null}]",
        "{}",
        "true",
        "\"}\"",
    ]);
    (names, values).prop_map(|(n, v)| (n.to_owned(), v.to_owned()))
}

fn object(members: &[(String, String)], space: &str) -> String {
    let inner: Vec<String> = members.iter().map(|(n, v)| format!("{space}\"{n}\"{space}:{space}{v}{space}")).collect();
    format!("{{{space}{}}}", inner.join(","))
}

/// Members with unique names, so the object is one a client could send.
fn unique(members: Vec<(String, String)>) -> Vec<(String, String)> {
    let mut seen = std::collections::HashSet::new();
    members.into_iter().filter(|(n, _)| seen.insert(n.clone())).collect()
}

proptest! {
    #[test]
    fn the_result_is_the_input_plus_the_flag(
        top in prop::collection::vec(member(), 0..5),
        options in prop::option::of(prop::collection::vec(member(), 0..4)),
        flag in prop::sample::select(vec![None, Some("false"), Some("null")]),
        space in prop::sample::select(vec!["", " ", "\n\t "]),
    ) {
        let mut top: Vec<_> = unique(top).into_iter().filter(|(n, _)| n != "include_usage").collect();
        top.push(("stream".into(), "true".into()));
        if let Some(options) = options {
            let mut options: Vec<_> = unique(options).into_iter().filter(|(n, _)| n != "include_usage").collect();
            if let Some(flag) = flag {
                options.push(("include_usage".into(), flag.into()));
            }
            top.push(("stream_options".into(), object(&options, space)));
        }
        let body = object(&top, space);

        let out = ensure_stream_usage(body.as_bytes());

        let out = out.unwrap_or_default();
        let mut expected: Value = serde_json::from_str(&body).unwrap_or_default();
        if !expected["stream_options"].is_object() {
            expected["stream_options"] = serde_json::json!({});
        }
        expected["stream_options"]["include_usage"] = Value::Bool(true);
        let parsed: Value = serde_json::from_slice(&out).unwrap_or_default();
        prop_assert_eq!(parsed, expected);
        // Only an insertion or one replaced word: the rest of the bytes are the client's.
        let prefix = body.bytes().zip(out.iter()).take_while(|(a, b)| a == *b).count();
        let suffix = body.bytes().rev().zip(out.iter().rev()).take_while(|(a, b)| a == *b).count();
        prop_assert!(prefix + suffix + 5 >= body.len(), "{} -> {}", body, String::from_utf8_lossy(&out));
    }
}
