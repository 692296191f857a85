//! The file-system seam. Every byte the engine reads or writes goes through [`Storage`].
//!
//! Three implementations exist: [`FsStorage`] (the real file system, the only code in the
//! engine that touches `std::fs`), [`MemoryStorage`] (in memory, with crash simulation and
//! fault injection for tests), and the simulated file system of the `walstore-crashtest`
//! crate. Another engine can implement this trait to run under the crash harness too.
//!
//! The trait speaks `std::io::Result`; the engine adds the operation and path to every error
//! it returns to its caller.
//!
//! Semantics an implementation must provide (the crash harness checks the engine against them):
//! - `sync_data`/`sync_all` make a file's bytes and size durable, not its name.
//! - `sync_dir` makes the names in a directory durable (creations, renames, removals).
//! - `rename` atomically replaces the target for concurrent observers.
//! - A file of the store is opened only if it is a regular file, never through a symbolic
//!   link: anything else in its place fails with an `io::Error` carrying [`NotARegularFile`]
//!   (the engine reports it as `Error::NotARegularFile`, naming the file).
//! - A [`Mapping`] of a file stays valid and unchanged for as long as it is held, provided the
//!   file is never written or truncated after it was mapped (the engine guarantees this: it only
//!   maps snapshot files, which are immutable once renamed into place).

mod fs;
mod memory;
mod region;
mod shared;

pub use fs::FsStorage;
pub use memory::{MemoryStorage, StorageOp};
pub use region::{
    retry_until, MemRegions, OpenedRegion, SharedRegion, REGION_FILE_BYTES, REGION_WORDS,
};
pub use shared::{MemShared, MemSharedFiles, SharedBytes, SharedFile};

use std::fmt::Debug;
use std::io;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

/// The payload of the `io::Error` a [`Storage`] returns when a store file's name holds
/// something other than a regular file: `found` says what (`"a symbolic link"`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotARegularFile {
    /// What the name holds.
    pub found: &'static str,
}

impl std::fmt::Display for NotARegularFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}, not a regular file", self.found)
    }
}

impl std::error::Error for NotARegularFile {}

impl NotARegularFile {
    /// The `io::Error` that carries it.
    pub fn error(found: &'static str) -> io::Error {
        io::Error::other(NotARegularFile { found })
    }

    /// What `err` says was found, if it is such an error.
    pub fn of(err: &io::Error) -> Option<&'static str> {
        err.get_ref()
            .and_then(|inner| inner.downcast_ref::<NotARegularFile>())
            .map(|n| n.found)
    }
}

/// How a file is opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OpenMode {
    /// Read only; the file must exist.
    ReadOnly,
    /// Read and write; the file must exist.
    ReadWrite,
    /// Read and write; created empty if missing, kept as it is otherwise.
    Create,
    /// Read and write; created if missing, truncated to zero length otherwise.
    CreateTruncate,
}

impl OpenMode {
    /// Whether this mode allows writing.
    pub fn writable(self) -> bool {
        !matches!(self, OpenMode::ReadOnly)
    }
}

/// A file system, real or simulated.
pub trait Storage: Send + Sync + Debug + 'static {
    /// Creates a directory and its parents (like `mkdir -p`).
    fn create_dir_all(&self, path: &Path) -> io::Result<()>;
    /// Opens a file.
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Box<dyn StorageFile>>;
    /// Renames `from` to `to`, replacing `to` if it exists.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Removes a file.
    fn remove_file(&self, path: &Path) -> io::Result<()>;
    /// Names (not paths) of the entries of a directory, in no particular order.
    fn list_dir(&self, path: &Path) -> io::Result<Vec<String>>;
    /// Makes the directory's entries durable.
    fn sync_dir(&self, path: &Path) -> io::Result<()>;
    /// Whether a file or directory exists at `path`.
    fn exists(&self, path: &Path) -> io::Result<bool>;
    /// Opens (creating if needed) a lock file used for exclusive, cross-process advisory locking.
    /// Two handles returned by separate calls must exclude each other, even in one process.
    fn open_lock(&self, path: &Path) -> io::Result<Box<dyn StorageLock>>;
    /// Opens (creating) the region of memory shared by every handle that opens `path`, in
    /// any process, waiting until `deadline` (forever with `None`) while another handle sets
    /// up a fresh one (`WouldBlock` then). A backend without shared memory returns
    /// `Unsupported` (the default): the engine then works without a commit index (FORMAT.md
    /// §8).
    fn open_region(&self, path: &Path, deadline: Option<Instant>) -> io::Result<OpenedRegion> {
        let _ = (path, deadline);
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "this storage has no shared memory",
        ))
    }
    /// Creates a new, zero-length shared file at `path` (a new file: handles that map the
    /// one there keep it as it is), mapped with `capacity` bytes of address space
    /// (FORMAT.md §9). A backend without shared memory returns `Unsupported` (the default):
    /// the engine then reads the log into each handle's own memory.
    fn create_shared(&self, path: &Path, capacity: usize) -> io::Result<Arc<dyn SharedFile>> {
        let _ = (path, capacity);
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "this storage has no shared memory",
        ))
    }
    /// Maps the shared file at `path` with `capacity` bytes of address space (`NotFound` if
    /// there is none).
    fn open_shared(&self, path: &Path, capacity: usize) -> io::Result<Arc<dyn SharedFile>> {
        let _ = (path, capacity);
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "this storage has no shared memory",
        ))
    }
}

/// An open file.
pub trait StorageFile: Send + Sync + Debug {
    /// Reads up to `buf.len()` bytes at `offset`; returns how many were read (0 at end of file).
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize>;
    /// Writes all of `buf` at `offset`, growing the file if needed.
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()>;
    /// Current length of the file in bytes.
    fn len(&self) -> io::Result<u64>;
    /// Whether the file is empty.
    fn is_empty(&self) -> io::Result<bool> {
        Ok(self.len()? == 0)
    }
    /// Truncates or extends the file.
    fn set_len(&self, len: u64) -> io::Result<()>;
    /// Makes the file's data and size durable (`fdatasync`).
    fn sync_data(&self) -> io::Result<()>;
    /// Makes the file's data and all metadata durable (`fsync`).
    fn sync_all(&self) -> io::Result<()>;
    /// Maps the whole file read-only, as long as it was when opened. Only called on files
    /// that are never modified again (opened read-only).
    fn map(&self) -> io::Result<Arc<dyn Mapping>>;

    /// Reads until `buf` is full or the end of the file; returns the number of bytes read.
    fn read_full_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let mut done = 0;
        while done < buf.len() {
            let n = self.read_at(&mut buf[done..], offset + done as u64)?;
            if n == 0 {
                break;
            }
            done += n;
        }
        Ok(done)
    }
}

/// A read-only view of a whole file.
pub trait Mapping: Send + Sync + Debug {
    /// The file's bytes.
    fn bytes(&self) -> &[u8];
}

/// An exclusive advisory lock on a lock file.
pub trait StorageLock: Send + Sync + Debug {
    /// Takes the lock if it is free; returns whether it was taken.
    fn try_lock(&self) -> io::Result<bool>;
    /// Takes the lock, waiting as long as needed.
    fn lock(&self) -> io::Result<()>;
    /// Releases the lock.
    fn unlock(&self) -> io::Result<()>;
}

impl Mapping for Vec<u8> {
    fn bytes(&self) -> &[u8] {
        self
    }
}
