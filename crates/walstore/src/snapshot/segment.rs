//! An open snapshot file: mapped, its header checked, then read by index (entries, key
//! prefixes, the filter, the range deletions). A version 3 file's body is checked page by
//! page as it is first read (FORMAT.md §5.4): an open costs O(1) of the file, and a read
//! of a damaged page is `Error::Corruption` naming the page. A version 2 file is checked
//! completely at open, as before. [`Segment::verify`] checks everything.

use super::filter::{filter_holds, KeyHash};
use super::header::{read_header, HeaderProblem};
use super::layout::{
    decode_range_deletes, key_prefix, page_count, RangeDelete, SegmentMeta, ENTRY_COUNT_AT,
    ENTRY_PREFIX_BYTES, INDEX_ENTRY_BYTES, PAGE_BYTES, SHARED_PREFIX_AT, SNAPSHOT_HEADER_BYTES,
    TOMBSTONE_LEN,
};
use crate::error::{Error, Result};
use crate::format::{crc32, read_u32, MAX_KEY_BYTES, MAX_VALUE_BYTES};
use crate::storage::{Mapping, OpenMode, Storage};
use std::cmp::Ordering;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering as AtomicOrdering};
use std::sync::Arc;

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
    /// Where the body ends (the page table of a version 3 file, else the file's end).
    body_end: usize,
    /// A version 3 file's page CRCs, and which pages this process has checked.
    pages: Option<Pages>,
}

/// The page table of a version 3 snapshot file and a bit per page this process has checked
/// (a page, once checked, is read without checking again).
struct Pages {
    table: usize,
    checked: Box<[AtomicU64]>,
    /// Pages not checked yet: at 0 (every page of the file read once), a read checks nothing.
    unchecked: AtomicUsize,
}

impl Pages {
    fn new(table: usize) -> Pages {
        let count = page_count(table - SNAPSHOT_HEADER_BYTES);
        Pages {
            table,
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
    /// Maps and validates the snapshot file `meta` describes.
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
        if segment.first_key()? != &meta.first_key[..] {
            return corrupt("first key differs from the manifest".into());
        }
        Ok(segment)
    }

    /// Checks a mapped snapshot file's header, page table and range deletions (a version 2
    /// file: everything, FORMAT.md §5); a version 3 body's other pages are checked as read.
    pub fn from_mapping(expected_id: u64, path: PathBuf, map: Arc<dyn Mapping>) -> Result<Segment> {
        let bytes = map.bytes();
        let header = match read_header(bytes, expected_id) {
            Ok(header) => header,
            Err(HeaderProblem::Unsupported(found)) => {
                return Err(Error::UnsupportedFormat {
                    file: path,
                    found,
                    supported: super::layout::SNAPSHOT_VERSION_PAGED,
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
            pages: header.paged.then(|| Pages::new(header.body_end)),
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

    /// Checks the whole file: every page, then every entry's structure (what an open of a
    /// version 2 file checks; `walstore verify` checks this of every file).
    pub fn verify(&self) -> Result<()> {
        if self.pages.is_some() {
            self.checked(SNAPSHOT_HEADER_BYTES, self.body_end - SNAPSHOT_HEADER_BYTES)?;
            self.validate_entries()?;
        }
        Ok(())
    }

    /// Pages of a version 3 file not checked yet by this process (0 for version 2).
    #[cfg(test)]
    pub(super) fn unchecked_pages(&self) -> usize {
        self.pages
            .as_ref()
            .map_or(0, |p| p.unchecked.load(AtomicOrdering::Relaxed))
    }

    /// `len` bytes of the body at `at`, their pages checked first (version 3).
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
            let (key, value, end) = self.entry_at(offset)?;
            if key.is_empty()
                || key.len() > MAX_KEY_BYTES
                || value.is_some_and(|v| v.len() > MAX_VALUE_BYTES)
            {
                return Err(self.corrupt(offset, "entry key or value length out of range"));
            }
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
    fn entry_offset(&self, i: usize) -> Result<usize> {
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
        let head = self.checked(offset, ENTRY_PREFIX_BYTES)?;
        let key_len = read_u32(head, 0).ok_or_else(out_of_bounds)? as usize;
        let stored_len = read_u32(head, 4).ok_or_else(out_of_bounds)?;
        let tombstone = stored_len == TOMBSTONE_LEN;
        let value_len = if tombstone { 0 } else { stored_len as usize };
        let key_start = offset + ENTRY_PREFIX_BYTES;
        let end = key_start
            .checked_add(key_len)
            .and_then(|v| v.checked_add(value_len))
            .filter(|end| *end <= self.index_offset)
            .ok_or_else(out_of_bounds)?;
        let kv = self.checked(key_start, end - key_start)?;
        let (key, value) = kv.split_at(key_len);
        Ok((key, (!tombstone).then_some(value), end))
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
    /// reads a full key only when the prefixes tie.
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
        let (mut lo, mut hi) = (0usize, self.entry_count);
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
