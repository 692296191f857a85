//! An open snapshot file: mapped, its header checked, then read by index (entries, key
//! prefixes, the filter, the range deletions). A paged (version 3 or 4) file's body is checked
//! page by page as it is first read, against the page's CRC in the page table (FORMAT.md
//! §5.4): an open costs O(1) of the file, its page table included, and a read of a damaged
//! page (or of a page whose CRC in the table is damaged) is `Error::Corruption` naming the
//! page. A version 2 file is checked completely at open, as before. An entry's lengths are
//! decoded by `layout::EntryLengths` (version 4: varints, §5.5). [`Segment::verify`] checks
//! everything.

use super::fences::{window_and_guess, FenceState, LazyFences, FENCE_STRIDE};
use super::filter::{filter_holds, FilterPlan, FilterUse, KeyHash};
use super::header::{read_header, HeaderProblem};
use super::layout::{
    decode_range_deletes, key_prefix, page_count, EntryLengths, RangeDelete, SegmentMeta,
    ENTRY_COUNT_AT, INDEX_ENTRY_BYTES, PAGE_BYTES, SHARED_PREFIX_AT, SNAPSHOT_HEADER_BYTES,
};
use crate::error::{Error, Result};
use crate::format::{crc32, read_u32};
use crate::storage::{Mapping, OpenMode, Storage};
use std::cmp::Ordering;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering as AtomicOrdering};
use std::sync::Arc;

/// Index entries read on each side of a fence search's guess (FENCE_STRIDE entries between
/// two fences put the answer within about 4 of it when keys spread evenly).
const GUESS_REACH: usize = 10;

/// An open snapshot file.
pub struct Segment {
    id: u64,
    path: PathBuf,
    map: Arc<dyn Mapping>,
    entry_count: usize,
    index_offset: usize,
    filter_offset: usize,
    filter_probes: u32,
    range_deletes_offset: usize,
    /// Length of the prefix every key of the file shares; index prefixes start after it.
    shared_prefix_len: usize,
    range_deletes: Vec<RangeDelete>,
    /// Where the body ends (the page table of a version 3 or 4 file, else the file's end).
    body_end: usize,
    /// How entries store their lengths (version 4: varints, FORMAT.md §5.5).
    lengths: EntryLengths,
    /// A version 3 or 4 file's page CRCs, and which pages this process has checked.
    pages: Option<Pages>,
    /// Every 64th index key prefix, built once this file has served enough searches.
    fences: LazyFences,
    /// Whether point reads of this file ask its filter (once it has fences).
    filter_use: FilterUse,
    /// Searches answered from the entries around the fences' guess (tests).
    #[cfg(test)]
    guessed: AtomicUsize,
    /// Point reads that asked the filter (tests).
    #[cfg(test)]
    filter_asked: AtomicUsize,
}

/// The page table of a version 3 or 4 snapshot file and a bit per page this process has
/// checked (a page, once checked, is read without checking again).
struct Pages {
    table: usize,
    /// The page table's CRC, as the header carries it (checked only by `Segment::verify`).
    table_crc: u32,
    checked: Box<[AtomicU64]>,
    /// Pages not checked yet: at 0 (every page of the file read once), a read checks nothing.
    unchecked: AtomicUsize,
}

impl Pages {
    fn new(table: usize, table_crc: u32) -> Pages {
        let count = page_count(table - SNAPSHOT_HEADER_BYTES);
        Pages {
            table,
            table_crc,
            checked: (0..count.div_ceil(64)).map(|_| AtomicU64::new(0)).collect(),
            unchecked: AtomicUsize::new(count),
        }
    }

    /// Whether every page was checked (by any thread of this process).
    #[inline]
    fn all_checked(&self) -> bool {
        self.unchecked.load(AtomicOrdering::Relaxed) == 0
    }

    /// Checks every page that `[at, end)` of `bytes` touches and was not checked yet; the
    /// offset of the first damaged page otherwise. The file never changes, so a page checked
    /// by any thread stays checked (the bits are a cache of verdicts, not a guard of data).
    /// Inline: the test of "every page checked"; the rest is out of line.
    #[inline(always)]
    fn check(&self, bytes: &[u8], at: usize, end: usize) -> std::result::Result<(), usize> {
        if self.all_checked() {
            return Ok(());
        }
        self.check_pages(bytes, at, end)
    }

