//! An in-memory file system with crash simulation and fault injection, for tests.
//!
//! It keeps what each file and directory holds *live* apart from what is *durable*:
//! `sync_data` makes a file's written ranges durable, `sync_dir` makes a directory's names
//! durable. [`MemoryStorage::crash`] throws away everything that is not durable (fault F1 of
//! the fault model) and invalidates every open handle, as a power cut would. Fault injection
//! fails the N-th mutating call; a failed `sync_data` drops the dirty ranges the way Linux
//! does (marks them clean without writing them), so a retried sync reports success for bytes
//! that will be lost (fault F11).
//!
//! The richer model (torn and garbage sectors, random subsets, reordering) lives in the
//! `walstore-crashtest` crate.

use super::{Mapping, OpenMode, Storage, StorageFile, StorageLock};
use parking_lot::{Condvar, Mutex};
use std::collections::{BTreeMap, HashMap};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Kinds of storage calls, for fault injection filters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StorageOp {
    /// Opening a file with a mode that may create it.
    Create,
    /// A write.
    Write,
    /// A `set_len`.
    SetLen,
    /// A `sync_data` or `sync_all`.
    Sync,
    /// A `sync_dir`.
    SyncDir,
    /// A rename.
    Rename,
    /// A removal.
    Remove,
}

#[derive(Debug, Clone)]
struct FaultPlan {
    /// Mutating calls still to let through before failing.
    remaining: u64,
    only: Option<StorageOp>,
    raw_os_error: i32,
    persistent: bool,
    fired: bool,
}

#[derive(Debug, Default)]
struct Inode {
    data: Vec<u8>,
    durable: Vec<u8>,
    /// Byte ranges written since the last successful sync.
    dirty: Vec<(u64, u64)>,
    /// Whether a length change is pending.
    len_dirty: bool,
}

#[derive(Debug, Default)]
struct MemFs {
    inodes: HashMap<u64, Inode>,
    names: BTreeMap<PathBuf, u64>,
    durable_names: BTreeMap<PathBuf, u64>,
    dirs: BTreeMap<PathBuf, ()>,
    locks: HashMap<PathBuf, u64>,
    next_id: u64,
    epoch: u64,
    fault: Option<FaultPlan>,
}

/// An in-memory [`Storage`]. Clones share the same file system.
#[derive(Debug, Clone, Default)]
pub struct MemoryStorage {
    fs: Arc<Mutex<MemFs>>,
    lock_released: Arc<Condvar>,
    regions: super::MemRegions,
    shared: super::MemSharedFiles,
}

impl MemoryStorage {
    /// An empty file system.
    pub fn new() -> Self {
        Self::default()
    }

    /// Simulates a power cut: every byte and directory entry not made durable is lost, all
    /// locks are released and every open handle fails from now on.
    pub fn crash(&self) {
        let mut fs = self.fs.lock();
        fs.epoch += 1;
        fs.names = fs.durable_names.clone();
        let live: std::collections::HashSet<u64> = fs.names.values().copied().collect();
        fs.inodes.retain(|id, _| live.contains(id));
        for inode in fs.inodes.values_mut() {
            inode.data = inode.durable.clone();
            inode.dirty.clear();
            inode.len_dirty = false;
        }
        fs.locks.clear();
        fs.fault = None;
        drop(fs);
        // Every process died: the next open finds no shared region (the old handles keep
        // theirs, and fail at their next file access).
        self.regions.forget_all();
        self.shared.forget_all();
        self.lock_released.notify_all();
    }

    /// Fails the mutating call that comes after `calls_to_allow` more mutating calls (of kind
    /// `only`, if given) with the OS error `raw_os_error` (5 = EIO, 28 = ENOSPC). A persistent
    /// fault keeps failing every later matching call until [`MemoryStorage::clear_fault`].
    pub fn fail_after(
        &self,
        calls_to_allow: u64,
        only: Option<StorageOp>,
        raw_os_error: i32,
        persistent: bool,
    ) {
        self.fs.lock().fault = Some(FaultPlan {
            remaining: calls_to_allow,
            only,
            raw_os_error,
            persistent,
            fired: false,
        });
    }

    /// Removes any armed fault; returns whether it had fired.
    pub fn clear_fault(&self) -> bool {
        self.fs.lock().fault.take().is_some_and(|f| f.fired)
    }

    /// The live contents of a file, if it exists.
    pub fn read_file(&self, path: &Path) -> Option<Vec<u8>> {
        let fs = self.fs.lock();
        let id = fs.names.get(path)?;
        fs.inodes.get(id).map(|i| i.data.clone())
    }

    /// Replaces the contents of a file, live and durable at once (to simulate media damage).
    pub fn write_file_durable(&self, path: &Path, bytes: &[u8]) {
        let mut fs = self.fs.lock();
        let id = match fs.names.get(path) {
            Some(id) => *id,
            None => {
                fs.next_id += 1;
                let id = fs.next_id;
                fs.names.insert(path.to_path_buf(), id);
                fs.durable_names.insert(path.to_path_buf(), id);
                id
            }
        };
        let inode = fs.inodes.entry(id).or_default();
        inode.data = bytes.to_vec();
        inode.durable = bytes.to_vec();
        inode.dirty.clear();
    }
}

