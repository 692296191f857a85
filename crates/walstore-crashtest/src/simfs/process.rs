//! Processes on the simulated file system. The driver opens every handle through a
//! [`Process`]: a view of the one [`SimFs`] that remembers the locks and shared regions the
//! handle took, so that the handle can be killed as a process is (`SIGKILL` of one process
//! while the others live):
//! - every later call of the dead process (file, lock, directory) fails at once and leaves no
//!   trace: a dead process issues nothing;
//! - its locks are released, as the kernel releases a dead process's `flock`s;
//! - its view of a shared region becomes private scratch words: whatever its handle does
//!   while it is dropped (its close fails at the first I/O) reaches no other process;
//! - what it wrote stays in the page cache (the machine did not crash); only a later crash
//!   decides what is durable.
//!
//! A process can also be killed in the middle of a call: [`Process::kill_after_log_write`]
//! kills it as its next write to the log (a file named `wal`) returns, before anything it
//! does next (a commit-index update, a sync) reaches any other process.

use super::SimFs;
use parking_lot::Mutex;
use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use walstore::storage::{
    Mapping, OpenMode, OpenedRegion, SharedFile, SharedRegion, Storage, StorageFile, StorageLock,
    REGION_WORDS,
};

type LockSlot = Arc<Mutex<Option<Box<dyn StorageLock>>>>;

#[derive(Debug, Default)]
struct State {
    dead: AtomicBool,
    locks: Mutex<Vec<LockSlot>>,
    /// Die as the next write to the log returns.
    kill_after_log_write: AtomicBool,
}

impl State {
    fn kill(&self) {
        self.dead.store(true, Ordering::Release);
        let slots = std::mem::take(&mut *self.locks.lock());
        for slot in slots {
            drop(slot.lock().take());
        }
    }

    fn alive(&self) -> io::Result<()> {
        if self.dead.load(Ordering::Acquire) {
            Err(io::Error::other("the simulated process was killed"))
        } else {
            Ok(())
        }
    }
}

/// One process's view of a [`SimFs`] (a [`Storage`]); clones are the same process.
#[derive(Debug, Clone)]
pub struct Process {
    fs: SimFs,
    state: Arc<State>,
}

impl SimFs {
    /// A new process on this file system.
    pub fn process(&self) -> Process {
        Process {
            fs: self.clone(),
            state: Arc::default(),
        }
    }
}

impl Process {
    /// Kills the process: its locks are released and every later call fails.
    pub fn kill(&self) {
        self.state.kill();
    }

    /// Arms (or with `false` disarms) a kill as the process's next write to the log returns.
    pub fn kill_after_log_write(&self, armed: bool) {
        self.state
            .kill_after_log_write
            .store(armed, Ordering::Release);
    }

    /// Whether the process was killed.
    pub fn is_dead(&self) -> bool {
        self.state.dead.load(Ordering::Acquire)
    }
}

impl Storage for Process {
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        self.state.alive()?;
        self.fs.create_dir_all(path)
    }

    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Box<dyn StorageFile>> {
        self.state.alive()?;
        let inner = self.fs.open(path, mode)?;
        Ok(Box::new(ProcFile {
            inner,
            state: Arc::clone(&self.state),
            is_log: path.file_name().is_some_and(|n| n == "wal"),
        }))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.state.alive()?;
        self.fs.rename(from, to)
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        self.state.alive()?;
        self.fs.remove_file(path)
    }

    fn list_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        self.state.alive()?;
        self.fs.list_dir(path)
    }

    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        self.state.alive()?;
        self.fs.sync_dir(path)
    }

    fn exists(&self, path: &Path) -> io::Result<bool> {
        self.state.alive()?;
        self.fs.exists(path)
    }

    fn open_region(&self, path: &Path, deadline: Option<Instant>) -> io::Result<OpenedRegion> {
        self.state.alive()?;
        let opened = self.fs.open_region(path, deadline)?;
        Ok(OpenedRegion {
            region: Box::new(ProcRegion {
                inner: opened.region,
                scratch: std::array::from_fn(|_| AtomicU64::new(0)),
                scratch_wake: AtomicU32::new(0),
                state: Arc::clone(&self.state),
            }),
            fresh: opened.fresh,
        })
    }

    fn create_shared(&self, path: &Path, capacity: usize) -> io::Result<Arc<dyn SharedFile>> {
        self.state.alive()?;
        self.fs.create_shared(path, capacity)
    }

    fn open_shared(&self, path: &Path, capacity: usize) -> io::Result<Arc<dyn SharedFile>> {
        self.state.alive()?;
        self.fs.open_shared(path, capacity)
    }

    fn open_lock(&self, path: &Path) -> io::Result<Box<dyn StorageLock>> {
        self.state.alive()?;
        let slot: LockSlot = Arc::new(Mutex::new(Some(self.fs.open_lock(path)?)));
        let mut locks = self.state.locks.lock();
        locks.retain(|s| s.lock().is_some());
        locks.push(Arc::clone(&slot));
        Ok(Box::new(ProcLock {
            slot,
            state: Arc::clone(&self.state),
        }))
    }
}

#[derive(Debug)]
struct ProcFile {
    inner: Box<dyn StorageFile>,
    state: Arc<State>,
    is_log: bool,
}

