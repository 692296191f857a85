//! The checkpointer: writes the memtable as a new sorted run, then resets the WAL.
//!
//! Protocol (each step completes before the next starts; RECOVERY.md lists a crash at each):
//! 1. Take the writer lock and catch up: the version to fold is the newest committed state.
//! 2. Read the manifest (the current list of runs: a merge in another process may have
//!    replaced some since this process loaded them).
//! 3. Write the memtable, tombstones included, as one new run of snapshot files of about the
//!    target size: `snap-<id>.tmp`, fsync, rename to `snap-<id>.dat`; then fsync the
//!    directory. No existing file is read or rewritten: the cost follows the change.
//! 4. Write the new manifest (the new run first, then the others; new generation, new WAL
//!    salt): temp, fsync, rename, fsync dir.
//! 5. Reset the WAL: write the new header (the old records now fail the salt check), sync.
//! 6. Wake the merger (`merge.rs`), which keeps the number of runs bounded.
//!
//! Invariant: the WAL is reset only after the manifest naming every file that covers its
//! records, and those files' directory entries, are durable.

use crate::core::SignalShared;
use crate::core::{Core, Wake};
use crate::error::{Error, Result};
use crate::format::random_u64;
use crate::manifest::Manifest;
use crate::options::LockWait;
use crate::output::Output;
use crate::snapshot::{RangeDelete, Segment, SegmentMeta};
use crate::version::{SegmentSet, Version};
use crate::wal::WAL_HEADER_BYTES;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::thread::JoinHandle;
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

/// Runs a checkpoint, waiting for the writer lock as `wait` says: without holding the writer
/// lock while the run is written when this handle can take the merge lock, holding it
/// throughout otherwise (another handle is merging).
pub(crate) fn run(core: &Core, wait: LockWait) -> Result<CheckpointStats> {
    core.check_usable(true)?;
    match core.try_merge_lock() {
        Some(_merging) => run_holding_merge_lock(core, wait),
        None => timed(core, || {
            core.with_writer(wait, |_guard| {
                crate::catchup::refresh(core, true).and_then(|base| fold(core, &base))
            })
        }),
    }
}

/// [`run`] by a caller that holds the merge lock: the two-phase checkpoint.
pub(crate) fn run_holding_merge_lock(core: &Core, wait: LockWait) -> Result<CheckpointStats> {
    timed(core, || fold_unlocked(core, wait, &|| false))
}

fn timed(core: &Core, f: impl FnOnce() -> Result<CheckpointStats>) -> Result<CheckpointStats> {
    let started = Instant::now();
    let mut stats = f()?;
    stats.micros = started.elapsed().as_micros() as u64;
    core.counters().checkpoints.fetch_add(1, Ordering::Relaxed);
    Ok(stats)
}

/// The two-phase checkpoint, run by the holder of the merge lock (so no other handle writes
/// or removes snapshot files meanwhile, RECOVERY.md "Checkpoint"):
/// - phase 0, under the writer lock: freeze the newest version and reserve file ids for its
///   run in the manifest (same generation);
/// - phase 1, without the writer lock: write the frozen memtable as a run; commits go on;
/// - phase 2, under the writer lock: write the commits made during phase 1 as a second, small
///   run, then switch the manifest and reset the WAL as [`fold`] does.
fn fold_unlocked(core: &Core, wait: LockWait, stop: &dyn Fn() -> bool) -> Result<CheckpointStats> {
    let Some(frozen) = core.with_writer(wait, |_g| freeze(core))? else {
        return Ok(CheckpointStats {
            generation: core.current().generation,
            txn_id: core.current().last_txn,
            ..Default::default()
        });
    };
    let mut stats = CheckpointStats {
        keys_changed: frozen.version.mem.len(),
        ..Default::default()
    };
    let bottom = frozen.manifest.runs.is_empty();
    let first_id = frozen.manifest.next_file_id;
    let mut out = Output::in_dir(core.storage(), core.dir(), core.opts(), first_id);
    if !bottom {
        out.set_range_deletes(frozen.version.mem_deletes.to_vec());
    }
    let written = frozen
        .version
        .mem
        .iter()
        .filter(|(_, v)| v.is_some() || !bottom)
        .try_for_each(|(k, v)| out.add(k, v.as_deref()))
        .and_then(|()| out.publish_files());
    let run0 = match written {
        Ok(run) if out.next_id - first_id <= frozen.reserved => run,
        other => {
            out.discard();
            other?;
            return Err(Error::corruption(
                core.dir(),
                0,
                "a checkpoint wrote more files than it reserved ids for",
            ));
        }
    };
    // Phase 2 waits for the lock whatever `wait` says (phase 0 honoured it), unless stopped.
    let mut switching = false;
    let finished = patiently(stop, || {
        core.with_writer(LockWait::Timeout(Duration::from_millis(20)), |_g| {
            finish_unlocked(core, &frozen, run0.clone(), &mut stats, &mut switching)
        })
    });
    // Once the manifest switch began, the new manifest naming these files may be durable.
    if !switching && !matches!(finished, Ok(true)) {
        out.discard();
    }
    finished.map(|_| stats)
}

