//! `txn`: operations read as JSON Lines from stdin, applied in one write transaction or not
//! at all. The whole input is parsed before the store is opened, so a malformed line never
//! holds the writer lock and never applies anything.
//!
//! Grammar (one object per line; keys and values as in [`crate::encoding`]):
//! `{"op":"put","key":K,"value":V}`, `{"op":"delete","key":K}`,
//! `{"op":"expect","key":K,"value":V}` (the key holds exactly V) and
//! `{"op":"expect","key":K,"absent":true}` (the key is missing).

use super::{read_stdin_lines, Context};
use crate::encoding::{display, from_json, to_json};
use crate::exit::{Exit, Failure};
use crate::output::{print_json, report, say, Outcome};
use serde_json::{json, Value as Json};
use std::path::Path;

/// One operation of `txn`'s input.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Op {
    Put(Vec<u8>, Vec<u8>),
    Delete(Vec<u8>),
    /// The key must hold this value (`None`: must be missing).
    Expect(Vec<u8>, Option<Vec<u8>>),
}

pub(crate) fn parse_op(line_no: usize, line: &str) -> Result<Op, Failure> {
    let bad = |why: String| Failure::usage(format!("stdin line {line_no}: {why}"));
    let value: Json = serde_json::from_str(line).map_err(|e| bad(format!("not JSON: {e}")))?;
    if !value.is_object() {
        return Err(bad("expected an object like {\"op\":\"put\",...}".into()));
    }
    let field = |name: &str| -> Result<Vec<u8>, Failure> {
        let v = value
            .get(name)
            .ok_or_else(|| bad(format!("missing \"{name}\"")))?;
        from_json(v).map_err(|e| bad(format!("\"{name}\": {e}")))
    };
    match value.get("op").and_then(Json::as_str) {
        Some("put") => Ok(Op::Put(field("key")?, field("value")?)),
        Some("delete") => Ok(Op::Delete(field("key")?)),
        Some("expect") => match (value.get("absent"), value.get("value")) {
            (Some(Json::Bool(true)), None) => Ok(Op::Expect(field("key")?, None)),
            (None | Some(Json::Bool(false)), Some(_)) => {
                Ok(Op::Expect(field("key")?, Some(field("value")?)))
            }
            _ => Err(bad(
                "an expect needs either \"value\" or \"absent\": true".into()
            )),
        },
        _ => Err(bad(
            "\"op\" must be \"put\", \"delete\" or \"expect\"".into()
        )),
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
                if current.as_deref() != expected.as_deref() {
                    tx.abort();
                    if cx.json {
                        let found = current.as_deref().map_or(Json::Null, to_json);
                        print_json(&json!({
                            "ok": false, "failed_guard": to_json(k), "current": found,
                        }))?;
                    }
                    say(&format!(
                        "guard on {} failed; no operation was applied (read the store again, then retry)",
                        display(k)
                    ));
                    return Ok(Exit::NotFound);
                }
            }
        }
    }
    let keys = tx.len();
    tx.commit()?;
    report(
        cx.json,
        String::new,
        &json!({"ok": true, "operations": ops.len(), "keys": keys}),
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
            Ok(Op::Expect(b"k".to_vec(), Some(b"v".to_vec())))
        );
        assert_eq!(
            op(r#"{"op":"expect","key":"k","absent":true}"#),
            Ok(Op::Expect(b"k".to_vec(), None))
        );
        for bad in [
            r#"{"op":"expect","key":"k","absent":true,"value":"v"}"#,
            r#"{"op":"expect","key":"k"}"#,
            r#"{"op":"expect","key":"k","absent":"yes"}"#,
            r#"{"op":"put","key":"k"}"#,
            r#"{"op":"upsert","key":"k","value":"v"}"#,
            r#"{"key":"k","value":"v"}"#,
            r#"[1,2]"#,
            r#"{"op":"put","key":5,"value":"v"}"#,
            "{\"op\":",
        ] {
            assert_eq!(op(bad), Err(Exit::Usage), "{bad}");
        }
    }
}
