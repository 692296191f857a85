//! [`Store`]: the public facade. Owns the open files, the published [`Version`], the writer
//! lock (in-process mutex, then the cross-process file lock), and the group-commit state.
//!
//! Commit path (Immediate): under the writer lock, encode the transaction, write it to the WAL
//! in one `pwrite`, publish the new version, release the lock; then wait until an `fdatasync`
//! that started after the write has completed. Whoever finds no sync in flight becomes the
//! leader and syncs for everyone who has written by then (group commit).
//!
//! Invariant: a commit returns `Ok` at `Immediate` only after an `fdatasync` that began after
//! its bytes were written returned success. After any failed write or sync the store is
//! poisoned and acknowledges nothing more.

use crate::error::{Error, Result};
use crate::format::LOCK_NAME;
use crate::options::{Durability, LockWait, Options};
use crate::storage::{StorageFile, StorageLock};
use crate::txn::{ReadTxn, WriteTxn};
use crate::version::{Bytes, Version};
use crate::wal::{self, record, WAL_HEADER_BYTES};
use parking_lot::{ArcMutexGuard, Condvar, Mutex, RawMutex, RwLock};
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// An open store. Cheap to clone; clones share one handle. `Send + Sync`.
#[derive(Clone)]
pub struct Store {
    pub(crate) inner: Arc<Inner>,
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.inner.dir)
            .finish()
    }
}

pub(crate) struct Inner {
    pub(crate) dir: PathBuf,
    pub(crate) opts: Options,
    pub(crate) read_only: bool,
    pub(crate) wal_path: PathBuf,
    pub(crate) wal: Box<dyn StorageFile>,
    pub(crate) lock: Option<Box<dyn StorageLock>>,
    pub(crate) writer: Arc<Mutex<WriterState>>,
    pub(crate) current: RwLock<Arc<Version>>,
    pub(crate) refresh_lock: Mutex<()>,
    pub(crate) sync: Mutex<SyncState>,
    pub(crate) sync_done: Condvar,
    pub(crate) poisoned: Mutex<Option<String>>,
    pub(crate) is_poisoned: AtomicBool,
    pub(crate) pid: u32,
    pub(crate) checkpointer: crate::checkpoint::Trigger,
    pub(crate) counters: Counters,
    /// The commit count when the last close made everything durable and marked the log.
    pub(crate) closed_at_commits: AtomicU64,
}

/// State owned by whoever holds the in-process writer lock.
#[derive(Debug, Default)]
pub(crate) struct WriterState {
    pub(crate) scratch: Vec<u8>,
    /// Length of the WAL file as last seen (its preallocated size).
    pub(crate) wal_len: u64,
}

/// Group-commit bookkeeping.
#[derive(Debug, Default)]
pub(crate) struct SyncState {
    /// Sequence number of the last WAL write.
    pub(crate) written_seq: u64,
    /// Generation and end offset of the last WAL write.
    pub(crate) written_end: (u64, u64),
    /// Every write with a sequence number up to this is durable.
    pub(crate) durable_seq: u64,
    /// Generation and offset through which the WAL is known durable.
    pub(crate) durable_end: (u64, u64),
    pub(crate) syncing: bool,
}

/// Operation counters, for [`StoreInfo`] and the benchmarks.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) commits: AtomicU64,
    pub(crate) wal_syncs: AtomicU64,
    pub(crate) checkpoints: AtomicU64,
    pub(crate) refreshes_with_news: AtomicU64,
}

/// Holding this means holding both the in-process writer mutex and the file lock.
pub(crate) struct WriterGuard {
    pub(crate) state: ArcMutexGuard<RawMutex, WriterState>,
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
    /// Bytes of WAL records since the last checkpoint.
    pub wal_bytes: u64,
    /// Size of the WAL file (including preallocated space).
    pub wal_file_bytes: u64,
    /// Snapshot files: (file name, bytes, entries).
    pub snapshot_files: Vec<(String, u64, u64)>,
    /// Keys changed since the last checkpoint (held in memory).
    pub memtable_keys: usize,
    /// Commits made through this handle.
    pub commits: u64,
    /// WAL fdatasyncs made through this handle (fewer than commits under group commit).
    pub wal_syncs: u64,
    /// Checkpoints made through this handle.
    pub checkpoints: u64,
    /// Whether the handle is read-only.
    pub read_only: bool,
}

