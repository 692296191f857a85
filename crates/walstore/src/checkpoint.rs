//! The checkpointer: folds the WAL into snapshot files, then resets the WAL.
//!
//! Protocol (each step completes before the next starts; RECOVERY.md lists a crash at each):
//! 1. Take the writer lock and catch up: the version to fold is the newest committed state.
//! 2. For each snapshot file whose key range holds a change, merge its entries with the
//!    changes into new files of about the target size: write `snap-<id>.tmp`, fsync, rename
//!    to `snap-<id>.dat`. Untouched files are kept as they are.
//! 3. fsync the directory (the new names are durable).
//! 4. Write the new manifest (new generation, new WAL salt): temp, fsync, rename, fsync dir.
//! 5. Reset the WAL: write the new header (the old records now fail the salt check), sync.
//! 6. Unlink the replaced snapshot files. Readers in any process that still map them keep
//!    reading them; the file system frees them when the last mapping goes.
//!
//! Invariant: the WAL is reset only after the manifest naming every file that covers its
//! records, and those files' directory entries, are durable.

use crate::core::SignalShared;
use crate::core::{Core, Wake};
use crate::error::{Error, Result};
use crate::format::{
    parse_snapshot_name, random_u64, snapshot_name, snapshot_tmp_name, MANIFEST_TMP_NAME,
};
use crate::manifest::Manifest;
use crate::options::LockWait;
use crate::snapshot::{Segment, SegmentMeta, SegmentWriter};
use crate::storage::{OpenMode, Storage};
use crate::version::{Bytes, SegmentSet, Version};
use crate::wal::WAL_HEADER_BYTES;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

/// What a checkpoint did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CheckpointStats {
    /// Generation after the checkpoint.
    pub generation: u64,
    /// Last transaction folded in.
    pub txn_id: u64,
    /// Keys changed since the previous checkpoint.
    pub keys_changed: usize,
    /// Snapshot files written.
    pub files_written: usize,
    /// Snapshot files kept unchanged.
    pub files_kept: usize,
    /// Snapshot files replaced (unlinked).
    pub files_removed: usize,
    /// Bytes written to snapshot files.
    pub bytes_written: u64,
    /// WAL bytes folded.
    pub wal_bytes: u64,
    /// Wall time in microseconds.
    pub micros: u64,
}

/// Runs a checkpoint, waiting for the writer lock as `wait` says.
pub(crate) fn run(core: &Core, wait: LockWait) -> Result<CheckpointStats> {
    core.check_usable(true)?;
    let started = Instant::now();
    let mut stats = core.with_writer(wait, |_guard| {
        crate::catchup::refresh(core, true).and_then(|base| fold(core, &base))
    })?;
    stats.micros = started.elapsed().as_micros() as u64;
    core.counters().checkpoints.fetch_add(1, Ordering::Relaxed);
    Ok(stats)
}

/// Folds `base` (the newest version, caught up under the writer lock, which the caller
/// holds) into snapshot files and resets the WAL.
pub(crate) fn fold(core: &Core, base: &Arc<Version>) -> Result<CheckpointStats> {
    let mut folded = Version::clone(base);
    folded.fold_layers();
    let base = &folded;
    let mut stats = CheckpointStats {
        generation: base.generation,
        txn_id: base.last_txn,
        keys_changed: base.mem.len(),
        wal_bytes: base.wal_end - WAL_HEADER_BYTES,
        ..Default::default()
    };
    if base.mem.is_empty() && base.wal_end == WAL_HEADER_BYTES {
        return Ok(stats);
    }
    let written_seq = core.wal().written_seq();
    let (metas, next_file_id) = write_files(core, base, &mut stats)?;
    let manifest = Manifest {
        generation: base.generation + 1,
        salt: random_u64(),
        base_txn: base.last_txn,
        next_file_id,
        segments: metas,
    };
    switch_generation(core, &manifest, base)?;
    // Every WAL write made so far is covered by the durable snapshot files now.
    core.wal()
        .covered_by_checkpoint(written_seq, (manifest.generation, WAL_HEADER_BYTES));
    // Step 6.
    remove_orphans(core, &manifest);
    stats.generation = manifest.generation;
    Ok(stats)
}

/// Steps 2-3: new snapshot files for the key ranges that changed, synced and renamed into
/// place, then the directory synced. Returns the new generation's file list and next file id.
/// On failure the files written are removed (best effort).
fn write_files(
    core: &Core,
    base: &Version,
    stats: &mut CheckpointStats,
) -> Result<(Vec<SegmentMeta>, u64)> {
    let mut out = Output::new(core, base.next_file_id);
    let mut metas: Vec<SegmentMeta> = Vec::new();
    for part in plan(&base.segments, base) {
        match part {
            Part::Keep(i) => {
                metas.push(base.segments.metas[i].clone());
                stats.files_kept += 1;
            }
            Part::Rewrite { segment, changes } => {
                let old = segment.map(|i| Arc::clone(&base.segments.segments[i]));
                stats.files_removed += usize::from(old.is_some());
                match out.merge(old.as_deref(), &changes) {
                    Ok(new) => metas.extend(new),
                    Err(e) => {
                        out.discard();
                        return Err(e);
                    }
                }
            }
        }
    }
    if let Err(e) = out.publish_files() {
        out.discard();
        return Err(e);
    }
    stats.files_written = out.written.len();
    stats.bytes_written = out.written.iter().map(|m| m.file_len).sum();
    Ok((metas, out.next_id))
}

