//! [`Store`]: the public facade over a shared [`Core`]. Clones share one handle; the last
//! one to go closes it (RECOVERY.md S1a): its commits are made durable and, if it is the last
//! handle of the store, the log is marked clean.
//!
//! Invariant: nothing below this module imports `Store`; transactions and the background
//! checkpointer hold the [`Core`].

use crate::catchup::{head, readers_view};
use crate::core::{Core, WriterGuard};
use crate::error::{Error, Result};
use crate::options::{LockWait, Options};
use crate::txn::{ReadTxn, WriteTxn};
use crate::wal::WAL_HEADER_BYTES;
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// An open store. Cheap to clone; clones share one handle. `Send + Sync`.
#[derive(Clone)]
pub struct Store {
    handle: Arc<Handle>,
}

/// The handle clones share; dropping the last one closes the store.
struct Handle {
    core: Arc<Core>,
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.core().dir())
            .finish()
    }
}

/// What [`Store::info`] reports.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct StoreInfo {
    /// The store directory.
    pub path: PathBuf,
    /// Checkpoint generation.
    pub generation: u64,
    /// Id of the last committed transaction.
    pub last_txn: u64,
    /// Id of the last transaction folded into the snapshot files.
    pub checkpoint_txn: u64,
    /// Transactions committed since the last checkpoint.
    pub txns_since_checkpoint: u64,
    /// Bytes of WAL records since the last checkpoint, up to the end of the last transaction
    /// with writes: clean markers after it carry no data and are not counted, so every
    /// handle reports the same figure whether its open left them out or not (0 after a
    /// checkpoint, and after a close that folded the log).
    pub wal_bytes: u64,
    /// Size of the WAL file (including preallocated space).
    pub wal_file_bytes: u64,
    /// Sorted runs the snapshot files form.
    pub runs: usize,
    /// Snapshot files, newest run first: (file name, bytes, entries).
    pub snapshot_files: Vec<(String, u64, u64)>,
    /// Keys changed since the last checkpoint held in this handle's own memory: those the
    /// log index does not hold (none while it keeps up; FORMAT.md §9).
    pub memtable_keys: usize,
    /// Entries (one per write of a key) in the shared log index, which every handle of the
    /// store maps instead of reading the log (0 without one).
    pub log_index_entries: u64,
    /// Bytes of the shared log index in use (0 without one).
    pub log_index_bytes: u64,
    /// Bytes of log kept for the change feed (sealed segments; FORMAT.md §10).
    pub feed_retained_bytes: u64,
    /// Sealed log segments kept for the change feed.
    pub feed_segments: usize,
    /// Registered change feed consumers.
    pub feed_consumers: usize,
    /// Commits made through this handle.
    pub commits: u64,
    /// WAL fdatasyncs made through this handle (fewer than commits under group commit).
    pub wal_syncs: u64,
    /// Checkpoints made through this handle.
    pub checkpoints: u64,
    /// Whether the handle is read-only.
    pub read_only: bool,
}

impl Options {
    /// Opens (creating if needed, unless read-only) the store in directory `path`.
    pub fn open(self, path: impl AsRef<Path>) -> Result<Store> {
        Store::open_with(path.as_ref(), self)
    }
}

impl Store {
    /// Opens (or creates) the store in directory `path` with default [`Options`].
    pub fn open(path: impl AsRef<Path>) -> Result<Store> {
        Options::new().open(path)
    }

    pub(crate) fn open_with(path: &Path, opts: Options) -> Result<Store> {
        let core = crate::open::open(path, opts)?;
        Ok(Store {
            handle: Arc::new(Handle { core }),
        })
    }

    pub(crate) fn core(&self) -> &Arc<Core> {
        &self.handle.core
    }

    /// The store directory.
    pub fn path(&self) -> &Path {
        self.core().dir()
    }

    /// A consistent snapshot including every transaction committed before this call, by any
    /// process.
    pub fn begin_read(&self) -> Result<ReadTxn> {
        self.core().check_usable(false)?;
        let version = readers_view(self.core())?;
        Ok(ReadTxn::new(version))
    }

