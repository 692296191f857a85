//! What the simulated disk and page cache hold: per file, the live bytes (what a reader sees
//! now), the durable bytes (what survives a power cut for sure) and the writes in between;
//! per directory, the live names, the durable names and the name operations in between.
//!
//! A [`FsState`] is a value: cloning it is cheap (file contents are shared until written),
//! which is how a crash point is captured after every operation.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Identifies a file independently of its names (renames and unlinks keep it).
pub type InodeId = u64;

/// A write or size change not yet covered by a successful sync.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pending {
    /// `write_all_at` (or the landed part of a short write).
    Write {
        /// Trace index of the call.
        op: u64,
        /// File offset.
        offset: u64,
        /// The bytes.
        data: Arc<[u8]>,
    },
    /// `set_len` (or a truncating open).
    SetLen {
        /// Trace index of the call.
        op: u64,
        /// The new length.
        len: u64,
    },
}

/// A durable range and the write it came from (to tell which commit damaged bytes belonged to).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Origin {
    /// First byte.
    pub start: u64,
    /// One past the last byte.
    pub end: u64,
    /// Trace index of the write.
    pub write_op: u64,
    /// Trace index of the sync that made it durable.
    pub sync_op: u64,
}

/// One file.
#[derive(Debug, Clone, Default)]
pub struct Inode {
    /// What a reader sees now (the page cache).
    pub live: Arc<Vec<u8>>,
    /// What survives a power cut for sure.
    pub durable: Arc<Vec<u8>>,
    /// Changes since the last successful sync, in order.
    pub pending: Vec<Pending>,
    /// Writes whose pages a failed sync dropped (offset, bytes): after a crash their range
    /// may hold the old bytes, the new ones or a sector-wise mix, and no later sync brings
    /// them back (fault F11).
    pub lost: Vec<(u64, Arc<[u8]>)>,
    /// Where the durable bytes came from, oldest first.
    pub origins: Vec<Origin>,
}

impl Inode {
    /// The write that produced the durable byte at `offset`, if any is recorded.
    pub fn origin_of(&self, offset: u64) -> Option<Origin> {
        self.origins
            .iter()
            .rev()
            .find(|o| o.start <= offset && offset < o.end)
            .copied()
    }

    /// Applies every pending change to the durable bytes (a successful sync at `sync_op`).
    pub fn make_durable(&mut self, sync_op: u64) {
        self.make_durable_first(usize::MAX, sync_op);
    }

    /// Applies the first `n` pending changes to the durable bytes (a sync that began before
    /// the later ones were issued); the rest stay pending.
    pub fn make_durable_first(&mut self, n: usize, sync_op: u64) {
        let later = self.pending.split_off(n.min(self.pending.len()));
        let pending = std::mem::replace(&mut self.pending, later);
        if pending.is_empty() {
            return;
        }
        let durable = Arc::make_mut(&mut self.durable);
        for change in pending {
            match change {
                Pending::Write { op, offset, data } => {
                    apply_write(durable, offset, &data);
                    let end = offset + data.len() as u64;
                    // A later durable write over a dropped one decides those bytes.
                    self.lost
                        .retain(|(s, d)| end <= *s || s + d.len() as u64 <= offset);
                    self.origins.push(Origin {
                        start: offset,
                        end,
                        write_op: op,
                        sync_op,
                    });
                }
                Pending::SetLen { len, .. } => durable.resize(to_usize(len), 0),
            }
        }
    }

    /// A failed sync: the dirty pages are marked clean without being written.
    pub fn drop_dirty(&mut self) {
        for change in std::mem::take(&mut self.pending) {
            if let Pending::Write { offset, data, .. } = change {
                self.lost.push((offset, data));
            }
        }
    }
}

