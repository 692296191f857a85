//! The `walstore` command-line tool, as a library: [`Cli`] is the parsed command line,
//! [`execute`] runs it and returns its exit code or a [`Failure`], and [`run`] does the same
//! and also prints the failure. Both run against a [`Backend`]: the real file system for the
//! binary, a simulated one (full disk, I/O errors) for tests.
//!
//! ```
//! use clap::Parser;
//! use std::sync::Arc;
//! use walstore::storage::MemoryStorage;
//! use walstore_cli::{Backend, Cli, Exit};
//!
//! let backend = Backend::with_storage(Arc::new(MemoryStorage::new()), walstore::Options::new());
//! let cli = Cli::try_parse_from(["walstore", "set", "/db", "a=1", "b=2"]).unwrap();
//! assert_eq!(walstore_cli::execute(&cli, &backend).unwrap(), Exit::Ok);
//! ```
//!
//! Code map: `args` (clap definitions), `exit` (exit codes and error mapping), `encoding`
//! (bytes in JSON), `output` and `progress` (what goes to stdout and stderr), `commands` (one
//! module per group of commands). Invariant: only `commands` opens stores; only `output` and
//! `progress` write to the terminal.
//!
//! Exit codes (stable; scripts depend on them): see [`Exit`] and `docs/CLI.md`.

mod args;
mod commands;
pub mod encoding;
mod exit;
mod output;
mod progress;

pub use args::{arg_bytes, Cli, Command, ConsumerAction, DurabilityArg, WAIT_DEFAULT_SECONDS};
pub use exit::{Exit, Failure};

use serde_json::Value as Json;
use std::fmt;
use std::sync::Arc;
use walstore::storage::{FsStorage, Storage};
use walstore::Options;

/// The file system the commands use, and the options every store is opened with before the
/// global options (`--wait`, `--durability`, `--salvage`) are applied.
#[derive(Clone)]
pub struct Backend {
    options: Options,
    storage: Arc<dyn Storage>,
}

impl fmt::Debug for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Backend")
            .field("storage", &self.storage)
            .finish_non_exhaustive()
    }
}

impl Backend {
    /// The real file system with default options: what the binary uses.
    pub fn real() -> Self {
        Backend::with_storage(Arc::new(FsStorage), Options::new())
    }

    /// `storage` (for example a `walstore::storage::MemoryStorage` with a fault armed) for
    /// every command, including `dump` and `verify`, which read files without opening a store.
    pub fn with_storage(storage: Arc<dyn Storage>, options: Options) -> Self {
        Backend {
            options: options.storage(Arc::clone(&storage)),
            storage,
        }
    }
}

/// Runs the command and returns its exit code, or the failure (not printed).
pub fn execute(cli: &Cli, backend: &Backend) -> Result<Exit, Failure> {
    commands::execute(cli, backend)
}

/// Runs the command; prints its output and any failure (one line on stderr, and a JSON object
/// on stdout with `--json`); returns the exit code.
pub fn run(cli: &Cli, backend: &Backend) -> Exit {
    match execute(cli, backend) {
        Ok(exit) => exit,
        Err(failure) => {
            if cli.json {
                let line = output::answer(failure.exit, Some(&failure.message), Json::Null);
                // Best effort: the message also goes to stderr and the exit code tells.
                let _ = output::print_json(&line);
            }
            output::say(&failure.message);
            failure.exit
        }
    }
}
