//! `get` and `scan` (in either key order): read-only, from one consistent snapshot, without the writer lock.
//! A path where no store exists yet reads as an empty store whose keys are all missing
//! (exit 1), not as an error: a program may read before its first write. `watch`: read-only
//! too, the changes under a prefix as they are committed.

use super::Context;
use crate::args::arg_bytes;
use crate::encoding::{display, to_json};
use crate::exit::{Exit, Failure};
use crate::output::{print_json, refuse, write_out, Outcome};
use serde_json::{json, Value as Json};
use std::borrow::Cow;
use std::ffi::{OsStr, OsString};
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};
use walstore::{Change, Value};

/// A key and its value as JSON: `value` is the bytes (see [`crate::encoding`]); `json` is
/// also there when the bytes are a typed value (docs/VALUES.md).
pub(crate) fn pair_json(key: &[u8], value: &[u8]) -> Json {
    let mut pair = json!({"key": to_json(key), "value": to_json(value)});
    if let Ok(typed) = walstore::typed::decode::<Json>(value) {
        pair["json"] = typed;
    }
    pair
}

/// A value as plain `get` and `scan` print it: a typed string as its text, another typed
/// value (that has a JSON form) as JSON, any other bytes exactly; with `raw`, the stored bytes
/// exactly. So a value set from Python or Rust reads as the text or JSON it means, and text
/// set by `walstore set` reads as it was set (text is never a typed value, docs/VALUES.md).
pub(crate) fn shown(value: &[u8], raw: bool) -> Cow<'_, [u8]> {
    if raw {
        return Cow::Borrowed(value);
    }
    match walstore::typed::decode::<Json>(value) {
        Ok(Json::String(text)) => Cow::Owned(text.into_bytes()),
        Ok(json) => Cow::Owned(json.to_string().into_bytes()),
        Err(_) => Cow::Borrowed(value),
    }
}

/// One key and what `get` found: [`pair_json`] and `found`.
fn entry_json(key: &[u8], value: Option<&[u8]>) -> Json {
    let mut entry = match value {
        Some(bytes) => pair_json(key, bytes),
        None => json!({"key": to_json(key)}),
    };
    entry["found"] = Json::Bool(value.is_some());
    entry
}

/// The values of `keys` from one snapshot (all missing where no store exists yet).
fn read_values(
    cx: &Context<'_>,
    store: &Path,
    keys: &[Vec<u8>],
) -> Result<Vec<Option<Value>>, Failure> {
    let Some(store) = cx.open_if_exists(store)? else {
        return Ok(keys.iter().map(|_| None).collect());
    };
    let read = store.begin_read()?;
    let values = keys
        .iter()
        .map(|k| read.get(k))
        .collect::<walstore::Result<Vec<_>>>()?;
    drop(read);
    cx.close(store)?;
    Ok(values)
}

/// One key: its value as [`shown`]. Several: one `KEY<TAB>VALUE` line each, as `scan`
/// prints.
fn print_text(keys: &[Vec<u8>], values: &[Option<Value>], raw: bool) -> Result<(), Failure> {
    if let [Some(value)] = values {
        return write_out(&shown(value, raw));
    }
    let mut text = String::new();
    for (key, value) in keys.iter().zip(values) {
        if let Some(value) = value {
            let value = shown(value, raw);
            text.push_str(&format!("{}\t{}\n", display(key), display(&value)));
        }
    }
    write_out(text.as_bytes())
}

pub(crate) fn get(cx: &Context<'_>, store: &Path, keys: &[OsString], raw: bool) -> Outcome {
    let keys: Vec<Vec<u8>> = keys.iter().map(|k| arg_bytes(k)).collect();
    let values = read_values(cx, store, &keys)?;
    let missing: Vec<&[u8]> = keys
        .iter()
        .zip(&values)
        .filter(|(_, v)| v.is_none())
        .map(|(k, _)| &k[..])
        .collect();
    let entries: Vec<Json> = keys
        .iter()
        .zip(&values)
        .map(|(k, v)| entry_json(k, v.as_deref()))
        .collect();
    if !missing.is_empty() {
        let names: Vec<String> = missing
            .iter()
            .map(|k| format!("{:?}", display(k)))
            .collect();
        let message = format!(
            "key {} not found (`walstore scan STORE` lists the keys)",
            names.join(", ")
        );
        return refuse(
            cx.json,
            Exit::NotFound,
            &message,
            json!({"entries": entries}),
        );
    }
    if cx.json {
        print_json(&crate::output::answer(
            Exit::Ok,
            None,
            json!({"entries": entries}),
        ))?;
    } else {
        print_text(&keys, &values, raw)?;
    }
    Ok(Exit::Ok)
}

