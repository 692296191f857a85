//! A [`Version`]: one immutable, consistent state of the store, as readers see it.
//!
//! A version is the sorted runs of a generation (each a list of memory-mapped snapshot files,
//! shared between versions, newest run first) plus a persistent ordered map of every write
//! committed to the WAL since (the memtable, structurally shared between versions, so
//! publishing a new version costs O(log n)). A key's value is the newest one found: the
//! memtable, then each run in turn; a run's tombstone or range deletion ends the search.
//! Readers hold an `Arc<Version>` and are never affected by later commits or checkpoints.

mod iter;

pub use iter::{prefix_range, Iter, KeyRange};

use crate::deletes::{add_deletes, covered, delete_bounds};
use crate::error::Result;
use crate::logindex::{masks_of, Cursor, LogIndex, StampedDelete};
use crate::run::{Lookup, SegmentSet};
use crate::snapshot::{KeyHash, RangeDelete};
use crate::value::{Bytes, Value};
use crate::wal::{LogPosition, WAL_HEADER_BYTES};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Writes committed to the WAL since the snapshot: `None` is a deletion.
pub type Memtable = imbl::OrdMap<Bytes, Option<Bytes>>;
/// One consistent state of the store.
#[derive(Debug, Clone)]
pub struct Version {
    /// Checkpoint generation (matches the manifest and the WAL header).
    pub generation: u64,
    /// Salt of this generation's WAL records.
    pub salt: u64,
    /// Last transaction folded into the snapshot files.
    pub base_txn: u64,
    /// Last committed transaction this version includes.
    pub last_txn: u64,
    /// WAL offset just past `last_txn`'s commit record.
    pub wal_end: u64,
    /// Largest durable watermark known for this generation.
    pub synced_through: u64,
    /// WAL offset just past the last transaction that wrote something (empty transactions,
    /// the close markers, do not move it). Log bytes up to `data_end` that no watermark
    /// covers are the *unproven tail* a read-write open must make durable (RECOVERY.md S1).
    pub data_end: u64,
    /// The sorted runs, newest first.
    pub runs: Vec<Arc<SegmentSet>>,
    /// Writes since the snapshot, folded into one persistent map.
    pub mem: Memtable,
    /// Range deletions committed since the snapshot (sorted, disjoint): they delete keys of
    /// the runs; the memtable holds no key they cover unless it was written after them.
    pub mem_deletes: Arc<Vec<RangeDelete>>,
    /// Writes of the most recent transactions, newest last, not yet folded into `mem`. A
    /// commit adds its write set as a layer without copying anything; every
    /// [`MAX_LAYERS`] commits the layers are folded into `mem` at once, so the persistent
    /// map's path copying is paid once per fold rather than once per commit.
    pub layers: Vec<Arc<Layer>>,
    /// The log index's view of the log before the memtable's writes (FORMAT.md §9): the
    /// shared memtable. `mem`, `mem_deletes` and `layers` hold only what the log holds past
    /// its limit (nothing, when the index keeps up).
    pub shared: Option<SharedView>,
}

/// A view of the log index: the writes of the log up to `limit`.
#[derive(Debug, Clone)]
pub struct SharedView {
    pub(crate) index: Arc<LogIndex>,
    /// Log offset: entries stamped up to here are seen.
    pub limit: u64,
    /// The range deletions seen, oldest first.
    pub(crate) deletes: Arc<Vec<StampedDelete>>,
    /// The same ranges, sorted and disjoint: what they hide in the runs.
    pub(crate) masks: Arc<Vec<RangeDelete>>,
}

impl SharedView {
    /// The view of `index` at `limit`; `previous` (a view of the same index) lends its range
    /// deletions when no new one was added.
    pub(crate) fn at(
        index: &Arc<LogIndex>,
        limit: u64,
        previous: Option<&SharedView>,
    ) -> Result<SharedView> {
        let deletes = index.deletes_at(limit).map_err(|_| damaged(index))?;
        if let Some(p) = previous {
            if Arc::ptr_eq(&p.index, index) && p.deletes.len() == deletes.len() {
                return Ok(SharedView {
                    index: Arc::clone(index),
                    limit,
                    deletes: Arc::clone(&p.deletes),
                    masks: Arc::clone(&p.masks),
                });
            }
        }
        Ok(SharedView {
            index: Arc::clone(index),
            limit,
            masks: Arc::new(masks_of(&deletes)),
            deletes: Arc::new(deletes),
        })
    }