/// Retries `f` while it finds the writer lock busy, unless `stop` says to give up.
pub(crate) fn patiently<T>(stop: &dyn Fn() -> bool, mut f: impl FnMut() -> Result<T>) -> Result<T> {
    loop {
        match f() {
            Err(Error::Busy { .. }) if !stop() => continue,
            other => return other,
        }
    }
}

/// What phase 0 froze.
struct Frozen {
    version: Version,
    manifest: Manifest,
    reserved: u64,
}

/// Phase 0 (writer lock held): the newest version, folded, and ids reserved for its run.
fn freeze(core: &Core) -> Result<Option<Frozen>> {
    let base = crate::catchup::refresh(core, true)?;
    let mut version = Version::clone(&base);
    version.fold_layers();
    if version.mem.is_empty() && version.wal_end == WAL_HEADER_BYTES {
        return Ok(None);
    }
    let manifest = read_manifest(core)?;
    check_generation(core, &manifest, &version)?;
    // Files are at least the target size except the last; the run is smaller than the log.
    let target = core.opts().segment_size_bytes_target.max(1);
    let reserved = (version.wal_end - WAL_HEADER_BYTES) / target + 2;
    let mut reserving = manifest.clone();
    reserving.next_file_id += reserved;
    crate::merge::write_manifest(core, &reserving)?;
    Ok(Some(Frozen {
        version,
        manifest,
        reserved,
    }))
}

/// Phase 2 (writer lock held). Returns false when another handle checkpointed meanwhile
/// (phase 1's run is then not needed: the caller removes it).
fn finish_unlocked(
    core: &Core,
    frozen: &Frozen,
    run0: Vec<SegmentMeta>,
    stats: &mut CheckpointStats,
    switching: &mut bool,
) -> Result<bool> {
    let base = crate::catchup::refresh(core, true)?;
    if base.generation != frozen.version.generation {
        return Ok(false);
    }
    let current = read_manifest(core)?;
    check_generation(core, &current, &base)?;
    let written_seq = core.wal().written_seq();
    let tail = tail_writes(core, &frozen.version, &base)?;
    stats.keys_changed += tail.writes.len();
    let mut out = Output::in_dir(
        core.storage(),
        core.dir(),
        core.opts(),
        current.next_file_id,
    );
    let bottom = current.runs.is_empty() && run0.is_empty();
    if !bottom {
        out.set_range_deletes(tail.deletes);
    }
    let run1 = tail
        .writes
        .iter()
        .filter(|(_, v)| v.is_some() || !bottom)
        .try_for_each(|(k, v)| out.add(k, v.as_deref()))
        .and_then(|()| out.publish_files());
    let run1 = match run1 {
        Ok(run) => run,
        Err(e) => {
            out.discard();
            return Err(e);
        }
    };
    let written: Vec<&SegmentMeta> = run1.iter().chain(&run0).collect();
    stats.files_written = written.len();
    stats.bytes_written = written.iter().map(|m| m.file_len).sum();
    stats.files_kept = current.runs.iter().map(Vec::len).sum();
    stats.wal_bytes = base.wal_end - WAL_HEADER_BYTES;
    let mut runs: Vec<Vec<SegmentMeta>> =
        [run1, run0].into_iter().filter(|r| !r.is_empty()).collect();
    runs.extend(current.runs.iter().cloned());
    let manifest = Manifest {
        generation: base.generation + 1,
        salt: random_u64(),
        base_txn: base.last_txn,
        next_file_id: out.next_id,
        runs,
    };
    *switching = true;
    switch_generation(core, &manifest, &base)?;
    core.wal()
        .covered_by_checkpoint(written_seq, (manifest.generation, WAL_HEADER_BYTES));
    stats.generation = manifest.generation;
    stats.txn_id = base.last_txn;
    Ok(true)
}

