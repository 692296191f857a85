//! How keys and values travel as JSON (export, import, txn, `--json` output).
//!
//! A byte string that is valid UTF-8 is a JSON string; any other is an object
//! `{"base64": "..."}` (standard alphabet, padded). Both forms are accepted on input. This keeps
//! text readable and every byte sequence exact, and does not depend on walstore's on-disk
//! format version.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde_json::{json, Value as Json};

/// Encodes bytes as a JSON string or a `{"base64": ...}` object.
pub fn to_json(bytes: &[u8]) -> Json {
    match std::str::from_utf8(bytes) {
        Ok(s) => Json::String(s.to_owned()),
        Err(_) => json!({ "base64": STANDARD.encode(bytes) }),
    }
}

/// Decodes a JSON string or `{"base64": ...}` object into bytes.
pub fn from_json(value: &Json) -> Result<Vec<u8>, String> {
    match value {
        Json::String(s) => Ok(s.as_bytes().to_vec()),
        Json::Object(map) => match (map.get("base64"), map.len()) {
            (Some(Json::String(b64)), 1) => STANDARD
                .decode(b64)
                .map_err(|e| format!("invalid base64: {e}")),
            _ => Err("expected a string or an object {\"base64\": \"...\"}".into()),
        },
        _ => Err("expected a string or an object {\"base64\": \"...\"}".into()),
    }
}

/// A path in JSON output, as [`to_json`] encodes its bytes (never through `serde`, whose
/// encoding of a path that is not UTF-8 fails).
pub fn path_to_json(path: &std::path::Path) -> Json {
    to_json(&crate::args::arg_bytes(path.as_os_str()))
}

/// Bytes shown on a terminal: UTF-8 without control characters as it is, anything else
/// escaped (`\xNN`, `\t`, `\n`), so one key or value never spans two lines or columns.
/// For humans only: the exact form is the JSON one.
pub fn display(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(s) if !s.chars().any(char::is_control) => s.to_owned(),
        _ => bytes.escape_ascii().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_and_binary_round_trip() {
        for bytes in [&b"plain text"[..], &[0xff, 0x00, 0x80], &[], "é".as_bytes()] {
            assert_eq!(from_json(&to_json(bytes)).expect("decode"), bytes);
        }
        assert_eq!(to_json(&[0xff]), json!({"base64": "/w=="}));
        assert!(from_json(&json!(5)).is_err());
        assert!(from_json(&json!({"base64": "!!"})).is_err());
        assert!(from_json(&json!({"base64": "AA==", "extra": 1})).is_err());
    }

    #[test]
    fn display_keeps_one_entry_on_one_line_and_in_one_column() {
        assert_eq!(display("café".as_bytes()), "café");
        assert_eq!(display(b"a\tb\nc"), "a\\tb\\nc");
        assert_eq!(display(&[b'k', 0xff]), "k\\xff");
    }
}
