//! `txn`: operations read as JSON Lines from stdin, applied in one write transaction or not
//! at all. The whole input is parsed before the store is opened, so a malformed line never
//! holds the writer lock and never applies anything.
//!
//! Grammar (one object per line; keys and values as in [`crate::encoding`]):
//! `{"op":"put","key":K,"value":V}`, `{"op":"put","key":K,"json":J}` (J stored as a typed
//! value, docs/VALUES.md), `{"op":"delete","key":K}`,
//! `{"op":"expect","key":K,"value":V}` (the key holds exactly the bytes V),
//! `{"op":"expect","key":K,"json":J}` (the key holds a typed value equal to J) and
//! `{"op":"expect","key":K,"absent":true}` (the key is missing).

use super::{read_stdin_lines, Context};
use crate::encoding::{display, from_json, to_json};
use crate::exit::{Exit, Failure};
use crate::output::{refuse, report, Outcome};
use serde_json::{json, Value as Json};
use std::path::Path;

/// One operation of `txn`'s input.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Op {
    Put(Vec<u8>, Vec<u8>),
    Delete(Vec<u8>),
    /// A guard on the key.
    Expect(Vec<u8>, Expected),
}

/// What an `expect` requires of its key.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Expected {
    /// Exactly these bytes.
    Bytes(Vec<u8>),
    /// A typed value equal to this JSON (maps compare regardless of key order).
    Json(Json),
    /// No value.
    Absent,
}

impl Expected {
    fn holds(&self, current: Option<&[u8]>) -> bool {
        match (self, current) {
            (Expected::Absent, None) => true,
            (Expected::Bytes(expected), Some(bytes)) => expected[..] == *bytes,
            (Expected::Json(expected), Some(bytes)) => {
                walstore::typed::decode::<Json>(bytes).is_ok_and(|v| v == *expected)
            }
            _ => false,
        }
    }
}

/// Which of `value` (bytes) and `json` (typed) a `put` or `expect` line has: exactly one.
fn value_member(value: &Json) -> Result<Option<(&'static str, &Json)>, String> {
    match (value.get("value"), value.get("json")) {
        (Some(v), None) => Ok(Some(("value", v))),
        (None, Some(j)) => Ok(Some(("json", j))),
        (None, None) => Ok(None),
        (Some(_), Some(_)) => {
            Err("give either \"value\" (bytes) or \"json\" (typed), not both".into())
        }
    }
}

pub(crate) fn parse_op(line_no: usize, line: &str) -> Result<Op, Failure> {
    let bad = |why: String| Failure::usage(format!("stdin line {line_no}: {why}"));
    let value: Json = serde_json::from_str(line).map_err(|e| bad(format!("not JSON: {e}")))?;
    if !value.is_object() {
        return Err(bad("expected an object like {\"op\":\"put\",...}".into()));
    }
    let key = || -> Result<Vec<u8>, Failure> {
        let v = value
            .get("key")
            .ok_or_else(|| bad("missing \"key\"".into()))?;
        from_json(v).map_err(|e| bad(format!("\"key\": {e}")))
    };
    let member = value_member(&value).map_err(bad)?;
    match (value.get("op").and_then(Json::as_str), member) {
        (Some("put"), Some(("value", v))) => {
            let bytes = from_json(v).map_err(|e| bad(format!("\"value\": {e}")))?;
            Ok(Op::Put(key()?, bytes))
        }
        (Some("put"), Some((_, j))) => Ok(Op::Put(key()?, walstore::typed::encode(j)?)),
        (Some("put"), None) => Err(bad("missing \"value\" (or \"json\")".into())),
        (Some("delete"), _) => Ok(Op::Delete(key()?)),
        (Some("expect"), member) => Ok(Op::Expect(
            key()?,
            parse_expected(&value, member).map_err(bad)?,
        )),
        _ => Err(bad(
            "\"op\" must be \"put\", \"delete\" or \"expect\"".into()
        )),
    }
}