impl StorageFile for ProcFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        self.state.alive()?;
        self.inner.read_at(buf, offset)
    }

    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.state.alive()?;
        let written = self.inner.write_all_at(buf, offset);
        let armed = self.is_log && written.is_ok();
        if armed
            && self
                .state
                .kill_after_log_write
                .swap(false, Ordering::AcqRel)
        {
            self.state.kill();
        }
        written
    }

    fn len(&self) -> io::Result<u64> {
        self.state.alive()?;
        self.inner.len()
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.state.alive()?;
        self.inner.set_len(len)
    }

    fn sync_data(&self) -> io::Result<()> {
        self.state.alive()?;
        self.inner.sync_data()
    }

    fn sync_all(&self) -> io::Result<()> {
        self.state.alive()?;
        self.inner.sync_all()
    }

    fn map(&self) -> io::Result<Arc<dyn Mapping>> {
        self.state.alive()?;
        self.inner.map()
    }
}

#[derive(Debug)]
struct ProcLock {
    slot: LockSlot,
    state: Arc<State>,
}

impl ProcLock {
    fn with<T>(&self, f: impl FnOnce(&dyn StorageLock) -> io::Result<T>) -> io::Result<T> {
        self.state.alive()?;
        match &*self.slot.lock() {
            Some(lock) => f(&**lock),
            None => Err(io::Error::other("the simulated process was killed")),
        }
    }
}

impl StorageLock for ProcLock {
    fn try_lock(&self) -> io::Result<bool> {
        self.with(|l| l.try_lock())
    }

    fn lock(&self) -> io::Result<()> {
        self.with(|l| l.lock())
    }

    fn unlock(&self) -> io::Result<()> {
        if self.state.dead.load(Ordering::Acquire) {
            return Ok(()); // released at the kill
        }
        self.with(|l| l.unlock())
    }
}

impl Drop for ProcLock {
    fn drop(&mut self) {
        // Closing the descriptor releases the lock (the kill list keeps only the slot).
        drop(self.slot.lock().take());
    }
}

#[derive(Debug)]
struct ProcRegion {
    inner: Box<dyn SharedRegion>,
    scratch: [AtomicU64; REGION_WORDS],
    scratch_wake: AtomicU32,
    state: Arc<State>,
}

impl ProcRegion {
    fn dead(&self) -> bool {
        self.state.dead.load(Ordering::Acquire)
    }
}

impl SharedRegion for ProcRegion {
    fn words(&self) -> &[AtomicU64] {
        if self.dead() {
            &self.scratch
        } else {
            self.inner.words()
        }
    }

    fn wake_word(&self) -> &AtomicU32 {
        if self.dead() {
            &self.scratch_wake
        } else {
            self.inner.wake_word()
        }
    }

    fn wait(&self, seen: u32, timeout: Duration) {
        if !self.dead() {
            self.inner.wait(seen, timeout);
        }
    }

    fn wake_all(&self) {
        if !self.dead() {
            self.inner.wake_all();
        }
    }

    fn share(&self) -> io::Result<()> {
        self.state.alive()?;
        self.inner.share()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_killed_process_releases_its_locks_and_issues_nothing() {
        let fs = SimFs::new();
        fs.create_dir_all(Path::new("/db")).expect("dir");
        let (a, b) = (fs.process(), fs.process());
        let lock = Path::new("/db/LOCK");
        let held = a.open_lock(lock).expect("lock");
        assert!(held.try_lock().expect("try"));
        let waiting = b.open_lock(lock).expect("lock");
        assert!(!waiting.try_lock().expect("try"));
        let file = a
            .open(Path::new("/db/wal"), OpenMode::Create)
            .expect("open");
        file.write_all_at(b"abc", 0).expect("write");
        let ops = fs.op_count();
        a.kill();
        assert!(
            waiting.try_lock().expect("try"),
            "the dead process's lock is released"
        );
        assert!(file.write_all_at(b"x", 0).is_err());
        assert!(file.sync_data().is_err());
        assert!(a.open(Path::new("/db/other"), OpenMode::Create).is_err());
        drop(held);
        assert!(!fs
            .process()
            .open_lock(lock)
            .expect("lock")
            .try_lock()
            .expect("try"));
        assert_eq!(fs.op_count(), ops, "a dead process issues nothing");
        assert_eq!(
            fs.read_live(Path::new("/db/wal")).as_deref(),
            Some(&b"abc"[..])
        );
    }

    #[test]
    fn a_dropped_lock_of_a_live_process_is_released() {
        let fs = SimFs::new();
        fs.create_dir_all(Path::new("/db")).expect("dir");
        let a = fs.process();
        let lock = Path::new("/db/LOCK");
        let held = a.open_lock(lock).expect("lock");
        assert!(held.try_lock().expect("try"));
        drop(held);
        assert!(fs
            .process()
            .open_lock(lock)
            .expect("lock")
            .try_lock()
            .expect("try"));
    }

    #[test]
    fn an_armed_process_dies_as_its_log_write_returns() {
        let fs = SimFs::new();
        fs.create_dir_all(Path::new("/db")).expect("dir");
        let a = fs.process();
        let lock = a.open_lock(Path::new("/db/LOCK")).expect("lock");
        assert!(lock.try_lock().expect("try"));
        let other = a
            .open(Path::new("/db/snap"), OpenMode::Create)
            .expect("open");
        let wal = a
            .open(Path::new("/db/wal"), OpenMode::Create)
            .expect("open");
        a.kill_after_log_write(true);
        other
            .write_all_at(b"s", 0)
            .expect("another file's write does not kill");
        assert!(!a.is_dead());
        wal.write_all_at(b"txn", 0)
            .expect("the log write itself lands");
        assert!(a.is_dead());
        assert!(wal.sync_data().is_err(), "nothing after the log write runs");
        assert!(fs
            .process()
            .open_lock(Path::new("/db/LOCK"))
            .expect("lock")
            .try_lock()
            .expect("try"));
        assert_eq!(
            fs.read_live(Path::new("/db/wal")).as_deref(),
            Some(&b"txn"[..])
        );
    }
}
