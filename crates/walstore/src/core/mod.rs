//! [`Core`]: the state one open store shares between its handles, its transactions, the
//! catch-up, the open path and the background checkpointer. Fields are private; everything
//! goes through methods that keep the invariants below.
//!
//! The writer and merge locks are in `lock.rs`, the versions a handle keeps in `views.rs`,
//! the background worker's signal in `signal.rs`.
//!
//! Commit path (Immediate): under the writer lock, the [`Wal`] encodes the transaction and
//! writes it in one `pwrite`; the new version is published; the lock is released; then the
//! commit waits until an `fdatasync` that started after its write has completed (group
//! commit, in [`Wal::wait_durable`]).
//!
//! Invariant: only a holder of the writer lock ([`WriterGuard`]) appends to the log, changes
//! its generation or removes files.
//! Invariant: a published version is never older than the one it replaces (generation, last
//! transaction, end of the log).
//! Invariant: `Core` knows nothing of `Store`: background threads hold a `Weak<Core>`.

mod lock;
pub(crate) mod signal;
mod views;

pub(crate) use lock::{retry_while_busy, Access, MergeGuard, WriterGuard};

use crate::error::{Error, Result};
use crate::index::{CommitIndex, Head};
use crate::logindex::{CommitNode, LogIndex};
use crate::options::{Durability, Options};
use crate::run::SegmentSet;
use crate::snapshot::RangeDelete;
use crate::storage::{Storage, StorageLock};
use crate::value::Bytes;
use crate::version::Version;
use crate::wal::writer::{TxnToAppend, Wal};
use crate::wal::{LogPosition, WAL_HEADER_BYTES};
use parking_lot::{Mutex, MutexGuard};
use signal::CheckpointSignal;
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use views::Views;

/// Shared state of one open store.
pub(crate) struct Core {
    dir: PathBuf,
    opts: Options,
    read_only: bool,
    wal: Wal,
    lock: Option<Box<dyn StorageLock>>,
    /// The in-process half of the writer lock (the file lock is the other half).
    writer: Arc<Mutex<()>>,
    /// The head, the readers' version and the versions between.
    views: Views,
    /// The commit index, when the storage has shared memory (set once, at open).
    index: OnceLock<Arc<CommitIndex>>,
    /// Whether the previous holder of the writer lock left the log as the index says (valid
    /// while this handle holds the lock).
    lock_clean: AtomicBool,
    /// Serializes catch-ups, so two threads never scan the same tail at once.
    refresh_lock: Mutex<()>,
    pid: u32,
    /// The fork epoch at open (see `fork.rs`).
    fork_epoch: u64,
    checkpointer: CheckpointSignal,
    /// The merge lock file, opened at the first merge (`MERGE`, FORMAT.md §2).
    merge_lock: Mutex<Option<Box<dyn StorageLock>>>,
    counters: Counters,
    /// The log index this handle uses (FORMAT.md §9; `indexed.rs`).
    log_index: Mutex<Option<Arc<LogIndex>>>,
    /// Set while an open that found the commit index fresh loads: this handle is alone and
    /// builds a new log index, trusting none left over.
    building_alone: AtomicBool,
    /// The clean markers that ended the log when this handle opened the store alone, left out
    /// of its version, to be zeroed under the writer lock before anything else (`load.rs`,
    /// RECOVERY.md S1).
    open_markers: Mutex<Option<OpenMarkers>>,
    /// Whether this handle opened the store while other handles had it open (the commit
    /// index was not fresh): they keep the log's end as the index says, so the open has no
    /// recovery to do (RECOVERY.md "Log index").
    joined_live: AtomicBool,
    /// How far this handle answers for the log: its own appends, what its open recovered,
    /// what it synced for others. Transactions past it in its head are other handles' that
    /// it has not vouched for (RECOVERY.md S1b).
    vouched_end: Mutex<LogPosition>,
    /// Whether this handle was the last of the store when it closed: 0 not closed yet, 1
    /// last, 2 not (it is uncounted from the commit index once).
    closed_last: std::sync::atomic::AtomicU8,
}

impl fmt::Debug for Core {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Core").field("dir", &self.dir).finish()
    }
}

