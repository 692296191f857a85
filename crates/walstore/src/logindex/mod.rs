//! The log index (`LOGINDEX`, FORMAT.md §9): every write of the current generation's log, in
//! a skip list in a file that every handle of the store maps, so that no process reads the
//! log into memory of its own. It is the memtable, shared: a handle that opens the store, or
//! catches up with another process's commits, takes a view of it at a log offset instead of
//! reading the log.
//!
//! - **One writer.** Only the holder of the writer lock (or the first handle to open the
//!   store, alone) adds to it: each committed transaction whole, in log order, and only
//!   when it starts where the index's coverage ends ([`LogIndex::add_txn`]). Entries are
//!   written, then linked with release stores; the coverage moves last.
//! - **Readers need no lock.** An entry is stamped with the log offset just past its
//!   transaction; a view at offset `limit` sees the entries stamped up to `limit`, so a
//!   version is a `(index, limit)` pair and later commits never change what it reads.
//! - **Stale, never wrong.** The index lives as long as the commit index's shared region:
//!   the first handle to open the store makes a new one from the log, so nothing from before
//!   a crash or a reboot is trusted. A writer killed while it added a transaction left
//!   entries past the coverage: invisible, and written again identically by the next writer
//!   (the log holds the transaction). A full or failed index is sealed: the log past its
//!   coverage is then read as before, into the handle's own memory, until the next
//!   generation starts a new index.

mod cursor;
mod layout;
mod table;
mod tool;

pub(crate) use cursor::Cursor;
pub(crate) use tool::read_file_bytes;

use crate::deletes::add_deletes;
use crate::snapshot::RangeDelete;
use crate::storage::{SharedBytes, SharedFile, Storage};
use layout::*;
use std::io;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;

pub(crate) use layout::CommitNode;

/// One transaction read from the log, for [`LogIndex::add_bulk`]: its commit node, its range
/// deletions and its writes (`None`: a deletion).
pub(crate) struct BulkTxn<'t> {
    pub(crate) commit: CommitNode,
    pub(crate) deletes: &'t [RangeDelete],
    pub(crate) writes: &'t [BulkWrite],
}

/// A write of a [`BulkTxn`]: key, value (`None`: a deletion).
pub(crate) type BulkWrite = (Arc<[u8]>, Option<Arc<[u8]>>);

/// An entry of a bulk add: key, stamp, value (`None`: a tombstone).
type BulkEntry<'a> = (&'a [u8], u64, Option<&'a [u8]>);

/// How much the file grows at a time.
const GROW_STEP: usize = 4 << 20;
/// The file's first size, and the unit it grows by until it reaches [`GROW_STEP`]: a store
/// opened by a one-shot process makes a small index (its pages are allocated and mapped up
/// front).
const FIRST_BYTES: usize = 64 << 10;

/// An open log index.
#[derive(Debug)]
pub(crate) struct LogIndex {
    bytes: SharedBytes,
}

/// A range deletion with the log offset past its transaction.
#[derive(Debug, Clone)]
pub(crate) struct StampedDelete {
    pub(crate) stamp: u64,
    pub(crate) range: RangeDelete,
}

/// Damage found in the index (it is then not used).
#[derive(Debug)]
pub(crate) struct Damaged;

impl LogIndex {
    /// Creates a new, empty index for `generation` at `path` (replacing the file there).
    pub(crate) fn create(
        storage: &dyn Storage,
        path: &Path,
        capacity: usize,
        generation: u64,
        salt: u64,
        id: u64,
    ) -> io::Result<Arc<LogIndex>> {
        let file = storage.create_shared(path, capacity)?;
        file.grow(FIRST_BYTES.min(capacity) as u64)?;
        let index = LogIndex {
            bytes: SharedBytes::new(file),
        };
        let set = |at: usize, v: u64| {
            index
                .bytes
                .u64_at(at)
                .map(|w| w.store(v, Ordering::Relaxed))
                .ok_or_else(|| io::Error::other("log index shorter than its header"))
        };
        set(AT_LAYOUT, LAYOUT_VERSION)?;
        set(AT_GENERATION, generation)?;
        set(AT_SALT, salt)?;
        set(AT_ID, id)?;
        set(AT_COVERED, crate::wal::WAL_HEADER_BYTES)?;
        set(AT_ALLOC, HEADER_BYTES as u64)?;
        let magic = index
            .bytes
            .u64_at(AT_MAGIC)
            .ok_or_else(|| io::Error::other("log index shorter than its header"))?;
        magic.store(MAGIC, Ordering::Release);
        Ok(Arc::new(index))
    }

