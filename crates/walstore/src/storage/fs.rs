//! The real file system: `std::fs`, `pread`/`pwrite`, `fdatasync`, `flock` and `mmap`.
//! This module is the only place in the engine that calls `std::fs` and the only place with
//! `unsafe` (the memory maps of snapshot files and of the shared region).
#![allow(unsafe_code)]

use super::{
    retry_until, Mapping, NotARegularFile, OpenMode, OpenedRegion, SharedFile, SharedRegion,
    Storage, StorageFile, StorageLock, REGION_FILE_BYTES, REGION_WORDS,
};
use std::fs::{self, File, FileType, OpenOptions, TryLockError};
use std::io;
use std::os::unix::fs::{FileExt, FileTypeExt, OpenOptionsExt};
use std::path::Path;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The operating system's file system.
#[derive(Debug, Default, Clone, Copy)]
pub struct FsStorage;

impl FsStorage {
    /// The real file system.
    pub fn new() -> Self {
        FsStorage
    }
}

impl Storage for FsStorage {
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        fs::create_dir_all(path)
    }

    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Box<dyn StorageFile>> {
        let mut options = OpenOptions::new();
        options.read(true);
        match mode {
            OpenMode::ReadOnly => {}
            OpenMode::ReadWrite => {
                options.write(true);
            }
            OpenMode::Create | OpenMode::CreateTruncate => {
                options.write(true).create(true);
            }
        }
        let (file, mut opened_len) = open_regular(path, &mut options)?;
        if mode == OpenMode::CreateTruncate {
            // Only now that it is known to be a regular file of the store's own.
            file.set_len(0)?;
            opened_len = 0;
        }
        Ok(Box::new(FsFile { file, opened_len }))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        fs::rename(from, to)
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        fs::remove_file(path)
    }

    fn list_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in fs::read_dir(path)? {
            names.push(entry?.file_name().to_string_lossy().into_owned());
        }
        Ok(names)
    }

    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        File::open(path)?.sync_all()
    }

    fn exists(&self, path: &Path) -> io::Result<bool> {
        path.try_exists()
    }

    fn open_region(&self, path: &Path, deadline: Option<Instant>) -> io::Result<OpenedRegion> {
        FsStorage::open_region_file(path, deadline)
    }

    fn create_shared(&self, path: &Path, capacity: usize) -> io::Result<Arc<dyn SharedFile>> {
        match fs::remove_file(path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        let (file, _) = open_regular(
            path,
            OpenOptions::new().read(true).write(true).create_new(true),
        )?;
        FsShared::map(file, capacity)
    }

    fn open_shared(&self, path: &Path, capacity: usize) -> io::Result<Arc<dyn SharedFile>> {
        let (file, _) = open_regular(path, OpenOptions::new().read(true).write(true))?;
        FsShared::map(file, capacity)
    }

    fn open_lock(&self, path: &Path) -> io::Result<Box<dyn StorageLock>> {
        let (file, _) = open_regular(path, OpenOptions::new().read(true).write(true).create(true))?;
        Ok(Box::new(FsLock(file)))
    }
}

/// Opens a file of the store: never through a symbolic link (`O_NOFOLLOW`: a link planted in
/// the store directory must not let a store operation truncate or overwrite the file it points
/// to), and only a regular file (`O_NONBLOCK` keeps a FIFO from blocking the open; it changes
/// nothing for regular files). Anything else fails with [`NotARegularFile`]. Returns the file
/// and its length at the open (from the same `fstat` as its type).
fn open_regular(path: &Path, options: &mut OpenOptions) -> io::Result<(File, u64)> {
    options.custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK);
    let file = match options.open(path) {
        Ok(file) => file,
        // ELOOP (a link), ENXIO (a socket), EISDIR...: say what is there, if that is why.
        Err(e) => match fs::symlink_metadata(path) {
            Ok(meta) if !meta.file_type().is_file() => {
                return Err(NotARegularFile::error(describe(meta.file_type())))
            }
            _ => return Err(e),
        },
    };
    let meta = file.metadata()?;
    if !meta.file_type().is_file() {
        return Err(NotARegularFile::error(describe(meta.file_type())));
    }
    Ok((file, meta.len()))
}

/// What a file type is, for [`NotARegularFile`].
fn describe(kind: FileType) -> &'static str {
    if kind.is_symlink() {
        "a symbolic link"
    } else if kind.is_dir() {
        "a directory"
    } else if kind.is_fifo() {
        "a FIFO"
    } else if kind.is_socket() {
        "a socket"
    } else if kind.is_block_device() || kind.is_char_device() {
        "a device"
    } else {
        "not a regular file"
    }
}

#[derive(Debug)]
struct FsFile {
    file: File,
    /// The length when it was opened: what [`StorageFile::map`] maps (a file that is mapped
    /// is never modified again), without another `fstat` per run file of every open.
    opened_len: u64,
}