/// Operation counters, for `StoreInfo` and the benchmarks.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) commits: AtomicU64,
    pub(crate) checkpoints: AtomicU64,
    /// The commit count when the last close made everything durable and marked the log.
    pub(crate) closed_at_commits: AtomicU64,
    /// Whether a close finished (the `Drop` after `close` has nothing left to do).
    pub(crate) closed: AtomicBool,
}

/// Everything [`Core::new`] needs.
pub(crate) struct CoreParts {
    pub(crate) dir: PathBuf,
    pub(crate) opts: Options,
    pub(crate) read_only: bool,
    pub(crate) wal: Wal,
    pub(crate) lock: Option<Box<dyn StorageLock>>,
    pub(crate) version: Version,
}

impl Core {
    pub(crate) fn new(parts: CoreParts) -> Core {
        Core {
            dir: parts.dir,
            opts: parts.opts,
            read_only: parts.read_only,
            wal: parts.wal,
            lock: parts.lock,
            writer: Arc::new(Mutex::new(())),
            views: Views::new(parts.version),
            index: OnceLock::new(),
            lock_clean: AtomicBool::new(false),
            refresh_lock: Mutex::new(()),
            pid: std::process::id(),
            fork_epoch: crate::fork::epoch(),
            checkpointer: CheckpointSignal::default(),
            merge_lock: Mutex::new(None),
            counters: Counters::default(),
            log_index: Mutex::new(None),
            building_alone: AtomicBool::new(false),
            open_markers: Mutex::new(None),
            joined_live: AtomicBool::new(false),
            closed_last: std::sync::atomic::AtomicU8::new(0),
            vouched_end: Mutex::new(LogPosition::default()),
        }
    }

    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    pub(crate) fn opts(&self) -> &Options {
        &self.opts
    }

    pub(crate) fn storage(&self) -> &dyn Storage {
        self.opts.storage.as_ref()
    }

    pub(crate) fn wal(&self) -> &Wal {
        &self.wal
    }

    pub(crate) fn is_read_only(&self) -> bool {
        self.read_only
    }

    /// Whether this process may take the writer lock (a read-write handle).
    pub(crate) fn has_writer_lock(&self) -> bool {
        self.lock.is_some()
    }

    pub(crate) fn counters(&self) -> &Counters {
        &self.counters
    }

    pub(crate) fn checkpointer(&self) -> &CheckpointSignal {
        &self.checkpointer
    }

    /// Whether this handle was inherited across `fork()` (opened by another process).
    pub(crate) fn is_forked(&self) -> bool {
        crate::fork::epoch() != self.fork_epoch
    }

    /// Refuses a handle used in a forked child, and writes through a read-only or poisoned
    /// handle.
    pub(crate) fn check_usable(&self, write: bool) -> Result<()> {
        // One atomic load, no getpid: a `begin_read` with nothing new makes no system call.
        if crate::fork::epoch() != self.fork_epoch {
            return Err(Error::Forked {
                opened_by: self.pid,
                current: std::process::id(),
            });
        }
        if write {
            if self.read_only {
                return Err(Error::ReadOnly);
            }
            self.wal.check_not_poisoned()?;
            if let Some(pid) = self.index().and_then(|i| i.poisoned_by()) {
                return Err(Error::Poisoned {
                    cause: format!(
                        "a WAL write or sync failed in process {pid}; every process must close the store, and the next open recovers"
                    ),
                });
            }
        }
        Ok(())
    }

    /// Whether this handle, or any handle in any process (through the commit index), saw a
    /// WAL write or sync fail.
    pub(crate) fn is_poisoned(&self) -> bool {
        self.wal.is_poisoned() || self.index().is_some_and(|i| i.poisoned_by().is_some())
    }

    /// The commit index, if the storage has shared memory.
    pub(crate) fn index(&self) -> Option<&Arc<CommitIndex>> {
        self.index.get()
    }

    /// The commit index's change counter (`None` without one), for [`Core::wait_change`].
    pub(crate) fn change_counter(&self) -> Option<u64> {
        self.index().map(|i| i.counter())
    }

