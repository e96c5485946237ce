//! Property (fuzz) tests of [`parse_json`], the parser of every REST body and WebSocket
//! payload: whatever the text, a value or a VALIDATION_ERROR whose `details.field` names a
//! path that exists in the expected shape.

use proptest::prelude::*;
use serde::Deserialize;

use super::*;
use crate::fuzzing::config;
use crate::v1::client::fuzz_tests::json_value;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)]
struct Shape {
    room_id: crate::Snowflake,
    content: String,
    #[serde(default)]
    settings: Option<Inner>,
    #[serde(default)]
    ids: Vec<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)]
struct Inner {
    is_public: bool,
    max_users: u32,
}

/// Paths a field error may name: fields of `Shape`, `settings.*`, and `ids[n]`, after the
/// indexes of a top-level array (serde reads a struct from an array too, field by field).
fn is_known_path(field: &str) -> bool {
    let field = match field.strip_prefix('[') {
        Some(rest) => match rest.split_once(']') {
            Some((n, rest)) if n.parse::<usize>().is_ok() => {
                // Positional: the rest is a path inside whichever field sits there.
                let rest = rest.trim_start_matches('.');
                return rest.is_empty()
                    || is_known_path(rest)
                    || is_known_path(&format!("settings.{rest}"));
            }
            _ => return false,
        },
        None => field,
    };
    matches!(
        field,
        "roomId" | "content" | "settings" | "ids" | "settings.isPublic" | "settings.maxUsers"
    ) || field
        .strip_prefix("ids[")
        .and_then(|rest| rest.strip_suffix(']'))
        .is_some_and(|n| n.parse::<usize>().is_ok())
}

fn check(text: &str) -> Result<(), TestCaseError> {
    if let Err(e) = parse_json::<Shape>(text) {
        prop_assert_eq!(e.code, ErrorCode::ValidationError);
        prop_assert!(e.message.starts_with("invalid data"));
        if let Some(details) = e.details {
            let field = details["field"].as_str().unwrap_or_default();
            prop_assert!(is_known_path(field), "unknown field path {:?}", field);
        }
    }
    Ok(())
}

fn shaped() -> impl Strategy<Value = String> {
    let inner = proptest::collection::vec(
        (
            proptest::sample::select(vec!["isPublic", "maxUsers", "x"]),
            json_value(),
        ),
        0..3,
    )
    .prop_map(|kv| {
        serde_json::Value::Object(kv.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
    });
    let field = prop_oneof![
        json_value().prop_map(|v| ("roomId", v)),
        json_value().prop_map(|v| ("content", v)),
        json_value().prop_map(|v| ("ids", v)),
        proptest::collection::vec(json_value(), 0..4)
            .prop_map(|v| ("ids", serde_json::Value::Array(v))),
        inner.prop_map(|v| ("settings", v)),
    ];
    proptest::collection::vec(field, 0..5).prop_map(|kv| {
        serde_json::Value::Object(kv.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
            .to_string()
    })
}

proptest! {
    #![proptest_config(config(1024))]

    #[test]
    fn arbitrary_text_parses_or_names_a_real_field(text in "\\PC{0,48}") {
        check(&text)?;
    }

    #[test]
    fn arbitrary_json_parses_or_names_a_real_field(value in json_value()) {
        check(&value.to_string())?;
    }

    #[test]
    fn shaped_json_parses_or_names_a_real_field(text in shaped()) {
        check(&text)?;
    }
}