    #[inline(never)]
    fn check_pages(&self, bytes: &[u8], at: usize, end: usize) -> std::result::Result<(), usize> {
        if end <= at || end <= SNAPSHOT_HEADER_BYTES {
            return Ok(());
        }
        let first = at.saturating_sub(SNAPSHOT_HEADER_BYTES) / PAGE_BYTES;
        let last = (end - 1 - SNAPSHOT_HEADER_BYTES) / PAGE_BYTES;
        for page in first..=last {
            let (word, bit) = (&self.checked[page / 64], 1u64 << (page % 64));
            if word.load(AtomicOrdering::Relaxed) & bit != 0 {
                continue;
            }
            let start = SNAPSHOT_HEADER_BYTES + page * PAGE_BYTES;
            let stop = (start + PAGE_BYTES).min(self.table);
            let stored = read_u32(bytes, self.table + 4 * page);
            if stored != Some(crc32(&bytes[start..stop])) {
                return Err(start);
            }
            if word.fetch_or(bit, AtomicOrdering::Relaxed) & bit == 0 {
                self.unchecked.fetch_sub(1, AtomicOrdering::Relaxed);
            }
        }
        Ok(())
    }
}

impl fmt::Debug for Segment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Segment")
            .field("id", &self.id)
            .field("entries", &self.entry_count)
            .field("range_deletes", &self.range_deletes.len())
            .field("bytes", &self.map.bytes().len())
            .finish()
    }
}

impl Segment {
    /// Maps the snapshot file `meta` describes and checks its header (and its range
    /// deletions) against the file and against `meta`: id, length and entry count. Not the
    /// first key: it is in two pages (the first entry's and the index's), which every
    /// one-shot process would fault in and check for every run file it opens; the manifest's
    /// copy is the one reads route by, and [`Segment::verify_against`] compares the two.
    pub fn open(storage: &dyn Storage, dir: &Path, meta: &SegmentMeta) -> Result<Segment> {
        let path = dir.join(crate::format::snapshot_name(meta.file_id));
        let file = storage
            .open(&path, OpenMode::ReadOnly)
            .map_err(|e| Error::io("open snapshot", &path, e))?;
        let map = file.map().map_err(|e| Error::io("mmap", &path, e))?;
        let segment = Segment::from_mapping(meta.file_id, path, map)?;
        let corrupt = |detail: String| Err(Error::corruption(&segment.path, 0, detail));
        if segment.map.bytes().len() as u64 != meta.file_len {
            return corrupt(format!(
                "snapshot is {} bytes, the manifest says {}",
                segment.map.bytes().len(),
                meta.file_len
            ));
        }
        if segment.entry_count as u64 != meta.entry_count {
            return corrupt("entry count differs from the manifest".into());
        }
        Ok(segment)
    }

    /// [`Segment::verify`], then that the file's first key is the one `meta` (the
    /// manifest) gives it, which is what reads use to pick the file of a run holding a key
    /// (`walstore verify` and a salvage open check this of every file).
    pub fn verify_against(&self, meta: &SegmentMeta) -> Result<()> {
        self.verify()?;
        if self.first_key()? != &meta.first_key[..] {
            return Err(self.corrupt(0, "first key differs from the manifest"));
        }
        Ok(())
    }

    /// Checks a mapped snapshot file's header, the page table's place and the range
    /// deletions (a version 2 file: everything, FORMAT.md §5); a paged body's other pages are
    /// checked as read, each against its entry in the page table.
    pub fn from_mapping(expected_id: u64, path: PathBuf, map: Arc<dyn Mapping>) -> Result<Segment> {
        let bytes = map.bytes();
        let header = match read_header(bytes, expected_id) {
            Ok(header) => header,
            Err(HeaderProblem::Unsupported(found)) => {
                return Err(Error::UnsupportedFormat {
                    file: path,
                    found,
                    supported: super::layout::SNAPSHOT_VERSION_VARINT,
                })
            }
            Err(HeaderProblem::Corrupt(offset, detail)) => {
                return Err(Error::corruption(&path, offset as u64, detail))
            }
        };
        let mut segment = Segment {
            id: expected_id,
            path,
            map: Arc::clone(&map),
            entry_count: header.entry_count,
            index_offset: header.index_offset,
            filter_offset: header.filter_offset,
            filter_probes: header.filter_probes,
            range_deletes_offset: header.range_deletes_offset,
            shared_prefix_len: header.shared_prefix_len,
            range_deletes: Vec::new(),
            body_end: header.body_end,
            lengths: header.lengths,
            pages: header
                .paged
                .then(|| Pages::new(header.body_end, header.table_crc)),
            fences: LazyFences::default(),
            filter_use: FilterUse::default(),
            #[cfg(test)]
            guessed: AtomicUsize::new(0),
            #[cfg(test)]
            filter_asked: AtomicUsize::new(0),
        };
        let at = header.range_deletes_offset;
        let block = segment.checked(at, header.body_end - at)?;
        segment.range_deletes = decode_range_deletes(block, header.range_delete_count, at)
            .map_err(|(at, detail)| segment.corrupt(at, detail))?;
        if segment.pages.is_none() {
            // Version 2: one CRC over the body, checked at open with everything else.
            segment.validate_entries()?;
        }
        Ok(segment)
    }