impl MemFs {
    fn check(&mut self, op: StorageOp) -> io::Result<()> {
        let Some(fault) = self.fault.as_mut() else {
            return Ok(());
        };
        if fault.only.is_some_and(|only| only != op) {
            return Ok(());
        }
        if fault.fired {
            return if fault.persistent {
                Err(io::Error::from_raw_os_error(fault.raw_os_error))
            } else {
                Ok(())
            };
        }
        if fault.remaining > 0 {
            fault.remaining -= 1;
            return Ok(());
        }
        fault.fired = true;
        Err(io::Error::from_raw_os_error(fault.raw_os_error))
    }

    fn inode(&mut self, id: u64, epoch: u64) -> io::Result<&mut Inode> {
        if epoch != self.epoch {
            return Err(io::Error::other("handle invalidated by a simulated crash"));
        }
        self.inodes
            .get_mut(&id)
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "inode gone"))
    }

    fn parent_exists(&self, path: &Path) -> bool {
        match path.parent() {
            None => true,
            Some(p) if p.as_os_str().is_empty() => true,
            Some(p) => self.dirs.contains_key(p),
        }
    }
}

fn not_found(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("{} not found", path.display()),
    )
}

impl Storage for MemoryStorage {
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        let mut fs = self.fs.lock();
        for ancestor in path.ancestors() {
            if !ancestor.as_os_str().is_empty() {
                fs.dirs.insert(ancestor.to_path_buf(), ());
            }
        }
        Ok(())
    }

    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Box<dyn StorageFile>> {
        let mut fs = self.fs.lock();
        let existing = fs.names.get(path).copied();
        let id = match (existing, mode) {
            (Some(id), OpenMode::CreateTruncate) => {
                fs.check(StorageOp::SetLen)?;
                let inode = fs.inodes.entry(id).or_default();
                inode.data.clear();
                inode.len_dirty = true;
                id
            }
            (Some(id), _) => id,
            (None, OpenMode::ReadOnly | OpenMode::ReadWrite) => return Err(not_found(path)),
            (None, OpenMode::Create | OpenMode::CreateTruncate) => {
                if !fs.parent_exists(path) {
                    return Err(not_found(path));
                }
                fs.check(StorageOp::Create)?;
                fs.next_id += 1;
                let id = fs.next_id;
                fs.inodes.insert(id, Inode::default());
                fs.names.insert(path.to_path_buf(), id);
                id
            }
        };
        Ok(Box::new(MemFile {
            fs: Arc::clone(&self.fs),
            id,
            epoch: fs.epoch,
            writable: mode.writable(),
        }))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut fs = self.fs.lock();
        let id = fs.names.get(from).copied().ok_or_else(|| not_found(from))?;
        fs.check(StorageOp::Rename)?;
        fs.names.remove(from);
        fs.names.insert(to.to_path_buf(), id);
        Ok(())
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        let mut fs = self.fs.lock();
        if !fs.names.contains_key(path) {
            return Err(not_found(path));
        }
        fs.check(StorageOp::Remove)?;
        fs.names.remove(path);
        Ok(())
    }

    fn list_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        let fs = self.fs.lock();
        if !fs.dirs.contains_key(path) {
            return Err(not_found(path));
        }
        let mut out: Vec<String> = fs
            .names
            .keys()
            .chain(fs.dirs.keys())
            .filter(|p| p.parent() == Some(path))
            .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .collect();
        out.dedup();
        Ok(out)
    }

    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        let mut fs = self.fs.lock();
        fs.check(StorageOp::SyncDir)?;
        let in_dir = |p: &PathBuf| p.parent() == Some(path);
        let live: Vec<(PathBuf, u64)> = fs
            .names
            .iter()
            .filter(|(p, _)| in_dir(p))
            .map(|(p, id)| (p.clone(), *id))
            .collect();
        fs.durable_names.retain(|p, _| !in_dir(p));
        fs.durable_names.extend(live);
        Ok(())
    }

    fn exists(&self, path: &Path) -> io::Result<bool> {
        let fs = self.fs.lock();
        Ok(fs.names.contains_key(path) || fs.dirs.contains_key(path))
    }

    fn open_region(
        &self,
        path: &Path,
        deadline: Option<std::time::Instant>,
    ) -> io::Result<super::OpenedRegion> {
        // Shared memory is not a file: a crash does not touch it, and it is gone when the
        // last handle closes (as when every process with the store open has exited).
        self.regions.open(path, deadline)
    }

    fn create_shared(
        &self,
        path: &Path,
        capacity: usize,
    ) -> io::Result<Arc<dyn super::SharedFile>> {
        self.shared.create(path, capacity)
    }

    fn open_shared(&self, path: &Path, _capacity: usize) -> io::Result<Arc<dyn super::SharedFile>> {
        self.shared.open(path)
    }

    fn open_lock(&self, path: &Path) -> io::Result<Box<dyn StorageLock>> {
        let mut fs = self.fs.lock();
        fs.next_id += 1;
        Ok(Box::new(MemLock {
            storage: self.clone(),
            path: path.to_path_buf(),
            holder: fs.next_id,
        }))
    }
}

