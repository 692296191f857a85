//! walstore: an embedded, transactional, crash-safe key-value store.
//!
//! Writes of a transaction go to a checksummed write-ahead log and count once their commit
//! record is intact; a checkpointer folds the log into immutable, memory-mapped snapshot
//! files. Several threads and several processes may use one store at once: writers are
//! serialized by a cross-process lock held for one transaction, readers see consistent
//! snapshots and never block or wait.
//!
//! ```
//! # fn main() -> walstore::Result<()> {
//! # let dir = tempfile::tempdir().unwrap();
//! let store = walstore::Store::open(dir.path())?;
//!
//! // Three settings change together or not at all.
//! store.update(|tx| {
//!     tx.put(b"server.url", b"https://example.net")?;
//!     tx.put(b"server.namespace", b"prod")?;
//!     tx.put(b"server.tls-verify", b"true")?;
//!     Ok::<_, walstore::Error>(())
//! })?;
//!
//! // A read-modify-write that no other thread or process can interleave with.
//! store.update(|tx| {
//!     let n: u64 = tx.get_as(b"counter")?.unwrap_or(0);
//!     tx.put_as(b"counter", &(n + 1))
//! })?;
//!
//! let read = store.begin_read()?;
//! assert_eq!(read.get(b"server.namespace")?.as_deref(), Some(&b"prod"[..]));
//! assert_eq!(read.get_as::<u64>(b"counter")?, Some(1));
//! for item in read.scan_prefix(b"server.")? {
//!     let (key, value) = item?;
//!     println!("{} = {}", String::from_utf8_lossy(&key), String::from_utf8_lossy(&value));
//! }
//! drop(read);
//!
//! // Closing (or dropping the last clone) the store's last handle marks the log clean: the
//! // next open has nothing to recover. After a kill, the next open folds the last commits
//! // into snapshot files instead.
//! store.close()?;
//! # Ok(()) }
//! ```
//!
//! See `docs/GUARANTEES.md` for what each [`Durability`] level promises, `docs/FORMAT.md` for
//! the bytes on disk and `docs/RECOVERY.md` for what happens after a crash.

mod backup;
mod cases;
mod catchup;
mod checkpoint;
mod checksum;
mod core;
mod deletes;
mod error;
mod faults;
pub mod feed;
mod fork;
mod format;
pub mod index;
mod indexed;
pub mod inspect;
mod load;
mod logindex;
mod manifest;
mod merge;
mod open;
mod options;
mod output;
mod run;
mod runs;
mod snapshot;
pub mod storage;
mod store;
mod tail;
mod txn;
pub mod typed;
mod value;
mod version;
mod wal;
mod watch;
mod worker;

pub use backup::BackupStats;
pub use checkpoint::CheckpointStats;
pub use error::{Error, Result};
#[cfg(feature = "fault-injection")]
pub use faults::EngineFaults;
pub use feed::{ApplyStats, Changes, FeedRecord, FeedState, Retention};
pub use format::{MAX_KEY_BYTES, MAX_VALUE_BYTES};
pub use merge::MergeStats;
pub use options::{Durability, LockWait, Options, RecoveryMode};
pub use store::{Store, StoreInfo};
pub use txn::{ReadTxn, WriteTxn};
pub use value::Value;
pub use version::Iter;
pub use watch::{Change, Watch};

/// A number that differs in a process forked from this one (a `pthread_atfork` handler
/// changes it in the child). Wrappers that hold engine objects (the Python module) compare it
/// to tell an object inherited across `fork()` without a system call; walstore's own handles
/// do (`Error::Forked`).
pub fn fork_epoch() -> u64 {
    fork::epoch()
}
