//! The simulated file system: a [`Storage`] that keeps live and durable state apart, records
//! an operation trace, injects I/O errors and captures crash points.
//!
//! Model (the rules of `docs/CRASHTEST.md` and the fault model):
//! - A write or `set_len` changes the live bytes at once and becomes durable only at a
//!   successful `sync_data`/`sync_all` of that file (through any handle).
//! - A create, rename or unlink changes the live names at once and becomes durable only at a
//!   successful `sync_dir` of the parent directory. A file sync makes no name durable.
//! - A failed file sync drops the file's dirty pages (fault F11): live bytes stay as written
//!   (a reader still sees them), but they will not become durable; a retried sync succeeds.
//! - After every state-changing call (or every sync, or never) the whole state is captured as
//!   a [`CrashPoint`]; [`crate::crashgen`] turns a crash point into post-crash disk images.
//!
//! Invariant: the simulated file system never changes durable state except in a successful
//! sync; every other call changes live state only.

mod file;
mod gate;
pub mod inject;
mod process;
mod rungate;
pub mod state;

use crate::trace::{OpClass, TraceEntry};
use file::{SimFile, SimLock};
use inject::{CountdownFault, FiredFault, Injection, Injector, SwarmProbabilities};
use parking_lot::{Condvar, Mutex};
pub use process::Process;
use state::{DirOp, FsState, Pending};
use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use walstore::storage::{
    MemRegions, MemSharedFiles, OpenMode, OpenedRegion, SharedFile, Storage, StorageFile,
    StorageLock,
};

/// Which operations are crash points worth capturing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Capture {
    /// None.
    Off,
    /// After every fsync-family call.
    Syncs,
    /// After every state-changing call.
    EveryOp,
}

/// The state right after one operation, from which post-crash images are made.
#[derive(Debug, Clone)]
pub struct CrashPoint {
    /// Trace index of the operation the crash follows.
    pub op_index: u64,
    /// Its class.
    pub class: OpClass,
    /// The whole file system at that moment.
    pub state: FsState,
}

#[derive(Debug)]
struct Runtime {
    state: FsState,
    op_count: u64,
    trace: Vec<TraceEntry>,
    injector: Injector,
    fired: Vec<FiredFault>,
    capture: Capture,
    captured: Vec<CrashPoint>,
    locks: HashMap<PathBuf, u64>,
    next_lock_holder: u64,
    phase: String,
    /// A directory sync failed and the file system shut down (every later call fails).
    shut_down: bool,
    /// Whether a failed directory sync shuts the file system down.
    dir_sync_failure_is_fatal: bool,
}

#[derive(Debug)]
struct Shared {
    runtime: Mutex<Runtime>,
    lock_released: Condvar,
    sync_gate: gate::SyncGate,
    run_gate: rungate::RunGate,
    /// Shared memory (walstore's commit index and log index): not part of any image. A
    /// crash makes a new file system from an image, so every process's memory is gone with
    /// it.
    regions: MemRegions,
    shared_files: MemSharedFiles,
}

/// A simulated file system. Clones share it.
#[derive(Debug, Clone)]
pub struct SimFs {
    shared: Arc<Shared>,
}

impl Default for SimFs {
    fn default() -> Self {
        Self::from_state(FsState::default())
    }
}

/// What one state-changing call was allowed to do.
struct Admitted {
    index: u64,
    injection: Option<Injection>,
}

impl SimFs {
    /// An empty file system.
    pub fn new() -> Self {
        Self::default()
    }

    /// A file system holding `state` (typically a post-crash image, all of it durable).
    pub fn from_state(state: FsState) -> Self {
        SimFs {
            shared: Arc::new(Shared {
                runtime: Mutex::new(Runtime {
                    state,
                    op_count: 0,
                    trace: Vec::new(),
                    injector: Injector::default(),
                    fired: Vec::new(),
                    capture: Capture::Off,
                    captured: Vec::new(),
                    locks: HashMap::new(),
                    next_lock_holder: 0,
                    phase: String::new(),
                    shut_down: false,
                    dir_sync_failure_is_fatal: true,
                }),
                lock_released: Condvar::new(),
                sync_gate: gate::SyncGate::default(),
                run_gate: rungate::RunGate::default(),
                regions: MemRegions::default(),
                shared_files: MemSharedFiles::default(),
            }),
        }
    }