    /// What the view says about `key`.
    /// `ranges`: whether its range deletions count (`false` only for the broken variant
    /// `get_ignores_range_deletes`).
    fn lookup(&self, key: &[u8], ranges: bool) -> Result<Lookup> {
        let entry = self
            .index
            .lookup(key, self.limit)
            .map_err(|_| damaged(&self.index))?;
        let deleted_at = self
            .deletes
            .iter()
            .rev()
            .filter(|_| ranges)
            .find(|d| d.range.covers(key))
            .map(|d| d.stamp);
        // A transaction's writes come after its range deletions: an equal stamp keeps the
        // write.
        let live = entry.filter(|e| deleted_at.is_none_or(|d| e.stamp >= d));
        Ok(match (live, deleted_at) {
            (Some(e), _) => match e.value {
                Some((start, end)) => Lookup::Found(Value::in_log_index(&self.index, start, end)),
                None => Lookup::Deleted,
            },
            (None, Some(_)) => Lookup::Deleted,
            (None, None) => Lookup::Missing,
        })
    }
}

/// The error for a damaged log index (it is rebuilt by the next handle that opens the store
/// alone; nothing durable is lost).
pub(crate) fn damaged(_index: &LogIndex) -> crate::error::Error {
    crate::error::Error::corruption(
        std::path::Path::new(crate::format::LOG_INDEX_NAME),
        0,
        "the log index (shared memory) is damaged; reopen the store after every process closed it",
    )
}

/// One transaction's writes.
pub type Layer = BTreeMap<Bytes, Option<Bytes>>;

/// How many unfolded layers a version keeps at most.
pub const MAX_LAYERS: usize = 8;

impl Version {
    /// The state at the start of a generation, before any of its log: its runs only.
    pub fn start_of(generation: u64, salt: u64, base_txn: u64, runs: Vec<Arc<SegmentSet>>) -> Self {
        Version {
            generation,
            salt,
            base_txn,
            last_txn: base_txn,
            wal_end: WAL_HEADER_BYTES,
            synced_through: 0,
            data_end: WAL_HEADER_BYTES,
            runs,
            mem: Memtable::default(),
            mem_deletes: Arc::default(),
            layers: Vec::new(),
            shared: None,
        }
    }

    /// Whether the memtable of this handle's own holds nothing (everything of the log is in
    /// the shared view, or there is no log).
    pub fn private_is_empty(&self) -> bool {
        self.mem.is_empty() && self.layers.is_empty() && self.mem_deletes.is_empty()
    }

    /// Drops the memtable of this handle's own and reads everything of the log up to
    /// `wal_end` through `view` instead.
    pub(crate) fn share(&mut self, view: SharedView) {
        self.mem = Memtable::default();
        self.mem_deletes = Arc::default();
        self.layers.clear();
        self.shared = Some(view);
    }

    /// Where this version ends in the log.
    pub(crate) fn position(&self) -> LogPosition {
        LogPosition::new(self.generation, self.wal_end)
    }

    /// The WAL offset up to which commit records' watermarks prove the log durable.
    pub fn proven_end(&self) -> u64 {
        self.synced_through.max(WAL_HEADER_BYTES)
    }

    /// Whether log bytes that hold data lie past [`Version::proven_end`] (the *unproven tail*
    /// of RECOVERY.md S1).
    pub fn has_unproven_data(&self) -> bool {
        self.data_end > self.proven_end()
    }

    /// Whether the log ends with clean markers after all of its data, every byte of which a
    /// watermark proves durable: the last handle closed cleanly (FORMAT.md §4.3).
    pub fn closed_cleanly(&self) -> bool {
        self.wal_end > self.data_end && !self.has_unproven_data()
    }

    /// Reads `key`.
    pub fn get(&self, key: &[u8]) -> Result<Option<Value>> {
        // The broken variant rides on the runs, whose values it brings back.
        let ranges = !(self.runs.iter()).any(|r| r.faults.get_ignores_range_deletes());
        let hit = self
            .layers
            .iter()
            .rev()
            .find_map(|layer| layer.get(key))
            .or_else(|| self.mem.get(key));
        match hit {
            Some(Some(v)) => Ok(Some(Value::heap(Arc::clone(v)))),
            Some(None) => Ok(None),
            None if ranges && covered(&self.mem_deletes, key) => Ok(None),
            None => match &self.shared {
                None => self.get_from_runs(key),
                Some(view) => match view.lookup(key, ranges)? {
                    Lookup::Found(v) => Ok(Some(v)),
                    Lookup::Deleted => Ok(None),
                    Lookup::Missing => self.get_from_runs(key),
                },
            },
        }
    }

    /// Reads `key` from the runs only, newest first.
    pub fn get_from_runs(&self, key: &[u8]) -> Result<Option<Value>> {
        let hash = KeyHash::of(key);
        for run in &self.runs {
            match run.lookup(key, hash)? {
                Lookup::Found(v) => return Ok(Some(v)),
                Lookup::Deleted => return Ok(None),
                Lookup::Missing => {}
            }
        }
        Ok(None)
    }

