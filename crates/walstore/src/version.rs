//! A [`Version`]: one immutable, consistent state of the store, as readers see it.
//!
//! A version is the snapshot files of a generation (memory-mapped, shared between versions)
//! plus a persistent ordered map of every write committed to the WAL since (the memtable,
//! structurally shared between versions, so publishing a new version costs O(log n)).
//! Readers hold an `Arc<Version>` and are never affected by later commits or checkpoints.

use crate::error::Result;
use crate::snapshot::{Segment, SegmentMeta};
use std::collections::BTreeMap;
use std::fmt;
use std::ops::{Bound, Deref};
use std::sync::Arc;

/// A key or value as held in memory.
pub type Bytes = Arc<[u8]>;
/// Writes committed to the WAL since the snapshot: `None` is a deletion.
pub type Memtable = imbl::OrdMap<Bytes, Option<Bytes>>;

/// A value read from the store. Cheap to clone; dereferences to its bytes. Values stored in
/// snapshot files are served straight from the memory map, without a copy.
#[derive(Clone)]
pub struct Value(ValueRepr);

#[derive(Clone)]
enum ValueRepr {
    Heap(Bytes),
    Mapped {
        segment: Arc<Segment>,
        start: usize,
        end: usize,
    },
}

impl Value {
    pub(crate) fn heap(bytes: Bytes) -> Value {
        Value(ValueRepr::Heap(bytes))
    }

    fn mapped(segment: &Arc<Segment>, index: usize) -> Result<Value> {
        let (start, end) = segment.value_range(index)?;
        Ok(Value(ValueRepr::Mapped {
            segment: Arc::clone(segment),
            start,
            end,
        }))
    }

    /// The value's bytes, copied.
    pub fn to_vec(&self) -> Vec<u8> {
        self.deref().to_vec()
    }
}

impl Deref for Value {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match &self.0 {
            ValueRepr::Heap(b) => b,
            ValueRepr::Mapped {
                segment,
                start,
                end,
            } => segment.bytes().get(*start..*end).unwrap_or_default(),
        }
    }
}

impl AsRef<[u8]> for Value {
    fn as_ref(&self) -> &[u8] {
        self
    }
}

impl PartialEq for Value {
    fn eq(&self, other: &Self) -> bool {
        self.deref() == other.deref()
    }
}

impl Eq for Value {}

impl PartialEq<[u8]> for Value {
    fn eq(&self, other: &[u8]) -> bool {
        self.deref() == other
    }
}

impl fmt::Debug for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match std::str::from_utf8(self) {
            Ok(s) if s.len() <= 64 => write!(f, "Value({s:?})"),
            _ => write!(f, "Value({} bytes)", self.len()),
        }
    }
}

/// The snapshot files of one generation, in key order.
#[derive(Debug, Default)]
pub struct SegmentSet {
    pub segments: Vec<Arc<Segment>>,
    pub metas: Vec<SegmentMeta>,
    /// The broken variant `EngineFaults::range_seek_one_entry_early` (always false outside
    /// the crash harness's tests).
    pub seek_one_entry_early: bool,
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

    fn get(&self, key: &[u8]) -> Result<Option<Value>> {
        let Some(i) = self.locate(key) else {
            return Ok(None);
        };
        let segment = &self.segments[i];
        match segment.find(key)? {
            Some(index) => Value::mapped(segment, index).map(Some),
            None => Ok(None),
        }
    }
}

/// One consistent state of the store.
#[derive(Debug, Clone)]
pub struct Version {
    /// Checkpoint generation (matches the manifest and the WAL header).
    pub generation: u64,
    /// Salt of this generation's WAL records.
    pub salt: u64,
    /// Last transaction folded into the snapshot files.
    pub base_txn: u64,
    /// Next snapshot file id.
    pub next_file_id: u64,
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
    /// The snapshot files.
    pub segments: Arc<SegmentSet>,
    /// Writes since the snapshot, folded into one persistent map.
    pub mem: Memtable,
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
    /// The WAL offset up to which commit records' watermarks prove the log durable.
    pub fn proven_end(&self) -> u64 {
        self.synced_through.max(crate::wal::WAL_HEADER_BYTES)
    }

