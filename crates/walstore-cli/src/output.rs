//! Everything a command prints on stdout goes through here, so that a closed or full stdout is
//! an error with an exit code (never a panic, as `println!` would be).

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

/// Prints `text` (plus a newline, nothing if it is empty), or `value` in `--json` mode.
pub(crate) fn report(json: bool, text: impl FnOnce() -> String, value: &Json) -> Outcome {
    if json {
        print_json(value)?;
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
