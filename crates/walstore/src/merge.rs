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

use crate::core::{Access, Core, MergeGuard, WriterGuard};
use crate::error::{Error, Result};
use crate::manifest::Manifest;
use crate::output::Output;
use crate::run::SegmentSet;
use crate::runs::{self, file_ids, RunEdit};
use crate::snapshot::{RangeDelete, SegmentMeta};
use std::ops::Range;
use std::sync::Arc;

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
    let Some(merging) = core.try_merge_lock()? else {
        return Ok(Vec::new());
    };
    run_holding(core, &merging, all, stopped, &mut || {})
}

/// [`run`] by the holder of the merge lock; `between` is called every few thousand entries
/// (the worker checkpoints there when asked).
pub(crate) fn run_holding(
    core: &Core,
    merging: &MergeGuard<'_>,
    all: bool,
    stopped: &dyn Fn() -> bool,
    between: &mut dyn FnMut(),
) -> Result<Vec<MergeStats>> {
    let mut done = Vec::new();
    loop {
        let manifest = runs::read_merging(core, merging)?;
        let sizes: Vec<u64> = manifest
            .runs
            .iter()
            .map(|r| r.iter().map(|m| m.file_len).sum())
            .collect();
        let chosen = if all {
            (!sizes.is_empty() && done.is_empty()).then_some(0..sizes.len())
        } else {
            pick(&sizes, core.opts().tier_base_bytes())
        };
        let Some(chosen) = chosen else {
            remove_orphans(core, merging, stopped)?;
            return Ok(done);
        };
        match merge(core, merging, &manifest, chosen, stopped, between)? {
            Some(stats) => done.push(stats),
            None => return Ok(done),
        }
    }
}

/// Merges `chosen` runs of `manifest`; `None` when stopped before the switch.
fn merge(
    core: &Core,
    merging: &MergeGuard<'_>,
    manifest: &Manifest,
    chosen: Range<usize>,
    stopped: &dyn Fn() -> bool,
    between: &mut dyn FnMut(),
) -> Result<Option<MergeStats>> {
    let chosen_only = Manifest {
        runs: manifest.runs[chosen.clone()].to_vec(),
        ..manifest.clone()
    };
    // The merge lock keeps every file of the manifest in place: a final verdict.
    let access = Access::Merger(merging);
    let inputs = runs::map(core, &chosen_only, &core.current().runs, access)?
        .ok_or_else(|| Error::corruption(core.dir(), 0, "a run being merged lost a file"))?;
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
    let Some(run) = write_output(&mut out, &inputs, bottom, reserve, stopped, between)? else {
        return Ok(None);
    };
    stats.files_written = run.len();
    stats.bytes_written = run.iter().map(|m| m.file_len).sum();
    // Step 4.
    let edit = RunEdit::Replace {
        inputs: manifest.runs[chosen].iter().map(|r| file_ids(r)).collect(),
        output: run,
    };
    let mut switching = false;
    if let Err(e) = switch(core, &edit, stopped, &mut switching) {
        // Once the manifest switch began, the new manifest naming these files may be durable.
        if !switching {
            out.discard();
        }
        return Err(e);
    }
    // Step 5.
    remove_orphans(core, merging, stopped)?;
    Ok(Some(stats))
}

/// Step 3: the merged run written into `out` (ids from its first on, at most `reserve` of
/// them); `None` when stopped. Whatever was written is removed unless it is returned.
fn write_output(
    out: &mut Output<'_>,
    inputs: &[Arc<SegmentSet>],
    bottom: bool,
    reserve: u64,
    stopped: &dyn Fn() -> bool,
    between: &mut dyn FnMut(),
) -> Result<Option<Vec<SegmentMeta>>> {
    let first_id = out.next_id;
    let written =
        write_merged(out, inputs, bottom, stopped, between).and_then(|finished| match finished {
            true => out.publish_files().map(Some),
            false => Ok(None),
        });
    match written {
        Ok(Some(run)) if out.next_id - first_id <= reserve => Ok(Some(run)),
        Ok(Some(_)) => {
            out.discard();
            Err(Error::corruption(
                out.dir(),
                0,
                "a merge wrote more files than it reserved ids for",
            ))
        }
        // Stopped, or failed.
        other => {
            out.discard();
            other
        }
    }
}

/// Step 2: moves the manifest's next file id past `count` ids, under the writer lock;
/// returns the first reserved id. A failed write poisons nothing: the manifest names the
/// same generation and the same data either way.
fn reserve_ids(core: &Core, count: u64, stopped: &dyn Fn() -> bool) -> Result<u64> {
    caught_up(core, stopped, |g| {
        let manifest = runs::read_locked(core, g)?;
        runs::apply(core, g, &manifest, &RunEdit::ReserveIds { count })?;
        Ok(manifest.next_file_id)
    })
}

/// Takes the writer lock in short waits (a closing handle may hold it while it waits for
/// this thread: `stopped` gives up), catches up, then runs `f`.
fn caught_up<T>(
    core: &Core,
    stopped: &dyn Fn() -> bool,
    mut f: impl FnMut(&WriterGuard) -> Result<T>,
) -> Result<T> {
    core.with_writer_patiently(stopped, |g| {
        crate::catchup::head(core, g)?;
        f(g)
    })
}

/// Step 4: the manifest with the merged run in place of its inputs, then this handle's
/// versions with it.
fn switch(
    core: &Core,
    edit: &RunEdit,
    stopped: &dyn Fn() -> bool,
    switching: &mut bool,
) -> Result<()> {
    caught_up(core, stopped, |g| {
        let current = runs::read_locked(core, g)?;
        *switching = true;
        let manifest = runs::apply(core, g, &current, edit)?;
        let base = core.current();
        if base.generation == manifest.generation {
            let mapped = runs::map_locked(core, g, &manifest, &base.runs)?;
            core.replace_runs(manifest.generation, &mapped);
        }
        Ok(())
    })
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
    crate::deletes::join_deletes(all)
}

/// Removes the files no manifest names, under the writer lock (the caller holds the merge
/// lock): a merge's inputs after its switch, and what interrupted work left.
fn remove_orphans(core: &Core, merging: &MergeGuard<'_>, stopped: &dyn Fn() -> bool) -> Result<()> {
    caught_up(core, stopped, |g| {
        runs::remove_orphans(core, g, merging);
        Ok(())
    })
}