/// A name operation not yet covered by a sync of its directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DirOp {
    /// A file was created.
    Create {
        /// Trace index.
        op: u64,
        /// Its path.
        path: PathBuf,
        /// The new file.
        inode: InodeId,
    },
    /// A rename (replacing `to` if it existed).
    Rename {
        /// Trace index.
        op: u64,
        /// Old path.
        from: PathBuf,
        /// New path.
        to: PathBuf,
        /// The renamed file.
        inode: InodeId,
    },
    /// An unlink.
    Unlink {
        /// Trace index.
        op: u64,
        /// The removed path.
        path: PathBuf,
        /// The file it named.
        inode: InodeId,
    },
}

impl DirOp {
    /// The directory whose sync makes this operation durable.
    pub fn directory(&self) -> Option<&Path> {
        match self {
            DirOp::Create { path, .. } | DirOp::Unlink { path, .. } => path.parent(),
            DirOp::Rename { to, .. } => to.parent(),
        }
    }

    /// Applies the operation to a name table.
    pub fn apply(&self, names: &mut BTreeMap<PathBuf, InodeId>) {
        match self {
            DirOp::Create { path, inode, .. } => {
                names.insert(path.clone(), *inode);
            }
            DirOp::Rename {
                from, to, inode, ..
            } => {
                if names.get(from) == Some(inode) {
                    names.remove(from);
                }
                names.insert(to.clone(), *inode);
            }
            DirOp::Unlink { path, inode, .. } => {
                if names.get(path) == Some(inode) {
                    names.remove(path);
                }
            }
        }
    }
}

/// The whole simulated file system, live and durable.
#[derive(Debug, Clone, Default)]
pub struct FsState {
    /// Every file ever created (unlinked ones too: an undone unlink brings them back).
    pub inodes: BTreeMap<InodeId, Inode>,
    /// Directories (durable from creation: the store's directory is made before any crash
    /// point of interest).
    pub dirs: BTreeSet<PathBuf>,
    /// Names a reader sees now.
    pub names: BTreeMap<PathBuf, InodeId>,
    /// Names that survive a power cut for sure.
    pub durable_names: BTreeMap<PathBuf, InodeId>,
    /// Name operations since the last sync of their directory, in order.
    pub pending_dir: Vec<DirOp>,
    /// Next inode number.
    pub next_inode: InodeId,
}

impl FsState {
    /// Whether the parent directory of `path` exists.
    pub fn parent_exists(&self, path: &Path) -> bool {
        match path.parent() {
            None => true,
            Some(p) if p.as_os_str().is_empty() => true,
            Some(p) => self.dirs.contains(p),
        }
    }

    /// Allocates an empty file.
    pub fn new_inode(&mut self) -> InodeId {
        self.next_inode += 1;
        let id = self.next_inode;
        self.inodes.insert(id, Inode::default());
        id
    }

    /// Makes the pending name operations of `dir` durable.
    pub fn sync_dir(&mut self, dir: &Path) {
        let (now, later): (Vec<DirOp>, Vec<DirOp>) = std::mem::take(&mut self.pending_dir)
            .into_iter()
            .partition(|op| op.directory() == Some(dir));
        for op in &now {
            op.apply(&mut self.durable_names);
        }
        self.pending_dir = later;
    }

    /// Whether anything is not yet durable.
    pub fn has_unsynced(&self) -> bool {
        !self.pending_dir.is_empty() || self.inodes.values().any(|i| !i.pending.is_empty())
    }
}

/// Writes `data` at `offset`, growing `buf` with zeros if needed.
pub fn apply_write(buf: &mut Vec<u8>, offset: u64, data: &[u8]) {
    let start = to_usize(offset);
    let end = start + data.len();
    if buf.len() < end {
        buf.resize(end, 0);
    }
    buf[start..end].copy_from_slice(data);
}

/// Converts a file offset to an index; simulated files live in memory, so they fit.
pub fn to_usize(value: u64) -> usize {
    usize::try_from(value).expect("simulated file offsets fit in memory")
}