/// Steps 4-5: the manifest switch, then the WAL reset, then the new version published. From
/// the manifest's rename on, the new generation may be the durable one: a failed manifest
/// write poisons the handle (it cannot tell which generation is durable), and so does a
/// failed reset (the `Wal`'s latch). A failure to map the new files poisons nothing: the next
/// catch-up sees the new header and reloads.
fn switch_generation(core: &Core, manifest: &Manifest, base: &Version) -> Result<()> {
    let sync_dir = !core.opts().faults.skip_dir_fsync();
    if let Err(e) = manifest.write(core.storage(), core.dir(), sync_dir) {
        core.wal().poison("checkpoint manifest switch");
        return Err(e);
    }
    core.wal().reset_header(&manifest.wal_header())?;
    let segments = reopen_set(core, manifest, base)?;
    core.publish(Arc::new(Version {
        generation: manifest.generation,
        salt: manifest.salt,
        base_txn: manifest.base_txn,
        next_file_id: manifest.next_file_id,
        last_txn: base.last_txn,
        wal_end: WAL_HEADER_BYTES,
        synced_through: WAL_HEADER_BYTES,
        data_end: WAL_HEADER_BYTES,
        segments,
        mem: Default::default(),
        layers: Vec::new(),
    }));
    Ok(())
}

/// The segment set of the new generation: kept files reused, new files mapped.
fn reopen_set(core: &Core, manifest: &Manifest, base: &Version) -> Result<Arc<SegmentSet>> {
    let mut set = SegmentSet {
        seek_one_entry_early: core.opts().faults.range_seek_one_entry_early(),
        ..SegmentSet::default()
    };
    for meta in &manifest.segments {
        let seg = match base
            .segments
            .segments
            .iter()
            .find(|s| s.id() == meta.file_id)
        {
            Some(seg) => Arc::clone(seg),
            None => Arc::new(Segment::open(core.storage(), core.dir(), meta)?),
        };
        set.segments.push(seg);
        set.metas.push(meta.clone());
    }
    Ok(Arc::new(set))
}

/// One step of the plan, in key order.
enum Part {
    /// Keep snapshot file `i` as it is.
    Keep(usize),
    /// Merge snapshot file `segment` (or nothing) with `changes` into new files.
    Rewrite {
        segment: Option<usize>,
        changes: Vec<(Bytes, Option<Bytes>)>,
    },
}

/// Routes every change to the snapshot file whose key range holds it.
fn plan(set: &SegmentSet, base: &Version) -> Vec<Part> {
    if set.metas.is_empty() {
        let changes: Vec<_> = base
            .mem
            .iter()
            .map(|(k, v)| (Arc::clone(k), v.clone()))
            .collect();
        return vec![Part::Rewrite {
            segment: None,
            changes,
        }];
    }
    let mut per_segment: Vec<Vec<(Bytes, Option<Bytes>)>> = vec![Vec::new(); set.metas.len()];
    for (k, v) in base.mem.iter() {
        let i = set.locate(k).unwrap_or(0);
        per_segment[i].push((Arc::clone(k), v.clone()));
    }
    per_segment
        .into_iter()
        .enumerate()
        .map(|(i, changes)| {
            if changes.is_empty() {
                Part::Keep(i)
            } else {
                Part::Rewrite {
                    segment: Some(i),
                    changes,
                }
            }
        })
        .collect()
}

/// New snapshot files being written, rolled over at the target size.
pub(crate) struct Output<'s> {
    storage: &'s dyn Storage,
    dir: &'s Path,
    faults: crate::faults::EngineFaults,
    pub(crate) next_id: u64,
    target: u64,
    current: Option<SegmentWriter>,
    /// Files finished, under their temporary names.
    pub(crate) written: Vec<SegmentMeta>,
}

impl<'s> Output<'s> {
    pub(crate) fn new(core: &'s Core, next_id: u64) -> Self {
        Output::in_dir(core.storage(), core.dir(), core.opts(), next_id)
    }

    pub(crate) fn in_dir(
        storage: &'s dyn Storage,
        dir: &'s Path,
        opts: &crate::options::Options,
        next_id: u64,
    ) -> Self {
        Output {
            storage,
            dir,
            faults: opts.faults,
            next_id,
            target: opts.segment_size_bytes_target,
            current: None,
            written: Vec::new(),
        }
    }

    pub(crate) fn add(&mut self, key: &[u8], value: &[u8]) -> Result<()> {
        let writer = match self.current.as_mut() {
            Some(w) => w,
            None => {
                let id = self.next_id;
                self.next_id += 1;
                let path = self.dir.join(snapshot_tmp_name(id));
                self.current
                    .insert(SegmentWriter::create(self.storage, path, id)?)
            }
        };
        writer.add(key, value)?;
        if writer.body_bytes() >= self.target {
            self.finish_current()?;
        }
        Ok(())
    }