    /// Checks the whole file: every page, the page table's own CRC, then every entry's
    /// structure (what an open of a version 2 file checks; `walstore verify` checks this of
    /// every file).
    pub fn verify(&self) -> Result<()> {
        if let Some(pages) = &self.pages {
            self.checked(SNAPSHOT_HEADER_BYTES, self.body_end - SNAPSHOT_HEADER_BYTES)?;
            // Every page matched its entry, so a table whose CRC differs was written wrong.
            let table = &self.map.bytes()[pages.table..];
            if crc32(table) != pages.table_crc {
                return Err(self.corrupt(pages.table, "snapshot page table checksum mismatch"));
            }
            self.validate_entries()?;
        }
        Ok(())
    }

    /// Pages of a paged file not checked yet by this process (0 for version 2).
    #[cfg(test)]
    pub(super) fn unchecked_pages(&self) -> usize {
        self.pages
            .as_ref()
            .map_or(0, |p| p.unchecked.load(AtomicOrdering::Relaxed))
    }

    /// `len` bytes of the body at `at`, their pages checked first (versions 3, 4).
    #[inline(always)]
    fn checked(&self, at: usize, len: usize) -> Result<&[u8]> {
        let bytes = self.map.bytes();
        self.checked_in(bytes, at, len)
    }

