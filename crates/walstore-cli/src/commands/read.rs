//! `get` and `scan`: read-only, from one consistent snapshot, without the writer lock.

use super::Context;
use crate::args::arg_bytes;
use crate::encoding::{display, to_json};
use crate::exit::{Exit, Failure};
use crate::output::{print_json, say, write_out, Outcome};
use serde_json::json;
use std::ffi::{OsStr, OsString};
use std::io::Write;
use std::path::Path;

pub(crate) fn get(cx: &Context<'_>, store: &Path, key: &OsString) -> Outcome {
    let key = arg_bytes(key);
    let store = cx.open_readable(store)?;
    let value = store.begin_read()?.get(&key)?;
    match value {
        None => {
            if cx.json {
                print_json(&json!({"ok": false, "key": to_json(&key), "found": false}))?;
            }
            say(&format!(
                "key {:?} not found (`walstore scan STORE` lists the keys)",
                display(&key)
            ));
            Ok(Exit::NotFound)
        }
        Some(v) if cx.json => {
            print_json(&json!({
                "ok": true, "key": to_json(&key), "found": true, "value": to_json(&v),
            }))?;
            Ok(Exit::Ok)
        }
        Some(v) => {
            write_out(&v)?;
            Ok(Exit::Ok)
        }
    }
}

pub(crate) fn scan(cx: &Context<'_>, store: &Path, prefix: Option<&OsStr>) -> Outcome {
    let prefix = prefix.map(arg_bytes).unwrap_or_default();
    let store = cx.open_readable(store)?;
    let read = store.begin_read()?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for item in read.scan_prefix(&prefix)? {
        let (k, v) = item?;
        let written = if cx.json {
            writeln!(out, "{}", json!({"key": to_json(&k), "value": to_json(&v)}))
        } else {
            writeln!(out, "{}\t{}", display(&k), display(&v))
        };
        written.map_err(|e| Failure::stdout(&e))?;
    }
    out.flush().map_err(|e| Failure::stdout(&e))?;
    Ok(Exit::Ok)
}
