//! Snapshot files: immutable, checksummed, sorted runs of key/value entries, read through a
//! memory map (FORMAT.md §5).
//!
//! The key space is split into contiguous ranges, one snapshot file each; a checkpoint
//! rewrites only the files whose range holds a change. A file is validated completely when it
//! is mapped (header, whole-file CRC, every entry's bounds, strictly increasing keys), so that
//! lookups afterwards only index into proven bounds.
//!
//! Invariant: a snapshot file is never written after it is renamed to its final name, by any
//! process; replaced files are only unlinked. That is what makes the memory map sound.

use crate::error::{Error, Result};
use crate::format::{
    check_preamble, crc32, preamble, read_u32, read_u64, seal_header, PreambleError,
    FORMAT_VERSION, MAX_KEY_BYTES, MAX_VALUE_BYTES, PREAMBLE_ALGORITHM_AT, PREAMBLE_BYTES,
};
use crate::storage::{Mapping, OpenMode, Storage, StorageFile};
use std::cmp::Ordering;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Magic bytes at offset 0 of a snapshot file.
pub const SNAPSHOT_MAGIC: [u8; 8] = *b"WSTORSNP";
/// Size of the snapshot header.
pub const SNAPSHOT_HEADER_BYTES: usize = 96;
/// Header fields after the preamble (FORMAT.md §5).
const ID_AT: usize = PREAMBLE_BYTES;
const ENTRY_COUNT_AT: usize = 24;
const INDEX_OFFSET_AT: usize = 32;
const FILTER_OFFSET_AT: usize = 40;
const RANGE_DELETES_AT: usize = 48;
const FILE_LEN_AT: usize = 56;
/// CRC-32 of the body (entries, index, filter, range deletes).
const BODY_CRC_AT: usize = 64;
const SHARED_PREFIX_AT: usize = 68;
const FILTER_PROBES_AT: usize = 72;
const RANGE_DELETE_COUNT_AT: usize = 76;
/// Twelve zero bytes.
const RESERVED_AT: usize = 80;
/// The header's CRC, over the bytes before it.
const HEADER_CRC_AT: usize = 92;
const _: () = assert!(ENTRY_COUNT_AT == ID_AT + 8 && INDEX_OFFSET_AT == ENTRY_COUNT_AT + 8);
const _: () = assert!(FILTER_OFFSET_AT == INDEX_OFFSET_AT + 8);
const _: () =
    assert!(RANGE_DELETES_AT == FILTER_OFFSET_AT + 8 && FILE_LEN_AT == RANGE_DELETES_AT + 8);
const _: () = assert!(BODY_CRC_AT == FILE_LEN_AT + 8 && SHARED_PREFIX_AT == BODY_CRC_AT + 4);
const _: () = assert!(FILTER_PROBES_AT == SHARED_PREFIX_AT + 4);
const _: () = assert!(RANGE_DELETE_COUNT_AT == FILTER_PROBES_AT + 4);
const _: () =
    assert!(RESERVED_AT == RANGE_DELETE_COUNT_AT + 4 && HEADER_CRC_AT == RESERVED_AT + 12);
const _: () = assert!(SNAPSHOT_HEADER_BYTES == HEADER_CRC_AT + 4);
/// Size of an entry's length prefix.
const ENTRY_PREFIX_BYTES: usize = 8;
/// The value length that marks an entry as a deletion (a tombstone: no value bytes follow).
pub const TOMBSTONE_LEN: u32 = u32::MAX;
/// Size of an index entry: the key's first 8 bytes (zero-padded), then the entry offset.
pub const INDEX_ENTRY_BYTES: usize = 12;
/// Bloom filter bits per entry and probes per key (FORMAT.md §5.2): about 1% false positives.
pub const FILTER_BITS_PER_ENTRY: usize = 10;
pub const FILTER_PROBES: u32 = 7;
/// Most probes a filter may declare.
const MAX_FILTER_PROBES: u32 = 30;

/// The first 8 bytes of `key`, zero-padded, as a big-endian number: ordering these numbers
/// orders keys, up to ties that the full keys break.
#[inline]
pub fn key_prefix(key: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    let n = key.len().min(8);
    b[..n].copy_from_slice(&key[..n]);
    u64::from_be_bytes(b)
}