    /// [`Segment::checked`] of `bytes`, the file's map (callers in a loop fetch it once).
    #[inline(always)]
    fn checked_in<'b>(&self, bytes: &'b [u8], at: usize, len: usize) -> Result<&'b [u8]> {
        let end = match at.checked_add(len) {
            Some(end) if end <= self.body_end && end <= bytes.len() => end,
            _ => return Err(self.corrupt(at, "read past the snapshot body")),
        };
        if let Some(pages) = &self.pages {
            if let Err(page) = pages.check(bytes, at, end) {
                return Err(self.corrupt(page, "snapshot page checksum mismatch"));
            }
        }
        Ok(&bytes[at..end])
    }

    /// Checks that the entries tile the body exactly and that keys strictly increase.
    fn validate_entries(&self) -> Result<()> {
        let mut expected_offset = SNAPSHOT_HEADER_BYTES;
        let mut previous: Option<&[u8]> = None;
        let mut first: Option<&[u8]> = None;
        for i in 0..self.entry_count {
            let offset = self.entry_offset(i)?;
            if offset != expected_offset {
                return Err(self.corrupt(self.index_slot(i), "entry offsets do not tile the body"));
            }
            // The lengths' ranges are checked by the decoding, for every read.
            let (key, _, end) = self.entry_at(offset)?;
            if previous.is_some_and(|p| p >= key) {
                return Err(self.corrupt(offset, "keys are not strictly increasing"));
            }
            let shared = self.shared_prefix_len;
            let first = *first.get_or_insert(key);
            if key.len() < shared || first.len() < shared || key[..shared] != first[..shared] {
                return Err(
                    self.corrupt(offset, "key does not start with the file's shared prefix")
                );
            }
            if self.prefix(i)? != key_prefix(&key[shared..]) {
                return Err(
                    self.corrupt(self.index_slot(i), "index key prefix differs from the key")
                );
            }
            previous = Some(key);
            expected_offset = end;
        }
        if self.entry_count == 0 && self.shared_prefix_len != 0 {
            return Err(self.corrupt(
                SHARED_PREFIX_AT,
                "shared key prefix in a file without entries",
            ));
        }
        if expected_offset != self.index_offset {
            return Err(self.corrupt(expected_offset, "entries do not end at the index"));
        }
        Ok(())
    }

    #[cold]
    #[inline(never)]
    fn corrupt(&self, offset: usize, detail: &str) -> Error {
        Error::corruption(&self.path, offset as u64, detail)
    }

    /// File id.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The key the manifest records for this file: its first entry's key, or, for a file
    /// without entries, its first range deletion's start.
    pub fn first_key(&self) -> Result<&[u8]> {
        if self.entry_count > 0 {
            return Ok(self.entry(0)?.0);
        }
        match self.range_deletes.first() {
            Some(d) => Ok(&d.start),
            None => Err(self.corrupt(ENTRY_COUNT_AT, "snapshot file holds nothing")),
        }
    }

    /// The range deletions this file carries (FORMAT.md §5.3).
    pub fn range_deletes(&self) -> &[RangeDelete] {
        &self.range_deletes
    }

    /// Whether the file may hold an entry for the key of filter hash `hash`: false means it
    /// certainly does not (the bloom filter, FORMAT.md §5.2). The caller hashes the key once
    /// for every file it asks.
    #[inline]
    pub fn may_contain_hashed(&self, hash: KeyHash) -> Result<bool> {
        if self.entry_count == 0 {
            return Ok(false);
        }
        let (at, end) = (self.filter_offset, self.range_deletes_offset);
        let bytes = self.map.bytes();
        // The header's checks put the filter inside the body.
        filter_holds(&bytes[at..end], self.filter_probes, hash, |byte| {
            self.checked_in(bytes, at + byte, 1).map(drop)
        })
    }

    /// Whether a point read of the key of filter hash `hash` should search this file: the
    /// filter's answer, or `true` without asking it while asking does not pay. That is decided
    /// only for a file with fences, whose search without the filter reads a few adjacent
    /// index lines (`FilterUse`); a file without them always asks.
    #[inline]
    pub fn worth_searching(&self, hash: KeyHash) -> Result<bool> {
        let plan = if self.fences.ready().is_some() {
            self.filter_use.plan()
        } else {
            FilterPlan::Ask { learn: false }
        };
        match plan {
            FilterPlan::Skip => Ok(true),
            FilterPlan::Ask { learn } => {
                #[cfg(test)]
                self.filter_asked.fetch_add(1, AtomicOrdering::Relaxed);
                let maybe = self.may_contain_hashed(hash)?;
                if learn {
                    self.filter_use.learn(!maybe);
                }
                Ok(maybe)
            }
        }
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entry_count
    }

    fn index_slot(&self, i: usize) -> usize {
        self.index_offset + INDEX_ENTRY_BYTES * i
    }

    /// The key prefix stored in index entry `i`.
    #[inline]
    fn prefix(&self, i: usize) -> Result<u64> {
        self.prefix_in(self.map.bytes(), i)
    }

    /// [`Segment::prefix`] of `bytes`, the file's map.
    #[inline(always)]
    fn prefix_in(&self, bytes: &[u8], i: usize) -> Result<u64> {
        let b = self.checked_in(bytes, self.index_slot(i), 8)?;
        Ok(u64::from_be_bytes([
            b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7],
        ]))
    }

    #[inline]
    pub(super) fn entry_offset(&self, i: usize) -> Result<usize> {
        let slot = self.checked(self.index_slot(i) + 8, 4)?;
        read_u32(slot, 0)
            .map(|o| o as usize)
            .ok_or_else(|| self.corrupt(self.index_offset, "index entry out of bounds"))
    }

    /// Key, value (`None` for a tombstone) and end offset of the entry starting at `offset`.
    #[allow(clippy::type_complexity)]
    #[inline]
    fn entry_at(&self, offset: usize) -> Result<(&[u8], Option<&[u8]>, usize)> {
        let out_of_bounds = || self.corrupt(offset, "entry out of bounds");
        if offset < SNAPSHOT_HEADER_BYTES || offset >= self.index_offset {
            return Err(out_of_bounds());
        }
        // The lengths take at most `max_head_bytes`; entries end at the index, so a head
        // never reaches past it.
        let window = self
            .lengths
            .max_head_bytes()
            .min(self.index_offset - offset);
        let head = self.checked(offset, window)?;
        let head = self
            .lengths
            .decode(head)
            .map_err(|detail| self.corrupt(offset, detail))?;
        let key_start = offset + head.head_len;
        let end = key_start
            .checked_add(head.key_len)
            .and_then(|v| v.checked_add(head.value_len.unwrap_or(0)))
            .filter(|end| *end <= self.index_offset)
            .ok_or_else(out_of_bounds)?;
        let kv = self.checked(key_start, end - key_start)?;
        let (key, value) = kv.split_at(head.key_len);
        Ok((key, head.value_len.map(|_| value), end))
    }

    /// The key and value (`None`: the key is deleted) of entry `i`.
    pub fn entry(&self, i: usize) -> Result<(&[u8], Option<&[u8]>)> {
        let (k, v, _) = self.entry_at(self.entry_offset(i)?)?;
        Ok((k, v))
    }

    /// What the file holds for `key`: `None` no entry, `Some(None)` a tombstone,
    /// `Some(Some(value))` a value. One search, and the entry it finds decoded once.
    pub fn get(&self, key: &[u8]) -> Result<Option<Option<&[u8]>>> {
        let i = self.lower_bound(key, false)?;
        if i >= self.entry_count {
            return Ok(None);
        }
        let (found, value, _) = self.entry_at(self.entry_offset(i)?)?;
        Ok((found == key).then_some(value))
    }

    /// The mapped bytes.
    pub fn bytes(&self) -> &[u8] {
        self.map.bytes()
    }

    /// Index of the first entry whose key is `>= key` (or `> key` when `after` is true).
    /// The search compares the index's key prefixes first (contiguous, no indirection) and
    /// reads a full key only when the prefixes tie. Once the file has fences (`fences.rs`),
    /// they narrow the search to a window of (usually) fewer than 64 index entries.
    pub fn lower_bound(&self, key: &[u8], after: bool) -> Result<usize> {
        let shared = self.shared_prefix_len;
        if shared > 0 {
            // Every key of the file starts with the shared prefix: a key that does not is
            // below or above all of them.
            let common = &self.entry(0)?.0[..shared];
            let head = &key[..key.len().min(shared)];
            match head.cmp(common) {
                Ordering::Less => return Ok(0),
                Ordering::Greater => return Ok(self.entry_count),
                Ordering::Equal if key.len() < shared => return Ok(0),
                Ordering::Equal => {}
            }
        }
        let target = key_prefix(&key[shared..]);
        let bytes = self.map.bytes();
        let n = self.entry_count;
        let fences = match self.fences.state(n) {
            FenceState::Ready(fences) => Some(fences),
            FenceState::Build => self.fences.build(n, |i| self.prefix_in(bytes, i)),
            FenceState::Plain => None,
        };
        let (lo, hi, guess) = match fences {
            Some(fences) => {
                let (lo, hi, guess) = window_and_guess(fences, target, n);
                (lo.min(n), hi.min(n), guess)
            }
            None => (0, n, None),
        };
        let lo = lo.min(hi);
        if let Some(guess) = guess {
            if let Some((from, to)) = self.near_guess(bytes, lo, hi, guess, target)? {
                return self.search_probes(bytes, from, to, key, target, after);
            }
        }
        self.search(bytes, lo, hi, key, target, after)
    }

    /// The entries `[from, to)` of window `[lo, hi)` that share `target` as their prefix
    /// (`from == to`: none, and `from` is where the prefix would go), found by reading only
    /// the [`GUESS_REACH`] entries on each side of `guess`; `None` when those do not prove it
    /// (the boundaries may lie outside them), and the caller reads the whole window.
    fn near_guess(
        &self,
        bytes: &[u8],
        lo: usize,
        hi: usize,
        guess: usize,
        target: u64,
    ) -> Result<Option<(usize, usize)>> {
        let from = guess.saturating_sub(GUESS_REACH).max(lo);
        let to = (guess + GUESS_REACH + 1).min(hi);
        if from >= to {
            return Ok(None);
        }
        let (below, up_to) = self.count_around(bytes, from, to, target)?;
        // Entries are sorted: the first entry not below the target, and the first above it,
        // are inside `[from, to]` when the part read has an entry before each (or starts the
        // window) and one from each on (or ends it).
        let starts_inside = below > 0 || from == lo;
        let ends_inside = up_to < to - from || to == hi;
        if !(starts_inside && ends_inside) {
            return Ok(None);
        }
        #[cfg(test)]
        self.guessed.fetch_add(1, AtomicOrdering::Relaxed);
        Ok(Some((from + below, from + up_to)))
    }

    /// How many of index entries `[s, e)` have a key prefix below `target`, and how many up
    /// to it (their pages checked once): independent loads, fetched together.
    #[inline]
    fn count_around(
        &self,
        bytes: &[u8],
        s: usize,
        e: usize,
        target: u64,
    ) -> Result<(usize, usize)> {
        let slots = self.checked_in(bytes, self.index_slot(s), INDEX_ENTRY_BYTES * (e - s))?;
        let (mut below, mut up_to) = (0, 0);
        for b in slots.chunks_exact(INDEX_ENTRY_BYTES) {
            let prefix = u64::from_be_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]);
            below += usize::from(prefix < target);
            up_to += usize::from(prefix <= target);
        }
        Ok((below, up_to))
    }

    /// [`Segment::lower_bound`] within entries `[lo, hi)`, which hold the answer (`hi`
    /// included); `target` is the key's prefix. A window of at most [`FENCE_STRIDE`] entries
    /// (a fence search's, or a small file) is read whole, its pages checked once: counting the
    /// prefixes below and up to `target` makes its cache lines independent loads, fetched
    /// together, where a binary search would wait for one miss after another. A wider window
    /// is searched probe by probe, so a search touches only the pages it reads.
    #[inline]
    fn search(
        &self,
        bytes: &[u8],
        lo: usize,
        hi: usize,
        key: &[u8],
        target: u64,
        after: bool,
    ) -> Result<usize> {
        if hi - lo > FENCE_STRIDE {
            return self.search_probes(bytes, lo, hi, key, target, after);
        }
        let (below, up_to) = self.count_around(bytes, lo, hi, target)?;
        // Entries `lo + below .. lo + up_to` share the key's prefix: full keys decide.
        self.search_probes(bytes, lo + below, lo + up_to, key, target, after)
    }

    /// [`Segment::search`] of a window of any width, one checked index slot per probe.
    fn search_probes(
        &self,
        bytes: &[u8],
        mut lo: usize,
        mut hi: usize,
        key: &[u8],
        target: u64,
        after: bool,
    ) -> Result<usize> {
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let order = match self.prefix_in(bytes, mid)?.cmp(&target) {
                Ordering::Equal => self.entry(mid)?.0.cmp(key),
                other => other,
            };
            let go_right = match order {
                Ordering::Less => true,
                Ordering::Equal => after,
                Ordering::Greater => false,
            };
            if go_right {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        Ok(lo)
    }
}

