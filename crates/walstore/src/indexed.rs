//! Versions read through the log index (`logindex/`, FORMAT.md §9): which index a handle
//! uses, what is added to it (a commit, the transactions a catch-up or a load read from the
//! log), and versions taken from it instead of from the log.
//!
//! Which index a handle uses is `Core::log_index_for`'s.
//!
//! Invariant: only a holder of the writer lock, or a handle that opened the store alone
//! (`Core::is_building_alone`), adds to an index or creates one.
//! Invariant: a version's shared view and its own memtable never overlap: the view covers
//! the log up to its limit, the memtable what the version read past it.

use crate::error::Result;
use crate::logindex::{BulkTxn, CommitNode, LogIndex};
use crate::snapshot::RangeDelete;
use crate::value::Bytes;
use crate::version::{SharedView, Version};
use crate::wal::scan::ScannedTxn;
use crate::wal::WAL_HEADER_BYTES;
use std::collections::BTreeMap;
use std::sync::Arc;

/// The index a commit after `base`, which reads through none, adds to: the generation's, if
/// the commit index names one; else a new one when nothing before `base.wal_end` holds data
/// (the generation's first commit, or the first after clean markers: an open that found no
/// data made no index, `load.rs`). The data-less start is then covered by one empty commit
/// node, so versions at `base.wal_end` read through the index. `index_of(build)` is the
/// generation's index (`Core::log_index_for`: a new one with `build`). Called under the
/// writer lock.
pub(crate) fn index_for_commit(
    base: &Version,
    index_of: impl FnOnce(bool) -> Option<Arc<LogIndex>>,
) -> Option<Arc<LogIndex>> {
    let dataless = base.private_is_empty() && base.data_end == WAL_HEADER_BYTES;
    let ix = index_of(dataless)?;
    if dataless && base.wal_end > WAL_HEADER_BYTES && ix.covered() == WAL_HEADER_BYTES {
        let markers = CommitNode {
            end: base.wal_end,
            txn: base.last_txn,
            synced_through: base.synced_through,
            data_end: base.data_end,
            prev: 0,
        };
        // Refused only by a full or sealed index: the commit then stays in the version's
        // own memtable (`add_commit` finds the coverage short of `base.wal_end`).
        let _ = ix.add_txn(WAL_HEADER_BYTES, markers, &[], std::iter::empty());
    }
    Some(ix)
}

/// Adds a commit the writer just appended after `base` to `ix` (the index `base` reads
/// through, or the generation's); the view the new version reads through, when the index
/// covers it (else the caller keeps the writes in the version's own memtable).
pub(crate) fn add_commit(
    ix: Option<Arc<LogIndex>>,
    base: &Version,
    mut commit: CommitNode,
    writes: &BTreeMap<Bytes, Option<Bytes>>,
    deletes: &[RangeDelete],
) -> Result<Option<SharedView>> {
    if !base.private_is_empty() {
        return Ok(None);
    }
    let Some(ix) = ix else {
        return Ok(None);
    };
    if ix.covered() != base.wal_end {
        return Ok(None);
    }
    if let Ok(Some(prev)) = ix.commit_at(base.wal_end) {
        commit.synced_through = commit.synced_through.max(prev.synced_through);
    }
    let entries = writes.iter().map(|(k, v)| (&k[..], v.as_deref()));
    if !ix.add_txn(base.wal_end, commit, deletes, entries) {
        return Ok(None);
    }
    let previous = base.shared.as_ref();
    SharedView::at(&ix, commit.end, previous.filter(|_| deletes.is_empty())).map(Some)
}

/// Adds transactions read from the log, which start at `start`, to `ix` (one after another,
/// or all at once into an empty index); `before`: the version they follow. Returns whether
/// the index covers them all now.
pub(crate) fn add_scanned(
    ix: &LogIndex,
    before: &Version,
    start: u64,
    txns: &[ScannedTxn],
) -> bool {
    if ix.covered() != start {
        return false;
    }
    let mut synced = before.synced_through;
    let mut data_end = before.data_end;
    if let Ok(Some(prev)) = ix.commit_at(start) {
        synced = synced.max(prev.synced_through);
        data_end = data_end.max(prev.data_end);
    }
    // Each commit node carries what a scan of the log up to it would say.
    let bulk: Vec<BulkTxn<'_>> = txns
        .iter()
        .map(|t| {
            synced = synced.max(t.watermark);
            if !t.writes.is_empty() || !t.deletes.is_empty() {
                data_end = t.end;
            }
            BulkTxn {
                commit: CommitNode {
                    end: t.end,
                    txn: t.txn_id,
                    synced_through: synced,
                    data_end,
                    prev: 0,
                },
                deletes: &t.deletes,
                writes: &t.writes,
            }
        })
        .collect();
    if ix.is_empty_list() && bulk.len() > 1 {
        return ix.add_bulk(start, &bulk);
    }
    let mut at = start;
    for t in &bulk {
        let entries = t.writes.iter().map(|(k, v)| (&k[..], v.as_deref()));
        if !ix.add_txn(at, t.commit, t.deletes, entries) {
            return false;
        }
        at = t.commit.end;
    }
    true
}

/// The version of `like`'s generation at log offset `at`, read through the index (no log
/// read): `None` when the index does not cover `at` or has no commit ending there.
pub(crate) fn version_at(ix: &Arc<LogIndex>, like: &Version, at: u64) -> Result<Option<Version>> {
    if ix.covered() < at || !ix.describes(like.generation, like.salt) {
        return Ok(None);
    }
    let mut v = Version::start_of(like.generation, like.salt, like.base_txn, like.runs.clone());
    if at > WAL_HEADER_BYTES {
        let Ok(Some(commit)) = ix.commit_at(at) else {
            return Ok(None);
        };
        v.last_txn = commit.txn;
        v.wal_end = at;
        v.synced_through = commit.synced_through;
        v.data_end = commit.data_end;
    }
    let previous = like.shared.as_ref().filter(|p| Arc::ptr_eq(&p.index, ix));
    v.share(SharedView::at(ix, at, previous)?);
    Ok(Some(v))
}

/// `next` (read from the log up to its end) read through the index instead, when the index
/// covers that far.
pub(crate) fn prefer_index(ix: Option<Arc<LogIndex>>, next: Version) -> Result<Version> {
    let Some(ix) = ix else {
        return Ok(next);
    };
    if ix.covered() < next.wal_end || !ix.describes(next.generation, next.salt) {
        return Ok(next);
    }
    match version_at(&ix, &next, next.wal_end)? {
        Some(mut v) => {
            v.synced_through = v.synced_through.max(next.synced_through);
            v.data_end = next.data_end;
            Ok(v)
        }
        None => Ok(next),
    }
}

/// Adds the clean marker that ends `next` (appended after `before`) to the index, and reads
/// `next` through it when the index covered `before`.
pub(crate) fn add_marker(next: &mut Version, before: &Version) {
    let Some(view) = &before.shared else {
        return;
    };
    if !before.private_is_empty() || view.limit != before.wal_end {
        return;
    }
    let ix = &view.index;
    let commit = CommitNode {
        end: next.wal_end,
        txn: next.last_txn,
        synced_through: next.synced_through,
        data_end: next.data_end,
        prev: 0,
    };
    if !ix.add_txn(before.wal_end, commit, &[], std::iter::empty()) {
        return;
    }
    if let Ok(view) = SharedView::at(ix, next.wal_end, Some(view)) {
        next.share(view);
    }
}
