//! The one error type of the engine, with variants grouped by what the caller can do about them.

use std::io;
use std::path::PathBuf;
use std::time::Duration;

/// Result alias used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in walstore.
///
/// Match on the variant to decide what to do: retry later ([`Error::Busy`]), reopen
/// ([`Error::Poisoned`]), repair or salvage ([`Error::Corruption`]), fix the input
/// ([`Error::InvalidKey`], [`Error::ValueTooLarge`]), or report ([`Error::Io`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An operating-system I/O call failed. `op` names the call (`"fdatasync"`, `"rename"`, ...).
    #[error("{op} failed on {}: {source}{}", path.display(), io_hint(source))]
    Io {
        /// The operation that failed.
        op: &'static str,
        /// The file or directory it was applied to.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },

    /// Bytes that had been durably written no longer check out. Nothing was changed on disk;
    /// open with `RecoveryMode::Salvage` to read every intact committed transaction.
    #[error(
        "corruption in {} at byte offset {offset}: {detail} (the store was not modified; \
         open it with salvage mode to read what is intact)",
        file.display()
    )]
    Corruption {
        /// The damaged file.
        file: PathBuf,
        /// Byte offset of the first damaged byte or record found.
        offset: u64,
        /// What check failed.
        detail: String,
    },

    /// A write or fsync failed earlier; the store refuses further writes until reopened,
    /// because the kernel may have dropped the unsynced data and a retried fsync can lie.
    #[error(
        "the store is poisoned by an earlier failed {cause}: reopen it to recover from the log"
    )]
    Poisoned {
        /// What failed first.
        cause: String,
    },

    /// The writer lock was not obtained within the configured wait: another writer holds it.
    #[error(
        "the store is busy: another writer holds the lock; {}",
        busy_wait(waited)
    )]
    Busy {
        /// How long this call waited before giving up.
        waited: Duration,
    },

    /// A key is empty or longer than [`crate::MAX_KEY_BYTES`].
    #[error("invalid key: {reason}")]
    InvalidKey {
        /// Why the key was refused.
        reason: String,
    },

    /// A value is longer than [`crate::MAX_VALUE_BYTES`].
    #[error("value of {len} bytes is larger than the limit of {max} bytes")]
    ValueTooLarge {
        /// Length of the refused value.
        len: usize,
        /// The limit.
        max: usize,
    },

    /// A file was written by a format version this build does not read. To migrate a store:
    /// `walstore export` with a build that reads it, then `walstore import` with this one.
    #[error(
        "{} has format version {found}; this build reads version {supported}: migrate the \
         store with `walstore export STORE > FILE` using a walstore build that reads version \
         {found}, then `walstore import NEW_STORE < FILE` using this one (README, \"Upgrading\")",
        file.display()
    )]
    UnsupportedFormat {
        /// The file.
        file: PathBuf,
        /// The version found in the file.
        found: u32,
        /// The version this build reads and writes.
        supported: u32,
    },

    /// The directory exists and holds files that are not a walstore store.
    #[error("{} is not a walstore store: {detail}", path.display())]
    NotAStore {
        /// The directory.
        path: PathBuf,
        /// What was found.
        detail: String,
    },

    /// A name of the store directory holds a symbolic link or another kind of file (a
    /// directory, a FIFO, a socket, a device) where the store keeps a regular file. walstore
    /// never follows a link out of the store or opens such a file: remove it (a store file
    /// the link replaced must be restored from a backup).
    #[error(
        "{} is {found}, not a regular file: walstore never follows links or opens other kinds \
         of file in a store directory; remove it (restore the store file from a backup if it \
         replaced one)",
        path.display()
    )]
    NotARegularFile {
        /// The file.
        path: PathBuf,
        /// What the name holds (`"a symbolic link"`, `"a FIFO"`, ...).
        found: &'static str,
    },

    /// A write was attempted on a store opened read-only (or in salvage mode).
    #[error("the store is open read-only")]
    ReadOnly,

    /// The store handle was inherited across `fork()`; open the store again in the child.
    #[error("this store handle was opened by process {opened_by} and used after fork() in process {current}; open the store again in the child")]
    Forked {
        /// Process that opened the handle.
        opened_by: u32,
        /// Process that used it.
        current: u32,
    },

    /// The change feed no longer holds transaction `wanted`: it was checkpointed and its log
    /// not kept (no consumer registered for it, or the retention bounds dropped it). Nothing
    /// is skipped silently: start over from a snapshot (`Store::backup` gives a copy at a
    /// transaction id) and follow the feed from that id.
    #[error(
        "the change feed no longer holds transaction {wanted} (the oldest it holds is \
         {oldest}): it was checkpointed and its log not kept; start over from a snapshot \
         (`walstore backup`, or Store::backup, gives a copy at a transaction id) and follow \
         the feed from that id, and register a consumer (or raise the retention bounds) so \
         the log is kept"
    )]
    FeedGap {
        /// The transaction asked for.
        wanted: u64,
        /// The oldest transaction after it that the feed holds.
        oldest: u64,
    },

    /// A change feed consumer operation was refused (an unknown, duplicate or invalid name,
    /// or a position that would move back or past the newest commit).
    #[error("consumer {name:?}: {reason}")]
    InvalidConsumer {
        /// The consumer's name.
        name: String,
        /// Why.
        reason: String,
    },

    /// A typed value could not be encoded with MessagePack.
    #[error("value (de)serialization failed: {0}")]
    Serialization(String),

    /// A stored value is not a typed value of the requested type: not MessagePack (text such as
    /// `"200"`), MessagePack with bytes after it, or a value of another type (docs/VALUES.md).
    #[error("the stored value is not a typed value of the requested type: {detail} (read it as bytes with get)")]
    TypeMismatch {
        /// What did not match.
        detail: String,
    },
}

