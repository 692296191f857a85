//! The byte layout of a snapshot file (FORMAT.md §5): header fields, the encoding of an entry
//! (the one encoder and the one decoder of entries), index sizes, the filter's parameters, the
//! key prefix the index orders by, and the range deletions block. Readers and the writer both
//! take their offsets from here.

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
/// (FORMAT.md §5.4).
pub const SNAPSHOT_VERSION_PAGED: u32 = 3;
/// Version 3 with an entry's two lengths as LEB128 varints (FORMAT.md §5.5): what this
/// version writes.
pub const SNAPSHOT_VERSION_VARINT: u32 = 4;
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
/// Size of an entry's length prefix in versions 2 and 3: key length `u32`, value length `u32`.
const FIXED_HEAD_BYTES: usize = 8;
/// Versions 2 and 3: the value length that marks an entry as a deletion (a tombstone: no
/// value bytes follow).
pub const TOMBSTONE_LEN: u32 = u32::MAX;
/// Most bytes of one length varint (version 4). 4 hold every length in range (the largest,
/// `MAX_VALUE_BYTES + 1`, is 27 bits); a decoder stops reading at 5 whatever the bytes say.
const MAX_VARINT_BYTES: usize = 5;
const _: () = assert!(MAX_VALUE_BYTES < 1 << (7 * 4) && MAX_KEY_BYTES < 1 << (7 * 2));
/// Most bytes of an entry's lengths in any version.
const MAX_HEAD_BYTES: usize = 2 * MAX_VARINT_BYTES;
const _: () = assert!(MAX_HEAD_BYTES >= FIXED_HEAD_BYTES);
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

const _: () = assert!(MAX_KEY_BYTES + MAX_VALUE_BYTES + MAX_HEAD_BYTES < u32::MAX as usize / 2);

/// How an entry's key and value lengths are stored (FORMAT.md §5, §5.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum EntryLengths {
    /// Versions 2 and 3: `u32` key length, `u32` value length ([`TOMBSTONE_LEN`]: a tombstone).
    Fixed,
    /// Version 4: LEB128 key length, then LEB128 value length + 1 (0: a tombstone).
    Varint,
}

/// An entry's lengths, decoded from the bytes it starts with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct EntryHead {
    pub(super) key_len: usize,
    /// `None`: a tombstone.
    pub(super) value_len: Option<usize>,
    /// Bytes of the lengths: the key starts this far into the entry.
    pub(super) head_len: usize,
}

impl EntryLengths {
    /// The entry layout of snapshot format `version` (one the header accepted).
    pub(super) fn of_version(version: u32) -> EntryLengths {
        if version >= SNAPSHOT_VERSION_VARINT {
            EntryLengths::Varint
        } else {
            EntryLengths::Fixed
        }
    }

    /// Most bytes the lengths of one entry take: what a reader fetches to decode them.
    pub(super) fn max_head_bytes(self) -> usize {
        match self {
            EntryLengths::Fixed => FIXED_HEAD_BYTES,
            EntryLengths::Varint => MAX_HEAD_BYTES,
        }
    }

    /// Appends the entry `key` -> `value` (`None`: a tombstone) to `out`.
    pub(super) fn encode(self, key: &[u8], value: Option<&[u8]>, out: &mut Vec<u8>) {
        match self {
            EntryLengths::Fixed => {
                out.extend_from_slice(&(key.len() as u32).to_le_bytes());
                let value_len = value.map_or(TOMBSTONE_LEN, |v| v.len() as u32);
                out.extend_from_slice(&value_len.to_le_bytes());
            }
            EntryLengths::Varint => {
                write_varint(key.len() as u64, out);
                write_varint(value.map_or(0, |v| v.len() as u64 + 1), out);
            }
        }
        out.extend_from_slice(key);
        out.extend_from_slice(value.unwrap_or(&[]));
    }

    /// Decodes the lengths at the start of `head` (the entry's bytes up to at most the index:
    /// nothing past it is read). Lengths out of range are refused here, for every reader.
    #[inline]
    pub(super) fn decode(self, head: &[u8]) -> Result<EntryHead, &'static str> {
        let (key_len, value_len, head_len) = match self {
            EntryLengths::Fixed => {
                let (Some(key_len), Some(stored)) = (read_u32(head, 0), read_u32(head, 4)) else {
                    return Err("entry out of bounds");
                };
                let value_len = (stored != TOMBSTONE_LEN).then_some(u64::from(stored));
                (u64::from(key_len), value_len, FIXED_HEAD_BYTES)
            }
            EntryLengths::Varint => {
                let (key_len, at) = read_varint(head)?;
                let (stored, len) = read_varint(&head[at..])?;
                (key_len, stored.checked_sub(1), at + len)
            }
        };
        if key_len == 0
            || key_len > MAX_KEY_BYTES as u64
            || value_len.is_some_and(|v| v > MAX_VALUE_BYTES as u64)
        {
            return Err("entry key or value length out of range");
        }
        // In range, so they fit in usize.
        Ok(EntryHead {
            key_len: key_len as usize,
            value_len: value_len.map(|v| v as usize),
            head_len,
        })
    }
}