    /// Whether a WAL sync is held in progress now (see `gate.rs`).
    pub fn sync_held(&self) -> bool {
        self.shared.sync_gate.is_held()
    }

    /// Ends a held sync's wait for another thread's WAL write: that thread's call returned
    /// without one (it failed before writing), so the sync completes now.
    pub fn release_held_sync(&self) {
        self.shared.sync_gate.release();
    }

    /// Holds the next `sync_data` of the WAL open until another thread issues a WAL write
    /// (see `gate.rs`); [`SimFs::wait_for_held_sync`] lets that thread start at the right
    /// moment, [`SimFs::disarm_sync_gate`] ends the schedule.
    pub fn arm_sync_gate(&self) {
        self.shared.sync_gate.arm();
    }

    /// Ends a schedule started by [`SimFs::arm_sync_gate`] (releases a waiting thread).
    pub fn disarm_sync_gate(&self) {
        self.shared.sync_gate.disarm();
    }

    /// Holds the next write to a snapshot file until [`SimFs::release_held_run`] (see
    /// `rungate.rs`); [`SimFs::wait_for_held_run`] lets another thread start once it is held.
    pub fn arm_run_gate(&self) {
        self.shared.run_gate.arm();
    }

    /// Blocks until the armed snapshot write is held (`true`) or the gate was disarmed.
    pub fn wait_for_held_run(&self) -> bool {
        self.shared.run_gate.wait_held()
    }

    /// Lets a held snapshot write go on and ends the schedule.
    pub fn release_held_run(&self) {
        self.shared.run_gate.disarm();
    }

    /// Blocks until the armed WAL sync has begun, or the gate was disarmed.
    pub fn wait_for_held_sync(&self) {
        self.shared.sync_gate.wait_held();
    }

    /// Trace indexes of the writes to `path` that are not durable yet.
    pub fn unsynced_write_ops(&self, path: &Path) -> Vec<u64> {
        let rt = self.runtime();
        let Some(inode) = rt
            .state
            .names
            .get(path)
            .and_then(|id| rt.state.inodes.get(id))
        else {
            return Vec::new();
        };
        inode
            .pending
            .iter()
            .filter_map(|p| match p {
                state::Pending::Write { op, .. } => Some(*op),
                state::Pending::SetLen { .. } => None,
            })
            .collect()
    }

    /// Chooses which operations are captured as crash points.
    pub fn set_capture(&self, capture: Capture) {
        self.shared.runtime.lock().capture = capture;
    }

    /// Takes the crash points captured so far.
    pub fn take_crash_points(&self) -> Vec<CrashPoint> {
        std::mem::take(&mut self.shared.runtime.lock().captured)
    }

    /// Labels the following operations in the trace (`commit 3`, `checkpoint`, ...).
    pub fn set_phase(&self, phase: impl Into<String>) {
        self.shared.runtime.lock().phase = phase.into();
    }

    /// Arms a countdown fault.
    pub fn set_countdown(&self, fault: CountdownFault) {
        self.shared.runtime.lock().injector.set_countdown(fault);
    }

    /// Arms random faults.
    pub fn set_swarm(&self, probabilities: SwarmProbabilities) {
        self.shared.runtime.lock().injector.set_swarm(probabilities);
    }

    /// Whether a failed directory sync shuts the file system down, as ext4 and XFS do when a
    /// journal commit fails (the default), or is transient like a failed file sync.
    pub fn set_dir_sync_failure_is_fatal(&self, fatal: bool) {
        self.shared.runtime.lock().dir_sync_failure_is_fatal = fatal;
    }

    /// Disarms every fault.
    pub fn clear_faults(&self) {
        self.shared.runtime.lock().injector.clear();
    }

    /// Number of state-changing calls so far (the index of the last trace entry).
    pub fn op_count(&self) -> u64 {
        self.shared.runtime.lock().op_count
    }

    /// The trace so far.
    pub fn trace(&self) -> Vec<TraceEntry> {
        self.shared.runtime.lock().trace.clone()
    }

    /// Faults fired so far.
    pub fn fired(&self) -> Vec<FiredFault> {
        self.shared.runtime.lock().fired.clone()
    }

