//! Shared test scaffolding: every behaviour test runs on the real file system and on the
//! in-memory backend.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::Arc;
use walstore::storage::{FsStorage, MemoryStorage, Storage};
use walstore::{Options, Store};

/// A place to open a store: a backend and a directory on it.
pub struct Place {
    pub name: &'static str,
    pub storage: Arc<dyn Storage>,
    pub memory: Option<MemoryStorage>,
    pub dir: PathBuf,
    _tmp: Option<tempfile::TempDir>,
}

impl Place {
    pub fn options(&self) -> Options {
        Options::new()
            .storage(Arc::clone(&self.storage))
            .auto_checkpoint(false)
    }

    pub fn open(&self) -> Store {
        self.options()
            .open(&self.dir)
            .unwrap_or_else(|e| panic!("[{}] open failed: {e}", self.name))
    }

    pub fn file(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    pub fn read(&self, name: &str) -> Vec<u8> {
        match &self.memory {
            Some(m) => m.read_file(&self.file(name)).expect("file exists"),
            None => std::fs::read(self.file(name)).expect("file exists"),
        }
    }

    /// Overwrites a file's bytes as media damage would (durably, without the engine).
    pub fn write(&self, name: &str, bytes: &[u8]) {
        match &self.memory {
            Some(m) => m.write_file_durable(&self.file(name), bytes),
            None => std::fs::write(self.file(name), bytes).expect("write"),
        }
    }
}

/// The real file system (in a temporary directory) and the in-memory backend.
pub fn places() -> Vec<Place> {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("store");
    let memory = MemoryStorage::new();
    vec![
        Place {
            name: "fs",
            storage: Arc::new(FsStorage),
            memory: None,
            dir,
            _tmp: Some(tmp),
        },
        Place {
            name: "memory",
            storage: Arc::new(memory.clone()),
            memory: Some(memory),
            dir: PathBuf::from("/store"),
            _tmp: None,
        },
    ]
}

/// Every key/value pair of the store, in order.
pub fn dump(store: &Store) -> Vec<(Vec<u8>, Vec<u8>)> {
    let r = store.begin_read().expect("begin_read");
    r.range::<&[u8], _>(..)
        .expect("range")
        .map(|item| {
            let (k, v) = item.expect("item");
            (k, v.to_vec())
        })
        .collect()
}

pub fn kv(pairs: &[(&str, &str)]) -> Vec<(Vec<u8>, Vec<u8>)> {
    pairs
        .iter()
        .map(|(k, v)| (k.as_bytes().to_vec(), v.as_bytes().to_vec()))
        .collect()
}

/// Wraps a storage and fails the N-th mutating call (and, if persistent, every later one),
/// whatever the backend, as a full disk or a failing device would.
#[derive(Debug)]
pub struct Failing {
    inner: Arc<dyn Storage>,
    state: Arc<std::sync::Mutex<FailState>>,
}

#[derive(Debug, Default)]
struct FailState {
    countdown: Option<u64>,
    persistent: bool,
    fired: bool,
    calls: u64,
}

impl Failing {
    pub fn new(inner: Arc<dyn Storage>) -> Self {
        Failing {
            inner,
            state: Default::default(),
        }
    }

    pub fn handle(&self) -> FailHandle {
        FailHandle(Arc::clone(&self.state))
    }

