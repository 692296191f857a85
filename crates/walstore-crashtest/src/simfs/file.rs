//! Open files and advisory locks of the simulated file system.

use super::state::{apply_write, to_usize, InodeId, Pending};
use super::{fail, SimFs};
use crate::trace::OpClass;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use walstore::storage::{Mapping, StorageFile, StorageLock};

/// An open file: a handle on an inode (it keeps working after a rename or unlink).
#[derive(Debug)]
pub(super) struct SimFile {
    fs: SimFs,
    inode: InodeId,
    path: PathBuf,
    writable: bool,
}

impl SimFile {
    pub(super) fn new(fs: SimFs, inode: InodeId, path: PathBuf, writable: bool) -> Self {
        SimFile {
            fs,
            inode,
            path,
            writable,
        }
    }

    fn check_writable(&self) -> io::Result<()> {
        if self.writable {
            Ok(())
        } else {
            Err(io::Error::from_raw_os_error(9)) // EBADF, like a read-only descriptor
        }
    }
}

impl SimFile {
    fn is_wal(&self) -> bool {
        self.path.file_name().is_some_and(|n| n == "wal")
    }

    /// For the WAL's held sync: the number of pending changes it covers, after waiting for
    /// the other thread's write. `None` for every other sync.
    fn held_sync_covers(&self) -> Option<usize> {
        if !self.is_wal() || !self.fs.shared.sync_gate.take_hold() {
            return None;
        }
        let covered = {
            let rt = self.fs.runtime();
            rt.state.inodes.get(&self.inode).map(|i| i.pending.len())
        };
        self.fs.shared.sync_gate.wait_release();
        covered
    }

    /// A write to a snapshot file waits here while the run gate holds it (`rungate.rs`).
    fn hold_snapshot_write(&self) {
        if self
            .path
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("snap-"))
        {
            self.fs.shared.run_gate.hold();
        }
    }

    fn note_wal_write(&self) {
        if self.is_wal() {
            self.fs.shared.sync_gate.note_write();
        }
    }
}

fn gone() -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, "simulated inode is gone")
}

impl StorageFile for SimFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let rt = self.fs.runtime();
        let inode = rt.state.inodes.get(&self.inode).ok_or_else(gone)?;
        let data = &inode.live;
        let Ok(start) = usize::try_from(offset) else {
            return Ok(0);
        };
        if start >= data.len() {
            return Ok(0);
        }
        let n = buf.len().min(data.len() - start);
        buf[..n].copy_from_slice(&data[start..start + n]);
        Ok(n)
    }

    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.check_writable()?;
        self.hold_snapshot_write();
        let mut rt = self.fs.runtime();
        if !rt.state.inodes.contains_key(&self.inode) {
            return Err(gone());
        }
        let detail = format!("[{offset}, {})", offset + buf.len() as u64);
        let id = self.inode;
        rt.mutate(OpClass::Write, &self.path, detail, |st, op, inj| {
            let landed = match inj {
                Some(i) if i.short_write => &buf[..buf.len() / 2],
                Some(_) => &[][..],
                None => buf,
            };
            let inode = st.inodes.get_mut(&id).ok_or_else(gone)?;
            if !landed.is_empty() {
                apply_write(Arc::make_mut(&mut inode.live), offset, landed);
                inode.pending.push(Pending::Write {
                    op,
                    offset,
                    data: Arc::from(landed),
                });
            }
            fail(inj)
        })
        .inspect(|()| self.note_wal_write())
    }

    fn len(&self) -> io::Result<u64> {
        let rt = self.fs.runtime();
        let inode = rt.state.inodes.get(&self.inode).ok_or_else(gone)?;
        Ok(inode.live.len() as u64)
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.check_writable()?;
        let mut rt = self.fs.runtime();
        let id = self.inode;
        rt.mutate(
            OpClass::SetLen,
            &self.path,
            format!("{len}"),
            |st, op, inj| {
                fail(inj)?;
                let inode = st.inodes.get_mut(&id).ok_or_else(gone)?;
                Arc::make_mut(&mut inode.live).resize(to_usize(len), 0);
                inode.pending.push(Pending::SetLen { op, len });
                Ok(())
            },
        )
    }

    fn sync_data(&self) -> io::Result<()> {
        let id = self.inode;
        // A held sync (gate.rs) covers the writes issued before it began, not those issued
        // by another thread while it is in progress.
        let covered = self.held_sync_covers();
        let mut rt = self.fs.runtime();
        rt.mutate(OpClass::Sync, &self.path, String::new(), |st, op, inj| {
            let inode = st.inodes.get_mut(&id).ok_or_else(gone)?;
            if inj.is_some() {
                // Like Linux after a writeback error: the dirty pages are marked clean
                // without having been written; the next sync has nothing to write for them.
                inode.drop_dirty();
                return fail(inj);
            }
            inode.make_durable_first(covered.unwrap_or(usize::MAX), op);
            Ok(())
        })
    }

    fn sync_all(&self) -> io::Result<()> {
        self.sync_data()
    }

    fn map(&self) -> io::Result<Arc<dyn Mapping>> {
        let rt = self.fs.runtime();
        let inode = rt.state.inodes.get(&self.inode).ok_or_else(gone)?;
        Ok(Arc::new(inode.live.to_vec()))
    }
}

/// An exclusive advisory lock; separate handles exclude each other, as `flock` does for
/// separate open file descriptions.
#[derive(Debug)]
pub(super) struct SimLock {
    fs: SimFs,
    path: PathBuf,
    holder: u64,
}

impl SimLock {
    pub(super) fn new(fs: SimFs, path: PathBuf, holder: u64) -> Self {
        SimLock { fs, path, holder }
    }
}

impl StorageLock for SimLock {
    fn try_lock(&self) -> io::Result<bool> {
        let mut rt = self.fs.runtime();
        match rt.locks.get(&self.path) {
            Some(h) if *h != self.holder => Ok(false),
            _ => {
                rt.locks.insert(self.path.clone(), self.holder);
                Ok(true)
            }
        }
    }

    fn lock(&self) -> io::Result<()> {
        let mut rt = self.fs.runtime();
        loop {
            match rt.locks.get(&self.path) {
                Some(h) if *h != self.holder => self.fs.shared.lock_released.wait(&mut rt),
                _ => {
                    rt.locks.insert(self.path.clone(), self.holder);
                    return Ok(());
                }
            }
        }
    }

    fn unlock(&self) -> io::Result<()> {
        let mut rt = self.fs.runtime();
        if rt.locks.get(&self.path) == Some(&self.holder) {
            rt.locks.remove(&self.path);
        }
        drop(rt);
        self.fs.shared.lock_released.notify_all();
        Ok(())
    }
}

impl Drop for SimLock {
    fn drop(&mut self) {
        // Closing the descriptor releases an flock; an unlock cannot fail here.
        let _ = self.unlock();
    }
}
