//! Reads and writes one typed value through the Rust API (`put_as`/`get_as`), so the Python
//! package's tests can show that Rust and Python read each other's values:
//!
//! - `typed_interop write STORE KEY` stores a fixed `Server` with `put_as`;
//! - `typed_interop read STORE KEY` reads a `Server` with `get_as` and prints it as JSON
//!   (exit 1 if missing, 3 if the value is not a `Server`, 2 on other errors).

use serde::{Deserialize, Serialize};
use std::process::ExitCode;

/// A struct as a Rust program would keep it; a Python dict with these keys is the same value.
#[derive(Debug, Serialize, Deserialize)]
struct Server {
    url: String,
    port: u16,
    tags: Vec<String>,
    ratio: f64,
    enabled: bool,
    note: Option<String>,
}

fn write(store: &walstore::Store, key: &[u8]) -> walstore::Result<()> {
    let server = Server {
        url: "https://rust.example".into(),
        port: 8443,
        tags: vec!["a".into(), "b".into()],
        ratio: 0.25,
        enabled: true,
        note: None,
    };
    store.update(|tx| tx.put_as(key, &server))
}

fn read(store: &walstore::Store, key: &[u8]) -> ExitCode {
    match store.begin_read().and_then(|r| r.get_as::<Server>(key)) {
        Ok(Some(server)) => match serde_json::to_string(&server) {
            Ok(text) => {
                println!("{text}");
                ExitCode::SUCCESS
            }
            Err(e) => fail(2, &e.to_string()),
        },
        Ok(None) => fail(1, "missing"),
        Err(e @ walstore::Error::TypeMismatch { .. }) => fail(3, &e.to_string()),
        Err(e) => fail(2, &e.to_string()),
    }
}

fn fail(code: u8, message: &str) -> ExitCode {
    eprintln!("typed_interop: {message}");
    ExitCode::from(code)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let [_, command, path, key] = &args[..] else {
        return fail(2, "usage: typed_interop write|read STORE KEY");
    };
    let store = match walstore::Store::open(path) {
        Ok(store) => store,
        Err(e) => return fail(2, &e.to_string()),
    };
    let code = match command.as_str() {
        "write" => match write(&store, key.as_bytes()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => fail(2, &e.to_string()),
        },
        "read" => read(&store, key.as_bytes()),
        other => fail(2, &format!("unknown command {other:?}")),
    };
    match store.close() {
        Ok(()) => code,
        Err(e) => fail(2, &e.to_string()),
    }
}
