//! The engine under test as the harness sees it: the [`Engine`] that opens a [`Handle`], its
//! transactions, what it [`Promises`], its optional [`StructuralCheck`], the errors the oracle
//! tells apart, and the few helpers every caller shares.

use crate::image::Image;
use crate::oracle::{State, Violation};
use crate::simfs::SimFs;
use crate::workload::Dur;
use ::walstore::storage::Storage;
use std::collections::BTreeMap;
use std::fmt;
use std::ops::Bound;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The store's directory inside every simulated file system.
pub const STORE_DIR: &str = "/db";

/// Keys and values, in key order.
pub type Entries = Vec<(Vec<u8>, Vec<u8>)>;

/// What went wrong in an engine call. The harness tells corruption reports (a checksum that
/// does not hold, a format it does not know) from every other error: damage to synced
/// bytes must be reported as corruption, and nothing else may be (invariant 7).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineError {
    /// Which kind.
    pub kind: ErrorKind,
    /// The engine's own message.
    pub message: String,
}

/// The kinds of [`EngineError`] the oracle tells apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ErrorKind {
    /// Stored bytes failed a check: `file` at byte `offset`.
    Corruption {
        /// The file.
        file: PathBuf,
        /// Where.
        offset: u64,
    },
    /// A file's format version is not one the engine reads.
    UnsupportedFormat {
        /// The file.
        file: PathBuf,
    },
    /// Any other error (I/O, a poisoned handle, a lock, a bad argument).
    Other,
}

impl EngineError {
    /// An error of kind [`ErrorKind::Other`].
    pub fn other(message: impl fmt::Display) -> Self {
        EngineError {
            kind: ErrorKind::Other,
            message: message.to_string(),
        }
    }

    /// Whether stored bytes failed a check.
    pub fn is_corruption(&self) -> bool {
        matches!(self.kind, ErrorKind::Corruption { .. })
    }
}

impl fmt::Display for EngineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for EngineError {}

impl From<std::io::Error> for EngineError {
    fn from(e: std::io::Error) -> Self {
        EngineError::other(e)
    }
}

/// The unit a crash may not split.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AtomicityUnit {
    /// A transaction's writes are all visible after a crash, or none is.
    Transaction,
    /// Only single writes are atomic: the harness commits every write of a workload's
    /// transactions as a transaction of its own (crashes still may not reorder them).
    Write,
}

/// What an engine promises; the harness checks exactly that.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Promises {
    /// `Dur::Immediate`: a commit asked for Immediate survives a power cut once it returns.
    /// `Dur::Buffered`: only `sync` (or `checkpoint`) makes commits survive a power cut; the
    /// harness runs every commit as Buffered. Either way a commit that returned survives a
    /// process kill (everything written to the OS does).
    pub durability: Dur,
    /// What a crash may not split.
    pub atomicity: AtomicityUnit,
    /// A failed log write or sync on one handle poisons every handle of the store (they
    /// share it), until every handle has closed the store: the others must refuse commits
    /// too. `false`: only the handle that saw the failure must refuse (the others may still
    /// fail, as poisoned by it).
    pub poison_shared: bool,
}

impl Default for Promises {
    /// walstore's: Immediate commits, atomic transactions, a poison shared by every handle.
    fn default() -> Self {
        Promises {
            durability: Dur::Immediate,
            atomicity: AtomicityUnit::Transaction,
            poison_shared: true,
        }
    }
}

/// An engine the harness can test.
pub trait Engine: Send + Sync {
    /// A short name for reports.
    fn name(&self) -> String;

    /// What the engine promises.
    fn promises(&self) -> Promises {
        Promises::default()
    }

    /// Opens (creating if needed) the store in `dir` on `storage`, running recovery.
    /// `settings` are the workload's sizes (an engine may ignore them); `None` asks for the
    /// engine's own defaults (the kill test, on the real file system).
    fn open(
        &self,
        storage: Arc<dyn Storage>,
        dir: &Path,
        settings: Option<&crate::workload::EngineSettings>,
    ) -> Result<Box<dyn Handle>, EngineError>;

    /// The optional structural check of the engine's files (invariant 9 and the knowledge
    /// that sharpens invariants 3, 7, 10 and 11); without one those checks are skipped.
    fn structure(&self) -> Option<&dyn StructuralCheck> {
        None
    }
}