impl Store {
    /// Opens (or creates) the store in directory `path` with default [`Options`].
    pub fn open(path: impl AsRef<Path>) -> Result<Store> {
        Options::new().open(path)
    }

    pub(crate) fn open_with(path: &Path, opts: Options) -> Result<Store> {
        crate::recovery::open(path, opts)
    }

    /// The store directory.
    pub fn path(&self) -> &Path {
        &self.inner.dir
    }

    pub(crate) fn check_usable(&self, write: bool) -> Result<()> {
        let current = std::process::id();
        if current != self.inner.pid {
            return Err(Error::Forked {
                opened_by: self.inner.pid,
                current,
            });
        }
        if write {
            if self.inner.read_only {
                return Err(Error::ReadOnly);
            }
            if self.inner.is_poisoned.load(Ordering::Acquire) {
                return Err(self.poison_error());
            }
        }
        Ok(())
    }

    pub(crate) fn poison_error(&self) -> Error {
        Error::Poisoned {
            cause: self
                .inner
                .poisoned
                .lock()
                .clone()
                .unwrap_or_else(|| "I/O error".into()),
        }
    }

    /// Latches the store as poisoned; later writes fail until it is reopened.
    pub(crate) fn poison(&self, cause: &str) {
        let mut p = self.inner.poisoned.lock();
        if p.is_none() {
            *p = Some(cause.to_string());
        }
        self.inner.is_poisoned.store(true, Ordering::Release);
        drop(p);
        let _s = self.inner.sync.lock();
        self.inner.sync_done.notify_all();
    }

    /// The newest version this handle has published.
    pub(crate) fn current(&self) -> Arc<Version> {
        Arc::clone(&self.inner.current.read())
    }

    /// Publishes `version` unless a newer one is already there.
    pub(crate) fn publish(&self, version: Arc<Version>) {
        let mut cur = self.inner.current.write();
        // A clean marker moves the end of the log without a new transaction id.
        let newer = (version.generation, version.last_txn, version.wal_end)
            > (cur.generation, cur.last_txn, cur.wal_end);
        if newer {
            *cur = version;
        }
    }

    /// A consistent snapshot including every transaction committed before this call, by any
    /// process.
    pub fn begin_read(&self) -> Result<ReadTxn> {
        self.check_usable(false)?;
        let version = crate::recovery::refresh(self, false)?;
        Ok(ReadTxn::new(version))
    }

