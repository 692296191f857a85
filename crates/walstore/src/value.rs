//! [`Value`]: a value read from the store, served from a snapshot file's map or shared with
//! the memtable, and [`Bytes`], a key or value as held in memory.

use crate::logindex::LogIndex;
use crate::snapshot::Segment;
use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

/// A key or value as held in memory.
pub type Bytes = Arc<[u8]>;
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
    Indexed {
        index: Arc<LogIndex>,
        start: usize,
        end: usize,
    },
}

impl Value {
    pub(crate) fn heap(bytes: Bytes) -> Value {
        Value(ValueRepr::Heap(bytes))
    }

    /// The value `value` of `segment` (a slice of its mapped bytes, as the segment's
    /// decoder returns it), served from the map without a copy; `None` for a tombstone.
    pub(crate) fn in_segment(segment: &Arc<Segment>, value: Option<&[u8]>) -> Option<Value> {
        let start = value?.as_ptr() as usize - segment.bytes().as_ptr() as usize;
        Some(Value(ValueRepr::Mapped {
            segment: Arc::clone(segment),
            start,
            end: start + value?.len(),
        }))
    }

    /// The bytes `start..end` of the log index, served from its map without a copy.
    pub(crate) fn in_log_index(index: &Arc<LogIndex>, start: usize, end: usize) -> Value {
        Value(ValueRepr::Indexed {
            index: Arc::clone(index),
            start,
            end,
        })
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
            ValueRepr::Indexed { index, start, end } => {
                index.bytes().bytes(*start, end - start).unwrap_or_default()
            }
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