    /// Watches the keys under `prefix`: the returned [`Watch`] yields every change committed
    /// after this call, by any handle in any process, as readers see them (durable commits,
    /// and `Buffered` ones once written). Waiting for a change costs no polling: it sleeps on
    /// the commit index's change counter (FORMAT.md §8).
    pub fn watch(&self, prefix: &[u8]) -> Result<crate::watch::Watch> {
        let start = self.begin_read()?;
        Ok(crate::watch::Watch::new(
            Arc::clone(self.core()),
            prefix,
            start,
        ))
    }

    /// Starts the write transaction, waiting for the writer lock as [`Options::lock_wait`]
    /// says. It starts from the newest committed state of any process.
    pub fn begin_write(&self) -> Result<WriteTxn> {
        let core = self.core();
        core.check_usable(true)?;
        let guard = core.acquire_writer(core.opts().lock_wait)?;
        let base = match head(core, &guard) {
            Ok(v) => v,
            Err(e) => {
                core.release_writer(guard);
                return Err(e);
            }
        };
        Ok(WriteTxn {
            core: Arc::clone(core),
            guard: Some(guard),
            base,
            writes: BTreeMap::new(),
            deletes: Vec::new(),
            durability: core.opts().durability,
        })
    }

    /// Runs `f` in a write transaction: commits if it returns `Ok`, rolls back on `Err`.
    pub fn update<T, E: From<Error>>(
        &self,
        f: impl FnOnce(&mut WriteTxn) -> std::result::Result<T, E>,
    ) -> std::result::Result<T, E> {
        let mut tx = self.begin_write()?;
        match f(&mut tx) {
            Ok(value) => {
                tx.commit()?;
                Ok(value)
            }
            Err(e) => {
                tx.abort();
                Err(e)
            }
        }
    }

    /// Makes every transaction committed so far through this handle durable (useful after
    /// `Buffered` commits).
    pub fn sync(&self) -> Result<()> {
        self.core().check_usable(true)?;
        self.core().sync_written()
    }

    /// Closes this handle. When it is the last clone, and transactions were committed through
    /// it, every one of them is made durable (`Buffered` ones included). The last handle of
    /// the store (in any process) also marks the log clean, or folds a long one into a run,
    /// so the next read-write open has nothing to prove and does no recovery checkpoint
    /// (RECOVERY.md S1a). A background checkpoint in progress is waited for first.
    /// Dropping the last clone does the same and ignores errors; `close` reports them. If
    /// another writer holds the lock at that moment, the marker is left out (the commits are
    /// still made durable).
    pub fn close(self) -> Result<()> {
        if Arc::strong_count(&self.handle) > 1 {
            return Ok(());
        }
        close_last(self.core())
    }

    /// Folds every committed transaction into snapshot files and resets the WAL. Waits for
    /// the writer lock like `begin_write`. Cost scales with the key ranges that changed.
    pub fn checkpoint(&self) -> Result<crate::checkpoint::CheckpointStats> {
        let core = self.core();
        crate::checkpoint::run(core, core.opts().lock_wait)
    }

    /// Checkpoints, then merges every sorted run into one, dropping tombstones, range
    /// deletions and overwritten values: the store's files then hold only live data. Runs
    /// in the calling thread; the writer lock is held only for two manifest switches, so
    /// other writers and readers go on. Returns an empty list when another handle (in any
    /// process) is merging at the moment.
    pub fn compact(&self) -> Result<Vec<crate::merge::MergeStats>> {
        let core = self.core();
        core.check_usable(true)?;
        crate::checkpoint::run(core, core.opts().lock_wait)?;
        crate::merge::run(core, true, &|| false)
    }

