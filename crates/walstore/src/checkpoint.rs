//! The checkpointer: writes the memtable as a new sorted run, then resets the WAL.
//!
//! Protocol (each step completes before the next starts; RECOVERY.md lists a crash at each):
//! 1. Take the writer lock and catch up: the version to fold is the newest committed state.
//! 2. Read the manifest (the current list of runs: a merge in another process may have
//!    replaced some since this process loaded them).
//! 3. Write the memtable, tombstones included, as one new run of snapshot files of about the
//!    target size: `snap-<id>.tmp`, fsync, rename to `snap-<id>.dat`; then fsync the
//!    directory. No existing file is read or rewritten: the cost follows the change.
//! 4. If the change feed keeps this generation's log (a consumer needs it, or the retention
//!    policy keeps log), seal it: `log-<gen>.seg` and `FEED` (feed/mod.rs).
//! 5. Write the new manifest (the new run first, then the others; new generation, new WAL
//!    salt): a [`RunEdit::NewGeneration`] applied by `runs::apply`.
//! 6. Reset the WAL: write the new header (the old records now fail the salt check), sync.
//!
//! The background worker (`worker.rs`) merges runs after a checkpoint, which keeps their
//! number bounded.
//!
//! Invariant: the WAL is reset only after the manifest naming every file that covers its
//! records, and those files' directory entries, are durable.

use crate::core::{head_of, Core, WriterGuard};
use crate::error::{Error, Result};
use crate::format::random_u64;
use crate::manifest::Manifest;
use crate::options::LockWait;
use crate::output::Output;
use crate::runs::{self, RunEdit};
use crate::snapshot::{RangeDelete, SegmentMeta};
use crate::value::Bytes;
use crate::version::Version;
use crate::wal::scan::{scan, ReadConfig, Write};
use crate::wal::{LogPosition, WAL_HEADER_BYTES};
use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

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
    match core.try_merge_lock()? {
        Some(_merging) => timed(core, || fold_unlocked(core, wait, &|| false)),
        None => timed(core, || core.with_writer(wait, |g| fold_head(core, g))),
    }
}

/// Catches up under the writer lock, then folds the head ([`fold`]).
pub(crate) fn fold_head(core: &Core, guard: &WriterGuard) -> Result<CheckpointStats> {
    let base = crate::catchup::head(core, guard)?;
    fold(core, guard, &base)
}

/// Runs `f`, a checkpoint, and records its time and count.
pub(crate) fn timed(
    core: &Core,
    f: impl FnOnce() -> Result<CheckpointStats>,
) -> Result<CheckpointStats> {
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
pub(crate) fn fold_unlocked(
    core: &Core,
    wait: LockWait,
    stop: &dyn Fn() -> bool,
) -> Result<CheckpointStats> {
    let Some(frozen) = core.with_writer(wait, |g| freeze(core, g))? else {
        let head = core.current();
        return Ok(CheckpointStats {
            generation: head.generation,
            txn_id: head.last_txn,
            ..Default::default()
        });
    };
    let (entries, deletes) = frozen.version.log_contents()?;
    let mut stats = CheckpointStats {
        keys_changed: entries.len(),
        ..Default::default()
    };
    let first_id = frozen.manifest.next_file_id;
    let mut out = Output::in_dir(core.storage(), core.dir(), core.opts(), first_id);
    let run0 = out.write_run(
        entries.into_iter(),
        deletes,
        frozen.manifest.runs.is_empty(),
    )?;
    if out.next_id - first_id > frozen.reserved {
        out.discard();
        return Err(Error::corruption(
            core.dir(),
            0,
            "a checkpoint wrote more files than it reserved ids for",
        ));
    }
    // Phase 2 waits for the lock whatever `wait` says (phase 0 honoured it), unless stopped.
    let mut switching = false;
    let finished = core.with_writer_patiently(stop, |g| {
        finish_unlocked(core, g, &frozen, run0.clone(), &mut stats, &mut switching)
    });
    // Once the manifest switch began, the new manifest naming these files may be durable.
    if !switching && !matches!(finished, Ok(true)) {
        out.discard();
    }
    finished.map(|_| stats)
}

/// The entries of a memtable, in key order (`None`: a tombstone).
fn memtable_entries<'m>(
    mem: impl IntoIterator<Item = (&'m Bytes, &'m Option<Bytes>)>,
) -> impl Iterator<Item = (&'m [u8], Option<&'m [u8]>)> {
    mem.into_iter().map(|(k, v)| (&k[..], v.as_deref()))
}

