//! The merger: keeps the number of sorted runs bounded by merging runs of similar size, in the
//! background, in at most one handle of one process at a time (the `MERGE` lock).
//!
//! Policy (size-tiered; ARCHITECTURE.md argues it): a run's *tier* is
//! `floor(log4(bytes / flush_bytes))`, where `flush_bytes` is the WAL size that triggers a
//! checkpoint. When [`MERGE_WIDTH`] adjacent runs share a tier, they are merged into one run
//! (of about the next tier). Each byte is therefore rewritten once per tier it climbs:
//! write amplification is about `1 + log4(store / flush_bytes)` on top of the WAL's, and a
//! point read consults at most `MERGE_WIDTH - 1` runs per tier (fewer in practice: each
//! run's bloom filter answers most misses without reading an entry). More than
//! [`MAX_RUNS`] runs (tiers out of order after deletions shrank a merge) merge the adjacent
//! window of [`MERGE_WIDTH`] runs with the fewest bytes.
//!
//! Protocol (RECOVERY.md, "Merging"):
//! 1. Take the merge lock (try only: another handle merging is enough). Read the manifest
//!    and choose the runs.
//! 2. Under the writer lock, only for a manifest switch: reserve file ids (the manifest's
//!    next file id moves past them), so checkpoints in any process never reuse them.
//! 3. Without the writer lock: merge the runs' entries, newest run first, into new files
//!    (temp, fsync, rename, directory fsync). A newer run's entry or range deletion hides
//!    older ones; tombstones and range deletions are dropped when the oldest run is merged.
//! 4. Under the writer lock, only for a manifest switch: write the manifest with the merged
//!    run in place of its inputs (checkpoints since step 1 only added newer runs), then
//!    publish it to this handle's readers.
//! 5. Unlink the input files. Readers that still map them keep reading them; handles in
//!    other processes pick the new run up at their next reload.
//!
//! Invariant: merging never changes what any key reads as; it holds the writer lock only for
//! the two manifest switches and never blocks readers.

use crate::core::{Core, MergeGuard};
use crate::error::{Error, Result};
use crate::format::{parse_snapshot_name, snapshot_name, MANIFEST_TMP_NAME};
use crate::manifest::Manifest;
use crate::options::LockWait;
use crate::output::Output;
use crate::snapshot::{RangeDelete, SegmentMeta};
use crate::version::SegmentSet;
use std::collections::HashSet;
use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

/// How many adjacent runs of one tier are merged at once.
pub const MERGE_WIDTH: usize = 4;
/// Most runs before runs of different tiers are merged too.
pub const MAX_RUNS: usize = 12;

/// What a merge did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct MergeStats {
    /// Runs merged into one.
    pub runs_merged: usize,
    /// Files read.
    pub files_read: usize,
    /// Files written.
    pub files_written: usize,
    /// Bytes read from the input runs.
    pub bytes_read: u64,
    /// Bytes written.
    pub bytes_written: u64,
    /// Whether the oldest run was merged (tombstones dropped).
    pub bottom: bool,
}

/// The runs (indices into `runs`, newest first) the policy merges next, if any.
pub(crate) fn pick(runs: &[u64], flush_bytes: u64) -> Option<Range<usize>> {
    let tier = |bytes: u64| {
        let mut t = 0u32;
        let mut limit = flush_bytes.max(1).saturating_mul(4);
        while bytes >= limit {
            t += 1;
            limit = limit.saturating_mul(4);
        }
        t
    };
    let mut start = 0;
    while start < runs.len() {
        let t = tier(runs[start]);
        let mut end = start + 1;
        while end < runs.len() && tier(runs[end]) == t {
            end += 1;
        }
        if end - start >= MERGE_WIDTH {
            return Some(start..start + MERGE_WIDTH);
        }
        start = end;
    }
    if runs.len() > MAX_RUNS {
        let best = (0..=runs.len() - MERGE_WIDTH)
            .min_by_key(|&i| runs[i..i + MERGE_WIDTH].iter().sum::<u64>())?;
        return Some(best..best + MERGE_WIDTH);
    }
    None
}