const _: () = assert!(MAX_KEY_BYTES + MAX_VALUE_BYTES + ENTRY_PREFIX_BYTES < u32::MAX as usize / 2);

/// The bit positions a key sets in a filter of `bits` bits with `probes` probes (FORMAT.md
/// §5.2): XXH3-64 of the key, split into two 32-bit halves `a` and `b | 1`; probe `j` is bit
/// `(a + j * b) mod bits`.
fn filter_bits(key: &[u8], bits: u64, probes: u32) -> impl Iterator<Item = u64> {
    let h = xxhash_rust::xxh3::xxh3_64(key);
    let (a, b) = (h & 0xffff_ffff, (h >> 32) | 1);
    (0..u64::from(probes)).map(move |j| a.wrapping_add(j.wrapping_mul(b)) % bits)
}

/// A range deletion carried by a run: every key `>= start` and `< end` (no end: every key
/// `>= start`) of the runs *older* than this one is deleted. Entries of the same run are
/// newer than its range deletions (FORMAT.md §5.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RangeDelete {
    pub start: Arc<[u8]>,
    pub end: Option<Arc<[u8]>>,
}

impl RangeDelete {
    /// Whether `key` lies in the range.
    #[inline]
    pub fn covers(&self, key: &[u8]) -> bool {
        key >= &self.start[..] && self.end.as_ref().is_none_or(|e| key < &e[..])
    }
}

/// An open, validated snapshot file.
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

/// What the manifest says about a snapshot file; checked against the file when it is mapped.
/// `first_key` is the file's first entry's key, or for a file without entries its first range
/// deletion's start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentMeta {
    pub file_id: u64,
    pub file_len: u64,
    pub entry_count: u64,
    pub first_key: Arc<[u8]>,
}

/// What a snapshot header says, checked against the file's bytes (FORMAT.md §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct SnapshotHeader {
    entry_count: usize,
    index_offset: usize,
    filter_offset: usize,
    filter_probes: u32,
    range_deletes_offset: usize,
    range_delete_count: usize,
    shared_prefix_len: usize,
}

/// Why a snapshot header was refused: another format version, or damage at an offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HeaderProblem {
    Unsupported(u32),
    Corrupt(usize, &'static str),
}