/// What phase 0 froze.
struct Frozen {
    version: Version,
    manifest: Manifest,
    reserved: u64,
}

/// Most bytes a run takes per byte of the log it folds (see [`freeze`]).
const RUN_BYTES_PER_LOG_BYTE: u64 = 8;

/// Phase 0 (writer lock held): the newest version, folded, and ids reserved for its run.
fn freeze(core: &Core, guard: &WriterGuard) -> Result<Option<Frozen>> {
    let base = crate::catchup::head(core, guard)?;
    let mut version = Version::clone(&base);
    version.fold_layers();
    if version.mem.is_empty() && version.wal_end == WAL_HEADER_BYTES {
        return Ok(None);
    }
    let manifest = runs::read_locked(core, guard)?;
    check_generation(core, &manifest, &version)?;
    // Files are at least the target size except the last. A run takes more bytes per write
    // than a batch of the log does: a write costs its key and value plus at least 2 bytes
    // (its tag, a varint) in the log, and at most 22 more in a run (lengths, index entry,
    // filter bits, page CRC), so at most 8 times its bytes in the log (a delete of a
    // one-byte key: 3 bytes, 25 in a run). Ids are only numbers: reserving too many costs
    // nothing, too few fails the checkpoint.
    let target = core.opts().segment_size_bytes_target.max(1);
    let reserved =
        (version.wal_end - WAL_HEADER_BYTES).saturating_mul(RUN_BYTES_PER_LOG_BYTE) / target + 2;
    runs::apply(
        core,
        guard,
        &manifest,
        &RunEdit::ReserveIds { count: reserved },
    )?;
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
    guard: &WriterGuard,
    frozen: &Frozen,
    run0: Vec<SegmentMeta>,
    stats: &mut CheckpointStats,
    switching: &mut bool,
) -> Result<bool> {
    let base = crate::catchup::head(core, guard)?;
    if base.generation != frozen.version.generation {
        return Ok(false);
    }
    let current = runs::read_locked(core, guard)?;
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
    let run1 = out.write_run(memtable_entries(&tail.writes), tail.deletes, bottom)?;
    let written: Vec<&SegmentMeta> = run1.iter().chain(&run0).collect();
    stats.files_written = written.len();
    stats.bytes_written = written.iter().map(|m| m.file_len).sum();
    stats.files_kept = current.files().count();
    stats.wal_bytes = base.wal_end - WAL_HEADER_BYTES;
    let edit = RunEdit::NewGeneration {
        from: base.generation,
        added: vec![run1, run0],
        ids_end: out.next_id,
        base_txn: base.last_txn,
        salt: random_u64(),
    };
    *switching = true;
    let manifest = switch_generation(core, guard, &current, &edit, &base)?;
    core.wal().covered_by_checkpoint(
        written_seq,
        LogPosition::new(manifest.generation, WAL_HEADER_BYTES),
    );
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
    let end = scan(
        core.wal().file(),
        base.wal_end,
        frozen.wal_end,
        frozen.salt,
        frozen.last_txn + 1,
        ReadConfig::of(core.opts()),
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
    writes: BTreeMap<Bytes, Option<Bytes>>,
    deletes: Vec<RangeDelete>,
}

impl Tail {
    fn apply(&mut self, deletes: Vec<RangeDelete>, writes: Vec<Write>) {
        for d in &deletes {
            let doomed: Vec<_> = self
                .writes
                .range::<[u8], _>(crate::deletes::delete_bounds(d))
                .map(|(k, _)| Arc::clone(k))
                .collect();
            for k in doomed {
                self.writes.remove(&k[..]);
            }
        }
        if !deletes.is_empty() {
            self.deletes = crate::deletes::add_deletes(&self.deletes, &deletes);
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

/// Folds `base` (the newest version, caught up under the writer lock `guard`) into a new
/// run and resets the WAL: the one-phase checkpoint.
pub(crate) fn fold(
    core: &Core,
    guard: &WriterGuard,
    base: &Arc<Version>,
) -> Result<CheckpointStats> {
    let mut folded = Version::clone(base);
    folded.fold_layers();
    let base = &folded;
    let (entries, deletes) = base.log_contents()?;
    let mut stats = CheckpointStats {
        generation: base.generation,
        txn_id: base.last_txn,
        keys_changed: entries.len(),
        wal_bytes: base.wal_end - WAL_HEADER_BYTES,
        ..Default::default()
    };
    if entries.is_empty() && base.wal_end == WAL_HEADER_BYTES {
        return Ok(stats);
    }
    let current = runs::read_locked(core, guard)?;
    check_generation(core, &current, base)?;
    let written_seq = core.wal().written_seq();
    let mut out = Output::in_dir(
        core.storage(),
        core.dir(),
        core.opts(),
        current.next_file_id,
    );
    let run = out.write_run(entries.into_iter(), deletes, current.runs.is_empty())?;
    stats.files_written = run.len();
    stats.bytes_written = run.iter().map(|m| m.file_len).sum();
    stats.files_kept = current.files().count();
    let edit = RunEdit::NewGeneration {
        from: base.generation,
        added: vec![run],
        ids_end: out.next_id,
        base_txn: base.last_txn,
        salt: random_u64(),
    };
    let manifest = switch_generation(core, guard, &current, &edit, base)?;
    // Every WAL write made so far is covered by the durable snapshot files now.
    core.wal().covered_by_checkpoint(
        written_seq,
        LogPosition::new(manifest.generation, WAL_HEADER_BYTES),
    );
    stats.generation = manifest.generation;
    Ok(stats)
}

/// Steps 4-5: the manifest switch (`runs::apply`, which poisons the handle if it fails:
/// from the rename on the new generation may be the durable one), then the WAL reset (whose
/// failure the `Wal` latches), then the new version published. A failure to map the new
/// files poisons nothing: the next catch-up sees the new header and reloads.
fn switch_generation(
    core: &Core,
    guard: &WriterGuard,
    current: &Manifest,
    edit: &RunEdit,
    base: &Version,
) -> Result<Manifest> {
    // The change feed keeps this generation's log if a consumer needs it (feed/mod.rs):
    // sealed and listed before the manifest switch makes the log resettable.
    crate::feed::seal(core, guard, base)?;
    let manifest = runs::apply(core, guard, current, edit)?;
    // The new generation's log index exists before the WAL names the generation, so every
    // handle that sees the new generation finds it (FORMAT.md §9).
    let index = core.log_index_for(manifest.generation, manifest.salt, true);
    core.wal().reset_header(&manifest.wal_header(), true)?;
    // The index learns of the new generation before anything else can fail: a failure
    // below leaves this handle's head behind the index, and the next holder of the writer
    // lock reads the files (RECOVERY.md I3). Everything of the old generation is durable in
    // the runs now, and shown.
    let mut next = Version::start_of(
        manifest.generation,
        manifest.salt,
        manifest.base_txn,
        Vec::new(),
    );
    if let Some(index) = core.index() {
        index.set_head(head_of(&next), true);
    }
    next.runs = runs::map_locked(core, guard, &manifest, &base.runs)?;
    if let Some(ix) = index {
        if let Some(v) = crate::indexed::version_at(&ix, &next, WAL_HEADER_BYTES)? {
            next = v;
        }
    }
    core.publish(Arc::new(next));
    Ok(manifest)
}
