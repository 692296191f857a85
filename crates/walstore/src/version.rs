//! A [`Version`]: one immutable, consistent state of the store, as readers see it.
//!
//! A version is the sorted runs of a generation (each a list of memory-mapped snapshot files,
//! shared between versions, newest run first) plus a persistent ordered map of every write
//! committed to the WAL since (the memtable, structurally shared between versions, so
//! publishing a new version costs O(log n)). A key's value is the newest one found: the
//! memtable, then each run in turn; a run's tombstone or range deletion ends the search.
//! Readers hold an `Arc<Version>` and are never affected by later commits or checkpoints.

use crate::error::Result;
use crate::snapshot::{RangeDelete, Segment, SegmentMeta};
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

    /// Entry `index` of `segment`, served from the map; `None` for a tombstone.
    fn mapped(segment: &Arc<Segment>, index: usize) -> Result<Option<Value>> {
        Ok(segment.value_range(index)?.map(|(start, end)| {
            Value(ValueRepr::Mapped {
                segment: Arc::clone(segment),
                start,
                end,
            })
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

/// One sorted run: its snapshot files in key order, and the range deletions it carries
/// (which delete keys of older runs only).
#[derive(Debug, Default)]
pub struct SegmentSet {
    pub segments: Vec<Arc<Segment>>,
    pub metas: Vec<SegmentMeta>,
    /// Every file's range deletions, in key order.
    pub range_deletes: Vec<RangeDelete>,
    /// The broken variant `EngineFaults::range_seek_one_entry_early` (always false outside
    /// the crash harness's tests).
    pub seek_one_entry_early: bool,
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
    pub fn new(segments: Vec<Arc<Segment>>, metas: Vec<SegmentMeta>, faults: bool) -> Self {
        let range_deletes = segments
            .iter()
            .flat_map(|s| s.range_deletes().iter().cloned())
            .collect();
        SegmentSet {
            segments,
            metas,
            range_deletes,
            seek_one_entry_early: faults,
        }
    }

    /// Whether one of this run's range deletions covers `key`.
    pub fn deletes(&self, key: &[u8]) -> bool {
        covered(&self.range_deletes, key)
    }

    /// What this run says about `key`.
    pub fn lookup(&self, key: &[u8]) -> Result<Lookup> {
        if let Some(i) = self.locate(key) {
            let segment = &self.segments[i];
            if segment.may_contain(key) {
                if let Some(index) = segment.find(key)? {
                    return Ok(match Value::mapped(segment, index)? {
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

/// Joins sorted range deletions that overlap or touch.
pub fn join_deletes(sorted: Vec<RangeDelete>) -> Vec<RangeDelete> {
    let mut out: Vec<RangeDelete> = Vec::with_capacity(sorted.len());
    for d in sorted {
        if let Some(last) = out.last_mut() {
            let reaches = last.end.as_ref().is_none_or(|e| e[..] >= d.start[..]);
            if reaches {
                last.end = match (&last.end, &d.end) {
                    (None, _) | (_, None) => None,
                    (Some(a), Some(b)) => Some(if a >= b { Arc::clone(a) } else { Arc::clone(b) }),
                };
                continue;
            }
        }
        out.push(d);
    }
    out
}

/// `deletes` (sorted, disjoint) with `more` added, joined.
pub fn add_deletes(deletes: &[RangeDelete], more: &[RangeDelete]) -> Vec<RangeDelete> {
    let mut all: Vec<RangeDelete> = deletes.iter().chain(more).cloned().collect();
    all.sort_by(|a, b| a.start.cmp(&b.start));
    join_deletes(all)
}

/// The key range a range deletion covers, as bounds.
pub fn delete_bounds(d: &RangeDelete) -> (Bound<&[u8]>, Bound<&[u8]>) {
    (
        Bound::Included(&d.start[..]),
        d.end.as_deref().map_or(Bound::Unbounded, Bound::Excluded),
    )
}

/// The files `runs` map, by file id: what a reload or a switch reuses instead of mapping again.
pub fn mapped_files(runs: &[Arc<SegmentSet>]) -> std::collections::HashMap<u64, &Arc<Segment>> {
    runs.iter()
        .flat_map(|run| run.segments.iter().map(|s| (s.id(), s)))
        .collect()
}

/// Whether one of `deletes` (sorted by start, non-overlapping) covers `key`.
pub fn covered(deletes: &[RangeDelete], key: &[u8]) -> bool {
    let after = deletes.partition_point(|d| &d.start[..] <= key);
    after > 0 && deletes[after - 1].covers(key)
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
    /// The WAL offset up to which commit records' watermarks prove the log durable.
    pub fn proven_end(&self) -> u64 {
        self.synced_through.max(crate::wal::WAL_HEADER_BYTES)
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
        for run in &self.runs {
            match run.lookup(key)? {
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

fn above_start(key: &[u8], start: &Bound<Vec<u8>>) -> bool {
    match start {
        Bound::Included(s) => key >= s.as_slice(),
        Bound::Excluded(s) => key > s.as_slice(),
        Bound::Unbounded => true,
    }
}

/// One input of the merge, in precedence order, with the range deletions that apply to every
/// input after it.
struct Input<'a> {
    source: Source<'a>,
    masks: &'a [RangeDelete],
}

/// An iterator over key/value pairs in key order (or in reverse order after
/// [`Iter::rev`]), merged from a transaction's own writes, the memtable and the runs.
pub struct Iter<'a> {
    version: &'a Version,
    overlay: Option<&'a Layer>,
    overlay_deletes: &'a [RangeDelete],
    range: KeyRange,
    reverse: bool,
    /// Built at the first `next`, so that `rev` costs nothing.
    inputs: Option<Vec<Input<'a>>>,
    /// The last key returned, so that `rev` can continue from where iteration stopped.
    last: Option<Vec<u8>>,
}

impl fmt::Debug for Iter<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Iter")
            .field("range", &self.range)
            .field("reverse", &self.reverse)
            .finish()
    }
}

impl<'a> Iter<'a> {
    /// Iterates `range` over `version`, with `overlay` (a write transaction's own writes)
    /// taking precedence.
    pub(crate) fn new(
        version: &'a Version,
        overlay: Option<&'a Layer>,
        overlay_deletes: &'a [RangeDelete],
        range: KeyRange,
    ) -> Iter<'a> {
        Iter {
            version,
            overlay,
            overlay_deletes,
            range,
            reverse: false,
            inputs: None,
            last: None,
        }
    }

    /// Turns the iteration around: the keys not returned yet, in the other order. Called
    /// before the first `next`, it iterates the whole range from its end (`range(..).rev()`).
    #[must_use]
    #[allow(clippy::should_implement_trait)]
    pub fn rev(mut self) -> Iter<'a> {
        if let Some(last) = self.last.take() {
            if self.reverse {
                self.range.1 = Bound::Excluded(last);
            } else {
                self.range.0 = Bound::Excluded(last);
            }
        }
        self.reverse = !self.reverse;
        self.inputs = None;
        self
    }

    fn build(&self) -> Vec<Input<'a>> {
        let version = self.version;
        let range = &self.range;
        let reverse = self.reverse;
        let mut inputs: Vec<Input<'a>> = Vec::with_capacity(3 + version.layers.len());
        let overlay = self.overlay.map(|l| (l, self.overlay_deletes));
        let layers = overlay
            .into_iter()
            .chain(version.layers.iter().rev().map(|l| (&**l, &[][..])));
        for (layer, masks) in layers {
            let it = layer
                .range::<[u8], _>(bounds_ref(range))
                .map(|(k, v)| Ok((KeyRef::Shared(Arc::clone(k)), v.clone().map(Value::heap))));
            inputs.push(Input {
                source: directed(it, reverse),
                masks,
            });
        }
        let mem = version
            .mem
            .range::<_, [u8]>(bounds_ref(range))
            .map(|(k, v)| Ok((KeyRef::Shared(Arc::clone(k)), v.clone().map(Value::heap))));
        inputs.push(Input {
            source: directed(mem, reverse),
            masks: &version.mem_deletes,
        });
        for run in &version.runs {
            let it = SegmentIter::new(run, range.clone(), reverse);
            inputs.push(Input {
                source: (Box::new(it) as Box<dyn Iterator<Item = SourceItem<'a>>>).peekable(),
                masks: &run.range_deletes,
            });
        }
        inputs
    }
}

/// A source iterated forwards, or backwards when `reverse`.
fn directed<'a, I>(it: I, reverse: bool) -> Source<'a>
where
    I: DoubleEndedIterator<Item = SourceItem<'a>> + 'a,
{
    let boxed: Box<dyn Iterator<Item = SourceItem<'a>>> = if reverse {
        Box::new(it.rev())
    } else {
        Box::new(it)
    };
    boxed.peekable()
}

impl Iterator for Iter<'_> {
    type Item = Result<(Vec<u8>, Value)>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.inputs.is_none() {
            self.inputs = Some(self.build());
        }
        let reverse = self.reverse;
        let inputs = self.inputs.as_mut()?;
        loop {
            // Find the first key (last, in reverse) among the inputs' heads; earlier inputs
            // win ties.
            let mut best: Option<usize> = None;
            for i in 0..inputs.len() {
                let (left, right) = inputs.split_at_mut(i);
                let candidate = &mut right[0].source;
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
                        Some(b) => match left[b].source.peek() {
                            Some(Ok((best_key, _))) if reverse => key[..] > best_key[..],
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
            let (key, value) = match inputs[b].source.next() {
                Some(Ok(item)) => item,
                Some(Err(e)) => return Some(Err(e)),
                None => return None,
            };
            // Drop the same key from lower-precedence inputs.
            for input in &mut inputs[b + 1..] {
                if matches!(input.source.peek(), Some(Ok((k, _))) if k[..] == key[..]) {
                    input.source.next();
                }
            }
            // A range deletion of a newer input hides the key.
            if inputs[..b].iter().any(|i| covered(i.masks, &key)) {
                continue;
            }
            if let Some(value) = value {
                let last = self.last.get_or_insert_with(Vec::new);
                last.clear();
                last.extend_from_slice(&key);
                return Some(Ok((key.to_vec(), value)));
            }
        }
    }
}

/// Walks one run's entries within a range, forwards or backwards, tombstones included.
struct SegmentIter<'a> {
    set: &'a SegmentSet,
    segment: usize,
    /// Forwards: the next entry. Backwards: one past the next entry.
    index: usize,
    range: KeyRange,
    reverse: bool,
    started: bool,
    done: bool,
}

impl<'a> SegmentIter<'a> {
    fn new(set: &'a SegmentSet, range: KeyRange, reverse: bool) -> Self {
        SegmentIter {
            set,
            segment: 0,
            index: 0,
            range,
            reverse,
            started: false,
            done: set.segments.is_empty(),
        }
    }

    fn seek(&mut self) -> Result<()> {
        self.started = true;
        let last = self.set.segments.len() - 1;
        if self.reverse {
            let (key, after) = match &self.range.1 {
                Bound::Unbounded => {
                    self.segment = last;
                    self.index = self.set.segments[last].len();
                    return Ok(());
                }
                Bound::Included(k) => (k.as_slice(), true),
                Bound::Excluded(k) => (k.as_slice(), false),
            };
            self.segment = self.set.locate(key).unwrap_or(0);
            self.index = self.set.segments[self.segment].lower_bound(key, after)?;
            return Ok(());
        }
        let (key, after) = match &self.range.0 {
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

    /// The next entry's position, moving across files.
    fn step(&mut self) -> Option<(&'a Arc<Segment>, usize)> {
        loop {
            let segment = self.set.segments.get(self.segment)?;
            if self.reverse {
                if self.index == 0 {
                    self.segment = self.segment.checked_sub(1)?;
                    self.index = self.set.segments[self.segment].len();
                    continue;
                }
                self.index -= 1;
                return Some((segment, self.index));
            }
            if self.index >= segment.len() {
                self.segment += 1;
                self.index = 0;
                continue;
            }
            self.index += 1;
            return Some((segment, self.index - 1));
        }
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
        let Some((segment, index)) = self.step() else {
            self.done = true;
            return None;
        };
        let item = segment
            .entry(index)
            .and_then(|(key, _)| Ok((key, Value::mapped(segment, index)?)));
        match item {
            Ok((key, value)) => {
                let inside = if self.reverse {
                    above_start(key, &self.range.0)
                } else {
                    below_end(key, &self.range.1)
                };
                if inside {
                    Some(Ok((KeyRef::Borrowed(key), value)))
                } else {
                    self.done = true;
                    None
                }
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
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