/// An open store. Two threads may commit on one handle at once (the driver's concurrent
/// steps); dropping it closes it (a second handle on the same directory may be open).
pub trait Handle: Send + Sync {
    /// Begins a write transaction committed with `durability`.
    fn begin_write(&self, durability: Dur) -> Result<Box<dyn WriteTxn + '_>, EngineError>;
    /// Begins a read transaction: one consistent state.
    fn begin_read(&self) -> Result<Box<dyn ReadTxn + '_>, EngineError>;
    /// Makes every commit so far survive a power cut.
    fn sync(&self) -> Result<(), EngineError>;
    /// Folds the log into the store's files (engines without one: nothing to do).
    fn checkpoint(&self) -> Result<(), EngineError> {
        Ok(())
    }
    /// Checkpoints and merges the store's files into their most compact form (engines
    /// without one: a checkpoint).
    fn compact(&self) -> Result<(), EngineError> {
        self.checkpoint()
    }
    /// Merges the store's files as the engine's own merge policy picks them, which may leave
    /// the oldest out (engines without one: nothing to do).
    fn merge(&self) -> Result<(), EngineError> {
        Ok(())
    }
    /// Every durable transaction of the store's change feed after the workload's feed
    /// consumer's position, when the workload asked for a consumer
    /// (`EngineSettings::feed_consumer`) and the engine has a feed; `None` otherwise (the
    /// feed check, invariant 13, is then skipped).
    fn feed(&self) -> Option<Result<Vec<FeedRecord>, EngineError>> {
        None
    }
    /// Acknowledges, for the workload's feed consumer, every transaction committed so far
    /// (the feed then resumes after them); `None` for an engine without a feed.
    fn feed_ack(&self) -> Option<Result<(), EngineError>> {
        None
    }
}

/// One committed transaction as an engine's change feed yields it: its range deletions
/// (`[lo, hi)`, `None`: no upper bound), then its writes (`None`: a delete), as strings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedRecord {
    /// Range deletions, applied first.
    pub range_deletes: Vec<(String, Option<String>)>,
    /// Writes, in order.
    pub writes: Vec<(String, Option<String>)>,
}

/// A write transaction.
pub trait WriteTxn {
    /// Reads `key` as this transaction sees it.
    fn get(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>, EngineError>;
    /// Sets `key` to `value`.
    fn put(&mut self, key: &[u8], value: &[u8]) -> Result<(), EngineError>;
    /// Deletes `key`.
    fn delete(&mut self, key: &[u8]) -> Result<(), EngineError>;
    /// Deletes every key from `lo` (included) to `hi` (excluded); nothing if `hi <= lo`.
    fn delete_range(&mut self, lo: &[u8], hi: &[u8]) -> Result<(), EngineError>;
    /// Commits; Ok is an acknowledgement.
    fn commit(self: Box<Self>) -> Result<(), EngineError>;
    /// Rolls back.
    fn abort(self: Box<Self>);
}

/// A read transaction.
pub trait ReadTxn {
    /// The value of `key`.
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, EngineError>;
    /// The entries between two bounds, in key order.
    fn range(&self, lo: Bound<&[u8]>, hi: Bound<&[u8]>) -> Result<Entries, EngineError>;
    /// The entries whose key starts with `prefix`, in key order.
    fn scan_prefix(&self, prefix: &[u8]) -> Result<Entries, EngineError>;
    /// The entries between two bounds, in reverse key order. The default reverses
    /// [`ReadTxn::range`], for engines without a reverse read of their own.
    fn range_rev(&self, lo: Bound<&[u8]>, hi: Bound<&[u8]>) -> Result<Entries, EngineError> {
        let mut entries = self.range(lo, hi)?;
        entries.reverse();
        Ok(entries)
    }
}

/// A read transaction over a map held in memory, for engines that load their whole state
/// (`Box::new(MapRead(map))`).
#[derive(Debug, Clone, Default)]
pub struct MapRead(pub BTreeMap<Vec<u8>, Vec<u8>>);

impl ReadTxn for MapRead {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, EngineError> {
        Ok(self.0.get(key).cloned())
    }

