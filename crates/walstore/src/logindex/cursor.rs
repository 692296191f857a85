//! [`Cursor`]: the keys of a view of the log index within a range, forwards or backwards,
//! each as its newest version at the view's limit says (a range deletion newer than that
//! version makes it a tombstone).

use super::{Budget, Damaged, LogIndex, StampedDelete};
use std::ops::Bound;

/// One key as a view reads it: the key and its value's byte range in the index (`None`: a
/// tombstone).
pub(crate) type CursorItem<'a> = Result<(&'a [u8], Option<(usize, usize)>), Damaged>;

/// A key's newest version at the view's limit: its stamp and value (`None`: a tombstone).
type Visible = Option<(u64, Option<(usize, usize)>)>;

/// An entry of the recent chain as a cursor keeps it: key, stamp, value.
type RecentEntry<'a> = (&'a [u8], u64, Option<(usize, usize)>);

/// Walks a view of the index over a key range: the list, merged with the entries of the
/// recent chain that are not in the list yet.
#[derive(Debug)]
pub(crate) struct Cursor<'a> {
    index: &'a LogIndex,
    limit: u64,
    deletes: &'a [StampedDelete],
    start: Bound<Vec<u8>>,
    end: Bound<Vec<u8>>,
    reverse: bool,
    /// Forwards: the next node of the list to look at (`None` before the first step).
    next: Option<usize>,
    /// Forwards: the list's next key and what it reads as, looked at but not yet returned.
    peeked: Option<(&'a [u8], Visible)>,
    /// The recent chain's keys within the range, ascending, each with its newest version at
    /// the limit; read once, at the first step.
    recent: Vec<RecentEntry<'a>>,
    /// The part of `recent` not returned yet.
    recent_lo: usize,
    recent_hi: usize,
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
            peeked: None,
            recent: Vec::new(),
            recent_lo: 0,
            recent_hi: 0,
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

    /// The first step: reads the recent chain's entries within the range.
    fn start_up(&mut self) -> Result<(), Damaged> {
        self.started = true;
        let index: &'a LogIndex = self.index;
        let mut recent = Vec::new();
        for e in index.recent_at(self.limit)? {
            if above(e.key, &self.start) && below(e.key, &self.end) {
                recent.push((e.key, e.stamp, e.value));
            }
        }
        // Keys ascending, the newest version of each first; then one per key.
        recent.sort_by(|a, b| a.0.cmp(b.0).then(b.1.cmp(&a.1)));
        recent.dedup_by(|later, first| later.0 == first.0);
        self.recent_hi = recent.len();
        self.recent = recent;
        if !self.reverse {
            self.next = match &self.start {
                Bound::Unbounded => index.next_entry(0),
                Bound::Included(k) | Bound::Excluded(k) => index.find(k, u64::MAX, None)?,
            };
        }
        Ok(())
    }

    fn forward(&mut self) -> Option<CursorItem<'a>> {
        loop {
            if self.peeked.is_none() {
                match self.list_key() {
                    Ok(found) => self.peeked = found,
                    Err(e) => return Some(Err(e)),
                }
            }
            let recent = self.recent[self.recent_lo..self.recent_hi].first().copied();
            let (key, visible) = match (self.peeked, recent) {
                (None, None) => return None,
                (Some((key, visible)), None) => {
                    self.peeked = None;
                    (key, visible)
                }
                (None, Some((key, stamp, value))) => {
                    self.recent_lo += 1;
                    (key, Some((stamp, value)))
                }
                (Some((lkey, visible)), Some((rkey, stamp, value))) => {
                    if lkey < rkey {
                        self.peeked = None;
                        (lkey, visible)
                    } else if rkey < lkey {
                        self.recent_lo += 1;
                        (rkey, Some((stamp, value)))
                    } else {
                        // In both (merged while this cursor looked): the newer version.
                        self.peeked = None;
                        self.recent_lo += 1;
                        let newer = match visible {
                            Some((s, _)) if s >= stamp => visible,
                            _ => Some((stamp, value)),
                        };
                        (rkey, newer)
                    }
                }
            };
            if let Some((stamp, value)) = visible {
                return Some(Ok((key, self.resolve(stamp, key, value))));
            }
        }
    }

    /// The list's next key within the range and its newest version at the limit (`None`
    /// when the list has no version at the limit); `None` past the range's end.
    fn list_key(&mut self) -> Result<Option<(&'a [u8], Visible)>, Damaged> {
        let index: &'a LogIndex = self.index;
        loop {
            let Some(at) = self.next else {
                return Ok(None);
            };
            let e = index.entry(at).ok_or(Damaged)?;
            let key = e.key;
            if !below(key, &self.end) {
                self.next = None;
                return Ok(None);
            }
            // The nodes of one key lie together, newest first: take the first visible one,
            // then move past them all.
            let mut visible = None;
            let mut cur = Some(at);
            while let Some(c) = cur {
                let n = index.entry(c).ok_or(Damaged)?;
                if n.key != key {
                    break;
                }
                if visible.is_none() && n.stamp <= self.limit {
                    visible = Some((n.stamp, n.value));
                }
                self.steps.take()?;
                cur = index.next_entry(c);
            }
            self.next = cur;
            if matches!(&self.start, Bound::Excluded(s) if s.as_slice() == key) {
                continue;
            }
            return Ok(Some((key, visible)));
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

    /// The greatest key in the index (list or recent chain) within the end bound.
    fn key_before_end(&mut self) -> Result<Option<&'a [u8]>, Damaged> {
        let index: &'a LogIndex = self.index;
        let at = match &self.end {
            Bound::Unbounded => index.find_before(None)?,
            Bound::Excluded(k) => index.find_before(Some(k))?,
            Bound::Included(k) => match index.find(k, u64::MAX, None)? {
                Some(at) if index.entry(at).is_some_and(|e| e.key == k.as_slice()) => Some(at),
                _ => index.find_before(Some(k))?,
            },
        };
        let listed = match at {
            None => None,
            Some(at) => Some(index.entry(at).ok_or(Damaged)?.key),
        };
        while self.recent_hi > self.recent_lo
            && !below(self.recent[self.recent_hi - 1].0, &self.end)
        {
            self.recent_hi -= 1;
        }
        let recent = self.recent[self.recent_lo..self.recent_hi]
            .last()
            .map(|r| r.0);
        Ok(listed.max(recent))
    }
}

impl<'a> Iterator for Cursor<'a> {
    type Item = CursorItem<'a>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        if !self.started {
            if let Err(e) = self.start_up() {
                self.done = true;
                return Some(Err(e));
            }
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