    /// Applies one committed transaction's writes as a new layer.
    pub fn push_layer(&mut self, layer: Layer) {
        self.layers.push(Arc::new(layer));
        if self.layers.len() >= MAX_LAYERS {
            self.fold_layers();
        }
    }

    /// Applies a transaction's range deletions: keys of the memtable they cover are dropped
    /// (they were written before), and the ranges hide the runs' keys.
    pub fn apply_range_deletes(&mut self, deletes: &[RangeDelete]) {
        if deletes.is_empty() {
            return;
        }
        self.fold_layers();
        for d in deletes {
            let doomed: Vec<Bytes> = self
                .mem
                .range::<_, [u8]>(delete_bounds(d))
                .map(|(k, _)| Arc::clone(k))
                .collect();
            for k in doomed {
                self.mem.remove(&k[..]);
            }
        }
        self.mem_deletes = Arc::new(add_deletes(&self.mem_deletes, deletes));
    }

    /// Applies one committed transaction read from the log, which ends at `end`, to the
    /// memtable of this version's own: its range deletions, then its writes.
    pub(crate) fn apply_txn(
        &mut self,
        deletes: &[RangeDelete],
        writes: Vec<(Bytes, Option<Bytes>)>,
        txn_id: u64,
        end: u64,
    ) {
        if !writes.is_empty() || !deletes.is_empty() {
            self.data_end = end;
        }
        self.apply_range_deletes(deletes);
        self.apply(writes);
        self.last_txn = txn_id;
        self.wal_end = end;
    }

    /// Applies writes (in order) straight to the folded map.
    pub fn apply(&mut self, writes: impl IntoIterator<Item = (Bytes, Option<Bytes>)>) {
        self.fold_layers();
        for (k, v) in writes {
            self.mem.insert(k, v);
        }
    }

    /// Folds every layer into `mem`, oldest first.
    pub fn fold_layers(&mut self) {
        for layer in std::mem::take(&mut self.layers) {
            match Arc::try_unwrap(layer) {
                Ok(owned) => owned.into_iter().for_each(|(k, v)| {
                    self.mem.insert(k, v);
                }),
                Err(shared) => shared.iter().for_each(|(k, v)| {
                    self.mem.insert(Arc::clone(k), v.clone());
                }),
            }
        }
    }

    /// The log's contents in key order, for a checkpoint's run (`None`: a tombstone), and
    /// its range deletions: the memtable over the shared view. Layers must be folded.
    #[allow(clippy::type_complexity)]
    pub(crate) fn log_contents(&self) -> Result<(Vec<(&[u8], Option<&[u8]>)>, Vec<RangeDelete>)> {
        debug_assert!(self.layers.is_empty());
        let Some(view) = &self.shared else {
            let entries = self
                .mem
                .iter()
                .map(|(k, v)| (&k[..], v.as_deref()))
                .collect();
            return Ok((entries, self.mem_deletes.to_vec()));
        };
        let bytes = view.index.bytes();
        let cursor = Cursor::new(
            &view.index,
            view.limit,
            &view.deletes,
            (std::ops::Bound::Unbounded, std::ops::Bound::Unbounded),
            false,
        );
        let mut shared: Vec<(&[u8], Option<&[u8]>)> = Vec::new();
        for item in cursor {
            let (key, value) = item.map_err(|_| damaged(&view.index))?;
            // A range deletion of the memtable is newer than everything in the view.
            if covered(&self.mem_deletes, key) {
                continue;
            }
            let value = match value {
                Some((s, e)) => Some(bytes.bytes(s, e - s).ok_or_else(|| damaged(&view.index))?),
                None => None,
            };
            shared.push((key, value));
        }
        let mut out = Vec::with_capacity(shared.len() + self.mem.len());
        let mut own = self
            .mem
            .iter()
            .map(|(k, v)| (&k[..], v.as_deref()))
            .peekable();
        for (key, value) in shared {
            while let Some(&(k, v)) = own.peek() {
                if k > key {
                    break;
                }
                out.push((k, v));
                own.next();
            }
            if out.last().is_none_or(|(k, _)| *k != key) {
                out.push((key, value));
            }
        }
        out.extend(own);
        Ok((out, add_deletes(&view.masks, &self.mem_deletes)))
    }

    /// Keys changed since the snapshot (counting a key once per layer it is in).
    pub fn changed_keys(&self) -> usize {
        self.mem.len() + self.layers.iter().map(|l| l.len()).sum::<usize>()
    }
}
