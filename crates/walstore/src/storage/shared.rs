//! Shared files: a file every handle of a store maps, in every process, and only the holder
//! of the writer lock writes through its map (the log index, FORMAT.md §9). The file system
//! maps a regular file of the store's directory (`fs.rs`); the in-memory backends keep one
//! [`MemShared`] per path in [`MemSharedFiles`], alive while a handle holds it (as a file's
//! pages are, for the processes that map it).
//!
//! Invariant: a shared file is created new (a new inode: whoever maps the old one keeps it,
//! unchanged) and only grows; nothing shortens it while it is mapped, so every byte below
//! [`SharedFile::len`] stays readable through the map.
//!
//! This file holds `unsafe` (with `fs.rs` and `fork.rs`): [`SharedBytes`], the only access
//! to a shared file's bytes, bounds-checked.
#![allow(unsafe_code)]

use parking_lot::Mutex;
use std::collections::HashMap;
use std::fmt::Debug;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};

/// A file mapped shared, for reading by every handle and writing by one at a time.
pub trait SharedFile: Send + Sync + Debug {
    /// The start of the map: [`SharedFile::capacity`] bytes of address space, of which the
    /// first [`SharedFile::len`] are backed by the file. The same for the file's whole life:
    /// [`SharedBytes`] keeps it, so that an access costs no call through the trait object.
    fn as_ptr(&self) -> *mut u8;
    /// Bytes of address space mapped.
    fn capacity(&self) -> usize;
    /// The file's length now (another handle may have grown it since this one mapped it).
    fn len(&self) -> io::Result<u64>;
    /// Whether the file is empty.
    fn is_empty(&self) -> io::Result<bool> {
        Ok(self.len()? == 0)
    }
    /// Makes the file at least `len` bytes long (at most the capacity) with its blocks
    /// allocated, so that a store through the map never meets a full disk (a full disk fails
    /// here, with an error, instead of as a signal at the store).
    fn grow(&self, len: u64) -> io::Result<()>;
    /// Copies the `buf.len()` bytes at `offset` into `buf` without mapping them into this
    /// process (a `pread` of the file): through the map, a read of a page this process has not
    /// touched maps the pages around it too (the kernel's fault-around, 64 KiB). Called
    /// through [`SharedBytes::read_into`], which keeps it inside the file.
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()>;
}

/// The largest in-memory shared file.
pub const MEM_SHARED_MAX: usize = 256 << 20;

/// The in-memory shared files of one simulated file system, by path.
#[derive(Debug, Default, Clone)]
pub struct MemSharedFiles {
    live: Arc<Mutex<HashMap<PathBuf, Weak<MemShared>>>>,
}

impl MemSharedFiles {
    /// Forgets every shared file (a simulated crash: every process is gone).
    pub fn forget_all(&self) {
        self.live.lock().clear();
    }

    /// Creates a new, zero-filled shared file at `path` (whoever holds the old one keeps it),
    /// of at most [`MEM_SHARED_MAX`] bytes (anonymous memory is reserved, not only address
    /// space: a larger request gets a smaller file, whose writer then seals it when full).
    pub fn create(&self, path: &Path, capacity: usize) -> io::Result<Arc<dyn SharedFile>> {
        let capacity = capacity.min(MEM_SHARED_MAX);
        let map = memmap2::MmapMut::map_anon(capacity.max(1))?;
        let file = Arc::new(MemShared {
            map,
            capacity,
            len: AtomicU64::new(0),
        });
        self.live
            .lock()
            .insert(path.to_path_buf(), Arc::downgrade(&file));
        Ok(file)
    }

    /// The shared file at `path`, if a handle still holds it; `NotFound` otherwise.
    pub fn open(&self, path: &Path) -> io::Result<Arc<dyn SharedFile>> {
        match self.live.lock().get(path).and_then(Weak::upgrade) {
            Some(file) => Ok(file),
            None => Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("no shared file {}", path.display()),
            )),
        }
    }
}

/// One in-memory shared file: anonymous memory of its capacity.
#[derive(Debug)]
pub struct MemShared {
    map: memmap2::MmapMut,
    capacity: usize,
    len: AtomicU64,
}

impl SharedFile for MemShared {
    fn as_ptr(&self) -> *mut u8 {
        self.map.as_ptr().cast_mut()
    }

    fn capacity(&self) -> usize {
        self.capacity
    }

    fn len(&self) -> io::Result<u64> {
        Ok(self.len.load(Ordering::Acquire))
    }

