//! The command line, as clap parses it. Keys and values are taken as raw OS strings, so any
//! byte string a shell can pass (not only UTF-8) reaches the store unchanged.
//!
//! Invariant: this module knows nothing about stores; it only describes and converts arguments.

use clap::{Parser, Subcommand, ValueEnum};
use std::ffi::{OsStr, OsString};
use std::path::PathBuf;
use std::time::Duration;
use walstore::{Durability, LockWait, Options, RecoveryMode};

/// How long a writing command waits for the writer lock when `--wait` is not given.
pub const WAIT_DEFAULT_SECONDS: u64 = 30;

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
    /// Open a damaged store read-only with everything intact (get, scan, export, info, backup).
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

/// The commands. Every one takes the store directory first.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Set every KEY=VALUE in one transaction (KEY=@PATH takes the value from a file, KEY=@-
    /// from stdin). With --json, each value is JSON, stored as a typed value.
    Set {
        /// The store directory (created if missing).
        store: PathBuf,
        /// Pairs to set; the first `=` separates key from value.
        #[arg(required = true, value_name = "KEY=VALUE")]
        pairs: Vec<OsString>,
    },
    /// Write the value to stdout: a typed string as its text, another typed value as JSON,
    /// other bytes exactly (--raw: the stored bytes exactly, typed or not); several keys are
    /// read from one snapshot (exit 1 if any is missing, or if no store exists at STORE yet).
    Get {
        /// The store directory.
        store: PathBuf,
        /// The keys.
        #[arg(required = true)]
        keys: Vec<OsString>,
        /// Print the stored bytes exactly, also for typed values.
        #[arg(long)]
        raw: bool,
    },
    /// Delete every KEY in one transaction; or, with --prefix or --from/--to, every key in a
    /// range (one range deletion in one transaction, however many keys it covers).
    Del {
        /// The store directory.
        store: PathBuf,
        /// Keys to delete (missing ones are fine).
        #[arg(
            required_unless_present_any = ["prefix", "from", "to"],
            conflicts_with_all = ["prefix", "from", "to"]
        )]
        keys: Vec<OsString>,
        /// Delete every key that starts with PREFIX (not empty).
        #[arg(long, value_name = "PREFIX", conflicts_with_all = ["from", "to"])]
        prefix: Option<OsString>,
        /// Delete every key from A, included, on (up to --to if given; "" is the first key).
        #[arg(long, value_name = "A")]
        from: Option<OsString>,
        /// Delete every key before B: the end is excluded (from the first key if --from is not
        /// given).
        #[arg(long, value_name = "B")]
        to: Option<OsString>,
    },
    /// Add BY (default 1) to a counter (missing counts as 0); print the new value. A counter
    /// in decimal text stays text, a typed integer stays typed.
    Incr {
        /// The store directory (created if missing).
        store: PathBuf,
        /// The counter's key.
        key: OsString,
        /// How much to add (may be negative).
        #[arg(allow_negative_numbers = true)]
        by: Option<i64>,
    },
    /// Set KEY to NEW only if its value equals EXPECTED (exit 1 otherwise).
    Cas {
        /// The store directory (created if missing).
        store: PathBuf,
        /// The key.
        key: OsString,
        /// The value the key must hold now.
        expected: OsString,
        /// The value to set.
        new: OsString,
    },
    /// List keys and values in key order (descending with --reverse), optionally those
    /// starting with PREFIX (exit 1 if no store exists at STORE yet); values are shown as
    /// `get` shows them.
    Scan {
        /// The store directory.
        store: PathBuf,
        /// Only keys starting with this.
        prefix: Option<OsString>,
        /// In descending key order, from the last key.
        #[arg(long)]
        reverse: bool,
        /// At most N keys (the first N in the order listed).
        #[arg(long, value_name = "N")]
        limit: Option<usize>,
        /// Print the stored bytes of each value, also for typed values (as `get --raw`).
        #[arg(long)]
        raw: bool,
    },
    /// Print each change under PREFIX (every key without one) as a JSON line once it is
    /// committed, by any process: until killed, after --count changes, or --timeout seconds
    /// after it started (exit 1 if no store exists at STORE yet).
    Watch {
        /// The store directory.
        store: PathBuf,
        /// Only keys starting with this.
        prefix: Option<OsString>,
        /// Exit 0 this many seconds after starting, however many changes came (fractions
        /// allowed; 0 or less: at once).
        #[arg(long, value_name = "SECONDS")]
        timeout: Option<f64>,
        /// Exit 0 after N changes.
        #[arg(long, value_name = "N")]
        count: Option<u64>,
    },
    /// Apply operations read as JSON Lines from stdin in one transaction, or none of them.
    Txn {
        /// The store directory (created if missing).
        store: PathBuf,
    },
    /// Write every key and value to stdout as JSON Lines.
    Export {
        /// The store directory.
        store: PathBuf,
    },
    /// Read JSON Lines (as written by export) from stdin and store them in one transaction.
    Import {
        /// The store directory (created if missing).
        store: PathBuf,
    },
    /// Fold the log into snapshot files now.
    Checkpoint {
        /// The store directory.
        store: PathBuf,
    },
    /// Checkpoint, then merge every sorted run into one, dropping deleted and overwritten
    /// data; report each merge.
    Compact {
        /// The store directory.
        store: PathBuf,
    },
    /// Files, sizes, runs, generation, log length, transactions since the last checkpoint.
    Info {
        /// The store directory.
        store: PathBuf,
    },
    /// WAL records with offsets, transaction ids, commit records, and where recovery stops.
    Dump {
        /// The store directory.
        store: PathBuf,
    },
    /// Check every checksum of every file (exit 4 naming file and offset of any damage).
    Verify {
        /// The store directory.
        store: PathBuf,
    },
    /// Write a consistent copy of the store to DEST (which then opens as a store).
    Backup {
        /// The store directory.
        store: PathBuf,
        /// Where the copy goes: a directory that does not exist or is empty.
        dest: PathBuf,
    },
    /// Print each committed transaction's changes (under --prefix) as one JSON line, in
    /// commit order: {"txn":N,"range_deletes":[[START,END|null]...],"writes":[[KEY,VALUE|null]...]}.
    /// Without --follow: what is durable now, then exit 0.
    Changes {
        /// The store directory.
        store: PathBuf,
        /// Only changes to keys starting with PREFIX.
        #[arg(long, value_name = "PREFIX")]
        prefix: Option<OsString>,
        /// Start after transaction N (default 0: from the first one the store holds).
        #[arg(long, value_name = "N", conflicts_with = "consumer")]
        since: Option<u64>,
        /// Start after consumer NAME's last acknowledged transaction.
        #[arg(long, value_name = "NAME")]
        consumer: Option<String>,
        /// Stop after the last record with a transaction id <= N.
        #[arg(long, value_name = "N")]
        until: Option<u64>,
        /// Keep printing new durable commits until killed (or --until is reached).
        #[arg(long)]
        follow: bool,
        /// With --consumer: acknowledge each record once it is printed.
        #[arg(long, requires = "consumer")]
        ack: bool,
    },
    /// Apply `changes` JSON lines read from stdin to STORE, a replica (records it already
    /// applied are skipped); print what it did on stderr.
    Apply {
        /// The replica's directory (created if missing).
        store: PathBuf,
    },
    /// Register, acknowledge, unregister or list the change feed's named consumers.
    Consumer {
        /// The store directory.
        store: PathBuf,
        /// What to do.
        #[command(subcommand)]
        action: ConsumerAction,
    },
    /// Show the change feed's retention policy and what it keeps; set the fields given.
    Retention {
        /// The store directory.
        store: PathBuf,
        /// Sealed log kept whether or not a consumer needs it (for point-in-time restores).
        #[arg(long, value_name = "BYTES")]
        keep_bytes: Option<u64>,
        /// The most sealed log kept, even for consumers that still need it.
        #[arg(long, value_name = "BYTES")]
        max_bytes: Option<u64>,
        /// The oldest sealed log kept, even for consumers that still need it.
        #[arg(long, value_name = "SECONDS")]
        max_age_secs: Option<u64>,
    },
}