    /// Merges sorted runs as the background merger's policy picks them (runs of one size tier,
    /// newest first), in the calling thread, until it picks none. A store merges on its own
    /// in the background; this is for the crash harness, whose stores run without background
    /// work. Returns an empty list when another handle is merging at the moment.
    #[doc(hidden)]
    pub fn merge_by_policy(&self) -> Result<Vec<crate::merge::MergeStats>> {
        let core = self.core();
        core.check_usable(true)?;
        crate::merge::run(core, false, &|| false)
    }

    /// Sizes, generation and counters.
    pub fn info(&self) -> Result<StoreInfo> {
        let core = self.core();
        let v = readers_view(core)?;
        let c = core.counters();
        let feed = crate::feed::FeedState::read(core.storage(), core.dir())?;
        Ok(StoreInfo {
            path: core.dir().to_path_buf(),
            generation: v.generation,
            last_txn: v.last_txn,
            checkpoint_txn: v.base_txn,
            txns_since_checkpoint: v.last_txn - v.base_txn,
            wal_bytes: v.data_end - WAL_HEADER_BYTES,
            wal_file_bytes: core.wal().len()?,
            runs: v.runs.len(),
            snapshot_files: v
                .runs
                .iter()
                .flat_map(|run| run.metas.iter())
                .map(|m| {
                    (
                        crate::format::snapshot_name(m.file_id),
                        m.file_len,
                        m.entry_count,
                    )
                })
                .collect(),
            memtable_keys: v.changed_keys(),
            log_index_entries: v.shared.as_ref().map_or(0, |s| s.index.entries()),
            log_index_bytes: v.shared.as_ref().map_or(0, |s| s.index.used_bytes()),
            feed_retained_bytes: feed.retained_bytes(),
            feed_segments: feed.segments.len(),
            feed_consumers: feed.consumers.len(),
            commits: c.commits.load(Ordering::Relaxed),
            wal_syncs: core.wal().syncs(),
            checkpoints: c.checkpoints.load(Ordering::Relaxed),
            read_only: core.is_read_only(),
        })
    }

    /// Whether this handle holds more of the log in memory of its own than a clean close
    /// leaves behind (`Options::close_checkpoint_bytes`), instead of reading it through the
    /// shared log index (FORMAT.md §9). That is a read-only handle that opened the store alone
    /// after a process left it without closing (killed, or a power cut): it read the whole log
    /// since the last checkpoint, and so will every later read-only process that opens the
    /// store alone, until a read-write handle folds it (its open folds what no watermark
    /// proves, RECOVERY.md S1; as the last handle, its close folds a log above the bound,
    /// S1a). The `walstore` command's reading commands then open the store for writing once,
    /// without waiting for the writer lock.
    pub fn holds_unfolded_log(&self) -> bool {
        let core = self.core();
        let v = core.current();
        if v.private_is_empty() {
            return false;
        }
        let from = v
            .shared
            .as_ref()
            .map_or(WAL_HEADER_BYTES, |view| view.limit);
        v.data_end.saturating_sub(from) > core.opts().close_checkpoint_bytes
    }

    /// Whether this handle is read-only (opened so, or in salvage mode).
    pub fn is_read_only(&self) -> bool {
        self.core().is_read_only()
    }

    /// Whether an earlier failed write or sync poisoned this handle.
    pub fn is_poisoned(&self) -> bool {
        self.core().is_poisoned()
    }
}

