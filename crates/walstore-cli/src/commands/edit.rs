//! `set`, `del` (keys, a prefix or a range), `incr`, `cas`: edits given on the command line,
//! each one write transaction, and each closes its store before it reports success (a failed
//! close is the command's failure).
//! `incr` and `cas` read and write under the writer lock, so no other process's update can
//! fall between their read and their write.

use super::Context;
use crate::args::{arg_bytes, path_from_bytes};
use crate::encoding::{display, to_json};
use crate::exit::{Exit, Failure};
use crate::output::{refuse, report, Outcome};
use serde_json::{json, Value as Json};
use std::ffi::{OsStr, OsString};
use std::io::Read;
use std::ops::Bound;
use std::path::Path;

/// Where a value comes from: the argument itself, a file (`@PATH`) or stdin (`@-`, once).
#[derive(Debug, Default)]
struct ValueSources {
    stdin_used: bool,
}

impl ValueSources {
    fn read(&mut self, key: &[u8], value: &[u8]) -> Result<Vec<u8>, Failure> {
        let Some(source) = value.strip_prefix(b"@") else {
            return Ok(value.to_vec());
        };
        if source == b"-" {
            return self.read_stdin(key);
        }
        let path = path_from_bytes(source);
        std::fs::read(&path).map_err(|e| {
            Failure::usage(format!(
                "cannot read the value of {} from {}: {e}",
                display(key),
                path.display()
            ))
        })
    }

    fn read_stdin(&mut self, key: &[u8]) -> Result<Vec<u8>, Failure> {
        if std::mem::replace(&mut self.stdin_used, true) {
            return Err(Failure::usage(format!(
                "{}=@-: stdin was already read for another value (one KEY=@- per command)",
                display(key)
            )));
        }
        let mut bytes = Vec::new();
        std::io::stdin()
            .lock()
            .read_to_end(&mut bytes)
            .map_err(|e| Failure::usage(format!("cannot read stdin: {e}")))?;
        Ok(bytes)
    }
}

/// `KEY=VALUE`, `KEY=@PATH` (the value is the file's bytes) or `KEY=@-` (stdin). The first
/// `=` separates. With `typed`, the value is JSON and is stored as a typed value.
fn parse_pair(
    pair: &OsString,
    sources: &mut ValueSources,
    typed: bool,
) -> Result<(Vec<u8>, Vec<u8>), Failure> {
    let bytes = arg_bytes(pair);
    let Some(eq) = bytes.iter().position(|&b| b == b'=') else {
        return Err(Failure::usage(format!(
            "expected KEY=VALUE, got {:?}",
            display(&bytes)
        )));
    };
    let (key, value) = (&bytes[..eq], &bytes[eq + 1..]);
    if key.is_empty() {
        return Err(Failure::usage(format!(
            "empty key in {:?}: write KEY=VALUE",
            display(&bytes)
        )));
    }
    let value = sources.read(key, value)?;
    if !typed {
        return Ok((key.to_vec(), value));
    }
    let json: Json = serde_json::from_slice(&value).map_err(|e| {
        Failure::usage(format!(
            "the value of {} is not JSON ({e}); with --json, values are JSON: write k='\"text\"' for a string",
            display(key)
        ))
    })?;
    Ok((key.to_vec(), walstore::typed::encode(&json)?))
}

pub(crate) fn set(cx: &Context<'_>, store: &Path, pairs: &[OsString]) -> Outcome {
    let mut sources = ValueSources::default();
    let pairs = pairs
        .iter()
        .map(|pair| parse_pair(pair, &mut sources, cx.json))
        .collect::<Result<Vec<_>, _>>()?;
    let store = cx.open_writable(store)?;
    store.update(|tx| {
        for (k, v) in &pairs {
            tx.put(k, v)?;
        }
        Ok::<_, walstore::Error>(())
    })?;
    cx.close(store)?;
    report(cx.json, String::new, &json!({"keys": pairs.len()}))
}

pub(crate) fn del(cx: &Context<'_>, store: &Path, keys: &[OsString]) -> Outcome {
    let keys: Vec<Vec<u8>> = keys.iter().map(|k| arg_bytes(k)).collect();
    let store = cx.open_writable(store)?;
    let existed = store.update(|tx| {
        let mut existed = 0;
        for k in &keys {
            if tx.get(k)?.is_some() {
                existed += 1;
            }
            tx.delete(k)?;
        }
        Ok::<_, walstore::Error>(existed)
    })?;
    cx.close(store)?;
    report(cx.json, String::new, &json!({"deleted": existed}))
}

/// What a range deletion removes: the keys starting with a prefix, or those in a range.
enum Span {
    Prefix(Vec<u8>),
    Range(Bound<Vec<u8>>, Bound<Vec<u8>>),
}