/// `consumer` subcommands.
#[derive(Debug, Subcommand)]
pub enum ConsumerAction {
    /// Register NAME, positioned after the newest commit (or after --after N); print it.
    Register {
        /// The consumer's name.
        name: String,
        /// Position it after transaction N (which must still be readable).
        #[arg(long, value_name = "N")]
        after: Option<u64>,
    },
    /// Record that NAME has processed every transaction through TXN.
    Ack {
        /// The consumer's name.
        name: String,
        /// The last transaction it processed.
        txn: u64,
    },
    /// Remove NAME (the log kept for it is dropped at the next checkpoint).
    Unregister {
        /// The consumer's name.
        name: String,
    },
    /// Print each consumer and its last acknowledged transaction.
    List,
}

impl Cli {
    /// The options a command opens its store with: `base` plus the global options.
    pub fn options(&self, base: Options) -> Options {
        let mut options = base.lock_wait(lock_wait(self.wait));
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

/// `--wait SECONDS` as a lock wait. Zero, negative and NaN mean "do not wait"; the upper end
/// is clamped so that no number can overflow a `Duration`.
pub(crate) fn lock_wait(seconds: Option<f64>) -> LockWait {
    match seconds {
        None => LockWait::Timeout(Duration::from_secs(WAIT_DEFAULT_SECONDS)),
        Some(s) if s.is_nan() || s <= 0.0 => LockWait::NoWait,
        Some(s) if s.is_infinite() => LockWait::Forever,
        Some(s) => LockWait::Timeout(Duration::from_secs_f64(s.min(1e9))),
    }
}

/// The bytes of a command-line argument, exactly as the shell passed them.
#[cfg(unix)]
pub fn arg_bytes(arg: &OsStr) -> Vec<u8> {
    use std::os::unix::ffi::OsStrExt;
    arg.as_bytes().to_vec()
}

/// The bytes of a command-line argument (UTF-8; anything else is replaced, as the platform
/// gives no byte view of its arguments).
#[cfg(not(unix))]
pub fn arg_bytes(arg: &OsStr) -> Vec<u8> {
    arg.to_string_lossy().into_owned().into_bytes()
}

/// A path given as the bytes of (part of) a command-line argument: `KEY=@PATH`.
#[cfg(unix)]
pub(crate) fn path_from_bytes(bytes: &[u8]) -> PathBuf {
    use std::os::unix::ffi::OsStrExt;
    PathBuf::from(OsStr::from_bytes(bytes))
}

/// A path given as the bytes of (part of) a command-line argument: `KEY=@PATH`.
#[cfg(not(unix))]
pub(crate) fn path_from_bytes(bytes: &[u8]) -> PathBuf {
    PathBuf::from(String::from_utf8_lossy(bytes).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wait_seconds_never_overflow_and_non_positive_means_no_wait() {
        assert_eq!(lock_wait(Some(0.0)), LockWait::NoWait);
        assert_eq!(lock_wait(Some(-3.0)), LockWait::NoWait);
        assert_eq!(lock_wait(Some(f64::NAN)), LockWait::NoWait);
        assert_eq!(lock_wait(Some(f64::INFINITY)), LockWait::Forever);
        assert_eq!(
            lock_wait(Some(1e300)),
            LockWait::Timeout(Duration::from_secs(1_000_000_000))
        );
        assert_eq!(
            lock_wait(Some(0.25)),
            LockWait::Timeout(Duration::from_millis(250))
        );
        assert_eq!(
            lock_wait(None),
            LockWait::Timeout(Duration::from_secs(WAIT_DEFAULT_SECONDS))
        );
    }

    #[test]
    fn the_command_line_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