    fn check(state: &std::sync::Mutex<FailState>) -> std::io::Result<()> {
        let mut s = state.lock().expect("fail state");
        s.calls += 1;
        if s.fired && s.persistent {
            return Err(std::io::Error::from_raw_os_error(5));
        }
        match s.countdown {
            Some(0) if !s.fired => {
                s.fired = true;
                Err(std::io::Error::from_raw_os_error(5))
            }
            Some(n) if n > 0 => {
                s.countdown = Some(n - 1);
                Ok(())
            }
            _ => Ok(()),
        }
    }
}

/// Arms and inspects a [`Failing`] storage.
#[derive(Debug, Clone)]
pub struct FailHandle(Arc<std::sync::Mutex<FailState>>);

impl FailHandle {
    /// Lets `n` more mutating calls through, then fails.
    pub fn fail_after(&self, n: u64, persistent: bool) {
        let mut s = self.0.lock().expect("fail state");
        *s = FailState {
            countdown: Some(n),
            persistent,
            fired: false,
            calls: s.calls,
        };
    }
    pub fn disarm(&self) -> bool {
        let mut s = self.0.lock().expect("fail state");
        let fired = s.fired;
        *s = FailState {
            calls: s.calls,
            ..Default::default()
        };
        fired
    }
    pub fn calls(&self) -> u64 {
        self.0.lock().expect("fail state").calls
    }
}

use walstore::storage::{Mapping, OpenMode, StorageFile, StorageLock};

impl Storage for Failing {
    fn create_dir_all(&self, path: &std::path::Path) -> std::io::Result<()> {
        self.inner.create_dir_all(path)
    }
    fn open(
        &self,
        path: &std::path::Path,
        mode: OpenMode,
    ) -> std::io::Result<Box<dyn StorageFile>> {
        if mode.writable() {
            Failing::check(&self.state)?;
        }
        let file = self.inner.open(path, mode)?;
        Ok(Box::new(FailingFile {
            inner: file,
            state: Arc::clone(&self.state),
        }))
    }
    fn rename(&self, from: &std::path::Path, to: &std::path::Path) -> std::io::Result<()> {
        Failing::check(&self.state)?;
        self.inner.rename(from, to)
    }
    fn remove_file(&self, path: &std::path::Path) -> std::io::Result<()> {
        Failing::check(&self.state)?;
        self.inner.remove_file(path)
    }
    fn list_dir(&self, path: &std::path::Path) -> std::io::Result<Vec<String>> {
        self.inner.list_dir(path)
    }
    fn sync_dir(&self, path: &std::path::Path) -> std::io::Result<()> {
        Failing::check(&self.state)?;
        self.inner.sync_dir(path)
    }
    fn exists(&self, path: &std::path::Path) -> std::io::Result<bool> {
        self.inner.exists(path)
    }
    fn open_lock(&self, path: &std::path::Path) -> std::io::Result<Box<dyn StorageLock>> {
        self.inner.open_lock(path)
    }
    fn open_region(
        &self,
        path: &std::path::Path,
        deadline: Option<std::time::Instant>,
    ) -> std::io::Result<walstore::storage::OpenedRegion> {
        self.inner.open_region(path, deadline)
    }
    fn create_shared(
        &self,
        path: &std::path::Path,
        capacity: usize,
    ) -> std::io::Result<Arc<dyn walstore::storage::SharedFile>> {
        self.inner.create_shared(path, capacity)
    }
    fn open_shared(
        &self,
        path: &std::path::Path,
        capacity: usize,
    ) -> std::io::Result<Arc<dyn walstore::storage::SharedFile>> {
        self.inner.open_shared(path, capacity)
    }
}

#[derive(Debug)]
struct FailingFile {
    inner: Box<dyn StorageFile>,
    state: Arc<std::sync::Mutex<FailState>>,
}

impl StorageFile for FailingFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
        self.inner.read_at(buf, offset)
    }
    fn write_all_at(&self, buf: &[u8], offset: u64) -> std::io::Result<()> {
        Failing::check(&self.state)?;
        self.inner.write_all_at(buf, offset)
    }
    fn len(&self) -> std::io::Result<u64> {
        self.inner.len()
    }
    fn set_len(&self, len: u64) -> std::io::Result<()> {
        Failing::check(&self.state)?;
        self.inner.set_len(len)
    }
    fn sync_data(&self) -> std::io::Result<()> {
        Failing::check(&self.state)?;
        self.inner.sync_data()
    }
    fn sync_all(&self) -> std::io::Result<()> {
        Failing::check(&self.state)?;
        self.inner.sync_all()
    }
    fn map(&self) -> std::io::Result<Arc<dyn Mapping>> {
        self.inner.map()
    }
}

