//! The `walstore` command-line tool, as a library: [`Cli`] is the parsed command line and
//! [`run`] executes it against a store opened with the given base [`walstore::Options`] (the
//! binary passes the defaults; tests can pass a simulated file system).
//!
//! Exit codes (stable; scripts depend on them): see [`Exit`] and `docs/CLI.md`.

mod commands;
pub mod encoding;

use clap::{Parser, Subcommand, ValueEnum};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Duration;
use walstore::{Durability, LockWait, Options, RecoveryMode};

/// Process exit codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Exit {
    /// Success.
    Ok = 0,
    /// The key is missing (`get`), or a comparison failed (`cas`, a `txn` guard).
    NotFound = 1,
    /// Bad usage: arguments, input, a path that is not a store.
    Usage = 2,
    /// The writer lock was not obtained within `--wait`.
    Busy = 3,
    /// Corruption found.
    Corruption = 4,
    /// Any other I/O error, including a full disk.
    Io = 5,
}

/// Embedded, transactional, crash-safe key-value store: atomic edits from any language.
#[derive(Debug, Parser)]
#[command(name = "walstore", version, about, long_about = None)]
pub struct Cli {
    /// Machine-readable output: one JSON object (or JSON Lines for scan and export).
    #[arg(long, global = true)]
    pub json: bool,
    /// How long to wait for the writer lock, in seconds (default 30; 0 fails at once).
    #[arg(long, global = true, value_name = "SECONDS")]
    pub wait: Option<f64>,
    /// Durability of writes: immediate (survives power loss, default) or buffered (survives
    /// a crash of the process).
    #[arg(long, global = true, value_enum)]
    pub durability: Option<DurabilityArg>,
    /// Open a damaged store read-only with everything intact (get, scan, export, info).
    #[arg(long, global = true)]
    pub salvage: bool,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// `--durability` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DurabilityArg {
    /// fdatasync before the command returns.
    Immediate,
    /// Handed to the OS only.
    Buffered,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Set every KEY=VALUE in one transaction (KEY=@PATH takes the value from a file).
    Set {
        store: PathBuf,
        #[arg(required = true, value_name = "KEY=VALUE")]
        pairs: Vec<String>,
    },
    /// Write the value's bytes to stdout exactly (exit 1 if missing).
    Get { store: PathBuf, key: String },
    /// Delete every KEY in one transaction.
    Del {
        store: PathBuf,
        #[arg(required = true)]
        keys: Vec<String>,
    },
    /// Add BY (default 1) to a decimal integer (missing counts as 0); print the new value.
    Incr {
        store: PathBuf,
        key: String,
        #[arg(allow_negative_numbers = true)]
        by: Option<i64>,
    },
    /// Set KEY to NEW only if its value equals EXPECTED (exit 1 otherwise).
    Cas {
        store: PathBuf,
        key: String,
        expected: String,
        new: String,
    },
    /// List keys and values in key order, optionally those starting with PREFIX.
    Scan {
        store: PathBuf,
        prefix: Option<String>,
    },
    /// Apply operations read as JSON Lines from stdin in one transaction, or none of them.
    Txn { store: PathBuf },
    /// Write every key and value to stdout as JSON Lines.
    Export { store: PathBuf },
    /// Read JSON Lines (as written by export) from stdin and store them in one transaction.
    Import { store: PathBuf },
    /// Fold the log into snapshot files now.
    Checkpoint { store: PathBuf },
    /// Files, sizes, generation, log length, transactions since the last checkpoint.
    Info { store: PathBuf },
    /// WAL records with offsets, transaction ids, commit records, and where recovery stops.
    Dump { store: PathBuf },
    /// Check every checksum of every file (exit 4 naming file and offset of any damage).
    Verify { store: PathBuf },
    /// Write a consistent copy of the store to DEST (which then opens as a store).
    Backup { store: PathBuf, dest: PathBuf },
}

/// A failure with the exit code it maps to and a one-line message that says what to do.
#[derive(Debug)]
pub struct Failure {
    pub exit: Exit,
    pub message: String,
}