    /// Number of faults fired so far.
    pub fn fired_count(&self) -> usize {
        self.shared.runtime.lock().fired.len()
    }

    /// A copy of the current state (live and durable).
    pub fn state(&self) -> FsState {
        self.shared.runtime.lock().state.clone()
    }

    /// Opens a file directly (for tests and tools), without going through the engine.
    pub fn read_live(&self, path: &Path) -> Option<Vec<u8>> {
        let rt = self.shared.runtime.lock();
        let id = rt.state.names.get(path)?;
        rt.state.inodes.get(id).map(|i| i.live.to_vec())
    }

    fn runtime(&self) -> parking_lot::MutexGuard<'_, Runtime> {
        self.shared.runtime.lock()
    }
}

impl Runtime {
    /// Counts a state-changing call, records it and asks the injector whether it fails.
    fn admit(&mut self, class: OpClass, path: &Path, detail: String) -> Admitted {
        self.op_count += 1;
        let index = self.op_count;
        let injection = if self.shut_down {
            Some(Injection {
                errno: inject::Errno::Eio,
                short_write: false,
            })
        } else {
            self.injector.decide(class)
        };
        if injection.is_some() && class == OpClass::SyncDir && self.dir_sync_failure_is_fatal {
            self.shut_down = true;
        }
        if let Some(inj) = injection {
            self.fired.push(FiredFault {
                op_index: index,
                class,
                path: path.display().to_string(),
                errno: inj.errno,
                short_write: inj.short_write,
            });
        }
        let range = parse_range(&detail);
        self.trace.push(TraceEntry {
            index,
            class,
            path: path.display().to_string(),
            range: if class == OpClass::Write { range } else { None },
            detail,
            error: injection.map(|i| format!("{:?}", i.errno)),
            phase: self.phase.clone(),
        });
        Admitted { index, injection }
    }

    /// Captures the state after call `index` if it is a crash point of interest.
    fn settle(&mut self, index: u64, class: OpClass) {
        let wanted = match self.capture {
            Capture::Off => false,
            Capture::Syncs => class.is_sync(),
            Capture::EveryOp => true,
        };
        if wanted {
            self.captured.push(CrashPoint {
                op_index: index,
                class,
                state: self.state.clone(),
            });
        }
    }

    /// Runs a state-changing call: admit, maybe fail, apply, capture.
    fn mutate<T>(
        &mut self,
        class: OpClass,
        path: &Path,
        detail: String,
        apply: impl FnOnce(&mut FsState, u64, Option<Injection>) -> io::Result<T>,
    ) -> io::Result<T> {
        let admitted = self.admit(class, path, detail);
        let result = apply(&mut self.state, admitted.index, admitted.injection);
        self.settle(admitted.index, class);
        result
    }
}

/// The `[start, end)` a write's trace detail names.
fn parse_range(detail: &str) -> Option<(u64, u64)> {
    let inner = detail.strip_prefix('[')?.strip_suffix(')')?;
    let (a, b) = inner.split_once(", ")?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

fn not_found(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("{} not found", path.display()),
    )
}

fn fail(injection: Option<Injection>) -> io::Result<()> {
    match injection {
        Some(inj) => Err(inj.errno.to_io()),
        None => Ok(()),
    }
}