/// A bound given on the command line may not be longer than a key.
fn check_bound(flag: &str, bytes: &[u8]) -> Result<(), Failure> {
    if bytes.len() > walstore::MAX_KEY_BYTES {
        return Err(Failure::usage(format!(
            "{flag} of {} bytes is longer than the longest key ({} bytes)",
            bytes.len(),
            walstore::MAX_KEY_BYTES
        )));
    }
    Ok(())
}

/// `del --prefix PREFIX`: one range deletion of every key starting with PREFIX.
pub(crate) fn del_prefix(cx: &Context<'_>, store: &Path, prefix: &OsStr) -> Outcome {
    let prefix = arg_bytes(prefix);
    if prefix.is_empty() {
        return Err(Failure::usage(
            "--prefix must not be empty (to delete every key, write --from '')",
        ));
    }
    check_bound("--prefix", &prefix)?;
    del_span(cx, store, &Span::Prefix(prefix))
}

/// `del --from A --to B`: one range deletion of every key from A (included; the first key if
/// A is missing or empty) to B (excluded; the last key included if B is missing).
pub(crate) fn del_range(
    cx: &Context<'_>,
    store: &Path,
    from: Option<&OsStr>,
    to: Option<&OsStr>,
) -> Outcome {
    let from = from.map(arg_bytes).unwrap_or_default();
    let to = to.map(arg_bytes);
    check_bound("--from", &from)?;
    if let Some(to) = &to {
        check_bound("--to", to)?;
        if to <= &from {
            return Err(Failure::usage(format!(
                "the range from {:?} to {:?} is empty: --to is excluded and must come after --from",
                display(&from),
                display(to)
            )));
        }
    }
    // Keys are never empty, so "" as the start is the first key: unbounded.
    let start = if from.is_empty() {
        Bound::Unbounded
    } else {
        Bound::Included(from)
    };
    let end = to.map_or(Bound::Unbounded, Bound::Excluded);
    del_span(cx, store, &Span::Range(start, end))
}

/// Deletes `span` with one range deletion in one transaction; reports how many keys it held.
fn del_span(cx: &Context<'_>, store: &Path, span: &Span) -> Outcome {
    let store = cx.open_writable(store)?;
    let existed = store.update(|tx| {
        let keys = match span {
            Span::Prefix(prefix) => tx.scan_prefix(prefix)?,
            Span::Range(start, end) => tx.range((start.clone(), end.clone()))?,
        };
        let mut existed = 0usize;
        for item in keys {
            item?;
            existed += 1;
        }
        match span {
            Span::Prefix(prefix) => tx.delete_prefix(prefix)?,
            Span::Range(start, end) => tx.delete_range((start.clone(), end.clone()))?,
        }
        Ok::<_, walstore::Error>(existed)
    })?;
    cx.close(store)?;
    report(cx.json, String::new, &json!({"deleted": existed}))
}

/// How a counter is stored: a typed integer (what `incr` writes to a missing key, and what
/// Rust's `put_as` and Python write) or decimal text (what `walstore set` writes). `incr`
/// keeps the form it found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Counter {
    Text(i64),
    Typed(i64),
}

impl Counter {
    fn value(self) -> i64 {
        match self {
            Counter::Text(n) | Counter::Typed(n) => n,
        }
    }

    /// The bytes of `next` in this counter's form.
    fn encode(self, next: i64) -> Result<Vec<u8>, Failure> {
        match self {
            Counter::Text(_) => Ok(next.to_string().into_bytes()),
            Counter::Typed(_) => Ok(walstore::typed::encode(&next)?),
        }
    }
}

/// The counter's current value: missing counts as 0 (typed); decimal text may have
/// surrounding whitespace. Decimal text is never a typed value (docs/VALUES.md), so the two
/// forms cannot be confused.
fn parse_counter(key: &[u8], value: Option<&[u8]>) -> Result<Counter, Failure> {
    let Some(value) = value else {
        return Ok(Counter::Typed(0));
    };
    let text = std::str::from_utf8(value)
        .ok()
        .and_then(|s| s.trim().parse::<i64>().ok());
    if let Some(n) = text {
        return Ok(Counter::Text(n));
    }
    walstore::typed::decode::<i64>(value)
        .map(Counter::Typed)
        .map_err(|_| {
            Failure::usage(format!(
                "the value of {} is neither a decimal integer nor a typed integer: {:?}; nothing changed",
                display(key),
                display(value)
            ))
        })
}