#[derive(Debug)]
struct MemFile {
    fs: Arc<Mutex<MemFs>>,
    id: u64,
    epoch: u64,
    writable: bool,
}

impl MemFile {
    fn check_writable(&self) -> io::Result<()> {
        if self.writable {
            Ok(())
        } else {
            Err(io::Error::from_raw_os_error(9)) // EBADF, like a read-only descriptor
        }
    }
}

impl StorageFile for MemFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let mut fs = self.fs.lock();
        let inode = fs.inode(self.id, self.epoch)?;
        let len = inode.data.len() as u64;
        if offset >= len {
            return Ok(0);
        }
        let start = offset as usize;
        let n = buf.len().min(inode.data.len() - start);
        buf[..n].copy_from_slice(&inode.data[start..start + n]);
        Ok(n)
    }

    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.check_writable()?;
        let mut fs = self.fs.lock();
        fs.inode(self.id, self.epoch)?;
        fs.check(StorageOp::Write)?;
        let inode = fs.inode(self.id, self.epoch)?;
        let start = offset as usize;
        let end = start + buf.len();
        if inode.data.len() < end {
            inode.data.resize(end, 0);
            inode.len_dirty = true;
        }
        inode.data[start..end].copy_from_slice(buf);
        inode.dirty.push((offset, end as u64));
        Ok(())
    }

    fn len(&self) -> io::Result<u64> {
        let mut fs = self.fs.lock();
        Ok(fs.inode(self.id, self.epoch)?.data.len() as u64)
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.check_writable()?;
        let mut fs = self.fs.lock();
        fs.inode(self.id, self.epoch)?;
        fs.check(StorageOp::SetLen)?;
        let inode = fs.inode(self.id, self.epoch)?;
        inode.data.resize(len as usize, 0);
        inode.len_dirty = true;
        Ok(())
    }

    fn sync_data(&self) -> io::Result<()> {
        let mut fs = self.fs.lock();
        fs.inode(self.id, self.epoch)?;
        let result = fs.check(StorageOp::Sync);
        let inode = fs.inode(self.id, self.epoch)?;
        if let Err(e) = result {
            // Like Linux after a writeback error: the dirty pages are marked clean without
            // having been written, so a later sync has nothing to write for them.
            inode.dirty.clear();
            inode.len_dirty = false;
            return Err(e);
        }
        let len = inode.data.len();
        if inode.len_dirty || inode.durable.len() != len {
            let keep = inode.durable.len().min(len);
            inode.durable.truncate(keep);
            inode.durable.resize(len, 0);
            inode.len_dirty = false;
        }
        for (start, end) in std::mem::take(&mut inode.dirty) {
            let start = (start as usize).min(len);
            let end = (end as usize).min(len);
            inode.durable[start..end].copy_from_slice(&inode.data[start..end]);
        }
        Ok(())
    }

    fn sync_all(&self) -> io::Result<()> {
        self.sync_data()
    }

    fn map(&self) -> io::Result<Arc<dyn Mapping>> {
        let mut fs = self.fs.lock();
        Ok(Arc::new(fs.inode(self.id, self.epoch)?.data.clone()))
    }
}

#[derive(Debug)]
struct MemLock {
    storage: MemoryStorage,
    path: PathBuf,
    holder: u64,
}

impl StorageLock for MemLock {
    fn try_lock(&self) -> io::Result<bool> {
        let mut fs = self.storage.fs.lock();
        match fs.locks.get(&self.path) {
            Some(h) if *h != self.holder => Ok(false),
            _ => {
                fs.locks.insert(self.path.clone(), self.holder);
                Ok(true)
            }
        }
    }

    fn lock(&self) -> io::Result<()> {
        let mut fs = self.storage.fs.lock();
        loop {
            match fs.locks.get(&self.path) {
                Some(h) if *h != self.holder => self.storage.lock_released.wait(&mut fs),
                _ => {
                    fs.locks.insert(self.path.clone(), self.holder);
                    return Ok(());
                }
            }
        }
    }

    fn unlock(&self) -> io::Result<()> {
        let mut fs = self.storage.fs.lock();
        if fs.locks.get(&self.path) == Some(&self.holder) {
            fs.locks.remove(&self.path);
        }
        drop(fs);
        self.storage.lock_released.notify_all();
        Ok(())
    }
}

impl Drop for MemLock {
    fn drop(&mut self) {
        let _ = self.unlock();
    }
}