    /// Whether log bytes that hold data lie past [`Version::proven_end`] (the *unproven tail*
    /// of RECOVERY.md S1).
    pub fn has_unproven_data(&self) -> bool {
        self.data_end > self.proven_end()
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
            None => self.segments.get(key),
        }
    }

    /// Applies one committed transaction's writes as a new layer.
    pub fn push_layer(&mut self, layer: Layer) {
        self.layers.push(Arc::new(layer));
        if self.layers.len() >= MAX_LAYERS {
            self.fold_layers();
        }
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

/// A key borrowed from a snapshot file or shared with the memtable.
enum KeyRef<'a> {
    Borrowed(&'a [u8]),
    Shared(Bytes),
}

impl Deref for KeyRef<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            KeyRef::Borrowed(b) => b,
            KeyRef::Shared(b) => b,
        }
    }
}

type SourceItem<'a> = Result<(KeyRef<'a>, Option<Value>)>;
type Source<'a> = std::iter::Peekable<Box<dyn Iterator<Item = SourceItem<'a>> + 'a>>;

/// Owned range bounds over keys.
pub type KeyRange = (Bound<Vec<u8>>, Bound<Vec<u8>>);

fn bounds_ref(range: &KeyRange) -> (Bound<&[u8]>, Bound<&[u8]>) {
    (as_ref_bound(&range.0), as_ref_bound(&range.1))
}

fn as_ref_bound(b: &Bound<Vec<u8>>) -> Bound<&[u8]> {
    match b {
        Bound::Included(v) => Bound::Included(v.as_slice()),
        Bound::Excluded(v) => Bound::Excluded(v.as_slice()),
        Bound::Unbounded => Bound::Unbounded,
    }
}

fn below_end(key: &[u8], end: &Bound<Vec<u8>>) -> bool {
    match end {
        Bound::Included(e) => key <= e.as_slice(),
        Bound::Excluded(e) => key < e.as_slice(),
        Bound::Unbounded => true,
    }
}

/// The range of keys starting with `prefix`.
pub fn prefix_range(prefix: &[u8]) -> KeyRange {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < u8::MAX {
            end.push(last + 1);
            return (Bound::Included(prefix.to_vec()), Bound::Excluded(end));
        }
    }
    (Bound::Included(prefix.to_vec()), Bound::Unbounded)
}

/// An iterator over key/value pairs in key order, merged from a transaction's own writes,
/// the memtable and the snapshot files.
pub struct Iter<'a> {
    sources: Vec<Source<'a>>,
}

impl fmt::Debug for Iter<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Iter")
            .field("sources", &self.sources.len())
            .finish()
    }
}

