//! Writing a snapshot file: entries streamed in key order, then the index, the filter, the
//! range deletions, the page table (a CRC of every page of all that) and last the header,
//! which makes the file valid (FORMAT.md §5).

use super::filter::build_filter;
use super::layout::{
    encode_range_deletes, key_prefix, EntryLengths, RangeDelete, SegmentMeta, BODY_CRC_AT,
    ENTRY_COUNT_AT, FILE_LEN_AT, FILTER_OFFSET_AT, FILTER_PROBES, FILTER_PROBES_AT, HEADER_CRC_AT,
    ID_AT, INDEX_OFFSET_AT, PAGE_BYTES, PAGE_TABLE_AT, RANGE_DELETES_AT, RANGE_DELETE_COUNT_AT,
    RESERVED_AT, SHARED_PREFIX_AT, SNAPSHOT_HEADER_BYTES, SNAPSHOT_MAGIC, SNAPSHOT_VERSION_VARINT,
};
use crate::error::{Error, Result};
use crate::format::{crc32, preamble_of, seal_header, MAX_KEY_BYTES, PREAMBLE_BYTES};
use crate::storage::{OpenMode, Storage, StorageFile};
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

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
    pages: PageCrcs,
    first_key: Option<Arc<[u8]>>,
    range_deletes: Vec<RangeDelete>,
    /// The format version written: [`SNAPSHOT_VERSION_VARINT`], except in tests that write
    /// the files of an earlier build.
    version: u32,
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