    fn finish_current(&mut self) -> Result<()> {
        if let Some(writer) = self.current.take() {
            let sync = !self.faults.rename_snapshot_before_fsync();
            self.written.push(writer.finish(sync)?);
        }
        Ok(())
    }

    /// Merges an old file's entries with sorted changes; returns the new files' metadata.
    fn merge(
        &mut self,
        old: Option<&Segment>,
        changes: &[(Bytes, Option<Bytes>)],
    ) -> Result<Vec<SegmentMeta>> {
        let first_new = self.written.len();
        let mut changes = changes.iter().peekable();
        if let Some(seg) = old {
            for i in 0..seg.len() {
                let (key, value) = seg.entry(i)?;
                while let Some((ck, cv)) = changes.next_if(|(ck, _)| &ck[..] < key) {
                    if let Some(cv) = cv {
                        self.add(ck, cv)?;
                    }
                }
                match changes.next_if(|(ck, _)| &ck[..] == key) {
                    Some((_, Some(cv))) => self.add(key, cv)?,
                    Some((_, None)) => {}
                    None => self.add(key, value)?,
                }
            }
        }
        for (ck, cv) in changes {
            if let Some(cv) = cv {
                self.add(ck, cv)?;
            }
        }
        self.finish_current()?;
        Ok(self.written[first_new..].to_vec())
    }

    /// Renames every finished file into place, then syncs the directory.
    pub(crate) fn publish_files(&mut self) -> Result<()> {
        self.finish_current()?;
        for meta in &self.written {
            let tmp = self.dir.join(snapshot_tmp_name(meta.file_id));
            let path = self.dir.join(snapshot_name(meta.file_id));
            self.storage
                .rename(&tmp, &path)
                .map_err(|e| Error::io("rename", &tmp, e))?;
            if self.faults.rename_snapshot_before_fsync() {
                let file = self
                    .storage
                    .open(&path, OpenMode::ReadWrite)
                    .map_err(|e| Error::io("open", &path, e))?;
                file.sync_all().map_err(|e| Error::io("fsync", &path, e))?;
            }
        }
        if !self.written.is_empty() && !self.faults.skip_dir_fsync() {
            self.storage
                .sync_dir(self.dir)
                .map_err(|e| Error::io("fsync directory", self.dir, e))?;
        }
        Ok(())
    }

    /// Best-effort removal of files written by a checkpoint that failed before its manifest.
    pub(crate) fn discard(&mut self) {
        self.current = None;
        for meta in &self.written {
            for name in [snapshot_tmp_name(meta.file_id), snapshot_name(meta.file_id)] {
                let _ = self.storage.remove_file(&self.dir.join(name));
            }
        }
    }
}

/// Starts the background checkpoint thread. It holds only a weak reference to the core and
/// never a `Store`: closing the last handle stops it and waits for a checkpoint it is
/// running (so `close` does its work itself, whatever the thread was doing).
pub(crate) fn start_background(core: &Arc<Core>) {
    let signal = core.checkpointer().shared();
    let weak: Weak<Core> = Arc::downgrade(core);
    let spawned = std::thread::Builder::new()
        .name("walstore-checkpoint".into())
        .spawn(move || {
            while signal.wait() == Wake::Checkpoint {
                let Some(core) = weak.upgrade() else {
                    return;
                };
                // A failed background checkpoint is retried at the next request; its error (a
                // full disk, say) reaches callers of `checkpoint` or, if it poisoned the
                // store, of every later write.
                let _ = run_in_background(&core, &signal);
            }
        });
    if let Ok(thread) = spawned {
        core.checkpointer().started(thread);
    }
}

/// A checkpoint run by the background thread: it waits for the writer lock in short steps
/// and gives up when the store is being closed (a closing thread may hold the lock in an
/// open transaction while it waits for this thread).
fn run_in_background(core: &Core, signal: &SignalShared) -> Result<CheckpointStats> {
    loop {
        match run(core, LockWait::Timeout(Duration::from_millis(20))) {
            Err(Error::Busy { .. }) if !signal.is_stopped() => continue,
            other => return other,
        }
    }
}

/// Removes snapshot files the manifest does not name, and a stale `MANIFEST.tmp`. Only
/// called while holding the writer lock with `manifest` being the current one. Failures are
/// harmless (the files are removed next time) and ignored.
pub(crate) fn remove_orphans(core: &Core, manifest: &Manifest) {
    let storage = core.storage();
    let dir = core.dir();
    let Ok(names) = storage.list_dir(dir) else {
        return;
    };
    let live: std::collections::HashSet<String> = manifest
        .segments
        .iter()
        .map(|m| snapshot_name(m.file_id))
        .collect();
    for name in names {
        let orphan = name == MANIFEST_TMP_NAME
            || (parse_snapshot_name(&name).is_some() && !live.contains(&name));
        if orphan {
            let _ = storage.remove_file(&dir.join(&name));
        }
    }
}