/// What a `Busy` caller waited: the time is this call's wait, not how long the other writer
/// has held the lock (which nobody here knows).
fn busy_wait(waited: &Duration) -> String {
    if waited.is_zero() {
        "this call was not to wait for it (retry later, or let it wait)".into()
    } else {
        format!("gave up after waiting {waited:.1?} (retry later, or wait longer)")
    }
}

fn io_hint(err: &io::Error) -> &'static str {
    match err.raw_os_error() {
        Some(28) => " (the disk is full: free space, then reopen the store)",
        Some(122) => " (disk quota exceeded: free space, then reopen the store)",
        Some(5) => " (a device I/O error: check the disk, then reopen the store)",
        _ => "",
    }
}

impl Error {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        if let Some(found) = crate::storage::NotARegularFile::of(&source) {
            return Error::NotARegularFile {
                path: path.into(),
                found,
            };
        }
        Error::Io {
            op,
            path: path.into(),
            source,
        }
    }

    pub(crate) fn corruption(
        file: impl Into<PathBuf>,
        offset: u64,
        detail: impl Into<String>,
    ) -> Self {
        Error::Corruption {
            file: file.into(),
            offset,
            detail: detail.into(),
        }
    }

    /// True for [`Error::Corruption`].
    pub fn is_corruption(&self) -> bool {
        matches!(self, Error::Corruption { .. })
    }

    /// True when the underlying cause is a full disk or exhausted quota.
    pub fn is_out_of_space(&self) -> bool {
        match self {
            Error::Io { source, .. } => matches!(source.raw_os_error(), Some(28 | 122)),
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The message said another writer "held the lock for" the time this call waited (0 ns
    /// when it was not to wait at all).
    #[test]
    fn busy_says_what_this_call_waited() {
        let at_once = Error::Busy {
            waited: Duration::ZERO,
        }
        .to_string();
        assert!(
            at_once.contains("another writer holds the lock"),
            "{at_once}"
        );
        assert!(at_once.contains("not to wait"), "{at_once}");
        let waited = Error::Busy {
            waited: Duration::from_secs(2),
        }
        .to_string();
        assert!(waited.contains("another writer holds the lock"), "{waited}");
        assert!(waited.contains("gave up after waiting 2.0s"), "{waited}");
        assert!(!waited.contains("held the lock for"), "{waited}");
    }
}