    /// Maps the index at `path`, whatever it describes (see [`LogIndex::describes`]).
    pub(crate) fn attach(
        storage: &dyn Storage,
        path: &Path,
        capacity: usize,
    ) -> io::Result<Arc<LogIndex>> {
        let file: Arc<dyn SharedFile> = storage.open_shared(path, capacity)?;
        Ok(Arc::new(LogIndex {
            bytes: SharedBytes::new(file),
        }))
    }

    /// The id the commit index names this file by.
    pub(crate) fn id(&self) -> u64 {
        word(&self.bytes, AT_ID)
    }

    /// Whether this is a complete index of `generation`'s log (salt `salt`).
    pub(crate) fn describes(&self, generation: u64, salt: u64) -> bool {
        word(&self.bytes, AT_MAGIC) == MAGIC
            && word(&self.bytes, AT_LAYOUT) == LAYOUT_VERSION
            && word(&self.bytes, AT_GENERATION) == generation
            && word(&self.bytes, AT_SALT) == salt
    }

    /// The log offset up to which every committed transaction is in the index.
    pub(crate) fn covered(&self) -> u64 {
        word(&self.bytes, AT_COVERED)
    }

    /// Whether transactions are still added.
    pub(crate) fn is_sealed(&self) -> bool {
        word(&self.bytes, AT_SEALED) != 0
    }

    /// Entries in the list (every version of every key).
    pub(crate) fn entries(&self) -> u64 {
        word(&self.bytes, AT_ENTRIES)
    }

    /// Bytes in use.
    pub(crate) fn used_bytes(&self) -> u64 {
        word(&self.bytes, AT_ALLOC)
    }

    pub(crate) fn bytes(&self) -> &SharedBytes {
        &self.bytes
    }

    // -----------------------------------------------------------------------------------
    // The writer's side.

