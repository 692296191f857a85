//! [`Options`]: how a store is opened and how it behaves.

use crate::storage::{FsStorage, Storage};
use std::sync::Arc;
use std::time::Duration;

/// Bytes read from the WAL at a time, at most: the default and the ceiling of
/// [`Options::read_chunk_bytes`].
pub(crate) const CHUNK_BYTES: usize = 1 << 20;

/// When `commit` returns `Ok`, what has the transaction survived?
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Durability {
    /// The commit is in the WAL and the WAL has been `fdatasync`ed: it survives a power cut.
    /// Concurrent committers share one `fdatasync` (group commit).
    #[default]
    Immediate,
    /// The commit has been written to the operating system, not synced: it survives a crash of
    /// the process, not a power cut or kernel crash. A later `Immediate` commit, a checkpoint or
    /// [`Store::sync`](crate::Store::sync) makes it durable.
    Buffered,
}

/// What to do when recovery finds damage to bytes that were already durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum RecoveryMode {
    /// Refuse to open with [`crate::Error::Corruption`] naming the file and offset.
    #[default]
    Strict,
    /// Open read-only with every intact committed transaction up to the damage (and every
    /// intact snapshot file). Nothing on disk is modified.
    Salvage,
}

/// How long `begin_write` (and a checkpoint) waits for the writer lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum LockWait {
    /// Wait as long as it takes.
    #[default]
    Forever,
    /// Wait up to this long, then fail with [`crate::Error::Busy`].
    Timeout(Duration),
    /// Fail with [`crate::Error::Busy`] at once if another writer holds the lock.
    NoWait,
}

/// Settings for opening a store; build with the setters, then call [`Options::open`].
///
/// ```
/// # fn main() -> walstore::Result<()> {
/// # let dir = tempfile::tempdir().unwrap();
/// use std::time::Duration;
/// use walstore::{Durability, LockWait, Options};
/// let store = Options::new()
///     .durability(Durability::Immediate)
///     .lock_wait(LockWait::Timeout(Duration::from_secs(2)))
///     .open(dir.path())?;
/// # drop(store);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Options {
    pub(crate) durability: Durability,
    pub(crate) recovery: RecoveryMode,
    pub(crate) lock_wait: LockWait,
    pub(crate) read_only: bool,
    pub(crate) wal_size_bytes_checkpoint: u64,
    pub(crate) close_checkpoint_bytes: u64,
    pub(crate) auto_checkpoint: bool,
    pub(crate) wal_preallocate_bytes: u64,
    pub(crate) segment_size_bytes_target: u64,
    pub(crate) sector_size: u64,
    pub(crate) storage: Arc<dyn Storage>,
    pub(crate) faults: crate::faults::EngineFaults,
    pub(crate) read_chunk_bytes: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            durability: Durability::Immediate,
            recovery: RecoveryMode::Strict,
            lock_wait: LockWait::Forever,
            read_only: false,
            wal_size_bytes_checkpoint: 64 << 20,
            close_checkpoint_bytes: 1 << 20,
            auto_checkpoint: true,
            wal_preallocate_bytes: 4 << 20,
            segment_size_bytes_target: 32 << 20,
            sector_size: 0,
            storage: Arc::new(FsStorage),
            faults: crate::faults::EngineFaults::default(),
            read_chunk_bytes: CHUNK_BYTES,
        }
    }
}

impl Options {
    /// The defaults: `Immediate`, `Strict`, wait forever, checkpoint at 64 MiB of WAL.
    pub fn new() -> Self {
        Self::default()
    }

    /// Default durability of write transactions (each can override it).
    pub fn durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    /// What recovery does with damaged durable bytes. `Salvage` implies read-only.
    pub fn recovery(mut self, mode: RecoveryMode) -> Self {
        self.recovery = mode;
        self
    }

    /// How long to wait for the writer lock.
    pub fn lock_wait(mut self, wait: LockWait) -> Self {
        self.lock_wait = wait;
        self
    }

    /// Open read-only: no write transaction, no checkpoint, nothing on disk is modified,
    /// the store is not created if missing.
    pub fn read_only(mut self, read_only: bool) -> Self {
        self.read_only = read_only;
        self
    }

