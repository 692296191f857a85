//! [`Core`]: the state one open store shares between its handles, its transactions, the
//! catch-up, the open path and the background checkpointer. Fields are private; everything
//! goes through methods that keep the invariants below.
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

use crate::error::{Error, Result};
use crate::format::LOCK_NAME;
use crate::index::{CommitIndex, Head};
use crate::options::{Durability, LockWait, Options};
use crate::snapshot::RangeDelete;
use crate::storage::{Storage, StorageLock};
use crate::version::{Bytes, Version};
use crate::wal::writer::{TxnToAppend, Wal};
use crate::wal::WAL_HEADER_BYTES;
use parking_lot::{ArcMutexGuard, Condvar, Mutex, MutexGuard, RawMutex, RwLock};
use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Shared state of one open store.
pub(crate) struct Core {
    dir: PathBuf,
    opts: Options,
    read_only: bool,
    wal: Wal,
    lock: Option<Box<dyn StorageLock>>,
    /// The in-process half of the writer lock (the file lock is the other half).
    writer: Arc<Mutex<()>>,
    /// The head: every transaction written that this handle knows of (writers build on it).
    current: RwLock<Arc<Version>>,
    /// The commit index, when the storage has shared memory (set once, at open).
    index: OnceLock<Arc<CommitIndex>>,
    /// What readers see (with a commit index): the head as of the index's visible LSN.
    visible: RwLock<Arc<Version>>,
    /// The change counter of the index as of `visible` (`u64::MAX`: not looked yet).
    seen: AtomicU64,
    /// Whether the previous holder of the writer lock left the log as the index says (valid
    /// while this handle holds the lock).
    lock_clean: std::sync::atomic::AtomicBool,
    /// Versions published past `visible`, oldest first: the readers' next views, usually.
    recent: Mutex<VecDeque<Arc<Version>>>,
    /// Serializes catch-ups, so two threads never scan the same tail at once.
    refresh_lock: Mutex<()>,
    pid: u32,
    /// The fork epoch at open (see `fork.rs`).
    fork_epoch: u64,
    checkpointer: CheckpointSignal,
    /// The merge lock file, opened at the first merge (`MERGE`, FORMAT.md §2).
    merge_lock: Mutex<Option<Box<dyn StorageLock>>>,
    counters: Counters,
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
}

/// Holding this means holding both the in-process writer mutex and the file lock.
pub(crate) struct WriterGuard {
    _mutex: ArcMutexGuard<RawMutex, ()>,
}

impl fmt::Debug for WriterGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WriterGuard")
    }
}

/// Holding this means holding the merge lock (released on drop).
pub(crate) struct MergeGuard<'c> {
    slot: parking_lot::MutexGuard<'c, Option<Box<dyn StorageLock>>>,
}