/// The writes committed after `frozen` up to `base` (the same generation), read back from
/// the log: the last write of each key, and the range deletions (which drop the tail's
/// earlier writes they cover).
fn tail_writes(core: &Core, frozen: &Version, base: &Version) -> Result<Tail> {
    let mut tail = Tail::default();
    if base.wal_end == frozen.wal_end {
        return Ok(tail);
    }
    let end = crate::wal::scan::scan(
        core.wal().file(),
        base.wal_end,
        frozen.wal_end,
        frozen.salt,
        frozen.last_txn + 1,
        crate::wal::scan::ReadConfig::of(core.opts()),
        |t| tail.apply(t.deletes, t.writes),
    )
    .map_err(|e| Error::io("read", core.wal().path(), e))?;
    if end.last_txn != base.last_txn {
        // The log this handle appended and caught up on reads back differently.
        return Err(Error::corruption(
            core.wal().path(),
            end.end,
            "the log between two points of a checkpoint does not read back",
        ));
    }
    Ok(tail)
}

/// Writes read back from the log, in the order they apply.
#[derive(Default)]
struct Tail {
    writes: std::collections::BTreeMap<crate::version::Bytes, Option<crate::version::Bytes>>,
    deletes: Vec<RangeDelete>,
}

impl Tail {
    fn apply(&mut self, deletes: Vec<RangeDelete>, writes: Vec<crate::wal::scan::Write>) {
        for d in &deletes {
            let doomed: Vec<_> = self
                .writes
                .range::<[u8], _>(crate::version::delete_bounds(d))
                .map(|(k, _)| Arc::clone(k))
                .collect();
            for k in doomed {
                self.writes.remove(&k[..]);
            }
        }
        if !deletes.is_empty() {
            self.deletes = crate::version::add_deletes(&self.deletes, &deletes);
        }
        self.writes.extend(writes);
    }
}

fn check_generation(core: &Core, manifest: &Manifest, version: &Version) -> Result<()> {
    if manifest.generation == version.generation {
        return Ok(());
    }
    // Only a holder of the writer lock changes the generation, and the caller caught up
    // under it: another generation here means the manifest changed under the lock.
    Err(Error::corruption(
        core.dir().join(crate::format::MANIFEST_NAME),
        0,
        "manifest generation differs from the WAL's under the writer lock",
    ))
}

/// Folds `base` (the newest version, caught up under the writer lock, which the caller
/// holds) into a new run and resets the WAL.
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
    let current = read_manifest(core)?;
    check_generation(core, &current, base)?;
    let written_seq = core.wal().written_seq();
    let run = write_run(core, base, &current, &mut stats)?;
    let mut runs = current.runs.clone();
    stats.files_kept = runs.iter().map(Vec::len).sum();
    if !run.is_empty() {
        runs.insert(0, run);
    }
    let manifest = Manifest {
        generation: base.generation + 1,
        salt: random_u64(),
        base_txn: base.last_txn,
        next_file_id: current.next_file_id + stats.files_written as u64,
        runs,
    };
    switch_generation(core, &manifest, base)?;
    // Every WAL write made so far is covered by the durable snapshot files now.
    core.wal()
        .covered_by_checkpoint(written_seq, (manifest.generation, WAL_HEADER_BYTES));
    stats.generation = manifest.generation;
    Ok(stats)
}

/// The manifest on disk; a store without one is damaged (it had one when it was opened).
pub(crate) fn read_manifest(core: &Core) -> Result<Manifest> {
    Manifest::read(core.storage(), core.dir())?.ok_or_else(|| {
        Error::corruption(
            core.dir().join(crate::format::MANIFEST_NAME),
            0,
            "the manifest is missing",
        )
    })
}

/// Step 3: the memtable as a new run, synced and renamed into place, the directory synced.
/// Tombstones are kept unless no older run exists. On failure the files written are removed
/// (best effort).
fn write_run(
    core: &Core,
    base: &Version,
    current: &Manifest,
    stats: &mut CheckpointStats,
) -> Result<Vec<SegmentMeta>> {
    let bottom = current.runs.is_empty();
    let mut out = Output::in_dir(
        core.storage(),
        core.dir(),
        core.opts(),
        current.next_file_id,
    );
    if !bottom {
        out.set_range_deletes(base.mem_deletes.to_vec());
    }
    let written = base
        .mem
        .iter()
        .filter(|(_, v)| v.is_some() || !bottom)
        .try_for_each(|(k, v)| out.add(k, v.as_deref()))
        .and_then(|()| out.publish_files());
    match written {
        Ok(run) => {
            stats.files_written = run.len();
            stats.bytes_written = run.iter().map(|m| m.file_len).sum();
            Ok(run)
        }
        Err(e) => {
            out.discard();
            Err(e)
        }
    }
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
    core.wal().reset_header(&manifest.wal_header(), true)?;
    // The index learns of the new generation before anything else can fail: a failure
    // below leaves this handle's head behind the index, and the next holder of the writer
    // lock reads the files (RECOVERY.md I3). Everything of the old generation is durable in
    // the runs now, and shown.
    if let Some(index) = core.index() {
        index.set_head(
            crate::index::Head {
                generation: manifest.generation,
                salt: manifest.salt,
                wal_end: WAL_HEADER_BYTES,
                last_txn: base.last_txn,
            },
            true,
        );
    }
    let runs = map_runs(core, manifest, &base.runs)?;
    core.publish(Arc::new(Version {
        generation: manifest.generation,
        salt: manifest.salt,
        base_txn: manifest.base_txn,
        last_txn: base.last_txn,
        wal_end: WAL_HEADER_BYTES,
        synced_through: WAL_HEADER_BYTES,
        data_end: WAL_HEADER_BYTES,
        runs,
        mem: Default::default(),
        mem_deletes: Default::default(),
        layers: Vec::new(),
    }));
    Ok(())
}

