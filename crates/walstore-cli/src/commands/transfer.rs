//! `export` and `import`: every key and value as JSON Lines, independent of the on-disk format
//! version, binary-safe (see [`crate::encoding`]).
//!
//! An export is a header line [`EXPORT_HEADER`] and then one `{"key":K,"value":V}` line per
//! key, in key order, from one read snapshot. `import` accepts the header (optional, and it
//! must name a version this build reads) and such lines, and puts them in one transaction.

use super::{read_stdin_lines, Context};
use crate::encoding::{from_json, to_json};
use crate::exit::{Exit, Failure};
use crate::output::{report, Outcome};
use crate::progress::Progress;
use serde_json::{json, Value as Json};
use std::io::Write;
use std::path::Path;
use walstore::Store;

/// The export format's version. Bump only for a change an older `import` would misread.
pub(crate) const EXPORT_VERSION: u64 = 1;

/// First line of an export: says what the lines are, so a reader can check.
pub(crate) const EXPORT_HEADER: &str = r#"{"format":"walstore-export","version":1}"#;

/// Keys in the store, counting a key changed since the last checkpoint twice: enough for a
/// progress bar's length.
pub(crate) fn approximate_keys(store: &Store) -> Result<u64, Failure> {
    let info = store.info()?;
    Ok(info.memtable_keys as u64
        + info.log_index_entries
        + info.snapshot_files.iter().map(|f| f.2).sum::<u64>())
}

pub(crate) fn export(cx: &Context<'_>, store: &Path) -> Outcome {
    let store = cx.open_readable(store)?;
    let read = store.begin_read()?;
    let mut progress = Progress::new(Some(approximate_keys(&store)?), "exporting");
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let failed = |e: std::io::Error| Failure::stdout(&e);
    writeln!(out, "{EXPORT_HEADER}").map_err(failed)?;
    for item in read.range::<&[u8], _>(..)? {
        let (k, v) = item?;
        writeln!(out, "{}", json!({"key": to_json(&k), "value": to_json(&v)})).map_err(failed)?;
        progress.inc(1);
    }
    out.flush().map_err(failed)?;
    drop(read);
    cx.close(store)?;
    Ok(Exit::Ok)
}

/// A key and its value.
type Pair = (Vec<u8>, Vec<u8>);

/// One line of an import: `Ok(None)` for the header.
fn parse_line(line_no: usize, line: &str) -> Result<Option<Pair>, Failure> {
    let bad = |why: String| Failure::usage(format!("stdin line {line_no}: {why}"));
    let value: Json = serde_json::from_str(line).map_err(|e| bad(format!("not JSON: {e}")))?;
    if let Some(format) = value.get("format") {
        let version = value.get("version").and_then(Json::as_u64);
        return match (format.as_str(), version) {
            (Some("walstore-export"), Some(EXPORT_VERSION)) => Ok(None),
            (Some("walstore-export"), Some(v)) => Err(bad(format!(
                "export format version {v}; this build reads version {EXPORT_VERSION} (import with a newer walstore)"
            ))),
            _ => Err(bad("not a walstore export header".into())),
        };
    }
    let field = |name: &str| {
        value
            .get(name)
            .ok_or_else(|| format!("missing \"{name}\""))
            .and_then(from_json)
            .map_err(|e| bad(format!("\"{name}\": {e}")))
    };
    Ok(Some((field("key")?, field("value")?)))
}

pub(crate) fn import(cx: &Context<'_>, store: &Path) -> Outcome {
    let mut pairs: Vec<Pair> = Vec::new();
    let mut progress = Progress::new(None, "reading");
    read_stdin_lines(|n, line| {
        if let Some(pair) = parse_line(n, line)? {
            pairs.push(pair);
            progress.inc(1);
        }
        Ok(())
    })?;
    drop(progress);
    let store = cx.open_writable(store)?;
    let mut progress = Progress::new(Some(pairs.len() as u64), "importing");
    store.update(|tx| {
        for (k, v) in &pairs {
            tx.put(k, v)?;
            progress.inc(1);
        }
        Ok::<_, walstore::Error>(())
    })?;
    drop(progress);
    cx.close(store)?;
    report(cx.json, String::new, &json!({"keys": pairs.len()}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_header_is_checked_and_lines_need_key_and_value() {
        assert!(matches!(parse_line(1, EXPORT_HEADER), Ok(None)));
        assert_eq!(
            parse_line(2, r#"{"key":"k","value":{"base64":"AP8="}}"#).ok(),
            Some(Some((b"k".to_vec(), vec![0x00, 0xff])))
        );
        for bad in [
            r#"{"format":"walstore-export","version":2}"#,
            r#"{"format":"something-else","version":1}"#,
            r#"{"key":"k"}"#,
            r#"{"value":"v"}"#,
            "not json",
        ] {
            assert!(parse_line(1, bad).is_err(), "{bad}");
        }
    }
}
