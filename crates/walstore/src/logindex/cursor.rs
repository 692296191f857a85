//! [`Cursor`]: the keys of a view of the log index within a range, forwards or backwards,
//! each as its newest version at the view's limit says (a range deletion newer than that
//! version makes it a tombstone).

use super::{Budget, Damaged, LogIndex, StampedDelete};
use std::ops::Bound;

/// One key as a view reads it: the key and its value's byte range in the index (`None`: a
/// tombstone).
pub(crate) type CursorItem<'a> = Result<(&'a [u8], Option<(usize, usize)>), Damaged>;

/// Walks a view of the index over a key range.
#[derive(Debug)]
pub(crate) struct Cursor<'a> {
    index: &'a LogIndex,
    limit: u64,
    deletes: &'a [StampedDelete],
    start: Bound<Vec<u8>>,
    end: Bound<Vec<u8>>,
    reverse: bool,
    /// Forwards: the next node to look at (`None` before the first step).
    next: Option<usize>,
    started: bool,
    done: bool,
    /// Bounds the forward walk (a cycle in a damaged list).
    steps: Budget<'a>,
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(
        index: &'a LogIndex,
        limit: u64,
        deletes: &'a [StampedDelete],
        range: (Bound<Vec<u8>>, Bound<Vec<u8>>),
        reverse: bool,
    ) -> Cursor<'a> {
        Cursor {
            index,
            limit,
            deletes,
            start: range.0,
            end: range.1,
            reverse,
            next: None,
            started: false,
            done: false,
            steps: Budget::of(index),
        }
    }

    /// What `key`'s newest visible version `e` reads as, after the range deletions.
    fn resolve(
        &self,
        stamp: u64,
        key: &[u8],
        value: Option<(usize, usize)>,
    ) -> Option<(usize, usize)> {
        let deleted_later = self
            .deletes
            .iter()
            .any(|d| d.stamp > stamp && d.range.covers(key));
        if deleted_later {
            None
        } else {
            value
        }
    }

    fn forward(&mut self) -> Option<CursorItem<'a>> {
        if !self.started {
            self.started = true;
            let from = match &self.start {
                Bound::Unbounded => self.index.next_entry(0),
                Bound::Included(k) | Bound::Excluded(k) => match self.index.find(k, u64::MAX, None)
                {
                    Ok(at) => at,
                    Err(e) => return Some(Err(e)),
                },
            };
            self.next = from;
        }
        loop {
            let at = self.next?;
            let Some(e) = self.index.entry(at) else {
                return Some(Err(Damaged));
            };
            let key = e.key;
            if !below(key, &self.end) {
                self.done = true;
                return None;
            }
            // The nodes of one key lie together, newest first: take the first visible one,
            // then move past them all.
            let mut visible = None;
            let mut cur = Some(at);
            while let Some(c) = cur {
                let Some(n) = self.index.entry(c) else {
                    return Some(Err(Damaged));
                };
                if n.key != key {
                    break;
                }
                if visible.is_none() && n.stamp <= self.limit {
                    visible = Some((n.stamp, n.value));
                }
                if let Err(e) = self.steps.take() {
                    return Some(Err(e));
                }
                cur = self.index.next_entry(c);
            }
            self.next = cur;
            if matches!(&self.start, Bound::Excluded(s) if s.as_slice() == key) {
                continue;
            }
            if let Some((stamp, value)) = visible {
                return Some(Ok((key, self.resolve(stamp, key, value))));
            }
        }
    }

    fn backward(&mut self) -> Option<CursorItem<'a>> {
        loop {
            let key: &'a [u8] = match self.key_before_end() {
                Ok(Some(k)) => k,
                Ok(None) => return None,
                Err(e) => return Some(Err(e)),
            };
            if !above(key, &self.start) {
                return None;
            }
            self.end = Bound::Excluded(key.to_vec());
            match self.index.lookup(key, self.limit) {
                Ok(Some(e)) => return Some(Ok((e.key, self.resolve(e.stamp, key, e.value)))),
                Ok(None) => continue,
                Err(e) => return Some(Err(e)),
            }
        }
    }

    /// The greatest key in the index within the end bound.
    fn key_before_end(&self) -> Result<Option<&'a [u8]>, Damaged> {
        let index: &'a LogIndex = self.index;
        let at = match &self.end {
            Bound::Unbounded => index.find_before(None)?,
            Bound::Excluded(k) => index.find_before(Some(k))?,
            Bound::Included(k) => match index.find(k, u64::MAX, None)? {
                Some(at) if index.entry(at).is_some_and(|e| e.key == k.as_slice()) => Some(at),
                _ => index.find_before(Some(k))?,
            },
        };
        match at {
            None => Ok(None),
            Some(at) => index.entry(at).map(|e| Some(e.key)).ok_or(Damaged),
        }
    }
}

impl<'a> Iterator for Cursor<'a> {
    type Item = CursorItem<'a>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let item = if self.reverse {
            self.backward()
        } else {
            self.forward()
        };
        if item.is_none() || matches!(item, Some(Err(_))) {
            self.done = true;
        }
        item
    }
}

fn below(key: &[u8], end: &Bound<Vec<u8>>) -> bool {
    match end {
        Bound::Included(e) => key <= e.as_slice(),
        Bound::Excluded(e) => key < e.as_slice(),
        Bound::Unbounded => true,
    }
}

fn above(key: &[u8], start: &Bound<Vec<u8>>) -> bool {
    match start {
        Bound::Included(s) => key >= s.as_slice(),
        Bound::Excluded(s) => key > s.as_slice(),
        Bound::Unbounded => true,
    }
}