impl Storage for SimFs {
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        let mut rt = self.runtime();
        for ancestor in path.ancestors() {
            if !ancestor.as_os_str().is_empty() {
                rt.state.dirs.insert(ancestor.to_path_buf());
            }
        }
        Ok(())
    }

    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Box<dyn StorageFile>> {
        let mut rt = self.runtime();
        if rt.state.dirs.contains(path) {
            return Err(io::Error::other(format!(
                "{} is a directory",
                path.display()
            )));
        }
        let existing = rt.state.names.get(path).copied();
        let inode = match (existing, mode) {
            (Some(id), OpenMode::CreateTruncate) => {
                rt.mutate(
                    OpClass::SetLen,
                    path,
                    "truncate on open".into(),
                    |st, op, inj| {
                        fail(inj)?;
                        let inode = st.inodes.entry(id).or_default();
                        Arc::make_mut(&mut inode.live).clear();
                        inode.pending.push(Pending::SetLen { op, len: 0 });
                        Ok(())
                    },
                )?;
                id
            }
            (Some(id), _) => id,
            (None, OpenMode::ReadOnly | OpenMode::ReadWrite) => return Err(not_found(path)),
            (None, OpenMode::Create | OpenMode::CreateTruncate) => {
                if !rt.state.parent_exists(path) {
                    return Err(not_found(path));
                }
                rt.mutate(OpClass::Create, path, String::new(), |st, op, inj| {
                    fail(inj)?;
                    let inode = st.new_inode();
                    st.names.insert(path.to_path_buf(), inode);
                    st.pending_dir.push(DirOp::Create {
                        op,
                        path: path.to_path_buf(),
                        inode,
                    });
                    Ok(inode)
                })?
            }
        };
        Ok(Box::new(SimFile::new(
            self.clone(),
            inode,
            path.to_path_buf(),
            mode.writable(),
        )))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut rt = self.runtime();
        let inode = rt
            .state
            .names
            .get(from)
            .copied()
            .ok_or_else(|| not_found(from))?;
        let detail = format!("-> {}", to.display());
        rt.mutate(OpClass::Rename, from, detail, |st, op, inj| {
            fail(inj)?;
            st.names.remove(from);
            st.names.insert(to.to_path_buf(), inode);
            st.pending_dir.push(DirOp::Rename {
                op,
                from: from.to_path_buf(),
                to: to.to_path_buf(),
                inode,
            });
            Ok(())
        })
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        let mut rt = self.runtime();
        let inode = rt
            .state
            .names
            .get(path)
            .copied()
            .ok_or_else(|| not_found(path))?;
        rt.mutate(OpClass::Remove, path, String::new(), |st, op, inj| {
            fail(inj)?;
            st.names.remove(path);
            st.pending_dir.push(DirOp::Unlink {
                op,
                path: path.to_path_buf(),
                inode,
            });
            Ok(())
        })
    }

    fn list_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        let rt = self.runtime();
        if !rt.state.dirs.contains(path) {
            return Err(not_found(path));
        }
        let mut out: Vec<String> = rt
            .state
            .names
            .keys()
            .chain(rt.state.dirs.iter())
            .filter(|p| p.parent() == Some(path))
            .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .collect();
        out.sort();
        out.dedup();
        Ok(out)
    }

    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        let mut rt = self.runtime();
        if !rt.state.dirs.contains(path) {
            return Err(not_found(path));
        }
        rt.mutate(OpClass::SyncDir, path, String::new(), |st, _, inj| {
            fail(inj)?;
            st.sync_dir(path);
            Ok(())
        })
    }

    fn exists(&self, path: &Path) -> io::Result<bool> {
        let rt = self.runtime();
        Ok(rt.state.names.contains_key(path) || rt.state.dirs.contains(path))
    }

    fn open_region(
        &self,
        path: &Path,
        deadline: Option<std::time::Instant>,
    ) -> io::Result<OpenedRegion> {
        self.shared.regions.open(path, deadline)
    }

    fn create_shared(&self, path: &Path, capacity: usize) -> io::Result<Arc<dyn SharedFile>> {
        self.shared.shared_files.create(path, capacity)
    }

    fn open_shared(&self, path: &Path, _capacity: usize) -> io::Result<Arc<dyn SharedFile>> {
        self.shared.shared_files.open(path)
    }

    fn open_lock(&self, path: &Path) -> io::Result<Box<dyn StorageLock>> {
        let mut rt = self.runtime();
        if !rt.state.names.contains_key(path) {
            if !rt.state.parent_exists(path) {
                return Err(not_found(path));
            }
            // The lock file is created like any other file (its name may be lost at a crash,
            // which is harmless: it holds no data).
            rt.mutate(OpClass::Create, path, "lock file".into(), |st, op, inj| {
                fail(inj)?;
                let inode = st.new_inode();
                st.names.insert(path.to_path_buf(), inode);
                st.pending_dir.push(DirOp::Create {
                    op,
                    path: path.to_path_buf(),
                    inode,
                });
                Ok(())
            })?;
        }
        rt.next_lock_holder += 1;
        Ok(Box::new(SimLock::new(
            self.clone(),
            path.to_path_buf(),
            rt.next_lock_holder,
        )))
    }
}

#[cfg(test)]
mod tests;