/// The runs `manifest` names, reusing the files `mapped` already maps and mapping the others.
pub(crate) fn map_runs(
    core: &Core,
    manifest: &Manifest,
    mapped: &[Arc<SegmentSet>],
) -> Result<Vec<Arc<SegmentSet>>> {
    let known = crate::version::mapped_files(mapped);
    let faults = core.opts().faults.range_seek_one_entry_early();
    let mut runs = Vec::with_capacity(manifest.runs.len());
    for metas in &manifest.runs {
        let mut segments = Vec::with_capacity(metas.len());
        for meta in metas {
            segments.push(match known.get(&meta.file_id) {
                Some(seg) => Arc::clone(seg),
                None => Arc::new(Segment::open(core.storage(), core.dir(), meta)?),
            });
        }
        runs.push(Arc::new(SegmentSet::new(segments, metas.clone(), faults)));
    }
    Ok(runs)
}

/// Starts the background worker for `core` (at the first checkpoint request, see
/// [`crate::core::CheckpointSignal`]): it checkpoints when asked (the commit path asks when
/// the log passes the threshold) and then merges runs. It holds only a weak reference to the
/// core and never a `Store`: closing the last handle stops it and waits for the job it is
/// running (a merge gives up early and removes its files), so `close` does its work itself.
/// `None` when no thread could be started.
pub(crate) fn spawn_worker(weak: Weak<Core>, signal: Arc<SignalShared>) -> Option<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("walstore-checkpoint".into())
        .spawn(move || {
            while signal.wait() == Wake::Checkpoint {
                let Some(core) = weak.upgrade() else {
                    return;
                };
                // A failed background job is retried at the next request; its error (a
                // full disk, say) reaches callers of `checkpoint` or, if it poisoned the
                // store, of every later write.
                background_job(&core, &signal);
            }
        })
        .ok()
}

/// One wake-up of the worker. Holding the merge lock, it checkpoints in two phases and then
/// merges, checkpointing again between merge steps whenever the commit path asks (a long
/// merge never holds checkpoints back). Without it (another handle merges), it checkpoints
/// holding the writer lock. It waits for the writer lock in short steps and gives up when
/// the store is being closed (a closing thread may hold the lock in an open transaction
/// while it waits for this thread).
fn background_job(core: &Core, signal: &SignalShared) {
    let stop = || signal.is_stopped();
    let short = LockWait::Timeout(Duration::from_millis(20));
    let Some(merging) = core.try_merge_lock() else {
        let _ = patiently(&stop, || {
            timed(core, || {
                core.with_writer(short, |_g| {
                    crate::catchup::refresh(core, true).and_then(|base| fold(core, &base))
                })
            })
        });
        return;
    };
    let checkpoint = || patiently(&stop, || timed(core, || fold_unlocked(core, short, &stop)));
    let _ = checkpoint();
    let mut between = || {
        if signal.take_request() {
            let _ = checkpoint();
        }
    };
    let _ = crate::merge::run_holding(core, &merging, false, &stop, &mut between);
}

/// Removes snapshot files the manifest does not name, and a stale `MANIFEST.tmp`. Only the
/// holder of the merge lock, also holding the writer lock, removes anything (a merge or a
/// checkpoint in progress writes files the manifest does not name yet); without it this does
/// nothing. Failures are harmless (the files are
/// removed next time) and ignored.
pub(crate) fn remove_orphans(core: &Core) {
    // Invariant: the caller holds the writer lock (no checkpoint is writing files).
    if let Some(_merging) = core.try_merge_lock() {
        if let Ok(manifest) = read_manifest(core) {
            crate::merge::remove_unnamed(core, &manifest);
        }
    }
}