/// Runs merges until the policy finds nothing to merge (or everything, with `all`), unless
/// another handle holds the merge lock. `stopped` is polled to give up early.
pub(crate) fn run(core: &Core, all: bool, stopped: &dyn Fn() -> bool) -> Result<Vec<MergeStats>> {
    let Some(merging) = core.try_merge_lock() else {
        return Ok(Vec::new());
    };
    run_holding(core, &merging, all, stopped, &mut || {})
}

/// [`run`] by the holder of the merge lock; `between` is called every few thousand entries
/// (the worker checkpoints there when asked).
pub(crate) fn run_holding(
    core: &Core,
    _merging: &MergeGuard<'_>,
    all: bool,
    stopped: &dyn Fn() -> bool,
    between: &mut dyn FnMut(),
) -> Result<Vec<MergeStats>> {
    let mut done = Vec::new();
    loop {
        let manifest = crate::checkpoint::read_manifest(core)?;
        let sizes: Vec<u64> = manifest
            .runs
            .iter()
            .map(|r| r.iter().map(|m| m.file_len).sum())
            .collect();
        let chosen = if all {
            (!sizes.is_empty() && done.is_empty()).then_some(0..sizes.len())
        } else {
            pick(&sizes, core.opts().wal_size_bytes_checkpoint)
        };
        let Some(chosen) = chosen else {
            remove_unnamed_locked(core, stopped)?;
            return Ok(done);
        };
        match merge(core, &manifest, chosen, stopped, between)? {
            Some(stats) => done.push(stats),
            None => return Ok(done),
        }
    }
}

/// Merges `chosen` runs of `manifest`; `None` when stopped before the switch.
fn merge(
    core: &Core,
    manifest: &Manifest,
    chosen: Range<usize>,
    stopped: &dyn Fn() -> bool,
    between: &mut dyn FnMut(),
) -> Result<Option<MergeStats>> {
    let current = core.current();
    let inputs = crate::checkpoint::map_runs(
        core,
        &Manifest {
            runs: manifest.runs[chosen.clone()].to_vec(),
            ..manifest.clone()
        },
        &current.runs,
    )?;
    drop(current);
    let bottom = chosen.end == manifest.runs.len();
    let bottom = core.opts().faults.merge_bottom(bottom);
    let bytes_read: u64 = inputs.iter().map(|r| r.bytes()).sum();
    let mut stats = MergeStats {
        runs_merged: inputs.len(),
        files_read: inputs.iter().map(|r| r.segments.len()).sum(),
        bytes_read,
        bottom,
        ..Default::default()
    };
    // Step 2: reserve ids. Files are at least the target size except the last one, and the
    // output is never larger than the input.
    let target = core.opts().segment_size_bytes_target.max(1);
    let reserve = bytes_read / target + 2;
    let first_id = reserve_ids(core, reserve, stopped)?;
    // Step 3.
    let mut out = Output::in_dir(core.storage(), core.dir(), core.opts(), first_id);
    let written =
        write_merged(&mut out, &inputs, bottom, stopped, between).and_then(
            |finished| match finished {
                true => out.publish_files().map(Some),
                false => Ok(None),
            },
        );
    let run = match written {
        Ok(Some(run)) if (out.next_id - first_id) <= reserve => run,
        Ok(Some(_)) => {
            out.discard();
            return Err(Error::corruption(
                core.dir(),
                0,
                "a merge wrote more files than it reserved ids for",
            ));
        }
        Ok(None) => {
            out.discard();
            return Ok(None);
        }
        Err(e) => {
            out.discard();
            return Err(e);
        }
    };
    stats.files_written = run.len();
    stats.bytes_written = run.iter().map(|m| m.file_len).sum();
    // Step 4.
    let input_ids: Vec<Vec<u64>> = manifest.runs[chosen]
        .iter()
        .map(|r| r.iter().map(|m| m.file_id).collect())
        .collect();
    let mut switching = false;
    if let Err(e) = switch(core, &input_ids, run, stopped, &mut switching) {
        // Once the manifest switch began, the new manifest naming these files may be durable.
        if !switching {
            out.discard();
        }
        return Err(e);
    }
    // Step 5.
    remove_unnamed_locked(core, stopped)?;
    Ok(Some(stats))
}