impl Drop for MergeGuard<'_> {
    fn drop(&mut self) {
        if let Some(lock) = self.slot.as_ref() {
            let _ = lock.unlock();
        }
    }
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
            visible: RwLock::new(Arc::new(parts.version.clone())),
            current: RwLock::new(Arc::new(parts.version)),
            index: OnceLock::new(),
            seen: AtomicU64::new(u64::MAX),
            lock_clean: std::sync::atomic::AtomicBool::new(false),
            recent: Mutex::new(VecDeque::new()),
            refresh_lock: Mutex::new(()),
            pid: std::process::id(),
            fork_epoch: crate::fork::epoch(),
            checkpointer: CheckpointSignal::default(),
            merge_lock: Mutex::new(None),
            counters: Counters::default(),
        }
    }

    /// Takes the merge lock if no handle in any process holds it. At most one handle merges
    /// runs or removes unnamed files at a time; `None` when another one does (or the lock
    /// file cannot be opened: merging is then left to the next attempt).
    pub(crate) fn try_merge_lock(&self) -> Option<MergeGuard<'_>> {
        if self.read_only {
            return None;
        }
        let mut slot = self.merge_lock.try_lock()?;
        if slot.is_none() {
            let path = self.dir.join(crate::format::MERGE_LOCK_NAME);
            *slot = Some(self.opts.storage.open_lock(&path).ok()?);
        }
        let taken = slot.as_ref().is_some_and(|l| l.try_lock().unwrap_or(false));
        taken.then_some(MergeGuard { slot })
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

    /// Whether the previous holder of the writer lock left the log as the commit index says
    /// (the caller holds the lock).
    pub(crate) fn lock_found_clean(&self) -> bool {
        self.lock_clean.load(Ordering::Acquire)
    }

    /// The commit index, if the storage has shared memory.
    pub(crate) fn index(&self) -> Option<&Arc<CommitIndex>> {
        self.index.get()
    }

    /// Sets the commit index (at open, once). A failed WAL write or sync of this handle then
    /// poisons every handle of the store.
    pub(crate) fn set_index(&self, index: Arc<CommitIndex>) {
        let hook = Arc::clone(&index);
        self.wal.on_poison(Box::new(move || hook.poison()));
        let _ = self.index.set(index);
    }

    /// The view readers get: with a commit index, `visible`; without, the head.
    pub(crate) fn visible(&self) -> Arc<Version> {
        if self.index().is_some() {
            Arc::clone(&self.visible.read())
        } else {
            self.current()
        }
    }

    /// The change counter `visible` reflects.
    pub(crate) fn seen(&self) -> u64 {
        self.seen.load(Ordering::Acquire)
    }

    /// Shows `version` to readers, as the view of the index at change counter `counter`
    /// (neither goes back), and forgets the recent versions it passes.
    pub(crate) fn show(&self, version: &Arc<Version>, counter: u64) {
        {
            let mut vis = self.visible.write();
            if position(version) > position(&vis) {
                *vis = Arc::clone(version);
            }
            let shown = position(&vis);
            self.recent.lock().retain(|v| position(v) > shown);
        }
        // After `visible`: a reader that finds the counter unchanged finds this version.
        let _ = self
            .seen
            .fetch_max(counter.wrapping_add(1), Ordering::AcqRel);
    }

    /// Sets what readers see at open (it may be older than the head).
    pub(crate) fn install_visible(&self, version: Arc<Version>, counter: u64) {
        *self.visible.write() = version;
        self.seen.store(counter.wrapping_add(1), Ordering::Release);
    }

    /// The version this handle knows at log position `at` (generation, offset), if any.
    pub(crate) fn known_at(&self, at: (u64, u64)) -> Option<Arc<Version>> {
        let vis = self.visible.read();
        if position(&vis) == at {
            return Some(Arc::clone(&vis));
        }
        drop(vis);
        if let Some(v) = self.recent.lock().iter().find(|v| position(v) == at) {
            return Some(Arc::clone(v));
        }
        let head = self.current();
        (position(&head) == at).then_some(head)
    }

    /// The newest version this handle knows at or before `at` in `at`'s generation.
    pub(crate) fn known_before(&self, at: (u64, u64)) -> Option<Arc<Version>> {
        let mut best: Option<Arc<Version>> = None;
        let mut consider = |v: &Arc<Version>| {
            let p = position(v);
            if p.0 == at.0 && p.1 <= at.1 && best.as_ref().is_none_or(|b| position(b) < p) {
                best = Some(Arc::clone(v));
            }
        };
        consider(&self.visible.read());
        for v in self.recent.lock().iter() {
            consider(v);
        }
        consider(&self.current());
        best
    }

    /// Publishes `version` (the caller holds the writer lock) and tells the commit index that
    /// the log's head is there; `durable`: the log is durable through it.
    pub(crate) fn publish_locked(&self, version: Arc<Version>, durable: bool) {
        self.publish(Arc::clone(&version));
        if let Some(index) = self.index() {
            index.set_head(head_of(&version), durable);
        }
    }

    /// The newest version this handle has published.
    pub(crate) fn current(&self) -> Arc<Version> {
        Arc::clone(&self.current.read())
    }

    /// Publishes `version` unless a newer one is already there.
    pub(crate) fn publish(&self, version: Arc<Version>) {
        let mut cur = self.current.write();
        // A clean marker moves the end of the log without a new transaction id.
        let newer = (version.generation, version.last_txn, version.wal_end)
            > (cur.generation, cur.last_txn, cur.wal_end);
        if newer {
            // Invariant: within a generation the log only grows.
            debug_assert!(
                version.generation != cur.generation || version.wal_end >= cur.wal_end,
                "the end of the log went back within generation {}",
                cur.generation
            );
            if self.index().is_some() {
                let mut recent = self.recent.lock();
                // A new generation: readers never go back to the old one's versions (their
                // memtables would stay alive for nothing).
                recent.retain(|v| v.generation == version.generation);
                recent.push_back(Arc::clone(&version));
                if recent.len() > MAX_RECENT {
                    recent.pop_front();
                }
            }
            *cur = version;
        }
    }

    /// Installs the version the open loaded, replacing the empty one the core started with
    /// (whose generation and log position it may equal).
    /// Replaces the runs of the current version with `runs` (a merge's result: the same data),
    /// if it is still of `generation`.
    pub(crate) fn replace_runs(&self, generation: u64, runs: Vec<Arc<crate::version::SegmentSet>>) {
        let mut cur = self.current.write();
        if cur.generation == generation {
            *cur = Arc::new(Version {
                runs: runs.clone(),
                ..Version::clone(&cur)
            });
        }
        drop(cur);
        // The same data: readers switch to the merged runs too.
        let with_runs = |v: &mut Arc<Version>| {
            if v.generation == generation {
                *v = Arc::new(Version {
                    runs: runs.clone(),
                    ..Version::clone(v)
                });
            }
        };
        with_runs(&mut self.visible.write());
        self.recent.lock().iter_mut().for_each(with_runs);
    }

    pub(crate) fn install_loaded(&self, version: Arc<Version>) {
        *self.visible.write() = Arc::clone(&version);
        *self.current.write() = version;
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

    /// Takes the in-process writer mutex, then the cross-process file lock.
    pub(crate) fn acquire_writer(&self, wait: LockWait) -> Result<WriterGuard> {
        let started = Instant::now();
        let busy = |waited| Error::Busy { waited };
        let mutex = match wait {
            LockWait::Forever => self.writer.lock_arc(),
            LockWait::NoWait => self.writer.try_lock_arc().ok_or(busy(Duration::ZERO))?,
            LockWait::Timeout(limit) => self
                .writer
                .try_lock_arc_for(limit)
                .ok_or(busy(started.elapsed()))?,
        };
        let lock = self.lock.as_ref().ok_or(Error::ReadOnly)?;
        let lock_path = self.dir.join(LOCK_NAME);
        let flock_err = |e| Error::io("flock", &lock_path, e);
        match wait {
            LockWait::Forever => lock.lock().map_err(flock_err)?,
            LockWait::NoWait => {
                if !lock.try_lock().map_err(flock_err)? {
                    return Err(busy(started.elapsed()));
                }
            }
            LockWait::Timeout(limit) => {
                let mut pause = Duration::from_micros(50);
                while !lock.try_lock().map_err(flock_err)? {
                    let waited = started.elapsed();
                    if waited >= limit {
                        return Err(busy(waited));
                    }
                    std::thread::sleep(pause.min(limit - waited));
                    pause = (pause * 2).min(Duration::from_millis(5));
                }
            }
        }
        if let Some(index) = self.index() {
            self.lock_clean.store(index.lock_taken(), Ordering::Release);
        }
        Ok(WriterGuard { _mutex: mutex })
    }

    /// Releases the file lock, then the in-process mutex (in that order: the file lock is
    /// shared by every thread of this process).
    pub(crate) fn release_writer(&self, guard: WriterGuard) {
        if self.is_forked() {
            // A transaction inherited across `fork()`: the `flock` is the parent's (one open
            // file description for both processes); unlocking here would release it.
            drop(guard);
            return;
        }
        if let Some(index) = self.index() {
            // The next holder may trust the index without reading the log only if it
            // describes the log's end now (a holder killed before this keeps it marked).
            // A poisoned handle may have left part of a write behind.
            if !self.wal.is_poisoned()
                && index
                    .read()
                    .is_ok_and(|state| state.describes(&head_of(&self.current())))
            {
                index.lock_left_clean();
            }
        }
        if let Some(lock) = self.lock.as_ref() {
            // An unlock failure cannot leave the lock held past the process: the OS drops it
            // with the descriptor. Nothing the caller could do differently.
            let _ = lock.unlock();
        }
        drop(guard);
    }

    /// Runs `f` holding the writer lock, releasing it afterwards whatever `f` returns.
    pub(crate) fn with_writer<T>(
        &self,
        wait: LockWait,
        f: impl FnOnce(&WriterGuard) -> Result<T>,
    ) -> Result<T> {
        let guard = self.acquire_writer(wait)?;
        let result = f(&guard);
        self.release_writer(guard);
        result
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
        _guard: &WriterGuard,
        base: &Arc<Version>,
        writes: BTreeMap<Bytes, Option<Bytes>>,
        deletes: Vec<RangeDelete>,
        immediate: bool,
    ) -> Result<crate::wal::writer::Appended> {
        let txn_id = base.last_txn + 1;
        let appended = self.wal.append_txn(TxnToAppend {
            generation: base.generation,
            salt: base.salt,
            txn_id,
            at: base.wal_end,
            watermark: self.wal.watermark(base.generation, base.synced_through),
            deletes: &deletes,
            writes: &writes,
        })?;
        let mut next = Version::clone(base);
        next.apply_range_deletes(&deletes);
        next.push_layer(writes);
        // Invariant: transaction ids are dense, and the log only grows within a generation.
        debug_assert_eq!(next.last_txn + 1, txn_id);
        debug_assert!(appended.end > base.wal_end);
        next.last_txn = txn_id;
        next.wal_end = appended.end;
        next.data_end = appended.end;
        let next = Arc::new(next);
        self.publish(Arc::clone(&next));
        if let Some(index) = self.index() {
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
            let (generation, end) = self.wal.durable_end();
            index.durable(generation, end);
            // Move this handle's readers' view along now (a handle that only writes would
            // otherwise keep its first view, and the memory it holds, alive).
            if let Ok(state) = index.read() {
                if let Some(v) = self.known_at((state.generation, state.visible_end())) {
                    self.show(&v, counter);
                }
            }
        }
    }
}

