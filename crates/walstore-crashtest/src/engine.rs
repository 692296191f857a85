//! The engine under test, seen through a trait: the harness (the driver, the oracle,
//! [`verify`](crate::verify), [`reads`](crate::reads) and [`killtest`](crate::killtest))
//! knows an engine only as an [`Engine`] that opens a [`Handle`] on a
//! [`Storage`](::walstore::storage::Storage), plus what it [`Promises`] and, optionally, a
//! [`StructuralCheck`] of its files. walstore is one implementation (`Walstore`, in
//! `engine/walstore.rs`, with the default `walstore-engine` feature), whose structural check
//! is [`crate::layout`]; `examples/four_files.rs` is another.

#[cfg(feature = "walstore-engine")]
pub mod walstore;

use crate::oracle::State;
use crate::simfs::SimFs;
use crate::workload::{Dur, EngineSettings};
use ::walstore::storage::Storage;
use std::collections::BTreeMap;
use std::fmt;
use std::ops::Bound;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[cfg(feature = "walstore-engine")]
pub use self::walstore::{OptionsHook, Walstore};

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
}

impl Default for Promises {
    /// walstore's: Immediate commits, atomic transactions.
    fn default() -> Self {
        Promises {
            durability: Dur::Immediate,
            atomicity: AtomicityUnit::Transaction,
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
        settings: Option<&EngineSettings>,
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
}

/// A write transaction.
pub trait WriteTxn {
    /// Reads `key` as this transaction sees it.
    fn get(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>, EngineError>;
    /// Sets `key` to `value`.
    fn put(&mut self, key: &[u8], value: &[u8]) -> Result<(), EngineError>;
    /// Deletes `key`.
    fn delete(&mut self, key: &[u8]) -> Result<(), EngineError>;
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
/// walstore's is [`crate::layout::WalstoreLayout`].
pub trait StructuralCheck: Send + Sync {
    /// Whether the file named `name` is the log whose writes carry commits: a failed write
    /// or sync of it must poison the handle (invariant 11), an Immediate commit's writes to
    /// it must be synced when it is acknowledged (invariant 3), and damage to it is judged
    /// against the commits whose bytes it hit.
    fn is_log(&self, name: &str) -> bool;
    /// After a crash, before recovery: the files of the image under their final names are
    /// complete (invariant 9).
    fn check_image(&self, image: &crate::image::Image) -> Result<(), crate::oracle::Violation>;
    /// Right after a successful checkpoint: the directory `dir` holds exactly what it should
    /// (invariant 9).
    fn check_after_checkpoint(
        &self,
        fs: &SimFs,
        dir: &Path,
    ) -> Result<(), crate::oracle::Violation>;
    /// Whether a corruption report at `file`, byte `offset`, is about a file a checkpoint
    /// changes (then a false report is a checkpoint that was not atomic, invariant 10).
    fn is_checkpoint_file(&self, file: &Path, offset: u64, checkpoints_done: bool) -> bool;
    /// The value length that makes a transaction of one put of `key` take exactly
    /// `log_bytes` bytes of the log, if any does (the aligned post-recovery probe).
    fn probe_value_len(&self, key: &str, log_bytes: u64) -> Option<usize>;
}

/// How to open the engine under test: which engine, with which sizes.
#[derive(Clone)]
pub struct EngineConfig {
    /// Sizes.
    pub settings: EngineSettings,
    /// The engine.
    pub engine: Arc<dyn Engine>,
}

#[cfg(feature = "walstore-engine")]
impl Default for EngineConfig {
    /// walstore with the default sizes.
    fn default() -> Self {
        EngineConfig::of(Arc::new(Walstore::default()))
    }
}

impl fmt::Debug for EngineConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EngineConfig")
            .field("settings", &self.settings)
            .field("engine", &self.engine.name())
            .finish()
    }
}

impl EngineConfig {
    /// walstore with the given sizes.
    #[cfg(feature = "walstore-engine")]
    pub fn new(settings: EngineSettings) -> Self {
        EngineConfig {
            settings,
            ..EngineConfig::default()
        }
    }

    /// Another engine, with the default sizes.
    pub fn of(engine: Arc<dyn Engine>) -> Self {
        EngineConfig {
            settings: EngineSettings::default(),
            engine,
        }
    }

    /// The same engine with other sizes.
    pub fn with_settings(&self, settings: EngineSettings) -> Self {
        EngineConfig {
            settings,
            engine: Arc::clone(&self.engine),
        }
    }

    /// What the engine promises.
    pub fn promises(&self) -> Promises {
        self.engine.promises()
    }

    /// The engine's structural check, if it has one.
    pub fn structure(&self) -> Option<&dyn StructuralCheck> {
        self.engine.structure()
    }

    /// The durability a commit asked for `dur` runs with: Buffered when the engine promises
    /// no more.
    pub fn promised(&self, dur: Dur) -> Dur {
        match self.promises().durability {
            Dur::Buffered => Dur::Buffered,
            Dur::Immediate => dur,
        }
    }

    /// `config` without the image recipes that aim at walstore's files by name (damage to
    /// its log, manifest and snapshot files, constructed torn tails of its log) when the
    /// engine has no structural check: judging them needs to know which commits the bytes
    /// hit.
    pub fn restrict(
        &self,
        config: &crate::explore::ExploreConfig,
    ) -> crate::explore::ExploreConfig {
        use crate::crashgen::Variant;
        let mut config = config.clone();
        if self.structure().is_none() {
            let aimed = [
                Variant::CorruptWal,
                Variant::CorruptMeta,
                Variant::CorruptField,
                Variant::TornTail,
            ];
            config.variants.retain(|v| !aimed.contains(v));
            config.recovery_variants.retain(|v| !aimed.contains(v));
        }
        config
    }

    /// Whether the file at `path` is the engine's log (never, without a structural check).
    pub fn is_log(&self, path: &Path) -> bool {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default();
        self.structure().is_some_and(|s| s.is_log(&name))
    }

    /// Opens the store on `fs`; a panic inside the engine becomes `Err(message)`.
    pub fn open(&self, fs: &SimFs) -> Result<Result<Box<dyn Handle>, EngineError>, String> {
        let storage = Arc::new(fs.clone()) as Arc<dyn Storage>;
        guarded(move || {
            self.engine
                .open(storage, Path::new(STORE_DIR), Some(&self.settings))
        })
    }
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