/// Step 2: moves the manifest's next file id past `count` ids, under the writer lock;
/// returns the first reserved id.
fn reserve_ids(core: &Core, count: u64, stopped: &dyn Fn() -> bool) -> Result<u64> {
    with_writer_patiently(core, stopped, |core| {
        let mut manifest = crate::checkpoint::read_manifest(core)?;
        let first = manifest.next_file_id;
        manifest.next_file_id += count;
        write_manifest(core, &manifest)?;
        Ok(first)
    })
}

/// Writes a manifest of the current generation. A failure after the rename may have made it
/// the durable one; it names the same generation and the same data either way, so nothing
/// is poisoned.
pub(crate) fn write_manifest(core: &Core, manifest: &Manifest) -> Result<()> {
    let sync_dir = !core.opts().faults.skip_dir_fsync();
    manifest.write(core.storage(), core.dir(), sync_dir)
}

/// Takes the writer lock in short waits (a closing handle may hold it while it waits for
/// this thread: `stopped` gives up), then runs `f` caught up.
fn with_writer_patiently<T>(
    core: &Core,
    stopped: &dyn Fn() -> bool,
    f: impl Fn(&Core) -> Result<T>,
) -> Result<T> {
    crate::checkpoint::patiently(stopped, || {
        core.with_writer(LockWait::Timeout(Duration::from_millis(20)), |_g| {
            crate::catchup::refresh(core, true)?;
            f(core)
        })
    })
}

/// Step 4: the manifest with `run` in place of the runs `input_ids` names, then this
/// handle's version with it.
fn switch(
    core: &Core,
    input_ids: &[Vec<u64>],
    run: Vec<SegmentMeta>,
    stopped: &dyn Fn() -> bool,
    switching: &mut bool,
) -> Result<()> {
    let began = std::cell::Cell::new(false);
    let result = with_writer_patiently(core, stopped, |core| {
        let mut manifest = crate::checkpoint::read_manifest(core)?;
        let ids: Vec<Vec<u64>> = manifest
            .runs
            .iter()
            .map(|r| r.iter().map(|m| m.file_id).collect())
            .collect();
        let Some(at) = ids.windows(input_ids.len()).position(|w| w == input_ids) else {
            return Err(Error::corruption(
                core.dir().join(crate::format::MANIFEST_NAME),
                0,
                "the runs being merged left the manifest while the merge lock was held",
            ));
        };
        let replaced = at..at + input_ids.len();
        let run_slot: Vec<Vec<SegmentMeta>> = if run.is_empty() {
            vec![]
        } else {
            vec![run.clone()]
        };
        manifest.runs.splice(replaced, run_slot);
        began.set(true);
        write_manifest(core, &manifest)?;
        let base = core.current();
        if base.generation == manifest.generation {
            let runs = crate::checkpoint::map_runs(core, &manifest, &base.runs)?;
            core.replace_runs(manifest.generation, runs);
        }
        Ok(())
    });
    *switching = began.get();
    result
}