#[cfg(test)]
impl Segment {
    /// Builds this file's fences now, whatever the searches served (false: not built).
    fn build_fences_now(&self) -> bool {
        let bytes = self.map.bytes();
        self.fences
            .build(self.entry_count, |i| self.prefix_in(bytes, i))
            .is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::super::fences::build_after;
    use super::super::SegmentWriter;
    use super::*;
    use crate::storage::{MemoryStorage, Storage};
    use std::collections::BTreeSet;

    /// A small deterministic generator (tests must be reproducible).
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 = self
                .0
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let x = self.0;
            (x ^ (x >> 31)).wrapping_mul(0x9e37_79b9_7f4a_7c15)
        }

        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }

        /// `len` bytes drawn from `alphabet`.
        fn bytes(&mut self, len: usize, alphabet: &[u8]) -> Vec<u8> {
            (0..len)
                .map(|_| alphabet[self.below(alphabet.len() as u64) as usize])
                .collect()
        }
    }

    /// Writes `keys` (sorted, distinct) with short values as snapshot file 1 of `fs`,
    /// returning its metadata and bytes.
    fn write(fs: &MemoryStorage, keys: &BTreeSet<Vec<u8>>) -> (SegmentMeta, Vec<u8>) {
        fs.create_dir_all(Path::new("/s")).expect("mkdir");
        let path = Path::new("/s").join(crate::format::snapshot_name(1));
        let mut w = SegmentWriter::create(fs, path.clone(), 1).expect("create");
        for (i, k) in keys.iter().enumerate() {
            w.add(k, Some(format!("v{i}").as_bytes())).expect("add");
        }
        let meta = w.finish(true).expect("finish");
        (meta, fs.read_file(&path).expect("file"))
    }

    fn open(fs: &MemoryStorage, meta: &SegmentMeta) -> Segment {
        Segment::open(fs, Path::new("/s"), meta).expect("open")
    }

    /// Key sets of every shape the search must handle: random keys, keys that share a long
    /// prefix (the file's shared prefix), keys whose first 8 bytes after it tie across many
    /// fences, short keys (prefixes padded with zeros) and keys that are prefixes of others.
    fn key_sets() -> Vec<(&'static str, BTreeSet<Vec<u8>>)> {
        let mut rng = Rng(7);
        let mut sets = Vec::new();
        let random: BTreeSet<Vec<u8>> = (0..6000)
            .map(|_| {
                let len = 1 + rng.below(24) as usize;
                rng.bytes(len, b"\x00\x01abcxyz\xfe\xff")
            })
            .collect();
        sets.push(("random", random));
        let shared: BTreeSet<Vec<u8>> = (0..6000)
            .map(|_| {
                let mut k = b"tenant/0042/".to_vec();
                let len = 1 + rng.below(12) as usize;
                k.extend(rng.bytes(len, b"abcd"));
                k
            })
            .collect();
        sets.push(("shared prefix", shared));
        // 8-byte heads from a handful: thousands of keys per head, so fences tie.
        let ties: BTreeSet<Vec<u8>> = (0..6000)
            .map(|_| {
                let mut k = rng.bytes(8, b"ab");
                k.truncate(1 + rng.below(8) as usize + 7 * (rng.below(4) != 0) as usize);
                let len = rng.below(10) as usize;
                k.extend(rng.bytes(len, b"\x00pq"));
                k
            })
            .collect();
        sets.push(("tied prefixes", ties));
        let nested: BTreeSet<Vec<u8>> = (0..3000u32)
            .flat_map(|i| {
                let k = format!("{:07}", i * 7).into_bytes();
                let mut longer = k.clone();
                longer.extend_from_slice(b"\x00\x00tail");
                [k, longer]
            })
            .collect();
        sets.push(("nested", nested));
        // 16 bytes spread evenly (hashed keys): searches through the fences are answered from
        // the entries around their guess.
        let uniform: BTreeSet<Vec<u8>> = (0..6000)
            .map(|_| {
                let mut k = rng.next().to_be_bytes().to_vec();
                k.extend(rng.next().to_be_bytes());
                k
            })
            .collect();
        sets.push(("uniform", uniform));
        sets
    }

    /// Keys to search for: every key of the file, its neighbours, and random keys, including
    /// keys below and above every key of the file.
    fn queries(keys: &BTreeSet<Vec<u8>>, rng: &mut Rng) -> Vec<Vec<u8>> {
        let mut qs: Vec<Vec<u8>> = vec![vec![0], vec![0; 30], vec![0xff; 30], b"tenant/".to_vec()];
        for k in keys {
            qs.push(k.clone());
            let mut next = k.clone();
            next.push(0);
            qs.push(next);
            let mut shorter = k.clone();
            shorter.pop();
            if !shorter.is_empty() {
                qs.push(shorter);
            }
            let mut bumped = k.clone();
            let last = bumped.len() - 1;
            bumped[last] = bumped[last].wrapping_add(1);
            qs.push(bumped);
        }
        for _ in 0..3000 {
            let len = 1 + rng.below(20) as usize;
            qs.push(rng.bytes(len, b"\x00\x01abcdpqxyz0123456789/t\xff"));
        }
        qs
    }

    /// Keys `key00000000`, `key00000003`, ... (`n` of them), as a set and sorted: the keys
    /// every third number lacks are a search's misses.
    fn every_third_key(n: u32) -> (BTreeSet<Vec<u8>>, Vec<Vec<u8>>) {
        let keys: BTreeSet<Vec<u8>> = (0..n)
            .map(|i| format!("key{:08}", i * 3).into_bytes())
            .collect();
        let sorted = keys.iter().cloned().collect();
        (keys, sorted)
    }

    /// The model: a plain search of the sorted keys.
    fn model(keys: &[Vec<u8>], key: &[u8], after: bool) -> usize {
        keys.partition_point(|k| if after { &k[..] <= key } else { &k[..] < key })
    }

    #[test]
    fn searches_through_fences_match_a_model() {
        let mut rng = Rng(11);
        for (shape, keys) in key_sets() {
            let fs = MemoryStorage::new();
            let (meta, _) = write(&fs, &keys);
            let sorted: Vec<Vec<u8>> = keys.iter().cloned().collect();
            let qs = queries(&keys, &mut rng);
            let plain = open(&fs, &meta);
            let fenced = open(&fs, &meta);
            assert!(fenced.build_fences_now(), "{shape}: fences built");
            let mut searches = 0;
            for q in &qs {
                for after in [false, true] {
                    searches += 1;
                    let expected = model(&sorted, q, after);
                    let got = (plain.lower_bound(q, after), fenced.lower_bound(q, after));
                    assert_eq!(
                        (got.0.expect("plain"), got.1.expect("fenced")),
                        (expected, expected),
                        "{shape}: {q:?} after={after}"
                    );
                }
                let value = keys.contains(q).then(|| {
                    let i = model(&sorted, q, false);
                    format!("v{i}").into_bytes()
                });
                searches += 1;
                assert_eq!(
                    fenced.get(q).expect("get").map(|v| v.map(<[u8]>::to_vec)),
                    value.map(Some),
                    "{shape}: get {q:?}"
                );
            }
            let guessed = fenced.guessed.load(AtomicOrdering::Relaxed);
            if shape == "uniform" {
                assert!(
                    guessed * 10 > searches * 9,
                    "{shape}: {guessed} of {searches}"
                );
            }
        }
    }

    /// A file builds its fences by itself after `build_after` searches, not before, and
    /// searches agree before and after.
    #[test]
    fn fences_are_built_after_enough_searches() {
        let fs = MemoryStorage::new();
        let (keys, sorted) = every_third_key(5000);
        let (meta, _) = write(&fs, &keys);
        let seg = open(&fs, &meta);
        let mut rng = Rng(3);
        for n in 0..build_after(keys.len()) + 100 {
            assert_eq!(
                seg.fences.is_built(),
                n >= build_after(keys.len()),
                "after {n}"
            );
            let q = format!("key{:08}", rng.below(15_100)).into_bytes();
            let after = n % 2 == 0;
            assert_eq!(
                seg.lower_bound(&q, after).expect("search"),
                model(&sorted, &q, after)
            );
        }
        let fences = seg.fences.ready().expect("built");
        assert_eq!(fences.len(), keys.len().div_ceil(64));
        // Small files never build them.
        let small: BTreeSet<Vec<u8>> = keys.iter().take(500).cloned().collect();
        let fs = MemoryStorage::new();
        let (meta, _) = write(&fs, &small);
        let seg = open(&fs, &meta);
        for _ in 0..2 * build_after(small.len()) {
            seg.lower_bound(b"key00000300", false).expect("search");
        }
        assert!(!seg.fences.is_built());
    }

    /// A file with fences stops asking its filter while the lookups it serves find their keys
    /// (a filter that rules nothing out only costs its probes), asks it again once misses
    /// come, and answers as the model does throughout; before its fences it always asks.
    #[test]
    fn a_file_with_fences_skips_a_filter_that_rules_nothing_out() {
        use super::super::filter::{SAMPLE_EVERY, WINDOW};
        let fs = MemoryStorage::new();
        let (keys, sorted) = every_third_key(5000);
        let (meta, _) = write(&fs, &keys);
        let seg = open(&fs, &meta);
        // What a run's lookup does with the file.
        let lookup = |k: &[u8]| -> Option<Vec<u8>> {
            if !seg.worth_searching(KeyHash::of(k)).expect("filter") {
                return None;
            }
            let found = seg.get(k).expect("get");
            found.map(|v| v.expect("a value").to_vec())
        };
        let expected = |k: &[u8]| {
            keys.contains(k)
                .then(|| format!("v{}", model(&sorted, k, false)))
        };
        let mut rng = Rng(5);
        let mut hits = |n: u32| {
            for _ in 0..n {
                let k = &sorted[rng.below(sorted.len() as u64) as usize];
                assert_eq!(lookup(k), expected(k).map(String::into_bytes), "{k:?}");
            }
        };
        // Enough lookups for two decisions.
        let decide = 2 * SAMPLE_EVERY * WINDOW;
        hits(build_after(keys.len()) as u32 - 1);
        assert!(!seg.fences.is_built());
        assert!(
            !seg.filter_use.skips(),
            "without fences the filter is asked"
        );
        hits(decide);
        assert!(seg.fences.is_built());
        assert!(
            seg.filter_use.skips(),
            "every key found: the filter is skipped"
        );
        let asked = || seg.filter_asked.load(AtomicOrdering::Relaxed);
        let before = asked();
        hits(100 * SAMPLE_EVERY);
        let sampled = asked() - before;
        assert!(
            (50..=200).contains(&sampled),
            "only the sampled lookups ask: {sampled} of 6400"
        );
        let mut rng = Rng(6);
        for _ in 0..decide {
            let k = format!("key{:08}", 3 * rng.below(5000) + 1).into_bytes();
            assert_eq!(lookup(&k), None, "{k:?}");
        }
        assert!(
            !seg.filter_use.skips(),
            "keys the file does not hold: the filter is asked again"
        );
    }

    /// Threads searching one file while one of them builds its fences all get the plain
    /// search's answers, and exactly one set of fences results.
    #[test]
    fn threads_search_while_the_fences_are_built() {
        let fs = MemoryStorage::new();
        let keys: BTreeSet<Vec<u8>> = (0..20_000u32)
            .map(|i| format!("k{:09}", i * 5).into_bytes())
            .collect();
        let (meta, _) = write(&fs, &keys);
        let seg = open(&fs, &meta);
        let sorted: Vec<Vec<u8>> = keys.iter().cloned().collect();
        std::thread::scope(|s| {
            for t in 0..4u64 {
                let (seg, sorted) = (&seg, &sorted);
                s.spawn(move || {
                    let mut rng = Rng(100 + t);
                    for n in 0..build_after(sorted.len()) {
                        let q = format!("k{:09}", rng.below(100_010)).into_bytes();
                        let after = n % 3 == 0;
                        assert_eq!(
                            seg.lower_bound(&q, after).expect("search"),
                            model(sorted, &q, after),
                            "{q:?} after={after}"
                        );
                    }
                });
            }
        });
        assert!(seg.fences.is_built());
    }

    /// A damaged index page is `Error::Corruption` for every search whose window it holds,
    /// also through fences (built from an intact copy, as if the damage came after the
    /// build): the window's bytes are checked, never returned as data. Searches elsewhere
    /// still answer. A build that meets the damage leaves the file without fences.
    #[test]
    fn a_damaged_index_page_is_corruption_through_fences() {
        let fs = MemoryStorage::new();
        let (keys, sorted) = every_third_key(6000);
        let (meta, good) = write(&fs, &keys);
        let intact = open(&fs, &meta);
        assert!(intact.build_fences_now());
        // A prefix byte of entry 5100's index slot (a page a plain search for entry 10 does
        // not read: its probes are 3000, 1500, ...).
        let victim = 5100;
        let at = intact.index_slot(victim) + 5;
        let page_of = |i: usize| (intact.index_slot(i) - SNAPSHOT_HEADER_BYTES) / PAGE_BYTES;
        let mut bad = good.clone();
        bad[at] ^= 0x20;
        let path = Path::new("/s").join(crate::format::snapshot_name(1));
        fs.write_file_durable(&path, &bad);

        let damaged = open(&fs, &meta);
        damaged
            .fences
            .install(intact.fences.ready().expect("intact fences"));
        assert!(damaged.fences.is_built());
        let mut reported = 0;
        for (i, k) in sorted.iter().enumerate().step_by(7) {
            for after in [false, true] {
                match damaged.lower_bound(k, after) {
                    Ok(found) => {
                        assert_eq!(found, model(&sorted, k, after), "entry {i}");
                        assert_ne!(page_of(i), page_of(victim), "entry {i} on the damaged page");
                    }
                    Err(e) => {
                        assert!(e.is_corruption(), "{e}");
                        reported += 1;
                    }
                }
            }
        }
        assert!(reported > 0, "the damaged page was never reported");
        let err = damaged.get(&sorted[victim]).expect_err("the damaged page");
        assert!(err.is_corruption(), "{err}");
        assert_eq!(
            damaged.get(&sorted[10]).expect("another page"),
            Some(Some(&b"v10"[..]))
        );

        // Without installed fences: the build meets the damage and gives up, and searches
        // stay plain (and still report the damage).
        let damaged = open(&fs, &meta);
        assert!(!damaged.build_fences_now());
        assert!(!damaged.fences.is_built());
        let err = damaged.get(&sorted[victim]).expect_err("the damaged page");
        assert!(err.is_corruption(), "{err}");
        assert_eq!(
            damaged.get(&sorted[10]).expect("another page"),
            Some(Some(&b"v10"[..]))
        );
    }
}
