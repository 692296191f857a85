//! [`SegmentSet`]: one sorted run, its snapshot files in key order and the range deletions
//! it carries, and what it says about a key. The set of runs has its owner in `runs/`.

use crate::deletes::covered;
use crate::error::Result;
use crate::snapshot::{KeyHash, RangeDelete, Segment, SegmentMeta};
use crate::value::Value;
use std::collections::HashMap;
use std::sync::Arc;

/// One sorted run: its snapshot files in key order, and the range deletions it carries
/// (which delete keys of older runs only).
#[derive(Debug, Default)]
pub struct SegmentSet {
    pub segments: Vec<Arc<Segment>>,
    pub metas: Vec<SegmentMeta>,
    /// Every file's range deletions, in key order.
    pub range_deletes: Vec<RangeDelete>,
    /// The broken variants that change how a run is read (`EngineFaults`: all off outside
    /// the crash harness's tests).
    pub faults: crate::faults::EngineFaults,
}

/// What one run says about a key.
#[derive(Debug)]
pub enum Lookup {
    /// The run holds a value.
    Found(Value),
    /// The run deletes the key (a tombstone, or one of its range deletions covers it).
    Deleted,
    /// The run says nothing: older runs decide.
    Missing,
}

impl SegmentSet {
    /// Index of the file whose range holds `key`: the last one whose first key is `<= key`,
    /// or the first file for keys below every first key.
    pub fn locate(&self, key: &[u8]) -> Option<usize> {
        if self.metas.is_empty() {
            return None;
        }
        let after = self.metas.partition_point(|m| &m.first_key[..] <= key);
        Some(after.saturating_sub(1))
    }

    /// Builds a run from its mapped files (in key order) and their metadata.
    pub fn new(
        segments: Vec<Arc<Segment>>,
        metas: Vec<SegmentMeta>,
        faults: crate::faults::EngineFaults,
    ) -> Self {
        let range_deletes = segments
            .iter()
            .flat_map(|s| s.range_deletes().iter().cloned())
            .collect();
        SegmentSet {
            segments,
            metas,
            range_deletes,
            faults,
        }
    }

    /// Whether one of this run's range deletions covers `key`.
    pub fn deletes(&self, key: &[u8]) -> bool {
        covered(&self.range_deletes, key)
    }

    /// What this run says about `key`, whose filter hash is `hash` (computed once by the
    /// caller for every run it asks).
    pub fn lookup(&self, key: &[u8], hash: KeyHash) -> Result<Lookup> {
        if let Some(i) = self.locate(key) {
            let segment = &self.segments[i];
            if segment.may_contain_hashed(hash)? {
                if let Some(value) = segment.get(key)? {
                    return Ok(match Value::in_segment(segment, value) {
                        Some(v) => Lookup::Found(v),
                        None => Lookup::Deleted,
                    });
                }
            }
        }
        Ok(if self.deletes(key) {
            Lookup::Deleted
        } else {
            Lookup::Missing
        })
    }

    /// Total bytes of the run's files.
    pub fn bytes(&self) -> u64 {
        self.metas.iter().map(|m| m.file_len).sum()
    }
}
/// The files `runs` map, by file id: what a reload or a switch reuses instead of mapping again.
pub fn mapped_files(runs: &[Arc<SegmentSet>]) -> HashMap<u64, &Arc<Segment>> {
    runs.iter()
        .flat_map(|run| run.segments.iter().map(|s| (s.id(), s)))
        .collect()
}