/// Step 3: the inputs' entries merged, newest run first. Returns false when stopped.
fn write_merged(
    out: &mut Output<'_>,
    inputs: &[Arc<SegmentSet>],
    bottom: bool,
    stopped: &dyn Fn() -> bool,
    between: &mut dyn FnMut(),
) -> Result<bool> {
    if !bottom {
        out.set_range_deletes(union_of_deletes(inputs));
    }
    let mut cursors: Vec<(usize, usize)> = vec![(0, 0); inputs.len()];
    let mut emitted = 0u64;
    loop {
        // The smallest head key among the inputs; the newest input wins ties.
        let mut best: Option<(usize, &[u8])> = None;
        for (i, run) in inputs.iter().enumerate() {
            let Some((key, _)) = head(run, &mut cursors[i])? else {
                continue;
            };
            if best.is_none_or(|(_, b)| key < b) {
                best = Some((i, key));
            }
        }
        let Some((winner, key)) = best else {
            return Ok(true);
        };
        let key = key.to_vec();
        let value = head(&inputs[winner], &mut cursors[winner])?.and_then(|(_, v)| v);
        let hidden = inputs[..winner].iter().any(|r| r.deletes(&key));
        if !hidden && (value.is_some() || !bottom) {
            out.add(&key, value)?;
        }
        for (i, run) in inputs.iter().enumerate() {
            if head(run, &mut cursors[i])?.is_some_and(|(k, _)| k == &key[..]) {
                cursors[i].1 += 1;
            }
        }
        emitted += 1;
        if emitted.is_multiple_of(4096) {
            if stopped() {
                return Ok(false);
            }
            between();
        }
    }
}

/// The entry at `cursor` (file, index) of `run`, moving past exhausted files.
#[allow(clippy::type_complexity)]
fn head<'r>(
    run: &'r SegmentSet,
    cursor: &mut (usize, usize),
) -> Result<Option<(&'r [u8], Option<&'r [u8]>)>> {
    while let Some(segment) = run.segments.get(cursor.0) {
        if cursor.1 < segment.len() {
            return segment.entry(cursor.1).map(Some);
        }
        *cursor = (cursor.0 + 1, 0);
    }
    Ok(None)
}

/// The union of the inputs' range deletions, sorted, overlapping ones joined.
fn union_of_deletes(inputs: &[Arc<SegmentSet>]) -> Vec<RangeDelete> {
    let mut all: Vec<RangeDelete> = inputs
        .iter()
        .flat_map(|r| r.range_deletes.iter().cloned())
        .collect();
    all.sort_by(|a, b| a.start.cmp(&b.start));
    crate::version::join_deletes(all)
}

/// [`remove_unnamed`] under the writer lock (the caller holds the merge lock).
fn remove_unnamed_locked(core: &Core, stopped: &dyn Fn() -> bool) -> Result<()> {
    with_writer_patiently(core, stopped, |core| {
        let manifest = crate::checkpoint::read_manifest(core)?;
        remove_unnamed(core, &manifest);
        Ok(())
    })
}

/// Removes snapshot files the manifest does not name, temporary files, and a stale
/// `MANIFEST.tmp`. The caller holds the merge lock and the writer lock, so no merge and no
/// checkpoint is writing files the manifest does not name yet. Failures are harmless (the
/// files are removed next time) and ignored.
pub(crate) fn remove_unnamed(core: &Core, manifest: &Manifest) {
    let storage = core.storage();
    let dir = core.dir();
    let Ok(names) = storage.list_dir(dir) else {
        return;
    };
    let live: HashSet<String> = manifest.files().map(|m| snapshot_name(m.file_id)).collect();
    let orphans: Vec<String> = names
        .into_iter()
        .filter(|name| {
            name == MANIFEST_TMP_NAME
                || (parse_snapshot_name(name).is_some() && !live.contains(name))
        })
        .collect();
    // The manifest that stopped naming them must be durable before they go: its rename's
    // directory fsync may have failed (a merge's switch does not poison).
    if orphans.is_empty() || storage.sync_dir(dir).is_err() {
        return;
    }
    for name in orphans {
        let _ = storage.remove_file(&dir.join(&name));
    }
}
