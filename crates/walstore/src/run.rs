//! [`SegmentSet`]: one sorted run, its snapshot files in key order and the range deletions
//! it carries, and what it says about a key. The set of runs has its owner in `runs/`.

use crate::deletes::covered;
use crate::error::Result;
use crate::snapshot::{key_prefix, KeyHash, RangeDelete, Segment, SegmentMeta};
use crate::value::Value;
use std::cmp::Ordering;
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
    /// The key prefix (`key_prefix`) of each file's first key, in `metas` order: `locate`
    /// compares these (one cache line, no call) and a first key only when prefixes tie.
    first_prefixes: Vec<u64>,
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
        let target = key_prefix(key);
        // The first file whose first key is above `key` (a plain binary search).
        let (mut lo, mut hi) = (0, self.metas.len());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let at_or_below = match self.first_prefixes.get(mid).map(|p| p.cmp(&target)) {
                Some(Ordering::Less) => true,
                Some(Ordering::Greater) => false,
                _ => &self.metas[mid].first_key[..] <= key,
            };
            if at_or_below {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        Some(lo.saturating_sub(1))
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
        let first_prefixes = metas.iter().map(|m| key_prefix(&m.first_key)).collect();
        SegmentSet {
            segments,
            metas,
            range_deletes,
            faults,
            first_prefixes,
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
            if segment.worth_searching(hash)? {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// `locate` through first-key prefixes answers as a search of the first keys does,
    /// also for first keys that share their first 8 bytes, short keys and keys below all.
    #[test]
    fn locate_matches_a_search_of_the_first_keys() {
        let firsts: Vec<&[u8]> = vec![
            b"b",
            b"b\x00",
            b"bbbbbbbb",
            b"bbbbbbbb\x00",
            b"bbbbbbbbaa",
            b"bbbbbbbbab",
            b"bbbbbbbc",
            b"k",
            b"zzzzzzzzzzzz",
        ];
        let metas: Vec<SegmentMeta> = firsts
            .iter()
            .enumerate()
            .map(|(i, k)| SegmentMeta {
                file_id: i as u64 + 1,
                file_len: 0,
                entry_count: 1,
                first_key: Arc::from(*k),
            })
            .collect();
        let set = SegmentSet::new(Vec::new(), metas, crate::faults::EngineFaults::default());
        let mut keys: Vec<Vec<u8>> = vec![b"a".to_vec(), b"\x00".to_vec(), vec![0xff; 20]];
        for k in &firsts {
            let mut k = k.to_vec();
            keys.push(k.clone());
            k.push(0);
            keys.push(k.clone());
            k.pop();
            let last = k.last_mut().expect("not empty");
            *last = last.wrapping_sub(1);
            keys.push(k);
        }
        for key in &keys {
            let model = firsts.partition_point(|f| *f <= &key[..]).saturating_sub(1);
            assert_eq!(set.locate(key), Some(model), "{key:?}");
        }
        assert_eq!(SegmentSet::default().locate(b"k"), None);
    }
}