    /// Waits up to `left` for the change counter to move past `seen` (a futex on the shared
    /// region); without a commit index, sleeps a short poll interval instead. Watches and
    /// change feeds wait here.
    pub(crate) fn wait_change(&self, seen: Option<u64>, left: std::time::Duration) {
        /// How long a waiter without a commit index sleeps between looks.
        const POLL_WITHOUT_INDEX: std::time::Duration = std::time::Duration::from_millis(20);
        match (self.index(), seen) {
            (Some(index), Some(seen)) => index.wait_change(seen, left),
            _ => std::thread::sleep(left.min(POLL_WITHOUT_INDEX)),
        }
    }

    /// Sets the commit index (at open, once). A failed WAL write or sync of this handle then
    /// poisons every handle of the store.
    pub(crate) fn set_index(&self, index: Arc<CommitIndex>) {
        let hook = Arc::clone(&index);
        let hook = self.opts().faults.poison_target(hook);
        self.wal.on_poison(Box::new(move || hook.poison()));
        let _ = self.index.set(index);
    }

    /// The log index this handle uses, if any.
    pub(crate) fn log_index(&self) -> Option<Arc<LogIndex>> {
        self.log_index.lock().clone()
    }

    /// Makes `index` the log index this handle uses.
    pub(crate) fn set_log_index(&self, index: Option<Arc<LogIndex>>) {
        *self.log_index.lock() = index;
    }

    /// The log index of `generation` (see [`log_index_for`]).
    pub(crate) fn log_index_for(
        &self,
        generation: u64,
        salt: u64,
        build: bool,
    ) -> Option<Arc<LogIndex>> {
        log_index_for(self, generation, salt, build)
    }

    /// Records the clean markers an open alone left out of its version (see `open_markers`).
    pub(crate) fn set_open_markers(&self, markers: Option<OpenMarkers>) {
        *self.open_markers.lock() = markers;
    }

    /// The clean markers an open alone left out, once (see `open_markers`).
    pub(crate) fn take_open_markers(&self) -> Option<OpenMarkers> {
        self.open_markers.lock().take()
    }

    /// Whether this handle opened the store alone and is loading it (see `building_alone`).
    pub(crate) fn is_building_alone(&self) -> bool {
        self.building_alone.load(Ordering::Acquire)
    }

    pub(crate) fn set_building_alone(&self, alone: bool) {
        self.building_alone.store(alone, Ordering::Release);
    }

    /// Uncounts this handle from the commit index (once; later calls repeat the answer) and
    /// says whether it was the last handle of the store anywhere (without a commit index: as
    /// far as anyone knows, yes).
    pub(crate) fn closing_last(&self) -> bool {
        match self.closed_last.load(Ordering::Acquire) {
            1 => return true,
            2 => return false,
            _ => {}
        }
        let last = self.index().is_none_or(|index| index.handle_closed());
        self.closed_last
            .store(if last { 1 } else { 2 }, Ordering::Release);
        last
    }

    /// How far this handle answers for the log (see `vouched_end`).
    pub(crate) fn vouched_end(&self) -> LogPosition {
        *self.vouched_end.lock()
    }

    /// Records that this handle answers for the log up to `end`.
    pub(crate) fn vouched_through(&self, end: LogPosition) {
        let mut v = self.vouched_end.lock();
        *v = (*v).max(end);
    }

    /// Whether this handle opened the store while other handles had it open.
    pub(crate) fn joined_live(&self) -> bool {
        self.joined_live.load(Ordering::Acquire)
    }

    pub(crate) fn set_joined_live(&self, live: bool) {
        self.joined_live.store(live, Ordering::Release);
    }

    /// Whether `version` ends where the live handles' commit index says the log ends: the
    /// end of the log is then known, not a guess a look past it must confirm.
    pub(crate) fn ends_where_index_says(&self, version: &Version) -> bool {
        self.joined_live()
            && self.index().and_then(|i| i.read().ok()).is_some_and(|s| {
                s.generation == version.generation
                    && s.salt == version.salt
                    && s.written_end == version.wal_end
            })
    }

    /// The version readers get: with a commit index, the one shown; without, the head.
    pub(crate) fn visible(&self) -> Arc<Version> {
        if self.index().is_some() {
            self.views.shown()
        } else {
            self.views.head()
        }
    }

    /// The head: every transaction written that this handle knows of (writers build on it).
    pub(crate) fn current(&self) -> Arc<Version> {
        self.views.head()
    }

    /// The versions this handle keeps (see `views.rs`).
    pub(crate) fn views(&self) -> &Views {
        &self.views
    }

