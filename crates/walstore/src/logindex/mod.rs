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

mod cold;
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
use std::sync::atomic::{AtomicU64, Ordering};
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

/// Most entries of a transaction that go on the recent chain; a larger one is linked into
/// the list (a search per key, with locality across its keys once its pages are mapped).
const RECENT_TXN_MAX: usize = 16;
/// Most entries the recent chain holds before they are merged into the list: a cursor reads
/// them all (they lie together at the end of the file); the writer that merges them pays a
/// search of the list for each.
const RECENT_MAX: usize = 128;
/// Most entries a walk of the recent chain visits before it calls the chain damaged (a
/// cycle). The chain past the merged offset holds at most [`RECENT_MAX`] entries and what
/// writers killed while adding a transaction left (the same transaction each time, most of
/// it found again through the table when it is added again).
const RECENT_WALK_MAX: usize = 64 * RECENT_MAX;
/// How many searches of the list a process's writer makes with `pread` (`cold.rs`) before it
/// searches through the map: a one-shot writer's merge of the chain (128) and a transaction of
/// several hundred keys stay within it and map only the pages they write; a writer that goes
/// on is long-lived, and the pages it maps serve its later searches.
const COLD_SEARCHES: u64 = 1024;

/// An open log index.
#[derive(Debug)]
pub(crate) struct LogIndex {
    bytes: SharedBytes,
    /// Searches of the list this process's writers made (not shared: each process counts its
    /// own).
    searches: AtomicU64,
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
        let index = LogIndex::over(file);
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
        Ok(Arc::new(LogIndex::over(file)))
    }

    /// The index in `file`, as this process sees it (no search made yet).
    fn over(file: Arc<dyn SharedFile>) -> LogIndex {
        LogIndex {
            bytes: SharedBytes::new(file),
            searches: AtomicU64::new(0),
        }
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
    ///
    /// A small transaction's entries go on the recent chain (no search of the list: a
    /// one-shot writer touches a few pages, not a descent's worth per key); a large one's,
    /// and the chain's once it holds [`RECENT_MAX`] entries, are linked into the list.
    pub(crate) fn add_txn<'w, W>(
        &self,
        start: u64,
        commit: CommitNode,
        deletes: &[RangeDelete],
        writes: W,
    ) -> bool
    where
        W: IntoIterator<Item = (&'w [u8], Option<&'w [u8]>)>,
        W::IntoIter: ExactSizeIterator,
    {
        if self.is_sealed() || self.covered() != start || commit.end <= start {
            return false;
        }
        let mut writes = writes.into_iter();
        let n = writes.len();
        let recent = n <= RECENT_TXN_MAX && table::exists(self);
        // The chain is merged before it would outgrow its bound, and before entries go into
        // the list (so no entry of the list is newer than one left on the chain).
        let pending = word(&self.bytes, AT_RECENT_COUNT) as usize;
        let keep_chain = pending == 0 || (recent && pending + n <= RECENT_MAX);
        let mut search = Search::new(self);
        let added = (keep_chain || self.merge_recent(&mut search).is_ok())
            && deletes.iter().all(|d| self.add_delete(commit.end, d))
            && writes.all(|(k, v)| {
                if recent {
                    self.add_recent(commit.end, k, v).is_ok()
                } else {
                    self.add_entry(&mut search, commit.end, k, v).is_ok()
                }
            })
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

    /// Links a new entry into the list; an entry with the same key and stamp already there
    /// (written by a writer killed before it moved the coverage) is kept instead.
    ///
    /// The caller merged the recent chain first (or it is empty), so the key's newest entry
    /// older than this one is in the list, where the search stops: it is this entry's
    /// `older`. (A killed writer's entry of this transaction left on the chain is the same
    /// write: reads and merges take either.)
    fn add_entry(
        &self,
        search: &mut Search<'_>,
        stamp: u64,
        key: &[u8],
        value: Option<&[u8]>,
    ) -> Result<(), Damaged> {
        let mut prev = [0usize; MAX_HEIGHT];
        let found = search.find(key, stamp, &mut prev)?;
        if let Some((at, _)) = found.filter(|(_, s)| *s == stamp) {
            // Linked by a writer killed before it moved the coverage (perhaps before it
            // pointed the table at it).
            return table::note(self, key, at);
        }
        let older = found.map_or(0, |(at, _)| at);
        let (at, height) = self
            .write_node(stamp, key, value, older, 0)
            .ok_or(Damaged)?;
        search.link(at, height, &prev)?;
        table::note(self, key, at)
    }

    /// Puts a new entry on the recent chain, with no search of the list (the table must
    /// exist: it names the key's newest entry, the new one's `older`).
    fn add_recent(&self, stamp: u64, key: &[u8], value: Option<&[u8]>) -> Result<(), Damaged> {
        let newest = table::newest(self, key)?;
        if let Some(n) = newest.filter(|n| self.is_version(*n, key, stamp)) {
            // Added by a writer killed before it moved the coverage.
            return table::note(self, key, n);
        }
        let head = header_word(&self.bytes, AT_RECENT).ok_or(Damaged)?;
        let count = header_word(&self.bytes, AT_RECENT_COUNT).ok_or(Damaged)?;
        let chain = head.load(Ordering::Relaxed) as usize;
        let (at, _) = self
            .write_node(stamp, key, value, newest.unwrap_or(0), chain)
            .ok_or(Damaged)?;
        head.store(at as u64, Ordering::Release);
        count.fetch_add(1, Ordering::Relaxed);
        table::note(self, key, at)
    }

    /// Whether the entry at `at` is `key`'s version stamped `stamp`.
    fn is_version(&self, at: usize, key: &[u8], stamp: u64) -> bool {
        entry(&self.bytes, at).is_some_and(|e| e.key == key && e.stamp == stamp)
    }

    /// Links the written entry at `at` of `height` levels after `prev` (the last node before
    /// it at each level), whose next pointers are `next`: its own pointers first, then its
    /// predecessors' (release), bottom level first. The predecessors' pointers are only
    /// stored, not loaded: a store maps the one page it writes, where a load of a page this
    /// process has not touched maps the pages around it too.
    fn link(
        &self,
        at: usize,
        height: usize,
        prev: &[usize; MAX_HEIGHT],
        next: &[usize; MAX_HEIGHT],
    ) -> Result<(), Damaged> {
        for level in 0..height {
            let (Some(from), Some(own)) = (
                next_slot(&self.bytes, prev[level], level),
                next_slot(&self.bytes, at, level),
            ) else {
                return Err(Damaged);
            };
            let next = u32::try_from(next[level]).map_err(|_| Damaged)?;
            own.store(next, Ordering::Relaxed);
            from.store(at as u32, Ordering::Release);
        }
        Ok(())
    }

    /// Links the recent chain's entries of committed transactions (stamped up to the
    /// coverage) into the list, in key order, and moves the merged offset to the coverage:
    /// readers then find them in the list. Entries past the coverage (a killed writer's)
    /// stay on the chain.
    fn merge_recent(&self, search: &mut Search<'_>) -> Result<(), Damaged> {
        let covered = self.covered();
        let (mut nodes, left): (Vec<_>, Vec<_>) = self
            .unmerged()?
            .into_iter()
            .map(|(at, e)| (e.key, e.stamp, at))
            .partition(|(_, stamp, _)| *stamp <= covered);
        // The list's order: keys ascending, stamps descending.
        nodes.sort_by(|a, b| a.0.cmp(b.0).then(b.1.cmp(&a.1)));
        for (key, stamp, at) in nodes {
            let mut prev = [0usize; MAX_HEIGHT];
            let found = search.find(key, stamp, &mut prev)?;
            if found.is_some_and(|(_, s)| s == stamp) {
                // Already linked (by a merge a kill cut short), or a duplicate of it.
                continue;
            }
            let height = node_height(&self.bytes, at).ok_or(Damaged)?;
            search.link(at, height, &prev)?;
        }
        header_word(&self.bytes, AT_MERGED)
            .ok_or(Damaged)?
            .store(covered, Ordering::Release);
        header_word(&self.bytes, AT_RECENT_COUNT)
            .ok_or(Damaged)?
            .store(left.len() as u64, Ordering::Relaxed);
        Ok(())
    }

    /// Writes an entry node, not linked yet; its offset and height.
    fn write_node(
        &self,
        stamp: u64,
        key: &[u8],
        value: Option<&[u8]>,
        older: usize,
        chain: usize,
    ) -> Option<(usize, usize)> {
        let height = height_for(stamp, key);
        let val_len = value.map_or(0, <[u8]>::len);
        let at = self.alloc(ENTRY_FIXED + 4 * height + key.len() + val_len)?;
        let mut fixed = [0u8; ENTRY_FIXED];
        fixed[0..8].copy_from_slice(&stamp.to_le_bytes());
        fixed[8..12].copy_from_slice(&(key.len() as u32).to_le_bytes());
        let val_field = value.map_or(TOMBSTONE, |v| v.len() as u32);
        fixed[12..16].copy_from_slice(&val_field.to_le_bytes());
        fixed[16..20].copy_from_slice(&(height as u32).to_le_bytes());
        fixed[ENTRY_OLDER..ENTRY_OLDER + 4].copy_from_slice(&(older as u32).to_le_bytes());
        fixed[ENTRY_CHAIN..ENTRY_CHAIN + 4].copy_from_slice(&(chain as u32).to_le_bytes());
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
        let mut nodes: Vec<(usize, usize)> = Vec::new();
        for group in entries.chunk_by(|a, b| a.0 == b.0) {
            // A key's versions are written oldest first, each naming the one before it
            // (`older`), then linked newest first.
            nodes.clear();
            let mut older = 0;
            for &(key, stamp, value) in group.iter().rev() {
                let Some(node) = self.write_node(stamp, key, value, older, 0) else {
                    self.seal();
                    return false;
                };
                older = node.0;
                nodes.push(node);
            }
            for &(at, height) in nodes.iter().rev() {
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
        prev: Option<&mut [usize; MAX_HEIGHT]>,
    ) -> Result<Option<usize>, Damaged> {
        descend(self, &mut Mapped(&self.bytes), key, limit, prev)
    }

    /// [`LogIndex::find`] for a writer: the entry found, with its stamp, only if it holds
    /// `key` (the writer's search through the map; `cold.rs` is the other).
    fn find_version_of(
        &self,
        key: &[u8],
        limit: u64,
        prev: &mut [usize; MAX_HEIGHT],
    ) -> Result<Option<(usize, u64)>, Damaged> {
        let Some(at) = self.find(key, limit, Some(prev))? else {
            return Ok(None);
        };
        let e = entry(&self.bytes, at).ok_or(Damaged)?;
        Ok((e.key == key).then_some((at, e.stamp)))
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
        // Without a table (a damaged one): the list, and the recent chain.
        let listed = match self.find(key, limit, None)? {
            Some(at) => Some(entry(&self.bytes, at).ok_or(Damaged)?).filter(|e| e.key == key),
            None => None,
        };
        let mut newest = listed;
        for e in self.recent_at(limit)? {
            if e.key == key && newest.is_none_or(|n| e.stamp > n.stamp) {
                newest = Some(e);
            }
        }
        Ok(newest)
    }

    /// The entries of the recent chain a view at `limit` reads besides the list (those not
    /// merged into it yet), newest first.
    pub(crate) fn recent_at(&self, limit: u64) -> Result<Vec<Entry<'_>>, Damaged> {
        Ok(self
            .unmerged()?
            .into_iter()
            .map(|(_, e)| e)
            .filter(|e| e.stamp <= limit)
            .collect())
    }

    /// Every entry of the recent chain not merged into the list (stamped past `merged`),
    /// newest first: the one walk of the chain.
    pub(super) fn unmerged(&self) -> Result<Vec<(usize, Entry<'_>)>, Damaged> {
        // The merged offset first: entries stamped up to it were linked before it moved.
        let merged = word(&self.bytes, AT_MERGED);
        let mut steps = ChainSteps::default();
        let mut out = Vec::new();
        let mut at = word(&self.bytes, AT_RECENT) as usize;
        while at != 0 {
            let e = entry(&self.bytes, at).ok_or(Damaged)?;
            if e.stamp <= merged {
                break;
            }
            steps.take()?;
            out.push((at, e));
            at = e.chain;
        }
        Ok(out)
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

/// What a descent of the list reads of its nodes: through the map ([`Mapped`]) or from the
/// writer's private copies (`cold::ColdReader`).
trait ListNodes {
    /// The `level` next pointer of the node at `at` (`at == 0`: the head).
    fn next(&mut self, at: usize, level: usize) -> Result<usize, Damaged>;
    /// The key and stamp of the entry at `at`.
    fn key_stamp(&mut self, at: usize) -> Result<(&[u8], u64), Damaged>;
}

/// The list's nodes read through the map.
struct Mapped<'a>(&'a SharedBytes);

impl ListNodes for Mapped<'_> {
    fn next(&mut self, at: usize, level: usize) -> Result<usize, Damaged> {
        Ok(load_next(next_slot(self.0, at, level)))
    }

    fn key_stamp(&mut self, at: usize) -> Result<(&[u8], u64), Damaged> {
        entry(self.0, at).map(|e| (e.key, e.stamp)).ok_or(Damaged)
    }
}

/// The one descent of the list: the first entry at or after `(key, newest stamp <= limit)`
/// (keys ascending, stamps descending); with `prev`, the last node before it at each level.
fn descend(
    index: &LogIndex,
    nodes: &mut impl ListNodes,
    key: &[u8],
    limit: u64,
    mut prev: Option<&mut [usize; MAX_HEIGHT]>,
) -> Result<Option<usize>, Damaged> {
    let mut steps = Budget::of(index);
    let mut at = 0usize;
    // The node each level stopped at: at the bottom, the answer. It is the node that was
    // compared, never the pointer loaded again (a writer may have linked a node in between
    // meanwhile, one the comparison never saw).
    let mut found = 0usize;
    for level in (0..MAX_HEIGHT).rev() {
        found = 0;
        loop {
            let next = nodes.next(at, level)?;
            if next == 0 {
                break;
            }
            let (k, stamp) = nodes.key_stamp(next)?;
            if !(k < key || (k == key && stamp > limit)) {
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

/// The writer's searches of the list during one hold of the writer lock: through the map, or,
/// for the first [`COLD_SEARCHES`] of the process, through `pread` (`cold.rs`).
#[derive(Debug)]
struct Search<'a> {
    index: &'a LogIndex,
    /// The copies of the nodes read; `None` through the map.
    cold: Option<cold::ColdReader<'a>>,
    /// Whether this process is past its first searches (they all go through the map now).
    mapped: bool,
}

impl<'a> Search<'a> {
    fn new(index: &'a LogIndex) -> Search<'a> {
        Search {
            index,
            cold: None,
            mapped: index.searches.load(Ordering::Relaxed) >= COLD_SEARCHES,
        }
    }

    /// Where `(key, limit)` goes in the list: the last node before it at each level in
    /// `prev`, and the first entry at or after it, with its stamp, if it holds `key`.
    fn find(
        &mut self,
        key: &[u8],
        limit: u64,
        prev: &mut [usize; MAX_HEIGHT],
    ) -> Result<Option<(usize, u64)>, Damaged> {
        let ix = self.index;
        if !self.mapped {
            if ix.searches.fetch_add(1, Ordering::Relaxed) < COLD_SEARCHES {
                return self
                    .cold
                    .get_or_insert_with(|| cold::ColdReader::new(ix))
                    .find(key, limit, prev);
            }
            // Through the map from now on: the copies are not needed again (and a link no
            // longer has any to forget).
            self.mapped = true;
            self.cold = None;
        }
        ix.find_version_of(key, limit, prev)
    }

    /// Links the written entry at `at` after `prev` ([`LogIndex::link`]), the predecessors'
    /// next pointers taken from the nodes the search read (through the map: loaded); the
    /// nodes whose links changed are read again by a later search.
    fn link(
        &mut self,
        at: usize,
        height: usize,
        prev: &[usize; MAX_HEIGHT],
    ) -> Result<(), Damaged> {
        let mut next = [0usize; MAX_HEIGHT];
        for level in 0..height {
            next[level] = match self.cold.as_mut() {
                Some(cold) => cold.next(prev[level], level)?,
                None => load_next(next_slot(&self.index.bytes, prev[level], level)),
            };
        }
        self.index.link(at, height, prev, &next)?;
        if let Some(cold) = self.cold.as_mut() {
            for &p in &prev[..height] {
                cold.forget(p);
            }
            cold.forget(at);
        }
        Ok(())
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

/// Bounds a walk of the recent chain ([`RECENT_WALK_MAX`]).
#[derive(Debug, Default)]
struct ChainSteps(usize);

impl ChainSteps {
    fn take(&mut self) -> Result<(), Damaged> {
        self.0 += 1;
        if self.0 > RECENT_WALK_MAX {
            return Err(Damaged);
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
