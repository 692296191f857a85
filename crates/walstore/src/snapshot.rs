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
pub const SNAPSHOT_HEADER_BYTES: usize = 64;
/// Header fields after the preamble (FORMAT.md §5).
const ID_AT: usize = PREAMBLE_BYTES;
const ENTRY_COUNT_AT: usize = 24;
const INDEX_OFFSET_AT: usize = 32;
const FILE_LEN_AT: usize = 40;
/// CRC-32 of the body (entries and index).
const BODY_CRC_AT: usize = 48;
const SHARED_PREFIX_AT: usize = 52;
/// Four zero bytes.
const RESERVED_AT: usize = 56;
/// The header's CRC, over the bytes before it.
const HEADER_CRC_AT: usize = 60;
const _: () = assert!(ENTRY_COUNT_AT == ID_AT + 8 && INDEX_OFFSET_AT == ENTRY_COUNT_AT + 8);
const _: () = assert!(FILE_LEN_AT == INDEX_OFFSET_AT + 8 && BODY_CRC_AT == FILE_LEN_AT + 8);
const _: () = assert!(SHARED_PREFIX_AT == BODY_CRC_AT + 4 && RESERVED_AT == SHARED_PREFIX_AT + 4);
const _: () = assert!(HEADER_CRC_AT == RESERVED_AT + 4);
const _: () = assert!(SNAPSHOT_HEADER_BYTES == HEADER_CRC_AT + 4);
/// Size of an entry's length prefix.
const ENTRY_PREFIX_BYTES: usize = 8;
/// Size of an index entry: the key's first 8 bytes (zero-padded), then the entry offset.
pub const INDEX_ENTRY_BYTES: usize = 12;

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

/// An open, validated snapshot file.
pub struct Segment {
    id: u64,
    path: PathBuf,
    map: Arc<dyn Mapping>,
    entry_count: usize,
    index_offset: usize,
    /// Length of the prefix every key of the file shares; index prefixes start after it.
    shared_prefix_len: usize,
}

impl fmt::Debug for Segment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Segment")
            .field("id", &self.id)
            .field("entries", &self.entry_count)
            .field("bytes", &self.map.bytes().len())
            .finish()
    }
}

/// What the manifest says about a snapshot file; checked against the file when it is mapped.
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
    let shared_prefix_len = read_u32(header, SHARED_PREFIX_AT).unwrap_or(0) as usize;
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
    let (entry_count, index_offset) = (field(ENTRY_COUNT_AT), field(INDEX_OFFSET_AT));
    let file_len = field(FILE_LEN_AT);
    if file_len != bytes.len() as u64 {
        return Err(Corrupt(
            FILE_LEN_AT,
            "snapshot length differs from its header",
        ));
    }
    if crc32(&bytes[SNAPSHOT_HEADER_BYTES..]) != read_u32(header, BODY_CRC_AT).unwrap_or(0) {
        return Err(Corrupt(
            SNAPSHOT_HEADER_BYTES,
            "snapshot body checksum mismatch",
        ));
    }
    let index_len = entry_count.checked_mul(INDEX_ENTRY_BYTES as u64);
    if entry_count == 0
        || index_offset < SNAPSHOT_HEADER_BYTES as u64
        || index_len.and_then(|l| l.checked_add(index_offset)) != Some(file_len)
    {
        return Err(Corrupt(
            ENTRY_COUNT_AT,
            "snapshot entry count or index offset out of range",
        ));
    }
    // Both fit in usize: the file length bounds them, and the file is mapped.
    Ok(SnapshotHeader {
        entry_count: entry_count as usize,
        index_offset: index_offset as usize,
        shared_prefix_len,
    })
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
        if segment.entry(0)?.0 != &meta.first_key[..] {
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
        let segment = Segment {
            id: expected_id,
            path,
            map: Arc::clone(&map),
            entry_count: header.entry_count,
            index_offset: header.index_offset,
            shared_prefix_len: header.shared_prefix_len,
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
            if key.is_empty() || key.len() > MAX_KEY_BYTES || value.len() > MAX_VALUE_BYTES {
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

    /// Key, value and end offset of the entry starting at `offset`.
    fn entry_at(&self, offset: usize) -> Result<(&[u8], &[u8], usize)> {
        let bytes = self.map.bytes();
        let out_of_bounds = || self.corrupt(offset, "entry out of bounds");
        let key_len = read_u32(bytes, offset).ok_or_else(out_of_bounds)? as usize;
        let value_len = read_u32(bytes, offset + 4).ok_or_else(out_of_bounds)? as usize;
        let key_start = offset + ENTRY_PREFIX_BYTES;
        let value_start = key_start.checked_add(key_len).ok_or_else(out_of_bounds)?;
        let end = value_start
            .checked_add(value_len)
            .ok_or_else(out_of_bounds)?;
        if end > self.index_offset {
            return Err(out_of_bounds());
        }
        Ok((
            &bytes[key_start..value_start],
            &bytes[value_start..end],
            end,
        ))
    }

    /// The key and value of entry `i`.
    pub fn entry(&self, i: usize) -> Result<(&[u8], &[u8])> {
        let (k, v, _) = self.entry_at(self.entry_offset(i)?)?;
        Ok((k, v))
    }

    /// Byte range of entry `i`'s value within the mapping.
    pub fn value_range(&self, i: usize) -> Result<(usize, usize)> {
        let offset = self.entry_offset(i)?;
        let (key, value, end) = self.entry_at(offset)?;
        let _ = key;
        Ok((end - value.len(), end))
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
        })
    }

    /// Bytes the file will have so far (header and entries, without the index).
    pub fn body_bytes(&self) -> u64 {
        self.written + self.buf.len() as u64
    }

    /// Appends an entry; keys must arrive in strictly increasing order.
    pub fn add(&mut self, key: &[u8], value: &[u8]) -> Result<()> {
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
        self.buf
            .extend_from_slice(&(value.len() as u32).to_le_bytes());
        self.buf.extend_from_slice(key);
        self.buf.extend_from_slice(value);
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
        // Invariant: a writer is created for its first entry (`checkpoint::Output::add`), so
        // it is never finished empty.
        let first_key = self
            .first_key
            .take()
            .expect("a snapshot file is finished only after its first entry");
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
        self.flush()?;
        let file_len = self.written;
        let mut header = [0u8; SNAPSHOT_HEADER_BYTES];
        header[..PREAMBLE_BYTES].copy_from_slice(&preamble(&SNAPSHOT_MAGIC));
        header[ID_AT..ENTRY_COUNT_AT].copy_from_slice(&self.id.to_le_bytes());
        header[ENTRY_COUNT_AT..INDEX_OFFSET_AT].copy_from_slice(&(count as u64).to_le_bytes());
        header[INDEX_OFFSET_AT..FILE_LEN_AT].copy_from_slice(&index_offset.to_le_bytes());
        header[FILE_LEN_AT..BODY_CRC_AT].copy_from_slice(&file_len.to_le_bytes());
        let body_crc = self.body_crc.clone().finalize();
        header[BODY_CRC_AT..SHARED_PREFIX_AT].copy_from_slice(&body_crc.to_le_bytes());
        header[SHARED_PREFIX_AT..RESERVED_AT].copy_from_slice(&(shared as u32).to_le_bytes());
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
            w.add(k, v).expect("add");
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
        assert_eq!(seg.entry(2).expect("entry"), (&b"e"[..], &b""[..]));
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
        let cases: [(usize, u8, u64); 4] = [
            (RESERVED_AT + 3, 1, 56),
            (SHARED_PREFIX_AT + 2, 1, 52),
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