fn parse_expected(line: &Json, member: Option<(&str, &Json)>) -> Result<Expected, String> {
    match (line.get("absent"), member) {
        (Some(Json::Bool(true)), None) => Ok(Expected::Absent),
        (None | Some(Json::Bool(false)), Some(("value", v))) => from_json(v)
            .map(Expected::Bytes)
            .map_err(|e| format!("\"value\": {e}")),
        (None | Some(Json::Bool(false)), Some((_, j))) => Ok(Expected::Json(j.clone())),
        _ => Err("an expect needs exactly one of \"value\", \"json\" or \"absent\": true".into()),
    }
}

pub(crate) fn txn(cx: &Context<'_>, store: &Path) -> Outcome {
    let mut ops = Vec::new();
    read_stdin_lines(|n, line| {
        ops.push(parse_op(n, line)?);
        Ok(())
    })?;
    let store = cx.open_writable(store)?;
    let mut tx = store.begin_write()?;
    for op in &ops {
        match op {
            Op::Put(k, v) => tx.put(k, v)?,
            Op::Delete(k) => tx.delete(k)?,
            Op::Expect(k, expected) => {
                let current = tx.get(k)?;
                if !expected.holds(current.as_deref()) {
                    tx.abort();
                    cx.close(store)?;
                    let found = current.as_deref().map_or(Json::Null, to_json);
                    let message = format!(
                        "guard on {} failed; no operation was applied (read the store again, then retry)",
                        display(k)
                    );
                    let fields = json!({"failed_guard": to_json(k), "current": found});
                    return refuse(cx.json, Exit::NotFound, &message, fields);
                }
            }
        }
    }
    let keys = tx.len();
    tx.commit()?;
    cx.close(store)?;
    report(
        cx.json,
        String::new,
        &json!({"operations": ops.len(), "keys": keys}),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(line: &str) -> Result<Op, Exit> {
        parse_op(1, line).map_err(|f| f.exit)
    }

    #[test]
    fn every_operation_parses_and_ambiguous_guards_are_refused() {
        assert_eq!(
            op(r#"{"op":"put","key":"k","value":{"base64":"/w=="}}"#),
            Ok(Op::Put(b"k".to_vec(), vec![0xff]))
        );
        assert_eq!(
            op(r#"{"op":"delete","key":"k"}"#),
            Ok(Op::Delete(b"k".to_vec()))
        );
        assert_eq!(
            op(r#"{"op":"expect","key":"k","value":"v"}"#),
            Ok(Op::Expect(b"k".to_vec(), Expected::Bytes(b"v".to_vec())))
        );
        assert_eq!(
            op(r#"{"op":"expect","key":"k","absent":true}"#),
            Ok(Op::Expect(b"k".to_vec(), Expected::Absent))
        );
        let typed = walstore::typed::encode(&json!({"a": [1, 2]})).expect("encode");
        assert_eq!(
            op(r#"{"op":"put","key":"k","json":{"a":[1,2]}}"#),
            Ok(Op::Put(b"k".to_vec(), typed.clone()))
        );
        let Ok(Op::Expect(_, guard)) = op(r#"{"op":"expect","key":"k","json":{"a":[1,2]}}"#) else {
            panic!("a json guard parses");
        };
        assert!(guard.holds(Some(&typed)) && !guard.holds(Some(b"x")) && !guard.holds(None));
        for bad in [
            r#"{"op":"expect","key":"k","absent":true,"value":"v"}"#,
            r#"{"op":"expect","key":"k"}"#,
            r#"{"op":"expect","key":"k","absent":"yes"}"#,
            r#"{"op":"put","key":"k"}"#,
            r#"{"op":"upsert","key":"k","value":"v"}"#,
            r#"{"key":"k","value":"v"}"#,
            r#"[1,2]"#,
            r#"{"op":"put","key":5,"value":"v"}"#,
            r#"{"op":"put","key":"k","value":"v","json":1}"#,
            r#"{"op":"expect","key":"k","json":1,"absent":true}"#,
            "{\"op\":",
        ] {
            assert_eq!(op(bad), Err(Exit::Usage), "{bad}");
        }
    }
}
