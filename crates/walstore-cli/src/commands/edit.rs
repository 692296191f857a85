//! `set`, `del`, `incr`, `cas`: edits given on the command line, each one write transaction.
//! `incr` and `cas` read and write under the writer lock, so no other process's update can
//! fall between their read and their write.

use super::Context;
use crate::args::{arg_bytes, path_from_bytes};
use crate::encoding::{display, to_json};
use crate::exit::{Exit, Failure};
use crate::output::{print_json, report, say, Outcome};
use serde_json::{json, Value as Json};
use std::ffi::OsString;
use std::path::Path;

/// `KEY=VALUE` or `KEY=@PATH` (the value is the file's bytes). The first `=` separates.
fn parse_pair(pair: &OsString) -> Result<(Vec<u8>, Vec<u8>), Failure> {
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
    let value = match value.strip_prefix(b"@") {
        Some(path) => {
            let path = path_from_bytes(path);
            std::fs::read(&path).map_err(|e| {
                Failure::usage(format!(
                    "cannot read the value of {} from {}: {e}",
                    display(key),
                    path.display()
                ))
            })?
        }
        None => value.to_vec(),
    };
    Ok((key.to_vec(), value))
}

pub(crate) fn set(cx: &Context<'_>, store: &Path, pairs: &[OsString]) -> Outcome {
    let pairs = pairs
        .iter()
        .map(parse_pair)
        .collect::<Result<Vec<_>, _>>()?;
    let store = cx.open_writable(store)?;
    store.update(|tx| {
        for (k, v) in &pairs {
            tx.put(k, v)?;
        }
        Ok::<_, walstore::Error>(())
    })?;
    report(
        cx.json,
        String::new,
        &json!({"ok": true, "keys": pairs.len()}),
    )
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
    report(
        cx.json,
        String::new,
        &json!({"ok": true, "deleted": existed}),
    )
}

/// The counter's current value: missing counts as 0; surrounding whitespace is allowed.
fn parse_counter(key: &[u8], value: Option<&[u8]>) -> Result<i64, Failure> {
    let Some(value) = value else { return Ok(0) };
    std::str::from_utf8(value)
        .ok()
        .and_then(|s| s.trim().parse::<i64>().ok())
        .ok_or_else(|| {
            Failure::usage(format!(
                "the value of {} is not a decimal integer: {:?}; nothing changed",
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
        let current = match parse_counter(&key, tx.get(&key)?.as_deref()) {
            Ok(n) => n,
            Err(failure) => return Ok(Err(failure)),
        };
        let Some(next) = current.checked_add(by) else {
            return Ok(Err(Failure::usage(format!(
                "{current} + {by} overflows a 64-bit integer; nothing changed"
            ))));
        };
        tx.put(&key, next.to_string().as_bytes())?;
        Ok::<_, walstore::Error>(Ok(next))
    })??;
    report(
        cx.json,
        || next.to_string(),
        &json!({"ok": true, "key": to_json(&key), "value": next}),
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
        if cx.json {
            let found = current.as_deref().map_or(Json::Null, to_json);
            print_json(&json!({
                "ok": false, "key": to_json(&key), "swapped": false, "current": found,
            }))?;
        }
        say(&format!(
            "{} does not hold the expected value; nothing changed (read it again, then retry)",
            display(&key)
        ));
        return Ok(Exit::NotFound);
    }
    tx.put(&key, &new)?;
    tx.commit()?;
    report(
        cx.json,
        String::new,
        &json!({"ok": true, "key": to_json(&key), "swapped": true}),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_split_at_the_first_equals_sign_and_keep_any_bytes() {
        let pair = |s: &str| parse_pair(&OsString::from(s));
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
    fn counters_accept_decimal_integers_only() {
        assert_eq!(parse_counter(b"n", None).ok(), Some(0));
        assert_eq!(parse_counter(b"n", Some(b" -42\n")).ok(), Some(-42));
        for bad in [&b"4.2"[..], b"", b"x", &[0xff], b"99999999999999999999"] {
            assert!(parse_counter(b"n", Some(bad)).is_err(), "{bad:?}");
        }
    }
}
