//! The merge iterator over a version: a transaction's own writes, the memtable layers, the
//! folded map and the runs, in key order or reversed, each input's range deletions hiding the
//! inputs after it.

use super::{Layer, Version};
use crate::deletes::covered;
use crate::error::Result;
use crate::logindex::Cursor;
use crate::run::SegmentSet;
use crate::snapshot::{RangeDelete, Segment};
use crate::value::{Bytes, Value};
use std::fmt;
use std::ops::{Bound, Deref};
use std::sync::Arc;

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
        if let Some(view) = &version.shared {
            let index = &view.index;
            let cursor = Cursor::new(index, view.limit, &view.deletes, range.clone(), reverse);
            let it = cursor.map(move |item| match item {
                Ok((key, value)) => Ok((
                    KeyRef::Borrowed(key),
                    value.map(|(s, e)| Value::in_log_index(index, s, e)),
                )),
                Err(_) => Err(super::damaged(index)),
            });
            inputs.push(Input {
                source: (Box::new(it) as Box<dyn Iterator<Item = SourceItem<'a>>>).peekable(),
                masks: &view.masks,
            });
        }
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
            if self.set.faults.reverse_seek_one_past_end() {
                self.index = (self.index + 1).min(self.set.segments[self.segment].len());
            }
            return Ok(());
        }
        let (key, after) = match &self.range.0 {
            Bound::Unbounded => return Ok(()),
            Bound::Included(k) => (k.as_slice(), false),
            Bound::Excluded(k) => (k.as_slice(), true),
        };
        self.segment = self.set.locate(key).unwrap_or(0);
        self.index = self.set.segments[self.segment].lower_bound(key, after)?;
        if self.set.faults.range_seek_one_entry_early() {
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
            .map(|(key, value)| (key, Value::in_segment(segment, value)));
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