    /// Starts the write transaction, waiting for the writer lock as [`Options::lock_wait`]
    /// says. It starts from the newest committed state of any process.
    pub fn begin_write(&self) -> Result<WriteTxn> {
        self.check_usable(true)?;
        let guard = self.acquire_writer(self.inner.opts.lock_wait)?;
        let base = match crate::recovery::refresh(self, true) {
            Ok(v) => v,
            Err(e) => {
                self.release_writer(guard);
                return Err(e);
            }
        };
        Ok(WriteTxn {
            store: self.clone(),
            guard: Some(guard),
            base,
            writes: BTreeMap::new(),
            durability: self.inner.opts.durability,
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

    /// Takes the in-process writer mutex, then the cross-process file lock.
    pub(crate) fn acquire_writer(&self, wait: LockWait) -> Result<WriterGuard> {
        let started = Instant::now();
        let state = match wait {
            LockWait::Forever => self.inner.writer.lock_arc(),
            LockWait::NoWait => self.inner.writer.try_lock_arc().ok_or(Error::Busy {
                waited: Duration::ZERO,
            })?,
            LockWait::Timeout(limit) => self
                .inner
                .writer
                .try_lock_arc_for(limit)
                .ok_or(Error::Busy { waited: limit })?,
        };
        let lock = self.inner.lock.as_ref().ok_or(Error::ReadOnly)?;
        let lock_path = self.inner.dir.join(LOCK_NAME);
        match wait {
            LockWait::Forever => lock.lock().map_err(|e| Error::io("flock", &lock_path, e))?,
            LockWait::NoWait => {
                if !lock
                    .try_lock()
                    .map_err(|e| Error::io("flock", &lock_path, e))?
                {
                    return Err(Error::Busy {
                        waited: started.elapsed(),
                    });
                }
            }
            LockWait::Timeout(limit) => {
                let mut pause = Duration::from_micros(50);
                while !lock
                    .try_lock()
                    .map_err(|e| Error::io("flock", &lock_path, e))?
                {
                    let waited = started.elapsed();
                    if waited >= limit {
                        return Err(Error::Busy { waited });
                    }
                    std::thread::sleep(pause.min(limit - waited));
                    pause = (pause * 2).min(Duration::from_millis(5));
                }
            }
        }
        Ok(WriterGuard { state })
    }

    /// Releases the file lock, then the in-process mutex (in that order: the file lock is
    /// shared by every thread of this process).
    pub(crate) fn release_writer(&self, guard: WriterGuard) {
        if let Some(lock) = self.inner.lock.as_ref() {
            // An unlock failure cannot leave the lock held past the process: the OS drops it
            // with the descriptor. Nothing the caller could do differently.
            let _ = lock.unlock();
        }
        drop(guard);
    }

    /// The commit path (see the module documentation).
    pub(crate) fn commit_txn(
        &self,
        guard: Option<WriterGuard>,
        base: &Arc<Version>,
        writes: BTreeMap<Bytes, Option<Bytes>>,
        durability: Durability,
    ) -> Result<()> {
        let Some(mut guard) = guard else {
            return Err(Error::ReadOnly);
        };
        if writes.is_empty() {
            self.release_writer(guard);
            return Ok(());
        }
        if let Err(e) = self.check_usable(true) {
            self.release_writer(guard);
            return Err(e);
        }
        let written = self.append(&mut guard, base, writes);
        self.release_writer(guard);
        let (seq, wal_end) = written?;
        self.inner.counters.commits.fetch_add(1, Ordering::Relaxed);
        if durability == Durability::Immediate && !self.inner.opts.faults.skip_wal_fsync() {
            self.wait_durable(seq)?;
        }
        if wal_end - WAL_HEADER_BYTES >= self.inner.opts.wal_size_bytes_checkpoint {
            self.inner.checkpointer.request();
        }
        Ok(())
    }

    /// Writes the transaction to the WAL and publishes the new version. Returns the write's
    /// sequence number and the WAL end after it.
    fn append(
        &self,
        guard: &mut WriterGuard,
        base: &Arc<Version>,
        writes: BTreeMap<Bytes, Option<Bytes>>,
    ) -> Result<(u64, u64)> {
        let txn_id = base.last_txn + 1;
        let watermark = {
            let s = self.inner.sync.lock();
            if s.durable_end.0 == base.generation {
                s.durable_end.1.max(base.synced_through)
            } else {
                base.synced_through
            }
        };
        let state = &mut *guard.state;
        state.scratch.clear();
        let len = record::encode_txn(
            &mut state.scratch,
            base.salt,
            txn_id,
            writes.iter().map(|(k, v)| (&k[..], v.as_deref())),
            watermark,
        ) as u64;
        let end = self.write_scratch(state, base.wal_end, "WAL write")?;
        debug_assert_eq!(end, base.wal_end + len);
        let mut next = Version::clone(base);
        next.push_layer(writes);
        next.last_txn = txn_id;
        next.wal_end = end;
        next.data_end = end;
        let seq = {
            let mut s = self.inner.sync.lock();
            s.written_seq += 1;
            s.written_end = (base.generation, end);
            s.written_seq
        };
        self.publish(Arc::new(next));
        Ok((seq, end))
    }

    /// Writes the encoded records in `state.scratch` to the WAL at `start`, growing the file
    /// first if needed; returns the end offset. A failed write poisons the handle (`cause`).
    fn write_scratch(&self, state: &mut WriterState, start: u64, cause: &str) -> Result<u64> {
        let end = start + state.scratch.len() as u64;
        if end > state.wal_len {
            self.grow_wal(state, end)?;
        }
        if let Err(e) = self.inner.wal.write_all_at(&state.scratch, start) {
            self.poison(cause);
            return Err(Error::io("write", &self.inner.wal_path, e));
        }
        Ok(end)
    }

    /// Makes room in the WAL for a transaction ending at `needed_end`: zero-fills up to
    /// `wal_preallocate_bytes` past it, so the commits that follow overwrite allocated,
    /// initialized blocks and their `fdatasync` has no size change to journal. The zeros are
    /// not synced here: the commit's own `fdatasync` (or a later one) covers them with the
    /// records. Nothing relies on the zeros being durable; recovery treats whatever follows
    /// the log as a torn tail.
    fn grow_wal(&self, state: &mut WriterState, needed_end: u64) -> Result<()> {
        let path = &self.inner.wal_path;
        // The real length, under the writer lock: another process may have grown the file.
        let len = self
            .inner
            .wal
            .len()
            .map_err(|e| Error::io("stat", path, e))?;
        state.wal_len = len;
        if len >= needed_end {
            return Ok(());
        }
        let target = (needed_end + self.inner.opts.wal_preallocate_bytes).next_multiple_of(4096);
        match wal::write_zeros(self.inner.wal.as_ref(), len, target) {
            Ok(()) => {
                state.wal_len = target;
                Ok(())
            }
            Err(e) => {
                // Part of the zero fill may be in the file: the next writer treats it as a
                // torn tail. The handle cannot tell what reached the disk.
                self.poison("WAL preallocation");
                Err(Error::io("preallocate", path, e))
            }
        }
    }

    /// Waits until WAL write `seq` is durable, syncing as the group's leader if no sync is
    /// in flight.
    pub(crate) fn wait_durable(&self, seq: u64) -> Result<()> {
        let mut s = self.inner.sync.lock();
        loop {
            if s.durable_seq >= seq {
                return Ok(());
            }
            if self.inner.is_poisoned.load(Ordering::Acquire) {
                return Err(self.poison_error());
            }
            if s.syncing {
                self.inner.sync_done.wait(&mut s);
                continue;
            }
            s.syncing = true;
            let (target, end) = (s.written_seq, s.written_end);
            drop(s);
            let mut result = self.inner.wal.sync_data();
            if result.is_err() && self.inner.opts.faults.retry_failed_fsync() {
                result = self.inner.wal.sync_data();
            }
            self.inner
                .counters
                .wal_syncs
                .fetch_add(1, Ordering::Relaxed);
            s = self.inner.sync.lock();
            s.syncing = false;
            match result {
                Ok(()) => {
                    s.durable_seq = s.durable_seq.max(target);
                    if end >= s.durable_end {
                        s.durable_end = end;
                    }
                    self.inner.sync_done.notify_all();
                }
                Err(e) => {
                    drop(s);
                    self.poison("WAL fdatasync");
                    return Err(Error::io("fdatasync", &self.inner.wal_path, e));
                }
            }
        }
    }

    /// Makes every transaction committed so far through this handle durable (useful after
    /// `Buffered` commits).
    pub fn sync(&self) -> Result<()> {
        self.check_usable(true)?;
        let seq = self.inner.sync.lock().written_seq;
        if seq == 0 {
            return Ok(());
        }
        self.wait_durable(seq)
    }

    /// Closes this handle. When it is the last clone, and transactions were committed through
    /// it, every one of them is made durable (`Buffered` ones included), and the log is marked
    /// clean, so the next read-write open has nothing to prove and does no recovery
    /// checkpoint (RECOVERY.md S1a). Dropping the last clone does the same and ignores
    /// errors; `close` reports them. If another writer holds the lock at that moment, the
    /// marker is left out (the commits are still made durable).
    pub fn close(self) -> Result<()> {
        self.close_last()
    }

    /// The work of [`Store::close`], done only by the last clone.
    fn close_last(&self) -> Result<()> {
        let commits = self.inner.counters.commits.load(Ordering::Relaxed);
        let unused = self.inner.read_only
            || commits == 0
            || commits == self.inner.closed_at_commits.load(Ordering::Relaxed)
            || Arc::strong_count(&self.inner) > 1
            || self.check_usable(true).is_err();
        if unused {
            return Ok(());
        }
        self.sync()?;
        let mut guard = match self.acquire_writer(LockWait::NoWait) {
            Ok(guard) => guard,
            Err(Error::Busy { .. }) => return Ok(()),
            Err(e) => return Err(e),
        };
        let result = crate::recovery::refresh(self, true)
            .and_then(|version| self.write_clean_marker(&mut guard, &version));
        self.release_writer(guard);
        if result.is_ok() {
            // `close` then drops the handle: its `Drop` has nothing left to do.
            self.inner
                .closed_at_commits
                .store(commits, Ordering::Relaxed);
        }
        result
    }

    /// Appends the *clean marker* (FORMAT.md §4.3): an empty commit record with the id of the
    /// last transaction and the end of the log as its watermark, written only after a sync of
    /// the whole log succeeded. It carries no data, so the next open may rewrite it in place
    /// (RECOVERY.md S1).
    fn write_clean_marker(&self, guard: &mut WriterGuard, version: &Version) -> Result<()> {
        if !version.has_unproven_data() {
            return Ok(());
        }
        let path = &self.inner.wal_path;
        let durable = self.inner.sync.lock().durable_end;
        if durable != (version.generation, version.wal_end) {
            if let Err(e) = self.inner.wal.sync_data() {
                self.poison("WAL fdatasync at close");
                return Err(Error::io("fdatasync", path, e));
            }
        }
        let state = &mut *guard.state;
        state.scratch.clear();
        record::encode_txn(
            &mut state.scratch,
            version.salt,
            version.last_txn,
            std::iter::empty(),
            version.wal_end,
        );
        let end = self.write_scratch(state, version.wal_end, "WAL write at close")?;
        if let Err(e) = self.inner.wal.sync_data() {
            self.poison("WAL fdatasync at close");
            return Err(Error::io("fdatasync", path, e));
        }
        let mut next = version.clone();
        next.wal_end = end;
        next.synced_through = version.wal_end;
        self.publish(Arc::new(next));
        self.inner.sync.lock().durable_end = (version.generation, end);
        Ok(())
    }

    /// Folds every committed transaction into snapshot files and resets the WAL. Waits for
    /// the writer lock like `begin_write`. Cost scales with the key ranges that changed.
    pub fn checkpoint(&self) -> Result<crate::checkpoint::CheckpointStats> {
        crate::checkpoint::run(self, self.inner.opts.lock_wait)
    }

    /// Sizes, generation and counters.
    pub fn info(&self) -> Result<StoreInfo> {
        let v = crate::recovery::refresh(self, false)?;
        let wal_file_bytes = self
            .inner
            .wal
            .len()
            .map_err(|e| Error::io("stat", &self.inner.wal_path, e))?;
        let c = &self.inner.counters;
        Ok(StoreInfo {
            path: self.inner.dir.clone(),
            generation: v.generation,
            last_txn: v.last_txn,
            checkpoint_txn: v.base_txn,
            txns_since_checkpoint: v.last_txn - v.base_txn,
            wal_bytes: v.wal_end - WAL_HEADER_BYTES,
            wal_file_bytes,
            snapshot_files: v
                .segments
                .metas
                .iter()
                .map(|m| {
                    (
                        crate::format::snapshot_name(m.file_id),
                        m.file_len,
                        m.entry_count,
                    )
                })
                .collect(),
            memtable_keys: v.changed_keys(),
            commits: c.commits.load(Ordering::Relaxed),
            wal_syncs: c.wal_syncs.load(Ordering::Relaxed),
            checkpoints: c.checkpoints.load(Ordering::Relaxed),
            read_only: self.inner.read_only,
        })
    }

    /// Whether this handle is read-only (opened so, or in salvage mode).
    pub fn is_read_only(&self) -> bool {
        self.inner.read_only
    }

    /// Whether an earlier failed write or sync poisoned this handle.
    pub fn is_poisoned(&self) -> bool {
        self.inner.is_poisoned.load(Ordering::Acquire)
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        // Errors are for `close`; a failure here poisoned nothing anyone can still use, and the
        // next open recovers (with a checkpoint) what the marker would have proven.
        let _ = self.close_last();
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.checkpointer.shutdown();
    }
}