/// The largest single write to a snapshot file. The page cache keeps a file in folios as
/// large as the writes that filled it (ext4 on Linux 6.x: a 1 MiB write, a 1 MiB folio), and
/// a fault on a mapped file maps the whole folio it lands in: a one-shot read that probes a
/// few places of a run would count a megabyte of resident memory for each. Writes of 64 KiB
/// keep that to the kernel's fault-around window (docs/BENCHMARKS.md, stop 26).
const WRITE_PIECE_BYTES: usize = 64 << 10;

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
            pages: PageCrcs::default(),
            first_key: None,
            range_deletes: Vec::new(),
            version: SNAPSHOT_VERSION_VARINT,
        })
    }

    /// Writes format `version` instead: 3 (lengths as `u32`s) is what builds before version
    /// 4 wrote, for the tests that such files stay readable. Call before the first `add`.
    #[cfg(test)]
    pub(crate) fn with_version(mut self, version: u32) -> SegmentWriter {
        debug_assert!(self.offsets.is_empty() && (3..=SNAPSHOT_VERSION_VARINT).contains(&version));
        self.version = version;
        self
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
        EntryLengths::of_version(self.version).encode(key, value, &mut self.buf);
        if self.buf.len() >= FLUSH_BYTES {
            self.flush()?;
        }
        Ok(())
    }

    /// Writes the buffered body bytes, their page CRCs taken first.
    fn flush(&mut self) -> Result<()> {
        self.pages.update(&self.buf);
        self.write_buf()
    }

    /// Appends the buffer to the file, in pieces of [`WRITE_PIECE_BYTES`], and empties it.
    fn write_buf(&mut self) -> Result<()> {
        for piece in self.buf.chunks(WRITE_PIECE_BYTES) {
            self.file
                .write_all_at(piece, self.written)
                .map_err(|e| Error::io("write snapshot", &self.path, e))?;
            self.written += piece.len() as u64;
        }
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
        let tail = self.write_tail()?;
        let header = self.header(&tail);
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
            file_len: tail.file_len,
            entry_count: self.offsets.len() as u64,
            first_key,
        })
    }

    /// Writes what follows the entries: the index, the filter and the range deletions
    /// (FORMAT.md §5.1-§5.3). Returns where each starts.
    fn write_tail(&mut self) -> Result<Tail> {
        let index_offset = self.body_bytes();
        let (keys, key_ends) = (&self.keys, &self.key_ends);
        let key = |i: usize| {
            let start = if i == 0 { 0 } else { key_ends[i - 1] as usize };
            &keys[start..key_ends[i] as usize]
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
            self.buf
                .extend_from_slice(&build_filter(count, probes, key));
        }
        let range_deletes_offset = self.body_bytes();
        encode_range_deletes(&self.range_deletes, &mut self.buf);
        self.flush()?;
        // The page table: not itself in a page; the header's CRC covers it.
        let page_table_offset = self.written;
        for crc in std::mem::take(&mut self.pages).finish() {
            self.buf.extend_from_slice(&crc.to_le_bytes());
        }
        let page_table_crc = crc32(&self.buf);
        self.write_buf()?;
        Ok(Tail {
            index_offset,
            filter_offset,
            range_deletes_offset,
            page_table_offset,
            page_table_crc,
            file_len: self.written,
            shared: shared as u32,
            probes,
        })
    }

    /// The header block of the finished file (FORMAT.md §5), sealed with its CRC.
    fn header(&self, tail: &Tail) -> [u8; SNAPSHOT_HEADER_BYTES] {
        let count = self.offsets.len() as u64;
        let mut header = [0u8; SNAPSHOT_HEADER_BYTES];
        header[..PREAMBLE_BYTES].copy_from_slice(&preamble_of(&SNAPSHOT_MAGIC, self.version));
        header[ID_AT..ENTRY_COUNT_AT].copy_from_slice(&self.id.to_le_bytes());
        header[ENTRY_COUNT_AT..INDEX_OFFSET_AT].copy_from_slice(&count.to_le_bytes());
        header[INDEX_OFFSET_AT..FILTER_OFFSET_AT].copy_from_slice(&tail.index_offset.to_le_bytes());
        header[FILTER_OFFSET_AT..RANGE_DELETES_AT]
            .copy_from_slice(&tail.filter_offset.to_le_bytes());
        header[RANGE_DELETES_AT..FILE_LEN_AT]
            .copy_from_slice(&tail.range_deletes_offset.to_le_bytes());
        header[FILE_LEN_AT..BODY_CRC_AT].copy_from_slice(&tail.file_len.to_le_bytes());
        header[BODY_CRC_AT..SHARED_PREFIX_AT].copy_from_slice(&tail.page_table_crc.to_le_bytes());
        header[SHARED_PREFIX_AT..FILTER_PROBES_AT].copy_from_slice(&tail.shared.to_le_bytes());
        header[FILTER_PROBES_AT..RANGE_DELETE_COUNT_AT].copy_from_slice(&tail.probes.to_le_bytes());
        let deletes = self.range_deletes.len() as u32;
        header[RANGE_DELETE_COUNT_AT..RESERVED_AT].copy_from_slice(&deletes.to_le_bytes());
        header[PAGE_TABLE_AT..PAGE_TABLE_AT + 8]
            .copy_from_slice(&tail.page_table_offset.to_le_bytes());
        seal_header(&mut header, HEADER_CRC_AT);
        header
    }
}

/// Where the parts after the entries start, and what the header says of them.
struct Tail {
    index_offset: u64,
    filter_offset: u64,
    range_deletes_offset: u64,
    page_table_offset: u64,
    /// The CRC of the page table, which the header carries.
    page_table_crc: u32,
    file_len: u64,
    shared: u32,
    probes: u32,
}

/// The CRCs of the body's pages ([`PAGE_BYTES`] each, from the end of the header), computed
/// as the body streams out.
#[derive(Default)]
struct PageCrcs {
    current: crate::checksum::Crc32,
    /// Bytes of the current page seen so far.
    filled: usize,
    done: Vec<u32>,
}

impl PageCrcs {
    fn update(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            let n = (PAGE_BYTES - self.filled).min(bytes.len());
            self.current.update(&bytes[..n]);
            self.filled += n;
            bytes = &bytes[n..];
            if self.filled == PAGE_BYTES {
                let full = std::mem::take(&mut self.current);
                self.done.push(full.finalize());
                self.filled = 0;
            }
        }
    }

    /// Every page's CRC, the last (short) page's included.
    fn finish(mut self) -> Vec<u32> {
        if self.filled > 0 {
            self.done.push(self.current.finalize());
        }
        self.done
    }
}