/// How many published versions a handle keeps for its readers' next views.
const MAX_RECENT: usize = 64;

/// A version's position in the log: (generation, offset of its end).
pub(crate) fn position(v: &Version) -> (u64, u64) {
    (v.generation, v.wal_end)
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

/// Starts the background checkpointer at the first request, wakes it and stops it.
///
/// The thread starts lazily: a handle that never fills the log past the checkpoint
/// threshold never has one. Short-lived processes save the thread, and a process that forks
/// with a store open (Python programs do) has no thread of ours that a child could inherit
/// in the middle of taking a lock.
#[derive(Default)]
pub(crate) struct CheckpointSignal {
    shared: Arc<SignalShared>,
    thread: Mutex<Option<JoinHandle<()>>>,
    /// Starts the thread, until it is started (set by [`Self::arm`]).
    armed: Mutex<Option<Starter>>,
}

/// Starts the background thread (`None` when the system refuses one).
pub(crate) type Starter = Box<dyn Fn() -> Option<JoinHandle<()>> + Send + Sync>;

/// The part of [`CheckpointSignal`] the background thread holds (it holds no `Core`
/// while it waits).
#[derive(Debug, Default)]
pub(crate) struct SignalShared {
    state: Mutex<SignalState>,
    changed: Condvar,
}

#[derive(Debug, Default)]
struct SignalState {
    requested: bool,
    stopped: bool,
    running: bool,
}

/// What the background thread is told when it waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wake {
    Checkpoint,
    Stop,
}

