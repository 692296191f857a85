//! Everything a command prints on stdout goes through here, so that a closed or full stdout is
//! an error with an exit code (never a panic, as `println!` would be).
//!
//! Invariant: every `--json` answer (not the JSON Lines of `scan` and `export`) is one object
//! with `"ok"` (true only for exit 0) and `"exit"` (the exit code), plus `"error"` (the message
//! also said on stderr) whenever `"ok"` is false: [`answer`] builds it.

use crate::exit::{Exit, Failure};
use serde_json::Value as Json;
use std::io::Write;

/// The result of a command: an exit code for outcomes that are not failures (a missing key, a
/// failed comparison), a [`Failure`] for errors.
pub(crate) type Outcome = Result<Exit, Failure>;

/// Writes `bytes` to stdout and flushes.
pub(crate) fn write_out(bytes: &[u8]) -> Result<(), Failure> {
    let mut out = std::io::stdout().lock();
    out.write_all(bytes)
        .and_then(|()| out.flush())
        .map_err(|e| Failure::stdout(&e))
}

/// Writes one JSON value and a newline to stdout.
pub(crate) fn print_json(value: &Json) -> Result<(), Failure> {
    write_out(format!("{value}\n").as_bytes())
}

/// The one shape of a `--json` answer: `fields` plus `"ok"`, `"exit"` and, unless the exit is
/// 0, `"error"`.
pub(crate) fn answer(exit: Exit, error: Option<&str>, fields: Json) -> Json {
    let mut object = match fields {
        Json::Object(map) => map,
        _ => serde_json::Map::new(),
    };
    object.insert("ok".into(), Json::Bool(exit == Exit::Ok));
    object.insert("exit".into(), Json::from(exit.code()));
    if exit != Exit::Ok {
        let error = error.unwrap_or("failed");
        object.insert("error".into(), Json::String(error.to_owned()));
    }
    Json::Object(object)
}

/// An outcome that is not a failure but not a success either (a missing key, a failed
/// comparison): `message` on stderr, and with `--json` the answer with `fields`.
pub(crate) fn refuse(json: bool, exit: Exit, message: &str, fields: Json) -> Outcome {
    if json {
        print_json(&answer(exit, Some(message), fields))?;
    }
    say(message);
    Ok(exit)
}

/// Prints `text` (plus a newline, nothing if it is empty), or the `--json` answer with
/// `fields` (see [`answer`]).
pub(crate) fn report(json: bool, text: impl FnOnce() -> String, fields: &Json) -> Outcome {
    if json {
        print_json(&answer(Exit::Ok, None, fields.clone()))?;
    } else {
        let text = text();
        if !text.is_empty() {
            write_out(format!("{text}\n").as_bytes())?;
        }
    }
    Ok(Exit::Ok)
}

/// One line on stderr, prefixed `walstore:`. A closed stderr is ignored: there is nowhere
/// left to say anything, and the exit code still tells.
pub(crate) fn say(message: &str) {
    let message = crate::exit::one_line(message.to_owned());
    let _ = writeln!(std::io::stderr().lock(), "walstore: {message}");
}