/// The work of [`Store::close`], done by the last clone: stop the background checkpointer
/// (waiting for a checkpoint it is running), make this handle's commits durable, then, if this
/// is the last handle of the store and the writer lock is free, leave the log as the next open
/// wants it ([`close_log`]).
fn close_last(core: &Core) -> Result<()> {
    // Whether this is the last handle of the store anywhere (without a commit index: as far
    // as anyone knows, yes). Only the last folds a long log at close: while other handles
    // have the store open, the log index serves it to every newcomer.
    let last = core.closing_last();
    core.checkpointer().stop();
    let counters = core.counters();
    let commits = counters.commits.load(Ordering::Relaxed);
    let wrote = commits != counters.closed_at_commits.load(Ordering::Relaxed);
    let skip = core.is_read_only()
        || counters.closed.load(Ordering::Relaxed)
        || (!wrote && !last)
        || core.check_usable(true).is_err();
    if skip {
        return Ok(());
    }
    if wrote {
        core.sync_written()?;
    }
    let result = if !last {
        // Other handles have the store open: the last of them leaves the log as the next
        // open wants it. A marker here would lie past the durable end, and the next handle
        // to join would sync it before its first commit (RECOVERY.md S1a, X2): one
        // `fdatasync` more for every one-shot write beside a long-lived handle.
        Ok(())
    } else {
        match core.acquire_writer(LockWait::NoWait) {
            Ok(guard) => {
                let closed =
                    head(core, &guard).and_then(|version| close_log(core, &guard, &version));
                core.release_writer(guard);
                closed
            }
            Err(Error::Busy { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    };
    if result.is_ok() {
        // `close` then drops the handle: its `Drop` has nothing left to do.
        counters.closed_at_commits.store(commits, Ordering::Relaxed);
        counters.closed.store(true, Ordering::Relaxed);
    }
    result
}

/// Leaves the log as the next open wants it, as the last handle of the store (it need not
/// have written): folded into a run by a checkpoint if it holds more than
/// `Options::close_checkpoint_bytes` (the next process to open the store alone then has little
/// log to read: RECOVERY.md S1a), and the fresh log then ended by a clean marker; else ended
/// by a clean marker. Called under the writer lock, after a catch-up that made every
/// transaction of `version` durable.
fn close_log(
    core: &Core,
    guard: &WriterGuard,
    version: &Arc<crate::version::Version>,
) -> Result<()> {
    let opts = core.opts();
    let log_bytes = version.wal_end - crate::wal::WAL_HEADER_BYTES;
    if opts.auto_checkpoint && log_bytes > opts.close_checkpoint_bytes {
        crate::checkpoint::fold(core, guard, version)?;
        core.counters().checkpoints.fetch_add(1, Ordering::Relaxed);
        // The fold synced the directory and the new log's header: a marker says so to the
        // next open, which then makes no directory fsync of its own.
        return mark_clean(core, guard, &core.current());
    }
    mark_clean(core, guard, version)
}

/// Appends the clean marker (FORMAT.md §4.3), and publishes the version it ends, unless the
/// log already ends with one after all of its data, every byte of which a watermark proves:
/// the data is unproven (this handle's commits, or other handles' that its catch-up made
/// durable), or no marker ends it (an open alone zeroed the markers that did, RECOVERY.md S1,
/// or a checkpoint reset the log). Without one the next open would fold the log with a
/// checkpoint, or, on a log without data, make a directory fsync. The marker needs no sync:
/// what it proves was synced before. Called under the writer lock.
fn mark_clean(core: &Core, guard: &WriterGuard, version: &crate::version::Version) -> Result<()> {
    if version.closed_cleanly() {
        return Ok(());
    }
    let end = core.wal().append_clean_marker(
        version.generation,
        version.salt,
        version.last_txn,
        version.wal_end,
    )?;
    let mut next = version.clone();
    next.wal_end = end;
    next.synced_through = version.wal_end;
    crate::indexed::add_marker(&mut next, version);
    // The log is durable through the marker's start, not through the marker itself (it is
    // not synced): a handle that appends after it syncs first (S1b).
    core.publish_locked(guard, Arc::new(next), false);
    Ok(())
}

impl Drop for Handle {
    fn drop(&mut self) {
        if self.core.is_forked() {
            // A copy inherited across `fork()`: the core is never dropped in this process.
            // Dropping it would release the writer lock's `flock`, shared with the parent,
            // and join a background thread that does not exist here.
            std::mem::forget(Arc::clone(&self.core));
            return;
        }
        // Errors are for `close`; a failure here poisoned nothing anyone can still use, and the
        // next open recovers (with a checkpoint) what the marker would have proven.
        let _ = close_last(&self.core);
    }
}