impl fmt::Debug for CheckpointSignal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CheckpointSignal")
            .field("shared", &self.shared)
            .field("started", &self.thread.lock().is_some())
            .field("armed", &self.armed.lock().is_some())
            .finish()
    }
}

impl CheckpointSignal {
    /// What the background thread waits on.
    pub(crate) fn shared(&self) -> Arc<SignalShared> {
        Arc::clone(&self.shared)
    }

    /// Lets the first [`Self::request`] start the background thread with `start`.
    pub(crate) fn arm(&self, start: Starter) {
        *self.armed.lock() = Some(start);
    }

    /// Asks the background thread for a checkpoint, starting it if it is armed and not
    /// started yet. Without [`Self::arm`] (automatic checkpoints off) this does nothing.
    pub(crate) fn request(&self) {
        {
            let mut s = self.shared.state.lock();
            if s.stopped {
                return;
            }
            if s.running {
                s.requested = true;
                self.shared.changed.notify_one();
                return;
            }
        }
        // Lock order: thread, armed, state. `stop` takes state, then thread: it either
        // finds the thread started here or is seen (as `stopped`) before one is started.
        let mut thread = self.thread.lock();
        let Some(start) = self.armed.lock().take() else {
            return; // not armed, or another request started the thread
        };
        {
            let mut s = self.shared.state.lock();
            if s.stopped {
                return;
            }
            s.requested = true;
            s.running = true;
        }
        match start() {
            Some(started) => *thread = Some(started),
            None => {
                // No thread (resource limits): the next request tries again.
                self.shared.state.lock().running = false;
                *self.armed.lock() = Some(start);
            }
        }
    }

    /// Stops the background thread and waits until it has finished a checkpoint it is running.
    pub(crate) fn stop(&self) {
        self.shared.state.lock().stopped = true;
        self.shared.changed.notify_all();
        let thread = self.thread.lock().take();
        if let Some(thread) = thread {
            if thread.thread().id() != std::thread::current().id() {
                let _ = thread.join();
            }
        }
    }
}

impl SignalShared {
    /// Blocks the background thread until a request or a stop.
    pub(crate) fn wait(&self) -> Wake {
        let mut s = self.state.lock();
        while !s.requested && !s.stopped {
            self.changed.wait(&mut s);
        }
        if s.stopped {
            return Wake::Stop;
        }
        s.requested = false;
        Wake::Checkpoint
    }

    /// Takes a pending request without waiting (the worker checks between merge steps).
    pub(crate) fn take_request(&self) -> bool {
        std::mem::take(&mut self.state.lock().requested)
    }

    /// Whether a stop was asked for (the background thread gives up waiting for the lock).
    pub(crate) fn is_stopped(&self) -> bool {
        self.state.lock().stopped
    }
}