    fn range(&self, lo: Bound<&[u8]>, hi: Bound<&[u8]>) -> Result<Entries, EngineError> {
        // `BTreeMap::range` panics on inverted bounds; an inverted range is empty.
        let inverted = match (lo, hi) {
            (Bound::Included(a) | Bound::Excluded(a), Bound::Included(b) | Bound::Excluded(b)) => {
                a > b || (a == b && !matches!((lo, hi), (Bound::Included(_), Bound::Included(_))))
            }
            _ => false,
        };
        if inverted {
            return Ok(Vec::new());
        }
        let owned = |b: Bound<&[u8]>| b.map(<[u8]>::to_vec);
        Ok(self
            .0
            .range((owned(lo), owned(hi)))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }

    fn scan_prefix(&self, prefix: &[u8]) -> Result<Entries, EngineError> {
        Ok(self
            .0
            .iter()
            .filter(|(k, _)| k.starts_with(prefix))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }
}

/// What the harness may know about an engine's files: which file is its log, whether files
/// under their final names are complete after a crash, what a checkpoint must leave behind.
/// walstore's is [`super::WalstoreLayout`].
pub trait StructuralCheck: Send + Sync {
    /// Whether the file named `name` is the log whose writes carry commits: a failed write
    /// or sync of it must poison the handle (invariant 11), an Immediate commit's writes to
    /// it must be synced when it is acknowledged (invariant 3), and damage to it is judged
    /// against the commits whose bytes it hit.
    fn is_log(&self, name: &str) -> bool;
    /// After a crash, before recovery: the files of the image under their final names are
    /// complete (invariant 9).
    fn check_image(&self, image: &Image) -> Result<(), Violation>;
    /// Right after a successful checkpoint: the directory `dir` holds exactly what it should
    /// (invariant 9).
    fn check_after_checkpoint(&self, fs: &SimFs, dir: &Path) -> Result<(), Violation>;
    /// Whether a corruption report at `file`, byte `offset`, is about a file a checkpoint
    /// changes (then a false report is a checkpoint that was not atomic, invariant 10).
    fn is_checkpoint_file(&self, file: &Path, offset: u64, checkpoints_done: bool) -> bool;
    /// The value length that makes a transaction of one put of `key` take exactly
    /// `log_bytes` bytes of the log, if any does (the aligned post-recovery probe).
    fn probe_value_len(&self, key: &str, log_bytes: u64) -> Option<usize>;
}

/// Runs `f`, turning a panic into `Err(message)`.
pub fn guarded<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|payload| {
        payload
            .downcast_ref::<&str>()
            .map(|s| (*s).to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "panic with a non-string payload".to_string())
    })
}

/// Entries as the model's strings.
pub fn to_state(entries: Entries) -> State {
    entries
        .into_iter()
        .map(|(k, v)| {
            (
                String::from_utf8_lossy(&k).into_owned(),
                String::from_utf8_lossy(&v).into_owned(),
            )
        })
        .collect()
}

/// Every key and value of the store, read in one read transaction.
pub fn read_state(store: &dyn Handle) -> Result<State, EngineError> {
    let read = store.begin_read()?;
    Ok(to_state(read.range(Bound::Unbounded, Bound::Unbounded)?))
}

/// Runs one transaction of puts (`Some`) and deletes (`None`) and commits it.
pub fn apply(
    store: &dyn Handle,
    writes: &[(&[u8], Option<&[u8]>)],
    durability: Dur,
) -> Result<(), EngineError> {
    let mut tx = store.begin_write(durability)?;
    for (key, value) in writes {
        match value {
            Some(value) => tx.put(key, value)?,
            None => tx.delete(key)?,
        }
    }
    tx.commit()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_map_read_answers_inverted_and_empty_ranges_without_panicking() {
        let map: BTreeMap<Vec<u8>, Vec<u8>> = [(b"a".to_vec(), b"1".to_vec())].into();
        let read = MapRead(map);
        let none = read.range(Bound::Included(b"b"), Bound::Included(b"a"));
        assert_eq!(none, Ok(Vec::new()));
        let none = read.range(Bound::Excluded(b"a"), Bound::Excluded(b"a"));
        assert_eq!(none, Ok(Vec::new()));
        let one = read.range(Bound::Included(b"a"), Bound::Included(b"a"));
        assert_eq!(one.map(|e| e.len()), Ok(1));
        assert_eq!(read.scan_prefix(b"").map(|e| e.len()), Ok(1));
    }
}
