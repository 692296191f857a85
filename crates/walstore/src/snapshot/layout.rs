//! The byte layout of a snapshot file (FORMAT.md §5): header fields, entry and index sizes,
//! the filter's parameters, the key prefix the index orders by, and the range deletions
//! block. Readers and the writer both take their offsets from here.

use crate::format::{read_u32, MAX_KEY_BYTES, MAX_VALUE_BYTES, PREAMBLE_BYTES};
use std::sync::Arc;

/// Magic bytes at offset 0 of a snapshot file.
pub const SNAPSHOT_MAGIC: [u8; 8] = *b"WSTORSNP";
/// Size of the snapshot header.
pub const SNAPSHOT_HEADER_BYTES: usize = 96;
/// Header fields after the preamble (FORMAT.md §5).
pub(super) const ID_AT: usize = PREAMBLE_BYTES;
pub(super) const ENTRY_COUNT_AT: usize = 24;
pub(super) const INDEX_OFFSET_AT: usize = 32;
pub(super) const FILTER_OFFSET_AT: usize = 40;
pub(super) const RANGE_DELETES_AT: usize = 48;
pub(super) const FILE_LEN_AT: usize = 56;
/// Version 2: CRC-32 of the body (entries, index, filter, range deletes). Version 3: CRC-32
/// of the page table.
pub(super) const BODY_CRC_AT: usize = 64;
pub(super) const SHARED_PREFIX_AT: usize = 68;
pub(super) const FILTER_PROBES_AT: usize = 72;
pub(super) const RANGE_DELETE_COUNT_AT: usize = 76;
/// Version 2: twelve zero bytes. Version 3: the page table's offset (`u64`), then four zero
/// bytes.
pub(super) const RESERVED_AT: usize = 80;
/// Version 3: where the page table starts (FORMAT.md §5.4).
pub(super) const PAGE_TABLE_AT: usize = RESERVED_AT;
/// Version 3: the zero bytes after the page table's offset.
pub(super) const RESERVED3_AT: usize = PAGE_TABLE_AT + 8;
/// Snapshot files with one CRC over the whole body, checked at open.
pub const SNAPSHOT_VERSION_WHOLE: u32 = 2;
/// Snapshot files with a CRC per page of the body, each checked when first read
/// (FORMAT.md §5.4): what this version writes.
pub const SNAPSHOT_VERSION_PAGED: u32 = 3;
/// Bytes of body a page CRC covers (the last page of a body may be shorter).
pub const PAGE_BYTES: usize = 4096;
/// The header's CRC, over the bytes before it.
pub(super) const HEADER_CRC_AT: usize = 92;
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
pub(super) const ENTRY_PREFIX_BYTES: usize = 8;
/// The value length that marks an entry as a deletion (a tombstone: no value bytes follow).
pub const TOMBSTONE_LEN: u32 = u32::MAX;
/// Size of an index entry: the key's first 8 bytes (zero-padded), then the entry offset.
pub const INDEX_ENTRY_BYTES: usize = 12;
/// Bloom filter bits per entry and probes per key (FORMAT.md §5.2): about 1% false positives.
pub const FILTER_BITS_PER_ENTRY: usize = 10;
pub const FILTER_PROBES: u32 = 7;
/// Most probes a filter may declare.
pub(super) const MAX_FILTER_PROBES: u32 = 30;

/// Pages of a body of `len` bytes.
pub(super) fn page_count(len: usize) -> usize {
    len.div_ceil(PAGE_BYTES)
}

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

/// Decodes the range deletions block `block` (FORMAT.md §5.3); `at` is its file offset, for
/// errors. Bounded by the block: nothing is allocated beyond what the bytes hold.
pub(super) fn decode_range_deletes(
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
pub(super) fn encode_range_deletes(deletes: &[RangeDelete], out: &mut Vec<u8>) {
    for d in deletes {
        let end: &[u8] = d.end.as_deref().unwrap_or(&[]);
        out.extend_from_slice(&(d.start.len() as u32).to_le_bytes());
        out.extend_from_slice(&(end.len() as u32).to_le_bytes());
        out.extend_from_slice(&d.start);
        out.extend_from_slice(end);
    }
}