impl StorageFile for FsFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        loop {
            match self.file.read_at(buf, offset) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => return other,
            }
        }
    }

    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.file.write_all_at(buf, offset)
    }

    fn len(&self) -> io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.file.set_len(len)
    }

    fn sync_data(&self) -> io::Result<()> {
        self.file.sync_data()
    }

    fn sync_all(&self) -> io::Result<()> {
        self.file.sync_all()
    }

    fn map(&self) -> io::Result<Arc<dyn Mapping>> {
        // SAFETY: the engine maps only snapshot files. A snapshot file is written under a
        // temporary name, fsynced, renamed into place, and never opened for writing, truncated
        // or rewritten afterwards, by this process or any other walstore process: a checkpoint
        // always writes new files with fresh, never reused ids and only unlinks replaced ones.
        // Unlinking leaves existing mappings valid, so the mapped bytes cannot change or vanish
        // (no SIGBUS) while the `Mmap` is alive. A process outside walstore that truncates the
        // file breaks this contract, as documented in docs/GUARANTEES.md.
        let len = usize::try_from(self.opened_len)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "file too large to map"))?;
        let map = unsafe { memmap2::MmapOptions::new().len(len).map(&self.file)? };
        Ok(Arc::new(FsMapping(map)))
    }
}

#[derive(Debug)]
struct FsMapping(memmap2::Mmap);

impl Mapping for FsMapping {
    fn bytes(&self) -> &[u8] {
        &self.0
    }
}

#[derive(Debug)]
struct FsLock(File);

impl StorageLock for FsLock {
    fn try_lock(&self) -> io::Result<bool> {
        match self.0.try_lock() {
            Ok(()) => Ok(true),
            Err(TryLockError::WouldBlock) => Ok(false),
            Err(TryLockError::Error(e)) => Err(e),
        }
    }

    /// Blocks until the lock is held. A signal that interrupts the wait (EINTR) is not an
    /// error: the wait goes on, as CPython (PEP 475) and the C library's own waits do.
    fn lock(&self) -> io::Result<()> {
        loop {
            match self.0.lock() {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => return other,
            }
        }
    }

    fn unlock(&self) -> io::Result<()> {
        self.0.unlock()
    }
}

impl FsStorage {
    /// The file-system half of [`Storage::open_region`].
    fn open_region_file(path: &Path, deadline: Option<Instant>) -> io::Result<OpenedRegion> {
        let (file, _) = open_regular(path, OpenOptions::new().read(true).write(true).create(true))?;
        // An exclusive `flock` means no other handle has the file open (each holds a shared
        // one while it is open): its contents are left over from handles that have all
        // closed, and are never trusted.
        let fresh = match file.try_lock() {
            Ok(()) => true,
            Err(TryLockError::WouldBlock) => false,
            Err(TryLockError::Error(e)) => return Err(e),
        };
        if fresh {
            // Zeroed through the mapping below, not truncated: on ext4 a truncation to zero
            // frees the file's blocks through the journal, which cost a one-shot process
            // 0.1-1 ms (more than the rest of its open).
            if file.metadata()?.len() != REGION_FILE_BYTES {
                file.set_len(REGION_FILE_BYTES)?;
            }
        } else {
            retry_until(deadline, || match file.try_lock_shared() {
                Ok(()) => Ok(Some(())),
                Err(TryLockError::WouldBlock) => Ok(None),
                Err(TryLockError::Error(e)) => Err(e),
            })?;
            if file.metadata()?.len() < REGION_FILE_BYTES {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{} is shorter than a shared region", path.display()),
                ));
            }
        }
        // SAFETY: the mapping is `REGION_FILE_BYTES` long (the file is at least that long,
        // checked above, and no walstore handle resizes a file another handle has open:
        // only a fresh opener, holding the exclusive lock, does). Once shared, its bytes are
        // only ever accessed through atomics (`FsRegion::words`, `FsRegion::wake_word`), so
        // concurrent writes by other processes are not data races.
        let mut map = unsafe {
            memmap2::MmapOptions::new()
                .len(REGION_FILE_BYTES as usize)
                .map_mut(&file)?
        };
        if fresh {
            // No other handle has the file mapped until `share` (each maps it only after
            // taking its shared `flock`), so plain stores cannot race; `share`'s `flock`
            // orders them before any other handle's loads.
            map.fill(0);
        }
        Ok(OpenedRegion {
            region: Box::new(FsRegion { file, map, fresh }),
            fresh,
        })
    }
}

/// A shared file (`Storage::create_shared`), mapped with its capacity of address space.
struct FsShared {
    file: File,
    map: memmap2::MmapRaw,
    capacity: usize,
}

impl std::fmt::Debug for FsShared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FsShared")
            .field("capacity", &self.capacity)
            .finish()
    }
}