    /// Publishes `version` as the head unless a newer one is already there.
    pub(crate) fn publish(&self, version: Arc<Version>) {
        self.views.publish(version, self.index().is_some());
    }

    /// Publishes `version` under the writer lock and tells the commit index that the log's
    /// head is there; `durable`: the log is durable through it.
    pub(crate) fn publish_locked(&self, guard: &WriterGuard, version: Arc<Version>, durable: bool) {
        self.assert_writer(guard);
        self.publish(Arc::clone(&version));
        if let Some(index) = self.index() {
            index.set_head(head_of(&version), durable);
        }
    }

    /// Replaces the runs of every version of `generation` (a merge's result: the same data).
    pub(crate) fn replace_runs(&self, generation: u64, runs: &[Arc<SegmentSet>]) {
        self.views.replace_runs(generation, runs);
    }

    /// Held while catching up with the files.
    pub(crate) fn refresh_lock(&self) -> MutexGuard<'_, ()> {
        self.refresh_lock.lock()
    }

    /// fsyncs the store directory (its names: creations, renames, removals).
    pub(crate) fn sync_store_dir(&self) -> Result<()> {
        self.storage()
            .sync_dir(&self.dir)
            .map_err(|e| Error::io("fsync directory", &self.dir, e))
    }

    /// The commit path (see the module documentation). Consumes the writer guard.
    pub(crate) fn commit(
        &self,
        guard: WriterGuard,
        base: &Arc<Version>,
        writes: BTreeMap<Bytes, Option<Bytes>>,
        deletes: Vec<RangeDelete>,
        durability: Durability,
    ) -> Result<()> {
        if writes.is_empty() && deletes.is_empty() {
            self.release_writer(guard);
            // Nothing to append, but an Immediate commit still promises that every earlier
            // commit of this handle is durable when it returns (GUARANTEES.md; found by the
            // `ops` fuzz target once its input allowed empty transactions).
            if durability == Durability::Immediate {
                self.sync_written()?;
            }
            return Ok(());
        }
        let immediate = durability == Durability::Immediate;
        let written = self
            .check_usable(true)
            .and_then(|()| self.append(&guard, base, writes, deletes, immediate));
        self.release_writer(guard);
        let appended = written?;
        self.counters.commits.fetch_add(1, Ordering::Relaxed);
        if immediate {
            self.wal.wait_durable(appended.seq)?;
            self.tell_durable();
        }
        if appended.end - WAL_HEADER_BYTES >= self.opts.wal_size_bytes_checkpoint {
            self.checkpointer.request();
        }
        Ok(())
    }

    /// Writes the transaction to the WAL and publishes the new version.
    fn append(
        &self,
        guard: &WriterGuard,
        base: &Arc<Version>,
        writes: BTreeMap<Bytes, Option<Bytes>>,
        deletes: Vec<RangeDelete>,
        immediate: bool,
    ) -> Result<crate::wal::writer::Appended> {
        self.assert_writer(guard);
        let txn_id = base.last_txn + 1;
        let watermark = self.wal.watermark(base.generation, base.synced_through);
        let appended = self.wal.append_txn(TxnToAppend {
            generation: base.generation,
            salt: base.salt,
            txn_id,
            at: base.wal_end,
            watermark,
            deletes: &deletes,
            writes: &writes,
        })?;
        let mut next = Version::clone(base);
        let commit = CommitNode {
            end: appended.end,
            txn: txn_id,
            synced_through: watermark,
            data_end: appended.end,
            prev: 0,
        };
        let ix = match &base.shared {
            Some(view) => Some(Arc::clone(&view.index)),
            None => crate::indexed::index_for_commit(base, |build| {
                self.log_index_for(base.generation, base.salt, build)
            }),
        };
        match crate::indexed::add_commit(ix, base, commit, &writes, &deletes)? {
            Some(view) => next.share(view),
            None => {
                next.apply_range_deletes(&deletes);
                next.push_layer(writes);
            }
        }
        // Invariant: transaction ids are dense, and the log only grows within a generation.
        debug_assert_eq!(next.last_txn + 1, txn_id);
        debug_assert!(appended.end > base.wal_end);
        next.last_txn = txn_id;
        next.wal_end = appended.end;
        next.data_end = appended.end;
        self.vouched_through(next.position());
        let next = Arc::new(next);
        self.publish(Arc::clone(&next));
        if let Some(index) = self.index() {
            let immediate = self.opts().faults.wait_for_sync_to_show(immediate);
            index.committed(head_of(&next), immediate);
        }
        Ok(appended)
    }

    /// Makes every write of this handle durable, and tells the commit index.
    pub(crate) fn sync_written(&self) -> Result<()> {
        self.wal.sync_written()?;
        self.tell_durable();
        Ok(())
    }

    /// Tells the commit index how far this handle knows the log durable (after a sync).
    fn tell_durable(&self) {
        if let Some(index) = self.index() {
            let counter = index.counter();
            let end = self.wal.durable_end();
            if self.opts().faults.durable_lsn_stored() {
                index.note_durable(end.generation, end.offset, false);
            } else {
                index.durable(end.generation, end.offset);
            }
            // Move this handle's readers' view along now (a handle that only writes would
            // otherwise keep its first view, and the memory it holds, alive).
            if let Ok(state) = index.read() {
                if let Some(v) = self
                    .views
                    .known_at(LogPosition::new(state.generation, state.visible_end()))
                {
                    self.views.show(&v, counter);
                }
            }
        }
    }
}

