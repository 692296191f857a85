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
        }
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
        let hit = self
            .layers
            .iter()
            .rev()
            .find_map(|layer| layer.get(key))
            .or_else(|| self.mem.get(key));
        match hit {
            Some(Some(v)) => Ok(Some(Value::heap(Arc::clone(v)))),
            Some(None) => Ok(None),
            None if covered(&self.mem_deletes, key) => Ok(None),
            None => self.get_from_runs(key),
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

    /// Keys changed since the snapshot (counting a key once per layer it is in).
    pub fn changed_keys(&self) -> usize {
        self.mem.len() + self.layers.iter().map(|l| l.len()).sum::<usize>()
    }
}