impl FsShared {
    fn map(file: File, capacity: usize) -> io::Result<Arc<dyn SharedFile>> {
        // The map may reach past the end of the file: the engine touches only bytes below a
        // length it read from the file (`SharedFile::len`) or made it have
        // (`SharedFile::grow`), and no walstore handle shortens a shared file (a new one is a
        // new inode). Bytes that other processes write concurrently are accessed through
        // atomics, or only after an atomic acquire load published them (FORMAT.md §9).
        let map = memmap2::MmapOptions::new()
            .len(capacity.max(1))
            .map_raw(&file)?;
        Ok(Arc::new(FsShared {
            file,
            map,
            capacity,
        }))
    }
}

impl SharedFile for FsShared {
    fn as_ptr(&self) -> *mut u8 {
        self.map.as_mut_ptr()
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        self.file.read_exact_at(buf, offset)
    }

    fn capacity(&self) -> usize {
        self.capacity
    }

    fn len(&self) -> io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }

    fn grow(&self, len: u64) -> io::Result<()> {
        if len > self.capacity as u64 {
            return Err(io::Error::new(
                io::ErrorKind::StorageFull,
                "shared file is at its capacity",
            ));
        }
        let now = self.file.metadata()?.len();
        if len <= now {
            return Ok(());
        }
        // Blocks allocated now: a store through the map into a hole of a full file system
        // would raise SIGBUS instead of returning an error.
        rustix::fs::fallocate(
            &self.file,
            rustix::fs::FallocateFlags::empty(),
            now,
            len - now,
        )
        .map_err(io::Error::from)?;
        // The new pages are written next: map them all in one call rather than one page
        // fault each (a hint: older kernels without MADV_POPULATE_WRITE just fault later).
        let (start, end) = (now as usize, len as usize);
        // SAFETY: `start..end` lies inside the mapping (`len <= capacity`) and inside the
        // file (just grown to `len`); populating page tables changes no byte.
        unsafe {
            libc::madvise(
                self.map.as_mut_ptr().add(start).cast(),
                end - start,
                libc::MADV_POPULATE_WRITE,
            );
        }
        Ok(())
    }
}

/// A mapped region file, and the `flock` that says this handle has it open.
struct FsRegion {
    file: File,
    map: memmap2::MmapMut,
    fresh: bool,
}

impl std::fmt::Debug for FsRegion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FsRegion")
            .field("fresh", &self.fresh)
            .finish()
    }
}

/// Byte offset of the wake-up word in a region file (FORMAT.md §8: 256, after the words).
const WAKE_WORD_OFFSET: usize = REGION_WORDS * 8;
// Invariant: the wake-up word lies inside the mapped region file, after every word of the
// commit index, aligned for an `AtomicU32`: what `wake_word`'s SAFETY paragraph relies on.
const _: () = assert!(WAKE_WORD_OFFSET == 256);
const _: () =
    assert!(WAKE_WORD_OFFSET + std::mem::size_of::<AtomicU32>() <= REGION_FILE_BYTES as usize);
const _: () = assert!(WAKE_WORD_OFFSET.is_multiple_of(std::mem::align_of::<AtomicU32>()));

impl SharedRegion for FsRegion {
    fn words(&self) -> &[AtomicU64] {
        // SAFETY: the mapping is page aligned and at least `REGION_WORDS * 8` bytes long, and
        // lives as long as `self`; `AtomicU64` has the size and alignment of `u64`, and every
        // access to these bytes (here and in other processes) is atomic.
        unsafe { std::slice::from_raw_parts(self.map.as_ptr().cast::<AtomicU64>(), REGION_WORDS) }
    }

    fn wake_word(&self) -> &AtomicU32 {
        // SAFETY: as for `words`: 4-byte aligned (a multiple of 8 from a page boundary),
        // inside the mapping, accessed only atomically.
        unsafe { &*self.map.as_ptr().add(WAKE_WORD_OFFSET).cast::<AtomicU32>() }
    }

    fn wait(&self, seen: u32, timeout: Duration) {
        let ts = rustix::time::Timespec {
            tv_sec: timeout.as_secs().min(i64::MAX as u64) as i64,
            tv_nsec: i64::from(timeout.subsec_nanos()),
        };
        // Not FUTEX_PRIVATE: waiters in other processes map the same file. Errors (EAGAIN when
        // the word changed, EINTR, ETIMEDOUT) all mean "look again".
        let _ = rustix::thread::futex::wait(
            self.wake_word(),
            rustix::thread::futex::Flags::empty(),
            seen,
            Some(&ts),
        );
    }

    fn wake_all(&self) {
        self.wake_word().fetch_add(1, Ordering::AcqRel);
        let _ = rustix::thread::futex::wake(
            self.wake_word(),
            rustix::thread::futex::Flags::empty(),
            i32::MAX as u32,
        );
    }

    fn share(&self) -> io::Result<()> {
        if self.fresh {
            // Converts the exclusive lock into a shared one: other openers proceed.
            self.file.lock_shared()?;
        }
        Ok(())
    }
}