/// Checks the header of the snapshot file `bytes` (named for file `expected_id`) and the
/// body's CRC; the entries are checked by [`Segment::validate_entries`].
fn read_header(bytes: &[u8], expected_id: u64) -> Result<SnapshotHeader, HeaderProblem> {
    use HeaderProblem::Corrupt;
    let header = bytes
        .get(..SNAPSHOT_HEADER_BYTES)
        .ok_or(Corrupt(0, "snapshot shorter than its header"))?;
    check_preamble(header, &SNAPSHOT_MAGIC, HEADER_CRC_AT).map_err(|e| match e {
        PreambleError::Short => Corrupt(0, "snapshot shorter than its header"),
        PreambleError::BadMagic => Corrupt(0, "bad snapshot magic"),
        PreambleError::Version(found) => HeaderProblem::Unsupported(found),
        PreambleError::Checksum => Corrupt(0, "snapshot header checksum mismatch"),
        PreambleError::Algorithm(_) => Corrupt(PREAMBLE_ALGORITHM_AT, "unknown checksum algorithm"),
    })?;
    let field = |at| read_u64(header, at).unwrap_or(0);
    let word = |at| read_u32(header, at).unwrap_or(0);
    let shared_prefix_len = word(SHARED_PREFIX_AT) as usize;
    if shared_prefix_len > MAX_KEY_BYTES {
        return Err(Corrupt(
            SHARED_PREFIX_AT,
            "shared key prefix length out of range",
        ));
    }
    if header[RESERVED_AT..HEADER_CRC_AT].iter().any(|b| *b != 0) {
        return Err(Corrupt(
            RESERVED_AT,
            "non-zero reserved bytes in snapshot header",
        ));
    }
    if field(ID_AT) != expected_id {
        return Err(Corrupt(ID_AT, "snapshot file id differs from its name"));
    }
    let file_len = field(FILE_LEN_AT);
    if file_len != bytes.len() as u64 {
        return Err(Corrupt(
            FILE_LEN_AT,
            "snapshot length differs from its header",
        ));
    }
    if crc32(&bytes[SNAPSHOT_HEADER_BYTES..]) != word(BODY_CRC_AT) {
        return Err(Corrupt(
            SNAPSHOT_HEADER_BYTES,
            "snapshot body checksum mismatch",
        ));
    }
    let (entry_count, index_offset) = (field(ENTRY_COUNT_AT), field(INDEX_OFFSET_AT));
    let (filter_offset, range_deletes_offset) = (field(FILTER_OFFSET_AT), field(RANGE_DELETES_AT));
    let range_delete_count = u64::from(word(RANGE_DELETE_COUNT_AT));
    let index_end = entry_count
        .checked_mul(INDEX_ENTRY_BYTES as u64)
        .and_then(|l| l.checked_add(index_offset));
    if (entry_count == 0 && range_delete_count == 0)
        || index_offset < SNAPSHOT_HEADER_BYTES as u64
        || index_end != Some(filter_offset)
    {
        return Err(Corrupt(
            ENTRY_COUNT_AT,
            "snapshot entry count or index offset out of range",
        ));
    }
    let probes = word(FILTER_PROBES_AT);
    let filter_ok = if entry_count == 0 {
        probes == 0 && range_deletes_offset == filter_offset
    } else {
        (1..=MAX_FILTER_PROBES).contains(&probes) && range_deletes_offset > filter_offset
    };
    if !filter_ok || range_deletes_offset > file_len {
        return Err(Corrupt(
            FILTER_OFFSET_AT,
            "snapshot filter offset or probe count out of range",
        ));
    }
    // All fit in usize: the file length bounds them, and the file is mapped.
    Ok(SnapshotHeader {
        entry_count: entry_count as usize,
        index_offset: index_offset as usize,
        filter_offset: filter_offset as usize,
        filter_probes: probes,
        range_deletes_offset: range_deletes_offset as usize,
        range_delete_count: range_delete_count as usize,
        shared_prefix_len,
    })
}

/// Decodes the range deletions block `block` (FORMAT.md §5.3); `at` is its file offset, for
/// errors. Bounded by the block: nothing is allocated beyond what the bytes hold.
fn decode_range_deletes(
    block: &[u8],
    count: usize,
    at: usize,
) -> Result<Vec<RangeDelete>, (usize, &'static str)> {
    let mut out: Vec<RangeDelete> = Vec::with_capacity(count.min(block.len() / 9));
    let mut pos = 0usize;
    for _ in 0..count {
        let bad = |p: usize, d| Err((at + p, d));
        let (Some(start_len), Some(end_len)) = (read_u32(block, pos), read_u32(block, pos + 4))
        else {
            return bad(pos, "range deletion out of bounds");
        };
        let (start_len, end_len) = (start_len as usize, end_len as usize);
        if start_len == 0 || start_len > MAX_KEY_BYTES || end_len > MAX_KEY_BYTES {
            return bad(pos, "range deletion key length out of range");
        }
        let start_at = pos + 8;
        let Some(end_key) = block.get(start_at + start_len..start_at + start_len + end_len) else {
            return bad(pos, "range deletion out of bounds");
        };
        let start = &block[start_at..start_at + start_len];
        let end = (end_len > 0).then_some(end_key);
        if end.is_some_and(|e| e <= start) {
            return bad(pos, "range deletion is empty");
        }
        if let Some(prev) = out.last() {
            if prev.end.as_ref().is_none_or(|e| &e[..] > start) {
                return bad(pos, "range deletions overlap or are out of order");
            }
        }
        out.push(RangeDelete {
            start: Arc::from(start),
            end: end.map(Arc::from),
        });
        pos = start_at + start_len + end_len;
    }
    if pos != block.len() {
        return Err((at + pos, "range deletions do not end at the file's end"));
    }
    Ok(out)
}