pub(crate) fn scan(
    cx: &Context<'_>,
    store: &Path,
    prefix: Option<&OsStr>,
    reverse: bool,
    limit: Option<usize>,
    raw: bool,
) -> Outcome {
    let prefix = prefix.map(arg_bytes).unwrap_or_default();
    let Some(store) = cx.open_if_exists(store)? else {
        let message = format!(
            "no store at {} yet: nothing to list (writing commands create it)",
            store.display()
        );
        return refuse(cx.json, Exit::NotFound, &message, json!({}));
    };
    let read = store.begin_read()?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let items = read.scan_prefix(&prefix)?;
    let items = if reverse { items.rev() } else { items };
    for item in items.take(limit.unwrap_or(usize::MAX)) {
        let (k, v) = item?;
        let written = if cx.json {
            writeln!(out, "{}", pair_json(&k, &v))
        } else {
            writeln!(out, "{}\t{}", display(&k), display(&shown(&v, raw)))
        };
        written.map_err(|e| Failure::stdout(&e))?;
    }
    out.flush().map_err(|e| Failure::stdout(&e))?;
    drop(read);
    cx.close(store)?;
    Ok(Exit::Ok)
}

/// One change as `watch` prints it: [`pair_json`] (`"value": null` for a deletion) and
/// `"txn"`, the last transaction of the view it was seen in.
fn change_json(change: &Change) -> Json {
    let mut line = match &change.value {
        Some(value) => pair_json(&change.key, value),
        None => json!({"key": to_json(&change.key), "value": Json::Null}),
    };
    line["txn"] = Json::from(change.txn_id);
    line
}

/// `--timeout SECONDS` as a deadline: `None` (wait forever) without it or for infinity; zero,
/// negative and NaN mean now; the upper end is clamped as `--wait`'s is.
fn deadline(start: Instant, seconds: Option<f64>) -> Option<Instant> {
    match seconds {
        None => None,
        Some(s) if s.is_nan() || s <= 0.0 => Some(start),
        Some(s) if s.is_infinite() => None,
        Some(s) => start.checked_add(Duration::from_secs_f64(s.min(1e9))),
    }
}

/// How long one wait for a change lasts when no deadline is given (the loop waits again).
const WAIT_SLICE: Duration = Duration::from_secs(3600);

pub(crate) fn watch(
    cx: &Context<'_>,
    store: &Path,
    prefix: Option<&OsStr>,
    timeout: Option<f64>,
    count: Option<u64>,
) -> Outcome {
    let deadline = deadline(Instant::now(), timeout);
    let prefix = prefix.map(arg_bytes).unwrap_or_default();
    let Some(store) = cx.open_if_exists(store)? else {
        let message = format!(
            "no store at {} yet: nothing to watch (writing commands create it)",
            store.display()
        );
        return refuse(cx.json, Exit::NotFound, &message, json!({}));
    };
    let mut watch = store.watch(&prefix)?;
    let mut out = std::io::stdout().lock();
    let mut printed = 0u64;
    while count.is_none_or(|n| printed < n) {
        let wait = match deadline {
            None => WAIT_SLICE,
            Some(d) => match d.saturating_duration_since(Instant::now()) {
                left if left.is_zero() => break,
                left => left,
            },
        };
        let Some(change) = watch.next_timeout(wait)? else {
            continue;
        };
        let written = writeln!(out, "{}", change_json(&change)).and_then(|()| out.flush());
        match written {
            Ok(()) => printed += 1,
            // The reader is gone (`| head -1`): nobody wants more, which is not a failure.
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => break,
            Err(e) => return Err(Failure::stdout(&e)),
        }
    }
    drop(out);
    drop(watch);
    cx.close(store)?;
    Ok(Exit::Ok)
}