/// What an [`Observed`] storage reports, before each call goes through.
pub trait Observer: Send + Sync + std::fmt::Debug + 'static {
    /// Bytes read from a file (by `read_at`, or a whole file by `map`).
    fn read(&self, _bytes: usize) {}
    /// Bytes read from the file at `path` (then [`Observer::read`] by default).
    fn read_file(&self, _path: &std::path::Path, bytes: usize) {
        self.read(bytes)
    }
    /// A write to the file at `path`.
    fn write(&self, _path: &std::path::Path) {}
    /// A write of `bytes` bytes to the file at `path` (then [`Observer::write`] by default).
    fn write_bytes(&self, path: &std::path::Path, _bytes: usize) {
        self.write(path)
    }
    /// A file's `sync_data` (fdatasync).
    fn sync_data(&self) {}
    /// A file's `sync_all` (fsync).
    fn sync_all(&self) {}
    /// A directory fsync.
    fn sync_dir(&self) {}
}

/// A storage that reports its calls to an [`Observer`] (counting, slowing down), then passes
/// them to the storage it wraps unchanged.
#[derive(Debug, Clone)]
pub struct Observed {
    pub inner: Arc<dyn Storage>,
    pub observer: Arc<dyn Observer>,
}

#[derive(Debug)]
struct ObservedFile {
    inner: Box<dyn StorageFile>,
    path: PathBuf,
    observer: Arc<dyn Observer>,
}

impl Storage for Observed {
    fn create_dir_all(&self, path: &std::path::Path) -> std::io::Result<()> {
        self.inner.create_dir_all(path)
    }
    fn open(
        &self,
        path: &std::path::Path,
        mode: OpenMode,
    ) -> std::io::Result<Box<dyn StorageFile>> {
        Ok(Box::new(ObservedFile {
            inner: self.inner.open(path, mode)?,
            path: path.to_path_buf(),
            observer: Arc::clone(&self.observer),
        }))
    }
    fn rename(&self, from: &std::path::Path, to: &std::path::Path) -> std::io::Result<()> {
        self.inner.rename(from, to)
    }
    fn remove_file(&self, path: &std::path::Path) -> std::io::Result<()> {
        self.inner.remove_file(path)
    }
    fn list_dir(&self, path: &std::path::Path) -> std::io::Result<Vec<String>> {
        self.inner.list_dir(path)
    }
    fn sync_dir(&self, path: &std::path::Path) -> std::io::Result<()> {
        self.observer.sync_dir();
        self.inner.sync_dir(path)
    }
    fn exists(&self, path: &std::path::Path) -> std::io::Result<bool> {
        self.inner.exists(path)
    }
    fn open_lock(&self, path: &std::path::Path) -> std::io::Result<Box<dyn StorageLock>> {
        self.inner.open_lock(path)
    }
    fn open_region(
        &self,
        path: &std::path::Path,
        deadline: Option<std::time::Instant>,
    ) -> std::io::Result<walstore::storage::OpenedRegion> {
        self.inner.open_region(path, deadline)
    }
    fn create_shared(
        &self,
        path: &std::path::Path,
        capacity: usize,
    ) -> std::io::Result<Arc<dyn walstore::storage::SharedFile>> {
        self.inner.create_shared(path, capacity)
    }
    fn open_shared(
        &self,
        path: &std::path::Path,
        capacity: usize,
    ) -> std::io::Result<Arc<dyn walstore::storage::SharedFile>> {
        self.inner.open_shared(path, capacity)
    }
}

impl StorageFile for ObservedFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
        let n = self.inner.read_at(buf, offset)?;
        self.observer.read_file(&self.path, n);
        Ok(n)
    }
    fn write_all_at(&self, buf: &[u8], offset: u64) -> std::io::Result<()> {
        self.observer.write_bytes(&self.path, buf.len());
        self.inner.write_all_at(buf, offset)
    }
    fn len(&self) -> std::io::Result<u64> {
        self.inner.len()
    }
    fn set_len(&self, len: u64) -> std::io::Result<()> {
        self.inner.set_len(len)
    }
    fn sync_data(&self) -> std::io::Result<()> {
        self.observer.sync_data();
        self.inner.sync_data()
    }
    fn sync_all(&self) -> std::io::Result<()> {
        self.observer.sync_all();
        self.inner.sync_all()
    }
    fn map(&self) -> std::io::Result<Arc<dyn Mapping>> {
        let map = self.inner.map()?;
        // A map is read whole when the file is validated.
        self.observer.read_file(&self.path, map.bytes().len());
        Ok(map)
    }
}