    /// Adds one committed transaction that spans `[start, commit.end)` of the log. Returns
    /// whether the index covers it now: false when it starts elsewhere than where the index
    /// ends, or when the index is (or becomes) sealed. Only the holder of the writer lock,
    /// or the first handle to open the store, calls this.
    pub(crate) fn add_txn<'w>(
        &self,
        start: u64,
        commit: CommitNode,
        deletes: &[RangeDelete],
        writes: impl IntoIterator<Item = (&'w [u8], Option<&'w [u8]>)>,
    ) -> bool {
        if self.is_sealed() || self.covered() != start || commit.end <= start {
            return false;
        }
        let added = deletes.iter().all(|d| self.add_delete(commit.end, d))
            && writes
                .into_iter()
                .all(|(k, v)| self.add_entry(commit.end, k, v).is_ok())
            && self.add_commit(commit);
        if !added {
            self.seal();
            return false;
        }
        if let Some(w) = header_word(&self.bytes, AT_COVERED) {
            w.store(commit.end, Ordering::Release);
        }
        true
    }

    /// Stops adding transactions (the log past the coverage is read the old way).
    pub(crate) fn seal(&self) {
        if let Some(w) = header_word(&self.bytes, AT_SEALED) {
            w.store(1, Ordering::Release);
        }
    }

    /// Reserves `n` bytes (8-aligned); `None` when the index is full or cannot grow.
    pub(super) fn alloc(&self, n: usize) -> Option<usize> {
        let word = header_word(&self.bytes, AT_ALLOC)?;
        let at = word.load(Ordering::Relaxed) as usize;
        let end = at.checked_add(align(n))?;
        let file = self.bytes.file();
        if end > file.capacity() {
            return None;
        }
        if !self.bytes.holds(end) {
            // Doubling up to 4 MiB at a time.
            let step = end.clamp(FIRST_BYTES, GROW_STEP);
            let grown = end.next_multiple_of(step).min(file.capacity());
            file.grow(grown as u64).ok()?;
            if !self.bytes.holds(end) {
                return None;
            }
        }
        word.store(end as u64, Ordering::Relaxed);
        Some(at)
    }

    fn add_delete(&self, stamp: u64, d: &RangeDelete) -> bool {
        let end_len = d.end.as_ref().map_or(0, |e| e.len());
        let Some(at) = self.alloc(DELETE_FIXED + d.start.len() + end_len) else {
            return false;
        };
        let Some(head) = header_word(&self.bytes, AT_DELETES) else {
            return false;
        };
        let mut fixed = [0u8; DELETE_FIXED];
        fixed[0..8].copy_from_slice(&stamp.to_le_bytes());
        fixed[8..12].copy_from_slice(&(head.load(Ordering::Relaxed) as u32).to_le_bytes());
        fixed[12..16].copy_from_slice(&(d.start.len() as u32).to_le_bytes());
        let end_field = d.end.as_ref().map_or(NO_END, |e| e.len() as u32);
        fixed[16..20].copy_from_slice(&end_field.to_le_bytes());
        let ok = self.bytes.write(at, &fixed)
            && self.bytes.write(at + DELETE_FIXED, &d.start)
            && d.end
                .as_ref()
                .is_none_or(|e| self.bytes.write(at + DELETE_FIXED + d.start.len(), e));
        if ok {
            head.store(at as u64, Ordering::Release);
        }
        ok
    }

    fn add_commit(&self, mut commit: CommitNode) -> bool {
        let Some(at) = self.alloc(COMMIT_BYTES) else {
            return false;
        };
        let Some(head) = header_word(&self.bytes, AT_COMMITS) else {
            return false;
        };
        commit.prev = head.load(Ordering::Relaxed) as usize;
        let ok = self.bytes.write(at, &encode_commit(&commit));
        if ok {
            head.store(at as u64, Ordering::Release);
        }
        ok
    }

    /// Links a new entry; an entry with the same key and stamp already there (written by a
    /// writer killed before it moved the coverage) is kept instead.
    fn add_entry(&self, stamp: u64, key: &[u8], value: Option<&[u8]>) -> Result<(), Damaged> {
        let mut prev = [0usize; MAX_HEIGHT];
        let found = self.find(key, stamp, Some(&mut prev))?;
        if let Some((at, e)) = found.and_then(|at| Some((at, entry(&self.bytes, at)?))) {
            if e.key == key && e.stamp == stamp {
                // Linked by a writer killed before it moved the coverage (perhaps before it
                // pointed the table at it).
                return table::note(self, key, at);
            }
        }
        let (at, height) = self.write_node(stamp, key, value).ok_or(Damaged)?;
        for (level, &p) in prev.iter().enumerate().take(height) {
            let (Some(from), Some(own)) = (
                next_slot(&self.bytes, p, level),
                next_slot(&self.bytes, at, level),
            ) else {
                return Err(Damaged);
            };
            own.store(from.load(Ordering::Acquire), Ordering::Relaxed);
            from.store(at as u32, Ordering::Release);
        }
        table::note(self, key, at)
    }

    /// Writes an entry node, not linked yet; its offset and height.
    fn write_node(&self, stamp: u64, key: &[u8], value: Option<&[u8]>) -> Option<(usize, usize)> {
        let height = height_for(stamp, key);
        let val_len = value.map_or(0, <[u8]>::len);
        let at = self.alloc(ENTRY_FIXED + 4 * height + key.len() + val_len)?;
        let mut fixed = [0u8; ENTRY_FIXED];
        fixed[0..8].copy_from_slice(&stamp.to_le_bytes());
        fixed[8..12].copy_from_slice(&(key.len() as u32).to_le_bytes());
        let val_field = value.map_or(TOMBSTONE, |v| v.len() as u32);
        fixed[12..16].copy_from_slice(&val_field.to_le_bytes());
        fixed[16..20].copy_from_slice(&(height as u32).to_le_bytes());
        let key_at = at + ENTRY_FIXED + 4 * height;
        let written = self.bytes.write(at, &fixed)
            && self.bytes.write(key_at, key)
            && value.is_none_or(|v| self.bytes.write(key_at + key.len(), v));
        if !written {
            return None;
        }
        if let Some(w) = header_word(&self.bytes, AT_ENTRIES) {
            w.fetch_add(1, Ordering::Release);
        }
        Some((at, height))
    }

    /// Whether the list holds no entry.
    pub(crate) fn is_empty_list(&self) -> bool {
        word(&self.bytes, AT_ENTRIES) == 0 && load_next(next_slot(&self.bytes, 0, 0)) == 0
    }

    /// Adds transactions read from the log, starting at `start`, to an empty index at once:
    /// the entries sorted and linked in order, with no search (a load builds the index this
    /// way).
    pub(crate) fn add_bulk(&self, start: u64, txns: &[BulkTxn<'_>]) -> bool {
        if self.is_sealed() || self.covered() != start || !self.is_empty_list() {
            return false;
        }
        let mut entries: Vec<BulkEntry<'_>> = Vec::new();
        let mut end = start;
        for t in txns {
            let stamp = t.commit.end;
            if !t.deletes.iter().all(|d| self.add_delete(stamp, d)) || !self.add_commit(t.commit) {
                self.seal();
                return false;
            }
            entries.extend(t.writes.iter().map(|(k, v)| (&k[..], stamp, v.as_deref())));
            end = stamp;
        }
        // Keys ascending, stamps descending: the list's order.
        entries.sort_unstable_by(|a, b| a.0.cmp(b.0).then(b.1.cmp(&a.1)));
        let mut last = [0usize; MAX_HEIGHT];
        for (key, stamp, value) in entries {
            let Some((at, height)) = self.write_node(stamp, key, value) else {
                self.seal();
                return false;
            };
            for (level, tail) in last.iter_mut().enumerate().take(height) {
                match next_slot(&self.bytes, *tail, level) {
                    Some(slot) => slot.store(at as u32, Ordering::Release),
                    None => {
                        self.seal();
                        return false;
                    }
                }
                *tail = at;
            }
        }
        if table::rebuild(self, 0).is_err() {
            self.seal();
            return false;
        }
        if let Some(w) = header_word(&self.bytes, AT_COVERED) {
            w.store(end, Ordering::Release);
        }
        true
    }

    // -----------------------------------------------------------------------------------
    // Readers.

    /// The first entry at or after `(key, newest stamp <= limit)` in the list's order (keys
    /// ascending, stamps descending); with `prev`, the last node before it at each level.
    pub(crate) fn find(
        &self,
        key: &[u8],
        limit: u64,
        mut prev: Option<&mut [usize; MAX_HEIGHT]>,
    ) -> Result<Option<usize>, Damaged> {
        let before = |e: &Entry<'_>| e.key < key || (e.key == key && e.stamp > limit);
        let mut steps = Budget::of(self);
        let mut at = 0usize;
        // The node each level stopped at: at the bottom, the answer. It is the node that was
        // compared, never the pointer loaded again (a writer may have linked a node in
        // between meanwhile, one the comparison never saw).
        let mut found = 0usize;
        for level in (0..MAX_HEIGHT).rev() {
            found = 0;
            loop {
                let next = load_next(next_slot(&self.bytes, at, level));
                if next == 0 {
                    break;
                }
                let e = entry(&self.bytes, next).ok_or(Damaged)?;
                if !before(&e) {
                    found = next;
                    break;
                }
                at = next;
                steps.take()?;
            }
            if let Some(p) = prev.as_deref_mut() {
                p[level] = at;
            }
        }
        Ok((found != 0).then_some(found))
    }

    /// The last entry whose key is below `key` (every entry's, with `None`); `None` when
    /// there is none. For walking backwards.
    pub(crate) fn find_before(&self, key: Option<&[u8]>) -> Result<Option<usize>, Damaged> {
        let mut steps = Budget::of(self);
        let mut at = 0usize;
        for level in (0..MAX_HEIGHT).rev() {
            loop {
                let next = load_next(next_slot(&self.bytes, at, level));
                if next == 0 {
                    break;
                }
                let e = entry(&self.bytes, next).ok_or(Damaged)?;
                if key.is_some_and(|k| e.key >= k) {
                    break;
                }
                at = next;
                steps.take()?;
            }
        }
        Ok((at != 0).then_some(at))
    }

    /// The entry following the one at `at` on the bottom level.
    pub(crate) fn next_entry(&self, at: usize) -> Option<usize> {
        let next = load_next(next_slot(&self.bytes, at, 0));
        (next != 0).then_some(next)
    }

    /// The entry at `at`.
    pub(crate) fn entry(&self, at: usize) -> Option<Entry<'_>> {
        entry(&self.bytes, at)
    }

    /// The newest version of `key` visible at `limit`.
    pub(crate) fn lookup(&self, key: &[u8], limit: u64) -> Result<Option<Entry<'_>>, Damaged> {
        if let Some(found) = table::lookup(self, key, limit) {
            return found;
        }
        let Some(at) = self.find(key, limit, None)? else {
            return Ok(None);
        };
        let e = entry(&self.bytes, at).ok_or(Damaged)?;
        Ok((e.key == key).then_some(e))
    }

    /// The range deletions visible at `limit`, oldest first.
    pub(crate) fn deletes_at(&self, limit: u64) -> Result<Vec<StampedDelete>, Damaged> {
        let mut out = Vec::new();
        let mut at = word(&self.bytes, AT_DELETES) as usize;
        // No more nodes than the map could hold, whatever the header says (a cycle in a
        // damaged list ends here, not at an allocation per lap).
        let mut steps = (self.bytes.file().capacity() / DELETE_FIXED) as u64 + 1;
        while at != 0 {
            steps = steps.checked_sub(1).ok_or(Damaged)?;
            let d = delete_node(&self.bytes, at).ok_or(Damaged)?;
            if d.stamp <= limit {
                out.push(StampedDelete {
                    stamp: d.stamp,
                    range: RangeDelete {
                        start: Arc::from(d.start),
                        end: d.end.map(Arc::from),
                    },
                });
            }
            at = d.prev;
        }
        out.reverse();
        Ok(out)
    }

    /// The commit node of the transaction that ends at `end`.
    pub(crate) fn commit_at(&self, end: u64) -> Result<Option<CommitNode>, Damaged> {
        let mut at = word(&self.bytes, AT_COMMITS) as usize;
        let mut steps = (self.bytes.file().capacity() / COMMIT_BYTES) as u64 + 1;
        while at != 0 {
            steps = steps.checked_sub(1).ok_or(Damaged)?;
            let c = commit_node(&self.bytes, at).ok_or(Damaged)?;
            if c.end == end {
                return Ok(Some(c));
            }
            if c.end < end {
                return Ok(None);
            }
            at = c.prev;
        }
        Ok(None)
    }
}

