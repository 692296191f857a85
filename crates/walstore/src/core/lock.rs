//! The two locks of a store: the writer lock ([`WriterGuard`]: an in-process mutex, then
//! `flock` on `LOCK`) and the merge lock ([`MergeGuard`], `MERGE`, tried only).
//!
//! Holding the writer lock is a type: whatever needs it takes a `&WriterGuard` (or an
//! [`Access::Writer`], which only a guard makes), and [`Core::assert_writer`] checks that the
//! guard is this core's. A call without the lock does not compile.

use super::{head_of, Core};
use crate::cases::Authority;
use crate::error::{Error, Result};
use crate::format::LOCK_NAME;
use crate::options::LockWait;
use crate::storage::StorageLock;
use parking_lot::{ArcMutexGuard, RawMutex};
use std::fmt;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Holding this means holding both the in-process writer mutex and the file lock.
pub(crate) struct WriterGuard {
    mutex: ArcMutexGuard<RawMutex, ()>,
}

impl fmt::Debug for WriterGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WriterGuard")
    }
}

/// Holding this means holding the merge lock (released on drop).
#[derive(Debug)]
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

/// With what right a caller reads the store's files: the authority its verdicts rest on.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Access<'g> {
    /// A reader without the writer lock: files may change underneath; it decides nothing.
    Reader,
    /// An open loading the whole log, before it takes the writer lock.
    Open,
    /// A holder of the writer lock: the files cannot change; its verdicts are final, and it
    /// repairs what they call for.
    Writer(&'g WriterGuard),
    /// A holder of the merge lock, reading the manifest and mapping runs to merge: no other
    /// handle removes a file meanwhile, so what it finds is final; it writes nothing here.
    Merger(&'g MergeGuard<'g>),
    /// A read-only handle whose files kept changing while it waited: it takes what it finds
    /// as final, as a holder of the lock would, and writes nothing.
    ReadOnlyFinal,
}

impl Access<'_> {
    /// The label the recovery cases classify by.
    pub(crate) fn authority(&self) -> Authority {
        match self {
            Access::Reader => Authority::Reader,
            Access::Open => Authority::Open,
            Access::Merger(guard) => {
                debug_assert!(guard.slot.is_some(), "a merge guard without its lock file");
                Authority::Final
            }
            Access::Writer(_) | Access::ReadOnlyFinal => Authority::Final,
        }
    }
}

/// How long each attempt of [`Core::with_writer_patiently`] waits for the writer lock.
const PATIENT_STEP: Duration = Duration::from_millis(20);

impl Core {
    /// Takes the merge lock if no handle in any process holds it. At most one handle merges
    /// runs or removes unnamed files at a time; `None` when another one does (or the lock
    /// file cannot be opened: merging is then left to the next attempt). A symbolic link or
    /// another kind of file in the lock file's place is `NotARegularFile`, as for every file
    /// of the store: taken for a lock held elsewhere, it made `compact` wait forever and
    /// the background merger never merge.
    pub(crate) fn try_merge_lock(&self) -> Result<Option<MergeGuard<'_>>> {
        if self.read_only {
            return Ok(None);
        }
        let Some(mut slot) = self.merge_lock.try_lock() else {
            return Ok(None);
        };
        if slot.is_none() {
            let path = self.dir.join(crate::format::MERGE_LOCK_NAME);
            match self.opts.storage.open_lock(&path) {
                Ok(lock) => *slot = Some(lock),
                Err(e) if crate::storage::NotARegularFile::of(&e).is_some() => {
                    return Err(Error::io("open", &path, e))
                }
                Err(_) => return Ok(None),
            }
        }
        let taken = slot.as_ref().is_some_and(|l| l.try_lock().unwrap_or(false));
        Ok(taken.then_some(MergeGuard { slot }))
    }
    /// Checks that `guard` holds this core's writer lock (a guard of another store's core
    /// would prove nothing).
    pub(crate) fn assert_writer(&self, guard: &WriterGuard) {
        assert!(
            Arc::ptr_eq(ArcMutexGuard::mutex(&guard.mutex), &self.writer),
            "a writer guard of another store"
        );
    }

    /// Whether the previous holder of the writer lock left the log as the commit index says.
    pub(crate) fn lock_found_clean(&self, guard: &WriterGuard) -> bool {
        self.assert_writer(guard);
        self.lock_clean.load(Ordering::Acquire)
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
            let clean = index.lock_taken() || self.opts().faults.trust_dirty_lock();
            self.lock_clean.store(clean, Ordering::Release);
        }
        Ok(WriterGuard { mutex })
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

    /// [`Core::with_writer`] in short waits, retried while the lock is busy unless `stop`
    /// says to give up (a closing handle may hold the lock in an open transaction while it
    /// waits for the background thread that calls this).
    pub(crate) fn with_writer_patiently<T>(
        &self,
        stop: &dyn Fn() -> bool,
        mut f: impl FnMut(&WriterGuard) -> Result<T>,
    ) -> Result<T> {
        retry_while_busy(stop, || {
            self.with_writer(LockWait::Timeout(PATIENT_STEP), &mut f)
        })
    }
}

/// Retries `f` while it finds the writer lock busy, unless `stop` says to give up.
pub(crate) fn retry_while_busy<T>(
    stop: &dyn Fn() -> bool,
    mut f: impl FnMut() -> Result<T>,
) -> Result<T> {
    loop {
        match f() {
            Err(Error::Busy { .. }) if !stop() => continue,
            other => return other,
        }
    }
}