    /// WAL size (bytes past its header) above which a background checkpoint starts.
    pub fn wal_size_bytes_checkpoint(mut self, bytes: u64) -> Self {
        self.wal_size_bytes_checkpoint = bytes.max(4096);
        self
    }

    /// WAL size (bytes past its header) above which a handle that committed checkpoints when
    /// it closes (default 1 MiB; with `auto_checkpoint(false)`, never). The next process to
    /// open the store alone then reads at most about this much of the log; while another
    /// process has the store open, an open reads none of it (the log index, FORMAT.md §9).
    pub fn close_checkpoint_bytes(mut self, bytes: u64) -> Self {
        self.close_checkpoint_bytes = bytes.max(4096);
        self
    }

    /// The size that run tiers are counted from (`merge.rs`): the smaller checkpoint size.
    pub(crate) fn tier_base_bytes(&self) -> u64 {
        self.wal_size_bytes_checkpoint
            .min(self.close_checkpoint_bytes)
            .max(4096)
    }

    /// Whether a background thread checkpoints when the WAL passes the threshold
    /// (default true). With `false`, only [`Store::checkpoint`](crate::Store::checkpoint) checkpoints.
    pub fn auto_checkpoint(mut self, enabled: bool) -> Self {
        self.auto_checkpoint = enabled;
        self
    }

    /// How far ahead of use the WAL may be zero-filled at most, in bytes (rounded up to 4 KiB;
    /// default 4 MiB). Commits then overwrite allocated, initialized blocks, which makes
    /// `fdatasync` cheaper. The space grows with use: a new log has 64 KiB, and each growth
    /// adds an eighth of the log, between 64 KiB and this bound; a checkpoint cuts the log back
    /// to 64 KiB. The zeros are not synced ahead of use: the commit that first writes into
    /// them syncs them.
    pub fn wal_preallocate_bytes(mut self, bytes: u64) -> Self {
        self.wal_preallocate_bytes = bytes.max(4096).next_multiple_of(4096);
        self
    }

    /// Pads every append to the log (each transaction and clean marker) to a multiple of
    /// `bytes`, the device's sector size, so that no write ever shares a sector with bytes an
    /// earlier sync made durable: a torn append can then never garble an acknowledged commit
    /// in the same sector, even on a device without powersafe overwrite (SQLite's behaviour
    /// without `SQLITE_IOCAP_POWERSAFE_OVERWRITE`; GUARANTEES.md). Costs up to `bytes` of log
    /// per commit. `0` (the default) turns it off; other values are rounded up to a power of
    /// two from 512 to 4096. FORMAT.md §4.2: a padded commit record.
    pub fn sector_size(mut self, bytes: u32) -> Self {
        self.sector_size = match bytes {
            0 => 0,
            n => u64::from(n).next_power_of_two().clamp(512, 4096),
        };
        self
    }

    /// Target size of one snapshot file (default 32 MiB). A run is split into files of about
    /// this size; files are never rewritten, so the size only trades the number of files
    /// against the memory a file's writer holds (every key of the file) while it is written.
    pub fn segment_size_bytes_target(mut self, bytes: u64) -> Self {
        self.segment_size_bytes_target = bytes.clamp(4096, 1 << 30);
        self
    }

    /// The file system to use (default: the real one). Tests and the crash harness pass a
    /// simulated one.
    pub fn storage(mut self, storage: Arc<dyn Storage>) -> Self {
        self.storage = storage;
        self
    }

    /// Largest read of the WAL at a time (default 1 MiB, at least 64 bytes). Hidden: only the
    /// crash harness shrinks it, so that logs of a few KiB cross read-chunk boundaries the way
    /// large logs do. Results never depend on it.
    #[doc(hidden)]
    pub fn read_chunk_bytes(mut self, bytes: usize) -> Self {
        self.read_chunk_bytes = bytes.clamp(64, CHUNK_BYTES);
        self
    }

    /// Enables deliberately broken engine behaviour. Exists only with the `fault-injection`
    /// feature, for the crash harness's own tests that prove it catches each such bug.
    #[cfg(feature = "fault-injection")]
    pub fn inject_engine_faults(mut self, faults: crate::faults::EngineFaults) -> Self {
        self.faults = faults;
        self
    }
}