/// Appends `value` as unsigned LEB128: 7 bits a byte, least significant first, the high bit
/// set on every byte but the last.
fn write_varint(mut value: u64, out: &mut Vec<u8>) {
    while value >= 0x80 {
        out.push(value as u8 | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// Reads the unsigned LEB128 number `bytes` starts with: its value and its length. Refused:
/// more than [`MAX_VARINT_BYTES`] bytes, and a non-minimal form (a last byte of 0 after
/// others), so each length has exactly one encoding and a file one canonical form.
#[inline]
fn read_varint(bytes: &[u8]) -> Result<(u64, usize), &'static str> {
    let mut value = 0u64;
    for (i, &b) in bytes.iter().take(MAX_VARINT_BYTES).enumerate() {
        value |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            if b == 0 && i > 0 {
                return Err("entry length varint not in its shortest form");
            }
            return Ok((value, i + 1));
        }
    }
    if bytes.len() < MAX_VARINT_BYTES {
        Err("entry out of bounds")
    } else {
        Err("entry length varint longer than 5 bytes")
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Key and value lengths at each varint width's edges encode and decode back, in both
    /// layouts, the key starting where the decoder says; version 4's lengths take one byte per
    /// 7 bits. (The largest value length is decoded in `malformed_lengths_are_refused`.)
    #[test]
    fn entries_decode_as_they_were_encoded() {
        let values = [
            0,
            1,
            126,
            127,
            128,
            16382,
            16383,
            (1 << 21) - 2,
            (1 << 21) - 1,
        ];
        let big = vec![7u8; 1 << 21];
        for value_len in values.into_iter().map(Some).chain([None]) {
            for key_len in [1, 2, 127, 128, 129, 4095, MAX_KEY_BYTES] {
                let key = vec![b'k'; key_len];
                let value = value_len.map(|n| &big[..n]);
                for lengths in [EntryLengths::Fixed, EntryLengths::Varint] {
                    let mut out = Vec::new();
                    lengths.encode(&key, value, &mut out);
                    let head = lengths.decode(&out).expect("decodes");
                    assert_eq!((head.key_len, head.value_len), (key_len, value_len));
                    assert_eq!(out.len(), head.head_len + key_len + value_len.unwrap_or(0));
                    assert_eq!(&out[head.head_len..][..key_len], &key[..]);
                    let varint = |n: usize| (n.max(1).ilog2() / 7 + 1) as usize;
                    let expected = match lengths {
                        EntryLengths::Fixed => 8,
                        EntryLengths::Varint => {
                            varint(key_len) + varint(value_len.map_or(0, |v| v + 1))
                        }
                    };
                    assert_eq!(head.head_len, expected, "{key_len} {value_len:?}");
                }
            }
        }
    }

    /// What a decoder refuses, whatever follows: overlong forms, more than 5 bytes,
    /// lengths out of range, heads cut short. Each is an error, never a panic.
    #[test]
    fn malformed_lengths_are_refused() {
        let v = EntryLengths::Varint;
        let refused: [(&[u8], &str); 11] = [
            (&[0x81, 0x00, 0x01], "shortest form"),
            (&[0x01, 0x80, 0x00], "shortest form"),
            (&[0x01, 0x81, 0x80, 0x80, 0x80, 0x00], "shortest form"),
            (&[0x80, 0x80, 0x80, 0x80, 0x80, 0x00], "longer than 5 bytes"),
            (
                &[0x01, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01],
                "longer than 5 bytes",
            ),
            (&[0x00, 0x01], "out of range"),
            (&[0x81, 0x20, 0x01], "out of range"),
            // Value length + 1 = MAX_VALUE_BYTES + 2 (2^26 + 2).
            (&[0x01, 0x82, 0x80, 0x80, 0x20], "out of range"),
            // 2^32 + 1 in 5 bytes: wider than a u32, still refused by range, not wrapped.
            (&[0x01, 0x81, 0x80, 0x80, 0x80, 0x10], "out of range"),
            (&[], "out of bounds"),
            (&[0x01, 0x80], "out of bounds"),
        ];
        for (head, detail) in refused {
            match v.decode(head) {
                Err(d) => assert!(d.contains(detail), "{head:02x?}: {d}"),
                Ok(h) => panic!("{head:02x?} decoded as {h:?}"),
            }
        }
        // The largest lengths in range decode.
        let max = v
            .decode(&[0x80, 0x20, 0x81, 0x80, 0x80, 0x20])
            .expect("in range");
        assert_eq!(
            (max.key_len, max.value_len, max.head_len),
            (MAX_KEY_BYTES, Some(MAX_VALUE_BYTES), 6)
        );
        let f = EntryLengths::Fixed;
        assert!(f.decode(&[1, 0, 0, 0, 0xff, 0xff, 0xff]).is_err());
        assert!(f.decode(&[0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff]).is_err());
        assert!(f.decode(&[1, 0, 0, 0, 1, 0, 0, 4]).is_err());
        assert_eq!(
            f.decode(&[1, 0, 0, 0, 0xff, 0xff, 0xff, 0xff]),
            Ok(EntryHead {
                key_len: 1,
                value_len: None,
                head_len: 8
            })
        );
    }
}