/// Encodes range deletions as FORMAT.md §5.3 lays them out.
fn encode_range_deletes(deletes: &[RangeDelete], out: &mut Vec<u8>) {
    for d in deletes {
        let end: &[u8] = d.end.as_deref().unwrap_or(&[]);
        out.extend_from_slice(&(d.start.len() as u32).to_le_bytes());
        out.extend_from_slice(&(end.len() as u32).to_le_bytes());
        out.extend_from_slice(&d.start);
        out.extend_from_slice(end);
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

    /// Validates a mapped snapshot file completely.
    pub fn from_mapping(expected_id: u64, path: PathBuf, map: Arc<dyn Mapping>) -> Result<Segment> {
        let bytes = map.bytes();
        let header = match read_header(bytes, expected_id) {
            Ok(header) => header,
            Err(HeaderProblem::Unsupported(found)) => {
                return Err(Error::UnsupportedFormat {
                    file: path,
                    found,
                    supported: FORMAT_VERSION,
                })
            }
            Err(HeaderProblem::Corrupt(offset, detail)) => {
                return Err(Error::corruption(&path, offset as u64, detail))
            }
        };
        let block = &bytes[header.range_deletes_offset..];
        let range_deletes = decode_range_deletes(
            block,
            header.range_delete_count,
            header.range_deletes_offset,
        )
        .map_err(|(at, detail)| Error::corruption(&path, at as u64, detail))?;
        let segment = Segment {
            id: expected_id,
            path,
            map: Arc::clone(&map),
            entry_count: header.entry_count,
            index_offset: header.index_offset,
            filter_offset: header.filter_offset,
            filter_probes: header.filter_probes,
            range_deletes_offset: header.range_deletes_offset,
            shared_prefix_len: header.shared_prefix_len,
            range_deletes,
        };
        segment.validate_entries()?;
        Ok(segment)
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
            if self.prefix(i) != key_prefix(&key[shared..]) {
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

    /// Whether the file may hold an entry for `key`: false means it certainly does not (the
    /// bloom filter, FORMAT.md §5.2).
    #[inline]
    pub fn may_contain(&self, key: &[u8]) -> bool {
        if self.entry_count == 0 {
            return false;
        }
        let filter = &self.map.bytes()[self.filter_offset..self.range_deletes_offset];
        let bits = filter.len() as u64 * 8;
        filter_bits(key, bits, self.filter_probes)
            .all(|bit| filter[(bit / 8) as usize] & (1 << (bit % 8)) != 0)
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entry_count
    }

    fn index_slot(&self, i: usize) -> usize {
        self.index_offset + INDEX_ENTRY_BYTES * i
    }

    /// The key prefix stored in index entry `i` (0 when out of bounds; validated at open).
    #[inline]
    fn prefix(&self, i: usize) -> u64 {
        let at = self.index_slot(i);
        match self.map.bytes().get(at..at + 8) {
            Some(b) => u64::from_be_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]),
            None => 0,
        }
    }

    fn entry_offset(&self, i: usize) -> Result<usize> {
        read_u32(self.map.bytes(), self.index_slot(i) + 8)
            .map(|o| o as usize)
            .ok_or_else(|| self.corrupt(self.index_offset, "index entry out of bounds"))
    }

    /// Key, value (`None` for a tombstone) and end offset of the entry starting at `offset`.
    #[allow(clippy::type_complexity)]
    fn entry_at(&self, offset: usize) -> Result<(&[u8], Option<&[u8]>, usize)> {
        let bytes = self.map.bytes();
        let out_of_bounds = || self.corrupt(offset, "entry out of bounds");
        let key_len = read_u32(bytes, offset).ok_or_else(out_of_bounds)? as usize;
        let value_len = read_u32(bytes, offset + 4).ok_or_else(out_of_bounds)?;
        let key_start = offset + ENTRY_PREFIX_BYTES;
        let value_start = key_start.checked_add(key_len).ok_or_else(out_of_bounds)?;
        let value_len = if value_len == TOMBSTONE_LEN {
            0
        } else {
            value_len as usize
        };
        let end = value_start
            .checked_add(value_len)
            .ok_or_else(out_of_bounds)?;
        if end > self.index_offset {
            return Err(out_of_bounds());
        }
        let tombstone = read_u32(bytes, offset + 4) == Some(TOMBSTONE_LEN);
        let value = (!tombstone).then(|| &bytes[value_start..end]);
        Ok((&bytes[key_start..value_start], value, end))
    }

    /// The key and value (`None`: the key is deleted) of entry `i`.
    pub fn entry(&self, i: usize) -> Result<(&[u8], Option<&[u8]>)> {
        let (k, v, _) = self.entry_at(self.entry_offset(i)?)?;
        Ok((k, v))
    }

    /// Byte range of entry `i`'s value within the mapping (`None` for a tombstone).
    pub fn value_range(&self, i: usize) -> Result<Option<(usize, usize)>> {
        let offset = self.entry_offset(i)?;
        let (_, value, end) = self.entry_at(offset)?;
        Ok(value.map(|v| (end - v.len(), end)))
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
        let (mut lo, mut hi) = (0usize, self.entry_count);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let order = match self.prefix(mid).cmp(&target) {
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

    /// Index of the entry with exactly `key`.
    pub fn find(&self, key: &[u8]) -> Result<Option<usize>> {
        let i = self.lower_bound(key, false)?;
        if i < self.entry_count && self.entry(i)?.0 == key {
            Ok(Some(i))
        } else {
            Ok(None)
        }
    }
}

/// Streams sorted entries into a new snapshot file (under its temporary name).
pub struct SegmentWriter {
    file: Box<dyn StorageFile>,
    path: PathBuf,
    id: u64,
    buf: Vec<u8>,
    written: u64,
    /// Entry offsets, and every key of the file (concatenated) to compute the index
    /// prefixes once the shared prefix is known.
    offsets: Vec<u32>,
    keys: Vec<u8>,
    key_ends: Vec<u32>,
    body_crc: crc32fast::Hasher,
    first_key: Option<Arc<[u8]>>,
    range_deletes: Vec<RangeDelete>,
}

impl fmt::Debug for SegmentWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SegmentWriter")
            .field("id", &self.id)
            .field("path", &self.path)
            .finish()
    }
}

const FLUSH_BYTES: usize = 1 << 20;

impl SegmentWriter {
    /// Creates (truncating) the file at `path` for snapshot file `id`.
    pub fn create(storage: &dyn Storage, path: PathBuf, id: u64) -> Result<SegmentWriter> {
        let file = storage
            .open(&path, OpenMode::CreateTruncate)
            .map_err(|e| Error::io("create snapshot", &path, e))?;
        Ok(SegmentWriter {
            file,
            path,
            id,
            buf: Vec::with_capacity(FLUSH_BYTES + 4096),
            written: SNAPSHOT_HEADER_BYTES as u64,
            offsets: Vec::new(),
            keys: Vec::new(),
            key_ends: Vec::new(),
            body_crc: crc32fast::Hasher::new(),
            first_key: None,
            range_deletes: Vec::new(),
        })
    }

    /// Bytes the file will have so far (header and entries, without the index).
    pub fn body_bytes(&self) -> u64 {
        self.written + self.buf.len() as u64
    }

    /// Sets the range deletions the file carries (sorted, non-overlapping, non-empty).
    pub fn set_range_deletes(&mut self, deletes: Vec<RangeDelete>) {
        debug_assert!(deletes
            .windows(2)
            .all(|w| w[0].end.as_ref().is_some_and(|e| e[..] <= w[1].start[..])));
        self.range_deletes = deletes;
    }

    /// Appends an entry (`None`: a tombstone); keys must arrive in strictly increasing order.
    pub fn add(&mut self, key: &[u8], value: Option<&[u8]>) -> Result<()> {
        debug_assert!(!key.is_empty() && key.len() <= MAX_KEY_BYTES);
        if self.first_key.is_none() {
            self.first_key = Some(Arc::from(key));
        }
        let offset = self.body_bytes();
        self.offsets.push(offset as u32);
        self.keys.extend_from_slice(key);
        self.key_ends.push(self.keys.len() as u32);
        self.buf
            .extend_from_slice(&(key.len() as u32).to_le_bytes());
        let value_len = value.map_or(TOMBSTONE_LEN, |v| v.len() as u32);
        self.buf.extend_from_slice(&value_len.to_le_bytes());
        self.buf.extend_from_slice(key);
        self.buf.extend_from_slice(value.unwrap_or(&[]));
        if self.buf.len() >= FLUSH_BYTES {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        self.body_crc.update(&self.buf);
        self.file
            .write_all_at(&self.buf, self.written)
            .map_err(|e| Error::io("write snapshot", &self.path, e))?;
        self.written += self.buf.len() as u64;
        self.buf.clear();
        Ok(())
    }

    /// Writes the index and header, and syncs unless `sync` is false. Returns what the
    /// manifest must record about the file.
    pub fn finish(mut self, sync: bool) -> Result<SegmentMeta> {
        // Invariant: a writer is created for its first entry or given range deletions
        // (`checkpoint::Output`), so it is never finished empty.
        let first_key = self
            .first_key
            .take()
            .or_else(|| self.range_deletes.first().map(|d| Arc::clone(&d.start)))
            .expect("a snapshot file is finished only after its first entry or range deletion");
        let index_offset = self.body_bytes();
        let key = |i: usize| {
            let start = if i == 0 {
                0
            } else {
                self.key_ends[i - 1] as usize
            };
            &self.keys[start..self.key_ends[i] as usize]
        };
        let count = self.offsets.len();
        let shared = match count {
            0 => 0,
            n => key(0)
                .iter()
                .zip(key(n - 1))
                .take_while(|(a, b)| a == b)
                .count(),
        };
        for (i, offset) in self.offsets.iter().enumerate() {
            self.buf
                .extend_from_slice(&key_prefix(&key(i)[shared..]).to_be_bytes());
            self.buf.extend_from_slice(&offset.to_le_bytes());
        }
        let filter_offset = self.body_bytes();
        let probes = if count == 0 { 0 } else { FILTER_PROBES };
        if count > 0 {
            let bytes = (count * FILTER_BITS_PER_ENTRY).div_ceil(8).max(8);
            let mut filter = vec![0u8; bytes];
            for i in 0..count {
                for bit in filter_bits(key(i), bytes as u64 * 8, probes) {
                    filter[(bit / 8) as usize] |= 1 << (bit % 8);
                }
            }
            self.buf.extend_from_slice(&filter);
        }
        let range_deletes_offset = self.body_bytes();
        encode_range_deletes(&self.range_deletes, &mut self.buf);
        self.flush()?;
        let file_len = self.written;
        let mut header = [0u8; SNAPSHOT_HEADER_BYTES];
        header[..PREAMBLE_BYTES].copy_from_slice(&preamble(&SNAPSHOT_MAGIC));
        header[ID_AT..ENTRY_COUNT_AT].copy_from_slice(&self.id.to_le_bytes());
        header[ENTRY_COUNT_AT..INDEX_OFFSET_AT].copy_from_slice(&(count as u64).to_le_bytes());
        header[INDEX_OFFSET_AT..FILTER_OFFSET_AT].copy_from_slice(&index_offset.to_le_bytes());
        header[FILTER_OFFSET_AT..RANGE_DELETES_AT].copy_from_slice(&filter_offset.to_le_bytes());
        header[RANGE_DELETES_AT..FILE_LEN_AT].copy_from_slice(&range_deletes_offset.to_le_bytes());
        header[FILE_LEN_AT..BODY_CRC_AT].copy_from_slice(&file_len.to_le_bytes());
        let body_crc = self.body_crc.clone().finalize();
        header[BODY_CRC_AT..SHARED_PREFIX_AT].copy_from_slice(&body_crc.to_le_bytes());
        header[SHARED_PREFIX_AT..FILTER_PROBES_AT].copy_from_slice(&(shared as u32).to_le_bytes());
        header[FILTER_PROBES_AT..RANGE_DELETE_COUNT_AT].copy_from_slice(&probes.to_le_bytes());
        let deletes = self.range_deletes.len() as u32;
        header[RANGE_DELETE_COUNT_AT..RESERVED_AT].copy_from_slice(&deletes.to_le_bytes());
        seal_header(&mut header, HEADER_CRC_AT);
        self.file
            .write_all_at(&header, 0)
            .map_err(|e| Error::io("write snapshot", &self.path, e))?;
        if sync {
            self.file
                .sync_all()
                .map_err(|e| Error::io("fsync", &self.path, e))?;
        }
        Ok(SegmentMeta {
            file_id: self.id,
            file_len,
            entry_count: count as u64,
            first_key,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::MemoryStorage;

    fn write_segment(fs: &MemoryStorage, entries: &[(&[u8], &[u8])]) -> SegmentMeta {
        fs.create_dir_all(Path::new("/s")).expect("mkdir");
        let path = Path::new("/s").join(crate::format::snapshot_name(1));
        let mut w = SegmentWriter::create(fs, path, 1).expect("create");
        for (k, v) in entries {
            w.add(k, Some(v)).expect("add");
        }
        w.finish(true).expect("finish")
    }

    #[test]
    fn written_segment_reads_back_and_searches() {
        let fs = MemoryStorage::new();
        let meta = write_segment(&fs, &[(b"a", b"1"), (b"c", b"3"), (b"e", b"")]);
        let seg = Segment::open(&fs, Path::new("/s"), &meta).expect("open");
        assert_eq!(seg.len(), 3);
        assert_eq!(seg.find(b"c").expect("find"), Some(1));
        assert_eq!(seg.find(b"d").expect("find"), None);
        assert_eq!(seg.lower_bound(b"b", false).expect("lb"), 1);
        assert_eq!(seg.lower_bound(b"c", true).expect("lb"), 2);
        assert_eq!(seg.entry(2).expect("entry"), (&b"e"[..], Some(&b""[..])));
        assert!(seg.may_contain(b"a") && seg.may_contain(b"c") && seg.may_contain(b"e"));
    }

    /// Each damaged header field is reported at its own offset (FORMAT.md §5), also when the
    /// header CRC was recomputed over the damage: non-zero reserved bytes 56..60 were
    /// reported at 52, the shared prefix length's offset.
    #[test]
    fn damaged_header_fields_are_reported_at_their_offsets() {
        let fs = MemoryStorage::new();
        let meta = write_segment(&fs, &[(b"k1", b"v1"), (b"k2", b"v2")]);
        let path = Path::new("/s").join(crate::format::snapshot_name(1));
        let good = fs.read_file(&path).expect("file");
        let cases: [(usize, u8, u64); 5] = [
            (RESERVED_AT + 3, 1, RESERVED_AT as u64),
            (SHARED_PREFIX_AT + 2, 1, SHARED_PREFIX_AT as u64),
            (FILTER_PROBES_AT, 0, FILTER_OFFSET_AT as u64),
            (PREAMBLE_ALGORITHM_AT, 2, 12),
            (ID_AT, 7, 16),
        ];
        for (at, value, reported) in cases {
            let mut bad = good.clone();
            bad[at] = value;
            seal_header(&mut bad, HEADER_CRC_AT);
            fs.write_file_durable(&path, &bad);
            match Segment::open(&fs, Path::new("/s"), &meta) {
                Err(Error::Corruption { offset, detail, .. }) => {
                    assert_eq!(offset, reported, "byte {at} = {value}: {detail}")
                }
                other => panic!("byte {at} = {value}: {other:?}"),
            }
        }
    }

    #[test]
    fn any_flipped_byte_is_corruption() {
        let fs = MemoryStorage::new();
        let meta = write_segment(&fs, &[(b"k1", b"v1"), (b"k2", b"v2")]);
        let path = Path::new("/s").join(crate::format::snapshot_name(1));
        let good = fs.read_file(&path).expect("file");
        for i in 0..good.len() {
            let mut bad = good.clone();
            bad[i] ^= 0x10;
            fs.write_file_durable(&path, &bad);
            let err = Segment::open(&fs, Path::new("/s"), &meta).expect_err("must fail");
            assert!(
                err.is_corruption() || matches!(err, Error::UnsupportedFormat { .. }),
                "byte {i}: {err}"
            );
        }
    }
}