impl<'a> Iter<'a> {
    /// Iterates `range` over `version`, with `overlay` (a write transaction's own writes)
    /// taking precedence.
    pub(crate) fn new(
        version: &'a Version,
        overlay: Option<&'a Layer>,
        range: KeyRange,
    ) -> Iter<'a> {
        let mut sources: Vec<Source<'a>> = Vec::with_capacity(3 + version.layers.len());
        let layers = overlay
            .into_iter()
            .chain(version.layers.iter().rev().map(|l| &**l));
        for layer in layers {
            let it = layer
                .range::<[u8], _>(bounds_ref(&range))
                .map(|(k, v)| Ok((KeyRef::Shared(Arc::clone(k)), v.clone().map(Value::heap))));
            sources.push((Box::new(it) as Box<dyn Iterator<Item = SourceItem<'a>>>).peekable());
        }
        let mem = version
            .mem
            .range::<_, [u8]>(bounds_ref(&range))
            .map(|(k, v)| Ok((KeyRef::Shared(Arc::clone(k)), v.clone().map(Value::heap))));
        sources.push((Box::new(mem) as Box<dyn Iterator<Item = SourceItem<'a>>>).peekable());
        let segs = SegmentIter::new(&version.segments, range);
        sources.push((Box::new(segs) as Box<dyn Iterator<Item = SourceItem<'a>>>).peekable());
        Iter { sources }
    }
}

impl Iterator for Iter<'_> {
    type Item = Result<(Vec<u8>, Value)>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            // Find the smallest key among the sources' heads; earlier sources win ties.
            let mut best: Option<usize> = None;
            for i in 0..self.sources.len() {
                let (left, right) = self.sources.split_at_mut(i);
                let candidate = &mut right[0];
                let better = match candidate.peek() {
                    None => false,
                    Some(Err(_)) => {
                        if let Some(Err(e)) = candidate.next() {
                            return Some(Err(e));
                        }
                        false
                    }
                    Some(Ok((key, _))) => match best {
                        None => true,
                        Some(b) => match left[b].peek() {
                            Some(Ok((best_key, _))) => key[..] < best_key[..],
                            _ => true,
                        },
                    },
                };
                if better {
                    best = Some(i);
                }
            }
            let b = best?;
            let (key, value) = match self.sources[b].next() {
                Some(Ok(item)) => item,
                Some(Err(e)) => return Some(Err(e)),
                None => return None,
            };
            // Drop the same key from lower-precedence sources.
            for i in b + 1..self.sources.len() {
                if matches!(self.sources[i].peek(), Some(Ok((k, _))) if k[..] == key[..]) {
                    self.sources[i].next();
                }
            }
            if let Some(value) = value {
                return Some(Ok((key.to_vec(), value)));
            }
        }
    }
}

/// Walks the snapshot files' entries within a range.
struct SegmentIter<'a> {
    set: &'a SegmentSet,
    segment: usize,
    index: usize,
    end: Bound<Vec<u8>>,
    started: bool,
    start: Bound<Vec<u8>>,
    done: bool,
}

impl<'a> SegmentIter<'a> {
    fn new(set: &'a SegmentSet, range: KeyRange) -> Self {
        SegmentIter {
            set,
            segment: 0,
            index: 0,
            end: range.1,
            started: false,
            start: range.0,
            done: set.segments.is_empty(),
        }
    }

    fn seek(&mut self) -> Result<()> {
        self.started = true;
        let (key, after) = match &self.start {
            Bound::Unbounded => return Ok(()),
            Bound::Included(k) => (k.as_slice(), false),
            Bound::Excluded(k) => (k.as_slice(), true),
        };
        self.segment = self.set.locate(key).unwrap_or(0);
        self.index = self.set.segments[self.segment].lower_bound(key, after)?;
        if self.set.seek_one_entry_early {
            self.index = self.index.saturating_sub(1);
        }
        Ok(())
    }
}

impl<'a> Iterator for SegmentIter<'a> {
    type Item = SourceItem<'a>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        if !self.started {
            if let Err(e) = self.seek() {
                self.done = true;
                return Some(Err(e));
            }
        }
        loop {
            let segment = self.set.segments.get(self.segment)?;
            if self.index >= segment.len() {
                self.segment += 1;
                self.index = 0;
                continue;
            }
            let item = segment
                .entry(self.index)
                .and_then(|(key, _)| Ok((key, Value::mapped(segment, self.index)?)));
            self.index += 1;
            return match item {
                Ok((key, value)) if below_end(key, &self.end) => {
                    Some(Ok((KeyRef::Borrowed(key), Some(value))))
                }
                Ok(_) => {
                    self.done = true;
                    None
                }
                Err(e) => {
                    self.done = true;
                    Some(Err(e))
                }
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_range_handles_trailing_ff() {
        assert_eq!(
            prefix_range(b"ab"),
            (
                Bound::Included(b"ab".to_vec()),
                Bound::Excluded(b"ac".to_vec())
            )
        );
        assert_eq!(
            prefix_range(&[b'a', 0xff]),
            (
                Bound::Included(vec![b'a', 0xff]),
                Bound::Excluded(b"b".to_vec())
            )
        );
        assert_eq!(
            prefix_range(&[0xff]),
            (Bound::Included(vec![0xff]), Bound::Unbounded)
        );
    }
}