pub(crate) fn incr(cx: &Context<'_>, store: &Path, key: &OsString, by: i64) -> Outcome {
    let key = arg_bytes(key);
    let store = cx.open_writable(store)?;
    // The closure's error type is the engine's; a bad counter comes out through the inner
    // `Result` with nothing written, so the (empty) commit changes nothing.
    let next = store.update(|tx| {
        let counter = match parse_counter(&key, tx.get(&key)?.as_deref()) {
            Ok(counter) => counter,
            Err(failure) => return Ok(Err(failure)),
        };
        let current = counter.value();
        let Some(next) = current.checked_add(by) else {
            return Ok(Err(Failure::usage(format!(
                "{current} + {by} overflows a 64-bit integer; nothing changed"
            ))));
        };
        match counter.encode(next) {
            Ok(bytes) => tx.put(&key, &bytes)?,
            Err(failure) => return Ok(Err(failure)),
        }
        Ok::<_, walstore::Error>(Ok(next))
    })??;
    // Printed only once the close (the last sync of a buffered write) succeeded.
    cx.close(store)?;
    report(
        cx.json,
        || next.to_string(),
        &json!({"key": to_json(&key), "value": next}),
    )
}

pub(crate) fn cas(
    cx: &Context<'_>,
    store: &Path,
    key: &OsString,
    expected: &OsString,
    new: &OsString,
) -> Outcome {
    let (key, expected, new) = (arg_bytes(key), arg_bytes(expected), arg_bytes(new));
    let store = cx.open_writable(store)?;
    let mut tx = store.begin_write()?;
    let current = tx.get(&key)?;
    if current.as_deref() != Some(&expected[..]) {
        tx.abort();
        cx.close(store)?;
        let found = current.as_deref().map_or(Json::Null, to_json);
        let message = format!(
            "{} does not hold the expected value; nothing changed (read it again, then retry)",
            display(&key)
        );
        let fields = json!({"key": to_json(&key), "swapped": false, "current": found});
        return refuse(cx.json, Exit::NotFound, &message, fields);
    }
    tx.put(&key, &new)?;
    tx.commit()?;
    cx.close(store)?;
    report(
        cx.json,
        String::new,
        &json!({"key": to_json(&key), "swapped": true}),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_split_at_the_first_equals_sign_and_keep_any_bytes() {
        let pair = |s: &str| parse_pair(&OsString::from(s), &mut ValueSources::default(), false);
        let (k, v) = pair("url=https://x/?a=b").expect("valid");
        assert_eq!((&k[..], &v[..]), (&b"url"[..], &b"https://x/?a=b"[..]));
        let (k, v) = pair("empty=").expect("an empty value is a value");
        assert_eq!((&k[..], &v[..]), (&b"empty"[..], &b""[..]));
        assert_eq!(
            pair("=v").map(|_| ()).expect_err("refused").exit,
            Exit::Usage
        );
        assert_eq!(
            pair("novalue").map(|_| ()).expect_err("refused").exit,
            Exit::Usage
        );
        assert_eq!(
            pair("k=@/nonexistent/walstore-test")
                .map(|_| ())
                .expect_err("refused")
                .exit,
            Exit::Usage
        );
    }

    #[test]
    fn counters_are_decimal_text_or_typed_integers_and_keep_their_form() {
        assert_eq!(parse_counter(b"n", None).ok(), Some(Counter::Typed(0)));
        assert_eq!(
            parse_counter(b"n", Some(b" -42\n")).ok(),
            Some(Counter::Text(-42))
        );
        assert_eq!(parse_counter(b"n", Some(b"5")).ok(), Some(Counter::Text(5)));
        for n in [0i64, 5, 53, 200, -7, i64::MAX] {
            let typed = walstore::typed::encode(&n).expect("encode");
            assert_eq!(
                parse_counter(b"n", Some(&typed)).ok(),
                Some(Counter::Typed(n))
            );
            let next = Counter::Typed(n).encode(n ^ 1).expect("encode");
            assert_eq!(walstore::typed::decode::<i64>(&next).ok(), Some(n ^ 1));
        }
        let text = walstore::typed::encode("12").expect("encode");
        for bad in [
            &b"4.2"[..],
            b"",
            b"x",
            &[0xc1],
            b"99999999999999999999",
            &text,
        ] {
            assert!(parse_counter(b"n", Some(bad)).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn with_json_values_are_json_stored_typed() {
        let pair = |s: &str| parse_pair(&OsString::from(s), &mut ValueSources::default(), true);
        let (_, v) = pair(r#"doc={"a":1,"b":[true,null]}"#).expect("valid JSON");
        let back: Json = walstore::typed::decode(&v).expect("typed");
        assert_eq!(back, json!({"a": 1, "b": [true, null]}));
        assert_eq!(
            pair("k=not json").map(|_| ()).expect_err("refused").exit,
            Exit::Usage
        );
    }
}