/// What the commit index is told about a version at the head of the log.
pub(crate) fn head_of(v: &Version) -> Head {
    Head {
        generation: v.generation,
        salt: v.salt,
        wal_end: v.wal_end,
        last_txn: v.last_txn,
    }
}

/// Address space of a log index: room for a few checkpoints' worth of log (a generation's
/// log can outgrow the threshold while a checkpoint runs); a full index is sealed and the
/// rest of the generation is read the old way.
fn log_index_capacity(opts: &Options) -> usize {
    let wanted = opts
        .wal_size_bytes_checkpoint
        .saturating_mul(3)
        .saturating_add(64 << 20);
    wanted.clamp(64 << 20, 2 << 30) as usize
}

/// Clean markers that ended the log when a handle opened the store alone: `[at, end)` of
/// `at`'s generation. The handle's version ends at `at`; the open zeroes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct OpenMarkers {
    pub(crate) at: LogPosition,
    pub(crate) end: u64,
}

/// The log index of `generation` (salt `salt`): this handle's, else the store's file if the
/// commit index names it and it describes that generation; with `build`, a new one when
/// neither does. `None` without shared memory (no commit index), or when none can be had.
pub(crate) fn log_index_for(
    core: &Core,
    generation: u64,
    salt: u64,
    build: bool,
) -> Option<Arc<LogIndex>> {
    let commit_index = core.index()?;
    // The commit index names the file its handles use: zero in a fresh one, so no file left
    // over from before (a crash, a reboot, an earlier group of processes) is ever taken.
    let id = commit_index.log_index_id();
    let usable = |ix: &LogIndex| id != 0 && ix.id() == id && ix.describes(generation, salt);
    if let Some(ix) = core.log_index() {
        if usable(&ix) {
            return Some(ix);
        }
    }
    let path = core.dir().join(crate::format::LOG_INDEX_NAME);
    let capacity = log_index_capacity(core.opts());
    if id != 0 {
        if let Ok(ix) = LogIndex::attach(core.storage(), &path, capacity) {
            if usable(&ix) {
                core.set_log_index(Some(Arc::clone(&ix)));
                return Some(ix);
            }
        }
    }
    if !build {
        return None;
    }
    let new_id = crate::format::random_u64().max(1);
    match LogIndex::create(core.storage(), &path, capacity, generation, salt, new_id) {
        Ok(ix) => {
            commit_index.set_log_index_id(new_id);
            core.set_log_index(Some(Arc::clone(&ix)));
            Some(ix)
        }
        Err(_) => {
            core.set_log_index(None);
            None
        }
    }
}

impl Drop for Core {
    fn drop(&mut self) {
        // Transactions that outlived the last handle may have committed Buffered writes after
        // its close: make them durable (the log stays unproven: the next open folds it).
        let commits = self.counters.commits.load(Ordering::Relaxed);
        if commits != self.counters.closed_at_commits.load(Ordering::Relaxed) && !self.read_only {
            let _ = self.sync_written();
        }
        self.checkpointer.stop();
    }
}