/// Steps a walk of the list may take: more than an undamaged list allows (a cycle) is
/// damage. The entries counted grow while a writer adds: the budget is read again before a
/// walk is called damaged.
#[derive(Debug)]
pub(crate) struct Budget<'a> {
    index: &'a LogIndex,
    used: u64,
    allowed: u64,
}

impl<'a> Budget<'a> {
    pub(crate) fn of(index: &'a LogIndex) -> Budget<'a> {
        Budget {
            index,
            used: 0,
            allowed: Self::allowed(index),
        }
    }

    fn allowed(index: &LogIndex) -> u64 {
        // No more nodes than the map could hold, whatever the count says.
        let room = (index.bytes.file().capacity() / (ENTRY_FIXED + 4)) as u64;
        let entries = word(&index.bytes, AT_ENTRIES).min(room);
        (entries + 1).saturating_mul(MAX_HEIGHT as u64 + 1)
    }

    pub(crate) fn take(&mut self) -> Result<(), Damaged> {
        self.used += 1;
        if self.used > self.allowed {
            self.allowed = Self::allowed(self.index);
            if self.used > self.allowed {
                return Err(Damaged);
            }
        }
        Ok(())
    }
}

/// The masks of `deletes` (sorted, disjoint ranges): what they hide in older runs.
pub(crate) fn masks_of(deletes: &[StampedDelete]) -> Vec<RangeDelete> {
    let ranges: Vec<RangeDelete> = deletes.iter().map(|d| d.range.clone()).collect();
    add_deletes(&[], &ranges)
}

/// A node's height: 1 + one more level with probability 1/4 each, from a hash of the stamp
/// and key (deterministic: a rewrite of a transaction builds the same list).
fn height_for(stamp: u64, key: &[u8]) -> usize {
    let mut h = stamp ^ 0x9e37_79b9_7f4a_7c15;
    for chunk in key.chunks(8) {
        let mut word = [0u8; 8];
        word[..chunk.len()].copy_from_slice(chunk);
        h = (h ^ u64::from_le_bytes(word)).wrapping_mul(0x100_0000_01b3);
        h ^= h >> 29;
    }
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 31;
    let mut height = 1;
    while height < MAX_HEIGHT && h & 3 == 0 {
        height += 1;
        h >>= 2;
    }
    height
}

#[cfg(test)]
mod tests;