    fn grow(&self, len: u64) -> io::Result<()> {
        if len > self.capacity as u64 {
            return Err(io::Error::new(
                io::ErrorKind::StorageFull,
                "shared file is at its capacity",
            ));
        }
        self.len.fetch_max(len, Ordering::AcqRel);
        Ok(())
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        let start = usize::try_from(offset).map_err(io::Error::other)?;
        let end = start
            .checked_add(buf.len())
            .filter(|&end| end as u64 <= self.len.load(Ordering::Acquire))
            .ok_or_else(|| io::Error::from(io::ErrorKind::UnexpectedEof))?;
        // SAFETY: `[start, end)` lies inside the map (below the length, itself at most the
        // capacity); bytes another thread may change are read as `SharedBytes::bytes` reads
        // them (the caller copies what only it writes, or what was published).
        unsafe {
            std::ptr::copy_nonoverlapping(
                self.map.as_ptr().add(start),
                buf.as_mut_ptr(),
                end - start,
            );
        }
        Ok(())
    }
}

/// Checked access to a [`SharedFile`]'s bytes: every access is bounds-checked against a
/// length the file is known to have, so a damaged or foreign file can give wrong answers but
/// never an access past its end.
#[derive(Debug)]
pub struct SharedBytes {
    file: Arc<dyn SharedFile>,
    /// `file.as_ptr()`, fixed for the file's life (a point read makes a few dozen accesses,
    /// each of which called it through the trait object).
    base: *mut u8,
    /// A length the file is known to have (it only grows).
    known: AtomicU64,
}

// SAFETY: `base` points into the map `file` owns, which lives as long as `self` (the `Arc`)
// and is shared between threads by design: every access through it is an atomic or a read
// of bytes published with a release store (the methods' contracts), as with `file` itself.
unsafe impl Send for SharedBytes {}
// SAFETY: as for `Send`.
unsafe impl Sync for SharedBytes {}

impl SharedBytes {
    /// Access to `file`.
    pub fn new(file: Arc<dyn SharedFile>) -> SharedBytes {
        SharedBytes {
            base: file.as_ptr(),
            file,
            known: AtomicU64::new(0),
        }
    }

    /// The file.
    pub fn file(&self) -> &Arc<dyn SharedFile> {
        &self.file
    }

    /// Whether `[0, end)` lies inside the file (asking the file again when it may have grown).
    pub fn holds(&self, end: usize) -> bool {
        let end = end as u64;
        if end <= self.known.load(Ordering::Relaxed) {
            return true;
        }
        if end > self.file.capacity() as u64 {
            return false;
        }
        match self.file.len() {
            Ok(len) => {
                let len = len.min(self.file.capacity() as u64);
                self.known.fetch_max(len, Ordering::Relaxed);
                end <= len
            }
            Err(_) => false,
        }
    }

    /// The 64-bit word at `offset` (8-aligned, inside the file).
    pub fn u64_at(&self, offset: usize) -> Option<&AtomicU64> {
        let end = offset.checked_add(8)?;
        if !offset.is_multiple_of(8) || !self.holds(end) {
            return None;
        }
        // SAFETY: in bounds of the map and backed by the file (checked above), aligned, and
        // only ever accessed as an atomic by every handle of every process.
        Some(unsafe { &*self.base.add(offset).cast::<AtomicU64>() })
    }

    /// The 32-bit word at `offset` (4-aligned, inside the file).
    pub fn u32_at(&self, offset: usize) -> Option<&std::sync::atomic::AtomicU32> {
        let end = offset.checked_add(4)?;
        if !offset.is_multiple_of(4) || !self.holds(end) {
            return None;
        }
        // SAFETY: as in `u64_at`.
        Some(unsafe { &*self.base.add(offset).cast() })
    }

    /// `len` bytes at `offset` (inside the file). The caller reads only bytes that were
    /// published (written before an atomic release store it acquired) and are never written
    /// again.
    pub fn bytes(&self, offset: usize, len: usize) -> Option<&[u8]> {
        let end = offset.checked_add(len)?;
        if !self.holds(end) {
            return None;
        }
        // SAFETY: in bounds and backed by the file (checked above); published bytes are
        // immutable (the caller's contract), so no write races with this read.
        Some(unsafe { std::slice::from_raw_parts(self.base.add(offset), len) })
    }

    /// Copies the bytes at `offset` into `buf` without mapping them ([`SharedFile::read_at`]);
    /// false when they do not lie inside the file or cannot be read.
    pub fn read_into(&self, offset: usize, buf: &mut [u8]) -> bool {
        offset
            .checked_add(buf.len())
            .is_some_and(|end| self.holds(end))
            && self.file.read_at(offset as u64, buf).is_ok()
    }

    /// Writes `data` at `offset` (inside the file). Only the one writer of the file calls
    /// this, and only on bytes no reader looks at yet (not published).
    pub fn write(&self, offset: usize, data: &[u8]) -> bool {
        let Some(end) = offset.checked_add(data.len()) else {
            return false;
        };
        if !self.holds(end) {
            return false;
        }
        // SAFETY: in bounds and backed by the file (checked above); no reader reads these
        // bytes before the writer publishes them with a release store (the caller's
        // contract), and there is one writer.
        unsafe {
            std::ptr::copy_nonoverlapping(data.as_ptr(), self.base.add(offset), data.len());
        }
        true
    }
}