impl Failure {
    pub(crate) fn new(exit: Exit, message: impl Into<String>) -> Self {
        Failure {
            exit,
            message: message.into(),
        }
    }

    pub(crate) fn usage(message: impl Into<String>) -> Self {
        Failure::new(Exit::Usage, message)
    }
}

impl From<walstore::Error> for Failure {
    fn from(e: walstore::Error) -> Self {
        use walstore::Error as E;
        let exit = match &e {
            E::Busy { .. } => Exit::Busy,
            E::Corruption { .. } => Exit::Corruption,
            E::InvalidKey { .. } | E::ValueTooLarge { .. } | E::NotAStore { .. } | E::ReadOnly => {
                Exit::Usage
            }
            _ => Exit::Io,
        };
        let hint = match exit {
            Exit::Busy => " (retry, or wait longer with --wait SECONDS)",
            Exit::Corruption => {
                " (run `walstore verify` for every damaged file; --salvage reads what is intact)"
            }
            Exit::Usage if matches!(e, E::ReadOnly) => {
                " (--salvage opens read-only: only get, scan, export and info)"
            }
            _ => "",
        };
        Failure::new(exit, format!("{e}{hint}"))
    }
}

impl Cli {
    /// The options a command opens its store with.
    pub fn options(&self, base: Options) -> Options {
        let wait = match self.wait {
            None => LockWait::Timeout(Duration::from_secs(30)),
            Some(s) if s <= 0.0 || !s.is_finite() => LockWait::NoWait,
            Some(s) => LockWait::Timeout(Duration::from_secs_f64(s.min(1e9))),
        };
        let mut options = base.lock_wait(wait);
        if let Some(d) = self.durability {
            options = options.durability(match d {
                DurabilityArg::Immediate => Durability::Immediate,
                DurabilityArg::Buffered => Durability::Buffered,
            });
        }
        if self.salvage {
            options = options.recovery(RecoveryMode::Salvage);
        }
        options
    }
}

/// Runs the command; prints its output and any error (one line on stderr); returns the exit
/// code.
pub fn run(cli: &Cli, base: Options) -> Exit {
    match commands::execute(cli, base) {
        Ok(exit) => exit,
        Err(failure) => {
            if cli.json {
                let line = serde_json::json!({
                    "ok": false,
                    "exit": failure.exit as u8,
                    "error": failure.message,
                });
                println!("{line}");
            }
            eprintln!("walstore: {}", failure.message);
            failure.exit
        }
    }
}

/// A progress bar on stderr that appears only when stderr is a terminal and the work has
/// already taken half a second: short commands and pipelines stay silent.
pub(crate) struct Progress {
    bar: Option<indicatif::ProgressBar>,
    started: std::time::Instant,
    len: Option<u64>,
    pos: u64,
    what: &'static str,
    terminal: bool,
}

impl Progress {
    pub(crate) fn new(len: Option<u64>, what: &'static str) -> Self {
        Progress {
            bar: None,
            started: std::time::Instant::now(),
            len,
            pos: 0,
            what,
            terminal: std::io::stderr().is_terminal(),
        }
    }

    pub(crate) fn set(&mut self, pos: u64) {
        self.pos = pos;
        match &self.bar {
            Some(bar) => bar.set_position(pos),
            None if self.terminal && self.started.elapsed() > Duration::from_millis(500) => {
                let bar = match self.len {
                    Some(n) => indicatif::ProgressBar::new(n),
                    None => indicatif::ProgressBar::new_spinner(),
                };
                let template = match self.len {
                    Some(_) => "{msg} [{bar:40}] {pos}/{len} ({eta})",
                    None => "{spinner} {msg} {pos} ({elapsed})",
                };
                if let Ok(style) = indicatif::ProgressStyle::with_template(template) {
                    bar.set_style(style);
                }
                bar.set_message(self.what);
                bar.set_position(pos);
                bar.enable_steady_tick(Duration::from_millis(200));
                self.bar = Some(bar);
            }
            None => {}
        }
    }

    pub(crate) fn inc(&mut self, n: u64) {
        self.set(self.pos + n);
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}
