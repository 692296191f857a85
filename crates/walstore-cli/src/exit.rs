//! Exit codes and failures: how every engine error becomes one exit code and one line that
//! says what to do. The codes are stable; scripts depend on them (`docs/CLI.md`).

use std::io;

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
    /// The writer lock was not obtained within `--wait` (for `compact`, also: another
    /// process was still merging when `--wait` ran out).
    Busy = 3,
    /// Corruption found.
    Corruption = 4,
    /// Any other I/O error, including a full disk.
    Io = 5,
    /// The change feed no longer holds the transactions asked for (checkpointed and not
    /// kept): start over from a backup and follow the feed from its transaction id.
    FeedGap = 6,
}

impl Exit {
    /// The number the process exits with.
    pub fn code(self) -> u8 {
        self as u8
    }
}

/// A failure with the exit code it maps to and a one-line message that says what to do.
#[derive(Debug)]
pub struct Failure {
    /// The exit code.
    pub exit: Exit,
    /// One line, without the `walstore:` prefix.
    pub message: String,
}

impl Failure {
    pub(crate) fn new(exit: Exit, message: impl Into<String>) -> Self {
        Failure {
            exit,
            message: one_line(message.into()),
        }
    }

    pub(crate) fn usage(message: impl Into<String>) -> Self {
        Failure::new(Exit::Usage, message)
    }

    /// Writing our own output failed (stdout closed, a full disk behind a redirection).
    pub(crate) fn stdout(e: &io::Error) -> Self {
        let hint = if e.kind() == io::ErrorKind::BrokenPipe {
            " (the program reading the output exited first)"
        } else {
            ""
        };
        Failure::new(Exit::Io, format!("cannot write to stdout: {e}{hint}"))
    }
}

/// Messages may quote user input or OS text; stderr gets exactly one line.
pub(crate) fn one_line(message: String) -> String {
    if message.contains(['\n', '\r']) {
        message.replace(['\n', '\r'], " ")
    } else {
        message
    }
}

fn exit_for(e: &walstore::Error) -> Exit {
    use walstore::Error as E;
    match e {
        E::Busy { .. } => Exit::Busy,
        E::FeedGap { .. } => Exit::FeedGap,
        E::Corruption { .. } => Exit::Corruption,
        E::InvalidKey { .. }
        | E::ValueTooLarge { .. }
        | E::NotAStore { .. }
        | E::NotARegularFile { .. }
        | E::ReadOnly
        | E::InvalidConsumer { .. } => Exit::Usage,
        E::Io { source, .. } if source.kind() == io::ErrorKind::NotADirectory => Exit::Usage,
        _ => Exit::Io,
    }
}

fn hint_for(e: &walstore::Error, exit: Exit) -> &'static str {
    use walstore::Error as E;
    match (exit, e) {
        (Exit::Busy, _) => " (retry, or wait longer with --wait SECONDS)",
        (Exit::Corruption, _) => {
            " (run `walstore verify` for every damaged file; --salvage reads what is intact)"
        }
        (Exit::Usage, E::ReadOnly) => {
            " (--salvage opens read-only: only get, scan, export, info and backup)"
        }
        (Exit::Usage, E::Io { .. }) => " (STORE must be the store's directory, not a file)",
        (Exit::Usage, E::NotAStore { .. }) => {
            " (check the path; writing commands create a store only in a missing or empty directory)"
        }
        (Exit::Io, E::Poisoned { .. }) => " (run the command again)",
        (Exit::FeedGap, _) => {
            " (`walstore retention STORE --keep-bytes BYTES` keeps more log)"
        }
        (Exit::Usage, E::InvalidConsumer { .. }) => " (`walstore consumer STORE list` shows each consumer and its position)",
        _ => "",
    }
}

impl From<walstore::Error> for Failure {
    fn from(e: walstore::Error) -> Self {
        let exit = exit_for(&e);
        let hint = hint_for(&e, exit);
        Failure::new(exit, format!("{e}{hint}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;
    use std::time::Duration;
    use walstore::Error;

    fn io(code: i32) -> Error {
        walstore::Error::Io {
            op: "write",
            path: PathBuf::from("s/wal"),
            source: io::Error::from_raw_os_error(code),
        }
    }

    #[test]
    fn each_kind_of_engine_error_has_its_exit_code() {
        let busy = Error::Busy {
            waited: Duration::ZERO,
        };
        let corrupt = Error::Corruption {
            file: "s/wal".into(),
            offset: 4136,
            detail: "checksum".into(),
        };
        let key = Error::InvalidKey {
            reason: "empty".into(),
        };
        let cases = [
            (busy, Exit::Busy),
            (corrupt, Exit::Corruption),
            (key, Exit::Usage),
            (Error::ReadOnly, Exit::Usage),
            (io(20), Exit::Usage),
            (io(28), Exit::Io),
            (io(5), Exit::Io),
            (
                Error::FeedGap {
                    wanted: 3,
                    oldest: 9,
                },
                Exit::FeedGap,
            ),
            (
                Error::InvalidConsumer {
                    name: "c".into(),
                    reason: "unknown".into(),
                },
                Exit::Usage,
            ),
        ];
        for (error, exit) in cases {
            assert_eq!(Failure::from(error).exit, exit);
        }
    }

    #[test]
    fn a_full_disk_says_so_and_every_message_is_one_line() {
        let failure = Failure::from(io(28));
        assert!(
            failure.message.contains("disk is full"),
            "{}",
            failure.message
        );
        let multi = Failure::usage("line one\nline two\r\n");
        assert!(!multi.message.contains('\n') && !multi.message.contains('\r'));
    }
}
